/* peer: the member-to-member transport on the peer URLs (2380). Each member dials one TCP
 * connection to every other member and sends on it only; what it receives arrives on the
 * connections the others dialed. So there is one connection per direction per pair, and a slow
 * reader never blocks a writer's other peers.
 *
 * Wire format. A dialer first sends one text line, so that operators (and the fault-injecting
 * proxy of the tests) can tell who is talking:
 *
 *     CNPEER/1 cluster=<hex> from=<hex> to=<hex>\n
 *
 * then frames:  u32 len | u32 crc32(kind, payload) | u8 kind | payload[len]   (little-endian).
 * A payload larger than CN_PEER_CHUNK is cut into CN_PEER_KIND_CHUNK frames
 * {u64 total, u64 offset, u8 kind, bytes} that the receiver reassembles (snapshots), up to
 * CN_PEER_MAX_MESSAGE. The acceptor checks the hello: another cluster id, or a "to" that is not
 * this member, is refused with a log line and the connection closed.
 *
 * The same port speaks HTTP on a connection whose first bytes are not a hello (src/http parses
 * it and writes the answer), for the endpoints etcd serves there: GET /members (a joining member
 * and proxies read the membership) and /version. The owner answers them through on_http_get;
 * each answer carries X-Etcd-Cluster-ID and ends the connection, other methods get 405.
 *
 * Connections are struct cn_stream (src/stream): TCP today, TLS later.
 *
 * Sending never blocks: frames queue per peer (bounded by CN_PEER_MAX_QUEUE; beyond it, or while
 * the peer is unreachable, sends fail and Raft retries). A lost connection is redialed with
 * exponential backoff (50 ms doubling to 1 s). Everything runs on the loop thread. */
#ifndef CN_PEER_PEER_H
#define CN_PEER_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"

enum cn_peer_kind {
    CN_PEER_KIND_RAFT = 1,      /* a raft message (cn_raft_msg_encode) */
    CN_PEER_KIND_PROP = 2,      /* a proposal forwarded by a follower to the leader */
    CN_PEER_KIND_PROP_FAIL = 3, /* the leader could not propose a forwarded proposal */
    CN_PEER_KIND_CHUNK = 4,     /* a piece of a large payload (transport-internal) */
};

#define CN_PEER_CHUNK       (1u << 20) /* payloads above this travel in chunks */
#define CN_PEER_MAX_FRAME   (CN_PEER_CHUNK + 64u)
#define CN_PEER_MAX_MESSAGE (1024u * 1024u * 1024u) /* reassembled payload cap (snapshots) */
#define CN_PEER_MAX_QUEUE   (64u * 1024u * 1024u)   /* unsent bytes per peer */

struct cn_peer_callbacks {
    /* A complete payload from member from (borrowed for the call). */
    void (*on_frame)(void *ctx, uint64_t from, uint8_t kind, const void *p, size_t len);
    /* An HTTP GET on the peer port for path (NUL-terminated, still percent-encoded, without the
     * query; at most 255 bytes, longer paths get 404 without a call): fill body (JSON) and return
     * the status (404 if unknown). */
    int (*on_http_get)(void *ctx, const char *path, struct cn_buf *body);
    /* The connection member from dialed to us was closed by its end (EOF): its process exited
     * or closed the link. May be NULL. */
    void (*on_peer_closed)(void *ctx, uint64_t from);
    /* Whether member id was removed from the cluster: its connections get the answer
     * "CNPEER/1 removed" and are closed (as etcd answers a removed member 410). May be NULL. */
    bool (*is_removed)(void *ctx, uint64_t id);
    /* A member we dialed told us we were removed. May be NULL. */
    void (*on_told_removed)(void *ctx, uint64_t by);
};

struct cn_peer;

struct cn_peer *cn_peer_new(uv_loop_t *loop, uint64_t cluster_id, uint64_t self_id,
                            const struct cn_peer_callbacks *cb, void *ctx);
/* Listens on host:port (resolved synchronously: call at start-up). Returns 0 or -errno with a
 * message in err. */
int cn_peer_listen(struct cn_peer *t, const char *host, uint16_t port, char *err, size_t errlen);
/* The port the first listener is bound to (after listening on port 0), 0 before listen. */
uint16_t cn_peer_port(const struct cn_peer *t);
/* Where member id listens ("http://host:port"); NULL forgets the member and closes its
 * connection. A changed URL redials. */
void cn_peer_set_addr(struct cn_peer *t, uint64_t id, const char *url);
/* Queues a payload for member id. Returns 0, or -ENOTCONN (not connected yet: dialing now),
 * -ENOBUFS (queue full), CN_ERR_NOT_FOUND (no address), CN_ERR_TOO_LARGE. */
int cn_peer_send(struct cn_peer *t, uint64_t to, uint8_t kind, const void *p, size_t len);
bool cn_peer_connected(const struct cn_peer *t, uint64_t id);
/* Closes the connections member id dialed to us (it will dial again). */
void cn_peer_disconnect(struct cn_peer *t, uint64_t id);
/* Stops listening, closes every connection; cb runs from the loop once all handles closed. */
void cn_peer_close(struct cn_peer *t, void (*cb)(void *ctx), void *ctx);

#endif
