"""src/h2 against an independent gRPC stack: python3-grpcio (grpc core) generic calls on raw
bytes against tests/h2/grpc_echo.c, which serves HTTP/1.1 and gRPC on one port as cairn will.

The binary is ``CAIRN_GRPC_ECHO_BIN`` (default ``<repo>/build/tests/grpc_echo``); the tests skip
when it is absent."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import urllib.request

import pytest

from harness import REPO, wait_until

grpc = pytest.importorskip("grpc")

# beside the cairn under test (build/ or build-asan/), unless named
_BUILD = os.path.dirname(os.environ["CAIRN_BIN"]) if os.environ.get("CAIRN_BIN") else str(REPO / "build")
ECHO_BIN = os.environ.get("CAIRN_GRPC_ECHO_BIN", os.path.join(_BUILD, "tests", "grpc_echo"))
SVC = "/cairn.test.Echo/"

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(ECHO_BIN) and os.access(ECHO_BIN, os.X_OK)),
    reason=f"{ECHO_BIN} not built (set CAIRN_GRPC_ECHO_BIN)")


class Echo:
    def __init__(self, *args):
        self.proc = subprocess.Popen([ECHO_BIN, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("port="), (line, self.proc.stderr.read())
        self.port = int(line.strip()[5:])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def unary(self, name):
        return self.channel.unary_unary(SVC + name)

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            assert r.status == 200
            return json.loads(r.read())

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=10)
            err = self.proc.stderr.read()
            assert rc == 0, err


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.stop()


def test_unary_echo(echo):
    assert echo.unary("Unary")(b"hello", timeout=5) == b"hello"
    assert echo.unary("Unary")(b"", timeout=5) == b""


def test_big_messages_both_ways(echo):
    big = bytes(range(256)) * 4096  # 1 MiB, past every 64 KiB window
    assert echo.unary("Unary")(big, timeout=10) == big


def test_server_streaming(echo):
    call = echo.channel.unary_stream(SVC + "ServerStream")
    assert list(call(struct.pack(">I", 50) + b"xy", timeout=5)) == [b"xy"] * 50


def test_bidi_many_messages(echo):
    call = echo.channel.stream_stream(SVC + "Bidi")
    msgs = [b"m%d" % i for i in range(5000)]
    assert list(call(iter(msgs), timeout=20)) == msgs


def test_bidi_big_messages(echo):
    call = echo.channel.stream_stream(SVC + "Bidi")
    msgs = [bytes([i]) * (256 * 1024) for i in range(40)]
    assert list(call(iter(msgs), timeout=30)) == msgs


def test_bidi_interleaved(echo):
    """A reply to each message before the next is sent: the server answers as messages
    arrive, not at the client's END_STREAM."""
    call = echo.channel.stream_stream(SVC + "Bidi")
    sent = []
    cond = threading.Condition()

    def gen():
        for i in range(20):
            with cond:
                sent.append(i)
                cond.notify()
            yield b"q%d" % i
            with cond:
                assert cond.wait_for(lambda: len(got) == i + 1, timeout=5)

    got = []
    for m in call(gen(), timeout=10):
        with cond:
            got.append(m)
            cond.notify()
    assert got == [b"q%d" % i for i in range(20)]


def test_answer_from_later_iteration(echo):
    assert echo.unary("Later")(b"soon", timeout=5) == b"soon"


def test_unknown_method_and_service(echo):
    with pytest.raises(grpc.RpcError) as ei:
        echo.unary("Nope")(b"", timeout=5)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert ei.value.details() == "unknown method Nope for service cairn.test.Echo"
    with pytest.raises(grpc.RpcError) as ei:
        echo.channel.unary_unary("/etcdserverpb.KV/Range")(b"", timeout=5)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert ei.value.details() == "unknown service etcdserverpb.KV"


def test_status_and_percent_encoded_message(echo):
    with pytest.raises(grpc.RpcError) as ei:
        echo.unary("Fail")("9:etcdserver: not leader \u00e9 100%".encode(), timeout=5)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ei.value.details() == "etcdserver: not leader \u00e9 100%"


def test_metadata_plain_and_bin(echo):
    md = [("token", "abc"), ("x-id-bin", b"\x00\xffz")]
    assert echo.unary("Meta")(b"token", metadata=md, timeout=5) == b"abc"
    assert echo.unary("Meta")(b"x-id-bin", metadata=md, timeout=5) == b"\x00\xffz"


def test_deadline_cancels_handler(echo):
    with pytest.raises(grpc.RpcError) as ei:
        echo.unary("Hang")(b"", timeout=0.3)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: echo.stats()["cancels"] == 1, timeout=5)
    assert echo.stats()["calls"] == 0


def test_client_cancel_reaches_handler(echo):
    fut = echo.unary("Hang").future(b"", timeout=30)
    wait_until(lambda: echo.stats()["calls"] == 1, timeout=5)
    assert fut.cancel()
    wait_until(lambda: echo.stats()["cancels"] == 1, timeout=5)
    assert echo.stats()["calls"] == 0


def test_message_over_limit():
    e = Echo("--max-recv", "1000")
    try:
        with pytest.raises(grpc.RpcError) as ei:
            e.unary("Unary")(b"x" * 1001, timeout=5)
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ei.value.details() == "grpc: received message larger than max (1001 vs. 1000)"
        assert e.unary("Unary")(b"x" * 1000, timeout=5) == b"x" * 1000
    finally:
        e.stop()


def test_gzip_request_is_unimplemented(echo):
    """No decompressor, as etcd's grpc-go server registers none."""
    with pytest.raises(grpc.RpcError) as ei:
        echo.unary("Unary")(b"x" * 1000, timeout=5, compression=grpc.Compression.Gzip)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert ei.value.details() == 'grpc: Decompressor is not installed for grpc-encoding "gzip"'


def test_http1_on_same_port(echo):
    assert echo.unary("Unary")(b"a", timeout=5) == b"a"
    with urllib.request.urlopen(f"http://127.0.0.1:{echo.port}/", timeout=5) as r:
        assert r.read() == b"ok"


def test_preface_one_byte_at_a_time(echo):
    """The sniff buffers a preface that trickles in; a SETTINGS frame comes back."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    with socket.create_connection(("127.0.0.1", echo.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in preface + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00":  # + empty SETTINGS
            s.sendall(bytes([b]))
        head = b""
        while len(head) < 9:
            chunk = s.recv(9 - len(head))
            assert chunk
            head += chunk
        assert head[3] == 4 and head[4] == 0  # SETTINGS, no ACK flag


def test_connection_loss_cancels(echo):
    """A client that vanishes mid-call: the handler gets on_cancel."""
    fut = echo.unary("Hang").future(b"", timeout=30)
    wait_until(lambda: echo.stats()["calls"] == 1, timeout=5)
    echo.channel.close()
    wait_until(lambda: echo.stats()["cancels"] == 1 and echo.stats()["conns"] == 0, timeout=5)
    assert fut.done()


def test_graceful_stop_lets_calls_finish(echo):
    assert echo.unary("Unary")(b"a", timeout=5) == b"a"
    fut = echo.unary("Later").future(b"wait late", timeout=10)  # answered after 300 ms
    wait_until(lambda: echo.stats()["calls"] == 1, timeout=5)
    echo.proc.send_signal(signal.SIGTERM)
    assert fut.result() == b"wait late"
    assert echo.proc.wait(timeout=10) == 0


@pytest.mark.skipif(not shutil.which("etcdctl"), reason="etcdctl not installed")
def test_grpc_go_client_gets_unimplemented(echo):
    """grpc-go (etcdctl 3.4) dials, sends, and reads the status as from etcd without the service."""
    env = dict(os.environ, ETCDCTL_API="3")
    r = subprocess.run(["etcdctl", f"--endpoints=127.0.0.1:{echo.port}", "--dial-timeout=5s",
                        "--command-timeout=5s", "get", "foo"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "Error: rpc error: code = Unimplemented desc = unknown service etcdserverpb.KV" in r.stderr
