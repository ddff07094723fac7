/* str: borrowed byte slices. Network bytes are never NUL-terminated and never go to strlen. */
#ifndef CN_COMMON_STR_H
#define CN_COMMON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct cn_str {
    const char *p;
    size_t len;
};

#define CN_STR(lit) ((struct cn_str){(lit), sizeof(lit) - 1})
#define CN_STR_NULL ((struct cn_str){NULL, 0})

static inline struct cn_str cn_str_make(const char *p, size_t len)
{
    struct cn_str s = {p, len};
    return s;
}

static inline struct cn_str cn_str_c(const char *z)
{
    struct cn_str s = {z, z ? strlen(z) : 0};
    return s;
}

static inline bool cn_str_eq(struct cn_str a, struct cn_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool cn_str_eqz(struct cn_str a, const char *z)
{
    return cn_str_eq(a, cn_str_c(z));
}

static inline bool cn_str_has_prefix(struct cn_str a, struct cn_str prefix)
{
    return a.len >= prefix.len && (prefix.len == 0 || memcmp(a.p, prefix.p, prefix.len) == 0);
}

/* Byte-wise comparison, shorter first on a common prefix (Go's string order). */
static inline int cn_str_cmp(struct cn_str a, struct cn_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c != 0) return c;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

#endif
