/* libFuzzer target for the peer wire format (src/peer/codec.c), as an acceptor runs it on the
 * bytes of a connection: the hello line, then frames and chunk reassembly. It also checks
 * properties: a parsed hello prints and parses back to the same ids, the parsers stay within
 * their bounds, and any input encodes to a frame that decodes to it. Pure code only. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "peer/peer_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void payload(void *ctx, uint8_t kind, const void *p, size_t len)
{
    (void)kind;
    uint64_t *sum = ctx;
    const uint8_t *b = p;
    if (len > 0) *sum += (uint64_t)b[0] + b[len - 1]; /* the sanitizers check the borrowed bytes */
}

static void check_hello(const uint8_t *data, size_t size, int rc, const struct cn_peer__hello *h)
{
    if (rc > (int)CN_PEER__HELLO_MAX) abort();
    if (rc == 0 && size >= CN_PEER__HELLO_MAX) abort(); /* it never waits past the longest line */
    if (rc <= 0) return;
    if (data[rc - 1] != '\n') abort();
    struct cn_buf b = CN_BUF_INIT;
    cn_peer__hello_put(&b, h);
    struct cn_peer__hello back;
    if (cn_peer__hello_parse(b.p, b.len, &back) != (int)b.len || back.cluster_id != h->cluster_id ||
        back.from != h->from || back.to != h->to)
        abort();
    cn_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    struct cn_peer__hello h;
    int rc = cn_peer__hello_parse(data, size, &h);
    check_hello(data, size, rc, &h);

    /* the frames after the hello (from the start when there is none) */
    size_t off = rc > 0 ? (size_t)rc : 0;
    struct cn_peer__asm a = {0};
    uint64_t sum = 0;
    while (off < size) {
        struct cn_peer__frame f;
        size_t want = 0;
        int n = cn_peer__frame_decode(data + off, size - off, &f, &want);
        if (n == 0) {
            if (want <= size - off) abort(); /* asked for no more than it had */
            break;
        }
        if (n < 0) break;
        if ((size_t)n > size - off || f.len + CN_PEER__FRAME_HEADER != (size_t)n) abort();
        off += (size_t)n;
        if (cn_peer__asm_feed(&a, &f, payload, &sum) != 0) break;
    }
    cn_peer__asm_free(&a);

    /* round trip: the rest of the input as a payload of kind data[0] */
    if (size > 0) {
        struct cn_buf b = CN_BUF_INIT;
        cn_peer__encode(&b, data[0], data + 1, size - 1);
        struct cn_peer__frame f;
        if (cn_peer__frame_decode(b.p, b.len, &f, NULL) != (int)b.len || f.kind != data[0] ||
            f.len != size - 1 || memcmp(f.p, data + 1, size - 1) != 0)
            abort();
        cn_buf_free(&b);
    }
    return 0;
}
