/* mvcc tree: keys and values, revision histories, and the persistent AVL tree of keys with
 * per-subtree live counts (mvcc_int.h, notes 1-3). */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "mvcc_int.h"

/* ---- keys, values, histories -------------------------------------------------------------- */

struct mkey *cn_mvcc__key_new(const char *p, size_t len)
{
    CN_ASSERT(len < UINT32_MAX);
    struct mkey *k = cn_xmalloc(sizeof(*k) + len + 1);
    k->refs = 1;
    k->len = (uint32_t)len;
    k->slot = UINT32_MAX;
    if (len) memcpy(k->data, p, len);
    k->data[len] = '\0';
    return k;
}

void cn_mvcc__key_unref(struct mkey *k)
{
    if (!k) return;
    CN_ASSERT(k->refs > 0);
    if (--k->refs == 0) cn_free(k);
}

int cn_mvcc__cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c != 0) return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static inline int cmp_node(const char *k, size_t len, const struct node *n)
{
    return cn_mvcc__cmp(k, len, n->key->data, n->key->len);
}

static void hist_unref(struct hist *h)
{
    CN_ASSERT(h->refs > 0);
    if (--h->refs > 0) return;
    for (uint32_t i = 0; i < h->n; i++)
        cn_mvcc__key_unref(h->r[i].val);
    cn_free(h);
}

static struct hist *hist_alloc(uint32_t cap)
{
    struct hist *h = cn_xmalloc(sizeof(*h) + cap * sizeof(struct rec));
    h->refs = 1;
    h->n = 0;
    h->cap = cap;
    return h;
}

/* Makes n->h the node's own with room for one more record (n owned). */
static struct hist *own_hist(struct node *n, uint32_t extra)
{
    struct hist *h = n->h;
    CN_ASSERT(h->n < UINT32_MAX / 2); /* 2^31 kept revisions of one key: ~100 GB of records */
    uint32_t need = h->n + extra;
    if (h->refs == 1) {
        if (need > h->cap) {
            uint32_t cap = h->cap * 2 > need ? h->cap * 2 : need;
            h = cn_xrealloc(h, sizeof(*h) + cap * sizeof(struct rec));
            h->cap = cap;
            n->h = h;
        }
        return h;
    }
    struct hist *c = hist_alloc(need > h->n ? need : h->n);
    c->n = h->n;
    memcpy(c->r, h->r, h->n * sizeof(struct rec));
    for (uint32_t i = 0; i < c->n; i++)
        cn_mvcc__key_ref(c->r[i].val);
    h->refs--; /* still > 0: the other holders keep it */
    n->h = c;
    return c;
}

const struct rec *cn_mvcc__visible(const struct hist *h, int64_t rev)
{
    /* last record with main <= rev */
    uint32_t lo = 0, hi = h->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->r[mid].main <= rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return NULL;
    const struct rec *r = &h->r[lo - 1];
    return r->tomb ? NULL : r;
}

long cn_mvcc__find_rec(const struct hist *h, int64_t main, uint32_t sub)
{
    uint32_t lo = 0, hi = h->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct rec *r = &h->r[mid];
        if (r->main < main || (r->main == main && r->sub < sub))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < h->n && h->r[lo].main == main && h->r[lo].sub == sub) return (long)lo;
    return -1;
}

/* ---- nodes -------------------------------------------------------------------------------- */

void cn_mvcc__node_unref(struct node *n)
{
    /* recursion depth is the AVL height (< 64) */
    if (!n) return;
    CN_ASSERT(n->refs > 0);
    if (--n->refs > 0) return;
    cn_mvcc__node_unref(n->left);
    cn_mvcc__node_unref(n->right);
    cn_mvcc__key_unref(n->key);
    hist_unref(n->h);
    cn_free(n);
}

static inline int ht(const struct node *n)
{
    return n ? n->height : 0;
}

void cn_mvcc__fix(struct node *n)
{
    int l = ht(n->left), r = ht(n->right);
    n->height = (uint8_t)((l > r ? l : r) + 1);
    n->live = cn_mvcc__live(n->left) + cn_mvcc__live(n->right) + (cn_mvcc__node_live(n) ? 1u : 0u);
}

static struct node *own(struct node **link)
{
    struct node *n = *link;
    CN_ASSERT(n != NULL && n->refs > 0);
    if (n->refs == 1) return n;
    struct node *c = cn_xmalloc(sizeof(*c));
    *c = *n;
    c->refs = 1;
    if (c->left) c->left->refs++;
    if (c->right) c->right->refs++;
    cn_mvcc__key_ref(c->key);
    c->h->refs++;
    n->refs--;
    *link = c;
    return c;
}

static void rot_right(struct node **link)
{
    struct node *n = *link;
    struct node *l = own(&n->left);
    n->left = l->right;
    l->right = n;
    cn_mvcc__fix(n);
    cn_mvcc__fix(l);
    *link = l;
}

static void rot_left(struct node **link)
{
    struct node *n = *link;
    struct node *r = own(&n->right);
    n->right = r->left;
    r->left = n;
    cn_mvcc__fix(n);
    cn_mvcc__fix(r);
    *link = r;
}

/* *link is owned. */
static void balance(struct node **link)
{
    struct node *n = *link;
    cn_mvcc__fix(n);
    int bf = ht(n->left) - ht(n->right);
    if (bf > 1) {
        if (ht(n->left->left) < ht(n->left->right)) {
            own(&n->left);
            rot_left(&n->left);
        }
        rot_right(link);
    } else if (bf < -1) {
        if (ht(n->right->right) < ht(n->right->left)) {
            own(&n->right);
            rot_right(&n->right);
        }
        rot_left(link);
    }
}

struct node *cn_mvcc__find(struct node *t, const char *key, size_t len)
{
    while (t) {
        int c = cmp_node(key, len, t);
        if (c == 0) return t;
        t = c < 0 ? t->left : t->right;
    }
    return NULL;
}

static void append_at(struct cn_mvcc *m, struct node **link, const char *k, size_t klen,
                      struct mkey **key, const struct rec *r)
{
    if (!*link) {
        struct node *n = cn_xmalloc(sizeof(*n));
        n->left = n->right = NULL;
        n->key = *key ? cn_mvcc__key_ref(*key) : cn_mvcc__key_new(k, klen);
        n->h = hist_alloc(1);
        n->h->r[0] = *r;
        n->h->n = 1;
        n->refs = 1;
        n->height = 1;
        n->live = r->tomb ? 0 : 1;
        *key = n->key;
        *link = n;
        m->nnodes++;
        m->nrecs++;
        m->data_bytes += klen + (r->val ? r->val->len : 0);
        return;
    }
    int c = cmp_node(k, klen, *link);
    struct node *t = own(link);
    if (c == 0) {
        struct hist *h = own_hist(t, 1);
        h->r[h->n++] = *r;
        m->nrecs++;
        m->data_bytes += r->val ? r->val->len : 0;
        *key = t->key;
        cn_mvcc__fix(t);
        return;
    }
    append_at(m, c < 0 ? &t->left : &t->right, k, klen, key, r);
    balance(link);
}

void cn_mvcc__append(struct cn_mvcc *m, const char *k, size_t klen, struct mkey **key,
                     const struct rec *r)
{
    append_at(m, &m->root, k, klen, key, r);
}

static struct node *remove_min(struct node **link)
{
    struct node *t = own(link);
    if (!t->left) {
        *link = t->right;
        t->right = NULL;
        return t;
    }
    struct node *mn = remove_min(&t->left);
    balance(link);
    return mn;
}

/* key is present in the tree at *link; returns the removed node (owned, unlinked). */
static struct node *remove_present(struct node **link, const char *k, size_t klen)
{
    int c = cmp_node(k, klen, *link);
    struct node *t = own(link);
    if (c != 0) {
        struct node *found = remove_present(c < 0 ? &t->left : &t->right, k, klen);
        balance(link);
        return found;
    }
    struct node *l = t->left, *r = t->right;
    t->left = t->right = NULL;
    if (!r) {
        *link = l;
        return t;
    }
    struct node *mn = remove_min(&r);
    mn->left = l;
    mn->right = r;
    *link = mn;
    balance(link);
    return t;
}

/* How many leading records compaction at c drops from h (note 2 / etcd's keyIndex.compact). */
static uint32_t trim_count(const struct hist *h, int64_t c)
{
    uint32_t lo = 0, hi = h->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->r[mid].main <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return 0;
    /* r[lo-1] is the largest revision <= c: kept, unless it is a tombstone (3.4.23 drops the
     * whole generation, its tombstone included) */
    return h->r[lo - 1].tomb ? lo : lo - 1;
}

static void trim_at(struct cn_mvcc *m, struct node **link, const char *k, size_t klen, int64_t c,
                    bool *emptied)
{
    int cm = cmp_node(k, klen, *link);
    struct node *t = own(link);
    if (cm != 0) {
        /* trimming changes neither heights nor live counts (a key is removed only once its
         * last record, a tombstone, is gone): nothing to fix on the way up */
        trim_at(m, cm < 0 ? &t->left : &t->right, k, klen, c, emptied);
        return;
    }
    struct hist *h = own_hist(t, 0);
    uint32_t drop = trim_count(h, c);
    for (uint32_t i = 0; i < drop; i++) {
        m->data_bytes -= h->r[i].val ? h->r[i].val->len : 0;
        cn_mvcc__key_unref(h->r[i].val);
    }
    m->nrecs -= drop;
    memmove(h->r, h->r + drop, (h->n - drop) * sizeof(struct rec));
    h->n -= drop;
    if (h->n == 0) {
        *emptied = true;
        return;
    }
    if (h->cap > 4 && h->n < h->cap / 4) {
        uint32_t cap = h->n * 2;
        t->h = cn_xrealloc(h, sizeof(*h) + cap * sizeof(struct rec));
        t->h->cap = cap;
    }
}

void cn_mvcc__trim(struct cn_mvcc *m, const char *k, size_t klen, int64_t c)
{
    struct node *n = cn_mvcc__find(m->root, k, klen);
    if (!n || trim_count(n->h, c) == 0) return; /* nothing to drop: nothing to own */
    bool emptied = false;
    trim_at(m, &m->root, k, klen, c, &emptied);
    if (!emptied) return;
    /* an emptied history ends a key whose last record was a tombstone: no lease holds it */
    struct node *x = remove_present(&m->root, k, klen);
    m->data_bytes -= klen;
    cn_mvcc__node_unref(x);
    m->nnodes--;
}

uint64_t cn_mvcc__rank(const struct node *t, const char *key, size_t len)
{
    uint64_t r = 0;
    while (t) {
        int c = cmp_node(key, len, t);
        if (c <= 0) {
            t = t->left;
        } else {
            r += cn_mvcc__live(t->left) + (cn_mvcc__node_live(t) ? 1u : 0u);
            t = t->right;
        }
    }
    return r;
}

static struct node *build(struct node **v, size_t n)
{
    if (n == 0) return NULL;
    size_t mid = n / 2;
    struct node *x = v[mid];
    x->left = build(v, mid);
    x->right = build(v + mid + 1, n - mid - 1);
    cn_mvcc__fix(x);
    return x;
}

struct node *cn_mvcc__build(struct node **v, size_t n)
{
    return build(v, n);
}

/* ---- iteration ---------------------------------------------------------------------------- */

static void push_left(struct iter *it, const struct node *t)
{
    while (t) {
        if (it->live_only && t->live == 0) return;
        CN_ASSERT(it->n < (int)(sizeof(it->st) / sizeof(it->st[0])));
        it->st[it->n++] = t;
        t = t->left;
    }
}

void cn_mvcc__iter_seek(struct iter *it, const struct node *root, const char *key, size_t len,
                        bool live_only)
{
    it->n = 0;
    it->live_only = live_only;
    const struct node *t = root;
    while (t) {
        if (live_only && t->live == 0) break;
        if (cmp_node(key, len, t) <= 0) {
            CN_ASSERT(it->n < (int)(sizeof(it->st) / sizeof(it->st[0])));
            it->st[it->n++] = t;
            t = t->left;
        } else {
            t = t->right;
        }
    }
}

const struct node *cn_mvcc__iter_next(struct iter *it)
{
    while (it->n > 0) {
        const struct node *x = it->st[--it->n];
        push_left(it, x->right);
        if (!it->live_only || cn_mvcc__node_live(x)) return x;
    }
    return NULL;
}
