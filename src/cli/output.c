/* output: etcdctl's printResponseKey. simple prints the value (or "PrevNode.Value: <v>" for a
 * delete), extended an RFC 2822-like block, json the response as etcd's Go client re-encodes it:
 * fields in struct order, "value" always present, "nodes" null when absent, "dir", "expiration"
 * and "ttl" omitted when empty, strings escaped as encoding/json does. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/json.h"

static void node_json(struct cn_buf *b, const json_t *n)
{
    if (!json_is_object(n)) {
        cn_buf_appends(b, "null");
        return;
    }
    size_t len;
    const char *s;
    cn_buf_putc(b, '{');
    cn_json_key(b, "key");
    s = cn_cli_node_str(n, "key", &len);
    cn_json_str(b, s, len);
    if (cn_cli_node_dir(n)) cn_buf_appends(b, ",\"dir\":true");
    cn_buf_putc(b, ',');
    cn_json_key(b, "value");
    s = cn_cli_node_str(n, "value", &len);
    cn_json_str(b, s, len);
    cn_buf_putc(b, ',');
    cn_json_key(b, "nodes");
    json_t *nodes = json_object_get(n, "nodes");
    if (json_is_array(nodes)) {
        cn_buf_putc(b, '[');
        size_t i;
        json_t *c;
        json_array_foreach(nodes, i, c)
        {
            if (i) cn_buf_putc(b, ',');
            node_json(b, c);
        }
        cn_buf_putc(b, ']');
    } else {
        cn_buf_appends(b, "null");
    }
    cn_buf_appendf(b, ",\"createdIndex\":%llu,\"modifiedIndex\":%llu",
                   (unsigned long long)cn_cli_node_u64(n, "createdIndex"),
                   (unsigned long long)cn_cli_node_u64(n, "modifiedIndex"));
    json_t *exp = json_object_get(n, "expiration");
    if (json_is_string(exp)) {
        cn_buf_putc(b, ',');
        cn_json_key(b, "expiration");
        cn_json_str(b, json_string_value(exp), json_string_length(exp));
    }
    json_t *ttl = json_object_get(n, "ttl");
    if (json_is_integer(ttl) && json_integer_value(ttl) != 0) {
        cn_buf_appendf(b, ",\"ttl\":%lld", (long long)json_integer_value(ttl));
    }
    cn_buf_putc(b, '}');
}

void cn_cli_resp_json(struct cn_buf *out, const struct cn_cli_keys_resp *r)
{
    size_t len;
    const char *action = cn_cli_node_str(r->root, "action", &len);
    cn_buf_putc(out, '{');
    cn_json_key(out, "action");
    cn_json_str(out, action, len);
    cn_buf_putc(out, ',');
    cn_json_key(out, "node");
    node_json(out, r->node);
    cn_buf_putc(out, ',');
    cn_json_key(out, "prevNode");
    node_json(out, r->prev_node);
    cn_buf_putc(out, '}');
}

void cn_cli_print_resp(const struct cn_cli_keys_resp *r, const char *format)
{
    struct cn_buf b = CN_BUF_INIT;
    size_t len;
    const char *s;
    bool del = strcmp(r->action, "delete") == 0;
    if (strcmp(format, "simple") == 0) {
        if (!del) {
            s = cn_cli_node_str(r->node, "value", &len);
            cn_buf_append(&b, s, len);
        } else {
            cn_buf_appends(&b, "PrevNode.Value: ");
            s = cn_cli_node_str(r->prev_node, "value", &len);
            cn_buf_append(&b, s, len);
        }
        cn_buf_putc(&b, '\n');
    } else if (strcmp(format, "extended") == 0) {
        cn_buf_appends(&b, "Key: ");
        s = cn_cli_node_str(r->node, "key", &len);
        cn_buf_append(&b, s, len);
        cn_buf_appendf(&b, "\nCreated-Index: %llu\nModified-Index: %llu\n",
                       (unsigned long long)cn_cli_node_u64(r->node, "createdIndex"),
                       (unsigned long long)cn_cli_node_u64(r->node, "modifiedIndex"));
        if (r->prev_node) {
            cn_buf_appends(&b, "PrevNode.Value: ");
            s = cn_cli_node_str(r->prev_node, "value", &len);
            cn_buf_append(&b, s, len);
            cn_buf_putc(&b, '\n');
        }
        json_t *ttl = r->node ? json_object_get(r->node, "ttl") : NULL;
        cn_buf_appendf(&b, "TTL: %lld\nIndex: %llu\n",
                       json_is_integer(ttl) ? (long long)json_integer_value(ttl) : 0LL,
                       (unsigned long long)r->index);
        if (!del) {
            cn_buf_putc(&b, '\n');
            s = cn_cli_node_str(r->node, "value", &len);
            cn_buf_append(&b, s, len);
            cn_buf_putc(&b, '\n');
        }
    } else if (strcmp(format, "json") == 0) {
        cn_cli_resp_json(&b, r);
        cn_buf_putc(&b, '\n');
    } else {
        fflush(stdout);
        fprintf(stderr, "Unsupported output format: %s\n", format);
        return;
    }
    fwrite(b.p, 1, b.len, stdout);
    cn_buf_free(&b);
}
