"""v3 durability on one member: kill -9 under concurrent writers, restart recovers KV, leases
and the compaction point; the v2 and v3 key spaces stay separate."""

import threading

import pytest

from harness import wait_until
from v3harness import Ctl3, client, ctl_error

pytestmark = pytest.mark.v3


def test_kill9_under_concurrent_writers(member):
    """Four writer threads (one grpc channel each) put distinct keys; the member is killed
    with SIGKILL mid-stream. After restart every acknowledged put is there with the
    mod_revision its reply carried, and the revisions of the replies were all distinct."""
    m = member
    acked = {}                         # key -> revision of the acknowledged put
    lock = threading.Lock()
    stop = threading.Event()

    def writer(t):
        c = client(m, timeout=2)
        i = 0
        try:
            while not stop.is_set():
                key = f"w{t}/{i:05d}"
                try:
                    r = c.put(key, f"v{t}-{i}")
                except Exception:  # noqa: BLE001 - the member died: outcome unknown
                    return
                with lock:
                    acked[key] = r.header.revision
                i += 1
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
    for th in threads:
        th.start()
    wait_until(lambda: len(acked) >= 200, 20, message="200 acknowledged puts")
    m.kill9()
    stop.set()
    for th in threads:
        th.join(10)
    with lock:
        snapshot = dict(acked)
    assert len(set(snapshot.values())) == len(snapshot)      # one revision per put
    m.restart()
    c = client(m)
    try:
        got = {meta.key.decode(): (v, meta.mod_revision, meta.create_revision, meta.version)
               for v, meta in c.get_prefix("w")}
        for key, rev in snapshot.items():
            t, i = key[1:].split("/")
            assert got.get(key) == (f"v{t}-{int(i)}".encode(), rev, rev, 1), key
        # nothing beyond what was sent, and the next write continues after the last one
        assert len(got) >= len(snapshot)
        top = max(x[1] for x in got.values())
        assert c.put("after", "x").header.revision == top + 1
    finally:
        c.close()


def test_restart_keeps_leases_and_compaction(member):
    m = member
    ctl = Ctl3(m)
    c = client(m)
    try:
        lease = c.lease(300)
        c.put("lk", "v", lease=lease)                         # rev 2
        c.put("a", "1")                                      # rev 3
        c.put("a", "2")                                      # rev 4
        c.compact(3)
    finally:
        c.close()
    m.kill9()
    m.restart()
    c = client(m)
    try:
        value, meta = c.get("lk")
        assert (value, meta.lease_id) == (b"v", lease.id)
        from etcd3 import etcdrpc
        ttl = c.leasestub.LeaseTimeToLive(etcdrpc.LeaseTimeToLiveRequest(ID=lease.id, keys=True),
                                         timeout=10)
        assert ttl.grantedTTL == 300 and 250 < ttl.TTL <= 300 and list(ttl.keys) == [b"lk"]
        assert c.get("a")[0] == b"2"
    finally:
        c.close()
    rc, out, err = ctl("get", "a", "--rev", "2")
    assert (rc, ctl_error(err)) == (1, "Error: etcdserver: mvcc: required revision has been "
                                       "compacted")
    assert ctl("get", "a", "--rev", "3", "--print-value-only") == (0, "1\n", "")
    assert ctl.json("put", "b", "x")["header"]["revision"] == 5


def test_v2_and_v3_key_spaces_are_separate(member):
    m = member
    c = client(m)
    try:
        c.put("/foo", "v3")                                  # rev 2
        v2_index = m.index()
        # a v3 write is invisible to v2 and does not move the v2 index
        assert m.get("/v2/keys/foo").status_code == 404
        assert m.index() == v2_index
        # a v2 write is invisible to v3 and does not move the v3 revision
        m.set("bar", "v2")
        assert m.index() == v2_index + 1
        assert c.get("/bar") == (None, None) and c.get("bar") == (None, None)
        assert c.get("/foo")[0] == b"v3"
        assert m.get("/v2/keys/foo").status_code == 404
        assert c.put("/baz", "v3").header.revision == 3
        # v2 deletes do not touch v3 keys of the same name
        m.set("foo", "v2 too")
        assert m.delete("/v2/keys/foo").status_code == 200
        assert c.get("/foo")[0] == b"v3"
    finally:
        c.close()


def test_client_reconnects_after_restart(member):
    """A stopped member refuses clients; after restart the same channel's new calls work."""
    m = member
    c = client(m, timeout=2)
    try:
        c.put("k", "1")
        m.stop()
        with pytest.raises(Exception):
            c.put("k", "2")
        m.restart()
        wait_until(lambda: c.get("k")[0] == b"1", 10, message="a read after restart")
        assert c.put("k", "3").header.revision == 3
        v, meta = c.get("k")
        assert (v, meta.version) == (b"3", 2)
    finally:
        c.close()
