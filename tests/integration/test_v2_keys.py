"""Keys API basics: GET/HEAD/PUT/POST/DELETE, envelopes, headers, indexes."""

import re

import pytest
import requests

from harness import assert_error, assert_json, error_bytes, raw_http


def raft_headers_ok(resp):
    assert re.fullmatch(r"[0-9]+", resp.headers["X-Raft-Index"]), resp.headers
    assert re.fullmatch(r"[0-9]+", resp.headers["X-Raft-Term"]), resp.headers
    assert int(resp.headers["X-Raft-Term"]) >= 1
    assert int(resp.headers["X-Raft-Index"]) >= 1


# --------------------------------------------------------------------------
# Fresh member: exact indexes and bytes fixed by the spec.

def test_fresh_root_listing_exact_bytes_and_headers(member):
    r = member.get("/v2/keys/")
    assert r.status_code == 200
    assert r.content == b'{"action":"get","node":{"dir":true}}\n'
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Etcd-Index"] == "3"
    assert r.headers["X-Etcd-Cluster-Id"] == member.cluster_id
    raft_headers_ok(r)


@pytest.mark.parametrize("path", ["/v2/keys", "/v2/keys/"])
def test_root_addresses(member, path):
    r = member.get(path)
    assert_json(r, 200, {"action": "get", "node": {"dir": True}}, index=3)


def test_first_write_gets_index_4_then_set_replaces(member):
    r = member.put("/v2/keys/message", data={"value": "Hello world"})
    assert r.status_code == 201
    assert r.content == (b'{"action":"set","node":{"key":"/message","value":"Hello world",'
                         b'"modifiedIndex":4,"createdIndex":4}}\n')
    assert r.headers["X-Etcd-Index"] == "4"
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Etcd-Cluster-Id"] == member.cluster_id
    raft_headers_ok(r)

    r = member.put("/v2/keys/message", data={"value": "Hello etcd"})
    assert_json(r, 200, {
        "action": "set",
        "node": {"key": "/message", "value": "Hello etcd", "modifiedIndex": 5, "createdIndex": 5},
        "prevNode": {"key": "/message", "value": "Hello world", "modifiedIndex": 4,
                     "createdIndex": 4},
    }, index=5)

    r = member.get("/v2/keys/message")
    assert_json(r, 200, {"action": "get", "node": {"key": "/message", "value": "Hello etcd",
                                                     "modifiedIndex": 5, "createdIndex": 5}},
                index=5)


def test_missing_key_error_exact_bytes(member):
    member.put("/v2/keys/message", data={"value": "x"})
    r = member.get("/v2/keys/nokey")
    assert r.status_code == 404
    assert r.content == error_bytes(100, "Key not found", "/nokey", 4)
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Etcd-Index"] == "4"
    assert r.headers["X-Etcd-Cluster-Id"] == member.cluster_id
    assert "X-Raft-Index" not in r.headers and "X-Raft-Term" not in r.headers


def test_raft_index_advances_with_writes(member):
    r1 = member.get("/v2/keys/")
    member.put("/v2/keys/a", data={"value": "1"})
    r2 = member.get("/v2/keys/")
    assert int(r2.headers["X-Raft-Index"]) > int(r1.headers["X-Raft-Index"])
    assert int(r2.headers["X-Raft-Term"]) == int(r1.headers["X-Raft-Term"])
    assert int(r2.headers["X-Etcd-Index"]) == int(r1.headers["X-Etcd-Index"]) + 1


# --------------------------------------------------------------------------
# Shared member: relative indexes, unique prefixes.

def test_get_key(shared_member, ns):
    m = shared_member
    w = m.set(f"{ns}/k", "v")
    i = w["node"]["modifiedIndex"]
    r = m.get(f"/v2/keys/{ns}/k")
    assert_json(r, 200, {"action": "get", "node": {"key": f"/{ns}/k", "value": "v",
                                                     "modifiedIndex": i, "createdIndex": i}},
                index=i)
    assert r.headers["X-Etcd-Cluster-Id"] == m.cluster_id
    raft_headers_ok(r)


def test_get_index_header_is_current_store_index(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/old", "1")
    w = m.set(f"{ns}/new", "2")
    r = m.get(f"/v2/keys/{ns}/old")
    assert r.headers["X-Etcd-Index"] == str(w["node"]["modifiedIndex"])
    assert r.json()["node"]["modifiedIndex"] == w["node"]["modifiedIndex"] - 1


def test_get_missing_nested_reports_first_missing_component(shared_member, ns):
    m = shared_member
    base = m.index()
    assert_error(m.get(f"/v2/keys/{ns}/a/b/c"), 404, 100, "Key not found", f"/{ns}", base)
    m.set(f"{ns}/a/x", "1")
    assert_error(m.get(f"/v2/keys/{ns}/a/b/c"), 404, 100, "Key not found", f"/{ns}/a/b",
                 base + 1)


def test_get_through_key_is_not_a_directory(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/dir/a", "1")["node"]["modifiedIndex"]
    assert_error(m.get(f"/v2/keys/{ns}/dir/a/b"), 400, 104, "Not a directory",
                 f"/{ns}/dir/a", i)
    assert_error(m.get(f"/v2/keys/{ns}/dir/a/b/c"), 400, 104, "Not a directory",
                 f"/{ns}/dir/a", i)


def test_head_key_same_headers_no_body(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/h", "hello")["node"]["modifiedIndex"]
    g = m.get(f"/v2/keys/{ns}/h")
    h = m.head(f"/v2/keys/{ns}/h")
    assert h.status_code == 200
    assert h.content == b""
    assert h.headers["Content-Type"] == "application/json"
    assert h.headers["X-Etcd-Index"] == str(i)
    assert h.headers["X-Etcd-Cluster-Id"] == m.cluster_id
    assert int(h.headers["Content-Length"]) == len(g.content)
    raft_headers_ok(h)


def test_head_missing_key(shared_member, ns):
    m = shared_member
    base = m.index()
    h = m.head(f"/v2/keys/{ns}/none")
    assert h.status_code == 404
    assert h.content == b""
    assert h.headers["X-Etcd-Index"] == str(base)
    assert h.headers["Content-Type"] == "application/json"
    assert int(h.headers["Content-Length"]) == len(
        error_bytes(100, "Key not found", f"/{ns}", base))


def test_put_auto_creates_parents_at_same_index(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/a/b/c", data={"value": "1"})
    assert_json(r, 201, {"action": "set", "node": {"key": f"/{ns}/a/b/c", "value": "1",
                                                    "modifiedIndex": base + 1,
                                                    "createdIndex": base + 1}},
                index=base + 1)
    for d in (f"/{ns}", f"/{ns}/a", f"/{ns}/a/b"):
        g = m.get("/v2/keys" + d).json()["node"]
        assert g["dir"] is True
        assert g["createdIndex"] == base + 1
        assert g["modifiedIndex"] == base + 1
    # children changes do not touch a directory's modifiedIndex
    m.set(f"{ns}/a/b/d", "2")
    m.set(f"{ns}/a/b/c", "3")
    g = m.get(f"/v2/keys/{ns}/a/b").json()["node"]
    assert (g["createdIndex"], g["modifiedIndex"]) == (base + 1, base + 1)


def test_put_without_value_sets_empty_string(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/empty")
    assert_json(r, 201, {"action": "set", "node": {"key": f"/{ns}/empty", "value": "",
                                                    "modifiedIndex": base + 1,
                                                    "createdIndex": base + 1}})
    r = m.put(f"/v2/keys/{ns}/empty2", data={"value": ""})
    assert r.json()["node"]["value"] == ""
    r = m.get(f"/v2/keys/{ns}/empty2")
    assert r.json()["node"] == {"key": f"/{ns}/empty2", "value": "", "modifiedIndex": base + 2,
                                "createdIndex": base + 2}


def test_put_over_directory_is_not_a_file(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/d/child", "1")
    base = m.index()
    assert_error(m.put(f"/v2/keys/{ns}/d", data={"value": "x"}), 403, 102, "Not a file",
                 f"/{ns}/d", base)
    assert_error(m.put(f"/v2/keys/{ns}/d", data={"dir": "true"}), 403, 102, "Not a file",
                 f"/{ns}/d", base)
    assert m.index() == base


def test_put_dir_over_key_replaces_key(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/k", "1")["node"]["modifiedIndex"]
    r = m.put(f"/v2/keys/{ns}/k", data={"dir": "true"})
    assert_json(r, 200, {
        "action": "set",
        "node": {"key": f"/{ns}/k", "dir": True, "modifiedIndex": i + 1, "createdIndex": i + 1},
        "prevNode": {"key": f"/{ns}/k", "value": "1", "modifiedIndex": i, "createdIndex": i},
    }, index=i + 1)


def test_put_crossing_key_is_not_a_directory(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/file", "1")["node"]["modifiedIndex"]
    assert_error(m.put(f"/v2/keys/{ns}/file/sub", data={"value": "x"}), 400, 104,
                 "Not a directory", f"/{ns}/file", i)
    assert_error(m.put(f"/v2/keys/{ns}/file/sub/deeper", data={"value": "x"}), 400, 104,
                 "Not a directory", f"/{ns}/file", i)
    assert_error(m.post(f"/v2/keys/{ns}/file/sub", data={"value": "x"}), 400, 104,
                 "Not a directory", f"/{ns}/file", i)
    assert m.index() == i


@pytest.mark.parametrize("method,params", [
    ("PUT", {"value": "x"}),
    ("PUT", {"dir": "true"}),
    ("PUT", {"value": "x", "prevExist": "false"}),
    ("PUT", {"value": "x", "prevExist": "true"}),
    ("DELETE", {}),
    ("DELETE", {"recursive": "true"}),
    ("DELETE", {"dir": "true"}),
])
def test_root_is_read_only(shared_member, method, params):
    m = shared_member
    base = m.index()
    for path in ("/v2/keys", "/v2/keys/"):
        if method == "PUT":
            r = m.put(path, data=params)
        else:
            r = m.delete(path, params=params)
        assert_error(r, 400, 107, "Root is read only", "/", base)
    assert m.index() == base


@pytest.mark.cairn_only
@pytest.mark.parametrize("method,params", [
    ("PUT", {"value": "x", "prevValue": "y"}),
    ("PUT", {"value": "x", "prevIndex": "1"}),
    ("DELETE", {"prevValue": "y"}),
    ("DELETE", {"prevIndex": "1"}),
])
def test_root_compare_ops_are_read_only(shared_member, method, params):
    """Spec 3: CAS/CAD on / -> 107 cause "/" (etcd 3.4 answers 102 without a cause
    for compare-and-delete on the root)."""
    m = shared_member
    base = m.index()
    if method == "PUT":
        r = m.put("/v2/keys/", params=params)
    else:
        r = m.delete("/v2/keys/", params=params)
    assert_error(r, 400, 107, "Root is read only", "/", base)


# --------------------------------------------------------------------------
# POST: in-order keys

def test_post_creates_in_order_keys(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.post(f"/v2/keys/{ns}/queue", data={"value": "Job1"})
    k1 = f"/{ns}/queue/{base + 1:020d}"
    assert_json(r, 201, {"action": "create", "node": {"key": k1, "value": "Job1",
                                                       "modifiedIndex": base + 1,
                                                       "createdIndex": base + 1}},
                index=base + 1)
    assert re.fullmatch(r"[0-9]{20}", r.json()["node"]["key"].rsplit("/", 1)[1])
    r = m.post(f"/v2/keys/{ns}/queue", data={"value": "Job2"})
    k2 = f"/{ns}/queue/{base + 2:020d}"
    assert_json(r, 201, {"action": "create", "node": {"key": k2, "value": "Job2",
                                                       "modifiedIndex": base + 2,
                                                       "createdIndex": base + 2}})
    # the queue dir was auto-created by the first POST
    g = m.get(f"/v2/keys/{ns}/queue", params={"sorted": "true"})
    assert_json(g, 200, {"action": "get", "node": {
        "key": f"/{ns}/queue", "dir": True,
        "nodes": [
            {"key": k1, "value": "Job1", "modifiedIndex": base + 1, "createdIndex": base + 1},
            {"key": k2, "value": "Job2", "modifiedIndex": base + 2, "createdIndex": base + 2},
        ],
        "modifiedIndex": base + 1, "createdIndex": base + 1}}, index=base + 2)


def test_post_in_order_dir_and_ttl(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.post(f"/v2/keys/{ns}/q", data={"dir": "true"})
    assert_json(r, 201, {"action": "create", "node": {"key": f"/{ns}/q/{base + 1:020d}",
                                                       "dir": True, "modifiedIndex": base + 1,
                                                       "createdIndex": base + 1}})
    r = m.post(f"/v2/keys/{ns}/q", data={"value": "t", "ttl": "100"})
    n = r.json()["node"]
    assert r.status_code == 201
    assert n["key"] == f"/{ns}/q/{base + 2:020d}"
    assert n["ttl"] == 100
    assert n["expiration"].endswith("Z")
    # clean up the TTL key so it cannot expire later on the shared member
    d = m.delete(f"/v2/keys/{ns}/q", params={"recursive": "true"})
    assert d.status_code == 200


def test_post_ignores_prevexist_and_has_no_prevnode(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.post(f"/v2/keys/{ns}/q", data={"value": "v", "prevExist": "true"})
    assert_json(r, 201, {"action": "create", "node": {"key": f"/{ns}/q/{base + 1:020d}",
                                                       "value": "v", "modifiedIndex": base + 1,
                                                       "createdIndex": base + 1}})


def test_post_under_key_is_not_a_directory(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/file", "1")["node"]["modifiedIndex"]
    assert_error(m.post(f"/v2/keys/{ns}/file", data={"value": "x"}), 400, 104,
                 "Not a directory", f"/{ns}/file", i)


# --------------------------------------------------------------------------
# DELETE

def test_delete_key(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/k", "v")["node"]["modifiedIndex"]
    r = m.delete(f"/v2/keys/{ns}/k")
    assert_json(r, 200, {
        "action": "delete",
        "node": {"key": f"/{ns}/k", "modifiedIndex": i + 1, "createdIndex": i},
        "prevNode": {"key": f"/{ns}/k", "value": "v", "modifiedIndex": i, "createdIndex": i},
    }, index=i + 1)
    raft_headers_ok(r)
    assert_error(m.get(f"/v2/keys/{ns}/k"), 404, 100, "Key not found", f"/{ns}/k", i + 1)
    assert_error(m.delete(f"/v2/keys/{ns}/k"), 404, 100, "Key not found", f"/{ns}/k", i + 1)


def test_delete_dir_rules(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/d/sub/k", "v")["node"]["modifiedIndex"]
    m.put(f"/v2/keys/{ns}/e", data={"dir": "true"})
    e = i + 1
    # a dir without dir/recursive
    assert_error(m.delete(f"/v2/keys/{ns}/d"), 403, 102, "Not a file", f"/{ns}/d", e)
    # non-empty with dir=true
    assert_error(m.delete(f"/v2/keys/{ns}/d", params={"dir": "true"}), 403, 108,
                 "Directory not empty", f"/{ns}/d", e)
    # empty dir with dir=true
    r = m.delete(f"/v2/keys/{ns}/e", params={"dir": "true"})
    assert_json(r, 200, {
        "action": "delete",
        "node": {"key": f"/{ns}/e", "dir": True, "modifiedIndex": e + 1, "createdIndex": e},
        "prevNode": {"key": f"/{ns}/e", "dir": True, "modifiedIndex": e, "createdIndex": e},
    }, index=e + 1)
    # dir=true also deletes a plain key
    r = m.delete(f"/v2/keys/{ns}/d/sub/k", params={"dir": "true"})
    assert r.status_code == 200
    assert r.json()["action"] == "delete"
    assert r.json()["prevNode"]["value"] == "v"
    # recursive removes everything below
    m.set(f"{ns}/d/sub/k2", "v2")
    m.set(f"{ns}/d/_hidden", "h")
    r = m.delete(f"/v2/keys/{ns}/d", params={"recursive": "true"})
    assert_json(r, 200, {
        "action": "delete",
        "node": {"key": f"/{ns}/d", "dir": True, "modifiedIndex": e + 5, "createdIndex": i},
        "prevNode": {"key": f"/{ns}/d", "dir": True, "modifiedIndex": i, "createdIndex": i},
    }, index=e + 5)
    assert_error(m.get(f"/v2/keys/{ns}/d/_hidden"), 404, 100, "Key not found", f"/{ns}/d",
                 e + 5)


def test_delete_recursive_on_key(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/k", "v")["node"]["modifiedIndex"]
    r = m.delete(f"/v2/keys/{ns}/k", params={"recursive": "true"})
    assert_json(r, 200, {
        "action": "delete",
        "node": {"key": f"/{ns}/k", "modifiedIndex": i + 1, "createdIndex": i},
        "prevNode": {"key": f"/{ns}/k", "value": "v", "modifiedIndex": i, "createdIndex": i},
    })


def test_delete_missing(shared_member, ns):
    m = shared_member
    base = m.index()
    for params in ({}, {"dir": "true"}, {"recursive": "true"}):
        assert_error(m.delete(f"/v2/keys/{ns}/nx", params=params), 404, 100, "Key not found",
                     f"/{ns}", base)


# --------------------------------------------------------------------------
# GET of directories

def test_get_dir_non_recursive_and_recursive_sorted(shared_member, ns):
    m = shared_member
    base = m.index()
    m.set(f"{ns}/d/b", "2")          # base+1, creates /ns and /ns/d
    m.set(f"{ns}/d/a", "1")          # base+2
    m.set(f"{ns}/d/c/x", "3")        # base+3, creates /ns/d/c
    m.set(f"{ns}/d/c/_h", "hidden")  # base+4
    m.put(f"/v2/keys/{ns}/d/e", data={"dir": "true"})  # base+5

    r = m.get(f"/v2/keys/{ns}/d", params={"sorted": "true"})
    assert_json(r, 200, {"action": "get", "node": {
        "key": f"/{ns}/d", "dir": True,
        "nodes": [
            {"key": f"/{ns}/d/a", "value": "1", "modifiedIndex": base + 2,
             "createdIndex": base + 2},
            {"key": f"/{ns}/d/b", "value": "2", "modifiedIndex": base + 1,
             "createdIndex": base + 1},
            {"key": f"/{ns}/d/c", "dir": True, "modifiedIndex": base + 3,
             "createdIndex": base + 3},
            {"key": f"/{ns}/d/e", "dir": True, "modifiedIndex": base + 5,
             "createdIndex": base + 5},
        ],
        "modifiedIndex": base + 1, "createdIndex": base + 1}}, index=base + 5)

    r = m.get(f"/v2/keys/{ns}/d", params={"sorted": "true", "recursive": "true"})
    assert_json(r, 200, {"action": "get", "node": {
        "key": f"/{ns}/d", "dir": True,
        "nodes": [
            {"key": f"/{ns}/d/a", "value": "1", "modifiedIndex": base + 2,
             "createdIndex": base + 2},
            {"key": f"/{ns}/d/b", "value": "2", "modifiedIndex": base + 1,
             "createdIndex": base + 1},
            {"key": f"/{ns}/d/c", "dir": True,
             "nodes": [{"key": f"/{ns}/d/c/x", "value": "3", "modifiedIndex": base + 3,
                        "createdIndex": base + 3}],
             "modifiedIndex": base + 3, "createdIndex": base + 3},
            {"key": f"/{ns}/d/e", "dir": True, "modifiedIndex": base + 5,
             "createdIndex": base + 5},
        ],
        "modifiedIndex": base + 1, "createdIndex": base + 1}}, index=base + 5)


def test_get_unsorted_has_same_children(shared_member, ns):
    m = shared_member
    for k in ("z", "a", "m", "b"):
        m.set(f"{ns}/u/{k}", k)
    r = m.get(f"/v2/keys/{ns}/u")
    assert r.status_code == 200
    keys = sorted(n["key"] for n in r.json()["node"]["nodes"])
    assert keys == [f"/{ns}/u/{k}" for k in ("a", "b", "m", "z")]


def test_sorted_is_bytewise(shared_member, ns):
    m = shared_member
    for k in ("b", "B", "a1", "a", "_h", "0"):
        m.set(f"{ns}/s/{k}", "x")
    r = m.get(f"/v2/keys/{ns}/s", params={"sorted": "true"})
    assert [n["key"] for n in r.json()["node"]["nodes"]] == [
        f"/{ns}/s/{k}" for k in ("0", "B", "a", "a1", "b")]


def test_quorum_get_same_as_local(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/q", "v")["node"]["modifiedIndex"]
    r = m.get(f"/v2/keys/{ns}/q", params={"quorum": "true"})
    assert_json(r, 200, {"action": "get", "node": {"key": f"/{ns}/q", "value": "v",
                                                     "modifiedIndex": i, "createdIndex": i}},
                index=i)
    raft_headers_ok(r)
    assert_error(m.get(f"/v2/keys/{ns}/nope", params={"quorum": "true"}), 404, 100,
                 "Key not found", f"/{ns}/nope", i)


def test_recursive_has_no_effect_on_key(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/k", "v")["node"]["modifiedIndex"]
    r = m.get(f"/v2/keys/{ns}/k", params={"recursive": "true", "sorted": "true"})
    assert r.json() == {"action": "get", "node": {"key": f"/{ns}/k", "value": "v",
                                                   "modifiedIndex": i, "createdIndex": i}}


def test_empty_dir_has_no_nodes_field(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/empty", data={"dir": "true"})
    i = r.json()["node"]["modifiedIndex"]
    assert_json(r, 201, {"action": "set", "node": {"key": f"/{ns}/empty", "dir": True,
                                                    "modifiedIndex": i, "createdIndex": i}})
    for params in ({}, {"recursive": "true"}):
        g = m.get(f"/v2/keys/{ns}/empty", params=params)
        assert g.json() == {"action": "get", "node": {"key": f"/{ns}/empty", "dir": True,
                                                       "modifiedIndex": i, "createdIndex": i}}


# --------------------------------------------------------------------------
# Values and key names

def test_large_value_1mib(shared_member, ns):
    m = shared_member
    value = "x" * (1 << 20)
    r = m.put(f"/v2/keys/{ns}/big", data={"value": value})
    assert r.status_code == 201
    g = m.get(f"/v2/keys/{ns}/big")
    assert g.json()["node"]["value"] == value


def test_value_bytes_round_trip(shared_member, ns):
    m = shared_member
    value = "a b&c=d\u00e9\u2603<>\"'\\\n\t%+"
    r = m.put(f"/v2/keys/{ns}/v", data={"value": value})
    assert r.status_code == 201
    assert r.json()["node"]["value"] == value
    assert m.get(f"/v2/keys/{ns}/v").json()["node"]["value"] == value


@pytest.mark.parametrize("raw,decoded", [
    ("sp%20ace", "sp ace"),
    ("pct%25", "pct%"),
    ("uni%C3%A9", "uni\u00e9"),
    ("plus+sign", "plus+sign"),
    ("colon:semi;comma,", "colon:semi;comma,"),
    ("at@eq=", "at@eq="),
])
def test_url_encoded_key_names(shared_member, ns, raw, decoded):
    m = shared_member
    r = requests.put(m.url(f"/v2/keys/{ns}/{raw}"), data={"value": "1"}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["node"]["key"] == f"/{ns}/{decoded}"
    g = requests.get(m.url(f"/v2/keys/{ns}/{raw}"), timeout=10)
    assert g.json()["node"]["key"] == f"/{ns}/{decoded}"
    listing = m.get(f"/v2/keys/{ns}").json()["node"]["nodes"]
    assert [n["key"] for n in listing] == [f"/{ns}/{decoded}"]


def test_encoded_slash_is_a_separator(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/a%2Fb", data={"value": "1"})
    assert r.status_code == 201
    assert r.json()["node"]["key"] == f"/{ns}/a/b"
    assert m.get(f"/v2/keys/{ns}/a").json()["node"]["dir"] is True


def test_trailing_slash_addresses_the_key(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/k", "v")["node"]["modifiedIndex"]
    r = m.get(f"/v2/keys/{ns}/k/")
    assert_json(r, 200, {"action": "get", "node": {"key": f"/{ns}/k", "value": "v",
                                                     "modifiedIndex": i, "createdIndex": i}})


@pytest.mark.parametrize("path", ["{ns}//a//b", "{ns}/./a/b", "{ns}/x/../a/b", "{ns}/a/./b/"])
def test_unclean_path_get_reaches_clean_key(shared_member, ns, path):
    """etcd 3.4 answers 301 to the cleaned path (Go's ServeMux); the spec says the
    path is cleaned.  Either way a client following redirects ends at the key."""
    m = shared_member
    i = m.set(f"{ns}/a/b", "v")["node"]["modifiedIndex"]
    target = "/v2/keys/" + path.format(ns=ns)
    r = raw_http(m.client_port, "GET", target)
    if r.status == 301:
        loc = r.header("Location")
        assert loc.rstrip("/") == f"/v2/keys/{ns}/a/b"
        r = raw_http(m.client_port, "GET", loc)
    assert r.status == 200
    assert r.json() == {"action": "get", "node": {"key": f"/{ns}/a/b", "value": "v",
                                                   "modifiedIndex": i, "createdIndex": i}}


@pytest.mark.cairn_only
@pytest.mark.parametrize("path,key", [
    ("{ns}//a//b", "/{ns}/a/b"),
    ("{ns}/./a/b", "/{ns}/a/b"),
    ("{ns}/x/../a/b", "/{ns}/a/b"),
    ("{ns}/a/b/", "/{ns}/a/b"),
])
def test_unclean_path_put_is_normalised(shared_member, ns, path, key):
    """Spec 3: cairn cleans the key path itself (etcd 3.4 redirects with 301)."""
    m = shared_member
    base = m.index()
    r = raw_http(m.client_port, "PUT", "/v2/keys/" + path.format(ns=ns),
                 {"Content-Type": "application/x-www-form-urlencoded"}, b"value=v")
    assert r.status == 201, r.body
    assert r.json() == {"action": "set", "node": {"key": key.format(ns=ns), "value": "v",
                                                   "modifiedIndex": base + 1,
                                                   "createdIndex": base + 1}}


@pytest.mark.cairn_only
@pytest.mark.parametrize("target", ["/v2/keys//", "/v2/keys/.", "/v2/keys/x/.."])
def test_unclean_root(shared_member, target):
    m = shared_member
    r = raw_http(m.client_port, "GET", target)
    assert r.status == 200, r.body
    assert r.json()["node"]["dir"] is True
    assert "key" not in r.json()["node"]


@pytest.mark.etcd_only
def test_dotdot_redirects_in_etcd(shared_member):
    r = raw_http(shared_member.client_port, "GET", "/v2/keys/../../version")
    assert r.status == 301
    assert r.header("Location") == "/version"


@pytest.mark.cairn_only
def test_dotdot_stays_inside_keyspace(shared_member):
    """Key path = clean("/" + rest after /v2/keys): /v2/keys/../../version is key /version."""
    m = shared_member
    base = m.index()
    r = raw_http(m.client_port, "GET", "/v2/keys/../../version")
    assert r.status == 404, r.body
    assert r.body == error_bytes(100, "Key not found", "/version", base)


# --------------------------------------------------------------------------
# Cluster id header on every keys response

def test_cluster_id_header_on_all_keys_responses(shared_member, ns):
    m = shared_member
    cid = m.cluster_id
    rs = [
        m.put(f"/v2/keys/{ns}/k", data={"value": "1"}),
        m.get(f"/v2/keys/{ns}/k"),
        m.head(f"/v2/keys/{ns}/k"),
        m.get(f"/v2/keys/{ns}/missing"),
        m.get(f"/v2/keys/{ns}/k", params={"recursive": "bogus"}),
        m.post(f"/v2/keys/{ns}/q", data={"value": "1"}),
        m.delete(f"/v2/keys/{ns}/k"),
    ]
    for r in rs:
        assert r.headers["X-Etcd-Cluster-Id"] == cid, (r.status_code, r.headers)
