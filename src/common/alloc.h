/* alloc: cairn's allocation wrappers. Running out of memory aborts (as redis and h2o do), so
 * callers never check for NULL. Hooks let tests count allocations and find leaks. */
#ifndef CN_COMMON_ALLOC_H
#define CN_COMMON_ALLOC_H

#include <stddef.h>

struct cn_alloc_hooks {
    void *(*malloc_fn)(size_t n);
    void *(*realloc_fn)(void *p, size_t n);
    void (*free_fn)(void *p);
};

/* Replaces the allocator (NULL restores libc's). Call before anything is allocated. */
void cn_alloc_set_hooks(const struct cn_alloc_hooks *hooks);

void *cn_xmalloc(size_t n);
void *cn_xcalloc(size_t count, size_t size);
void *cn_xrealloc(void *p, size_t n);
char *cn_xstrdup(const char *s);
/* Copies n bytes of p and adds a NUL. */
char *cn_xstrndup(const char *p, size_t n);
void *cn_xmemdup(const void *p, size_t n);
void cn_free(void *p);

#define CN_NEW(type) ((type *)cn_xcalloc(1, sizeof(type)))

#endif
