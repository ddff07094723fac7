/* pbjson: etcd 3.4's grpc-gateway JSON surface as pure code. A descriptor-driven codec between
 * protobuf-c messages and the JSON that grpc-gateway 1.6.4's default marshaler (JSONPb{OrigName:
 * true} over golang/protobuf 1.3 jsonpb) reads and writes, the table of gateway routes, the
 * error body and HTTP status of a failed call, and the framing of the streaming routes
 * (/v3/watch, /v3/lease/keepalive). No sockets, no clocks; every function is reentrant and
 * takes no locks (call it from any thread, one object per thread).
 *
 * Encoding follows jsonpb with EmitDefaults off: fields in field-number order (etcd's .proto
 * files declare them in that order, which is the Go struct order jsonpb walks), proto names,
 * no spaces; 64-bit integers as quoted decimals, 32-bit as numbers; bytes as padded standard
 * base64; enums by name (a value without a name as a bare number); zero scalars, empty strings
 * and bytes, empty repeated fields and NULL messages omitted; a present message is written even
 * when empty ("{}"); a oneof member is written whenever it is the set case, zero or not; strings
 * escaped as Go's encoding/json does (<, >, &, U+2028, U+2029 as \u escapes, invalid UTF-8 as
 * U+FFFD). Decoding follows jsonpb's Unmarshaler{AllowUnknownFields: true}; see decode.c for
 * every rule and the error texts (Go's, byte for byte where they are deterministic). */
#ifndef CN_PBJSON_PBJSON_H
#define CN_PBJSON_PBJSON_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

#include "common/grpc_status.h"

/* Bounds on what a decode accepts; a zero member means the default. */
struct cn_pbjson_limits {
    size_t max_len;     /* bytes of one JSON value; default 4 MiB, enough for the JSON of
                           etcd's largest request (2 MiB of protobuf, base64 adds a third):
                           check the decoded size with cn_pbjson_check_size. The syntax tree
                           costs up to 10 bytes per input byte (a body of "1,1,1...") */
    unsigned max_depth; /* nesting of objects and arrays; default 64 */
};

/* A decode failure: the message the gateway would put in its error body (Go's text), NUL
 * terminated, and the gRPC code to answer with (InvalidArgument for a unary call). */
struct cn_pbjson_error {
    int code;
    char msg[256];
};

/* ---- codec ---- */

/* Appends the JSON of msg (any protobuf-c message) to out. Never fails (allocation aborts). */
void cn_pbjson_encode(struct cn_buf *out, const ProtobufCMessage *msg);

/* Decodes the first JSON value of p[0..len) into a new message of type desc, as the gateway's
 * json.Decoder does: leading whitespace is skipped, whatever follows the first value is ignored,
 * an empty (or all-whitespace) body and `null` both give an empty message. Returns 0 and sets
 * *out, or a negative code (CN_ERR_PARSE for bad JSON or a bad value, CN_ERR_TOO_LARGE past
 * lim->max_len or max_depth) with *err filled and *out NULL. On success the caller owns *out and
 * frees it, with everything it points to, in one call: cn_pbjson_free(*out) (it is built by
 * cn_pbjson_allocator, i.e. cairn's cn_alloc hooks, so protobuf_c_message_free_unpacked(m,
 * &cn_pbjson_allocator) is the same). lim may be NULL for the defaults. */
int cn_pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *p, size_t len,
                     const struct cn_pbjson_limits *lim, ProtobufCMessage **out,
                     struct cn_pbjson_error *err);

/* etcd's gRPC server refuses a request whose protobuf is over --max-request-bytes + 512 KiB
 * (2 MiB by default) with ResourceExhausted "grpc: received message larger than max (N vs.
 * 2097152)", which the gateway answers with 429 [observed]. Returns 0 when msg packs to at most
 * max_bytes, else CN_ERR_TOO_LARGE with that error in *err. */
int cn_pbjson_check_size(const ProtobufCMessage *msg, size_t max_bytes,
                         struct cn_pbjson_error *err);

/* Frees a message from cn_pbjson_decode (NULL is a no-op). */
void cn_pbjson_free(ProtobufCMessage *msg);

/* The allocator decoded messages are built with (cn_xmalloc/cn_free). */
extern ProtobufCAllocator cn_pbjson_allocator;

/* ---- routes ---- */

struct cn_pbjson_route {
    const char *path;   /* "/v3/kv/range" */
    const char *method; /* gRPC full method name, "/etcdserverpb.KV/Range" */
    const ProtobufCMessageDescriptor *request;
    const ProtobufCMessageDescriptor *response;
    bool client_stream; /* the body holds successive requests (Watch, LeaseKeepAlive) */
    bool server_stream; /* the reply is {"result":...} lines (Watch, LeaseKeepAlive, Snapshot) */
};

/* What the gateway does with a request line. */
enum cn_pbjson_lookup {
    CN_PBJSON_FOUND = 0,      /* *route set: POST to a gateway path */
    CN_PBJSON_NOT_FOUND,      /* 404, text/plain body "Not Found\n" (grpc-gateway's) */
    CN_PBJSON_NOT_ALLOWED,    /* 405, text/plain body "Method Not Allowed\n" */
    CN_PBJSON_NOT_FOUND_HTTP, /* 404, text/plain body "404 page not found\n" (Go's ServeMux:
                                 /v3alpha/..., outside the gateway's mount) */
};

/* Looks up method + path (path without the query string, which the gateway ignores for these
 * body:"*" routes). /v3beta/... is served as /v3/...; /v3alpha/... is not served (etcd 3.4).
 * The match is exact and case-sensitive: a trailing slash is 404. Paths Go's ServeMux would
 * redirect (//, /./, /../: 301 to the cleaned path) are the caller's business. */
enum cn_pbjson_lookup cn_pbjson_route_find(const char *method, size_t method_len, const char *path,
                                           size_t path_len, const struct cn_pbjson_route **route);

/* The whole table, *n entries, in etcd's rpc.proto order. */
const struct cn_pbjson_route *cn_pbjson_routes(size_t *n);

/* The body text of a lookup failure ("Not Found\n", ...), NULL for CN_PBJSON_FOUND. */
const char *cn_pbjson_lookup_body(enum cn_pbjson_lookup r);
/* Its HTTP status (200 for FOUND). */
int cn_pbjson_lookup_status(enum cn_pbjson_lookup r);

/* ---- errors and framing ----
 *
 * What etcd 3.4.23 sends around these bodies [observed with curl -i]:
 *   every response: Access-Control-Allow-Origin: *, Access-Control-Allow-Methods: POST, GET,
 *     OPTIONS, PUT, DELETE, Access-Control-Allow-Headers: accept, content-type, authorization
 *     (etcd's HTTP wrapper; OPTIONS on any path is 200 with an empty body);
 *   unary success: 200, Content-Type: application/json, Grpc-Metadata-Content-Type:
 *     application/grpc, Content-Length;
 *   error returned by the gRPC handler: its status, Content-Type: application/json,
 *     Transfer-Encoding: chunked, Trailer: Grpc-Trailer-Content-Type, and after the body the
 *     trailer Grpc-Trailer-Content-Type: application/grpc (no Grpc-Metadata-* header);
 *   error decoding the request (never reached gRPC): its status, Content-Type:
 *     application/json, Content-Length, no Grpc-* header;
 *   streams: 200, Transfer-Encoding: chunked, Content-Type: application/json,
 *     Grpc-Metadata-Content-Type: application/grpc, the headers only going out with the first
 *     reply (a watch that never answers sends nothing at all); a keepalive stream ends when
 *     the body ends, a watch stays open;
 *   lookup failures: text/plain; charset=utf-8, X-Content-Type-Options: nosniff. */

/* grpc-gateway 1.6.4 runtime.HTTPStatusFromCode: the HTTP status for a gRPC code. */
int cn_pbjson_http_status(int grpc_code);
/* Go's http.StatusText for the statuses above ("Bad Request", ...; "" for others). */
const char *cn_pbjson_status_text(int http_status);

/* Appends a unary call's error body: {"error":msg,"message":msg,"code":code} (etcd's exact
 * bytes; code 0 is omitted as jsonpb omits zeros, so is an empty message). Serve it with
 * cn_pbjson_http_status(code) and Content-Type: application/json, no Grpc-Metadata-*. */
void cn_pbjson_error_body(struct cn_buf *out, int grpc_code, const char *msg, size_t msg_len);

/* Appends one streamed reply line: {"result":<msg JSON>}\n. */
void cn_pbjson_stream_result(struct cn_buf *out, const ProtobufCMessage *msg);
/* Appends the error chunk grpc-gateway writes when a stream's gRPC call fails:
 * {"error":{"grpc_code":c,"http_code":h,"message":m,"http_status":"..."}} with no newline after
 * it; the stream then ends (grpc-gateway 1.6.4 handleForwardResponseStreamError). When no reply
 * went out before, it is the whole chunked body and the HTTP status is http_code (observed:
 * /v3/maintenance/snapshot without a token under auth, 500 with grpc_code 2 "auth: user name is
 * empty", no Grpc-Metadata-* header); otherwise it follows the last {"result":...} line. */
void cn_pbjson_stream_error(struct cn_buf *out, int grpc_code, const char *msg, size_t msg_len);

/* Successive JSON requests from a streaming route's body, fed as it arrives. Values follow each
 * other with optional whitespace between ("{..}{..}" and one per line both work). */
struct cn_pbjson_stream {
    struct cn_buf buf; /* bytes fed and not yet consumed */
    size_t pos;        /* start of the next value in buf */
    bool eof;          /* the body ended */
    bool failed;       /* a decode failed: nothing more comes out */
    struct cn_pbjson_limits lim;
};

void cn_pbjson_stream_init(struct cn_pbjson_stream *s, const struct cn_pbjson_limits *lim);
void cn_pbjson_stream_close(struct cn_pbjson_stream *s);
/* Adds body bytes; with p == NULL/len 0 and end set, marks the end of the body. */
void cn_pbjson_stream_feed(struct cn_pbjson_stream *s, const char *p, size_t len, bool end);
/* Takes the next request: 0 and *out (free with cn_pbjson_free); CN_ERR_AGAIN when more bytes
 * are needed; CN_ERR_EOF when the body ended after the last value (only whitespace left); or a
 * decode error (CN_ERR_PARSE / CN_ERR_TOO_LARGE, *err set; every later call returns the same
 * code). What etcd does with such an error: on the first request of the body the whole call
 * fails as a unary error body, code Unknown (2), HTTP 500; on a later one the gateway only
 * half-closes the gRPC stream (a watch stays open and keeps sending, a keepalive ends after its
 * replies) and reports nothing. */
int cn_pbjson_stream_next(struct cn_pbjson_stream *s, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **out, struct cn_pbjson_error *err);

#endif
