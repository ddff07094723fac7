"""Process and HTTP helpers for cairn's black-box tests.

Everything here talks to real server processes over 127.0.0.1.  The target
is cairn (``CAIRN_BIN``, default ``<repo>/build/cairn``) unless
``CAIRN_TARGET=etcd``, in which case ``/usr/bin/etcd`` (3.4, with
``--enable-v2``) is started with the same flags; that mode exists to check
the suite's expectations against the reference implementation.
"""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
TARGET = os.environ.get("CAIRN_TARGET", "cairn").strip().lower() or "cairn"
IS_ETCD = TARGET == "etcd"
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
ETCDCTL_BIN = os.environ.get("ETCDCTL_BIN", "/usr/bin/etcdctl")


def server_binary():
    if IS_ETCD:
        return ETCD_BIN
    return os.environ.get("CAIRN_BIN", str(REPO / "build" / "cairn"))


# Flags that only the reference needs to behave like cairn by default.
TARGET_ARGS = ["--enable-v2"] if IS_ETCD else []

# Exit status after SIGTERM: cairn exits 0 (spec etcd-cluster.md 2, step 5);
# etcd 3.4 re-raises the signal after its cleanup, so Popen reports -15.
CLEAN_EXIT_CODE = -signal.SIGTERM if IS_ETCD else 0

START_TIMEOUT = float(os.environ.get("CAIRN_START_TIMEOUT", "10"))


class TimeoutExpired(AssertionError):
    pass


def wait_until(predicate, timeout=10.0, interval=0.02, message=None):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Exceptions raised by the predicate count as "not yet" until the deadline;
    the last one is reported when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutExpired(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def _ephemeral_range():
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
_PORT_LO, _PORT_HI = 20000, min(_EPHEMERAL[0], 32768) - 1
_port_rng = random.Random(os.getpid() ^ int(time.time() * 1000))
_handed_out = set()


def free_port():
    """A free TCP port on 127.0.0.1, below the kernel's ephemeral range: a port the test
    reserves for a member that starts later cannot be taken meanwhile by an outgoing
    connection (members dial each other all the time), which a port from bind(0) can."""
    for _ in range(2000):
        port = _port_rng.randrange(_PORT_LO, _PORT_HI)
        if port in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        if len(_handed_out) > 5000:
            _handed_out.clear()
        return port
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def clean_env(extra=None):
    """The environment for a child: ours minus every ETCD_*/ETCDCTL_* variable."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ETCD_") and not k.startswith("ETCDCTL_")}
    if extra:
        env.update(extra)
    return env


def sha1_u64(data: bytes) -> int:
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")


def member_id(peer_urls, token="etcd-cluster"):
    """Static-bootstrap member id (etcd-cluster.md 3.1), as etcd prints it."""
    return format(sha1_u64(("".join(sorted(peer_urls)) + token).encode()), "x")


def cluster_id(member_ids_hex):
    ids = sorted(int(h, 16) for h in member_ids_hex)
    return format(sha1_u64(b"".join(i.to_bytes(8, "big") for i in ids)), "x")


class Member:
    """One server process on 127.0.0.1 with its own data dir and ports."""

    def __init__(self, workdir, name="m1", extra_args=(), env=None, data_dir=None,
                 client_port=None, peer_port=None, token=None, binary=None,
                 use_default_flags=True, overrides=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.data_dir = Path(data_dir) if data_dir else self.workdir / f"{name}.data"
        self.client_port = client_port
        self.peer_port = peer_port
        self.token = token
        self.binary = binary or server_binary()
        self.use_default_flags = use_default_flags
        # {"--flag": value or None}: replace (or with None drop) a default flag;
        # values may be callables taking the member (evaluated at each start).
        self.overrides = dict(overrides or {})
        self.proc = None
        self.starts = 0
        self.exit_code = None

    # -- addresses ---------------------------------------------------------
    @property
    def client_url(self):
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    def url(self, path=""):
        if path and not path.startswith("/"):
            path = "/" + path
        return self.client_url + path

    def key_url(self, key=""):
        return self.url("/v2/keys" + ("" if not key else ("/" + key.lstrip("/"))))

    @property
    def id(self):
        return member_id([self.peer_url], self.token or "etcd-cluster")

    @property
    def cluster_id(self):
        return cluster_id([self.id])

    # -- process control --------------------------------------------------
    def args(self):
        a = [self.binary]
        if self.use_default_flags:
            flags = [
                ("--name", self.name),
                ("--data-dir", str(self.data_dir)),
                ("--listen-client-urls", self.client_url),
                ("--advertise-client-urls", self.client_url),
                ("--listen-peer-urls", self.peer_url),
                ("--initial-advertise-peer-urls", self.peer_url),
                ("--initial-cluster", f"{self.name}={self.peer_url}"),
            ]
            if self.token:
                flags.append(("--initial-cluster-token", self.token))
            for flag, value in flags:
                if flag in self.overrides:
                    value = self.overrides[flag]
                    if callable(value):
                        value = value(self)
                    if value is None:
                        continue
                a += [flag, value]
        a += TARGET_ARGS
        a += self.extra_args
        return a

    @property
    def stdout_path(self):
        return self.workdir / f"{self.name}.stdout"

    @property
    def stderr_path(self):
        return self.workdir / f"{self.name}.stderr"

    def _spawn(self):
        self.starts += 1
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        for f in (out, err):
            f.write(f"\n=== start #{self.starts}: {' '.join(self.args())}\n".encode())
            f.flush()
        try:
            self.proc = subprocess.Popen(
                self.args(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=clean_env(self.env), cwd=str(self.workdir))
        finally:
            out.close()
            err.close()
        self.exit_code = None

    def start(self, wait=True, timeout=START_TIMEOUT):
        fixed = self.client_port is not None and self.peer_port is not None
        attempts = 1 if fixed else 5
        for attempt in range(attempts):
            if not fixed:
                self.client_port = free_port()
                self.peer_port = free_port()
                while self.peer_port == self.client_port:
                    self.peer_port = free_port()
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except ProcessDied:
                if attempt + 1 < attempts and "address already in use" in self.log_text().lower():
                    continue
                raise
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait until the member serves /version and a cluster version is agreed."""
        def ready():
            if self.proc.poll() is not None:
                raise ProcessDied(self._died_message())
            try:
                r = requests.get(self.url("/version"), timeout=1)
            except requests.RequestException:
                return False
            if r.status_code != 200:
                return False
            return r.json().get("etcdcluster") not in (None, "", "not_decided")

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    break
            except ProcessDied:
                raise
            if time.monotonic() >= deadline:
                raise TimeoutExpired(
                    f"member {self.name} not ready after {timeout}s\n{self.log_tail()}")
            time.sleep(0.02)
        # A leader is known and a quorum read works.
        wait_until(lambda: requests.get(self.url("/health"), timeout=2).status_code == 200,
                   timeout=max(1.0, deadline - time.monotonic()),
                   message=f"/health of {self.name}")
        return self

    def _died_message(self):
        return (f"member {self.name} exited with {self.proc.returncode} during startup\n"
                f"{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGTERM, wait; return the exit code."""
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"member {self.name} ignored SIGTERM for {timeout}s")
        self.exit_code = self.proc.returncode
        return self.exit_code

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None:
            self.exit_code = self.proc.returncode
        return self.exit_code

    def restart(self, wait=True, timeout=START_TIMEOUT, extra_args=None):
        if self.alive():
            self.stop()
        if extra_args is not None:
            self.extra_args = list(extra_args)
        self._spawn()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_exit(self, timeout=10):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"member {self.name} still running after {timeout}s")
        self.exit_code = self.proc.returncode
        return self.exit_code

    def cleanup(self):
        """Teardown: end the process we started (by PID) if it still runs. Under a sanitizer
        build (CAIRN_SANITIZED=1) it gets SIGTERM first so LeakSanitizer runs at exit."""
        if self.proc is not None and self.proc.poll() is None:
            if os.environ.get("CAIRN_SANITIZED"):
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(30)
                except Exception:  # noqa: BLE001
                    pass
            try:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGKILL)
                    self.proc.wait(10)
            except Exception:  # noqa: BLE001
                pass

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                         "runtime error:", "WARNING: ThreadSanitizer")

    def sanitizer_reports(self):
        """Lines of the member's log that come from ASan, LSan or UBSan."""
        return [line for line in self.log_text().splitlines()
                if any(mark in line for mark in self.SANITIZER_MARKERS)]

    def log_text(self):
        text = ""
        for p in (self.stderr_path, self.stdout_path):
            if p.exists():
                text += p.read_text(errors="replace")
        return text

    def log_tail(self, n=40):
        lines = self.log_text().splitlines()
        return "\n".join(lines[-n:])

    # -- HTTP conveniences -------------------------------------------------
    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.get(self.url(path), **kw)

    def put(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.put(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.post(self.url(path), **kw)

    def delete(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.delete(self.url(path), **kw)

    def head(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.head(self.url(path), **kw)

    def index(self):
        """Current store index (X-Etcd-Index of a GET of the root)."""
        r = self.get("/v2/keys/")
        assert r.status_code == 200, r.text
        return int(r.headers["X-Etcd-Index"])

    def set(self, key, value, **params):
        data = {"value": value}
        data.update(params)
        r = self.put("/v2/keys/" + key.lstrip("/"), data=data)
        assert r.status_code in (200, 201), r.text
        return r.json()


class ProcessDied(AssertionError):
    pass


# --------------------------------------------------------------------------
# Raw HTTP over sockets (pipelining, malformed requests, chunked framing).

class RawResponse:
    def __init__(self, status, reason, headers, body, raw_head, chunks=None):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw_head = raw_head
        self.chunks = chunks

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def json(self):
        return json.loads(self.body)


class RawConn:
    """A plain TCP connection with a tiny HTTP/1.1 response reader."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data: bytes):
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

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by peer")
        self.buf += data
        return data

    def read_until(self, marker: bytes):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        return status, reason, headers, head

    def read_chunk(self):
        """Read one chunk of a chunked body; b"" for the last chunk."""
        size_line = self.read_until(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            # trailers (none expected) end with an empty line
            self.read_until(b"\r\n")
            return b""
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n"
        return data

    def read_response(self, head_request=False):
        status, reason, headers, raw = self.read_head()
        hd = {k.lower(): v for k, v in headers}
        if head_request or status in (204, 304) or 100 <= status < 200:
            return RawResponse(status, reason, headers, b"", raw)
        if hd.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                c = self.read_chunk()
                if c == b"":
                    break
                chunks.append(c)
            return RawResponse(status, reason, headers, b"".join(chunks), raw, chunks)
        if "content-length" in hd:
            body = self.read_exact(int(hd["content-length"]))
            return RawResponse(status, reason, headers, body, raw)
        # read to EOF
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        body, self.buf = self.buf, b""
        return RawResponse(status, reason, headers, body, raw)

    def closed_by_peer(self, timeout=5):
        """True if the peer closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)


def http_request_bytes(method, path, headers=None, body=b"", host="127.0.0.1"):
    hdrs = {"Host": host}
    if body or method in ("PUT", "POST"):
        hdrs["Content-Length"] = str(len(body))
    if headers:
        hdrs.update(headers)
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------
# Assertions shared by the test files.

def assert_json(resp, status, expected=None, *, index=None):
    """Check status, Content-Type, trailing newline and (optionally) the exact body."""
    assert resp.status_code == status, f"status {resp.status_code} != {status}: {resp.text!r}"
    assert resp.headers.get("Content-Type") == "application/json", resp.headers
    body = resp.json()
    if expected is not None:
        assert body == expected
    if index is not None:
        assert resp.headers["X-Etcd-Index"] == str(index), resp.headers
    return body


def assert_error(resp, status, code, message, cause, index):
    """An etcd keys-API error: exact body bytes modulo key order, header index."""
    assert resp.status_code == status, f"status {resp.status_code} != {status}: {resp.text!r}"
    assert resp.headers.get("Content-Type") == "application/json"
    expected = {"errorCode": code, "message": message, "index": index}
    if cause is not None:
        expected["cause"] = cause
    assert resp.json() == expected
    assert resp.content.endswith(b"}\n")
    assert resp.headers["X-Etcd-Index"] == str(index)
    assert "X-Raft-Index" not in resp.headers
    assert "X-Raft-Term" not in resp.headers
    return resp.json()


def error_bytes(code, message, cause, index):
    """The exact bytes etcd writes for a keys error (fields in Go struct order)."""
    d = {"errorCode": code, "message": message}
    if cause:
        d["cause"] = cause
    d["index"] = index
    return (json.dumps(d, separators=(",", ":")) + "\n").encode()


def metric_value(text, name, labels=None):
    """Sum of samples of ``name`` whose labels include ``labels`` (dict)."""
    total = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if "{" in series:
            mname, _, rest = series.partition("{")
            lbl = {}
            for part in rest.rstrip("}").split(","):
                if not part:
                    continue
                k, _, v = part.partition("=")
                lbl[k] = v.strip('"')
        else:
            mname, lbl = series, {}
        if mname != name:
            continue
        if labels and any(lbl.get(k) != v for k, v in labels.items()):
            continue
        total = (total or 0.0) + float(value)
    return total


def send_verbatim(method, url, allow_redirects=False, timeout=10, **kw):
    """Send a request whose URL is used byte-for-byte (requests would otherwise
    re-quote bad escapes and keep dot segments only by accident)."""
    prepared = requests.Request(method, url, **kw).prepare()
    prepared.url = url
    with requests.Session() as s:
        return s.send(prepared, allow_redirects=allow_redirects, timeout=timeout)


def raw_http(port, method, target, headers=None, body=b"", timeout=10):
    """One request on a fresh connection, request target sent byte-for-byte."""
    h = {"Connection": "close"}
    h.update(headers or {})
    with RawConn(port, timeout=timeout) as c:
        c.send(http_request_bytes(method, target, h, body))
        return c.read_response(head_request=(method == "HEAD"))


class Watcher:
    """A v2 watch (GET ...?wait=true) on a raw socket, read by a background thread.

    ``headers_event`` is set once the status line and headers have arrived,
    ``events`` collects each JSON line of the body, ``ended`` is set when the
    response (or the connection) ends.
    """

    def __init__(self, member, key, **params):
        import threading
        from urllib.parse import urlencode, quote
        params.setdefault("wait", "true")
        self.target = "/v2/keys/" + quote(key.lstrip("/")) + "?" + urlencode(params)
        self.conn = RawConn(member.client_port, timeout=60)
        self.status = None
        self.headers = None
        self.chunked = None
        self.events = []
        self.raw_lines = []
        self.error = None
        self._lock = threading.Lock()
        self.headers_event = threading.Event()
        self.ended = threading.Event()
        self.conn.send(http_request_bytes("GET", self.target))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            status, _, headers, _ = self.conn.read_head()
            self.status, self.headers = status, headers
            hd = {k.lower(): v for k, v in headers}
            self.chunked = hd.get("transfer-encoding", "").lower() == "chunked"
            self.headers_event.set()
            pending = b""
            if not self.chunked:
                n = int(hd.get("content-length", "0"))
                body = self.conn.read_exact(n) if n else b""
                self._lines(body)
                return
            while True:
                chunk = self.conn.read_chunk()
                if chunk == b"":
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self._lines(line + b"\n")
            if pending:
                self._lines(pending)
        except (EOFError, OSError) as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001
            self.error = exc
        finally:
            self.headers_event.set()
            self.ended.set()

    def _lines(self, data):
        for line in data.split(b"\n"):
            if line.strip():
                with self._lock:
                    self.raw_lines.append(line + b"\n")
                    self.events.append(json.loads(line))

    def header(self, name):
        for k, v in self.headers or []:
            if k.lower() == name.lower():
                return v
        return None

    def wait_headers(self, timeout=5):
        assert self.headers_event.wait(timeout), "watch response headers did not arrive"
        assert self.status is not None, f"watch failed before headers: {self.error!r}"
        return self

    def wait_events(self, n, timeout=10):
        wait_until(lambda: len(self.events) >= n, timeout,
                   message=f"{n} watch event(s) on {self.target} (have {self.events})")
        with self._lock:
            return list(self.events)

    def wait_end(self, timeout=10):
        assert self.ended.wait(timeout), f"watch on {self.target} did not end"
        return list(self.events)

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()
        self.thread.join(5)


def watch_registered(member, count, timeout=5):
    """Wait until /v2/stats/store reports ``count`` watchers."""
    wait_until(lambda: requests.get(member.url("/v2/stats/store"), timeout=2)
               .json()["watchers"] == count, timeout,
               message=f"{count} watcher(s) registered")
