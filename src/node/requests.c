/* requests: proposals and reads from the moment a caller makes them until they are answered
 * (the state machine in node_int.h): queueing until a leader is known, proposing or forwarding,
 * the leader's PROP_FAIL and the follower's retry, ReadIndex, deadlines. */
#include <errno.h>
#include <inttypes.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "node_int.h"
#include "peer/peer.h"

void cn_node__finish_req(struct cn_node *n, struct cn_node_req *r, int rc, const void *res)
{
    cn_list_remove(&r->link);
    if (!r->is_read) n->npending--;
    cn_buf_free(&r->data);
    if (!r->detached && r->cb) r->cb(r->ctx, rc, res);
    cn_free(r);
}

struct cn_node_req *cn_node__new_req(struct cn_node *n, bool is_read, uint64_t seq,
                                     cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = CN_NEW(struct cn_node_req);
    r->cb = cb;
    r->ctx = ctx;
    r->is_read = is_read;
    r->seq = seq;
    cn_buf_init(&r->data);
    r->deadline_ns = n->io->now_ns(n->io) + (5000 + 2 * (int64_t)n->opt.election_ms) * CN_NS_PER_MS;
    if (!is_read) n->npending++;
    return r;
}

struct cn_node_req *cn_node__fail_later(struct cn_node *n, struct cn_node_req *r, int rc)
{
    r->rc = rc;
    cn_list_insert_tail(&n->done, &r->link);
    if (!r->is_read) n->stats.failed++;
    cn_node__kick(n);
    return r;
}

void cn_node_cmd_begin(struct cn_node *n, struct cn_node_cmd *c, size_t cmd_len)
{
    c->seq = n->next_seq++;
    cn_buf_init(&c->buf);
    cn_buf_reserve_exact(&c->buf, 1 + cn_uvarint_len(n->id) + cn_uvarint_len(c->seq) + cmd_len);
    cn_node__env_header(&c->buf, n->id, c->seq);
}

void cn_node_cmd_free(struct cn_node_cmd *c)
{
    cn_buf_free(&c->buf);
}

struct cn_node_req *cn_node_propose_cmd(struct cn_node *n, struct cn_node_cmd *c,
                                        cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = cn_node__new_req(n, false, c->seq, cb, ctx);
    r->data = c->buf; /* moved: the entry's payload from here on */
    cn_buf_init(&c->buf);
    if (!cn_node__accepting(n)) return cn_node__fail_later(n, r, CN_ERR_STOPPED);
    r->kind = CN_NODE__K_NORMAL;
    r->state = CN_NODE__QUEUED;
    cn_list_insert_tail(&n->queued, &r->link);
    cn_node__kick(n);
    return r;
}

struct cn_node_req *cn_node_propose(struct cn_node *n, const void *cmd, size_t len,
                                    cn_node_done_cb cb, void *ctx)
{
    struct cn_node_cmd c;
    cn_node_cmd_begin(n, &c, len);
    cn_buf_append(&c.buf, cmd, len);
    return cn_node_propose_cmd(n, &c, cb, ctx);
}

static struct cn_node_req *propose_conf(struct cn_node *n, uint8_t op, uint64_t id,
                                        const struct cn_buf *records, cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = cn_node__new_req(n, false, n->next_seq++, cb, ctx);
    if (!cn_node__accepting(n)) return cn_node__fail_later(n, r, CN_ERR_STOPPED);
    r->kind = CN_NODE__K_CONF;
    r->conf_op = op;
    r->conf_id = id;
    struct cn_buf c = CN_BUF_INIT;
    cn_node__env_header(&c, n->id, r->seq);
    if (records) cn_buf_append(&c, records->p, records->len);
    struct cn_raft_conf_change cc = {op, id, c.p, c.len};
    cn_raft_conf_change_encode(&cc, &r->data);
    cn_buf_free(&c);
    r->state = CN_NODE__QUEUED;
    cn_list_insert_tail(&n->queued, &r->link);
    cn_node__kick(n);
    return r;
}

struct cn_node_req *cn_node_add_member(struct cn_node *n, uint64_t id, const struct cn_buf *records,
                                       cn_node_done_cb cb, void *ctx)
{
    return propose_conf(n, CN_RAFT_CONF_ADD_LEARNER, id, records, cb, ctx);
}

struct cn_node_req *cn_node_remove_member(struct cn_node *n, uint64_t id,
                                          const struct cn_buf *records, cn_node_done_cb cb,
                                          void *ctx)
{
    return propose_conf(n, CN_RAFT_CONF_REMOVE, id, records, cb, ctx);
}

struct cn_node_req *cn_node_read_index(struct cn_node *n, cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = cn_node__new_req(n, true, n->next_seq++, cb, ctx);
    if (!cn_node__accepting(n)) return cn_node__fail_later(n, r, CN_ERR_STOPPED);
    r->state = CN_NODE__QUEUED;
    cn_list_insert_tail(&n->reads, &r->link);
    cn_node__kick(n);
    return r;
}

void cn_node_req_detach(struct cn_node_req *r)
{
    if (r) r->detached = true;
}

struct cn_node_req *cn_node__find_waiting(struct cn_node *n, uint64_t seq)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->waiting) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->seq == seq) return r;
    }
    return NULL;
}

int cn_node__raft_propose(struct cn_node *n, uint8_t kind, struct cn_buf *body)
{
    if (kind == CN_NODE__K_NORMAL) {
        int rc = cn_raft_propose_owned(n->raft, body->p, body->len, NULL, NULL);
        if (rc == 0) cn_buf_init(body); /* Raft's now */
        return rc;
    }
    struct cn_raft_conf_change cc;
    if (cn_raft_conf_change_decode(body->p, body->len, &cc) != 0) return CN_ERR_INVAL;
    return cn_raft_propose_conf(n->raft, &cc, NULL, NULL);
}

/* Codes with which a proposal goes back to the queue rather than failing: no leader yet, a
 * transfer in progress, the leader's queue full, no connection to the leader yet. */
static bool retryable(int rc)
{
    return rc == CN_ERR_NO_LEADER || rc == -EBUSY || rc == -ENOBUFS || rc == -ENOTCONN;
}

void cn_node__on_prop(struct cn_node *n, struct cn_node__inbox_item *it)
{
    int rc = cn_node__raft_propose(n, it->kind, &it->data);
    if (rc == 0) return;
    struct cn_buf b = CN_BUF_INIT;
    cn_node__prop_fail_encode(&b, it->seq, rc);
    /* a lost answer costs the follower its deadline: nothing else to do about it */
    if (n->io->send(n->io, it->from, CN_PEER_KIND_PROP_FAIL, b.p, b.len) != 0)
        CN_LOGD("node", "cannot answer a forwarded proposal to=%" PRIx64, it->from);
    cn_buf_free(&b);
}

void cn_node__on_prop_fail(struct cn_node *n, const void *p, size_t len)
{
    uint64_t seq;
    int rc;
    if (!cn_node__prop_fail_decode(p, len, &seq, &rc)) return;
    struct cn_node_req *q = cn_node__find_waiting(n, seq);
    if (q == NULL) return;
    if (retryable(rc)) {
        cn_list_remove(&q->link);
        q->state = CN_NODE__QUEUED;
        q->proposed = false;
        cn_list_insert_tail(&n->queued, &q->link);
    } else {
        n->stats.failed++;
        cn_node__finish_req(n, q, rc, NULL);
    }
}

void cn_node__submit(struct cn_node *n)
{
    if (n->lead == CN_RAFT_NONE) return;
    bool leader = n->role == CN_RAFT_LEADER;
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->queued) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        int rc;
        if (leader) {
            rc = cn_node__raft_propose(n, r->kind, &r->data);
        } else {
            /* the one copy a forwarded write costs here, into the frame (the transport copies
             * it onto the wire in any case) */
            cn_buf_reset(&n->frame);
            cn_node__prop_encode(&n->frame, r->seq, r->kind);
            cn_buf_append(&n->frame, r->data.p, r->data.len);
            rc = n->io->send(n->io, n->lead, CN_PEER_KIND_PROP, n->frame.p, n->frame.len);
        }
        if (rc != 0 && retryable(rc)) continue;
        cn_list_remove(&r->link);
        cn_list_insert_tail(&n->waiting, &r->link);
        if (rc != 0) {
            n->stats.failed++;
            cn_node__finish_req(n, r, rc, NULL);
            continue;
        }
        r->state = CN_NODE__WAITING;
        r->proposed = true;
        /* A forwarded proposal keeps its data: the leader may answer PROP_FAIL with a code that
         * sends it back to the queue (a transfer in progress, its queue full), and it is sent
         * again. One proposed here can only commit or fail (a normal one's data is Raft's). */
        if (leader) cn_buf_free(&r->data);
    }
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->state != CN_NODE__QUEUED) continue;
        if (cn_raft_read_index(n->raft, r->seq) == 0) r->state = CN_NODE__READ_WAIT;
    }
}

static void expire_list(struct cn_node *n, struct cn_list *l, int64_t now)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, l) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->deadline_ns > now) continue;
        if (r->proposed && !r->is_read) {
            /* It may still commit: etcd's timeout means "outcome unknown". Keep it to match
             * the entry if it comes, but answer now (invariant 2). */
            if (!r->detached && r->cb) r->cb(r->ctx, CN_ERR_TIMEOUT, NULL);
            r->detached = true;
            if (r->deadline_ns + 60 * CN_NS_PER_S <= now) {
                n->stats.failed++;
                cn_node__finish_req(n, r, CN_ERR_TIMEOUT, NULL);
            }
            continue;
        }
        n->stats.failed += !r->is_read;
        cn_node__finish_req(n, r, n->lead ? CN_ERR_TIMEOUT : CN_ERR_NO_LEADER, NULL);
    }
}

void cn_node__expire(struct cn_node *n, int64_t now_ns)
{
    expire_list(n, &n->queued, now_ns);
    expire_list(n, &n->waiting, now_ns);
    expire_list(n, &n->reads, now_ns);
}

void cn_node__answer_done(struct cn_node *n)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->done) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        cn_node__finish_req(n, r, r->rc, NULL);
    }
}

void cn_node__fail_all(struct cn_node *n, struct cn_list *l, int rc)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, l) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        n->stats.failed += !r->is_read;
        cn_node__finish_req(n, r, rc, NULL);
    }
}

void cn_node__reads_ready(struct cn_node *n, const struct cn_raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_reads; i++) {
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &n->reads) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            if (r->seq == rd->reads[i].ctx && r->state == CN_NODE__READ_WAIT) {
                r->state = CN_NODE__READ_READY;
                r->index = rd->reads[i].index;
            }
        }
    }
    cn_node__serve_reads(n);
}

void cn_node__serve_reads(struct cn_node *n)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->state == CN_NODE__READ_READY && n->applied >= r->index)
            cn_node__finish_req(n, r, 0, NULL);
    }
}

void cn_node__requeue_reads(struct cn_node *n)
{
    /* Raft drops pending reads on a leader change: ask again. */
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->state == CN_NODE__READ_WAIT) r->state = CN_NODE__QUEUED;
    }
}
