/* cluster: the endpoint set of one cairnctl run, as etcd's client/v2 httpClusterClient keeps it.
 * Each call starts at the pinned endpoint and fails over to the others in turn; a 5xx answer
 * counts as a failed endpoint ("has no leader"); a create or delete is one-shot (no failover,
 * the first error is returned as is). Before a command, the endpoint list is replaced by the
 * cluster's advertised client URLs from /v2/members (sync) unless --no-sync. Unlike etcd's client
 * the list is not shuffled, so runs are reproducible. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "http/http_client.h"

void cn_cli_init(struct cn_cli *cli)
{
    memset(cli, 0, sizeof(*cli));
    uv_loop_init(&cli->loop);
    cli->http = cn_http_client_new(&cli->loop);
    cli->output = "simple";
}

static void endpoints_free(struct cn_cli *cli)
{
    for (size_t i = 0; i < cli->neps; i++) {
        cn_free(cli->eps[i].url);
        cn_free(cli->eps[i].base);
        cn_free(cli->eps[i].path);
    }
    cn_free(cli->eps);
    cli->eps = NULL;
    cli->neps = 0;
    cli->pinned = 0;
}

/* Splits "scheme://host[:port][/path]" the way url.Parse does for what etcdctl accepts. */
static int parse_endpoint(const char *z, struct cn_cli_endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    struct cn_buf u = CN_BUF_INIT;
    if (strstr(z, "://") == NULL) cn_buf_appends(&u, "http://");
    cn_buf_appends(&u, z);
    const char *hs = strstr(u.p, "://") + 3;
    const char *pe = hs + strcspn(hs, "/?#");
    const char *hostport = hs;
    size_t hplen = (size_t)(pe - hs);
    const char *colon = NULL;
    if (hplen > 0 && hostport[0] == '[') {
        const char *rb = memchr(hostport, ']', hplen);
        if (rb && rb + 1 < pe && rb[1] == ':') colon = rb + 1;
    } else {
        for (const char *p = pe; p > hostport; p--) {
            if (p[-1] == ':') {
                colon = p - 1;
                break;
            }
        }
    }
    size_t hlen = colon ? (size_t)(colon - hostport) : hplen;
    const char *h = hostport;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(ep->host)) hlen = sizeof(ep->host) - 1;
    memcpy(ep->host, h, hlen);
    ep->host[hlen] = '\0';
    bool https = strncmp(u.p, "https://", 8) == 0;
    ep->port = colon ? atoi(colon + 1) : (https ? 443 : 80);
    ep->url = cn_xstrdup(u.p);
    ep->base = cn_xstrndup(u.p, (size_t)(pe - u.p));
    size_t plen = strcspn(pe, "?#");
    while (plen > 0 && pe[plen - 1] == '/')
        plen--;
    ep->path = cn_xstrndup(pe, plen);
    cn_buf_free(&u);
    return 0;
}

struct split_ctx {
    struct cn_cli_endpoint *eps;
    size_t n;
};

int cn_cli_set_endpoints(struct cn_cli *cli, const char *list, struct cn_buf *err)
{
    (void)err;
    endpoints_free(cli);
    /* strings.Split keeps empty items; url.Parse("") is valid and gives "http:" */
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    cli->eps = cn_xcalloc(n, sizeof(*cli->eps));
    const char *p = list;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        char *item = cn_xstrndup(p, len);
        parse_endpoint(item, &cli->eps[i]);
        cn_free(item);
        p += len + (p[len] == ',');
    }
    cli->neps = n;
    return 0;
}

static void join_urls(struct cn_buf *out, const struct cn_cli *cli, const char *sep)
{
    for (size_t i = 0; i < cli->neps; i++) {
        if (i) cn_buf_appends(out, sep);
        cn_buf_appends(out, cli->eps[i].url);
    }
}

void cn_cli_deadline_start(struct cn_cli *cli)
{
    cli->deadline_ns = cli->total_timeout_ns > 0 ? cn_clock_mono_ns() + cli->total_timeout_ns : 0;
}

void cn_cli_deadline_clear(struct cn_cli *cli)
{
    cli->deadline_ns = 0;
}

void cn_cli_action_init(struct cn_cli_action *a, const char *method)
{
    memset(a, 0, sizeof(*a));
    a->method = method;
    cn_buf_init(&a->path);
    cn_buf_init(&a->query);
    cn_buf_init(&a->body);
}

void cn_cli_action_free(struct cn_cli_action *a)
{
    cn_buf_free(&a->path);
    cn_buf_free(&a->query);
    cn_buf_free(&a->body);
}

void cn_cli_resp_free(struct cn_cli_resp *r)
{
    cn_buf_free(&r->body);
}

void cn_cli_failure_free(struct cn_cli_failure *f)
{
    cn_free(f->one.msg);
    for (size_t i = 0; i < f->nerrs; i++)
        cn_free(f->errs[i].msg);
    cn_free(f->errs);
    memset(f, 0, sizeof(*f));
}

static void fail_one(struct cn_cli_failure *f, const char *msg, bool conn)
{
    memset(f, 0, sizeof(*f));
    f->one.msg = cn_xstrdup(msg);
    f->one.conn = conn;
}

static void fail_push(struct cn_cli_failure *f, const char *msg, bool conn)
{
    f->cluster = true;
    f->errs = cn_xrealloc(f->errs, (f->nerrs + 1) * sizeof(*f->errs));
    f->errs[f->nerrs].msg = cn_xstrdup(msg);
    f->errs[f->nerrs].conn = conn;
    f->nerrs++;
}

void cn_cli_failure_text(const struct cn_cli_failure *f, struct cn_buf *out)
{
    if (!f->cluster) {
        cn_buf_appends(out, f->one.msg ? f->one.msg : "");
        return;
    }
    cn_buf_appends(out, "client: etcd cluster is unavailable or misconfigured");
    for (size_t i = 0; i < f->nerrs; i++) {
        cn_buf_appendf(out, "; error #%zu: %s\n", i, f->errs[i].msg);
    }
}

bool cn_cli_failure_is_conn(const struct cn_cli_failure *f)
{
    if (!f->cluster) return f->one.conn;
    for (size_t i = 0; i < f->nerrs; i++) {
        if (!f->errs[i].conn) return false;
    }
    return true;
}

_Noreturn void cn_cli_handle_error(struct cn_cli *cli, int code, const struct cn_cli_failure *f)
{
    (void)cli;
    /* etcdctl 3.4 means to print client.Error as JSON with -o json, but its type assertion never
     * matches, so every error takes this path (verified against /usr/bin/etcdctl). */
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "Error:  ");
    cn_cli_failure_text(f, &b);
    cn_buf_putc(&b, '\n');
    if (f->cluster) {
        for (size_t i = 0; i < f->nerrs; i++) {
            cn_buf_appendf(&b, "error #%zu: %s\n", i, f->errs[i].msg);
        }
        cn_buf_putc(&b, '\n');
    }
    fflush(stdout);
    fwrite(b.p, 1, b.len, stderr);
    cn_buf_free(&b);
    cn_cli_exit(code);
}

_Noreturn void cn_cli_fail_msg(int code, const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "Error:  %s\n", msg);
    cn_cli_exit(code);
}

static void print_curl(const char *method, const char *url, const struct cn_cli_action *a)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appendf(&b, "cURL Command: curl -X %s %s", method, url);
    if (a->has_body) {
        cn_buf_appends(&b, " -d ");
        cn_cli_go_quote(&b, a->body.p ? a->body.p : "", a->body.len);
    }
    cn_buf_putc(&b, '\n');
    fflush(stdout);
    fwrite(b.p, 1, b.len, stderr);
    cn_buf_free(&b);
}

/* The full URL of action a on endpoint ep. */
static void action_url(struct cn_buf *out, const struct cn_cli_endpoint *ep,
                       const struct cn_cli_action *a)
{
    cn_buf_appends(out, ep->base);
    cn_buf_append(out, a->path.p, a->path.len);
    if (a->query.len) {
        cn_buf_putc(out, '?');
        cn_buf_append(out, a->query.p, a->query.len);
    }
}

/* One endpoint, following redirects (redirectFollowingHTTPClient). 0, or -1 with err/conn set;
 * *ctx_expired when the call's total deadline passed. */
static int do_endpoint(struct cn_cli *cli, const struct cn_cli_endpoint *ep,
                       struct cn_cli_action *a, struct cn_cli_resp *resp, struct cn_buf *err,
                       bool *conn, bool *ctx_expired)
{
    struct cn_buf url = CN_BUF_INIT;
    action_url(&url, ep, a);
    int result = -1;
    for (int hop = 0; hop < 11; hop++) {
        if (cli->debug) print_curl(a->method, url.p, a);
        int64_t timeout_ns = a->wait ? 0 : cli->timeout_ns;
        bool by_ctx = false;
        if (cli->deadline_ns) {
            int64_t left = cli->deadline_ns - cn_clock_mono_ns();
            if (left <= 0) {
                *ctx_expired = true;
                cn_buf_appends(err, "context deadline exceeded");
                *conn = true;
                goto out;
            }
            if (timeout_ns == 0 || left <= timeout_ns) {
                timeout_ns = left;
                by_ctx = true;
            }
        }
        uint64_t ms =
            timeout_ns > 0 ? (uint64_t)((timeout_ns + CN_NS_PER_MS - 1) / CN_NS_PER_MS) : 0;
        struct cn_buf loc = CN_BUF_INIT;
        memset(resp, 0, sizeof(*resp));
        int rc = cn_cli_exchange(cli, a->method, url.p, a->ctype, a->body.p, a->body.len, ms, true,
                                 resp, &loc);
        if (rc == CN_ERR_TIMEOUT) {
            cn_buf_free(&loc);
            if (by_ctx) {
                *ctx_expired = true;
                *conn = true; /* context.DeadlineExceeded is a net.Error with Timeout() */
                cn_buf_appends(err, "context deadline exceeded");
            } else {
                *conn = false;
                cn_buf_appendf(err, "client: endpoint %s exceeded header timeout", ep->url);
            }
            goto out;
        }
        if (rc != 0) {
            cn_buf_free(&loc);
            cn_cli_transport_err(err, rc, ep->host, ep->port, conn);
            goto out;
        }
        if (resp->status / 100 == 3) {
            if (loc.len == 0) {
                cn_buf_appends(err, "location header not set");
                *conn = false;
                cn_buf_free(&loc);
                cn_cli_resp_free(resp);
                goto out;
            }
            cn_buf_reset(&url);
            cn_buf_append(&url, loc.p, loc.len);
            cn_buf_free(&loc);
            cn_cli_resp_free(resp);
            continue;
        }
        cn_buf_free(&loc);
        result = 0;
        goto out;
    }
    cn_buf_appends(err, "client: too many redirects");
    *conn = false;
out:
    cn_buf_free(&url);
    return result;
}

static const char *status_text(int status)
{
    switch (status) {
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

int cn_cli_do(struct cn_cli *cli, struct cn_cli_action *a, struct cn_cli_resp *resp,
              struct cn_cli_failure *fail)
{
    memset(fail, 0, sizeof(*fail));
    if (cli->neps == 0) {
        fail_one(fail, "client: no endpoints available", false);
        return -1;
    }
    size_t pinned = cli->pinned;
    for (size_t i = pinned; i < pinned + cli->neps; i++) {
        size_t k = i % cli->neps;
        const struct cn_cli_endpoint *ep = &cli->eps[k];
        struct cn_buf err = CN_BUF_INIT;
        bool conn = false, ctx_expired = false;
        int rc = do_endpoint(cli, ep, a, resp, &err, &conn, &ctx_expired);
        if (rc != 0) {
            if (ctx_expired) {
                cn_cli_failure_free(fail);
                fail_one(fail, err.p, conn);
                cn_buf_free(&err);
                return -1;
            }
            fail_push(fail, err.p, conn);
            cn_buf_free(&err);
        } else if (resp->status / 100 == 5) {
            struct cn_buf m = CN_BUF_INIT;
            if (resp->status == 500 || resp->status == 503) {
                cn_buf_appendf(&m, "client: etcd member %s has no leader", ep->url);
            } else {
                cn_buf_appendf(&m, "client: etcd member %s returns server error [%s]", ep->url,
                               status_text(resp->status));
            }
            fail_push(fail, m.p, false);
            cn_buf_free(&m);
            cn_cli_resp_free(resp);
            rc = -1;
            if (a->one_shot) {
                /* the one-shot path returns cerr.Errors[0], a plain error */
                char *msg = cn_xstrdup(fail->errs[0].msg);
                cn_cli_failure_free(fail);
                fail_one(fail, msg, false);
                cn_free(msg);
                cli->pinned = (k + 1) % cli->neps;
                return -1;
            }
            continue;
        } else {
            cn_buf_free(&err);
        }
        if (rc != 0) {
            if (!a->one_shot) continue;
            struct cn_cli_err last = fail->errs[fail->nerrs - 1];
            fail->nerrs--;
            cn_cli_failure_free(fail);
            fail->one = last;
            cli->pinned = (k + 1) % cli->neps;
            return -1;
        }
        cli->pinned = k;
        cn_cli_failure_free(fail);
        return 0;
    }
    return -1;
}

/* GET /v2/members: every member's client URLs (owned by the caller). 0 or -1 with *fail. */
static int members_client_urls(struct cn_cli *cli, char ***urls, size_t *n,
                               struct cn_cli_failure *fail)
{
    struct cn_cli_action a;
    cn_cli_action_init(&a, "GET");
    cn_buf_appends(&a.path, "/v2/members");
    struct cn_cli_resp r;
    int rc = cn_cli_do(cli, &a, &r, fail);
    cn_cli_action_free(&a);
    if (rc != 0) return -1;
    if (r.status != 200) {
        char m[64];
        snprintf(m, sizeof(m), "unexpected status code %d", r.status);
        fail_one(fail, m, false);
        cn_cli_resp_free(&r);
        return -1;
    }
    struct cn_member_list l;
    char err[160];
    int prc = cn_member_list_parse(cn_str_make(r.body.p, r.body.len), CN_MEMBER_LIST_CLIENT, &l,
                                   err, sizeof(err));
    cn_cli_resp_free(&r);
    if (prc != 0) {
        fail_one(fail, "invalid character in members response", false);
        return -1;
    }
    *urls = NULL;
    *n = 0;
    for (size_t i = 0; i < l.n; i++)
        for (size_t j = 0; j < l.m[i].n_client; j++) {
            *urls = cn_xrealloc(*urls, (*n + 1) * sizeof(char *));
            (*urls)[(*n)++] = cn_xstrdup(l.m[i].client_urls[j]);
        }
    cn_member_list_free(&l);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* httpClusterClient.Sync */
static int sync_endpoints(struct cn_cli *cli, struct cn_cli_failure *fail)
{
    char **urls = NULL;
    size_t n = 0;
    if (members_client_urls(cli, &urls, &n, fail) != 0) return -1;
    if (n == 0) {
        fail_one(fail, "client: no endpoints available", false);
        return -1;
    }
    /* unchanged set: keep the list and the pin */
    bool same = n == cli->neps;
    if (same) {
        char **a = cn_xcalloc(n, sizeof(char *));
        char **b = cn_xcalloc(n, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            a[i] = urls[i];
            b[i] = cli->eps[i].url;
        }
        qsort(a, n, sizeof(char *), cmp_str);
        qsort(b, n, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n && same; i++)
            same = strcmp(a[i], b[i]) == 0;
        cn_free(a);
        cn_free(b);
    }
    if (!same) {
        struct cn_buf list = CN_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            if (i) cn_buf_putc(&list, ',');
            cn_buf_appends(&list, urls[i]);
        }
        cn_cli_set_endpoints(cli, list.p, NULL);
        cn_buf_free(&list);
    }
    for (size_t i = 0; i < n; i++)
        cn_free(urls[i]);
    cn_free(urls);
    return 0;
}

void cn_cli_connect(struct cn_cli *cli, bool sync)
{
    struct cn_buf b = CN_BUF_INIT;
    if (sync && !cli->no_sync) {
        if (cli->debug) {
            cn_buf_appends(&b, "start to sync cluster using endpoints(");
            join_urls(&b, cli, ",");
            cn_buf_appends(&b, ")\n");
            fwrite(b.p, 1, b.len, stderr);
            cn_buf_reset(&b);
        }
        struct cn_cli_failure f;
        cn_cli_deadline_start(cli);
        int rc = sync_endpoints(cli, &f);
        cn_cli_deadline_clear(cli);
        if (rc != 0) {
            if (!f.cluster && f.one.msg &&
                strcmp(f.one.msg, "client: no endpoints available") == 0) {
                cn_buf_appends(&b, "etcd cluster has no published client endpoints.\n");
                cn_buf_appends(&b, "Try '--no-sync' if you want to access non-published client "
                                   "endpoints(");
                join_urls(&b, cli, ",");
                cn_buf_appends(&b, ").\n");
                fwrite(b.p, 1, b.len, stderr);
                cn_cli_handle_error(cli, CN_CLI_EXIT_SERVER, &f);
            }
            /* etcdctl goes on after any other sync failure */
            if (cn_cli_failure_is_conn(&f)) cn_cli_handle_error(cli, CN_CLI_EXIT_BAD_CONN, &f);
            cn_cli_failure_free(&f);
        }
        if (cli->debug) {
            cn_buf_appends(&b, "got endpoints(");
            join_urls(&b, cli, ",");
            cn_buf_appends(&b, ") after sync\n");
            fwrite(b.p, 1, b.len, stderr);
            cn_buf_reset(&b);
        }
    }
    if (cli->debug) {
        cn_buf_appends(&b, "Cluster-Endpoints: ");
        join_urls(&b, cli, ", ");
        cn_buf_putc(&b, '\n');
        fwrite(b.p, 1, b.len, stderr);
    }
    cn_buf_free(&b);
}

int cn_cli_plain_get(struct cn_cli *cli, const char *url, int64_t timeout_ns,
                     struct cn_cli_resp *resp, struct cn_buf *err)
{
    struct cn_cli_endpoint ep;
    parse_endpoint(url, &ep);
    uint64_t ms = timeout_ns > 0 ? (uint64_t)(timeout_ns / CN_NS_PER_MS) : 0;
    memset(resp, 0, sizeof(*resp));
    int rc = cn_cli_exchange(cli, "GET", url, NULL, NULL, 0, ms, false, resp, NULL);
    if (rc != 0) {
        bool conn;
        cn_buf_appendf(err, "Get \"%s\": ", url);
        if (rc == CN_ERR_TIMEOUT) {
            cn_buf_appendf(err, "dial tcp %s:%d: i/o timeout", ep.host, ep.port);
        } else {
            cn_cli_transport_err(err, rc, ep.host, ep.port, &conn);
        }
    }
    cn_free(ep.url);
    cn_free(ep.base);
    cn_free(ep.path);
    return rc == 0 ? 0 : -1;
}
