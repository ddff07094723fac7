/* http_server: the server half of src/http. It owns the listeners and one state machine per
 * accepted connection: bytes are parsed by http-parser into requests (pipelined, many per read),
 * each complete request goes to the handler, and responses leave strictly in request order.
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
 *     conn_advance moves a finished head out and lets the next one write what it buffered.
 *  2. A conn is freed only in its close callback (conn_closed); everything before that only flags
 *     it, so a handler, an abort callback or a write error deep in a read callback chain never
 *     sees freed memory. The requests still queued then get on_abort if they were unanswered.
 *  3. Once final_sent (a "Connection: close" response emitted), nothing more is written.
 *  4. Parsing stops while max_pipeline requests are queued or the output backlog is above
 *     OUT_HIGH_WATER; the unparsed rest is parked and parsed again from the resume idle handle,
 *     never from inside a handler's call into this module (no re-entrancy). */
#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/list.h"
#include "common/log.h"
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
};

#define REQ(p) CN_CONTAINER_OF((p), struct req, pub)

static void conn_close(struct conn *c);
static void conn_advance(struct conn *c);
static void conn_update_read(struct conn *c);
static void server_maybe_done(struct cn_http_server *srv);

/* ---- requests ---------------------------------------------------------------------------- */

static struct req *req_get(struct conn *c)
{
    struct cn_http_server *srv = c->srv;
    struct req *r;
    if (!cn_list_empty(&srv->pool)) {
        struct cn_list *n = srv->pool.next;
        cn_list_remove(n);
        srv->npool--;
        r = CN_CONTAINER_OF(n, struct req, link);
    } else {
        r = CN_NEW(struct req);
        cn_list_init(&r->link);
    }
    memset(&r->pub, 0, sizeof(r->pub));
    r->conn = c;
    r->state = RS_PARSING;
    cn_buf_reset(&r->arena);
    cn_buf_reset(&r->out);
    cn_buf_reset(&r->extra);
    r->nh = 0;
    r->url_len = r->body_off = r->body_len = r->hdr_bytes = 0;
    r->in_field = r->field_at_end = false;
    r->is_head = r->http10 = r->too_large = r->close = r->chunked = r->nobody = false;
    return r;
}

static void req_free(struct req *r)
{
    cn_buf_free(&r->arena);
    cn_buf_free(&r->out);
    cn_buf_free(&r->extra);
    cn_free(r->hoffs);
    cn_free(r->hdrs);
    cn_free(r);
}

static void req_put(struct cn_http_server *srv, struct req *r)
{
    if (srv->npool >= POOL_MAX || srv->closing) {
        req_free(r);
        return;
    }
    if (r->arena.cap > KEEP_BUF_CAP) cn_buf_free(&r->arena);
    if (r->out.cap > KEEP_BUF_CAP) cn_buf_free(&r->out);
    r->conn = NULL;
    cn_list_insert_tail(&srv->pool, &r->link);
    srv->npool++;
}

/* Points the public fields into the arena (which may have moved since the last call). */
static void req_fix(struct req *r)
{
    const char *base = r->arena.p ? r->arena.p : "";
    struct cn_str u = cn_str_make(base, r->url_len);
    r->pub.url = u;
    r->pub.path = u;
    r->pub.query = cn_str_make(base + u.len, 0);
    if (u.len > 0 && u.p[0] != '/' && u.p[0] != '*') {
        /* absolute-form ("http://host/path?q"), as proxies send it */
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (http_parser_parse_url(u.p, u.len, 0, &pu) == 0) {
            r->pub.path =
                (pu.field_set & (1 << UF_PATH))
                    ? cn_str_make(u.p + pu.field_data[UF_PATH].off, pu.field_data[UF_PATH].len)
                    : CN_STR("/");
            if (pu.field_set & (1 << UF_QUERY))
                r->pub.query =
                    cn_str_make(u.p + pu.field_data[UF_QUERY].off, pu.field_data[UF_QUERY].len);
        }
    } else {
        const char *hash = memchr(u.p, '#', u.len);
        size_t n = hash ? (size_t)(hash - u.p) : u.len;
        const char *q = memchr(u.p, '?', n);
        if (q) {
            r->pub.path = cn_str_make(u.p, (size_t)(q - u.p));
            r->pub.query = cn_str_make(q + 1, n - (size_t)(q - u.p) - 1);
        } else {
            r->pub.path = cn_str_make(u.p, n);
        }
    }
    for (size_t i = 0; i < r->nh; i++) {
        r->hdrs[i].name = cn_str_make(base + r->hoffs[i].name_off, r->hoffs[i].name_len);
        r->hdrs[i].value = cn_str_make(base + r->hoffs[i].val_off, r->hoffs[i].val_len);
    }
    r->pub.headers = r->hdrs;
    r->pub.nheaders = r->nh;
    r->pub.body =
        r->too_large ? cn_str_make(base, 0) : cn_str_make(base + r->body_off, r->body_len);
}

/* ---- parser callbacks -------------------------------------------------------------------- */

/* Counts header bytes before they are stored; refuses (431) past the limit. */
static int hdr_bytes_add(struct conn *c, struct req *r, size_t len)
{
    r->hdr_bytes += len;
    if (r->hdr_bytes > c->srv->limits.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    if (c->cur == NULL) c->cur = req_get(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct req *r = c->cur;
    if (hdr_bytes_add(c, r, len + (r->url_len == 0 ? 16 : 0)) != 0) return -1;
    cn_buf_append(&r->arena, at, len);
    r->url_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct req *r = c->cur;
    /* A name split over two reads arrives as two callbacks, the first ending at the end of its
     * buffer and the second starting the next one; anything else starts a new header (an empty
     * value produces no value callback). */
    bool cont = r->in_field && r->field_at_end && at == c->exec_begin;
    if (!cont) {
        if (r->nh >= c->srv->limits.max_headers) {
            c->err_status = 431;
            return -1;
        }
        if (r->nh == r->hcap) {
            r->hcap = r->hcap ? r->hcap * 2 : 16;
            r->hoffs = cn_xrealloc(r->hoffs, r->hcap * sizeof(*r->hoffs));
            r->hdrs = cn_xrealloc(r->hdrs, r->hcap * sizeof(*r->hdrs));
        }
        r->hoffs[r->nh] = (struct hoff){r->arena.len, 0, r->arena.len, 0};
        r->nh++;
        r->in_field = true;
        if (hdr_bytes_add(c, r, 4) != 0) return -1; /* ": " and CRLF */
    }
    if (hdr_bytes_add(c, r, len) != 0) return -1;
    cn_buf_append(&r->arena, at, len);
    r->hoffs[r->nh - 1].name_len += len;
    r->hoffs[r->nh - 1].val_off = r->arena.len;
    r->field_at_end = (at + len == c->exec_end);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct req *r = c->cur;
    if (r->nh == 0) return -1; /* cannot happen: a value follows a name */
    r->in_field = false;
    if (hdr_bytes_add(c, r, len) != 0) return -1;
    cn_buf_append(&r->arena, at, len);
    r->hoffs[r->nh - 1].val_len += len;
    return 0;
}

static void conn_emit(struct conn *c, const void *a, size_t an, const void *b, size_t bn,
                      const void *d, size_t dn);

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct req *r = c->cur;
    r->pub.method = (int)p->method;
    r->pub.method_name = cn_str_c(http_method_str((enum http_method)p->method));
    r->pub.keep_alive = http_should_keep_alive(p) != 0;
    r->http10 = p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0);
    r->is_head = p->method == HTTP_HEAD;
    r->in_field = false;
    r->body_off = r->arena.len;
    bool has_len = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_len && p->content_length > c->srv->limits.max_body_bytes) {
        /* Skip the body (http-parser completes the message now); the connection closes after
         * the answer, so the unread body is never parsed as a request. */
        r->too_large = true;
        return 1;
    }
    if (has_len && p->content_length > 0) cn_buf_reserve(&r->arena, (size_t)p->content_length);
    bool has_body = (p->flags & F_CHUNKED) || (has_len && p->content_length > 0);
    if (has_body && !r->http10 && cn_list_empty(&c->queue) && !c->writing && c->wout.len == 0) {
        req_fix(r);
        struct cn_str expect = cn_http_req_header(&r->pub, "Expect");
        if (expect.p && cn_http__name_eq(expect, "100-continue")) {
            /* curl waits a second for this before it sends a body; nothing is ahead of this
             * request on the wire, so it may go now. */
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            conn_emit(c, cont, sizeof(cont) - 1, NULL, 0, NULL, 0);
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct req *r = c->cur;
    if (r->body_len + len > c->srv->limits.max_body_bytes) {
        /* a chunked body past the cap: answer now, stop parsing */
        r->too_large = true;
        c->ready = r;
        c->cur = NULL;
        http_parser_pause(p, 1);
        return 0;
    }
    cn_buf_append(&r->arena, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->ready = c->cur;
    c->cur = NULL;
    /* one request per http_parser_execute: conn_parse dispatches it, then goes on */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- output ------------------------------------------------------------------------------ */

static size_t conn_backlog(const struct conn *c)
{
    return c->wout.len + cn_stream_write_queue_size(c->s);
}

static void shrink(struct cn_buf *b)
{
    if (b->cap > KEEP_BUF_CAP) cn_buf_free(b);
}

static void on_write(struct cn_stream *s, int status, void *arg);

static void conn_start_write(struct conn *c)
{
    if (c->writing || c->closing || c->wout.len == 0) return;
    struct cn_buf t = c->wfly;
    c->wfly = c->wout;
    c->wout = t;
    cn_buf_reset(&c->wout);
    struct cn_str b = cn_str_make(c->wfly.p, c->wfly.len);
    int rc = cn_stream_write(c->s, &b, 1, on_write, c);
    if (rc != 0) {
        CN_LOGD("http", "write failed err=\"%s\"", cn_strerror(rc));
        conn_close(c);
        return;
    }
    c->writing = true;
}

/* Writes bytes now if nothing is queued (no copy when the kernel takes them all), else queues a
 * copy behind the write in flight. */
static void conn_emit(struct conn *c, const void *a, size_t an, const void *b, size_t bn,
                      const void *d, size_t dn)
{
    if (c->closing || c->shutting || c->final_sent) return;
    struct cn_str v[3];
    size_t nv = 0;
    if (an) v[nv++] = cn_str_make(a, an);
    if (bn) v[nv++] = cn_str_make(b, bn);
    if (dn) v[nv++] = cn_str_make(d, dn);
    if (nv == 0) return;
    size_t skip = 0;
    if (!c->writing && c->wout.len == 0) {
        int rc = cn_stream_try_write(c->s, v, nv);
        if (rc >= 0) {
            skip = (size_t)rc;
        } else if (rc != -EAGAIN) {
            CN_LOGD("http", "write failed err=\"%s\"", cn_strerror(rc));
            conn_close(c);
            return;
        }
    }
    for (size_t i = 0; i < nv; i++) {
        if (skip >= v[i].len) {
            skip -= v[i].len;
            continue;
        }
        cn_buf_append(&c->wout, v[i].p + skip, v[i].len - skip);
        skip = 0;
    }
    conn_start_write(c);
}

static bool req_is_head(const struct conn *c, const struct req *r)
{
    return !c->final_sent && c->queue.next == &r->link;
}

/* Output of r: what r->out holds plus up to two borrowed buffers; written at once when r is at
 * the head of the queue, else kept in r->out (invariant 1). */
static void req_output(struct conn *c, struct req *r, const void *b, size_t bn, const void *d,
                       size_t dn)
{
    if (c->closing) return;
    if (req_is_head(c, r)) {
        conn_emit(c, r->out.p, r->out.len, b, bn, d, dn);
        cn_buf_reset(&r->out);
    } else {
        if (bn) cn_buf_append(&r->out, b, bn);
        if (dn) cn_buf_append(&r->out, d, dn);
    }
}

static void on_shutdown(struct cn_stream *s, int status)
{
    struct conn *c = s->data;
    if (c->closing) return;
    /* else wait for the peer's EOF (or the linger timer); a closing server does not wait */
    if (status < 0 || c->peer_eof || c->srv->closing) conn_close(c);
}

static void on_linger_timer(uv_timer_t *t)
{
    struct cn_http_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &srv->linger) {
        struct conn *c = CN_CONTAINER_OF(it, struct conn, linger_link);
        if (now - c->linger_start >= LINGER_MS) conn_close(c);
    }
    if (cn_list_empty(&srv->linger)) uv_timer_stop(t);
}

/* Starts the graceful end once nothing more will be written (see the design notes). */
static void conn_check_done(struct conn *c)
{
    if (c->closing || c->shutting || !c->no_more) return;
    if (!c->final_sent && !cn_list_empty(&c->queue)) return;
    if (c->writing || c->wout.len > 0) return; /* on_write comes back here */
    if (c->peer_eof || (c->final_sent == false && c->srv->closing)) {
        conn_close(c);
        return;
    }
    c->shutting = true;
    int rc = cn_stream_shutdown(c->s, on_shutdown);
    if (rc != 0) {
        conn_close(c);
        return;
    }
    struct cn_http_server *srv = c->srv;
    c->linger_start = uv_now(srv->loop);
    if (cn_list_empty(&srv->linger) && !srv->aux_closed)
        uv_timer_start(&srv->linger_timer, on_linger_timer, LINGER_MS / 4, LINGER_MS / 4);
    cn_list_insert_tail(&srv->linger, &c->linger_link);
    conn_update_read(c);
}

static void on_write(struct cn_stream *s, int status, void *arg)
{
    struct conn *c = arg;
    c->writing = false;
    cn_buf_reset(&c->wfly);
    shrink(&c->wfly);
    if (c->closing) return;
    if (status < 0) {
        CN_LOGD("http", "write failed err=\"%s\"", cn_strerror(status));
        conn_close(c);
        return;
    }
    conn_start_write(c);
    if (!c->writing) {
        shrink(&c->wout);
        conn_check_done(c);
        conn_update_read(c);
    }
}

/* Retires finished requests at the head of the queue; the new head writes what it buffered. */
static void conn_advance(struct conn *c)
{
    struct cn_http_server *srv = c->srv;
    while (!cn_list_empty(&c->queue) && !c->final_sent) {
        struct req *r = CN_CONTAINER_OF(c->queue.next, struct req, link);
        if (r->out.len > 0) req_output(c, r, NULL, 0, NULL, 0);
        if (r->state != RS_DONE) break;
        cn_list_remove(&r->link);
        c->nqueue--;
        bool last = r->close;
        req_put(srv, r);
        if (last) {
            c->no_more = true;
            c->final_sent = true;
        }
    }
    conn_check_done(c);
    conn_update_read(c);
}

/* ---- responses --------------------------------------------------------------------------- */

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Go's server sends Date on every response, after the handler's headers; formatted once a second
 * (C locale: strftime's %a and %b are English as HTTP wants). */
static void put_date(struct cn_http_server *srv, struct cn_buf *b)
{
    time_t now = time(NULL);
    if (now != srv->date_sec || srv->date_len == 0) {
        struct tm tm;
        gmtime_r(&now, &tm);
        srv->date_len =
            strftime(srv->date, sizeof(srv->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_sec = now;
    }
    cn_buf_append(b, srv->date, srv->date_len);
}

static void head_begin(struct conn *c, struct req *r, int status, const char *ctype,
                       const struct cn_http_hdr *hdrs, size_t nhdrs)
{
    struct cn_buf *b = &r->out;
    /* the last response a closing connection sends says so */
    r->close = r->close || !r->pub.keep_alive || (c->no_more && r->link.next == &c->queue);
    cn_buf_reserve(b, 256);
    cn_buf_append(b, "HTTP/1.1 ", 9);
    cn_http__put_status(b, status);
    if (ctype) {
        cn_buf_append(b, "Content-Type: ", 14);
        cn_http__put_value(b, ctype);
        cn_buf_append(b, "\r\n", 2);
    }
    for (size_t i = 0; i < nhdrs; i++) {
        cn_buf_appends(b, hdrs[i].name);
        cn_buf_append(b, ": ", 2);
        cn_http__put_value(b, hdrs[i].value);
        cn_buf_append(b, "\r\n", 2);
    }
    if (r->extra.len) cn_buf_append(b, r->extra.p, r->extra.len);
    if (c->srv->limits.send_date) put_date(c->srv, b);
    if (r->close)
        cn_buf_append(b, "Connection: close\r\n", 19);
    else if (r->http10)
        cn_buf_append(b, "Connection: keep-alive\r\n", 24);
}

void cn_http_req_add_header(struct cn_http_req *req, const char *name, const char *value)
{
    struct req *r = (struct req *)req;
    cn_buf_appends(&r->extra, name);
    cn_buf_append(&r->extra, ": ", 2);
    cn_http__put_value(&r->extra, value);
    cn_buf_append(&r->extra, "\r\n", 2);
}

void cn_http_respond(struct cn_http_req *req, int status, const char *ctype,
                     const struct cn_http_hdr *hdrs, size_t nhdrs, const void *body, size_t len,
                     bool close_after)
{
    struct req *r = REQ(req);
    struct conn *c = r->conn;
    CN_ASSERT(r->state == RS_PENDING);
    r->state = RS_DONE;
    if (c->closing) return;
    if (close_after) r->close = true;
    head_begin(c, r, status, ctype, hdrs, nhdrs);
    bool has_body = status_has_body(status);
    if (has_body) {
        cn_buf_append(&r->out, "Content-Length: ", 16);
        cn_buf_append_u64(&r->out, len);
        cn_buf_append(&r->out, "\r\n", 2);
    }
    cn_buf_append(&r->out, "\r\n", 2);
    if (!has_body || r->is_head) len = 0;
    req_output(c, r, body, len, NULL, 0);
    conn_advance(c);
}

void cn_http_stream_start(struct cn_http_req *req, int status, const char *ctype,
                          const struct cn_http_hdr *hdrs, size_t nhdrs)
{
    struct req *r = REQ(req);
    struct conn *c = r->conn;
    CN_ASSERT(r->state == RS_PENDING);
    r->state = RS_STREAMING;
    if (c->closing) return;
    r->nobody = !status_has_body(status);
    if (r->http10) r->close = true; /* HTTP/1.0: the body ends with the connection */
    head_begin(c, r, status, ctype, hdrs, nhdrs);
    if (!r->http10 && !r->nobody) {
        cn_buf_append(&r->out, "Transfer-Encoding: chunked\r\n", 28);
        r->chunked = true;
    }
    cn_buf_append(&r->out, "\r\n", 2);
    req_output(c, r, NULL, 0, NULL, 0);
}

void cn_http_stream_write(struct cn_http_req *req, const void *p, size_t len)
{
    struct req *r = REQ(req);
    struct conn *c = r->conn;
    CN_ASSERT(r->state == RS_STREAMING);
    if (c->closing || len == 0 || r->is_head || r->nobody) return;
    if (r->chunked) {
        char hex[24];
        int n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
        cn_buf_append(&r->out, hex, (size_t)n);
        req_output(c, r, p, len, "\r\n", 2);
    } else {
        req_output(c, r, p, len, NULL, 0);
    }
}

size_t cn_http_stream_backlog(const struct cn_http_req *req)
{
    const struct req *r = REQ(req);
    const struct conn *c = r->conn;
    if (c->closing) return 0;
    return req_is_head(c, r) ? conn_backlog(c) : r->out.len;
}

static void stream_finish(struct conn *c, struct req *r)
{
    r->state = RS_DONE;
    if (c->closing) return;
    if (r->chunked && !r->is_head) {
        static const char last[] = "0\r\n\r\n";
        req_output(c, r, last, sizeof(last) - 1, NULL, 0);
    }
    conn_advance(c);
}

void cn_http_stream_end(struct cn_http_req *req)
{
    struct req *r = REQ(req);
    CN_ASSERT(r->state == RS_STREAMING);
    stream_finish(r->conn, r);
}

/* ---- input ------------------------------------------------------------------------------- */

static bool conn_can_take(const struct conn *c)
{
    return c->nqueue < c->srv->limits.max_pipeline && conn_backlog(c) < OUT_HIGH_WATER;
}

/* Answers a request the layer refuses itself (400, 431) and ends the connection. */
static void conn_refuse(struct conn *c, int status)
{
    struct req *r = c->cur ? c->cur : req_get(c);
    c->cur = NULL;
    c->no_more = true;
    const char *text = cn_http_status_text(status);
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s", status, text);
    r->state = RS_DONE;
    r->close = true;
    cn_buf_reset(&r->out);
    cn_buf_append(&r->out, "HTTP/1.1 ", 9);
    cn_http__put_status(&r->out, status);
    cn_buf_appendf(&r->out,
                   "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
                   "Content-Length: %d\r\n\r\n%s",
                   n, body);
    cn_list_insert_tail(&c->queue, &r->link);
    c->nqueue++;
    CN_LOGD("http", "refused request status=%d", status);
    conn_advance(c);
}

static void conn_dispatch(struct conn *c, struct req *r)
{
    struct cn_http_server *srv = c->srv;
    r->state = RS_PENDING;
    r->pub.id = ++srv->next_id;
    cn_list_insert_tail(&c->queue, &r->link);
    c->nqueue++;
    req_fix(r);
    if (!r->pub.keep_alive) c->no_more = true;
    if (r->too_large) {
        c->no_more = true;
        r->close = true;
        CN_LOGD("http", "request body too large id=%llu", (unsigned long long)r->pub.id);
        if (srv->too_large) {
            srv->too_large(&r->pub, srv->ctx);
        } else {
            static const char msg[] = "413 Request Entity Too Large";
            cn_http_respond(&r->pub, 413, "text/plain; charset=utf-8", NULL, 0, msg,
                            sizeof(msg) - 1, true);
        }
        return;
    }
    srv->handler(&r->pub, srv->ctx);
}

static void parser_reset(struct conn *c)
{
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
}

/* Parses n bytes at p (from the shared read buffer, or from c->in when parked), dispatching every
 * request completed on the way, until the input ends or the connection must not take more. */
static void conn_parse(struct conn *c, const char *p, size_t n, bool parked)
{
    c->in_parse = true;
    while (n > 0 && !c->closing && !c->no_more && conn_can_take(c)) {
        c->exec_begin = p;
        c->exec_end = p + n;
        size_t used = http_parser_execute(&c->parser, &parser_settings, p, n);
        p += used;
        n -= used;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            struct req *r = c->ready;
            c->ready = NULL;
            http_parser_pause(&c->parser, 0);
            /* An Upgrade request (e.g. curl's h2c) is answered as plain HTTP/1.1: the parser
             * stopped at its end, so start a fresh one for what follows. */
            if (c->parser.upgrade) parser_reset(c);
            if (r) conn_dispatch(c, r);
        } else if (e != HPE_OK) {
            int status = (c->err_status || e == HPE_HEADER_OVERFLOW) ? 431 : 400;
            CN_LOGD("http", "bad request err=%s", http_errno_name(e));
            conn_refuse(c, status);
            n = 0;
        } else if (used == 0) {
            conn_refuse(c, 400); /* no progress: cannot happen, but never spin */
            n = 0;
        }
    }
    if (c->closing || c->no_more) n = 0;
    if (parked) {
        if (n > 0 && p != c->in.p) memmove(c->in.p, p, n);
        c->in.len = n;
        if (n == 0) shrink(&c->in);
    } else if (n > 0) {
        cn_buf_append(&c->in, p, n);
    }
    c->in_parse = false;
    conn_update_read(c);
}

static void on_resume(uv_idle_t *idle)
{
    struct cn_http_server *srv = idle->data;
    while (!cn_list_empty(&srv->resume)) {
        struct conn *c = CN_CONTAINER_OF(srv->resume.next, struct conn, resume_link);
        cn_list_remove(&c->resume_link);
        if (!c->closing && c->in.len > 0) conn_parse(c, c->in.p, c->in.len, true);
    }
    uv_idle_stop(idle);
}

static void on_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    struct conn *c = s->data;
    buf->p = c->srv->rbuf;
    buf->len = READ_BUF_LEN;
}

static bool conn_streaming(const struct conn *c)
{
    const struct cn_list *it;
    for (it = c->queue.next; it != &c->queue; it = it->next)
        if (CN_CONTAINER_OF(it, struct req, link)->state == RS_STREAMING) return true;
    return false;
}

static void conn_on_eof(struct conn *c)
{
    c->peer_eof = true;
    c->reading = false; /* the stream stopped reading at EOF */
    /* A half-closed client still gets the answers to what it sent (as from Go's server); a
     * stream (a watch) has nobody left to deliver to. */
    if (!c->shutting && !c->final_sent && !cn_list_empty(&c->queue) && !conn_streaming(c)) {
        c->no_more = true;
        conn_check_done(c);
        return;
    }
    if (c->shutting || !cn_list_empty(&c->queue) || c->final_sent) {
        conn_close(c); /* queued requests are unanswered or streaming: abort them */
        return;
    }
    c->no_more = true;
    conn_check_done(c);
}

static void on_read(struct cn_stream *s, ssize_t nread, const struct cn_stream_buf *buf)
{
    struct conn *c = s->data;
    if (c->closing) return;
    if (nread > 0) {
        if (c->no_more || c->shutting) return; /* draining */
        if (c->in.len > 0 || !conn_can_take(c)) {
            /* A request is in flight: park the bytes behind what is parked already and keep
             * reading (as Go's background read does), so a client that goes away while its
             * watch or write is pending is noticed. conn_update_read bounds the parking. */
            cn_buf_append(&c->in, buf->p, (size_t)nread);
            conn_update_read(c);
            return;
        }
        conn_parse(c, buf->p, (size_t)nread, false);
    } else if (nread == CN_ERR_EOF) {
        conn_on_eof(c);
    } else if (nread < 0) {
        CN_LOGD("http", "read failed err=\"%s\"", cn_strerror((int)nread));
        conn_close(c);
    }
}

static void conn_update_read(struct conn *c)
{
    if (c->closing || c->peer_eof) return;
    struct cn_http_server *srv = c->srv;
    bool draining = c->no_more || c->shutting;
    bool want = draining || (c->in.len == 0 && conn_can_take(c)) ||
                (c->in.len < PARK_MAX && conn_backlog(c) < OUT_HIGH_WATER);
    if (want && !c->reading) {
        if (cn_stream_read_start(c->s, on_alloc, on_read) != 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        cn_stream_read_stop(c->s);
        c->reading = false;
    }
    if (!draining && !c->in_parse && c->in.len > 0 && conn_can_take(c) &&
        cn_list_empty(&c->resume_link) && !srv->aux_closed) {
        cn_list_insert_tail(&srv->resume, &c->resume_link);
        uv_idle_start(&srv->resume_idle, on_resume);
    }
}

/* ---- connection lifetime ----------------------------------------------------------------- */

static void conn_closed(struct cn_stream *s)
{
    struct conn *c = s->data;
    struct cn_http_server *srv = c->srv;
    while (!cn_list_empty(&c->queue)) {
        struct req *r = CN_CONTAINER_OF(c->queue.next, struct req, link);
        cn_list_remove(&r->link);
        if (r->state == RS_PENDING || r->state == RS_STREAMING) {
            r->state = RS_DONE;
            if (r->pub.on_abort) r->pub.on_abort(&r->pub, srv->ctx);
        }
        req_put(srv, r);
    }
    if (c->cur) req_put(srv, c->cur);
    if (c->ready) req_put(srv, c->ready);
    cn_buf_free(&c->in);
    cn_buf_free(&c->wout);
    cn_buf_free(&c->wfly);
    cn_list_remove(&c->link);
    srv->nconns--;
    cn_free(c);
    server_maybe_done(srv);
}

/* Closes at once; unanswered requests are aborted from conn_closed (invariant 2). */
static void conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    cn_list_remove(&c->resume_link);
    cn_list_remove(&c->linger_link);
    cn_stream_close(c->s, conn_closed);
}

static struct conn *conn_new(struct cn_http_server *srv, struct cn_stream *s)
{
    struct conn *c = CN_NEW(struct conn);
    c->srv = srv;
    c->s = s;
    s->data = c;
    cn_list_init(&c->queue);
    cn_list_init(&c->resume_link);
    cn_list_init(&c->linger_link);
    cn_list_insert_tail(&srv->conns, &c->link);
    srv->nconns++;
    parser_reset(c);
    return c;
}

static void on_connection(struct cn_stream_listener *l, int status, struct cn_stream *s)
{
    struct cn_http_server *srv = l->data;
    if (status < 0) {
        CN_LOGW("http", "accept failed err=\"%s\"", cn_strerror(status));
        return;
    }
    if (srv->closing) { /* cannot happen: the listeners close first */
        cn_stream_close(s, NULL);
        return;
    }
    struct conn *c = conn_new(srv, s);
    (void)cn_stream_set_nodelay(s, true); /* an optimisation only: the connection works without */
    conn_update_read(c);
}

int cn_http_server_adopt(struct cn_http_server *srv, struct cn_stream *s, const void *head,
                         size_t head_len)
{
    if (srv->closing) return CN_ERR_STOPPED;
    cn_stream_read_stop(s); /* reading restarts with this module's callbacks */
    struct conn *c = conn_new(srv, s);
    if (head_len > 0) cn_buf_append(&c->in, head, head_len); /* parsed from the resume handle */
    conn_update_read(c);
    return 0;
}

/* ---- server ------------------------------------------------------------------------------ */

static void server_free(struct cn_http_server *srv)
{
    while (!cn_list_empty(&srv->pool)) {
        struct req *r = CN_CONTAINER_OF(srv->pool.next, struct req, link);
        cn_list_remove(&r->link);
        req_free(r);
    }
    cn_free(srv->lis);
    cn_free(srv->rbuf);
    cn_free(srv);
}

static void aux_closed(uv_handle_t *h)
{
    struct cn_http_server *srv = h->data;
    srv->nhandles--;
    server_maybe_done(srv);
}

static void listener_closed(struct cn_stream_listener *l)
{
    struct cn_http_server *srv = l->data;
    srv->nhandles--;
    server_maybe_done(srv);
}

static void server_maybe_done(struct cn_http_server *srv)
{
    if (!srv->closing || srv->nconns > 0) return;
    if (!srv->aux_closed) {
        srv->aux_closed = true;
        uv_close((uv_handle_t *)&srv->resume_idle, aux_closed);
        uv_close((uv_handle_t *)&srv->linger_timer, aux_closed);
        return;
    }
    if (srv->nhandles > 0) return;
    void (*cb)(void *) = srv->close_cb;
    void *ctx = srv->close_ctx;
    server_free(srv);
    if (cb) cb(ctx);
}

struct cn_http_server *cn_http_server_new(uv_loop_t *loop, const struct cn_http_limits *limits,
                                          cn_http_handler handler, cn_http_too_large_cb too_large,
                                          void *ctx)
{
    cn_http__ignore_sigpipe();
    struct cn_http_server *srv = CN_NEW(struct cn_http_server);
    srv->loop = loop;
    if (limits) srv->limits = *limits;
    if (!srv->limits.max_header_bytes) srv->limits.max_header_bytes = 64 * 1024;
    if (!srv->limits.max_headers) srv->limits.max_headers = 100;
    if (!srv->limits.max_body_bytes) srv->limits.max_body_bytes = 10 * 1024 * 1024;
    if (!srv->limits.max_pipeline) srv->limits.max_pipeline = 64;
    srv->handler = handler;
    srv->too_large = too_large;
    srv->ctx = ctx;
    cn_list_init(&srv->conns);
    cn_list_init(&srv->pool);
    cn_list_init(&srv->resume);
    cn_list_init(&srv->linger);
    uv_idle_init(loop, &srv->resume_idle);
    srv->resume_idle.data = srv;
    uv_timer_init(loop, &srv->linger_timer);
    srv->linger_timer.data = srv;
    srv->nhandles = 2;
    srv->rbuf = cn_xmalloc(READ_BUF_LEN);
    return srv;
}

static uint16_t addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

static void addr_set_port(struct sockaddr *sa, uint16_t port)
{
    if (sa->sa_family == AF_INET) ((struct sockaddr_in *)sa)->sin_port = htons(port);
    if (sa->sa_family == AF_INET6) ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static void addr_name(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[64] = "?";
    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        snprintf(out, len, "%s:%d", ip, addr_port(sa));
    } else {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%d", ip, addr_port(sa));
    }
}

int cn_http_server_listen(struct cn_http_server *srv, const char *host, uint16_t port, char *err,
                          size_t err_len)
{
    CN_ASSERT(!srv->closing);
    char name[256];
    const char *h = NULL;
    if (host && *host) {
        size_t n = strlen(host);
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']') n -= 2, host++;
        snprintf(name, sizeof(name), "%.*s", (int)n, host);
        h = name;
    }
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    struct addrinfo *res = NULL;
    int grc = getaddrinfo(h, portstr, &hints, &res);
    if (grc != 0) {
        snprintf(err, err_len, "resolve %s: %s", h ? h : "*", gai_strerror(grc));
        return grc == EAI_SYSTEM && errno ? -errno : CN_ERR_NOT_FOUND;
    }
    size_t first = srv->nlis;
    uint16_t bound = port;
    int rc = 0, skipped = 0;
    char where[96] = "";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        bool dup = false;
        for (struct addrinfo *pj = res; pj != ai; pj = pj->ai_next)
            if (pj->ai_addrlen == ai->ai_addrlen &&
                !memcmp(pj->ai_addr, ai->ai_addr, ai->ai_addrlen))
                dup = true;
        if (dup) continue;
        struct sockaddr_storage ss;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        struct sockaddr *sa = (struct sockaddr *)&ss;
        if (bound != 0) addr_set_port(sa, bound);
        addr_name(sa, where, sizeof(where));
        struct cn_stream_listener *l;
        rc = cn_stream_tcp_listen(srv->loop, sa, true, LISTEN_BACKLOG, on_connection, srv, &l);
        if (rc != 0) {
            if (ai->ai_family == AF_INET6 && (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)) {
                skipped = rc;
                rc = 0;
                continue;
            }
            break;
        }
        srv->nhandles++;
        struct sockaddr_storage got;
        if (cn_stream_listener_addr(l, &got) == 0) bound = addr_port((struct sockaddr *)&got);
        srv->lis = cn_xrealloc(srv->lis, (srv->nlis + 1) * sizeof(*srv->lis));
        srv->lis[srv->nlis++] = l;
        if (srv->port == 0) srv->port = bound;
        CN_LOGD("http", "listening addr=%s", where);
    }
    freeaddrinfo(res);
    if (rc == 0 && srv->nlis == first) rc = skipped ? skipped : CN_ERR_NOT_FOUND;
    if (rc != 0) {
        for (size_t i = first; i < srv->nlis; i++)
            cn_stream_listener_close(srv->lis[i], listener_closed);
        srv->nlis = first;
        if (first == 0) srv->port = 0;
        snprintf(err, err_len, "listen %s: %s", where[0] ? where : (h ? h : "*"),
                 rc > CN_ERR_NOMEM ? uv_strerror(rc) : cn_strerror(rc));
        return rc;
    }
    return 0;
}

void cn_http_server_close(struct cn_http_server *srv, void (*close_cb)(void *ctx), void *ctx)
{
    CN_ASSERT(!srv->closing);
    srv->closing = true;
    srv->close_cb = close_cb;
    srv->close_ctx = ctx;
    for (size_t i = 0; i < srv->nlis; i++)
        cn_stream_listener_close(srv->lis[i], listener_closed);
    srv->nlis = 0;
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &srv->conns) {
        struct conn *c = CN_CONTAINER_OF(it, struct conn, link);
        if (c->closing) continue;
        if (c->shutting) {
            conn_close(c);
            continue;
        }
        c->no_more = true;
        cn_buf_reset(&c->in);
        cn_list_remove(&c->resume_link);
        /* Abort streams one at a time: an abort callback may answer other requests, which can
         * retire queue entries under us. */
        for (;;) {
            struct req *s = NULL;
            struct cn_list *q, *qt;
            CN_LIST_FOREACH(q, qt, &c->queue) {
                struct req *r = CN_CONTAINER_OF(q, struct req, link);
                if (r->state == RS_STREAMING) {
                    s = r;
                    break;
                }
            }
            if (s == NULL || c->closing) break;
            s->state = RS_DONE;
            if (s->pub.on_abort) s->pub.on_abort(&s->pub, srv->ctx);
            s->state = RS_STREAMING;
            stream_finish(c, s);
        }
        if (c->closing) continue;
        if (cn_list_empty(&c->queue) && !c->writing && c->wout.len == 0) {
            conn_close(c); /* idle */
            continue;
        }
        conn_advance(c);
    }
    /* close_cb must come from the loop, even with nothing open: the idle and timer handles are
     * closed at the latest here, so their close callbacks get there. */
    server_maybe_done(srv);
}

size_t cn_http_server_conn_count(const struct cn_http_server *srv)
{
    return srv->nconns;
}

uint16_t cn_http_server_port(const struct cn_http_server *srv)
{
    return srv->port;
}

bool cn_http_cors(const char *cors, const struct cn_http_req *req, struct cn_http_hdr h[3],
                  char *buf, size_t buflen)
{
    if (cors == NULL) return false;
    struct cn_str origin = cn_http_req_header(req, "Origin");
    const char *allow = NULL;
    for (const char *p = cors; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 1 && *p == '*') {
            allow = "*";
            break;
        }
        if (origin.p && origin.len == len && memcmp(origin.p, p, len) == 0 && len < buflen) {
            memcpy(buf, origin.p, len);
            buf[len] = '\0';
            allow = buf;
        }
        if (!e) break;
        p = e + 1;
    }
    if (allow == NULL) return false;
    h[0] = (struct cn_http_hdr){"Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"};
    h[1] = (struct cn_http_hdr){"Access-Control-Allow-Origin", allow};
    h[2] =
        (struct cn_http_hdr){"Access-Control-Allow-Headers", "accept, content-type, authorization"};
    return true;
}
