/* api/v3 apply: what a v3 request does to the key space, etcd 3.4's applier (etcdserver/apply.go)
 * over src/mvcc. The replicated half of the v3 API: a command from the log (a Put, DeleteRange,
 * Txn, Compaction, LeaseGrant or LeaseRevoke request, in etcd's protobuf encoding) is decoded,
 * run on mvcc and answered with etcd's response message; reads (Range, a read-only Txn) run the
 * same code without the log. Pure, like mvcc: no loop, no node, no clock of its own, so every
 * member that applies the same log computes the same state and the same answers.
 *
 * Command format: u8 CN_FSM_V3_TAG (0x33), u8 kind (enum cn_v3_kind), the request message's
 * protobuf bytes (the client's own bytes: the proposer checks them and copies them once, into
 * the log entry). A LeaseGrant's id and TTL are settled by the proposer (the id picked, the TTL
 * raised to the minimum) before it is proposed, so every member grants the same lease.
 *
 * Results live in the apply's arena until the next apply (a proposer's callback packs them at
 * once); their key and value bytes point into mvcc (borrowed until its next write). */
#ifndef CN_API_V3_APPLY_H
#define CN_API_V3_APPLY_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/v3/errors.h"
#include "common/arena.h"
#include "common/buf.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"
#include "mvcc/mvcc.h"

#define CN_V3_CMD_TAG  0x33 /* == CN_FSM_V3_TAG */
#define CN_V3_CMD_HEAD 2    /* tag + kind */

enum cn_v3_kind {
    CN_V3_PUT = 1,
    CN_V3_DELETE_RANGE = 2,
    CN_V3_TXN = 3,
    CN_V3_COMPACTION = 4,
    CN_V3_LEASE_GRANT = 5,
    CN_V3_LEASE_REVOKE = 6,
};

/* Called for every write that changed the key space, with its events in order and the revision
 * after it (Watch delivery; lease bookkeeping). Borrowed for the call. */
typedef void (*cn_v3_events_cb)(void *ctx, const struct cn_mvcc_event *ev, size_t n, int64_t rev);

struct cn_v3_apply {
    struct cn_mvcc *kv;
    /* member-local lease expiry, told of every grant and revoke applied (not replicated) */
    struct cn_mvcc_lessor *lessor;
    int64_t (*now_ms)(void *ctx);         /* the lessor's clock (monotonic ms) */
    void *ctx;                            /* now_ms's */
    cn_v3_events_cb on_events;            /* may be NULL */
    void (*on_restore)(void *events_ctx); /* a snapshot replaced the key space; may be NULL */
    void *events_ctx;                     /* on_events' and on_restore's */
    /* private */
    struct cn_arena arena; /* the last apply's response */
    struct cn_mvcc_range_result rr, del;
};

/* kv and lessor are borrowed for a's life. */
void cn_v3_apply_init(struct cn_v3_apply *a, struct cn_mvcc *kv, struct cn_mvcc_lessor *lessor);
void cn_v3_apply_free(struct cn_v3_apply *a);

struct cn_v3_result {
    enum cn_v3_kind kind;
    enum cn_v3_err err;     /* CN_V3_OK, or etcd's error (resp is then NULL) */
    ProtobufCMessage *resp; /* the kind's response message; its header carries only revision */
};

/* Appends the command header (tag, kind). */
void cn_v3_cmd_head(struct cn_buf *out, enum cn_v3_kind kind);

/* Applies a command. Returns 0 with *res filled (etcd's error, if any, in res->err: a failed
 * command changes nothing), or CN_ERR_CORRUPT when the bytes do not decode (nothing changes on
 * any member). */
int cn_v3_apply_cmd(struct cn_v3_apply *a, const void *cmd, size_t len, struct cn_v3_result *res);

/* Runs a Range on the current state, building the response in arena (the caller's; its kvs
 * borrow mvcc's bytes). CN_V3_OK or CN_V3_E_COMPACTED / FUTURE_REV. */
enum cn_v3_err cn_v3_range(struct cn_v3_apply *a, struct cn_arena *arena,
                           const Etcdserverpb__RangeRequest *r, Etcdserverpb__RangeResponse **out);

/* A read-only Txn (only Range ops on both branches, nested Txns included, etcd's
 * isTxnReadonly) is evaluated locally, as etcd does after its read barrier. */
bool cn_v3_txn_is_readonly(const Etcdserverpb__TxnRequest *t);
enum cn_v3_err cn_v3_txn_read(struct cn_v3_apply *a, struct cn_arena *arena,
                              const Etcdserverpb__TxnRequest *t, Etcdserverpb__TxnResponse **out);

/* The checks etcd's v3rpc layer makes before a request goes anywhere (key.go). */
enum cn_v3_err cn_v3_check_range(const Etcdserverpb__RangeRequest *r);
enum cn_v3_err cn_v3_check_put(const Etcdserverpb__PutRequest *r);
enum cn_v3_err cn_v3_check_delete(const Etcdserverpb__DeleteRangeRequest *r);
enum cn_v3_err cn_v3_check_txn(const Etcdserverpb__TxnRequest *r, uint64_t max_ops);

/* Whether a protobuf message of descriptor d nests no deeper than max_depth messages (protobuf-c
 * unpacks recursively: a deep Txn must be refused before it is unpacked). */
bool cn_v3_pb_depth_ok(const ProtobufCMessageDescriptor *d, const void *p, size_t len,
                       unsigned max_depth);

/* etcd's minimum lease TTL for an election timeout and heartbeat (s): ceil(1.5 x election). */
int64_t cn_v3_min_lease_ttl(unsigned election_ms, unsigned heartbeat_ms);

#endif
