/* url: decoding and parsing helpers. */
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

static int unhex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cn_url_decode(struct cn_buf *out, struct cn_str s, bool plus_is_space)
{
    cn_buf_reserve(out, s.len);
    size_t i = 0;
    while (i < s.len) {
        /* Copy the run up to the next escape in one append (values are mostly plain). */
        size_t j = i;
        while (j < s.len && s.p[j] != '%' && !(plus_is_space && s.p[j] == '+'))
            j++;
        if (j > i) cn_buf_append(out, s.p + i, j - i);
        if (j == s.len) break;
        if (s.p[j] == '+') {
            cn_buf_putc(out, ' ');
            i = j + 1;
            continue;
        }
        if (j + 2 >= s.len) return CN_ERR_PARSE;
        int h = unhex(s.p[j + 1]), l = unhex(s.p[j + 2]);
        if (h < 0 || l < 0) return CN_ERR_PARSE;
        cn_buf_putc(out, (char)(h * 16 + l));
        i = j + 3;
    }
    return 0;
}

int cn_url_decoded_len(struct cn_str s, size_t *len)
{
    size_t n = s.len;
    const char *p = s.p, *end = s.p + s.len;
    while (p < end && (p = memchr(p, '%', (size_t)(end - p))) != NULL) {
        if (end - p < 3 || unhex(p[1]) < 0 || unhex(p[2]) < 0) return CN_ERR_PARSE;
        n -= 2;
        p += 3;
    }
    *len = n;
    return 0;
}

void cn_url_decode_to(char *dst, struct cn_str s, bool plus_is_space)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '%') {
            *dst++ = (char)(unhex(s.p[i + 1]) * 16 + unhex(s.p[i + 2]));
            i += 2;
        } else {
            *dst++ = plus_is_space && c == '+' ? ' ' : c;
        }
    }
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

void cn_url_encode_path(struct cn_buf *out, struct cn_str s)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (unreserved(c) || c == '/' || c == ':' || c == '@' || c == '!' || c == '$' || c == '&' ||
            c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' ||
            c == '=') {
            cn_buf_putc(out, (char)c);
        } else {
            char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
            cn_buf_append(out, e, 3);
        }
    }
}

void cn_url_encode_query(struct cn_buf *out, struct cn_str s)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (unreserved(c)) {
            cn_buf_putc(out, (char)c);
        } else if (c == ' ') {
            cn_buf_putc(out, '+');
        } else {
            char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
            cn_buf_append(out, e, 3);
        }
    }
}

int cn_url_parse(const char *z, struct cn_url *u, char *err, size_t err_len)
{
    memset(u, 0, sizeof(*u));
    const char *sep = strstr(z, "://");
    if (sep == NULL || sep == z) {
        snprintf(err, err_len, "URL scheme must be http or https: %s", z);
        return CN_ERR_PARSE;
    }
    size_t slen = (size_t)(sep - z);
    if (!((slen == 4 && strncmp(z, "http", 4) == 0) ||
          (slen == 5 && strncmp(z, "https", 5) == 0))) {
        snprintf(err, err_len, "URL scheme must be http or https: %s", z);
        return CN_ERR_PARSE;
    }
    memcpy(u->scheme, z, slen);
    const char *h = sep + 3;
    const char *slash = strchr(h, '/');
    size_t hlen = slash ? (size_t)(slash - h) : strlen(h);
    if (slash) u->has_path = true; /* Go: any path, even "/", is one */
    const char *colon = NULL;
    const char *host = h;
    size_t host_len;
    if (hlen > 0 && h[0] == '[') {
        const char *rb = memchr(h, ']', hlen);
        if (rb == NULL || rb + 1 >= h + hlen || rb[1] != ':') goto not_host_port;
        host = h + 1;
        host_len = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        for (size_t i = hlen; i > 0; i--)
            if (h[i - 1] == ':') {
                colon = h + i - 1;
                break;
            }
        if (colon == NULL) goto not_host_port;
        host_len = (size_t)(colon - h);
    }
    {
        const char *ps = colon + 1;
        size_t plen = (size_t)(h + hlen - ps);
        if (plen == 0 || plen > 5) goto not_host_port;
        unsigned long port = 0;
        for (size_t i = 0; i < plen; i++) {
            if (ps[i] < '0' || ps[i] > '9') goto not_host_port;
            port = port * 10 + (unsigned long)(ps[i] - '0');
        }
        if (port > 65535 || host_len >= sizeof(u->host)) goto not_host_port;
        memcpy(u->host, host, host_len);
        u->port = (uint16_t)port;
    }
    return 0;
not_host_port:
    snprintf(err, err_len, "URL address does not have the form \"host:port\": %s", z);
    return CN_ERR_PARSE;
}

int cn_split_list(const char *z, int (*fn)(const char *item, void *ctx), void *ctx)
{
    while (*z) {
        const char *e = strchr(z, ',');
        size_t len = e ? (size_t)(e - z) : strlen(z);
        const char *s = z;
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len) {
            char *item = cn_xstrndup(s, len);
            int rc = fn(item, ctx);
            cn_free(item);
            if (rc != 0) return rc;
        }
        if (!e) break;
        z = e + 1;
    }
    return 0;
}
