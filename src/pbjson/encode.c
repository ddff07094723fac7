/* pbjson: protobuf-c message -> JSON, walking the message's descriptor (rules in pbjson.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "pbjson/pbjson.h"
#include "pbjson/pbjson_int.h"

static void enc_message(struct cn_buf *out, const ProtobufCMessage *m);

static void enc_base64(struct cn_buf *out, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    cn_buf_reserve(out, (n + 2) / 3 * 4 + 2);
    cn_buf_putc(out, '"');
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        cn_buf_append(out, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], '=', '='};
        cn_buf_append(out, q, 4);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], '='};
        cn_buf_append(out, q, 4);
    }
    cn_buf_putc(out, '"');
}

/* Go's encoding/json float format: shortest repr, 'e' form outside [1e-6, 1e21), NaN and the
 * infinities as jsonpb's strings. No etcd message has a float; kept for completeness. */
static void enc_double(struct cn_buf *out, double v, bool is_float)
{
    if (isnan(v)) {
        cn_buf_appends(out, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        cn_buf_appends(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    char b[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (is_float ? (float)strtod(b, NULL) == (float)v : strtod(b, NULL) == v) break;
    }
    cn_buf_appends(out, b);
}

static void enc_value(struct cn_buf *out, const ProtobufCFieldDescriptor *f, const void *pv)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        cn_buf_appendf(out, "%" PRId32, *(const int32_t *)pv);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        cn_buf_appendf(out, "%" PRIu32, *(const uint32_t *)pv);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        cn_buf_appendf(out, "\"%" PRId64 "\"", *(const int64_t *)pv);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        cn_buf_appendf(out, "\"%" PRIu64 "\"", *(const uint64_t *)pv);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        enc_double(out, *(const float *)pv, true);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        enc_double(out, *(const double *)pv, false);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        cn_buf_appends(out, *(const protobuf_c_boolean *)pv ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)pv;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, v);
        /* jsonpb writes a value without a name as a bare number */
        if (ev)
            cn_pbjson__quote(out, ev->name, strlen(ev->name));
        else
            cn_buf_appendf(out, "%d", v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)pv;
        if (s)
            cn_pbjson__quote(out, s, strlen(s));
        else
            cn_buf_appends(out, "\"\"");
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = pv;
        enc_base64(out, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)pv;
        if (sub)
            enc_message(out, sub);
        else
            cn_buf_appends(out, "null");
        break;
    }
    }
}

size_t cn_pbjson__elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 4;
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    }
    return 0;
}

/* Whether a singular proto3 field holds its zero value, which jsonpb leaves out. */
static bool is_zero(const ProtobufCFieldDescriptor *f, const void *pv)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *)pv == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)pv == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)pv == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)pv == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)pv;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *)pv == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)pv;
        return s == NULL || s[0] == 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)pv)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)pv == NULL;
    }
    return true;
}

static void enc_message(struct cn_buf *out, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    bool first = true;
    cn_buf_putc(out, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *pv = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (n == 0) continue;
            if (!first) cn_buf_putc(out, ',');
            first = false;
            cn_pbjson__quote(out, f->name, strlen(f->name));
            cn_buf_appends(out, ":[");
            const char *arr = *(char *const *)pv;
            size_t sz = cn_pbjson__elem_size(f);
            for (size_t k = 0; k < n; k++) {
                if (k) cn_buf_putc(out, ',');
                enc_value(out, f, arr + k * sz);
            }
            cn_buf_putc(out, ']');
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* jsonpb writes the set member of a oneof whatever its value */
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) continue;
        } else if (is_zero(f, pv)) {
            continue;
        }
        if (!first) cn_buf_putc(out, ',');
        first = false;
        cn_pbjson__quote(out, f->name, strlen(f->name));
        cn_buf_putc(out, ':');
        enc_value(out, f, pv);
    }
    cn_buf_putc(out, '}');
}

void cn_pbjson_encode(struct cn_buf *out, const ProtobufCMessage *msg)
{
    enc_message(out, msg);
}
