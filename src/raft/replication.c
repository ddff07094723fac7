/* replication: AppendEntries on both sides (thesis §3.5), the commit rule (§3.6.2, the
 * paper's Figure 8), heartbeats, and the leader's batched, pipelined sending (§10.2.2). */
#include "common/log.h"
#include "raft_int.h"

void cn_raft__replication_leader_append(struct cn_raft *r, uint8_t type, void *data, size_t len)
{
    cn_raft__log_append_owned(&r->log, r->term, type, data, len);
    struct cn_raft_entry *e = &r->log.ents[r->log.n - 1];
    cn_raft__membership_on_append(r, e);
    /* sent at the next ready, so every proposal made meanwhile travels in one message */
    r->bcast_pending = true;
    /* a one-member cluster commits as soon as the entry is durable (cn_raft_advance) */
}

bool cn_raft__replication_send_append(struct cn_raft *r, struct progress *pr, bool send_if_empty)
{
    if (cn_raft__progress_is_paused(pr, &r->cfg)) return false;
    uint64_t prev = pr->next - 1;
    uint64_t last = cn_raft__log_last_index(&r->log);
    if (prev < r->log.snap_index || (prev > last)) {
        if (prev > last) {
            /* next ran past our log (we were a follower with a longer log once): restart */
            pr->next = last + 1;
            prev = last;
        } else {
            cn_raft__snapshot_send(r, pr);
            return true;
        }
    }
    uint64_t prev_term = cn_raft__log_term(&r->log, prev);
    size_t n = 0, bytes = 0;
    for (uint64_t i = prev + 1; i <= last; i++) {
        size_t len = cn_raft__log_entry(&r->log, i)->len;
        if (n > 0 && bytes + len > r->cfg.max_msg_bytes) break;
        n++;
        bytes += len;
        if (bytes >= r->cfg.max_msg_bytes) break;
    }
    uint64_t commit = r->log.committed;
    if (n == 0 && !send_if_empty) return false;
    struct cn_raft_msg *m = cn_raft__send(r, CN_RAFT_MSG_APP, pr->id);
    m->index = prev;
    m->log_term = prev_term;
    m->commit = commit;
    m->n_entries = n;
    if (n > 0) {
        r->msg_last_term[r->n_msgs - 1] = cn_raft__log_term(&r->log, prev + n);
        cn_raft__progress_sent_entries(pr, prev + n, bytes);
    } else if (pr->state == PR_PROBE) {
        pr->probe_sent = true;
    }
    if (commit > pr->sent_commit) pr->sent_commit = commit;
    return true;
}

/* Sends what accumulated since the last ready: all new entries each follower's window allows,
 * or an empty append when only the commit index moved. */
void cn_raft__replication_flush(struct cn_raft *r)
{
    if (!r->bcast_pending) return;
    r->bcast_pending = false;
    for (unsigned i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->id) continue;
        bool sent = false;
        while (cn_raft__replication_send_append(r, pr, false)) {
            sent = true;
            if (pr->state != PR_REPLICATE) break;
        }
        /* an empty append still carries the commit index, or probes a follower whose match
         * is unknown */
        bool probe = pr->state == PR_PROBE && pr->match < cn_raft__log_last_index(&r->log);
        if (!sent && (probe || pr->sent_commit < r->log.committed))
            cn_raft__replication_send_append(r, pr, true);
    }
}

void cn_raft__replication_heartbeat(struct cn_raft *r, uint64_t ctx)
{
    for (unsigned i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->id) continue;
        struct cn_raft_msg *m = cn_raft__send(r, CN_RAFT_MSG_HEARTBEAT, pr->id);
        /* never tell a follower to commit past what it is known to hold */
        m->commit = pr->match < r->log.committed ? pr->match : r->log.committed;
        m->ctx = ctx;
    }
}

static int cmp_desc(uint64_t a, uint64_t b)
{
    return a < b ? 1 : a > b ? -1 : 0;
}

bool cn_raft__replication_maybe_commit(struct cn_raft *r)
{
    uint64_t m[CN_RAFT_MAX_MEMBERS];
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_prs; i++)
        if (!r->prs[i].learner) m[n++] = r->prs[i].match;
    if (n == 0) return false;
    /* insertion sort, descending; n is tiny */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && cmp_desc(m[j - 1], m[j]) > 0; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    unsigned q = cn_raft__election_quorum(r);
    if (q > n) return false;
    uint64_t mci = m[q - 1];
    if (mci <= r->log.committed) return false;
    /* §3.6.2: only an entry of the leader's own term is committed by counting replicas;
     * earlier ones are committed indirectly, by the Log Matching Property. */
    if (cn_raft__log_term(&r->log, mci) != r->term) {
        if (!r->cfg.unsafe_commit_prev_term) return false;
        TRACE(r, "UNSAFE: committing index=%llu of term %llu by counting", (unsigned long long)mci,
              (unsigned long long)cn_raft__log_term(&r->log, mci));
    }
    cn_raft__replication_commit_to(r, mci);
    return true;
}

void cn_raft__replication_commit_to(struct cn_raft *r, uint64_t commit)
{
    if (commit <= r->log.committed) return;
    CN_ASSERT(commit <= cn_raft__log_last_index(&r->log));
    bool first_in_term =
        r->role == CN_RAFT_LEADER && cn_raft__log_term(&r->log, r->log.committed) != r->term;
    if (r->role == CN_RAFT_LEADER) {
        for (uint64_t i = r->log.committed + 1; i <= commit; i++) {
            const struct cn_raft_entry *e = cn_raft__log_entry(&r->log, i);
            if (e != NULL && e->term == r->term && e->type == CN_RAFT_ENTRY_NORMAL)
                r->uncommitted -= e->len < r->uncommitted ? e->len : r->uncommitted;
        }
    }
    r->log.committed = commit;
    if (r->role == CN_RAFT_LEADER) {
        if (first_in_term && cn_raft__log_term(&r->log, commit) == r->term)
            cn_raft__read_index_on_leader_commit(r);
        cn_raft__membership_on_commit(r);
    }
}

void cn_raft__replication_on_append(struct cn_raft *r, const struct cn_raft_msg *m)
{
    struct raft_log *l = &r->log;
    struct cn_raft_msg *out;
    if (m->index < l->committed) {
        /* everything up to committed is settled; say so and let the leader move on */
        out = cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
        out->index = l->committed;
        return;
    }
    if (!cn_raft__log_match_term(l, m->index, m->log_term)) {
        /* fast backtracking: point the leader at the last index that can possibly match */
        uint64_t hint =
            m->index < cn_raft__log_last_index(l) ? m->index : cn_raft__log_last_index(l);
        hint = cn_raft__log_find_conflict_by_term(l, hint, m->log_term);
        out = cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
        out->flags = CN_RAFT_FLAG_REJECT;
        out->index = m->index;
        out->hint = hint;
        out->log_term = cn_raft__log_term(l, hint);
        TRACE(r, "rejected app index=%llu log_term=%llu hint=%llu", (unsigned long long)m->index,
              (unsigned long long)m->log_term, (unsigned long long)hint);
        return;
    }
    /* find the first entry we do not already hold; truncate a conflicting suffix there */
    size_t i = 0;
    for (; i < m->n_entries; i++) {
        const struct cn_raft_entry *e = &m->entries[i];
        if (e->index > cn_raft__log_last_index(l)) break;
        if (cn_raft__log_term(l, e->index) != e->term) {
            CN_ASSERT(e->index > l->committed);
            uint64_t conf_before = r->conf_index;
            cn_raft__log_truncate(l, e->index);
            if (conf_before >= e->index) cn_raft__membership_recompute(r);
            break;
        }
    }
    for (; i < m->n_entries; i++) {
        cn_raft__log_append_copy(l, &m->entries[i]);
        cn_raft__membership_on_append(r, &l->ents[l->n - 1]);
    }
    uint64_t last_new = m->index + m->n_entries;
    cn_raft__replication_commit_to(r, m->commit < last_new ? m->commit : last_new);
    out = cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
    out->index = last_new;
}

void cn_raft__replication_on_append_response(struct cn_raft *r, const struct cn_raft_msg *m)
{
    struct progress *pr = cn_raft__progress_find(r, m->from);
    if (m->flags & CN_RAFT_FLAG_REJECT) {
        uint64_t next_probe = m->hint;
        if (m->log_term > 0)
            next_probe = cn_raft__log_find_conflict_by_term(&r->log, m->hint, m->log_term);
        if (cn_raft__progress_maybe_decr_to(pr, m->index, next_probe)) {
            if (pr->state == PR_REPLICATE) cn_raft__progress_become_probe(pr);
            cn_raft__replication_send_append(r, pr, false);
        }
        return;
    }
    bool was_paused = cn_raft__progress_is_paused(pr, &r->cfg);
    if (!cn_raft__progress_maybe_update(pr, m->index)) return;
    if (pr->state == PR_PROBE) {
        cn_raft__progress_become_replicate(pr);
    } else if (pr->state == PR_SNAPSHOT && pr->match >= pr->pending_snap) {
        cn_raft__progress_become_probe(pr);
        cn_raft__progress_become_replicate(pr);
    } else if (pr->state == PR_REPLICATE) {
        cn_raft__inflights_free_le(&pr->ins, m->index);
    }
    if (cn_raft__replication_maybe_commit(r)) {
        r->bcast_pending = true;
    } else if (was_paused || pr->next <= cn_raft__log_last_index(&r->log)) {
        r->bcast_pending = true;
    }
    cn_raft__transfer_on_progress(r, pr);
}

void cn_raft__replication_on_heartbeat(struct cn_raft *r, const struct cn_raft_msg *m)
{
    uint64_t commit =
        m->commit < cn_raft__log_last_index(&r->log) ? m->commit : cn_raft__log_last_index(&r->log);
    cn_raft__replication_commit_to(r, commit);
    struct cn_raft_msg *out = cn_raft__send(r, CN_RAFT_MSG_HEARTBEAT_RESP, m->from);
    out->ctx = m->ctx;
}

static unsigned stall_limit(const struct cn_raft *r)
{
    unsigned n = r->cfg.election_ticks / (2 * r->cfg.heartbeat_ticks);
    return n >= 2 ? n : 2;
}

void cn_raft__replication_on_heartbeat_response(struct cn_raft *r, const struct cn_raft_msg *m)
{
    struct progress *pr = cn_raft__progress_find(r, m->from);
    pr->probe_sent = false;
    if (pr->state == PR_REPLICATE && pr->match < cn_raft__log_last_index(&r->log)) {
        /* the follower answers heartbeats but acknowledges none of the appends out to it for
         * half an election timeout: they were lost (the network may drop without telling us),
         * so probe and resend from match. Slow links only cost a retransmission. */
        if (pr->match != pr->match_at_hb) {
            pr->match_at_hb = pr->match;
            pr->stalled_hbs = 0;
        } else if (++pr->stalled_hbs >= stall_limit(r)) {
            pr->stalled_hbs = 0;
            cn_raft__progress_become_probe(pr);
        }
    }
    if (pr->match < cn_raft__log_last_index(&r->log) || pr->sent_commit < r->log.committed)
        r->bcast_pending = true;
    cn_raft__read_index_on_heartbeat_response(r);
}

bool cn_raft_progress(const struct cn_raft *r, uint64_t id, uint64_t *match, bool *recent_active)
{
    if (r->role != CN_RAFT_LEADER) return false;
    const struct progress *pr = cn_raft__progress_find((struct cn_raft *)r, id);
    if (pr == NULL) return false;
    *match = pr->match;
    *recent_active = pr->recent_active;
    return true;
}
