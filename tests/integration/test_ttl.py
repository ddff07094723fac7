"""TTLs: recording, remaining ttl, expiry events, refresh, unset (spec section 7).

Each test uses a fresh member: expiries consume indexes asynchronously.
"""

import datetime as dt
import re

import pytest
import requests

from harness import Watcher, assert_error, assert_json, wait_until

RFC3339NANO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


def parse_expiration(s):
    assert RFC3339NANO_Z.match(s), s
    base, _, frac = s[:-1].partition(".")
    t = dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


def now():
    return dt.datetime.now(dt.timezone.utc).timestamp()


def watch_once(m, key, wait_index, timeout=10, **params):
    """A blocking v2 watch; the request timeout is the deadline."""
    params.update({"wait": "true", "waitIndex": str(wait_index)})
    return requests.get(m.url("/v2/keys/" + key.lstrip("/")), params=params, timeout=timeout)


def test_ttl_key_fields(member):
    m = member
    t0 = now()
    r = m.put("/v2/keys/t", data={"value": "v", "ttl": "30"})
    t1 = now()
    body = assert_json(r, 201, index=4)
    n = body["node"]
    assert set(n) == {"key", "value", "expiration", "ttl", "modifiedIndex", "createdIndex"}
    assert list(n) == ["key", "value", "expiration", "ttl", "modifiedIndex", "createdIndex"]
    assert n["ttl"] == 30
    exp = parse_expiration(n["expiration"])
    assert t0 + 30 - 1 <= exp <= t1 + 30 + 1
    g = m.get("/v2/keys/t").json()["node"]
    assert g["expiration"] == n["expiration"]
    assert g["ttl"] in (29, 30)


def test_ttl_is_rounded_up(member):
    m = member
    m.put("/v2/keys/t", data={"value": "v", "ttl": "3"})
    # right after the write ~2.99 s are left: ceil -> 3
    r = m.get("/v2/keys/t").json()["node"]
    exp = parse_expiration(r["expiration"])
    assert exp - now() > 2.0
    assert r["ttl"] == 3
    # wait until less than 2 s remain, ttl must then be 2 (ceil of 1.x)
    wait_until(lambda: exp - now() < 1.9, timeout=5)
    r2 = m.get("/v2/keys/t").json()["node"]
    assert r2["ttl"] == 2


def test_dir_ttl(member):
    m = member
    r = m.put("/v2/keys/d", data={"dir": "true", "ttl": "40"})
    assert_json(r, 201)
    n = r.json()["node"]
    assert n["dir"] is True and n["ttl"] == 40 and RFC3339NANO_Z.match(n["expiration"])
    assert list(n) == ["key", "dir", "expiration", "ttl", "modifiedIndex", "createdIndex"]
    # extend it with prevExist=true (update)
    r = m.put("/v2/keys/d", params={"dir": "true", "prevExist": "true"}, data={"ttl": "100"})
    assert r.status_code == 200
    assert r.json()["action"] == "update"
    assert r.json()["node"]["ttl"] == 100
    assert r.json()["prevNode"]["ttl"] in (39, 40)
    g = m.get("/v2/keys/d").json()["node"]
    assert g["ttl"] in (99, 100)


def test_key_expires_with_expire_event(member):
    m = member
    r = m.put("/v2/keys/ttl", data={"value": "v", "ttl": "1"})
    c = r.json()["node"]["modifiedIndex"]
    exp = r.json()["node"]["expiration"]
    w = watch_once(m, "ttl", c + 1)
    assert_json(w, 200, {
        "action": "expire",
        "node": {"key": "/ttl", "modifiedIndex": c + 1, "createdIndex": c},
        "prevNode": {"key": "/ttl", "value": "v", "expiration": exp,
                     "modifiedIndex": c, "createdIndex": c},
    })
    assert parse_expiration(exp) <= now() + 0.05
    assert_error(m.get("/v2/keys/ttl"), 404, 100, "Key not found", "/ttl", c + 1)
    stats = m.get("/v2/stats/store").json()
    assert stats["expireCount"] == 1


def test_expiry_is_not_early_and_reasonably_prompt(member):
    m = member
    r = m.put("/v2/keys/ttl", data={"value": "v", "ttl": "2"})
    exp = parse_expiration(r.json()["node"]["expiration"])
    c = r.json()["node"]["modifiedIndex"]
    w = watch_once(m, "ttl", c + 1)
    t = now()
    assert w.json()["action"] == "expire"
    assert t >= exp - 0.05
    assert t <= exp + 2.0


def test_live_watcher_gets_expire(member):
    m = member
    w = Watcher(m, "k").wait_headers()
    try:
        r = m.put("/v2/keys/k", data={"value": "v", "ttl": "1"})
        c = r.json()["node"]["modifiedIndex"]
        ev = w.wait_events(1)[0]
        assert ev["action"] == "set"
        w2 = watch_once(m, "k", c + 1)
        assert w2.json()["action"] == "expire"
        assert w2.json()["node"] == {"key": "/k", "modifiedIndex": c + 1, "createdIndex": c}
    finally:
        w.close()


def test_ttl_zero_expires_at_next_sweep(member):
    m = member
    r = m.put("/v2/keys/z", data={"value": "v", "ttl": "0"})
    assert r.status_code == 201
    n = r.json()["node"]
    c = n["modifiedIndex"]
    assert "ttl" not in n  # remaining time <= 0 is omitted
    assert RFC3339NANO_Z.match(n["expiration"])
    w = watch_once(m, "z", c + 1)
    assert w.json()["action"] == "expire"
    assert w.json()["node"] == {"key": "/z", "modifiedIndex": c + 1, "createdIndex": c}
    assert "ttl" not in w.json()["prevNode"]


def test_dir_expires_recursively_and_notifies_descendant_watcher(member):
    m = member
    r = m.put("/v2/keys/dir", data={"dir": "true", "ttl": "1"})
    d = r.json()["node"]["modifiedIndex"]
    exp = r.json()["node"]["expiration"]
    m.set("dir/sub/leaf", "x")
    m.set("dir/k", "y")
    # watcher on a descendant that does not change: it learns of the dir expiry
    w = watch_once(m, "dir/sub/leaf", d + 3)
    assert_json(w, 200, {
        "action": "expire",
        "node": {"key": "/dir", "dir": True, "modifiedIndex": d + 3, "createdIndex": d},
        "prevNode": {"key": "/dir", "dir": True, "expiration": exp,
                     "modifiedIndex": d, "createdIndex": d},
    })
    assert_error(m.get("/v2/keys/dir/sub/leaf"), 404, 100, "Key not found", "/dir", d + 3)
    # one expire event and one index for the whole subtree
    assert m.index() == d + 3
    assert m.get("/v2/stats/store").json()["expireCount"] == 1


def test_several_keys_expire_each_consuming_an_index(member):
    m = member
    base = m.index()
    for k in ("a", "b", "c"):
        m.put("/v2/keys/e/" + k, data={"value": k, "ttl": "1"})
    wait_until(lambda: m.index() == base + 6, timeout=10)
    assert m.get("/v2/stats/store").json()["expireCount"] == 3
    g = m.get("/v2/keys/e").json()["node"]
    assert "nodes" not in g
    # three expire events in history
    seen = []
    for i in (base + 4, base + 5, base + 6):
        ev = watch_once(m, "e", i, recursive="true").json()
        assert ev["action"] == "expire"
        assert ev["node"]["modifiedIndex"] == i
        seen.append(ev["node"]["key"])
    assert sorted(seen) == ["/e/a", "/e/b", "/e/c"]


def test_unset_ttl_with_empty_ttl_on_update(member):
    m = member
    c = m.set("k", "foo", ttl="2")["node"]["modifiedIndex"]
    r = m.put("/v2/keys/k", params={"prevExist": "true"}, data={"value": "bar", "ttl": ""})
    assert_json(r, 200)
    assert r.json()["action"] == "update"
    assert r.json()["node"] == {"key": "/k", "value": "bar", "modifiedIndex": c + 1,
                                "createdIndex": c}
    assert r.json()["prevNode"]["ttl"] in (1, 2)
    # it no longer expires: a watch from c+2 sees the next write, not an expiry
    w = Watcher(m, "k", waitIndex=str(c + 2)).wait_headers()
    try:
        exp = parse_expiration(r.json()["prevNode"]["expiration"])
        # pass the old expiry plus two sweep periods, then write
        wait_until(lambda: now() > exp + 1.2, timeout=10)
        assert m.index() == c + 1
        m.set("k", "later")
        ev = w.wait_events(1)[0]
        assert ev["action"] == "set" and ev["node"]["modifiedIndex"] == c + 2
    finally:
        w.close()


def test_update_without_ttl_removes_ttl(member):
    m = member
    c = m.set("k", "foo", ttl="100")["node"]["modifiedIndex"]
    r = m.put("/v2/keys/k", params={"prevExist": "true"}, data={"value": "bar"})
    assert r.json()["node"] == {"key": "/k", "value": "bar", "modifiedIndex": c + 1,
                                "createdIndex": c}


def test_plain_set_with_empty_ttl_has_no_ttl(member):
    m = member
    r = m.put("/v2/keys/k", data={"value": "v", "ttl": ""})
    assert r.json()["node"] == {"key": "/k", "value": "v", "modifiedIndex": 4,
                                "createdIndex": 4}


@pytest.mark.parametrize("params,action,status", [
    ({}, "set", 200),
    ({"prevExist": "true"}, "update", 200),
    ({"prevValue": "v"}, "compareAndSwap", 200),
])
def test_refresh_semantics(member, params, action, status):
    m = member
    r = m.put("/v2/keys/r", data={"value": "v", "ttl": "100"})
    c = r.json()["node"]["modifiedIndex"]
    old = r.json()["node"]
    w = Watcher(m, "r").wait_headers()
    try:
        q = dict(params)
        q.update({"refresh": "true", "ttl": "200"})
        r = m.put("/v2/keys/r", params=q)
        assert r.status_code == status, r.text
        b = r.json()
        assert b["action"] == action
        n = b["node"]
        assert n["value"] == "v"
        assert n["ttl"] == 200
        assert n["modifiedIndex"] == c + 1
        # set recreates the node; update/CAS keep createdIndex
        assert n["createdIndex"] == (c + 1 if action == "set" else c)
        assert parse_expiration(n["expiration"]) > parse_expiration(old["expiration"]) + 90
        assert b["prevNode"]["value"] == "v"
        assert b["prevNode"]["expiration"] == old["expiration"]
        assert r.headers["X-Etcd-Index"] == str(c + 1)
        assert m.index() == c + 1
        # live watcher is not told; the next real write reaches it
        m.set("r", "w2")
        ev = w.wait_events(1)[0]
        assert ev["action"] == "set"
        assert ev["node"]["value"] == "w2"
        assert ev["node"]["modifiedIndex"] == c + 2
        assert len(w.events) == 1
    finally:
        w.close()
    # history scan skips the refresh event too
    h = watch_once(m, "r", c + 1).json()
    assert h["node"]["modifiedIndex"] == c + 2
    # clean up the TTL
    m.delete("/v2/keys/r")


def test_refresh_empty_value_is_allowed(member):
    m = member
    c = m.set("r", "keep", ttl="100")["node"]["modifiedIndex"]
    r = m.put("/v2/keys/r", data={"refresh": "true", "ttl": "50", "value": ""})
    assert r.status_code == 200
    assert r.json()["node"]["value"] == "keep"
    assert r.json()["node"]["ttl"] == 50
    assert r.json()["node"]["modifiedIndex"] == c + 1


def test_refresh_keeps_key_alive(member):
    m = member
    r = m.put("/v2/keys/r", data={"value": "v", "ttl": "2"})
    exp = parse_expiration(r.json()["node"]["expiration"])
    wait_until(lambda: now() > exp - 1.2, timeout=5)
    r = m.put("/v2/keys/r", params={"prevExist": "true", "refresh": "true", "ttl": "3"})
    assert r.status_code == 200
    wait_until(lambda: now() > exp + 1.0, timeout=5)
    assert m.get("/v2/keys/r").json()["node"]["value"] == "v"


def test_refresh_with_failed_compare(member):
    m = member
    c = m.set("r", "v", ttl="100")["node"]["modifiedIndex"]
    r = m.put("/v2/keys/r", params={"prevValue": "x", "refresh": "true", "ttl": "5"})
    assert_error(r, 412, 101, "Compare failed", "[x != v]", c)


def test_dir_ttl_refresh_via_update_and_unset(member):
    m = member
    d = m.put("/v2/keys/d", data={"dir": "true", "ttl": "2"}).json()["node"]["modifiedIndex"]
    r = m.put("/v2/keys/d", params={"dir": "true", "prevExist": "true"}, data={"ttl": ""})
    assert_json(r, 200)
    assert r.json()["action"] == "update"
    assert r.json()["node"] == {"key": "/d", "dir": True, "modifiedIndex": d + 1,
                                "createdIndex": d}
    g = m.get("/v2/keys/d").json()["node"]
    assert "ttl" not in g and "expiration" not in g


def test_ttl_on_post_in_order(member):
    m = member
    r = m.post("/v2/keys/q", data={"value": "job", "ttl": "1"})
    c = r.json()["node"]["modifiedIndex"]
    key = r.json()["node"]["key"]
    assert key == f"/q/{c:020d}"
    w = watch_once(m, "q", c + 1, recursive="true")
    assert w.json()["action"] == "expire"
    assert w.json()["node"] == {"key": key, "modifiedIndex": c + 1, "createdIndex": c}


def test_expired_key_can_be_recreated(member):
    m = member
    c = m.set("k", "v", ttl="1")["node"]["modifiedIndex"]
    watch_once(m, "k", c + 1)
    r = m.put("/v2/keys/k", data={"value": "again", "prevExist": "false"})
    assert_json(r, 201, {"action": "create", "node": {"key": "/k", "value": "again",
                                                       "modifiedIndex": c + 2,
                                                       "createdIndex": c + 2}})
