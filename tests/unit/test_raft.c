/* Unit tests for src/raft: each rule on a concrete scenario, driven by a small in-process
 * cluster whose messages travel through the codec and are delivered only when a test says so. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "raft/raft.h"

#define MAXN 8
#define MAXQ 4096
#define T    10 /* election ticks */

/* ---- fixture ---------------------------------------------------------------------------- */

struct fnode {
    uint64_t id;
    struct cn_raft *r;
    struct cn_raft_config cfg;
    /* disk */
    struct cn_raft_hard_state hs;
    struct cn_raft_snapshot_meta snap;
    struct cn_raft_entry ents[1024];
    size_t n;
    /* state machine: a hash and a count of applied non-empty entries */
    uint64_t sm_hash, sm_count, applied;
    uint8_t snap_bytes[24]; /* the saved snapshot (hash, count, index) */
    /* served reads */
    struct cn_raft_read reads[256];
    size_t n_reads;
};

struct fmsg {
    uint64_t from, to;
    uint8_t type;
    struct cn_buf b;
};

struct fx {
    unsigned n;
    struct fnode nodes[MAXN];
    struct fmsg q[MAXQ];
    size_t nq;
    bool cut[MAXN + 1][MAXN + 1]; /* cut[from][to] drops messages */
    unsigned sent[CN_RAFT_MSG_TYPE_MAX + 1];
    size_t app_entries; /* entries carried by APP messages sent */
    uint8_t drop_type;  /* drop every message of this type */
};

static struct fx F;

static struct fnode *node(uint64_t id)
{
    return &F.nodes[id - 1];
}

static void disk_append(struct fnode *nd, const struct cn_raft_entry *e)
{
    /* an entry at an index already persisted replaces the suffix from there */
    uint64_t first = nd->snap.index + 1;
    assert_true(e->index >= first && e->index <= first + nd->n);
    size_t at = (size_t)(e->index - first);
    for (size_t i = at; i < nd->n; i++)
        cn_free(nd->ents[i].data);
    nd->n = at;
    assert_true(nd->n < 1024);
    nd->ents[nd->n] = *e;
    nd->ents[nd->n].data = e->len ? cn_xmemdup(e->data, e->len) : NULL;
    nd->n++;
}

static void sm_apply(struct fnode *nd, const struct cn_raft_entry *e)
{
    assert_int_equal(e->index, nd->applied + 1);
    nd->applied = e->index;
    if (e->type != CN_RAFT_ENTRY_NORMAL || e->len == 0) return;
    for (size_t i = 0; i < e->len; i++)
        nd->sm_hash = nd->sm_hash * 131 + ((uint8_t *)e->data)[i];
    nd->sm_count++;
}

/* Persists, sends, applies one batch and advances. */
static void handle_batch(struct fnode *nd, const struct cn_raft_ready *batch)
{
    struct cn_raft_ready rd = *batch;
    if (rd.snapshot) {
        for (size_t i = 0; i < nd->n; i++)
            cn_free(nd->ents[i].data);
        nd->n = 0;
        nd->snap = rd.snapshot->meta;
        assert_int_equal(rd.snapshot->len, 24);
        memcpy(nd->snap_bytes, rd.snapshot->data, 24);
        memcpy(&nd->sm_hash, rd.snapshot->data, 8);
        memcpy(&nd->sm_count, (const char *)rd.snapshot->data + 8, 8);
        memcpy(&nd->applied, (const char *)rd.snapshot->data + 16, 8);
        assert_int_equal(nd->applied, rd.snapshot->meta.index);
    }
    for (size_t i = 0; i < rd.n_entries; i++)
        disk_append(nd, &rd.entries[i]);
    if (rd.has_hard_state) nd->hs = rd.hard_state;
    for (size_t i = 0; i < rd.n_msgs; i++) {
        const struct cn_raft_msg *m = &rd.msgs[i];
        F.sent[m->type]++;
        if (m->type == CN_RAFT_MSG_APP) F.app_entries += m->n_entries;
        if (F.cut[m->from][m->to] || m->type == F.drop_type) continue;
        assert_true(F.nq < MAXQ);
        struct fmsg *fm = &F.q[F.nq++];
        fm->from = m->from;
        fm->to = m->to;
        fm->type = m->type;
        cn_buf_init(&fm->b);
        struct cn_raft_msg copy = *m;
        if (m->type == CN_RAFT_MSG_SNAP) {
            /* the caller attaches the snapshot it saved at that index */
            assert_int_equal(nd->snap.index, m->snap.index);
            copy.snap_data = nd->snap_bytes;
            copy.snap_len = sizeof(nd->snap_bytes);
        }
        cn_raft_msg_encode(&copy, &fm->b);
    }
    for (size_t i = 0; i < rd.n_committed; i++)
        sm_apply(nd, &rd.committed[i]);
    for (size_t i = 0; i < rd.n_reads; i++) {
        assert_true(rd.reads[i].index <= nd->applied);
        nd->reads[nd->n_reads++] = rd.reads[i];
    }
    cn_raft_advance(nd->r, &rd);
}

static void handle_ready(struct fnode *nd)
{
    while (nd->r && cn_raft_has_ready(nd->r)) {
        struct cn_raft_ready rd;
        cn_raft_ready(nd->r, &rd);
        handle_batch(nd, &rd);
    }
}

static void pump_all(void)
{
    for (unsigned i = 0; i < F.n; i++)
        handle_ready(&F.nodes[i]);
}

/* Delivers one queued message (index k in the queue). */
static void deliver_at(size_t k)
{
    assert_true(k < F.nq);
    struct fmsg fm = F.q[k];
    memmove(&F.q[k], &F.q[k + 1], (F.nq - k - 1) * sizeof(F.q[0]));
    F.nq--;
    struct fnode *nd = node(fm.to);
    if (nd->r != NULL && !F.cut[fm.from][fm.to]) {
        struct cn_raft_msg m;
        struct cn_raft_entry *ents;
        assert_int_equal(cn_raft_msg_decode(fm.b.p, fm.b.len, &m, &ents), 0);
        assert_int_equal(cn_raft_step(nd->r, &m), 0);
        cn_free(ents);
        handle_ready(nd);
    }
    cn_buf_free(&fm.b);
}

/* Delivers messages until none are left. */
static void deliver_all(void)
{
    pump_all();
    for (unsigned guard = 0; F.nq > 0; guard++) {
        assert_true(guard < 100000);
        deliver_at(0);
    }
}

static void drop_all(void)
{
    pump_all();
    for (size_t i = 0; i < F.nq; i++)
        cn_buf_free(&F.q[i].b);
    F.nq = 0;
}

static void tick(uint64_t id, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        cn_raft_tick(node(id)->r);
        handle_ready(node(id));
    }
}

static void isolate(uint64_t id, bool on)
{
    for (unsigned i = 1; i <= MAXN; i++) {
        F.cut[id][i] = on;
        F.cut[i][id] = on;
    }
}

static struct cn_raft_status status(uint64_t id)
{
    struct cn_raft_status st;
    cn_raft_status(node(id)->r, &st);
    return st;
}

static void start_node(struct fnode *nd)
{
    nd->r = cn_raft_new(&nd->cfg);
    assert_int_equal(cn_raft_load(nd->r, &nd->hs, &nd->snap, nd->ents, nd->n), 0);
    nd->applied = nd->snap.index;
    memcpy(&nd->sm_hash, nd->snap_bytes, 8);
    memcpy(&nd->sm_count, nd->snap_bytes + 8, 8);
}

static bool use_bootstrap;

/* n members; voters 1..nv (the rest start with an empty configuration, as joiners do). */
static void setup_n(unsigned n, unsigned nv)
{
    use_bootstrap = false;
    memset(&F, 0, sizeof(F));
    F.n = n;
    for (unsigned i = 0; i < n; i++) {
        struct fnode *nd = &F.nodes[i];
        nd->id = i + 1;
        cn_raft_config_default(&nd->cfg);
        nd->cfg.id = nd->id;
        nd->cfg.seed = 42;
        nd->cfg.election_ticks = T;
        if (i < nv)
            for (unsigned v = 0; v < nv; v++)
                nd->snap.conf.voters[nd->snap.conf.n_voters++] = v + 1;
    }
}

static void start_all(void)
{
    for (unsigned i = 0; i < F.n; i++)
        start_node(&F.nodes[i]);
}

/* n members, voters 1..nv founded with cn_raft_bootstrap; the others join empty. */
static void setup_bootstrap(unsigned n, unsigned nv)
{
    setup_n(n, nv);
    struct cn_raft_conf conf = F.nodes[0].snap.conf;
    for (unsigned i = 0; i < n; i++)
        memset(&F.nodes[i].snap.conf, 0, sizeof(conf));
    start_all();
    for (unsigned i = 0; i < nv; i++) {
        assert_int_equal(cn_raft_bootstrap(F.nodes[i].r, &conf), 0);
        handle_ready(&F.nodes[i]);
        assert_int_equal(F.nodes[i].n, nv);
        assert_int_equal(F.nodes[i].hs.commit, nv);
    }
    assert_int_equal(cn_raft_bootstrap(F.nodes[0].r, &conf), CN_ERR_INVAL);
}

static void setup(unsigned n)
{
    setup_n(n, n);
    start_all();
}

/* Preloads a node's disk with entries of the given terms at indexes 1.. */
static void preload(uint64_t id, const uint64_t *terms, size_t n, uint64_t hs_term)
{
    struct fnode *nd = node(id);
    for (size_t i = 0; i < n; i++) {
        struct cn_raft_entry e = {terms[i], i + 1, CN_RAFT_ENTRY_NORMAL, 0, NULL};
        disk_append(nd, &e);
    }
    nd->hs.term = hs_term;
}

static void crash(uint64_t id)
{
    struct fnode *nd = node(id);
    /* unhandled work is lost with the process; the disk stays */
    cn_raft_free(nd->r);
    nd->r = NULL;
}

static void restart(uint64_t id)
{
    struct fnode *nd = node(id);
    nd->sm_hash = nd->sm_count = 0;
    start_node(nd);
}

static void teardown(void)
{
    drop_all();
    for (unsigned i = 0; i < F.n; i++) {
        struct fnode *nd = &F.nodes[i];
        cn_raft_free(nd->r);
        for (size_t k = 0; k < nd->n; k++)
            cn_free(nd->ents[k].data);
    }
    memset(&F, 0, sizeof(F));
}

/* Ticks id until it campaigns, then delivers everything. */
static void elect(uint64_t id)
{
    for (unsigned i = 0; i < 2 * T && status(id).role != CN_RAFT_LEADER; i++) {
        tick(id, 1);
        deliver_all();
    }
    assert_int_equal(status(id).role, CN_RAFT_LEADER);
}

/* Lets a follower's leader lease run out without it campaigning yet. */
static void age_lease(uint64_t id)
{
    tick(id, T);
}

static void propose(uint64_t id, const char *z)
{
    assert_int_equal(cn_raft_propose(node(id)->r, z, strlen(z), NULL, NULL), 0);
    handle_ready(node(id));
}

static bool logs_equal(uint64_t a, uint64_t b)
{
    struct fnode *x = node(a), *y = node(b);
    if (x->snap.index != y->snap.index || x->n != y->n) return false;
    for (size_t i = 0; i < x->n; i++)
        if (x->ents[i].term != y->ents[i].term || x->ents[i].index != y->ents[i].index)
            return false;
    return true;
}

/* ---- election ---------------------------------------------------------------------------- */

static void election_basic(void **state)
{
    setup(3);
    elect(1);
    struct cn_raft_status st = status(1);
    /* pre-vote did not spend a term; the real vote took term 1 */
    assert_int_equal(st.term, 1);
    assert_int_equal(st.lead, 1);
    /* the new leader's empty entry of its term is replicated and committed everywhere */
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(node(id)->n, 1);
        assert_int_equal(node(id)->ents[0].term, 1);
        assert_int_equal(node(id)->ents[0].len, 0);
        assert_int_equal(status(id).commit, 1);
        assert_int_equal(status(id).lead, 1);
        assert_int_equal(node(id)->hs.term, 1);
    }
    assert_int_equal(node(2)->hs.vote, 1);
    teardown();
}

static void election_timeout_randomised(void **state)
{
    unsigned seen[2 * T] = {0};
    for (uint64_t seed = 1; seed <= 200; seed++) {
        setup(3);
        node(1)->cfg.seed = seed;
        cn_raft_free(node(1)->r);
        start_node(node(1));
        unsigned k = 0;
        while (F.sent[CN_RAFT_MSG_PREVOTE] == 0) {
            tick(1, 1);
            k++;
            assert_true(k < 2 * T);
        }
        assert_true(k >= T && k < 2 * T);
        seen[k]++;
        teardown();
    }
    unsigned distinct = 0;
    for (unsigned k = 0; k < 2 * T; k++)
        distinct += seen[k] > 0;
    assert_true(distinct >= T / 2);
}

static void prevote_isolated_node_keeps_term(void **state)
{
    setup(3);
    elect(1);
    isolate(3, true);
    for (unsigned i = 0; i < 10; i++) {
        tick(3, 2 * T);
        tick(1, 1);
        tick(2, 1);
        deliver_all();
    }
    /* without pre-vote it would have bumped its term on every timeout */
    assert_int_equal(status(3).term, 1);
    assert_int_equal(status(3).role, CN_RAFT_PRE_CANDIDATE);
    isolate(3, false);
    tick(1, 1);
    deliver_all();
    assert_int_equal(status(1).role, CN_RAFT_LEADER);
    assert_int_equal(status(1).term, 1);
    assert_int_equal(status(3).lead, 1);
    teardown();
}

static void check_quorum_steps_down(void **state)
{
    setup(3);
    elect(1);
    isolate(1, true);
    tick(1, T - 1);
    drop_all();
    assert_int_equal(status(1).role, CN_RAFT_LEADER);
    /* the first check after isolation may still count answers from before it */
    tick(1, T + 1);
    drop_all();
    assert_int_equal(status(1).role, CN_RAFT_FOLLOWER);
    assert_int_equal(status(1).lead, 0);
    teardown();
}

/* A follower told that its leader's connection closed drops the lease at once: it grants a
 * pre-vote in the same tick, and campaigns within one election timeout instead of one to two. A
 * notice about a member that is not its leader changes nothing. */
static void leader_unreachable_drops_the_lease(void **state)
{
    setup(3);
    elect(1);
    cn_raft_leader_unreachable(node(2)->r, 3); /* not its leader: ignored */
    assert_int_equal(status(2).lead, 1);
    crash(1);
    cn_raft_leader_unreachable(node(2)->r, 1);
    cn_raft_leader_unreachable(node(3)->r, 1);
    assert_int_equal(status(2).lead, 0);
    assert_int_equal(status(3).lead, 0);
    uint64_t term = status(2).term;
    unsigned ticks = 0;
    while (status(2).role != CN_RAFT_LEADER && status(3).role != CN_RAFT_LEADER && ticks < T) {
        tick(2, 1);
        tick(3, 1);
        deliver_all();
        ticks++;
    }
    assert_true(ticks < T);
    assert_true(status(2).role == CN_RAFT_LEADER || status(3).role == CN_RAFT_LEADER);
    assert_int_equal(status(2).term, term + 1);
    teardown();
}

static void vote_rejected_for_stale_log(void **state)
{
    setup_n(3, 3);
    static const uint64_t t12[] = {1, 2}, t1[] = {1};
    preload(1, t1, 1, 2);
    preload(2, t12, 2, 2);
    preload(3, t12, 2, 2);
    start_all();
    /* 1's log is behind: neither pre-vote nor vote may make it leader */
    for (unsigned i = 0; i < 4; i++) {
        tick(1, 2 * T);
        deliver_all();
    }
    assert_int_not_equal(status(1).role, CN_RAFT_LEADER);
    elect(2);
    assert_int_equal(status(2).role, CN_RAFT_LEADER);
    teardown();
}

/* The paper's Figure 7: a leader of term 8 brings followers (a)-(f) to its log. */
static void figure7_followers_converge(void **state)
{
    static const uint64_t leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
    static const uint64_t fa[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
    static const uint64_t fb[] = {1, 1, 1, 4};
    static const uint64_t fc[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
    static const uint64_t fd[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
    static const uint64_t fe[] = {1, 1, 1, 4, 4, 4, 4};
    static const uint64_t ff[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
    setup_n(7, 7);
    preload(1, leader, 10, 7);
    preload(2, fa, 9, 7);
    preload(3, fb, 4, 7);
    preload(4, fc, 11, 7);
    preload(5, fd, 12, 7);
    preload(6, fe, 7, 7);
    preload(7, ff, 11, 7);
    for (unsigned i = 0; i < 7; i++)
        F.nodes[i].hs.commit = 3;
    start_all();
    elect(1);
    assert_int_equal(status(1).term, 8);
    tick(1, 1);
    deliver_all();
    for (uint64_t id = 2; id <= 7; id++) {
        assert_true(logs_equal(1, id));
        assert_int_equal(status(id).commit, 11);
    }
    assert_int_equal(node(1)->ents[10].term, 8);
    /* fast backtracking: a handful of rejections, not one per missing entry */
    assert_true(F.sent[CN_RAFT_MSG_APP] <= 6 * 4 + 12);
    teardown();
}

/* The paper's Figure 8: a leader must not commit an entry of an earlier term by counting. */
static void figure8_prev_term_not_committed_by_counting(void **state)
{
    for (int broken = 0; broken <= 1; broken++) {
        setup_n(3, 3);
        static const uint64_t t12[] = {1, 2}, t1[] = {1};
        preload(1, t12, 2, 2);
        preload(2, t1, 1, 2);
        preload(3, t1, 1, 2);
        for (unsigned i = 0; i < 3; i++) {
            F.nodes[i].hs.commit = 1;
            F.nodes[i].cfg.max_msg_bytes = 1; /* one entry per append */
            F.nodes[i].cfg.unsafe_commit_prev_term = broken;
        }
        /* entry 2 (term 2) carries a payload so that it travels alone */
        cn_free(node(1)->ents[1].data);
        node(1)->ents[1].data = cn_xmemdup("x", 1);
        node(1)->ents[1].len = 1;
        start_all();
        isolate(3, true);
        tick(1, 2 * T);
        /* pre-vote + vote with 2, one message at a time */
        while (status(1).role != CN_RAFT_LEADER) {
            assert_true(F.nq > 0);
            deliver_at(0);
        }
        assert_int_equal(status(1).term, 3);
        /* 2 rejects append(prev=2), gets entry 2 alone and acks index 2 */
        for (unsigned k = 0; k < 3 && F.nq > 0; k++) {
            pump_all();
            deliver_at(0);
        }
        pump_all();
        /* deliver until 2 acked exactly index 2, but not 3 */
        while (F.nq > 0) {
            struct fmsg *fm = &F.q[0];
            if (fm->to == 2) {
                struct cn_raft_msg m;
                struct cn_raft_entry *e;
                assert_int_equal(cn_raft_msg_decode(fm->b.p, fm->b.len, &m, &e), 0);
                bool carries3 = m.n_entries > 0 && m.entries[m.n_entries - 1].index >= 3;
                cn_free(e);
                if (carries3) break;
            }
            deliver_at(0);
        }
        assert_int_equal(node(2)->n, 2);
        assert_int_equal(node(2)->ents[1].term, 2);
        /* a majority (1 and 2) holds index 2 of term 2: committed only if the rule is broken */
        assert_int_equal(status(1).commit, broken ? 2 : 1);
        deliver_all();
        assert_int_equal(status(1).commit, 3);
        teardown();
    }
}

/* ---- replication -------------------------------------------------------------------------- */

static void proposals_batched_into_one_message(void **state)
{
    setup(3);
    elect(1);
    unsigned before = F.sent[CN_RAFT_MSG_APP];
    for (int i = 0; i < 100; i++)
        assert_int_equal(cn_raft_propose(node(1)->r, "abc", 3, NULL, NULL), 0);
    handle_ready(node(1));
    assert_int_equal(F.sent[CN_RAFT_MSG_APP] - before, 2); /* one per follower */
    deliver_all();
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(node(id)->sm_count, 100);
        assert_int_equal(node(id)->sm_hash, node(1)->sm_hash);
    }
    teardown();
}

static void pipeline_window_and_entry_cap(void **state)
{
    setup_n(3, 3);
    for (unsigned i = 0; i < 3; i++) {
        F.nodes[i].cfg.max_inflight_msgs = 4;
        F.nodes[i].cfg.max_msg_bytes = 10;
        F.nodes[i].cfg.max_entry_bytes = 100;
    }
    start_all();
    elect(1);
    char big[101] = {0};
    assert_int_equal(cn_raft_propose(node(1)->r, big, 101, NULL, NULL), CN_ERR_TOO_LARGE);
    assert_int_equal(cn_raft_propose(node(1)->r, big, 100, NULL, NULL), 0);
    deliver_all();
    unsigned before = F.sent[CN_RAFT_MSG_APP];
    for (int i = 0; i < 40; i++)
        propose(1, "0123456789");
    /* 40 entries of 10 bytes: one per message, at most 4 unacknowledged per follower */
    assert_int_equal(F.sent[CN_RAFT_MSG_APP] - before, 8);
    deliver_all();
    assert_int_equal(status(2).commit, status(1).commit);
    assert_int_equal(node(3)->sm_count, 41);
    teardown();
}

static void inflight_bytes_and_uncommitted_bounds(void **state)
{
    setup_n(3, 3);
    for (unsigned i = 0; i < 3; i++) {
        F.nodes[i].cfg.max_msg_bytes = 10;
        F.nodes[i].cfg.max_inflight_bytes = 25;
        F.nodes[i].cfg.max_uncommitted_bytes = 100;
    }
    start_all();
    elect(1);
    unsigned before = F.sent[CN_RAFT_MSG_APP];
    for (int i = 0; i < 10; i++)
        propose(1, "0123456789");
    /* 10, 20 bytes out: still under 25, so a third goes; then the window is full */
    assert_int_equal(F.sent[CN_RAFT_MSG_APP] - before, 6);
    /* 100 bytes wait for a quorum: the next proposal is refused until some commit */
    assert_int_equal(cn_raft_propose(node(1)->r, "x", 1, NULL, NULL), -ENOBUFS);
    deliver_all();
    assert_int_equal(status(1).commit, 11);
    assert_int_equal(cn_raft_propose(node(1)->r, "x", 1, NULL, NULL), 0);
    deliver_all();
    assert_int_equal(node(2)->sm_count, 11);
    teardown();
}

static void follower_restart_keeps_durable_state(void **state)
{
    setup(3);
    elect(1);
    propose(1, "a");
    deliver_all();
    crash(3);
    propose(1, "b");
    propose(1, "c");
    deliver_all();
    restart(3);
    assert_int_equal(status(3).term, 1);
    assert_int_equal(node(3)->hs.vote, 1);
    /* the appends it missed are detected as lost after half an election timeout of heartbeat
     * answers without progress, and resent */
    for (int i = 0; i < T / 2 + 1; i++) {
        assert_false(logs_equal(1, 3));
        tick(1, 1);
        deliver_all();
    }
    assert_true(logs_equal(1, 3));
    assert_int_equal(node(3)->sm_count, 3);
    assert_int_equal(node(3)->sm_hash, node(1)->sm_hash);
    teardown();
}

/* ---- ReadIndex ------------------------------------------------------------------------------ */

static void read_index_one_round_for_many(void **state)
{
    setup(3);
    elect(1);
    propose(1, "v");
    deliver_all();
    unsigned hb = F.sent[CN_RAFT_MSG_HEARTBEAT];
    for (uint64_t c = 1; c <= 10; c++)
        assert_int_equal(cn_raft_read_index(node(1)->r, c), 0);
    handle_ready(node(1));
    assert_int_equal(node(1)->n_reads, 0); /* not before the round */
    assert_int_equal(F.sent[CN_RAFT_MSG_HEARTBEAT] - hb, 2);
    deliver_all();
    assert_int_equal(node(1)->n_reads, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(node(1)->reads[i].ctx, i + 1);
        assert_int_equal(node(1)->reads[i].index, 2);
    }
    /* a follower asks the leader */
    assert_int_equal(cn_raft_read_index(node(2)->r, 99), 0);
    deliver_all();
    assert_int_equal(node(2)->n_reads, 1);
    assert_int_equal(node(2)->reads[0].ctx, 99);
    assert_int_equal(node(2)->reads[0].index, 2);
    teardown();
}

static void read_index_partitioned_old_leader_serves_nothing(void **state)
{
    setup(3);
    elect(1);
    isolate(1, true);
    age_lease(3);
    elect(2);
    propose(2, "new");
    deliver_all();
    assert_int_equal(status(1).role, CN_RAFT_LEADER); /* still believes it leads */
    assert_int_equal(cn_raft_read_index(node(1)->r, 7), 0);
    for (unsigned i = 0; i < T - 2; i++) {
        tick(1, 1);
        deliver_all();
    }
    assert_int_equal(node(1)->n_reads, 0);
    /* the new leader serves it, at an index that includes the new write */
    assert_int_equal(cn_raft_read_index(node(2)->r, 8), 0);
    deliver_all();
    assert_int_equal(node(2)->n_reads, 1);
    assert_int_equal(node(2)->reads[0].index, 3);
    isolate(1, false);
    tick(2, 1);
    deliver_all();
    assert_int_equal(status(1).role, CN_RAFT_FOLLOWER);
    assert_int_equal(node(1)->n_reads, 0);
    teardown();
}

static void read_index_waits_for_commit_in_term(void **state)
{
    setup(3);
    elect(1);
    isolate(2, true);
    isolate(3, true);
    tick(1, 2 * T); /* steps down: check quorum */
    drop_all();
    isolate(2, false);
    isolate(3, false);
    tick(2, 2 * T);
    /* deliver only until 2 becomes leader, before its entry commits */
    while (status(2).role != CN_RAFT_LEADER)
        deliver_at(0);
    assert_int_equal(cn_raft_read_index(node(2)->r, 5), 0);
    handle_ready(node(2));
    assert_int_equal(node(2)->n_reads, 0);
    deliver_all();
    assert_int_equal(node(2)->n_reads, 1);
    assert_int_equal(node(2)->reads[0].index, 2);
    teardown();
}

/* ---- leadership transfer -------------------------------------------------------------------- */

static void transfer_catches_up_then_hands_over(void **state)
{
    setup(3);
    elect(1);
    isolate(3, true);
    propose(1, "a");
    propose(1, "b");
    deliver_all();
    isolate(3, false);
    assert_int_equal(cn_raft_transfer(node(1)->r, 3), 0);
    assert_int_equal(cn_raft_propose(node(1)->r, "x", 1, NULL, NULL), -EBUSY);
    deliver_all();
    assert_int_equal(status(3).role, CN_RAFT_LEADER);
    assert_int_equal(status(3).term, 2);
    assert_int_equal(status(1).lead, 3);
    assert_int_equal(F.sent[CN_RAFT_MSG_TIMEOUT_NOW], 1);
    propose(3, "c");
    deliver_all();
    assert_int_equal(node(1)->sm_count, 3);
    assert_int_equal(cn_raft_transfer(node(3)->r, 3), CN_ERR_INVAL);
    teardown();
}

static void transfer_gives_up_after_timeout(void **state)
{
    setup(3);
    elect(1);
    isolate(3, true);
    assert_int_equal(cn_raft_transfer(node(1)->r, 3), 0);
    for (unsigned i = 0; i < T; i++) {
        tick(1, 1);
        deliver_all();
    }
    assert_int_equal(status(1).role, CN_RAFT_LEADER);
    assert_int_equal(status(1).transferee, 0);
    assert_int_equal(cn_raft_propose(node(1)->r, "x", 1, NULL, NULL), 0);
    teardown();
}

/* ---- membership ------------------------------------------------------------------------------ */

static int conf(uint64_t leader, uint8_t op, uint64_t id)
{
    struct cn_raft_conf_change cc = {op, id, NULL, 0};
    int rc = cn_raft_propose_conf(node(leader)->r, &cc, NULL, NULL);
    handle_ready(node(leader));
    return rc;
}

static void membership_learner_promote_remove(void **state)
{
    setup_bootstrap(4, 3);
    elect(1);
    propose(1, "a");
    deliver_all();
    assert_int_equal(conf(1, CN_RAFT_CONF_ADD_VOTER, 4), CN_ERR_INVAL);
    assert_int_equal(conf(1, CN_RAFT_CONF_ADD_LEARNER, 4), 0);
    /* one at a time: the next change waits for this one to commit */
    assert_int_equal(conf(1, CN_RAFT_CONF_PROMOTE, 4), -EBUSY);
    deliver_all();
    assert_int_equal(status(4).conf.n_learners, 1);
    assert_int_equal(node(4)->sm_count, 1); /* the learner has the log */
    assert_int_equal(status(1).conf.n_voters, 3);
    /* a learner never campaigns */
    tick(4, 4 * T);
    drop_all();
    assert_int_equal(status(4).role, CN_RAFT_FOLLOWER);
    assert_int_equal(status(4).term, 2);
    assert_int_equal(conf(1, CN_RAFT_CONF_PROMOTE, 4), 0);
    deliver_all();
    assert_int_equal(status(4).conf.n_voters, 4);
    /* remove 2 while it cannot hear about it */
    isolate(2, true);
    assert_int_equal(conf(1, CN_RAFT_CONF_REMOVE, 2), 0);
    deliver_all();
    assert_int_equal(status(1).conf.n_voters, 3);
    assert_int_equal(status(2).conf.n_voters, 4); /* 2 does not know */
    propose(1, "b");
    deliver_all();
    uint64_t term = status(1).term;
    isolate(2, false);
    /* the removed member times out; the leader tells it, and it stops */
    for (unsigned i = 0; i < 4; i++) {
        tick(2, 2 * T);
        tick(1, 1);
        deliver_all();
    }
    assert_true(status(2).removed);
    assert_int_equal(status(1).role, CN_RAFT_LEADER);
    assert_int_equal(status(1).term, term);
    assert_int_equal(F.sent[CN_RAFT_MSG_REMOVED] >= 1, true);
    unsigned prevotes = F.sent[CN_RAFT_MSG_PREVOTE];
    tick(2, 10 * T);
    drop_all();
    assert_int_equal(F.sent[CN_RAFT_MSG_PREVOTE], prevotes);
    teardown();
}

static void membership_leader_removes_itself(void **state)
{
    setup(3);
    elect(1);
    propose(1, "a");
    deliver_all();
    assert_int_equal(conf(1, CN_RAFT_CONF_REMOVE, 1), 0);
    deliver_all();
    assert_int_equal(status(1).role, CN_RAFT_FOLLOWER);
    assert_true(status(1).removed);
    age_lease(3);
    elect(2);
    propose(2, "b");
    deliver_all();
    assert_int_equal(node(3)->sm_count, 2);
    teardown();
}

/* Two voters; the leader removes itself and crashes before anyone else has the entry. The
 * other still counts the old configuration and needs its vote, which its shorter log cannot
 * get; only the removed member can finish the change. Before the fix nobody ever campaigned. */
static void membership_removed_leader_finishes_its_removal(void **state)
{
    setup(2);
    elect(1);
    propose(1, "a");
    deliver_all();
    isolate(1, true);
    assert_int_equal(conf(1, CN_RAFT_CONF_REMOVE, 1), 0);
    drop_all(); /* the entry is on 1's disk only */
    assert_int_equal(status(1).conf.n_voters, 1);
    assert_int_equal(status(1).conf.voters[0], 2);
    assert_int_equal(status(2).conf.n_voters, 2);
    crash(1);
    restart(1);
    isolate(1, false);
    /* 2 cannot win: 1's log is ahead of its own */
    age_lease(2);
    for (unsigned i = 0; i < 3 * T; i++) {
        tick(2, 1);
        deliver_all();
    }
    assert_true(status(2).role != CN_RAFT_LEADER);
    /* 1, out of its latest configuration but needed by the old one, campaigns; 2 elects it (its
     * own vote does not count), it commits its removal and steps down, and 2 leads alone */
    for (unsigned i = 0; i < 6 * T && !status(1).removed; i++) {
        tick(1, 1);
        tick(2, 1);
        deliver_all();
    }
    assert_true(status(1).removed);
    assert_int_equal(status(2).conf.n_voters, 1);
    for (unsigned i = 0; i < 4 * T && status(2).role != CN_RAFT_LEADER; i++) {
        tick(2, 1);
        deliver_all();
    }
    assert_int_equal(status(2).role, CN_RAFT_LEADER);
    propose(2, "b");
    deliver_all();
    assert_int_equal(node(2)->sm_count, 2);
    teardown();
}

/* A member that joins through an entry the current leader does not have (an earlier leader
 * appended it and lost leadership before replicating it) is not in that leader's configuration,
 * but it was never removed: the leader must not tell it so, or it ends for good while a later
 * leader may still commit its addition. Before the fix it was told. */
static void membership_joiner_not_told_removed(void **state)
{
    setup_n(4, 3);
    start_all();
    elect(1);
    propose(1, "a");
    deliver_all();
    isolate(1, true);
    assert_int_equal(conf(1, CN_RAFT_CONF_ADD_LEARNER, 4), 0);
    drop_all(); /* only 1 has it */
    age_lease(2);
    age_lease(3);
    elect(2);
    unsigned told = F.sent[CN_RAFT_MSG_REMOVED];
    struct cn_raft_msg m = {
        .type = CN_RAFT_MSG_APP_RESP, .to = 2, .from = 4, .term = status(2).term, .index = 0};
    assert_int_equal(cn_raft_step(node(2)->r, &m), 0);
    handle_ready(node(2));
    assert_int_equal(F.sent[CN_RAFT_MSG_REMOVED], told);
    assert_false(status(4).removed);
    /* a member whose removal 2 committed is told */
    isolate(1, false);
    deliver_all();
    assert_int_equal(conf(2, CN_RAFT_CONF_REMOVE, 3), 0);
    for (unsigned i = 0; i < 3; i++) { /* heartbeats probe 1 again, which was cut off */
        tick(2, 1);
        deliver_all();
    }
    assert_true(status(2).commit == status(2).last_index);
    m.from = 3;
    m.term = status(2).term;

    assert_int_equal(cn_raft_step(node(2)->r, &m), 0);
    handle_ready(node(2));
    assert_int_equal(F.sent[CN_RAFT_MSG_REMOVED], told + 1);
    teardown();
}

/* Without pre-vote and check-quorum (the Raft paper's plain rules): member 1, cut off, campaigns
 * its term up; meanwhile the cluster replaces 2 and 3 with 4 and 5. Back, 1 asks only 2 and 3 for
 * votes (its configuration is stale) and they are gone, so its term reaches nobody; the leader's
 * appends carry a lower term. Only an answer to those appends with its term (the paper's rule)
 * makes the leader step down, after which {1, 4, 5} elect a leader that brings 1 up to date.
 * Before the fix 1 ignored the appends and stayed out for good (sim-long, seed 72011). */
static bool has_voter(uint64_t id, uint64_t voter)
{
    struct cn_raft_status st = status(id);
    for (uint32_t i = 0; i < st.conf.n_voters; i++)
        if (st.conf.voters[i] == voter) return true;
    return false;
}

static void stale_member_with_high_term_rejoins(void **state)
{
    (void)state;
    setup_bootstrap(5, 3);
    for (unsigned i = 0; i < F.n; i++) {
        F.nodes[i].cfg.pre_vote = false;
        F.nodes[i].cfg.check_quorum = false;
    }
    for (unsigned i = 0; i < F.n; i++) { /* the configuration is read at creation */
        crash(i + 1);
        restart(i + 1);
    }
    elect(2);
    propose(2, "a");
    deliver_all();
    isolate(1, true);
    for (uint64_t id = 4; id <= 5; id++) {
        assert_int_equal(conf(2, CN_RAFT_CONF_ADD_LEARNER, id), 0);
        deliver_all();
        assert_int_equal(conf(2, CN_RAFT_CONF_PROMOTE, id), 0);
        deliver_all();
    }
    /* 2 hands over to 4 and then 2 and 3 leave */
    assert_int_equal(cn_raft_transfer(node(2)->r, 4), 0);
    handle_ready(node(2));
    deliver_all();
    assert_int_equal(status(4).role, CN_RAFT_LEADER);
    assert_int_equal(conf(4, CN_RAFT_CONF_REMOVE, 2), 0);
    deliver_all();
    assert_int_equal(conf(4, CN_RAFT_CONF_REMOVE, 3), 0);
    deliver_all();
    assert_int_equal(status(4).conf.n_voters, 3);
    crash(2);
    crash(3);
    /* 1 campaigns alone, its term climbing */
    for (unsigned i = 0; i < 6 * T; i++)
        tick(1, 1);
    drop_all();
    assert_true(status(1).term > status(4).term + 2);
    isolate(1, false);
    for (unsigned i = 0; i < 20 * T && !has_voter(1, 4); i++) {
        for (uint64_t id = 1; id <= 5; id++)
            if (node(id)->r) tick(id, 1);
        deliver_all();
    }
    assert_true(has_voter(1, 4) && has_voter(1, 5) && !has_voter(1, 2)); /* 1 has the log again */
    int lead = 0;
    for (uint64_t id = 4; id <= 5; id++)
        if (status(id).role == CN_RAFT_LEADER) lead = (int)id;
    assert_true(lead != 0);
    propose((uint64_t)lead, "b");
    deliver_all();
    tick((uint64_t)lead, 1); /* the commit index reaches 1 with the next heartbeat */
    deliver_all();
    assert_int_equal(node(1)->sm_count, node((uint64_t)lead)->sm_count);
    teardown();
}

/* ---- snapshots ---------------------------------------------------------------------------------
 */

static void compact_node(uint64_t id)
{
    struct fnode *nd = node(id);
    uint64_t index = nd->applied;
    assert_int_equal(cn_raft_compact(nd->r, index), 0);
    memcpy(nd->snap_bytes, &nd->sm_hash, 8);
    memcpy(nd->snap_bytes + 8, &nd->sm_count, 8);
    memcpy(nd->snap_bytes + 16, &index, 8);
    cn_raft_snapshot_meta(nd->r, &nd->snap);
    /* drop the compacted prefix from the disk too */
    size_t drop = 0;
    while (drop < nd->n && nd->ents[drop].index <= index)
        cn_free(nd->ents[drop++].data);
    memmove(nd->ents, nd->ents + drop, (nd->n - drop) * sizeof(nd->ents[0]));
    nd->n -= drop;
}

static void snapshot_catches_up_lagging_follower(void **state)
{
    setup(3);
    elect(1);
    isolate(3, true);
    for (int i = 0; i < 20; i++)
        propose(1, "abc");
    deliver_all();
    compact_node(1);
    assert_int_equal(cn_raft_compact(node(1)->r, 5), CN_ERR_INVAL); /* already compacted */
    propose(1, "after");
    deliver_all();
    isolate(3, false);
    for (int i = 0; i < T / 2 + 1; i++) {
        tick(1, 1);
        deliver_all();
    }
    assert_int_equal(F.sent[CN_RAFT_MSG_SNAP], 1);
    assert_int_equal(node(3)->snap.index, 21);
    assert_int_equal(node(3)->sm_count, 21);
    assert_int_equal(node(3)->sm_hash, node(1)->sm_hash);
    assert_int_equal(status(3).commit, status(1).commit);
    /* survives a restart from its snapshot + log */
    crash(3);
    restart(3);
    tick(1, 1);
    deliver_all();
    assert_int_equal(node(3)->sm_hash, node(1)->sm_hash);
    teardown();
}

static void snapshot_lost_is_resent(void **state)
{
    setup(3);
    elect(1);
    isolate(3, true);
    for (int i = 0; i < 5; i++)
        propose(1, "abc");
    deliver_all();
    compact_node(1);
    isolate(3, false);
    F.drop_type = CN_RAFT_MSG_SNAP; /* every snapshot gets lost */
    for (unsigned i = 0; i < 3 * T; i++) {
        tick(1, 1);
        deliver_all();
    }
    /* resent after each election timeout in the snapshot state */
    assert_true(F.sent[CN_RAFT_MSG_SNAP] >= 2 && F.sent[CN_RAFT_MSG_SNAP] <= 4);
    assert_int_equal(node(3)->sm_count, 0);
    F.drop_type = 0;
    for (unsigned i = 0; i < 2 * T; i++) {
        tick(1, 1);
        deliver_all();
    }
    assert_int_equal(node(3)->sm_count, 5);
    teardown();
}

/* ---- codec -------------------------------------------------------------------------------------
 */

static void codec_roundtrip_and_bounds(void **state)
{
    struct cn_raft_entry ents[2] = {{3, 11, CN_RAFT_ENTRY_NORMAL, 3, "abc"},
                                    {3, 12, CN_RAFT_ENTRY_CONF, 0, NULL}};
    struct cn_raft_msg m = {0};
    m.type = CN_RAFT_MSG_APP;
    m.flags = CN_RAFT_FLAG_REJECT;
    m.to = 2;
    m.from = 1;
    m.term = 3;
    m.log_term = 2;
    m.index = 10;
    m.commit = 9;
    m.hint = 7;
    m.ctx = 1ull << 40;
    m.entries = ents;
    m.n_entries = 2;
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(&m, &b);
    struct cn_raft_msg d;
    struct cn_raft_entry *de;
    assert_int_equal(cn_raft_msg_decode(b.p, b.len, &d, &de), 0);
    assert_int_equal(d.type, m.type);
    assert_int_equal(d.flags, m.flags);
    assert_int_equal(d.ctx, m.ctx);
    assert_int_equal(d.hint, 7);
    assert_int_equal(d.n_entries, 2);
    assert_memory_equal(d.entries[0].data, "abc", 3);
    assert_int_equal(d.entries[1].type, CN_RAFT_ENTRY_CONF);
    cn_free(de);
    /* every truncation fails cleanly */
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(cn_raft_msg_decode(b.p, n, &d, &de), CN_ERR_CORRUPT);
    b.p[0] = 9;
    assert_int_equal(cn_raft_msg_decode(b.p, b.len, &d, &de), CN_ERR_VERSION);
    cn_buf_reset(&b);
    /* a snapshot message */
    struct cn_raft_msg s = {0};
    s.type = CN_RAFT_MSG_SNAP;
    s.to = 3;
    s.from = 1;
    s.term = 4;
    s.snap.index = 100;
    s.snap.term = 4;
    s.snap.conf.n_voters = 2;
    s.snap.conf.voters[0] = 1;
    s.snap.conf.voters[1] = 3;
    s.snap.conf.n_learners = 1;
    s.snap.conf.learners[0] = 9;
    s.snap_data = "snapshot";
    s.snap_len = 8;
    cn_raft_msg_encode(&s, &b);
    assert_int_equal(cn_raft_msg_decode(b.p, b.len, &d, &de), 0);
    assert_null(de);
    assert_int_equal(d.snap.index, 100);
    assert_int_equal(d.snap.conf.n_voters, 2);
    assert_int_equal(d.snap.conf.learners[0], 9);
    assert_memory_equal(d.snap_data, "snapshot", 8);
    cn_buf_free(&b);
    /* a huge entry count is refused before anything is allocated */
    uint8_t evil[] = {1, CN_RAFT_MSG_APP, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(cn_raft_msg_decode(evil, sizeof(evil), &d, &de), CN_ERR_CORRUPT);
    struct cn_raft_conf_change cc = {CN_RAFT_CONF_PROMOTE, 300, "ctx", 3}, cd;
    cn_raft_conf_change_encode(&cc, &b);
    assert_int_equal(cn_raft_conf_change_decode(b.p, b.len, &cd), 0);
    assert_int_equal(cd.op, CN_RAFT_CONF_PROMOTE);
    assert_int_equal(cd.id, 300);
    assert_int_equal(cd.ctx_len, 3);
    assert_memory_equal(cd.ctx, "ctx", 3);
    cn_buf_free(&b);
}

static void single_member_commits_alone(void **state)
{
    setup(1);
    elect(1);
    propose(1, "solo");
    assert_int_equal(node(1)->sm_count, 1);
    assert_int_equal(cn_raft_read_index(node(1)->r, 3), 0);
    handle_ready(node(1));
    assert_int_equal(node(1)->n_reads, 1);
    teardown();
}

/* cn_raft_propose_owned: the proposer's buffer becomes the entry's payload (the ready batch
 * points at it: no copy), it reaches the followers intact through messages that only borrow it,
 * a refused one stays the caller's, and one a new leader overwrites is freed exactly once (run
 * under ASan/LSan: a double free, a use after free or a leak fails the test). */
static void propose_owned_takes_the_buffer(void **state)
{
    setup(3);
    elect(1);
    char *p = cn_xmemdup("owned payload", 13);
    assert_int_equal(cn_raft_propose_owned(node(2)->r, p, 13, NULL, NULL), CN_ERR_NO_LEADER);
    uint64_t index = 0, term = 0;
    assert_int_equal(cn_raft_propose_owned(node(1)->r, p, 13, &index, &term), 0);
    struct cn_raft_ready rd;
    cn_raft_ready(node(1)->r, &rd);
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.entries[0].index, index);
    assert_ptr_equal(rd.entries[0].data, p); /* the very buffer, not a copy */
    handle_batch(node(1), &rd);
    deliver_all();
    tick(1, 1);
    deliver_all();
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(node(id)->applied, index);
        struct fnode *nd = node(id);
        const struct cn_raft_entry *e = &nd->ents[index - nd->snap.index - 1];
        assert_int_equal(e->len, 13);
        assert_memory_equal(e->data, "owned payload", 13);
    }
    assert_int_equal(node(2)->sm_hash, node(1)->sm_hash);

    /* too large: refused, still ours */
    char *big = cn_xmalloc(2u << 20);
    memset(big, 'b', 2u << 20);
    assert_int_equal(cn_raft_propose_owned(node(1)->r, big, 2u << 20, NULL, NULL),
                     CN_ERR_TOO_LARGE);
    cn_free(big);
    /* empty: taken and freed */
    assert_int_equal(cn_raft_propose_owned(node(1)->r, cn_xmalloc(8), 0, NULL, NULL), 0);
    deliver_all();

    /* an owned entry the cut-off leader appended is overwritten by the next leader's log */
    isolate(1, true);
    char *lost = cn_xmemdup("never committed", 15);
    assert_int_equal(cn_raft_propose_owned(node(1)->r, lost, 15, &index, NULL), 0);
    handle_ready(node(1));
    age_lease(3);
    elect(2);
    propose(2, "kept");
    deliver_all();
    isolate(1, false);
    tick(1, 1);
    deliver_all();
    tick(2, 1);
    deliver_all();
    assert_true(logs_equal(1, 2));
    struct fnode *n1 = node(1);
    const struct cn_raft_entry *now = &n1->ents[index - n1->snap.index - 1];
    assert_true(now->term == 2 && now->len == 0); /* the new leader's empty entry took its place */
    assert_int_equal(node(1)->sm_hash, node(2)->sm_hash);
    teardown();
}

static void errors_and_stale_leader(void **state)
{
    setup(3);
    /* nobody leads yet */
    assert_int_equal(cn_raft_propose(node(2)->r, "x", 1, NULL, NULL), CN_ERR_NO_LEADER);
    assert_int_equal(cn_raft_read_index(node(2)->r, 1), CN_ERR_NO_LEADER);
    assert_int_equal(cn_raft_transfer(node(2)->r, 1), CN_ERR_NO_LEADER);
    elect(1);
    assert_int_equal(cn_raft_propose(node(2)->r, "x", 1, NULL, NULL), CN_ERR_NO_LEADER);
    assert_int_equal(cn_raft_transfer(node(1)->r, 9), CN_ERR_INVAL);
    uint64_t index = 0, term = 0;
    assert_int_equal(cn_raft_propose(node(1)->r, "x", 1, &index, &term), 0);
    assert_int_equal(index, 2);
    assert_int_equal(term, 1);
    deliver_all();
    /* a malformed message is refused and changes nothing */
    struct cn_raft_msg bad = {0};
    bad.type = 200;
    bad.from = 2;
    bad.to = 1;
    assert_int_equal(cn_raft_step(node(1)->r, &bad), CN_ERR_PROTO);
    /* 1 is cut off while 2 and 3 move on; when it comes back, the first answer at the higher
     * term makes it step down, and its unreplicated entry is replaced */
    isolate(1, true);
    propose(1, "lost");
    age_lease(3);
    elect(2);
    propose(2, "kept");
    deliver_all();
    isolate(1, false);
    tick(1, 1); /* its heartbeat reaches 2 and 3, who answer with term 2 */
    deliver_all();
    assert_int_equal(status(1).role, CN_RAFT_FOLLOWER);
    assert_int_equal(status(1).term, 2);
    tick(2, 1);
    deliver_all();
    assert_true(logs_equal(1, 2));
    assert_int_equal(node(1)->sm_hash, node(2)->sm_hash);
    /* the heartbeat never advances a follower's commit past what it is known to hold */
    isolate(3, true);
    propose(2, "more");
    deliver_all();
    isolate(3, false);
    uint64_t c3 = status(3).commit;
    tick(2, 1);
    for (size_t k = 0; k < F.nq; k++)
        if (F.q[k].type == CN_RAFT_MSG_HEARTBEAT && F.q[k].to == 3) {
            struct cn_raft_msg m;
            struct cn_raft_entry *e;
            assert_int_equal(cn_raft_msg_decode(F.q[k].b.p, F.q[k].b.len, &m, &e), 0);
            assert_true(m.commit <= c3);
        }
    deliver_all();
    teardown();
}

int main(void)
{
    cn_log_init(); /* CAIRN_TRACE=raft traces the core */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(election_basic),
        cmocka_unit_test(election_timeout_randomised),
        cmocka_unit_test(prevote_isolated_node_keeps_term),
        cmocka_unit_test(check_quorum_steps_down),
        cmocka_unit_test(vote_rejected_for_stale_log),
        cmocka_unit_test(figure7_followers_converge),
        cmocka_unit_test(figure8_prev_term_not_committed_by_counting),
        cmocka_unit_test(proposals_batched_into_one_message),
        cmocka_unit_test(pipeline_window_and_entry_cap),
        cmocka_unit_test(inflight_bytes_and_uncommitted_bounds),
        cmocka_unit_test(follower_restart_keeps_durable_state),
        cmocka_unit_test(read_index_one_round_for_many),
        cmocka_unit_test(read_index_partitioned_old_leader_serves_nothing),
        cmocka_unit_test(read_index_waits_for_commit_in_term),
        cmocka_unit_test(transfer_catches_up_then_hands_over),
        cmocka_unit_test(transfer_gives_up_after_timeout),
        cmocka_unit_test(membership_learner_promote_remove),
        cmocka_unit_test(membership_leader_removes_itself),
        cmocka_unit_test(membership_removed_leader_finishes_its_removal),
        cmocka_unit_test(membership_joiner_not_told_removed),
        cmocka_unit_test(stale_member_with_high_term_rejoins),
        cmocka_unit_test(snapshot_catches_up_lagging_follower),
        cmocka_unit_test(snapshot_lost_is_resent),
        cmocka_unit_test(codec_roundtrip_and_bounds),
        cmocka_unit_test(propose_owned_takes_the_buffer),
        cmocka_unit_test(single_member_commits_alone),
        cmocka_unit_test(leader_unreachable_drops_the_lease),
        cmocka_unit_test(errors_and_stale_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
