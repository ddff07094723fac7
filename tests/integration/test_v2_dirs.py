"""Directories: create, update, list, delete (spec 3, 6.2, 6.3, 6.5)."""

from harness import assert_error, assert_json


def test_mkdir_with_set_and_create(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/d1", data={"dir": "true"})
    assert_json(r, 201, {"action": "set", "node": {"key": f"/{ns}/d1", "dir": True,
                                                    "modifiedIndex": base + 1,
                                                    "createdIndex": base + 1}},
                index=base + 1)
    r = m.put(f"/v2/keys/{ns}/d2", params={"prevExist": "false"}, data={"dir": "true"})
    assert_json(r, 201, {"action": "create", "node": {"key": f"/{ns}/d2", "dir": True,
                                                       "modifiedIndex": base + 2,
                                                       "createdIndex": base + 2}},
                index=base + 2)
    # again: set on an existing dir fails, create fails
    assert_error(m.put(f"/v2/keys/{ns}/d1", data={"dir": "true"}), 403, 102, "Not a file",
                 f"/{ns}/d1", base + 2)
    assert_error(m.put(f"/v2/keys/{ns}/d2", params={"prevExist": "false"},
                       data={"dir": "true"}), 412, 105, "Key already exists", f"/{ns}/d2",
                 base + 2)


def test_dir_update_returns_new_modified_index(shared_member, ns):
    m = shared_member
    d = m.put(f"/v2/keys/{ns}/d", data={"dir": "true"}).json()["node"]["modifiedIndex"]
    r = m.put(f"/v2/keys/{ns}/d", params={"prevExist": "true", "dir": "true"})
    assert_json(r, 200, {"action": "update",
                         "node": {"key": f"/{ns}/d", "dir": True, "modifiedIndex": d + 1,
                                  "createdIndex": d},
                         "prevNode": {"key": f"/{ns}/d", "dir": True, "modifiedIndex": d,
                                      "createdIndex": d}}, index=d + 1)
    # the stored dir keeps its old modifiedIndex in etcd; cairn may store the new one
    g = m.get(f"/v2/keys/{ns}/d").json()["node"]
    assert g["createdIndex"] == d
    assert g["modifiedIndex"] in (d, d + 1)


def test_nested_listing_shapes(shared_member, ns):
    m = shared_member
    base = m.index()
    m.set(f"{ns}/top/mid/leaf", "L")     # b+1: creates /ns, /top, /mid
    m.put(f"/v2/keys/{ns}/top/mid/emptydir", data={"dir": "true"})  # b+2
    r = m.get(f"/v2/keys/{ns}", params={"recursive": "true", "sorted": "true"})
    assert_json(r, 200, {"action": "get", "node": {
        "key": f"/{ns}", "dir": True,
        "nodes": [{"key": f"/{ns}/top", "dir": True, "nodes": [
            {"key": f"/{ns}/top/mid", "dir": True, "nodes": [
                {"key": f"/{ns}/top/mid/emptydir", "dir": True, "modifiedIndex": base + 2,
                 "createdIndex": base + 2},
                {"key": f"/{ns}/top/mid/leaf", "value": "L", "modifiedIndex": base + 1,
                 "createdIndex": base + 1}],
             "modifiedIndex": base + 1, "createdIndex": base + 1}],
            "modifiedIndex": base + 1, "createdIndex": base + 1}],
        "modifiedIndex": base + 1, "createdIndex": base + 1}}, index=base + 2)
    # non-recursive: one level, child dir without its nodes
    r = m.get(f"/v2/keys/{ns}/top")
    assert r.json()["node"]["nodes"] == [{"key": f"/{ns}/top/mid", "dir": True,
                                          "modifiedIndex": base + 1,
                                          "createdIndex": base + 1}]


def test_root_listing_shows_top_level(member):
    m = member
    m.set("a", "1")         # 4
    m.set("b/c", "2")       # 5
    r = m.get("/v2/keys/", params={"sorted": "true"})
    assert_json(r, 200, {"action": "get", "node": {"dir": True, "nodes": [
        {"key": "/a", "value": "1", "modifiedIndex": 4, "createdIndex": 4},
        {"key": "/b", "dir": True, "modifiedIndex": 5, "createdIndex": 5}]}}, index=5)
    r = m.get("/v2/keys", params={"sorted": "true", "recursive": "true"})
    assert r.json() == {"action": "get", "node": {"dir": True, "nodes": [
        {"key": "/a", "value": "1", "modifiedIndex": 4, "createdIndex": 4},
        {"key": "/b", "dir": True, "nodes": [
            {"key": "/b/c", "value": "2", "modifiedIndex": 5, "createdIndex": 5}],
         "modifiedIndex": 5, "createdIndex": 5}]}}


def test_internal_records_are_invisible(member):
    """Membership/version records (indexes 1-3) never show in the key space."""
    m = member
    r = m.get("/v2/keys/", params={"recursive": "true"})
    assert r.json() == {"action": "get", "node": {"dir": True}}
    for k in ("0", "1", "2", "_etcd", "members"):
        assert m.get("/v2/keys/" + k).status_code == 404


def test_recursive_delete_then_recreate(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/d/x/y", "1")
    r = m.delete(f"/v2/keys/{ns}/d", params={"recursive": "true"})
    di = r.json()["node"]["modifiedIndex"]
    r = m.put(f"/v2/keys/{ns}/d/x/y", data={"value": "2"})
    assert_json(r, 201, {"action": "set", "node": {"key": f"/{ns}/d/x/y", "value": "2",
                                                    "modifiedIndex": di + 1,
                                                    "createdIndex": di + 1}})
    assert m.get(f"/v2/keys/{ns}/d").json()["node"]["createdIndex"] == di + 1


def test_recursive_get_sorted_large_dir(shared_member, ns):
    m = shared_member
    names = [f"k{i:03d}" for i in range(60)]
    for n in reversed(names):
        m.set(f"{ns}/big/{n}", n)
    r = m.get(f"/v2/keys/{ns}/big", params={"sorted": "true"})
    assert [n["value"] for n in r.json()["node"]["nodes"]] == names
