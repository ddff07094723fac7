/* store internals shared by the store's .c files: the node tree (one AVL tree of children per
 * directory), the TTL heap, the event history ring and the watcher hub. Nothing here is public.
 *
 * Design notes
 *  1. A node is one allocation: header, name, NUL, value, NUL. No node stores its full path; paths
 *     are rebuilt from parent pointers (events, expiry) or carried along while walking (GET).
 *  2. A directory's children form an AVL tree ordered by name (byte-wise, shorter first), so
 *     lookups are O(log n) per path component, listings come out sorted without sorting, and no
 *     client-chosen name can degrade it (no hash flooding).
 *  3. Every traversal that follows directory nesting is iterative (successor search by name),
 *     because a client can create arbitrarily deep paths; only AVL operations recurse, and AVL
 *     height is bounded by ~1.44 log2(children).
 *  4. Only nodes with a TTL are in the heap. The heap order is total: (expire_ns, created_index,
 *     ns, depth), so expiry order never depends on heap shape (a replica restored from a snapshot
 *     expires in the same order as one that replayed the log).
 *  5. Watchers are indexed by (namespace, path) in a hash table of path entries. Delivery never
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

struct node {
    struct node *parent;       /* directory holding it; NULL for a namespace root */
    struct node *left, *right; /* AVL links among the parent's children */
    union {
        struct node *kids; /* directories: AVL root of the children */
        struct {
            uint32_t value_len; /* keys */
            uint32_t value_cap; /* bytes available for the value in data[] */
        };
    };
    uint64_t created_index;
    uint64_t modified_index;
    int64_t expire_ns; /* 0 = permanent */
    uint32_t heap_idx; /* slot in the TTL heap or STORE_NO_HEAP */
    uint32_t name_len;
    uint32_t depth; /* 0 for a namespace root */
    uint8_t height; /* AVL height (1 for a leaf) */
    uint8_t is_dir;
    uint8_t ns;
    char data[]; /* name, NUL, then (keys) value, NUL */
};

static inline const char *cn_store__node_name(const struct node *n)
{
    return n->data;
}

static inline char *cn_store__node_value(struct node *n)
{
    return n->data + n->name_len + 1;
}

static inline const char *cn_store__node_cvalue(const struct node *n)
{
    return n->data + n->name_len + 1;
}

static inline bool cn_store__node_hidden(const struct node *n)
{
    return n->name_len > 0 && n->data[0] == '_';
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

    struct node **heap;
    size_t heap_n, heap_cap;

    struct cn_store_event *hist[STORE_HIST_CAP]; /* ring, oldest at hist_head */
    size_t hist_head, hist_n;

    struct store_hub hub;
    struct cn_store_stats st;
    struct cn_store_event *last_ev; /* the last result's event (one ref), until the next apply */

    struct cn_buf path; /* scratch: the cleaned path of the current operation */
    struct cn_buf aux;  /* scratch: second path, values kept across a node rewrite */
};

/* ---- tree.c ---- */
struct node *cn_store__node_new(const char *name, size_t name_len, bool is_dir, const char *value,
                                size_t value_len, uint8_t ns);
int cn_store__name_cmp(const char *a, size_t alen, const struct node *n);
struct node *cn_store__avl_find(struct node *t, const char *name, size_t len);
struct node *cn_store__avl_insert(struct node *t, struct node *n);
struct node *cn_store__avl_remove(struct node *t, const char *name, size_t len);
void cn_store__avl_replace(struct node **root, struct node *old, struct node *nw);
struct node *cn_store__avl_first(struct node *t);
/* Smallest node with name > (strict) or >= (not strict) the given name, or NULL. */
struct node *cn_store__avl_lower_bound(struct node *t, const char *name, size_t len, bool strict);
/* Next sibling in name order, or NULL. */
struct node *cn_store__next_sibling(const struct node *n);
/* First child / next sibling skipping hidden names. */
struct node *cn_store__first_visible(const struct node *dir);
struct node *cn_store__next_visible(const struct node *n);

/* Go's path.Clean(path.Join("/", in)) into out (NUL-terminated). */
void cn_store__clean_path(struct cn_buf *out, struct cn_str in);
/* Appends the absolute path of n within its namespace ("/" for a root). */
void cn_store__node_path(struct cn_buf *out, const struct node *n);

void cn_store__heap_push(struct cn_store *s, struct node *n);
void cn_store__heap_remove(struct cn_store *s, struct node *n);
void cn_store__heap_fix(struct cn_store *s, struct node *n);
/* Sets n's expiry, adding, moving or removing it in the heap. */
void cn_store__set_expire(struct cn_store *s, struct node *n, int64_t expire_ns);

/* Frees n and everything below it, keeping the heap and key counts right. n must already be
 * detached from its parent. */
void cn_store__destroy_subtree(struct cn_store *s, struct node *n);
/* Frees a whole tree without touching the store's heap/counters (teardown, failed loads). */
void cn_store__free_tree_raw(struct node *root);

/* ---- event.c ---- */
struct store_node_spec {
    const char *value; /* NULL: no value field */
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
