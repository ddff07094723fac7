"""The npm etcd3 client 1.1.2 (grpc-js), pinned in js/package-lock.json and installed by the
``npm_etcd3`` session fixture: node scripts print JSON, asserted here."""

import pytest

from v3harness import run_js

pytestmark = pytest.mark.v3


def test_kv_prefix_delete_txn(npm_etcd3, member):
    r = run_js("kv.js", member)
    hdr = r["kv"].pop("header")
    assert hdr == {"cluster_id": str(int(member.cluster_id, 16)),
                   "member_id": str(int(member.id, 16)), "revision": "5",
                   "raft_term": str(int(member.get("/v2/keys/").headers["X-Raft-Term"]))}
    assert r == {
        "put1": "2", "put2": "3", "put3": "4",
        "prev": {"key": "js/a", "value": "1", "version": "1", "mod_revision": "2"},
        "get": "1b", "missing": None,
        "getAll": {"js/a": "1b", "js/b": "2"},
        "keys": ["js/a", "js/b", "other"],
        "count": 2,
        "kv": {"create_revision": "2", "mod_revision": "5", "version": "2", "lease": "0"},
        "txn1": {"succeeded": True, "revision": "6", "responses": ["response_put"]},
        "txn2": {"succeeded": False, "revision": "6", "value": "2"},
        "del": "1", "delPrefix": "2", "after": []}


def test_lease_keepalive_revoke_errors(npm_etcd3, member):
    r = run_js("lease.js", member)
    assert int(r.pop("id")) > 0
    assert r.pop("keepalives") >= 5              # every ttl/3 for > 3 s: beyond the 2 s TTL
    ttl = r.pop("ttl")
    assert ttl["TTL"] in ("1", "2") and ttl["grantedTTL"] == "2" and ttl["keys"] == ["lk"]
    ka = r.pop("keepaliveRevoked")
    assert ka["cls"] == "EtcdLeaseInvalidError" and ka["message"].endswith(" is expired or revoked")
    assert r == {
        "valueAfter": "v", "afterRevoke": None,
        "putUnknownLease": {"cls": "EtcdLeaseInvalidError", "message":
                            "Lease 5 NOT_FOUND: etcdserver: requested lease not found "
                            "is expired or revoked"},
        "compacted": {"cls": "GRPCOutOfRangeError", "message":
                      "11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted"},
        "future": {"cls": "GRPCOutOfRangeError", "message":
                   "11 OUT_OF_RANGE: etcdserver: mvcc: required revision is a future revision"}}
