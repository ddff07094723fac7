/* http: cairn's HTTP/1.1 server and client plumbing on libuv. Requests are parsed by Debian's
 * http-parser; each connection is a small state machine with keep-alive and pipelining
 * (responses always leave in request order, even when a later request is answered first),
 * bounded header and body sizes, and chunked streaming responses for watches. The layer is
 * shaped so that TLS and HTTP/2 can slot in under the same request/response API later.
 *
 * The client half (requests to other servers: leader forwarding, proxies, discovery) is declared
 * in http/http_client.h.
 *
 * Connections are struct cn_stream (src/stream): TCP today, TLS later, the same to this layer.
 *
 * Threading: everything runs on the loop thread that owns the server.
 *
 * Side effect: cn_http_server_new() sets SIGPIPE to SIG_IGN (process-wide), because libuv writes
 * sockets with write(2)/writev(2) and a peer that went away must be an error code, not a signal. */
#ifndef CN_HTTP_HTTP_H
#define CN_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/str.h"

/* Methods, numbered as http-parser numbers them (HTTP_GET == 1, ...). */
enum cn_http_method {
    CN_HTTP_DELETE = 0,
    CN_HTTP_GET = 1,
    CN_HTTP_HEAD = 2,
    CN_HTTP_POST = 3,
    CN_HTTP_PUT = 4,
    CN_HTTP_OPTIONS = 6,
};

struct cn_http_header {
    struct cn_str name;
    struct cn_str value;
};

struct cn_http_req;

/* Called when the peer goes away (EOF, reset, write error) or the server closes, while a request
 * is still unanswered or streaming; ctx is the server's ctx. It runs from the loop (the
 * connection's close callback), or inside cn_http_server_close for streams. It must not answer
 * the request; after it returns the request is freed: the owner must forget it. */
typedef void (*cn_http_abort_cb)(struct cn_http_req *req, void *ctx);

struct cn_http_req {
    /* read-only, valid until the response is finished or the abort callback ran */
    int method;                /* enum cn_http_method (or another http-parser value) */
    struct cn_str method_name; /* "GET", ... */
    struct cn_str url;         /* raw request-target as sent ("/v2/keys/a?wait=true") */
    struct cn_str path;        /* raw (still percent-encoded) path, without the query */
    struct cn_str query;       /* raw query string after '?', may be empty */
    struct cn_http_header *headers;
    size_t nheaders;
    struct cn_str body; /* empty for a request handed to cn_http_too_large_cb */
    bool keep_alive;    /* the client wants the connection kept (HTTP/1.1 rules) */
    uint64_t id;        /* unique per server, for logs */
    /* set by the handler */
    void *data;
    cn_http_abort_cb on_abort;
};

/* Adds a header to whatever response this request gets (e.g. CORS headers decided before the
 * handler runs). Copied. */
void cn_http_req_add_header(struct cn_http_req *req, const char *name, const char *value);

/* Case-insensitive header lookup; returns CN_STR_NULL (p == NULL) when absent. */
struct cn_str cn_http_req_header(const struct cn_http_req *req, const char *name);

/* Zero fields (or a NULL limits pointer) take the defaults. */
struct cn_http_limits {
    size_t max_header_bytes; /* request line + headers; over -> 431 and close. Default 64 KiB */
    size_t max_headers;      /* header count; over -> 431 and close. Default 100 */
    size_t max_body_bytes;   /* over -> on_too_large (or 413) and close. Default 10 MiB */
    size_t max_pipeline;     /* queued (unanswered or unsent) requests per connection before
                                parsing and reading pause. Default 64 */
    bool send_date;          /* a Date header on every response, as Go's server sends */
};

/* The request handler. It answers now (inside the call) or later with cn_http_respond /
 * cn_http_stream_*; exactly one of cn_http_respond or stream_start...stream_end per request,
 * unless on_abort ran first. Until it answers, later pipelined requests on the connection are
 * still handed out (up to max_pipeline), and their responses are held back until this one is
 * done. */
typedef void (*cn_http_handler)(struct cn_http_req *req, void *ctx);

/* Called instead of the handler when a request's body exceeds max_body_bytes; it must answer
 * (with cn_http_respond); the connection is closed after that response. If NULL: 413. */
typedef void (*cn_http_too_large_cb)(struct cn_http_req *req, void *ctx);

struct cn_http_server;
struct cn_stream;

struct cn_http_server *cn_http_server_new(uv_loop_t *loop, const struct cn_http_limits *limits,
                                          cn_http_handler handler, cn_http_too_large_cb too_large,
                                          void *ctx);
/* Starts listening on host:port. host may be a name such as "localhost", an IP literal (IPv6 with
 * or without brackets) or NULL/"" for every local address. It is resolved once, here, with a
 * synchronous getaddrinfo(): call it at startup, before the loop serves traffic. Every address it
 * resolves to is bound (SO_REUSEADDR, IPV6_V6ONLY for IPv6, backlog 511); an IPv6 address that
 * the host lacks (EADDRNOTAVAIL, EAFNOSUPPORT) is skipped while another address binds. With port 0
 * the first address gets an ephemeral port and the others reuse it (see cn_http_server_port).
 * May be called several times (e.g. 2379 and 4001). Returns 0 or a negative error (-EADDRINUSE,
 * CN_ERR_NOT_FOUND for a name that does not resolve, ...), with a message in err; on failure no
 * listener of this call stays open. */
int cn_http_server_listen(struct cn_http_server *srv, const char *host, uint16_t port, char *err,
                          size_t err_len);
/* Serves HTTP on a stream that arrived elsewhere: a port shared with another protocol, whose
 * owner read head_len bytes (head, copied) before it saw they were HTTP (the peer port). From
 * here on the stream is the server's, as an accepted connection is (its data and read callbacks
 * are taken over, reading or not; the server closes it). Requests in head are parsed from the
 * loop, not inside this call. Returns 0, or CN_ERR_STOPPED once the server is closing (then the
 * caller keeps the stream). */
int cn_http_server_adopt(struct cn_http_server *srv, struct cn_stream *s, const void *head,
                         size_t head_len);
/* Hands a connection over to another protocol on the same port. head holds the bytes read so
 * far (the whole 24-byte HTTP/2 preface, and whatever came with it), borrowed for the call.
 * Return 0 when the stream is taken (the HTTP server has let go of it: reading stopped, s->data
 * free for the new owner), negative to refuse (the connection is then closed). */
typedef int (*cn_http_h2_hook)(void *ctx, struct cn_stream *s, const void *head, size_t head_len);
/* Sets (fn NULL: clears) the hook that takes connections opening with the HTTP/2 client preface
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (h2c with prior knowledge: gRPC, as etcd's cmux sorts them).
 * Only connections this server accepted are sniffed, before their first byte is parsed; without
 * a hook nothing is sniffed and such a connection gets http-parser's 400 as before. */
void cn_http_server_set_h2(struct cn_http_server *srv, cn_http_h2_hook fn, void *ctx);
/* Stops accepting, aborts streaming responses (on_abort runs for each, inside this call; the
 * client then gets the stream's last chunk, i.e. a complete response), closes idle connections,
 * and lets connections with a request in flight finish it (its response says "Connection: close",
 * and the connection closes right after). close_cb (may be NULL) runs once every handle is closed,
 * always from the loop, never inside this call; the server frees itself after it returns. */
void cn_http_server_close(struct cn_http_server *srv, void (*close_cb)(void *ctx), void *ctx);
/* Number of open connections. */
size_t cn_http_server_conn_count(const struct cn_http_server *srv);
/* The port the first listener is bound to (useful after listening on port 0), 0 before listen. */
uint16_t cn_http_server_port(const struct cn_http_server *srv);

/* Extra response headers: name/value pairs, NUL-terminated strings. Do not pass Content-Length,
 * Transfer-Encoding or Connection: the layer writes those. CR and LF in values are replaced by
 * spaces (no response splitting). */
struct cn_http_hdr {
    const char *name;
    const char *value;
};

/* etcd 2.x's CORS rule (--cors, a comma-separated list of origins or "*"): when the request's
 * Origin is allowed, fills h with the three Access-Control-* headers (the origin copied into buf)
 * and returns true. The caller answers an OPTIONS preflight with them, or adds them to the
 * response of any other request. */
bool cn_http_cors(const char *cors, const struct cn_http_req *req, struct cn_http_hdr h[3],
                  char *buf, size_t buflen);

/* Sends a complete response: status line, Date-less headers (Content-Type if ctype is non-NULL,
 * the extra headers, Content-Length), then the body (omitted for HEAD, Content-Length kept).
 * 1xx, 204 and 304 carry neither Content-Length nor body (as Go's server). body is borrowed: it
 * is written or copied before this returns. close_after: send "Connection: close" and close once
 * written. The request is finished and may already be freed when this returns (a connection
 * that is closing frees it at once): do not touch req, req->data or req->on_abort afterwards;
 * clear what the owner keeps before calling. */
void cn_http_respond(struct cn_http_req *req, int status, const char *ctype,
                     const struct cn_http_hdr *hdrs, size_t nhdrs, const void *body, size_t len,
                     bool close_after);

/* Starts a chunked response (headers are flushed at once). For HEAD the headers are the same and
 * no chunk is ever written. To an HTTP/1.0 client the body is sent raw and the connection closes at
 * the end (no chunked encoding in 1.0). */
void cn_http_stream_start(struct cn_http_req *req, int status, const char *ctype,
                          const struct cn_http_hdr *hdrs, size_t nhdrs);
/* Writes one chunk (copied or written before this returns; len 0 is ignored). */
void cn_http_stream_write(struct cn_http_req *req, const void *p, size_t len);
/* Bytes of this response queued and not yet written to the socket (for slow-consumer limits). */
size_t cn_http_stream_backlog(const struct cn_http_req *req);
/* Writes the last chunk; the request is finished. */
void cn_http_stream_end(struct cn_http_req *req);

/* The reason phrase Go uses for a status ("Precondition Failed"); "" for a code Go does not name
 * (the status line then says "status code N", as Go does). */
const char *cn_http_status_text(int status);

#endif
