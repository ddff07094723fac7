/* store tree: values, node allocation and reference counting, the persistent per-directory AVL
 * trees of children (store_int.h, design notes 1-4), path cleaning, and the min-heap of TTL
 * entries. */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "store_int.h"

/* ---- values and nodes --------------------------------------------------------------------- */

struct cn_store_val *cn_store__val_new(const char *p, size_t len)
{
    if (len == 0) return NULL;
    CN_ASSERT(len < UINT32_MAX);
    struct cn_store_val *v = cn_xmalloc(sizeof(*v) + len + 1);
    v->refs = 1;
    v->len = (uint32_t)len;
    memcpy(v->data, p, len);
    v->data[len] = '\0';
    return v;
}

void cn_store__val_unref(struct cn_store_val *v)
{
    if (!v) return;
    CN_ASSERT(v->refs > 0);
    if (--v->refs == 0) cn_free(v);
}

struct node *cn_store__node_new(const char *name, size_t name_len, bool is_dir,
                                struct cn_store_val *val, uint8_t ns)
{
    CN_ASSERT(name_len < UINT32_MAX);
    struct node *n = cn_xmalloc(sizeof(*n) + name_len + 1);
    n->left = n->right = NULL;
    if (is_dir)
        n->kids = NULL;
    else
        n->val = cn_store__val_ref(val);
    n->ttl = NULL;
    n->created_index = n->modified_index = 0;
    n->expire_ns = 0;
    n->refs = 1;
    n->name_len = (uint32_t)name_len;
    n->height = 1;
    n->is_dir = is_dir;
    n->ns = ns;
    if (name_len) memcpy(n->name, name, name_len);
    n->name[name_len] = '\0';
    return n;
}

static void push_free(struct node **work, struct node *c)
{
    if (!c) return;
    CN_ASSERT(c->refs > 0);
    if (--c->refs > 0) return;
    c->next_free = *work;
    *work = c;
}

void cn_store__node_unref(struct node *n)
{
    struct node *work = NULL;
    push_free(&work, n);
    /* iterative: a client can nest directories arbitrarily deep */
    while (work) {
        struct node *x = work;
        work = x->next_free;
        push_free(&work, x->left);
        push_free(&work, x->right);
        if (x->is_dir)
            push_free(&work, x->kids);
        else
            cn_store__val_unref(x->val);
        cn_free(x);
    }
}

struct node *cn_store__own(struct node **link)
{
    struct node *n = *link;
    CN_ASSERT(n != NULL && n->refs > 0);
    if (n->refs == 1) return n;
    size_t size = sizeof(*n) + n->name_len + 1;
    struct node *c = cn_xmalloc(size);
    memcpy(c, n, size);
    c->refs = 1;
    if (c->left) c->left->refs++;
    if (c->right) c->right->refs++;
    if (c->is_dir) {
        if (c->kids) c->kids->refs++;
    } else {
        cn_store__val_ref(c->val);
    }
    n->refs--; /* still > 0: the other holders keep the original */
    *link = c;
    return c;
}

/* ---- AVL ---------------------------------------------------------------------------------- */

int cn_store__name_cmp(const char *a, size_t alen, const struct node *n)
{
    size_t m = alen < n->name_len ? alen : n->name_len;
    int c = m ? memcmp(a, n->name, m) : 0;
    if (c != 0) return c;
    return alen < n->name_len ? -1 : alen > n->name_len ? 1 : 0;
}

static inline int ht(const struct node *n)
{
    return n ? n->height : 0;
}

static inline void fix_height(struct node *n)
{
    int l = ht(n->left), r = ht(n->right);
    n->height = (uint8_t)((l > r ? l : r) + 1);
}

/* Rotations and balance take the link to an owned node and own every node they rewrite. */
static void rot_right(struct node **link)
{
    struct node *n = *link;
    struct node *l = cn_store__own(&n->left);
    n->left = l->right;
    l->right = n;
    fix_height(n);
    fix_height(l);
    *link = l;
}

static void rot_left(struct node **link)
{
    struct node *n = *link;
    struct node *r = cn_store__own(&n->right);
    n->right = r->left;
    r->left = n;
    fix_height(n);
    fix_height(r);
    *link = r;
}

static void balance(struct node **link)
{
    struct node *n = *link;
    fix_height(n);
    int bf = ht(n->left) - ht(n->right);
    if (bf > 1) {
        if (ht(n->left->left) < ht(n->left->right)) {
            cn_store__own(&n->left);
            rot_left(&n->left);
        }
        rot_right(link);
    } else if (bf < -1) {
        if (ht(n->right->right) < ht(n->right->left)) {
            cn_store__own(&n->right);
            rot_right(&n->right);
        }
        rot_left(link);
    }
}

struct node *cn_store__avl_find(struct node *t, const char *name, size_t len)
{
    while (t) {
        int c = cn_store__name_cmp(name, len, t);
        if (c == 0) return t;
        t = c < 0 ? t->left : t->right;
    }
    return NULL;
}

struct node **cn_store__avl_own(struct node **link, const char *name, size_t len)
{
    /* a miss changes nothing: only a present name's path is owned */
    if (!cn_store__avl_find(*link, name, len)) return NULL;
    for (;;) {
        int c = cn_store__name_cmp(name, len, *link);
        struct node *t = cn_store__own(link);
        if (c == 0) return link;
        link = c < 0 ? &t->left : &t->right;
    }
}

void cn_store__avl_insert(struct node **link, struct node *n)
{
    if (!*link) {
        n->left = n->right = NULL;
        n->height = 1;
        *link = n;
        return;
    }
    struct node *t = cn_store__own(link);
    if (cn_store__name_cmp(n->name, n->name_len, t) < 0)
        cn_store__avl_insert(&t->left, n);
    else
        cn_store__avl_insert(&t->right, n);
    balance(link);
}

/* Takes the smallest node out of the non-empty tree at *link. */
static struct node *remove_min(struct node **link)
{
    struct node *t = cn_store__own(link);
    if (!t->left) {
        *link = t->right;
        t->right = NULL;
        return t;
    }
    struct node *m = remove_min(&t->left);
    balance(link);
    return m;
}

/* name is present in the tree at *link. */
static struct node *remove_present(struct node **link, const char *name, size_t len)
{
    int c = cn_store__name_cmp(name, len, *link);
    struct node *t = cn_store__own(link);
    if (c != 0) {
        struct node *found = remove_present(c < 0 ? &t->left : &t->right, name, len);
        balance(link);
        return found;
    }
    struct node *l = t->left, *r = t->right;
    t->left = t->right = NULL;
    t->height = 1;
    if (!r) {
        *link = l;
        return t;
    }
    struct node *m = remove_min(&r);
    m->left = l;
    m->right = r;
    *link = m;
    balance(link);
    return t;
}

struct node *cn_store__avl_remove(struct node **link, const char *name, size_t len)
{
    if (!cn_store__avl_find(*link, name, len)) return NULL;
    return remove_present(link, name, len);
}

struct node *cn_store__avl_first(struct node *t)
{
    if (!t) return NULL;
    while (t->left)
        t = t->left;
    return t;
}

struct node *cn_store__avl_lower_bound(struct node *t, const char *name, size_t len, bool strict)
{
    struct node *best = NULL;
    while (t) {
        int c = cn_store__name_cmp(name, len, t);
        if (c < 0 || (c == 0 && !strict)) {
            best = t;
            t = t->left;
        } else {
            t = t->right;
        }
    }
    return best;
}

struct node *cn_store__next_sibling(const struct node *dir, const struct node *n)
{
    return cn_store__avl_lower_bound(dir->kids, n->name, n->name_len, true);
}

/* Hidden names ('_' first) are contiguous in byte order; '`' is the first byte after '_'. */
static struct node *skip_hidden(const struct node *dir, struct node *c)
{
    if (c && cn_store__node_hidden(c)) c = cn_store__avl_lower_bound(dir->kids, "`", 1, false);
    return c;
}

struct node *cn_store__first_visible(const struct node *dir)
{
    return skip_hidden(dir, cn_store__avl_first(dir->kids));
}

struct node *cn_store__next_visible(const struct node *dir, const struct node *n)
{
    return skip_hidden(dir, cn_store__next_sibling(dir, n));
}

/* ---- walks -------------------------------------------------------------------------------- */

void cn_store__stack_push(struct store_stack *st, const struct node *n)
{
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->v = cn_xrealloc(st->v, st->cap * sizeof(*st->v));
    }
    st->v[st->n++] = n;
}

void cn_store__stack_free(struct store_stack *st)
{
    cn_free(st->v);
    st->v = NULL;
    st->n = st->cap = 0;
}

/* ---- paths -------------------------------------------------------------------------------- */

void cn_store__clean_path(struct cn_buf *out, struct cn_str in)
{
    cn_buf_reset(out);
    cn_buf_reserve(out, in.len + 2);
    char *o = out->p;
    size_t n = 0, i = 0;
    while (i < in.len) {
        while (i < in.len && in.p[i] == '/')
            i++;
        size_t st = i;
        while (i < in.len && in.p[i] != '/')
            i++;
        size_t len = i - st;
        if (len == 0) break;
        if (len == 1 && in.p[st] == '.') continue;
        if (len == 2 && in.p[st] == '.' && in.p[st + 1] == '.') {
            while (n > 0 && o[n - 1] != '/')
                n--;
            if (n > 0) n--; /* the slash before the dropped segment */
            continue;
        }
        o[n++] = '/';
        memcpy(o + n, in.p + st, len);
        n += len;
    }
    if (n == 0) o[n++] = '/';
    o[n] = '\0';
    out->len = n;
}

/* ---- TTL heap ----------------------------------------------------------------------------- */

static bool heap_less(const struct ttl *a, const struct ttl *b)
{
    if (a->expire_ns != b->expire_ns) return a->expire_ns < b->expire_ns;
    if (a->created_index != b->created_index) return a->created_index < b->created_index;
    if (a->ns != b->ns) return a->ns < b->ns;
    return a->depth < b->depth; /* an ancestor first: its subtree goes with it */
}

static void heap_set(struct cn_store *s, size_t i, struct ttl *t)
{
    s->heap[i] = t;
    t->heap_idx = (uint32_t)i;
}

static void sift_up(struct cn_store *s, size_t i)
{
    struct ttl *t = s->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(t, s->heap[p])) break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, t);
}

static void sift_down(struct cn_store *s, size_t i)
{
    struct ttl *t = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n) break;
        if (c + 1 < s->heap_n && heap_less(s->heap[c + 1], s->heap[c])) c++;
        if (!heap_less(s->heap[c], t)) break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, t);
}

static void heap_push(struct cn_store *s, struct ttl *t)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
        CN_ASSERT(s->heap_cap < UINT32_MAX);
        s->heap = cn_xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    heap_set(s, s->heap_n++, t);
    sift_up(s, s->heap_n - 1);
}

static void heap_remove(struct cn_store *s, struct ttl *t)
{
    size_t i = t->heap_idx;
    CN_ASSERT(i < s->heap_n && s->heap[i] == t);
    struct ttl *last = s->heap[--s->heap_n];
    if (last != t) {
        heap_set(s, i, last);
        sift_up(s, i);
        sift_down(s, last->heap_idx);
    }
    cn_free(t);
}

static uint32_t path_depth(const char *path, size_t plen)
{
    uint32_t d = 0;
    for (size_t i = 0; i < plen; i++)
        d += path[i] == '/';
    return d;
}

void cn_store__set_expire(struct cn_store *s, struct node *n, const char *path, size_t plen,
                          int64_t expire_ns)
{
    CN_ASSERT(n->refs == 1);
    n->expire_ns = expire_ns;
    if (expire_ns == 0) {
        if (n->ttl) heap_remove(s, n->ttl);
        n->ttl = NULL;
        return;
    }
    struct ttl *t = n->ttl;
    if (!t) {
        t = cn_xmalloc(sizeof(*t) + plen + 1);
        t->depth = path_depth(path, plen);
        t->ns = n->ns;
        t->path_len = plen;
        memcpy(t->path, path, plen);
        t->path[plen] = '\0';
        t->expire_ns = expire_ns;
        t->created_index = n->created_index;
        n->ttl = t;
        heap_push(s, t);
        return;
    }
    t->expire_ns = expire_ns;
    t->created_index = n->created_index;
    sift_up(s, t->heap_idx);
    sift_down(s, t->heap_idx);
}

void cn_store__heap_clear(struct cn_store *s)
{
    for (size_t i = 0; i < s->heap_n; i++)
        cn_free(s->heap[i]);
    s->heap_n = 0;
}

/* ---- forgetting a subtree ----------------------------------------------------------------- */

static void forget_one(struct cn_store *s, const struct node *x)
{
    /* a shared node's ttl field is stale in its other versions, which never read it */
    if (x->ttl) heap_remove(s, x->ttl);
    if (!x->is_dir) s->nkeys[x->ns]--;
    s->nnodes[x->ns]--;
}

void cn_store__forget(struct cn_store *s, const struct node *n)
{
    forget_one(s, n);
    if (!n->is_dir || !n->kids) return;
    struct store_stack st = {0};
    cn_store__stack_push(&st, n->kids);
    while (st.n) {
        const struct node *x = st.v[--st.n];
        forget_one(s, x);
        if (x->left) cn_store__stack_push(&st, x->left);
        if (x->right) cn_store__stack_push(&st, x->right);
        if (x->is_dir && x->kids) cn_store__stack_push(&st, x->kids);
    }
    cn_store__stack_free(&st);
}
