/* cluster: the cluster's membership as cairn records it, and the identity and bootstrap rules
 * etcd derives from it. Pure: no sockets, files or clocks (a time, when a record needs one, is
 * the caller's argument). It is the one reader and the one writer of the member records; the
 * node, the API, the server, the proxy and cairnctl all go through it.
 *
 * Member records live in the store's system namespace, as etcd 2 keeps them under /0/members:
 *
 *     /members/<hex id>/raftAttributes   {"peerURLs":["http://10.0.0.1:2380",...]}
 *     /members/<hex id>/attributes       {"name":"infra0","clientURLs":["http://...:2379"]}
 *     /removed_members/<hex id>          "removed"   (a removed id stays known: it is told so)
 *     /version                           the cluster version ("2.3.0"), set once by a leader
 *
 * A membership change is a Raft configuration entry whose context carries the record changes
 * to apply with it, as a batch: [uvarint len][encoded cn_store_cmd] repeated. The node carries
 * the batch unread; the v2 state machine (server/fsm_v2.c) applies it. */
#ifndef CN_CLUSTER_CLUSTER_H
#define CN_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/str.h"

struct cn_store;

/* ---- one member ------------------------------------------------------------------------- */

struct cn_member {
    uint64_t id;
    char *name; /* "" until the member published its attributes */
    size_t n_peer, n_client;
    char **peer_urls; /* as recorded (sorted as strings when cairn wrote them) */
    char **client_urls;
};

/* A list of members, sorted by id. Owns everything it points to. */
struct cn_member_list {
    size_t n;
    struct cn_member *m;
};

void cn_member_list_free(struct cn_member_list *l);
/* The member with id, or NULL. */
const struct cn_member *cn_member_list_find(const struct cn_member_list *l, uint64_t id);
/* Whether url is a peer URL of a member other than except_id. */
bool cn_member_list_has_peer_url(const struct cn_member_list *l, const char *url,
                                 uint64_t except_id);

/* ---- reading the records (borrowed store, read only) ------------------------------------- */

/* Every member recorded in the store, sorted by id. Records that do not parse leave the
 * fields they would fill empty. */
void cn_members_load(struct cn_store *s, struct cn_member_list *out);
/* Whether id was removed from the cluster (it is refused, and told so, if it calls). */
bool cn_members_is_removed(struct cn_store *s, uint64_t id);
/* The first peer URL recorded for id, copied into url (NUL-terminated). False when id has no
 * record or the URL does not fit. */
bool cn_members_peer_url(struct cn_store *s, uint64_t id, char *url, size_t len);
/* Whether the cluster version record exists; the recorded version (borrowed until the next
 * apply) or NULL. */
bool cn_members_has_version(struct cn_store *s);
const char *cn_members_version(struct cn_store *s, size_t *len);
/* Whether id's attributes record already holds exactly this name and these client URLs. */
bool cn_members_attributes_equal(struct cn_store *s, uint64_t id, const char *name,
                                 char *const *client_urls, size_t n);

/* ---- writing the records: encoded cn_store_cmd values, appended to out -------------------- */

/* A member added (as etcd's AddMember: action "create") or updated (PUT: "set") with these
 * peer URLs, which the caller has validated (sorted as strings for an add). */
void cn_members_cmd_peer_urls(struct cn_buf *out, uint64_t id, char *const *peer_urls, size_t n,
                              bool create, int64_t now_ns);
/* The member's name and client URLs (etcd's publish of /members/<id>/attributes). */
void cn_members_cmd_publish(struct cn_buf *out, uint64_t id, const char *name,
                            char *const *client_urls, size_t n, int64_t now_ns);
/* The cluster version record. */
void cn_members_cmd_version(struct cn_buf *out, const char *version, int64_t now_ns);

/* Record batches for configuration entries (see the top of this file). */
void cn_members_batch_add(struct cn_buf *batch, const void *cmd, size_t len);
/* The next command of a batch: *cmd and *len borrow from batch. Returns 1 with a command, 0 at the
 * end, CN_ERR_CORRUPT when the batch is cut short. *off starts at 0. */
int cn_members_batch_next(const void *batch, size_t batch_len, size_t *off, const void **cmd,
                          size_t *len);
/* The batch that adds a member: its raftAttributes record (create). */
void cn_members_batch_join(struct cn_buf *batch, uint64_t id, char *const *peer_urls, size_t n,
                           int64_t now_ns);
/* The batch that removes a member: its records go and /removed_members/<id> is set. */
void cn_members_batch_remove(struct cn_buf *batch, uint64_t id, int64_t now_ns);

/* ---- JSON ------------------------------------------------------------------------------- */

/* {"id":"<hex>","name":"..","peerURLs":[..],"clientURLs":[..]} as etcd 2 writes a member. */
void cn_member_json(struct cn_buf *out, const struct cn_member *m);
/* [member,...] (the peer port's GET /members), no newline. */
void cn_member_list_json(struct cn_buf *out, const struct cn_member_list *l);

/* Where a member list comes from: the peer port's GET /members (a JSON array) or the client
 * API's GET /v2/members ({"members":[...]}, an object without "members" being an empty list,
 * as Go decodes it). */
enum cn_member_list_form { CN_MEMBER_LIST_PEER, CN_MEMBER_LIST_CLIENT };

/* Parses a member list another member sent. The id may be etcd 2's hex string or etcd 3's JSON
 * number (one beyond int64 is rounded to a double's precision). Entries that are not objects,
 * and URLs that are not strings, are skipped. Returns 0, or CN_ERR_PARSE with the reason in err
 * when the body is not such a list. The body is bounded by the caller. */
int cn_member_list_parse(struct cn_str body, enum cn_member_list_form form,
                         struct cn_member_list *out, char *err, size_t errlen);

/* ---- versions -------------------------------------------------------------------------- */

#define CN_CLUSTER_SERVER_VERSION "2.3.8" /* the etcd release cairn answers as */
#define CN_CLUSTER_VERSION        "2.3.0" /* the cluster version a leader records */

/* /version's body, {"etcdserver":"2.3.8","etcdcluster":"..."}: cluster is the recorded version
 * (len bytes), or NULL while it is not decided yet ("not_decided", as etcd says). */
void cn_cluster_version_json(struct cn_buf *out, const char *cluster, size_t len);

/* ---- identity --------------------------------------------------------------------------- */

/* etcd's member id: the first 8 bytes (big endian) of SHA-1 over the sorted peer URLs
 * concatenated, then the token, then (when non-zero) the Unix time in seconds as decimal. */
uint64_t cn_cluster_member_id(char *const *sorted_urls, size_t n, const char *token,
                              int64_t unix_s);
/* etcd's cluster id: the first 8 bytes of SHA-1 over the big-endian member ids sorted
 * ascending. */
uint64_t cn_cluster_id(const uint64_t *ids, size_t n);

/* ---- bootstrap checks ------------------------------------------------------------------- */

/* A member of --initial-cluster (or of a discovered or SRV cluster), borrowed. */
struct cn_cluster_seed {
    const char *name;
    size_t n_peer;
    char *const *peer_urls; /* sorted as strings */
    uint64_t id;
};

/* etcd's checks of a new cluster's map before bootstrapping (spec etcd-cluster.md §2): name is
 * in the map; its URLs equal the advertised peer URLs; no URL belongs to two members. Returns 0,
 * or -1 with etcd's message (without the program prefix) in err. */
int cn_cluster_check_initial(const struct cn_cluster_seed *seeds, size_t n, const char *name,
                             char *const *advertised, size_t n_advertised, char *err,
                             size_t errlen);

/* etcd's ValidateClusterAndAssignIDs for a joining member: the running cluster's members
 * (remote) must match the seeds one for one by peer URLs. On success each seed's id is set to
 * the id the cluster assigned and *self to name's. Returns 0, or -1 with etcd's reason ("member
 * count is unequal", "unmatched member while checking PeerURLs", ...) in err. */
int cn_cluster_match_remote(struct cn_cluster_seed *seeds, size_t n, const char *name,
                            const struct cn_member_list *remote, uint64_t *self, char *err,
                            size_t errlen);

#endif
