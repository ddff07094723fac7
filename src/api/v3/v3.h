/* api/v3: etcd 3.4's v3 client API (KV, Lease, Maintenance.Status) on the node and the mvcc key
 * space, served over gRPC (src/h2, h2c on the client port) and as JSON through etcd's gateway
 * routes (/v3/..., HTTP/1.1 on the same port).
 *
 * Every call is the same pipeline, whichever wire it came on: decode the request message and
 * check it as etcd's v3rpc layer does -> a local read (serializable Range), a read behind a
 * ReadIndex barrier (linearizable Range), or a command proposed through the node (writes, leases,
 * compaction) -> etcd's response message with its header (cluster_id, member_id, revision,
 * raft_term), or etcd's error (v3_errors.def). Writes are answered from the member's own apply,
 * so a client reads its writes on the member it uses; a follower's proposals reach the leader
 * through the node.
 *
 * The replicated half (what applying a v3 command does) is apply.h, a pure layer over mvcc that
 * the server's state machine calls; this header is the serving half.
 *
 * Threads: everything on the loop thread. */
#ifndef CN_API_V3_V3_H
#define CN_API_V3_V3_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/http.h"
#include "node/node.h"

struct cn_v3;
struct cn_v3_apply;
struct cn_store;

struct cn_v3_options {
    uint64_t member_id;
    uint64_t cluster_id;
    uint64_t max_request_bytes; /* a request over it: "etcdserver: request is too large" */
    uint64_t max_txn_ops;       /* 0: 128 */
    unsigned election_ms;       /* request timeouts and the minimum lease TTL */
    unsigned heartbeat_ms;
    bool gateway; /* serve /v3/ and /v3beta/ JSON routes (--enable-grpc-gateway) */
    /* --auto-compaction-*: the leader compacts (0: off) */
    bool auto_compaction_revision;
    uint64_t auto_compaction_retention;
    struct cn_store *members; /* the v2 store holding the member records (borrowed) */
};

/* The api over the state machine's v3 half (borrowed; it lives as long as the process) and the
 * node (borrowed; NULL while the data dir is recovered: calls are held until cn_v3_set_node). */
struct cn_v3 *cn_v3_new(uv_loop_t *loop, const struct cn_v3_options *opt, struct cn_v3_apply *ap,
                        struct cn_node *node);
/* The member's ids, once the data dir told them (before cn_v3_set_node). */
void cn_v3_set_ids(struct cn_v3 *api, uint64_t member_id, uint64_t cluster_id);
/* The member is ready: held calls are served. */
void cn_v3_set_node(struct cn_v3 *api, struct cn_node *node);
/* Shutdown begins: questions to the leader and keepalive streams end ("server stopped"). */
void cn_v3_stop(struct cn_v3 *api);
/* Ends every call in flight (their clients get "etcdserver: server stopped") and frees the api. */
void cn_v3_free(struct cn_v3 *api);

/* The gRPC method table of the v3 services, for cn_grpc_server_new (owned by the api, valid
 * until cn_v3_free; call once). */
struct cn_grpc_method;
void cn_v3_register_grpc(struct cn_v3 *api, struct cn_grpc_method **table, size_t *n);

/* The JSON gateway: true when req is a gateway route (or a /v3 path that gets the gateway's
 * 404), which is then answered; false: not the gateway's, req untouched. */
bool cn_v3_gateway_handle(struct cn_v3 *api, struct cn_http_req *req);

/* What the leader does on its own, every tick of the server's duty timer: expire leases (each
 * expired lease is revoked through the log), auto-compaction. now_ms: monotonic clock. */
void cn_v3_tick(struct cn_v3 *api, uint64_t now_ms);

#endif
