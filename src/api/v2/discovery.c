/* discovery: etcd's discovery service (discovery.etcd.io, spec etcd-cluster.md §9) served by the
 * member itself when --discovery-service is set. /new?size=N creates a token: a directory
 * /_etcd/registry/<token> with a TTL (--discovery-token-ttl) holding _config/size, written through
 * the log like any key, so a cairn cluster is a replicated discovery service. /<token>/... is the
 * v2 keys API on that directory, so etcd's discovery client (and cairn's) talks to it unchanged. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api_int.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/url.h"

#define MAX_SIZE 1000

struct new_token {
    struct cn_api *api;
    struct cn_http_req *req;
    struct cn_node_req *nreq;
    char token[33];
    uint64_t size;
    int step; /* 0: the directory, 1: the size key */
};

static void text(struct cn_http_req *req, int status, const char *body)
{
    cn_http_respond(req, status, "text/plain", NULL, 0, body, strlen(body), false);
}

static void new_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct new_token *t = req->data; /* ctx is the server's */
    cn_node_req_detach(t->nreq);
    cn_free(t);
}

static void propose_step(struct new_token *t);

static void new_done(void *ctx, int rc, const void *vres)
{
    const struct cn_store_result *res = vres;
    struct new_token *t = ctx;
    t->nreq = NULL;
    if (rc != 0 || res == NULL || res->err.ecode != 0) {
        CN_LOGW("discovery", "cannot create a discovery token err=\"%s\" ecode=%d",
                rc ? cn_strerror(rc) : "-", res ? res->err.ecode : 0);
        t->req->on_abort = NULL;
        text(t->req, 400, "Unable to generate token");
        cn_free(t);
        return;
    }
    if (t->step == 0) {
        t->step = 1;
        propose_step(t);
        return;
    }
    struct cn_buf b = CN_BUF_INIT;
    const char *host = t->api->discovery_host ? t->api->discovery_host : "";
    size_t hl = strlen(host);
    while (hl > 0 && host[hl - 1] == '/')
        hl--;
    cn_buf_append(&b, host, hl);
    cn_buf_putc(&b, '/');
    cn_buf_appends(&b, t->token);
    t->req->on_abort = NULL;
    cn_http_respond(t->req, 200, "text/plain", NULL, 0, b.p, b.len, false);
    CN_LOGI("discovery", "new discovery token token=%s size=%" PRIu64, t->token, t->size);
    cn_buf_free(&b);
    cn_free(t);
}

static void propose_step(struct new_token *t)
{
    char key[96], val[24];
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    c.ns = CN_NS_KEYS;
    c.op = CN_OP_CREATE;
    c.now_ns = cn_clock_real_ns();
    if (t->step == 0) {
        snprintf(key, sizeof(key), "/_etcd/registry/%s", t->token);
        c.dir = true;
        c.expire_ns = c.now_ns + (int64_t)t->api->discovery_ttl_s * CN_NS_PER_S;
    } else {
        snprintf(key, sizeof(key), "/_etcd/registry/%s/_config/size", t->token);
        snprintf(val, sizeof(val), "%" PRIu64, t->size);
        c.value = cn_str_c(val);
    }
    c.key = cn_str_c(key);
    struct cn_buf cmd = CN_BUF_INIT;
    cn_store_cmd_encode(&c, &cmd);
    t->nreq = cn_node_propose(t->api->node, cmd.p, cmd.len, new_done, t);
    cn_buf_free(&cmd);
}

/* The size parameter from the query or a form body ("size=5"); NULL when absent. */
static bool find_size(struct cn_str s, struct cn_buf *out)
{
    const char *p = s.p, *end = s.p + s.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) >= 5 && memcmp(p, "size=", 5) == 0) {
            cn_buf_reset(out);
            if (cn_url_decode(out, cn_str_make(p + 5, (size_t)(e - p - 5)), true) != 0)
                cn_buf_reset(out);
            cn_buf_putc(out, '\0');
            out->len--;
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

static void new_token(struct cn_api *api, struct cn_http_req *req)
{
    uint64_t size = 3;
    struct cn_buf v = CN_BUF_INIT;
    bool has = find_size(req->query, &v) || find_size(req->body, &v);
    if (has) {
        char *e = NULL;
        unsigned long long x = v.len ? strtoull(v.p, &e, 10) : 0;
        if (v.len == 0 || *e != '\0' || v.p[0] == '-' || v.p[0] == '+' || x == 0 || x > MAX_SIZE) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "invalid size \"%.64s\": the cluster size must be an integer from 1 to %d\n",
                     v.len ? v.p : "", MAX_SIZE);
            cn_buf_free(&v);
            text(req, 400, msg);
            return;
        }
        size = x;
    }
    cn_buf_free(&v);
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        text(req, 400, "Unable to generate token");
        return;
    }
    struct new_token *t = CN_NEW(struct new_token);
    for (int i = 0; i < 16; i++)
        snprintf(t->token + 2 * i, 3, "%02x", rnd[i]);
    t->api = api;
    t->req = req;
    t->size = size;
    req->data = t;
    req->on_abort = new_abort;
    propose_step(t);
}

static bool is_token(struct cn_str s)
{
    if (s.len != 32) return false;
    for (size_t i = 0; i < 32; i++)
        if (!((s.p[i] >= '0' && s.p[i] <= '9') || (s.p[i] >= 'a' && s.p[i] <= 'f'))) return false;
    return true;
}

bool cn_api__discovery(struct cn_api *api, struct cn_http_req *req)
{
    struct cn_str path = req->path;
    if (cn_str_eqz(path, "/new")) {
        new_token(api, req);
        return true;
    }
    if (path.len < 33 || path.p[0] != '/') return false;
    if (!is_token(cn_str_make(path.p + 1, 32)) || (path.len > 33 && path.p[33] != '/'))
        return false;
    /* /<token>/rest -> /v2/keys/_etcd/registry/<token>/rest */
    char key[4096];
    int n = snprintf(key, sizeof(key), "/_etcd/registry%.*s", (int)path.len, path.p);
    if (n < 0 || (size_t)n >= sizeof(key)) return false;
    cn_api__keys(api, req, cn_str_make(key, (size_t)n));
    return true;
}
