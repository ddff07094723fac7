/* Model-based test of mvcc: random operation sequences (puts, deletes, multi-op txns, ranges at
 * random revisions, compactions, lease grants and revokes, snapshot save → load into a fresh
 * instance) against an obviously-correct reference: the full key → kv map of every revision.
 * Results and revisions are compared after every step.
 *
 * CN_MVCC_SEED=<n> replays one seed; CN_MVCC_LONG=<seeds> runs that many seeds (default a few
 * hundred milliseconds' worth). CN_MVCC_BENCH=1 prints the figures of docs (100k keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "mvcc/mvcc.h"

#define NKEYS  8
#define MAXREV 400
#define VALMAX 12

/* sorted (bytes, shorter first) */
static const char *const KEYS[NKEYS] = {"a", "a\x01", "ab", "b", "ba", "bb", "c", "c\xff"};
static const size_t KLEN[NKEYS] = {1, 2, 2, 1, 2, 2, 1, 2};
/* range bounds: keys and some in between */
static const char *const BOUNDS[] = {"a",  "a\x01", "aa", "ab",    "b", "b\x00",
                                     "ba", "bb",    "c",  "c\xff", "d", "\x01"};
static const size_t BLEN[] = {1, 2, 2, 2, 1, 2, 2, 2, 1, 2, 1, 1};
#define NBOUNDS 12

struct mkv {
    bool present;
    char val[VALMAX];
    size_t vlen;
    int64_t create, mod, ver, lease;
};

struct model {
    struct mkv st[MAXREV + 2][NKEYS]; /* st[r] = the state at revision r */
    int64_t rev, compacted;
    int64_t leases[16];
    int64_t ttls[16];
    int nleases;
};

static uint64_t rng;
static unsigned seed_now;
static int step_now;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (uint32_t)(rng % n) : 0;
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "model mismatch seed=%u step=%d: %s (line %d)\n", seed_now, step_now,  \
                    #c, __LINE__);                                                                 \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static int bcmp_(const char *a, size_t al, const char *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static bool in_range(int k, const char *key, size_t kl, const char *end, size_t el)
{
    if (el == 0) return bcmp_(KEYS[k], KLEN[k], key, kl) == 0;
    if (bcmp_(KEYS[k], KLEN[k], key, kl) < 0) return false;
    if (el == 1 && end[0] == 0) return true;
    return bcmp_(KEYS[k], KLEN[k], end, el) < 0;
}

static bool model_lease(const struct model *md, int64_t id)
{
    for (int i = 0; i < md->nleases; i++)
        if (md->leases[i] == id) return true;
    return false;
}

static void check_kv(const struct cn_mvcc_kv *kv, int k, const struct mkv *e, bool keys_only)
{
    CHECK(kv->key_len == KLEN[k] && memcmp(kv->key, KEYS[k], KLEN[k]) == 0);
    if (!keys_only) CHECK(kv->value_len == e->vlen && memcmp(kv->value, e->val, e->vlen) == 0);
    if (keys_only) CHECK(kv->value_len == 0);
    CHECK(kv->create_revision == e->create);
    CHECK(kv->mod_revision == e->mod);
    CHECK(kv->version == e->ver);
    CHECK(kv->lease == e->lease);
}

/* Random range against the model at cur (the txn's revision inside one), state w for cur. */
static void do_range(struct cn_mvcc *m, struct cn_mvcc_txn *t, const struct model *md, int64_t cur,
                     struct mkv w[NKEYS], struct cn_mvcc_range_result *res)
{
    struct cn_mvcc_range_req q = {0};
    int b = (int)rnd(NBOUNDS);
    q.key = cn_str_make(BOUNDS[b], BLEN[b]);
    uint32_t kind = rnd(4);
    if (kind == 0) {
        int k = (int)rnd(NKEYS);
        q.key = cn_str_make(KEYS[k], KLEN[k]);
    } else if (kind == 1) {
        q.range_end = cn_str_make("\0", 1);
    } else {
        int e = (int)rnd(NBOUNDS);
        q.range_end = cn_str_make(BOUNDS[e], BLEN[e]);
    }
    int64_t lo = md->compacted > 1 ? md->compacted - 1 : 0;
    q.rev = rnd(3) == 0 ? 0 : lo + (int64_t)rnd((uint32_t)(cur - lo + 2));
    q.limit = rnd(2) ? 0 : (int64_t)rnd(4);
    q.keys_only = rnd(4) == 0;
    q.count_only = rnd(6) == 0;
    if (rnd(5) == 0) q.min_mod_revision = (int64_t)rnd((uint32_t)cur + 1);
    if (rnd(5) == 0) q.max_create_revision = (int64_t)rnd((uint32_t)cur + 1);
    int rc = t ? cn_mvcc_txn_range(t, &q, res) : cn_mvcc_range(m, &q, res);
    if (q.rev > cur) {
        CHECK(rc == CN_MVCC_ERR_FUTURE_REV);
        return;
    }
    int64_t rev = q.rev <= 0 ? cur : q.rev;
    if (rev < md->compacted) {
        CHECK(rc == CN_MVCC_ERR_COMPACTED);
        return;
    }
    CHECK(rc == 0);
    CHECK(res->rev == cur);
    const struct mkv *s = rev == cur ? w : md->st[rev];
    int64_t count = 0;
    size_t n = 0;
    bool more = false;
    for (int k = 0; k < NKEYS; k++) {
        if (!s[k].present || !in_range(k, q.key.p, q.key.len, q.range_end.p, q.range_end.len))
            continue;
        count++;
        if (q.count_only) continue;
        if (q.min_mod_revision && s[k].mod < q.min_mod_revision) continue;
        if (q.max_create_revision && s[k].create > q.max_create_revision) continue;
        if (q.limit > 0 && (int64_t)n >= q.limit) {
            more = true;
            continue;
        }
        CHECK(n < res->n);
        check_kv(&res->kvs[n], k, &s[k], q.keys_only);
        n++;
    }
    CHECK(res->count == count);
    CHECK(res->n == n);
    CHECK(res->more == more);
}

static void rand_value(char *v, size_t *len)
{
    *len = rnd(VALMAX);
    for (size_t i = 0; i < *len; i++)
        v[i] = (char)('a' + rnd(26));
}

/* One write op inside t against the working state w. Returns the number of changes. */
static int do_write(struct cn_mvcc_txn *t, struct model *md, struct mkv w[NKEYS], int64_t main,
                    const struct cn_mvcc_event **evs_unused)
{
    (void)evs_unused;
    if (rnd(3)) {
        int k = (int)rnd(NKEYS);
        char v[VALMAX];
        size_t vl;
        rand_value(v, &vl);
        int64_t lease = 0;
        if (rnd(3) == 0 && md->nleases) lease = md->leases[rnd((uint32_t)md->nleases)];
        if (rnd(20) == 0) lease = 999; /* never granted */
        unsigned flags = 0;
        if (rnd(6) == 0) flags |= CN_MVCC_PUT_IGNORE_VALUE;
        if (rnd(6) == 0) flags |= CN_MVCC_PUT_IGNORE_LEASE;
        struct cn_mvcc_kv prev;
        bool has_prev = false;
        int rc = cn_mvcc_txn_put(t, cn_str_make(KEYS[k], KLEN[k]), cn_str_make(v, vl), lease, flags,
                                 &prev, &has_prev);
        if ((flags & (CN_MVCC_PUT_IGNORE_VALUE | CN_MVCC_PUT_IGNORE_LEASE)) && !w[k].present) {
            CHECK(rc == CN_MVCC_ERR_KEY_NOT_FOUND);
            return 0;
        }
        if (!(flags & CN_MVCC_PUT_IGNORE_LEASE) && lease && !model_lease(md, lease)) {
            CHECK(rc == CN_MVCC_ERR_LEASE_NOT_FOUND);
            return 0;
        }
        CHECK(rc == 0);
        CHECK(has_prev == w[k].present);
        if (has_prev) check_kv(&prev, k, &w[k], false);
        struct mkv e = w[k];
        if (!(flags & CN_MVCC_PUT_IGNORE_VALUE)) {
            memcpy(e.val, v, vl);
            e.vlen = vl;
        }
        if (!(flags & CN_MVCC_PUT_IGNORE_LEASE)) e.lease = lease;
        e.create = w[k].present ? w[k].create : main;
        e.ver = w[k].present ? w[k].ver + 1 : 1;
        e.mod = main;
        e.present = true;
        w[k] = e;
        return 1;
    }
    struct cn_mvcc_range_result prev = {0};
    int b = (int)rnd(NBOUNDS), e = (int)rnd(NBOUNDS);
    struct cn_str key = cn_str_make(BOUNDS[b], BLEN[b]);
    struct cn_str end = rnd(3) == 0 ? CN_STR_NULL : cn_str_make(BOUNDS[e], BLEN[e]);
    if (rnd(8) == 0) end = cn_str_make("\0", 1);
    int64_t deleted = -1;
    CHECK(cn_mvcc_txn_delete_range(t, key, end, &prev, &deleted) == 0);
    int n = 0;
    for (int k = 0; k < NKEYS; k++) {
        if (!w[k].present || !in_range(k, key.p, key.len, end.p, end.len)) continue;
        CHECK((size_t)n < prev.n);
        check_kv(&prev.kvs[n], k, &w[k], false);
        memset(&w[k], 0, sizeof(w[k]));
        n++;
    }
    CHECK(deleted == n);
    CHECK(prev.n == (size_t)n);
    cn_mvcc_range_result_free(&prev);
    return n;
}

static void reload(struct cn_mvcc **mp)
{
    struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
    cn_mvcc_snapshot_save(*mp, &a);
    struct cn_mvcc *f = cn_mvcc_new();
    CHECK(cn_mvcc_snapshot_load(f, a.p, a.len) == 0);
    cn_mvcc_snapshot_save(f, &b);
    CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    struct cn_mvcc_stats s1, s2;
    cn_mvcc_stats(*mp, &s1);
    cn_mvcc_stats(f, &s2);
    CHECK(memcmp(&s1, &s2, sizeof(s1)) == 0);
    uint32_t h1, h2;
    CHECK(cn_mvcc_hash(*mp, 0, &h1, NULL) == 0);
    CHECK(cn_mvcc_hash(f, 0, &h2, NULL) == 0);
    CHECK(h1 == h2);
    cn_mvcc_free(*mp);
    *mp = f;
    cn_buf_free(&a);
    cn_buf_free(&b);
}

static void check_changes(struct cn_mvcc *m, const struct model *md)
{
    if (md->rev < 2) return;
    int64_t lo = md->compacted > 2 ? md->compacted : 2;
    int64_t r = lo + (int64_t)rnd((uint32_t)(md->rev - lo + 1));
    struct cn_mvcc_event *ev = NULL;
    size_t n = 0, cap = 0;
    int64_t last = cn_mvcc_changes(m, r, r, 0, &ev, &n, &cap);
    CHECK(last == (n ? r : r - 1));
    /* the last event of each key at r gives the key's state at r */
    for (int k = 0; k < NKEYS; k++) {
        const struct cn_mvcc_event *e = NULL;
        for (size_t i = 0; i < n; i++)
            if (ev[i].kv.key_len == KLEN[k] && memcmp(ev[i].kv.key, KEYS[k], KLEN[k]) == 0)
                e = &ev[i];
        const struct mkv *now = &md->st[r][k];
        if (!e) {
            /* unchanged at r (or a dropped tombstone at the compacted revision) */
            if (r > md->compacted) {
                CHECK(now->present == md->st[r - 1][k].present);
                if (now->present) CHECK(now->mod < r);
            }
            continue;
        }
        CHECK(e->kv.mod_revision == r);
        if (e->type == CN_MVCC_PUT)
            check_kv(&e->kv, k, now, false);
        else
            CHECK(!now->present);
    }
    cn_free(ev);
}

static void check_frozen(struct cn_mvcc_frozen **f, const struct cn_buf *want)
{
    struct cn_buf got = CN_BUF_INIT;
    cn_mvcc_frozen_encode(*f, &got);
    CHECK(got.len == want->len && memcmp(got.p, want->p, got.len) == 0);
    cn_buf_free(&got);
    cn_mvcc_frozen_free(*f);
    *f = NULL;
}

static void run_seed(unsigned seed, int steps)
{
    seed_now = seed;
    rng = seed * 2654435761u + 1;
    struct model *md = cn_xcalloc(1, sizeof(*md));
    md->rev = 1;
    struct cn_mvcc *m = cn_mvcc_new();
    struct cn_mvcc_range_result res = {0};
    int64_t next_lease = 1;
    struct cn_mvcc_frozen *frozen = NULL;
    struct cn_buf frozen_want = CN_BUF_INIT;
    for (step_now = 0; step_now < steps && md->rev < MAXREV; step_now++) {
        uint32_t op = rnd(100);
        if (op < 45) {
            /* a write txn of 1..4 ops, with reads in between */
            struct mkv w[NKEYS];
            memcpy(w, md->st[md->rev], sizeof(w));
            struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
            int nops = op < 30 ? 1 : 1 + (int)rnd(4), changes = 0;
            for (int i = 0; i < nops; i++) {
                changes += do_write(t, md, w, md->rev + 1, NULL);
                CHECK(cn_mvcc_txn_rev(t) == md->rev + (changes ? 1 : 0));
                if (rnd(3) == 0) do_range(m, t, md, md->rev + (changes ? 1 : 0), w, &res);
            }
            const struct cn_mvcc_event *ev;
            size_t nev;
            int64_t r = cn_mvcc_txn_end(t, &ev, &nev);
            CHECK(nev == (size_t)changes);
            if (changes) {
                md->rev++;
                memcpy(md->st[md->rev], w, sizeof(w));
            }
            CHECK(r == md->rev);
            CHECK(cn_mvcc_rev(m) == md->rev);
        } else if (op < 75) {
            do_range(m, NULL, md, md->rev, md->st[md->rev], &res);
        } else if (op < 80) {
            int64_t lo = md->compacted > 1 ? md->compacted - 1 : 0;
            int64_t c = lo + (int64_t)rnd((uint32_t)(md->rev - lo + 2));
            int rc = cn_mvcc_compact(m, c);
            if (c <= md->compacted)
                CHECK(rc == CN_MVCC_ERR_COMPACTED);
            else if (c > md->rev)
                CHECK(rc == CN_MVCC_ERR_FUTURE_REV);
            else {
                CHECK(rc == 0);
                md->compacted = c;
            }
            CHECK(cn_mvcc_compacted_rev(m) == md->compacted);
        } else if (op < 85) {
            if (md->nleases < 16) {
                int64_t id = rnd(4) == 0 && md->nleases ? md->leases[0] : next_lease;
                int64_t ttl = (int64_t)rnd(20);
                int64_t got = 0;
                int rc = cn_mvcc_lease_grant(m, id, ttl, 5, &got);
                if (model_lease(md, id)) {
                    CHECK(rc == CN_MVCC_ERR_LEASE_EXISTS);
                } else {
                    CHECK(rc == 0);
                    CHECK(got == (ttl < 5 ? 5 : ttl));
                    md->leases[md->nleases] = id;
                    md->ttls[md->nleases++] = got;
                    next_lease++;
                }
            }
        } else if (op < 90) {
            int64_t id = md->nleases && rnd(5) ? md->leases[rnd((uint32_t)md->nleases)] : 777;
            int64_t r = 0;
            const struct cn_mvcc_event *ev;
            size_t nev = 0;
            int rc = cn_mvcc_lease_revoke(m, id, &r, &ev, &nev);
            if (!model_lease(md, id)) {
                CHECK(rc == CN_MVCC_ERR_LEASE_NOT_FOUND);
            } else {
                CHECK(rc == 0);
                struct mkv w[NKEYS];
                memcpy(w, md->st[md->rev], sizeof(w));
                size_t n = 0;
                for (int k = 0; k < NKEYS; k++) {
                    if (!w[k].present || w[k].lease != id) continue;
                    CHECK(n < nev && ev[n].type == CN_MVCC_DELETE);
                    CHECK(ev[n].kv.key_len == KLEN[k] && !memcmp(ev[n].kv.key, KEYS[k], KLEN[k]));
                    memset(&w[k], 0, sizeof(w[k]));
                    n++;
                }
                CHECK(nev == n);
                if (n) {
                    md->rev++;
                    memcpy(md->st[md->rev], w, sizeof(w));
                }
                CHECK(r == md->rev);
                for (int i = 0; i < md->nleases; i++)
                    if (md->leases[i] == id) {
                        md->leases[i] = md->leases[--md->nleases];
                        md->ttls[i] = md->ttls[md->nleases];
                        break;
                    }
            }
            CHECK(!cn_mvcc_lease_exists(m, id));
        } else if (op < 95) {
            check_changes(m, md);
        } else if (op < 97) {
            reload(&m);
        } else if (!frozen) {
            /* freeze now, check later that the encoding is the state at the freeze */
            cn_buf_reset(&frozen_want);
            cn_mvcc_snapshot_save(m, &frozen_want);
            frozen = cn_mvcc_freeze(m);
        } else {
            check_frozen(&frozen, &frozen_want);
        }
        CHECK(cn_mvcc_rev(m) == md->rev);
        CHECK(cn_mvcc_lease_count(m) == (size_t)md->nleases);
        uint64_t live = 0;
        for (int k = 0; k < NKEYS; k++)
            live += md->st[md->rev][k].present;
        CHECK(cn_mvcc_key_count(m) == live);
    }
    if (frozen) check_frozen(&frozen, &frozen_want);
    cn_buf_free(&frozen_want);
    /* every revision still readable reads as the model says, after one more reload */
    reload(&m);
    for (int64_t r = md->compacted > 1 ? md->compacted : 1; r <= md->rev; r++) {
        struct cn_mvcc_range_req q = {
            .key = cn_str_make("\0", 1), .range_end = cn_str_make("\0", 1), .rev = r};
        CHECK(cn_mvcc_range(m, &q, &res) == 0);
        size_t n = 0;
        for (int k = 0; k < NKEYS; k++) {
            if (!md->st[r][k].present) continue;
            CHECK(n < res.n);
            check_kv(&res.kvs[n++], k, &md->st[r][k], false);
        }
        CHECK(n == res.n);
    }
    cn_mvcc_range_result_free(&res);
    cn_mvcc_free(m);
    cn_free(md);
}

static void test_model(void **state)
{
    (void)state;
    const char *s = getenv("CN_MVCC_SEED");
    if (s) {
        run_seed((unsigned)strtoul(s, NULL, 10), 100000);
        return;
    }
    const char *l = getenv("CN_MVCC_LONG");
    unsigned n = l ? (unsigned)strtoul(l, NULL, 10) : 1000;
    for (unsigned i = 1; i <= n; i++)
        run_seed(i, 100000);
}

/* ---- figures for the report (CN_MVCC_BENCH=1) --------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t live_bytes;
static void *cnt_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    live_bytes += n;
    return (char *)p + 16;
}
static void *cnt_realloc(void *q, size_t n)
{
    if (!q) return cnt_malloc(n);
    size_t *p = (size_t *)((char *)q - 16);
    live_bytes -= p[0];
    p = realloc(p, n + 16);
    if (!p) return NULL;
    p[0] = n;
    live_bytes += n;
    return (char *)p + 16;
}
static void cnt_free(void *q)
{
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    live_bytes -= p[0];
    free(p);
}

static void bench(void)
{
    enum { N = 100000 };
    char key[32], val[64];
    memset(val, 'v', sizeof(val));
    size_t base = live_bytes;
    struct cn_mvcc *m = cn_mvcc_new();
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "/registry/pods/%08d", (i * 7919) % N);
        struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
        cn_mvcc_txn_put(t, cn_str_make(key, (size_t)kl), cn_str_make(val, 64), 0, 0, NULL, NULL);
        cn_mvcc_txn_end(t, NULL, NULL);
    }
    double t1 = now_s();
    size_t mem1 = live_bytes - base;
    int64_t r1 = cn_mvcc_rev(m);
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "/registry/pods/%08d", i);
        struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
        cn_mvcc_txn_put(t, cn_str_make(key, (size_t)kl), cn_str_make(val, 64), 0, 0, NULL, NULL);
        cn_mvcc_txn_end(t, NULL, NULL);
    }
    double t2 = now_s();
    size_t mem2 = live_bytes - base;
    struct cn_mvcc_range_result res = {0};
    double t3 = now_s();
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "/registry/pods/%08d", (i * 31) % N);
        struct cn_mvcc_range_req q = {.key = cn_str_make(key, (size_t)kl)};
        cn_mvcc_range(m, &q, &res);
    }
    double t4 = now_s();
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "/registry/pods/%08d", (i * 31) % N);
        struct cn_mvcc_range_req q = {.key = cn_str_make(key, (size_t)kl), .rev = r1};
        cn_mvcc_range(m, &q, &res);
    }
    double t5 = now_s();
    struct cn_mvcc_range_req lq = {
        .key = CN_STR("/registry/pods/"), .range_end = CN_STR("/registry/pods0"), .limit = 500};
    double t6 = now_s();
    for (int i = 0; i < 1000; i++)
        cn_mvcc_range(m, &lq, &res);
    double t7 = now_s();
    lq.rev = r1;
    for (int i = 0; i < 100; i++)
        cn_mvcc_range(m, &lq, &res);
    double t8 = now_s();
    cn_mvcc_compact(m, cn_mvcc_rev(m));
    double t9 = now_s();
    size_t mem3 = live_bytes - base;
    struct cn_buf snap = CN_BUF_INIT;
    double t10 = now_s();
    cn_mvcc_snapshot_save(m, &snap);
    double t11 = now_s();
    struct cn_mvcc *f = cn_mvcc_new();
    cn_mvcc_snapshot_load(f, snap.p, snap.len);
    double t12 = now_s();
    printf("bench 100k keys (26-byte keys, 64-byte values):\n");
    printf("  put (create)       %.0f ns/op, memory %.0f B/key\n", (t1 - t0) / N * 1e9,
           (double)mem1 / N);
    printf("  put (2nd revision) %.0f ns/op, memory %.0f B/key with 2 revisions\n",
           (t2 - t1) / N * 1e9, (double)mem2 / N);
    printf("  range 1 key        %.0f ns/op current, %.0f ns/op historical\n", (t4 - t3) / N * 1e9,
           (t5 - t4) / N * 1e9);
    printf("  range limit 500 +count over 100k: %.1f us current, %.1f us historical\n",
           (t7 - t6) / 1000 * 1e6, (t8 - t7) / 100 * 1e6);
    printf("  compact dropping 100k revisions: %.1f ms (%.0f ns/rev), memory after %.0f B/key\n",
           (t9 - t8) * 1e3, (t9 - t8) / N * 1e9, (double)mem3 / N);
    printf("  snapshot save %.1f ms (%zu bytes), load %.1f ms\n", (t11 - t10) * 1e3, snap.len,
           (t12 - t11) * 1e3);
    /* one lease holding every key */
    struct cn_mvcc *lm = cn_mvcc_new();
    cn_mvcc_lease_grant(lm, 1, 60, 1, NULL);
    double t13 = now_s();
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "/registry/events/%08d", (i * 7919) % N);
        struct cn_mvcc_txn *t = cn_mvcc_txn_begin(lm);
        cn_mvcc_txn_put(t, cn_str_make(key, (size_t)kl), cn_str_make(val, 64), 1, 0, NULL, NULL);
        cn_mvcc_txn_end(t, NULL, NULL);
    }
    double t14 = now_s();
    cn_mvcc_lease_revoke(lm, 1, NULL, NULL, NULL);
    double t15 = now_s();
    printf("  put with one shared lease %.0f ns/op; revoke of 100k keys %.1f ms\n",
           (t14 - t13) / N * 1e9, (t15 - t14) * 1e3);
    cn_mvcc_free(lm);
    cn_buf_free(&snap);
    cn_mvcc_free(f);
    cn_mvcc_range_result_free(&res);
    cn_mvcc_free(m);
}

int main(void)
{
    if (getenv("CN_MVCC_BENCH")) {
        struct cn_alloc_hooks h = {cnt_malloc, cnt_realloc, cnt_free};
        cn_alloc_set_hooks(&h);
        bench();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
