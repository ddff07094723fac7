/* alloc: abort-on-OOM wrappers around a replaceable allocator. */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cn_alloc_hooks hooks = {malloc, realloc, free};

void cn_alloc_set_hooks(const struct cn_alloc_hooks *h)
{
    if (h == NULL) {
        hooks.malloc_fn = malloc;
        hooks.realloc_fn = realloc;
        hooks.free_fn = free;
    } else {
        hooks = *h;
    }
}

static void oom(size_t n)
{
    fprintf(stderr, "lvl=err mod=alloc msg=\"out of memory\" size=%zu\n", n);
    abort();
}

void *cn_xmalloc(size_t n)
{
    void *p = hooks.malloc_fn(n ? n : 1);
    if (p == NULL) oom(n);
    return p;
}

void *cn_xcalloc(size_t count, size_t size)
{
    if (size != 0 && count > (size_t)-1 / size) oom((size_t)-1);
    size_t n = count * size;
    void *p = cn_xmalloc(n);
    memset(p, 0, n ? n : 1);
    return p;
}

void *cn_xrealloc(void *p, size_t n)
{
    void *q = hooks.realloc_fn(p, n ? n : 1);
    if (q == NULL) oom(n);
    return q;
}

char *cn_xstrdup(const char *s)
{
    return cn_xstrndup(s, strlen(s));
}

char *cn_xstrndup(const char *p, size_t n)
{
    char *s = cn_xmalloc(n + 1);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void *cn_xmemdup(const void *p, size_t n)
{
    void *q = cn_xmalloc(n);
    if (n) memcpy(q, p, n);
    return q;
}

void cn_free(void *p)
{
    if (p != NULL) hooks.free_fn(p);
}
