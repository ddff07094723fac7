/* peer_int: the peer wire format as pure functions (codec.c): the hello line and the frames of
 * peer.h, encoded and decoded without I/O, so that the unit tests and the fuzz target
 * (fuzz/peer) drive exactly what the transport runs on network bytes. Private to src/peer. */
#ifndef CN_PEER_PEER_INT_H
#define CN_PEER_PEER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "peer.h"

#define CN_PEER__FRAME_HEADER 9u  /* u32 len | u32 crc | u8 kind */
#define CN_PEER__CHUNK_HEADER 17u /* u64 total | u64 offset | u8 kind */
#define CN_PEER__HELLO_MAX    76u /* the longest hello line, its '\n' included */

/* The line an acceptor answers a removed member with (then it closes). */
#define CN_PEER__REMOVED     "CNPEER/1 removed\n"
#define CN_PEER__REMOVED_LEN (sizeof(CN_PEER__REMOVED) - 1)

struct cn_peer__hello {
    uint64_t cluster_id, from, to;
};

/* Appends "CNPEER/1 cluster=<hex> from=<hex> to=<hex>\n" (lower-case hex, no leading zeros). */
void cn_peer__hello_put(struct cn_buf *b, const struct cn_peer__hello *h);

/* Parses a hello line at the start of p[0..len). Strict: exactly the form above, each number
 * 1 to 16 hex digits (either case), the line ended by '\n'. Returns the bytes the line took
 * (> 0, at most CN_PEER__HELLO_MAX) with *out filled; 0 when the bytes so far are a proper
 * beginning of a hello and more are needed; CN_ERR_PARSE as soon as they cannot be one. Reads
 * at most CN_PEER__HELLO_MAX bytes of p; never needs p to be NUL-terminated. */
int cn_peer__hello_parse(const void *p, size_t len, struct cn_peer__hello *out);

/* One decoded frame; p borrows the input of cn_peer__frame_decode. */
struct cn_peer__frame {
    uint8_t kind;
    const uint8_t *p;
    size_t len;
};

/* Appends the frames of one payload: a single frame when len <= CN_PEER_CHUNK, else
 * CN_PEER_KIND_CHUNK frames of at most CN_PEER_CHUNK bytes each (peer.h). The caller checks
 * len <= CN_PEER_MAX_MESSAGE. */
void cn_peer__encode(struct cn_buf *b, uint8_t kind, const void *p, size_t len);

/* Decodes the frame at the start of p[0..len). Returns the bytes it took (> 0) with *out
 * pointing into p; 0 when more bytes are needed, *want then being the size of the whole frame
 * (CN_PEER__FRAME_HEADER while the header itself is incomplete); CN_ERR_TOO_LARGE for a length
 * over CN_PEER_MAX_FRAME (known from the header alone, before any payload is awaited);
 * CN_ERR_CORRUPT when the checksum does not match. */
int cn_peer__frame_decode(const void *p, size_t len, struct cn_peer__frame *out, size_t *want);

/* Reassembles chunked payloads. Zero-initialised is empty; cn_peer__asm_free releases it. */
struct cn_peer__asm {
    struct cn_buf buf;
    uint64_t total;
    uint8_t kind;
};

/* A complete payload: borrowed for the call (it may close the connection the bytes came from:
 * the assembler is not touched after it returns, but must stay allocated). */
typedef void (*cn_peer__payload_cb)(void *ctx, uint8_t kind, const void *p, size_t len);

/* Feeds one decoded frame: a frame that is not a chunk is a payload of its own and goes to cb at
 * once; a chunk is appended, and the payload goes to cb (and its memory is released) when its
 * last chunk arrives. Returns 0, or CN_ERR_CORRUPT for a chunk that cannot continue what is being
 * reassembled (header too short, total over CN_PEER_MAX_MESSAGE, an offset other than the bytes
 * held, past the total, or a total or kind unlike the first chunk's); the assembler is then
 * unusable but still must be freed. */
int cn_peer__asm_feed(struct cn_peer__asm *a, const struct cn_peer__frame *f,
                      cn_peer__payload_cb cb, void *ctx);
void cn_peer__asm_free(struct cn_peer__asm *a);

#endif
