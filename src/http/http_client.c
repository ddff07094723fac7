/* http_client: the client half of src/http (see http_client.h). A request owns a timer (its
 * timeout, also used to deliver early errors from the loop) and, while it runs, one connection;
 * connections outlive requests in the client's idle pool.
 *
 * Design notes
 *
 * Lifetimes. A request is freed in its timer's close callback. `finished` is set the moment the
 * user may no longer be called (on_done ran, or canceled); everything after only releases. A
 * connection is freed only in its stream's close callback, so a parser callback that calls the
 * user, who cancels, never pulls memory from under the read callback.
 *
 * Connections are struct cn_stream (src/stream), dialed with cn_stream_tcp_dial: it resolves
 * names on the thread pool, tries each address in turn and applies connect_timeout_ms to each
 * attempt, so a request only sees "connected" or why not.
 *
 * Reuse. A response ends with on_message_complete, which pauses the parser so the read callback
 * handles the end outside http-parser: the connection goes back to the idle pool only when the
 * response allows keep-alive and no stray byte followed it. Idle connections keep reading, so a
 * server closing one is noticed (EOF) and it leaves the pool. */
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/list.h"
#include "common/log.h"
#include "http/http_client.h"
#include "http/http_int.h"
#include "stream/stream.h"

#define CREAD_BUF_LEN    (64 * 1024)
#define MAX_RESP_HEADER  (64 * 1024)
#define MAX_RESP_HEADERS 100
#define MAX_IDLE         64
#define DEFAULT_MAX_BODY (64u * 1024 * 1024)

struct hoff {
    size_t name_off, name_len, val_off, val_len;
};

struct cconn;

struct cn_http_client_req {
    struct cn_http_client *cl;
    struct cn_list link; /* cl->reqs */
    cn_http_client_head_cb on_head;
    cn_http_client_chunk_cb on_chunk;
    cn_http_client_done_cb on_done;
    void *ctx;
    char host[256];
    uint16_t port;
    char key[300];     /* "host:port", the pool key */
    struct cn_buf out; /* the request as written */
    bool is_head, replayable, no_reuse;
    size_t max_body;
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms, write_timeout_ms, read_timeout_ms;
    uint64_t dl_total, dl_phase; /* deadlines in uv_now() ms, 0: none; the timer runs to the
                                    earlier one */
    const char *phase;           /* what dl_phase limits, for the log */
    uv_timer_t timer;
    int early_rc; /* an error to report from the timer callback */
    struct cconn *conn;
    bool finished, head_done, retried;
    bool writing; /* the request is being written (write phase) */
    /* response */
    struct cn_buf arena;
    struct hoff *hoffs;
    struct cn_http_header *hdrs;
    size_t nh, hcap, hdr_bytes, body_off, body_len;
    bool in_field, field_at_end;
    int err; /* why a parser callback refused */
    struct cn_http_client_resp resp;
};

struct cconn {
    struct cn_stream *s; /* s->data is the cconn */
    struct cn_http_client *cl;
    struct cn_list link;      /* cl->conns */
    struct cn_list idle_link; /* cl->idle while idle */
    char key[300];
    http_parser parser;
    const char *exec_begin, *exec_end;
    struct cn_http_client_req *req;
    bool closing, reused, got_bytes, complete;
};

struct cn_http_client {
    uv_loop_t *loop;
    struct cn_list reqs;
    struct cn_list conns;
    struct cn_list idle;
    size_t nidle, nconns, nreqs;
    char *rbuf;
    bool closing;
    void (*close_cb)(void *ctx);
    void *close_ctx;
};

static void client_maybe_done(struct cn_http_client *cl);
static void req_start(struct cn_http_client_req *r);
static void conn_open(struct cn_http_client_req *r);

/* ---- requests ---------------------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
    struct cn_http_client_req *r = h->data;
    struct cn_http_client *cl = r->cl;
    cn_list_remove(&r->link);
    cl->nreqs--;
    cn_buf_free(&r->out);
    cn_buf_free(&r->arena);
    cn_free(r->hoffs);
    cn_free(r->hdrs);
    cn_free(r);
    client_maybe_done(cl);
}

static void conn_close(struct cconn *c);

/* Ends the user's part of r: detaches the connection (closing it unless keep is set), stops the
 * timer, calls on_done when report is set, then lets go of r. */
static void req_finish(struct cn_http_client_req *r, int rc, bool report)
{
    if (r->finished) return;
    r->finished = true;
    struct cconn *c = r->conn;
    if (c) {
        c->req = NULL;
        r->conn = NULL;
        if (!c->complete) conn_close(c);
    }
    if (report) r->on_done(r, rc, rc == 0 ? &r->resp : NULL, r->ctx);
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}

static void on_timer(uv_timer_t *t)
{
    struct cn_http_client_req *r = t->data;
    if (r->early_rc) {
        req_finish(r, r->early_rc, true);
        return;
    }
    uint64_t now = uv_now(r->cl->loop);
    const char *what = (r->dl_phase && r->dl_phase <= now) ? r->phase : "exchange";
    CN_LOGD("http", "client request timed out key=%s phase=%s", r->key, what);
    req_finish(r, CN_ERR_TIMEOUT, true);
}

/* Runs the timer to the earlier of the exchange deadline and the phase deadline (or stops it).
 * An early error (req_fail_later) owns the timer and is never displaced. */
static void req_arm(struct cn_http_client_req *r)
{
    if (r->finished || r->early_rc) return;
    uint64_t d = r->dl_total;
    if (r->dl_phase && (d == 0 || r->dl_phase < d)) d = r->dl_phase;
    if (d == 0) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t now = uv_now(r->cl->loop);
    uv_timer_start(&r->timer, on_timer, d > now ? d - now : 0, 0);
}

/* Starts (or with limit_ms 0 clears) the deadline of the phase the exchange enters. */
static void req_phase(struct cn_http_client_req *r, const char *phase, uint64_t limit_ms)
{
    uint64_t old = r->dl_phase;
    r->dl_phase = limit_ms ? uv_now(r->cl->loop) + limit_ms : 0;
    r->phase = phase;
    if (old || r->dl_phase) req_arm(r);
}

/* Reports rc from the loop (callbacks never run inside cn_http_client_request). */
static void req_fail_later(struct cn_http_client_req *r, int rc)
{
    r->early_rc = rc;
    uv_timer_start(&r->timer, on_timer, 0, 0);
}

static void resp_fix(struct cn_http_client_req *r)
{
    const char *base = r->arena.p ? r->arena.p : "";
    for (size_t i = 0; i < r->nh; i++) {
        r->hdrs[i].name = cn_str_make(base + r->hoffs[i].name_off, r->hoffs[i].name_len);
        r->hdrs[i].value = cn_str_make(base + r->hoffs[i].val_off, r->hoffs[i].val_len);
    }
    r->resp.headers = r->hdrs;
    r->resp.nheaders = r->nh;
    r->resp.body = cn_str_make(base + r->body_off, r->body_len);
}

static void resp_reset(struct cn_http_client_req *r)
{
    cn_buf_reset(&r->arena);
    r->nh = r->hdr_bytes = r->body_off = r->body_len = 0;
    r->in_field = r->field_at_end = false;
    r->err = 0;
    memset(&r->resp, 0, sizeof(r->resp));
}

struct cn_str cn_http_client_resp_header(const struct cn_http_client_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (cn_http__name_eq(resp->headers[i].name, name)) return resp->headers[i].value;
    }
    return CN_STR_NULL;
}

/* ---- response parsing -------------------------------------------------------------------- */

static int hdr_add(struct cn_http_client_req *r, size_t len)
{
    r->hdr_bytes += len;
    if (r->hdr_bytes > MAX_RESP_HEADER) {
        r->err = CN_ERR_TOO_LARGE;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct cconn *c = p->data;
    if (c->req == NULL) return -1; /* bytes nobody asked for */
    resp_reset(c->req);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct cconn *c = p->data;
    struct cn_http_client_req *r = c->req;
    if (r == NULL) return -1;
    /* same continuation rule as the server: see on_header_field in http_server.c */
    bool cont = r->in_field && r->field_at_end && at == c->exec_begin;
    if (!cont) {
        if (r->nh >= MAX_RESP_HEADERS) {
            r->err = CN_ERR_TOO_LARGE;
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
    }
    if (hdr_add(r, len + 4) != 0) return -1;
    cn_buf_append(&r->arena, at, len);
    r->hoffs[r->nh - 1].name_len += len;
    r->hoffs[r->nh - 1].val_off = r->arena.len;
    r->field_at_end = (at + len == c->exec_end);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct cconn *c = p->data;
    struct cn_http_client_req *r = c->req;
    if (r == NULL || r->nh == 0) return -1;
    r->in_field = false;
    if (hdr_add(r, len) != 0) return -1;
    cn_buf_append(&r->arena, at, len);
    r->hoffs[r->nh - 1].val_len += len;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct cconn *c = p->data;
    struct cn_http_client_req *r = c->req;
    if (r == NULL) return -1;
    r->in_field = false;
    r->resp.status = (int)p->status_code;
    r->body_off = r->arena.len;
    if (p->status_code / 100 == 1) return 0; /* 100 Continue: the real answer follows */
    resp_fix(r);
    if (r->on_head && !r->head_done) {
        r->head_done = true;
        r->dl_total = 0; /* timeout_ms ends here in stream mode; read_timeout_ms goes on */
        req_arm(r);
        r->on_head(r, &r->resp, r->ctx);
        if (r->finished) return -1; /* canceled inside */
    }
    return r->is_head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct cconn *c = p->data;
    struct cn_http_client_req *r = c->req;
    if (r == NULL) return -1;
    if (r->on_chunk) {
        r->on_chunk(r, at, len, r->ctx);
        return r->finished ? -1 : 0;
    }
    if (r->body_len + len > r->max_body) {
        r->err = CN_ERR_TOO_LARGE;
        return -1;
    }
    cn_buf_append(&r->arena, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct cconn *c = p->data;
    if (c->req == NULL) return -1;
    if (p->status_code / 100 == 1) return 0;
    c->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ------------------------------------------------------------------------- */

static void conn_closed(struct cn_stream *s)
{
    struct cconn *c = s->data;
    struct cn_http_client *cl = c->cl;
    cn_list_remove(&c->link);
    cl->nconns--;
    cn_free(c);
    client_maybe_done(cl);
}

static void conn_close(struct cconn *c)
{
    if (c->closing) return;
    c->closing = true;
    if (!cn_list_empty(&c->idle_link)) {
        cn_list_remove(&c->idle_link);
        c->cl->nidle--;
    }
    cn_stream_close(c->s, conn_closed);
}

/* The connection failed under its request: retry once if that is safe, else report. */
static void conn_fail(struct cconn *c, int rc)
{
    struct cn_http_client_req *r = c->req;
    c->complete = false;
    conn_close(c);
    if (r == NULL || r->finished) return;
    c->req = NULL;
    r->conn = NULL;
    if (c->reused && !c->got_bytes && r->replayable && !r->retried) {
        r->retried = true;
        r->no_reuse = true;
        req_start(r);
        return;
    }
    req_finish(r, rc, true);
}

static void conn_done(struct cconn *c, bool keep)
{
    struct cn_http_client_req *r = c->req;
    struct cn_http_client *cl = c->cl;
    c->req = NULL;
    if (r) r->conn = NULL;
    if (keep && !cl->closing) {
        http_parser_init(&c->parser, HTTP_RESPONSE);
        c->parser.data = c;
        c->complete = false;
        c->got_bytes = false;
        cn_list_insert_tail(&cl->idle, &c->idle_link);
        if (++cl->nidle > MAX_IDLE) {
            conn_close(CN_CONTAINER_OF(cl->idle.next, struct cconn, idle_link));
        }
    } else {
        conn_close(c);
    }
    if (r) {
        resp_fix(r);
        if (r->on_head) r->resp.body = cn_str_make("", 0);
        req_finish(r, 0, true);
    }
}

static void on_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    struct cconn *c = s->data;
    buf->p = c->cl->rbuf;
    buf->len = CREAD_BUF_LEN;
}

static void conn_parse(struct cconn *c, const char *p, size_t n)
{
    c->exec_begin = p;
    c->exec_end = p + n;
    size_t used = http_parser_execute(&c->parser, &resp_settings, p, n);
    if (c->closing) return;
    if (c->complete) {
        conn_done(c, n > 0 && used == n && http_should_keep_alive(&c->parser));
        return;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e != HPE_OK || n == 0) {
        struct cn_http_client_req *r = c->req;
        int rc = (r && r->err) ? r->err : (e == HPE_OK ? -ECONNRESET : CN_ERR_PROTO);
        if (e != HPE_OK) CN_LOGD("http", "client bad response err=%s", http_errno_name(e));
        conn_fail(c, rc);
    }
}

static void on_read(struct cn_stream *s, ssize_t nread, const struct cn_stream_buf *buf)
{
    struct cconn *c = s->data;
    if (c->closing) return;
    if (nread > 0) {
        if (c->req == NULL) { /* idle: nothing may arrive */
            conn_close(c);
            return;
        }
        c->got_bytes = true;
        struct cn_http_client_req *r = c->req;
        if (r->read_timeout_ms && !r->writing) req_phase(r, "read", r->read_timeout_ms);
        conn_parse(c, buf->p, (size_t)nread);
    } else if (nread == CN_ERR_EOF) {
        if (c->req == NULL) {
            conn_close(c);
            return;
        }
        /* lets http-parser finish a body delimited by the close; else the exchange failed */
        if (c->got_bytes)
            conn_parse(c, NULL, 0);
        else
            conn_fail(c, -ECONNRESET);
    } else if (nread < 0) {
        conn_fail(c, (int)nread);
    }
}

static void on_write(struct cn_stream *s, int status, void *arg)
{
    struct cconn *c = arg;
    if (c->closing) return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    struct cn_http_client_req *r = c->req;
    if (r && r->writing) {
        r->writing = false;
        req_phase(r, "read", r->read_timeout_ms);
    }
}

/* The request is queued for writing on c: the write phase starts. */
static void req_writing(struct cn_http_client_req *r)
{
    r->writing = true;
    req_phase(r, "write", r->write_timeout_ms);
}

static void conn_send(struct cconn *c)
{
    struct cn_http_client_req *r = c->req;
    struct cn_str b = cn_buf_str(&r->out);
    int rc = cn_stream_write(c->s, &b, 1, on_write, c);
    if (rc == 0) rc = cn_stream_read_start(c->s, on_alloc, on_read);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    req_writing(r);
}

static void on_connect(struct cn_stream *s, int status)
{
    struct cconn *c = s->data;
    if (c->closing) return;
    if (status < 0) {
        if (status == CN_ERR_TIMEOUT)
            CN_LOGD("http", "client request timed out key=%s phase=connect", c->key);
        else if (status == CN_ERR_NOT_FOUND)
            CN_LOGD("http", "client resolve failed key=%s", c->key);
        conn_fail(c, status);
        return;
    }
    (void)cn_stream_set_nodelay(s, true); /* an optimisation only: the request works without */
    conn_send(c);
}

static void conn_open(struct cn_http_client_req *r)
{
    struct cn_http_client *cl = r->cl;
    struct cconn *c = CN_NEW(struct cconn);
    c->cl = cl;
    snprintf(c->key, sizeof(c->key), "%s", r->key);
    /* the dial limits each connect attempt itself: no phase limit meanwhile */
    req_phase(r, "connect", 0);
    int rc =
        cn_stream_tcp_dial(cl->loop, r->host, r->port, r->connect_timeout_ms, on_connect, c, &c->s);
    if (rc != 0) { /* cannot happen: the host was checked when the request was made */
        cn_free(c);
        req_fail_later(r, rc);
        return;
    }
    cn_list_init(&c->idle_link);
    cn_list_insert_tail(&cl->conns, &c->link);
    cl->nconns++;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->req = r;
    r->conn = c;
}

static void req_start(struct cn_http_client_req *r)
{
    struct cn_http_client *cl = r->cl;
    resp_reset(r);
    if (!r->no_reuse) {
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &cl->idle) {
            struct cconn *c = CN_CONTAINER_OF(it, struct cconn, idle_link);
            if (strcmp(c->key, r->key) != 0) continue;
            cn_list_remove(&c->idle_link);
            cl->nidle--;
            c->reused = true;
            c->req = r;
            r->conn = c;
            struct cn_str b = cn_buf_str(&r->out);
            int rc = cn_stream_write(c->s, &b, 1, on_write, c);
            if (rc != 0) { /* fail from the loop, not inside the caller */
                c->req = NULL;
                r->conn = NULL;
                conn_close(c);
                req_fail_later(r, rc);
                return;
            }
            req_writing(r);
            return;
        }
    }
    conn_open(r);
}

/* ---- public ------------------------------------------------------------------------------ */

struct cn_http_client *cn_http_client_new(uv_loop_t *loop)
{
    cn_http__ignore_sigpipe();
    struct cn_http_client *cl = CN_NEW(struct cn_http_client);
    cl->loop = loop;
    cn_list_init(&cl->reqs);
    cn_list_init(&cl->conns);
    cn_list_init(&cl->idle);
    cl->rbuf = cn_xmalloc(CREAD_BUF_LEN);
    return cl;
}

static bool has_header(const struct cn_http_client_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nheaders; i++) {
        if (cn_http__name_eq(cn_str_c(o->headers[i].name), name)) return true;
    }
    return false;
}

int cn_http_client_request(struct cn_http_client *cl, const struct cn_http_client_opts *o,
                           struct cn_http_client_req **out)
{
    CN_ASSERT(!cl->closing && o->on_done && o->method && o->url);
    struct http_parser_url u;
    http_parser_url_init(&u);
    size_t ulen = strlen(o->url);
    if (http_parser_parse_url(o->url, ulen, 0, &u) != 0 || !(u.field_set & (1 << UF_SCHEMA)) ||
        !(u.field_set & (1 << UF_HOST)))
        return CN_ERR_INVAL;
    struct cn_str scheme =
        cn_str_make(o->url + u.field_data[UF_SCHEMA].off, u.field_data[UF_SCHEMA].len);
    if (cn_http__name_eq(scheme, "https")) return -EPROTONOSUPPORT;
    if (!cn_http__name_eq(scheme, "http")) return CN_ERR_INVAL;
    struct cn_str host = cn_str_make(o->url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
    if (host.len == 0 || host.len >= 256) return CN_ERR_INVAL;

    struct cn_http_client_req *r = CN_NEW(struct cn_http_client_req);
    r->cl = cl;
    cn_list_insert_tail(&cl->reqs, &r->link);
    cl->nreqs++;
    r->on_head = o->on_head;
    r->on_chunk = o->on_chunk;
    r->on_done = o->on_done;
    r->ctx = o->ctx;
    memcpy(r->host, host.p, host.len);
    r->port = (u.field_set & (1 << UF_PORT)) ? u.port : 80;
    bool v6 = memchr(r->host, ':', host.len) != NULL;
    snprintf(r->key, sizeof(r->key), v6 ? "[%s]:%u" : "%s:%u", r->host, (unsigned)r->port);
    r->is_head = strcmp(o->method, "HEAD") == 0;
    r->replayable = (r->is_head || strcmp(o->method, "GET") == 0) && o->body_len == 0;
    r->max_body = o->max_body_bytes ? o->max_body_bytes : DEFAULT_MAX_BODY;
    r->timeout_ms = o->timeout_ms;
    r->connect_timeout_ms = o->connect_timeout_ms;
    r->write_timeout_ms = o->write_timeout_ms;
    r->read_timeout_ms = o->read_timeout_ms;

    /* the Host header names the target; the connection goes to the proxy, if any */
    char host_hdr[300];
    if (r->port != 80)
        snprintf(host_hdr, sizeof(host_hdr), "%s", r->key);
    else
        snprintf(host_hdr, sizeof(host_hdr), v6 ? "[%s]" : "%s", r->host);
    if (o->proxy && *o->proxy) {
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (http_parser_parse_url(o->proxy, strlen(o->proxy), 0, &pu) != 0 ||
            !(pu.field_set & (1 << UF_HOST)) || pu.field_data[UF_HOST].len >= 256) {
            cn_list_remove(&r->link);
            cl->nreqs--;
            cn_free(r);
            return CN_ERR_INVAL;
        }
        memset(r->host, 0, sizeof(r->host));
        memcpy(r->host, o->proxy + pu.field_data[UF_HOST].off, pu.field_data[UF_HOST].len);
        r->port = (pu.field_set & (1 << UF_PORT)) ? pu.port : 80;
        bool pv6 = strchr(r->host, ':') != NULL;
        snprintf(r->key, sizeof(r->key), pv6 ? "[%s]:%u" : "%s:%u", r->host, (unsigned)r->port);
    }
    struct cn_buf *b = &r->out;
    cn_buf_reserve(b, 256 + o->body_len);
    cn_buf_appends(b, o->method);
    cn_buf_putc(b, ' ');
    if (o->proxy && *o->proxy) { /* absolute form: the URL up to its authority's end */
        size_t end = (size_t)u.field_data[UF_HOST].off + u.field_data[UF_HOST].len;
        if (u.field_set & (1 << UF_PORT)) end += 1 + (size_t)u.field_data[UF_PORT].len;
        cn_buf_append(b, o->url, end);
    }
    if (u.field_set & (1 << UF_PATH))
        cn_buf_append(b, o->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        cn_buf_putc(b, '/');
    if (u.field_set & (1 << UF_QUERY)) {
        cn_buf_putc(b, '?');
        cn_buf_append(b, o->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    cn_buf_append(b, " HTTP/1.1\r\n", 11);
    if (!has_header(o, "Host")) {
        cn_buf_append(b, "Host: ", 6);
        cn_buf_appends(b, host_hdr);
        cn_buf_append(b, "\r\n", 2);
    }
    for (size_t i = 0; i < o->nheaders; i++) {
        cn_buf_appends(b, o->headers[i].name);
        cn_buf_append(b, ": ", 2);
        cn_http__put_value(b, o->headers[i].value);
        cn_buf_append(b, "\r\n", 2);
    }
    if (o->body_len > 0 || strcmp(o->method, "PUT") == 0 || strcmp(o->method, "POST") == 0) {
        cn_buf_append(b, "Content-Length: ", 16);
        cn_buf_append_u64(b, o->body_len);
        cn_buf_append(b, "\r\n", 2);
    }
    cn_buf_append(b, "\r\n", 2);
    if (o->body_len) cn_buf_append(b, o->body, o->body_len);

    uv_timer_init(cl->loop, &r->timer);
    r->timer.data = r;
    if (r->timeout_ms) {
        r->dl_total = uv_now(cl->loop) + r->timeout_ms;
        req_arm(r);
    }
    if (out) *out = r;
    req_start(r);
    return 0;
}

void cn_http_client_cancel(struct cn_http_client_req *req)
{
    req_finish(req, CN_ERR_CANCELED, false);
}

static void client_maybe_done(struct cn_http_client *cl)
{
    if (!cl->closing || cl->nconns > 0 || cl->nreqs > 0) return;
    void (*cb)(void *) = cl->close_cb;
    void *ctx = cl->close_ctx;
    cn_free(cl->rbuf);
    cn_free(cl);
    if (cb) cb(ctx);
}

static void throwaway_closed(uv_handle_t *h)
{
    struct cn_http_client *cl = h->data;
    cn_free(h);
    cl->nreqs--;
    client_maybe_done(cl);
}

void cn_http_client_close(struct cn_http_client *cl, void (*close_cb)(void *ctx), void *ctx)
{
    CN_ASSERT(!cl->closing);
    cl->closing = true;
    cl->close_cb = close_cb;
    cl->close_ctx = ctx;
    /* each request holds its timer open until req_finish closes it, so cl stays until then */
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &cl->reqs) {
        struct cn_http_client_req *r = CN_CONTAINER_OF(it, struct cn_http_client_req, link);
        req_finish(r, CN_ERR_CANCELED, true);
    }
    CN_LIST_FOREACH(it, tmp, &cl->conns) {
        conn_close(CN_CONTAINER_OF(it, struct cconn, link));
    }
    if (cl->nconns == 0 && cl->nreqs == 0) {
        /* nothing open: still answer from the loop, through a throwaway handle */
        uv_timer_t *t = cn_xmalloc(sizeof(*t));
        uv_timer_init(cl->loop, t);
        t->data = cl;
        cl->nreqs++; /* held by t */
        uv_close((uv_handle_t *)t, throwaway_closed);
    }
}
