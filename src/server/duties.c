/* duties: what a running member does on its own. It publishes its attributes (name, client
 * URLs) through the log when the record differs (etcd: /0/members/<id>/attributes), retrying
 * until it succeeds; the leader records the cluster version once; and only the leader proposes
 * SYNC, carrying its clock, so every member expires TTL keys against the same time. */
#include <inttypes.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "server_int.h"

static void record_done(const char *what, int rc, const struct cn_store_result *res)
{
    if (rc != 0)
        CN_LOGW("server", "writing cluster record failed record=%s err=\"%s\"", what,
                cn_strerror(rc));
    else if (res && res->err.ecode != 0 && res->err.ecode != CN_EC_NODE_EXIST)
        CN_LOGE("server", "writing cluster record failed record=%s ecode=%d cause=\"%s\"", what,
                res->err.ecode, res->err.cause);
}

static bool leading(const struct server *s)
{
    struct cn_node_status st;
    cn_node_get_status(s->node, &st);
    return st.leader == st.id;
}

static void version_done(void *ctx, int rc, const void *res)
{
    struct server *s = ctx;
    s->version_inflight = false;
    record_done("version", rc, res);
}

/* The leader records the cluster version once (etcd's leader decides it). */
static void publish_version(struct server *s)
{
    if (s->version_inflight || s->node == NULL || cn_members_has_version(s->store) || !leading(s))
        return;
    struct cn_buf cmd = CN_BUF_INIT;
    cn_members_cmd_version(&cmd, CN_CLUSTER_VERSION, cn_clock_real_ns());
    s->version_inflight = true;
    cn_node_propose(s->node, cmd.p, cmd.len, version_done, s);
    cn_buf_free(&cmd);
}

static void publish(struct server *s);

static void publish_retry(uv_timer_t *t)
{
    publish(t->data);
}

static void attr_done(void *ctx, int rc, const void *vres)
{
    struct server *s = ctx;
    const struct cn_store_result *res = vres;
    if (rc == 0 && res && res->err.ecode == 0) {
        s->attr_published = true;
        CN_LOGI("server", "published member attributes name=%s", s->cfg.name);
        return;
    }
    record_done("attributes", rc, res);
    /* etcd keeps publishing until it succeeds (a member joining waits for the log) */
    if (!s->stopping) uv_timer_start(&s->publish_timer, publish_retry, 500, 0);
}

static void publish(struct server *s)
{
    if (s->stopping || s->node == NULL) return;
    const struct cn_url_list *cu = &s->cfg.advertise_client;
    if (cn_members_attributes_equal(s->store, s->boot.member_id, s->cfg.name, cu->raw, cu->n)) {
        s->attr_published = true;
    } else {
        struct cn_buf cmd = CN_BUF_INIT;
        cn_members_cmd_publish(&cmd, s->boot.member_id, s->cfg.name, cu->raw, cu->n,
                               cn_clock_real_ns());
        cn_node_propose(s->node, cmd.p, cmd.len, attr_done, s);
        cn_buf_free(&cmd);
    }
    publish_version(s);
}

static void sync_done(void *ctx, int rc, const void *vres)
{
    struct server *s = ctx;
    const struct cn_store_result *res = vres;
    s->sync_inflight = false;
    s->sync_req = NULL;
    if (rc != 0)
        CN_LOGW("server", "expiry sync failed err=\"%s\"", cn_strerror(rc));
    else if (res->nexpired)
        CN_LOGD("server", "expired keys n=%" PRIu64, res->nexpired);
}

static void sync_tick(uv_timer_t *t)
{
    struct server *s = t->data;
    if (s->stopping) return;
    publish_version(s);
    cn_v3_tick(s->v3, (uint64_t)cn_clock_mono_ns() / 1000000);
    if (s->sync_inflight) return;
    int64_t next = cn_store_next_expiry(s->store);
    int64_t now = cn_clock_real_ns();
    if (next == 0 || next > now || !leading(s)) return;
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    c.op = CN_OP_SYNC;
    c.ns = CN_NS_KEYS;
    c.now_ns = now;
    struct cn_buf cmd = CN_BUF_INIT;
    cn_store_cmd_encode(&c, &cmd);
    s->sync_inflight = true;
    s->sync_req = cn_node_propose(s->node, cmd.p, cmd.len, sync_done, s);
    cn_buf_free(&cmd);
}

void cn_server__duties_init(struct server *s)
{
    uv_timer_init(s->loop, &s->sync_timer);
    s->sync_timer.data = s;
    uv_timer_init(s->loop, &s->publish_timer);
    s->publish_timer.data = s;
}

void cn_server__duties_start(struct server *s)
{
    publish(s);
    uv_timer_start(&s->sync_timer, sync_tick, CN_SERVER_SYNC_INTERVAL_MS,
                   CN_SERVER_SYNC_INTERVAL_MS);
}

void cn_server__duties_stop(struct server *s)
{
    uv_timer_stop(&s->sync_timer);
    uv_timer_stop(&s->publish_timer);
    if (s->sync_req) cn_node_req_detach(s->sync_req);
}
