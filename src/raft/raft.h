/* raft: cairn's Raft consensus core, a pure and deterministic state machine in the shape of
 * etcd's raft package. It owns the in-memory log (from the last compaction point on), the
 * per-follower replication progress, elections, ReadIndex, leadership transfer and one-at-a-time
 * membership changes. It does no I/O: no sockets, files, clocks, threads or globals. Time
 * arrives as cn_raft_tick(), randomness from the seed in the config, messages through
 * cn_raft_step(), and everything the caller must do comes back in a ready batch.
 *
 * The loop a caller runs (src/node on libuv, tests/sim on virtual time):
 *
 *     cn_raft_tick / cn_raft_step / cn_raft_propose / cn_raft_read_index / ...   (any number)
 *     if (cn_raft_has_ready(r)) {
 *         cn_raft_ready(r, &rd);
 *         1. install rd.snapshot if any: save it durably, drop the whole persisted log (the
 *            snapshot replaces it), load it into the state machine;
 *         2. append rd.entries to the log and save rd.hard_state, then fsync.  An entry whose
 *            index is already in the persisted log replaces the persisted suffix from there;
 *         3. send rd.msgs (only now: votes and acks promise what step 2 made durable);
 *         4. apply rd.committed in order, then serve rd.reads (each is safe once the entries
 *            up to its index are applied, which step 4 has just done);
 *         cn_raft_advance(r, &rd);
 *     }
 *
 * Ownership and lifetimes:
 *   - Everything reachable from a ready batch (entries, messages and their entries, the
 *     snapshot data, reads) is owned by the raft object and valid until cn_raft_advance().
 *     Between cn_raft_ready() and cn_raft_advance() the caller must give that object no input
 *     (tick, step, propose, read_index, transfer, compact ...; cn_raft_status() is fine). A
 *     node that must wait for an fsync queues its inputs meanwhile, as tests/sim does.
 *   - Inputs are borrowed for the duration of the call: cn_raft_step() copies whatever of the
 *     message it keeps (entry payloads, snapshot data); cn_raft_propose() copies the payload.
 *     The one exception is cn_raft_propose_owned(), which takes the payload itself.
 *   - Entry payloads belong to the log. Each is allocated once (copied in by step, propose or
 *     load, or taken by propose_owned) and freed once, with cn_free, when its entry leaves the
 *     log: truncated by a new leader's conflicting entries, compacted (cn_raft_compact) or
 *     replaced by a snapshot, or at cn_raft_free(). None of that can happen while a batch is
 *     out (no input until cn_raft_advance()), so the caller may keep borrowing rd.entries'
 *     payloads until then, e.g. for a write that completes on another thread; messages in a
 *     batch point at the log's payloads and own none. A payload never changes while in the
 *     log.
 *   - A message of type CN_RAFT_MSG_SNAP produced by the leader carries only the snapshot's
 *     metadata (snap_data == NULL): the caller attaches the bytes of the snapshot it saved at
 *     that index before sending. A received CN_RAFT_MSG_SNAP must carry them.
 *
 * Thesis references are to Diego Ongaro, "Consensus: Bridging Theory and Practice" (2014). */
#ifndef CN_RAFT_RAFT_H
#define CN_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Largest number of members (voters + learners) in a configuration. */
#define CN_RAFT_MAX_MEMBERS 16

/* Member ids are non-zero (0 means "none") and never reused for another member: a removal,
 * once committed, is final (as etcd's random member ids make it). */
#define CN_RAFT_NONE 0

enum cn_raft_role {
    CN_RAFT_FOLLOWER = 0,
    CN_RAFT_PRE_CANDIDATE,
    CN_RAFT_CANDIDATE,
    CN_RAFT_LEADER,
};

enum cn_raft_entry_type {
    CN_RAFT_ENTRY_NORMAL = 0, /* state machine command (may be empty: a new leader's entry) */
    CN_RAFT_ENTRY_CONF = 1,   /* membership change, data = cn_raft_conf_change encoding */
};

/* A log entry, in the shape the WAL stores: {term, index, type, data}. */
struct cn_raft_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type; /* enum cn_raft_entry_type */
    size_t len;
    void *data; /* NULL when len == 0 */
};

/* What must be durable before any message of the same batch is sent. Same shape as the WAL's. */
struct cn_raft_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};

/* A configuration: voters take part in elections and commitment, learners only receive the
 * log. An id is in at most one of the two sets. */
struct cn_raft_conf {
    uint32_t n_voters;
    uint32_t n_learners;
    uint64_t voters[CN_RAFT_MAX_MEMBERS];
    uint64_t learners[CN_RAFT_MAX_MEMBERS];
};

/* What a snapshot replaces: the log up to index (whose entry had term), and the configuration
 * in force at that point. A new cluster starts from {0, 0, initial configuration}. */
struct cn_raft_snapshot_meta {
    uint64_t index;
    uint64_t term;
    struct cn_raft_conf conf;
};

/* Membership changes, one at a time (thesis §4.1), each effective as soon as its entry is
 * appended to a log, committed or not. */
enum cn_raft_conf_op {
    CN_RAFT_CONF_ADD_LEARNER = 1, /* new member that receives the log but does not vote (§4.2.1) */
    CN_RAFT_CONF_PROMOTE = 2,     /* learner becomes voter */
    CN_RAFT_CONF_REMOVE = 3,      /* voter or learner leaves */
    CN_RAFT_CONF_ADD_VOTER = 4,   /* only in the entries cn_raft_bootstrap() writes */
};

struct cn_raft_conf_change {
    uint8_t op; /* enum cn_raft_conf_op */
    uint64_t id;
    /* Opaque to raft, carried in the entry for the caller's state machine (cairn: the member
     * records to write when the change is applied, so both land in one entry). Borrowed. */
    const void *ctx;
    size_t ctx_len;
};

enum cn_raft_msg_type {
    CN_RAFT_MSG_APP = 1,         /* AppendEntries: index/log_term = previous entry */
    CN_RAFT_MSG_APP_RESP,        /* index = last matching index; on reject hint/log_term */
    CN_RAFT_MSG_VOTE,            /* RequestVote: index/log_term = candidate's last entry */
    CN_RAFT_MSG_VOTE_RESP,       /* REJECT flag when not granted */
    CN_RAFT_MSG_PREVOTE,         /* thesis §9.6, term = the term the candidate would take */
    CN_RAFT_MSG_PREVOTE_RESP,    /* REJECT flag when not granted */
    CN_RAFT_MSG_HEARTBEAT,       /* commit, ctx = ReadIndex round */
    CN_RAFT_MSG_HEARTBEAT_RESP,  /* ctx echoed */
    CN_RAFT_MSG_SNAP,            /* InstallSnapshot: snap + snap_data */
    CN_RAFT_MSG_TIMEOUT_NOW,     /* leadership transfer: campaign now (thesis §3.10) */
    CN_RAFT_MSG_READ_INDEX,      /* follower asks the leader for a read index; ctx = caller's */
    CN_RAFT_MSG_READ_INDEX_RESP, /* index = read index, ctx echoed; REJECT if refused */
    CN_RAFT_MSG_REMOVED,         /* leader tells a member its removal is committed */
    CN_RAFT_MSG_TYPE_MAX = CN_RAFT_MSG_REMOVED,
};

#define CN_RAFT_FLAG_REJECT   0x01u
#define CN_RAFT_FLAG_TRANSFER 0x02u /* vote request of a leadership transfer: ignore leases */

/* A message between members. In a ready batch every pointer is owned by the raft object; as
 * input to cn_raft_step() every pointer is borrowed for the call. */
struct cn_raft_msg {
    uint8_t type;  /* enum cn_raft_msg_type */
    uint8_t flags; /* CN_RAFT_FLAG_* */
    uint64_t to;
    uint64_t from;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    uint64_t commit;
    uint64_t hint; /* APP_RESP reject: where the follower suggests probing next */
    uint64_t ctx;  /* HEARTBEAT(_RESP): read round; READ_INDEX(_RESP): the caller's ctx */
    const struct cn_raft_entry *entries;
    size_t n_entries;
    struct cn_raft_snapshot_meta snap; /* SNAP only */
    const void *snap_data;
    size_t snap_len;
};

/* A linearizable read that may now be served: the state machine has applied index. */
struct cn_raft_read {
    uint64_t index;
    uint64_t ctx;
};

struct cn_raft_snapshot {
    struct cn_raft_snapshot_meta meta;
    const void *data;
    size_t len;
};

/* One batch of work for the caller; see the loop at the top of this file. */
struct cn_raft_ready {
    bool has_hard_state; /* hard_state changed since the last batch: persist it */
    struct cn_raft_hard_state hard_state;
    const struct cn_raft_snapshot *snapshot; /* to install first, or NULL */
    const struct cn_raft_entry *entries;     /* to append and fsync */
    size_t n_entries;
    struct cn_raft_msg *msgs; /* to send after the fsync */
    size_t n_msgs;
    const struct cn_raft_entry *committed; /* to apply, in order */
    size_t n_committed;
    const struct cn_raft_read *reads; /* to serve after applying committed */
    size_t n_reads;
    /* informational: who leads now and our role */
    uint64_t lead;
    uint8_t role;
};

struct cn_raft_config {
    uint64_t id;                  /* this member, non-zero */
    unsigned election_ticks;      /* T: election timeout is drawn from [T, 2T) ticks (default 10) */
    unsigned heartbeat_ticks;     /* (default 1) */
    uint64_t seed;                /* seeds the election timeout randomisation */
    bool pre_vote;                /* thesis §9.6 */
    bool check_quorum;            /* thesis §6.2: leader steps down without a quorum */
    size_t max_entry_bytes;       /* larger proposals fail with CN_ERR_TOO_LARGE (default 1 MiB) */
    size_t max_msg_bytes;         /* payload bytes per AppendEntries (default 256 KiB) */
    unsigned max_inflight_msgs;   /* unacked AppendEntries per follower (default 256) */
    size_t max_inflight_bytes;    /* unacked payload bytes per follower (default 8 MiB) */
    size_t max_uncommitted_bytes; /* leader's appended, not yet committed payload (64 MiB) */
    /* Tests only: break the commit rule of thesis §3.6.2 (Figure 8) on purpose, committing an
     * entry of an earlier term by counting replicas. Used to prove the simulation catches it. */
    bool unsafe_commit_prev_term;
    /* Tests only: grant votes without the election restriction of §3.6.1 (candidate's log at
     * least as up to date as ours). */
    bool unsafe_vote_any_log;
};

/* Fills cfg with defaults (everything but id and seed). */
void cn_raft_config_default(struct cn_raft_config *cfg);

struct cn_raft_status {
    uint64_t id;
    uint8_t role;
    uint64_t term, vote, lead;
    uint64_t commit, applied, last_index, first_index; /* first_index = snapshot index + 1 */
    bool removed; /* its removal is committed (told by the leader, or it led its own removal):
                     it never campaigns again; the node should shut the member down, as an etcd
                     member does when removed */
    struct cn_raft_conf conf; /* latest in the log (effective on append) */
    uint64_t transferee;      /* leadership transfer in progress */
};

struct cn_raft;

/* Creates a member; it stays inert until cn_raft_load(). The config is copied. */
struct cn_raft *cn_raft_new(const struct cn_raft_config *cfg);
void cn_raft_free(struct cn_raft *r);

/* Starts from what was persisted: hard state, the last snapshot's metadata (or {0,0,conf} for
 * a new cluster; a member joining an existing cluster starts from an empty conf) and the log
 * entries after it (contiguous from snap->index + 1; their payloads are copied). Call once,
 * before anything else. Returns 0 or CN_ERR_INVAL (inconsistent input). */
int cn_raft_load(struct cn_raft *r, const struct cn_raft_hard_state *hs,
                 const struct cn_raft_snapshot_meta *snap, const struct cn_raft_entry *ents,
                 size_t n);

/* Starts a new cluster: after loading an empty state, writes the initial configuration as
 * the first log entries (term 1, one conf entry per member, voters then learners), already
 * committed, so that every member, including ones that join later and replay the log from
 * index 1, derives the same configuration. The entries come out in the next ready batch.
 * Every founding member calls it with the same conf. Errors: CN_ERR_INVAL (state not empty,
 * or no voter). */
int cn_raft_bootstrap(struct cn_raft *r, const struct cn_raft_conf *conf);
/* Same, with a context for each member's entry (voters then learners, as in conf; ctxs may be
 * NULL, or an entry may have len 0). */
int cn_raft_bootstrap_ctx(struct cn_raft *r, const struct cn_raft_conf *conf,
                          const struct cn_buf *ctxs);

/* Starts an election now if this member may (a voter, not removed, not the leader). A
 * one-voter cluster uses it at start instead of waiting out a randomised election timeout. */
void cn_raft_campaign(struct cn_raft *r);

/* Transport feedback: the connection from the leader id was closed by its end (its process
 * exited). A follower forgets that leader (no lease: it grants votes) and campaigns after a
 * random fraction of an election timeout, rather than waiting a whole one. Safety does not
 * depend on it; a wrong report only costs an early election. */
void cn_raft_leader_unreachable(struct cn_raft *r, uint64_t id);

/* Leader: the replication progress of member id (match = highest index known replicated).
 * Returns false when not the leader or id is not a member. */
bool cn_raft_progress(const struct cn_raft *r, uint64_t id, uint64_t *match, bool *recent_active);

/* Applies one change to c, by the rules the core uses for every conf entry (for a caller that
 * derives a configuration from a log it holds, such as --force-new-cluster). Returns 0, or
 * CN_ERR_INVAL when the change does not fit c (c is then unchanged: the core ignores such an
 * entry on every member alike). */
int cn_raft_conf_apply(struct cn_raft_conf *c, const struct cn_raft_conf_change *cc);

/* The configuration in force at index (>= the compaction point), e.g. for a snapshot. */
void cn_raft_conf_at(const struct cn_raft *r, uint64_t index, struct cn_raft_conf *out);

/* Advances logical time by one tick. */
void cn_raft_tick(struct cn_raft *r);

/* Processes a message from a peer. m and what it points to are borrowed for the call.
 * Returns 0, or CN_ERR_PROTO for a malformed message (which is ignored). */
int cn_raft_step(struct cn_raft *r, const struct cn_raft_msg *m);

/* Appends a command to the leader's log; the bytes are copied. On success *index (if not NULL)
 * is the entry's index and *term its term: the command is committed when an entry with that
 * index and term is applied. Errors: CN_ERR_NO_LEADER (not the leader: forward to the leader),
 * -EBUSY (leadership transfer in progress), CN_ERR_TOO_LARGE (len > max_entry_bytes),
 * -ENOBUFS (max_uncommitted_bytes are waiting for a quorum: the cluster is not keeping up or the
 * leader is cut off; retry later). */
int cn_raft_propose(struct cn_raft *r, const void *data, size_t len, uint64_t *index,
                    uint64_t *term);
/* The same without the copy: on success the log owns data (cn_alloc memory: cn_xmalloc, a
 * cn_buf's bytes), which becomes the entry's payload as it is, and the caller must neither free
 * nor change it; with len 0 data is freed. On failure data stays the caller's. */
int cn_raft_propose_owned(struct cn_raft *r, void *data, size_t len, uint64_t *index,
                          uint64_t *term);

/* Proposes one membership change (thesis §4.1). Errors: CN_ERR_NO_LEADER, -EBUSY (a previous
 * change is not committed yet, the leader has not committed an entry of its term, or a
 * transfer is in progress), CN_ERR_INVAL (no such member / already a member / too many). */
int cn_raft_propose_conf(struct cn_raft *r, const struct cn_raft_conf_change *cc, uint64_t *index,
                         uint64_t *term);

/* Requests a linearizable read (thesis §6.4). ctx is the caller's handle; it comes back in
 * ready.reads once the read is safe, served by one heartbeat round shared by every read that
 * arrived meanwhile. A follower forwards the request to its leader. Requests are dropped when
 * leadership changes: the caller times them out and retries. Errors: CN_ERR_NO_LEADER. */
int cn_raft_read_index(struct cn_raft *r, uint64_t ctx);

/* Leader: hands leadership to target (thesis §3.10): catches it up, then tells it to campaign
 * at once. Proposals fail with -EBUSY until it ends (success, or one election timeout).
 * Errors: CN_ERR_NO_LEADER, CN_ERR_INVAL (target not a voter, or self). */
int cn_raft_transfer(struct cn_raft *r, uint64_t target);

/* The caller saved a state machine snapshot at index (<= applied): drop the log up to it.
 * Followers that fall behind index will be sent that snapshot. Errors: CN_ERR_INVAL. */
int cn_raft_compact(struct cn_raft *r, uint64_t index);

/* Transport feedback: sending a snapshot to id failed (ok=false) or finished (ok=true). */
void cn_raft_report_snapshot(struct cn_raft *r, uint64_t id, bool ok);

bool cn_raft_has_ready(struct cn_raft *r);
/* Collects the next batch. Call only when no batch is outstanding. */
void cn_raft_ready(struct cn_raft *r, struct cn_raft_ready *rd);
/* The caller has handled rd as described at the top of this file. */
void cn_raft_advance(struct cn_raft *r, const struct cn_raft_ready *rd);

void cn_raft_status(const struct cn_raft *r, struct cn_raft_status *st);

/* Snapshot metadata of the current compaction point (for the caller's snapshot store). */
void cn_raft_snapshot_meta(const struct cn_raft *r, struct cn_raft_snapshot_meta *meta);

/* ---- codec (raft_codec.c): compact, versioned binary; decoding is bounded ---------------- */

/* Appends m's encoding to out. */
void cn_raft_msg_encode(const struct cn_raft_msg *m, struct cn_buf *out);
/* Decodes a message. Byte fields (entry payloads, snap_data) are borrowed from p; the entry
 * array is allocated and returned in *ents (free with cn_free; NULL when none). Returns 0,
 * CN_ERR_CORRUPT or CN_ERR_VERSION; on error nothing is allocated. */
int cn_raft_msg_decode(const void *p, size_t len, struct cn_raft_msg *m,
                       struct cn_raft_entry **ents);
void cn_raft_conf_change_encode(const struct cn_raft_conf_change *cc, struct cn_buf *out);
int cn_raft_conf_change_decode(const void *p, size_t len, struct cn_raft_conf_change *cc);

const char *cn_raft_msg_type_name(uint8_t type);
const char *cn_raft_role_name(uint8_t role);

#endif
