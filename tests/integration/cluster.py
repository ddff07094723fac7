"""Multi-member clusters for the black-box suite (built on ``harness.Member``).

A :class:`Cluster` starts N members on 127.0.0.1 (ephemeral ports) with a
static bootstrap (``--initial-cluster``, ``--initial-cluster-state new``, a
per-cluster ``--initial-cluster-token``) and fast raft timers (heartbeat 50 ms,
election 500 ms unless told otherwise).  With ``proxied=True`` every member
advertises a port of an in-process :class:`faultproxy.FaultProxy` as its peer
URL, so tests can cut links between members (``cluster.proxy``).

Leader discovery uses ``GET /v2/stats/self`` on each member (``state`` is
``StateLeader`` / ``StateFollower``, ``leaderInfo.leader`` the leader's hex id).
"""

import itertools
import json
import os
import signal
import time

import requests

import harness
from harness import Member, free_port, member_id, wait_until

DEFAULT_HEARTBEAT_MS = int(os.environ.get("CAIRN_CLUSTER_HEARTBEAT_MS", "50"))
DEFAULT_ELECTION_MS = int(os.environ.get("CAIRN_CLUSTER_ELECTION_MS", "500"))

_tokens = itertools.count(1)


class ClusterMember(Member):
    """A Member whose advertised peer URL may differ from its listen peer URL
    (a fault proxy in between) and whose id may be assigned by the cluster
    (runtime add)."""

    def __init__(self, workdir, name, cluster, client_port, listen_peer_port,
                 adv_peer_port=None, extra_args=(), **kw):
        self.cluster = cluster
        self.adv_peer_port = adv_peer_port or listen_peer_port
        self.assigned_id = None
        self.sigstopped = False
        self.removed = False
        overrides = {"--listen-peer-urls": lambda m: m.listen_peer_url,
                     "--initial-cluster": lambda m: m.cluster.initial_cluster_for(m)}
        super().__init__(workdir, name=name, extra_args=extra_args, client_port=client_port,
                         peer_port=listen_peer_port, token=cluster.token,
                         overrides=overrides, **kw)

    @property
    def peer_url(self):           # advertised (what the other members dial)
        return f"http://127.0.0.1:{self.adv_peer_port}"

    @property
    def listen_peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def id(self):
        return self.assigned_id or member_id([self.peer_url], self.token)

    @property
    def cluster_id(self):
        return self.cluster.cluster_id

    def up(self):
        """Running and not SIGSTOPped."""
        return self.alive() and not self.sigstopped

    def __repr__(self):
        return f"<{self.name} id={self.id} client={self.client_port} peer={self.adv_peer_port}>"


class Cluster:
    def __init__(self, workdir, size=3, heartbeat_ms=DEFAULT_HEARTBEAT_MS,
                 election_ms=DEFAULT_ELECTION_MS, proxied=False, extra_args=(),
                 token=None, snapshot_count=None, registry=None, name_prefix="n"):
        self.workdir = workdir
        self.size = size
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.token = token or f"cairn-test-{os.getpid()}-{next(_tokens)}"
        self.extra_args = list(extra_args)
        if snapshot_count is not None:
            self.extra_args += ["--snapshot-count", str(snapshot_count)]
        self.proxy = None
        if proxied:
            from faultproxy import FaultProxy
            self.proxy = FaultProxy()
        self.members = []            # every member ever created (removed ones too)
        self.registry = registry if registry is not None else []   # for failure reports
        self.name_prefix = name_prefix
        self._names = itertools.count(1)
        self.initial = []
        for _ in range(size):
            self.initial.append(self._new_member())

    # -- construction -----------------------------------------------------------
    @property
    def election_s(self):
        return self.election_ms / 1000.0

    def timer_args(self):
        return ["--heartbeat-interval", str(self.heartbeat_ms),
                "--election-timeout", str(self.election_ms)]

    def _new_member(self, state="new"):
        name = f"{self.name_prefix}{next(self._names)}"
        client_port = free_port()
        listen_peer = free_port()
        while listen_peer == client_port:
            listen_peer = free_port()
        adv = None
        if self.proxy is not None:
            adv = self.proxy.listen(name, listen_peer)
        m = ClusterMember(self.workdir / name, name, self, client_port, listen_peer, adv,
                          extra_args=self.timer_args() + ["--initial-cluster-state", state]
                          + self.extra_args)
        m.join_state = state
        self.members.append(m)
        self.registry.append(m)
        if self.proxy is not None and state == "new":
            self.proxy.register(m.id, m.name)
        return m

    def initial_cluster_for(self, m):
        if m.join_state == "new":
            group = self.initial
        else:
            group = [x for x in self.members if not x.removed and
                     (x.assigned_id or x in self.initial or x is m)]
        return ",".join(f"{x.name}={x.peer_url}" for x in group)

    @property
    def cluster_id(self):
        return harness.cluster_id([m.id for m in self.initial])

    def start(self, timeout=None):
        timeout = timeout or max(harness.START_TIMEOUT, 15)
        for m in self.initial:
            m.start(wait=False)
        for m in self.initial:
            m.wait_ready(timeout)
        self.wait_leader(timeout)
        return self

    def cleanup(self):
        for m in self.members:
            if m.sigstopped and m.alive():
                try:
                    os.kill(m.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
            m.cleanup()
        if self.proxy is not None:
            self.proxy.close()

    # -- views ------------------------------------------------------------------
    def current(self):
        """Members of the cluster now (not removed)."""
        return [m for m in self.members if not m.removed and
                (m in self.initial or m.assigned_id)]

    def up(self):
        return [m for m in self.current() if m.up()]

    def by_id(self, hexid):
        for m in self.members:
            if m.id == hexid:
                return m
        return None

    def by_name(self, name):
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    # -- leader -----------------------------------------------------------------
    @staticmethod
    def stats_self(m, timeout=1.0):
        r = requests.get(m.url("/v2/stats/self"), timeout=timeout)
        r.raise_for_status()
        return r.json()

    def leader(self, among=None, timeout=1.0):
        """The member every reachable member of ``among`` (default: all up members)
        agrees is the leader and that itself says StateLeader; else None.
        Members that do not answer are ignored, but at least a majority of the
        current membership must answer and agree."""
        among = list(among) if among is not None else self.up()
        views = {}
        for m in among:
            try:
                views[m.name] = self.stats_self(m, timeout)
            except (requests.RequestException, ValueError):
                continue
        leaders = [n for n, v in views.items() if v.get("state") == "StateLeader"]
        if len(leaders) != 1:
            return None
        lm = self.by_name(leaders[0])
        agree = [n for n, v in views.items() if v.get("leaderInfo", {}).get("leader") == lm.id]
        if len(agree) != len(views):
            return None
        if len(agree) <= len(self.current()) // 2:
            return None
        return lm

    def wait_leader(self, timeout=10.0, among=None, exclude=(), interval=0.02):
        excl = {getattr(x, "name", x) for x in exclude}

        def found():
            lm = self.leader(among)
            return lm if lm is not None and lm.name not in excl else None
        return wait_until(found, timeout, interval=interval,
                          message=f"an agreed leader (excluding {sorted(excl)})")

    def followers(self, leader=None):
        leader = leader or self.wait_leader()
        return [m for m in self.up() if m is not leader]

    # -- process control ----------------------------------------------------------
    def kill9(self, m):
        if m.sigstopped:
            self.sigcont(m)
        return m.kill9()

    def stop(self, m, timeout=15):
        if m.sigstopped:
            self.sigcont(m)
        return m.stop(timeout)

    def sigstop(self, m):
        os.kill(m.proc.pid, signal.SIGSTOP)
        m.sigstopped = True

    def sigcont(self, m):
        if m.alive():
            os.kill(m.proc.pid, signal.SIGCONT)
        m.sigstopped = False

    def restart(self, m, wait=True, timeout=None):
        """Restart with the same data dir (initial flags are ignored then)."""
        timeout = timeout or max(harness.START_TIMEOUT, 15)
        if m.alive():
            self.stop(m)
        m.restart(wait=wait, timeout=timeout)
        return m

    # -- membership -------------------------------------------------------------
    def members_api(self, via=None, timeout=5):
        via = via or self.up()[0]
        r = requests.get(via.url("/v2/members"), timeout=timeout)
        assert r.status_code == 200, r.text
        return r.json()["members"]

    def add_member(self, via=None, start=True, timeout=None):
        """POST /v2/members, then start the new process with state ``existing``.
        Returns (member, POST response)."""
        m = self._new_member(state="existing")
        via = via or self.wait_leader()
        answers = []

        def post():
            # etcd 3.4 (--strict-reconfig-check, on by default) answers 500
            # "unhealthy cluster" until every member has been connected for 5 s.
            r = requests.post(via.url("/v2/members"), json={"peerURLs": [m.peer_url]},
                              timeout=10)
            answers.append((r.status_code, r.text.strip()))
            return r if r.status_code < 500 else None
        r = wait_until(post, 20, interval=0.2, message=f"POST /v2/members (answers {answers[-2:]})")
        assert r.status_code == 201, (r.status_code, r.text)
        body = r.json()
        m.add_answers = answers
        m.assigned_id = body["id"]
        if self.proxy is not None:
            self.proxy.register(m.id, m.name)
        if start:
            m.start(wait=True, timeout=timeout or max(harness.START_TIMEOUT, 20))
        return m, r

    def remove_member(self, m, via=None):
        via = via or next(x for x in self.up() if x is not m)
        r = requests.delete(via.url(f"/v2/members/{m.id}"), timeout=10)
        if r.status_code == 204:
            m.removed = True
        return r

    # -- data helpers -------------------------------------------------------------
    def put(self, key, value, via=None, deadline=10.0, **params):
        """Write ``key`` (retrying through the up members until the deadline);
        return the JSON body of the 2xx answer."""
        data = {"value": value}
        data.update(params)
        tried = []

        def attempt():
            targets = [via] if via is not None else self.up()
            for m in targets:
                try:
                    r = requests.put(m.key_url(key), data=data, timeout=2)
                except requests.RequestException as exc:
                    tried.append(repr(exc))
                    continue
                if r.status_code in (200, 201):
                    return r.json()
                tried.append(f"{m.name}: {r.status_code} {r.text.strip()}")
            return None
        return wait_until(attempt, deadline, interval=0.05,
                          message=f"a successful write of {key} (tried {tried[-3:]})")

    @staticmethod
    def get(m, key, quorum=False, timeout=3, **params):
        if quorum:
            params["quorum"] = "true"
        return requests.get(m.key_url(key), params=params, timeout=timeout)

    @staticmethod
    def raft_headers(m, timeout=2):
        r = requests.get(m.key_url(""), timeout=timeout)
        return {k: int(r.headers[h]) for k, h in (("etcd_index", "X-Etcd-Index"),
                                                   ("raft_index", "X-Raft-Index"),
                                                   ("raft_term", "X-Raft-Term"))}

    @staticmethod
    def snapshot_state(m, key="", timeout=3):
        """(X-Etcd-Index, canonical JSON of the recursive sorted listing) of one member."""
        r = requests.get(m.key_url(key), params={"recursive": "true", "sorted": "true"},
                         timeout=timeout)
        if r.status_code == 404:
            body = None
        else:
            assert r.status_code == 200, r.text
            body = r.json()["node"]
        return int(r.headers["X-Etcd-Index"]), json.dumps(body, sort_keys=True)

    def wait_converged(self, timeout=20.0, key="", members=None, min_index=0):
        """Wait until every given member (default: up members) serves the same
        recursive listing of ``key`` at the same X-Etcd-Index; return
        (index, node) of that common state."""
        members = list(members) if members is not None else self.up()
        last = {}

        def same():
            states = {}
            for m in members:
                states[m.name] = self.snapshot_state(m, key)
            last.clear()
            last.update(states)
            vals = set(states.values())
            if len(vals) == 1:
                idx, body = vals.pop()
                if idx >= min_index:
                    return (idx, json.loads(body))
            return None
        try:
            return wait_until(same, timeout, interval=0.05, message="converged members")
        except harness.TimeoutExpired as exc:
            summary = {n: (i, len(b)) for n, (i, b) in last.items()}
            raise harness.TimeoutExpired(f"{exc}; last (index, listing size) per member: "
                                         f"{summary}") from None


def flatten(node, out=None):
    """{key: value} of every leaf in a recursive listing node."""
    out = {} if out is None else out
    if node is None:
        return out
    if node.get("dir"):
        for child in node.get("nodes", []):
            flatten(child, out)
    else:
        out[node["key"]] = node.get("value")
    return out


def monotonic():
    return time.monotonic()
