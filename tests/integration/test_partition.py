"""Network faults between members, injected with faultproxy.FaultProxy on the
peer links (every member advertises a proxy port as its peer URL)."""

import random
import threading
import time

import pytest
import requests

from cluster import flatten
from harness import wait_until


def try_request(method, url, timeout, **kw):
    """(status, json-or-None) or (None, repr(exception))."""
    try:
        r = requests.request(method, url, timeout=timeout, **kw)
    except requests.RequestException as exc:
        return None, repr(exc)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def test_proxy_sees_every_member_as_a_sender(cluster_factory):
    """Sanity check of the harness: raft traffic goes through the proxy and
    every member's connections are attributed to it (X-Server-From for etcd,
    the CNPEER/1 first line for cairn)."""
    c = cluster_factory(3, proxied=True)
    c.put("k", "v")
    c.wait_converged()
    senders = c.proxy.stats["senders"]
    for m in c.members:
        assert senders.get(m.name, 0) >= 1, senders
    assert not any(s.startswith("id:") for s in senders), senders
    for m in c.members:   # peer URLs in /v2/members are the proxy's ports
        assert {x["peerURLs"][0] for x in m.get("/v2/members").json()["members"]} == \
            {x.peer_url for x in c.members}


def test_isolated_leader_is_replaced_and_serves_nothing(cluster_factory):
    c = cluster_factory(3, proxied=True)
    c.put("k", "v0")
    c.wait_converged()
    old = c.wait_leader()
    term0 = c.raft_headers(old)["raft_term"]
    rest = [m for m in c.members if m is not old]
    t0 = time.monotonic()
    c.proxy.isolate(old.name)
    new = c.wait_leader(among=rest, timeout=10, exclude=[old])
    assert new in rest
    assert time.monotonic() - t0 < 2 * c.election_s + 2
    # the majority keeps serving writes and quorum reads
    w = c.put("k", "v1", via=new)
    assert w["node"]["value"] == "v1"
    for m in rest:
        r = c.get(m, "k", quorum=True)
        assert r.status_code == 200 and r.json()["node"]["value"] == "v1"
        assert int(r.headers["X-Raft-Term"]) > term0
    # the old leader steps down (check quorum): /v2/stats/leader answers 403.
    # (Not stats/self "state": etcd 3.4 only updates it on becoming leader or
    # on receiving appends, so an isolated ex-leader keeps "StateLeader".)
    wait_until(lambda: old.get("/v2/stats/leader", timeout=1).status_code == 403,
               3 * c.election_s + 2, message="the isolated leader stepping down")
    # ... and acknowledges no write and no quorum read
    status, body = try_request("PUT", old.key_url("stale/x"), timeout=3, data={"value": "s"})
    assert status is None or status >= 500, (status, body)
    status, body = try_request("GET", old.key_url("k"), timeout=3, params={"quorum": "true"})
    assert status is None or status >= 500, (status, body)
    assert status != 200
    # more majority writes while it is away
    for i in range(10):
        c.put(f"away/k{i}", f"v{i}", via=new)
    c.proxy.heal()
    idx, node = c.wait_converged(timeout=20)
    values = flatten(node)
    assert values["/k"] == "v1"
    assert all(values[f"/away/k{i}"] == f"v{i}" for i in range(10))
    # the write sent to the isolated member had an unknown outcome: absent or
    # applied, but the same on every member (wait_converged checked that)
    assert values.get("/stale/x") in (None, "s")
    lm = c.wait_leader(timeout=10)
    assert c.raft_headers(lm)["raft_term"] > term0
    for m in c.members:
        r = c.get(m, "k", quorum=True)
        assert r.status_code == 200 and r.json()["node"]["value"] == "v1"


def test_isolated_follower_catches_up_after_heal(cluster_factory):
    c = cluster_factory(3, proxied=True)
    leader = c.wait_leader()
    f = c.followers(leader)[0]
    term0 = c.raft_headers(leader)["raft_term"]
    c.proxy.isolate(f.name)
    for i in range(30):
        c.put(f"iso/k{i}", str(i), via=leader)
    status, body = try_request("GET", f.key_url("iso/k0"), timeout=3, params={"quorum": "true"})
    assert status is None or status >= 500, (status, body)
    c.proxy.heal()
    idx, node = c.wait_converged(key="iso", timeout=20)
    assert flatten(node) == {f"/iso/k{i}": str(i) for i in range(30)}
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        c.get(f, "iso/k29", quorum=True)), 10)
    assert r.json()["node"]["value"] == "29"
    c.wait_leader()
    assert c.raft_headers(f)["raft_term"] >= term0


@pytest.mark.parametrize("case", ["leader_to_follower", "follower_to_all"])
def test_one_way_partition(cluster_factory, case):
    """Bytes flow in one direction only (leader -> f1 dropped, or everything
    f1 sends dropped).  The leader and the other follower keep the cluster
    going under the same leader.  A sequential client writes unique keys
    ow/k<n> through random members; every quorum read of the directory that
    answers 200 contains every write acknowledged before it started and none
    not yet attempted; after the heal every member has every acknowledged
    write."""
    c = cluster_factory(3, proxied=True)
    leader = c.wait_leader()
    f1, f2 = c.followers(leader)
    if case == "leader_to_follower":
        c.proxy.block_oneway(leader.name, f1.name)
    else:
        for m in (leader, f2):
            c.proxy.block_oneway(f1.name, m.name)
    rng = random.Random(7)
    acked = set()
    attempted = 0
    bad_reads = []
    ok_reads = 0
    leaders_seen = set()
    end = time.monotonic() + 4 * c.election_s + 2
    while (time.monotonic() < end or attempted < 30) and time.monotonic() < end + 30:
        attempted += 1
        m = rng.choice(c.members)
        status, body = try_request("PUT", m.key_url(f"ow/k{attempted}"), timeout=0.3,
                                   data={"value": str(attempted)})
        if status in (200, 201):
            acked.add(attempted)
        before = set(acked)
        m = rng.choice(c.members)
        status, body = try_request("GET", m.key_url("ow"), timeout=0.3,
                                   params={"quorum": "true", "recursive": "true"})
        if status == 200:
            ok_reads += 1
            seen = {int(v) for v in flatten(body["node"]).values()}
            if not before <= seen or (seen and max(seen) > attempted):
                bad_reads.append((m.name, sorted(before - seen), max(seen or [0]), attempted))
        lm = c.leader(among=[leader, f2])
        if lm is not None:
            leaders_seen.add(lm.name)
    assert bad_reads == []
    assert len(acked) >= 10, f"only {len(acked)} of {attempted} writes acknowledged"
    assert ok_reads >= 3
    assert leaders_seen == {leader.name}
    c.proxy.heal()
    idx, node = c.wait_converged(key="ow", timeout=20)
    values = flatten(node)
    for a in acked:
        assert values[f"/ow/k{a}"] == str(a)
    assert all(1 <= int(v) <= attempted for v in values.values())
    lm = c.wait_leader(timeout=10)
    assert all(c.stats_self(m)["leaderInfo"]["leader"] == lm.id for m in c.members)


def test_delayed_links_slow_commits_down(cluster_factory):
    """With every peer byte delayed by D, a write sent to the leader needs at
    least one round trip to a follower: >= 2*D."""
    c = cluster_factory(3, proxied=True)
    leader = c.wait_leader()
    delay_ms = 60
    c.proxy.delay(delay_ms)
    try:
        lat = []
        for i in range(5):
            t0 = time.monotonic()
            r = requests.put(leader.key_url(f"slow/k{i}"), data={"value": "v"}, timeout=10)
            lat.append(time.monotonic() - t0)
            assert r.status_code == 201, r.text
        assert min(lat) >= 2 * delay_ms / 1000.0, lat
        assert c.wait_leader() is leader
    finally:
        c.proxy.delay(0)
    idx, node = c.wait_converged(key="slow")
    assert flatten(node) == {f"/slow/k{i}": "v" for i in range(5)}


def test_block_pair_keeps_majority_working(cluster_factory):
    """Cut the two followers from each other only: both still reach the leader,
    nothing changes for clients."""
    c = cluster_factory(3, proxied=True)
    leader = c.wait_leader()
    f1, f2 = c.followers(leader)
    term0 = c.raft_headers(leader)["raft_term"]
    c.proxy.block(f1.name, f2.name)
    results = []

    def client(m):
        for i in range(10):
            w = c.put(f"pair/{m.name}/{i}", str(i), via=m)
            results.append(w["node"]["key"])
    ts = [threading.Thread(target=client, args=(m,)) for m in (f1, f2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 20
    assert c.wait_leader() is leader
    assert c.raft_headers(leader)["raft_term"] == term0
    c.proxy.heal()
    idx, node = c.wait_converged(key="pair")
    assert len(flatten(node)) == 20
