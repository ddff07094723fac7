/* startup: etcd 2.3's decision tree from a fresh process to a serving member (the states in
 * server_int.h): the static bootstrap checks, joining a running cluster (GET <peer>/members,
 * ids matched by src/cluster), discovery and its proxy fallback, DNS SRV, the recovery of the
 * data dir on the thread pool, and the gate that holds client requests until it is done. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/url.h"
#include "discovery/discovery.h"
#include "server_int.h"

/* A request that arrived while the data dir was being recovered. */
struct cn_server_waiter {
    struct cn_list link;
    struct server *s;
    struct cn_http_req *req;
};

/* ---- the cluster map ---------------------------------------------------------------------- */

static size_t seeds_of(const struct server *s, struct cn_cluster_seed *seeds)
{
    for (size_t i = 0; i < s->ninitial; i++) {
        const struct cn_initial_member *m = &s->initial[i];
        seeds[i] = (struct cn_cluster_seed){m->name, m->peer_urls.n, m->peer_urls.raw, m->id};
    }
    return s->ninitial;
}

int cn_server__check_bootstrap(const struct server *s)
{
    struct cn_cluster_seed seeds[CN_MAX_MEMBERS];
    size_t n = seeds_of(s, seeds);
    char err[1024];
    const struct cn_url_list *adv = &s->cfg.initial_advertise_peer;
    if (cn_cluster_check_initial(seeds, n, s->cfg.name, adv->raw, adv->n, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairn: %s\n", err);
        return -1;
    }
    return 0;
}

void cn_server__set_members(struct server *s)
{
    uint64_t ids[CN_MAX_MEMBERS];
    s->nopt.member_id = 0;
    for (size_t i = 0; i < s->ninitial; i++) {
        const struct cn_initial_member *m = &s->initial[i];
        ids[i] = m->id;
        if (strcmp(m->name, s->cfg.name) == 0) s->nopt.member_id = ids[i];
        s->members[i] = (struct cn_node_member){m->id, m->peer_urls.n, m->peer_urls.raw};
    }
    s->nmembers = s->ninitial;
    s->nopt.cluster_id = cn_cluster_id(ids, s->ninitial);
    s->nopt.members = s->members;
    s->nopt.nmembers = s->nmembers;
}

/* A cluster map found at run time (discovery, DNS SRV) replaces the configuration's. */
static int use_discovered(struct server *s, const char *spec, const char *token)
{
    cn_server__free_discovered(s);
    int rc = cn_config_parse_initial_cluster(spec, token, s->discovered, &s->ndiscovered);
    if (rc != 0) return -1;
    s->initial = s->discovered;
    s->ninitial = s->ndiscovered;
    return 0;
}

void cn_server__free_discovered(struct server *s)
{
    cn_config_initial_free(s->discovered, &s->ndiscovered);
}

/* ---- node callbacks ----------------------------------------------------------------------- */

void cn_server__on_removed(void *ctx)
{
    struct server *s = ctx;
    if (s->stopping) return;
    s->exit_code = 0;
    cn_server__shutdown(s, "removed from the cluster");
}

/* The peer port's HTTP side: GET /members (a joining member, a proxy) and /version. */
int cn_server__peer_http_get(void *ctx, const char *path, struct cn_buf *body)
{
    struct server *s = ctx;
    if (strcmp(path, "/members") == 0 && s->api) {
        cn_api_members_array(s->api, body);
        return 200;
    }
    if (strcmp(path, "/version") == 0) {
        cn_cluster_version_json(body, CN_CLUSTER_VERSION, strlen(CN_CLUSTER_VERSION));
        return 200;
    }
    return 404;
}

/* ---- joining a running cluster ------------------------------------------------------------ */

/* etcd's GetClusterFromRemotePeers + ValidateClusterAndAssignIDs: the remote member list must
 * match --initial-cluster member for member (by peer URLs); we take the ids it assigned. */
static void join_answer(struct cn_http_client_req *req, int rc,
                        const struct cn_http_client_resp *resp, void *ctx)
{
    (void)req;
    struct server *s = ctx;
    if (s->stopping) return;
    struct cn_member_list remote;
    char err[256];
    if (rc != 0 || resp->status != 200 ||
        cn_member_list_parse(resp->body, CN_MEMBER_LIST_PEER, &remote, err, sizeof(err)) != 0) {
        cn_server__join_next(s);
        return;
    }
    struct cn_str cid = cn_http_client_resp_header(resp, "X-Etcd-Cluster-ID");
    char cids[32] = "";
    if (cid.p) snprintf(cids, sizeof(cids), "%.*s", (int)(cid.len > 20 ? 20 : cid.len), cid.p);
    struct cn_cluster_seed seeds[CN_MAX_MEMBERS];
    size_t n = seeds_of(s, seeds);
    uint64_t self = 0;
    rc = cn_cluster_match_remote(seeds, n, s->cfg.name, &remote, &self, err, sizeof(err));
    cn_member_list_free(&remote);
    uint64_t cluster_id = 0;
    if (rc == 0 && !cn_parse_hex_u64(cn_str_c(cids), &cluster_id)) {
        snprintf(err, sizeof(err), "the cluster does not list this member");
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "cairn: error validating peerURLs %s: %s\n", cids, err);
        CN_LOGE("server", "cannot join the cluster err=\"%s\"", err);
        s->exit_code = 1;
        cn_server__shutdown(s, "join failed");
        return;
    }
    s->nmembers = n;
    for (size_t i = 0; i < n; i++)
        s->members[i] = (struct cn_node_member){seeds[i].id, seeds[i].n_peer, seeds[i].peer_urls};
    s->nopt.member_id = self;
    s->nopt.cluster_id = cluster_id;
    s->nopt.mode = CN_NODE_JOIN;
    s->nopt.members = s->members;
    s->nopt.nmembers = s->nmembers;
    CN_LOGN("server", "joining cluster=%s as member id=%" PRIx64, cids, self);
    cn_server__start_open(s);
}

/* Asks the other members' peer URLs, one after the other, for the member list. */
void cn_server__join_next(struct server *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->ninitial; i++) {
        const struct cn_initial_member *im = &s->initial[i];
        if (strcmp(im->name, s->cfg.name) == 0) continue;
        for (size_t u = 0; u < im->peer_urls.n; u++, k++) {
            if (k < s->join_next) continue;
            s->join_next = k + 1;
            char url[512];
            snprintf(url, sizeof(url), "%s/members", im->peer_urls.raw[u]);
            struct cn_http_client_opts o = {
                .method = "GET",
                .url = url,
                .timeout_ms = 2000,
                .connect_timeout_ms = 1000,
                .max_body_bytes = 1 << 20,
                .on_done = join_answer,
                .ctx = s,
            };
            if (cn_http_client_request(s->client, &o, NULL) == 0) return;
        }
    }
    fprintf(stderr, "cairn: cannot fetch cluster info from peer urls: could not retrieve cluster "
                    "information from the given urls\n");
    CN_LOGE("server", "cannot fetch cluster info from peer urls");
    s->exit_code = 1;
    cn_server__shutdown(s, "join failed");
}

/* ---- DNS SRV and discovery ---------------------------------------------------------------- */

int cn_server__srv_bootstrap(struct server *s)
{
    char spec[8192], err[512];
    if (cn_discovery_srv(s->cfg.discovery_srv, s->cfg.name, s->cfg.initial_advertise_peer.raw,
                         s->cfg.initial_advertise_peer.n, spec, sizeof(spec), err,
                         sizeof(err)) != 0) {
        fprintf(stderr, "cairn: %s\n", err);
        return -1;
    }
    CN_LOGN("server", "initial cluster from DNS SRV domain=%s cluster=\"%s\"", s->cfg.discovery_srv,
            spec);
    if (use_discovered(s, spec, s->cfg.initial_cluster_token) != 0) return -1;
    cn_server__set_members(s);
    return 0;
}

static void fallback_start(void *ctx)
{
    struct server *s = ctx;
    if (s->client) {
        cn_http_client_close(s->client, NULL, NULL);
        s->client = NULL;
    }
    s->exit_code = cn_server__run_proxy(s, (const char *const *)s->fallback, s->nfallback);
    for (size_t i = 0; i < s->nfallback; i++)
        cn_free(s->fallback[i]);
    s->nfallback = 0;
    if (s->exit_code != 0) cn_server__close_all(s);
}

/* One "name=peerURL" item of a registration: its URL goes to the fallback proxy. */
static int add_fallback(const char *item, void *ctx)
{
    struct server *s = ctx;
    const char *eq = strchr(item, '=');
    if (eq && s->nfallback < CN_MAX_MEMBERS * 4) s->fallback[s->nfallback++] = cn_xstrdup(eq + 1);
    return 0;
}

static void discovery_failed(struct server *s, int err)
{
    const char *msg = cn_discovery_strerror(err);
    fprintf(stderr, "cairn: %s\n", msg);
    if (err == CN_DISC_FULL)
        fprintf(stderr,
                "cairn: failed to join discovery cluster (%s)\n"
                "cairn: discovery token %s was used, but failed to bootstrap the cluster.\n"
                "cairn: please generate a new discovery token and try to bootstrap again.\n",
                msg, s->cfg.discovery);
    if (err == CN_DISC_DUP_ID)
        fprintf(stderr,
                "cairn: member \"%s\" has previously registered with discovery service token "
                "(%s).\ncairn: But etcd could not find valid cluster configuration in the "
                "given data dir (%s).\ncairn: Please check the given data dir path if the "
                "previous bootstrap succeeded or use a new discovery token if the previous "
                "bootstrap failed.\n",
                s->cfg.name, s->cfg.discovery, s->cfg.data_dir);
    if (err == CN_DISC_DUP_NAME)
        fprintf(stderr,
                "cairn: member with duplicated name has registered with discovery "
                "service token (%s).\ncairn: please check the name of every member, "
                "or use a new discovery token\n",
                s->cfg.discovery);
    CN_LOGE("server", "discovery failed err=\"%s\" url=%s", msg, s->cfg.discovery);
    s->exit_code = 1;
    cn_server__shutdown(s, "discovery failed");
}

static void discovery_done(void *ctx, int err, const struct cn_discovery_peer *peers, size_t n)
{
    struct server *s = ctx;
    s->disc = NULL;
    if (s->stopping) return;
    if (err == CN_DISC_FULL && strcmp(s->cfg.discovery_fallback, "proxy") == 0) {
        /* etcd: a member that finds the cluster full becomes a proxy in front of it */
        CN_LOGN("server", "discovery cluster is full, falling back to proxy mode");
        for (size_t i = 0; i < n; i++)
            (void)cn_split_list(peers[i].value, add_fallback, s); /* add_fallback never fails */
        cn_server__duties_stop(s);
        /* the proxy binds the client URLs itself once the member's listeners are closed */
        struct cn_http_server *h = s->http;
        s->http = NULL;
        cn_http_server_close(h, fallback_start, s);
        return;
    }
    if (err != CN_DISC_OK) {
        discovery_failed(s, err);
        return;
    }
    struct cn_buf spec = CN_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        cn_buf_appendf(&spec, "%s%s", i ? "," : "", peers[i].value);
    CN_LOGN("server", "discovered the initial cluster cluster=\"%s\"", spec.p ? spec.p : "");
    int rc = use_discovered(s, spec.p ? spec.p : "", s->cfg.discovery);
    cn_buf_free(&spec);
    if (rc != 0 || cn_server__check_bootstrap(s) != 0) {
        s->exit_code = 1;
        cn_server__shutdown(s, "discovery gave an unusable cluster");
        return;
    }
    cn_server__set_members(s);
    cn_server__start_open(s);
}

void cn_server__start_discovery(struct server *s)
{
    struct cn_buf reg = CN_BUF_INIT;
    for (size_t i = 0; i < s->cfg.initial_advertise_peer.n; i++)
        cn_buf_appendf(&reg, "%s%s=%s", i ? "," : "", s->cfg.name,
                       s->cfg.initial_advertise_peer.raw[i]);
    struct cn_discovery_opts o = {
        .url = s->cfg.discovery,
        .proxy = s->cfg.discovery_proxy,
        .self_id = cn_cluster_member_id(s->cfg.initial_advertise_peer.raw,
                                        s->cfg.initial_advertise_peer.n, s->cfg.discovery, 0),
        .self_reg = reg.p ? reg.p : "",
        .name = s->cfg.name,
    };
    s->disc = cn_discovery_start(s->loop, s->client, &o, discovery_done, s);
    cn_buf_free(&reg);
}

/* ---- recovery on the thread pool ---------------------------------------------------------- */

static void open_work(uv_work_t *w)
{
    struct server *s = w->data;
    /* Nothing on the loop touches the store or the node until open_after (invariant 2). */
    s->open_rc = cn_node_open(s->loop, &s->nopt, &s->fsm_both.fsm, &s->node, &s->boot, s->open_err,
                              sizeof(s->open_err));
}

static void serve_waiting(struct server *s)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &s->waiting) {
        struct cn_server_waiter *w = CN_CONTAINER_OF(it, struct cn_server_waiter, link);
        cn_list_remove(&w->link);
        w->req->on_abort = NULL;
        w->req->data = NULL;
        struct cn_http_req *req = w->req;
        cn_free(w);
        if (!cn_v3_gateway_handle(s->v3, req)) cn_api_handle(req, s->api);
    }
    s->nwaiting = 0;
}

void cn_server__drop_waiting(struct server *s)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &s->waiting) {
        struct cn_server_waiter *w = CN_CONTAINER_OF(it, struct cn_server_waiter, link);
        cn_list_remove(&w->link);
        w->req->on_abort = NULL;
        cn_http_respond(w->req, 503, "text/plain; charset=utf-8", NULL, 0,
                        "server is shutting down\n", 23, true);
        cn_free(w);
    }
    s->nwaiting = 0;
}

/* The member recovered: it must be the member the flags name; then it serves. */
static void start_serving(struct server *s)
{
    const struct cn_node_boot *boot = &s->boot;
    struct cn_api_options aopt = {
        .name = s->cfg.name,
        .member_id = boot->member_id,
        .cluster_id = boot->cluster_id,
        .cors = s->cfg.cors,
        .max_request_bytes = s->cfg.max_request_bytes,
        .election_ms = s->cfg.election_ms,
        .discovery_service = s->cfg.discovery_service,
        .discovery_host = s->cfg.discovery_service_host
                              ? s->cfg.discovery_service_host
                              : (s->cfg.advertise_client.n ? s->cfg.advertise_client.raw[0] : ""),
        .discovery_ttl_s = s->cfg.discovery_token_ttl,
    };
    s->api = cn_api_new(s->loop, &aopt, s->store, s->node);
    cn_v3_set_ids(s->v3, boot->member_id, boot->cluster_id);
    char err[512] = "";
    if (cn_node_start(s->node, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairn: %s\n", err);
        CN_LOGE("server", "cannot start the member err=\"%s\"", err);
        s->exit_code = 1;
        cn_server__shutdown(s, "start failed");
        return;
    }
    cn_server__duties_start(s);
    s->ready = true;
    cn_v3_set_node(s->v3, s->node);
    serve_waiting(s);
    cn_server__notify("READY=1");
    CN_LOGN("server", "ready to serve client requests startup_ms=%.1f",
            (double)(cn_clock_mono_ns() - s->t0) / 1e6);
}

static void open_after(uv_work_t *w, int status)
{
    struct server *s = w->data;
    s->opening = false;
    if (status != 0 && s->open_rc == 0) s->open_rc = status;
    if (s->open_rc != 0) {
        fprintf(stderr, "cairn: %s\n", s->open_err);
        CN_LOGE("server", "cannot open data dir dir=%s err=\"%s\"", s->cfg.data_dir, s->open_err);
        s->node = NULL;
        s->exit_code = 1;
        if (s->stopping && s->http == NULL)
            cn_server__node_stopped(s);
        else
            cn_server__shutdown(s, "data dir unusable");
        return;
    }
    const struct cn_node_boot *boot = &s->boot;
    CN_LOGI("server",
            "recovered member id=%" PRIx64 " cluster=%" PRIx64 " fresh=%d snapshot=%" PRIu64
            " replayed=%" PRIu64 " index=%" PRIu64 " ms=%.1f",
            boot->member_id, boot->cluster_id, boot->fresh, boot->snap_index, boot->replayed,
            cn_store_index(s->store), (double)(cn_clock_mono_ns() - s->t0) / 1e6);
    if (!boot->fresh && strcmp(boot->name, s->cfg.name) != 0) {
        fprintf(stderr,
                "cairn: data dir %s belongs to member \"%s\" (id %" PRIx64 ", cluster %" PRIx64
                "), not to \"%s\": start it with --name %s, or use another --data-dir\n",
                s->cfg.data_dir, boot->name, boot->member_id, boot->cluster_id, s->cfg.name,
                boot->name);
        CN_LOGE("server", "data dir belongs to another member dir=%s member=%s", s->cfg.data_dir,
                boot->name);
        s->exit_code = 1;
        cn_server__shutdown(s, "data dir of another member");
        return;
    }
    if (s->stopping) { /* SIGTERM arrived during recovery */
        if (s->http == NULL) cn_node_stop(s->node, cn_server__node_stopped, s);
        return;
    }
    start_serving(s);
}

void cn_server__start_open(struct server *s)
{
    s->opening = true;
    s->open_work.data = s;
    int rc = uv_queue_work(s->loop, &s->open_work, open_work, open_after);
    CN_ASSERT(rc == 0);
}

/* ---- the gate ----------------------------------------------------------------------------- */

static void waiter_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct cn_server_waiter *w = req->data; /* ctx is the server's */
    cn_list_remove(&w->link);
    w->s->nwaiting--;
    cn_free(w);
}

/* Until recovery finishes only /version and /health answer (as etcd before its cluster version is
 * decided: "not_decided"); everything else waits for the store. */
void cn_server__handle(struct cn_http_req *req, void *ctx)
{
    struct server *s = ctx;
    if (s->ready) {
        if (!cn_v3_gateway_handle(s->v3, req)) cn_api_handle(req, s->api);
        return;
    }
    if (cn_str_eqz(req->path, "/version") && req->method == CN_HTTP_GET) {
        struct cn_buf b = CN_BUF_INIT;
        cn_cluster_version_json(&b, NULL, 0);
        cn_http_respond(req, 200, "application/json", NULL, 0, b.p, b.len, false);
        cn_buf_free(&b);
        return;
    }
    if (cn_str_eqz(req->path, "/health") && req->method == CN_HTTP_GET) {
        cn_http_respond(req, 503, "text/plain; charset=utf-8", NULL, 0, "{\"health\":\"false\"}",
                        18, false);
        return;
    }
    if (s->nwaiting >= CN_SERVER_MAX_WAITING || s->stopping) {
        cn_http_respond(req, 503, "text/plain; charset=utf-8", NULL, 0, "server is starting\n", 19,
                        true);
        return;
    }
    struct cn_server_waiter *w = CN_NEW(struct cn_server_waiter);
    w->s = s;
    w->req = req;
    req->data = w;
    req->on_abort = waiter_abort;
    cn_list_insert_tail(&s->waiting, &w->link);
    s->nwaiting++;
}

void cn_server__too_large(struct cn_http_req *req, void *ctx)
{
    struct server *s = ctx;
    if (s->ready) {
        cn_api_too_large(req, s->api);
        return;
    }
    cn_api_reply_too_large(req);
}
