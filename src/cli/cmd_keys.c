/* cmd_keys: the key commands (get, set, mk, mkdir, setdir, update, updatedir, rm, rmdir, ls), each
 * the same pipeline: sync the endpoints, check the arguments (in that order, as etcdctl does),
 * build the request exactly as client/v2 does, print with the chosen format. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* argOrStdin: the argument, or all of stdin when it is missing; NULL when neither has text. */
static char *arg_or_stdin(const struct cn_cli_args *a, int i, size_t *len)
{
    if (i < a->argc) {
        *len = strlen(a->argv[i]);
        return cn_xstrdup(a->argv[i]);
    }
    struct cn_buf b = CN_BUF_INIT;
    if (cn_buf_read_fd(&b, 0, SIZE_MAX) != 0 || b.len == 0) {
        cn_buf_free(&b);
        return NULL;
    }
    return cn_buf_steal(&b, len);
}

static const char *key_arg(const struct cn_cli_args *a)
{
    if (a->argc == 0) cn_cli_fail_msg(CN_CLI_EXIT_BAD_ARGS, "key required");
    return a->argv[0];
}

static void u64_str(char *out, uint64_t v)
{
    out[cn_u64_to_str(out, v)] = '\0';
}

struct set_opts {
    const char *prev_value;
    uint64_t prev_index;
    const char *prev_exist; /* NULL, "true" or "false" */
    int64_t ttl_s;
    bool dir;
};

/* client/v2 setAction */
static void set_action(struct cn_cli_action *act, const char *key, const char *value,
                       size_t value_len, const struct set_opts *o)
{
    cn_cli_action_init(act, "PUT");
    cn_cli_keys_path(act, key);
    char num[24];
    if (o->dir) cn_cli_query_add(&act->query, "dir", "true", 4);
    if (o->prev_exist)
        cn_cli_query_add(&act->query, "prevExist", o->prev_exist, strlen(o->prev_exist));
    if (o->prev_index) {
        u64_str(num, o->prev_index);
        cn_cli_query_add(&act->query, "prevIndex", num, strlen(num));
    }
    if (!o->dir && o->prev_value && o->prev_value[0]) {
        cn_cli_query_add(&act->query, "prevValue", o->prev_value, strlen(o->prev_value));
    }
    if (o->ttl_s > 0) {
        u64_str(num, (uint64_t)o->ttl_s);
        cn_cli_query_add(&act->body, "ttl", num, strlen(num));
    }
    if (!o->dir) cn_cli_query_add(&act->body, "value", value, value_len);
    act->has_body = true;
    act->ctype = "application/x-www-form-urlencoded";
    /* a create must not be retried elsewhere: it may have succeeded there */
    act->one_shot = o->prev_exist && strcmp(o->prev_exist, "false") == 0;
}

static void run_and_print(struct cn_cli *cli, struct cn_cli_action *act, int print_mode)
{
    struct cn_cli_keys_resp r;
    struct cn_cli_failure f;
    cn_cli_deadline_start(cli);
    int rc = cn_cli_keys_do(cli, act, &r, &f);
    cn_cli_deadline_clear(cli);
    cn_cli_action_free(act);
    if (rc != 0) cn_cli_handle_error(cli, CN_CLI_EXIT_SERVER, &f);
    bool simple = strcmp(cli->output, "simple") == 0;
    switch (print_mode) {
    case 0: /* always */
        cn_cli_print_resp(&r, cli->output);
        break;
    case 1: /* directories: only a non-simple format shows the response */
        if (!simple) cn_cli_print_resp(&r, cli->output);
        break;
    case 2: /* deletes: files, or any non-simple format */
        if (!cn_cli_node_dir(r.node) || !simple) cn_cli_print_resp(&r, cli->output);
        break;
    default:
        break;
    }
    cn_cli_keys_resp_free(&r);
}

static int value_cmd(struct cn_cli *cli, const struct cn_cli_args *a, struct set_opts *o)
{
    cn_cli_connect(cli, true);
    const char *key = key_arg(a);
    size_t vlen;
    char *value = arg_or_stdin(a, 1, &vlen);
    if (!value) cn_cli_fail_msg(CN_CLI_EXIT_BAD_ARGS, "value required");
    o->ttl_s = cn_cli_int(a, "ttl");
    struct cn_cli_action act;
    set_action(&act, key, value, vlen, o);
    cn_free(value);
    run_and_print(cli, &act, 0);
    return 0;
}

static int run_set(struct cn_cli *cli, const struct cn_cli_args *a)
{
    struct set_opts o = {0};
    o.prev_value = cn_cli_str(a, "swap-with-value");
    o.prev_index = (uint64_t)cn_cli_int(a, "swap-with-index");
    return value_cmd(cli, a, &o);
}

static int run_update(struct cn_cli *cli, const struct cn_cli_args *a)
{
    struct set_opts o = {0};
    o.prev_exist = "true";
    return value_cmd(cli, a, &o);
}

static int run_mk(struct cn_cli *cli, const struct cn_cli_args *a)
{
    if (!cn_cli_bool(a, "in-order")) {
        struct set_opts o = {0};
        o.prev_exist = "false";
        return value_cmd(cli, a, &o);
    }
    cn_cli_connect(cli, true);
    const char *key = key_arg(a);
    size_t vlen;
    char *value = arg_or_stdin(a, 1, &vlen);
    if (!value) cn_cli_fail_msg(CN_CLI_EXIT_BAD_ARGS, "value required");
    struct cn_cli_action act;
    cn_cli_action_init(&act, "POST");
    cn_cli_keys_path(&act, key);
    int64_t ttl = cn_cli_int(a, "ttl");
    if (ttl > 0) {
        char num[24];
        u64_str(num, (uint64_t)ttl);
        cn_cli_query_add(&act.body, "ttl", num, strlen(num));
    }
    cn_cli_query_add(&act.body, "value", value, vlen);
    cn_free(value);
    act.has_body = true;
    act.ctype = "application/x-www-form-urlencoded";
    run_and_print(cli, &act, 0);
    return 0;
}

static int dir_cmd(struct cn_cli *cli, const struct cn_cli_args *a, const char *prev_exist)
{
    cn_cli_connect(cli, true);
    const char *key = key_arg(a);
    struct set_opts o = {0};
    o.dir = true;
    o.prev_exist = prev_exist;
    o.ttl_s = cn_cli_int(a, "ttl");
    struct cn_cli_action act;
    set_action(&act, key, "", 0, &o);
    run_and_print(cli, &act, 1);
    return 0;
}

static int run_mkdir(struct cn_cli *cli, const struct cn_cli_args *a)
{
    return dir_cmd(cli, a, "false");
}

static int run_setdir(struct cn_cli *cli, const struct cn_cli_args *a)
{
    return dir_cmd(cli, a, NULL);
}

static int run_updatedir(struct cn_cli *cli, const struct cn_cli_args *a)
{
    return dir_cmd(cli, a, "true");
}

static void delete_action(struct cn_cli_action *act, const char *key, const char *prev_value,
                          uint64_t prev_index, bool dir, bool recursive)
{
    cn_cli_action_init(act, "DELETE");
    cn_cli_keys_path(act, key);
    char num[24];
    if (dir) cn_cli_query_add(&act->query, "dir", "true", 4);
    if (prev_index) {
        u64_str(num, prev_index);
        cn_cli_query_add(&act->query, "prevIndex", num, strlen(num));
    }
    if (prev_value && prev_value[0]) {
        cn_cli_query_add(&act->query, "prevValue", prev_value, strlen(prev_value));
    }
    if (recursive) cn_cli_query_add(&act->query, "recursive", "true", 4);
    act->ctype = "application/x-www-form-urlencoded";
    act->one_shot = true;
}

static int run_rm(struct cn_cli *cli, const struct cn_cli_args *a)
{
    cn_cli_connect(cli, true);
    const char *key = key_arg(a);
    struct cn_cli_action act;
    delete_action(&act, key, cn_cli_str(a, "with-value"), (uint64_t)cn_cli_int(a, "with-index"),
                  cn_cli_bool(a, "dir"), cn_cli_bool(a, "recursive"));
    run_and_print(cli, &act, 2);
    return 0;
}

static int run_rmdir(struct cn_cli *cli, const struct cn_cli_args *a)
{
    cn_cli_connect(cli, true);
    const char *key = key_arg(a);
    struct cn_cli_action act;
    delete_action(&act, key, NULL, 0, true, false);
    run_and_print(cli, &act, 2);
    return 0;
}

static void get_action(struct cn_cli_action *act, const char *key, bool recursive, bool sorted,
                       bool quorum)
{
    cn_cli_action_init(act, "GET");
    cn_cli_keys_path(act, key);
    cn_cli_query_add(&act->query, "quorum", quorum ? "true" : "false", quorum ? 4 : 5);
    cn_cli_query_add(&act->query, "recursive", recursive ? "true" : "false", recursive ? 4 : 5);
    cn_cli_query_add(&act->query, "sorted", sorted ? "true" : "false", sorted ? 4 : 5);
}

/* A GET under the total timeout; etcd errors end the command as etcdctl ends it. */
static void do_get(struct cn_cli *cli, const char *key, bool recursive, bool sort, bool quorum,
                   struct cn_cli_keys_resp *r)
{
    struct cn_cli_action act;
    get_action(&act, key, recursive, sort, quorum);
    struct cn_cli_failure f;
    cn_cli_deadline_start(cli);
    int rc = cn_cli_keys_do(cli, &act, r, &f);
    cn_cli_deadline_clear(cli);
    cn_cli_action_free(&act);
    if (rc != 0) cn_cli_handle_error(cli, CN_CLI_EXIT_SERVER, &f);
}

static int run_get(struct cn_cli *cli, const struct cn_cli_args *a)
{
    cn_cli_connect(cli, true);
    const char *key = key_arg(a);
    struct cn_cli_keys_resp r;
    do_get(cli, key, false, cn_cli_bool(a, "sort"), cn_cli_bool(a, "quorum"), &r);
    if (cn_cli_node_dir(r.node)) {
        size_t len;
        const char *k = cn_cli_node_str(r.node, "key", &len);
        fflush(stdout);
        fprintf(stderr, "%.*s: is a directory\n", (int)len, k);
        cn_cli_exit(CN_CLI_EXIT_BAD_ARGS);
    }
    cn_cli_print_resp(&r, cli->output);
    cn_cli_keys_resp_free(&r);
    return 0;
}

static void ls_print(struct cn_buf *b, const json_t *n, bool slash)
{
    size_t len;
    const char *k = cn_cli_node_str(n, "key", &len);
    cn_buf_append(b, k, len);
    if (slash && cn_cli_node_dir(n)) cn_buf_putc(b, '/');
    cn_buf_putc(b, '\n');
    json_t *nodes = json_object_get(n, "nodes");
    size_t i;
    json_t *c;
    json_array_foreach(nodes, i, c)
    {
        ls_print(b, c, slash);
    }
}

static int run_ls(struct cn_cli *cli, const struct cn_cli_args *a)
{
    cn_cli_connect(cli, true);
    const char *key = a->argc > 0 ? a->argv[0] : "/";
    struct cn_cli_keys_resp r;
    do_get(cli, key, cn_cli_bool(a, "recursive"), cn_cli_bool(a, "sort"), cn_cli_bool(a, "quorum"),
           &r);
    if (strcmp(cli->output, "simple") != 0) {
        cn_cli_print_resp(&r, cli->output);
    } else {
        struct cn_buf b = CN_BUF_INIT;
        if (!cn_cli_node_dir(r.node)) {
            size_t len;
            const char *k = cn_cli_node_str(r.node, "key", &len);
            cn_buf_append(&b, k, len);
            cn_buf_putc(&b, '\n');
        }
        json_t *nodes = r.node ? json_object_get(r.node, "nodes") : NULL;
        size_t i;
        json_t *c;
        json_array_foreach(nodes, i, c)
        {
            ls_print(&b, c, cn_cli_bool(a, "p"));
        }
        fwrite(b.p ? b.p : "", 1, b.len, stdout);
        cn_buf_free(&b);
    }
    cn_cli_keys_resp_free(&r);
    return 0;
}

/* ---- the command table entries (help texts are etcdctl's) ------------------------------------ */

static const struct cn_cli_flag ttl_flag = {"ttl", CN_CLI_INT, "0", "--ttl value",
                                            "key time-to-live in seconds (default: 0)"};

static const struct cn_cli_flag get_flags[] = {
    {"sort", CN_CLI_BOOL, NULL, "--sort", "returns result in sorted order"},
    {"quorum, q", CN_CLI_BOOL, NULL, "--quorum, -q", "require quorum for get request"},
};
const struct cn_cli_cmd cn_cli_cmd_get = {
    "get", NULL, "retrieve the value of a key", "<key>", NULL, get_flags, N(get_flags), run_get,
    NULL,  0};

static const struct cn_cli_flag set_flags[] = {
    {"ttl", CN_CLI_INT, "0", "--ttl value", "key time-to-live in seconds (default: 0)"},
    {"swap-with-value", CN_CLI_STRING, NULL, "--swap-with-value value", "previous value"},
    {"swap-with-index", CN_CLI_INT, "0", "--swap-with-index value", "previous index (default: 0)"},
};
const struct cn_cli_cmd cn_cli_cmd_set = {
    "set",
    NULL,
    "set the value of a key",
    "<key> <value>",
    "Set sets the value of a key.\n\n   When <value> begins with '-', <value> is interpreted as a "
    "flag.\n   Insert '--' for workaround:\n\n   $ set -- <key> <value>",
    set_flags,
    N(set_flags),
    run_set,
    NULL,
    0};

static const struct cn_cli_flag mk_flags[] = {
    {"in-order", CN_CLI_BOOL, NULL, "--in-order", "create in-order key under directory <key>"},
    {"ttl", CN_CLI_INT, "0", "--ttl value", "key time-to-live in seconds (default: 0)"},
};
const struct cn_cli_cmd cn_cli_cmd_mk = {"mk",
                                         NULL,
                                         "make a new key with a given value",
                                         "<key> <value>",
                                         NULL,
                                         mk_flags,
                                         N(mk_flags),
                                         run_mk,
                                         NULL,
                                         0};

const struct cn_cli_cmd cn_cli_cmd_mkdir = {
    "mkdir", NULL, "make a new directory", "<key>", NULL, &ttl_flag, 1, run_mkdir, NULL, 0};

const struct cn_cli_cmd cn_cli_cmd_setdir = {"setdir",
                                             NULL,
                                             "create a new directory or update an existing "
                                             "directory TTL",
                                             "<key>",
                                             NULL,
                                             &ttl_flag,
                                             1,
                                             run_setdir,
                                             NULL,
                                             0};

const struct cn_cli_cmd cn_cli_cmd_update = {"update",
                                             NULL,
                                             "update an existing key with a given value",
                                             "<key> <value>",
                                             NULL,
                                             &ttl_flag,
                                             1,
                                             run_update,
                                             NULL,
                                             0};

const struct cn_cli_cmd cn_cli_cmd_updatedir = {"updatedir",
                                                NULL,
                                                "update an existing directory",
                                                "<key> <value>",
                                                NULL,
                                                &ttl_flag,
                                                1,
                                                run_updatedir,
                                                NULL,
                                                0};

static const struct cn_cli_flag rm_flags[] = {
    {"dir", CN_CLI_BOOL, NULL, "--dir",
     "removes the key if it is an empty directory or a key-value pair"},
    {"recursive, r", CN_CLI_BOOL, NULL, "--recursive, -r",
     "removes the key and all child keys(if it is a directory)"},
    {"with-value", CN_CLI_STRING, NULL, "--with-value value", "previous value"},
    {"with-index", CN_CLI_INT, "0", "--with-index value", "previous index (default: 0)"},
};
const struct cn_cli_cmd cn_cli_cmd_rm = {
    "rm", NULL, "remove a key or a directory", "<key>", NULL, rm_flags, N(rm_flags), run_rm,
    NULL, 0};

const struct cn_cli_cmd cn_cli_cmd_rmdir = {
    "rmdir", NULL,      "removes the key if it is an empty directory or a key-value pair",
    "<key>", NULL,      NULL,
    0,       run_rmdir, NULL,
    0};

static const struct cn_cli_flag ls_flags[] = {
    {"sort", CN_CLI_BOOL, NULL, "--sort", "returns result in sorted order"},
    {"recursive, r", CN_CLI_BOOL, NULL, "--recursive, -r",
     "returns all key names recursively for the given path"},
    {"p", CN_CLI_BOOL, NULL, "-p", "append slash (/) to directories"},
    {"quorum, q", CN_CLI_BOOL, NULL, "--quorum, -q", "require quorum for get request"},
};
const struct cn_cli_cmd cn_cli_cmd_ls = {
    "ls", NULL, "retrieve a directory", "[key]", NULL, ls_flags, N(ls_flags), run_ls, NULL, 0};
