/* store internals shared by the store's .c files: the node tree (one AVL tree of children per
 * directory, persistent), the TTL heap, the event history ring and the watcher hub. Nothing here
 * is public.
 *
 * Design notes
 *  1. The tree is persistent (copy-on-write by path copying). Every node and every value is
 *     reference counted: a node's refs is the number of pointers to it (from a parent node, a
 *     store root or a frozen snapshot's root). cn_store_freeze takes a reference to each root, so
 *     from then on every root is shared; a mutation first "owns" each node on its path from the
 *     root (cn_store__own: a node with refs > 1 is copied, the copy takes a reference to each
 *     child, the original loses one) and only ever writes into owned nodes. A frozen version is
 *     therefore never written while it lives, and a worker thread may read it while the loop
 *     goes on applying. With no snapshot in flight every refs is 1, owning is a compare, and the
 *     tree is updated in place as before.
 *  2. All reference counts are touched on the loop thread only. The worker reading a frozen
 *     version reads fields that are never written while the version lives (a shared node's refs
 *     field is the only one written, and the worker never reads it).
 *  3. A node is one allocation: header, name, NUL. A key's value is a separate, reference-counted
 *     cn_store_val, shared by the node, the events that show it and frozen versions; so a write
 *     costs one copy of its value however many events and snapshots see it.
 *  4. A directory's children form an AVL tree ordered by name (byte-wise, shorter first), so
 *     lookups are O(log n) per path component, listings come out sorted without sorting, and no
 *     client-chosen name can degrade it (no hash flooding). Nodes have no parent pointers (a
 *     shared node has many parents): walks carry a stack of the directories above them, which
 *     keeps every traversal that follows directory nesting iterative (a client can create
 *     arbitrarily deep paths); only AVL operations recurse, and AVL height is bounded by
 *     ~1.44 log2(children).
 *  5. Only nodes with a TTL have a heap entry (struct ttl, owned by the heap, pointed to by the
 *     live node). The entry repeats what the heap order needs and the node's path, so expiry
 *     finds the node by path. The order is total: (expire_ns, created_index, ns, depth), so
 *     expiry order never depends on heap shape (a replica restored from a snapshot expires in
 *     the same order as one that replayed the log). A node's ttl pointer means something only
 *     while the node is in the live tree; frozen copies never read it.
 *  6. Watchers are indexed by (namespace, path) in a hash table of path entries. Delivery never
 *     frees a watcher or a path entry: removals during delivery are deferred to the end of the
 *     outermost delivery (hub.depth), so callbacks may unwatch anyone. */
#ifndef CN_STORE_STORE_INT_H
#define CN_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/list.h"
#include "store.h"

#define STORE_HIST_CAP 1000
#define STORE_NO_HEAP  UINT32_MAX
/* 2000-01-01T00:00:00Z: earlier expiry instants mean "no TTL" (etcd's minExpireTime). */
#define STORE_MIN_EXPIRE_NS (946684800LL * 1000000000LL)

/* A key's value: len bytes and a NUL. */
struct cn_store_val {
    uint32_t refs;
    uint32_t len;
    char data[];
};

/* The heap entry of a live node with a TTL. */
struct ttl {
    int64_t expire_ns;
    uint64_t created_index;
    uint32_t heap_idx; /* slot in the TTL heap */
    uint32_t depth;    /* path components (heap order: an ancestor first) */
    uint8_t ns;
    size_t path_len;
    char path[]; /* the node's absolute path within ns, NUL-terminated */
};

struct node {
    struct node *left, *right; /* AVL links among the parent's children */
    union {
        struct node *kids;        /* directories: AVL root of the children */
        struct cn_store_val *val; /* keys: the value (one reference), NULL when empty */
    };
    union {
        struct ttl *ttl;        /* live nodes: the heap entry, NULL without TTL */
        struct node *next_free; /* while being freed */
    };
    uint64_t created_index;
    uint64_t modified_index;
    int64_t expire_ns; /* 0 = permanent */
    uint32_t refs;
    uint32_t name_len;
    uint8_t height; /* AVL height (1 for a leaf) */
    uint8_t is_dir;
    uint8_t ns;
    char name[]; /* name, NUL */
};

static inline const char *cn_store__node_name(const struct node *n)
{
    return n->name;
}

static inline const char *cn_store__node_cvalue(const struct node *n)
{
    return n->val ? n->val->data : "";
}

static inline size_t cn_store__node_value_len(const struct node *n)
{
    return n->val ? n->val->len : 0;
}

static inline bool cn_store__node_hidden(const struct node *n)
{
    return n->name_len > 0 && n->name[0] == '_';
}

struct wpath;

struct store_hub {
    struct wpath **tab; /* hash table of path entries (chained) */
    size_t tab_cap;     /* power of two, or 0 */
    size_t npaths;
    uint64_t count;                /* live watchers */
    int depth;                     /* nesting of deliveries in progress */
    struct cn_store_watcher *dead; /* removed during delivery, freed when depth returns to 0 */
};

struct cn_store {
    struct node *root[CN_NS_COUNT];
    uint64_t index;
    uint64_t nkeys[CN_NS_COUNT];
    uint64_t nnodes[CN_NS_COUNT]; /* every node but the root (the snapshot's record count) */

    struct ttl **heap;
    size_t heap_n, heap_cap;

    struct cn_store_event *hist[STORE_HIST_CAP]; /* ring, oldest at hist_head */
    size_t hist_head, hist_n;

    struct store_hub hub;
    struct cn_store_stats st;
    struct cn_store_event *last_ev; /* the last result's event (one ref), until the next apply */

    struct cn_buf path; /* scratch: the cleaned path of the current operation */
    struct cn_buf aux;  /* scratch: second path */
};

/* A version of the state, frozen by cn_store_freeze. */
struct cn_store_frozen {
    uint64_t index;
    struct node *root[CN_NS_COUNT]; /* one reference each */
    uint64_t nnodes[CN_NS_COUNT];
    size_t hist_n;
    struct cn_store_event *hist[STORE_HIST_CAP]; /* oldest first, one reference each */
};

/* A stack of directories, for walks (nodes have no parent pointers). */
struct store_stack {
    const struct node **v;
    size_t n, cap;
};
void cn_store__stack_push(struct store_stack *st, const struct node *n);
void cn_store__stack_free(struct store_stack *st);

/* ---- tree.c ---- */
/* Values: NULL stands for the empty value. val_new copies len bytes (NULL when len is 0). */
struct cn_store_val *cn_store__val_new(const char *p, size_t len);
static inline struct cn_store_val *cn_store__val_ref(struct cn_store_val *v)
{
    if (v) v->refs++;
    return v;
}
void cn_store__val_unref(struct cn_store_val *v);

/* A new node (refs 1, no links). A key takes one reference to val (may be NULL). */
struct node *cn_store__node_new(const char *name, size_t name_len, bool is_dir,
                                struct cn_store_val *val, uint8_t ns);
/* Drops one reference; frees n and, recursively, what only it held (values included). Does
 * not touch heap entries or counters (see cn_store__forget). */
void cn_store__node_unref(struct node *n);
/* Makes *link exclusively the caller's: when shared, replaces it by a copy (design note 1). The
 * node holding link must itself be owned (or link be a store root). Returns *link. */
struct node *cn_store__own(struct node **link);

int cn_store__name_cmp(const char *a, size_t alen, const struct node *n);
struct node *cn_store__avl_find(struct node *t, const char *name, size_t len);
/* The link to the child named name in the AVL tree at *link, owning every node on the way and
 * the child itself; NULL when there is none. */
struct node **cn_store__avl_own(struct node **link, const char *name, size_t len);
/* Inserts n (not present) into the tree at *link, owning the nodes it rewrites. */
void cn_store__avl_insert(struct node **link, struct node *n);
/* Removes the node named name from the tree at *link and returns it (owned, links cleared,
 * one reference: the caller's), or NULL when absent. */
struct node *cn_store__avl_remove(struct node **link, const char *name, size_t len);
struct node *cn_store__avl_first(struct node *t);
/* Smallest node with name > (strict) or >= (not strict) the given name, or NULL. */
struct node *cn_store__avl_lower_bound(struct node *t, const char *name, size_t len, bool strict);
/* Next child of dir after n in name order, or NULL. */
struct node *cn_store__next_sibling(const struct node *dir, const struct node *n);
/* First child / next child skipping hidden names. */
struct node *cn_store__first_visible(const struct node *dir);
struct node *cn_store__next_visible(const struct node *dir, const struct node *n);

/* Go's path.Clean(path.Join("/", in)) into out (NUL-terminated). */
void cn_store__clean_path(struct cn_buf *out, struct cn_str in);

/* Sets the expiry of n (owned, in the live tree at path), adding, moving or removing its heap
 * entry; also call it after changing n's created_index (the heap orders by it). */
void cn_store__set_expire(struct cn_store *s, struct node *n, const char *path, size_t plen,
                          int64_t expire_ns);
/* n was just taken out of the live tree: removes the heap entries and counts of n and of
 * everything below it (not of n's AVL siblings). The caller then drops its reference. */
void cn_store__forget(struct cn_store *s, const struct node *n);
/* Frees every heap entry (teardown, snapshot load). */
void cn_store__heap_clear(struct cn_store *s);

/* ---- event.c ---- */
struct store_node_spec {
    bool has_value;           /* false: no value field (directories, deleted nodes) */
    struct cn_store_val *val; /* has_value: shared (a reference is taken), or NULL with ... */
    const char *value;        /* ... these bytes copied into a new value (snapshot loading) */
    size_t value_len;
    bool dir;
    int64_t expire_ns;
    uint64_t modified_index;
    uint64_t created_index;
};
struct cn_store_event *cn_store__event_new(uint8_t ns, const char *action, uint64_t index,
                                           const char *key, size_t key_len,
                                           const struct store_node_spec *node,
                                           const struct node *prev);
/* Generic constructor also used by snapshot loading. */
struct cn_store_event *cn_store__event_alloc(uint8_t ns, const char *action, uint64_t index,
                                             const char *key, size_t key_len,
                                             const struct store_node_spec *node,
                                             const struct store_node_spec *prev);
/* Node JSON helpers for GET (path is the node's absolute path; plen 0 = the root). */
void cn_store__json_node_open(struct cn_buf *b, const struct node *n, const char *path, size_t plen,
                              int64_t now_ns);
void cn_store__json_node_close(struct cn_buf *b, const struct node *n);
void cn_store__json_ttl(struct cn_buf *b, int64_t expire_ns, int64_t now_ns);
/* Maps an action string to its small code and back (codec, snapshot). */
int cn_store__action_code(const char *action);
const char *cn_store__action_name(int code);

/* ---- watch.c ---- */
/* Records ev in the history (taking a ref) and, unless it is a refresh, delivers it. */
void cn_store__hub_publish(struct cn_store *s, struct cn_store_event *ev);
void cn_store__hist_clear(struct cn_store *s);
/* Ends every live watcher (callback with ev == NULL) and frees the hub. */
void cn_store__hub_end_all(struct cn_store *s, bool notify);

#endif
