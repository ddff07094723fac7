/* sim: one simulated cluster run (see sim.h). Virtual time in milliseconds; an event heap orders
 * ticks, message deliveries, fsync completions, crashes, restarts, client requests and network
 * changes by (time, sequence), so a seed fixes the whole run.
 *
 * A member handles its ready batch the way src/node does: write the batch, wait for the fsync
 * (a random virtual delay), then send, apply, serve reads and advance; inputs that arrive
 * meanwhile wait in an inbox. A crash while the fsync is pending keeps only a random prefix of
 * the batch's records (snapshot, entries..., hard state), as a torn write would. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "sim.h"
#include "store/store.h"

#define TICK_MS     10
#define ELECTION_T  10 /* ticks: election timeout in [100, 200) ms */
#define LIVENESS_MS (10 * ELECTION_T * TICK_MS)

enum ev_type {
    EV_TICK,
    EV_DELIVER,
    EV_FSYNC,
    EV_CRASH,
    EV_RESTART,
    EV_CLIENT,
    EV_NET,
    EV_HEAL,
    EV_HUNT, /* the nemesis strikes a new leader: crash it or cut it off */
};

struct ev {
    uint64_t time, seq;
    int type;
    int member; /* index */
    unsigned incarnation;
    struct cn_buf msg;
};

struct pending_prop {
    int member;
    unsigned incarnation;
    uint64_t index, term, id;
};

struct pending_read {
    int member;
    unsigned incarnation;
    uint64_t ctx, watermark;
};

struct snap_hash {
    uint64_t index, hash;
};

struct sim {
    struct sim_opts o;
    uint64_t rng;
    uint64_t rng2; /* the unreachable notices' own generator */
    uint64_t now, seq;
    struct ev *heap;
    size_t n_heap, cap_heap;
    struct sim_member m[SIM_MAX];
    int n;
    struct sim_check *check;
    bool cut[SIM_MAX][SIM_MAX];
    unsigned drop_pct, dup_pct, delay_max, long_delay_pct;
    unsigned compact_every;
    bool healed, faults_off;
    bool storm;    /* frequent crashes and network changes: many short-lived leaders */
    bool reconfig; /* membership changes during the faults */
    struct cn_raft_conf initial;
    struct cn_raft_config cfg_template;
    uint64_t next_prop, next_ctx;
    struct pending_prop *props;
    size_t n_props, cap_props;
    struct pending_read *reads;
    size_t n_reads, cap_reads;
    struct snap_hash *snaps;
    size_t n_snaps, cap_snaps;
    bool failed;
    char why[512];
    uint64_t *ack_index; /* by proposal id: index it was acknowledged at, 0 if not (yet) */
    size_t n_ack_index;
    /* stats */
    uint64_t n_events, n_msgs, n_acked, n_reads_served, n_crashes, n_snap_installs;
};

/* ---- utilities --------------------------------------------------------------------------- */

static uint64_t rnd(struct sim *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rnd2(struct sim *s)
{
    uint64_t z = (s->rng2 += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rndn(struct sim *s, uint64_t n)
{
    return n ? rnd(s) % n : 0;
}

static bool chance(struct sim *s, unsigned pct)
{
    return rndn(s, 100) < pct;
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
    if (!s->o.trace) return;
    va_list ap;
    va_start(ap, fmt);
    printf("t=%06" PRIu64 " ", s->now);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void fail(struct sim *s, const char *why)
{
    if (s->failed) return;
    s->failed = true;
    snprintf(s->why, sizeof(s->why), "%s", why);
    trace(s, "FAILED: %s", why);
}

/* ---- event heap -------------------------------------------------------------------------- */

static bool evLess(const struct ev *a, const struct ev *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void push(struct sim *s, uint64_t delay, int type, int member, struct cn_buf *msg)
{
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
        s->heap = cn_xrealloc(s->heap, s->cap_heap * sizeof(*s->heap));
    }
    struct ev e = {s->now + delay, s->seq++, type, member, 0, CN_BUF_INIT};
    if (member >= 0) e.incarnation = s->m[member].incarnation;
    if (msg) {
        e.msg = *msg;
        cn_buf_init(msg);
    }
    size_t i = s->n_heap++;
    while (i > 0 && evLess(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static struct ev pop(struct sim *s)
{
    struct ev top = s->heap[0];
    struct ev last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct ev *cur = (m == i) ? &last : &s->heap[m];
        if (l < s->n_heap && evLess(&s->heap[l], cur)) {
            m = l;
            cur = &s->heap[l];
        }
        if (r < s->n_heap && evLess(&s->heap[r], cur)) m = r;
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n_heap > 0) s->heap[i] = last;
    return top;
}

/* ---- disk -------------------------------------------------------------------------------- */

static uint64_t entryChain(uint64_t prev, const struct cn_raft_entry *e)
{
    uint64_t h = sim_hash(prev ^ 0x5bd1e995, &e->term, sizeof(e->term));
    h = sim_hash(h, &e->index, sizeof(e->index));
    h = sim_hash(h, &e->type, 1);
    return sim_hash(h, e->data, e->len);
}

static uint64_t diskChainBefore(struct sim *s, const struct sim_disk *d, uint64_t index)
{
    if (index == d->snap.index + 1) return check_chain_at(s->check, d->snap.index);
    return d->chain[index - d->snap.index - 2];
}

static void diskTruncate(struct sim_disk *d, size_t n)
{
    for (size_t i = n; i < d->n; i++)
        cn_free(d->ents[i].data);
    d->n = n;
}

static void diskAppend(struct sim *s, struct sim_member *m, const struct cn_raft_entry *e)
{
    struct sim_disk *d = &m->disk;
    uint64_t first = d->snap.index + 1;
    if (e->index < first || e->index > first + d->n) {
        fail(s, "raft handed out an entry that does not follow the persisted log");
        return;
    }
    diskTruncate(d, (size_t)(e->index - first));
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->ents = cn_xrealloc(d->ents, d->cap * sizeof(*d->ents));
        d->chain = cn_xrealloc(d->chain, d->cap * sizeof(*d->chain));
    }
    d->ents[d->n] = *e;
    d->ents[d->n].data = e->len ? cn_xmemdup(e->data, e->len) : NULL;
    d->chain[d->n] = entryChain(diskChainBefore(s, d, e->index), e);
    char why[256];
    if (!check_persist(s->check, m->id, e, d->chain[d->n], why, sizeof(why))) fail(s, why);
    d->n++;
}

static void diskInstallSnapshot(struct sim_disk *d, const struct cn_raft_snapshot *snap)
{
    diskTruncate(d, 0);
    d->snap = snap->meta;
    cn_buf_reset(&d->snap_data);
    cn_buf_append(&d->snap_data, snap->data, snap->len);
}

static void diskFree(struct sim_disk *d)
{
    diskTruncate(d, 0);
    cn_free(d->ents);
    cn_free(d->chain);
    cn_buf_free(&d->snap_data);
}

/* ---- members ----------------------------------------------------------------------------- */

static void recordSnapHash(struct sim *s, uint64_t index, const struct cn_buf *b)
{
    uint64_t h = sim_hash(0, b->p, b->len);
    for (size_t i = 0; i < s->n_snaps; i++)
        if (s->snaps[i].index == index) {
            if (s->snaps[i].hash != h) fail(s, "two members' stores differ at the same index");
            return;
        }
    if (s->n_snaps == s->cap_snaps) {
        s->cap_snaps = s->cap_snaps ? s->cap_snaps * 2 : 64;
        s->snaps = cn_xrealloc(s->snaps, s->cap_snaps * sizeof(*s->snaps));
    }
    s->snaps[s->n_snaps].index = index;
    s->snaps[s->n_snaps].hash = h;
    s->n_snaps++;
}

static void startMember(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    m->cfg.seed = s->o.seed * 31 + m->incarnation;
    m->r = cn_raft_new(&m->cfg);
    int rc = cn_raft_load(m->r, &m->disk.hs, &m->disk.snap, m->disk.ents, m->disk.n);
    if (rc != 0) {
        fail(s, "cn_raft_load refused the member's own disk");
        return;
    }
    /* a founder of a cluster whose configuration lives in the log, with nothing on disk yet */
    bool empty = m->disk.n == 0 && m->disk.snap.index == 0 && m->disk.hs.term == 0;
    if (s->reconfig && m->founder && empty && cn_raft_bootstrap(m->r, &s->initial) != 0)
        fail(s, "bootstrap refused");
    m->store = cn_store_new();
    if (m->disk.snap_data.len > 0 &&
        cn_store_snapshot_load(m->store, m->disk.snap_data.p, m->disk.snap_data.len) != 0)
        fail(s, "store snapshot does not load");
    m->applied = m->disk.snap.index;
    m->applied_chain = check_chain_at(s->check, m->applied);
    m->up = true;
    m->fsync_pending = false;
    m->last_role = CN_RAFT_FOLLOWER;
    m->last_term = 0;
}

static void sendMsgs(struct sim *s, struct sim_member *m, const struct cn_raft_ready *rd)
{
    for (size_t k = 0; k < rd->n_msgs; k++) {
        struct cn_raft_msg msg = rd->msgs[k];
        int to = (int)msg.to - 1;
        if (to < 0 || to >= s->n) continue; /* not started: nobody listens there */
        if (msg.type == CN_RAFT_MSG_SNAP) {
            if (m->disk.snap.index != msg.snap.index) {
                fail(s, "leader asked to send a snapshot it did not save");
                continue;
            }
            msg.snap_data = m->disk.snap_data.p;
            msg.snap_len = m->disk.snap_data.len;
        }
        s->n_msgs++;
        if (s->cut[m->id - 1][to] || (!s->faults_off && chance(s, s->drop_pct))) {
            trace(s, "drop %llu->%d %s", (unsigned long long)m->id, to + 1,
                  cn_raft_msg_type_name(msg.type));
            continue;
        }
        int copies = (!s->faults_off && chance(s, s->dup_pct)) ? 2 : 1;
        for (int c = 0; c < copies; c++) {
            struct cn_buf b = CN_BUF_INIT;
            cn_raft_msg_encode(&msg, &b);
            uint64_t delay = 1 + rndn(s, s->delay_max);
            if (!s->faults_off && chance(s, s->long_delay_pct)) delay += rndn(s, 300);
            push(s, delay, EV_DELIVER, to, &b);
        }
    }
}

static void ackProposals(struct sim *s, struct sim_member *m, const struct cn_raft_entry *e)
{
    for (size_t k = 0; k < s->n_props;) {
        struct pending_prop *p = &s->props[k];
        if (&s->m[p->member] == m && p->incarnation == m->incarnation && p->index == e->index) {
            if (p->term == e->term) {
                check_ack(s->check, p->id, p->index);
                s->n_acked++;
                if (p->id >= s->n_ack_index) {
                    size_t k2 = s->n_ack_index ? s->n_ack_index : 1024;
                    while (k2 <= p->id)
                        k2 *= 2;
                    s->ack_index = cn_xrealloc(s->ack_index, k2 * sizeof(uint64_t));
                    memset(s->ack_index + s->n_ack_index, 0,
                           (k2 - s->n_ack_index) * sizeof(uint64_t));
                    s->n_ack_index = k2;
                }
                s->ack_index[p->id] = p->index;
                trace(s, "ack proposal %llu at index %llu", (unsigned long long)p->id,
                      (unsigned long long)p->index);
            }
            s->props[k] = s->props[--s->n_props];
            continue;
        }
        k++;
    }
}

static void applyEntry(struct sim *s, struct sim_member *m, const struct cn_raft_entry *e)
{
    if (e->index != m->applied + 1) {
        fail(s, "committed entries out of order");
        return;
    }
    uint64_t chain = entryChain(m->applied_chain, e);
    struct cn_raft_status st;
    cn_raft_status(m->r, &st);
    char why[256];
    if (!check_apply(s->check, m->id, e, chain, st.term, why, sizeof(why))) {
        fail(s, why);
        return;
    }
    m->applied = e->index;
    m->applied_chain = chain;
    if (e->type == CN_RAFT_ENTRY_NORMAL && e->len >= 8) {
        uint64_t id;
        memcpy(&id, e->data, 8);
        check_set_proposal(s->check, e->index, id);
        struct cn_store_result res;
        if (cn_store_apply(m->store, (const char *)e->data + 8, e->len - 8, &res) != 0)
            fail(s, "store rejected a command");
    }
    ackProposals(s, m, e);
}

static void serveReads(struct sim *s, struct sim_member *m, const struct cn_raft_ready *rd)
{
    for (size_t k = 0; k < rd->n_reads; k++) {
        const struct cn_raft_read *rr = &rd->reads[k];
        for (size_t j = 0; j < s->n_reads; j++) {
            struct pending_read *p = &s->reads[j];
            if (p->ctx != rr->ctx) continue;
            if (m->applied < rr->index) fail(s, "read served before its index was applied");
            if (rr->index < p->watermark) {
                char why[256];
                snprintf(why, sizeof(why),
                         "linearizability violated: read %llu on member %llu at index %llu misses "
                         "a write acknowledged at index %llu before it started",
                         (unsigned long long)p->ctx, (unsigned long long)m->id,
                         (unsigned long long)rr->index, (unsigned long long)p->watermark);
                fail(s, why);
            }
            s->n_reads_served++;
            trace(s, "read %llu served by %llu at index %llu", (unsigned long long)p->ctx,
                  (unsigned long long)m->id, (unsigned long long)rr->index);
            s->reads[j] = s->reads[--s->n_reads];
            break;
        }
    }
}

static void maybeCompact(struct sim *s, struct sim_member *m)
{
    if (m->applied < m->disk.snap.index + s->compact_every) return;
    struct cn_buf b = CN_BUF_INIT;
    cn_store_snapshot_save(m->store, &b);
    recordSnapHash(s, m->applied, &b);
    if (cn_raft_compact(m->r, m->applied) != 0) {
        fail(s, "compact refused at the applied index");
        cn_buf_free(&b);
        return;
    }
    struct sim_disk *d = &m->disk;
    uint64_t index = m->applied;
    size_t drop = (size_t)(index - d->snap.index);
    if (drop > d->n) drop = d->n;
    for (size_t i = 0; i < drop; i++)
        cn_free(d->ents[i].data);
    memmove(d->ents, d->ents + drop, (d->n - drop) * sizeof(*d->ents));
    memmove(d->chain, d->chain + drop, (d->n - drop) * sizeof(*d->chain));
    d->n -= drop;
    cn_raft_snapshot_meta(m->r, &d->snap);
    cn_buf_free(&d->snap_data);
    d->snap_data = b;
    trace(s, "member %llu compacted to %llu", (unsigned long long)m->id, (unsigned long long)index);
}

static void pump(struct sim *s, int i);

/* Starts member n+1 with an empty disk: it learns everything from the leader. */
static void startJoiner(struct sim *s)
{
    int i = s->n++;
    struct sim_member *m = &s->m[i];
    m->id = (uint64_t)i + 1;
    m->cfg = s->cfg_template;
    m->cfg.id = m->id;
    startMember(s, i);
    push(s, rndn(s, TICK_MS), EV_TICK, i, NULL);
    trace(s, "member %llu starts empty, to join", (unsigned long long)m->id);
}

/* Leader-side choice of the next membership change (one at a time; the core refuses more). */
static uint64_t pickChange(struct sim *s, int i)
{
    struct cn_raft_status st;
    cn_raft_status(s->m[i].r, &st);
    if (st.role != CN_RAFT_LEADER) return 0;
    if (st.conf.n_learners > 0) return CN_RAFT_CONF_PROMOTE * 1000 + st.conf.learners[0];
    if (s->n < SIM_MAX && (st.conf.n_voters <= 3 || chance(s, 50)))
        return CN_RAFT_CONF_ADD_LEARNER * 1000 + (uint64_t)s->n + 1;
    if (st.conf.n_voters > 3)
        return CN_RAFT_CONF_REMOVE * 1000 + st.conf.voters[rndn(s, st.conf.n_voters)];
    return 0;
}

static void processItem(struct sim *s, int i, struct sim_inbox_item *it)
{
    struct sim_member *m = &s->m[i];
    switch (it->kind) {
    case 0:
        cn_raft_tick(m->r);
        break;
    case 1: {
        struct cn_raft_msg msg;
        struct cn_raft_entry *ents;
        if (cn_raft_msg_decode(it->msg.p, it->msg.len, &msg, &ents) != 0) {
            fail(s, "message does not decode");
            break;
        }
        trace(s, "deliver %llu->%llu %s term=%llu index=%llu log_term=%llu commit=%llu n=%zu%s",
              (unsigned long long)msg.from, (unsigned long long)msg.to,
              cn_raft_msg_type_name(msg.type), (unsigned long long)msg.term,
              (unsigned long long)msg.index, (unsigned long long)msg.log_term,
              (unsigned long long)msg.commit, msg.n_entries,
              (msg.flags & CN_RAFT_FLAG_REJECT) ? " reject" : "");
        if (cn_raft_step(m->r, &msg) != 0) fail(s, "step refused a well-formed message");
        cn_free(ents);
        break;
    }
    case 2: {
        uint8_t buf[256];
        uint64_t id = it->arg;
        memcpy(buf, &id, 8);
        struct cn_store_cmd c;
        memset(&c, 0, sizeof(c));
        char key[32], val[32];
        snprintf(key, sizeof(key), "/k%llu", (unsigned long long)(id % 7));
        snprintf(val, sizeof(val), "v%llu", (unsigned long long)id);
        c.ns = CN_NS_KEYS;
        c.op = (id % 5 == 0) ? CN_OP_DELETE : CN_OP_SET;
        c.key = cn_str_c(key);
        c.value = cn_str_c(val);
        c.now_ns = (int64_t)s->now * 1000000;
        struct cn_buf b = CN_BUF_INIT;
        cn_buf_append(&b, buf, 8);
        cn_store_cmd_encode(&c, &b);
        uint64_t index, term;
        int rc = cn_raft_propose(m->r, b.p, b.len, &index, &term);
        cn_buf_free(&b);
        if (rc == 0) {
            if (s->n_props == s->cap_props) {
                s->cap_props = s->cap_props ? s->cap_props * 2 : 64;
                s->props = cn_xrealloc(s->props, s->cap_props * sizeof(*s->props));
            }
            struct pending_prop p = {i, m->incarnation, index, term, id};
            s->props[s->n_props++] = p;
            trace(s, "propose %llu on %llu: index=%llu term=%llu", (unsigned long long)id,
                  (unsigned long long)m->id, (unsigned long long)index, (unsigned long long)term);
        }
        break;
    }
    case 3: {
        uint64_t watermark = check_ack_watermark(s->check);
        if (cn_raft_read_index(m->r, it->arg) == 0) {
            if (s->n_reads == s->cap_reads) {
                s->cap_reads = s->cap_reads ? s->cap_reads * 2 : 64;
                s->reads = cn_xrealloc(s->reads, s->cap_reads * sizeof(*s->reads));
            }
            struct pending_read p = {i, m->incarnation, it->arg, watermark};
            s->reads[s->n_reads++] = p;
            trace(s, "read %llu on %llu (must see index %llu)", (unsigned long long)it->arg,
                  (unsigned long long)m->id, (unsigned long long)watermark);
        }
        break;
    }
    case 5: {
        struct cn_raft_conf_change cc = {(uint8_t)(it->arg / 1000), it->arg % 1000, NULL, 0};
        if (cn_raft_propose_conf(m->r, &cc, NULL, NULL) != 0) break;
        static const char *ops[] = {"?", "add learner", "promote", "remove", "add voter"};
        trace(s, "membership: %s %llu proposed on %llu", ops[cc.op < 5 ? cc.op : 0],
              (unsigned long long)cc.id, (unsigned long long)m->id);
        if (cc.op == CN_RAFT_CONF_ADD_LEARNER && (int)cc.id == s->n + 1) startJoiner(s);
        break;
    }
    case 6:
        trace(s, "%llu told the connection from %llu closed", (unsigned long long)m->id,
              (unsigned long long)it->arg);
        cn_raft_leader_unreachable(m->r, it->arg);
        break;
    case 4:
        if (cn_raft_transfer(m->r, it->arg) == 0)
            trace(s, "transfer %llu -> %llu", (unsigned long long)m->id,
                  (unsigned long long)it->arg);
        break;
    }
    cn_buf_free(&it->msg);
}

static void input(struct sim *s, int i, int kind, struct cn_buf *msg, uint64_t arg)
{
    struct sim_member *m = &s->m[i];
    if (!m->up) {
        if (msg) cn_buf_free(msg);
        return;
    }
    struct sim_inbox_item it = {kind, CN_BUF_INIT, arg};
    if (msg) {
        it.msg = *msg;
        cn_buf_init(msg);
    }
    if (m->fsync_pending) {
        if (m->n_inbox == m->cap_inbox) {
            m->cap_inbox = m->cap_inbox ? m->cap_inbox * 2 : 16;
            m->inbox = cn_xrealloc(m->inbox, m->cap_inbox * sizeof(*m->inbox));
        }
        m->inbox[m->n_inbox++] = it;
        return;
    }
    processItem(s, i, &it);
    pump(s, i);
}

/* Takes the next batch, if any, and starts its "fsync". */
static void pump(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    if (!m->up || m->fsync_pending || !cn_raft_has_ready(m->r)) return;
    m->fsync_pending = true;
    /* fsync latency: usually a few ms, sometimes a spike */
    uint64_t delay = (!s->faults_off && chance(s, 10)) ? 20 + rndn(s, 60) : rndn(s, 4);
    push(s, delay, EV_FSYNC, i, NULL);
}

static void onFsync(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    struct cn_raft_ready rd;
    cn_raft_ready(m->r, &rd);
    if (rd.snapshot) {
        diskInstallSnapshot(&m->disk, rd.snapshot);
        if (rd.snapshot->meta.index > check_committed_len(s->check))
            fail(s, "snapshot past the committed sequence");
        if (cn_store_snapshot_load(m->store, rd.snapshot->data, rd.snapshot->len) != 0)
            fail(s, "received store snapshot does not load");
        m->applied = rd.snapshot->meta.index;
        m->applied_chain = check_chain_at(s->check, m->applied);
        s->n_snap_installs++;
        trace(s, "member %llu installed snapshot %llu", (unsigned long long)m->id,
              (unsigned long long)m->applied);
    }
    for (size_t k = 0; k < rd.n_entries && !s->failed; k++)
        diskAppend(s, m, &rd.entries[k]);
    if (rd.has_hard_state) m->disk.hs = rd.hard_state;
    sendMsgs(s, m, &rd);
    for (size_t k = 0; k < rd.n_committed && !s->failed; k++)
        applyEntry(s, m, &rd.committed[k]);
    serveReads(s, m, &rd);
    cn_raft_advance(m->r, &rd);
    m->fsync_pending = false;
    maybeCompact(s, m);
    /* inputs that waited for the batch */
    for (size_t k = 0; k < m->n_inbox; k++)
        processItem(s, i, &m->inbox[k]);
    m->n_inbox = 0;
    pump(s, i);
}

static void crash(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    if (!m->up) return;
    s->n_crashes++;
    const char *torn = "";
    if (m->fsync_pending) {
        /* a torn write: a random prefix of the batch's records reached the disk */
        struct cn_raft_ready rd;
        cn_raft_ready(m->r, &rd);
        bool go = true;
        if (rd.snapshot) {
            go = chance(s, 50);
            if (go) diskInstallSnapshot(&m->disk, rd.snapshot);
        }
        size_t keep = go ? (size_t)rndn(s, rd.n_entries + 1) : 0;
        for (size_t k = 0; k < keep; k++)
            diskAppend(s, m, &rd.entries[k]);
        if (go && keep == rd.n_entries && rd.has_hard_state && chance(s, 50))
            m->disk.hs = rd.hard_state;
        torn = " (batch torn)";
    }
    trace(s, "CRASH member %llu%s", (unsigned long long)m->id, torn);
    cn_raft_free(m->r);
    m->r = NULL;
    cn_store_free(m->store);
    m->store = NULL;
    m->up = false;
    m->fsync_pending = false;
    for (size_t k = 0; k < m->n_inbox; k++)
        cn_buf_free(&m->inbox[k].msg);
    m->n_inbox = 0;
    m->incarnation++;
    if (s->o.unreachable) {
        /* its sockets close: every other member's transport notices */
        for (int k = 0; k < s->n; k++)
            if (k != i && s->m[k].up) input(s, k, 6, NULL, m->id);
    }
}

/* ---- checks after every event --------------------------------------------------------------- */

static void checkRoles(struct sim *s)
{
    char why[256];
    for (int i = 0; i < s->n; i++) {
        struct sim_member *m = &s->m[i];
        if (!m->up) continue;
        struct cn_raft_status st;
        cn_raft_status(m->r, &st);
        if (st.removed && !m->fsync_pending) {
            trace(s, "member %llu learned it was removed: shuts down", (unsigned long long)m->id);
            crash(s, i);
            m->gone = true;
            continue;
        }
        if (st.role == CN_RAFT_LEADER) {
            if (!check_leader(s->check, m->id, st.term, why, sizeof(why))) fail(s, why);
            if (m->last_role != CN_RAFT_LEADER || m->last_term != st.term) {
                trace(s, "member %llu is leader of term %llu", (unsigned long long)m->id,
                      (unsigned long long)st.term);
                /* short-lived leaders leave many terms' uncommitted entries behind: the
                 * ground the Figure 8 case grows on */
                if (s->storm && !s->faults_off && chance(s, 80))
                    push(s, rndn(s, 200), EV_HUNT, i, NULL);
                if (!check_leader_log(s->check, m->id, st.term, &m->disk, why, sizeof(why)))
                    fail(s, why);
            }
        } else if (m->last_role == CN_RAFT_LEADER) {
            trace(s, "member %llu is no longer leader (term %llu)", (unsigned long long)m->id,
                  (unsigned long long)st.term);
        }
        m->last_role = st.role;
        m->last_term = st.term;
    }
}

/* ---- faults and clients ---------------------------------------------------------------------- */

static int leaderOf(struct sim *s)
{
    int best = -1;
    uint64_t best_term = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->m[i].up) continue;
        struct cn_raft_status st;
        cn_raft_status(s->m[i].r, &st);
        if (st.role == CN_RAFT_LEADER && st.term >= best_term) {
            best = i;
            best_term = st.term;
        }
    }
    return best;
}

static void client(struct sim *s)
{
    int i = (int)rndn(s, (uint64_t)s->n);
    struct sim_member *m = &s->m[i];
    if (m->up) {
        /* a client talks to any member; one that is not the leader forwards to its leader */
        struct cn_raft_status st;
        cn_raft_status(m->r, &st);
        int target = i;
        if (st.role != CN_RAFT_LEADER && st.lead != 0 && s->m[st.lead - 1].up)
            target = (int)st.lead - 1;
        unsigned what = (unsigned)rndn(s, 100);
        if (what < 65) {
            input(s, target, 2, NULL, ++s->next_prop);
        } else if (what < 97) {
            input(s, i, 3, NULL, ++s->next_ctx);
        } else if (!s->faults_off) {
            input(s, target, 4, NULL, 1 + rndn(s, (uint64_t)s->n));
        }
        if (s->reconfig && !s->faults_off && chance(s, 4) && s->m[target].up) {
            uint64_t change = pickChange(s, target);
            if (change != 0) input(s, target, 5, NULL, change);
        }
    }
    if (!s->healed) push(s, 1 + rndn(s, 15), EV_CLIENT, -1, NULL);
}

static void netChange(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    unsigned kind = (unsigned)rndn(s, 6);
    if (kind == 1 || kind == 2) {
        /* a split into two sides */
        uint64_t side = rnd(s);
        for (int a = 0; a < s->n; a++)
            for (int b = 0; b < s->n; b++)
                if (((side >> a) & 1) != ((side >> b) & 1)) s->cut[a][b] = true;
        trace(s, "net: partition mask=%llx", (unsigned long long)(side & ((1u << s->n) - 1)));
    } else if (kind == 3) {
        /* one-way cuts */
        for (int k = 0; k < 3; k++) {
            int a = (int)rndn(s, (uint64_t)s->n), b = (int)rndn(s, (uint64_t)s->n);
            s->cut[a][b] = true;
            trace(s, "net: one-way cut %d->%d", a + 1, b + 1);
        }
    } else if (kind == 4) {
        /* isolate one member */
        int a = (int)rndn(s, (uint64_t)s->n);
        for (int b = 0; b < s->n; b++)
            s->cut[a][b] = s->cut[b][a] = true;
        trace(s, "net: isolate %d", a + 1);
    } else {
        trace(s, "net: whole");
    }
    if (s->o.unreachable && rnd2(s) % 3 == 0) {
        /* a false notice: a connection reset while the member lives (its leader may be fine) */
        int a = (int)(rnd2(s) % (uint64_t)s->n), b = (int)(rnd2(s) % (uint64_t)s->n);
        if (a != b && s->m[a].up) input(s, a, 6, NULL, s->m[b].id);
    }
    s->drop_pct = (unsigned)rndn(s, 15);
    s->dup_pct = (unsigned)rndn(s, 8);
    if (!s->healed) push(s, s->storm ? 20 + rndn(s, 150) : 100 + rndn(s, 600), EV_NET, -1, NULL);
}

static void heal(struct sim *s)
{
    s->healed = true;
    s->faults_off = true;
    memset(s->cut, 0, sizeof(s->cut));
    s->drop_pct = s->dup_pct = 0;
    s->long_delay_pct = 0;
    trace(s, "HEAL: network whole, crashed members restart");
    for (int i = 0; i < s->n; i++)
        if (!s->m[i].up) push(s, 0, EV_RESTART, i, NULL);
}

/* ---- the run ------------------------------------------------------------------------------------
 */

static void handle(struct sim *s, struct ev *e)
{
    struct sim_member *m = e->member >= 0 ? &s->m[e->member] : NULL;
    switch (e->type) {
    case EV_TICK:
        if (m->up) input(s, e->member, 0, NULL, 0);
        push(s, TICK_MS, EV_TICK, e->member, NULL);
        break;
    case EV_DELIVER:
        input(s, e->member, 1, &e->msg, 0);
        break;
    case EV_FSYNC:
        if (m->up && e->incarnation == m->incarnation && m->fsync_pending) onFsync(s, e->member);
        break;
    case EV_CRASH:
        if (!s->faults_off) {
            crash(s, e->member);
            push(s, s->storm ? 10 + rndn(s, 150) : 50 + rndn(s, 500), EV_RESTART, e->member, NULL);
        }
        if (!s->healed)
            push(s, s->storm ? 20 + rndn(s, 200) : 200 + rndn(s, 2000), EV_CRASH,
                 (int)rndn(s, (uint64_t)s->n), NULL);
        break;
    case EV_RESTART:
        if (!m->up && !m->gone) {
            trace(s, "RESTART member %llu", (unsigned long long)m->id);
            startMember(s, e->member);
            pump(s, e->member);
        }
        break;
    case EV_CLIENT:
        client(s);
        break;
    case EV_NET:
        if (!s->healed) netChange(s);
        break;
    case EV_HEAL:
        heal(s);
        break;
    case EV_HUNT:
        if (s->faults_off || !m->up || e->incarnation != m->incarnation) break;
        if (chance(s, 50)) {
            crash(s, e->member);
            push(s, 10 + rndn(s, 150), EV_RESTART, e->member, NULL);
        } else {
            for (int b = 0; b < s->n; b++)
                s->cut[e->member][b] = s->cut[b][e->member] = true;
            trace(s, "net: isolate leader %d", e->member + 1);
        }
        break;
    }
    cn_buf_free(&e->msg);
}

static bool step(struct sim *s)
{
    if (s->n_heap == 0) return false;
    struct ev e = pop(s);
    s->now = e.time;
    s->n_events++;
    handle(s, &e);
    if (!s->failed) checkRoles(s);
    return !s->failed;
}

static void runUntil(struct sim *s, uint64_t t)
{
    while (!s->failed && s->n_heap > 0 && s->heap[0].time <= t)
        step(s);
    if (s->now < t) s->now = t;
}

/* A leader that a quorum of its voters follows in its term (a stale leader that has not
 * noticed yet does not count), or -1. */
static int stableLeader(struct sim *s)
{
    int lead = leaderOf(s);
    if (lead < 0) return -1;
    struct cn_raft_status ls;
    cn_raft_status(s->m[lead].r, &ls);
    uint32_t with = 0;
    for (uint32_t k = 0; k < ls.conf.n_voters; k++) {
        int i = (int)ls.conf.voters[k] - 1;
        if (i < 0 || i >= s->n || !s->m[i].up) continue;
        struct cn_raft_status st;
        cn_raft_status(s->m[i].r, &st);
        if (st.term == ls.term && st.lead == ls.id) with++;
    }
    return with >= ls.conf.n_voters / 2 + 1 ? lead : -1;
}

/* Members of the leader's configuration (all started members without a leader). */
static bool isMember(struct sim *s, int i)
{
    int lead = leaderOf(s);
    if (lead < 0) return true;
    struct cn_raft_status st;
    cn_raft_status(s->m[lead].r, &st);
    uint64_t id = (uint64_t)i + 1;
    for (uint32_t k = 0; k < st.conf.n_voters; k++)
        if (st.conf.voters[k] == id) return true;
    for (uint32_t k = 0; k < st.conf.n_learners; k++)
        if (st.conf.learners[k] == id) return true;
    return false;
}

static bool allApplied(struct sim *s, uint64_t index)
{
    for (int i = 0; i < s->n; i++)
        if (isMember(s, i) && (!s->m[i].up || s->m[i].applied < index)) return false;
    return true;
}

static uint64_t ackedAt(struct sim *s, uint64_t id)
{
    return id < s->n_ack_index ? s->ack_index[id] : 0;
}

static bool propPending(struct sim *s, uint64_t id)
{
    /* pending while its proposer is up and still the leader of the term it was proposed in
     * (the node fails a client's pending writes when it loses leadership, as etcd does) */
    for (size_t k = 0; k < s->n_props; k++) {
        const struct pending_prop *p = &s->props[k];
        if (p->id != id) continue;
        const struct sim_member *m = &s->m[p->member];
        if (!m->up || m->incarnation != p->incarnation) return false;
        struct cn_raft_status st;
        cn_raft_status(m->r, &st);
        return st.role == CN_RAFT_LEADER && st.term == p->term;
    }
    return false;
}

/* Liveness: after healing, a leader within 10 election timeouts, then every proposal commits. */
static void liveness(struct sim *s)
{
    uint64_t healed_at = s->now;
    /* crashed members restart at heal time; give them 10 election timeouts from there */
    uint64_t deadline = healed_at + LIVENESS_MS;
    int lead = -1;
    while (!s->failed && s->now < deadline) {
        runUntil(s, s->now + TICK_MS);
        lead = stableLeader(s);
        if (lead >= 0) break;
    }
    if (s->failed) return;
    if (lead < 0) {
        fail(s, "liveness: no leader within 10 election timeouts after the faults healed");
        return;
    }
    trace(s, "liveness: leader %d elected %llu ms after heal", lead + 1,
          (unsigned long long)(s->now - healed_at));
    /* every later proposal commits: keep proposing to the leader; each one must be
     * acknowledged and applied everywhere before the deadline */
    uint64_t last_proposed = 0;
    /* a follower far behind on a one-entry-per-message, two-in-flight link needs one round
     * trip per entry or two to catch up: give it time, the bound is on never, not on slow */
    deadline = s->now + 20 * LIVENESS_MS;
    unsigned done = 0;
    while (!s->failed && s->now < deadline && done < 5) {
        if (last_proposed == 0 && (lead = stableLeader(s)) >= 0) {
            size_t before = s->n_props;
            input(s, lead, 2, NULL, ++s->next_prop);
            if (s->n_props > before) last_proposed = s->next_prop;
        }
        runUntil(s, s->now + 5);
        if (last_proposed == 0) continue;
        uint64_t at = ackedAt(s, last_proposed);
        if (at != 0 && allApplied(s, at)) {
            done++;
            last_proposed = 0;
        } else if (at == 0 && !propPending(s, last_proposed)) {
            /* it lost its slot to a new leader's entry (a transfer asked for before the heal can
             * still complete): the client was told it failed; it tries again */
            trace(s, "liveness: proposal %llu failed, retrying", (unsigned long long)last_proposed);
            last_proposed = 0;
        }
    }
    if (s->failed) return;
    if (done < 5) {
        fail(s, "liveness: proposals after healing did not commit on every member");
        return;
    }
    /* let the last commit index reach everyone, then compare the stores byte for byte */
    runUntil(s, s->now + 5 * TICK_MS);
    int first = -1;
    bool same = true;
    for (int i = 0; i < s->n; i++) {
        if (!isMember(s, i)) continue;
        if (first < 0) first = i;
        same = same && s->m[i].up && s->m[i].applied == s->m[first].applied;
    }
    if (same && first >= 0 && !s->failed) {
        struct cn_buf b0 = CN_BUF_INIT, bi = CN_BUF_INIT;
        cn_store_snapshot_save(s->m[first].store, &b0);
        for (int i = first + 1; i < s->n && !s->failed; i++) {
            if (!isMember(s, i)) continue;
            cn_buf_reset(&bi);
            cn_store_snapshot_save(s->m[i].store, &bi);
            if (bi.len != b0.len || memcmp(bi.p, b0.p, b0.len) != 0)
                fail(s, "stores differ after applying the same entries");
        }
        cn_buf_free(&b0);
        cn_buf_free(&bi);
    }
}

int sim_run(const struct sim_opts *o)
{
    struct sim *s = CN_NEW(struct sim);
    s->o = *o;
    s->rng = o->seed * 0x2545F4914F6CDD1Dull + 7;
    s->rng2 = o->seed * 0xD1342543DE82EF95ull + 11;
    s->check = check_new();
    s->delay_max = 1 + (unsigned)rndn(s, 20);
    s->long_delay_pct = (unsigned)rndn(s, 5);
    static const unsigned compact[] = {8, 30, 1000000};
    s->compact_every = compact[rndn(s, 3)];
    s->storm = chance(s, 40);
    /* storms favour what lets the Figure 8 case arise: 5 members (as in the paper) and old
     * entries re-replicated one message at a time */
    s->n = chance(s, s->storm ? 80 : 50) ? 5 : 3;
    size_t msg_bytes = chance(s, s->storm ? 90 : 40) ? 1 : 64u << 10;
    unsigned inflight = chance(s, s->storm ? 50 : 30) ? 2 : 64;
    bool pre_vote = !chance(s, 15);
    bool check_quorum = !chance(s, 15);
    trace(s,
          "seed=%llu members=%d storm=%d delay<=%u compact_every=%u msg_bytes=%zu inflight=%u "
          "pre_vote=%d check_quorum=%d reconfig=%d",
          (unsigned long long)o->seed, s->n, s->storm, s->delay_max, s->compact_every, msg_bytes,
          inflight, pre_vote, check_quorum, (int)((o->seed * 0x9E3779B97F4A7C15ull >> 60) < 5));
    /* drawn aside from the run's generator, so that seeds without membership changes replay
     * the same schedules as before they existed */
    s->reconfig = (o->seed * 0x9E3779B97F4A7C15ull >> 60) < 5; /* 5 in 16 */
    struct cn_raft_conf conf = {0};
    for (int i = 0; i < s->n; i++)
        conf.voters[conf.n_voters++] = (uint64_t)i + 1;
    s->initial = conf;
    struct cn_raft_config *t = &s->cfg_template;
    cn_raft_config_default(t);
    t->election_ticks = ELECTION_T;
    t->max_msg_bytes = msg_bytes;
    t->max_inflight_msgs = inflight;
    t->pre_vote = pre_vote;
    t->check_quorum = check_quorum;
    t->unsafe_commit_prev_term = o->break_figure8;
    t->unsafe_vote_any_log = o->break_vote;
    for (int i = 0; i < s->n; i++) {
        struct sim_member *m = &s->m[i];
        m->id = (uint64_t)i + 1;
        m->founder = true;
        m->cfg = *t;
        m->cfg.id = m->id;
        /* a new cluster: the configuration is either the snapshot at index 0 or, when members
         * will join and replay the log, the first entries (cn_raft_bootstrap) */
        if (!s->reconfig) m->disk.snap.conf = conf;
        startMember(s, i);
        push(s, rndn(s, TICK_MS), EV_TICK, i, NULL);
    }
    push(s, 0, EV_NET, -1, NULL);
    push(s, 5, EV_CLIENT, -1, NULL);
    push(s, 100 + rndn(s, 1000), EV_CRASH, (int)rndn(s, (uint64_t)s->n), NULL);
    uint64_t fault_ms = s->storm ? 2 * (uint64_t)o->fault_ms : o->fault_ms;
    push(s, fault_ms, EV_HEAL, -1, NULL);
    runUntil(s, fault_ms);
    if (!s->failed) liveness(s);
    char why[256];
    if (!s->failed && !check_acks_final(s->check, why, sizeof(why))) fail(s, why);
    for (int i = 0; i < s->n && o->trace; i++) {
        struct sim_member *m = &s->m[i];
        if (!m->up) {
            trace(s, "final: member %d %s", i + 1, m->gone ? "gone (removed)" : "down");
            continue;
        }
        struct cn_raft_status st;
        cn_raft_status(m->r, &st);
        char ids[128];
        size_t off = 0;
        for (uint32_t k = 0; k < st.conf.n_voters; k++)
            off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%llu", k ? "," : "",
                                    (unsigned long long)st.conf.voters[k]);
        for (uint32_t k = 0; k < st.conf.n_learners; k++)
            off += (size_t)snprintf(ids + off, sizeof(ids) - off, " learner %llu",
                                    (unsigned long long)st.conf.learners[k]);
        trace(s, "final: member %d %s term=%llu last=%llu commit=%llu applied=%llu voters=%s%s",
              i + 1, cn_raft_role_name(st.role), (unsigned long long)st.term,
              (unsigned long long)st.last_index, (unsigned long long)st.commit,
              (unsigned long long)m->applied, ids, st.removed ? " removed" : "");
    }
    if (o->trace || s->failed)
        printf("seed=%llu members=%d storm=%d msg_bytes=%zu inflight=%u pv=%d cq=%d events=%llu "
               "msgs=%llu committed=%llu acked=%llu reads=%llu "
               "crashes=%llu snapshots=%llu%s%s\n",
               (unsigned long long)o->seed, s->n, s->storm, msg_bytes, inflight, pre_vote,
               check_quorum, (unsigned long long)s->n_events, (unsigned long long)s->n_msgs,
               (unsigned long long)check_committed_len(s->check), (unsigned long long)s->n_acked,
               (unsigned long long)s->n_reads_served, (unsigned long long)s->n_crashes,
               (unsigned long long)s->n_snap_installs, s->failed ? " FAILED: " : "",
               s->failed ? s->why : "");
    int rc = s->failed ? 1 : 0;
    /* teardown */
    for (size_t k = 0; k < s->n_heap; k++)
        cn_buf_free(&s->heap[k].msg);
    cn_free(s->heap);
    for (int i = 0; i < s->n; i++) {
        struct sim_member *m = &s->m[i];
        if (m->up) {
            if (m->fsync_pending) {
                struct cn_raft_ready rd;
                cn_raft_ready(m->r, &rd);
            }
            cn_raft_free(m->r);
            cn_store_free(m->store);
        }
        for (size_t k = 0; k < m->n_inbox; k++)
            cn_buf_free(&m->inbox[k].msg);
        cn_free(m->inbox);
        diskFree(&m->disk);
    }
    cn_free(s->props);
    cn_free(s->ack_index);
    cn_free(s->reads);
    cn_free(s->snaps);
    check_free(s->check);
    cn_free(s);
    return rc;
}
