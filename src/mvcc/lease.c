/* mvcc lease: the replicated lease table (etcd's lessor leaseMap and itemSet, minus expiry,
 * which is member-local and lives in lessor.c): ids, granted TTLs, attached keys, revoke. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "mvcc_int.h"

/* Index of the first lease with id >= id. */
static size_t lease_pos(const struct cn_mvcc *m, int64_t id)
{
    size_t lo = 0, hi = m->nleases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->leases[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct lease *cn_mvcc__lease_find(const struct cn_mvcc *m, int64_t id)
{
    size_t i = lease_pos(m, id);
    return i < m->nleases && m->leases[i]->id == id ? m->leases[i] : NULL;
}

void cn_mvcc__lease_add(struct lease *l, struct mkey *key)
{
    if (l->nkeys == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->keys = cn_xrealloc(l->keys, l->cap * sizeof(*l->keys));
    }
    CN_ASSERT(l->nkeys < UINT32_MAX);
    key->slot = (uint32_t)l->nkeys;
    l->keys[l->nkeys++] = cn_mvcc__key_ref(key);
}

static bool attached(const struct lease *l, const struct mkey *key)
{
    return key->slot < l->nkeys && l->keys[key->slot] == key;
}

void cn_mvcc__lease_attach(struct cn_mvcc *m, int64_t id, struct mkey *key)
{
    struct lease *l = cn_mvcc__lease_find(m, id);
    CN_ASSERT(l != NULL); /* put checked it */
    if (!attached(l, key)) cn_mvcc__lease_add(l, key);
}

void cn_mvcc__lease_detach(struct cn_mvcc *m, int64_t id, const struct mkey *key)
{
    struct lease *l = cn_mvcc__lease_find(m, id);
    if (!l || !attached(l, key)) return;
    size_t i = key->slot;
    struct mkey *last = l->keys[--l->nkeys];
    if (i != l->nkeys) {
        l->keys[i] = last;
        last->slot = (uint32_t)i;
    }
    cn_mvcc__key_unref((struct mkey *)key);
}

static int cmp_keyp(const void *a, const void *b)
{
    const struct mkey *x = *(struct mkey *const *)a, *y = *(struct mkey *const *)b;
    return cn_mvcc__cmp(x->data, x->len, y->data, y->len);
}

/* A sorted copy of l's keys (references not taken); NULL when none. */
static struct mkey **sorted_keys(const struct lease *l)
{
    if (!l->nkeys) return NULL;
    struct mkey **v = cn_xmemdup(l->keys, l->nkeys * sizeof(*v));
    qsort(v, l->nkeys, sizeof(*v), cmp_keyp);
    return v;
}

static void lease_free(struct lease *l)
{
    for (size_t i = 0; i < l->nkeys; i++)
        cn_mvcc__key_unref(l->keys[i]);
    cn_free(l->keys);
    cn_free(l);
}

void cn_mvcc__leases_clear(struct lease **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lease_free(v[i]);
}

int cn_mvcc_lease_grant(struct cn_mvcc *m, int64_t id, int64_t ttl_s, int64_t min_ttl_s,
                        int64_t *granted_ttl_s)
{
    /* etcd's lessor.Grant: NoLease → not found, then the TTL bound, then the duplicate */
    if (id <= 0) return CN_MVCC_ERR_LEASE_NOT_FOUND;
    if (ttl_s > CN_MVCC_LEASE_TTL_MAX) return CN_MVCC_ERR_LEASE_TTL_TOO_LARGE;
    size_t i = lease_pos(m, id);
    if (i < m->nleases && m->leases[i]->id == id) return CN_MVCC_ERR_LEASE_EXISTS;
    if (ttl_s < min_ttl_s) ttl_s = min_ttl_s;
    if (m->nleases == m->leases_cap) {
        m->leases_cap = m->leases_cap ? m->leases_cap * 2 : 16;
        m->leases = cn_xrealloc(m->leases, m->leases_cap * sizeof(*m->leases));
    }
    struct lease *l = CN_NEW(struct lease);
    l->id = id;
    l->ttl = ttl_s;
    memmove(m->leases + i + 1, m->leases + i, (m->nleases - i) * sizeof(*m->leases));
    m->leases[i] = l;
    m->nleases++;
    if (granted_ttl_s) *granted_ttl_s = ttl_s;
    return 0;
}

int cn_mvcc_lease_revoke(struct cn_mvcc *m, int64_t id, int64_t *rev,
                         const struct cn_mvcc_event **events, size_t *n)
{
    CN_ASSERT(!m->txn.open);
    size_t i = lease_pos(m, id);
    if (i >= m->nleases || m->leases[i]->id != id) return CN_MVCC_ERR_LEASE_NOT_FOUND;
    struct lease *l = m->leases[i];
    /* etcd's Revoke: delete the attached keys, sorted, in one txn; then drop the lease. Each
     * delete detaches its key from l, so walk a copy. */
    size_t nk = l->nkeys;
    struct mkey **keys = sorted_keys(l);
    for (size_t k = 0; k < nk; k++)
        cn_mvcc__key_ref(keys[k]);
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    for (size_t k = 0; k < nk; k++)
        cn_mvcc__txn_delete_key(t, keys[k]->data, keys[k]->len);
    int64_t r = cn_mvcc_txn_end(t, events, n);
    for (size_t k = 0; k < nk; k++)
        cn_mvcc__key_unref(keys[k]);
    cn_free(keys);
    i = lease_pos(m, id);
    lease_free(m->leases[i]);
    memmove(m->leases + i, m->leases + i + 1, (m->nleases - i - 1) * sizeof(*m->leases));
    m->nleases--;
    if (rev) *rev = r;
    return 0;
}

bool cn_mvcc_lease_exists(const struct cn_mvcc *m, int64_t id)
{
    return cn_mvcc__lease_find(m, id) != NULL;
}

int cn_mvcc_lease_info(const struct cn_mvcc *m, int64_t id, int64_t *ttl_s, size_t *nkeys)
{
    const struct lease *l = cn_mvcc__lease_find(m, id);
    if (!l) return CN_MVCC_ERR_LEASE_NOT_FOUND;
    if (ttl_s) *ttl_s = l->ttl;
    if (nkeys) *nkeys = l->nkeys;
    return 0;
}

int64_t cn_mvcc_lease_pick_id(const struct cn_mvcc *m, int64_t candidate)
{
    int64_t id = candidate > 0 ? candidate : 1;
    size_t i = lease_pos(m, id);
    for (;;) {
        if (i >= m->nleases || m->leases[i]->id != id) return id;
        if (id == INT64_MAX) {
            id = 1;
            i = 0;
        } else {
            id++;
            i++;
        }
    }
}

size_t cn_mvcc_lease_count(const struct cn_mvcc *m)
{
    return m->nleases;
}

bool cn_mvcc_lease_at(const struct cn_mvcc *m, size_t i, int64_t *id, int64_t *ttl_s)
{
    if (i >= m->nleases) return false;
    if (id) *id = m->leases[i]->id;
    if (ttl_s) *ttl_s = m->leases[i]->ttl;
    return true;
}

int cn_mvcc_lease_each_key(const struct cn_mvcc *m, int64_t id,
                           void (*fn)(const char *key, size_t key_len, void *ctx), void *ctx)
{
    const struct lease *l = cn_mvcc__lease_find(m, id);
    if (!l) return CN_MVCC_ERR_LEASE_NOT_FOUND;
    size_t nk = l->nkeys;
    struct mkey **keys = sorted_keys(l);
    for (size_t i = 0; i < nk; i++)
        fn(keys[i]->data, keys[i]->len, ctx);
    cn_free(keys);
    return 0;
}
