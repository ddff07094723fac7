/* http_conn: one accepted connection of the server (see server_int.h): requests from the
 * pool, http-parser's callbacks, output in request order, input and its parking, the
 * connection's lifetime. */
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
#include "http/server_int.h"
#include "stream/stream.h"

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

void cn_http__req_free(struct req *r)
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
        cn_http__req_free(r);
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

size_t cn_http__conn_backlog(const struct conn *c)
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
        cn_http__conn_close(c);
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
            cn_http__conn_close(c);
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

bool cn_http__req_is_head(const struct conn *c, const struct req *r)
{
    return !c->final_sent && c->queue.next == &r->link;
}

/* Output of r: what r->out holds plus up to two borrowed buffers; written at once when r is at
 * the head of the queue, else kept in r->out (invariant 1). */
void cn_http__req_output(struct conn *c, struct req *r, const void *b, size_t bn, const void *d,
                         size_t dn)
{
    if (c->closing) return;
    if (cn_http__req_is_head(c, r)) {
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
    if (status < 0 || c->peer_eof || c->srv->closing) cn_http__conn_close(c);
}

static void on_linger_timer(uv_timer_t *t)
{
    struct cn_http_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &srv->linger) {
        struct conn *c = CN_CONTAINER_OF(it, struct conn, linger_link);
        if (now - c->linger_start >= LINGER_MS) cn_http__conn_close(c);
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
        cn_http__conn_close(c);
        return;
    }
    c->shutting = true;
    int rc = cn_stream_shutdown(c->s, on_shutdown);
    if (rc != 0) {
        cn_http__conn_close(c);
        return;
    }
    struct cn_http_server *srv = c->srv;
    c->linger_start = uv_now(srv->loop);
    if (cn_list_empty(&srv->linger) && !srv->aux_closed)
        uv_timer_start(&srv->linger_timer, on_linger_timer, LINGER_MS / 4, LINGER_MS / 4);
    cn_list_insert_tail(&srv->linger, &c->linger_link);
    cn_http__conn_update_read(c);
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
        cn_http__conn_close(c);
        return;
    }
    conn_start_write(c);
    if (!c->writing) {
        shrink(&c->wout);
        conn_check_done(c);
        cn_http__conn_update_read(c);
    }
}

/* Retires finished requests at the head of the queue; the new head writes what it buffered. */
void cn_http__conn_advance(struct conn *c)
{
    struct cn_http_server *srv = c->srv;
    while (!cn_list_empty(&c->queue) && !c->final_sent) {
        struct req *r = CN_CONTAINER_OF(c->queue.next, struct req, link);
        if (r->out.len > 0) cn_http__req_output(c, r, NULL, 0, NULL, 0);
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
    cn_http__conn_update_read(c);
}

/* ---- input ------------------------------------------------------------------------------- */

static bool conn_can_take(const struct conn *c)
{
    return c->nqueue < c->srv->limits.max_pipeline && cn_http__conn_backlog(c) < OUT_HIGH_WATER;
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
    cn_http__conn_advance(c);
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
    cn_http__conn_update_read(c);
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
        cn_http__conn_close(c); /* queued requests are unanswered or streaming: abort them */
        return;
    }
    c->no_more = true;
    conn_check_done(c);
}

/* The HTTP/2 client preface (RFC 7540 3.5): etcd's cmux sends such connections to gRPC. */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

/* Parks the bytes until the preface matches (hand the stream over) or one byte differs (parse
 * them as HTTP/1.1). */
static void conn_sniff(struct conn *c, const char *p, size_t n)
{
    cn_buf_append(&c->in, p, n);
    size_t m = c->in.len < H2_PREFACE_LEN ? c->in.len : H2_PREFACE_LEN;
    if (memcmp(c->in.p, h2_preface, m) != 0) {
        c->sniff = false;
        conn_parse(c, c->in.p, c->in.len, true);
        return;
    }
    if (c->in.len < H2_PREFACE_LEN) return;
    struct cn_http_server *srv = c->srv;
    struct cn_stream *s = c->s;
    cn_stream_read_stop(s);
    c->reading = false;
    if (srv->h2_hook(srv->h2_ctx, s, c->in.p, c->in.len) != 0) {
        cn_http__conn_close(c);
        return;
    }
    /* the stream is the hook's now: the connection goes without closing it */
    cn_list_remove(&c->resume_link);
    cn_list_remove(&c->linger_link);
    cn_list_remove(&c->link);
    srv->nconns--;
    cn_buf_free(&c->in);
    cn_buf_free(&c->wout);
    cn_buf_free(&c->wfly);
    if (c->cur) cn_http__req_free(c->cur);
    cn_free(c);
    cn_http__server_maybe_done(srv);
}

static void on_read(struct cn_stream *s, ssize_t nread, const struct cn_stream_buf *buf)
{
    struct conn *c = s->data;
    if (c->closing) return;
    if (nread > 0 && c->sniff) {
        conn_sniff(c, buf->p, (size_t)nread);
        return;
    }
    if (nread > 0) {
        if (c->no_more || c->shutting) return; /* draining */
        if (c->in.len > 0 || !conn_can_take(c)) {
            /* A request is in flight: park the bytes behind what is parked already and keep
             * reading (as Go's background read does), so a client that goes away while its
             * watch or write is pending is noticed. cn_http__conn_update_read bounds the parking.
             */
            cn_buf_append(&c->in, buf->p, (size_t)nread);
            cn_http__conn_update_read(c);
            return;
        }
        conn_parse(c, buf->p, (size_t)nread, false);
    } else if (nread == CN_ERR_EOF) {
        conn_on_eof(c);
    } else if (nread < 0) {
        CN_LOGD("http", "read failed err=\"%s\"", cn_strerror((int)nread));
        cn_http__conn_close(c);
    }
}

void cn_http__conn_update_read(struct conn *c)
{
    if (c->closing || c->peer_eof) return;
    struct cn_http_server *srv = c->srv;
    bool draining = c->no_more || c->shutting;
    bool want = draining || (c->in.len == 0 && conn_can_take(c)) ||
                (c->in.len < PARK_MAX && cn_http__conn_backlog(c) < OUT_HIGH_WATER);
    if (want && !c->reading) {
        if (cn_stream_read_start(c->s, on_alloc, on_read) != 0) {
            cn_http__conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        cn_stream_read_stop(c->s);
        c->reading = false;
    }
    if (!draining && !c->in_parse && !c->sniff && c->in.len > 0 && conn_can_take(c) &&
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
    cn_http__server_maybe_done(srv);
}

/* Closes at once; unanswered requests are aborted from conn_closed (invariant 2). */
void cn_http__conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    cn_list_remove(&c->resume_link);
    cn_list_remove(&c->linger_link);
    cn_stream_close(c->s, conn_closed);
}

struct conn *cn_http__conn_new(struct cn_http_server *srv, struct cn_stream *s)
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
