/* http_respond: responses and streamed responses of the server (see server_int.h). */
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

/* ---- responses --------------------------------------------------------------------------- */

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Go's server sends Date on every response, after the handler's headers; formatted once a second
 * (C locale: strftime's %a and %b are English as HTTP wants). */
static void put_date(struct cn_http_server *srv, struct cn_buf *b)
{
    time_t now = time(NULL);
    if (now != srv->date_sec || srv->date_len == 0) {
        struct tm tm;
        gmtime_r(&now, &tm);
        srv->date_len =
            strftime(srv->date, sizeof(srv->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_sec = now;
    }
    cn_buf_append(b, srv->date, srv->date_len);
}

static void head_begin(struct conn *c, struct req *r, int status, const char *ctype,
                       const struct cn_http_hdr *hdrs, size_t nhdrs)
{
    struct cn_buf *b = &r->out;
    /* the last response a closing connection sends says so */
    r->close = r->close || !r->pub.keep_alive || (c->no_more && r->link.next == &c->queue);
    cn_buf_reserve(b, 256);
    cn_buf_append(b, "HTTP/1.1 ", 9);
    cn_http__put_status(b, status);
    if (ctype) {
        cn_buf_append(b, "Content-Type: ", 14);
        cn_http__put_value(b, ctype);
        cn_buf_append(b, "\r\n", 2);
    }
    for (size_t i = 0; i < nhdrs; i++) {
        cn_buf_appends(b, hdrs[i].name);
        cn_buf_append(b, ": ", 2);
        cn_http__put_value(b, hdrs[i].value);
        cn_buf_append(b, "\r\n", 2);
    }
    if (r->extra.len) cn_buf_append(b, r->extra.p, r->extra.len);
    if (c->srv->limits.send_date) put_date(c->srv, b);
    if (r->close)
        cn_buf_append(b, "Connection: close\r\n", 19);
    else if (r->http10)
        cn_buf_append(b, "Connection: keep-alive\r\n", 24);
}

void cn_http_req_add_header(struct cn_http_req *req, const char *name, const char *value)
{
    struct req *r = (struct req *)req;
    cn_buf_appends(&r->extra, name);
    cn_buf_append(&r->extra, ": ", 2);
    cn_http__put_value(&r->extra, value);
    cn_buf_append(&r->extra, "\r\n", 2);
}

void cn_http_respond(struct cn_http_req *req, int status, const char *ctype,
                     const struct cn_http_hdr *hdrs, size_t nhdrs, const void *body, size_t len,
                     bool close_after)
{
    struct req *r = REQ(req);
    struct conn *c = r->conn;
    CN_ASSERT(r->state == RS_PENDING);
    r->state = RS_DONE;
    if (c->closing) return;
    if (close_after) r->close = true;
    head_begin(c, r, status, ctype, hdrs, nhdrs);
    bool has_body = status_has_body(status);
    if (has_body) {
        cn_buf_append(&r->out, "Content-Length: ", 16);
        cn_buf_append_u64(&r->out, len);
        cn_buf_append(&r->out, "\r\n", 2);
    }
    cn_buf_append(&r->out, "\r\n", 2);
    if (!has_body || r->is_head) len = 0;
    cn_http__req_output(c, r, body, len, NULL, 0);
    cn_http__conn_advance(c);
}

void cn_http_stream_start(struct cn_http_req *req, int status, const char *ctype,
                          const struct cn_http_hdr *hdrs, size_t nhdrs)
{
    struct req *r = REQ(req);
    struct conn *c = r->conn;
    CN_ASSERT(r->state == RS_PENDING);
    r->state = RS_STREAMING;
    if (c->closing) return;
    r->nobody = !status_has_body(status);
    if (r->http10) r->close = true; /* HTTP/1.0: the body ends with the connection */
    head_begin(c, r, status, ctype, hdrs, nhdrs);
    if (!r->http10 && !r->nobody) {
        cn_buf_append(&r->out, "Transfer-Encoding: chunked\r\n", 28);
        r->chunked = true;
    }
    cn_buf_append(&r->out, "\r\n", 2);
    cn_http__req_output(c, r, NULL, 0, NULL, 0);
}

void cn_http_stream_write(struct cn_http_req *req, const void *p, size_t len)
{
    struct req *r = REQ(req);
    struct conn *c = r->conn;
    CN_ASSERT(r->state == RS_STREAMING);
    if (c->closing || len == 0 || r->is_head || r->nobody) return;
    if (r->chunked) {
        char hex[24];
        int n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
        cn_buf_append(&r->out, hex, (size_t)n);
        cn_http__req_output(c, r, p, len, "\r\n", 2);
    } else {
        cn_http__req_output(c, r, p, len, NULL, 0);
    }
}

size_t cn_http_stream_backlog(const struct cn_http_req *req)
{
    const struct req *r = REQ(req);
    const struct conn *c = r->conn;
    if (c->closing) return 0;
    return cn_http__req_is_head(c, r) ? cn_http__conn_backlog(c) : r->out.len;
}

void cn_http__stream_finish(struct conn *c, struct req *r)
{
    r->state = RS_DONE;
    if (c->closing) return;
    if (r->chunked && !r->is_head) {
        static const char last[] = "0\r\n\r\n";
        cn_http__req_output(c, r, last, sizeof(last) - 1, NULL, 0);
    }
    cn_http__conn_advance(c);
}

void cn_http_stream_end(struct cn_http_req *req)
{
    struct req *r = REQ(req);
    CN_ASSERT(r->state == RS_STREAMING);
    cn_http__stream_finish(r->conn, r);
}
