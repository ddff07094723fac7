/* v3: the api object and the leader's periodic duties (lease expiry, auto-compaction). */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "v3_int.h"

#define COMPACT_CHECK_MS (5 * 60 * 1000) /* etcd's revision compactor polls every 5 minutes */
#define HOUR_MS          (3600 * 1000)

struct cn_v3 *cn_v3_new(uv_loop_t *loop, const struct cn_v3_options *opt, struct cn_v3_apply *ap,
                        struct cn_node *node)
{
    struct cn_v3 *api = CN_NEW(struct cn_v3);
    api->loop = loop;
    api->opt = *opt;
    if (api->opt.max_txn_ops == 0) api->opt.max_txn_ops = 128;
    if (api->opt.max_request_bytes == 0) api->opt.max_request_bytes = 1572864;
    api->ap = ap;
    api->node = node;
    api->min_lease_ttl = cn_v3_min_lease_ttl(opt->election_ms, opt->heartbeat_ms);
    cn_list_init(&api->calls);
    cn_list_init(&api->keepalives);
    cn_list_init(&api->forwards);
    cn_list_init(&api->wstreams);
    cn_list_init(&api->wsynced);
    cn_list_init(&api->wunsynced);
    ap->on_events = cn_v3__watch_events;
    ap->on_restore = cn_v3__watch_restored;
    ap->events_ctx = api;
    return api;
}

void cn_v3_set_ids(struct cn_v3 *api, uint64_t member_id, uint64_t cluster_id)
{
    api->opt.member_id = member_id;
    api->opt.cluster_id = cluster_id;
}

void cn_v3_set_node(struct cn_v3 *api, struct cn_node *node)
{
    api->node = node;
    cn_v3__dispatch_held(api);
}

void cn_v3_stop(struct cn_v3 *api)
{
    cn_v3__forwards_stop(api);
    cn_v3__keepalives_close(api);
    cn_v3__watches_close(api);
}

void cn_v3_free(struct cn_v3 *api)
{
    if (!api) return;
    cn_v3__forwards_stop(api);
    cn_v3__calls_stop(api);
    cn_v3__keepalives_close(api);
    cn_v3__watches_free(api);
    if (api->ap->on_events == cn_v3__watch_events) {
        api->ap->on_events = NULL;
        api->ap->on_restore = NULL;
    }
    if (api->compact_req) cn_node_req_detach(api->compact_req);
    if (api->revoke_req) cn_node_req_detach(api->revoke_req);
    cn_free(api->bindings);
    cn_free(api->grpc_methods);
    cn_free(api);
}

/* ---- auto-compaction ------------------------------------------------------------------------ */

static void compact_done(void *ctx, int rc, const void *res)
{
    struct cn_v3 *api = ctx;
    api->compact_req = NULL;
    const struct cn_v3_result *r = res;
    if (rc == 0 && r && r->err == CN_V3_OK)
        CN_LOGI("v3", "auto-compaction done");
    else if (rc == 0 && r && r->err != CN_V3_E_COMPACTED)
        CN_LOGW("v3", "auto-compaction failed: %s", cn_v3_err_msg(r->err));
}

static void propose_compact(struct cn_v3 *api, int64_t rev)
{
    if (rev <= cn_mvcc_compacted_rev(api->ap->kv) || api->compact_req) return;
    Etcdserverpb__CompactionRequest r = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    r.revision = rev;
    size_t len = protobuf_c_message_get_packed_size(&r.base);
    struct cn_node_cmd nc;
    cn_node_cmd_begin(api->node, &nc, CN_V3_CMD_HEAD + len);
    cn_v3_cmd_head(&nc.buf, CN_V3_COMPACTION);
    cn_buf_reserve(&nc.buf, len);
    nc.buf.len += protobuf_c_message_pack(&r.base, (uint8_t *)nc.buf.p + nc.buf.len);
    CN_LOGI("v3", "auto-compaction revision=%lld", (long long)rev);
    api->compact_req = cn_node_propose_cmd(api->node, &nc, compact_done, api);
}

/* etcd 3.4's compactors, on the leader: revision mode compacts to current - retention every 5
 * minutes; periodic mode samples the revision every tenth of the period (the retention, at most
 * an hour) and compacts to the revision it saw `retention` ago. */
static void auto_compact(struct cn_v3 *api, uint64_t now)
{
    uint64_t ret = api->opt.auto_compaction_retention;
    if (ret == 0) return;
    int64_t cur = cn_mvcc_rev(api->ap->kv);
    if (api->opt.auto_compaction_revision) {
        if (api->last_compact_check_ms && now - api->last_compact_check_ms < COMPACT_CHECK_MS)
            return;
        api->last_compact_check_ms = now;
        if ((uint64_t)cur > ret) propose_compact(api, cur - (int64_t)ret);
        return;
    }
    uint64_t period = ret < HOUR_MS ? ret : HOUR_MS;
    uint64_t step = period / 10 ? period / 10 : 1;
    if (api->nseen == 0 || now - api->seen[api->nseen - 1].at_ms >= step) {
        if (api->nseen == sizeof(api->seen) / sizeof(api->seen[0])) {
            memmove(api->seen, api->seen + 1, (api->nseen - 1) * sizeof(api->seen[0]));
            api->nseen--;
        }
        api->seen[api->nseen].at_ms = now;
        api->seen[api->nseen].rev = cur;
        api->nseen++;
    }
    if (api->last_compact_check_ms == 0) api->last_compact_check_ms = now;
    if (now - api->last_compact_check_ms < period) return;
    /* the newest sample at least `retention` old */
    size_t i = api->nseen;
    while (i > 0 && now - api->seen[i - 1].at_ms < ret)
        i--;
    if (i == 0) return;
    api->last_compact_check_ms = now;
    propose_compact(api, api->seen[i - 1].rev);
}

void cn_v3_tick(struct cn_v3 *api, uint64_t now_ms)
{
    if (!api->node) return;
    cn_v3__lease_tick(api, now_ms);
    cn_v3__watch_tick(api, now_ms);
    if (api->leader)
        auto_compact(api, now_ms);
    else
        api->nseen = 0;
}
