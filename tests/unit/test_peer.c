/* Unit tests for src/peer: the pure codec (hello line, frames, chunk reassembly) on exact
 * bytes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "peer/peer.h"
#include "peer/peer_int.h"

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + seed);
}

/* ---- codec: hello ---------------------------------------------------------------------------- */

static void hello_parser(void **state)
{
    (void)state;
    struct cn_peer__hello h;
    static const char ok[] = "CNPEER/1 cluster=abcdef0123456789 from=1 to=FfFf\nrest";
    size_t line = sizeof("CNPEER/1 cluster=abcdef0123456789 from=1 to=FfFf\n") - 1;
    assert_int_equal(cn_peer__hello_parse(ok, sizeof(ok) - 1, &h), (int)line);
    assert_true(h.cluster_id == 0xabcdef0123456789u);
    assert_int_equal(h.from, 1);
    assert_int_equal(h.to, 0xffff);
    /* every proper prefix needs more */
    for (size_t n = 0; n < line; n++)
        assert_int_equal(cn_peer__hello_parse(ok, n, &h), 0);
    /* what cannot become a hello fails at once, however short */
    static const char *const bad[] = {
        "X",
        "CNPEER/2",
        "CNPEER/1 cluster=\n",
        "CNPEER/1 cluster=g",
        "CNPEER/1 cluster=1 from=2 to=3 \n",
        "CNPEER/1 cluster=1 from=2 to=3\r\n",
        "CNPEER/1 cluster=1  from=2 to=3\n",
        "CNPEER/1 cluster=1 from=-2 to=3\n",
        "CNPEER/1 cluster=0x1 from=2 to=3\n",
        "CNPEER/1 cluster=11111111111111111 from=2 to=3\n", /* 17 digits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cn_peer__hello_parse(bad[i], strlen(bad[i]), &h), CN_ERR_PARSE);
    /* the longest hello is CN_PEER__HELLO_MAX bytes, and it round-trips */
    struct cn_buf b = CN_BUF_INIT;
    struct cn_peer__hello max = {UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 2};
    cn_peer__hello_put(&b, &max);
    assert_int_equal(b.len, CN_PEER__HELLO_MAX);
    assert_int_equal(cn_peer__hello_parse(b.p, b.len, &h), (int)CN_PEER__HELLO_MAX);
    assert_true(h.cluster_id == max.cluster_id && h.from == max.from && h.to == max.to);
    cn_buf_reset(&b);
    cn_peer__hello_put(&b, &(struct cn_peer__hello){0, 0, 0});
    assert_string_equal(b.p, "CNPEER/1 cluster=0 from=0 to=0\n");
    cn_buf_free(&b);
}

/* ---- codec: frames and chunks ---------------------------------------------------------------- */

struct got {
    int n;
    uint8_t kind;
    struct cn_buf data;
};

static void got_payload(void *ctx, uint8_t kind, const void *p, size_t len)
{
    struct got *g = ctx;
    g->n++;
    g->kind = kind;
    cn_buf_reset(&g->data);
    cn_buf_append(&g->data, p, len);
}

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void frame_parser(void **state)
{
    (void)state;
    struct cn_buf b = CN_BUF_INIT;
    cn_peer__encode(&b, CN_PEER_KIND_PROP, "abc", 3);
    assert_int_equal(b.len, CN_PEER__FRAME_HEADER + 3);
    struct cn_peer__frame f;
    size_t want = 0;
    /* partial: the header first, then the whole frame is asked for */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(cn_peer__frame_decode(b.p, n, &f, &want), 0);
        assert_int_equal(want, n < CN_PEER__FRAME_HEADER ? CN_PEER__FRAME_HEADER : b.len);
    }
    assert_int_equal(cn_peer__frame_decode(b.p, b.len, &f, &want), (int)b.len);
    assert_int_equal(f.kind, CN_PEER_KIND_PROP);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.p, "abc", 3);
    /* bad crc: a flipped payload byte, a changed kind, a changed checksum */
    for (size_t at = 4; at < b.len; at++) {
        b.p[at] ^= 0x40;
        assert_int_equal(cn_peer__frame_decode(b.p, b.len, &f, &want), CN_ERR_CORRUPT);
        b.p[at] ^= 0x40;
    }
    /* oversize length: refused from the header alone */
    uint8_t hdr[CN_PEER__FRAME_HEADER] = {0};
    put_u32le(hdr, CN_PEER_MAX_FRAME + 1);
    assert_int_equal(cn_peer__frame_decode(hdr, sizeof(hdr), &f, &want), CN_ERR_TOO_LARGE);
    put_u32le(hdr, UINT32_MAX);
    assert_int_equal(cn_peer__frame_decode(hdr, sizeof(hdr), &f, &want), CN_ERR_TOO_LARGE);
    put_u32le(hdr, CN_PEER_MAX_FRAME);
    assert_int_equal(cn_peer__frame_decode(hdr, sizeof(hdr), &f, &want), 0);
    assert_int_equal(want, CN_PEER__FRAME_HEADER + CN_PEER_MAX_FRAME);

    /* a non-chunk frame is a payload of its own */
    struct cn_peer__asm a = {0};
    struct got g = {0};
    assert_int_equal(cn_peer__frame_decode(b.p, b.len, &f, &want), (int)b.len);
    assert_int_equal(cn_peer__asm_feed(&a, &f, got_payload, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.kind, CN_PEER_KIND_PROP);
    assert_memory_equal(g.data.p, "abc", 3);

    /* chunked: 2.5 chunks in three frames, reassembled into one payload */
    size_t big_len = 2 * (size_t)CN_PEER_CHUNK + CN_PEER_CHUNK / 2;
    uint8_t *big = cn_xmalloc(big_len);
    fill(big, big_len, 3);
    cn_buf_reset(&b);
    cn_peer__encode(&b, CN_PEER_KIND_RAFT, big, big_len);
    assert_int_equal(b.len, big_len + 3 * (CN_PEER__FRAME_HEADER + CN_PEER__CHUNK_HEADER));
    size_t off = 0;
    int nframes = 0;
    while (off < b.len) {
        int rc = cn_peer__frame_decode(b.p + off, b.len - off, &f, &want);
        assert_true(rc > 0);
        assert_int_equal(f.kind, CN_PEER_KIND_CHUNK);
        assert_true(f.len <= CN_PEER_MAX_FRAME);
        assert_int_equal(g.n, 1); /* nothing before the last chunk */
        assert_int_equal(cn_peer__asm_feed(&a, &f, got_payload, &g), 0);
        off += (size_t)rc;
        nframes++;
    }
    assert_int_equal(nframes, 3);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.kind, CN_PEER_KIND_RAFT);
    assert_int_equal(g.data.len, big_len);
    assert_memory_equal(g.data.p, big, big_len);
    assert_int_equal(a.buf.len, 0); /* released once delivered */

    /* a chunk out of order (the second first) is corrupt */
    int rc1 = cn_peer__frame_decode(b.p, b.len, &f, &want);
    assert_true(rc1 > 0);
    assert_int_equal(cn_peer__frame_decode(b.p + rc1, b.len - (size_t)rc1, &f, &want) > 0, 1);
    assert_int_equal(cn_peer__asm_feed(&a, &f, got_payload, &g), CN_ERR_CORRUPT);
    cn_peer__asm_free(&a);
    /* a chunk whose header is too short, or whose total is over the cap */
    struct cn_peer__asm a2 = {0};
    uint8_t ch[CN_PEER__CHUNK_HEADER] = {0};
    f = (struct cn_peer__frame){CN_PEER_KIND_CHUNK, ch, CN_PEER__CHUNK_HEADER - 1};
    assert_int_equal(cn_peer__asm_feed(&a2, &f, got_payload, &g), CN_ERR_CORRUPT);
    uint64_t over = (uint64_t)CN_PEER_MAX_MESSAGE + 1;
    for (int i = 0; i < 8; i++)
        ch[i] = (uint8_t)(over >> (8 * i));
    f.len = CN_PEER__CHUNK_HEADER;
    assert_int_equal(cn_peer__asm_feed(&a2, &f, got_payload, &g), CN_ERR_CORRUPT);
    cn_peer__asm_free(&a2);
    assert_int_equal(g.n, 2);
    cn_free(big);
    cn_buf_free(&g.data);
    cn_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_parser),
        cmocka_unit_test(frame_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
