"""Discovery: bootstrapping through ``--discovery`` (spec etcd-cluster.md 2, 3.1, 4), DNS SRV
bootstrap (``--discovery-srv``, 5) and cairn's discovery service (``--discovery-service``, 9).

Client side: the members are the server under test (cairn, or etcd 3.4 with
``CAIRN_TARGET=etcd``); the registry is either cairn's discovery service (token URL
``http://127.0.0.1:<port>/<token>``, needs a cairn with ``--discovery-service``) or a
self-hosted registry on a plain server of the target kind
(``http://127.0.0.1:<port>/v2/keys/_etcd/registry/<token>`` with ``_config/size`` created
by the test).  Service side (cairn only): ``/new``, the token routes, the token TTL.
Interop (cairn only): etcd 3.4 members through cairn's service, cairn members through an
etcd 3.4 registry.  SRV (root): dnsmasq on 127.0.0.77 and each member in its own mount
namespace whose /etc/resolv.conf points there.
"""

import http.server
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests

import harness
from discovery_util import (
    DNSMASQ, DNS_IP, FORM_TIMEOUT, DiscoveryMember, Dnsmasq, HelloServer, Ports,
    cairn_has_discovery_service, can_unshare_mount, new_token, plain_server, query_srv,
    registrations, resolv_wrapper, self_hosted_url, service_new, service_server, start_all,
    wait_exit_code)
from harness import ETCD_BIN, IS_ETCD, wait_until

TOKEN_RE = re.compile(r"[0-9a-f]{32}")

needs_service = pytest.mark.skipif(
    not cairn_has_discovery_service(),
    reason="cairn has no --discovery-service yet (./build/cairn --help)")


@pytest.fixture
def ports():
    return Ports()


@pytest.fixture
def hello():
    s = HelloServer()
    yield s
    s.close()


class Env:
    """Builds the servers of one test, all registered in ``procs``."""

    def __init__(self, tmp_path, procs, ports):
        self.tmp = tmp_path
        self.procs = procs
        self.ports = ports
        self.n = 0

    def add(self, p):
        self.procs.append(p)
        return p

    def registry(self, binary=None):
        """A started plain server to host a self-hosted registry."""
        r = self.add(plain_server(self.tmp, f"reg{len(self.procs)}", self.ports, binary))
        r.start()
        return r

    def service(self, extra=()):
        s = self.add(service_server(self.tmp, f"svc{len(self.procs)}", self.ports, extra))
        s.start()
        return s

    def member(self, discovery, name=None, binary=None, extra=(), **kw):
        self.n += 1
        name = name or f"n{self.n}"
        return self.add(DiscoveryMember(self.tmp / name, name, self.ports, discovery=discovery,
                                        binary=binary, extra=extra, **kw))

    def discovery_url(self, kind, size=3, binary=None):
        if kind == "service":
            svc = self.service()
            body = service_new(svc, size=size).text
            return body
        reg = self.registry(binary)
        return self_hosted_url(reg, new_token(), size=size)


@pytest.fixture
def env(tmp_path, procs, ports):
    return Env(tmp_path, procs, ports)


def members_view(m):
    r = m.get("/v2/members", timeout=5)
    assert r.status_code == 200, r.text
    return sorted((x["id"], x["name"], sorted(x["peerURLs"]), x["clientURLs"])
                  for x in r.json()["members"])


def expected_view(members):
    return sorted((m.id, m.name, m.peer_urls, [m.client_url]) for m in members)


def assert_formed(members, discovery_url):
    """Same membership everywhere (ids per spec 3.1 with token = discovery URL), the
    cluster id of spec 3.2, the registrations in the registry, and replication."""
    want = expected_view(members)
    for m in members:
        wait_until(lambda: members_view(m) == want, 15, interval=0.1,
                   message=f"/v2/members of {m.name} == {want}")
    cid = harness.cluster_id([m.id for m in members])
    for m in members:
        r = m.get("/v2/keys/")
        assert r.status_code == 200
        assert r.headers["X-Etcd-Cluster-Id"] == cid
    if discovery_url is not None:
        regs, nodes = registrations(discovery_url)
        prefix = nodes[0]["key"].rsplit("/", 1)[0] if nodes else ""
        assert prefix.endswith("/_etcd/registry/" + discovery_url.rstrip("/").rsplit("/", 1)[1])
        assert regs == {f"{prefix}/{m.id}": m.registration for m in members}
    value = f"v-{time.monotonic_ns()}"
    r = requests.put(members[0].key_url("disco/x"), data={"value": value}, timeout=10)
    assert r.status_code == 201, r.text
    for m in members[1:]:
        g = m.get("/v2/keys/disco/x?quorum=true")
        assert g.status_code == 200, g.text
        assert g.json()["node"]["value"] == value


def form(env, kind, size=3, binary=None):
    d = env.discovery_url(kind, size=size)
    ms = [env.member(d, binary=binary) for _ in range(size)]
    start_all(ms)
    assert_formed(ms, d)
    return d, ms


KINDS = [pytest.param("service", marks=needs_service, id="service"),
         pytest.param("selfhosted", id="selfhosted")]


# ---------------------------------------------------------------------------
# client side

@pytest.mark.parametrize("kind", KINDS)
def test_three_members_form_a_cluster(env, kind):
    d, ms = form(env, kind)
    if kind == "service":
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[0-9a-f]{32}", d), d
    # every member is a voting member: a leader exists and the others follow it
    want = ["StateFollower", "StateFollower", "StateLeader"]
    wait_until(lambda: sorted(m.get("/v2/stats/self").json()["state"] for m in ms) == want,
               10, interval=0.05, message=f"member states {want}")


def test_registration_value_with_two_peer_urls(env, ports):
    """A member advertising two peer URLs registers both (sorted name=url pairs joined
    with ','); its id hashes both URLs (spec 3.1, 4)."""
    d = env.discovery_url("selfhosted")
    ms = [env.member(d, extra_peer_ports=[ports()]), env.member(d), env.member(d)]
    assert len(ms[0].peer_urls) == 2
    assert ms[0].registration == ",".join(f"n1={u}" for u in ms[0].peer_urls)
    start_all(ms)
    assert_formed(ms, d)


@pytest.mark.parametrize("kind", KINDS)
def test_fourth_member_fallback_exit(env, kind):
    d, ms = form(env, kind)
    before, _ = registrations(d)
    m4 = env.member(d, extra=["--discovery-fallback", "exit"])
    m4.start(wait=False)
    code, _ = wait_exit_code(m4)
    assert code != 0
    assert "discovery: cluster is full" in m4.stderr_text()
    after, _ = registrations(d)
    assert len(after) == 3
    assert after == before
    assert_no_member_state(m4)
    assert not (m4.data_dir / "proxy").exists()
    # the cluster is untouched
    assert members_view(ms[0]) == expected_view(ms)


@pytest.mark.parametrize("kind", KINDS)
def test_fourth_member_fallback_proxy(env, kind):
    d, ms = form(env, kind)
    m4 = env.member(d)                       # default --discovery-fallback proxy
    m4.start(wait=False)
    m4.wait_ready(FORM_TIMEOUT)
    assert (m4.data_dir / "proxy").is_dir()
    assert_no_member_state(m4)
    # not registered, not a member
    regs, _ = registrations(d)
    assert len(regs) == 3
    assert members_view(m4) == expected_view(ms)
    # writes and reads go through it to the 3 members
    r = m4.put("/v2/keys/viaproxy", data={"value": "p1"})
    assert r.status_code == 201, r.text
    assert r.json()["node"]["value"] == "p1"
    for m in ms:
        g = m.get("/v2/keys/viaproxy?quorum=true")
        assert g.status_code == 200, g.text
        assert g.json()["node"]["value"] == "p1"
    ms[1].set("fromcluster", "c1")
    g = m4.get("/v2/keys/fromcluster?quorum=true")
    assert g.status_code == 200, g.text
    assert g.json()["node"]["value"] == "c1"


def test_restart_ignores_discovery(env, ports):
    d, ms = form(env, "selfhosted")
    n1 = ms[0]
    n1.set("before-restart", "kept")
    old_id = n1.get("/v2/stats/self").json()["id"]
    assert old_id == n1.id
    want = expected_view(ms)
    assert n1.stop() == harness.CLEAN_EXIT_CODE
    # a discovery URL nobody answers: a restart must not even look at it
    n1.discovery = f"http://127.0.0.1:{ports()}/{new_token()}"
    n1.restart(timeout=FORM_TIMEOUT)
    assert n1.get("/v2/stats/self").json()["id"] == old_id
    assert members_view(n1) == want
    g = n1.get("/v2/keys/before-restart?quorum=true")
    assert g.status_code == 200, g.text
    assert g.json()["node"]["value"] == "kept"
    n1.set("after-restart", "new")
    g = ms[2].get("/v2/keys/after-restart?quorum=true")
    assert g.json()["node"]["value"] == "new"


def assert_no_member_state(m):
    """A failed bootstrap leaves nothing a restart would take for a member.  cairn: no
    ``member/`` at all.  etcd 3.4 creates ``member/snap/db`` before it runs discovery and
    leaves it behind, but never a WAL."""
    member = m.data_dir / "member"
    if IS_ETCD:
        assert not (member / "wal").exists()
    else:
        assert not member.exists(), sorted(str(p) for p in member.rglob("*"))


def _assert_fails(m, message, deadline=30.0):
    m.start(wait=False)
    code, took = wait_exit_code(m, deadline)
    assert code != 0, m.log_tail()
    assert message in m.stderr_text(), m.log_tail()
    assert_no_member_state(m)
    return took


@pytest.mark.cairn_only   # etcd 3.4 retries a refused connection (almost) forever
def test_closed_port_too_many_retries(env, ports):
    m = env.member(f"http://127.0.0.1:{ports()}/{new_token()}")
    took = _assert_fails(m, "discovery: too many retries")
    assert took >= 2.0   # it did back off and retry before giving up


def test_garbage_endpoint_bad_discovery_endpoint(env, hello):
    m = env.member(f"http://127.0.0.1:{hello.port}/{new_token()}")
    _assert_fails(m, "discovery: bad discovery endpoint")
    assert any(path.split("?")[0].endswith("/_config/size") for _, path in hello.hits), hello.hits


def test_size_key_not_found(env):
    reg = env.registry()
    d = self_hosted_url(reg, new_token(), size=None)
    m = env.member(d)
    # etcd 3.4 does not map the 404 to its ErrSizeNotFound and prints the raw error
    _assert_fails(m, "failed to join discovery cluster (100: Key not found" if IS_ETCD
                  else "discovery: size key not found")
    # nothing registered
    assert reg.get(d.split(reg.client_url, 1)[1]).status_code == 404


def test_size_key_bad(env):
    reg = env.registry()
    token = new_token()
    d = self_hosted_url(reg, token, size="abc")
    m = env.member(d)
    _assert_fails(m, "discovery: size key is bad")
    regs, _ = registrations(d)
    assert regs == {}


# ---------------------------------------------------------------------------
# interop with etcd 3.4

@pytest.mark.cairn_only
@needs_service
def test_interop_etcd_members_via_cairn_service(env):
    d = env.discovery_url("service")
    ms = [env.member(d, binary=ETCD_BIN) for _ in range(3)]
    start_all(ms)
    assert_formed(ms, d)


@pytest.mark.cairn_only
def test_interop_cairn_members_via_etcd_registry(env):
    reg = env.registry(binary=ETCD_BIN)
    d = self_hosted_url(reg, new_token(), size=3)
    ms = [env.member(d) for _ in range(3)]
    start_all(ms)
    assert_formed(ms, d)


# ---------------------------------------------------------------------------
# DNS SRV bootstrap

@pytest.fixture
def srv_setup(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (dnsmasq on port 53, mount namespaces)")
    if not os.path.exists(DNSMASQ):
        pytest.skip(f"{DNSMASQ} missing (Debian package dnsmasq-base)")
    if not can_unshare_mount():
        pytest.skip("unshare --mount does not work here")
    yield tmp_path


SRV_DOMAIN = "cairn-srv.test"


def _srv_wrapper(tmp):
    resolv = tmp / "resolv.conf"
    resolv.write_text(f"nameserver {DNS_IP}\n")
    return resolv_wrapper(resolv)


@pytest.mark.needs_root
def test_srv_dns_setup_resolves_inside_namespace(srv_setup, ports):
    """Self-test of the SRV environment (runs on any target): dnsmasq answers the SRV
    query, and a process in the wrapped mount namespace resolves the targets through it
    with glibc while the host's /etc/resolv.conf stays untouched."""
    host_resolv = open("/etc/resolv.conf").read()
    wrapper = _srv_wrapper(srv_setup)
    recs = [(f"n{i}.{SRV_DOMAIN}", ports()) for i in (1, 2, 3)]
    dns = Dnsmasq(srv_setup / "dns", SRV_DOMAIN, recs)
    try:
        dns.wait_ready()
        code = ("import socket,sys;print(open('/etc/resolv.conf').read().strip());"
                "[print(socket.getaddrinfo(h,1,socket.AF_INET,socket.SOCK_STREAM)[0][4][0])"
                " for h in sys.argv[1:]]")
        p = subprocess.run(wrapper + ["/usr/bin/python3", "-c", code] + [h for h, _ in recs],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == [f"nameserver {DNS_IP}"] + ["127.0.0.1"] * 3
        assert open("/etc/resolv.conf").read() == host_resolv
        assert query_srv(DNS_IP, f"_etcd-server._tcp.{SRV_DOMAIN}") == sorted(recs)
        with pytest.raises(AssertionError, match="rcode 3"):   # NXDOMAIN, not forwarded
            query_srv(DNS_IP, f"_etcd-server-ssl._tcp.{SRV_DOMAIN}")
    finally:
        dns.close()


# etcd 3.4.23 cannot do a plain-http SRV bootstrap: its GetDNSClusterNames keeps the
# _etcd-server._tcp results only when that lookup FAILED and fails when _etcd-server-ssl is
# missing (fixed in 3.5), so this runs on cairn only; the environment is checked above.
@pytest.mark.cairn_only
@pytest.mark.needs_root
def test_srv_three_members_form_a_cluster(env, srv_setup, ports):
    domain = SRV_DOMAIN
    wrapper = _srv_wrapper(srv_setup)
    token = f"srv-{new_token()[:8]}"
    ms = [env.member(None, srv_domain=domain, peer_host=f"n{i}.{domain}", token=token,
                     wrapper=wrapper) for i in (1, 2, 3)]
    dns = Dnsmasq(srv_setup / "dns", domain, [(m.peer_host, m.peer_port) for m in ms])
    try:
        dns.wait_ready()
        start_all(ms)
        # names: each member publishes its own name; peer URLs are the SRV targets
        assert [u for m in ms for u in m.peer_urls] == [
            f"http://n{i}.{domain}:{m.peer_port}" for i, m in zip((1, 2, 3), ms)]
        assert_formed(ms, None)
    finally:
        dns.close()


# ---------------------------------------------------------------------------
# the discovery service (cairn)

@pytest.fixture
def svc(env):
    if IS_ETCD:
        pytest.skip("cairn's discovery service")
    return env.service()


def _token_of(svc, body):
    prefix = svc.client_url + "/"
    assert body.startswith(prefix), body
    token = body[len(prefix):]
    assert TOKEN_RE.fullmatch(token), body
    return token


@pytest.mark.cairn_only
@needs_service
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_service_new_default_size(svc, method):
    r = service_new(svc, method=method)
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    assert not r.text.endswith("\n")
    token = _token_of(svc, r.text)
    g = svc.get(f"/{token}/_config/size")
    assert g.status_code == 200, g.text
    assert g.headers["Content-Type"] == "application/json"
    body = g.json()
    assert body["action"] == "get"
    assert body["node"]["key"] == f"/_etcd/registry/{token}/_config/size"
    assert body["node"]["value"] == "3"


@pytest.mark.cairn_only
@needs_service
def test_service_new_size_param(svc):
    token = _token_of(svc, service_new(svc, size=5).text)
    g = svc.get(f"/{token}/_config/size")
    assert g.status_code == 200, g.text
    assert g.json()["node"]["value"] == "5"
    assert g.json()["node"]["key"] == f"/_etcd/registry/{token}/_config/size"


@pytest.mark.cairn_only
@needs_service
@pytest.mark.parametrize("size", ["abc", "0", "-1", "1000000"])
def test_service_new_bad_size(svc, size):
    before = svc.get("/v2/keys/_etcd/registry")
    r = svc.get("/new", params={"size": size})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.text.strip() != ""
    assert not TOKEN_RE.search(r.text)
    after = svc.get("/v2/keys/_etcd/registry")
    # no token was created
    assert after.status_code == before.status_code
    if after.status_code == 200:
        assert after.json()["node"].get("nodes", []) == before.json()["node"].get("nodes", [])


@pytest.mark.cairn_only
@needs_service
def test_service_tokens_distinct(svc):
    bodies = [service_new(svc).text for _ in range(6)]
    tokens = [_token_of(svc, b) for b in bodies]
    assert len(set(tokens)) == 6


@pytest.mark.cairn_only
@needs_service
@pytest.mark.parametrize("host", ["http://disco.example:8087", "http://disco.example:8087/"],
                         ids=["plain", "trailing-slash"])
def test_service_host_flag(env, host):
    """--discovery-service-host is the prefix of generated URLs (a trailing '/' is trimmed,
    spec 9)."""
    if IS_ETCD:
        pytest.skip("cairn's discovery service")
    s = env.service(extra=["--discovery-service-host", host])
    body = service_new(s).text
    assert re.fullmatch(r"http://disco\.example:8087/[0-9a-f]{32}", body), body
    token = body.rsplit("/", 1)[1]
    g = s.get(f"/{token}/_config/size")
    assert g.status_code == 200 and g.json()["node"]["value"] == "3"


@pytest.mark.cairn_only
@needs_service
def test_service_token_is_a_keys_api(svc):
    token = _token_of(svc, service_new(svc).text)
    base = f"/_etcd/registry/{token}"
    lst = svc.get(f"/{token}")
    assert lst.status_code == 200, lst.text
    node = lst.json()["node"]
    assert node["key"] == base and node["dir"] is True
    assert node.get("nodes", []) == []          # _config is hidden
    # create semantics
    c1 = svc.put(f"/{token}/abc123?prevExist=false", data={"value": "n1=http://127.0.0.1:1"})
    assert c1.status_code == 201, c1.text
    assert c1.json()["action"] == "create"
    assert c1.json()["node"]["key"] == f"{base}/abc123"
    assert c1.json()["node"]["value"] == "n1=http://127.0.0.1:1"
    c2 = svc.put(f"/{token}/abc123?prevExist=false", data={"value": "other"})
    assert c2.status_code == 412, c2.text
    assert c2.json()["errorCode"] == 105
    assert c2.json()["cause"] == f"{base}/abc123"
    # the listing has it; the trailing-slash form too
    for path in (f"/{token}", f"/{token}/"):
        lst = svc.get(path)
        assert lst.status_code == 200, (path, lst.text)
        assert [(n["key"], n["value"]) for n in lst.json()["node"]["nodes"]] == [
            (f"{base}/abc123", "n1=http://127.0.0.1:1")]
    one = svc.get(f"/{token}/abc123")
    assert one.status_code == 200 and one.json()["node"]["value"] == "n1=http://127.0.0.1:1"
    # missing key
    miss = svc.get(f"/{token}/nope")
    assert miss.status_code == 404, miss.text
    assert miss.json()["errorCode"] == 100
    assert miss.json()["cause"] == f"{base}/nope"
    # delete
    d = svc.delete(f"/{token}/abc123")
    assert d.status_code == 200, d.text
    assert d.json()["action"] == "delete"
    assert svc.get(f"/{token}/abc123").status_code == 404


@pytest.mark.cairn_only
@needs_service
def test_service_token_watch(svc):
    token = _token_of(svc, service_new(svc).text)
    lst = svc.get(f"/{token}")
    assert lst.status_code == 200
    idx = int(lst.headers["X-Etcd-Index"])
    watchers0 = svc.get("/v2/stats/store").json()["watchers"]
    result = {}

    def watch():
        try:
            result["r"] = requests.get(svc.url(f"/{token}"), timeout=20,
                                       params={"wait": "true", "recursive": "true",
                                               "waitIndex": str(idx + 1)})
        except Exception as exc:  # noqa: BLE001
            result["e"] = exc
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    wait_until(lambda: svc.get("/v2/stats/store").json()["watchers"] == watchers0 + 1, 10,
               message="the long-poll watch registered")
    assert "r" not in result        # still waiting
    c = svc.put(f"/{token}/deadbeef", data={"value": "n9=http://127.0.0.1:9"},
                params={"prevExist": "false"})
    assert c.status_code == 201, c.text
    t.join(15)
    assert "e" not in result, result
    r = result["r"]
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev["action"] == "create"
    assert ev["node"]["key"] == f"/_etcd/registry/{token}/deadbeef"
    assert ev["node"]["value"] == "n9=http://127.0.0.1:9"
    assert ev["node"]["createdIndex"] == c.json()["node"]["createdIndex"]


@pytest.mark.cairn_only
@needs_service
@pytest.mark.parametrize("seg", ["nothex", "0123456789abcdef0123456789abcde",
                                 "0123456789abcdef0123456789abcdef0",
                                 "0123456789ABCDEF0123456789ABCDEF",
                                 "g123456789abcdef0123456789abcdef"])
def test_service_bad_token_shape_404(svc, seg):
    for path in (f"/{seg}", f"/{seg}/_config/size"):
        r = svc.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text)
    r = svc.put(f"/{seg}/x", data={"value": "1"})
    assert r.status_code == 404, (r.status_code, r.text)
    # nothing was written under the registry for it
    g = svc.get(f"/v2/keys/_etcd/registry/{seg}")
    assert g.status_code == 404


@pytest.mark.cairn_only
@needs_service
def test_service_token_ttl_default(svc):
    token = _token_of(svc, service_new(svc).text)
    g = svc.get(f"/v2/keys/_etcd/registry/{token}")
    assert g.status_code == 200, g.text
    node = g.json()["node"]
    assert node["dir"] is True
    assert 604800 - 60 <= node["ttl"] <= 604800, node
    assert "expiration" in node


@pytest.mark.cairn_only
@needs_service
def test_service_token_ttl_configured(env):
    if IS_ETCD:
        pytest.skip("cairn's discovery service")
    s = env.service(extra=["--discovery-token-ttl", "2"])
    token = _token_of(s, service_new(s).text)
    g = s.get(f"/v2/keys/_etcd/registry/{token}")
    if g.status_code == 200:
        assert 0 < g.json()["node"]["ttl"] <= 2, g.json()
    else:   # already expired (slow machine): must be a clean "not found"
        assert g.status_code == 404 and g.json()["errorCode"] == 100

    def gone():
        r = s.get(f"/{token}/_config/size")
        return r.status_code == 404 and r.json()["errorCode"] == 100
    wait_until(gone, 10, interval=0.1, message="token expired")
    assert s.get(f"/v2/keys/_etcd/registry/{token}").status_code == 404


# --------------------------------------------------------------------------
# --discovery-proxy: the discovery requests go through an HTTP forward proxy

class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A minimal forward proxy: absolute-form request targets only, as Go's Transport (and
    cairn) send them to a proxy for plain http URLs."""
    protocol_version = "HTTP/1.1"

    def _forward(self):
        self.server.seen.append((self.command, self.path))
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if not self.path.startswith("http://"):
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        req = urllib.request.Request(self.path, data=body, method=self.command)
        for k in ("Content-Type",):
            if self.headers.get(k):
                req.add_header(k, self.headers[k])
        try:
            r = urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as e:
            r = e
        data = r.read()
        self.send_response(r.status if hasattr(r, "status") else r.code)
        for k, v in r.headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _forward

    def log_message(self, *a):
        pass


@pytest.mark.cairn_only
def test_discovery_through_an_http_proxy(env):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    srv.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        d = env.discovery_url("service", size=1)
        port = srv.server_address[1]
        # etcd prepends http:// to a proxy given without a scheme
        m = env.member(d, extra=["--discovery-proxy", f"127.0.0.1:{port}"])
        start_all([m])
        assert_formed([m], d)
        token = d.rsplit("/", 1)[1]
        assert ("GET", f"{d}/_config/size") in srv.seen, srv.seen
        assert any(c == "PUT" and p.startswith(f"{d}/{m.id}?prevExist=false") for c, p in srv.seen)
        assert all(p.startswith("http://") and token in p for _, p in srv.seen)
    finally:
        srv.shutdown()
        srv.server_close()
