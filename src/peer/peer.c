/* peer: see peer.h for the wire format; its codec (hello line, frames, chunks) is codec.c.
 *
 * Design notes
 *   An outbound link (struct out) per known member: IDLE -> CONNECTING (cn_stream_tcp_dial:
 *   resolving, then connecting) -> UP; any error closes the stream and arms the retry timer
 *   (backoff). Frames are appended to out->queue; when no write is in flight the queue becomes
 *   the write buffer (swap), so everything queued while a write was out leaves in the next single
 *   write: batching for free.
 *   An inbound connection (struct in) reads into a buffer and looks at its first bytes: a hello
 *   line makes it a frame connection; anything else is HTTP, and the stream goes, with the bytes
 *   read so far, to the transport's own HTTP server (cn_http_server_adopt), whose handler answers
 *   through on_http_get.
 *
 * Invariants:
 *  1. out->s is the link's current stream (dialing or up), NULL while idle. A stream that was
 *     dropped may still call back (connect or write with -ECANCELED) before its close callback;
 *     callbacks compare their stream with out->s and ignore stale ones.
 *  2. A struct out is freed only once it is dead and every stream it had is closed
 *     (out->nstreams == 0), from its retry timer's close callback; a struct in only from its
 *     stream's close callback, or when its stream was handed to the HTTP server.
 *  3. t->handles counts what cn_peer_close waits for: listeners, streams, retry timers and the
 *     HTTP server; t is freed when the last of them is closed. */
#include "peer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/url.h"
#include "http/http.h"
#include "peer_int.h"
#include "stream/stream.h"

#define HTTP_MAX       8192 /* request head (and body) limit of the peer port's HTTP */
#define BACKOFF_MIN    50
#define BACKOFF_MAX    1000
#define MAX_LISTENERS  8
#define LISTEN_BACKLOG 511
#define PATH_MAX_LEN   255 /* longest path handed to on_http_get */

enum { O_IDLE, O_CONNECTING, O_UP };
enum { IN_HELLO, IN_FRAMES, IN_ANSWERED };

struct out {
    struct cn_peer *t;
    uint64_t id;
    char *url;
    struct cn_url u;
    int state;
    struct cn_stream *s; /* the current stream (invariant 1) */
    int nstreams;        /* streams not closed yet: the current one and dropped ones */
    uint64_t up_since;   /* loop time the connection came up */
    uv_timer_t retry;
    unsigned backoff;
    struct cn_buf queue;   /* frames not yet handed to the stream */
    struct cn_buf writing; /* the write in flight */
    bool write_busy;
    bool dead; /* forgotten: free once nothing is pending */
    bool logged_down;
    struct out *next;
};

struct in {
    struct cn_peer *t;
    struct cn_stream *s;
    struct cn_buf rbuf;
    size_t roff;
    int mode;
    uint64_t from;
    struct cn_peer__asm assembly; /* chunked payload being reassembled */
    struct cn_buf resp;
    bool closing;
    struct in *next, *prev;
};

struct cn_peer {
    uv_loop_t *loop;
    uint64_t cluster_id, self_id;
    struct cn_peer_callbacks cb;
    void *ctx;
    struct cn_stream_listener *listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct cn_http_server *http; /* the port's HTTP side */
    struct out *outs;
    struct in *ins;
    int handles;
    bool closing;
    void (*close_cb)(void *);
    void *close_ctx;
    char sink[4096]; /* where outbound links read into: they expect nearly nothing */
};

static void handle_closed(struct cn_peer *t)
{
    if (--t->handles > 0 || !t->closing) return;
    void (*cb)(void *) = t->close_cb;
    void *ctx = t->close_ctx;
    cn_free(t);
    if (cb) cb(ctx);
}

/* A stream's remote address, for the log ("?" when unknown). */
static void remote_name(struct cn_stream *s, char *out, size_t len)
{
    struct sockaddr_storage ss;
    snprintf(out, len, "?");
    if (cn_stream_peer_addr(s, &ss) != 0) return;
    char ip[64];
    if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip)) == 0)
        snprintf(out, len, "%s:%u", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    else if (ss.ss_family == AF_INET6 &&
             uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip)) == 0)
        snprintf(out, len, "[%s]:%u", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
}

/* ---- outbound ----------------------------------------------------------------------------- */

static void out_dial(struct out *o);

static void retry_cb(uv_timer_t *h)
{
    out_dial(h->data);
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
    if (!o->dead || o->s || o->nstreams > 0) return;
    if (!uv_is_closing((uv_handle_t *)&o->retry)) {
        o->retry.data = o;
        uv_close((uv_handle_t *)&o->retry, retry_closed);
    }
}

static void out_stream_closed(struct cn_stream *s)
{
    struct out *o = s->data;
    struct cn_peer *t = o->t;
    o->nstreams--;
    out_free_if_dead(o);
    handle_closed(t); /* never the last: o's retry timer is still counted */
}

static void out_drop_socket(struct out *o, const char *why, int err)
{
    if (o->s) {
        cn_stream_close(o->s, out_stream_closed);
        o->s = NULL;
    }
    if (o->state == O_UP || !o->logged_down) {
        if (o->state == O_UP)
            CN_LOGW("peer", "lost connection to peer id=%" PRIx64 " url=%s why=%s err=\"%s\"",
                    o->id, o->url, why, err ? cn_strerror(err) : "-");
        else
            CN_LOGI("peer", "cannot reach peer id=%" PRIx64 " url=%s why=%s err=\"%s\"", o->id,
                    o->url, why, err ? cn_strerror(err) : "-");
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

static void out_write_done(struct cn_stream *s, int status, void *arg)
{
    struct out *o = arg;
    o->write_busy = false;
    cn_buf_reset(&o->writing);
    if (s != o->s) { /* a dropped stream's write (invariant 1) */
        out_flush(o);
        out_free_if_dead(o);
        return;
    }
    if (status != 0) {
        out_drop_socket(o, "write", status);
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
    struct cn_str b = cn_buf_str(&o->writing);
    int rc = cn_stream_write(o->s, &b, 1, out_write_done, o);
    if (rc != 0) {
        cn_buf_reset(&o->writing);
        out_drop_socket(o, "write", rc);
        return;
    }
    o->write_busy = true;
}

static void out_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    struct out *o = s->data;
    buf->p = o->t->sink;
    buf->len = sizeof(o->t->sink);
}

/* The dialer expects nothing back but the acceptor's "you were removed" line; otherwise reading
 * only notices the peer closing. */
static void out_read(struct cn_stream *s, ssize_t n, const struct cn_stream_buf *buf)
{
    struct out *o = s->data;
    const size_t removed_len = CN_PEER__REMOVED_LEN - 1; /* without its '\n' */
    if (n > 0 && (size_t)n >= removed_len && memcmp(buf->p, CN_PEER__REMOVED, removed_len) == 0 &&
        o->t->cb.on_told_removed) {
        o->t->cb.on_told_removed(o->t->ctx, o->id);
        return;
    }
    if (n < 0) out_drop_socket(o, n == CN_ERR_EOF ? "closed by peer" : "read", (int)n);
}

static void out_connected(struct cn_stream *s, int status)
{
    struct out *o = s->data;
    if (s != o->s) return; /* dropped while dialing: its close callback follows */
    if (status != 0) {
        out_drop_socket(o, status == CN_ERR_NOT_FOUND ? "resolve" : "connect", status);
        return;
    }
    o->state = O_UP;
    o->up_since = uv_now(o->t->loop);
    if (o->logged_down) CN_LOGI("peer", "connected to peer id=%" PRIx64 " url=%s", o->id, o->url);
    o->logged_down = false;
    (void)cn_stream_set_nodelay(s, true); /* an optimisation only: the link works without */
    int rc = cn_stream_read_start(s, out_alloc, out_read);
    if (rc != 0) {
        out_drop_socket(o, "read", rc);
        return;
    }
    struct cn_buf hello = CN_BUF_INIT;
    cn_peer__hello_put(&hello, &(struct cn_peer__hello){o->t->cluster_id, o->t->self_id, o->id});
    /* the hello goes before anything queued meanwhile */
    cn_buf_append(&hello, o->queue.p, o->queue.len);
    cn_buf_free(&o->queue);
    o->queue = hello;
    out_flush(o);
}

static void out_dial(struct out *o)
{
    if (o->state != O_IDLE || o->dead || o->t->closing) return;
    struct cn_stream *s;
    int rc = cn_stream_tcp_dial(o->t->loop, o->u.host, o->u.port, 0, out_connected, o, &s);
    if (rc != 0) { /* cannot happen: the URL's host was parsed */
        out_drop_socket(o, "connect", rc);
        return;
    }
    o->s = s;
    o->nstreams++;
    o->t->handles++;
    o->state = O_CONNECTING;
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
    if (o->s) out_drop_socket(o, "forgotten", 0);
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
    cn_peer__encode(&o->queue, kind, p, len);
    out_flush(o);
    return 0;
}

bool cn_peer_connected(const struct cn_peer *t, uint64_t id)
{
    const struct out *o = out_find(t, id);
    return o && o->state == O_UP;
}

/* ---- inbound ------------------------------------------------------------------------------ */

static void in_unlink(struct in *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->t->ins = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void in_free(struct in *c)
{
    struct cn_peer *t = c->t;
    cn_buf_free(&c->rbuf);
    cn_peer__asm_free(&c->assembly);
    cn_buf_free(&c->resp);
    cn_free(c);
    handle_closed(t);
}

static void in_closed(struct cn_stream *s)
{
    in_free(s->data);
}

static void in_close(struct in *c)
{
    if (c->closing) return;
    c->closing = true;
    in_unlink(c);
    cn_stream_close(c->s, in_closed);
}

static void in_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    struct in *c = s->data;
    if (c->roff && c->roff == c->rbuf.len) {
        c->rbuf.len = c->roff = 0;
    } else if (c->roff > 1u << 20) {
        memmove(c->rbuf.p, c->rbuf.p + c->roff, c->rbuf.len - c->roff);
        c->rbuf.len -= c->roff;
        c->roff = 0;
    }
    cn_buf_reserve(&c->rbuf, 64 * 1024);
    buf->p = c->rbuf.p + c->rbuf.len;
    buf->len = c->rbuf.cap - c->rbuf.len;
}

/* The HTTP side of the port (cn_http_server_adopt): etcd's GET /members and /version. */
static void http_handler(struct cn_http_req *req, void *ctx)
{
    struct cn_peer *t = ctx;
    int status = 405;
    struct cn_buf body = CN_BUF_INIT;
    if (req->method == CN_HTTP_GET) {
        char path[PATH_MAX_LEN + 1];
        status = 404;
        if (req->path.len <= PATH_MAX_LEN) {
            memcpy(path, req->path.p, req->path.len);
            path[req->path.len] = '\0';
            status = t->cb.on_http_get(t->ctx, path, &body);
        }
    }
    if (status == 404 && body.len == 0) cn_buf_appends(&body, "404 page not found\n");
    char cid[24];
    snprintf(cid, sizeof(cid), "%" PRIx64, t->cluster_id);
    const struct cn_http_hdr h[] = {{"X-Etcd-Cluster-ID", cid}};
    cn_http_respond(req, status, status == 200 ? "application/json" : "text/plain; charset=utf-8",
                    h, 1, body.p, body.len, true);
    cn_buf_free(&body);
}

/* Hands the stream and what was read so far to the HTTP server; c is done with. */
static void in_to_http(struct in *c)
{
    int rc = cn_http_server_adopt(c->t->http, c->s, c->rbuf.p + c->roff, c->rbuf.len - c->roff);
    if (rc != 0) { /* cannot happen: the server closes with the transport, and c with it */
        in_close(c);
        return;
    }
    /* c no longer holds the stream (the server set its data and callbacks), so it may go now,
     * inside what was its read callback */
    in_unlink(c);
    in_free(c);
}

static void removed_written(struct cn_stream *s, int status, void *arg)
{
    in_close(arg);
}

/* Returns true when the connection carries frames from now on. */
static bool in_hello(struct in *c)
{
    struct cn_peer *t = c->t;
    const char *p = c->rbuf.p + c->roff;
    size_t n = c->rbuf.len - c->roff;
    if (memcmp(p, "CNPE", n < 4 ? n : 4) != 0) {
        in_to_http(c);
        return false;
    }
    struct cn_peer__hello h;
    int rc = cn_peer__hello_parse(p, n, &h);
    if (rc == 0) return false; /* more to come */
    char who[80];
    remote_name(c->s, who, sizeof(who));
    if (rc < 0) {
        CN_LOGW("peer", "refused peer connection: bad hello addr=%s", who);
        in_close(c);
        return false;
    }
    c->roff += (size_t)rc;
    if (h.cluster_id != t->cluster_id) {
        CN_LOGW("peer",
                "refused connection from a member of another cluster from=%" PRIx64
                " their_cluster=%" PRIx64 " our_cluster=%" PRIx64 " addr=%s",
                h.from, h.cluster_id, t->cluster_id, who);
        in_close(c);
        return false;
    }
    if (h.to != t->self_id) {
        CN_LOGW("peer",
                "refused peer connection meant for another member from=%" PRIx64 " to=%" PRIx64
                " self=%" PRIx64 " addr=%s",
                h.from, h.to, t->self_id, who);
        in_close(c);
        return false;
    }
    c->from = h.from;
    if (t->cb.is_removed && t->cb.is_removed(t->ctx, h.from)) {
        CN_LOGI("peer", "telling a removed member it was removed from=%" PRIx64, h.from);
        cn_buf_append(&c->resp, CN_PEER__REMOVED, CN_PEER__REMOVED_LEN);
        c->mode = IN_ANSWERED;
        cn_stream_read_stop(c->s);
        struct cn_str b = cn_buf_str(&c->resp);
        if (cn_stream_write(c->s, &b, 1, removed_written, c) != 0) in_close(c);
        return false;
    }
    c->mode = IN_FRAMES;
    return true;
}

static void in_payload(void *ctx, uint8_t kind, const void *p, size_t len)
{
    struct in *c = ctx;
    c->t->cb.on_frame(c->t->ctx, c->from, kind, p, len);
}

static void in_frames(struct in *c)
{
    while (!c->closing) {
        size_t have = c->rbuf.len - c->roff, want = 0;
        struct cn_peer__frame f;
        int rc = cn_peer__frame_decode(c->rbuf.p + c->roff, have, &f, &want);
        if (rc == 0) {
            cn_buf_reserve(&c->rbuf, want - have); /* room for the whole frame */
            return;
        }
        if (rc < 0) {
            CN_LOGW("peer", "%s from peer id=%" PRIx64 ": closing",
                    rc == CN_ERR_TOO_LARGE ? "frame too large" : "frame checksum mismatch",
                    c->from);
            in_close(c);
            return;
        }
        c->roff += (size_t)rc;
        if (cn_peer__asm_feed(&c->assembly, &f, in_payload, c) != 0) {
            CN_LOGW("peer", "bad chunk from peer id=%" PRIx64 ": closing", c->from);
            in_close(c);
            return;
        }
    }
}

static void in_read(struct cn_stream *s, ssize_t n, const struct cn_stream_buf *buf)
{
    struct in *c = s->data;
    if (n < 0) {
        if (n == CN_ERR_EOF && c->mode == IN_FRAMES && c->t->cb.on_peer_closed)
            c->t->cb.on_peer_closed(c->t->ctx, c->from);
        in_close(c);
        return;
    }
    c->rbuf.len += (size_t)n;
    if (n == 0) return;
    if (c->mode == IN_HELLO && !in_hello(c)) return;
    if (c->mode == IN_FRAMES) in_frames(c);
}

static void on_accept(struct cn_stream_listener *l, int status, struct cn_stream *s)
{
    struct cn_peer *t = l->data;
    if (status != 0) {
        CN_LOGW("peer", "accept failed err=\"%s\"", cn_strerror(status));
        return;
    }
    if (t->closing) { /* cannot happen: the listeners close first */
        cn_stream_close(s, NULL);
        return;
    }
    struct in *c = CN_NEW(struct in);
    c->t = t;
    c->s = s;
    s->data = c;
    cn_buf_init(&c->rbuf);
    cn_buf_init(&c->resp);
    t->handles++;
    c->next = t->ins;
    if (t->ins) t->ins->prev = c;
    t->ins = c;
    (void)cn_stream_set_nodelay(s, true); /* an optimisation only: the link works without */
    if (cn_stream_read_start(s, in_alloc, in_read) != 0) in_close(c);
}

void cn_peer_disconnect(struct cn_peer *t, uint64_t id)
{
    struct in *c = t->ins;
    while (c) {
        struct in *next = c->next;
        if (c->mode == IN_FRAMES && c->from == id) in_close(c);
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
    const struct cn_http_limits lim = {
        .max_header_bytes = HTTP_MAX, .max_body_bytes = HTTP_MAX, .max_pipeline = 1};
    t->http = cn_http_server_new(loop, &lim, http_handler, NULL, t);
    return t;
}

static void listener_closed(struct cn_stream_listener *l)
{
    handle_closed(l->data);
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
    for (struct addrinfo *ai = res; ai && t->nlisteners < MAX_LISTENERS; ai = ai->ai_next) {
        struct cn_stream_listener *l;
        int e = cn_stream_tcp_listen(t->loop, ai->ai_addr, true, LISTEN_BACKLOG, on_accept, t, &l);
        if (e != 0) {
            last = e;
            continue;
        }
        t->listeners[t->nlisteners++] = l;
        t->handles++;
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0) {
        snprintf(err, errlen, "listen tcp %s:%u: %s", host, port, uv_strerror(last));
        return last ? last : CN_ERR_INVAL;
    }
    return 0;
}

uint16_t cn_peer_port(const struct cn_peer *t)
{
    struct sockaddr_storage ss;
    if (t->nlisteners == 0 || cn_stream_listener_addr(t->listeners[0], &ss) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void http_closed(void *ctx)
{
    handle_closed(ctx);
}

void cn_peer_close(struct cn_peer *t, void (*cb)(void *ctx), void *ctx)
{
    t->closing = true;
    t->close_cb = cb;
    t->close_ctx = ctx;
    t->handles++; /* held until the end of this function */
    for (size_t i = 0; i < t->nlisteners; i++)
        cn_stream_listener_close(t->listeners[i], listener_closed);
    while (t->ins)
        in_close(t->ins);
    struct out *o = t->outs;
    t->outs = NULL;
    while (o) {
        struct out *next = o->next;
        out_forget(o);
        o = next;
    }
    t->handles++; /* the HTTP server, which closes its adopted connections */
    cn_http_server_close(t->http, http_closed, t);
    handle_closed(t);
}
