/* sim: the Raft simulation. 3 or 5 members, each the real node (src/node: request matching,
 * forwarded proposals, the entry envelope, snapshot framing, the ready loop) on cairn's raft core
 * with the server's state machine (server/fsm.h: a v2 part over the real v2 store and the server's
 * v3 part over src/mvcc, snapshot "CNFS" holding both), driven through a cn_node_io of virtual
 * time, disk and network (io_sim.c), in one process on a virtual clock and a virtual network that
 * partitions (any split, one-way too), delays, drops, duplicates and reorders messages, and
 * crashes members (losing whatever was not fsynced) and restarts them from their disk. Every
 * run is fixed by one seed. Some seeds also change the membership (add learners, promote them,
 * remove voters, the leader included) while the faults go on. After every event the checker
 * (check.c) verifies Raft's safety properties; at the end, once the faults heal, liveness. */
#ifndef CN_TESTS_SIM_SIM_H
#define CN_TESTS_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "raft/raft.h"

struct sim_io;

#define SIM_MAX 7 /* 3 or 5 founders, joiners up to 7 */

struct cn_node;
struct cn_store;
struct sim_fsm;
struct sim_v3;

/* What a member has on disk: survives crashes. */
struct sim_disk {
    struct cn_raft_hard_state hs;
    struct cn_raft_snapshot_meta snap; /* index and term of the snapshot saved (conf unused) */
    struct cn_buf snap_data;           /* the node snapshot at snap.index (empty at index 0) */
    struct cn_raft_entry *ents;
    uint64_t *chain; /* prefix hash of each entry (log matching check) */
    size_t n, cap;
};

/* Records handed to persist that are not durable yet: lost, or torn, if the member crashes. */
struct sim_staged {
    bool has_snap;
    struct cn_raft_snapshot_meta snap_meta;
    struct cn_buf snap_data;
    struct cn_raft_entry *ents; /* payloads borrowed from the member's Raft log */
    size_t n, cap;
    bool has_hs;
    struct cn_raft_hard_state hs;
};

struct sim_member {
    uint64_t id;
    bool up;
    bool founder; /* in the initial configuration (others join through membership changes) */
    bool gone;    /* learned it was removed and shut down for good, as an etcd member does */
    unsigned incarnation;
    struct cn_node *node; /* the real src/node, on the simulation's io */
    struct sim_io *io;
    struct cn_store *store; /* the state machine's */
    struct sim_fsm *fsm;
    struct sim_v3 *v3; /* the v3 part of the state machine (v3.c) */
    struct sim_disk disk;
    struct sim_staged staged;
    bool fsync_pending;
    bool defer_pending;
    uint64_t applied;
    uint64_t applied_chain;
    uint64_t applying_prop; /* the proposal id the state machine just applied (0: none) */
    uint8_t last_role;
    uint64_t last_term;
};

struct sim_opts {
    uint64_t seed;
    bool trace;
    bool break_figure8; /* run the core with the Figure 8 commit rule broken */
    bool break_vote;    /* run the core with the election restriction (§3.6.1) broken */
    unsigned fault_ms;  /* length of the fault phase */
    /* Deliver the transport's "the leader's connection closed" notice (what src/node does with
     * cn_raft_leader_unreachable): to every member when one crashes, and now and then falsely,
     * to check a wrong notice costs at most an election. Drawn from a generator of its own. */
    bool unreachable;
    /* the v3 part of the state machine leaves its key space out of snapshots (an empty one
     * instead): the checks must notice */
    bool break_v3_snapshot;
};

/* Runs one seed. Returns 0, or 1 after printing what failed. */
int sim_run(const struct sim_opts *o);

/* ---- check.c ------------------------------------------------------------------------------ */

struct sim;
struct sim_check;

struct sim_check *check_new(void);
void check_free(struct sim_check *c);
/* A member persisted entry e with prefix hash chain: same (index, term) must mean same chain. */
bool check_persist(struct sim_check *c, uint64_t member, const struct cn_raft_entry *e,
                   uint64_t chain, char *why, size_t n);
/* A member applied e (its chain given): the common sequence must agree. Records the term the
 * member was in (>= the term the entry was committed in). */
bool check_apply(struct sim_check *c, uint64_t member, const struct cn_raft_entry *e,
                 uint64_t chain, uint64_t member_term, char *why, size_t n);
uint64_t check_committed_len(const struct sim_check *c);
/* Chain hash of the common sequence at index (index must be <= committed len). */
uint64_t check_chain_at(const struct sim_check *c, uint64_t index);
/* member is leader of term: one leader per term. */
bool check_leader(struct sim_check *c, uint64_t member, uint64_t term, char *why, size_t n);
/* Leader completeness: every entry known committed in a term < term must be in the leader's log,
 * given as its disk (entries + snapshot). */
bool check_leader_log(struct sim_check *c, uint64_t member, uint64_t term, const struct sim_disk *d,
                      char *why, size_t n);
/* A proposal was acknowledged to the client (the proposer applied it at index). */
void check_ack(struct sim_check *c, uint64_t proposal, uint64_t index);
/* Highest index of a proposal acknowledged so far (reads started now must see it). */
uint64_t check_ack_watermark(const struct sim_check *c);
/* Every acknowledged proposal is in the common sequence at its index. */
bool check_acks_final(struct sim_check *c, char *why, size_t n);
/* Proposal id carried by the common sequence's entry at index (0 if none). */
void check_set_proposal(struct sim_check *c, uint64_t index, uint64_t proposal);

uint64_t sim_hash(uint64_t h, const void *p, size_t n);

#endif
