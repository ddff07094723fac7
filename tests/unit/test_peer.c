/* Unit tests for src/peer: transports on 127.0.0.1 (ephemeral ports) in one uv loop exchanging
 * frames, the acceptor's refusals, the port's HTTP side, and the pure codec (hello line, frames,
 * chunk reassembly) on exact bytes. No sleeps: the loop runs until a condition holds, under a
 * deadline. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "http/http_client.h"
#include "peer/peer.h"
#include "peer/peer_int.h"
#include "stream/stream.h"

#define DEADLINE_MS 5000
#define CLUSTER     0xc1u
#define MAX_FRAMES  8

static uv_loop_t loop;
static uv_timer_t tick;

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_update_time(&loop);                                                                     \
        uint64_t dl_ = uv_now(&loop) + DEADLINE_MS;                                                \
        while (!(cond)) {                                                                          \
            if (uv_now(&loop) > dl_) fail_msg("timed out waiting for: %s", #cond);                 \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        }                                                                                          \
    } while (0)

static void spin(int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void tick_closed(uv_handle_t *h)
{
    (void)h;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5); /* bounds each UV_RUN_ONCE */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&tick, tick_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* the transports closed every handle */
    return 0;
}

/* ---- a member: a transport and what its callbacks saw ---------------------------------------- */

struct frame {
    uint64_t from;
    uint8_t kind;
    struct cn_buf data;
};

struct member {
    struct cn_peer *t;
    uint64_t id;
    uint16_t port;
    char url[64];
    struct frame frames[MAX_FRAMES];
    int nframes;
    int peer_closed;
    uint64_t closed_from;
    int told_removed;
    uint64_t told_by;
    uint64_t removed; /* a member id is_removed says yes for */
    int http_gets;
    char last_path[256];
    int closed;
};

static void m_frame(void *ctx, uint64_t from, uint8_t kind, const void *p, size_t len)
{
    struct member *m = ctx;
    assert_true(m->nframes < MAX_FRAMES);
    struct frame *f = &m->frames[m->nframes++];
    f->from = from;
    f->kind = kind;
    cn_buf_init(&f->data);
    cn_buf_append(&f->data, p, len);
}

static int m_http_get(void *ctx, const char *path, struct cn_buf *body)
{
    struct member *m = ctx;
    m->http_gets++;
    snprintf(m->last_path, sizeof(m->last_path), "%s", path);
    if (strcmp(path, "/members") == 0) {
        cn_buf_appends(body, "[{\"id\":\"1\"}]");
        return 200;
    }
    if (strcmp(path, "/version") == 0) {
        cn_buf_appends(body, "{\"etcdserver\":\"2.3.8\"}");
        return 200;
    }
    return 404;
}

static void m_peer_closed(void *ctx, uint64_t from)
{
    struct member *m = ctx;
    m->peer_closed++;
    m->closed_from = from;
}

static bool m_is_removed(void *ctx, uint64_t id)
{
    struct member *m = ctx;
    return m->removed != 0 && id == m->removed;
}

static void m_told_removed(void *ctx, uint64_t by)
{
    struct member *m = ctx;
    m->told_removed++;
    m->told_by = by;
}

static const struct cn_peer_callbacks member_cb = {m_frame, m_http_get, m_peer_closed, m_is_removed,
                                                   m_told_removed};

static void m_open(struct member *m, uint64_t cluster, uint64_t id)
{
    memset(m, 0, sizeof(*m));
    m->id = id;
    m->t = cn_peer_new(&loop, cluster, id, &member_cb, m);
    char err[256];
    assert_int_equal(cn_peer_listen(m->t, "127.0.0.1", 0, err, sizeof(err)), 0);
    m->port = cn_peer_port(m->t);
    assert_true(m->port != 0);
    snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%u", (unsigned)m->port);
}

static void m_closed(void *ctx)
{
    struct member *m = ctx;
    m->closed++;
}

static void m_close(struct member *m)
{
    cn_peer_close(m->t, m_closed, m);
    assert_int_equal(m->closed, 0); /* from the loop */
    RUN_UNTIL(m->closed == 1);
    for (int i = 0; i < m->nframes; i++)
        cn_buf_free(&m->frames[i].data);
}

/* ---- a raw connection (the stream layer) ----------------------------------------------------- */

struct raw {
    struct cn_stream *s;
    struct cn_buf in;
    char rbuf[4096];
    int connected, eof, closed;
};

static void r_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    (void)hint;
    struct raw *r = s->data;
    buf->p = r->rbuf;
    buf->len = sizeof(r->rbuf);
}

static void r_read(struct cn_stream *s, ssize_t n, const struct cn_stream_buf *buf)
{
    struct raw *r = s->data;
    if (n > 0) cn_buf_append(&r->in, buf->p, (size_t)n);
    if (n < 0) r->eof++;
}

static void r_connected(struct cn_stream *s, int status)
{
    struct raw *r = s->data;
    assert_int_equal(status, 0);
    r->connected++;
    assert_int_equal(cn_stream_read_start(s, r_alloc, r_read), 0);
}

static void r_written(struct cn_stream *s, int status, void *arg)
{
    (void)s;
    (void)status;
    cn_free(arg);
}

static void r_open(struct raw *r, uint16_t port)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", port, 0, r_connected, r, &r->s), 0);
    RUN_UNTIL(r->connected == 1);
}

static void r_send(struct raw *r, const void *p, size_t n)
{
    char *copy = cn_xmemdup(p, n);
    struct cn_str b = {copy, n};
    assert_int_equal(cn_stream_write(r->s, &b, 1, r_written, copy), 0);
}

static void r_sends(struct raw *r, const char *z)
{
    r_send(r, z, strlen(z));
}

static void r_closed(struct cn_stream *s)
{
    struct raw *r = s->data;
    r->closed++;
}

static void r_close(struct raw *r)
{
    cn_stream_close(r->s, r_closed);
    RUN_UNTIL(r->closed == 1);
    cn_buf_free(&r->in);
}

/* ---- transports ------------------------------------------------------------------------------ */

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + seed);
}

/* Small, empty and chunked (> CN_PEER_CHUNK) payloads arrive whole, in order, with their kinds;
 * the acceptor learns when the dialer's end closes. */
static void frames_small_and_chunked(void **state)
{
    (void)state;
    struct member a, b;
    m_open(&a, CLUSTER, 1);
    m_open(&b, CLUSTER, 2);
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_RAFT, "x", 1), CN_ERR_NOT_FOUND);
    cn_peer_set_addr(a.t, 2, b.url);
    cn_peer_set_addr(a.t, 1, a.url); /* self: ignored */
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_RAFT, "x", 1), -ENOTCONN);
    RUN_UNTIL(cn_peer_connected(a.t, 2));

    size_t big_len = 2 * (size_t)CN_PEER_CHUNK + 12345;
    uint8_t *big = cn_xmalloc(big_len);
    fill(big, big_len, 7);
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_RAFT, "hello", 5), 0);
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_PROP, big, big_len), 0);
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_PROP_FAIL, NULL, 0), 0);
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_RAFT, big, CN_PEER_CHUNK), 0); /* edge */
    assert_int_equal(cn_peer_send(a.t, 2, CN_PEER_KIND_RAFT, big, (size_t)CN_PEER_MAX_MESSAGE + 1),
                     CN_ERR_TOO_LARGE);
    RUN_UNTIL(b.nframes == 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(b.frames[i].from, 1);
    assert_int_equal(b.frames[0].kind, CN_PEER_KIND_RAFT);
    assert_int_equal(b.frames[0].data.len, 5);
    assert_memory_equal(b.frames[0].data.p, "hello", 5);
    assert_int_equal(b.frames[1].kind, CN_PEER_KIND_PROP);
    assert_int_equal(b.frames[1].data.len, big_len);
    assert_memory_equal(b.frames[1].data.p, big, big_len);
    assert_int_equal(b.frames[2].kind, CN_PEER_KIND_PROP_FAIL);
    assert_int_equal(b.frames[2].data.len, 0);
    assert_int_equal(b.frames[3].kind, CN_PEER_KIND_RAFT);
    assert_int_equal(b.frames[3].data.len, CN_PEER_CHUNK);
    assert_memory_equal(b.frames[3].data.p, big, CN_PEER_CHUNK);
    assert_int_equal(b.peer_closed, 0);
    cn_free(big);

    m_close(&a);
    RUN_UNTIL(b.peer_closed == 1);
    assert_int_equal(b.closed_from, 1);
    assert_int_equal(b.nframes, 4);
    m_close(&b);
}

/* What a dialer puts on the wire, byte for byte: the hello line, then the frame header
 * (u32 len, u32 crc32(kind, payload), u8 kind, little-endian) and the payload. */
static void fake_accept(struct cn_stream_listener *l, int status, struct cn_stream *s)
{
    struct raw *r = l->data;
    assert_int_equal(status, 0);
    r->s = s;
    s->data = r;
    r->connected++;
    assert_int_equal(cn_stream_read_start(s, r_alloc, r_read), 0);
}

static int fake_lis_closes;

static void fake_lis_closed(struct cn_stream_listener *l)
{
    (void)l;
    fake_lis_closes++;
}

static void dialer_wire_bytes(void **state)
{
    (void)state;
    struct raw fake[1];
    memset(fake, 0, sizeof(fake));
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    struct cn_stream_listener *l;
    assert_int_equal(
        cn_stream_tcp_listen(&loop, (struct sockaddr *)&sa, false, 8, fake_accept, fake, &l), 0);
    struct sockaddr_storage ss;
    assert_int_equal(cn_stream_listener_addr(l, &ss), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u",
             (unsigned)ntohs(((struct sockaddr_in *)&ss)->sin_port));

    struct member a;
    m_open(&a, 0xabcdef0123456789u, 0x1f);
    cn_peer_set_addr(a.t, 0x2e, url);
    RUN_UNTIL(cn_peer_connected(a.t, 0x2e));
    assert_int_equal(cn_peer_send(a.t, 0x2e, CN_PEER_KIND_RAFT, "hi", 2), 0);
    static const char hello[] = "CNPEER/1 cluster=abcdef0123456789 from=1f to=2e\n";
    size_t hl = sizeof(hello) - 1;
    RUN_UNTIL(fake->in.len == hl + 9 + 2);
    assert_memory_equal(fake->in.p, hello, hl);
    uint8_t kind = CN_PEER_KIND_RAFT;
    uint32_t crc = (uint32_t)crc32(crc32(0L, &kind, 1), (const Bytef *)"hi", 2);
    const uint8_t want[] = {2,
                            0,
                            0,
                            0,
                            (uint8_t)crc,
                            (uint8_t)(crc >> 8),
                            (uint8_t)(crc >> 16),
                            (uint8_t)(crc >> 24),
                            CN_PEER_KIND_RAFT,
                            'h',
                            'i'};
    assert_memory_equal(fake->in.p + hl, want, sizeof(want));

    /* the acceptor goes away: the link notices (and redials, refused now) */
    fake_lis_closes = 0;
    cn_stream_listener_close(l, fake_lis_closed);
    cn_stream_close(fake->s, r_closed);
    RUN_UNTIL(fake->closed == 1 && fake_lis_closes == 1 && !cn_peer_connected(a.t, 0x2e));
    m_close(&a);
    cn_buf_free(&fake->in);
}

/* The acceptor refuses a hello from another cluster, for another member, or malformed: the
 * connection is closed and nothing is delivered. A good hello over a raw socket works. */
static void hello_refusals(void **state)
{
    (void)state;
    struct member b;
    m_open(&b, CLUSTER, 2);
    struct cn_buf frame = CN_BUF_INIT;
    cn_peer__encode(&frame, CN_PEER_KIND_RAFT, "payload", 7);
    static const char *const bad[] = {
        "CNPEER/1 cluster=dead from=1 to=2\n", /* another cluster */
        "CNPEER/1 cluster=c1 from=1 to=3\n",   /* meant for member 3 */
        "CNPEER/1 cluster=c1 from= to=2\n",    /* malformed */
        "CNPEER/2 cluster=c1 from=1 to=2\n",   /* unknown version */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct raw r;
        r_open(&r, b.port);
        r_sends(&r, bad[i]);
        r_send(&r, frame.p, frame.len);
        RUN_UNTIL(r.eof == 1);
        assert_int_equal(r.in.len, 0);
        r_close(&r);
    }
    assert_int_equal(b.nframes, 0);
    assert_int_equal(b.peer_closed, 0);

    /* a well-formed one, split anywhere: the frame arrives from the member it names */
    struct raw r;
    r_open(&r, b.port);
    r_sends(&r, "CNPEER/1 cluster=C1 from=");
    spin(3);
    r_sends(&r, "1 to=2\n");
    r_send(&r, frame.p, 4);
    spin(3);
    r_send(&r, frame.p + 4, frame.len - 4);
    RUN_UNTIL(b.nframes == 1);
    assert_int_equal(b.frames[0].from, 1);
    assert_int_equal(b.frames[0].kind, CN_PEER_KIND_RAFT);
    assert_memory_equal(b.frames[0].data.p, "payload", 7);
    /* a corrupt frame ends the connection (not an EOF: no on_peer_closed) */
    frame.p[frame.len - 1] ^= 1;
    r_send(&r, frame.p, frame.len);
    RUN_UNTIL(r.eof == 1);
    assert_int_equal(b.nframes, 1);
    assert_int_equal(b.peer_closed, 0);
    r_close(&r);
    cn_buf_free(&frame);
    m_close(&b);
}

/* A member the cluster removed is told so on the link it dials, and the link is closed. */
static void removed_member_told(void **state)
{
    (void)state;
    struct member a, b;
    m_open(&a, CLUSTER, 1);
    m_open(&b, CLUSTER, 2);
    b.removed = 1;
    cn_peer_set_addr(a.t, 2, b.url);
    RUN_UNTIL(a.told_removed == 1);
    assert_int_equal(a.told_by, 2);
    assert_int_equal(b.nframes, 0);
    m_close(&a);
    m_close(&b);
}

/* ---- the port's HTTP side -------------------------------------------------------------------- */

#define MEMBERS_RESP                                                                               \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Cluster-ID: c1\r\n"               \
    "Connection: close\r\nContent-Length: 12\r\n\r\n[{\"id\":\"1\"}]"
#define NOTFOUND_RESP                                                                              \
    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"                        \
    "X-Etcd-Cluster-ID: c1\r\nConnection: close\r\nContent-Length: 19\r\n\r\n404 page not found\n"
#define NOTALLOWED_RESP                                                                            \
    "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"               \
    "X-Etcd-Cluster-ID: c1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

static void http_exchange(uint16_t port, const char *first, const char *rest, const char *want)
{
    struct raw r;
    r_open(&r, port);
    r_sends(&r, first);
    if (rest) {
        spin(3); /* so the sniffing sees the first piece alone */
        r_sends(&r, rest);
    }
    RUN_UNTIL(r.eof == 1);
    assert_int_equal(r.in.len, strlen(want));
    assert_memory_equal(r.in.p, want, r.in.len);
    r_close(&r);
}

struct cres {
    int done, rc, status;
    struct cn_buf body;
};

static void c_done(struct cn_http_client_req *req, int rc, const struct cn_http_client_resp *resp,
                   void *ctx)
{
    (void)req;
    struct cres *c = ctx;
    c->done++;
    c->rc = rc;
    if (resp) {
        c->status = resp->status;
        cn_buf_append(&c->body, resp->body.p, resp->body.len);
    }
}

static void client_closed(void *ctx)
{
    (*(int *)ctx)++;
}

static void http_get_members(void **state)
{
    (void)state;
    struct member b;
    m_open(&b, CLUSTER, 2);
    http_exchange(b.port, "GET /members HTTP/1.1\r\nHost: x\r\n\r\n", NULL, MEMBERS_RESP);
    assert_int_equal(b.http_gets, 1);
    assert_string_equal(b.last_path, "/members");
    /* the query is not part of the path; a request sent in pieces (shorter than "CNPE") */
    http_exchange(b.port, "GE", "T /members?x=1 HTTP/1.1\r\n\r\n", MEMBERS_RESP);
    assert_int_equal(b.http_gets, 2);
    assert_string_equal(b.last_path, "/members");
    http_exchange(b.port, "GET /nope HTTP/1.0\r\n\r\n", NULL, NOTFOUND_RESP);
    assert_int_equal(b.http_gets, 3);
    /* only GET reaches the owner */
    http_exchange(b.port, "POST /members HTTP/1.1\r\nContent-Length: 0\r\n\r\n", NULL,
                  NOTALLOWED_RESP);
    assert_int_equal(b.http_gets, 3);
    /* malformed HTTP is answered by the http module */
    http_exchange(b.port, "BLAH\r\n\r\n", NULL,
                  "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Connection: close\r\nContent-Length: 15\r\n\r\n400 Bad Request");

    /* and through the HTTP client, as a joining member and proxies read it */
    struct cn_http_client *cl = cn_http_client_new(&loop);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/version", (unsigned)b.port);
    struct cres c = {0};
    struct cn_http_client_opts o = {.method = "GET", .url = url, .on_done = c_done, .ctx = &c};
    assert_int_equal(cn_http_client_request(cl, &o, NULL), 0);
    RUN_UNTIL(c.done == 1);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.p, "{\"etcdserver\":\"2.3.8\"}");
    int closed = 0;
    cn_http_client_close(cl, client_closed, &closed);
    RUN_UNTIL(closed == 1);
    cn_buf_free(&c.body);

    /* a connection that is still open when the transport closes is closed with it */
    struct raw r;
    r_open(&r, b.port);
    r_sends(&r, "GET /members HTTP/1.1\r\n");
    spin(3);
    m_close(&b);
    RUN_UNTIL(r.eof == 1);
    r_close(&r);
}

/* ---- codec: hello ---------------------------------------------------------------------------- */

static void hello_parser(void **state)
{
    (void)state;
    struct cn_peer__hello h;
    static const char ok[] = "CNPEER/1 cluster=abcdef0123456789 from=1 to=FfFf\nrest";
    size_t line = sizeof("CNPEER/1 cluster=abcdef0123456789 from=1 to=FfFf\n") - 1;
    assert_int_equal(cn_peer__hello_parse(ok, sizeof(ok) - 1, &h), (int)line);
    assert_true(h.cluster_id == 0xabcdef0123456789u);
    assert_int_equal(h.from, 1);
    assert_int_equal(h.to, 0xffff);
    /* every proper prefix needs more */
    for (size_t n = 0; n < line; n++)
        assert_int_equal(cn_peer__hello_parse(ok, n, &h), 0);
    /* what cannot become a hello fails at once, however short */
    static const char *const bad[] = {
        "X",
        "CNPEER/2",
        "CNPEER/1 cluster=\n",
        "CNPEER/1 cluster=g",
        "CNPEER/1 cluster=1 from=2 to=3 \n",
        "CNPEER/1 cluster=1 from=2 to=3\r\n",
        "CNPEER/1 cluster=1  from=2 to=3\n",
        "CNPEER/1 cluster=1 from=-2 to=3\n",
        "CNPEER/1 cluster=0x1 from=2 to=3\n",
        "CNPEER/1 cluster=11111111111111111 from=2 to=3\n", /* 17 digits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cn_peer__hello_parse(bad[i], strlen(bad[i]), &h), CN_ERR_PARSE);
    /* the longest hello is CN_PEER__HELLO_MAX bytes, and it round-trips */
    struct cn_buf b = CN_BUF_INIT;
    struct cn_peer__hello max = {UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 2};
    cn_peer__hello_put(&b, &max);
    assert_int_equal(b.len, CN_PEER__HELLO_MAX);
    assert_int_equal(cn_peer__hello_parse(b.p, b.len, &h), (int)CN_PEER__HELLO_MAX);
    assert_true(h.cluster_id == max.cluster_id && h.from == max.from && h.to == max.to);
    cn_buf_reset(&b);
    cn_peer__hello_put(&b, &(struct cn_peer__hello){0, 0, 0});
    assert_string_equal(b.p, "CNPEER/1 cluster=0 from=0 to=0\n");
    cn_buf_free(&b);
}

/* ---- codec: frames and chunks ---------------------------------------------------------------- */

struct got {
    int n;
    uint8_t kind;
    struct cn_buf data;
};

static void got_payload(void *ctx, uint8_t kind, const void *p, size_t len)
{
    struct got *g = ctx;
    g->n++;
    g->kind = kind;
    cn_buf_reset(&g->data);
    cn_buf_append(&g->data, p, len);
}

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void frame_parser(void **state)
{
    (void)state;
    struct cn_buf b = CN_BUF_INIT;
    cn_peer__encode(&b, CN_PEER_KIND_PROP, "abc", 3);
    assert_int_equal(b.len, CN_PEER__FRAME_HEADER + 3);
    struct cn_peer__frame f;
    size_t want = 0;
    /* partial: the header first, then the whole frame is asked for */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(cn_peer__frame_decode(b.p, n, &f, &want), 0);
        assert_int_equal(want, n < CN_PEER__FRAME_HEADER ? CN_PEER__FRAME_HEADER : b.len);
    }
    assert_int_equal(cn_peer__frame_decode(b.p, b.len, &f, &want), (int)b.len);
    assert_int_equal(f.kind, CN_PEER_KIND_PROP);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.p, "abc", 3);
    /* bad crc: a flipped payload byte, a changed kind, a changed checksum */
    for (size_t at = 4; at < b.len; at++) {
        b.p[at] ^= 0x40;
        assert_int_equal(cn_peer__frame_decode(b.p, b.len, &f, &want), CN_ERR_CORRUPT);
        b.p[at] ^= 0x40;
    }
    /* oversize length: refused from the header alone */
    uint8_t hdr[CN_PEER__FRAME_HEADER] = {0};
    put_u32le(hdr, CN_PEER_MAX_FRAME + 1);
    assert_int_equal(cn_peer__frame_decode(hdr, sizeof(hdr), &f, &want), CN_ERR_TOO_LARGE);
    put_u32le(hdr, UINT32_MAX);
    assert_int_equal(cn_peer__frame_decode(hdr, sizeof(hdr), &f, &want), CN_ERR_TOO_LARGE);
    put_u32le(hdr, CN_PEER_MAX_FRAME);
    assert_int_equal(cn_peer__frame_decode(hdr, sizeof(hdr), &f, &want), 0);
    assert_int_equal(want, CN_PEER__FRAME_HEADER + CN_PEER_MAX_FRAME);

    /* a non-chunk frame is a payload of its own */
    struct cn_peer__asm a = {0};
    struct got g = {0};
    assert_int_equal(cn_peer__frame_decode(b.p, b.len, &f, &want), (int)b.len);
    assert_int_equal(cn_peer__asm_feed(&a, &f, got_payload, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.kind, CN_PEER_KIND_PROP);
    assert_memory_equal(g.data.p, "abc", 3);

    /* chunked: 2.5 chunks in three frames, reassembled into one payload */
    size_t big_len = 2 * (size_t)CN_PEER_CHUNK + CN_PEER_CHUNK / 2;
    uint8_t *big = cn_xmalloc(big_len);
    fill(big, big_len, 3);
    cn_buf_reset(&b);
    cn_peer__encode(&b, CN_PEER_KIND_RAFT, big, big_len);
    assert_int_equal(b.len, big_len + 3 * (CN_PEER__FRAME_HEADER + CN_PEER__CHUNK_HEADER));
    size_t off = 0;
    int nframes = 0;
    while (off < b.len) {
        int rc = cn_peer__frame_decode(b.p + off, b.len - off, &f, &want);
        assert_true(rc > 0);
        assert_int_equal(f.kind, CN_PEER_KIND_CHUNK);
        assert_true(f.len <= CN_PEER_MAX_FRAME);
        assert_int_equal(g.n, 1); /* nothing before the last chunk */
        assert_int_equal(cn_peer__asm_feed(&a, &f, got_payload, &g), 0);
        off += (size_t)rc;
        nframes++;
    }
    assert_int_equal(nframes, 3);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.kind, CN_PEER_KIND_RAFT);
    assert_int_equal(g.data.len, big_len);
    assert_memory_equal(g.data.p, big, big_len);
    assert_int_equal(a.buf.len, 0); /* released once delivered */

    /* a chunk out of order (the second first) is corrupt */
    int rc1 = cn_peer__frame_decode(b.p, b.len, &f, &want);
    assert_true(rc1 > 0);
    assert_int_equal(cn_peer__frame_decode(b.p + rc1, b.len - (size_t)rc1, &f, &want) > 0, 1);
    assert_int_equal(cn_peer__asm_feed(&a, &f, got_payload, &g), CN_ERR_CORRUPT);
    cn_peer__asm_free(&a);
    /* a chunk whose header is too short, or whose total is over the cap */
    struct cn_peer__asm a2 = {0};
    uint8_t ch[CN_PEER__CHUNK_HEADER] = {0};
    f = (struct cn_peer__frame){CN_PEER_KIND_CHUNK, ch, CN_PEER__CHUNK_HEADER - 1};
    assert_int_equal(cn_peer__asm_feed(&a2, &f, got_payload, &g), CN_ERR_CORRUPT);
    uint64_t over = (uint64_t)CN_PEER_MAX_MESSAGE + 1;
    for (int i = 0; i < 8; i++)
        ch[i] = (uint8_t)(over >> (8 * i));
    f.len = CN_PEER__CHUNK_HEADER;
    assert_int_equal(cn_peer__asm_feed(&a2, &f, got_payload, &g), CN_ERR_CORRUPT);
    cn_peer__asm_free(&a2);
    assert_int_equal(g.n, 2);
    cn_free(big);
    cn_buf_free(&g.data);
    cn_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(frames_small_and_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(dialer_wire_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(hello_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(removed_member_told, setup, teardown),
        cmocka_unit_test_setup_teardown(http_get_members, setup, teardown),
        cmocka_unit_test(hello_parser),
        cmocka_unit_test(frame_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
