/* node_io: the node's side of the world, as canonical raft's raft_io. The node core (node.c,
 * requests.c, envelope.c, stats.c) does no I/O of its own: it asks an implementation of
 * struct cn_node_io to persist, send, read the clock, tick and defer work, and that
 * implementation calls the node back through the cn_node_on_* entry points below. Two exist:
 * io_uv.c (libuv, the WAL and snapshot files on the thread pool, the peer transport) and
 * tests/sim's (virtual time, a virtual disk and network), so the simulation runs the very code
 * members run.
 *
 * Contract, for every implementation:
 *  1. A completion (persisted, snapshot saved or loaded, closed) is delivered later, never from
 *     inside the call that asked for it, and each exactly once, unless the node is destroyed
 *     first (cn_node_destroy).
 *  2. One persist at a time: the node asks for the next one only after on_persisted.
 *  3. Everything a request borrows (a batch's entries, a snapshot's bytes) stays valid until its
 *     completion.
 *  4. Entry points are called from the node's thread, never re-entrantly from inside a call the
 *     node made (send may fail, but it reports through its return value). */
#ifndef CN_NODE_NODE_IO_H
#define CN_NODE_NODE_IO_H

#include "node.h"
#include "raft/raft.h"

/* What must be durable before the node goes on (step 1-2 of raft.h's loop). */
struct cn_node_batch {
    const struct cn_raft_snapshot *snapshot; /* save it first (it replaces the log), or NULL */
    const struct cn_raft_entry *entries;     /* append (a lower index overwrites from there) */
    size_t n_entries;
    bool has_hard_state;
    struct cn_raft_hard_state hard_state;
    /* etcd's MustSync: false when the batch only moves the commit index, which may ride with
     * the next write instead of costing an fsync (it is re-learned from the leader). */
    bool must_sync;
};

/* A snapshot of the node's own, as io saves it. */
struct cn_node_snap {
    uint64_t term, index;
    struct cn_buf buf; /* the node's header, then (after cn_node_snap_encode) the state */
    /* private */
    struct cn_fsm *fsm;
    void *frozen; /* the fsm's frozen state, NULL when buf is already complete */
    int64_t encode_ns;
};
/* Completes snap->buf: encodes the frozen state (when there is one) into it. Any thread, once,
 * before the snapshot is saved. */
void cn_node_snap_encode(struct cn_node_snap *snap);

struct cn_node_io {
    struct cn_node *node; /* set by cn_node_new */
    void *data;           /* the implementation's */

    /* Starts: listeners, ticking every interval_ms (cn_node_on_tick). 0 or an error with a
     * message. */
    int (*start)(struct cn_node_io *io, unsigned interval_ms, char *errmsg, size_t errlen);
    /* Monotonic nanoseconds (deadlines, latencies) and the wall clock (displayed only). */
    int64_t (*now_ns)(struct cn_node_io *io);
    int64_t (*wall_ns)(struct cn_node_io *io);
    /* cn_node_on_deferred runs soon, from the loop. Calls before it ran coalesce. */
    void (*defer)(struct cn_node_io *io);

    /* Stages b. Returns true when cn_node_on_persisted will follow; false when nothing needs
     * the disk now (!must_sync and no snapshot: the records go with the next write) and the
     * node goes on at once. */
    bool (*persist)(struct cn_node_io *io, const struct cn_node_batch *b);
    /* Deletes the log up to index (a snapshot covers it), off the loop; no completion. */
    void (*release_log)(struct cn_node_io *io, uint64_t index);
    /* Saves the node's own snapshot (borrowed until the completion): first
     * cn_node_snap_encode(snap), on any thread, then snap->buf under (term, index); then
     * cn_node_on_snapshot_saved. */
    void (*save_snapshot)(struct cn_node_io *io, struct cn_node_snap *snap);
    /* Loads the newest saved snapshot, to send to a follower: cn_node_on_snapshot_loaded. */
    void (*load_snapshot)(struct cn_node_io *io);

    /* Transport. send queues a payload (enum cn_peer_kind); 0 or an error (the node retries
     * what Raft retries). set_peer points it at member id (url NULL: forget it and close its
     * connections). */
    int (*send)(struct cn_node_io *io, uint64_t to, uint8_t kind, const void *p, size_t len);
    void (*set_peer)(struct cn_node_io *io, uint64_t id, const char *url);

    /* Stop: flushes what is staged (the last hard state), closes everything, then
     * cn_node_on_closed. */
    void (*close)(struct cn_node_io *io);
    /* Frees the implementation (after on_closed, or instead of close in cn_node_destroy). */
    void (*free)(struct cn_node_io *io);
};

/* What a member recovered from its disk. Borrowed by cn_node_new. */
struct cn_node_state {
    bool fresh; /* nothing persisted: bootstrap (CN_NODE_NEW) or wait to be added (JOIN) */
    struct cn_raft_hard_state hs;
    uint64_t snap_term, snap_index;
    const void *snap; /* the node snapshot saved at snap_index (cn_node__snap_*), NULL: none */
    size_t snap_len;
    const struct cn_raft_entry *ents; /* the log after the snapshot, contiguous */
    size_t n_ents;
};

/* Creates a member on io and fsm from what it recovered: restores the snapshot into fsm and
 * loads Raft. opt is copied (its data_dir, wal_dir and listener fields are io_uv's business).
 * tune, when not NULL, may change the Raft configuration before it is used (tests). On failure
 * returns NULL with a message; io is then still the caller's. */
struct cn_node *cn_node_new(const struct cn_node_options *opt, struct cn_fsm *fsm,
                            struct cn_node_io *io, const struct cn_node_state *st,
                            void (*tune)(void *ctx, struct cn_raft_config *cfg), void *tune_ctx,
                            char *errmsg, size_t errlen);
/* A crash: frees the node and its io at once, without answering anything (tests). */
void cn_node_destroy(struct cn_node *n);

/* ---- entry points for the io implementation --------------------------------------------- */

void cn_node_on_tick(struct cn_node *n);
void cn_node_on_deferred(struct cn_node *n);
/* The batch of the last persist is durable (rc 0) or failed (-ENOSPC, -EIO...; the log rolled
 * back to what was durable). dur_ns: how long the write and fsync took. */
void cn_node_on_persisted(struct cn_node *n, int rc, int64_t dur_ns);
void cn_node_on_snapshot_saved(struct cn_node *n, int rc);

/* What a disk operation took, measured around the call where it ran, for /metrics. */
enum cn_node_disk_op {
    CN_NODE_DISK_WAL_FSYNC, /* one fdatasync of the log (etcd_disk_wal_fsync_duration_seconds) */
    CN_NODE_DISK_SNAP_SAVE, /* one snapshot file written and synced (etcd's backend commit) */
};
void cn_node_on_disk_timing(struct cn_node *n, enum cn_node_disk_op op, int64_t dur_ns);
/* The newest snapshot (p/len borrowed for the call), or rc < 0. */
void cn_node_on_snapshot_loaded(struct cn_node *n, int rc, uint64_t term, uint64_t index,
                                const void *p, size_t len);
/* A payload from member from (borrowed for the call). */
void cn_node_on_receive(struct cn_node *n, uint64_t from, uint8_t kind, const void *p, size_t len);
/* The connection member from dialed to us closed (its process exited or closed the link). */
void cn_node_on_peer_closed(struct cn_node *n, uint64_t from);
/* Member by told us we were removed. */
void cn_node_on_told_removed(struct cn_node *n, uint64_t by);
/* Whether member id was removed (the transport refuses it). */
bool cn_node_peer_is_removed(struct cn_node *n, uint64_t id);
/* An HTTP GET on the peer port: fills body, returns the status. */
int cn_node_peer_http_get(struct cn_node *n, const char *path, struct cn_buf *body);
void cn_node_on_closed(struct cn_node *n);

/* ---- for tests ------------------------------------------------------------------------- */

/* The Raft core (status, progress). */
const struct cn_raft *cn_node_raft(const struct cn_node *n);
/* Called with every entry the node applied, after applying it (NULL to stop). */
void cn_node_observe_apply(struct cn_node *n, void (*fn)(void *ctx, const struct cn_raft_entry *e),
                           void *ctx);

#endif
