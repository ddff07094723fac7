/* kv: the KV service (etcd's v3rpc/key.go over etcdserver/v3_server.go): Range reads locally,
 * behind a ReadIndex barrier unless serializable; Put, DeleteRange, Compact and a writing Txn go
 * through the log; a read-only Txn is a local read behind the barrier, as in etcd. */
#include "v3_int.h"

/* ---- Range -------------------------------------------------------------------------------- */

static void range_now(struct v3call *c)
{
    Etcdserverpb__RangeResponse *resp;
    enum cn_v3_err e =
        cn_v3_range(c->api->ap, &c->arena, (const Etcdserverpb__RangeRequest *)c->req, &resp);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    cn_v3__reply(c, &resp->base, resp->header);
}

void cn_v3__range(struct v3call *c)
{
    const Etcdserverpb__RangeRequest *r = (const void *)c->req;
    enum cn_v3_err e = cn_v3_check_range(r);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    if (r->serializable)
        range_now(c);
    else
        cn_v3__after_barrier(c, range_now);
}

/* ---- writes ------------------------------------------------------------------------------- */

/* The apply built the response (its header's revision set); complete and send it. */
void cn_v3__write_done(struct v3call *c, const struct cn_v3_result *res)
{
    Etcdserverpb__ResponseHeader *h = NULL;
    switch (res->kind) {
    case CN_V3_PUT:
        h = ((Etcdserverpb__PutResponse *)res->resp)->header;
        break;
    case CN_V3_DELETE_RANGE:
        h = ((Etcdserverpb__DeleteRangeResponse *)res->resp)->header;
        break;
    case CN_V3_TXN:
        h = ((Etcdserverpb__TxnResponse *)res->resp)->header;
        break;
    case CN_V3_COMPACTION:
        h = ((Etcdserverpb__CompactionResponse *)res->resp)->header;
        break;
    case CN_V3_LEASE_GRANT:
        h = ((Etcdserverpb__LeaseGrantResponse *)res->resp)->header;
        break;
    case CN_V3_LEASE_REVOKE:
        h = ((Etcdserverpb__LeaseRevokeResponse *)res->resp)->header;
        break;
    }
    cn_v3__reply(c, res->resp, h);
}

void cn_v3__put(struct v3call *c)
{
    enum cn_v3_err e = cn_v3_check_put((const void *)c->req);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    cn_v3__propose(c, CN_V3_PUT, c->req, cn_v3__write_done);
}

void cn_v3__delete_range(struct v3call *c)
{
    enum cn_v3_err e = cn_v3_check_delete((const void *)c->req);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    cn_v3__propose(c, CN_V3_DELETE_RANGE, c->req, cn_v3__write_done);
}

static void txn_read_now(struct v3call *c)
{
    Etcdserverpb__TxnResponse *resp;
    enum cn_v3_err e =
        cn_v3_txn_read(c->api->ap, &c->arena, (const Etcdserverpb__TxnRequest *)c->req, &resp);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    cn_v3__reply(c, &resp->base, resp->header);
}

void cn_v3__txn(struct v3call *c)
{
    const Etcdserverpb__TxnRequest *t = (const void *)c->req;
    enum cn_v3_err e = cn_v3_check_txn(t, c->api->opt.max_txn_ops);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    if (cn_v3_txn_is_readonly(t))
        cn_v3__after_barrier(c, txn_read_now);
    else
        cn_v3__propose(c, CN_V3_TXN, c->req, cn_v3__write_done);
}

void cn_v3__compact(struct v3call *c)
{
    cn_v3__propose(c, CN_V3_COMPACTION, c->req, cn_v3__write_done);
}
