/* mvcc lessor: the member-local half of etcd's lessor: when each lease expires on this member
 * (never, unless it is the primary, i.e. the leader), renewals, the expired batch the leader
 * proposes for revocation, promote/demote. Pure: time comes in as an argument (ms).
 *
 * Each tracked lease has an expiry and a notify time; a min-heap orders leases by (notify, id).
 * notify == expiry, except after a lease was reported expired: it is then re-armed to be
 * reported again after the retry interval, in case its revoke got lost (etcd's
 * expiredLeaseRetryInterval). */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "mvcc.h"

#define FOREVER        INT64_MAX
#define REVOKE_RATE    1000 /* etcd's leaseRevokeRate, leases per second */
#define TARGET_PER_SEC ((3 * REVOKE_RATE) / 4)

struct lent {
    int64_t id;
    int64_t ttl_s;
    int64_t expiry_ms;
    int64_t notify_ms;
    size_t heap_idx;
};

struct cn_mvcc_lessor {
    struct lent **v; /* sorted by id */
    size_t n, cap;
    struct lent **heap;
    bool primary;
};

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

static int64_t ttl_ms(int64_t ttl_s)
{
    return ttl_s > INT64_MAX / 1000 ? INT64_MAX : ttl_s * 1000;
}

/* ---- heap ---------------------------------------------------------------------------------- */

static bool less(const struct lent *a, const struct lent *b)
{
    if (a->notify_ms != b->notify_ms) return a->notify_ms < b->notify_ms;
    return a->id < b->id;
}

static void hset(struct cn_mvcc_lessor *l, size_t i, struct lent *e)
{
    l->heap[i] = e;
    e->heap_idx = i;
}

static void sift_up(struct cn_mvcc_lessor *l, size_t i)
{
    struct lent *e = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(e, l->heap[p])) break;
        hset(l, i, l->heap[p]);
        i = p;
    }
    hset(l, i, e);
}

static void sift_down(struct cn_mvcc_lessor *l, size_t i)
{
    struct lent *e = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n) break;
        if (c + 1 < l->n && less(l->heap[c + 1], l->heap[c])) c++;
        if (!less(l->heap[c], e)) break;
        hset(l, i, l->heap[c]);
        i = c;
    }
    hset(l, i, e);
}

static void hfix(struct cn_mvcc_lessor *l, struct lent *e)
{
    sift_up(l, e->heap_idx);
    sift_down(l, e->heap_idx);
}

static void heap_rebuild(struct cn_mvcc_lessor *l)
{
    for (size_t i = 0; i < l->n; i++)
        hset(l, i, l->v[i]);
    for (size_t i = l->n / 2; i-- > 0;)
        sift_down(l, i);
}

/* ---- table --------------------------------------------------------------------------------- */

static size_t pos(const struct cn_mvcc_lessor *l, int64_t id)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct lent *find(const struct cn_mvcc_lessor *l, int64_t id)
{
    size_t i = pos(l, id);
    return i < l->n && l->v[i]->id == id ? l->v[i] : NULL;
}

struct cn_mvcc_lessor *cn_mvcc_lessor_new(void)
{
    return CN_NEW(struct cn_mvcc_lessor);
}

void cn_mvcc_lessor_free(struct cn_mvcc_lessor *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++)
        cn_free(l->v[i]);
    cn_free(l->v);
    cn_free(l->heap);
    cn_free(l);
}

static void arm(const struct cn_mvcc_lessor *l, struct lent *e, int64_t now_ms, int64_t extend_ms)
{
    e->expiry_ms = l->primary ? sat_add(sat_add(now_ms, extend_ms), ttl_ms(e->ttl_s)) : FOREVER;
    e->notify_ms = e->expiry_ms;
}

void cn_mvcc_lessor_grant(struct cn_mvcc_lessor *l, int64_t id, int64_t ttl_s, int64_t now_ms)
{
    struct lent *e = find(l, id);
    if (e) {
        e->ttl_s = ttl_s;
        arm(l, e, now_ms, 0);
        hfix(l, e);
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = cn_xrealloc(l->v, l->cap * sizeof(*l->v));
        l->heap = cn_xrealloc(l->heap, l->cap * sizeof(*l->heap));
    }
    e = CN_NEW(struct lent);
    e->id = id;
    e->ttl_s = ttl_s;
    arm(l, e, now_ms, 0);
    size_t i = pos(l, id);
    memmove(l->v + i + 1, l->v + i, (l->n - i) * sizeof(*l->v));
    l->v[i] = e;
    hset(l, l->n, e);
    l->n++;
    sift_up(l, e->heap_idx);
}

void cn_mvcc_lessor_revoke(struct cn_mvcc_lessor *l, int64_t id)
{
    size_t i = pos(l, id);
    if (i >= l->n || l->v[i]->id != id) return;
    struct lent *e = l->v[i];
    memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof(*l->v));
    size_t h = e->heap_idx;
    struct lent *last = l->heap[l->n - 1];
    l->n--;
    if (last != e) {
        hset(l, h, last);
        hfix(l, last);
    }
    cn_free(e);
}

void cn_mvcc_lessor_sync(struct cn_mvcc_lessor *l, const struct cn_mvcc *m, int64_t now_ms)
{
    size_t nm = cn_mvcc_lease_count(m);
    struct lent **nv = cn_xmalloc((nm ? nm : 1) * sizeof(*nv));
    size_t j = 0;
    for (size_t i = 0; i < nm; i++) {
        int64_t id = 0, ttl = 0;
        cn_mvcc_lease_at(m, i, &id, &ttl);
        while (j < l->n && l->v[j]->id < id)
            cn_free(l->v[j++]);
        struct lent *e;
        if (j < l->n && l->v[j]->id == id) {
            e = l->v[j++];
            e->ttl_s = ttl;
        } else {
            e = CN_NEW(struct lent);
            e->id = id;
            e->ttl_s = ttl;
            arm(l, e, now_ms, 0);
        }
        nv[i] = e;
    }
    while (j < l->n)
        cn_free(l->v[j++]);
    cn_free(l->v);
    cn_free(l->heap);
    l->v = nv;
    l->n = nm;
    l->cap = nm ? nm : 1;
    l->heap = cn_xmalloc(l->cap * sizeof(*l->heap));
    heap_rebuild(l);
}

int cn_mvcc_lessor_renew(struct cn_mvcc_lessor *l, int64_t id, int64_t now_ms, int64_t *ttl_s)
{
    if (!l->primary) return CN_MVCC_ERR_NOT_PRIMARY;
    struct lent *e = find(l, id);
    if (!e) return CN_MVCC_ERR_LEASE_NOT_FOUND;
    if (e->expiry_ms <= now_ms) return CN_MVCC_ERR_LEASE_EXPIRED;
    arm(l, e, now_ms, 0);
    hfix(l, e);
    if (ttl_s) *ttl_s = e->ttl_s;
    return 0;
}

int cn_mvcc_lessor_remaining_ms(const struct cn_mvcc_lessor *l, int64_t id, int64_t now_ms,
                                int64_t *remaining_ms)
{
    const struct lent *e = find(l, id);
    if (!e) return CN_MVCC_ERR_LEASE_NOT_FOUND;
    *remaining_ms = e->expiry_ms == FOREVER ? FOREVER : sat_add(e->expiry_ms, -now_ms);
    return 0;
}

size_t cn_mvcc_lessor_expired(struct cn_mvcc_lessor *l, int64_t now_ms, int64_t retry_ms,
                              int64_t *ids, size_t max)
{
    if (!l->primary) return 0;
    size_t k = 0;
    while (k < max && l->n > 0 && l->heap[0]->notify_ms <= now_ms) {
        struct lent *e = l->heap[0];
        if (e->expiry_ms <= now_ms) {
            ids[k++] = e->id;
            e->notify_ms = sat_add(now_ms, retry_ms > 0 ? retry_ms : 1);
        } else {
            e->notify_ms = e->expiry_ms;
        }
        sift_down(l, 0);
    }
    return k;
}

int64_t cn_mvcc_lessor_next_expiry_ms(const struct cn_mvcc_lessor *l)
{
    return l->n ? l->heap[0]->notify_ms : FOREVER;
}

static int cmp_expiry(const void *a, const void *b)
{
    const struct lent *x = *(struct lent *const *)a, *y = *(struct lent *const *)b;
    if (x->expiry_ms != y->expiry_ms) return x->expiry_ms < y->expiry_ms ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

void cn_mvcc_lessor_promote(struct cn_mvcc_lessor *l, int64_t now_ms, int64_t extend_ms)
{
    l->primary = true;
    for (size_t i = 0; i < l->n; i++)
        arm(l, l->v[i], now_ms, extend_ms);
    if (l->n >= REVOKE_RATE) {
        /* etcd's Promote: spread piled-up expiries so that at most 3/4 of the revoke rate
         * fall in any second; here in ms, ties broken by id so it is deterministic */
        struct lent **s = cn_xmemdup(l->v, l->n * sizeof(*s));
        qsort(s, l->n, sizeof(*s), cmp_expiry);
        int64_t base = s[0]->expiry_ms - now_ms, next = base + 1000;
        int64_t expires = 0;
        for (size_t i = 0; i < l->n; i++) {
            int64_t remaining = s[i]->expiry_ms - now_ms;
            if (remaining > next) {
                base = remaining;
                next = base + 1000;
                expires = 1;
                continue;
            }
            expires++;
            if (expires <= TARGET_PER_SEC) continue;
            double rate_delay = 1000.0 * ((double)expires / (double)TARGET_PER_SEC);
            rate_delay -= (double)(remaining - base);
            int64_t delay = (int64_t)rate_delay;
            next = base + delay;
            arm(l, s[i], now_ms, sat_add(delay, extend_ms));
        }
        cn_free(s);
    }
    heap_rebuild(l);
}

void cn_mvcc_lessor_demote(struct cn_mvcc_lessor *l)
{
    l->primary = false;
    for (size_t i = 0; i < l->n; i++)
        l->v[i]->expiry_ms = l->v[i]->notify_ms = FOREVER;
    heap_rebuild(l);
}

bool cn_mvcc_lessor_is_primary(const struct cn_mvcc_lessor *l)
{
    return l->primary;
}

size_t cn_mvcc_lessor_count(const struct cn_mvcc_lessor *l)
{
    return l->n;
}
