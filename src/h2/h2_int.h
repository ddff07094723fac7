/* h2_int: what the files of src/h2 share: server.c (the server, its connections list, close),
 * session.c (one connection: nghttp2 session, reads, writes, backpressure), call.c (a gRPC call
 * on one HTTP/2 stream: headers, messages, replies, deadline) and wire.c (pure gRPC wire helpers).
 *
 * Design notes
 *
 * Output. nghttp2 produces frames through its send callback (session_send) into conn.wout; one
 * cn_stream_write is in flight at a time (conn.wfly) and the next batch gathers in wout behind
 * it. The send callback answers WOULDBLOCK once wout holds OUT_HIGH_WATER bytes, so a slow socket
 * leaves the rest inside nghttp2's streams (each call's queue, call.out). Reading stops while
 * wout plus the write in flight reach the high water (a peer that sends PINGs or requests
 * without reading our answers cannot grow our memory), and resumes when the write completes.
 *
 * Flushing. Nothing here writes from inside an nghttp2 callback or a handler's cn_grpc_* call:
 * those only mark the connection dirty (conn_kick); the dirty list is flushed right after each
 * read has been fed to nghttp2, and from the server's idle handle for sends made at any other
 * time, so the replies of one loop iteration leave together.
 *
 * Call lifetime (see grpc.h rules 2-3). struct call is the nghttp2 stream's user data from its
 * request HEADERS until nghttp2's on_stream_close; app_done says the handler let go of it (it
 * finished, or on_cancel ran). It is freed when both are over: in on_stream_close when app_done,
 * or right after on_cancel when the stream is already closed. A connection that goes away gives
 * on_cancel to every call the handler still owns, deletes the nghttp2 session (which runs no
 * callbacks) and frees the calls.
 *
 * Invariants:
 *  1. conn_close (session.c) is never called from inside an nghttp2 callback: those set
 *     conn.fatal and the read/flush paths close after nghttp2 returns.
 *  2. A conn is freed only in its stream's close callback.
 *  3. call.out holds reply bytes from call.out_off on; nghttp2's data source copies from there. */
#ifndef CN_H2_H2_INT_H
#define CN_H2_H2_INT_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/list.h"
#include "common/str.h"
#include "h2/grpc.h"
#include "stream/stream.h"

#define OUT_HIGH_WATER (256 * 1024) /* conn output held before nghttp2 is told to wait */
#define READ_BUF_LEN   (64 * 1024)
#define MAX_HEADERS    100 /* request headers kept per call */

struct conn;

struct hdr {
    size_t name_off, name_len, val_off, val_len; /* in call.arena */
};

struct dl_timer; /* a call's deadline timer, freed from its close callback */

struct cn_grpc_call {
    struct conn *conn;
    struct cn_list link; /* conn->calls */
    int32_t stream_id;
    const struct cn_grpc_method *m; /* NULL until the headers named a method */
    void *data;
    /* request */
    struct cn_buf arena; /* path, header names and values (decoded for -bin) */
    struct hdr *hdrs;
    size_t nhdrs;
    size_t path_off, path_len;
    size_t ctype_off, ctype_len; /* content-type (has_ctype) */
    bool has_ctype, has_timeout, bad_timeout, bad_method;
    uint64_t timeout_ms;
    uint64_t deadline_ms;
    size_t enc_off, enc_len; /* grpc-encoding */
    bool has_enc;
    size_t hdr_bytes;
    struct cn_buf rbuf; /* request bytes not yet delivered as messages */
    size_t nmsgs;       /* messages delivered */
    /* reply */
    struct cn_buf out; /* queued reply messages, from out_off on */
    size_t out_off;
    bool headers_sent; /* the response HEADERS were submitted */
    bool finishing;    /* trailers to go once out is drained */
    int status;
    char *message;   /* grpc-message (raw) to send with the trailers */
    bool accept_enc; /* add grpc-accept-encoding to the trailers */
    /* state */
    bool app_done;      /* finished, or on_cancel delivered (grpc.h rule 2) */
    bool remote_closed; /* the client's END_STREAM arrived */
    bool stream_closed; /* nghttp2 closed the stream */
    bool trailers_sent; /* END_STREAM left */
    bool counted;       /* counted in srv->ncalls */
    struct dl_timer *timer;
};

struct conn {
    struct cn_grpc_server *srv;
    struct cn_stream *s;
    nghttp2_session *ngh;
    struct cn_list link;       /* srv->conns */
    struct cn_list dirty_link; /* srv->dirty */
    struct cn_list calls;      /* struct cn_grpc_call.link */
    struct cn_buf head;        /* bytes handed over with adopt, fed from the idle */
    struct cn_buf wout, wfly;
    bool writing, reading, closing, fatal, goaway, in_recv, peer_eof;
};

struct cn_grpc_server {
    uv_loop_t *loop;
    struct cn_grpc_limits limits;
    const struct cn_grpc_method *methods;
    size_t nmethods;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    struct cn_list conns;
    size_t nconns;
    size_t ncalls;
    struct cn_list dirty;
    uv_idle_t idle;
    uv_timer_t grace;
    char *rbuf;
    size_t nhandles;
    bool closing, handles_closed;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* server.c */
void cn_h2__kick(struct conn *c); /* marks c dirty: flushed from the loop */
void cn_h2__server_maybe_done(struct cn_grpc_server *srv);

/* session.c */
struct conn *cn_h2__conn_new(struct cn_grpc_server *srv, struct cn_stream *s);
void cn_h2__conn_flush(struct conn *c); /* session_send, then close when the session is over */
void cn_h2__conn_close(struct conn *c);
void cn_h2__conn_feed(struct conn *c, const char *p, size_t n);
void cn_h2__conn_goaway(struct conn *c);
void cn_h2__callbacks(nghttp2_session_callbacks *cbs);

/* call.c: nghttp2 events for one stream */
struct cn_grpc_call *cn_h2__call_new(struct conn *c, int32_t stream_id);
int cn_h2__call_header(struct cn_grpc_call *call, const uint8_t *name, size_t nlen,
                       const uint8_t *value, size_t vlen);
void cn_h2__call_headers_done(struct cn_grpc_call *call, bool end_stream);
int cn_h2__call_data(struct cn_grpc_call *call, const uint8_t *p, size_t n);
void cn_h2__call_data_done(struct cn_grpc_call *call, bool end_stream);
void cn_h2__call_sent_end(struct cn_grpc_call *call);
void cn_h2__call_closed(struct cn_grpc_call *call, uint32_t error_code);
/* The connection is going away: on_cancel if the handler still owns it, then freed. */
void cn_h2__call_abort(struct cn_grpc_call *call);
void cn_h2__call_free(struct cn_grpc_call *call);

/* wire.c (pure) */
/* grpc-timeout "1S", "100m" ...: <=8 digits and a unit (H M S m u n). 0 and *ms (rounded up to
 * whole milliseconds), or -1 when malformed. */
int cn_h2__parse_timeout(struct cn_str v, uint64_t *ms);
/* Appends z percent-encoded as grpc-message wants (bytes outside 0x20..0x7e and '%'). */
void cn_h2__percent_encode(struct cn_buf *b, const char *z);
/* Decodes base64 (standard alphabet, padding optional) into b. 0, or -1 on a bad character. */
int cn_h2__base64_decode(struct cn_buf *b, struct cn_str in);
/* Looks path up in the table; on a miss fills msg (grpc-go's wording) and returns NULL. */
const struct cn_grpc_method *cn_h2__lookup(const struct cn_grpc_method *m, size_t n,
                                           struct cn_str path, struct cn_buf *msg);

#endif
