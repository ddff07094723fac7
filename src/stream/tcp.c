/* tcp: struct cn_stream over a libuv uv_tcp_t, with the dialer (name resolution on the thread
 * pool, several addresses tried in order) and the listener.
 *
 * Design notes
 *
 * A dial (struct dial, allocated only while dialing) goes
 *
 *     RESOLVING (uv_getaddrinfo; skipped for an IP literal) --> CONNECTING address i
 *         CONNECTING --connected--> done (dial_end 0)
 *         CONNECTING --failed, more addresses--> handle closed and re-initialised
 *                                                (attempt_closed) --> CONNECTING address i+1
 *         CONNECTING --failed, last address--> done (dial_end error)
 *         CONNECTING --attempt timer--> handle closed (attempt_closed) --> done (CN_ERR_TIMEOUT)
 *         any state --cn_stream_close--> done (dial_end -ECANCELED)
 *
 * A uv_tcp_t whose connect failed cannot connect again, hence the close and re-init between
 * attempts. The dial's timer limits an attempt and also carries an error found synchronously
 * (a refused uv_getaddrinfo or uv_tcp_connect) to the loop, so the callback never runs inside
 * cn_stream_tcp_dial (rule 2 of stream.h).
 *
 * Invariants:
 *  1. t->h is initialised from creation to the end, except while it is closed between two
 *     attempts (t->between); so cn_stream_close always has the handle to close.
 *  2. A dial reports exactly once (dial_end), which takes it off its stream (t->dial = NULL);
 *     what is left of it (its timer closing, a getaddrinfo or a connect still to call back) frees
 *     it later (dial_maybe_free).
 *  3. A stream is freed only when its handle is closed for good and no dial of it is left
 *     (tcp_maybe_free), which runs the owner's close callback first; libuv has by then called
 *     back every pending write and shutdown (with UV_ECANCELED, if they were cut short). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/list.h"
#include "common/log.h"
#include "stream/stream_int.h"

#define DIAL_MAX_ADDRS 4

struct tcp;

struct wreq {
    uv_write_t w;
    struct tcp *t;
    cn_stream_write_cb cb;
    void *arg;
};

struct dial {
    struct tcp *t;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_timer_t timer; /* attempt limit, or an error to report from the loop */
    cn_stream_connect_cb cb;
    uint64_t attempt_ms;
    struct sockaddr_storage addrs[DIAL_MAX_ADDRS];
    size_t naddrs, i;
    int err; /* what the dial reports when it fails */
    bool gai_busy, connecting, timed_out, ended, timer_closed;
};

struct tcp {
    struct cn_stream base; /* first: the owner only sees this */
    uv_loop_t *loop;
    uv_tcp_t h;
    uv_shutdown_t sreq;
    cn_stream_shutdown_cb shutdown_cb; /* while a shutdown is pending */
    struct wreq *spare;                /* a finished write request, kept for the next write */
    struct dial *dial;                 /* while dialing, until it reports */
    int ndials;                        /* dials not freed yet (0 or 1) */
    bool connected;
    bool between;  /* h is closing between two dial attempts */
    bool h_closed; /* h was closed for good */
};

#define TCP(s) CN_CONTAINER_OF((s), struct tcp, base)

static const struct cn_stream_ops tcp_ops;

static void tcp_maybe_free(struct tcp *t)
{
    if (!t->base.closing || !t->h_closed || t->ndials > 0) return;
    cn_stream__closed(&t->base);
    cn_free(t->spare);
    cn_free(t);
}

static struct tcp *tcp_new(uv_loop_t *loop, void *data)
{
    struct tcp *t = CN_NEW(struct tcp);
    cn_stream__init(&t->base, &tcp_ops, data);
    t->loop = loop;
    uv_tcp_init(loop, &t->h);
    t->h.data = t;
    return t;
}

/* ---- dialing --------------------------------------------------------------------------------- */

static void dial_maybe_free(struct dial *d)
{
    if (!d->ended || !d->timer_closed || d->gai_busy || d->connecting) return;
    struct tcp *t = d->t;
    cn_free(d);
    t->ndials--;
    tcp_maybe_free(t);
}

static void dial_timer_closed(uv_handle_t *h)
{
    struct dial *d = h->data;
    d->timer_closed = true;
    dial_maybe_free(d);
}

/* Reports the dial's outcome (invariant 2). The owner may close the stream inside cb. */
static void dial_end(struct dial *d, int status)
{
    if (d->ended) return;
    struct tcp *t = d->t;
    d->ended = true;
    t->dial = NULL;
    uv_close((uv_handle_t *)&d->timer, dial_timer_closed);
    if (status == 0) t->connected = true;
    d->cb(&t->base, status);
}

static void dial_try(struct dial *d);

/* The handle of a failed or timed-out attempt is closed: re-initialise it (invariant 1), then
 * try the next address or report. */
static void attempt_closed(uv_handle_t *h)
{
    struct tcp *t = h->data;
    struct dial *d = t->dial;
    t->between = false;
    if (t->base.closing) {
        t->h_closed = true;
        if (d) dial_end(d, -ECANCELED);
        tcp_maybe_free(t);
        return;
    }
    uv_tcp_init(t->loop, &t->h);
    t->h.data = t;
    if (d->timed_out || d->i + 1 >= d->naddrs) {
        dial_end(d, d->err);
        return;
    }
    d->i++;
    dial_try(d);
}

static void attempt_abandon(struct dial *d)
{
    struct tcp *t = d->t;
    t->between = true;
    uv_close((uv_handle_t *)&t->h, attempt_closed);
}

static void dial_timer_cb(uv_timer_t *timer)
{
    struct dial *d = timer->data;
    if (d->t->base.closing) {
        dial_end(d, -ECANCELED); /* the handle is closing: on_connect follows with UV_ECANCELED */
        return;
    }
    if (d->connecting) {
        CN_LOGD("stream", "connect attempt timed out limit_ms=%llu",
                (unsigned long long)d->attempt_ms);
        d->timed_out = true;
        d->err = CN_ERR_TIMEOUT;
        attempt_abandon(d); /* on_connect gets UV_ECANCELED, then attempt_closed reports */
        return;
    }
    dial_end(d, d->err);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct dial *d = req->data;
    struct tcp *t = d->t;
    d->connecting = false;
    if (d->ended || d->timed_out) {
        dial_maybe_free(d);
        return;
    }
    uv_timer_stop(&d->timer);
    if (t->base.closing) {
        dial_end(d, -ECANCELED);
    } else if (status == 0) {
        dial_end(d, 0);
    } else {
        d->err = cn_stream__err(status);
        if (d->i + 1 < d->naddrs)
            attempt_abandon(d);
        else
            dial_end(d, d->err);
    }
    dial_maybe_free(d);
}

static void dial_try(struct dial *d)
{
    struct tcp *t = d->t;
    d->creq.data = d;
    int rc = uv_tcp_connect(&d->creq, &t->h, (const struct sockaddr *)&d->addrs[d->i], on_connect);
    if (rc != 0) {
        d->err = cn_stream__err(rc);
        if (d->i + 1 < d->naddrs)
            attempt_abandon(d);
        else
            uv_timer_start(&d->timer, dial_timer_cb, 0, 0); /* report from the loop */
        return;
    }
    d->connecting = true;
    if (d->attempt_ms) uv_timer_start(&d->timer, dial_timer_cb, d->attempt_ms, 0);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct dial *d = g->data;
    struct tcp *t = d->t;
    d->gai_busy = false;
    if (d->ended || t->base.closing) {
        uv_freeaddrinfo(res);
        dial_end(d, -ECANCELED);
        dial_maybe_free(d);
        return;
    }
    d->naddrs = 0;
    for (struct addrinfo *ai = res; ai && d->naddrs < DIAL_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        if (ai->ai_addrlen > sizeof(d->addrs[0])) continue;
        memcpy(&d->addrs[d->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
    uv_freeaddrinfo(res);
    if (status != 0 || d->naddrs == 0) {
        CN_LOGD("stream", "resolve failed err=\"%s\"", status ? uv_strerror(status) : "no address");
        dial_end(d, CN_ERR_NOT_FOUND);
        return;
    }
    dial_try(d);
}

int cn_stream_tcp_dial(uv_loop_t *loop, const char *host, uint16_t port,
                       uint64_t attempt_timeout_ms, cn_stream_connect_cb cb, void *data,
                       struct cn_stream **out)
{
    CN_ASSERT(cb != NULL);
    /* host comes from configuration or a URL the caller parsed, not from the network */
    size_t hlen = host ? strnlen(host, 256) : 0;
    if (hlen == 0 || hlen >= 256) return CN_ERR_INVAL;
    struct tcp *t = tcp_new(loop, data);
    struct dial *d = CN_NEW(struct dial);
    d->t = t;
    d->cb = cb;
    d->attempt_ms = attempt_timeout_ms;
    d->gai.data = d;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    t->dial = d;
    t->ndials = 1;
    *out = &t->base;

    struct sockaddr_storage *ss = &d->addrs[0];
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        d->naddrs = 1;
        dial_try(d);
        return 0;
    }
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(loop, &d->gai, on_resolved, host, portstr, &hints);
    if (rc != 0) {
        CN_LOGD("stream", "resolve failed err=\"%s\"", uv_strerror(rc));
        d->err = CN_ERR_NOT_FOUND;
        uv_timer_start(&d->timer, dial_timer_cb, 0, 0); /* report from the loop */
        return 0;
    }
    d->gai_busy = true;
    return 0;
}

/* ---- the stream ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct tcp *t = h->data;
    struct cn_stream_buf b = {NULL, 0};
    t->base.alloc_cb(&t->base, hint, &b);
    buf->base = b.p;
    buf->len = b.len;
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp *t = h->data;
    struct cn_stream_buf b = {buf->base, buf->len};
    if (nread == UV_EOF) t->base.reading = false; /* libuv stops reading at EOF */
    t->base.read_cb(&t->base, nread < 0 ? cn_stream__err((int)nread) : nread, &b);
}

static int tcp_read_start(struct cn_stream *s)
{
    struct tcp *t = TCP(s);
    if (!t->connected) return -ENOTCONN;
    return cn_stream__err(uv_read_start((uv_stream_t *)&t->h, on_alloc, on_read));
}

static void tcp_read_stop(struct cn_stream *s)
{
    (void)uv_read_stop((uv_stream_t *)&TCP(s)->h); /* always 0 (libuv >= 1.38) */
}

static void to_uv_bufs(uv_buf_t *v, const struct cn_str *bufs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        v[i].base = (char *)bufs[i].p; /* libuv only reads them */
        v[i].len = bufs[i].len;
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct wreq *r = CN_CONTAINER_OF(w, struct wreq, w);
    struct tcp *t = r->t;
    cn_stream_write_cb cb = r->cb;
    void *arg = r->arg;
    if (t->spare == NULL)
        t->spare = r;
    else
        cn_free(r);
    cb(&t->base, cn_stream__err(status), arg);
}

static int tcp_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs,
                     cn_stream_write_cb cb, void *arg)
{
    struct tcp *t = TCP(s);
    if (!t->connected) return -ENOTCONN;
    uv_buf_t v[CN_STREAM_MAX_BUFS];
    to_uv_bufs(v, bufs, nbufs);
    struct wreq *r = t->spare ? t->spare : CN_NEW(struct wreq);
    t->spare = NULL;
    r->t = t;
    r->cb = cb;
    r->arg = arg;
    int rc = uv_write(&r->w, (uv_stream_t *)&t->h, v, (unsigned int)nbufs, on_write);
    if (rc != 0) {
        t->spare = r;
        return cn_stream__err(rc);
    }
    return 0;
}

static int tcp_try_write(struct cn_stream *s, const struct cn_str *bufs, size_t nbufs)
{
    struct tcp *t = TCP(s);
    if (!t->connected) return -ENOTCONN;
    uv_buf_t v[CN_STREAM_MAX_BUFS];
    to_uv_bufs(v, bufs, nbufs);
    int rc = uv_try_write((uv_stream_t *)&t->h, v, (unsigned int)nbufs);
    if (rc == UV_ENOSYS) return -EAGAIN;
    return rc >= 0 ? rc : cn_stream__err(rc);
}

static size_t tcp_write_queue_size(const struct cn_stream *s)
{
    return TCP(s)->h.write_queue_size;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct tcp *t = req->data;
    cn_stream_shutdown_cb cb = t->shutdown_cb;
    t->shutdown_cb = NULL;
    cb(&t->base, cn_stream__err(status));
}

static int tcp_shutdown(struct cn_stream *s, cn_stream_shutdown_cb cb)
{
    struct tcp *t = TCP(s);
    if (!t->connected) return -ENOTCONN;
    if (t->shutdown_cb) return -EALREADY;
    t->sreq.data = t;
    int rc = uv_shutdown(&t->sreq, (uv_stream_t *)&t->h, on_shutdown);
    if (rc != 0) return cn_stream__err(rc);
    t->shutdown_cb = cb;
    return 0;
}

static void h_closed(uv_handle_t *h)
{
    struct tcp *t = h->data;
    t->h_closed = true;
    if (t->dial) dial_end(t->dial, -ECANCELED);
    tcp_maybe_free(t);
}

static void tcp_close(struct cn_stream *s)
{
    struct tcp *t = TCP(s);
    struct dial *d = t->dial;
    /* the getaddrinfo callback runs either way (UV_EAI_CANCELED if it had not started) */
    if (d && d->gai_busy) (void)uv_cancel((uv_req_t *)&d->gai);
    if (!t->between) uv_close((uv_handle_t *)&t->h, h_closed); /* else attempt_closed ends it */
}

static int tcp_set_nodelay(struct cn_stream *s, bool on)
{
    return cn_stream__err(uv_tcp_nodelay(&TCP(s)->h, on ? 1 : 0));
}

static int tcp_peer_addr(const struct cn_stream *s, struct sockaddr_storage *out)
{
    const struct tcp *t = TCP(s);
    if (!t->connected) return -ENOTCONN;
    int len = (int)sizeof(*out);
    return cn_stream__err(uv_tcp_getpeername(&t->h, (struct sockaddr *)out, &len));
}

static const struct cn_stream_ops tcp_ops = {
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .write = tcp_write,
    .try_write = tcp_try_write,
    .write_queue_size = tcp_write_queue_size,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .set_nodelay = tcp_set_nodelay,
    .peer_addr = tcp_peer_addr,
};

/* ---- listening ------------------------------------------------------------------------------- */

struct listener {
    struct cn_stream_listener base; /* first */
    uv_loop_t *loop;
    uv_tcp_t h;
    cn_stream_accept_cb cb;
    void (*close_cb)(struct cn_stream_listener *l);
};

#define LISTENER(l) CN_CONTAINER_OF((l), struct listener, base)

static void on_connection(uv_stream_t *h, int status)
{
    struct listener *l = h->data;
    if (status < 0) {
        l->cb(&l->base, cn_stream__err(status), NULL);
        return;
    }
    struct tcp *t = tcp_new(l->loop, NULL);
    int rc = uv_accept(h, (uv_stream_t *)&t->h);
    if (rc != 0) {
        t->base.closing = true; /* nobody's: freed from its close callback */
        uv_close((uv_handle_t *)&t->h, h_closed);
        l->cb(&l->base, cn_stream__err(rc), NULL);
        return;
    }
    t->connected = true;
    l->cb(&l->base, 0, &t->base);
}

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    if (l->close_cb) l->close_cb(&l->base);
    cn_free(l);
}

int cn_stream_tcp_listen(uv_loop_t *loop, const struct sockaddr *addr, bool ipv6_only, int backlog,
                         cn_stream_accept_cb cb, void *data, struct cn_stream_listener **out)
{
    CN_ASSERT(cb != NULL);
    struct listener *l = CN_NEW(struct listener);
    l->base.data = data;
    l->loop = loop;
    l->cb = cb;
    uv_tcp_init(loop, &l->h);
    l->h.data = l;
    unsigned int flags = ipv6_only && addr->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    /* libuv sets SO_REUSEADDR; a bind error such as EADDRINUSE may only show at listen */
    int rc = uv_tcp_bind(&l->h, addr, flags);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->h, backlog, on_connection);
    if (rc != 0) {
        uv_close((uv_handle_t *)&l->h, listener_closed); /* close_cb is NULL: only frees */
        return cn_stream__err(rc);
    }
    *out = &l->base;
    return 0;
}

int cn_stream_listener_addr(const struct cn_stream_listener *l, struct sockaddr_storage *out)
{
    int len = (int)sizeof(*out);
    return cn_stream__err(uv_tcp_getsockname(&LISTENER(l)->h, (struct sockaddr *)out, &len));
}

void cn_stream_listener_close(struct cn_stream_listener *l,
                              void (*cb)(struct cn_stream_listener *l))
{
    struct listener *li = LISTENER(l);
    li->close_cb = cb;
    uv_close((uv_handle_t *)&li->h, listener_closed);
}
