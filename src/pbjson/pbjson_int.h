/* pbjson internals: a JSON syntax tree over the input bytes that keeps every value's raw text
 * (jansson cannot: it turns numbers into long long/double, so a uint64 above INT64_MAX or the
 * literal that Go quotes in its errors would be lost) and reports Go encoding/json's scanner
 * errors ("invalid character 'x' looking for beginning of value"). */
#ifndef CN_PBJSON_PBJSON_INT_H
#define CN_PBJSON_PBJSON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pbjson/pbjson.h"

enum cn_pbjson__jt { JT_OBJ, JT_ARR, JT_STR, JT_NUM, JT_TRUE, JT_FALSE, JT_NULL };

/* 20 bytes, so that the worst input (4 MiB of "1,") costs 40 MB of nodes; inputs are limited
 * to 2^31 bytes. */
struct cn_pbjson__node {
    uint32_t start, len; /* raw text in the input, quotes included for strings */
    int32_t first;       /* first child (object: key, value, key, value ...), -1 if none */
    int32_t next;        /* next sibling, -1 if none */
    uint8_t type;
};

struct cn_pbjson__tree {
    const char *p;
    size_t len;
    struct cn_pbjson__node *nodes;
    size_t n, cap;
};

enum cn_pbjson__mode {
    PJ_DECODER,   /* json.Decoder.Decode: one value, the rest ignored, EOF -> "unexpected EOF" */
    PJ_UNMARSHAL, /* json.Unmarshal: one value and only whitespace after it */
    PJ_PARTIAL,   /* as PJ_DECODER on a prefix of the input: a number ending at the end of
                     the bytes may go on, so it is CN_ERR_AGAIN */
};

/* Parses p[0..len). Returns 0 with the root at nodes[0] and *end just past it; CN_ERR_EOF when
 * there is nothing but whitespace; CN_ERR_AGAIN when the input ends inside the value (with
 * err set to Go's message for that case); CN_ERR_PARSE / CN_ERR_TOO_LARGE with err set. */
int cn_pbjson__parse(struct cn_pbjson__tree *t, const char *p, size_t len,
                     enum cn_pbjson__mode mode, unsigned max_depth, size_t *end,
                     struct cn_pbjson_error *err);
void cn_pbjson__tree_free(struct cn_pbjson__tree *t);

/* Decodes the JSON string literal raw[0..len) (quotes included, already validated) into out as
 * Go does: escapes resolved, invalid UTF-8 and lone surrogates become U+FFFD. */
void cn_pbjson__unescape(struct cn_buf *out, const char *raw, size_t len);

/* Appends s as a Go encoding/json string literal. */
void cn_pbjson__quote(struct cn_buf *out, const char *s, size_t len);

/* Bytes one value of f's type takes in a message or a repeated array. */
size_t cn_pbjson__elem_size(const ProtobufCFieldDescriptor *f);

#endif
