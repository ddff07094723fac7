/* api/v2: etcd's v2 client API on top of the http layer: /v2/keys, /v2/members, /v2/machines,
 * /v2/stats/{self,leader,store}, /version, /health, /metrics. Every keys request is the same
 * pipeline: decode and validate parameters (etcd's order) -> a store read, a watch, or a command
 * proposed through the node -> encode the result or etcd's error JSON. Routing is a table; the
 * error table is v2_errors.def. */
#ifndef CN_API_V2_API_H
#define CN_API_V2_API_H

#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "node/node.h"
#include "store/store.h"

struct cn_api_options {
    const char *name;
    uint64_t member_id;
    uint64_t cluster_id;
    const char *cors; /* comma-separated origins, "*" or NULL */
    uint64_t max_request_bytes;
    unsigned election_ms; /* for the request timeout: 5 s + 2 x election timeout */
    /* --discovery-service: also serve /new and /<token>/... (etcd's discovery service) from
     * /_etcd/registry in the key space */
    bool discovery_service;
    const char *discovery_host; /* prefix of the token URLs handed out */
    uint64_t discovery_ttl_s;   /* tokens expire after this */
};

struct cn_api;

struct cn_api *cn_api_new(uv_loop_t *loop, const struct cn_api_options *opt, struct cn_store *store,
                          struct cn_node *node);
void cn_api_free(struct cn_api *api);

/* The http handler and body-too-large callback (ctx = the api). */
void cn_api_handle(struct cn_http_req *req, void *ctx);
void cn_api_too_large(struct cn_http_req *req, void *ctx);

/* etcd's error 210 for a body over --max-request-bytes, for a caller that has no api yet (the
 * server while the data dir is recovered). */
void cn_api_reply_too_large(struct cn_http_req *req);

/* Appends the member list as the peer port serves it at GET /members (etcd's peer handler): a
 * JSON array of {"id","name","peerURLs","clientURLs"}, no newline. */
void cn_api_members_array(struct cn_api *api, struct cn_buf *out);

/* Ends every open watch response (shutdown). */
void cn_api_end_watches(struct cn_api *api);

#endif
