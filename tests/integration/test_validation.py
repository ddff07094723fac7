"""Request parameter parsing and validation (spec section 2)."""

import pytest
import requests

from harness import assert_error, assert_json, error_bytes, raw_http

TRUE = ["1", "t", "T", "TRUE", "true", "True"]
FALSE = ["0", "f", "F", "FALSE", "false", "False"]
BAD_BOOL = ["yes", "tRUE", "2", "on", "", "truee"]


def invalid(name):
    return f'invalid value for "{name}"'


# --------------------------------------------------------------------------
# Booleans

@pytest.mark.parametrize("spelling", TRUE)
def test_true_spellings(shared_member, ns, spelling):
    m = shared_member
    m.set(f"{ns}/d/sub/k", "v")
    r = m.get(f"/v2/keys/{ns}/d", params={"recursive": spelling})
    sub = r.json()["node"]["nodes"][0]
    assert sub["nodes"][0]["key"] == f"/{ns}/d/sub/k"
    # dir=<true> on PUT creates a directory
    r = m.put(f"/v2/keys/{ns}/newdir", data={"dir": spelling})
    assert r.status_code == 201
    assert r.json()["node"]["dir"] is True


@pytest.mark.parametrize("spelling", FALSE)
def test_false_spellings(shared_member, ns, spelling):
    m = shared_member
    m.set(f"{ns}/d/sub/k", "v")
    r = m.get(f"/v2/keys/{ns}/d", params={"recursive": spelling})
    sub = r.json()["node"]["nodes"][0]
    assert sub["key"] == f"/{ns}/d/sub" and "nodes" not in sub
    r = m.put(f"/v2/keys/{ns}/k", data={"dir": spelling, "value": "v"})
    assert r.status_code == 201
    assert "dir" not in r.json()["node"]
    # prevExist=false spelling means create
    r = m.put(f"/v2/keys/{ns}/c", data={"prevExist": spelling, "value": "v"})
    assert r.status_code == 201 and r.json()["action"] == "create"


@pytest.mark.parametrize("name", ["recursive", "sorted", "wait", "dir", "quorum", "stream"])
@pytest.mark.parametrize("value", BAD_BOOL)
def test_bad_boolean_on_get(shared_member, ns, name, value):
    m = shared_member
    r = m.get(f"/v2/keys/{ns}/x", params={name: value})
    assert r.content == error_bytes(209, "Invalid field", invalid(name), 0)
    assert_error(r, 400, 209, "Invalid field", invalid(name), 0)


def test_bad_prev_exist_and_refresh_causes(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/x", data={"value": "1", "prevExist": "maybe"})
    assert_error(r, 400, 209, "Invalid field", "invalid value for prevExist", 0)
    r = m.put(f"/v2/keys/{ns}/x", data={"value": "1", "refresh": "maybe"})
    assert_error(r, 400, 209, "Invalid field", "invalid value for refresh", 0)


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "HEAD"])
def test_wait_only_with_get(shared_member, ns, method):
    m = shared_member
    r = requests.request(method, m.url(f"/v2/keys/{ns}/x"), params={"wait": "true"},
                         timeout=10)
    if method == "HEAD":
        assert r.status_code == 400
        assert r.headers["X-Etcd-Index"] == "0"
        assert r.content == b""
    else:
        assert_error(r, 400, 209, "Invalid field", '"wait" can only be used with GET requests',
                     0)


@pytest.mark.parametrize("name", ["prevIndex", "waitIndex"])
@pytest.mark.parametrize("value", ["x", "-1", "1.5", "18446744073709551616", " 1"])
def test_bad_index(shared_member, ns, name, value):
    m = shared_member
    r = m.get(f"/v2/keys/{ns}/x", params={name: value})
    assert_error(r, 400, 203, "The given index in POST form is not a number", invalid(name), 0)
    r = m.put(f"/v2/keys/{ns}/x", params={name: value}, data={"value": "1"})
    assert_error(r, 400, 203, "The given index in POST form is not a number", invalid(name), 0)


def test_max_uint64_index_accepted(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/x", "1")
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/x", params={"prevIndex": "18446744073709551615"},
              data={"value": "2"})
    assert_error(r, 412, 101, "Compare failed", f"[18446744073709551615 != {base}]", base)


@pytest.mark.parametrize("value", ["x", "-1", "1.5", "1s", "18446744073709551616"])
def test_bad_ttl(shared_member, ns, value):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/x", data={"value": "1", "ttl": value})
    assert_error(r, 400, 202, "The given TTL in POST form is not a number", invalid("ttl"), 0)
    r = m.post(f"/v2/keys/{ns}/x", data={"value": "1", "ttl": value})
    assert_error(r, 400, 202, "The given TTL in POST form is not a number", invalid("ttl"), 0)


def test_empty_prev_value(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/x", params={"prevValue": ""}, data={"value": "1"})
    assert r.content == error_bytes(201, "PrevValue is Required in POST form",
                                    '"prevValue" cannot be empty', 0)
    assert_error(r, 400, 201, "PrevValue is Required in POST form",
                 '"prevValue" cannot be empty', 0)
    r = m.delete(f"/v2/keys/{ns}/x", params={"prevValue": ""})
    assert_error(r, 400, 201, "PrevValue is Required in POST form",
                 '"prevValue" cannot be empty', 0)


def test_refresh_with_value_and_without_ttl(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/x", data={"refresh": "true", "value": "v", "ttl": "5"})
    assert_error(r, 400, 211, "Value provided on refresh", "A value was provided on a refresh",
                 0)
    r = m.put(f"/v2/keys/{ns}/x", data={"refresh": "true"})
    assert r.content == error_bytes(212, "A TTL must be provided on refresh",
                                    "No TTL value set", 0)
    assert_error(r, 400, 212, "A TTL must be provided on refresh", "No TTL value set", 0)
    r = m.put(f"/v2/keys/{ns}/x", data={"refresh": "true", "ttl": ""})
    assert_error(r, 400, 212, "A TTL must be provided on refresh", "No TTL value set", 0)


def test_refresh_missing_key(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/x", data={"refresh": "true", "ttl": "5"})
    assert_error(r, 404, 100, "Key not found", f"/{ns}", base)


@pytest.mark.parametrize("params,code,cause", [
    # 203 (prevIndex) before 209 (booleans)
    ({"prevIndex": "x", "recursive": "x"}, 203, invalid("prevIndex")),
    # prevIndex before waitIndex
    ({"waitIndex": "x", "prevIndex": "y"}, 203, invalid("prevIndex")),
    # waitIndex before booleans
    ({"waitIndex": "x", "sorted": "x"}, 203, invalid("waitIndex")),
    # booleans in order recursive, sorted, wait, dir, quorum, stream
    ({"stream": "x", "quorum": "x", "dir": "x", "wait": "x", "sorted": "x", "recursive": "x"},
     209, invalid("recursive")),
    ({"stream": "x", "quorum": "x", "dir": "x", "wait": "x", "sorted": "x"}, 209,
     invalid("sorted")),
    ({"stream": "x", "quorum": "x", "dir": "x", "wait": "x"}, 209, invalid("wait")),
    ({"stream": "x", "quorum": "x", "dir": "x"}, 209, invalid("dir")),
    ({"stream": "x", "quorum": "x"}, 209, invalid("quorum")),
    # boolean before wait-with-PUT
    ({"wait": "true", "sorted": "x"}, 209, invalid("sorted")),
    # wait-with-PUT before empty prevValue
    ({"wait": "true", "prevValue": ""}, 209, '"wait" can only be used with GET requests'),
    # empty prevValue before ttl
    ({"prevValue": "", "ttl": "x"}, 201, '"prevValue" cannot be empty'),
    # ttl before prevExist
    ({"ttl": "x", "prevExist": "x"}, 202, invalid("ttl")),
    # prevExist before refresh
    ({"prevExist": "x", "refresh": "x"}, 209, "invalid value for prevExist"),
    # refresh bad before value-on-refresh
    ({"refresh": "x", "value": "v"}, 209, "invalid value for refresh"),
    # value-on-refresh before missing ttl
    ({"refresh": "true", "value": "v"}, 211, "A value was provided on a refresh"),
])
def test_validation_order(shared_member, ns, params, code, cause):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/x", params=params)
    messages = {
        201: "PrevValue is Required in POST form",
        202: "The given TTL in POST form is not a number",
        203: "The given index in POST form is not a number",
        209: "Invalid field",
        211: "Value provided on refresh",
    }
    assert_error(r, 400, code, messages[code], cause, 0)


def test_validation_error_does_not_consume_index(shared_member, ns):
    m = shared_member
    base = m.index()
    m.put(f"/v2/keys/{ns}/x", data={"value": "1", "ttl": "bad"})
    m.put(f"/v2/keys/{ns}/x", data={"value": "1", "prevExist": "bad"})
    assert m.index() == base


# --------------------------------------------------------------------------
# Sources: query vs form body

def test_body_wins_over_query(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", params={"value": "query"}, data={"value": "body"})
    assert r.json()["node"]["value"] == "body"


def test_query_used_when_body_lacks_name(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", params={"value": "query"}, data={"other": "x"})
    assert r.json()["node"]["value"] == "query"


def test_first_occurrence_wins(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p?value=q1&value=q2")
    assert r.json()["node"]["value"] == "q1"
    r = m.put(f"/v2/keys/{ns}/p", data="value=b1&value=b2",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json()["node"]["value"] == "b1"


def test_body_prev_exist_wins_over_query(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/p", "old")
    base = m.index()
    r = m.put(f"/v2/keys/{ns}/p", params={"prevExist": "true"},
              data={"prevExist": "false", "value": "new"})
    assert_error(r, 412, 105, "Key already exists", f"/{ns}/p", base)


def test_json_body_is_ignored(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", params={"value": "q"}, data='{"value":"json"}',
              headers={"Content-Type": "application/json"})
    assert r.status_code == 201
    assert r.json()["node"]["value"] == "q"
    r = m.put(f"/v2/keys/{ns}/p2", data="value=formlike",
              headers={"Content-Type": "application/json"})
    assert r.json()["node"]["value"] == ""


def test_body_without_content_type_is_ignored(shared_member, ns):
    m = shared_member
    req = requests.Request("PUT", m.url(f"/v2/keys/{ns}/p"), data=b"value=raw").prepare()
    req.headers.pop("Content-Type", None)
    r = requests.Session().send(req, timeout=10)
    assert r.status_code == 201
    assert r.json()["node"]["value"] == ""


def test_form_content_type_with_charset(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", data="value=cs",
              headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert r.json()["node"]["value"] == "cs"


def test_post_form_body(shared_member, ns):
    m = shared_member
    r = m.post(f"/v2/keys/{ns}/q", params={"value": "query"}, data={"value": "body"})
    assert r.status_code == 201
    assert r.json()["node"]["value"] == "body"


def test_get_body_is_ignored(shared_member, ns):
    m = shared_member
    m.set(f"{ns}/d/sub/k", "v")
    r = m.get(f"/v2/keys/{ns}/d", data={"recursive": "true"})
    assert "nodes" not in r.json()["node"]["nodes"][0]
    r = m.get(f"/v2/keys/{ns}/d", data={"recursive": "bogus"})
    assert r.status_code == 200


def test_unknown_params_ignored(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", params={"bogus": "1", "Value": "cap"}, data={"value": "v"})
    assert r.status_code == 201
    assert r.json()["node"]["value"] == "v"


def test_value_ignored_for_dir(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/d", data={"dir": "true", "value": "ignored"})
    assert r.status_code == 201
    n = r.json()["node"]
    assert n["dir"] is True and "value" not in n


def raw_error(resp, status, code, message, cause, index):
    assert resp.status == status, resp.body
    assert resp.header("Content-Type") == "application/json"
    assert resp.header("X-Etcd-Index") == str(index)
    assert resp.body == error_bytes(code, message, cause, index)


@pytest.mark.parametrize("where", ["query", "body"])
def test_bad_escape_is_invalid_post_form(shared_member, ns, where):
    m = shared_member
    if where == "query":
        r = raw_http(m.client_port, "PUT", f"/v2/keys/{ns}/p?value=%zz")
    else:
        r = raw_http(m.client_port, "PUT", f"/v2/keys/{ns}/p",
                     {"Content-Type": "application/x-www-form-urlencoded"}, b"value=%zz")
    raw_error(r, 400, 210, "Invalid POST form", 'invalid URL escape "%zz"', 0)


def test_bad_escape_in_get_query(shared_member, ns):
    m = shared_member
    r = raw_http(m.client_port, "GET", f"/v2/keys/{ns}/p?recursive=%zz")
    raw_error(r, 400, 210, "Invalid POST form", 'invalid URL escape "%zz"', 0)


def test_form_value_plus_and_percent_decoding(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", data="value=a+b%2Bc%26d%3De",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json()["node"]["value"] == "a b+c&d=e"
    r = requests.put(m.url(f"/v2/keys/{ns}/p2") + "?value=x+y%20z", timeout=10)
    assert r.json()["node"]["value"] == "x y z"


def test_no_value_on_success_default_off(shared_member, ns):
    m = shared_member
    r = m.put(f"/v2/keys/{ns}/p", data={"value": "v"})
    assert_json(r, 201)
    assert r.json()["node"]["value"] == "v"
