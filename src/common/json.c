/* json: Go-compatible string escaping and small writer helpers. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char hex[] = "0123456789abcdef";

/* Decodes one UTF-8 sequence at p (n bytes left). Returns its length, or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* 1 for ASCII bytes that Go's encoder escapes (controls, '"', '\\', '<', '>', '&'); bytes >= 0x80
 * take the UTF-8 path. Clean runs are copied in one append. */
static const unsigned char needs_escape[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Non-zero when some byte of w is zero (the classic SWAR test). */
static inline uint64_t has_zero(uint64_t w)
{
    return (w - ONES) & ~w & HIGHS;
}

/* Non-zero when some byte of w needs a look: below 0x20, >= 0x80, or one of " \\ < > &. */
static inline uint64_t needs_look(uint64_t w)
{
    uint64_t low = (w - 0x20 * ONES) & ~w & HIGHS; /* bytes < 0x20 (w's high bits caught below) */
    return low | (w & HIGHS) | has_zero(w ^ (0x22 * ONES)) | has_zero(w ^ (0x5c * ONES)) |
           has_zero(w ^ (0x3c * ONES)) | has_zero(w ^ (0x3e * ONES)) | has_zero(w ^ (0x26 * ONES));
}

void cn_json_str(struct cn_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    cn_buf_reserve(b, len + 2);
    cn_buf_putc(b, '"');
    size_t start = 0, i = 0;
    while (i < len) {
        /* Skip 8 clean bytes at a time: values are mostly plain ASCII. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (needs_look(w)) break;
            i += 8;
        }
        if (i >= len) break;
        unsigned char c = p[i];
        if (c < 0x80) {
            if (!needs_escape[c]) {
                i++;
                continue;
            }
            cn_buf_append(b, s + start, i - start);
            switch (c) {
            case '"':
                cn_buf_append(b, "\\\"", 2);
                break;
            case '\\':
                cn_buf_append(b, "\\\\", 2);
                break;
            case '\n':
                cn_buf_append(b, "\\n", 2);
                break;
            case '\r':
                cn_buf_append(b, "\\r", 2);
                break;
            case '\t':
                cn_buf_append(b, "\\t", 2);
                break;
            default: {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                cn_buf_append(b, e, 6);
            }
            }
            start = ++i;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_len(p + i, len - i, &cp);
        if (n == 0) {
            cn_buf_append(b, s + start, i - start);
            cn_buf_append(b, "\\ufffd", 6);
            start = ++i;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            cn_buf_append(b, s + start, i - start);
            cn_buf_append(b, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
            i += n;
            start = i;
            continue;
        }
        i += n;
    }
    cn_buf_append(b, s + start, len - start);
    cn_buf_putc(b, '"');
}

void cn_json_key(struct cn_buf *b, const char *key)
{
    cn_buf_putc(b, '"');
    cn_buf_appends(b, key);
    cn_buf_append(b, "\":", 2);
}

void cn_json_float(struct cn_buf *b, double v)
{
    if (!isfinite(v)) {
        cn_buf_putc(b, '0');
        return;
    }
    /* Shortest representation that round-trips, like Go's 'g' with precision -1. */
    char tmp[32];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        double back;
        if (sscanf(tmp, "%lf", &back) == 1 && back == v) break;
    }
    /* Go writes exponents only outside [1e-6, 1e21): use plain decimal inside that range. */
    double a = fabs(v);
    if (strchr(tmp, 'e') && a >= 1e-6 && a < 1e21) {
        for (int prec = 0; prec <= 20; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*f", prec, v);
            double back;
            if (sscanf(tmp, "%lf", &back) == 1 && back == v) break;
        }
    }
    cn_buf_appends(b, tmp);
}
