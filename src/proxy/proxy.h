/* proxy: etcd 2.3's proxy mode (--proxy on|readonly). Serves the client API on
 * --listen-client-urls by reverse-proxying every request to a live member's client URL,
 * streaming responses (watches) through, and keeps the member list fresh from the cluster's
 * peer URLs (GET <peerURL>/members), recorded in <data-dir>/proxy/cluster.
 *
 * Threading: everything runs on the loop thread passed to cn_proxy_start. */
#ifndef CN_PROXY_PROXY_H
#define CN_PROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"

struct cn_proxy;

/* Starts serving the client API on cfg->listen_client by forwarding to the cluster's members.
 * Peer URLs come from peer_urls when npeer > 0 (discovery fallback), else from
 * <data-dir>/proxy/cluster ({"PeerURLs":[...]}) if present, else from cfg's --initial-cluster.
 * Writes <data-dir>/proxy/cluster. Returns 0 or a negative error with a message in err.
 * The --proxy-* timings come from cfg.
 * cfg and peer_urls are borrowed for the call only. On failure *out is not set; handles that
 * were already opened close (and free) themselves once the loop runs. */
int cn_proxy_start(uv_loop_t *loop, const struct cn_config *cfg, const char *const *peer_urls,
                   size_t npeer, struct cn_proxy **out, char *err, size_t errlen);

/* Stops listening, ends streams, closes handles; cb runs from the loop afterwards; frees itself.
 * Requests still waiting for a member get 503. cb may be NULL. */
void cn_proxy_stop(struct cn_proxy *p, void (*cb)(void *ctx), void *ctx);

/* The number of client requests being forwarded or queued (for tests and logs). */
size_t cn_proxy_inflight(const struct cn_proxy *p);

#endif
