/* store codecs: the replicated command format and the snapshot format. Both are versioned,
 * little-endian, and decoded through cn_rd, which never trusts a length.
 *
 * Command, version 1:
 *   u8 version=1, u8 op, u8 ns, u8 flags, bytes key,
 *   [bytes value]      flags & CMD_VALUE (non-empty value)
 *   [bytes prev_value] flags & CMD_PREV_VALUE
 *   [uvarint prev_index] flags & CMD_PREV_INDEX (non-zero)
 *   [i64 expire_ns]    flags & CMD_EXPIRE (non-zero)
 *   i64 now_ns
 * The encoding is canonical: a set flag with a zero/empty field is rejected.
 *
 * Snapshot, version 1:
 *   "CNSS" u32 version=1 u64 payload_len u32 crc32(payload) payload
 *   payload: u64 index, then per namespace (0..2): uvarint count, count node records in
 *   pre-order with children in name order:
 *     uvarint depth (children of the root are 1), u8 flags (1 dir, 2 ttl), bytes name,
 *     uvarint created, uvarint modified, [i64 expire], [bytes value] (keys)
 *   then uvarint nevents and the history, oldest first:
 *     u8 ns, u8 action, u8 flags (1 refresh, 2 has prev), uvarint index, bytes key,
 *     node copy, [prev copy]; a copy is u8 flags (1 dir, 2 value, 4 ttl), uvarint modified,
 *     uvarint created, [i64 expire], [bytes value]
 * Stats and watchers are member-local and not part of it. */
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "store_int.h"

#define CMD_VERSION 1

#define CMD_DIR        0x01
#define CMD_RECURSIVE  0x02
#define CMD_REFRESH    0x04
#define CMD_PREV_VALUE 0x08
#define CMD_VALUE      0x10
#define CMD_PREV_INDEX 0x20
#define CMD_EXPIRE     0x40

static uint8_t cmd_flags(const struct cn_store_cmd *c)
{
    uint8_t f = 0;
    if (c->dir) f |= CMD_DIR;
    if (c->recursive) f |= CMD_RECURSIVE;
    if (c->refresh) f |= CMD_REFRESH;
    if (c->has_prev_value) f |= CMD_PREV_VALUE;
    if (c->value.len) f |= CMD_VALUE;
    if (c->prev_index) f |= CMD_PREV_INDEX;
    if (c->expire_ns) f |= CMD_EXPIRE;
    return f;
}

size_t cn_store_cmd_encoded_len(const struct cn_store_cmd *c)
{
    uint8_t f = cmd_flags(c);
    size_t n = 4 + cn_uvarint_len(c->key.len) + c->key.len + 8;
    if (f & CMD_VALUE) n += cn_uvarint_len(c->value.len) + c->value.len;
    if (f & CMD_PREV_VALUE) n += cn_uvarint_len(c->prev_value.len) + c->prev_value.len;
    if (f & CMD_PREV_INDEX) n += cn_uvarint_len(c->prev_index);
    if (f & CMD_EXPIRE) n += 8;
    return n;
}

char *cn_store_cmd_encode_hole(const struct cn_store_cmd *c, struct cn_buf *out)
{
    uint8_t f = cmd_flags(c);
    cn_buf_reserve(out, cn_store_cmd_encoded_len(c)); /* one allocation at most, exact fit */
    cn_buf_put_u8(out, CMD_VERSION);
    cn_buf_put_u8(out, c->op);
    cn_buf_put_u8(out, c->ns);
    cn_buf_put_u8(out, f);
    cn_buf_put_bytes(out, c->key.p, c->key.len);
    char *hole = NULL;
    if (f & CMD_VALUE) {
        cn_buf_put_uvarint(out, c->value.len);
        hole = out->p + out->len;
        if (c->value.p) memcpy(hole, c->value.p, c->value.len);
        out->len += c->value.len;
    }
    if (f & CMD_PREV_VALUE) cn_buf_put_bytes(out, c->prev_value.p, c->prev_value.len);
    if (f & CMD_PREV_INDEX) cn_buf_put_uvarint(out, c->prev_index);
    if (f & CMD_EXPIRE) cn_buf_put_i64(out, c->expire_ns);
    cn_buf_put_i64(out, c->now_ns);
    return hole;
}

void cn_store_cmd_encode(const struct cn_store_cmd *c, struct cn_buf *out)
{
    (void)cn_store_cmd_encode_hole(c, out); /* with c->value.p set, the value is in place */
}

int cn_store_cmd_decode(const void *p, size_t len, struct cn_store_cmd *c)
{
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    memset(c, 0, sizeof(*c));
    uint8_t v = cn_rd_u8(&r);
    if (!cn_rd_ok(&r)) return CN_ERR_CORRUPT;
    if (v != CMD_VERSION) return CN_ERR_VERSION;
    c->op = cn_rd_u8(&r);
    c->ns = cn_rd_u8(&r);
    uint8_t f = cn_rd_u8(&r);
    if (!cn_rd_ok(&r) || c->op < CN_OP_SET || c->op > CN_OP_NOOP || c->ns >= CN_NS_COUNT ||
        (f & 0x80))
        return CN_ERR_CORRUPT;
    c->dir = f & CMD_DIR;
    c->recursive = f & CMD_RECURSIVE;
    c->refresh = f & CMD_REFRESH;
    c->has_prev_value = f & CMD_PREV_VALUE;
    c->key = cn_rd_bytes(&r);
    if (f & CMD_VALUE) {
        c->value = cn_rd_bytes(&r);
        if (c->value.len == 0) return CN_ERR_CORRUPT;
    }
    if (f & CMD_PREV_VALUE) c->prev_value = cn_rd_bytes(&r);
    if (f & CMD_PREV_INDEX) {
        c->prev_index = cn_rd_uvarint(&r);
        if (c->prev_index == 0) return CN_ERR_CORRUPT;
    }
    if (f & CMD_EXPIRE) {
        c->expire_ns = cn_rd_i64(&r);
        if (c->expire_ns == 0) return CN_ERR_CORRUPT;
    }
    c->now_ns = cn_rd_i64(&r);
    if (!cn_rd_ok(&r) || cn_rd_left(&r) != 0) return CN_ERR_CORRUPT;
    if (c->key.len > UINT32_MAX || c->value.len > UINT32_MAX) return CN_ERR_CORRUPT;
    return 0;
}

/* ---- snapshot ----------------------------------------------------------------------------- */

#define SNAP_MAGIC   "CNSS"
#define SNAP_VERSION 1
#define SNAP_HDR_LEN (4 + 4 + 8 + 4)

#define NF_DIR 0x01
#define NF_TTL 0x02

#define CF_DIR   0x01
#define CF_VALUE 0x02
#define CF_TTL   0x04

#define EF_REFRESH  0x01
#define EF_HAS_PREV 0x02

static uint32_t crc32_buf(const void *p, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const Bytef *b = p;
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, b, n);
        b += n;
        len -= n;
    }
    return (uint32_t)crc;
}

/* Pre-order, children in name order, iteratively with a stack of the directories above. */
static void save_tree(const struct node *root, uint64_t count, struct cn_buf *out)
{
    cn_buf_put_uvarint(out, count);
    uint64_t written = 0;
    struct store_stack st = {0};
    const struct node *dir = root;
    const struct node *n = cn_store__avl_first(root->kids);
    while (n) {
        uint8_t f = (n->is_dir ? NF_DIR : 0) | (n->expire_ns ? NF_TTL : 0);
        cn_buf_put_uvarint(out, st.n + 1);
        cn_buf_put_u8(out, f);
        cn_buf_put_bytes(out, n->name, n->name_len);
        cn_buf_put_uvarint(out, n->created_index);
        cn_buf_put_uvarint(out, n->modified_index);
        if (f & NF_TTL) cn_buf_put_i64(out, n->expire_ns);
        if (!n->is_dir)
            cn_buf_put_bytes(out, cn_store__node_cvalue(n), cn_store__node_value_len(n));
        written++;
        if (n->is_dir && n->kids) {
            cn_store__stack_push(&st, dir);
            dir = n;
            n = cn_store__avl_first(n->kids);
            continue;
        }
        for (;;) {
            const struct node *nx = cn_store__next_sibling(dir, n);
            if (nx) {
                n = nx;
                break;
            }
            if (dir == root) {
                n = NULL;
                break;
            }
            n = dir;
            dir = st.v[--st.n];
        }
    }
    cn_store__stack_free(&st);
    /* the count leads the records (a reader knows where the tree ends); it is kept by every
     * mutation, so a mismatch is a bug that would write a snapshot nobody can load */
    CN_ASSERT(written == count);
}

static void save_copy(const struct cn_store_node_copy *c, struct cn_buf *out)
{
    uint8_t f = (c->dir ? CF_DIR : 0) | (c->value ? CF_VALUE : 0) | (c->expire_ns ? CF_TTL : 0);
    cn_buf_put_u8(out, f);
    cn_buf_put_uvarint(out, c->modified_index);
    cn_buf_put_uvarint(out, c->created_index);
    if (f & CF_TTL) cn_buf_put_i64(out, c->expire_ns);
    if (f & CF_VALUE) cn_buf_put_bytes(out, c->value, c->value_len);
}

struct cn_store_frozen *cn_store_freeze(struct cn_store *s)
{
    struct cn_store_frozen *f = CN_NEW(struct cn_store_frozen);
    f->index = s->index;
    for (int ns = 0; ns < CN_NS_COUNT; ns++) {
        f->root[ns] = s->root[ns];
        f->root[ns]->refs++; /* from now on the live tree copies before it writes */
        f->nnodes[ns] = s->nnodes[ns];
    }
    f->hist_n = s->hist_n;
    for (size_t i = 0; i < s->hist_n; i++) {
        f->hist[i] = s->hist[(s->hist_head + i) % STORE_HIST_CAP];
        cn_store_event_ref(f->hist[i]);
    }
    return f;
}

void cn_store_frozen_free(struct cn_store_frozen *f)
{
    if (!f) return;
    for (int ns = 0; ns < CN_NS_COUNT; ns++)
        cn_store__node_unref(f->root[ns]);
    for (size_t i = 0; i < f->hist_n; i++)
        cn_store_event_unref(f->hist[i]);
    cn_free(f);
}

void cn_store_frozen_encode(const struct cn_store_frozen *f, struct cn_buf *out)
{
    size_t hdr = out->len;
    cn_buf_append(out, SNAP_MAGIC, 4);
    cn_buf_put_u32(out, SNAP_VERSION);
    cn_buf_put_u64(out, 0); /* payload length, patched below */
    cn_buf_put_u32(out, 0); /* crc, patched below */
    size_t start = out->len;
    cn_buf_put_u64(out, f->index);
    for (int ns = 0; ns < CN_NS_COUNT; ns++)
        save_tree(f->root[ns], f->nnodes[ns], out);
    cn_buf_put_uvarint(out, f->hist_n);
    for (size_t i = 0; i < f->hist_n; i++) {
        const struct cn_store_event *ev = f->hist[i];
        cn_buf_put_u8(out, ev->ns);
        cn_buf_put_u8(out, (uint8_t)cn_store__action_code(ev->action));
        cn_buf_put_u8(out,
                      (uint8_t)((ev->refresh ? EF_REFRESH : 0) | (ev->has_prev ? EF_HAS_PREV : 0)));
        cn_buf_put_uvarint(out, ev->index);
        cn_buf_put_bytes(out, ev->node.key, ev->node.key_len);
        save_copy(&ev->node, out);
        if (ev->has_prev) save_copy(&ev->prev, out);
    }
    uint64_t plen = out->len - start;
    uint32_t crc = crc32_buf(out->p + start, plen);
    /* patch the header fields in place, little-endian */
    unsigned char *h = (unsigned char *)out->p + hdr + 8;
    for (int i = 0; i < 8; i++)
        h[i] = (unsigned char)(plen >> (8 * i));
    for (int i = 0; i < 4; i++)
        h[8 + i] = (unsigned char)(crc >> (8 * i));
}

void cn_store_snapshot_save(struct cn_store *s, struct cn_buf *out)
{
    struct cn_store_frozen *f = cn_store_freeze(s);
    cn_store_frozen_encode(f, out);
    cn_store_frozen_free(f);
}

static bool valid_name(struct cn_str n)
{
    if (n.len == 0 || memchr(n.p, '/', n.len)) return false;
    if ((n.len == 1 && n.p[0] == '.') || (n.len == 2 && n.p[0] == '.' && n.p[1] == '.'))
        return false;
    return true;
}

/* Loads one namespace tree into t (a fresh store, whose nodes are all its own). Returns false
 * on any inconsistency. */
static bool load_tree(struct cn_store *t, uint8_t ns, struct cn_rd *r)
{
    struct node *root = t->root[ns];
    /* the directories above the next record, and the length of their paths in t->path */
    struct store_stack st = {0};
    struct cn_buf *path = &t->path;
    size_t *plens = NULL, plens_cap = 0;
    struct node *dir = root, *last = NULL;
    bool ok = true;
    cn_buf_reset(path);
    uint64_t count = cn_rd_uvarint(r);
    for (uint64_t i = 0; ok && i < count; i++) {
        uint64_t depth = cn_rd_uvarint(r);
        uint8_t f = cn_rd_u8(r);
        struct cn_str name = cn_rd_bytes(r);
        uint64_t created = cn_rd_uvarint(r);
        uint64_t modified = cn_rd_uvarint(r);
        int64_t expire = (f & NF_TTL) ? cn_rd_i64(r) : 0;
        struct cn_str value = CN_STR_NULL;
        if (!(f & NF_DIR)) value = cn_rd_bytes(r);
        if (!cn_rd_ok(r) || (f & ~(NF_DIR | NF_TTL)) || depth < 1 || depth > st.n + 1 ||
            !valid_name(name) || name.len >= UINT32_MAX || value.len >= UINT32_MAX ||
            created > t->index || modified > t->index ||
            ((f & NF_TTL) && expire < STORE_MIN_EXPIRE_NS)) {
            ok = false;
            break;
        }
        while (st.n + 1 > depth) {
            last = dir;
            dir = (struct node *)st.v[--st.n];
            path->len = plens[st.n];
        }
        /* siblings strictly in name order: the encoding is canonical */
        if (last && cn_store__name_cmp(name.p, name.len, last) <= 0) {
            ok = false;
            break;
        }
        struct cn_store_val *val = (f & NF_DIR) ? NULL : cn_store__val_new(value.p, value.len);
        struct node *n = cn_store__node_new(name.p, name.len, f & NF_DIR, val, ns);
        cn_store__val_unref(val);
        n->created_index = created;
        n->modified_index = modified;
        cn_store__avl_insert(&dir->kids, n);
        if (!n->is_dir) t->nkeys[ns]++;
        t->nnodes[ns]++;
        size_t plen = path->len;
        cn_buf_putc(path, '/');
        cn_buf_append(path, name.p, name.len);
        if (expire) cn_store__set_expire(t, n, path->p, path->len, expire);
        last = n;
        if (n->is_dir) {
            if (st.n == plens_cap) {
                plens_cap = plens_cap ? plens_cap * 2 : 16;
                plens = cn_xrealloc(plens, plens_cap * sizeof(*plens));
            }
            plens[st.n] = plen;
            cn_store__stack_push(&st, dir);
            dir = n;
            last = NULL;
        } else {
            path->len = plen;
        }
    }
    cn_store__stack_free(&st);
    cn_free(plens);
    return ok;
}

static bool load_copy(struct cn_rd *r, struct store_node_spec *sp, uint64_t max_index)
{
    uint8_t f = cn_rd_u8(r);
    memset(sp, 0, sizeof(*sp));
    sp->dir = f & CF_DIR;
    sp->modified_index = cn_rd_uvarint(r);
    sp->created_index = cn_rd_uvarint(r);
    if (f & CF_TTL) {
        sp->expire_ns = cn_rd_i64(r);
        if (sp->expire_ns == 0) return false;
    }
    if (f & CF_VALUE) {
        struct cn_str v = cn_rd_bytes(r);
        sp->has_value = true;
        sp->value = v.p;
        sp->value_len = v.len;
    }
    return cn_rd_ok(r) && !(f & ~(CF_DIR | CF_VALUE | CF_TTL)) && sp->modified_index <= max_index &&
           sp->created_index <= max_index;
}

static bool load_history(struct cn_store *t, struct cn_rd *r)
{
    uint64_t n = cn_rd_uvarint(r);
    if (!cn_rd_ok(r) || n > STORE_HIST_CAP) return false;
    uint64_t prev_index = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t ns = cn_rd_u8(r);
        const char *action = cn_store__action_name(cn_rd_u8(r));
        uint8_t f = cn_rd_u8(r);
        uint64_t index = cn_rd_uvarint(r);
        struct cn_str key = cn_rd_bytes(r);
        struct store_node_spec node, prev;
        if (!cn_rd_ok(r) || ns >= CN_NS_COUNT || !action || (f & ~(EF_REFRESH | EF_HAS_PREV)) ||
            index <= prev_index || index > t->index || key.len < 2 || key.p[0] != '/')
            return false;
        if (!load_copy(r, &node, t->index)) return false;
        if ((f & EF_HAS_PREV) && !load_copy(r, &prev, t->index)) return false;
        struct cn_store_event *ev = cn_store__event_alloc(ns, action, index, key.p, key.len, &node,
                                                          (f & EF_HAS_PREV) ? &prev : NULL);
        ev->refresh = f & EF_REFRESH;
        t->hist[t->hist_n++] = ev; /* takes the creation ref */
        prev_index = index;
    }
    return true;
}

int cn_store_snapshot_load(struct cn_store *s, const void *p, size_t len)
{
    CN_ASSERT(s->hub.depth == 0); /* not from inside a watch callback */
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    const void *magic = cn_rd_raw(&r, 4);
    uint32_t version = cn_rd_u32(&r);
    uint64_t plen = cn_rd_u64(&r);
    uint32_t crc = cn_rd_u32(&r);
    if (!cn_rd_ok(&r) || memcmp(magic, SNAP_MAGIC, 4) != 0) return CN_ERR_CORRUPT;
    if (version != SNAP_VERSION) return CN_ERR_VERSION;
    if (plen != cn_rd_left(&r)) return CN_ERR_CORRUPT;
    const void *payload = cn_rd_raw(&r, (size_t)plen);
    if (crc32_buf(payload, (size_t)plen) != crc) return CN_ERR_CORRUPT;

    struct cn_store *t = cn_store_new();
    struct cn_rd pr;
    cn_rd_init(&pr, payload, (size_t)plen);
    t->index = cn_rd_u64(&pr);
    bool ok = cn_rd_ok(&pr);
    for (int ns = 0; ok && ns < CN_NS_COUNT; ns++)
        ok = load_tree(t, (uint8_t)ns, &pr);
    ok = ok && load_history(t, &pr) && cn_rd_ok(&pr) && cn_rd_left(&pr) == 0;
    if (!ok) {
        cn_store_free(t);
        return CN_ERR_CORRUPT;
    }

    /* swap the state in; t takes the old state away and frees it */
    struct node *roots[CN_NS_COUNT];
    memcpy(roots, s->root, sizeof(roots));
    memcpy(s->root, t->root, sizeof(roots));
    memcpy(t->root, roots, sizeof(roots));
    memcpy(s->nkeys, t->nkeys, sizeof(s->nkeys));
    memcpy(s->nnodes, t->nnodes, sizeof(s->nnodes));
    struct ttl **heap = s->heap;
    size_t heap_n = s->heap_n, heap_cap = s->heap_cap;
    s->heap = t->heap;
    s->heap_n = t->heap_n;
    s->heap_cap = t->heap_cap;
    t->heap = heap;
    t->heap_n = heap_n;
    t->heap_cap = heap_cap;
    cn_store__hist_clear(s);
    memcpy(s->hist, t->hist, sizeof(s->hist));
    s->hist_head = t->hist_head;
    s->hist_n = t->hist_n;
    t->hist_head = t->hist_n = 0;
    s->index = t->index;
    cn_store_event_unref(s->last_ev);
    s->last_ev = NULL;
    cn_store_free(t);

    cn_store__hub_end_all(s, true);
    return 0;
}
