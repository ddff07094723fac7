/* mvcc internals shared by mvcc's .c files: the persistent key tree with its per-key revision
 * histories, the revision log, the lease table. Nothing here is public.
 *
 * Design notes
 *  1. Keys live in one AVL tree ordered by bytes (shorter first), persistent by path copying as
 *     store's tree is (store_int.h note 1): every node, history, key and value is reference
 *     counted, cn_mvcc_freeze takes a reference to the root, and a write first "owns" each node
 *     on its path (a shared node is copied) and the history it changes (a shared history is
 *     copied once, then grows in place). With no snapshot in flight every refs is 1 and all of
 *     this is a compare.
 *  2. A node holds its key (struct mkey, shared with the log, the lease table and results) and
 *     its history (struct hist): every kept revision of the key in (main, sub) order, records
 *     inline. A record is a put (value shared by reference: ignore_value and frozen copies cost
 *     no copy) or a tombstone. etcd's generations are implicit: a tombstone ends one. A key
 *     stays in the tree while any record is kept, as etcd's keyIndex does.
 *  3. Each node counts the keys alive at the head revision in its subtree (`live`), so a count
 *     at the current revision is two rank walks (O(log n)), and iterations at the head skip
 *     subtrees with only deleted keys.
 *  4. The revision log is a ring of (key, main, sub) for every kept record with main >=
 *     compacted, in revision order. Compaction pops its front up to the new revision and trims
 *     only the keys it names: a key that needs trimming at c has a record in [previous
 *     compaction, c], so compaction never scans every key. Watch catch-up reads it from a
 *     revision (binary search). The log is derived state, rebuilt on snapshot load.
 *  5. All reference counts are touched on the loop thread only; a worker encoding a frozen
 *     version reads fields that are never written while it lives. */
#ifndef CN_MVCC_MVCC_INT_H
#define CN_MVCC_MVCC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mvcc.h"

/* A key's bytes, NUL-terminated. Also the value type (struct mval). */
struct mkey {
    uint32_t refs;
    uint32_t len;
    uint32_t slot; /* keys: index in the keys array of the lease the key is attached to */
    char data[];
};
#define mval mkey

struct rec {
    int64_t main;
    int64_t create;  /* puts: create revision; tombstones 0 */
    int64_t version; /* puts: >= 1; tombstones 0 */
    int64_t lease;
    struct mval *val; /* one reference; NULL when empty or a tombstone */
    uint32_t sub;
    uint8_t tomb;
};

struct hist {
    uint32_t refs;
    uint32_t n, cap;
    struct rec r[];
};

struct node {
    struct node *left, *right;
    struct mkey *key; /* one reference */
    struct hist *h;   /* one reference, never empty */
    uint32_t refs;
    uint32_t live; /* keys alive at the head in this subtree (note 3) */
    uint8_t height;
};

struct logent {
    struct mkey *key; /* one reference */
    int64_t main;
    uint32_t sub;
};

struct lease {
    int64_t id;
    int64_t ttl;
    struct mkey **keys; /* one reference each, in no order (mkey.slot: O(1) attach/detach);
                           sorted when the order shows (revoke, each_key) */
    size_t nkeys, cap;
};

struct cn_mvcc_txn {
    struct cn_mvcc *m;
    int64_t begin_rev;
    uint32_t nchanges;
    bool open;
};

struct cn_mvcc {
    struct node *root;
    int64_t rev;
    int64_t compacted;
    uint64_t nnodes;
    uint64_t nrecs;      /* kept records */
    uint64_t data_bytes; /* keys once per node + each kept record's value length */

    struct logent *log; /* ring, power-of-two cap */
    size_t log_head, log_n, log_cap;

    struct lease **leases; /* sorted by id */
    size_t nleases, leases_cap;

    struct cn_mvcc_txn txn;
    struct cn_mvcc_event *ev;
    size_t nev, ev_cap;

    struct mkey **scratch; /* delete_range's victims */
    size_t scratch_cap;
};

struct cn_mvcc_frozen {
    struct node *root; /* one reference */
    int64_t rev, compacted;
    uint64_t nnodes;
    size_t nleases;
    int64_t *lease_id_ttl; /* 2 per lease */
};

/* ---- tree.c ---- */
struct mkey *cn_mvcc__key_new(const char *p, size_t len);
static inline struct mkey *cn_mvcc__key_ref(struct mkey *k)
{
    if (k) k->refs++;
    return k;
}
void cn_mvcc__key_unref(struct mkey *k);
int cn_mvcc__cmp(const char *a, size_t alen, const char *b, size_t blen);

void cn_mvcc__node_unref(struct node *n);
static inline const struct rec *cn_mvcc__last(const struct node *n)
{
    return &n->h->r[n->h->n - 1];
}
static inline bool cn_mvcc__node_live(const struct node *n)
{
    return !cn_mvcc__last(n)->tomb;
}
/* The record visible at rev (last with main <= rev), or NULL when none or a tombstone. */
const struct rec *cn_mvcc__visible(const struct hist *h, int64_t rev);
/* Index of the record (main, sub), or -1. */
long cn_mvcc__find_rec(const struct hist *h, int64_t main, uint32_t sub);

struct node *cn_mvcc__find(struct node *t, const char *key, size_t len);
/* Appends r (takes its val reference) to key's history, creating the node (with a reference
 * to *key, or a new key when *key is NULL) when absent; owns the path; fixes live counts. Sets
 * *key to the node's key (borrowed). */
void cn_mvcc__append(struct cn_mvcc *m, const char *k, size_t klen, struct mkey **key,
                     const struct rec *r);
/* Drops the records of key that compaction at c discards (notes 2, 4); removes the node when
 * none is left. */
void cn_mvcc__trim(struct cn_mvcc *m, const char *k, size_t klen, int64_t c);
/* Keys alive at the head and < key (strictly). */
uint64_t cn_mvcc__rank(const struct node *t, const char *key, size_t len);
static inline uint32_t cn_mvcc__live(const struct node *n)
{
    return n ? n->live : 0;
}
/* Builds a balanced tree from nodes sorted by key (fresh, refs 1, links ignored). */
struct node *cn_mvcc__build(struct node **v, size_t n);
void cn_mvcc__fix(struct node *n);

/* In-order iteration from the first key >= a bound; live_only skips subtrees without live keys
 * (yields only nodes alive at the head). */
struct iter {
    const struct node *st[96];
    int n;
    bool live_only;
};
void cn_mvcc__iter_seek(struct iter *it, const struct node *root, const char *key, size_t len,
                        bool live_only);
const struct node *cn_mvcc__iter_next(struct iter *it);

/* ---- lease.c ---- */
struct lease *cn_mvcc__lease_find(const struct cn_mvcc *m, int64_t id);
void cn_mvcc__lease_attach(struct cn_mvcc *m, int64_t id, struct mkey *key);
void cn_mvcc__lease_detach(struct cn_mvcc *m, int64_t id, const struct mkey *key);
void cn_mvcc__leases_clear(struct lease **v, size_t n);
/* Attaches key to l without checks (snapshot load). */
void cn_mvcc__lease_add(struct lease *l, struct mkey *key);

/* ---- kv.c ---- */
void cn_mvcc__log_push(struct cn_mvcc *m, struct mkey *key, int64_t main, uint32_t sub);
void cn_mvcc__log_clear(struct cn_mvcc *m);
/* Tombstones key in t when it is alive at the head. */
void cn_mvcc__txn_delete_key(struct cn_mvcc_txn *t, const char *k, size_t klen);

#endif
