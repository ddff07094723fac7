/* params: the keys API's request parameters, decoded from the query string and (for PUT and POST)
 * an application/x-www-form-urlencoded body, with Go's url.Values rules: the body wins over the
 * query, the first occurrence of a name wins, presence is distinguished from emptiness.
 *
 * Decoding copies nothing it need not: a value without escapes is borrowed from the input, one
 * with escapes is decoded into the params' own buffer, and one the caller marks lazy is left for
 * it to decode straight to where it goes (the keys API decodes value= into the command). */
#ifndef CN_API_V2_PARAMS_H
#define CN_API_V2_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/str.h"

enum cn_param {
    CN_P_VALUE,
    CN_P_DIR,
    CN_P_TTL,
    CN_P_PREV_EXIST,
    CN_P_PREV_VALUE,
    CN_P_PREV_INDEX,
    CN_P_REFRESH,
    CN_P_RECURSIVE,
    CN_P_SORTED,
    CN_P_QUORUM,
    CN_P_WAIT,
    CN_P_WAIT_INDEX,
    CN_P_STREAM,
    CN_P_NO_VALUE_ON_SUCCESS,
    CN_P_COUNT,
};

struct cn_params {
    /* set before parsing: 1u << CN_P_* of the parameters whose escaped values the caller
     * decodes itself (cn_params_decode) */
    unsigned lazy;
    bool present[CN_P_COUNT];
    bool from_body[CN_P_COUNT];
    /* Decoded values, borrowed from the parsed input (valid as long as it is) when they had no
     * escape, else in store. A lazy parameter with escapes has p == NULL and its decoded length;
     * raw[] then holds it as sent. Not NUL-terminated. */
    struct cn_str val[CN_P_COUNT];
    struct cn_str raw[CN_P_COUNT];
    /* private */
    size_t off[CN_P_COUNT]; /* of a decoded value in store, or SIZE_MAX: borrowed */
    struct cn_buf store;    /* decoded bytes of escaped values */
};

void cn_params_init(struct cn_params *p);
void cn_params_free(struct cn_params *p);
/* Adds every recognised name from an encoded query/form string. body: values take precedence
 * over those from the query. Returns 0, or CN_ERR_PARSE with a Go-like message in err (every
 * escape is checked here, the lazy ones' included). */
int cn_params_parse(struct cn_params *p, struct cn_str encoded, bool body, char *err,
                    size_t err_len);
/* Decodes parameter i (present, lazy, with escapes: val[i].p == NULL) into dst, which has room
 * for val[i].len bytes. */
void cn_params_decode(const struct cn_params *p, int i, char *dst);

#endif
