#!/usr/bin/python3
"""Side-by-side benchmarks of cairn and etcd on the v2 keys API.

Starts each server itself (ephemeral loopback ports, a fresh temp data dir), drives it with
cn_loadgen and/or wrk (--loadgens), optionally with busy cores beside it (--busy), measures
start-up, memory, data-dir size and restart time, stops only the processes it started (by PID)
and prints medians over --runs with the cairn/etcd ratio next to the project's targets. Builds
nothing: see bench/README.md.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (bench/benchlib.py: what bench.py and cluster.py share)
from benchlib import (BenchError, children_cpu_s, free_port, http_request, log,  # noqa: E402
                      proc_cpu_s, run_loadgen, run_wrk, system_busy_s, wrk_command)

benchlib.set_prog("bench")

OPS = ("put", "get", "qget")
OP_LABEL = {"put": "PUT", "get": "GET", "qget": "quorum GET"}
LOADGENS = ("cn", "wrk")
LOADGEN_NAME = {"cn": "cn_loadgen", "wrk": "wrk"}
# per load: (field, label, unit, higher is better); the JSON has p90_ms and mean_ms too
LOAD_FIELDS = (("ops_per_s", "ops/s", "", True),
               ("p50_ms", "p50", "ms", False),
               ("p99_ms", "p99", "ms", False),
               ("p999_ms", "p99.9", "ms", False),
               ("max_ms", "max", "ms", False))

# Project targets, as ratio cairn/etcd. "ge": the ratio must be at least the bound
# (higher is better); "le": at most (lower is better).
GOALS = {
    "put.c64.ops_per_s": ("ge", 3.0, ">= 3x"),
    "get.c64.ops_per_s": ("ge", 2.5, ">= 2.5x"),
    "qget.c64.ops_per_s": ("ge", 2.0, ">= 2x"),
    "put.c64.p99_ms": ("le", 0.5, "<= 1/2"),
    "rss_100k_mib": ("le", 1.0 / 6.0, "<= 1/6"),
    "startup_ms": ("le", 1.0 / 20.0, "<= 1/20"),
    "restart_get_ms": ("le", 1.0 / 5.0, "<= 1/5"),
}


def load_key(loadgen, op, conns):
    """Metric prefix of one load: "put.c64" for cn_loadgen (as always), "wrk.put.c64" for wrk."""
    return ("%s.c%d" if loadgen == "cn" else loadgen + ".%s.c%d") % (op, conns)


def goals_for(loadgen):
    """The targets, applied to loadgen's figures too (the same ratio must hold with wrk)."""
    if loadgen == "cn":
        return GOALS
    out = {k: v for k, v in GOALS.items() if k.split(".")[0] not in OPS}  # server figures
    out.update({loadgen + "." + k: v for k, v in GOALS.items() if k.split(".")[0] in OPS})
    return out


# ---------------------------------------------------------------- small helpers


def expected_value(i, size):
    """The value cn_loadgen stores under key i (see fill_value in cn_loadgen.c)."""
    digits = "%010d" % i
    return "".join(digits[j] if j < 10 else chr(97 + (i + j) % 26) for j in range(size))


def proc_status(pid):
    """VmRSS and VmHWM of pid in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def dir_size(path):
    """(apparent bytes, allocated bytes) of every file under path, like du -sb / du -s."""
    apparent = allocated = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


# ---------------------------------------------------------------- servers


class Server:
    """One cairn or etcd process on 127.0.0.1 ephemeral ports and its own data dir."""

    def __init__(self, target, binary, workdir, extra_args, startup_timeout_s):
        self.target = target
        self.binary = binary
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.data_dir = os.path.join(workdir, "data")
        self.extra_args = list(extra_args)
        self.timeout_s = startup_timeout_s
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self.proc = None
        self.starts = 0

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client_port

    def command(self):
        client = self.url
        peer = "http://127.0.0.1:%d" % self.peer_port
        name = "bench-" + self.target
        cmd = [
            self.binary,
            "--name", name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "%s=%s" % (name, peer),
        ]
        if self.target == "etcd":
            cmd.append("--enable-v2")
        return cmd + self.extra_args

    def spawn(self):
        """Starts the process; returns the monotonic time just before the spawn."""
        assert self.proc is None
        self.starts += 1
        env = benchlib.server_env()
        t0, self.proc = benchlib.spawn_server(
            self.command(), os.path.join(self.workdir, "server-%d.log" % self.starts), "wb",
            self.workdir, env)
        return t0

    def log_tail(self, n=15):
        path = os.path.join(self.workdir, "server-%d.log" % self.starts)
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in lines[-n:])

    def wait_until(self, t0, what, check):
        """Polls check() every 1 ms until it is true; returns ms since t0."""
        deadline = t0 + self.timeout_s
        while True:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with status %s while waiting for %s\n%s"
                                 % (self.target, self.proc.returncode, what, self.log_tail()))
            try:
                if check():
                    return (time.monotonic() - t0) * 1000.0
            except (OSError, http.client.HTTPException, ValueError):
                pass  # not up yet, or not answering sensibly yet
            if time.monotonic() > deadline:
                raise BenchError("%s: no %s within %.0f s\n%s"
                                 % (self.target, what, self.timeout_s, self.log_tail()))
            time.sleep(0.001)

    def version_ok(self):
        status, _ = http_request(self.client_port, "GET", "/version", timeout=0.5)
        return status == 200

    def put_ok(self, path, value):
        return benchlib.put_ok(self.client_port, path, value, timeout=2.0)

    def get_matches(self, path, value):
        status, body = http_request(self.client_port, "GET", "/v2/keys" + path, timeout=2.0)
        if status != 200:
            return False
        return json.loads(body).get("node", {}).get("value") == value

    def stop(self, sig=signal.SIGTERM, grace_s=15.0):
        if self.proc is None:
            return
        p = self.proc
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        benchlib.forget_child(p)
        self.proc = None


# ---------------------------------------------------------------- load


def measure_startups(args, target, binary, workdir, metrics):
    """Start-up on an empty data dir, --startup-samples times, each in a fresh dir."""
    to_version, to_put = [], []
    for i in range(args.startup_samples):
        sub = os.path.join(workdir, "startup-%d" % i)
        srv = Server(target, binary, sub, args.extra[target], args.startup_timeout_s)
        try:
            t0 = srv.spawn()
            to_version.append(srv.wait_until(t0, "200 on GET /version", srv.version_ok))
            to_put.append(srv.wait_until(t0, "a successful PUT",
                                         lambda: srv.put_ok("/bench-ready", "1")))
        finally:
            srv.stop()
    metrics["startup_ms"] = statistics.median(to_version)
    metrics["startup_put_ms"] = statistics.median(to_put)
    metrics["startup_ms_samples"] = to_version
    metrics["startup_put_ms_samples"] = to_put
    log("%s: start-up %.1f ms, first PUT %.1f ms (median of %d; samples %s)"
        % (target, metrics["startup_ms"], metrics["startup_put_ms"], len(to_version),
           " ".join("%.0f" % v for v in to_version)))


def measure_load(args, target, srv, workdir, lg, op, conns, key, metrics, errors):
    """One load (op at conns connections, by load generator lg) with --busy processes beside
    it; records its figures under key. Returns True when other processes were busy (noisy)."""
    busy = None
    if args.busy:
        busy = benchlib.BusyCores(args.busy, args.busy_kind, args.busy_path, workdir,
                                  args.warmup_s + args.duration_s + 60)
    try:
        if busy:
            busy.start()
        if lg == "cn":
            # cn_loadgen warms up inside the run; the window below includes its warm-up
            window = lambda: run_loadgen(  # noqa: E731
                args, srv.url, op, conns,
                ["--keys", str(args.keys), "--prefix", "/bench", "--duration-s", str(args.duration_s),
                 "--warmup-s", str(args.warmup_s)])
            warm = args.warmup_s
        else:
            # wrk has no warm-up: the same load by cn_loadgen first, outside the window
            if args.warmup_s > 0:
                run_loadgen(args, srv.url, op, conns,
                            ["--keys", str(args.keys), "--prefix", "/bench",
                             "--duration-s", str(args.warmup_s)], log_errors=False)
            cmd = wrk_command(args.wrk, srv.url, op, conns, args.wrk_threads, args.duration_s,
                              args.keys, "/bench", args.value_size, strict=args.wrk_strict)
            window = lambda: run_wrk(cmd, args.duration_s + 120)  # noqa: E731
            warm = 0.0
        cpu0 = proc_cpu_s(srv.proc.pid)
        busy0 = busy.cpu_s() if busy else 0.0
        sys0, kids0, wall0 = system_busy_s(), children_cpu_s(), time.monotonic()
        res = window()
        if srv.proc.poll() is not None:
            raise BenchError("%s exited with status %s during %s\n%s"
                             % (target, srv.proc.returncode, key, srv.log_tail()))
        cpu = proc_cpu_s(srv.proc.pid) - cpu0
        busy_cpu = (busy.cpu_s() - busy0) if busy else 0.0
        wall = time.monotonic() - wall0
        loadgen_cpu = children_cpu_s() - kids0
        # CPU burnt by anything other than this server, the load generator and our busy cores
        other = (system_busy_s() - sys0) - cpu - loadgen_cpu - busy_cpu
    finally:
        if busy:
            busy.stop()
    for field in ("ops_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
                  "errors", "count"):
        metrics["%s.%s" % (key, field)] = res[field]
    if lg == "wrk":
        for field in ("requests", "latency_source", "wrk_corrected_p99_ms", "wrk_corrected_p999_ms"):
            if field in res:
                metrics["%s.%s" % (key, field)] = res[field]
        if res.get("latency_source") != "ffi":
            log("%s: WARNING: wrk %s: latencies read via %s (see bench/wrk/common.lua)"
                % (target, key, res.get("latency_source")))
    # server CPU seconds per 1000 successful requests (cn_loadgen: warm-up included in cpu)
    total = res["count"] * (1.0 + warm / max(args.duration_s, 1e-9))
    metrics[key + ".cpu_ms_per_kop"] = cpu * 1e6 / total if total else None
    metrics[key + ".server_cores"] = cpu / wall
    metrics[key + ".other_cores"] = max(other, 0.0) / wall
    metrics[key + ".loadgen_cores"] = loadgen_cpu / wall
    if busy:
        metrics[key + ".busy_cores"] = busy_cpu / wall
    if res["errors"]:
        errors.append("%s %s: %d errors (%s)" % (target, key, res["errors"], res["first_error"]))
    name = LOADGEN_NAME[lg]
    log("%s: %-4s conns=%-3d %-10s %9.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f  max %7.3f ms"
        "  errors %d  (cores: server %.2f, %s %.2f,%s other processes %.2f)"
        % (target, op, conns, name, res["ops_per_s"], res["p50_ms"], res["p99_ms"], res["p999_ms"],
           res["max_ms"], res["errors"], cpu / wall, name, loadgen_cpu / wall,
           " busy %.2f," % (busy_cpu / wall) if busy else "", max(other, 0.0) / wall))
    benchlib.warn_loadgen_bound(target, loadgen_cpu / wall, key, name,
                                args.wrk_threads if lg == "wrk" else 1)
    if busy and busy_cpu / wall < 0.5 * args.busy:
        log("%s: WARNING: the %d busy process(es) got only %.2f cores during %s"
            % (target, args.busy, busy_cpu / wall, key))
    return other / wall > benchlib.NOISY_CORES


def phase_load(args, target, binary, workdir, metrics, errors):
    """Start-up samples, then the throughput/latency matrix on --keys keys."""
    measure_startups(args, target, binary, workdir, metrics)
    srv = Server(target, binary, os.path.join(workdir, "matrix"), args.extra[target],
                 args.startup_timeout_s)
    try:
        t0 = srv.spawn()
        srv.wait_until(t0, "a successful PUT", lambda: srv.put_ok("/bench-ready", "1"))

        pre = run_loadgen(args, srv.url, "put", 64,
                          ["--keys", str(args.keys), "--requests", str(args.keys), "--seq",
                           "--prefix", "/bench"])
        if pre["errors"]:
            raise BenchError("%s: preload of %d keys had %d errors" % (target, args.keys, pre["errors"]))
        metrics["preload_ops_per_s"] = pre["ops_per_s"]

        noisy = []
        for conns in args.conns:
            for op in args.ops:
                for lg in args.loadgens:  # generators take turns on each load: drift hits both
                    key = load_key(lg, op, conns)
                    if measure_load(args, target, srv, workdir, lg, op, conns, key, metrics, errors):
                        noisy.append(key)
        benchlib.warn_noisy(target, noisy)
        metrics["noisy_loads"] = noisy
    finally:
        srv.stop()


def phase_recovery(args, target, binary, workdir, metrics):
    """RSS and data-dir size after 100,000 keys, then kill + restart-to-first-GET."""
    srv = Server(target, binary, workdir, args.extra[target], args.startup_timeout_s)
    try:
        t0 = srv.spawn()
        srv.wait_until(t0, "a successful PUT", lambda: srv.put_ok("/bench-ready", "1"))
        n = args.big_keys
        res = run_loadgen(args, srv.url, "put", 64,
                          ["--keys", str(n), "--requests", str(n), "--seq", "--prefix", "/big"])
        if res["errors"]:
            raise BenchError("%s: writing %d keys had %d errors (%s)"
                             % (target, n, res["errors"], res["first_error"]))
        metrics["write_100k_ops_per_s"] = res["ops_per_s"]
        st = proc_status(srv.proc.pid)
        metrics["rss_100k_mib"] = st["VmRSS"] / 1048576.0
        metrics["hwm_100k_mib"] = st["VmHWM"] / 1048576.0
        apparent, allocated = dir_size(srv.data_dir)
        metrics["datadir_100k_mib"] = allocated / 1048576.0
        metrics["datadir_100k_apparent_mib"] = apparent / 1048576.0

        last = n - 1
        want = expected_value(last, args.value_size)
        if not srv.get_matches("/big/k%d" % last, want):
            raise BenchError("%s: /big/k%d does not hold the value written" % (target, last))
        restarts = []
        for _ in range(args.restart_samples):
            srv.stop(sig=args.kill_signal)
            t0 = srv.spawn()
            restarts.append(srv.wait_until(
                t0, "GET /big/k%d with its value" % last,
                lambda: srv.get_matches("/big/k%d" % last, want)))
        metrics["restart_get_ms"] = statistics.median(restarts)
        metrics["restart_get_ms_samples"] = restarts
        st = proc_status(srv.proc.pid)
        metrics["rss_restarted_mib"] = st["VmRSS"] / 1048576.0
        if not srv.get_matches("/big/k0", expected_value(0, args.value_size)):
            raise BenchError("%s: /big/k0 lost after restart" % target)
        log("%s: %d keys: RSS %.1f MiB, data dir %.1f MiB (apparent %.1f), restart-to-GET %.1f ms"
            " (median of %d; samples %s)"
            % (target, n, metrics["rss_100k_mib"], metrics["datadir_100k_mib"],
               metrics["datadir_100k_apparent_mib"], metrics["restart_get_ms"], len(restarts),
               " ".join("%.0f" % v for v in restarts)))
    finally:
        srv.stop()


def run_once(args, target, binary, run_no):
    phases = (("load", phase_load),
              ("recovery", lambda a, t, b, d, m, errors: phase_recovery(a, t, b, d, m)))
    # the temp dir is kept when a phase failed, not for errors inside a load
    return benchlib.run_once(args, target, binary, run_no, "cairn-bench", phases,
                             keep_on_errors=False)


# ---------------------------------------------------------------- report


def load_rows(args, lg):
    """(key, label, unit, higher_is_better) of lg's loads in table order."""
    rows = []
    fields = LOAD_FIELDS
    if args.busy:
        fields += (("busy_cores", "busy-core CPU", "cores", None),)
    for op in args.ops:
        for c in args.conns:
            for field, label, unit, hib in fields:
                rows.append(("%s.%s" % (load_key(lg, op, c), field),
                             "%s @%d conns %s" % (OP_LABEL[op], c, label), unit, hib))
    return rows


def server_rows(args):
    """The figures that do not depend on a load generator."""
    return [
        ("startup_ms", "start-up to /version 200", "ms", False),
        ("startup_put_ms", "start-up to first PUT", "ms", False),
        ("rss_100k_mib", "RSS after %d keys" % args.big_keys, "MiB", False),
        ("datadir_100k_mib", "data dir after %d keys (du)" % args.big_keys, "MiB", False),
        ("datadir_100k_apparent_mib", "data dir, apparent size", "MiB", False),
        ("restart_get_ms", "restart to first GET", "ms", False),
    ]


def sections(args, results):
    """[(loadgen, comparison rows)]: one per load generator, the server figures in the first."""
    out = []
    for i, lg in enumerate(args.loadgens):
        rows = load_rows(args, lg) + (server_rows(args) if i == 0 else [])
        crows = benchlib.compare(rows, goals_for(lg), results)
        for r in crows:
            r["loadgen"] = LOADGEN_NAME[lg]
        out.append((lg, crows))
    return out


def busy_text(args):
    if not args.busy:
        return ""
    return "%d busy core%s (%s) during every load" % (args.busy, "" if args.busy == 1 else "s",
                                                      benchlib.busy_label(args.busy_kind))


def loadgen_text(args, lg):
    """What a section's figures were taken with."""
    if lg == "cn":
        return "cn_loadgen (cairn's own; 1 thread, closed loop, %.1f s warm-up in the run)" % args.warmup_s
    return ("%s (-t%d, closed loop, %d s loads after %.1f s of cn_loadgen warm-up; wrk's "
            "coordinated-omission correction undone)"
            % (args.wrk_version or "wrk", args.wrk_threads,
               benchlib.wrk_duration_s(args.duration_s), args.warmup_s))


def print_table(args, results, secs):
    runs = args.runs
    title = ("v2 API, %d-byte values, %d keys, %.0f s per load (+%.1f s warm-up), median of %d run%s"
             % (args.value_size, args.keys, args.duration_s, args.warmup_s, runs,
                "" if runs == 1 else "s"))
    if args.busy:
        title += "\nWITH %s; its measured CPU is in the 'busy-core CPU' rows" % busy_text(args)
    benchlib.print_table(results, None, title,
                         sections=[("load generator: " + loadgen_text(args, lg), rows)
                                   for lg, rows in secs])


def markdown(args, secs):
    """The --markdown text: with cn_loadgen alone and no busy core, just the table (as in
    docs/benchmarks.md); otherwise one table per load generator, each under a caption line."""
    if len(secs) == 1 and not args.busy:
        return benchlib.markdown_table(secs[0][1])
    parts = []
    for lg, rows in secs:
        caption = "**%s**: %s" % (LOADGEN_NAME[lg], loadgen_text(args, lg))
        if args.busy:
            caption += "; %s" % busy_text(args)
        parts.append(caption + ".\n\n" + benchlib.markdown_table(rows))
    return "\n".join(parts)


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    benchlib.add_binary_args(p)
    p.add_argument("--target", choices=("cairn", "etcd", "both"), default="both")
    p.add_argument("--runs", type=int, default=1, help="repeat everything N times, report medians")
    p.add_argument("--quick", action="store_true",
                   help="conns 1 and 64 only, 2 s loads with 0.5 s warm-up")
    p.add_argument("--json", metavar="OUT", help="also write all results as JSON to OUT")
    p.add_argument("--markdown", metavar="OUT", help="also write the table as Markdown to OUT")
    p.add_argument("--conns", help="comma-separated connection counts [1,16,64,256]")
    p.add_argument("--ops", default="put,get,qget", help="comma-separated subset of put,get,qget")
    p.add_argument("--duration-s", type=float, help="seconds per load [10, quick 2]")
    p.add_argument("--warmup-s", type=float, help="unmeasured seconds before each load [1, quick 0.5]")
    p.add_argument("--keys", type=int, default=10000, help="key space of the load phase")
    p.add_argument("--value-size", type=int, default=256, help="bytes per value")
    p.add_argument("--big-keys", type=int, default=100000,
                   help="keys written before measuring RSS, data dir and restart")
    p.add_argument("--phases", default="load,recovery",
                   help="comma-separated subset of load (start-up + throughput), recovery")
    p.add_argument("--startup-samples", type=int,
                   help="start-ups per run on fresh data dirs; the run reports their median [5, quick 2]")
    p.add_argument("--restart-samples", type=int,
                   help="kill + restart cycles per run; the run reports their median [3, quick 1]")
    p.add_argument("--kill-signal", choices=("TERM", "KILL"), default="KILL",
                   help="how the server is stopped before the restart measurement")
    p.add_argument("--startup-timeout-s", type=float, default=60.0)
    p.add_argument("--tmpdir", help="where data dirs are created (its file system matters: fsync)")
    p.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    p.add_argument("--loadgens",
                   help="comma-separated load generators: cn (cn_loadgen), wrk [cn, plus wrk when installed]")
    p.add_argument("--wrk", default=shutil.which("wrk"), help="wrk binary (Debian's wrk 4.1.0)")
    p.add_argument("--wrk-threads", type=int, default=1,
                   help="wrk -t (1: one thread, like cn_loadgen, so it competes for the same share of 2 cores)")
    p.add_argument("--wrk-strict", action="store_true",
                   help="count every non-2xx answer as an error under wrk (slower: a Lua hook per response)")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="N processes each spinning one core during every load")
    p.add_argument("--busy-tool", choices=("auto", "stress-ng", "python"), default="auto",
                   help="what spins: stress-ng --cpu 1, or a Python loop (auto: stress-ng when installed)")
    p.add_argument("--cairn-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for cairn (repeatable)")
    p.add_argument("--etcd-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for etcd (repeatable)")
    a = p.parse_args(argv)

    a.conns = [int(x) for x in (a.conns or ("1,64" if a.quick else "1,16,64,256")).split(",")]
    a.ops = [x for x in a.ops.split(",") if x]
    for op in a.ops:
        if op not in OPS:
            p.error("--ops: unknown op %r" % op)
    a.phases = set(x for x in a.phases.split(",") if x)
    if not a.phases <= {"load", "recovery"}:
        p.error("--phases: use load and/or recovery")
    if a.duration_s is None:
        a.duration_s = 2.0 if a.quick else 10.0
    if a.warmup_s is None:
        a.warmup_s = 0.5 if a.quick else 1.0
    if a.startup_samples is None:
        a.startup_samples = 2 if a.quick else 5
    if a.restart_samples is None:
        a.restart_samples = 1 if a.quick else 3
    if a.startup_samples < 1 or a.restart_samples < 1:
        p.error("--startup-samples and --restart-samples must be at least 1")
    if a.runs < 1:
        p.error("--runs must be at least 1")
    if a.big_keys < 1 or a.keys < 1:
        p.error("--keys and --big-keys must be positive")
    if a.loadgens is None:
        a.loadgens = "cn,wrk" if a.wrk and os.access(a.wrk, os.X_OK) else "cn"
        a.loadgens_default = True
    else:
        a.loadgens_default = False
    a.loadgens = [x for x in a.loadgens.split(",") if x]
    if not a.loadgens or any(x not in LOADGENS for x in a.loadgens) or len(set(a.loadgens)) != len(a.loadgens):
        p.error("--loadgens: a comma-separated list of cn and/or wrk")
    if a.wrk_threads < 1:
        p.error("--wrk-threads must be at least 1")
    if a.busy < 0:
        p.error("--busy must be 0 or more")
    a.kill_signal = signal.SIGKILL if a.kill_signal == "KILL" else signal.SIGTERM
    a.extra = {"cairn": a.cairn_arg, "etcd": a.etcd_arg}
    return a


def main(argv):
    args = parse_args(argv)
    benchlib.install_signal_handlers()

    if benchlib.loadgen_missing(args.loadgen):  # needed with wrk too: preload, warm-up
        return 2
    args.wrk_version = ""
    if "wrk" in args.loadgens:
        if not (args.wrk and os.access(args.wrk, os.X_OK)):
            log("no wrk at %s; install it (apt-get install wrk, or scripts/deps.sh) or use --loadgens cn"
                % (args.wrk or "PATH"))
            return 2
        args.wrk = os.path.abspath(args.wrk)
        args.wrk_version = benchlib.wrk_version(args.wrk)
    elif args.loadgens_default and "load" in args.phases:
        log("wrk is not installed: cn_loadgen only (scripts/deps.sh installs it)")
    args.busy_kind, args.busy_path = benchlib.busy_tool(args.busy_tool)
    if args.busy:
        log("%s" % busy_text(args))

    planned = benchlib.plan_targets(args, args.target)
    if planned is None:
        return 2
    results, plan = planned

    started, loadavg_start = benchlib.run_all(args, results, plan, run_once)
    secs = sections(args, results)
    rows = [r for _, srows in secs for r in srows]
    print_table(args, results, secs)

    benchlib.write_outputs(args, started, loadavg_start, {
        "params": {"runs": args.runs, "conns": args.conns, "ops": args.ops,
                   "duration_s": args.duration_s, "warmup_s": args.warmup_s,
                   "keys": args.keys, "value_size": args.value_size,
                   "big_keys": args.big_keys, "kill_signal": args.kill_signal.name,
                   "startup_samples": args.startup_samples,
                   "restart_samples": args.restart_samples,
                   "loadgens": [LOADGEN_NAME[lg] for lg in args.loadgens],
                   "wrk": ({"binary": args.wrk, "version": args.wrk_version,
                            "threads": args.wrk_threads, "strict": args.wrk_strict,
                            "duration_s": benchlib.wrk_duration_s(args.duration_s),
                            "timeout_s": benchlib.WRK_TIMEOUT_S}
                           if "wrk" in args.loadgens else None),
                   "busy": {"n": args.busy, "tool": benchlib.busy_label(args.busy_kind) if args.busy else None}},
    }, results, rows, markdown=markdown(args, secs))
    return benchlib.exit_status(results, plan)


if __name__ == "__main__":
    benchlib.run_main(main)
