/* members: the member records in the store's system namespace (see cluster.h), their command
 * builders, and the member-list JSON both ways. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "store/store.h"

#define RECORD_KEY_LEN 96

static void key_of(char *key, uint64_t id, const char *leaf)
{
    snprintf(key, RECORD_KEY_LEN, "/members/%" PRIx64 "%s", id, leaf);
}

/* ---- lists ------------------------------------------------------------------------------ */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cn_free(v[i]);
    cn_free(v);
}

void cn_member_list_free(struct cn_member_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct cn_member *m = &l->m[i];
        cn_free(m->name);
        strv_free(m->peer_urls, m->n_peer);
        strv_free(m->client_urls, m->n_client);
    }
    cn_free(l->m);
    l->m = NULL;
    l->n = 0;
}

const struct cn_member *cn_member_list_find(const struct cn_member_list *l, uint64_t id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->m[i].id == id) return &l->m[i];
    return NULL;
}

bool cn_member_list_has_peer_url(const struct cn_member_list *l, const char *url,
                                 uint64_t except_id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->m[i].id == except_id) continue;
        for (size_t k = 0; k < l->m[i].n_peer; k++)
            if (strcmp(l->m[i].peer_urls[k], url) == 0) return true;
    }
    return false;
}

static struct cn_member *list_add(struct cn_member_list *l, size_t *cap, uint64_t id)
{
    if (l->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        l->m = cn_xrealloc(l->m, *cap * sizeof(*l->m));
    }
    struct cn_member *m = &l->m[l->n++];
    memset(m, 0, sizeof(*m));
    m->id = id;
    m->name = cn_xstrdup("");
    return m;
}

static int cmp_member(const void *a, const void *b)
{
    const struct cn_member *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The strings of a JSON array (others skipped). */
static char **url_array(json_t *arr, size_t *n)
{
    *n = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0) return NULL;
    char **v = cn_xcalloc(json_array_size(arr), sizeof(char *));
    size_t i;
    json_t *u;
    json_array_foreach(arr, i, u)
    {
        if (json_is_string(u)) v[(*n)++] = cn_xstrndup(json_string_value(u), json_string_length(u));
    }
    return v;
}

static void fill_from(struct cn_member *m, json_t *obj)
{
    json_t *name = json_object_get(obj, "name");
    if (json_is_string(name)) {
        cn_free(m->name);
        m->name = cn_xstrndup(json_string_value(name), json_string_length(name));
    }
    json_t *peers = json_object_get(obj, "peerURLs");
    if (peers) {
        strv_free(m->peer_urls, m->n_peer);
        m->peer_urls = url_array(peers, &m->n_peer);
    }
    json_t *clients = json_object_get(obj, "clientURLs");
    if (clients) {
        strv_free(m->client_urls, m->n_client);
        m->client_urls = url_array(clients, &m->n_client);
    }
}

/* ---- reading the records ---------------------------------------------------------------- */

struct load_ctx {
    struct cn_store *s;
    struct cn_member_list *l;
    size_t cap;
};

static bool parse_hex_id(const char *z, uint64_t *id)
{
    if (*z == '\0') return false;
    char *end;
    *id = strtoull(z, &end, 16);
    return *end == '\0' && *id != 0;
}

static void load_one(const char *key, const char *value, size_t value_len, bool is_dir, void *arg)
{
    (void)value;
    (void)value_len;
    struct load_ctx *c = arg;
    const char *slash = strrchr(key, '/');
    uint64_t id;
    if (!is_dir || slash == NULL || !parse_hex_id(slash + 1, &id)) return;
    struct cn_member *m = list_add(c->l, &c->cap, id);
    static const char *const leaves[] = {"/raftAttributes", "/attributes"};
    for (size_t i = 0; i < 2; i++) {
        char path[RECORD_KEY_LEN];
        key_of(path, id, leaves[i]);
        size_t len;
        const char *v = cn_store_peek(c->s, CN_NS_SYS, path, &len);
        if (v == NULL) continue;
        json_t *obj = json_loadb(v, len, 0, NULL);
        if (json_is_object(obj)) fill_from(m, obj);
        json_decref(obj);
    }
}

void cn_members_load(struct cn_store *s, struct cn_member_list *out)
{
    memset(out, 0, sizeof(*out));
    struct load_ctx c = {s, out, 0};
    cn_store_each_child(s, CN_NS_SYS, "/members", load_one, &c);
    if (out->n > 1) qsort(out->m, out->n, sizeof(*out->m), cmp_member);
}

bool cn_members_is_removed(struct cn_store *s, uint64_t id)
{
    char key[RECORD_KEY_LEN];
    snprintf(key, sizeof(key), "/removed_members/%" PRIx64, id);
    size_t len;
    return cn_store_peek(s, CN_NS_SYS, key, &len) != NULL;
}

bool cn_members_peer_url(struct cn_store *s, uint64_t id, char *url, size_t len)
{
    char key[RECORD_KEY_LEN];
    key_of(key, id, "/raftAttributes");
    size_t vlen;
    const char *v = cn_store_peek(s, CN_NS_SYS, key, &vlen);
    if (v == NULL) return false;
    json_t *obj = json_loadb(v, vlen, 0, NULL);
    json_t *first = json_array_get(json_object_get(obj, "peerURLs"), 0);
    bool ok = json_is_string(first) && json_string_length(first) < len;
    if (ok) memcpy(url, json_string_value(first), json_string_length(first) + 1);
    json_decref(obj);
    return ok;
}

const char *cn_members_version(struct cn_store *s, size_t *len)
{
    return cn_store_peek(s, CN_NS_SYS, "/version", len);
}

void cn_cluster_version_json(struct cn_buf *out, const char *cluster, size_t len)
{
    cn_buf_appends(out, "{\"etcdserver\":\"" CN_CLUSTER_SERVER_VERSION "\",\"etcdcluster\":");
    if (cluster)
        cn_json_str(out, cluster, len);
    else
        cn_buf_appends(out, "\"not_decided\"");
    cn_buf_putc(out, '}');
}

bool cn_members_has_version(struct cn_store *s)
{
    size_t len;
    return cn_store_peek(s, CN_NS_SYS, "/version", &len) != NULL;
}

static void urls_json(struct cn_buf *b, char *const *urls, size_t n)
{
    cn_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) cn_buf_putc(b, ',');
        cn_json_strz(b, urls[i]);
    }
    cn_buf_putc(b, ']');
}

static void attributes_value(struct cn_buf *v, const char *name, char *const *client_urls, size_t n)
{
    cn_buf_appends(v, "{\"name\":");
    cn_json_strz(v, name);
    cn_buf_appends(v, ",\"clientURLs\":");
    urls_json(v, client_urls, n);
    cn_buf_putc(v, '}');
}

bool cn_members_attributes_equal(struct cn_store *s, uint64_t id, const char *name,
                                 char *const *client_urls, size_t n)
{
    char key[RECORD_KEY_LEN];
    key_of(key, id, "/attributes");
    struct cn_buf v = CN_BUF_INIT;
    attributes_value(&v, name, client_urls, n);
    size_t len;
    const char *cur = cn_store_peek(s, CN_NS_SYS, key, &len);
    bool same = cur != NULL && len == v.len && memcmp(cur, v.p, len) == 0;
    cn_buf_free(&v);
    return same;
}

/* ---- writing the records ---------------------------------------------------------------- */

static void sys_cmd(struct cn_buf *out, uint8_t op, const char *key, const struct cn_buf *value,
                    int64_t now_ns)
{
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    c.op = op;
    c.ns = CN_NS_SYS;
    c.key = cn_str_c(key);
    if (value) c.value = cn_buf_str(value);
    if (op == CN_OP_DELETE) c.dir = c.recursive = true;
    c.now_ns = now_ns;
    cn_store_cmd_encode(&c, out);
}

void cn_members_cmd_peer_urls(struct cn_buf *out, uint64_t id, char *const *peer_urls, size_t n,
                              bool create, int64_t now_ns)
{
    char key[RECORD_KEY_LEN];
    key_of(key, id, "/raftAttributes");
    struct cn_buf v = CN_BUF_INIT;
    cn_buf_appends(&v, "{\"peerURLs\":");
    urls_json(&v, peer_urls, n);
    cn_buf_putc(&v, '}');
    /* etcd adds a member with store.Create, so stats count it as a create */
    sys_cmd(out, create ? CN_OP_CREATE : CN_OP_SET, key, &v, now_ns);
    cn_buf_free(&v);
}

void cn_members_cmd_publish(struct cn_buf *out, uint64_t id, const char *name,
                            char *const *client_urls, size_t n, int64_t now_ns)
{
    char key[RECORD_KEY_LEN];
    key_of(key, id, "/attributes");
    struct cn_buf v = CN_BUF_INIT;
    attributes_value(&v, name, client_urls, n);
    sys_cmd(out, CN_OP_SET, key, &v, now_ns);
    cn_buf_free(&v);
}

void cn_members_cmd_version(struct cn_buf *out, const char *version, int64_t now_ns)
{
    struct cn_buf v = CN_BUF_INIT;
    cn_buf_appends(&v, version);
    sys_cmd(out, CN_OP_SET, "/version", &v, now_ns);
    cn_buf_free(&v);
}

void cn_members_batch_add(struct cn_buf *batch, const void *cmd, size_t len)
{
    cn_buf_put_uvarint(batch, len);
    cn_buf_append(batch, cmd, len);
}

int cn_members_batch_next(const void *batch, size_t batch_len, size_t *off, const void **cmd,
                          size_t *len)
{
    if (*off >= batch_len) return 0;
    struct cn_rd r;
    cn_rd_init(&r, batch, batch_len);
    r.off = *off;
    uint64_t l = cn_rd_uvarint(&r);
    if (!cn_rd_ok(&r) || l > cn_rd_left(&r)) return CN_ERR_CORRUPT;
    *cmd = (const uint8_t *)batch + r.off;
    *len = (size_t)l;
    *off = r.off + (size_t)l;
    return 1;
}

void cn_members_batch_join(struct cn_buf *batch, uint64_t id, char *const *peer_urls, size_t n,
                           int64_t now_ns)
{
    struct cn_buf cmd = CN_BUF_INIT;
    cn_members_cmd_peer_urls(&cmd, id, peer_urls, n, true, now_ns);
    cn_members_batch_add(batch, cmd.p, cmd.len);
    cn_buf_free(&cmd);
}

void cn_members_batch_remove(struct cn_buf *batch, uint64_t id, int64_t now_ns)
{
    struct cn_buf cmd = CN_BUF_INIT;
    char key[RECORD_KEY_LEN];
    key_of(key, id, "");
    sys_cmd(&cmd, CN_OP_DELETE, key, NULL, now_ns);
    cn_members_batch_add(batch, cmd.p, cmd.len);
    cn_buf_reset(&cmd);
    /* as etcd does: a removed id stays known, so it is told if it calls */
    snprintf(key, sizeof(key), "/removed_members/%" PRIx64, id);
    struct cn_buf v = CN_BUF_INIT;
    cn_buf_appends(&v, "removed");
    sys_cmd(&cmd, CN_OP_SET, key, &v, now_ns);
    cn_members_batch_add(batch, cmd.p, cmd.len);
    cn_buf_free(&v);
    cn_buf_free(&cmd);
}

/* ---- JSON ------------------------------------------------------------------------------- */

void cn_member_json(struct cn_buf *out, const struct cn_member *m)
{
    cn_buf_appendf(out, "{\"id\":\"%" PRIx64 "\",\"name\":", m->id);
    cn_json_strz(out, m->name ? m->name : "");
    cn_buf_appends(out, ",\"peerURLs\":");
    urls_json(out, m->peer_urls, m->n_peer);
    cn_buf_appends(out, ",\"clientURLs\":");
    urls_json(out, m->client_urls, m->n_client);
    cn_buf_putc(out, '}');
}

void cn_member_list_json(struct cn_buf *out, const struct cn_member_list *l)
{
    cn_buf_putc(out, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i) cn_buf_putc(out, ',');
        cn_member_json(out, &l->m[i]);
    }
    cn_buf_putc(out, ']');
}

/* An id as etcd 2 (hex string) or etcd 3 (a JSON number, read as a real so that ids above
 * 2^63 survive) writes it. 0 when neither. */
static uint64_t json_id(json_t *v)
{
    uint64_t id = 0;
    if (json_is_string(v)) {
        if (!parse_hex_id(json_string_value(v), &id)) id = 0;
    } else if (json_is_integer(v) && json_integer_value(v) > 0) {
        id = (uint64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 2^64 is the first double out of range */
        if (d >= 1 && d < 18446744073709551616.0 && floor(d) == d) id = (uint64_t)d;
    }
    return id;
}

int cn_member_list_parse(struct cn_str body, enum cn_member_list_form form,
                         struct cn_member_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loadb(body.p ? body.p : "", body.len, 0, &je);
    /* jansson refuses integers beyond int64 (etcd 3's ids often are): read them as reals then,
     * which keeps the URLs and rounds such ids to 53 bits */
    if (root == NULL)
        root = json_loadb(body.p ? body.p : "", body.len, JSON_DECODE_INT_AS_REAL, &je);
    bool client = form == CN_MEMBER_LIST_CLIENT;
    json_t *arr = client && json_is_object(root) ? json_object_get(root, "members") : root;
    if (client && json_is_object(root) && arr == NULL) {
        json_decref(root);
        return 0;
    }
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s", root == NULL ? je.text : "not a member list");
        json_decref(root);
        return CN_ERR_PARSE;
    }
    size_t cap = 0, i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (!json_is_object(m)) continue;
        struct cn_member *x = list_add(out, &cap, json_id(json_object_get(m, "id")));
        fill_from(x, m);
    }
    json_decref(root);
    return 0;
}
