/* Unit tests of mvcc on concrete values: etcd's revision examples, ranges with limit/more/count,
 * historical reads across deletes and compaction, compaction errors, write txns and their
 * events, ignore_value/ignore_lease, leases (revoke in one revision), snapshots (round trip,
 * corruption, freeze → writes → encode on a thread), the hash, the lessor. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/err.h"
#include "mvcc/mvcc.h"
#include "mvcc/mvcc_int.h"

static struct cn_str S(const char *z) {
    return cn_str_c(z);
}

static int64_t
put_l(struct cn_mvcc *m, const char *k, const char *v, int64_t lease)
{
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_put(t, S(k), S(v), lease, 0, NULL, NULL), 0);
    return cn_mvcc_txn_end(t, NULL, NULL);
}

static int64_t put(struct cn_mvcc *m, const char *k, const char *v)
{
    return put_l(m, k, v, 0);
}

static int64_t del(struct cn_mvcc *m, const char *k, const char *end, int64_t *deleted)
{
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_delete_range(t, S(k), end ? S(end) : CN_STR_NULL, NULL, deleted),
                     0);
    return cn_mvcc_txn_end(t, NULL, NULL);
}

/* Single-key get at rev; returns the range rc, *found. */
static int get(struct cn_mvcc *m, const char *k, int64_t rev, struct cn_mvcc_kv *kv, bool *found)
{
    struct cn_mvcc_range_result r = {0};
    struct cn_mvcc_range_req q = {.key = S(k), .rev = rev};
    int rc = cn_mvcc_range(m, &q, &r);
    *found = r.n == 1;
    if (r.n == 1) *kv = r.kvs[0];
    cn_mvcc_range_result_free(&r);
    return rc;
}

static void assert_kv(const struct cn_mvcc_kv *kv, const char *k, const char *v, int64_t create,
                      int64_t mod, int64_t ver, int64_t lease)
{
    assert_int_equal(kv->key_len, strlen(k));
    assert_memory_equal(kv->key, k, kv->key_len);
    assert_int_equal(kv->value_len, strlen(v));
    assert_memory_equal(kv->value, v, kv->value_len);
    assert_int_equal(kv->create_revision, create);
    assert_int_equal(kv->mod_revision, mod);
    assert_int_equal(kv->version, ver);
    assert_int_equal(kv->lease, lease);
}

static void test_revisions(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    struct cn_mvcc_kv kv;
    bool found;
    assert_int_equal(cn_mvcc_rev(m), 1); /* empty store: revision 1 */
    assert_int_equal(cn_mvcc_compacted_rev(m), 0);
    assert_int_equal(get(m, "foo", 0, &kv, &found), 0);
    assert_false(found);
    assert_int_equal(put(m, "foo", "bar"), 2); /* first write: 2 */
    assert_int_equal(get(m, "foo", 0, &kv, &found), 0);
    assert_true(found);
    assert_kv(&kv, "foo", "bar", 2, 2, 1, 0);
    assert_int_equal(put(m, "foo", "baz"), 3);
    get(m, "foo", 0, &kv, &found);
    assert_kv(&kv, "foo", "baz", 2, 3, 2, 0);
    assert_int_equal(put(m, "foo", ""), 4);
    get(m, "foo", 0, &kv, &found);
    assert_kv(&kv, "foo", "", 2, 4, 3, 0);
    int64_t d = -1;
    assert_int_equal(del(m, "foo", NULL, &d), 5);
    assert_int_equal(d, 1);
    get(m, "foo", 0, &kv, &found);
    assert_false(found);
    /* a delete of nothing writes nothing: no revision */
    assert_int_equal(del(m, "foo", NULL, &d), 5);
    assert_int_equal(d, 0);
    assert_int_equal(del(m, "a", "z", &d), 5);
    assert_int_equal(d, 0);
    /* re-created: new create_revision, version restarts */
    assert_int_equal(put(m, "foo", "again"), 6);
    get(m, "foo", 0, &kv, &found);
    assert_kv(&kv, "foo", "again", 6, 6, 1, 0);
    /* history */
    get(m, "foo", 2, &kv, &found);
    assert_kv(&kv, "foo", "bar", 2, 2, 1, 0);
    get(m, "foo", 4, &kv, &found);
    assert_kv(&kv, "foo", "", 2, 4, 3, 0);
    get(m, "foo", 5, &kv, &found);
    assert_false(found);
    get(m, "foo", 1, &kv, &found);
    assert_false(found);
    assert_int_equal(get(m, "foo", 7, &kv, &found), CN_MVCC_ERR_FUTURE_REV);
    assert_int_equal(cn_mvcc_key_count(m), 1);
    /* empty key */
    struct cn_mvcc_range_result r = {0};
    struct cn_mvcc_range_req q = {.key = CN_STR_NULL};
    assert_int_equal(cn_mvcc_range(m, &q, &r), CN_ERR_INVAL);
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_put(t, CN_STR_NULL, S("x"), 0, 0, NULL, NULL), CN_ERR_INVAL);
    assert_int_equal(cn_mvcc_txn_end(t, NULL, NULL), 6);
    cn_mvcc_range_result_free(&r);
    cn_mvcc_free(m);
}

static void test_range_limit_count(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    const char *keys[] = {"/r/a", "/r/b", "/r/c", "/r/d", "/r/e", "/s"};
    for (int i = 0; i < 6; i++)
        put(m, keys[i], "v");   /* revs 2..7 */
    del(m, "/r/c", NULL, NULL); /* 8 */
    struct cn_mvcc_range_result r = {0};
    struct cn_mvcc_range_req q = {.key = S("/r/"), .range_end = S("/r0"), .limit = 2};
    assert_int_equal(cn_mvcc_range(m, &q, &r), 0);
    assert_int_equal(r.n, 2);
    assert_true(r.more);
    assert_int_equal(r.count, 4); /* ignoring limit (Kubernetes' remainingItemCount) */
    assert_int_equal(r.rev, 8);
    assert_kv(&r.kvs[0], "/r/a", "v", 2, 2, 1, 0);
    assert_kv(&r.kvs[1], "/r/b", "v", 3, 3, 1, 0);
    /* continue after the last key, at page 1's revision 7 (before the delete) */
    q.key = cn_str_make("/r/b\0", 5);
    q.rev = 7;
    assert_int_equal(cn_mvcc_range(m, &q, &r), 0);
    assert_int_equal(r.n, 2);
    assert_true(r.more);
    assert_int_equal(r.count, 3); /* c, d, e at 7 */
    assert_int_equal(r.rev, 8);   /* the header carries the current revision */
    assert_kv(&r.kvs[0], "/r/c", "v", 4, 4, 1, 0);
    q.limit = 3;
    assert_int_equal(cn_mvcc_range(m, &q, &r), 0);
    assert_int_equal(r.n, 3);
    assert_false(r.more);
    /* keys_only / count_only */
    struct cn_mvcc_range_req q2 = {.key = S("/r/"), .range_end = S("/r0"), .keys_only = true};
    assert_int_equal(cn_mvcc_range(m, &q2, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.kvs[3].value_len, 0);
    assert_memory_equal(r.kvs[3].key, "/r/e", 4);
    q2.count_only = true;
    assert_int_equal(cn_mvcc_range(m, &q2, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.count, 4);
    q2.rev = 7;
    assert_int_equal(cn_mvcc_range(m, &q2, &r), 0);
    assert_int_equal(r.count, 5);
    /* "\0" as range_end: every key >= key; "\0" "\0" = all */
    struct cn_mvcc_range_req q3 = {.key = S("/r/d"), .range_end = cn_str_make("\0", 1)};
    assert_int_equal(cn_mvcc_range(m, &q3, &r), 0);
    assert_int_equal(r.n, 3);
    assert_memory_equal(r.kvs[2].key, "/s", 2);
    q3.key = cn_str_make("\0", 1);
    assert_int_equal(cn_mvcc_range(m, &q3, &r), 0);
    assert_int_equal(r.count, 5);
    /* range_end <= key: nothing */
    struct cn_mvcc_range_req q4 = {.key = S("/r/d"), .range_end = S("/r/a")};
    assert_int_equal(cn_mvcc_range(m, &q4, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.count, 0);
    /* filters narrow kvs and more, never count */
    struct cn_mvcc_range_req q5 = {
        .key = S("/r/"), .range_end = S("/r0"), .min_mod_revision = 5, .limit = 1};
    assert_int_equal(cn_mvcc_range(m, &q5, &r), 0);
    assert_int_equal(r.n, 1);
    assert_memory_equal(r.kvs[0].key, "/r/d", 4);
    assert_true(r.more);
    assert_int_equal(r.count, 4);
    q5.max_create_revision = 5;
    assert_int_equal(cn_mvcc_range(m, &q5, &r), 0);
    assert_int_equal(r.n, 1);
    assert_false(r.more);
    cn_mvcc_range_result_free(&r);
    cn_mvcc_free(m);
}

static void test_compaction(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    struct cn_mvcc_kv kv;
    bool found;
    assert_int_equal(cn_mvcc_compact(m, 2), CN_MVCC_ERR_FUTURE_REV);
    put(m, "a", "1");        /* 2 */
    put(m, "a", "2");        /* 3 */
    put(m, "b", "x");        /* 4 */
    del(m, "b", NULL, NULL); /* 5 */
    put(m, "a", "3");        /* 6 */
    put(m, "c", "y");        /* 7 */
    del(m, "c", NULL, NULL); /* 8 */
    assert_int_equal(cn_mvcc_compact(m, 9), CN_MVCC_ERR_FUTURE_REV);
    assert_int_equal(cn_mvcc_compact(m, 5), 0);
    assert_int_equal(cn_mvcc_compacted_rev(m), 5);
    assert_int_equal(cn_mvcc_compact(m, 5), CN_MVCC_ERR_COMPACTED);
    assert_int_equal(cn_mvcc_compact(m, 4), CN_MVCC_ERR_COMPACTED);
    assert_int_equal(get(m, "a", 4, &kv, &found), CN_MVCC_ERR_COMPACTED);
    assert_int_equal(get(m, "a", 5, &kv, &found), 0); /* at the compacted revision: works */
    assert_kv(&kv, "a", "2", 2, 3, 2, 0);
    get(m, "a", 6, &kv, &found);
    assert_kv(&kv, "a", "3", 2, 6, 3, 0);
    get(m, "b", 5, &kv, &found);
    assert_false(found);
    /* b's generation ended at 5 (<= 5): gone with its tombstone; a keeps 3 and 6; c all */
    assert_int_equal(m->nnodes, 2);
    struct cn_mvcc_stats st;
    cn_mvcc_stats(m, &st);
    assert_int_equal(st.keys_live, 1);
    assert_int_equal(st.keys_kept, 2);
    assert_int_equal(st.revisions_kept, 4); /* a@3 a@6 c@7 c@8 */
    assert_int_equal(st.data_bytes, 1 + 1 + 1 + 1 + 1);
    struct node *a = cn_mvcc__find(m->root, "a", 1);
    assert_non_null(a);
    assert_int_equal(a->h->n, 2);
    assert_int_equal(a->h->r[0].main, 3);
    /* a watch from the compacted revision sees only what was kept at 5: nothing */
    struct cn_mvcc_event *ev = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(cn_mvcc_changes(m, 4, 0, 0, &ev, &n, &cap), CN_MVCC_ERR_COMPACTED);
    assert_int_equal(cn_mvcc_changes(m, 5, 0, 0, &ev, &n, &cap), 8);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0].type, CN_MVCC_PUT);
    assert_kv(&ev[0].kv, "a", "3", 2, 6, 3, 0);
    assert_true(ev[0].has_prev);
    assert_kv(&ev[0].prev, "a", "2", 2, 3, 2, 0);
    assert_int_equal(ev[1].kv.mod_revision, 7);
    assert_int_equal(ev[2].type, CN_MVCC_DELETE);
    assert_int_equal(ev[2].kv.mod_revision, 8);
    assert_true(ev[2].has_prev);
    assert_kv(&ev[2].prev, "c", "y", 7, 7, 1, 0);
    /* 3.4.23 drops a tombstone at the compaction revision itself */
    assert_int_equal(cn_mvcc_compact(m, 8), 0);
    assert_int_equal(m->nnodes, 1);
    n = 0;
    assert_int_equal(cn_mvcc_changes(m, 8, 0, 0, &ev, &n, &cap), 7);
    assert_int_equal(n, 0);
    a = cn_mvcc__find(m->root, "a", 1);
    assert_int_equal(a->h->n, 1);
    assert_int_equal(a->h->r[0].main, 6);
    assert_int_equal(cn_mvcc_rev(m), 8);
    assert_int_equal(put(m, "a", "4"), 9);
    assert_int_equal(cn_mvcc_compact(m, 9), 0);
    n = 0;
    assert_int_equal(cn_mvcc_changes(m, 9, 0, 0, &ev, &n, &cap), 9);
    assert_int_equal(n, 1);
    assert_false(ev[0].has_prev); /* read at 8 < compacted 9 */
    get(m, "a", 9, &kv, &found);
    assert_kv(&kv, "a", "4", 2, 9, 4, 0);
    cn_free(ev);
    cn_mvcc_free(m);
}

static void test_txn(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    put(m, "x", "0"); /* 2 */
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_rev(t), 2);
    struct cn_mvcc_kv prev;
    bool has_prev;
    assert_int_equal(cn_mvcc_txn_put(t, S("x"), S("1"), 0, 0, &prev, &has_prev), 0);
    assert_true(has_prev);
    assert_kv(&prev, "x", "0", 2, 2, 1, 0);
    assert_int_equal(cn_mvcc_txn_rev(t), 3);
    assert_int_equal(cn_mvcc_txn_put(t, S("y"), S("2"), 0, 0, &prev, &has_prev), 0);
    assert_false(has_prev);
    /* the txn's range sees its own writes */
    struct cn_mvcc_range_result r = {0};
    struct cn_mvcc_range_req q = {.key = S("a"), .range_end = S("z")};
    assert_int_equal(cn_mvcc_txn_range(t, &q, &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.rev, 3);
    assert_kv(&r.kvs[0], "x", "1", 2, 3, 2, 0);
    assert_kv(&r.kvs[1], "y", "2", 3, 3, 1, 0);
    q.rev = 2;
    assert_int_equal(cn_mvcc_txn_range(t, &q, &r), 0);
    assert_int_equal(r.n, 1);
    q.rev = 4;
    assert_int_equal(cn_mvcc_txn_range(t, &q, &r), CN_MVCC_ERR_FUTURE_REV);
    struct cn_mvcc_range_result pr = {0};
    int64_t deleted = 0;
    assert_int_equal(cn_mvcc_txn_delete_range(t, S("x"), CN_STR_NULL, &pr, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_kv(&pr.kvs[0], "x", "1", 2, 3, 2, 0);
    assert_int_equal(cn_mvcc_txn_put(t, S("x"), S("3"), 0, 0, NULL, NULL), 0);
    const struct cn_mvcc_event *ev;
    size_t n;
    assert_int_equal(cn_mvcc_txn_end(t, &ev, &n), 3);
    assert_int_equal(n, 4);
    assert_int_equal(ev[0].type, CN_MVCC_PUT);
    assert_kv(&ev[0].kv, "x", "1", 2, 3, 2, 0);
    assert_true(ev[0].has_prev);
    assert_kv(&ev[0].prev, "x", "0", 2, 2, 1, 0);
    assert_false(ev[1].has_prev);
    assert_int_equal(ev[2].type, CN_MVCC_DELETE);
    assert_int_equal(ev[2].kv.mod_revision, 3);
    assert_int_equal(ev[2].kv.version, 0);
    assert_kv(&ev[2].prev, "x", "0", 2, 2, 1, 0); /* as of the revision before the txn */
    assert_kv(&ev[3].kv, "x", "3", 3, 3, 1, 0);   /* re-created inside the txn */
    /* sub-revisions in the log */
    struct cn_mvcc_event *ch = NULL;
    size_t cn = 0, cap = 0;
    assert_int_equal(cn_mvcc_changes(m, 3, 3, 1, &ch, &cn, &cap), 3);
    assert_int_equal(cn, 4); /* a revision is never split */
    assert_int_equal(ch[3].type, CN_MVCC_PUT);
    assert_true(ch[3].has_prev); /* prev_kv is read at mod_revision - 1, as etcd's watch */
    assert_kv(&ch[3].prev, "x", "0", 2, 2, 1, 0);
    assert_true(ev[3].has_prev);
    assert_kv(&ev[3].prev, "x", "0", 2, 2, 1, 0);
    cn_free(ch);
    cn_mvcc_range_result_free(&r);
    cn_mvcc_range_result_free(&pr);
    cn_mvcc_free(m);
}

static void test_ignore_value_lease(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    assert_int_equal(cn_mvcc_lease_grant(m, 7, 60, 5, NULL), 0);
    assert_int_equal(cn_mvcc_lease_grant(m, 8, 60, 5, NULL), 0);
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_put(t, S("k"), S(""), 0, CN_MVCC_PUT_IGNORE_VALUE, NULL, NULL),
                     CN_MVCC_ERR_KEY_NOT_FOUND);
    assert_int_equal(cn_mvcc_txn_put(t, S("k"), S("v"), 0, CN_MVCC_PUT_IGNORE_LEASE, NULL, NULL),
                     CN_MVCC_ERR_KEY_NOT_FOUND);
    assert_int_equal(cn_mvcc_txn_put(t, S("k"), S("v"), 99, 0, NULL, NULL),
                     CN_MVCC_ERR_LEASE_NOT_FOUND);
    assert_int_equal(cn_mvcc_txn_end(t, NULL, NULL), 1); /* nothing written */
    assert_string_equal(cn_mvcc_strerror(CN_MVCC_ERR_KEY_NOT_FOUND), "etcdserver: key not found");
    assert_int_equal(put_l(m, "k", "v1", 7), 2);
    t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_put_check(NULL, t, S("k"), 0, 0, CN_MVCC_PUT_IGNORE_VALUE), 0);
    assert_int_equal(
        cn_mvcc_txn_put(t, S("k"), S("ignored"), 8, CN_MVCC_PUT_IGNORE_VALUE, NULL, NULL), 0);
    cn_mvcc_txn_end(t, NULL, NULL);
    struct cn_mvcc_kv kv;
    bool found;
    get(m, "k", 0, &kv, &found);
    assert_kv(&kv, "k", "v1", 2, 3, 2, 8);
    /* the value is shared, not copied */
    struct node *n = cn_mvcc__find(m->root, "k", 1);
    assert_ptr_equal(n->h->r[0].val, n->h->r[1].val);
    size_t nk = 9;
    cn_mvcc_lease_info(m, 7, NULL, &nk);
    assert_int_equal(nk, 0); /* detached from 7 */
    cn_mvcc_lease_info(m, 8, NULL, &nk);
    assert_int_equal(nk, 1);
    t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_put(t, S("k"), S("v2"), 0, CN_MVCC_PUT_IGNORE_LEASE, NULL, NULL),
                     0);
    cn_mvcc_txn_end(t, NULL, NULL);
    get(m, "k", 0, &kv, &found);
    assert_kv(&kv, "k", "v2", 2, 4, 3, 8);
    /* both flags: a pure touch */
    t = cn_mvcc_txn_begin(m);
    assert_int_equal(cn_mvcc_txn_put(t, S("k"), S(""), 0,
                                     CN_MVCC_PUT_IGNORE_VALUE | CN_MVCC_PUT_IGNORE_LEASE, NULL,
                                     NULL),
                     0);
    cn_mvcc_txn_end(t, NULL, NULL);
    get(m, "k", 0, &kv, &found);
    assert_kv(&kv, "k", "v2", 2, 5, 4, 8);
    cn_mvcc_free(m);
}

static void collect_key(const char *key, size_t len, void *ctx)
{
    struct cn_buf *b = ctx;
    cn_buf_append(b, key, len);
    cn_buf_putc(b, ',');
}

static void test_leases(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    int64_t ttl = 0;
    assert_int_equal(cn_mvcc_lease_grant(m, 0, 10, 5, NULL), CN_MVCC_ERR_LEASE_NOT_FOUND);
    assert_int_equal(cn_mvcc_lease_grant(m, 1, CN_MVCC_LEASE_TTL_MAX + 1, 5, NULL),
                     CN_MVCC_ERR_LEASE_TTL_TOO_LARGE);
    assert_int_equal(cn_mvcc_lease_grant(m, 1, 2, 5, &ttl), 0);
    assert_int_equal(ttl, 5); /* raised to the minimum */
    assert_int_equal(cn_mvcc_lease_grant(m, 1, 10, 5, NULL), CN_MVCC_ERR_LEASE_EXISTS);
    assert_int_equal(cn_mvcc_lease_grant(m, 2, 10, 5, &ttl), 0);
    assert_int_equal(ttl, 10);
    assert_int_equal(cn_mvcc_lease_grant(m, 4, 30, 5, NULL), 0);
    assert_int_equal(cn_mvcc_rev(m), 1); /* grants consume no revision */
    assert_int_equal(cn_mvcc_lease_pick_id(m, 0), 3);
    assert_int_equal(cn_mvcc_lease_pick_id(m, 4), 5);
    assert_int_equal(cn_mvcc_lease_pick_id(m, 10), 10);
    assert_int_equal(cn_mvcc_lease_count(m), 3);
    int64_t id;
    assert_true(cn_mvcc_lease_at(m, 2, &id, &ttl));
    assert_int_equal(id, 4);
    assert_int_equal(ttl, 30);
    assert_false(cn_mvcc_lease_at(m, 3, &id, &ttl));
    put_l(m, "/l/b", "1", 2);   /* 2 */
    put_l(m, "/l/a", "1", 2);   /* 3 */
    put_l(m, "/l/c", "1", 2);   /* 4 */
    put_l(m, "/l/c", "2", 1);   /* 5: moves to lease 1 */
    put_l(m, "/l/d", "1", 2);   /* 6 */
    del(m, "/l/d", NULL, NULL); /* 7: detaches */
    struct cn_buf b = CN_BUF_INIT;
    assert_int_equal(cn_mvcc_lease_each_key(m, 2, collect_key, &b), 0);
    assert_string_equal(b.p, "/l/a,/l/b,");
    assert_int_equal(cn_mvcc_lease_each_key(m, 9, collect_key, &b), CN_MVCC_ERR_LEASE_NOT_FOUND);
    int64_t rev = 0;
    const struct cn_mvcc_event *ev;
    size_t n = 0;
    assert_int_equal(cn_mvcc_lease_revoke(m, 2, &rev, &ev, &n), 0);
    assert_int_equal(rev, 8); /* both keys in one revision */
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].type, CN_MVCC_DELETE);
    assert_memory_equal(ev[0].kv.key, "/l/a", 4);
    assert_memory_equal(ev[1].kv.key, "/l/b", 4);
    assert_int_equal(ev[1].kv.mod_revision, 8);
    assert_false(cn_mvcc_lease_exists(m, 2));
    assert_int_equal(cn_mvcc_lease_revoke(m, 2, &rev, &ev, &n), CN_MVCC_ERR_LEASE_NOT_FOUND);
    assert_int_equal(cn_mvcc_key_count(m), 1);
    /* a lease without keys: no revision */
    assert_int_equal(cn_mvcc_lease_revoke(m, 4, &rev, &ev, &n), 0);
    assert_int_equal(rev, 8);
    assert_int_equal(n, 0);
    cn_buf_free(&b);
    cn_mvcc_free(m);
}

static struct cn_mvcc *sample(void)
{
    struct cn_mvcc *m = cn_mvcc_new();
    cn_mvcc_lease_grant(m, 5, 30, 1, NULL);
    put(m, "a", "1");
    put(m, "a", "2");
    put_l(m, "b", "x", 5);
    put(m, "c", "");
    del(m, "c", NULL, NULL);
    put(m, "d", "y");
    cn_mvcc_compact(m, 3);
    return m;
}

static void test_snapshot(void **state)
{
    (void)state;
    struct cn_mvcc *m = sample();
    struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
    cn_mvcc_snapshot_save(m, &a);
    struct cn_mvcc *f = cn_mvcc_new();
    put(f, "junk", "z");
    assert_int_equal(cn_mvcc_snapshot_load(f, a.p, a.len), 0);
    cn_mvcc_snapshot_save(f, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    assert_int_equal(cn_mvcc_rev(f), 7);
    assert_int_equal(cn_mvcc_compacted_rev(f), 3);
    size_t nk = 0;
    cn_mvcc_lease_info(f, 5, NULL, &nk);
    assert_int_equal(nk, 1);
    uint32_t h1, h2;
    int64_t c;
    assert_int_equal(cn_mvcc_hash(m, 0, &h1, &c), 0);
    assert_int_equal(c, 3);
    assert_int_equal(cn_mvcc_hash(f, 0, &h2, NULL), 0);
    assert_int_equal(h1, h2);
    assert_int_equal(cn_mvcc_hash(m, 5, &h2, NULL), 0);
    assert_int_not_equal(h1, h2);
    assert_int_equal(cn_mvcc_hash(m, 2, &h2, NULL), CN_MVCC_ERR_COMPACTED);
    /* the same writes on both keep them equal */
    put(m, "e", "1");
    put(f, "e", "1");
    cn_mvcc_hash(m, 0, &h1, NULL);
    cn_mvcc_hash(f, 0, &h2, NULL);
    assert_int_equal(h1, h2);
    /* every single-byte corruption and every truncation is rejected; state unchanged */
    struct cn_buf before = CN_BUF_INIT, after = CN_BUF_INIT;
    cn_mvcc_snapshot_save(f, &before);
    for (size_t i = 0; i < a.len; i++) {
        a.p[i] ^= 0x5a;
        int rc = cn_mvcc_snapshot_load(f, a.p, a.len);
        assert_true(rc == CN_ERR_CORRUPT || rc == CN_ERR_VERSION);
        a.p[i] ^= 0x5a;
        assert_int_equal(cn_mvcc_snapshot_load(f, a.p, i), CN_ERR_CORRUPT);
    }
    cn_mvcc_snapshot_save(f, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.p, after.p, before.len);
    cn_buf_free(&before);
    cn_buf_free(&after);
    cn_buf_free(&a);
    cn_buf_free(&b);
    cn_mvcc_free(m);
    cn_mvcc_free(f);
}

struct enc_job {
    struct cn_mvcc_frozen *f;
    struct cn_buf out;
};

static void *encode_thread(void *arg)
{
    struct enc_job *j = arg;
    cn_mvcc_frozen_encode(j->f, &j->out);
    return NULL;
}

static void test_freeze_thread(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    char k[32], v[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "k%05d", i);
        snprintf(v, sizeof(v), "v%d", i);
        put(m, k, v);
    }
    cn_mvcc_lease_grant(m, 3, 10, 1, NULL);
    struct cn_buf want = CN_BUF_INIT;
    cn_mvcc_snapshot_save(m, &want);
    struct enc_job j = {.f = cn_mvcc_freeze(m), .out = CN_BUF_INIT};
    assert_int_equal(cn_mvcc_frozen_rev(j.f), 2001);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, encode_thread, &j), 0);
    /* the loop keeps applying: puts, deletes, compaction, a lease revoke */
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "k%05d", (i * 7) % 2500);
        snprintf(v, sizeof(v), "w%d", i);
        put_l(m, k, v, i % 10 == 0 ? 3 : 0);
        if (i % 100 == 0) del(m, "k00100", "k00150", NULL);
        if (i == 1500) cn_mvcc_compact(m, cn_mvcc_rev(m) - 10);
    }
    cn_mvcc_lease_revoke(m, 3, NULL, NULL, NULL);
    cn_mvcc_compact(m, cn_mvcc_rev(m));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(j.out.len, want.len);
    assert_memory_equal(j.out.p, want.p, want.len);
    struct cn_mvcc *f = cn_mvcc_new();
    assert_int_equal(cn_mvcc_snapshot_load(f, j.out.p, j.out.len), 0);
    assert_int_equal(cn_mvcc_rev(f), 2001);
    assert_int_equal(cn_mvcc_key_count(f), 2000);
    struct cn_mvcc_kv kv;
    bool found;
    get(f, "k00123", 0, &kv, &found);
    assert_kv(&kv, "k00123", "v123", 125, 125, 1, 0);
    cn_mvcc_frozen_free(j.f);
    cn_buf_free(&j.out);
    cn_buf_free(&want);
    cn_mvcc_free(f);
    cn_mvcc_free(m);
}

static void test_lessor(void **state)
{
    (void)state;
    struct cn_mvcc_lessor *l = cn_mvcc_lessor_new();
    int64_t rem = 0, ttl = 0, ids[8];
    /* a follower: never expires, no renew */
    cn_mvcc_lessor_grant(l, 1, 10, 1000);
    assert_int_equal(cn_mvcc_lessor_remaining_ms(l, 1, 5000, &rem), 0);
    assert_true(rem == INT64_MAX);
    assert_int_equal(cn_mvcc_lessor_renew(l, 1, 5000, &ttl), CN_MVCC_ERR_NOT_PRIMARY);
    assert_int_equal(cn_mvcc_lessor_expired(l, 1000000, 3000, ids, 8), 0);
    /* becomes leader at 10 s with a 2 s extension */
    cn_mvcc_lessor_promote(l, 10000, 2000);
    assert_true(cn_mvcc_lessor_is_primary(l));
    assert_int_equal(cn_mvcc_lessor_remaining_ms(l, 1, 10000, &rem), 0);
    assert_int_equal(rem, 12000);
    cn_mvcc_lessor_grant(l, 2, 5, 10000); /* granted on the leader: now + ttl */
    assert_int_equal(cn_mvcc_lessor_next_expiry_ms(l), 15000);
    assert_int_equal(cn_mvcc_lessor_expired(l, 14999, 3000, ids, 8), 0);
    assert_int_equal(cn_mvcc_lessor_expired(l, 15000, 3000, ids, 8), 1);
    assert_int_equal(ids[0], 2);
    /* reported again only after the retry interval */
    assert_int_equal(cn_mvcc_lessor_expired(l, 16000, 3000, ids, 8), 0);
    assert_int_equal(cn_mvcc_lessor_renew(l, 2, 16000, &ttl), CN_MVCC_ERR_LEASE_EXPIRED);
    assert_int_equal(cn_mvcc_lessor_expired(l, 18000, 3000, ids, 8), 1);
    cn_mvcc_lessor_revoke(l, 2);
    assert_int_equal(cn_mvcc_lessor_renew(l, 2, 16000, &ttl), CN_MVCC_ERR_LEASE_NOT_FOUND);
    /* renew pushes the expiry */
    assert_int_equal(cn_mvcc_lessor_renew(l, 1, 21000, &ttl), 0);
    assert_int_equal(ttl, 10);
    assert_int_equal(cn_mvcc_lessor_remaining_ms(l, 1, 21000, &rem), 0);
    assert_int_equal(rem, 10000);
    assert_int_equal(cn_mvcc_lessor_expired(l, 30999, 3000, ids, 8), 0);
    assert_int_equal(cn_mvcc_lessor_expired(l, 31000, 3000, ids, 8), 1);
    cn_mvcc_lessor_demote(l);
    assert_int_equal(cn_mvcc_lessor_remaining_ms(l, 1, 40000, &rem), 0);
    assert_true(rem == INT64_MAX);
    assert_true(cn_mvcc_lessor_next_expiry_ms(l) == INT64_MAX);
    /* sync with the replicated table: 1 goes, 5 and 6 come */
    struct cn_mvcc *m = cn_mvcc_new();
    cn_mvcc_lease_grant(m, 5, 7, 1, NULL);
    cn_mvcc_lease_grant(m, 6, 8, 1, NULL);
    cn_mvcc_lessor_sync(l, m, 0);
    assert_int_equal(cn_mvcc_lessor_count(l), 2);
    assert_int_equal(cn_mvcc_lessor_remaining_ms(l, 1, 0, &rem), CN_MVCC_ERR_LEASE_NOT_FOUND);
    cn_mvcc_free(m);
    /* 3000 leases of the same TTL on promotion: spread, at most ~750 per second */
    for (int64_t i = 100; i < 3100; i++)
        cn_mvcc_lessor_grant(l, i, 60, 0);
    cn_mvcc_lessor_promote(l, 0, 0);
    int64_t *buf = cn_xmalloc(4000 * sizeof(int64_t));
    size_t total = 0;
    for (int64_t t = 60000; t < 70000; t += 1000) {
        size_t k = cn_mvcc_lessor_expired(l, t, 1000000, buf, 4000);
        assert_true(k <= 760);
        total += k;
    }
    assert_int_equal(total, 3002);
    cn_free(buf);
    cn_mvcc_lessor_free(l);
}

/* ---- memory: compaction gives back what deleted keys held ---------------------------------- */

static size_t live_bytes; /* atomically updated: the freeze test allocates on a thread */

static void *cnt_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    __atomic_add_fetch(&live_bytes, n, __ATOMIC_RELAXED);
    return (char *)p + 16;
}

static void cnt_free(void *q)
{
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    __atomic_sub_fetch(&live_bytes, p[0], __ATOMIC_RELAXED);
    free(p);
}

static void *cnt_realloc(void *q, size_t n)
{
    if (!q) return cnt_malloc(n);
    size_t *p = (size_t *)((char *)q - 16);
    size_t old = p[0];
    p = realloc(p, n + 16);
    if (!p) return NULL;
    p[0] = n;
    __atomic_sub_fetch(&live_bytes, old, __ATOMIC_RELAXED);
    __atomic_add_fetch(&live_bytes, n, __ATOMIC_RELAXED);
    return (char *)p + 16;
}

static void test_compaction_releases(void **state)
{
    (void)state;
    struct cn_mvcc *m = cn_mvcc_new();
    size_t base = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
    char k[32], v[128];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 5000; i++) {
            snprintf(k, sizeof(k), "/big/%06d", i);
            put(m, k, v);
        }
    size_t full = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED) - base;
    assert_true(full > 5000 * 3 * 128);
    int64_t d = 0;
    del(m, "/big/", "/big0", &d);
    assert_int_equal(d, 5000);
    assert_int_equal(cn_mvcc_compact(m, cn_mvcc_rev(m)), 0);
    assert_int_equal(m->nnodes, 0);
    assert_int_equal(m->log_n, 0);
    put(m, "x", "y"); /* a small txn: the big event array goes */
    size_t left = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED) - base;
    assert_true(left < 8 * 1024);
    cn_mvcc_free(m);
}

int main(void)
{
    struct cn_alloc_hooks hooks = {cnt_malloc, cnt_realloc, cnt_free};
    cn_alloc_set_hooks(&hooks);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revisions),
        cmocka_unit_test(test_range_limit_count),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_txn),
        cmocka_unit_test(test_ignore_value_lease),
        cmocka_unit_test(test_leases),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_freeze_thread),
        cmocka_unit_test(test_lessor),
        cmocka_unit_test(test_compaction_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
