/* sim internals shared by sim.c (the world: events, faults, checks), client.c and io_sim.c (each
 * member's struct cn_node_io on the world's clock, disk and network). */
#ifndef CN_TESTS_SIM_SIM_INT_H
#define CN_TESTS_SIM_SIM_INT_H

#include "node/node_io.h"
#include "sim.h"

#define SIM_TICK_MS    10
#define SIM_ELECTION_T 10 /* ticks: election timeout in [100, 200) ms */
/* The sim's v2 commands: this byte, the proposal id (8 bytes), the store's command. The first
 * byte is what the composite state machine dispatches on: anything but CN_FSM_V3_TAG is v2. */
#define SIM_V2_TAG 1

enum sim_ev_type {
    EV_TICK,
    EV_DELIVER,
    EV_FSYNC,
    EV_SNAP_SAVED,
    EV_SNAP_LOADED,
    EV_DEFER,
    EV_TOLD_REMOVED, /* a member's transport refused us: we were removed */
    EV_CRASH,
    EV_RESTART,
    EV_CLIENT,
    EV_NET,
    EV_HEAL,
    EV_HUNT, /* the nemesis strikes a new leader: crash it or cut it off */
};

struct sim_ev {
    uint64_t time, seq;
    int type;
    int member; /* index */
    unsigned incarnation;
    uint64_t from;        /* EV_DELIVER: the sender's id */
    uint8_t kind;         /* EV_DELIVER: enum cn_peer_kind */
    uint64_t term, index; /* EV_SNAP_SAVED */
    struct cn_buf msg;
};

struct sim {
    struct sim_opts o;
    uint64_t rng;
    uint64_t rng2; /* the unreachable notices' own generator */
    uint64_t rng3; /* the v3 writes' own (v3.c) */
    uint64_t now, seq;
    struct sim_ev *heap;
    size_t n_heap, cap_heap;
    struct sim_member m[SIM_MAX];
    int n;
    struct sim_check *check;
    bool cut[SIM_MAX][SIM_MAX];
    unsigned drop_pct, dup_pct, delay_max, long_delay_pct;
    unsigned compact_every;
    bool healed, faults_off;
    bool storm;    /* frequent crashes and network changes: many short-lived leaders */
    bool reconfig; /* membership changes during the faults */
    size_t msg_bytes;
    unsigned inflight;
    bool pre_vote, check_quorum;
    uint64_t next_prop, next_ctx;
    struct sim_req **reqs; /* every client request made, for the final checks and teardown */
    size_t n_reqs, cap_reqs;
    struct {
        uint64_t index, hash;
    } * snaps;
    size_t n_snaps, cap_snaps;
    uint64_t *ack_index;  /* by proposal id: index it was acknowledged at, 0 if not (yet) */
    uint64_t *applied_at; /* by proposal id: index it was first applied at, 0 if not (yet) */
    size_t n_by_id;
    struct sim_v3_world *v3; /* the v3 model and replies (v3.c) */
    bool failed;
    char why[512];
    /* stats */
    uint64_t n_events, n_msgs, n_acked, n_reads_served, n_crashes, n_snap_installs;
    uint64_t n_v3_acked;
};

/* What the simulation's state machine answers a proposal with. */
struct sim_result {
    uint64_t index, id;
};

/* A client request (proposal or read) and what became of it. */
struct sim_req {
    struct sim *s;
    int member;
    unsigned incarnation;
    bool is_read;
    uint64_t id;        /* proposal id, or read ctx */
    uint64_t watermark; /* read: the highest index acknowledged when it started */
    bool answered;
    int rc;
    int v3_key;      /* a v3 put: its key (0..7), else -1 */
    char v3_val[24]; /* and its value */
};

struct cn_v3_result;
/* What the simulation's v3 part answers a proposal with: the index, the reply's digest, the
 * server's result. */
struct sim_v3_result {
    uint64_t index, digest;
    const struct cn_v3_result *res;
};

/* sim.c */
uint64_t sim_rnd(struct sim *s);
uint64_t sim_rndn(struct sim *s, uint64_t n);
bool sim_chance(struct sim *s, unsigned pct);
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_fail(struct sim *s, const char *why);
/* Queues an event delay ms from now; msg's bytes are moved into it (may be NULL). */
struct sim_ev *sim_push(struct sim *s, uint64_t delay, int type, int member, struct cn_buf *msg);
/* The member's applied entries, as the checker sees them (the node's apply observer). */
void sim_on_apply(void *ctx, const struct cn_raft_entry *e);

struct cn_raft_status sim_status_of(const struct sim_member *m);
/* The member leading the highest term, or -1. */
int sim_leader_of(struct sim *s);
void sim_start_joiner(struct sim *s);
void sim_grow_by_id(struct sim *s, uint64_t id);

/* client.c */
void sim_client(struct sim *s);
struct sim_req *sim_new_req(struct sim *s, int member, bool is_read, uint64_t id);
/* Marks r answered with rc; false (and the run failed) if it was answered before. */
bool sim_answered_once(struct sim_req *r, int rc);
/* A client's write on member i (which forwards it to its leader when it is not the leader). */
struct sim_req *sim_propose(struct sim *s, int i, uint64_t id);

/* v3.c */
struct sim_v3 *sim_v3_new(struct sim *s, int member);
void sim_v3_free(struct sim_v3 *v);
struct cn_fsm *sim_v3_fsm(struct sim_v3 *v);
void sim_v3_world_init(struct sim *s);
void sim_v3_world_free(struct sim *s);
/* The v3 proposal whose entry has these bytes (envelope included), 0 if none. */
uint64_t sim_v3_prop_of(struct sim *s, const void *entry, size_t len);
/* A client's v3 write on member i (Put, DeleteRange, Txn, LeaseGrant/Revoke, Compaction). */
struct sim_req *sim_propose_v3(struct sim *s, int i, uint64_t id);
/* The end: every member in[i] has the same v3 key space as the model and the others. */
void sim_v3_final(struct sim *s, const bool *in);

/* io_sim.c */
struct sim_io *sim_io_new(struct sim *s, int member);
/* The node's completions, from the world's events. */
void sim_io_fsync(struct sim *s, int member);
void sim_io_snapshot_saved(struct sim *s, int member, const struct sim_ev *e);
void sim_io_snapshot_loaded(struct sim *s, int member);
/* The member crashed: what its disk keeps of the staged records (a torn write). */
void sim_io_crash(struct sim *s, int member);
void sim_disk_free(struct sim_disk *d);
void sim_staged_reset(struct sim_staged *st);
/* Appends e to the member's disk (the checker sees every persisted entry). */
void sim_disk_append(struct sim *s, struct sim_member *m, const struct cn_raft_entry *e);

#endif
