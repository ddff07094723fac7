/* fuzz_h2: arbitrary bytes as what a client sends on one connection adopted by the gRPC server
 * (src/h2): the first input byte picks the read size, the rest arrive in reads of that size
 * through an in-memory cn_stream, then EOF. Checks: no crash, no leak (ASan), the connection and
 * every call end (on_cancel or finish), the server closes. */
#include <errno.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/err.h"
#include "fuzz.h"
#include "h2/grpc.h"
#include "stream/stream_int.h"

/* ---- an in-memory stream: reads from the input, writes dropped ---------------------------- */

struct mstream {
    struct cn_stream s;
    uv_idle_t idle;
    const uint8_t *in;
    size_t len, off, chunk;
    bool eof_sent;
    struct {
        cn_stream_write_cb cb;
        void *arg;
    } w[64];
    size_t nw;
};

static void ms_complete(struct mstream *m, int status)
{
    size_t n = m->nw;
    m->nw = 0;
    for (size_t i = 0; i < n; i++)
        m->w[i].cb(&m->s, status, m->w[i].arg);
}

static void ms_idle(uv_idle_t *h)
{
    struct mstream *m = h->data;
    ms_complete(m, 0);
    if (m->s.closing) return;
    if (m->s.reading && m->off < m->len) {
        struct cn_stream_buf b = {0};
        m->s.alloc_cb(&m->s, m->chunk, &b);
        size_t n = m->len - m->off;
        if (n > m->chunk) n = m->chunk;
        if (n > b.len) n = b.len;
        memcpy(b.p, m->in + m->off, n);
        m->off += n;
        m->s.read_cb(&m->s, (ssize_t)n, &b);
    } else if (m->s.reading && !m->eof_sent) {
        struct cn_stream_buf b = {0};
        m->eof_sent = true;
        m->s.read_cb(&m->s, CN_ERR_EOF, &b);
    } else if (m->nw == 0) {
        uv_idle_stop(h);
    }
}

static int ms_read_start(struct cn_stream *s)
{
    struct mstream *m = (struct mstream *)s;
    uv_idle_start(&m->idle, ms_idle);
    return 0;
}

static void ms_read_stop(struct cn_stream *s)
{
}

static int ms_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs,
                    cn_stream_write_cb cb, void *arg)
{
    struct mstream *m = (struct mstream *)s;
    CHECK(m->nw < 64);
    m->w[m->nw].cb = cb;
    m->w[m->nw].arg = arg;
    m->nw++;
    uv_idle_start(&m->idle, ms_idle);
    return 0;
}

static size_t ms_wqs(const struct cn_stream *s)
{
    return 0;
}

static int ms_shutdown(struct cn_stream *s, cn_stream_shutdown_cb cb)
{
    return -ENOTSUP;
}

static void ms_closed(uv_handle_t *h)
{
    struct mstream *m = h->data;
    ms_complete(m, -ECANCELED);
    cn_stream__closed(&m->s);
    cn_free(m);
}

static void ms_close(struct cn_stream *s)
{
    struct mstream *m = (struct mstream *)s;
    uv_close((uv_handle_t *)&m->idle, ms_closed);
}

static int ms_peer(const struct cn_stream *s, struct sockaddr_storage *out)
{
    return -ENOTCONN;
}

static const struct cn_stream_ops ms_ops = {
    .read_start = ms_read_start,
    .read_stop = ms_read_stop,
    .write = ms_write,
    .write_queue_size = ms_wqs,
    .shutdown = ms_shutdown,
    .close = ms_close,
    .peer_addr = ms_peer,
};

/* ---- handlers ----------------------------------------------------------------------------- */

static int live;

static void h_unary(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    cn_grpc_send(c, msg, len);
    cn_grpc_finish(c, CN_GRPC_OK, "ok \xff");
}

static void h_bidi(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    if (!cn_grpc_call_data(c)) {
        cn_grpc_call_set_data(c, c);
        live++;
    }
    cn_grpc_send(c, msg, len);
    (void)cn_grpc_metadata(c, "token-bin");
}

static void h_bidi_end(struct cn_grpc_call *c, void *ctx)
{
    if (cn_grpc_call_data(c)) live--;
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void h_cancel(struct cn_grpc_call *c, void *ctx)
{
    if (cn_grpc_call_data(c)) live--;
}

static const struct cn_grpc_method methods[] = {
    {"/a.B/U", false, false, h_unary, NULL, h_cancel, NULL},
    {"/a.B/S", true, true, h_bidi, h_bidi_end, h_cancel, NULL},
};

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uv_loop_t loop;
    CHECK(uv_loop_init(&loop) == 0);
    struct cn_grpc_server *srv;
    struct cn_grpc_limits lim = {.max_recv_msg = 4096, .close_grace_ms = 1};
    CHECK(cn_grpc_server_new(&loop, &lim, methods, 2, &srv) == 0);
    struct mstream *m = CN_NEW(struct mstream);
    cn_stream__init(&m->s, &ms_ops, NULL);
    uv_idle_init(&loop, &m->idle);
    m->idle.data = m;
    m->chunk = (size_t)data[0] + 1;
    /* the 24-byte preface as the adopted head, like the HTTP server hands it over */
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    m->in = data + 1;
    m->len = size - 1;
    live = 0;
    CHECK(cn_grpc_server_adopt(srv, &m->s, preface, sizeof(preface) - 1) == 0);
    while (cn_grpc_server_conn_count(srv) > 0)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(cn_grpc_server_call_count(srv) == 0);
    CHECK(live == 0);
    bool closed = false;
    cn_grpc_server_close(srv, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed);
    CHECK(uv_loop_close(&loop) == 0);
    return 0;
}
