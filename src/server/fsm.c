/* fsm: the member's one state machine, both key spaces in one log, as etcd 3.4 keeps them (the
 * v2 store and the v3 MVCC space are separate: a write to one neither shows in the other nor
 * moves its revision, but both ride the same Raft log, WAL and snapshots).
 *
 * Commands: the first byte says whose it is. A v2 command starts with its version byte (1, the
 * store's codec); a v3 command starts with CN_FSM_V3_TAG. Membership changes and their member
 * records belong to the v2 part (the records live under /0/members as in etcd).
 *
 * Snapshot, version 1:
 *   "CNFS" u32 version=1 u64 v2_len u64 v3_len u32 crc32(v2 bytes, v3 bytes) v2 bytes v3 bytes
 * A snapshot that starts with the v2 store's own magic ("CNSS", written before v3 existed) is a
 * v2 snapshot with an empty v3 space. */
#include "fsm.h"

#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#define SNAP_MAGIC   "CNFS"
#define SNAP_VERSION 1
#define SNAP_HEAD    (4 + 4 + 8 + 8 + 4)

static struct cn_fsm_both *of(struct cn_fsm *fsm)
{
    return fsm->data;
}

static bool is_v3(const void *cmd, size_t len)
{
    return len > 0 && ((const uint8_t *)cmd)[0] == CN_FSM_V3_TAG;
}

static int apply(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                 struct cn_fsm_out *out)
{
    struct cn_fsm_both *f = of(fsm);
    struct cn_fsm *part = is_v3(cmd, len) ? f->v3 : f->v2;
    return part->apply(part, index, cmd, len, out);
}

static void apply_conf(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                       const void *records, size_t len, struct cn_fsm_out *out)
{
    struct cn_fsm_both *f = of(fsm);
    f->v2->apply_conf(f->v2, index, op, id, records, len, out);
}

static uint32_t crc_of(const void *p, size_t len, uint32_t crc)
{
    const Bytef *b = p;
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = (uint32_t)crc32(crc, b, n);
        b += n;
        len -= n;
    }
    return crc;
}

/* Writes the header in front of the two parts, which out holds from start on. */
static void seal(struct cn_buf *out, size_t start, size_t v2_len)
{
    size_t body = start + SNAP_HEAD;
    size_t v3_len = out->len - body - v2_len;
    uint32_t crc = crc_of(out->p + body, v2_len + v3_len, (uint32_t)crc32(0L, Z_NULL, 0));
    struct cn_buf h = CN_BUF_INIT;
    cn_buf_append(&h, SNAP_MAGIC, 4);
    cn_buf_put_u32(&h, SNAP_VERSION);
    cn_buf_put_u64(&h, v2_len);
    cn_buf_put_u64(&h, v3_len);
    cn_buf_put_u32(&h, crc);
    CN_ASSERT(h.len == SNAP_HEAD);
    memcpy(out->p + start, h.p, SNAP_HEAD);
    cn_buf_free(&h);
}

static void reserve_head(struct cn_buf *out)
{
    static const char zero[SNAP_HEAD];
    cn_buf_append(out, zero, sizeof(zero));
}

static void snapshot(struct cn_fsm *fsm, struct cn_buf *out)
{
    struct cn_fsm_both *f = of(fsm);
    size_t start = out->len;
    reserve_head(out);
    f->v2->snapshot(f->v2, out);
    size_t v2_len = out->len - start - SNAP_HEAD;
    f->v3->snapshot(f->v3, out);
    seal(out, start, v2_len);
}

/* The state as of a freeze: each part's frozen state, or, for a part that cannot freeze, its
 * encoding taken at the freeze (on the loop). */
struct frozen_part {
    struct cn_fsm *fsm;
    void *frozen;
    struct cn_buf bytes;
};

struct frozen {
    struct frozen_part part[2];
};

static void freeze_part(struct frozen_part *p, struct cn_fsm *fsm)
{
    p->fsm = fsm;
    p->bytes = (struct cn_buf)CN_BUF_INIT;
    if (fsm->freeze) {
        p->frozen = fsm->freeze(fsm);
    } else {
        p->frozen = NULL;
        fsm->snapshot(fsm, &p->bytes);
    }
}

static void encode_part(struct frozen_part *p, struct cn_buf *out)
{
    if (p->fsm->freeze)
        p->fsm->encode(p->frozen, out);
    else
        cn_buf_append(out, p->bytes.p, p->bytes.len);
}

static void *freeze(struct cn_fsm *fsm)
{
    struct cn_fsm_both *f = of(fsm);
    struct frozen *z = cn_xcalloc(1, sizeof(*z));
    freeze_part(&z->part[0], f->v2);
    freeze_part(&z->part[1], f->v3);
    return z;
}

/* On a worker thread: touches only the frozen parts. */
static void encode(void *frozen, struct cn_buf *out)
{
    struct frozen *z = frozen;
    size_t start = out->len;
    reserve_head(out);
    encode_part(&z->part[0], out);
    size_t v2_len = out->len - start - SNAP_HEAD;
    encode_part(&z->part[1], out);
    seal(out, start, v2_len);
}

static void thaw(struct cn_fsm *fsm, void *frozen)
{
    (void)fsm;
    struct frozen *z = frozen;
    for (int i = 0; i < 2; i++) {
        struct frozen_part *p = &z->part[i];
        if (p->fsm->freeze) p->fsm->thaw(p->fsm, p->frozen);
        cn_buf_free(&p->bytes);
    }
    cn_free(z);
}

/* Both parts are checked (the checksum over both) before either is replaced; a part that still
 * fails to load after that (a format this build cannot read) fails the restore, and the v3 part
 * goes first so that a v2 failure is the only way to leave the parts apart (logged). */
static int restore(struct cn_fsm *fsm, const void *p, size_t len)
{
    struct cn_fsm_both *f = of(fsm);
    if (len >= 4 && memcmp(p, "CNSS", 4) == 0) {
        /* a snapshot from before v3: the v2 store alone */
        int rc = f->v2->restore(f->v2, p, len);
        if (rc == 0) rc = f->v3->restore(f->v3, NULL, 0);
        return rc;
    }
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    const void *magic = cn_rd_raw(&r, 4);
    uint32_t version = cn_rd_u32(&r);
    uint64_t v2_len = cn_rd_u64(&r);
    uint64_t v3_len = cn_rd_u64(&r);
    uint32_t crc = cn_rd_u32(&r);
    if (!cn_rd_ok(&r) || memcmp(magic, SNAP_MAGIC, 4) != 0) return CN_ERR_CORRUPT;
    if (version != SNAP_VERSION) return CN_ERR_VERSION;
    if (v2_len > cn_rd_left(&r) || v3_len != cn_rd_left(&r) - v2_len) return CN_ERR_CORRUPT;
    const uint8_t *body = (const uint8_t *)p + SNAP_HEAD;
    if (crc_of(body, (size_t)(v2_len + v3_len), (uint32_t)crc32(0L, Z_NULL, 0)) != crc)
        return CN_ERR_CORRUPT;
    int rc = f->v3->restore(f->v3, body + v2_len, (size_t)v3_len);
    if (rc != 0) return rc;
    rc = f->v2->restore(f->v2, body, (size_t)v2_len);
    if (rc != 0)
        CN_LOGE("fsm", "the v2 part of a snapshot did not load after its v3 part did (rc=%d)", rc);
    return rc;
}

static bool peer_url(struct cn_fsm *fsm, uint64_t id, char *url, size_t len)
{
    struct cn_fsm *v2 = of(fsm)->v2;
    return v2->peer_url(v2, id, url, len);
}

static bool is_removed(struct cn_fsm *fsm, uint64_t id)
{
    struct cn_fsm *v2 = of(fsm)->v2;
    return v2->is_removed(v2, id);
}

static void records_join(struct cn_fsm *fsm, const struct cn_node_member *m, struct cn_buf *out)
{
    struct cn_fsm *v2 = of(fsm)->v2;
    v2->records_join(v2, m, out);
}

static void records_remove(struct cn_fsm *fsm, uint64_t id, struct cn_buf *out)
{
    struct cn_fsm *v2 = of(fsm)->v2;
    v2->records_remove(v2, id, out);
}

void cn_fsm_both_init(struct cn_fsm_both *f, struct cn_fsm *v2, struct cn_fsm *v3)
{
    memset(f, 0, sizeof(*f));
    f->v2 = v2;
    f->v3 = v3;
    f->fsm = (struct cn_fsm){
        .data = f,
        .apply = apply,
        .apply_conf = apply_conf,
        .snapshot = snapshot,
        .freeze = freeze,
        .encode = encode,
        .thaw = thaw,
        .restore = restore,
        .peer_url = peer_url,
        .is_removed = is_removed,
        .records_join = records_join,
        .records_remove = records_remove,
    };
}
