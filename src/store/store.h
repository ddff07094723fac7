/* store: the etcd v2 key space as a pure state machine. It owns the node trees (one per
 * namespace), the TTL heap, the single etcd index, the 1000-event history and the watcher hub.
 * It knows nothing of sockets, files, clocks or Raft: every mutation arrives as an encoded
 * command (cn_store_cmd) carrying the time of its log entry, and returns a result plus the event
 * it produced, so that every replica applying the same commands ends up byte-identical.
 *
 * Threading: none. All calls happen on the caller's thread (the node's event loop). */
#ifndef CN_STORE_STORE_H
#define CN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/str.h"

/* Namespaces: separate trees sharing one index and one history. Watchers and reads name one. */
enum cn_store_ns {
    CN_NS_SYS = 0,  /* cluster metadata: /members/<id>/..., /version (etcd's "/0") */
    CN_NS_KEYS = 1, /* the client key space served at /v2/keys (etcd's "/1") */
    CN_NS_AUTH = 2, /* users, roles, enabled flag (etcd's "/2") */
    CN_NS_COUNT = 3,
};

/* Store operations. The API layer picks the operation from the request's method and parameters
 * (etcd's dispatch table, spec §6.1); the store only executes it. */
enum cn_store_op {
    CN_OP_SET = 1,    /* create or replace (action "set") */
    CN_OP_CREATE,     /* must not exist (action "create") */
    CN_OP_CREATE_SEQ, /* POST: create <key>/<20-digit index> (action "create"); on "/" the
                         child is created under the root, as etcd does */
    CN_OP_UPDATE,     /* must exist (action "update") */
    CN_OP_CAS,        /* compare-and-swap (action "compareAndSwap") */
    CN_OP_DELETE,     /* action "delete" */
    CN_OP_CAD,        /* compare-and-delete (action "compareAndDelete"); "/" → 107 */
    CN_OP_SYNC,       /* expire every node with expire_ns <= now_ns (action "expire" per node) */
    CN_OP_NOOP,       /* consumes no index; used by consensus (e.g. a new leader's empty entry) */
};

/* A decoded command. All cn_str fields are borrowed (from the encoded bytes, or from the
 * caller's request). */
struct cn_store_cmd {
    uint8_t op;          /* enum cn_store_op */
    uint8_t ns;          /* enum cn_store_ns */
    bool dir;            /* create a directory (SET/CREATE/CREATE_SEQ); allow dir (DELETE) */
    bool recursive;      /* DELETE */
    bool refresh;        /* SET/UPDATE/CAS: keep the value, only reset the TTL (etcd >= 2.3) */
    bool has_prev_value; /* CAS/CAD: compare prev_value (even when empty) */
    struct cn_str key;   /* raw path as the client gave it (the store cleans it) */
    struct cn_str value; /* SET/CREATE/CREATE_SEQ/UPDATE/CAS */
    struct cn_str prev_value;
    uint64_t prev_index; /* CAS/CAD; 0 = no index check */
    int64_t expire_ns;   /* absolute expiry (Unix ns) fixed by the proposer; 0 = permanent */
    int64_t now_ns;      /* the log entry's time (proposer's clock); SYNC expires against it */
};

/* Encodes c (versioned binary format) by appending to out. */
void cn_store_cmd_encode(const struct cn_store_cmd *c, struct cn_buf *out);
/* The number of bytes cn_store_cmd_encode appends for c. */
size_t cn_store_cmd_encoded_len(const struct cn_store_cmd *c);
/* Encodes c as cn_store_cmd_encode does, except that when c->value.p is NULL (c->value.len > 0)
 * the value's bytes are left for the caller to write: the return value points at the
 * c->value.len bytes where they go, valid until out changes again (NULL when c has no value).
 * This lets a caller decode a value straight into the command (the API does, from a form). */
char *cn_store_cmd_encode_hole(const struct cn_store_cmd *c, struct cn_buf *out);
/* Decodes a command; borrowed fields point into p. Returns 0, CN_ERR_CORRUPT or CN_ERR_VERSION. */
int cn_store_cmd_decode(const void *p, size_t len, struct cn_store_cmd *c);

struct cn_store_val;

/* One node as it was at an event (owned by the event; the value is shared with the tree and
 * other events, read-only). */
struct cn_store_node_copy {
    char *key; /* absolute path within its namespace, NUL-terminated */
    size_t key_len;
    const char *value; /* NULL for directories and for delete/expire "node" objects */
    size_t value_len;
    struct cn_store_val *val; /* private: the value's reference (NULL when empty or none) */
    bool dir;
    int64_t expire_ns; /* 0 = no TTL */
    uint64_t modified_index;
    uint64_t created_index;
};

/* An event: the result of a successful mutation. Reference counted: the history holds one ref;
 * anyone who keeps an event beyond the call that handed it out takes a ref. */
struct cn_store_event {
    int refs;
    uint8_t ns;
    const char *action; /* "set", "create", "update", "compareAndSwap", "delete",
                           "compareAndDelete", "expire" (static strings) */
    bool refresh;       /* a refresh: recorded in history, never delivered to watchers */
    bool has_prev;
    uint64_t index; /* the index this event consumed */
    struct cn_store_node_copy node;
    struct cn_store_node_copy prev;
};

void cn_store_event_ref(struct cn_store_event *ev);
void cn_store_event_unref(struct cn_store_event *ev);

/* Appends the event's JSON as etcd writes it, without trailing newline:
 * {"action":"set","node":{...},"prevNode":{...}}. ttl fields are computed against now_ns
 * (ceil of the remaining seconds, omitted when <= 0). */
void cn_store_event_json(const struct cn_store_event *ev, int64_t now_ns, struct cn_buf *out);

/* etcd error codes the store raises (spec §10.2). The messages and HTTP statuses live with the
 * API (src/api/v2/v2_errors.def). */
enum cn_ecode {
    CN_EC_KEY_NOT_FOUND = 100,
    CN_EC_TEST_FAILED = 101,
    CN_EC_NOT_FILE = 102,
    CN_EC_NOT_DIR = 104,
    CN_EC_NODE_EXIST = 105,
    CN_EC_ROOT_RONLY = 107,
    CN_EC_DIR_NOT_EMPTY = 108,
    CN_EC_EVENT_INDEX_CLEARED = 401,
};

/* An etcd error result (spec §10): ecode 0 means success. */
struct cn_store_err {
    int ecode;       /* 100, 101, ... */
    char cause[512]; /* truncated if longer; "" when none */
    uint64_t index;  /* the store's current index when the error was raised */
};

/* Result of cn_store_apply. For SYNC, ev is NULL and nexpired tells how many nodes expired (their
 * events went to history and watchers). */
struct cn_store_result {
    struct cn_store_err err;
    struct cn_store_event *ev; /* success: borrowed, valid until the next apply or snapshot
                                  load (the store holds a ref); ref it to keep */
    uint64_t nexpired;
};

struct cn_store;

struct cn_store *cn_store_new(void);
/* Frees everything, live watchers included (their callbacks are not called). Not from inside a
 * watch callback. */
void cn_store_free(struct cn_store *s);

/* Applies one command. Always deterministic: the outcome depends only on the store's state and
 * the command. Fills res. Returns 0, or CN_ERR_CORRUPT if the command cannot be decoded (that is
 * a bug or corruption, not an etcd error). */
int cn_store_apply(struct cn_store *s, const void *cmd, size_t len, struct cn_store_result *res);
/* Same, for an already decoded command. */
void cn_store_apply_cmd(struct cn_store *s, const struct cn_store_cmd *c,
                        struct cn_store_result *res);

/* The current etcd index. */
uint64_t cn_store_index(const struct cn_store *s);

/* GET: appends {"action":"get","node":{...}} (no newline) for key to out, or fills err and
 * appends nothing. recursive: whole subtree; sorted: sort each nodes array by key (cairn always
 * sorts; the flag is accepted for compatibility). Hidden children (name starting with '_') are
 * left out of listings. ttl is computed against now_ns. Counts getsSuccess/getsFail. Returns true
 * on success. */
bool cn_store_get_json(struct cn_store *s, uint8_t ns, struct cn_str key, bool recursive,
                       bool sorted, int64_t now_ns, struct cn_buf *out, struct cn_store_err *err);

/* Reads a key's value without counting it as a client get (for internal records). key is
 * cleaned like any other path. Returns a borrowed, NUL-terminated pointer valid until the next
 * apply, or NULL when missing or a directory. */
const char *cn_store_peek(struct cn_store *s, uint8_t ns, const char *key, size_t *len);

/* Calls fn for each direct child of dir (sorted by key, hidden ones included), for internal
 * readers such as the membership layer. key is the child's absolute path ("/members/abc");
 * value is NULL for directories. Borrowed strings are valid during the call only; fn may read
 * the store but must not apply commands. Nothing is called when dir is missing or a key. */
void cn_store_each_child(struct cn_store *s, uint8_t ns, const char *dir,
                         void (*fn)(const char *key, const char *value, size_t value_len,
                                    bool is_dir, void *ctx),
                         void *ctx);

/* Earliest expiry among nodes with a TTL (Unix ns), or 0 when none. The leader proposes SYNC when
 * this is <= its clock. */
int64_t cn_store_next_expiry(const struct cn_store *s);

/* Number of keys (non-directory nodes) in a namespace. */
uint64_t cn_store_key_count(const struct cn_store *s, uint8_t ns);

/* ---- watches ---------------------------------------------------------------------------- */

struct cn_store_watcher;

/* Called for each matching event, during cn_store_apply (or during cn_store_watch when a history
 * event satisfies the watch at once), and once with ev == NULL when the watcher is ended by a
 * snapshot load. ev is borrowed for the call (ref it to keep it). The callback may call
 * cn_store_unwatch on any watcher, itself included, and may register new watchers (they start
 * with the next event); it must not call cn_store_snapshot_load or cn_store_free. A non-stream
 * watcher is already removed when its callback runs (watcher count decremented, unwatching it is
 * a no-op) and is freed when the callback returns: nobody may use w after that. */
typedef void (*cn_store_watch_cb)(struct cn_store_watcher *w, struct cn_store_event *ev, void *ctx);

/* Registers a watch on key (spec §8). since_index 0 = the next event. When an event in history
 * at or after since_index matches, it is delivered through cb before this returns; a non-stream
 * watcher is then already gone and *out is set to NULL. A stream watcher gets every matching
 * history event from since_index on, then live ones (cairn streams on after a history hit,
 * unlike etcd's quirk); *out is NULL if its callback unwatched it meanwhile. History scans do not
 * apply the hidden filter (etcd's quirk); live delivery does. Returns true with err->ecode 0 and
 * err->index = the store index at registration (the watch response's X-Etcd-Index); on error
 * (401 event index cleared) fills err and returns false. */
bool cn_store_watch(struct cn_store *s, uint8_t ns, struct cn_str key, bool recursive, bool stream,
                    uint64_t since_index, cn_store_watch_cb cb, void *ctx,
                    struct cn_store_watcher **out, struct cn_store_err *err);
void cn_store_unwatch(struct cn_store *s, struct cn_store_watcher *w);
/* Live watchers (for /v2/stats/store and /metrics). */
uint64_t cn_store_watcher_count(const struct cn_store *s);

/* ---- stats ------------------------------------------------------------------------------- */

/* Appends /v2/stats/store JSON in etcd's key order (spec §12.3), no newline. */
void cn_store_stats_json(const struct cn_store *s, struct cn_buf *out);

struct cn_store_stats {
    uint64_t gets_success, gets_fail, sets_success, sets_fail, delete_success, delete_fail,
        update_success, update_fail, create_success, create_fail, cas_success, cas_fail,
        cad_success, cad_fail, expire_count;
};
void cn_store_get_stats(const struct cn_store *s, struct cn_store_stats *out);

/* ---- snapshots --------------------------------------------------------------------------- */

/* Appends a deterministic, versioned, checksummed encoding of the whole state (every namespace's
 * tree with TTLs, the index, the event history) to out. Two stores that applied the same commands
 * produce identical bytes. Same as freeze, encode, free. */
void cn_store_snapshot_save(struct cn_store *s, struct cn_buf *out);

/* The state as of now, frozen: later applies and snapshot loads do not change it (the tree is
 * persistent, store_int.h). O(1) in the size of the store, plus a reference per history event.
 * Loop thread. */
struct cn_store_frozen;
struct cn_store_frozen *cn_store_freeze(struct cn_store *s);
/* Appends the frozen state's encoding, byte-identical to what cn_store_snapshot_save gave at
 * the freeze. May run on another thread, concurrently with any call on the store, as long as
 * cn_store_frozen_free has not been called; at most one encode per frozen state at a time. */
void cn_store_frozen_encode(const struct cn_store_frozen *f, struct cn_buf *out);
/* Releases it (loop thread; the store may already be freed). */
void cn_store_frozen_free(struct cn_store_frozen *f);
/* Replaces the state with a snapshot. Live watchers are ended: each one's callback is called once
 * with ev == NULL, and the watcher is gone when it returns. On CN_ERR_CORRUPT / CN_ERR_VERSION the
 * store is unchanged. Stats are member-local: kept, not loaded. Not from inside a watch
 * callback. */
int cn_store_snapshot_load(struct cn_store *s, const void *p, size_t len);

#endif
