/* libFuzzer target for src/http's request side: http-parser's callbacks into a request (target,
 * path and query split, absolute-form targets, split header names, header and body limits,
 * Expect: 100-continue, chunked bodies, pipelining, keep-alive and HTTP/1.0 rules, refusals with
 * 400/431/413) and the connection state machine that answers them in order.
 *
 * That parsing has no entry point apart from a connection: its callbacks work on the
 * connection's state and answer on its socket (http_server.c), so this target drives the public
 * API (http.h) over loopback, as the unit tests do. One server lives for the whole run; each
 * input is one client connection on the same uv loop that writes the input, shuts its write side
 * and reads until the server closes. The handler checks what it is given, answers at once, later
 * (out of order) or as a stream, and the client checks that what came back parses as HTTP/1.1
 * responses.
 *
 * Input: a first byte s, then the bytes sent. s % 64 == 0: one write; else writes of s % 64 bytes
 * (at most 16 of them, the rest in one), each read by the server on its own, so a request line
 * or a header name can end in the middle of a read. */
#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "fuzz.h"
#include "http/http.h"

#define MAX_BODY  2048
#define MAX_HELD  64
#define MAX_WRITE 16

static uv_loop_t loop;
static uv_check_t answer_check;
static struct cn_http_server *srv;
static uint16_t port;

/* Requests answered later, from the check handle (the next loop turn), newest first. */
static struct cn_http_req *held[MAX_HELD];
static size_t nheld;
static size_t nhead; /* HEAD requests of this input: their answers carry no body */

static bool within(struct cn_str in, struct cn_str part)
{
    if (part.len == 0) return true;
    return in.p != NULL && part.p >= in.p && part.p + part.len <= in.p + in.len;
}

static void check_request(const struct cn_http_req *req)
{
    CHECK(req->method_name.len > 0);
    CHECK(within(req->url, req->path) || cn_str_eqz(req->path, "/"));
    CHECK(within(req->url, req->query));
    CHECK(req->body.len <= MAX_BODY);
    CHECK(req->nheaders <= 16);
    for (size_t i = 0; i < req->nheaders; i++) {
        CHECK(req->headers[i].name.len == 0 || req->headers[i].name.p != NULL);
        CHECK(req->headers[i].value.len == 0 || req->headers[i].value.p != NULL);
        struct cn_str v = cn_http_req_header(req, "content-type");
        (void)v;
    }
    if (req->method == HTTP_HEAD) nhead++;
}

static void on_abort(struct cn_http_req *req, void *ctx)
{
    for (size_t i = 0; i < nheld; i++)
        if (held[i] == req) held[i] = NULL;
}

/* The body echoed back, with one request header copied into a response header (CR and LF in it
 * must not split the response). */
static void answer(struct cn_http_req *req)
{
    req->on_abort = NULL;
    char echo[128];
    struct cn_str x = cn_http_req_header(req, "X-Echo");
    snprintf(echo, sizeof(echo), "%.*s", x.p ? (int)(x.len > 100 ? 100 : x.len) : 0,
             x.p ? x.p : "");
    struct cn_http_hdr h[3] = {{"X-Echo", echo}};
    size_t nh = 1;
    char obuf[128];
    if (cn_http_cors("http://a.example,*", req, &h[0], obuf, sizeof(obuf))) nh = 3;
    if (nh == 3) cn_http_req_add_header(req, "X-Echo", echo);
    int status = 200;
    if (cn_str_has_prefix(req->path, CN_STR("/nocontent"))) status = 204;
    if (cn_str_has_prefix(req->path, CN_STR("/missing"))) status = 404;
    bool close_after = cn_str_has_prefix(req->path, CN_STR("/close"));
    cn_http_respond(req, status, "text/plain", h, nh, req->body.p, req->body.len, close_after);
}

static void stream(struct cn_http_req *req)
{
    req->on_abort = NULL;
    struct cn_http_hdr h[] = {{"X-Etcd-Index", "7"}};
    cn_http_stream_start(req, 200, "application/json", h, 1);
    cn_http_stream_write(req, "{\"a\":1}\n", 8);
    (void)cn_http_stream_backlog(req);
    cn_http_stream_write(req, req->body.p, req->body.len);
    cn_http_stream_end(req);
}

static void handler(struct cn_http_req *req, void *ctx)
{
    check_request(req);
    if (cn_str_has_prefix(req->path, CN_STR("/hold")) && nheld < MAX_HELD) {
        req->on_abort = on_abort;
        held[nheld++] = req;
        return;
    }
    if (cn_str_has_prefix(req->path, CN_STR("/stream")) || cn_str_eqz(req->query, "wait=true")) {
        stream(req);
        return;
    }
    answer(req);
}

static void too_large(struct cn_http_req *req, void *ctx)
{
    check_request(req);
    CHECK(req->body.len == 0);
    cn_http_respond(req, 413, "text/plain", NULL, 0, "too large", 9, false);
}

static void on_check(uv_check_t *c)
{
    /* newest first: later pipelined requests finish before earlier ones */
    while (nheld > 0) {
        struct cn_http_req *req = held[--nheld];
        if (req == NULL) continue;
        if (cn_str_has_prefix(req->path, CN_STR("/hold/stream")))
            stream(req);
        else
            answer(req);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cn_log_level_max = CN_LOG_ERR;
    CHECK(uv_loop_init(&loop) == 0);
    uv_check_init(&loop, &answer_check);
    uv_check_start(&answer_check, on_check);
    struct cn_http_limits lim = {
        .max_header_bytes = 4096,
        .max_headers = 16,
        .max_body_bytes = MAX_BODY,
        .max_pipeline = 4,
    };
    srv = cn_http_server_new(&loop, &lim, handler, too_large, NULL);
    char err[256];
    CHECK(cn_http_server_listen(srv, "127.0.0.1", 0, err, sizeof(err)) == 0);
    port = cn_http_server_port(srv);
    return 0;
}

/* ---- the client side of one input ---------------------------------------------------------- */

struct client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    bool connected, written, eof, reset, closed;
    int status;
    struct cn_buf in;
};

static void on_connect(uv_connect_t *cr, int status)
{
    struct client *c = cr->data;
    c->status = status;
    c->connected = true;
}

static void on_write(uv_write_t *w, int status)
{
    struct client *c = w->data;
    c->written = true;
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[64 * 1024];
    buf->base = b;
    buf->len = sizeof(b);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *c = s->data;
    if (n > 0) cn_buf_append(&c->in, buf->base, (size_t)n);
    if (n < 0) {
        c->eof = true;
        c->reset = n != UV_EOF; /* unread bytes may be lost with a reset */
        uv_read_stop(s);
    }
}

static void on_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    c->closed = true;
}

static void run_until(const bool *flag)
{
    while (!*flag)
        uv_run(&loop, UV_RUN_ONCE);
}

/* The server's output must be a sequence of well-formed responses (none after a HEAD, whose
 * Content-Length announces a body that is not sent: http-parser cannot know). */
static int count_message(http_parser *p)
{
    return 0;
}

static void check_responses(const struct cn_buf *out)
{
    if (out->len == 0) return;
    CHECK(out->len >= 9 && memcmp(out->p, "HTTP/1.1 ", 9) == 0);
    if (nhead > 0) return;
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_complete = count_message;
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    size_t used = http_parser_execute(&p, &s, out->p, out->len);
    if (HTTP_PARSER_ERRNO(&p) == HPE_OK && used == out->len)
        http_parser_execute(&p, &s, NULL, 0); /* EOF ends an HTTP/1.0 stream's body */
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
        fprintf(stderr, "bad response at %zu: %s\n%.*s\n", used,
                http_errno_description(HTTP_PARSER_ERRNO(&p)), (int)out->len, out->p);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16)) return 0;
    size_t step = size > 0 ? data[0] % 64 : 0;
    const char *p = size > 0 ? (const char *)data + 1 : "";
    size_t n = size > 0 ? size - 1 : 0;
    nhead = 0;

    struct client c;
    memset(&c, 0, sizeof(c));
    uv_tcp_init(&loop, &c.tcp);
    c.tcp.data = c.creq.data = c.wreq.data = c.sreq.data = &c;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    CHECK(uv_tcp_connect(&c.creq, &c.tcp, (const struct sockaddr *)&sa, on_connect) == 0);
    run_until(&c.connected);
    CHECK(c.status == 0);
    uv_tcp_nodelay(&c.tcp, 1);
    uv_read_start((uv_stream_t *)&c.tcp, on_alloc, on_read);

    for (int w = 0; n > 0 && !c.eof; w++) {
        size_t len = (step == 0 || w == MAX_WRITE - 1 || step > n) ? n : step;
        uv_buf_t b = uv_buf_init((char *)p, (unsigned int)len);
        c.written = false;
        if (uv_write(&c.wreq, (uv_stream_t *)&c.tcp, &b, 1, on_write) != 0) break;
        run_until(&c.written);
        /* let the server read this piece before the next one is sent */
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_run(&loop, UV_RUN_NOWAIT);
        p += len;
        n -= len;
    }
    if (!c.eof) uv_shutdown(&c.sreq, (uv_stream_t *)&c.tcp, on_shutdown);
    run_until(&c.eof);
    uv_close((uv_handle_t *)&c.tcp, on_closed);
    run_until(&c.closed);
    /* the server's side is gone too before the next input */
    while (cn_http_server_conn_count(srv) > 0 || nheld > 0)
        uv_run(&loop, UV_RUN_ONCE);
    if (!c.reset) check_responses(&c.in);
    cn_buf_free(&c.in);
    return 0;
}
