/* node internals shared by the node's files: struct cn_node, the request lifecycle, the entry
 * envelope and the stats.
 *
 * Design notes
 *
 *   The loop (cn_node__process, node.c) follows raft.h's contract: feed inputs, take a ready
 *   batch, send a leader's appends at once (thesis §10.2.1), hand the entries and hard state to
 *   io->persist (the fsync runs off the loop), and once io reports them durable send the rest of
 *   the batch, apply its committed entries to the fsm, serve its reads and advance. While a
 *   batch is out Raft takes no input: ticks, peer payloads and local requests wait in the inbox
 *   and the request queues, and go in together once it is done (group commit).
 *
 *   Entries (envelope.c). A normal entry carries [u8 1][uvarint origin][uvarint seq][command];
 *   a conf entry's context carries [u8 1][uvarint origin][uvarint seq][records]. Every member
 *   applies both the same way; the member whose id is origin also answers its request seq with
 *   the result of its own apply. An empty normal entry is a new leader's no-op.
 *
 *   One copy per write. A normal request's data is the entry's payload itself, written by its
 *   proposer after the header (cn_node_cmd_begin) and sized exactly. On the leader it moves into
 *   Raft (cn_raft_propose_owned), and io persists Raft's entries without copying them (io_uv:
 *   cn_wal_append_entry_borrowed), relying on raft.h's rule that no payload leaves the log while
 *   a batch is out: the node gives Raft no input from cn_raft_ready until the persist completed
 *   and finish_ready advanced (ticks, peer payloads and requests wait, see the loop above), so
 *   a new leader's overwrite of those entries is stepped only after the write ended. A forwarded
 *   request's body, copied once out of the peer's read buffer into its inbox item, moves into
 *   Raft the same way on the leader.
 *
 *   Requests (requests.c), a small state machine per request:
 *
 *       QUEUED --feed: leader proposes / follower sends PROP--> WAITING --applied--> answered
 *         ^                                                        |
 *         +----------- PROP_FAIL with a retryable code ------------+
 *       reads: QUEUED --cn_raft_read_index--> READ_WAIT --ready.reads--> READ_READY
 *              --applied >= index--> answered; READ_WAIT goes back to QUEUED on a leader change.
 *
 *   Invariants:
 *    1. A request's callback runs at most once (cn_node__finish_req unlinks and frees it), and
 *       never inside the call that created the request (early failures wait in `done` for
 *       io->defer).
 *    2. Every request has a deadline (5 s + 2 x election timeout, etcd's). A proposal that
 *       reached Raft may still commit after it: its client gets the timeout ("outcome unknown")
 *       and the request stays detached in `waiting` until its entry applies or a minute passes.
 *    3. Nothing is applied that was not durable here first: finish_ready runs only after
 *       io->persist completed (or needed no disk).
 *    4. A failed persist fails the requests waiting here and is retried on every tick; Raft takes
 *       no input meanwhile, so the member acknowledges nothing it has not made durable.
 *
 *   Peers (transport.c): payloads wait in the inbox; a leader's snapshot message gets its bytes
 *   there, loaded through io when they are not in memory.
 *
 *   Snapshots: every snapshot_count applied entries the fsm is encoded (with the configuration
 *   at that index, envelope.c's framing) and saved through io; then Raft's log is compacted to it
 *   and io releases the log before it. A follower too far behind gets the newest saved
 *   snapshot, loaded through io when it is not the one in memory. */
#ifndef CN_NODE_NODE_INT_H
#define CN_NODE_NODE_INT_H

#include "common/list.h"
#include "node_io.h"

struct cn_wal;
struct cn_snap;

enum { CN_NODE__OPEN, CN_NODE__RUNNING, CN_NODE__TRANSFER, CN_NODE__STOPPING, CN_NODE__CLOSED };
enum { CN_NODE__QUEUED, CN_NODE__WAITING, CN_NODE__READ_WAIT, CN_NODE__READ_READY };
enum { CN_NODE__K_NORMAL = 0, CN_NODE__K_CONF = 1 };

/* Inbox items that do not come from a peer payload. */
enum { CN_NODE__IN_SNAP_REPORT = 100, CN_NODE__IN_LEADER_GONE = 101 };

/* WAL entry types: 0 normal (empty: no-op), 1 the first cairn's no-op, 2 conf. */
#define CN_NODE__WAL_NORMAL  0
#define CN_NODE__WAL_NOOP_V0 1
#define CN_NODE__WAL_CONF    2

#define CN_NODE__MAX_INBOX      100000
#define CN_NODE__PROMOTE_WITHIN 1000 /* a learner this close to the leader's log is promoted */

struct cn_node_req {
    struct cn_list link;
    uint64_t seq;
    int64_t deadline_ns;
    cn_node_done_cb cb;
    void *ctx;
    int state;
    uint8_t kind; /* CN_NODE__K_NORMAL or _CONF */
    bool is_read;
    bool detached;
    bool proposed;   /* reached Raft (ours or the leader's): it may still commit */
    uint8_t conf_op; /* K_CONF: the change */
    uint64_t conf_id;
    int rc; /* for early failures */
    uint64_t index;
    /* QUEUED: what is proposed, the entry's payload (the envelope and command, sized exactly) or
     * the conf change encoding. A leader hands a normal one to Raft (data is then empty); a
     * follower keeps it for a retry, and sends it behind a PROP header ([uvarint seq][u8 kind]). */
    struct cn_buf data;
};

struct cn_node__inbox_item {
    uint8_t what; /* CN_PEER_KIND_RAFT, _PROP, _PROP_FAIL, or CN_NODE__IN_* */
    uint64_t from;
    struct cn_buf data; /* PROP: the body alone, sized exactly (Raft may take it) */
    uint64_t seq;       /* PROP: the follower's request */
    uint8_t kind;       /* PROP: CN_NODE__K_* */
};

struct cn_node__follower_stats {
    uint64_t id;
    int64_t sent_ns; /* an append/heartbeat out, not answered yet */
    struct cn_node_follower st;
};

struct cn_node__stats {
    uint64_t committed, applied_count, failed;
    uint64_t recv_append, send_append;
    int64_t leader_since_ns;
    uint64_t leader_changes;
    struct cn_node__follower_stats fstats[CN_NODE_MAX_MEMBERS];
    unsigned nfstats;
    struct cn_node_histogram persist, wal_fsync, snap_save;
    uint64_t snapshots;
};

struct cn_node {
    struct cn_node_io *io;
    struct cn_fsm *fsm;
    int state;
    char *name;
    uint64_t id, cluster_id;
    struct cn_node_options opt;     /* name and members point at the copies below */
    struct cn_node_member *members; /* copies: founders (NEW) or addresses (JOIN) */
    size_t nmembers;
    bool fresh;
    /* raft */
    struct cn_raft *raft;
    bool in_ready;
    struct cn_raft_ready rd;
    uint64_t lead;
    uint8_t role;
    uint64_t term;
    uint64_t applied, applied_term, snap_index;
    bool removed, removed_told;
    bool persisting; /* a persist is out */
    bool io_retry;   /* the batch failed to persist: staged again on the next tick */
    uint64_t synced_term, synced_vote; /* the hard state's term and vote known durable */
    /* inputs waiting for the batch */
    unsigned ticks;
    struct cn_node__inbox_item *inbox;
    size_t ninbox, capinbox;
    uint64_t compact_to;
    uint64_t transfer_to;
    uint64_t release_to;
    /* requests */
    uint64_t next_seq;
    struct cn_list queued, waiting, reads;
    struct cn_list done; /* failed early: answered on the next deferred call */
    uint64_t npending;
    struct cn_buf frame; /* a follower's PROP frame, reused */
    struct cn_node__stats stats;
    /* snapshot creation */
    bool snapping;
    struct cn_node_snap snap; /* the one being saved */
    int64_t snap_start_ns, snap_freeze_ns;
    /* the snapshot sent to followers (loaded through io on demand) */
    struct cn_buf send_snap;
    uint64_t send_snap_index;
    bool snap_loading;
    struct cn_raft_msg snap_wanted[CN_NODE_MAX_MEMBERS]; /* snapshot sends waiting for it */
    unsigned n_snap_wanted;
    /* stop */
    int64_t transfer_deadline;
    void (*stop_cb)(void *ctx);
    void *stop_ctx;
    bool closing;
    bool in_process;
    /* tests */
    void (*observe)(void *ctx, const struct cn_raft_entry *e);
    void *observe_ctx;
};

/* node.c */
void cn_node__process(struct cn_node *n);
void cn_node__kick(struct cn_node *n);
static inline bool cn_node__accepting(const struct cn_node *n)
{
    return n->state == CN_NODE__RUNNING && !n->removed;
}

/* transport.c */
bool cn_node__alive(const struct cn_node *n);
void cn_node__inbox_push(struct cn_node *n, uint8_t what, uint64_t from, const void *p, size_t len);
/* A PROP frame from a follower: its body goes into the inbox alone (an undecodable frame names
 * no request to answer: it is dropped). */
void cn_node__inbox_push_prop(struct cn_node *n, uint64_t from, const void *p, size_t len);
void cn_node__drain_inbox(struct cn_node *n);
void cn_node__send_msg(struct cn_node *n, struct cn_raft_msg *m);
/* Points the transport at every member of the configuration the state machine records. */
void cn_node__refresh_peers(struct cn_node *n);

/* requests.c */
struct cn_node_req *cn_node__new_req(struct cn_node *n, bool is_read, uint64_t seq,
                                     cn_node_done_cb cb, void *ctx);
struct cn_node_req *cn_node__fail_later(struct cn_node *n, struct cn_node_req *r, int rc);
void cn_node__finish_req(struct cn_node *n, struct cn_node_req *r, int rc, const void *res);
struct cn_node_req *cn_node__find_waiting(struct cn_node *n, uint64_t seq);
/* Leader: proposes a queued request's data or a forwarded body. A normal one moves into Raft
 * on success (body is left empty); anything else stays in body. */
int cn_node__raft_propose(struct cn_node *n, uint8_t kind, struct cn_buf *body);
/* feed's part: queued proposals to Raft or to the leader, queued reads to ReadIndex. */
void cn_node__submit(struct cn_node *n);
/* A forwarded proposal (an inbox item of a PROP frame) / a PROP_FAIL from the leader. */
void cn_node__on_prop(struct cn_node *n, struct cn_node__inbox_item *it);
void cn_node__on_prop_fail(struct cn_node *n, const void *p, size_t len);
void cn_node__expire(struct cn_node *n, int64_t now_ns);
void cn_node__answer_done(struct cn_node *n);
void cn_node__fail_all(struct cn_node *n, struct cn_list *l, int rc);
/* The reads ready in rd become READ_READY; those applied are answered. */
void cn_node__reads_ready(struct cn_node *n, const struct cn_raft_ready *rd);
void cn_node__serve_reads(struct cn_node *n);
void cn_node__requeue_reads(struct cn_node *n);

/* envelope.c: pure codecs (fuzzed: fuzz/envelope) */
#define CN_NODE__ENV_VERSION  1
#define CN_NODE__SNAP_MAGIC   "CNND"
#define CN_NODE__SNAP_VERSION 1
void cn_node__env_header(struct cn_buf *b, uint64_t origin, uint64_t seq);
/* Splits an envelope: false when p is not one. *rest borrows from p. */
bool cn_node__env_decode(const void *p, size_t len, uint64_t *origin, uint64_t *seq,
                         const uint8_t **rest, size_t *rest_len);
/* The PROP frame a follower sends for a queued request, and the PROP_FAIL answer. */
void cn_node__prop_encode(struct cn_buf *b, uint64_t seq, uint8_t kind);
bool cn_node__prop_decode(const void *p, size_t len, uint64_t *seq, uint8_t *kind,
                          const uint8_t **body, size_t *body_len);
void cn_node__prop_fail_encode(struct cn_buf *b, uint64_t seq, int rc);
bool cn_node__prop_fail_decode(const void *p, size_t len, uint64_t *seq, int *rc);
/* The node snapshot: [CNND][u8 version][conf][fsm bytes]. */
void cn_node__snap_header(struct cn_buf *b, const struct cn_raft_conf *conf);
int cn_node__snap_decode(const void *p, size_t len, struct cn_raft_conf *conf, const void **fsm,
                         size_t *fsm_len);

/* stats.c */
struct cn_node__follower_stats *cn_node__fstat_of(struct cn_node *n, uint64_t id);
void cn_node__note_sent(struct cn_node *n, const struct cn_raft_msg *m, int rc);
void cn_node__note_received(struct cn_node *n, const struct cn_raft_msg *m);
void cn_node__note_fsync(struct cn_node *n, int64_t dur_ns);
void cn_node__note_leader(struct cn_node *n, uint64_t lead);

/* io_uv.c: the libuv member, for recover.c. It owns wal, *snap (moved in) and lock_fd from
 * here on. fresh: the member dir was created by this open, and goes again if start fails (a
 * first start that failed leaves nothing behind, so a retry starts fresh). */
struct cn_node_io *cn_node__io_uv_new(uv_loop_t *loop, const struct cn_node_options *opt,
                                      struct cn_wal *wal, struct cn_snap *snap, int lock_fd,
                                      const char *member_dir, bool fresh);

#endif
