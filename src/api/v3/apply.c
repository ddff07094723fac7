/* apply: etcd 3.4's applierV3backend over mvcc (see apply.h). The shapes follow etcd's
 * apply.go closely, since clients see every one of its choices: the Range limit+1 probe, the
 * default ascending sort for a non-key target, the Txn path computed before anything is written,
 * the header revisions of each op. */
#include "apply.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#define MAX_TXN_DEPTH 64 /* nested Txn levels a command may carry (protobuf-c recursion) */

void cn_v3_apply_init(struct cn_v3_apply *a, struct cn_mvcc *kv, struct cn_mvcc_lessor *lessor)
{
    memset(a, 0, sizeof(*a));
    a->kv = kv;
    a->lessor = lessor;
}

void cn_v3_apply_free(struct cn_v3_apply *a)
{
    cn_arena_free(&a->arena);
    cn_mvcc_range_result_free(&a->rr);
    cn_mvcc_range_result_free(&a->del);
}

void cn_v3_cmd_head(struct cn_buf *out, enum cn_v3_kind kind)
{
    cn_buf_put_u8(out, CN_V3_CMD_TAG);
    cn_buf_put_u8(out, (uint8_t)kind);
}

int64_t cn_v3_min_lease_ttl(unsigned election_ms, unsigned heartbeat_ms)
{
    if (heartbeat_ms == 0) heartbeat_ms = 100;
    uint64_t ticks = election_ms / heartbeat_ms;
    uint64_t ms = (3 * ticks) / 2 * heartbeat_ms;
    return (int64_t)((ms + 999) / 1000);
}

static int64_t now_ms(struct cn_v3_apply *a)
{
    return a->now_ms ? a->now_ms(a->ctx) : 0;
}

/* ---- mvcc errors as etcd's ------------------------------------------------------------- */

static enum cn_v3_err err_of(int rc)
{
    switch (rc) {
    case 0:
        return CN_V3_OK;
    case CN_MVCC_ERR_COMPACTED:
        return CN_V3_E_COMPACTED;
    case CN_MVCC_ERR_FUTURE_REV:
        return CN_V3_E_FUTURE_REV;
    case CN_MVCC_ERR_KEY_NOT_FOUND:
        return CN_V3_E_KEY_NOT_FOUND;
    case CN_MVCC_ERR_LEASE_NOT_FOUND:
    case CN_MVCC_ERR_LEASE_EXPIRED:
        return CN_V3_E_LEASE_NOT_FOUND;
    case CN_MVCC_ERR_LEASE_EXISTS:
        return CN_V3_E_LEASE_EXIST;
    case CN_MVCC_ERR_LEASE_TTL_TOO_LARGE:
        return CN_V3_E_LEASE_TTL_TOO_LARGE;
    case CN_ERR_INVAL:
        return CN_V3_E_EMPTY_KEY;
    case CN_ERR_TOO_LARGE:
        return CN_V3_E_REQUEST_TOO_LARGE;
    default:
        return CN_V3_E_CORRUPT;
    }
}

/* ---- building responses ------------------------------------------------------------------ */

static struct cn_str bin(ProtobufCBinaryData b)
{
    return (struct cn_str){(const char *)b.data, b.len};
}

/* etcd's mkGteRange: a range_end of one zero byte means ">= key"; mvcc takes it as is. */
static struct cn_str range_end(ProtobufCBinaryData b)
{
    return bin(b);
}

static Etcdserverpb__ResponseHeader *header(struct cn_arena *ar, int64_t rev)
{
    Etcdserverpb__ResponseHeader *h = CN_ARENA_NEW(ar, Etcdserverpb__ResponseHeader);
    etcdserverpb__response_header__init(h);
    h->revision = rev;
    return h;
}

/* A kv of a response. copy: its bytes are copied into the arena, for a kv read inside a write
 * txn (mvcc's views die with the txn's next write or its end); otherwise they are borrowed. */
static Mvccpb__KeyValue *kv_msg(struct cn_arena *ar, const struct cn_mvcc_kv *kv, bool keys_only,
                                bool copy)
{
    Mvccpb__KeyValue *m = CN_ARENA_NEW(ar, Mvccpb__KeyValue);
    mvccpb__key_value__init(m);
    m->key.data = copy ? cn_arena_memdup(ar, kv->key, kv->key_len) : (uint8_t *)kv->key;
    m->key.len = kv->key_len;
    if (!keys_only) {
        m->value.data = copy ? cn_arena_memdup(ar, kv->value, kv->value_len) : (uint8_t *)kv->value;
        m->value.len = kv->value_len;
    }
    m->create_revision = kv->create_revision;
    m->mod_revision = kv->mod_revision;
    m->version = kv->version;
    m->lease = kv->lease;
    return m;
}

/* ---- Range --------------------------------------------------------------------------------- */

static int cmp_i64(int64_t x, int64_t y)
{
    return x < y ? -1 : x > y;
}

static int cmp_bytes(const char *p, size_t n, const char *q, size_t m)
{
    int c = memcmp(p, q, n < m ? n : m);
    if (c != 0) return c;
    return n < m ? -1 : n > m;
}

/* qsort is not stable; etcd's sort.Sort is not either, but a tie keeps key order in practice
 * for the common case of equal targets only when we break ties by key, which we do (keys are
 * unique, so the order is total and every member gives the same). */
static int sort_target;
static int sort_cmp(const void *x, const void *y)
{
    const struct cn_mvcc_kv *a = x, *b = y;
    int c = 0;
    switch (sort_target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
        c = cmp_i64(a->version, b->version);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
        c = cmp_i64(a->create_revision, b->create_revision);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
        c = cmp_i64(a->mod_revision, b->mod_revision);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
        c = cmp_bytes(a->value, a->value_len, b->value, b->value_len);
        break;
    default:
        break;
    }
    return c != 0 ? c : cmp_bytes(a->key, a->key_len, b->key, b->key_len);
}

static void reverse(struct cn_mvcc_kv *kvs, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        struct cn_mvcc_kv t = kvs[i];
        kvs[i] = kvs[n - 1 - i];
        kvs[n - 1 - i] = t;
    }
}

/* etcd's applierV3backend.Range, in t when a write txn is open. */
static enum cn_v3_err do_range(struct cn_v3_apply *a, struct cn_mvcc_txn *t, struct cn_arena *ar,
                               const Etcdserverpb__RangeRequest *r,
                               Etcdserverpb__RangeResponse **out)
{
    bool filtered = r->min_mod_revision != 0 || r->max_mod_revision != 0 ||
                    r->min_create_revision != 0 || r->max_create_revision != 0;
    int64_t limit = r->limit;
    if (r->sort_order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE || filtered) limit = 0;
    if (limit > 0) limit++;
    struct cn_mvcc_range_req q = {
        .key = bin(r->key),
        .range_end = range_end(r->range_end),
        .rev = r->revision,
        .limit = limit,
        .keys_only = r->keys_only,
        .count_only = r->count_only,
        .min_mod_revision = r->min_mod_revision,
        .max_mod_revision = r->max_mod_revision,
        .min_create_revision = r->min_create_revision,
        .max_create_revision = r->max_create_revision,
    };
    struct cn_mvcc_range_result *rr = &a->rr;
    int rc = t ? cn_mvcc_txn_range(t, &q, rr) : cn_mvcc_range(a->kv, &q, rr);
    if (rc != 0) return err_of(rc);

    int order = r->sort_order;
    if (r->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
        order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE)
        order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    if (order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE && rr->n > 1) {
        if (r->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY) {
            sort_target = r->sort_target;
            qsort(rr->kvs, rr->n, sizeof(rr->kvs[0]), sort_cmp);
        }
        if (order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND) reverse(rr->kvs, rr->n);
    }

    Etcdserverpb__RangeResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__RangeResponse);
    etcdserverpb__range_response__init(resp);
    size_t n = rr->n;
    if (r->limit > 0 && n > (uint64_t)r->limit) {
        n = (size_t)r->limit;
        resp->more = true;
    }
    resp->header = header(ar, rr->rev);
    resp->count = rr->count;
    if (n > 0) {
        resp->kvs = cn_arena_calloc(ar, n, sizeof(*resp->kvs));
        for (size_t i = 0; i < n; i++)
            resp->kvs[i] = kv_msg(ar, &rr->kvs[i], r->keys_only, t != NULL);
        resp->n_kvs = n;
    }
    *out = resp;
    return CN_V3_OK;
}

enum cn_v3_err cn_v3_range(struct cn_v3_apply *a, struct cn_arena *arena,
                           const Etcdserverpb__RangeRequest *r, Etcdserverpb__RangeResponse **out)
{
    return do_range(a, NULL, arena, r, out);
}

/* ---- Put and DeleteRange ------------------------------------------------------------------- */

static unsigned put_flags(const Etcdserverpb__PutRequest *p)
{
    return (p->ignore_value ? CN_MVCC_PUT_IGNORE_VALUE : 0u) |
           (p->ignore_lease ? CN_MVCC_PUT_IGNORE_LEASE : 0u);
}

static enum cn_v3_err do_put(struct cn_v3_apply *a, struct cn_mvcc_txn *t, struct cn_arena *ar,
                             const Etcdserverpb__PutRequest *p, Etcdserverpb__PutResponse **out)
{
    (void)a;
    struct cn_mvcc_kv prev;
    bool has_prev = false;
    int rc = cn_mvcc_txn_put(t, bin(p->key), bin(p->value), p->lease, put_flags(p),
                             p->prev_kv ? &prev : NULL, &has_prev);
    if (rc != 0) return err_of(rc);
    Etcdserverpb__PutResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__PutResponse);
    etcdserverpb__put_response__init(resp);
    resp->header = header(ar, cn_mvcc_txn_rev(t));
    if (p->prev_kv && has_prev) resp->prev_kv = kv_msg(ar, &prev, false, true);
    *out = resp;
    return CN_V3_OK;
}

static enum cn_v3_err do_delete(struct cn_v3_apply *a, struct cn_mvcc_txn *t, struct cn_arena *ar,
                                const Etcdserverpb__DeleteRangeRequest *d,
                                Etcdserverpb__DeleteRangeResponse **out)
{
    int64_t deleted = 0;
    int rc = cn_mvcc_txn_delete_range(t, bin(d->key), range_end(d->range_end),
                                      d->prev_kv ? &a->del : NULL, &deleted);
    if (rc != 0) return err_of(rc);
    Etcdserverpb__DeleteRangeResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__DeleteRangeResponse);
    etcdserverpb__delete_range_response__init(resp);
    resp->header = header(ar, cn_mvcc_txn_rev(t));
    resp->deleted = deleted;
    if (d->prev_kv && a->del.n > 0) {
        resp->prev_kvs = cn_arena_calloc(ar, a->del.n, sizeof(*resp->prev_kvs));
        for (size_t i = 0; i < a->del.n; i++)
            resp->prev_kvs[i] = kv_msg(ar, &a->del.kvs[i], false, true);
        resp->n_prev_kvs = a->del.n;
    }
    *out = resp;
    return CN_V3_OK;
}

/* ---- Txn ----------------------------------------------------------------------------------- */

/* The compare of one key (etcd's applyCompare): every key of its range must satisfy it; an
 * empty range compares a zero kv, except for a VALUE target, which fails. */
static bool compare_kv(const Etcdserverpb__Compare *c, const struct cn_mvcc_kv *kv)
{
    int result = 0;
    int64_t want = 0;
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE: {
        const ProtobufCBinaryData *v =
            c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE ? &c->value : NULL;
        result =
            cmp_bytes(kv->value, kv->value_len, v ? (const char *)v->data : "", v ? v->len : 0);
        break;
    }
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
            want = c->create_revision;
        result = cmp_i64(kv->create_revision, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
            want = c->mod_revision;
        result = cmp_i64(kv->mod_revision, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION) want = c->version;
        result = cmp_i64(kv->version, want);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE) want = c->lease;
        result = cmp_i64(kv->lease, want);
        break;
    default:
        break;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
        return result == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
        return result != 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
        return result > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS:
        return result < 0;
    default:
        return true;
    }
}

static bool apply_compare(struct cn_v3_apply *a, const Etcdserverpb__Compare *c)
{
    struct cn_mvcc_range_req q = {.key = bin(c->key), .range_end = range_end(c->range_end)};
    if (cn_mvcc_range(a->kv, &q, &a->rr) != 0) return false;
    if (a->rr.n == 0) {
        if (c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) return false;
        static const struct cn_mvcc_kv zero = {.key = "", .value = ""};
        return compare_kv(c, &zero);
    }
    for (size_t i = 0; i < a->rr.n; i++)
        if (!compare_kv(c, &a->rr.kvs[i])) return false;
    return true;
}

/* The branch every level of the Txn takes, decided before anything is written (etcd's
 * compareToPath): path[0] is this level's, then each nested Txn of the taken branch in order,
 * depth first. */
struct path {
    bool *v;
    size_t n, cap;
};

static void path_push(struct path *p, struct cn_arena *ar, bool b)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        bool *v = cn_arena_calloc(ar, cap, sizeof(bool));
        if (p->n) memcpy(v, p->v, p->n * sizeof(bool));
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = b;
}

static void compare_to_path(struct cn_v3_apply *a, struct cn_arena *ar,
                            const Etcdserverpb__TxnRequest *t, struct path *p)
{
    bool ok = true;
    for (size_t i = 0; i < t->n_compare && ok; i++)
        ok = apply_compare(a, t->compare[i]);
    path_push(p, ar, ok);
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
            ops[i]->request_txn)
            compare_to_path(a, ar, ops[i]->request_txn, p);
}

/* etcd's checkRequests with checkRequestPut and checkRequestRange over the taken path: a Txn
 * fails before it writes. *at walks the path. */
static enum cn_v3_err check_path(struct cn_v3_apply *a, const Etcdserverpb__TxnRequest *t,
                                 const struct path *p, size_t *at, bool write)
{
    bool ok = p->v[(*at)++];
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *op = ops[i];
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            if (op->request_txn) {
                enum cn_v3_err e = check_path(a, op->request_txn, p, at, write);
                if (e != CN_V3_OK) return e;
            }
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
            const Etcdserverpb__PutRequest *pr = op->request_put;
            if (!write || !pr) break;
            int rc = cn_mvcc_txn_put_check(a->kv, NULL, bin(pr->key), pr->value.len, pr->lease,
                                           put_flags(pr));
            if (rc != 0) return err_of(rc);
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
            const Etcdserverpb__RangeRequest *rr = op->request_range;
            if (!rr || rr->revision == 0) break;
            if (rr->revision > cn_mvcc_rev(a->kv)) return CN_V3_E_FUTURE_REV;
            if (rr->revision < cn_mvcc_compacted_rev(a->kv)) return CN_V3_E_COMPACTED;
            break;
        }
        default:
            break;
        }
    }
    return CN_V3_OK;
}

/* Runs the taken branch of t (and its nested Txns) in the write txn w (NULL: read-only, the ops
 * are all ranges). */
static void apply_txn_ops(struct cn_v3_apply *a, struct cn_mvcc_txn *w, struct cn_arena *ar,
                          const Etcdserverpb__TxnRequest *t, const struct path *p, size_t *at,
                          Etcdserverpb__TxnResponse *resp)
{
    bool ok = p->v[(*at)++];
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    resp->succeeded = ok;
    resp->header = header(ar, 0);
    if (n == 0) return;
    resp->responses = cn_arena_calloc(ar, n, sizeof(*resp->responses));
    resp->n_responses = n;
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *op = ops[i];
        Etcdserverpb__ResponseOp *ro = CN_ARENA_NEW(ar, Etcdserverpb__ResponseOp);
        etcdserverpb__response_op__init(ro);
        resp->responses[i] = ro;
        enum cn_v3_err e = CN_V3_OK;
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
            Etcdserverpb__RangeRequest empty = ETCDSERVERPB__RANGE_REQUEST__INIT;
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            e = do_range(a, w, ar, op->request_range ? op->request_range : &empty,
                         &ro->response_range);
            break;
        }
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
            e = do_put(a, w, ar, op->request_put, &ro->response_put);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
            e = do_delete(a, w, ar, op->request_delete_range, &ro->response_delete_range);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
            ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
            Etcdserverpb__TxnResponse *sub = CN_ARENA_NEW(ar, Etcdserverpb__TxnResponse);
            etcdserverpb__txn_response__init(sub);
            ro->response_txn = sub;
            apply_txn_ops(a, w, ar, op->request_txn, p, at, sub);
            break;
        }
        default:
            break;
        }
        /* the checks above make these impossible (etcd panics here) */
        if (e != CN_V3_OK)
            CN_LOGE("v3", "a txn op failed after its checks passed: %s", cn_v3_err_msg(e));
    }
}

static bool ops_readonly(Etcdserverpb__RequestOp *const *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) return false;
    return true;
}

bool cn_v3_txn_is_readonly(const Etcdserverpb__TxnRequest *t)
{
    return ops_readonly(t->success, t->n_success) && ops_readonly(t->failure, t->n_failure);
}

static enum cn_v3_err do_txn(struct cn_v3_apply *a, struct cn_arena *ar,
                             const Etcdserverpb__TxnRequest *t, Etcdserverpb__TxnResponse **out)
{
    bool write = !cn_v3_txn_is_readonly(t);
    struct path p = {0};
    compare_to_path(a, ar, t, &p);
    size_t at = 0;
    enum cn_v3_err e = check_path(a, t, &p, &at, write);
    if (e != CN_V3_OK) return e;

    Etcdserverpb__TxnResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__TxnResponse);
    etcdserverpb__txn_response__init(resp);
    at = 0;
    if (write) {
        struct cn_mvcc_txn *w = cn_mvcc_txn_begin(a->kv);
        apply_txn_ops(a, w, ar, t, &p, &at, resp);
        const struct cn_mvcc_event *ev;
        size_t nev;
        int64_t rev = cn_mvcc_txn_end(w, &ev, &nev);
        resp->header->revision = rev;
        if (nev > 0 && a->on_events) a->on_events(a->events_ctx, ev, nev, rev);
    } else {
        apply_txn_ops(a, NULL, ar, t, &p, &at, resp);
        resp->header->revision = cn_mvcc_rev(a->kv);
    }
    *out = resp;
    return CN_V3_OK;
}

enum cn_v3_err cn_v3_txn_read(struct cn_v3_apply *a, struct cn_arena *arena,
                              const Etcdserverpb__TxnRequest *t, Etcdserverpb__TxnResponse **out)
{
    return do_txn(a, arena, t, out);
}

/* ---- the command ------------------------------------------------------------------------- */

static void lease_revoked_keys(struct cn_v3_apply *a, const struct cn_mvcc_event *ev, size_t n,
                               int64_t rev)
{
    if (n > 0 && a->on_events) a->on_events(a->events_ctx, ev, n, rev);
}

int cn_v3_apply_cmd(struct cn_v3_apply *a, const void *cmd, size_t len, struct cn_v3_result *res)
{
    const uint8_t *p = cmd;
    if (len < CN_V3_CMD_HEAD || p[0] != CN_V3_CMD_TAG) return CN_ERR_CORRUPT;
    enum cn_v3_kind kind = p[1];
    const uint8_t *body = p + CN_V3_CMD_HEAD;
    size_t blen = len - CN_V3_CMD_HEAD;
    cn_arena_reset(&a->arena);
    struct cn_arena *ar = &a->arena;
    memset(res, 0, sizeof(*res));
    res->kind = kind;

    const ProtobufCMessageDescriptor *d;
    switch (kind) {
    case CN_V3_PUT:
        d = &etcdserverpb__put_request__descriptor;
        break;
    case CN_V3_DELETE_RANGE:
        d = &etcdserverpb__delete_range_request__descriptor;
        break;
    case CN_V3_TXN:
        d = &etcdserverpb__txn_request__descriptor;
        break;
    case CN_V3_COMPACTION:
        d = &etcdserverpb__compaction_request__descriptor;
        break;
    case CN_V3_LEASE_GRANT:
        d = &etcdserverpb__lease_grant_request__descriptor;
        break;
    case CN_V3_LEASE_REVOKE:
        d = &etcdserverpb__lease_revoke_request__descriptor;
        break;
    default:
        return CN_ERR_CORRUPT;
    }
    if (!cn_v3_pb_depth_ok(d, body, blen, MAX_TXN_DEPTH * 2 + 4)) return CN_ERR_CORRUPT;
    ProtobufCMessage *req = protobuf_c_message_unpack(d, NULL, blen, body);
    if (!req) return CN_ERR_CORRUPT;

    enum cn_v3_err e = CN_V3_OK;
    switch (kind) {
    case CN_V3_PUT: {
        const Etcdserverpb__PutRequest *pr = (const void *)req;
        int rc = cn_mvcc_txn_put_check(a->kv, NULL, bin(pr->key), pr->value.len, pr->lease,
                                       put_flags(pr));
        if (rc != 0) {
            e = err_of(rc);
            break;
        }
        struct cn_mvcc_txn *w = cn_mvcc_txn_begin(a->kv);
        Etcdserverpb__PutResponse *resp = NULL;
        e = do_put(a, w, ar, pr, &resp);
        const struct cn_mvcc_event *ev;
        size_t nev;
        int64_t rev = cn_mvcc_txn_end(w, &ev, &nev);
        if (nev > 0 && a->on_events) a->on_events(a->events_ctx, ev, nev, rev);
        res->resp = (ProtobufCMessage *)resp;
        break;
    }
    case CN_V3_DELETE_RANGE: {
        struct cn_mvcc_txn *w = cn_mvcc_txn_begin(a->kv);
        Etcdserverpb__DeleteRangeResponse *resp = NULL;
        e = do_delete(a, w, ar, (const void *)req, &resp);
        const struct cn_mvcc_event *ev;
        size_t nev;
        int64_t rev = cn_mvcc_txn_end(w, &ev, &nev);
        if (nev > 0 && a->on_events) a->on_events(a->events_ctx, ev, nev, rev);
        res->resp = (ProtobufCMessage *)resp;
        break;
    }
    case CN_V3_TXN: {
        Etcdserverpb__TxnResponse *resp = NULL;
        e = do_txn(a, ar, (const void *)req, &resp);
        res->resp = (ProtobufCMessage *)resp;
        break;
    }
    case CN_V3_COMPACTION: {
        const Etcdserverpb__CompactionRequest *cr = (const void *)req;
        int rc = cn_mvcc_compact(a->kv, cr->revision);
        if (rc != 0) {
            e = err_of(rc);
            break;
        }
        Etcdserverpb__CompactionResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__CompactionResponse);
        etcdserverpb__compaction_response__init(resp);
        resp->header = header(ar, cn_mvcc_rev(a->kv));
        res->resp = (ProtobufCMessage *)resp;
        break;
    }
    case CN_V3_LEASE_GRANT: {
        const Etcdserverpb__LeaseGrantRequest *lr = (const void *)req;
        int64_t ttl = 0;
        /* the proposer raised the TTL to the minimum already: 1 keeps it as proposed */
        int rc = cn_mvcc_lease_grant(a->kv, lr->id, lr->ttl, 1, &ttl);
        if (rc != 0) {
            e = err_of(rc);
            break;
        }
        if (a->lessor) cn_mvcc_lessor_grant(a->lessor, lr->id, ttl, now_ms(a));
        Etcdserverpb__LeaseGrantResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__LeaseGrantResponse);
        etcdserverpb__lease_grant_response__init(resp);
        resp->header = header(ar, cn_mvcc_rev(a->kv));
        resp->id = lr->id;
        resp->ttl = ttl;
        resp->error = (char *)"";
        res->resp = (ProtobufCMessage *)resp;
        break;
    }
    case CN_V3_LEASE_REVOKE: {
        const Etcdserverpb__LeaseRevokeRequest *lr = (const void *)req;
        int64_t rev = 0;
        const struct cn_mvcc_event *ev = NULL;
        size_t nev = 0;
        int rc = cn_mvcc_lease_revoke(a->kv, lr->id, &rev, &ev, &nev);
        if (rc != 0) {
            e = err_of(rc);
            break;
        }
        if (a->lessor) cn_mvcc_lessor_revoke(a->lessor, lr->id);
        lease_revoked_keys(a, ev, nev, rev);
        Etcdserverpb__LeaseRevokeResponse *resp =
            CN_ARENA_NEW(ar, Etcdserverpb__LeaseRevokeResponse);
        etcdserverpb__lease_revoke_response__init(resp);
        resp->header = header(ar, cn_mvcc_rev(a->kv));
        res->resp = (ProtobufCMessage *)resp;
        break;
    }
    }
    protobuf_c_message_free_unpacked(req, NULL);
    res->err = e;
    if (e != CN_V3_OK) res->resp = NULL;
    return 0;
}
