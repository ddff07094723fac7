/* url: the bits of Go's net/url and path packages that decide the exact request URLs (and so the
 * --debug cURL lines) etcd's client sends: path escaping, path.Clean, url.Values encoding and
 * strconv.Quote. */
#include <string.h>

#include "cli/cli.h"
#include "common/url.h"

static const char hexd[] = "0123456789ABCDEF";

void cn_cli_escape_path(struct cn_buf *out, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~' || c == '$' || c == '&' ||
                    c == '+' || c == ',' || c == '/' || c == ':' || c == ';' || c == '=' ||
                    c == '@';
        if (keep) {
            cn_buf_putc(out, (char)c);
        } else {
            char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
            cn_buf_append(out, e, 3);
        }
    }
}

/* Go's path.Clean for a rooted path. */
static void clean_rooted(struct cn_buf *out, const char *p, size_t n)
{
    size_t start = out->len;
    cn_buf_putc(out, '/');
    size_t r = 0;
    while (r < n) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            /* back up to the previous slash, never past the root */
            size_t w = out->len;
            while (w > start + 1 && out->p[w - 1] != '/')
                w--;
            if (w > start + 1) w--;
            out->len = w > start + 1 ? w : start + 1;
            out->p[out->len] = '\0';
        } else {
            if (out->len > start + 1) cn_buf_putc(out, '/');
            while (r < n && p[r] != '/')
                cn_buf_putc(out, p[r++]);
        }
    }
}

void cn_cli_clean_path(struct cn_buf *out, const char *p, size_t len)
{
    if (len == 0) {
        cn_buf_putc(out, '/');
        return;
    }
    size_t start = out->len;
    clean_rooted(out, p, len);
    bool root = out->len - start == 1;
    if (p[len - 1] == '/' && !root) cn_buf_putc(out, '/');
}

void cn_cli_query_add(struct cn_buf *q, const char *name, const char *value, size_t value_len)
{
    if (q->len) cn_buf_putc(q, '&');
    cn_url_encode_query(q, cn_str_c(name));
    cn_buf_putc(q, '=');
    cn_url_encode_query(q, cn_str_make(value, value_len));
}

void cn_cli_go_quote(struct cn_buf *out, const char *p, size_t len)
{
    cn_buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '"':
            cn_buf_appends(out, "\\\"");
            break;
        case '\\':
            cn_buf_appends(out, "\\\\");
            break;
        case '\a':
            cn_buf_appends(out, "\\a");
            break;
        case '\b':
            cn_buf_appends(out, "\\b");
            break;
        case '\f':
            cn_buf_appends(out, "\\f");
            break;
        case '\n':
            cn_buf_appends(out, "\\n");
            break;
        case '\r':
            cn_buf_appends(out, "\\r");
            break;
        case '\t':
            cn_buf_appends(out, "\\t");
            break;
        case '\v':
            cn_buf_appends(out, "\\v");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                cn_buf_appendf(out, "\\x%02x", c);
            } else {
                cn_buf_putc(out, (char)c);
            }
        }
    }
    cn_buf_putc(out, '"');
}
