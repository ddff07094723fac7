/* buf: growable buffers and the binary writer/reader. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"

void cn_buf_init(struct cn_buf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void cn_buf_free(struct cn_buf *b)
{
    cn_free(b->p);
    cn_buf_init(b);
}

void cn_buf_reserve(struct cn_buf *b, size_t n)
{
    if (b->cap - b->len > n) return; /* keep one byte for the NUL */
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= n)
        cap *= 2;
    b->p = cn_xrealloc(b->p, cap);
    b->cap = cap;
}

void cn_buf_reserve_exact(struct cn_buf *b, size_t n)
{
    if (b->cap - b->len > n) return;
    b->cap = b->len + n + 1;
    b->p = cn_xrealloc(b->p, b->cap);
}

void cn_buf_reset(struct cn_buf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

void cn_buf_append(struct cn_buf *b, const void *p, size_t n)
{
    cn_buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void cn_buf_appends(struct cn_buf *b, const char *z)
{
    cn_buf_append(b, z, strlen(z));
}

void cn_buf_putc(struct cn_buf *b, char c)
{
    cn_buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void cn_buf_vappendf(struct cn_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    cn_buf_reserve(b, 64);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        cn_buf_reserve(b, (size_t)n + 1);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

void cn_buf_appendf(struct cn_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cn_buf_vappendf(b, fmt, ap);
    va_end(ap);
}

void cn_buf_append_u64(struct cn_buf *b, uint64_t v)
{
    char tmp[24];
    cn_buf_append(b, tmp, cn_u64_to_str(tmp, v));
}

size_t cn_u64_to_str(char *out, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = sizeof(tmp) - i;
    memcpy(out, tmp + i, n);
    out[n] = '\0';
    return n;
}

char *cn_buf_steal(struct cn_buf *b, size_t *len)
{
    char *p = b->p;
    if (len) *len = b->len;
    if (p == NULL) p = cn_xstrndup("", 0);
    cn_buf_init(b);
    return p;
}

int cn_buf_read_fd(struct cn_buf *b, int fd, size_t max)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return 0;
        if (b->len + (size_t)n > max) return CN_ERR_TOO_LARGE;
        cn_buf_append(b, chunk, (size_t)n);
    }
}

void cn_buf_put_u8(struct cn_buf *b, uint8_t v)
{
    cn_buf_append(b, &v, 1);
}

void cn_buf_put_u32(struct cn_buf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    cn_buf_append(b, t, 4);
}

void cn_buf_put_u64(struct cn_buf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    cn_buf_append(b, t, 8);
}

void cn_buf_put_i64(struct cn_buf *b, int64_t v)
{
    cn_buf_put_u64(b, (uint64_t)v);
}

void cn_buf_put_uvarint(struct cn_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    cn_buf_append(b, t, n);
}

void cn_buf_put_bytes(struct cn_buf *b, const void *p, size_t n)
{
    cn_buf_put_uvarint(b, n);
    cn_buf_append(b, p, n);
}

static bool need(struct cn_rd *r, size_t n)
{
    if (r->err || r->len - r->off < n) {
        r->err = true;
        return false;
    }
    return true;
}

uint8_t cn_rd_u8(struct cn_rd *r)
{
    if (!need(r, 1)) return 0;
    return r->p[r->off++];
}

uint32_t cn_rd_u32(struct cn_rd *r)
{
    if (!need(r, 4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += 4;
    return v;
}

uint64_t cn_rd_u64(struct cn_rd *r)
{
    if (!need(r, 8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += 8;
    return v;
}

int64_t cn_rd_i64(struct cn_rd *r)
{
    return (int64_t)cn_rd_u64(r);
}

uint64_t cn_rd_uvarint(struct cn_rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (!need(r, 1)) return 0;
        uint8_t c = r->p[r->off++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    r->err = true;
    return 0;
}

struct cn_str cn_rd_bytes(struct cn_rd *r)
{
    uint64_t n = cn_rd_uvarint(r);
    if (r->err || n > r->len - r->off) {
        r->err = true;
        return CN_STR_NULL;
    }
    struct cn_str s = {(const char *)r->p + r->off, (size_t)n};
    r->off += (size_t)n;
    return s;
}

const void *cn_rd_raw(struct cn_rd *r, size_t n)
{
    if (!need(r, n)) return NULL;
    const void *p = r->p + r->off;
    r->off += n;
    return p;
}
