/* read_index: linearizable reads without log writes (thesis §6.4). The leader records its
 * commit index as the read index, confirms it is still leader with one heartbeat round (every
 * read that arrived before the round shares it), and the read is served once the state machine
 * has applied up to the read index. A follower asks the leader for the index.
 *
 * Rounds are numbered: a read queued with round s is confirmed once a quorum of voters has
 * answered a heartbeat carrying a round >= s (sent after the read arrived). */
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "raft_int.h"

void cn_raft__read_queue_push(struct read_queue *q, uint64_t index, uint64_t ctx, uint64_t from,
                              uint64_t seq)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = cn_xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    struct pending_read *p = &q->v[q->n++];
    p->index = index;
    p->ctx = ctx;
    p->from = from;
    p->seq = seq;
}

void cn_raft__read_queue_free(struct read_queue *q)
{
    cn_free(q->v);
    q->v = NULL;
    q->n = q->cap = 0;
}

static void confirm(struct cn_raft *r, const struct pending_read *p)
{
    if (p->from == r->id) {
        cn_raft__read_queue_push(&r->reads_wait_apply, p->index, p->ctx, p->from, 0);
    } else {
        struct cn_raft_msg *m = cn_raft__send(r, CN_RAFT_MSG_READ_INDEX_RESP, p->from);
        m->index = p->index;
        m->ctx = p->ctx;
    }
}

void cn_raft__read_index_request(struct cn_raft *r, uint64_t from, uint64_t ctx)
{
    /* §6.4 step 1: until an entry of its term is committed, a new leader does not know the
     * commit index; the read waits for it */
    if (cn_raft__log_term(&r->log, r->log.committed) != r->term) {
        cn_raft__read_queue_push(&r->reads_wait_commit, 0, ctx, from, 0);
        return;
    }
    struct pending_read p = {r->log.committed, ctx, from, r->read_seq + 1};
    if (cn_raft__election_quorum(r) <= 1) {
        confirm(r, &p);
        return;
    }
    cn_raft__read_queue_push(&r->reads_wait_quorum, p.index, p.ctx, p.from, p.seq);
    r->read_round_pending = true;
}

void cn_raft__read_index_on_leader_commit(struct cn_raft *r)
{
    struct read_queue q = r->reads_wait_commit;
    r->reads_wait_commit.v = NULL;
    r->reads_wait_commit.n = r->reads_wait_commit.cap = 0;
    for (size_t i = 0; i < q.n; i++)
        cn_raft__read_index_request(r, q.v[i].from, q.v[i].ctx);
    /* keep the buffer for next time */
    if (r->reads_wait_commit.v == NULL) {
        q.n = 0;
        r->reads_wait_commit = q;
    } else {
        cn_raft__read_queue_free(&q);
    }
}

void cn_raft__read_index_flush(struct cn_raft *r)
{
    if (!r->read_round_pending) return;
    r->read_round_pending = false;
    r->read_seq++;
    cn_raft__replication_heartbeat(r, r->read_seq);
    r->heartbeat_elapsed = 0;
}

void cn_raft__read_index_on_heartbeat_response(struct cn_raft *r)
{
    struct read_queue *q = &r->reads_wait_quorum;
    if (q->n == 0) return;
    uint64_t s[CN_RAFT_MAX_MEMBERS];
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        const struct progress *pr = &r->prs[i];
        if (pr->learner) continue;
        s[n++] = pr->id == r->id ? r->read_seq : pr->read_seq;
    }
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && s[j - 1] < s[j]; j--) {
            uint64_t t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    unsigned quorum = cn_raft__election_quorum(r);
    if (quorum > n) return;
    uint64_t acked = s[quorum - 1];
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (q->v[i].seq <= acked) {
            struct pending_read p = q->v[i];
            confirm(r, &p);
        } else {
            q->v[k++] = q->v[i];
        }
    }
    q->n = k;
}

void cn_raft__read_index_on_response(struct cn_raft *r, const struct cn_raft_msg *m)
{
    if (m->flags & CN_RAFT_FLAG_REJECT) return;
    cn_raft__read_queue_push(&r->reads_wait_apply, m->index, m->ctx, r->id, 0);
}

void cn_raft__read_index_reset(struct cn_raft *r)
{
    /* unconfirmed reads die with the leadership they were waiting on; confirmed ones stay */
    r->reads_wait_commit.n = 0;
    r->reads_wait_quorum.n = 0;
    r->read_round_pending = false;
}

int cn_raft_read_index(struct cn_raft *r, uint64_t ctx)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role == CN_RAFT_LEADER) {
        cn_raft__read_index_request(r, r->id, ctx);
        return 0;
    }
    if (r->lead == CN_RAFT_NONE) return CN_ERR_NO_LEADER;
    struct cn_raft_msg *m = cn_raft__send(r, CN_RAFT_MSG_READ_INDEX, r->lead);
    m->ctx = ctx;
    return 0;
}
