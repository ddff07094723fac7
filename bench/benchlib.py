"""What bench.py (one member) and cluster.py (3-member clusters) share.

Standard library only. Both scripts import it from their own directory, so it works whatever
the current directory is. Messages go to stderr prefixed by the script's name: each script
calls set_prog() first.
"""

import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ("cairn", "etcd")

NOISY_CORES = 0.25  # other processes' CPU during a load above which the figure is flagged
LOADGEN_BOUND_CORES = 0.9  # cn_loadgen is one thread: near a full core it is the bottleneck
WRK_DIR = os.path.join(REPO, "bench", "wrk")  # put.lua, get.lua, qget.lua (common.lua)
WRK_TIMEOUT_S = 10  # wrk's --timeout: its histogram's range; slower answers count as timeouts

_prog = "bench"
_children = {}  # pid -> Popen of every server we started and have not reaped
_busy = []  # BusyCores running now (kill_children stops them gently: see BusyCores)


def set_prog(name):
    """The prefix of every log line ("bench", "cluster")."""
    global _prog
    _prog = name


def log(msg):
    print(_prog + ": " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- small helpers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free loopback ports (all sockets held open until every port is picked)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def http_request(port, method, path, body=None, timeout=1.0):
    """One request on a fresh connection; returns (status, body bytes) or raises OSError."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def put_ok(port, path, value, timeout=2.0):
    """True when PUT /v2/keys<path> value=<value> answers 200 or 201."""
    body = urllib.parse.urlencode({"value": value})
    status, _ = http_request(port, "PUT", "/v2/keys" + path, body, timeout=timeout)
    return status in (200, 201)


def proc_cpu_s(pid):
    """User + system CPU seconds used so far by pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def system_busy_s():
    """CPU seconds all processes have spent busy (not idle or iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    busy = sum(vals[:8]) - vals[3] - vals[4]
    return busy / os.sysconf("SC_CLK_TCK")


def kernel_cpu_s():
    """CPU seconds of kernel work no process is charged for: interrupt and softirq time
    (loopback TCP between members, disk completions) from /proc/stat, plus every kernel
    thread (jbd2 journal commits behind fsync, kworkers, ksoftirqd)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    ticks = vals[5] + vals[6]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if d == "2" or fields[1] == "2":  # kthreadd and its children
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _ppids():
    """{pid: parent pid} of every process, from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                out[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(pids):
    """pids and every live process below them."""
    parent = _ppids()
    kids = {}
    for pid, pp in parent.items():
        kids.setdefault(pp, []).append(pid)
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def cpu_sum_s(pids):
    """User + system CPU seconds of pids (vanished ones skipped); each counted once."""
    total = 0.0
    for p in set(pids):
        try:
            total += proc_cpu_s(p)
        except (OSError, ValueError, IndexError):
            pass
    return total


def children_cpu_s():
    """CPU seconds of our reaped children (cn_loadgen runs), from getrusage."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else ""
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------- server processes


def server_env():
    """Our environment without ETCD_* variables (etcd would take them as flags)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


def spawn_server(cmd, log_path, log_mode, cwd, env):
    """Starts one server with stdout and stderr going to log_path (opened with log_mode) and
    remembers it for kill_children(); returns (monotonic time just before the spawn, Popen)."""
    logf = open(log_path, log_mode)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd)
    finally:
        logf.close()
    _children[proc.pid] = proc
    return t0, proc


def forget_child(proc):
    """proc has been reaped: kill_children() need not look at it."""
    _children.pop(proc.pid, None)


def kill_children():
    for b in list(_busy):
        b.stop()
    for pid, p in list(_children.items()):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _children.pop(pid, None)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def install_signal_handlers():
    """SIGTERM and SIGHUP unwind like an exception, so the finally blocks stop our servers."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


# ---------------------------------------------------------------- busy cores

# The stand-in for stress-ng: spins until its deadline or until its parent (bench.py) is gone.
_SPIN = """
import os, sys, time
end = time.monotonic() + float(sys.argv[1])
parent = os.getppid()
n = 0
while True:
    n += 1
    if n & 0x3FFFF == 0 and (time.monotonic() > end or os.getppid() != parent):
        break
"""


def busy_tool(choice):
    """(kind, path) for --busy-tool auto|stress-ng|python; kind is "stress-ng" or "python"."""
    stress = shutil.which("stress-ng")
    if choice == "stress-ng" and not stress:
        raise BenchError("--busy-tool stress-ng: stress-ng is not installed (scripts/deps.sh)")
    if choice in ("auto", "stress-ng") and stress:
        return "stress-ng", stress
    return "python", sys.executable


def busy_label(kind):
    return "stress-ng --cpu 1" if kind == "stress-ng" else "a Python busy loop"


class BusyCores:
    """n processes that each keep one core busy (stress-ng --cpu 1, else a Python loop), started
    and stopped by PID around a load; cpu_s() is their CPU time so far (workers included).
    Each also stops itself after max_s (stress-ng --timeout), and the Python loop when bench.py
    goes away, so a bench that is killed leaves nothing spinning for long. stress-ng is stopped
    with SIGTERM, never SIGKILL first: its worker outlives a parent killed outright."""

    def __init__(self, n, kind, path, cwd, max_s):
        self.n, self.kind, self.path, self.cwd = n, kind, path, cwd
        self.max_s = max(1, int(max_s + 0.999))
        self.procs = []
        self.seen = set()  # every PID of ours seen (stress-ng's workers), to stop stragglers

    def start(self):
        for _ in range(self.n):
            if self.kind == "stress-ng":
                cmd = [self.path, "--cpu", "1", "--timeout", "%ds" % self.max_s, "--quiet"]
            else:
                cmd = [self.path, "-c", _SPIN, str(self.max_s)]
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd=self.cwd)
            self.procs.append(p)
        if self not in _busy:
            _busy.append(self)
        # stress-ng forks its worker: wait (at most 2 s) until every one has a child spinning
        deadline = time.monotonic() + 2.0
        while True:
            pids = descendants([p.pid for p in self.procs])
            self.seen.update(pids)
            if self.kind != "stress-ng" or len(pids) >= 2 * self.n or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        for p in self.procs:
            if p.poll() is not None:
                raise BenchError("busy process %s exited at once with status %s"
                                 % (" ".join(p.args[:3]), p.returncode))

    def cpu_s(self):
        pids = descendants([p.pid for p in self.procs if p.poll() is None])
        self.seen.update(pids)
        return cpu_sum_s(pids)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # a worker whose parent went first: stop it by its own PID (it was ours, seen above)
        ours = {p.pid for p in self.procs}
        for pid in self.seen - ours:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if os.path.basename(self.path).encode() not in f.read():
                        continue
                os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        self.procs = []
        if self in _busy:
            _busy.remove(self)


# ---------------------------------------------------------------- load


def run_loadgen(args, url, op, conns, extra, log_errors=True):
    """One cn_loadgen run; returns its JSON result. With log_errors, says when it had errors."""
    cmd = [args.loadgen, "--url", url, "--op", op, "--conns", str(conns),
           "--value-size", str(args.value_size)] + extra
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=args.duration_s + args.warmup_s + 700)
    except subprocess.TimeoutExpired:
        raise BenchError("cn_loadgen hung: %s" % " ".join(cmd))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode not in (0, 3) or not lines:
        raise BenchError("cn_loadgen failed (exit %d): %s\n    %s"
                         % (out.returncode, " ".join(cmd), out.stderr.strip() or out.stdout.strip()))
    res = json.loads(lines[-1])
    if log_errors and res["errors"]:
        log("  %s conns=%d: %d errors (first: %s)" % (op, conns, res["errors"], res["first_error"]))
    return res


def wrk_version(path):
    """"wrk debian/4.1.0-3+b2" from the first line of wrk -v."""
    line = first_line([path, "-v"])
    return line.split(" [")[0].strip() if line else ""


def wrk_duration_s(duration_s):
    """wrk's -d takes whole seconds: the nearest, at least 1."""
    return max(1, int(duration_s + 0.5))


def wrk_command(wrk, url, op, conns, threads, duration_s, keys, prefix, value_size, strict=False,
                seed=None):
    """The wrk command line that runs bench/wrk/<op>.lua like cn_loadgen --op op."""
    threads = max(1, min(threads, conns))  # wrk refuses fewer connections than threads
    cmd = [wrk, "-t", str(threads), "-c", str(conns), "-d", "%ds" % wrk_duration_s(duration_s),
           "--timeout", "%ds" % WRK_TIMEOUT_S, "-s", os.path.join(WRK_DIR, op + ".lua"), url, "--",
           "keys=%d" % keys, "prefix=%s" % prefix, "value_size=%d" % value_size,
           "conns=%d" % conns, "seed=%d" % (seed if seed is not None else time.monotonic_ns() % 1000003)]
    if strict:
        cmd.append("strict=1")
    return cmd


def parse_wrk_output(text):
    """The result of one wrk run from its stdout: the JSON line that bench/wrk/common.lua's done()
    prints (after wrk's own report), in cn_loadgen's shape: latencies in ms, count = 2xx answers,
    errors = non-2xx (strict) or >= 400 answers plus socket errors, first_error a summary."""
    raw = None
    for ln in text.splitlines():
        if ln.startswith("{"):
            try:
                doc = json.loads(ln)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("loadgen") == "wrk":
                raw = doc
    if raw is None:
        raise BenchError("no result line from bench/wrk/*.lua in wrk's output")
    res = {"loadgen": "wrk"}
    for k in ("op", "conns", "threads", "keys", "value_size", "requests", "count", "errors",
              "non2xx", "elapsed_s", "ops_per_s", "samples", "latency_source",
              "correction_interval_us", "socket_errors", "bad_status", "strict"):
        if k in raw:
            res[k] = raw[k]
    for q in ("p50", "p90", "p99", "p999", "max", "mean", "min"):
        if q + "_us" in raw:
            res[q + "_ms"] = raw[q + "_us"] / 1000.0
    for q, v in (raw.get("wrk_corrected") or {}).items():
        res["wrk_corrected_" + q.replace("_us", "_ms")] = v / 1000.0
    why = []
    if raw.get("non2xx"):
        detail = ", ".join("%s: %s" % kv for kv in sorted((raw.get("bad_status") or {}).items()))
        why.append("%d %s answers%s" % (raw["non2xx"], "non-2xx" if raw.get("strict") else ">= 400",
                                        " (%s)" % detail if detail else ""))
    for kind, n in sorted((raw.get("socket_errors") or {}).items()):
        if n:
            why.append("%d %s errors" % (n, kind))
    res["first_error"] = "; ".join(why)
    return res


def run_wrk(cmd, timeout_s, log_errors=True):
    """One wrk run (cmd from wrk_command); returns parse_wrk_output of its stdout."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk hung: %s" % " ".join(cmd))
    try:
        if out.returncode != 0:
            raise BenchError("exit status %d" % out.returncode)
        res = parse_wrk_output(out.stdout)
    except (BenchError, ValueError, KeyError) as e:
        raise BenchError("wrk failed (%s): %s\n    %s"
                         % (e, " ".join(cmd), (out.stderr.strip() or out.stdout.strip())[-2000:]))
    if log_errors and res["errors"]:
        log("  wrk %s conns=%s: %d errors (%s)" % (res.get("op"), res.get("conns"), res["errors"],
                                                   res["first_error"]))
    return res


def run_once(args, target, binary, run_no, prefix, phases, keep_on_errors):
    """One run of the phases (name, fn) that args.phases names, each in its own subdirectory
    of a fresh temp dir "<prefix>-<target>-<run_no>-*", as fn(args, target, binary, subdir,
    metrics, errors); a phase that raises BenchError is recorded and the next one runs. The
    temp dir is kept with --keep, when a phase failed, and with keep_on_errors when any error
    was recorded. Returns {"run", "metrics", "errors"}."""
    workdir = tempfile.mkdtemp(prefix="%s-%s-%d-" % (prefix, target, run_no), dir=args.tmpdir)
    metrics, errors = {}, []
    ok = True
    try:
        for name, fn in phases:
            if name not in args.phases:
                continue
            sub = os.path.join(workdir, name)
            os.mkdir(sub)
            try:
                fn(args, target, binary, sub, metrics, errors)
            except BenchError as e:
                ok = False
                errors.append(str(e))
                log("%s run %d, %s phase failed: %s" % (target, run_no, name, e))
    except BaseException:
        kill_children()  # interrupted: servers first, then their files
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    if args.keep or not ok or (keep_on_errors and errors):
        log("%s run %d: kept %s" % (target, run_no, workdir))
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"run": run_no, "metrics": metrics, "errors": errors}


def warn_loadgen_bound(target, loadgen_cores, key, name="cn_loadgen", threads=1):
    if loadgen_cores > LOADGEN_BOUND_CORES * threads:
        log("%s: WARNING: %s used %.2f cores during %s: the figure may measure "
            "the load generator rather than the server" % (target, name, loadgen_cores, key))


def warn_noisy(target, noisy):
    if noisy:
        log("%s: WARNING: other processes used more than %.2f cores during %s; "
            "those figures are not clean" % (target, NOISY_CORES, ", ".join(noisy)))


# ---------------------------------------------------------------- report


def medians(runs):
    """Per metric, the median over runs of its numeric values (booleans and lists left out)."""
    keys = sorted({k for r in runs for k in r["metrics"]})
    out = {}
    for k in keys:
        vals = [r["metrics"][k] for r in runs
                if isinstance(r["metrics"].get(k), (int, float)) and not isinstance(r["metrics"].get(k), bool)]
        if vals:
            out[k] = statistics.median(vals)
    return out


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "cores":
        return "%.2f cores" % v
    if unit == "":
        return "%.0f" % v
    if v >= 100:
        return "%.0f %s" % (v, unit)
    if v >= 10:
        return "%.1f %s" % (v, unit)
    if v >= 1:
        return "%.2f %s" % (v, unit)
    return "%.3f %s" % (v, unit)


def compare(metric_rows, goals, results):
    """The comparison rows: metric_rows gives (key, label, unit, higher_is_better) in table
    order; goals maps a key to (ge|le, bound on cairn/etcd, text). higher_is_better None: a
    figure shown for information, with no ratio (the busy core's CPU)."""
    rows = []
    med = {t: results[t]["median"] for t in TARGETS if t in results and "median" in results[t]}
    for key, label, unit, hib in metric_rows:
        c = med.get("cairn", {}).get(key)
        e = med.get("etcd", {}).get(key)
        ratio = c / e if (c is not None and e and hib is not None) else None
        goal = goals.get(key)
        verdict = None
        if goal and ratio is not None:
            verdict = ratio >= goal[1] if goal[0] == "ge" else ratio <= goal[1]
        rows.append({"metric": key, "label": label, "unit": unit, "cairn": c, "etcd": e,
                     "ratio": ratio,
                     "better": "" if hib is None else ("higher" if hib else "lower"),
                     "target": goal[2] if goal else None, "pass": verdict})
    return rows


def noisy_lines(info):
    noisy = sorted({k for r in info["runs"] for k in r["metrics"].get("noisy_loads", [])})
    return ["    not clean (other processes busy during): %s" % ", ".join(noisy)] if noisy else []


def print_table(results, rows, title, target_lines=None, sections=None):
    """The comparison on stdout: title, one line per target (then target_lines(t, info), by
    default its noisy loads), the table, errors. sections, a list of (subtitle, rows), prints
    one table per entry instead of rows, each under its subtitle (all with the same widths)."""
    head = ["metric", "cairn", "etcd", "cairn/etcd", "better", "target", "verdict"]
    bodies = []
    for subtitle, srows in (sections if sections is not None else [(None, rows)]):
        body = []
        for r in srows:
            if r["cairn"] is None and r["etcd"] is None:
                continue
            status = "" if r["pass"] is None else ("PASS" if r["pass"] else "MISS")
            ratio = "-" if r["ratio"] is None else "%.2fx" % r["ratio"]
            body.append([r["label"], fmt(r["cairn"], r["unit"]), fmt(r["etcd"], r["unit"]), ratio,
                         r["better"], r["target"] or "", status])
        bodies.append((subtitle, body))
    everything = [head] + [b for _, body in bodies for b in body]
    widths = [max(len(x[i]) for x in everything) for i in range(len(head))]
    print()
    print(title)
    for t in TARGETS:
        info = results.get(t)
        if info is None:
            continue
        if "skipped" in info:
            print("  %s: skipped (%s)" % (t, info["skipped"]))
            continue
        print("  %s: %s  [%s]" % (t, info["binary"], info["version"] or "version unknown"))
        for line in (target_lines or (lambda t, info: noisy_lines(info)))(t, info):
            print(line)
    for subtitle, body in bodies:
        if subtitle:
            print()
            print(subtitle)
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        print("  ".join("-" * w for w in widths if w).rstrip())
        for b in body:
            cells = [b[0].ljust(widths[0])] + [b[i].rjust(widths[i]) if i < 4 else b[i].ljust(widths[i])
                                                for i in range(1, len(b))]
            print("  ".join(cells).rstrip())
    print("ratio = cairn/etcd; 'better' says which way the figure, and so the ratio, improves;")
    print("the verdict compares the ratio with the project's target.")
    errs = [(t, e) for t in TARGETS if t in results for r in results[t].get("runs", []) for e in r["errors"]]
    if errs:
        print()
        print("errors:")
        for t, e in errs:
            print("  %s: %s" % (t, e.splitlines()[0]))


def markdown_table(rows):
    """The comparison as a Markdown table (for docs/benchmarks.md); missing cairn = pending."""
    out = ["| figure | cairn | etcd | cairn/etcd | better | target | verdict |",
           "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        if r["cairn"] is None and r["etcd"] is None:
            continue
        c = "pending" if r["cairn"] is None else fmt(r["cairn"], r["unit"])
        e = "-" if r["etcd"] is None else fmt(r["etcd"], r["unit"])
        ratio = "-" if r["ratio"] is None else "%.2fx" % r["ratio"]
        verdict = "" if r["pass"] is None else ("pass" if r["pass"] else "miss")
        out.append("| %s | %s | %s | %s | %s | %s | %s |"
                   % (r["label"], c, e, ratio, r["better"], r["target"] or "", verdict))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def add_binary_args(p):
    """--cairn, --etcd and --loadgen, with their defaults."""
    p.add_argument("--cairn", default=os.path.join(REPO, "build", "cairn"), help="cairn binary")
    p.add_argument("--etcd", default="/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None,
                   help="etcd binary (run with --enable-v2)")
    p.add_argument("--loadgen", default=os.path.join(REPO, "build", "bench", "cn_loadgen"),
                   help="cn_loadgen binary")


def loadgen_missing(path):
    """True (and says how to build it) when there is no executable cn_loadgen at path."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return False
    log("no load generator at %s; build it with: cmake --build build --target cn_loadgen" % path)
    return True


def plan_targets(args, which, strict=False):
    """(results, plan) for --target/--only which: results[t] is {"skipped": why} or
    {"binary", "version", "runs"}; plan lists the (target, binary) to run. None (after saying
    why) when there is nothing to run, or with strict when a target is missing."""
    wanted = TARGETS if which == "both" else (which,)
    results, plan = {}, []
    for t in wanted:
        binary = args.cairn if t == "cairn" else args.etcd
        if not binary or not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            why = "%s not found" % (binary or "no binary given")
            log("%s: skipped, %s" % (t, why))
            results[t] = {"skipped": why}
            if strict:
                return None
            continue
        binary = os.path.abspath(binary)
        results[t] = {"binary": binary, "version": first_line([binary, "--version"]), "runs": []}
        plan.append((t, binary))
    if not plan:
        log("nothing to run")
        return None
    return results, plan


def run_all(args, results, plan, run_once, medians_fn=medians):
    """--runs rounds of run_once(args, target, binary, run_no), targets interleaved so drift
    on the machine hits both alike; then each target's medians. Returns (started wall time,
    load average at the start)."""
    started = time.time()
    loadavg_start = os.getloadavg()
    if loadavg_start[0] > 0.5:
        log("WARNING: load average is %.2f before starting; figures will be noisy" % loadavg_start[0])
    try:
        for run_no in range(1, args.runs + 1):
            for t, binary in plan:
                log("run %d/%d: %s" % (run_no, args.runs, t))
                results[t]["runs"].append(run_once(args, t, binary, run_no))
    finally:
        kill_children()
    for t, _ in plan:
        results[t]["median"] = medians_fn(results[t]["runs"])
    return started, loadavg_start


def write_outputs(args, started, loadavg_start, meta, results, rows, markdown=None):
    """--json (meta added to the common "meta" fields) and --markdown (markdown_table(rows)
    unless the text is given)."""
    if args.json:
        doc = {
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 1),
                "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
                "loadavg_at_start": loadavg_start, "loadavg_at_end": os.getloadavg(),
                "command": [sys.executable] + sys.argv,
            },
            "targets": results,
            "comparison": rows,
        }
        doc["meta"].update(meta)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        log("wrote %s" % args.json)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown if markdown is not None else markdown_table(rows))
        log("wrote %s" % args.markdown)


def exit_status(results, plan):
    """1 when any run of any target recorded an error, else 0."""
    failed = any(r["errors"] for t, _ in plan for r in results[t]["runs"])
    return 1 if failed else 0


def run_main(main):
    """sys.exit(main(argv)), stopping every server we started whatever happens."""
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        kill_children()
