/* pbjson: successive JSON requests from one streaming body, as grpc-gateway's json.Decoder
 * reads them (see cn_pbjson_stream_next in pbjson.h). Each call re-parses from the start of the
 * pending value, so a value that trickles in n pieces costs n parses of its prefix; max_len
 * bounds that work. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "pbjson/pbjson.h"
#include "pbjson/pbjson_int.h"

#define DEFAULT_MAX_LEN   (4u * 1024 * 1024) /* see pbjson.h */
#define DEFAULT_MAX_DEPTH 64

void cn_pbjson_stream_init(struct cn_pbjson_stream *s, const struct cn_pbjson_limits *lim)
{
    memset(s, 0, sizeof *s);
    cn_buf_init(&s->buf);
    s->lim.max_len = lim && lim->max_len ? lim->max_len : DEFAULT_MAX_LEN;
    s->lim.max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
}

void cn_pbjson_stream_close(struct cn_pbjson_stream *s)
{
    cn_buf_free(&s->buf);
}

void cn_pbjson_stream_feed(struct cn_pbjson_stream *s, const char *p, size_t len, bool end)
{
    /* drop what was consumed, so a long-lived stream keeps at most one pending value */
    if (s->pos > 0) {
        memmove(s->buf.p, s->buf.p + s->pos, s->buf.len - s->pos);
        s->buf.len -= s->pos;
        s->buf.p[s->buf.len] = 0;
        s->pos = 0;
    }
    if (len) cn_buf_append(&s->buf, p, len);
    if (end) s->eof = true;
}

static int failed(struct cn_pbjson_stream *s, int rc)
{
    s->failed = true;
    return rc;
}

int cn_pbjson_stream_next(struct cn_pbjson_stream *s, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **out, struct cn_pbjson_error *err)
{
    *out = NULL;
    if (s->failed) {
        err->code = CN_GRPC_INVALID_ARGUMENT;
        snprintf(err->msg, sizeof err->msg, "stream already failed");
        return CN_ERR_PARSE;
    }
    const char *p = s->buf.p ? s->buf.p + s->pos : "";
    size_t avail = s->buf.len - s->pos;
    /* whitespace before a value never counts against the limit */
    size_t ws = 0;
    while (ws < avail && (p[ws] == ' ' || p[ws] == '\t' || p[ws] == '\n' || p[ws] == '\r'))
        ws++;
    s->pos += ws;
    p += ws;
    avail -= ws;
    if (avail == 0) return s->eof ? CN_ERR_EOF : CN_ERR_AGAIN;
    size_t scan = avail > s->lim.max_len ? s->lim.max_len : avail;
    struct cn_pbjson__tree t;
    size_t end = 0;
    int rc = cn_pbjson__parse(&t, p, scan, s->eof && scan == avail ? PJ_DECODER : PJ_PARTIAL,
                              s->lim.max_depth, &end, err);
    cn_pbjson__tree_free(&t);
    if (rc == CN_ERR_AGAIN) {
        if (scan < avail || avail >= s->lim.max_len) {
            err->code = CN_GRPC_RESOURCE_EXHAUSTED;
            snprintf(err->msg, sizeof err->msg,
                     "grpc: received message larger than max (%zu vs. %zu)", avail, s->lim.max_len);
            return failed(s, CN_ERR_TOO_LARGE);
        }
        if (!s->eof) return CN_ERR_AGAIN;
        /* the body ended inside the value: err holds "unexpected EOF" */
        return failed(s, CN_ERR_PARSE);
    } else if (rc != 0) {
        return failed(s, rc);
    }
    rc = cn_pbjson_decode(desc, p, end, &s->lim, out, err);
    if (rc != 0) return failed(s, rc);
    s->pos += end;
    return 0;
}
