/* raft_int: the private state of a raft member and the internal contracts between the core's
 * files (log.c, progress.c, election.c, replication.c, read_index.c, membership.c,
 * transfer.c, snapshot.c, raft.c).
 *
 * Design notes: roles and who moves between them (functions named without their cn_raft__)
 *
 *     FOLLOWER --(election timeout, pre_vote)--> PRE_CANDIDATE   election_tick -> election_campaign
 *     FOLLOWER --(election timeout / TIMEOUT_NOW)--> CANDIDATE   election_campaign
 *     PRE_CANDIDATE --(pre-vote quorum)--> CANDIDATE             election_on_vote_response
 *     CANDIDATE --(vote quorum)--> LEADER                        election_on_vote_response
 *     any --(higher term / lost election)--> FOLLOWER            become_follower
 *     LEADER --(no quorum heard in an election timeout)--> FOLLOWER   election_tick (check_quorum)
 *
 * Invariants (checked by CN_ASSERT where cheap):
 *   1. log.snap_index <= log.applied <= log.committed <= last index.
 *   2. ents[i].index == log.snap_index + 1 + i, terms never decrease along the log.
 *   3. A leader never truncates its own log; a follower never truncates below committed.
 *   4. The leader counts replicas for commitment only for an entry of its own term (§3.6.2).
 *   5. Everything a ready batch points at stays put until cn_raft_advance(). */
#ifndef CN_RAFT_RAFT_INT_H
#define CN_RAFT_RAFT_INT_H

#include "raft.h"

enum progress_state {
    PR_PROBE = 0,     /* one AppendEntries at a time until the follower's match is found */
    PR_REPLICATE = 1, /* pipelined: next advances optimistically, bounded by inflights */
    PR_SNAPSHOT = 2,  /* a snapshot is on its way; nothing else is sent */
};

/* A ring of the last index (and payload bytes) of each unacknowledged AppendEntries. */
struct inflights {
    unsigned start, count, cap;
    size_t bytes;
    uint64_t *last;
    size_t *size;
};

/* The leader's view of one member (etcd's tracker.Progress). */
struct progress {
    uint64_t id;
    bool learner;
    uint8_t state;      /* enum progress_state */
    bool probe_sent;    /* PR_PROBE: an append is out, wait for its answer or a heartbeat */
    bool recent_active; /* heard from since the last check-quorum round */
    uint64_t match, next;
    uint64_t pending_snap; /* PR_SNAPSHOT: index of the snapshot sent */
    unsigned snap_ticks;   /* PR_SNAPSHOT: ticks since it was sent (a lost one is resent) */
    uint64_t sent_commit;  /* highest commit index told to this member */
    uint64_t match_at_hb;  /* match at the previous heartbeat answer (lost appends detection) */
    unsigned stalled_hbs;  /* heartbeat answers in a row without progress while appends are out */
    uint64_t read_seq;     /* highest ReadIndex round this member acknowledged */
    struct inflights ins;
};

struct raft_log {
    struct cn_raft_entry *ents; /* ents[i].index == snap_index + 1 + i */
    size_t n, cap;
    uint64_t snap_index, snap_term;
    struct cn_raft_conf snap_conf;
    uint64_t committed, applied;
    uint64_t stabled; /* last index handed out for persistence and acknowledged */
};

/* A read waiting for its heartbeat round (leader) or for the applied index (any member). */
struct pending_read {
    uint64_t index, ctx, from, seq;
};

struct read_queue {
    struct pending_read *v;
    size_t n, cap;
};

struct cn_raft {
    struct cn_raft_config cfg;
    uint64_t id;
    bool trace;
    bool loaded;
    bool ready_out; /* a batch is outstanding */

    /* persistent state (thesis Figure 3.1) */
    uint64_t term, vote;
    struct cn_raft_hard_state prev_hs; /* last handed out for persistence */

    uint8_t role;
    uint64_t lead;
    bool removed; /* a leader told us our removal is committed: never campaign again */

    struct raft_log log;

    /* membership: the latest configuration in the log (effective on append, §4.1) */
    struct cn_raft_conf conf;
    uint64_t conf_index; /* index of the entry that produced conf (0: from the snapshot) */

    /* leader */
    struct progress prs[CN_RAFT_MAX_MEMBERS];
    unsigned n_prs;
    bool bcast_pending;  /* send new entries / commit to followers at the next ready */
    size_t uncommitted;  /* payload bytes proposed in this term and not yet committed */
    uint64_t transferee; /* leadership transfer target */

    /* elections */
    unsigned election_elapsed, heartbeat_elapsed, randomized_timeout;
    uint64_t rng;
    uint64_t votes_granted[CN_RAFT_MAX_MEMBERS], votes_rejected[CN_RAFT_MAX_MEMBERS];
    unsigned n_granted, n_rejected;

    /* ReadIndex (§6.4) */
    uint64_t read_seq;                   /* leader: current heartbeat round */
    bool read_round_pending;             /* leader: start a round at the next ready */
    struct read_queue reads_wait_commit; /* leader: before the first commit of its term */
    struct read_queue reads_wait_quorum; /* leader: waiting for a heartbeat round */
    struct read_queue reads_wait_apply;  /* any: confirmed, waiting for applied >= index */

    /* outgoing */
    struct cn_raft_msg *msgs;
    uint64_t *msg_last_term; /* APP: term of the last entry, to revalidate at ready time */
    size_t n_msgs, cap_msgs;

    /* a received snapshot, handed out in the next ready */
    bool snap_pending;
    struct cn_raft_snapshot snap_in;
    void *snap_in_data;

    /* ready scratch */
    struct cn_raft_read *reads_out;
    size_t n_reads_out, cap_reads_out;
};

/* ---- raft.c ---- */
void cn_raft__become_follower(struct cn_raft *r, uint64_t term, uint64_t lead);
void cn_raft__become_leader(struct cn_raft *r);
/* Queues a message; term and from are filled in. Returns the queued message. */
struct cn_raft_msg *cn_raft__send(struct cn_raft *r, uint8_t type, uint64_t to);
void cn_raft__trace(const struct cn_raft *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define TRACE(r, ...)                                                                              \
    do {                                                                                           \
        if ((r)->trace) cn_raft__trace((r), __VA_ARGS__);                                          \
    } while (0)

/* ---- log.c: the in-memory log ---- */
uint64_t cn_raft__log_last_index(const struct raft_log *l);
uint64_t cn_raft__log_last_term(const struct raft_log *l);
/* Term of the entry at index; 0 if unknown (compacted below the snapshot or past the end). */
uint64_t cn_raft__log_term(const struct raft_log *l, uint64_t index);
bool cn_raft__log_match_term(const struct raft_log *l, uint64_t index, uint64_t term);
struct cn_raft_entry *cn_raft__log_entry(const struct raft_log *l, uint64_t index);
/* Appends a copy of e (payload copied) at the end; e->index must be last + 1. */
void cn_raft__log_append_copy(struct raft_log *l, const struct cn_raft_entry *e);
/* Takes ownership of data. */
void cn_raft__log_append_owned(struct raft_log *l, uint64_t term, uint8_t type, void *data,
                               size_t len);
/* Drops entries with index >= from. */
void cn_raft__log_truncate(struct raft_log *l, uint64_t from);
/* Drops entries with index <= index (compaction). */
void cn_raft__log_drop_prefix(struct raft_log *l, uint64_t index, uint64_t term);
/* Resets the log to a snapshot. */
void cn_raft__log_reset(struct raft_log *l, uint64_t index, uint64_t term);
/* §3.6.1 / §5.4.1: is (last_term, last_index) at least as up to date as our log? */
bool cn_raft__log_is_up_to_date(const struct raft_log *l, uint64_t last_index, uint64_t last_term);
/* Largest index <= index whose term <= term (etcd's findConflictByTerm); index if unknown. */
uint64_t cn_raft__log_find_conflict_by_term(const struct raft_log *l, uint64_t index,
                                            uint64_t term);
void cn_raft__log_free(struct raft_log *l);

/* ---- progress.c ---- */
void cn_raft__progress_init(struct progress *pr, uint64_t id, bool learner, uint64_t next,
                            unsigned ins_cap);
void cn_raft__progress_free(struct progress *pr);
void cn_raft__progress_become_probe(struct progress *pr);
void cn_raft__progress_become_replicate(struct progress *pr);
void cn_raft__progress_become_snapshot(struct progress *pr, uint64_t snap_index);
bool cn_raft__progress_is_paused(const struct progress *pr, const struct cn_raft_config *cfg);
/* Records an acknowledgement of index n; true if match moved. */
bool cn_raft__progress_maybe_update(struct progress *pr, uint64_t n);
/* Handles a rejection of the append at rejected; true if next moved (not stale). */
bool cn_raft__progress_maybe_decr_to(struct progress *pr, uint64_t rejected, uint64_t match_hint);
void cn_raft__progress_sent_entries(struct progress *pr, uint64_t last, size_t bytes);
void cn_raft__inflights_free_le(struct inflights *in, uint64_t index);
struct progress *cn_raft__progress_find(struct cn_raft *r, uint64_t id);

/* ---- election.c (thesis §3.4, §6.2, §9.6) ---- */
void cn_raft__election_reset_timeout(struct cn_raft *r);
void cn_raft__election_tick(struct cn_raft *r);
void cn_raft__election_campaign(struct cn_raft *r, bool pre, bool transfer);
void cn_raft__election_on_vote_request(struct cn_raft *r, const struct cn_raft_msg *m);
void cn_raft__election_on_vote_response(struct cn_raft *r, const struct cn_raft_msg *m);
bool cn_raft__election_promotable(const struct cn_raft *r);
unsigned cn_raft__election_quorum(const struct cn_raft *r);

/* ---- replication.c (thesis §3.5, §3.6, §10.2) ---- */
bool cn_raft__replication_send_append(struct cn_raft *r, struct progress *pr, bool send_if_empty);
void cn_raft__replication_flush(struct cn_raft *r);
void cn_raft__replication_heartbeat(struct cn_raft *r, uint64_t ctx);
bool cn_raft__replication_maybe_commit(struct cn_raft *r);
void cn_raft__replication_on_append(struct cn_raft *r, const struct cn_raft_msg *m);
void cn_raft__replication_on_append_response(struct cn_raft *r, const struct cn_raft_msg *m);
void cn_raft__replication_on_heartbeat(struct cn_raft *r, const struct cn_raft_msg *m);
void cn_raft__replication_on_heartbeat_response(struct cn_raft *r, const struct cn_raft_msg *m);
void cn_raft__replication_commit_to(struct cn_raft *r, uint64_t commit);
/* Appends an entry to the leader's log (payload ownership moves in). */
void cn_raft__replication_leader_append(struct cn_raft *r, uint8_t type, void *data, size_t len);

/* ---- snapshot.c (thesis chapter 5) ---- */
void cn_raft__snapshot_send(struct cn_raft *r, struct progress *pr);
void cn_raft__snapshot_on_install(struct cn_raft *r, const struct cn_raft_msg *m);

/* ---- membership.c (thesis §4.1-4.2) ---- */
bool cn_raft__conf_has_voter(const struct cn_raft_conf *c, uint64_t id);
bool cn_raft__conf_has_learner(const struct cn_raft_conf *c, uint64_t id);
bool cn_raft__conf_has_member(const struct cn_raft_conf *c, uint64_t id);
/* Called for every appended entry: a conf entry takes effect at once. */
void cn_raft__membership_on_append(struct cn_raft *r, const struct cn_raft_entry *e);
/* The log was truncated or reset: recompute conf from the snapshot and the log. */
void cn_raft__membership_recompute(struct cn_raft *r);
/* Configuration in force at index (snapshot conf + conf entries <= index). */
void cn_raft__membership_conf_at(const struct cn_raft *r, uint64_t index, struct cn_raft_conf *out);
/* Leader: make prs match conf. */
void cn_raft__membership_sync_progress(struct cn_raft *r);
/* Leader: a removal of ourselves is committed: step down. */
void cn_raft__membership_on_commit(struct cn_raft *r);

/* ---- read_index.c (thesis §6.4) ---- */
void cn_raft__read_index_on_leader_commit(struct cn_raft *r);
void cn_raft__read_index_request(struct cn_raft *r, uint64_t from, uint64_t ctx);
void cn_raft__read_index_on_heartbeat_response(struct cn_raft *r);
void cn_raft__read_index_flush(struct cn_raft *r);
void cn_raft__read_index_on_response(struct cn_raft *r, const struct cn_raft_msg *m);
void cn_raft__read_index_reset(struct cn_raft *r);
void cn_raft__read_queue_push(struct read_queue *q, uint64_t index, uint64_t ctx, uint64_t from,
                              uint64_t seq);
void cn_raft__read_queue_free(struct read_queue *q);

/* ---- transfer.c (thesis §3.10) ---- */
void cn_raft__transfer_on_progress(struct cn_raft *r, struct progress *pr);
void cn_raft__transfer_tick(struct cn_raft *r);
void cn_raft__transfer_abort(struct cn_raft *r);

#endif
