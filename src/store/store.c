/* store: the etcd v2 operations (etcd 2.3's store.go semantics, spec §3-8), GET JSON written
 * straight from the tree, internal readers and stats. The tree, heap, events, watches and codecs
 * live in tree.c, event.c, watch.c and codec.c. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/json.h"
#include "common/log.h"
#include "store_int.h"

struct cn_store *cn_store_new(void)
{
    struct cn_store *s = CN_NEW(struct cn_store);
    for (int ns = 0; ns < CN_NS_COUNT; ns++)
        s->root[ns] = cn_store__node_new("", 0, true, NULL, (uint8_t)ns);
    cn_buf_init(&s->path);
    cn_buf_init(&s->aux);
    return s;
}

void cn_store_free(struct cn_store *s)
{
    if (!s) return;
    cn_store__hub_end_all(s, false);
    cn_store__hist_clear(s);
    cn_store_event_unref(s->last_ev);
    for (int ns = 0; ns < CN_NS_COUNT; ns++)
        cn_store__node_unref(s->root[ns]);
    cn_store__heap_clear(s);
    cn_free(s->heap);
    cn_buf_free(&s->path);
    cn_buf_free(&s->aux);
    cn_free(s);
}

uint64_t cn_store_index(const struct cn_store *s)
{
    return s->index;
}

int64_t cn_store_next_expiry(const struct cn_store *s)
{
    return s->heap_n ? s->heap[0]->expire_ns : 0;
}

uint64_t cn_store_key_count(const struct cn_store *s, uint8_t ns)
{
    return ns < CN_NS_COUNT ? s->nkeys[ns] : 0;
}

/* ---- errors ------------------------------------------------------------------------------- */

/* A bounded writer for error causes (truncates, always NUL-terminated). */
struct cause {
    char *p;
    size_t n, cap;
};

static void cause_put(struct cause *c, const char *p, size_t len)
{
    size_t room = c->cap - 1 - c->n;
    if (len > room) len = room;
    if (len) memcpy(c->p + c->n, p, len);
    c->n += len;
    c->p[c->n] = '\0';
}

static void cause_u64(struct cause *c, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    cause_put(c, tmp, (size_t)n);
}

static void set_err(struct cn_store *s, struct cn_store_err *err, int ecode, const char *cause,
                    size_t len)
{
    struct cause c = {err->cause, 0, sizeof(err->cause)};
    err->ecode = ecode;
    err->index = s->index;
    err->cause[0] = '\0';
    cause_put(&c, cause, len);
}

static void clear_err(struct cn_store *s, struct cn_store_err *err)
{
    err->ecode = 0;
    err->cause[0] = '\0';
    err->index = s->index;
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* etcd's internalGet on a clean path: 100 with the first missing component's path, or 104 with
 * the path of the key that a component crosses. */
static struct node *lookup(struct cn_store *s, uint8_t ns, const char *path, size_t len,
                           struct cn_store_err *err)
{
    struct node *cur = s->root[ns];
    size_t i = 1;
    while (i < len) {
        size_t st = i;
        while (i < len && path[i] != '/')
            i++;
        if (!cur->is_dir) {
            if (err) set_err(s, err, CN_EC_NOT_DIR, path, st - 1);
            return NULL;
        }
        struct node *c = cn_store__avl_find(cur->kids, path + st, i - st);
        if (!c) {
            if (err) set_err(s, err, CN_EC_KEY_NOT_FOUND, path, i);
            return NULL;
        }
        cur = c;
        i++;
    }
    return cur;
}

static size_t last_slash(const char *path, size_t len)
{
    size_t i = len;
    while (i > 0 && path[i - 1] != '/')
        i--;
    return i - 1;
}

/* The directory holding the clean path's last component, owned with every node above it (the
 * path's directories must exist). */
static struct node *own_parent(struct cn_store *s, uint8_t ns, const char *path, size_t len)
{
    size_t ls = last_slash(path, len);
    struct node *d = cn_store__own(&s->root[ns]);
    size_t i = 1;
    while (i < ls) {
        size_t st = i;
        while (i < ls && path[i] != '/')
            i++;
        struct node **link = cn_store__avl_own(&d->kids, path + st, i - st);
        CN_ASSERT(link != NULL && (*link)->is_dir);
        d = *link;
        i++;
    }
    return d;
}

/* The node at an existing clean path, owned with every node above it. */
static struct node *own_path(struct cn_store *s, uint8_t ns, const char *path, size_t len)
{
    if (len == 1) return cn_store__own(&s->root[ns]);
    struct node *d = own_parent(s, ns, path, len);
    size_t ls = last_slash(path, len);
    struct node **link = cn_store__avl_own(&d->kids, path + ls + 1, len - ls - 1);
    CN_ASSERT(link != NULL);
    return *link;
}

static void attach(struct cn_store *s, struct node *d, struct node *n)
{
    cn_store__avl_insert(&d->kids, n);
    if (!n->is_dir) s->nkeys[n->ns]++;
    s->nnodes[n->ns]++;
}

/* Takes the node at an existing clean path out of the live tree and frees what only it held. */
static void remove_path(struct cn_store *s, uint8_t ns, const char *path, size_t len)
{
    struct node *d = own_parent(s, ns, path, len);
    size_t ls = last_slash(path, len);
    struct node *n = cn_store__avl_remove(&d->kids, path + ls + 1, len - ls - 1);
    CN_ASSERT(n != NULL);
    cn_store__forget(s, n);
    cn_store__node_unref(n);
}

/* A key's new value: n (owned) takes a reference to val and drops its old one. */
static void set_value(struct node *n, struct cn_store_val *val)
{
    cn_store__val_ref(val);
    cn_store__val_unref(n->val);
    n->val = val;
}

static int64_t norm_expire(int64_t expire_ns)
{
    /* etcd: instants before 2000-01-01 come from zero times serialised badly: no TTL */
    return expire_ns < STORE_MIN_EXPIRE_NS ? 0 : expire_ns;
}

/* Finishes a successful mutation: the event goes to history and watchers; the store keeps one
 * reference for the result (valid until the next apply). */
static void finish(struct cn_store *s, struct cn_store_event *ev, struct cn_store_result *res)
{
    res->ev = ev;
    s->last_ev = ev;
    cn_store__hub_publish(s, ev);
}

/* ---- create / set ------------------------------------------------------------------------- */

/* etcd's internalCreate on a clean path: auto-creates parent directories, replaces an existing
 * key when replace is set. val is the new key's value (borrowed; NULL: empty), unused for
 * directories. */
static struct cn_store_event *internal_create(struct cn_store *s, uint8_t ns, const char *path,
                                              size_t len, bool dir, struct cn_store_val *val,
                                              int64_t expire, bool replace, const char *action,
                                              struct cn_store_err *err)
{
    uint64_t next = s->index + 1;
    if (len == 1) {
        set_err(s, err, CN_EC_ROOT_RONLY, "/", 1);
        return NULL;
    }
    size_t ls = last_slash(path, len);
    const char *name = path + ls + 1;
    size_t nlen = len - ls - 1;
    /* check first, read-only: a failed create must not copy shared nodes */
    struct node *d = s->root[ns];
    size_t i = 1;
    while (i < ls && d) {
        size_t st = i;
        while (i < ls && path[i] != '/')
            i++;
        struct node *c = cn_store__avl_find(d->kids, path + st, i - st);
        if (c && !c->is_dir) {
            /* etcd counts a setsFail here on top of the operation's own failure counter */
            s->st.sets_fail++;
            set_err(s, err, CN_EC_NOT_DIR, path, i);
            return NULL;
        }
        d = c; /* NULL: the rest is missing, so nothing below can fail any more */
        i++;
    }
    struct node *old = d ? cn_store__avl_find(d->kids, name, nlen) : NULL;
    if (old && (!replace || old->is_dir)) {
        set_err(s, err, replace ? CN_EC_NOT_FILE : CN_EC_NODE_EXIST, path, len);
        return NULL;
    }
    struct store_node_spec spec = {
        .has_value = !dir,
        .val = dir ? NULL : val,
        .dir = dir,
        .expire_ns = expire,
        .modified_index = next,
        .created_index = next,
    };
    struct cn_store_event *ev = cn_store__event_new(ns, action, next, path, len, &spec, old);

    /* now own the path, creating the missing directories */
    d = cn_store__own(&s->root[ns]);
    i = 1;
    while (i < ls) {
        size_t st = i;
        while (i < ls && path[i] != '/')
            i++;
        struct node **link = cn_store__avl_own(&d->kids, path + st, i - st);
        if (link) {
            d = *link;
        } else {
            struct node *c = cn_store__node_new(path + st, i - st, true, NULL, ns);
            c->created_index = c->modified_index = next;
            attach(s, d, c);
            d = c;
        }
        i++;
    }
    if (old && !dir) {
        /* replacing a key by a key: recreate it in place (new createdIndex, as etcd) */
        struct node *n = *cn_store__avl_own(&d->kids, name, nlen);
        set_value(n, val);
        n->created_index = n->modified_index = next;
        cn_store__set_expire(s, n, path, len, expire);
    } else {
        if (old) {
            struct node *gone = cn_store__avl_remove(&d->kids, name, nlen);
            cn_store__forget(s, gone);
            cn_store__node_unref(gone);
        }
        struct node *n = cn_store__node_new(name, nlen, dir, dir ? NULL : val, ns);
        n->created_index = n->modified_index = next;
        attach(s, d, n);
        if (expire) cn_store__set_expire(s, n, path, len, expire);
    }
    s->index = next;
    return ev;
}

static void op_set(struct cn_store *s, const struct cn_store_cmd *c, struct cn_store_result *res)
{
    struct cn_store_err *err = &res->err;
    cn_store__clean_path(&s->path, c->key);
    const char *path = s->path.p;
    size_t len = s->path.len;
    struct node *n = lookup(s, c->ns, path, len, err);
    if (!n && err->ecode != CN_EC_KEY_NOT_FOUND) goto fail;
    struct cn_store_val *val;
    if (c->refresh) {
        if (!n) goto fail;
        /* keep the current value (shared, not copied) */
        val = n->is_dir ? NULL : cn_store__val_ref(n->val);
    } else {
        val = cn_store__val_new(c->value.p, c->value.len);
    }
    clear_err(s, err);
    struct cn_store_event *ev = internal_create(s, c->ns, path, len, c->dir, val,
                                                norm_expire(c->expire_ns), true, "set", err);
    cn_store__val_unref(val);
    if (!ev) goto fail;
    ev->refresh = c->refresh;
    s->st.sets_success++;
    finish(s, ev, res);
    return;
fail:
    s->st.sets_fail++;
}

static void op_create(struct cn_store *s, const struct cn_store_cmd *c, bool unique,
                      struct cn_store_result *res)
{
    cn_store__clean_path(&s->path, c->key);
    if (unique) {
        /* <dir>/<new index, 20 digits> */
        char seq[24];
        int n = snprintf(seq, sizeof(seq), "%020llu", (unsigned long long)(s->index + 1));
        if (s->path.len > 1) cn_buf_putc(&s->path, '/');
        cn_buf_append(&s->path, seq, (size_t)n);
    }
    struct cn_store_val *val = c->dir ? NULL : cn_store__val_new(c->value.p, c->value.len);
    struct cn_store_event *ev =
        internal_create(s, c->ns, s->path.p, s->path.len, c->dir, val, norm_expire(c->expire_ns),
                        false, "create", &res->err);
    cn_store__val_unref(val);
    if (!ev) {
        s->st.create_fail++;
        return;
    }
    s->st.create_success++;
    finish(s, ev, res);
}

/* ---- update / compare-and-swap ------------------------------------------------------------ */

/* The shared tail of update and compare-and-swap on the node n found at the clean path: a
 * key's value becomes val (borrowed), its modifiedIndex the next index, and the TTL expire. */
static struct cn_store_event *rewrite(struct cn_store *s, const struct cn_store_cmd *c,
                                      const char *action, const char *path, size_t len,
                                      const struct node *n, struct cn_store_val *val)
{
    uint64_t next = s->index + 1;
    int64_t expire = norm_expire(c->expire_ns);
    struct store_node_spec spec = {
        .has_value = !n->is_dir,
        .val = n->is_dir ? NULL : val,
        .dir = n->is_dir,
        .expire_ns = expire,
        .modified_index = next,
        .created_index = n->created_index,
    };
    struct cn_store_event *ev = cn_store__event_new(c->ns, action, next, path, len, &spec, n);
    struct node *w = own_path(s, c->ns, path, len);
    if (!w->is_dir) {
        set_value(w, val);
        w->modified_index = next;
    }
    /* a directory keeps its modifiedIndex (etcd's node.Write refuses dirs; spec §5 quirk) */
    cn_store__set_expire(s, w, path, len, expire);
    s->index = next;
    ev->refresh = c->refresh;
    return ev;
}

/* The value an update or compare-and-swap writes: the command's, or the node's own on a
 * refresh. One reference, the caller's. */
static struct cn_store_val *new_value(const struct cn_store_cmd *c, const struct node *n)
{
    if (n->is_dir) return NULL;
    if (c->refresh) return cn_store__val_ref(n->val);
    return cn_store__val_new(c->value.p, c->value.len);
}

static void op_update(struct cn_store *s, const struct cn_store_cmd *c, struct cn_store_result *res)
{
    struct cn_store_err *err = &res->err;
    cn_store__clean_path(&s->path, c->key);
    const char *path = s->path.p;
    size_t len = s->path.len;
    if (len == 1) {
        set_err(s, err, CN_EC_ROOT_RONLY, "/", 1);
        goto fail;
    }
    struct node *n = lookup(s, c->ns, path, len, err);
    if (!n) goto fail;
    if (n->is_dir && c->value.len) {
        set_err(s, err, CN_EC_NOT_FILE, path, len);
        goto fail;
    }
    struct cn_store_val *val = new_value(c, n);
    struct cn_store_event *ev = rewrite(s, c, "update", path, len, n, val);
    cn_store__val_unref(val);
    s->st.update_success++;
    finish(s, ev, res);
    return;
fail:
    s->st.update_fail++;
}

/* etcd's node.Compare plus getCompareFailCause. Returns true on match. */
static bool compare(struct cn_store *s, const struct node *n, const struct cn_store_cmd *c,
                    struct cn_store_err *err)
{
    const char *v = cn_store__node_cvalue(n);
    size_t vlen = cn_store__node_value_len(n);
    bool value_ok = !c->has_prev_value || (c->prev_value.len == vlen &&
                                           (vlen == 0 || memcmp(c->prev_value.p, v, vlen) == 0));
    bool index_ok = c->prev_index == 0 || c->prev_index == n->modified_index;
    if (value_ok && index_ok) return true;
    set_err(s, err, CN_EC_TEST_FAILED, "", 0);
    struct cause cs = {err->cause, 0, sizeof(err->cause)};
    if (!value_ok) {
        cause_put(&cs, "[", 1);
        cause_put(&cs, c->prev_value.p, c->prev_value.len);
        cause_put(&cs, " != ", 4);
        cause_put(&cs, v, vlen);
        cause_put(&cs, "]", 1);
    }
    if (!index_ok) {
        if (!value_ok) cause_put(&cs, " ", 1);
        cause_put(&cs, "[", 1);
        cause_u64(&cs, c->prev_index);
        cause_put(&cs, " != ", 4);
        cause_u64(&cs, n->modified_index);
        cause_put(&cs, "]", 1);
    }
    return false;
}

/* The key a compare-and-swap or compare-and-delete acts on, once its checks pass: not the root
 * (107; for CAD spec §3 says 107 where etcd 2.3 answers 102), existing, not a directory (102), and
 * matching prevValue/prevIndex (101). Leaves the cleaned path in s->path; NULL with err set. */
static struct node *compare_target(struct cn_store *s, const struct cn_store_cmd *c,
                                   struct cn_store_err *err)
{
    cn_store__clean_path(&s->path, c->key);
    const char *path = s->path.p;
    size_t len = s->path.len;
    if (len == 1) {
        set_err(s, err, CN_EC_ROOT_RONLY, "/", 1);
        return NULL;
    }
    struct node *n = lookup(s, c->ns, path, len, err);
    if (!n) return NULL;
    if (n->is_dir) {
        set_err(s, err, CN_EC_NOT_FILE, path, len);
        return NULL;
    }
    if (!compare(s, n, c, err)) return NULL;
    return n;
}

static void op_cas(struct cn_store *s, const struct cn_store_cmd *c, struct cn_store_result *res)
{
    struct node *n = compare_target(s, c, &res->err);
    if (!n) goto fail;
    struct cn_store_val *val = new_value(c, n);
    struct cn_store_event *ev = rewrite(s, c, "compareAndSwap", s->path.p, s->path.len, n, val);
    cn_store__val_unref(val);
    s->st.cas_success++;
    finish(s, ev, res);
    return;
fail:
    s->st.cas_fail++;
}

/* ---- delete / compare-and-delete ---------------------------------------------------------- */

static struct cn_store_event *remove_node(struct cn_store *s, uint8_t ns, const char *action,
                                          const char *path, size_t len, const struct node *n)
{
    uint64_t next = s->index + 1;
    struct store_node_spec spec = {
        .dir = n->is_dir,
        .modified_index = next,
        .created_index = n->created_index,
    };
    struct cn_store_event *ev = cn_store__event_new(ns, action, next, path, len, &spec, n);
    remove_path(s, ns, path, len);
    s->index = next;
    return ev;
}

static void op_delete(struct cn_store *s, const struct cn_store_cmd *c, struct cn_store_result *res)
{
    struct cn_store_err *err = &res->err;
    cn_store__clean_path(&s->path, c->key);
    const char *path = s->path.p;
    size_t len = s->path.len;
    if (len == 1) {
        set_err(s, err, CN_EC_ROOT_RONLY, "/", 1);
        goto fail;
    }
    bool dir = c->dir || c->recursive; /* recursive implies dir */
    struct node *n = lookup(s, c->ns, path, len, err);
    if (!n) goto fail;
    if (n->is_dir) {
        if (!dir) {
            set_err(s, err, CN_EC_NOT_FILE, path, len);
            goto fail;
        }
        if (n->kids && !c->recursive) {
            set_err(s, err, CN_EC_DIR_NOT_EMPTY, path, len);
            goto fail;
        }
    }
    struct cn_store_event *ev = remove_node(s, c->ns, "delete", path, len, n);
    s->st.delete_success++;
    finish(s, ev, res);
    return;
fail:
    s->st.delete_fail++;
}

static void op_cad(struct cn_store *s, const struct cn_store_cmd *c, struct cn_store_result *res)
{
    struct node *n = compare_target(s, c, &res->err);
    if (!n) goto fail;
    const char *path = s->path.p;
    size_t len = s->path.len;
    struct cn_store_event *ev = remove_node(s, c->ns, "compareAndDelete", path, len, n);
    s->st.cad_success++;
    finish(s, ev, res);
    return;
fail:
    s->st.cad_fail++;
}

/* ---- expiry ------------------------------------------------------------------------------- */

/* etcd's DeleteExpiredKeys: heap order, one index and one expire event per expired node; a
 * directory's subtree goes with it. */
static void op_sync(struct cn_store *s, int64_t now_ns, struct cn_store_result *res)
{
    while (s->heap_n && s->heap[0]->expire_ns <= now_ns) {
        const struct ttl *t = s->heap[0];
        uint8_t ns = t->ns;
        cn_buf_reset(&s->aux);
        cn_buf_append(&s->aux, t->path, t->path_len); /* t goes with the node */
        const struct node *n = lookup(s, ns, s->aux.p, s->aux.len, NULL);
        CN_ASSERT(n != NULL && n->ttl == t);
        struct cn_store_event *ev = remove_node(s, ns, "expire", s->aux.p, s->aux.len, n);
        s->st.expire_count++;
        res->nexpired++;
        cn_store__hub_publish(s, ev);
        cn_store_event_unref(ev); /* the history holds it */
    }
}

/* ---- apply -------------------------------------------------------------------------------- */

void cn_store_apply_cmd(struct cn_store *s, const struct cn_store_cmd *c,
                        struct cn_store_result *res)
{
    memset(res, 0, sizeof(*res));
    res->err.index = s->index;
    if (s->last_ev) {
        cn_store_event_unref(s->last_ev);
        s->last_ev = NULL;
    }
    CN_ASSERT(c->ns < CN_NS_COUNT);
    switch (c->op) {
    case CN_OP_SET:
        op_set(s, c, res);
        break;
    case CN_OP_CREATE:
        op_create(s, c, false, res);
        break;
    case CN_OP_CREATE_SEQ:
        op_create(s, c, true, res);
        break;
    case CN_OP_UPDATE:
        op_update(s, c, res);
        break;
    case CN_OP_CAS:
        op_cas(s, c, res);
        break;
    case CN_OP_DELETE:
        op_delete(s, c, res);
        break;
    case CN_OP_CAD:
        op_cad(s, c, res);
        break;
    case CN_OP_SYNC:
        op_sync(s, c->now_ns, res);
        break;
    case CN_OP_NOOP:
        break;
    default:
        cn_assert_fail("unknown store op", __FILE__, __LINE__);
    }
}

int cn_store_apply(struct cn_store *s, const void *cmd, size_t len, struct cn_store_result *res)
{
    struct cn_store_cmd c;
    int rc = cn_store_cmd_decode(cmd, len, &c);
    if (rc != 0) {
        memset(res, 0, sizeof(*res));
        res->err.index = s->index;
        return rc;
    }
    cn_store_apply_cmd(s, &c, res);
    return 0;
}

/* ---- reads -------------------------------------------------------------------------------- */

static inline void push_name(struct cn_buf *path, const struct node *n)
{
    cn_buf_putc(path, '/');
    cn_buf_append(path, cn_store__node_name(n), n->name_len);
}

/* Writes ,"nodes":[...] for top's visible children (whole subtree when recursive), iteratively
 * (paths can nest arbitrarily deep) with a stack of the directories being listed. path holds
 * top's path ("" for the root). */
static void json_children(struct cn_buf *b, struct cn_buf *path, const struct node *top,
                          bool recursive, int64_t now_ns)
{
    const struct node *cur = cn_store__first_visible(top);
    if (!cur) return;
    struct store_stack st = {0};
    const struct node *dir = top;
    size_t base = path->len;
    cn_buf_append(b, ",\"nodes\":[", 10);
    push_name(path, cur);
    for (;;) {
        cn_store__json_node_open(b, cur, path->p, path->len, now_ns);
        if (recursive && cur->is_dir) {
            const struct node *fc = cn_store__first_visible(cur);
            if (fc) {
                cn_buf_append(b, ",\"nodes\":[", 10);
                cn_store__stack_push(&st, dir);
                dir = cur;
                cur = fc;
                push_name(path, cur);
                continue;
            }
        }
        cn_store__json_node_close(b, cur);
        for (;;) {
            const struct node *nx = cn_store__next_visible(dir, cur);
            path->len -= 1 + cur->name_len;
            if (nx) {
                cn_buf_putc(b, ',');
                cur = nx;
                push_name(path, cur);
                break;
            }
            if (dir == top) goto done;
            cur = dir;
            dir = st.v[--st.n];
            cn_buf_putc(b, ']');
            cn_store__json_node_close(b, cur);
        }
    }
done:
    cn_buf_putc(b, ']');
    path->len = base;
    cn_store__stack_free(&st);
}

bool cn_store_get_json(struct cn_store *s, uint8_t ns, struct cn_str key, bool recursive,
                       bool sorted, int64_t now_ns, struct cn_buf *out, struct cn_store_err *err)
{
    (void)sorted; /* children are always in key order */
    CN_ASSERT(ns < CN_NS_COUNT);
    cn_store__clean_path(&s->aux, key);
    clear_err(s, err);
    struct node *n = lookup(s, ns, s->aux.p, s->aux.len, err);
    if (!n) {
        s->st.gets_fail++;
        return false;
    }
    s->st.gets_success++;
    if (n == s->root[ns]) cn_buf_reset(&s->aux); /* the root has no key */
    cn_buf_append(out, "{\"action\":\"get\",\"node\":", 23);
    cn_store__json_node_open(out, n, s->aux.p, s->aux.len, now_ns);
    if (n->is_dir) json_children(out, &s->aux, n, recursive, now_ns);
    cn_store__json_node_close(out, n);
    cn_buf_putc(out, '}');
    return true;
}

const char *cn_store_peek(struct cn_store *s, uint8_t ns, const char *key, size_t *len)
{
    CN_ASSERT(ns < CN_NS_COUNT);
    cn_store__clean_path(&s->aux, cn_str_c(key));
    struct node *n = lookup(s, ns, s->aux.p, s->aux.len, NULL);
    if (!n || n->is_dir) return NULL;
    if (len) *len = cn_store__node_value_len(n);
    return cn_store__node_cvalue(n);
}

void cn_store_each_child(struct cn_store *s, uint8_t ns, const char *dir,
                         void (*fn)(const char *key, const char *value, size_t value_len,
                                    bool is_dir, void *ctx),
                         void *ctx)
{
    CN_ASSERT(ns < CN_NS_COUNT);
    struct cn_buf path = CN_BUF_INIT; /* own buffer: fn may read the store */
    cn_store__clean_path(&path, cn_str_c(dir));
    struct node *d = lookup(s, ns, path.p, path.len, NULL);
    if (d && d->is_dir) {
        if (path.len == 1) path.len = 0;
        size_t base = path.len;
        for (struct node *c = cn_store__avl_first(d->kids); c; c = cn_store__next_sibling(d, c)) {
            path.len = base;
            push_name(&path, c);
            fn(path.p, c->is_dir ? NULL : cn_store__node_cvalue(c),
               c->is_dir ? 0 : cn_store__node_value_len(c), c->is_dir, ctx);
        }
    }
    cn_buf_free(&path);
}

/* ---- stats -------------------------------------------------------------------------------- */

void cn_store_get_stats(const struct cn_store *s, struct cn_store_stats *out)
{
    *out = s->st;
}

void cn_store_stats_json(const struct cn_store *s, struct cn_buf *out)
{
    const struct cn_store_stats *t = &s->st;
    cn_buf_appendf(out,
                   "{\"getsSuccess\":%llu,\"getsFail\":%llu,\"setsSuccess\":%llu,\"setsFail\":%llu,"
                   "\"deleteSuccess\":%llu,\"deleteFail\":%llu,\"updateSuccess\":%llu,"
                   "\"updateFail\":%llu,\"createSuccess\":%llu,\"createFail\":%llu,"
                   "\"compareAndSwapSuccess\":%llu,\"compareAndSwapFail\":%llu,"
                   "\"compareAndDeleteSuccess\":%llu,\"compareAndDeleteFail\":%llu,"
                   "\"expireCount\":%llu,\"watchers\":%llu}",
                   (unsigned long long)t->gets_success, (unsigned long long)t->gets_fail,
                   (unsigned long long)t->sets_success, (unsigned long long)t->sets_fail,
                   (unsigned long long)t->delete_success, (unsigned long long)t->delete_fail,
                   (unsigned long long)t->update_success, (unsigned long long)t->update_fail,
                   (unsigned long long)t->create_success, (unsigned long long)t->create_fail,
                   (unsigned long long)t->cas_success, (unsigned long long)t->cas_fail,
                   (unsigned long long)t->cad_success, (unsigned long long)t->cad_fail,
                   (unsigned long long)t->expire_count, (unsigned long long)s->hub.count);
}
