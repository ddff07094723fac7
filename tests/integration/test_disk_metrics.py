"""Disk latency histograms on /metrics (etcd_disk_wal_fsync_duration_seconds,
etcd_disk_backend_commit_duration_seconds) and the preallocated WAL segments
behind them."""

import re

import pytest
import requests

from harness import IS_ETCD, metric_value, wait_until

# etcd's buckets: prometheus.ExponentialBuckets(0.001, 2, 14)
BOUNDS = [0.001 * 2 ** i for i in range(14)]
SEGMENT_SIZE = 64 * 1024 * 1024


def histogram(text, name):
    """The histogram ``name`` as {"buckets": [(le, cumulative count)...], "sum", "count"};
    asserts that it is declared and well formed."""
    assert re.search(rf"^# TYPE {name} histogram$", text, re.M), f"{name} not declared"
    buckets = []
    for m in re.finditer(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
        buckets.append((m.group(1), float(m.group(2))))
    s = metric_value(text, f"{name}_sum")
    c = metric_value(text, f"{name}_count")
    assert s is not None and c is not None, f"{name}: no _sum or _count"
    les = [le for le, _ in buckets]
    assert les[-1] == "+Inf", les
    assert len(les) == 15, les
    for le, want in zip(les[:-1], BOUNDS):
        assert float(le) == pytest.approx(want), les
    counts = [n for _, n in buckets]
    assert all(a <= b for a, b in zip(counts, counts[1:])), f"{name} not cumulative: {counts}"
    assert all(n == int(n) for n in counts + [c]), counts
    assert counts[-1] == c, f"{name}: +Inf bucket {counts[-1]} != count {c}"
    assert s >= 0
    if c > 0:
        assert s > 0
    return {"buckets": buckets, "sum": s, "count": c}


def test_wal_fsync_histogram_counts_every_write(member):
    m = member
    name = "etcd_disk_wal_fsync_duration_seconds"
    before = histogram(m.get("/metrics").text, name)
    s = requests.Session()
    for i in range(20):
        r = s.put(m.key_url(f"fs{i}"), data={"value": "v"}, timeout=10)
        assert r.status_code == 201, r.text
    after = histogram(m.get("/metrics").text, name)
    # one after another: each PUT is acknowledged only after its own fdatasync
    assert after["count"] >= before["count"] + 20
    assert after["sum"] > before["sum"]
    # nothing ever runs backwards, bucket by bucket
    for (le0, n0), (le1, n1) in zip(before["buckets"], after["buckets"]):
        assert le0 == le1 and n1 >= n0


@pytest.mark.cairn_only
def test_wal_fsync_is_part_of_each_persist(member):
    """2.3's name times the whole log write, 3.4's the fdatasync inside it: the same flushes
    (no snapshot was received), the fdatasyncs never longer than the writes they end."""
    m = member
    for i in range(10):
        m.set(f"p{i}", "v")
    t = m.get("/metrics").text
    fs = histogram(t, "etcd_disk_wal_fsync_duration_seconds")
    persist = histogram(t, "etcd_wal_fsync_duration_seconds")
    assert fs["count"] == persist["count"]
    assert fs["count"] >= 10
    assert fs["sum"] <= persist["sum"]


def test_backend_commit_histogram_after_snapshots(member_factory):
    m = member_factory(extra_args=["--snapshot-count", "10"])
    name = "etcd_disk_backend_commit_duration_seconds"
    histogram(m.get("/metrics").text, name)
    s = requests.Session()
    for i in range(35):
        r = s.put(m.key_url(f"bc{i}"), data={"value": "x" * 100}, timeout=10)
        assert r.status_code == 201, r.text
    wait_until(lambda: histogram(m.get("/metrics").text, name)["count"] >= 1, timeout=10,
               message="a snapshot save (cairn) or backend commit (etcd) was timed")
    if not IS_ETCD:  # each count is a snapshot file that was written
        assert list((m.data_dir / "member" / "snap").glob("*.snap"))


@pytest.mark.cairn_only
def test_wal_segments_are_preallocated_with_a_spare(member):
    """A fresh member's first segment grows (so it serves in milliseconds, not after zeroing
    64 MiB); the spare is made meanwhile and the first write after it is ready moves the log
    into it, where writes land inside the preallocated size. A kill -9 and restart keeps every
    acknowledged write and makes the spare again."""
    m = member
    wal = m.data_dir / "member" / "wal"
    first = wal / "0000000000000000-0000000000000000.wal"
    assert first.exists() and first.stat().st_size < SEGMENT_SIZE
    spare = wal / "spare.tmp"
    wait_until(lambda: spare.exists() and spare.stat().st_size == SEGMENT_SIZE, timeout=10,
               message="the spare segment is prepared")
    acked = {}
    for i in range(30):
        acked[f"k{i}"] = m.set(f"k{i}", f"v{i}")["node"]["modifiedIndex"]
    segs = sorted(wal.glob("*.wal"))
    assert len(segs) == 2 and segs[0] == first
    assert segs[1].stat().st_size == SEGMENT_SIZE  # the spare, written inside, never grown
    m.kill9()
    m.restart()
    for k, idx in acked.items():
        node = m.get(f"/v2/keys/{k}").json()["node"]
        assert node["value"] == f"v{k[1:]}"
        assert node["modifiedIndex"] == idx
    assert "damaged log tail" not in m.log_text()
    assert "cannot preallocate" not in m.log_text()
    wait_until(lambda: spare.exists() and spare.stat().st_size == SEGMENT_SIZE, timeout=10,
               message="the spare is made again after the restart")
    assert sorted(wal.glob("*.wal")) == segs
