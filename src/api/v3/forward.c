/* forward: what only the leader may answer (a lease's KeepAlive and TimeToLive: expiry lives in
 * the leader's lessor), asked of the leader by a follower, as etcd's followers do over their peer
 * link. cairn asks the leader's own JSON gateway (its first client URL from the member records):
 * POST /v3/lease/keepalive or /v3/lease/timetolive, and decodes the answer into the response
 * message. The leader's answer stands for this member's: same cluster, same lease. */
#include <jansson.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "http/http_client.h"
#include "pbjson/pbjson.h"
#include "v3_int.h"

#define FORWARD_TIMEOUT_MS 5000

struct forward {
    struct cn_list link;
    struct cn_v3 *api;
    struct cn_http_client_req *req;
    const ProtobufCMessageDescriptor *resp_desc;
    bool stream; /* the answer is a {"result":...} line */
    void (*done)(void *ctx, enum cn_v3_err e, ProtobufCMessage *resp);
    void *ctx;
};

/* The leader's first client URL, into url; false when there is no leader (or it has none). */
static bool leader_url(struct cn_v3 *api, char *url, size_t len)
{
    if (!api->node || !api->opt.members) return false;
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    if (st.leader == 0 || st.leader == api->opt.member_id) return false;
    struct cn_member_list l;
    cn_members_load(api->opt.members, &l);
    const struct cn_member *m = cn_member_list_find(&l, st.leader);
    bool ok = m && m->n_client > 0 && strlen(m->client_urls[0]) < len;
    if (ok) snprintf(url, len, "%s", m->client_urls[0]);
    cn_member_list_free(&l);
    return ok;
}

static ProtobufCMessage *decode_answer(struct forward *f, struct cn_str body, int *code, char *msg,
                                       size_t msglen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body.p, body.len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_t *err = json_object_get(root, "error");
    if (err) {
        /* {"error":"...","code":N} (unary) or {"error":{"grpc_code":N,"message":...}} */
        json_t *c =
            json_is_object(err) ? json_object_get(err, "grpc_code") : json_object_get(root, "code");
        json_t *m = json_is_object(err) ? json_object_get(err, "message") : err;
        *code = c && json_is_integer(c) ? (int)json_integer_value(c) : CN_GRPC_UNAVAILABLE;
        snprintf(msg, msglen, "%s", m && json_is_string(m) ? json_string_value(m) : "");
        json_decref(root);
        return NULL;
    }
    json_t *val = f->stream ? json_object_get(root, "result") : root;
    char *text = val ? json_dumps(val, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return NULL;
    ProtobufCMessage *out = NULL;
    struct cn_pbjson_error perr;
    cn_pbjson_decode(f->resp_desc, text, strlen(text), NULL, &out, &perr);
    free(text);
    return out;
}

static void forward_done(struct cn_http_client_req *req, int rc,
                         const struct cn_http_client_resp *resp, void *ctx)
{
    (void)req;
    struct forward *f = ctx;
    cn_list_remove(&f->link);
    ProtobufCMessage *out = NULL;
    enum cn_v3_err e = CN_V3_OK;
    int code = 0;
    char msg[256] = "";
    if (rc != 0 || !resp) {
        e = CN_V3_E_TIMEOUT_LEADER_FAIL;
    } else {
        out = decode_answer(f, resp->body, &code, msg, sizeof(msg));
        if (!out)
            e = strcmp(msg, cn_v3_err_msg(CN_V3_E_LEASE_NOT_FOUND)) == 0
                    ? CN_V3_E_LEASE_NOT_FOUND
                    : CN_V3_E_TIMEOUT_LEADER_FAIL;
    }
    f->done(f->ctx, e, out);
    cn_free(f);
}

void cn_v3__forward(struct cn_v3 *api, const char *route, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, bool stream,
                    void (*done)(void *ctx, enum cn_v3_err e, ProtobufCMessage *resp), void *ctx,
                    struct forward **out)
{
    char base[1024], url[1100];
    *out = NULL;
    if (!leader_url(api, base, sizeof(base))) {
        done(ctx, CN_V3_E_NO_LEADER, NULL);
        return;
    }
    snprintf(url, sizeof(url), "%s%s", base, route);
    if (!api->client) api->client = cn_http_client_new(api->loop);
    struct cn_buf body = CN_BUF_INIT;
    cn_pbjson_encode(&body, req);
    struct forward *f = CN_NEW(struct forward);
    f->api = api;
    f->resp_desc = resp_desc;
    f->stream = stream;
    f->done = done;
    f->ctx = ctx;
    cn_list_insert_tail(&api->forwards, &f->link);
    struct cn_http_client_opts o = {
        .method = "POST",
        .url = url,
        .body = body.p,
        .body_len = body.len,
        .timeout_ms = FORWARD_TIMEOUT_MS,
        .max_body_bytes = 1u << 20,
        .on_done = forward_done,
        .ctx = f,
    };
    int rc = cn_http_client_request(api->client, &o, &f->req);
    cn_buf_free(&body);
    if (rc != 0) {
        cn_list_remove(&f->link);
        cn_free(f);
        done(ctx, CN_V3_E_TIMEOUT_LEADER_FAIL, NULL);
        return;
    }
    *out = f;
}

void cn_v3__forward_cancel(struct forward *f)
{
    if (!f) return;
    cn_http_client_cancel(f->req);
    cn_list_remove(&f->link);
    cn_free(f);
}

void cn_v3__forwards_stop(struct cn_v3 *api)
{
    while (!cn_list_empty(&api->forwards)) {
        struct forward *f = CN_CONTAINER_OF(api->forwards.next, struct forward, link);
        void (*done)(void *, enum cn_v3_err, ProtobufCMessage *) = f->done;
        void *ctx = f->ctx;
        cn_v3__forward_cancel(f);
        done(ctx, CN_V3_E_STOPPED, NULL);
    }
    if (api->client) {
        cn_http_client_close(api->client, NULL, NULL);
        api->client = NULL;
    }
}
