/* libFuzzer target for mvcc's snapshot load (src/mvcc/snap.c). The input is a payload: the driver
 * adds a valid header (magic, version, length, CRC) so that the fuzzer reaches the decoder's
 * validation instead of stopping at the checksum. When a load succeeds, the state it built must
 * work: it encodes, reloads and re-encodes to the same bytes, hashes equal, and reads, watch
 * catch-up, a compaction and writes run on it (mvcc's internal assertions stay on). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "fuzz.h"
#include "mvcc/mvcc.h"

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void exercise(struct cn_mvcc *m)
{
    struct cn_mvcc_range_result r = {0};
    struct cn_mvcc_range_req q = {.key = CN_STR("\0"), .range_end = CN_STR("\0")};
    q.key = cn_str_make("\0", 1);
    q.range_end = cn_str_make("\0", 1);
    CHECK(cn_mvcc_range(m, &q, &r) == 0);
    CHECK((uint64_t)r.count == cn_mvcc_key_count(m));
    CHECK(r.n == (size_t)r.count);
    q.rev = cn_mvcc_compacted_rev(m) > 0 ? cn_mvcc_compacted_rev(m) : 1;
    CHECK(cn_mvcc_range(m, &q, &r) == 0);
    struct cn_mvcc_event *ev = NULL;
    size_t n = 0, cap = 0;
    CHECK(cn_mvcc_changes(m, cn_mvcc_compacted_rev(m), 0, 0, &ev, &n, &cap) >= 0);
    cn_free(ev);
    struct cn_mvcc_txn *t = cn_mvcc_txn_begin(m);
    CHECK(cn_mvcc_txn_put(t, CN_STR("fuzz"), CN_STR("v"), 0, 0, NULL, NULL) == 0);
    CHECK(cn_mvcc_txn_delete_range(t, cn_str_make("\0", 1), CN_STR("b"), NULL, NULL) == 0);
    int64_t rev = cn_mvcc_txn_end(t, NULL, NULL);
    CHECK(cn_mvcc_compact(m, rev) == 0);
    for (size_t i = 0; i < cn_mvcc_lease_count(m); i++) {
        int64_t id = 0;
        cn_mvcc_lease_at(m, i, &id, NULL);
        CHECK(cn_mvcc_lease_revoke(m, id, NULL, NULL, NULL) == 0);
        i--;
    }
    cn_mvcc_range_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    struct cn_buf in = CN_BUF_INIT;
    unsigned char h[20];
    memcpy(h, "CNMV", 4);
    put_le(h + 4, 1, 4);
    put_le(h + 8, size, 8);
    put_le(h + 16, crc32(crc32(0L, Z_NULL, 0), data, (uInt)size), 4);
    cn_buf_append(&in, h, sizeof(h));
    cn_buf_append(&in, data, size);
    struct cn_mvcc *m = cn_mvcc_new();
    int rc = cn_mvcc_snapshot_load(m, in.p, in.len);
    CHECK(rc == 0 || rc == CN_ERR_CORRUPT || rc == CN_ERR_TOO_LARGE);
    if (rc == 0) {
        struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
        cn_mvcc_snapshot_save(m, &a);
        struct cn_mvcc *f = cn_mvcc_new();
        CHECK(cn_mvcc_snapshot_load(f, a.p, a.len) == 0);
        cn_mvcc_snapshot_save(f, &b);
        CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
        uint32_t h1 = 0, h2 = 0;
        CHECK(cn_mvcc_hash(m, 0, &h1, NULL) == 0 && cn_mvcc_hash(f, 0, &h2, NULL) == 0);
        CHECK(h1 == h2);
        exercise(f);
        cn_mvcc_free(f);
        cn_buf_free(&a);
        cn_buf_free(&b);
    } else {
        /* a failed load leaves the fresh store as it was */
        CHECK(cn_mvcc_rev(m) == 1 && cn_mvcc_key_count(m) == 0);
    }
    cn_mvcc_free(m);
    cn_buf_free(&in);
    return 0;
}
