#!/usr/bin/python3
"""Self-test of the v3 bench (ctest runs it as bench_v3_selftest; standard library only).

The etcd-benchmark report parser and the tables get canned input; cn_v3load (set CN_V3LOAD, or
build/bench/cn_v3load) runs for about a second against a real etcd 3.4 started here on loopback
ephemeral ports with a temp data dir, and its JSON line is checked (shape, zero errors, the
preloaded keys found, the probe's value check); skipped when etcd or cn_v3load is missing.
Checks no timing figure.

    /usr/bin/python3 -m unittest -v bench/test_bench_v3.py   # from the top of the tree
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_v3_py", os.path.join(HERE, "bench_v3.py"))
bv3 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bv3)

V3LOAD = os.environ.get("CN_V3LOAD") or os.path.join(benchlib.REPO, "build", "bench", "cn_v3load")
HAVE_V3LOAD = os.path.isfile(V3LOAD) and os.access(V3LOAD, os.X_OK)
ETCD = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)

REPORT = """ 2560 / 40000    6.40% 00m02s 40000 / 40000  100.00% 2s

Summary:
  Total:\t2.779457752 secs.
  Slowest:\t0.050225659 secs.
  Fastest:\t0.000572563 secs.
  Average:\t0.004410220848475001 secs.
  Stddev:\t0.002734070842159246 secs.
  Requests/sec:\t14391.29627756256

Response time histogram:
  0.000572563 [1]\t|
  0.0055378726 [32247]\t|xxxxxxxx

Latency distribution:
  10% in 0.002362789 secs.
  50% in 0.003879458 secs.
  90% in 0.006824042 secs.
  99% in 0.012682487 secs.
  99.9% in 0.049142656 secs.
"""

KEYS = ("loadgen", "loop", "op", "conns", "streams", "keys", "value_size", "count", "errors",
        "rpc_errors", "io_errors", "misses", "elapsed_s", "ops_per_s", "p50_ms", "p90_ms", "p99_ms",
        "p999_ms", "mean_ms", "max_ms", "timed_out", "grpc_status", "first_error")


class ParseEtcdBenchmark(unittest.TestCase):
    def test_report(self):
        r = bv3.parse_etcd_benchmark(REPORT, 40000)
        self.assertAlmostEqual(r["ops_per_s"], 14391.29627756256)
        self.assertAlmostEqual(r["p50_ms"], 3.879458)
        self.assertAlmostEqual(r["p99_ms"], 12.682487)
        self.assertAlmostEqual(r["p999_ms"], 49.142656)
        self.assertAlmostEqual(r["max_ms"], 50.225659)
        self.assertAlmostEqual(r["mean_ms"], 4.410220848475001)
        self.assertEqual((r["errors"], r["count"], r["first_error"]), (0, 40000, ""))

    def test_errors(self):
        r = bv3.parse_etcd_benchmark(REPORT + "\nError distribution:\n  [3]\trpc error: code = "
                                     "Unavailable desc = x\n  [2]\tother\n", 100)
        self.assertEqual((r["errors"], r["count"]), (5, 95))
        self.assertTrue(r["first_error"].startswith("rpc error: code = Unavailable"))

    def test_garbage(self):
        with self.assertRaises(benchlib.BenchError):
            bv3.parse_etcd_benchmark("panic: no\n", 10)

    def test_command(self):
        class A:
            etcd_benchmark, value_size, keys = "/x/benchmark", 256, 10000
        self.assertEqual(bv3.etcd_benchmark_command(A, "127.0.0.1:1", "srange", 4, 64, 900, "bench/k0"),
                         ["/x/benchmark", "--endpoints", "127.0.0.1:1", "--conns", "4", "--clients",
                          "64", "--precise", "range", "bench/k0", "--consistency", "s", "--total",
                          "900"])
        put = bv3.etcd_benchmark_command(A, "e", "put", 1, 1, 5, "k")
        self.assertEqual(put[put.index("put"):], ["put", "--key-size", "8", "--val-size", "256",
                                                  "--key-space-size", "10000", "--total", "5"])


class Tables(unittest.TestCase):
    def test_rows(self):
        args = bv3.parse_args(["--loadgens", "cn", "--streams", "1,64", "--ops", "put,range"])
        self.assertEqual([bv3.conns_for(args, s) for s in (1, 2, 64, 256)], [1, 2, 4, 4])
        med = {"put.s64.ops_per_s": 3000.0, "put.s64.p99_ms": 1.0, "range.s64.ops_per_s": 100.0,
               "rss_100k_mib": 10.0}
        etcd = {"put.s64.ops_per_s": 1000.0, "put.s64.p99_ms": 4.0, "range.s64.ops_per_s": 100.0,
                "rss_100k_mib": 60.0}
        results = {"cairn": {"binary": "c", "version": "", "runs": [], "median": med},
                   "etcd": {"binary": "e", "version": "", "runs": [], "median": etcd}}
        rows = {r["metric"]: r for r in bv3.sections(args, results)[0][1]}
        self.assertEqual(rows["put.s64.ops_per_s"]["label"], "Put @64 streams ops/s")
        self.assertEqual((rows["put.s64.ops_per_s"]["ratio"], rows["put.s64.ops_per_s"]["pass"]),
                         (3.0, True))
        self.assertEqual((rows["put.s64.p99_ms"]["ratio"], rows["put.s64.p99_ms"]["pass"]), (0.25, True))
        self.assertFalse(rows["range.s64.ops_per_s"]["pass"])
        self.assertEqual(rows["rss_100k_mib"]["target"], "<= 1/3")
        self.assertTrue(rows["rss_100k_mib"]["pass"])
        md = bv3.markdown(args, bv3.sections(args, results))
        self.assertIn("| Put @64 streams ops/s | 3000 | 1000 | 3.00x | higher | >= 3x | pass |", md)


@unittest.skipUnless(HAVE_V3LOAD, "no cn_v3load (set CN_V3LOAD)")
class V3LoadRefused(unittest.TestCase):
    def test_refused(self):
        port = benchlib.free_port()  # nothing listens there
        out = subprocess.run([V3LOAD, "--endpoint", "127.0.0.1:%d" % port, "--op", "put",
                              "--duration-s", "1"], capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 1)
        self.assertIn("connection refused", out.stderr)


@unittest.skipUnless(HAVE_V3LOAD and ETCD, "needs cn_v3load (CN_V3LOAD) and etcd")
class V3LoadAgainstEtcd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bench-v3-selftest-")
        cls.srv = bv3.Server("etcd", ETCD, cls.tmp, [], 30.0)
        t0 = cls.srv.spawn()
        cls.args = type("A", (), {"v3load": V3LOAD, "value_size": 64, "duration_s": 1.0,
                                  "warmup_s": 0.0})
        try:
            bv3.probe(cls.args, cls.srv, t0, "first Range", 30.0)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_v3(self, *extra):
        return bv3.run_v3load(self.args, self.srv.endpoint, list(extra), timeout_s=30,
                              log_errors=False)

    def check(self, r, op, conns, streams):
        for k in KEYS:
            self.assertIn(k, r)
        self.assertEqual((r["loadgen"], r["loop"], r["op"], r["conns"], r["streams"]),
                         ("cn_v3load", "closed", op, conns, streams))
        self.assertEqual((r["errors"], r["rpc_errors"], r["io_errors"], r["grpc_status"]),
                         (0, 0, 0, {}), r["first_error"])
        self.assertEqual(r["first_error"], "")
        self.assertFalse(r["timed_out"])
        self.assertGreater(r["count"], 0)
        self.assertLessEqual(r["p50_ms"], r["p99_ms"])
        self.assertLessEqual(r["p99_ms"], r["p999_ms"])
        self.assertLessEqual(r["p999_ms"], r["max_ms"])

    def test_load(self):
        pre = self.run_v3("--preload", "300", "--prefix", "st/", "--conns", "2", "--streams", "8")
        self.check(pre, "put", 2, 8)
        self.assertEqual(pre["count"], 300)
        put = self.run_v3("--op", "put", "--keys", "300", "--prefix", "st/", "--conns", "2",
                          "--streams", "4", "--duration-s", "0.6", "--warmup-s", "0.1")
        self.check(put, "put", 2, 4)
        for op in ("range", "srange"):
            r = self.run_v3("--op", op, "--keys", "300", "--prefix", "st/", "--conns", "2",
                            "--streams", "4", "--duration-s", "0.3")
            self.check(r, op, 2, 4)
            self.assertEqual(r["misses"], 0)  # every key was preloaded
        # keys never written: found by nobody, and said so
        r = self.run_v3("--op", "range", "--keys", "50", "--prefix", "none/", "--duration-s", "0.2")
        self.check(r, "range", 1, 1)
        self.assertEqual(r["misses"], r["count"])

    def test_probe_value(self):
        self.run_v3("--preload", "10", "--prefix", "pv/")
        ok = self.run_v3("--probe", "--probe-key", "9", "--prefix", "pv/", "--timeout-s", "10")
        self.assertTrue(ok["probe_ok"])
        self.assertEqual(ok["probe_attempts"], 1)
        # another value size: the value cn_v3load would have put differs, so no match
        out = subprocess.run([V3LOAD, "--endpoint", self.srv.endpoint, "--probe", "--probe-key",
                              "9", "--prefix", "pv/", "--value-size", "65", "--timeout-s", "0.3"],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 2)
        r = json.loads(out.stdout.splitlines()[-1])
        self.assertFalse(r["probe_ok"])
        self.assertGreaterEqual(r["probe_attempts"], 1)
        self.assertEqual(r["first_error"], "timed out after 0.3 s; last: key 9 not there yet")


if __name__ == "__main__":
    unittest.main()
