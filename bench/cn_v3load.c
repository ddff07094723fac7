/*
 * cn_v3load: a closed-loop gRPC load generator for the etcd v3 KV API (Put, Range).
 *
 * One libuv loop drives N cleartext HTTP/2 connections (h2c with prior knowledge, as every
 * etcd v3 client does) through nghttp2's client session; S "streams" are spread round-robin
 * over them, each keeping exactly one RPC in flight: closed loop per stream, like etcd's own
 * `benchmark --conns N --clients S`. Messages are etcd 3.4's, packed with protobuf-c
 * (cn_etcdpb) and framed as gRPC (1-byte flag + 4-byte big-endian length). Latency is taken per
 * RPC from its submission to the stream's close after the trailers, into a fixed log-linear
 * histogram; any non-zero grpc-status, missing trailers, reset stream or lost connection is an
 * error and is counted. Prints one JSON line, as cn_loadgen does for the v2 API.
 *
 * --probe: one connection, one Range at a time, retried every millisecond (reconnecting as
 * needed) until one succeeds (and, with --probe-key, returns that key with the value
 * cn_v3load stores under it); bench_v3.py times server start-up and restart with it.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <etcd/etcdserver/etcdserverpb/rpc.pb-c.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#define V3_HOST_MAX       256
#define V3_PREFIX_MAX     256
#define V3_KEY_MAX        (V3_PREFIX_MAX + 32)
#define V3_VALUE_MAX      (1024 * 1024)
#define V3_CONNS_MAX      1000
#define V3_STREAMS_MAX    100000
#define V3_RESP_MAX       (4 * 1024 * 1024) /* bound on one reply's gRPC payload */
#define V3_RBUF_LEN       65536
#define V3_WBUF_MAX       (1024 * 1024) /* bytes taken from nghttp2 per write */
#define V3_WINDOW         (16 * 1024 * 1024)
#define V3_MSG_LEN        128
#define V3_PROBE_RETRY_MS 1

/* Log-linear histogram of nanoseconds, the same as cn_loadgen's: 1/128 bucket width. */
#define V3_HIST_SUB    128
#define V3_HIST_LINEAR 256
#define V3_HIST_N      (V3_HIST_LINEAR + (64 - 8) * V3_HIST_SUB)

struct v3_hist {
    uint64_t counts[V3_HIST_N];
    uint64_t total;
    uint64_t sum_ns;
    uint64_t max_ns;
};

enum v3_op {
    V3_PUT,
    V3_RANGE,  /* linearizable */
    V3_SRANGE, /* serializable */
};

struct v3_opts {
    char host[V3_HOST_MAX];
    char port[16];
    char authority[V3_HOST_MAX + 24];
    enum v3_op op;
    unsigned conns;
    unsigned streams;
    uint64_t keys;
    size_t value_size;
    double duration_s;
    uint64_t requests; /* 0: run for duration_s */
    double warmup_s;
    double timeout_s;
    char prefix[V3_PREFIX_MAX];
    int seq;
    uint64_t seed;
    int probe;
    int64_t probe_key; /* -1: any successful Range will do */
};

struct v3_bench;
struct v3_conn;

/* One closed-loop client: at most one RPC in flight. */
struct v3_slot {
    struct v3_conn *c;
    int busy;
    int32_t stream_id;
    uint64_t key;
    uint64_t t_sent_ns;
    int http_status;
    int grpc_status; /* -1 until seen */
    char grpc_message[V3_MSG_LEN];
    size_t req_len, req_off;
    uint8_t *req; /* gRPC frame: 5-byte prefix + message */
    size_t resp_len;
    size_t resp_cap;
    uint8_t *resp;
    int resp_overflow;
};

struct v3_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct v3_bench *b;
    nghttp2_session *h2;
    int open;    /* tcp initialised, not yet closed */
    int up;      /* connected and session ready */
    int dead;    /* gave up on this connection */
    int writing; /* a uv_write is in flight */
    int goaway;  /* no new streams allowed (GOAWAY) */
    size_t wlen, wcap;
    uint8_t *wbuf;
    char rbuf[V3_RBUF_LEN];
};

struct v3_bench {
    uv_loop_t *loop;
    struct v3_opts o;
    struct sockaddr_storage addr;
    struct v3_conn *conns;
    struct v3_slot *slots;
    nghttp2_session_callbacks *cbs;
    uv_timer_t phase_timer;
    uv_timer_t timeout_timer;
    uv_timer_t retry_timer; /* --probe */
    unsigned n_connected;
    int started, measuring, stopping, finished, timed_out;
    uint64_t issued;
    uint64_t ok;
    uint64_t rpc_errors; /* non-zero grpc-status */
    uint64_t io_errors;  /* resets, lost connections, malformed replies */
    uint64_t misses;     /* Range replies without the key */
    uint64_t status_counts[17];
    uint64_t other_status;
    uint64_t probe_attempts;
    int probe_ok;
    uint64_t t_start_ns, t_end_ns, t_begin_ns;
    uint64_t rng;
    char first_error[640];
    char last_error[256]; /* --probe: why the last attempt that finished failed */
    char *expect;         /* --probe-key: the value it must hold */
    uint8_t *value;       /* scratch: the value of the Put being built */
    struct v3_hist hist;
};

#define V3_PRINTF(f, a) __attribute__((format(printf, f, a)))
_Noreturn static void die(const char *fmt, ...) V3_PRINTF(1, 2);
static void note_error(struct v3_bench *b, const char *fmt, ...) V3_PRINTF(2, 3);
static void slot_send(struct v3_slot *s);
static void conn_flush(struct v3_conn *c);
static void conn_lost(struct v3_conn *c, const char *what, int err);
static void maybe_finish(struct v3_bench *b);
static void begin(struct v3_bench *b);
static void start_connect(struct v3_conn *c);
static void probe_retry(struct v3_bench *b);

_Noreturn static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("cn_v3load: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void note_error(struct v3_bench *b, const char *fmt, ...)
{
    va_list ap;
    if (b->first_error[0] != '\0') return;
    va_start(ap, fmt);
    vsnprintf(b->first_error, sizeof(b->first_error), fmt, ap);
    va_end(ap);
}

/* ---- histogram ---- */

static unsigned hist_index(uint64_t v)
{
    if (v < V3_HIST_LINEAR) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - 7u)) & (V3_HIST_SUB - 1u);
    return V3_HIST_LINEAR + (e - 8u) * V3_HIST_SUB + sub;
}

static double hist_value(unsigned idx)
{
    if (idx < V3_HIST_LINEAR) return (double)idx;
    unsigned e = (idx - V3_HIST_LINEAR) / V3_HIST_SUB + 8u;
    unsigned sub = (idx - V3_HIST_LINEAR) % V3_HIST_SUB;
    uint64_t lo = (uint64_t)(V3_HIST_SUB + sub) << (e - 7u);
    uint64_t width = (uint64_t)1 << (e - 7u);
    return (double)lo + (double)(width - 1) / 2.0;
}

static void hist_record(struct v3_hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum_ns += v;
    if (v > h->max_ns) h->max_ns = v;
}

static double hist_quantile(const struct v3_hist *h, double q)
{
    if (h->total == 0) return 0.0;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < V3_HIST_N; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max_ns ? (double)h->max_ns : v;
        }
    }
    return (double)h->max_ns;
}

/* ---- requests ---- */

static uint64_t next_rand(struct v3_bench *b)
{
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The value under key i, as cn_loadgen stores it: i as 10 digits, then 'a' + (i + j) % 26. */
static void fill_value(uint8_t *dst, size_t len, uint64_t key)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%010" PRIu64, key);
    for (size_t j = 0; j < len; j++)
        dst[j] = j < 10 ? (uint8_t)digits[j] : (uint8_t)('a' + (int)((key + j) % 26u));
}

static size_t key_name(const struct v3_opts *o, uint64_t key, uint8_t *dst)
{
    int n = snprintf((char *)dst, V3_KEY_MAX, "%sk%" PRIu64, o->prefix, key);
    if (n < 0 || n >= V3_KEY_MAX) die("key too long");
    return (size_t)n;
}

/* The gRPC frame of the request for key into s->req (sized for the largest at start-up). */
static void build_request(struct v3_slot *s, uint64_t key)
{
    const struct v3_opts *o = &s->c->b->o;
    uint8_t kbuf[V3_KEY_MAX];
    size_t klen = key_name(o, key, kbuf);
    size_t len;

    if (o->op == V3_PUT) {
        Etcdserverpb__PutRequest m = ETCDSERVERPB__PUT_REQUEST__INIT;
        fill_value(s->c->b->value, o->value_size, key);
        m.key.data = kbuf;
        m.key.len = klen;
        m.value.data = s->c->b->value;
        m.value.len = o->value_size;
        len = etcdserverpb__put_request__get_packed_size(&m);
        etcdserverpb__put_request__pack(&m, s->req + 5);
    } else {
        Etcdserverpb__RangeRequest m = ETCDSERVERPB__RANGE_REQUEST__INIT;
        m.key.data = kbuf;
        m.key.len = klen;
        m.serializable = o->op == V3_SRANGE;
        len = etcdserverpb__range_request__get_packed_size(&m);
        etcdserverpb__range_request__pack(&m, s->req + 5);
    }
    s->req[0] = 0;
    s->req[1] = (uint8_t)(len >> 24);
    s->req[2] = (uint8_t)(len >> 16);
    s->req[3] = (uint8_t)(len >> 8);
    s->req[4] = (uint8_t)len;
    s->req_len = len + 5;
    s->req_off = 0;
}

static ssize_t req_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)h2;
    (void)stream_id;
    (void)user;
    struct v3_slot *s = src->ptr;
    size_t n = s->req_len - s->req_off;
    if (n > length) n = length;
    memcpy(buf, s->req + s->req_off, n);
    s->req_off += n;
    if (s->req_off == s->req_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define V3_NV(n, v)                                                                                \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                                  \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static int want_more(const struct v3_bench *b)
{
    if (b->stopping || b->finished) return 0;
    if (b->o.probe) return !b->probe_ok;
    return b->o.requests == 0 || b->issued < b->o.requests;
}

/* Starts the slot's next RPC on its connection, or leaves it idle when the run is over. */
static void slot_send(struct v3_slot *s)
{
    struct v3_bench *b = s->c->b;
    struct v3_conn *c = s->c;

    if (c->up && !c->dead && !c->goaway && !nghttp2_session_check_request_allowed(c->h2)) {
        /* GOAWAY sent or received: nothing new on this connection (a request submitted now
         * would be refused inside nghttp2_session_mem_send, and resubmitted, forever) */
        note_error(b, "the server is going away (GOAWAY)");
        c->goaway = 1;
        if (b->o.probe) {
            s->busy = 0;
            conn_lost(c, "GOAWAY", 0); /* the probe reconnects once it is closed */
            return;
        }
    }
    if (!want_more(b) || !c->up || c->dead || c->goaway) {
        s->busy = 0;
        maybe_finish(b);
        return;
    }
    uint64_t key;
    if (b->o.probe) b->first_error[0] = '\0'; /* the report gives the last attempt's reason */
    if (b->o.probe)
        key = b->o.probe_key >= 0 ? (uint64_t)b->o.probe_key : 0;
    else if (b->o.seq)
        key = b->issued % b->o.keys;
    else
        key = next_rand(b) % b->o.keys;
    b->issued++;
    build_request(s, key);
    s->key = key;
    s->http_status = 0;
    s->grpc_status = -1;
    s->grpc_message[0] = '\0';
    s->resp_len = 0;
    s->resp_overflow = 0;

    const char *path = b->o.op == V3_PUT ? "/etcdserverpb.KV/Put" : "/etcdserverpb.KV/Range";
    nghttp2_nv nva[] = {
        V3_NV(":method", "POST"),
        V3_NV(":scheme", "http"),
        V3_NV(":authority", b->o.authority),
        V3_NV(":path", path),
        V3_NV("content-type", "application/grpc"),
        V3_NV("te", "trailers"),
    };
    nghttp2_data_provider prd;
    prd.source.ptr = s;
    prd.read_callback = req_read;
    s->busy = 1;
    s->t_sent_ns = uv_hrtime();
    int32_t id = nghttp2_submit_request(c->h2, NULL, nva, sizeof(nva) / sizeof(nva[0]), &prd, s);
    if (id < 0) {
        s->busy = 0;
        b->io_errors++;
        note_error(b, "submit: %s", nghttp2_strerror(id));
        b->stopping = 1;
        maybe_finish(b);
        return;
    }
    s->stream_id = id;
}

/* 0: the reply is what we asked for; else why not (counted as a miss or an error). */
static int check_reply(struct v3_slot *s, int *miss)
{
    struct v3_bench *b = s->c->b;
    *miss = 0;
    if (s->resp_overflow) {
        note_error(b, "reply larger than %d bytes", V3_RESP_MAX);
        return -1;
    }
    if (s->resp_len < 5) {
        note_error(b, "no reply message (%zu bytes)", s->resp_len);
        return -1;
    }
    uint32_t len = ((uint32_t)s->resp[1] << 24) | ((uint32_t)s->resp[2] << 16) |
                   ((uint32_t)s->resp[3] << 8) | (uint32_t)s->resp[4];
    if (s->resp[0] != 0 || (size_t)len + 5 != s->resp_len) {
        note_error(b, "bad gRPC framing (flag %u, length %" PRIu32 ", %zu bytes)", s->resp[0], len,
                   s->resp_len);
        return -1;
    }
    if (b->o.op == V3_PUT) {
        Etcdserverpb__PutResponse *r = etcdserverpb__put_response__unpack(NULL, len, s->resp + 5);
        if (r == NULL) {
            note_error(b, "undecodable PutResponse");
            return -1;
        }
        int bad = r->header == NULL || r->header->revision < 2;
        etcdserverpb__put_response__free_unpacked(r, NULL);
        if (bad) note_error(b, "PutResponse without a header revision");
        return bad ? -1 : 0;
    }
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, s->resp + 5);
    if (r == NULL) {
        note_error(b, "undecodable RangeResponse");
        return -1;
    }
    int rc = 0;
    if (r->header == NULL) {
        note_error(b, "RangeResponse without a header");
        rc = -1;
    } else if (r->n_kvs == 0) {
        *miss = 1;
    } else if (r->n_kvs != 1) {
        note_error(b, "Range of one key returned %zu kvs", r->n_kvs);
        rc = -1;
    } else if (b->expect != NULL) {
        ProtobufCBinaryData v = r->kvs[0]->value;
        if (v.len != b->o.value_size || memcmp(v.data, b->expect, v.len) != 0) *miss = 1;
    }
    etcdserverpb__range_response__free_unpacked(r, NULL);
    return rc;
}

static void count_io(struct v3_bench *b)
{
    if (b->measuring && !b->o.probe) b->io_errors++;
}

/* The slot's stream closed: record the RPC, start the next one. */
static void slot_done(struct v3_slot *s, uint32_t h2_error)
{
    struct v3_bench *b = s->c->b;
    uint64_t now = uv_hrtime();
    int miss = 0;
    int failed = 1;

    s->busy = 0;
    if (h2_error != NGHTTP2_NO_ERROR) {
        note_error(b, "stream reset: %s", nghttp2_http2_strerror(h2_error));
        count_io(b);
    } else if (s->grpc_status < 0) {
        note_error(b, "no grpc-status (HTTP status %d)", s->http_status);
        count_io(b);
    } else if (s->grpc_status != 0) {
        if (b->measuring) {
            b->rpc_errors++;
            if (s->grpc_status <= 16)
                b->status_counts[s->grpc_status]++;
            else
                b->other_status++;
        }
        note_error(b, "grpc-status %d: %s", s->grpc_status, s->grpc_message);
    } else if (check_reply(s, &miss) != 0) {
        count_io(b);
    } else {
        failed = 0;
    }
    if (b->o.probe) {
        b->probe_attempts++;
        if (!failed && (!miss || b->o.probe_key < 0)) {
            b->probe_ok = 1;
            b->ok = 1;
            b->t_end_ns = now;
            b->first_error[0] = '\0';
            b->stopping = 1;
        } else {
            if (miss) note_error(b, "key %" PRIu64 " not there yet", s->key);
            memcpy(b->last_error, b->first_error, sizeof(b->last_error));
            probe_retry(b); /* on this connection while it lasts */
            return;
        }
        maybe_finish(b);
        return;
    }
    if (b->measuring) {
        if (!failed) {
            b->ok++;
            b->misses += (uint64_t)miss;
            hist_record(&b->hist, now - s->t_sent_ns);
        }
        b->t_end_ns = now;
    }
    slot_send(s);
}

/* ---- nghttp2 callbacks ---- */

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    struct v3_slot *s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (s == NULL) return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++)
            st = st * 10 + (value[i] - '0');
        s->http_status = st;
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 6; i++) {
            if (value[i] < '0' || value[i] > '9') {
                st = 2; /* UNKNOWN: a status that is not a number */
                break;
            }
            st = st * 10 + (value[i] - '0');
        }
        s->grpc_status = valuelen == 0 ? 2 : st;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        size_t n = valuelen < V3_MSG_LEN - 1 ? valuelen : V3_MSG_LEN - 1;
        memcpy(s->grpc_message, value, n);
        s->grpc_message[n] = '\0';
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct v3_slot *s = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (s == NULL) return 0;
    if (s->resp_len + len > s->resp_cap) {
        size_t need = s->resp_len + len;
        if (need > V3_RESP_MAX) {
            s->resp_overflow = 1;
            return 0;
        }
        size_t cap = s->resp_cap * 2 > need ? s->resp_cap * 2 : need;
        if (cap > V3_RESP_MAX) cap = V3_RESP_MAX;
        uint8_t *p = realloc(s->resp, cap);
        if (p == NULL) die("out of memory");
        s->resp = p;
        s->resp_cap = cap;
    }
    memcpy(s->resp + s->resp_len, data, len);
    s->resp_len += len;
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user)
{
    (void)user;
    struct v3_slot *s = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (s == NULL || !s->busy || s->stream_id != stream_id) return 0;
    slot_done(s, error_code);
    return 0;
}

/* ---- connections ---- */

static void on_write(uv_write_t *req, int status)
{
    struct v3_conn *c = req->data;
    c->writing = 0;
    c->wlen = 0;
    if (status < 0) {
        if (status != UV_ECANCELED) conn_lost(c, "write", status);
        return;
    }
    conn_flush(c);
}

/* Hands whatever nghttp2 has to send to one uv_write (at most one in flight). */
static void conn_flush(struct v3_conn *c)
{
    if (!c->up || c->writing || c->dead) return;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            conn_lost(c, nghttp2_strerror((int)n), 0);
            return;
        }
        if (n == 0) break;
        if (c->wlen + (size_t)n > c->wcap) { /* a frame larger than the buffer's slack */
            uint8_t *p = realloc(c->wbuf, c->wlen + (size_t)n);
            if (p == NULL) die("out of memory");
            c->wbuf = p;
            c->wcap = c->wlen + (size_t)n;
        }
        memcpy(c->wbuf + c->wlen, data, (size_t)n);
        c->wlen += (size_t)n;
        if (c->wlen >= V3_WBUF_MAX / 2) break; /* the rest after this write */
    }
    if (c->wlen == 0) {
        if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
            conn_lost(c, "session over", 0);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
    c->write_req.data = c;
    c->writing = 1;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc != 0) {
        c->writing = 0;
        conn_lost(c, "write", rc);
    }
}

static void on_close(uv_handle_t *h)
{
    struct v3_conn *c = h->data;
    c->open = 0;
    if (c->h2 != NULL) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    if (c->b->o.probe && !c->b->finished)
        probe_retry(c->b);
    else
        maybe_finish(c->b);
}

static void conn_close(struct v3_conn *c)
{
    if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* The connection broke: its RPCs in flight are errors; in --probe mode try again later. */
static void conn_lost(struct v3_conn *c, const char *what, int err)
{
    struct v3_bench *b = c->b;
    if (c->dead) return;
    c->dead = 1;
    c->up = 0;
    for (unsigned i = 0; i < b->o.streams; i++) {
        struct v3_slot *s = &b->slots[i];
        if (s->c == c && s->busy) {
            s->busy = 0;
            count_io(b);
        }
    }
    note_error(b, "connection lost (%s%s%s)", what, err ? ": " : "", err ? uv_strerror(err) : "");
    if (b->o.probe) memcpy(b->last_error, b->first_error, sizeof(b->last_error));
    if (!b->o.probe) {
        if (!b->started) {
            fprintf(stderr, "cn_v3load: connect to %s:%s failed: %s\n", b->o.host, b->o.port,
                    err ? uv_strerror(err) : what);
            exit(1);
        }
    }
    conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct v3_conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct v3_conn *c = st->data;
    if (nread == 0 || c->dead) return;
    if (nread < 0) {
        conn_lost(c, "read", (int)nread);
        return;
    }
    ssize_t used = nghttp2_session_mem_recv(c->h2, (const uint8_t *)buf->base, (size_t)nread);
    if (used < 0) {
        note_error(c->b, "HTTP/2: %s", nghttp2_strerror((int)used));
        conn_lost(c, nghttp2_strerror((int)used), 0);
        return;
    }
    conn_flush(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct v3_conn *c = req->data;
    struct v3_bench *b = c->b;
    if (status < 0) {
        conn_lost(c, "connect", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (nghttp2_session_client_new(&c->h2, b->cbs, c) != 0) die("nghttp2_session_client_new");
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, V3_WINDOW},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, V3_WINDOW);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_lost(c, "read_start", rc);
        return;
    }
    c->up = 1;
    if (b->o.probe) {
        slot_send(&b->slots[0]);
        conn_flush(c);
        return;
    }
    conn_flush(c);
    if (++b->n_connected == b->o.conns) {
        b->started = 1;
        begin(b);
    }
}

static void start_connect(struct v3_conn *c)
{
    struct v3_bench *b = c->b;
    int rc = uv_tcp_init(b->loop, &c->tcp);
    if (rc != 0) die("uv_tcp_init: %s", uv_strerror(rc));
    c->open = 1;
    c->up = 0;
    c->dead = 0;
    c->goaway = 0;
    c->writing = 0;
    c->wlen = 0;
    c->tcp.data = c;
    c->connect_req.data = c;
    if (b->o.probe) b->first_error[0] = '\0';
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&b->addr, on_connect);
    if (rc != 0) conn_lost(c, "connect", rc);
}

/* ---- probe ---- */

static void on_retry(uv_timer_t *t)
{
    struct v3_bench *b = t->data;
    struct v3_conn *c = &b->conns[0];
    if (b->finished || b->probe_ok) return;
    if (c->up && !c->dead) {
        slot_send(&b->slots[0]);
        conn_flush(c);
    } else if (!c->open) {
        start_connect(c);
    } else {
        uv_timer_start(&b->retry_timer, on_retry, V3_PROBE_RETRY_MS, 0); /* still closing */
    }
}

/* --probe: the attempt failed; the next one in V3_PROBE_RETRY_MS. */
static void probe_retry(struct v3_bench *b)
{
    if (!b->finished) uv_timer_start(&b->retry_timer, on_retry, V3_PROBE_RETRY_MS, 0);
}

/* ---- phases ---- */

static void close_all(struct v3_bench *b)
{
    uv_timer_stop(&b->phase_timer);
    uv_timer_stop(&b->timeout_timer);
    uv_timer_stop(&b->retry_timer);
    uv_close((uv_handle_t *)&b->phase_timer, NULL);
    uv_close((uv_handle_t *)&b->timeout_timer, NULL);
    uv_close((uv_handle_t *)&b->retry_timer, NULL);
    for (unsigned i = 0; i < b->o.conns; i++) {
        struct v3_conn *c = &b->conns[i];
        if (c->up && c->h2 != NULL) {
            /* a polite goodbye; whatever is not written by the close is dropped */
            nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->h2, &data);
            if (n > 0 && !c->writing) {
                uv_buf_t buf = uv_buf_init((char *)data, (unsigned)n);
                (void)uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
            }
        }
        c->up = 0;
        c->dead = 1;
        conn_close(c);
    }
}

static void maybe_finish(struct v3_bench *b)
{
    if (b->finished) return;
    if (b->o.probe) {
        if (!b->probe_ok) return;
    } else {
        if (!b->started && !b->stopping) return;
        for (unsigned i = 0; i < b->o.streams; i++)
            if (b->slots[i].busy) return;
    }
    b->finished = 1;
    if (!b->measuring || b->t_end_ns < b->t_start_ns) b->t_end_ns = uv_hrtime();
    close_all(b);
}

static void on_duration_end(uv_timer_t *t)
{
    struct v3_bench *b = t->data;
    b->stopping = 1;
    maybe_finish(b);
}

static void start_measuring(struct v3_bench *b)
{
    b->measuring = 1;
    b->t_start_ns = uv_hrtime();
    b->t_end_ns = b->t_start_ns;
    if (b->o.requests == 0) {
        uint64_t ms = (uint64_t)(b->o.duration_s * 1000.0 + 0.5);
        uv_timer_start(&b->phase_timer, on_duration_end, ms, 0);
    }
}

static void on_warmup_end(uv_timer_t *t)
{
    start_measuring(t->data);
}

static void on_timeout(uv_timer_t *t)
{
    struct v3_bench *b = t->data;
    b->timed_out = 1;
    for (unsigned i = 0; i < b->o.streams; i++) {
        if (b->slots[i].busy) {
            b->io_errors++;
            b->slots[i].busy = 0;
        }
    }
    if (b->o.probe) {
        const char *why = b->last_error[0] != '\0' ? b->last_error : b->first_error;
        char last[sizeof(b->last_error)];
        snprintf(last, sizeof(last), "%.200s", why[0] != '\0' ? why : "no attempt finished");
        snprintf(b->first_error, sizeof(b->first_error), "timed out after %.1f s; last: %.200s",
                 b->o.timeout_s, last);
    } else {
        note_error(b, "timed out after %.1f s", b->o.timeout_s);
    }
    b->stopping = 1;
    b->finished = 1;
    b->t_end_ns = uv_hrtime();
    if (!b->measuring) b->t_start_ns = b->t_end_ns;
    close_all(b);
}

static void begin(struct v3_bench *b)
{
    if (b->o.warmup_s > 0.0 && b->o.requests == 0) {
        uint64_t ms = (uint64_t)(b->o.warmup_s * 1000.0 + 0.5);
        uv_timer_start(&b->phase_timer, on_warmup_end, ms, 0);
    } else {
        start_measuring(b);
    }
    for (unsigned i = 0; i < b->o.streams; i++)
        slot_send(&b->slots[i]);
    for (unsigned i = 0; i < b->o.conns; i++)
        conn_flush(&b->conns[i]);
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fputs(
        "usage: cn_v3load --endpoint HOST:PORT [options]\n"
        "  --op put|range|srange  Put, linearizable Range, serializable Range   [range]\n"
        "  --conns N              HTTP/2 connections                            [1]\n"
        "  --streams S            concurrent RPCs (closed-loop clients) over them [1]\n"
        "  --keys N               key space: <prefix>k0 .. k<N-1>               [10000]\n"
        "  --value-size N         Put value length in bytes                     [256]\n"
        "  --duration-s S         measure for S seconds                         [10]\n"
        "  --requests N           send exactly N RPCs instead of a duration\n"
        "  --warmup-s S           unmeasured warm-up before a duration run      [0]\n"
        "  --preload N            write keys 0..N-1 in order (= --op put --seq --requests N)\n"
        "  --prefix P             key prefix                                    [bench/]\n"
        "  --seq                  keys in order 0,1,2,... instead of at random\n"
        "  --seed N               random seed                                   [time]\n"
        "  --probe                retry one Range every 1 ms until it succeeds (start-up timing)\n"
        "  --probe-key I          ...and returns key I with the value cn_v3load puts there\n"
        "  --timeout-s S          hard cap on the whole run              [duration+60 | 600]\n"
        "Prints one JSON line: ops_per_s, p50/p90/p99/p999/max_ms, errors, count, ...\n"
        "Exit status: 0 ok, 1 usage or connect failure, 2 timed out, 3 finished with errors.\n",
        f);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        die("%s: expected an integer in [%" PRIu64 ", %" PRIu64 "], got '%s'", name, min, max, s);
    return (uint64_t)v;
}

static double parse_secs(const char *name, const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0) || v > 86400.0)
        die("%s: expected seconds in [0, 86400], got '%s'", name, s);
    return v;
}

/* HOST:PORT, [V6]:PORT or http://HOST:PORT */
static void parse_endpoint(struct v3_opts *o, const char *ep)
{
    const char *p = ep;
    if (strncmp(p, "http://", 7) == 0) p += 7;
    const char *host_end, *port_start;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL || host_end[1] != ':') die("--endpoint: bad IPv6 address");
        p++;
        port_start = host_end + 2;
    } else {
        host_end = strrchr(p, ':');
        if (host_end == NULL) die("--endpoint must include a port");
        port_start = host_end + 1;
    }
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0 || hlen >= sizeof(o->host)) die("--endpoint: bad host");
    memcpy(o->host, p, hlen);
    o->host[hlen] = '\0';
    size_t plen = strspn(port_start, "0123456789");
    if (plen == 0 || plen >= sizeof(o->port) ||
        (port_start[plen] != '\0' && strcmp(port_start + plen, "/") != 0))
        die("--endpoint: bad port");
    memcpy(o->port, port_start, plen);
    o->port[plen] = '\0';
    if (strchr(o->host, ':') != NULL)
        snprintf(o->authority, sizeof(o->authority), "[%s]:%s", o->host, o->port);
    else
        snprintf(o->authority, sizeof(o->authority), "%s:%s", o->host, o->port);
}

static void parse_args(struct v3_opts *o, int argc, char **argv)
{
    int have_ep = 0, have_timeout = 0, have_op = 0;
    uint64_t preload = 0;

    memset(o, 0, sizeof(*o));
    o->op = V3_RANGE;
    o->conns = 1;
    o->streams = 1;
    o->keys = 10000;
    o->value_size = 256;
    o->duration_s = 10.0;
    o->probe_key = -1;
    snprintf(o->prefix, sizeof(o->prefix), "bench/");
    o->seed = uv_hrtime() | 1u;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) die("unexpected argument '%s' (try --help)", a);
        if (eq != NULL) {
            size_t nlen = (size_t)(eq - a);
            if (nlen >= sizeof(name)) die("bad option '%s'", a);
            memcpy(name, a, nlen);
            name[nlen] = '\0';
            v = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", a);
        }
        if (strcmp(name, "--seq") == 0) {
            o->seq = 1;
            continue;
        }
        if (strcmp(name, "--probe") == 0) {
            o->probe = 1;
            continue;
        }
        if (v == NULL) {
            if (i + 1 >= argc) die("%s needs a value", name);
            v = argv[++i];
        }
        if (strcmp(name, "--endpoint") == 0 || strcmp(name, "--url") == 0) {
            parse_endpoint(o, v);
            have_ep = 1;
        } else if (strcmp(name, "--op") == 0) {
            if (strcmp(v, "put") == 0)
                o->op = V3_PUT;
            else if (strcmp(v, "range") == 0)
                o->op = V3_RANGE;
            else if (strcmp(v, "srange") == 0)
                o->op = V3_SRANGE;
            else
                die("--op must be put, range or srange");
            have_op = 1;
        } else if (strcmp(name, "--conns") == 0) {
            o->conns = (unsigned)parse_u64(name, v, 1, V3_CONNS_MAX);
        } else if (strcmp(name, "--streams") == 0 || strcmp(name, "--clients") == 0) {
            o->streams = (unsigned)parse_u64(name, v, 1, V3_STREAMS_MAX);
        } else if (strcmp(name, "--keys") == 0) {
            o->keys = parse_u64(name, v, 1, UINT64_MAX / 2);
        } else if (strcmp(name, "--value-size") == 0) {
            o->value_size = (size_t)parse_u64(name, v, 0, V3_VALUE_MAX);
        } else if (strcmp(name, "--duration-s") == 0) {
            o->duration_s = parse_secs(name, v);
        } else if (strcmp(name, "--requests") == 0) {
            o->requests = parse_u64(name, v, 1, UINT64_MAX / 2);
        } else if (strcmp(name, "--preload") == 0) {
            preload = parse_u64(name, v, 1, UINT64_MAX / 2);
        } else if (strcmp(name, "--warmup-s") == 0) {
            o->warmup_s = parse_secs(name, v);
        } else if (strcmp(name, "--timeout-s") == 0) {
            o->timeout_s = parse_secs(name, v);
            have_timeout = 1;
        } else if (strcmp(name, "--seed") == 0) {
            o->seed = parse_u64(name, v, 0, UINT64_MAX - 1) | 1u;
        } else if (strcmp(name, "--probe-key") == 0) {
            o->probe_key = (int64_t)parse_u64(name, v, 0, INT64_MAX / 2);
        } else if (strcmp(name, "--prefix") == 0) {
            if (strlen(v) >= sizeof(o->prefix)) die("--prefix too long");
            snprintf(o->prefix, sizeof(o->prefix), "%s", v);
        } else {
            die("unknown option '%s' (try --help)", name);
        }
    }
    if (!have_ep) die("--endpoint is required (try --help)");
    if (preload != 0) {
        if (have_op && o->op != V3_PUT) die("--preload writes: it takes no --op but put");
        o->op = V3_PUT;
        o->seq = 1;
        o->requests = preload;
        if (o->keys < preload) o->keys = preload;
    }
    if (o->probe) {
        if (o->op == V3_PUT) die("--probe sends Ranges");
        o->conns = 1;
        o->streams = 1;
        o->requests = 0;
        o->warmup_s = 0;
    } else if (o->probe_key >= 0) {
        die("--probe-key needs --probe");
    }
    if (o->streams < o->conns) die("--streams must be at least --conns");
    if (!have_timeout)
        o->timeout_s = (o->requests != 0 || o->probe) ? 600.0 : o->duration_s + o->warmup_s + 60.0;
}

static void resolve(struct v3_bench *b)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(b->loop, &req, NULL, b->o.host, b->o.port, &hints);
    if (rc != 0) die("resolve %s:%s: %s", b->o.host, b->o.port, uv_strerror(rc));
    memcpy(&b->addr, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
}

/* ---- output ---- */

static const char *op_name(enum v3_op op)
{
    switch (op) {
    case V3_PUT:
        return "put";
    case V3_SRANGE:
        return "srange";
    case V3_RANGE:
    default:
        return "range";
    }
}

static void print_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void print_result(const struct v3_bench *b)
{
    const struct v3_hist *h = &b->hist;
    double elapsed_s = (double)(b->t_end_ns - b->t_start_ns) / 1e9;
    uint64_t errors = b->rpc_errors + b->io_errors;
    double ops = elapsed_s > 0.0 ? (double)b->ok / elapsed_s : 0.0;
    double mean_ms = h->total != 0 ? (double)h->sum_ns / (double)h->total / 1e6 : 0.0;

    printf("{\"loadgen\":\"cn_v3load\",\"loop\":\"closed\",\"op\":\"%s\",\"conns\":%u,"
           "\"streams\":%u,\"keys\":%" PRIu64 ",\"value_size\":%zu,",
           op_name(b->o.op), b->o.conns, b->o.streams, b->o.keys, b->o.value_size);
    printf("\"count\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"rpc_errors\":%" PRIu64
           ",\"io_errors\":%" PRIu64 ",\"misses\":%" PRIu64 ",",
           b->ok, errors, b->rpc_errors, b->io_errors, b->misses);
    printf("\"elapsed_s\":%.3f,\"ops_per_s\":%.1f,", elapsed_s, ops);
    printf("\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,",
           hist_quantile(h, 0.50) / 1e6, hist_quantile(h, 0.90) / 1e6, hist_quantile(h, 0.99) / 1e6,
           hist_quantile(h, 0.999) / 1e6);
    printf("\"mean_ms\":%.4f,\"max_ms\":%.4f,\"timed_out\":%s,", mean_ms, (double)h->max_ns / 1e6,
           b->timed_out ? "true" : "false");
    if (b->o.probe)
        printf("\"probe_ok\":%s,\"probe_attempts\":%" PRIu64 ",\"probe_ms\":%.3f,",
               b->probe_ok ? "true" : "false", b->probe_attempts,
               (double)(b->t_end_ns - b->t_begin_ns) / 1e6);
    printf("\"grpc_status\":{");
    int first = 1;
    for (int s = 0; s <= 16; s++) {
        if (b->status_counts[s] == 0) continue;
        printf("%s\"%d\":%" PRIu64, first ? "" : ",", s, b->status_counts[s]);
        first = 0;
    }
    if (b->other_status != 0) printf("%s\"other\":%" PRIu64, first ? "" : ",", b->other_status);
    printf("},\"first_error\":");
    print_json_string(stdout, b->first_error);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct v3_bench *b = calloc(1, sizeof(*b));
    if (b == NULL) die("out of memory");
    parse_args(&b->o, argc, argv);
    b->rng = b->o.seed;
    b->loop = uv_default_loop();
    resolve(b);

    if (nghttp2_session_callbacks_new(&b->cbs) != 0) die("out of memory");
    nghttp2_session_callbacks_set_on_header_callback(b->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(b->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(b->cbs, on_stream_close);

    /* Everything the run needs is allocated here, once (replies over 4 KiB grow theirs). */
    size_t req_max = 5 + 32 + V3_KEY_MAX + b->o.value_size;
    b->conns = calloc(b->o.conns, sizeof(*b->conns));
    b->slots = calloc(b->o.streams, sizeof(*b->slots));
    if (b->conns == NULL || b->slots == NULL) die("out of memory");
    for (unsigned i = 0; i < b->o.conns; i++) {
        b->conns[i].b = b;
        b->conns[i].wbuf = malloc(V3_WBUF_MAX);
        b->conns[i].wcap = V3_WBUF_MAX;
        if (b->conns[i].wbuf == NULL) die("out of memory");
    }
    for (unsigned i = 0; i < b->o.streams; i++) {
        struct v3_slot *s = &b->slots[i];
        s->c = &b->conns[i % b->o.conns];
        s->req = malloc(req_max);
        s->resp_cap = req_max > 4096 ? req_max : 4096;
        s->resp = malloc(s->resp_cap);
        if (s->req == NULL || s->resp == NULL) die("out of memory");
    }
    b->value = malloc(b->o.value_size + 1);
    if (b->value == NULL) die("out of memory");
    if (b->o.probe_key >= 0) {
        b->expect = malloc(b->o.value_size + 1);
        if (b->expect == NULL) die("out of memory");
        fill_value((uint8_t *)b->expect, b->o.value_size, (uint64_t)b->o.probe_key);
    }

    uv_timer_init(b->loop, &b->phase_timer);
    uv_timer_init(b->loop, &b->timeout_timer);
    uv_timer_init(b->loop, &b->retry_timer);
    b->phase_timer.data = b;
    b->timeout_timer.data = b;
    b->retry_timer.data = b;
    uv_timer_start(&b->timeout_timer, on_timeout, (uint64_t)(b->o.timeout_s * 1000.0 + 0.5), 0);

    b->t_begin_ns = uv_hrtime();
    if (b->o.probe) {
        b->started = 1;
        start_measuring(b);
    }
    for (unsigned i = 0; i < b->o.conns; i++)
        start_connect(&b->conns[i]);

    uv_run(b->loop, UV_RUN_DEFAULT);
    print_result(b);

    int rc = uv_loop_close(b->loop);
    if (rc != 0) fprintf(stderr, "cn_v3load: loop close: %s\n", uv_strerror(rc));
    int exit_code = 0;
    if (b->timed_out)
        exit_code = 2;
    else if (b->rpc_errors + b->io_errors != 0)
        exit_code = 3;
    for (unsigned i = 0; i < b->o.conns; i++)
        free(b->conns[i].wbuf);
    for (unsigned i = 0; i < b->o.streams; i++) {
        free(b->slots[i].req);
        free(b->slots[i].resp);
    }
    free(b->expect);
    free(b->value);
    free(b->conns);
    free(b->slots);
    nghttp2_session_callbacks_del(b->cbs);
    free(b);
    return exit_code;
}
