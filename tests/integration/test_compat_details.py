"""Byte-level details where clients or side-by-side comparisons see etcd's Go server: found by
diffing cairn against etcd 3.4 request by request."""
import pytest
import requests


def test_stats_bodies_have_no_trailing_newline(member):
    # etcd writes stats with json.Marshal (no newline); members use an Encoder (newline).
    for path in ("/v2/stats/self", "/v2/stats/store", "/v2/stats/leader"):
        r = member.get(path)
        assert r.status_code == 200
        assert r.content.endswith(b"}") and not r.content.endswith(b"\n"), (path, r.content[-20:])
    assert member.get("/v2/members").content.endswith(b"]}\n")


def test_health_is_json_in_text_plain(member):
    r = member.get("/health")
    assert r.status_code == 200
    assert r.content == b'{"health":"true"}'
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("PATCH", "/v2/keys/a")])
def test_go_http_error_headers(member, method, path):
    r = requests.request(method, member.url(path), timeout=10)
    assert r.status_code in (404, 405)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_every_response_has_a_date(member):
    for path in ("/version", "/v2/keys/", "/nope"):
        assert "Date" in member.get(path).headers


@pytest.mark.cairn_only
def test_bootstrap_records_count_as_etcd_counts_them(member):
    # A new member's raftAttributes is created and its attributes and cluster version are set,
    # as etcd 2.3 does; so on a fresh member the store counts 1 create and 2 sets.
    s = member.get("/v2/stats/store").json()
    assert (s["createSuccess"], s["setsSuccess"]) == (1, 2)
