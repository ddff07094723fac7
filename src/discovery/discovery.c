/* discovery: the client side of etcd's discovery protocol, and DNS SRV bootstrap. See the header.
 *
 * Design notes: the client is a small state machine, one HTTP request in flight at a time:
 *   SIZE -> LIST (full?) -> REGISTER -> LIST (enough?) -> WAIT (long poll) -> LIST ... -> done.
 * A transport failure (refused, reset, timeout, 5xx) of a step retries that step after a backoff;
 * CN_DISCOVERY_RETRIES failures in a row end it with "too many retries". Anything the server
 * answered that does not fit the protocol ends it at once with etcd's error. */
#include "discovery.h"
#include "discovery_int.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/url.h"

enum { ST_SIZE, ST_CHECK, ST_REGISTER, ST_LIST, ST_WAIT, ST_DONE };

struct cn_discovery {
    uv_loop_t *loop;
    struct cn_http_client *cl;
    struct cn_http_client_req *req;
    char *url, *proxy, *self_reg, *name;
    uint64_t self_id;
    cn_discovery_cb cb;
    void *ctx;
    int state;
    unsigned failures;
    uint64_t size;
    uint64_t wait_index;
    uv_timer_t timer;
    bool timer_busy;
    bool canceled;
};

const char *cn_discovery_strerror(int err)
{
    switch (err) {
    case CN_DISC_OK:
        return "ok";
    case CN_DISC_FULL:
        return "discovery: cluster is full";
    case CN_DISC_DUP_ID:
        return "discovery: found duplicate id";
    case CN_DISC_DUP_NAME:
        return "discovery: found duplicate name";
    case CN_DISC_SIZE_NOT_FOUND:
        return "discovery: size key not found";
    case CN_DISC_BAD_SIZE:
        return "discovery: size key is bad";
    case CN_DISC_BAD_ENDPOINT:
        return "discovery: bad discovery endpoint";
    case CN_DISC_TOO_MANY:
        return "discovery: too many retries";
    case CN_DISC_BAD_URL:
        return "discovery: invalid URL";
    default:
        return "discovery: unknown error";
    }
}

static void step(struct cn_discovery *d);

static void timer_closed(uv_handle_t *h)
{
    struct cn_discovery *d = h->data;
    cn_free(d->url);
    cn_free(d->proxy);
    cn_free(d->self_reg);
    cn_free(d->name);
    cn_free(d);
}

static void finish(struct cn_discovery *d, int err, const struct cn_discovery_peer *peers, size_t n)
{
    d->state = ST_DONE;
    if (!d->canceled) d->cb(d->ctx, err, peers, n);
    d->canceled = true;
    uv_close((uv_handle_t *)&d->timer, timer_closed);
}

static void retry_cb(uv_timer_t *t)
{
    step(t->data);
}

/* A transport-level failure: try the step again after a backoff, or give up. */
static void transient(struct cn_discovery *d, const char *what, const char *why)
{
    d->failures++;
    if (d->failures >= CN_DISCOVERY_RETRIES) {
        CN_LOGE("discovery", "giving up after %u attempts step=%s err=\"%s\" url=%s", d->failures,
                what, why, d->url);
        finish(d, CN_DISC_TOO_MANY, NULL, 0);
        return;
    }
    uint64_t ms = 250u << (d->failures - 1);
    if (ms > 4000) ms = 4000;
    CN_LOGW("discovery",
            "discovery request failed, retrying step=%s err=\"%s\" attempt=%u "
            "retry_in_ms=%" PRIu64 " url=%s",
            what, why, d->failures, ms, d->url);
    uv_timer_start(&d->timer, retry_cb, ms, 0);
}

/* ---- answers (pure: discovery_int.h) ------------------------------------------------------ */

static json_t *parse_body(struct cn_str body)
{
    return json_loadb(body.p ? body.p : "", body.len, 0, NULL);
}

static int error_code(json_t *j)
{
    json_t *c = json_object_get(j, "errorCode");
    return json_is_integer(c) ? (int)json_integer_value(c) : 0;
}

int cn_discovery__parse_size(int status, struct cn_str body, uint64_t *size)
{
    json_t *j = parse_body(body);
    if (j == NULL) return status >= 500 ? CN_DISCOVERY__RETRY : CN_DISC_BAD_ENDPOINT;
    if (status == 404 || error_code(j) == 100) {
        json_decref(j);
        return CN_DISC_SIZE_NOT_FOUND;
    }
    if (status >= 500) {
        json_decref(j);
        return CN_DISCOVERY__RETRY;
    }
    const char *v = json_string_value(json_object_get(json_object_get(j, "node"), "value"));
    char *end = NULL;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    bool ok = v && *v && end && *end == '\0' && *v != '-' && n > 0 && n <= 1000;
    json_decref(j);
    if (!ok) return CN_DISC_BAD_SIZE;
    *size = n;
    return CN_DISC_OK;
}

int cn_discovery__parse_register(int status, struct cn_str body)
{
    json_t *j = parse_body(body);
    if (j == NULL && status < 500) return CN_DISC_BAD_ENDPOINT;
    int ec = error_code(j);
    json_decref(j);
    if (status >= 500) return CN_DISCOVERY__RETRY;
    if (ec == 105 || status == 412) return CN_DISC_DUP_ID;
    if (status != 201 && status != 200) return CN_DISC_BAD_ENDPOINT;
    return CN_DISC_OK;
}

static int cmp_created(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t cx = json_integer_value(json_object_get(x, "createdIndex"));
    json_int_t cy = json_integer_value(json_object_get(y, "createdIndex"));
    return cx < cy ? -1 : cx > cy;
}

/* The registrations of a listing, oldest first (without _config). Returns how many. */
static size_t registrations(json_t *j, json_t **out, size_t max)
{
    json_t *nodes = json_object_get(json_object_get(j, "node"), "nodes");
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(nodes, i, v)
    {
        const char *key = json_string_value(json_object_get(v, "key"));
        if (key == NULL || n == max) continue;
        const char *last = strrchr(key, '/');
        if (last && strcmp(last + 1, "_config") == 0) continue;
        if (json_is_true(json_object_get(v, "dir"))) continue;
        out[n++] = v;
    }
    qsort(out, n, sizeof(*out), cmp_created);
    return n;
}

static uint64_t key_id(json_t *node)
{
    const char *key = json_string_value(json_object_get(node, "key"));
    const char *last = key ? strrchr(key, '/') : NULL;
    return last ? strtoull(last + 1, NULL, 16) : 0;
}

int cn_discovery__parse_list(int status, struct cn_str body, struct cn_discovery__list *l)
{
    memset(l, 0, sizeof(*l));
    json_t *j = parse_body(body);
    if (j == NULL || status >= 500) {
        json_decref(j);
        if (status >= 500 || (status == 200 && body.len == 0)) return CN_DISCOVERY__RETRY;
        return CN_DISC_BAD_ENDPOINT;
    }
    if (status != 200) {
        int ec = error_code(j);
        json_decref(j);
        return ec == 100 ? CN_DISC_SIZE_NOT_FOUND : CN_DISC_BAD_ENDPOINT;
    }
    json_t *regs[CN_DISCOVERY_MAX];
    l->root = j;
    l->n = registrations(j, regs, CN_DISCOVERY_MAX);
    for (size_t i = 0; i < l->n; i++) {
        l->regs[i].id = key_id(regs[i]);
        l->regs[i].value = (char *)json_string_value(json_object_get(regs[i], "value"));
    }
    return CN_DISC_OK;
}

void cn_discovery__list_free(struct cn_discovery__list *l)
{
    json_decref(l->root);
    memset(l, 0, sizeof(*l));
}

/* The name part of a "name=url,..." registration. */
static void reg_name(const char *v, char *out, size_t len)
{
    const char *eq = strchr(v, '=');
    size_t n = eq ? (size_t)(eq - v) : strlen(v);
    if (n >= len) n = len - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

void cn_discovery__judge(const struct cn_discovery__list *l, uint64_t self_id, uint64_t size,
                         bool check, struct cn_discovery__verdict *v)
{
    size_t n = l->n;
    size_t self_pos = n;
    for (size_t i = 0; i < n; i++)
        if (l->regs[i].id == self_id) self_pos = i;
    size_t take = n < size ? n : (size_t)size;
    v->next = CN_DISCOVERY__NEXT_DONE;
    v->err = CN_DISC_OK;
    v->npeers = 0;
    if (check) {
        /* etcd checks fullness before registering, so a late member never registers */
        if (n >= size && self_pos >= size) {
            for (size_t i = 0; i < take; i++)
                v->peers[i] = l->regs[i];
            v->err = CN_DISC_FULL;
            v->npeers = take;
            return;
        }
        v->next = self_pos < n ? CN_DISCOVERY__NEXT_LIST : CN_DISCOVERY__NEXT_REGISTER;
        return;
    }
    if (n < size) {
        v->next = CN_DISCOVERY__NEXT_WAIT;
        return;
    }
    if (self_pos >= size) {
        v->err = CN_DISC_FULL;
        return;
    }
    for (size_t i = 0; i < take; i++) {
        v->peers[i].id = l->regs[i].id;
        v->peers[i].value = l->regs[i].value ? l->regs[i].value : "";
        char a[256], b[256];
        reg_name(v->peers[i].value, a, sizeof(a));
        for (size_t k = 0; k < i; k++) {
            reg_name(v->peers[k].value, b, sizeof(b));
            if (strcmp(a, b) == 0) v->err = CN_DISC_DUP_NAME;
        }
    }
    if (v->err == CN_DISC_OK) v->npeers = take;
}

/* ---- the state machine's answers ----------------------------------------------------------- */

static void on_size(struct cn_discovery *d, const struct cn_http_client_resp *resp)
{
    uint64_t size = 0;
    int rc = cn_discovery__parse_size(resp->status, resp->body, &size);
    if (rc == CN_DISCOVERY__RETRY) {
        transient(d, "size", "server error");
        return;
    }
    if (rc != CN_DISC_OK) {
        finish(d, rc, NULL, 0);
        return;
    }
    d->size = size;
    d->failures = 0;
    CN_LOGI("discovery", "cluster size from discovery size=%" PRIu64 " url=%s", d->size, d->url);
    d->state = ST_CHECK;
    step(d);
}

static void on_list(struct cn_discovery *d, const struct cn_http_client_resp *resp)
{
    struct cn_discovery__list l;
    int rc = cn_discovery__parse_list(resp->status, resp->body, &l);
    if (rc == CN_DISCOVERY__RETRY) {
        transient(d, "list", "server error");
        return;
    }
    if (rc != CN_DISC_OK) {
        finish(d, rc, NULL, 0);
        return;
    }
    d->failures = 0;
    struct cn_str idx = cn_http_client_resp_header(resp, "X-Etcd-Index");
    /* a header value is a slice of the response, not a C string: parse exactly its bytes */
    uint64_t index = 0;
    if (idx.p && !cn_parse_u64(idx, &index)) index = 0;
    struct cn_discovery__verdict v;
    cn_discovery__judge(&l, d->self_id, d->size, d->state == ST_CHECK, &v);
    switch (v.next) {
    case CN_DISCOVERY__NEXT_REGISTER:
    case CN_DISCOVERY__NEXT_LIST:
        cn_discovery__list_free(&l);
        d->state = v.next == CN_DISCOVERY__NEXT_LIST ? ST_LIST : ST_REGISTER;
        step(d);
        return;
    case CN_DISCOVERY__NEXT_WAIT:
        CN_LOGN("discovery", "waiting for more members found=%zu size=%" PRIu64 " url=%s", l.n,
                d->size, d->url);
        d->wait_index = index + 1;
        cn_discovery__list_free(&l);
        d->state = ST_WAIT;
        step(d);
        return;
    case CN_DISCOVERY__NEXT_DONE:
        break;
    }
    if (v.err != CN_DISC_FULL)
        CN_LOGN("discovery", "found every member size=%" PRIu64 " url=%s", d->size, d->url);
    /* the peers' values are borrowed from the listing: free it after the callback */
    finish(d, v.err, v.npeers ? v.peers : NULL, v.npeers);
    cn_discovery__list_free(&l);
}

static void on_register(struct cn_discovery *d, const struct cn_http_client_resp *resp)
{
    int rc = cn_discovery__parse_register(resp->status, resp->body);
    if (rc == CN_DISCOVERY__RETRY) {
        transient(d, "register", "server error");
        return;
    }
    if (rc != CN_DISC_OK) {
        finish(d, rc, NULL, 0);
        return;
    }
    d->failures = 0;
    CN_LOGN("discovery", "registered id=%" PRIx64 " value=\"%s\" url=%s", d->self_id, d->self_reg,
            d->url);
    d->state = ST_LIST;
    step(d);
}

static void on_answer(struct cn_http_client_req *req, int rc,
                      const struct cn_http_client_resp *resp, void *ctx)
{
    (void)req;
    struct cn_discovery *d = ctx;
    d->req = NULL;
    if (d->canceled) return;
    static const char *names[] = {"size", "check", "register", "list", "wait"};
    if (rc != 0) {
        if (d->state == ST_WAIT && rc == CN_ERR_TIMEOUT) { /* a long poll that saw nothing */
            d->state = ST_LIST;
            step(d);
            return;
        }
        transient(d, names[d->state], cn_strerror(rc));
        return;
    }
    switch (d->state) {
    case ST_SIZE:
        on_size(d, resp);
        break;
    case ST_CHECK:
    case ST_LIST:
        on_list(d, resp);
        break;
    case ST_REGISTER:
        on_register(d, resp);
        break;
    case ST_WAIT:
        if (resp->status >= 500) {
            transient(d, "wait", "server error");
        } else {
            /* anything happened (or the index was cleared): list again */
            d->failures = 0;
            d->state = ST_LIST;
            step(d);
        }
        break;
    default:
        break;
    }
}

static void step(struct cn_discovery *d)
{
    if (d->canceled) return;
    struct cn_buf url = CN_BUF_INIT, body = CN_BUF_INIT;
    const char *method = "GET";
    uint64_t timeout = 5000;
    struct cn_http_hdr form = {"Content-Type", "application/x-www-form-urlencoded"};
    switch (d->state) {
    case ST_SIZE:
        cn_buf_appendf(&url, "%s/_config/size", d->url);
        break;
    case ST_CHECK:
    case ST_LIST:
        cn_buf_appends(&url, d->url);
        break;
    case ST_REGISTER:
        method = "PUT";
        cn_buf_appendf(&url, "%s/%" PRIx64 "?prevExist=false", d->url, d->self_id);
        cn_buf_appends(&body, "value=");
        cn_url_encode_query(&body, cn_str_c(d->self_reg));
        break;
    case ST_WAIT:
        cn_buf_appendf(&url, "%s?wait=true&recursive=true&waitIndex=%" PRIu64, d->url,
                       d->wait_index);
        timeout = 60000; /* a long poll; relisted when it ends without news */
        break;
    default:
        return;
    }
    struct cn_http_client_opts o = {
        .method = method,
        .url = url.p,
        .headers = body.len ? &form : NULL,
        .nheaders = body.len ? 1 : 0,
        .body = body.p,
        .body_len = body.len,
        .timeout_ms = timeout,
        .connect_timeout_ms = 2000,
        .max_body_bytes = 4 << 20,
        .on_done = on_answer,
        .ctx = d,
        .proxy = d->proxy,
    };
    int rc = cn_http_client_request(d->cl, &o, &d->req);
    cn_buf_free(&url);
    cn_buf_free(&body);
    if (rc != 0) finish(d, CN_DISC_BAD_URL, NULL, 0);
}

struct cn_discovery *cn_discovery_start(uv_loop_t *loop, struct cn_http_client *cl,
                                        const struct cn_discovery_opts *o, cn_discovery_cb cb,
                                        void *ctx)
{
    struct cn_discovery *d = CN_NEW(struct cn_discovery);
    d->loop = loop;
    d->cl = cl;
    size_t len = strlen(o->url);
    while (len > 0 && o->url[len - 1] == '/')
        len--;
    d->url = cn_xstrndup(o->url, len);
    if (o->proxy && *o->proxy) {
        struct cn_buf p = CN_BUF_INIT;
        if (strncmp(o->proxy, "http", 4) != 0) cn_buf_appends(&p, "http://");
        cn_buf_appends(&p, o->proxy);
        d->proxy = cn_buf_steal(&p, NULL);
    }
    d->self_reg = cn_xstrdup(o->self_reg);
    d->name = cn_xstrdup(o->name ? o->name : "");
    d->self_id = o->self_id;
    d->cb = cb;
    d->ctx = ctx;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->state = ST_SIZE;
    CN_LOGN("discovery", "bootstrapping through discovery url=%s id=%" PRIx64 "%s%s", d->url,
            d->self_id, d->proxy ? " proxy=" : "", d->proxy ? d->proxy : "");
    step(d);
    return d;
}

void cn_discovery_cancel(struct cn_discovery *d)
{
    if (d == NULL || d->state == ST_DONE) return;
    d->canceled = true;
    if (d->req) cn_http_client_cancel(d->req);
    d->req = NULL;
    finish(d, 0, NULL, 0);
}

/* ---- DNS SRV ------------------------------------------------------------------------------- */

struct srv {
    char target[NS_MAXDNAME];
    uint16_t port;
};

static int srv_query(const char *name, struct srv *out, int max)
{
    unsigned char ans[8192];
    int len = res_query(name, ns_c_in, ns_t_srv, ans, sizeof(ans));
    if (len < 0) return -1;
    ns_msg msg;
    if (ns_initparse(ans, len, &msg) != 0) return -1;
    int n = 0;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < max; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv) continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        if (ns_rr_rdlen(rr) < 7) continue;
        out[n].port = (uint16_t)((rd[4] << 8) | rd[5]);
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, out[n].target,
                      sizeof(out[n].target)) < 0)
            continue;
        size_t tl = strlen(out[n].target);
        if (tl && out[n].target[tl - 1] == '.') out[n].target[tl - 1] = '\0';
        n++;
    }
    return n;
}

/* The addresses host resolves to, as "ip" strings. */
static int resolve_all(const char *host, char ips[][INET6_ADDRSTRLEN], int max)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) return 0;
    int n = 0;
    for (struct addrinfo *a = res; a && n < max; a = a->ai_next) {
        void *p = a->ai_family == AF_INET ? (void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                                          : (void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        inet_ntop(a->ai_family, p, ips[n], INET6_ADDRSTRLEN);
        n++;
    }
    freeaddrinfo(res);
    return n;
}

static bool same_endpoint(const char *host_a, uint16_t port_a, const char *host_b, uint16_t port_b)
{
    if (port_a != port_b) return false;
    char a[8][INET6_ADDRSTRLEN], b[8][INET6_ADDRSTRLEN];
    int na = resolve_all(host_a, a, 8), nb = resolve_all(host_b, b, 8);
    for (int i = 0; i < na; i++)
        for (int k = 0; k < nb; k++)
            if (strcmp(a[i], b[k]) == 0) return true;
    return false;
}

int cn_discovery_srv(const char *domain, const char *self_name, char *const *self_peer_urls,
                     size_t nself, char *out, size_t outlen, char *err, size_t errlen)
{
    static const struct {
        const char *service, *scheme;
    } kinds[] = {{"_etcd-server-ssl._tcp", "https"}, {"_etcd-server._tcp", "http"}};
    struct cn_buf b = CN_BUF_INIT;
    int found_any = 0, other = 0;
    bool self_found = false;
    for (size_t k = 0; k < 2; k++) {
        char name[NS_MAXDNAME];
        snprintf(name, sizeof(name), "%s.%s", kinds[k].service, domain);
        struct srv recs[32];
        int n = srv_query(name, recs, 32);
        if (n <= 0) continue;
        found_any += n;
        for (int i = 0; i < n; i++) {
            char url[NS_MAXDNAME + 32];
            snprintf(url, sizeof(url), "%.8s://%.1000s:%u", kinds[k].scheme, recs[i].target,
                     recs[i].port);
            bool me = false;
            for (size_t s = 0; s < nself && !me; s++) {
                struct cn_url u;
                char why[256];
                if (cn_url_parse(self_peer_urls[s], &u, why, sizeof(why)) != 0) continue;
                if (strcmp(u.scheme, kinds[k].scheme) != 0) continue;
                me = same_endpoint(u.host, u.port, recs[i].target, recs[i].port);
                /* etcd names the member after its own advertised URL */
                if (me) snprintf(url, sizeof(url), "%.1000s", self_peer_urls[s]);
            }
            if (b.len) cn_buf_putc(&b, ',');
            if (me) {
                cn_buf_appendf(&b, "%s=%s", self_name, url);
                self_found = true;
            } else {
                cn_buf_appendf(&b, "%d=%s", other++, url);
            }
        }
    }
    if (found_any == 0) {
        snprintf(err, errlen, "error querying DNS SRV records for _etcd-server(-ssl)._tcp.%s",
                 domain);
        cn_buf_free(&b);
        return -1;
    }
    if (!self_found) {
        snprintf(err, errlen, "cannot find local etcd member \"%s\" in SRV records", self_name);
        cn_buf_free(&b);
        return -1;
    }
    if (b.len + 1 > outlen) {
        snprintf(err, errlen, "too many SRV records");
        cn_buf_free(&b);
        return -1;
    }
    memcpy(out, b.p, b.len + 1);
    cn_buf_free(&b);
    return 0;
}
