/* config: the flag table, Go-flag-style parsing, ETCD_* fallback, validation, id derivation. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"

enum kind { K_STR, K_UINT, K_BOOL, K_URLS, K_IGNORED, K_REMOVED };

struct flag {
    const char *name;
    enum kind kind;
    const char *def;
    const char *help;
};

/* etcd 2.3's flags (spec etcd-cluster.md §1.2) with 2.3's defaults. */
static const struct flag flags[] = {
    {"name", K_STR, "default", "human-readable name for this member"},
    {"data-dir", K_STR, "", "path to the data directory (default ./<name>.etcd)"},
    {"wal-dir", K_STR, "", "path to a dedicated WAL directory"},
    {"snapshot-count", K_UINT, "10000", "number of committed entries to trigger a snapshot"},
    {"max-snapshots", K_UINT, "5", "maximum number of snapshot files to retain (0 is unlimited)"},
    {"max-wals", K_UINT, "5", "maximum number of wal files to retain (0 is unlimited)"},
    {"heartbeat-interval", K_UINT, "100", "time (in milliseconds) of a heartbeat interval"},
    {"election-timeout", K_UINT, "1000", "time (in milliseconds) for an election to timeout"},
    {"max-request-bytes", K_UINT, "10485760",
     "maximum client request size in bytes the server will accept"},
    {"max-txn-ops", K_UINT, "128", "maximum number of operations permitted in a v3 transaction"},
    {"auto-compaction-mode", K_STR, "periodic",
     "interpret 'auto-compaction-retention' one of: periodic|revision"},
    {"auto-compaction-retention", K_STR, "0",
     "auto compaction retention for mvcc key value store (0 disables; periodic: a duration "
     "such as 1h or hours as a number, revision: a revision count)"},
    {"enable-grpc-gateway", K_BOOL, "true",
     "enable the v3 JSON gateway (/v3/...) on the client URLs"},
    {"listen-peer-urls", K_URLS, "http://localhost:2380,http://localhost:7001",
     "list of URLs to listen on for peer traffic"},
    {"listen-client-urls", K_URLS, "http://localhost:2379,http://localhost:4001",
     "list of URLs to listen on for client traffic"},
    {"initial-advertise-peer-urls", K_URLS, "http://localhost:2380,http://localhost:7001",
     "list of this member's peer URLs to advertise to the rest of the cluster"},
    {"advertise-client-urls", K_URLS, "http://localhost:2379,http://localhost:4001",
     "list of this member's client URLs to advertise to the public"},
    {"initial-cluster", K_STR, "default=http://localhost:2380,default=http://localhost:7001",
     "initial cluster configuration for bootstrapping"},
    {"initial-cluster-state", K_STR, "new", "initial cluster state ('new' or 'existing')"},
    {"initial-cluster-token", K_STR, "etcd-cluster",
     "initial cluster token for the etcd cluster during bootstrap"},
    {"discovery", K_STR, "", "discovery URL used to bootstrap the cluster"},
    {"discovery-fallback", K_STR, "proxy",
     "valid values include 'exit', 'proxy'; what to do when discovery fails"},
    {"discovery-proxy", K_STR, "", "HTTP proxy to use for traffic to the discovery service"},
    {"discovery-service", K_BOOL, "false",
     "also serve a discovery service (/new, /<token>) from this member's key space (cairn)"},
    {"discovery-service-host", K_STR, "",
     "URL prefix of the token URLs /new hands out (default: the first advertise-client-url)"},
    {"discovery-token-ttl", K_UINT, "604800",
     "seconds a discovery token lives before it expires (default 7 days)"},
    {"discovery-srv", K_STR, "", "DNS domain used to bootstrap the initial cluster"},
    {"strict-reconfig-check", K_BOOL, "false",
     "reject reconfiguration requests that would cause quorum loss"},
    {"force-new-cluster", K_BOOL, "false", "force to create a new one member cluster"},
    {"proxy", K_STR, "off", "valid values include 'off', 'readonly', 'on'"},
    {"proxy-failure-wait", K_UINT, "5000",
     "time (in milliseconds) an endpoint will be held in a failed state"},
    {"proxy-refresh-interval", K_UINT, "30000",
     "time (in milliseconds) of the endpoints refresh interval"},
    {"proxy-dial-timeout", K_UINT, "1000", "time (in milliseconds) for a dial to timeout"},
    {"proxy-write-timeout", K_UINT, "5000", "time (in milliseconds) for a write to timeout"},
    {"proxy-read-timeout", K_UINT, "0", "time (in milliseconds) for a read to timeout"},
    {"cert-file", K_STR, "", "path to the client server TLS cert file"},
    {"key-file", K_STR, "", "path to the client server TLS key file"},
    {"client-cert-auth", K_BOOL, "false", "enable client cert authentication"},
    {"trusted-ca-file", K_STR, "", "path to the client server TLS trusted CA key file"},
    {"ca-file", K_STR, "", "DEPRECATED: path to the client server TLS CA file"},
    {"peer-cert-file", K_STR, "", "path to the peer server TLS cert file"},
    {"peer-key-file", K_STR, "", "path to the peer server TLS key file"},
    {"peer-client-cert-auth", K_BOOL, "false", "enable peer client cert authentication"},
    {"peer-trusted-ca-file", K_STR, "", "path to the peer server TLS trusted CA file"},
    {"peer-ca-file", K_STR, "", "DEPRECATED: path to the peer server TLS CA file"},
    {"cors", K_STR, "",
     "comma-separated whitelist of origins for CORS (cross-origin resource sharing)"},
    {"debug", K_BOOL, "false", "enable debug-level logging"},
    {"log-package-levels", K_STR, "", "specify a particular log level for each package"},
    {"enable-pprof", K_BOOL, "false", "accepted for compatibility; no effect"},
    {"enable-v2", K_BOOL, "true", "accepted for compatibility; cairn always serves the v2 API"},
    {"version", K_BOOL, "false", "print the version and exit"},
    {"help", K_BOOL, "false", "show this help and exit"},
    /* Accepted and ignored, as etcd 2.x did. */
    {"addr", K_STR, "", "DEPRECATED: Use -advertise-client-urls instead."},
    {"bind-addr", K_STR, "", "DEPRECATED: Use -listen-client-urls instead."},
    {"peer-addr", K_STR, "", "DEPRECATED: Use -initial-advertise-peer-urls instead."},
    {"peer-bind-addr", K_STR, "", "DEPRECATED: Use -listen-peer-urls instead."},
    {"cluster-active-size", K_IGNORED, "", NULL},
    {"cluster-remove-delay", K_IGNORED, "", NULL},
    {"cluster-sync-interval", K_IGNORED, "", NULL},
    {"config", K_IGNORED, "", NULL},
    {"force", K_IGNORED, "", NULL},
    {"max-result-buffer", K_IGNORED, "", NULL},
    {"max-retry-attempts", K_IGNORED, "", NULL},
    {"peer-heartbeat-interval", K_IGNORED, "", NULL},
    {"peer-election-timeout", K_IGNORED, "", NULL},
    {"retry-interval", K_IGNORED, "", NULL},
    {"snapshot", K_IGNORED, "", NULL},
    {"v", K_IGNORED, "", NULL},
    {"vv", K_IGNORED, "", NULL},
    {"peers", K_REMOVED, "", NULL},
    {"peers-file", K_REMOVED, "", NULL},
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

struct state {
    char *val[NFLAGS];
    bool set[NFLAGS];
    bool from_cmdline[NFLAGS];
};

static int find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NFLAGS; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) return (int)i;
    return -1;
}

/* Flag values follow Go's flag package, which uses strconv. */
static bool parse_bool(const char *z, bool *out)
{
    return cn_parse_bool(cn_str_c(z), out);
}

static bool parse_uint(const char *z, uint64_t *out)
{
    return cn_parse_u64(cn_str_c(z), out);
}

/* Checks a value for its flag's type; on error writes the reason. */
static bool check_value(const struct flag *f, const char *v, char *why, size_t why_len)
{
    uint64_t u;
    bool b;
    switch (f->kind) {
    case K_UINT:
        if (!parse_uint(v, &u)) {
            snprintf(why, why_len, "parse error");
            return false;
        }
        return true;
    case K_BOOL:
        if (!parse_bool(v, &b)) {
            snprintf(why, why_len, "parse error");
            return false;
        }
        return true;
    default:
        return true;
    }
}

static void print_help(void)
{
    printf("usage: cairn [flags]\n"
           "       start a cairn server (an etcd2 drop-in)\n\n"
           "       cairn --version\n"
           "       show the version of cairn\n\n"
           "       cairn -h | --help\n"
           "       show the help information about cairn\n\n"
           "Every flag can also be set with an environment variable: --my-flag is ETCD_MY_FLAG.\n\n"
           "flags:\n");
    for (size_t i = 0; i < NFLAGS; i++) {
        if (flags[i].help == NULL) continue;
        printf("  --%s", flags[i].name);
        if (flags[i].kind != K_BOOL) printf(" '%s'", flags[i].def);
        printf("\n\t%s\n", flags[i].help);
    }
}

/* The 4-line shape of etcd's --version, with cairn's own values. */
static void print_version(void)
{
    printf("cairn Version: %s (etcd API 2.3.8)\n", CN_VERSION);
    printf("Git SHA: %s\n", CN_GIT_SHA);
    printf("C Version: %s\n", __VERSION__);
    printf("C OS/Arch: linux/%s\n",
#if defined(__x86_64__)
           "amd64"
#elif defined(__aarch64__)
           "arm64"
#else
           "unknown"
#endif
    );
}

static void env_name(const char *flag, char *out, size_t out_len)
{
    size_t n = (size_t)snprintf(out, out_len, "ETCD_");
    for (const char *p = flag; *p && n + 1 < out_len; p++)
        out[n++] = *p == '-' ? '_' : (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
    out[n] = '\0';
}

static int parse_args(struct state *st, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            fprintf(stderr, "cairn: '%s' is not a valid flag\n", a);
            return CN_CONFIG_ERROR;
        }
        const char *name = a + 1;
        if (*name == '-') name++;
        if (*name == '\0' || *name == '-' || *name == '=') {
            fprintf(stderr, "cairn: bad flag syntax: %s\n", a);
            return CN_CONFIG_ERROR;
        }
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 1 && name[0] == 'h' && !eq) {
            print_help();
            return CN_CONFIG_EXIT_OK;
        }
        int fi = find_flag(name, nlen);
        if (fi < 0) {
            fprintf(stderr, "cairn: flag provided but not defined: -%.*s (see cairn --help)\n",
                    (int)nlen, name);
            return CN_CONFIG_USAGE;
        }
        const struct flag *f = &flags[fi];
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (f->kind == K_BOOL) {
            v = "true";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "cairn: flag needs an argument: -%s\n", f->name);
            return CN_CONFIG_ERROR;
        }
        if (f->kind == K_REMOVED) {
            fprintf(stderr, "cairn: flag \"-%s\" is no longer supported.\n", f->name);
            return CN_CONFIG_ERROR;
        }
        if (f->kind == K_IGNORED) {
            CN_LOGW("config", "ignoring deprecated flag flag=%s", f->name);
            continue;
        }
        char why[64];
        if (!check_value(f, v, why, sizeof(why))) {
            fprintf(stderr, "cairn: invalid value \"%s\" for flag -%s: %s\n", v, f->name, why);
            return CN_CONFIG_ERROR;
        }
        cn_free(st->val[fi]);
        st->val[fi] = cn_xstrdup(v);
        st->set[fi] = st->from_cmdline[fi] = true;
        if (strcmp(f->name, "help") == 0 && strcmp(v, "true") == 0) {
            print_help();
            return CN_CONFIG_EXIT_OK;
        }
    }
    return CN_CONFIG_OK;
}

static int apply_env(struct state *st, char **envp)
{
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "ETCD_", 5) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (eq == NULL) continue;
        const char *v = eq + 1;
        char flagname[128];
        size_t n = 0;
        for (const char *p = *e + 5; p < eq && n + 1 < sizeof(flagname); p++)
            flagname[n++] = *p == '_' ? '-' : (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        flagname[n] = '\0';
        int fi = find_flag(flagname, n);
        if (fi < 0 || flags[fi].kind == K_REMOVED) {
            CN_LOGW("config", "unrecognized environment variable %s", *e);
            continue;
        }
        if (*v == '\0' || flags[fi].kind == K_IGNORED) continue;
        if (st->from_cmdline[fi]) {
            CN_LOGW("config",
                    "recognized environment variable %.*s, but unused: shadowed by corresponding "
                    "flag",
                    (int)(eq - *e), *e);
            continue;
        }
        char why[64];
        if (!check_value(&flags[fi], v, why, sizeof(why))) {
            char en[140];
            env_name(flags[fi].name, en, sizeof(en));
            fprintf(stderr, "cairn: invalid value \"%s\" for %s: %s\n", v, en, why);
            return CN_CONFIG_ERROR;
        }
        cn_free(st->val[fi]);
        st->val[fi] = cn_xstrdup(v);
        st->set[fi] = true;
    }
    return CN_CONFIG_OK;
}

static const char *get(struct state *st, const char *name)
{
    int fi = find_flag(name, strlen(name));
    CN_ASSERT(fi >= 0);
    return st->val[fi] ? st->val[fi] : flags[fi].def;
}

static bool is_set(struct state *st, const char *name)
{
    int fi = find_flag(name, strlen(name));
    CN_ASSERT(fi >= 0);
    return st->set[fi];
}

static void set_val(struct state *st, const char *name, const char *v)
{
    int fi = find_flag(name, strlen(name));
    CN_ASSERT(fi >= 0);
    cn_free(st->val[fi]);
    st->val[fi] = cn_xstrdup(v);
    st->set[fi] = true;
}

/* etcd 2.x's legacy host:port flags (-addr, -bind-addr, -peer-addr, -peer-bind-addr), as
 * flags.URLsFromFlags maps them onto the URL flags: one or the other, never both. -addr alone
 * also listens on every address with its port, as etcd 2 did. */
static int legacy_addrs(struct state *st)
{
    static const struct {
        const char *addr, *bind, *adv_urls, *listen_urls;
    } m[] = {{"addr", "bind-addr", "advertise-client-urls", "listen-client-urls"},
             {"peer-addr", "peer-bind-addr", "initial-advertise-peer-urls", "listen-peer-urls"}};
    for (size_t i = 0; i < 2; i++) {
        if (is_set(st, m[i].addr) && !is_set(st, m[i].bind) && !is_set(st, m[i].listen_urls)) {
            const char *a = get(st, m[i].addr), *colon = strrchr(a, ':');
            struct cn_buf b = CN_BUF_INIT;
            cn_buf_appendf(&b, "0.0.0.0%s", colon ? colon : "");
            set_val(st, m[i].bind, b.p);
            cn_buf_free(&b);
        }
        const char *pairs[2][2] = {{m[i].adv_urls, m[i].addr}, {m[i].listen_urls, m[i].bind}};
        for (size_t k = 0; k < 2; k++) {
            if (!is_set(st, pairs[k][1])) continue;
            if (is_set(st, pairs[k][0])) {
                fprintf(stderr, "cairn: Set only one of flags -%s and -%s\n", pairs[k][0],
                        pairs[k][1]);
                return CN_CONFIG_ERROR;
            }
            struct cn_buf b = CN_BUF_INIT;
            cn_buf_appendf(&b, "http://%s", get(st, pairs[k][1]));
            set_val(st, pairs[k][0], b.p);
            cn_buf_free(&b);
        }
    }
    return CN_CONFIG_OK;
}

static uint64_t get_uint(struct state *st, const char *name)
{
    uint64_t v = 0;
    parse_uint(get(st, name), &v);
    return v;
}

static bool get_bool(struct state *st, const char *name)
{
    bool v = false;
    parse_bool(get(st, name), &v);
    return v;
}

static char *dup_or_null(const char *z)
{
    return (z && *z) ? cn_xstrdup(z) : NULL;
}

struct url_ctx {
    struct cn_url_list *list;
    const char *flag;
    char err[768];
};

static int add_url(const char *item, void *p)
{
    struct url_ctx *c = p;
    if (c->list->n == CN_MAX_URLS) {
        snprintf(c->err, sizeof(c->err), "too many URLs for -%s (max %d)", c->flag, CN_MAX_URLS);
        return -1;
    }
    char why[300];
    struct cn_url *u = &c->list->u[c->list->n];
    if (cn_url_parse(item, u, why, sizeof(why)) != 0) {
        snprintf(c->err, sizeof(c->err), "invalid value \"%s\" for flag -%s: %s", item, c->flag,
                 why);
        return -1;
    }
    if (u->has_path) {
        snprintf(c->err, sizeof(c->err),
                 "invalid value \"%s\" for flag -%s: URL must not contain a path: %s", item,
                 c->flag, item);
        return -1;
    }
    c->list->raw[c->list->n++] = cn_xstrdup(item);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* etcd's types.NewURLs sorts every URL list it parses; members and clients see them sorted. */
static void sort_urls(struct cn_url_list *l)
{
    qsort(l->raw, l->n, sizeof(char *), cmp_str);
    for (size_t j = 0; j < l->n; j++) {
        char why[300];
        cn_url_parse(l->raw[j], &l->u[j], why, sizeof(why));
    }
}

static int parse_urls(struct state *st, const char *flag, struct cn_url_list *out)
{
    struct url_ctx c = {out, flag, ""};
    if (cn_split_list(get(st, flag), add_url, &c) != 0) {
        fprintf(stderr, "cairn: %s\n", c.err);
        return CN_CONFIG_ERROR;
    }
    sort_urls(out);
    return CN_CONFIG_OK;
}

static void free_urls(struct cn_url_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        cn_free(l->raw[i]);
    l->n = 0;
}

/* Parses "name=url,name=url"; a name may repeat. */
static int parse_initial_cluster(const char *z, const char *token, struct cn_initial_member *ms,
                                 size_t *nms)
{
    const char *p = z;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *item = cn_xstrndup(p, len);
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item) {
            fprintf(stderr, "cairn: invalid value \"%s\" for flag -initial-cluster: %s\n", z,
                    "expected name=peerURL");
            cn_free(item);
            return CN_CONFIG_ERROR;
        }
        *eq = '\0';
        struct cn_initial_member *m = NULL;
        for (size_t i = 0; i < *nms; i++)
            if (strcmp(ms[i].name, item) == 0) m = &ms[i];
        if (m == NULL) {
            if (*nms == CN_MAX_MEMBERS) {
                fprintf(stderr, "cairn: too many members in -initial-cluster (max %d)\n",
                        CN_MAX_MEMBERS);
                cn_free(item);
                return CN_CONFIG_ERROR;
            }
            m = &ms[(*nms)++];
            m->name = cn_xstrdup(item);
        }
        struct url_ctx c = {&m->peer_urls, "initial-cluster", ""};
        int rc = add_url(eq + 1, &c);
        cn_free(item);
        if (rc != 0) {
            fprintf(stderr, "cairn: %s\n", c.err);
            return CN_CONFIG_ERROR;
        }
        if (!e) break;
        p = e + 1;
    }
    for (size_t i = 0; i < *nms; i++) {
        struct cn_initial_member *m = &ms[i];
        sort_urls(&m->peer_urls);
        m->id = cn_cluster_member_id(m->peer_urls.raw, m->peer_urls.n, token, 0);
    }
    /* etcd: "initial cluster <map> has duplicate url" */
    for (size_t i = 0; i < *nms; i++)
        for (size_t j = 0; j < ms[i].peer_urls.n; j++)
            for (size_t k = i; k < *nms; k++)
                for (size_t l = (k == i ? j + 1 : 0); l < ms[k].peer_urls.n; l++)
                    if (strcmp(ms[i].peer_urls.raw[j], ms[k].peer_urls.raw[l]) == 0) {
                        fprintf(stderr, "cairn: initial cluster %s has duplicate url\n", z);
                        return CN_CONFIG_ERROR;
                    }
    return CN_CONFIG_OK;
}

static bool has_https(const struct cn_url_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->u[i].scheme, "https") == 0) return true;
    return false;
}

int cn_config_load(struct cn_config *cfg, int argc, char **argv, char **envp)
{
    memset(cfg, 0, sizeof(*cfg));
    struct state st;
    memset(&st, 0, sizeof(st));
    int rc = parse_args(&st, argc, argv);
    if (rc == CN_CONFIG_OK) rc = apply_env(&st, envp);
    if (rc != CN_CONFIG_OK) goto out;
    if (get_bool(&st, "version")) {
        print_version();
        rc = CN_CONFIG_EXIT_OK;
        goto out;
    }

    cfg->name = cn_xstrdup(get(&st, "name"));
    const char *dd = get(&st, "data-dir");
    if (*dd == '\0') {
        struct cn_buf b = CN_BUF_INIT;
        cn_buf_appendf(&b, "%s.etcd", cfg->name);
        cfg->data_dir = cn_buf_steal(&b, NULL);
        CN_LOGW("config", "no data-dir provided, using default data-dir ./%s", cfg->data_dir);
    } else {
        cfg->data_dir = cn_xstrdup(dd);
    }
    cfg->wal_dir = dup_or_null(get(&st, "wal-dir"));
    cfg->snapshot_count = get_uint(&st, "snapshot-count");
    if (cfg->snapshot_count == 0) cfg->snapshot_count = 10000;
    cfg->max_snapshots = (unsigned)get_uint(&st, "max-snapshots");
    cfg->max_wals = (unsigned)get_uint(&st, "max-wals");
    cfg->max_request_bytes = get_uint(&st, "max-request-bytes");
    /* etcd 3.4's limit for v3 requests is 1.5 MiB unless the flag says otherwise; the v2 API
     * keeps cairn's 10 MiB default (etcd 2.3 had no limit). */
    cfg->max_request_bytes_v3 = is_set(&st, "max-request-bytes") ? cfg->max_request_bytes : 1572864;
    cfg->max_txn_ops = get_uint(&st, "max-txn-ops");
    cfg->enable_grpc_gateway = get_bool(&st, "enable-grpc-gateway");
    {
        const char *mode = get(&st, "auto-compaction-mode");
        if (strcmp(mode, "periodic") == 0) {
            cfg->auto_compaction_revision = false;
        } else if (strcmp(mode, "revision") == 0) {
            cfg->auto_compaction_revision = true;
        } else {
            fprintf(stderr, "cairn: unknown auto-compaction-mode %s\n", mode);
            rc = CN_CONFIG_ERROR;
            goto out;
        }
        if (cn_config_parse_retention(get(&st, "auto-compaction-retention"),
                                      cfg->auto_compaction_revision,
                                      &cfg->auto_compaction_retention) != 0) {
            fprintf(stderr, "cairn: invalid auto-compaction-retention %s\n",
                    get(&st, "auto-compaction-retention"));
            rc = CN_CONFIG_ERROR;
            goto out;
        }
    }
    uint64_t hb = get_uint(&st, "heartbeat-interval"), el = get_uint(&st, "election-timeout");
    if (hb == 0) {
        fprintf(stderr, "cairn: -heartbeat-interval must be positive\n");
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    if (el < 5 * hb) {
        fprintf(stderr,
                "cairn: -election-timeout[%llums] should be at least as 5 times as "
                "-heartbeat-interval[%llums]\n",
                (unsigned long long)el, (unsigned long long)hb);
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    if (el > 50000) {
        fprintf(stderr,
                "cairn: -election-timeout[%llums] is too long, and should be set less than "
                "50000ms\n",
                (unsigned long long)el);
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    cfg->heartbeat_ms = (unsigned)hb;
    cfg->election_ms = (unsigned)el;

    const char *state = get(&st, "initial-cluster-state");
    if (strcmp(state, "new") != 0 && strcmp(state, "existing") != 0) {
        fprintf(stderr,
                "cairn: invalid value \"%s\" for flag -initial-cluster-state: valid values are "
                "\"new\", \"existing\"\n",
                state);
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    cfg->initial_cluster_new = strcmp(state, "new") == 0;
    cfg->initial_cluster_token = cn_xstrdup(get(&st, "initial-cluster-token"));
    cfg->discovery = dup_or_null(get(&st, "discovery"));
    cfg->discovery_fallback = cn_xstrdup(get(&st, "discovery-fallback"));
    if (strcmp(cfg->discovery_fallback, "exit") != 0 &&
        strcmp(cfg->discovery_fallback, "proxy") != 0) {
        fprintf(stderr,
                "cairn: invalid value \"%s\" for flag -discovery-fallback: valid values are "
                "\"exit\", \"proxy\"\n",
                cfg->discovery_fallback);
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    cfg->discovery_proxy = dup_or_null(get(&st, "discovery-proxy"));
    cfg->discovery_srv = dup_or_null(get(&st, "discovery-srv"));
    cfg->discovery_service = get_bool(&st, "discovery-service");
    cfg->discovery_service_host = dup_or_null(get(&st, "discovery-service-host"));
    cfg->discovery_token_ttl = get_uint(&st, "discovery-token-ttl");
    if (cfg->discovery_token_ttl == 0) cfg->discovery_token_ttl = 604800;
    cfg->strict_reconfig_check = get_bool(&st, "strict-reconfig-check");
    cfg->force_new_cluster = get_bool(&st, "force-new-cluster");
    cfg->proxy = cn_xstrdup(get(&st, "proxy"));
    if (strcmp(cfg->proxy, "off") != 0 && strcmp(cfg->proxy, "on") != 0 &&
        strcmp(cfg->proxy, "readonly") != 0) {
        fprintf(stderr,
                "cairn: invalid value \"%s\" for flag -proxy: valid values are \"off\", "
                "\"readonly\", \"on\"\n",
                cfg->proxy);
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    cfg->proxy_failure_wait_ms = get_uint(&st, "proxy-failure-wait");
    cfg->proxy_refresh_interval_ms = get_uint(&st, "proxy-refresh-interval");
    cfg->proxy_dial_timeout_ms = get_uint(&st, "proxy-dial-timeout");
    cfg->proxy_write_timeout_ms = get_uint(&st, "proxy-write-timeout");
    cfg->proxy_read_timeout_ms = get_uint(&st, "proxy-read-timeout");
    cfg->cors = dup_or_null(get(&st, "cors"));
    cfg->debug = get_bool(&st, "debug");

    if ((rc = legacy_addrs(&st)) != 0) goto out;
    if ((rc = parse_urls(&st, "listen-client-urls", &cfg->listen_client)) != 0) goto out;
    if ((rc = parse_urls(&st, "advertise-client-urls", &cfg->advertise_client)) != 0) goto out;
    if ((rc = parse_urls(&st, "listen-peer-urls", &cfg->listen_peer)) != 0) goto out;
    if ((rc = parse_urls(&st, "initial-advertise-peer-urls", &cfg->initial_advertise_peer)) != 0)
        goto out;
    if (is_set(&st, "listen-client-urls") && !is_set(&st, "advertise-client-urls") &&
        strcmp(cfg->proxy, "off") == 0 &&
        !(cfg->discovery && strcmp(cfg->discovery_fallback, "proxy") == 0)) {
        fprintf(stderr, "cairn: -advertise-client-urls is required when -listen-client-urls is set "
                        "explicitly\n");
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    if (has_https(&cfg->listen_client) || has_https(&cfg->listen_peer)) {
        fprintf(stderr, "cairn: https:// listeners are not supported yet (TLS is planned)\n");
        rc = CN_CONFIG_ERROR;
        goto out;
    }

    int nboot =
        is_set(&st, "initial-cluster") + (cfg->discovery != NULL) + (cfg->discovery_srv != NULL);
    if (nboot > 1) {
        fprintf(stderr, "cairn: multiple discovery or bootstrap flags are set. Choose one of "
                        "\"initial-cluster\", \"discovery\" or \"discovery-srv\"\n");
        rc = CN_CONFIG_ERROR;
        goto out;
    }
    /* etcd rewrites the default initial cluster with the actual name. */
    const char *ic = get(&st, "initial-cluster");
    struct cn_buf icb = CN_BUF_INIT;
    if (!is_set(&st, "initial-cluster") && strcmp(cfg->name, "default") != 0) {
        for (size_t i = 0; i < cfg->initial_advertise_peer.n; i++)
            cn_buf_appendf(&icb, "%s%s=%s", i ? "," : "", cfg->name,
                           cfg->initial_advertise_peer.raw[i]);
        ic = icb.p ? icb.p : "";
    }
    rc = parse_initial_cluster(ic, cfg->initial_cluster_token, cfg->initial, &cfg->ninitial);
    cn_buf_free(&icb);
    if (rc != CN_CONFIG_OK) goto out;
    rc = CN_CONFIG_OK;
out:
    for (size_t i = 0; i < NFLAGS; i++)
        cn_free(st.val[i]);
    return rc;
}

int cn_config_parse_initial_cluster(const char *spec, const char *token,
                                    struct cn_initial_member *out, size_t *n)
{
    memset(out, 0, sizeof(*out) * CN_MAX_MEMBERS);
    *n = 0;
    int rc = parse_initial_cluster(spec, token, out, n);
    if (rc != CN_CONFIG_OK) cn_config_initial_free(out, n);
    return rc;
}

void cn_config_initial_free(struct cn_initial_member *ms, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        cn_free(ms[i].name);
        ms[i].name = NULL;
        free_urls(&ms[i].peer_urls);
    }
    *n = 0;
}

void cn_config_free(struct cn_config *cfg)
{
    char **strs[] = {&cfg->name,
                     &cfg->data_dir,
                     &cfg->wal_dir,
                     &cfg->initial_cluster_token,
                     &cfg->discovery,
                     &cfg->discovery_fallback,
                     &cfg->discovery_proxy,
                     &cfg->discovery_srv,
                     &cfg->discovery_service_host,
                     &cfg->proxy,
                     &cfg->cors};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        cn_free(*strs[i]);
        *strs[i] = NULL;
    }
    free_urls(&cfg->listen_client);
    free_urls(&cfg->advertise_client);
    free_urls(&cfg->listen_peer);
    free_urls(&cfg->initial_advertise_peer);
    for (size_t i = 0; i < cfg->ninitial; i++) {
        cn_free(cfg->initial[i].name);
        free_urls(&cfg->initial[i].peer_urls);
    }
    cfg->ninitial = 0;
}

/* A Go duration: a sequence of decimal numbers, each with an optional fraction and a unit (h, m,
 * s, ms, us, ns), e.g. "1h30m" or "2.5s". Into ms. */
static int parse_go_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1},     {"us", 1e-3}, {"µs", 1e-3}, {"ns", 1e-6},
                 {"h", 3600e3}, {"m", 60e3},  {"s", 1e3}};
    double total = 0;
    if (*s == '\0') return -1;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno != 0 || v < 0 || *s == '+' || *s == '-') return -1;
        s = end;
        size_t i;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, n) == 0) break;
        }
        if (i == sizeof(units) / sizeof(units[0])) return -1;
        total += v * units[i].ms;
        s += strlen(units[i].unit);
    }
    if (total > 1e15) return -1;
    *out_ms = (uint64_t)total;
    return 0;
}

int cn_config_parse_retention(const char *s, bool revision_mode, uint64_t *out)
{
    uint64_t n;
    if (revision_mode) {
        if (!cn_parse_u64(cn_str_c(s), &n)) return -1;
        *out = n;
        return 0;
    }
    /* periodic: a bare number is hours (etcd 3.4: "1" = 1h), otherwise a duration */
    char *end;
    errno = 0;
    double h = strtod(s, &end);
    if (end != s && *end == '\0' && errno == 0 && h >= 0 && h < 1e9 && *s != '-' && *s != '+') {
        *out = (uint64_t)(h * 3600e3);
        return 0;
    }
    return parse_go_duration(s, out);
}
