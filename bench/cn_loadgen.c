/*
 * cn_loadgen: a closed-loop HTTP/1.1 load generator for the etcd v2 keys API.
 * One libuv loop drives N keep-alive connections, each with one request in flight;
 * responses are parsed with http-parser and latencies go into a fixed log-linear
 * histogram, so the hot path allocates nothing. Prints one JSON line with the result.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>
#include <uv.h>

#define CN_LG_HOST_MAX      256
#define CN_LG_PREFIX_MAX    256
#define CN_LG_RBUF_LEN      65536
#define CN_LG_HDR_MAX       1024
#define CN_LG_VALUE_MAX     (1024 * 1024)
#define CN_LG_CONNS_MAX     10000
#define CN_LG_RECONNECT_MAX 1000

/*
 * Log-linear histogram of nanoseconds (HDR-style): values below 256 get a bucket each,
 * every power of two above that is split into 128 sub-buckets, so a bucket is at most
 * 1/128 (0.8%) wide and the midpoint reported for a percentile is within 0.4% of the
 * true sample; the maximum is kept exactly beside it. 7424 counters, no allocation.
 */
#define CN_LG_HIST_SUB    128
#define CN_LG_HIST_LINEAR 256
#define CN_LG_HIST_N      (CN_LG_HIST_LINEAR + (64 - 8) * CN_LG_HIST_SUB)

struct cn_lg_hist {
    uint64_t counts[CN_LG_HIST_N];
    uint64_t total;
    uint64_t sum_ns;
    uint64_t max_ns;
};

enum cn_lg_op {
    CN_LG_PUT,
    CN_LG_GET,
    CN_LG_QGET,
};

struct cn_lg_opts {
    char host[CN_LG_HOST_MAX];
    char port[16];
    char authority[CN_LG_HOST_MAX + 24]; /* Host header: host:port, [v6]:port */
    enum cn_lg_op op;
    unsigned conns;
    uint64_t keys;
    size_t value_size;
    double duration_s;
    uint64_t requests; /* 0: run for duration_s instead */
    double warmup_s;
    double timeout_s; /* hard cap on the whole run */
    char prefix[CN_LG_PREFIX_MAX];
    int seq; /* keys in order 0,1,2... instead of uniformly random */
    uint64_t seed;
};

struct cn_lg_bench;

struct cn_lg_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    http_parser parser;
    struct cn_lg_bench *b;
    int open;       /* tcp handle initialised and not closed */
    int busy;       /* a request is in flight */
    int msg_done;   /* parser saw the end of a response */
    int extra;      /* ...and then the start of another we never asked for */
    int keep_alive; /* that response allows another request on this connection */
    int status;     /* HTTP status of that response */
    uint64_t t_sent_ns;
    char *req; /* request bytes: headers, then the body for PUT */
    size_t req_len;
    char rbuf[CN_LG_RBUF_LEN];
};

struct cn_lg_bench {
    uv_loop_t *loop;
    struct cn_lg_opts o;
    struct sockaddr_storage addr;
    struct cn_lg_conn *conns;
    http_parser_settings settings;
    uv_timer_t phase_timer;   /* warmup end, then duration end */
    uv_timer_t timeout_timer; /* hard cap */
    unsigned n_connected;
    int started;   /* all connections up, requests flowing */
    int measuring; /* warmup over: results count */
    int stopping;  /* no new requests */
    int finished;
    int timed_out;
    uint64_t issued;     /* requests started (for --requests) */
    uint64_t ok;         /* 2xx responses while measuring */
    uint64_t bad_status; /* non-2xx responses while measuring */
    uint64_t io_errors;  /* connection or parse failures */
    uint64_t reconnects;
    uint64_t status_counts[600];
    uint64_t t_start_ns;
    uint64_t t_end_ns;
    uint64_t rng;
    char first_error[256];
    struct cn_lg_hist hist;
};

static void send_next(struct cn_lg_conn *c);
static void start_connect(struct cn_lg_conn *c);
static void maybe_finish(struct cn_lg_bench *b);
static void begin(struct cn_lg_bench *b);

#define CN_LG_PRINTF(f, a) __attribute__((format(printf, f, a)))

_Noreturn static void die(const char *fmt, ...) CN_LG_PRINTF(1, 2);
static void note_error(struct cn_lg_bench *b, const char *fmt, ...) CN_LG_PRINTF(2, 3);

_Noreturn static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("cn_loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void note_error(struct cn_lg_bench *b, const char *fmt, ...)
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
    if (v < CN_LG_HIST_LINEAR) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
    unsigned sub = (unsigned)(v >> (e - 7u)) & (CN_LG_HIST_SUB - 1u);
    return CN_LG_HIST_LINEAR + (e - 8u) * CN_LG_HIST_SUB + sub;
}

/* Midpoint of the range of values that fall into bucket idx. */
static double hist_value(unsigned idx)
{
    if (idx < CN_LG_HIST_LINEAR) return (double)idx;
    unsigned e = (idx - CN_LG_HIST_LINEAR) / CN_LG_HIST_SUB + 8u;
    unsigned sub = (idx - CN_LG_HIST_LINEAR) % CN_LG_HIST_SUB;
    uint64_t lo = (uint64_t)(CN_LG_HIST_SUB + sub) << (e - 7u);
    uint64_t width = (uint64_t)1 << (e - 7u);
    return (double)lo + (double)(width - 1) / 2.0;
}

static void hist_record(struct cn_lg_hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum_ns += v;
    if (v > h->max_ns) h->max_ns = v;
}

/* Value at quantile q (0..1] in ns: the smallest bucket holding the ceil(q*n)-th sample. */
static double hist_quantile(const struct cn_lg_hist *h, double q)
{
    if (h->total == 0) return 0.0;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < CN_LG_HIST_N; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max_ns ? (double)h->max_ns : v;
        }
    }
    return (double)h->max_ns;
}

/* ---- requests ---- */

static uint64_t next_rand(struct cn_lg_bench *b)
{
    /* xorshift64*: cheap, seedable, good enough to spread keys */
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/*
 * The value stored under key i: its index as 10 decimal digits, then letters
 * 'a' + (i + j) % 26. bench.py computes the same to check what a GET returns.
 */
static void fill_value(char *dst, size_t len, uint64_t key)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%010" PRIu64, key);
    for (size_t j = 0; j < len; j++) {
        if (j < 10)
            dst[j] = digits[j];
        else
            dst[j] = (char)('a' + (int)((key + j) % 26u));
    }
}

static void build_request(struct cn_lg_conn *c, uint64_t key)
{
    struct cn_lg_bench *b = c->b;
    const struct cn_lg_opts *o = &b->o;
    int n;

    switch (o->op) {
    case CN_LG_PUT:
        n = snprintf(c->req, CN_LG_HDR_MAX,
                     "PUT /v2/keys%s/k%" PRIu64 " HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "value=",
                     o->prefix, key, o->authority, o->value_size + 6);
        break;
    case CN_LG_GET:
    case CN_LG_QGET:
    default:
        n = snprintf(c->req, CN_LG_HDR_MAX,
                     "GET /v2/keys%s/k%" PRIu64 "%s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "\r\n",
                     o->prefix, key, o->op == CN_LG_QGET ? "?quorum=true" : "", o->authority);
        break;
    }
    if (n < 0 || n >= CN_LG_HDR_MAX) die("request header too long");
    c->req_len = (size_t)n;
    if (o->op == CN_LG_PUT) {
        fill_value(c->req + c->req_len, o->value_size, key);
        c->req_len += o->value_size;
    }
}

static void conn_fail(struct cn_lg_conn *c, const char *what, int err);

static void on_write(uv_write_t *req, int status)
{
    struct cn_lg_conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED) conn_fail(c, "write", status);
}

static void send_next(struct cn_lg_conn *c)
{
    struct cn_lg_bench *b = c->b;
    uint64_t key;

    if (b->stopping || b->finished || (b->o.requests != 0 && b->issued >= b->o.requests)) {
        c->busy = 0;
        maybe_finish(b);
        return;
    }
    if (b->o.seq)
        key = b->issued % b->o.keys;
    else
        key = next_rand(b) % b->o.keys;
    b->issued++;
    build_request(c, key);
    c->busy = 1;
    c->msg_done = 0;
    c->extra = 0;
    c->t_sent_ns = uv_hrtime();

    uv_buf_t buf = uv_buf_init(c->req, (unsigned)c->req_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == (int)c->req_len) return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, "write", n);
        return;
    }
    if (n > 0) buf = uv_buf_init(c->req + n, (unsigned)(c->req_len - (size_t)n));
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc != 0) conn_fail(c, "write", rc);
}

/* ---- connections ---- */

static void on_close_reconnect(uv_handle_t *h)
{
    struct cn_lg_conn *c = h->data;
    c->open = 0;
    if (c->b->finished || c->b->stopping) {
        maybe_finish(c->b);
        return;
    }
    start_connect(c);
}

static void on_close_final(uv_handle_t *h)
{
    struct cn_lg_conn *c = h->data;
    c->open = 0;
}

static void conn_close(struct cn_lg_conn *c, uv_close_cb cb)
{
    if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, cb);
}

/* A connection broke: the request in flight (if any) is an error; reconnect. */
static void conn_fail(struct cn_lg_conn *c, const char *what, int err)
{
    struct cn_lg_bench *b = c->b;

    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->busy || !b->started) {
        b->io_errors++;
        note_error(b, "%s: %s", what, err != 0 ? uv_strerror(err) : "protocol error");
    }
    c->busy = 0;
    if (!b->started) {
        fprintf(stderr, "cn_loadgen: connect to %s:%s failed: %s\n", b->o.host, b->o.port,
                uv_strerror(err));
        exit(1);
    }
    if (++b->reconnects > CN_LG_RECONNECT_MAX) {
        note_error(b, "too many reconnects, last %s: %s", what, uv_strerror(err));
        b->stopping = 1;
    }
    conn_close(c, on_close_reconnect);
}

static int on_message_begin(http_parser *p)
{
    struct cn_lg_conn *c = p->data;
    if (c->msg_done) c->extra = 1; /* we never pipeline, so a second response is a protocol error */
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct cn_lg_conn *c = p->data;
    c->status = (int)p->status_code;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct cn_lg_conn *c = p->data;
    c->msg_done = 1;
    c->keep_alive = http_should_keep_alive(p);
    return 0;
}

static void complete_request(struct cn_lg_conn *c)
{
    struct cn_lg_bench *b = c->b;
    uint64_t now = uv_hrtime();

    c->busy = 0;
    if (b->measuring) {
        if (c->status >= 200 && c->status < 300) {
            b->ok++;
            hist_record(&b->hist, now - c->t_sent_ns);
        } else {
            b->bad_status++;
            if (c->status >= 0 && c->status < 600) b->status_counts[c->status]++;
            note_error(b, "HTTP status %d", c->status);
        }
        b->t_end_ns = now;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cn_lg_conn *c = h->data;
    (void)suggested; /* one fixed buffer per connection */
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cn_lg_conn *c = s->data;
    struct cn_lg_bench *b = c->b;

    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_EOF && c->busy) {
            /* Responses without a length end at EOF. */
            http_parser_execute(&c->parser, &b->settings, NULL, 0);
            if (c->msg_done) {
                complete_request(c);
                c->busy = 0;
            }
        }
        if (c->busy)
            conn_fail(c, "read", (int)nread);
        else
            conn_close(c, on_close_reconnect);
        return;
    }
    if (!c->busy) {
        conn_fail(c, "unexpected bytes", 0);
        return;
    }
    size_t len = (size_t)nread;
    size_t used = http_parser_execute(&c->parser, &b->settings, buf->base, len);
    enum http_errno herr = HTTP_PARSER_ERRNO(&c->parser);
    if (herr != HPE_OK || used != len) {
        note_error(b, "parse: %s", http_errno_name(herr));
        conn_fail(c, "parse", 0);
        return;
    }
    if (!c->msg_done) return;
    if (c->extra) {
        conn_fail(c, "unsolicited response", 0);
        return;
    }
    complete_request(c);
    if (!c->keep_alive) {
        conn_close(c, on_close_reconnect);
        return;
    }
    send_next(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cn_lg_conn *c = req->data;
    struct cn_lg_bench *b = c->b;

    if (status < 0) {
        conn_fail(c, "connect", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_fail(c, "read_start", rc);
        return;
    }
    if (!b->started) {
        if (++b->n_connected < b->o.conns) return;
        b->started = 1;
        begin(b); /* everyone is connected */
        return;
    }
    send_next(c);
}

static void start_connect(struct cn_lg_conn *c)
{
    struct cn_lg_bench *b = c->b;
    int rc = uv_tcp_init(b->loop, &c->tcp);
    if (rc != 0) die("uv_tcp_init: %s", uv_strerror(rc));
    c->open = 1;
    c->busy = 0;
    c->tcp.data = c;
    c->connect_req.data = c;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&b->addr, on_connect);
    if (rc != 0) conn_fail(c, "connect", rc);
}

/* ---- phases ---- */

static void close_all(struct cn_lg_bench *b)
{
    uv_timer_stop(&b->phase_timer);
    uv_timer_stop(&b->timeout_timer);
    if (!uv_is_closing((uv_handle_t *)&b->phase_timer))
        uv_close((uv_handle_t *)&b->phase_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&b->timeout_timer))
        uv_close((uv_handle_t *)&b->timeout_timer, NULL);
    for (unsigned i = 0; i < b->o.conns; i++)
        conn_close(&b->conns[i], on_close_final);
}

static void maybe_finish(struct cn_lg_bench *b)
{
    if (b->finished || !b->started) return;
    for (unsigned i = 0; i < b->o.conns; i++) {
        if (b->conns[i].busy) return;
    }
    b->finished = 1;
    if (b->t_end_ns < b->t_start_ns || !b->measuring) b->t_end_ns = uv_hrtime();
    close_all(b);
}

static void on_duration_end(uv_timer_t *t)
{
    struct cn_lg_bench *b = t->data;
    b->stopping = 1;
    maybe_finish(b);
}

static void start_measuring(struct cn_lg_bench *b)
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
    struct cn_lg_bench *b = t->data;
    start_measuring(b);
}

static void on_timeout(uv_timer_t *t)
{
    struct cn_lg_bench *b = t->data;
    b->timed_out = 1;
    for (unsigned i = 0; i < b->o.conns; i++) {
        if (b->conns[i].busy) {
            b->io_errors++;
            b->conns[i].busy = 0;
        }
    }
    note_error(b, "timed out after %.1f s", b->o.timeout_s);
    b->stopping = 1;
    b->finished = 1;
    b->t_end_ns = uv_hrtime();
    if (!b->measuring) b->t_start_ns = b->t_end_ns;
    close_all(b);
}

static void begin(struct cn_lg_bench *b)
{
    if (b->o.warmup_s > 0.0 && b->o.requests == 0) {
        uint64_t ms = (uint64_t)(b->o.warmup_s * 1000.0 + 0.5);
        uv_timer_start(&b->phase_timer, on_warmup_end, ms, 0);
    } else {
        start_measuring(b);
    }
    for (unsigned i = 0; i < b->o.conns; i++)
        send_next(&b->conns[i]);
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fputs("usage: cn_loadgen --url http://HOST:PORT [options]\n"
          "  --op put|get|qget     request kind (qget = GET ?quorum=true)   [get]\n"
          "  --conns N             concurrent keep-alive connections        [16]\n"
          "  --keys N              key space: <prefix>/k0 .. k<N-1>          [10000]\n"
          "  --value-size N        PUT value length in bytes                [256]\n"
          "  --duration-s S        measure for S seconds                    [10]\n"
          "  --requests N          send exactly N requests instead of a duration\n"
          "  --warmup-s S          unmeasured warm-up before a duration run [0]\n"
          "  --prefix /P           key directory under /v2/keys             [/bench]\n"
          "  --seq                 walk keys in order (0,1,2,...) instead of at random\n"
          "  --seed N              random seed                              [time]\n"
          "  --timeout-s S         hard cap on the whole run                [duration+60 | 600]\n"
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

static void parse_url(struct cn_lg_opts *o, const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) die("--url must start with http://");
    p += 7;
    const char *host_end;
    const char *port_start;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL || host_end[1] != ':') die("--url: bad IPv6 address");
        p++;
        port_start = host_end + 2;
    } else {
        host_end = strchr(p, ':');
        if (host_end == NULL) die("--url must include a port");
        port_start = host_end + 1;
    }
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0 || hlen >= sizeof(o->host)) die("--url: bad host");
    memcpy(o->host, p, hlen);
    o->host[hlen] = '\0';
    size_t plen = strspn(port_start, "0123456789");
    if (plen == 0 || plen >= sizeof(o->port) ||
        (port_start[plen] != '\0' && port_start[plen] != '/'))
        die("--url: bad port");
    memcpy(o->port, port_start, plen);
    o->port[plen] = '\0';
    if (port_start[plen] == '/' && port_start[plen + 1] != '\0')
        die("--url: give only scheme, host and port");
    if (strchr(o->host, ':') != NULL)
        snprintf(o->authority, sizeof(o->authority), "[%s]:%s", o->host, o->port);
    else
        snprintf(o->authority, sizeof(o->authority), "%s:%s", o->host, o->port);
}

static void parse_args(struct cn_lg_opts *o, int argc, char **argv)
{
    int have_url = 0;
    int have_timeout = 0;

    memset(o, 0, sizeof(*o));
    o->op = CN_LG_GET;
    o->conns = 16;
    o->keys = 10000;
    o->value_size = 256;
    o->duration_s = 10.0;
    snprintf(o->prefix, sizeof(o->prefix), "/bench");
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
        if (v == NULL) {
            if (i + 1 >= argc) die("%s needs a value", name);
            v = argv[++i];
        }
        if (strcmp(name, "--url") == 0) {
            parse_url(o, v);
            have_url = 1;
        } else if (strcmp(name, "--op") == 0) {
            if (strcmp(v, "put") == 0)
                o->op = CN_LG_PUT;
            else if (strcmp(v, "get") == 0)
                o->op = CN_LG_GET;
            else if (strcmp(v, "qget") == 0)
                o->op = CN_LG_QGET;
            else
                die("--op must be put, get or qget");
        } else if (strcmp(name, "--conns") == 0) {
            o->conns = (unsigned)parse_u64(name, v, 1, CN_LG_CONNS_MAX);
        } else if (strcmp(name, "--keys") == 0) {
            o->keys = parse_u64(name, v, 1, UINT64_MAX / 2);
        } else if (strcmp(name, "--value-size") == 0) {
            o->value_size = (size_t)parse_u64(name, v, 0, CN_LG_VALUE_MAX);
        } else if (strcmp(name, "--duration-s") == 0) {
            o->duration_s = parse_secs(name, v);
        } else if (strcmp(name, "--requests") == 0) {
            o->requests = parse_u64(name, v, 1, UINT64_MAX / 2);
        } else if (strcmp(name, "--warmup-s") == 0) {
            o->warmup_s = parse_secs(name, v);
        } else if (strcmp(name, "--timeout-s") == 0) {
            o->timeout_s = parse_secs(name, v);
            have_timeout = 1;
        } else if (strcmp(name, "--seed") == 0) {
            o->seed = parse_u64(name, v, 0, UINT64_MAX - 1) | 1u;
        } else if (strcmp(name, "--prefix") == 0) {
            size_t plen = strlen(v);
            if (plen >= sizeof(o->prefix) ||
                strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_-.") !=
                    plen)
                die("--prefix: use only letters, digits and / _ - .");
            /* always "/dir" with no trailing slash, "" for the root */
            while (plen > 0 && v[plen - 1] == '/')
                plen--;
            size_t off = (v[0] == '/') ? 0 : 1;
            o->prefix[0] = '/';
            memcpy(o->prefix + off, v, plen);
            o->prefix[plen + off] = '\0';
            if (strcmp(o->prefix, "/") == 0) o->prefix[0] = '\0';
        } else {
            die("unknown option '%s' (try --help)", name);
        }
    }
    if (!have_url) die("--url is required (try --help)");
    if (!have_timeout) o->timeout_s = o->requests != 0 ? 600.0 : o->duration_s + o->warmup_s + 60.0;
}

static void resolve(struct cn_lg_bench *b)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No callback: resolves synchronously, once, before the loop runs. */
    int rc = uv_getaddrinfo(b->loop, &req, NULL, b->o.host, b->o.port, &hints);
    if (rc != 0) die("resolve %s:%s: %s", b->o.host, b->o.port, uv_strerror(rc));
    memcpy(&b->addr, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
}

/* ---- output ---- */

static const char *op_name(enum cn_lg_op op)
{
    switch (op) {
    case CN_LG_PUT:
        return "put";
    case CN_LG_QGET:
        return "qget";
    case CN_LG_GET:
    default:
        return "get";
    }
}

static void print_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void print_result(const struct cn_lg_bench *b)
{
    const struct cn_lg_hist *h = &b->hist;
    double elapsed_s = (double)(b->t_end_ns - b->t_start_ns) / 1e9;
    uint64_t errors = b->bad_status + b->io_errors;
    double ops = elapsed_s > 0.0 ? (double)b->ok / elapsed_s : 0.0;
    double mean_ms = h->total != 0 ? (double)h->sum_ns / (double)h->total / 1e6 : 0.0;

    printf("{\"op\":\"%s\",\"conns\":%u,\"keys\":%" PRIu64 ",\"value_size\":%zu,", op_name(b->o.op),
           b->o.conns, b->o.keys, b->o.value_size);
    printf("\"count\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"io_errors\":%" PRIu64
           ",\"reconnects\":%" PRIu64 ",",
           b->ok, errors, b->io_errors, b->reconnects);
    printf("\"elapsed_s\":%.3f,\"ops_per_s\":%.1f,", elapsed_s, ops);
    /* 0.1 us resolution: a 3-decimal ms figure would round a 90 us GET by up to 0.6%,
     * more than the histogram's own error (half a bucket, at most 0.4%). */
    printf("\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,",
           hist_quantile(h, 0.50) / 1e6, hist_quantile(h, 0.90) / 1e6, hist_quantile(h, 0.99) / 1e6,
           hist_quantile(h, 0.999) / 1e6);
    /* max is tracked exactly, not read from the histogram */
    printf("\"mean_ms\":%.4f,\"max_ms\":%.4f,\"timed_out\":%s,\"bad_status\":{", mean_ms,
           (double)h->max_ns / 1e6, b->timed_out ? "true" : "false");
    int first = 1;
    for (int s = 0; s < 600; s++) {
        if (b->status_counts[s] == 0) continue;
        printf("%s\"%d\":%" PRIu64, first ? "" : ",", s, b->status_counts[s]);
        first = 0;
    }
    printf("},\"first_error\":");
    print_json_string(stdout, b->first_error);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct cn_lg_bench *b = calloc(1, sizeof(*b));
    if (b == NULL) die("out of memory");
    parse_args(&b->o, argc, argv);
    b->rng = b->o.seed;
    b->loop = uv_default_loop();
    resolve(b);

    http_parser_settings_init(&b->settings);
    b->settings.on_message_begin = on_message_begin;
    b->settings.on_headers_complete = on_headers_complete;
    b->settings.on_message_complete = on_message_complete;

    /* Everything the run needs is allocated here, once. */
    b->conns = calloc(b->o.conns, sizeof(*b->conns));
    if (b->conns == NULL) die("out of memory");
    for (unsigned i = 0; i < b->o.conns; i++) {
        struct cn_lg_conn *c = &b->conns[i];
        c->b = b;
        c->req = malloc(CN_LG_HDR_MAX + b->o.value_size);
        if (c->req == NULL) die("out of memory");
    }

    uv_timer_init(b->loop, &b->phase_timer);
    uv_timer_init(b->loop, &b->timeout_timer);
    b->phase_timer.data = b;
    b->timeout_timer.data = b;
    uv_timer_start(&b->timeout_timer, on_timeout, (uint64_t)(b->o.timeout_s * 1000.0 + 0.5), 0);

    for (unsigned i = 0; i < b->o.conns; i++)
        start_connect(&b->conns[i]);

    uv_run(b->loop, UV_RUN_DEFAULT);
    print_result(b);

    int rc = uv_loop_close(b->loop);
    if (rc != 0) fprintf(stderr, "cn_loadgen: loop close: %s\n", uv_strerror(rc));
    int exit_code = 0;
    if (b->timed_out)
        exit_code = 2;
    else if (b->bad_status + b->io_errors != 0)
        exit_code = 3;
    for (unsigned i = 0; i < b->o.conns; i++)
        free(b->conns[i].req);
    free(b->conns);
    free(b);
    return exit_code;
}
