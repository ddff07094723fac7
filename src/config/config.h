/* config: etcd's flags and ETCD_* variables, parsed once into an immutable struct cn_config that
 * is validated at start-up and passed down explicitly. One table (config.c) of name, default and
 * help text drives parsing, --help and the env fallback. Parsing follows Go's flag package as
 * etcd 2.3 used it: -name value, -name=value, --name value, --name=value; booleans as --flag or
 * --flag=true|false. */
#ifndef CN_CONFIG_CONFIG_H
#define CN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/url.h"

#define CN_MAX_URLS    16
#define CN_MAX_MEMBERS 16

struct cn_url_list {
    size_t n;
    struct cn_url u[CN_MAX_URLS];
    char *raw[CN_MAX_URLS]; /* each URL as given, trimmed (owned) */
};

struct cn_initial_member {
    char *name;
    struct cn_url_list peer_urls; /* sorted as strings */
    uint64_t id;
};

struct cn_config {
    char *name;
    char *data_dir;
    char *wal_dir; /* NULL = <data-dir>/member/wal */
    uint64_t snapshot_count;
    unsigned max_snapshots;
    unsigned max_wals;
    unsigned heartbeat_ms;
    unsigned election_ms;
    uint64_t max_request_bytes;    /* v2 */
    uint64_t max_request_bytes_v3; /* gRPC and the gateway: 1.5 MiB unless the flag is set */
    uint64_t max_txn_ops;
    bool enable_grpc_gateway;
    /* --auto-compaction-*: revision mode keeps the last `retention` revisions; periodic mode
     * keeps `retention` ms of history (0: off) */
    bool auto_compaction_revision;
    uint64_t auto_compaction_retention;
    struct cn_url_list listen_client;
    struct cn_url_list advertise_client;
    struct cn_url_list listen_peer;
    struct cn_url_list initial_advertise_peer;
    size_t ninitial;
    struct cn_initial_member initial[CN_MAX_MEMBERS];
    bool initial_cluster_new; /* --initial-cluster-state new */
    char *initial_cluster_token;
    char *discovery;
    char *discovery_fallback;
    char *discovery_proxy;
    char *discovery_srv;
    bool discovery_service;       /* --discovery-service: serve /new and /<token> */
    char *discovery_service_host; /* prefix of the token URLs (NULL: first advertised URL) */
    uint64_t discovery_token_ttl; /* seconds */
    bool strict_reconfig_check;
    bool force_new_cluster;
    char *proxy; /* "off", "on", "readonly" */
    uint64_t proxy_failure_wait_ms, proxy_refresh_interval_ms, proxy_dial_timeout_ms,
        proxy_write_timeout_ms, proxy_read_timeout_ms;
    char *cors; /* NULL = none; comma separated origins or "*" */
    bool debug;
    uint64_t member_id;  /* derived (static bootstrap) */
    uint64_t cluster_id; /* derived (static bootstrap) */
};

enum cn_config_result {
    CN_CONFIG_OK = 0,
    CN_CONFIG_EXIT_OK = 1, /* --help / --version printed: exit 0 */
    CN_CONFIG_ERROR = 2,   /* message printed on stderr: exit 1 */
    CN_CONFIG_USAGE = 3,   /* unknown flag (Go's flag package): exit 2 */
};

/* --auto-compaction-retention as etcd 3.4 reads it: revision mode takes a count; periodic mode
 * a Go duration ("1h30m", "90s") or a bare number of hours ("1", "0.5"). Into *out (revisions,
 * or ms). 0 or -1. */
int cn_config_parse_retention(const char *s, bool revision_mode, uint64_t *out);

/* Parses argv and the environment into cfg. Prints --help/--version output on stdout and one
 * error line on stderr. */
int cn_config_load(struct cn_config *cfg, int argc, char **argv, char **envp);
void cn_config_free(struct cn_config *cfg);

/* Parses an initial cluster spec ("name=url,...") found at run time (discovery, DNS SRV) into
 * out[CN_MAX_MEMBERS], ids derived with token (discovery: the discovery URL; SRV:
 * --initial-cluster-token). The configuration itself stays as parsed. Prints etcd's message and
 * returns CN_CONFIG_ERROR when spec is invalid (out is then empty). */
int cn_config_parse_initial_cluster(const char *spec, const char *token,
                                    struct cn_initial_member *out, size_t *n);
void cn_config_initial_free(struct cn_initial_member *ms, size_t *n);

#endif
