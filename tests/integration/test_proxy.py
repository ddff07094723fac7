"""Proxy mode: --proxy on|readonly (spec etcd-cluster.md 6; etcd 2.3 proxy/reverse.go).

The proxy under test is ``CAIRN_PROXY_BIN`` (default: the server under test, ``build/cairn``
started with ``--proxy on``); with ``CAIRN_TARGET=etcd`` it is etcd 3.4's own v2 proxy
(``etcd --proxy on``), to check these expectations against the reference. The cluster behind it
is three members of ``CAIRN_PROXY_CLUSTER_BIN`` (default: the server under test; set it to
``/usr/bin/etcd`` to put cairn's proxy in front of a real etcd 3.4 cluster) on 127.0.0.1.
"""

import json
import os
import re
import signal

import pytest
import requests

import harness
from harness import IS_ETCD, REPO, Member, Watcher, free_port, wait_until

CLUSTER_BIN = os.environ.get("CAIRN_PROXY_CLUSTER_BIN", harness.server_binary())


def proxy_binary():
    if IS_ETCD:
        return harness.ETCD_BIN
    return os.environ.get("CAIRN_PROXY_BIN", harness.server_binary())


if not os.access(CLUSTER_BIN, os.X_OK) or not os.access(proxy_binary(), os.X_OK):
    pytest.skip(f"needs {CLUSTER_BIN} and {proxy_binary()}", allow_module_level=True)


# --------------------------------------------------------------------------
# A three-member cluster and proxies in front of it.

class Cluster:
    def __init__(self, workdir, size=3, token="proxy-test"):
        self.members = []
        ports = set()

        def port():
            while True:
                p = free_port()
                if p not in ports:
                    ports.add(p)
                    return p

        specs = [(f"e{i + 1}", port(), port()) for i in range(size)]
        initial = ",".join(f"{n}=http://127.0.0.1:{pp}" for n, _, pp in specs)
        for name, cp, pp in specs:
            args = ["--name", name, "--data-dir", str(workdir / name / "data"),
                    "--listen-client-urls", f"http://127.0.0.1:{cp}",
                    "--advertise-client-urls", f"http://127.0.0.1:{cp}",
                    "--listen-peer-urls", f"http://127.0.0.1:{pp}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
                    "--initial-cluster", initial, "--initial-cluster-token", token,
                    # etcd 3.4 otherwise refuses to remove a member in its first seconds
                    "--strict-reconfig-check=false", "--enable-v2"]
            self.members.append(Member(workdir / name, name=name, binary=CLUSTER_BIN,
                                       use_default_flags=False, client_port=cp, peer_port=pp,
                                       extra_args=args))

    def start(self):
        for m in self.members:
            m.start(wait=False)
        for m in self.members:
            m.wait_ready(timeout=30)
        return self

    def initial_cluster(self, members=None):
        return ",".join(f"{m.name}={m.peer_url}" for m in (members or self.members))

    def alive(self):
        return [m for m in self.members if m.alive()]

    def watchers(self):
        return sum(requests.get(m.url("/v2/stats/store"), timeout=2).json()["watchers"]
                   for m in self.alive())

    def cleanup(self):
        for m in self.members:
            m.cleanup()


def start_proxy(workdir, cluster, name="proxy", mode="on", initial=None, extra=(),
                data_dir=None, wait=True):
    data_dir = data_dir or workdir / name / "data"
    client_port = free_port()
    args = ["--proxy", mode, "--data-dir", str(data_dir),
            "--listen-client-urls", f"http://127.0.0.1:{client_port}",
            "--initial-cluster", initial or cluster.initial_cluster()]
    if IS_ETCD:
        args.append("--enable-v2")
    args += list(extra)
    p = Member(workdir / name, name=name, binary=proxy_binary(), use_default_flags=False,
               client_port=client_port, peer_port=free_port(), data_dir=data_dir,
               extra_args=args)
    p.start(wait=wait, timeout=30)
    return p


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.cleanup()
    from conftest import _fail_on_sanitizer_reports
    _fail_on_sanitizer_reports(c.members)


@pytest.fixture
def proxy(tmp_path, cluster, procs):
    p = start_proxy(tmp_path, cluster)
    procs.append(p)
    return p


@pytest.fixture
def own_cluster(tmp_path, procs):
    c = Cluster(tmp_path / "own")
    procs.extend(c.members)
    return c.start()


def endpoints(proxy):
    r = proxy.get("/v2/config/local/proxy")
    assert r.status_code == 200, r.text
    return set(r.json()["endpoints"])


def proxy_endpoint_order(proxy):
    """The endpoint list in the order the proxy tries it (its last "endpoints found" log)."""
    lines = [l for l in proxy.log_text().splitlines() if 'msg="endpoints found"' in l]
    assert lines, proxy.log_tail()
    return re.search(r'endpoints="([^"]*)"', lines[-1]).group(1).split(",")


def cluster_file(proxy):
    return json.loads((proxy.data_dir / "proxy" / "cluster").read_text())


# --------------------------------------------------------------------------
# Forwarding

def test_put_get_delete_relay_member_answers(cluster, proxy, ns):
    m = cluster.members[0]
    r = proxy.put(f"/v2/keys/{ns}/a", data={"value": "x & y \u00e9"})
    body = harness.assert_json(r, 201)
    assert body["action"] == "set" and body["node"]["value"] == "x & y \u00e9"
    index = body["node"]["modifiedIndex"]
    assert r.headers["X-Etcd-Index"] == str(index)
    # v2 reads are served by whichever member gets them: quorum=true makes them current
    direct = m.get(f"/v2/keys/{ns}/a?quorum=true")
    assert r.headers["X-Etcd-Cluster-Id"] == direct.headers["X-Etcd-Cluster-Id"]

    # a Content-Length body comes back with the same length, byte for byte
    g = proxy.get(f"/v2/keys/{ns}/a?quorum=true")
    assert g.status_code == 200
    assert g.content == direct.content
    assert g.headers["Content-Length"] == str(len(direct.content))
    assert "Transfer-Encoding" not in g.headers
    assert g.headers["X-Etcd-Index"] == direct.headers["X-Etcd-Index"]

    h = proxy.head(f"/v2/keys/{ns}/a?quorum=true")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == str(len(direct.content))

    # method, raw query and body pass through: an in-order create under a dir
    p = proxy.post(f"/v2/keys/{ns}/q", data={"value": "first"})
    created = harness.assert_json(p, 201)
    assert created["action"] == "create"
    assert created["node"]["key"].startswith(f"/{ns}/q/")
    lst = proxy.get(f"/v2/keys/{ns}?recursive=true&sorted=true&quorum=true")
    assert lst.status_code == 200
    keys = [n["key"] for n in lst.json()["node"]["nodes"]]
    assert keys == sorted(keys) and f"/{ns}/a" in keys and f"/{ns}/q" in keys

    d = proxy.delete(f"/v2/keys/{ns}/a")
    assert harness.assert_json(d, 200)["action"] == "delete"
    # member errors are relayed as they are
    miss = proxy.get(f"/v2/keys/{ns}/a?quorum=true")
    direct_miss = m.get(f"/v2/keys/{ns}/a?quorum=true")
    assert miss.status_code == 404
    assert miss.json()["errorCode"] == 100
    assert miss.content == direct_miss.content


def test_cas_failure_and_prev_value_relayed(cluster, proxy, ns):
    proxy.set(f"{ns}/c", "one")
    r = proxy.put(f"/v2/keys/{ns}/c", data={"value": "two", "prevValue": "nope"})
    assert r.status_code == 412
    assert r.json()["errorCode"] == 101
    ok = proxy.put(f"/v2/keys/{ns}/c", data={"value": "two", "prevValue": "one"})
    assert harness.assert_json(ok, 200)["node"]["value"] == "two"


def test_watch_wait_receives_later_write(cluster, proxy, ns):
    base = cluster.watchers()
    w = Watcher(proxy, f"{ns}/w")
    try:
        wait_until(lambda: cluster.watchers() == base + 1, 10, message="member watcher")
        if not IS_ETCD:
            # the member flushes its headers at once and the proxy relays them (etcd 3.4's
            # proxy holds them until the first body bytes)
            w.wait_headers()
        assert not w.ended.is_set()
        # written on another member, after the watch is open
        cluster.members[2].set(f"{ns}/w", "later")
        ev = w.wait_events(1)[0]
        assert w.status == 200
        # etcd 3.4's proxy buffers the short answer and sends it with a Content-Length
        assert w.chunked or IS_ETCD
        assert ev["action"] == "set" and ev["node"]["value"] == "later"
        w.wait_end()
    finally:
        w.close()


# etcd 3.4's proxy (Go's ReverseProxy without a flush interval) holds stream chunks in its
# output buffer, so events do not reach the client one by one; cairn relays each chunk at once.
@pytest.mark.cairn_only
def test_watch_stream_passes_events_one_by_one(cluster, proxy, ns):
    base = cluster.watchers()
    w = Watcher(proxy, f"{ns}/s", stream="true")
    try:
        wait_until(lambda: cluster.watchers() == base + 1, 10, message="member watcher")
        for i in range(3):
            cluster.members[i].set(f"{ns}/s", f"v{i}")
            # each event arrives before the next write: chunks are relayed as they come
            evs = w.wait_events(i + 1)
            assert [e["node"]["value"] for e in evs] == [f"v{j}" for j in range(i + 1)]
        assert w.status == 200 and w.chunked
        assert not w.ended.is_set()
    finally:
        w.close()
    # a client that goes away takes the member's watch with it
    wait_until(lambda: cluster.watchers() == base, 10, message="member watcher released")


def test_readonly_refuses_writes_with_501(tmp_path, cluster, procs, ns):
    p = start_proxy(tmp_path, cluster, mode="readonly")
    procs.append(p)
    for method in ("PUT", "POST", "DELETE"):
        r = requests.request(method, p.key_url(f"{ns}/ro"), data={"value": "x"}, timeout=10)
        assert r.status_code == 501, (method, r.text)
        assert r.content == b""
    assert cluster.members[0].get(f"/v2/keys/{ns}/ro?quorum=true").status_code == 404
    cluster.members[0].set(f"{ns}/ro", "seen")
    g = p.get(f"/v2/keys/{ns}/ro?quorum=true")
    assert g.status_code == 200 and g.json()["node"]["value"] == "seen"


def test_metrics_served_by_the_proxy(cluster, proxy, ns):
    proxy.set(f"{ns}/m", "1")
    assert proxy.get(f"/v2/keys/{ns}/m?quorum=true").status_code == 200
    r = proxy.get("/metrics")
    assert r.status_code == 200
    assert harness.metric_value(r.text, "etcd_proxy_requests_total", {"method": "PUT"}) >= 1
    assert harness.metric_value(r.text, "etcd_proxy_handled_total",
                                {"method": "GET", "code": "200"}) >= 1


# --------------------------------------------------------------------------
# Membership

def test_refresh_finds_every_member_and_writes_cluster_file(tmp_path, cluster, procs):
    # only one member's peer URL is given; the others come from GET <peer>/members
    p = start_proxy(tmp_path, cluster, initial=cluster.initial_cluster(cluster.members[:1]))
    procs.append(p)
    want_clients = {m.client_url for m in cluster.members}
    wait_until(lambda: endpoints(p) == want_clients, 10, message="all client URLs")
    want_peers = {m.peer_url for m in cluster.members}
    wait_until(lambda: set(cluster_file(p)["PeerURLs"]) == want_peers, 10,
               message="cluster file with every peer URL")
    assert list(cluster_file(p).keys()) == ["PeerURLs"]


def test_cluster_file_wins_over_initial_cluster(tmp_path, cluster, procs, ns):
    data_dir = tmp_path / "px" / "data"
    (data_dir / "proxy").mkdir(parents=True)
    (data_dir / "proxy" / "cluster").write_text(
        json.dumps({"PeerURLs": [cluster.members[1].peer_url]}))
    dead = f"http://127.0.0.1:{free_port()}"
    p = start_proxy(tmp_path, cluster, name="px", initial=f"x={dead}", data_dir=data_dir)
    procs.append(p)
    p.set(f"{ns}/f", "via file")
    got = cluster.members[0].get(f"/v2/keys/{ns}/f?quorum=true").json()
    assert got["node"]["value"] == "via file"
    assert dead not in cluster_file(p)["PeerURLs"]


def test_refresh_drops_removed_member(tmp_path, own_cluster, procs):
    c = own_cluster
    p = start_proxy(tmp_path, c, extra=["--proxy-refresh-interval", "200"])
    procs.append(p)
    wait_until(lambda: endpoints(p) == {m.client_url for m in c.members}, 10)
    gone = c.members[2]
    mid = next(x["id"] for x in c.members[0].get("/v2/members").json()["members"]
               if x["name"] == gone.name)
    assert c.members[0].delete(f"/v2/members/{mid}").status_code == 204
    keep = c.members[:2]
    wait_until(lambda: endpoints(p) == {m.client_url for m in keep}, 10,
               message="removed member's client URL dropped")
    wait_until(lambda: set(cluster_file(p)["PeerURLs"]) == {m.peer_url for m in keep}, 10,
               message="cluster file rewritten")


# --------------------------------------------------------------------------
# Failures

def test_kill9_member_then_whole_cluster(tmp_path, own_cluster, procs, ns):
    c = own_cluster
    p = start_proxy(tmp_path, c, extra=["--proxy-failure-wait", "2000",
                                        "--proxy-refresh-interval", "600000"])
    procs.append(p)
    wait_until(lambda: endpoints(p) == {m.client_url for m in c.members}, 10)
    p.set(f"{ns}/k", "before")

    # requests stick to the first endpoint of the list (etcd 2.3's director): kill that one
    first = proxy_endpoint_order(p)[0] if not IS_ETCD else c.members[0].client_url
    victim = next(m for m in c.members if m.client_url == first)
    victim.kill9()
    # a new leader may be needed first; after that every request succeeds: the dead endpoint
    # is quarantined and the request retried on the next member
    wait_until(lambda: p.put(f"/v2/keys/{ns}/k", data={"value": "after"}).status_code == 200,
               20, message="a write through the proxy after kill -9")
    for i in range(6):
        assert p.put(f"/v2/keys/{ns}/k", data={"value": f"v{i}"}).status_code == 200
        g = p.get(f"/v2/keys/{ns}/k?quorum=true")
        assert g.status_code == 200 and g.json()["node"]["value"] == f"v{i}"
    if not IS_ETCD:
        assert f"endpoint={victim.client_url}" in p.log_text()
    # quarantine ends after --proxy-failure-wait even though the member stays dead
    wait_until(lambda: victim.client_url in endpoints(p), 10, message="endpoint retried")

    for m in c.members:
        if m is not victim:
            m.kill9()
    r = p.get(f"/v2/keys/{ns}/k")
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "application/json"
    msg = r.json()["message"]
    assert re.fullmatch(r"(http)?proxy: unable to get response from 3 endpoint\(s\)", msg), msg
    if not IS_ETCD:
        assert r.content == b'{"message":"proxy: unable to get response from 3 endpoint(s)"}'
    # every endpoint is now quarantined
    z = p.get(f"/v2/keys/{ns}/k")
    assert z.status_code == 503
    assert re.fullmatch(r"(http)?proxy: zero endpoints currently available",
                        z.json()["message"])
    assert p.alive()


@pytest.mark.cairn_only
def test_sigterm_ends_streams_and_exits_zero(tmp_path, cluster, procs, ns):
    p = start_proxy(tmp_path, cluster)
    procs.append(p)
    base = cluster.watchers()
    w = Watcher(p, f"{ns}/t", stream="true")
    try:
        w.wait_headers()
        wait_until(lambda: cluster.watchers() == base + 1, 10)
        p.proc.send_signal(signal.SIGTERM)
        assert p.wait_exit(10) == 0
        w.wait_end(10)
        assert w.error is None  # the stream got its last chunk: a complete response
    finally:
        w.close()
    wait_until(lambda: cluster.watchers() == base, 10, message="member watcher released")


def test_chunked_request_body_forwarded(cluster, proxy, ns):
    body = b"value=chunky"
    req = (f"PUT /v2/keys/{ns}/ch HTTP/1.1\r\nHost: x\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\n"
           "Expect: 100-continue\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode()
    req += b"%x\r\n%s\r\n" % (5, body[:5]) + b"%x\r\n%s\r\n" % (len(body) - 5, body[5:])
    req += b"0\r\n\r\n"
    with harness.RawConn(proxy.client_port) as c:
        c.send(req)
        r = c.read_response()
        while r.status == 100:
            r = c.read_response()
        assert r.status == 201, r.body
        assert r.json()["node"]["value"] == "chunky"
        # keep-alive: the connection serves the next request
        c.send(harness.http_request_bytes("GET", f"/v2/keys/{ns}/ch?quorum=true"))
        assert c.read_response().json()["node"]["value"] == "chunky"


@pytest.mark.cairn_only
def test_stop_while_waiting_for_first_membership_fetch(tmp_path, cluster, procs):
    """A peer that accepts connections and never answers holds the first membership fetch;
    client requests wait for it, and SIGTERM answers them 503 and exits 0."""
    import socket
    import threading
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    try:
        peer = f"http://127.0.0.1:{hole.getsockname()[1]}"
        p = start_proxy(tmp_path, cluster, initial=f"x={peer}", wait=False)
        procs.append(p)
        got = {}

        def client():
            try:
                got["r"] = requests.get(p.url("/v2/keys/"), timeout=30)
            except requests.RequestException as exc:
                got["exc"] = exc

        t = threading.Thread(target=client, daemon=True)
        wait_until(lambda: requests.get(p.url("/v2/config/local/proxy"), timeout=2)
                   .status_code == 200, 10, message="proxy listening")
        t.start()
        # the client's request reached the proxy (and waits) once the counters show it
        wait_until(lambda: harness.metric_value(p.get("/metrics").text,
                                                "etcd_proxy_requests_total",
                                                {"method": "GET"}) == 1, 10)
        p.proc.send_signal(signal.SIGTERM)
        assert p.wait_exit(10) == 0
        t.join(10)
        assert "r" in got, got
        assert got["r"].status_code == 503
        assert got["r"].json() == {"message": "proxy: shutting down"}
    finally:
        hole.close()
