#!/usr/bin/python3
"""Side-by-side benchmarks of cairn and etcd on the v3 (gRPC) KV API.

Starts each server itself (one member, ephemeral loopback ports, a fresh temp data dir), drives it
with cn_v3load and/or etcd's own tools/benchmark (--loadgens cn,etcd; build the latter with
scripts/etcd_benchmark.sh), optionally with busy cores beside it (--busy), and measures Put,
linearizable Range and serializable Range at 1/16/64/256 concurrent streams, the RSS and data dir
after 100,000 keys and the restart to the first Range that returns the last of them. Prints
medians over --runs with the cairn/etcd ratio next to issue 11's targets. cairn's column is left
empty (and says why) when the cairn binary does not answer v3 Ranges yet. bench.py (the v2 API) is
untouched; this script borrows its Server class and helpers. Builds nothing: see bench/README.md.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
from benchlib import BenchError, children_cpu_s, log, proc_cpu_s, system_busy_s  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_v2", os.path.join(HERE, "bench.py"))
bench_v2 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_v2)
benchlib.set_prog("bench_v3")

OPS = ("put", "range", "srange")
OP_LABEL = {"put": "Put", "range": "Range (linearizable)", "srange": "Range (serializable)"}
LOADGENS = ("cn", "etcd")
LOADGEN_NAME = {"cn": "cn_v3load", "etcd": "etcd benchmark"}
LOAD_FIELDS = bench_v2.LOAD_FIELDS
DEFAULT_ETCD_BENCHMARK = os.path.join(benchlib.REPO, "build", "bench", "etcd-benchmark")

# Issue 11's targets at 64 streams, one member (ratio cairn/etcd).
GOALS = {
    "put.s64.ops_per_s": ("ge", 3.0, ">= 3x"),
    "range.s64.ops_per_s": ("ge", 3.0, ">= 3x"),
    "srange.s64.ops_per_s": ("ge", 3.0, ">= 3x"),
    "put.s64.p99_ms": ("le", 0.5, "<= 1/2"),
    "range.s64.p99_ms": ("le", 0.5, "<= 1/2"),
    "srange.s64.p99_ms": ("le", 0.5, "<= 1/2"),
    "rss_100k_mib": ("le", 1.0 / 3.0, "<= 1/3"),
}


def load_key(loadgen, op, streams):
    """"put.s64" for cn_v3load, "etcd.put.s64" for etcd's benchmark."""
    return ("%s.s%d" if loadgen == "cn" else loadgen + ".%s.s%d") % (op, streams)


def goals_for(loadgen):
    if loadgen == "cn":
        return GOALS
    out = {k: v for k, v in GOALS.items() if k.split(".")[0] not in OPS}
    out.update({loadgen + "." + k: v for k, v in GOALS.items() if k.split(".")[0] in OPS})
    return out


def conns_for(args, streams):
    """HTTP/2 connections carrying `streams` concurrent RPCs: --conns, at most one per stream."""
    return max(1, min(args.conns, streams))


class Server(bench_v2.Server):
    """bench.py's server (same flags: cairn takes etcd's), without etcd's --enable-v2."""

    def command(self):
        return [a for a in super().command() if a != "--enable-v2"]

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port


# ---------------------------------------------------------------- cn_v3load and etcd's benchmark


def run_v3load(args, endpoint, extra, timeout_s=None, log_errors=True):
    """One cn_v3load run; returns its JSON result (exit 0 or 3: finished, maybe with errors)."""
    cmd = [args.v3load, "--endpoint", endpoint, "--value-size", str(args.value_size)] + extra
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=timeout_s or (args.duration_s + args.warmup_s + 700))
    except subprocess.TimeoutExpired:
        raise BenchError("cn_v3load hung: %s" % " ".join(cmd))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode not in (0, 2, 3) or not lines:
        raise BenchError("cn_v3load failed (exit %d): %s\n    %s"
                         % (out.returncode, " ".join(cmd), out.stderr.strip() or out.stdout.strip()))
    res = json.loads(lines[-1])
    if log_errors and res["errors"]:
        log("  %s: %d errors (first: %s)" % (" ".join(extra[:6]), res["errors"], res["first_error"]))
    return res


def probe(args, srv, t0, what, timeout_s, key=None, prefix=None):
    """Ms from t0 until a Range succeeds (with key: returns key with its value), by cn_v3load
    --probe retrying every ms; raises BenchError with the last reason after timeout_s."""
    extra = ["--probe", "--timeout-s", "%.1f" % timeout_s]
    if key is not None:
        extra += ["--probe-key", str(key), "--prefix", prefix]
    res = run_v3load(args, srv.endpoint, extra, timeout_s=timeout_s + 30, log_errors=False)
    ms = (time.monotonic() - t0) * 1000.0
    if not res.get("probe_ok"):
        if srv.proc.poll() is not None:
            raise BenchError("%s exited with status %s while waiting for %s\n%s"
                             % (srv.target, srv.proc.returncode, what, srv.log_tail()))
        raise BenchError("%s: no %s within %.0f s (%s)"
                         % (srv.target, what, timeout_s, res.get("first_error")))
    return ms


def etcd_benchmark_command(args, endpoint, op, conns, streams, total, key):
    cmd = [args.etcd_benchmark, "--endpoints", endpoint, "--conns", str(conns),
           "--clients", str(streams), "--precise"]
    if op == "put":
        cmd += ["put", "--key-size", "8", "--val-size", str(args.value_size),
                "--key-space-size", str(args.keys), "--total", str(total)]
    else:
        cmd += ["range", key, "--consistency", "l" if op == "range" else "s", "--total", str(total)]
    return cmd


_SECS = r"([0-9.eE+-]+) secs"


def parse_etcd_benchmark(text, total):
    """cn_v3load's shape from the report of etcd's benchmark (pkg/report, --precise)."""
    def field(name):
        m = re.search(r"^\s*%s:\s*%s" % (name, _SECS), text, re.M)
        if not m:
            raise BenchError("no %s in etcd benchmark's report" % name)
        return float(m.group(1))
    m = re.search(r"^\s*Requests/sec:\s*([0-9.eE+-]+)", text, re.M)
    if not m:
        raise BenchError("no Requests/sec in etcd benchmark's report:\n%s" % text[-1500:])
    pct = {float(p): float(v) for p, v in re.findall(r"^\s*([0-9.]+)% in " + _SECS, text, re.M)}
    errors = 0
    first = ""
    em = text.find("Error distribution:")
    if em >= 0:
        for n, msg in re.findall(r"^\s*\[(\d+)\]\s*(.*)$", text[em:], re.M):
            errors += int(n)
            first = first or msg.strip()
    res = {"loadgen": "etcd-benchmark", "ops_per_s": float(m.group(1)),
           "elapsed_s": field("Total"), "max_ms": field("Slowest") * 1000.0,
           "mean_ms": field("Average") * 1000.0, "errors": errors, "first_error": first,
           "count": total - errors}
    for q, key in ((50.0, "p50_ms"), (90.0, "p90_ms"), (99.0, "p99_ms"), (99.9, "p999_ms")):
        if q not in pct:
            raise BenchError("no %g%% latency in etcd benchmark's report" % q)
        res[key] = pct[q] * 1000.0
    return res


def run_etcd_benchmark(cmd, total, timeout_s):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                             env=benchlib.server_env())
    except subprocess.TimeoutExpired:
        raise BenchError("etcd benchmark hung: %s" % " ".join(cmd))
    if out.returncode != 0:
        raise BenchError("etcd benchmark failed (exit %d): %s\n    %s"
                         % (out.returncode, " ".join(cmd), (out.stderr or out.stdout)[-1500:]))
    return parse_etcd_benchmark(out.stdout + "\n" + out.stderr, total)


# ---------------------------------------------------------------- phases


def wait_ready(args, srv, t0):
    """Ms until the first successful Range."""
    return probe(args, srv, t0, "successful Range", args.startup_timeout_s)


def measure_load(args, target, srv, workdir, lg, op, streams, key, metrics, errors):
    """One load with --busy processes beside it; records its figures under key. Returns True
    when other processes were busy (noisy)."""
    conns = conns_for(args, streams)
    base = ["--op", op, "--conns", str(conns), "--streams", str(streams), "--keys", str(args.keys),
            "--prefix", "bench/"]
    busy = None
    if args.busy:
        busy = benchlib.BusyCores(args.busy, args.busy_kind, args.busy_path, workdir,
                                  args.warmup_s + args.duration_s * 3 + 120)
    try:
        if busy:
            busy.start()
        if lg == "cn":
            window = lambda: run_v3load(  # noqa: E731
                args, srv.endpoint, base + ["--duration-s", str(args.duration_s),
                                            "--warmup-s", str(args.warmup_s)])
            warm = args.warmup_s
        else:
            # etcd's benchmark counts requests and has no warm-up: cn_v3load warms up first,
            # and the total is what cn_v3load did in --duration-s on this load (so ~as long)
            if args.warmup_s > 0:
                run_v3load(args, srv.endpoint, base + ["--duration-s", str(args.warmup_s)],
                           log_errors=False)
            cn_ops = metrics.get(load_key("cn", op, streams) + ".ops_per_s")
            total = int(cn_ops * args.duration_s) if cn_ops else args.etcd_total
            total = max(total, 10 * streams, 1000)
            cmd = etcd_benchmark_command(args, srv.endpoint, op, conns, streams, total, "bench/k0")
            window = lambda: run_etcd_benchmark(cmd, total, args.duration_s * 20 + 120)  # noqa: E731
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
        other = (system_busy_s() - sys0) - cpu - loadgen_cpu - busy_cpu
    finally:
        if busy:
            busy.stop()
    for field in ("ops_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
                  "errors", "count"):
        metrics["%s.%s" % (key, field)] = res[field]
    if lg == "cn":
        metrics[key + ".misses"] = res["misses"]
        if res["misses"] and op != "put":
            errors.append("%s %s: %d Ranges did not find their key" % (target, key, res["misses"]))
    total = res["count"] * (1.0 + warm / max(args.duration_s, 1e-9))
    metrics[key + ".cpu_ms_per_kop"] = cpu * 1e6 / total if total else None
    metrics[key + ".server_cores"] = cpu / wall
    metrics[key + ".other_cores"] = max(other, 0.0) / wall
    metrics[key + ".loadgen_cores"] = loadgen_cpu / wall
    metrics[key + ".conns"] = conns
    if busy:
        metrics[key + ".busy_cores"] = busy_cpu / wall
    if res["errors"]:
        errors.append("%s %s: %d errors (%s)" % (target, key, res["errors"], res["first_error"]))
    name = LOADGEN_NAME[lg]
    log("%s: %-6s streams=%-3d conns=%d %-14s %8.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f"
        "  max %7.3f ms  errors %d  (cores: server %.2f, %s %.2f,%s other %.2f)"
        % (target, op, streams, conns, name, res["ops_per_s"], res["p50_ms"], res["p99_ms"],
           res["p999_ms"], res["max_ms"], res["errors"], cpu / wall, name, loadgen_cpu / wall,
           " busy %.2f," % (busy_cpu / wall) if busy else "", max(other, 0.0) / wall))
    if lg == "cn":
        benchlib.warn_loadgen_bound(target, loadgen_cpu / wall, key, name)
    if busy and busy_cpu / wall < 0.5 * args.busy:
        log("%s: WARNING: the %d busy process(es) got only %.2f cores during %s"
            % (target, args.busy, busy_cpu / wall, key))
    return other / wall > benchlib.NOISY_CORES


def phase_load(args, target, binary, workdir, metrics, errors):
    """Start-up to the first Range, then the throughput/latency matrix on --keys keys."""
    srv = Server(target, binary, os.path.join(workdir, "matrix"), args.extra[target],
                 args.startup_timeout_s)
    try:
        t0 = srv.spawn()
        metrics["startup_range_ms"] = wait_ready(args, srv, t0)
        pre = run_v3load(args, srv.endpoint, ["--preload", str(args.keys), "--conns",
                                              str(conns_for(args, 64)), "--streams", "64",
                                              "--prefix", "bench/"])
        if pre["errors"]:
            raise BenchError("%s: preload of %d keys had %d errors (%s)"
                             % (target, args.keys, pre["errors"], pre["first_error"]))
        metrics["preload_ops_per_s"] = pre["ops_per_s"]
        noisy = []
        for streams in args.streams:
            for op in args.ops:
                for lg in args.loadgens:
                    key = load_key(lg, op, streams)
                    if measure_load(args, target, srv, workdir, lg, op, streams, key, metrics,
                                    errors):
                        noisy.append(key)
        benchlib.warn_noisy(target, noisy)
        metrics["noisy_loads"] = noisy
    finally:
        srv.stop()


def phase_recovery(args, target, binary, workdir, metrics, errors):
    """RSS and data dir after --big-keys keys, then kill + restart to the first Range that
    returns the last key with its value."""
    srv = Server(target, binary, workdir, args.extra[target], args.startup_timeout_s)
    try:
        t0 = srv.spawn()
        wait_ready(args, srv, t0)
        n = args.big_keys
        res = run_v3load(args, srv.endpoint, ["--preload", str(n), "--conns",
                                              str(conns_for(args, 64)), "--streams", "64",
                                              "--prefix", "big/"])
        if res["errors"]:
            raise BenchError("%s: writing %d keys had %d errors (%s)"
                             % (target, n, res["errors"], res["first_error"]))
        metrics["write_100k_ops_per_s"] = res["ops_per_s"]
        st = bench_v2.proc_status(srv.proc.pid)
        metrics["rss_100k_mib"] = st["VmRSS"] / 1048576.0
        metrics["hwm_100k_mib"] = st["VmHWM"] / 1048576.0
        apparent, allocated = bench_v2.dir_size(srv.data_dir)
        metrics["datadir_100k_mib"] = allocated / 1048576.0
        metrics["datadir_100k_apparent_mib"] = apparent / 1048576.0
        last = n - 1
        probe(args, srv, time.monotonic(), "Range of big/k%d" % last, 10.0, last, "big/")
        restarts = []
        for _ in range(args.restart_samples):
            srv.stop(sig=args.kill_signal)
            t0 = srv.spawn()
            restarts.append(probe(args, srv, t0, "Range of big/k%d with its value" % last,
                                  args.startup_timeout_s, last, "big/"))
        metrics["restart_range_ms"] = statistics.median(restarts)
        metrics["restart_range_ms_samples"] = restarts
        st = bench_v2.proc_status(srv.proc.pid)
        metrics["rss_restarted_mib"] = st["VmRSS"] / 1048576.0
        probe(args, srv, time.monotonic(), "Range of big/k0", 10.0, 0, "big/")
        log("%s: %d keys: RSS %.1f MiB, data dir %.1f MiB (apparent %.1f), restart to Range"
            " %.1f ms (median of %d; samples %s)"
            % (target, n, metrics["rss_100k_mib"], metrics["datadir_100k_mib"],
               metrics["datadir_100k_apparent_mib"], metrics["restart_range_ms"], len(restarts),
               " ".join("%.0f" % v for v in restarts)))
    finally:
        srv.stop()


def run_once(args, target, binary, run_no):
    phases = (("load", phase_load), ("recovery", phase_recovery))
    return benchlib.run_once(args, target, binary, run_no, "cairn-bench-v3", phases,
                             keep_on_errors=False)


def v3_available(args, binary, workdir):
    """None when binary answers a v3 Range, else why not (cairn before its v3 API lands)."""
    srv = Server("cairn", binary, workdir, args.extra["cairn"], args.startup_timeout_s)
    try:
        t0 = srv.spawn()
        try:
            srv.wait_until(t0, "200 on GET /version", srv.version_ok)
        except BenchError as e:
            return "did not start: %s" % str(e).splitlines()[0]
        try:
            probe(args, srv, time.monotonic(), "v3 Range", args.detect_timeout_s)
        except BenchError as e:
            return "no v3 API (%s)" % str(e).splitlines()[0]
        return None
    finally:
        srv.stop()


# ---------------------------------------------------------------- report


def load_rows(args, lg):
    rows = []
    fields = LOAD_FIELDS
    if args.busy:
        fields += (("busy_cores", "busy-core CPU", "cores", None),)
    for op in args.ops:
        for s in args.streams:
            for field, label, unit, hib in fields:
                rows.append(("%s.%s" % (load_key(lg, op, s), field),
                             "%s @%d streams %s" % (OP_LABEL[op], s, label), unit, hib))
    return rows


def server_rows(args):
    return [
        ("startup_range_ms", "start-up to first Range", "ms", False),
        ("rss_100k_mib", "RSS after %d keys" % args.big_keys, "MiB", False),
        ("datadir_100k_mib", "data dir after %d keys (du)" % args.big_keys, "MiB", False),
        ("restart_range_ms", "restart to first Range (%d keys)" % args.big_keys, "ms", False),
    ]


def sections(args, results):
    out = []
    for i, lg in enumerate(args.loadgens):
        rows = load_rows(args, lg) + (server_rows(args) if i == 0 else [])
        crows = benchlib.compare(rows, goals_for(lg), results)
        for r in crows:
            r["loadgen"] = LOADGEN_NAME[lg]
        out.append((lg, crows))
    return out


def loadgen_text(args, lg):
    conns = ", ".join("%d over %d" % (s, conns_for(args, s)) for s in args.streams)
    if lg == "cn":
        return ("cn_v3load (cairn's own; nghttp2 h2c, 1 thread, closed loop per stream, %.1f s "
                "warm-up; streams over connections: %s)" % (args.warmup_s, conns))
    return ("etcd 3.4.23 tools/benchmark (grpc-go; --clients = streams over --conns: %s; a fixed "
            "count of RPCs, about %g s of cn_v3load's rate, after %.1f s of cn_v3load warm-up; "
            "Range reads one fixed key)" % (conns, args.duration_s, args.warmup_s))


def busy_text(args):
    return bench_v2.busy_text(args)


def title(args):
    t = ("v3 API, one member, %d-byte values, %d keys, %g s per load (+%g s warm-up), median of"
         " %d run%s" % (args.value_size, args.keys, args.duration_s, args.warmup_s, args.runs,
                        "" if args.runs == 1 else "s"))
    if args.busy:
        t += "\nWITH %s; its measured CPU is in the 'busy-core CPU' rows" % busy_text(args)
    return t


def markdown(args, secs):
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
    p.add_argument("--v3load", default=os.path.join(benchlib.REPO, "build", "bench", "cn_v3load"),
                   help="cn_v3load binary")
    p.add_argument("--etcd-benchmark", default=DEFAULT_ETCD_BENCHMARK,
                   help="etcd's tools/benchmark binary (scripts/etcd_benchmark.sh builds it)")
    p.add_argument("--target", choices=("cairn", "etcd", "both"), default="both")
    p.add_argument("--runs", type=int, default=3, help="repeat everything N times, report medians")
    p.add_argument("--quick", action="store_true",
                   help="streams 1 and 64 only, 2 s loads with 0.5 s warm-up, 1 restart")
    p.add_argument("--json", metavar="OUT", help="also write all results as JSON to OUT")
    p.add_argument("--markdown", metavar="OUT", help="also write the tables as Markdown to OUT")
    p.add_argument("--streams", help="comma-separated concurrent stream counts [1,16,64,256]")
    p.add_argument("--conns", type=int, default=4,
                   help="HTTP/2 connections carrying the streams (fewer when streams are fewer)")
    p.add_argument("--ops", default="put,range,srange", help="comma-separated subset of put,range,srange")
    p.add_argument("--duration-s", type=float, help="seconds per load [10, quick 2]")
    p.add_argument("--warmup-s", type=float, help="unmeasured seconds before each load [1, quick 0.5]")
    p.add_argument("--keys", type=int, default=10000, help="key space of the load phase")
    p.add_argument("--value-size", type=int, default=256, help="bytes per value")
    p.add_argument("--big-keys", type=int, default=100000,
                   help="keys written before measuring RSS, data dir and restart")
    p.add_argument("--phases", default="load,recovery", help="comma-separated subset of load, recovery")
    p.add_argument("--restart-samples", type=int, help="kill + restart cycles per run [3, quick 1]")
    p.add_argument("--kill-signal", choices=("TERM", "KILL"), default="KILL")
    p.add_argument("--startup-timeout-s", type=float, default=60.0)
    p.add_argument("--detect-timeout-s", type=float, default=5.0,
                   help="how long cairn gets to answer a first v3 Range before its column is dropped")
    p.add_argument("--tmpdir", help="where data dirs are created")
    p.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    p.add_argument("--loadgens",
                   help="comma-separated: cn (cn_v3load), etcd (etcd's benchmark) [cn, plus etcd when built]")
    p.add_argument("--etcd-total", type=int, default=20000,
                   help="RPCs per etcd-benchmark load when cn_v3load has no figure for it")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="N processes each spinning one core during every load")
    p.add_argument("--busy-tool", choices=("auto", "stress-ng", "python"), default="auto")
    p.add_argument("--cairn-arg", action="append", default=[], metavar="ARG")
    p.add_argument("--etcd-arg", action="append", default=[], metavar="ARG")
    a = p.parse_args(argv)

    a.streams = [int(x) for x in (a.streams or ("1,64" if a.quick else "1,16,64,256")).split(",")]
    if any(s < 1 for s in a.streams):
        p.error("--streams: positive counts")
    if a.conns < 1:
        p.error("--conns must be at least 1")
    a.ops = [x for x in a.ops.split(",") if x]
    if not a.ops or any(op not in OPS for op in a.ops):
        p.error("--ops: a comma-separated subset of put,range,srange")
    a.phases = set(x for x in a.phases.split(",") if x)
    if not a.phases <= {"load", "recovery"}:
        p.error("--phases: use load and/or recovery")
    if a.duration_s is None:
        a.duration_s = 2.0 if a.quick else 10.0
    if a.warmup_s is None:
        a.warmup_s = 0.5 if a.quick else 1.0
    if a.restart_samples is None:
        a.restart_samples = 1 if a.quick else 3
    if a.restart_samples < 1 or a.runs < 1 or a.big_keys < 1 or a.keys < 1:
        p.error("--restart-samples, --runs, --keys and --big-keys must be positive")
    have_etcd_bench = os.path.isfile(a.etcd_benchmark) and os.access(a.etcd_benchmark, os.X_OK)
    if a.loadgens is None:
        a.loadgens = "cn,etcd" if have_etcd_bench else "cn"
        a.loadgens_default = True
    else:
        a.loadgens_default = False
    a.loadgens = [x for x in a.loadgens.split(",") if x]
    if not a.loadgens or any(x not in LOADGENS for x in a.loadgens) or len(set(a.loadgens)) != len(a.loadgens):
        p.error("--loadgens: a comma-separated list of cn and/or etcd")
    if a.busy < 0:
        p.error("--busy must be 0 or more")
    a.kill_signal = signal.SIGKILL if a.kill_signal == "KILL" else signal.SIGTERM
    a.extra = {"cairn": a.cairn_arg, "etcd": a.etcd_arg}
    return a


def main(argv):
    args = parse_args(argv)
    benchlib.install_signal_handlers()
    if not (os.path.isfile(args.v3load) and os.access(args.v3load, os.X_OK)):
        log("no cn_v3load at %s; build it with: cmake --build build --target cn_v3load" % args.v3load)
        return 2
    if "etcd" in args.loadgens:
        if not (os.path.isfile(args.etcd_benchmark) and os.access(args.etcd_benchmark, os.X_OK)):
            log("no etcd benchmark at %s; build it with scripts/etcd_benchmark.sh or use --loadgens cn"
                % args.etcd_benchmark)
            return 2
        args.etcd_benchmark = os.path.abspath(args.etcd_benchmark)
    elif args.loadgens_default and "load" in args.phases:
        log("etcd's benchmark is not built: cn_v3load only (scripts/etcd_benchmark.sh builds it)")
    args.busy_kind, args.busy_path = benchlib.busy_tool(args.busy_tool)
    if args.busy:
        log(busy_text(args))

    planned = benchlib.plan_targets(args, args.target)
    if planned is None:
        return 2
    results, plan = planned
    for t, binary in list(plan):
        if t != "cairn":
            continue
        d = tempfile.mkdtemp(prefix="cairn-bench-v3-detect-", dir=args.tmpdir)
        try:
            why = v3_available(args, binary, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if why:
            log("cairn: column unavailable: %s" % why)
            results["cairn"] = {"skipped": why, "binary": binary}
            plan.remove((t, binary))
    if not plan:
        log("nothing to run")
        return 2

    started, loadavg_start = benchlib.run_all(args, results, plan, run_once)
    secs = sections(args, results)
    rows = [r for _, srows in secs for r in srows]
    benchlib.print_table(results, None, title(args),
                         sections=[("load generator: " + loadgen_text(args, lg), r) for lg, r in secs])
    benchlib.write_outputs(args, started, loadavg_start, {
        "params": {"api": "v3", "runs": args.runs, "streams": args.streams,
                   "conns": {str(s): conns_for(args, s) for s in args.streams}, "ops": args.ops,
                   "duration_s": args.duration_s, "warmup_s": args.warmup_s, "keys": args.keys,
                   "value_size": args.value_size, "big_keys": args.big_keys,
                   "kill_signal": args.kill_signal.name, "restart_samples": args.restart_samples,
                   "loadgens": [LOADGEN_NAME[lg] for lg in args.loadgens],
                   "busy": {"n": args.busy,
                            "tool": benchlib.busy_label(args.busy_kind) if args.busy else None}},
    }, results, rows, markdown=markdown(args, secs))
    return benchlib.exit_status(results, plan)


if __name__ == "__main__":
    benchlib.run_main(main)
