/* misc: /v2/members, /v2/machines, /v2/stats/{self,leader,store}, /version, /health and /metrics.
 * Member records live in the store's system namespace, as etcd keeps them under /0/members:
 *   /members/<hex id>/raftAttributes  {"peerURLs":[...]}
 *   /members/<hex id>/attributes      {"name":"...","clientURLs":[...]}
 * so every member reads the same list. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "common/url.h"
#include "config/config.h"
#include "raft/raft.h"

struct member {
    uint64_t id;
    json_t *raft; /* {"peerURLs":[...]} or NULL */
    json_t *attr; /* {"name":..,"clientURLs":[...]} or NULL */
};

struct member_list {
    struct member *m;
    size_t n, cap;
    struct cn_store *store;
};

static void collect(const char *key, const char *value, size_t value_len, bool is_dir, void *ctx)
{
    struct member_list *l = ctx;
    if (!is_dir) return;
    const char *slash = strrchr(key, '/');
    if (slash == NULL) return;
    char *end;
    uint64_t id = strtoull(slash + 1, &end, 16);
    if (*end != '\0' || id == 0) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->m = cn_xrealloc(l->m, l->cap * sizeof(*l->m));
    }
    struct member *m = &l->m[l->n++];
    memset(m, 0, sizeof(*m));
    m->id = id;
    char path[128];
    size_t len;
    const char *v;
    snprintf(path, sizeof(path), "%s/raftAttributes", key);
    if ((v = cn_store_peek(l->store, CN_NS_SYS, path, &len)) != NULL)
        m->raft = json_loadb(v, len, 0, NULL);
    snprintf(path, sizeof(path), "%s/attributes", key);
    if ((v = cn_store_peek(l->store, CN_NS_SYS, path, &len)) != NULL)
        m->attr = json_loadb(v, len, 0, NULL);
}

static int cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void members_load(struct cn_api *api, struct member_list *l)
{
    memset(l, 0, sizeof(*l));
    l->store = api->store;
    cn_store_each_child(api->store, CN_NS_SYS, "/members", collect, l);
    if (l->n) qsort(l->m, l->n, sizeof(*l->m), cmp_member);
}

static void members_free(struct member_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        json_decref(l->m[i].raft);
        json_decref(l->m[i].attr);
    }
    cn_free(l->m);
}

static void url_array(struct cn_buf *b, json_t *obj, const char *field)
{
    cn_buf_putc(b, '[');
    json_t *arr = obj ? json_object_get(obj, field) : NULL;
    size_t i;
    json_t *v;
    bool first = true;
    if (json_is_array(arr)) {
        json_array_foreach(arr, i, v)
        {
            if (!json_is_string(v)) continue;
            if (!first) cn_buf_putc(b, ',');
            first = false;
            cn_json_str(b, json_string_value(v), json_string_length(v));
        }
    }
    cn_buf_putc(b, ']');
}

static void member_json(struct cn_buf *b, const struct member *m)
{
    cn_buf_appendf(b, "{\"id\":\"%" PRIx64 "\",\"name\":", m->id);
    json_t *name = m->attr ? json_object_get(m->attr, "name") : NULL;
    cn_json_strz(b, json_is_string(name) ? json_string_value(name) : "");
    cn_buf_appends(b, ",\"peerURLs\":");
    url_array(b, m->raft, "peerURLs");
    cn_buf_appends(b, ",\"clientURLs\":");
    url_array(b, m->attr, "clientURLs");
    cn_buf_putc(b, '}');
}

void cn_api_members_array(struct cn_api *api, struct cn_buf *out)
{
    struct member_list l;
    members_load(api, &l);
    cn_buf_putc(out, '[');
    for (size_t i = 0; i < l.n; i++) {
        if (i) cn_buf_putc(out, ',');
        member_json(out, &l.m[i]);
    }
    cn_buf_putc(out, ']');
    members_free(&l);
}

static void send_body(struct cn_api *api, struct cn_http_req *req, int status, struct cn_buf *b,
                      bool cluster_header)
{
    struct cn_http_hdr h[] = {{"X-Etcd-Cluster-Id", api->cluster_hex}};
    cn_http_respond(req, status, "application/json", h, cluster_header ? 1 : 0, b->p, b->len,
                    false);
}

/* Validates a members POST/PUT body (etcd's membersHandler): Content-Type, JSON, peerURLs. On
 * failure the response is sent and false returned. */
static bool member_body(struct cn_api *api, struct cn_http_req *req, struct member_list *l,
                        uint64_t self)
{
    struct cn_str ct = cn_http_req_header(req, "Content-Type");
    static const char json_ct[] = "application/json";
    size_t n = sizeof(json_ct) - 1;
    char msg[512];
    if (ct.p == NULL || ct.len < n || strncasecmp(ct.p, json_ct, n) != 0 ||
        (ct.len > n && ct.p[n] != ';' && ct.p[n] != ' ')) {
        snprintf(msg, sizeof(msg), "Bad Content-Type %.*s, accept application/json",
                 (int)(ct.len > 200 ? 200 : ct.len), ct.p ? ct.p : "");
        cn_api_send_message(api, req, 415, msg);
        return false;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body.p ? req->body.p : "", req->body.len, 0, &jerr);
    json_t *urls = body ? json_object_get(body, "peerURLs") : NULL;
    if (body == NULL || !json_is_object(body) ||
        (urls && !json_is_array(urls) && !json_is_null(urls))) {
        snprintf(msg, sizeof(msg), "%s", body ? "peerURLs must be an array of strings" : jerr.text);
        json_decref(body);
        cn_api_send_message(api, req, 400, msg);
        return false;
    }
    size_t i, nurls = 0;
    json_t *v;
    bool ok = true;
    json_array_foreach(urls, i, v)
    {
        const char *z = json_is_string(v) ? json_string_value(v) : "";
        while (*z == ' ')
            z++;
        struct cn_url u;
        char why[400];
        if (cn_url_parse(z, &u, why, sizeof(why)) != 0) {
            snprintf(msg, sizeof(msg), "%s", why);
            ok = false;
            break;
        }
        if (u.has_path) {
            snprintf(msg, sizeof(msg), "URL must not contain a path: %s", z);
            ok = false;
            break;
        }
        /* etcd: a URL already used by another member is a conflict. */
        for (size_t m = 0; ok && m < l->n; m++) {
            json_t *pu = l->m[m].raft ? json_object_get(l->m[m].raft, "peerURLs") : NULL;
            size_t j;
            json_t *w;
            json_array_foreach(pu, j, w)
            {
                if (l->m[m].id != self && json_is_string(w) &&
                    strcmp(json_string_value(w), z) == 0) {
                    json_decref(body);
                    cn_api_send_message(api, req, 409, "etcdserver: peerURL exists");
                    return false;
                }
            }
        }
        nurls++;
    }
    json_decref(body);
    if (ok && nurls == 0) {
        snprintf(msg, sizeof(msg), "no valid URLs given");
        ok = false;
    }
    if (!ok) cn_api_send_message(api, req, 400, msg);
    return ok;
}

/* ---- membership changes (POST, DELETE, PUT), through the log ------------------------------ */

struct member_change {
    struct cn_api *api;
    struct cn_http_req *req;
    struct cn_node_req *nreq;
    int status; /* on success */
    struct cn_buf body;
};

static void change_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct member_change *mc = req->data; /* ctx is the server's */
    cn_node_req_detach(mc->nreq);
    cn_buf_free(&mc->body);
    cn_free(mc);
}

static void change_done(void *ctx, int rc, const struct cn_store_result *res)
{
    struct member_change *mc = ctx;
    struct cn_http_req *req = mc->req;
    req->on_abort = NULL;
    if (rc == 0 && res && res->err.ecode != 0) rc = CN_ERR_INVAL;
    if (rc == 0) {
        if (mc->status == 204)
            cn_http_respond(req, 204, NULL, NULL, 0, NULL, 0, false);
        else
            send_body(mc->api, req, mc->status, &mc->body, true);
    } else {
        const char *why = cn_api_node_cause(rc);
        char msg[160];
        if (why == NULL) snprintf(msg, sizeof(msg), "etcdserver: %s", cn_strerror(rc));
        cn_api_send_message(mc->api, req, 500, why ? why : msg);
    }
    cn_buf_free(&mc->body);
    cn_free(mc);
}

static struct member_change *change_new(struct cn_api *api, struct cn_http_req *req, int status)
{
    struct member_change *mc = CN_NEW(struct member_change);
    mc->api = api;
    mc->req = req;
    mc->status = status;
    cn_buf_init(&mc->body);
    req->data = mc;
    req->on_abort = change_abort;
    return mc;
}

static void sys_cmd(struct cn_buf *out, uint8_t op, const char *key, const struct cn_buf *value)
{
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    c.op = op;
    c.ns = CN_NS_SYS;
    c.key = cn_str_c(key);
    if (value) c.value = cn_buf_str(value);
    if (op == CN_OP_DELETE) c.dir = c.recursive = true;
    c.now_ns = cn_clock_real_ns();
    cn_store_cmd_encode(&c, out);
}

/* The request's peerURLs (validated by member_body), sorted as strings, as etcd keeps them. */
static size_t body_urls(const struct cn_http_req *req, char **out, size_t max)
{
    json_t *body = json_loadb(req->body.p ? req->body.p : "", req->body.len, 0, NULL);
    json_t *urls = json_object_get(body, "peerURLs");
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(urls, i, v)
    {
        if (n == max || !json_is_string(v)) continue;
        const char *z = json_string_value(v);
        while (*z == ' ')
            z++;
        out[n++] = cn_xstrdup(z);
    }
    json_decref(body);
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && strcmp(out[b], out[b - 1]) < 0; b--) {
            char *t = out[b];
            out[b] = out[b - 1];
            out[b - 1] = t;
        }
    return n;
}

static void urls_value(struct cn_buf *v, char **urls, size_t n)
{
    cn_buf_appends(v, "{\"peerURLs\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) cn_buf_putc(v, ',');
        cn_json_strz(v, urls[i]);
    }
    cn_buf_appends(v, "]}");
}

/* POST: etcd's AddMember. The id mixes the URLs with the time, so a re-added URL gets a new id. */
static void member_add(struct cn_api *api, struct cn_http_req *req)
{
    char *urls[CN_MAX_URLS];
    size_t n = body_urls(req, urls, CN_MAX_URLS);
    uint64_t id = cn_config_member_id(urls, n, "", cn_clock_real_ns() / CN_NS_PER_S);
    struct cn_buf v = CN_BUF_INIT, cmd = CN_BUF_INIT, cmds = CN_BUF_INIT;
    urls_value(&v, urls, n);
    char key[64];
    snprintf(key, sizeof(key), "/members/%" PRIx64 "/raftAttributes", id);
    sys_cmd(&cmd, CN_OP_CREATE, key, &v);
    cn_node_cmds_add(&cmds, &cmd);
    struct member_change *mc = change_new(api, req, 201);
    cn_buf_appendf(&mc->body, "{\"id\":\"%" PRIx64 "\",\"name\":\"\",\"peerURLs\":[", id);
    for (size_t i = 0; i < n; i++) {
        if (i) cn_buf_putc(&mc->body, ',');
        cn_json_strz(&mc->body, urls[i]);
        cn_free(urls[i]);
    }
    cn_buf_appends(&mc->body, "],\"clientURLs\":[]}\n");
    mc->nreq =
        cn_node_propose_conf(api->node, CN_RAFT_CONF_ADD_LEARNER, id, &cmds, change_done, mc);
    cn_buf_free(&v);
    cn_buf_free(&cmd);
    cn_buf_free(&cmds);
}

static void member_remove(struct cn_api *api, struct cn_http_req *req, uint64_t id)
{
    struct cn_buf cmd = CN_BUF_INIT, cmds = CN_BUF_INIT, v = CN_BUF_INIT;
    char key[64];
    snprintf(key, sizeof(key), "/members/%" PRIx64, id);
    sys_cmd(&cmd, CN_OP_DELETE, key, NULL);
    cn_node_cmds_add(&cmds, &cmd);
    cn_buf_reset(&cmd);
    snprintf(key, sizeof(key), "/removed_members/%" PRIx64, id);
    cn_buf_appends(&v, "removed");
    sys_cmd(&cmd, CN_OP_SET, key, &v);
    cn_node_cmds_add(&cmds, &cmd);
    struct member_change *mc = change_new(api, req, 204);
    mc->nreq = cn_node_propose_conf(api->node, CN_RAFT_CONF_REMOVE, id, &cmds, change_done, mc);
    cn_buf_free(&v);
    cn_buf_free(&cmd);
    cn_buf_free(&cmds);
}

static void member_update(struct cn_api *api, struct cn_http_req *req, uint64_t id)
{
    char *urls[CN_MAX_URLS];
    size_t n = body_urls(req, urls, CN_MAX_URLS);
    struct cn_buf v = CN_BUF_INIT, cmd = CN_BUF_INIT;
    urls_value(&v, urls, n);
    for (size_t i = 0; i < n; i++)
        cn_free(urls[i]);
    char key[64];
    snprintf(key, sizeof(key), "/members/%" PRIx64 "/raftAttributes", id);
    sys_cmd(&cmd, CN_OP_SET, key, &v);
    struct member_change *mc = change_new(api, req, 204);
    mc->nreq = cn_node_propose(api->node, cmd.p, cmd.len, change_done, mc);
    cn_buf_free(&v);
    cn_buf_free(&cmd);
}

void cn_api_members(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    struct member_list l;
    struct cn_buf b = CN_BUF_INIT;
    members_load(api, &l);
    if (rest.len == 0 || cn_str_eqz(rest, "/")) {
        if (req->method == CN_HTTP_GET) {
            cn_buf_appends(&b, "{\"members\":[");
            for (size_t i = 0; i < l.n; i++) {
                if (i) cn_buf_putc(&b, ',');
                member_json(&b, &l.m[i]);
            }
            cn_buf_appends(&b, "]}\n");
            send_body(api, req, 200, &b, true);
        } else if (req->method == CN_HTTP_POST) {
            if (member_body(api, req, &l, 0)) member_add(api, req);
        } else {
            struct cn_http_hdr h[] = {{"Allow", "GET,POST,DELETE,PUT"},
                                      {"X-Content-Type-Options", "nosniff"}};
            cn_http_respond(req, 405, "text/plain; charset=utf-8", h, 2, "Method Not Allowed\n", 19,
                            false);
        }
        goto out;
    }
    struct cn_str id = cn_str_make(rest.p + 1, rest.len - 1);
    if (cn_str_eqz(id, "leader") && req->method == CN_HTTP_GET) {
        struct cn_node_status st;
        cn_node_get_status(api->node, &st);
        struct member *found = NULL;
        for (size_t i = 0; i < l.n; i++)
            if (l.m[i].id == st.leader && st.leader != 0) found = &l.m[i];
        if (found == NULL) {
            cn_api_send_message(api, req, 503, "During election");
        } else {
            member_json(&b, found);
            cn_buf_putc(&b, '\n');
            send_body(api, req, 200, &b, true);
        }
        goto out;
    }
    if (req->method == CN_HTTP_GET) {
        cn_api_send_message(api, req, 404, "Not found");
        goto out;
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "No such member: %.*s", (int)(id.len > 64 ? 64 : id.len), id.p);
    char idz[80];
    snprintf(idz, sizeof(idz), "%.*s", (int)(id.len > 64 ? 64 : id.len), id.p);
    char *end;
    uint64_t mid = strtoull(idz, &end, 16);
    bool exists = false;
    for (size_t i = 0; i < l.n; i++)
        if (*end == '\0' && *idz && l.m[i].id == mid) exists = true;
    char rkey[64];
    snprintf(rkey, sizeof(rkey), "/removed_members/%" PRIx64, mid);
    size_t rlen;
    if (!exists && *end == '\0' && *idz && cn_store_peek(api->store, CN_NS_SYS, rkey, &rlen)) {
        snprintf(msg, sizeof(msg), "Member permanently removed: %s", idz);
        cn_api_send_message(api, req, 410, msg);
    } else if (!exists) {
        cn_api_send_message(api, req, 404, msg);
    } else if (req->method == CN_HTTP_PUT) {
        if (member_body(api, req, &l, mid)) member_update(api, req, mid);
    } else if (req->method == CN_HTTP_DELETE) {
        member_remove(api, req, mid);
    } else {
        cn_api_send_message(api, req, 405, "Method Not Allowed");
    }
out:
    members_free(&l);
    cn_buf_free(&b);
}

void cn_api_machines(struct cn_api *api, struct cn_http_req *req)
{
    struct member_list l;
    members_load(api, &l);
    struct cn_buf b = CN_BUF_INIT;
    bool first = true;
    for (size_t i = 0; i < l.n; i++) {
        json_t *arr = l.m[i].attr ? json_object_get(l.m[i].attr, "clientURLs") : NULL;
        size_t j;
        json_t *v;
        if (!json_is_array(arr)) continue;
        json_array_foreach(arr, j, v)
        {
            if (!json_is_string(v)) continue;
            if (!first) cn_buf_appends(&b, ", ");
            first = false;
            cn_buf_appends(&b, json_string_value(v));
        }
    }
    cn_http_respond(req, 200, "text/plain; charset=utf-8", NULL, 0, b.p ? b.p : "", b.len, false);
    cn_buf_free(&b);
    members_free(&l);
}

void cn_api_stats(struct cn_api *api, struct cn_http_req *req, struct cn_str which)
{
    struct cn_buf b = CN_BUF_INIT;
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    if (cn_str_eqz(which, "store")) {
        /* etcd writes stats with json.Marshal: no trailing newline (members use an Encoder) */
        cn_store_stats_json(api->store, &b);
        send_body(api, req, 200, &b, false);
    } else if (cn_str_eqz(which, "self")) {
        cn_buf_appends(&b, "{\"name\":");
        cn_json_strz(&b, api->name);
        cn_buf_appendf(&b, ",\"id\":\"%" PRIx64 "\",\"state\":\"%s\",\"startTime\":\"", st.id,
                       st.state);
        cn_time_rfc3339nano(&b, api->start_ns);
        cn_buf_appends(&b, "\",\"leaderInfo\":{\"leader\":\"");
        if (st.leader) cn_buf_appendf(&b, "%" PRIx64, st.leader);
        cn_buf_appends(&b, "\",\"uptime\":\"");
        int64_t now = cn_clock_real_ns();
        cn_duration_go(&b, st.leader ? now - st.leader_since_ns : 0);
        cn_buf_appends(&b, "\",\"startTime\":\"");
        cn_time_rfc3339nano(&b, st.leader ? st.leader_since_ns : api->start_ns);
        cn_buf_appendf(
            &b, "\"},\"recvAppendRequestCnt\":%" PRIu64 ",\"sendAppendRequestCnt\":%" PRIu64 "}",
            st.recv_append, st.send_append);
        send_body(api, req, 200, &b, false);
    } else { /* leader */
        if (st.leader != st.id || st.leader == 0) {
            cn_api_send_message(api, req, 403, "not current leader");
        } else {
            /* etcd's LeaderStats: per follower the round-trip latency of appends and
             * heartbeats (ms) and the counts of answered and failed sends */
            cn_buf_appendf(&b, "{\"leader\":\"%" PRIx64 "\",\"followers\":{", st.id);
            for (unsigned i = 0; i < st.n_followers; i++) {
                const struct cn_node_follower *f = &st.followers[i];
                double avg = f->lat_n ? f->lat_sum / (double)f->lat_n : 0;
                double var = f->lat_n ? f->lat_sq / (double)f->lat_n - avg * avg : 0;
                cn_buf_appendf(&b,
                               "%s\"%" PRIx64 "\":{\"latency\":{\"current\":%.6f,\"average\":%.6f,"
                               "\"standardDeviation\":%.6f,\"minimum\":%.6f,\"maximum\":%.6f},"
                               "\"counts\":{\"fail\":%" PRIu64 ",\"success\":%" PRIu64 "}}",
                               i ? "," : "", f->id, f->lat_current, avg, var > 0 ? sqrt(var) : 0.0,
                               f->lat_min, f->lat_max, f->fail, f->success);
            }
            cn_buf_appends(&b, "}}");
            send_body(api, req, 200, &b, false);
        }
    }
    cn_buf_free(&b);
}

void cn_api_version(struct cn_api *api, struct cn_http_req *req)
{
    size_t len;
    const char *v = cn_store_peek(api->store, CN_NS_SYS, "/version", &len);
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "{\"etcdserver\":\"2.3.8\",\"etcdcluster\":");
    if (v)
        cn_json_str(&b, v, len);
    else
        cn_buf_appends(&b, "\"not_decided\"");
    cn_buf_putc(&b, '}');
    cn_http_respond(req, 200, "application/json", NULL, 0, b.p, b.len, false);
    cn_buf_free(&b);
}

struct health {
    struct cn_api *api;
    struct cn_http_req *req;
    struct cn_node_req *nreq;
};

static void health_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct health *h = req->data; /* ctx is the server's */
    cn_node_req_detach(h->nreq);
    cn_free(h);
}

static void health_send(struct cn_api *api, struct cn_http_req *req, bool ok)
{
    if (ok) {
        api->health_ok++;
        /* etcd's /health body is JSON but its Content-Type is Go's sniffed text/plain */
        cn_http_respond(req, 200, "text/plain; charset=utf-8", NULL, 0, "{\"health\":\"true\"}", 17,
                        false);
    } else {
        api->health_fail++;
        cn_http_respond(req, 503, "text/plain; charset=utf-8", NULL, 0, "{\"health\":\"false\"}",
                        18, false);
    }
}

static void health_done(void *ctx, int rc, const struct cn_store_result *res)
{
    (void)res;
    struct health *h = ctx;
    h->req->on_abort = NULL;
    health_send(h->api, h->req, rc == 0);
    cn_free(h);
}

void cn_api_health(struct cn_api *api, struct cn_http_req *req)
{
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    if (st.leader == 0) {
        health_send(api, req, false);
        return;
    }
    /* A quorum read through consensus proves the member can serve (etcd 3.4's rule). */
    struct health *h = CN_NEW(struct health);
    h->api = api;
    h->req = req;
    req->data = h;
    req->on_abort = health_abort;
    h->nreq = cn_node_read_index(api->node, health_done, h);
}

extern const double cn_api_latency_buckets[14];

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

void cn_api_metrics(struct cn_api *api, struct cn_http_req *req)
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
                           cn_api_method_names[m], api->received[m]);
    cn_buf_appends(&b, "# HELP etcd_http_failed_total Counter of handle failures of requests "
                       "(non-watches), by method (GET/PUT etc.) and code (400, 500 etc.).\n"
                       "# TYPE etcd_http_failed_total counter\n");
    for (int m = 0; m < M_COUNT; m++)
        for (int c = 0; c < CN_API_NCODES; c++)
            if (api->failed[m][c])
                cn_buf_appendf(&b,
                               "etcd_http_failed_total{code=\"%d\",method=\"%s\"} %" PRIu64 "\n",
                               api->failed_code[c], cn_api_method_names[m], api->failed[m][c]);
    cn_buf_appends(&b, "# HELP etcd_http_successful_duration_seconds Bucketed histogram of "
                       "processing time (s) of successfully handled requests (non-watches), by "
                       "method (GET/PUT etc.).\n"
                       "# TYPE etcd_http_successful_duration_seconds histogram\n");
    for (int m = 0; m < M_COUNT; m++) {
        if (!api->ok_count[m]) continue;
        char labels[40];
        snprintf(labels, sizeof(labels), "method=\"%s\"", cn_api_method_names[m]);
        histogram(&b, "etcd_http_successful_duration_seconds", labels, cn_api_latency_buckets,
                  api->ok_bucket[m], 14, api->ok_count[m], api->ok_sum[m]);
    }
    cn_buf_appends(&b, "# HELP etcd_wal_fsync_duration_seconds The latency distributions of fsync "
                       "called by wal.\n# TYPE etcd_wal_fsync_duration_seconds histogram\n");
    histogram(&b, "etcd_wal_fsync_duration_seconds", "", cn_node_fsync_buckets, st.fsync_bucket, 14,
              st.fsync_count, st.fsync_sum_s);

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
