"""Operational edge cases of clusters, each once a bug (found while writing
docs/operations.md): a busy peer port, a learner promoted before it ever
answered, a member removing itself through its own endpoint, a member cut off by
--force-new-cluster, a data dir whose write-ahead log is missing."""

import socket
import time

import pytest
import requests

from harness import free_port, wait_until

pytestmark = pytest.mark.cairn_only


def test_busy_peer_port_fails_cleanly_and_leaves_no_member_state(member_factory):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        m = member_factory(start=False, name="m1", peer_port=port, client_port=free_port())
        m.start(wait=False)
        rc = m.wait_exit(15)
        assert rc == 1, (rc, m.log_tail())
        assert "address already in use" in m.log_text()
        # a retry with the port free must start as a new member: nothing half-made is left
        assert not (m.data_dir / "member").exists() or not any((m.data_dir / "member").iterdir())
    finally:
        s.close()


def test_added_member_that_never_started_stays_a_learner(cluster_factory):
    c = cluster_factory(size=1)
    leader = c.wait_leader()
    new, r = c.add_member(start=False)
    assert r.status_code == 201
    # a voter that never answers would take the quorum to 2 of 2 and stall every write
    t0 = time.monotonic()
    for i in range(5):
        w = requests.put(leader.key_url(f"solo{i}"), data={"value": str(i)}, timeout=5)
        assert w.status_code == 201, w.text
    assert time.monotonic() - t0 < 5
    assert "promoting" not in leader.log_text()


def test_member_removing_itself_through_its_own_endpoint(cluster_factory):
    c = cluster_factory(size=3)
    c.wait_leader()
    victim = c.followers()[0]
    t0 = time.monotonic()
    r = requests.delete(victim.url(f"/v2/members/{victim.id}"), timeout=15)
    assert r.status_code == 204, r.text
    assert time.monotonic() - t0 < 3
    assert victim.wait_exit(10) == 0
    assert victim.log_text().count("permanently removed from the cluster") == 1
    left = {m["id"] for m in c.members_api(via=next(m for m in c.members if m is not victim))}
    assert victim.id not in left and len(left) == 2


def test_member_cut_off_by_force_new_cluster_learns_it_was_removed(cluster_factory):
    c = cluster_factory(size=3)
    c.put("k", "before")
    c.wait_converged(key="k")
    keep, stale = c.members[0], c.members[1]
    for m in c.members:
        c.stop(m)
    keep.restart(wait=True, extra_args=["--force-new-cluster"])
    wait_until(lambda: requests.put(keep.key_url("k"), data={"value": "after"},
                                    timeout=2).status_code == 200, 15)
    assert [m["id"] for m in requests.get(keep.url("/v2/members"), timeout=5).json()["members"]] \
        == [keep.id]
    stale.restart(wait=False)
    # the forced member tells it, on its first connection, that it was removed: it stops
    assert stale.wait_exit(30) == 0, stale.log_tail()
    assert "removed from the cluster" in stale.log_text()


def test_missing_write_ahead_log_is_an_error(member_factory):
    m = member_factory()
    m.set("k", "v")
    m.stop()
    wal = m.data_dir / "member" / "wal"
    for f in wal.iterdir():
        f.unlink()
    wal.rmdir()
    m.start(wait=False)
    rc = m.wait_exit(15)
    assert rc == 1, m.log_tail()
    assert "no write-ahead log" in m.log_text()


def test_peer_from_another_cluster_is_refused_with_a_log_line(member_factory):
    other = member_factory(name="b1", token="cluster-b")
    cp, pp = free_port(), free_port()
    # a member of another cluster that lists b1's peer URL as one of its own members
    m = member_factory(name="a1", start=False, client_port=cp, peer_port=pp, token="cluster-a",
                       overrides={"--initial-cluster":
                                  f"a1=http://127.0.0.1:{pp},a2={other.peer_url}"})
    m.start(wait=False)
    wait_until(lambda: "refused connection from a member of another cluster" in other.log_text(),
               10, message="b1 refusing a1's connection")
    line = next(l for l in other.log_text().splitlines() if "another cluster" in l)
    assert f"our_cluster={other.cluster_id}" in line
    # and b1 is unaffected
    assert other.set("still", "fine")["node"]["value"] == "fine"


def test_data_dir_of_another_member_is_refused(member_factory):
    m = member_factory(name="owner")
    m.set("k", "v")
    m.stop()
    other = member_factory(name="intruder", start=False, data_dir=m.data_dir)
    other.start(wait=False)
    assert other.wait_exit(15) == 1, other.log_tail()
    assert 'belongs to member "owner"' in other.log_text()
    # and the data is untouched: the owner restarts with it
    m.restart()
    assert m.get("/v2/keys/k").json()["node"]["value"] == "v"


def test_data_dir_stays_bounded_under_writes(cluster_factory):
    c = cluster_factory(size=3, extra_args=["--snapshot-count", "100", "--max-snapshots", "2"])
    leader = c.wait_leader()
    s = requests.Session()
    for i in range(1500):
        r = s.put(leader.key_url(f"w{i % 50}"), data={"value": "x" * 100}, timeout=10)
        assert r.status_code in (200, 201), r.text
    for m in c.members:
        snaps = sorted((m.data_dir / "member" / "snap").glob("*.snap"))
        wait_until(lambda m=m: len(list((m.data_dir / "member" / "snap").glob("*.snap"))) <= 2,
                   10, message=f"{m.name} keeps at most 2 snapshots")
        assert len(snaps) >= 1
        wal = list((m.data_dir / "member" / "wal").glob("*.wal"))
        assert 1 <= len(wal) <= 2, wal
