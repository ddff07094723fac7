"""prevExist / prevValue / prevIndex: create, update, compare-and-swap, compare-and-delete."""

import pytest

from harness import assert_error, assert_json


def node(key, value, mi, ci, **extra):
    n = {"key": key}
    if value is not None:
        n["value"] = value
    n.update(extra)
    n["modifiedIndex"] = mi
    n["createdIndex"] = ci
    return n


def test_prev_exist_false_creates(shared_member, ns):
    m = shared_member
    base = m.index()
    k = f"/{ns}/c"
    r = m.put("/v2/keys" + k, data={"value": "1", "prevExist": "false"})
    assert_json(r, 201, {"action": "create", "node": node(k, "1", base + 1, base + 1)},
                index=base + 1)
    r = m.put("/v2/keys" + k, data={"value": "2", "prevExist": "false"})
    assert_error(r, 412, 105, "Key already exists", k, base + 1)
    assert m.get("/v2/keys" + k).json()["node"]["value"] == "1"


def test_prev_exist_false_ignores_prev_value_and_index(shared_member, ns):
    m = shared_member
    base = m.index()
    k = f"/{ns}/c"
    r = m.put("/v2/keys" + k, params={"prevExist": "false", "prevValue": "zz",
                                      "prevIndex": "99"}, data={"value": "x"})
    assert_json(r, 201, {"action": "create", "node": node(k, "x", base + 1, base + 1)})


def test_prev_exist_false_on_existing_dir(shared_member, ns):
    m = shared_member
    m.put(f"/v2/keys/{ns}/d", data={"dir": "true"})
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/d", data={"dir": "true", "prevExist": "false"})
    assert_error(r, 412, 105, "Key already exists", f"/{ns}/d", base)


def test_prev_exist_true_updates_keeping_created_index(shared_member, ns):
    m = shared_member
    k = f"/{ns}/u"
    c = m.set(k, "1")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, data={"value": "2", "prevExist": "true"})
    assert_json(r, 200, {"action": "update", "node": node(k, "2", c + 1, c),
                         "prevNode": node(k, "1", c, c)}, index=c + 1)
    g = m.get("/v2/keys" + k)
    assert g.json()["node"] == node(k, "2", c + 1, c)


def test_prev_exist_true_missing(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/missing", data={"value": "2", "prevExist": "true"})
    assert_error(r, 404, 100, "Key not found", f"/{ns}", base)
    m.set(f"{ns}/other", "x")
    r = m.put(f"/v2/keys/{ns}/missing", data={"value": "2", "prevExist": "true"})
    assert_error(r, 404, 100, "Key not found", f"/{ns}/missing", base + 1)


def test_update_dir_with_value_is_not_a_file(shared_member, ns):
    m = shared_member
    i = m.put(f"/v2/keys/{ns}/d", data={"dir": "true"}).json()["node"]["modifiedIndex"]
    r = m.put(f"/v2/keys/{ns}/d", data={"value": "v", "prevExist": "true"})
    assert_error(r, 403, 102, "Not a file", f"/{ns}/d", i)
    r = m.put(f"/v2/keys/{ns}/d", data={"value": "v", "prevExist": "true", "dir": "true"})
    assert_error(r, 403, 102, "Not a file", f"/{ns}/d", i)


def test_update_dir_without_value(shared_member, ns):
    m = shared_member
    k = f"/{ns}/d"
    i = m.put("/v2/keys" + k, data={"dir": "true"}).json()["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, data={"prevExist": "true", "dir": "true"})
    assert_json(r, 200, {"action": "update",
                         "node": {"key": k, "dir": True, "modifiedIndex": i + 1,
                                  "createdIndex": i},
                         "prevNode": {"key": k, "dir": True, "modifiedIndex": i,
                                      "createdIndex": i}}, index=i + 1)


@pytest.mark.parametrize("params", [{"prevValue": "1"}, {"prevIndex": "IDX"},
                                    {"prevValue": "1", "prevIndex": "IDX"},
                                    {"prevValue": "1", "prevExist": "true"},
                                    {"prevIndex": "IDX", "prevExist": "true"}])
def test_cas_success(shared_member, ns, params):
    m = shared_member
    k = f"/{ns}/cas"
    c = m.set(k, "1")["node"]["modifiedIndex"]
    q = {p: (str(c) if v == "IDX" else v) for p, v in params.items()}
    r = m.put("/v2/keys" + k, params=q, data={"value": "2"})
    assert_json(r, 200, {"action": "compareAndSwap", "node": node(k, "2", c + 1, c),
                         "prevNode": node(k, "1", c, c)}, index=c + 1)


def test_cas_failure_causes(shared_member, ns):
    m = shared_member
    k = f"/{ns}/cas"
    c = m.set(k, "one")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, params={"prevValue": "two"}, data={"value": "x"})
    assert_error(r, 412, 101, "Compare failed", "[two != one]", c)
    r = m.put("/v2/keys" + k, params={"prevIndex": str(c + 100)}, data={"value": "x"})
    assert_error(r, 412, 101, "Compare failed", f"[{c + 100} != {c}]", c)
    r = m.put("/v2/keys" + k, params={"prevValue": "two", "prevIndex": "1"},
              data={"value": "x"})
    assert_error(r, 412, 101, "Compare failed", f"[two != one] [1 != {c}]", c)
    # value matches but index does not: only the index part is reported
    r = m.put("/v2/keys" + k, params={"prevValue": "one", "prevIndex": "1"},
              data={"value": "x"})
    assert_error(r, 412, 101, "Compare failed", f"[1 != {c}]", c)
    # index matches but value does not
    r = m.put("/v2/keys" + k, params={"prevValue": "two", "prevIndex": str(c)},
              data={"value": "x"})
    assert_error(r, 412, 101, "Compare failed", "[two != one]", c)
    # with prevExist=true as well
    r = m.put("/v2/keys" + k, params={"prevValue": "two", "prevExist": "true"},
              data={"value": "x"})
    assert_error(r, 412, 101, "Compare failed", "[two != one]", c)
    assert m.index() == c
    assert m.get("/v2/keys" + k).json()["node"]["value"] == "one"


def test_cas_missing_and_dir(shared_member, ns):
    m = shared_member
    i = m.put(f"/v2/keys/{ns}/d", data={"dir": "true"}).json()["node"]["modifiedIndex"]
    r = m.put(f"/v2/keys/{ns}/nx", params={"prevValue": "a"}, data={"value": "x"})
    assert_error(r, 404, 100, "Key not found", f"/{ns}/nx", i)
    r = m.put(f"/v2/keys/{ns}/nx", params={"prevIndex": "3"}, data={"value": "x"})
    assert_error(r, 404, 100, "Key not found", f"/{ns}/nx", i)
    r = m.put(f"/v2/keys/{ns}/d", params={"prevValue": "a"}, data={"value": "x"})
    assert_error(r, 403, 102, "Not a file", f"/{ns}/d", i)
    r = m.put(f"/v2/keys/{ns}/d", params={"prevIndex": str(i)}, data={"value": "x"})
    assert_error(r, 403, 102, "Not a file", f"/{ns}/d", i)


def test_prev_index_zero_means_no_check(shared_member, ns):
    m = shared_member
    k = f"/{ns}/z"
    c = m.set(k, "x")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, params={"prevIndex": "0"}, data={"value": "y"})
    assert_json(r, 200, {"action": "set", "node": node(k, "y", c + 1, c + 1),
                         "prevNode": node(k, "x", c, c)})
    r = m.put("/v2/keys" + k, params={"prevIndex": "0", "prevExist": "true"},
              data={"value": "z"})
    assert_json(r, 200, {"action": "update", "node": node(k, "z", c + 2, c + 1),
                         "prevNode": node(k, "y", c + 1, c + 1)})


def test_cas_params_in_form_body(shared_member, ns):
    m = shared_member
    k = f"/{ns}/f"
    c = m.set(k, "1")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, data={"value": "2", "prevValue": "1", "prevIndex": str(c)})
    assert_json(r, 200, {"action": "compareAndSwap", "node": node(k, "2", c + 1, c),
                         "prevNode": node(k, "1", c, c)})


def test_cas_without_ttl_removes_ttl(shared_member, ns):
    m = shared_member
    k = f"/{ns}/t"
    c = m.set(k, "1", ttl="500")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, params={"prevValue": "1"}, data={"value": "2"})
    assert r.status_code == 200
    assert r.json()["node"] == node(k, "2", c + 1, c)
    assert "ttl" in r.json()["prevNode"] and "expiration" in r.json()["prevNode"]
    assert m.get("/v2/keys" + k).json()["node"] == node(k, "2", c + 1, c)


def test_cas_with_ttl_sets_ttl(shared_member, ns):
    m = shared_member
    k = f"/{ns}/t"
    c = m.set(k, "1")["node"]["modifiedIndex"]
    r = m.put("/v2/keys" + k, params={"prevValue": "1"}, data={"value": "2", "ttl": "500"})
    n = r.json()["node"]
    assert r.status_code == 200
    assert n["ttl"] == 500
    assert n["expiration"].endswith("Z")
    # remove the TTL again so nothing expires later on the shared member
    r = m.put("/v2/keys" + k, params={"prevExist": "true"}, data={"value": "3", "ttl": ""})
    assert r.json()["node"] == node(k, "3", c + 2, c)


# --------------------------------------------------------------------------
# compare-and-delete

@pytest.mark.parametrize("params", [{"prevValue": "1"}, {"prevIndex": "IDX"},
                                    {"prevValue": "1", "prevIndex": "IDX"}])
def test_cad_success(shared_member, ns, params):
    m = shared_member
    k = f"/{ns}/cad"
    c = m.set(k, "1")["node"]["modifiedIndex"]
    q = {p: (str(c) if v == "IDX" else v) for p, v in params.items()}
    r = m.delete("/v2/keys" + k, params=q)
    assert_json(r, 200, {"action": "compareAndDelete",
                         "node": {"key": k, "modifiedIndex": c + 1, "createdIndex": c},
                         "prevNode": node(k, "1", c, c)}, index=c + 1)
    assert_error(m.get("/v2/keys" + k), 404, 100, "Key not found", k, c + 1)


def test_cad_failures(shared_member, ns):
    m = shared_member
    k = f"/{ns}/cad"
    c = m.set(k, "one")["node"]["modifiedIndex"]
    d = m.put(f"/v2/keys/{ns}/d", data={"dir": "true"}).json()["node"]["modifiedIndex"]
    assert d == c + 1
    assert_error(m.delete("/v2/keys" + k, params={"prevValue": "two"}), 412, 101,
                 "Compare failed", "[two != one]", d)
    assert_error(m.delete("/v2/keys" + k, params={"prevIndex": "1"}), 412, 101,
                 "Compare failed", f"[1 != {c}]", d)
    assert_error(m.delete("/v2/keys" + k, params={"prevValue": "two", "prevIndex": "1"}),
                 412, 101, "Compare failed", f"[two != one] [1 != {c}]", d)
    assert_error(m.delete(f"/v2/keys/{ns}/nx", params={"prevValue": "a"}), 404, 100,
                 "Key not found", f"/{ns}/nx", d)
    # CAD on a directory: 102, dir/recursive do not help
    for extra in ({}, {"dir": "true"}, {"recursive": "true"}):
        q = {"prevIndex": str(d)}
        q.update(extra)
        assert_error(m.delete(f"/v2/keys/{ns}/d", params=q), 403, 102, "Not a file",
                     f"/{ns}/d", d)
    assert m.index() == d


def test_delete_params_in_body_are_ignored(shared_member, ns):
    """DELETE parameters must come from the query string."""
    m = shared_member
    k = f"/{ns}/k"
    c = m.set(k, "one")["node"]["modifiedIndex"]
    r = m.delete("/v2/keys" + k, data={"prevValue": "wrong"},
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_json(r, 200, {"action": "delete",
                         "node": {"key": k, "modifiedIndex": c + 1, "createdIndex": c},
                         "prevNode": node(k, "one", c, c)})


def test_prev_index_with_leading_zeros(shared_member, ns):
    """Go's strconv.ParseUint takes any number of leading zeros: prevIndex=000...0N is N (cairn
    refused more than 20 digits with error 203)."""
    m = shared_member
    k = f"/{ns}/z"
    r = m.put("/v2/keys" + k, data={"value": "1"})
    idx = r.json()["node"]["modifiedIndex"]
    padded = "0" * 30 + str(idx)
    r = m.put("/v2/keys" + k, data={"value": "2", "prevIndex": padded})
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "compareAndSwap"
    assert r.json()["node"]["value"] == "2"
    r = m.put("/v2/keys" + k, data={"value": "3", "prevIndex": "0" * 30 + "18446744073709551616"})
    assert_error(r, 400, 203, "The given index in POST form is not a number",
                 'invalid value for "prevIndex"', 0)
