/* envelope: the node's own byte formats, pure and bounded (fuzz/envelope drives them): the
 * entry envelope that names a request's origin, the PROP/PROP_FAIL frames of forwarded
 * proposals, and the framing of a node snapshot around the state machine's bytes. */
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "node_int.h"

void cn_node__env_header(struct cn_buf *b, uint64_t origin, uint64_t seq)
{
    cn_buf_put_u8(b, CN_NODE__ENV_VERSION);
    cn_buf_put_uvarint(b, origin);
    cn_buf_put_uvarint(b, seq);
}

bool cn_node__env_decode(const void *p, size_t len, uint64_t *origin, uint64_t *seq,
                         const uint8_t **rest, size_t *rest_len)
{
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    uint8_t v = cn_rd_u8(&r);
    *origin = cn_rd_uvarint(&r);
    *seq = cn_rd_uvarint(&r);
    if (!cn_rd_ok(&r) || v != CN_NODE__ENV_VERSION) return false;
    *rest_len = cn_rd_left(&r);
    *rest = (const uint8_t *)p + (len - *rest_len);
    return true;
}

void cn_node__prop_encode(struct cn_buf *b, uint64_t seq, uint8_t kind)
{
    cn_buf_put_uvarint(b, seq);
    cn_buf_put_u8(b, kind);
}

bool cn_node__prop_decode(const void *p, size_t len, uint64_t *seq, uint8_t *kind,
                          const uint8_t **body, size_t *body_len)
{
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    *seq = cn_rd_uvarint(&r);
    *kind = cn_rd_u8(&r);
    if (!cn_rd_ok(&r) || *kind > CN_NODE__K_CONF) return false;
    *body_len = cn_rd_left(&r);
    *body = (const uint8_t *)p + (len - *body_len);
    return true;
}

void cn_node__prop_fail_encode(struct cn_buf *b, uint64_t seq, int rc)
{
    cn_buf_put_uvarint(b, seq);
    cn_buf_put_u32(b, (uint32_t)rc);
}

bool cn_node__prop_fail_decode(const void *p, size_t len, uint64_t *seq, int *rc)
{
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    *seq = cn_rd_uvarint(&r);
    uint32_t v = cn_rd_u32(&r);
    /* the code travels as its two's complement bits */
    memcpy(rc, &v, sizeof(*rc));
    return cn_rd_ok(&r) && *rc < 0;
}

static void conf_encode(struct cn_buf *b, const struct cn_raft_conf *c)
{
    cn_buf_put_u32(b, c->n_voters);
    for (uint32_t i = 0; i < c->n_voters; i++)
        cn_buf_put_u64(b, c->voters[i]);
    cn_buf_put_u32(b, c->n_learners);
    for (uint32_t i = 0; i < c->n_learners; i++)
        cn_buf_put_u64(b, c->learners[i]);
}

void cn_node__snap_header(struct cn_buf *b, const struct cn_raft_conf *conf)
{
    cn_buf_append(b, CN_NODE__SNAP_MAGIC, 4);
    cn_buf_put_u8(b, CN_NODE__SNAP_VERSION);
    conf_encode(b, conf);
}

int cn_node__snap_decode(const void *p, size_t len, struct cn_raft_conf *conf, const void **fsm,
                         size_t *fsm_len)
{
    memset(conf, 0, sizeof(*conf));
    if (len < 5 || memcmp(p, CN_NODE__SNAP_MAGIC, 4) != 0) return CN_ERR_CORRUPT;
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    r.off = 4;
    if (cn_rd_u8(&r) != CN_NODE__SNAP_VERSION) return CN_ERR_VERSION;
    conf->n_voters = cn_rd_u32(&r);
    if (conf->n_voters > CN_RAFT_MAX_MEMBERS) return CN_ERR_CORRUPT;
    for (uint32_t i = 0; i < conf->n_voters; i++)
        conf->voters[i] = cn_rd_u64(&r);
    conf->n_learners = cn_rd_u32(&r);
    if (conf->n_learners > CN_RAFT_MAX_MEMBERS) return CN_ERR_CORRUPT;
    for (uint32_t i = 0; i < conf->n_learners; i++)
        conf->learners[i] = cn_rd_u64(&r);
    if (!cn_rd_ok(&r)) return CN_ERR_CORRUPT;
    *fsm_len = cn_rd_left(&r);
    *fsm = (const uint8_t *)p + (len - *fsm_len);
    return 0;
}
