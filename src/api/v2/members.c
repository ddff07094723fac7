/* members: /v2/members (GET, POST, PUT, DELETE, /leader) and /v2/machines, on the member records
 * of src/cluster. A change goes through the log as a membership change carrying its record
 * batch (add, remove) or as one record command (an update of the peer URLs). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"
#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "common/url.h"

#define MAX_PEER_URLS 16

void cn_api_members_array(struct cn_api *api, struct cn_buf *out)
{
    struct cn_member_list l;
    cn_members_load(api->store, &l);
    cn_member_list_json(out, &l);
    cn_member_list_free(&l);
}

static void send_json(struct cn_api *api, struct cn_http_req *req, int status,
                      const struct cn_buf *b)
{
    struct cn_http_hdr h[] = {{"X-Etcd-Cluster-Id", api->cluster_hex}};
    cn_http_respond(req, status, "application/json", h, 1, b->p, b->len, false);
}

/* The body's peerURLs, trimmed of leading spaces and sorted as strings, as etcd keeps them.
 * On a bad body the response is sent (etcd's membersHandler: Content-Type, JSON, each URL,
 * conflicts with another member's) and -1 returned. */
static int body_urls(struct cn_api *api, struct cn_http_req *req, const struct cn_member_list *l,
                     uint64_t self, char **out)
{
    struct cn_str ct = cn_http_req_header(req, "Content-Type");
    static const char json_ct[] = "application/json";
    size_t n = sizeof(json_ct) - 1;
    char msg[512];
    if (ct.p == NULL || ct.len < n || strncasecmp(ct.p, json_ct, n) != 0 ||
        (ct.len > n && ct.p[n] != ';' && ct.p[n] != ' ')) {
        snprintf(msg, sizeof(msg), "Bad Content-Type %.*s, accept application/json",
                 (int)(ct.len > 200 ? 200 : ct.len), ct.p ? ct.p : "");
        cn_api__send_message(api, req, 415, msg);
        return -1;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body.p ? req->body.p : "", req->body.len, 0, &jerr);
    json_t *urls = body ? json_object_get(body, "peerURLs") : NULL;
    if (body == NULL || !json_is_object(body) ||
        (urls && !json_is_array(urls) && !json_is_null(urls))) {
        snprintf(msg, sizeof(msg), "%s", body ? "peerURLs must be an array of strings" : jerr.text);
        json_decref(body);
        cn_api__send_message(api, req, 400, msg);
        return -1;
    }
    size_t i, nurls = 0;
    json_t *v;
    int status = 0;
    json_array_foreach(urls, i, v)
    {
        const char *z = json_is_string(v) ? json_string_value(v) : "";
        while (*z == ' ')
            z++;
        struct cn_url u;
        char why[400];
        if (cn_url_parse(z, &u, why, sizeof(why)) != 0) {
            snprintf(msg, sizeof(msg), "%s", why);
            status = 400;
        } else if (u.has_path) {
            snprintf(msg, sizeof(msg), "URL must not contain a path: %s", z);
            status = 400;
        } else if (cn_member_list_has_peer_url(l, z, self)) {
            /* etcd: a URL already used by another member is a conflict */
            snprintf(msg, sizeof(msg), "etcdserver: peerURL exists");
            status = 409;
        } else if (nurls < MAX_PEER_URLS) {
            out[nurls++] = cn_xstrdup(z);
        }
        if (status) break;
    }
    json_decref(body);
    if (status == 0 && nurls == 0) {
        snprintf(msg, sizeof(msg), "no valid URLs given");
        status = 400;
    }
    if (status) {
        for (size_t k = 0; k < nurls; k++)
            cn_free(out[k]);
        cn_api__send_message(api, req, status, msg);
        return -1;
    }
    for (size_t a = 1; a < nurls; a++)
        for (size_t b = a; b > 0 && strcmp(out[b], out[b - 1]) < 0; b--) {
            char *t = out[b];
            out[b] = out[b - 1];
            out[b - 1] = t;
        }
    return (int)nurls;
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

static void change_done(void *ctx, int rc, const void *vres)
{
    const struct cn_store_result *res = vres;
    struct member_change *mc = ctx;
    struct cn_http_req *req = mc->req;
    req->on_abort = NULL;
    if (rc == 0 && res && res->err.ecode != 0) rc = CN_ERR_INVAL;
    if (rc == 0) {
        if (mc->status == 204)
            cn_http_respond(req, 204, NULL, NULL, 0, NULL, 0, false);
        else
            send_json(mc->api, req, mc->status, &mc->body);
    } else {
        const char *why = cn_api__node_cause(rc);
        char msg[160];
        if (why == NULL) snprintf(msg, sizeof(msg), "etcdserver: %s", cn_strerror(rc));
        cn_api__send_message(mc->api, req, 500, why ? why : msg);
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

/* POST: etcd's AddMember. The id mixes the URLs with the time, so a re-added URL gets a new id. */
static void member_add(struct cn_api *api, struct cn_http_req *req, char **urls, size_t n)
{
    int64_t now = cn_clock_real_ns();
    struct cn_member m = {.id = cn_cluster_member_id(urls, n, "", now / CN_NS_PER_S),
                          .name = "",
                          .n_peer = n,
                          .peer_urls = urls};
    struct cn_buf batch = CN_BUF_INIT;
    cn_members_batch_join(&batch, m.id, urls, n, now);
    struct member_change *mc = change_new(api, req, 201);
    cn_member_json(&mc->body, &m);
    cn_buf_putc(&mc->body, '\n');
    mc->nreq = cn_node_add_member(api->node, m.id, &batch, change_done, mc);
    cn_buf_free(&batch);
}

static void member_remove(struct cn_api *api, struct cn_http_req *req, uint64_t id)
{
    struct cn_buf batch = CN_BUF_INIT;
    cn_members_batch_remove(&batch, id, cn_clock_real_ns());
    struct member_change *mc = change_new(api, req, 204);
    mc->nreq = cn_node_remove_member(api->node, id, &batch, change_done, mc);
    cn_buf_free(&batch);
}

static void member_update(struct cn_api *api, struct cn_http_req *req, uint64_t id, char **urls,
                          size_t n)
{
    struct cn_buf cmd = CN_BUF_INIT;
    cn_members_cmd_peer_urls(&cmd, id, urls, n, false, cn_clock_real_ns());
    struct member_change *mc = change_new(api, req, 204);
    mc->nreq = cn_node_propose(api->node, cmd.p, cmd.len, change_done, mc);
    cn_buf_free(&cmd);
}

static void free_urls(char **urls, int n)
{
    for (int i = 0; i < n; i++)
        cn_free(urls[i]);
}

static void members_root(struct cn_api *api, struct cn_http_req *req,
                         const struct cn_member_list *l)
{
    if (req->method == CN_HTTP_GET) {
        struct cn_buf b = CN_BUF_INIT;
        cn_buf_appends(&b, "{\"members\":");
        cn_member_list_json(&b, l);
        cn_buf_appends(&b, "}\n");
        send_json(api, req, 200, &b);
        cn_buf_free(&b);
    } else if (req->method == CN_HTTP_POST) {
        char *urls[MAX_PEER_URLS];
        int n = body_urls(api, req, l, 0, urls);
        if (n > 0) member_add(api, req, urls, (size_t)n);
        free_urls(urls, n);
    } else {
        struct cn_http_hdr h[] = {{"Allow", "GET,POST,DELETE,PUT"},
                                  {"X-Content-Type-Options", "nosniff"}};
        cn_http_respond(req, 405, "text/plain; charset=utf-8", h, 2, "Method Not Allowed\n", 19,
                        false);
    }
}

static void members_leader(struct cn_api *api, struct cn_http_req *req,
                           const struct cn_member_list *l)
{
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    const struct cn_member *m = st.leader ? cn_member_list_find(l, st.leader) : NULL;
    if (m == NULL) {
        cn_api__send_message(api, req, 503, "During election");
        return;
    }
    struct cn_buf b = CN_BUF_INIT;
    cn_member_json(&b, m);
    cn_buf_putc(&b, '\n');
    send_json(api, req, 200, &b);
    cn_buf_free(&b);
}

void cn_api__members(struct cn_api *api, struct cn_http_req *req, struct cn_str rest)
{
    struct cn_member_list l;
    cn_members_load(api->store, &l);
    if (rest.len == 0 || cn_str_eqz(rest, "/")) {
        members_root(api, req, &l);
        goto out;
    }
    struct cn_str id = cn_str_make(rest.p + 1, rest.len - 1);
    if (cn_str_eqz(id, "leader") && req->method == CN_HTTP_GET) {
        members_leader(api, req, &l);
        goto out;
    }
    if (req->method == CN_HTTP_GET) {
        cn_api__send_message(api, req, 404, "Not found");
        goto out;
    }
    char idz[80], msg[200];
    snprintf(idz, sizeof(idz), "%.*s", (int)(id.len > 64 ? 64 : id.len), id.p);
    snprintf(msg, sizeof(msg), "No such member: %s", idz);
    char *end;
    uint64_t mid = strtoull(idz, &end, 16);
    bool valid = *end == '\0' && *idz;
    bool exists = valid && cn_member_list_find(&l, mid) != NULL;
    if (!exists && valid && cn_members_is_removed(api->store, mid)) {
        snprintf(msg, sizeof(msg), "Member permanently removed: %s", idz);
        cn_api__send_message(api, req, 410, msg);
    } else if (!exists) {
        cn_api__send_message(api, req, 404, msg);
    } else if (req->method == CN_HTTP_PUT) {
        char *urls[MAX_PEER_URLS];
        int n = body_urls(api, req, &l, mid, urls);
        if (n > 0) member_update(api, req, mid, urls, (size_t)n);
        free_urls(urls, n);
    } else if (req->method == CN_HTTP_DELETE) {
        member_remove(api, req, mid);
    } else {
        cn_api__send_message(api, req, 405, "Method Not Allowed");
    }
out:
    cn_member_list_free(&l);
}

void cn_api__machines(struct cn_api *api, struct cn_http_req *req)
{
    struct cn_member_list l;
    cn_members_load(api->store, &l);
    struct cn_buf b = CN_BUF_INIT;
    bool first = true;
    for (size_t i = 0; i < l.n; i++)
        for (size_t j = 0; j < l.m[i].n_client; j++) {
            if (!first) cn_buf_appends(&b, ", ");
            first = false;
            cn_buf_appends(&b, l.m[i].client_urls[j]);
        }
    cn_http_respond(req, 200, "text/plain; charset=utf-8", NULL, 0, b.p ? b.p : "", b.len, false);
    cn_buf_free(&b);
    cn_member_list_free(&l);
}
