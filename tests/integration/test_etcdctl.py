"""etcdctl (v2 mode, ETCDCTL_API=2) against the server: stdout, stderr, exit codes."""

import json
import subprocess

import pytest

from harness import ETCDCTL_BIN, clean_env, watch_registered

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(ETCDCTL_BIN),
                                reason=f"{ETCDCTL_BIN} not installed")


class Ctl:
    def __init__(self, member):
        self.m = member
        self.env = clean_env({"ETCDCTL_API": "2"})

    def argv(self, *args):
        return [ETCDCTL_BIN, "--endpoints", self.m.client_url, *args]

    def __call__(self, *args, timeout=20):
        p = subprocess.run(self.argv(*args), env=self.env, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def popen(self, *args):
        return subprocess.Popen(self.argv(*args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)


@pytest.fixture
def ctl(member):
    return Ctl(member)


def test_set_get(ctl):
    assert ctl("set", "/ctl/a", "1") == (0, "1\n", "")
    assert ctl("get", "/ctl/a") == (0, "1\n", "")
    assert ctl.m.get("/v2/keys/ctl/a").json()["node"]["value"] == "1"


def test_get_missing(ctl):
    idx = ctl.m.index()
    assert ctl("get", "/nope") == (4, "", f"Error:  100: Key not found (/nope) [{idx}]\n")


def test_get_dir(ctl):
    ctl("mkdir", "/d")
    rc, out, err = ctl("get", "/d")
    assert (rc, out, err) == (1, "", "/d: is a directory\n")


def test_mk(ctl):
    assert ctl("mk", "/ctl/a", "1") == (0, "1\n", "")
    idx = ctl.m.index()
    assert ctl("mk", "/ctl/a", "2") == (
        4, "", f"Error:  105: Key already exists (/ctl/a) [{idx}]\n")
    assert ctl.m.get("/v2/keys/ctl/a").json()["node"]["value"] == "1"


def test_mk_in_order(ctl):
    idx = ctl.m.index()
    assert ctl("mk", "--in-order", "/q", "job1") == (0, "job1\n", "")
    assert ctl("ls", "/q") == (0, f"/q/{idx + 1:020d}\n", "")


def test_mkdir_setdir_updatedir(ctl):
    assert ctl("mkdir", "/d") == (0, "", "")
    idx = ctl.m.index()
    assert ctl("mkdir", "/d") == (4, "", f"Error:  105: Key already exists (/d) [{idx}]\n")
    assert ctl("setdir", "/sd") == (0, "", "")
    assert ctl("updatedir", "/sd", "--ttl", "100") == (0, "", "")
    n = ctl.m.get("/v2/keys/sd").json()["node"]
    assert n["dir"] is True and n["ttl"] in (99, 100)


def test_ls(ctl):
    ctl("set", "/l/a", "1")
    ctl("set", "/l/b/c", "2")
    ctl("mkdir", "/l/e")
    assert ctl("ls", "--sort", "/l") == (0, "/l/a\n/l/b\n/l/e\n", "")
    assert ctl("ls", "--sort", "--recursive", "/l") == (0, "/l/a\n/l/b\n/l/b/c\n/l/e\n", "")
    assert ctl("ls", "--sort", "--recursive", "-p", "/l") == (
        0, "/l/a\n/l/b/\n/l/b/c\n/l/e/\n", "")
    assert ctl("ls", "/l/a") == (0, "/l/a\n", "")
    assert ctl("ls", "--sort", "/") == (0, "/l\n", "")
    idx = ctl.m.index()
    assert ctl("ls", "/nope") == (4, "", f"Error:  100: Key not found (/nope) [{idx}]\n")


def test_update(ctl):
    ctl("set", "/u", "1")
    assert ctl("update", "/u", "2") == (0, "2\n", "")
    idx = ctl.m.index()
    assert ctl("update", "/zz", "3") == (4, "", f"Error:  100: Key not found (/zz) [{idx}]\n")


def test_set_swap(ctl):
    ctl("set", "/s", "1")
    assert ctl("set", "/s", "2", "--swap-with-value", "1") == (0, "2\n", "")
    idx = ctl.m.index()
    assert ctl("set", "/s", "3", "--swap-with-value", "1") == (
        4, "", f"Error:  101: Compare failed ([1 != 2]) [{idx}]\n")
    assert ctl("set", "/s", "3", "--swap-with-index", str(idx)) == (0, "3\n", "")


def test_rm_rmdir(ctl):
    ctl("set", "/r/a", "x")
    ctl("mkdir", "/r/d")
    assert ctl("rm", "/r/a") == (0, "PrevNode.Value: x\n", "")
    assert ctl("rmdir", "/r/d") == (0, "", "")
    ctl("set", "/r/sub/k", "v")
    idx = ctl.m.index()
    assert ctl("rm", "/r") == (4, "", f"Error:  102: Not a file (/r) [{idx}]\n")
    assert ctl("rmdir", "/r") == (4, "", f"Error:  108: Directory not empty (/r) [{idx}]\n")
    assert ctl("rm", "--recursive", "/r") == (0, "", "")
    assert ctl.m.get("/v2/keys/r").status_code == 404
    idx = ctl.m.index()
    assert ctl("rm", "/r") == (4, "", f"Error:  100: Key not found (/r) [{idx}]\n")


def test_rm_with_value(ctl):
    ctl("set", "/c", "v")
    idx = ctl.m.index()
    assert ctl("rm", "/c", "--with-value", "w") == (
        4, "", f"Error:  101: Compare failed ([w != v]) [{idx}]\n")
    # compareAndDelete: etcdctl prints the (empty) node value, not PrevNode
    assert ctl("rm", "/c", "--with-value", "v") == (0, "\n", "")
    assert ctl.m.get("/v2/keys/c").status_code == 404


def test_output_formats(ctl):
    ctl("set", "/o", "val")
    idx = ctl.m.index()
    assert ctl("-o", "extended", "get", "/o") == (
        0, f"Key: /o\nCreated-Index: {idx}\nModified-Index: {idx}\nTTL: 0\nIndex: {idx}\n\nval\n",
        "")
    rc, out, err = ctl("-o", "json", "get", "/o")
    assert rc == 0 and err == ""
    assert out == ('{"action":"get","node":{"key":"/o","value":"val","nodes":null,'
                   f'"createdIndex":{idx},"modifiedIndex":{idx}}},"prevNode":null}}\n')
    ctl("set", "/t", "v", "--ttl", "100")
    rc, out, _ = ctl("-o", "json", "get", "/t")
    node = json.loads(out)["node"]
    assert node["ttl"] in (99, 100) and node["expiration"].endswith("Z")


def test_watch(ctl):
    p = ctl.popen("watch", "/w")
    try:
        watch_registered(ctl.m, 1, timeout=10)
        ctl.m.set("w", "hello")
        out, err = p.communicate(timeout=10)
        assert p.returncode == 0
        assert out == b"hello\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_watch_recursive(ctl):
    p = ctl.popen("watch", "--recursive", "/w")
    try:
        watch_registered(ctl.m, 1, timeout=10)
        ctl.m.set("w/x", "1")
        out, err = p.communicate(timeout=10)
        assert p.returncode == 0
        assert out == b"[set] /w/x\n1\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_watch_after_index(ctl):
    ctl("set", "/w", "first")
    idx = ctl.m.index()
    ctl("set", "/w", "second")
    # --after-index N watches from N+1: returns the second write at once
    assert ctl("watch", "--after-index", str(idx), "/w") == (0, "second\n", "")


def test_member_list(ctl):
    m = ctl.m
    assert ctl("member", "list") == (
        0, f"{m.id}: name={m.name} peerURLs={m.peer_url} clientURLs={m.client_url} "
           f"isLeader=true\n", "")


def test_cluster_health(ctl):
    m = ctl.m
    assert ctl("cluster-health") == (
        0, f"member {m.id} is healthy: got healthy result from {m.client_url}\n"
           "cluster is healthy\n", "")
