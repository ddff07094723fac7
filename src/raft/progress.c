/* progress: the leader's flow control per member (etcd's tracker.Progress and Inflights):
 * probe until the follower's match is known, then pipeline within a window of messages and
 * bytes, or wait for a snapshot. Thesis §10.2.2 (pipelining). */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "raft_int.h"

void cn_raft__progress_init(struct progress *pr, uint64_t id, bool learner, uint64_t next,
                            unsigned ins_cap)
{
    if (pr->ins.cap != ins_cap) {
        cn_raft__progress_free(pr);
        pr->ins.cap = ins_cap;
        pr->ins.last = cn_xcalloc(ins_cap, sizeof(uint64_t));
        pr->ins.size = cn_xcalloc(ins_cap, sizeof(size_t));
    }
    pr->id = id;
    pr->learner = learner;
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->recent_active = false;
    pr->match = 0;
    pr->next = next;
    pr->pending_snap = 0;
    pr->snap_ticks = 0;
    pr->sent_commit = 0;
    pr->match_at_hb = 0;
    pr->stalled_hbs = 0;
    pr->read_seq = 0;
    pr->ins.start = pr->ins.count = 0;
    pr->ins.bytes = 0;
}

void cn_raft__progress_free(struct progress *pr)
{
    cn_free(pr->ins.last);
    cn_free(pr->ins.size);
    pr->ins.last = NULL;
    pr->ins.size = NULL;
    pr->ins.cap = 0;
}

static void reset(struct progress *pr, uint8_t state)
{
    pr->state = state;
    pr->probe_sent = false;
    pr->pending_snap = 0;
    pr->snap_ticks = 0;
    pr->ins.start = pr->ins.count = 0;
    pr->ins.bytes = 0;
}

void cn_raft__progress_become_probe(struct progress *pr)
{
    /* After a snapshot, resume right after it (it is known to be there once acked). */
    if (pr->state == PR_SNAPSHOT) {
        uint64_t snap = pr->pending_snap;
        reset(pr, PR_PROBE);
        pr->next = (pr->match + 1 > snap + 1) ? pr->match + 1 : snap + 1;
    } else {
        reset(pr, PR_PROBE);
        pr->next = pr->match + 1;
    }
}

void cn_raft__progress_become_replicate(struct progress *pr)
{
    reset(pr, PR_REPLICATE);
    pr->next = pr->match + 1;
}

void cn_raft__progress_become_snapshot(struct progress *pr, uint64_t snap_index)
{
    reset(pr, PR_SNAPSHOT);
    pr->pending_snap = snap_index;
}

bool cn_raft__progress_is_paused(const struct progress *pr, const struct cn_raft_config *cfg)
{
    switch (pr->state) {
    case PR_PROBE:
        return pr->probe_sent;
    case PR_REPLICATE:
        return pr->ins.count >= pr->ins.cap || pr->ins.bytes >= cfg->max_inflight_bytes;
    default:
        return true;
    }
}

bool cn_raft__progress_maybe_update(struct progress *pr, uint64_t n)
{
    bool updated = false;
    if (pr->match < n) {
        pr->match = n;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < n + 1) pr->next = n + 1;
    return updated;
}

bool cn_raft__progress_maybe_decr_to(struct progress *pr, uint64_t rejected, uint64_t match_hint)
{
    if (pr->state == PR_REPLICATE) {
        /* A rejection of something already matched is a stale, reordered answer. */
        if (rejected <= pr->match) return false;
        pr->next = pr->match + 1;
        return true;
    }
    /* Probing: only the answer to the probe in flight (next - 1) counts. */
    if (pr->next == 0 || pr->next - 1 != rejected) return false;
    uint64_t n = rejected < match_hint + 1 ? rejected : match_hint + 1;
    if (n < pr->match + 1) n = pr->match + 1;
    pr->next = n;
    pr->probe_sent = false;
    return true;
}

void cn_raft__progress_sent_entries(struct progress *pr, uint64_t last, size_t bytes)
{
    if (pr->state == PR_REPLICATE) {
        struct inflights *in = &pr->ins;
        CN_ASSERT(in->count < in->cap);
        unsigned slot = (in->start + in->count) % in->cap;
        in->last[slot] = last;
        in->size[slot] = bytes;
        in->count++;
        in->bytes += bytes;
        pr->next = last + 1;
    } else if (pr->state == PR_PROBE) {
        pr->probe_sent = true;
    }
}

void cn_raft__inflights_free_le(struct inflights *in, uint64_t index)
{
    while (in->count > 0 && in->last[in->start] <= index) {
        in->bytes -= in->size[in->start];
        in->start = (in->start + 1) % in->cap;
        in->count--;
    }
}

struct progress *cn_raft__progress_find(struct cn_raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id) return &r->prs[i];
    return NULL;
}
