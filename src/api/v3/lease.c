/* lease: the Lease service (etcd's v3rpc/lease.go and the lessor duties of etcdserver). Grant
 * and Revoke go through the log; the lease table is replicated (mvcc), the expiry is not: each
 * member's lessor tracks it, only the leader's counts (a follower's leases never expire), and
 * the leader revokes what expired through the log. When a member becomes leader every lease is
 * extended by an election timeout first, so a failover expires nothing early. KeepAlive and
 * TimeToLive are the leader's to answer. */
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "pbjson/pbjson.h"
#include "v3_int.h"

#define REVOKE_BATCH    500  /* leases revoked per tick at most (etcd: leaseRevokeRate / 2) */
#define REVOKE_RETRY_MS 3000 /* an expired lease whose revoke got lost is retried after this */

static int64_t now_ms(void)
{
    return (int64_t)(cn_clock_mono_ns() / 1000000);
}

/* Follows this member's role: a new leader extends every lease first (etcd's Promote), a
 * member that lost leadership stops expiring them. */
static void sync_role(struct cn_v3 *api, int64_t now)
{
    if (!api->node) return;
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    bool leader = st.role == CN_NODE_LEADER;
    if (leader && !api->leader) {
        cn_mvcc_lessor_promote(api->ap->lessor, now, api->opt.election_ms);
        CN_LOGI("v3", "leases promoted count=%zu", cn_mvcc_lessor_count(api->ap->lessor));
    } else if (!leader && api->leader) {
        cn_mvcc_lessor_demote(api->ap->lessor);
    }
    api->leader = leader;
}

static bool is_leader(struct cn_v3 *api)
{
    sync_role(api, now_ms());
    return api->leader;
}

/* ---- Grant, Revoke ---------------------------------------------------------------------- */

void cn_v3__lease_grant(struct v3call *c)
{
    Etcdserverpb__LeaseGrantRequest *r = (void *)c->req;
    struct cn_v3 *api = c->api;
    if (r->ttl > CN_MVCC_LEASE_TTL_MAX) {
        cn_v3__fail(c, CN_V3_E_LEASE_TTL_TOO_LARGE);
        return;
    }
    /* settled here, so every member grants the same lease: the id (etcd's reqIDGen: the
     * member id's low bits and a counter) and the TTL raised to the minimum */
    if (r->id == 0) {
        if (api->lease_id_next == 0) /* etcd's idutil: 40 bits of the clock, 8 of a counter */
            api->lease_id_next = ((uint64_t)now_ms() & ((1ull << 40) - 1)) << 8;
        uint64_t id =
            (api->opt.member_id & 0xffff) << 48 | (api->lease_id_next++ & ((1ull << 48) - 1));
        r->id = cn_mvcc_lease_pick_id(api->ap->kv, (int64_t)(id & INT64_MAX));
    }
    if (r->ttl < api->min_lease_ttl) r->ttl = api->min_lease_ttl;
    c->raw = NULL; /* re-encoded with the settled fields */
    cn_v3__propose(c, CN_V3_LEASE_GRANT, c->req, cn_v3__write_done);
}

void cn_v3__lease_revoke(struct v3call *c)
{
    cn_v3__propose(c, CN_V3_LEASE_REVOKE, c->req, cn_v3__write_done);
}

/* ---- TimeToLive, Leases -----------------------------------------------------------------------
 */

struct keys_acc {
    struct cn_arena *ar;
    ProtobufCBinaryData *v;
    size_t n, cap;
};

static void add_key(const char *key, size_t len, void *ctx)
{
    struct keys_acc *k = ctx;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        ProtobufCBinaryData *v = cn_arena_calloc(k->ar, cap, sizeof(*v));
        if (k->n) memcpy(v, k->v, k->n * sizeof(*v));
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n].data = (uint8_t *)key;
    k->v[k->n].len = len;
    k->n++;
}

static void ttl_now(struct v3call *c)
{
    const Etcdserverpb__LeaseTimeToLiveRequest *r = (const void *)c->req;
    struct cn_v3 *api = c->api;
    struct cn_arena *ar = &c->arena;
    Etcdserverpb__LeaseTimeToLiveResponse *resp =
        CN_ARENA_NEW(ar, Etcdserverpb__LeaseTimeToLiveResponse);
    etcdserverpb__lease_time_to_live_response__init(resp);
    resp->header = CN_ARENA_NEW(ar, Etcdserverpb__ResponseHeader);
    etcdserverpb__response_header__init(resp->header);
    resp->header->revision = cn_mvcc_rev(api->ap->kv);
    resp->id = r->id;
    int64_t granted = 0;
    size_t nkeys = 0;
    if (cn_mvcc_lease_info(api->ap->kv, r->id, &granted, &nkeys) != 0) {
        /* etcd: an unknown lease is TTL -1, not an error */
        resp->ttl = -1;
    } else {
        int64_t rem = 0;
        if (cn_mvcc_lessor_remaining_ms(api->ap->lessor, r->id, now_ms(), &rem) != 0 ||
            rem == INT64_MAX)
            rem = granted * 1000;
        /* etcd truncates a duration that has always run a little: (rem - 1 ms) / 1 s */
        resp->ttl = rem > 0 ? (rem - 1) / 1000 : 0;
        resp->grantedttl = granted;
        if (r->keys) {
            struct keys_acc k = {.ar = ar};
            cn_mvcc_lease_each_key(api->ap->kv, r->id, add_key, &k);
            resp->keys = k.v;
            resp->n_keys = k.n;
        }
    }
    cn_v3__reply(c, &resp->base, resp->header);
}

/* A follower's call answered by the leader (forward.c). */
static void forwarded(void *ctx, enum cn_v3_err e, ProtobufCMessage *resp)
{
    struct v3call *c = ctx;
    c->fwd = NULL;
    if (e != CN_V3_OK || !resp) {
        cn_v3__fail(c, e != CN_V3_OK ? e : CN_V3_E_TIMEOUT_LEADER_FAIL);
        return;
    }
    /* the answer's header is rewritten as this member's (etcd's follower fills its own) */
    Etcdserverpb__ResponseHeader **hp = NULL;
    if (resp->descriptor == &etcdserverpb__lease_time_to_live_response__descriptor)
        hp = &((Etcdserverpb__LeaseTimeToLiveResponse *)resp)->header;
    else if (resp->descriptor == &etcdserverpb__lease_keep_alive_response__descriptor)
        hp = &((Etcdserverpb__LeaseKeepAliveResponse *)resp)->header;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = cn_mvcc_rev(c->api->ap->kv);
    Etcdserverpb__ResponseHeader *old = hp ? *hp : NULL;
    if (hp) *hp = &h;
    cn_v3__reply(c, resp, &h);
    if (hp) *hp = old;
    cn_pbjson_free(resp);
}

void cn_v3__lease_ttl(struct v3call *c)
{
    if (!is_leader(c->api)) {
        cn_v3__forward(c->api, "/v3/lease/timetolive", c->req,
                       &etcdserverpb__lease_time_to_live_response__descriptor, false, forwarded, c,
                       &c->fwd);
        return;
    }
    /* etcd waits for the applied index to catch up with the commit (a read barrier) */
    cn_v3__after_barrier(c, ttl_now);
}

void cn_v3__lease_leases(struct v3call *c)
{
    struct cn_v3 *api = c->api;
    struct cn_arena *ar = &c->arena;
    Etcdserverpb__LeaseLeasesResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__LeaseLeasesResponse);
    etcdserverpb__lease_leases_response__init(resp);
    resp->header = CN_ARENA_NEW(ar, Etcdserverpb__ResponseHeader);
    etcdserverpb__response_header__init(resp->header);
    resp->header->revision = cn_mvcc_rev(api->ap->kv);
    size_t n = cn_mvcc_lease_count(api->ap->kv);
    if (n > 0) {
        resp->leases = cn_arena_calloc(ar, n, sizeof(*resp->leases));
        for (size_t i = 0; i < n; i++) {
            int64_t id = 0, ttl = 0;
            cn_mvcc_lease_at(api->ap->kv, i, &id, &ttl);
            Etcdserverpb__LeaseStatus *st = CN_ARENA_NEW(ar, Etcdserverpb__LeaseStatus);
            etcdserverpb__lease_status__init(st);
            st->id = id;
            resp->leases[i] = st;
        }
        resp->n_leases = n;
    }
    cn_v3__reply(c, &resp->base, resp->header);
}

/* ---- KeepAlive ------------------------------------------------------------------------------ */

/* The TTL a keepalive answers: the granted TTL once renewed, 0 for a lease that is gone (etcd:
 * not an error). *err is set when this member cannot renew (not the leader). */
static int64_t renew(struct cn_v3 *api, int64_t id, enum cn_v3_err *err)
{
    *err = CN_V3_OK;
    int64_t ttl = 0;
    int rc = cn_mvcc_lessor_renew(api->ap->lessor, id, now_ms(), &ttl);
    if (rc == CN_MVCC_ERR_NOT_PRIMARY) *err = CN_V3_E_NOT_LEADER;
    return rc == 0 ? ttl : 0;
}

struct keepalive {
    struct cn_list link;
    struct cn_v3 *api;
    struct cn_grpc_call *gc;
    struct cn_list pending; /* struct ka_fwd: renewals the leader is asked for */
};

/* One renewal a follower asked the leader for, on a keepalive stream. */
struct ka_fwd {
    struct cn_list link;
    struct keepalive *k;
    struct forward *f;
};

static void keepalive_free(struct keepalive *k)
{
    while (!cn_list_empty(&k->pending)) {
        struct ka_fwd *kf = CN_CONTAINER_OF(k->pending.next, struct ka_fwd, link);
        cn_list_remove(&kf->link);
        cn_v3__forward_cancel(kf->f);
        cn_free(kf);
    }
    cn_list_remove(&k->link);
    cn_free(k);
}

static void send_keepalive(struct keepalive *k, int64_t id, int64_t ttl)
{
    struct cn_v3 *api = k->api;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    cn_v3__fill_header(api, &h, cn_mvcc_rev(api->ap->kv));
    Etcdserverpb__LeaseKeepAliveResponse resp = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    resp.header = &h;
    resp.id = id;
    resp.ttl = ttl;
    cn_grpc_send_pb(k->gc, &resp.base);
}

static void ka_forwarded(void *ctx, enum cn_v3_err e, ProtobufCMessage *resp)
{
    struct ka_fwd *kf = ctx;
    struct keepalive *k = kf->k;
    cn_list_remove(&kf->link);
    cn_free(kf);
    if (e == CN_V3_OK && resp) {
        const Etcdserverpb__LeaseKeepAliveResponse *r = (const void *)resp;
        send_keepalive(k, r->id, r->ttl);
        cn_pbjson_free(resp);
        return;
    }
    if (resp) cn_pbjson_free(resp);
    struct cn_grpc_call *gc = k->gc;
    keepalive_free(k);
    cn_grpc_finish(gc, cn_v3_err_code(e), cn_v3_err_msg(e));
}

void cn_v3__keepalive_message(struct cn_grpc_call *gc, const void *msg, size_t len, void *ctx)
{
    struct cn_v3 *api = ctx;
    struct keepalive *k = cn_grpc_call_data(gc);
    if (!k) {
        k = CN_NEW(struct keepalive);
        k->api = api;
        k->gc = gc;
        cn_list_init(&k->pending);
        cn_list_insert_tail(&api->keepalives, &k->link);
        cn_grpc_call_set_data(gc, k);
    }
    Etcdserverpb__LeaseKeepAliveRequest *r =
        etcdserverpb__lease_keep_alive_request__unpack(NULL, len, msg);
    if (!r) {
        keepalive_free(k);
        cn_grpc_finish(gc, CN_GRPC_INTERNAL,
                       "grpc: error unmarshalling request: proto: bad wire format");
        return;
    }
    if (!is_leader(api)) {
        struct ka_fwd *kf = CN_NEW(struct ka_fwd);
        kf->k = k;
        cn_list_insert_tail(&k->pending, &kf->link);
        struct forward *f = NULL;
        cn_v3__forward(api, "/v3/lease/keepalive", &r->base,
                       &etcdserverpb__lease_keep_alive_response__descriptor, true, ka_forwarded, kf,
                       &f);
        etcdserverpb__lease_keep_alive_request__free_unpacked(r, NULL);
        /* f is NULL when the answer came at once (kf is gone then) */
        if (f) kf->f = f;
        return;
    }
    enum cn_v3_err e;
    int64_t ttl = renew(api, r->id, &e);
    int64_t id = r->id;
    etcdserverpb__lease_keep_alive_request__free_unpacked(r, NULL);
    if (e != CN_V3_OK) {
        keepalive_free(k);
        cn_grpc_finish(gc, cn_v3_err_code(e), cn_v3_err_msg(e));
        return;
    }
    send_keepalive(k, id, ttl);
}

void cn_v3__keepalive_half_close(struct cn_grpc_call *gc, void *ctx)
{
    (void)ctx;
    struct keepalive *k = cn_grpc_call_data(gc);
    if (k) keepalive_free(k);
    cn_grpc_finish(gc, CN_GRPC_OK, NULL);
}

void cn_v3__keepalive_cancel(struct cn_grpc_call *gc, void *ctx)
{
    (void)ctx;
    struct keepalive *k = cn_grpc_call_data(gc);
    if (k) keepalive_free(k);
}

void cn_v3__keepalives_close(struct cn_v3 *api)
{
    while (!cn_list_empty(&api->keepalives)) {
        struct keepalive *k = CN_CONTAINER_OF(api->keepalives.next, struct keepalive, link);
        struct cn_grpc_call *gc = k->gc;
        keepalive_free(k);
        cn_grpc_finish(gc, cn_v3_err_code(CN_V3_E_STOPPED), cn_v3_err_msg(CN_V3_E_STOPPED));
    }
}

/* The gateway's /v3/lease/keepalive: one request, one {"result":...} answer. */
void cn_v3__lease_keepalive_unary(struct v3call *c)
{
    const Etcdserverpb__LeaseKeepAliveRequest *r = (const void *)c->req;
    if (!is_leader(c->api)) {
        cn_v3__forward(c->api, "/v3/lease/keepalive", c->req,
                       &etcdserverpb__lease_keep_alive_response__descriptor, true, forwarded, c,
                       &c->fwd);
        return;
    }
    enum cn_v3_err e;
    int64_t ttl = renew(c->api, r->id, &e);
    if (e != CN_V3_OK) {
        cn_v3__fail(c, e);
        return;
    }
    struct cn_arena *ar = &c->arena;
    Etcdserverpb__LeaseKeepAliveResponse *resp =
        CN_ARENA_NEW(ar, Etcdserverpb__LeaseKeepAliveResponse);
    etcdserverpb__lease_keep_alive_response__init(resp);
    resp->header = CN_ARENA_NEW(ar, Etcdserverpb__ResponseHeader);
    etcdserverpb__response_header__init(resp->header);
    resp->header->revision = cn_mvcc_rev(c->api->ap->kv);
    resp->id = r->id;
    resp->ttl = ttl;
    cn_v3__reply(c, &resp->base, resp->header);
}

/* ---- the leader's duties --------------------------------------------------------------------- */

static void revoke_done(void *ctx, int rc, const void *res)
{
    (void)rc;
    (void)res;
    struct cn_v3 *api = ctx;
    api->revoke_req = NULL;
}

/* Proposes the revocation of the leases that expired (several in one tick: each its own entry,
 * the last one's completion tracked so a stop can detach it). */
static void revoke_expired(struct cn_v3 *api, int64_t now)
{
    int64_t ids[REVOKE_BATCH];
    size_t n = cn_mvcc_lessor_expired(api->ap->lessor, now, REVOKE_RETRY_MS, ids, REVOKE_BATCH);
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
        r.id = ids[i];
        size_t len = protobuf_c_message_get_packed_size(&r.base);
        struct cn_node_cmd nc;
        cn_node_cmd_begin(api->node, &nc, CN_V3_CMD_HEAD + len);
        cn_v3_cmd_head(&nc.buf, CN_V3_LEASE_REVOKE);
        cn_buf_reserve(&nc.buf, len);
        nc.buf.len += protobuf_c_message_pack(&r.base, (uint8_t *)nc.buf.p + nc.buf.len);
        if (api->revoke_req) cn_node_req_detach(api->revoke_req);
        api->revoke_req = cn_node_propose_cmd(api->node, &nc, revoke_done, api);
        CN_LOGI("v3", "revoking an expired lease id=%llx", (unsigned long long)ids[i]);
    }
}

void cn_v3__lease_tick(struct cn_v3 *api, uint64_t now)
{
    if (!api->node) return;
    sync_role(api, (int64_t)now);
    if (api->leader) revoke_expired(api, (int64_t)now);
}
