/* call: one gRPC call on one HTTP/2 stream (see h2_int.h): the request's headers, its messages
 * reassembled across DATA frames and handed to the method's handler, the reply (HEADERS, DATA
 * from the call's queue, trailers or Trailers-Only), the deadline, and the handler-facing API of
 * grpc.h. Everything here only submits to nghttp2 and marks the connection dirty; session.c
 * writes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "h2/h2_int.h"

struct dl_timer {
    uv_timer_t t;
    struct cn_grpc_call *call; /* NULL once the call is freed */
};

#define NV(n, v, vl)                                                                               \
    ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE})

static const char ctype_grpc[] = "application/grpc";

/* ---- lifetime ---------------------------------------------------------------------------- */

struct cn_grpc_call *cn_h2__call_new(struct conn *c, int32_t stream_id)
{
    struct cn_grpc_call *call = CN_NEW(struct cn_grpc_call);
    call->conn = c;
    call->stream_id = stream_id;
    call->app_done = true; /* until the headers name a method */
    cn_list_insert_tail(&c->calls, &call->link);
    return call;
}

static void timer_closed(uv_handle_t *h)
{
    cn_free(h->data);
}

void cn_h2__call_free(struct cn_grpc_call *call)
{
    if (call->timer) {
        call->timer->call = NULL;
        uv_close((uv_handle_t *)&call->timer->t, timer_closed);
    }
    cn_list_remove(&call->link);
    cn_buf_free(&call->arena);
    cn_buf_free(&call->rbuf);
    cn_buf_free(&call->out);
    cn_free(call->hdrs);
    cn_free(call->message);
    cn_free(call);
}

/* The handler lets go of the call (grpc.h rule 2). */
static void release(struct cn_grpc_call *call)
{
    call->app_done = true;
    if (call->counted) {
        call->counted = false;
        call->conn->srv->ncalls--;
    }
    if (call->timer) uv_timer_stop(&call->timer->t);
}

/* on_cancel for a call the handler still owns (grpc.h rule 3). */
static void cancel_to_app(struct cn_grpc_call *call)
{
    if (call->app_done) return;
    release(call);
    if (call->m && call->m->on_cancel) call->m->on_cancel(call, call->m->ctx);
}

/* ---- reply ------------------------------------------------------------------------------- */

static size_t status_nv(nghttp2_nv *nv, char *code, int status, const struct cn_buf *msg,
                        bool accept_enc)
{
    size_t n = 0;
    int cl = snprintf(code, 12, "%d", status);
    nv[n++] = NV("grpc-status", code, (size_t)cl);
    if (msg->len > 0) nv[n++] = NV("grpc-message", msg->p, msg->len);
    if (accept_enc) nv[n++] = NV("grpc-accept-encoding", "identity", 8);
    return n;
}

static ssize_t data_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user);

/* The response HEADERS and the data provider, on the first message. */
static int start_reply(struct cn_grpc_call *call)
{
    nghttp2_nv nv[2] = {NV(":status", "200", 3),
                        NV("content-type", ctype_grpc, sizeof(ctype_grpc) - 1)};
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = data_read};
    int rv = nghttp2_submit_response(call->conn->ngh, call->stream_id, nv, 2, &prd);
    if (rv != 0) return CN_ERR_STOPPED;
    call->headers_sent = true;
    return 0;
}

/* Ends the stream with status: one Trailers-Only HEADERS when nothing was sent, else trailers
 * once the queue is out. */
static void end_status(struct cn_grpc_call *call, int http_status, int status, const char *msg,
                       bool accept_enc)
{
    struct conn *c = call->conn;
    if (c->closing || call->stream_closed || call->finishing || call->trailers_sent) return;
    call->finishing = true;
    call->status = status;
    call->accept_enc = accept_enc;
    if (call->headers_sent) {
        call->message = msg && *msg ? cn_xstrdup(msg) : NULL;
        nghttp2_session_resume_data(c->ngh, call->stream_id);
    } else {
        char hs[12], code[12];
        int hl = snprintf(hs, sizeof(hs), "%d", http_status);
        struct cn_buf enc = CN_BUF_INIT;
        if (msg) cn_h2__percent_encode(&enc, msg);
        nghttp2_nv nv[5] = {NV(":status", hs, (size_t)hl),
                            NV("content-type", ctype_grpc, sizeof(ctype_grpc) - 1)};
        size_t n = 2 + status_nv(nv + 2, code, status, &enc, accept_enc);
        /* nghttp2 copies the headers */
        if (nghttp2_submit_response(c->ngh, call->stream_id, nv, n, NULL) == 0)
            call->headers_sent = true;
        cn_buf_free(&enc);
    }
    cn_h2__kick(c);
}

static void submit_trailers(struct cn_grpc_call *call)
{
    char code[12];
    struct cn_buf enc = CN_BUF_INIT;
    if (call->message) cn_h2__percent_encode(&enc, call->message);
    nghttp2_nv nv[3];
    size_t n = status_nv(nv, code, call->status, &enc, call->accept_enc);
    int rv = nghttp2_submit_trailer(call->conn->ngh, call->stream_id, nv, n);
    if (rv != 0) CN_LOGD("h2", "submit trailer failed err=%s", nghttp2_strerror(rv));
    cn_buf_free(&enc);
}

/* nghttp2's data source: the call's queue, then (finishing) EOF without END_STREAM and the
 * trailers, which carry it. */
static ssize_t data_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct cn_grpc_call *call = src->ptr;
    size_t avail = call->out.len - call->out_off;
    size_t n = avail < length ? avail : length;
    if (n > 0) {
        memcpy(buf, call->out.p + call->out_off, n);
        call->out_off += n;
        if (call->out_off == call->out.len) {
            cn_buf_reset(&call->out);
            call->out_off = 0;
            if (call->out.cap > 4 * READ_BUF_LEN) cn_buf_free(&call->out);
        }
    }
    if (call->out.len == call->out_off && call->finishing) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        submit_trailers(call);
        return (ssize_t)n;
    }
    return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

/* An error the handler did not choose: it gets on_cancel (if it owns the call), the client gets
 * status. */
static void fail(struct cn_grpc_call *call, int status, const char *msg, bool accept_enc)
{
    CN_LOGD("h2", "call failed stream=%" PRId32 " status=%d msg=\"%s\"", call->stream_id, status,
            msg);
    cancel_to_app(call);
    end_status(call, 200, status, msg, accept_enc);
}

/* ---- request ----------------------------------------------------------------------------- */

static struct cn_str arena_str(const struct cn_grpc_call *call, size_t off, size_t len)
{
    return cn_str_make(call->arena.p ? call->arena.p + off : "", len);
}

static bool name_is(const uint8_t *name, size_t nlen, const char *z)
{
    return cn_str_eqz(cn_str_make((const char *)name, nlen), z);
}

int cn_h2__call_header(struct cn_grpc_call *call, const uint8_t *name, size_t nlen,
                       const uint8_t *value, size_t vlen)
{
    struct cn_grpc_server *srv = call->conn->srv;
    call->hdr_bytes += nlen + vlen + 32; /* RFC 7540 6.5.2's accounting */
    if (call->hdr_bytes > srv->limits.max_header_bytes) return CN_ERR_TOO_LARGE;
    struct cn_str v = cn_str_make((const char *)value, vlen);
    if (nlen > 0 && name[0] == ':') {
        if (name_is(name, nlen, ":path")) {
            call->path_off = call->arena.len;
            call->path_len = vlen;
            cn_buf_append(&call->arena, value, vlen);
        } else if (name_is(name, nlen, ":method")) {
            call->bad_method = !cn_str_eqz(v, "POST");
        }
        return 0;
    }
    if (name_is(name, nlen, "content-type")) {
        call->has_ctype = true;
        call->ctype_off = call->arena.len;
        call->ctype_len = vlen;
        cn_buf_append(&call->arena, value, vlen);
        return 0;
    }
    if (name_is(name, nlen, "grpc-timeout")) {
        call->has_timeout = true;
        call->bad_timeout = cn_h2__parse_timeout(v, &call->timeout_ms) != 0;
        return 0;
    }
    if (name_is(name, nlen, "grpc-encoding")) {
        call->has_enc = true;
        call->enc_off = call->arena.len;
        call->enc_len = vlen;
        cn_buf_append(&call->arena, value, vlen);
        return 0;
    }
    if (call->nhdrs >= MAX_HEADERS) return 0;
    if (call->nhdrs % 8 == 0)
        call->hdrs = cn_xrealloc(call->hdrs, (call->nhdrs + 8) * sizeof(*call->hdrs));
    struct hdr *h = &call->hdrs[call->nhdrs++];
    h->name_off = call->arena.len;
    h->name_len = nlen;
    cn_buf_append(&call->arena, name, nlen);
    h->val_off = call->arena.len;
    if (nlen > 4 && memcmp(name + nlen - 4, "-bin", 4) == 0 &&
        cn_h2__base64_decode(&call->arena, v) == 0) {
        h->val_len = call->arena.len - h->val_off;
    } else {
        call->arena.len = h->val_off; /* undo a partial decode; keep the raw value */
        cn_buf_append(&call->arena, value, vlen);
        h->val_len = vlen;
    }
    return 0;
}

static void on_deadline(uv_timer_t *t)
{
    struct dl_timer *dt = t->data;
    struct cn_grpc_call *call = dt->call;
    if (!call || call->app_done) return;
    /* grpc-go: the handler's context ends with context.DeadlineExceeded */
    fail(call, CN_GRPC_DEADLINE_EXCEEDED, "context deadline exceeded", false);
}

/* grpc-go's grpcutil.ContentSubtype: "application/grpc" alone or followed by '+' or ';'. */
static bool ctype_ok(struct cn_str ct)
{
    struct cn_str g = CN_STR("application/grpc");
    if (ct.len < g.len) return false;
    for (size_t i = 0; i < g.len; i++) {
        char ch = ct.p[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != g.p[i]) return false;
    }
    return ct.len == g.len || ct.p[g.len] == '+' || ct.p[g.len] == ';';
}

void cn_h2__call_headers_done(struct cn_grpc_call *call, bool end_stream)
{
    struct conn *c = call->conn;
    struct cn_grpc_server *srv = c->srv;
    call->remote_closed = end_stream;
    struct cn_str ct = arena_str(call, call->ctype_off, call->ctype_len);
    if (!call->has_ctype || !ctype_ok(ct)) {
        /* grpc-go http2_server.go operateHeaders: 415 + InvalidArgument */
        struct cn_buf m = CN_BUF_INIT;
        cn_buf_appendf(&m, "invalid gRPC request content-type \"%.*s\"", (int)ct.len, ct.p);
        end_status(call, 415, CN_GRPC_INVALID_ARGUMENT, m.p, false);
        cn_buf_free(&m);
        return;
    }
    if (call->bad_method) {
        end_status(call, 405, CN_GRPC_INTERNAL, "invalid HTTP method, expected POST", false);
        return;
    }
    if (call->bad_timeout) {
        end_status(call, 200, CN_GRPC_INTERNAL, "transport: malformed grpc-timeout", false);
        return;
    }
    struct cn_buf m = CN_BUF_INIT;
    call->m = cn_h2__lookup(srv->methods, srv->nmethods,
                            arena_str(call, call->path_off, call->path_len), &m);
    if (!call->m) {
        end_status(call, 200, CN_GRPC_UNIMPLEMENTED, m.p, false);
        cn_buf_free(&m);
        return;
    }
    cn_buf_free(&m);
    call->app_done = false;
    call->counted = true;
    srv->ncalls++;
    if (call->has_timeout) {
        struct dl_timer *dt = CN_NEW(struct dl_timer);
        uv_timer_init(srv->loop, &dt->t);
        dt->t.data = dt;
        dt->call = call;
        call->timer = dt;
        call->deadline_ms = uv_now(srv->loop) + call->timeout_ms;
        uv_timer_start(&dt->t, on_deadline, call->timeout_ms, 0);
    }
    if (end_stream) cn_h2__call_data_done(call, true);
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | (uint32_t)u[3];
}

/* Scans the message prefixes that arrived for one over the limit (grpc-go checks the length
 * before it reads the message, so no oversized message is ever buffered). */
static size_t scan_off(struct cn_grpc_call *call, size_t from, bool *too_big, uint32_t *len)
{
    size_t max = call->conn->srv->limits.max_recv_msg;
    while (from + 5 <= call->rbuf.len) {
        *len = be32(call->rbuf.p + from + 1);
        if (*len > max) {
            *too_big = true;
            return from;
        }
        from += 5 + (size_t)*len;
    }
    return from;
}

int cn_h2__call_data(struct cn_grpc_call *call, const uint8_t *p, size_t n)
{
    if (call->app_done) return 0; /* nobody to deliver to: dropped (the window still opens) */
    /* rbuf starts at a message prefix (data_done consumes whole messages only) */
    cn_buf_append(&call->rbuf, p, n);
    bool too_big = false;
    uint32_t len = 0;
    scan_off(call, 0, &too_big, &len);
    if (too_big) {
        char msg[96];
        snprintf(msg, sizeof(msg), "grpc: received message larger than max (%" PRIu32 " vs. %zu)",
                 len, call->conn->srv->limits.max_recv_msg);
        cn_buf_free(&call->rbuf);
        fail(call, CN_GRPC_RESOURCE_EXHAUSTED, msg, false);
    }
    return 0;
}

void cn_h2__call_data_done(struct cn_grpc_call *call, bool end_stream)
{
    if (end_stream) call->remote_closed = true;
    size_t off = 0;
    while (!call->app_done && call->rbuf.len - off >= 5) {
        const char *h = call->rbuf.p + off;
        uint32_t len = be32(h + 1);
        if (call->rbuf.len - off - 5 < len) break;
        unsigned char flag = (unsigned char)h[0];
        if (flag == 1) {
            struct cn_str enc = arena_str(call, call->enc_off, call->enc_len);
            if (!call->has_enc || cn_str_eqz(enc, "identity")) {
                fail(call, CN_GRPC_INTERNAL,
                     "grpc: compressed flag set with identity or empty encoding", false);
            } else {
                char msg[128];
                snprintf(msg, sizeof(msg),
                         "grpc: Decompressor is not installed for grpc-encoding \"%.*s\"",
                         (int)(enc.len > 40 ? 40 : enc.len), enc.p);
                fail(call, CN_GRPC_UNIMPLEMENTED, msg, true);
            }
            break;
        }
        if (flag > 1) {
            char msg[64];
            snprintf(msg, sizeof(msg), "grpc: received unexpected payload format %u", flag);
            fail(call, CN_GRPC_INTERNAL, msg, false);
            break;
        }
        off += 5 + (size_t)len;
        /* grpc-go's unary and server-streaming handlers read one message: later ones are
         * dropped */
        if (call->nmsgs++ > 0 && !call->m->client_stream) continue;
        call->m->on_message(call, h + 5, len, call->m->ctx);
    }
    if (call->app_done) {
        cn_buf_free(&call->rbuf);
        return;
    }
    if (off > 0) {
        size_t rest = call->rbuf.len - off;
        memmove(call->rbuf.p, call->rbuf.p + off, rest);
        call->rbuf.len = rest;
        if (rest == 0 && call->rbuf.cap > 4 * READ_BUF_LEN) cn_buf_free(&call->rbuf);
    }
    if (!call->remote_closed) return;
    if (call->rbuf.len > 0) {
        /* grpc-go: io.ErrUnexpectedEOF from the parser, not a status: Unknown */
        fail(call, CN_GRPC_UNKNOWN, "unexpected EOF", false);
        return;
    }
    if (call->nmsgs == 0 && !call->m->client_stream) {
        fail(call, CN_GRPC_INTERNAL, "grpc: error while receiving request: EOF", false);
        return;
    }
    if (call->m->on_half_close) call->m->on_half_close(call, call->m->ctx);
}

void cn_h2__call_sent_end(struct cn_grpc_call *call)
{
    call->trailers_sent = true;
    if (!call->remote_closed)
        nghttp2_submit_rst_stream(call->conn->ngh, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_NO_ERROR);
}

void cn_h2__call_closed(struct cn_grpc_call *call, uint32_t error_code)
{
    call->stream_closed = true;
    if (!call->app_done)
        CN_LOGD("h2", "call reset stream=%" PRId32 " code=%" PRIu32, call->stream_id, error_code);
    cancel_to_app(call);
    cn_h2__call_free(call);
}

void cn_h2__call_abort(struct cn_grpc_call *call)
{
    call->stream_closed = true;
    cancel_to_app(call);
    cn_h2__call_free(call);
}

/* ---- the handler's API ------------------------------------------------------------------- */

static int can_send(struct cn_grpc_call *call, size_t len)
{
    if (call->app_done || call->conn->closing || call->stream_closed || call->finishing)
        return CN_ERR_STOPPED;
    if (len > call->conn->srv->limits.max_send_msg || len > UINT32_MAX) return CN_ERR_TOO_LARGE;
    return 0;
}

static void put_prefix(struct cn_buf *b, size_t len)
{
    char h[5] = {0, (char)(len >> 24), (char)(len >> 16), (char)(len >> 8), (char)len};
    cn_buf_append(b, h, 5);
}

static int queued(struct cn_grpc_call *call)
{
    if (!call->headers_sent) {
        int rc = start_reply(call);
        if (rc != 0) return rc;
    } else {
        nghttp2_session_resume_data(call->conn->ngh, call->stream_id);
    }
    cn_h2__kick(call->conn);
    return 0;
}

int cn_grpc_send(struct cn_grpc_call *call, const void *msg, size_t len)
{
    int rc = can_send(call, len);
    if (rc != 0) return rc;
    put_prefix(&call->out, len);
    cn_buf_append(&call->out, msg, len);
    return queued(call);
}

int cn_grpc_send_pb(struct cn_grpc_call *call, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    int rc = can_send(call, len);
    if (rc != 0) return rc;
    put_prefix(&call->out, len);
    cn_buf_reserve(&call->out, len);
    size_t got = protobuf_c_message_pack(m, (uint8_t *)call->out.p + call->out.len);
    CN_ASSERT(got == len);
    call->out.len += len;
    call->out.p[call->out.len] = '\0';
    return queued(call);
}

void cn_grpc_finish(struct cn_grpc_call *call, int status, const char *message)
{
    if (call->app_done) return;
    release(call);
    end_status(call, 200, status, message, false);
}

struct cn_str cn_grpc_metadata(const struct cn_grpc_call *call, const char *name)
{
    for (size_t i = 0; i < call->nhdrs; i++) {
        const struct hdr *h = &call->hdrs[i];
        if (cn_str_eqz(arena_str(call, h->name_off, h->name_len), name))
            return arena_str(call, h->val_off, h->val_len);
    }
    return CN_STR_NULL;
}

const struct cn_grpc_method *cn_grpc_call_method(const struct cn_grpc_call *call)
{
    return call->m;
}

void cn_grpc_call_set_data(struct cn_grpc_call *call, void *data)
{
    call->data = data;
}

void *cn_grpc_call_data(const struct cn_grpc_call *call)
{
    return call->data;
}

size_t cn_grpc_call_backlog(const struct cn_grpc_call *call)
{
    return call->out.len - call->out_off;
}

uint64_t cn_grpc_call_deadline_ms(const struct cn_grpc_call *call)
{
    return call->deadline_ms;
}
