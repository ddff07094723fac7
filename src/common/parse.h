/* parse: Go's strconv rules for the values etcd's flags, query parameters and etcdctl's flags
 * carry, so every front end accepts and refuses exactly the same spellings. */
#ifndef CN_COMMON_PARSE_H
#define CN_COMMON_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "str.h"

/* strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False; anything else fails. */
bool cn_parse_bool(struct cn_str s, bool *out);
/* strconv.ParseUint(s, 10, 64): decimal digits only (no sign, no spaces), no overflow. */
bool cn_parse_u64(struct cn_str s, uint64_t *out);

/* strconv.ParseUint(s, 16, 64) without a prefix: 1 to 16 hex digits of either case (member and
 * cluster ids as etcd writes them). */
bool cn_parse_hex_u64(struct cn_str s, uint64_t *out);

#endif
