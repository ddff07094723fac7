"""Multi-member clusters (3 and 5 members): formation, replication, failover,
restart and catch-up, runtime membership, stats, clients, graceful handover,
rolling restarts.  See cluster.py for the harness and README.md for knobs."""

import os
import random
import signal
import subprocess
import threading
import time

import pytest
import requests

import harness
from cluster import flatten
from harness import CLEAN_EXIT_CODE, ETCDCTL_BIN, IS_ETCD, member_id, wait_until

SNAPSHOT_KEYS = int(os.environ.get("CAIRN_SNAPSHOT_CATCHUP_KEYS", "600"))
# etcd 3.4 keeps 5000 entries after a snapshot for slow followers
# (SnapshotCatchUpEntries), so only a larger gap makes it send a snapshot.
SNAPSHOT_KEYS_BIG = int(os.environ.get("CAIRN_SNAPSHOT_TRANSFER_KEYS", "5300"))


def member_objects(m):
    r = m.get("/v2/members", timeout=3)
    assert r.status_code == 200, r.text
    return {x["id"]: x for x in r.json()["members"]}


def expected_members(cluster):
    return {m.id: {"id": m.id, "name": m.name, "peerURLs": [m.peer_url],
                   "clientURLs": [m.client_url]} for m in cluster.current()}


def parallel_writes(m, prefix, n, threads=8):
    """Write prefix/k<i> = v<i> for i < n through member m; every write must be 2xx."""
    errors = []

    def run(t):
        s = requests.Session()
        for i in range(t, n, threads):
            r = s.put(m.key_url(f"{prefix}/k{i}"), data={"value": f"v{i}"}, timeout=10)
            if r.status_code not in (200, 201):
                errors.append((i, r.status_code, r.text))
    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def write_until_ok(members, key, value, deadline, timeout=0.5):
    """Try writing through ``members`` in turn until one answers 2xx; return
    (member, response, time of the answer)."""
    end = time.monotonic() + deadline
    i = 0
    while time.monotonic() < end:
        m = members[i % len(members)]
        i += 1
        try:
            r = requests.put(m.key_url(key), data={"value": value}, timeout=timeout)
        except requests.RequestException:
            continue
        if r.status_code in (200, 201):
            return m, r, time.monotonic()
    raise AssertionError(f"no successful write of {key} within {deadline}s")


# ---------------------------------------------------------------------------
# formation

def test_three_members_form_a_cluster(cluster_factory):
    c = cluster_factory(3)
    leader = c.wait_leader()
    # every member names the same leader; exactly one says StateLeader
    states = {m.name: c.stats_self(m) for m in c.members}
    assert sorted(s["state"] for s in states.values()) == ["StateFollower", "StateFollower",
                                                           "StateLeader"]
    for m in c.members:
        s = states[m.name]
        assert s["name"] == m.name
        assert s["id"] == m.id
        assert s["leaderInfo"]["leader"] == leader.id
        assert s["state"] == ("StateLeader" if m is leader else "StateFollower")
    # ids follow the static-bootstrap formula with this cluster's token
    for m in c.members:
        assert m.id == member_id([m.peer_url], c.token)
    assert len({m.id for m in c.members}) == 3
    # /v2/members lists the three, with names and both URL lists, on every member
    want = expected_members(c)
    for m in c.members:
        r = m.get("/v2/members")
        assert r.status_code == 200
        assert r.headers["X-Etcd-Cluster-Id"] == c.cluster_id
        assert len(r.json()["members"]) == 3
        assert member_objects(m) == want
    # cluster id header equal on every member and on keys answers too
    cids = {m.get("/v2/keys/").headers["X-Etcd-Cluster-Id"] for m in c.members}
    assert cids == {harness.cluster_id([m.id for m in c.members])}
    # /v2/members/leader agrees with the stats
    for m in c.members:
        r = m.get("/v2/members/leader")
        assert r.status_code == 200
        assert r.json() == want[leader.id]
    # /v2/machines lists every client URL
    for m in c.members:
        machines = m.get("/v2/machines").text.split(", ")
        assert sorted(machines) == sorted(x.client_url for x in c.members)


def test_writes_through_every_member_are_read_everywhere(cluster_factory):
    c = cluster_factory(3)
    written = {}
    for m in c.members:
        r = m.put(f"/v2/keys/via/{m.name}", data={"value": f"from-{m.name}"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["action"] == "set"
        assert body["node"]["value"] == f"from-{m.name}"
        written[m.name] = body["node"]["modifiedIndex"]
    # indexes are cluster-wide: three different, increasing in write order
    idx = [written[m.name] for m in c.members]
    assert idx == sorted(idx) and len(set(idx)) == 3
    for reader in c.members:
        for m in c.members:
            r = reader.get(f"/v2/keys/via/{m.name}", params={"quorum": "true"})
            assert r.status_code == 200, r.text
            node = r.json()["node"]
            assert node == {"key": f"/via/{m.name}", "value": f"from-{m.name}",
                            "modifiedIndex": written[m.name], "createdIndex": written[m.name]}
    # plain (local) reads agree once the members have applied everything
    index, node = c.wait_converged(key="via", min_index=max(idx))
    assert flatten(node) == {f"/via/{m.name}": f"from-{m.name}" for m in c.members}


def test_raft_headers_numeric_and_moving(cluster_factory):
    c = cluster_factory(3)
    c.put("warm", "1")
    c.wait_converged()
    before = {m.name: c.raft_headers(m) for m in c.members}
    for h in before.values():
        assert h["raft_index"] >= 1 and h["raft_term"] >= 1 and h["etcd_index"] >= 1
    assert len({h["raft_term"] for h in before.values()}) == 1
    leader = c.wait_leader()
    r = leader.put("/v2/keys/moved", data={"value": "x"})
    assert r.status_code == 201
    for name in ("X-Etcd-Index", "X-Raft-Index", "X-Raft-Term"):
        assert r.headers[name].isdigit(), (name, r.headers.get(name))
    assert int(r.headers["X-Etcd-Index"]) == r.json()["node"]["modifiedIndex"]
    c.wait_converged(min_index=r.json()["node"]["modifiedIndex"])
    for m in c.members:
        after = c.raft_headers(m)
        assert after["raft_index"] > before[m.name]["raft_index"]
        assert after["etcd_index"] == before[m.name]["etcd_index"] + 1
        assert after["raft_term"] == before[m.name]["raft_term"]


# ---------------------------------------------------------------------------
# failover, restart, catch-up

def test_kill9_leader_failover_and_restart_catches_up(cluster_factory):
    c = cluster_factory(3)
    c.put("before", "b")
    old = c.wait_leader()
    term0 = c.raft_headers(old)["raft_term"]
    rest = [m for m in c.members if m is not old]
    t0 = time.monotonic()
    c.kill9(old)
    m, r, t1 = write_until_ok(rest, "during", "d", deadline=10)
    failover = t1 - t0
    bound = 2 * c.election_s + 1.0
    assert failover < bound, f"first write after kill -9 of the leader took {failover:.2f}s"
    new = c.wait_leader()
    assert new is not old and new in rest
    assert int(r.headers["X-Raft-Term"]) > term0
    # more writes while the old leader is down
    for i in range(20):
        c.put(f"down/k{i}", f"v{i}")
    # restart with the same data dir; bootstrap flags are ignored on a restart
    old.extra_args = [a if a != "new" else "existing" for a in old.extra_args]
    c.restart(old)
    idx, node = c.wait_converged()
    values = flatten(node)
    assert values["/before"] == "b" and values["/during"] == "d"
    assert all(values[f"/down/k{i}"] == f"v{i}" for i in range(20))
    # the restarted member rejoins as a follower of the current leader
    s = c.stats_self(old)
    assert s["id"] == old.id and s["state"] == "StateFollower"
    assert s["leaderInfo"]["leader"] == c.wait_leader().id
    r = old.get("/v2/keys/down/k19", params={"quorum": "true"})
    assert r.status_code == 200 and r.json()["node"]["value"] == "v19"
    assert r.headers["X-Etcd-Cluster-Id"] == c.cluster_id


def test_restarted_follower_catches_up_after_many_writes(cluster_factory):
    """--snapshot-count 100 and SNAPSHOT_KEYS writes while a follower is stopped."""
    c = cluster_factory(3, snapshot_count=100)
    leader = c.wait_leader()
    f = c.followers(leader)[0]
    assert c.stop(f) == CLEAN_EXIT_CODE
    parallel_writes(leader, "snap", SNAPSHOT_KEYS)
    c.restart(f)
    idx, node = c.wait_converged(key="snap", timeout=30)
    values = flatten(node)
    assert len(values) == SNAPSHOT_KEYS
    assert values == {f"/snap/k{i}": f"v{i}" for i in range(SNAPSHOT_KEYS)}
    r = f.get("/v2/keys/snap/k0")
    assert r.status_code == 200 and r.json()["node"]["value"] == "v0"


@pytest.mark.slow
def test_follower_catches_up_through_a_snapshot_transfer(cluster_factory):
    """Enough writes that the leader has compacted the entries the stopped
    follower misses: it must install a snapshot (etcd logs it)."""
    c = cluster_factory(3, snapshot_count=100)
    leader = c.wait_leader()
    f = c.followers(leader)[0]
    c.stop(f)
    parallel_writes(leader, "big", SNAPSHOT_KEYS_BIG)
    c.restart(f)
    idx, node = c.wait_converged(key="big", timeout=60)
    values = flatten(node)
    assert values == {f"/big/k{i}": f"v{i}" for i in range(SNAPSHOT_KEYS_BIG)}
    if IS_ETCD:
        assert "applied incoming snapshot" in f.log_text()
    # the member keeps working after the snapshot: a new write replicates to it
    w = c.put("big/after", "x")
    r = f.get("/v2/keys/big/after", params={"quorum": "true"})
    assert r.status_code == 200 and r.json()["node"] == w["node"]


# ---------------------------------------------------------------------------
# membership

def test_add_then_remove_a_member(cluster_factory):
    c = cluster_factory(3)
    c.put("pre", "1")
    t_before = int(time.time())
    m4, r = c.add_member(start=False)
    t_after = int(time.time())
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body == {"id": body["id"], "name": "", "peerURLs": [m4.peer_url], "clientURLs": []}
    # runtime-add ids: sha1(peerURLs + unix seconds), no token
    assert body["id"] in {member_id([m4.peer_url], str(t)) for t in range(t_before - 1,
                                                                         t_after + 2)}
    # listed, not yet started
    objs = member_objects(c.initial[0])
    assert objs[body["id"]] == {"id": body["id"], "name": "", "peerURLs": [m4.peer_url],
                                "clientURLs": []}
    m4.start(timeout=30)
    # once running, it publishes its name and client URLs; everyone sees 4 members
    want = expected_members(c)
    assert len(want) == 4
    for m in c.current():
        wait_until(lambda: member_objects(m) == want, 15,
                   message=f"4 members with attributes on {m.name}")
    # it replicates: old data and new writes
    r = m4.get("/v2/keys/pre", params={"quorum": "true"})
    assert r.status_code == 200 and r.json()["node"]["value"] == "1"
    w = c.put("post", "2", via=m4)
    assert w["node"]["value"] == "2"
    c.wait_converged(min_index=w["node"]["modifiedIndex"])
    assert r.headers["X-Etcd-Cluster-Id"] == c.cluster_id   # cluster id never changes

    # remove it through another member
    r = c.remove_member(m4, via=c.initial[0])
    assert r.status_code == 204, r.text
    assert r.content == b""
    # the removed process notices and exits by itself (any exit status)
    rc = m4.wait_exit(30)
    assert rc is not None
    if IS_ETCD:
        assert "the member has been permanently removed from the cluster" in m4.log_text()
    want = expected_members(c)
    assert len(want) == 3
    for m in c.up():
        wait_until(lambda: member_objects(m) == want, 10, message=f"3 members on {m.name}")
    # the id can never come back
    r = c.initial[1].delete(f"/v2/members/{m4.id}")
    assert r.status_code == 410
    assert r.json() == {"message": f"Member permanently removed: {m4.id}"}
    # the three remaining members still serve writes
    w = c.put("after-remove", "3")
    assert c.wait_converged(min_index=w["node"]["modifiedIndex"])[1] is not None


# ---------------------------------------------------------------------------
# stats

def test_stats_leader_and_self(cluster_factory):
    c = cluster_factory(3)
    for i in range(5):
        c.put(f"s/k{i}", "v")
    leader = c.wait_leader()
    followers = c.followers(leader)
    r = leader.get("/v2/stats/leader")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    st = r.json()
    assert set(st) == {"leader", "followers"}
    assert st["leader"] == leader.id
    assert set(st["followers"]) == {f.id for f in followers}
    for fid, fs in st["followers"].items():
        assert set(fs) == {"latency", "counts"}
        assert set(fs["latency"]) == {"current", "average", "standardDeviation",
                                      "minimum", "maximum"}
        assert all(isinstance(v, (int, float)) and v >= 0 for v in fs["latency"].values())
        assert fs["latency"]["minimum"] <= fs["latency"]["maximum"]
        assert set(fs["counts"]) == {"fail", "success"}
        assert isinstance(fs["counts"]["fail"], int)
        assert isinstance(fs["counts"]["success"], int) and fs["counts"]["success"] >= 1
    for f in followers:
        r = f.get("/v2/stats/leader")
        assert r.status_code == 403
        assert r.headers["Content-Type"] == "application/json"
        assert r.json() == {"message": "not current leader"}
        s = c.stats_self(f)
        assert s["state"] == "StateFollower" and s["leaderInfo"]["leader"] == leader.id
        assert s["recvAppendRequestCnt"] >= 1
    s = c.stats_self(leader)
    assert s["state"] == "StateLeader" and s["leaderInfo"]["leader"] == leader.id
    assert s["sendAppendRequestCnt"] >= 1


# ---------------------------------------------------------------------------
# clients

def test_python_etcd_against_a_cluster(cluster_factory):
    import etcd
    c = cluster_factory(3)
    a, b, d = c.members
    ca = etcd.Client(host="127.0.0.1", port=a.client_port)
    cb = etcd.Client(host="127.0.0.1", port=b.client_port)
    res = ca.write("/py/x", "42")
    assert res.value == "42"
    got = cb.read("/py/x", quorum=True)
    assert got.value == "42" and got.modifiedIndex == res.modifiedIndex
    # test-and-set through a third member
    cd = etcd.Client(host="127.0.0.1", port=d.client_port)
    cd.test_and_set("/py/x", "43", "42")
    with pytest.raises(etcd.EtcdCompareFailed):
        cd.test_and_set("/py/x", "44", "42")
    assert ca.read("/py/x", quorum=True).value == "43"
    # a multi-host client discovers the members and the leader
    multi = etcd.Client(host=tuple(("127.0.0.1", m.client_port) for m in c.members),
                        allow_reconnect=True)
    assert sorted(multi.machines) == sorted(m.client_url for m in c.members)
    leader = c.wait_leader()
    assert multi.leader["id"] == leader.id and multi.leader["name"] == leader.name
    assert set(multi.members) == {m.id for m in c.members}


def test_etcdctl_against_a_cluster(cluster_factory):
    c = cluster_factory(3)
    env = harness.clean_env({"ETCDCTL_API": "2"})
    eps = ",".join(m.client_url for m in c.members)

    def ctl(*args):
        return subprocess.run([ETCDCTL_BIN, "--endpoints", eps, *args], capture_output=True,
                              text=True, env=env, timeout=30)

    p = ctl("set", "/ctl/a", "hello")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello\n", "")
    p = ctl("get", "/ctl/a")
    assert (p.returncode, p.stdout) == (0, "hello\n")
    leader = c.wait_leader()
    p = ctl("member", "list")
    assert p.returncode == 0, p.stderr
    want = sorted(f"{m.id}: name={m.name} peerURLs={m.peer_url} clientURLs={m.client_url} "
                  f"isLeader={'true' if m is leader else 'false'}" for m in c.members)
    assert sorted(p.stdout.splitlines()) == want
    p = ctl("cluster-health")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "cluster is healthy"
    assert sorted(lines[:-1]) == sorted(
        f"member {m.id} is healthy: got healthy result from {m.client_url}" for m in c.members)
    # one member down: degraded, exit 5, the other two still healthy
    down = c.followers(leader)[0]
    c.kill9(down)
    p = ctl("cluster-health")
    assert p.returncode == 5
    assert p.stdout.splitlines()[-1] == "cluster is degraded"
    assert f"member {down.id} is unreachable" in p.stdout
    for m in c.members:
        if m is not down:
            assert f"member {m.id} is healthy: got healthy result from {m.client_url}" in p.stdout
    # writes through the endpoint list still work with a member down
    p = ctl("set", "/ctl/b", "again")
    assert (p.returncode, p.stdout) == (0, "again\n")


# ---------------------------------------------------------------------------
# graceful handover, pauses

def test_sigterm_on_leader_hands_leadership_over(cluster_factory):
    # A long election timeout makes the difference visible: without a handover
    # the followers could not elect anyone before one election timeout passed.
    c = cluster_factory(3, heartbeat_ms=100, election_ms=1500)
    c.put("k", "v")
    old = c.wait_leader()
    rest = [m for m in c.members if m is not old]
    t0 = time.monotonic()
    old.proc.send_signal(signal.SIGTERM)
    new = c.wait_leader(among=rest, timeout=10, interval=0.005)
    elapsed = time.monotonic() - t0
    assert new is not old
    assert elapsed < c.election_s, f"new leader after {elapsed:.3f}s (election timeout " \
                                   f"{c.election_s}s): no leadership transfer?"
    assert old.wait_exit(15) == CLEAN_EXIT_CODE
    w = c.put("after", "x", via=new, deadline=5)
    r = rest[0].get("/v2/keys/after", params={"quorum": "true"})
    assert r.status_code == 200 and r.json()["node"] == w["node"]


def test_sigstopped_follower_causes_no_leader_change(cluster_factory):
    c = cluster_factory(3)
    c.put("k", "1")
    leader = c.wait_leader()
    f = c.followers(leader)[0]
    term0 = c.raft_headers(leader)["raft_term"]
    c.sigstop(f)
    pause_end = time.monotonic() + 3 * c.election_s
    others = [m for m in c.members if m is not f]
    seen = set()

    def paused_long_enough():
        lm = c.leader(among=others)
        if lm is not None:
            seen.add(lm.name)
        return time.monotonic() >= pause_end
    wait_until(paused_long_enough, 3 * c.election_s + 5, interval=0.05)
    # the two others keep working while f is paused
    w = c.put("during", "2", via=leader)
    c.sigcont(f)
    # f catches up without disturbing anyone
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        f.get("/v2/keys/during", params={"quorum": "true"}, timeout=2)), 10)
    assert r.json()["node"] == w["node"]
    watch_end = time.monotonic() + 2 * c.election_s

    def watch_after():
        lm = c.leader()
        if lm is not None:
            seen.add(lm.name)
        return time.monotonic() >= watch_end
    wait_until(watch_after, 2 * c.election_s + 5, interval=0.05)
    assert seen == {leader.name}
    assert c.wait_leader() is leader
    for m in c.members:
        assert c.raft_headers(m)["raft_term"] == term0
        assert c.stats_self(m)["leaderInfo"]["leader"] == leader.id


# ---------------------------------------------------------------------------
# rolling restart under load

@pytest.mark.slow
def test_rolling_restart_of_five_members_under_write_load(cluster_factory):
    c = cluster_factory(5)
    stop = threading.Event()
    acked = {}          # key -> value, 2xx answers
    failed = []         # (key, time, last error)
    attempts = [0]
    rng = random.Random(1234)

    def writer():
        s = requests.Session()
        seq = 0
        while not stop.is_set():
            key, value = f"roll/k{seq:05d}", f"v{seq}"
            seq += 1
            err = None
            for _ in range(3):           # a few tries through random members
                m = rng.choice(c.members)
                attempts[0] += 1
                try:
                    r = s.put(m.key_url(key), data={"value": value}, timeout=2)
                except requests.RequestException as exc:
                    err = repr(exc)
                    continue
                if r.status_code in (200, 201):
                    acked[key] = value
                    err = None
                    break
                err = f"{r.status_code} {r.text.strip()}"
            if err is not None:
                failed.append((key, time.monotonic(), err))

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) >= 20, 10, message="the writer's first 20 writes")
        for m in list(c.members):
            n0 = len(acked)
            assert c.stop(m) == CLEAN_EXIT_CODE
            c.restart(m)
            leader = c.wait_leader()
            # the member caught up with the leader before the next one goes
            target = c.raft_headers(leader)["etcd_index"]
            wait_until(lambda: c.raft_headers(m)["etcd_index"] >= target, 15,
                       message=f"{m.name} catching up to {target}")
            wait_until(lambda: len(acked) >= n0 + 10, 15,
                       message=f"progress after restarting {m.name}")
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()
    total = len(acked) + len(failed)
    print(f"rolling restart: {len(acked)} acknowledged, {len(failed)} failed, "
          f"{attempts[0]} attempts; failures: {failed[:5]}")
    assert len(acked) >= 20 + 10 * len(c.members)    # what the waits above required
    assert len(failed) <= 0.05 * total, f"{len(failed)} of {total} writes failed: {failed[:5]}"
    idx, node = c.wait_converged(key="roll", timeout=30)
    values = flatten(node)
    for key, value in acked.items():
        assert values.get("/" + key) == value, key
    # keys present beyond the acknowledged ones can only be failed (unknown) writes
    failed_keys = {"/" + k for k, _, _ in failed}
    assert set(values) - {"/" + k for k in acked} <= failed_keys
