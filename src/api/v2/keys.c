/* keys: the /v2/keys pipeline. decode (etcd's validation order, spec §2) -> read, watch, or a
 * command proposed through the node -> encode the event or etcd's error. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/url.h"
#include "params.h"

/* A stream watcher whose client has this many bytes unread is dropped (etcd drops a watcher whose
 * 100-event buffer overflows; bytes are what actually costs memory here). */
#define WATCH_BACKLOG_MAX (1u << 20)

/* A request waiting on the node (a write or a quorum read). */
struct pending {
    struct cn_api *api;
    struct cn_http_req *req;
    struct cn_node_req *nreq;
    int method; /* metrics index */
    int64_t start_ns;
    /* quorum GET */
    struct cn_buf key;
    bool recursive, sorted;
    bool no_value;
};

struct watch {
    struct cn_list link;
    struct cn_api *api;
    struct cn_http_req *req;
    struct cn_store_watcher *w;
    bool stream;
    bool started;
    bool registering; /* inside cn_store_watch: the callback must not free us */
    bool done;
    uint64_t index_at_start;
};

static void raft_headers(struct cn_api *api, char *ri, char *rt, size_t n)
{
    (void)n; /* callers pass 24-byte buffers */
    uint64_t index, term;
    cn_node_raft_position(api->node, &index, &term);
    cn_u64_to_str(ri, index);
    cn_u64_to_str(rt, term);
}

static void send_json_ok(struct cn_api *api, struct cn_http_req *req, int status, uint64_t index,
                         struct cn_buf *body)
{
    char idx[24], ri[24], rt[24];
    cn_u64_to_str(idx, index);
    raft_headers(api, ri, rt, sizeof(ri));
    struct cn_http_hdr h[] = {{"X-Etcd-Cluster-Id", api->cluster_hex},
                              {"X-Etcd-Index", idx},
                              {"X-Raft-Index", ri},
                              {"X-Raft-Term", rt}};
    cn_http_respond(req, status, "application/json", h, 4, body->p, body->len, false);
}

const char *cn_api__node_cause(int rc)
{
    switch (rc) {
    case CN_ERR_STOPPED:
        return "etcdserver: server stopped";
    case CN_ERR_TIMEOUT:
        return "etcdserver: request timed out";
    case CN_ERR_NO_LEADER:
        return "etcdserver: no leader";
    case CN_ERR_CANCELED:
        return "etcdserver: request cancelled";
    default:
        return NULL;
    }
}

static int send_node_error(struct cn_api *api, struct cn_http_req *req, int rc)
{
    const char *cause = cn_api__node_cause(rc);
    char buf[160];
    if (cause == NULL) {
        snprintf(buf, sizeof(buf), "etcdserver: %s", cn_strerror(rc));
        cause = buf;
    }
    return cn_api__send_error(api, req, CN_V2_RAFT_INTERNAL, cause, 0);
}

static void pending_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct pending *pd = req->data; /* ctx is the server's */
    cn_node_req_detach(pd->nreq);
    cn_buf_free(&pd->key);
    cn_free(pd);
}

static struct pending *pending_new(struct cn_api *api, struct cn_http_req *req, int method,
                                   int64_t start_ns)
{
    struct pending *pd = CN_NEW(struct pending);
    pd->api = api;
    pd->req = req;
    pd->method = method;
    pd->start_ns = start_ns;
    cn_buf_init(&pd->key);
    req->data = pd;
    req->on_abort = pending_abort;
    return pd;
}

/* The node answered: the request is ours again. Called before responding, because a response
 * on a connection that is closing frees the request at once. */
static struct cn_http_req *pending_take(struct pending *pd)
{
    pd->req->on_abort = NULL;
    pd->req->data = NULL;
    return pd->req;
}

static void pending_finish(struct pending *pd)
{
    cn_buf_free(&pd->key);
    cn_free(pd);
}

static void write_done(void *ctx, int rc, const void *vres)
{
    const struct cn_store_result *res = vres;
    struct pending *pd = ctx;
    struct cn_api *api = pd->api;
    struct cn_http_req *req = pending_take(pd);
    int status;
    if (rc != 0) {
        status = send_node_error(api, req, rc);
    } else if (res->err.ecode != 0) {
        status = cn_api__send_error(api, req, res->err.ecode, res->err.cause, res->err.index);
    } else {
        const struct cn_store_event *ev = res->ev;
        struct cn_buf b = CN_BUF_INIT;
        if (pd->no_value) {
            cn_buf_appendf(&b, "{\"action\":\"%s\"}", ev->action);
        } else {
            cn_store_event_json(ev, cn_clock_real_ns(), &b);
        }
        cn_buf_putc(&b, '\n');
        status =
            (strcmp(ev->action, "create") == 0 || (strcmp(ev->action, "set") == 0 && !ev->has_prev))
                ? 201
                : 200;
        send_json_ok(api, req, status, ev->index, &b);
        cn_buf_free(&b);
    }
    cn_api__count(api, pd->method, status, pd->start_ns);
    pending_finish(pd);
}

static void do_get(struct cn_api *api, struct cn_http_req *req, struct cn_str key, bool recursive,
                   bool sorted, int method, int64_t start_ns)
{
    struct cn_buf b = CN_BUF_INIT;
    struct cn_store_err err;
    if (cn_store_get_json(api->store, CN_NS_KEYS, key, recursive, sorted, cn_clock_real_ns(), &b,
                          &err)) {
        cn_buf_putc(&b, '\n');
        send_json_ok(api, req, 200, cn_store_index(api->store), &b);
        cn_api__count(api, method, 200, start_ns);
    } else {
        int status = cn_api__send_error(api, req, err.ecode, err.cause, err.index);
        cn_api__count(api, method, status, start_ns);
    }
    cn_buf_free(&b);
}

static void qget_done(void *ctx, int rc, const void *res)
{
    (void)res; /* a read carries no result */
    struct pending *pd = ctx;
    struct cn_http_req *req = pending_take(pd);
    if (rc != 0) {
        cn_api__count(pd->api, pd->method, send_node_error(pd->api, req, rc), pd->start_ns);
    } else {
        do_get(pd->api, req, cn_buf_str(&pd->key), pd->recursive, pd->sorted, pd->method,
               pd->start_ns);
    }
    pending_finish(pd);
}

/* ---- watches ------------------------------------------------------------------------------ */

static void watch_free(struct watch *wt)
{
    cn_list_remove(&wt->link);
    cn_free(wt);
}

static void watch_start_stream(struct watch *wt)
{
    char idx[24], ri[24], rt[24];
    snprintf(idx, sizeof(idx), "%" PRIu64, wt->index_at_start);
    raft_headers(wt->api, ri, rt, sizeof(ri));
    struct cn_http_hdr h[] = {{"X-Etcd-Cluster-Id", wt->api->cluster_hex},
                              {"X-Etcd-Index", idx},
                              {"X-Raft-Index", ri},
                              {"X-Raft-Term", rt}};
    cn_http_stream_start(wt->req, 200, "application/json", h, 4);
    wt->started = true;
}

/* Ends the response and forgets the watch (the store watcher must already be gone). */
static void watch_end(struct watch *wt)
{
    struct cn_http_req *req = wt->req;
    if (!wt->started) watch_start_stream(wt);
    req->on_abort = NULL;
    req->data = NULL;
    cn_http_stream_end(req);
    wt->done = true;
    if (!wt->registering) watch_free(wt);
}

static void watch_event(struct cn_store_watcher *w, struct cn_store_event *ev, void *ctx)
{
    struct watch *wt = ctx;
    if (ev == NULL) { /* the store was replaced by a snapshot: the watcher is gone */
        wt->w = NULL;
        watch_end(wt);
        return;
    }
    if (!wt->started) watch_start_stream(wt);
    struct cn_buf b = CN_BUF_INIT;
    cn_store_event_json(ev, cn_clock_real_ns(), &b);
    cn_buf_putc(&b, '\n');
    cn_http_stream_write(wt->req, b.p, b.len);
    cn_buf_free(&b);
    if (!wt->stream) { /* the store has removed a one-shot watcher already */
        wt->w = NULL;
        watch_end(wt);
        return;
    }
    if (cn_http_stream_backlog(wt->req) > WATCH_BACKLOG_MAX) {
        CN_LOGD("api", "dropping slow watcher req=%" PRIu64, wt->req->id);
        cn_store_unwatch(wt->api->store, w);
        wt->w = NULL;
        watch_end(wt);
    }
}

static void watch_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct watch *wt = req->data; /* ctx is the server's */
    if (wt->w) cn_store_unwatch(wt->api->store, wt->w);
    watch_free(wt);
}

static void do_watch(struct cn_api *api, struct cn_http_req *req, struct cn_str key, bool recursive,
                     bool stream, uint64_t wait_index)
{
    struct watch *wt = CN_NEW(struct watch);
    wt->api = api;
    wt->req = req;
    wt->stream = stream;
    wt->index_at_start = cn_store_index(api->store);
    wt->registering = true;
    cn_list_insert_tail(&api->watches, &wt->link);
    req->data = wt;
    req->on_abort = watch_abort;
    api->watch_requests++;
    struct cn_store_err err;
    struct cn_store_watcher *w = NULL;
    bool ok = cn_store_watch(api->store, CN_NS_KEYS, key, recursive, stream, wait_index,
                             watch_event, wt, &w, &err);
    wt->registering = false;
    if (!ok) {
        req->on_abort = NULL;
        req->data = NULL;
        watch_free(wt);
        cn_api__send_error(api, req, err.ecode, err.cause, err.index);
        return;
    }
    if (wt->done) { /* answered from history */
        watch_free(wt);
        return;
    }
    wt->w = w;
    if (!wt->started) watch_start_stream(wt);
}

void cn_api_end_watches(struct cn_api *api)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &api->watches) {
        struct watch *wt = CN_CONTAINER_OF(it, struct watch, link);
        if (wt->w) cn_store_unwatch(api->store, wt->w);
        wt->w = NULL;
        watch_end(wt);
    }
}

/* ---- the pipeline ------------------------------------------------------------------------- */

static bool is_form(const struct cn_http_req *req)
{
    struct cn_str ct = cn_http_req_header(req, "Content-Type");
    if (ct.p == NULL) return false;
    static const char form[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(form) - 1;
    return ct.len >= n && strncasecmp(ct.p, form, n) == 0 &&
           (ct.len == n || ct.p[n] == ';' || ct.p[n] == ' ');
}

#define REQ_ERR(code, cause)                                                                       \
    do {                                                                                           \
        cn_api__count(api, method, cn_api__send_error(api, req, (code), (cause), 0), start_ns);    \
        goto out;                                                                                  \
    } while (0)

void cn_api__keys(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    int64_t start_ns = cn_clock_mono_ns();
    struct cn_params p;
    cn_params_init(&p);
    p.lazy = 1u << CN_P_VALUE; /* decoded straight into the command, if it must be */
    struct cn_buf key = CN_BUF_INIT;
    int method = cn_api__method_index(req, false);
    char err[256];
    char cause[320];

    /* Form parse (210, CN_V2_INVALID_FORM): the query always; the body for PUT and POST when it is
     * a form. */
    if (cn_params_parse(&p, req->query, false, err, sizeof(err)) != 0)
        REQ_ERR(CN_V2_INVALID_FORM, err);
    if ((req->method == CN_HTTP_PUT || req->method == CN_HTTP_POST) && is_form(req) &&
        cn_params_parse(&p, req->body, true, err, sizeof(err)) != 0)
        REQ_ERR(CN_V2_INVALID_FORM, err);
    /* a path without escapes is the key as it is: borrowed, like the values */
    bool key_escaped = rest.len > 0 && memchr(rest.p, '%', rest.len) != NULL;
    if (key_escaped && cn_url_decode(&key, rest, false) != 0)
        REQ_ERR(CN_V2_INVALID_FORM, "invalid URL escape in path");

    uint64_t prev_index = 0, wait_index = 0, ttl = 0;
    if (p.present[CN_P_PREV_INDEX] && !cn_parse_u64(p.val[CN_P_PREV_INDEX], &prev_index))
        REQ_ERR(CN_V2_INDEX_NAN, "invalid value for \"prevIndex\"");
    if (p.present[CN_P_WAIT_INDEX] && !cn_parse_u64(p.val[CN_P_WAIT_INDEX], &wait_index))
        REQ_ERR(CN_V2_INDEX_NAN, "invalid value for \"waitIndex\"");
    static const struct {
        int param;
        const char *name;
    } bools[] = {{CN_P_RECURSIVE, "recursive"}, {CN_P_SORTED, "sorted"},
                 {CN_P_WAIT, "wait"},           {CN_P_DIR, "dir"},
                 {CN_P_QUORUM, "quorum"},       {CN_P_STREAM, "stream"}};
    bool bv[6] = {false};
    for (size_t i = 0; i < 6; i++) {
        if (p.present[bools[i].param] && !cn_parse_bool(p.val[bools[i].param], &bv[i])) {
            snprintf(cause, sizeof(cause), "invalid value for \"%s\"", bools[i].name);
            REQ_ERR(CN_V2_INVALID_FIELD, cause);
        }
    }
    bool recursive = bv[0], sorted = bv[1], wait = bv[2], dir = bv[3], quorum = bv[4],
         stream = bv[5];
    if (wait && req->method != CN_HTTP_GET)
        REQ_ERR(CN_V2_INVALID_FIELD, "\"wait\" can only be used with GET requests");
    if (p.present[CN_P_PREV_VALUE] && p.val[CN_P_PREV_VALUE].len == 0)
        REQ_ERR(CN_V2_PREV_VALUE_REQUIRED, "\"prevValue\" cannot be empty");
    bool has_ttl = p.present[CN_P_TTL] && p.val[CN_P_TTL].len > 0;
    if (has_ttl && !cn_parse_u64(p.val[CN_P_TTL], &ttl))
        REQ_ERR(CN_V2_TTL_NAN, "invalid value for \"ttl\"");
    bool prev_exist = false;
    if (p.present[CN_P_PREV_EXIST] && !cn_parse_bool(p.val[CN_P_PREV_EXIST], &prev_exist))
        REQ_ERR(CN_V2_INVALID_FIELD, "invalid value for prevExist");
    bool refresh = false;
    if (p.present[CN_P_REFRESH]) {
        if (!cn_parse_bool(p.val[CN_P_REFRESH], &refresh))
            REQ_ERR(CN_V2_INVALID_FIELD, "invalid value for refresh");
        if (refresh && p.present[CN_P_VALUE] && p.val[CN_P_VALUE].len > 0)
            REQ_ERR(CN_V2_REFRESH_VALUE, "A value was provided on a refresh");
        if (refresh && !has_ttl) REQ_ERR(CN_V2_REFRESH_TTL_REQUIRED, "No TTL value set");
    }
    bool no_value = false;
    if (p.present[CN_P_NO_VALUE_ON_SUCCESS] &&
        !cn_parse_bool(p.val[CN_P_NO_VALUE_ON_SUCCESS], &no_value))
        REQ_ERR(CN_V2_INVALID_FIELD, "invalid value for \"noValueOnSuccess\"");

    struct cn_str k = key_escaped ? cn_buf_str(&key) : rest;
    if (k.p == NULL) k = CN_STR("");

    if (req->method == CN_HTTP_GET || req->method == CN_HTTP_HEAD) {
        if (wait) {
            do_watch(api, req, k, recursive, stream, wait_index);
            cn_api__count(api, method, 200, start_ns);
            goto out;
        }
        if (quorum) {
            method = M_QGET;
            api->received[M_QGET]++;
            struct pending *pd = pending_new(api, req, method, start_ns);
            cn_buf_append(&pd->key, k.p, k.len);
            pd->recursive = recursive;
            pd->sorted = sorted;
            pd->nreq = cn_node_read_index(api->node, qget_done, pd);
            goto out;
        }
        api->received[method]++;
        do_get(api, req, k, recursive, sorted, method, start_ns);
        goto out;
    }

    api->received[method]++;
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    c.ns = CN_NS_KEYS;
    c.key = k;
    int64_t now = cn_clock_real_ns();
    c.now_ns = now;
    if (has_ttl)
        c.expire_ns = now + (int64_t)(ttl > 315360000000ULL ? 315360000000ULL : ttl) * CN_NS_PER_S;
    struct cn_str prev_value = p.present[CN_P_PREV_VALUE] ? p.val[CN_P_PREV_VALUE] : CN_STR("");
    bool has_prev_value = prev_value.len > 0;
    if (req->method == CN_HTTP_POST) {
        c.op = CN_OP_CREATE_SEQ;
        c.dir = dir;
        c.value = p.present[CN_P_VALUE] ? p.val[CN_P_VALUE] : CN_STR("");
    } else if (req->method == CN_HTTP_PUT) {
        c.dir = dir;
        c.refresh = refresh;
        c.value = p.present[CN_P_VALUE] ? p.val[CN_P_VALUE] : CN_STR("");
        if (p.present[CN_P_PREV_EXIST]) {
            if (prev_exist)
                c.op = (prev_index == 0 && !has_prev_value) ? CN_OP_UPDATE : CN_OP_CAS;
            else
                c.op = CN_OP_CREATE;
        } else if (prev_index > 0 || has_prev_value) {
            c.op = CN_OP_CAS;
        } else {
            c.op = CN_OP_SET;
        }
        if (c.op == CN_OP_CAS) {
            c.has_prev_value = has_prev_value;
            c.prev_value = prev_value;
            c.prev_index = prev_index;
        }
    } else { /* DELETE */
        if (has_prev_value || prev_index > 0) {
            c.op = CN_OP_CAD;
            c.has_prev_value = has_prev_value;
            c.prev_value = prev_value;
            c.prev_index = prev_index;
        } else {
            c.op = CN_OP_DELETE;
            c.dir = dir || recursive;
            c.recursive = recursive;
        }
    }
    /* One copy per write: the command is encoded once, into the node's buffer after its entry
     * header, and that buffer is the log entry from here to the disk. A value with escapes is
     * decoded into its place in it (c.value.p is NULL then); one without is copied from the
     * request body. */
    struct cn_node_cmd nc;
    cn_node_cmd_begin(api->node, &nc, cn_store_cmd_encoded_len(&c));
    char *hole = cn_store_cmd_encode_hole(&c, &nc.buf);
    if (hole != NULL && c.value.p == NULL) cn_params_decode(&p, CN_P_VALUE, hole);
    struct pending *pd = pending_new(api, req, method, start_ns);
    pd->no_value = no_value && req->method != CN_HTTP_DELETE;
    pd->nreq = cn_node_propose_cmd(api->node, &nc, write_done, pd);
out:
    cn_buf_free(&key);
    cn_params_free(&p);
}
