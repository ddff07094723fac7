/* sim: one simulated cluster run (see sim.h). Virtual time in milliseconds; an event heap orders
 * ticks, message deliveries, fsync and snapshot completions, deferred calls, crashes, restarts,
 * client requests and network changes by (time, sequence), so a seed fixes the whole run.
 *
 * Every member is the real node (src/node) on its io_sim.c io and on the server's composite state
 * machine (server/fsm.h) over a v2 part wrapping the real v2 store and the server's v3 part over
 * src/mvcc (v3.c, which checks every v3 reply against the other members' and a model); clients talk
 * to any member, which forwards to its leader as a cairn member does. Checks, after every event
 * (check.c): one leader per term, log matching, leader completeness, state machine safety; and,
 * client-visible: no request is answered twice, a read sees every write acknowledged before it
 * started, a proposal is applied at one index only, every acknowledged write is applied at the
 * index it was acknowledged at, on every member, and (at the end) the members' stores are
 * byte-identical and their v3 key spaces equal (v3.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "server/fsm.h"
#include "sim_int.h"
#include "store/store.h"

#define LIVENESS_MS (10 * SIM_ELECTION_T * SIM_TICK_MS)
_Static_assert(SIM_V2_TAG != CN_FSM_V3_TAG, "the sim's v2 commands must go to the v2 part");

/* ---- utilities --------------------------------------------------------------------------- */

static uint64_t mix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t sim_rnd(struct sim *s)
{
    return mix(&s->rng);
}

static uint64_t rnd2(struct sim *s)
{
    return mix(&s->rng2);
}

uint64_t sim_rndn(struct sim *s, uint64_t n)
{
    return n ? sim_rnd(s) % n : 0;
}

bool sim_chance(struct sim *s, unsigned pct)
{
    return sim_rndn(s, 100) < pct;
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
    if (!s->o.trace) return;
    va_list ap;
    va_start(ap, fmt);
    printf("t=%06" PRIu64 " ", s->now);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

void sim_fail(struct sim *s, const char *why)
{
    if (s->failed) return;
    s->failed = true;
    snprintf(s->why, sizeof(s->why), "%s", why);
    sim_trace(s, "FAILED: %s", why);
}

struct cn_raft_status sim_status_of(const struct sim_member *m)
{
    struct cn_raft_status st;
    cn_raft_status(cn_node_raft(m->node), &st);
    return st;
}

/* ---- event heap -------------------------------------------------------------------------- */

static bool ev_less(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

struct sim_ev *sim_push(struct sim *s, uint64_t delay, int type, int member, struct cn_buf *msg)
{
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
        s->heap = cn_xrealloc(s->heap, s->cap_heap * sizeof(*s->heap));
    }
    struct sim_ev e;
    memset(&e, 0, sizeof(e));
    e.time = s->now + delay;
    e.seq = s->seq++;
    e.type = type;
    e.member = member;
    cn_buf_init(&e.msg);
    if (member >= 0) e.incarnation = s->m[member].incarnation;
    if (msg) {
        e.msg = *msg;
        cn_buf_init(msg);
    }
    /* sift up, leaving the new event's final slot; callers fill the rest through the pointer,
     * which is valid until the next push or pop */
    size_t i = s->n_heap++;
    while (i > 0 && ev_less(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return &s->heap[i];
}

static struct sim_ev pop(struct sim *s)
{
    struct sim_ev top = s->heap[0];
    struct sim_ev last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct sim_ev *cur = &last;
        if (l < s->n_heap && ev_less(&s->heap[l], cur)) {
            m = l;
            cur = &s->heap[l];
        }
        if (r < s->n_heap && ev_less(&s->heap[r], cur)) m = r;
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n_heap > 0) s->heap[i] = last;
    return top;
}

/* ---- the state machine: the server's composite of a v2 and a v3 part ---------------------- */

/* The v2 part: the v2 store, commands tagged with the proposal's id, and the ids removed from the
 * cluster, as cairn's fsm_v2 keeps them in its member records: the transport refuses a removed
 * member and tells it so (io_sim.c does the same). The v3 part is the server's (v3.c). */
struct sim_fsm {
    struct cn_fsm fsm;       /* the v2 part */
    struct cn_fsm_both both; /* what the node runs: cn_fsm_both over fsm and the v3 part */
    struct sim *s;
    int member;
    struct sim_result res;
    uint64_t removed[2 * SIM_MAX];
    uint32_t n_removed;
};

static int fsm_apply(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                     struct cn_fsm_out *out)
{
    struct sim_fsm *f = fsm->data;
    struct sim_member *m = &f->s->m[f->member];
    if (len < 9 || ((const uint8_t *)cmd)[0] != SIM_V2_TAG) {
        sim_fail(f->s, "the v2 part was handed a command not its own");
        return CN_ERR_CORRUPT;
    }
    uint64_t id;
    memcpy(&id, (const uint8_t *)cmd + 1, 8);
    struct cn_store_result res;
    if (cn_store_apply(m->store, (const uint8_t *)cmd + 9, len - 9, &res) != 0)
        sim_fail(f->s, "store rejected a command");
    m->applying_prop = id;
    f->res = (struct sim_result){index, id};
    out->result = &f->res;
    return 0;
}

static void fsm_apply_conf(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                           const void *records, size_t len, struct cn_fsm_out *out)
{
    (void)index, (void)records, (void)len;
    struct sim_fsm *f = fsm->data;
    if (op == CN_NODE_CONF_REMOVE && f->n_removed < 2 * SIM_MAX) f->removed[f->n_removed++] = id;
    out->members_changed = true;
}

static bool fsm_is_removed(struct cn_fsm *fsm, uint64_t id)
{
    struct sim_fsm *f = fsm->data;
    for (uint32_t i = 0; i < f->n_removed; i++)
        if (f->removed[i] == id) return true;
    return false;
}

/* No member records (the world routes by id): no URLs, empty records. */
static bool fsm_peer_url(struct cn_fsm *fsm, uint64_t id, char *url, size_t len)
{
    (void)fsm, (void)id, (void)url, (void)len;
    return false;
}

static void fsm_records_join(struct cn_fsm *fsm, const struct cn_node_member *m, struct cn_buf *out)
{
    (void)fsm, (void)m, (void)out;
}

static void fsm_records_remove(struct cn_fsm *fsm, uint64_t id, struct cn_buf *out)
{
    (void)fsm, (void)id, (void)out;
}

static void fsm_snapshot(struct cn_fsm *fsm, struct cn_buf *out)
{
    struct sim_fsm *f = fsm->data;
    cn_buf_put_u32(out, f->n_removed);
    for (uint32_t i = 0; i < f->n_removed; i++)
        cn_buf_put_u64(out, f->removed[i]);
    cn_store_snapshot_save(f->s->m[f->member].store, out);
}

static int fsm_restore(struct cn_fsm *fsm, const void *p, size_t len)
{
    struct sim_fsm *f = fsm->data;
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    uint32_t n = cn_rd_u32(&r);
    if (!cn_rd_ok(&r) || n > 2 * SIM_MAX) return CN_ERR_CORRUPT;
    uint64_t ids[2 * SIM_MAX];
    for (uint32_t i = 0; i < n; i++)
        ids[i] = cn_rd_u64(&r);
    if (!cn_rd_ok(&r)) return CN_ERR_CORRUPT;
    int rc =
        cn_store_snapshot_load(f->s->m[f->member].store, (const uint8_t *)p + r.off, len - r.off);
    if (rc != 0) return rc;
    memcpy(f->removed, ids, n * sizeof(ids[0]));
    f->n_removed = n;
    return 0;
}

/* ---- members ----------------------------------------------------------------------------- */

static void record_snap_hash(struct sim *s, uint64_t index, const struct cn_buf *b)
{
    uint64_t h = sim_hash(0, b->p, b->len);
    for (size_t i = 0; i < s->n_snaps; i++)
        if (s->snaps[i].index == index) {
            if (s->snaps[i].hash != h) sim_fail(s, "two members' snapshots differ at one index");
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

void sim_grow_by_id(struct sim *s, uint64_t id)
{
    if (id < s->n_by_id) return;
    size_t k = s->n_by_id ? s->n_by_id : 1024;
    while (k <= id)
        k *= 2;
    s->ack_index = cn_xrealloc(s->ack_index, k * sizeof(uint64_t));
    s->applied_at = cn_xrealloc(s->applied_at, k * sizeof(uint64_t));
    memset(s->ack_index + s->n_by_id, 0, (k - s->n_by_id) * sizeof(uint64_t));
    memset(s->applied_at + s->n_by_id, 0, (k - s->n_by_id) * sizeof(uint64_t));
    s->n_by_id = k;
}

void sim_on_apply(void *ctx, const struct cn_raft_entry *e)
{
    struct sim_fsm *a = ctx;
    struct sim *s = a->s;
    struct sim_member *m = &s->m[a->member];
    uint64_t prop = m->applying_prop;
    m->applying_prop = 0;
    if (prop == 0 && e->type == CN_RAFT_ENTRY_NORMAL && e->len)
        prop = sim_v3_prop_of(s, e->data, e->len);
    if (e->index != m->applied + 1) {
        sim_fail(s, "committed entries applied out of order");
        return;
    }
    uint64_t h = sim_hash(m->applied_chain ^ 0x5bd1e995, &e->term, sizeof(e->term));
    h = sim_hash(h, &e->index, sizeof(e->index));
    h = sim_hash(h, &e->type, 1);
    uint64_t chain = sim_hash(h, e->data, e->len);
    char why[256];
    if (!check_apply(s->check, m->id, e, chain, sim_status_of(m).term, why, sizeof(why))) {
        sim_fail(s, why);
        return;
    }
    m->applied = e->index;
    m->applied_chain = chain;
    if (prop == 0) return;
    check_set_proposal(s->check, e->index, prop);
    sim_grow_by_id(s, prop);
    if (s->applied_at[prop] == 0) s->applied_at[prop] = e->index;
    if (s->applied_at[prop] != e->index) {
        snprintf(why, sizeof(why),
                 "proposal %" PRIu64 " applied twice: at %" PRIu64 " and %" PRIu64, prop,
                 s->applied_at[prop], e->index);
        sim_fail(s, why);
    }
    if (s->ack_index[prop] && s->ack_index[prop] != e->index) {
        snprintf(why, sizeof(why),
                 "proposal %" PRIu64 " acknowledged at %" PRIu64 " but applied at %" PRIu64
                 " on member %" PRIu64,
                 prop, s->ack_index[prop], e->index, m->id);
        sim_fail(s, why);
    }
}

static void on_removed(void *ctx)
{
    (void)ctx; /* checked after every event (check_roles): the member then shuts down */
}

static void tune(void *ctx, struct cn_raft_config *cfg)
{
    struct sim *s = ctx;
    cfg->max_msg_bytes = s->msg_bytes;
    cfg->max_inflight_msgs = s->inflight;
    cfg->pre_vote = s->pre_vote;
    cfg->check_quorum = s->check_quorum;
    cfg->unsafe_commit_prev_term = s->o.break_figure8;
    cfg->unsafe_vote_any_log = s->o.break_vote;
}

static void start_member(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    m->store = cn_store_new();
    struct sim_fsm *f = CN_NEW(struct sim_fsm);
    m->fsm = f;
    f->s = s;
    f->member = i;
    f->fsm = (struct cn_fsm){.data = f,
                             .apply = fsm_apply,
                             .apply_conf = fsm_apply_conf,
                             .snapshot = fsm_snapshot,
                             .restore = fsm_restore,
                             .peer_url = fsm_peer_url,
                             .is_removed = fsm_is_removed,
                             .records_join = fsm_records_join,
                             .records_remove = fsm_records_remove};
    m->v3 = sim_v3_new(s, i);
    cn_fsm_both_init(&f->both, &f->fsm, sim_v3_fsm(m->v3));
    struct sim_disk *d = &m->disk;
    struct cn_node_state st = {
        .fresh = d->n == 0 && d->snap.index == 0 && d->hs.term == 0,
        .hs = d->hs,
        .snap_term = d->snap.term,
        .snap_index = d->snap.index,
        .snap = d->snap_data.len ? d->snap_data.p : NULL,
        .snap_len = d->snap_data.len,
        .ents = d->ents,
        .n_ents = d->n,
    };
    struct cn_node_member founders[SIM_MAX];
    size_t nf = 0;
    for (int k = 0; k < s->n; k++)
        if (s->m[k].founder) founders[nf++] = (struct cn_node_member){s->m[k].id, 0, NULL};
    struct cn_node_options opt = {
        .snapshot_count = s->compact_every,
        .heartbeat_ms = SIM_TICK_MS,
        .election_ms = SIM_TICK_MS * SIM_ELECTION_T,
        .member_id = m->id,
        .cluster_id = 1,
        .seed = s->o.seed * 31 + m->incarnation,
        .mode = m->founder ? CN_NODE_NEW : CN_NODE_JOIN,
        .members = m->founder ? founders : NULL,
        .nmembers = m->founder ? nf : 0,
        .on_removed = on_removed,
    };
    m->io = sim_io_new(s, i);
    char err[256];
    m->node =
        cn_node_new(&opt, &f->both.fsm, (struct cn_node_io *)m->io, &st, tune, s, err, sizeof(err));
    if (m->node == NULL) {
        sim_fail(s, "the node refused the member's own disk");
        return;
    }
    cn_node_observe_apply(m->node, sim_on_apply, f);
    m->applied = d->snap.index;
    m->applied_chain = check_chain_at(s->check, m->applied);
    m->up = true;
    m->fsync_pending = false;
    m->defer_pending = false;
    m->last_role = CN_RAFT_FOLLOWER;
    m->last_term = 0;
    if (cn_node_start(m->node, err, sizeof(err)) != 0) sim_fail(s, "the node did not start");
}

static void crash(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    if (!m->up) return;
    s->n_crashes++;
    bool torn = m->fsync_pending;
    sim_io_crash(s, i);
    sim_trace(s, "CRASH member %llu%s", (unsigned long long)m->id, torn ? " (batch torn)" : "");
    cn_node_destroy(m->node);
    m->node = NULL;
    m->io = NULL;
    cn_store_free(m->store);
    m->store = NULL;
    cn_free(m->fsm);
    m->fsm = NULL;
    sim_v3_free(m->v3);
    m->v3 = NULL;
    m->up = false;
    m->incarnation++;
    if (s->o.unreachable) {
        /* its sockets close: every other member's transport notices */
        for (int k = 0; k < s->n; k++)
            if (k != i && s->m[k].up) cn_node_on_peer_closed(s->m[k].node, m->id);
    }
}

/* Starts member n+1 with an empty disk: it learns everything from the leader. */
void sim_start_joiner(struct sim *s)
{
    int i = s->n++;
    struct sim_member *m = &s->m[i];
    m->id = (uint64_t)i + 1;
    start_member(s, i);
    sim_push(s, sim_rndn(s, SIM_TICK_MS), EV_TICK, i, NULL);
    sim_trace(s, "member %llu starts empty, to join", (unsigned long long)m->id);
}

int sim_leader_of(struct sim *s)
{
    int best = -1;
    uint64_t best_term = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->m[i].up) continue;
        struct cn_raft_status st = sim_status_of(&s->m[i]);
        if (st.role == CN_RAFT_LEADER && st.term >= best_term) {
            best = i;
            best_term = st.term;
        }
    }
    return best;
}

/* ---- checks after every event ------------------------------------------------------------- */

static void check_roles(struct sim *s)
{
    char why[256];
    for (int i = 0; i < s->n; i++) {
        struct sim_member *m = &s->m[i];
        if (!m->up) continue;
        struct cn_raft_status st = sim_status_of(m);
        if (cn_node_removed(m->node) && !m->fsync_pending) {
            sim_trace(s, "member %llu learned it was removed: shuts down",
                      (unsigned long long)m->id);
            crash(s, i);
            m->gone = true;
            continue;
        }
        if (st.role == CN_RAFT_LEADER) {
            if (!check_leader(s->check, m->id, st.term, why, sizeof(why))) sim_fail(s, why);
            if (m->last_role != CN_RAFT_LEADER || m->last_term != st.term) {
                sim_trace(s, "member %llu is leader of term %llu", (unsigned long long)m->id,
                          (unsigned long long)st.term);
                /* short-lived leaders leave many terms' uncommitted entries behind: the
                 * ground the Figure 8 case grows on */
                if (s->storm && !s->faults_off && sim_chance(s, 80))
                    sim_push(s, sim_rndn(s, 200), EV_HUNT, i, NULL);
                if (!check_leader_log(s->check, m->id, st.term, &m->disk, why, sizeof(why)))
                    sim_fail(s, why);
            }
        } else if (m->last_role == CN_RAFT_LEADER) {
            sim_trace(s, "member %llu is no longer leader (term %llu)", (unsigned long long)m->id,
                      (unsigned long long)st.term);
        }
        m->last_role = st.role;
        m->last_term = st.term;
    }
}

/* ---- faults ------------------------------------------------------------------------------- */

static void net_change(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    unsigned kind = (unsigned)sim_rndn(s, 6);
    if (kind == 1 || kind == 2) {
        /* a split into two sides */
        uint64_t side = sim_rnd(s);
        for (int a = 0; a < s->n; a++)
            for (int b = 0; b < s->n; b++)
                if (((side >> a) & 1) != ((side >> b) & 1)) s->cut[a][b] = true;
        sim_trace(s, "net: partition mask=%llx", (unsigned long long)(side & ((1u << s->n) - 1)));
    } else if (kind == 3) {
        /* one-way cuts */
        for (int k = 0; k < 3; k++) {
            int a = (int)sim_rndn(s, (uint64_t)s->n), b = (int)sim_rndn(s, (uint64_t)s->n);
            s->cut[a][b] = true;
            sim_trace(s, "net: one-way cut %d->%d", a + 1, b + 1);
        }
    } else if (kind == 4) {
        /* isolate one member */
        int a = (int)sim_rndn(s, (uint64_t)s->n);
        for (int b = 0; b < s->n; b++)
            s->cut[a][b] = s->cut[b][a] = true;
        sim_trace(s, "net: isolate %d", a + 1);
    } else {
        sim_trace(s, "net: whole");
    }
    if (s->o.unreachable && rnd2(s) % 3 == 0) {
        /* a false notice: a connection reset while the member lives (its leader may be fine) */
        int a = (int)(rnd2(s) % (uint64_t)s->n), b = (int)(rnd2(s) % (uint64_t)s->n);
        if (a != b && s->m[a].up) {
            sim_trace(s, "%llu told the connection from %llu closed",
                      (unsigned long long)s->m[a].id, (unsigned long long)s->m[b].id);
            cn_node_on_peer_closed(s->m[a].node, s->m[b].id);
        }
    }
    s->drop_pct = (unsigned)sim_rndn(s, 15);
    s->dup_pct = (unsigned)sim_rndn(s, 8);
    if (!s->healed)
        sim_push(s, s->storm ? 20 + sim_rndn(s, 150) : 100 + sim_rndn(s, 600), EV_NET, -1, NULL);
}

static void heal(struct sim *s)
{
    s->healed = true;
    s->faults_off = true;
    memset(s->cut, 0, sizeof(s->cut));
    s->drop_pct = s->dup_pct = 0;
    s->long_delay_pct = 0;
    sim_trace(s, "HEAL: network whole, crashed members restart");
    for (int i = 0; i < s->n; i++)
        if (!s->m[i].up) sim_push(s, 0, EV_RESTART, i, NULL);
}

/* ---- the run ------------------------------------------------------------------------------ */

static bool current(const struct sim *s, const struct sim_ev *e)
{
    const struct sim_member *m = &s->m[e->member];
    return m->up && e->incarnation == m->incarnation;
}

static void handle(struct sim *s, struct sim_ev *e)
{
    struct sim_member *m = e->member >= 0 ? &s->m[e->member] : NULL;
    switch (e->type) {
    case EV_TICK:
        if (m->up) cn_node_on_tick(m->node);
        sim_push(s, SIM_TICK_MS, EV_TICK, e->member, NULL);
        break;
    case EV_DELIVER:
        if (m->up) cn_node_on_receive(m->node, e->from, e->kind, e->msg.p, e->msg.len);
        break;
    case EV_FSYNC:
        if (current(s, e) && m->fsync_pending) sim_io_fsync(s, e->member);
        break;
    case EV_SNAP_SAVED:
        if (current(s, e)) {
            record_snap_hash(s, e->index, &e->msg);
            sim_io_snapshot_saved(s, e->member, e);
        }
        break;
    case EV_SNAP_LOADED:
        if (current(s, e)) sim_io_snapshot_loaded(s, e->member);
        break;
    case EV_TOLD_REMOVED:
        if (current(s, e)) cn_node_on_told_removed(m->node, e->from);
        break;
    case EV_DEFER:
        if (current(s, e)) {
            m->defer_pending = false;
            cn_node_on_deferred(m->node);
        }
        break;
    case EV_CRASH:
        if (!s->faults_off) {
            crash(s, e->member);
            sim_push(s, s->storm ? 10 + sim_rndn(s, 150) : 50 + sim_rndn(s, 500), EV_RESTART,
                     e->member, NULL);
        }
        if (!s->healed)
            sim_push(s, s->storm ? 20 + sim_rndn(s, 200) : 200 + sim_rndn(s, 2000), EV_CRASH,
                     (int)sim_rndn(s, (uint64_t)s->n), NULL);
        break;
    case EV_RESTART:
        if (!m->up && !m->gone) {
            sim_trace(s, "RESTART member %llu", (unsigned long long)m->id);
            start_member(s, e->member);
        }
        break;
    case EV_CLIENT:
        sim_client(s);
        break;
    case EV_NET:
        if (!s->healed) net_change(s);
        break;
    case EV_HEAL:
        heal(s);
        break;
    case EV_HUNT:
        if (s->faults_off || !current(s, e)) break;
        if (sim_chance(s, 50)) {
            crash(s, e->member);
            sim_push(s, 10 + sim_rndn(s, 150), EV_RESTART, e->member, NULL);
        } else {
            for (int b = 0; b < s->n; b++)
                s->cut[e->member][b] = s->cut[b][e->member] = true;
            sim_trace(s, "net: isolate leader %d", e->member + 1);
        }
        break;
    }
}

static bool step(struct sim *s)
{
    if (s->n_heap == 0) return false;
    struct sim_ev e = pop(s);
    s->now = e.time;
    s->n_events++;
    handle(s, &e);
    cn_buf_free(&e.msg);
    if (!s->failed) check_roles(s);
    return !s->failed;
}

static void run_until(struct sim *s, uint64_t t)
{
    while (!s->failed && s->n_heap > 0 && s->heap[0].time <= t)
        step(s);
    if (s->now < t) s->now = t;
}

/* A leader that a quorum of its voters follows in its term (a stale leader that has not
 * noticed yet does not count), or -1. */
static int stable_leader(struct sim *s)
{
    int lead = sim_leader_of(s);
    if (lead < 0) return -1;
    struct cn_raft_status ls = sim_status_of(&s->m[lead]);
    uint32_t with = 0;
    for (uint32_t k = 0; k < ls.conf.n_voters; k++) {
        int i = (int)ls.conf.voters[k] - 1;
        if (i < 0 || i >= s->n || !s->m[i].up) continue;
        struct cn_raft_status st = sim_status_of(&s->m[i]);
        if (st.term == ls.term && st.lead == ls.id) with++;
    }
    return with >= ls.conf.n_voters / 2 + 1 ? lead : -1;
}

/* Members of the leader's configuration (all started members without a leader). */
static bool is_member(struct sim *s, int i)
{
    int lead = sim_leader_of(s);
    if (lead < 0) return true;
    struct cn_raft_status st = sim_status_of(&s->m[lead]);
    uint64_t id = (uint64_t)i + 1;
    for (uint32_t k = 0; k < st.conf.n_voters; k++)
        if (st.conf.voters[k] == id) return true;
    for (uint32_t k = 0; k < st.conf.n_learners; k++)
        if (st.conf.learners[k] == id) return true;
    return false;
}

static bool all_applied(struct sim *s, uint64_t index)
{
    for (int i = 0; i < s->n; i++)
        if (is_member(s, i) && (!s->m[i].up || s->m[i].applied < index)) return false;
    return true;
}

/* Liveness: after healing, a leader within 10 election timeouts, then every proposal commits;
 * finally every acknowledged write is applied on every member and the stores are identical. */
static void liveness(struct sim *s)
{
    uint64_t healed_at = s->now;
    uint64_t deadline = healed_at + LIVENESS_MS;
    int lead = -1;
    while (!s->failed && s->now < deadline) {
        run_until(s, s->now + SIM_TICK_MS);
        lead = stable_leader(s);
        if (lead >= 0) break;
    }
    if (s->failed) return;
    if (lead < 0) {
        sim_fail(s, "liveness: no leader within 10 election timeouts after the faults healed");
        return;
    }
    sim_trace(s, "liveness: leader %d elected %llu ms after heal", lead + 1,
              (unsigned long long)(s->now - healed_at));
    /* every later proposal commits, through whichever member the client picks: each one must
     * be acknowledged and applied everywhere before the deadline. A follower far behind on a
     * one-entry-per-message, two-in-flight link needs a round trip or two per entry: the bound
     * is on never, not on slow */
    struct sim_req *r = NULL;
    deadline = s->now + 20 * LIVENESS_MS;
    unsigned done = 0;
    while (!s->failed && s->now < deadline && done < 5) {
        if (r == NULL) {
            int i = (int)sim_rndn(s, (uint64_t)s->n);
            if (!s->m[i].up || !is_member(s, i)) i = stable_leader(s);
            if (i >= 0) r = sim_propose(s, i, ++s->next_prop);
        }
        run_until(s, s->now + 5);
        if (r == NULL) continue;
        uint64_t at = r->id < s->n_by_id ? s->ack_index[r->id] : 0;
        if (at != 0 && all_applied(s, at)) {
            done++;
            r = NULL;
        } else if (r->answered && r->rc != 0) {
            /* it lost its slot to a new leader's entry or timed out: the client was told it
             * failed; it tries again */
            sim_trace(s, "liveness: proposal %llu failed rc=%d, retrying",
                      (unsigned long long)r->id, r->rc);
            r = NULL;
        } else if (!s->m[r->member].up || s->m[r->member].incarnation != r->incarnation) {
            r = NULL;
        }
    }
    if (s->failed) return;
    if (done < 5) {
        sim_fail(s, "liveness: proposals after healing did not commit on every member");
        return;
    }
    /* every acknowledged write, a late one of the fault phase too, reaches every member (the
     * commit index travels with the heartbeats); then the stores compare byte for byte */
    run_until(s, s->now + 5 * SIM_TICK_MS);
    deadline = s->now + LIVENESS_MS;
    while (!s->failed && s->now < deadline && !all_applied(s, check_ack_watermark(s->check)))
        run_until(s, s->now + SIM_TICK_MS);
    if (s->failed) return;
    uint64_t top = check_ack_watermark(s->check);
    int first = -1;
    bool same = true;
    for (int i = 0; i < s->n; i++) {
        if (!is_member(s, i)) continue;
        if (!s->m[i].up || s->m[i].applied < top) {
            sim_fail(s, "an acknowledged write is not applied on every member");
            return;
        }
        if (first < 0) first = i;
        same = same && s->m[i].applied == s->m[first].applied;
    }
    if (same && first >= 0) {
        struct cn_buf b0 = CN_BUF_INIT, bi = CN_BUF_INIT;
        cn_store_snapshot_save(s->m[first].store, &b0);
        for (int i = first + 1; i < s->n && !s->failed; i++) {
            if (!is_member(s, i)) continue;
            cn_buf_reset(&bi);
            cn_store_snapshot_save(s->m[i].store, &bi);
            if (bi.len != b0.len || memcmp(bi.p, b0.p, b0.len) != 0)
                sim_fail(s, "stores differ after applying the same entries");
        }
        cn_buf_free(&b0);
        cn_buf_free(&bi);
        bool in[SIM_MAX];
        for (int i = 0; i < s->n; i++)
            in[i] = is_member(s, i);
        if (!s->failed) sim_v3_final(s, in);
    }
}

static void trace_final(struct sim *s)
{
    for (int i = 0; i < s->n && s->o.trace; i++) {
        struct sim_member *m = &s->m[i];
        if (!m->up) {
            sim_trace(s, "final: member %d %s", i + 1, m->gone ? "gone (removed)" : "down");
            continue;
        }
        struct cn_raft_status st = sim_status_of(m);
        char ids[128];
        size_t off = 0;
        for (uint32_t k = 0; k < st.conf.n_voters; k++)
            off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%llu", k ? "," : "",
                                    (unsigned long long)st.conf.voters[k]);
        for (uint32_t k = 0; k < st.conf.n_learners; k++)
            off += (size_t)snprintf(ids + off, sizeof(ids) - off, " learner %llu",
                                    (unsigned long long)st.conf.learners[k]);
        sim_trace(s, "final: member %d %s term=%llu last=%llu commit=%llu applied=%llu voters=%s%s",
                  i + 1, cn_raft_role_name(st.role), (unsigned long long)st.term,
                  (unsigned long long)st.last_index, (unsigned long long)st.commit,
                  (unsigned long long)m->applied, ids, st.removed ? " removed" : "");
    }
}

int sim_run(const struct sim_opts *o)
{
    struct sim *s = CN_NEW(struct sim);
    s->o = *o;
    s->rng = o->seed * 0x2545F4914F6CDD1Dull + 7;
    s->rng2 = o->seed * 0xD1342543DE82EF95ull + 11;
    s->rng3 = o->seed * 0xAF251AF3B0F025B5ull + 13;
    s->check = check_new();
    sim_v3_world_init(s);
    s->delay_max = 1 + (unsigned)sim_rndn(s, 20);
    s->long_delay_pct = (unsigned)sim_rndn(s, 5);
    static const unsigned compact[] = {8, 30, 1000000};
    s->compact_every = compact[sim_rndn(s, 3)];
    s->storm = sim_chance(s, 40);
    /* storms favour what lets the Figure 8 case arise: 5 members (as in the paper) and old
     * entries re-replicated one message at a time */
    s->n = sim_chance(s, s->storm ? 80 : 50) ? 5 : 3;
    s->msg_bytes = sim_chance(s, s->storm ? 90 : 40) ? 1 : 64u << 10;
    s->inflight = sim_chance(s, s->storm ? 50 : 30) ? 2 : 64;
    s->pre_vote = !sim_chance(s, 15);
    s->check_quorum = !sim_chance(s, 15);
    /* drawn aside from the run's generator */
    s->reconfig = (o->seed * 0x9E3779B97F4A7C15ull >> 60) < 5; /* 5 in 16 */
    sim_trace(s,
              "seed=%llu members=%d storm=%d delay<=%u compact_every=%u msg_bytes=%zu "
              "inflight=%u pre_vote=%d check_quorum=%d reconfig=%d",
              (unsigned long long)o->seed, s->n, s->storm, s->delay_max, s->compact_every,
              s->msg_bytes, s->inflight, s->pre_vote, s->check_quorum, s->reconfig);
    for (int i = 0; i < s->n; i++) {
        s->m[i].id = (uint64_t)i + 1;
        s->m[i].founder = true;
    }
    for (int i = 0; i < s->n && !s->failed; i++) {
        start_member(s, i);
        sim_push(s, sim_rndn(s, SIM_TICK_MS), EV_TICK, i, NULL);
    }
    sim_push(s, 0, EV_NET, -1, NULL);
    sim_push(s, 5, EV_CLIENT, -1, NULL);
    sim_push(s, 100 + sim_rndn(s, 1000), EV_CRASH, (int)sim_rndn(s, (uint64_t)s->n), NULL);
    uint64_t fault_ms = s->storm ? 2 * (uint64_t)o->fault_ms : o->fault_ms;
    sim_push(s, fault_ms, EV_HEAL, -1, NULL);
    run_until(s, fault_ms);
    if (!s->failed) liveness(s);
    char why[256];
    if (!s->failed && !check_acks_final(s->check, why, sizeof(why))) sim_fail(s, why);
    trace_final(s);
    if (o->trace || s->failed)
        printf("seed=%llu members=%d storm=%d msg_bytes=%zu inflight=%u pv=%d cq=%d events=%llu "
               "msgs=%llu committed=%llu acked=%llu (v3 %llu) reads=%llu "
               "crashes=%llu snapshots=%llu%s%s\n",
               (unsigned long long)o->seed, s->n, s->storm, s->msg_bytes, s->inflight, s->pre_vote,
               s->check_quorum, (unsigned long long)s->n_events, (unsigned long long)s->n_msgs,
               (unsigned long long)check_committed_len(s->check), (unsigned long long)s->n_acked,
               (unsigned long long)s->n_v3_acked, (unsigned long long)s->n_reads_served,
               (unsigned long long)s->n_crashes, (unsigned long long)s->n_snap_installs,
               s->failed ? " FAILED: " : "", s->failed ? s->why : "");
    int rc = s->failed ? 1 : 0;
    /* teardown: the members crash for good, their requests unanswered */
    for (int i = 0; i < s->n; i++) {
        struct sim_member *m = &s->m[i];
        if (m->up) {
            cn_node_destroy(m->node);
            cn_store_free(m->store);
            cn_free(m->fsm);
            sim_v3_free(m->v3);
        }
        sim_staged_reset(&m->staged);
        cn_free(m->staged.ents);
        cn_buf_free(&m->staged.snap_data);
        sim_disk_free(&m->disk);
    }
    for (size_t k = 0; k < s->n_heap; k++)
        cn_buf_free(&s->heap[k].msg);
    cn_free(s->heap);
    for (size_t k = 0; k < s->n_reqs; k++)
        cn_free(s->reqs[k]);
    cn_free(s->reqs);
    cn_free(s->ack_index);
    cn_free(s->applied_at);
    cn_free(s->snaps);
    check_free(s->check);
    sim_v3_world_free(s);
    cn_free(s);
    return rc;
}
