"""Watches: wait / waitIndex / recursive / stream, history window, filters (spec 8)."""

import concurrent.futures as cf
import threading

import pytest
import requests

from harness import CLEAN_EXIT_CODE, RawConn, Watcher, assert_error, assert_json, \
    http_request_bytes, watch_registered


def watch_get(m, key, timeout=10, **params):
    params.setdefault("wait", "true")
    return requests.get(m.url("/v2/keys/" + key.lstrip("/")), params=params, timeout=timeout)


def test_headers_flushed_before_any_event(member):
    m = member
    base = m.index()
    w = Watcher(m, "foo")
    try:
        w.wait_headers(timeout=5)
        assert w.status == 200
        assert w.events == []
        assert w.header("Content-Type") == "application/json"
        assert w.header("X-Etcd-Index") == str(base)
        assert w.header("X-Etcd-Cluster-Id") == m.cluster_id
        assert int(w.header("X-Raft-Index")) >= 1
        assert int(w.header("X-Raft-Term")) >= 1
        assert w.header("Transfer-Encoding").lower() == "chunked"
        assert w.header("Content-Length") is None
        m.set("foo", "bar")
        events = w.wait_events(1)
        assert events == [{"action": "set", "node": {"key": "/foo", "value": "bar",
                                                      "modifiedIndex": base + 1,
                                                      "createdIndex": base + 1}}]
        assert w.raw_lines[0].endswith(b"}\n")
        w.wait_end(5)
        assert w.error is None
        assert len(w.events) == 1
    finally:
        w.close()


def test_watch_exact_key_ignores_others(member):
    m = member
    w = Watcher(m, "dir/k").wait_headers()
    try:
        m.set("dir/other", "1")
        m.set("dir/k2", "1")
        m.set("dir/k/child", "1")  # /dir/k becomes a dir: event key is /dir/k/child
        base = m.index()
        m.put("/v2/keys/dir/k/child", params={"prevValue": "1"}, data={"value": "2"})
        m.delete("/v2/keys/dir/k", params={"recursive": "true"})
        ev = w.wait_events(1)
        assert ev == [{"action": "delete",
                       "node": {"key": "/dir/k", "dir": True, "modifiedIndex": base + 2,
                                "createdIndex": base},
                       "prevNode": {"key": "/dir/k", "dir": True, "modifiedIndex": base,
                                    "createdIndex": base}}]
    finally:
        w.close()


def test_watch_non_recursive_on_dir_ignores_children(member):
    m = member
    m.put("/v2/keys/d", data={"dir": "true"})
    w = Watcher(m, "d").wait_headers()
    try:
        m.set("d/child", "1")
        m.set("d/sub/x", "2")
        base = m.index()
        m.put("/v2/keys/d", params={"dir": "true", "prevExist": "true"}, data={"ttl": ""})
        ev = w.wait_events(1)
        assert ev[0]["action"] == "update"
        assert ev[0]["node"]["key"] == "/d"
        assert ev[0]["node"]["modifiedIndex"] == base + 1
    finally:
        w.close()


def test_recursive_watch_prefix_is_path_based(member):
    m = member
    w = Watcher(m, "foo", recursive="true").wait_headers()
    try:
        m.set("foobar", "no")      # not below /foo
        m.set("fo", "no")
        base = m.index()
        m.set("foo/a/b", "yes")
        ev = w.wait_events(1)
        assert ev == [{"action": "set", "node": {"key": "/foo/a/b", "value": "yes",
                                                  "modifiedIndex": base + 1,
                                                  "createdIndex": base + 1}}]
    finally:
        w.close()


def test_recursive_watch_sees_key_itself(member):
    m = member
    w = Watcher(m, "foo", recursive="true").wait_headers()
    try:
        base = m.index()
        m.set("foo", "self")
        ev = w.wait_events(1)
        assert ev[0]["node"] == {"key": "/foo", "value": "self", "modifiedIndex": base + 1,
                                 "createdIndex": base + 1}
    finally:
        w.close()


def test_event_bodies_for_every_action(member):
    m = member
    base = m.index()
    m.set("k", "1")                                                          # +1 set
    m.put("/v2/keys/k", params={"prevExist": "true"}, data={"value": "2"})   # +2 update
    m.put("/v2/keys/k", params={"prevValue": "2"}, data={"value": "3"})      # +3 CAS
    m.delete("/v2/keys/k", params={"prevValue": "3"})                        # +4 CAD
    m.put("/v2/keys/k", params={"prevExist": "false"}, data={"value": "4"})  # +5 create
    m.delete("/v2/keys/k")                                                   # +6 delete
    b = base
    expected = [
        {"action": "set", "node": {"key": "/k", "value": "1", "modifiedIndex": b + 1,
                                   "createdIndex": b + 1}},
        {"action": "update", "node": {"key": "/k", "value": "2", "modifiedIndex": b + 2,
                                      "createdIndex": b + 1},
         "prevNode": {"key": "/k", "value": "1", "modifiedIndex": b + 1, "createdIndex": b + 1}},
        {"action": "compareAndSwap", "node": {"key": "/k", "value": "3", "modifiedIndex": b + 3,
                                              "createdIndex": b + 1},
         "prevNode": {"key": "/k", "value": "2", "modifiedIndex": b + 2, "createdIndex": b + 1}},
        {"action": "compareAndDelete", "node": {"key": "/k", "modifiedIndex": b + 4,
                                                "createdIndex": b + 1},
         "prevNode": {"key": "/k", "value": "3", "modifiedIndex": b + 3, "createdIndex": b + 1}},
        {"action": "create", "node": {"key": "/k", "value": "4", "modifiedIndex": b + 5,
                                      "createdIndex": b + 5}},
        {"action": "delete", "node": {"key": "/k", "modifiedIndex": b + 6, "createdIndex": b + 5},
         "prevNode": {"key": "/k", "value": "4", "modifiedIndex": b + 5, "createdIndex": b + 5}},
    ]
    for i, exp in enumerate(expected, start=1):
        r = watch_get(m, "k", waitIndex=str(b + i))
        assert_json(r, 200, exp)
        # X-Etcd-Index of a history hit is the current index, not the event's
        assert r.headers["X-Etcd-Index"] == str(b + 6)
        assert r.content.endswith(b"}\n")


def test_wait_index_zero_means_next_event(member):
    m = member
    m.set("k", "old")
    w = Watcher(m, "k", waitIndex="0").wait_headers()
    try:
        base = m.index()
        m.set("k", "new")
        assert w.wait_events(1)[0]["node"]["modifiedIndex"] == base + 1
    finally:
        w.close()


def test_history_scan_returns_first_match_at_or_after_wait_index(member):
    m = member
    base = m.index()
    m.set("a", "1")   # b+1
    m.set("x", "1")   # b+2
    m.set("a", "2")   # b+3
    m.set("a", "3")   # b+4
    r = watch_get(m, "a", waitIndex=str(base + 2))
    assert r.json()["node"]["value"] == "2"
    assert r.json()["node"]["modifiedIndex"] == base + 3
    r = watch_get(m, "a", waitIndex=str(base + 1))
    assert r.json()["node"]["modifiedIndex"] == base + 1


def test_future_wait_index_skips_earlier_events(member):
    m = member
    base = m.index()
    w = Watcher(m, "k", waitIndex=str(base + 3)).wait_headers()
    try:
        m.set("k", "1")   # b+1, ignored
        m.set("k", "2")   # b+2, ignored
        m.set("k", "3")   # b+3, delivered
        ev = w.wait_events(1)
        assert ev[0]["node"]["value"] == "3"
        assert ev[0]["node"]["modifiedIndex"] == base + 3
        assert len(w.wait_end()) == 1
    finally:
        w.close()


def test_ancestor_delete_notifies_descendant_watcher(member):
    m = member
    base = m.index()
    m.set("a/b/c", "v")  # b+1
    w = Watcher(m, "a/b/c").wait_headers()
    try:
        m.delete("/v2/keys/a", params={"recursive": "true"})
        assert w.wait_events(1) == [{
            "action": "delete",
            "node": {"key": "/a", "dir": True, "modifiedIndex": base + 2,
                     "createdIndex": base + 1},
            "prevNode": {"key": "/a", "dir": True, "modifiedIndex": base + 1,
                         "createdIndex": base + 1}}]
    finally:
        w.close()


@pytest.mark.cairn_only
def test_ancestor_delete_notifies_watcher_of_missing_descendant(member):
    """Spec 8 rule: a dir delete matches every watcher at or below the dir.
    etcd 3.4 only notifies watchers of nodes that existed in the removed subtree."""
    m = member
    base = m.index()
    m.set("a/b/c", "v")  # b+1
    w = Watcher(m, "a/b/c/d/e").wait_headers()
    try:
        m.delete("/v2/keys/a", params={"recursive": "true"})
        assert w.wait_events(1)[0]["node"] == {"key": "/a", "dir": True,
                                               "modifiedIndex": base + 2,
                                               "createdIndex": base + 1}
    finally:
        w.close()


def test_deleting_a_key_does_not_notify_watchers_of_siblings(member):
    m = member
    m.set("s/a", "1")
    m.set("s/b", "1")
    w = Watcher(m, "s/a").wait_headers()
    try:
        m.delete("/v2/keys/s/b")
        base = m.index()
        m.set("s/a", "2")
        ev = w.wait_events(1)
        assert ev[0]["node"]["modifiedIndex"] == base + 1
    finally:
        w.close()


def test_hidden_keys_filtered_for_ancestor_watchers(member):
    m = member
    base = m.index()
    w = Watcher(m, "wd", recursive="true", stream="true").wait_headers()
    exact = Watcher(m, "wd/_z").wait_headers()
    try:
        m.set("wd/x", "1")        # b+1
        m.set("wd/_z", "h")       # b+2 hidden
        m.set("wd/_hd/deep", "h")  # b+3 hidden (hidden dir segment)
        m.set("wd/y", "2")        # b+4
        ev = w.wait_events(2)
        assert [e["node"]["key"] for e in ev] == ["/wd/x", "/wd/y"]
        assert [e["node"]["modifiedIndex"] for e in ev] == [base + 1, base + 4]
        ex = exact.wait_events(1)
        assert ex == [{"action": "set", "node": {"key": "/wd/_z", "value": "h",
                                                  "modifiedIndex": base + 2,
                                                  "createdIndex": base + 2}}]
    finally:
        w.close()
        exact.close()


def test_watch_inside_hidden_dir(member):
    """A watcher whose own path is below a hidden segment still sees its events:
    only the part below the watched key is checked."""
    m = member
    w = Watcher(m, "_h", recursive="true").wait_headers()
    try:
        base = m.index()
        m.set("_h/k", "1")
        ev = w.wait_events(1)
        assert ev[0]["node"]["key"] == "/_h/k"
        assert ev[0]["node"]["modifiedIndex"] == base + 1
    finally:
        w.close()


def test_stream_delivers_each_event_as_a_line(member):
    m = member
    base = m.index()
    w = Watcher(m, "wd", recursive="true", stream="true").wait_headers()
    try:
        m.set("wd/x", "1")
        m.set("wd/y", "2")
        m.set("wd/x", "3")
        ev = w.wait_events(3)
        assert [(e["action"], e["node"]["key"], e["node"]["value"]) for e in ev] == [
            ("set", "/wd/x", "1"), ("set", "/wd/y", "2"), ("set", "/wd/x", "3")]
        assert ev[2]["prevNode"] == {"key": "/wd/x", "value": "1", "modifiedIndex": base + 1,
                                     "createdIndex": base + 1}
        assert all(line.endswith(b"}\n") for line in w.raw_lines)
        assert not w.ended.is_set()
        # still registered
        assert m.get("/v2/stats/store").json()["watchers"] == 1
    finally:
        w.close()


def test_stream_recursive_delete_of_watched_dir(member):
    m = member
    base = m.index()
    m.set("wd/x", "1")
    w = Watcher(m, "wd", recursive="true", stream="true").wait_headers()
    try:
        m.delete("/v2/keys/wd", params={"recursive": "true"})
        ev = w.wait_events(1)
        assert ev[0] == {"action": "delete",
                         "node": {"key": "/wd", "dir": True, "modifiedIndex": base + 2,
                                  "createdIndex": base + 1},
                         "prevNode": {"key": "/wd", "dir": True, "modifiedIndex": base + 1,
                                      "createdIndex": base + 1}}
        # etcd may deliver it twice (spec quirk); never anything else
        m.set("other", "x")
        assert all(e == ev[0] for e in w.events)
    finally:
        w.close()


@pytest.mark.cairn_only
def test_stream_recursive_delete_delivered_once(member):
    """Spec 8: cairn SHOULD deliver the dir delete once (etcd sends it twice)."""
    m = member
    m.set("wd/x", "1")
    w = Watcher(m, "wd", recursive="true", stream="true").wait_headers()
    try:
        m.delete("/v2/keys/wd", params={"recursive": "true"})
        w.wait_events(1)
        m.set("wd/y", "again")
        ev = w.wait_events(2)
        assert [e["action"] for e in ev] == ["delete", "set"]
    finally:
        w.close()


@pytest.mark.cairn_only
def test_stream_from_history_keeps_streaming(member):
    """Spec 8: a stream started in the past SHOULD keep delivering later matches."""
    m = member
    base = m.index()
    m.set("k", "1")
    w = Watcher(m, "k", stream="true", waitIndex=str(base + 1)).wait_headers()
    try:
        assert w.wait_events(1)[0]["node"]["value"] == "1"
        m.set("k", "2")
        ev = w.wait_events(2)
        assert ev[1]["node"]["value"] == "2"
    finally:
        w.close()


def test_non_stream_ends_after_one_event(member):
    m = member
    w = Watcher(m, "k", recursive="true").wait_headers()
    try:
        m.set("k/a", "1")
        m.set("k/b", "2")
        assert len(w.wait_end()) == 1
        assert w.events[0]["node"]["key"] == "/k/a"
    finally:
        w.close()


def test_watchers_count(member):
    m = member
    assert m.get("/v2/stats/store").json()["watchers"] == 0
    w1 = Watcher(m, "a").wait_headers()
    w2 = Watcher(m, "b", recursive="true", stream="true").wait_headers()
    try:
        watch_registered(m, 2)
        m.set("a", "1")  # completes w1
        w1.wait_end()
        watch_registered(m, 1)
        w2.close()  # client disconnect removes the stream watcher
        watch_registered(m, 0)
    finally:
        w1.close()
        w2.close()


def test_watch_on_missing_key_and_missing_parent(member):
    m = member
    w = Watcher(m, "no/such/key").wait_headers()
    try:
        assert w.status == 200
        base = m.index()
        m.set("no/such/key", "now")
        assert w.wait_events(1)[0]["node"]["modifiedIndex"] == base + 1
    finally:
        w.close()


def test_watch_through_a_key_is_fine(member):
    """Watching below a key is not an error (watch on a non-existent key is fine)."""
    m = member
    m.set("file", "v")
    w = Watcher(m, "file/below").wait_headers()
    try:
        assert w.status == 200
        base = m.index()
        m.delete("/v2/keys/file")
        m.set("file/below", "x")
        ev = w.wait_events(1)
        assert ev[0]["node"] == {"key": "/file/below", "value": "x",
                                 "modifiedIndex": base + 2, "createdIndex": base + 2}
    finally:
        w.close()


def many_writes(m, n, threads=8):
    keys = [f"/v2/keys/h/k{i % 10}" for i in range(n)]
    local = threading.local()

    def put(i):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        r = s.put(m.url(keys[i]), data={"value": str(i)}, timeout=30)
        assert r.status_code in (200, 201), r.text

    with cf.ThreadPoolExecutor(threads) as ex:
        list(ex.map(put, range(n)))


def test_history_window_and_cleared_error(member):
    m = member
    assert m.index() == 3
    many_writes(m, 1001)
    cur = m.index()
    assert cur == 1004
    oldest = cur - 999  # the last 1000 events are kept
    r = watch_get(m, "h", recursive="true", waitIndex=str(oldest - 1))
    assert_error(r, 400, 401, "The event in requested index is outdated and cleared",
                 f"the requested history has been cleared [{oldest}/{oldest - 1}]", cur)
    r = watch_get(m, "h", recursive="true", waitIndex="1")
    assert_error(r, 400, 401, "The event in requested index is outdated and cleared",
                 f"the requested history has been cleared [{oldest}/1]", cur)
    r = watch_get(m, "h", recursive="true", waitIndex=str(oldest))
    assert r.status_code == 200
    assert r.json()["node"]["modifiedIndex"] == oldest
    r = watch_get(m, "h", recursive="true", waitIndex=str(cur))
    assert r.json()["node"]["modifiedIndex"] == cur


def test_watch_ends_cleanly_on_shutdown(member):
    m = member
    w = Watcher(m, "k").wait_headers()
    try:
        assert m.stop() == CLEAN_EXIT_CODE
        w.wait_end(10)
        # a 200 with an empty body (or a closed connection) - never a bogus event
        assert w.events == []
    finally:
        w.close()


def test_many_concurrent_watchers_all_notified(member):
    m = member
    ws = [Watcher(m, "k").wait_headers() for _ in range(50)]
    try:
        watch_registered(m, 50)
        base = m.index()
        m.set("k", "v")
        for w in ws:
            assert w.wait_events(1) == [{"action": "set", "node": {
                "key": "/k", "value": "v", "modifiedIndex": base + 1,
                "createdIndex": base + 1}}]
        watch_registered(m, 0)
    finally:
        for w in ws:
            w.close()


def test_watch_raw_bytes_chunked(member):
    """Wire format: chunked body whose data is exactly one JSON line."""
    m = member
    with RawConn(m.client_port) as c:
        c.send(http_request_bytes("GET", "/v2/keys/raw?wait=true",
                                  {"Connection": "close"}))
        status, _, headers, head = c.read_head()
        assert status == 200
        hd = {k.lower(): v for k, v in headers}
        assert hd["transfer-encoding"] == "chunked"
        base = m.index()
        m.set("raw", "v")
        data = b""
        while True:
            chunk = c.read_chunk()
            if chunk == b"":
                break
            data += chunk
        assert data == (b'{"action":"set","node":{"key":"/raw","value":"v","modifiedIndex":%d,'
                        b'"createdIndex":%d}}\n' % (base + 1, base + 1))
