/* mvcc: the etcd v3 key space (etcd 3.4's mvcc package) as a pure state machine. It owns every
 * key's revision history since the last compaction, the current and compacted revisions and the
 * replicated lease table (ids, granted TTLs, attached keys). It knows no sockets, files, clocks,
 * Raft or protobuf: plain structs in, results out, and every member that applies the same calls
 * ends byte-identical (cn_mvcc_snapshot_save gives the same bytes).
 *
 * Revisions (etcd): the empty store is at revision 1; each write transaction that changes
 * something takes the next main revision, each change in it a sub-revision 0, 1, ...; a
 * transaction that changes nothing (a delete of nothing) leaves the revision alone. Per key:
 * create_revision (main revision of the put that started the current generation), mod_revision,
 * version (1 on create, +1 per put, gone with the delete), lease (0 = none).
 *
 * Borrowed results: every cn_mvcc_kv and cn_mvcc_event handed out points into the store (keys and
 * values are stored once and shared by the live view, the history and results) and stays valid
 * until the next write (txn_put, txn_delete_range, txn_end, lease_revoke), compaction, snapshot
 * load or cn_mvcc_free. Copy what must live longer.
 *
 * Sizes: keys are 1..CN_MVCC_KEY_MAX bytes, values 0..CN_MVCC_VALUE_MAX bytes; the layer above
 * bounds requests far lower (etcd: --max-request-bytes, 1.5 MiB), mvcc rejects anything past
 * these with CN_ERR_TOO_LARGE and an empty key with CN_ERR_INVAL. A write txn holds at most
 * CN_MVCC_TXN_MAX_CHANGES changes (etcd: 128 ops, but one delete_range may remove many keys).
 *
 * How etcd's requests map onto it (the layer above decodes, checks and answers):
 *   Range        cn_mvcc_range (serializable or after ReadIndex); sort: limit 0, sort, truncate
 *   Put          txn_begin, txn_put (prev_kv, ignore flags), txn_end → header revision, events
 *   DeleteRange  txn_begin, txn_delete_range, txn_end
 *   Txn          txn_begin; compares on txn_range of each key; txn_put_check for every put of
 *                the chosen branch (etcd's checkRequestPut) and fail before writing; then the
 *                ops in order, each sub-response's header revision = cn_mvcc_txn_rev; txn_end
 *   Compaction   cn_mvcc_compact (physical or not: mvcc frees at once)
 *   LeaseGrant   proposer: cn_mvcc_lease_pick_id when ID is 0; apply: lease_grant with the
 *                minimum TTL, then cn_mvcc_lessor_grant
 *   LeaseRevoke  lease_revoke (events to Watch), then cn_mvcc_lessor_revoke; the leader's timer
 *                calls cn_mvcc_lessor_expired and proposes a LeaseRevoke per id
 *   KeepAlive, TimeToLive  cn_mvcc_lessor_renew / remaining_ms + cn_mvcc_lease_info/each_key
 *   HashKV       cn_mvcc_hash; Watch catch-up cn_mvcc_changes; Raft snapshot freeze/encode/load
 *
 * Threading: none. Every call happens on the caller's (the loop's) thread, except
 * cn_mvcc_frozen_encode, which may run on a worker. */
#ifndef CN_MVCC_MVCC_H
#define CN_MVCC_MVCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/str.h"

#define CN_MVCC_KEY_MAX         (16u << 20)
#define CN_MVCC_VALUE_MAX       (64u << 20)
#define CN_MVCC_TXN_MAX_CHANGES (1u << 30)
#define CN_MVCC_LEASE_TTL_MAX   9000000000LL /* etcd's lease.MaxLeaseTTL (seconds) */

/* etcd errors mvcc raises. They are results the layer above turns into gRPC statuses; the
 * message (cn_mvcc_strerror) is etcd's exact text, which clients match. Numbered apart from
 * CN_ERR_* (common/err.h), which mvcc also returns for bad input (CN_ERR_INVAL, CN_ERR_TOO_LARGE,
 * CN_ERR_CORRUPT, CN_ERR_VERSION). */
enum cn_mvcc_err {
    CN_MVCC_ERR_COMPACTED = -10200,           /* "mvcc: required revision has been compacted" */
    CN_MVCC_ERR_FUTURE_REV = -10201,          /* "mvcc: required revision is a future revision" */
    CN_MVCC_ERR_KEY_NOT_FOUND = -10202,       /* "etcdserver: key not found" (ignore_value/lease) */
    CN_MVCC_ERR_LEASE_NOT_FOUND = -10203,     /* "etcdserver: requested lease not found" */
    CN_MVCC_ERR_LEASE_EXISTS = -10204,        /* "etcdserver: lease already exists" */
    CN_MVCC_ERR_LEASE_TTL_TOO_LARGE = -10205, /* "etcdserver: too large lease TTL" */
    CN_MVCC_ERR_NOT_PRIMARY = -10206,         /* lessor: this member is not the leader */
    CN_MVCC_ERR_LEASE_EXPIRED = -10207,       /* lessor: expired, revoke pending (etcd waits for the
                                                 revoke, then answers lease not found) */
};

/* etcd's message for a CN_MVCC_ERR_* code (the gRPC text, with "etcdserver: " where etcd's
 * rpctypes has it); falls back to cn_strerror for other codes. Static string. */
const char *cn_mvcc_strerror(int rc);

/* One key as it is at some revision. All pointers are borrowed (see the file comment). value is
 * never NULL (points at "" when empty); key/value are not NUL-terminated as far as the API goes,
 * though the store does keep a NUL after each. */
struct cn_mvcc_kv {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

/* Range request. range_end: empty = the single key `key`; "\0" (one zero byte) = every key >=
 * key; otherwise [key, range_end) (empty when range_end <= key). key "\0" with range_end "\0"
 * is the whole key space. Bytes are compared as unsigned, shorter first (Go's bytes.Compare). */
struct cn_mvcc_range_req {
    struct cn_str key;
    struct cn_str range_end;
    int64_t rev;     /* 0 (or negative) = current; else must be compacted <= rev <= current */
    int64_t limit;   /* 0 (or negative) = no limit */
    bool keys_only;  /* kvs carry no value (value "" / 0) */
    bool count_only; /* no kvs, only count */
    /* Filters applied in the same pass, as etcd's apply.go prunes (0 = no bound). They narrow
     * kvs and `more`, never `count`: etcd's count is the number of keys in the range at rev,
     * ignoring limit and filters (Kubernetes computes remainingItemCount from it). The layer
     * above that sorts passes limit 0, sorts and truncates itself (as etcd does). */
    int64_t min_mod_revision, max_mod_revision;
    int64_t min_create_revision, max_create_revision;
};

/* Range result; the caller owns the struct and the kvs array (reuse it across calls, free with
 * cn_mvcc_range_result_free); the kvs' bytes are borrowed. */
struct cn_mvcc_range_result {
    struct cn_mvcc_kv *kvs; /* n entries in key order */
    size_t n;
    size_t cap;
    int64_t count; /* keys in the range at rev, ignoring limit and filters */
    bool more;     /* limit > 0 and more (filtered) keys follow */
    int64_t rev;   /* the header revision etcd answers: the current one (the txn's, inside a
                      write txn), even when reading an older revision */
};
void cn_mvcc_range_result_free(struct cn_mvcc_range_result *r);

enum cn_mvcc_event_type {
    CN_MVCC_PUT = 0,    /* mvccpb.Event_PUT */
    CN_MVCC_DELETE = 1, /* mvccpb.Event_DELETE: kv has key and mod_revision only */
};

/* A change, as Watch reports it. */
struct cn_mvcc_event {
    uint8_t type; /* enum cn_mvcc_event_type */
    bool has_prev;
    struct cn_mvcc_kv kv;   /* DELETE: key, mod_revision = the delete's revision, rest 0 */
    struct cn_mvcc_kv prev; /* the key before this change (has_prev), as Watch's prev_kv */
};

struct cn_mvcc;

struct cn_mvcc *cn_mvcc_new(void);
void cn_mvcc_free(struct cn_mvcc *m);

/* The current revision (1 on an empty store) and the compacted one (0 until the first
 * compaction). */
int64_t cn_mvcc_rev(const struct cn_mvcc *m);
int64_t cn_mvcc_compacted_rev(const struct cn_mvcc *m);
/* Keys alive at the current revision. */
uint64_t cn_mvcc_key_count(const struct cn_mvcc *m);

/* Sizes, for Status (dbSize) and metrics. data_bytes: every kept key once plus every kept
 * record's value length (a value shared by several records counts for each), no overhead. */
struct cn_mvcc_stats {
    uint64_t keys_live;      /* alive at the current revision */
    uint64_t keys_kept;      /* with any kept revision (deleted ones until compacted) */
    uint64_t revisions_kept; /* puts and tombstones kept */
    uint64_t data_bytes;
    uint64_t leases;
};
void cn_mvcc_stats(const struct cn_mvcc *m, struct cn_mvcc_stats *st);

/* Range (etcd's rangeKeys): fills out (out->n reset first). Errors: CN_MVCC_ERR_FUTURE_REV (rev >
 * current; out->rev = current), CN_MVCC_ERR_COMPACTED (rev < compacted), CN_ERR_INVAL (empty key).
 * Cost: O(log n + k) at the current revision (count from per-subtree live counters, deleted keys
 * skipped by subtree), O(log n + keys in range) for an older one. Must not be called while a
 * write txn is open (use cn_mvcc_txn_range). */
int cn_mvcc_range(struct cn_mvcc *m, const struct cn_mvcc_range_req *req,
                  struct cn_mvcc_range_result *out);

/* ---- write transactions (etcd's storeTxnWrite) --------------------------------------------
 * begin → any number of range/put/delete_range → end. One txn at a time; reads outside it are
 * not allowed while it is open. All changes of a txn share main revision rev+1; end makes it the
 * current revision if anything changed. Each call either fully applies or changes nothing; there
 * is no rollback (etcd has none either): the layer above checks a Txn's puts first with
 * cn_mvcc_txn_put_check, as etcd's checkRequestPut does, so that a Txn fails before it writes. */
struct cn_mvcc_txn;

struct cn_mvcc_txn *cn_mvcc_txn_begin(struct cn_mvcc *m);
/* Range inside the txn: sees its earlier writes; "current" is the txn's revision (rev + 1 once
 * it changed something), as etcd's storeTxnWrite.Range. */
int cn_mvcc_txn_range(struct cn_mvcc_txn *t, const struct cn_mvcc_range_req *req,
                      struct cn_mvcc_range_result *out);

#define CN_MVCC_PUT_IGNORE_VALUE 0x1u /* keep the key's value (PutRequest.ignore_value) */
#define CN_MVCC_PUT_IGNORE_LEASE 0x2u /* keep the key's lease (PutRequest.ignore_lease) */

/* Would this put fail? Returns what cn_mvcc_txn_put would (CN_MVCC_ERR_KEY_NOT_FOUND when an
 * ignore flag is set and the key does not exist now; CN_MVCC_ERR_LEASE_NOT_FOUND for a lease
 * that does not exist, unless ignore_lease; CN_ERR_INVAL / CN_ERR_TOO_LARGE) without writing.
 * Also callable outside a txn with t == NULL and m set (checks against the current state). */
int cn_mvcc_txn_put_check(struct cn_mvcc *m, struct cn_mvcc_txn *t, struct cn_str key,
                          size_t value_len, int64_t lease, unsigned flags);
/* Put (etcd's applierV3backend.Put + storeTxnWrite.put): writes key=value with the lease
 * (0 = none), detaching the key from its previous lease. prev (optional): filled with the key's
 * kv before the put, *has_prev set (PutRequest.prev_kv). On error nothing changed. Returns 0,
 * or the errors of cn_mvcc_txn_put_check. The new kv is mod_revision = the txn's revision. */
int cn_mvcc_txn_put(struct cn_mvcc_txn *t, struct cn_str key, struct cn_str value, int64_t lease,
                    unsigned flags, struct cn_mvcc_kv *prev, bool *has_prev);
/* Deletes every live key in the range (range_end as in cn_mvcc_range_req), in key order, one
 * sub-revision each, detaching their leases. prev (optional): the deleted kvs, in key order
 * (DeleteRangeRequest.prev_kv; its count/rev fields are set too). *deleted: how many. */
int cn_mvcc_txn_delete_range(struct cn_mvcc_txn *t, struct cn_str key, struct cn_str range_end,
                             struct cn_mvcc_range_result *prev, int64_t *deleted);
/* The txn's revision so far: rev + 1 once something changed, else rev (what etcd puts in a
 * response header for each op). */
int64_t cn_mvcc_txn_rev(const struct cn_mvcc_txn *t);
/* Commits: returns the store's revision after the txn, and the txn's events in change order
 * (*events may be NULL when *n is 0), borrowed until the next write. The txn is gone. */
int64_t cn_mvcc_txn_end(struct cn_mvcc_txn *t, const struct cn_mvcc_event **events, size_t *n);

/* ---- changes since a revision (Watch catch-up) -------------------------------------------- */

/* Appends to *out (an array the caller owns, grown with cn_xrealloc, *n and *cap updated) the
 * events of revisions start_rev..end_rev (end_rev 0 = current) in revision order: stops before
 * the first revision that would start after max events (0 = no bound); a main revision is never
 * split, so a batch may exceed max by the rest of its last revision. DELETE events carry key and
 * mod_revision. prev is the key as of mod_revision - 1 (Watch's prev_kv) when still kept.
 * Returns the last main revision included (start_rev - 1 when none; start_rev < 1 counts as 1),
 * or CN_MVCC_ERR_COMPACTED when start_rev < compacted. At start_rev == compacted only what
 * compaction kept is reported (3.4.23 drops a tombstone at the compaction revision; a watch from
 * there misses that DELETE). */
int64_t cn_mvcc_changes(struct cn_mvcc *m, int64_t start_rev, int64_t end_rev, size_t max,
                        struct cn_mvcc_event **out, size_t *n, size_t *cap);

/* ---- compaction --------------------------------------------------------------------------- */

/* Compact(rev) as etcd 3.4.23: per key keeps only the largest revision <= rev and what follows,
 * drops generations (and so tombstones) ending at <= rev; keys left with nothing are removed and
 * their memory released. Errors: CN_MVCC_ERR_COMPACTED (rev <= compacted), CN_MVCC_ERR_FUTURE_REV
 * (rev > current). Cost: O(revisions dropped * log n), never a scan of all keys. Not inside a
 * txn. Compaction does not change the current revision. */
int cn_mvcc_compact(struct cn_mvcc *m, int64_t rev);

/* ---- leases (replicated) ------------------------------------------------------------------ */

/* Grants lease id (> 0; the layer above picks 0's replacement with cn_mvcc_lease_pick_id before
 * proposing) with ttl_s raised to min_ttl_s (etcd's minLeaseTTL; ttl <= 0 → min). *granted_ttl_s
 * (optional): the TTL stored. Errors: CN_MVCC_ERR_LEASE_NOT_FOUND (id <= 0, as etcd's Grant of
 * NoLease), CN_MVCC_ERR_LEASE_TTL_TOO_LARGE, CN_MVCC_ERR_LEASE_EXISTS. Consumes no revision. */
int cn_mvcc_lease_grant(struct cn_mvcc *m, int64_t id, int64_t ttl_s, int64_t min_ttl_s,
                        int64_t *granted_ttl_s);
/* Revokes: deletes every attached key, in key order, in ONE revision (none when no key), then
 * the lease. *rev (optional): the revision after; events borrowed as from cn_mvcc_txn_end.
 * Error: CN_MVCC_ERR_LEASE_NOT_FOUND. Not inside a txn. */
int cn_mvcc_lease_revoke(struct cn_mvcc *m, int64_t id, int64_t *rev,
                         const struct cn_mvcc_event **events, size_t *n);
bool cn_mvcc_lease_exists(const struct cn_mvcc *m, int64_t id);
/* The granted TTL (seconds) and the number of attached keys; CN_MVCC_ERR_LEASE_NOT_FOUND. */
int cn_mvcc_lease_info(const struct cn_mvcc *m, int64_t id, int64_t *ttl_s, size_t *nkeys);
/* A free lease id, deterministic: the smallest free id >= candidate (candidate <= 0 → 1),
 * wrapping from INT64_MAX to 1. The proposer calls it with its id generator's output. */
int64_t cn_mvcc_lease_pick_id(const struct cn_mvcc *m, int64_t candidate);
/* Number of leases; cn_mvcc_lease_at(i) gives the i-th in id order (id and ttl), for
 * LeaseLeases and the lessor's resync. Returns false when i is out of range. */
size_t cn_mvcc_lease_count(const struct cn_mvcc *m);
bool cn_mvcc_lease_at(const struct cn_mvcc *m, size_t i, int64_t *id, int64_t *ttl_s);
/* Calls fn for each key attached to lease id, in key order (LeaseTimeToLive keys=true). The key
 * is borrowed for the call. Returns CN_MVCC_ERR_LEASE_NOT_FOUND or 0. */
int cn_mvcc_lease_each_key(const struct cn_mvcc *m, int64_t id,
                           void (*fn)(const char *key, size_t key_len, void *ctx), void *ctx);

/* ---- snapshots ---------------------------------------------------------------------------- */

/* Appends a deterministic, versioned, checksummed (CRC-32) encoding of the whole state: every
 * kept revision of every key, the current and compacted revisions, the leases. Same as freeze,
 * encode, free. Not inside a txn. */
void cn_mvcc_snapshot_save(struct cn_mvcc *m, struct cn_buf *out);
/* Replaces the state with a snapshot. CN_ERR_CORRUPT / CN_ERR_VERSION / CN_ERR_TOO_LARGE on bad
 * input, and then the state is unchanged. Not inside a txn. Borrowed results die. */
int cn_mvcc_snapshot_load(struct cn_mvcc *m, const void *p, size_t len);

/* The state as of now, frozen (the key tree is persistent, copy-on-write): later writes,
 * compactions and loads do not change it. O(1) plus O(leases). Loop thread, not inside a txn. */
struct cn_mvcc_frozen;
struct cn_mvcc_frozen *cn_mvcc_freeze(struct cn_mvcc *m);
/* Appends the frozen state's encoding, byte-identical to cn_mvcc_snapshot_save at the freeze.
 * May run on another thread concurrently with any call on the store until frozen_free; one
 * encode per frozen state at a time. */
void cn_mvcc_frozen_encode(const struct cn_mvcc_frozen *f, struct cn_buf *out);
int64_t cn_mvcc_frozen_rev(const struct cn_mvcc_frozen *f);
/* Loop thread; the store may already be freed. */
void cn_mvcc_frozen_free(struct cn_mvcc_frozen *f);

/* A 32-bit hash (CRC-32) of the key space as kept at rev (0 = current): every kept revision <=
 * rev of every key (key, revision, tombstone, kv fields, value) in key then revision order, plus
 * the compacted revision; etcd's HashKV idea, equal on members that applied the same log and
 * compacted at the same points. *compacted_rev (optional) set. Errors as range's revision check. */
int cn_mvcc_hash(struct cn_mvcc *m, int64_t rev, uint32_t *hash, int64_t *compacted_rev);

/* ---- lessor (member-local, not replicated; lessor.c) --------------------------------------
 * Tracks the expiry of each lease on this member, as etcd's lessor does beside the replicated
 * table. Time is an argument (ms on any monotonic clock). The layer above tells it every grant
 * and revoke it applies (and resyncs after a snapshot load); the leader asks it which leases
 * expired and proposes their revocation. A follower's leases never expire (etcd: forever). */
struct cn_mvcc_lessor;

struct cn_mvcc_lessor *cn_mvcc_lessor_new(void);
void cn_mvcc_lessor_free(struct cn_mvcc_lessor *l);
/* After applying a grant: tracks id with ttl_s (the granted TTL); expires at now + ttl on a
 * primary, never on others. Re-granting a tracked id resets it. */
void cn_mvcc_lessor_grant(struct cn_mvcc_lessor *l, int64_t id, int64_t ttl_s, int64_t now_ms);
/* After applying a revoke (or when the lease is gone): forgets id. */
void cn_mvcc_lessor_revoke(struct cn_mvcc_lessor *l, int64_t id);
/* After a snapshot load: tracks exactly m's leases (kept ones keep their expiry; new ones as
 * grant). */
void cn_mvcc_lessor_sync(struct cn_mvcc_lessor *l, const struct cn_mvcc *m, int64_t now_ms);
/* KeepAlive: expiry = now + ttl; *ttl_s = the granted TTL. CN_MVCC_ERR_NOT_PRIMARY,
 * CN_MVCC_ERR_LEASE_NOT_FOUND, CN_MVCC_ERR_LEASE_EXPIRED (already expired, revoke pending). */
int cn_mvcc_lessor_renew(struct cn_mvcc_lessor *l, int64_t id, int64_t now_ms, int64_t *ttl_s);
/* Remaining time in ms (INT64_MAX when it never expires here, i.e. on a non-primary; may be
 * <= 0 when expired); LeaseTimeToLive's TTL is remaining/1000 truncated, as etcd's
 * Remaining().Seconds(). CN_MVCC_ERR_LEASE_NOT_FOUND. */
int cn_mvcc_lessor_remaining_ms(const struct cn_mvcc_lessor *l, int64_t id, int64_t now_ms,
                                int64_t *remaining_ms);
/* Up to max ids (etcd: leaseRevokeRate/2 = 500 per pass) of leases expired at now, earliest
 * first. Each returned lease is re-armed to be reported again at now + retry_ms (etcd: 3 s)
 * in case its revoke gets lost; revoke forgets it. Returns how many. Primary only (else 0). */
size_t cn_mvcc_lessor_expired(struct cn_mvcc_lessor *l, int64_t now_ms, int64_t retry_ms,
                              int64_t *ids, size_t max);
/* The earliest expiry (ms) of a tracked lease, INT64_MAX when none (to arm a timer). */
int64_t cn_mvcc_lessor_next_expiry_ms(const struct cn_mvcc_lessor *l);
/* This member became leader: every lease expires at now + extend + ttl; with >= 1000 leases
 * expiries are then spread so no more than 750 fall in a second, as etcd's Promote does. */
void cn_mvcc_lessor_promote(struct cn_mvcc_lessor *l, int64_t now_ms, int64_t extend_ms);
/* No longer leader: every lease's expiry becomes "never". */
void cn_mvcc_lessor_demote(struct cn_mvcc_lessor *l);
bool cn_mvcc_lessor_is_primary(const struct cn_mvcc_lessor *l);
size_t cn_mvcc_lessor_count(const struct cn_mvcc_lessor *l);

#endif
