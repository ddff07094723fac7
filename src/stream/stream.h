/* stream: the byte-stream layer under everything cairn says over the network (the HTTP server
 * and client, the peer transport). A struct cn_stream is a connected, reliable, ordered byte
 * stream with a small vtable behind it: TCP today (cn_stream_tcp_dial, cn_stream_tcp_listen),
 * TLS next (OpenSSL memory BIOs over a TCP stream), so that a user written against this header
 * does not change when its bytes start being encrypted.
 *
 * Shape (libuv's uv_stream_t, which the TCP stream wraps):
 *   - reads go through an alloc callback, so the reader owns the buffers (one shared buffer per
 *     server, or a growing per-connection buffer) and an idle stream holds none;
 *   - writes take a vector of borrowed buffers and complete through a callback;
 *   - closing is asynchronous: the stream's memory is released only after its close callback.
 *
 * Lifetimes and callbacks
 *  1. A stream belongs to whoever created it (cn_stream_tcp_dial) or was handed it (the accept
 *     callback of a listener, cn_http_server_adopt) until that owner calls cn_stream_close; the
 *     owner must close it exactly once, whatever state it is in, failed dials included.
 *  2. Every callback runs from the loop thread, never inside the call that started the operation
 *     (cn_stream_write, cn_stream_shutdown, cn_stream_tcp_dial, cn_stream_close).
 *  3. After cn_stream_close, no read callback runs. A write, shutdown or connect that was still
 *     pending completes with -ECANCELED, before the close callback.
 *  4. The close callback is the stream's last callback; the stream is freed when it returns.
 *     Any call may be made from inside any callback of the same stream, cn_stream_close included.
 *
 * Errors are 0 or negative: -errno from the OS (-ECONNRESET, -EPIPE, ...) or a CN_ERR_* code
 * (CN_ERR_EOF for the peer's end of stream, CN_ERR_NOT_FOUND for a host name that does not
 * resolve, CN_ERR_TIMEOUT for a connect attempt over its limit).
 *
 * Threading: a stream and its listener live on the loop thread that created them. */
#ifndef CN_STREAM_STREAM_H
#define CN_STREAM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "common/str.h"

struct cn_stream;
struct cn_stream_ops;

/* A writable buffer a reader lends to the stream for one read. */
struct cn_stream_buf {
    char *p;
    size_t len;
};

/* Asks the reader for a buffer (hint: the size the stream would like). Leaving buf->len 0 makes
 * the read fail with -ENOBUFS. */
typedef void (*cn_stream_alloc_cb)(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf);
/* nread > 0: that many bytes arrived at buf->p. 0: nothing was read (buf is handed back).
 * CN_ERR_EOF: the peer ended its side; reading has stopped (writing may go on). Other negative
 * values: the stream failed; close it. buf is the one the alloc callback gave (its p may be NULL
 * for an error before any allocation). */
typedef void (*cn_stream_read_cb)(struct cn_stream *s, ssize_t nread,
                                  const struct cn_stream_buf *buf);
/* status: 0 once every byte of the write was handed to the OS (or the layer below), else
 * negative (-ECANCELED when the stream was closed first). arg is cn_stream_write's. */
typedef void (*cn_stream_write_cb)(struct cn_stream *s, int status, void *arg);
typedef void (*cn_stream_shutdown_cb)(struct cn_stream *s, int status);
/* status 0: connected, the stream may be read and written. Negative: the dial failed (the stream
 * must still be closed). */
typedef void (*cn_stream_connect_cb)(struct cn_stream *s, int status);
typedef void (*cn_stream_close_cb)(struct cn_stream *s);

/* The most buffers one cn_stream_write or cn_stream_try_write takes. */
#define CN_STREAM_MAX_BUFS 16

struct cn_stream {
    /* public */
    void *data; /* the owner's context; the stream never reads it */
    /* private: set by cn_stream__init and the functions below, read by implementations */
    const struct cn_stream_ops *ops;
    cn_stream_alloc_cb alloc_cb;
    cn_stream_read_cb read_cb;
    cn_stream_close_cb close_cb;
    bool reading; /* between read_start and read_stop */
    bool closing; /* cn_stream_close was called */
};

/* Starts (or, while reading, redirects) reading: every read goes to alloc_cb then read_cb until
 * cn_stream_read_stop or cn_stream_close. Returns 0, -ENOTCONN before the stream is connected,
 * -EBADF after cn_stream_close. */
int cn_stream_read_start(struct cn_stream *s, cn_stream_alloc_cb alloc_cb,
                         cn_stream_read_cb read_cb);
/* Stops reading: no read callback runs after this returns (a no-op when not reading). */
void cn_stream_read_stop(struct cn_stream *s);

/* Queues nbufs buffers (at most CN_STREAM_MAX_BUFS; the array is copied, the bytes are borrowed
 * and must stay valid and unchanged until cb runs). Writes leave in the order they were queued.
 * Returns 0 and cb runs exactly once, or a negative error and cb never runs: -EBADF after
 * cn_stream_close, -EPIPE after cn_stream_shutdown, -ENOTCONN before the stream is connected. */
int cn_stream_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs,
                    cn_stream_write_cb cb, void *arg);
/* Writes what can be written now without blocking, only if nothing is queued. Returns the number
 * of bytes taken (0 < n <= total; the rest is the caller's), -EAGAIN when none could be (or the
 * stream cannot write in place, as a TLS stream), or another negative error (as for write). */
int cn_stream_try_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs);
/* Bytes accepted by cn_stream_write and not yet handed to the OS: the stream's output backlog. */
size_t cn_stream_write_queue_size(const struct cn_stream *s);

/* Ends the write side once every queued write is out (a FIN for TCP; TLS will send its
 * close_notify first); reading goes on until the peer's EOF. cb runs once, like a write's.
 * Returns 0, or a negative error and cb never runs (-EBADF after close, -ENOTCONN). */
int cn_stream_shutdown(struct cn_stream *s, cn_stream_shutdown_cb cb);

/* Closes the stream (see the lifetime rules above); cb may be NULL. Must be called once. */
void cn_stream_close(struct cn_stream *s, cn_stream_close_cb cb);

/* Disables Nagle's algorithm (on) or enables it. 0 or a negative error. */
int cn_stream_set_nodelay(struct cn_stream *s, bool on);
/* The remote address of a connected stream. 0, -ENOTCONN, or another negative error. */
int cn_stream_peer_addr(const struct cn_stream *s, struct sockaddr_storage *out);

/* ---- TCP ------------------------------------------------------------------------------------ */

/* Dials host:port and makes *out (set before this returns, data = data) a stream that connects.
 * host is an IP literal (IPv6 without brackets), used as is, or a name resolved with
 * uv_getaddrinfo on the thread pool (never on the loop). The first addresses it resolves to (at
 * most 4) are tried in order until one accepts; a refused or failed attempt moves on to the next,
 * and cb gets the last attempt's error. attempt_timeout_ms (0: none) limits each TCP connect
 * attempt: one over it ends the dial with CN_ERR_TIMEOUT. cb runs exactly once (rule 2), with
 * CN_ERR_NOT_FOUND when the name does not resolve. Returns 0; CN_ERR_INVAL (host NULL, empty or
 * longer than 255 bytes), and then nothing was created. */
int cn_stream_tcp_dial(uv_loop_t *loop, const char *host, uint16_t port,
                       uint64_t attempt_timeout_ms, cn_stream_connect_cb cb, void *data,
                       struct cn_stream **out);

struct cn_stream_listener {
    /* public */
    void *data; /* the owner's context */
};

/* A connection arrived: status 0 and s is a connected stream that now belongs to the callee
 * (rule 1; its data is NULL), or status < 0 (accept failed, s NULL; the listener goes on). */
typedef void (*cn_stream_accept_cb)(struct cn_stream_listener *l, int status, struct cn_stream *s);

/* Binds addr (SO_REUSEADDR; ipv6_only sets IPV6_V6ONLY for an IPv6 address) and listens with the
 * given backlog. Returns 0 and *out (data = data), or a negative error (-EADDRINUSE,
 * -EADDRNOTAVAIL, -EAFNOSUPPORT, ...) and nothing the caller must close. */
int cn_stream_tcp_listen(uv_loop_t *loop, const struct sockaddr *addr, bool ipv6_only, int backlog,
                         cn_stream_accept_cb cb, void *data, struct cn_stream_listener **out);
/* The address the listener is bound to (its port, after binding port 0). 0 or negative. */
int cn_stream_listener_addr(const struct cn_stream_listener *l, struct sockaddr_storage *out);
/* Stops listening; cb (may be NULL) runs from the loop, and l is freed after it returns. */
void cn_stream_listener_close(struct cn_stream_listener *l,
                              void (*cb)(struct cn_stream_listener *l));

#endif
