"""etcdctl 3.4 in v3 mode (ETCDCTL_API=3): exact stdout, stderr's Error: line, exit codes.

Every test gets a fresh member, so the v3 revision starts at 1 and the first write is 2.
"""

import base64
import os
import re
import subprocess

import pytest

from harness import ETCDCTL_BIN, wait_until
from v3harness import (STATUS_VERSION, Ctl3, client, ctl_error, header, ids, pb_field,
                       pb_varint)

pytestmark = [pytest.mark.v3,
              pytest.mark.skipif(not os.path.exists(ETCDCTL_BIN),
                                 reason=f"{ETCDCTL_BIN} not installed")]


def raft_term(m):
    """The member's raft term, as the v2 API reports it (X-Raft-Term)."""
    return int(m.get("/v2/keys/").headers["X-Raft-Term"])


def kv(key, create, mod, version, value, lease=None):
    d = {"key": base64.b64encode(key.encode()).decode(),
         "create_revision": create, "mod_revision": mod, "version": version,
         "value": base64.b64encode(value.encode()).decode()}
    if lease:
        d["lease"] = lease
    return d


def fill(ctl):
    assert ctl("put", "a", "1") == (0, "OK\n", "")          # rev 2
    assert ctl("put", "a", "2") == (0, "OK\n", "")          # rev 3
    assert ctl("put", "b", "3") == (0, "OK\n", "")          # rev 4
    assert ctl("put", "c/x", "4") == (0, "OK\n", "")        # rev 5
    assert ctl("put", "c/y", "5") == (0, "OK\n", "")        # rev 6


def test_get_json_exact(ctl3):
    fill(ctl3)
    m = ctl3.m
    assert ctl3.json("get", "a") == {
        "header": header(m, 6, raft_term(m)),
        "kvs": [kv("a", 2, 3, 2, "2")], "count": 1}
    # a missing key: no kvs, no count (zero fields are omitted)
    assert ctl3.json("get", "nope") == {"header": header(m, 6, raft_term(m))}


def test_get_fields_exact(ctl3):
    fill(ctl3)
    cid, mid = ids(ctl3.m)
    assert ctl3("get", "a", "-w", "fields") == (0, (
        f'"ClusterID" : {cid}\n"MemberID" : {mid}\n"Revision" : 6\n'
        f'"RaftTerm" : {raft_term(ctl3.m)}\n'
        '"Key" : "a"\n"CreateRevision" : 2\n"ModRevision" : 3\n"Version" : 2\n'
        '"Value" : "2"\n"Lease" : 0\n"More" : false\n"Count" : 1\n'), "")


def test_get_protobuf_exact(ctl3):
    fill(ctl3)
    cid, mid = ids(ctl3.m)
    hdr = pb_varint(1, cid) + pb_varint(2, mid) + pb_varint(3, 6) + pb_varint(4, raft_term(ctl3.m))
    kvb = pb_field(1, "a") + pb_varint(2, 2) + pb_varint(3, 3) + pb_varint(4, 2) + pb_field(5, "2")
    want = pb_field(1, hdr) + pb_field(2, kvb) + pb_varint(4, 1)
    p = subprocess.run(ctl3.argv("get", "a", "-w", "protobuf"), env=ctl3.env,
                       capture_output=True, timeout=20)
    assert (p.returncode, p.stdout, p.stderr) == (0, want, b"")


def test_get_simple_variants(ctl3):
    fill(ctl3)
    assert ctl3("get", "a") == (0, "a\n2\n", "")
    assert ctl3("get", "a", "-w", "simple") == (0, "a\n2\n", "")
    assert ctl3("get", "a", "--print-value-only") == (0, "2\n", "")
    assert ctl3("get", "nope") == (0, "", "")
    assert ctl3("get", "c/", "--prefix") == (0, "c/x\n4\nc/y\n5\n", "")
    assert ctl3("get", "c/", "--prefix", "--keys-only") == (0, "c/x\n\nc/y\n\n", "")
    assert ctl3("get", "b", "--from-key", "--print-value-only") == (0, "3\n4\n5\n", "")
    assert ctl3("get", "a", "c", "--print-value-only") == (0, "2\n3\n", "")   # [a, c)
    assert ctl3("get", "", "--prefix", "--keys-only", "--limit", "2") == (0, "a\n\nb\n\n", "")


def test_get_limit_more_and_count(ctl3):
    fill(ctl3)
    r = ctl3.json("get", "", "--prefix", "--limit", "2")
    assert [x["key"] for x in r["kvs"]] == ["YQ==", "Yg=="]
    assert r["more"] is True
    assert r["count"] == 4             # count ignores the limit
    r = ctl3.json("get", "", "--prefix", "--limit", "4")
    assert "more" not in r and r["count"] == 4


def test_get_sort(ctl3):
    fill(ctl3)
    assert ctl3("put", "b", "0") == (0, "OK\n", "")          # rev 7: b=0 newest
    v = lambda *a: ctl3("get", "", "--prefix", "--print-value-only", *a)[1].split()
    assert v("--sort-by", "KEY", "--order", "DESCEND") == ["5", "4", "0", "2"]
    assert v("--order", "DESCEND") == ["5", "4", "0", "2"]
    assert v("--sort-by", "MODIFY") == ["2", "4", "5", "0"]
    assert v("--sort-by", "MODIFY", "--order", "DESCEND") == ["0", "5", "4", "2"]
    assert v("--sort-by", "CREATE") == ["2", "0", "4", "5"]
    assert v("--sort-by", "VALUE") == ["0", "2", "4", "5"]
    assert sorted(v("--sort-by", "VERSION", "--order", "DESCEND")[:2]) == ["0", "2"]


def test_get_rev_history(ctl3):
    fill(ctl3)
    assert ctl3("get", "a", "--rev", "2", "--print-value-only") == (0, "1\n", "")
    assert ctl3("get", "a", "--rev", "3", "--print-value-only") == (0, "2\n", "")
    assert ctl3("get", "b", "--rev", "3") == (0, "", "")
    r = ctl3.json("get", "a", "--rev", "2")
    # the header carries the current revision even for a historical read
    assert r == {"header": header(ctl3.m, 6, raft_term(ctl3.m)),
                 "kvs": [kv("a", 2, 2, 1, "1")], "count": 1}


def test_serializable_get(ctl3):
    fill(ctl3)
    assert ctl3("get", "a", "--consistency", "s", "--print-value-only") == (0, "2\n", "")


def test_put_prev_kv_and_ignore(ctl3):
    assert ctl3("put", "k", "v1") == (0, "OK\n", "")
    assert ctl3("put", "k", "v2", "--prev-kv") == (0, "OK\nk\nv1\n", "")
    assert ctl3("put", "k", "--ignore-value") == (0, "OK\n", "")
    assert ctl3.json("get", "k")["kvs"] == [kv("k", 2, 4, 3, "v2")]
    rc, out, err = ctl3("put", "", "x")
    assert (rc, out, ctl_error(err)) == (1, "", "Error: etcdserver: key is not provided")


def test_del_variants(ctl3):
    fill(ctl3)
    assert ctl3("del", "nope") == (0, "0\n", "")
    assert ctl3("del", "a") == (0, "1\n", "")                           # rev 7
    assert ctl3("get", "a") == (0, "", "")
    assert ctl3("del", "--prev-kv", "b") == (0, "1\nb\n3\n", "")         # rev 8
    assert ctl3("del", "--prefix", "c/") == (0, "2\n", "")               # rev 9
    assert ctl3.json("get", "x")["header"]["revision"] == 9
    fill(ctl3)                                                          # revs 10..14
    assert ctl3("del", "--from-key", "b") == (0, "3\n", "")              # b, c/x, c/y
    assert ctl3("get", "", "--prefix", "--keys-only") == (0, "a\n\n", "")
    # a deleted key starts a new generation: version 1, create_revision = the new put
    assert ctl3("put", "b", "again") == (0, "OK\n", "")                  # rev 16
    assert ctl3.json("get", "b")["kvs"] == [kv("b", 16, 16, 1, "again")]


def test_txn_value_compare_success_and_failure(ctl3):
    fill(ctl3)
    assert ctl3("txn", input='value("a") = "2"\n\nput a x\n\nget b\n\n') == (
        0, "SUCCESS\n\nOK\n", "")                                        # rev 7
    assert ctl3("txn", input='value("a") = "2"\n\nput a y\n\nget b\n\n') == (
        0, "FAILURE\n\nb\n3\n", "")
    assert ctl3("get", "a", "--print-value-only") == (0, "x\n", "")


def test_txn_json_and_compares(ctl3):
    fill(ctl3)
    term = raft_term(ctl3.m)
    r = ctl3.json("txn", input='version("a") = "2"\ncreate("b") = "4"\nmod("c/x") = "5"\n\n'
                              'put a y\nget a\ndel c/y\n\nget b\n\n')
    assert r == {"header": header(ctl3.m, 7, term), "succeeded": True, "responses": [
        {"Response": {"ResponsePut": {"header": {"revision": 7}}}},
        {"Response": {"ResponseRange": {"header": {"revision": 7},
                                        "kvs": [kv("a", 2, 7, 3, "y")], "count": 1}}},
        {"Response": {"ResponseDeleteRange": {"header": {"revision": 7}, "deleted": 1}}}]}
    # one failing compare fails the whole txn; nothing is written, the revision stays
    r = ctl3.json("txn", input='version("a") = "3"\nmod("b") > "4"\n\nput a z\n\nget b\n\n')
    assert r == {"header": header(ctl3.m, 7, term), "responses": [
        {"Response": {"ResponseRange": {"header": {"revision": 7},
                                        "kvs": [kv("b", 4, 4, 1, "3")], "count": 1}}}]}
    # <, !=, > and a missing key's version/create (0)
    assert ctl3("txn", input='version("nope") = "0"\ncreate("nope") = "0"\nmod("a") > "6"\n'
                             'value("b") != "x"\nversion("a") < "4"\n\nput n 1\n\n\n') == (
        0, "SUCCESS\n\nOK\n", "")


# No lease compare here: etcdctl 3.4.23's txn parser panics on lease("k") = "<id>" ("panic: bad
# value" in clientv3.mustInt64orLeaseID); test_v3_python.py and test_v3_gateway.py cover it.


def test_txn_empty_does_not_bump_revision(ctl3):
    fill(ctl3)
    assert ctl3("txn", input='\nget a\n\n\n') == (0, "SUCCESS\n\na\n2\n", "")
    assert ctl3.json("get", "a")["header"]["revision"] == 6


def test_txn_duplicate_key(ctl3):
    rc, out, err = ctl3("txn", input='\nput a 1\nput a 2\n\n\n')
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: etcdserver: duplicate key given in txn request")


def test_compaction_and_errors(ctl3):
    fill(ctl3)
    assert ctl3("compaction", "4") == (0, "compacted revision 4\n", "")
    # exactly at the compacted revision still reads; below it is gone
    assert ctl3("get", "b", "--rev", "4", "--print-value-only") == (0, "3\n", "")
    rc, out, err = ctl3("get", "a", "--rev", "3")
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: etcdserver: mvcc: required revision has been compacted")
    rc, out, err = ctl3("get", "a", "--rev", "7")
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: etcdserver: mvcc: required revision is a future revision")
    rc, out, err = ctl3("compaction", "4")
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: etcdserver: mvcc: required revision has been compacted")
    rc, out, err = ctl3("compaction", "99")
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: etcdserver: mvcc: required revision is a future revision")
    assert ctl3("compaction", "--physical", "6") == (0, "compacted revision 6\n", "")
    assert ctl3("get", "", "--prefix", "--print-value-only") == (0, "2\n3\n4\n5\n", "")
    # compaction is not a write: the revision stays
    assert ctl3.json("get", "a")["header"]["revision"] == 6


def test_lease_grant_timetolive_keepalive_revoke(ctl3):
    out = ctl3.ok("lease", "grant", "60")
    lid = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\(60s\)\n", out).group(1)
    assert ctl3("put", "--lease", lid, "lk1", "v") == (0, "OK\n", "")
    assert ctl3("put", "--lease", lid, "lk2", "v") == (0, "OK\n", "")
    rc, out, err = ctl3("lease", "timetolive", lid)
    assert rc == 0 and err == ""
    assert re.fullmatch(rf"lease {lid} granted with TTL\(60s\), remaining\((5[5-9]|60)s\)\n",
                        out), out
    out = ctl3.ok("lease", "timetolive", "--keys", lid)
    assert re.fullmatch(rf"lease {lid} granted with TTL\(60s\), remaining\((5[5-9]|60)s\), "
                        r"attached keys\(\[(lk1 lk2|lk2 lk1)\]\)\n", out), out
    j = ctl3.json("lease", "timetolive", "--keys", lid)
    cid, mid = ids(ctl3.m)
    assert 55 <= j.pop("ttl") <= 60
    assert sorted(j.pop("keys")) == ["bGsx", "bGsy"]         # etcd's order is a Go map's
    assert j == {"cluster_id": cid, "member_id": mid, "revision": 3,
                 "raft_term": raft_term(ctl3.m), "id": int(lid, 16), "granted-ttl": 60}
    assert ctl3("lease", "keep-alive", "--once", lid) == (
        0, f"lease {lid} keepalived with TTL(60)\n", "")
    assert ctl3("lease", "list") == (0, f"found 1 leases\n{lid}\n", "")
    assert ctl3("lease", "revoke", lid) == (0, f"lease {lid} revoked\n", "")
    # revoking deleted both keys in one revision
    r = ctl3.json("get", "", "--prefix")
    assert r == {"header": header(ctl3.m, 4, raft_term(ctl3.m))}
    assert ctl3("lease", "list") == (0, "found 0 leases\n", "")
    assert ctl3("lease", "timetolive", lid) == (0, f"lease {lid} already expired\n", "")
    rc, out, err = ctl3("lease", "revoke", lid)
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: failed to revoke lease (etcdserver: requested lease not found)")
    rc, out, err = ctl3("lease", "keep-alive", "--once", lid)
    assert (rc, out, ctl_error(err)) == (2, "", "Error: etcdserver: requested lease not found")
    rc, out, err = ctl3("put", "--lease", lid, "x", "y")
    assert (rc, out, ctl_error(err)) == (1, "", "Error: etcdserver: requested lease not found")


def test_lease_expiry_deletes_keys(ctl3):
    out = ctl3.ok("lease", "grant", "2")
    lid = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\(2s\)\n", out).group(1)
    assert ctl3("put", "--lease", lid, "e1", "v") == (0, "OK\n", "")
    assert ctl3("put", "--lease", lid, "e2", "v") == (0, "OK\n", "")
    assert ctl3("put", "stay", "v") == (0, "OK\n", "")
    c = client(ctl3.m)
    try:
        # granted TTL 2 s: gone between ~2 s and a generous deadline, not before
        wait_until(lambda: c.get("e1")[0] is None and c.get("e2")[0] is None, 10,
                   interval=0.05, message="leased keys expired")
    finally:
        c.close()
    assert ctl3("get", "", "--prefix", "--keys-only") == (0, "stay\n\n", "")
    assert ctl3("lease", "timetolive", lid) == (0, f"lease {lid} already expired\n", "")
    # expiry deleted both keys in one revision (5), after the puts 2..4
    assert ctl3.json("get", "stay")["header"]["revision"] == 5


def test_endpoint_status_and_health(ctl3):
    fill(ctl3)
    cid, mid = ids(ctl3.m)
    st = ctl3.json("endpoint", "status")
    assert len(st) == 1 and st[0]["Endpoint"] == ctl3.m.client_url
    s = st[0]["Status"]
    term = raft_term(ctl3.m)
    assert s["header"] == header(ctl3.m, 6, term)
    assert s["version"] == STATUS_VERSION
    assert s["leader"] == mid
    assert s["raftTerm"] == term
    assert s["raftIndex"] >= 6 and s["raftAppliedIndex"] == s["raftIndex"]
    assert s["dbSize"] > 0 and 0 < s["dbSizeInUse"] <= s["dbSize"]
    rc, out, err = ctl3("endpoint", "health")      # etcdctl prints the verdict on stderr
    assert rc == 0 and out == ""
    assert re.fullmatch(rf"{re.escape(ctl3.m.client_url)} is healthy: successfully committed "
                        r"proposal: took = [0-9.]+(µs|ms|s)\n", err), err
    h = ctl3.json("endpoint", "health")
    assert len(h) == 1 and h[0]["endpoint"] == ctl3.m.client_url and h[0]["health"] is True
    assert re.fullmatch(r"[0-9.]+(µs|ms|s)", h[0]["took"]) and set(h[0]) == {
        "endpoint", "health", "took"}


def test_max_txn_ops(member_factory):
    m = member_factory(extra_args=["--max-txn-ops", "3"])
    ctl = Ctl3(m)
    assert ctl("txn", input='\nput a 1\nput b 1\nput c 1\n\n\n') == (
        0, "SUCCESS\n\nOK\n\nOK\n\nOK\n", "")
    rc, out, err = ctl("txn", input='\nput a 1\nput b 1\nput c 1\nput d 1\n\n\n')
    assert (rc, out, ctl_error(err)) == (
        1, "", "Error: etcdserver: too many operations in txn request")
    assert ctl("get", "d") == (0, "", "")


def test_max_request_bytes(member_factory):
    m = member_factory(extra_args=["--max-request-bytes", "2048"])
    ctl = Ctl3(m)
    assert ctl("put", "small", "x" * 1000) == (0, "OK\n", "")
    rc, out, err = ctl("put", "big", "x" * 3000)
    assert (rc, out, ctl_error(err)) == (1, "", "Error: etcdserver: request is too large")
    assert ctl("get", "big") == (0, "", "")
    assert ctl.json("get", "small")["header"]["revision"] == 2


def test_lease_minimum_ttl(ctl3):
    """etcd raises a TTL below its minimum (1.5 x election timeout = 1.5 s at the default
    1000 ms, rounded up) to 2 s."""
    out = ctl3.ok("lease", "grant", "1")
    assert re.fullmatch(r"lease [0-9a-f]+ granted with TTL\(2s\)\n", out), out


def test_put_ignore_flags_on_missing_key(ctl3):
    rc, out, err = ctl3("put", "nokey", "--ignore-value")
    assert (rc, out, ctl_error(err)) == (1, "", "Error: etcdserver: key not found")
    rc, out, err = ctl3("put", "nokey", "v", "--ignore-lease")
    assert (rc, out, ctl_error(err)) == (1, "", "Error: etcdserver: key not found")
    assert ctl3("get", "nokey") == (0, "", "")
