"""Helpers for the etcd v3 black-box suite (test_v3_*.py), on top of ``harness.Member``.

The same code drives cairn and etcd 3.4 (``CAIRN_TARGET=etcd``):

* :class:`Ctl3`: ``etcdctl`` with ``ETCDCTL_API=3 --endpoints <member(s)>``; results are
  ``(rc, stdout, stderr)`` tuples, :func:`ctl_error` gives the ``Error: ...`` line of stderr
  (etcdctl 3.4 prints a JSON "retrying of unary invoker failed" warning line before it).
* :class:`Gateway`: the JSON gateway (``POST /v3/...`` on the client port), with base64 helpers.
* :func:`client`: a python3-etcd3 (Debian, grpcio) client for one member.
* :func:`raw_unary`: a grpcio generic unary call with raw request bytes (malformed protobuf,
  oversized messages) and :func:`pb_field` / :func:`pb_varint` to build requests by hand.
* :class:`H2`: a raw HTTP/2 socket (preface, hand-built frames) for protocol errors and stream
  resets; it reads frame headers only (HPACK-encoded replies are not decoded).
* :func:`nghttp_grpc`: one gRPC request body sent verbatim by ``nghttp`` (nghttp2-client), whose
  ``-v`` trace gives the decoded response headers and trailers (grpc-status, grpc-message).
* :func:`ids`: the header ids a member must report (the v2 suite's formulas, as integers).
"""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time

import requests

from harness import ETCDCTL_BIN, clean_env, wait_until

# Maintenance.Status "version". etcd-v3-notes.md ("Decisions"): cairn reports 3.4.23 until its
# WatchProgressRequest answers are right, then 3.5.13; split this by target then.
STATUS_VERSION = "3.4.23"

# -- ids ------------------------------------------------------------------------------------


def ids(member):
    """(cluster_id, member_id) as the unsigned integers v3 response headers carry."""
    return int(member.cluster_id, 16), int(member.id, 16)


def header(member, revision, raft_term=None):
    """The expected ResponseHeader dict (etcdctl -w json spelling: integers)."""
    cid, mid = ids(member)
    h = {"cluster_id": cid, "member_id": mid, "revision": revision}
    if raft_term is not None:
        h["raft_term"] = raft_term
    return h


# -- etcdctl --------------------------------------------------------------------------------


class Ctl3:
    """etcdctl in v3 mode against one member (or several: ``endpoints``)."""

    def __init__(self, member=None, endpoints=None):
        self.m = member
        self.endpoints = endpoints or [member.client_url]
        self.env = clean_env({"ETCDCTL_API": "3"})

    def argv(self, *args):
        return [ETCDCTL_BIN, "--endpoints", ",".join(self.endpoints), *args]

    def __call__(self, *args, input=None, timeout=20):
        p = subprocess.run(self.argv(*args), env=self.env, capture_output=True, timeout=timeout,
                           input=input.encode() if isinstance(input, str) else input)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, *args, **kw):
        rc, out, err = self(*args, **kw)
        assert rc == 0, (args, rc, out, err)
        return out

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, "-w", "json", **kw))


def ctl_error(err):
    """The last ``Error: ...`` line of an etcdctl stderr (without the newline)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert lines, f"no Error: line in {err!r}"
    return lines[-1]


# -- JSON gateway ---------------------------------------------------------------------------


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def unb64(s):
    return base64.b64decode(s)


class Gateway:
    """POST JSON to the member's grpc-gateway (``/v3/...``)."""

    def __init__(self, member):
        self.m = member

    def post(self, path, body=None, data=None, prefix="/v3", timeout=10):
        if data is None:
            data = json.dumps(body if body is not None else {})
        return requests.post(self.m.url(prefix + path), data=data, timeout=timeout,
                             headers={"Content-Type": "application/json"})

    def __call__(self, path, body=None, **kw):
        r = self.post(path, body, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json", r.headers
        return r.json()

    def header(self, revision, raft_term=None):
        """The expected header in gateway spelling (64-bit ints as decimal strings)."""
        return {k: str(v) for k, v in header(self.m, revision, raft_term).items()}


def gw_error(resp, status, message, code):
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"] == "application/json", resp.headers
    assert resp.json() == {"error": message, "message": message, "code": code}


# -- python3-etcd3 / grpcio -----------------------------------------------------------------


def client(member, timeout=10):
    import etcd3
    return etcd3.client("127.0.0.1", member.client_port, timeout=timeout)


def channel(member):
    import grpc
    return grpc.insecure_channel(f"127.0.0.1:{member.client_port}")


def raw_unary(member, method, body, timeout=10, chan=None):
    """A unary call with raw request bytes; returns (grpc.StatusCode, details, reply bytes)."""
    import grpc
    own = chan is None
    chan = chan or channel(member)
    try:
        call = chan.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            return grpc.StatusCode.OK, None, call(body, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code(), exc.details(), None
    finally:
        if own:
            chan.close()


def pb_varint_bytes(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(num, data):
    """A length-delimited protobuf field."""
    if isinstance(data, str):
        data = data.encode()
    return pb_varint_bytes(num << 3 | 2) + pb_varint_bytes(len(data)) + data


def pb_varint(num, n):
    return pb_varint_bytes(num << 3) + pb_varint_bytes(n)


def grpc_frame(msg, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(msg)) + msg


# -- raw HTTP/2 -----------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def grpc_request_headers(path, authority="127.0.0.1"):
    return b"".join(hpack_literal(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers")))


class H2:
    """A raw cleartext HTTP/2 connection: sends the preface and an empty SETTINGS."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.frames = []          # every frame read: (type, flags, stream, payload)
        self.eof = False
        self.sock.sendall(PREFACE + h2_frame(SETTINGS, 0, 0))

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _parse(self):
        while len(self.buf) >= 9:
            ln = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + ln:
                return
            f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                 self.buf[9:9 + ln])
            self.buf = self.buf[9 + ln:]
            self.frames.append(f)

    def read_until(self, pred, timeout=5):
        """Read frames until ``pred(frame)`` holds for one (returned), EOF (None) or the
        deadline (AssertionError)."""
        seen = len(self.frames)
        deadline = time.monotonic() + timeout
        while True:
            self._parse()
            for f in self.frames[seen:]:
                if pred(f):
                    return f
            seen = len(self.frames)
            if self.eof:
                return None
            left = deadline - time.monotonic()
            assert left > 0, f"no matching frame within {timeout}s; frames {self.frames}"
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                d = b""
            if not d:
                self.eof = True
            self.buf += d

    def wait_closed(self, timeout=5):
        """True once the peer closed the connection (EOF or reset) within the deadline."""
        try:
            self.read_until(lambda f: False, timeout)
        except AssertionError:
            return False
        return self.eof

    def ping(self, payload=b"cairnpng", timeout=5):
        """Send a PING; return True when its ACK arrives (the connection still serves)."""
        self.send(h2_frame(PING, 0, 0, payload))
        f = self.read_until(lambda f: f[0] == PING and f[1] & ACK and f[3] == payload, timeout)
        return f is not None


def goaway_code(frame):
    return int.from_bytes(frame[3][4:8], "big")


# -- nghttp ---------------------------------------------------------------------------------

NGHTTP = shutil.which("nghttp") or "/usr/bin/nghttp"


def nghttp_grpc(member, path, body, tmp_path, timeout=10):
    """Send ``body`` verbatim as the DATA of one gRPC request; return the decoded response
    header fields (headers and trailers) as a dict (last value wins)."""
    f = tmp_path / f"nghttp-body-{time.monotonic_ns()}"
    f.write_bytes(body)
    p = subprocess.run([NGHTTP, "-v", "-H", ":method: POST", "-H", "content-type: application/grpc",
                        "-H", "te: trailers", "-d", str(f), member.url(path)],
                       capture_output=True, timeout=timeout)
    fields = {}
    for line in p.stdout.decode(errors="replace").splitlines():
        line = line.strip()
        if "] recv (stream_id=" in line and ") " in line:
            rest = line.split(") ", 1)[1]
            if ": " in rest:
                name, value = rest.split(": ", 1)
                fields[name] = value
    return fields


# -- npm etcd3 ------------------------------------------------------------------------------

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def run_js(script, member_or_endpoints, *args, timeout=60):
    """Run ``js/<script>`` with node: argv = endpoints (comma-separated) then ``args``; the
    script prints one JSON document on stdout, returned parsed."""
    if hasattr(member_or_endpoints, "client_url"):
        eps = member_or_endpoints.client_url
    else:
        eps = ",".join(member_or_endpoints)
    p = subprocess.run(["node", os.path.join(JS_DIR, script), eps, *map(str, args)],
                       capture_output=True, timeout=timeout, cwd=JS_DIR, env=clean_env())
    assert p.returncode == 0, (script, p.returncode, p.stdout.decode(), p.stderr.decode())
    return json.loads(p.stdout)


def wait_key_gone(cli, key, timeout):
    """Wait (python-etcd3 client) until ``key`` is absent; return the elapsed seconds."""
    t0 = time.monotonic()
    wait_until(lambda: cli.get(key)[0] is None, timeout, interval=0.05,
               message=f"key {key!r} deleted")
    return time.monotonic() - t0


def holds(predicate, until, interval=0.1, message="condition"):
    """Poll ``predicate`` until the monotonic time ``until``; it must be true every time (the
    opposite of wait_until: a state that must last, e.g. leased keys before their TTL)."""
    n = 0
    while True:
        assert predicate(), f"{message} stopped holding after {n} checks"
        n += 1
        left = until - time.monotonic()
        if left <= 0:
            return n
        time.sleep(min(interval, left))
