/* libFuzzer target for the v3 commands a member applies from its log (api/v3/apply.c over
 * mvcc): any bytes after the tag and kind must either be refused (CN_ERR_CORRUPT, nothing
 * changed) or applied, and the state must then still snapshot and load to the same bytes.
 *
 * Input: a kind byte, then the request's protobuf bytes; a few puts and a lease run first so that
 * compares, deletes and revokes have something to find. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/v3/apply.h"
#include "common/err.h"
#include "fuzz.h"

static void put(struct cn_v3_apply *a, const char *k, const char *v, int64_t lease)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
    p.value = (ProtobufCBinaryData){strlen(v), (uint8_t *)v};
    p.lease = lease;
    uint8_t buf[256] = {CN_V3_CMD_TAG, CN_V3_PUT};
    size_t n = protobuf_c_message_pack(&p.base, buf + 2);
    struct cn_v3_result r;
    CHECK(cn_v3_apply_cmd(a, buf, n + 2, &r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    struct cn_mvcc *kv = cn_mvcc_new();
    struct cn_mvcc_lessor *ls = cn_mvcc_lessor_new();
    struct cn_v3_apply a;
    cn_v3_apply_init(&a, kv, ls);
    int64_t got = 0;
    CHECK(cn_mvcc_lease_grant(kv, 7, 60, 1, &got) == 0);
    put(&a, "a", "1", 0);
    put(&a, "b", "2", 7);
    put(&a, "c", "3", 0);

    uint8_t *cmd = malloc(size + 1);
    cmd[0] = CN_V3_CMD_TAG;
    memcpy(cmd + 1, data, size);
    struct cn_v3_result r;
    int64_t rev = cn_mvcc_rev(kv);
    int rc = cn_v3_apply_cmd(&a, cmd, size + 1, &r);
    if (rc != 0) CHECK(cn_mvcc_rev(kv) == rev);
    if (rc == 0 && r.err != CN_V3_OK) CHECK(r.resp == NULL);
    /* a result, when there is one, packs */
    if (rc == 0 && r.resp) {
        size_t len = protobuf_c_message_get_packed_size(r.resp);
        uint8_t *out = malloc(len ? len : 1);
        CHECK(protobuf_c_message_pack(r.resp, out) == len);
        free(out);
    }
    struct cn_buf s1 = CN_BUF_INIT, s2 = CN_BUF_INIT;
    cn_mvcc_snapshot_save(kv, &s1);
    struct cn_mvcc *kv2 = cn_mvcc_new();
    CHECK(cn_mvcc_snapshot_load(kv2, s1.p, s1.len) == 0);
    cn_mvcc_snapshot_save(kv2, &s2);
    CHECK(s1.len == s2.len && memcmp(s1.p, s2.p, s1.len) == 0);
    cn_buf_free(&s1);
    cn_buf_free(&s2);
    cn_mvcc_free(kv2);
    free(cmd);
    cn_v3_apply_free(&a);
    cn_mvcc_lessor_free(ls);
    cn_mvcc_free(kv);
    return 0;
}
