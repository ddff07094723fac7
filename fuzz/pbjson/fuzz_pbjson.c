/* libFuzzer target for the JSON a gateway client sends (src/pbjson): the first byte picks a
 * request type (TxnRequest most often, since it nests oneofs and repeated messages), the rest
 * is the body. Whatever decodes must encode to JSON that decodes again to the same JSON, and
 * pack to protobuf that unpacks to the same JSON; the same bytes fed to the stream decoder in
 * two pieces must give the same first request. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"
#include "fuzz.h"
#include "pbjson/pbjson.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &etcdserverpb__txn_request__descriptor,
    &etcdserverpb__txn_request__descriptor,
    &etcdserverpb__txn_response__descriptor,
    &etcdserverpb__range_request__descriptor,
    &etcdserverpb__watch_request__descriptor,
    &etcdserverpb__watch_response__descriptor,
    &etcdserverpb__auth_role_grant_permission_request__descriptor,
    &etcdserverpb__status_response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const ProtobufCMessageDescriptor *d = types[data[0] % (sizeof types / sizeof types[0])];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct cn_pbjson_limits lim = {.max_len = 1 << 16, .max_depth = 32};
    ProtobufCMessage *m;
    struct cn_pbjson_error err;
    int rc = cn_pbjson_decode(d, p, n, &lim, &m, &err);
    if (rc != 0) {
        CHECK(m == NULL);
        CHECK(err.msg[0] != 0);
        CHECK(memchr(err.msg, 0, sizeof err.msg) != NULL);
    } else {
        struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT, c = CN_BUF_INIT;
        cn_pbjson_encode(&a, m);
        struct cn_pbjson_limits big = {.max_len = a.len + 1, .max_depth = 64};
        ProtobufCMessage *m2;
        CHECK(cn_pbjson_decode(d, a.p, a.len, &big, &m2, &err) == 0);
        cn_pbjson_encode(&b, m2);
        CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
        size_t wl = protobuf_c_message_get_packed_size(m);
        uint8_t *wire = malloc(wl ? wl : 1);
        CHECK(protobuf_c_message_pack(m, wire) == wl);
        ProtobufCMessage *u = protobuf_c_message_unpack(d, NULL, wl, wire);
        CHECK(u != NULL);
        cn_pbjson_encode(&c, u);
        CHECK(a.len == c.len && memcmp(a.p, c.p, a.len) == 0);
        protobuf_c_message_free_unpacked(u, NULL);
        free(wire);
        cn_pbjson_free(m2);
        cn_buf_free(&a);
        cn_buf_free(&b);
        cn_buf_free(&c);
    }
    /* the stream decoder on the same bytes, split in two */
    struct cn_pbjson_stream s;
    cn_pbjson_stream_init(&s, &lim);
    size_t cut = n / 2;
    bool fed_all = false;
    cn_pbjson_stream_feed(&s, p, cut, false);
    ProtobufCMessage *sm = NULL;
    for (int k = 0; k < 64; k++) {
        int src = cn_pbjson_stream_next(&s, d, &sm, &err);
        if (src == CN_ERR_AGAIN) {
            CHECK(!fed_all);
            cn_pbjson_stream_feed(&s, p + cut, n - cut, true);
            fed_all = true;
            continue;
        }
        if (src != 0) {
            CHECK(sm == NULL);
            break;
        }
        if (k == 0 && rc == 0) {
            /* the first request is the one a unary decode sees */
            struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
            cn_pbjson_encode(&a, m);
            cn_pbjson_encode(&b, sm);
            CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
            cn_buf_free(&a);
            cn_buf_free(&b);
        }
        cn_pbjson_free(sm);
        sm = NULL;
    }
    cn_pbjson_free(sm);
    cn_pbjson_stream_close(&s);
    cn_pbjson_free(m);
    return 0;
}
