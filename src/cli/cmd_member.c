/* cmd_member: member list/add/remove/update over /v2/members, with etcdctl's messages and its
 * exit code 1 for every failure of these commands. */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/json.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

__attribute__((format(printf, 1, 2))) _Noreturn static void die(const char *fmt, ...)
{
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    cn_cli_exit(1);
}

static _Noreturn void die_failure(const char *prefix, const struct cn_cli_failure *f)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, prefix);
    cn_cli_failure_text(f, &b);
    die("%s%s\n", b.p, "");
}

static void members_path(struct cn_cli_action *a, const char *id)
{
    struct cn_buf raw = CN_BUF_INIT;
    cn_buf_appends(&raw, "/v2/members");
    if (id) {
        cn_buf_putc(&raw, '/');
        cn_buf_appends(&raw, id);
    }
    struct cn_buf clean = CN_BUF_INIT;
    cn_cli_clean_path(&clean, raw.p, raw.len);
    /* path.Join drops a trailing slash */
    if (clean.len > 1 && clean.p[clean.len - 1] == '/') clean.p[--clean.len] = '\0';
    cn_cli_escape_path(&a->path, clean.p, clean.len);
    cn_buf_free(&clean);
    cn_buf_free(&raw);
}

/* GET /v2/members: 0 with the member list in *l, or -1 with *f. */
static int list_members(struct cn_cli *cli, struct cn_member_list *l, struct cn_cli_failure *f)
{
    struct cn_cli_action a;
    cn_cli_action_init(&a, "GET");
    members_path(&a, NULL);
    struct cn_cli_resp r;
    int rc = cn_cli_do(cli, &a, &r, f);
    cn_cli_action_free(&a);
    if (rc != 0) return -1;
    memset(f, 0, sizeof(*f));
    if (r.status != 200) {
        char m[64];
        snprintf(m, sizeof(m), "unexpected status code %d", r.status);
        f->one.msg = cn_xstrdup(m);
        cn_cli_resp_free(&r);
        return -1;
    }
    char err[160];
    rc = cn_member_list_parse(cn_str_make(r.body.p, r.body.len), CN_MEMBER_LIST_CLIENT, l, err,
                              sizeof(err));
    cn_cli_resp_free(&r);
    if (rc != 0) {
        f->one.msg = cn_xstrdup("unexpected end of JSON input");
        return -1;
    }
    return 0;
}

static void join_strings(struct cn_buf *b, char *const *v, size_t n, const char *sep)
{
    for (size_t i = 0; i < n; i++) {
        if (i) cn_buf_appends(b, sep);
        cn_buf_appends(b, v[i]);
    }
}

static const char *mstr(json_t *m, const char *field)
{
    json_t *v = json_object_get(m, field);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The id as the v2 API writes it (lower-case hex). */
static const char *hex_id(uint64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIx64, id);
    return buf;
}

static int run_list(struct cn_cli *cli, const struct cn_cli_args *a)
{
    if (a->argc != 0) die("%s%s\n", "No arguments accepted", "");
    cn_cli_connect(cli, true);
    cn_cli_deadline_start(cli); /* one context covers both calls */
    struct cn_member_list l;
    struct cn_cli_failure f;
    if (list_members(cli, &l, &f) != 0) die_failure("", &f);

    struct cn_cli_action act;
    cn_cli_action_init(&act, "GET");
    members_path(&act, "leader");
    struct cn_cli_resp r;
    int rc = cn_cli_do(cli, &act, &r, &f);
    cn_cli_action_free(&act);
    if (rc != 0) die_failure("Failed to get leader:  ", &f);
    if (r.status != 200) {
        char m[64];
        snprintf(m, sizeof(m), "unexpected status code %d", r.status);
        die("%s%s\n", "Failed to get leader:  ", m);
    }
    json_error_t jerr;
    json_t *leader = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, &jerr);
    cn_cli_resp_free(&r);
    if (!leader) die("%s%s\n", "Failed to get leader:  ", "unexpected end of JSON input");
    const char *lid = mstr(leader, "id");

    struct cn_buf b = CN_BUF_INIT;
    for (size_t i = 0; i < l.n; i++) {
        const struct cn_member *m = &l.m[i];
        char id[20];
        hex_id(m->id, id, sizeof(id));
        if (m->name[0] == '\0') {
            cn_buf_appendf(&b, "%s[unstarted]: peerURLs=", id);
            join_strings(&b, m->peer_urls, m->n_peer, ",");
            cn_buf_putc(&b, '\n');
            continue;
        }
        cn_buf_appendf(&b, "%s: name=%s peerURLs=", id, m->name);
        join_strings(&b, m->peer_urls, m->n_peer, ",");
        cn_buf_appends(&b, " clientURLs=");
        join_strings(&b, m->client_urls, m->n_client, ",");
        cn_buf_appendf(&b, " isLeader=%s\n", strcmp(id, lid) == 0 ? "true" : "false");
    }
    fwrite(b.p ? b.p : "", 1, b.len, stdout);
    cn_buf_free(&b);
    json_decref(leader);
    cn_member_list_free(&l);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* types.NewURLs: validates, trims and sorts; exits with its message on a bad URL. */
static char **new_urls(const char *list, bool split, size_t *n)
{
    size_t cnt = 1;
    if (split) {
        for (const char *p = list; *p; p++)
            cnt += *p == ',';
    }
    char **urls = cn_xcalloc(cnt, sizeof(char *));
    const char *p = list;
    for (size_t i = 0; i < cnt; i++) {
        size_t len = split ? strcspn(p, ",") : strlen(p);
        const char *s = p, *e = p + len;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\n'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'))
            e--;
        char *u = cn_xstrndup(s, (size_t)(e - s));
        const char *sep = strstr(u, "://");
        size_t slen = sep ? (size_t)(sep - u) : 0;
        bool http = sep && ((slen == 4 && strncmp(u, "http", 4) == 0) ||
                            (slen == 5 && strncmp(u, "https", 5) == 0));
        bool unix_ = sep && ((slen == 4 && strncmp(u, "unix", 4) == 0) ||
                             (slen == 5 && strncmp(u, "unixs", 5) == 0));
        if (!http && !unix_) die("URL scheme must be http, https, unix, or unixs: %s%s\n", u, "");
        if (http) {
            const char *host = sep + 3;
            size_t hlen = strcspn(host, "/?#");
            const char *colon = NULL;
            for (size_t k = hlen; k > 0; k--) {
                if (host[k - 1] == ':') {
                    colon = host + k - 1;
                    break;
                }
                if (host[k - 1] == ']') break;
            }
            if (!colon) {
                die("URL address does not have the form \"host:port\": %s%s\n", u, "");
            }
            if (host[hlen] == '/') die("URL must not contain a path: %s%s\n", u, "");
        }
        urls[i] = u;
        p += len + (p[len] == ',');
    }
    qsort(urls, cnt, sizeof(char *), cmp_str);
    *n = cnt;
    return urls;
}

static void urls_body(struct cn_cli_action *act, char **urls, size_t n)
{
    cn_buf_appends(&act->body, "{\"peerURLs\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) cn_buf_putc(&act->body, ',');
        cn_json_strz(&act->body, urls[i]);
    }
    cn_buf_appends(&act->body, "]}");
    act->has_body = true;
    act->ctype = "application/json";
}

static void free_urls(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cn_free(urls[i]);
    cn_free(urls);
}

/* A membersError body: {"message": "..."}. */
static void members_error(const struct cn_cli_resp *r, struct cn_buf *out)
{
    json_error_t jerr;
    json_t *e = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &jerr);
    if (!e) {
        cn_buf_appends(out, "unexpected end of JSON input");
        return;
    }
    cn_buf_appends(out, mstr(e, "message"));
    json_decref(e);
}

/* Sends {"peerURLs":[...]} to /v2/members (POST, id NULL) or /v2/members/<id> (PUT) and dies with
 * etcdctl's message unless the answer is want_status; the members API's own errors (409, and 404
 * when update_errors) are reported with their message. */
static void send_peer_urls(struct cn_cli *cli, const char *method, const char *id,
                           const char *urls_arg, bool update_errors, int want_status,
                           struct cn_cli_resp *r)
{
    size_t n;
    char **urls = new_urls(urls_arg, update_errors, &n);
    struct cn_cli_action act;
    cn_cli_action_init(&act, method);
    members_path(&act, id);
    urls_body(&act, urls, n);
    free_urls(urls, n);
    struct cn_cli_failure f;
    int rc = cn_cli_do(cli, &act, r, &f);
    cn_cli_action_free(&act);
    if (rc != 0) die_failure("", &f);
    if (r->status != want_status) {
        struct cn_buf m = CN_BUF_INIT;
        if (r->status == 409 || (update_errors && r->status == 404)) {
            members_error(r, &m);
        } else {
            cn_buf_appendf(&m, "unexpected status code %d", r->status);
        }
        die("%s%s\n", m.p, "");
    }
}

static int run_add(struct cn_cli *cli, const struct cn_cli_args *a)
{
    if (a->argc != 2) die("%s%s\n", "Provide a name and a single member peerURL", "");
    cn_cli_connect(cli, true);
    cn_cli_deadline_start(cli);
    const char *new_name = a->argv[0];
    struct cn_cli_resp r;
    struct cn_cli_failure f;
    send_peer_urls(cli, "POST", NULL, a->argv[1], false, 201, &r);
    json_error_t jerr;
    json_t *mem = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, &jerr);
    cn_cli_resp_free(&r);
    if (!mem) die("%s%s\n", "unexpected end of JSON input", "");
    char *new_id = cn_xstrdup(mstr(mem, "id"));
    json_decref(mem);
    printf("Added member named %s with ID %s to cluster\n", new_name, new_id);

    struct cn_member_list l;
    if (list_members(cli, &l, &f) != 0) die_failure("", &f);
    struct cn_buf conf = CN_BUF_INIT;
    bool first = true;
    for (size_t i = 0; i < l.n; i++) {
        char id[20];
        const char *name =
            strcmp(hex_id(l.m[i].id, id, sizeof(id)), new_id) == 0 ? new_name : l.m[i].name;
        for (size_t j = 0; j < l.m[i].n_peer; j++) {
            if (!first) cn_buf_putc(&conf, ',');
            first = false;
            cn_buf_appendf(&conf, "%s=%s", name, l.m[i].peer_urls[j]);
        }
    }
    struct cn_buf out = CN_BUF_INIT;
    cn_buf_appends(&out, "\nETCD_NAME=");
    cn_cli_go_quote(&out, new_name, strlen(new_name));
    cn_buf_appends(&out, "\nETCD_INITIAL_CLUSTER=");
    cn_cli_go_quote(&out, conf.p ? conf.p : "", conf.len);
    cn_buf_appends(&out, "\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
    fwrite(out.p, 1, out.len, stdout);
    cn_buf_free(&out);
    cn_buf_free(&conf);
    cn_free(new_id);
    cn_member_list_free(&l);
    return 0;
}

static int run_remove(struct cn_cli *cli, const struct cn_cli_args *a)
{
    if (a->argc != 1) die("%s%s\n", "Provide a single member ID", "");
    const char *id = a->argv[0];
    cn_cli_connect(cli, true);
    cn_cli_deadline_start(cli);
    struct cn_member_list l;
    struct cn_cli_failure f;
    if (list_members(cli, &l, &f) != 0) {
        die_failure("Error while verifying ID against known members: ", &f);
    }
    bool found = false;
    for (size_t i = 0; i < l.n; i++) {
        char mid[20];
        hex_id(l.m[i].id, mid, sizeof(mid));
        if (strcmp(mid, id) == 0) found = true;
        if (strcmp(l.m[i].name, id) == 0) {
            fflush(stdout);
            fprintf(stderr,
                    "Found a member named %s; if this is correct, please use its ID, eg:\n\t"
                    "etcdctl member remove %s\n",
                    l.m[i].name, mid);
            fprintf(stderr, "For more details, read the documentation at "
                            "https://github.com/etcd-io/etcd/blob/master/Documentation/"
                            "runtime-configuration.md#remove-a-member\n\n");
        }
    }
    cn_member_list_free(&l);
    if (!found) die("Couldn't find a member in the cluster with an ID of %s.%s\n", id, "");
    struct cn_cli_action act;
    cn_cli_action_init(&act, "DELETE");
    members_path(&act, id);
    struct cn_cli_resp r;
    int rc = cn_cli_do(cli, &act, &r, &f);
    cn_cli_action_free(&act);
    struct cn_buf msg = CN_BUF_INIT;
    if (rc != 0) {
        cn_cli_failure_text(&f, &msg);
    } else if (r.status != 204 && r.status != 410) {
        cn_buf_appendf(&msg, "unexpected status code %d", r.status);
    }
    if (rc == 0) cn_cli_resp_free(&r);
    if (msg.len) die("Received an error trying to remove member %s: %s", id, msg.p);
    printf("Removed member %s from cluster\n", id);
    return 0;
}

static int run_update(struct cn_cli *cli, const struct cn_cli_args *a)
{
    if (a->argc != 2) {
        die("%s%s\n",
            "Provide an ID and a list of comma separated peerURL (0xabcd "
            "http://example.com,http://example1.com)",
            "");
    }
    cn_cli_connect(cli, true);
    const char *id = a->argv[0];
    cn_cli_deadline_start(cli);
    struct cn_cli_resp r;
    send_peer_urls(cli, "PUT", id, a->argv[1], true, 204, &r);
    cn_cli_resp_free(&r);
    printf("Updated member with ID %s in cluster\n", id);
    return 0;
}

static const struct cn_cli_cmd member_subs[] = {
    {"list", NULL, "enumerate existing cluster members", " ", NULL, NULL, 0, run_list, NULL, 0},
    {"add", NULL, "add a new member to the etcd cluster", "<name> <peerURL>", NULL, NULL, 0,
     run_add, NULL, 0},
    {"remove", NULL, "remove an existing member from the etcd cluster", "<memberID>", NULL, NULL, 0,
     run_remove, NULL, 0},
    {"update", NULL, "update an existing member in the etcd cluster", "<memberID> <peerURLs>", NULL,
     NULL, 0, run_update, NULL, 0},
};

const struct cn_cli_cmd cn_cli_cmd_member = {"member",
                                             NULL,
                                             "member add, remove and list subcommands",
                                             NULL,
                                             NULL,
                                             NULL,
                                             0,
                                             NULL,
                                             member_subs,
                                             N(member_subs)};
