/* raft: the member object, its role transitions, the dispatch of every input by term and
 * message type (thesis §3.3: "if RPC request or response contains term T > currentTerm: set
 * currentTerm = T, convert to follower"), and the ready/advance hand-off to the caller. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "raft_int.h"

void cn_raft_config_default(struct cn_raft_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->election_ticks = 10;
    cfg->heartbeat_ticks = 1;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
    cfg->max_entry_bytes = 1u << 20;
    cfg->max_msg_bytes = 256u << 10;
    cfg->max_inflight_msgs = 256;
    cfg->max_inflight_bytes = 8u << 20;
    cfg->max_uncommitted_bytes = 64u << 20;
}

const char *cn_raft_role_name(uint8_t role)
{
    static const char *names[] = {"follower", "pre-candidate", "candidate", "leader"};
    return role <= CN_RAFT_LEADER ? names[role] : "?";
}

void cn_raft__trace(const struct cn_raft *r, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    cn_log_write(CN_LOG_DEBUG, "raft", "%s id=%llu term=%llu role=%s", line,
                 (unsigned long long)r->id, (unsigned long long)r->term,
                 cn_raft_role_name(r->role));
}

struct cn_raft *cn_raft_new(const struct cn_raft_config *cfg)
{
    CN_ASSERT(cfg->id != CN_RAFT_NONE);
    struct cn_raft *r = CN_NEW(struct cn_raft);
    r->cfg = *cfg;
    if (r->cfg.election_ticks == 0) r->cfg.election_ticks = 10;
    if (r->cfg.heartbeat_ticks == 0) r->cfg.heartbeat_ticks = 1;
    if (r->cfg.max_inflight_msgs == 0) r->cfg.max_inflight_msgs = 256;
    if (r->cfg.max_inflight_bytes == 0) r->cfg.max_inflight_bytes = 8u << 20;
    if (r->cfg.max_msg_bytes == 0) r->cfg.max_msg_bytes = 256u << 10;
    if (r->cfg.max_entry_bytes == 0) r->cfg.max_entry_bytes = 1u << 20;
    if (r->cfg.max_uncommitted_bytes == 0) r->cfg.max_uncommitted_bytes = 64u << 20;
    r->id = cfg->id;
    r->trace = cn_log_trace_enabled("raft");
    /* splitmix64 of seed and id: members seeded alike still draw different timeouts */
    r->rng = cfg->seed ^ (cfg->id * 0x9E3779B97F4A7C15ull);
    return r;
}

void cn_raft_free(struct cn_raft *r)
{
    if (r == NULL) return;
    cn_raft__log_free(&r->log);
    for (unsigned i = 0; i < CN_RAFT_MAX_MEMBERS; i++)
        cn_raft__progress_free(&r->prs[i]);
    cn_raft__read_queue_free(&r->reads_wait_commit);
    cn_raft__read_queue_free(&r->reads_wait_quorum);
    cn_raft__read_queue_free(&r->reads_wait_apply);
    cn_free(r->msgs);
    cn_free(r->msg_last_term);
    cn_free(r->reads_out);
    cn_free(r->snap_in_data);
    cn_free(r);
}

int cn_raft_load(struct cn_raft *r, const struct cn_raft_hard_state *hs,
                 const struct cn_raft_snapshot_meta *snap, const struct cn_raft_entry *ents,
                 size_t n)
{
    if (r->loaded) return CN_ERR_INVAL;
    uint64_t prev = snap->index, prev_term = snap->term;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].index != prev + 1 || ents[i].term < prev_term) return CN_ERR_INVAL;
        prev = ents[i].index;
        prev_term = ents[i].term;
    }
    if (hs->commit > prev && hs->commit > snap->index) return CN_ERR_INVAL;
    r->loaded = true;
    cn_raft__log_reset(&r->log, snap->index, snap->term);
    r->log.snap_conf = snap->conf;
    r->conf = snap->conf;
    r->conf_index = 0;
    for (size_t i = 0; i < n; i++) {
        cn_raft__log_append_copy(&r->log, &ents[i]);
        cn_raft__membership_on_append(r, &r->log.ents[r->log.n - 1]);
    }
    r->log.stabled = cn_raft__log_last_index(&r->log);
    r->term = hs->term;
    r->vote = hs->vote;
    /* the commit index is not lost, but entries past the snapshot are applied again */
    r->log.committed = hs->commit > snap->index ? hs->commit : snap->index;
    r->prev_hs = *hs;
    r->prev_hs.commit = r->log.committed;
    cn_raft__become_follower(r, r->term, CN_RAFT_NONE);
    TRACE(r, "loaded snap=%llu last=%llu commit=%llu", (unsigned long long)snap->index,
          (unsigned long long)cn_raft__log_last_index(&r->log),
          (unsigned long long)r->log.committed);
    return 0;
}

/* ---- role transitions ------------------------------------------------------------------- */

static void reset_common(struct cn_raft *r, uint64_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = CN_RAFT_NONE;
    }
    r->lead = CN_RAFT_NONE;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    cn_raft__election_reset_timeout(r);
    r->n_granted = r->n_rejected = 0;
    r->transferee = CN_RAFT_NONE;
    r->bcast_pending = false;
    r->uncommitted = 0;
    cn_raft__read_index_reset(r);
}

void cn_raft__become_follower(struct cn_raft *r, uint64_t term, uint64_t lead)
{
    bool was_leader = r->role == CN_RAFT_LEADER;
    reset_common(r, term);
    r->role = CN_RAFT_FOLLOWER;
    r->lead = lead;
    if (was_leader) TRACE(r, "stepped down");
}

void cn_raft__become_leader(struct cn_raft *r)
{
    CN_ASSERT(r->role == CN_RAFT_CANDIDATE);
    reset_common(r, r->term);
    r->role = CN_RAFT_LEADER;
    r->lead = r->id;
    r->n_prs = 0;
    cn_raft__membership_sync_progress(r);
    struct progress *self = cn_raft__progress_find(r, r->id);
    if (self != NULL) {
        self->match = r->log.stabled;
        self->next = cn_raft__log_last_index(&r->log) + 1;
        cn_raft__progress_become_replicate(self);
    }
    for (unsigned i = 0; i < r->n_prs; i++)
        r->prs[i].recent_active = true;
    /* Thesis §6.4 / §3.6.2: an empty entry of the new term lets the leader commit (and learn
     * the commit index of) everything before it. */
    cn_raft__replication_leader_append(r, CN_RAFT_ENTRY_NORMAL, NULL, 0);
    TRACE(r, "became leader last=%llu", (unsigned long long)cn_raft__log_last_index(&r->log));
}

/* ---- messages --------------------------------------------------------------------------- */

struct cn_raft_msg *cn_raft__send(struct cn_raft *r, uint8_t type, uint64_t to)
{
    if (r->n_msgs == r->cap_msgs) {
        r->cap_msgs = r->cap_msgs ? r->cap_msgs * 2 : 64;
        r->msgs = cn_xrealloc(r->msgs, r->cap_msgs * sizeof(*r->msgs));
        r->msg_last_term = cn_xrealloc(r->msg_last_term, r->cap_msgs * sizeof(uint64_t));
    }
    r->msg_last_term[r->n_msgs] = 0;
    struct cn_raft_msg *m = &r->msgs[r->n_msgs++];
    memset(m, 0, offsetof(struct cn_raft_msg, snap));
    m->snap_data = NULL;
    m->snap_len = 0;
    m->type = type;
    m->to = to;
    m->from = r->id;
    m->term = r->term;
    return m;
}

static bool valid_msg(const struct cn_raft_msg *m)
{
    if (m->type < CN_RAFT_MSG_APP || m->type > CN_RAFT_MSG_TYPE_MAX) return false;
    if (m->from == CN_RAFT_NONE) return false;
    if (m->n_entries > 0 && m->entries == NULL) return false;
    for (size_t i = 0; i < m->n_entries; i++) {
        if (m->entries[i].index != m->index + 1 + i) return false;
        if (m->entries[i].len > 0 && m->entries[i].data == NULL) return false;
        if (m->entries[i].term > m->term) return false;
    }
    if (m->type == CN_RAFT_MSG_SNAP && m->snap_len > 0 && m->snap_data == NULL) return false;
    return true;
}

/* Whether a committed entry of our log removed member id. Not being in the configuration is not
 * enough: a member that joins through an entry this leader does not have (an earlier leader's,
 * not committed yet, that a later leader may still commit) is not a member here either, and
 * telling it it was removed would end it for good. A removal older than the log's start is not
 * seen here; the node's transport refuses such a member from its own records. */
static bool removal_committed(const struct cn_raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->log.n && r->log.ents[i].index <= r->log.committed; i++) {
        const struct cn_raft_entry *e = &r->log.ents[i];
        struct cn_raft_conf_change cc;
        if (e->type == CN_RAFT_ENTRY_CONF &&
            cn_raft_conf_change_decode(e->data, e->len, &cc) == 0 && cc.op == CN_RAFT_CONF_REMOVE &&
            cc.id == id)
            return true;
    }
    return false;
}

int cn_raft_step(struct cn_raft *r, const struct cn_raft_msg *m)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (!valid_msg(m)) return CN_ERR_PROTO;
    if (m->to != r->id) return CN_ERR_PROTO;

    if (m->type == CN_RAFT_MSG_REMOVED) {
        /* sent only for a committed removal, which no later leader undoes: trust it at any
         * term (a removed member may have a higher term than the cluster) */
        TRACE(r, "removed from the cluster by %llu", (unsigned long long)m->from);
        r->removed = true;
        if (r->role != CN_RAFT_FOLLOWER) cn_raft__become_follower(r, r->term, CN_RAFT_NONE);
        return 0;
    }
    if (r->role == CN_RAFT_LEADER && !cn_raft__conf_has_member(&r->conf, m->from) &&
        r->conf_index <= r->log.committed && removal_committed(r, m->from)) {
        /* §4.2.3: a member whose removal is committed learns it here, before any lease or
         * term rule could make us ignore it, and stops campaigning. (While the removal is not
         * committed the message goes through the usual rules: it may carry a higher term
         * that must depose us.) */
        cn_raft__send(r, CN_RAFT_MSG_REMOVED, m->from);
        return 0;
    }

    bool is_vote_req = m->type == CN_RAFT_MSG_VOTE || m->type == CN_RAFT_MSG_PREVOTE;
    if (m->term > r->term) {
        if (is_vote_req) {
            /* §4.2.3 / §6.2: a member that heard from a leader within the minimum election
             * timeout ignores vote requests, so a partitioned or removed member cannot depose a
             * working leader. A transfer's vote is exempt. */
            bool force = (m->flags & CN_RAFT_FLAG_TRANSFER) != 0;
            bool in_lease = r->cfg.check_quorum && r->lead != CN_RAFT_NONE &&
                            r->election_elapsed < r->cfg.election_ticks;
            if (!force && in_lease) {
                TRACE(r, "ignored %s from %llu in lease", cn_raft_msg_type_name(m->type),
                      (unsigned long long)m->from);
                return 0;
            }
        }
        if (m->type == CN_RAFT_MSG_PREVOTE) {
            /* a pre-vote never changes our term */
        } else if (m->type == CN_RAFT_MSG_PREVOTE_RESP && !(m->flags & CN_RAFT_FLAG_REJECT)) {
            /* granted pre-votes carry the term we will campaign for */
        } else {
            bool from_leader = m->type == CN_RAFT_MSG_APP || m->type == CN_RAFT_MSG_HEARTBEAT ||
                               m->type == CN_RAFT_MSG_SNAP;
            /* thesis Figure 3.1: only hearing from the leader or granting a vote restarts the
             * election timer. A higher term alone does not, so that stale candidates, which
             * the up-to-date members keep rejecting, cannot keep those members from
             * campaigning by resetting their timers round after round. */
            bool keep_timer = !from_leader && r->role != CN_RAFT_LEADER;
            unsigned elapsed = r->election_elapsed, timeout = r->randomized_timeout;
            cn_raft__become_follower(r, m->term, from_leader ? m->from : CN_RAFT_NONE);
            if (keep_timer) {
                r->election_elapsed = elapsed;
                r->randomized_timeout = timeout;
            }
        }
    } else if (m->term < r->term) {
        if (m->type == CN_RAFT_MSG_APP || m->type == CN_RAFT_MSG_HEARTBEAT) {
            /* a stale leader: tell it our term so it steps down (the paper's rule). It may be
             * cut off from everyone else and would otherwise never learn it; and we may have
             * campaigned our term up alone with a configuration so old that our vote requests
             * reach nobody of the current one, so this answer is the only way back (etcd
             * answers only with pre-vote or check-quorum on, and relies on the vote requests
             * otherwise; the simulation found the stall). */
            cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
        } else if (m->type == CN_RAFT_MSG_PREVOTE) {
            struct cn_raft_msg *out = cn_raft__send(r, CN_RAFT_MSG_PREVOTE_RESP, m->from);
            out->flags = CN_RAFT_FLAG_REJECT;
        }
        return 0;
    }

    switch (m->type) {
    case CN_RAFT_MSG_VOTE:
    case CN_RAFT_MSG_PREVOTE:
        cn_raft__election_on_vote_request(r, m);
        return 0;
    case CN_RAFT_MSG_VOTE_RESP:
    case CN_RAFT_MSG_PREVOTE_RESP:
        cn_raft__election_on_vote_response(r, m);
        return 0;
    default:
        break;
    }

    switch (r->role) {
    case CN_RAFT_LEADER: {
        struct progress *pr = cn_raft__progress_find(r, m->from);
        if (pr == NULL) return 0;
        switch (m->type) {
        case CN_RAFT_MSG_APP_RESP:
            pr->recent_active = true;
            cn_raft__replication_on_append_response(r, m);
            break;
        case CN_RAFT_MSG_HEARTBEAT_RESP:
            pr->recent_active = true;
            if (m->ctx > pr->read_seq) pr->read_seq = m->ctx;
            cn_raft__replication_on_heartbeat_response(r, m);
            break;
        case CN_RAFT_MSG_READ_INDEX:
            pr->recent_active = true;
            cn_raft__read_index_request(r, m->from, m->ctx);
            break;
        default:
            break; /* APP/HEARTBEAT/SNAP at our own term cannot come from another leader */
        }
        return 0;
    }
    case CN_RAFT_PRE_CANDIDATE:
    case CN_RAFT_CANDIDATE:
        if (m->type == CN_RAFT_MSG_APP || m->type == CN_RAFT_MSG_HEARTBEAT ||
            m->type == CN_RAFT_MSG_SNAP) {
            /* someone won this term */
            cn_raft__become_follower(r, m->term, m->from);
        } else {
            return 0;
        }
        __attribute__((fallthrough)); /* to follower handling */
    case CN_RAFT_FOLLOWER:
        switch (m->type) {
        case CN_RAFT_MSG_APP:
            r->election_elapsed = 0;
            r->lead = m->from;
            cn_raft__replication_on_append(r, m);
            break;
        case CN_RAFT_MSG_HEARTBEAT:
            r->election_elapsed = 0;
            r->lead = m->from;
            cn_raft__replication_on_heartbeat(r, m);
            break;
        case CN_RAFT_MSG_SNAP:
            r->election_elapsed = 0;
            r->lead = m->from;
            cn_raft__snapshot_on_install(r, m);
            break;
        case CN_RAFT_MSG_TIMEOUT_NOW:
            if (cn_raft__election_promotable(r)) {
                TRACE(r, "timeout-now from %llu: campaigning", (unsigned long long)m->from);
                cn_raft__election_campaign(r, false, true);
            }
            break;
        case CN_RAFT_MSG_READ_INDEX_RESP:
            cn_raft__read_index_on_response(r, m);
            break;
        default:
            break;
        }
        return 0;
    }
    return 0;
}

void cn_raft_tick(struct cn_raft *r)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    cn_raft__election_tick(r);
}

/* Whether the leader takes a proposal of len bytes now: 0 or the error cn_raft_propose names. */
static int admit(const struct cn_raft *r, size_t len)
{
    if (r->role != CN_RAFT_LEADER) return CN_ERR_NO_LEADER;
    if (r->transferee != CN_RAFT_NONE) return -EBUSY;
    if (len > r->cfg.max_entry_bytes) return CN_ERR_TOO_LARGE;
    /* a bounded queue; an entry of any size is let in while nothing is pending */
    if (r->uncommitted > 0 && r->uncommitted + len > r->cfg.max_uncommitted_bytes) return -ENOBUFS;
    return 0;
}

int cn_raft_propose_owned(struct cn_raft *r, void *data, size_t len, uint64_t *index,
                          uint64_t *term)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    int rc = admit(r, len);
    if (rc != 0) return rc; /* data stays the caller's */
    if (len == 0) {
        cn_free(data); /* taken all the same; an empty entry carries no bytes */
        data = NULL;
    }
    r->uncommitted += len;
    cn_raft__replication_leader_append(r, CN_RAFT_ENTRY_NORMAL, data, len);
    if (index) *index = cn_raft__log_last_index(&r->log);
    if (term) *term = r->term;
    return 0;
}

int cn_raft_propose(struct cn_raft *r, const void *data, size_t len, uint64_t *index,
                    uint64_t *term)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    int rc = admit(r, len); /* before the copy: a refused proposal costs none */
    if (rc != 0) return rc;
    return cn_raft_propose_owned(r, len ? cn_xmemdup(data, len) : NULL, len, index, term);
}

/* ---- ready / advance -------------------------------------------------------------------- */

static struct cn_raft_hard_state hard_state(const struct cn_raft *r)
{
    struct cn_raft_hard_state hs = {r->term, r->vote, r->log.committed};
    return hs;
}

static bool hs_changed(const struct cn_raft *r)
{
    struct cn_raft_hard_state hs = hard_state(r);
    return hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
           hs.commit != r->prev_hs.commit;
}

bool cn_raft_has_ready(struct cn_raft *r)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role == CN_RAFT_LEADER && (r->bcast_pending || r->read_round_pending)) return true;
    if (r->n_msgs > 0 || r->snap_pending || hs_changed(r)) return true;
    if (r->log.stabled < cn_raft__log_last_index(&r->log)) return true;
    if (r->log.applied < r->log.committed) return true;
    for (size_t i = 0; i < r->reads_wait_apply.n; i++)
        if (r->reads_wait_apply.v[i].index <= r->log.committed) return true;
    return false;
}

/* Drops an APP whose entries are no longer what they were when it was queued (the log was
 * truncated or compacted meanwhile) and points the rest at the log. Since a log's prefix is
 * fixed by the term of its last entry (log matching, §3.5), one term check suffices. */
static bool resolve_msg(struct cn_raft *r, struct cn_raft_msg *m, uint64_t last_term)
{
    if (m->type != CN_RAFT_MSG_APP || m->n_entries == 0) return true;
    uint64_t lo = m->index + 1, hi = m->index + m->n_entries;
    if (lo <= r->log.snap_index || cn_raft__log_term(&r->log, hi) != last_term) return false;
    m->entries = cn_raft__log_entry(&r->log, lo);
    return true;
}

void cn_raft_ready(struct cn_raft *r, struct cn_raft_ready *rd)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role == CN_RAFT_LEADER) {
        cn_raft__replication_flush(r);
        cn_raft__read_index_flush(r);
    }
    r->bcast_pending = false;
    r->read_round_pending = false;
    memset(rd, 0, sizeof(*rd));
    r->ready_out = true;
    if (hs_changed(r)) {
        rd->has_hard_state = true;
        rd->hard_state = hard_state(r);
    }
    if (r->snap_pending) rd->snapshot = &r->snap_in;
    uint64_t last = cn_raft__log_last_index(&r->log);
    if (r->log.stabled < last) {
        rd->entries = cn_raft__log_entry(&r->log, r->log.stabled + 1);
        rd->n_entries = (size_t)(last - r->log.stabled);
    }
    size_t k = 0;
    for (size_t i = 0; i < r->n_msgs; i++) {
        if (!resolve_msg(r, &r->msgs[i], r->msg_last_term[i])) continue;
        if (k != i) r->msgs[k] = r->msgs[i];
        k++;
    }
    r->n_msgs = k;
    rd->msgs = r->msgs;
    rd->n_msgs = r->n_msgs;
    if (r->log.applied < r->log.committed) {
        rd->committed = cn_raft__log_entry(&r->log, r->log.applied + 1);
        rd->n_committed = (size_t)(r->log.committed - r->log.applied);
    }
    /* reads become safe once the entries of this batch are applied */
    uint64_t applied_after = r->log.committed;
    r->n_reads_out = 0;
    struct read_queue *q = &r->reads_wait_apply;
    size_t j = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (q->v[i].index <= applied_after) {
            if (r->n_reads_out == r->cap_reads_out) {
                r->cap_reads_out = r->cap_reads_out ? r->cap_reads_out * 2 : 16;
                r->reads_out = cn_xrealloc(r->reads_out, r->cap_reads_out * sizeof(*r->reads_out));
            }
            r->reads_out[r->n_reads_out].index = q->v[i].index;
            r->reads_out[r->n_reads_out].ctx = q->v[i].ctx;
            r->n_reads_out++;
        } else {
            q->v[j++] = q->v[i];
        }
    }
    q->n = j;
    rd->reads = r->reads_out;
    rd->n_reads = r->n_reads_out;
    rd->lead = r->lead;
    rd->role = r->role;
}

void cn_raft_advance(struct cn_raft *r, const struct cn_raft_ready *rd)
{
    CN_ASSERT(r->ready_out);
    r->ready_out = false;
    if (rd->has_hard_state) r->prev_hs = rd->hard_state;
    if (rd->snapshot != NULL) {
        r->snap_pending = false;
        cn_free(r->snap_in_data);
        r->snap_in_data = NULL;
        r->snap_in.data = NULL;
        r->snap_in.len = 0;
    }
    if (rd->n_entries > 0) {
        uint64_t last = rd->entries[rd->n_entries - 1].index;
        if (last > r->log.stabled) r->log.stabled = last;
    }
    if (rd->n_committed > 0) r->log.applied = rd->committed[rd->n_committed - 1].index;
    r->n_msgs = 0;
    r->n_reads_out = 0;
    if (r->role == CN_RAFT_LEADER) {
        /* §10.2.1: the leader's own copy counts once it is durable */
        struct progress *self = cn_raft__progress_find(r, r->id);
        if (self != NULL && cn_raft__progress_maybe_update(self, r->log.stabled)) {
            if (cn_raft__replication_maybe_commit(r)) r->bcast_pending = true;
        }
    }
}

void cn_raft_status(const struct cn_raft *r, struct cn_raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = r->id;
    st->role = r->role;
    st->term = r->term;
    st->vote = r->vote;
    st->lead = r->lead;
    st->commit = r->log.committed;
    st->applied = r->log.applied;
    st->last_index = cn_raft__log_last_index(&r->log);
    st->first_index = r->log.snap_index + 1;
    st->removed = r->removed;
    st->conf = r->conf;
    st->transferee = r->transferee;
}

void cn_raft_snapshot_meta(const struct cn_raft *r, struct cn_raft_snapshot_meta *meta)
{
    meta->index = r->log.snap_index;
    meta->term = r->log.snap_term;
    meta->conf = r->log.snap_conf;
}
