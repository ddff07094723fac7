/* stream: the implementation-independent half of struct cn_stream: state checks and the callbacks
 * kept for the implementation (see stream_int.h), so that every implementation honours the same
 * contract (stream.h). */
#include <errno.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/stream_int.h"

void cn_stream__init(struct cn_stream *s, const struct cn_stream_ops *ops, void *data)
{
    s->data = data;
    s->ops = ops;
    s->alloc_cb = NULL;
    s->read_cb = NULL;
    s->close_cb = NULL;
    s->reading = false;
    s->closing = false;
}

void cn_stream__closed(struct cn_stream *s)
{
    if (s->close_cb) s->close_cb(s);
}

int cn_stream__err(int uv_rc)
{
    if (uv_rc == UV_EOF) return CN_ERR_EOF;
    if (uv_rc == UV_EAI_CANCELED) return -ECANCELED;
    if (uv_rc <= UV_EAI_ADDRFAMILY && uv_rc >= UV_EAI_PROTOCOL) return CN_ERR_NOT_FOUND;
    return uv_rc;
}

int cn_stream_read_start(struct cn_stream *s, cn_stream_alloc_cb alloc_cb,
                         cn_stream_read_cb read_cb)
{
    CN_ASSERT(alloc_cb && read_cb);
    if (s->closing) return -EBADF;
    s->alloc_cb = alloc_cb;
    s->read_cb = read_cb;
    if (s->reading) return 0; /* redirected */
    int rc = s->ops->read_start(s);
    if (rc == 0) s->reading = true;
    return rc;
}

void cn_stream_read_stop(struct cn_stream *s)
{
    if (!s->reading || s->closing) return;
    s->reading = false;
    s->ops->read_stop(s);
}

int cn_stream_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs,
                    cn_stream_write_cb cb, void *arg)
{
    CN_ASSERT(cb != NULL);
    if (nbufs == 0 || nbufs > CN_STREAM_MAX_BUFS) return CN_ERR_INVAL;
    if (s->closing) return -EBADF;
    return s->ops->write(s, bufs, nbufs, cb, arg);
}

int cn_stream_try_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs)
{
    if (nbufs == 0 || nbufs > CN_STREAM_MAX_BUFS) return CN_ERR_INVAL;
    if (s->closing) return -EBADF;
    if (s->ops->try_write == NULL) return -EAGAIN;
    return s->ops->try_write(s, bufs, nbufs);
}

size_t cn_stream_write_queue_size(const struct cn_stream *s)
{
    return s->ops->write_queue_size(s);
}

int cn_stream_shutdown(struct cn_stream *s, cn_stream_shutdown_cb cb)
{
    CN_ASSERT(cb != NULL);
    if (s->closing) return -EBADF;
    return s->ops->shutdown(s, cb);
}

void cn_stream_close(struct cn_stream *s, cn_stream_close_cb cb)
{
    CN_ASSERT(!s->closing);
    s->closing = true;
    s->reading = false;
    s->close_cb = cb;
    s->ops->close(s);
}

int cn_stream_set_nodelay(struct cn_stream *s, bool on)
{
    if (s->closing) return -EBADF;
    return s->ops->set_nodelay ? s->ops->set_nodelay(s, on) : 0;
}

int cn_stream_peer_addr(const struct cn_stream *s, struct sockaddr_storage *out)
{
    if (s->closing) return -EBADF;
    return s->ops->peer_addr(s, out);
}
