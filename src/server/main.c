/* server: the cairn process. Parses the configuration, listens for clients, and sends start-up
 * down one of etcd 2.3's paths (proxy, static bootstrap, joining, discovery: startup.c); then
 * the loop runs until shutdown.c ends it. The member is the node (src/node) on the v2 state
 * machine (fsm_v2.c), served by api/v2. See server_int.h for the map of this module. */
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "h2/grpc.h"
#include "proxy/proxy.h"
#include "server_int.h"

/* libsystemd (and the compression and crypto libraries it pulls in) costs several milliseconds
 * of dynamic loading; only a process started by systemd with Type=notify needs it, so it is
 * loaded on demand. */
void cn_server__notify(const char *state)
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

/* Proxy mode: no data, the client API forwarded to the cluster's members (spec §6). */
int cn_server__run_proxy(struct server *s, const char *const *peers, size_t npeers)
{
    char err[512] = "";
    int rc = cn_proxy_start(s->loop, &s->cfg, peers, npeers, &s->proxy, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "cairn: cannot start the proxy: %s\n", err);
        CN_LOGE("server", "cannot start the proxy err=\"%s\"", err);
        s->proxy = NULL;
        return 1;
    }
    cn_server__notify("READY=1");
    CN_LOGN("server", "proxy ready mode=%s startup_ms=%.1f",
            strcmp(s->cfg.proxy, "readonly") == 0 ? "readonly" : "on",
            (double)(cn_clock_mono_ns() - s->t0) / 1e6);
    return 0;
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

static void node_options(struct server *s)
{
    s->nopt = (struct cn_node_options){
        .data_dir = s->cfg.data_dir,
        .wal_dir = s->cfg.wal_dir,
        .snapshot_count = s->cfg.snapshot_count,
        .max_snapshots = s->cfg.max_snapshots,
        .max_wals = s->cfg.max_wals,
        .heartbeat_ms = s->cfg.heartbeat_ms,
        .election_ms = s->cfg.election_ms,
        .name = s->cfg.name,
        .mode = CN_NODE_NEW,
        .force_new_cluster = s->cfg.force_new_cluster,
        .strict_reconfig_check = s->cfg.strict_reconfig_check,
        .on_removed = cn_server__on_removed,
        .peer_http_get = cn_server__peer_http_get,
        .cb_ctx = s,
    };
    for (size_t i = 0; i < s->cfg.listen_peer.n; i++) {
        s->listen_hosts[i] = s->cfg.listen_peer.u[i].host;
        s->listen_ports[i] = s->cfg.listen_peer.u[i].port;
    }
    s->nopt.nlisten = s->cfg.listen_peer.n;
    s->nopt.listen_hosts = s->listen_hosts;
    s->nopt.listen_ports = s->listen_ports;
}

/* Listen first, then recover the data dir on the thread pool: /version answers within
 * milliseconds of exec, and every keys request waits for recovery to finish. */
static int listen_clients(struct server *s)
{
    struct cn_http_limits lim = {
        .max_header_bytes = 64 * 1024,
        .max_headers = 100,
        .max_body_bytes = s->cfg.max_request_bytes,
        /* Go's server handles one request per connection at a time, so a GET pipelined after a
         * PUT sees the write; clients rely on that ordering. Bytes still pipeline. */
        .max_pipeline = 1,
        .send_date = true,
    };
    s->http = cn_http_server_new(s->loop, &lim, cn_server__handle, cn_server__too_large, s);
    /* gRPC: a connection that opens with the HTTP/2 preface is the v3 API's (etcd's cmux) */
    struct cn_grpc_method *methods;
    size_t nmethods;
    cn_v3_register_grpc(s->v3, &methods, &nmethods);
    struct cn_grpc_limits glim = {
        .max_recv_msg = s->cfg.max_request_bytes_v3 + 512 * 1024,
    };
    int grc = cn_grpc_server_new(s->loop, &glim, methods, nmethods, &s->grpc);
    CN_ASSERT(grc == 0);
    cn_http_server_set_h2(s->http, cn_grpc_server_adopt_hook, s->grpc);
    for (size_t i = 0; i < s->cfg.listen_client.n; i++) {
        const struct cn_url *u = &s->cfg.listen_client.u[i];
        char err[256] = "";
        int rc = cn_http_server_listen(s->http, u->host, u->port, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "cairn: cannot listen for client requests on %s: %s\n",
                    s->cfg.listen_client.raw[i], *err ? err : cn_strerror(rc));
            return -1;
        }
        CN_LOGN("server", "listening for client requests url=%s", s->cfg.listen_client.raw[i]);
    }
    return 0;
}

/* Which way start-up goes (spec etcd-cluster.md §2). Returns -1 when the process ends before
 * the loop runs (exit 1, the message printed). */
static int choose_path(struct server *s)
{
    /* A data dir with member state restarts that member and ignores the bootstrap flags. */
    bool has_member = cn_node_datadir_has_member(s->cfg.data_dir);
    char pdir[4200];
    snprintf(pdir, sizeof(pdir), "%s/proxy", s->cfg.data_dir);
    bool has_proxy = access(pdir, F_OK) == 0;
    if (has_member && has_proxy) {
        fprintf(stderr, "cairn: invalid datadir. Both member and proxy directories exist.\n");
        return -1;
    }
    s->t0 = cn_clock_mono_ns();
    if (!has_member && (has_proxy || strcmp(s->cfg.proxy, "off") != 0)) {
        cn_server__signals_start(s);
        s->exit_code = cn_server__run_proxy(s, NULL, 0);
        if (s->exit_code != 0) cn_server__close_all(s);
        return 0;
    }
    if (!has_member && s->cfg.discovery_srv && cn_server__srv_bootstrap(s) != 0) return -1;
    bool discovering = !has_member && s->cfg.discovery != NULL;
    if (!has_member && !discovering && cn_server__check_bootstrap(s) != 0) return -1;
    if (has_member && (s->cfg.discovery || s->ninitial > 1))
        CN_LOGW("server", "the data dir has member state: ignoring the bootstrap flags");

    cn_server__duties_init(s);
    cn_server__signals_start(s);
    if (listen_clients(s) != 0) {
        s->exit_code = 1;
        cn_server__shutdown(s, "listen failed");
        return 0;
    }
    if (discovering) {
        /* nothing is written to the data dir until the discovery has an answer */
        s->client = cn_http_client_new(s->loop);
        cn_server__start_discovery(s);
    } else if (!has_member && !s->cfg.initial_cluster_new) {
        /* joining: ask the running members for the ids they assigned, then open */
        s->client = cn_http_client_new(s->loop);
        cn_server__join_next(s);
    } else {
        cn_server__start_open(s);
    }
    return 0;
}

int main(int argc, char **argv, char **envp)
{
    cn_log_init();
    signal(SIGPIPE, SIG_IGN);
    /* glibc raises its mmap threshold after each big free, after which tens of MB of snapshot
     * buffers stay in the heap for good; a fixed threshold hands them back to the OS. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    static struct server s;
    int rc = cn_config_load(&s.cfg, argc, argv, envp);
    if (rc == CN_CONFIG_EXIT_OK) return 0;
    if (rc == CN_CONFIG_USAGE) return 2;
    if (rc != CN_CONFIG_OK) return 1;
    if (s.cfg.debug) cn_log_level_max = CN_LOG_DEBUG;
    raise_nofile();
    json_object_seed(1); /* deterministic hashing; jansson otherwise reads /dev/urandom */

    s.loop = uv_default_loop();
    s.store = cn_store_new();
    cn_fsm_v2_init(&s.fsm, s.store);
    s.mvcc = cn_mvcc_new();
    s.lessor = cn_mvcc_lessor_new();
    cn_fsm_v3_init(&s.fsm3, s.mvcc, s.lessor);
    cn_fsm_both_init(&s.fsm_both, &s.fsm.fsm, &s.fsm3.fsm);
    struct cn_v3_options v3opt = {
        .max_request_bytes = s.cfg.max_request_bytes_v3,
        .max_txn_ops = s.cfg.max_txn_ops,
        .election_ms = s.cfg.election_ms,
        .heartbeat_ms = s.cfg.heartbeat_ms,
        .gateway = s.cfg.enable_grpc_gateway,
        .auto_compaction_revision = s.cfg.auto_compaction_revision,
        .auto_compaction_retention = s.cfg.auto_compaction_retention,
        .members = s.store,
    };
    s.v3 = cn_v3_new(s.loop, &v3opt, &s.fsm3.ap, NULL);
    cn_list_init(&s.waiting);
    s.initial = s.cfg.initial;
    s.ninitial = s.cfg.ninitial;
    CN_LOGN("server", "starting cairn version=%s name=%s data_dir=%s", CN_VERSION, s.cfg.name,
            s.cfg.data_dir);
    node_options(&s);
    cn_server__set_members(&s);
    if (choose_path(&s) != 0) {
        s.exit_code = 1;
    } else {
        uv_run(s.loop, UV_RUN_DEFAULT);
        uv_loop_close(s.loop);
    }
    cn_api_free(s.api);
    cn_v3_free(s.v3);
    cn_fsm_v3_free(&s.fsm3);
    cn_mvcc_lessor_free(s.lessor);
    cn_mvcc_free(s.mvcc);
    cn_store_free(s.store);
    cn_server__free_discovered(&s);
    cn_config_free(&s.cfg);
    return s.exit_code;
}
