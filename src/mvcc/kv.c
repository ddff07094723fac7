/* mvcc kv: the store's lifetime, ranges, write transactions (etcd's storeTxnWrite), the
 * revision log (mvcc_int.h note 4), watch catch-up and compaction. */
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "mvcc_int.h"

const char *cn_mvcc_strerror(int rc)
{
    switch (rc) {
    case CN_MVCC_ERR_COMPACTED:
        return "mvcc: required revision has been compacted";
    case CN_MVCC_ERR_FUTURE_REV:
        return "mvcc: required revision is a future revision";
    case CN_MVCC_ERR_KEY_NOT_FOUND:
        return "etcdserver: key not found";
    case CN_MVCC_ERR_LEASE_NOT_FOUND:
        return "etcdserver: requested lease not found";
    case CN_MVCC_ERR_LEASE_EXISTS:
        return "etcdserver: lease already exists";
    case CN_MVCC_ERR_LEASE_TTL_TOO_LARGE:
        return "etcdserver: too large lease TTL";
    case CN_MVCC_ERR_NOT_PRIMARY:
        return "not a primary lessor";
    case CN_MVCC_ERR_LEASE_EXPIRED:
        return "lease expired";
    default:
        return cn_strerror(rc);
    }
}

struct cn_mvcc *cn_mvcc_new(void)
{
    struct cn_mvcc *m = CN_NEW(struct cn_mvcc);
    m->rev = 1;
    return m;
}

void cn_mvcc_free(struct cn_mvcc *m)
{
    if (!m) return;
    cn_mvcc__node_unref(m->root);
    cn_mvcc__log_clear(m);
    cn_free(m->log);
    cn_mvcc__leases_clear(m->leases, m->nleases);
    cn_free(m->leases);
    cn_free(m->ev);
    cn_free(m->scratch);
    cn_free(m);
}

int64_t cn_mvcc_rev(const struct cn_mvcc *m)
{
    return m->rev;
}

int64_t cn_mvcc_compacted_rev(const struct cn_mvcc *m)
{
    return m->compacted;
}

uint64_t cn_mvcc_key_count(const struct cn_mvcc *m)
{
    return cn_mvcc__live(m->root);
}

void cn_mvcc_stats(const struct cn_mvcc *m, struct cn_mvcc_stats *st)
{
    st->keys_live = cn_mvcc__live(m->root);
    st->keys_kept = m->nnodes;
    st->revisions_kept = m->nrecs;
    st->data_bytes = m->data_bytes;
    st->leases = m->nleases;
}

void cn_mvcc_range_result_free(struct cn_mvcc_range_result *r)
{
    cn_free(r->kvs);
    memset(r, 0, sizeof(*r));
}

/* ---- the revision log --------------------------------------------------------------------- */

static struct logent *log_at(const struct cn_mvcc *m, size_t i)
{
    return &m->log[(m->log_head + i) & (m->log_cap - 1)];
}

static void log_grow(struct cn_mvcc *m)
{
    if (m->log_n < m->log_cap) return;
    size_t cap = m->log_cap ? m->log_cap * 2 : 64;
    struct logent *v = cn_xmalloc(cap * sizeof(*v));
    for (size_t i = 0; i < m->log_n; i++)
        v[i] = *log_at(m, i);
    cn_free(m->log);
    m->log = v;
    m->log_cap = cap;
    m->log_head = 0;
}

/* Gives memory back after a compaction emptied most of the ring. */
static void log_shrink(struct cn_mvcc *m)
{
    if (m->log_cap <= 64 || m->log_n >= m->log_cap / 4) return;
    size_t cap = m->log_cap;
    while (cap > 64 && m->log_n < cap / 4)
        cap /= 2;
    struct logent *v = cn_xmalloc(cap * sizeof(*v));
    for (size_t i = 0; i < m->log_n; i++)
        v[i] = *log_at(m, i);
    cn_free(m->log);
    m->log = v;
    m->log_cap = cap;
    m->log_head = 0;
}

void cn_mvcc__log_push(struct cn_mvcc *m, struct mkey *key, int64_t main, uint32_t sub)
{
    log_grow(m);
    struct logent *e = log_at(m, m->log_n++);
    e->key = cn_mvcc__key_ref(key);
    e->main = main;
    e->sub = sub;
}

static void log_push_front(struct cn_mvcc *m, struct logent e)
{
    log_grow(m);
    m->log_head = (m->log_head + m->log_cap - 1) & (m->log_cap - 1);
    m->log_n++;
    *log_at(m, 0) = e;
}

static struct logent log_pop_front(struct cn_mvcc *m)
{
    struct logent e = *log_at(m, 0);
    m->log_head = (m->log_head + 1) & (m->log_cap - 1);
    m->log_n--;
    return e;
}

void cn_mvcc__log_clear(struct cn_mvcc *m)
{
    while (m->log_n)
        cn_mvcc__key_unref(log_pop_front(m).key);
    m->log_head = 0;
}

/* ---- ranges ------------------------------------------------------------------------------- */

static void kv_fill(struct cn_mvcc_kv *o, const struct mkey *k, const struct rec *r, bool keys_only)
{
    o->key = k->data;
    o->key_len = k->len;
    if (r->val && !keys_only) {
        o->value = r->val->data;
        o->value_len = r->val->len;
    } else {
        o->value = "";
        o->value_len = 0;
    }
    o->create_revision = r->create;
    o->mod_revision = r->main;
    o->version = r->version;
    o->lease = r->lease;
}

static struct cn_mvcc_kv *result_add(struct cn_mvcc_range_result *out)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 8;
        out->kvs = cn_xrealloc(out->kvs, out->cap * sizeof(*out->kvs));
    }
    return &out->kvs[out->n++];
}

static bool filter_ok(const struct cn_mvcc_range_req *q, const struct rec *r)
{
    if (q->min_mod_revision > 0 && r->main < q->min_mod_revision) return false;
    if (q->max_mod_revision > 0 && r->main > q->max_mod_revision) return false;
    if (q->min_create_revision > 0 && r->create < q->min_create_revision) return false;
    if (q->max_create_revision > 0 && r->create > q->max_create_revision) return false;
    return true;
}

static inline bool end_open(struct cn_str end)
{
    return end.len == 1 && end.p[0] == '\0';
}

/* etcd's rangeKeys. cur: the revision reads default to and may not exceed; the head (the state
 * the live counters describe) is cur too, inside or outside a txn. */
static int range_at(struct cn_mvcc *m, int64_t cur, const struct cn_mvcc_range_req *q,
                    struct cn_mvcc_range_result *out)
{
    out->n = 0;
    out->count = 0;
    out->more = false;
    out->rev = cur;
    if (q->key.len == 0) return CN_ERR_INVAL;
    int64_t rev = q->rev;
    if (rev > cur) {
        out->count = -1;
        return CN_MVCC_ERR_FUTURE_REV;
    }
    if (rev <= 0) rev = cur;
    if (rev < m->compacted) {
        out->count = -1;
        out->rev = 0;
        return CN_MVCC_ERR_COMPACTED;
    }
    bool head = rev == cur;
    if (q->range_end.len == 0) {
        const struct node *n = cn_mvcc__find(m->root, q->key.p, q->key.len);
        const struct rec *r = n ? cn_mvcc__visible(n->h, rev) : NULL;
        if (!r) return 0;
        out->count = 1;
        if (!q->count_only && filter_ok(q, r)) kv_fill(result_add(out), n->key, r, q->keys_only);
        return 0;
    }
    bool open = end_open(q->range_end);
    if (!open && cn_mvcc__cmp(q->range_end.p, q->range_end.len, q->key.p, q->key.len) <= 0)
        return 0;
    if (head) {
        uint64_t lo = cn_mvcc__rank(m->root, q->key.p, q->key.len);
        uint64_t hi = open ? cn_mvcc__live(m->root)
                           : cn_mvcc__rank(m->root, q->range_end.p, q->range_end.len);
        out->count = (int64_t)(hi - lo);
        if (q->count_only || hi == lo) return 0;
    }
    struct iter it;
    cn_mvcc__iter_seek(&it, m->root, q->key.p, q->key.len, head);
    const struct node *n;
    int64_t count = 0;
    while ((n = cn_mvcc__iter_next(&it))) {
        if (!open && cn_mvcc__cmp(n->key->data, n->key->len, q->range_end.p, q->range_end.len) >= 0)
            break;
        const struct rec *r = head ? cn_mvcc__last(n) : cn_mvcc__visible(n->h, rev);
        if (!r) continue;
        count++;
        if (q->count_only || out->more || !filter_ok(q, r)) continue;
        if (q->limit > 0 && (int64_t)out->n >= q->limit) {
            out->more = true;
            if (head) break; /* count is known already */
            continue;
        }
        kv_fill(result_add(out), n->key, r, q->keys_only);
    }
    if (!head) out->count = count;
    return 0;
}

int cn_mvcc_range(struct cn_mvcc *m, const struct cn_mvcc_range_req *req,
                  struct cn_mvcc_range_result *out)
{
    CN_ASSERT(!m->txn.open);
    return range_at(m, m->rev, req, out);
}

/* ---- write transactions ------------------------------------------------------------------- */

struct cn_mvcc_txn *cn_mvcc_txn_begin(struct cn_mvcc *m)
{
    CN_ASSERT(!m->txn.open);
    m->txn.m = m;
    m->txn.begin_rev = m->rev;
    m->txn.nchanges = 0;
    m->txn.open = true;
    m->nev = 0;
    if (m->ev_cap > 256) { /* the last txn's events die now: give a big array back */
        cn_free(m->ev);
        m->ev = NULL;
        m->ev_cap = 0;
    }
    return &m->txn;
}

int64_t cn_mvcc_txn_rev(const struct cn_mvcc_txn *t)
{
    return t->begin_rev + (t->nchanges ? 1 : 0);
}

int cn_mvcc_txn_range(struct cn_mvcc_txn *t, const struct cn_mvcc_range_req *req,
                      struct cn_mvcc_range_result *out)
{
    CN_ASSERT(t->open);
    return range_at(t->m, cn_mvcc_txn_rev(t), req, out);
}

static struct cn_mvcc_event *event_add(struct cn_mvcc *m)
{
    if (m->nev == m->ev_cap) {
        m->ev_cap = m->ev_cap ? m->ev_cap * 2 : 16;
        m->ev = cn_xrealloc(m->ev, m->ev_cap * sizeof(*m->ev));
    }
    struct cn_mvcc_event *e = &m->ev[m->nev++];
    memset(e, 0, sizeof(*e));
    return e;
}

int cn_mvcc_txn_put_check(struct cn_mvcc *m, struct cn_mvcc_txn *t, struct cn_str key,
                          size_t value_len, int64_t lease, unsigned flags)
{
    if (t) m = t->m;
    if (key.len == 0) return CN_ERR_INVAL;
    if (key.len > CN_MVCC_KEY_MAX || value_len > CN_MVCC_VALUE_MAX) return CN_ERR_TOO_LARGE;
    if (t && t->nchanges >= CN_MVCC_TXN_MAX_CHANGES) return CN_ERR_TOO_LARGE;
    if (flags & (CN_MVCC_PUT_IGNORE_VALUE | CN_MVCC_PUT_IGNORE_LEASE)) {
        const struct node *n = cn_mvcc__find(m->root, key.p, key.len);
        if (!n || !cn_mvcc__node_live(n)) return CN_MVCC_ERR_KEY_NOT_FOUND;
    }
    if (!(flags & CN_MVCC_PUT_IGNORE_LEASE) && lease != 0 && !cn_mvcc__lease_find(m, lease))
        return CN_MVCC_ERR_LEASE_NOT_FOUND;
    return 0;
}

int cn_mvcc_txn_put(struct cn_mvcc_txn *t, struct cn_str key, struct cn_str value, int64_t lease,
                    unsigned flags, struct cn_mvcc_kv *prev, bool *has_prev)
{
    CN_ASSERT(t->open);
    struct cn_mvcc *m = t->m;
    int rc = cn_mvcc_txn_put_check(m, t, key, value.len, lease, flags);
    if (has_prev) *has_prev = false;
    if (rc != 0) return rc;
    const struct node *n = cn_mvcc__find(m->root, key.p, key.len);
    struct rec cur = {0}, before = {0};
    bool has_cur = n && cn_mvcc__node_live(n), has_before = false;
    if (has_cur) cur = *cn_mvcc__last(n);
    if (n) {
        /* the event's prev_kv is the key as of the revision before the txn, as a watcher
         * reading at mod_revision - 1 gets it */
        const struct rec *b = cn_mvcc__visible(n->h, t->begin_rev);
        if (b) {
            before = *b;
            has_before = true;
        }
    }
    if (prev && has_cur) {
        kv_fill(prev, n->key, &cur, false);
        if (has_prev) *has_prev = true;
    }
    struct rec r = {0};
    r.main = t->begin_rev + 1;
    r.sub = t->nchanges++;
    r.create = has_cur ? cur.create : r.main;
    r.version = has_cur ? cur.version + 1 : 1;
    r.lease = (flags & CN_MVCC_PUT_IGNORE_LEASE) ? cur.lease : lease;
    if (flags & CN_MVCC_PUT_IGNORE_VALUE)
        r.val = cn_mvcc__key_ref(cur.val);
    else
        r.val = value.len ? cn_mvcc__key_new(value.p, value.len) : NULL;
    struct mkey *mk = n ? n->key : NULL;
    cn_mvcc__append(m, key.p, key.len, &mk, &r);
    if (cur.lease != r.lease) {
        if (cur.lease) cn_mvcc__lease_detach(m, cur.lease, mk);
        if (r.lease) cn_mvcc__lease_attach(m, r.lease, mk);
    }
    cn_mvcc__log_push(m, mk, r.main, r.sub);
    struct cn_mvcc_event *e = event_add(m);
    e->type = CN_MVCC_PUT;
    kv_fill(&e->kv, mk, &r, false);
    if (has_before) {
        e->has_prev = true;
        kv_fill(&e->prev, mk, &before, false);
    }
    return 0;
}

/* Tombstones a key alive at the head (n). */
static void delete_node(struct cn_mvcc_txn *t, const struct node *n,
                        struct cn_mvcc_range_result *prev)
{
    struct cn_mvcc *m = t->m;
    struct rec cur = *cn_mvcc__last(n), before = {0};
    const struct rec *b = cn_mvcc__visible(n->h, t->begin_rev);
    if (b) before = *b;
    struct mkey *mk = n->key;
    if (prev) kv_fill(result_add(prev), mk, &cur, false);
    struct rec r = {0};
    r.main = t->begin_rev + 1;
    r.sub = t->nchanges++;
    r.tomb = 1;
    cn_mvcc__append(m, mk->data, mk->len, &mk, &r);
    if (cur.lease) cn_mvcc__lease_detach(m, cur.lease, mk);
    cn_mvcc__log_push(m, mk, r.main, r.sub);
    struct cn_mvcc_event *e = event_add(m);
    e->type = CN_MVCC_DELETE;
    e->kv.key = mk->data;
    e->kv.key_len = mk->len;
    e->kv.value = "";
    e->kv.mod_revision = r.main;
    if (b) {
        e->has_prev = true;
        kv_fill(&e->prev, mk, &before, false);
    }
}

void cn_mvcc__txn_delete_key(struct cn_mvcc_txn *t, const char *k, size_t klen)
{
    const struct node *n = cn_mvcc__find(t->m->root, k, klen);
    if (n && cn_mvcc__node_live(n)) delete_node(t, n, NULL);
}

int cn_mvcc_txn_delete_range(struct cn_mvcc_txn *t, struct cn_str key, struct cn_str range_end,
                             struct cn_mvcc_range_result *prev, int64_t *deleted)
{
    CN_ASSERT(t->open);
    struct cn_mvcc *m = t->m;
    if (deleted) *deleted = 0;
    if (prev) {
        prev->n = 0;
        prev->count = 0;
        prev->more = false;
        prev->rev = cn_mvcc_txn_rev(t);
    }
    if (key.len == 0) return CN_ERR_INVAL;
    size_t nv = 0;
    if (range_end.len == 0) {
        const struct node *n = cn_mvcc__find(m->root, key.p, key.len);
        if (!n || !cn_mvcc__node_live(n)) return 0;
        if (t->nchanges >= CN_MVCC_TXN_MAX_CHANGES) return CN_ERR_TOO_LARGE;
        delete_node(t, n, prev);
        nv = 1;
    } else {
        bool open = end_open(range_end);
        if (!open && cn_mvcc__cmp(range_end.p, range_end.len, key.p, key.len) <= 0) return 0;
        uint64_t lo = cn_mvcc__rank(m->root, key.p, key.len);
        uint64_t hi =
            open ? cn_mvcc__live(m->root) : cn_mvcc__rank(m->root, range_end.p, range_end.len);
        nv = (size_t)(hi - lo);
        if (nv == 0) return 0;
        if (nv > CN_MVCC_TXN_MAX_CHANGES - t->nchanges) return CN_ERR_TOO_LARGE;
        /* collect first: tombstoning rewrites the tree under an iterator */
        if (nv > m->scratch_cap) {
            m->scratch_cap = nv;
            m->scratch = cn_xrealloc(m->scratch, nv * sizeof(*m->scratch));
        }
        struct iter it;
        cn_mvcc__iter_seek(&it, m->root, key.p, key.len, true);
        for (size_t i = 0; i < nv; i++) {
            const struct node *n = cn_mvcc__iter_next(&it);
            CN_ASSERT(n != NULL);
            m->scratch[i] = n->key; /* the tree keeps the key alive */
        }
        for (size_t i = 0; i < nv; i++) {
            const struct node *n = cn_mvcc__find(m->root, m->scratch[i]->data, m->scratch[i]->len);
            delete_node(t, n, prev);
        }
        if (m->scratch_cap > 256) {
            cn_free(m->scratch);
            m->scratch = NULL;
            m->scratch_cap = 0;
        }
    }
    if (prev) {
        prev->count = (int64_t)nv;
        prev->rev = cn_mvcc_txn_rev(t);
    }
    if (deleted) *deleted = (int64_t)nv;
    return 0;
}

int64_t cn_mvcc_txn_end(struct cn_mvcc_txn *t, const struct cn_mvcc_event **events, size_t *n)
{
    CN_ASSERT(t->open);
    struct cn_mvcc *m = t->m;
    if (t->nchanges) m->rev++;
    t->open = false;
    if (events) *events = m->nev ? m->ev : NULL;
    if (n) *n = m->nev;
    return m->rev;
}

/* ---- watch catch-up ----------------------------------------------------------------------- */

int64_t cn_mvcc_changes(struct cn_mvcc *m, int64_t start_rev, int64_t end_rev, size_t max,
                        struct cn_mvcc_event **out, size_t *n, size_t *cap)
{
    CN_ASSERT(!m->txn.open);
    if (start_rev < 1) start_rev = 1;
    if (start_rev < m->compacted) return CN_MVCC_ERR_COMPACTED;
    if (end_rev <= 0 || end_rev > m->rev) end_rev = m->rev;
    int64_t last = start_rev - 1;
    size_t lo = 0, hi = m->log_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (log_at(m, mid)->main < start_rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t added = 0;
    for (size_t i = lo; i < m->log_n; i++) {
        const struct logent *le = log_at(m, i);
        if (le->main > end_rev) break;
        if (max && added >= max && le->main != last) break;
        const struct node *nd = cn_mvcc__find(m->root, le->key->data, le->key->len);
        CN_ASSERT(nd != NULL);
        long idx = cn_mvcc__find_rec(nd->h, le->main, le->sub);
        CN_ASSERT(idx >= 0);
        const struct rec *r = &nd->h->r[idx];
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *out = cn_xrealloc(*out, *cap * sizeof(**out));
        }
        struct cn_mvcc_event *e = &(*out)[(*n)++];
        memset(e, 0, sizeof(*e));
        if (r->tomb) {
            e->type = CN_MVCC_DELETE;
            e->kv.key = nd->key->data;
            e->kv.key_len = nd->key->len;
            e->kv.value = "";
            e->kv.mod_revision = r->main;
        } else {
            e->type = CN_MVCC_PUT;
            kv_fill(&e->kv, nd->key, r, false);
        }
        long j = idx - 1;
        while (j >= 0 && nd->h->r[j].main == r->main)
            j--;
        if (j >= 0 && !nd->h->r[j].tomb) {
            e->has_prev = true;
            kv_fill(&e->prev, nd->key, &nd->h->r[j], false);
        }
        added++;
        last = le->main;
    }
    return last;
}

/* ---- compaction --------------------------------------------------------------------------- */

int cn_mvcc_compact(struct cn_mvcc *m, int64_t rev)
{
    CN_ASSERT(!m->txn.open);
    if (rev <= m->compacted) return CN_MVCC_ERR_COMPACTED;
    if (rev > m->rev) return CN_MVCC_ERR_FUTURE_REV;
    while (m->log_n && log_at(m, 0)->main < rev) {
        struct logent e = log_pop_front(m);
        cn_mvcc__trim(m, e.key->data, e.key->len, rev);
        cn_mvcc__key_unref(e.key);
    }
    /* the records at rev itself: keep in the log what compaction kept, so a watch from the
     * compacted revision still reads them */
    size_t k = 0;
    while (k < m->log_n && log_at(m, k)->main == rev)
        k++;
    if (k) {
        struct logent *tmp = cn_xmalloc(k * sizeof(*tmp));
        for (size_t i = 0; i < k; i++) {
            tmp[i] = log_pop_front(m);
            cn_mvcc__trim(m, tmp[i].key->data, tmp[i].key->len, rev);
        }
        for (size_t i = k; i-- > 0;) {
            const struct node *nd = cn_mvcc__find(m->root, tmp[i].key->data, tmp[i].key->len);
            if (nd && cn_mvcc__find_rec(nd->h, tmp[i].main, tmp[i].sub) >= 0)
                log_push_front(m, tmp[i]);
            else
                cn_mvcc__key_unref(tmp[i].key);
        }
        cn_free(tmp);
    }
    m->compacted = rev;
    log_shrink(m);
    return 0;
}
