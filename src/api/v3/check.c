/* check: the request checks etcd's v3rpc layer makes before anything is proposed (key.go:
 * checkRangeRequest, checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals), and
 * the nesting bound protobuf-c's recursive unpacker needs. */
#include <string.h>

#include "apply.h"
#include "common/alloc.h"

enum cn_v3_err cn_v3_check_range(const Etcdserverpb__RangeRequest *r)
{
    return r->key.len == 0 ? CN_V3_E_EMPTY_KEY : CN_V3_OK;
}

enum cn_v3_err cn_v3_check_put(const Etcdserverpb__PutRequest *r)
{
    if (r->key.len == 0) return CN_V3_E_EMPTY_KEY;
    if (r->ignore_value && r->value.len != 0) return CN_V3_E_VALUE_PROVIDED;
    if (r->ignore_lease && r->lease != 0) return CN_V3_E_LEASE_PROVIDED;
    return CN_V3_OK;
}

enum cn_v3_err cn_v3_check_delete(const Etcdserverpb__DeleteRangeRequest *r)
{
    return r->key.len == 0 ? CN_V3_E_EMPTY_KEY : CN_V3_OK;
}

static enum cn_v3_err check_op(const Etcdserverpb__RequestOp *u, uint64_t max_ops);

static enum cn_v3_err check_txn(const Etcdserverpb__TxnRequest *r, uint64_t max_ops)
{
    size_t opc = r->n_compare;
    if (opc < r->n_success) opc = r->n_success;
    if (opc < r->n_failure) opc = r->n_failure;
    if (opc > max_ops) return CN_V3_E_TOO_MANY_OPS;
    for (size_t i = 0; i < r->n_compare; i++)
        if (r->compare[i]->key.len == 0) return CN_V3_E_EMPTY_KEY;
    /* etcd passes maxTxnOps-opc down (which can go negative: a nested txn with any op then
     * fails), so nested Txns share the budget */
    uint64_t left = max_ops - opc;
    for (size_t i = 0; i < r->n_success; i++) {
        enum cn_v3_err e = check_op(r->success[i], left);
        if (e != CN_V3_OK) return e;
    }
    for (size_t i = 0; i < r->n_failure; i++) {
        enum cn_v3_err e = check_op(r->failure[i], left);
        if (e != CN_V3_OK) return e;
    }
    return CN_V3_OK;
}

static enum cn_v3_err check_op(const Etcdserverpb__RequestOp *u, uint64_t max_ops)
{
    switch (u->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return u->request_range ? cn_v3_check_range(u->request_range) : CN_V3_E_EMPTY_KEY;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        return u->request_put ? cn_v3_check_put(u->request_put) : CN_V3_E_EMPTY_KEY;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        return u->request_delete_range ? cn_v3_check_delete(u->request_delete_range)
                                       : CN_V3_E_EMPTY_KEY;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        return u->request_txn ? check_txn(u->request_txn, max_ops) : CN_V3_OK;
    default:
        return CN_V3_E_KEY_NOT_FOUND; /* etcd's default case: ErrGRPCKeyNotFound */
    }
}

/* ---- duplicate keys (etcd's checkIntervals) ----------------------------------------------- */

/* The puts and deletes of one branch list, collected for the overlap checks. Bounded by the op
 * budget (max_txn_ops at every level), so the quadratic checks stay small. */
struct keyset {
    const ProtobufCBinaryData **puts;
    size_t nputs, cputs;
    const Etcdserverpb__DeleteRangeRequest **dels;
    size_t ndels, cdels;
};

static void ks_free(struct keyset *k)
{
    cn_free(k->puts);
    cn_free(k->dels);
    memset(k, 0, sizeof(*k));
}

static void push_put(struct keyset *k, const ProtobufCBinaryData *key)
{
    if (k->nputs == k->cputs) {
        k->cputs = k->cputs ? k->cputs * 2 : 8;
        k->puts = cn_xrealloc(k->puts, k->cputs * sizeof(*k->puts));
    }
    k->puts[k->nputs++] = key;
}

static void push_del(struct keyset *k, const Etcdserverpb__DeleteRangeRequest *d)
{
    if (k->ndels == k->cdels) {
        k->cdels = k->cdels ? k->cdels * 2 : 8;
        k->dels = cn_xrealloc(k->dels, k->cdels * sizeof(*k->dels));
    }
    k->dels[k->ndels++] = d;
}

static int bcmp_(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c != 0) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static bool bin_eq(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Whether the delete d covers key k: its point, or [key, range_end) ("\0" as range_end: every
 * key >= key, etcd's affine interval to infinity). */
static bool del_covers(const Etcdserverpb__DeleteRangeRequest *d, const ProtobufCBinaryData *k)
{
    if (d->range_end.len == 0) return bin_eq(&d->key, k);
    if (bcmp_(k, &d->key) < 0) return false;
    if (d->range_end.len == 1 && d->range_end.data[0] == 0) return true;
    return bcmp_(k, &d->range_end) < 0;
}

static bool dels_cover(const struct keyset *k, const ProtobufCBinaryData *key)
{
    for (size_t i = 0; i < k->ndels; i++)
        if (del_covers(k->dels[i], key)) return true;
    return false;
}

static bool puts_have(const struct keyset *k, const ProtobufCBinaryData *key)
{
    for (size_t i = 0; i < k->nputs; i++)
        if (bin_eq(k->puts[i], key)) return true;
    return false;
}

/* out gets the puts and deletes of ops (nested Txns included), as etcd's checkIntervals
 * returns them. */
static enum cn_v3_err intervals(Etcdserverpb__RequestOp *const *ops, size_t n, struct keyset *out)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE &&
            ops[i]->request_delete_range)
            push_del(out, ops[i]->request_delete_range);
    enum cn_v3_err e = CN_V3_OK;
    for (size_t i = 0; i < n && e == CN_V3_OK; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN ||
            !ops[i]->request_txn)
            continue;
        const Etcdserverpb__TxnRequest *t = ops[i]->request_txn;
        struct keyset th = {0}, el = {0};
        e = intervals(t->success, t->n_success, &th);
        if (e == CN_V3_OK) e = intervals(t->failure, t->n_failure, &el);
        for (size_t j = 0; e == CN_V3_OK && j < th.nputs; j++) {
            if (puts_have(out, th.puts[j]) || dels_cover(out, th.puts[j]))
                e = CN_V3_E_DUPLICATE_KEY;
            else
                push_put(out, th.puts[j]);
        }
        for (size_t j = 0; e == CN_V3_OK && j < el.nputs; j++) {
            bool in_then = false;
            for (size_t q = 0; q < th.nputs; q++)
                if (bin_eq(th.puts[q], el.puts[j])) in_then = true;
            if ((puts_have(out, el.puts[j]) && !in_then) || dels_cover(out, el.puts[j]))
                e = CN_V3_E_DUPLICATE_KEY;
            else
                push_put(out, el.puts[j]);
        }
        for (size_t j = 0; e == CN_V3_OK && j < th.ndels; j++)
            push_del(out, th.dels[j]);
        for (size_t j = 0; e == CN_V3_OK && j < el.ndels; j++)
            push_del(out, el.dels[j]);
        ks_free(&th);
        ks_free(&el);
    }
    for (size_t i = 0; i < n && e == CN_V3_OK; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT ||
            !ops[i]->request_put)
            continue;
        const ProtobufCBinaryData *k = &ops[i]->request_put->key;
        if (puts_have(out, k) || dels_cover(out, k))
            e = CN_V3_E_DUPLICATE_KEY;
        else
            push_put(out, k);
    }
    return e;
}

enum cn_v3_err cn_v3_check_txn(const Etcdserverpb__TxnRequest *r, uint64_t max_ops)
{
    if (max_ops == 0) max_ops = 128;
    enum cn_v3_err e = check_txn(r, max_ops);
    if (e != CN_V3_OK) return e;
    struct keyset k = {0};
    e = intervals(r->success, r->n_success, &k);
    ks_free(&k);
    if (e != CN_V3_OK) return e;
    e = intervals(r->failure, r->n_failure, &k);
    ks_free(&k);
    return e;
}

/* ---- nesting depth -------------------------------------------------------------------------- */

static bool rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *d, uint32_t num)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == num) return &d->fields[i];
    return NULL;
}

static bool depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                     unsigned left)
{
    while (p < end) {
        uint64_t tag;
        if (!rd_varint(&p, end, &tag)) return true; /* malformed: the unpacker refuses it */
        unsigned wt = (unsigned)(tag & 7);
        uint64_t v;
        switch (wt) {
        case 0:
            if (!rd_varint(&p, end, &v)) return true;
            break;
        case 1:
            if (end - p < 8) return true;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return true;
            p += 4;
            break;
        case 2: {
            if (!rd_varint(&p, end, &v) || v > (uint64_t)(end - p)) return true;
            const ProtobufCFieldDescriptor *f = field_of(d, (uint32_t)(tag >> 3));
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (left == 0) return false;
                if (!depth_ok(f->descriptor, p, p + v, left - 1)) return false;
            }
            p += v;
            break;
        }
        default:
            return true;
        }
    }
    return true;
}

bool cn_v3_pb_depth_ok(const ProtobufCMessageDescriptor *d, const void *p, size_t len,
                       unsigned max_depth)
{
    return depth_ok(d, p, (const uint8_t *)p + len, max_depth);
}
