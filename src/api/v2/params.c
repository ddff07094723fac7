/* params: query/form decoding for the keys API. */
#include "params.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/url.h"

static const char *const names[CN_P_COUNT] = {
    "value",     "dir",    "ttl",    "prevExist", "prevValue", "prevIndex", "refresh",
    "recursive", "sorted", "quorum", "wait",      "waitIndex", "stream",    "noValueOnSuccess",
};

void cn_params_init(struct cn_params *p)
{
    memset(p, 0, sizeof(*p));
    cn_buf_init(&p->store);
}

void cn_params_free(struct cn_params *p)
{
    cn_buf_free(&p->store);
}

/* Values point into p->store, which may move while parsing: keep offsets, fix up at the end. */
int cn_params_parse(struct cn_params *p, struct cn_str s, bool body, char *err, size_t err_len)
{
    bool mine[CN_P_COUNT] = {false};
    size_t i = 0;
    while (i <= s.len && s.len > 0) {
        size_t j = i;
        while (j < s.len && s.p[j] != '&' && s.p[j] != ';')
            j++; /* Go 1.6: both separate */
        struct cn_str pair = {s.p + i, j - i};
        if (pair.len) {
            const char *eq = memchr(pair.p, '=', pair.len);
            struct cn_str k = {pair.p, eq ? (size_t)(eq - pair.p) : pair.len};
            struct cn_str v = eq ? cn_str_make(eq + 1, pair.len - k.len - 1) : CN_STR("");
            struct cn_buf kb = CN_BUF_INIT;
            int rc = cn_url_decode(&kb, k, true);
            if (rc != 0) {
                snprintf(err, err_len, "invalid URL escape \"%.*s\"",
                         (int)(k.len > 32 ? 32 : k.len), k.p);
                cn_buf_free(&kb);
                return CN_ERR_PARSE;
            }
            int idx = -1;
            for (int n = 0; n < CN_P_COUNT; n++)
                if (cn_str_eqz(cn_buf_str(&kb), names[n])) idx = n;
            cn_buf_free(&kb);
            size_t start = p->store.len;
            struct cn_buf vb = CN_BUF_INIT;
            rc = cn_url_decode(&vb, v, true);
            if (rc != 0) {
                snprintf(err, err_len, "invalid URL escape \"%.*s\"",
                         (int)(v.len > 32 ? 32 : v.len), v.p);
                cn_buf_free(&vb);
                return CN_ERR_PARSE;
            }
            /* The first occurrence within one source wins; a body value replaces a query one. */
            if (idx >= 0 && !mine[idx] && (!p->present[idx] || (body && !p->from_body[idx]))) {
                cn_buf_append(&p->store, vb.p ? vb.p : "", vb.len);
                cn_buf_putc(&p->store, '\0');
                p->off[idx] = start;
                p->val[idx].len = vb.len;
                p->present[idx] = true;
                p->from_body[idx] = body;
                mine[idx] = true;
            }
            cn_buf_free(&vb);
        }
        i = j + 1;
    }
    /* The buffer may have moved: re-point every value, earlier parses' included. */
    for (int n = 0; n < CN_P_COUNT; n++)
        if (p->present[n]) p->val[n].p = p->store.p + p->off[n];
    return 0;
}
