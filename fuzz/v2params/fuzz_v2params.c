/* libFuzzer target for the decoding a /v2/keys request goes through before the store: the
 * query and form parameters (api/v2/params.c, cn_params_parse on the query, then on the body as
 * keys.c does), the percent-decoding of the key path and its re-encoding (common/url.c), Go's
 * number and boolean spellings (common/parse.c), the URL and list parsers of the flags
 * (cn_url_parse, cn_split_list), and the store's cleaning of the decoded key (a SET through the
 * encoded command, as the node applies it). The splitting of the key path is not a function of
 * keys.c: it hands the decoded path to the store, which cleans it, so that is what runs here.
 *
 * Input: "<encoded path>\n<query>\n<form body>"; missing parts are empty. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/v2/params.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/parse.h"
#include "common/url.h"
#include "fuzz.h"
#include "store/store.h"

static const char *const names[CN_P_COUNT] = {
    "value",     "dir",    "ttl",    "prevExist", "prevValue", "prevIndex", "refresh",
    "recursive", "sorted", "quorum", "wait",      "waitIndex", "stream",    "noValueOnSuccess",
};

static struct cn_str take_line(struct cn_str *s)
{
    const char *nl = s->len ? memchr(s->p, '\n', s->len) : NULL;
    struct cn_str line = cn_str_make(s->p, nl ? (size_t)(nl - s->p) : s->len);
    size_t used = nl ? line.len + 1 : line.len;
    *s = cn_str_make(s->p + used, s->len - used);
    return line;
}

/* The reference reading of Go's url.ParseQuery for one name: the first pair whose decoded name
 * matches, its value decoded into out. Only called on strings cn_params_parse accepted. */
static bool ref_lookup(struct cn_str enc, const char *name, struct cn_buf *out)
{
    size_t i = 0;
    while (i < enc.len) {
        size_t j = i;
        while (j < enc.len && enc.p[j] != '&' && enc.p[j] != ';')
            j++;
        struct cn_str pair = cn_str_make(enc.p + i, j - i);
        i = j + 1;
        if (pair.len == 0) continue;
        const char *eq = memchr(pair.p, '=', pair.len);
        struct cn_str k = cn_str_make(pair.p, eq ? (size_t)(eq - pair.p) : pair.len);
        struct cn_buf kb = CN_BUF_INIT;
        CHECK(cn_url_decode(&kb, k, true) == 0);
        bool hit = cn_str_eqz(cn_buf_str(&kb), name);
        cn_buf_free(&kb);
        if (!hit) continue;
        cn_buf_reset(out);
        if (eq) CHECK(cn_url_decode(out, cn_str_make(eq + 1, pair.len - k.len - 1), true) == 0);
        return true;
    }
    return false;
}

/* Go's strconv.ParseUint(s, 10, 64): digits only, any number of leading zeros, no overflow;
 * checked against strtoull on a NUL-free value (strtoull takes long inputs too). */
static void check_u64(struct cn_str v)
{
    uint64_t got = 0;
    bool ok = cn_parse_u64(v, &got);
    if (memchr(v.p, '\0', v.len)) {
        CHECK(!ok);
        return;
    }
    char *z = malloc(v.len + 1);
    CHECK(z != NULL);
    memcpy(z, v.p, v.len);
    z[v.len] = '\0';
    bool digits = v.len > 0;
    for (size_t i = 0; i < v.len; i++)
        if (z[i] < '0' || z[i] > '9') digits = false;
    errno = 0;
    char *end = NULL;
    unsigned long long want = digits ? strtoull(z, &end, 10) : 0;
    bool want_ok = digits && errno == 0 && end == z + v.len;
    CHECK(ok == want_ok);
    if (ok) CHECK(got == want);
    free(z);
}

static void check_roundtrip(struct cn_str decoded)
{
    struct cn_buf enc = CN_BUF_INIT, back = CN_BUF_INIT;
    cn_url_encode_path(&enc, decoded);
    CHECK(cn_url_decode(&back, cn_buf_str(&enc), false) == 0);
    CHECK(cn_str_eq(cn_buf_str(&back), decoded));
    cn_buf_reset(&enc);
    cn_buf_reset(&back);
    cn_url_encode_query(&enc, decoded);
    CHECK(cn_url_decode(&back, cn_buf_str(&enc), true) == 0);
    CHECK(cn_str_eq(cn_buf_str(&back), decoded));
    cn_buf_free(&enc);
    cn_buf_free(&back);
}

/* path.Clean's shape: absolute, no empty, "." or ".." segment, no trailing '/' but the root. */
static void check_clean(const char *key, size_t len)
{
    CHECK(len > 0 && key[0] == '/');
    CHECK(len == 1 || key[len - 1] != '/');
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && key[j] != '/')
            j++;
        size_t seg = j - i - 1;
        CHECK(len == 1 || seg > 0);
        CHECK(!(seg == 1 && key[i + 1] == '.'));
        CHECK(!(seg == 2 && key[i + 1] == '.' && key[i + 2] == '.'));
        i = j;
    }
}

static void run_store(struct cn_str key, const struct cn_params *p)
{
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    c.ns = CN_NS_KEYS;
    c.op = CN_OP_SET;
    c.key = key;
    c.now_ns = 1700000000LL * 1000000000LL;
    bool dir = false, prev_exist = false;
    if (p->present[CN_P_DIR]) (void)cn_parse_bool(p->val[CN_P_DIR], &dir);
    c.dir = dir;
    c.value = p->present[CN_P_VALUE] ? p->val[CN_P_VALUE] : CN_STR(""); /* as keys.c */
    struct cn_buf want = CN_BUF_INIT; /* the value, decoded the reference way */
    if (p->present[CN_P_VALUE]) CHECK(cn_url_decode(&want, p->raw[CN_P_VALUE], true) == 0);
    uint64_t ttl = 0;
    if (p->present[CN_P_TTL] && cn_parse_u64(p->val[CN_P_TTL], &ttl) && ttl > 0)
        c.expire_ns = c.now_ns + (int64_t)(ttl % 1000000) * 1000000000LL;
    if (p->present[CN_P_PREV_EXIST] && cn_parse_bool(p->val[CN_P_PREV_EXIST], &prev_exist))
        c.op = prev_exist ? CN_OP_UPDATE : CN_OP_CREATE;

    /* as keys.c: sized exactly, a lazy value decoded into its place */
    struct cn_buf cmd = CN_BUF_INIT;
    size_t len = cn_store_cmd_encoded_len(&c);
    cn_buf_reserve_exact(&cmd, len);
    char *hole = cn_store_cmd_encode_hole(&c, &cmd);
    if (hole != NULL && c.value.p == NULL) cn_params_decode(p, CN_P_VALUE, hole);
    CHECK(cmd.len == len && cmd.cap == len + 1);
    struct cn_store_cmd d;
    CHECK(cn_store_cmd_decode(cmd.p, cmd.len, &d) == 0);
    CHECK(d.op == c.op && d.ns == c.ns && d.dir == c.dir && d.expire_ns == c.expire_ns);
    CHECK(cn_str_eq(d.key, c.key) && cn_str_eq(d.value, cn_buf_str(&want)));
    cn_buf_free(&want);

    struct cn_store *s = cn_store_new();
    struct cn_store_result res;
    CHECK(cn_store_apply(s, cmd.p, cmd.len, &res) == 0);
    if (res.err.ecode == 0) {
        CHECK(res.ev != NULL);
        CHECK(res.ev->index == 1 && cn_store_index(s) == 1);
        check_clean(res.ev->node.key, res.ev->node.key_len);
        /* the raw key and its cleaned form name the same node */
        struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
        struct cn_store_err e;
        CHECK(cn_store_get_json(s, CN_NS_KEYS, key, false, true, c.now_ns, &a, &e));
        CHECK(cn_store_get_json(s, CN_NS_KEYS, cn_str_make(res.ev->node.key, res.ev->node.key_len),
                                false, true, c.now_ns, &b, &e));
        CHECK(cn_str_eq(cn_buf_str(&a), cn_buf_str(&b)));
        struct cn_buf j = CN_BUF_INIT;
        cn_store_event_json(res.ev, c.now_ns, &j);
        CHECK(j.len > 0 && j.p[0] == '{' && j.p[j.len - 1] == '}');
        cn_buf_free(&a);
        cn_buf_free(&b);
        cn_buf_free(&j);
    } else {
        CHECK(res.ev == NULL);
        CHECK(res.err.ecode >= 100 && res.err.ecode < 500);
    }
    cn_store_free(s);
    cn_buf_free(&cmd);
}

static int split_item(const char *item, void *ctx)
{
    size_t *n = ctx;
    size_t len = strlen(item);
    CHECK(len > 0 && strchr(item, ',') == NULL);
    CHECK(item[0] != ' ' && item[0] != '\t' && item[len - 1] != ' ' && item[len - 1] != '\t');
    return ++*n > 1000 ? 1 : 0;
}

static void run_flags(struct cn_str line, struct cn_str body)
{
    char *z = cn_xstrndup(line.p ? line.p : "", line.len);
    struct cn_url u;
    char err[512];
    if (cn_url_parse(z, &u, err, sizeof(err)) == 0) {
        CHECK(strcmp(u.scheme, "http") == 0 || strcmp(u.scheme, "https") == 0);
        CHECK(strlen(u.host) < sizeof(u.host));
    } else {
        CHECK(strncmp(err, "URL ", 4) == 0);
    }
    cn_free(z);
    z = cn_xstrndup(body.p ? body.p : "", body.len);
    size_t n = 0;
    (void)cn_split_list(z, split_item, &n); /* 1 only when the list is long */
    cn_free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16)) return 0;
    struct cn_str in = cn_str_make((const char *)data, size);
    struct cn_str path = take_line(&in);
    struct cn_str query = take_line(&in);
    struct cn_str body = in;

    struct cn_params p;
    cn_params_init(&p);
    p.lazy = 1u << CN_P_VALUE; /* as keys.c */
    char err[256];
    int rq = cn_params_parse(&p, query, false, err, sizeof(err));
    int rb = rq == 0 ? cn_params_parse(&p, body, true, err, sizeof(err)) : -1;
    if (rq != 0 || rb != 0) CHECK(strncmp(err, "invalid URL escape \"", 20) == 0);
    if (rq == 0 && rb == 0) {
        struct cn_buf want = CN_BUF_INIT;
        for (int n = 0; n < CN_P_COUNT; n++) {
            /* the body wins over the query; within one, the first occurrence */
            bool in_body = ref_lookup(body, names[n], &want);
            bool in_query = !in_body && ref_lookup(query, names[n], &want);
            CHECK(p.present[n] == (in_body || in_query));
            if (!p.present[n]) continue;
            CHECK(p.from_body[n] == in_body);
            /* the value as sent lies in the source it came from */
            struct cn_str src = in_body ? body : query;
            struct cn_str raw = p.raw[n];
            CHECK(raw.len == 0 || (raw.p >= src.p && raw.p + raw.len <= src.p + src.len));
            if (p.val[n].p == NULL && p.val[n].len > 0) {
                /* lazy, with escapes: decoded where the caller wants it */
                CHECK(n == CN_P_VALUE);
                char *dst = cn_xmalloc(p.val[n].len);
                cn_params_decode(&p, n, dst);
                CHECK(p.val[n].len == want.len && memcmp(dst, want.p, want.len) == 0);
                cn_free(dst);
                continue;
            }
            CHECK(cn_str_eq(p.val[n], cn_buf_str(&want)));
            /* borrowed when there was nothing to decode, else in the params' buffer */
            bool borrowed = p.val[n].p == raw.p && p.val[n].len == raw.len;
            bool stored =
                p.val[n].len == 0 || (p.store.p != NULL && p.val[n].p >= p.store.p &&
                                      p.val[n].p + p.val[n].len <= p.store.p + p.store.len);
            CHECK(borrowed || stored);
            check_u64(p.val[n]);
            bool b;
            (void)cn_parse_bool(p.val[n], &b);
        }
        cn_buf_free(&want);
    }

    struct cn_buf key = CN_BUF_INIT;
    if (cn_url_decode(&key, path, false) == 0) {
        CHECK(key.len <= path.len);
        check_roundtrip(cn_buf_str(&key));
        if (rq == 0 && rb == 0) {
            struct cn_str k = cn_buf_str(&key);
            if (k.p == NULL) k = CN_STR("");
            run_store(k, &p);
        }
    }
    struct cn_buf plus = CN_BUF_INIT;
    if (cn_url_decode(&plus, path, true) == 0) check_roundtrip(cn_buf_str(&plus));
    run_flags(path, body);

    cn_buf_free(&plus);
    cn_buf_free(&key);
    cn_params_free(&p);
    return 0;
}
