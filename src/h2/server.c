/* server: the gRPC server object (see grpc.h): limits, method table, the connections it adopted,
 * the dirty list flushed from an idle handle, and the graceful close with its grace timer. */
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "h2/h2_int.h"

static void on_idle(uv_idle_t *idle)
{
    struct cn_grpc_server *srv = idle->data;
    while (!cn_list_empty(&srv->dirty)) {
        struct conn *c = CN_CONTAINER_OF(srv->dirty.next, struct conn, dirty_link);
        cn_h2__conn_flush(c); /* takes c off the list (or closes it) */
    }
    uv_idle_stop(idle);
}

void cn_h2__kick(struct conn *c)
{
    struct cn_grpc_server *srv = c->srv;
    if (c->closing || !cn_list_empty(&c->dirty_link) || srv->handles_closed) return;
    cn_list_insert_tail(&srv->dirty, &c->dirty_link);
    uv_idle_start(&srv->idle, on_idle);
}

int cn_grpc_server_new(uv_loop_t *loop, const struct cn_grpc_limits *limits,
                       const struct cn_grpc_method *methods, size_t n, struct cn_grpc_server **out)
{
    for (size_t i = 0; i < n; i++)
        if (!methods[i].path || methods[i].path[0] != '/' || !methods[i].on_message)
            return CN_ERR_INVAL;
    struct cn_grpc_server *srv = CN_NEW(struct cn_grpc_server);
    srv->loop = loop;
    if (limits) srv->limits = *limits;
    struct cn_grpc_limits *l = &srv->limits;
    if (!l->max_recv_msg) l->max_recv_msg = 4 * 1024 * 1024;
    if (!l->max_send_msg) l->max_send_msg = INT32_MAX;
    if (!l->max_concurrent_streams) l->max_concurrent_streams = UINT32_MAX;
    if (!l->initial_window) l->initial_window = 1024 * 1024;
    if (l->initial_window > INT32_MAX) l->initial_window = INT32_MAX;
    if (!l->conn_window) l->conn_window = 16 * 1024 * 1024;
    if (l->conn_window > INT32_MAX) l->conn_window = INT32_MAX;
    if (!l->close_grace_ms) l->close_grace_ms = 2000;
    if (!l->max_header_bytes) l->max_header_bytes = 16 * 1024;
    srv->methods = methods;
    srv->nmethods = n;
    nghttp2_session_callbacks_new(&srv->cbs);
    cn_h2__callbacks(srv->cbs);
    nghttp2_option_new(&srv->opt);
    /* defaults otherwise: nghttp2 checks the client magic itself (the adopted head carries it),
     * acknowledges SETTINGS and PINGs, and bounds queued ACKs against floods */
    /* grpc-go clients send :authority as they were given it (etcdctl --endpoints
     * http://127.0.0.1:2379 sends "http://127.0.0.1:2379"), which nghttp2's HTTP messaging checks
     * refuse with a stream reset; grpc-go servers take it. The gRPC layer checks the
     * pseudo-headers it uses itself (call.c). */
    nghttp2_option_set_no_http_messaging(srv->opt, 1);
    cn_list_init(&srv->conns);
    cn_list_init(&srv->dirty);
    uv_idle_init(loop, &srv->idle);
    srv->idle.data = srv;
    uv_timer_init(loop, &srv->grace);
    srv->grace.data = srv;
    srv->nhandles = 2;
    srv->rbuf = cn_xmalloc(READ_BUF_LEN);
    *out = srv;
    return 0;
}

int cn_grpc_server_adopt(struct cn_grpc_server *srv, struct cn_stream *s, const void *head,
                         size_t head_len)
{
    if (srv->closing) return CN_ERR_STOPPED;
    cn_stream_read_stop(s); /* reading restarts with this module's callbacks */
    struct conn *c = cn_h2__conn_new(srv, s);
    if (head_len > 0) cn_buf_append(&c->head, head, head_len);
    cn_h2__kick(c); /* the head is fed, and reading starts, from the loop */
    return 0;
}

int cn_grpc_server_adopt_hook(void *srv, struct cn_stream *s, const void *head, size_t head_len)
{
    return cn_grpc_server_adopt(srv, s, head, head_len);
}

static void handle_closed(uv_handle_t *h)
{
    struct cn_grpc_server *srv = h->data;
    if (--srv->nhandles > 0) return;
    void (*cb)(void *) = srv->close_cb;
    void *arg = srv->close_arg;
    nghttp2_session_callbacks_del(srv->cbs);
    nghttp2_option_del(srv->opt);
    cn_free(srv->rbuf);
    cn_free(srv);
    if (cb) cb(arg);
}

void cn_h2__server_maybe_done(struct cn_grpc_server *srv)
{
    if (!srv->closing || srv->nconns > 0 || srv->handles_closed) return;
    srv->handles_closed = true;
    uv_close((uv_handle_t *)&srv->idle, handle_closed);
    uv_close((uv_handle_t *)&srv->grace, handle_closed);
}

static void on_grace(uv_timer_t *t)
{
    struct cn_grpc_server *srv = t->data;
    CN_LOGD("h2", "close grace over conns=%zu calls=%zu", srv->nconns, srv->ncalls);
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &srv->conns) {
        cn_h2__conn_close(CN_CONTAINER_OF(it, struct conn, link));
    }
}

void cn_grpc_server_close(struct cn_grpc_server *srv, void (*cb)(void *arg), void *arg)
{
    if (srv->closing) return;
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_arg = arg;
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &srv->conns) {
        cn_h2__conn_goaway(CN_CONTAINER_OF(it, struct conn, link));
    }
    uv_timer_start(&srv->grace, on_grace, srv->limits.close_grace_ms, 0);
    cn_h2__server_maybe_done(srv); /* no connection: the handles close now, cb runs later */
}

size_t cn_grpc_server_conn_count(const struct cn_grpc_server *srv)
{
    return srv->nconns;
}

size_t cn_grpc_server_call_count(const struct cn_grpc_server *srv)
{
    return srv->ncalls;
}
