/* node: the consensus seam. It owns the member's durable log and drives the state machine: a
 * proposal is appended to the write-ahead log, made durable (fsync, group committed), applied to
 * the store in log order, and only then answered. Today one member is its own quorum; the Raft
 * issue replaces the inside of this module (raft + peer transport) without changing this header,
 * so no API handler changes when cairn becomes a cluster.
 *
 * Data dir layout: <data-dir>/member/{wal/,snap/,meta,lock}. Everything runs on one libuv loop;
 * file writes and fsyncs run on libuv's thread pool. */
#ifndef CN_NODE_NODE_H
#define CN_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

struct cn_node;

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
};

/* What the node recovered or created, for the server's bootstrap decisions. */
struct cn_node_boot {
    bool fresh;         /* the data dir had no member state: a new cluster was created */
    uint64_t member_id; /* from the data dir when it had state */
    uint64_t cluster_id;
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

/* Starts ticking and campaigning (a one-member cluster elects itself at once). */
void cn_node_start(struct cn_node *n);

/* Called with the outcome of a proposal: rc 0 and res (borrowed for the call) once the command was
 * committed and applied locally; rc < 0 when it failed (CN_ERR_STOPPED, CN_ERR_TIMEOUT,
 * CN_ERR_NO_LEADER, -ENOSPC, -EIO, ...) and was not applied. */
typedef void (*cn_node_done_cb)(void *ctx, int rc, const struct cn_store_result *res);

struct cn_node_req; /* a pending proposal or read */

/* Proposes an encoded store command (copied). cb runs exactly once, later, unless the request is
 * detached first. Returns a handle for cn_node_req_detach. */
struct cn_node_req *cn_node_propose(struct cn_node *n, const void *cmd, size_t len,
                                    cn_node_done_cb cb, void *ctx);
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

/* Graceful stop: stops taking proposals (new ones fail with CN_ERR_STOPPED), waits for the
 * flush in progress, answers or fails every pending request, syncs the log, closes its handles;
 * then calls cb. The node frees itself after cb returns. */
void cn_node_stop(struct cn_node *n, void (*cb)(void *ctx), void *ctx);

#endif
