#!/usr/bin/python3
"""The server's cost of one v2 PUT, counted rather than timed (steady on a shared machine).

  callgrind: cairn runs under valgrind --tool=callgrind with instrumentation off; after a
      warm-up of 2,000 PUTs it is switched on (callgrind_control -i on) for --puts PUTs from
      cn_loadgen at --conns connections, then off; the instructions counted (every thread of
      the server) divided by --puts.
  memcount: cairn runs with bench/memcount.c preloaded, once with the warm-up only and once with
      the warm-up and --puts PUTs; the difference of what went through memcpy/memmove, divided by
      --puts, with the copies of 200 bytes or more by size (a 256-byte value shows up as 248-263).

Each run starts a fresh one-member cairn on ephemeral 127.0.0.1 ports in a temp dir and stops it
with SIGTERM (by PID). Standard library only; needs valgrind and cc. See bench/README.md.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WARMUP = 2000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cairn, workdir, prefix, env):
    cu = f"http://127.0.0.1:{free_port()}"
    pu = f"http://127.0.0.1:{free_port()}"
    args = prefix + [cairn, "--name", "m", "--data-dir", os.path.join(workdir, "data"),
                     "--listen-client-urls", cu, "--advertise-client-urls", cu,
                     "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
                     "--initial-cluster", f"m={pu}"]
    with open(os.path.join(workdir, "server.log"), "w") as log:
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if p.poll() is not None:
            sys.exit(f"put_cost: the server exited (log: {workdir}/server.log)")
        try:  # a write proves a leader
            req = urllib.request.Request(
                cu + "/v2/keys/put_cost_ready", data=b"value=1", method="PUT",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            urllib.request.urlopen(req, timeout=5).read()
            return p, cu
        except OSError:
            time.sleep(0.2)
    p.kill()
    p.wait()
    sys.exit("put_cost: the server did not come up")


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=300)


def load(loadgen, url, n, conns):
    r = subprocess.run([loadgen, "--url", url, "--op", "put", "--conns", str(conns),
                        "--requests", str(n), "--keys", "10000", "--seed", "1",
                        "--timeout-s", "900"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"put_cost: cn_loadgen failed: {r.stdout}{r.stderr}")


def callgrind(a):
    with tempfile.TemporaryDirectory(prefix="cn-put-cost-") as d:
        out = a.keep or os.path.join(d, "callgrind.out")
        p, url = start(a.cairn, d, ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                    f"--callgrind-out-file={out}"], os.environ.copy())
        load(a.loadgen, url, WARMUP, a.conns)
        subprocess.run(["callgrind_control", "-i", "on", str(p.pid)], check=True,
                       capture_output=True)
        load(a.loadgen, url, a.puts, a.conns)
        subprocess.run(["callgrind_control", "-i", "off", str(p.pid)], check=True,
                       capture_output=True)
        stop(p)
        total = None
        with open(out) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    total = int(line.split()[1])
        if total is None:
            sys.exit("put_cost: no totals in the callgrind output")
        print(f"callgrind: {total} instructions / {a.puts} PUTs = {total / a.puts:,.0f} per PUT")


def memcount_run(a, shim, n):
    with tempfile.TemporaryDirectory(prefix="cn-put-cost-") as d:
        env = os.environ.copy()
        env["LD_PRELOAD"] = shim
        env["CN_MEMCOUNT_OUT"] = os.path.join(d, "memcount")
        p, url = start(a.cairn, d, [], env)
        load(a.loadgen, url, WARMUP, a.conns)
        if n:
            load(a.loadgen, url, n, a.conns)
        stop(p)
        with open(env["CN_MEMCOUNT_OUT"]) as f:
            return [int(x) for x in f.read().split()]


def memcount(a):
    with tempfile.TemporaryDirectory(prefix="cn-memcount-") as d:
        shim = os.path.join(d, "memcount.so")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim,
                        os.path.join(HERE, "memcount.c"), "-ldl"], check=True)
        base = memcount_run(a, shim, 0)
        full = memcount_run(a, shim, a.puts)
    per = [(f - b) / a.puts for f, b in zip(full, base)]
    print(f"memcpy/memmove per PUT: {per[0]:,.0f} bytes in {per[1]:.1f} calls; "
          f"copies of 200 bytes or more: {per[2]:.2f} ({per[3]:,.0f} bytes)")
    sizes = [f"{200 + 16 * i}-{215 + 16 * i}: {v:.2f}" for i, v in enumerate(per[4:]) if v >= 0.01]
    if sizes:
        print("  by size (bytes: copies per PUT): " + ", ".join(sizes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cairn", default="build/cairn")
    ap.add_argument("--loadgen", default="build/bench/cn_loadgen")
    ap.add_argument("--puts", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--mode", choices=("callgrind", "memcount", "both"), default="both")
    ap.add_argument("--keep", help="write the callgrind output here (for callgrind_annotate)")
    a = ap.parse_args()
    if a.mode in ("callgrind", "both"):
        callgrind(a)
    if a.mode in ("memcount", "both"):
        memcount(a)


if __name__ == "__main__":
    main()
