"""Bad input on the gRPC port: malformed protobuf, truncated gRPC frames, HTTP/2 protocol
errors, oversized messages, a stream reset mid-request. Each gets gRPC's or HTTP/2's error,
and the member keeps serving other clients (and, where HTTP/2 allows, the same connection)."""

import struct

import grpc
import pytest

from v3harness import (DATA, END_HEADERS, END_STREAM, GOAWAY, H2, HEADERS, RST_STREAM, client,
                       goaway_code, grpc_frame, grpc_request_headers, h2_frame, nghttp_grpc,
                       pb_field, raw_unary)

pytestmark = pytest.mark.v3

RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"


def still_serves(member, key="alive"):
    c = client(member)
    try:
        c.put(key, "yes")
        assert c.get(key)[0] == b"yes"
    finally:
        c.close()


def test_malformed_protobuf(member):
    for body in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a"):
        code, details, _ = raw_unary(member, RANGE, body)
        assert code == grpc.StatusCode.INTERNAL, (body, code, details)
        assert details.startswith("grpc: error unmarshalling request: "), details
    still_serves(member)


@pytest.mark.etcd_only
def test_malformed_protobuf_message_text(member):
    """grpc-go's text carries Go's protobuf error; cairn's decoder words it its own way."""
    assert raw_unary(member, RANGE, b"\xff\xff\xff")[:2] == (
        grpc.StatusCode.INTERNAL, "grpc: error unmarshalling request: unexpected EOF")


def test_valid_raw_request_and_empty_key(member):
    from etcd3 import etcdrpc
    code, details, reply = raw_unary(member, PUT, pb_field(1, "k") + pb_field(2, "v"))
    assert code == grpc.StatusCode.OK
    assert etcdrpc.PutResponse.FromString(reply).header.revision == 2
    code, details, reply = raw_unary(member, RANGE, pb_field(1, "k"))
    r = etcdrpc.RangeResponse.FromString(reply)
    assert (r.count, r.kvs[0].value, r.header.revision) == (1, b"v", 2)
    # an empty message is a valid RangeRequest without a key
    assert raw_unary(member, RANGE, b"")[:2] == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")


def test_unknown_method_and_service(member):
    assert raw_unary(member, "/etcdserverpb.KV/Nope", b"")[:2] == (
        grpc.StatusCode.UNIMPLEMENTED, "unknown method Nope for service etcdserverpb.KV")
    assert raw_unary(member, "/nope.Svc/X", b"")[:2] == (
        grpc.StatusCode.UNIMPLEMENTED, "unknown service nope.Svc")
    still_serves(member)


def test_oversized_messages(member):
    # above the gRPC receive limit (max-request-bytes 1.5 MiB + 512 KiB = 2 MiB)
    big = pb_field(1, "k") + pb_field(2, b"x" * (4 << 20))
    assert raw_unary(member, PUT, big)[:2] == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"grpc: received message larger than max ({len(big)} vs. 2097152)")
    # under the gRPC limit but above --max-request-bytes: etcd's own error
    mid = pb_field(1, "k") + pb_field(2, b"x" * (1536 * 1024 + 10))
    assert raw_unary(member, PUT, mid)[:2] == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large")
    # a Range of the same size is no write: it is answered
    code, _, _ = raw_unary(member, RANGE, pb_field(1, b"x" * (1536 * 1024 + 10)))
    assert code == grpc.StatusCode.OK
    still_serves(member)


def test_truncated_grpc_frame(member, tmp_path):
    """END_STREAM inside a length-prefixed message (declares 16 bytes, sends 2, or a prefix
    cut short): grpc-status 2 "unexpected EOF" as grpc-go answers, in a 200 response."""
    for body in (b"\x00\x00\x00\x00\x10\x0a\x01", b"\x00\x00\x00"):
        f = nghttp_grpc(member, RANGE, body, tmp_path)
        assert f.get(":status") == "200", f
        assert (f.get("grpc-status"), f.get("grpc-message")) == ("2", "unexpected EOF"), f
    still_serves(member)


def test_compressed_flag_without_encoding(member, tmp_path):
    """The compressed flag set with no grpc-encoding: INTERNAL (grpc doc/compression.md)."""
    f = nghttp_grpc(member, RANGE, grpc_frame(pb_field(1, "a"), compressed=True), tmp_path)
    assert f.get(":status") == "200", f
    assert (f.get("grpc-status"), f.get("grpc-message")) == (
        "13", "grpc: compressed flag set with identity or empty encoding"), f
    still_serves(member)


def _closed_with_protocol_error(h):
    assert h.wait_closed(5), f"connection still open; frames {h.frames}"
    assert not [f for f in h.frames if f[0] in (HEADERS, DATA)]
    for f in h.frames:
        if f[0] == GOAWAY:           # etcd just closes; a GOAWAY, if sent, names the error
            assert goaway_code(f) in (1, 6, 9), f   # PROTOCOL, FRAME_SIZE, COMPRESSION


def test_h2_garbage_after_preface(member):
    with H2(member.client_port) as h:
        h.send(b"\x00\x00\x04\xff garbage garbage garbage")
        _closed_with_protocol_error(h)
    still_serves(member)


def test_h2_bad_hpack_block(member):
    with H2(member.client_port) as h:
        h.send(h2_frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff\xff"))
        _closed_with_protocol_error(h)
    still_serves(member)


def test_h2_stream_reset_mid_request(member):
    """RST_STREAM(CANCEL) while the request message is half sent: nothing is answered on that
    stream, the connection stays usable (PING, then a full request on a new stream)."""
    from etcd3 import etcdrpc
    c = client(member)
    c.put("a", "1")
    c.close()
    with H2(member.client_port) as h:
        h.send(h2_frame(HEADERS, END_HEADERS, 1, grpc_request_headers(RANGE))
               + h2_frame(DATA, 0, 1, b"\x00\x00\x00\x00\x10\x0a"))
        h.send(h2_frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
        assert h.ping()
        h.send(h2_frame(HEADERS, END_HEADERS, 3, grpc_request_headers(RANGE))
               + h2_frame(DATA, END_STREAM, 3, grpc_frame(pb_field(1, "a"))))
        h.read_until(lambda f: f[2] == 3 and f[0] == HEADERS and f[1] & END_STREAM)
        assert not [f for f in h.frames if f[2] == 1 and f[0] in (HEADERS, DATA)]
        data = b"".join(f[3] for f in h.frames if f[2] == 3 and f[0] == DATA)
        assert data[0] == 0 and int.from_bytes(data[1:5], "big") == len(data) - 5
        r = etcdrpc.RangeResponse.FromString(data[5:])
        assert (r.count, r.kvs[0].key, r.kvs[0].value, r.header.revision) == (1, b"a", b"1", 2)
    still_serves(member)


def test_client_disconnect_mid_request(member):
    """The client vanishes with a half-sent message: the member carries on."""
    for _ in range(3):
        h = H2(member.client_port)
        h.send(h2_frame(HEADERS, END_HEADERS, 1, grpc_request_headers(PUT))
               + h2_frame(DATA, 0, 1, b"\x00\x00\x00\x10\x00" + b"\x0a"))
        h.close()
    still_serves(member)
    c = client(member)
    try:
        assert c.put("x", "y").header.revision == 3        # only still_serves wrote (rev 2)
    finally:
        c.close()
