/* Unit tests for src/http: a real server on 127.0.0.1 (ephemeral port) in a uv loop, driven by raw
 * client sockets on the same loop, and the HTTP client against it. No sleeps: the loop runs until
 * a condition holds, under a deadline. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "http/http.h"
#include "http/http_client.h"
#include "stream/stream.h"

/* ---- fixture ----------------------------------------------------------------------------- */

#define MAX_HELD 16

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    struct cn_http_server *srv;
    uint16_t port;
    struct cn_http_req *held[MAX_HELD];
    size_t nheld;
    int handled;
    int aborts;
    int too_large;
    int server_closed;
    struct cn_buf last_body; /* body of the last /echo request */
};

static struct fx F;

static void hold(struct cn_http_req *req);

static void on_abort(struct cn_http_req *req, void *ctx)
{
    struct fx *f = ctx;
    f->aborts++;
    for (size_t i = 0; i < f->nheld; i++) {
        if (f->held[i] == req) f->held[i] = NULL;
    }
}

static void hold(struct cn_http_req *req)
{
    assert_true(F.nheld < MAX_HELD);
    req->on_abort = on_abort;
    F.held[F.nheld++] = req;
}

static void handler(struct cn_http_req *req, void *ctx)
{
    struct fx *f = ctx;
    f->handled++;
    if (cn_str_eqz(req->path, "/hello")) {
        struct cn_http_hdr h[] = {{"X-Test", "1"}};
        cn_http_respond(req, 200, "text/plain", h, 1, "hello\n", 6, false);
    } else if (cn_str_eqz(req->path, "/hold")) {
        hold(req);
    } else if (cn_str_eqz(req->path, "/stream")) {
        struct cn_http_hdr h[] = {{"X-Etcd-Index", "7"}};
        cn_http_stream_start(req, 200, "application/json", h, 1);
        hold(req);
    } else if (cn_str_eqz(req->path, "/echo")) {
        cn_buf_reset(&f->last_body);
        cn_buf_append(&f->last_body, req->body.p, req->body.len);
        struct cn_buf q = CN_BUF_INIT;
        cn_buf_append(&q, req->query.p, req->query.len);
        struct cn_buf m = CN_BUF_INIT;
        cn_buf_append(&m, req->method_name.p, req->method_name.len);
        struct cn_str ua = cn_http_req_header(req, "x-ua");
        struct cn_buf u = CN_BUF_INIT;
        cn_buf_append(&u, ua.p ? ua.p : "-", ua.p ? ua.len : 1);
        struct cn_http_hdr h[] = {{"X-Method", m.p}, {"X-Query", q.p ? q.p : ""}, {"X-UA", u.p}};
        cn_http_respond(req, 200, NULL, h, 3, req->body.p, req->body.len, false);
        cn_buf_free(&q);
        cn_buf_free(&m);
        cn_buf_free(&u);
    } else if (cn_str_eqz(req->path, "/close")) {
        cn_http_respond(req, 200, "text/plain", NULL, 0, "bye\n", 4, true);
    } else if (cn_str_eqz(req->path, "/nocontent")) {
        cn_http_respond(req, 204, NULL, NULL, 0, NULL, 0, false);
    } else {
        cn_http_respond(req, 404, "text/plain; charset=utf-8", NULL, 0, "404 page not found\n", 19,
                        false);
    }
}

static void too_large(struct cn_http_req *req, void *ctx)
{
    struct fx *f = ctx;
    f->too_large++;
    assert_int_equal(req->body.len, 0);
    cn_http_respond(req, 413, "application/json", NULL, 0, "{}\n", 3, false);
}

static void on_tick(uv_timer_t *t)
{
}

static void server_closed(void *ctx)
{
    struct fx *f = ctx;
    f->server_closed++;
}

#define DEADLINE_MS 5000

/* Runs the loop until cond holds; fails the test at the deadline. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_update_time(&F.loop);                                                                   \
        uint64_t dl_ = uv_now(&F.loop) + DEADLINE_MS;                                              \
        while (!(cond)) {                                                                          \
            if (uv_now(&F.loop) > dl_) fail_msg("timed out waiting for: %s", #cond);               \
            uv_run(&F.loop, UV_RUN_ONCE);                                                          \
        }                                                                                          \
    } while (0)

/* Gives the loop a few turns (for "nothing happens" checks after an event was processed). */
static void spin(int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&F.loop, UV_RUN_NOWAIT);
}

static int setup_with(bool send_date)
{
    memset(&F, 0, sizeof(F));
    assert_int_equal(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.tick);
    uv_timer_start(&F.tick, on_tick, 5, 5); /* bounds each UV_RUN_ONCE */
    struct cn_http_limits lim = {.max_header_bytes = 1024,
                                 .max_headers = 10,
                                 .max_body_bytes = 1000,
                                 .max_pipeline = 4,
                                 .send_date = send_date};
    F.srv = cn_http_server_new(&F.loop, &lim, handler, too_large, &F);
    char err[256];
    assert_int_equal(cn_http_server_listen(F.srv, "127.0.0.1", 0, err, sizeof(err)), 0);
    F.port = cn_http_server_port(F.srv);
    assert_true(F.port != 0);
    return 0;
}

static int setup(void **state)
{
    return setup_with(false);
}

static int setup_date(void **state)
{
    return setup_with(true);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int teardown(void **state)
{
    if (F.srv && !F.server_closed) {
        cn_http_server_close(F.srv, server_closed, &F);
        RUN_UNTIL(F.server_closed == 1);
    }
    uv_walk(&F.loop, close_walk, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    cn_buf_free(&F.last_body);
    return 0;
}

/* ---- raw client -------------------------------------------------------------------------- */

struct rawc {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct cn_buf in;
    bool connected, eof, closed;
    int err;
};

struct wreq {
    uv_write_t w;
    char data[];
};

static void raw_on_connect(uv_connect_t *cr, int status)
{
    struct rawc *c = cr->data;
    assert_int_equal(status, 0);
    c->connected = true;
}

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[65536];
    buf->base = b;
    buf->len = sizeof(b);
}

static void raw_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct rawc *c = s->data;
    if (n > 0) cn_buf_append(&c->in, buf->base, (size_t)n);
    if (n == UV_EOF)
        c->eof = true;
    else if (n < 0)
        c->err = (int)n, c->eof = true;
}

static void raw_open_port(struct rawc *c, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    uv_tcp_init(&F.loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, raw_on_connect), 0);
    RUN_UNTIL(c->connected);
    uv_read_start((uv_stream_t *)&c->tcp, raw_alloc, raw_on_read);
}

static void raw_open(struct rawc *c)
{
    raw_open_port(c, F.port);
}

static void raw_on_write(uv_write_t *w, int status)
{
    cn_free(w);
}

static void raw_sendn(struct rawc *c, const char *p, size_t n)
{
    struct wreq *w = cn_xmalloc(sizeof(*w) + n);
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)n);
    assert_int_equal(uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, raw_on_write), 0);
}

static void raw_send(struct rawc *c, const char *z)
{
    raw_sendn(c, z, strlen(z));
}

static void raw_closed(uv_handle_t *h)
{
    struct rawc *c = h->data;
    c->closed = true;
}

static void raw_close(struct rawc *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, raw_closed);
}

/* Closes and waits: the handle lives on the test's stack. */
static void raw_free(struct rawc *c)
{
    raw_close(c);
    RUN_UNTIL(c->closed);
    cn_buf_free(&c->in);
}

static bool has(const struct rawc *c, const char *z)
{
    return c->in.p && strstr(c->in.p, z) != NULL;
}

static int count(const struct rawc *c, const char *z)
{
    int n = 0;
    for (const char *p = c->in.p; p && (p = strstr(p, z)) != NULL; p++)
        n++;
    return n;
}

#define HELLO_RESP                                                                                 \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Test: 1\r\nContent-Length: 6\r\n\r\nhello\n"

/* ---- tests ------------------------------------------------------------------------------- */

static void simple_get_exact_bytes(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    RUN_UNTIL(c.in.len >= strlen(HELLO_RESP));
    assert_string_equal(c.in.p, HELLO_RESP);
    assert_int_equal(F.handled, 1);
    assert_int_equal(cn_http_server_conn_count(F.srv), 1);
    raw_free(&c);
}

/* With send_date, every response carries Go's Date line, after the handler's headers. */
static void date_header_when_enabled(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    RUN_UNTIL(has(&c, "hello\n"));
    const char *d = strstr(c.in.p, "\r\nDate: ");
    assert_non_null(d);
    /* "Date: Sun, 22 Nov 2026 02:59:25 GMT" */
    const char *gmt = strstr(d, " GMT\r\n");
    assert_non_null(gmt);
    assert_int_equal(gmt - (d + 2), 35 - 4);
    assert_non_null(strstr(c.in.p, "GMT\r\nContent-Length: "));
    raw_free(&c);
}

static void keep_alive_and_close(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "GET /hello HTTP/1.1\r\n\r\n");
    RUN_UNTIL(c.in.len >= strlen(HELLO_RESP));
    raw_send(&c, "GET /hello HTTP/1.1\r\n\r\n");
    RUN_UNTIL(c.in.len >= 2 * strlen(HELLO_RESP));
    assert_int_equal(count(&c, "HTTP/1.1 200 OK"), 2);
    assert_false(c.eof);
    /* Connection: close is honoured */
    raw_send(&c, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    RUN_UNTIL(c.eof);
    assert_int_equal(count(&c, "HTTP/1.1 200 OK"), 3);
    assert_true(has(&c, "Connection: close\r\nContent-Length: 6\r\n\r\nhello\n"));
    assert_int_equal(c.err, 0);
    raw_free(&c); /* the server waits for our EOF after its FIN */
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);

    /* HTTP/1.0 without keep-alive closes; with keep-alive it stays */
    struct rawc d;
    raw_open(&d);
    raw_send(&d, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    RUN_UNTIL(has(&d, "hello\n"));
    assert_true(has(&d, "Connection: keep-alive\r\n"));
    raw_send(&d, "GET /hello HTTP/1.0\r\n\r\n");
    RUN_UNTIL(d.eof);
    assert_int_equal(count(&d, "hello\n"), 2);
    assert_true(has(&d, "Connection: close\r\n"));
    raw_free(&d);

    /* handler's close_after */
    struct rawc e;
    raw_open(&e);
    raw_send(&e, "GET /close HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    RUN_UNTIL(e.eof);
    assert_true(has(&e, "Connection: close\r\nContent-Length: 4\r\n\r\nbye\n"));
    assert_false(has(&e, "hello"));
    raw_free(&e);
}

static void pipelined_out_of_order(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "GET /hold?a HTTP/1.1\r\n\r\nGET /hold?b HTTP/1.1\r\n\r\n"
                 "GET /hello HTTP/1.1\r\n\r\n");
    RUN_UNTIL(F.handled == 3);
    assert_int_equal(F.nheld, 2);
    assert_true(cn_str_eqz(F.held[0]->query, "a"));
    assert_true(cn_str_eqz(F.held[1]->query, "b"));
    assert_true(cn_str_eqz(F.held[1]->url, "/hold?b"));
    assert_true(F.held[0]->id < F.held[1]->id);
    /* answer the second first: it must wait for the first */
    cn_http_respond(F.held[1], 200, NULL, NULL, 0, "two", 3, false);
    spin(10);
    assert_int_equal(c.in.len, 0);
    cn_http_respond(F.held[0], 201, NULL, NULL, 0, "one", 3, false);
    RUN_UNTIL(has(&c, "hello\n"));
    assert_string_equal(c.in.p, "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\none"
                                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo" HELLO_RESP);
    assert_int_equal(F.aborts, 0);
    raw_free(&c);
}

static void pipeline_limit_pauses_reading(void **state)
{
    struct rawc c;
    raw_open(&c);
    /* max_pipeline is 4: the fifth request waits until one is answered */
    for (int i = 0; i < 5; i++)
        raw_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    RUN_UNTIL(F.handled == 4);
    spin(10);
    assert_int_equal(F.handled, 4);
    cn_http_respond(F.held[0], 200, NULL, NULL, 0, "0", 1, false);
    RUN_UNTIL(F.handled == 5);
    for (size_t i = 1; i < 5; i++)
        cn_http_respond(F.held[i], 200, NULL, NULL, 0, "x", 1, false);
    RUN_UNTIL(count(&c, "HTTP/1.1 200 OK") == 5);
    raw_free(&c);
}

static void head_has_length_no_body(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    const char *head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Test: 1\r\nContent-Length: 6\r\n\r\n";
    RUN_UNTIL(c.in.len >= strlen(head) + strlen(HELLO_RESP));
    assert_int_equal(c.in.len, strlen(head) + strlen(HELLO_RESP));
    assert_memory_equal(c.in.p, head, strlen(head));
    assert_string_equal(c.in.p + strlen(head), HELLO_RESP);
    /* 204 carries no Content-Length */
    cn_buf_reset(&c.in);
    raw_send(&c, "GET /nocontent HTTP/1.1\r\n\r\n");
    RUN_UNTIL(has(&c, "\r\n\r\n"));
    assert_string_equal(c.in.p, "HTTP/1.1 204 No Content\r\n\r\n");
    raw_free(&c);
}

static void request_fields_and_body(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "PUT /echo?value=1&x=%20 HTTP/1.1\r\nX-UA: t1\r\nContent-Length: 5\r\n\r\nhel");
    spin(5);
    raw_send(&c, "lo");
    RUN_UNTIL(has(&c, "\r\n\r\nhello"));
    assert_string_equal(c.in.p, "HTTP/1.1 200 OK\r\nX-Method: PUT\r\nX-Query: value=1&x=%20\r\n"
                                "X-UA: t1\r\nContent-Length: 5\r\n\r\nhello");
    /* chunked request body, header name split over two reads, empty header value */
    cn_buf_reset(&c.in);
    raw_send(&c, "POST /echo HTTP/1.1\r\nX-Empty:\r\nX-");
    spin(5);
    raw_send(&c,
             "Ua: t2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    RUN_UNTIL(has(&c, "hello world"));
    assert_true(has(&c, "X-Method: POST\r\n"));
    assert_true(has(&c, "X-UA: t2\r\n"));
    assert_true(has(&c, "Content-Length: 11\r\n"));
    assert_string_equal(F.last_body.p, "hello world");
    raw_free(&c);
}

static void header_limits_431(void **state)
{
    struct rawc c;
    raw_open(&c);
    char big[2048];
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    raw_send(&c, "GET /hello HTTP/1.1\r\nX-Big: ");
    raw_send(&c, big);
    raw_send(&c, "\r\n\r\n");
    RUN_UNTIL(c.eof);
    assert_string_equal(c.in.p, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
                                "Content-Length: 35\r\n\r\n431 Request Header Fields Too Large");
    assert_int_equal(F.handled, 0);
    raw_free(&c);

    struct rawc d;
    raw_open(&d);
    raw_send(&d, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 11; i++)
        raw_send(&d, "X-A: b\r\n");
    raw_send(&d, "\r\n");
    RUN_UNTIL(d.eof);
    assert_true(has(&d, "HTTP/1.1 431 "));
    assert_int_equal(F.handled, 0);
    raw_free(&d);
}

static void garbage_400_and_close(void **state)
{
    struct rawc c;
    raw_open(&c);
    /* a good request first: its answer comes before the 400 */
    raw_send(&c, "GET /hold HTTP/1.1\r\n\r\nGARBAGE\x01 / HTTP/1.1\r\n\r\n");
    RUN_UNTIL(F.nheld == 1);
    spin(5);
    assert_int_equal(c.in.len, 0);
    cn_http_respond(F.held[0], 200, NULL, NULL, 0, "ok", 2, false);
    RUN_UNTIL(c.eof);
    assert_string_equal(c.in.p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                "HTTP/1.1 400 Bad Request\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
                                "Content-Length: 15\r\n\r\n400 Bad Request");
    raw_free(&c);
}

static void body_too_large(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "PUT /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\nabc");
    RUN_UNTIL(c.eof);
    assert_int_equal(F.too_large, 1);
    assert_int_equal(F.handled, 0);
    assert_string_equal(c.in.p, "HTTP/1.1 413 Request Entity Too Large\r\n"
                                "Content-Type: application/json\r\nConnection: close\r\n"
                                "Content-Length: 3\r\n\r\n{}\n");
    raw_free(&c);

    /* chunked body over the cap */
    struct rawc d;
    raw_open(&d);
    raw_send(&d, "PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 2; i++) {
        raw_send(&d, "2bc\r\n");
        raw_sendn(&d, chunk, sizeof(chunk));
        raw_send(&d, "\r\n");
    }
    RUN_UNTIL(d.eof);
    assert_int_equal(F.too_large, 2);
    assert_true(has(&d, "HTTP/1.1 413 "));
    raw_free(&d);
}

static void stream_chunks_and_abort(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "GET /stream HTTP/1.1\r\n\r\n");
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 7\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    RUN_UNTIL(c.in.len >= strlen(head));
    assert_string_equal(c.in.p, head);
    cn_http_stream_write(F.held[0], "{\"a\":1}\n", 8);
    RUN_UNTIL(has(&c, "8\r\n{\"a\":1}\n\r\n"));
    assert_int_equal(cn_http_stream_backlog(F.held[0]), 0);
    cn_http_stream_write(F.held[0], "0123456789abcdefg", 17);
    RUN_UNTIL(has(&c, "11\r\n0123456789abcdefg\r\n"));
    raw_close(&c);
    RUN_UNTIL(F.aborts == 1);
    assert_null(F.held[0]);
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);
    raw_free(&c);

    /* a stream that ends, then the connection is reused */
    struct rawc d;
    raw_open(&d);
    raw_send(&d, "GET /stream HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    RUN_UNTIL(F.nheld == 2 && F.handled == 3);
    cn_http_stream_write(F.held[1], "x", 1);
    cn_http_stream_end(F.held[1]);
    RUN_UNTIL(has(&d, "hello\n"));
    assert_true(has(&d, "chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nHTTP/1.1 200 OK"));
    assert_int_equal(F.aborts, 1);
    raw_free(&d);
}

/* As from Go's server (and so etcd's): a request still pending when the client's EOF arrives is
 * still answered (a write is committed anyway); only streams are aborted. */
static void unanswered_answered_after_peer_eof(void **state)
{
    struct rawc c;
    raw_open(&c);
    raw_send(&c, "GET /hold HTTP/1.1\r\n\r\nGET /hold HTTP/1.1\r\n\r\n");
    RUN_UNTIL(F.nheld == 2);
    cn_http_respond(F.held[1], 200, NULL, NULL, 0, "b", 1, false); /* answered, not written */
    raw_close(&c);
    cn_http_respond(F.held[0], 200, NULL, NULL, 0, "a", 1, false);
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);
    assert_int_equal(F.aborts, 0);
    raw_free(&c);
}

static void server_close_graceful(void **state)
{
    struct rawc a, b, idle;
    raw_open(&a);
    raw_open(&b);
    raw_open(&idle);
    raw_send(&a, "GET /hold HTTP/1.1\r\n\r\n");
    raw_send(&b, "GET /stream HTTP/1.1\r\n\r\n");
    RUN_UNTIL(F.nheld == 2 && has(&b, "chunked\r\n\r\n"));
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 3);
    struct cn_http_req *inflight = F.held[0]->path.len == 5 ? F.held[0] : F.held[1];
    cn_http_server_close(F.srv, server_closed, &F);
    assert_int_equal(F.aborts, 1); /* the stream, at once */
    RUN_UNTIL(b.eof && idle.eof);
    assert_true(has(&b, "chunked\r\n\r\n0\r\n\r\n"));
    assert_int_equal(idle.in.len, 0);
    assert_false(a.eof);
    assert_int_equal(F.server_closed, 0);
    cn_http_respond(inflight, 200, NULL, NULL, 0, "late", 4, false);
    RUN_UNTIL(a.eof && F.server_closed == 1);
    assert_string_equal(a.in.p,
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlate");
    assert_int_equal(F.aborts, 1);
    F.srv = NULL;
    raw_free(&a);
    raw_free(&b);
    raw_free(&idle);
}

static void count_close(void *ctx)
{
    (*(int *)ctx)++;
}

static void listen_errors(void **state)
{
    char err[256];
    struct cn_http_server *s2 = cn_http_server_new(&F.loop, NULL, handler, NULL, &F);
    int rc = cn_http_server_listen(s2, "127.0.0.1", F.port, err, sizeof(err));
    assert_int_equal(rc, UV_EADDRINUSE);
    assert_non_null(strstr(err, "address already in use"));
    assert_int_equal(cn_http_server_port(s2), 0);
    rc = cn_http_server_listen(s2, "no-such-host.invalid", 0, err, sizeof(err));
    assert_true(rc < 0);
    /* localhost: every address it resolves to, one port */
    assert_int_equal(cn_http_server_listen(s2, "localhost", 0, err, sizeof(err)), 0);
    assert_true(cn_http_server_port(s2) != 0);
    int closed = 0;
    cn_http_server_close(s2, count_close, &closed);
    RUN_UNTIL(closed == 1);
}

/* ---- adopting a stream -------------------------------------------------------------------- */

/* A connection accepted by someone else (the peer port), who read its first bytes before seeing
 * they were HTTP: it hands the stream over with those bytes. */
struct other {
    struct cn_stream *s[2];
    size_t n;
    struct cn_buf head; /* what the other protocol read on s[0] */
    char rbuf[256];
    int adopted, lis_closed;
};

static struct other O;

#define ADOPT_HEAD "GET /hello HTTP/1.1\r\nHost: x\r\n"

static void other_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    buf->p = O.rbuf;
    buf->len = sizeof(O.rbuf);
}

static void other_read(struct cn_stream *s, ssize_t n, const struct cn_stream_buf *buf)
{
    assert_true(n > 0);
    cn_buf_append(&O.head, buf->p, (size_t)n);
    if (O.head.len == strlen(ADOPT_HEAD)) {
        assert_int_equal(cn_http_server_adopt(F.srv, s, O.head.p, O.head.len), 0);
        O.adopted++;
        assert_int_equal(F.handled, 0); /* parsed from the loop, not inside the call */
    }
}

static void other_accept(struct cn_stream_listener *l, int status, struct cn_stream *s)
{
    assert_int_equal(status, 0);
    assert_true(O.n < 2);
    O.s[O.n++] = s;
    assert_int_equal(cn_stream_read_start(s, other_alloc, other_read), 0);
}

static void other_lis_closed(struct cn_stream_listener *l)
{
    O.lis_closed++;
}

static void other_closed(struct cn_stream *s)
{
    O.s[1] = NULL;
}

static void adopt_stream(void **state)
{
    memset(&O, 0, sizeof(O));
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    struct cn_stream_listener *l;
    assert_int_equal(
        cn_stream_tcp_listen(&F.loop, (struct sockaddr *)&sa, false, 8, other_accept, NULL, &l), 0);
    struct sockaddr_storage ss;
    assert_int_equal(cn_stream_listener_addr(l, &ss), 0);
    uint16_t port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    /* the head was read by the other protocol, the rest arrives after the handover */
    struct rawc c;
    raw_open_port(&c, port);
    raw_send(&c, ADOPT_HEAD);
    RUN_UNTIL(O.adopted == 1);
    assert_int_equal(cn_http_server_conn_count(F.srv), 1);
    raw_send(&c, "\r\n");
    RUN_UNTIL(c.in.len >= strlen(HELLO_RESP));
    assert_string_equal(c.in.p, HELLO_RESP);
    assert_int_equal(F.handled, 1);
    /* keep-alive as on any connection; closing the server closes it */
    assert_false(c.eof);

    /* a server that is closing refuses, and the stream stays the caller's */
    struct rawc d;
    raw_open_port(&d, port);
    RUN_UNTIL(O.n == 2);
    struct cn_http_server *s2 = cn_http_server_new(&F.loop, NULL, handler, NULL, &F);
    int closed = 0;
    cn_http_server_close(s2, count_close, &closed);
    assert_int_equal(cn_http_server_adopt(s2, O.s[1], NULL, 0), CN_ERR_STOPPED);
    RUN_UNTIL(closed == 1);
    cn_stream_close(O.s[1], other_closed);
    RUN_UNTIL(O.s[1] == NULL && d.eof);

    cn_stream_listener_close(l, other_lis_closed);
    RUN_UNTIL(O.lis_closed == 1);
    raw_free(&c);
    raw_free(&d);
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);
    cn_buf_free(&O.head);
}

/* ---- client ------------------------------------------------------------------------------ */

struct cres {
    int done;
    int rc;
    int status;
    int heads;
    struct cn_buf body;
    struct cn_buf hdr; /* value of the header named in want */
    const char *want;
    bool cancel_in_chunk;
};

static void c_done(struct cn_http_client_req *req, int rc, const struct cn_http_client_resp *resp,
                   void *ctx)
{
    struct cres *r = ctx;
    r->done++;
    r->rc = rc;
    if (resp) {
        r->status = resp->status;
        cn_buf_append(&r->body, resp->body.p, resp->body.len);
        if (r->want) {
            struct cn_str v = cn_http_client_resp_header(resp, r->want);
            cn_buf_append(&r->hdr, v.p ? v.p : "<none>", v.p ? v.len : 6);
        }
    }
}

static void c_head(struct cn_http_client_req *req, const struct cn_http_client_resp *resp,
                   void *ctx)
{
    struct cres *r = ctx;
    r->heads++;
    r->status = resp->status;
    if (r->want) {
        struct cn_str v = cn_http_client_resp_header(resp, r->want);
        cn_buf_append(&r->hdr, v.p ? v.p : "<none>", v.p ? v.len : 6);
    }
}

static void c_chunk(struct cn_http_client_req *req, const void *p, size_t len, void *ctx)
{
    struct cres *r = ctx;
    cn_buf_append(&r->body, p, len);
    if (r->cancel_in_chunk) cn_http_client_cancel(req);
}

static void cres_free(struct cres *r)
{
    cn_buf_free(&r->body);
    cn_buf_free(&r->hdr);
}

static void url_of(char *out, size_t n, const char *host, const char *path)
{
    snprintf(out, n, "http://%s:%u%s", host, (unsigned)F.port, path);
}

static void client_basic(void **state)
{
    struct cn_http_client *cl = cn_http_client_new(&F.loop);
    char url[128];
    url_of(url, sizeof(url), "127.0.0.1", "/hello");
    struct cres a = {.want = "x-test"};
    struct cn_http_client_opts o = {
        .method = "GET", .url = url, .timeout_ms = 2000, .on_done = c_done, .ctx = &a};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    assert_int_equal(a.done, 0); /* never inside the call */
    RUN_UNTIL(a.done == 1);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body.p, "hello\n");
    assert_string_equal(a.hdr.p, "1");

    /* the connection is reused: the server still has exactly one */
    struct cres b = {.want = "X-Method"};
    url_of(url, sizeof(url), "127.0.0.1", "/echo?q=1");
    struct cn_http_hdr h[] = {{"X-UA", "cairn-test"}};
    o = (struct cn_http_client_opts){.method = "PUT",
                                     .url = url,
                                     .headers = h,
                                     .nheaders = 1,
                                     .body = "value=bar",
                                     .body_len = 9,
                                     .on_done = c_done,
                                     .ctx = &b};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(b.done == 1);
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.body.p, "value=bar");
    assert_string_equal(b.hdr.p, "PUT");
    assert_int_equal(cn_http_server_conn_count(F.srv), 1);

    /* HEAD: no body expected even with a Content-Length */
    struct cres c = {.want = "Content-Length"};
    url_of(url, sizeof(url), "127.0.0.1", "/hello");
    o = (struct cn_http_client_opts){.method = "HEAD", .url = url, .on_done = c_done, .ctx = &c};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(c.done == 1);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.hdr.p, "6");
    assert_int_equal(c.body.len, 0);

    /* a name that resolves (localhost: ::1 may come first and be refused; the next is tried) */
    struct cres d = {0};
    url_of(url, sizeof(url), "localhost", "/nocontent");
    o = (struct cn_http_client_opts){.method = "DELETE", .url = url, .on_done = c_done, .ctx = &d};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(d.done == 1);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.status, 204);

    /* response body over the cap */
    struct cres e = {0};
    url_of(url, sizeof(url), "127.0.0.1", "/hello");
    o = (struct cn_http_client_opts){
        .method = "GET", .url = url, .max_body_bytes = 3, .on_done = c_done, .ctx = &e};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(e.done == 1);
    assert_int_equal(e.rc, CN_ERR_TOO_LARGE);

    /* synchronous refusals */
    o.url = "https://127.0.0.1/";
    assert_int_equal(cn_http_client_request(cl, &o, NULL), -EPROTONOSUPPORT);
    o.url = "not a url";
    assert_int_equal(cn_http_client_request(cl, &o, NULL), CN_ERR_INVAL);

    int closed = 0;
    cn_http_client_close(cl, count_close, &closed);
    RUN_UNTIL(closed == 1);
    cres_free(&a);
    cres_free(&b);
    cres_free(&c);
    cres_free(&d);
    cres_free(&e);
}

static void client_stream_timeout_cancel(void **state)
{
    struct cn_http_client *cl = cn_http_client_new(&F.loop);
    char url[128];
    url_of(url, sizeof(url), "127.0.0.1", "/stream");
    struct cres a = {.want = "X-Etcd-Index"};
    struct cn_http_client_opts o = {.method = "GET",
                                    .url = url,
                                    .timeout_ms = 2000,
                                    .on_head = c_head,
                                    .on_chunk = c_chunk,
                                    .on_done = c_done,
                                    .ctx = &a};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(a.heads == 1 && F.nheld == 1);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.hdr.p, "7");
    cn_http_stream_write(F.held[0], "{\"n\":1}\n", 8);
    RUN_UNTIL(a.body.len == 8);
    cn_http_stream_write(F.held[0], "{\"n\":2}\n", 8);
    cn_http_stream_end(F.held[0]);
    RUN_UNTIL(a.done == 1);
    assert_int_equal(a.rc, 0);
    assert_string_equal(a.body.p, "{\"n\":1}\n{\"n\":2}\n");

    /* cancel from inside on_chunk: the server sees the stream aborted */
    struct cres b = {.cancel_in_chunk = true};
    o.ctx = &b;
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(b.heads == 1 && F.nheld == 2);
    cn_http_stream_write(F.held[1], "x", 1);
    RUN_UNTIL(F.aborts == 1);
    assert_int_equal(b.done, 0);
    assert_string_equal(b.body.p, "x");

    /* timeout while the server holds the request */
    struct cres c = {0};
    url_of(url, sizeof(url), "127.0.0.1", "/hold");
    o = (struct cn_http_client_opts){
        .method = "GET", .url = url, .timeout_ms = 30, .on_done = c_done, .ctx = &c};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(c.done == 1);
    assert_int_equal(c.rc, CN_ERR_TIMEOUT);
    /* the client gave up: the held request is still answered (into a closed socket) */
    RUN_UNTIL(F.nheld == 3);
    cn_http_respond(F.held[2], 200, NULL, NULL, 0, "late", 4, false);
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);
    assert_int_equal(F.aborts, 1);

    /* refused connection */
    struct cres d = {0};
    o.url = "http://127.0.0.1:1/";
    o.ctx = &d;
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(d.done == 1);
    assert_int_equal(d.rc, -ECONNREFUSED);

    /* closing the client fails what is in flight */
    struct cres e = {0};
    o.url = url;
    o.timeout_ms = 0;
    o.ctx = &e;
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(F.nheld == 4);
    int closed = 0;
    cn_http_client_close(cl, count_close, &closed);
    assert_int_equal(e.done, 1);
    assert_int_equal(e.rc, CN_ERR_CANCELED);
    RUN_UNTIL(closed == 1);
    cn_http_respond(F.held[3], 200, NULL, NULL, 0, "late", 4, false);
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);
    assert_int_equal(F.aborts, 1);
    cres_free(&a);
    cres_free(&b);
    cres_free(&c);
    cres_free(&d);
    cres_free(&e);
}

/* The per-phase limits: read_timeout_ms covers the wait for the head and, in stream mode, the
 * silence between body reads; connect and write limits that are met leave the request alone. */
static void client_phase_timeouts(void **state)
{
    struct cn_http_client *cl = cn_http_client_new(&F.loop);
    char url[128];
    url_of(url, sizeof(url), "127.0.0.1", "/hello");
    struct cres a = {0};
    struct cn_http_client_opts o = {.method = "GET",
                                    .url = url,
                                    .connect_timeout_ms = 1000,
                                    .write_timeout_ms = 1000,
                                    .read_timeout_ms = 1000,
                                    .on_done = c_done,
                                    .ctx = &a};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(a.done == 1);
    assert_int_equal(a.rc, 0);
    assert_string_equal(a.body.p, "hello\n");

    /* a stream that goes quiet: the chunk that came is delivered, then the limit ends it */
    url_of(url, sizeof(url), "127.0.0.1", "/stream");
    struct cres b = {0};
    o = (struct cn_http_client_opts){.method = "GET",
                                     .url = url,
                                     .read_timeout_ms = 50,
                                     .on_head = c_head,
                                     .on_chunk = c_chunk,
                                     .on_done = c_done,
                                     .ctx = &b};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(b.heads == 1 && F.nheld == 1);
    cn_http_stream_write(F.held[0], "{\"n\":1}\n", 8);
    RUN_UNTIL(b.done == 1);
    assert_int_equal(b.rc, CN_ERR_TIMEOUT);
    assert_string_equal(b.body.p, "{\"n\":1}\n");
    RUN_UNTIL(F.aborts == 1); /* the connection was closed under the stream */

    /* no head at all within the limit */
    url_of(url, sizeof(url), "127.0.0.1", "/hold");
    struct cres c = {0};
    o = (struct cn_http_client_opts){
        .method = "GET", .url = url, .read_timeout_ms = 30, .on_done = c_done, .ctx = &c};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(c.done == 1);
    assert_int_equal(c.rc, CN_ERR_TIMEOUT);
    RUN_UNTIL(F.nheld == 2);
    cn_http_respond(F.held[1], 200, NULL, NULL, 0, "late", 4, false);
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);

    int closed = 0;
    cn_http_client_close(cl, count_close, &closed);
    RUN_UNTIL(closed == 1);
    cres_free(&a);
    cres_free(&b);
    cres_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(simple_get_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(keep_alive_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(pipelined_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(pipeline_limit_pauses_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(head_has_length_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(request_fields_and_body, setup, teardown),
        cmocka_unit_test_setup_teardown(header_limits_431, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_400_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_chunks_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(unanswered_answered_after_peer_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(date_header_when_enabled, setup_date, teardown),
        cmocka_unit_test_setup_teardown(server_close_graceful, setup, teardown),
        cmocka_unit_test_setup_teardown(listen_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(adopt_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(client_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(client_stream_timeout_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(client_phase_timeouts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
