/* store events: construction (one allocation holding the key; the values are shared with the
 * tree), reference counting, and the JSON etcd writes for events and nodes. */
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "store_int.h"

static const char *const action_names[] = {
    NULL, "set", "create", "update", "compareAndSwap", "delete", "compareAndDelete", "expire",
};

int cn_store__action_code(const char *action)
{
    for (int i = 1; i < (int)(sizeof(action_names) / sizeof(action_names[0])); i++)
        if (action == action_names[i] || strcmp(action, action_names[i]) == 0) return i;
    return 0;
}

const char *cn_store__action_name(int code)
{
    if (code <= 0 || code >= (int)(sizeof(action_names) / sizeof(action_names[0]))) return NULL;
    return action_names[code];
}

static char empty_value[1];

static void fill_copy(struct cn_store_node_copy *c, char *key, size_t key_len,
                      const struct store_node_spec *sp)
{
    c->key = key;
    c->key_len = key_len;
    c->val = NULL;
    if (sp->has_value) {
        c->val = sp->val ? cn_store__val_ref(sp->val) : cn_store__val_new(sp->value, sp->value_len);
        c->value = c->val ? c->val->data : empty_value;
        c->value_len = c->val ? c->val->len : 0;
    } else {
        c->value = NULL;
        c->value_len = 0;
    }
    c->dir = sp->dir;
    c->expire_ns = sp->expire_ns;
    c->modified_index = sp->modified_index;
    c->created_index = sp->created_index;
}

struct cn_store_event *cn_store__event_alloc(uint8_t ns, const char *action, uint64_t index,
                                             const char *key, size_t key_len,
                                             const struct store_node_spec *node,
                                             const struct store_node_spec *prev)
{
    struct cn_store_event *ev = cn_xmalloc(sizeof(*ev) + key_len + 1);
    ev->refs = 1;
    ev->ns = ns;
    ev->action = action;
    ev->refresh = false;
    ev->index = index;
    /* node and prevNode always name the same path: they share one copy of the key */
    char *k = (char *)(ev + 1);
    if (key_len) memcpy(k, key, key_len);
    k[key_len] = '\0';
    fill_copy(&ev->node, k, key_len, node);
    ev->has_prev = prev != NULL;
    if (prev)
        fill_copy(&ev->prev, k, key_len, prev);
    else
        memset(&ev->prev, 0, sizeof(ev->prev));
    return ev;
}

struct cn_store_event *cn_store__event_new(uint8_t ns, const char *action, uint64_t index,
                                           const char *key, size_t key_len,
                                           const struct store_node_spec *node,
                                           const struct node *prev)
{
    if (!prev) return cn_store__event_alloc(ns, action, index, key, key_len, node, NULL);
    struct store_node_spec ps = {
        .has_value = !prev->is_dir,
        .val = prev->is_dir ? NULL : prev->val,
        .dir = prev->is_dir,
        .expire_ns = prev->expire_ns,
        .modified_index = prev->modified_index,
        .created_index = prev->created_index,
    };
    return cn_store__event_alloc(ns, action, index, key, key_len, node, &ps);
}

void cn_store_event_ref(struct cn_store_event *ev)
{
    ev->refs++;
}

void cn_store_event_unref(struct cn_store_event *ev)
{
    if (!ev) return;
    CN_ASSERT(ev->refs > 0);
    if (--ev->refs > 0) return;
    cn_store__val_unref(ev->node.val);
    cn_store__val_unref(ev->prev.val);
    cn_free(ev);
}

/* ---- JSON ----------------------------------------------------------------------------------- */

void cn_store__json_ttl(struct cn_buf *b, int64_t expire_ns, int64_t now_ns)
{
    if (expire_ns == 0) return;
    cn_buf_append(b, ",\"expiration\":\"", 15);
    cn_time_rfc3339nano(b, expire_ns);
    cn_buf_putc(b, '"');
    /* etcd: ceil((expire-now)/1s), omitted when <= 0 */
    int64_t d = expire_ns - now_ns;
    if (d > 0) {
        int64_t ttl = d / CN_NS_PER_S + (d % CN_NS_PER_S > 0);
        cn_buf_append(b, ",\"ttl\":", 7);
        cn_buf_append_u64(b, (uint64_t)ttl);
    }
}

static void json_indexes(struct cn_buf *b, uint64_t modified, uint64_t created)
{
    if (modified) {
        cn_buf_append(b, ",\"modifiedIndex\":", 17);
        cn_buf_append_u64(b, modified);
    }
    if (created) {
        cn_buf_append(b, ",\"createdIndex\":", 16);
        cn_buf_append_u64(b, created);
    }
}

/* Every node but the root has a key, and the root always has "dir", so each later field can
 * start with a comma. */
void cn_store__json_node_open(struct cn_buf *b, const struct node *n, const char *path, size_t plen,
                              int64_t now_ns)
{
    if (plen) {
        cn_buf_append(b, "{\"key\":", 7);
        cn_json_str(b, path, plen);
        if (n->is_dir) {
            cn_buf_append(b, ",\"dir\":true", 11);
        } else {
            cn_buf_append(b, ",\"value\":", 9);
            cn_json_str(b, cn_store__node_cvalue(n), cn_store__node_value_len(n));
        }
    } else {
        cn_buf_append(b, "{\"dir\":true", 11);
    }
    cn_store__json_ttl(b, n->expire_ns, now_ns);
}

void cn_store__json_node_close(struct cn_buf *b, const struct node *n)
{
    json_indexes(b, n->modified_index, n->created_index);
    cn_buf_putc(b, '}');
}

/* Event nodes always carry a key (the root is never the subject of an event). */
static void json_copy(struct cn_buf *b, const struct cn_store_node_copy *c, int64_t now_ns)
{
    cn_buf_append(b, "{\"key\":", 7);
    cn_json_str(b, c->key, c->key_len);
    if (c->value) {
        cn_buf_append(b, ",\"value\":", 9);
        cn_json_str(b, c->value, c->value_len);
    }
    if (c->dir) cn_buf_append(b, ",\"dir\":true", 11);
    cn_store__json_ttl(b, c->expire_ns, now_ns);
    json_indexes(b, c->modified_index, c->created_index);
    cn_buf_putc(b, '}');
}

void cn_store_event_json(const struct cn_store_event *ev, int64_t now_ns, struct cn_buf *out)
{
    cn_buf_append(out, "{\"action\":", 10);
    cn_json_strz(out, ev->action);
    cn_buf_append(out, ",\"node\":", 8);
    json_copy(out, &ev->node, now_ns);
    if (ev->has_prev) {
        cn_buf_append(out, ",\"prevNode\":", 12);
        json_copy(out, &ev->prev, now_ns);
    }
    cn_buf_putc(out, '}');
}
