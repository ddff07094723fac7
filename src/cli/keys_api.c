/* keys_api: /v2/keys requests and responses as etcd's client/v2 KeysAPI builds and decodes them.
 * A 200/201 body is the response (X-Etcd-Index is the index etcdctl prints); any other status is
 * an etcd error decoded from the body, printed as "<code>: <message> (<cause>) [<index>]". */
#include <jansson.h>
#include <string.h>

#include "cli/cli.h"
#include "common/alloc.h"

void cn_cli_keys_path(struct cn_cli_action *a, const char *key)
{
    struct cn_buf raw = CN_BUF_INIT;
    cn_buf_appends(&raw, "/v2/keys");
    if (key[0] != '\0' && key[0] != '/') cn_buf_putc(&raw, '/');
    cn_buf_appends(&raw, key);
    struct cn_buf clean = CN_BUF_INIT;
    cn_cli_clean_path(&clean, raw.p, raw.len);
    cn_cli_escape_path(&a->path, clean.p, clean.len);
    cn_buf_free(&clean);
    cn_buf_free(&raw);
}

const char *cn_cli_node_str(const json_t *node, const char *field, size_t *len)
{
    json_t *v = node ? json_object_get(node, field) : NULL;
    if (!json_is_string(v)) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = json_string_length(v);
    return json_string_value(v);
}

uint64_t cn_cli_node_u64(const json_t *node, const char *field)
{
    json_t *v = node ? json_object_get(node, field) : NULL;
    if (json_is_integer(v)) return (uint64_t)json_integer_value(v);
    if (json_is_real(v)) return (uint64_t)json_real_value(v);
    return 0;
}

bool cn_cli_node_dir(const json_t *node)
{
    return node && json_is_true(json_object_get(node, "dir"));
}

void cn_cli_keys_resp_free(struct cn_cli_keys_resp *r)
{
    if (r->root) json_decref(r->root);
    memset(r, 0, sizeof(*r));
}

static void fail_msg(struct cn_cli_failure *f, const char *msg)
{
    memset(f, 0, sizeof(*f));
    f->one.msg = cn_xstrdup(msg);
}

int cn_cli_keys_do(struct cn_cli *cli, struct cn_cli_action *a, struct cn_cli_keys_resp *out,
                   struct cn_cli_failure *fail)
{
    memset(out, 0, sizeof(*out));
    struct cn_cli_resp r;
    if (cn_cli_do(cli, a, &r, fail) != 0) return -1;
    json_error_t jerr;
    int rc = -1;
    if (r.status == 200 || r.status == 201) {
        if (r.body.len == 0) {
            fail_msg(fail, "client: response body is empty");
            goto out;
        }
        json_t *root = json_loadb(r.body.p, r.body.len, JSON_ALLOW_NUL, &jerr);
        if (!json_is_object(root)) {
            if (root) json_decref(root);
            fail_msg(fail, "client: response is invalid json. The endpoint is probably not valid "
                           "etcd cluster endpoint");
            goto out;
        }
        out->root = root;
        json_t *n = json_object_get(root, "node");
        out->node = json_is_object(n) ? n : NULL;
        json_t *p = json_object_get(root, "prevNode");
        out->prev_node = json_is_object(p) ? p : NULL;
        out->action = cn_cli_node_str(root, "action", NULL);
        out->index = r.has_index ? r.index : 0;
        rc = 0;
        goto out;
    }
    json_t *e = json_loadb(r.body.p ? r.body.p : "", r.body.len, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(e)) {
        if (e) json_decref(e);
        fail_msg(fail, "client: response is invalid json. The endpoint is probably not valid etcd "
                       "cluster endpoint");
        goto out;
    }
    struct cn_buf m = CN_BUF_INIT;
    size_t mlen, clen;
    const char *msg = cn_cli_node_str(e, "message", &mlen);
    const char *cause = cn_cli_node_str(e, "cause", &clen);
    cn_buf_appendf(&m, "%llu: ", (unsigned long long)cn_cli_node_u64(e, "errorCode"));
    cn_buf_append(&m, msg, mlen);
    cn_buf_appends(&m, " (");
    cn_buf_append(&m, cause, clen);
    cn_buf_appendf(&m, ") [%llu]", (unsigned long long)cn_cli_node_u64(e, "index"));
    memset(fail, 0, sizeof(*fail));
    fail->one.msg = cn_buf_steal(&m, NULL);
    json_decref(e);
out:
    cn_cli_resp_free(&r);
    return rc;
}
