"""KV semantics at the gRPC level, through the generated stubs python3-etcd3 ships
(etcd3.etcdrpc): Range filters and options no client wrapper exposes, nested Txn, Put's
ignore_value/ignore_lease, txn limits, range compares."""

import grpc
import pytest

from v3harness import client

pytestmark = pytest.mark.v3


@pytest.fixture
def kv(member):
    from etcd3 import etcdrpc
    c = client(member)
    yield c.kvstub, etcdrpc, c
    c.close()


def put(stub, rpc, key, value, **kw):
    return stub.Put(rpc.PutRequest(key=key, value=value, **kw), timeout=10)


def rng(stub, rpc, key, range_end=b"", **kw):
    return stub.Range(rpc.RangeRequest(key=key, range_end=range_end, **kw), timeout=10)


def err(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), ei.value.details()


def fill(stub, rpc):
    put(stub, rpc, b"a", b"1")        # 2
    put(stub, rpc, b"b", b"1")        # 3
    put(stub, rpc, b"a", b"2")        # 4
    put(stub, rpc, b"c", b"1")        # 5
    put(stub, rpc, b"d", b"1")        # 6


def test_range_options(kv):
    stub, rpc, _ = kv
    fill(stub, rpc)
    keys = lambda r: [x.key for x in r.kvs]
    r = rng(stub, rpc, b"\0", b"\0")
    assert (keys(r), r.count, r.more, r.header.revision) == ([b"a", b"b", b"c", b"d"], 4, False, 6)
    r = rng(stub, rpc, b"a", b"\0", limit=2)
    assert (keys(r), r.count, r.more) == ([b"a", b"b"], 4, True)
    r = rng(stub, rpc, b"b", b"d")
    assert (keys(r), r.count) == ([b"b", b"c"], 2)
    r = rng(stub, rpc, b"\0", b"\0", count_only=True)
    assert (list(r.kvs), r.count) == ([], 4)
    r = rng(stub, rpc, b"a", keys_only=True)
    assert [(x.key, x.value, x.version, x.mod_revision) for x in r.kvs] == [(b"a", b"", 2, 4)]
    r = rng(stub, rpc, b"\0", b"\0", min_mod_revision=4)
    assert keys(r) == [b"a", b"c", b"d"]
    r = rng(stub, rpc, b"\0", b"\0", max_mod_revision=4)
    assert keys(r) == [b"a", b"b"]
    r = rng(stub, rpc, b"\0", b"\0", min_create_revision=3, max_create_revision=5)
    assert keys(r) == [b"b", b"c"]
    r = rng(stub, rpc, b"\0", b"\0", sort_order=rpc.RangeRequest.DESCEND,
            sort_target=rpc.RangeRequest.MOD)
    assert keys(r) == [b"d", b"c", b"a", b"b"]
    r = rng(stub, rpc, b"\0", b"\0", sort_order=rpc.RangeRequest.ASCEND,
            sort_target=rpc.RangeRequest.VERSION)
    assert keys(r)[-1] == b"a"
    r = rng(stub, rpc, b"\0", b"\0", revision=3)
    assert ([(x.key, x.value) for x in r.kvs], r.header.revision) == (
        [(b"a", b"1"), (b"b", b"1")], 6)
    r = rng(stub, rpc, b"a", serializable=True)
    assert r.kvs[0].value == b"2"


def test_put_ignore_value_and_lease(kv, member):
    stub, rpc, c = kv
    lease = c.lease(60)
    put(stub, rpc, b"k", b"v1", lease=lease.id)                         # 2
    r = put(stub, rpc, b"k", b"v2", ignore_lease=True, prev_kv=True)     # 3: keeps the lease
    assert (r.prev_kv.value, r.prev_kv.lease) == (b"v1", lease.id)
    x = rng(stub, rpc, b"k").kvs[0]
    assert (x.value, x.lease, x.version, x.mod_revision) == (b"v2", lease.id, 2, 3)
    # ignore_value keeps the value, but lease 0 in the same request detaches the lease
    put(stub, rpc, b"k", b"", ignore_value=True)                        # 4
    x = rng(stub, rpc, b"k").kvs[0]
    assert (x.value, x.lease, x.version, x.mod_revision) == (b"v2", 0, 3, 4)
    put(stub, rpc, b"k", b"v3", lease=lease.id)                         # 5: attached again
    assert err(lambda: put(stub, rpc, b"missing", b"", ignore_value=True)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key not found")
    assert err(lambda: put(stub, rpc, b"missing", b"x", ignore_lease=True)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key not found")
    assert err(lambda: put(stub, rpc, b"k", b"x", ignore_value=True)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: value is provided")
    assert err(lambda: put(stub, rpc, b"k", b"x", ignore_lease=True, lease=lease.id)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: lease is provided")
    assert rng(stub, rpc, b"k").header.revision == 5


def test_delete_all_and_ranges(kv):
    stub, rpc, _ = kv
    fill(stub, rpc)
    r = stub.DeleteRange(rpc.DeleteRangeRequest(key=b"b", range_end=b"d", prev_kv=True),
                         timeout=10)
    assert (r.deleted, [x.key for x in r.prev_kvs], r.header.revision) == (2, [b"b", b"c"], 7)
    r = stub.DeleteRange(rpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
    assert (r.deleted, r.header.revision) == (2, 8)
    r = stub.DeleteRange(rpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
    assert (r.deleted, r.header.revision) == (0, 8)


def test_nested_txn_and_sub_revisions(kv):
    stub, rpc, _ = kv
    fill(stub, rpc)
    op_put = lambda k, v: rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v))
    inner = rpc.TxnRequest(compare=[rpc.Compare(key=b"a", target=rpc.Compare.VALUE,
                                                result=rpc.Compare.EQUAL, value=b"2")],
                           success=[op_put(b"x", b"inner")], failure=[op_put(b"y", b"no")])
    r = stub.Txn(rpc.TxnRequest(success=[op_put(b"w", b"outer"),
                                         rpc.RequestOp(request_txn=inner)]), timeout=10)
    assert (r.succeeded, r.header.revision) == (True, 7)
    assert r.responses[1].response_txn.succeeded is True
    # etcd 3.4 leaves a nested txn's own header empty; its sub-responses carry the revision
    assert r.responses[1].response_txn.header.revision == 0
    assert r.responses[1].response_txn.responses[0].response_put.header.revision == 7
    # both puts share main revision 7 (sub-revisions 0 and 1)
    got = rng(stub, rpc, b"w", b"z")
    assert [(x.key, x.mod_revision, x.create_revision) for x in got.kvs] == [
        (b"w", 7, 7), (b"x", 7, 7)]
    # a key written twice, even across nesting levels, is refused
    dup = rpc.TxnRequest(success=[op_put(b"q", b"1"), rpc.RequestOp(
        request_txn=rpc.TxnRequest(success=[op_put(b"q", b"2")]))])
    assert err(lambda: stub.Txn(dup, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
    dup = rpc.TxnRequest(success=[op_put(b"q", b"1"), rpc.RequestOp(
        request_delete_range=rpc.DeleteRangeRequest(key=b"p", range_end=b"r"))])
    assert err(lambda: stub.Txn(dup, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")


def test_txn_limits_and_range_compare(kv):
    stub, rpc, _ = kv
    fill(stub, rpc)
    ops = lambda n: [rpc.RequestOp(request_put=rpc.PutRequest(key=b"k%d" % i, value=b"v"))
                     for i in range(n)]
    r = stub.Txn(rpc.TxnRequest(success=ops(128)), timeout=10)
    assert (r.succeeded, r.header.revision, len(r.responses)) == (True, 7, 128)
    assert err(lambda: stub.Txn(rpc.TxnRequest(success=ops(129)), timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
    # a compare over a range holds for every key in it
    cmp = lambda res, ver: rpc.Compare(key=b"a", range_end=b"e", target=rpc.Compare.VERSION,
                                       result=res, version=ver)
    assert stub.Txn(rpc.TxnRequest(compare=[cmp(rpc.Compare.GREATER, 0)]),
                    timeout=10).succeeded is True
    assert stub.Txn(rpc.TxnRequest(compare=[cmp(rpc.Compare.EQUAL, 1)]),
                    timeout=10).succeeded is False      # a has version 2
    assert stub.Txn(rpc.TxnRequest(compare=[cmp(rpc.Compare.NOT_EQUAL, 3)]),
                    timeout=10).succeeded is True
    # a txn that writes nothing leaves the revision alone
    assert rng(stub, rpc, b"a").header.revision == 7
