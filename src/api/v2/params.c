/* params: query/form decoding for the keys API, in one pass over each pair that finds its end,
 * its '=' and whether it has escapes, decoding only what must be. */
#include "params.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/url.h"

static const struct cn_str names[CN_P_COUNT] = {
    CN_STR("value"),     CN_STR("dir"),
    CN_STR("ttl"),       CN_STR("prevExist"),
    CN_STR("prevValue"), CN_STR("prevIndex"),
    CN_STR("refresh"),   CN_STR("recursive"),
    CN_STR("sorted"),    CN_STR("quorum"),
    CN_STR("wait"),      CN_STR("waitIndex"),
    CN_STR("stream"),    CN_STR("noValueOnSuccess"),
};

#define NAME_MAX_LEN 16 /* "noValueOnSuccess" */

void cn_params_init(struct cn_params *p)
{
    memset(p, 0, sizeof(*p));
    cn_buf_init(&p->store);
}

void cn_params_free(struct cn_params *p)
{
    cn_buf_free(&p->store);
}

static bool has_escape(struct cn_str s)
{
    return s.len > 0 && (memchr(s.p, '%', s.len) != NULL || memchr(s.p, '+', s.len) != NULL);
}

static int bad_escape(struct cn_str s, char *err, size_t err_len)
{
    snprintf(err, err_len, "invalid URL escape \"%.*s\"", (int)(s.len > 32 ? 32 : s.len), s.p);
    return CN_ERR_PARSE;
}

/* The parameter a (still encoded) name names, or -1; CN_ERR_PARSE on a bad escape. */
static int lookup(struct cn_str k, int *idx, char *err, size_t err_len)
{
    *idx = -1;
    char dec[NAME_MAX_LEN];
    struct cn_str name = k;
    if (has_escape(k)) {
        size_t n;
        if (cn_url_decoded_len(k, &n) != 0) return bad_escape(k, err, err_len);
        if (n > sizeof(dec)) return 0; /* longer than any name */
        cn_url_decode_to(dec, k, true);
        name = cn_str_make(dec, n);
    }
    for (int i = 0; i < CN_P_COUNT; i++)
        if (cn_str_eq(name, names[i])) *idx = i;
    return 0;
}

/* Values borrowed from the input or in store, which may move while parsing: offsets are kept
 * and the pointers fixed at the end. */
int cn_params_parse(struct cn_params *p, struct cn_str s, bool body, char *err, size_t err_len)
{
    bool mine[CN_P_COUNT] = {false};
    const char *at = s.p, *end = s.p + s.len;
    while (at < end) {
        /* Go 1.6: both '&' and ';' separate */
        const char *amp = memchr(at, '&', (size_t)(end - at));
        const char *pair_end = amp ? amp : end;
        const char *semi = memchr(at, ';', (size_t)(pair_end - at));
        if (semi) pair_end = semi;
        struct cn_str pair = cn_str_make(at, (size_t)(pair_end - at));
        at = pair_end + 1;
        if (pair.len == 0) continue;
        const char *eq = memchr(pair.p, '=', pair.len);
        struct cn_str k = cn_str_make(pair.p, eq ? (size_t)(eq - pair.p) : pair.len);
        struct cn_str v = eq ? cn_str_make(eq + 1, pair.len - k.len - 1) : CN_STR("");
        int idx;
        int rc = lookup(k, &idx, err, err_len);
        if (rc != 0) return rc;
        /* every value's escapes are checked, kept or not, as Go's ParseQuery does */
        bool esc = has_escape(v);
        size_t dec_len = v.len;
        if (esc && cn_url_decoded_len(v, &dec_len) != 0) return bad_escape(v, err, err_len);
        /* The first occurrence within one source wins; a body value replaces a query one. */
        if (idx < 0 || mine[idx] || (p->present[idx] && (!body || p->from_body[idx]))) continue;
        p->present[idx] = true;
        p->from_body[idx] = body;
        mine[idx] = true;
        p->raw[idx] = v;
        if (!esc) {
            p->val[idx] = v; /* borrowed: nothing to decode */
            p->off[idx] = SIZE_MAX;
        } else if (p->lazy & (1u << idx)) {
            p->val[idx] = cn_str_make(NULL, dec_len);
            p->off[idx] = SIZE_MAX;
        } else {
            p->off[idx] = p->store.len;
            cn_buf_reserve(&p->store, dec_len);
            cn_url_decode_to(p->store.p + p->store.len, v, true);
            p->store.len += dec_len;
            p->store.p[p->store.len] = '\0';
            p->val[idx].len = dec_len;
        }
    }
    /* The buffer may have moved: re-point every value decoded into it, earlier parses' included. */
    for (int n = 0; n < CN_P_COUNT; n++)
        if (p->present[n] && p->off[n] != SIZE_MAX) p->val[n].p = p->store.p + p->off[n];
    return 0;
}

void cn_params_decode(const struct cn_params *p, int i, char *dst)
{
    cn_url_decode_to(dst, p->raw[i], true);
}
