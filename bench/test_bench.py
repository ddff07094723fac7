#!/usr/bin/python3
"""Self-test of the bench scripts (standard library only; ctest runs it as bench_selftest).

Needs no cairn or etcd: the parsers and the tables are fed canned input, and the load
generators (wrk with bench/wrk/*.lua, cn_loadgen) are pointed at a small HTTP server in this
process that checks every request and makes one answer in 50 slow (20 ms), so the tail the
generators report can be checked. Parts whose tool is missing (wrk, stress-ng, a built
cn_loadgen: set CN_LOADGEN) are skipped.

    /usr/bin/python3 -m unittest -v bench/test_bench.py   # from the top of the tree
"""

import http.server
import json
import os
import re
import shutil
import socketserver
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import importlib.util  # noqa: E402

# bench.py under another name: "bench" is this directory when run from the top of the tree
_spec = importlib.util.spec_from_file_location("bench_py", os.path.join(HERE, "bench.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

KEYS = 50
VALUE_SIZE = 40
SLOW_EVERY = 50
SLOW_S = 0.020
WRK = shutil.which("wrk")
LOADGEN = os.environ.get("CN_LOADGEN") or os.path.join(benchlib.REPO, "build", "bench", "cn_loadgen")
HAVE_LOADGEN = os.path.isfile(LOADGEN) and os.access(LOADGEN, os.X_OK)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add 40 ms to every answer

    def log_message(self, *a):
        pass

    def _answer(self, ok_status):
        srv = self.server
        m = re.fullmatch(r"/v2/keys/bench/k(\d+)(\?quorum=true)?", self.path)
        with srv.lock:
            srv.n += 1
            n = srv.n
            key = int(m.group(1)) if m else -1
            if not m or not 0 <= key < KEYS:
                srv.bad.append("path %s" % self.path)
            else:
                srv.keys_seen.add(key)
        if self.command == "PUT":
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            want = "value=" + bench.expected_value(key, VALUE_SIZE)
            if body.decode() != want or \
                    self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                with srv.lock:
                    srv.bad.append("body %r for key %d" % (body[:40], key))
        if n % SLOW_EVERY == 0:
            time.sleep(SLOW_S)
        status = ok_status
        if srv.redirect_every and n % srv.redirect_every == 0:
            status = 302
        payload = b'{"action":"get"}'
        head = ("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (status, len(payload))).encode()
        self.wfile.write(head + payload)  # one write: no partial answers on the wire

    def do_GET(self):
        self._answer(200)

    def do_PUT(self):
        self._answer(201)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a generator hanging up at the end
            super().handle_error(request, client_address)


class FakeEtcd:
    """A v2 keys stand-in on 127.0.0.1: checks paths and PUT bodies, 1 answer in 50 slow."""

    def __init__(self, redirect_every=0):
        self.srv = _Server(("127.0.0.1", 0), _Handler)
        self.srv.lock = threading.Lock()
        self.srv.n, self.srv.bad, self.srv.keys_seen = 0, [], set()
        self.srv.redirect_every = redirect_every
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.srv.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


# one canned wrk run: its own report, then the line bench/wrk/common.lua prints
WRK_STDOUT = """Running 2s test @ http://127.0.0.1:2379
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.61ms    1.02ms  24.40ms   90.00%
  78562 requests in 2.00s, 21.80MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  39281.00
""" + json.dumps({
    "bad_status": {}, "conns": 64, "correction_interval_us": 1629, "count": 78559,
    "elapsed_s": 2.0, "errors": 4, "keys": 10000, "latency_source": "ffi", "loadgen": "wrk",
    "max_us": 24400, "mean_us": 1610.5, "min_us": 80, "non2xx": 3, "op": "put",
    "ops_per_s": 39279.5, "p50_us": 1500, "p90_us": 2300, "p999_us": 12000, "p99_us": 6470,
    "requests": 78562, "samples": 78562,
    "socket_errors": {"connect": 0, "read": 1, "timeout": 0, "write": 0}, "strict": False,
    "threads": 1, "value_size": 256,
    "wrk_corrected": {"p50_us": 1510, "p999_us": 15000, "p99_us": 7100}},
    separators=(",", ":"), sort_keys=True) + "\n"


class ParseWrk(unittest.TestCase):
    def test_result_line(self):
        r = benchlib.parse_wrk_output(WRK_STDOUT)
        self.assertEqual(r["loadgen"], "wrk")
        self.assertEqual(r["count"], 78559)
        self.assertEqual(r["errors"], 4)
        self.assertAlmostEqual(r["p50_ms"], 1.5)
        self.assertAlmostEqual(r["p99_ms"], 6.47)
        self.assertAlmostEqual(r["p999_ms"], 12.0)
        self.assertAlmostEqual(r["max_ms"], 24.4)
        self.assertAlmostEqual(r["mean_ms"], 1.6105)
        self.assertAlmostEqual(r["wrk_corrected_p99_ms"], 7.1)
        self.assertEqual(r["latency_source"], "ffi")
        self.assertIn("3 >= 400 answers", r["first_error"])
        self.assertIn("1 read errors", r["first_error"])
        # everything bench.py records per load is there
        for field in ("ops_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
                      "errors", "count", "first_error"):
            self.assertIn(field, r)

    def test_strict_and_clean(self):
        line = json.loads(WRK_STDOUT.splitlines()[-1])
        line.update(strict=True, non2xx=2, errors=2, bad_status={"302": 2},
                    socket_errors={"connect": 0, "read": 0, "timeout": 0, "write": 0})
        r = benchlib.parse_wrk_output(json.dumps(line))
        self.assertEqual(r["first_error"], "2 non-2xx answers (302: 2)")
        line.update(non2xx=0, errors=0, bad_status={})
        self.assertEqual(benchlib.parse_wrk_output(json.dumps(line))["first_error"], "")

    def test_no_result_line(self):
        with self.assertRaises(benchlib.BenchError):
            benchlib.parse_wrk_output("Running 2s test @ http://x\n{\"op\":\"put\"}\n{not json\n")

    def test_command(self):
        cmd = benchlib.wrk_command("/usr/bin/wrk", "http://127.0.0.1:1", "get", 1, 2, 2.4,
                                   10000, "/bench", 256, seed=5)
        self.assertEqual(cmd[:9], ["/usr/bin/wrk", "-t", "1", "-c", "1", "-d", "2s",
                                   "--timeout", "%ds" % benchlib.WRK_TIMEOUT_S])
        self.assertTrue(cmd[10].endswith("bench/wrk/get.lua"))
        self.assertEqual(cmd[11:], ["http://127.0.0.1:1", "--", "keys=10000", "prefix=/bench",
                                    "value_size=256", "conns=1", "seed=5"])


class Tables(unittest.TestCase):
    def fake_results(self, args):
        med = {}
        for lg in args.loadgens:
            for op in args.ops:
                for c in args.conns:
                    k = bench.load_key(lg, op, c)
                    med.update({k + ".ops_per_s": 1000.0, k + ".p50_ms": 1.0, k + ".p99_ms": 5.0,
                                k + ".p999_ms": 9.0, k + ".max_ms": 12.0, k + ".busy_cores": 0.97})
        etcd = {k: (v * 2 if "busy" not in k else 0.95) for k, v in med.items()}
        return {"cairn": {"binary": "c", "version": "", "runs": [], "median": med},
                "etcd": {"binary": "e", "version": "", "runs": [], "median": etcd}}

    def test_rows_and_markdown(self):
        args = bench.parse_args(["--loadgens", "cn,wrk", "--conns", "16,64", "--ops", "put,get",
                                 "--busy", "1"])
        args.busy_kind, args.wrk_version = "stress-ng", "wrk debian/4.1.0-3+b2"
        secs = bench.sections(args, self.fake_results(args))
        self.assertEqual([lg for lg, _ in secs], ["cn", "wrk"])
        cn = {r["label"]: r for r in secs[0][1]}
        wrk = {r["label"]: r for r in secs[1][1]}
        for label in ("PUT @64 conns p99", "PUT @64 conns p99.9", "PUT @64 conns max",
                      "GET @16 conns p50", "GET @64 conns ops/s"):
            self.assertIn(label, cn)
            self.assertIn(label, wrk)
        self.assertEqual(cn["PUT @64 conns p99.9"]["metric"], "put.c64.p999_ms")
        self.assertEqual(wrk["PUT @64 conns max"]["metric"], "wrk.put.c64.max_ms")
        self.assertAlmostEqual(cn["PUT @64 conns p99"]["ratio"], 0.5)
        self.assertEqual(cn["PUT @64 conns p99"]["target"], "<= 1/2")
        self.assertEqual(wrk["PUT @64 conns p99"]["target"], "<= 1/2")  # same targets under wrk
        self.assertIn("start-up to /version 200", cn)
        self.assertNotIn("start-up to /version 200", wrk)
        busy = cn["PUT @64 conns busy-core CPU"]
        self.assertIsNone(busy["ratio"])
        self.assertEqual(busy["better"], "")
        md = bench.markdown(args, secs)
        self.assertEqual(md.count("| figure | cairn | etcd | cairn/etcd | better | target | verdict |"), 2)
        self.assertIn("| PUT @64 conns p99.9 | 9.00 ms | 18.0 ms | 0.50x | lower |  |  |", md)
        self.assertIn("| PUT @64 conns max | 12.0 ms | 24.0 ms | 0.50x | lower |  |  |", md)
        self.assertIn("| PUT @64 conns busy-core CPU | 0.97 cores | 0.95 cores | - |  |  |  |", md)
        self.assertIn("**wrk**: wrk debian/4.1.0-3+b2 (-t1", md)
        self.assertIn("1 busy core (stress-ng --cpu 1)", md)

    def test_markdown_plain(self):
        # cn_loadgen alone, no busy core: the bare table, as pasted into docs/benchmarks.md
        args = bench.parse_args(["--loadgens", "cn", "--conns", "64", "--ops", "put"])
        args.busy_kind = "python"
        md = bench.markdown(args, bench.sections(args, self.fake_results(args)))
        self.assertTrue(md.startswith("| figure | cairn | etcd |"))
        self.assertNotIn("busy", md)
        self.assertIn("| PUT @64 conns p99.9 |", md)


@unittest.skipUnless(WRK, "wrk is not installed")
class WrkScripts(unittest.TestCase):
    def run_wrk(self, srv, op, conns, *extra, strict=False):
        cmd = benchlib.wrk_command(WRK, srv.url, op, conns, 1, 1, KEYS, "/bench", VALUE_SIZE,
                                   strict=strict, seed=7) + list(extra)
        return benchlib.run_wrk(cmd, 60, log_errors=False)

    def check_tail(self, r):
        # one answer in 50 takes >= 20 ms: p99 and above must be there, p50 far below
        self.assertGreater(r["count"], 2 * SLOW_EVERY)
        self.assertLess(r["p50_ms"], SLOW_S * 1000 / 2)
        self.assertGreaterEqual(r["p99_ms"], SLOW_S * 1000)
        self.assertGreaterEqual(r["p999_ms"], r["p99_ms"])
        self.assertGreaterEqual(r["max_ms"], r["p999_ms"])
        self.assertLessEqual(r["p50_ms"], r["p90_ms"])

    def test_put(self):
        with FakeEtcd() as srv:
            r = self.run_wrk(srv, "put", 2)
            self.assertEqual(srv.srv.bad, [])
            self.assertGreater(len(srv.srv.keys_seen), KEYS // 2)  # random over the key set
        self.assertEqual(r["errors"], 0, r["first_error"])
        self.assertEqual(r["count"], r["requests"])
        # the correction undone exactly: one original sample per response, read through FFI
        self.assertEqual(r["latency_source"], "ffi")
        self.assertEqual(r["samples"], r["requests"])
        self.check_tail(r)

    def test_get_stats_reader(self):
        with FakeEtcd() as srv:
            r = self.run_wrk(srv, "get", 2, "reader=stats")
            self.assertEqual(srv.srv.bad, [])
        self.assertEqual(r["latency_source"], "stats")
        self.assertEqual(r["samples"], r["requests"])
        self.check_tail(r)

    def test_non2xx(self):
        # 302s: wrk itself counts only >= 400; strict=1 counts every non-2xx
        with FakeEtcd(redirect_every=10) as srv:
            loose = self.run_wrk(srv, "qget", 1)
            strict = self.run_wrk(srv, "qget", 1, strict=True)
            self.assertEqual(srv.srv.bad, [])
        self.assertEqual(loose["errors"], 0)
        self.assertGreater(strict["errors"], 0)
        self.assertEqual(strict["errors"], strict["non2xx"])
        self.assertEqual(strict["bad_status"], {"302": strict["non2xx"]})
        self.assertEqual(strict["count"], strict["requests"] - strict["non2xx"])
        self.assertLessEqual(abs(strict["non2xx"] - strict["requests"] / 10.0), 2)


@unittest.skipUnless(HAVE_LOADGEN, "no cn_loadgen (set CN_LOADGEN)")
class CnLoadgenTail(unittest.TestCase):
    def test_tail(self):
        class A:
            loadgen, value_size, duration_s, warmup_s = LOADGEN, VALUE_SIZE, 1.0, 0.0
        with FakeEtcd() as srv:
            r = benchlib.run_loadgen(A, srv.url, "put", 2,
                                     ["--keys", str(KEYS), "--prefix", "/bench", "--duration-s", "1"],
                                     log_errors=False)
            self.assertEqual(srv.srv.bad, [])
        self.assertEqual(r["errors"], 0, r["first_error"])
        WrkScripts.check_tail(self, r)


class Busy(unittest.TestCase):
    def spin(self, kind):
        kind, path = benchlib.busy_tool(kind)
        b = benchlib.BusyCores(1, kind, path, "/tmp", 30)
        try:
            b.start()
            c0, t0 = b.cpu_s(), time.monotonic()
            time.sleep(0.6)
            cores = (b.cpu_s() - c0) / (time.monotonic() - t0)
            seen = set(b.seen)
        finally:
            b.stop()
        self.assertGreater(cores, 0.05)  # the machine may be busy: it need not get a full core
        self.assertLess(cores, 1.2)      # one spinner is at most one core (counted once)
        time.sleep(0.1)
        self.assertEqual([p for p in seen if os.path.exists("/proc/%d" % p)], [])
        self.assertNotIn(b, benchlib._busy)

    def test_python(self):
        self.spin("python")

    @unittest.skipUnless(shutil.which("stress-ng"), "stress-ng is not installed")
    def test_stress_ng(self):
        self.spin("stress-ng")


if __name__ == "__main__":
    unittest.main()
