"""v3 state through the paths that rebuild a member: a snapshot sent to a lagging member carries
keys, leases and the compaction point; --force-new-cluster keeps the v3 key space; the periodic
auto-compactor compacts what is older than its retention."""

import grpc
import pytest
from etcd3 import etcdrpc

import harness
from harness import wait_until
from v3harness import client

pytestmark = pytest.mark.v3

COMPACTED = "etcdserver: mvcc: required revision has been compacted"


def range_at(c, key, revision=0, serializable=False):
    return c.kvstub.Range(etcdrpc.RangeRequest(key=key.encode(), revision=revision,
                                               serializable=serializable), timeout=5)


def compacted_error(c, key, revision, serializable=False):
    with pytest.raises(grpc.RpcError) as e:
        range_at(c, key, revision, serializable)
    return e.value.code(), e.value.details()


def test_snapshot_to_lagging_member_carries_leases_and_compaction(cluster_factory):
    """A follower stopped while 300 v3 writes, a lease grant and a compaction go by (cairn's
    log keeps 100 entries past a snapshot, so it must catch up from a snapshot) serves, after
    restart, the same keys and revisions from its local state, the lease with its key, and
    refuses reads below the compaction point."""
    cl = cluster_factory(3, snapshot_count=100)
    leader = cl.wait_leader()
    lagging = cl.followers(leader)[0]
    cl.stop(lagging)
    c = client(leader)
    try:
        first = c.put("snap/000", "v0").header.revision
        for i in range(1, 300):
            c.put(f"snap/{i:03d}", f"v{i}")
        lease = c.lease(600)
        c.put("leased", "x", lease=lease)
        c.compact(first + 10)
        want = [(m.key, v, m.mod_revision) for v, m in c.get_prefix("snap/")]
        top = range_at(c, "leased").header.revision
    finally:
        c.close()
    assert len(want) == 300 and want[0][2] == first and want[-1][2] == first + 299
    cl.restart(lagging)
    cf = client(lagging)
    try:
        wait_until(lambda: range_at(cf, "leased", serializable=True).header.revision == top, 20,
                   interval=0.1, message="the restarted follower's local revision")
        assert [(m.key, v, m.mod_revision) for v, m in
                cf.get_prefix("snap/", serializable=True)] == want
        r = range_at(cf, "leased", serializable=True)
        assert [(kv.key, kv.value, kv.lease) for kv in r.kvs] == [(b"leased", b"x", lease.id)]
        assert compacted_error(cf, "snap/000", first + 9, serializable=True) == \
            (grpc.StatusCode.OUT_OF_RANGE, COMPACTED)
        assert range_at(cf, "snap/010", first + 10, serializable=True).kvs[0].value == b"v10"
        ttl = cf.leasestub.LeaseTimeToLive(
            etcdrpc.LeaseTimeToLiveRequest(ID=lease.id, keys=True), timeout=5)
        assert ttl.grantedTTL == 600 and 0 < ttl.TTL <= 600 and list(ttl.keys) == [b"leased"]
        # the lease, revoked through the caught-up member, takes its key on every member
        cf.revoke_lease(lease.id)
        for m in cl.members:
            cm = client(m)
            try:
                wait_until(lambda cm=cm: cm.get("leased", serializable=True) == (None, None), 10,
                           message=f"revoked lease's key gone on {m.name}")
            finally:
                cm.close()
    finally:
        cf.close()
    if harness.TARGET == "cairn":
        assert "installed snapshot" in lagging.log_text(), lagging.log_tail()


def test_force_new_cluster_keeps_the_v3_key_space(cluster_factory):
    cl = cluster_factory(3)
    leader = cl.wait_leader()
    c = client(leader)
    try:
        for i in range(20):
            c.put(f"f/{i:02d}", f"v{i}")
        c.delete("f/05")
        lease = c.lease(600)
        c.put("f/leased", "x", lease=lease)
        want = [(m.key, v, m.mod_revision, m.version) for v, m in c.get_prefix("f/")]
        top = range_at(c, "f/00").header.revision
    finally:
        c.close()
    keep = cl.members[0]
    for m in cl.members:
        cl.stop(m)
    keep.restart(wait=True, extra_args=keep.extra_args + ["--force-new-cluster"])
    ck = client(keep)
    try:
        wait_until(lambda: len(list(ck.members)) == 1, 15,
                   message="one member after --force-new-cluster")
        assert [(m.key, v, m.mod_revision, m.version) for v, m in ck.get_prefix("f/")] == want
        assert range_at(ck, "f/00").header.revision == top
        r = range_at(ck, "f/leased")
        assert r.kvs[0].lease == lease.id
        # the revision goes on from where the old cluster left it
        assert ck.put("f/after", "1").header.revision == top + 1
        ttl = ck.leasestub.LeaseTimeToLive(
            etcdrpc.LeaseTimeToLiveRequest(ID=lease.id, keys=True), timeout=5)
        assert ttl.grantedTTL == 600 and list(ttl.keys) == [b"f/leased"]
    finally:
        ck.close()


def test_periodic_auto_compaction(member_factory):
    """--auto-compaction-mode periodic --auto-compaction-retention 2s: within a few periods
    the revisions older than two seconds are compacted; the newest value stays readable."""
    m = member_factory(extra_args=["--auto-compaction-mode", "periodic",
                                   "--auto-compaction-retention", "2s"])
    c = client(m)
    try:
        r1 = c.put("pc", "one").header.revision
        r2 = c.put("pc", "two").header.revision
        assert range_at(c, "pc", r1).kvs[0].value == b"one"

        def compacted():
            try:
                range_at(c, "pc", r1)
                return False
            except grpc.RpcError as e:
                assert (e.code(), e.details()) == (grpc.StatusCode.OUT_OF_RANGE, COMPACTED)
                return True
        wait_until(compacted, 30, interval=0.2, message="revision r1 compacted")
        r = range_at(c, "pc", r2)
        assert [(kv.value, kv.mod_revision) for kv in r.kvs] == [(b"two", r2)]
        assert c.get("pc")[0] == b"two"
    finally:
        c.close()
