/* pbjson: the JSON syntax tree (see pbjson_int.h). The error texts are Go encoding/json's
 * scanner's (scanner.go), since etcd's gateway passes them to clients verbatim. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "pbjson/pbjson_int.h"

struct ps {
    struct cn_pbjson__tree *t;
    const char *p;
    size_t len, i;
    unsigned depth, max_depth;
    bool unmarshal; /* json.Unmarshal: the end of input reads as a space (scanner.eof) */
    struct cn_pbjson_error *err;
};

/* Go's quoteChar: the offending byte as a rune in single quotes, strconv.Quote-style. */
static void quote_char(char *out, size_t cap, unsigned char c)
{
    if (c == '\'') {
        snprintf(out, cap, "'\\''");
    } else if (c == '"') {
        snprintf(out, cap, "'\"'");
    } else if (c == '\\') {
        snprintf(out, cap, "'\\\\'");
    } else if (c >= 0x20 && c < 0x7f) {
        snprintf(out, cap, "'%c'", c);
    } else if (c == '\a' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' ||
               c == '\v') {
        static const char esc[] = "abtnvfr";
        snprintf(out, cap, "'\\%c'", esc[c - '\a']);
    } else if (c < 0x20 || c == 0x7f) {
        snprintf(out, cap, "'\\x%02x'", c);
    } else if (c < 0xa0) {
        snprintf(out, cap, "'\\u%04x'", c); /* C1 controls are not printable runes */
    } else {
        /* the byte as the rune U+00A0..U+00FF, which Go prints as itself (UTF-8); U+00AD
         * (soft hyphen) is the one it escapes */
        if (c == 0xad)
            snprintf(out, cap, "'\\u00ad'");
        else
            snprintf(out, cap, "'%c%c'", (char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f)));
    }
}

static int syntax(struct ps *s, const char *ctx)
{
    char q[16];
    quote_char(q, sizeof q, (unsigned char)s->p[s->i]);
    s->err->code = CN_GRPC_INVALID_ARGUMENT;
    snprintf(s->err->msg, sizeof s->err->msg, "invalid character %s %s", q, ctx);
    return CN_ERR_PARSE;
}

static int eof(struct ps *s)
{
    s->err->code = CN_GRPC_INVALID_ARGUMENT;
    snprintf(s->err->msg, sizeof s->err->msg, "unexpected EOF");
    return CN_ERR_AGAIN;
}

/* The input ends where the scanner needs a specific character. json.Unmarshal's scanner then
 * steps a space, so it reports "invalid character ' ' <ctx>"; a json.Decoder says "unexpected
 * EOF" (CN_ERR_AGAIN: more bytes may come). */
static int eof_in(struct ps *s, const char *ctx)
{
    if (!s->unmarshal) return eof(s);
    s->err->code = CN_GRPC_INVALID_ARGUMENT;
    snprintf(s->err->msg, sizeof s->err->msg, "invalid character ' ' %s", ctx);
    return CN_ERR_PARSE;
}

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct ps *s)
{
    while (s->i < s->len && ws(s->p[s->i]))
        s->i++;
}

static int32_t add(struct ps *s, uint8_t type, size_t start)
{
    struct cn_pbjson__tree *t = s->t;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->nodes = cn_xrealloc(t->nodes, t->cap * sizeof *t->nodes);
    }
    struct cn_pbjson__node *nd = &t->nodes[t->n];
    nd->type = type;
    nd->start = (uint32_t)start;
    nd->len = 0;
    nd->first = -1;
    nd->next = -1;
    return (int32_t)t->n++;
}

static bool hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int p_string(struct ps *s, int32_t *id)
{
    size_t start = s->i;
    s->i++; /* the opening quote */
    for (;;) {
        if (s->i >= s->len) return eof(s);
        unsigned char c = (unsigned char)s->p[s->i];
        if (c == '"') break;
        if (c < 0x20) return syntax(s, "in string literal");
        if (c == '\\') {
            s->i++;
            if (s->i >= s->len) return eof_in(s, "in string escape code");
            c = (unsigned char)s->p[s->i];
            if (c == 'u') {
                for (int k = 0; k < 4; k++) {
                    s->i++;
                    if (s->i >= s->len) return eof_in(s, "in \\u hexadecimal character escape");
                    if (!hex(s->p[s->i])) return syntax(s, "in \\u hexadecimal character escape");
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return syntax(s, "in string escape code");
            }
        }
        s->i++;
    }
    s->i++;
    *id = add(s, JT_STR, start);
    s->t->nodes[*id].len = (uint32_t)(s->i - start);
    return 0;
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* At the end of input a number may go on (a decoder waits for more); in unmarshal mode the
 * caller treats the whole input as final, which p_number signals with final. */
static int p_number(struct ps *s, int32_t *id, bool final)
{
    size_t start = s->i;
#define NEED(ctx)                                                                                  \
    do {                                                                                           \
        if (s->i >= s->len) return eof_in(s, ctx);                                                 \
    } while (0)
    if (s->p[s->i] == '-') {
        s->i++;
        NEED("in numeric literal");
        if (!digit(s->p[s->i])) return syntax(s, "in numeric literal");
    }
    if (s->p[s->i] == '0') {
        s->i++;
    } else {
        while (s->i < s->len && digit(s->p[s->i]))
            s->i++;
    }
    if (s->i < s->len && s->p[s->i] == '.') {
        s->i++;
        NEED("after decimal point in numeric literal");
        if (!digit(s->p[s->i])) return syntax(s, "after decimal point in numeric literal");
        while (s->i < s->len && digit(s->p[s->i]))
            s->i++;
    }
    if (s->i < s->len && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        NEED("in exponent of numeric literal");
        if (s->p[s->i] == '+' || s->p[s->i] == '-') {
            s->i++;
            NEED("in exponent of numeric literal");
        }
        if (!digit(s->p[s->i])) return syntax(s, "in exponent of numeric literal");
        while (s->i < s->len && digit(s->p[s->i]))
            s->i++;
    }
#undef NEED
    if (s->i >= s->len && !final) return eof(s);
    *id = add(s, JT_NUM, start);
    s->t->nodes[*id].len = (uint32_t)(s->i - start);
    return 0;
}

static int p_literal(struct ps *s, int32_t *id, const char *word, uint8_t type)
{
    size_t start = s->i;
    for (size_t k = 1; word[k]; k++) {
        s->i = start + k;
        char ctx[64];
        snprintf(ctx, sizeof ctx, "in literal %s (expecting '%c')", word, word[k]);
        if (s->i >= s->len) return eof_in(s, ctx);
        if (s->p[s->i] != word[k]) return syntax(s, ctx);
    }
    s->i = start + strlen(word);
    *id = add(s, type, start);
    s->t->nodes[*id].len = (uint32_t)(s->i - start);
    return 0;
}

static int p_value(struct ps *s, int32_t *id, bool final);

static int too_deep(struct ps *s)
{
    s->err->code = CN_GRPC_INVALID_ARGUMENT;
    snprintf(s->err->msg, sizeof s->err->msg, "exceeded max depth");
    return CN_ERR_TOO_LARGE;
}

static int p_container(struct ps *s, int32_t *id, bool final)
{
    bool obj = s->p[s->i] == '{';
    if (++s->depth > s->max_depth) return too_deep(s);
    size_t start = s->i;
    int32_t me = add(s, obj ? JT_OBJ : JT_ARR, start);
    int32_t last = -1;
    s->i++;
    skip_ws(s);
    if (s->i >= s->len) return eof(s);
    if (s->p[s->i] == (obj ? '}' : ']')) {
        s->i++;
        goto done;
    }
    for (;;) {
        int32_t child;
        int rc;
        if (obj) {
            if (s->p[s->i] != '"') return syntax(s, "looking for beginning of object key string");
            rc = p_string(s, &child);
            if (rc != 0) return rc;
            if (last < 0)
                s->t->nodes[me].first = child;
            else
                s->t->nodes[last].next = child;
            last = child;
            skip_ws(s);
            if (s->i >= s->len) return eof(s);
            if (s->p[s->i] != ':') return syntax(s, "after object key");
            s->i++;
            skip_ws(s);
            if (s->i >= s->len) return eof(s);
        }
        /* inside a container a number is always followed by more input */
        rc = p_value(s, &child, false);
        if (rc != 0) return rc;
        if (last < 0)
            s->t->nodes[me].first = child;
        else
            s->t->nodes[last].next = child;
        last = child;
        skip_ws(s);
        if (s->i >= s->len) return eof(s);
        char c = s->p[s->i];
        if (c == ',') {
            s->i++;
            skip_ws(s);
            if (s->i >= s->len) return eof(s);
            if (!obj && s->p[s->i] == ']') return syntax(s, "looking for beginning of value");
            continue;
        }
        if (c == (obj ? '}' : ']')) {
            s->i++;
            break;
        }
        return syntax(s, obj ? "after object key:value pair" : "after array element");
    }
done:
    s->depth--;
    s->t->nodes[me].len = (uint32_t)(s->i - start);
    *id = me;
    (void) final; /* containers end at their bracket */
    return 0;
}

static int p_value(struct ps *s, int32_t *id, bool final)
{
    switch (s->p[s->i]) {
    case '{':
    case '[':
        return p_container(s, id, final);
    case '"':
        return p_string(s, id);
    case 't':
        return p_literal(s, id, "true", JT_TRUE);
    case 'f':
        return p_literal(s, id, "false", JT_FALSE);
    case 'n':
        return p_literal(s, id, "null", JT_NULL);
    default:
        if (s->p[s->i] == '-' || digit(s->p[s->i])) return p_number(s, id, final);
        return syntax(s, "looking for beginning of value");
    }
}

int cn_pbjson__parse(struct cn_pbjson__tree *t, const char *p, size_t len,
                     enum cn_pbjson__mode mode, unsigned max_depth, size_t *end,
                     struct cn_pbjson_error *err)
{
    memset(t, 0, sizeof *t);
    t->p = p;
    t->len = len;
    if (len > INT32_MAX) {
        err->code = CN_GRPC_RESOURCE_EXHAUSTED;
        snprintf(err->msg, sizeof err->msg, "input too large");
        return CN_ERR_TOO_LARGE;
    }
    struct ps s = {.t = t,
                   .p = p,
                   .len = len,
                   .max_depth = max_depth,
                   .unmarshal = mode == PJ_UNMARSHAL,
                   .err = err};
    skip_ws(&s);
    if (s.i >= len) {
        if (mode == PJ_UNMARSHAL) {
            err->code = CN_GRPC_INVALID_ARGUMENT;
            snprintf(err->msg, sizeof err->msg, "unexpected end of JSON input");
            return CN_ERR_PARSE;
        }
        return CN_ERR_EOF;
    }
    int32_t root;
    int rc = p_value(&s, &root, mode != PJ_PARTIAL);
    if (rc == CN_ERR_AGAIN && mode == PJ_UNMARSHAL) {
        snprintf(err->msg, sizeof err->msg, "unexpected end of JSON input");
        return CN_ERR_PARSE;
    }
    if (rc != 0) return rc;
    if (mode == PJ_UNMARSHAL) {
        skip_ws(&s);
        if (s.i < len) return syntax(&s, "after top-level value");
    }
    *end = s.i;
    return 0;
}

void cn_pbjson__tree_free(struct cn_pbjson__tree *t)
{
    cn_free(t->nodes);
    t->nodes = NULL;
    t->n = t->cap = 0;
}

static void put_utf8(struct cn_buf *out, uint32_t r)
{
    char b[4];
    size_t n;
    if (r < 0x80) {
        b[0] = (char)r;
        n = 1;
    } else if (r < 0x800) {
        b[0] = (char)(0xc0 | (r >> 6));
        b[1] = (char)(0x80 | (r & 0x3f));
        n = 2;
    } else if (r < 0x10000) {
        b[0] = (char)(0xe0 | (r >> 12));
        b[1] = (char)(0x80 | ((r >> 6) & 0x3f));
        b[2] = (char)(0x80 | (r & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (r >> 18));
        b[1] = (char)(0x80 | ((r >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((r >> 6) & 0x3f));
        b[3] = (char)(0x80 | (r & 0x3f));
        n = 4;
    }
    cn_buf_append(out, b, n);
}

static uint32_t hex4(const char *p)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else
            v |= (uint32_t)(c - 'A' + 10);
    }
    return v;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *rune)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *rune = c;
        return 1;
    }
    size_t need;
    uint32_t r, min;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        r = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        r = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        r = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < need) return 0;
    for (size_t k = 1; k < need; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        r = (r << 6) | (p[k] & 0x3f);
    }
    if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) return 0;
    *rune = r;
    return need;
}

void cn_pbjson__unescape(struct cn_buf *out, const char *raw, size_t len)
{
    const char *p = raw + 1, *e = raw + len - 1;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            char x = p[1];
            p += 2;
            switch (x) {
            case 'b':
                cn_buf_putc(out, '\b');
                break;
            case 'f':
                cn_buf_putc(out, '\f');
                break;
            case 'n':
                cn_buf_putc(out, '\n');
                break;
            case 'r':
                cn_buf_putc(out, '\r');
                break;
            case 't':
                cn_buf_putc(out, '\t');
                break;
            case 'u': {
                uint32_t r = hex4(p);
                p += 4;
                if (r >= 0xd800 && r < 0xdc00) {
                    /* a high surrogate pairs only with a following \u low surrogate */
                    if (e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                        uint32_t lo = hex4(p + 2);
                        if (lo >= 0xdc00 && lo < 0xe000) {
                            r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
                            p += 6;
                        } else {
                            r = 0xfffd;
                        }
                    } else {
                        r = 0xfffd;
                    }
                } else if (r >= 0xdc00 && r < 0xe000) {
                    r = 0xfffd;
                }
                put_utf8(out, r);
                break;
            }
            default:
                cn_buf_putc(out, x);
                break; /* " \ / */
            }
            continue;
        }
        uint32_t r;
        size_t n = utf8_len((const unsigned char *)p, (size_t)(e - p), &r);
        if (n == 0) {
            put_utf8(out, 0xfffd);
            p++;
        } else {
            cn_buf_append(out, p, n);
            p += n;
        }
    }
}

void cn_pbjson__quote(struct cn_buf *out, const char *s, size_t len)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    cn_buf_putc(out, '"');
    while (p < e) {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                cn_buf_putc(out, (char)c);
            } else if (c == '"' || c == '\\') {
                cn_buf_putc(out, '\\');
                cn_buf_putc(out, (char)c);
            } else if (c == '\n') {
                cn_buf_appends(out, "\\n");
            } else if (c == '\r') {
                cn_buf_appends(out, "\\r");
            } else if (c == '\t') {
                cn_buf_appends(out, "\\t");
            } else {
                /* other controls and, as Go's HTML-safe encoder does, < > & */
                char u[6] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15]};
                cn_buf_append(out, u, 6);
            }
            p++;
            continue;
        }
        uint32_t r;
        size_t n = utf8_len(p, (size_t)(e - p), &r);
        if (n == 0) {
            cn_buf_appends(out, "\\ufffd");
            p++;
        } else if (r == 0x2028 || r == 0x2029) {
            cn_buf_appends(out, r == 0x2028 ? "\\u2028" : "\\u2029");
            p += n;
        } else {
            cn_buf_append(out, p, n);
            p += n;
        }
    }
    cn_buf_putc(out, '"');
}
