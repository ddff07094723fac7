/* api/v2 internals shared by its files: the api object, response helpers, metrics. */
#ifndef CN_API_V2_API_INT_H
#define CN_API_V2_API_INT_H

#include "api.h"
#include "common/buf.h"
#include "common/list.h"

/* Methods counted in etcd_http_received_total (QGET is a quorum GET). */
enum { M_GET, M_QGET, M_PUT, M_POST, M_DELETE, M_HEAD, M_OTHER, M_COUNT };

#define CN_API_NCODES 12

struct cn_api {
    uv_loop_t *loop;
    struct cn_store *store;
    struct cn_node *node;
    char *name;
    char *cors;
    uint64_t member_id;
    uint64_t cluster_id;
    char cluster_hex[20];
    char member_hex[20];
    uint64_t max_request_bytes;
    unsigned election_ms;
    int64_t start_ns;
    bool discovery_service;
    char *discovery_host;
    uint64_t discovery_ttl_s;
    struct cn_list watches; /* struct watch.link */
    uint64_t watch_requests;
    /* metrics */
    uint64_t received[M_COUNT];
    uint64_t failed[M_COUNT][CN_API_NCODES];
    int failed_code[CN_API_NCODES]; /* HTTP status per column */
    uint64_t ok_bucket[M_COUNT][14];
    uint64_t ok_count[M_COUNT];
    double ok_sum[M_COUNT];
    uint64_t health_ok, health_fail;
};

extern const char *const cn_api__method_names[M_COUNT];

/* Responses. hdrs: extra headers; the keys/members ones add X-Etcd-Cluster-Id themselves. */
void cn_api__send(struct cn_api *api, struct cn_http_req *req, int status, const char *ctype,
                  const struct cn_http_hdr *hdrs, size_t nhdrs, const void *body, size_t len);
/* etcd's v2 error codes, named from v2_errors.def (CN_V2_KEY_NOT_FOUND = 100, ...). */
enum cn_v2_error {
#define CN_V2_ERR(name, code, msg, status) CN_V2_##name = code,
#include "v2_errors.def"
#undef CN_V2_ERR
};

/* The HTTP status etcd answers an error code with (500 for an unknown code). */
int cn_api__status_of(int ecode);
/* etcd keys-style error: {"errorCode":..,"message":..,"cause":..,"index":..}\n. Returns the
 * status it sent, for the metrics. */
int cn_api__send_error(struct cn_api *api, struct cn_http_req *req, int ecode, const char *cause,
                       uint64_t index);
/* {"message":"..."} (no newline), the members/stats/auth error form. */
void cn_api__send_message(struct cn_api *api, struct cn_http_req *req, int status,
                          const char *message);
void cn_api__count(struct cn_api *api, int m, int status, int64_t start_ns);
int cn_api__method_index(const struct cn_http_req *req, bool quorum);

/* etcd's error body, {"errorCode":..,"message":..,"cause":..,"index":..}\n (no cause when
 * empty), appended to b. */
void cn_api__error_body(struct cn_buf *b, int ecode, const char *cause, uint64_t index);

/* The route table (api.c): a path, or with prefix the path and everything under path/, the
 * methods it takes (1 << CN_HTTP_*), the 405's Allow header in etcd's order, and the handler,
 * which gets what follows the route's path. */
struct cn_api__route {
    const char *path;
    bool prefix;
    unsigned methods;
    const char *allow;
    void (*fn)(struct cn_api *api, struct cn_http_req *req, struct cn_str rest);
};
/* The route for path, with what follows its path in *rest; NULL when none. */
const struct cn_api__route *cn_api__find_route(struct cn_str path, struct cn_str *rest);

/* keys.c */
void cn_api__keys(struct cn_api *api, struct cn_http_req *req, struct cn_str rest);
/* etcd's text for a failed proposal or read ("etcdserver: request timed out", ...), or NULL
 * when rc has none. */
const char *cn_api__node_cause(int rc);
/* The discovery service's routes; false when the path is not one of them. */
bool cn_api__discovery(struct cn_api *api, struct cn_http_req *req);
/* members.c */
void cn_api__members(struct cn_api *api, struct cn_http_req *req, struct cn_str rest);
void cn_api__machines(struct cn_api *api, struct cn_http_req *req);
/* stats.c */
void cn_api__stats(struct cn_api *api, struct cn_http_req *req, struct cn_str which);
void cn_api__version(struct cn_api *api, struct cn_http_req *req);
/* health.c */
void cn_api__health(struct cn_api *api, struct cn_http_req *req);
/* metrics.c */
void cn_api__metrics(struct cn_api *api, struct cn_http_req *req);

#endif
