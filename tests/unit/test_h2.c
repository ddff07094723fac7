/* Unit tests for src/h2: an in-process nghttp2 client over a real loopback TCP connection, on the
 * same loop, against cairn's HTTP server whose preface hook hands HTTP/2 to the gRPC server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"
#include "h2/grpc.h"
#include "h2/h2_int.h"
#include "http/http.h"

/* ---- the server under test --------------------------------------------------------------- */

static uv_loop_t loop;
static struct cn_grpc_server *gsrv;
static struct cn_http_server *hsrv;
static uint16_t port;
static int ncancel, nhalf;
static size_t burst_backlog;
static struct cn_grpc_call *held; /* a Hang call, for tests that answer it later */

static void m_unary(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    assert_int_equal(cn_grpc_send(c, msg, len), 0);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void m_sstream(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    for (int i = 0; i < 3; i++)
        assert_int_equal(cn_grpc_send(c, msg, len), 0);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void m_bidi(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    assert_int_equal(cn_grpc_send(c, msg, len), 0);
}

static void m_bidi_end(struct cn_grpc_call *c, void *ctx)
{
    nhalf++;
    cn_grpc_finish(c, CN_GRPC_OK, "done");
}

static uint64_t hang_deadline, hang_now;
static void m_hang(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    held = c;
    hang_deadline = cn_grpc_call_deadline_ms(c);
    hang_now = uv_now(&loop);
}

static void m_burst(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    char b[1000];
    memset(b, 'b', sizeof(b));
    for (int i = 0; i < 100; i++)
        assert_int_equal(cn_grpc_send(c, b, sizeof(b)), 0);
    burst_backlog = cn_grpc_call_backlog(c);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void m_pb(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rr.key.data = (uint8_t *)msg;
    rr.key.len = len;
    assert_int_equal(cn_grpc_send_pb(c, &rr.base), 0);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

#define FLOOD_MSG (64 * 1024)
#define FLOOD_N   400
static void m_flood(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    char *b = cn_xcalloc(1, FLOOD_MSG);
    for (int i = 0; i < FLOOD_N; i++)
        assert_int_equal(cn_grpc_send(c, b, FLOOD_MSG), 0);
    cn_free(b);
    held = c;
}

static void m_cancel(struct cn_grpc_call *c, void *ctx)
{
    if (c == held) held = NULL;
    ncancel++;
}

static const struct cn_grpc_method methods[] = {
    {"/t.Echo/Unary", false, false, m_unary, NULL, m_cancel, NULL},
    {"/t.Echo/SStream", false, true, m_sstream, NULL, m_cancel, NULL},
    {"/t.Echo/Bidi", true, true, m_bidi, m_bidi_end, m_cancel, NULL},
    {"/t.Echo/Hang", true, false, m_hang, NULL, m_cancel, NULL},
    {"/t.Echo/Burst", false, true, m_burst, NULL, m_cancel, NULL},
    {"/t.Echo/Pb", false, false, m_pb, NULL, m_cancel, NULL},
    {"/t.Echo/Flood", false, true, m_flood, NULL, m_cancel, NULL},
};

static int hook(void *ctx, struct cn_stream *s, const void *head, size_t len)
{
    return cn_grpc_server_adopt(gsrv, s, head, len);
}

static void on_http(struct cn_http_req *req, void *ctx)
{
    cn_http_respond(req, 200, "text/plain", NULL, 0, "ok", 2, false);
}

static void server_up_win(size_t max_recv, uint32_t window)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    struct cn_grpc_limits lim = {.max_recv_msg = max_recv,
                                 .close_grace_ms = 200,
                                 .initial_window = window,
                                 .conn_window = window};
    assert_int_equal(
        cn_grpc_server_new(&loop, &lim, methods, sizeof(methods) / sizeof(methods[0]), &gsrv), 0);
    hsrv = cn_http_server_new(&loop, NULL, on_http, NULL, NULL);
    cn_http_server_set_h2(hsrv, hook, NULL);
    char err[128];
    assert_int_equal(cn_http_server_listen(hsrv, "127.0.0.1", 0, err, sizeof(err)), 0);
    port = cn_http_server_port(hsrv);
    ncancel = nhalf = 0;
    held = NULL;
}

static void server_up(size_t max_recv)
{
    server_up_win(max_recv, 0);
}

/* ---- the client ---------------------------------------------------------------------------- */

struct cstream {
    int32_t id;
    struct cn_buf hdrs, trailers, data; /* "name: value\n" lines; DATA bytes */
    int nhframes;
    struct cn_buf body; /* request bytes to send */
    size_t off;
    bool eof, closed;
    uint32_t err;
};

struct client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    nghttp2_session *ngh;
    bool connected, eof, tcp_closed;
    struct cn_buf raw; /* bytes read when no session is used */
    struct cstream st[8];
    size_t nst;
};

static struct client cli;

static void flush(void);

static void on_wdone(uv_write_t *w, int status)
{
    cn_free(w->data);
    cn_free(w);
}

static void raw_write(const void *p, size_t n)
{
    uv_write_t *w = CN_NEW(uv_write_t);
    w->data = cn_xmemdup(p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    assert_int_equal(uv_write(w, (uv_stream_t *)&cli.tcp, &b, 1, on_wdone), 0);
}

static void flush(void)
{
    if (!cli.ngh || cli.tcp_closed) return;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(cli.ngh, &d);
        assert_true(n >= 0);
        if (n == 0) break;
        raw_write(d, (size_t)n);
    }
}

static char rbuf[65536];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_cread(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        cli.eof = true;
        uv_read_stop(s);
        return;
    }
    if (!cli.ngh) {
        cn_buf_append(&cli.raw, b->base, (size_t)n);
        return;
    }
    assert_int_equal(nghttp2_session_mem_recv(cli.ngh, (const uint8_t *)b->base, (size_t)n), n);
    flush();
}

static struct cstream *find(int32_t id)
{
    for (size_t i = 0; i < cli.nst; i++)
        if (cli.st[i].id == id) return &cli.st[i];
    return NULL;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                    const uint8_t *val, size_t vl, uint8_t flags, void *u)
{
    struct cstream *st = find(f->hd.stream_id);
    if (!st) return 0;
    struct cn_buf *b = st->nhframes == 0 ? &st->hdrs : &st->trailers;
    cn_buf_appendf(b, "%.*s: %.*s\n", (int)nl, name, (int)vl, val);
    return 0;
}

static int c_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
    struct cstream *st = find(f->hd.stream_id);
    if (st && f->hd.type == NGHTTP2_HEADERS) st->nhframes++;
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                  void *u)
{
    struct cstream *st = find(id);
    if (st) cn_buf_append(&st->data, d, n);
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t err, void *u)
{
    struct cstream *st = find(id);
    if (st) {
        st->closed = true;
        st->err = err;
    }
    return 0;
}

static ssize_t c_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *u)
{
    struct cstream *st = src->ptr;
    size_t n = st->body.len - st->off;
    if (n > len) n = len;
    if (n) memcpy(buf, st->body.p + st->off, n);
    st->off += n;
    if (st->off == st->body.len) {
        if (st->eof)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0)
            return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* Runs the loop until *flag, failing after 5 s. */
static bool timed_out;
static void on_deadline(uv_timer_t *t)
{
    timed_out = true;
}
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_timer_t t_;                                                                             \
        uv_timer_init(&loop, &t_);                                                                 \
        timed_out = false;                                                                         \
        uv_timer_start(&t_, on_deadline, 5000, 0);                                                 \
        while (!(cond) && !timed_out)                                                              \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_close((uv_handle_t *)&t_, NULL);                                                        \
        uv_run(&loop, UV_RUN_NOWAIT);                                                              \
        assert_false(timed_out);                                                                   \
    } while (0)

static void on_connect(uv_connect_t *r, int status)
{
    assert_int_equal(status, 0);
    cli.connected = true;
    uv_read_start((uv_stream_t *)&cli.tcp, on_alloc, on_cread);
}

static void tcp_connect(void)
{
    memset(&cli, 0, sizeof(cli));
    uv_tcp_init(&loop, &cli.tcp);
    uv_tcp_nodelay(&cli.tcp, 1);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    assert_int_equal(uv_tcp_connect(&cli.creq, &cli.tcp, (struct sockaddr *)&a, on_connect), 0);
    RUN_UNTIL(cli.connected);
}

static void client_up(uint32_t window)
{
    tcp_connect();
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, c_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_close);
    assert_int_equal(nghttp2_session_client_new(&cli.ngh, cbs, NULL), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    nghttp2_submit_settings(cli.ngh, NGHTTP2_FLAG_NONE, iv, 1);
    flush();
}

static void tcp_closed(uv_handle_t *h)
{
    cli.tcp_closed = true;
}

static void client_drop(void)
{
    if (cli.ngh) nghttp2_session_del(cli.ngh);
    cli.ngh = NULL;
    uv_close((uv_handle_t *)&cli.tcp, tcp_closed);
    RUN_UNTIL(cli.tcp_closed);
    for (size_t i = 0; i < cli.nst; i++) {
        cn_buf_free(&cli.st[i].hdrs);
        cn_buf_free(&cli.st[i].trailers);
        cn_buf_free(&cli.st[i].data);
        cn_buf_free(&cli.st[i].body);
    }
    cn_buf_free(&cli.raw);
}

static bool srv_closed, http_closed;
static void on_srv_closed(void *arg)
{
    *(bool *)arg = true;
}

static void server_down(void)
{
    srv_closed = http_closed = false;
    cn_grpc_server_close(gsrv, on_srv_closed, &srv_closed);
    cn_http_server_close(hsrv, on_srv_closed, &http_closed);
    RUN_UNTIL(srv_closed && http_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void frame_msg(struct cn_buf *b, const void *p, size_t n)
{
    char h[5] = {0, (char)(n >> 24), (char)(n >> 16), (char)(n >> 8), (char)n};
    cn_buf_append(b, h, 5);
    cn_buf_append(b, p, n);
}

/* Starts a call; body and eof as the request's DATA. */
static struct cstream *call(const char *path, const char *ctype, const char *timeout,
                            const void *msg, size_t len, bool eof)
{
    struct cstream *st = &cli.st[cli.nst++];
    if (msg) frame_msg(&st->body, msg, len);
    st->eof = eof;
    nghttp2_nv nv[8];
    size_t n = 0;
#define H(k, v) nv[n++] = (nghttp2_nv){(uint8_t *)k, (uint8_t *)v, strlen(k), strlen(v), 0}
    H(":method", "POST");
    H(":scheme", "http");
    H(":authority", "127.0.0.1");
    H(":path", path);
    H("content-type", ctype);
    H("te", "trailers");
    if (timeout) H("grpc-timeout", timeout);
    H("token", "abc");
#undef H
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = c_read};
    st->id = nghttp2_submit_request(cli.ngh, NULL, nv, n, &prd, NULL);
    assert_true(st->id > 0);
    flush();
    return st;
}

static void more(struct cstream *st, const void *msg, size_t len, bool eof)
{
    if (msg) frame_msg(&st->body, msg, len);
    st->eof = eof;
    nghttp2_session_resume_data(cli.ngh, st->id);
    flush();
}

static const char ok_hdrs[] = ":status: 200\ncontent-type: application/grpc\n";

/* ---- tests --------------------------------------------------------------------------------- */

static void test_unary_bytes(void **state)
{
    server_up(0);
    client_up(65535);
    struct cstream *st = call("/t.Echo/Unary", "application/grpc", NULL, "hello", 5, true);
    RUN_UNTIL(st->closed);
    assert_string_equal(st->hdrs.p, ok_hdrs);
    assert_int_equal(st->data.len, 10);
    assert_memory_equal(st->data.p, "\0\0\0\0\5hello", 10);
    assert_string_equal(st->trailers.p, "grpc-status: 0\n");
    assert_int_equal(st->nhframes, 2);
    assert_int_equal(st->err, NGHTTP2_NO_ERROR);
    /* content-type with a subtype is gRPC too */
    st = call("/t.Echo/Unary", "application/grpc+proto", NULL, "", 0, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(st->data.len, 5);
    assert_memory_equal(st->data.p, "\0\0\0\0\0", 5);
    /* a protobuf-c message packed in place: RangeRequest{key: "hello"} */
    st = call("/t.Echo/Pb", "application/grpc", NULL, "hello", 5, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(st->data.len, 12);
    assert_memory_equal(st->data.p, "\0\0\0\0\7\x0a\5hello", 12);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 0);
    client_drop();
    server_down();
}

static void test_big_message(void **state)
{
    /* HTTP/2's default 65535-byte windows on our side too: WINDOW_UPDATEs carry 1 MiB in */
    server_up_win(2 * 1024 * 1024, 65535);
    client_up(65535); /* the reply must wait for the client's 64 KiB windows */
    size_t n = 1024 * 1024;
    char *big = cn_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    struct cstream *st = call("/t.Echo/Unary", "application/grpc", NULL, big, n, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(st->data.len, n + 5);
    assert_memory_equal(st->data.p, "\0\0\x10\0\0", 5);
    assert_memory_equal(st->data.p + 5, big, n);
    assert_string_equal(st->trailers.p, "grpc-status: 0\n");
    cn_free(big);
    client_drop();
    server_down();
}

static void test_server_stream_and_backlog(void **state)
{
    server_up(0);
    client_up(16384);
    struct cstream *st = call("/t.Echo/SStream", "application/grpc", NULL, "ab", 2, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(st->data.len, 21);
    assert_memory_equal(st->data.p, "\0\0\0\0\2ab\0\0\0\0\2ab\0\0\0\0\2ab", 21);
    /* 100 messages of 1000 bytes against a 16 KiB window: all queued, then drained */
    st = call("/t.Echo/Burst", "application/grpc", NULL, "", 0, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(burst_backlog, 100 * 1005);
    assert_int_equal(st->data.len, 100 * 1005);
    assert_string_equal(st->trailers.p, "grpc-status: 0\n");
    client_drop();
    server_down();
}

static void test_slow_socket(void **state)
{
    /* windows wide open: only the socket holds the reply back */
    server_up(0);
    client_up(NGHTTP2_MAX_WINDOW_SIZE);
    nghttp2_session_set_local_window_size(cli.ngh, NGHTTP2_FLAG_NONE, 0, NGHTTP2_MAX_WINDOW_SIZE);
    flush();
    struct cstream *st = call("/t.Echo/Flood", "application/grpc", NULL, "", 0, true);
    RUN_UNTIL(held != NULL);
    uv_read_stop((uv_stream_t *)&cli.tcp);
    struct conn *c = held->conn;
    /* whatever the timing, the unread socket can take only its kernel buffers (a few MiB) */
    for (int i = 0; i < 200; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(c->writing);
    /* the connection holds one write in flight and about OUT_HIGH_WATER more; the rest waits in
     * the call's queue, which the handler sees */
    assert_true(c->wout.len < OUT_HIGH_WATER + 2 * 16384);
    assert_true(c->wfly.len < OUT_HIGH_WATER + 2 * 16384);
    size_t total = (size_t)FLOOD_N * (FLOOD_MSG + 5);
    size_t backlog = cn_grpc_call_backlog(held);
    assert_true(backlog > total / 2);
    assert_false(c->reading); /* input waits too */
    cn_grpc_finish(held, CN_GRPC_OK, NULL);
    held = NULL;
    uv_read_start((uv_stream_t *)&cli.tcp, on_alloc, on_cread);
    RUN_UNTIL(st->closed);
    assert_int_equal(st->data.len, total);
    assert_string_equal(st->trailers.p, "grpc-status: 0\n");
    client_drop();
    server_down();
}

static void test_bidi(void **state)
{
    server_up(0);
    client_up(65535);
    struct cstream *st = call("/t.Echo/Bidi", "application/grpc", NULL, "one", 3, false);
    RUN_UNTIL(st->data.len == 8);
    assert_string_equal(st->hdrs.p, ok_hdrs);
    more(st, "two", 3, false);
    RUN_UNTIL(st->data.len == 16);
    assert_memory_equal(st->data.p, "\0\0\0\0\3one\0\0\0\0\3two", 16);
    assert_false(st->closed);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 1);
    more(st, NULL, 0, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(nhalf, 1);
    assert_string_equal(st->trailers.p, "grpc-status: 0\ngrpc-message: done\n");
    assert_int_equal(cn_grpc_server_call_count(gsrv), 0);
    client_drop();
    server_down();
}

static void test_errors(void **state)
{
    server_up(1000);
    client_up(65535);
    char big[1001];
    memset(big, 'x', sizeof(big));
    struct cstream *st = call("/t.Echo/Unary", "application/grpc", NULL, big, 1001, true);
    RUN_UNTIL(st->closed);
    assert_int_equal(st->nhframes, 1); /* Trailers-Only */
    assert_string_equal(st->hdrs.p,
                        ":status: 200\ncontent-type: application/grpc\ngrpc-status: 8\n"
                        "grpc-message: grpc: received message larger than max (1001 vs. 1000)\n");
    assert_int_equal(ncancel, 1);
    st = call("/t.Echo/Nope", "application/grpc", NULL, "", 0, true);
    RUN_UNTIL(st->closed);
    assert_string_equal(st->hdrs.p, ":status: 200\ncontent-type: application/grpc\ngrpc-status: "
                                    "12\ngrpc-message: unknown method Nope for service t.Echo\n");
    st = call("/x.KV/Range", "application/grpc", NULL, "", 0, true);
    RUN_UNTIL(st->closed);
    assert_non_null(strstr(st->hdrs.p, "grpc-message: unknown service x.KV\n"));
    st = call("/t.Echo/Unary", "application/json", NULL, "", 0, true);
    RUN_UNTIL(st->closed);
    assert_string_equal(st->hdrs.p,
                        ":status: 415\ncontent-type: application/grpc\ngrpc-status: 3\n"
                        "grpc-message: invalid gRPC request content-type \"application/json\"\n");
    st = call("/t.Echo/Unary", "application/grpc", "1x", "", 0, true);
    RUN_UNTIL(st->closed);
    assert_non_null(strstr(st->hdrs.p, "grpc-status: 13\n"));
    /* compressed flag without grpc-encoding */
    st = call("/t.Echo/Unary", "application/grpc", NULL, NULL, 0, false);
    cn_buf_append(&st->body, "\1\0\0\0\0", 5);
    more(st, NULL, 0, true);
    RUN_UNTIL(st->closed);
    assert_non_null(strstr(st->hdrs.p, "grpc-status: 13\ngrpc-message: grpc: compressed flag set "
                                       "with identity or empty encoding\n"));
    assert_int_equal(cn_grpc_server_call_count(gsrv), 0);
    client_drop();
    server_down();
}

static void test_deadline(void **state)
{
    server_up(0);
    client_up(65535);
    struct cstream *st = call("/t.Echo/Hang", "application/grpc", "20m", "z", 1, false);
    RUN_UNTIL(st->closed);
    assert_true(hang_deadline >= hang_now && hang_deadline <= hang_now + 20);
    assert_int_equal(ncancel, 1);
    assert_null(held);
    assert_string_equal(st->hdrs.p, ":status: 200\ncontent-type: application/grpc\ngrpc-status: "
                                    "4\ngrpc-message: context deadline exceeded\n");
    /* the client had not ended its side: RST_STREAM(NO_ERROR) after the trailers */
    assert_int_equal(st->err, NGHTTP2_NO_ERROR);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 0);
    client_drop();
    server_down();
}

static void test_client_reset_and_metadata(void **state)
{
    server_up(0);
    client_up(65535);
    struct cstream *st = call("/t.Echo/Hang", "application/grpc", NULL, "z", 1, false);
    RUN_UNTIL(held != NULL);
    struct cn_str tok = cn_grpc_metadata(held, "token");
    assert_int_equal(tok.len, 3);
    assert_memory_equal(tok.p, "abc", 3);
    assert_null(cn_grpc_metadata(held, "nope").p);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 1);
    nghttp2_submit_rst_stream(cli.ngh, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    flush();
    RUN_UNTIL(ncancel == 1);
    assert_null(held);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 0);
    client_drop();
    server_down();
}

static void test_connection_lost(void **state)
{
    server_up(0);
    client_up(65535);
    call("/t.Echo/Hang", "application/grpc", NULL, "z", 1, false);
    struct cstream *b = call("/t.Echo/Bidi", "application/grpc", NULL, "q", 1, false);
    RUN_UNTIL(held != NULL && b->data.len == 6);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 2);
    client_drop();
    RUN_UNTIL(ncancel == 2 && cn_grpc_server_conn_count(gsrv) == 0);
    assert_int_equal(cn_grpc_server_call_count(gsrv), 0);
    server_down();
}

static void test_graceful_close(void **state)
{
    server_up(0);
    client_up(65535);
    struct cstream *st = call("/t.Echo/Hang", "application/grpc", NULL, "z", 1, true);
    RUN_UNTIL(held != NULL);
    srv_closed = false;
    cn_grpc_server_close(gsrv, on_srv_closed, &srv_closed);
    /* a call in flight may still finish after GOAWAY */
    assert_int_equal(cn_grpc_send(held, "late", 4), 0);
    cn_grpc_finish(held, CN_GRPC_OK, NULL);
    held = NULL;
    RUN_UNTIL(st->closed && srv_closed);
    assert_memory_equal(st->data.p, "\0\0\0\0\4late", 9);
    assert_int_equal(ncancel, 0);
    http_closed = false;
    cn_http_server_close(hsrv, on_srv_closed, &http_closed);
    RUN_UNTIL(http_closed && cli.eof);
    client_drop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_grace_expires(void **state)
{
    server_up(0);
    client_up(65535);
    call("/t.Echo/Hang", "application/grpc", NULL, "z", 1, false);
    RUN_UNTIL(held != NULL);
    srv_closed = false;
    cn_grpc_server_close(gsrv, on_srv_closed, &srv_closed);
    RUN_UNTIL(srv_closed); /* close_grace_ms 200: the hanging call is cancelled */
    assert_int_equal(ncancel, 1);
    http_closed = false;
    cn_http_server_close(hsrv, on_srv_closed, &http_closed);
    RUN_UNTIL(http_closed && cli.eof);
    client_drop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static bool wrote;
static void on_w1(uv_write_t *w, int status)
{
    wrote = true;
}

static void test_preface_bytewise_and_http1(void **state)
{
    server_up(0);
    /* HTTP/1.1 on the same port */
    tcp_connect();
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_write(get, sizeof(get) - 1);
    RUN_UNTIL(cli.eof);
    assert_true(cn_str_has_prefix(cn_buf_str(&cli.raw), CN_STR("HTTP/1.1 200 OK\r\n")));
    client_drop();
    /* the preface one byte per write, each write done before the next */
    tcp_connect();
    static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    for (size_t i = 0; i < sizeof(pre) - 1; i++) {
        uv_write_t w;
        uv_buf_t b = uv_buf_init((char *)pre + i, 1);
        wrote = false;
        assert_int_equal(uv_write(&w, (uv_stream_t *)&cli.tcp, &b, 1, on_w1), 0);
        RUN_UNTIL(wrote);
        for (int k = 0; k < 3; k++)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    RUN_UNTIL(cli.raw.len >= 9);
    assert_int_equal(cli.raw.p[3], 4); /* the server's SETTINGS */
    assert_int_equal(cn_grpc_server_conn_count(gsrv), 1);
    client_drop();
    RUN_UNTIL(cn_grpc_server_conn_count(gsrv) == 0);
    /* "PRX" is HTTP/1.1 (a bad request) */
    tcp_connect();
    raw_write("PRX / HTTP/1.1\r\n\r\n", 18);
    RUN_UNTIL(cli.eof);
    assert_true(cn_str_has_prefix(cn_buf_str(&cli.raw), CN_STR("HTTP/1.1 400 Bad Request\r\n")));
    client_drop();
    server_down();
}

static void test_wire(void **state)
{
    uint64_t ms = 0;
    assert_int_equal(cn_h2__parse_timeout(CN_STR("12345678S"), &ms), 0);
    assert_int_equal(ms, 12345678000ull);
    assert_int_equal(cn_h2__parse_timeout(CN_STR("1500u"), &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(cn_h2__parse_timeout(CN_STR("1n"), &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(cn_h2__parse_timeout(CN_STR("2H"), &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(cn_h2__parse_timeout(CN_STR("123456789S"), &ms), -1);
    assert_int_equal(cn_h2__parse_timeout(CN_STR("S"), &ms), -1);
    assert_int_equal(cn_h2__parse_timeout(CN_STR("1s"), &ms), -1);
    struct cn_buf b = CN_BUF_INIT;
    cn_h2__percent_encode(&b, "a %\xc3\xa9\n");
    assert_string_equal(b.p, "a %25%C3%A9%0A");
    cn_buf_reset(&b);
    assert_int_equal(cn_h2__base64_decode(&b, CN_STR("AP96")), 0);
    assert_memory_equal(b.p, "\0\xffz", 3);
    cn_buf_reset(&b);
    assert_int_equal(cn_h2__base64_decode(&b, CN_STR("YWI")), 0); /* unpadded */
    assert_string_equal(b.p, "ab");
    assert_int_equal(cn_h2__base64_decode(&b, CN_STR("Y*")), -1);
    cn_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire),
        cmocka_unit_test(test_unary_bytes),
        cmocka_unit_test(test_big_message),
        cmocka_unit_test(test_server_stream_and_backlog),
        cmocka_unit_test(test_slow_socket),
        cmocka_unit_test(test_bidi),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_client_reset_and_metadata),
        cmocka_unit_test(test_connection_lost),
        cmocka_unit_test(test_graceful_close),
        cmocka_unit_test(test_grace_expires),
        cmocka_unit_test(test_preface_bytewise_and_http1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
