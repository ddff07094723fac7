"""A linearizability checker for a single register (one etcd key).

Algorithm: Wing & Gong's search as improved by Lowe ("Testing for
linearizability", 2017) and used by Porcupine/Knossos: walk a doubly linked
list of call/return events in time order; at a call event try to linearize
that operation now (the model accepts its recorded output from the current
state); at a return event of an operation not yet linearized, backtrack.
Visited configurations are memoized on (set of linearized operations as a
bitmask, register state), so each is expanded once.

Model (an etcd v2 key, absent = ``None``):

* ``write(v)``            -> state v
* ``cas(old, new)`` ok    -> requires state == old, state new
* ``cas(old, new)`` fail  -> requires state != old (412 compare failed or
  404 key not found), state unchanged
* ``read()`` -> v         -> requires state == v

An operation whose outcome is unknown (timeout, connection broken after the
request was sent, 5xx) may take effect at any time after its invocation or
never: its return time is infinity and its output is unconstrained (an
unknown cas takes effect only if state == old).  Unknown reads carry no
information and are dropped.  Operations that were certainly not sent
(connection refused) should not be recorded at all.
"""

from dataclasses import dataclass, field
import itertools

INF = float("inf")


@dataclass
class Op:
    kind: str                 # "write" | "cas" | "read"
    call: float               # invocation time (monotonic)
    ret: float = INF          # response time; INF when the outcome is unknown
    value: object = None      # write: value; cas: new value
    old: object = None        # cas: expected value
    result: object = None     # read: value read (None = absent); cas: True/False
    known: bool = True        # False: outcome unknown (ret must be INF)
    client: int = -1
    id: int = field(default_factory=itertools.count().__next__)

    def __post_init__(self):
        if not self.known:
            self.ret = INF
        if self.known and self.ret == INF:
            raise ValueError(f"known op without a return time: {self}")
        if self.ret < self.call:
            raise ValueError(f"op returns before it is invoked: {self}")

    def describe(self):
        t = f"[{self.call:.6f}, {'inf' if self.ret == INF else f'{self.ret:.6f}'}]"
        c = f"c{self.client} " if self.client >= 0 else ""
        if self.kind == "write":
            out = "ok" if self.known else "?"
            return f"{c}write({self.value!r}) -> {out} {t}"
        if self.kind == "cas":
            out = ("ok" if self.result else "fail") if self.known else "?"
            return f"{c}cas({self.old!r}, {self.value!r}) -> {out} {t}"
        return f"{c}read() -> {self.result!r} {t}"


def step(state, op):
    """(accepted, new state) of applying ``op`` with its recorded output."""
    if op.kind == "write":
        return True, op.value
    if op.kind == "cas":
        if not op.known:
            return True, (op.value if state == op.old else state)
        if op.result:
            return state == op.old, op.value
        return state != op.old, state
    if op.kind == "read":
        return state == op.result, state
    raise ValueError(op.kind)


@dataclass
class Result:
    ok: bool
    conclusive: bool = True
    ops: int = 0
    explored: int = 0
    # on failure: the longest linearizable prefix found and the first
    # operation that could not follow it
    prefix: list = field(default_factory=list)
    blocking: Op = None
    state_at_block: object = None

    def explain(self, tail=12):
        if self.ok:
            return f"linearizable ({self.ops} ops, {self.explored} configurations)"
        if not self.conclusive:
            return (f"inconclusive: search budget exhausted after {self.explored} "
                    f"configurations ({self.ops} ops)")
        lines = [f"NOT linearizable ({self.ops} ops, {self.explored} configurations).",
                 f"Longest linearizable prefix has {len(self.prefix)} ops; its end:"]
        lines += ["  " + o.describe() for o in self.prefix[-tail:]]
        lines.append(f"state after it: {self.state_at_block!r}; this op returned before it "
                     f"could be linearized: {self.blocking.describe() if self.blocking else '?'}")
        return "\n".join(lines)


class _Fresh:
    """Stands for any value that no read returned and no cas compared with:
    such values are indistinguishable from each other."""
    def __repr__(self):
        return "<unobserved value>"


FRESH = _Fresh()


def _canonical(ops):
    """Reduce the search space without changing the answer.

    * Values nobody observes (no read returned them, no cas compared with
      them) are replaced by one FRESH value.
    * Operations of unknown outcome that then become identical (same kind,
      same expected value, FRESH new value) are interchangeable: only their
      invocation times differ and they are pending forever.  They form a class
      whose members may only be linearized in invocation order (class_prev),
      so that which of them were used never multiplies the configurations.
    """
    observed = {o.result for o in ops if o.kind == "read"} | \
        {o.old for o in ops if o.kind == "cas"}
    out = []
    for o in ops:
        if o.kind in ("write", "cas") and o.value not in observed:
            o = Op(o.kind, o.call, o.ret, value=FRESH, old=o.old, result=o.result,
                   known=o.known, client=o.client, id=o.id)
        out.append(o)
    return out


def check(ops, init=None, budget=2_000_000, time_budget=None):
    """Check a single-register history; return a Result.  The search stops
    (inconclusive) after ``budget`` configurations or ``time_budget`` seconds."""
    import time
    give_up = time.monotonic() + time_budget if time_budget else None
    originals = [o for o in ops if o.known or o.kind != "read"]
    ops = _canonical(originals)
    n = len(ops)
    if n == 0:
        return Result(True, ops=0)
    class_prev = [-1] * n
    last_in_class = {}
    for i in sorted(range(n), key=lambda j: ops[j].call):
        o = ops[i]
        if not o.known and o.value is FRESH:
            k = (o.kind, o.old)
            class_prev[i] = last_in_class.get(k, -1)
            last_in_class[k] = i
    # events: (time, kind 0=call 1=return, op index); calls before returns at
    # equal times (concurrent: the permissive choice)
    events = []
    for i, o in enumerate(ops):
        events.append((o.call, 0, i))
        events.append((o.ret, 1, i))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    # doubly linked list over event nodes 1..2n, 0 = head sentinel, 2n+1 = tail
    m = len(events)
    nxt = list(range(1, m + 2)) + [m + 1]
    prv = [0] + list(range(0, m + 1))
    is_call = [False] * (m + 2)
    op_of = [-1] * (m + 2)
    call_node = [0] * n
    ret_node = [0] * n
    for pos, (_, kind, i) in enumerate(events, start=1):
        op_of[pos] = i
        if kind == 0:
            is_call[pos] = True
            call_node[i] = pos
        else:
            ret_node[i] = pos
    tail = m + 1

    def unlink(x):
        nxt[prv[x]] = nxt[x]
        prv[nxt[x]] = prv[x]

    def relink(x):
        nxt[prv[x]] = x
        prv[nxt[x]] = x

    known_left = sum(1 for o in ops if o.known)
    unknown_bits = 0
    for i, o in enumerate(ops):
        if not o.known:
            unknown_bits |= 1 << i
    linearized = 0
    state = init
    stack = []            # (op index, state before it, pass it was tried in)
    # Memo with dominance: for (known ops linearized, state) the sets of
    # unknown-outcome ops already used.  Using fewer unknown ops is never
    # worse (they may also never take effect), so a configuration whose
    # unknown set is a superset of a visited one is pruned.  Known ops are
    # tried first (pass 0), unknown ones after (pass 1), so small unknown sets
    # tend to be visited first.
    cache = {}
    explored = 0
    best_depth = -1
    best = None
    entry = nxt[0]
    pass_ = 0
    while True:
        if known_left == 0:
            return Result(True, ops=n, explored=explored)
        if entry != tail and is_call[entry]:
            i = op_of[entry]
            o = ops[i]
            if (pass_ == 0) != o.known or \
                    (class_prev[i] >= 0 and not (linearized >> class_prev[i]) & 1):
                # wrong pass, or an earlier interchangeable op must go first
                entry = nxt[entry]
                continue
            accepted, new_state = step(state, o)
            if accepted:
                new_lin = linearized | (1 << i)
                kkey = (new_lin & ~unknown_bits, new_state)
                umask = new_lin & unknown_bits
                seen = cache.get(kkey)
                if seen is None:
                    seen = cache[kkey] = ([], set())
                recent, exact = seen
                # exact repeats always; supersets of the last few visited sets
                if umask not in exact and not any(u & ~umask == 0 for u in recent[-8:]):
                    exact.add(umask)
                    recent.append(umask)
                    explored += 1
                    if explored > budget or (give_up is not None and not explored & 4095
                                             and time.monotonic() > give_up):
                        return Result(False, conclusive=False, ops=n, explored=explored)
                    stack.append((i, state, pass_))
                    linearized = new_lin
                    state = new_state
                    if o.known:
                        known_left -= 1
                    unlink(call_node[i])
                    unlink(ret_node[i])
                    entry = nxt[0]
                    pass_ = 0
                    continue
            entry = nxt[entry]
            continue
        # end of the candidates (a return event, or the end of the list)
        if pass_ == 0:
            pass_ = 1
            entry = nxt[0]
            continue
        # an operation returned before it could be linearized: backtrack
        if len(stack) > best_depth and entry != tail:
            best_depth = len(stack)
            best = ([originals[j] for j, _, _ in stack], originals[op_of[entry]], state)
        if not stack:
            prefix, blocking, st = best if best else ([], None, state)
            return Result(False, ops=n, explored=explored, prefix=prefix,
                          blocking=blocking, state_at_block=st)
        i, state, pass_ = stack.pop()
        linearized &= ~(1 << i)
        if ops[i].known:
            known_left += 1
        relink(ret_node[i])
        relink(call_node[i])
        entry = nxt[call_node[i]]


def check_keys(history, init=None, budget=2_000_000, time_budget=None):
    """{key: Result} for a history of (key, Op) pairs."""
    per_key = {}
    for key, op in history:
        per_key.setdefault(key, []).append(op)
    return {k: check(v, init, budget, time_budget) for k, v in per_key.items()}
