/* node: the consensus seam. It drives cairn's Raft core (src/raft) on the loop: persists what
 * Raft hands out in the write-ahead log (group committed fsyncs on the thread pool), sends its
 * messages through the peer transport (src/peer), applies committed entries to the store in log
 * order and answers the proposals and reads waiting on them. A follower forwards proposals to the
 * leader over the peer link and answers its client once it applies the entry itself, so the
 * answer comes from the member's own store (read-your-writes on the member the client uses).
 * One member is the same path with a quorum of one.
 *
 * Data dir layout: <data-dir>/member/{wal/,snap/,meta}, <data-dir>/.lock. */
#ifndef CN_NODE_NODE_H
#define CN_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

struct cn_node;

/* A member of the initial configuration (new cluster) or of the cluster being joined. */
struct cn_node_member {
    uint64_t id;
    size_t npeer;
    char *const *peer_urls; /* sorted */
};

enum cn_node_mode {
    CN_NODE_NEW = 0,  /* a fresh data dir founds a new cluster with `members` */
    CN_NODE_JOIN = 1, /* a fresh data dir joins a running cluster (members: for addresses) */
};

struct cn_node_options {
    const char *data_dir;
    const char *wal_dir;     /* NULL = <data-dir>/member/wal */
    uint64_t snapshot_count; /* applied entries between snapshots */
    unsigned max_snapshots;  /* snapshot files kept (0 = all) */
    unsigned max_wals;       /* unused segments kept (0 = all) */
    unsigned heartbeat_ms;
    unsigned election_ms;
    uint64_t member_id;  /* for a new data dir */
    uint64_t cluster_id; /* for a new data dir */
    const char *name;
    int mode; /* enum cn_node_mode, for a data dir without member state */
    const struct cn_node_member *members;
    size_t nmembers;
    bool force_new_cluster; /* restart as the only member, keeping the data */
    bool strict_reconfig_check;
    /* peer listeners (from --listen-peer-urls) */
    size_t nlisten;
    const char *const *listen_hosts;
    const uint16_t *listen_ports;
    /* callbacks (ctx = cb_ctx): the member learned it was removed from the cluster (the server
     * shuts down); an HTTP GET on the peer port (GET /members). */
    void (*on_removed)(void *ctx);
    int (*peer_http_get)(void *ctx, const char *path, struct cn_buf *body);
    void *cb_ctx;
};

/* What the node recovered or created, for the server's bootstrap decisions. */
struct cn_node_boot {
    bool fresh;         /* the data dir had no member state: a new cluster was created */
    uint64_t member_id; /* from the data dir when it had state */
    uint64_t cluster_id;
    char name[256];         /* the member name recorded in the data dir */
    uint64_t snap_index;    /* raft index of the snapshot loaded (0 = none) */
    uint64_t replayed;      /* log entries replayed after it */
    uint64_t dropped_bytes; /* torn tail truncated from the log */
    uint64_t dropped_records;
};

/* Opens (or creates) the member state in the data dir, takes the data-dir lock, loads the newest
 * valid snapshot into store and replays the log after it. store must be empty. On failure returns
 * a negative code with a message in errmsg (CN_ERR_LOCKED when another process holds the dir). */
int cn_node_open(uv_loop_t *loop, const struct cn_node_options *opt, struct cn_store *store,
                 struct cn_node **out, struct cn_node_boot *boot, char *errmsg, size_t errmsg_len);

/* Starts Raft, the peer listeners, ticking and campaigning (a one-member cluster elects itself at
 * once). Returns 0 or an error with a message (a peer listener could not bind). */
int cn_node_start(struct cn_node *n, char *errmsg, size_t errlen);

/* Called with the outcome of a proposal: rc 0 and res (borrowed for the call) once the command was
 * committed and applied locally; rc < 0 when it failed (CN_ERR_STOPPED, CN_ERR_TIMEOUT,
 * CN_ERR_NO_LEADER, -ENOSPC, -EIO, ...) and was not applied. */
typedef void (*cn_node_done_cb)(void *ctx, int rc, const struct cn_store_result *res);

struct cn_node_req; /* a pending proposal or read */

/* Proposes an encoded store command (copied). cb runs exactly once, later, unless the request is
 * detached first. Returns a handle for cn_node_req_detach. */
struct cn_node_req *cn_node_propose(struct cn_node *n, const void *cmd, size_t len,
                                    cn_node_done_cb cb, void *ctx);
/* Membership changes, each together with the member records it changes (records: a batch of
 * encoded store commands, cn_members_batch_*), applied in the same entry on every member. cb
 * gets res == NULL. An added member catches up as a learner and the leader promotes it to voter
 * once it has the log. */
struct cn_node_req *cn_node_add_member(struct cn_node *n, uint64_t id, const struct cn_buf *records,
                                       cn_node_done_cb cb, void *ctx);
struct cn_node_req *cn_node_remove_member(struct cn_node *n, uint64_t id,
                                          const struct cn_buf *records, cn_node_done_cb cb,
                                          void *ctx);

/* Linearizable read barrier (ReadIndex): cb(ctx, 0, NULL) once every entry committed before the
 * call has been applied locally and leadership was confirmed; rc < 0 on failure. */
struct cn_node_req *cn_node_read_index(struct cn_node *n, cn_node_done_cb cb, void *ctx);
/* The caller lost interest (its client went away): cb will not be called. The operation itself
 * still completes. */
void cn_node_req_detach(struct cn_node_req *r);

struct cn_node_status {
    uint64_t id;
    uint64_t cluster_id;
    uint64_t leader; /* 0 when none */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    const char *state;       /* "StateLeader", "StateFollower", "StateCandidate" */
    int64_t leader_since_ns; /* wall clock when the current leader was first seen */
    uint64_t leader_changes;
    uint64_t recv_append;
    uint64_t send_append;
    uint64_t proposals_committed;
    uint64_t proposals_applied;
    uint64_t proposals_failed;
    uint64_t proposals_pending;
    uint64_t snapshots;
    uint64_t conf_voters[16], conf_learners[16];
    unsigned n_voters, n_learners;
    /* leader: per follower replication health (for /v2/stats/leader) */
    unsigned n_followers;
    struct cn_node_follower {
        uint64_t id;
        uint64_t success, fail;
        double lat_current, lat_min, lat_max; /* ms, round trips of appends and heartbeats */
        uint64_t lat_n;
        double lat_sum, lat_sq;
    } followers[16];
    /* WAL fsync durations: counts per bucket (upper bounds in cn_node_fsync_buckets), sum in s. */
    uint64_t fsync_bucket[14];
    uint64_t fsync_count;
    double fsync_sum_s;
};

extern const double cn_node_fsync_buckets[14];

/* The raft index of the last applied entry and the current term (X-Raft-Index, X-Raft-Term):
 * cheap, for every response. */
void cn_node_raft_position(const struct cn_node *n, uint64_t *applied_index, uint64_t *term);

void cn_node_get_status(const struct cn_node *n, struct cn_node_status *st);

/* Whether the member learned that it was removed from the cluster (it shuts down). */
bool cn_node_removed(const struct cn_node *n);

/* Graceful stop: a leader first hands leadership to the most up-to-date follower (bounded by
 * the election timeout); then it stops taking proposals (new ones fail with CN_ERR_STOPPED), waits
 * for the flush in progress, answers or fails every pending request, syncs the log, closes its
 * handles; then calls cb. The node frees itself after cb returns. */
void cn_node_stop(struct cn_node *n, void (*cb)(void *ctx), void *ctx);

#endif
