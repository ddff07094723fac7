/* server_int: the server half of src/http, shared by its files: http_server.c (the server:
 * listeners, adoption, close, CORS), http_conn.c (a connection: requests, parsing, output, its
 * lifetime) and http_respond.c (responses and streams). The server owns the listeners and one
 * state machine per accepted connection: bytes are parsed by http-parser into requests (pipelined,
 * many per read), each complete request goes to the handler, and responses leave strictly in
 * request order.
 *
 * Design notes
 *
 * Memory. A read lands in one 64 KiB buffer shared by the whole server (reads are sequential on
 * the loop), and http-parser copies what a request needs (target, headers, body) into that
 * request's own arena; only bytes that cannot be parsed yet (pipeline full) are parked in the
 * connection. Requests come from a server-wide pool, so a keep-alive connection that does one
 * request at a time allocates nothing in steady state, and an idle connection holds no buffer at
 * all: its cost is the struct conn and the kernel socket. No per-connection timers.
 *
 * Request states (struct req.state):
 *
 *     PARSING --message complete--> PENDING --cn_http_respond-----------> DONE --> retired
 *                                      |                                   ^
 *                                      +--cn_http_stream_start--> STREAMING-+ (stream_end, or
 *                                                                            server close abort)
 *
 * Connection phases: open (reading, parsing) -> no_more (no new request will be parsed: a
 * non-keep-alive request, an error answer, EOF, server close; input is read and dropped so a
 * peer's close is noticed) -> shutting (last response written, FIN sent with cn_stream_shutdown,
 * input drained until the peer's EOF or LINGER_MS, so unread request bytes cannot make the kernel
 * send RST over our response) -> closing (cn_stream_close called) -> conn_closed frees it.
 *
 * Bytes come and go through a struct cn_stream (src/stream): accepted from the server's own
 * listeners, or handed over with what was already read by another protocol sharing a port
 * (cn_http_server_adopt: the peer transport).
 *
 * Invariants:
 *  1. Only the head of conn.queue writes to the socket (conn_emit); the others buffer in req.out.
 *     cn_http__conn_advance moves a finished head out and lets the next one write what it buffered.
 *  2. A conn is freed only in its close callback (conn_closed); everything before that only flags
 *     it, so a handler, an abort callback or a write error deep in a read callback chain never
 *     sees freed memory. The requests still queued then get on_abort if they were unanswered.
 *  3. Once final_sent (a "Connection: close" response emitted), nothing more is written.
 *  4. Parsing stops while max_pipeline requests are queued or the output backlog is above
 *     OUT_HIGH_WATER; the unparsed rest is parked and parsed again from the resume idle handle,
 *     never from inside a handler's call into this module (no re-entrancy). */
#ifndef CN_HTTP_SERVER_INT_H
#define CN_HTTP_SERVER_INT_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <uv.h>

#include "common/buf.h"
#include "common/list.h"
#include "http/http.h"
#include "http/http_int.h"
#include "stream/stream.h"

#define READ_BUF_LEN   (64 * 1024)
#define OUT_HIGH_WATER (256 * 1024) /* connection output backlog above which parsing pauses */
#define PARK_MAX       (64 * 1024)  /* input parked while a request is in flight */
#define KEEP_BUF_CAP   (64 * 1024)  /* bigger buffers are freed when their owner is recycled */
#define POOL_MAX       256          /* free requests kept by the server */
#define LINGER_MS      2000         /* how long a shut-down connection may drain input */
#define LISTEN_BACKLOG 511

enum req_state { RS_PARSING, RS_PENDING, RS_STREAMING, RS_DONE };

struct hoff {
    size_t name_off, name_len, val_off, val_len;
};

struct conn;

struct req {
    struct cn_http_req pub; /* first: handlers only see this */
    struct conn *conn;
    struct cn_list link; /* conn->queue, or srv->pool */
    enum req_state state;
    struct cn_buf arena; /* target, header names and values, body */
    struct cn_buf out;   /* response bytes held while an earlier response is unfinished */
    struct cn_buf extra; /* "Name: value\r\n" lines added with cn_http_req_add_header */
    struct hoff *hoffs;
    struct cn_http_header *hdrs;
    size_t hcap, nh;
    size_t url_len, body_off, body_len;
    size_t hdr_bytes;
    bool in_field;     /* the last header callback was a name */
    bool field_at_end; /* ... and it ended at the end of the parsed buffer (may continue) */
    bool is_head, http10, too_large;
    bool close;   /* this response is the connection's last */
    bool chunked; /* streaming with chunked encoding */
    bool nobody;  /* streaming a status that has no body */
};

struct conn {
    struct cn_stream *s; /* s->data is the conn */
    struct cn_http_server *srv;
    struct cn_list link;        /* srv->conns */
    struct cn_list resume_link; /* srv->resume while parked input waits for the idle handle */
    struct cn_list linger_link; /* srv->linger while shutting */
    uint64_t linger_start;
    http_parser parser;
    const char *exec_begin, *exec_end; /* the buffer http_parser_execute is working on */
    struct req *cur;                   /* request being parsed */
    struct req *ready;                 /* request the parser just completed */
    struct cn_list queue;              /* dispatched, unretired requests in arrival order */
    size_t nqueue;
    struct cn_buf in;   /* parked, unparsed input */
    struct cn_buf wout; /* output waiting for the write in flight */
    struct cn_buf wfly; /* output of the write in flight */
    int err_status;     /* 431 when a callback refused the headers */
    bool reading, writing, in_parse;
    bool no_more, final_sent, shutting, closing, peer_eof;
    bool sniff; /* still matching the HTTP/2 preface (srv->h2_hook set), bytes parked in in */
};

struct cn_http_server {
    uv_loop_t *loop;
    time_t date_sec; /* second the cached Date line is for */
    char date[48];   /* "Date: Sun, 22 Nov 2026 02:59:25 GMT\r\n" */
    size_t date_len;
    struct cn_http_limits limits;
    cn_http_handler handler;
    cn_http_too_large_cb too_large;
    void *ctx;
    struct cn_stream_listener **lis; /* data: the server */
    size_t nlis;
    uint16_t port;
    struct cn_list conns;
    size_t nconns;
    struct cn_list pool;
    size_t npool;
    struct cn_list resume;
    uv_idle_t resume_idle;
    struct cn_list linger;
    uv_timer_t linger_timer;
    char *rbuf;
    uint64_t next_id;
    size_t nhandles; /* listeners, the idle and the timer (connections are counted apart) */
    bool closing, aux_closed;
    void (*close_cb)(void *ctx);
    void *close_ctx;
    cn_http_h2_hook h2_hook;
    void *h2_ctx;
};

#define REQ(p) CN_CONTAINER_OF((p), struct req, pub)

void cn_http__conn_advance(struct conn *c);
size_t cn_http__conn_backlog(const struct conn *c);
void cn_http__conn_close(struct conn *c);
struct conn *cn_http__conn_new(struct cn_http_server *srv, struct cn_stream *s);
void cn_http__conn_update_read(struct conn *c);
void cn_http__req_free(struct req *r);
bool cn_http__req_is_head(const struct conn *c, const struct req *r);
void cn_http__req_output(struct conn *c, struct req *r, const void *b, size_t bn, const void *d,
                         size_t dn);
void cn_http__server_maybe_done(struct cn_http_server *srv);
void cn_http__stream_finish(struct conn *c, struct req *r);

#endif
