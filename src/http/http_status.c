/* http_status: Go's reason phrases (net/http status.go) and the small helpers both halves of the
 * HTTP layer share. etcd clients only read the code, but operators read the phrase in logs and
 * curl output, so we print the same words etcd does. */
#include <signal.h>

#include "http/http.h"
#include "http/http_int.h"

const char *cn_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 102:
        return "Processing";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 207:
        return "Multi-Status";
    case 208:
        return "Already Reported";
    case 226:
        return "IM Used";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Requested Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a teapot";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Entity";
    case 423:
        return "Locked";
    case 424:
        return "Failed Dependency";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 506:
        return "Variant Also Negotiates";
    case 507:
        return "Insufficient Storage";
    case 508:
        return "Loop Detected";
    case 510:
        return "Not Extended";
    case 511:
        return "Network Authentication Required";
    default:
        return "";
    }
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool cn_http__name_eq(struct cn_str a, const char *z)
{
    size_t i = 0;
    for (; i < a.len; i++) {
        if (z[i] == '\0' || lower(a.p[i]) != lower(z[i])) return false;
    }
    return z[i] == '\0';
}

struct cn_str cn_http_req_header(const struct cn_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (cn_http__name_eq(req->headers[i].name, name)) return req->headers[i].value;
    }
    return CN_STR_NULL;
}

void cn_http__put_status(struct cn_buf *b, int status)
{
    if (status < 100 || status > 999) status = 500;
    char num[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                   (char)('0' + status % 10), ' '};
    cn_buf_append(b, num, 4);
    const char *text = cn_http_status_text(status);
    if (*text) {
        cn_buf_appends(b, text);
    } else {
        cn_buf_append(b, "status code ", 12);
        cn_buf_append(b, num, 3);
    }
    cn_buf_append(b, "\r\n", 2);
}

void cn_http__put_value(struct cn_buf *b, const char *z)
{
    size_t n = strlen(z);
    size_t k = strcspn(z, "\r\n");
    if (k == n) {
        cn_buf_append(b, z, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        cn_buf_putc(b, (z[i] == '\r' || z[i] == '\n') ? ' ' : z[i]);
}

void cn_http__ignore_sigpipe(void)
{
    static bool done;
    if (done) return;
    done = true;
    signal(SIGPIPE, SIG_IGN);
}
