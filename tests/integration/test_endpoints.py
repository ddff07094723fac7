"""Non-keys endpoints: /version, /health, stats, members, machines, metrics, 404/405."""

import json
import re

import pytest
import requests

from harness import IS_ETCD, cluster_id, member_id, metric_value, wait_until

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
GO_DURATION = re.compile(r"^([0-9]+h)?([0-9]+m)?[0-9]+(\.[0-9]+)?(s|ms|µs|ns)$")
HEX_ID = re.compile(r"^[0-9a-f]{1,16}$")


# --------------------------------------------------------------------------
# /version, /health

def test_version(member):
    r = member.get("/version")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert not r.content.endswith(b"\n")
    body = r.json()
    assert list(body) == ["etcdserver", "etcdcluster"]
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", body["etcdserver"])
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.0", body["etcdcluster"])
    major_minor = ".".join(body["etcdserver"].split(".")[:2])
    assert body["etcdcluster"] == major_minor + ".0"


@pytest.mark.cairn_only
def test_version_is_etcd2_compatible(member):
    """Spec 12.1: cairn reports an etcd2-compatible version (e.g. 2.3.8 / 2.3.0)."""
    r = member.get("/version")
    body = r.json()
    assert re.fullmatch(r"2\.3\.[0-9]+", body["etcdserver"]), body
    assert body["etcdcluster"] == "2.3.0"


def test_health(member):
    r = member.get("/health")
    assert r.status_code == 200
    assert r.content == b'{"health":"true"}'


# --------------------------------------------------------------------------
# /v2/stats

def test_stats_self(member):
    r = member.get("/v2/stats/self")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    s = r.json()
    assert list(s)[:5] == ["name", "id", "state", "startTime", "leaderInfo"]
    assert s["name"] == member.name
    assert s["id"] == member.id
    assert s["state"] == "StateLeader"
    assert RFC3339NANO.match(s["startTime"]), s["startTime"]
    li = s["leaderInfo"]
    assert li["leader"] == member.id
    assert GO_DURATION.match(li["uptime"]), li["uptime"]
    assert RFC3339NANO.match(li["startTime"]), li["startTime"]
    assert s["recvAppendRequestCnt"] == 0
    assert s["sendAppendRequestCnt"] == 0
    # follower-only / leader-only rates are omitted when zero on a lone member
    for k in ("recvPkgRate", "recvBandwidthRate", "sendPkgRate", "sendBandwidthRate"):
        assert k not in s
    assert set(s) == {"name", "id", "state", "startTime", "leaderInfo",
                      "recvAppendRequestCnt", "sendAppendRequestCnt"}


def test_stats_self_uptime_grows(member):
    def seconds(d):
        total = 0.0
        for num, unit in re.findall(r"([0-9.]+)(h|ms|µs|ns|m|s)", d):
            total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6,
                                   "ns": 1e-9}[unit]
        return total
    u1 = seconds(member.get("/v2/stats/self").json()["leaderInfo"]["uptime"])
    wait_until(lambda: seconds(member.get("/v2/stats/self").json()["leaderInfo"]["uptime"])
               > u1 + 0.05, timeout=5)


def test_stats_leader_single_member(member):
    r = member.get("/v2/stats/leader")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"leader": member.id, "followers": {}}


STORE_KEYS = ["getsSuccess", "getsFail", "setsSuccess", "setsFail", "deleteSuccess",
              "deleteFail", "updateSuccess", "updateFail", "createSuccess", "createFail",
              "compareAndSwapSuccess", "compareAndSwapFail", "compareAndDeleteSuccess",
              "compareAndDeleteFail", "expireCount", "watchers"]


def test_stats_store_key_order(member):
    r = member.get("/v2/stats/store")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    s0 = json.loads(r.content, object_pairs_hook=list)
    assert [k for k, _ in s0] == STORE_KEYS
    s0 = dict(s0)
    assert all(isinstance(v, int) and v >= 0 for v in s0.values())
    assert s0["watchers"] == 0
    assert s0["expireCount"] == 0


def stats_store_exercise(member):
    m = member
    s0 = m.get("/v2/stats/store").json()
    m.set("a", "1")                                                         # set ok
    m.put("/v2/keys/a/b", data={"value": "x"})                              # set fail (104)
    m.get("/v2/keys/a")                                                     # get ok
    m.get("/v2/keys/missing")                                               # get fail
    m.put("/v2/keys/a", params={"prevExist": "true"}, data={"value": "2"})  # update ok
    m.put("/v2/keys/zz", params={"prevExist": "true"}, data={"value": "2"})  # update fail
    m.put("/v2/keys/c", params={"prevExist": "false"}, data={"value": "1"})  # create ok
    m.put("/v2/keys/c", params={"prevExist": "false"}, data={"value": "1"})  # create fail
    m.post("/v2/keys/q", data={"value": "1"})                               # create ok
    m.put("/v2/keys/a", params={"prevValue": "2"}, data={"value": "3"})     # CAS ok
    m.put("/v2/keys/a", params={"prevValue": "9"}, data={"value": "3"})     # CAS fail
    m.delete("/v2/keys/a", params={"prevValue": "9"})                       # CAD fail
    m.delete("/v2/keys/a", params={"prevValue": "3"})                       # CAD ok
    m.delete("/v2/keys/c")                                                  # delete ok
    m.delete("/v2/keys/c")                                                  # delete fail
    s1 = m.get("/v2/stats/store").json()
    delta = {k: s1[k] - s0[k] for k in STORE_KEYS}
    return delta


EXPECTED_DELTA = {
    "getsSuccess": 1, "getsFail": 1, "setsSuccess": 1, "setsFail": 1,
    "deleteSuccess": 1, "deleteFail": 1, "updateSuccess": 1, "updateFail": 1,
    "createSuccess": 2, "createFail": 1, "compareAndSwapSuccess": 1,
    "compareAndSwapFail": 1, "compareAndDeleteSuccess": 1, "compareAndDeleteFail": 1,
    "expireCount": 0, "watchers": 0,
}


def test_stats_store_counters_writes(member):
    delta = stats_store_exercise(member)
    writes = {k: v for k, v in EXPECTED_DELTA.items()
              if not k.startswith("gets") and not k.startswith("compareAndDelete")}
    assert {k: delta[k] for k in writes} == writes
    # etcd 3.4 also counts internal (auth) lookups as gets
    assert delta["getsSuccess"] >= 1 and delta["getsFail"] >= 1
    assert delta["compareAndDeleteSuccess"] + delta["compareAndDeleteFail"] == 2


@pytest.mark.cairn_only
def test_stats_store_counters_exact(member):
    """cairn counts exactly the client's operations; a failed compare-and-delete
    counts as compareAndDeleteFail (etcd 3.4 counts it as a success, and counts
    its internal auth lookups as gets)."""
    assert stats_store_exercise(member) == EXPECTED_DELTA


def test_stats_store_validation_errors_do_not_count(member):
    m = member
    s0 = m.get("/v2/stats/store").json()
    m.put("/v2/keys/a", data={"value": "1", "ttl": "x"})
    m.get("/v2/keys/a", params={"recursive": "x"})
    s1 = m.get("/v2/stats/store").json()
    assert s1 == s0


# --------------------------------------------------------------------------
# /v2/members, /v2/machines

def test_member_and_cluster_ids_follow_the_formula(member):
    m = member
    expected_id = member_id([m.peer_url], "etcd-cluster")
    assert HEX_ID.match(expected_id)
    r = m.get("/v2/members")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Etcd-Cluster-Id"] == cluster_id([expected_id])
    assert r.json() == {"members": [{"id": expected_id, "name": m.name,
                                     "peerURLs": [m.peer_url],
                                     "clientURLs": [m.client_url]}]}
    assert list(r.json()["members"][0]) == ["id", "name", "peerURLs", "clientURLs"]


def test_known_id_vector():
    """Spec etcd-cluster.md 3: published vectors."""
    assert member_id(["http://127.0.0.1:23801"], "etcd-cluster") == "bdae9bbc11dd390d"
    assert cluster_id(["bdae9bbc11dd390d"]) == "d1cfaf999eb97a2a"


def test_cluster_token_changes_ids(member_factory):
    m = member_factory(token="my-token")
    r = m.get("/v2/members")
    mid = member_id([m.peer_url], "my-token")
    assert r.json()["members"][0]["id"] == mid
    assert r.headers["X-Etcd-Cluster-Id"] == cluster_id([mid])
    assert m.get("/v2/keys/").headers["X-Etcd-Cluster-Id"] == cluster_id([mid])


def test_members_leader(member):
    m = member
    r = m.get("/v2/members/leader")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Etcd-Cluster-Id"] == m.cluster_id
    assert r.json() == {"id": m.id, "name": m.name, "peerURLs": [m.peer_url],
                        "clientURLs": [m.client_url]}


@pytest.mark.parametrize("path,status,message", [
    ("/v2/members/xyz", 404, "Not found"),
    ("/v2/members/" + "0" * 3, 404, "Not found"),
])
def test_members_get_unknown(member, path, status, message):
    r = member.get(path)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"message": message}


@pytest.mark.parametrize("mid", ["zz", "123abc", "ffffffffffffffff"])
def test_members_delete_unknown(member, mid):
    r = member.delete("/v2/members/" + mid)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == ('{"message":"No such member: %s"}' % mid).encode()


def test_members_put_unknown(member):
    r = member.put("/v2/members/123abc", json={"peerURLs": ["http://127.0.0.1:1"]})
    assert r.status_code == 404
    assert r.json() == {"message": "No such member: 123abc"}


def test_members_post_bad_content_type(member):
    r = member.post("/v2/members", data='{"peerURLs":["http://127.0.0.1:1"]}',
                    headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json() == {"message": "Bad Content-Type text/plain, accept application/json"}


@pytest.mark.parametrize("urls,message", [
    pytest.param(["ftp://127.0.0.1:1"], "URL scheme must be http or https: ftp://127.0.0.1:1",
                 marks=pytest.mark.cairn_only),
    pytest.param(["ftp://127.0.0.1:1"],
                 "URL scheme must be http, https, unix, or unixs: ftp://127.0.0.1:1",
                 marks=pytest.mark.etcd_only),
    (["http://127.0.0.1"], 'URL address does not have the form "host:port": http://127.0.0.1'),
    (["http://127.0.0.1:1/x"], "URL must not contain a path: http://127.0.0.1:1/x"),
    ([], "no valid URLs given"),
])
def test_members_post_bad_urls(member, urls, message):
    r = member.post("/v2/members", json={"peerURLs": urls})
    assert r.status_code == 400
    assert r.json() == {"message": message}
    assert member.get("/v2/members").json()["members"] == [
        {"id": member.id, "name": member.name, "peerURLs": [member.peer_url],
         "clientURLs": [member.client_url]}]


@pytest.mark.parametrize("prefix", [
    pytest.param("etcdserver", marks=pytest.mark.cairn_only),
    pytest.param("membership", marks=pytest.mark.etcd_only),
])
def test_members_post_existing_peer_url(member, prefix):
    r = member.post("/v2/members", json={"peerURLs": [member.peer_url]})
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"message": f"{prefix}: peerURL exists"}


def test_machines(member):
    r = member.get("/v2/machines")
    assert r.status_code == 200
    assert r.content == member.client_url.encode()
    assert r.headers["Content-Type"].startswith("text/plain")
    h = member.head("/v2/machines")
    assert h.status_code == 200
    assert h.content == b""


def test_machines_lists_all_client_urls(member_factory):
    from harness import free_port
    extra = f"http://127.0.0.1:{free_port()}"
    urls = (lambda m: f"{m.client_url},{extra}")
    m = member_factory(overrides={"--listen-client-urls": urls,
                                  "--advertise-client-urls": urls})
    both = sorted([m.client_url, extra])  # URL lists are kept sorted
    r = requests.get(extra + "/v2/machines", timeout=5)
    assert r.content == ", ".join(both).encode()
    assert m.get("/v2/members").json()["members"][0]["clientURLs"] == both


# --------------------------------------------------------------------------
# /metrics

def test_metrics_series(member):
    m = member
    r = m.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    t = r.text
    for name in ("etcd_server_has_leader", "etcd_server_is_leader"):
        assert metric_value(t, name) == 1.0, name
    assert metric_value(t, "etcd_server_leader_changes_seen_total") >= 1
    for name in ("etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total"):
        assert metric_value(t, name) >= 3, name
    assert metric_value(t, "etcd_server_proposals_failed_total") == 0
    assert metric_value(t, "etcd_server_proposals_pending") == 0


def test_metrics_counters_move(member):
    m = member
    t0 = m.get("/metrics").text
    for i in range(3):
        m.set(f"k{i}", "v")
    m.get("/v2/keys/missing")
    t1 = m.get("/metrics").text

    def d(name, labels=None):
        return (metric_value(t1, name, labels) or 0) - (metric_value(t0, name, labels) or 0)

    assert d("etcd_http_received_total", {"method": "PUT"}) == 3
    assert d("etcd_server_proposals_committed_total") >= 3
    assert d("etcd_server_proposals_applied_total") >= 3
    assert d("etcd_http_failed_total", {"method": "GET", "code": "404"}) == 1
    assert d("etcd_http_successful_duration_seconds_count", {"method": "PUT"}) == 3


def test_metrics_failed_label_is_the_status_sent(member):
    """etcd_http_failed_total's code is the status the client got: 412 for a failed compare or
    an existing key, 403 for a directory that is not empty (cairn counted both as 400)."""
    m = member
    m.set("lbl/a", "1")
    t0 = m.get("/metrics").text
    r = m.put("/v2/keys/lbl/a", data={"value": "2", "prevExist": "false"})
    assert r.status_code == 412 and r.json()["errorCode"] == 105
    r = m.put("/v2/keys/lbl/a", data={"value": "2", "prevValue": "nope"})
    assert r.status_code == 412 and r.json()["errorCode"] == 101
    r = m.delete("/v2/keys/lbl", params={"dir": "true"})
    assert r.status_code == 403 and r.json()["errorCode"] == 108
    t1 = m.get("/metrics").text

    def d(labels):
        return (metric_value(t1, "etcd_http_failed_total", labels) or 0) - (
            metric_value(t0, "etcd_http_failed_total", labels) or 0)

    assert d({"method": "PUT", "code": "412"}) == 2
    assert d({"method": "DELETE", "code": "403"}) == 1
    assert d({"method": "PUT", "code": "400"}) == 0


@pytest.mark.cairn_only
def test_metrics_cairn_names(member):
    """Spec 14/15: cairn uses the 2.x names (etcd_store_*, etcd_wal_fsync_duration_seconds)."""
    m = member
    m.set("a", "1")
    m.get("/v2/keys/a")
    t = m.get("/metrics").text
    assert re.search(r"^# TYPE etcd_wal_fsync_duration_seconds histogram$", t, re.M)
    assert metric_value(t, "etcd_wal_fsync_duration_seconds_count") >= 1
    assert metric_value(t, "etcd_wal_fsync_duration_seconds_bucket", {"le": "+Inf"}) >= 1
    assert metric_value(t, "etcd_store_writes_total", {"action": "set"}) >= 1
    assert metric_value(t, "etcd_store_reads_total", {"action": "get"}) >= 1
    assert metric_value(t, "etcd_store_watchers") == 0
    assert metric_value(t, "etcd_store_expires_total") == 0
    assert "etcd_debugging_store_" not in t


@pytest.mark.etcd_only
def test_metrics_etcd34_names(member):
    m = member
    m.set("a", "1")
    t = m.get("/metrics").text
    assert re.search(r"^# TYPE etcd_disk_wal_fsync_duration_seconds histogram$", t, re.M)
    assert metric_value(t, "etcd_debugging_store_writes_total", {"action": "set"}) >= 1
    assert metric_value(t, "etcd_debugging_store_watchers") == 0


def test_metrics_watchers_gauge(member):
    from harness import Watcher
    m = member
    name = "etcd_debugging_store_watchers" if IS_ETCD else "etcd_store_watchers"
    w = Watcher(m, "k").wait_headers()
    try:
        wait_until(lambda: metric_value(m.get("/metrics").text, name) == 1, timeout=5)
    finally:
        w.close()
    wait_until(lambda: metric_value(m.get("/metrics").text, name) == 0, timeout=5)


def test_metrics_keys_and_expires(member):
    m = member
    name = "etcd_debugging_store_expires_total" if IS_ETCD else "etcd_store_expires_total"
    c = m.set("t", "v", ttl="1")["node"]["modifiedIndex"]
    r = requests.get(m.url("/v2/keys/t"), params={"wait": "true", "waitIndex": str(c + 1)},
                     timeout=10)
    assert r.json()["action"] == "expire"
    assert metric_value(m.get("/metrics").text, name) == 1


# --------------------------------------------------------------------------
# 404 / 405

@pytest.mark.parametrize("path", ["/nope", "/v2", "/v2/", "/v2/nope", "/v2/stats",
                                  "/v2/stats/nope", "/v3nope", "/versions"])
def test_unknown_path_404(member, path):
    r = member.get(path)
    assert r.status_code == 404
    assert r.content == b"404 page not found\n"
    assert r.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("method,path,allow", [
    ("PATCH", "/v2/keys/a", "HEAD,GET,PUT,POST,DELETE"),
    ("POST", "/version", "GET"),
    ("PUT", "/health", "GET"),
    ("POST", "/v2/stats/self", "GET"),
    ("DELETE", "/v2/stats/store", "GET"),
    ("PUT", "/v2/stats/leader", "GET"),
    ("POST", "/v2/machines", "GET,HEAD"),
])
def test_wrong_method_405(member, method, path, allow):
    r = requests.request(method, member.url(path), timeout=10)
    assert r.status_code == 405
    assert r.content == b"Method Not Allowed\n"
    assert r.headers["Allow"] == allow


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_members_collection_405(member, method):
    r = requests.request(method, member.url("/v2/members"), timeout=10)
    assert r.status_code == 405
    assert r.content == b"Method Not Allowed\n"


@pytest.mark.cairn_only
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_members_collection_405_allow_header(member, method):
    """Spec 1: members allow GET,POST,DELETE,PUT (etcd 3.4 omits the header here)."""
    r = requests.request(method, member.url("/v2/members"), timeout=10)
    assert r.headers["Allow"] == "GET,POST,DELETE,PUT"


# --------------------------------------------------------------------------
# CORS

@pytest.mark.cairn_only
def test_no_cors_headers_by_default(member):
    r = member.get("/v2/keys/", headers={"Origin": "http://example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Allow-Methods" not in r.headers


@pytest.mark.etcd_only
def test_etcd34_cors_on_by_default(member):
    r = member.get("/v2/keys/")
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "POST, GET, OPTIONS, PUT, DELETE"
    assert r.headers["Access-Control-Allow-Headers"] == "accept, content-type, authorization"


def test_cors_star_flag(member_factory):
    m = member_factory(extra_args=["--cors", "*"])
    r = m.get("/v2/keys/", headers={"Origin": "http://example.com"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "http://example.com")
    assert r.headers["Access-Control-Allow-Methods"] == "POST, GET, OPTIONS, PUT, DELETE"
    assert r.headers["Access-Control-Allow-Headers"] == "accept, content-type, authorization"
