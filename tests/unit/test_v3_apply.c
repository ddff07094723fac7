/* Unit tests for api/v3's replicated half (apply.c) and its checks (check.c): commands built as
 * the proposer builds them, applied to a real mvcc, answers compared on concrete values
 * (revisions, kvs, the Txn path, etcd's errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/v3/apply.h"
#include "common/err.h"

static struct cn_mvcc *KV;
static struct cn_mvcc_lessor *LS;
static struct cn_v3_apply A;
static struct cn_v3_result R;

static int setup(void **state)
{
    (void)state;
    KV = cn_mvcc_new();
    LS = cn_mvcc_lessor_new();
    cn_v3_apply_init(&A, KV, LS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cn_v3_apply_free(&A);
    cn_mvcc_lessor_free(LS);
    cn_mvcc_free(KV);
    return 0;
}

static ProtobufCBinaryData B(const char *s)
{
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* Encodes msg as a command of kind and applies it; returns the result's error. */
static enum cn_v3_err run(enum cn_v3_kind kind, const ProtobufCMessage *msg)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_v3_cmd_head(&b, kind);
    size_t len = protobuf_c_message_get_packed_size(msg);
    cn_buf_reserve(&b, len);
    b.len += protobuf_c_message_pack(msg, (uint8_t *)b.p + b.len);
    int rc = cn_v3_apply_cmd(&A, b.p, b.len, &R);
    cn_buf_free(&b);
    assert_int_equal(rc, 0);
    return R.err;
}

static int64_t put(const char *k, const char *v)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B(k);
    p.value = B(v);
    assert_int_equal(run(CN_V3_PUT, &p.base), CN_V3_OK);
    return ((Etcdserverpb__PutResponse *)R.resp)->header->revision;
}

static void test_put_revisions_and_prev_kv(void **state)
{
    (void)state;
    assert_int_equal(put("a", "1"), 2);
    assert_int_equal(put("a", "2"), 3);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B("a");
    p.value = B("3");
    p.prev_kv = true;
    assert_int_equal(run(CN_V3_PUT, &p.base), CN_V3_OK);
    Etcdserverpb__PutResponse *r = (void *)R.resp;
    assert_int_equal(r->header->revision, 4);
    assert_non_null(r->prev_kv);
    assert_memory_equal(r->prev_kv->value.data, "2", 1);
    assert_int_equal(r->prev_kv->mod_revision, 3);
    assert_int_equal(r->prev_kv->version, 2);
    assert_int_equal(r->prev_kv->create_revision, 2);
}

static void test_put_ignore_value_needs_key(void **state)
{
    (void)state;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B("nokey");
    p.ignore_value = true;
    assert_int_equal(run(CN_V3_PUT, &p.base), CN_V3_E_KEY_NOT_FOUND);
    assert_null(R.resp);
    assert_int_equal(cn_mvcc_rev(KV), 1);
    p.key = B("a");
    p.ignore_value = false;
    p.lease = 12345;
    assert_int_equal(run(CN_V3_PUT, &p.base), CN_V3_E_LEASE_NOT_FOUND);
    assert_int_equal(cn_mvcc_rev(KV), 1);
}

static void test_range_sort_limit_count(void **state)
{
    (void)state;
    put("k3", "a");
    put("k1", "c");
    put("k2", "b");
    put("k1", "d"); /* k1 version 2 */
    struct cn_arena ar = CN_ARENA_INIT;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = B("k");
    q.range_end = B("l");
    q.limit = 2;
    Etcdserverpb__RangeResponse *r;
    assert_int_equal(cn_v3_range(&A, &ar, &q, &r), CN_V3_OK);
    assert_int_equal(r->n_kvs, 2);
    assert_true(r->more);
    assert_int_equal(r->count, 3);
    assert_memory_equal(r->kvs[0]->key.data, "k1", 2);
    assert_memory_equal(r->kvs[1]->key.data, "k2", 2);
    assert_int_equal(r->header->revision, 5);

    /* a non-key target sorts ascending by default; ties keep key order */
    q.limit = 0;
    q.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
    assert_int_equal(cn_v3_range(&A, &ar, &q, &r), CN_V3_OK);
    assert_int_equal(r->n_kvs, 3);
    assert_memory_equal(r->kvs[0]->key.data, "k3", 2); /* "a" */
    assert_memory_equal(r->kvs[1]->key.data, "k2", 2); /* "b" */
    assert_memory_equal(r->kvs[2]->key.data, "k1", 2); /* "d" */

    q.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD;
    q.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    q.limit = 1;
    assert_int_equal(cn_v3_range(&A, &ar, &q, &r), CN_V3_OK);
    assert_int_equal(r->n_kvs, 1);
    assert_true(r->more);
    assert_memory_equal(r->kvs[0]->key.data, "k1", 2);
    assert_int_equal(r->kvs[0]->mod_revision, 5);

    /* keys_only drops values, count_only drops kvs; a historical read answers today's header */
    Etcdserverpb__RangeRequest h = ETCDSERVERPB__RANGE_REQUEST__INIT;
    h.key = B("k1");
    h.revision = 3;
    assert_int_equal(cn_v3_range(&A, &ar, &h, &r), CN_V3_OK);
    assert_int_equal(r->n_kvs, 1);
    assert_memory_equal(r->kvs[0]->value.data, "c", 1);
    assert_int_equal(r->header->revision, 5);
    h.revision = 6;
    assert_int_equal(cn_v3_range(&A, &ar, &h, &r), CN_V3_E_FUTURE_REV);
    cn_arena_free(&ar);
}

static Etcdserverpb__RequestOp *op_put(Etcdserverpb__RequestOp *op, Etcdserverpb__PutRequest *p,
                                       const char *k, const char *v)
{
    etcdserverpb__request_op__init(op);
    etcdserverpb__put_request__init(p);
    p->key = B(k);
    p->value = B(v);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = p;
    return op;
}

static Etcdserverpb__RequestOp *op_range(Etcdserverpb__RequestOp *op, Etcdserverpb__RangeRequest *q,
                                         const char *k)
{
    etcdserverpb__request_op__init(op);
    etcdserverpb__range_request__init(q);
    q->key = B(k);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op->request_range = q;
    return op;
}

/* Kubernetes' create: If(mod(k) = 0) Then(Put k) Else(Range k). */
static void test_txn_create_then_conflict(void **state)
{
    (void)state;
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    c.key = B("/registry/pods/p");
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 0;
    Etcdserverpb__Compare *cs[] = {&c};
    Etcdserverpb__RequestOp o1, o2;
    Etcdserverpb__PutRequest p;
    Etcdserverpb__RangeRequest q;
    Etcdserverpb__RequestOp *succ[] = {op_put(&o1, &p, "/registry/pods/p", "v1")};
    Etcdserverpb__RequestOp *fail[] = {op_range(&o2, &q, "/registry/pods/p")};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = cs;
    t.n_success = 1;
    t.success = succ;
    t.n_failure = 1;
    t.failure = fail;
    assert_int_equal(cn_v3_check_txn(&t, 128), CN_V3_OK);
    assert_int_equal(run(CN_V3_TXN, &t.base), CN_V3_OK);
    Etcdserverpb__TxnResponse *r = (void *)R.resp;
    assert_true(r->succeeded);
    assert_int_equal(r->header->revision, 2);
    assert_int_equal(r->n_responses, 1);
    assert_int_equal(r->responses[0]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
    assert_int_equal(r->responses[0]->response_put->header->revision, 2);

    /* the second create fails and reads the object instead; nothing is written */
    assert_int_equal(run(CN_V3_TXN, &t.base), CN_V3_OK);
    r = (void *)R.resp;
    assert_false(r->succeeded);
    assert_int_equal(r->header->revision, 2);
    Etcdserverpb__RangeResponse *rr = r->responses[0]->response_range;
    assert_int_equal(rr->n_kvs, 1);
    assert_memory_equal(rr->kvs[0]->value.data, "v1", 2);
    assert_int_equal(rr->kvs[0]->mod_revision, 2);
    assert_int_equal(cn_mvcc_rev(KV), 2);
}

/* A range after a put in the same txn sees the put; a value compare on a missing key fails. */
static void test_txn_reads_its_writes(void **state)
{
    (void)state;
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    c.key = B("missing");
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("x");
    Etcdserverpb__Compare *cs[] = {&c};
    Etcdserverpb__RequestOp o1, o2;
    Etcdserverpb__PutRequest p;
    Etcdserverpb__RangeRequest q;
    Etcdserverpb__RequestOp *ops[] = {op_put(&o1, &p, "k", "new"), op_range(&o2, &q, "k")};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = cs;
    t.n_failure = 2;
    t.failure = ops;
    assert_int_equal(run(CN_V3_TXN, &t.base), CN_V3_OK);
    Etcdserverpb__TxnResponse *r = (void *)R.resp;
    assert_false(r->succeeded);
    assert_int_equal(r->n_responses, 2);
    assert_int_equal(r->header->revision, 2);
    Etcdserverpb__RangeResponse *rr = r->responses[1]->response_range;
    assert_int_equal(rr->n_kvs, 1);
    assert_memory_equal(rr->kvs[0]->value.data, "new", 3);
    assert_int_equal(rr->header->revision, 2);
}

static void test_txn_checks(void **state)
{
    (void)state;
    Etcdserverpb__RequestOp o1, o2;
    Etcdserverpb__PutRequest p1, p2;
    Etcdserverpb__RequestOp *dup[] = {op_put(&o1, &p1, "k", "1"), op_put(&o2, &p2, "k", "2")};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = 2;
    t.success = dup;
    assert_int_equal(cn_v3_check_txn(&t, 128), CN_V3_E_DUPLICATE_KEY);
    assert_int_equal(cn_v3_check_txn(&t, 1), CN_V3_E_TOO_MANY_OPS);

    /* a put under a delete range of the same branch is a duplicate too */
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = B("a");
    d.range_end = B("z");
    etcdserverpb__request_op__init(&o2);
    o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    o2.request_delete_range = &d;
    Etcdserverpb__RequestOp *del[] = {op_put(&o1, &p1, "k", "1"), &o2};
    t.success = del;
    assert_int_equal(cn_v3_check_txn(&t, 128), CN_V3_E_DUPLICATE_KEY);
    /* the same key in the two branches is fine */
    Etcdserverpb__RequestOp *s1[] = {op_put(&o1, &p1, "k", "1")};
    Etcdserverpb__RequestOp *f1[] = {op_put(&o2, &p2, "k", "2")};
    t.n_success = 1;
    t.success = s1;
    t.n_failure = 1;
    t.failure = f1;
    assert_int_equal(cn_v3_check_txn(&t, 128), CN_V3_OK);
    /* an empty key anywhere */
    p2.key = B("");
    assert_int_equal(cn_v3_check_txn(&t, 128), CN_V3_E_EMPTY_KEY);
}

static void test_delete_and_compact(void **state)
{
    (void)state;
    put("a", "1");
    put("b", "2");
    put("c", "3");
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = B("a");
    d.range_end = B("c");
    d.prev_kv = true;
    assert_int_equal(run(CN_V3_DELETE_RANGE, &d.base), CN_V3_OK);
    Etcdserverpb__DeleteRangeResponse *r = (void *)R.resp;
    assert_int_equal(r->deleted, 2);
    assert_int_equal(r->n_prev_kvs, 2);
    assert_int_equal(r->header->revision, 5);
    /* deleting nothing takes no revision */
    assert_int_equal(run(CN_V3_DELETE_RANGE, &d.base), CN_V3_OK);
    r = (void *)R.resp;
    assert_int_equal(r->deleted, 0);
    assert_int_equal(r->header->revision, 5);

    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    c.revision = 4;
    assert_int_equal(run(CN_V3_COMPACTION, &c.base), CN_V3_OK);
    assert_int_equal(((Etcdserverpb__CompactionResponse *)R.resp)->header->revision, 5);
    assert_int_equal(run(CN_V3_COMPACTION, &c.base), CN_V3_E_COMPACTED);
    c.revision = 9;
    assert_int_equal(run(CN_V3_COMPACTION, &c.base), CN_V3_E_FUTURE_REV);
    struct cn_arena ar = CN_ARENA_INIT;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *rr;
    q.key = B("a");
    q.revision = 3;
    assert_int_equal(cn_v3_range(&A, &ar, &q, &rr), CN_V3_E_COMPACTED);
    q.revision = 4;
    assert_int_equal(cn_v3_range(&A, &ar, &q, &rr), CN_V3_OK);
    assert_int_equal(rr->n_kvs, 1);
    cn_arena_free(&ar);
}

static void test_lease_grant_revoke(void **state)
{
    (void)state;
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = 7;
    g.ttl = 30;
    assert_int_equal(run(CN_V3_LEASE_GRANT, &g.base), CN_V3_OK);
    assert_int_equal(((Etcdserverpb__LeaseGrantResponse *)R.resp)->ttl, 30);
    assert_int_equal(run(CN_V3_LEASE_GRANT, &g.base), CN_V3_E_LEASE_EXIST);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B("x");
    p.lease = 7;
    assert_int_equal(run(CN_V3_PUT, &p.base), CN_V3_OK);
    p.key = B("y");
    assert_int_equal(run(CN_V3_PUT, &p.base), CN_V3_OK);
    assert_int_equal(cn_mvcc_rev(KV), 3);
    Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    r.id = 7;
    assert_int_equal(run(CN_V3_LEASE_REVOKE, &r.base), CN_V3_OK);
    /* both keys went in one revision */
    assert_int_equal(((Etcdserverpb__LeaseRevokeResponse *)R.resp)->header->revision, 4);
    assert_int_equal(cn_mvcc_key_count(KV), 0);
    assert_int_equal(run(CN_V3_LEASE_REVOKE, &r.base), CN_V3_E_LEASE_NOT_FOUND);
}

static void test_bad_commands(void **state)
{
    (void)state;
    static const uint8_t junk[] = {CN_V3_CMD_TAG, CN_V3_PUT, 0x0a, 0x7f};
    assert_int_equal(cn_v3_apply_cmd(&A, junk, sizeof(junk), &R), CN_ERR_CORRUPT);
    static const uint8_t kind[] = {CN_V3_CMD_TAG, 99};
    assert_int_equal(cn_v3_apply_cmd(&A, kind, sizeof(kind), &R), CN_ERR_CORRUPT);
    /* a Txn nested past the bound is refused before protobuf-c recurses into it */
    /* TxnRequest{success: [RequestOp{request_txn: TxnRequest{...}}]} built inside out */
    uint8_t inner[4096];
    size_t in = 0;
    for (int level = 0; level < 400; level++) {
        /* RequestOp.request_txn = field 4, then TxnRequest.success = field 2 */
        uint8_t tmp[4096];
        size_t t = 0;
        tmp[t++] = 0x22; /* field 4, len-delimited */
        tmp[t++] = (uint8_t)in;
        if (in >= 128) break;
        memcpy(tmp + t, inner, in);
        t += in;
        inner[0] = 0x12; /* field 2 */
        inner[1] = (uint8_t)t;
        memcpy(inner + 2, tmp, t);
        in = t + 2;
    }
    assert_true(cn_v3_pb_depth_ok(&etcdserverpb__txn_request__descriptor, inner, in, 100));
    assert_false(cn_v3_pb_depth_ok(&etcdserverpb__txn_request__descriptor, inner, in, 10));
    assert_int_equal(cn_mvcc_rev(KV), 1);
}

static void test_min_lease_ttl(void **state)
{
    (void)state;
    assert_int_equal(cn_v3_min_lease_ttl(1000, 100), 2); /* 1.5 s, rounded up */
    assert_int_equal(cn_v3_min_lease_ttl(5000, 500), 8); /* 7.5 s */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_revisions_and_prev_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_ignore_value_needs_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_sort_limit_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_create_then_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_reads_its_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_compact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_grant_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_lease_ttl, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
