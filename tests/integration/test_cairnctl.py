"""cairnctl against etcdctl (ETCDCTL_API=2), byte for byte.

One script of commands runs twice from the same starting state: once with
Debian's etcdctl 3.4 against a fresh server, once with cairnctl against another
fresh server started with the same flags (so every index matches). stdout,
stderr and exit codes must be equal once endpoints, member ids, expiration
times and remaining TTLs are replaced by placeholders.  The script covers every
command, flag and output format of issue 7, the error paths (missing key,
existing key, failed compare, not a directory, not a file, unreachable
endpoint, bad arguments) and watches run in the background.

The comparison runs against fresh cairn members and, when Debian's etcd-server
is installed, against fresh etcd 3.4 members (--enable-v2), to show cairnctl
works with etcd as well.
"""

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from harness import ETCD_BIN, ETCDCTL_BIN, IS_ETCD, REPO, Member, clean_env, free_port, wait_until

CAIRNCTL_BIN = os.environ.get("CAIRNCTL_BIN", str(REPO / "build" / "cairnctl"))

pytestmark = [
    pytest.mark.skipif(not os.path.exists(ETCDCTL_BIN),
                       reason=f"{ETCDCTL_BIN} not installed (Debian package etcd-client)"),
    pytest.mark.skipif(not os.access(CAIRNCTL_BIN, os.X_OK),
                       reason=f"cairnctl not built at {CAIRNCTL_BIN} (set CAIRNCTL_BIN)"),
]

WATCH_DEADLINE = 15.0
ECHO_EVENT = ('echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE '
              '$ETCD_WATCH_MODIFIED_INDEX"')


def S(*args, env=None, stdin=b"", noep=False):
    """A plain command step. Placeholders: {ep} client URL, {dead} a closed endpoint,
    {peer} the member's peer URL, {id} its member id, {mi:/key} the key's modifiedIndex."""
    return {"kind": "run", "args": list(args), "env": env or {}, "stdin": stdin, "noep": noep}


def W(fn):
    return {"kind": "watch", "fn": fn}


# -- background watch steps: each returns the (stdout, stderr, rc) of the watcher ----------


def watch_once(ctl):
    p = ctl.spawn(["watch", "/w"])
    ctl.wait_watchers(1)
    ctl.member.put("/v2/keys/w", data={"value": "one"})
    return ctl.finish(p)


def watch_after_index(ctl):
    p = ctl.spawn(["-o", "extended", "watch", "--after-index", "1", "/a"])
    return ctl.finish(p)


def watch_forever_recursive(ctl):
    p = ctl.spawn(["-o", "json", "watch", "--forever", "--recursive", "/wd"])
    ctl.wait_watchers(1)
    m = ctl.member
    m.put("/v2/keys/wd/a", data={"value": "1"})
    ctl.wait_lines(p, 2)
    m.put("/v2/keys/wd/sub", data={"dir": "true"})  # a dir event: skipped
    m.put("/v2/keys/wd/b", data={"value": "2"})
    ctl.wait_lines(p, 4)
    m.delete("/v2/keys/wd/a")
    ctl.wait_lines(p, 6)
    return ctl.interrupt(p)


def watch_simple_forever(ctl):
    p = ctl.spawn(["watch", "-f", "-r", "/ws"])
    ctl.wait_watchers(1)
    ctl.member.put("/v2/keys/ws/x", data={"value": "v1"})
    ctl.wait_lines(p, 2)
    ctl.member.put("/v2/keys/ws/x", data={"value": "v2", "prevValue": "v1"})
    ctl.wait_lines(p, 4)
    return ctl.interrupt(p)


def exec_watch_after_index(ctl):
    """History from --after-index N: exactly the one event after N (no double increment)."""
    m = ctl.member
    first = m.put("/v2/keys/ea", data={"value": "1"}).json()["node"]["modifiedIndex"]
    m.put("/v2/keys/ea", data={"value": "2"})
    # "-r" before the key keeps urfave's reordering from swapping key and command
    p = ctl.spawn(["exec-watch", "--after-index", str(first), "-r", "/ea", "--", "sh", "-c",
                   ECHO_EVENT])
    ctl.wait_lines(p, 1)
    ctl.wait_watchers(1)
    return ctl.interrupt(p)


def health_forever(ctl):
    p = ctl.spawn(["cluster-health", "--forever"])
    ctl.wait_lines(p, 4)  # member line, verdict, blank, "next check after 10 second..."
    return ctl.interrupt(p)


def watch_server_dies(ctl):
    """The server is killed under a waiting watch (the last step: it ends the member)."""
    p = ctl.spawn(["watch", "/gone"])
    ctl.wait_watchers(1)
    ctl.member.kill9()
    try:
        p.wait(WATCH_DEADLINE)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
        raise AssertionError("watcher did not exit when its server died")
    return ctl.collect(p)


def exec_watch(ctl):
    p = ctl.spawn(["exec-watch", "--recursive", "/ew", "--", "sh", "-c", ECHO_EVENT])
    ctl.wait_watchers(1)
    m = ctl.member
    m.put("/v2/keys/ew/a", data={"value": "1"})
    ctl.wait_lines(p, 1)
    m.put("/v2/keys/ew/sub", data={"dir": "true"})
    ctl.wait_lines(p, 1, stream="stderr")
    m.put("/v2/keys/ew/b", data={"value": "two words"})
    ctl.wait_lines(p, 2)
    return ctl.interrupt(p)


SCRIPT = [
    # values and the three output formats
    S("set", "/a", "1"),
    S("-o", "extended", "set", "/a", "2"),
    S("-o", "json", "set", "/a", "3"),
    S("get", "/a"),
    S("-o", "extended", "get", "/a"),
    S("-o", "json", "get", "/a"),
    S("set", "/html", "<b>&amp;</b> \u00e9"),
    S("-o", "json", "get", "/html"),
    S("mk", "/b", "x"),
    S("-o", "json", "mk", "/b2", "x"),
    S("-o", "extended", "mk", "/b3", "x"),
    S("mk", "/a", "4"),
    S("-o", "json", "mk", "/a", "4"),
    S("-o", "extended", "mk", "/a", "4"),
    S("get", "/nope"),
    S("-o", "json", "get", "/nope"),
    S("update", "/nope", "1"),
    S("update", "/a", "5"),
    S("-o", "extended", "update", "/a", "6"),
    S("-o", "json", "update", "/a", "7"),
    S("set", "--swap-with-value", "bad", "/a", "8"),
    S("set", "--swap-with-value", "7", "/a", "8"),
    S("set", "--swap-with-index", "1", "/a", "9"),
    S("-o", "json", "set", "--swap-with-index", "{mi:/a}", "/a", "9"),
    S("set", "/a/b", "1"),
    S("set", "--ttl", "100", "/t", "tv"),
    S("-o", "json", "set", "--ttl", "100", "/t2", "tv"),
    S("-o", "extended", "get", "/t"),
    S("-o", "extended", "update", "--ttl", "200", "/t", "tv2"),
    # directories
    S("mkdir", "/d"),
    S("-o", "json", "mkdir", "/d2"),
    S("-o", "extended", "mkdir", "/d3"),
    S("mkdir", "--ttl", "100", "/dt"),
    S("mkdir", "/d"),
    S("get", "/d"),
    S("-o", "json", "get", "/d"),
    S("setdir", "/s"),
    S("-o", "json", "setdir", "/s2"),
    S("-o", "extended", "setdir", "/s3"),
    S("setdir", "/d"),
    S("setdir", "/a"),
    S("updatedir", "/d"),
    S("-o", "extended", "updatedir", "--ttl", "100", "/d"),
    S("updatedir", "/nope"),
    S("set", "/d/x", "1"),
    S("set", "/d/y/z", "2"),
    S("set", "/d", "v"),
    # listing
    S("ls", "--sort"),
    S("ls", "--sort", "-p"),
    S("ls", "--sort", "--recursive", "-p"),
    S("ls", "--sort", "-r", "/d"),
    S("ls", "--sort", "/d"),
    S("ls", "/a"),
    S("ls", "/nope"),
    S("-o", "json", "ls", "--sort", "/d"),
    S("-o", "extended", "ls", "/d"),
    S("get", "--sort", "/d/x"),
    S("get", "--quorum", "/a"),
    S("get", "-q", "/a"),
    # removal
    S("rm", "/d"),
    S("rm", "--dir", "/d"),
    S("rm", "--recursive", "/d"),
    S("rm", "/nope"),
    S("-o", "extended", "rm", "/b"),
    S("-o", "json", "rm", "/b2"),
    S("set", "/c", "1"),
    S("rm", "--with-value", "x", "/c"),
    S("rm", "--with-index", "1", "/c"),
    S("rm", "--with-value", "1", "/c"),
    S("set", "/c2", "1"),
    S("-o", "json", "rm", "--with-index", "{mi:/c2}", "/c2"),
    S("rm", "/b3"),
    S("rmdir", "/d2"),
    S("rmdir", "/nope"),
    S("-o", "json", "rmdir", "/d3"),
    S("mkdir", "/e"),
    S("set", "/e/k", "1"),
    S("rmdir", "/e"),
    S("rm", "-r", "/e"),
    S("-o", "extended", "rm", "--dir", "/s3"),
    S("set", "/f", "1"),
    S("rmdir", "/f"),
    # in-order keys and values from stdin
    S("mk", "--in-order", "/q", "v1"),
    S("-o", "json", "mk", "--in-order", "/q", "v2"),
    S("mk", "--in-order", "--ttl", "100", "/q", "v3"),
    S("ls", "--sort", "/q"),
    S("set", "/stdin", stdin=b"from stdin\n"),
    S("get", "/stdin"),
    # argument errors and flag handling
    S("set"),
    S("set", "/x"),
    S("mk", "/y"),
    S("update", "/z"),
    S("rm"),
    S("get"),
    S("mkdir"),
    S("setdir"),
    S("updatedir"),
    S("rmdir"),
    S("watch"),
    S("exec-watch", "/x"),
    S("set", "--ttl=abc", "/r", "v"),
    S("set", "--bogus", "/r", "v"),
    S("get", "--ttl", "1", "/a"),
    S("set", "/r", "v", "--ttl", "100"),
    S("set", "-ttl=50", "/r1", "v"),
    S("set", "--", "/r2", "-v"),
    S("set", "/r3", "--", "-w"),
    S("get", "/r2", "/extra"),
    S("-o", "yaml", "get", "/r2"),
    # global options, environment, debug output
    S("--debug", "get", "/r2"),
    S("--debug", "set", "--ttl", "50", "/k e$&+,:;=@?y", "v a&l=ue"),
    S("--debug", "--no-sync", "mkdir", "/dd"),
    S("--debug", "rm", "--with-index", "3", "--with-value", "x", "/dd"),
    S("--debug", "-o", "json", "update", "/k2", "v"),
    S("--debug", "updatedir", "--ttl", "5", "/dd"),
    S("--debug", "mk", "--in-order", "/q", "v4"),
    S("--debug", "ls", "--sort", "/dd"),
    S("--debug", "-o", "json", "watch", "--after-index", "1", "-r", "/q"),
    S("ls", "--sort", "-q", "/q"),
    S("--timeout", "3s", "--total-timeout", "10s", "get", "/r2"),
    S("--timeout=1500ms", "--total-timeout=1m", "get", "/r2"),
    S("--no-sync", "get", "/r2"),
    S("get", "/r2", env={"ETCDCTL_ENDPOINTS": "{ep}"}, noep=True),
    S("get", "/r2", env={"ETCDCTL_PEERS": "{ep}"}, noep=True),
    S("--peers", "{ep}", "get", "/r2", noep=True),
    S("-C", "{ep}", "get", "/r2", noep=True),
    S("--endpoint", "{ep}", "get", "/r2", noep=True),
    S("--endpoints", "{ep}", "get", "/r2", env={"ETCDCTL_ENDPOINTS": "{dead}"}, noep=True),
    # failover and unreachable endpoints
    S("--endpoints", "{dead},{ep}", "--no-sync", "get", "/r2", noep=True),
    S("--endpoints", "{ep},{dead}", "get", "/r2", noep=True),
    S("--endpoints", "{dead}", "get", "/r2", noep=True),
    S("--endpoints", "{dead}", "--no-sync", "get", "/r2", noep=True),
    S("--endpoints", "{dead}", "--no-sync", "mk", "/x", "1", noep=True),
    S("--endpoints", "{dead}", "--no-sync", "rm", "/x", noep=True),
    S("--endpoints", "{dead}", "cluster-health", noep=True),
    S("--endpoints", "{dead}", "member", "list", noep=True),
    S("--endpoints", "{dead}", "set", noep=True),
    S("-o", "json", "--endpoints", "{dead}", "--no-sync", "get", "/r2", noep=True),
    # timeouts: {hole} accepts connections and never answers
    S("--endpoints", "{hole}", "--no-sync", "--total-timeout", "300ms", "--timeout", "5s", "get",
      "/a", noep=True),
    S("--endpoints", "{hole}", "--no-sync", "--timeout", "200ms", "get", "/a", noep=True),
    S("--endpoints", "{hole}", "--timeout", "200ms", "--total-timeout", "1s", "get", "/a",
      noep=True),
    S("--endpoints", "{hole}", "--total-timeout", "300ms", "get", "/a", noep=True),
    S("--endpoints", "{hole}", "--no-sync", "--total-timeout", "300ms", "mk", "/a", "1",
      noep=True),
    S("--endpoints", "{hole}", "--timeout", "200ms", "member", "list", noep=True),
    S("--endpoints", "{hole},{ep}", "--no-sync", "--timeout", "300ms", "get", "/a", noep=True),
    # watches
    W(watch_once),
    W(watch_after_index),
    W(watch_forever_recursive),
    W(watch_simple_forever),
    W(exec_watch),
    W(exec_watch_after_index),
    S("get", "/w"),
    # health and members (member add last: on etcd it leaves the cluster without quorum)
    S("cluster-health"),
    S("--debug", "cluster-health"),
    W(health_forever),
    S("member", "list"),
    S("-o", "json", "member", "list"),
    S("--debug", "member", "list"),
    S("member", "list", "extra"),
    S("member", "add"),
    S("member", "add", "n1"),
    S("member", "add", "n1", "bad"),
    S("member", "add", "n1", "http://127.0.0.1"),
    S("member", "add", "n1", "http://127.0.0.1:9/path"),
    S("member", "remove"),
    S("member", "remove", "ctl"),
    S("member", "remove", "1234"),
    S("member", "update"),
    S("member", "update", "{id}", "bad"),
    S("member", "update", "{id}", "{peer}"),
    S("member", "add", "n2", "http://127.0.0.1:{newport}"),
    W(watch_server_dies),
]


class Runner:
    """Runs the script with one client binary against one member."""

    def __init__(self, binary, member, ports, workdir, etcdctl):
        self.binary = binary
        self.member = member
        self.ports = ports
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.etcdctl = etcdctl
        self.n = 0
        members = requests.get(member.url("/v2/members"), timeout=5).json()["members"]
        self.member_id = members[0]["id"]

    # placeholders ------------------------------------------------------------
    def expand(self, s):
        def mi(match):
            r = requests.get(self.member.key_url(match.group(1)), timeout=5)
            return str(r.json()["node"]["modifiedIndex"])

        s = re.sub(r"\{mi:([^}]*)\}", mi, s)
        return (s.replace("{ep}", self.member.client_url)
                .replace("{dead}", f"http://127.0.0.1:{self.ports['dead']}")
                .replace("{hole}", f"http://127.0.0.1:{self.ports['hole']}")
                .replace("{peer}", self.member.peer_url)
                .replace("{newport}", str(self.ports["new"]))
                .replace("{id}", self.member_id))

    def env(self, extra=None):
        env = clean_env({"ETCDCTL_API": "2"})
        for k, v in (extra or {}).items():
            env[k] = self.expand(v)
        return env

    def argv(self, args, noep=False):
        a = [self.binary]
        if not noep:
            a += ["--endpoints", self.member.client_url]
        return a + [self.expand(x) for x in args]

    def normalise(self, text):
        m = self.member
        text = text.replace(m.client_url, "<ep>").replace(m.peer_url, "<peer>")
        text = text.replace(f"127.0.0.1:{m.client_port}", "<ephost>")
        text = text.replace(f"127.0.0.1:{m.peer_port}", "<peerhost>")
        text = text.replace(f"127.0.0.1:{self.ports['dead']}", "<deadhost>")
        text = text.replace(f"127.0.0.1:{self.ports['hole']}", "<holehost>")
        text = text.replace(f"127.0.0.1:{self.ports['new']}", "<newhost>")
        text = text.replace(self.member_id, "<id>")
        text = re.sub(r"\b[0-9a-f]{16}\b", "<newid>", text)
        # Go prints ids with %x: a new member's may be shorter than 16 digits
        text = re.sub(r"(with ID )[0-9a-f]+\b", r"\1<newid>", text)
        text = re.sub(r'"expiration":"[^"]*"', '"expiration":"<exp>"', text)
        text = re.sub(r'"ttl":\d+', '"ttl":<ttl>', text)
        text = re.sub(r"TTL: [1-9]\d*", "TTL: <ttl>", text)
        # help texts name the program
        text = text.replace("cairnctl", "etcdctl")
        # etcd lists members by id, and a new member's id is random
        def sort_cluster(mm):
            return 'ETCD_INITIAL_CLUSTER="%s"' % ",".join(sorted(mm.group(1).split(",")))
        text = re.sub(r'ETCD_INITIAL_CLUSTER="([^"]*)"', sort_cluster, text)
        return text

    # plain steps ---------------------------------------------------------------
    def run(self, step):
        p = subprocess.run(self.argv(step["args"], step["noep"]), env=self.env(step["env"]),
                           input=step["stdin"], capture_output=True, timeout=30)
        return self.result(p.stdout, p.stderr, p.returncode)

    def result(self, out, err, rc):
        return {"stdout": self.normalise(out.decode(errors="replace")),
                "stderr": self.normalise(err.decode(errors="replace")),
                "rc": rc}

    # background steps ----------------------------------------------------------
    def spawn(self, args):
        self.n += 1
        out = open(self.workdir / f"bg{self.n}.out", "wb+")
        err = open(self.workdir / f"bg{self.n}.err", "wb+")
        p = subprocess.Popen(self.argv(args), env=self.env(), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err)
        p.files = (out, err)
        return p

    def watchers(self):
        return requests.get(self.member.url("/v2/stats/store"), timeout=5).json()["watchers"]

    def wait_watchers(self, n):
        wait_until(lambda: self.watchers() >= n, WATCH_DEADLINE, message=f"{n} watcher(s)")

    def read(self, p, stream):
        f = p.files[0 if stream == "stdout" else 1]
        f.flush()
        return Path(f.name).read_bytes()

    def wait_lines(self, p, n, stream="stdout"):
        def enough():
            if p.poll() is not None:
                raise AssertionError(f"watcher exited early with {p.returncode}: "
                                     f"{self.read(p, 'stdout')!r} {self.read(p, 'stderr')!r}")
            return self.read(p, stream).count(b"\n") >= n
        wait_until(enough, WATCH_DEADLINE, message=f"{n} line(s) on the watcher's {stream}")

    def finish(self, p):
        try:
            p.wait(WATCH_DEADLINE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise AssertionError("watcher did not exit: " + repr(self.read(p, "stdout")))
        # the next step counts watchers: wait until the server has dropped this one
        wait_until(lambda: self.watchers() == 0, WATCH_DEADLINE, message="no watchers left")
        return self.collect(p)

    def interrupt(self, p):
        p.send_signal(signal.SIGINT)
        return self.finish(p)

    def collect(self, p):
        out, err = self.read(p, "stdout"), self.read(p, "stderr")
        for f in p.files:
            f.close()
        return self.result(out, err, p.returncode)

    def run_script(self, script):
        results = []
        for step in script:
            if step["kind"] == "run":
                label = " ".join(step["args"])
                results.append((label, self.run(step)))
            else:
                results.append((step["fn"].__name__, step["fn"](self)))
        return results


def compare(reference, ours):
    assert len(reference) == len(ours)
    mismatches = []
    for (label, want), (_, got) in zip(reference, ours):
        if want != got:
            mismatches.append(f"step `{label}`:\n  etcdctl:  {want!r}\n  cairnctl: {got!r}")
    assert not mismatches, f"{len(mismatches)} step(s) differ:\n" + "\n".join(mismatches)


@pytest.fixture
def fresh(tmp_path, request):
    """Fresh one-member servers with identical flags (same name, so the same output)."""
    made = []
    request.node._cairn_members = made

    def make(tag, etcd=False):
        kw = {}
        if etcd:
            kw = {"binary": ETCD_BIN, "extra_args": [] if IS_ETCD else ["--enable-v2"]}
        m = Member(tmp_path / tag, name="ctl", **kw)
        made.append(m)
        m.start()
        return m

    yield make
    for m in made:
        m.cleanup()
    for m in made:
        found = m.sanitizer_reports() if m.binary != ETCD_BIN else []
        if found:
            pytest.fail(f"sanitizer report in member {m.name}'s log:\n" + "\n".join(found[:20]),
                        pytrace=False)


def run_comparison(fresh, tmp_path, etcd):
    # a listener that never accepts: connections succeed, requests hang
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    ports = {"dead": free_port(), "new": free_port(), "hole": hole.getsockname()[1]}
    try:
        m1 = fresh("ref", etcd=etcd)
        reference = Runner(ETCDCTL_BIN, m1, ports, tmp_path / "ref-out", True).run_script(SCRIPT)
        m1.cleanup()  # on etcd the last step (member add) leaves it without quorum
        m2 = fresh("ours", etcd=etcd)
        ours = Runner(CAIRNCTL_BIN, m2, ports, tmp_path / "ours-out", False).run_script(SCRIPT)
    finally:
        hole.close()
    # the script must exercise what it claims to: some errors, every exit code we use
    codes = {r["rc"] for _, r in reference}
    assert {0, 1, 2, 4}.issubset(codes), codes
    compare(reference, ours)


@pytest.mark.slow
def test_cairnctl_matches_etcdctl_on_cairn(fresh, tmp_path):
    run_comparison(fresh, tmp_path, etcd=False)


@pytest.mark.slow
@pytest.mark.skipif(not os.access(ETCD_BIN, os.X_OK),
                    reason=f"{ETCD_BIN} not installed (Debian package etcd-server)")
def test_cairnctl_matches_etcdctl_on_etcd(fresh, tmp_path):
    run_comparison(fresh, tmp_path, etcd=True)


def test_cairnctl_help_and_version():
    """Every command has a --help; the global one lists them all."""
    env = clean_env()
    p = subprocess.run([CAIRNCTL_BIN, "--help"], capture_output=True, env=env, timeout=10)
    assert p.returncode == 0
    text = p.stdout.decode()
    commands = ["get", "set", "mk", "mkdir", "setdir", "update", "updatedir", "rm", "rmdir", "ls",
                "watch", "exec-watch", "member", "cluster-health"]
    for c in commands:
        assert re.search(rf"^   {re.escape(c)} +\S", text, re.M), c
        h = subprocess.run([CAIRNCTL_BIN, c, "--help"], capture_output=True, env=env, timeout=10)
        assert h.returncode == 0 and h.stdout.decode().startswith("NAME:\n"), c
        assert "USAGE:" in h.stdout.decode()
    for sub in ["list", "add", "remove", "update"]:
        h = subprocess.run([CAIRNCTL_BIN, "member", sub, "--help"], capture_output=True, env=env,
                           timeout=10)
        assert h.returncode == 0 and f"member {sub} - " in h.stdout.decode()
    v = subprocess.run([CAIRNCTL_BIN, "--version"], capture_output=True, env=env, timeout=10)
    assert v.returncode == 0 and v.stdout.decode().endswith("API version: 2\n")
    u = subprocess.run([CAIRNCTL_BIN, "bogus"], capture_output=True, env=env, timeout=10)
    assert (u.returncode, u.stderr.decode()) == (3, "No help topic for 'bogus'\n")


def test_cairnctl_help_matches_etcdctl_for_commands():
    """Command help is etcdctl's text (the program name aside)."""
    env = clean_env({"ETCDCTL_API": "2"})
    for c in ["get", "set", "mk", "mkdir", "setdir", "update", "updatedir", "rm", "rmdir", "ls",
              "watch", "exec-watch", "cluster-health", "member"]:
        want = subprocess.run([ETCDCTL_BIN, c, "--help"], capture_output=True, env=env, timeout=10)
        got = subprocess.run([CAIRNCTL_BIN, c, "--help"], capture_output=True, env=env, timeout=10)
        assert got.stdout.decode().replace("cairnctl", "etcdctl") == want.stdout.decode(), c
        assert got.returncode == want.returncode
