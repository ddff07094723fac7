"""The v3 Watch stream, against cairn and etcd 3.4 alike: etcdctl watch (replay with --rev and
--prev-kv, prefixes, a compacted start), python3-etcd3's watch, and raw WatchRequests on one
gRPC stream (assigned and given ids, duplicate ids, empty ranges, filters, cancel, progress
requests, fragments, a client that stops reading and then reads everything in order, a watcher
on a follower, a client resuming after a restart)."""

import queue
import subprocess
import threading
import time

import grpc
import pytest
from etcd3 import etcdrpc

import harness
from harness import wait_until
from v3harness import Ctl3, channel, client

pytestmark = pytest.mark.v3

NOPUT = etcdrpc.WatchCreateRequest.NOPUT
NODELETE = etcdrpc.WatchCreateRequest.NODELETE


def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _top_fields(data):
    """{field number: last varint value} of a message's top-level varint fields."""
    out, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            out[num], i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            i += n
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise ValueError("bad wire type")
    return out


def _read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


class Resp:
    """A WatchResponse with its fragment flag."""

    def __init__(self, raw):
        self.msg = etcdrpc.WatchResponse.FromString(raw)
        self.fragment = bool(_top_fields(raw).get(7, 0))

    def __getattr__(self, name):
        return getattr(self.msg, name)

    def __repr__(self):
        return f"Resp(fragment={self.fragment}, {self.msg})"


class Stream:
    """One Watch call: send() requests, next() responses (with a deadline). Requests and
    responses are etcd 3.4's, built on python3-etcd3's older messages (they lack watch_id and
    fragment, added here as raw fields: WatchCreateRequest 7 and 8, WatchResponse 7)."""

    def __init__(self, member, chan=None):
        self.chan = chan or channel(member)
        self.own = chan is None
        self.reqs = queue.Queue()
        self.resps = queue.Queue()
        call = self.chan.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=None,
                                       response_deserializer=None)
        self.call = call(iter(self.reqs.get, None))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            for raw in self.call:
                self.resps.put(Resp(raw))
        except grpc.RpcError as e:
            self.resps.put(e)

    def _send(self, field, msg):
        self.reqs.put(bytes([field << 3 | 2]) + _varint(len(msg)) + msg)

    def create(self, key, range_end=b"", watch_id=0, fragment=False, **kw):
        m = etcdrpc.WatchCreateRequest(key=key, range_end=range_end, **kw).SerializeToString()
        if watch_id:
            m += bytes([7 << 3]) + _varint(watch_id)
        if fragment:
            m += bytes([8 << 3, 1])
        self._send(1, m)

    def cancel(self, wid):
        self._send(2, etcdrpc.WatchCancelRequest(watch_id=wid).SerializeToString())

    def progress(self):
        self._send(3, b"")

    def next(self, timeout=5):
        r = self.resps.get(timeout=timeout)
        if isinstance(r, Exception):
            raise r
        return r

    def none_within(self, seconds):
        try:
            r = self.resps.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected response {r}")

    def close(self):
        self.call.cancel()
        self.reqs.put(None)
        if self.own:
            self.chan.close()


def evs(resp):
    return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in resp.events]


def collect(stream, n, timeout=10):
    """Events of the next responses until n events came."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        r = stream.next(timeout=max(0.1, deadline - time.monotonic()))
        out += evs(r)
    return out


@pytest.fixture
def ws(member):
    s = Stream(member)
    yield s
    s.close()


def etcdctl_watch(member, *args):
    p = subprocess.Popen(Ctl3(member).argv("watch", *args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0,
                         env=harness.clean_env({"ETCDCTL_API": "3"}))
    p.pending = b""
    return p


def read_lines(proc, n, timeout=10):
    """n lines of a running etcdctl watch (it runs until killed), with a deadline."""
    import os
    import select
    deadline = time.monotonic() + timeout
    while proc.pending.count(b"\n") < n:
        left = deadline - time.monotonic()
        r, _, _ = select.select([proc.stdout], [], [], max(0, left))
        if not r:
            raise AssertionError(f"etcdctl watch printed only {proc.pending!r}")
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"etcdctl watch ended after {proc.pending!r}: "
                                 f"{proc.stderr.read()!r}")
        proc.pending += chunk
    lines = proc.pending.split(b"\n")
    out, proc.pending = lines[:n], b"\n".join(lines[n:])
    return [x.decode() + "\n" for x in out]


def test_etcdctl_watch_replays_with_prev_kv(member):
    c = client(member)
    try:
        r1 = c.put("a", "1").header.revision
        c.put("a", "2")
        c.delete("a")
    finally:
        c.close()
    proc = etcdctl_watch(member, "a", "--rev", str(r1), "--prev-kv")
    try:
        lines = read_lines(proc, 12)
    finally:
        proc.kill()
        proc.wait(5)
    # etcdctl prints the type, then prev_kv's key and value (when any), then the kv's
    assert lines == ["PUT\n", "a\n", "1\n",
                     "PUT\n", "a\n", "1\n", "a\n", "2\n",
                     "DELETE\n", "a\n", "2\n", "a\n"]


def test_etcdctl_watch_prefix_json_and_compacted_start(member):
    import json
    c = client(member)
    try:
        base = c.put("other", "0").header.revision
        proc = etcdctl_watch(member, "--prefix", "b", "--rev", str(base + 1), "-w", "json")
        try:
            r1 = c.put("b1", "x").header.revision
            c.put("c", "not watched")
            r2 = c.put("b2", "y").header.revision
            got = []
            while len(got) < 2:       # one line per response: a replay may batch both
                resp = json.loads(read_lines(proc, 1)[0])
                assert (resp["Canceled"], resp["Created"], resp["CompactRevision"]) == \
                    (False, False, 0)
                assert resp["Header"]["revision"] >= r1
                got += [(e["kv"]["key"], e["kv"]["value"], e["kv"]["mod_revision"],
                         e["kv"]["version"], e.get("type", "PUT")) for e in resp["Events"]]
            assert got == [("YjE=", "eA==", r1, 1, "PUT"), ("YjI=", "eQ==", r2, 1, "PUT")]
        finally:
            proc.kill()
            proc.wait(5)
        c.compact(r2)
    finally:
        c.close()
    code, out, err = Ctl3(member)("watch", "b1", "--rev", str(r1), timeout=10)
    assert code == 5
    assert "etcdserver: mvcc: required revision has been compacted" in out + err


def test_python_etcd3_watch_prefix(member):
    import etcd3.events as E
    c = client(member)
    try:
        base = c.put("q/x", "other").header.revision
        events, cancel = c.watch_prefix("p/", start_revision=base + 1)
        r1 = c.put("p/1", "one").header.revision
        c.put("q/y", "other")
        r2 = c.put("p/2", "two").header.revision
        c.delete("p/1")
        got = []
        for e in events:
            got.append((type(e), e.key, e.value, e.mod_revision))
            if len(got) == 3:
                break
        cancel()
        assert got == [(E.PutEvent, b"p/1", b"one", r1), (E.PutEvent, b"p/2", b"two", r2),
                       (E.DeleteEvent, b"p/1", b"", r2 + 1)]
    finally:
        c.close()


def test_ids_created_cancel_progress(ws, member):
    c = client(member)
    try:
        rev = c.put("k", "0").header.revision
        ws.create(b"k")
        r = ws.next()
        assert (r.watch_id, r.created, r.canceled, r.header.revision) == (0, True, False, rev)
        assert r.header.member_id == int(member.id, 16)
        ws.create(b"k", watch_id=7)
        r = ws.next()
        assert (r.watch_id, r.created, r.canceled) == (7, True, False)
        ws.create(b"k")                      # the next free id after 0
        assert ws.next().watch_id == 1
        ws.create(b"k", watch_id=7)
        r = ws.next()
        assert (r.watch_id, r.created, r.canceled, r.cancel_reason) == (
            -1, True, True, "mvcc: duplicate watch ID provided on the WatchStream")
        ws.create(b"z", range_end=b"a")
        r = ws.next()
        assert (r.watch_id, r.created, r.canceled, r.cancel_reason) == (
            -1, True, True, "mvcc: watcher range is empty")
        r2 = c.put("k", "1").header.revision
        got = sorted((ws.next().watch_id, None) for _ in range(3))
        assert [g[0] for g in got] == [0, 1, 7]
        ws.cancel(7)
        r = ws.next()
        assert (r.watch_id, r.canceled, r.created, r.header.revision) == (7, True, False, r2)
        ws.cancel(99)                        # unknown: no answer
        ws.progress()
        r = ws.next()
        assert (r.watch_id, r.header.revision, list(r.events), r.created, r.canceled) == \
            (-1, r2, [], False, False)
        c.put("k", "2")
        assert sorted(ws.next().watch_id for _ in range(2)) == [0, 1]
        ws.none_within(0.3)
    finally:
        c.close()


def test_ranges_filters_prev_kv(ws, member):
    c = client(member)
    try:
        base = c.put("r/0", "x").header.revision
        ws.create(b"r/", range_end=b"r0", start_revision=base + 1, watch_id=1)
        ws.create(b"r/", range_end=b"\0", filters=[NOPUT], prev_kv=True, watch_id=2)
        ws.create(b"", range_end=b"\0", filters=[NODELETE], watch_id=3)
        assert sorted(ws.next().watch_id for _ in range(3)) == [1, 2, 3]
        r1 = c.put("r/1", "a").header.revision
        r2 = c.put("s", "b").header.revision
        c.delete("r/0")
        by = {1: [], 2: [], 3: []}
        deadline = time.monotonic() + 10
        while len(by[1]) < 2 or len(by[2]) < 1 or len(by[3]) < 2:
            r = ws.next(timeout=max(0.1, deadline - time.monotonic()))
            by[r.watch_id].append(r)
        assert [evs(r) for r in by[1]] == [[(0, b"r/1", b"a", r1)], [(1, b"r/0", b"", r2 + 1)]]
        (d,) = by[2]
        assert evs(d) == [(1, b"r/0", b"", r2 + 1)]
        assert (d.events[0].prev_kv.key, d.events[0].prev_kv.value,
                d.events[0].prev_kv.mod_revision) == (b"r/0", b"x", base)
        assert [evs(r) for r in by[3]] == [[(0, b"r/1", b"a", r1)], [(0, b"s", b"b", r2)]]
        assert not by[3][0].events[0].HasField("prev_kv")
    finally:
        c.close()


def test_replay_from_history_then_live_exactly_once(ws, member):
    c = client(member)
    try:
        first = c.put("h", "0").header.revision
        for i in range(1, 50):
            c.put("h", str(i))
        ws.create(b"h", start_revision=first)
        created = ws.next()
        assert created.created and created.header.revision == first + 49
        got = collect(ws, 50)
        assert got == [(0, b"h", str(i).encode(), first + i) for i in range(50)]
        c.put("h", "live")
        assert collect(ws, 1) == [(0, b"h", b"live", first + 50)]
        ws.none_within(0.3)
    finally:
        c.close()


def test_compacted_start_is_canceled_with_compact_revision(ws, member):
    c = client(member)
    try:
        r1 = c.put("c", "1").header.revision
        r2 = c.put("c", "2").header.revision
        c.compact(r2)
        ws.create(b"c", start_revision=r1, watch_id=4)
        r = ws.next()
        assert (r.watch_id, r.created, r.canceled) == (4, True, False)
        r = ws.next()
        assert (r.watch_id, r.canceled, r.compact_revision, list(r.events)) == (4, True, r2, [])
        assert r.header.revision == 0
        ws.create(b"c", start_revision=r2, watch_id=5)   # the compaction point itself is kept
        assert ws.next().created
        assert collect(ws, 1) == [(0, b"c", b"2", r2)]
    finally:
        c.close()


def test_fragmented_response(member_factory):
    """One revision whose events are larger than --max-request-bytes + 512 KiB (etcd's limit
    for a watch response: a range delete of 12 keys, each event with its 60 kB prev_kv) comes
    in fragments when the watch asked."""
    m = member_factory(extra_args=["--max-request-bytes", "65536"])
    s = Stream(m)
    c = client(m)
    try:
        for i in range(12):
            c.put(f"f/{i:02d}", "v" * 60000)
        s.create(b"f/", range_end=b"f0", fragment=True, prev_kv=True, watch_id=1)
        s.create(b"f/", range_end=b"f0", prev_kv=True, watch_id=2)
        assert s.next().created and s.next().created
        rev = c.delete_prefix("f/").header.revision
        parts = {1: [], 2: []}
        while not parts[1] or parts[1][-1].fragment or not parts[2]:
            r = s.next()
            parts[r.watch_id].append(r)
        p1 = parts[1]
        assert len(p1) > 1 and all(p.fragment for p in p1[:-1]) and not p1[-1].fragment
        assert [e.kv.key for p in p1 for e in p.events] == [f"f/{i:02d}".encode()
                                                           for i in range(12)]
        assert all(e.prev_kv.value == b"v" * 60000 for p in p1 for e in p.events)
        assert {p.header.revision for p in p1} == {rev}
        # without fragment: one response with all 12
        assert [(len(p.events), p.fragment) for p in parts[2]] == [(12, False)]
    finally:
        c.close()
        s.close()


def test_slow_reader_gets_every_event_in_order(member):
    """A stream whose client stops reading while 3000 writes of 2 KiB go by: the server does
    not buffer without bound, and once the client reads, every revision arrives exactly once,
    in order."""
    from v3harness import H2, grpc_frame, grpc_request_headers, h2_frame, pb_field, pb_varint
    c = client(member)
    try:
        start = c.put("slow", "start").header.revision
        # a raw HTTP/2 connection that opens a Watch and then does not read
        create = pb_field(1, pb_field(1, b"slow") + pb_varint(3, start))
        h = H2(member.client_port)
        h.send(grpc_request_headers("/etcdserverpb.Watch/Watch"))
        h.send(h2_frame(0, 0, 1, grpc_frame(create)))
        value = "x" * 2048
        for i in range(3000):
            c.put("slow", value)
        h.close()
    finally:
        c.close()
    # the member is healthy and a new watcher from the same start gets all 3001 revisions
    s = Stream(member)
    try:
        s.create(b"slow", start_revision=start)
        assert s.next().created
        got = collect(s, 3001, timeout=30)
        assert [e[3] for e in got] == list(range(start, start + 3001))
    finally:
        s.close()


def test_watch_on_follower_and_resume_after_restart(cluster_factory):
    cl = cluster_factory(3)
    leader = cl.wait_leader()
    follower = cl.followers(leader)[0]
    s = Stream(follower)
    c = client(leader)
    try:
        s.create(b"fw", watch_id=1)
        r = s.next()
        assert r.created and r.header.member_id == int(follower.id, 16)
        revs = [c.put("fw", str(i)).header.revision for i in range(5)]
        assert [e[3] for e in collect(s, 5)] == revs
        s.close()
        cl.kill9(follower)
        more = [c.put("fw", f"m{i}").header.revision for i in range(5)]
        cl.restart(follower)
        s = Stream(follower)
        s.create(b"fw", start_revision=revs[-1] + 1, watch_id=1)
        assert s.next().created
        got = collect(s, 5, timeout=20)
        assert got == [(0, b"fw", f"m{i}".encode(), more[i]) for i in range(5)]
        s.none_within(0.3)
    finally:
        c.close()
        s.close()
