/* transfer: leadership transfer (thesis §3.10). The leader stops accepting proposals, brings the
 * target's log up to date, then sends TIMEOUT_NOW so the target campaigns at once (its vote
 * requests carry CN_RAFT_FLAG_TRANSFER to pass other members' leases). Gives up after one
 * election timeout. */
#include "common/err.h"
#include "common/log.h"
#include "raft_int.h"

static void send_timeout_now(struct cn_raft *r, struct progress *pr)
{
    cn_raft__send(r, CN_RAFT_MSG_TIMEOUT_NOW, pr->id);
    TRACE(r, "transfer: timeout-now to %llu", (unsigned long long)pr->id);
}

int cn_raft_transfer(struct cn_raft *r, uint64_t target)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role != CN_RAFT_LEADER) return CN_ERR_NO_LEADER;
    if (target == r->id || !cn_raft__conf_has_voter(&r->conf, target)) return CN_ERR_INVAL;
    struct progress *pr = cn_raft__progress_find(r, target);
    if (pr == NULL) return CN_ERR_INVAL;
    r->transferee = target;
    r->election_elapsed = 0; /* the transfer gets one full election timeout */
    if (pr->match == cn_raft__log_last_index(&r->log)) {
        send_timeout_now(r, pr);
    } else {
        /* appends to it may have been lost: resend from what it acknowledged */
        if (pr->state == PR_REPLICATE) cn_raft__progress_become_probe(pr);
        r->bcast_pending = true;
    }
    return 0;
}

void cn_raft__transfer_on_progress(struct cn_raft *r, struct progress *pr)
{
    if (r->role != CN_RAFT_LEADER || r->transferee != pr->id) return;
    if (pr->match == cn_raft__log_last_index(&r->log)) send_timeout_now(r, pr);
}

void cn_raft__transfer_tick(struct cn_raft *r)
{
    /* called once per election timeout on the leader */
    if (r->transferee != CN_RAFT_NONE) cn_raft__transfer_abort(r);
}

void cn_raft__transfer_abort(struct cn_raft *r)
{
    TRACE(r, "transfer to %llu abandoned", (unsigned long long)r->transferee);
    r->transferee = CN_RAFT_NONE;
}
