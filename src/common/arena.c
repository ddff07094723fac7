#include "arena.h"

#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

#define BLOCK_MIN 4096
#define ALIGN     16

struct cn_arena_block {
    struct cn_arena_block *next;
    size_t size; /* usable bytes in data */
    _Alignas(ALIGN) unsigned char data[];
};

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void *cn_arena_alloc(struct cn_arena *a, size_t n)
{
    n = round_up(n ? n : 1);
    CN_ASSERT(n < SIZE_MAX / 4);
    if (!a->head || a->head->size - a->used < n) {
        size_t size = a->head ? a->head->size * 2 : BLOCK_MIN;
        if (size < n) size = round_up(n);
        if (size > (1u << 20) && n < (1u << 20)) size = 1u << 20;
        struct cn_arena_block *b = cn_xmalloc(sizeof(*b) + size);
        b->size = size;
        b->next = a->head;
        a->head = b;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void *cn_arena_calloc(struct cn_arena *a, size_t count, size_t size)
{
    CN_ASSERT(size == 0 || count <= SIZE_MAX / 4 / size);
    return cn_arena_alloc(a, count * size);
}

void *cn_arena_memdup(struct cn_arena *a, const void *p, size_t n)
{
    void *q = cn_arena_alloc(a, n);
    if (n) memcpy(q, p, n);
    return q;
}

void cn_arena_reset(struct cn_arena *a)
{
    if (!a->head) return;
    /* keep the newest (largest) block unless it is huge; free the rest */
    struct cn_arena_block *b = a->head->next;
    while (b) {
        struct cn_arena_block *next = b->next;
        cn_free(b);
        b = next;
    }
    a->head->next = NULL;
    if (a->head->size > (1u << 20)) {
        cn_free(a->head);
        a->head = NULL;
    }
    a->used = 0;
}

void cn_arena_free(struct cn_arena *a)
{
    cn_arena_reset(a);
    if (a->head) cn_free(a->head);
    a->head = NULL;
    a->used = 0;
}
