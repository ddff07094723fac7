/* discovery: how a member with no list of peers finds them.
 *
 * Client (--discovery URL): etcd's discovery protocol (spec etcd-cluster.md §4) against any
 * server that speaks it (discovery.etcd.io, an etcd or cairn registry, a cairn discovery
 * service): read the size, check the cluster is not full, register "name=peerURL,..." under this
 * member's id with prevExist=false, wait until size members registered, answer the first size.
 * Connection failures and timeouts are retried with exponential backoff
 * (CN_DISCOVERY_RETRIES attempts per step, 250 ms doubling to 4 s), then "too many retries".
 *
 * SRV (--discovery-srv DOMAIN): the _etcd-server._tcp / _etcd-server-ssl._tcp records, resolved
 * with the system resolver (/etc/resolv.conf), spec §5.
 *
 * Service (--discovery-service): /new and /<token>/... on the client port, served from the
 * member's own replicated key space under /_etcd/registry (spec §9); see src/api/v2. */
#ifndef CN_DISCOVERY_DISCOVERY_H
#define CN_DISCOVERY_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/http_client.h"

#define CN_DISCOVERY_RETRIES 6
#define CN_DISCOVERY_MAX     64 /* registrations read from a registry */

/* etcd's discovery errors (their messages are etcd's). */
enum cn_discovery_err {
    CN_DISC_OK = 0,
    CN_DISC_FULL,           /* "discovery: cluster is full" */
    CN_DISC_DUP_ID,         /* "discovery: found duplicate id" */
    CN_DISC_DUP_NAME,       /* "discovery: found duplicate name" */
    CN_DISC_SIZE_NOT_FOUND, /* "discovery: size key not found" */
    CN_DISC_BAD_SIZE,       /* "discovery: size key is bad" */
    CN_DISC_BAD_ENDPOINT,   /* "discovery: bad discovery endpoint" */
    CN_DISC_TOO_MANY,       /* "discovery: too many retries" */
    CN_DISC_BAD_URL,        /* "discovery: invalid URL" */
};

const char *cn_discovery_strerror(int err);

/* One registration: the member id (from its key) and its "name=url,name=url" value. */
struct cn_discovery_peer {
    uint64_t id;
    char *value;
};

/* Called once with the outcome. On CN_DISC_OK and on CN_DISC_FULL peers holds the first size
 * registrations in registration order (borrowed for the call); otherwise npeers is 0. */
typedef void (*cn_discovery_cb)(void *ctx, int err, const struct cn_discovery_peer *peers,
                                size_t npeers);

struct cn_discovery_opts {
    const char *url;      /* the discovery URL */
    const char *proxy;    /* --discovery-proxy, or NULL */
    uint64_t self_id;     /* sha1(peer URLs + url), etcd's formula */
    const char *self_reg; /* "name=url,..." */
    const char *name;
};

struct cn_discovery;

/* Starts the client protocol; cb runs later, from the loop. */
struct cn_discovery *cn_discovery_start(uv_loop_t *loop, struct cn_http_client *cl,
                                        const struct cn_discovery_opts *o, cn_discovery_cb cb,
                                        void *ctx);
/* Abandons it (cb does not run). */
void cn_discovery_cancel(struct cn_discovery *d);

/* SRV: fills out with "name=url" initial-cluster entries for the records of domain, naming the
 * one whose resolved host:port matches one of self_peer_urls self_name and the others "0", "1",
 * ... Blocking (start-up only). Returns 0, or -1 with a message in err. */
int cn_discovery_srv(const char *domain, const char *self_name, char *const *self_peer_urls,
                     size_t nself, char *out, size_t outlen, char *err, size_t errlen);

#endif
