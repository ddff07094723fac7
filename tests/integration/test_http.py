"""HTTP/1.1 transport behaviour, checked on raw sockets."""

import socket

import pytest

from harness import RawConn, error_bytes, http_request_bytes


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def put_bytes(key, value, extra=None):
    h = dict(FORM)
    h.update(extra or {})
    return http_request_bytes("PUT", f"/v2/keys/{key}", h, f"value={value}".encode())


def test_keep_alive_several_requests_one_connection(shared_member, ns):
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(put_bytes(f"{ns}/k", "1"))
        r1 = c.read_response()
        assert r1.status == 201
        i = r1.json()["node"]["modifiedIndex"]
        c.send(http_request_bytes("GET", f"/v2/keys/{ns}/k"))
        r2 = c.read_response()
        assert r2.status == 200
        assert r2.json()["node"] == {"key": f"/{ns}/k", "value": "1", "modifiedIndex": i,
                                     "createdIndex": i}
        c.send(http_request_bytes("GET", f"/v2/keys/{ns}/missing"))
        r3 = c.read_response()
        assert r3.status == 404
        assert r3.body == error_bytes(100, "Key not found", f"/{ns}/missing", i)
        c.send(http_request_bytes("HEAD", f"/v2/keys/{ns}/k"))
        r4 = c.read_response(head_request=True)
        assert r4.status == 200
        assert int(r4.header("Content-Length")) == len(r2.body)
        c.send(http_request_bytes("GET", "/version"))
        r5 = c.read_response()
        assert r5.status == 200
        assert b"etcdserver" in r5.body
        for r in (r1, r2, r3):
            assert (r.header("Connection") or "").lower() != "close"


def test_pipelining_three_requests_in_one_write(shared_member, ns):
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(put_bytes(f"{ns}/p", "first")
               + http_request_bytes("GET", f"/v2/keys/{ns}/p")
               + put_bytes(f"{ns}/p", "second"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert (r1.status, r2.status, r3.status) == (201, 200, 200)
    i = r1.json()["node"]["modifiedIndex"]
    assert r2.json() == {"action": "get", "node": {"key": f"/{ns}/p", "value": "first",
                                                    "modifiedIndex": i, "createdIndex": i}}
    assert r3.json()["node"] == {"key": f"/{ns}/p", "value": "second",
                                 "modifiedIndex": i + 1, "createdIndex": i + 1}
    assert r3.json()["prevNode"]["value"] == "first"


def test_pipelined_requests_split_across_writes(shared_member, ns):
    m = shared_member
    data = (put_bytes(f"{ns}/s", "a") + http_request_bytes("GET", f"/v2/keys/{ns}/s"))
    with RawConn(m.client_port) as c:
        # dribble the bytes in small pieces, splitting headers and bodies
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 201
    assert r2.json()["node"]["value"] == "a"


def test_connection_close_honoured(shared_member, ns):
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(http_request_bytes("GET", "/version", {"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200
        assert c.closed_by_peer(5)


def test_http10_request(shared_member):
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(b"GET /version HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert b'"etcdserver"' in r.body
        assert c.closed_by_peer(5)


def test_chunked_request_body(shared_member, ns):
    m = shared_member
    body = b"value=chunky"
    req = (f"PUT /v2/keys/{ns}/c HTTP/1.1\r\nHost: x\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode()
    req += b"%x\r\n%s\r\n" % (5, body[:5]) + b"%x\r\n%s\r\n" % (len(body) - 5, body[5:])
    req += b"0\r\n\r\n"
    with RawConn(m.client_port) as c:
        c.send(req)
        r = c.read_response()
        assert r.status == 201, r.body
        assert r.json()["node"]["value"] == "chunky"
        # the connection is still usable
        c.send(http_request_bytes("GET", f"/v2/keys/{ns}/c"))
        assert c.read_response().json()["node"]["value"] == "chunky"


def test_expect_100_continue(shared_member, ns):
    m = shared_member
    body = b"value=cont"
    head = (f"PUT /v2/keys/{ns}/e HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
    with RawConn(m.client_port) as c:
        c.send(head)
        status, _, _, _ = c.read_head()
        assert status == 100
        c.send(body)
        r = c.read_response()
        assert r.status == 201
        assert r.json()["node"]["value"] == "cont"


MALFORMED_LINES = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /version HTTP/9\r\n\r\n",
    b"GET /version HTTP/1.1 extra\r\n\r\n",
    b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
]


def _read_all(c, timeout=5):
    c.sock.settimeout(timeout)
    data = c.buf
    try:
        while True:
            x = c.sock.recv(65536)
            if not x:
                return data, True
            data += x
    except ConnectionResetError:
        return data, True
    except socket.timeout:
        return data, False


@pytest.mark.parametrize("line", MALFORMED_LINES)
def test_malformed_request_line_closes(shared_member, line):
    """Both: the connection is closed; if anything is answered it is a 400.
    (etcd 3.4's connection multiplexer closes some of these without a reply.)"""
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(line)
        data, closed = _read_all(c)
        assert closed
        if data:
            assert data.startswith(b"HTTP/1.1 400 ")


@pytest.mark.cairn_only
@pytest.mark.parametrize("line", MALFORMED_LINES)
def test_malformed_request_line_400_and_close(shared_member, line):
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(line)
        data, closed = _read_all(c)
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert closed


def test_malformed_header_line_400(shared_member):
    m = shared_member
    with RawConn(m.client_port) as c:
        c.send(b"GET /version HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert c.closed_by_peer(5)


def test_overlong_headers_431(shared_member):
    m = shared_member
    with RawConn(m.client_port) as c:
        big = b"X-Big: " + b"a" * (1100 * 1024) + b"\r\n"
        try:
            c.send(b"GET /version HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once the limit is hit
        r = c.read_response()
        assert r.status == 431
        assert c.closed_by_peer(5)


def test_server_survives_bad_clients(shared_member, ns):
    """After garbage and half-open connections the server still answers."""
    m = shared_member
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", m.client_port))
        s.sendall(b"GET /v2/keys/ HTTP/1.1\r\nHost")  # never finished
        socks.append(s)
    try:
        with RawConn(m.client_port) as c:
            c.send(put_bytes(f"{ns}/alive", "yes"))
            assert c.read_response().status == 201
    finally:
        for s in socks:
            s.close()
    # abrupt resets
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", m.client_port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(b"GET /v2/keys/?wait=true HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    assert m.get(f"/v2/keys/{ns}/alive").json()["node"]["value"] == "yes"


def test_post_too_large_default_limit(shared_member, ns):
    """Spec 2: url-encoded bodies over 10 MiB -> 210 "http: POST too large"."""
    m = shared_member
    body = b"value=" + b"a" * (10 * 1024 * 1024)
    r = _send_big(m, "PUT", f"/v2/keys/{ns}/big", body)
    assert r.status == 400
    assert r.body == error_bytes(210, "Invalid POST form", "http: POST too large", 0)
    assert r.header("X-Etcd-Index") == "0"


def test_body_just_under_limit_accepted(shared_member, ns):
    m = shared_member
    value = b"b" * (10 * 1024 * 1024 - len(b"value="))
    r = _send_big(m, "PUT", f"/v2/keys/{ns}/big", b"value=" + value)
    assert r.status == 201, r.body[:200]
    got = m.get(f"/v2/keys/{ns}/big").json()["node"]["value"]
    assert len(got) == len(value)
    m.delete(f"/v2/keys/{ns}/big")


@pytest.mark.cairn_only
def test_max_request_bytes_flag(member_factory):
    """Assumption: cairn applies --max-request-bytes to v2 request bodies
    (etcd 3.4 only applies it to gRPC)."""
    m = member_factory(extra_args=["--max-request-bytes", "4096"])
    r = _send_big(m, "PUT", "/v2/keys/big", b"value=" + b"a" * 8192)
    assert r.status == 400
    assert r.body == error_bytes(210, "Invalid POST form", "http: POST too large", 0)
    r = _send_big(m, "PUT", "/v2/keys/small", b"value=" + b"a" * 1000)
    assert r.status == 201


def _send_big(m, method, target, body):
    with RawConn(m.client_port, timeout=30) as c:
        head = (f"{method} {target} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            c.send(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # server answered early and closed; the answer is buffered
        return c.read_response()
