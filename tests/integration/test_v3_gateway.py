"""The JSON gateway (grpc-gateway 1.6 in etcd 3.4): POST /v3/..., base64 bytes, 64-bit integers
as decimal strings, zero fields omitted, errors as {"error","message","code"} with HTTP statuses."""

import pytest

from harness import raw_http
from v3harness import STATUS_VERSION, b64, gw_error

pytestmark = pytest.mark.v3

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"
NO_LEASE = "etcdserver: requested lease not found"


def term(m):
    return str(int(m.get("/v2/keys/").headers["X-Raft-Term"]))


def test_put_range_exact(gw, member):
    t = term(member)
    assert gw("/kv/put", {"key": b64("foo"), "value": b64("bar")}) == {
        "header": gw.header(2, t)}
    assert gw("/kv/put", {"key": b64("foo"), "value": b64("baz"), "prev_kv": True}) == {
        "header": gw.header(3, t),
        "prev_kv": {"key": b64("foo"), "create_revision": "2", "mod_revision": "2",
                    "version": "1", "value": b64("bar")}}
    assert gw("/kv/range", {"key": b64("foo")}) == {
        "header": gw.header(3, t),
        "kvs": [{"key": b64("foo"), "create_revision": "2", "mod_revision": "3",
                 "version": "2", "value": b64("baz")}],
        "count": "1"}
    # a miss: no kvs, no count, no more (zero values omitted)
    assert gw("/kv/range", {"key": b64("nope")}) == {"header": gw.header(3, t)}
    # historical read, lowerCamel input names and numbers accepted for int64s
    assert gw("/kv/range", {"key": b64("foo"), "revision": 2})["kvs"][0]["value"] == b64("bar")
    assert gw("/kv/range", {"key": b64("foo"), "revision": "2", "keysOnly": True})["kvs"] == [
        {"key": b64("foo"), "create_revision": "2", "mod_revision": "2", "version": "1"}]


def test_range_prefix_limit_count_only(gw, member):
    for k in ("p/a", "p/b", "p/c"):
        gw("/kv/put", {"key": b64(k), "value": b64("v")})
    r = gw("/kv/range", {"key": b64("p/"), "range_end": b64("p0"), "limit": "2"})
    assert [x["key"] for x in r["kvs"]] == [b64("p/a"), b64("p/b")]
    assert (r["more"], r["count"]) == (True, "3")
    assert gw("/kv/range", {"key": b64("p/"), "range_end": b64("p0"), "count_only": True}) == {
        "header": gw.header(4, term(member)), "count": "3"}
    r = gw("/kv/range", {"key": b64("\0"), "range_end": b64("\0"), "sort_order": "DESCEND",
                         "sort_target": "KEY"})
    assert [x["key"] for x in r["kvs"]] == [b64("p/c"), b64("p/b"), b64("p/a")]


def test_deleterange(gw, member):
    for k in ("d/1", "d/2", "e"):
        gw("/kv/put", {"key": b64(k), "value": b64("x")})
    assert gw("/kv/deleterange", {"key": b64("e"), "prev_kv": True}) == {
        "header": gw.header(5, term(member)), "deleted": "1",
        "prev_kvs": [{"key": b64("e"), "create_revision": "4", "mod_revision": "4",
                      "version": "1", "value": b64("x")}]}
    assert gw("/kv/deleterange", {"key": b64("d/"), "range_end": b64("d0")}) == {
        "header": gw.header(6, term(member)), "deleted": "2"}
    assert gw("/kv/deleterange", {"key": b64("zzz")}) == {"header": gw.header(6, term(member))}


def test_txn(gw, member):
    t = term(member)
    body = {"compare": [{"target": "VERSION", "key": b64("z"), "version": "0",
                         "result": "EQUAL"}],
            "success": [{"request_put": {"key": b64("z"), "value": b64("1")}}],
            "failure": [{"request_range": {"key": b64("z")}}]}
    assert gw("/kv/txn", body) == {"header": gw.header(2, t), "succeeded": True,
                                   "responses": [{"response_put": {"header": {"revision": "2"}}}]}
    # the same txn now fails: "succeeded" is omitted (false)
    assert gw("/kv/txn", body) == {"header": gw.header(2, t), "responses": [
        {"response_range": {"header": {"revision": "2"}, "count": "1", "kvs": [
            {"key": b64("z"), "create_revision": "2", "mod_revision": "2", "version": "1",
             "value": b64("1")}]}}]}
    # compares on value (GREATER), mod and create revisions
    body = {"compare": [{"target": "VALUE", "key": b64("z"), "value": b64("0"),
                         "result": "GREATER"},
                        {"target": "MOD", "key": b64("z"), "mod_revision": "2"},
                        {"target": "CREATE", "key": b64("z"), "create_revision": "3",
                         "result": "LESS"}],
            "success": [{"request_delete_range": {"key": b64("z")}}]}
    assert gw("/kv/txn", body) == {"header": gw.header(3, t), "succeeded": True, "responses": [
        {"response_delete_range": {"header": {"revision": "3"}, "deleted": "1"}}]}


def test_txn_lease_compare(gw):
    gw("/lease/grant", {"TTL": "60", "ID": "77"})
    gw("/kv/put", {"key": b64("lk"), "value": b64("v"), "lease": "77"})
    cmp = lambda lease: {"compare": [{"target": "LEASE", "key": b64("lk"), "lease": lease}],
                         "success": [{"request_put": {"key": b64("ok"), "value": b64(lease)}}]}
    assert gw("/kv/txn", cmp("77"))["succeeded"] is True
    assert "succeeded" not in gw("/kv/txn", cmp("78"))
    assert gw("/kv/range", {"key": b64("ok")})["kvs"][0]["value"] == b64("77")


def test_compaction(gw, member):
    for v in ("1", "2", "3"):
        gw("/kv/put", {"key": b64("c"), "value": b64(v)})          # revs 2..4
    assert gw("/kv/compaction", {"revision": "3"}) == {"header": gw.header(4, term(member))}
    gw_error(gw.post("/kv/range", {"key": b64("c"), "revision": "2"}), 400, COMPACTED, 11)
    gw_error(gw.post("/kv/range", {"key": b64("c"), "revision": "5"}), 400, FUTURE, 11)
    gw_error(gw.post("/kv/compaction", {"revision": "3"}), 400, COMPACTED, 11)
    gw_error(gw.post("/kv/compaction", {"revision": "9"}), 400, FUTURE, 11)
    assert gw("/kv/compaction", {"revision": "4", "physical": True}) == {
        "header": gw.header(4, term(member))}
    assert gw("/kv/range", {"key": b64("c"), "revision": "4"})["kvs"][0]["value"] == b64("3")


def test_leases(gw, member):
    t = term(member)
    assert gw("/lease/grant", {"TTL": "30", "ID": "4660"}) == {
        "header": gw.header(1, t), "ID": "4660", "TTL": "30"}
    gw_error(gw.post("/lease/grant", {"TTL": 30, "ID": 4660}), 412,
             "etcdserver: lease already exists", 9)
    gw("/kv/put", {"key": b64("lk"), "value": b64("v"), "lease": "4660"})
    # keepalive answers one {"result": LeaseKeepAliveResponse} line per request
    r = gw.post("/lease/keepalive", {"ID": "4660"})
    assert r.status_code == 200
    assert r.json() == {"result": {"header": gw.header(2, t), "ID": "4660", "TTL": "30"}}
    # the /v3/kv/lease/... aliases
    assert gw("/kv/lease/timetolive", {"ID": "4660"})["grantedTTL"] == "30"
    r = gw("/lease/timetolive", {"ID": "4660", "keys": True})
    assert 25 <= int(r.pop("TTL")) <= 30
    assert r == {"header": gw.header(2, t), "ID": "4660", "grantedTTL": "30",
                 "keys": [b64("lk")]}
    # an unknown lease is not an error here: TTL -1
    assert gw("/lease/timetolive", {"ID": "999"}) == {
        "header": gw.header(2, t), "ID": "999", "TTL": "-1"}
    assert gw("/lease/leases", {}) == {"header": gw.header(2, t), "leases": [{"ID": "4660"}]}
    assert gw("/lease/revoke", {"ID": "4660"}) == {"header": gw.header(3, t)}
    assert gw("/kv/range", {"key": b64("lk")}) == {"header": gw.header(3, t)}
    gw_error(gw.post("/lease/revoke", {"ID": "4660"}), 404, NO_LEASE, 5)
    gw_error(gw.post("/kv/put", {"key": b64("x"), "lease": "4660"}), 404, NO_LEASE, 5)
    assert gw("/lease/leases", {}) == {"header": gw.header(3, t)}
    # a server-chosen id: non-zero, as a decimal string
    r = gw("/lease/grant", {"TTL": "30"})
    assert int(r["ID"]) > 0 and r["TTL"] == "30"


def test_maintenance_status(gw, member):
    gw("/kv/put", {"key": b64("a"), "value": b64("1")})
    t = term(member)
    s = gw("/maintenance/status", {})
    mid = str(int(member.id, 16))
    assert s.pop("header") == gw.header(2, t)
    assert (s.pop("version"), s.pop("leader"), s.pop("raftTerm")) == (STATUS_VERSION, mid, t)
    assert int(s.pop("raftIndex")) >= 2 and int(s.pop("raftAppliedIndex")) >= 2
    assert int(s.pop("dbSize")) > 0 and int(s.pop("dbSizeInUse")) > 0
    assert s == {}


def test_v3beta_alias_and_v3alpha_404(gw, member):
    gw("/kv/put", {"key": b64("a"), "value": b64("1")}, prefix="/v3beta")
    assert gw("/kv/range", {"key": b64("a")}, prefix="/v3beta")["kvs"][0]["value"] == b64("1")
    assert gw("/kv/range", {"key": b64("a")})["count"] == "1"
    r = gw.post("/kv/range", {"key": b64("a")}, prefix="/v3alpha")
    assert (r.status_code, r.text) == (404, "404 page not found\n")


def test_bad_input(gw, member):
    gw_error(gw.post("/kv/range", {"key": "!!!"}), 400, "illegal base64 data at input byte 0", 3)
    gw_error(gw.post("/kv/range", data='{"key":'), 400, "unexpected EOF", 3)
    r = gw.post("/kv/range", data="notjson")
    assert r.status_code == 400 and r.json()["code"] == 3
    assert r.json()["error"] == r.json()["message"] != ""
    gw_error(gw.post("/kv/range", {}), 400, "etcdserver: key is not provided", 3)
    gw_error(gw.post("/kv/put", {"value": b64("x")}), 400, "etcdserver: key is not provided", 3)
    # the member still serves
    assert gw("/kv/put", {"key": b64("after"), "value": b64("1")})["header"]["revision"] == "2"


@pytest.mark.etcd_only
def test_bad_json_message_is_go_text(gw):
    """etcd answers Go's encoding/json error text verbatim; cairn's wording may differ."""
    gw_error(gw.post("/kv/range", data="notjson"), 400,
             "invalid character 'o' in literal null (expecting 'u')", 3)


def test_unknown_route_and_get(member):
    r = raw_http(member.client_port, "POST", "/v3/nope", body=b"{}")
    assert r.status == 404
    r = raw_http(member.client_port, "GET", "/v3/kv/range")
    assert (r.status, r.body) == (405, b"Method Not Allowed\n")
