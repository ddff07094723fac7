/* url: percent-decoding (paths, query strings, forms) and parsing of the http(s)://host:port URLs
 * that cairn's flags carry. */
#ifndef CN_COMMON_URL_H
#define CN_COMMON_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "str.h"

/* Appends the percent-decoded form of s to out. plus_is_space: decode '+' as ' ' (forms and
 * query strings). Returns 0, or CN_ERR_PARSE on a malformed %-escape (as Go's url package). */
int cn_url_decode(struct cn_buf *out, struct cn_str s, bool plus_is_space);
/* Checks s's %-escapes as cn_url_decode does, without decoding: 0 with the length s decodes to
 * in *len (each escape is 3 bytes that decode to 1), or CN_ERR_PARSE. */
int cn_url_decoded_len(struct cn_str s, size_t *len);
/* Decodes s, whose escapes cn_url_decoded_len accepted, into dst, which has room for the length
 * it gave: for a caller that decodes straight to where the bytes go. */
void cn_url_decode_to(char *dst, struct cn_str s, bool plus_is_space);

/* Appends s percent-encoded for use in a URL path (unreserved bytes and '/' kept). */
void cn_url_encode_path(struct cn_buf *out, struct cn_str s);
/* Appends s encoded for a query string or form value. */
void cn_url_encode_query(struct cn_buf *out, struct cn_str s);

struct cn_url {
    char scheme[8]; /* "http" or "https" */
    char host[256]; /* host name or IP, without brackets */
    uint16_t port;
    bool has_path; /* anything after host:port, even a lone "/" */
};

/* Parses "scheme://host:port[/]". On failure returns CN_ERR_PARSE and writes a Go-like message
 * (e.g. `URL address does not have the form "host:port": http://x`) into err. */
int cn_url_parse(const char *z, struct cn_url *u, char *err, size_t err_len);

/* Splits a comma-separated list, trimming spaces; calls fn for each non-empty item. Returns the
 * first non-zero value fn returns. */
int cn_split_list(const char *z, int (*fn)(const char *item, void *ctx), void *ctx);

#endif
