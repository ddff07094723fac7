/* schema: the cloud-config key schema of spec 7 as data: key, type, environment name, value rule
 * and deprecation reason, in the table order that drop-ins are rendered in. */
#include <regex.h>

#include "cloudinit.h"
#include "common/alloc.h"

#define DEP_ETCD2  "etcd2 options no longer work for etcd"
#define DEP_IMPORT "trying to fetch from a remote endpoint introduces too many intermittent errors"
/* Go's (?i:sun|mon|...) spelled out for POSIX ERE. */
#define RULE_WINDOW_START                                                                          \
    "^(([Ss][Uu][Nn]|[Mm][Oo][Nn]|[Tt][Uu][Ee]|[Ww][Ee][Dd]|[Tt][Hh][Uu]|[Ff][Rr][Ii]|[Ss][Aa]["   \
    "Tt]) )?0*([0-9]|1[0-9]|2[0-3]):0*([0-9]|[1-5][0-9])$"
#define N(a)                 (sizeof(a) / sizeof((a)[0]))
#define SCHEMA(var, nm, arr) const struct ci_schema var = {nm, arr, N(arr)}

static const struct ci_field etcd_fields[] = {
    {"addr", CI_T_STR, "ETCD_ADDR", NULL, NULL, NULL},
    {"advertise_client_urls", CI_T_STR, "ETCD_ADVERTISE_CLIENT_URLS", NULL, DEP_ETCD2, NULL},
    {"bind_addr", CI_T_STR, "ETCD_BIND_ADDR", NULL, NULL, NULL},
    {"ca_file", CI_T_STR, "ETCD_CA_FILE", NULL, NULL, NULL},
    {"cert_file", CI_T_STR, "ETCD_CERT_FILE", NULL, NULL, NULL},
    {"cluster_active_size", CI_T_INT, "ETCD_CLUSTER_ACTIVE_SIZE", NULL, NULL, NULL},
    {"cluster_remove_delay", CI_T_FLOAT, "ETCD_CLUSTER_REMOVE_DELAY", NULL, NULL, NULL},
    {"cluster_sync_interval", CI_T_FLOAT, "ETCD_CLUSTER_SYNC_INTERVAL", NULL, NULL, NULL},
    {"cors", CI_T_STR, "ETCD_CORS", NULL, NULL, NULL},
    {"data_dir", CI_T_STR, "ETCD_DATA_DIR", NULL, NULL, NULL},
    {"discovery", CI_T_STR, "ETCD_DISCOVERY", NULL, NULL, NULL},
    {"discovery_fallback", CI_T_STR, "ETCD_DISCOVERY_FALLBACK", NULL, DEP_ETCD2, NULL},
    {"discovery_srv", CI_T_STR, "ETCD_DISCOVERY_SRV", NULL, DEP_ETCD2, NULL},
    {"discovery_proxy", CI_T_STR, "ETCD_DISCOVERY_PROXY", NULL, DEP_ETCD2, NULL},
    {"election_timeout", CI_T_INT, "ETCD_ELECTION_TIMEOUT", NULL, DEP_ETCD2, NULL},
    {"force_new_cluster", CI_T_BOOL, "ETCD_FORCE_NEW_CLUSTER", NULL, DEP_ETCD2, NULL},
    {"graphite_host", CI_T_STR, "ETCD_GRAPHITE_HOST", NULL, NULL, NULL},
    {"heartbeat_interval", CI_T_INT, "ETCD_HEARTBEAT_INTERVAL", NULL, DEP_ETCD2, NULL},
    {"http_read_timeout", CI_T_FLOAT, "ETCD_HTTP_READ_TIMEOUT", NULL, NULL, NULL},
    {"http_write_timeout", CI_T_FLOAT, "ETCD_HTTP_WRITE_TIMEOUT", NULL, NULL, NULL},
    {"initial_advertise_peer_urls", CI_T_STR, "ETCD_INITIAL_ADVERTISE_PEER_URLS", NULL, DEP_ETCD2,
     NULL},
    {"initial_cluster", CI_T_STR, "ETCD_INITIAL_CLUSTER", NULL, DEP_ETCD2, NULL},
    {"initial_cluster_state", CI_T_STR, "ETCD_INITIAL_CLUSTER_STATE", NULL, DEP_ETCD2, NULL},
    {"initial_cluster_token", CI_T_STR, "ETCD_INITIAL_CLUSTER_TOKEN", NULL, DEP_ETCD2, NULL},
    {"key_file", CI_T_STR, "ETCD_KEY_FILE", NULL, NULL, NULL},
    {"listen_client_urls", CI_T_STR, "ETCD_LISTEN_CLIENT_URLS", NULL, DEP_ETCD2, NULL},
    {"listen_peer_urls", CI_T_STR, "ETCD_LISTEN_PEER_URLS", NULL, DEP_ETCD2, NULL},
    {"max_result_buffer", CI_T_INT, "ETCD_MAX_RESULT_BUFFER", NULL, NULL, NULL},
    {"max_retry_attempts", CI_T_INT, "ETCD_MAX_RETRY_ATTEMPTS", NULL, NULL, NULL},
    {"max_snapshots", CI_T_INT, "ETCD_MAX_SNAPSHOTS", NULL, DEP_ETCD2, NULL},
    {"max_wals", CI_T_INT, "ETCD_MAX_WALS", NULL, DEP_ETCD2, NULL},
    {"name", CI_T_STR, "ETCD_NAME", NULL, NULL, NULL},
    {"peer_addr", CI_T_STR, "ETCD_PEER_ADDR", NULL, NULL, NULL},
    {"peer_bind_addr", CI_T_STR, "ETCD_PEER_BIND_ADDR", NULL, NULL, NULL},
    {"peer_ca_file", CI_T_STR, "ETCD_PEER_CA_FILE", NULL, NULL, NULL},
    {"peer_cert_file", CI_T_STR, "ETCD_PEER_CERT_FILE", NULL, NULL, NULL},
    {"peer_election_timeout", CI_T_INT, "ETCD_PEER_ELECTION_TIMEOUT", NULL, NULL, NULL},
    {"peer_heartbeat_interval", CI_T_INT, "ETCD_PEER_HEARTBEAT_INTERVAL", NULL, NULL, NULL},
    {"peer_key_file", CI_T_STR, "ETCD_PEER_KEY_FILE", NULL, NULL, NULL},
    {"peers", CI_T_STR, "ETCD_PEERS", NULL, NULL, NULL},
    {"peers_file", CI_T_STR, "ETCD_PEERS_FILE", NULL, NULL, NULL},
    {"proxy", CI_T_STR, "ETCD_PROXY", NULL, DEP_ETCD2, NULL},
    {"retry_interval", CI_T_FLOAT, "ETCD_RETRY_INTERVAL", NULL, NULL, NULL},
    {"snapshot", CI_T_BOOL, "ETCD_SNAPSHOT", NULL, NULL, NULL},
    {"snapshot_count", CI_T_INT, "ETCD_SNAPSHOTCOUNT", NULL, NULL, NULL},
    {"trace", CI_T_STR, "ETCD_TRACE", NULL, NULL, NULL},
    {"verbose", CI_T_BOOL, "ETCD_VERBOSE", NULL, NULL, NULL},
    {"very_verbose", CI_T_BOOL, "ETCD_VERY_VERBOSE", NULL, NULL, NULL},
    {"very_very_verbose", CI_T_BOOL, "ETCD_VERY_VERY_VERBOSE", NULL, NULL, NULL},
};
static const struct ci_field etcd2_fields[] = {
    {"advertise_client_urls", CI_T_STR, "ETCD_ADVERTISE_CLIENT_URLS", NULL, NULL, NULL},
    {"ca_file", CI_T_STR, "ETCD_CA_FILE", NULL,
     "ca_file obsoleted by trusted_ca_file and client_cert_auth", NULL},
    {"cert_file", CI_T_STR, "ETCD_CERT_FILE", NULL, NULL, NULL},
    {"client_cert_auth", CI_T_BOOL, "ETCD_CLIENT_CERT_AUTH", NULL, NULL, NULL},
    {"cors", CI_T_STR, "ETCD_CORS", NULL, NULL, NULL},
    {"data_dir", CI_T_STR, "ETCD_DATA_DIR", NULL, NULL, NULL},
    {"debug", CI_T_BOOL, "ETCD_DEBUG", NULL, NULL, NULL},
    {"discovery", CI_T_STR, "ETCD_DISCOVERY", NULL, NULL, NULL},
    {"discovery_fallback", CI_T_STR, "ETCD_DISCOVERY_FALLBACK", NULL, NULL, NULL},
    {"discovery_srv", CI_T_STR, "ETCD_DISCOVERY_SRV", NULL, NULL, NULL},
    {"discovery_proxy", CI_T_STR, "ETCD_DISCOVERY_PROXY", NULL, NULL, NULL},
    {"election_timeout", CI_T_INT, "ETCD_ELECTION_TIMEOUT", NULL, NULL, NULL},
    {"enable_pprof", CI_T_BOOL, "ETCD_ENABLE_PPROF", NULL, NULL, NULL},
    {"force_new_cluster", CI_T_BOOL, "ETCD_FORCE_NEW_CLUSTER", NULL, NULL, NULL},
    {"heartbeat_interval", CI_T_INT, "ETCD_HEARTBEAT_INTERVAL", NULL, NULL, NULL},
    {"initial_advertise_peer_urls", CI_T_STR, "ETCD_INITIAL_ADVERTISE_PEER_URLS", NULL, NULL, NULL},
    {"initial_cluster", CI_T_STR, "ETCD_INITIAL_CLUSTER", NULL, NULL, NULL},
    {"initial_cluster_state", CI_T_STR, "ETCD_INITIAL_CLUSTER_STATE", NULL, NULL, NULL},
    {"initial_cluster_token", CI_T_STR, "ETCD_INITIAL_CLUSTER_TOKEN", NULL, NULL, NULL},
    {"key_file", CI_T_STR, "ETCD_KEY_FILE", NULL, NULL, NULL},
    {"listen_client_urls", CI_T_STR, "ETCD_LISTEN_CLIENT_URLS", NULL, NULL, NULL},
    {"listen_peer_urls", CI_T_STR, "ETCD_LISTEN_PEER_URLS", NULL, NULL, NULL},
    {"log_package_levels", CI_T_STR, "ETCD_LOG_PACKAGE_LEVELS", NULL, NULL, NULL},
    {"max_snapshots", CI_T_INT, "ETCD_MAX_SNAPSHOTS", NULL, NULL, NULL},
    {"max_wals", CI_T_INT, "ETCD_MAX_WALS", NULL, NULL, NULL},
    {"name", CI_T_STR, "ETCD_NAME", NULL, NULL, NULL},
    {"peer_ca_file", CI_T_STR, "ETCD_PEER_CA_FILE", NULL,
     "peer_ca_file obsoleted peer_trusted_ca_file and peer_client_cert_auth", NULL},
    {"peer_cert_file", CI_T_STR, "ETCD_PEER_CERT_FILE", NULL, NULL, NULL},
    {"peer_key_file", CI_T_STR, "ETCD_PEER_KEY_FILE", NULL, NULL, NULL},
    {"peer_client_cert_auth", CI_T_BOOL, "ETCD_PEER_CLIENT_CERT_AUTH", NULL, NULL, NULL},
    {"peer_trusted_ca_file", CI_T_STR, "ETCD_PEER_TRUSTED_CA_FILE", NULL, NULL, NULL},
    {"proxy", CI_T_STR, "ETCD_PROXY", "^(on|off|readonly)$", NULL, NULL},
    {"proxy_dial_timeout", CI_T_INT, "ETCD_PROXY_DIAL_TIMEOUT", NULL, NULL, NULL},
    {"proxy_failure_wait", CI_T_INT, "ETCD_PROXY_FAILURE_WAIT", NULL, NULL, NULL},
    {"proxy_read_timeout", CI_T_INT, "ETCD_PROXY_READ_TIMEOUT", NULL, NULL, NULL},
    {"proxy_refresh_interval", CI_T_INT, "ETCD_PROXY_REFRESH_INTERVAL", NULL, NULL, NULL},
    {"proxy_write_timeout", CI_T_INT, "ETCD_PROXY_WRITE_TIMEOUT", NULL, NULL, NULL},
    {"snapshot_count", CI_T_INT, "ETCD_SNAPSHOT_COUNT", NULL, NULL, NULL},
    {"strict_reconfig_check", CI_T_BOOL, "ETCD_STRICT_RECONFIG_CHECK", NULL, NULL, NULL},
    {"trusted_ca_file", CI_T_STR, "ETCD_TRUSTED_CA_FILE", NULL, NULL, NULL},
    {"wal_dir", CI_T_STR, "ETCD_WAL_DIR", NULL, NULL, NULL},
};
static const struct ci_field fleet_fields[] = {
    {"agent_ttl", CI_T_STR, "FLEET_AGENT_TTL", NULL, NULL, NULL},
    {"authorized_keys_file", CI_T_STR, "FLEET_AUTHORIZED_KEYS_FILE", NULL, NULL, NULL},
    {"disable_engine", CI_T_BOOL, "FLEET_DISABLE_ENGINE", NULL, NULL, NULL},
    {"engine_reconcile_interval", CI_T_FLOAT, "FLEET_ENGINE_RECONCILE_INTERVAL", NULL, NULL, NULL},
    {"etcd_cafile", CI_T_STR, "FLEET_ETCD_CAFILE", NULL, NULL, NULL},
    {"etcd_certfile", CI_T_STR, "FLEET_ETCD_CERTFILE", NULL, NULL, NULL},
    {"etcd_keyfile", CI_T_STR, "FLEET_ETCD_KEYFILE", NULL, NULL, NULL},
    {"etcd_key_prefix", CI_T_STR, "FLEET_ETCD_KEY_PREFIX", NULL, NULL, NULL},
    {"etcd_request_timeout", CI_T_FLOAT, "FLEET_ETCD_REQUEST_TIMEOUT", NULL, NULL, NULL},
    {"etcd_servers", CI_T_STR, "FLEET_ETCD_SERVERS", NULL, NULL, NULL},
    {"etcd_username", CI_T_STR, "FLEET_ETCD_USERNAME", NULL, NULL, NULL},
    {"etcd_password", CI_T_STR, "FLEET_ETCD_PASSWORD", NULL, NULL, NULL},
    {"metadata", CI_T_STR, "FLEET_METADATA", NULL, NULL, NULL},
    {"public_ip", CI_T_STR, "FLEET_PUBLIC_IP", NULL, NULL, NULL},
    {"token_limit", CI_T_INT, "FLEET_TOKEN_LIMIT", NULL, NULL, NULL},
    {"verbosity", CI_T_INT, "FLEET_VERBOSITY", NULL, NULL, NULL},
    {"verify_units", CI_T_BOOL, "FLEET_VERIFY_UNITS", NULL, NULL, NULL},
};
static const struct ci_field flannel_fields[] = {
    {"etcd_endpoints", CI_T_STR, "FLANNELD_ETCD_ENDPOINTS", NULL, NULL, NULL},
    {"etcd_cafile", CI_T_STR, "FLANNELD_ETCD_CAFILE", NULL, NULL, NULL},
    {"etcd_certfile", CI_T_STR, "FLANNELD_ETCD_CERTFILE", NULL, NULL, NULL},
    {"etcd_keyfile", CI_T_STR, "FLANNELD_ETCD_KEYFILE", NULL, NULL, NULL},
    {"etcd_prefix", CI_T_STR, "FLANNELD_ETCD_PREFIX", NULL, NULL, NULL},
    {"etcd_username", CI_T_STR, "FLANNELD_ETCD_USERNAME", NULL, NULL, NULL},
    {"etcd_password", CI_T_STR, "FLANNELD_ETCD_PASSWORD", NULL, NULL, NULL},
    {"ip_masq", CI_T_STR, "FLANNELD_IP_MASQ", NULL, NULL, NULL},
    {"subnet_file", CI_T_STR, "FLANNELD_SUBNET_FILE", NULL, NULL, NULL},
    {"interface", CI_T_STR, "FLANNELD_IFACE", NULL, NULL, NULL},
    {"public_ip", CI_T_STR, "FLANNELD_PUBLIC_IP", NULL, NULL, NULL},
};
static const struct ci_field locksmith_fields[] = {
    {"endpoint", CI_T_STR, "LOCKSMITHD_ENDPOINT", NULL, NULL, NULL},
    {"etcd_cafile", CI_T_STR, "LOCKSMITHD_ETCD_CAFILE", NULL, NULL, NULL},
    {"etcd_certfile", CI_T_STR, "LOCKSMITHD_ETCD_CERTFILE", NULL, NULL, NULL},
    {"etcd_keyfile", CI_T_STR, "LOCKSMITHD_ETCD_KEYFILE", NULL, NULL, NULL},
    {"etcd_username", CI_T_STR, "LOCKSMITHD_ETCD_USERNAME", NULL, NULL, NULL},
    {"etcd_password", CI_T_STR, "LOCKSMITHD_ETCD_PASSWORD", NULL, NULL, NULL},
    {"group", CI_T_STR, "LOCKSMITHD_GROUP", NULL, NULL, NULL},
    {"window_start", CI_T_STR, "REBOOT_WINDOW_START", RULE_WINDOW_START, NULL, NULL},
    {"window_length", CI_T_STR, "REBOOT_WINDOW_LENGTH", "^[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+$", NULL,
     NULL},
};

static const struct ci_field update_fields[] = {
    {"reboot_strategy", CI_T_STR, "REBOOT_STRATEGY", "^(best-effort|etcd-lock|reboot|off)$", NULL,
     NULL},
    {"group", CI_T_STR, "GROUP", NULL, NULL, NULL},
    {"server", CI_T_STR, "SERVER", NULL, NULL, NULL},
};

static const struct ci_field oem_fields[] = {
    {"id", CI_T_STR, NULL, NULL, NULL, NULL},
    {"name", CI_T_STR, NULL, NULL, NULL, NULL},
    {"version_id", CI_T_STR, NULL, NULL, NULL, NULL},
    {"home_url", CI_T_STR, NULL, NULL, NULL, NULL},
    {"bug_report_url", CI_T_STR, NULL, NULL, NULL, NULL},
};

static const struct ci_field dropin_fields[] = {
    {"name", CI_T_STR, NULL, NULL, NULL, NULL},
    {"content", CI_T_STR, NULL, NULL, NULL, NULL},
};

SCHEMA(cn_cloudinit_schema_etcd, "etcd", etcd_fields);
SCHEMA(cn_cloudinit_schema_etcd2, "etcd2", etcd2_fields);
SCHEMA(cn_cloudinit_schema_fleet, "fleet", fleet_fields);
SCHEMA(cn_cloudinit_schema_flannel, "flannel", flannel_fields);
SCHEMA(cn_cloudinit_schema_locksmith, "locksmith", locksmith_fields);
SCHEMA(cn_cloudinit_schema_update, "update", update_fields);
SCHEMA(cn_cloudinit_schema_oem, "oem", oem_fields);
SCHEMA(cn_cloudinit_schema_dropin, "drop_ins", dropin_fields);

static const struct ci_field unit_fields[] = {
    {"name", CI_T_STR, NULL, NULL, NULL, NULL},
    {"mask", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"enable", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"runtime", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"content", CI_T_STR, NULL, NULL, NULL, NULL},
    {"command", CI_T_STR, NULL,
     "^(start|stop|restart|reload|try-restart|reload-or-restart|reload-or-try-restart)$", NULL,
     NULL},
    {"drop_ins", CI_T_STRUCTLIST, NULL, NULL, NULL, &cn_cloudinit_schema_dropin},
};
SCHEMA(cn_cloudinit_schema_unit, "units", unit_fields);

static const struct ci_field file_fields[] = {
    {"encoding", CI_T_STR, NULL,
     "^(base64|b64|gz|gzip|gz\\+base64|gzip\\+base64|gz\\+b64|gzip\\+b64)$", NULL, NULL},
    {"content", CI_T_STR, NULL, NULL, NULL, NULL},
    {"owner", CI_T_STR, NULL, NULL, NULL, NULL},
    {"path", CI_T_STR, NULL, NULL, NULL, NULL},
    {"permissions", CI_T_STR, NULL, "^0?[0-7]{3,4}$", NULL, NULL},
};
SCHEMA(cn_cloudinit_schema_file, "write_files", file_fields);

static const struct ci_field user_fields[] = {
    {"name", CI_T_STR, NULL, NULL, NULL, NULL},
    {"passwd", CI_T_STR, NULL, NULL, NULL, NULL},
    {"ssh_authorized_keys", CI_T_STRLIST, NULL, NULL, NULL, NULL},
    {"coreos_ssh_import_github", CI_T_STR, NULL, NULL, DEP_IMPORT, NULL},
    {"coreos_ssh_import_github_users", CI_T_STRLIST, NULL, NULL, DEP_IMPORT, NULL},
    {"coreos_ssh_import_url", CI_T_STR, NULL, NULL, DEP_IMPORT, NULL},
    {"gecos", CI_T_STR, NULL, NULL, NULL, NULL},
    {"homedir", CI_T_STR, NULL, NULL, NULL, NULL},
    {"no_create_home", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"primary_group", CI_T_STR, NULL, NULL, NULL, NULL},
    {"groups", CI_T_STRLIST, NULL, NULL, NULL, NULL},
    {"no_user_group", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"system", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"no_log_init", CI_T_BOOL, NULL, NULL, NULL, NULL},
    {"shell", CI_T_STR, NULL, NULL, NULL, NULL},
};
SCHEMA(cn_cloudinit_schema_user, "users", user_fields);

static const struct ci_field coreos_fields[] = {
    {"etcd", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_etcd},
    {"etcd2", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_etcd2},
    {"flannel", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_flannel},
    {"fleet", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_fleet},
    {"locksmith", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_locksmith},
    {"oem", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_oem},
    {"update", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_update},
    {"units", CI_T_STRUCTLIST, NULL, NULL, NULL, &cn_cloudinit_schema_unit},
};
SCHEMA(cn_cloudinit_schema_coreos, "coreos", coreos_fields);

static const struct ci_field config_fields[] = {
    {"ssh_authorized_keys", CI_T_STRLIST, NULL, NULL, NULL, NULL},
    {"coreos", CI_T_STRUCT, NULL, NULL, NULL, &cn_cloudinit_schema_coreos},
    {"write_files", CI_T_STRUCTLIST, NULL, NULL, NULL, &cn_cloudinit_schema_file},
    {"hostname", CI_T_STR, NULL, NULL, NULL, NULL},
    {"users", CI_T_STRUCTLIST, NULL, NULL, NULL, &cn_cloudinit_schema_user},
    {"manage_etc_hosts", CI_T_STR, NULL, NULL, NULL, NULL},
};
SCHEMA(cn_cloudinit_schema_config, "", config_fields);

int cn_cloudinit_schema_find(const struct ci_schema *s, const char *key)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].key, key) == 0) return (int)i;
    return -1;
}

const char *cn_cloudinit_type_name(enum ci_type t)
{
    switch (t) {
    case CI_T_STR:
        return "string";
    case CI_T_INT:
        return "int";
    case CI_T_FLOAT:
        return "float64";
    case CI_T_BOOL:
        return "bool";
    case CI_T_STRUCT:
        return "struct";
    case CI_T_STRLIST:
        return "[]string";
    case CI_T_STRUCTLIST:
        return "[]struct";
    }
    return "?";
}

bool cn_cloudinit_rule_match(const char *rule, const char *p, size_t len)
{
    if (memchr(p, '\0', len) != NULL) return false;
    regex_t re;
    if (regcomp(&re, rule, REG_EXTENDED | REG_NOSUB) != 0) return false;
    char *z = cn_xstrndup(p, len);
    bool ok = regexec(&re, z, 0, NULL, 0) == 0;
    cn_free(z);
    regfree(&re);
    return ok;
}
