/* metrics: /metrics, the Prometheus text of etcd's metric names that operators' dashboards
 * read (server, http, wal, disk and store families). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api_int.h"

extern const double cn_api__latency_buckets[14];

static void histogram(struct cn_buf *b, const char *name, const char *labels, const double *bounds,
                      const uint64_t *counts, size_t n, uint64_t total, double sum)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += counts[i];
        cn_buf_appendf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels,
                       *labels ? "," : "", bounds[i], cum);
    }
    cn_buf_appendf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
                   total);
    cn_buf_appendf(b, "%s_sum%s%s%s %.9g\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
                   sum);
    cn_buf_appendf(b, "%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
                   *labels ? "}" : "", total);
}

static void disk_histogram(struct cn_buf *b, const char *name, const struct cn_node_histogram *h)
{
    histogram(b, name, "", cn_node_fsync_buckets, h->bucket, CN_NODE_FSYNC_BUCKETS, h->count,
              h->sum_s);
}

void cn_api__metrics(struct cn_api *api, struct cn_http_req *req)
{
    struct cn_buf b = CN_BUF_INIT;
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    struct cn_store_stats ss;
    cn_store_get_stats(api->store, &ss);

    cn_buf_appends(&b, "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is "
                       "existence, 0 is not.\n# TYPE etcd_server_has_leader gauge\n");
    cn_buf_appendf(&b, "etcd_server_has_leader %d\n", st.leader != 0);
    cn_buf_appends(&b, "# HELP etcd_server_is_leader Whether or not this member is a leader.\n"
                       "# TYPE etcd_server_is_leader gauge\n");
    cn_buf_appendf(&b, "etcd_server_is_leader %d\n", st.leader != 0 && st.leader == st.id);
    cn_buf_appends(&b, "# HELP etcd_server_leader_changes_seen_total The number of leader changes "
                       "seen.\n# TYPE etcd_server_leader_changes_seen_total counter\n");
    cn_buf_appendf(&b, "etcd_server_leader_changes_seen_total %" PRIu64 "\n", st.leader_changes);
    static const char *const prop[4] = {"committed", "applied", "pending", "failed"};
    uint64_t pv[4] = {st.proposals_committed, st.proposals_applied, st.proposals_pending,
                      st.proposals_failed};
    for (int i = 0; i < 4; i++) {
        bool gauge = i == 2;
        cn_buf_appendf(&b,
                       "# HELP etcd_server_proposals_%s%s The number of consensus proposals %s.\n"
                       "# TYPE etcd_server_proposals_%s%s %s\netcd_server_proposals_%s%s %" PRIu64
                       "\n",
                       prop[i], gauge ? "" : "_total", prop[i], prop[i], gauge ? "" : "_total",
                       gauge ? "gauge" : "counter", prop[i], gauge ? "" : "_total", pv[i]);
    }
    cn_buf_appends(&b, "# HELP etcd_http_received_total Counter of requests received into the "
                       "system (successfully parsed and authd).\n"
                       "# TYPE etcd_http_received_total counter\n");
    for (int m = 0; m < M_COUNT; m++)
        if (api->received[m])
            cn_buf_appendf(&b, "etcd_http_received_total{method=\"%s\"} %" PRIu64 "\n",
                           cn_api__method_names[m], api->received[m]);
    cn_buf_appends(&b, "# HELP etcd_http_failed_total Counter of handle failures of requests "
                       "(non-watches), by method (GET/PUT etc.) and code (400, 500 etc.).\n"
                       "# TYPE etcd_http_failed_total counter\n");
    for (int m = 0; m < M_COUNT; m++)
        for (int c = 0; c < CN_API_NCODES; c++)
            if (api->failed[m][c])
                cn_buf_appendf(&b,
                               "etcd_http_failed_total{code=\"%d\",method=\"%s\"} %" PRIu64 "\n",
                               api->failed_code[c], cn_api__method_names[m], api->failed[m][c]);
    cn_buf_appends(&b, "# HELP etcd_http_successful_duration_seconds Bucketed histogram of "
                       "processing time (s) of successfully handled requests (non-watches), by "
                       "method (GET/PUT etc.).\n"
                       "# TYPE etcd_http_successful_duration_seconds histogram\n");
    for (int m = 0; m < M_COUNT; m++) {
        if (!api->ok_count[m]) continue;
        char labels[40];
        snprintf(labels, sizeof(labels), "method=\"%s\"", cn_api__method_names[m]);
        histogram(&b, "etcd_http_successful_duration_seconds", labels, cn_api__latency_buckets,
                  api->ok_bucket[m], 14, api->ok_count[m], api->ok_sum[m]);
    }
    /* 2.3's name, over each whole log write (write + fdatasync); 3.4's over each fdatasync alone,
     * measured around the call on the worker, as etcd's wal.sync() does. */
    cn_buf_appends(&b, "# HELP etcd_wal_fsync_duration_seconds The latency distributions of fsync "
                       "called by wal.\n# TYPE etcd_wal_fsync_duration_seconds histogram\n");
    disk_histogram(&b, "etcd_wal_fsync_duration_seconds", &st.persist);
    cn_buf_appends(&b, "# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of "
                       "fsync called by WAL.\n"
                       "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n");
    disk_histogram(&b, "etcd_disk_wal_fsync_duration_seconds", &st.wal_fsync);
    /* cairn's backend is the snapshot file: each save, written and fsynced. */
    cn_buf_appends(&b, "# HELP etcd_disk_backend_commit_duration_seconds The latency distributions "
                       "of commit called by backend.\n"
                       "# TYPE etcd_disk_backend_commit_duration_seconds histogram\n");
    disk_histogram(&b, "etcd_disk_backend_commit_duration_seconds", &st.snap_save);

    static const char *const wr[] = {"set",    "create",          "update", "compareAndSwap",
                                     "delete", "compareAndDelete"};
    uint64_t ok[] = {ss.sets_success, ss.create_success, ss.update_success,
                     ss.cas_success,  ss.delete_success, ss.cad_success};
    uint64_t bad[] = {ss.sets_fail, ss.create_fail, ss.update_fail,
                      ss.cas_fail,  ss.delete_fail, ss.cad_fail};
    cn_buf_appends(&b, "# HELP etcd_store_reads_total Total number of reads action by (get/"
                       "getRecursive), local to this member.\n"
                       "# TYPE etcd_store_reads_total counter\n");
    cn_buf_appendf(&b, "etcd_store_reads_total{action=\"get\"} %" PRIu64 "\n",
                   ss.gets_success + ss.gets_fail);
    cn_buf_appends(&b, "# HELP etcd_store_reads_failed_total Failed read actions by (get/"
                       "getRecursive), local to this member.\n"
                       "# TYPE etcd_store_reads_failed_total counter\n");
    cn_buf_appendf(&b, "etcd_store_reads_failed_total{action=\"get\"} %" PRIu64 "\n", ss.gets_fail);
    cn_buf_appends(&b, "# HELP etcd_store_writes_total Total number of writes (e.g. set/"
                       "compareAndDelete) seen by this member.\n"
                       "# TYPE etcd_store_writes_total counter\n");
    for (int i = 0; i < 6; i++)
        cn_buf_appendf(&b, "etcd_store_writes_total{action=\"%s\"} %" PRIu64 "\n", wr[i],
                       ok[i] + bad[i]);
    cn_buf_appends(&b, "# HELP etcd_store_writes_failed_total Failed write actions (e.g. set/"
                       "compareAndDelete), seen by this member.\n"
                       "# TYPE etcd_store_writes_failed_total counter\n");
    for (int i = 0; i < 6; i++)
        cn_buf_appendf(&b, "etcd_store_writes_failed_total{action=\"%s\"} %" PRIu64 "\n", wr[i],
                       bad[i]);
    cn_buf_appendf(&b,
                   "# HELP etcd_store_expires_total Total number of expired keys.\n"
                   "# TYPE etcd_store_expires_total counter\netcd_store_expires_total %" PRIu64
                   "\n",
                   ss.expire_count);
    cn_buf_appendf(&b,
                   "# HELP etcd_store_watch_requests_total Total number of incoming watch "
                   "requests (new or reestablished).\n"
                   "# TYPE etcd_store_watch_requests_total counter\n"
                   "etcd_store_watch_requests_total %" PRIu64 "\n",
                   api->watch_requests);
    cn_buf_appendf(&b,
                   "# HELP etcd_store_watchers Count of currently active watchers.\n"
                   "# TYPE etcd_store_watchers gauge\netcd_store_watchers %" PRIu64 "\n",
                   cn_store_watcher_count(api->store));
    cn_buf_appendf(&b,
                   "# HELP etcd_store_keys Number of keys in the v2 key space.\n"
                   "# TYPE etcd_store_keys gauge\netcd_store_keys %" PRIu64 "\n",
                   cn_store_key_count(api->store, CN_NS_KEYS));
    cn_buf_appendf(&b,
                   "# HELP etcd_server_health_success The total number of successful health "
                   "checks\n# TYPE etcd_server_health_success counter\n"
                   "etcd_server_health_success %" PRIu64 "\n"
                   "# HELP etcd_server_health_failures The total number of failed health checks\n"
                   "# TYPE etcd_server_health_failures counter\n"
                   "etcd_server_health_failures %" PRIu64 "\n",
                   api->health_ok, api->health_fail);
    cn_http_respond(req, 200, "text/plain; version=0.0.4", NULL, 0, b.p, b.len, false);
    cn_buf_free(&b);
}
