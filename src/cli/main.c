/* cairnctl: global options and environment (etcdctl v2's, with its precedence), the command
 * table, help in urfave/cli's layout, and dispatch. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/alloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *prog = "cairnctl";

static const struct cn_cli_cmd *const commands[] = {
    &cn_cli_cmd_cluster_health, &cn_cli_cmd_mk,     &cn_cli_cmd_mkdir,     &cn_cli_cmd_rm,
    &cn_cli_cmd_rmdir,          &cn_cli_cmd_get,    &cn_cli_cmd_ls,        &cn_cli_cmd_set,
    &cn_cli_cmd_setdir,         &cn_cli_cmd_update, &cn_cli_cmd_updatedir, &cn_cli_cmd_watch,
    &cn_cli_cmd_exec_watch,     &cn_cli_cmd_member,
};

enum {
    G_DEBUG,
    G_NO_SYNC,
    G_OUTPUT,
    G_DISCOVERY_SRV,
    G_INSECURE_DISCOVERY,
    G_PEERS,
    G_ENDPOINT,
    G_ENDPOINTS,
    G_CERT,
    G_KEY,
    G_CA,
    G_USERNAME,
    G_TIMEOUT,
    G_TOTAL_TIMEOUT,
    G_VERSION,
};

static const struct cn_cli_flag global_flags[] = {
    [G_DEBUG] = {"debug", CN_CLI_BOOL, NULL, "--debug",
                 "output cURL commands which can be used to reproduce the request"},
    [G_NO_SYNC] = {"no-sync", CN_CLI_BOOL, NULL, "--no-sync",
                   "don't synchronize cluster information before sending request"},
    [G_OUTPUT] = {"output, o", CN_CLI_STRING, "simple", "--output simple, -o simple",
                  "output response in the given format (simple, `extended` or `json`) (default: "
                  "\"simple\")"},
    [G_DISCOVERY_SRV] = {"discovery-srv, D", CN_CLI_STRING, NULL, "--discovery-srv value, -D value",
                         "domain name to query for SRV records describing cluster endpoints "
                         "(not supported by cairnctl)"},
    [G_INSECURE_DISCOVERY] = {"insecure-discovery", CN_CLI_BOOL, NULL, "--insecure-discovery",
                              "accept insecure SRV records describing cluster endpoints"},
    [G_PEERS] = {"peers, C", CN_CLI_STRING, NULL, "--peers value, -C value",
                 "DEPRECATED - \"--endpoints\" should be used instead"},
    [G_ENDPOINT] = {"endpoint", CN_CLI_STRING, NULL, "--endpoint value",
                    "DEPRECATED - \"--endpoints\" should be used instead"},
    [G_ENDPOINTS] = {"endpoints", CN_CLI_STRING, NULL, "--endpoints value",
                     "a comma-delimited list of machine addresses in the cluster (default: "
                     "\"http://127.0.0.1:2379,http://127.0.0.1:4001\")"},
    [G_CERT] = {"cert-file", CN_CLI_STRING, NULL, "--cert-file value",
                "identify HTTPS client using this SSL certificate file (not supported yet)"},
    [G_KEY] = {"key-file", CN_CLI_STRING, NULL, "--key-file value",
               "identify HTTPS client using this SSL key file (not supported yet)"},
    [G_CA] = {"ca-file", CN_CLI_STRING, NULL, "--ca-file value",
              "verify certificates of HTTPS-enabled servers using this CA bundle (not supported "
              "yet)"},
    [G_USERNAME] = {"username, u", CN_CLI_STRING, NULL, "--username value, -u value",
                    "provide username[:password] and prompt if password is not supplied."},
    [G_TIMEOUT] = {"timeout", CN_CLI_DURATION, "2s", "--timeout value",
                   "connection timeout per request (default: 2s)"},
    [G_TOTAL_TIMEOUT] = {"total-timeout", CN_CLI_DURATION, "5s", "--total-timeout value",
                         "timeout for the command execution (except watch) (default: 5s)"},
    [G_VERSION] = {"version, v", CN_CLI_BOOL, NULL, "--version, -v", "print the version"},
};

static void app_help(struct cn_buf *b)
{
    cn_buf_appendf(b,
                   "NAME:\n   %s - A simple command line client for etcd (and cairn).\n\n"
                   "USAGE:\n   %s [global options] command [command options] [arguments...]\n\n"
                   "VERSION:\n   %s\n\nCOMMANDS:\n",
                   prog, prog, CN_VERSION);
    size_t w = strlen("help, h");
    for (size_t i = 0; i < N(commands); i++) {
        if (strlen(commands[i]->name) > w) w = strlen(commands[i]->name);
    }
    for (size_t i = 0; i < N(commands); i++) {
        cn_buf_appendf(b, "   %-*s  %s\n", (int)w, commands[i]->name, commands[i]->usage);
    }
    cn_buf_appendf(b, "   %-*s  %s\n", (int)w, "help, h",
                   "Shows a list of commands or help for one command");
    cn_buf_appends(b, "\nGLOBAL OPTIONS:\n");
    struct cn_cli_flag all[N(global_flags) + 1];
    memcpy(all, global_flags, sizeof(global_flags));
    all[N(global_flags)] = all[G_VERSION];
    all[G_VERSION] = (struct cn_cli_flag){"help, h", CN_CLI_BOOL, NULL, "--help, -h", "show help"};
    cn_cli_flags_help(b, all, N(all));
    cn_buf_appends(b,
                   "\nEnvironment: ETCDCTL_ENDPOINTS, ETCDCTL_ENDPOINT and ETCDCTL_PEERS set the "
                   "endpoints when no flag does.\n");
}

void cn_cli_cmd_help(const struct cn_cli_cmd *cmd, const char *prefix, struct cn_buf *out)
{
    cn_buf_appendf(out, "NAME:\n   %s %s - %s\n\nUSAGE:\n   %s %s", prefix, cmd->name, cmd->usage,
                   prefix, cmd->name);
    if (cmd->subs) {
        cn_buf_appends(out, " command [command options] [arguments...]\n\nCOMMANDS:\n");
        size_t w = 0;
        for (size_t i = 0; i < cmd->nsubs; i++) {
            if (strlen(cmd->subs[i].name) > w) w = strlen(cmd->subs[i].name);
        }
        for (size_t i = 0; i < cmd->nsubs; i++) {
            cn_buf_appendf(out, "   %-*s  %s\n", (int)w, cmd->subs[i].name, cmd->subs[i].usage);
        }
        cn_buf_appends(out, "\nOPTIONS:\n   --help, -h  show help\n   \n");
        return;
    }
    if (cmd->nflags) cn_buf_appends(out, " [command options]");
    if (cmd->args_usage) cn_buf_appendf(out, " %s", cmd->args_usage);
    cn_buf_putc(out, '\n');
    if (cmd->description) cn_buf_appendf(out, "\nDESCRIPTION:\n   %s\n", cmd->description);
    if (cmd->nflags) {
        cn_buf_appends(out, "\nOPTIONS:\n");
        cn_cli_flags_help(out, cmd->flags, cmd->nflags);
        cn_buf_appends(out, "   \n");
    }
}

static void print_buf(FILE *f, struct cn_buf *b)
{
    fwrite(b->p ? b->p : "", 1, b->len, f);
    cn_buf_free(b);
}

_Noreturn static void no_help_topic(const char *name)
{
    fflush(stdout);
    fprintf(stderr, "No help topic for '%s'\n", name);
    cn_cli_exit(3);
}

/* A flag value of the running command, for cn_cli_bool() and friends. */
static const struct cn_cli_flagval *lookup(const struct cn_cli_args *a, const char *name)
{
    int i = cn_cli_flag_find(a->cmd->flags, a->cmd->nflags, name);
    return i < 0 ? NULL : &a->vals[i];
}

bool cn_cli_bool(const struct cn_cli_args *a, const char *name)
{
    const struct cn_cli_flagval *v = lookup(a, name);
    return v && v->b;
}

int64_t cn_cli_int(const struct cn_cli_args *a, const char *name)
{
    const struct cn_cli_flagval *v = lookup(a, name);
    return v ? v->i : 0;
}

const char *cn_cli_str(const struct cn_cli_args *a, const char *name)
{
    const struct cn_cli_flagval *v = lookup(a, name);
    return v && v->s ? v->s : "";
}

int cn_cli_run_cmd(struct cn_cli *cli, const struct cn_cli_cmd *cmd, const char *prefix, int argc,
                   char **argv)
{
    struct cn_buf b = CN_BUF_INIT;
    if (cmd->subs) {
        if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
            strcmp(argv[1], "help") == 0 || strcmp(argv[1], "h") == 0) {
            cn_cli_cmd_help(cmd, prefix, &b);
            print_buf(stdout, &b);
            return 0;
        }
        for (size_t i = 0; i < cmd->nsubs; i++) {
            if (strcmp(argv[1], cmd->subs[i].name) == 0) {
                cn_buf_appendf(&b, "%s %s", prefix, cmd->name);
                char *sub_prefix = cn_buf_steal(&b, NULL);
                int rc = cn_cli_run_cmd(cli, &cmd->subs[i], sub_prefix, argc - 1, argv + 1);
                cn_free(sub_prefix);
                return rc;
            }
        }
        no_help_topic(argv[1]);
    }
    int nargs = argc - 1;
    char **args = cn_xcalloc((size_t)nargs + 1, sizeof(char *));
    cn_cli_reorder_args(cmd->flags, cmd->nflags, nargs, argv + 1, args);
    struct cn_cli_flagval *vals = cn_xcalloc(cmd->nflags + 1, sizeof(*vals));
    int rest = 0;
    struct cn_buf err = CN_BUF_INIT;
    int prc = cn_cli_flags_parse(cmd->flags, cmd->nflags, vals, nargs, args, &rest, &err);
    if (prc == CN_CLI_PARSE_ERR) {
        cn_buf_appendf(&b, "Incorrect Usage: %s\n\n", err.p);
        cn_cli_cmd_help(cmd, prefix, &b);
        print_buf(stdout, &b);
        fflush(stdout);
        fprintf(stderr, "%s\n", err.p);
        cn_cli_exit(1);
    }
    cn_buf_free(&err);
    if (prc == CN_CLI_PARSE_HELP) {
        cn_cli_cmd_help(cmd, prefix, &b);
        print_buf(stdout, &b);
        cn_free(vals);
        cn_free(args);
        return 0;
    }
    struct cn_cli_args a = {cmd, vals, nargs - rest, args + rest};
    int rc = cmd->run(cli, &a);
    cn_free(vals);
    cn_free(args);
    return rc;
}

static const struct cn_cli_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < N(commands); i++) {
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    }
    return NULL;
}

/* getPeersFlagValue: flag, then environment, in etcdctl's order. */
static const char *endpoint_list(const struct cn_cli_flagval *g)
{
    const char *cands[] = {g[G_ENDPOINTS].s, getenv("ETCDCTL_ENDPOINTS"),
                           g[G_ENDPOINT].s,  getenv("ETCDCTL_ENDPOINT"),
                           g[G_PEERS].s,     getenv("ETCDCTL_PEERS")};
    for (size_t i = 0; i < N(cands); i++) {
        if (cands[i] && cands[i][0]) return cands[i];
    }
    return "http://127.0.0.1:2379,http://127.0.0.1:4001";
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp(base, "etcdctl") == 0) prog = "etcdctl";

    struct cn_cli cli;
    cn_cli_init(&cli);
    struct cn_cli_flagval g[N(global_flags)];
    int rest = 0;
    struct cn_buf err = CN_BUF_INIT, b = CN_BUF_INIT;
    int prc = cn_cli_flags_parse(global_flags, N(global_flags), g, argc - 1, argv + 1, &rest, &err);
    if (prc == CN_CLI_PARSE_ERR) {
        cn_buf_appendf(&b, "Incorrect Usage. %s\n\n", err.p);
        app_help(&b);
        print_buf(stdout, &b);
        fflush(stdout);
        fprintf(stderr, "%s\n", err.p);
        cn_cli_exit(1);
    }
    cn_buf_free(&err);
    if (g[G_VERSION].b && prc != CN_CLI_PARSE_HELP) {
        printf("%s version: %s\nAPI version: 2\n", prog, CN_VERSION);
        cn_cli_exit(0);
    }
    int nargs = argc - 1 - rest;
    char **args = argv + 1 + rest;
    if (prc == CN_CLI_PARSE_HELP || nargs == 0) {
        app_help(&b);
        print_buf(stdout, &b);
        cn_cli_exit(0);
    }
    if (strcmp(args[0], "help") == 0 || strcmp(args[0], "h") == 0) {
        if (nargs < 2) {
            app_help(&b);
            print_buf(stdout, &b);
            cn_cli_exit(0);
        }
        const struct cn_cli_cmd *c = find_cmd(args[1]);
        if (!c) no_help_topic(args[1]);
        cn_cli_cmd_help(c, prog, &b);
        print_buf(stdout, &b);
        cn_cli_exit(0);
    }
    const struct cn_cli_cmd *cmd = find_cmd(args[0]);
    if (!cmd) no_help_topic(args[0]);

    const char *srv =
        g[G_DISCOVERY_SRV].s[0] ? g[G_DISCOVERY_SRV].s : getenv("ETCDCTL_DISCOVERY_SRV");
    if (srv && srv[0]) {
        /* better to refuse than to talk to the default endpoints instead */
        fprintf(stderr,
                "Error:  --discovery-srv (ETCDCTL_DISCOVERY_SRV) is not supported by %s; "
                "use --endpoints\n",
                prog);
        cn_cli_exit(CN_CLI_EXIT_BAD_ARGS);
    }
    cli.debug = g[G_DEBUG].b;
    cli.no_sync = g[G_NO_SYNC].b;
    cli.output = g[G_OUTPUT].s;
    cli.timeout_ns = g[G_TIMEOUT].i;
    cli.total_timeout_ns = g[G_TOTAL_TIMEOUT].i;
    const char *user = g[G_USERNAME].s[0] ? g[G_USERNAME].s : getenv("ETCDCTL_USERNAME");
    if (user && user[0]) cn_cli_set_user(&cli, user);
    cn_cli_set_endpoints(&cli, endpoint_list(g), NULL);
    int rc = cn_cli_run_cmd(&cli, cmd, prog, nargs, args);
    cn_cli_exit(rc);
}
