/* store tree: node allocation, the per-directory AVL trees of children, path cleaning, and the
 * min-heap of nodes with a TTL. */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "store_int.h"

struct node *cn_store__node_new(const char *name, size_t name_len, bool is_dir, const char *value,
                                size_t value_len, uint8_t ns)
{
    CN_ASSERT(name_len < UINT32_MAX && value_len < UINT32_MAX);
    size_t extra = name_len + 1 + (is_dir ? 0 : value_len + 1);
    struct node *n = cn_xmalloc(sizeof(*n) + extra);
    n->parent = n->left = n->right = NULL;
    n->created_index = n->modified_index = 0;
    n->expire_ns = 0;
    n->heap_idx = STORE_NO_HEAP;
    n->name_len = (uint32_t)name_len;
    n->depth = 0;
    n->height = 1;
    n->is_dir = is_dir;
    n->ns = ns;
    if (name_len) memcpy(n->data, name, name_len);
    n->data[name_len] = '\0';
    if (is_dir) {
        n->kids = NULL;
    } else {
        n->value_len = n->value_cap = (uint32_t)value_len;
        char *v = cn_store__node_value(n);
        if (value_len) memcpy(v, value, value_len);
        v[value_len] = '\0';
    }
    return n;
}

/* ---- AVL ---------------------------------------------------------------------------------- */

int cn_store__name_cmp(const char *a, size_t alen, const struct node *n)
{
    size_t m = alen < n->name_len ? alen : n->name_len;
    int c = m ? memcmp(a, n->data, m) : 0;
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

static struct node *rot_right(struct node *n)
{
    struct node *l = n->left;
    n->left = l->right;
    l->right = n;
    fix_height(n);
    fix_height(l);
    return l;
}

static struct node *rot_left(struct node *n)
{
    struct node *r = n->right;
    n->right = r->left;
    r->left = n;
    fix_height(n);
    fix_height(r);
    return r;
}

static struct node *balance(struct node *n)
{
    fix_height(n);
    int bf = ht(n->left) - ht(n->right);
    if (bf > 1) {
        if (ht(n->left->left) < ht(n->left->right)) n->left = rot_left(n->left);
        return rot_right(n);
    }
    if (bf < -1) {
        if (ht(n->right->right) < ht(n->right->left)) n->right = rot_right(n->right);
        return rot_left(n);
    }
    return n;
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

/* n must not be present. */
struct node *cn_store__avl_insert(struct node *t, struct node *n)
{
    if (!t) {
        n->left = n->right = NULL;
        n->height = 1;
        return n;
    }
    if (cn_store__name_cmp(cn_store__node_name(n), n->name_len, t) < 0)
        t->left = cn_store__avl_insert(t->left, n);
    else
        t->right = cn_store__avl_insert(t->right, n);
    return balance(t);
}

static struct node *remove_min(struct node *t, struct node **min)
{
    if (!t->left) {
        *min = t;
        return t->right;
    }
    t->left = remove_min(t->left, min);
    return balance(t);
}

struct node *cn_store__avl_remove(struct node *t, const char *name, size_t len)
{
    if (!t) return NULL;
    int c = cn_store__name_cmp(name, len, t);
    if (c < 0) {
        t->left = cn_store__avl_remove(t->left, name, len);
    } else if (c > 0) {
        t->right = cn_store__avl_remove(t->right, name, len);
    } else {
        struct node *l = t->left, *r = t->right;
        t->left = t->right = NULL;
        if (!r) return l;
        struct node *m;
        r = remove_min(r, &m);
        m->left = l;
        m->right = r;
        return balance(m);
    }
    return balance(t);
}

void cn_store__avl_replace(struct node **root, struct node *old, struct node *nw)
{
    struct node **link = root;
    while (*link != old) {
        CN_ASSERT(*link != NULL);
        int c = cn_store__name_cmp(cn_store__node_name(old), old->name_len, *link);
        link = c < 0 ? &(*link)->left : &(*link)->right;
    }
    nw->left = old->left;
    nw->right = old->right;
    nw->height = old->height;
    *link = nw;
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

struct node *cn_store__next_sibling(const struct node *n)
{
    if (!n->parent) return NULL;
    return cn_store__avl_lower_bound(n->parent->kids, cn_store__node_name(n), n->name_len, true);
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

struct node *cn_store__next_visible(const struct node *n)
{
    return skip_hidden(n->parent, cn_store__next_sibling(n));
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

void cn_store__node_path(struct cn_buf *out, const struct node *n)
{
    if (!n->parent) {
        cn_buf_putc(out, '/');
        return;
    }
    size_t total = 0;
    for (const struct node *p = n; p->parent; p = p->parent)
        total += 1 + p->name_len;
    cn_buf_reserve(out, total);
    size_t end = out->len + total;
    size_t pos = end;
    for (const struct node *p = n; p->parent; p = p->parent) {
        pos -= p->name_len;
        memcpy(out->p + pos, cn_store__node_name(p), p->name_len);
        out->p[--pos] = '/';
    }
    out->len = end;
    out->p[end] = '\0';
}

/* ---- TTL heap ----------------------------------------------------------------------------- */

static bool heap_less(const struct node *a, const struct node *b)
{
    if (a->expire_ns != b->expire_ns) return a->expire_ns < b->expire_ns;
    if (a->created_index != b->created_index) return a->created_index < b->created_index;
    if (a->ns != b->ns) return a->ns < b->ns;
    return a->depth < b->depth; /* an ancestor first: its subtree goes with it */
}

static void heap_set(struct cn_store *s, size_t i, struct node *n)
{
    s->heap[i] = n;
    n->heap_idx = (uint32_t)i;
}

static void sift_up(struct cn_store *s, size_t i)
{
    struct node *n = s->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(n, s->heap[p])) break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, n);
}

static void sift_down(struct cn_store *s, size_t i)
{
    struct node *n = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n) break;
        if (c + 1 < s->heap_n && heap_less(s->heap[c + 1], s->heap[c])) c++;
        if (!heap_less(s->heap[c], n)) break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, n);
}

void cn_store__heap_push(struct cn_store *s, struct node *n)
{
    CN_ASSERT(n->heap_idx == STORE_NO_HEAP);
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
        CN_ASSERT(s->heap_cap < UINT32_MAX);
        s->heap = cn_xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    heap_set(s, s->heap_n++, n);
    sift_up(s, s->heap_n - 1);
}

void cn_store__heap_remove(struct cn_store *s, struct node *n)
{
    size_t i = n->heap_idx;
    CN_ASSERT(i < s->heap_n && s->heap[i] == n);
    n->heap_idx = STORE_NO_HEAP;
    struct node *last = s->heap[--s->heap_n];
    if (last == n) return;
    heap_set(s, i, last);
    sift_up(s, i);
    sift_down(s, last->heap_idx);
}

void cn_store__heap_fix(struct cn_store *s, struct node *n)
{
    sift_up(s, n->heap_idx);
    sift_down(s, n->heap_idx);
}

void cn_store__set_expire(struct cn_store *s, struct node *n, int64_t expire_ns)
{
    n->expire_ns = expire_ns;
    if (expire_ns == 0) {
        if (n->heap_idx != STORE_NO_HEAP) cn_store__heap_remove(s, n);
    } else if (n->heap_idx == STORE_NO_HEAP) {
        cn_store__heap_push(s, n);
    } else {
        cn_store__heap_fix(s, n);
    }
}

/* ---- freeing ------------------------------------------------------------------------------ */

/* Frees the AVL tree t (nodes and, for directories, everything below) iteratively: the parent
 * field, no longer needed, links the work list. */
static void free_avl(struct cn_store *s, struct node *t)
{
    if (!t) return;
    t->parent = NULL;
    struct node *work = t;
    while (work) {
        struct node *x = work;
        work = x->parent;
        if (x->left) {
            x->left->parent = work;
            work = x->left;
        }
        if (x->right) {
            x->right->parent = work;
            work = x->right;
        }
        if (x->is_dir) {
            if (x->kids) {
                x->kids->parent = work;
                work = x->kids;
            }
        } else if (s) {
            s->nkeys[x->ns]--;
        }
        if (s && x->heap_idx != STORE_NO_HEAP) cn_store__heap_remove(s, x);
        cn_free(x);
    }
}

void cn_store__destroy_subtree(struct cn_store *s, struct node *n)
{
    if (n->is_dir)
        free_avl(s, n->kids);
    else
        s->nkeys[n->ns]--;
    if (n->heap_idx != STORE_NO_HEAP) cn_store__heap_remove(s, n);
    cn_free(n);
}

void cn_store__free_tree_raw(struct node *root)
{
    if (!root) return;
    if (root->is_dir) free_avl(NULL, root->kids);
    cn_free(root);
}
