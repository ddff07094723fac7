"""Fixtures for the black-box suite (see README.md in this directory)."""

import itertools
import os
import shutil

import pytest

pytest.register_assert_rewrite("harness", "cluster", "linearizability", "v3harness")

import harness  # noqa: E402
from harness import IS_ETCD, Member  # noqa: E402

MARKERS = {
    "cairn_only": "cairn behaviour that intentionally differs from etcd 3.4 (skipped with CAIRN_TARGET=etcd)",
    "etcd_only": "etcd 3.4 behaviour cairn does not mirror (skipped unless CAIRN_TARGET=etcd)",
    "slow": "takes more than a few seconds (deselect with -m 'not slow')",
    "needs_root": "needs root (tmpfs mounts)",
    "v3": "etcd v3 API suite (test_v3_*.py): run against cairn and etcd alike (-m 'not v3' "
          "leaves it out)",
}


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_report_header(config):
    return f"cairn integration target: {harness.TARGET} ({harness.server_binary()})"


def pytest_collection_modifyitems(config, items):
    skip_cairn_only = pytest.mark.skip(reason="cairn_only: etcd 3.4 intentionally differs (spec)")
    skip_etcd_only = pytest.mark.skip(reason="etcd_only: reference behaviour cairn does not mirror")
    for item in items:
        if IS_ETCD and "cairn_only" in item.keywords:
            item.add_marker(skip_cairn_only)
        if not IS_ETCD and "etcd_only" in item.keywords:
            item.add_marker(skip_etcd_only)


def pytest_sessionstart(session):
    binary = harness.server_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise pytest.UsageError(
            f"server binary {binary} not found or not executable "
            f"(build cairn, set CAIRN_BIN, or use CAIRN_TARGET=etcd)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the log tail of every member the test used."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    members = list(getattr(item, "_cairn_members", []))
    shared = item.funcargs.get("shared_member") if hasattr(item, "funcargs") else None
    if shared is not None:
        members.append(shared)
    for m in members:
        report.sections.append((f"member {m.name} log tail ({m.workdir})", m.log_tail(60)))


_names = itertools.count(1)


def _release_disk(members):
    """After a test, delete its members' data dirs (the logs stay next to them). Every member's
    WAL is a preallocated 64 MiB segment plus a 64 MiB spare, as etcd's is, so the 500 tests
    of a run would otherwise keep tens of GiB until pytest prunes old runs.
    CAIRN_KEEP_DATA=1 keeps them for a look after the run."""
    if os.environ.get("CAIRN_KEEP_DATA"):
        return
    for m in members:
        d = getattr(m, "data_dir", None)
        if d is not None and (m.proc is None or m.proc.poll() is not None):
            shutil.rmtree(d, ignore_errors=True)


def _fail_on_sanitizer_reports(members):
    """A sanitizer report in any member's log fails the test (make test runs the suite against
    the ASan+UBSan build with CAIRN_SANITIZED=1)."""
    for m in members:
        if os.path.basename(m.binary) == "etcd":
            continue  # Go prints "runtime error:" in panics; only cairn runs sanitized
        found = m.sanitizer_reports()
        if found:
            pytest.fail(f"sanitizer report in member {m.name}'s log:\n" + "\n".join(found[:20])
                        + "\n" + m.log_tail(80), pytrace=False)


@pytest.fixture
def member_factory(tmp_path, request):
    """Create (and by default start) members; all are killed at teardown."""
    made = []
    request.node._cairn_members = made

    def make(name=None, start=True, **kw):
        name = name or f"m{next(_names)}"
        m = Member(tmp_path / name, name=name, **kw)
        made.append(m)
        if start:
            m.start()
        return m

    yield make
    for m in made:
        m.cleanup()
    _release_disk(made)
    _fail_on_sanitizer_reports(made)


@pytest.fixture
def procs(request):
    """Processes (any harness.Member) a test starts itself: their log tails go into failure
    reports, they are killed at teardown, and a sanitizer report in a cairn log fails the test."""
    made = []
    request.node._cairn_members = made
    yield made
    for p in made:
        p.cleanup()
    _release_disk(made)
    _fail_on_sanitizer_reports(made)


@pytest.fixture
def member(member_factory):
    """A fresh, started one-member cluster."""
    return member_factory()


@pytest.fixture(scope="module")
def shared_member(tmp_path_factory):
    """One member per test module, for tests that only touch their own keys
    (use the ``ns`` fixture for a unique prefix) and assert indexes relative
    to a baseline."""
    d = tmp_path_factory.mktemp("shared")
    m = Member(d / "shared", name="shared")
    m.start()
    yield m
    m.cleanup()
    _release_disk([m])
    _fail_on_sanitizer_reports([m])


@pytest.fixture
def cluster_factory(tmp_path, request):
    """Create (and by default start) multi-member clusters (cluster.Cluster);
    every process is killed and every fault proxy closed at teardown."""
    from cluster import Cluster
    made = []
    members = []
    request.node._cairn_members = members
    count = itertools.count(1)

    def make(size=3, start=True, **kw):
        c = Cluster(tmp_path / f"c{next(count)}", size=size, registry=members, **kw)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        c.cleanup()
    _release_disk(members)
    _fail_on_sanitizer_reports(members)


_ns = itertools.count(1)


@pytest.fixture
def ns(request):
    """A unique key prefix (no leading slash) for tests on a shared member."""
    return f"t{next(_ns)}"


@pytest.fixture
def etcdctl_env():
    return harness.clean_env({"ETCDCTL_API": "2"})


# -- v3 suite (test_v3_*.py) ---------------------------------------------------------------

@pytest.fixture
def ctl3(member):
    """etcdctl with ETCDCTL_API=3 against the test's fresh member."""
    import v3harness
    return v3harness.Ctl3(member)


@pytest.fixture
def etcd3_client(member):
    """A python3-etcd3 client (Debian's 0.12, grpcio) for the test's fresh member."""
    import v3harness
    c = v3harness.client(member)
    yield c
    c.close()


@pytest.fixture
def gw(member):
    """The JSON gateway of the test's fresh member (v3harness.Gateway)."""
    import v3harness
    return v3harness.Gateway(member)


@pytest.fixture(scope="session")
def npm_etcd3():
    """The npm etcd3 client (grpc-js), installed once per session by ``npm ci`` into
    tests/integration/js (node_modules is not committed). Skips when node/npm are missing or
    the registry cannot be reached. xdist workers serialise on a lock file; a stamp holding
    package-lock.json's contents avoids reinstalling."""
    import fcntl
    import subprocess
    import v3harness
    js = v3harness.JS_DIR
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("npm etcd3 tests need node and npm on PATH")
    lock_path = os.path.join(js, "package-lock.json")
    stamp = os.path.join(js, "node_modules", ".cairn-installed")
    want = open(lock_path, "rb").read()
    with open(os.path.join(js, ".install.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not (os.path.exists(stamp) and open(stamp, "rb").read() == want):
            p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=js, capture_output=True, timeout=300,
                               env=harness.clean_env())
            if p.returncode != 0:
                pytest.skip("npm ci in tests/integration/js failed (offline or registry "
                            f"unreachable?): {p.stderr.decode(errors='replace')[-400:]}")
            with open(stamp, "wb") as f:
                f.write(want)
    return js
