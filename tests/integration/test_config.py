"""Command line and ETCD_* environment handling (etcd-cluster.md section 1)."""

import re
import subprocess

import pytest
import requests

from harness import TARGET_ARGS, clean_env, free_port, server_binary


def run_exits(args, env=None, cwd=None, timeout=15):
    """Run the server expecting it to exit by itself; return (rc, stdout, stderr)."""
    try:
        p = subprocess.run([server_binary(), *args], env=clean_env(env), cwd=cwd,
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"server did not exit within {timeout}s: {args}\n"
                    f"{(exc.stderr or b'')[-2000:].decode(errors='replace')}")
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def single_member_flags(tmp_path, name="c1"):
    cp, pp = free_port(), free_port()
    return [
        "--name", name, "--data-dir", str(tmp_path / f"{name}.data"),
        "--listen-client-urls", f"http://127.0.0.1:{cp}",
        "--advertise-client-urls", f"http://127.0.0.1:{cp}",
        "--listen-peer-urls", f"http://127.0.0.1:{pp}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
        "--initial-cluster", f"{name}=http://127.0.0.1:{pp}",
    ] + TARGET_ARGS


# --------------------------------------------------------------------------
# --version / --help

def test_version_flag():
    """4 lines shaped like etcd's: "<x> Version: N.N.N", "Git SHA: ...",
    "<lang> Version: ...", "<lang> OS/Arch: os/arch"."""
    rc, out, err = run_exits(["--version"])
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert re.match(r"^(etcd|cairn) Version: [0-9]+\.[0-9]+\.[0-9]+", lines[0]), lines
    assert lines[1].startswith("Git SHA: "), lines
    assert re.match(r"^\S+ Version: \S", lines[2]), lines
    assert re.match(r"^\S+ OS/Arch: linux/\S+$", lines[3]), lines


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    rc, out, err = run_exits([flag])
    assert rc == 0
    text = out + err
    for f in ("--name", "--data-dir", "--listen-client-urls", "--initial-cluster"):
        assert f in text


# --------------------------------------------------------------------------
# Bad command lines

def test_unknown_flag(tmp_path):
    rc, out, err = run_exits(["--bogus-flag", "--data-dir", str(tmp_path / "d")])
    assert rc == 2
    naming = [line for line in err.splitlines() if "bogus-flag" in line]
    assert len(naming) == 1, err
    assert not (tmp_path / "d" / "member").exists()


def test_positional_argument(tmp_path):
    rc, out, err = run_exits(["extra", "--data-dir", str(tmp_path / "d")])
    assert rc == 1
    assert "'extra' is not a valid flag" in err


@pytest.mark.parametrize("args,needle", [
    (["--snapshot-count", "abc"], 'invalid value "abc" for flag -snapshot-count'),
    (["--heartbeat-interval", "x"], 'invalid value "x" for flag -heartbeat-interval'),
    (["--initial-cluster-state", "bogus"], 'invalid value "bogus" for flag -initial-cluster-state'),
])
def test_bad_flag_values(tmp_path, args, needle):
    rc, out, err = run_exits(args + ["--data-dir", str(tmp_path / "d")])
    assert rc != 0
    assert needle in err, err
    assert not (tmp_path / "d" / "member").exists()


def test_election_timeout_too_small(tmp_path):
    rc, out, err = run_exits(["--heartbeat-interval", "100", "--election-timeout", "400",
                              "--data-dir", str(tmp_path / "d")])
    assert rc == 1
    assert re.search(r"-election-timeout\[400ms\] should be at least as 5 times as "
                     r"-+heartbeat-interval\[100ms\]", err), err


@pytest.mark.cairn_only
def test_election_timeout_message_2x_spelling(tmp_path):
    rc, out, err = run_exits(["--heartbeat-interval", "100", "--election-timeout", "400",
                              "--data-dir", str(tmp_path / "d")])
    assert ("-election-timeout[400ms] should be at least as 5 times as "
            "-heartbeat-interval[100ms]") in err
    assert "--election-timeout[" not in err


def test_election_timeout_too_long(tmp_path):
    rc, out, err = run_exits(["--election-timeout", "60000", "--data-dir", str(tmp_path / "d")])
    assert rc == 1
    assert re.search(r"-election-timeout\[60000ms\] is too long, and should be set less than "
                     r"50000ms", err), err


def test_multiple_bootstrap_flags(tmp_path):
    rc, out, err = run_exits(["--data-dir", str(tmp_path / "d"),
                              "--initial-cluster", "default=http://127.0.0.1:1",
                              "--discovery", "http://127.0.0.1:1/x"])
    assert rc == 1
    assert ('multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", '
            '"discovery" or "discovery-srv"') in err


def test_local_name_missing_from_initial_cluster(tmp_path):
    pp = free_port()
    rc, out, err = run_exits(["--name", "zz", "--data-dir", str(tmp_path / "d"),
                              "--initial-cluster", f"other=http://127.0.0.1:{pp}",
                              "--listen-peer-urls", f"http://127.0.0.1:{pp}",
                              "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
                              "--listen-client-urls", f"http://127.0.0.1:{free_port()}",
                              "--advertise-client-urls", "http://127.0.0.1:1"] + TARGET_ARGS)
    assert rc == 1
    assert "couldn't find local name \"zz\" in the initial cluster configuration" in err


def test_bad_env_value(tmp_path):
    rc, out, err = run_exits(["--data-dir", str(tmp_path / "d")],
                             env={"ETCD_SNAPSHOT_COUNT": "abc"})
    assert rc != 0
    assert 'invalid value "abc" for ETCD_SNAPSHOT_COUNT' in err


def test_data_dir_under_regular_file(tmp_path):
    f = tmp_path / "plainfile"
    f.write_text("x")
    flags = single_member_flags(tmp_path)
    flags[flags.index("--data-dir") + 1] = str(f / "sub")
    rc, out, err = run_exits(flags)
    assert rc == 1
    assert str(f / "sub") in err or str(f) in err, err


# --------------------------------------------------------------------------
# Environment variables

def test_env_variables_configure_everything(member_factory):
    cp, pp = free_port(), free_port()
    env = {
        "ETCD_NAME": "envname",
        "ETCD_LISTEN_CLIENT_URLS": f"http://127.0.0.1:{cp}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://127.0.0.1:{cp}",
        "ETCD_LISTEN_PEER_URLS": f"http://127.0.0.1:{pp}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"http://127.0.0.1:{pp}",
        "ETCD_INITIAL_CLUSTER": f"envname=http://127.0.0.1:{pp}",
        "ETCD_INITIAL_CLUSTER_TOKEN": "env-token",
    }
    m = member_factory(name="envname", start=False, use_default_flags=False,
                       client_port=cp, peer_port=pp, token="env-token")
    env["ETCD_DATA_DIR"] = str(m.data_dir)
    m.env = env
    m.start()
    r = m.get("/v2/members")
    assert r.json() == {"members": [{"id": m.id, "name": "envname",
                                     "peerURLs": [m.peer_url], "clientURLs": [m.client_url]}]}
    assert r.headers["X-Etcd-Cluster-Id"] == m.cluster_id
    assert (m.data_dir / "member").is_dir()


def test_empty_env_value_is_ignored(member_factory):
    m = member_factory(env={"ETCD_SNAPSHOT_COUNT": "", "ETCD_CORS": ""})
    assert m.get("/v2/stats/self").json()["name"] == m.name


def test_unknown_env_variable_warns(member_factory):
    m = member_factory(env={"ETCD_BOGUS_SETTING": "1"})
    assert m.get("/health").status_code == 200
    assert "unrecognized environment variable ETCD_BOGUS_SETTING=1" in m.log_text()


@pytest.mark.cairn_only
def test_flag_wins_over_env(member_factory):
    m = member_factory(name="flagname", env={"ETCD_NAME": "envname"})
    assert m.get("/v2/stats/self").json()["name"] == "flagname"
    assert m.get("/v2/members").json()["members"][0]["name"] == "flagname"
    assert "ETCD_NAME" in m.log_text() and "shadowed" in m.log_text()


@pytest.mark.etcd_only
def test_flag_env_conflict_is_fatal_in_34(tmp_path):
    rc, out, err = run_exits(single_member_flags(tmp_path), env={"ETCD_NAME": "envname"})
    assert rc != 0
    assert ('conflicting environment variable "ETCD_NAME" is shadowed by corresponding '
            'command-line flag') in err


def test_default_data_dir_is_name_dot_etcd(member_factory):
    m = member_factory(name="dflt", start=False, overrides={"--data-dir": None})
    m.start()
    assert (m.workdir / "dflt.etcd" / "member").is_dir()
    assert m.set("k", "v")["node"]["value"] == "v"


@pytest.mark.parametrize("style", ["single-dash", "equals"])
def test_flag_syntax_variants(member_factory, style):
    m = member_factory(start=False)
    from harness import free_port as fp
    m.client_port, m.peer_port = fp(), fp()
    args = m.args()[1:]
    if style == "single-dash":
        args = [a[1:] if a.startswith("--") else a for a in args]
    else:
        out = []
        it = iter(args)
        for a in it:
            if a.startswith("--") and a not in ("--enable-v2",):
                out.append(f"{a}={next(it)}")
            else:
                out.append(a)
        args = out
    m.use_default_flags = False
    m.extra_args = args
    m.start()
    assert m.get("/v2/stats/self").json()["name"] == m.name


@pytest.mark.cairn_only
def test_enable_v2_flag_accepted(member_factory):
    m = member_factory(extra_args=["--enable-v2=true"])
    assert m.get("/v2/keys/").status_code == 200


@pytest.mark.cairn_only
def test_v2_served_without_enable_v2(member):
    """cairn serves the v2 API unconditionally (the harness passes no
    --enable-v2 to cairn)."""
    assert "--enable-v2" not in member.args()
    assert member.get("/v2/keys/").status_code == 200


# --------------------------------------------------------------------------
# Data dir lock

@pytest.mark.cairn_only
def test_second_server_on_same_data_dir(member, tmp_path):
    """etcd 3.4 blocks forever on the bbolt lock; cairn must exit 1 with a
    message about the lock / the data dir being in use."""
    flags = single_member_flags(tmp_path, name=member.name)
    flags[flags.index("--data-dir") + 1] = str(member.data_dir)
    rc, out, err = run_exits(flags, timeout=15)
    assert rc == 1
    assert re.search(r"lock|in use", err, re.I), err
    # the first one is unaffected
    assert member.get("/health").status_code == 200
    assert member.set("still", "ok")["node"]["value"] == "ok"


def test_listen_without_advertise_is_rejected(tmp_path):
    rc, out, err = run_exits(["--data-dir", str(tmp_path / "d"),
                              "--listen-client-urls", f"http://127.0.0.1:{free_port()}"])
    assert rc == 1
    assert not (tmp_path / "d" / "member").exists()


@pytest.mark.cairn_only
def test_listen_without_advertise_message(tmp_path):
    rc, out, err = run_exits(["--data-dir", str(tmp_path / "d"),
                              "--listen-client-urls", f"http://127.0.0.1:{free_port()}"])
    assert "-advertise-client-urls is required when -listen-client-urls is set explicitly" in err


def test_port_in_use_fails(member, tmp_path):
    flags = single_member_flags(tmp_path, name="other")
    i = flags.index("--listen-client-urls")
    flags[i + 1] = member.client_url
    rc, out, err = run_exits(flags)
    assert rc != 0
    assert "address already in use" in err.lower()
    assert requests.get(member.url("/health"), timeout=5).status_code == 200


# --------------------------------------------------------------------------
# etcd 2's legacy host:port flags (old CoreOS units still pass them)

@pytest.mark.cairn_only  # etcd 3.4 removed them
def test_legacy_addr_flags_set_the_urls(member_factory):
    cp, pp = free_port(), free_port()
    m = member_factory(name="legacy", start=False, use_default_flags=False,
                       client_port=cp, peer_port=pp,
                       extra_args=["--addr", f"127.0.0.1:{cp}", "--peer-addr", f"127.0.0.1:{pp}"])
    m.extra_args += ["--data-dir", str(m.data_dir), "--name", "legacy"]
    m.start()
    r = m.get("/v2/members")
    assert r.json() == {"members": [{"id": m.id, "name": "legacy",
                                     "peerURLs": [m.peer_url], "clientURLs": [m.client_url]}]}
    # -addr alone listens on every address with its port, as etcd 2 did
    assert f"url=http://0.0.0.0:{cp}" in m.log_text()


@pytest.mark.cairn_only
def test_legacy_addr_and_url_flag_conflict(tmp_path):
    rc, _, err = run_exits(single_member_flags(tmp_path) + ["--addr", "127.0.0.1:1"])
    assert rc == 1
    assert "Set only one of flags -advertise-client-urls and -addr" in err
