/* cmd_watch: watch and exec-watch. Both long-poll GET ?wait=true&waitIndex=N (no timeout), move
 * waitIndex past each event's modifiedIndex, skip directory events and exit 0 on Ctrl-C, as
 * etcdctl does. exec-watch starts the command for each event without waiting for it, with the
 * event in ETCD_WATCH_* variables. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/alloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

extern char **environ;

struct watcher {
    const char *key;
    bool recursive;
    uint64_t wait_index;
};

/* httpWatcher.Next: returns the next event; exits with etcdctl's error on failure. */
static void watch_next(struct cn_cli *cli, struct watcher *w, struct cn_cli_keys_resp *r)
{
    for (;;) {
        struct cn_cli_action act;
        cn_cli_action_init(&act, "GET");
        cn_cli_keys_path(&act, w->key);
        char num[24];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)w->wait_index);
        cn_cli_query_add(&act.query, "recursive", w->recursive ? "true" : "false",
                         w->recursive ? 4 : 5);
        cn_cli_query_add(&act.query, "wait", "true", 4);
        cn_cli_query_add(&act.query, "waitIndex", num, strlen(num));
        act.wait = true;
        struct cn_cli_failure f;
        int rc = cn_cli_keys_do(cli, &act, r, &f);
        cn_cli_action_free(&act);
        if (rc != 0) {
            /* an empty 200 (a proxy's timeout) is retried, as client/v2 does */
            if (!f.cluster && f.one.msg &&
                strcmp(f.one.msg, "client: response body is empty") == 0) {
                cn_cli_failure_free(&f);
                continue;
            }
            cn_cli_handle_error(cli, CN_CLI_EXIT_SERVER, &f);
        }
        w->wait_index = cn_cli_node_u64(r->node, "modifiedIndex") + 1;
        return;
    }
}

static int run_watch(struct cn_cli *cli, const struct cn_cli_args *a)
{
    cn_cli_connect(cli, true);
    if (a->argc == 0) cn_cli_fail_msg(CN_CLI_EXIT_BAD_ARGS, "key required");
    struct watcher w = {a->argv[0], cn_cli_bool(a, "recursive"), 0};
    int64_t after = cn_cli_int(a, "after-index");
    if (after > 0) w.wait_index = (uint64_t)after + 1;
    bool forever = cn_cli_bool(a, "forever");
    cn_cli_exit_on_sigint(cli);
    for (;;) {
        struct cn_cli_keys_resp r;
        watch_next(cli, &w, &r);
        if (cn_cli_node_dir(r.node)) {
            cn_cli_keys_resp_free(&r);
            continue;
        }
        if (w.recursive) {
            size_t klen;
            const char *k = cn_cli_node_str(r.node, "key", &klen);
            printf("[%s] %.*s\n", r.action, (int)klen, k);
        }
        cn_cli_print_resp(&r, cli->output);
        fflush(stdout);
        cn_cli_keys_resp_free(&r);
        if (!forever) break;
    }
    return 0;
}

struct child {
    uv_process_t proc;
};

static void on_child_close(uv_handle_t *h)
{
    cn_free(h->data);
}

static void on_child_exit(uv_process_t *p, int64_t status, int signum)
{
    (void)status;
    (void)signum;
    uv_close((uv_handle_t *)p, on_child_close);
}

static bool env_is_watch_var(const char *e)
{
    static const char *const names[] = {
        "ETCD_WATCH_ACTION=", "ETCD_WATCH_MODIFIED_INDEX=", "ETCD_WATCH_KEY=", "ETCD_WATCH_VALUE="};
    for (size_t i = 0; i < N(names); i++) {
        if (strncmp(e, names[i], strlen(names[i])) == 0) return true;
    }
    return false;
}

static void spawn_for_event(struct cn_cli *cli, char **cmd, const struct cn_cli_keys_resp *r)
{
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **env = cn_xcalloc(nenv + 5, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++) {
        if (!env_is_watch_var(environ[i])) env[k++] = environ[i];
    }
    struct cn_buf vars[4];
    for (size_t i = 0; i < 4; i++)
        cn_buf_init(&vars[i]);
    size_t len;
    const char *s;
    cn_buf_appendf(&vars[0], "ETCD_WATCH_ACTION=%s", r->action);
    cn_buf_appendf(&vars[1], "ETCD_WATCH_MODIFIED_INDEX=%llu",
                   (unsigned long long)cn_cli_node_u64(r->node, "modifiedIndex"));
    s = cn_cli_node_str(r->node, "key", &len);
    cn_buf_appends(&vars[2], "ETCD_WATCH_KEY=");
    cn_buf_append(&vars[2], s, len);
    s = cn_cli_node_str(r->node, "value", &len);
    cn_buf_appends(&vars[3], "ETCD_WATCH_VALUE=");
    cn_buf_append(&vars[3], s, len);
    for (size_t i = 0; i < 4; i++)
        env[k++] = vars[i].p;
    env[k] = NULL;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE; /* Go's exec gives the child /dev/null */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = cmd[0];
    o.args = cmd;
    o.env = env;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = on_child_exit;
    struct child *c = CN_NEW(struct child);
    c->proc.data = c;
    fflush(stdout);
    int rc = uv_spawn(&cli->loop, &c->proc, &o);
    for (size_t i = 0; i < 4; i++)
        cn_buf_free(&vars[i]);
    cn_free(env);
    if (rc != 0) {
        /* Go prints cmd.Start's error without a newline and exits 1 */
        if (strchr(cmd[0], '/') == NULL && rc == UV_ENOENT) {
            fprintf(stderr, "exec: \"%s\": executable file not found in $PATH", cmd[0]);
        } else {
            fprintf(stderr, "fork/exec %s: %s", cmd[0], uv_strerror(rc));
        }
        cn_cli_exit(1);
    }
}

static int run_exec_watch(struct cn_cli *cli, const struct cn_cli_args *a)
{
    cn_cli_connect(cli, true);
    if (a->argc < 2) cn_cli_fail_msg(CN_CLI_EXIT_BAD_ARGS, "key and command to exec required");
    bool sep = false;
    for (int i = 1; i < a->argc; i++) {
        if (strcmp(a->argv[i], "--") == 0) {
            sep = true;
            break;
        }
    }
    const char *key;
    char **cmd;
    int ncmd;
    if (sep) {
        /* etcdctl assumes the "--" is the second argument */
        key = a->argv[0];
        cmd = a->argv + 2;
        ncmd = a->argc - 2;
    } else {
        /* etcdctl takes the last argument as the key when there is no "--" */
        key = a->argv[a->argc - 1];
        cmd = a->argv;
        ncmd = a->argc - 1;
    }
    char **argv = cn_xcalloc((size_t)ncmd + 1, sizeof(char *));
    for (int i = 0; i < ncmd; i++)
        argv[i] = cmd[i];
    int64_t after = cn_cli_int(a, "after-index");
    struct watcher w = {key, cn_cli_bool(a, "recursive"), after > 0 ? (uint64_t)after + 1 : 0};
    cn_cli_exit_on_sigint(cli);
    for (;;) {
        struct cn_cli_keys_resp r;
        watch_next(cli, &w, &r);
        if (cn_cli_node_dir(r.node)) {
            size_t klen;
            const char *k = cn_cli_node_str(r.node, "key", &klen);
            fflush(stdout);
            fprintf(stderr, "Ignored dir %.*s change\n", (int)klen, k);
            cn_cli_keys_resp_free(&r);
            continue;
        }
        if (ncmd > 0) spawn_for_event(cli, argv, &r);
        cn_cli_keys_resp_free(&r);
        cn_cli_poll(cli);
    }
    return 0;
}

static const struct cn_cli_flag watch_flags[] = {
    {"forever, f", CN_CLI_BOOL, NULL, "--forever, -f", "forever watch a key until CTRL+C"},
    {"after-index", CN_CLI_INT, "0", "--after-index value",
     "watch after the given index (default: 0)"},
    {"recursive, r", CN_CLI_BOOL, NULL, "--recursive, -r",
     "returns all values for key and child keys"},
};
const struct cn_cli_cmd cn_cli_cmd_watch = {
    "watch", NULL, "watch a key for changes", "<key>", NULL, watch_flags, N(watch_flags), run_watch,
    NULL,    0};

static const struct cn_cli_flag exec_watch_flags[] = {
    {"after-index", CN_CLI_INT, "0", "--after-index value",
     "watch after the given index (default: 0)"},
    {"recursive, r", CN_CLI_BOOL, NULL, "--recursive, -r",
     "watch all values for key and child keys"},
};
const struct cn_cli_cmd cn_cli_cmd_exec_watch = {"exec-watch",
                                                 NULL,
                                                 "watch a key for changes and exec an executable",
                                                 "<key> <command> [args...]",
                                                 NULL,
                                                 exec_watch_flags,
                                                 N(exec_watch_flags),
                                                 run_exec_watch,
                                                 NULL,
                                                 0};
