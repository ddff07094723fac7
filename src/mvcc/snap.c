/* mvcc snapshots: freeze, the encoding (deterministic, versioned, CRC-checked), load with full
 * validation, and the key-space hash.
 *
 * Format, version 1:
 *   "CNMV" u32 version=1 u64 payload_len u32 crc32(payload) payload
 *   payload: i64 rev, i64 compacted, uvarint nkeys, then per key in key order:
 *     bytes key, uvarint nrec, nrec records in (main, sub) order:
 *       uvarint main, uvarint sub, u8 flags (1 tombstone, 2 value),
 *       puts: uvarint create, uvarint version, u64 lease, [bytes value] (flags & 2)
 *   then uvarint nleases and per lease in id order: u64 id, i64 ttl.
 * The log and the lease → keys sets are derived on load. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "mvcc_int.h"

#define SNAP_MAGIC   "CNMV"
#define SNAP_VERSION 1
#define REC_TOMB     0x01
#define REC_VALUE    0x02

static uint32_t crc_update(uint32_t crc, const void *p, size_t len)
{
    const unsigned char *b = p;
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = (uint32_t)crc32(crc, b, n);
        b += n;
        len -= n;
    }
    return crc;
}

struct cn_mvcc_frozen *cn_mvcc_freeze(struct cn_mvcc *m)
{
    CN_ASSERT(!m->txn.open);
    struct cn_mvcc_frozen *f = CN_NEW(struct cn_mvcc_frozen);
    f->root = m->root;
    if (f->root) f->root->refs++;
    f->rev = m->rev;
    f->compacted = m->compacted;
    f->nnodes = m->nnodes;
    f->nleases = m->nleases;
    if (m->nleases) {
        f->lease_id_ttl = cn_xmalloc(2 * m->nleases * sizeof(int64_t));
        for (size_t i = 0; i < m->nleases; i++) {
            f->lease_id_ttl[2 * i] = m->leases[i]->id;
            f->lease_id_ttl[2 * i + 1] = m->leases[i]->ttl;
        }
    }
    return f;
}

int64_t cn_mvcc_frozen_rev(const struct cn_mvcc_frozen *f)
{
    return f->rev;
}

void cn_mvcc_frozen_free(struct cn_mvcc_frozen *f)
{
    if (!f) return;
    cn_mvcc__node_unref(f->root);
    cn_free(f->lease_id_ttl);
    cn_free(f);
}

static void encode_key(struct cn_buf *out, const struct node *n)
{
    cn_buf_put_bytes(out, n->key->data, n->key->len);
    cn_buf_put_uvarint(out, n->h->n);
    for (uint32_t i = 0; i < n->h->n; i++) {
        const struct rec *r = &n->h->r[i];
        cn_buf_put_uvarint(out, (uint64_t)r->main);
        cn_buf_put_uvarint(out, r->sub);
        uint8_t fl = (uint8_t)((r->tomb ? REC_TOMB : 0) | (r->val ? REC_VALUE : 0));
        cn_buf_put_u8(out, fl);
        if (r->tomb) continue;
        cn_buf_put_uvarint(out, (uint64_t)r->create);
        cn_buf_put_uvarint(out, (uint64_t)r->version);
        cn_buf_put_u64(out, (uint64_t)r->lease);
        if (r->val) cn_buf_put_bytes(out, r->val->data, r->val->len);
    }
}

void cn_mvcc_frozen_encode(const struct cn_mvcc_frozen *f, struct cn_buf *out)
{
    size_t start = out->len;
    cn_buf_append(out, SNAP_MAGIC, 4);
    cn_buf_put_u32(out, SNAP_VERSION);
    cn_buf_put_u64(out, 0); /* payload length, patched below */
    cn_buf_put_u32(out, 0); /* crc, patched below */
    size_t pstart = out->len;
    cn_buf_put_i64(out, f->rev);
    cn_buf_put_i64(out, f->compacted);
    cn_buf_put_uvarint(out, f->nnodes);
    /* the worker reads the frozen tree without touching any reference count */
    struct iter it;
    cn_mvcc__iter_seek(&it, f->root, "", 0, false);
    const struct node *n;
    while ((n = cn_mvcc__iter_next(&it)))
        encode_key(out, n);
    cn_buf_put_uvarint(out, f->nleases);
    for (size_t i = 0; i < f->nleases; i++) {
        cn_buf_put_u64(out, (uint64_t)f->lease_id_ttl[2 * i]);
        cn_buf_put_i64(out, f->lease_id_ttl[2 * i + 1]);
    }
    uint64_t plen = out->len - pstart;
    uint32_t crc = crc_update((uint32_t)crc32(0L, Z_NULL, 0), out->p + pstart, (size_t)plen);
    unsigned char *h = (unsigned char *)out->p + start;
    for (int i = 0; i < 8; i++)
        h[8 + i] = (unsigned char)(plen >> (8 * i));
    for (int i = 0; i < 4; i++)
        h[16 + i] = (unsigned char)(crc >> (8 * i));
}

void cn_mvcc_snapshot_save(struct cn_mvcc *m, struct cn_buf *out)
{
    struct cn_mvcc_frozen *f = cn_mvcc_freeze(m);
    cn_mvcc_frozen_encode(f, out);
    cn_mvcc_frozen_free(f);
}

/* ---- load --------------------------------------------------------------------------------- */

static int cmp_logent(const void *a, const void *b)
{
    const struct logent *x = a, *y = b;
    if (x->main != y->main) return x->main < y->main ? -1 : 1;
    return x->sub < y->sub ? -1 : x->sub > y->sub ? 1 : 0;
}

struct loadst {
    struct node **nodes;
    size_t nnodes;
    struct lease **leases;
    size_t nleases;
    struct logent *log;
    size_t nlog, log_cap;
};

static void loadst_free(struct loadst *s)
{
    for (size_t i = 0; i < s->nnodes; i++)
        cn_mvcc__node_unref(s->nodes[i]);
    cn_free(s->nodes);
    cn_mvcc__leases_clear(s->leases, s->nleases);
    cn_free(s->leases);
    for (size_t i = 0; i < s->nlog; i++)
        cn_mvcc__key_unref(s->log[i].key);
    cn_free(s->log);
}

/* Reads and checks one key's history (etcd's generation rules, note 2). */
static int load_key(struct cn_rd *r, int64_t rev, int64_t compacted, struct node **out)
{
    struct cn_str k = cn_rd_bytes(r);
    uint64_t nrec = cn_rd_uvarint(r);
    if (!cn_rd_ok(r) || k.len == 0) return CN_ERR_CORRUPT;
    if (k.len > CN_MVCC_KEY_MAX) return CN_ERR_TOO_LARGE;
    /* every record takes >= 3 bytes: a corrupt count cannot make a big allocation */
    if (nrec == 0 || nrec > cn_rd_left(r) / 3 || nrec >= UINT32_MAX) return CN_ERR_CORRUPT;
    struct node *n = cn_xmalloc(sizeof(*n));
    n->left = n->right = NULL;
    n->refs = 1;
    n->key = cn_mvcc__key_new(k.p, k.len);
    n->h = cn_xmalloc(sizeof(struct hist) + nrec * sizeof(struct rec));
    n->h->refs = 1;
    n->h->n = 0;
    n->h->cap = (uint32_t)nrec;
    *out = n;
    int nold = 0;
    for (uint64_t i = 0; i < nrec; i++) {
        struct rec x = {0};
        uint64_t main = cn_rd_uvarint(r), sub = cn_rd_uvarint(r);
        uint8_t fl = cn_rd_u8(r);
        if (!cn_rd_ok(r) || main < 2 || main > (uint64_t)rev || sub >= UINT32_MAX ||
            (fl & ~(REC_TOMB | REC_VALUE)))
            return CN_ERR_CORRUPT;
        x.main = (int64_t)main;
        x.sub = (uint32_t)sub;
        x.tomb = (fl & REC_TOMB) ? 1 : 0;
        const struct rec *p = n->h->n ? &n->h->r[n->h->n - 1] : NULL;
        if (p && (p->main > x.main || (p->main == x.main && p->sub >= x.sub)))
            return CN_ERR_CORRUPT;
        if (x.tomb) {
            if (fl & REC_VALUE || !p || p->tomb) return CN_ERR_CORRUPT;
        } else {
            uint64_t create = cn_rd_uvarint(r), version = cn_rd_uvarint(r);
            x.lease = (int64_t)cn_rd_u64(r);
            if (!cn_rd_ok(r) || create < 2 || create > main || version < 1 || version > INT64_MAX ||
                x.lease < 0)
                return CN_ERR_CORRUPT;
            x.create = (int64_t)create;
            x.version = (int64_t)version;
            if (p && !p->tomb) {
                if (x.version != p->version + 1 || x.create != p->create) return CN_ERR_CORRUPT;
            } else if (p || x.version == 1) {
                if (x.version != 1 || x.create != x.main) return CN_ERR_CORRUPT;
            }
            if (fl & REC_VALUE) {
                struct cn_str v = cn_rd_bytes(r);
                if (!cn_rd_ok(r) || v.len == 0) return CN_ERR_CORRUPT;
                if (v.len > CN_MVCC_VALUE_MAX) return CN_ERR_TOO_LARGE;
                x.val = cn_mvcc__key_new(v.p, v.len);
            }
        }
        if (x.main <= compacted) nold++;
        n->h->r[n->h->n++] = x;
    }
    /* after compaction at c a key keeps at most one revision <= c, a put */
    if (compacted > 0 && nold > 1) return CN_ERR_CORRUPT;
    if (nold == 1 && n->h->r[0].tomb) return CN_ERR_CORRUPT;
    return 0;
}

static int load(struct loadst *s, const void *p, size_t len, int64_t *rev_out,
                int64_t *compacted_out)
{
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    const void *magic = cn_rd_raw(&r, 4);
    uint32_t version = cn_rd_u32(&r);
    uint64_t plen = cn_rd_u64(&r);
    uint32_t crc = cn_rd_u32(&r);
    if (!cn_rd_ok(&r) || memcmp(magic, SNAP_MAGIC, 4) != 0) return CN_ERR_CORRUPT;
    if (version != SNAP_VERSION) return CN_ERR_VERSION;
    if (plen != cn_rd_left(&r)) return CN_ERR_CORRUPT;
    const void *payload = cn_rd_raw(&r, (size_t)plen);
    if (crc_update((uint32_t)crc32(0L, Z_NULL, 0), payload, (size_t)plen) != crc)
        return CN_ERR_CORRUPT;
    cn_rd_init(&r, payload, (size_t)plen);
    int64_t rev = cn_rd_i64(&r), compacted = cn_rd_i64(&r);
    uint64_t nkeys = cn_rd_uvarint(&r);
    if (!cn_rd_ok(&r) || rev < 1 || compacted < 0 || compacted > rev) return CN_ERR_CORRUPT;
    if (nkeys > cn_rd_left(&r) / 5) return CN_ERR_CORRUPT; /* a key is >= 5 bytes */
    s->nodes = cn_xmalloc((nkeys ? nkeys : 1) * sizeof(*s->nodes));
    for (uint64_t i = 0; i < nkeys; i++) {
        struct node *n = NULL;
        int rc = load_key(&r, rev, compacted, &n);
        if (n) s->nodes[s->nnodes++] = n;
        if (rc != 0) return rc;
        if (i > 0) {
            const struct mkey *a = s->nodes[i - 1]->key, *b = n->key;
            if (cn_mvcc__cmp(a->data, a->len, b->data, b->len) >= 0) return CN_ERR_CORRUPT;
        }
    }
    uint64_t nl = cn_rd_uvarint(&r);
    if (!cn_rd_ok(&r) || nl > cn_rd_left(&r) / 16) return CN_ERR_CORRUPT;
    s->leases = cn_xmalloc((nl ? nl : 1) * sizeof(*s->leases));
    for (uint64_t i = 0; i < nl; i++) {
        int64_t id = (int64_t)cn_rd_u64(&r), ttl = cn_rd_i64(&r);
        if (!cn_rd_ok(&r) || id <= 0 || ttl > CN_MVCC_LEASE_TTL_MAX) return CN_ERR_CORRUPT;
        if (i > 0 && s->leases[i - 1]->id >= id) return CN_ERR_CORRUPT;
        struct lease *l = CN_NEW(struct lease);
        l->id = id;
        l->ttl = ttl;
        s->leases[s->nleases++] = l;
    }
    if (cn_rd_left(&r) != 0) return CN_ERR_CORRUPT;
    /* derived state: lease attachments of live keys, and the log */
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *n = s->nodes[i];
        const struct rec *last = cn_mvcc__last(n);
        for (uint32_t j = 0; j < n->h->n; j++) {
            const struct rec *x = &n->h->r[j];
            if (x->main < compacted) continue;
            if (s->nlog == s->log_cap) {
                s->log_cap = s->log_cap ? s->log_cap * 2 : 64;
                s->log = cn_xrealloc(s->log, s->log_cap * sizeof(*s->log));
            }
            s->log[s->nlog++] = (struct logent){cn_mvcc__key_ref(n->key), x->main, x->sub};
        }
        if (last->tomb || last->lease == 0) continue;
        size_t lo = 0, hi = s->nleases;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->leases[mid]->id < last->lease)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= s->nleases || s->leases[lo]->id != last->lease) return CN_ERR_CORRUPT;
        cn_mvcc__lease_add(s->leases[lo], n->key);
    }
    if (s->nlog) qsort(s->log, s->nlog, sizeof(*s->log), cmp_logent);
    for (size_t i = 1; i < s->nlog; i++)
        if (cmp_logent(&s->log[i - 1], &s->log[i]) == 0) return CN_ERR_CORRUPT;
    *rev_out = rev;
    *compacted_out = compacted;
    return 0;
}

int cn_mvcc_snapshot_load(struct cn_mvcc *m, const void *p, size_t len)
{
    CN_ASSERT(!m->txn.open);
    struct loadst s = {0};
    int64_t rev = 0, compacted = 0;
    int rc = load(&s, p, len, &rev, &compacted);
    if (rc != 0) {
        loadst_free(&s);
        return rc;
    }
    cn_mvcc__node_unref(m->root);
    cn_mvcc__log_clear(m);
    cn_mvcc__leases_clear(m->leases, m->nleases);
    cn_free(m->leases);
    m->root = cn_mvcc__build(s.nodes, s.nnodes);
    m->nnodes = s.nnodes;
    m->nrecs = 0;
    m->data_bytes = 0;
    for (size_t i = 0; i < s.nnodes; i++) {
        const struct node *n = s.nodes[i];
        m->nrecs += n->h->n;
        m->data_bytes += n->key->len;
        for (uint32_t j = 0; j < n->h->n; j++)
            m->data_bytes += n->h->r[j].val ? n->h->r[j].val->len : 0;
    }
    cn_free(s.nodes);
    m->leases = s.leases;
    m->nleases = m->leases_cap = s.nleases;
    /* the log ring wants a power-of-two capacity */
    size_t cap = 64;
    while (cap < s.nlog)
        cap *= 2;
    cn_free(m->log);
    m->log = cn_xrealloc(s.log, cap * sizeof(*m->log));
    m->log_cap = cap;
    m->log_head = 0;
    m->log_n = s.nlog;
    m->rev = rev;
    m->compacted = compacted;
    m->nev = 0;
    return 0;
}

/* ---- hash --------------------------------------------------------------------------------- */

static uint32_t crc_i64(uint32_t crc, int64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    return crc_update(crc, b, 8);
}

int cn_mvcc_hash(struct cn_mvcc *m, int64_t rev, uint32_t *hash, int64_t *compacted_rev)
{
    CN_ASSERT(!m->txn.open);
    if (rev > m->rev) return CN_MVCC_ERR_FUTURE_REV;
    if (rev <= 0) rev = m->rev;
    if (rev < m->compacted) return CN_MVCC_ERR_COMPACTED;
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    crc = crc_i64(crc, m->compacted);
    struct iter it;
    cn_mvcc__iter_seek(&it, m->root, "", 0, false);
    const struct node *n;
    while ((n = cn_mvcc__iter_next(&it))) {
        const struct hist *h = n->h;
        if (h->r[0].main > rev) continue;
        crc = crc_i64(crc, n->key->len);
        crc = crc_update(crc, n->key->data, n->key->len);
        for (uint32_t i = 0; i < h->n && h->r[i].main <= rev; i++) {
            const struct rec *r = &h->r[i];
            crc = crc_i64(crc, r->main);
            crc = crc_i64(crc, ((int64_t)r->sub << 1) | r->tomb);
            crc = crc_i64(crc, r->create);
            crc = crc_i64(crc, r->version);
            crc = crc_i64(crc, r->lease);
            crc = crc_i64(crc, r->val ? r->val->len : 0);
            if (r->val) crc = crc_update(crc, r->val->data, r->val->len);
        }
    }
    *hash = crc;
    if (compacted_rev) *compacted_rev = m->compacted;
    return 0;
}
