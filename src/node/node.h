/* node: the consensus seam. It drives cairn's Raft core (src/raft) and knows no key space: a
 * state machine (struct cn_fsm) applies what commits, and everything that touches the world
 * (disk, network, time) goes through struct cn_node_io (node_io.h), for which the node carries
 * a libuv implementation over the write-ahead log and the peer transport (io_uv.c) and the
 * simulation carries its own (tests/sim). It persists what Raft hands out, sends its messages,
 * applies committed entries in log order and answers the proposals and reads waiting on them. A
 * follower forwards proposals to the leader over the peer link and answers its client once it
 * applies the entry itself, so the answer comes from the member's own state machine
 * (read-your-writes on the member the client uses). One member is the same path with a quorum
 * of one.
 *
 * Data dir layout (cn_node_open): <data-dir>/member/{wal/,snap/,meta}, <data-dir>/.lock.
 * Threads: every call on the loop thread, except cn_node_open (any one thread, before start). */
#ifndef CN_NODE_NODE_H
#define CN_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"

struct cn_node;
struct cn_node_req; /* a pending proposal or read */

/* A member of the initial configuration (new cluster) or of the cluster being joined. */
struct cn_node_member {
    uint64_t id;
    size_t npeer;
    char *const *peer_urls; /* sorted */
};

/* ---- the state machine ------------------------------------------------------------------ */

/* What applying one entry produced. */
struct cn_fsm_out {
    const void *result;   /* handed to the proposer's callback: borrowed, valid during it */
    bool members_changed; /* the member records changed: the node re-reads the peer URLs */
};

/* Membership change operations, as a state machine sees them in apply_conf. */
enum cn_node_conf_op {
    CN_NODE_CONF_ADD_LEARNER = 1, /* a new member catching up */
    CN_NODE_CONF_PROMOTE = 2,     /* a learner becomes a voter */
    CN_NODE_CONF_REMOVE = 3,
    CN_NODE_CONF_ADD_VOTER = 4, /* a founder, in the entries that bootstrap a cluster */
};

/* A replicated state machine, in the shape of canonical raft's raft_fsm. The node calls it on
 * the loop thread in log order, the same calls on every member; it must be deterministic (no
 * clock, no randomness: time arrives inside the commands). All byte arguments are borrowed for
 * the call. */
struct cn_fsm {
    void *data;
    /* A committed command at raft index (the bytes given to cn_node_propose). Returns 0, or a
     * negative code when the bytes cannot be decoded: the entry then changes nothing on any
     * member and its proposer gets the code. */
    int (*apply)(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                 struct cn_fsm_out *out);
    /* A committed membership change of member id, with the member records proposed with it
     * (cn_node_add_member / remove_member's records, or records_join/records_remove's). */
    void (*apply_conf)(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                       const void *records, size_t len, struct cn_fsm_out *out);
    /* Appends a deterministic encoding of the whole state to out. */
    void (*snapshot)(struct cn_fsm *fsm, struct cn_buf *out);
    /* Optional, all three or none: the snapshot in steps, so that its encoding runs off the
     * loop. freeze returns the state as of now, which later calls do not change; encode appends
     * what snapshot would have appended at the freeze, on any thread, while the loop goes on
     * calling apply (and restore); thaw releases the frozen state, on the loop. Without them the
     * node calls snapshot on the loop. */
    void *(*freeze)(struct cn_fsm *fsm);
    void (*encode)(void *frozen, struct cn_buf *out);
    void (*thaw)(struct cn_fsm *fsm, void *frozen);
    /* Replaces the state with a snapshot's. Returns 0, or a negative code with the state
     * unchanged. */
    int (*restore)(struct cn_fsm *fsm, const void *p, size_t len);

    /* Optional (NULL when the state machine keeps no member records): */
    /* The first peer URL recorded for member id, into url; false when none. */
    bool (*peer_url)(struct cn_fsm *fsm, uint64_t id, char *url, size_t len);
    /* Whether id was removed from the cluster (its calls are refused and told so). */
    bool (*is_removed)(struct cn_fsm *fsm, uint64_t id);
    /* The records of a founder (bootstrap) or of a member removed by --force-new-cluster. Every
     * member must produce the same bytes for the same arguments. */
    void (*records_join)(struct cn_fsm *fsm, const struct cn_node_member *m, struct cn_buf *out);
    void (*records_remove)(struct cn_fsm *fsm, uint64_t id, struct cn_buf *out);
};

/* ---- opening a member ------------------------------------------------------------------- */

enum cn_node_mode {
    CN_NODE_NEW = 0,  /* a fresh data dir founds a new cluster with `members` */
    CN_NODE_JOIN = 1, /* a fresh data dir joins a running cluster (members: for addresses) */
};

struct cn_node_options {
    const char *data_dir;
    const char *wal_dir;     /* NULL = <data-dir>/member/wal */
    uint64_t snapshot_count; /* applied entries between snapshots (0: 10000) */
    unsigned max_snapshots;  /* snapshot files kept (0 = all) */
    unsigned max_wals;       /* unused segments kept (0 = all) */
    unsigned heartbeat_ms;   /* 0: 100 */
    unsigned election_ms;    /* 0: 1000 */
    uint64_t member_id;      /* for a new data dir */
    uint64_t cluster_id;     /* for a new data dir */
    uint64_t seed;           /* election randomisation; 0: from the system's generator */
    const char *name;
    enum cn_node_mode mode; /* for a data dir without member state */
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

/* Whether data_dir holds member state (then cn_node_open restarts that member and the
 * bootstrap flags do not apply). */
bool cn_node_datadir_has_member(const char *data_dir);

/* Opens (or creates) the member state in the data dir, takes the data-dir lock, restores the
 * newest valid snapshot into fsm and replays the log after it (--force-new-cluster is applied
 * here). fsm must be empty; it is borrowed for the node's life. Blocking file I/O: call it
 * before the member serves, or off the loop (the server opens on the thread pool). On failure
 * returns a negative code with a message in errmsg (CN_ERR_LOCKED when another process holds
 * the dir). */
int cn_node_open(uv_loop_t *loop, const struct cn_node_options *opt, struct cn_fsm *fsm,
                 struct cn_node **out, struct cn_node_boot *boot, char *errmsg, size_t errmsg_len);

/* Starts Raft, the peer listeners, ticking and campaigning (a one-member cluster elects itself at
 * once). Returns 0 or an error with a message (a peer listener could not bind). */
int cn_node_start(struct cn_node *n, char *errmsg, size_t errlen);

/* ---- requests --------------------------------------------------------------------------- */

/* Called with the outcome of a request: rc 0 and res (the state machine's result, borrowed for
 * the call; NULL for reads and membership changes) once the command was committed and applied
 * locally; rc < 0 when it failed (CN_ERR_STOPPED, CN_ERR_TIMEOUT, CN_ERR_NO_LEADER, -ENOSPC,
 * -EIO, ...) and was not applied here (a timed-out proposal may still commit later: etcd's
 * "outcome unknown"). */
typedef void (*cn_node_done_cb)(void *ctx, int rc, const void *res);

/* Proposes a state machine command (copied). cb runs exactly once, later (never inside this
 * call), unless the request is detached first. Returns a handle for cn_node_req_detach. */
struct cn_node_req *cn_node_propose(struct cn_node *n, const void *cmd, size_t len,
                                    cn_node_done_cb cb, void *ctx);

/* A command written in place, for the write path: its bytes are the log entry's from the start.
 * cn_node_cmd_begin puts the node's entry header (origin, request number) in c->buf; the caller
 * appends its command right after it (cn_store_cmd_encode(&cmd, &c->buf)); cn_node_propose_cmd
 * takes the buffer, which becomes the Raft entry's payload as it is and is written to the log
 * from there: nothing between the caller's encoding and the disk copies it. (A follower copies it
 * once into the frame it forwards to the leader.) */
struct cn_node_cmd {
    struct cn_buf buf; /* the entry so far: append the command */
    uint64_t seq;      /* private: the request number in the header */
};

/* Starts c in a buffer sized for the header and exactly cmd_len more bytes (give the command's
 * encoded length, cn_store_cmd_encoded_len, so the entry keeps no slack; more still works). */
void cn_node_cmd_begin(struct cn_node *n, struct cn_node_cmd *c, size_t cmd_len);
/* Proposes c's command as cn_node_propose does. The node takes c->buf in every case (failures
 * come through cb): the caller must not touch it again, and c is left empty. */
struct cn_node_req *cn_node_propose_cmd(struct cn_node *n, struct cn_node_cmd *c,
                                        cn_node_done_cb cb, void *ctx);
/* Drops a begun command that is not proposed after all. */
void cn_node_cmd_free(struct cn_node_cmd *c);

/* Membership changes, each together with the member records it changes (a batch for the state
 * machine's apply_conf), applied in the same entry on every member. An added member catches up
 * as a learner and the leader promotes it to voter once it has the log. */
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

/* Leader: hands leadership to member id (thesis §3.10). Returns 0 once the transfer started
 * (its outcome shows in the status), CN_ERR_NO_LEADER when this member does not lead,
 * CN_ERR_INVAL when id is not a voter. */
int cn_node_transfer_leadership(struct cn_node *n, uint64_t id);

/* ---- status ----------------------------------------------------------------------------- */

enum cn_node_role {
    CN_NODE_FOLLOWER = 0,
    CN_NODE_PRE_CANDIDATE,
    CN_NODE_CANDIDATE,
    CN_NODE_LEADER,
};

#define CN_NODE_MAX_MEMBERS   16
#define CN_NODE_FSYNC_BUCKETS 14

/* A latency histogram on etcd's disk buckets (cn_node_fsync_buckets: 1 ms doubling to 8.192 s):
 * counts per bucket (not cumulative; slower ones are only in count), the count, the sum in s. */
struct cn_node_histogram {
    uint64_t bucket[CN_NODE_FSYNC_BUCKETS];
    uint64_t count;
    double sum_s;
};

/* A follower's replication health as the leader sees it (etcd's LeaderStats). */
struct cn_node_follower {
    uint64_t id;
    uint64_t success, fail;
    double lat_current, lat_min, lat_max; /* ms, round trips of appends and heartbeats */
    uint64_t lat_n;
    double lat_sum, lat_sq;
};

struct cn_node_status {
    uint64_t id;
    uint64_t cluster_id;
    uint64_t leader; /* 0 when none */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    enum cn_node_role role;
    int64_t leader_since_ns; /* wall clock when the current leader was first seen */
    uint64_t leader_changes;
    uint64_t recv_append;
    uint64_t send_append;
    uint64_t proposals_committed;
    uint64_t proposals_applied;
    uint64_t proposals_failed;
    uint64_t proposals_pending;
    uint64_t snapshots;
    uint64_t conf_voters[CN_NODE_MAX_MEMBERS], conf_learners[CN_NODE_MAX_MEMBERS];
    unsigned n_voters, n_learners;
    unsigned n_followers; /* leader only */
    struct cn_node_follower followers[CN_NODE_MAX_MEMBERS];
    /* Disk latencies: each persist (the log write and its fdatasync, with a received snapshot's
     * save when there is one), each WAL fdatasync alone, each snapshot file saved. */
    struct cn_node_histogram persist, wal_fsync, snap_save;
};

extern const double cn_node_fsync_buckets[CN_NODE_FSYNC_BUCKETS];

/* The raft index of the last applied entry and the current term (X-Raft-Index, X-Raft-Term):
 * cheap, for every response. */
void cn_node_raft_position(const struct cn_node *n, uint64_t *applied_index, uint64_t *term);

void cn_node_get_status(const struct cn_node *n, struct cn_node_status *st);

/* Whether the member learned that it was removed from the cluster (it shuts down). */
bool cn_node_removed(const struct cn_node *n);

/* Graceful stop: a leader first hands leadership to the most up-to-date follower (bounded by
 * the election timeout); then it stops taking proposals (new ones fail with CN_ERR_STOPPED), waits
 * for the disk work in progress, answers or fails every pending request, flushes the last hard
 * state, closes its handles; then calls cb. The node frees itself after cb returns. */
void cn_node_stop(struct cn_node *n, void (*cb)(void *ctx), void *ctx);

#endif
