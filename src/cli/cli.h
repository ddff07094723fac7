/* cli: cairnctl, the etcdctl v2 command-line client (spec etcd-cluster.md section 10). This
 * header is the module's internal contract: the option parser (Go's flag package with urfave/cli's
 * argument reordering, as etcdctl 3.4 uses them), the endpoint set with sync and failover (etcd's
 * client/v2 httpClusterClient), the output formats and the commands. Where etcdctl's behaviour is
 * odd we copy it on purpose and say so, because scripts compare its bytes. */
#ifndef CN_CLI_CLI_H
#define CN_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"

struct json_t;

/* etcdctl's exit codes (ctlv2/command/error.go). */
enum {
    CN_CLI_EXIT_OK = 0,
    CN_CLI_EXIT_BAD_ARGS = 1,
    CN_CLI_EXIT_BAD_CONN = 2,
    CN_CLI_EXIT_BAD_AUTH = 3,
    CN_CLI_EXIT_SERVER = 4,
    CN_CLI_EXIT_UNHEALTHY = 5,
};

/* ---- flags (flags.c) ------------------------------------------------------------------------ */

enum cn_cli_flag_type { CN_CLI_BOOL, CN_CLI_INT, CN_CLI_STRING, CN_CLI_DURATION };

struct cn_cli_flag {
    const char *names; /* urfave spelling: "recursive, r" */
    enum cn_cli_flag_type type;
    const char *defval; /* initial value as text ("0", "2s", "simple"); NULL for none */
    const char *disp;   /* help: the left column, e.g. "--ttl value" */
    const char *usage;  /* help: the right column, defaults included */
};

struct cn_cli_flagval {
    bool set;
    bool b;
    int64_t i; /* INT value, or DURATION in nanoseconds */
    const char *s;
};

/* Result of parsing one flag set. */
enum { CN_CLI_PARSE_OK = 0, CN_CLI_PARSE_HELP = 1, CN_CLI_PARSE_ERR = -1 };

/* Parses argv[0..argc) against flags as Go's flag.FlagSet.Parse does: stops at the first
 * non-flag, consumes a "--" terminator. vals (nflags entries) get the defaults first. On return
 * *rest is the index of the first argument left. On CN_CLI_PARSE_ERR, err holds Go's message. */
int cn_cli_flags_parse(const struct cn_cli_flag *flags, size_t nflags, struct cn_cli_flagval *vals,
                       int argc, char **argv, int *rest, struct cn_buf *err);

/* urfave/cli v1.22 reorderArgs: moves the command's own flags (and a value that may follow each)
 * in front of the positional arguments; a "--" delimiter goes first among the positional ones and
 * what follows it stays in order. out must hold argc entries; the strings are borrowed. */
void cn_cli_reorder_args(const struct cn_cli_flag *flags, size_t nflags, int argc, char **argv,
                         char **out);

/* Index of the flag called name (any of its names) or -1. */
int cn_cli_flag_find(const struct cn_cli_flag *flags, size_t nflags, const char *name);

/* Go's time.ParseDuration; returns 0 or -1. */
int cn_cli_parse_duration(const char *z, int64_t *ns);
/* Go's strconv.ParseInt(z, 0, 64); returns 0, -1 (syntax) or -2 (range). */
int cn_cli_parse_int(const char *z, int64_t *v);
/* Go's strconv.ParseBool; returns 0 or -1. */
int cn_cli_parse_bool(const char *z, bool *v);

/* Appends an OPTIONS block (urfave's layout) for flags. */
void cn_cli_flags_help(struct cn_buf *out, const struct cn_cli_flag *flags, size_t nflags);

/* ---- the client (cluster.c, transport.c) ---------------------------------------------------- */

/* One failure as etcd's Go client words it. conn: what etcdctl's isConnectionError says. */
struct cn_cli_err {
    char *msg;
    bool conn;
};

/* The error of one API call: a single error or a ClusterError (one entry per endpoint tried). */
struct cn_cli_failure {
    bool cluster;
    struct cn_cli_err one;
    struct cn_cli_err *errs;
    size_t nerrs;
};

struct cn_cli_endpoint {
    char *url;  /* as etcdctl prints it: "http://127.0.0.1:2379" */
    char *base; /* "http://host:port" without path */
    char *path; /* the endpoint's own path ("" or "/prefix") */
    char host[256];
    int port;
};

/* One HTTP request, built per endpoint. */
struct cn_cli_action {
    const char *method;
    struct cn_buf path;  /* escaped, starting at "/" (appended to the endpoint path) */
    struct cn_buf query; /* already encoded, no "?" */
    const char *ctype;   /* Content-Type or NULL */
    bool has_body;       /* Go's req.Body != nil (a -d in --debug output, even if empty) */
    struct cn_buf body;
    bool one_shot; /* etcd's oneShotCtxValue: no failover (create, delete) */
    bool wait;     /* a watch: no header timeout */
};

struct cn_cli_resp {
    int status;
    struct cn_buf body;
    bool has_index;
    uint64_t index; /* X-Etcd-Index */
};

struct cn_cli {
    /* global options */
    bool debug, no_sync;
    const char *output;
    int64_t timeout_ns, total_timeout_ns;
    char *auth; /* "Basic <base64>" from --username, or NULL */
    /* endpoints */
    struct cn_cli_endpoint *eps;
    size_t neps, pinned;
    /* I/O */
    uv_loop_t loop;
    struct cn_http_client *http;
    uv_signal_t sigint;
    bool sigint_on;
    int64_t deadline_ns; /* monotonic; 0: none (watch) */
};

void cn_cli_init(struct cn_cli *cli);
/* Parses a comma list into cli->eps (scheme added when missing). Returns 0 or -1 with err set. */
int cn_cli_set_endpoints(struct cn_cli *cli, const char *list, struct cn_buf *err);
/* mustNewClient: prints the debug lines, syncs the endpoint list from /v2/members unless
 * --no-sync, and exits as etcdctl does when that fails on a connection error. */
void cn_cli_connect(struct cn_cli *cli, bool sync);
/* Starts the total-timeout clock for one API call (etcdctl's contextWithTotalTimeout). */
void cn_cli_deadline_start(struct cn_cli *cli);
void cn_cli_deadline_clear(struct cn_cli *cli);

void cn_cli_action_init(struct cn_cli_action *a, const char *method);
void cn_cli_action_free(struct cn_cli_action *a);
void cn_cli_resp_free(struct cn_cli_resp *r);
void cn_cli_failure_free(struct cn_cli_failure *f);
/* The text err.Error() gives. */
void cn_cli_failure_text(const struct cn_cli_failure *f, struct cn_buf *out);
bool cn_cli_failure_is_conn(const struct cn_cli_failure *f);

/* httpClusterClient.Do: tries the endpoints from the pinned one, follows redirects, turns 5xx
 * into "has no leader" errors. 0 with *resp filled (caller frees), or -1 with *fail filled. */
int cn_cli_do(struct cn_cli *cli, struct cn_cli_action *a, struct cn_cli_resp *resp,
              struct cn_cli_failure *fail);

/* One plain GET with a timeout (cluster-health's http.Client). 0 or -1 with a Go-style message
 * in err ("Get \"url\": dial tcp ..."). */
int cn_cli_plain_get(struct cn_cli *cli, const char *url, int64_t timeout_ns,
                     struct cn_cli_resp *resp, struct cn_buf *err);

/* Low level (transport.c): one exchange on the loop; auth adds cli->auth as Authorization.
 * Returns 0 or the http client's rc. */
int cn_cli_exchange(struct cn_cli *cli, const char *method, const char *url, const char *ctype,
                    const void *body, size_t len, uint64_t timeout_ms, bool auth,
                    struct cn_cli_resp *resp, struct cn_buf *location);
/* Sets cli->auth from "user[:password]" (prompting for a missing password, as etcdctl does). */
void cn_cli_set_user(struct cn_cli *cli, const char *user);
/* Go's wording of a transport rc for host:port (e.g. "dial tcp h:p: connect: connection
 * refused"); *conn says whether etcdctl counts it as a connection error. */
void cn_cli_transport_err(struct cn_buf *out, int rc, const char *host, int port, bool *conn);

/* Runs the loop once more (signals, child exits) without blocking. */
void cn_cli_poll(struct cn_cli *cli);
/* Installs the SIGINT handler of watch and --forever loops: exit 0. */
void cn_cli_exit_on_sigint(struct cn_cli *cli);
/* Sleeps on the loop (signals still served). */
void cn_cli_sleep(struct cn_cli *cli, uint64_t ms);

/* Flushes stdout and exits. */
_Noreturn void cn_cli_exit(int code);

/* handleError: "Error:  <err>" (+ the ClusterError detail) on stderr, then exit. */
_Noreturn void cn_cli_handle_error(struct cn_cli *cli, int code, const struct cn_cli_failure *f);
/* handleError for a plain message. */
_Noreturn void cn_cli_fail_msg(int code, const char *msg);

/* ---- URLs and encodings (url.c) ------------------------------------------------------------- */

/* Go's url.PathEscape-like escaping of a URL path (encodePath mode). */
void cn_cli_escape_path(struct cn_buf *out, const char *p, size_t len);
/* pathutil.CanonicalURLPath: path.Clean keeping a trailing slash. */
void cn_cli_clean_path(struct cn_buf *out, const char *p, size_t len);
/* Appends "name=value" to a url.Values encoding (callers add names in sorted order). */
void cn_cli_query_add(struct cn_buf *q, const char *name, const char *value, size_t value_len);
/* Go's strconv.Quote for ASCII-ish text (the --debug -d argument). */
void cn_cli_go_quote(struct cn_buf *out, const char *p, size_t len);

/* ---- the keys API (keys_api.c) -------------------------------------------------------------- */

/* Builds /v2/keys/<key> as client/v2's v2KeysURL does. */
void cn_cli_keys_path(struct cn_cli_action *a, const char *key);

/* A decoded keys response: borrowed JSON plus the X-Etcd-Index. */
struct cn_cli_keys_resp {
    struct json_t *root;
    struct json_t *node;      /* NULL when absent or null */
    struct json_t *prev_node; /* NULL when absent or null */
    const char *action;
    uint64_t index;
};

/* Runs a keys action: 0 with *out (free with cn_cli_keys_resp_free), or -1 with *fail filled
 * (an etcd error is a single failure worded "100: Key not found (/x) [5]"). */
int cn_cli_keys_do(struct cn_cli *cli, struct cn_cli_action *a, struct cn_cli_keys_resp *out,
                   struct cn_cli_failure *fail);
void cn_cli_keys_resp_free(struct cn_cli_keys_resp *r);

/* Node accessors (missing fields read as Go's zero values). */
const char *cn_cli_node_str(const struct json_t *node, const char *field, size_t *len);
uint64_t cn_cli_node_u64(const struct json_t *node, const char *field);
bool cn_cli_node_dir(const struct json_t *node);

/* ---- output (output.c) ---------------------------------------------------------------------- */

/* printResponseKey: simple, extended or json; an unknown format is reported on stderr. */
void cn_cli_print_resp(const struct cn_cli_keys_resp *r, const char *format);
/* The response re-encoded as etcd's client marshals it (json output). */
void cn_cli_resp_json(struct cn_buf *out, const struct cn_cli_keys_resp *r);

/* ---- commands ------------------------------------------------------------------------------- */

struct cn_cli_cmd;

/* What a command's run function gets. */
struct cn_cli_args {
    const struct cn_cli_cmd *cmd;
    const struct cn_cli_flagval *vals;
    int argc;
    char **argv; /* positional arguments after flag parsing */
};

struct cn_cli_cmd {
    const char *name;
    const char *aliases; /* NULL or "h" */
    const char *usage;
    const char *args_usage;
    const char *description;
    const struct cn_cli_flag *flags;
    size_t nflags;
    int (*run)(struct cn_cli *cli, const struct cn_cli_args *a);
    const struct cn_cli_cmd *subs;
    size_t nsubs;
};

bool cn_cli_bool(const struct cn_cli_args *a, const char *name);
int64_t cn_cli_int(const struct cn_cli_args *a, const char *name);
const char *cn_cli_str(const struct cn_cli_args *a, const char *name);

extern const struct cn_cli_cmd cn_cli_cmd_get, cn_cli_cmd_set, cn_cli_cmd_mk, cn_cli_cmd_mkdir,
    cn_cli_cmd_setdir, cn_cli_cmd_update, cn_cli_cmd_updatedir, cn_cli_cmd_rm, cn_cli_cmd_rmdir,
    cn_cli_cmd_ls, cn_cli_cmd_watch, cn_cli_cmd_exec_watch, cn_cli_cmd_member,
    cn_cli_cmd_cluster_health;

/* Prints a command's help (urfave's CommandHelpTemplate) to stdout. prefix: "etcdctl" or
 * "etcdctl member". */
void cn_cli_cmd_help(const struct cn_cli_cmd *cmd, const char *prefix, struct cn_buf *out);

/* Runs a command with its own argv (name first); used for top-level and member subcommands. */
int cn_cli_run_cmd(struct cn_cli *cli, const struct cn_cli_cmd *cmd, const char *prefix, int argc,
                   char **argv);

#endif
