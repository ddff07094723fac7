/* gateway: etcd 3.4's grpc-gateway routes (/v3/..., /v3beta/...) on the HTTP/1.1 server: the
 * JSON body decoded into the request message (src/pbjson), the same handler as gRPC's, the
 * response or the error encoded as the gateway does. */
#include <string.h>

#include "common/str.h"
#include "pbjson/pbjson.h"
#include "v3_int.h"

/* etcd 3.4's HTTP wrapper puts these on every gateway response. */
static const struct cn_http_hdr cors[] = {
    {"Access-Control-Allow-Origin", "*"},
    {"Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"},
    {"Access-Control-Allow-Headers", "accept, content-type, authorization"},
};
#define NCORS (sizeof(cors) / sizeof(cors[0]))

/* A success, with the gateway's Grpc-Metadata-Content-Type. */
static void respond_ok(struct cn_http_req *req, const struct cn_buf *b)
{
    struct cn_http_hdr h[NCORS + 1];
    memcpy(h, cors, sizeof(cors));
    h[NCORS] = (struct cn_http_hdr){"Grpc-Metadata-Content-Type", "application/grpc"};
    cn_http_respond(req, 200, "application/json", h, NCORS + 1, b->p, b->len, false);
}

static void respond_error(struct cn_http_req *req, int code, const char *msg)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_pbjson_error_body(&b, code, msg, strlen(msg));
    cn_http_respond(req, cn_pbjson_http_status(code), "application/json", cors, NCORS, b.p, b.len,
                    false);
    cn_buf_free(&b);
}

void cn_v3__gateway_reply(struct v3call *c, const ProtobufCMessage *resp)
{
    struct cn_http_req *req = c->hreq;
    if (!req) return; /* the client went away */
    req->on_abort = NULL;
    req->data = NULL;
    struct cn_buf b = CN_BUF_INIT;
    if (c->m->handle == cn_v3__lease_keepalive_unary)
        cn_pbjson_stream_result(&b, resp); /* a streaming route: one {"result":...} line */
    else
        cn_pbjson_encode(&b, resp);
    respond_ok(req, &b);
    cn_buf_free(&b);
    c->hreq = NULL;
}

void cn_v3__gateway_fail(struct v3call *c, int code, const char *msg)
{
    struct cn_http_req *req = c->hreq;
    if (!req) return;
    req->on_abort = NULL;
    req->data = NULL;
    respond_error(req, code, msg);
    c->hreq = NULL;
}

static void on_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct v3call *c = req->data;
    if (!c) return;
    c->hreq = NULL;
    cn_v3__call_drop(c);
}

bool cn_v3_gateway_handle(struct cn_v3 *api, struct cn_http_req *req)
{
    if (!cn_str_has_prefix(req->path, cn_str_c("/v3"))) return false;
    if (!api->opt.gateway) return false;
    const struct cn_pbjson_route *route = NULL;
    enum cn_pbjson_lookup lk = cn_pbjson_route_find(req->method_name.p, req->method_name.len,
                                                    req->path.p, req->path.len, &route);
    if (req->method == CN_HTTP_OPTIONS) {
        /* a CORS preflight: 200, empty, on any path */
        cn_http_respond(req, 200, NULL, cors, NCORS, "", 0, false);
        return true;
    }
    if (lk != CN_PBJSON_FOUND) {
        const char *body = cn_pbjson_lookup_body(lk);
        const struct cn_http_hdr h[] = {
            cors[0], cors[1], cors[2], {"X-Content-Type-Options", "nosniff"}};
        cn_http_respond(req, cn_pbjson_lookup_status(lk), "text/plain; charset=utf-8", h, 4, body,
                        strlen(body), false);
        return true;
    }
    const struct v3method *m = cn_v3__method_by_route(route->path, strlen(route->path));
    if (!m) {
        /* a route of a service cairn does not serve yet (Watch, Cluster, Auth, ...) */
        respond_error(req, CN_GRPC_UNIMPLEMENTED, "method not implemented by cairn yet");
        return true;
    }
    if (req->body.len > api->opt.max_request_bytes + CN_V3_REQUEST_OVERHEAD) {
        respond_error(req, cn_v3_err_code(CN_V3_E_REQUEST_TOO_LARGE),
                      cn_v3_err_msg(CN_V3_E_REQUEST_TOO_LARGE));
        return true;
    }
    struct cn_pbjson_limits lim = {.max_len = api->opt.max_request_bytes + CN_V3_REQUEST_OVERHEAD};
    struct cn_pbjson_error err;
    ProtobufCMessage *msg = NULL;
    if (cn_pbjson_decode(m->req, req->body.p, req->body.len, &lim, &msg, &err) != 0) {
        /* a streaming route's first request that does not decode fails the call: Unknown */
        respond_error(req, route->client_stream ? CN_GRPC_UNKNOWN : err.code, err.msg);
        return true;
    }
    /* what gRPC would have refused as a message over its limit */
    if (cn_pbjson_check_size(msg, api->opt.max_request_bytes + CN_V3_REQUEST_OVERHEAD, &err) != 0) {
        cn_pbjson_free(msg);
        respond_error(req, err.code, err.msg);
        return true;
    }
    struct v3call *c = cn_v3__call_new(api, m, V3_GATEWAY);
    c->hreq = req;
    c->req = msg;
    c->json_req = true;
    req->data = c;
    req->on_abort = on_abort;
    cn_v3__dispatch(c);
    return true;
}
