/* forward: one client request relayed to a member (an exchange), as etcd 2.3's reverseProxy does:
 * same method, path, raw query, headers minus the hop-by-hop ones, and body; the member's status,
 * headers and body come back. Endpoints are tried in round-robin order; one that fails before
 * answering is quarantined and the next one is tried; when all fail the client gets 502.
 *
 * Design notes
 *
 * States of an exchange (x->mode):
 *   X_QUEUED  waiting for the first membership refresh      -> X_WAIT (cn_proxy__run_queued)
 *   X_WAIT    a member request is in flight, nothing sent   -> X_BUFFER or X_STREAM (on_head),
 *             back; a failure moves on to the next endpoint    or answered 502/503 (on_done)
 *   X_BUFFER  the member's body has a Content-Length: it is gathered and relayed with the same
 *             length in one response (on_done)
 *   X_STREAM  anything else (chunked watches, close-delimited bodies): relayed chunk by chunk as
 *             it arrives, for as long as the member keeps the response open
 * Invariants:
 *   1. x->up is the member request in flight, or NULL; it is canceled whenever the exchange ends
 *      early (client gone, slow consumer), so no member request outlives its client.
 *   2. A failed attempt is retried only in X_WAIT: once a status line went to the client (or a
 *      body was accepted from a member), the answer is that member's.
 *   3. An exchange is freed exactly once: after the client's response is finished or its abort
 *      callback ran (xfree), never while the client library still holds it as ctx. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "proxy/proxy_int.h"

enum xmode { X_QUEUED, X_WAIT, X_BUFFER, X_STREAM };

struct proxy_exchange {
    struct cn_list link; /* p->queued or p->exchanges */
    struct cn_proxy *p;
    struct cn_http_req *req;
    struct cn_http_client_req *up;
    enum xmode mode;
    int slot; /* method slot for the counters */
    char method[16];
    struct cn_buf target; /* path[?query] */
    /* request headers as sent to members (strings in hstore) */
    struct cn_buf hstore;
    struct cn_http_hdr *hdrs;
    size_t nhdrs;
    /* endpoints to try (NUL-separated URLs in cands) */
    struct cn_buf cands;
    size_t cand_off[PROXY_MAX_URLS];
    size_t ncand, next;
    const char *cur; /* the endpoint of the attempt in flight (in cands) */
    /* X_BUFFER */
    int status;
    struct cn_buf rstore;
    struct cn_http_hdr *rhdrs;
    size_t nrhdrs;
    struct cn_buf body;
    uint64_t body_len; /* the member's Content-Length */
};

static void attempt(struct proxy_exchange *x);

/* etcd's singleHopHeaders (from Go's httputil.ReverseProxy). */
static bool hop_by_hop(struct cn_str name)
{
    static const char *const names[] = {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
        "Te",         "Trailers",   "Transfer-Encoding",  "Upgrade",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len = strlen(names[i]);
        if (name.len == len && strncasecmp(name.p, names[i], len) == 0) return true;
    }
    return false;
}

static bool name_is(struct cn_str name, const char *z)
{
    size_t len = strlen(z);
    return name.len == len && strncasecmp(name.p, z, len) == 0;
}

/* Copies the headers that pass into store as NUL-terminated strings and points *out at them.
 * Content-Length is written by the http layer itself; Expect was answered by the server. */
static size_t copy_headers(const struct cn_http_header *in, size_t n, bool request,
                           struct cn_buf *store, struct cn_http_hdr **out)
{
    size_t *offs = cn_xmalloc((2 * n + 1) * sizeof(*offs));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct cn_str name = in[i].name;
        if (hop_by_hop(name) || name_is(name, "Content-Length")) continue;
        if (request && name_is(name, "Expect")) continue;
        offs[2 * k] = store->len;
        cn_buf_append(store, name.p, name.len);
        cn_buf_putc(store, '\0');
        offs[2 * k + 1] = store->len;
        cn_buf_append(store, in[i].value.p, in[i].value.len);
        cn_buf_putc(store, '\0');
        k++;
    }
    *out = cn_xmalloc((k + 1) * sizeof(**out));
    for (size_t i = 0; i < k; i++) {
        (*out)[i].name = store->p + offs[2 * i];
        (*out)[i].value = store->p + offs[2 * i + 1];
    }
    cn_free(offs);
    return k;
}

static void xfree(struct proxy_exchange *x)
{
    struct cn_proxy *p = x->p;
    cn_list_remove(&x->link);
    if (x->mode == X_QUEUED)
        p->nqueued--;
    else
        p->nexchanges--;
    if (x->req) {
        x->req->data = NULL;
        x->req->on_abort = NULL;
    }
    cn_buf_free(&x->target);
    cn_buf_free(&x->hstore);
    cn_free(x->hdrs);
    cn_buf_free(&x->cands);
    cn_buf_free(&x->rstore);
    cn_free(x->rhdrs);
    cn_buf_free(&x->body);
    cn_free(x);
}

/* The client went away (or the server closes): the member request goes too. */
static void on_abort(struct cn_http_req *req, void *ctx)
{
    struct proxy_exchange *x = req->data;
    (void)ctx;
    CN_LOGD("proxy", "client closed request prematurely id=%" PRIu64 " mode=%d", req->id,
            (int)x->mode);
    x->req = NULL;
    if (x->up) cn_http_client_cancel(x->up);
    x->up = NULL;
    xfree(x);
}

static void finish_error(struct proxy_exchange *x, int status, const char *msg, bool close_after)
{
    cn_proxy__error(x->req, status, msg, close_after);
    x->req = NULL;
    xfree(x);
}

/* ---- member response ----------------------------------------------------------------------- */

static bool status_has_body(int status)
{
    return !(status / 100 == 1 || status == 204 || status == 304);
}

static void on_head(struct cn_http_client_req *creq, const struct cn_http_client_resp *resp,
                    void *ctx)
{
    struct proxy_exchange *x = ctx;
    x->status = resp->status;
    struct cn_str cl = cn_http_client_resp_header(resp, "Content-Length");
    uint64_t len = 0;
    bool has_len = cl.p != NULL && cn_parse_u64(cl, &len);
    bool head = x->req->method == CN_HTTP_HEAD;
    /* etcd relays a Content-Length body with its length (Go copies the header); anything else
     * is relayed as it comes, which is what keeps watches open. */
    if (head || !status_has_body(resp->status) || (has_len && len <= PROXY_MAX_BUFFERED)) {
        x->mode = X_BUFFER;
        x->body_len = has_len ? len : 0;
        x->nrhdrs = copy_headers(resp->headers, resp->nheaders, false, &x->rstore, &x->rhdrs);
        if (!head && has_len) cn_buf_reserve(&x->body, (size_t)len);
        return;
    }
    x->mode = X_STREAM;
    struct cn_buf store = CN_BUF_INIT;
    struct cn_http_hdr *h;
    size_t n = copy_headers(resp->headers, resp->nheaders, false, &store, &h);
    cn_http_stream_start(x->req, resp->status, NULL, h, n);
    cn_buf_free(&store);
    cn_free(h);
}

static void on_chunk(struct cn_http_client_req *creq, const void *data, size_t len, void *ctx)
{
    struct proxy_exchange *x = ctx;
    if (x->mode == X_BUFFER) {
        /* http-parser stops at Content-Length, so the body never grows past body_len */
        cn_buf_append(&x->body, data, len);
        return;
    }
    cn_http_stream_write(x->req, data, len);
    if (cn_http_stream_backlog(x->req) <= PROXY_MAX_BACKLOG) return;
    /* A client that does not read: end its stream rather than hold its data without bound
     * (the member request is canceled; allowed from inside on_chunk). */
    CN_LOGW("proxy", "client too slow, ending stream id=%" PRIu64 " backlog=%zu", x->req->id,
            cn_http_stream_backlog(x->req));
    cn_http_client_cancel(x->up);
    x->up = NULL;
    cn_proxy__count_handled(x->p, x->slot, x->status);
    cn_http_stream_end(x->req);
    x->req = NULL;
    xfree(x);
}

static void on_done(struct cn_http_client_req *creq, int rc, const struct cn_http_client_resp *resp,
                    void *ctx)
{
    struct proxy_exchange *x = ctx;
    struct cn_proxy *p = x->p;
    x->up = NULL;
    switch (x->mode) {
    case X_QUEUED:
        CN_ASSERT(false && "member answer for a queued request");
        break;
    case X_WAIT:
        CN_ASSERT(rc != 0); /* on_head runs before any success */
        if (rc == CN_ERR_CANCELED && p->stopping) {
            finish_error(x, 503, "proxy: shutting down", true);
            return;
        }
        /* etcd: "proxy: failed to direct request to %s: %v", then ep.Failed() */
        CN_LOGW("proxy", "failed to direct request endpoint=%s err=\"%s\"", x->cur,
                cn_strerror(rc));
        cn_proxy__count_dropped(p, x->slot, DROP_FAILED_SENDING);
        cn_proxy__endpoint_failed(p, x->cur, rc);
        attempt(x);
        return;
    case X_BUFFER:
        if (rc == CN_ERR_CANCELED && p->stopping) {
            finish_error(x, 503, "proxy: shutting down", true);
            return;
        }
        if (rc != 0) {
            /* headers came, the body did not: nothing went to the client yet, but the member
             * did handle the request, so it is not sent elsewhere */
            CN_LOGW("proxy", "member response failed endpoint=%s err=\"%s\"", x->cur,
                    cn_strerror(rc));
            cn_proxy__count_dropped(p, x->slot, DROP_FAILED_RESPONSE);
            finish_error(x, 502, "proxy: member response failed", true);
            return;
        }
        cn_proxy__count_handled(p, x->slot, x->status);
        /* for HEAD the body is never read, only its length is announced */
        cn_http_respond(x->req, x->status, NULL, x->rhdrs, x->nrhdrs, x->body.p ? x->body.p : "",
                        x->req->method == CN_HTTP_HEAD ? (size_t)x->body_len : x->body.len, false);
        x->req = NULL;
        xfree(x);
        return;
    case X_STREAM:
        if (rc != 0 && rc != CN_ERR_CANCELED)
            CN_LOGI("proxy", "member stream ended early endpoint=%s err=\"%s\"", x->cur,
                    cn_strerror(rc));
        cn_proxy__count_handled(p, x->slot, x->status);
        cn_http_stream_end(x->req);
        x->req = NULL;
        xfree(x);
        return;
    }
}

/* ---- attempts ------------------------------------------------------------------------------ */

/* Sends the request to the next candidate endpoint; answers 502 when none is left. */
static void attempt(struct proxy_exchange *x)
{
    struct cn_proxy *p = x->p;
    while (x->next < x->ncand) {
        x->cur = x->cands.p + x->cand_off[x->next++];
        struct cn_buf url = CN_BUF_INIT;
        cn_buf_appends(&url, x->cur);
        cn_buf_append(&url, x->target.p, x->target.len);
        struct cn_http_client_opts o = {
            .method = x->method,
            .url = url.p,
            .headers = x->hdrs,
            .nheaders = x->nhdrs,
            .body = x->req->body.p,
            .body_len = x->req->body.len,
            .connect_timeout_ms = p->t.dial_timeout_ms,
            .write_timeout_ms = p->t.write_timeout_ms,
            .read_timeout_ms = p->t.read_timeout_ms,
            .on_head = on_head,
            .on_chunk = on_chunk,
            .on_done = on_done,
            .ctx = x,
        };
        int rc = cn_http_client_request(p->client, &o, &x->up);
        cn_buf_free(&url);
        if (rc == 0) return;
        x->up = NULL;
        if (rc == CN_ERR_INVAL) { /* endpoints are checked when adopted: the target is bad */
            finish_error(x, 400, "proxy: bad request target", false);
            return;
        }
        CN_LOGW("proxy", "failed to direct request endpoint=%s err=\"%s\"", x->cur,
                cn_strerror(rc));
        cn_proxy__count_dropped(p, x->slot, DROP_FAILED_SENDING);
        cn_proxy__endpoint_failed(p, x->cur, rc);
    }
    char msg[96];
    snprintf(msg, sizeof(msg), "proxy: unable to get response from %zu endpoint(s)", x->ncand);
    CN_LOGW("proxy", "%s", msg);
    cn_proxy__count_dropped(p, x->slot, DROP_FAILED_RESPONSE);
    finish_error(x, 502, msg, false);
}

/* Moves a request out of the queue and starts it (or answers 503 without endpoints). */
static void dispatch(struct proxy_exchange *x)
{
    struct cn_proxy *p = x->p;
    if (x->mode == X_QUEUED) {
        cn_list_remove(&x->link);
        p->nqueued--;
        cn_list_insert_tail(&p->exchanges, &x->link);
        p->nexchanges++;
    }
    x->mode = X_WAIT;
    x->ncand = cn_proxy__pick(p, &x->cands, x->cand_off, PROXY_MAX_URLS);
    if (x->ncand == 0) {
        /* etcd: 503 "proxy: zero endpoints currently available" */
        CN_LOGW("proxy", "zero endpoints currently available");
        cn_proxy__count_dropped(p, x->slot, DROP_ZERO_ENDPOINTS);
        finish_error(x, 503, "proxy: zero endpoints currently available", false);
        return;
    }
    attempt(x);
}

void cn_proxy__forward(struct cn_proxy *p, struct cn_http_req *req, int slot)
{
    if (!p->refreshed && p->nqueued >= PROXY_MAX_QUEUED) {
        cn_proxy__error(req, 503, "proxy: zero endpoints currently available", false);
        cn_proxy__count_dropped(p, slot, DROP_ZERO_ENDPOINTS);
        return;
    }
    struct proxy_exchange *x = CN_NEW(struct proxy_exchange);
    x->p = p;
    x->req = req;
    x->slot = slot;
    size_t mlen =
        req->method_name.len < sizeof(x->method) - 1 ? req->method_name.len : sizeof(x->method) - 1;
    memcpy(x->method, req->method_name.p, mlen);
    cn_buf_append(&x->target, req->path.p, req->path.len);
    if (req->path.len == 0) cn_buf_putc(&x->target, '/');
    if (req->query.len > 0) {
        cn_buf_putc(&x->target, '?');
        cn_buf_append(&x->target, req->query.p, req->query.len);
    }
    x->nhdrs = copy_headers(req->headers, req->nheaders, true, &x->hstore, &x->hdrs);
    req->data = x;
    req->on_abort = on_abort;
    if (!p->refreshed) {
        /* etcd fetches the members before it serves; requests wait for that fetch */
        x->mode = X_QUEUED;
        cn_list_insert_tail(&p->queued, &x->link);
        p->nqueued++;
        return;
    }
    x->mode = X_WAIT;
    cn_list_insert_tail(&p->exchanges, &x->link);
    p->nexchanges++;
    dispatch(x);
}

void cn_proxy__run_queued(struct cn_proxy *p)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &p->queued) {
        dispatch(CN_CONTAINER_OF(it, struct proxy_exchange, link));
    }
}

void cn_proxy__fail_queued(struct cn_proxy *p)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &p->queued) {
        struct proxy_exchange *x = CN_CONTAINER_OF(it, struct proxy_exchange, link);
        finish_error(x, 503, "proxy: shutting down", true);
    }
}
