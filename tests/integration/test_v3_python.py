"""python3-etcd3 0.12 (Debian, grpcio): KV, Txn, Lease, Compact, Status."""

import grpc
import pytest

from v3harness import STATUS_VERSION, ids, wait_key_gone

pytestmark = pytest.mark.v3


def term(m):
    return int(m.get("/v2/keys/").headers["X-Raft-Term"])


def test_put_get_metadata(etcd3_client, member):
    c = etcd3_client
    r = c.put("k", "v1")
    cid, mid = ids(member)
    assert (r.header.cluster_id, r.header.member_id, r.header.revision, r.header.raft_term) == (
        cid, mid, 2, term(member))
    c.put("k", "v2")
    value, meta = c.get("k")
    assert value == b"v2"
    assert (meta.key, meta.create_revision, meta.mod_revision, meta.version, meta.lease_id) == (
        b"k", 2, 3, 2, 0)
    assert c.get("missing") == (None, None)
    r = c.put("k", "v3", prev_kv=True)
    assert (r.header.revision, r.prev_kv.key, r.prev_kv.value, r.prev_kv.version) == (
        4, b"k", b"v2", 2)


def test_get_prefix_sorted_and_all(etcd3_client):
    c = etcd3_client
    for k, v in [("p/b", "2"), ("p/a", "1"), ("p/c", "3"), ("q", "4")]:
        c.put(k, v)
    got = [(m.key, v) for v, m in c.get_prefix("p/")]
    assert got == [(b"p/a", b"1"), (b"p/b", b"2"), (b"p/c", b"3")]
    got = [m.key for v, m in c.get_prefix("p/", sort_order="descend", sort_target="create")]
    assert got == [b"p/c", b"p/a", b"p/b"]
    got = [m.key for v, m in c.get_all()]
    assert got == [b"p/a", b"p/b", b"p/c", b"q"]
    got = [(m.key, v) for v, m in c.get_range("p/b", "q")]
    assert got == [(b"p/b", b"2"), (b"p/c", b"3")]


def test_delete_and_delete_prefix(etcd3_client):
    c = etcd3_client
    for k in ("d/1", "d/2", "d/3", "e"):
        c.put(k, "x")                                      # revs 2..5
    assert c.delete("e") is True                           # rev 6
    assert c.delete("e") is False                          # no write
    r = c.delete("d/1", prev_kv=True, return_response=True)
    assert (r.header.revision, r.deleted, [kv.key for kv in r.prev_kvs]) == (7, 1, [b"d/1"])
    r = c.delete_prefix("d/")
    assert (r.header.revision, r.deleted) == (8, 2)
    assert list(c.get_all()) == []
    # a new generation after deletion
    c.put("e", "again")
    _, meta = c.get("e")
    assert (meta.create_revision, meta.mod_revision, meta.version) == (9, 9, 1)


def test_transactions(etcd3_client):
    c = etcd3_client
    t = c.transactions
    c.put("a", "1")                                         # rev 2
    ok, resp = c.transaction(compare=[t.value("a") == "1", t.version("a") == 1,
                                      t.create("a") == 2, t.mod("a") < 3],
                             success=[t.put("a", "2"), t.put("b", "x"), t.get("a")],
                             failure=[t.get("a")])
    assert ok is True
    assert resp[0].response_put.header.revision == 3
    assert [(m.key, v, m.mod_revision, m.version) for v, m in resp[2]] == [(b"a", b"2", 3, 2)]
    ok, resp = c.transaction(compare=[t.value("a") == "1"],
                             success=[t.put("a", "3")],
                             failure=[t.get("b"), t.delete("b")])
    assert ok is False
    assert [(m.key, v) for v, m in resp[0]] == [(b"b", b"x")]
    assert resp[1].response_delete_range.deleted == 1
    assert resp[1].response_delete_range.header.revision == 4
    assert c.get("a")[0] == b"2"
    # != and > on a missing key (version 0)
    ok, _ = c.transaction(compare=[t.version("nope") == 0, t.value("a") != "1",
                                   t.mod("a") > 2], success=[], failure=[])
    assert ok is True
    # an empty transaction writes nothing: the revision stays at 4
    assert c.put("z", "z").header.revision == 5


def test_transaction_lease_compare(etcd3_client):
    """python-etcd3 0.12 has no Lease compare helper: a TxnRequest built from its stubs."""
    from etcd3 import etcdrpc
    c = etcd3_client
    lease = c.lease(60)
    c.put("lk", "v", lease=lease)

    def txn(lease_id, key, value):
        cmp = etcdrpc.Compare(key=b"lk", target=etcdrpc.Compare.LEASE,
                              result=etcdrpc.Compare.EQUAL, lease=lease_id)
        put = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value))
        return c.kvstub.Txn(etcdrpc.TxnRequest(compare=[cmp], success=[put]), timeout=10)
    r = txn(lease.id, b"ok", b"1")
    assert (r.succeeded, r.header.revision) == (True, 3)
    r = txn(0, b"ok", b"2")
    assert (r.succeeded, r.header.revision) == (False, 3)
    assert c.get("ok")[0] == b"1"


def leases(c):
    from etcd3 import etcdrpc
    return sorted(x.ID for x in c.leasestub.LeaseLeases(etcdrpc.LeaseLeasesRequest(),
                                                          timeout=10).leases)


def test_leases(etcd3_client, member):
    c = etcd3_client
    lease = c.lease(60, lease_id=0x1234)
    assert lease.id == 0x1234
    c.put("l1", "v", lease=lease)
    c.put("l2", "v", lease=lease)
    assert lease.granted_ttl == 60
    assert 55 <= lease.remaining_ttl <= 60
    assert sorted(lease.keys) == [b"l1", b"l2"]
    assert c.get("l1")[1].lease_id == 0x1234
    (resp,) = list(lease.refresh())
    assert (resp.ID, resp.TTL) == (0x1234, 60)
    assert leases(c) == [0x1234]
    import etcd3.exceptions
    with pytest.raises(etcd3.exceptions.PreconditionFailedError) as ei:   # FAILED_PRECONDITION
        c.lease(30, lease_id=0x1234)
    cause = ei.value.__context__
    assert (cause.code(), cause.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists")
    lease.revoke()
    assert c.put("rev", "x").header.revision == 5          # revoke deleted both keys at rev 4
    assert c.get("l1") == (None, None) and c.get("l2") == (None, None)
    assert lease.remaining_ttl == -1
    with pytest.raises(grpc.RpcError) as ei:
        c.revoke_lease(0x1234)
    assert (ei.value.code(), ei.value.details()) == (
        grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    with pytest.raises(grpc.RpcError) as ei:
        c.put("x", "y", lease=0x1234)
    assert (ei.value.code(), ei.value.details()) == (
        grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    # KeepAlive of an unknown lease is not an error: TTL 0
    (resp,) = list(c.refresh_lease(0x999))
    assert (resp.ID, resp.TTL) == (0x999, 0)
    # server-chosen ids are non-zero and distinct
    a, b = c.lease(30), c.lease(30)
    assert a.id > 0 and b.id > 0 and a.id != b.id
    assert leases(c) == sorted([a.id, b.id])


def test_lease_expiry(etcd3_client):
    c = etcd3_client
    lease = c.lease(2)
    c.put("x1", "v", lease=lease)
    c.put("x2", "v", lease=lease)
    assert wait_key_gone(c, "x1", 10) >= 1.0
    assert c.get("x2") == (None, None)
    assert lease.remaining_ttl == -1
    assert c.put("after", "v").header.revision == 5   # puts 2, 3, expiry 4


def test_compaction(etcd3_client):
    c = etcd3_client
    c.put("a", "1")
    c.put("a", "2")
    c.put("a", "3")                                         # revs 2..4
    c.compact(3)
    with pytest.raises(grpc.RpcError) as ei:
        c.compact(3)
    assert (ei.value.code(), ei.value.details()) == (
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
    with pytest.raises(grpc.RpcError) as ei:
        c.compact(100)
    assert (ei.value.code(), ei.value.details()) == (
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
    c.compact(4, physical=True)
    assert c.get("a")[0] == b"3"
    assert c.put("b", "x").header.revision == 5


def test_status(etcd3_client, member):
    c = etcd3_client
    c.put("a", "1")
    s = c.status()
    cid, mid = ids(member)
    assert s.version == STATUS_VERSION
    assert s.leader.id == mid and s.leader.name == member.name
    assert s.raft_term == term(member)
    assert s.raft_index >= 2
    assert s.db_size > 0


def test_errors_key_not_provided(etcd3_client):
    with pytest.raises(grpc.RpcError) as ei:
        etcd3_client.put("", "x")
    assert (ei.value.code(), ei.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
