/* http_server: the server half of src/http: listeners, connections handed over by another
 * protocol, close, CORS. The design notes are in server_int.h. */
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
    struct conn *c = cn_http__conn_new(srv, s);
    c->sniff = srv->h2_hook != NULL;
    (void)cn_stream_set_nodelay(s, true); /* an optimisation only: the connection works without */
    cn_http__conn_update_read(c);
}

int cn_http_server_adopt(struct cn_http_server *srv, struct cn_stream *s, const void *head,
                         size_t head_len)
{
    if (srv->closing) return CN_ERR_STOPPED;
    cn_stream_read_stop(s); /* reading restarts with this module's callbacks */
    struct conn *c = cn_http__conn_new(srv, s);
    if (head_len > 0) cn_buf_append(&c->in, head, head_len); /* parsed from the resume handle */
    cn_http__conn_update_read(c);
    return 0;
}

void cn_http_server_set_h2(struct cn_http_server *srv, cn_http_h2_hook fn, void *ctx)
{
    srv->h2_hook = fn;
    srv->h2_ctx = ctx;
}

/* ---- server ------------------------------------------------------------------------------ */

static void server_free(struct cn_http_server *srv)
{
    while (!cn_list_empty(&srv->pool)) {
        struct req *r = CN_CONTAINER_OF(srv->pool.next, struct req, link);
        cn_list_remove(&r->link);
        cn_http__req_free(r);
    }
    cn_free(srv->lis);
    cn_free(srv->rbuf);
    cn_free(srv);
}

static void aux_closed(uv_handle_t *h)
{
    struct cn_http_server *srv = h->data;
    srv->nhandles--;
    cn_http__server_maybe_done(srv);
}

static void listener_closed(struct cn_stream_listener *l)
{
    struct cn_http_server *srv = l->data;
    srv->nhandles--;
    cn_http__server_maybe_done(srv);
}

void cn_http__server_maybe_done(struct cn_http_server *srv)
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
            cn_http__conn_close(c);
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
            cn_http__stream_finish(c, s);
        }
        if (c->closing) continue;
        if (cn_list_empty(&c->queue) && !c->writing && c->wout.len == 0) {
            cn_http__conn_close(c); /* idle */
            continue;
        }
        cn_http__conn_advance(c);
    }
    /* close_cb must come from the loop, even with nothing open: the idle and timer handles are
     * closed at the latest here, so their close callbacks get there. */
    cn_http__server_maybe_done(srv);
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
