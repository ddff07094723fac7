/* api/v2: routing, CORS, response helpers and the error table. */
#include "api_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"

const char *const cn_api__method_names[M_COUNT] = {"GET",    "QGET", "PUT",  "POST",
                                                   "DELETE", "HEAD", "OTHER"};

struct v2_err {
    int code;
    const char *message;
    int status;
};

static const struct v2_err v2_errors[] = {
#define CN_V2_ERR(name, code, msg, status) {code, msg, status},
#include "v2_errors.def"
#undef CN_V2_ERR
};

static const struct v2_err *find_err(int code)
{
    for (size_t i = 0; i < sizeof(v2_errors) / sizeof(v2_errors[0]); i++)
        if (v2_errors[i].code == code) return &v2_errors[i];
    return NULL;
}

struct cn_api *cn_api_new(uv_loop_t *loop, const struct cn_api_options *opt, struct cn_store *store,
                          struct cn_node *node)
{
    struct cn_api *api = CN_NEW(struct cn_api);
    api->loop = loop;
    api->store = store;
    api->node = node;
    api->name = cn_xstrdup(opt->name);
    api->cors = opt->cors ? cn_xstrdup(opt->cors) : NULL;
    api->member_id = opt->member_id;
    api->cluster_id = opt->cluster_id;
    snprintf(api->cluster_hex, sizeof(api->cluster_hex), "%" PRIx64, opt->cluster_id);
    snprintf(api->member_hex, sizeof(api->member_hex), "%" PRIx64, opt->member_id);
    api->max_request_bytes = opt->max_request_bytes;
    api->election_ms = opt->election_ms;
    api->start_ns = cn_clock_real_ns();
    api->discovery_service = opt->discovery_service;
    api->discovery_host = opt->discovery_host ? cn_xstrdup(opt->discovery_host) : NULL;
    api->discovery_ttl_s = opt->discovery_ttl_s ? opt->discovery_ttl_s : 604800;
    cn_list_init(&api->watches);
    return api;
}

void cn_api_free(struct cn_api *api)
{
    if (api == NULL) return;
    cn_free(api->name);
    cn_free(api->cors);
    cn_free(api->discovery_host);
    cn_free(api);
}

int cn_api__method_index(const struct cn_http_req *req, bool quorum)
{
    switch (req->method) {
    case CN_HTTP_GET:
        return quorum ? M_QGET : M_GET;
    case CN_HTTP_HEAD:
        return M_HEAD;
    case CN_HTTP_PUT:
        return M_PUT;
    case CN_HTTP_POST:
        return M_POST;
    case CN_HTTP_DELETE:
        return M_DELETE;
    default:
        return M_OTHER;
    }
}

const double cn_api__latency_buckets[14] = {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
                                            0.064,  0.128, 0.256, 0.512, 1.024, 2.048, 4.096};

void cn_api__count(struct cn_api *api, int m, int status, int64_t start_ns)
{
    if (status < 400) {
        double s = (double)(cn_clock_mono_ns() - start_ns) / 1e9;
        for (int i = 0; i < 14; i++)
            if (s <= cn_api__latency_buckets[i]) {
                api->ok_bucket[m][i]++;
                break;
            }
        api->ok_count[m]++;
        api->ok_sum[m] += s;
        return;
    }
    for (int i = 0; i < CN_API_NCODES; i++) {
        if (api->failed_code[i] == status || api->failed_code[i] == 0) {
            api->failed_code[i] = status;
            api->failed[m][i]++;
            return;
        }
    }
}

void cn_api__send(struct cn_api *api, struct cn_http_req *req, int status, const char *ctype,
                  const struct cn_http_hdr *hdrs, size_t nhdrs, const void *body, size_t len)
{
    (void)api;
    cn_http_respond(req, status, ctype, hdrs, nhdrs, body, len, false);
}

int cn_api__status_of(int ecode)
{
    const struct v2_err *e = find_err(ecode);
    return e ? e->status : 500;
}

void cn_api__error_body(struct cn_buf *b, int ecode, const char *cause, uint64_t index)
{
    const struct v2_err *e = find_err(ecode);
    cn_buf_appendf(b, "{\"errorCode\":%d,\"message\":", ecode);
    cn_json_strz(b, e ? e->message : "Unknown error");
    if (cause && *cause) {
        cn_buf_appends(b, ",\"cause\":");
        cn_json_strz(b, cause);
    }
    cn_buf_appends(b, ",\"index\":");
    cn_buf_append_u64(b, index);
    cn_buf_appends(b, "}\n");
}

int cn_api__send_error(struct cn_api *api, struct cn_http_req *req, int ecode, const char *cause,
                       uint64_t index)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_api__error_body(&b, ecode, cause, index);
    char idx[24];
    snprintf(idx, sizeof(idx), "%" PRIu64, index);
    struct cn_http_hdr h[] = {{"X-Etcd-Cluster-Id", api->cluster_hex}, {"X-Etcd-Index", idx}};
    int status = cn_api__status_of(ecode);
    cn_http_respond(req, status, "application/json", h, 2, b.p, b.len, false);
    cn_buf_free(&b);
    return status;
}

void cn_api_reply_too_large(struct cn_http_req *req)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_api__error_body(&b, CN_V2_INVALID_FORM, "http: POST too large", 0);
    cn_http_respond(req, cn_api__status_of(CN_V2_INVALID_FORM), "application/json", NULL, 0, b.p,
                    b.len, false);
    cn_buf_free(&b);
}

void cn_api__send_message(struct cn_api *api, struct cn_http_req *req, int status,
                          const char *message)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "{\"message\":");
    cn_json_strz(&b, message);
    cn_buf_putc(&b, '}');
    struct cn_http_hdr h[] = {{"X-Etcd-Cluster-Id", api->cluster_hex}};
    cn_http_respond(req, status, "application/json", h, 1, b.p, b.len, false);
    cn_buf_free(&b);
}

/* Go's http.Error: text/plain, nosniff, the text and a newline. */
static void send_text(struct cn_http_req *req, int status, const char *text,
                      const struct cn_http_hdr *hdrs, size_t nhdrs)
{
    struct cn_http_hdr h[4];
    size_t n = 0;
    CN_ASSERT(nhdrs < sizeof(h) / sizeof(h[0]));
    for (size_t i = 0; i < nhdrs; i++)
        h[n++] = hdrs[i];
    h[n++] = (struct cn_http_hdr){"X-Content-Type-Options", "nosniff"};
    cn_http_respond(req, status, "text/plain; charset=utf-8", h, n, text, strlen(text), false);
}

static void method_not_allowed(struct cn_http_req *req, const char *allow)
{
    struct cn_http_hdr h[] = {{"Allow", allow}};
    send_text(req, 405, "Method Not Allowed\n", h, 1);
}

/* ---- routing ---------------------------------------------------------------------------- */

#define M(x) (1u << (x))

static void route_machines(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    (void)rest;
    cn_api__machines(api, req);
}

static void route_version(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    (void)rest;
    cn_api__version(api, req);
}

static void route_health(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    (void)rest;
    cn_api__health(api, req);
}

static void route_metrics(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    (void)rest;
    cn_api__metrics(api, req);
}

static void route_stats(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    (void)rest;
    static const size_t n =
        sizeof("/v2/stats/") - 1; /* the routes are exact: self, leader, store */
    cn_api__stats(api, req, cn_str_make(req->path.p + n, req->path.len - n));
}

static const struct cn_api__route routes[] = {
    {"/v2/keys", true,
     M(CN_HTTP_HEAD) | M(CN_HTTP_GET) | M(CN_HTTP_PUT) | M(CN_HTTP_POST) | M(CN_HTTP_DELETE),
     "HEAD,GET,PUT,POST,DELETE", cn_api__keys},
    {"/v2/members", true, M(CN_HTTP_GET) | M(CN_HTTP_POST) | M(CN_HTTP_DELETE) | M(CN_HTTP_PUT),
     "GET,POST,DELETE,PUT", cn_api__members},
    {"/v2/machines", false, M(CN_HTTP_GET) | M(CN_HTTP_HEAD), "GET,HEAD", route_machines},
    {"/v2/stats/self", false, M(CN_HTTP_GET), "GET", route_stats},
    {"/v2/stats/leader", false, M(CN_HTTP_GET), "GET", route_stats},
    {"/v2/stats/store", false, M(CN_HTTP_GET), "GET", route_stats},
    {"/version", false, M(CN_HTTP_GET), "GET", route_version},
    {"/health", false, M(CN_HTTP_GET), "GET", route_health},
    {"/metrics", false, M(CN_HTTP_GET) | M(CN_HTTP_HEAD), "GET,HEAD", route_metrics},
};

const struct cn_api__route *cn_api__find_route(struct cn_str path, struct cn_str *rest)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct cn_api__route *r = &routes[i];
        size_t n = strlen(r->path);
        if (path.len < n || memcmp(path.p, r->path, n) != 0) continue;
        if (path.len == n || (r->prefix && path.p[n] == '/')) {
            *rest = cn_str_make(path.p + n, path.len - n);
            return r;
        }
    }
    return NULL;
}

/* etcd 2.x adds CORS headers only when --cors is configured and the Origin is allowed. Returns
 * true when the request was an OPTIONS preflight and has been answered. */
static bool cors(struct cn_api *api, struct cn_http_req *req)
{
    struct cn_http_hdr h[3];
    char obuf[512];
    if (!cn_http_cors(api->cors, req, h, obuf, sizeof(obuf))) return false;
    if (req->method == CN_HTTP_OPTIONS) {
        cn_http_respond(req, 200, NULL, h, 3, "", 0, false);
        return true;
    }
    /* Non-preflight: the headers ride on whatever response the request gets. */
    for (size_t i = 0; i < 3; i++)
        cn_http_req_add_header(req, h[i].name, h[i].value);
    return false;
}

void cn_api_handle(struct cn_http_req *req, void *ctx)
{
    struct cn_api *api = ctx;
    if (cors(api, req)) return;
    struct cn_str rest;
    const struct cn_api__route *r = cn_api__find_route(req->path, &rest);
    if (r != NULL) {
        if (req->method < 0 || req->method >= 32 || !(r->methods & M((unsigned)req->method)))
            return method_not_allowed(req, r->allow);
        return r->fn(api, req, rest);
    }
    if (api->discovery_service && cn_api__discovery(api, req)) return;
    send_text(req, 404, "404 page not found\n", NULL, 0);
}

void cn_api_too_large(struct cn_http_req *req, void *ctx)
{
    struct cn_api *api = ctx;
    /* etcd's form parser refuses bodies over its limit with this error; the connection is then
     * closed by the http layer because the rest of the body was not read. */
    cn_api__send_error(api, req, CN_V2_INVALID_FORM, "http: POST too large", 0);
}
