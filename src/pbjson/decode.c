/* pbjson: JSON -> protobuf-c message, walking the descriptor, with golang/protobuf 1.3 jsonpb's
 * Unmarshaler{AllowUnknownFields: true} rules as etcd 3.4's gateway applies them:
 *   - a message is an object or null (null: nothing set); unknown keys are ignored; a key is
 *     the proto name or its lowerCamel JSON name, the latter winning when both are there; a
 *     repeated key's last value counts; oneof members are read after the other fields;
 *   - null for any field leaves it unset;
 *   - 64- and 32-bit integers (and enums given as numbers) take a JSON number, or a string whose
 *     raw contents (quotes stripped, escapes NOT resolved) parse as one: "1" and " 1" work,
 *     "01" fails with Go's "invalid character '1' after top-level value"; fractions, exponents
 *     and out-of-range values fail with "json: cannot unmarshal number 1.5 into Go value of
 *     type int64"; an enum value without a name is accepted;
 *   - enums by name (exact, case-sensitive, the raw text between the quotes), else "unknown
 *     value \"x\" for enum etcdserverpb.RangeRequest_SortOrder";
 *   - bytes: standard base64 with padding only (Go's encoding/json; "\r" and "\n" are skipped,
 *     URL-safe or unpadded input fails with "illegal base64 data at input byte N");
 *   - a type mismatch fails with "json: cannot unmarshal <kind> into Go value of type <T>";
 * differences from etcd, on purpose: a null element of a repeated message field and a NUL in a
 * string are errors here (etcd's server panics on the first and drops the connection); a null
 * oneof member leaves the oneof unset (jsonpb sets the case with a nil message). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "pbjson/pbjson.h"
#include "pbjson/pbjson_int.h"

#define DEFAULT_MAX_LEN   (4u * 1024 * 1024) /* see pbjson.h */
#define DEFAULT_MAX_DEPTH 64

static void *a_alloc(void *ud, size_t n)
{
    (void)ud;
    return cn_xmalloc(n ? n : 1);
}

static void a_free(void *ud, void *p)
{
    (void)ud;
    cn_free(p);
}

ProtobufCAllocator cn_pbjson_allocator = {a_alloc, a_free, NULL};

struct dctx {
    struct cn_pbjson__tree *t;
    struct cn_pbjson_error *err;
    struct cn_buf tmp;
    unsigned max_depth;
};

static int fail(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct dctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->err->code = CN_GRPC_INVALID_ARGUMENT;
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
    return CN_ERR_PARSE;
}

static const char *kind_word(uint8_t type)
{
    switch (type) {
    case JT_OBJ:
        return "object";
    case JT_ARR:
        return "array";
    case JT_STR:
        return "string";
    case JT_NUM:
        return "number";
    case JT_TRUE:
    case JT_FALSE:
        return "bool";
    default:
        return "null";
    }
}

/* Go's type name of an enum: package "." nested name with "." -> "_"
 * (etcdserverpb.RangeRequest_SortOrder). */
static void enum_go_name(char *out, size_t cap, const ProtobufCEnumDescriptor *ed)
{
    const char *name = ed->name;
    size_t pl = ed->package_name ? strlen(ed->package_name) : 0;
    if (pl && strncmp(name, ed->package_name, pl) == 0 && name[pl] == '.') {
        snprintf(out, cap, "%s.%s", ed->package_name, name + pl + 1);
        for (char *q = out + pl + 1; *q; q++)
            if (*q == '.') *q = '_';
    } else {
        snprintf(out, cap, "%s", name);
    }
}

static const char *go_type(const ProtobufCFieldDescriptor *f, char *buf, size_t cap)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return "int32";
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return "uint32";
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return "int64";
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return "uint64";
    case PROTOBUF_C_TYPE_FLOAT:
        return "float32";
    case PROTOBUF_C_TYPE_DOUBLE:
        return "float64";
    case PROTOBUF_C_TYPE_BOOL:
        return "bool";
    case PROTOBUF_C_TYPE_STRING:
        return "string";
    case PROTOBUF_C_TYPE_BYTES:
        return "[]uint8";
    case PROTOBUF_C_TYPE_ENUM:
        enum_go_name(buf, cap, f->descriptor);
        return buf;
    case PROTOBUF_C_TYPE_MESSAGE:
        return "map[string]json.RawMessage";
    }
    return "?";
}

static int type_err(struct dctx *c, const ProtobufCFieldDescriptor *f, const char *what)
{
    char tb[160];
    return fail(c, "json: cannot unmarshal %s into Go value of type %s", what,
                go_type(f, tb, sizeof tb));
}

/* ---- integers ---- */

/* Decodes a JSON integer literal (already valid JSON number syntax) into *v; false when it has a
 * fraction or exponent or does not fit. */
static bool parse_int(const char *p, size_t n, bool is_signed, int bits, uint64_t *v)
{
    bool neg = n && p[0] == '-';
    size_t i = neg;
    if (i == n) return false;
    uint64_t acc = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (acc > (UINT64_MAX - d) / 10) return false;
        acc = acc * 10 + d;
    }
    if (!is_signed) {
        if (neg && acc != 0) return false;
        if (bits == 32 && acc > UINT32_MAX) return false;
        *v = acc;
        return true;
    }
    uint64_t lim = bits == 32 ? (uint64_t)INT32_MAX : (uint64_t)INT64_MAX;
    if (neg) {
        if (acc > lim + 1) return false;
        *v = (uint64_t)0 - acc;
    } else {
        if (acc > lim) return false;
        *v = acc;
    }
    return true;
}

static void store_num(const ProtobufCFieldDescriptor *f, void *dst, uint64_t v, double dv)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)dst = (int32_t)(int64_t)v;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)dst = (uint32_t)v;
        break;
    case PROTOBUF_C_TYPE_ENUM:
        *(int *)dst = (int)(int64_t)v;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)dst = (float)dv;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)dst = dv;
        break;
    default:
        *(uint64_t *)dst = v;
        break;
    }
}

static int dec_number(struct dctx *c, const ProtobufCFieldDescriptor *f, const char *p, size_t n,
                      uint8_t type, void *dst)
{
    if (type == JT_NULL) return 0; /* json.Unmarshal of null into a number: no-op */
    if (type != JT_NUM) return type_err(c, f, kind_word(type));
    bool is_float = f->type == PROTOBUF_C_TYPE_FLOAT || f->type == PROTOBUF_C_TYPE_DOUBLE;
    if (is_float) {
        char b[400];
        if (n >= sizeof b) goto bad;
        memcpy(b, p, n);
        b[n] = 0;
        errno = 0;
        double dv = strtod(b, NULL);
        if (errno == ERANGE && dv != 0) goto bad;
        store_num(f, dst, 0, dv);
        return 0;
    }
    bool is_signed = f->type != PROTOBUF_C_TYPE_UINT32 && f->type != PROTOBUF_C_TYPE_FIXED32 &&
                     f->type != PROTOBUF_C_TYPE_UINT64 && f->type != PROTOBUF_C_TYPE_FIXED64;
    int bits = 64;
    if (f->type == PROTOBUF_C_TYPE_INT32 || f->type == PROTOBUF_C_TYPE_SINT32 ||
        f->type == PROTOBUF_C_TYPE_SFIXED32 || f->type == PROTOBUF_C_TYPE_UINT32 ||
        f->type == PROTOBUF_C_TYPE_FIXED32 || f->type == PROTOBUF_C_TYPE_ENUM)
        bits = 32;
    uint64_t v;
    if (!parse_int(p, n, is_signed, bits, &v)) goto bad;
    store_num(f, dst, v, 0);
    return 0;
bad : {
    char tb[160];
    return fail(c, "json: cannot unmarshal number %.*s into Go value of type %s",
                (int)(n > 100 ? 100 : n), p, go_type(f, tb, sizeof tb));
}
}

/* A quoted number: jsonpb strips the quotes without unescaping and json.Unmarshals the rest. */
static int dec_quoted_number(struct dctx *c, const ProtobufCFieldDescriptor *f, const char *p,
                             size_t n, void *dst)
{
    struct cn_pbjson__tree t;
    size_t end;
    int rc = cn_pbjson__parse(&t, p, n, PJ_UNMARSHAL, c->max_depth, &end, c->err);
    if (rc != 0) {
        cn_pbjson__tree_free(&t);
        c->err->code = CN_GRPC_INVALID_ARGUMENT;
        return CN_ERR_PARSE;
    }
    const struct cn_pbjson__node *nd = &t.nodes[0];
    rc = dec_number(c, f, p + nd->start, nd->len, nd->type, dst);
    cn_pbjson__tree_free(&t);
    return rc;
}

/* ---- base64, as Go's encoding/base64.StdEncoding.Decode ---- */

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

static int b64_decode(struct dctx *c, const unsigned char *s, size_t n, uint8_t *out, size_t *olen)
{
    size_t si = 0, o = 0;
    for (;;) {
        uint32_t q[4];
        size_t j, dlen = 4;
        for (j = 0; j < 4; j++) {
            if (si == n) {
                if (j == 0) {
                    *olen = o;
                    return 0;
                }
                return fail(c, "illegal base64 data at input byte %zu", si - j);
            }
            unsigned char ch = s[si++];
            int v = b64val(ch);
            if (v >= 0) {
                q[j] = (uint32_t)v;
                continue;
            }
            if (ch == '\n' || ch == '\r') {
                j--;
                continue;
            }
            if (ch != '=') return fail(c, "illegal base64 data at input byte %zu", si - 1);
            /* padding */
            if (j < 2) return fail(c, "illegal base64 data at input byte %zu", si - 1);
            if (j == 2) {
                while (si < n && (s[si] == '\n' || s[si] == '\r'))
                    si++;
                if (si == n) return fail(c, "illegal base64 data at input byte %zu", n);
                if (s[si] != '=') return fail(c, "illegal base64 data at input byte %zu", si - 1);
                si++;
            }
            while (si < n && (s[si] == '\n' || s[si] == '\r'))
                si++;
            if (si < n) return fail(c, "illegal base64 data at input byte %zu", si);
            dlen = j;
            break;
        }
        for (size_t k = dlen; k < 4; k++)
            q[k] = 0;
        uint32_t v = q[0] << 18 | q[1] << 12 | q[2] << 6 | q[3];
        if (dlen >= 2) out[o++] = (uint8_t)(v >> 16);
        if (dlen >= 3) out[o++] = (uint8_t)(v >> 8);
        if (dlen >= 4) out[o++] = (uint8_t)v;
        if (dlen < 4) {
            *olen = o;
            return 0;
        }
    }
}

/* Go's encoding/json also fills a []byte from an array of numbers 0..255 (null elements are
 * 0): {"key":[102,111,111]} is "foo" on etcd's gateway. */
static int dec_byte_array(struct dctx *c, int32_t node, ProtobufCBinaryData *b)
{
    size_t n = 0;
    for (int32_t k = c->t->nodes[node].first; k >= 0; k = c->t->nodes[k].next)
        n++;
    uint8_t *data = n ? cn_xmalloc(n) : NULL;
    size_t i = 0;
    for (int32_t k = c->t->nodes[node].first; k >= 0; k = c->t->nodes[k].next, i++) {
        const struct cn_pbjson__node *e = &c->t->nodes[k];
        const char *raw = c->t->p + e->start;
        uint64_t v = 0;
        if (e->type == JT_NUM) {
            if (!parse_int(raw, e->len, false, 32, &v) || v > 255) {
                cn_free(data);
                return fail(c, "json: cannot unmarshal number %.*s into Go value of type uint8",
                            (int)(e->len > 100 ? 100 : e->len), raw);
            }
        } else if (e->type != JT_NULL) {
            cn_free(data);
            return fail(c, "json: cannot unmarshal %s into Go value of type uint8",
                        kind_word(e->type));
        }
        data[i] = (uint8_t)v;
    }
    cn_free(b->data);
    b->data = data;
    b->len = n;
    return 0;
}

/* ---- fields ---- */

static int dec_message(struct dctx *c, const ProtobufCMessageDescriptor *d, int32_t node,
                       ProtobufCMessage *m, unsigned depth);

static void free_value(const ProtobufCFieldDescriptor *f, void *dst)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char **s = dst;
        if (*s && *s != protobuf_c_empty_string) cn_free(*s);
        *s = NULL;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = dst;
        cn_free(b->data);
        b->data = NULL;
        b->len = 0;
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **sub = dst;
        if (*sub) protobuf_c_message_free_unpacked(*sub, &cn_pbjson_allocator);
        *sub = NULL;
    }
}

/* Decodes one (singular or element) value into dst, which holds a zero value. */
static int dec_value(struct dctx *c, const ProtobufCFieldDescriptor *f, int32_t node, void *dst,
                     unsigned depth)
{
    const struct cn_pbjson__node *nd = &c->t->nodes[node];
    const char *raw = c->t->p + nd->start;
    switch (f->type) {
    case PROTOBUF_C_TYPE_ENUM:
        if (nd->type == JT_STR) {
            const ProtobufCEnumDescriptor *ed = f->descriptor;
            size_t n = nd->len - 2;
            for (unsigned k = 0; k < ed->n_values; k++) {
                if (strlen(ed->values[k].name) == n &&
                    memcmp(ed->values[k].name, raw + 1, n) == 0) {
                    *(int *)dst = ed->values[k].value;
                    return 0;
                }
            }
            /* Go's %q of the raw text: printable ASCII as is, the rest escaped */
            cn_buf_reset(&c->tmp);
            for (size_t k = 0; k < n && k < 100; k++) {
                unsigned char ch = (unsigned char)raw[1 + k];
                if (ch == '"' || ch == '\\')
                    cn_buf_appendf(&c->tmp, "\\%c", ch);
                else if (ch >= 0x20 && ch < 0x7f)
                    cn_buf_putc(&c->tmp, (char)ch);
                else
                    cn_buf_appendf(&c->tmp, "\\x%02x", ch);
            }
            char tb[160];
            enum_go_name(tb, sizeof tb, ed);
            return fail(c, "unknown value \"%s\" for enum %s", c->tmp.p ? c->tmp.p : "", tb);
        }
        return dec_number(c, f, raw, nd->len, nd->type, dst);
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (nd->type == JT_STR) {
            if (f->type == PROTOBUF_C_TYPE_FLOAT || f->type == PROTOBUF_C_TYPE_DOUBLE) {
                double inf = 1e308 * 10;
                if (nd->len == 5 && memcmp(raw, "\"NaN\"", 5) == 0) {
                    store_num(f, dst, 0, inf - inf);
                    return 0;
                }
                if (nd->len == 10 && memcmp(raw, "\"Infinity\"", 10) == 0) {
                    store_num(f, dst, 0, inf);
                    return 0;
                }
                if (nd->len == 11 && memcmp(raw, "\"-Infinity\"", 11) == 0) {
                    store_num(f, dst, 0, -inf);
                    return 0;
                }
            }
            return dec_quoted_number(c, f, raw + 1, nd->len - 2, dst);
        }
        return dec_number(c, f, raw, nd->len, nd->type, dst);
    case PROTOBUF_C_TYPE_BOOL:
        if (nd->type == JT_TRUE || nd->type == JT_FALSE) {
            *(protobuf_c_boolean *)dst = nd->type == JT_TRUE;
            return 0;
        }
        if (nd->type == JT_NULL) return 0;
        return type_err(c, f, kind_word(nd->type));
    case PROTOBUF_C_TYPE_STRING: {
        if (nd->type == JT_NULL) return 0;
        if (nd->type != JT_STR) return type_err(c, f, kind_word(nd->type));
        cn_buf_reset(&c->tmp);
        cn_pbjson__unescape(&c->tmp, raw, nd->len);
        if (c->tmp.len && memchr(c->tmp.p, 0, c->tmp.len))
            return fail(c, "string field %s holds a NUL character", f->name);
        char **s = dst;
        if (*s && *s != protobuf_c_empty_string) cn_free(*s);
        *s = cn_xstrndup(c->tmp.p ? c->tmp.p : "", c->tmp.len);
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (nd->type == JT_NULL) return 0;
        if (nd->type == JT_ARR) return dec_byte_array(c, node, dst);
        if (nd->type != JT_STR) return type_err(c, f, kind_word(nd->type));
        cn_buf_reset(&c->tmp);
        cn_pbjson__unescape(&c->tmp, raw, nd->len);
        ProtobufCBinaryData *b = dst;
        uint8_t *data = cn_xmalloc(c->tmp.len / 4 * 3 + 3);
        size_t olen = 0;
        int rc = b64_decode(c, (const unsigned char *)(c->tmp.p ? c->tmp.p : ""), c->tmp.len, data,
                            &olen);
        if (rc != 0) {
            cn_free(data);
            return rc;
        }
        cn_free(b->data);
        if (olen == 0) {
            cn_free(data);
            data = NULL;
        }
        b->data = data;
        b->len = olen;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage **sub = dst;
        if (nd->type != JT_OBJ) {
            if (nd->type == JT_NULL) return 0;
            return fail(c,
                        "json: cannot unmarshal %s into Go value of type "
                        "map[string]json.RawMessage",
                        kind_word(nd->type));
        }
        if (*sub == NULL) {
            *sub = cn_xmalloc(sd->sizeof_message);
            protobuf_c_message_init(sd, *sub);
        }
        return dec_message(c, sd, node, *sub, depth + 1);
    }
    }
    return fail(c, "unsupported field type");
}

static int dec_repeated(struct dctx *c, const ProtobufCFieldDescriptor *f, int32_t node, char *base,
                        unsigned depth)
{
    const struct cn_pbjson__node *nd = &c->t->nodes[node];
    if (nd->type == JT_NULL) return 0;
    if (nd->type != JT_ARR)
        return fail(c, "json: cannot unmarshal %s into Go value of type []json.RawMessage",
                    kind_word(nd->type));
    size_t *np = (size_t *)(base + f->quantifier_offset);
    void **arrp = (void **)(base + f->offset);
    size_t n = 0;
    for (int32_t k = nd->first; k >= 0; k = c->t->nodes[k].next)
        n++;
    size_t sz = cn_pbjson__elem_size(f);
    /* free what an earlier occurrence of the key left */
    for (size_t k = 0; k < *np; k++)
        free_value(f, (char *)*arrp + k * sz);
    cn_free(*arrp);
    *arrp = NULL;
    *np = 0;
    if (n == 0) return 0;
    char *arr = cn_xcalloc(n, sz);
    *arrp = arr;
    size_t i = 0;
    for (int32_t k = nd->first; k >= 0; k = c->t->nodes[k].next, i++) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && c->t->nodes[k].type == JT_NULL) {
            char tb[200];
            const ProtobufCMessageDescriptor *sd = f->descriptor;
            snprintf(tb, sizeof tb, "%s", sd->name);
            return fail(c, "null element in repeated field %s of type %s", f->name, tb);
        }
        *np = i + 1; /* what is decoded so far is freeable */
        int rc = dec_value(c, f, k, arr + i * sz, depth);
        if (rc != 0) return rc;
        if (f->type == PROTOBUF_C_TYPE_STRING && *(char **)(arr + i * sz) == NULL)
            *(char **)(arr + i * sz) = cn_xstrdup(""); /* a null element is "" */
    }
    return 0;
}

static bool key_is(struct dctx *c, const struct cn_pbjson__node *k, const char *name, size_t nl)
{
    const char *raw = c->t->p + k->start;
    /* fast path: no escapes */
    if (k->len - 2 == nl && memcmp(raw + 1, name, nl) == 0) return true;
    if (!memchr(raw, '\\', k->len)) return false;
    cn_buf_reset(&c->tmp);
    cn_pbjson__unescape(&c->tmp, raw, k->len);
    return c->tmp.len == nl && memcmp(c->tmp.p, name, nl) == 0;
}

/* protoc's JSON name: '_' dropped and the next letter upper-cased (range_end -> rangeEnd). */
static void camel(char *out, size_t cap, const char *name)
{
    size_t o = 0;
    bool up = false;
    for (const char *q = name; *q && o + 1 < cap; q++) {
        if (*q == '_') {
            up = true;
        } else if (up) {
            out[o++] = (*q >= 'a' && *q <= 'z') ? (char)(*q - 'a' + 'A') : *q;
            up = false;
        } else {
            out[o++] = *q;
        }
    }
    out[o] = 0;
}

/* The value node for field f in object node obj, or -1: the last occurrence of the proto name,
 * replaced by the last occurrence of the JSON name when that is there too (jsonpb). */
static int32_t find_field(struct dctx *c, int32_t obj, const ProtobufCFieldDescriptor *f)
{
    char cm[128];
    camel(cm, sizeof cm, f->name);
    size_t nl = strlen(f->name), cl = strlen(cm);
    int32_t orig = -1, cam = -1;
    for (int32_t k = c->t->nodes[obj].first; k >= 0;) {
        const struct cn_pbjson__node *kn = &c->t->nodes[k];
        int32_t v = kn->next;
        if (key_is(c, kn, f->name, nl)) orig = v;
        if (key_is(c, kn, cm, cl)) cam = v;
        k = c->t->nodes[v].next;
    }
    return cam >= 0 ? cam : orig;
}

static int dec_field(struct dctx *c, const ProtobufCFieldDescriptor *f, int32_t v, char *base,
                     unsigned depth)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return dec_repeated(c, f, v, base, depth);
    if (c->t->nodes[v].type == JT_NULL) return 0;
    void *dst = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = (uint32_t *)(base + f->quantifier_offset);
        if (*cs != f->id && *cs != 0) {
            /* another member was set earlier: drop it (storage is shared) */
            const ProtobufCFieldDescriptor *prev = protobuf_c_message_descriptor_get_field(
                ((ProtobufCMessage *)base)->descriptor, *cs);
            if (prev) free_value(prev, base + prev->offset);
        }
        if (*cs != f->id) memset(dst, 0, cn_pbjson__elem_size(f));
        *cs = f->id;
        return dec_value(c, f, v, dst, depth);
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    return dec_value(c, f, v, dst, depth);
}

static int dec_message(struct dctx *c, const ProtobufCMessageDescriptor *d, int32_t node,
                       ProtobufCMessage *m, unsigned depth)
{
    if (depth > c->max_depth) {
        c->err->code = CN_GRPC_INVALID_ARGUMENT;
        snprintf(c->err->msg, sizeof c->err->msg, "exceeded max depth");
        return CN_ERR_TOO_LARGE;
    }
    const struct cn_pbjson__node *nd = &c->t->nodes[node];
    if (nd->type == JT_NULL) return 0;
    if (nd->type != JT_OBJ)
        return fail(c, "json: cannot unmarshal %s into Go value of type map[string]json.RawMessage",
                    kind_word(nd->type));
    char *base = (char *)m;
    /* jsonpb: the plain fields in struct (= field number) order, then the oneofs */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < d->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            bool oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
            if (oneof != (pass == 1)) continue;
            int32_t v = find_field(c, node, f);
            if (v < 0) continue;
            int rc = dec_field(c, f, v, base, depth);
            if (rc != 0) return rc;
        }
    }
    return 0;
}

int cn_pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *p, size_t len,
                     const struct cn_pbjson_limits *lim, ProtobufCMessage **out,
                     struct cn_pbjson_error *err)
{
    size_t max_len = lim && lim->max_len ? lim->max_len : DEFAULT_MAX_LEN;
    unsigned max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
    *out = NULL;
    if (len > max_len) {
        /* what etcd's gRPC server says of an oversized request (there, of its protobuf) */
        err->code = CN_GRPC_RESOURCE_EXHAUSTED;
        snprintf(err->msg, sizeof err->msg, "grpc: received message larger than max (%zu vs. %zu)",
                 len, max_len);
        return CN_ERR_TOO_LARGE;
    }
    struct cn_pbjson__tree t;
    size_t end;
    int rc = cn_pbjson__parse(&t, p, len, PJ_DECODER, max_depth, &end, err);
    ProtobufCMessage *m = cn_xmalloc(desc->sizeof_message);
    protobuf_c_message_init(desc, m);
    if (rc == CN_ERR_EOF) {
        /* an empty body is an empty request (grpc-gateway ignores io.EOF) */
        cn_pbjson__tree_free(&t);
        *out = m;
        return 0;
    }
    if (rc == CN_ERR_AGAIN) rc = CN_ERR_PARSE; /* "unexpected EOF" */
    if (rc != 0) {
        cn_pbjson__tree_free(&t);
        cn_free(m);
        return rc;
    }
    struct dctx c = {.t = &t, .err = err, .max_depth = max_depth};
    cn_buf_init(&c.tmp);
    rc = dec_message(&c, desc, 0, m, 0);
    cn_buf_free(&c.tmp);
    cn_pbjson__tree_free(&t);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(m, &cn_pbjson_allocator);
        return rc;
    }
    *out = m;
    return 0;
}

int cn_pbjson_check_size(const ProtobufCMessage *msg, size_t max_bytes, struct cn_pbjson_error *err)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n <= max_bytes) return 0;
    err->code = CN_GRPC_RESOURCE_EXHAUSTED;
    snprintf(err->msg, sizeof err->msg, "grpc: received message larger than max (%zu vs. %zu)", n,
             max_bytes);
    return CN_ERR_TOO_LARGE;
}

void cn_pbjson_free(ProtobufCMessage *msg)
{
    if (msg) protobuf_c_message_free_unpacked(msg, &cn_pbjson_allocator);
}
