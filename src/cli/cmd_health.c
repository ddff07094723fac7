/* cmd_health: cluster-health. Lists the members once (no endpoint sync), then asks each member's
 * client URLs for /health until one answers, and reports as etcdctl does: the cluster counts as
 * healthy when any member is (etcdctl's rule), exit 5 otherwise; --forever repeats every 10 s. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "common/alloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Decodes {"health": "true"} or {"health": true}; -1 when neither parses. */
static int parse_health(const struct cn_cli_resp *r, bool *healthy)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &jerr);
    if (!json_is_object(root)) {
        if (root) json_decref(root);
        return -1;
    }
    json_t *h = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcasecmp(k, "health") == 0) h = v;
    }
    int rc = 0;
    if (h == NULL || json_is_null(h)) {
        *healthy = false;
    } else if (json_is_string(h)) {
        *healthy = strcmp(json_string_value(h), "true") == 0;
    } else if (json_is_boolean(h)) {
        *healthy = json_is_true(h);
    } else {
        rc = -1;
    }
    json_decref(root);
    return rc;
}

static int run_health(struct cn_cli *cli, const struct cn_cli_args *a)
{
    bool forever = cn_cli_bool(a, "forever");
    if (forever) cn_cli_exit_on_sigint(cli);
    cn_cli_connect(cli, false);

    struct cn_cli_action act;
    cn_cli_action_init(&act, "GET");
    cn_buf_appends(&act.path, "/v2/members");
    struct cn_cli_resp r;
    struct cn_cli_failure f;
    memset(&r, 0, sizeof(r));
    int rc = cn_cli_do(cli, &act, &r, &f);
    bool have_r = rc == 0;
    cn_cli_action_free(&act);
    json_t *root = NULL;
    if (rc == 0 && r.status != 200) {
        memset(&f, 0, sizeof(f));
        char m[64];
        snprintf(m, sizeof(m), "unexpected status code %d", r.status);
        f.one.msg = cn_xstrdup(m);
        rc = -1;
    } else if (rc == 0) {
        json_error_t jerr;
        root = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, &jerr);
        if (!root) {
            memset(&f, 0, sizeof(f));
            f.one.msg = cn_xstrdup("unexpected end of JSON input");
            rc = -1;
        }
    }
    if (have_r) cn_cli_resp_free(&r);
    if (rc != 0) {
        printf("cluster may be unhealthy: failed to list members\n");
        cn_cli_handle_error(cli, CN_CLI_EXIT_SERVER, &f);
    }
    json_t *members = json_object_get(root, "members");
    /* Go's transport dials with min(30s, --total-timeout) */
    int64_t dial_ns = 30 * 1000000000LL;
    if (cli->total_timeout_ns > 0 && cli->total_timeout_ns < dial_ns)
        dial_ns = cli->total_timeout_ns;
    for (;;) {
        bool any_healthy = false;
        size_t i;
        json_t *m;
        json_array_foreach(members, i, m)
        {
            json_t *idv = json_object_get(m, "id");
            const char *id = json_is_string(idv) ? json_string_value(idv) : "";
            json_t *urls = json_object_get(m, "clientURLs");
            if (json_array_size(urls) == 0) {
                printf("member %s is unreachable: no available published client urls\n", id);
                continue;
            }
            bool checked = false;
            size_t j;
            json_t *u;
            json_array_foreach(urls, j, u)
            {
                const char *url = json_is_string(u) ? json_string_value(u) : "";
                struct cn_buf hurl = CN_BUF_INIT, err = CN_BUF_INIT;
                cn_buf_appendf(&hurl, "%s/health", url);
                struct cn_cli_resp hr;
                if (cn_cli_plain_get(cli, hurl.p, dial_ns, &hr, &err) != 0) {
                    printf("failed to check the health of member %s on %s: %s\n", id, url, err.p);
                    cn_buf_free(&hurl);
                    cn_buf_free(&err);
                    continue;
                }
                bool healthy = false;
                int prc = parse_health(&hr, &healthy);
                cn_cli_resp_free(&hr);
                cn_buf_free(&hurl);
                cn_buf_free(&err);
                if (prc != 0) {
                    printf("failed to check the health of member %s on %s: invalid character "
                           "looking for beginning of value\n",
                           id, url);
                    continue;
                }
                checked = true;
                if (healthy) {
                    any_healthy = true;
                    printf("member %s is healthy: got healthy result from %s\n", id, url);
                } else {
                    printf("member %s is unhealthy: got unhealthy result from %s\n", id, url);
                }
                break;
            }
            if (!checked) {
                struct cn_buf list = CN_BUF_INIT;
                size_t k;
                json_t *v;
                json_array_foreach(urls, k, v)
                {
                    if (k) cn_buf_putc(&list, ' ');
                    if (json_is_string(v)) cn_buf_appends(&list, json_string_value(v));
                }
                printf("member %s is unreachable: [%s] are all unreachable\n", id,
                       list.p ? list.p : "");
                cn_buf_free(&list);
            }
        }
        printf("cluster is %s\n", any_healthy ? "healthy" : "unhealthy");
        fflush(stdout);
        if (!forever) {
            json_decref(root);
            return any_healthy ? CN_CLI_EXIT_OK : CN_CLI_EXIT_UNHEALTHY;
        }
        printf("\nnext check after 10 second...\n\n");
        fflush(stdout);
        cn_cli_sleep(cli, 10000);
    }
}

static const struct cn_cli_flag health_flags[] = {
    {"forever, f", CN_CLI_BOOL, NULL, "--forever, -f",
     "forever check the health every 10 second until CTRL+C"},
};
const struct cn_cli_cmd cn_cli_cmd_cluster_health = {"cluster-health",
                                                     NULL,
                                                     "check the health of the etcd cluster",
                                                     " ",
                                                     NULL,
                                                     health_flags,
                                                     N(health_flags),
                                                     run_health,
                                                     NULL,
                                                     0};
