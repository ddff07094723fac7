#!/bin/sh
# Re-captures the golden files of tests/unit/pbjson/ from a real etcd 3.4 gateway:
#   capture.sh http://127.0.0.1:PORT      (a fresh single-member etcd, empty data dir)
# Each case writes <name>.req (the body sent) and <name>.resp (etcd's body, byte for byte),
# <name>.status (the HTTP status). Order matters: revisions in the outputs follow from it.
set -eu
u=$1
dir=$(cd "$(dirname "$0")" && pwd)
c() {
    name=$1 path=$2 body=$3
    printf '%s' "$body" >"$dir/$name.req"
    printf '%s\n' "$path" >"$dir/$name.path"
    curl -s -o "$dir/$name.resp" -w '%{http_code}' -X POST "$u$path" -d "$body" >"$dir/$name.status"
}
c put1 /v3/kv/put '{"key":"Zm9v","value":"YmFy"}'
c put_prev /v3/kv/put '{"key":"Zm9v","value":"YmFy","prev_kv":true}'
c range1 /v3/kv/range '{"key":"Zm9v"}'
c range_count /v3/kv/range '{"key":"AA==","range_end":"AA==","count_only":true}'
c status /v3/maintenance/status '{}'
c txn_fail /v3/kv/txn '{"compare":[{"key":"Zm9v","target":"MOD","mod_revision":"0","result":"EQUAL"}],"success":[{"request_put":{"key":"Zm9v","value":"eA=="}}],"failure":[{"request_range":{"key":"Zm9v"}},{"request_put":{"key":"YQ==","value":"Yg=="}},{"request_delete_range":{"key":"bm8="}},{"request_txn":{}}]}'
c txn_ok /v3/kv/txn '{"compare":[{"key":"Zm9v","target":"VERSION","version":"2","result":"EQUAL"}],"success":[{"request_range":{"key":"Zm9v"}}]}'
c delete_prev /v3/kv/deleterange '{"key":"YQ==","prev_kv":true}'
c lease_grant /v3/lease/grant '{"TTL":60,"ID":1234}'
c lease_put /v3/kv/put '{"key":"bGs=","value":"","lease":1234}'
c lease_ttl /v3/lease/timetolive '{"ID":1234,"keys":true}'
c lease_ttl_missing /v3/kv/lease/timetolive '{"ID":99}'
c lease_leases /v3/lease/leases '{}'
c range_lease /v3/kv/range '{"key":"bGs="}'
c lease_revoke /v3/lease/revoke '{"ID":1234}'
c lease_revoke_missing /v3/lease/revoke '{"ID":1234}'
c compaction /v3/kv/compaction '{"revision":3}'
c range_compacted /v3/kv/range '{"key":"Zm9v","revision":2}'
c range_future /v3/kv/range '{"key":"Zm9v","revision":200}'
c put_nokey /v3/kv/put '{"value":"YmFy"}'
c member_list /v3/cluster/member/list '{}'
c hash /v3/maintenance/hash '{}'
c alarm /v3/maintenance/alarm '{}'
c user_add /v3/auth/user/add '{"name":"a<b>&c\u2028\u0001\"\t\u007f\u00e9","password":"x"}'
c user_list /v3/auth/user/list '{}'
c role_add /v3/auth/role/add '{"name":"r"}'
c role_grant /v3/auth/role/grant '{"name":"r","perm":{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}}'
c role_get /v3/auth/role/get '{"role":"r"}'
c member_remove_missing /v3/cluster/member/remove '{"ID":1}'
c auth_not_enabled /v3/auth/authenticate '{"name":"x","password":"y"}'
c bad_b64 /v3/kv/range '{"key":"Zm9v!"}'
c bad_json /v3/kv/range '{"key":"Zm9v",}'
c bad_enum /v3/kv/range '{"key":"Zm9v","sort_order":"NOPE"}'
c bad_int /v3/kv/range '{"key":"Zm9v","limit":1.5}'
c defragment /v3/maintenance/defragment '{}'
# Streams (*.stream: etcd's reply lines; *.stream.req: the body): a watch, then writes to it.
printf '%s' '{"create_request":{"key":"d2s=","prev_kv":true,"fragment":true,"progress_notify":true}}{"create_request":{"key":"AA==","range_end":"AA==","watch_id":9,"filters":["NODELETE"]}}{"progress_request":{}}' >"$dir/watch.stream.req"
timeout 2 curl -s -N -X POST "$u/v3/watch" --data-binary @"$dir/watch.stream.req" >"$dir/watch.stream" &
sleep 0.6 # only to let the watch be created before the writes; the file is checked by hand
curl -s -X POST "$u/v3/kv/put" -d '{"key":"d2s=","value":"PD4m"}' >/dev/null
curl -s -X POST "$u/v3/kv/put" -d '{"key":"d2s=","value":""}' >/dev/null
wait
curl -s -X POST "$u/v3/lease/grant" -d '{"TTL":60,"ID":55}' >/dev/null
printf '%s' '{"ID":55}{"ID":56}' >"$dir/keepalive.stream.req"
curl -s -X POST "$u/v3/lease/keepalive" --data-binary @"$dir/keepalive.stream.req" >"$dir/keepalive.stream"
