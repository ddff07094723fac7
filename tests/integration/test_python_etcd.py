"""python-etcd (Debian's python3-etcd 0.4.5) against the server."""

import threading

import pytest

from harness import watch_registered

etcd = pytest.importorskip("etcd")


@pytest.fixture
def client(member):
    c = etcd.Client(host="127.0.0.1", port=member.client_port, read_timeout=10)
    c.m = member
    return c


def test_write_read(client):
    r = client.write("/py/a", "1")
    assert (r.key, r.value, r.action) == ("/py/a", "1", "set")
    assert r.createdIndex == r.modifiedIndex == 4
    assert r.etcd_index == 4
    g = client.read("/py/a")
    assert (g.key, g.value, g.dir, g.modifiedIndex) == ("/py/a", "1", False, 4)
    assert g.ttl is None
    assert client.get("/py/a").value == "1"
    assert "/py/a" in client
    assert "/py/nope" not in client


def test_read_missing(client):
    with pytest.raises(etcd.EtcdKeyNotFound) as ei:
        client.read("/nope")
    assert ei.value.payload["errorCode"] == 100
    assert ei.value.payload["cause"] == "/nope"
    assert ei.value.payload["index"] == 3


def test_prev_exist(client):
    client.write("/py/c", "1", prevExist=False)
    with pytest.raises(etcd.EtcdAlreadyExist):
        client.write("/py/c", "2", prevExist=False)
    r = client.write("/py/c", "3", prevExist=True)
    assert (r.action, r.value, r._prev_node.value) == ("update", "3", "1")


def test_test_and_set(client):
    client.write("/py/cas", "old")
    r = client.test_and_set("/py/cas", "new", "old")
    assert (r.action, r.value) == ("compareAndSwap", "new")
    with pytest.raises(ValueError) as ei:  # EtcdCompareFailed subclasses ValueError
        client.test_and_set("/py/cas", "newer", "old")
    assert isinstance(ei.value, etcd.EtcdCompareFailed)
    assert client.read("/py/cas").value == "new"
    idx = client.read("/py/cas").modifiedIndex
    r = client.write("/py/cas", "by-index", prevIndex=idx)
    assert r.value == "by-index"


def test_ttl(client):
    r = client.write("/py/t", "v", ttl=60)
    assert r.ttl == 60
    assert r.expiration.endswith("Z")
    g = client.read("/py/t")
    assert g.ttl in (59, 60)
    r = client.refresh("/py/t", ttl=120)
    assert r.ttl == 120 and r.value == "v"


def test_directories(client):
    client.write("/py/dir", None, dir=True)
    client.write("/py/dir/a", "1")
    client.write("/py/dir/sub/b", "2")
    r = client.read("/py/dir", recursive=True, sorted=True)
    assert r.dir is True
    assert [(c.key, c.value) for c in r.leaves] == [("/py/dir/a", "1"), ("/py/dir/sub/b", "2")]
    r = client.read("/py/dir", sorted=True)
    assert [c.key for c in r.children] == ["/py/dir/a", "/py/dir/sub"]
    with pytest.raises(etcd.EtcdNotFile):
        client.delete("/py/dir")
    with pytest.raises(etcd.EtcdDirNotEmpty):
        client.delete("/py/dir", dir=True)
    r = client.delete("/py/dir", recursive=True)
    assert r.action == "delete"
    with pytest.raises(etcd.EtcdKeyNotFound):
        client.read("/py/dir")


def test_append_in_order(client):
    r1 = client.write("/py/q", "a", append=True)
    r2 = client.write("/py/q", "b", append=True)
    assert r1.key == f"/py/q/{r1.modifiedIndex:020d}"
    assert r2.key == f"/py/q/{r2.modifiedIndex:020d}"
    r = client.read("/py/q", sorted=True)
    assert [c.value for c in r.children] == ["a", "b"]


def test_watch(client):
    result = {}

    def watcher():
        result["r"] = client.watch("/py/w", timeout=10)

    t = threading.Thread(target=watcher)
    t.start()
    watch_registered(client.m, 1)
    client.m.set("py/w", "fired")
    t.join(15)
    assert not t.is_alive()
    r = result["r"]
    assert (r.action, r.key, r.value) == ("set", "/py/w", "fired")


def test_watch_with_index_and_recursive(client):
    w1 = client.write("/py/wr/a", "1")
    client.write("/py/wr/b", "2")
    r = client.watch("/py/wr", index=w1.modifiedIndex, recursive=True, timeout=5)
    assert (r.key, r.value) == ("/py/wr/a", "1")
    r = client.watch("/py/wr", index=w1.modifiedIndex + 1, recursive=True, timeout=5)
    assert (r.key, r.value) == ("/py/wr/b", "2")


def test_watch_timeout(client):
    with pytest.raises(etcd.EtcdWatchTimedOut):
        client.watch("/py/never", timeout=0.5)


def test_eternal_watch(client):
    base = client.write("/py/ew", "0").modifiedIndex
    client.write("/py/ew", "1")
    client.write("/py/ew", "2")
    gen = client.eternal_watch("/py/ew", index=base)
    assert [next(gen).value for _ in range(3)] == ["0", "1", "2"]


def test_cluster_info(client):
    m = client.m
    assert client.machines == [m.client_url]
    assert client.members == {m.id: {"id": m.id, "name": m.name, "peerURLs": [m.peer_url],
                                     "clientURLs": [m.client_url]}}
    assert client.leader["id"] == m.id
    assert client.stats["state"] == "StateLeader"
    assert client.store_stats["watchers"] == 0
    assert client.version
    assert client.cluster_version
