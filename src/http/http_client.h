/* http_client: a small asynchronous HTTP/1.1 client on libuv, for forwarding requests to the
 * leader, watches through a proxy and the discovery client. Plain http:// only (TLS later).
 * Keep-alive connections are pooled per host:port and reused; a request that fails on a reused
 * connection before any response byte arrived is retried once on a fresh one if it is a GET or
 * HEAD (the server may have closed the idle connection meanwhile, as Go's Transport assumes).
 * Host names are resolved with uv_getaddrinfo (thread pool), IP literals directly.
 *
 * Threading: everything runs on the loop thread that owns the client. */
#ifndef CN_HTTP_HTTP_CLIENT_H
#define CN_HTTP_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/str.h"
#include "http/http.h"

struct cn_http_client;
struct cn_http_client_req;

/* A response as the callbacks see it: borrowed, valid only during the callback. */
struct cn_http_client_resp {
    int status;
    const struct cn_http_header *headers;
    size_t nheaders;
    struct cn_str body; /* the whole body; always empty in stream mode */
};

/* Case-insensitive header lookup; CN_STR_NULL when absent. */
struct cn_str cn_http_client_resp_header(const struct cn_http_client_resp *resp, const char *name);

/* Called exactly once per request (unless it was canceled), always from the loop, never inside
 * cn_http_client_request. rc 0: resp is the response (any status). rc < 0: resp is NULL and rc is
 * CN_ERR_TIMEOUT, CN_ERR_CANCELED (client closed), CN_ERR_PROTO (malformed response),
 * CN_ERR_TOO_LARGE (body over max_body_bytes), CN_ERR_NOT_FOUND (name did not resolve) or a
 * negative errno (-ECONNREFUSED, -ECONNRESET, ...). The request is freed after it returns. */
typedef void (*cn_http_client_done_cb)(struct cn_http_client_req *req, int rc,
                                       const struct cn_http_client_resp *resp, void *ctx);
/* Stream mode: the status line and headers arrived (resp->body is empty). */
typedef void (*cn_http_client_head_cb)(struct cn_http_client_req *req,
                                       const struct cn_http_client_resp *resp, void *ctx);
/* Stream mode: a piece of the body (de-chunked), borrowed for the call. */
typedef void (*cn_http_client_chunk_cb)(struct cn_http_client_req *req, const void *p, size_t len,
                                        void *ctx);

struct cn_http_client_opts {
    const char *method;                /* "GET", "PUT", "POST", "DELETE", "HEAD", ... */
    const char *url;                   /* "http://host[:port]/path?query" */
    const struct cn_http_hdr *headers; /* extra request headers, copied */
    size_t nheaders;
    const void *body; /* copied; Content-Length is always sent for a body, PUT and POST */
    size_t body_len;
    uint64_t timeout_ms;            /* 0: none. The whole exchange; in stream mode, until on_head */
    size_t max_body_bytes;          /* 0: 64 MiB. Response body cap when not streaming */
    cn_http_client_head_cb on_head; /* non-NULL selects stream mode ... */
    cn_http_client_chunk_cb on_chunk; /* ... and then this gets the body as it arrives */
    cn_http_client_done_cb on_done;   /* required; in stream mode: the body ended (or failed) */
    void *ctx;
    /* Per-phase limits (0: none), each ending the request with CN_ERR_TIMEOUT, like the deadlines
     * Go's net.Conn wrappers set per operation. They run alongside timeout_ms. */
    uint64_t connect_timeout_ms; /* each TCP connect attempt */
    uint64_t write_timeout_ms;   /* writing the request, from when the write is queued */
    uint64_t read_timeout_ms;    /* silence from the server once the request is written: waiting
                                    for the head, and in stream mode between two body reads */
    /* An HTTP proxy ("http://host:port") to send the request through (absolute-form request
     * target, as Go's Transport does for a plain-http URL), or NULL. */
    const char *proxy;
};

struct cn_http_client *cn_http_client_new(uv_loop_t *loop);

/* Starts a request. Returns 0 (and *out if out is non-NULL: the handle, valid until on_done
 * returns or cn_http_client_cancel), or synchronously CN_ERR_INVAL for a URL it cannot use or
 * -EPROTONOSUPPORT for https (then no callback runs). */
int cn_http_client_request(struct cn_http_client *cl, const struct cn_http_client_opts *o,
                           struct cn_http_client_req **out);

/* Abandons a request: no callback runs for it after this (it may be called from inside its own
 * on_head or on_chunk). Its connection is closed unless the exchange was complete. */
void cn_http_client_cancel(struct cn_http_client_req *req);

/* Fails every request in flight with CN_ERR_CANCELED (on_done runs inside this call), closes
 * every connection; close_cb (may be NULL) runs from the loop once all handles are closed, and the
 * client frees itself after. */
void cn_http_client_close(struct cn_http_client *cl, void (*close_cb)(void *ctx), void *ctx);

#endif
