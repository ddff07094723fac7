/* server internals: the process's one struct and what its files call of each other.
 *
 *   main.c      flags, the client listeners, which way start-up goes, the loop
 *   startup.c   etcd 2.3's decision tree (spec etcd-cluster.md §2): static bootstrap, joining a
 *               running cluster, discovery (and its proxy fallback), DNS SRV; the data dir
 *               recovered on the thread pool; the gate that holds requests until it is
 *   duties.c    what a running member does on its own: publish its attributes and the
 *               cluster version, and (on the leader) propose TTL expiry with its clock
 *   shutdown.c  the signals and the shutdown order
 *   fsm.c       the node's state machine: the v2 part and the v3 part in one log
 *   fsm_v2.c    the v2 key space (and the member records)
 *   fsm_v3.c    the v3 key space
 *
 * Design notes: start-up states (startup.c)
 *
 *     listening --(member state in the data dir, or static bootstrap)--> opening
 *     listening --(--discovery)--> discovering --(cluster found)--> opening
 *                                             \--(full, fallback proxy)--> proxy
 *     listening --(--initial-cluster-state existing)--> joining --(ids assigned)--> opening
 *     opening --(open_after: recovered, name checked, node started)--> ready
 *     any --(SIGTERM, a failure)--> stopping (shutdown.c)
 *
 *   Invariants: 1. Nothing is written to the data dir before the cluster map is known
 *   (discovery and join ask first). 2. While opening, nothing on the loop touches the store or
 *   the node (the open runs on the pool); requests wait in `waiting`, /version and /health
 *   answer at once. 3. The configuration is never written after it is loaded: a discovered
 *   cluster map lives in `discovered`, and `initial` points at whichever map applies. */
#ifndef CN_SERVER_SERVER_INT_H
#define CN_SERVER_SERVER_INT_H

#include <stdbool.h>
#include <uv.h>

#include "api/v2/api.h"
#include "api/v3/v3.h"
#include "common/list.h"
#include "config/config.h"
#include "fsm.h"
#include "fsm_v2.h"
#include "fsm_v3.h"
#include "http/http.h"
#include "http/http_client.h"
#include "node/node.h"

#define CN_SERVER_SYNC_INTERVAL_MS 500
#define CN_SERVER_MAX_WAITING      10000

struct cn_proxy;
struct cn_discovery;

struct server {
    uv_loop_t *loop;
    struct cn_config cfg;
    struct cn_store *store;
    struct cn_fsm_v2 fsm;
    struct cn_mvcc *mvcc;           /* the v3 key space */
    struct cn_mvcc_lessor *lessor;  /* its leases' expiry on this member */
    struct cn_fsm_v3 fsm3;
    struct cn_fsm_both fsm_both;    /* what the node applies: both key spaces */
    struct cn_node *node;
    struct cn_api *api;
    struct cn_v3 *v3;               /* from the start; calls wait until the node is ready */
    struct cn_http_server *http;
    struct cn_grpc_server *grpc;    /* h2c connections on the client port */
    bool http_closing;
    uv_signal_t sigterm, sigint;
    int exit_code;
    int64_t t0;
    bool stopping;
    bool opening; /* the data dir is being opened on the thread pool */
    bool ready;   /* recovery finished: requests go to the api */
    /* the cluster map in force: the configuration's, or a discovered one */
    const struct cn_initial_member *initial;
    size_t ninitial;
    struct cn_initial_member discovered[CN_MAX_MEMBERS];
    size_t ndiscovered;
    /* requests that arrived during recovery (struct cn_server_waiter) */
    struct cn_list waiting;
    size_t nwaiting;
    /* the open job */
    uv_work_t open_work;
    struct cn_node_options nopt;
    struct cn_node_boot boot;
    int open_rc;
    char open_err[512];
    struct cn_node_member members[CN_MAX_MEMBERS];
    size_t nmembers;
    const char *listen_hosts[CN_MAX_URLS];
    uint16_t listen_ports[CN_MAX_URLS];
    /* joining a running cluster (--initial-cluster-state existing), discovery */
    struct cn_http_client *client;
    size_t join_next; /* next peer URL to ask */
    struct cn_discovery *disc;
    char *fallback[CN_MAX_MEMBERS * 4]; /* peer URLs for the discovery fallback proxy */
    size_t nfallback;
    struct cn_proxy *proxy; /* proxy mode */
    /* duties */
    uv_timer_t sync_timer;
    struct cn_node_req *sync_req;
    bool sync_inflight;
    uv_timer_t publish_timer;
    bool attr_published;
    bool version_inflight;
};

/* main.c */
void cn_server__notify(const char *state);
/* Proxy mode in front of peers (NULL: from the configuration); 0 or 1 (the exit code). */
int cn_server__run_proxy(struct server *s, const char *const *peers, size_t npeers);

/* startup.c */
/* Static bootstrap checks of the cluster map in force; prints etcd's message. 0 or -1. */
int cn_server__check_bootstrap(const struct server *s);
/* The founders and this member's ids from the cluster map in force. */
void cn_server__set_members(struct server *s);
/* --discovery-srv: the map from DNS SRV records. 0 or -1 (message printed). */
int cn_server__srv_bootstrap(struct server *s);
void cn_server__start_discovery(struct server *s);
void cn_server__join_next(struct server *s);
void cn_server__start_open(struct server *s);
void cn_server__handle(struct cn_http_req *req, void *ctx);
void cn_server__too_large(struct cn_http_req *req, void *ctx);
/* Answers the requests held during recovery with 503 (shutdown). */
void cn_server__drop_waiting(struct server *s);
/* The node's callbacks. */
void cn_server__on_removed(void *ctx);
int cn_server__peer_http_get(void *ctx, const char *path, struct cn_buf *body);
void cn_server__free_discovered(struct server *s);

/* duties.c */
void cn_server__duties_init(struct server *s);
void cn_server__duties_start(struct server *s);
void cn_server__duties_stop(struct server *s);

/* shutdown.c */
void cn_server__signals_start(struct server *s);
void cn_server__shutdown(struct server *s, const char *why);
/* Closes every handle left so the loop ends. */
void cn_server__close_all(struct server *s);
void cn_server__node_stopped(void *ctx);

#endif
