/* buf: owned, growable byte buffers, plus the little-endian/varint writer and the bounded reader
 * that cairn's binary formats (commands, WAL records, snapshots, peer messages) are built on. */
#ifndef CN_COMMON_BUF_H
#define CN_COMMON_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct cn_buf {
    char *p; /* NUL-terminated after every append (not counted in len) */
    size_t len;
    size_t cap;
};

#define CN_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void cn_buf_init(struct cn_buf *b);
void cn_buf_free(struct cn_buf *b);
/* Makes room for n more bytes. */
void cn_buf_reserve(struct cn_buf *b, size_t n);
/* The same, growing (when it must) to exactly n more bytes and the NUL rather than to the next
 * power of two: for bytes whose final size is known and that a long-lived owner keeps (a log
 * entry's payload), so that no slack is kept with them. */
void cn_buf_reserve_exact(struct cn_buf *b, size_t n);
void cn_buf_reset(struct cn_buf *b);
void cn_buf_append(struct cn_buf *b, const void *p, size_t n);
void cn_buf_appends(struct cn_buf *b, const char *z);
void cn_buf_putc(struct cn_buf *b, char c);
void cn_buf_appendf(struct cn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cn_buf_vappendf(struct cn_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void cn_buf_append_u64(struct cn_buf *b, uint64_t v); /* decimal */
/* Writes v in decimal with a NUL into out (at least 21 bytes); returns the length. */
size_t cn_u64_to_str(char *out, uint64_t v);
/* Takes the bytes out of b (caller frees with cn_free); b is left empty. */
char *cn_buf_steal(struct cn_buf *b, size_t *len);

static inline struct cn_str cn_buf_str(const struct cn_buf *b)
{
    return cn_str_make(b->p, b->len);
}

/* Reads fd to its end, appending to b; fails with CN_ERR_TOO_LARGE once more than max bytes
 * would be held (checked before each append, so input never grows b past max). Retries EINTR.
 * Returns 0, CN_ERR_TOO_LARGE or -errno. Does not close fd. */
int cn_buf_read_fd(struct cn_buf *b, int fd, size_t max);

/* Binary encoding, little-endian. */
void cn_buf_put_u8(struct cn_buf *b, uint8_t v);
void cn_buf_put_u32(struct cn_buf *b, uint32_t v);
void cn_buf_put_u64(struct cn_buf *b, uint64_t v);
void cn_buf_put_i64(struct cn_buf *b, int64_t v);
void cn_buf_put_uvarint(struct cn_buf *b, uint64_t v);
/* How many bytes cn_buf_put_uvarint writes for v (1 to 10). */
static inline size_t cn_uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
/* uvarint length then the bytes. */
void cn_buf_put_bytes(struct cn_buf *b, const void *p, size_t n);

/* A bounded reader over borrowed bytes. Any read past the end sets err and returns zeros, so a
 * decoder can read a whole record and check cn_rd_ok() once at the end. */
struct cn_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
    bool err;
};

static inline void cn_rd_init(struct cn_rd *r, const void *p, size_t len)
{
    r->p = (const uint8_t *)p;
    r->len = len;
    r->off = 0;
    r->err = false;
}

static inline bool cn_rd_ok(const struct cn_rd *r)
{
    return !r->err;
}

static inline size_t cn_rd_left(const struct cn_rd *r)
{
    return r->len - r->off;
}

uint8_t cn_rd_u8(struct cn_rd *r);
uint32_t cn_rd_u32(struct cn_rd *r);
uint64_t cn_rd_u64(struct cn_rd *r);
int64_t cn_rd_i64(struct cn_rd *r);
uint64_t cn_rd_uvarint(struct cn_rd *r);
/* A length-prefixed byte string, borrowed from the reader's memory; fails when the length
 * exceeds what is left (so a corrupt length can never cause a big allocation). */
struct cn_str cn_rd_bytes(struct cn_rd *r);
/* n raw bytes, borrowed. */
const void *cn_rd_raw(struct cn_rd *r, size_t n);

#endif
