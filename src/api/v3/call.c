/* call: one unary v3 call, from gRPC or the gateway (see v3_int.h for its life). */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "pbjson/pbjson.h"
#include "v3_int.h"

#define MAX_NESTING 160 /* messages inside messages a request may carry (Txn in Txn ...) */

const struct v3method cn_v3__methods[] = {
    {"/etcdserverpb.KV/Range", "/v3/kv/range", &etcdserverpb__range_request__descriptor,
     &etcdserverpb__range_response__descriptor, cn_v3__range},
    {"/etcdserverpb.KV/Put", "/v3/kv/put", &etcdserverpb__put_request__descriptor,
     &etcdserverpb__put_response__descriptor, cn_v3__put},
    {"/etcdserverpb.KV/DeleteRange", "/v3/kv/deleterange",
     &etcdserverpb__delete_range_request__descriptor,
     &etcdserverpb__delete_range_response__descriptor, cn_v3__delete_range},
    {"/etcdserverpb.KV/Txn", "/v3/kv/txn", &etcdserverpb__txn_request__descriptor,
     &etcdserverpb__txn_response__descriptor, cn_v3__txn},
    {"/etcdserverpb.KV/Compact", "/v3/kv/compaction", &etcdserverpb__compaction_request__descriptor,
     &etcdserverpb__compaction_response__descriptor, cn_v3__compact},
    {"/etcdserverpb.Lease/LeaseGrant", "/v3/lease/grant",
     &etcdserverpb__lease_grant_request__descriptor,
     &etcdserverpb__lease_grant_response__descriptor, cn_v3__lease_grant},
    {"/etcdserverpb.Lease/LeaseRevoke", "/v3/lease/revoke",
     &etcdserverpb__lease_revoke_request__descriptor,
     &etcdserverpb__lease_revoke_response__descriptor, cn_v3__lease_revoke},
    {"/etcdserverpb.Lease/LeaseTimeToLive", "/v3/lease/timetolive",
     &etcdserverpb__lease_time_to_live_request__descriptor,
     &etcdserverpb__lease_time_to_live_response__descriptor, cn_v3__lease_ttl},
    {"/etcdserverpb.Lease/LeaseLeases", "/v3/lease/leases",
     &etcdserverpb__lease_leases_request__descriptor,
     &etcdserverpb__lease_leases_response__descriptor, cn_v3__lease_leases},
    {"/etcdserverpb.Maintenance/Status", "/v3/maintenance/status",
     &etcdserverpb__status_request__descriptor, &etcdserverpb__status_response__descriptor,
     cn_v3__status},
    {"/etcdserverpb.Cluster/MemberList", "/v3/cluster/member/list",
     &etcdserverpb__member_list_request__descriptor,
     &etcdserverpb__member_list_response__descriptor, cn_v3__member_list},
    /* gateway aliases of the same handlers */
    {NULL, "/v3/kv/lease/revoke", &etcdserverpb__lease_revoke_request__descriptor,
     &etcdserverpb__lease_revoke_response__descriptor, cn_v3__lease_revoke},
    {NULL, "/v3/kv/lease/timetolive", &etcdserverpb__lease_time_to_live_request__descriptor,
     &etcdserverpb__lease_time_to_live_response__descriptor, cn_v3__lease_ttl},
    {NULL, "/v3/kv/lease/leases", &etcdserverpb__lease_leases_request__descriptor,
     &etcdserverpb__lease_leases_response__descriptor, cn_v3__lease_leases},
    {NULL, "/v3/lease/keepalive", &etcdserverpb__lease_keep_alive_request__descriptor,
     &etcdserverpb__lease_keep_alive_response__descriptor, cn_v3__lease_keepalive_unary},
};
const size_t cn_v3__nmethods = sizeof(cn_v3__methods) / sizeof(cn_v3__methods[0]);

const struct v3method *cn_v3__method_by_route(const char *path, size_t len)
{
    for (size_t i = 0; i < cn_v3__nmethods; i++) {
        const char *r = cn_v3__methods[i].route;
        if (r && strlen(r) == len && memcmp(r, path, len) == 0) return &cn_v3__methods[i];
    }
    return NULL;
}

/* ---- the call ------------------------------------------------------------------------------ */

struct v3call *cn_v3__call_new(struct cn_v3 *api, const struct v3method *m, enum v3wire wire)
{
    struct v3call *c = CN_NEW(struct v3call);
    c->api = api;
    c->m = m;
    c->wire = wire;
    cn_list_insert_tail(&api->calls, &c->link);
    return c;
}

static void call_free(struct v3call *c)
{
    if (c->held) c->api->nheld--;
    if (c->nreq) cn_node_req_detach(c->nreq);
    if (c->fwd) cn_v3__forward_cancel(c->fwd);
    cn_list_remove(&c->link);
    if (c->req && c->json_req)
        cn_pbjson_free(c->req);
    else if (c->req)
        protobuf_c_message_free_unpacked(c->req, NULL);
    cn_arena_free(&c->arena);
    cn_free(c);
}

void cn_v3__fill_header(struct cn_v3 *api, Etcdserverpb__ResponseHeader *h, int64_t rev)
{
    uint64_t applied = 0, term = 0;
    if (api->node) cn_node_raft_position(api->node, &applied, &term);
    h->cluster_id = api->opt.cluster_id;
    h->member_id = api->opt.member_id;
    h->raft_term = term;
    h->revision = rev;
}

void cn_v3__reply(struct v3call *c, ProtobufCMessage *resp, Etcdserverpb__ResponseHeader *h)
{
    if (h) cn_v3__fill_header(c->api, h, h->revision);
    if (c->wire == V3_GRPC) {
        int rc = cn_grpc_send_pb(c->gc, resp);
        if (rc == CN_ERR_TOO_LARGE)
            cn_grpc_finish(c->gc, CN_GRPC_RESOURCE_EXHAUSTED,
                           "grpc: trying to send message larger than max");
        else
            cn_grpc_finish(c->gc, CN_GRPC_OK, NULL);
    } else {
        cn_v3__gateway_reply(c, resp);
    }
    call_free(c);
}

void cn_v3__fail_status(struct v3call *c, int code, const char *msg)
{
    if (c->wire == V3_GRPC)
        cn_grpc_finish(c->gc, code, msg);
    else
        cn_v3__gateway_fail(c, code, msg);
    call_free(c);
}

void cn_v3__fail(struct v3call *c, enum cn_v3_err e)
{
    cn_v3__fail_status(c, cn_v3_err_code(e), cn_v3_err_msg(e));
}

/* ---- waiting on the node ---------------------------------------------------------------- */

static void propose_done(void *ctx, int rc, const void *res)
{
    struct v3call *c = ctx;
    c->nreq = NULL;
    if (rc != 0) {
        cn_v3__fail(c, cn_v3_err_of_node(rc));
        return;
    }
    const struct cn_v3_result *r = res;
    if (r->err != CN_V3_OK) {
        cn_v3__fail(c, r->err);
        return;
    }
    c->done(c, r);
}

void cn_v3__propose(struct v3call *c, enum cn_v3_kind kind, const ProtobufCMessage *msg,
                    void (*done)(struct v3call *c, const struct cn_v3_result *res))
{
    struct cn_node_cmd nc;
    size_t len = c->raw ? c->raw_len : protobuf_c_message_get_packed_size(msg);
    /* etcd bounds what goes into the log by --max-request-bytes (the gRPC message itself may be
     * 512 KiB larger) */
    if (len > c->api->opt.max_request_bytes) {
        cn_v3__fail(c, CN_V3_E_REQUEST_TOO_LARGE);
        return;
    }
    cn_node_cmd_begin(c->api->node, &nc, CN_V3_CMD_HEAD + len);
    cn_v3_cmd_head(&nc.buf, kind);
    if (c->raw) {
        cn_buf_append(&nc.buf, c->raw, len);
    } else {
        cn_buf_reserve(&nc.buf, len);
        size_t n = protobuf_c_message_pack(msg, (uint8_t *)nc.buf.p + nc.buf.len);
        CN_ASSERT(n == len);
        nc.buf.len += n;
    }
    c->done = done;
    c->nreq = cn_node_propose_cmd(c->api->node, &nc, propose_done, c);
}

static void barrier_done(void *ctx, int rc, const void *res)
{
    (void)res;
    struct v3call *c = ctx;
    c->nreq = NULL;
    if (rc != 0) {
        cn_v3__fail(c, cn_v3_err_of_node(rc));
        return;
    }
    c->after(c);
}

void cn_v3__after_barrier(struct v3call *c, void (*fn)(struct v3call *c))
{
    c->after = fn;
    c->nreq = cn_node_read_index(c->api->node, barrier_done, c);
}

/* ---- gRPC --------------------------------------------------------------------------------- */

#define MAX_HELD 10000 /* calls held while the member recovers its data */

void cn_v3__dispatch(struct v3call *c)
{
    if (!c->api->node) {
        /* the data dir is still being recovered: hold the call (its bytes are gone after this,
         * so it re-encodes when it proposes) */
        if (c->api->nheld >= MAX_HELD) {
            cn_v3__fail(c, CN_V3_E_TOO_MANY_REQUESTS);
            return;
        }
        c->raw = NULL;
        c->held = true;
        c->api->nheld++;
        return;
    }
    c->m->handle(c);
}

void cn_v3__dispatch_held(struct cn_v3 *api)
{
    /* handlers may end calls (any of them) while we walk: restart from the head each time */
    for (;;) {
        struct v3call *found = NULL;
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &api->calls) {
            struct v3call *c = CN_CONTAINER_OF(it, struct v3call, link);
            if (c->held) {
                found = c;
                break;
            }
        }
        if (!found) break;
        found->held = false;
        api->nheld--;
        found->m->handle(found);
    }
}

/* A unary method's request message arrived: decode it and hand it to its handler. */
static void grpc_message(struct cn_grpc_call *gc, const void *msg, size_t len, void *ctx)
{
    const struct v3binding *b = ctx;
    struct cn_v3 *api = b->api;
    const struct v3method *m = b->m;
    struct v3call *c = cn_v3__call_new(api, m, V3_GRPC);
    c->gc = gc;
    cn_grpc_call_set_data(gc, c);
    if (len > api->opt.max_request_bytes + CN_V3_REQUEST_OVERHEAD) {
        cn_v3__fail(c, CN_V3_E_REQUEST_TOO_LARGE);
        return;
    }
    if (!cn_v3_pb_depth_ok(m->req, msg, len, MAX_NESTING) ||
        !(c->req = protobuf_c_message_unpack(m->req, NULL, len, msg))) {
        cn_v3__fail_status(c, CN_GRPC_INTERNAL,
                           "grpc: error unmarshalling request: proto: bad wire format");
        return;
    }
    c->raw = msg;
    c->raw_len = len;
    cn_v3__dispatch(c);
    /* the bytes die with this callback; c may be gone too */
}

/* The client went away (or the deadline passed) before the answer: forget the call. */
static void grpc_cancel(struct cn_grpc_call *gc, void *ctx)
{
    (void)ctx;
    struct v3call *c = cn_grpc_call_data(gc);
    if (!c) return;
    c->gc = NULL;
    cn_v3__call_drop(c);
}

void cn_v3_register_grpc(struct cn_v3 *api, struct cn_grpc_method **table, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < cn_v3__nmethods; i++)
        if (cn_v3__methods[i].grpc_path) k++;
    api->bindings = cn_xcalloc(k, sizeof(*api->bindings));
    api->grpc_methods = cn_xcalloc(k + 2, sizeof(*api->grpc_methods));
    size_t j = 0;
    for (size_t i = 0; i < cn_v3__nmethods; i++) {
        const struct v3method *m = &cn_v3__methods[i];
        if (!m->grpc_path) continue;
        api->bindings[j] = (struct v3binding){api, m};
        api->grpc_methods[j] = (struct cn_grpc_method){
            .path = m->grpc_path,
            .on_message = grpc_message,
            .on_cancel = grpc_cancel,
            .ctx = &api->bindings[j],
        };
        j++;
    }
    api->grpc_methods[j] = (struct cn_grpc_method){
        .path = "/etcdserverpb.Lease/LeaseKeepAlive",
        .client_stream = true,
        .server_stream = true,
        .on_message = cn_v3__keepalive_message,
        .on_half_close = cn_v3__keepalive_half_close,
        .on_cancel = cn_v3__keepalive_cancel,
        .ctx = api,
    };
    api->grpc_methods[j + 1] = (struct cn_grpc_method){
        .path = "/etcdserverpb.Watch/Watch",
        .client_stream = true,
        .server_stream = true,
        .on_message = cn_v3__watch_message,
        .on_half_close = cn_v3__watch_half_close,
        .on_cancel = cn_v3__watch_cancel,
        .ctx = api,
    };
    *table = api->grpc_methods;
    *n = j + 2;
}

void cn_v3__call_drop(struct v3call *c)
{
    call_free(c);
}

/* Ends every call in flight (shutdown). */
void cn_v3__calls_stop(struct cn_v3 *api)
{
    while (!cn_list_empty(&api->calls)) {
        struct v3call *c = CN_CONTAINER_OF(api->calls.next, struct v3call, link);
        cn_v3__fail(c, CN_V3_E_STOPPED);
    }
}
