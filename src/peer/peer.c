/* peer: see peer.h for the wire format.
 *
 * Design notes
 *   An outbound link (struct out) per known member: IDLE -> RESOLVING -> CONNECTING -> UP; any
 *   error closes the socket and arms the retry timer (backoff). Frames are appended to out->queue;
 *   when no write is in flight the queue becomes the write buffer (swap), so everything queued
 *   while a write was out leaves in the next single write: batching for free.
 *   An inbound connection (struct in) reads into a buffer, waits for the first line, then either
 *   parses frames or answers one HTTP GET and closes.
 *   Handles are freed in their close callbacks; t->handles counts them for cn_peer_close. */
#include "peer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/url.h"

#define HELLO_MAX    256
#define HTTP_MAX     8192
#define BACKOFF_MIN  50
#define BACKOFF_MAX  1000
#define FRAME_HEADER 9

enum { O_IDLE, O_RESOLVING, O_CONNECTING, O_UP, O_CLOSING };

struct out {
    struct cn_peer *t;
    uint64_t id;
    char *url;
    struct cn_url u;
    int state;
    uv_tcp_t *tcp; /* NULL when not connected */
    uv_connect_t conn_req;
    uv_getaddrinfo_t gai;
    bool gai_busy;
    bool connect_busy;
    uint64_t up_since; /* loop time the connection came up */
    uv_timer_t retry;
    unsigned backoff;
    struct cn_buf queue;   /* frames not yet handed to the socket */
    struct cn_buf writing; /* the write in flight */
    uv_write_t wr;
    bool write_busy;
    bool dead; /* forgotten: free once nothing is pending */
    bool logged_down;
    struct out *next;
};

struct in {
    struct cn_peer *t;
    uv_tcp_t tcp;
    struct cn_buf rbuf;
    size_t roff;
    int mode; /* 0 hello, 1 frames, 2 http (answered, closing) */
    uint64_t from;
    struct cn_buf assembly; /* chunked payload being reassembled */
    uint64_t asm_total;
    uint8_t asm_kind;
    struct cn_buf resp;
    uv_write_t wr;
    bool closing;
    struct in *next, *prev;
};

struct cn_peer {
    uv_loop_t *loop;
    uint64_t cluster_id, self_id;
    struct cn_peer_callbacks cb;
    void *ctx;
    uv_tcp_t *listeners[8];
    size_t nlisteners;
    struct out *outs;
    struct in *ins;
    int handles;
    bool closing;
    void (*close_cb)(void *);
    void *close_ctx;
};

static void handle_closed(struct cn_peer *t)
{
    if (--t->handles > 0 || !t->closing) return;
    void (*cb)(void *) = t->close_cb;
    void *ctx = t->close_ctx;
    cn_free(t);
    if (cb) cb(ctx);
}

/* ---- outbound ----------------------------------------------------------------------------- */

static void out_dial(struct out *o);

static void retry_cb(uv_timer_t *h)
{
    out_dial(h->data);
}

static void tcp_freed(uv_handle_t *h)
{
    struct cn_peer *t = h->data;
    cn_free(h);
    handle_closed(t);
}

static void retry_closed(uv_handle_t *h)
{
    struct out *o = h->data;
    struct cn_peer *t = o->t;
    cn_buf_free(&o->queue);
    cn_buf_free(&o->writing);
    cn_free(o->url);
    cn_free(o);
    handle_closed(t);
}

static void out_free_if_dead(struct out *o)
{
    if (!o->dead || o->tcp || o->gai_busy || o->write_busy || o->connect_busy) return;
    if (!uv_is_closing((uv_handle_t *)&o->retry)) {
        o->retry.data = o;
        uv_close((uv_handle_t *)&o->retry, retry_closed);
    }
}

static void out_drop_socket(struct out *o, const char *why, int err)
{
    if (o->tcp) {
        o->tcp->data = o->t;
        if (!uv_is_closing((uv_handle_t *)o->tcp)) uv_close((uv_handle_t *)o->tcp, tcp_freed);
        o->tcp = NULL;
    }
    if (o->state == O_UP || !o->logged_down) {
        if (o->state == O_UP)
            CN_LOGW("peer", "lost connection to peer id=%" PRIx64 " url=%s why=%s err=\"%s\"",
                    o->id, o->url, why, err ? uv_strerror(err) : "-");
        else
            CN_LOGI("peer", "cannot reach peer id=%" PRIx64 " url=%s why=%s err=\"%s\"", o->id,
                    o->url, why, err ? uv_strerror(err) : "-");
        o->logged_down = true;
    }
    /* a link refused right after the hello (another cluster, a removed member) must not be
     * redialed at the minimum backoff: only a connection that lasted resets it */
    if (o->state == O_UP && uv_now(o->t->loop) - o->up_since > 2000) o->backoff = 0;
    o->state = O_IDLE;
    cn_buf_reset(&o->queue);
    if (o->dead || o->t->closing) {
        out_free_if_dead(o);
        return;
    }
    if (o->backoff == 0)
        o->backoff = BACKOFF_MIN;
    else if ((o->backoff *= 2) > BACKOFF_MAX)
        o->backoff = BACKOFF_MAX;
    uv_timer_start(&o->retry, retry_cb, o->backoff, 0);
}

static void out_flush(struct out *o);

static void out_write_done(uv_write_t *w, int status)
{
    struct out *o = w->data;
    o->write_busy = false;
    cn_buf_reset(&o->writing);
    if (status != 0) {
        if (o->tcp) out_drop_socket(o, "write", status);
        out_free_if_dead(o);
        return;
    }
    if (o->dead) {
        out_free_if_dead(o);
        return;
    }
    out_flush(o);
}

static void out_flush(struct out *o)
{
    if (o->write_busy || o->state != O_UP || o->queue.len == 0) return;
    struct cn_buf tmp = o->writing;
    o->writing = o->queue;
    o->queue = tmp;
    uv_buf_t b = uv_buf_init(o->writing.p, (unsigned)o->writing.len);
    o->wr.data = o;
    int rc = uv_write(&o->wr, (uv_stream_t *)o->tcp, &b, 1, out_write_done);
    if (rc != 0) {
        cn_buf_reset(&o->writing);
        out_drop_socket(o, "write", rc);
        return;
    }
    o->write_busy = true;
}

static void out_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    static char sink[4096];
    *b = uv_buf_init(sink, sizeof(sink));
}

/* The dialer expects nothing back but the acceptor's "you were removed" line; otherwise reading
 * only notices the peer closing. */
static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct out *o = s->data;
    if (n > 0 && (size_t)n >= 16 && memcmp(b->base, "CNPEER/1 removed", 16) == 0 &&
        o->t->cb.on_told_removed) {
        o->t->cb.on_told_removed(o->t->ctx, o->id);
        return;
    }
    if (n < 0) out_drop_socket(o, n == UV_EOF ? "closed by peer" : "read", (int)n);
}

static void out_connected(uv_connect_t *c, int status)
{
    struct out *o = c->data;
    o->connect_busy = false;
    if (o->dead) {
        out_free_if_dead(o);
        return;
    }
    if (o->state != O_CONNECTING) return;
    if (status != 0) {
        out_drop_socket(o, "connect", status);
        return;
    }
    o->state = O_UP;
    o->up_since = uv_now(o->t->loop);
    if (o->logged_down) CN_LOGI("peer", "connected to peer id=%" PRIx64 " url=%s", o->id, o->url);
    o->logged_down = false;
    uv_tcp_nodelay(o->tcp, 1);
    uv_read_start((uv_stream_t *)o->tcp, out_alloc, out_read);
    struct cn_buf hello = CN_BUF_INIT;
    cn_buf_appendf(&hello, "CNPEER/1 cluster=%" PRIx64 " from=%" PRIx64 " to=%" PRIx64 "\n",
                   o->t->cluster_id, o->t->self_id, o->id);
    /* the hello goes before anything queued meanwhile */
    cn_buf_append(&hello, o->queue.p, o->queue.len);
    cn_buf_free(&o->queue);
    o->queue = hello;
    out_flush(o);
}

static void out_connect_addr(struct out *o, const struct sockaddr *sa)
{
    o->tcp = cn_xcalloc(1, sizeof(*o->tcp));
    uv_tcp_init(o->t->loop, o->tcp);
    o->t->handles++;
    o->tcp->data = o;
    o->conn_req.data = o;
    o->state = O_CONNECTING;
    int rc = uv_tcp_connect(&o->conn_req, o->tcp, sa, out_connected);
    if (rc == 0) o->connect_busy = true;
    if (rc != 0) {
        o->state = O_IDLE;
        out_drop_socket(o, "connect", rc);
    }
}

static void out_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    struct out *o = g->data;
    o->gai_busy = false;
    if (o->dead || o->t->closing) {
        uv_freeaddrinfo(ai);
        o->state = O_IDLE;
        out_free_if_dead(o);
        return;
    }
    if (status != 0 || ai == NULL) {
        o->state = O_IDLE;
        uv_freeaddrinfo(ai);
        out_drop_socket(o, "resolve", status);
        return;
    }
    out_connect_addr(o, ai->ai_addr);
    uv_freeaddrinfo(ai);
}

static void out_dial(struct out *o)
{
    if (o->state != O_IDLE || o->dead || o->t->closing) return;
    struct sockaddr_storage ss;
    char port[8];
    snprintf(port, sizeof(port), "%u", o->u.port);
    if (uv_ip4_addr(o->u.host, o->u.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(o->u.host, o->u.port, (struct sockaddr_in6 *)&ss) == 0) {
        out_connect_addr(o, (struct sockaddr *)&ss);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    o->gai.data = o;
    o->state = O_RESOLVING;
    if (uv_getaddrinfo(o->t->loop, &o->gai, out_resolved, o->u.host, port, &hints) != 0) {
        o->state = O_IDLE;
        out_drop_socket(o, "resolve", UV_EAI_FAIL);
        return;
    }
    o->gai_busy = true;
}

static struct out *out_find(const struct cn_peer *t, uint64_t id)
{
    for (struct out *o = t->outs; o; o = o->next)
        if (o->id == id && !o->dead) return o;
    return NULL;
}

static void out_forget(struct out *o)
{
    o->dead = true;
    uv_timer_stop(&o->retry);
    if (o->tcp) out_drop_socket(o, "forgotten", 0);
    out_free_if_dead(o);
}

void cn_peer_set_addr(struct cn_peer *t, uint64_t id, const char *url)
{
    if (id == t->self_id || t->closing) return;
    struct out *o = out_find(t, id);
    if (o && url && strcmp(o->url, url) == 0) return;
    if (o) {
        /* unlink and let it free itself */
        for (struct out **pp = &t->outs; *pp; pp = &(*pp)->next)
            if (*pp == o) {
                *pp = o->next;
                break;
            }
        out_forget(o);
    }
    if (url == NULL) return;
    struct cn_url u;
    char err[256];
    if (cn_url_parse(url, &u, err, sizeof(err)) != 0) {
        CN_LOGW("peer", "ignoring bad peer url id=%" PRIx64 " url=%s err=\"%s\"", id, url, err);
        return;
    }
    o = CN_NEW(struct out);
    o->t = t;
    o->id = id;
    o->url = cn_xstrdup(url);
    o->u = u;
    cn_buf_init(&o->queue);
    cn_buf_init(&o->writing);
    uv_timer_init(t->loop, &o->retry);
    o->retry.data = o;
    t->handles++;
    o->next = t->outs;
    t->outs = o;
    out_dial(o);
}

static void put_frame_header(struct cn_buf *b, uint8_t kind, const void *p, size_t len)
{
    uint32_t crc = (uint32_t)crc32(0L, &kind, 1);
    crc = (uint32_t)crc32(crc, p, (uInt)len);
    cn_buf_put_u32(b, (uint32_t)len);
    cn_buf_put_u32(b, crc);
    cn_buf_put_u8(b, kind);
}

int cn_peer_send(struct cn_peer *t, uint64_t to, uint8_t kind, const void *p, size_t len)
{
    struct out *o = out_find(t, to);
    if (o == NULL) return CN_ERR_NOT_FOUND;
    if (len > CN_PEER_MAX_MESSAGE) return CN_ERR_TOO_LARGE;
    if (o->state != O_UP) {
        if (o->state == O_IDLE && !uv_is_active((uv_handle_t *)&o->retry)) out_dial(o);
        return -ENOTCONN;
    }
    if (o->queue.len + len > CN_PEER_MAX_QUEUE) return -ENOBUFS;
    if (len <= CN_PEER_CHUNK) {
        put_frame_header(&o->queue, kind, p, len);
        cn_buf_append(&o->queue, p, len);
    } else {
        const uint8_t *b = p;
        for (size_t off = 0; off < len; off += CN_PEER_CHUNK) {
            size_t n = len - off < CN_PEER_CHUNK ? len - off : CN_PEER_CHUNK;
            struct cn_buf c = CN_BUF_INIT;
            cn_buf_put_u64(&c, len);
            cn_buf_put_u64(&c, off);
            cn_buf_put_u8(&c, kind);
            cn_buf_append(&c, b + off, n);
            put_frame_header(&o->queue, CN_PEER_KIND_CHUNK, c.p, c.len);
            cn_buf_append(&o->queue, c.p, c.len);
            cn_buf_free(&c);
        }
    }
    out_flush(o);
    return 0;
}

bool cn_peer_connected(const struct cn_peer *t, uint64_t id)
{
    const struct out *o = out_find(t, id);
    return o && o->state == O_UP;
}

/* ---- inbound ------------------------------------------------------------------------------ */

static void in_closed(uv_handle_t *h)
{
    struct in *c = h->data;
    struct cn_peer *t = c->t;
    cn_buf_free(&c->rbuf);
    cn_buf_free(&c->assembly);
    cn_buf_free(&c->resp);
    cn_free(c);
    handle_closed(t);
}

static void in_close(struct in *c)
{
    if (c->closing) return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->t->ins = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, in_closed);
}

static void in_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    struct in *c = h->data;
    if (c->roff && c->roff == c->rbuf.len) {
        c->rbuf.len = c->roff = 0;
    } else if (c->roff > 1u << 20) {
        memmove(c->rbuf.p, c->rbuf.p + c->roff, c->rbuf.len - c->roff);
        c->rbuf.len -= c->roff;
        c->roff = 0;
    }
    cn_buf_reserve(&c->rbuf, 64 * 1024);
    *b = uv_buf_init(c->rbuf.p + c->rbuf.len, (unsigned)(c->rbuf.cap - c->rbuf.len));
}

static void http_written(uv_write_t *w, int status)
{
    (void)status;
    in_close(w->data);
}

static void in_http(struct in *c, const char *line)
{
    char method[8] = "", path[256] = "";
    int status = 404;
    struct cn_buf body = CN_BUF_INIT;
    if (sscanf(line, "%7s %255s", method, path) == 2 && strcmp(method, "GET") == 0) {
        char *q = strchr(path, '?');
        if (q) *q = '\0';
        status = c->t->cb.on_http_get(c->t->ctx, path, &body);
    } else {
        status = 405;
    }
    if (status == 404 && body.len == 0) cn_buf_appends(&body, "404 page not found\n");
    cn_buf_appendf(&c->resp,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nX-Etcd-Cluster-ID: %" PRIx64
                   "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status,
                   status == 200   ? "OK"
                   : status == 404 ? "Not Found"
                                   : "Error",
                   status == 200 ? "application/json" : "text/plain; charset=utf-8",
                   c->t->cluster_id, body.len);
    cn_buf_append(&c->resp, body.p, body.len);
    cn_buf_free(&body);
    c->mode = 2;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_buf_t b = uv_buf_init(c->resp.p, (unsigned)c->resp.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, http_written) != 0) in_close(c);
}

/* Returns false when the connection was closed. */
static bool in_hello(struct in *c)
{
    const char *p = c->rbuf.p + c->roff;
    size_t n = c->rbuf.len - c->roff;
    if (n >= 4 && memcmp(p, "CNPE", 4) != 0) {
        /* plain HTTP: wait for the end of the headers */
        const char *end = memmem(p, n, "\r\n\r\n", 4);
        if (end == NULL) {
            if (n > HTTP_MAX) in_close(c);
            return false;
        }
        const char *eol = memchr(p, '\r', n);
        char line[300];
        size_t l = (size_t)(eol - p) < sizeof(line) - 1 ? (size_t)(eol - p) : sizeof(line) - 1;
        memcpy(line, p, l);
        line[l] = '\0';
        in_http(c, line);
        return false;
    }
    const char *nl = memchr(p, '\n', n);
    if (nl == NULL) {
        if (n > HELLO_MAX) {
            CN_LOGW("peer", "refused peer connection: no hello");
            in_close(c);
        }
        return false;
    }
    char line[HELLO_MAX + 1];
    size_t l = (size_t)(nl - p) < HELLO_MAX ? (size_t)(nl - p) : HELLO_MAX;
    memcpy(line, p, l);
    line[l] = '\0';
    c->roff += (size_t)(nl - p) + 1;
    uint64_t cid = 0, from = 0, to = 0;
    if (sscanf(line, "CNPEER/1 cluster=%" SCNx64 " from=%" SCNx64 " to=%" SCNx64, &cid, &from,
               &to) != 3) {
        CN_LOGW("peer", "refused peer connection: bad hello line=\"%.80s\"", line);
        in_close(c);
        return false;
    }
    if (cid != c->t->cluster_id) {
        CN_LOGW("peer",
                "refused connection from a member of another cluster from=%" PRIx64
                " their_cluster=%" PRIx64 " our_cluster=%" PRIx64,
                from, cid, c->t->cluster_id);
        in_close(c);
        return false;
    }
    if (to != c->t->self_id) {
        CN_LOGW("peer",
                "refused peer connection meant for another member from=%" PRIx64 " to=%" PRIx64
                " self=%" PRIx64,
                from, to, c->t->self_id);
        in_close(c);
        return false;
    }
    c->from = from;
    if (c->t->cb.is_removed && c->t->cb.is_removed(c->t->ctx, from)) {
        CN_LOGI("peer", "telling a removed member it was removed from=%" PRIx64, from);
        static const char msg[] = "CNPEER/1 removed\n";
        cn_buf_append(&c->resp, msg, sizeof(msg) - 1);
        c->mode = 2;
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_buf_t ub = uv_buf_init(c->resp.p, (unsigned)c->resp.len);
        c->wr.data = c;
        if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &ub, 1, http_written) != 0) in_close(c);
        return false;
    }
    c->mode = 1;
    return true;
}

static void in_deliver(struct in *c, uint8_t kind, const uint8_t *p, size_t len)
{
    if (kind != CN_PEER_KIND_CHUNK) {
        c->t->cb.on_frame(c->t->ctx, c->from, kind, p, len);
        return;
    }
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    uint64_t total = cn_rd_u64(&r), off = cn_rd_u64(&r);
    uint8_t inner = cn_rd_u8(&r);
    size_t n = cn_rd_left(&r);
    if (!cn_rd_ok(&r) || total > CN_PEER_MAX_MESSAGE || off != c->assembly.len || off + n > total ||
        (off > 0 && (total != c->asm_total || inner != c->asm_kind))) {
        CN_LOGW("peer", "bad chunk from peer id=%" PRIx64 ": closing", c->from);
        in_close(c);
        return;
    }
    if (off == 0) {
        c->asm_total = total;
        c->asm_kind = inner;
    }
    cn_buf_append(&c->assembly, p + (len - n), n);
    if (c->assembly.len == total) {
        c->t->cb.on_frame(c->t->ctx, c->from, inner, c->assembly.p, c->assembly.len);
        cn_buf_free(&c->assembly);
        cn_buf_init(&c->assembly);
    }
}

static void in_frames(struct in *c)
{
    while (!c->closing) {
        size_t n = c->rbuf.len - c->roff;
        if (n < FRAME_HEADER) return;
        struct cn_rd r;
        cn_rd_init(&r, c->rbuf.p + c->roff, FRAME_HEADER);
        uint32_t len = cn_rd_u32(&r), crc = cn_rd_u32(&r);
        uint8_t kind = cn_rd_u8(&r);
        if (len > CN_PEER_MAX_FRAME) {
            CN_LOGW("peer", "frame too large from peer id=%" PRIx64 " len=%" PRIu32 ": closing",
                    c->from, len);
            in_close(c);
            return;
        }
        if (n < FRAME_HEADER + (size_t)len) {
            cn_buf_reserve(&c->rbuf, FRAME_HEADER + (size_t)len);
            return;
        }
        const uint8_t *payload = (const uint8_t *)c->rbuf.p + c->roff + FRAME_HEADER;
        uint32_t got = (uint32_t)crc32(0L, &kind, 1);
        got = (uint32_t)crc32(got, payload, len);
        if (got != crc) {
            CN_LOGW("peer", "frame checksum mismatch from peer id=%" PRIx64 ": closing", c->from);
            in_close(c);
            return;
        }
        c->roff += FRAME_HEADER + (size_t)len;
        in_deliver(c, kind, payload, len);
    }
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct in *c = s->data;
    if (n < 0) {
        if (n == UV_EOF && c->mode == 1 && c->t->cb.on_peer_closed)
            c->t->cb.on_peer_closed(c->t->ctx, c->from);
        in_close(c);
        return;
    }
    c->rbuf.len += (size_t)n;
    if (c->mode == 0 && !in_hello(c)) return;
    if (c->mode == 1) in_frames(c);
}

static void on_accept(uv_stream_t *srv, int status)
{
    struct cn_peer *t = srv->data;
    if (status != 0 || t->closing) return;
    struct in *c = CN_NEW(struct in);
    c->t = t;
    cn_buf_init(&c->rbuf);
    cn_buf_init(&c->assembly);
    cn_buf_init(&c->resp);
    uv_tcp_init(t->loop, &c->tcp);
    c->tcp.data = c;
    t->handles++;
    c->next = t->ins;
    if (t->ins) t->ins->prev = c;
    t->ins = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        in_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, in_alloc, in_read);
}

void cn_peer_disconnect(struct cn_peer *t, uint64_t id)
{
    struct in *c = t->ins;
    while (c) {
        struct in *next = c->next;
        if (c->mode == 1 && c->from == id) in_close(c);
        c = next;
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

struct cn_peer *cn_peer_new(uv_loop_t *loop, uint64_t cluster_id, uint64_t self_id,
                            const struct cn_peer_callbacks *cb, void *ctx)
{
    struct cn_peer *t = CN_NEW(struct cn_peer);
    t->loop = loop;
    t->cluster_id = cluster_id;
    t->self_id = self_id;
    t->cb = *cb;
    t->ctx = ctx;
    return t;
}

int cn_peer_listen(struct cn_peer *t, const char *host, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    const char *h = host && *host && strcmp(host, "0.0.0.0") != 0 ? host : NULL;
    int rc = getaddrinfo(h, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return CN_ERR_NOT_FOUND;
    }
    int bound = 0, last = 0;
    for (struct addrinfo *ai = res; ai && t->nlisteners < 8; ai = ai->ai_next) {
        uv_tcp_t *l = cn_xcalloc(1, sizeof(*l));
        uv_tcp_init(t->loop, l);
        l->data = t;
        t->handles++;
        unsigned flags = ai->ai_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
        int e = uv_tcp_bind(l, ai->ai_addr, flags);
        if (e == 0) e = uv_listen((uv_stream_t *)l, 511, on_accept);
        if (e != 0) {
            last = e;
            uv_close((uv_handle_t *)l, tcp_freed);
            continue;
        }
        t->listeners[t->nlisteners++] = l;
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0) {
        snprintf(err, errlen, "listen tcp %s:%u: %s", host, port, uv_strerror(last));
        return last ? last : CN_ERR_INVAL;
    }
    return 0;
}

void cn_peer_close(struct cn_peer *t, void (*cb)(void *ctx), void *ctx)
{
    t->closing = true;
    t->close_cb = cb;
    t->close_ctx = ctx;
    t->handles++; /* held until the end of this function */
    for (size_t i = 0; i < t->nlisteners; i++)
        uv_close((uv_handle_t *)t->listeners[i], tcp_freed);
    while (t->ins)
        in_close(t->ins);
    struct out *o = t->outs;
    t->outs = NULL;
    while (o) {
        struct out *next = o->next;
        out_forget(o);
        o = next;
    }
    handle_closed(t);
}
