/* snapshot: log compaction and InstallSnapshot (thesis chapter 5). The core keeps only the
 * snapshot's metadata; the caller saves and attaches the state machine's bytes. */
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "raft_int.h"

int cn_raft_compact(struct cn_raft *r, uint64_t index)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (index <= r->log.snap_index || index > r->log.applied) return CN_ERR_INVAL;
    struct cn_raft_conf conf;
    cn_raft__membership_conf_at(r, index, &conf);
    cn_raft__log_drop_prefix(&r->log, index, cn_raft__log_term(&r->log, index));
    r->log.snap_conf = conf;
    TRACE(r, "compacted to %llu", (unsigned long long)index);
    return 0;
}

void cn_raft__snapshot_send(struct cn_raft *r, struct progress *pr)
{
    struct cn_raft_msg *m = cn_raft__send(r, CN_RAFT_MSG_SNAP, pr->id);
    m->snap.index = r->log.snap_index;
    m->snap.term = r->log.snap_term;
    m->snap.conf = r->log.snap_conf;
    cn_raft__progress_become_snapshot(pr, r->log.snap_index);
    TRACE(r, "sending snapshot %llu to %llu", (unsigned long long)r->log.snap_index,
          (unsigned long long)pr->id);
}

void cn_raft_report_snapshot(struct cn_raft *r, uint64_t id, bool ok)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role != CN_RAFT_LEADER) return;
    struct progress *pr = cn_raft__progress_find(r, id);
    if (pr == NULL || pr->state != PR_SNAPSHOT) return;
    if (!ok) pr->pending_snap = 0;
    /* either way, probe from after the snapshot (or from match on failure) */
    cn_raft__progress_become_probe(pr);
    pr->probe_sent = ok; /* on success wait for the follower's answer */
}

void cn_raft__snapshot_on_install(struct cn_raft *r, const struct cn_raft_msg *m)
{
    struct raft_log *l = &r->log;
    struct cn_raft_msg *out;
    const struct cn_raft_snapshot_meta *s = &m->snap;
    if (s->index <= l->committed) {
        out = cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
        out->index = l->committed;
        return;
    }
    if (cn_raft__log_match_term(l, s->index, s->term)) {
        /* we already hold that prefix: just learn it is committed */
        cn_raft__replication_commit_to(r, s->index);
        out = cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
        out->index = l->committed;
        return;
    }
    TRACE(r, "installing snapshot index=%llu term=%llu", (unsigned long long)s->index,
          (unsigned long long)s->term);
    cn_raft__log_reset(l, s->index, s->term);
    l->snap_conf = s->conf;
    cn_raft__membership_recompute(r);
    cn_free(r->snap_in_data);
    r->snap_in_data = m->snap_len ? cn_xmemdup(m->snap_data, m->snap_len) : NULL;
    r->snap_in.meta = *s;
    r->snap_in.data = r->snap_in_data;
    r->snap_in.len = m->snap_len;
    r->snap_pending = true;
    /* reads waiting for an index the snapshot covers are satisfied by it */
    out = cn_raft__send(r, CN_RAFT_MSG_APP_RESP, m->from);
    out->index = s->index;
}
