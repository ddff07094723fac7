"""In-order keys: POST creates <dir>/<20-digit index> (spec 6.4)."""

import re

from harness import assert_error, assert_json


def test_in_order_names_are_padded_indexes(member):
    m = member
    r = m.post("/v2/keys/queue", data={"value": "Job1"})
    assert_json(r, 201, {"action": "create", "node": {
        "key": "/queue/00000000000000000004", "value": "Job1",
        "modifiedIndex": 4, "createdIndex": 4}}, index=4)
    m.set("other", "x")  # index 5 is used elsewhere
    r = m.post("/v2/keys/queue", data={"value": "Job2"})
    assert r.json()["node"]["key"] == "/queue/00000000000000000006"
    assert r.headers["X-Etcd-Index"] == "6"


def test_in_order_sorted_listing_is_creation_order(shared_member, ns):
    m = shared_member
    created = []
    for i in range(12):
        r = m.post(f"/v2/keys/{ns}/q", data={"value": f"job{i}"})
        assert r.status_code == 201
        created.append(r.json()["node"]["key"])
    for k in created:
        assert re.fullmatch(rf"/{ns}/q/[0-9]{{20}}", k)
    assert created == sorted(created)
    r = m.get(f"/v2/keys/{ns}/q", params={"sorted": "true"})
    nodes = r.json()["node"]["nodes"]
    assert [n["key"] for n in nodes] == created
    assert [n["value"] for n in nodes] == [f"job{i}" for i in range(12)]


def test_in_order_nested_auto_creates(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.post(f"/v2/keys/{ns}/a/b/q", data={"value": "v"})
    assert r.json()["node"]["key"] == f"/{ns}/a/b/q/{base + 1:020d}"
    d = m.get(f"/v2/keys/{ns}/a/b/q").json()["node"]
    assert (d["createdIndex"], d["modifiedIndex"], d["dir"]) == (base + 1, base + 1, True)


def test_in_order_without_value(shared_member, ns):
    m = shared_member
    base = m.index()
    r = m.post(f"/v2/keys/{ns}/q")
    assert_json(r, 201, {"action": "create", "node": {
        "key": f"/{ns}/q/{base + 1:020d}", "value": "", "modifiedIndex": base + 1,
        "createdIndex": base + 1}})


def test_in_order_item_can_be_consumed_with_cad(shared_member, ns):
    m = shared_member
    r = m.post(f"/v2/keys/{ns}/q", data={"value": "job"})
    k = r.json()["node"]["key"]
    c = r.json()["node"]["modifiedIndex"]
    r = m.delete("/v2/keys" + k, params={"prevIndex": str(c)})
    assert_json(r, 200, {"action": "compareAndDelete",
                         "node": {"key": k, "modifiedIndex": c + 1, "createdIndex": c},
                         "prevNode": {"key": k, "value": "job", "modifiedIndex": c,
                                      "createdIndex": c}})
    assert_error(m.delete("/v2/keys" + k, params={"prevIndex": str(c)}), 404, 100,
                 "Key not found", k, c + 1)
