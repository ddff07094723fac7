/* server: the cairn process. Parses the configuration, opens the member's data dir through the
 * node, writes the cluster records a new member needs, serves the client API on every
 * --listen-client-urls address, drives TTL expiry (the leader proposes SYNC entries carrying its
 * clock), tells systemd when it is ready, and stops cleanly on SIGTERM/SIGINT.
 *
 * Design notes: start-up follows etcd 2.3's decision tree (spec etcd-cluster.md §2): a data dir
 * with member state restarts that member and ignores the bootstrap flags; otherwise a new
 * one-member cluster is bootstrapped from --initial-cluster. Shutdown order: stop accepting and
 * end watches (http), let the node answer or fail what is queued and sync its log, then close the
 * remaining handles and leave the loop. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "api/v2/api.h"
#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "common/list.h"
#include "common/log.h"
#include "config/config.h"
#include "discovery/discovery.h"
#include "http/http.h"
#include "http/http_client.h"
#include "node/node.h"
#include "proxy/proxy.h"
#include "store/store.h"

#define SYNC_INTERVAL_MS 500
#define CLUSTER_VERSION  "2.3.0"

struct server {
    uv_loop_t *loop;
    struct cn_config cfg;
    struct cn_store *store;
    struct cn_node *node;
    struct cn_api *api;
    struct cn_http_server *http;
    uv_signal_t sigterm, sigint;
    uv_timer_t sync_timer;
    struct cn_node_req *sync_req;
    bool sync_inflight;
    bool stopping;
    bool opening; /* the data dir is being opened on the thread pool */
    bool ready;   /* recovery finished: requests go to the api */
    int exit_code;
    struct cn_list waiting; /* requests that arrived during recovery (struct waiter) */
    size_t nwaiting;
    /* the open job */
    uv_work_t open_work;
    struct cn_node_options nopt;
    struct cn_node_boot boot;
    int open_rc;
    char open_err[512];
    int64_t t0;
    /* joining a running cluster (--initial-cluster-state existing) */
    struct cn_http_client *client;
    size_t join_next; /* next peer URL to ask */
    struct cn_node_member members[CN_MAX_MEMBERS];
    size_t nmembers;
    const char *listen_hosts[CN_MAX_URLS];
    uint16_t listen_ports[CN_MAX_URLS];
    uv_timer_t publish_timer;
    bool attr_published;
    bool version_inflight;
    struct cn_proxy *proxy; /* proxy mode */
    struct cn_discovery *disc;
    char *fallback[CN_MAX_MEMBERS * 4]; /* peer URLs for the discovery fallback proxy */
    size_t nfallback;
};

/* A request that arrived while the data dir was being recovered. */
struct waiter {
    struct cn_list link;
    struct server *s;
    struct cn_http_req *req;
};

#define MAX_WAITING 10000

/* ---- systemd ------------------------------------------------------------------------------ */

/* libsystemd (and the compression and crypto libraries it pulls in) costs several milliseconds
 * of dynamic loading; only a process started by systemd with Type=notify needs it, so it is
 * loaded on demand. */
static void notify(const char *state)
{
    static int (*fn)(int, const char *);
    static bool tried;
    if (getenv("NOTIFY_SOCKET") == NULL) return;
    if (!tried) {
        tried = true;
        void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (h) *(void **)&fn = dlsym(h, "sd_notify");
        if (fn == NULL)
            CN_LOGW("server", "cannot load libsystemd for sd_notify err=\"%s\"", dlerror());
    }
    if (fn && fn(0, state) < 0) CN_LOGW("server", "sd_notify failed state=%s", state);
}

/* ---- cluster records ---------------------------------------------------------------------- */

static void boot_done(void *ctx, int rc, const struct cn_store_result *res)
{
    const char *what = ctx;
    if (rc != 0)
        CN_LOGW("server", "writing cluster record failed record=%s err=\"%s\"", what,
                cn_strerror(rc));
    else if (res && res->err.ecode != 0 && res->err.ecode != CN_EC_NODE_EXIST)
        CN_LOGE("server", "writing cluster record failed record=%s ecode=%d cause=\"%s\"", what,
                res->err.ecode, res->err.cause);
}

static void propose_record(struct server *s, const struct cn_buf *cmd, cn_node_done_cb cb,
                           void *ctx)
{
    cn_node_propose(s->node, cmd->p, cmd->len, cb, ctx);
}

static void publish(struct server *s);
static void publish_retry(uv_timer_t *t);

static void version_done(void *ctx, int rc, const struct cn_store_result *res)
{
    struct server *s = ctx;
    s->version_inflight = false;
    boot_done("version", rc, res);
}

/* The leader records the cluster version once (etcd's leader decides it). */
static void publish_version(struct server *s)
{
    if (s->version_inflight || s->node == NULL || cn_members_has_version(s->store)) return;
    struct cn_node_status st;
    cn_node_get_status(s->node, &st);
    if (st.leader != st.id) return;
    struct cn_buf cmd = CN_BUF_INIT;
    cn_members_cmd_version(&cmd, CLUSTER_VERSION, cn_clock_real_ns());
    s->version_inflight = true;
    propose_record(s, &cmd, version_done, s);
    cn_buf_free(&cmd);
}

static void attr_done(void *ctx, int rc, const struct cn_store_result *res)
{
    struct server *s = ctx;
    if (rc == 0 && res && res->err.ecode == 0) {
        s->attr_published = true;
        CN_LOGI("server", "published member attributes name=%s", s->cfg.name);
        return;
    }
    boot_done("attributes", rc, res);
    /* etcd keeps publishing until it succeeds (a member joining waits for the log) */
    if (!s->stopping) uv_timer_start(&s->publish_timer, publish_retry, 500, 0);
}

static void publish_retry(uv_timer_t *t)
{
    publish(t->data);
}

/* Every member publishes its attributes (name, client URLs) through the log when they differ
 * from the record (etcd: /0/members/<id>/attributes), and the cluster version once. The member
 * records with peer URLs are written by the configuration entries themselves. */
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
        propose_record(s, &cmd, attr_done, s);
        cn_buf_free(&cmd);
    }
    publish_version(s);
}

/* ---- TTL expiry --------------------------------------------------------------------------- */

static void sync_done(void *ctx, int rc, const struct cn_store_result *res)
{
    struct server *s = ctx;
    s->sync_inflight = false;
    s->sync_req = NULL;
    if (rc != 0)
        CN_LOGW("server", "expiry sync failed err=\"%s\"", cn_strerror(rc));
    else if (res->nexpired)
        CN_LOGD("server", "expired keys n=%" PRIu64, res->nexpired);
}

/* Only the leader proposes SYNC, carrying its clock; every member expires against that time. */
static void sync_tick(uv_timer_t *t)
{
    struct server *s = t->data;
    if (s->stopping) return;
    publish_version(s);
    if (s->sync_inflight) return;
    int64_t next = cn_store_next_expiry(s->store);
    int64_t now = cn_clock_real_ns();
    if (next == 0 || next > now) return;
    struct cn_node_status st;
    cn_node_get_status(s->node, &st);
    if (st.leader != st.id) return;
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

/* ---- shutdown ----------------------------------------------------------------------------- */

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void node_stopped(void *ctx)
{
    struct server *s = ctx;
    s->node = NULL;
    CN_LOGN("server", "stopped cleanly");
    uv_walk(s->loop, close_walk, NULL);
}

static void http_closed(void *ctx)
{
    struct server *s = ctx;
    s->http = NULL;
    if (s->opening) return; /* open_after stops the node once recovery returns */
    if (s->node)
        cn_node_stop(s->node, node_stopped, s);
    else
        node_stopped(s);
}

static void proxy_stopped(void *ctx)
{
    struct server *s = ctx;
    s->proxy = NULL;
    CN_LOGN("server", "proxy stopped cleanly");
    uv_walk(s->loop, close_walk, NULL);
}

static void shutdown_server(struct server *s, const char *why)
{
    if (s->stopping) return;
    if (s->proxy) {
        s->stopping = true;
        CN_LOGN("server", "shutting down reason=%s", why);
        uv_signal_stop(&s->sigterm);
        uv_signal_stop(&s->sigint);
        notify("STOPPING=1");
        cn_proxy_stop(s->proxy, proxy_stopped, s);
        return;
    }
    s->stopping = true;
    CN_LOGN("server", "shutting down reason=%s", why);
    uv_timer_stop(&s->sync_timer);
    uv_signal_stop(&s->sigterm);
    uv_signal_stop(&s->sigint);
    notify("STOPPING=1");
    uv_timer_stop(&s->publish_timer);
    if (s->disc) {
        cn_discovery_cancel(s->disc);
        s->disc = NULL;
    }
    if (s->client) {
        cn_http_client_close(s->client, NULL, NULL);
        s->client = NULL;
    }
    if (s->sync_req) cn_node_req_detach(s->sync_req);
    if (s->api) cn_api_end_watches(s->api);
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &s->waiting) {
        struct waiter *w = CN_CONTAINER_OF(it, struct waiter, link);
        cn_list_remove(&w->link);
        w->req->on_abort = NULL;
        cn_http_respond(w->req, 503, "text/plain; charset=utf-8", NULL, 0,
                        "server is shutting down\n", 23, true);
        cn_free(w);
    }
    if (s->http)
        cn_http_server_close(s->http, http_closed, s);
    else
        http_closed(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    shutdown_server(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start-up ----------------------------------------------------------------------------- */

static size_t seeds_of(const struct cn_config *cfg, struct cn_cluster_seed *seeds)
{
    for (size_t i = 0; i < cfg->ninitial; i++) {
        const struct cn_initial_member *m = &cfg->initial[i];
        seeds[i] = (struct cn_cluster_seed){m->name, m->peer_urls.n, m->peer_urls.raw, m->id};
    }
    return cfg->ninitial;
}

static int check_bootstrap(const struct cn_config *cfg)
{
    struct cn_cluster_seed seeds[CN_MAX_MEMBERS];
    size_t n = seeds_of(cfg, seeds);
    char err[1024];
    const struct cn_url_list *adv = &cfg->initial_advertise_peer;
    if (cn_cluster_check_initial(seeds, n, cfg->name, adv->raw, adv->n, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairn: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- node callbacks ---------------------------------------------------------------------- */

static void on_removed(void *ctx)
{
    struct server *s = ctx;
    if (s->stopping) return;
    s->exit_code = s->node && cn_node_removed(s->node) ? 0 : 1;
    shutdown_server(s, s->exit_code == 0 ? "removed from the cluster" : "log failure");
}

/* The peer port's HTTP side: GET /members (a joining member, a proxy) and /version. */
static int peer_http_get(void *ctx, const char *path, struct cn_buf *body)
{
    struct server *s = ctx;
    if (strcmp(path, "/members") == 0 && s->api) {
        cn_api_members_array(s->api, body);
        return 200;
    }
    if (strcmp(path, "/version") == 0) {
        cn_buf_appends(body, "{\"etcdserver\":\"2.3.8\",\"etcdcluster\":\"" CLUSTER_VERSION "\"}");
        return 200;
    }
    return 404;
}

/* ---- joining a running cluster -------------------------------------------------------------- */

static void start_open(struct server *s);

static void join_next(struct server *s);

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
        cn_member_list_parse(resp->body, CN_MEMBER_LIST_PEER, &remote, err,
                             sizeof(err)) != 0) {
        join_next(s);
        return;
    }
    struct cn_str cid = cn_http_client_resp_header(resp, "X-Etcd-Cluster-ID");
    char cids[32] = "";
    if (cid.p) snprintf(cids, sizeof(cids), "%.*s", (int)(cid.len > 20 ? 20 : cid.len), cid.p);
    struct cn_cluster_seed seeds[CN_MAX_MEMBERS];
    size_t n = seeds_of(&s->cfg, seeds);
    uint64_t self = 0;
    rc = cn_cluster_match_remote(seeds, n, s->cfg.name, &remote, &self, err, sizeof(err));
    cn_member_list_free(&remote);
    if (rc == 0 && *cids == '\0') {
        snprintf(err, sizeof(err), "the cluster does not list this member");
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "cairn: error validating peerURLs %s: %s\n", cids, err);
        CN_LOGE("server", "cannot join the cluster err=\"%s\"", err);
        s->exit_code = 1;
        shutdown_server(s, "join failed");
        return;
    }
    s->nmembers = n;
    for (size_t i = 0; i < n; i++) {
        s->members[i].id = seeds[i].id;
        s->members[i].npeer = seeds[i].n_peer;
        s->members[i].peer_urls = seeds[i].peer_urls;
    }
    s->nopt.member_id = self;
    s->nopt.cluster_id = strtoull(cids, NULL, 16);
    s->nopt.mode = CN_NODE_JOIN;
    s->nopt.members = s->members;
    s->nopt.nmembers = s->nmembers;
    CN_LOGN("server", "joining cluster=%s as member id=%" PRIx64, cids, self);
    start_open(s);
}

/* Asks the other members' peer URLs, one after the other, for the member list. */
static void join_next(struct server *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->cfg.ninitial; i++) {
        const struct cn_initial_member *im = &s->cfg.initial[i];
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
    shutdown_server(s, "join failed");
}

/* ---- recovery on the thread pool ------------------------------------------------------------ */

static void open_work(uv_work_t *w)
{
    struct server *s = w->data;
    /* Nothing on the loop touches the store or the node until open_after. */
    s->open_rc = cn_node_open(s->loop, &s->nopt, s->store, &s->node, &s->boot, s->open_err,
                              sizeof(s->open_err));
}

static void serve_waiting(struct server *s)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &s->waiting) {
        struct waiter *w = CN_CONTAINER_OF(it, struct waiter, link);
        cn_list_remove(&w->link);
        w->req->on_abort = NULL;
        w->req->data = NULL;
        struct cn_http_req *req = w->req;
        cn_free(w);
        cn_api_handle(req, s->api);
    }
    s->nwaiting = 0;
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
            node_stopped(s);
        else
            shutdown_server(s, "data dir unusable");
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
        shutdown_server(s, "data dir of another member");
        return;
    }
    if (s->stopping) { /* SIGTERM arrived during recovery */
        if (s->http == NULL) cn_node_stop(s->node, node_stopped, s);
        return;
    }
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
    char err[512] = "";
    if (cn_node_start(s->node, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairn: %s\n", err);
        CN_LOGE("server", "cannot start the member err=\"%s\"", err);
        s->exit_code = 1;
        shutdown_server(s, "start failed");
        return;
    }
    publish(s);
    uv_timer_start(&s->sync_timer, sync_tick, SYNC_INTERVAL_MS, SYNC_INTERVAL_MS);
    s->ready = true;
    serve_waiting(s);
    notify("READY=1");
    CN_LOGN("server", "ready to serve client requests startup_ms=%.1f",
            (double)(cn_clock_mono_ns() - s->t0) / 1e6);
}

static void start_open(struct server *s)
{
    s->opening = true;
    s->open_work.data = s;
    int rc = uv_queue_work(s->loop, &s->open_work, open_work, open_after);
    CN_ASSERT(rc == 0);
}

static void waiter_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct waiter *w = req->data; /* ctx is the server's */
    cn_list_remove(&w->link);
    w->s->nwaiting--;
    cn_free(w);
}

/* Until recovery finishes only /version and /health answer (as etcd before its cluster version is
 * decided: "not_decided"); everything else waits for the store. */
static void server_handle(struct cn_http_req *req, void *ctx)
{
    struct server *s = ctx;
    if (s->ready) {
        cn_api_handle(req, s->api);
        return;
    }
    if (cn_str_eqz(req->path, "/version") && req->method == CN_HTTP_GET) {
        static const char v[] = "{\"etcdserver\":\"2.3.8\",\"etcdcluster\":\"not_decided\"}";
        cn_http_respond(req, 200, "application/json", NULL, 0, v, sizeof(v) - 1, false);
        return;
    }
    if (cn_str_eqz(req->path, "/health") && req->method == CN_HTTP_GET) {
        cn_http_respond(req, 503, "text/plain; charset=utf-8", NULL, 0, "{\"health\":\"false\"}",
                        18, false);
        return;
    }
    if (s->nwaiting >= MAX_WAITING || s->stopping) {
        cn_http_respond(req, 503, "text/plain; charset=utf-8", NULL, 0, "server is starting\n", 19,
                        true);
        return;
    }
    struct waiter *w = CN_NEW(struct waiter);
    w->s = s;
    w->req = req;
    req->data = w;
    req->on_abort = waiter_abort;
    cn_list_insert_tail(&s->waiting, &w->link);
    s->nwaiting++;
}

static void server_too_large(struct cn_http_req *req, void *ctx)
{
    struct server *s = ctx;
    if (s->ready) {
        cn_api_too_large(req, s->api);
        return;
    }
    static const char e[] = "{\"errorCode\":210,\"message\":\"Invalid POST form\",\"cause\":"
                            "\"http: POST too large\",\"index\":0}\n";
    cn_http_respond(req, 400, "application/json", NULL, 0, e, sizeof(e) - 1, false);
}

/* Every watcher and client is a socket: raise the soft open-file limit to the hard one, as Go's
 * runtime does for etcd (a stock systemd host starts services at 1024). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        CN_LOGW("server", "cannot raise the open-file limit want=%llu err=\"%s\"",
                (unsigned long long)want, strerror(errno));
}

/* The founding members and this member's ids, from the (possibly discovered) initial cluster. */
static void set_members(struct server *s)
{
    uint64_t ids[CN_MAX_MEMBERS];
    s->nopt.member_id = 0;
    for (size_t i = 0; i < s->cfg.ninitial; i++) {
        ids[i] = s->cfg.initial[i].id;
        if (strcmp(s->cfg.initial[i].name, s->cfg.name) == 0) s->nopt.member_id = ids[i];
        s->members[i].id = ids[i];
        s->members[i].npeer = s->cfg.initial[i].peer_urls.n;
        s->members[i].peer_urls = s->cfg.initial[i].peer_urls.raw;
    }
    s->nmembers = s->cfg.ninitial;
    s->nopt.cluster_id = cn_cluster_id(ids, s->cfg.ninitial);
    s->nopt.members = s->members;
    s->nopt.nmembers = s->nmembers;
}

/* --discovery-srv: the initial cluster from DNS SRV records, then a static bootstrap. */
static int srv_bootstrap(struct server *s)
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
    if (cn_config_set_initial_cluster(&s->cfg, spec, s->cfg.initial_cluster_token) != 0) return -1;
    set_members(s);
    return 0;
}

static int run_proxy(struct server *s, const char *const *peers, size_t npeers);

static void fallback_start(void *ctx)
{
    struct server *s = ctx;
    if (s->client) {
        cn_http_client_close(s->client, NULL, NULL);
        s->client = NULL;
    }
    s->exit_code = run_proxy(s, (const char *const *)s->fallback, s->nfallback);
    for (size_t i = 0; i < s->nfallback; i++)
        cn_free(s->fallback[i]);
    s->nfallback = 0;
    if (s->exit_code != 0) uv_walk(s->loop, close_walk, NULL);
}

static void discovery_done(void *ctx, int err, const struct cn_discovery_peer *peers, size_t n)
{
    struct server *s = ctx;
    s->disc = NULL;
    if (s->stopping) return;
    const char *msg = cn_discovery_strerror(err);
    if (err == CN_DISC_FULL && strcmp(s->cfg.discovery_fallback, "proxy") == 0) {
        /* etcd: a member that finds the cluster full becomes a proxy in front of it */
        CN_LOGN("server", "discovery cluster is full, falling back to proxy mode");
        for (size_t i = 0; i < n; i++) {
            char *copy = cn_xstrdup(peers[i].value);
            for (char *tok = strtok(copy, ","); tok && s->nfallback < CN_MAX_MEMBERS * 4;
                 tok = strtok(NULL, ",")) {
                char *eq = strchr(tok, '=');
                if (eq) s->fallback[s->nfallback++] = cn_xstrdup(eq + 1);
            }
            cn_free(copy);
        }
        uv_timer_stop(&s->sync_timer);
        /* the proxy binds the client URLs itself once the member's listeners are closed */
        struct cn_http_server *h = s->http;
        s->http = NULL;
        cn_http_server_close(h, fallback_start, s);
        return;
    }
    if (err != CN_DISC_OK) {
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
        shutdown_server(s, "discovery failed");
        return;
    }
    struct cn_buf spec = CN_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        cn_buf_appendf(&spec, "%s%s", i ? "," : "", peers[i].value);
    CN_LOGN("server", "discovered the initial cluster cluster=\"%s\"", spec.p ? spec.p : "");
    int rc = cn_config_set_initial_cluster(&s->cfg, spec.p ? spec.p : "", s->cfg.discovery);
    cn_buf_free(&spec);
    if (rc != 0 || check_bootstrap(&s->cfg) != 0) {
        s->exit_code = 1;
        shutdown_server(s, "discovery gave an unusable cluster");
        return;
    }
    set_members(s);
    start_open(s);
}

static void start_discovery(struct server *s)
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

/* Proxy mode: no data, the client API forwarded to the cluster's members (spec §6). */
static int run_proxy(struct server *s, const char *const *peers, size_t npeers)
{
    char err[512] = "";
    int rc = cn_proxy_start(s->loop, &s->cfg, peers, npeers, &s->proxy, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "cairn: cannot start the proxy: %s\n", err);
        CN_LOGE("server", "cannot start the proxy err=\"%s\"", err);
        s->proxy = NULL;
        return 1;
    }
    notify("READY=1");
    CN_LOGN("server", "proxy ready mode=%s startup_ms=%.1f",
            strcmp(s->cfg.proxy, "readonly") == 0 ? "readonly" : "on",
            (double)(cn_clock_mono_ns() - s->t0) / 1e6);
    return 0;
}

int main(int argc, char **argv, char **envp)
{
    cn_log_init();
    signal(SIGPIPE, SIG_IGN);
    /* glibc raises its mmap threshold after each big free, after which tens of MB of snapshot
     * buffers stay in the heap for good; a fixed threshold hands them back to the OS. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    struct server s;
    memset(&s, 0, sizeof(s));
    int rc = cn_config_load(&s.cfg, argc, argv, envp);
    if (rc == CN_CONFIG_EXIT_OK) return 0;
    if (rc == CN_CONFIG_USAGE) return 2;
    if (rc != CN_CONFIG_OK) return 1;
    if (s.cfg.debug) cn_log_level_max = CN_LOG_DEBUG;
    raise_nofile();
    json_object_seed(1); /* deterministic hashing; jansson otherwise reads /dev/urandom */

    s.loop = uv_default_loop();
    s.store = cn_store_new();
    CN_LOGN("server", "starting cairn version=%s name=%s data_dir=%s", CN_VERSION, s.cfg.name,
            s.cfg.data_dir);

    struct cn_node_options nopt = {
        .data_dir = s.cfg.data_dir,
        .wal_dir = s.cfg.wal_dir,
        .snapshot_count = s.cfg.snapshot_count,
        .max_snapshots = s.cfg.max_snapshots,
        .max_wals = s.cfg.max_wals,
        .heartbeat_ms = s.cfg.heartbeat_ms,
        .election_ms = s.cfg.election_ms,
        .name = s.cfg.name,
        .mode = CN_NODE_NEW,
        .force_new_cluster = s.cfg.force_new_cluster,
        .strict_reconfig_check = s.cfg.strict_reconfig_check,
        .on_removed = on_removed,
        .peer_http_get = peer_http_get,
        .cb_ctx = &s,
    };
    for (size_t i = 0; i < s.cfg.listen_peer.n; i++) {
        s.listen_hosts[i] = s.cfg.listen_peer.u[i].host;
        s.listen_ports[i] = s.cfg.listen_peer.u[i].port;
    }
    nopt.nlisten = s.cfg.listen_peer.n;
    nopt.listen_hosts = s.listen_hosts;
    nopt.listen_ports = s.listen_ports;
    s.nopt = nopt;
    set_members(&s);
    /* A data dir with member state restarts that member and ignores the bootstrap flags. */
    char meta[4200];
    snprintf(meta, sizeof(meta), "%s/member/meta", s.cfg.data_dir);
    bool has_member = access(meta, F_OK) == 0;
    char pdir[4200];
    snprintf(pdir, sizeof(pdir), "%s/proxy", s.cfg.data_dir);
    bool has_proxy = access(pdir, F_OK) == 0;
    if (has_member && has_proxy) {
        fprintf(stderr, "cairn: invalid datadir. Both member and proxy directories exist.\n");
        cn_store_free(s.store);
        cn_config_free(&s.cfg);
        return 1;
    }
    if (!has_member && (has_proxy || strcmp(s.cfg.proxy, "off") != 0)) {
        s.t0 = cn_clock_mono_ns();
        uv_signal_init(s.loop, &s.sigterm);
        uv_signal_init(s.loop, &s.sigint);
        s.sigterm.data = s.sigint.data = &s;
        uv_signal_start(&s.sigterm, on_signal, SIGTERM);
        uv_signal_start(&s.sigint, on_signal, SIGINT);
        s.exit_code = run_proxy(&s, NULL, 0);
        if (s.exit_code != 0) uv_walk(s.loop, close_walk, NULL);
        goto run;
    }
    if (!has_member && s.cfg.discovery_srv && srv_bootstrap(&s) != 0) {
        cn_store_free(s.store);
        cn_config_free(&s.cfg);
        return 1;
    }
    bool discovering = !has_member && s.cfg.discovery != NULL;
    if (!has_member && !discovering && check_bootstrap(&s.cfg) != 0) {
        cn_store_free(s.store);
        cn_config_free(&s.cfg);
        return 1;
    }
    if (has_member && (s.cfg.discovery || s.cfg.ninitial > 1))
        CN_LOGW("server", "the data dir has member state: ignoring the bootstrap flags");

    s.t0 = cn_clock_mono_ns();
    cn_list_init(&s.waiting);
    uv_timer_init(s.loop, &s.sync_timer);
    s.sync_timer.data = &s;
    uv_timer_init(s.loop, &s.publish_timer);
    s.publish_timer.data = &s;
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);

    /* Listen first, then recover the data dir on the thread pool: /version answers within
     * milliseconds of exec, and every keys request waits for recovery to finish. */
    struct cn_http_limits lim = {
        .max_header_bytes = 64 * 1024,
        .max_headers = 100,
        .max_body_bytes = s.cfg.max_request_bytes,
        /* Go's server handles one request per connection at a time, so a GET pipelined after a
         * PUT sees the write; clients rely on that ordering. Bytes still pipeline. */
        .max_pipeline = 1,
        .send_date = true,
    };
    s.http = cn_http_server_new(s.loop, &lim, server_handle, server_too_large, &s);
    for (size_t i = 0; i < s.cfg.listen_client.n; i++) {
        const struct cn_url *u = &s.cfg.listen_client.u[i];
        char err[256] = "";
        rc = cn_http_server_listen(s.http, u->host, u->port, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "cairn: cannot listen for client requests on %s: %s\n",
                    s.cfg.listen_client.raw[i], *err ? err : cn_strerror(rc));
            s.exit_code = 1;
            shutdown_server(&s, "listen failed");
            goto run;
        }
        CN_LOGN("server", "listening for client requests url=%s", s.cfg.listen_client.raw[i]);
    }
    if (discovering) {
        /* nothing is written to the data dir until the discovery has an answer */
        s.client = cn_http_client_new(s.loop);
        start_discovery(&s);
    } else if (!has_member && !s.cfg.initial_cluster_new) {
        /* joining: ask the running members for the ids they assigned, then open */
        s.client = cn_http_client_new(s.loop);
        join_next(&s);
    } else {
        start_open(&s);
    }
run:
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    cn_api_free(s.api);
    cn_store_free(s.store);
    cn_config_free(&s.cfg);
    return s.exit_code;
}
