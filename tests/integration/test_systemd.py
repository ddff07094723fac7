"""systemd integration: a member started the way a Type=notify unit starts it tells systemd
READY=1 once it serves, and STOPPING=1 when it begins a clean shutdown (etcd2.service is
Type=notify; spec etcd-cluster.md §2 step 4). The test plays systemd's part with its own
datagram socket."""
import socket

import pytest

from harness import wait_until


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    yield path, s
    s.close()


def _receive(sock, into):
    try:
        into.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    return into


@pytest.mark.cairn_only  # etcd 3.4 exits by re-raising SIGTERM (status -15), not with 0
def test_ready_and_stopping_reach_systemd(member_factory, notify_socket):
    path, sock = notify_socket
    m = member_factory(env={"NOTIFY_SOCKET": path})
    got = []
    wait_until(lambda: any("READY=1" in g for g in _receive(sock, got)), 10,
               message="READY=1 on NOTIFY_SOCKET")
    # READY comes once the member serves: a write works right away.
    assert m.put("/v2/keys/after-ready", data={"value": "1"}).status_code == 201
    assert m.stop() == 0
    wait_until(lambda: any("STOPPING=1" in g for g in _receive(sock, got)), 10,
               message="STOPPING=1 on NOTIFY_SOCKET")
    assert sum("READY=1" in g for g in got) == 1


def test_no_notify_socket_is_fine(member):
    # Outside systemd nothing is sent and nothing fails.
    assert member.get("/health").status_code == 200
