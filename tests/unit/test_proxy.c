/* Unit tests for src/proxy: the URL lists, the endpoint list with its quarantine and its fixed
 * order, the peer /members answer, the refresh delay, the method slots and counters, the choice
 * of peer URLs (discovery, cluster file, --initial-cluster), and whole requests forwarded through
 * a started proxy to a stub member served from this test on 127.0.0.1, all in one uv loop. No
 * sleeps: the loop runs until a condition holds, under a deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "config/config.h"
#include "http/http.h"
#include "http/http_client.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#define S(lit)       CN_STR(lit)
#define DEADLINE_MS  5000
#define MAX_RECORDED 8

/* ---- a bare proxy for the pure parts ------------------------------------------------------- */

static uv_loop_t L;

static int bare_setup(void **state)
{
    cn_log_level_max = CN_LOG_ERR; /* quarantine warnings are expected here */
    assert_int_equal(uv_loop_init(&L), 0);
    struct cn_proxy *p = CN_NEW(struct cn_proxy);
    p->loop = &L;
    p->t.failure_wait_ms = 5000;
    *state = p;
    return 0;
}

static int bare_teardown(void **state)
{
    struct cn_proxy *p = *state;
    for (size_t i = 0; i < p->neps; i++)
        cn_free(p->eps[i].url);
    cn_proxy__urls_free(&p->peers);
    cn_buf_free(&p->cluster_json);
    cn_free(p->cluster_path);
    cn_free(p);
    assert_int_equal(uv_loop_close(&L), 0);
    return 0;
}

static void set_eps(struct cn_proxy *p, const char *const *urls, size_t n)
{
    struct proxy_urls u = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cn_proxy__urls_add(&u, urls[i], strlen(urls[i])), 0);
    cn_proxy__set_endpoints(p, &u);
    cn_proxy__urls_free(&u);
}

/* The picked URLs, comma-joined. */
static const char *picked(struct cn_proxy *p, size_t max)
{
    static char out[1024];
    struct cn_buf b = CN_BUF_INIT;
    size_t off[PROXY_MAX_URLS];
    size_t n = cn_proxy__pick(p, &b, off, max);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, i ? "," : "");
        strcat(out, b.p + off[i]);
    }
    cn_buf_free(&b);
    return out;
}

static void url_lists(void **state)
{
    struct proxy_urls u = {0};
    assert_int_equal(cn_proxy__urls_add(&u, "http://a:1/", 11), 0);
    assert_int_equal(cn_proxy__urls_add(&u, "http://a:1", 10), 0); /* same once '/' is dropped */
    assert_int_equal(cn_proxy__urls_add(&u, "http://a:1///", 13), 0);
    assert_int_equal(u.n, 1);
    assert_string_equal(u.v[0], "http://a:1");
    /* len bounds the copy: a prefix of a longer string */
    assert_int_equal(cn_proxy__urls_add(&u, "http://b:2,http://c:3", 10), 0);
    assert_int_equal(u.n, 2);
    assert_string_equal(u.v[1], "http://b:2");
    /* a prefix of a listed URL is another URL */
    assert_int_equal(cn_proxy__urls_add(&u, "http://a:", 9), 0);
    assert_int_equal(u.n, 3);
    cn_proxy__urls_free(&u);
    assert_int_equal(u.n, 0);

    char z[32];
    for (int i = 0; i < PROXY_MAX_URLS; i++) {
        int n = snprintf(z, sizeof(z), "http://h%d:1", i);
        assert_int_equal(cn_proxy__urls_add(&u, z, (size_t)n), 0);
    }
    assert_int_equal(u.n, PROXY_MAX_URLS);
    assert_int_equal(cn_proxy__urls_add(&u, "http://new:1", 12), CN_ERR_TOO_LARGE);
    assert_int_equal(cn_proxy__urls_add(&u, "http://h7:1", 11), 0); /* present: fine when full */
    assert_int_equal(u.n, PROXY_MAX_URLS);
    assert_string_equal(u.v[PROXY_MAX_URLS - 1], "http://h63:1");
    cn_proxy__urls_free(&u);
}

static void endpoints_order_and_quarantine(void **state)
{
    struct cn_proxy *p = *state;
    assert_string_equal(picked(p, PROXY_MAX_URLS), ""); /* none yet */
    static const char *const abc[] = {"http://a:1", "http://b:2", "http://c:3"};
    set_eps(p, abc, 3);
    /* etcd 2.3's director: the same order for every request until the list changes, so a client
     * reads its own writes; a failure moves the request on to the next one */
    assert_string_equal(picked(p, PROXY_MAX_URLS), "http://a:1,http://b:2,http://c:3");
    assert_string_equal(picked(p, PROXY_MAX_URLS), "http://a:1,http://b:2,http://c:3");
    assert_string_equal(picked(p, 2), "http://a:1,http://b:2");
    assert_int_equal(cn_proxy__available(p), 3);

    uv_update_time(&L);
    uint64_t now = uv_now(&L);
    cn_proxy__endpoint_failed(p, "http://a:1", -ECONNREFUSED);
    assert_true(p->eps[0].failed_until_ms == now + 5000);
    assert_string_equal(picked(p, PROXY_MAX_URLS), "http://b:2,http://c:3");
    assert_int_equal(cn_proxy__available(p), 2);
    /* failing again while out does not extend the quarantine; an unknown URL is ignored */
    p->eps[0].failed_until_ms = now + 10;
    cn_proxy__endpoint_failed(p, "http://a:1", CN_ERR_TIMEOUT);
    assert_true(p->eps[0].failed_until_ms == now + 10);
    cn_proxy__endpoint_failed(p, "http://zz:9", CN_ERR_TIMEOUT);
    assert_int_equal(cn_proxy__available(p), 2);
    /* the quarantine ends at failed_until_ms (compared with uv_now, no timer) */
    p->eps[0].failed_until_ms = now;
    assert_string_equal(picked(p, PROXY_MAX_URLS), "http://a:1,http://b:2,http://c:3");

    /* --proxy-failure-wait 0 still skips the endpoint for this millisecond */
    p->t.failure_wait_ms = 0;
    cn_proxy__endpoint_failed(p, "http://c:3", -ECONNRESET);
    assert_true(p->eps[2].failed_until_ms == now + 1);
    assert_string_equal(picked(p, PROXY_MAX_URLS), "http://a:1,http://b:2");

    /* a new list keeps the quarantine of URLs that stay, in the new order */
    static const char *const cbd[] = {"http://c:3", "http://b:2", "http://d:4"};
    set_eps(p, cbd, 3);
    assert_int_equal(p->neps, 3);
    assert_true(p->eps[0].failed_until_ms == now + 1);
    assert_true(p->eps[1].failed_until_ms == 0 && p->eps[2].failed_until_ms == 0);
    assert_string_equal(picked(p, PROXY_MAX_URLS), "http://b:2,http://d:4");
    set_eps(p, NULL, 0);
    assert_int_equal(p->neps, 0);
    assert_int_equal(cn_proxy__available(p), 0);
}

static void members_answer(void **state)
{
    struct proxy_urls c = {0}, pe = {0};
    /* etcd 2.3's peer /members: hex string ids */
    struct cn_str v2 = S("[{\"id\":\"a8266ecf031671f3\",\"name\":\"n1\",\"peerURLs\":[\"http://"
                         "10.0.0.1:2380\"],\"clientURLs\":[\"http://10.0.0.1:2379\",\"http://"
                         "10.0.0.1:4001/\"]},"
                         "{\"id\":\"91bc3c398fb3c146\",\"name\":\"n2\",\"peerURLs\":[\"http://"
                         "10.0.0.2:2380\"],\"clientURLs\":[\"http://10.0.0.2:2379\"]},"
                         "{\"id\":\"fd422379fda50e48\",\"name\":\"\",\"peerURLs\":[\"http://"
                         "10.0.0.3:2380\"],\"clientURLs\":[]}]");
    assert_int_equal(cn_proxy__parse_members(v2, &c, &pe), 3);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.v[0], "http://10.0.0.1:2379");
    assert_string_equal(c.v[1], "http://10.0.0.1:4001");
    assert_string_equal(c.v[2], "http://10.0.0.2:2379");
    assert_int_equal(pe.n, 3);
    assert_string_equal(pe.v[2], "http://10.0.0.3:2380");
    cn_proxy__urls_free(&c);
    cn_proxy__urls_free(&pe);

    /* etcd 3.x: the id is a number beyond int64; unusable URLs are skipped one by one, entries
     * that are not objects do not count, duplicates collapse */
    struct cn_str v3 = S("[{\"id\":10501334649042878790,\"name\":\"x\",\"peerURLs\":[\"https://"
                         "s:2380\",\"http://p:2380\",7,\"http://p:2380/\"],\"clientURLs\":["
                         "\"unix:///sock\",\"http://c:2379\",\"http://nop\",\"http://c:99999\"]},"
                         "42,\"str\",null,{\"clientURLs\":\"http://notalist:1\"}]");
    assert_int_equal(cn_proxy__parse_members(v3, &c, &pe), 2);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.v[0], "http://c:2379");
    assert_int_equal(pe.n, 1);
    assert_string_equal(pe.v[0], "http://p:2380");
    cn_proxy__urls_free(&c);
    cn_proxy__urls_free(&pe);

    assert_int_equal(cn_proxy__parse_members(S("[]"), &c, &pe), 0);
    /* not an array: the client API's {"members":[...]} shape, junk, nothing */
    assert_int_equal(cn_proxy__parse_members(S("{\"members\":[]}"), &c, &pe), -1);
    assert_int_equal(cn_proxy__parse_members(S("<html>"), &c, &pe), -1);
    assert_int_equal(cn_proxy__parse_members(CN_STR_NULL, &c, &pe), -1);
    assert_int_equal(c.n + pe.n, 0);
}

static void refresh_delay(void **state)
{
    assert_int_equal(cn_proxy__refresh_wait_ms(30000, 2), 30000);
    assert_int_equal(cn_proxy__refresh_wait_ms(30000, 0), 1000); /* etcd: 1 s while none up */
    assert_int_equal(cn_proxy__refresh_wait_ms(120000, 0), 1000);
    assert_int_equal(cn_proxy__refresh_wait_ms(29999, 0), 29999);
    assert_int_equal(cn_proxy__refresh_wait_ms(5000, 0), 5000);
    assert_int_equal(cn_proxy__refresh_wait_ms(99, 3), 100); /* floor */
    assert_int_equal(cn_proxy__refresh_wait_ms(0, 0), 100);
}

static void method_slots_and_counters(void **state)
{
    struct cn_proxy *p = *state;
    assert_int_equal(cn_proxy__method_slot(p, S("GET")), 0);
    assert_int_equal(cn_proxy__method_slot(p, S("PUT")), 1);
    assert_int_equal(cn_proxy__method_slot(p, S("GET")), 0);
    assert_string_equal(p->method_names[1], "PUT");
    /* a name too long for a slot goes to the last one, without taking a slot */
    assert_int_equal(cn_proxy__method_slot(p, S("MKCALENDARXY")), PROXY_MAX_METHODS - 1);
    assert_int_equal(p->nmethods, 2);
    char name[8];
    for (int i = 2; i < PROXY_MAX_METHODS; i++) {
        int n = snprintf(name, sizeof(name), "M%d", i);
        assert_int_equal(cn_proxy__method_slot(p, cn_str_make(name, (size_t)n)), i);
    }
    assert_int_equal(cn_proxy__method_slot(p, S("PATCH")), PROXY_MAX_METHODS - 1);
    assert_int_equal(cn_proxy__method_slot(p, S("DELETE")), PROXY_MAX_METHODS - 1);
    assert_int_equal(cn_proxy__method_slot(p, S("M5")), 5);

    cn_proxy__count_handled(p, 0, 200);
    cn_proxy__count_handled(p, 0, 200);
    cn_proxy__count_handled(p, 1, 201);
    cn_proxy__count_handled(p, 0, 404);
    assert_int_equal(p->nhandled, 3);
    assert_true(p->handled[0].method == 0 && p->handled[0].status == 200 && p->handled[0].n == 2);
    assert_true(p->handled[1].method == 1 && p->handled[1].status == 201 && p->handled[1].n == 1);
    /* bounded: pairs beyond the table are not counted, known pairs still are */
    for (int s = 0; p->nhandled < PROXY_MAX_HANDLED; s++)
        cn_proxy__count_handled(p, 2, 300 + s);
    cn_proxy__count_handled(p, 3, 200);
    assert_int_equal(p->nhandled, PROXY_MAX_HANDLED);
    cn_proxy__count_handled(p, 0, 200);
    assert_true(p->handled[0].n == 3);

    cn_proxy__count_dropped(p, 1, DROP_FAILED_SENDING);
    cn_proxy__count_dropped(p, 1, DROP_FAILED_SENDING);
    cn_proxy__count_dropped(p, 1, DROP_ZERO_ENDPOINTS);
    assert_true(p->dropped[1][DROP_FAILED_SENDING] == 2);
    assert_true(p->dropped[1][DROP_ZERO_ENDPOINTS] == 1);
    assert_true(p->dropped[1][DROP_FAILED_RESPONSE] == 0);
}

/* ---- choosing the peer URLs ---------------------------------------------------------------- */

static char tmpdir[64];

static void rm_tree(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/proxy/cluster", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/proxy/cluster.bak", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/proxy", tmpdir);
    rmdir(path);
    rmdir(tmpdir);
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cn_test_proxy.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static const char *read_file(const char *rel)
{
    static char out[4096];
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    ssize_t n = read(fd, out, sizeof(out) - 1);
    close(fd);
    out[n < 0 ? 0 : n] = '\0';
    return out;
}

static void write_file(const char *rel, const char *z)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, z, strlen(z)), (ssize_t)strlen(z));
    close(fd);
}

/* A config with one --initial-cluster member holding the given peer URLs (borrowed strings). */
static void cfg_init(struct cn_config *cfg, const char *const *urls, size_t n)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = tmpdir;
    cfg->ninitial = 1;
    cfg->initial[0].name = "infra0";
    cfg->initial[0].peer_urls.n = n;
    for (size_t i = 0; i < n; i++)
        cfg->initial[0].peer_urls.raw[i] = (char *)urls[i];
}

static void fresh(struct cn_proxy *p)
{
    cn_proxy__urls_free(&p->peers);
    cn_buf_free(&p->cluster_json);
    cn_free(p->cluster_path);
    p->cluster_path = NULL;
}

static void peer_url_sources(void **state)
{
    struct cn_proxy *p = *state;
    make_tmpdir();
    static const char *const init[] = {"http://10.0.0.9:2380", "http://10.0.0.8:2380/"};
    struct cn_config cfg;
    cfg_init(&cfg, init, 2);
    char err[256] = "";

    /* discovery's URLs come first; the cluster file records them as etcd writes it */
    const char *disc[] = {"http://10.0.0.1:2380", "http://10.0.0.2:2380/", "http://10.0.0.1:2380"};
    assert_int_equal(cn_proxy__init_peers(p, &cfg, disc, 3, err, sizeof(err)), 0);
    assert_int_equal(p->peers.n, 2);
    assert_string_equal(p->peers.v[1], "http://10.0.0.2:2380");
    assert_string_equal(read_file("proxy/cluster"),
                        "{\"PeerURLs\":[\"http://10.0.0.1:2380\",\"http://10.0.0.2:2380\"]}");
    fresh(p);

    /* without discovery, the cluster file wins over --initial-cluster */
    assert_int_equal(cn_proxy__init_peers(p, &cfg, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(p->peers.n, 2);
    assert_string_equal(p->peers.v[0], "http://10.0.0.1:2380");
    fresh(p);

    /* a broken cluster file is an error, not a silent fallback */
    write_file("proxy/cluster", "{\"PeerURLs\":\"http://10.0.0.1:2380\"}");
    assert_int_equal(cn_proxy__init_peers(p, &cfg, NULL, 0, err, sizeof(err)), CN_ERR_PARSE);
    assert_non_null(strstr(err, "/proxy/cluster: not a {\"PeerURLs\":[...]} document"));
    fresh(p);
    write_file("proxy/cluster", "{\"PeerURLs\":[\"https://10.0.0.1:2380\"]}");
    assert_int_equal(cn_proxy__init_peers(p, &cfg, NULL, 0, err, sizeof(err)), CN_ERR_PARSE);
    assert_non_null(strstr(err, "bad peer URL: https:// is not supported yet"));
    fresh(p);

    /* no file: --initial-cluster, and the file is written from it */
    char path[128];
    snprintf(path, sizeof(path), "%s/proxy/cluster", tmpdir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(cn_proxy__init_peers(p, &cfg, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(p->peers.n, 2);
    assert_string_equal(p->peers.v[0], "http://10.0.0.9:2380");
    assert_string_equal(p->peers.v[1], "http://10.0.0.8:2380");
    assert_string_equal(read_file("proxy/cluster"),
                        "{\"PeerURLs\":[\"http://10.0.0.9:2380\",\"http://10.0.0.8:2380\"]}");
    fresh(p);

    /* refusals name the URL */
    assert_int_equal(unlink(path), 0);
    static const char *const tls[] = {"https://10.0.0.9:2380"};
    cfg_init(&cfg, tls, 1);
    assert_int_equal(cn_proxy__init_peers(p, &cfg, NULL, 0, err, sizeof(err)), CN_ERR_INVAL);
    assert_string_equal(err, "bad peer URL https://10.0.0.9:2380 in --initial-cluster: https:// "
                             "is not supported yet");
    fresh(p);
    const char *bad[] = {"10.0.0.1:2380"};
    assert_int_equal(cn_proxy__init_peers(p, &cfg, bad, 1, err, sizeof(err)), CN_ERR_INVAL);
    assert_string_equal(err, "bad peer URL 10.0.0.1:2380: URL scheme must be http or https: "
                             "10.0.0.1:2380");
    fresh(p);
    cfg_init(&cfg, NULL, 0);
    assert_int_equal(cn_proxy__init_peers(p, &cfg, NULL, 0, err, sizeof(err)), CN_ERR_INVAL);
    assert_string_equal(err, "no peer URLs to find the cluster members with (initial cluster is "
                             "empty)");
    fresh(p);
    rm_tree();
}

/* ---- a started proxy in front of a stub member --------------------------------------------- */

struct recorded {
    char line[128];  /* "GET /v2/keys/a?x=1" */
    char extra[128]; /* the X-Trace, Te and Keep-Alive headers the member saw */
    char body[64];
};

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    struct cn_http_server *member;
    uint16_t member_port, dead_port;
    struct cn_http_client *cl;
    struct cn_proxy *proxy;
    uint16_t proxy_port;
    int nmembers_get;
    struct recorded rec[MAX_RECORDED];
    size_t nrec;
    int closed;
    /* the last client answer */
    int done, rc, status;
    char body[1024];
    char index_hdr[32];
    char conn_hdr[32];
};

static struct fx F;

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_update_time(&F.loop);                                                                   \
        uint64_t dl_ = uv_now(&F.loop) + DEADLINE_MS;                                              \
        while (!(cond)) {                                                                          \
            if (uv_now(&F.loop) > dl_) fail_msg("timed out waiting for: %s", #cond);               \
            uv_run(&F.loop, UV_RUN_ONCE);                                                          \
        }                                                                                          \
    } while (0)

static void hdr_copy(char *out, size_t len, const struct cn_http_req *req, const char *name)
{
    struct cn_str v = cn_http_req_header(req, name);
    snprintf(out, len, "%.*s", v.p ? (int)v.len : 1, v.p ? v.p : "-");
}

static void member(struct cn_http_req *req, void *ctx)
{
    struct fx *f = ctx;
    if (cn_str_eqz(req->path, "/members")) {
        f->nmembers_get++;
        char body[512];
        int n =
            snprintf(body, sizeof(body),
                     "[{\"id\":\"8e9e05c52164694d\",\"name\":\"m1\",\"peerURLs\":[\"http://"
                     "127.0.0.1:%u\"],\"clientURLs\":[\"http://127.0.0.1:%u\",\"http://"
                     "127.0.0.1:%u\"]}]",
                     (unsigned)f->member_port, (unsigned)f->dead_port, (unsigned)f->member_port);
        cn_http_respond(req, 200, "application/json", NULL, 0, body, (size_t)n, false);
        return;
    }
    assert_true(f->nrec < MAX_RECORDED);
    struct recorded *r = &f->rec[f->nrec++];
    snprintf(r->line, sizeof(r->line), "%.*s %.*s", (int)req->method_name.len, req->method_name.p,
             (int)req->url.len, req->url.p);
    char a[32], b[32], c[32];
    hdr_copy(a, sizeof(a), req, "X-Trace");
    hdr_copy(b, sizeof(b), req, "Te");
    hdr_copy(c, sizeof(c), req, "Keep-Alive");
    snprintf(r->extra, sizeof(r->extra), "%s|%s|%s", a, b, c);
    snprintf(r->body, sizeof(r->body), "%.*s", (int)req->body.len, req->body.p ? req->body.p : "");
    struct cn_http_hdr h[] = {{"X-Etcd-Index", "42"}, {"Keep-Alive", "timeout=5"}};
    char out[256];
    int n = snprintf(out, sizeof(out), "{\"seen\":\"%s\",\"body\":\"%s\"}\n", r->line, r->body);
    int status = req->method == CN_HTTP_PUT ? 201 : 200;
    cn_http_respond(req, status, "application/json", h, 2, out, (size_t)n, false);
}

static void on_tick(uv_timer_t *t)
{
}

static void count_closed(void *ctx)
{
    F.closed++;
}

static void dead_closed(uv_handle_t *h)
{
    F.closed++;
}

/* A port nothing listens on: bound once, then closed. */
static uint16_t dead_port(void)
{
    static uv_tcp_t t;
    uv_tcp_init(&F.loop, &t);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
    struct sockaddr_storage got;
    int len = sizeof(got);
    assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len), 0);
    uint16_t port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    F.closed = 0;
    uv_close((uv_handle_t *)&t, dead_closed);
    RUN_UNTIL(F.closed == 1);
    F.closed = 0;
    return port;
}

static int fx_setup(void **state)
{
    memset(&F, 0, sizeof(F));
    cn_log_level_max = CN_LOG_ERR; /* the dead endpoint's warnings are expected */
    assert_int_equal(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.tick);
    uv_timer_start(&F.tick, on_tick, 5, 5); /* bounds each UV_RUN_ONCE */
    F.member = cn_http_server_new(&F.loop, NULL, member, NULL, &F);
    char err[256];
    assert_int_equal(cn_http_server_listen(F.member, "127.0.0.1", 0, err, sizeof(err)), 0);
    F.member_port = cn_http_server_port(F.member);
    F.dead_port = dead_port();
    F.cl = cn_http_client_new(&F.loop);
    make_tmpdir();
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int fx_teardown(void **state)
{
    F.closed = 0;
    cn_http_client_close(F.cl, count_closed, NULL);
    cn_http_server_close(F.member, count_closed, NULL);
    RUN_UNTIL(F.closed == 2);
    uv_walk(&F.loop, close_walk, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    rm_tree();
    return 0;
}

static void on_answer(struct cn_http_client_req *req, int rc,
                      const struct cn_http_client_resp *resp, void *ctx)
{
    F.done++;
    F.rc = rc;
    F.status = rc == 0 ? resp->status : 0;
    F.body[0] = F.index_hdr[0] = F.conn_hdr[0] = '\0';
    if (rc != 0) return;
    snprintf(F.body, sizeof(F.body), "%.*s", (int)resp->body.len, resp->body.p ? resp->body.p : "");
    struct cn_str v = cn_http_client_resp_header(resp, "X-Etcd-Index");
    snprintf(F.index_hdr, sizeof(F.index_hdr), "%.*s", (int)v.len, v.p ? v.p : "");
    v = cn_http_client_resp_header(resp, "Keep-Alive");
    snprintf(F.conn_hdr, sizeof(F.conn_hdr), "%.*s", v.p ? (int)v.len : 1, v.p ? v.p : "-");
}

/* One request to the proxy; waits for its answer. */
static void ask(const char *method, const char *target, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)F.proxy_port, target);
    struct cn_http_hdr h[] = {{"X-Trace", "t-1"}, {"Te", "trailers"}, {"Keep-Alive", "300"}};
    struct cn_http_client_opts o = {
        .method = method,
        .url = url,
        .headers = h,
        .nheaders = 3,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = DEADLINE_MS,
        .on_done = on_answer,
    };
    int before = F.done;
    assert_int_equal(cn_http_client_request(F.cl, &o, NULL), 0);
    RUN_UNTIL(F.done == before + 1);
}

static void start_proxy(const char *mode)
{
    struct cn_config cfg;
    cfg_init(&cfg, NULL, 0);
    cfg.proxy = (char *)mode;
    cfg.max_request_bytes = 1 << 20;
    cfg.proxy_failure_wait_ms = 5000;
    cfg.proxy_refresh_interval_ms = 30000;
    cfg.proxy_dial_timeout_ms = 1000;
    cfg.proxy_write_timeout_ms = 4000;
    cfg.proxy_read_timeout_ms = 0;
    cfg.listen_client.n = 1;
    snprintf(cfg.listen_client.u[0].scheme, sizeof(cfg.listen_client.u[0].scheme), "http");
    snprintf(cfg.listen_client.u[0].host, sizeof(cfg.listen_client.u[0].host), "127.0.0.1");
    cfg.listen_client.raw[0] = "http://127.0.0.1:0";
    char peer[64];
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", (unsigned)F.member_port);
    const char *peers[] = {peer};
    char err[256] = "";
    assert_int_equal(cn_proxy_start(&F.loop, &cfg, peers, 1, &F.proxy, err, sizeof(err)), 0);
    /* the --proxy-* timings are the config's */
    assert_true(F.proxy->t.failure_wait_ms == 5000 && F.proxy->t.refresh_interval_ms == 30000);
    assert_true(F.proxy->t.dial_timeout_ms == 1000 && F.proxy->t.write_timeout_ms == 4000);
    assert_true(F.proxy->t.read_timeout_ms == 0);
    assert_int_equal(F.proxy->readonly, strcmp(mode, "readonly") == 0);
    F.proxy_port = cn_http_server_port(F.proxy->http);
    assert_true(F.proxy_port != 0);
}

static void stop_proxy(void)
{
    F.closed = 0;
    cn_proxy_stop(F.proxy, count_closed, NULL);
    RUN_UNTIL(F.closed == 1);
    F.closed = 0;
    F.proxy = NULL;
}

static void forward_through_stub_member(void **state)
{
    start_proxy("on");
    /* requests wait for the first membership fetch; this one is queued until then */
    ask("GET", "/v2/keys/a?recursive=true", NULL);
    assert_int_equal(F.nmembers_get, 1);
    assert_true(F.proxy->refreshed);
    assert_int_equal(F.proxy->neps, 2);
    /* the dead endpoint came first: refused, quarantined, and the member answered */
    assert_int_equal(F.rc, 0);
    assert_int_equal(F.status, 200);
    assert_string_equal(F.body, "{\"seen\":\"GET /v2/keys/a?recursive=true\",\"body\":\"\"}\n");
    assert_string_equal(F.index_hdr, "42");
    assert_string_equal(F.conn_hdr, "-"); /* hop-by-hop: dropped on the way back too */
    assert_int_equal(F.nrec, 1);
    assert_string_equal(F.rec[0].extra, "t-1|-|-"); /* Te and Keep-Alive are hop-by-hop */
    assert_int_equal(cn_proxy__available(F.proxy), 1);
    int get = cn_proxy__method_slot(F.proxy, S("GET"));
    assert_true(F.proxy->requests[get] == 1);
    assert_true(F.proxy->dropped[get][DROP_FAILED_SENDING] == 1);
    /* the cluster file holds the member's peer URLs */
    char want[128];
    snprintf(want, sizeof(want), "{\"PeerURLs\":[\"http://127.0.0.1:%u\"]}",
             (unsigned)F.member_port);
    assert_string_equal(read_file("proxy/cluster"), want);

    /* a body goes through with the member's status */
    ask("PUT", "/v2/keys/b", "value=hello");
    assert_int_equal(F.status, 201);
    assert_string_equal(F.body, "{\"seen\":\"PUT /v2/keys/b\",\"body\":\"value=hello\"}\n");
    assert_int_equal(F.nrec, 2);

    /* the proxy's own answers: the endpoints up now, and its counters */
    ask("GET", "/v2/config/local/proxy", NULL);
    assert_int_equal(F.status, 200);
    char eps[128];
    snprintf(eps, sizeof(eps), "{\"endpoints\":[\"http://127.0.0.1:%u\"]}\n",
             (unsigned)F.member_port);
    assert_string_equal(F.body, eps);
    ask("GET", "/metrics", NULL);
    assert_int_equal(F.status, 200);
    assert_non_null(strstr(F.body, "etcd_proxy_dropped_total{method=\"GET\",proxying_error="
                                   "\"failed_sending_request\"} 1\n"));
    assert_non_null(strstr(F.body, "etcd_proxy_handled_total{code=\"200\",method=\"GET\"} 1\n"));
    assert_non_null(strstr(F.body, "etcd_proxy_handled_total{code=\"201\",method=\"PUT\"} 1\n"));
    assert_non_null(strstr(F.body, "etcd_proxy_requests_total{method=\"GET\"} 1\n"));
    assert_non_null(strstr(F.body, "etcd_proxy_requests_total{method=\"PUT\"} 1\n"));
    assert_int_equal(F.nrec, 2); /* neither reached the member */
    assert_int_equal(cn_proxy_inflight(F.proxy), 0);
    stop_proxy();
}

static void forward_all_endpoints_down(void **state)
{
    start_proxy("on");
    ask("GET", "/v2/keys/a", NULL); /* first fetch, and the dead endpoint quarantined */
    assert_int_equal(F.status, 200);
    /* the member goes quiet too: quarantine it by hand, as a failed request would */
    char live[64];
    snprintf(live, sizeof(live), "http://127.0.0.1:%u", (unsigned)F.member_port);
    cn_proxy__endpoint_failed(F.proxy, live, -ECONNREFUSED);
    ask("GET", "/v2/keys/a", NULL);
    assert_int_equal(F.status, 503);
    assert_string_equal(F.body, "{\"message\":\"proxy: zero endpoints currently available\"}");
    assert_int_equal(F.nrec, 1);
    int get = cn_proxy__method_slot(F.proxy, S("GET"));
    assert_true(F.proxy->dropped[get][DROP_ZERO_ENDPOINTS] == 1);
    stop_proxy();
}

static void readonly_refuses_writes(void **state)
{
    start_proxy("readonly");
    ask("PUT", "/v2/keys/a", "value=1");
    assert_int_equal(F.status, 501); /* etcd: WriteHeader(501), no body */
    assert_string_equal(F.body, "");
    ask("GET", "/v2/keys/a", NULL);
    assert_int_equal(F.status, 200);
    assert_int_equal(F.nrec, 1);
    assert_string_equal(F.rec[0].line, "GET /v2/keys/a");
    stop_proxy();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_lists),
        cmocka_unit_test_setup_teardown(endpoints_order_and_quarantine, bare_setup, bare_teardown),
        cmocka_unit_test(members_answer),
        cmocka_unit_test(refresh_delay),
        cmocka_unit_test_setup_teardown(method_slots_and_counters, bare_setup, bare_teardown),
        cmocka_unit_test_setup_teardown(peer_url_sources, bare_setup, bare_teardown),
        cmocka_unit_test_setup_teardown(forward_through_stub_member, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(forward_all_endpoints_down, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(readonly_refuses_writes, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
