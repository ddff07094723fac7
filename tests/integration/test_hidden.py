"""Hidden nodes: last segment starting with "_" (spec section 3)."""

from harness import Watcher, assert_error, assert_json


def test_hidden_key_omitted_from_listings(shared_member, ns):
    m = shared_member
    base = m.index()
    m.set(f"{ns}/h/_hidden", "1")     # b+1
    m.set(f"{ns}/h/vis", "2")         # b+2
    m.set(f"{ns}/h/_hd/x", "3")       # b+3
    m.set(f"{ns}/h/sub/_deep", "4")   # b+4
    m.set(f"{ns}/h/sub/shown", "5")   # b+5
    expected_sub = {"key": f"/{ns}/h/sub", "dir": True, "modifiedIndex": base + 4,
                    "createdIndex": base + 4}
    r = m.get(f"/v2/keys/{ns}/h", params={"sorted": "true"})
    assert_json(r, 200, {"action": "get", "node": {
        "key": f"/{ns}/h", "dir": True,
        "nodes": [expected_sub,
                  {"key": f"/{ns}/h/vis", "value": "2", "modifiedIndex": base + 2,
                   "createdIndex": base + 2}],
        "modifiedIndex": base + 1, "createdIndex": base + 1}}, index=base + 5)
    r = m.get(f"/v2/keys/{ns}/h", params={"sorted": "true", "recursive": "true"})
    sub = dict(expected_sub)
    sub["nodes"] = [{"key": f"/{ns}/h/sub/shown", "value": "5", "modifiedIndex": base + 5,
                     "createdIndex": base + 5}]
    sub = {k: sub[k] for k in ("key", "dir", "nodes", "modifiedIndex", "createdIndex")}
    assert r.json()["node"]["nodes"] == [
        sub, {"key": f"/{ns}/h/vis", "value": "2", "modifiedIndex": base + 2,
              "createdIndex": base + 2}]


def test_hidden_key_readable_by_exact_path(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/_secret", "s")["node"]["modifiedIndex"]
    r = m.get(f"/v2/keys/{ns}/_secret")
    assert_json(r, 200, {"action": "get", "node": {"key": f"/{ns}/_secret", "value": "s",
                                                     "modifiedIndex": i, "createdIndex": i}})
    # hidden dir listed by its own path shows its (non-hidden) children
    m.set(f"{ns}/_hd/child", "c")
    r = m.get(f"/v2/keys/{ns}/_hd")
    assert [n["key"] for n in r.json()["node"]["nodes"]] == [f"/{ns}/_hd/child"]


def test_dir_with_only_hidden_children_lists_no_nodes(shared_member, ns):
    m = shared_member
    i = m.set(f"{ns}/only/_h", "1")["node"]["modifiedIndex"]
    r = m.get(f"/v2/keys/{ns}/only")
    assert r.json() == {"action": "get", "node": {"key": f"/{ns}/only", "dir": True,
                                                   "modifiedIndex": i, "createdIndex": i}}
    # it is still not empty
    assert_error(m.delete(f"/v2/keys/{ns}/only", params={"dir": "true"}), 403, 108,
                 "Directory not empty", f"/{ns}/only", i)


def test_hidden_key_write_ops(shared_member, ns):
    m = shared_member
    k = f"/{ns}/_k"
    c = m.set(k, "1")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, params={"prevValue": "1"}, data={"value": "2"})
    assert r.json()["action"] == "compareAndSwap"
    r = m.delete("/v2/keys" + k)
    assert_json(r, 200, {"action": "delete",
                         "node": {"key": k, "modifiedIndex": c + 2, "createdIndex": c},
                         "prevNode": {"key": k, "value": "2", "modifiedIndex": c + 1,
                                      "createdIndex": c}})


def test_underscore_inside_segment_is_not_hidden(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/d/a_b", "1")
    m.set(f"{ns}/d/b_", "2")
    r = m.get(f"/v2/keys/{ns}/d", params={"sorted": "true"})
    assert [n["key"] for n in r.json()["node"]["nodes"]] == [f"/{ns}/d/a_b", f"/{ns}/d/b_"]


def test_hidden_not_delivered_to_root_watcher(member):
    m = member
    w = Watcher(m, "/", recursive="true", stream="true").wait_headers()
    try:
        base = m.index()
        m.set("_top", "h")
        m.set("dir/_x", "h")
        m.set("vis", "v")
        ev = w.wait_events(1)
        assert ev[0]["node"] == {"key": "/vis", "value": "v", "modifiedIndex": base + 3,
                                 "createdIndex": base + 3}
        m.set("vis2", "v")
        assert [e["node"]["key"] for e in w.wait_events(2)] == ["/vis", "/vis2"]
    finally:
        w.close()
