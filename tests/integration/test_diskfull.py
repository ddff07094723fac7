"""Disk full: a write that cannot be made durable fails cleanly; the server
keeps serving reads, recovers when space returns, and loses nothing acked.

The data dir lives on a small tmpfs.  A filler file on the same tmpfs takes
most of the free space after start-up, so the test does not depend on how
much the server preallocates.
"""

import os
import subprocess

import pytest
import requests

from harness import IS_ETCD, wait_until

TMPFS_SIZE_MB = int(os.environ.get("CAIRN_DISKFULL_TMPFS_MB", "192" if IS_ETCD else "64"))
HEADROOM = 3 * 1024 * 1024   # free bytes left after the filler
VALUE = "x" * (128 * 1024)


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_MB}m,mode=0755",
                        "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def make_filler(mnt, leave):
    filler = mnt / "filler"
    size = max(0, free_bytes(mnt) - leave)
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            n = min(size, len(chunk))
            f.write(chunk[:n])
            size -= n
        f.flush()
        os.fsync(f.fileno())
    return filler


@pytest.mark.cairn_only
@pytest.mark.needs_root
@pytest.mark.slow
def test_disk_full_fails_cleanly_and_recovers(member_factory, tmpfs):
    """etcd 3.4 preallocates 64 MB WAL segments and exits when a new one
    cannot be created, so this is cairn_only."""
    m = member_factory(data_dir=tmpfs / "data")
    acked = {}
    s = requests.Session()
    for i in range(3):
        r = s.put(m.url(f"/v2/keys/pre{i}"), data={"value": f"p{i}"}, timeout=10)
        assert r.status_code == 201
        acked[f"/pre{i}"] = (f"p{i}", r.json()["node"]["modifiedIndex"])
    filler = make_filler(tmpfs, HEADROOM)

    failure = None
    for i in range(2000):
        try:
            r = s.put(m.url(f"/v2/keys/fill/{i}"), data={"value": VALUE}, timeout=30)
        except requests.ConnectionError as exc:
            pytest.fail(f"server dropped the connection on a full disk ({exc}); "
                        f"alive={m.alive()}\n{m.log_tail()}")
        if r.status_code == 201:
            acked[f"/fill/{i}"] = (VALUE, r.json()["node"]["modifiedIndex"])
            continue
        failure = r
        break
    assert failure is not None, "disk never filled up"
    assert failure.status_code >= 500, (failure.status_code, failure.text)
    if failure.headers.get("Content-Type") == "application/json":
        body = failure.json()
        assert body["errorCode"] // 100 == 3, body
        assert body["index"] == 0
    assert m.alive(), "server exited on ENOSPC\n" + m.log_tail()

    # reads still work
    r = s.get(m.url("/v2/keys/pre0"), timeout=10)
    assert r.status_code == 200 and r.json()["node"]["value"] == "p0"
    assert s.get(m.url("/version"), timeout=10).status_code == 200

    # free the space: writes work again (within a deadline)
    filler.unlink()

    def write_ok():
        r = s.put(m.url("/v2/keys/after"), data={"value": "ok"}, timeout=10)
        if r.status_code == 201:
            return r
        return None
    r = wait_until(write_ok, timeout=20, interval=0.2, message="a write after freeing space")
    acked["/after"] = ("ok", r.json()["node"]["modifiedIndex"])
    assert m.alive()

    # restart: every acknowledged write is there
    m.stop()
    m.restart()
    for key, (value, idx) in acked.items():
        r = s.get(m.url("/v2/keys" + key), timeout=10)
        assert r.status_code == 200, (key, r.text)
        assert (r.json()["node"]["value"], r.json()["node"]["modifiedIndex"]) == (value, idx)


@pytest.mark.needs_root
def test_start_on_full_disk_fails_with_message(member_factory, tmpfs):
    """A data dir on a full file system: start-up fails with a non-zero exit
    (no hang, no crash signal)."""
    make_filler(tmpfs, 0)
    m = member_factory(data_dir=tmpfs / "data", start=False)
    m.start(wait=False)
    rc = m.wait_exit(20)
    assert rc not in (None, 0) and rc > 0, rc
    text = m.log_text().lower()
    assert "no space" in text or "enospc" in text or "space left" in text, m.log_tail()
