/* session: one HTTP/2 connection (see h2_int.h): the nghttp2 server session and its callbacks,
 * reads fed to nghttp2_session_mem_recv, frames drained into cn_stream_write with backpressure,
 * and the connection's end. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "h2/h2_int.h"

/* ---- nghttp2 callbacks (invariant 1: none of them closes the connection) ----------------- */

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user)
{
    struct conn *c = user;
    if (c->wout.len >= OUT_HIGH_WATER) return NGHTTP2_ERR_WOULDBLOCK;
    cn_buf_append(&c->wout, data, len);
    return (ssize_t)len;
}

static struct cn_grpc_call *stream_call(nghttp2_session *s, int32_t sid)
{
    return nghttp2_session_get_stream_user_data(s, sid);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    struct cn_grpc_call *call = cn_h2__call_new(c, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    struct cn_grpc_call *call = stream_call(s, f->hd.stream_id);
    if (!call) return 0;
    /* over the header limit: nghttp2 resets the stream (INTERNAL_ERROR) */
    if (cn_h2__call_header(call, name, nlen, value, vlen) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
        struct cn_grpc_call *call = stream_call(s, f->hd.stream_id);
        if (!call) break;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
            cn_h2__call_headers_done(call, end);
        else if (end) /* the client's trailers: ignored, but they end its side */
            cn_h2__call_data_done(call, true);
        break;
    }
    case NGHTTP2_DATA: {
        struct cn_grpc_call *call = stream_call(s, f->hd.stream_id);
        if (call && !call->app_done)
            cn_h2__call_data_done(call, end);
        else if (call && end)
            call->remote_closed = true;
        break;
    }
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *user)
{
    struct cn_grpc_call *call = stream_call(s, sid);
    if (call) cn_h2__call_data(call, data, len);
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct cn_grpc_call *call = stream_call(s, f->hd.stream_id);
        if (call) cn_h2__call_sent_end(call);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *user)
{
    struct cn_grpc_call *call = stream_call(s, sid);
    if (call) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        cn_h2__call_closed(call, error_code);
    }
    return 0;
}

void cn_h2__callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

/* ---- output ------------------------------------------------------------------------------ */

static void on_write(struct cn_stream *s, int status, void *arg);
static void update_read(struct conn *c);

static void start_write(struct conn *c)
{
    if (c->writing || c->closing || c->wout.len == 0) return;
    struct cn_buf t = c->wfly;
    c->wfly = c->wout;
    c->wout = t;
    cn_buf_reset(&c->wout);
    struct cn_str b = cn_str_make(c->wfly.p, c->wfly.len);
    int rc = cn_stream_write(c->s, &b, 1, on_write, c);
    if (rc != 0) {
        CN_LOGD("h2", "write failed err=\"%s\"", cn_strerror(rc));
        c->fatal = true;
        return;
    }
    c->writing = true;
}

void cn_h2__conn_flush(struct conn *c)
{
    if (c->closing) return;
    cn_list_remove(&c->dirty_link);
    if (c->head.len > 0) {
        struct cn_buf h = c->head;
        cn_buf_init(&c->head);
        cn_h2__conn_feed(c, h.p, h.len); /* comes back here */
        cn_buf_free(&h);
        return;
    }
    if (!c->fatal) {
        int rv = nghttp2_session_send(c->ngh);
        if (rv != 0) {
            CN_LOGD("h2", "session send failed err=%s", nghttp2_strerror(rv));
            c->fatal = true;
        }
    }
    if (!c->fatal) start_write(c);
    if (c->fatal || (!c->writing && c->wout.len == 0 && !nghttp2_session_want_read(c->ngh) &&
                     !nghttp2_session_want_write(c->ngh))) {
        cn_h2__conn_close(c);
        return;
    }
    update_read(c);
}

static void on_write(struct cn_stream *s, int status, void *arg)
{
    struct conn *c = arg;
    c->writing = false;
    cn_buf_reset(&c->wfly);
    if (c->wfly.cap > 4 * OUT_HIGH_WATER) cn_buf_free(&c->wfly);
    if (c->closing) return;
    if (status < 0) {
        CN_LOGD("h2", "write failed err=\"%s\"", cn_strerror(status));
        cn_h2__conn_close(c);
        return;
    }
    cn_h2__conn_flush(c); /* nghttp2 may have more now that wout has room */
}

/* ---- input ------------------------------------------------------------------------------- */

void cn_h2__conn_feed(struct conn *c, const char *p, size_t n)
{
    c->in_recv = true;
    ssize_t rv = nghttp2_session_mem_recv(c->ngh, (const uint8_t *)p, n);
    c->in_recv = false;
    if (rv < 0) {
        /* a bad preface, a flood, an nghttp2 failure: nothing sensible to answer */
        CN_LOGD("h2", "session recv failed err=%s", nghttp2_strerror((int)rv));
        c->fatal = true;
    }
    cn_h2__conn_flush(c);
}

static void on_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    struct conn *c = s->data;
    buf->p = c->srv->rbuf;
    buf->len = READ_BUF_LEN;
}

static void on_read(struct cn_stream *s, ssize_t nread, const struct cn_stream_buf *buf)
{
    struct conn *c = s->data;
    if (c->closing) return;
    if (nread > 0) {
        cn_h2__conn_feed(c, buf->p, (size_t)nread);
    } else if (nread < 0) {
        /* EOF or an error: HTTP/2 has no half-close, so the calls are lost */
        if (nread != CN_ERR_EOF) CN_LOGD("h2", "read failed err=\"%s\"", cn_strerror((int)nread));
        c->peer_eof = true;
        cn_h2__conn_close(c);
    }
}

/* Reads while the output held here (in flight and gathering) is under its high water: a peer
 * that does not read our answers cannot make us queue without bound. */
static void update_read(struct conn *c)
{
    if (c->closing || c->peer_eof || c->head.len > 0) return;
    bool want = c->wout.len + (c->writing ? c->wfly.len : 0) < OUT_HIGH_WATER;
    if (want && !c->reading) {
        if (cn_stream_read_start(c->s, on_alloc, on_read) != 0) {
            c->fatal = true;
            cn_h2__kick(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        cn_stream_read_stop(c->s);
        c->reading = false;
    }
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void conn_closed(struct cn_stream *s)
{
    struct conn *c = s->data;
    struct cn_grpc_server *srv = c->srv;
    cn_buf_free(&c->head);
    cn_buf_free(&c->wout);
    cn_buf_free(&c->wfly);
    cn_list_remove(&c->link);
    srv->nconns--;
    cn_free(c);
    cn_h2__server_maybe_done(srv);
}

void cn_h2__conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    cn_list_remove(&c->dirty_link);
    /* every call the handlers own gets on_cancel (they may touch other calls of this
     * connection: sends answer CN_ERR_STOPPED now) */
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &c->calls) {
        cn_h2__call_abort(CN_CONTAINER_OF(it, struct cn_grpc_call, link));
    }
    nghttp2_session_del(c->ngh); /* runs no callbacks */
    c->ngh = NULL;
    cn_stream_close(c->s, conn_closed);
}

void cn_h2__conn_goaway(struct conn *c)
{
    if (c->closing || c->goaway) return;
    c->goaway = true;
    nghttp2_submit_goaway(c->ngh, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->ngh), NGHTTP2_NO_ERROR, NULL,
                          0);
    cn_h2__kick(c);
}

struct conn *cn_h2__conn_new(struct cn_grpc_server *srv, struct cn_stream *s)
{
    struct conn *c = CN_NEW(struct conn);
    c->srv = srv;
    c->s = s;
    s->data = c;
    cn_list_init(&c->dirty_link);
    cn_list_init(&c->calls);
    int rv = nghttp2_session_server_new2(&c->ngh, srv->cbs, c, srv->opt);
    CN_ASSERT(rv == 0); /* fails only without memory */
    /* etcd's grpc-go server announces MAX_CONCURRENT_STREAMS; the bigger windows let a 1 MiB
     * message (or a burst of them) arrive in one round trip */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 16384}, /* etcd 3.4 sends it, though the default */
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->limits.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, srv->limits.initial_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)srv->limits.max_header_bytes},
    };
    nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->ngh, NGHTTP2_FLAG_NONE, 0,
                                          (int32_t)srv->limits.conn_window);
    cn_list_insert_tail(&srv->conns, &c->link);
    srv->nconns++;
    (void)cn_stream_set_nodelay(s, true); /* best effort: replies are small and latency-bound */
    return c;
}
