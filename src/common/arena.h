/* arena: a bump allocator for short-lived graphs of small objects (a response's messages), all
 * released at once. Allocations are 16-byte aligned and zeroed; running out of memory aborts as
 * every cairn allocation does. Not thread-safe: one owner. */
#ifndef CN_COMMON_ARENA_H
#define CN_COMMON_ARENA_H

#include <stddef.h>

struct cn_arena_block;

struct cn_arena {
    struct cn_arena_block *head; /* the block being filled; older ones follow */
    size_t used;                 /* bytes used in head */
};

#define CN_ARENA_INIT                                                                              \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/* n zeroed bytes that live until the next cn_arena_reset or cn_arena_free. */
void *cn_arena_alloc(struct cn_arena *a, size_t n);
/* count objects of size bytes (overflow aborts). */
void *cn_arena_calloc(struct cn_arena *a, size_t count, size_t size);
/* A copy of n bytes. */
void *cn_arena_memdup(struct cn_arena *a, const void *p, size_t n);
/* Frees everything allocated; keeps the newest block (up to 1 MiB) for the next round. */
void cn_arena_reset(struct cn_arena *a);
void cn_arena_free(struct cn_arena *a);

#define CN_ARENA_NEW(a, type) ((type *)cn_arena_alloc((a), sizeof(type)))

#endif
