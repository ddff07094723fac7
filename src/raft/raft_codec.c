/* raft_codec: the wire format of raft messages and conf-change entries. Compact (uvarints),
 * versioned (a leading version byte), decoded with a bounded reader: a corrupt length never
 * causes a large allocation, and every field is range-checked.
 *
 *   message := version(u8=1) type(u8) flags(u8) to from term log_term index commit hint ctx
 *              n_entries {term index type(u8) bytes}*  [SNAP: snap_index snap_term
 *              n_voters voter* n_learners learner* bytes]          (integers are uvarints)
 *   conf change := version(u8=1) op(u8) id */
#include "common/alloc.h"
#include "common/err.h"
#include "raft_int.h"

#define MSG_VERSION  1
#define CONF_VERSION 1

const char *cn_raft_msg_type_name(uint8_t type)
{
    static const char *names[] = {
        "?",           "app",          "app-resp",        "vote",           "vote-resp",
        "prevote",     "prevote-resp", "heartbeat",       "heartbeat-resp", "snap",
        "timeout-now", "read-index",   "read-index-resp", "removed",
    };
    return type <= CN_RAFT_MSG_TYPE_MAX ? names[type] : "?";
}

void cn_raft_msg_encode(const struct cn_raft_msg *m, struct cn_buf *out)
{
    cn_buf_put_u8(out, MSG_VERSION);
    cn_buf_put_u8(out, m->type);
    cn_buf_put_u8(out, m->flags);
    cn_buf_put_uvarint(out, m->to);
    cn_buf_put_uvarint(out, m->from);
    cn_buf_put_uvarint(out, m->term);
    cn_buf_put_uvarint(out, m->log_term);
    cn_buf_put_uvarint(out, m->index);
    cn_buf_put_uvarint(out, m->commit);
    cn_buf_put_uvarint(out, m->hint);
    cn_buf_put_uvarint(out, m->ctx);
    cn_buf_put_uvarint(out, m->n_entries);
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct cn_raft_entry *e = &m->entries[i];
        cn_buf_put_uvarint(out, e->term);
        cn_buf_put_uvarint(out, e->index);
        cn_buf_put_u8(out, e->type);
        cn_buf_put_bytes(out, e->data, e->len);
    }
    if (m->type == CN_RAFT_MSG_SNAP) {
        const struct cn_raft_snapshot_meta *s = &m->snap;
        cn_buf_put_uvarint(out, s->index);
        cn_buf_put_uvarint(out, s->term);
        cn_buf_put_uvarint(out, s->conf.n_voters);
        for (uint32_t i = 0; i < s->conf.n_voters; i++)
            cn_buf_put_uvarint(out, s->conf.voters[i]);
        cn_buf_put_uvarint(out, s->conf.n_learners);
        for (uint32_t i = 0; i < s->conf.n_learners; i++)
            cn_buf_put_uvarint(out, s->conf.learners[i]);
        cn_buf_put_bytes(out, m->snap_data, m->snap_len);
    }
}

static int read_ids(struct cn_rd *rd, uint64_t *ids, uint32_t *n)
{
    uint64_t k = cn_rd_uvarint(rd);
    if (k > CN_RAFT_MAX_MEMBERS) return CN_ERR_CORRUPT;
    for (uint64_t i = 0; i < k; i++)
        ids[i] = cn_rd_uvarint(rd);
    *n = (uint32_t)k;
    return cn_rd_ok(rd) ? 0 : CN_ERR_CORRUPT;
}

int cn_raft_msg_decode(const void *p, size_t len, struct cn_raft_msg *m,
                       struct cn_raft_entry **ents)
{
    struct cn_rd rd;
    cn_rd_init(&rd, p, len);
    memset(m, 0, sizeof(*m));
    *ents = NULL;
    uint8_t version = cn_rd_u8(&rd);
    if (!cn_rd_ok(&rd)) return CN_ERR_CORRUPT;
    if (version != MSG_VERSION) return CN_ERR_VERSION;
    m->type = cn_rd_u8(&rd);
    m->flags = cn_rd_u8(&rd);
    m->to = cn_rd_uvarint(&rd);
    m->from = cn_rd_uvarint(&rd);
    m->term = cn_rd_uvarint(&rd);
    m->log_term = cn_rd_uvarint(&rd);
    m->index = cn_rd_uvarint(&rd);
    m->commit = cn_rd_uvarint(&rd);
    m->hint = cn_rd_uvarint(&rd);
    m->ctx = cn_rd_uvarint(&rd);
    uint64_t n = cn_rd_uvarint(&rd);
    if (!cn_rd_ok(&rd)) return CN_ERR_CORRUPT;
    if (m->type < CN_RAFT_MSG_APP || m->type > CN_RAFT_MSG_TYPE_MAX) return CN_ERR_CORRUPT;
    /* each entry takes at least 4 bytes: bound the array by what is left */
    if (n > cn_rd_left(&rd) / 4) return CN_ERR_CORRUPT;
    struct cn_raft_entry *e = NULL;
    if (n > 0) {
        e = cn_xcalloc((size_t)n, sizeof(*e));
        for (size_t i = 0; i < n; i++) {
            e[i].term = cn_rd_uvarint(&rd);
            e[i].index = cn_rd_uvarint(&rd);
            e[i].type = cn_rd_u8(&rd);
            struct cn_str b = cn_rd_bytes(&rd);
            e[i].data = (void *)(uintptr_t)b.p;
            e[i].len = b.len;
            if (e[i].type > CN_RAFT_ENTRY_CONF) rd.err = true;
            if (b.len == 0) e[i].data = NULL;
        }
    }
    if (m->type == CN_RAFT_MSG_SNAP) {
        m->snap.index = cn_rd_uvarint(&rd);
        m->snap.term = cn_rd_uvarint(&rd);
        if (read_ids(&rd, m->snap.conf.voters, &m->snap.conf.n_voters) != 0 ||
            read_ids(&rd, m->snap.conf.learners, &m->snap.conf.n_learners) != 0)
            rd.err = true;
        struct cn_str b = cn_rd_bytes(&rd);
        m->snap_data = b.len ? b.p : NULL;
        m->snap_len = b.len;
    }
    if (!cn_rd_ok(&rd) || cn_rd_left(&rd) != 0) {
        cn_free(e);
        memset(m, 0, sizeof(*m));
        return CN_ERR_CORRUPT;
    }
    m->entries = e;
    m->n_entries = (size_t)n;
    *ents = e;
    return 0;
}

void cn_raft_conf_change_encode(const struct cn_raft_conf_change *cc, struct cn_buf *out)
{
    cn_buf_put_u8(out, CONF_VERSION);
    cn_buf_put_u8(out, cc->op);
    cn_buf_put_uvarint(out, cc->id);
    if (cc->ctx_len) cn_buf_append(out, cc->ctx, cc->ctx_len);
}

int cn_raft_conf_change_decode(const void *p, size_t len, struct cn_raft_conf_change *cc)
{
    struct cn_rd rd;
    cn_rd_init(&rd, p, len);
    uint8_t version = cn_rd_u8(&rd);
    if (!cn_rd_ok(&rd)) return CN_ERR_CORRUPT;
    if (version != CONF_VERSION) return CN_ERR_VERSION;
    cc->op = cn_rd_u8(&rd);
    cc->id = cn_rd_uvarint(&rd);
    if (!cn_rd_ok(&rd)) return CN_ERR_CORRUPT;
    cc->ctx_len = cn_rd_left(&rd);
    cc->ctx = cc->ctx_len ? (const uint8_t *)p + (len - cc->ctx_len) : NULL;
    if (cc->op < CN_RAFT_CONF_ADD_LEARNER || cc->op > CN_RAFT_CONF_ADD_VOTER) return CN_ERR_CORRUPT;
    return 0;
}
