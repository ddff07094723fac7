/* memcount: an LD_PRELOAD shim for bench/put_cost.py. It counts what goes through memcpy and
 * memmove calls (the variable-sized copies: the compiler inlines fixed small ones, which are not
 * seen) and, at exit, writes to $CN_MEMCOUNT_OUT one line "bytes calls big_calls big_bytes"
 * (big: 200 bytes or more) and one line of 128 counters of the big calls' sizes in 16-byte
 * buckets from 200 (the last one: 2232 and up). Built by put_cost.py with the system's cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define BIG     200u
#define BUCKETS 128u

static _Atomic unsigned long long bytes, calls, big_calls, big_bytes, hist[BUCKETS];
static void *(*real_memcpy)(void *, const void *, size_t);
static void *(*real_memmove)(void *, const void *, size_t);

static void count(size_t n)
{
    atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    if (n < BIG) return;
    atomic_fetch_add_explicit(&big_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&big_bytes, n, memory_order_relaxed);
    size_t b = (n - BIG) / 16;
    atomic_fetch_add_explicit(&hist[b < BUCKETS ? b : BUCKETS - 1], 1, memory_order_relaxed);
}

/* Until dlsym has answered (it may copy memory itself). */
static void *slow_move(void *d, const void *s, size_t n)
{
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp < sp)
        for (size_t i = 0; i < n; i++)
            dp[i] = sp[i];
    else
        for (size_t i = n; i > 0; i--)
            dp[i - 1] = sp[i - 1];
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    count(n);
    if (real_memcpy == NULL)
        real_memcpy = (void *(*)(void *, const void *, size_t))dlsym(RTLD_NEXT, "memcpy");
    return real_memcpy ? real_memcpy(d, s, n) : slow_move(d, s, n);
}

void *memmove(void *d, const void *s, size_t n)
{
    count(n);
    if (real_memmove == NULL)
        real_memmove = (void *(*)(void *, const void *, size_t))dlsym(RTLD_NEXT, "memmove");
    return real_memmove ? real_memmove(d, s, n) : slow_move(d, s, n);
}

__attribute__((destructor)) static void dump(void)
{
    const char *path = getenv("CN_MEMCOUNT_OUT");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f == NULL) return;
    fprintf(f, "%llu %llu %llu %llu\n", (unsigned long long)bytes, (unsigned long long)calls,
            (unsigned long long)big_calls, (unsigned long long)big_bytes);
    for (size_t i = 0; i < BUCKETS; i++)
        fprintf(f, "%llu%c", (unsigned long long)hist[i], i + 1 < BUCKETS ? ' ' : '\n');
    fclose(f);
}
