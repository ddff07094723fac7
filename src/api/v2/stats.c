/* stats: /v2/stats/{self,leader,store} and /version, in etcd 2.3's shapes. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api_int.h"
#include "cluster/cluster.h"
#include "common/clock.h"
#include "common/json.h"

static void send_json(struct cn_api *api, struct cn_http_req *req, const struct cn_buf *b)
{
    (void)api;
    /* etcd writes stats with json.Marshal: no trailing newline, no cluster header */
    cn_http_respond(req, 200, "application/json", NULL, 0, b->p, b->len, false);
}

/* etcd's raft.StateType names */
static const char *role_name(enum cn_node_role role)
{
    switch (role) {
    case CN_NODE_LEADER:
        return "StateLeader";
    case CN_NODE_CANDIDATE:
        return "StateCandidate";
    case CN_NODE_PRE_CANDIDATE:
        return "StatePreCandidate";
    case CN_NODE_FOLLOWER:
        break;
    }
    return "StateFollower";
}

void cn_api__stats(struct cn_api *api, struct cn_http_req *req, struct cn_str which)
{
    struct cn_buf b = CN_BUF_INIT;
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    if (cn_str_eqz(which, "store")) {
        cn_store_stats_json(api->store, &b);
        send_json(api, req, &b);
    } else if (cn_str_eqz(which, "self")) {
        cn_buf_appends(&b, "{\"name\":");
        cn_json_strz(&b, api->name);
        cn_buf_appendf(&b, ",\"id\":\"%" PRIx64 "\",\"state\":\"%s\",\"startTime\":\"", st.id,
                       role_name(st.role));
        cn_time_rfc3339nano(&b, api->start_ns);
        cn_buf_appends(&b, "\",\"leaderInfo\":{\"leader\":\"");
        if (st.leader) cn_buf_appendf(&b, "%" PRIx64, st.leader);
        cn_buf_appends(&b, "\",\"uptime\":\"");
        int64_t now = cn_clock_real_ns();
        cn_duration_go(&b, st.leader ? now - st.leader_since_ns : 0);
        cn_buf_appends(&b, "\",\"startTime\":\"");
        cn_time_rfc3339nano(&b, st.leader ? st.leader_since_ns : api->start_ns);
        cn_buf_appendf(
            &b, "\"},\"recvAppendRequestCnt\":%" PRIu64 ",\"sendAppendRequestCnt\":%" PRIu64 "}",
            st.recv_append, st.send_append);
        send_json(api, req, &b);
    } else { /* leader */
        if (st.leader != st.id || st.leader == 0) {
            cn_api__send_message(api, req, 403, "not current leader");
        } else {
            /* etcd's LeaderStats: per follower the round-trip latency of appends and
             * heartbeats (ms) and the counts of answered and failed sends */
            cn_buf_appendf(&b, "{\"leader\":\"%" PRIx64 "\",\"followers\":{", st.id);
            for (unsigned i = 0; i < st.n_followers; i++) {
                const struct cn_node_follower *f = &st.followers[i];
                double avg = f->lat_n ? f->lat_sum / (double)f->lat_n : 0;
                double var = f->lat_n ? f->lat_sq / (double)f->lat_n - avg * avg : 0;
                cn_buf_appendf(&b,
                               "%s\"%" PRIx64 "\":{\"latency\":{\"current\":%.6f,\"average\":%.6f,"
                               "\"standardDeviation\":%.6f,\"minimum\":%.6f,\"maximum\":%.6f},"
                               "\"counts\":{\"fail\":%" PRIu64 ",\"success\":%" PRIu64 "}}",
                               i ? "," : "", f->id, f->lat_current, avg, var > 0 ? sqrt(var) : 0.0,
                               f->lat_min, f->lat_max, f->fail, f->success);
            }
            cn_buf_appends(&b, "}}");
            send_json(api, req, &b);
        }
    }
    cn_buf_free(&b);
}

void cn_api__version(struct cn_api *api, struct cn_http_req *req)
{
    size_t len;
    const char *v = cn_members_version(api->store, &len);
    struct cn_buf b = CN_BUF_INIT;
    cn_cluster_version_json(&b, v, len);
    cn_http_respond(req, 200, "application/json", NULL, 0, b.p, b.len, false);
    cn_buf_free(&b);
}
