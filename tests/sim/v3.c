/* v3: the v3 half of the simulation. Each member's state machine is the server's composite
 * (server/fsm.h: the sim's v2 part and the server's own v3 part, fsm_v3.c over src/mvcc through
 * api/v3/apply.c, snapshot "CNFS" holding both); this file holds that v3 part as the member runs
 * it, observed by a thin wrapper that checks every reply, the clients' v3 writes (encoded as
 * api/v3's call.c proposes them: tag, kind, the request's protobuf bytes, after the node's entry
 * header) and a model of the key space the replies and the final states must agree with.
 *
 * Checks:
 *   - every member that applies the v3 entry at an index (a replay after a restart, or after a
 *     snapshot install, included) answers it with the same reply (kind, error, the whole
 *     response message's bytes: header revision, prev_kv, deleted count, txn branch and
 *     sub-responses);
 *   - the first application of each v3 entry agrees with the model (error, header revision,
 *     txn branch taken, deleted count);
 *   - a v3 write is acknowledged with the reply of the entry the proposer just applied, which
 *     carries the bytes it proposed (the index it was acknowledged at is where it was applied);
 *   - at the end every member's mvcc has the same hash (cn_mvcc_hash), current and compacted
 *     revisions, and the model's keys (value, create/mod revision, version, lease) and leases;
 *     every acknowledged put not overwritten or deleted since (per the model) is there with the
 *     mod_revision it was acknowledged with. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/v3/apply.h"
#include "common/alloc.h"
#include "common/err.h"
#include "server/fsm_v3.h"
#include "sim_int.h"

#define V3_KEYS   8  /* the keys "k0".."k7" */
#define V3_VALMAX 24 /* values the clients write are shorter */
_Static_assert(sizeof(((struct sim_req *)0)->v3_val) == V3_VALMAX, "sim_req's put value");

/* ---- a member's v3 part ------------------------------------------------------------------ */

struct sim_v3 {
    struct cn_fsm fsm; /* the v3 part given to cn_fsm_both: forwards to inner, checks replies */
    struct sim *s;
    int member;
    struct cn_mvcc *kv;
    struct cn_mvcc_lessor *lessor;
    struct cn_fsm_v3 inner; /* the server's v3 part, as is */
    struct sim_v3_result res;
    struct cn_buf packed;
};

struct mkey {
    bool live;
    char val[V3_VALMAX];
    size_t vlen;
    int64_t create, mod, version, lease;
    uint64_t index; /* the entry that last wrote or deleted it */
};

struct mlease {
    int64_t id, ttl;
};

struct acked_put {
    uint64_t index;
    int key;
    char val[V3_VALMAX];
    size_t vlen;
    int64_t rev;
};

struct prop_slot {
    uint64_t h, prop;
};

/* The world's v3 side: the model, the replies by index, the proposals by entry bytes. */
struct sim_v3_world {
    struct mkey k[V3_KEYS];
    struct mlease *leases;
    size_t n_leases, cap_leases;
    int64_t rev, compacted;
    uint64_t index;   /* the last v3 entry the model applied */
    uint64_t *digest; /* by raft index: the reply's digest (0: no v3 entry applied there yet) */
    size_t n_digest;
    struct prop_slot *props; /* open addressing by the hash of the entry's bytes */
    size_t n_props, cap_props;
    struct acked_put *puts;
    size_t n_puts, cap_puts;
    struct cn_buf empty_snap; /* --break-v3-snapshot: the v3 part "saves" an empty space */
};

static int64_t v3_now_ms(void *ctx)
{
    return (int64_t)((struct sim *)ctx)->now;
}

static void grow_digest(struct sim_v3_world *w, uint64_t index)
{
    if (index < w->n_digest) return;
    size_t k = w->n_digest ? w->n_digest : 1024;
    while (k <= index)
        k *= 2;
    w->digest = cn_xrealloc(w->digest, k * sizeof(uint64_t));
    memset(w->digest + w->n_digest, 0, (k - w->n_digest) * sizeof(uint64_t));
    w->n_digest = k;
}

static uint64_t reply_digest(struct sim_v3 *v, const struct cn_v3_result *r)
{
    uint8_t head[2] = {(uint8_t)r->kind, (uint8_t)r->err};
    uint64_t h = sim_hash(0, head, sizeof(head));
    if (r->resp) {
        cn_buf_reset(&v->packed);
        size_t n = protobuf_c_message_get_packed_size(r->resp);
        cn_buf_reserve(&v->packed, n);
        v->packed.len = protobuf_c_message_pack(r->resp, (uint8_t *)v->packed.p);
        h = sim_hash(h, v->packed.p, v->packed.len);
    }
    return h | 1;
}

/* ---- the model ------------------------------------------------------------------------------ */

struct expect {
    enum cn_v3_err err;
    int64_t rev;
    bool succeeded;
    int64_t deleted;
    /* a Put with prev_kv: the key before it (has_prev false: none); a DeleteRange with prev_kv:
     * deleted prev_kvs */
    bool want_prev, has_prev;
    int64_t prev_mod, prev_version;
};

static const char *key_name(int k)
{
    static const char *names[V3_KEYS + 1] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"};
    return names[k];
}

static int bcmp_(const void *p, size_t n, const void *q, size_t m)
{
    int c = memcmp(p, q, n < m ? n : m);
    if (c != 0) return c;
    return n < m ? -1 : n > m;
}

/* Whether model key k falls in [key, end) (end empty: key itself; "\0": >= key). */
static bool in_range(int k, ProtobufCBinaryData key, ProtobufCBinaryData end)
{
    const char *name = key_name(k);
    int lo = bcmp_(name, 2, key.data, key.len);
    if (end.len == 0) return lo == 0;
    if (lo < 0) return false;
    if (end.len == 1 && end.data[0] == 0) return true;
    return bcmp_(name, 2, end.data, end.len) < 0;
}

static int key_of(ProtobufCBinaryData key)
{
    for (int k = 0; k < V3_KEYS; k++)
        if (bcmp_(key_name(k), 2, key.data, key.len) == 0) return k;
    return -1;
}

static struct mlease *lease_find(struct sim_v3_world *w, int64_t id)
{
    for (size_t i = 0; i < w->n_leases; i++)
        if (w->leases[i].id == id) return &w->leases[i];
    return NULL;
}

static bool put_ok(struct sim_v3_world *w, const Etcdserverpb__PutRequest *p)
{
    return p->lease == 0 || lease_find(w, p->lease) != NULL;
}

static void model_put(struct sim *s, struct sim_v3_world *w, const Etcdserverpb__PutRequest *p,
                      int64_t rev, uint64_t index)
{
    int k = key_of(p->key);
    if (k < 0 || p->value.len > V3_VALMAX) {
        sim_fail(s, "v3 model: a put outside the model's keys");
        return;
    }
    struct mkey *x = &w->k[k];
    if (!x->live) {
        x->live = true;
        x->create = rev;
        x->version = 0;
    }
    x->version++;
    x->mod = rev;
    x->lease = p->lease;
    memcpy(x->val, p->value.data, p->value.len);
    x->vlen = p->value.len;
    x->index = index;
}

static int64_t model_delete(struct sim_v3_world *w, ProtobufCBinaryData key,
                            ProtobufCBinaryData end, uint64_t index)
{
    int64_t n = 0;
    for (int k = 0; k < V3_KEYS; k++)
        if (w->k[k].live && in_range(k, key, end)) {
            w->k[k].live = false;
            w->k[k].index = index;
            n++;
        }
    return n;
}

static bool model_compare(struct sim_v3_world *w, const Etcdserverpb__Compare *c)
{
    int k = key_of(c->key);
    struct mkey zero = {0};
    const struct mkey *x = k >= 0 && w->k[k].live ? &w->k[k] : NULL;
    if (x == NULL && c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) return false;
    if (x == NULL) x = &zero;
    int r = 0;
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
        r = bcmp_(x->val, x->vlen, c->value.data, c->value.len);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        r = x->version < c->version ? -1 : x->version > c->version;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        r = x->mod < c->mod_revision ? -1 : x->mod > c->mod_revision;
        break;
    default:
        break;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
        return r == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
        return r != 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
        return r > 0;
    default:
        return r < 0;
    }
}

static void model_txn(struct sim *s, struct sim_v3_world *w, const Etcdserverpb__TxnRequest *t,
                      uint64_t index, struct expect *x)
{
    bool ok = true;
    for (size_t i = 0; i < t->n_compare && ok; i++)
        ok = model_compare(w, t->compare[i]);
    x->succeeded = ok;
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT &&
            !put_ok(w, ops[i]->request_put)) {
            x->err = CN_V3_E_LEASE_NOT_FOUND;
            return;
        }
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
            model_put(s, w, ops[i]->request_put, w->rev + 1, index);
            changed = true;
        } else if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) {
            const Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
            if (model_delete(w, d->key, d->range_end, index) > 0) changed = true;
        }
    }
    if (changed) w->rev++;
    x->rev = w->rev;
}

/* Applies a v3 command (tag and kind first) to the model: what the reply must say. */
static bool model_apply(struct sim *s, struct sim_v3_world *w, const uint8_t *cmd, size_t len,
                        uint64_t index, struct expect *x)
{
    memset(x, 0, sizeof(*x));
    if (len < CN_V3_CMD_HEAD) return false;
    const uint8_t *b = cmd + CN_V3_CMD_HEAD;
    size_t n = len - CN_V3_CMD_HEAD;
    switch (cmd[1]) {
    case CN_V3_PUT: {
        Etcdserverpb__PutRequest *p = etcdserverpb__put_request__unpack(NULL, n, b);
        if (!p) return false;
        if (!put_ok(w, p)) {
            x->err = CN_V3_E_LEASE_NOT_FOUND;
        } else {
            int k = key_of(p->key);
            x->want_prev = p->prev_kv;
            if (k >= 0 && w->k[k].live) {
                x->has_prev = true;
                x->prev_mod = w->k[k].mod;
                x->prev_version = w->k[k].version;
            }
            model_put(s, w, p, ++w->rev, index);
            x->rev = w->rev;
        }
        etcdserverpb__put_request__free_unpacked(p, NULL);
        return true;
    }
    case CN_V3_DELETE_RANGE: {
        Etcdserverpb__DeleteRangeRequest *d =
            etcdserverpb__delete_range_request__unpack(NULL, n, b);
        if (!d) return false;
        x->deleted = model_delete(w, d->key, d->range_end, index);
        x->want_prev = d->prev_kv;
        if (x->deleted > 0) w->rev++;
        x->rev = w->rev;
        etcdserverpb__delete_range_request__free_unpacked(d, NULL);
        return true;
    }
    case CN_V3_TXN: {
        Etcdserverpb__TxnRequest *t = etcdserverpb__txn_request__unpack(NULL, n, b);
        if (!t) return false;
        model_txn(s, w, t, index, x);
        etcdserverpb__txn_request__free_unpacked(t, NULL);
        return true;
    }
    case CN_V3_COMPACTION: {
        Etcdserverpb__CompactionRequest *c = etcdserverpb__compaction_request__unpack(NULL, n, b);
        if (!c) return false;
        if (c->revision <= w->compacted)
            x->err = CN_V3_E_COMPACTED;
        else if (c->revision > w->rev)
            x->err = CN_V3_E_FUTURE_REV;
        else
            w->compacted = c->revision;
        x->rev = w->rev;
        etcdserverpb__compaction_request__free_unpacked(c, NULL);
        return true;
    }
    case CN_V3_LEASE_GRANT: {
        Etcdserverpb__LeaseGrantRequest *g = etcdserverpb__lease_grant_request__unpack(NULL, n, b);
        if (!g) return false;
        if (g->id <= 0) {
            x->err = CN_V3_E_LEASE_NOT_FOUND;
        } else if (lease_find(w, g->id)) {
            x->err = CN_V3_E_LEASE_EXIST;
        } else {
            if (w->n_leases == w->cap_leases) {
                w->cap_leases = w->cap_leases ? 2 * w->cap_leases : 16;
                w->leases = cn_xrealloc(w->leases, w->cap_leases * sizeof(*w->leases));
            }
            w->leases[w->n_leases++] = (struct mlease){g->id, g->ttl > 0 ? g->ttl : 1};
        }
        x->rev = w->rev;
        etcdserverpb__lease_grant_request__free_unpacked(g, NULL);
        return true;
    }
    case CN_V3_LEASE_REVOKE: {
        Etcdserverpb__LeaseRevokeRequest *r =
            etcdserverpb__lease_revoke_request__unpack(NULL, n, b);
        if (!r) return false;
        struct mlease *l = lease_find(w, r->id);
        if (l == NULL) {
            x->err = CN_V3_E_LEASE_NOT_FOUND;
        } else {
            bool any = false;
            for (int k = 0; k < V3_KEYS; k++)
                if (w->k[k].live && w->k[k].lease == r->id) {
                    w->k[k].live = false;
                    w->k[k].index = index;
                    any = true;
                }
            if (any) w->rev++;
            *l = w->leases[--w->n_leases];
        }
        x->rev = w->rev;
        etcdserverpb__lease_revoke_request__free_unpacked(r, NULL);
        return true;
    }
    default:
        return false;
    }
}

static int64_t header_rev(const struct cn_v3_result *r)
{
    if (!r->resp) return 0;
    switch (r->kind) {
    case CN_V3_PUT:
        return ((const Etcdserverpb__PutResponse *)r->resp)->header->revision;
    case CN_V3_DELETE_RANGE:
        return ((const Etcdserverpb__DeleteRangeResponse *)r->resp)->header->revision;
    case CN_V3_TXN:
        return ((const Etcdserverpb__TxnResponse *)r->resp)->header->revision;
    case CN_V3_COMPACTION:
        return ((const Etcdserverpb__CompactionResponse *)r->resp)->header->revision;
    case CN_V3_LEASE_GRANT:
        return ((const Etcdserverpb__LeaseGrantResponse *)r->resp)->header->revision;
    case CN_V3_LEASE_REVOKE:
        return ((const Etcdserverpb__LeaseRevokeResponse *)r->resp)->header->revision;
    }
    return 0;
}

static void check_model(struct sim *s, uint64_t index, const struct expect *x,
                        const struct cn_v3_result *r)
{
    bool ok = r->err == x->err;
    if (ok && r->err == CN_V3_OK) {
        ok = header_rev(r) == x->rev;
        if (r->kind == CN_V3_TXN)
            ok = ok && ((Etcdserverpb__TxnResponse *)r->resp)->succeeded == x->succeeded;
        if (r->kind == CN_V3_DELETE_RANGE) {
            const Etcdserverpb__DeleteRangeResponse *d = (const void *)r->resp;
            ok = ok && d->deleted == x->deleted &&
                 d->n_prev_kvs == (x->want_prev ? (size_t)x->deleted : 0);
        }
        if (r->kind == CN_V3_PUT) {
            const Mvccpb__KeyValue *p = ((const Etcdserverpb__PutResponse *)r->resp)->prev_kv;
            if (x->want_prev && x->has_prev)
                ok = ok && p && p->mod_revision == x->prev_mod && p->version == x->prev_version;
            else
                ok = ok && p == NULL;
        }
    }
    if (ok) return;
    char why[256];
    snprintf(why, sizeof(why),
             "v3 entry %" PRIu64 " (kind %d) answered err=%d rev=%" PRId64
             " but the model says err=%d rev=%" PRId64,
             index, (int)r->kind, (int)r->err, header_rev(r), (int)x->err, x->rev);
    sim_fail(s, why);
}

/* ---- the wrapper: the server's v3 part, every reply checked --------------------------------- */

static int v3_apply(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                    struct cn_fsm_out *out)
{
    struct sim_v3 *v = fsm->data;
    struct sim *s = v->s;
    struct sim_v3_world *w = s->v3;
    int rc = v->inner.fsm.apply(&v->inner.fsm, index, cmd, len, out);
    if (rc != 0) {
        sim_fail(s, "a v3 command did not decode");
        return rc;
    }
    const struct cn_v3_result *r = out->result;
    uint64_t d = reply_digest(v, r);
    grow_digest(w, index);
    char why[256];
    if (w->digest[index] == 0) {
        /* the first application of this entry anywhere: entries are first applied in log
         * order (a snapshot covers only what its member applied), so the model follows */
        if (index <= w->index) {
            sim_fail(s, "v3: an entry first applied behind the model");
            return 0;
        }
        struct expect x;
        if (!model_apply(s, w, cmd, len, index, &x)) {
            sim_fail(s, "v3 model: a command it cannot read");
            return 0;
        }
        check_model(s, index, &x, r);
        w->index = index;
        w->digest[index] = d;
    } else if (w->digest[index] != d) {
        snprintf(why, sizeof(why),
                 "v3 entry %" PRIu64 " answered differently on member %" PRIu64
                 " (err=%d rev=%" PRId64 ") than where it was first applied",
                 index, s->m[v->member].id, (int)r->err, header_rev(r));
        sim_fail(s, why);
    }
    v->res = (struct sim_v3_result){index, d, r};
    out->result = &v->res;
    return 0;
}

static void v3_apply_conf(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                          const void *records, size_t len, struct cn_fsm_out *out)
{
    struct sim_v3 *v = fsm->data;
    v->inner.fsm.apply_conf(&v->inner.fsm, index, op, id, records, len, out);
}

static void v3_snapshot(struct cn_fsm *fsm, struct cn_buf *out)
{
    struct sim_v3 *v = fsm->data;
    if (v->s->o.break_v3_snapshot)
        cn_buf_append(out, v->s->v3->empty_snap.p, v->s->v3->empty_snap.len);
    else
        v->inner.fsm.snapshot(&v->inner.fsm, out);
}

struct v3_frozen {
    void *inner;
    void (*encode)(void *frozen, struct cn_buf *out); /* the server's */
    const struct cn_buf *broken;                      /* --break-v3-snapshot: encode this instead */
};

static void *v3_freeze(struct cn_fsm *fsm)
{
    struct sim_v3 *v = fsm->data;
    struct v3_frozen *z = CN_NEW(struct v3_frozen);
    z->inner = v->inner.fsm.freeze(&v->inner.fsm);
    z->encode = v->inner.fsm.encode;
    z->broken = v->s->o.break_v3_snapshot ? &v->s->v3->empty_snap : NULL;
    return z;
}

static void v3_encode(void *frozen, struct cn_buf *out)
{
    struct v3_frozen *z = frozen;
    if (z->broken)
        cn_buf_append(out, z->broken->p, z->broken->len);
    else
        z->encode(z->inner, out);
}

static void v3_thaw(struct cn_fsm *fsm, void *frozen)
{
    struct sim_v3 *v = fsm->data;
    struct v3_frozen *z = frozen;
    v->inner.fsm.thaw(&v->inner.fsm, z->inner);
    cn_free(z);
}

static int v3_restore(struct cn_fsm *fsm, const void *p, size_t len)
{
    struct sim_v3 *v = fsm->data;
    return v->inner.fsm.restore(&v->inner.fsm, p, len);
}

struct sim_v3 *sim_v3_new(struct sim *s, int member)
{
    struct sim_v3 *v = CN_NEW(struct sim_v3);
    v->s = s;
    v->member = member;
    v->kv = cn_mvcc_new();
    v->lessor = cn_mvcc_lessor_new();
    cn_fsm_v3_init(&v->inner, v->kv, v->lessor);
    v->inner.ap.now_ms = v3_now_ms;
    v->inner.ap.ctx = s;
    cn_buf_init(&v->packed);
    v->fsm = (struct cn_fsm){
        .data = v,
        .apply = v3_apply,
        .apply_conf = v3_apply_conf,
        .snapshot = v3_snapshot,
        .freeze = v3_freeze,
        .encode = v3_encode,
        .thaw = v3_thaw,
        .restore = v3_restore,
    };
    return v;
}

void sim_v3_free(struct sim_v3 *v)
{
    if (!v) return;
    cn_fsm_v3_free(&v->inner);
    cn_mvcc_lessor_free(v->lessor);
    cn_mvcc_free(v->kv);
    cn_buf_free(&v->packed);
    cn_free(v);
}

struct cn_fsm *sim_v3_fsm(struct sim_v3 *v)
{
    return &v->fsm;
}

/* ---- the world ------------------------------------------------------------------------------ */

void sim_v3_world_init(struct sim *s)
{
    struct sim_v3_world *w = CN_NEW(struct sim_v3_world);
    w->rev = 1;
    cn_buf_init(&w->empty_snap);
    struct cn_mvcc *empty = cn_mvcc_new();
    cn_mvcc_snapshot_save(empty, &w->empty_snap);
    cn_mvcc_free(empty);
    s->v3 = w;
}

void sim_v3_world_free(struct sim *s)
{
    struct sim_v3_world *w = s->v3;
    if (!w) return;
    cn_free(w->leases);
    cn_free(w->digest);
    cn_free(w->props);
    cn_free(w->puts);
    cn_buf_free(&w->empty_snap);
    cn_free(w);
    s->v3 = NULL;
}

static void props_put(struct sim_v3_world *w, uint64_t h, uint64_t prop)
{
    if (2 * (w->n_props + 1) > w->cap_props) {
        size_t cap = w->cap_props ? 2 * w->cap_props : 1024;
        struct prop_slot *old = w->props;
        size_t old_cap = w->cap_props;
        w->props = cn_xcalloc(cap, sizeof(*w->props));
        w->cap_props = cap;
        w->n_props = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].h) props_put(w, old[i].h, old[i].prop);
        cn_free(old);
    }
    size_t i = h & (w->cap_props - 1);
    while (w->props[i].h != 0 && w->props[i].h != h)
        i = (i + 1) & (w->cap_props - 1);
    if (w->props[i].h == 0) w->n_props++;
    w->props[i].h = h;
    w->props[i].prop = prop;
}

static uint64_t entry_hash(const void *p, size_t len)
{
    return sim_hash(0x76335f70726f70ull, p, len) | 1;
}

uint64_t sim_v3_prop_of(struct sim *s, const void *entry, size_t len)
{
    struct sim_v3_world *w = s->v3;
    if (w->cap_props == 0) return 0;
    uint64_t h = entry_hash(entry, len);
    size_t i = h & (w->cap_props - 1);
    while (w->props[i].h != 0) {
        if (w->props[i].h == h) return w->props[i].prop;
        i = (i + 1) & (w->cap_props - 1);
    }
    return 0;
}

/* ---- the clients ---------------------------------------------------------------------------- */

/* The v3 writes' own generator: what they draw leaves the run's fault schedule as it was. */
static uint64_t rnd3n(struct sim *s, uint64_t n)
{
    uint64_t z = (s->rng3 += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return n ? z % n : 0;
}

static bool chance3(struct sim *s, unsigned pct)
{
    return rnd3n(s, 100) < pct;
}

static void v3_done(void *ctx, int rc, const void *res)
{
    struct sim_req *r = ctx;
    struct sim *s = r->s;
    if (!sim_answered_once(r, rc) || rc != 0) return;
    const struct sim_v3_result *x = res;
    struct sim_member *m = &s->m[r->member];
    if (x == NULL || x->index != m->applied) {
        sim_fail(s, "a v3 write was answered with another entry's reply");
        return;
    }
    sim_grow_by_id(s, r->id);
    if (s->applied_at[r->id] != x->index) {
        sim_fail(s, "a v3 write acknowledged at an index that holds another command");
        return;
    }
    if (s->v3->digest[x->index] != x->digest) sim_fail(s, "a v3 write's reply is not its entry's");
    check_ack(s->check, r->id, x->index);
    s->n_acked++;
    s->n_v3_acked++;
    s->ack_index[r->id] = x->index;
    sim_trace(s, "ack v3 proposal %llu (kind %d err %d rev %lld%s) at index %llu",
              (unsigned long long)r->id, (int)x->res->kind, (int)x->res->err,
              (long long)header_rev(x->res),
              x->res->kind != CN_V3_TXN || !x->res->resp                     ? ""
              : ((const Etcdserverpb__TxnResponse *)x->res->resp)->succeeded ? " success"
                                                                             : " failure",
              (unsigned long long)x->index);
    if (r->v3_key >= 0 && x->res->kind == CN_V3_PUT && x->res->err == CN_V3_OK) {
        struct sim_v3_world *w = s->v3;
        if (w->n_puts == w->cap_puts) {
            w->cap_puts = w->cap_puts ? 2 * w->cap_puts : 64;
            w->puts = cn_xrealloc(w->puts, w->cap_puts * sizeof(*w->puts));
        }
        struct acked_put *p = &w->puts[w->n_puts++];
        p->index = x->index;
        p->key = r->v3_key;
        memcpy(p->val, r->v3_val, sizeof(p->val));
        p->vlen = strlen(r->v3_val);
        p->rev = header_rev(x->res);
    }
}

static ProtobufCBinaryData bytes(const char *z)
{
    return (ProtobufCBinaryData){strlen(z), (uint8_t *)z};
}

/* What the proposer sees of key k in its own (possibly stale) key space: a client's earlier
 * read, to aim a compare at. */
static bool local_kv(struct sim_v3 *v, int k, struct cn_mvcc_range_result *rr)
{
    struct cn_mvcc_range_req q = {.key = cn_str_c(key_name(k))};
    return cn_mvcc_range(v->kv, &q, rr) == 0 && rr->n == 1;
}

/* A client's v3 write on member i: a Put (some with prev_kv or a lease), a DeleteRange (one key
 * or a range), a Txn with compares on value, version or mod_revision, a LeaseGrant or
 * LeaseRevoke, or a Compaction; encoded as api/v3 proposes it. */
struct sim_req *sim_propose_v3(struct sim *s, int i, uint64_t id)
{
    struct sim_member *m = &s->m[i];
    struct sim_v3 *v = m->v3;
    struct sim_req *r = sim_new_req(s, i, false, id);
    r->v3_key = -1;
    char val[V3_VALMAX], val2[V3_VALMAX], cmpval[V3_VALMAX];
    snprintf(val, sizeof(val), "p%llu", (unsigned long long)id);
    snprintf(val2, sizeof(val2), "q%llu", (unsigned long long)id);
    unsigned what = (unsigned)rnd3n(s, 100);
    int ka = (int)rnd3n(s, V3_KEYS), kb = (int)rnd3n(s, V3_KEYS);
    int64_t lease = chance3(s, 20) ? 1 + (int64_t)rnd3n(s, 6) : 0;

    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT, put2 = put;
    Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__RangeRequest rng = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__RequestOp ops[4] = {
        ETCDSERVERPB__REQUEST_OP__INIT, ETCDSERVERPB__REQUEST_OP__INIT,
        ETCDSERVERPB__REQUEST_OP__INIT, ETCDSERVERPB__REQUEST_OP__INIT};
    Etcdserverpb__RequestOp *succ[2] = {&ops[0], &ops[1]}, *fail[2] = {&ops[2], &ops[3]};
    Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__CompactionRequest comp = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    Etcdserverpb__LeaseGrantRequest grant = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    Etcdserverpb__LeaseRevokeRequest revoke = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    const ProtobufCMessage *msg;
    enum cn_v3_kind kind;
    if (what < 35) {
        kind = CN_V3_PUT;
        put.key = bytes(key_name(ka));
        put.value = bytes(val);
        put.prev_kv = chance3(s, 50);
        put.lease = lease;
        r->v3_key = ka;
        memcpy(r->v3_val, val, sizeof(val));
        msg = &put.base;
    } else if (what < 50) {
        kind = CN_V3_DELETE_RANGE;
        del.key = bytes(key_name(ka));
        if (chance3(s, 50)) {
            /* [ka, kb]: the end is exclusive, "k8" past the last key */
            int lo = ka < kb ? ka : kb, hi = ka < kb ? kb : ka;
            del.key = bytes(key_name(lo));
            del.range_end = bytes(key_name(hi + 1));
        }
        del.prev_kv = chance3(s, 50);
        msg = &del.base;
    } else if (what < 75) {
        kind = CN_V3_TXN;
        if (kb == ka) kb = (ka + 1) % V3_KEYS; /* one key put and deleted: refused (etcd too) */
        struct cn_mvcc_range_result rr = {0};
        bool have = local_kv(v, ka, &rr);
        cmp.key = bytes(key_name(ka));
        unsigned t = (unsigned)rnd3n(s, 3);
        bool aim = have && chance3(s, 70); /* a compare that holds where the proposer is */
        if (t == 0) {
            cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
            cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
            if (aim && rr.kvs[0].value_len < sizeof(cmpval)) {
                memcpy(cmpval, rr.kvs[0].value, rr.kvs[0].value_len);
                cmpval[rr.kvs[0].value_len] = 0;
            } else {
                snprintf(cmpval, sizeof(cmpval), "p%llu", (unsigned long long)rnd3n(s, id + 1));
            }
            cmp.value = bytes(cmpval);
            cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        } else if (t == 1) {
            cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
            cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
            if (aim) {
                cmp.version = rr.kvs[0].version;
                cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
            } else {
                cmp.version = 0; /* the key exists at all */
                cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER;
            }
        } else {
            cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
            cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
            int64_t mod = have ? rr.kvs[0].mod_revision : 0;
            if (chance3(s, 50)) {
                cmp.mod_revision = mod;
                cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
            } else {
                cmp.mod_revision = mod + 1; /* not written since the proposer saw it */
                cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS;
            }
        }
        cn_mvcc_range_result_free(&rr);
        txn.n_compare = 1;
        txn.compare = cmps;
        /* success: put kb (with the lease, maybe), and delete ka or a range; failure: read ka,
         * put kb another value */
        put.key = bytes(key_name(kb));
        put.value = bytes(val);
        put.lease = lease;
        ops[0].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        ops[0].request_put = &put;
        del.key = bytes(key_name(ka));
        if (kb < ka && chance3(s, 50)) del.range_end = bytes(key_name(V3_KEYS));
        del.prev_kv = chance3(s, 50);
        ops[1].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        ops[1].request_delete_range = &del;
        txn.success = succ;
        txn.n_success = chance3(s, 60) ? 2 : 1;
        rng.key = bytes(key_name(ka));
        ops[2].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        ops[2].request_range = &rng;
        put2.key = bytes(key_name(kb));
        put2.value = bytes(val2);
        ops[3].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        ops[3].request_put = &put2;
        txn.failure = fail;
        txn.n_failure = 2;
        msg = &txn.base;
    } else if (what < 85) {
        kind = CN_V3_LEASE_GRANT;
        /* settled by the proposer as api/v3's lease.c does: a free id, the minimum TTL */
        grant.id = cn_mvcc_lease_pick_id(v->kv, 1 + (int64_t)rnd3n(s, 4));
        grant.ttl = 1 + (int64_t)rnd3n(s, 10);
        int64_t min_ttl = cn_v3_min_lease_ttl(SIM_TICK_MS * SIM_ELECTION_T, SIM_TICK_MS);
        if (grant.ttl < min_ttl) grant.ttl = min_ttl;
        msg = &grant.base;
    } else if (what < 94) {
        kind = CN_V3_LEASE_REVOKE;
        revoke.id = 1 + (int64_t)rnd3n(s, 6);
        msg = &revoke.base;
    } else {
        kind = CN_V3_COMPACTION;
        /* around what the proposer has: now and then already compacted, or in the future */
        int64_t lo = cn_mvcc_compacted_rev(v->kv), hi = cn_mvcc_rev(v->kv) + 1;
        comp.revision = lo + (int64_t)rnd3n(s, (uint64_t)(hi - lo + 1));
        msg = &comp.base;
    }
    /* the checks api/v3 makes before it proposes (etcd's v3rpc key.go): a refused request never
     * reaches the log (a Txn that puts and deletes one key, say) */
    enum cn_v3_err e = kind == CN_V3_PUT            ? cn_v3_check_put(&put)
                       : kind == CN_V3_DELETE_RANGE ? cn_v3_check_delete(&del)
                       : kind == CN_V3_TXN          ? cn_v3_check_txn(&txn, 128)
                                                    : CN_V3_OK;
    if (e != CN_V3_OK) {
        sim_trace(s, "v3 %llu (kind %d) refused before proposing: %s", (unsigned long long)id,
                  (int)kind, cn_v3_err_msg(e));
        sim_answered_once(r, CN_ERR_INVAL);
        return r;
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    struct cn_node_cmd nc;
    cn_node_cmd_begin(m->node, &nc, CN_V3_CMD_HEAD + len);
    cn_v3_cmd_head(&nc.buf, kind);
    cn_buf_reserve(&nc.buf, len);
    nc.buf.len += protobuf_c_message_pack(msg, (uint8_t *)nc.buf.p + nc.buf.len);
    props_put(s->v3, entry_hash(nc.buf.p, nc.buf.len), id);
    cn_node_propose_cmd(m->node, &nc, v3_done, r);
    sim_trace(s, "propose v3 %llu (kind %d) on %llu", (unsigned long long)id, (int)kind,
              (unsigned long long)m->id);
    return r;
}

/* ---- the final checks ----------------------------------------------------------------------- */

static bool member_matches_model(struct sim *s, int i, char *why, size_t n)
{
    struct sim_v3_world *w = s->v3;
    struct sim_v3 *v = s->m[i].v3;
    uint64_t id = s->m[i].id;
    if (cn_mvcc_rev(v->kv) != w->rev || cn_mvcc_compacted_rev(v->kv) != w->compacted) {
        snprintf(why, n,
                 "member %" PRIu64 " mvcc at revision %" PRId64 " compacted %" PRId64
                 ", the model at %" PRId64 " compacted %" PRId64,
                 id, cn_mvcc_rev(v->kv), cn_mvcc_compacted_rev(v->kv), w->rev, w->compacted);
        return false;
    }
    struct cn_mvcc_range_result rr = {0};
    bool ok = true;
    for (int k = 0; k < V3_KEYS && ok; k++) {
        const struct mkey *x = &w->k[k];
        bool have = local_kv(v, k, &rr);
        if (have != x->live) {
            ok = false;
        } else if (have) {
            const struct cn_mvcc_kv *kv = &rr.kvs[0];
            ok = kv->value_len == x->vlen && memcmp(kv->value, x->val, x->vlen) == 0 &&
                 kv->create_revision == x->create && kv->mod_revision == x->mod &&
                 kv->version == x->version && kv->lease == x->lease;
        }
        if (!ok)
            snprintf(why, n, "member %" PRIu64 " key %s differs from the model", id, key_name(k));
    }
    cn_mvcc_range_result_free(&rr);
    if (!ok) return false;
    if (cn_mvcc_lease_count(v->kv) != w->n_leases) {
        snprintf(why, n, "member %" PRIu64 " has %zu leases, the model %zu", id,
                 cn_mvcc_lease_count(v->kv), w->n_leases);
        return false;
    }
    for (size_t l = 0; l < w->n_leases; l++) {
        int64_t ttl = 0;
        size_t nkeys = 0, want = 0;
        for (int k = 0; k < V3_KEYS; k++)
            want += w->k[k].live && w->k[k].lease == w->leases[l].id;
        if (cn_mvcc_lease_info(v->kv, w->leases[l].id, &ttl, &nkeys) != 0 ||
            ttl != w->leases[l].ttl || nkeys != want) {
            snprintf(why, n, "member %" PRIu64 " lease %" PRId64 " differs from the model", id,
                     w->leases[l].id);
            return false;
        }
    }
    /* acknowledged puts the model has not seen overwritten or deleted since */
    for (size_t p = 0; p < w->n_puts; p++) {
        const struct acked_put *a = &w->puts[p];
        const struct mkey *x = &w->k[a->key];
        if (x->index != a->index) continue;
        if (!x->live || x->mod != a->rev || x->vlen != a->vlen ||
            memcmp(x->val, a->val, a->vlen) != 0) {
            snprintf(why, n, "v3 put acknowledged at index %" PRIu64 " lost from the model",
                     a->index);
            return false;
        }
        /* the member's copy matched the model's key above: same mod_revision and value */
    }
    return true;
}

void sim_v3_final(struct sim *s, const bool *in)
{
    struct sim_v3_world *w = s->v3;
    char why[256];
    int first = -1;
    uint32_t h0 = 0;
    for (int i = 0; i < s->n && !s->failed; i++) {
        if (!in[i]) continue;
        struct sim_member *m = &s->m[i];
        if (m->applied < w->index) {
            snprintf(why, sizeof(why),
                     "member %" PRIu64 " applied %" PRIu64 " < the last v3 entry %" PRIu64, m->id,
                     m->applied, w->index);
            sim_fail(s, why);
            return;
        }
        uint32_t h = 0;
        int64_t crev = 0;
        if (cn_mvcc_hash(m->v3->kv, 0, &h, &crev) != 0) {
            sim_fail(s, "mvcc hash failed");
            return;
        }
        if (first < 0) {
            first = i;
            h0 = h;
        } else if (h != h0 || cn_mvcc_rev(m->v3->kv) != cn_mvcc_rev(s->m[first].v3->kv) ||
                   crev != cn_mvcc_compacted_rev(s->m[first].v3->kv)) {
            snprintf(why, sizeof(why),
                     "v3 key spaces differ: member %" PRIu64 " hash %08x rev %" PRId64
                     ", member %" PRIu64 " hash %08x rev %" PRId64,
                     s->m[first].id, h0, cn_mvcc_rev(s->m[first].v3->kv), m->id, h,
                     cn_mvcc_rev(m->v3->kv));
            sim_fail(s, why);
            return;
        }
        if (!member_matches_model(s, i, why, sizeof(why))) {
            sim_fail(s, why);
            return;
        }
    }
}
