/* proxy: lifecycle (start/stop), the endpoint list with its quarantine and round robin, the
 * requests the proxy answers itself (/metrics, /v2/config/local/proxy, readonly refusals, CORS
 * preflights) and the etcd_proxy_* counters.
 *
 * Design notes
 *
 * Handles. A running proxy owns three handles: the http server (client side), the http client
 * (member side) and the refresh timer. cn_proxy_stop closes all three; each close callback counts
 * open_handles down and the last one frees the proxy and then calls the user's callback, so
 * nothing is freed inside a callback chain of its own.
 *
 * Stop order. 1. the refresh timer and a refresh in flight stop; 2. queued requests get 503;
 * 3. the server closes: streams are aborted (forward.c's abort handler cancels their member
 * request); 4. the client closes: every member request still in flight fails with
 * CN_ERR_CANCELED, and forward.c answers its client 503 (the server then closes that connection).
 *
 * Endpoints. As etcd's director: an endpoint that failed is skipped for --proxy-failure-wait,
 * then tried again. Quarantine is a timestamp compared with uv_now(), so no timer per endpoint. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/url.h"
#include "proxy/proxy_int.h"

/* ---- local answers ------------------------------------------------------------------------- */

/* Go's server adds Date to every response; the proxy's server relays the member's Date instead
 * (send_date is off), so answers made here add their own. */
static void local_respond(struct cn_http_req *req, int status, const char *ctype,
                          const struct cn_http_hdr *extra, size_t nextra, const void *body,
                          size_t len, bool close_after)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    struct cn_http_hdr h[4];
    size_t n = 0;
    for (size_t i = 0; i < nextra && n < 3; i++)
        h[n++] = extra[i];
    h[n++] = (struct cn_http_hdr){"Date", date};
    cn_http_respond(req, status, ctype, h, n, body, len, close_after);
}

void cn_proxy__error(struct cn_http_req *req, int status, const char *msg, bool close_after)
{
    /* etcd: httptypes.HTTPError.WriteTo, json.Marshal without a trailing newline */
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "{\"message\":");
    cn_json_strz(&b, msg);
    cn_buf_putc(&b, '}');
    local_respond(req, status, "application/json", NULL, 0, b.p, b.len, close_after);
    cn_buf_free(&b);
}

/* etcd 2.x wraps the proxy handler in its CORS handler when --cors is set; same rules as the
 * member's (api/v2). Returns true when the request was a preflight and has been answered. */
static bool cors(struct cn_proxy *p, struct cn_http_req *req)
{
    struct cn_http_hdr h[3];
    char obuf[512];
    if (!cn_http_cors(p->cors, req, h, obuf, sizeof(obuf))) return false;
    if (req->method == CN_HTTP_OPTIONS) {
        local_respond(req, 200, NULL, h, 3, "", 0, false);
        return true;
    }
    for (size_t i = 0; i < 3; i++)
        cn_http_req_add_header(req, h[i].name, h[i].value);
    return false;
}

/* etcd's /v2/config/local/proxy: the endpoints currently available. */
static void config_handler(struct cn_proxy *p, struct cn_http_req *req)
{
    if (req->method != CN_HTTP_GET) {
        struct cn_http_hdr h[] = {{"Allow", "GET"}};
        local_respond(req, 405, "text/plain; charset=utf-8", h, 1, "Method Not Allowed\n", 19,
                      false);
        return;
    }
    uint64_t now = uv_now(p->loop);
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "{\"endpoints\":[");
    bool first = true;
    for (size_t i = 0; i < p->neps; i++) {
        if (p->eps[i].failed_until_ms > now) continue;
        if (!first) cn_buf_putc(&b, ',');
        first = false;
        cn_json_strz(&b, p->eps[i].url);
    }
    cn_buf_appends(&b, "]}\n"); /* json.Encoder ends with a newline */
    local_respond(req, 200, "application/json", NULL, 0, b.p, b.len, false);
    cn_buf_free(&b);
}

/* ---- metrics ------------------------------------------------------------------------------- */

int cn_proxy__method_slot(struct cn_proxy *p, struct cn_str name)
{
    for (size_t i = 0; i < p->nmethods; i++)
        if (cn_str_eqz(name, p->method_names[i])) return (int)i;
    /* the parser knows a few dozen methods; the last slot takes any beyond the table */
    if (p->nmethods == PROXY_MAX_METHODS || name.len >= sizeof(p->method_names[0]))
        return PROXY_MAX_METHODS - 1;
    memcpy(p->method_names[p->nmethods], name.p, name.len);
    p->method_names[p->nmethods][name.len] = '\0';
    return (int)p->nmethods++;
}

void cn_proxy__count_dropped(struct cn_proxy *p, int slot, enum proxy_drop why)
{
    p->dropped[slot][why]++;
}

void cn_proxy__count_handled(struct cn_proxy *p, int slot, int status)
{
    for (size_t i = 0; i < p->nhandled; i++) {
        if (p->handled[i].method == slot && p->handled[i].status == status) {
            p->handled[i].n++;
            return;
        }
    }
    if (p->nhandled == PROXY_MAX_HANDLED) return; /* bounded: later pairs are not counted */
    p->handled[p->nhandled++] = (struct proxy_handled){(uint8_t)slot, (uint16_t)status, 1};
}

static const char *slot_name(const struct cn_proxy *p, size_t i)
{
    return i < p->nmethods ? p->method_names[i] : "OTHER";
}

/* Prometheus text format (0.0.4) with etcd 2.3's proxy counter names; labels sorted by name as
 * the Go client prints them. */
static void metrics_handler(struct cn_proxy *p, struct cn_http_req *req)
{
    static const char *const drop_names[DROP_N] = {"zero_endpoints", "failed_sending_request",
                                                   "failed_getting_response"};
    struct cn_buf b = CN_BUF_INIT;
    size_t nslots = p->nmethods;
    cn_buf_appends(&b, "# HELP etcd_proxy_dropped_total Counter of requests dropped on the "
                       "proxy.\n# TYPE etcd_proxy_dropped_total counter\n");
    for (size_t i = 0; i < nslots; i++)
        for (int d = 0; d < DROP_N; d++)
            if (p->dropped[i][d])
                cn_buf_appendf(&b,
                               "etcd_proxy_dropped_total{method=\"%s\",proxying_error=\"%s\"} "
                               "%" PRIu64 "\n",
                               slot_name(p, i), drop_names[d], p->dropped[i][d]);
    cn_buf_appends(&b, "# HELP etcd_proxy_handled_total Counter of requests fully handled (by "
                       "authoratitave servers)\n# TYPE etcd_proxy_handled_total counter\n");
    for (size_t i = 0; i < p->nhandled; i++)
        cn_buf_appendf(&b, "etcd_proxy_handled_total{code=\"%u\",method=\"%s\"} %" PRIu64 "\n",
                       (unsigned)p->handled[i].status, slot_name(p, p->handled[i].method),
                       p->handled[i].n);
    cn_buf_appends(&b, "# HELP etcd_proxy_requests_total Counter requests incoming by method.\n"
                       "# TYPE etcd_proxy_requests_total counter\n");
    for (size_t i = 0; i < nslots; i++)
        if (p->requests[i])
            cn_buf_appendf(&b, "etcd_proxy_requests_total{method=\"%s\"} %" PRIu64 "\n",
                           slot_name(p, i), p->requests[i]);
    local_respond(req, 200, "text/plain; version=0.0.4", NULL, 0, b.p, b.len, false);
    cn_buf_free(&b);
}

/* ---- endpoints ----------------------------------------------------------------------------- */

size_t cn_proxy__available(const struct cn_proxy *p)
{
    uint64_t now = uv_now(p->loop);
    size_t n = 0;
    for (size_t i = 0; i < p->neps; i++)
        if (p->eps[i].failed_until_ms <= now) n++;
    return n;
}

size_t cn_proxy__pick(struct cn_proxy *p, struct cn_buf *out, size_t *off, size_t max)
{
    if (p->neps == 0) return 0;
    uint64_t now = uv_now(p->loop);
    /* As etcd 2.3's director: every request goes to the first available endpoint in an order
     * that changes only when the member list is refreshed, so a client reads its own writes
     * through the proxy. */
    size_t n = 0;
    for (size_t k = 0; k < p->neps && n < max; k++) {
        const struct proxy_endpoint *e = &p->eps[k];
        if (e->failed_until_ms > now) continue;
        off[n++] = out->len;
        cn_buf_append(out, e->url, strlen(e->url) + 1);
    }
    return n;
}

void cn_proxy__endpoint_failed(struct cn_proxy *p, const char *url, int rc)
{
    uint64_t now = uv_now(p->loop);
    for (size_t i = 0; i < p->neps; i++) {
        struct proxy_endpoint *e = &p->eps[i];
        if (strcmp(e->url, url) != 0) continue;
        if (e->failed_until_ms > now) return;
        /* etcd: "proxy: marked endpoint %s unavailable" */
        e->failed_until_ms = now + (p->t.failure_wait_ms ? p->t.failure_wait_ms : 1);
        CN_LOGW("proxy", "marked endpoint unavailable endpoint=%s err=\"%s\" wait_ms=%" PRIu64, url,
                cn_strerror(rc), p->t.failure_wait_ms);
        return;
    }
}

void cn_proxy__set_endpoints(struct cn_proxy *p, const struct proxy_urls *urls)
{
    struct proxy_endpoint next[PROXY_MAX_URLS];
    size_t n = 0;
    bool same = urls->n == p->neps;
    for (size_t i = 0; i < urls->n; i++) {
        next[n].url = cn_xstrdup(urls->v[i]);
        next[n].failed_until_ms = 0;
        bool found = false;
        for (size_t j = 0; j < p->neps; j++) {
            if (strcmp(p->eps[j].url, urls->v[i]) == 0) {
                next[n].failed_until_ms = p->eps[j].failed_until_ms;
                found = true;
            }
        }
        if (!found) same = false;
        n++;
    }
    for (size_t j = 0; j < p->neps; j++)
        cn_free(p->eps[j].url);
    memcpy(p->eps, next, n * sizeof(next[0]));
    p->neps = n;
    if (same) return;
    struct cn_buf b = CN_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        cn_buf_appendf(&b, "%s%s", i ? "," : "", p->eps[i].url);
    CN_LOGN("proxy", "endpoints found endpoints=\"%s\"", b.p ? b.p : "");
    cn_buf_free(&b);
}

/* ---- serving ------------------------------------------------------------------------------- */

static void handle(struct cn_http_req *req, void *ctx)
{
    struct cn_proxy *p = ctx;
    /* etcd serves /metrics from a mux in front of the readonly and CORS wrappers */
    if (cn_str_eqz(req->path, "/metrics")) {
        metrics_handler(p, req);
        return;
    }
    if (p->readonly && req->method != CN_HTTP_GET) {
        local_respond(req, 501, NULL, NULL, 0, "", 0, false); /* etcd: WriteHeader(501) */
        return;
    }
    if (cors(p, req)) return;
    if (cn_str_eqz(req->path, "/v2/config/local/proxy")) {
        config_handler(p, req);
        return;
    }
    int slot = cn_proxy__method_slot(p, req->method_name);
    p->requests[slot]++;
    if (p->stopping) {
        cn_proxy__error(req, 503, "proxy: shutting down", true);
        return;
    }
    cn_proxy__forward(p, req, slot);
}

static void handle_closed(void *ctx)
{
    struct cn_proxy *p = ctx;
    if (--p->open_handles > 0) return;
    void (*cb)(void *) = p->stop_cb;
    void *cb_ctx = p->stop_ctx;
    cn_proxy__urls_free(&p->peers);
    for (size_t i = 0; i < p->neps; i++)
        cn_free(p->eps[i].url);
    cn_buf_free(&p->cluster_json);
    cn_free(p->cors);
    cn_free(p->cluster_path);
    cn_free(p);
    if (cb) cb(cb_ctx);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

void cn_proxy_stop(struct cn_proxy *p, void (*cb)(void *ctx), void *ctx)
{
    CN_ASSERT(!p->stopping);
    p->stopping = true;
    p->stop_cb = cb;
    p->stop_ctx = ctx;
    CN_LOGN("proxy", "stopping inflight=%zu", p->nexchanges + p->nqueued);
    cn_proxy__refresh_stop(p);
    uv_close((uv_handle_t *)&p->refresh_timer, timer_closed);
    cn_proxy__fail_queued(p);
    cn_http_server_close(p->http, handle_closed, p);
    cn_http_client_close(p->client, handle_closed, p);
}

size_t cn_proxy_inflight(const struct cn_proxy *p)
{
    return p->nexchanges + p->nqueued;
}

int cn_proxy_start(uv_loop_t *loop, const struct cn_config *cfg, const char *const *peer_urls,
                   size_t npeer, struct cn_proxy **out, char *err, size_t errlen)
{
    struct cn_proxy *p = CN_NEW(struct cn_proxy);
    p->loop = loop;
    p->t = (struct cn_proxy_timing){
        .failure_wait_ms = cfg->proxy_failure_wait_ms,
        .refresh_interval_ms = cfg->proxy_refresh_interval_ms,
        .dial_timeout_ms = cfg->proxy_dial_timeout_ms,
        .write_timeout_ms = cfg->proxy_write_timeout_ms,
        .read_timeout_ms = cfg->proxy_read_timeout_ms,
    };
    p->readonly = strcmp(cfg->proxy, "readonly") == 0;
    p->cors = cfg->cors ? cn_xstrdup(cfg->cors) : NULL;
    p->max_body = cfg->max_request_bytes;
    cn_list_init(&p->exchanges);
    cn_list_init(&p->queued);

    int rc = cn_proxy__init_peers(p, cfg, peer_urls, npeer, err, errlen);
    if (rc != 0) {
        cn_proxy__urls_free(&p->peers);
        cn_buf_free(&p->cluster_json);
        cn_free(p->cors);
        cn_free(p->cluster_path);
        cn_free(p);
        return rc;
    }

    uv_timer_init(loop, &p->refresh_timer);
    p->refresh_timer.data = p;
    p->client = cn_http_client_new(loop);
    struct cn_http_limits lim = {
        .max_header_bytes = 64 * 1024,
        .max_headers = 100,
        .max_body_bytes = cfg->max_request_bytes,
        /* one request per connection at a time, as Go's server (and the member) does */
        .max_pipeline = 1,
        .send_date = false, /* the member's Date is relayed */
    };
    p->http = cn_http_server_new(loop, &lim, handle, NULL, p);
    p->open_handles = 3;
    for (size_t i = 0; i < cfg->listen_client.n; i++) {
        const struct cn_url *u = &cfg->listen_client.u[i];
        char lerr[256] = "";
        rc = cn_http_server_listen(p->http, u->host, u->port, lerr, sizeof(lerr));
        if (rc != 0) {
            snprintf(err, errlen, "cannot listen for client requests on %s: %s",
                     cfg->listen_client.raw[i], *lerr ? lerr : cn_strerror(rc));
            cn_proxy_stop(p, NULL, NULL);
            return rc;
        }
        CN_LOGN("proxy", "listening for client requests url=%s", cfg->listen_client.raw[i]);
    }
    CN_LOGN("proxy",
            "started mode=%s peers=%zu failure_wait_ms=%" PRIu64 " refresh_interval_ms=%" PRIu64,
            p->readonly ? "readonly" : "on", p->peers.n, p->t.failure_wait_ms,
            p->t.refresh_interval_ms);
    cn_proxy__refresh_start(p);
    *out = p;
    return 0;
}
