"""v3 on a 3-member cluster: writes and linearizable reads through every member, serializable
reads on followers, headers naming the answering member, kill -9 of the leader with writes
continuing and a lease granted before the failover keeping its keys until it expires."""

import time

import pytest

from harness import wait_until
from v3harness import Ctl3, client, holds

pytestmark = pytest.mark.v3


def status(m):
    c = client(m, timeout=3)
    try:
        return c.status()
    finally:
        c.close()


def test_writes_and_reads_through_every_member(cluster_factory):
    cl = cluster_factory(3)
    cid = int(cl.cluster_id, 16)
    clients = {m.name: client(m) for m in cl.members}
    try:
        rev = None
        for i, m in enumerate(cl.members):
            r = clients[m.name].put(f"k{i}", f"via-{m.name}")
            assert (r.header.cluster_id, r.header.member_id) == (cid, int(m.id, 16))
            assert rev is None or r.header.revision == rev + 1
            rev = r.header.revision
        # linearizable reads: every member sees every write at once
        for m in cl.members:
            got = [(meta.key, v) for v, meta in clients[m.name].get_prefix("k")]
            assert got == [(f"k{i}".encode(), f"via-{x.name}".encode())
                           for i, x in enumerate(cl.members)], m.name
            r = clients[m.name].kvstub.Range(range_req(b"k0"), timeout=5)
            assert (r.header.revision, r.header.member_id) == (rev, int(m.id, 16))
        # serializable reads converge on every member
        for m in cl.members:
            wait_until(lambda m=m: clients[m.name].get("k2", serializable=True)[0] ==
                       f"via-{cl.members[2].name}".encode(), 5,
                       message=f"serializable read on {m.name}")
        # every member agrees on the leader and the raft term
        leader = cl.wait_leader()
        views = [status(m) for m in cl.members]
        assert {v.leader.id for v in views} == {int(leader.id, 16)}
        assert len({v.raft_term for v in views}) == 1
        # etcdctl with all three endpoints
        ctl = Ctl3(endpoints=[m.client_url for m in cl.members])
        assert ctl("get", "k1", "--print-value-only") == (0, f"via-{cl.members[1].name}\n", "")
        st = ctl.json("endpoint", "status")
        assert sorted(s["Endpoint"] for s in st) == sorted(m.client_url for m in cl.members)
        assert {s["Status"]["header"]["member_id"] for s in st} == {
            int(m.id, 16) for m in cl.members}
        assert {s["Status"]["leader"] for s in st} == {int(leader.id, 16)}
    finally:
        for c in clients.values():
            c.close()


def range_req(key):
    from etcd3 import etcdrpc
    return etcdrpc.RangeRequest(key=key)


@pytest.mark.slow
def test_leader_kill_writes_continue_and_lease_survives(cluster_factory):
    cl = cluster_factory(3)
    leader = cl.wait_leader()
    follower = cl.followers(leader)[0]
    ttl = 5
    c = client(follower, timeout=3)
    try:
        lease = c.lease(ttl)
        granted = time.monotonic()
        c.put("leased", "v", lease=lease)
        r = c.put("before", "1")
        rev = r.header.revision
        cl.kill9(leader)
        new = cl.wait_leader(timeout=10, exclude=[leader])
        assert new is not leader
        # writes work again through both survivors (retry while the election settles)
        wait_until(lambda: c.put("after", "1").header.revision > rev, 10,
                   message="a write after the failover")
        c2 = client(new, timeout=3)
        try:
            assert c2.get("after")[0] == b"1"
            assert c2.get("before")[0] == b"1"
            # no mass expiry: the lease's keys live at least until its TTL from the grant
            holds(lambda: c2.get("leased")[0] == b"v", granted + ttl - 0.5,
                  message="the leased key (no early expiry)")
            # ... and it does expire (the new leader extended it by at most TTL + election)
            wait_until(lambda: c2.get("leased")[0] is None, ttl + 10, interval=0.1,
                       message="leased key expired after the failover")
            assert c.get("leased") == (None, None)
            assert c2.get("before")[0] == b"1"
        finally:
            c2.close()
    finally:
        c.close()


def test_v2_write_on_cluster_invisible_to_v3(cluster_factory):
    cl = cluster_factory(3)
    leader = cl.wait_leader()
    follower = cl.followers(leader)[0]
    c = client(follower)
    try:
        rev = c.put("x", "v3").header.revision
        cl.put("x", "v2", via=follower)
        cl.put("y", "v2", via=leader)
        for m in cl.members:
            cm = client(m)
            try:
                assert cm.get("x")[0] == b"v3" and cm.get("y") == (None, None)
                assert cm.get("/y") == (None, None)
                assert cm.status().raft_index > 0
                r = cm.kvstub.Range(range_req(b"x"), timeout=5)
                assert r.header.revision == rev            # v2 writes left the revision alone
            finally:
                cm.close()
        assert cl.get(leader, "x", quorum=True).json()["node"]["value"] == "v2"
    finally:
        c.close()


def test_follower_catches_up_after_kill9(cluster_factory):
    """A follower killed with SIGKILL misses 200 v3 writes and a delete; restarted, its
    serializable (local) reads show the same keys, revisions and header revision."""
    cl = cluster_factory(3, snapshot_count=100)
    leader = cl.wait_leader()
    lagging = cl.followers(leader)[0]
    c = client(leader)
    try:
        c.put("base", "0")
        cl.kill9(lagging)
        for i in range(200):
            c.put(f"cu/{i:03d}", str(i))
        c.delete("base")
        want = [(m.key, v, m.mod_revision) for v, m in c.get_prefix("cu/")]
        top = c.kvstub.Range(range_req(b"cu/"), timeout=5).header.revision
    finally:
        c.close()
    cl.restart(lagging)
    cf = client(lagging)
    try:
        wait_until(lambda: [(m.key, v, m.mod_revision) for v, m in
                            cf.get_prefix("cu/", serializable=True)] == want, 20,
                   interval=0.1, message="the restarted follower's local reads")
        assert cf.get("base", serializable=True) == (None, None)
        from etcd3 import etcdrpc
        r = cf.kvstub.Range(etcdrpc.RangeRequest(key=b"cu/", serializable=True), timeout=5)
        assert r.header.revision == top and r.header.member_id == int(lagging.id, 16)
    finally:
        cf.close()
