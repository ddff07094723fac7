/* api/v3 internals: the api object, one call whatever its wire, the method table.
 *
 *   call.c     a unary call: decode, dispatch, answer (gRPC or the gateway), cancel
 *   kv.c       KV: Range, Put, DeleteRange, Txn, Compact
 *   lease.c    Lease: Grant, Revoke, KeepAlive (a bidi stream), TimeToLive, Leases; expiry
 *   maint.c    Maintenance.Status
 *   watch.c    Watch: the bidi stream, synced and unsynced watchers
 *   gateway.c  the JSON routes
 *   apply.c    the replicated half (apply.h), check.c the v3rpc checks
 *
 * A call's life: it is created when its request arrived and decoded; the handler answers it at
 * once (a local read) or after a node request completes (a write, a read barrier). If the client
 * goes away first, the call is marked gone and its node request detached; it is freed exactly
 * once, by call_end. */
#ifndef CN_API_V3_V3_INT_H
#define CN_API_V3_V3_INT_H

#include "api/v3/apply.h"
#include "api/v3/v3.h"
#include "common/list.h"
#include "h2/grpc.h"

struct v3call;
struct v3method;
struct forward;
struct cn_http_client;

/* etcd's gRPC receive limit is --max-request-bytes plus this (grpcOverheadBytes). */
#define CN_V3_REQUEST_OVERHEAD (512 * 1024)

/* What a gRPC method entry's ctx points at. */
struct v3binding {
    struct cn_v3 *api;
    const struct v3method *m;
};

/* One unary method: its gRPC path, the gateway route, its messages and its handler. */
struct v3method {
    const char *grpc_path;
    const char *route; /* "/v3/kv/range"; NULL: not on the gateway */
    const ProtobufCMessageDescriptor *req, *resp;
    void (*handle)(struct v3call *c);
};

struct cn_v3 {
    uv_loop_t *loop;
    struct cn_v3_options opt;
    struct cn_v3_apply *ap;
    struct cn_node *node;
    int64_t min_lease_ttl;
    uint64_t lease_id_next; /* the proposer's lease id generator */
    struct cn_list calls;   /* struct v3call in flight */
    size_t nheld;           /* of which held until the node is set */
    bool leader;            /* as of the last tick (the lessor is primary) */
    uint64_t last_compact_check_ms;
    struct cn_list keepalives; /* struct keepalive streams */
    /* auto-compaction (periodic): the revisions seen at each check, oldest first */
    struct {
        uint64_t at_ms;
        int64_t rev;
    } seen[64];
    size_t nseen;
    struct cn_node_req *compact_req, *revoke_req;
    struct cn_list forwards;       /* struct forward: questions to the leader */
    struct cn_http_client *client; /* for them, made on first use */
    struct v3binding *bindings;
    struct cn_grpc_method *grpc_methods;
    /* Watch (watch.c) */
    struct cn_list wstreams;           /* struct wstream */
    struct cn_list wsynced, wunsynced; /* struct watcher */
    size_t nwatchers;
    uv_timer_t wtimer; /* catches unsynced watchers up */
    bool wtimer_init, wstopped;
    uint64_t wprogress_at;
    struct cn_mvcc_event *wbuf; /* catch-up scratch */
    size_t wbuf_n, wbuf_cap;
};

enum v3wire { V3_GRPC, V3_GATEWAY };

struct v3call {
    struct cn_list link;
    struct cn_v3 *api;
    const struct v3method *m;
    enum v3wire wire;
    struct cn_grpc_call *gc;  /* V3_GRPC */
    struct cn_http_req *hreq; /* V3_GATEWAY */
    ProtobufCMessage *req;    /* decoded (owned) */
    bool json_req;            /* req came from pbjson (its allocator), else protobuf-c's */
    const void *raw;          /* the request's protobuf bytes, valid only during dispatch */
    size_t raw_len;
    struct cn_node_req *nreq; /* the node request it waits on */
    void (*done)(struct v3call *c, const struct cn_v3_result *res); /* a proposal's */
    void (*after)(struct v3call *c);                                /* a barrier's */
    struct cn_arena arena; /* the response of a local read */
    bool held;             /* waiting for the member to finish recovering */
    struct forward *fwd;   /* asked of the leader (forward.c) */
};

/* Answers c with resp (its header completed here: cluster, member, raft term; the revision is
 * the caller's) and ends it. */
void cn_v3__reply(struct v3call *c, ProtobufCMessage *resp, Etcdserverpb__ResponseHeader *h);
/* Answers c with etcd's error and ends it. */
void cn_v3__fail(struct v3call *c, enum cn_v3_err e);
/* Answers with a gRPC status and message (errors of the gRPC layer itself). */
void cn_v3__fail_status(struct v3call *c, int code, const char *msg);
/* Proposes the command kind with the request's bytes (or the message, packed); done(c, res)
 * runs with the apply's result, or c is failed with the node's error. */
void cn_v3__propose(struct v3call *c, enum cn_v3_kind kind, const ProtobufCMessage *msg,
                    void (*done)(struct v3call *c, const struct cn_v3_result *res));
/* Runs fn(c) once a ReadIndex barrier passed (linearizable reads), or fails c. */
void cn_v3__after_barrier(struct v3call *c, void (*fn)(struct v3call *c));

/* The gateway's half of reply and fail (gateway.c). */
void cn_v3__gateway_reply(struct v3call *c, const ProtobufCMessage *resp);
void cn_v3__gateway_fail(struct v3call *c, int code, const char *msg);

/* A header for a response: cluster, member, term, revision. */
void cn_v3__fill_header(struct cn_v3 *api, Etcdserverpb__ResponseHeader *h, int64_t rev);

/* A write's completion: the apply's response sent with its header completed (kv.c). */
void cn_v3__write_done(struct v3call *c, const struct cn_v3_result *res);

/* The handlers (kv.c, lease.c, maint.c). */
void cn_v3__range(struct v3call *c);
void cn_v3__put(struct v3call *c);
void cn_v3__delete_range(struct v3call *c);
void cn_v3__txn(struct v3call *c);
void cn_v3__compact(struct v3call *c);
void cn_v3__lease_grant(struct v3call *c);
void cn_v3__lease_revoke(struct v3call *c);
void cn_v3__lease_ttl(struct v3call *c);
void cn_v3__lease_leases(struct v3call *c);
void cn_v3__status(struct v3call *c);
void cn_v3__member_list(struct v3call *c);

/* watch.c: the Watch stream's gRPC callbacks, the apply's hooks, the tick, shutdown. */
void cn_v3__watch_message(struct cn_grpc_call *gc, const void *msg, size_t len, void *ctx);
void cn_v3__watch_half_close(struct cn_grpc_call *gc, void *ctx);
void cn_v3__watch_cancel(struct cn_grpc_call *gc, void *ctx);
void cn_v3__watch_events(void *ctx, const struct cn_mvcc_event *ev, size_t n, int64_t rev);
void cn_v3__watch_restored(void *ctx);
void cn_v3__watch_tick(struct cn_v3 *api, uint64_t now_ms);
void cn_v3__watches_close(struct cn_v3 *api);
void cn_v3__watches_free(struct cn_v3 *api);

/* The unary method table and its size (call.c). */
extern const struct v3method cn_v3__methods[];
extern const size_t cn_v3__nmethods;
const struct v3method *cn_v3__method_by_route(const char *path, size_t len);

/* Frees a call whose client went away (its node request is detached). */
void cn_v3__call_drop(struct v3call *c);
void cn_v3__calls_stop(struct cn_v3 *api);
void cn_v3__dispatch_held(struct cn_v3 *api);

/* Dispatches a decoded request (call.c); the gateway's entry point. */
void cn_v3__dispatch(struct v3call *c);
struct v3call *cn_v3__call_new(struct cn_v3 *api, const struct v3method *m, enum v3wire wire);

/* forward.c: asks the leader's gateway (route) the question req; done runs once, later or
 * inside this call (no leader: CN_V3_E_NO_LEADER), with the answer (owned by done: free it with
 * cn_pbjson_free) or an error. *out: the handle for cn_v3__forward_cancel (NULL when done ran
 * already). */
void cn_v3__forward(struct cn_v3 *api, const char *route, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, bool stream,
                    void (*done)(void *ctx, enum cn_v3_err e, ProtobufCMessage *resp), void *ctx,
                    struct forward **out);
/* Abandons a question: done will not run. */
void cn_v3__forward_cancel(struct forward *f);
/* Every question fails with "server stopped"; the client closes. */
void cn_v3__forwards_stop(struct cn_v3 *api);

/* lease.c: the KeepAlive stream's gRPC callbacks, the lessor duties, the gateway keepalive. */
void cn_v3__keepalive_message(struct cn_grpc_call *gc, const void *msg, size_t len, void *ctx);
void cn_v3__keepalive_half_close(struct cn_grpc_call *gc, void *ctx);
void cn_v3__keepalive_cancel(struct cn_grpc_call *gc, void *ctx);
void cn_v3__lease_tick(struct cn_v3 *api, uint64_t now_ms);
void cn_v3__keepalives_close(struct cn_v3 *api);
void cn_v3__lease_keepalive_unary(struct v3call *c);

#endif
