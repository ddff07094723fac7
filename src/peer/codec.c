/* codec: the peer wire format (peer.h) as pure functions: the hello line, frames and chunk
 * reassembly. No I/O and no allocation beyond the caller's buffers, so the fuzz target and the
 * unit tests run exactly what the transport runs on network bytes. */
#include <string.h>
#include <zlib.h>

#include "common/err.h"
#include "peer_int.h"

/* ---- hello ----------------------------------------------------------------------------------- */

#define HEX_MAX 16 /* digits of a u64 */

void cn_peer__hello_put(struct cn_buf *b, const struct cn_peer__hello *h)
{
    cn_buf_appendf(b, "CNPEER/1 cluster=%llx from=%llx to=%llx\n",
                   (unsigned long long)h->cluster_id, (unsigned long long)h->from,
                   (unsigned long long)h->to);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cn_peer__hello_parse(const void *buf, size_t len, struct cn_peer__hello *out)
{
    /* what comes before each of the three numbers */
    static const struct {
        const char *p;
        size_t len;
    } lit[3] = {{"CNPEER/1 cluster=", 17}, {" from=", 6}, {" to=", 4}};
    const char *p = buf;
    uint64_t v[3];
    size_t i = 0;
    for (size_t f = 0; f < 3; f++) {
        for (size_t k = 0; k < lit[f].len; k++, i++) {
            if (i == len) return 0;
            if (p[i] != lit[f].p[k]) return CN_ERR_PARSE;
        }
        uint64_t x = 0;
        size_t digits = 0;
        for (;; i++) {
            if (i == len) return 0;
            int d = hex_digit(p[i]);
            if (d < 0) break;
            if (++digits > HEX_MAX) return CN_ERR_PARSE;
            x = x << 4 | (uint64_t)d;
        }
        if (digits == 0) return CN_ERR_PARSE;
        v[f] = x;
    }
    /* p[i] is the byte that ended the last number */
    if (p[i] != '\n') return CN_ERR_PARSE;
    out->cluster_id = v[0];
    out->from = v[1];
    out->to = v[2];
    return (int)(i + 1);
}

/* ---- frames ---------------------------------------------------------------------------------- */

/* crc32 (zlib's polynomial) of kind, then hdr, then p: what a frame's checksum covers. */
static uint32_t frame_crc(uint8_t kind, const void *hdr, size_t hlen, const void *p, size_t len)
{
    uLong crc = crc32_z(0L, &kind, 1);
    if (hlen) crc = crc32_z(crc, hdr, hlen);
    if (len) crc = crc32_z(crc, p, len);
    return (uint32_t)crc;
}

static void put_frame(struct cn_buf *b, uint8_t kind, const void *hdr, size_t hlen, const void *p,
                      size_t len)
{
    cn_buf_put_u32(b, (uint32_t)(hlen + len));
    cn_buf_put_u32(b, frame_crc(kind, hdr, hlen, p, len));
    cn_buf_put_u8(b, kind);
    cn_buf_append(b, hdr, hlen);
    cn_buf_append(b, p, len);
}

static void put_le64(uint8_t *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

void cn_peer__encode(struct cn_buf *b, uint8_t kind, const void *p, size_t len)
{
    if (len <= CN_PEER_CHUNK) {
        cn_buf_reserve(b, CN_PEER__FRAME_HEADER + len);
        put_frame(b, kind, NULL, 0, p, len);
        return;
    }
    size_t nchunks = (len + CN_PEER_CHUNK - 1) / CN_PEER_CHUNK;
    cn_buf_reserve(b, len + nchunks * (CN_PEER__FRAME_HEADER + CN_PEER__CHUNK_HEADER));
    const uint8_t *bytes = p;
    for (size_t off = 0; off < len; off += CN_PEER_CHUNK) {
        size_t n = len - off < CN_PEER_CHUNK ? len - off : CN_PEER_CHUNK;
        uint8_t h[CN_PEER__CHUNK_HEADER];
        put_le64(h, len);
        put_le64(h + 8, off);
        h[16] = kind;
        put_frame(b, CN_PEER_KIND_CHUNK, h, sizeof(h), bytes + off, n);
    }
}

int cn_peer__frame_decode(const void *p, size_t len, struct cn_peer__frame *out, size_t *want)
{
    if (len < CN_PEER__FRAME_HEADER) {
        if (want) *want = CN_PEER__FRAME_HEADER;
        return 0;
    }
    struct cn_rd r;
    cn_rd_init(&r, p, CN_PEER__FRAME_HEADER);
    uint32_t n = cn_rd_u32(&r), crc = cn_rd_u32(&r);
    uint8_t kind = cn_rd_u8(&r);
    if (n > CN_PEER_MAX_FRAME) return CN_ERR_TOO_LARGE;
    size_t total = CN_PEER__FRAME_HEADER + (size_t)n;
    if (len < total) {
        if (want) *want = total;
        return 0;
    }
    const uint8_t *payload = (const uint8_t *)p + CN_PEER__FRAME_HEADER;
    if (frame_crc(kind, NULL, 0, payload, n) != crc) return CN_ERR_CORRUPT;
    out->kind = kind;
    out->p = payload;
    out->len = n;
    return (int)total; /* at most CN_PEER_MAX_FRAME + 9 */
}

/* ---- chunk reassembly ------------------------------------------------------------------------ */

int cn_peer__asm_feed(struct cn_peer__asm *a, const struct cn_peer__frame *f,
                      cn_peer__payload_cb cb, void *ctx)
{
    if (f->kind != CN_PEER_KIND_CHUNK) {
        cb(ctx, f->kind, f->p, f->len);
        return 0;
    }
    struct cn_rd r;
    cn_rd_init(&r, f->p, f->len);
    uint64_t total = cn_rd_u64(&r), off = cn_rd_u64(&r);
    uint8_t inner = cn_rd_u8(&r);
    size_t n = cn_rd_left(&r);
    /* off equals the bytes held (<= CN_PEER_MAX_MESSAGE), so off + n cannot overflow */
    if (!cn_rd_ok(&r) || total > CN_PEER_MAX_MESSAGE || off != a->buf.len || off + n > total ||
        (off > 0 && (total != a->total || inner != a->kind)))
        return CN_ERR_CORRUPT;
    if (off == 0) {
        a->total = total;
        a->kind = inner;
    }
    cn_buf_append(&a->buf, f->p + (f->len - n), n);
    if (a->buf.len == total) {
        struct cn_buf done = a->buf;
        cn_buf_init(&a->buf);
        cb(ctx, inner, done.p, done.len);
        cn_buf_free(&done);
    }
    return 0;
}

void cn_peer__asm_free(struct cn_peer__asm *a)
{
    cn_buf_free(&a->buf);
}
