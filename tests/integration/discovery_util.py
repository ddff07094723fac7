"""Helpers for test_discovery.py: members that bootstrap through ``--discovery`` or
``--discovery-srv``, a cairn discovery service, a self-hosted registry, a garbage HTTP
endpoint and a dnsmasq SRV server (spec etcd-cluster.md 2, 3.1, 4, 5, 9).

Everything listens on loopback.  Processes are ended by the PID we started.
"""

import functools
import http.server
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import requests

import harness
from harness import ETCD_BIN, IS_ETCD, Member, free_port, wait_until

HEARTBEAT_MS = 50
ELECTION_MS = 500
FORM_TIMEOUT = float(os.environ.get("CAIRN_DISCOVERY_FORM_TIMEOUT", "30"))
EXIT_DEADLINE = 30.0
DNSMASQ = os.environ.get("CAIRN_DNSMASQ", "/usr/sbin/dnsmasq")
DNS_IP = os.environ.get("CAIRN_DNS_IP", "127.0.0.77")


def cairn_binary():
    return os.environ.get("CAIRN_BIN", str(harness.REPO / "build" / "cairn"))


@functools.lru_cache(maxsize=None)
def cairn_has_discovery_service():
    """True once cairn's --help lists --discovery-service."""
    b = cairn_binary()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        return False
    try:
        p = subprocess.run([b, "--help"], capture_output=True, text=True, timeout=10,
                           env=harness.clean_env())
    except (OSError, subprocess.SubprocessError):
        return False
    return "--discovery-service" in (p.stdout + p.stderr)


def is_etcd_binary(binary):
    return os.path.realpath(binary) == os.path.realpath(ETCD_BIN)


def binary_extra(binary):
    """--enable-v2 for a real etcd when the harness does not already add it."""
    return ["--enable-v2"] if is_etcd_binary(binary) and not IS_ETCD else []


class Ports:
    """Distinct free ports for one test."""

    def __init__(self):
        self.used = set()

    def __call__(self):
        while True:
            p = free_port()
            if p not in self.used:
                self.used.add(p)
                return p


def new_token():
    return "%032x" % random.getrandbits(128)


# --------------------------------------------------------------------------
# members

class DiscoveryMember(Member):
    """A server bootstrapping through ``--discovery URL`` (or, with ``srv_domain``,
    ``--discovery-srv``); no ``--initial-cluster``.  ``peer_hosts`` names the hosts of
    the advertised peer URLs (default 127.0.0.1); ``extra_peer_ports`` adds more peer
    URLs.  ``wrapper`` is a command prefix (e.g. unshare)."""

    def __init__(self, workdir, name, ports, discovery=None, binary=None, extra=(),
                 srv_domain=None, peer_host="127.0.0.1", extra_peer_ports=(), token=None,
                 wrapper=None):
        self.discovery = discovery
        self.srv_domain = srv_domain
        self.peer_host = peer_host
        self.peer_ports = [ports()] + [p for p in extra_peer_ports]
        self.wrapper = list(wrapper or [])
        self.more = list(extra)
        binary = binary or harness.server_binary()
        super().__init__(workdir, name=name, client_port=ports(), peer_port=self.peer_ports[0],
                         binary=binary, use_default_flags=False, token=token)

    @property
    def peer_url(self):
        return f"http://{self.peer_host}:{self.peer_port}"

    @property
    def peer_urls(self):
        return sorted(f"http://{self.peer_host}:{p}" for p in self.peer_ports)

    @property
    def listen_peer_urls(self):
        return [f"http://127.0.0.1:{p}" for p in self.peer_ports]

    @property
    def id(self):
        token = self.discovery if self.srv_domain is None else (self.token or "etcd-cluster")
        return harness.member_id(self.peer_urls, token)

    @property
    def registration(self):
        """The value this member registers: sorted name=url pairs joined with commas."""
        return ",".join(sorted(f"{self.name}={u}" for u in self.peer_urls))

    def args(self):
        a = [self.binary,
             "--name", self.name,
             "--data-dir", str(self.data_dir),
             "--listen-client-urls", self.client_url,
             "--advertise-client-urls", self.client_url,
             "--listen-peer-urls", ",".join(self.listen_peer_urls),
             "--initial-advertise-peer-urls", ",".join(self.peer_urls),
             "--heartbeat-interval", str(HEARTBEAT_MS),
             "--election-timeout", str(ELECTION_MS)]
        if self.srv_domain is not None:
            a += ["--discovery-srv", self.srv_domain]
            if self.token:
                a += ["--initial-cluster-token", self.token]
        elif self.discovery is not None:
            a += ["--discovery", self.discovery]
        a += harness.TARGET_ARGS + binary_extra(self.binary) + self.more
        return self.wrapper + a

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def start_all(members, timeout=FORM_TIMEOUT):
    for m in members:
        m.start(wait=False)
    deadline = time.monotonic() + timeout
    for m in members:
        m.wait_ready(max(1.0, deadline - time.monotonic()))
    return members


def wait_exit_code(m, timeout=EXIT_DEADLINE):
    """Wait for the process to end by itself; return (exit code, seconds it ran)."""
    t0 = time.monotonic()
    code = m.wait_exit(timeout)
    return code, time.monotonic() - t0


# --------------------------------------------------------------------------
# registries

def plain_server(workdir, name, ports, binary=None):
    """A one-member server (cairn or etcd) to host a self-hosted registry."""
    binary = binary or harness.server_binary()
    m = Member(Path(workdir) / name, name=name, binary=binary, client_port=ports(),
               peer_port=ports(), extra_args=binary_extra(binary))
    return m


def self_hosted_url(server, token, size=3):
    """Create ``_config/size`` (unless size is None) and return the discovery URL."""
    url = server.url(f"/v2/keys/_etcd/registry/{token}")
    if size is not None:
        r = requests.put(url + "/_config/size", data={"value": str(size)}, timeout=10)
        assert r.status_code == 201, r.text
    return url


def service_server(workdir, name, ports, extra=()):
    """A cairn server with --discovery-service (started by the caller)."""
    b = cairn_binary()
    return Member(Path(workdir) / name, name=name, binary=b, client_port=ports(),
                  peer_port=ports(), extra_args=["--discovery-service"] + list(extra))


def service_new(svc, size=None, method="GET"):
    params = {} if size is None else {"size": str(size)}
    r = requests.request(method, svc.url("/new"), params=params, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    return r


def registrations(discovery_url):
    """{child key: value} of the registry listing (``_config`` is hidden), and the nodes
    in createdIndex order."""
    r = requests.get(discovery_url, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    node = r.json()["node"]
    assert node.get("dir") is True, node
    nodes = sorted(node.get("nodes", []), key=lambda n: n["createdIndex"])
    return {n["key"]: n.get("value") for n in nodes}, nodes


# --------------------------------------------------------------------------
# a garbage endpoint: 200 "hello" to everything

class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.hits.append((self.command, self.path))

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *a):
        pass


class HelloServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        self.httpd.daemon_threads = True
        self.httpd.hits = []
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self):
        return self.httpd.hits

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# --------------------------------------------------------------------------
# DNS: a minimal SRV query and dnsmasq

def _qname(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _read_name(msg, off):
    labels = []
    jumped = False
    end = None
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        if n == 0:
            off += 1
            break
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels), (end if jumped else off)


def query_srv(server_ip, name, timeout=1.0):
    """SRV records of ``name`` from ``server_ip``:53 as sorted (target, port) pairs;
    raises on timeout or a non-zero rcode."""
    qid = random.getrandbits(16)
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _qname(name) + struct.pack(">HH", 33, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(msg, (server_ip, 53))
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    assert rid == qid
    rcode = flags & 0xF
    if rcode != 0:
        raise AssertionError(f"rcode {rcode} for {name}")
    off = 12
    for _ in range(qd):
        _, off = _read_name(data, off)
        off += 4
    out = []
    for _ in range(an):
        _, off = _read_name(data, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        if rtype == 33:
            _, _, port = struct.unpack(">HHH", data[off:off + 6])
            target, _ = _read_name(data, off + 6)
            out.append((target, port))
        off += rdlen
    return sorted(out)


class Dnsmasq:
    """dnsmasq on DNS_IP:53 answering SRV ``_etcd-server._tcp.<domain>`` and A records
    of the targets (127.0.0.1); nothing is forwarded."""

    def __init__(self, workdir, domain, records, ip=DNS_IP):
        """records: list of (target host name, port)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.domain = domain
        self.records = list(records)
        self.ip = ip
        self.log = self.workdir / "dnsmasq.log"
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", f"--listen-address={ip}", "--bind-interfaces",
                "--port=53", "--pid-file=", "--user=root", "--log-facility=-",
                f"--local=/{domain}/"]
        for host, port in self.records:
            args.append(f"--srv-host=_etcd-server._tcp.{domain},{host},{port}")
        for host in sorted({h for h, _ in self.records}):
            args.append(f"--host-record={host},127.0.0.1")
        self.args = args
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=f, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout=10):
        want = sorted(self.records)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"dnsmasq exited {self.proc.returncode}: "
                                     f"{self.log.read_text(errors='replace')}")
            return query_srv(self.ip, f"_etcd-server._tcp.{self.domain}") == want
        wait_until(ready, timeout, interval=0.05, message="dnsmasq serving the SRV records")
        return self

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def resolv_wrapper(resolv_conf):
    """A command prefix running the command in a private mount namespace whose
    /etc/resolv.conf is ``resolv_conf``."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv_conf)]


def can_unshare_mount():
    if shutil.which("unshare") is None:
        return False
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "true"],
                       capture_output=True)
    return p.returncode == 0
