#!/usr/bin/python3
"""3-member cluster benchmarks of cairn and etcd on the v2 keys API.

For each server: starts fresh 3-member clusters on 127.0.0.1 ephemeral ports (data dirs on a
real file system), drives PUTs with cn_loadgen through the leader and through a follower, and
measures failover (leader SIGKILL to the first successful PUT through a surviving member).
Stops only the processes it started (by PID) and prints medians over --runs with the
cairn/etcd ratio next to the project's targets. Builds nothing: see bench/README.md.
"""

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (bench/benchlib.py: what bench.py and cluster.py share)
from benchlib import (BenchError, children_cpu_s, free_ports,  # noqa: E402
                      http_request, kernel_cpu_s, log, proc_cpu_s, run_loadgen,
                      system_busy_s)

benchlib.set_prog("cluster")

ROLES = ("leader", "follower")
MEMBERS = 3

# Project targets, as ratio cairn/etcd. "ge": the ratio must be at least the bound
# (higher is better); "le": at most (lower is better).
GOALS = {
    "put.leader.c64.ops_per_s": ("ge", 2.0, ">= 2x"),
    "failover_ms": ("le", 1.0, "<= 1x"),
}


class StartupError(BenchError):
    """The cluster never became ready: later samples on the same binary would fail alike."""


# ---------------------------------------------------------------- small helpers


def fs_type(path):
    """File system type of the mount holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best, fstype = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


def pctl(vals, q):
    """Nearest-rank percentile of vals (0 < q <= 1)."""
    if not vals:
        return None
    s = sorted(vals)
    k = max(1, min(len(s), int(q * len(s) + 0.999999)))
    return s[k - 1]


# ---------------------------------------------------------------- clusters


class Member:
    def __init__(self, cluster, idx, client_port, peer_port):
        self.cluster = cluster
        self.idx = idx
        self.name = "m%d" % idx
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = os.path.join(cluster.workdir, self.name + ".data")
        self.log_path = os.path.join(cluster.workdir, self.name + ".log")
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client_port

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stats(self):
        """(state, id, leader id) from GET /v2/stats/self."""
        status, body = http_request(self.client_port, "GET", "/v2/stats/self", timeout=0.5)
        if status != 200:
            raise ValueError("stats/self: status %d" % status)
        doc = json.loads(body)
        return doc.get("state"), doc.get("id"), (doc.get("leaderInfo") or {}).get("leader")

    def is_leader(self):
        """GET /v2/stats/leader answers 200 only on the member whose Raft state names itself
        leader (403 "not current leader" elsewhere). etcd 3.4's stats/self "state" is not
        enough: it turns to StateLeader on any Raft state change, a candidacy included, and
        back to StateFollower only when an append arrives."""
        status, _ = http_request(self.client_port, "GET", "/v2/stats/leader", timeout=0.5)
        return status == 200

    def put_ok(self, path, value, timeout=2.0):
        return benchlib.put_ok(self.client_port, path, value, timeout=timeout)

    def log_tail(self, n=12):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    %s| %s" % (self.name, line) for line in lines[-n:])


class Cluster:
    """MEMBERS processes of one server forming a fresh cluster in workdir."""

    def __init__(self, args, target, binary, workdir):
        self.args = args
        self.target = target
        self.binary = binary
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        ports = free_ports(2 * MEMBERS)
        self.members = [Member(self, i, ports[2 * i], ports[2 * i + 1]) for i in range(MEMBERS)]
        self.token = "cluster-bench-%d-%d" % (os.getpid(), ports[0])
        self.warned_loose = False  # followers do not name the leader: go by "state" alone

    def command(self, m):
        initial = ",".join("%s=%s" % (x.name, x.peer_url) for x in self.members)
        cmd = [
            self.binary,
            "--name", m.name,
            "--data-dir", m.data_dir,
            "--listen-client-urls", m.url,
            "--advertise-client-urls", m.url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", str(self.args.heartbeat_interval),
            "--election-timeout", str(self.args.election_timeout),
        ]
        if self.target == "etcd":
            cmd.append("--enable-v2")
        return cmd + self.args.extra[self.target]

    def start(self):
        """Spawns every member; returns the monotonic time just before the first spawn."""
        env = benchlib.server_env()
        t0 = time.monotonic()
        for m in self.members:
            _, m.proc = benchlib.spawn_server(self.command(m), m.log_path, "ab", self.workdir, env)
        return t0

    def tails(self):
        return "\n".join(m.log_tail() for m in self.members)

    def check_alive(self, what, allow_dead=()):
        err = StartupError if what == "start-up" else BenchError
        for m in self.members:
            if m in allow_dead:
                continue
            if m.proc is None or m.proc.poll() is not None:
                code = None if m.proc is None else m.proc.returncode
                raise err("%s member %s exited with status %s during %s\n%s"
                                 % (self.target, m.name, code, what, self.tails()))

    def find_leader(self, members=None, strict=None):
        """(leader, followers) when exactly one member says StateLeader, and answers 200 on
        /v2/stats/leader, and every other one says StateFollower with that leader's id (with
        strict=False: whatever leader it names); else None."""
        if strict is None:
            strict = not self.warned_loose
        members = members or [m for m in self.members if m.alive()]
        info = {}
        for m in members:
            try:
                info[m] = m.stats()
            except (OSError, http.client.HTTPException, ValueError):
                return None
        leaders = [m for m in members if info[m][0] == "StateLeader"]
        if len(leaders) != 1:
            return None
        lead = leaders[0]
        try:
            if not lead.is_leader():
                return None
        except (OSError, http.client.HTTPException):
            return None
        lid = info[lead][1]
        followers = [m for m in members if m is not lead]
        for f in followers:
            if info[f][0] != "StateFollower" or (strict and lid and info[f][2] != lid):
                return None
        return lead, followers

    def wait_ready(self, t0):
        """Waits for an agreed leader and a successful PUT through every member; returns
        (ms from t0, leader, followers)."""
        deadline = t0 + self.args.startup_timeout_s
        found = None
        pending = list(self.members)
        loose_since = None
        while True:
            self.check_alive("start-up")
            if found is None:
                found = self.find_leader()
            if found is None and self.find_leader(strict=False) is not None:
                # one leader, but the followers do not (yet) name it in leaderInfo.leader:
                # give them 3 s, then go on without that check
                loose_since = loose_since or time.monotonic()
                if time.monotonic() - loose_since > 3.0:
                    found = self.find_leader(strict=False)
                    if found is not None and not self.warned_loose:
                        self.warned_loose = True
                        log("%s: WARNING: followers do not name leader %s in /v2/stats/self "
                            "leaderInfo.leader; going by \"state\" alone" % (self.target, found[0].name))
            if found is not None:
                try:
                    while pending and pending[0].put_ok("/bench-ready", "1", timeout=1.0):
                        pending.pop(0)
                except (OSError, http.client.HTTPException):
                    pass
                if not pending:
                    # the leader may have moved while we waited: ask again
                    again = self.find_leader()
                    if again is not None and again[0] is found[0]:
                        return (time.monotonic() - t0) * 1000.0, found[0], found[1]
                    found = again
            if time.monotonic() > deadline:
                raise StartupError("%s: no agreed leader and PUT through every member within %.0f s\n%s"
                                 % (self.target, self.args.startup_timeout_s, self.tails()))
            time.sleep(0.005)

    def settle_leader(self, timeout_s):
        """find_leader(), retried every 10 ms for up to timeout_s (an election may be under
        way, or a member slow to answer); None if there is still no agreed leader."""
        t1 = time.monotonic()
        found = self.find_leader()
        while found is None and time.monotonic() - t1 < timeout_s:
            time.sleep(0.01)
            found = self.find_leader()
        return found

    def stop(self):
        # SIGTERM (etcd then tries to hand leadership over, which can take seconds once its
        # peers are gone), but SIGKILL when we are being interrupted
        hard = isinstance(sys.exc_info()[1], (SystemExit, KeyboardInterrupt))
        for m in self.members:
            if m.alive():
                m.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        for m in self.members:
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
            benchlib.forget_child(m.proc)


# ---------------------------------------------------------------- PUT load


def phase_put(args, target, binary, workdir, metrics, errors):
    cl = Cluster(args, target, binary, workdir)
    try:
        t0 = cl.start()
        ready_ms, lead, followers = cl.wait_ready(t0)
        metrics["ready_ms"] = ready_ms
        log("%s: 3 members ready (leader %s) after %.0f ms" % (target, lead.name, ready_ms))

        pre = run_loadgen(args, lead.url, "put", 64,
                          ["--keys", str(args.keys), "--requests", str(args.keys),
                           "--seq", "--prefix", "/bench"], log_errors=False)
        if pre["errors"]:
            raise BenchError("%s: preload of %d keys had %d errors (%s)"
                             % (target, args.keys, pre["errors"], pre["first_error"]))
        metrics["preload_ops_per_s"] = pre["ops_per_s"]

        noisy, changes = [], 0
        for conns in args.conns:
            for role in ROLES:
                cl.check_alive("PUT loads")
                # an election may be under way: give it the time of a few elections
                found = cl.settle_leader(10 * args.election_timeout / 1000.0)
                if found is None:
                    raise BenchError("%s: no agreed leader before PUT %s c%d" % (target, role, conns))
                if found[0] is not lead:
                    changes += 1
                    log("%s: WARNING: leader moved from %s to %s before PUT via %s @%d"
                        % (target, lead.name, found[0].name, role, conns))
                    lead, followers = found
                m = lead if role == "leader" else followers[0]
                pids = [x.proc.pid for x in cl.members]
                cpu0 = [proc_cpu_s(p) for p in pids]
                sys0, kern0, kids0 = system_busy_s(), kernel_cpu_s(), children_cpu_s()
                wall0 = time.monotonic()
                res = run_loadgen(args, m.url, "put", conns,
                                  ["--keys", str(args.keys), "--prefix", "/bench",
                                   "--duration-s", str(args.duration_s),
                                   "--warmup-s", str(args.warmup_s)], log_errors=False)
                cl.check_alive("PUT via %s @%d" % (role, conns))
                cpus = [proc_cpu_s(p) - c for p, c in zip(pids, cpu0)]
                wall = time.monotonic() - wall0
                loadgen_cpu = children_cpu_s() - kids0
                kern = kernel_cpu_s() - kern0
                # user-space CPU of anything other than these members and cn_loadgen
                other = max((system_busy_s() - sys0) - sum(cpus) - loadgen_cpu - kern, 0.0)
                after = cl.settle_leader(1.0)
                moved = after is None or after[0] is not lead
                key = "put.%s.c%d" % (role, conns)
                for field in ("ops_per_s", "p50_ms", "p99_ms", "errors", "count"):
                    metrics["%s.%s" % (key, field)] = res[field]
                metrics[key + ".member"] = m.name
                metrics[key + ".member_cores"] = [c / wall for c in cpus]
                metrics[key + ".server_cores"] = sum(cpus) / wall
                metrics[key + ".loadgen_cores"] = loadgen_cpu / wall
                metrics[key + ".kernel_cores"] = kern / wall
                metrics[key + ".other_cores"] = other / wall
                metrics[key + ".leader_moved"] = moved
                if res["errors"]:
                    errors.append("%s %s: %d errors (%s)" % (target, key, res["errors"], res["first_error"]))
                log("%s: PUT via %-8s (%s) conns=%-3d %7.0f ops/s  p50 %7.3f ms  p99 %7.3f ms  "
                    "errors %d  (cores: members %s, cn_loadgen %.2f, kernel %.2f, other %.2f)"
                    % (target, role, m.name, conns, res["ops_per_s"], res["p50_ms"], res["p99_ms"],
                       res["errors"], "/".join("%.2f" % (c / wall) for c in cpus),
                       loadgen_cpu / wall, kern / wall, other / wall))
                if moved:
                    changes += 1
                    log("%s: WARNING: leadership changed during PUT via %s @%d: that figure mixes "
                        "roles" % (target, role, conns))
                benchlib.warn_loadgen_bound(target, loadgen_cpu / wall, key)
                if other / wall > benchlib.NOISY_CORES:
                    noisy.append(key)
                if after is not None:
                    lead, followers = after
        benchlib.warn_noisy(target, noisy)
        metrics["noisy_loads"] = noisy
        metrics["leader_changes"] = changes
    finally:
        cl.stop()


# ---------------------------------------------------------------- failover


async def _http_status(port, method, path, body, timeout):
    """Status code of one request on a fresh connection (Connection: close); raises on
    failure or timeout. Reads only the status line and headers."""
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % (method, path, port)
            if body is not None:
                head += ("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n"
                         % len(body))
            writer.write(head.encode() + b"\r\n" + (body.encode() if body is not None else b""))
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            if method == "GET":
                hdrs = raw.decode("latin-1").lower()
                n = None
                for line in hdrs.split("\r\n"):
                    if line.startswith("content-length:"):
                        n = int(line.split(":", 1)[1])
                rest = await (reader.readexactly(n) if n is not None else reader.read())
            else:
                rest = b""
            return int(raw.split(b" ", 2)[1]), rest
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)


async def _failover_probe(args, cl, lead, survivors):
    """Writes to every member every --probe-interval-ms; after --failover-warm-s SIGKILLs the
    leader and waits for the first PUT sent after the kill that succeeds through a survivor."""
    interval = args.probe_interval_ms / 1000.0
    timeout = args.probe_timeout_ms / 1000.0
    st = {"t_kill": None, "first_ok": None, "first_via": None, "new_leader": None,
          "new_leader_name": None, "pre_ok": [], "pre_fail": 0, "post_fail": {}, "post_sent": 0,
          "inflight": {m.name: 0 for m in cl.members}}
    done = asyncio.Event()
    seq = [0]
    tasks = set()

    async def attempt(m):
        seq[0] += 1
        body = urllib.parse.urlencode({"value": "%d" % seq[0]})
        t_sent = time.monotonic()
        killed = st["t_kill"] is not None and t_sent >= st["t_kill"]
        if killed:
            st["post_sent"] += 1
        st["inflight"][m.name] += 1
        try:
            status, _ = await _http_status(m.client_port, "PUT", "/v2/keys/failover/%s" % m.name,
                                           body, timeout)
            why = None if status in (200, 201) else "status %d" % status
        except asyncio.TimeoutError:
            why = "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as e:
            why = type(e).__name__
        finally:
            st["inflight"][m.name] -= 1
        t_done = time.monotonic()
        if not killed:
            if st["t_kill"] is None or t_done < st["t_kill"]:
                if why is None:
                    st["pre_ok"].append((t_done - t_sent) * 1000.0)
                else:
                    st["pre_fail"] += 1
            return
        if why is None:
            if st["first_ok"] is None or t_done < st["first_ok"]:
                st["first_ok"], st["first_via"] = t_done, m.name
            done.set()
        else:
            st["post_fail"][why] = st["post_fail"].get(why, 0) + 1

    async def watch_leader():
        # after the kill: the first time a survivor says it is the leader (see is_leader)
        while st["new_leader"] is None:
            for m in survivors:
                try:
                    status, _ = await _http_status(m.client_port, "GET", "/v2/stats/leader", None, 0.2)
                    if status == 200:
                        if st["new_leader"] is None:
                            st["new_leader"], st["new_leader_name"] = time.monotonic(), m.name
                except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError,
                        asyncio.LimitOverrunError, ValueError, IndexError):
                    pass
            if st["new_leader"] is None:
                await asyncio.sleep(0.005)
        done.set()

    def spawn(coro):
        t = asyncio.ensure_future(coro)
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    t_start = time.monotonic()
    kill_at = t_start + args.failover_warm_s
    deadline = kill_at + args.failover_timeout_s
    watcher = None
    try:
        while True:
            now = time.monotonic()
            # done: a write went through; also wait (a little) for the new leader to be seen
            if st["first_ok"] is not None and (st["new_leader"] is not None
                                               or now - st["first_ok"] > 2.0):
                break
            if st["t_kill"] is None and now >= kill_at:
                if st["pre_fail"] or not st["pre_ok"]:
                    raise BenchError("%s: writes failed before the kill (%d ok, %d failed)"
                                     % (cl.target, len(st["pre_ok"]), st["pre_fail"]))
                cl.check_alive("the light write load")
                st["t_kill"] = time.monotonic()
                os.kill(lead.proc.pid, signal.SIGKILL)
                watcher = asyncio.ensure_future(watch_leader())
            if now > deadline:
                raise BenchError("%s: no successful PUT through %s within %.0f s of the kill "
                                 "(failures: %s)\n%s"
                                 % (cl.target, "/".join(m.name for m in survivors),
                                    args.failover_timeout_s, st["post_fail"], cl.tails()))
            for m in (survivors if st["t_kill"] is not None else cl.members):
                if st["inflight"][m.name] < args.probe_max_inflight:
                    spawn(attempt(m))
            done.clear()
            try:
                await asyncio.wait_for(done.wait(), interval)
            except asyncio.TimeoutError:
                pass
    finally:
        for t in list(tasks) + ([watcher] if watcher else []):
            t.cancel()
        await asyncio.gather(*tasks, *([watcher] if watcher else []), return_exceptions=True)
    return st


def failover_sample(args, target, binary, workdir):
    cl = Cluster(args, target, binary, workdir)
    try:
        t0 = cl.start()
        ready_ms, lead, followers = cl.wait_ready(t0)
        st = asyncio.run(_failover_probe(args, cl, lead, followers))
        lead.proc.wait(timeout=10)
        benchlib.forget_child(lead.proc)
        cl.check_alive("failover", allow_dead=(lead,))
        t_kill = st["t_kill"]
        return {
            "ready_ms": ready_ms,
            "killed": lead.name,
            "failover_ms": (st["first_ok"] - t_kill) * 1000.0,
            "first_write_via": st["first_via"],
            "new_leader_ms": None if st["new_leader"] is None else (st["new_leader"] - t_kill) * 1000.0,
            "new_leader": st["new_leader_name"],
            "pre_kill_writes": len(st["pre_ok"]),
            "pre_kill_p50_ms": pctl(st["pre_ok"], 0.5),
            "pre_kill_p99_ms": pctl(st["pre_ok"], 0.99),
            "post_kill_sent": st["post_sent"],
            "post_kill_failures": st["post_fail"],
        }
    finally:
        cl.stop()


def phase_failover(args, target, binary, workdir, metrics, errors):
    samples = []
    for i in range(args.failover_samples):
        sub = os.path.join(workdir, "sample-%d" % i)
        try:
            s = failover_sample(args, target, binary, sub)
            if not args.keep:
                shutil.rmtree(sub, ignore_errors=True)  # etcd preallocates 64 MiB WALs per member
        except BenchError as e:
            errors.append(str(e))
            log("%s: failover sample %d failed: %s" % (target, i + 1, e))
            if isinstance(e, StartupError):
                log("%s: the cluster did not start; skipping the remaining failover samples" % target)
                break
            continue
        samples.append(s)
        seen = "never seen" if s["new_leader_ms"] is None else "seen after %.0f ms" % s["new_leader_ms"]
        log("%s: failover %d/%d: killed leader %s; new leader %s %s, first PUT "
            "(via %s) after %.0f ms; light load before: %d writes, p50 %.2f ms; after the kill: "
            "%d sent, failures %s"
            % (target, i + 1, args.failover_samples, s["killed"], s["new_leader"], seen,
               s["first_write_via"], s["failover_ms"], s["pre_kill_writes"], s["pre_kill_p50_ms"],
               s["post_kill_sent"], s["post_kill_failures"] or "none"))
    metrics["failover_samples"] = samples
    if samples:
        metrics["failover_ms"] = statistics.median(s["failover_ms"] for s in samples)
        seen = [s["new_leader_ms"] for s in samples if s["new_leader_ms"] is not None]
        if seen:
            metrics["failover_leader_ms"] = statistics.median(seen)
        metrics.setdefault("ready_ms", statistics.median(s["ready_ms"] for s in samples))


def run_once(args, target, binary, run_no):
    return benchlib.run_once(args, target, binary, run_no, "cairn-cluster",
                             (("put", phase_put), ("failover", phase_failover)),
                             keep_on_errors=True)


# ---------------------------------------------------------------- report


def metric_rows(args):
    """(key, label, unit, higher_is_better) in table order."""
    rows = []
    for role in ROLES:
        for c in args.conns:
            for field, label, unit, hib in (("ops_per_s", "ops/s", "", True),
                                             ("p50_ms", "p50", "ms", False),
                                             ("p99_ms", "p99", "ms", False)):
                rows.append(("put.%s.c%d.%s" % (role, c, field),
                             "PUT via %s @%d conns %s" % (role, c, label), unit, hib))
    rows += [
        ("failover_ms", "failover: leader SIGKILL to first PUT", "ms", False),
        ("failover_leader_ms", "failover: SIGKILL to new leader seen", "ms", False),
        ("ready_ms", "start-up: spawn to leader + PUT via all", "ms", False),
    ]
    return rows


def medians(runs):
    out = benchlib.medians(runs)
    # failover: the median of every sample of every run (each a fresh cluster), not of medians
    samples = [s for r in runs for s in r["metrics"].get("failover_samples", [])]
    if samples:
        out["failover_ms"] = statistics.median(s["failover_ms"] for s in samples)
        seen = [s["new_leader_ms"] for s in samples if s["new_leader_ms"] is not None]
        if seen:
            out["failover_leader_ms"] = statistics.median(seen)
    return out


def samples_line(results, t):
    vals = sorted(s["failover_ms"] for r in results[t]["runs"]
                  for s in r["metrics"].get("failover_samples", []))
    return " ".join("%.0f" % v for v in vals)


def print_table(args, results, rows):
    def target_lines(t, info):
        lines = []
        if "failover" in args.phases:
            lines.append("    failover samples (ms): %s" % (samples_line(results, t) or "none"))
        lines += benchlib.noisy_lines(info)
        moved = sum(r["metrics"].get("leader_changes", 0) for r in info["runs"])
        if moved:
            lines.append("    leadership changed %d time(s) around the PUT loads" % moved)
        return lines

    benchlib.print_table(
        results, rows,
        "3-member clusters on 127.0.0.1, election timeout %d ms, heartbeat %d ms; PUT %d-byte values"
        " over %d keys, %.0f s per load (+%.1f s warm-up); median of %d run%s, failover median of"
        " every sample (%d fresh cluster%s per run)"
        % (args.election_timeout, args.heartbeat_interval, args.value_size, args.keys,
           args.duration_s, args.warmup_s, args.runs, "" if args.runs == 1 else "s",
           args.failover_samples, "" if args.failover_samples == 1 else "s"),
        target_lines)


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    benchlib.add_binary_args(p)
    p.add_argument("--only", choices=("cairn", "etcd", "both"), default="both",
                   help="which server(s); 'both' runs whichever exist")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat everything N times (servers taking turns), report medians")
    p.add_argument("--phases", default="put,failover", help="comma-separated subset of put,failover")
    p.add_argument("--conns", default="16,64,256", help="comma-separated connection counts")
    p.add_argument("--duration", "--duration-s", dest="duration_s", type=float, default=10.0,
                   help="seconds per PUT load")
    p.add_argument("--warmup", "--warmup-s", dest="warmup_s", type=float, default=1.0,
                   help="unmeasured seconds before each PUT load")
    p.add_argument("--keys", type=int, default=10000, help="key space of the PUT loads")
    p.add_argument("--value-size", type=int, default=256, help="bytes per value")
    p.add_argument("--election-timeout", type=int, default=1000, help="ms, given to every member")
    p.add_argument("--heartbeat-interval", type=int, default=100, help="ms, given to every member")
    p.add_argument("--failover-samples", type=int, default=3,
                   help="failovers per run, each on a fresh cluster")
    p.add_argument("--failover-warm-s", type=float, default=1.0,
                   help="seconds of light write load before the leader is killed")
    p.add_argument("--failover-timeout-s", type=float, default=30.0,
                   help="give up when no write succeeds this long after the kill")
    p.add_argument("--probe-interval-ms", type=float, default=5.0,
                   help="a new PUT to each member this often during failover (light load)")
    p.add_argument("--probe-timeout-ms", type=float, default=500.0,
                   help="failover PUTs that take longer are abandoned")
    p.add_argument("--probe-max-inflight", type=int, default=100,
                   help="at most this many failover PUTs outstanding per member")
    p.add_argument("--startup-timeout-s", type=float, default=60.0)
    p.add_argument("--tmpdir", help="where data dirs are created (must be a real disk: fsync)")
    p.add_argument("--allow-tmpfs", action="store_true", help="allow --tmpdir on tmpfs")
    p.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    p.add_argument("--cairn-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for every cairn member (repeatable)")
    p.add_argument("--etcd-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for every etcd member (repeatable)")
    p.add_argument("--json", metavar="OUT", help="also write all results as JSON to OUT")
    p.add_argument("--markdown", metavar="OUT", help="also write the table as Markdown to OUT")
    a = p.parse_args(argv)

    try:
        a.conns = [int(x) for x in a.conns.split(",") if x]
    except ValueError:
        p.error("--conns: comma-separated integers")
    if not a.conns or min(a.conns) < 1:
        p.error("--conns: positive integers")
    a.phases = set(x for x in a.phases.split(",") if x)
    if not a.phases or not a.phases <= {"put", "failover"}:
        p.error("--phases: use put and/or failover")
    if a.runs < 1 or a.failover_samples < 1:
        p.error("--runs and --failover-samples must be at least 1")
    if a.keys < 1 or a.duration_s <= 0:
        p.error("--keys and --duration must be positive")
    if a.heartbeat_interval < 1 or a.election_timeout < 5 * a.heartbeat_interval:
        p.error("--election-timeout must be at least 5 x --heartbeat-interval (etcd refuses less)")
    if a.probe_interval_ms <= 0 or a.probe_timeout_ms <= 0 or a.probe_max_inflight < 1:
        p.error("--probe-* must be positive")
    a.extra = {"cairn": a.cairn_arg, "etcd": a.etcd_arg}
    return a


def main(argv):
    args = parse_args(argv)
    benchlib.install_signal_handlers()

    if "put" in args.phases and benchlib.loadgen_missing(args.loadgen):
        return 2
    tmp = args.tmpdir or tempfile.gettempdir()
    fst = fs_type(tmp)
    if fst in ("tmpfs", "ramfs") and not args.allow_tmpfs:
        log("%s is on %s: fsync would cost nothing; pass --tmpdir on a real disk (or --allow-tmpfs)"
            % (tmp, fst))
        return 2
    log("data dirs under %s (%s)" % (tmp, fst))

    planned = benchlib.plan_targets(args, args.only, strict=args.only != "both")
    if planned is None:
        return 2
    results, plan = planned

    started, loadavg_start = benchlib.run_all(args, results, plan, run_once, medians)
    rows = benchlib.compare(metric_rows(args), GOALS, results)
    print_table(args, results, rows)

    params = {k: getattr(args, k) for k in (
        "runs", "conns", "duration_s", "warmup_s", "keys", "value_size",
        "election_timeout", "heartbeat_interval", "failover_samples",
        "failover_warm_s", "probe_interval_ms", "probe_timeout_ms")}
    params["phases"] = sorted(args.phases)
    benchlib.write_outputs(args, started, loadavg_start, {"tmpdir_fs": fst, "params": params},
                           results, rows)
    return benchlib.exit_status(results, plan)


if __name__ == "__main__":
    benchlib.run_main(main)
