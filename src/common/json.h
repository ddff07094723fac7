/* json: a streaming JSON writer into a cn_buf, escaping strings exactly as Go's encoding/json does
 * (etcd's responses are produced by it and clients compare bytes): <, > and & become \u003c..,
 * control bytes \u00XX, invalid UTF-8 U+FFFD, U+2028/9 escaped. Parsing JSON is jansson's job. */
#ifndef CN_COMMON_JSON_H
#define CN_COMMON_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Appends p[0..len) as a quoted JSON string. */
void cn_json_str(struct cn_buf *b, const char *p, size_t len);
static inline void cn_json_strz(struct cn_buf *b, const char *z)
{
    cn_json_str(b, z, strlen(z));
}
/* Appends `"key":` (key must not need escaping). */
void cn_json_key(struct cn_buf *b, const char *key);
/* Go's strconv.FormatFloat(v, 'g'-ish) as encoding/json prints float64. */
void cn_json_float(struct cn_buf *b, double v);

#endif
