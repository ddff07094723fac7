/* stream_int: what a stream implementation (tcp.c; tls.c next) provides behind struct cn_stream.
 * Private to src/stream: users see only stream.h. */
#ifndef CN_STREAM_STREAM_INT_H
#define CN_STREAM_STREAM_INT_H

#include "stream.h"

/* The wrappers in stream.c check the state (closing, reading) and keep the callbacks in struct
 * cn_stream before they call these, so an implementation only moves bytes. */
struct cn_stream_ops {
    /* s->alloc_cb and s->read_cb are set; called only when not reading. */
    int (*read_start)(struct cn_stream *s);
    void (*read_stop)(struct cn_stream *s);
    /* 1 <= nbufs <= CN_STREAM_MAX_BUFS. */
    int (*write)(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs,
                 cn_stream_write_cb cb, void *arg);
    /* May be NULL: cn_stream_try_write then answers -EAGAIN. */
    int (*try_write)(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs);
    size_t (*write_queue_size)(const struct cn_stream *s);
    int (*shutdown)(struct cn_stream *s, cn_stream_shutdown_cb cb);
    /* s->closing and s->close_cb are set. Cancels what is pending (rule 3 of stream.h) and, once
     * nothing of the stream is left on the loop, calls cn_stream__closed(s) and frees s. */
    void (*close)(struct cn_stream *s);
    /* May be NULL (no such option): 0. */
    int (*set_nodelay)(struct cn_stream *s, bool on);
    int (*peer_addr)(const struct cn_stream *s, struct sockaddr_storage *out);
};

/* Fills the common part of a new stream. */
void cn_stream__init(struct cn_stream *s, const struct cn_stream_ops *ops, void *data);

/* Runs the owner's close callback; the implementation frees s right after. */
void cn_stream__closed(struct cn_stream *s);

/* libuv's result codes as cairn's: UV_EOF is CN_ERR_EOF, getaddrinfo's EAI_* are
 * CN_ERR_NOT_FOUND; everything else already is -errno (libuv on Unix). */
int cn_stream__err(int uv_rc);

#endif
