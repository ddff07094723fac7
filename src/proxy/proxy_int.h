/* proxy_int: the proxy's shared state; private to src/proxy (proxy.c: lifecycle, endpoints, local
 * handlers and metrics; members.c: peer URLs, the cluster file, membership refresh; forward.c:
 * one forwarded client request). */
#ifndef CN_PROXY_PROXY_INT_H
#define CN_PROXY_PROXY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/list.h"
#include "common/str.h"
#include "http/http.h"
#include "http/http_client.h"
#include "proxy/proxy.h"

#define PROXY_MAX_URLS      64 /* peer URLs, and member client URLs (endpoints) */
#define PROXY_MAX_URL_LEN   512
#define PROXY_MAX_QUEUED    1024 /* requests held until the first membership fetch ends */
#define PROXY_MAX_METHODS   16
#define PROXY_MAX_HANDLED   128 /* (method, status) pairs counted in etcd_proxy_handled_total */
#define PROXY_MAX_BUFFERED  (64u * 1024 * 1024) /* a Content-Length body relayed whole */
#define PROXY_MAX_BACKLOG   (8u * 1024 * 1024)  /* unsent stream bytes before a client is cut */
#define PROXY_MEMBERS_MS    10000 /* GET /members, as etcd's GetClusterFromRemotePeers */
#define PROXY_MEMBERS_BYTES (1024 * 1024)

/* A list of owned URL strings, without duplicates. */
struct proxy_urls {
    size_t n;
    char *v[PROXY_MAX_URLS];
};

/* A member client URL requests go to. */
struct proxy_endpoint {
    char *url;                /* "http://host:port", owned */
    uint64_t failed_until_ms; /* uv_now() until which it is skipped; 0: available */
};

enum proxy_drop { DROP_ZERO_ENDPOINTS, DROP_FAILED_SENDING, DROP_FAILED_RESPONSE, DROP_N };

struct proxy_handled {
    uint8_t method;
    uint16_t status;
    uint64_t n;
};

/* The --proxy-* timings, in milliseconds (0 where etcd allows it: none), from cn_config. */
struct cn_proxy_timing {
    uint64_t failure_wait_ms;     /* quarantine of an endpoint after a failure (5000) */
    uint64_t refresh_interval_ms; /* membership refresh period (30000) */
    uint64_t dial_timeout_ms;     /* connect to a member (1000) */
    uint64_t write_timeout_ms;    /* write a request to a member (5000) */
    uint64_t read_timeout_ms;     /* silence from a member; 0 for watches (0) */
};

struct cn_proxy {
    uv_loop_t *loop;
    struct cn_proxy_timing t;
    bool readonly;
    char *cors;         /* --cors, NULL: none */
    char *cluster_path; /* <data-dir>/proxy/cluster */
    uint64_t max_body;  /* --max-request-bytes */
    struct cn_http_server *http;
    struct cn_http_client *client;
    uv_timer_t refresh_timer;

    struct proxy_urls peers;    /* where membership is fetched from */
    struct cn_buf cluster_json; /* what the cluster file holds */
    struct proxy_endpoint eps[PROXY_MAX_URLS];
    size_t neps;

    struct cn_list exchanges; /* struct proxy_exchange: forwarding */
    struct cn_list queued;    /* struct proxy_exchange: waiting for the first refresh */
    size_t nexchanges, nqueued;

    /* membership refresh */
    struct cn_http_client_req *refresh_req;
    size_t refresh_i; /* the peer URL being asked */
    bool refreshed;   /* the first refresh ended (with or without an answer) */

    /* metrics (etcd_proxy_*) */
    char method_names[PROXY_MAX_METHODS][12];
    size_t nmethods;
    uint64_t requests[PROXY_MAX_METHODS];
    uint64_t dropped[PROXY_MAX_METHODS][DROP_N];
    struct proxy_handled handled[PROXY_MAX_HANDLED];
    size_t nhandled;

    /* stop */
    bool stopping;
    int open_handles; /* server, client, timer: each close callback counts one down */
    void (*stop_cb)(void *ctx);
    void *stop_ctx;
};

/* ---- proxy.c ---- */
int cn_proxy__method_slot(struct cn_proxy *p, struct cn_str name);
void cn_proxy__count_dropped(struct cn_proxy *p, int slot, enum proxy_drop why);
void cn_proxy__count_handled(struct cn_proxy *p, int slot, int status);
/* Appends the URLs of the available endpoints to out (NUL-separated, offsets in off), starting
 * with the next one in round-robin order; returns how many. */
size_t cn_proxy__pick(struct cn_proxy *p, struct cn_buf *out, size_t *off, size_t max);
/* Quarantines an endpoint for failure_wait_ms (no-op if it is gone or already out). */
void cn_proxy__endpoint_failed(struct cn_proxy *p, const char *url, int rc);
size_t cn_proxy__available(const struct cn_proxy *p);
/* Answers locally with a JSON {"message": ...} body as etcd's httptypes.HTTPError does. */
void cn_proxy__error(struct cn_http_req *req, int status, const char *msg, bool close_after);
/* Replaces the endpoints with urls (quarantine kept for URLs that stay). */
void cn_proxy__set_endpoints(struct cn_proxy *p, const struct proxy_urls *urls);

/* ---- members.c ---- */
void cn_proxy__urls_free(struct proxy_urls *u);
/* Adds a copy of z (trailing '/' dropped) unless present; CN_ERR_TOO_LARGE when full. */
int cn_proxy__urls_add(struct proxy_urls *u, const char *z, size_t len);
/* Chooses the initial peer URLs (see cn_proxy_start) and writes the cluster file. */
int cn_proxy__init_peers(struct cn_proxy *p, const struct cn_config *cfg,
                         const char *const *peer_urls, size_t npeer, char *err, size_t errlen);
void cn_proxy__refresh_start(struct cn_proxy *p);
void cn_proxy__refresh_stop(struct cn_proxy *p);
/* Parses etcd's peer /members answer: [{"id":..,"name":..,"peerURLs":[..],"clientURLs":[..]}],
 * adding each member's usable (http://host:port) client and peer URLs to clients and peers
 * (others skipped with a warning, entries that are not objects ignored). Returns the number of
 * members (objects), or -1 when the body is not a JSON array. */
int cn_proxy__parse_members(struct cn_str body, struct proxy_urls *clients,
                            struct proxy_urls *peers);
/* The delay before the next membership refresh: interval_ms (--proxy-refresh-interval), at
 * least 100 ms, and 1 s instead of a default-sized (>= 30 s) interval while no endpoint is
 * available (as etcd 2.3). */
uint64_t cn_proxy__refresh_wait_ms(uint64_t interval_ms, size_t available);

/* ---- forward.c ---- */
/* The http server's handler for everything that is forwarded. */
void cn_proxy__forward(struct cn_proxy *p, struct cn_http_req *req, int slot);
/* Starts the requests queued before the first refresh ended. */
void cn_proxy__run_queued(struct cn_proxy *p);
/* Stop: answers queued requests with 503. */
void cn_proxy__fail_queued(struct cn_proxy *p);

#endif
