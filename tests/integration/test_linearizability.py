"""Linearizability: unit tests of the WGL checker (linearizability.py) on
hand-made histories, then a chaos test against a 3-member cluster: concurrent
clients do write / cas / quorum read on a few keys through random members
while a nemesis kills, pauses, restarts and partitions members; every key's
history must be linearizable."""

import os
import random
import threading
import time

import pytest
import requests

from cluster import flatten
from harness import wait_until
from linearizability import INF, Op, check, check_keys

CHAOS_SECONDS = float(os.environ.get("CAIRN_CHAOS_SECONDS", "40"))
CHAOS_CLIENTS = int(os.environ.get("CAIRN_CHAOS_CLIENTS", "6"))
CHAOS_KEYS = int(os.environ.get("CAIRN_CHAOS_KEYS", "3"))
CHAOS_MAX_OPS_PER_KEY = int(os.environ.get("CAIRN_CHAOS_MAX_OPS_PER_KEY", "5000"))
CHAOS_TIMEOUT = float(os.environ.get("CAIRN_CHAOS_TIMEOUT", "1.0"))
# "false" makes the clients read without ?quorum=true (local, possibly stale
# reads): the checker must then find violations (a self-test of the pipeline).
QUORUM_READS = os.environ.get("CAIRN_CHAOS_QUORUM_READS", "true") != "false"
CHECK_SECONDS = float(os.environ.get("CAIRN_LIN_CHECK_SECONDS", "120"))
CHAOS_SEED = int(os.environ.get("CAIRN_CHAOS_SEED", str(int(time.time()))))


# ---------------------------------------------------------------------------
# checker unit tests

def W(v, a, b, c=0):
    return Op("write", a, b, value=v, client=c)


def W_(v, a, c=0):
    return Op("write", a, value=v, known=False, client=c)


def R(v, a, b, c=0):
    return Op("read", a, b, result=v, client=c)


def CAS(old, new, ok, a, b, c=0):
    return Op("cas", a, b, old=old, value=new, result=ok, client=c)


def CAS_(old, new, a, c=0):
    return Op("cas", a, old=old, value=new, known=False, client=c)


def test_checker_accepts_sequential_history():
    h = [W("1", 0, 1), R("1", 2, 3), CAS("1", "2", True, 4, 5), R("2", 6, 7),
         CAS("1", "3", False, 8, 9), R("2", 10, 11), CAS("9", "3", False, 12, 13)]
    res = check(h)
    assert res.ok, res.explain()


def test_checker_accepts_empty_and_absent_reads():
    assert check([]).ok
    assert check([R(None, 0, 1), CAS("x", "y", False, 2, 3), R(None, 4, 5)]).ok


def test_checker_accepts_concurrent_history():
    # a long write overlaps reads that see the old then the new value
    h = [W("0", 0, 1, 1), W("1", 2, 10, 1), R("0", 3, 4, 2), R("1", 5, 6, 2),
         R("1", 3, 7, 3), CAS("1", "2", True, 8, 12, 3), R("2", 11, 13, 2)]
    res = check(h)
    assert res.ok, res.explain()


def test_checker_accepts_concurrent_cas_race():
    h = [W("0", 0, 1), CAS("0", "a", True, 2, 5, 1), CAS("0", "b", False, 2, 5, 2),
         R("a", 6, 7)]
    assert check(h).ok


@pytest.mark.parametrize("name,history", [
    ("stale read", [W("1", 0, 1), W("2", 2, 3), R("1", 4, 5)]),
    ("read of a value never written", [W("1", 0, 1), R("x", 2, 3)]),
    ("reads go back in time", [W("1", 0, 1), W("2", 2, 10, 1), R("2", 3, 4, 2),
                               R("1", 5, 6, 2)]),
    ("two reads of different clients disagree on order",
     [W("1", 0, 1), W("2", 2, 20, 1), R("2", 3, 4, 2), R("1", 5, 6, 3)]),
    ("both concurrent cas succeed", [W("0", 0, 1), CAS("0", "1", True, 2, 3, 1),
                                     CAS("0", "2", True, 2, 3, 2)]),
    ("cas fails for no reason", [W("0", 0, 1), CAS("0", "1", False, 2, 3)]),
    ("cas succeeds on a wrong value", [W("0", 0, 1), CAS("5", "1", True, 2, 3)]),
    ("acknowledged write lost", [W("1", 0, 1), R(None, 2, 3)]),
    ("acknowledged write lost later", [W("1", 0, 1), R("1", 2, 3), R(None, 4, 5)]),
    ("value reappears after overwrite", [W("a", 0, 1), W("b", 2, 3), R("b", 4, 5),
                                         R("a", 6, 7)]),
])
def test_checker_rejects(name, history):
    res = check(history)
    assert res.conclusive
    assert not res.ok, name
    assert res.blocking is not None
    assert "NOT linearizable" in res.explain()


def test_checker_unknown_outcomes():
    # an unknown write may take effect late ...
    assert check([W("0", 0, 1), W_("5", 2), R("0", 3, 4), R("5", 10, 11)]).ok
    # ... or never
    assert check([W("0", 0, 1), W_("5", 2), R("0", 3, 4), R("0", 10, 11)]).ok
    # but only once: not before its invocation, and not undone
    assert not check([W("0", 0, 1), R("5", 2, 3), W_("5", 4)]).ok
    assert not check([W("0", 0, 1), W_("5", 2), R("5", 3, 4), R("0", 5, 6)]).ok
    # an unknown cas only takes effect if its compare holds at that point
    assert check([W("0", 0, 1), CAS_("0", "7", 2), R("7", 5, 6)]).ok
    assert not check([W("1", 0, 1), CAS_("0", "7", 2), R("7", 5, 6)]).ok
    assert not check([W("0", 0, 1), CAS_("0", "7", 2), R("7", 5, 6),
                      CAS("0", "8", True, 7, 8)]).ok
    # an unknown write can explain a failed cas
    assert check([W("0", 0, 1), W_("z", 1.5), CAS("0", "1", False, 2, 3)]).ok
    # unknown reads carry no information
    assert check([W("0", 0, 1), Op("read", 2, known=False, result="zzz")]).ok


def simulate(n_ops, clients, seed, unknown_rate=0.02, values=None):
    """A linearizable history: each op takes effect at a random point inside
    its interval (unknown ops: maybe never)."""
    rng = random.Random(seed)
    now = [0.0] * clients
    ops = []
    counter = 0
    for _ in range(n_ops):
        c = rng.randrange(clients)
        a = now[c] + rng.random()
        b = a + rng.random() * 3
        now[c] = b
        kind = rng.choice(["write", "cas", "read", "read"])
        counter += 1
        unknown = rng.random() < unknown_rate
        lin = a + (b - a) * rng.random() if not unknown or rng.random() < 0.5 else INF
        ops.append([lin, kind, a, b, f"v{counter}", unknown, c])
        if unknown:
            now[c] = b + 5   # a client that timed out moves on later
    state = None
    out = []
    # cas guesses: the value some earlier-invoked op wrote (random)
    written = [None]
    for lin, kind, a, b, v, unknown, c in sorted(ops, key=lambda x: x[0]):
        if kind == "write":
            if lin != INF:
                state = v
            out.append(Op("write", a, b, value=v, known=not unknown, client=c))
            written.append(v)
        elif kind == "cas":
            old = rng.choice(written[-3:])
            ok = state == old
            if lin != INF and ok:
                state = v
            out.append(Op("cas", a, b, old=old, value=v, result=ok, known=not unknown,
                          client=c))
        else:
            out.append(Op("read", a, b, result=state, known=not unknown, client=c))
    return out


def test_checker_scales_to_thousands_of_ops():
    h = simulate(3000, 6, seed=11)
    t0 = time.monotonic()
    res = check(h)
    took = time.monotonic() - t0
    assert res.ok, res.explain()
    assert took < 30, took
    # corrupt one read in the middle: rejected
    reads = [i for i, o in enumerate(h) if o.kind == "read" and o.known and o.result]
    i = reads[len(reads) // 4]
    bad = list(h)
    o = bad[i]
    bad[i] = Op("read", o.call, o.ret, result="never-written", client=o.client)
    t0 = time.monotonic()
    res = check(bad)
    assert res.conclusive and not res.ok
    assert time.monotonic() - t0 < 60
    assert res.blocking.call == o.call and res.blocking.result == "never-written"


def test_check_keys_splits_by_key():
    h = [("a", W("1", 0, 1)), ("b", W("2", 0, 1)), ("a", R("1", 2, 3)), ("b", R("2", 2, 3))]
    res = check_keys(h)
    assert set(res) == {"a", "b"} and all(r.ok for r in res.values())
    h.append(("b", R("1", 4, 5)))
    res = check_keys(h)
    assert res["a"].ok and not res["b"].ok


# ---------------------------------------------------------------------------
# chaos against a cluster

def _not_sent(exc):
    """True if the request certainly never reached the server (refused connect)."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        name = type(e).__name__
        if name in ("NewConnectionError", "ConnectionRefusedError"):
            return True
        if name in ("ReadTimeout", "ProtocolError", "RemoteDisconnected"):
            return False
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return False


class ChaosClient(threading.Thread):
    def __init__(self, n, cluster, keys, history, lock, counts, stop, rng_seed):
        super().__init__(daemon=True, name=f"chaos-client-{n}")
        self.n = n
        self.c = cluster
        self.keys = keys
        self.history = history
        self.lock = lock
        self.counts = counts
        self.stop = stop
        self.rng = random.Random(rng_seed)
        self.session = requests.Session()
        self.seq = 0
        self.last_seen = {}
        self.errors = []
        self.stats = {"ok": 0, "fail": 0, "unknown": 0, "not_sent": 0}

    def pick_key(self):
        with self.lock:
            open_keys = [k for k in self.keys if self.counts[k] < CHAOS_MAX_OPS_PER_KEY]
            if not open_keys:
                return None
            k = self.rng.choice(open_keys)
            self.counts[k] += 1
            return k

    def record(self, key, op):
        with self.lock:
            self.history.append((key, op))

    def run(self):
        try:
            while not self.stop.is_set():
                key = self.pick_key()
                if key is None:
                    return
                self.one(key)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(repr(exc))

    def one(self, key):
        m = self.rng.choice(self.c.members)
        url = m.key_url(key)
        kind = self.rng.choices(["write", "cas", "read"], [4, 3, 3])[0]
        self.seq += 1
        value = f"c{self.n}-{self.seq}"
        t0 = time.monotonic()
        try:
            if kind == "write":
                r = self.session.put(url, data={"value": value}, timeout=CHAOS_TIMEOUT)
            elif kind == "cas":
                old = self.last_seen.get(key)
                if old is None:
                    old = "none"
                r = self.session.put(url, data={"value": value},
                                     params={"prevValue": old}, timeout=CHAOS_TIMEOUT)
            else:
                r = self.session.get(url, params={"quorum": "true"} if QUORUM_READS else {},
                                     timeout=CHAOS_TIMEOUT)
        except requests.RequestException as exc:
            if _not_sent(exc):
                self.stats["not_sent"] += 1
                return
            self.stats["unknown"] += 1
            if kind == "write":
                self.record(key, Op("write", t0, value=value, known=False, client=self.n))
            elif kind == "cas":
                self.record(key, Op("cas", t0, old=old, value=value, known=False,
                                    client=self.n))
            return
        t1 = time.monotonic()
        status = r.status_code
        code = None
        try:
            code = r.json().get("errorCode")
        except ValueError:
            pass
        if kind == "write":
            if status in (200, 201):
                self.stats["ok"] += 1
                self.last_seen[key] = value
                self.record(key, Op("write", t0, t1, value=value, client=self.n))
            else:
                self.unknown_or_error(key, Op("write", t0, value=value, known=False,
                                              client=self.n), status, r.text)
        elif kind == "cas":
            if status == 200:
                self.stats["ok"] += 1
                self.last_seen[key] = value
                self.record(key, Op("cas", t0, t1, old=old, value=value, result=True,
                                    client=self.n))
            elif (status, code) in ((412, 101), (404, 100)):
                self.stats["fail"] += 1
                self.record(key, Op("cas", t0, t1, old=old, value=value, result=False,
                                    client=self.n))
                if status == 412:
                    self.last_seen[key] = None    # unknown now: read it next time
            else:
                self.unknown_or_error(key, Op("cas", t0, old=old, value=value, known=False,
                                              client=self.n), status, r.text)
        else:
            if status == 200:
                v = r.json()["node"]["value"]
            elif (status, code) == (404, 100):
                v = None
            elif status >= 500:
                self.stats["unknown"] += 1
                return
            else:
                self.errors.append(f"read {key}: {status} {r.text.strip()}")
                return
            self.stats["ok"] += 1
            self.last_seen[key] = v
            self.record(key, Op("read", t0, t1, result=v, client=self.n))

    def unknown_or_error(self, key, op, status, text):
        if status >= 500:
            self.stats["unknown"] += 1
            self.record(key, op)
        else:
            self.errors.append(f"{op.kind} {key}: unexpected {status} {text.strip()}")
            self.record(key, op)


class Nemesis(threading.Thread):
    ACTIONS = ["kill9", "kill9_leader", "sigstop", "sigstop_leader", "isolate",
               "isolate_leader", "block_pair", "oneway"]

    def __init__(self, cluster, stop, seed):
        super().__init__(daemon=True, name="nemesis")
        self.c = cluster
        self.stop = stop
        self.rng = random.Random(seed)
        self.log = []
        self.errors = []

    def note(self, what):
        self.log.append((round(time.monotonic(), 3), what))

    def target(self, leader_wanted):
        if leader_wanted:
            lm = self.c.leader()
            if lm is not None:
                return lm
        return self.rng.choice(self.c.members)

    def run(self):
        try:
            while not self.stop.is_set():
                self.one()
        except Exception as exc:  # noqa: BLE001
            self.errors.append(repr(exc))
            self.note(f"error {exc!r}")
        finally:
            try:
                self.heal_all()
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"final heal: {exc!r}")

    def one(self):
        c = self.c
        action = self.rng.choice(self.ACTIONS)
        m = self.target(action.endswith("_leader"))
        others = [x for x in c.members if x is not m]
        hold = self.rng.uniform(0.3, 2.5)
        self.note(f"{action} {m.name} for {hold:.2f}s")
        if action.startswith("kill9"):
            c.kill9(m)
        elif action.startswith("sigstop"):
            c.sigstop(m)
        elif action.startswith("isolate"):
            c.proxy.isolate(m.name)
        elif action == "block_pair":
            c.proxy.block(m.name, self.rng.choice(others).name)
        elif action == "oneway":
            o = self.rng.choice(others)
            a, b = (m, o) if self.rng.random() < 0.5 else (o, m)
            c.proxy.block_oneway(a.name, b.name)
        self.stop.wait(hold)       # the fault lasts this long (or until the end)
        self.heal_all()
        self.stop.wait(self.rng.uniform(0.3, 1.5))

    def heal_all(self):
        c = self.c
        c.proxy.heal()
        for m in c.members:
            if m.sigstopped:
                c.sigcont(m)
        for m in c.members:
            if not m.alive():
                c.restart(m, timeout=30)
        self.note("healed")


@pytest.mark.slow
def test_chaos_history_is_linearizable(cluster_factory):
    c = cluster_factory(3, proxied=True)
    keys = [f"lin/k{i}" for i in range(CHAOS_KEYS)]
    history = []
    lock = threading.Lock()
    counts = {k: 0 for k in keys}
    stop_clients = threading.Event()
    stop_nemesis = threading.Event()
    rng = random.Random(CHAOS_SEED)
    clients = [ChaosClient(i, c, keys, history, lock, counts, stop_clients, rng.random())
               for i in range(CHAOS_CLIENTS)]
    nemesis = Nemesis(c, stop_nemesis, rng.random())
    for t in clients:
        t.start()
    nemesis.start()
    deadline = time.monotonic() + CHAOS_SECONDS

    def done():
        return time.monotonic() >= deadline or not any(t.is_alive() for t in clients)
    wait_until(done, CHAOS_SECONDS + 5, interval=0.1)
    stop_nemesis.set()
    nemesis.join(60)
    assert not nemesis.is_alive(), "nemesis did not finish healing"
    stop_clients.set()
    for t in clients:
        t.join(CHAOS_TIMEOUT + 10)
    assert not any(t.is_alive() for t in clients)
    errors = nemesis.errors + [e for t in clients for e in t.errors]
    assert errors == [], (errors, nemesis.log[-10:])

    # everything healed: one leader, all members converge
    c.wait_leader(timeout=15)
    idx, node = c.wait_converged(key="lin", timeout=30)
    final = flatten(node)
    # a final quorum read of every key, after every client stopped, joins the history
    for k in keys:
        m = c.wait_leader()
        t0 = time.monotonic()
        r = c.get(m, k, quorum=True, timeout=5)
        t1 = time.monotonic()
        assert r.status_code in (200, 404), r.text
        v = r.json()["node"]["value"] if r.status_code == 200 else None
        assert final.get("/" + k) == v
        history.append((k, Op("read", t0, t1, result=v, client=-1)))

    stats = {s: sum(t.stats[s] for t in clients) for s in clients[0].stats}
    per_key = {k: sum(1 for kk, _ in history if kk == k) for k in keys}
    acked_writes = {k: sum(1 for kk, o in history if kk == k and o.known and
                           (o.kind == "write" or (o.kind == "cas" and o.result)))
                    for k in keys}
    faults = [w for _, w in nemesis.log if w != "healed"]
    summary = (f"seed={CHAOS_SEED} stats={stats} ops/key={per_key} acked writes/key="
               f"{acked_writes} faults={len(faults)}: {faults[:12]}")
    print(summary)
    assert len(faults) >= min(3, int(CHAOS_SECONDS / 5)), summary
    assert stats["ok"] >= 100, summary
    assert all(n >= 10 for n in acked_writes.values()), summary

    # every acknowledged write is accounted for: the final value of each key
    # was written by some operation (acknowledged or of unknown outcome)
    written = {k: {o.value for kk, o in history if kk == k and o.kind in ("write", "cas")}
               for k in keys}
    for k in keys:
        v = final.get("/" + k)
        assert v is None or v in written[k], (k, v)
        if acked_writes[k]:
            assert v is not None, f"{k}: acknowledged writes but the key is absent"

    t0 = time.monotonic()
    results = check_keys(history, time_budget=CHECK_SECONDS)
    took = time.monotonic() - t0
    bad = {k: r.explain() for k, r in results.items() if not r.ok}
    assert bad == {}, f"{summary}\n" + "\n\n".join(f"{k}: {e}" for k, e in bad.items())
    print(f"checked {sum(r.ops for r in results.values())} ops in {took:.1f}s")
