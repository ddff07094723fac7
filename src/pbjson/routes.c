/* pbjson: etcd 3.4's gateway routes (the google.api.http options of etcdserverpb/rpc.proto,
 * all `post` with body "*"), how a request line is looked up, and the error body, status and
 * stream framing grpc-gateway 1.6.4 (runtime/errors.go, runtime/handler.go) produces. */
#include <string.h>

#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"
#include "pbjson/pbjson.h"
#include "pbjson/pbjson_int.h"

/* /v3/maintenance/hash is declared for both Hash and HashKV; etcd's gateway answers Hash (a
 * {"revision":N} body gets HashResponse, no compact_revision) [observed]. */
static const struct cn_pbjson_route routes[] = {
    {"/v3/kv/range", "/etcdserverpb.KV/Range", &etcdserverpb__range_request__descriptor,
     &etcdserverpb__range_response__descriptor, false, false},
    {"/v3/kv/put", "/etcdserverpb.KV/Put", &etcdserverpb__put_request__descriptor,
     &etcdserverpb__put_response__descriptor, false, false},
    {"/v3/kv/deleterange", "/etcdserverpb.KV/DeleteRange",
     &etcdserverpb__delete_range_request__descriptor,
     &etcdserverpb__delete_range_response__descriptor, false, false},
    {"/v3/kv/txn", "/etcdserverpb.KV/Txn", &etcdserverpb__txn_request__descriptor,
     &etcdserverpb__txn_response__descriptor, false, false},
    {"/v3/kv/compaction", "/etcdserverpb.KV/Compact", &etcdserverpb__compaction_request__descriptor,
     &etcdserverpb__compaction_response__descriptor, false, false},
    {"/v3/watch", "/etcdserverpb.Watch/Watch", &etcdserverpb__watch_request__descriptor,
     &etcdserverpb__watch_response__descriptor, true, true},
    {"/v3/lease/grant", "/etcdserverpb.Lease/LeaseGrant",
     &etcdserverpb__lease_grant_request__descriptor,
     &etcdserverpb__lease_grant_response__descriptor, false, false},
    {"/v3/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke",
     &etcdserverpb__lease_revoke_request__descriptor,
     &etcdserverpb__lease_revoke_response__descriptor, false, false},
    {"/v3/kv/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke",
     &etcdserverpb__lease_revoke_request__descriptor,
     &etcdserverpb__lease_revoke_response__descriptor, false, false},
    {"/v3/lease/keepalive", "/etcdserverpb.Lease/LeaseKeepAlive",
     &etcdserverpb__lease_keep_alive_request__descriptor,
     &etcdserverpb__lease_keep_alive_response__descriptor, true, true},
    {"/v3/lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive",
     &etcdserverpb__lease_time_to_live_request__descriptor,
     &etcdserverpb__lease_time_to_live_response__descriptor, false, false},
    {"/v3/kv/lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive",
     &etcdserverpb__lease_time_to_live_request__descriptor,
     &etcdserverpb__lease_time_to_live_response__descriptor, false, false},
    {"/v3/lease/leases", "/etcdserverpb.Lease/LeaseLeases",
     &etcdserverpb__lease_leases_request__descriptor,
     &etcdserverpb__lease_leases_response__descriptor, false, false},
    {"/v3/kv/lease/leases", "/etcdserverpb.Lease/LeaseLeases",
     &etcdserverpb__lease_leases_request__descriptor,
     &etcdserverpb__lease_leases_response__descriptor, false, false},
    {"/v3/cluster/member/add", "/etcdserverpb.Cluster/MemberAdd",
     &etcdserverpb__member_add_request__descriptor, &etcdserverpb__member_add_response__descriptor,
     false, false},
    {"/v3/cluster/member/remove", "/etcdserverpb.Cluster/MemberRemove",
     &etcdserverpb__member_remove_request__descriptor,
     &etcdserverpb__member_remove_response__descriptor, false, false},
    {"/v3/cluster/member/update", "/etcdserverpb.Cluster/MemberUpdate",
     &etcdserverpb__member_update_request__descriptor,
     &etcdserverpb__member_update_response__descriptor, false, false},
    {"/v3/cluster/member/list", "/etcdserverpb.Cluster/MemberList",
     &etcdserverpb__member_list_request__descriptor,
     &etcdserverpb__member_list_response__descriptor, false, false},
    {"/v3/cluster/member/promote", "/etcdserverpb.Cluster/MemberPromote",
     &etcdserverpb__member_promote_request__descriptor,
     &etcdserverpb__member_promote_response__descriptor, false, false},
    {"/v3/maintenance/alarm", "/etcdserverpb.Maintenance/Alarm",
     &etcdserverpb__alarm_request__descriptor, &etcdserverpb__alarm_response__descriptor, false,
     false},
    {"/v3/maintenance/status", "/etcdserverpb.Maintenance/Status",
     &etcdserverpb__status_request__descriptor, &etcdserverpb__status_response__descriptor, false,
     false},
    {"/v3/maintenance/defragment", "/etcdserverpb.Maintenance/Defragment",
     &etcdserverpb__defragment_request__descriptor, &etcdserverpb__defragment_response__descriptor,
     false, false},
    {"/v3/maintenance/hash", "/etcdserverpb.Maintenance/Hash",
     &etcdserverpb__hash_request__descriptor, &etcdserverpb__hash_response__descriptor, false,
     false},
    {"/v3/maintenance/snapshot", "/etcdserverpb.Maintenance/Snapshot",
     &etcdserverpb__snapshot_request__descriptor, &etcdserverpb__snapshot_response__descriptor,
     false, true},
    {"/v3/maintenance/transfer-leadership", "/etcdserverpb.Maintenance/MoveLeader",
     &etcdserverpb__move_leader_request__descriptor,
     &etcdserverpb__move_leader_response__descriptor, false, false},
    {"/v3/auth/enable", "/etcdserverpb.Auth/AuthEnable",
     &etcdserverpb__auth_enable_request__descriptor,
     &etcdserverpb__auth_enable_response__descriptor, false, false},
    {"/v3/auth/disable", "/etcdserverpb.Auth/AuthDisable",
     &etcdserverpb__auth_disable_request__descriptor,
     &etcdserverpb__auth_disable_response__descriptor, false, false},
    {"/v3/auth/authenticate", "/etcdserverpb.Auth/Authenticate",
     &etcdserverpb__authenticate_request__descriptor,
     &etcdserverpb__authenticate_response__descriptor, false, false},
    {"/v3/auth/user/add", "/etcdserverpb.Auth/UserAdd",
     &etcdserverpb__auth_user_add_request__descriptor,
     &etcdserverpb__auth_user_add_response__descriptor, false, false},
    {"/v3/auth/user/get", "/etcdserverpb.Auth/UserGet",
     &etcdserverpb__auth_user_get_request__descriptor,
     &etcdserverpb__auth_user_get_response__descriptor, false, false},
    {"/v3/auth/user/list", "/etcdserverpb.Auth/UserList",
     &etcdserverpb__auth_user_list_request__descriptor,
     &etcdserverpb__auth_user_list_response__descriptor, false, false},
    {"/v3/auth/user/delete", "/etcdserverpb.Auth/UserDelete",
     &etcdserverpb__auth_user_delete_request__descriptor,
     &etcdserverpb__auth_user_delete_response__descriptor, false, false},
    {"/v3/auth/user/changepw", "/etcdserverpb.Auth/UserChangePassword",
     &etcdserverpb__auth_user_change_password_request__descriptor,
     &etcdserverpb__auth_user_change_password_response__descriptor, false, false},
    {"/v3/auth/user/grant", "/etcdserverpb.Auth/UserGrantRole",
     &etcdserverpb__auth_user_grant_role_request__descriptor,
     &etcdserverpb__auth_user_grant_role_response__descriptor, false, false},
    {"/v3/auth/user/revoke", "/etcdserverpb.Auth/UserRevokeRole",
     &etcdserverpb__auth_user_revoke_role_request__descriptor,
     &etcdserverpb__auth_user_revoke_role_response__descriptor, false, false},
    {"/v3/auth/role/add", "/etcdserverpb.Auth/RoleAdd",
     &etcdserverpb__auth_role_add_request__descriptor,
     &etcdserverpb__auth_role_add_response__descriptor, false, false},
    {"/v3/auth/role/get", "/etcdserverpb.Auth/RoleGet",
     &etcdserverpb__auth_role_get_request__descriptor,
     &etcdserverpb__auth_role_get_response__descriptor, false, false},
    {"/v3/auth/role/list", "/etcdserverpb.Auth/RoleList",
     &etcdserverpb__auth_role_list_request__descriptor,
     &etcdserverpb__auth_role_list_response__descriptor, false, false},
    {"/v3/auth/role/delete", "/etcdserverpb.Auth/RoleDelete",
     &etcdserverpb__auth_role_delete_request__descriptor,
     &etcdserverpb__auth_role_delete_response__descriptor, false, false},
    {"/v3/auth/role/grant", "/etcdserverpb.Auth/RoleGrantPermission",
     &etcdserverpb__auth_role_grant_permission_request__descriptor,
     &etcdserverpb__auth_role_grant_permission_response__descriptor, false, false},
    {"/v3/auth/role/revoke", "/etcdserverpb.Auth/RoleRevokePermission",
     &etcdserverpb__auth_role_revoke_permission_request__descriptor,
     &etcdserverpb__auth_role_revoke_permission_response__descriptor, false, false},
};

const struct cn_pbjson_route *cn_pbjson_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

enum cn_pbjson_lookup cn_pbjson_route_find(const char *method, size_t method_len, const char *path,
                                           size_t path_len, const struct cn_pbjson_route **route)
{
    char tmp[64];
    *route = NULL;
    /* etcd mounts the gateway at /v3/ and rewrites /v3beta/ to it (embed/serve.go); anything
     * else, /v3alpha/ included, falls to Go's ServeMux */
    if (path_len >= 8 && memcmp(path, "/v3beta/", 8) == 0) {
        if (path_len - 4 >= sizeof tmp) return CN_PBJSON_NOT_FOUND;
        memcpy(tmp, "/v3/", 4);
        memcpy(tmp + 4, path + 8, path_len - 8);
        path = tmp;
        path_len -= 4;
    } else if (path_len < 4 || memcmp(path, "/v3/", 4) != 0) {
        return CN_PBJSON_NOT_FOUND_HTTP;
    }
    const struct cn_pbjson_route *hit = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) == path_len && memcmp(routes[i].path, path, path_len) == 0) {
            hit = &routes[i];
            break;
        }
    }
    if (!hit) return CN_PBJSON_NOT_FOUND;
    /* grpc-gateway's mux: a known path with another method is 405 */
    if (method_len != 4 || memcmp(method, "POST", 4) != 0) return CN_PBJSON_NOT_ALLOWED;
    *route = hit;
    return CN_PBJSON_FOUND;
}

const char *cn_pbjson_lookup_body(enum cn_pbjson_lookup r)
{
    switch (r) {
    case CN_PBJSON_NOT_FOUND:
        return "Not Found\n";
    case CN_PBJSON_NOT_ALLOWED:
        return "Method Not Allowed\n";
    case CN_PBJSON_NOT_FOUND_HTTP:
        return "404 page not found\n";
    default:
        return NULL;
    }
}

int cn_pbjson_lookup_status(enum cn_pbjson_lookup r)
{
    switch (r) {
    case CN_PBJSON_NOT_FOUND:
    case CN_PBJSON_NOT_FOUND_HTTP:
        return 404;
    case CN_PBJSON_NOT_ALLOWED:
        return 405;
    default:
        return 200;
    }
}

int cn_pbjson_http_status(int grpc_code)
{
    static const int map[] = {
        [CN_GRPC_OK] = 200,
        [CN_GRPC_CANCELLED] = 408,
        [CN_GRPC_UNKNOWN] = 500,
        [CN_GRPC_INVALID_ARGUMENT] = 400,
        [CN_GRPC_DEADLINE_EXCEEDED] = 504,
        [CN_GRPC_NOT_FOUND] = 404,
        [CN_GRPC_ALREADY_EXISTS] = 409,
        [CN_GRPC_PERMISSION_DENIED] = 403,
        [CN_GRPC_RESOURCE_EXHAUSTED] = 429,
        [CN_GRPC_FAILED_PRECONDITION] = 412,
        [CN_GRPC_ABORTED] = 409,
        [CN_GRPC_OUT_OF_RANGE] = 400,
        [CN_GRPC_UNIMPLEMENTED] = 501,
        [CN_GRPC_INTERNAL] = 500,
        [CN_GRPC_UNAVAILABLE] = 503,
        [CN_GRPC_DATA_LOSS] = 500,
        [CN_GRPC_UNAUTHENTICATED] = 401,
    };
    if (grpc_code < 0 || grpc_code >= (int)(sizeof map / sizeof map[0])) return 500;
    return map[grpc_code];
}

const char *cn_pbjson_status_text(int http_status)
{
    switch (http_status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

/* grpc-gateway's errorBody{Error: 100, Message: 1, Code: 2} through JSONPb: Go struct order
 * (error, message, code), zero values left out. */
void cn_pbjson_error_body(struct cn_buf *out, int grpc_code, const char *msg, size_t msg_len)
{
    cn_buf_putc(out, '{');
    bool first = true;
    if (msg_len) {
        cn_buf_appends(out, "\"error\":");
        cn_pbjson__quote(out, msg, msg_len);
        cn_buf_appends(out, ",\"message\":");
        cn_pbjson__quote(out, msg, msg_len);
        first = false;
    }
    if (grpc_code) cn_buf_appendf(out, "%s\"code\":%d", first ? "" : ",", grpc_code);
    cn_buf_putc(out, '}');
}

void cn_pbjson_stream_result(struct cn_buf *out, const ProtobufCMessage *msg)
{
    cn_buf_appends(out, "{\"result\":");
    cn_pbjson_encode(out, msg);
    cn_buf_appends(out, "}\n");
}

/* internal.StreamError{grpc_code 1, http_code 2, message 3, http_status 4, details 5}. */
void cn_pbjson_stream_error(struct cn_buf *out, int grpc_code, const char *msg, size_t msg_len)
{
    int http = cn_pbjson_http_status(grpc_code);
    cn_buf_appends(out, "{\"error\":{");
    cn_buf_appendf(out, "\"grpc_code\":%d,\"http_code\":%d", grpc_code, http);
    if (msg_len) {
        cn_buf_appends(out, ",\"message\":");
        cn_pbjson__quote(out, msg, msg_len);
    }
    const char *st = cn_pbjson_status_text(http);
    if (st[0]) {
        cn_buf_appends(out, ",\"http_status\":");
        cn_pbjson__quote(out, st, strlen(st));
    }
    cn_buf_appends(out, "}}");
}
