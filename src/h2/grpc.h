/* grpc: cairn's gRPC server: HTTP/2 cleartext (prior knowledge, as etcd's client port takes it)
 * on libnghttp2, inside the libuv loop, no threads. The HTTP/1.1 server sniffs the 24-byte
 * HTTP/2 preface and hands such a connection here (cn_grpc_server_adopt); this module runs one
 * nghttp2 server session per connection, turns each HTTP/2 stream into a gRPC call, routes it by
 * its :path through a method table, and carries length-prefixed messages both ways. It knows no
 * protobuf schema: handlers get and send message bytes (cn_grpc_send_pb packs a protobuf-c
 * message in place).
 *
 * What the wire gets, as from etcd's grpc-go server:
 *   - SETTINGS MAX_CONCURRENT_STREAMS (limits.max_concurrent_streams, etcd: 2^32-1); PINGs are
 *     answered; flow control both ways (nghttp2 sends WINDOW_UPDATE as messages are consumed, and
 *     replies leave only within the client's windows); GOAWAY before the server closes.
 *   - A reply is HEADERS(:status 200, content-type application/grpc), DATA (messages), trailers
 *     (grpc-status, percent-encoded grpc-message) with END_STREAM; a call that ends before it sent
 *     a message gets one Trailers-Only HEADERS frame. A server that finishes before the client
 *     ended its side follows the trailers with RST_STREAM(NO_ERROR).
 *   - Errors found here, with grpc-go's codes and messages: unknown path -> 12 "unknown service
 *     S" / "unknown method M for service S"; content-type not application/grpc* -> HTTP 415;
 *     a message over limits.max_recv_msg -> 8 "grpc: received message larger than max (N vs.
 *     M)"; compressed flag without grpc-encoding -> 13, with an encoding we lack -> 12 (plus
 *     grpc-accept-encoding); a malformed grpc-timeout -> 13; the grpc-timeout passing -> 4.
 *
 * Calls and their lifetime (the contract every handler relies on)
 *  1. A call starts when a request's HEADERS name a method of the table. Its first callback is
 *     on_message (or on_half_close, or on_cancel). All callbacks run on the loop thread, from
 *     this module's read, timer and close paths, never from inside a cn_grpc_* call.
 *  2. The handler owns the call until it calls cn_grpc_finish or until on_cancel returns,
 *     whichever comes first; after either the call pointer is dead and must not be passed to any
 *     function (the memory itself lives on inside this module until the stream closes).
 *  3. on_cancel is the last callback and means the call is over without a finish: the client
 *     reset the stream (RST_STREAM), the deadline passed (the client then gets status 4 from this
 *     module), the connection was lost, or the server closed past its grace period. The handler
 *     must not call cn_grpc_finish for it (nor inside it); it frees what it hung on the call.
 *  4. on_message's bytes are borrowed for the duration of the callback. Messages arrive in order,
 *     one callback each (an empty message has len 0). For a method that is not client_stream,
 *     on_message runs at most once (later messages are dropped, as grpc-go's unary path reads
 *     one), and a request that ends without one gets 13 from this module (only on_cancel runs).
 *     A message is delivered once the DATA frame that completes it has arrived. on_cancel may be
 *     the first callback of a call (its first message was over the limit, say): a handler must
 *     not assume on_message ran. Inside on_message the handler may finish the call; no more
 *     messages are delivered then.
 *  5. on_half_close (optional) runs once when the client ended its side (END_STREAM), after the
 *     last on_message. The call stays open: the handler still sends and finishes.
 *  6. cn_grpc_send / cn_grpc_send_pb / cn_grpc_finish may be called from inside any callback of
 *     any call (the handler's own on_message included: answering synchronously is fine) or from
 *     any later loop iteration (a timer, another connection's callback, a Raft apply). They never
 *     call back into the handler. Output is batched: what is queued during one loop iteration
 *     leaves in as few writes as the windows allow.
 *  7. Sends are queued per call without a bound (the handler bounds them: a watch checks
 *     cn_grpc_call_backlog and stops feeding a slow consumer). Bytes leave only within the
 *     client's HTTP/2 windows and while the connection's output backlog is under its high water.
 *  8. cn_grpc_server_close: GOAWAY to every connection, new streams refused, adopt refused; calls
 * in flight may finish within limits.close_grace_ms, after which the rest get on_cancel and the
 *     connections close. Its callback runs from the loop once everything is closed.
 *
 * Errors are 0 or negative (src/common/err.h). Threading: one loop thread, like everything. */
#ifndef CN_H2_GRPC_H
#define CN_H2_GRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/str.h"
#include "stream/stream.h"

struct cn_grpc_server;
struct cn_grpc_call;

#include "common/grpc_status.h"

/* One entry of the method table. The table (and every string in it) is borrowed and must outlive
 * the server. */
struct cn_grpc_method {
    const char *path;   /* "/etcdserverpb.KV/Range" */
    bool client_stream; /* many request messages (Watch, LeaseKeepAlive) */
    bool server_stream; /* many reply messages (informative: finish works the same either way) */
    /* One request message; msg is borrowed for the callback (rule 4). Required. */
    void (*on_message)(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx);
    /* The client ended its side (rule 5); may be NULL. */
    void (*on_half_close)(struct cn_grpc_call *c, void *ctx);
    /* The call ended without a finish (rule 3): last callback; may be NULL only for a handler
     * that always finishes synchronously inside on_message. */
    void (*on_cancel)(struct cn_grpc_call *c, void *ctx);
    void *ctx;
};

/* Limits; a zero field takes the default named after it. */
struct cn_grpc_limits {
    size_t max_recv_msg;             /* request message bytes; 4 MiB (grpc-go's default; etcd
                                        passes --max-request-bytes + 512 KiB) */
    size_t max_send_msg;             /* reply message bytes; INT32_MAX (as etcd) */
    uint32_t max_concurrent_streams; /* SETTINGS value; 2^32-1 (as etcd) */
    uint32_t initial_window;         /* per-stream receive window we announce; 1 MiB */
    uint32_t conn_window;            /* connection receive window; 16 MiB */
    uint64_t close_grace_ms;         /* how long close lets calls finish; 2000 */
    size_t max_header_bytes; /* request header block (SETTINGS_MAX_HEADER_LIST_SIZE); 16 KiB */
};

/* Creates a server on loop with a copy of *limits (NULL: all defaults) and a borrowed method table
 * of n entries (paths unique). Returns 0 and *out, or CN_ERR_INVAL. */
int cn_grpc_server_new(uv_loop_t *loop, const struct cn_grpc_limits *limits,
                       const struct cn_grpc_method *methods, size_t n, struct cn_grpc_server **out);

/* Takes over a connected stream whose first bytes (head, head_len, copied; normally the 24-byte
 * preface and whatever came with it) were already read by the caller. From 0 on the stream is the
 * server's (it closes it; s->data is the server's), reading or not. Returns 0, or CN_ERR_STOPPED
 * once the server is closing (then the caller keeps the stream). head is parsed from the loop,
 * not inside this call (rule 1). */
int cn_grpc_server_adopt(struct cn_grpc_server *srv, struct cn_stream *s, const void *head,
                         size_t head_len);

/* cn_grpc_server_adopt with the server as a void *, the shape of src/http's cn_http_h2_hook:
 * cn_http_server_set_h2(http, cn_grpc_server_adopt_hook, grpc) shares the HTTP port. */
int cn_grpc_server_adopt_hook(void *srv, struct cn_stream *s, const void *head, size_t head_len);

/* Graceful close (rule 8). cb (may be NULL) runs once, from the loop, never inside this call,
 * after every connection and handle is closed; the server is freed right after cb returns. */
void cn_grpc_server_close(struct cn_grpc_server *srv, void (*cb)(void *arg), void *arg);

/* Number of open connections / calls the handlers still own (for tests and metrics). */
size_t cn_grpc_server_conn_count(const struct cn_grpc_server *srv);
size_t cn_grpc_server_call_count(const struct cn_grpc_server *srv);

/* Queues one reply message (len bytes copied; the first send also queues the response HEADERS).
 * Returns 0; CN_ERR_TOO_LARGE past limits.max_send_msg (nothing queued; the call goes on, the
 * handler usually finishes it with 8); CN_ERR_STOPPED when the connection is going away (the
 * handler's on_cancel is coming or came already: nothing to do). */
int cn_grpc_send(struct cn_grpc_call *c, const void *msg, size_t len);

/* The same for a protobuf-c message, packed straight into the call's queue behind its 5-byte
 * prefix (no intermediate buffer). */
int cn_grpc_send_pb(struct cn_grpc_call *c, const ProtobufCMessage *m);

/* Ends the call with status (CN_GRPC_*) and message (NUL-terminated, may be NULL or "": no
 * grpc-message; percent-encoded on the wire). Messages queued before leave first. After this the
 * call is dead for the handler (rule 2); no on_cancel follows. */
void cn_grpc_finish(struct cn_grpc_call *c, int status, const char *message);

/* A request header (metadata), name in lower case ("token", "hasleader"); a "-bin" header's value
 * comes base64-decoded. The bytes live as long as the call. Absent: {NULL, 0}. With several
 * headers of one name, the first. */
struct cn_str cn_grpc_metadata(const struct cn_grpc_call *c, const char *name);

/* The call's :path ("/etcdserverpb.KV/Range"), its method entry. */
const struct cn_grpc_method *cn_grpc_call_method(const struct cn_grpc_call *c);

/* The handler's own pointer on the call (NULL at start). */
void cn_grpc_call_set_data(struct cn_grpc_call *c, void *data);
void *cn_grpc_call_data(const struct cn_grpc_call *c);

/* Reply bytes this call queued that nghttp2 has not taken yet (waiting for the windows or the
 * socket): what a watch compares with its cap before it sends more. */
size_t cn_grpc_call_backlog(const struct cn_grpc_call *c);

/* The deadline from grpc-timeout as a uv_now() time in ms, or 0 when the client set none. */
uint64_t cn_grpc_call_deadline_ms(const struct cn_grpc_call *c);

#endif
