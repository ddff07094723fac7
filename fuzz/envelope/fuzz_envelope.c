/* libFuzzer target for the bytes a member takes from its peers and its log: the node's entry
 * envelope, the PROP / PROP_FAIL frames of forwarded proposals, the node snapshot's framing
 * (src/node/envelope.c), and Raft's message and configuration-change codecs (src/raft). Every
 * decode must stay inside the input, and whatever decodes must encode back to the same bytes.
 *
 * Input: one selector byte, then the bytes for that decoder. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fuzz.h"
#include "node/node_int.h"

static void envelope(const uint8_t *p, size_t n)
{
    uint64_t origin, seq;
    const uint8_t *rest;
    size_t rest_len;
    if (!cn_node__env_decode(p, n, &origin, &seq, &rest, &rest_len)) return;
    CHECK(rest >= p && rest + rest_len == p + n);
    struct cn_buf b = CN_BUF_INIT;
    cn_node__env_header(&b, origin, seq);
    cn_buf_append(&b, rest, rest_len);
    /* uvarints have one shortest form; a longer one decodes to the same numbers */
    uint64_t o2, s2;
    const uint8_t *r2;
    size_t l2;
    CHECK(cn_node__env_decode(b.p, b.len, &o2, &s2, &r2, &l2));
    CHECK(o2 == origin && s2 == seq && l2 == rest_len && memcmp(r2, rest, l2) == 0);
    cn_buf_free(&b);
}

static void prop(const uint8_t *p, size_t n)
{
    uint64_t seq;
    uint8_t kind;
    const uint8_t *body;
    size_t body_len;
    if (cn_node__prop_decode(p, n, &seq, &kind, &body, &body_len)) {
        CHECK(kind == CN_NODE__K_NORMAL || kind == CN_NODE__K_CONF);
        CHECK(body >= p && body + body_len == p + n);
        struct cn_buf b = CN_BUF_INIT;
        cn_node__prop_encode(&b, seq, kind);
        uint64_t s2;
        uint8_t k2;
        const uint8_t *b2;
        size_t l2;
        CHECK(cn_node__prop_decode(b.p, b.len, &s2, &k2, &b2, &l2));
        CHECK(s2 == seq && k2 == kind && l2 == 0);
        cn_buf_free(&b);
    }
    int rc;
    if (cn_node__prop_fail_decode(p, n, &seq, &rc)) {
        CHECK(rc < 0);
        struct cn_buf b = CN_BUF_INIT;
        cn_node__prop_fail_encode(&b, seq, rc);
        uint64_t s2;
        int rc2;
        CHECK(cn_node__prop_fail_decode(b.p, b.len, &s2, &rc2) && s2 == seq && rc2 == rc);
        cn_buf_free(&b);
    }
}

static void snapshot(const uint8_t *p, size_t n)
{
    struct cn_raft_conf conf;
    const void *fsm;
    size_t fsm_len;
    if (cn_node__snap_decode(p, n, &conf, &fsm, &fsm_len) != 0) return;
    CHECK(conf.n_voters <= CN_RAFT_MAX_MEMBERS && conf.n_learners <= CN_RAFT_MAX_MEMBERS);
    CHECK((const uint8_t *)fsm + fsm_len == p + n);
    struct cn_buf b = CN_BUF_INIT;
    cn_node__snap_header(&b, &conf);
    cn_buf_append(&b, fsm, fsm_len);
    CHECK(b.len == n && memcmp(b.p, p, n) == 0); /* fixed-width fields: exactly the input */
    cn_buf_free(&b);
}

static void raft_msg(const uint8_t *p, size_t n)
{
    struct cn_raft_msg m;
    struct cn_raft_entry *ents = NULL;
    if (cn_raft_msg_decode(p, n, &m, &ents) != 0) {
        CHECK(ents == NULL);
        return;
    }
    for (size_t i = 0; i < m.n_entries; i++)
        CHECK(m.entries[i].len == 0 ||
              ((const uint8_t *)m.entries[i].data >= p &&
               (const uint8_t *)m.entries[i].data + m.entries[i].len <= p + n));
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(&m, &b);
    struct cn_raft_msg m2;
    struct cn_raft_entry *e2 = NULL;
    CHECK(cn_raft_msg_decode(b.p, b.len, &m2, &e2) == 0);
    CHECK(m2.type == m.type && m2.from == m.from && m2.to == m.to && m2.term == m.term &&
          m2.index == m.index && m2.commit == m.commit && m2.n_entries == m.n_entries &&
          m2.snap_len == m.snap_len);
    for (size_t i = 0; i < m.n_entries; i++)
        CHECK(m2.entries[i].index == m.entries[i].index && m2.entries[i].len == m.entries[i].len &&
              (m.entries[i].len == 0 ||
               memcmp(m2.entries[i].data, m.entries[i].data, m.entries[i].len) == 0));
    cn_free(e2);
    cn_free(ents);
    cn_buf_free(&b);
}

static void conf_change(const uint8_t *p, size_t n)
{
    struct cn_raft_conf_change cc;
    if (cn_raft_conf_change_decode(p, n, &cc) != 0) return;
    CHECK(cc.ctx_len == 0 ||
          ((const uint8_t *)cc.ctx >= p && (const uint8_t *)cc.ctx + cc.ctx_len <= p + n));
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_conf_change_encode(&cc, &b);
    struct cn_raft_conf_change c2;
    CHECK(cn_raft_conf_change_decode(b.p, b.len, &c2) == 0);
    CHECK(c2.op == cc.op && c2.id == cc.id && c2.ctx_len == cc.ctx_len);
    /* a committed change that does not fit is ignored: the configuration stays as it was */
    struct cn_raft_conf conf = {1, 0, {1}, {0}}, before = conf;
    if (cn_raft_conf_apply(&conf, &cc) != 0) CHECK(memcmp(&conf, &before, sizeof(conf)) == 0);
    cn_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    /* a copy of exactly n bytes, so that a read past the end is a sanitizer report */
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy != NULL);
    memcpy(copy, p, n);
    switch (data[0] % 5) {
    case 0:
        envelope(copy, n);
        break;
    case 1:
        prop(copy, n);
        break;
    case 2:
        snapshot(copy, n);
        break;
    case 3:
        raft_msg(copy, n);
        break;
    default:
        conf_change(copy, n);
        break;
    }
    free(copy);
    return 0;
}
