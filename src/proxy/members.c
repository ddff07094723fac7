/* members: where the proxy learns the cluster from. The peer URLs come from the discovery
 * fallback, <data-dir>/proxy/cluster or --initial-cluster (etcd 2.3's startProxy order); every
 * --proxy-refresh-interval the proxy asks the peers for the member list (GET <peerURL>/members,
 * tried in order until one answers), takes the members' client URLs as its endpoints and records
 * their peer URLs in the cluster file, replaced atomically (write a temporary, then rename).
 *
 * Deliberate difference from etcd 2.3: when no peer answers, etcd's refresh yields an empty
 * endpoint list (every request then gets 503 until a later refresh succeeds); cairn keeps the
 * endpoints it had, so a proxy cut from the peer ports but not the client ports keeps serving.
 * As etcd, while no endpoint is available a default (>= 30 s) interval is shortened to 1 s. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/url.h"
#include "proxy/proxy_int.h"

#define DEFAULT_REFRESH_MS 30000
#define FAST_REFRESH_MS    1000
#define MIN_REFRESH_MS     100
#define MAX_CLUSTER_FILE   (1024 * 1024)

/* ---- URL lists ----------------------------------------------------------------------------- */

void cn_proxy__urls_free(struct proxy_urls *u)
{
    for (size_t i = 0; i < u->n; i++)
        cn_free(u->v[i]);
    u->n = 0;
}

int cn_proxy__urls_add(struct proxy_urls *u, const char *z, size_t len)
{
    while (len > 0 && z[len - 1] == '/')
        len--;
    for (size_t i = 0; i < u->n; i++)
        if (strlen(u->v[i]) == len && memcmp(u->v[i], z, len) == 0) return 0;
    if (u->n == PROXY_MAX_URLS) return CN_ERR_TOO_LARGE;
    u->v[u->n++] = cn_xstrndup(z, len);
    return 0;
}

/* A URL the proxy can use: http://host:port (TLS is not supported yet). */
static bool usable_url(const char *z, size_t len, char *why, size_t why_len)
{
    if (len == 0 || len >= PROXY_MAX_URL_LEN || memchr(z, '\0', len)) {
        snprintf(why, why_len, "bad URL length");
        return false;
    }
    char buf[PROXY_MAX_URL_LEN];
    memcpy(buf, z, len);
    buf[len] = '\0';
    struct cn_url u;
    if (cn_url_parse(buf, &u, why, why_len) != 0) return false;
    if (strcmp(u.scheme, "http") != 0) {
        snprintf(why, why_len, "%s:// is not supported yet", u.scheme);
        return false;
    }
    return true;
}

/* ---- the cluster file ---------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf)) return CN_ERR_INVAL;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
        buf[i] = c;
    }
    return 0;
}

static void cluster_json(const struct proxy_urls *peers, struct cn_buf *b)
{
    /* etcd: json.Marshal(struct{ PeerURLs []string }) */
    cn_buf_reset(b);
    cn_buf_appends(b, "{\"PeerURLs\":[");
    for (size_t i = 0; i < peers->n; i++) {
        if (i) cn_buf_putc(b, ',');
        cn_json_strz(b, peers->v[i]);
    }
    cn_buf_appends(b, "]}");
}

/* Replaces the cluster file when its content changes. The file is a few hundred bytes written
 * every refresh at most, without fsync (as etcd's ioutil.WriteFile): cheap enough for the loop. */
static int write_cluster_file(struct cn_proxy *p)
{
    struct cn_buf next = CN_BUF_INIT;
    cluster_json(&p->peers, &next);
    if (cn_str_eq(cn_buf_str(&next), cn_buf_str(&p->cluster_json))) {
        cn_buf_free(&next);
        return 0;
    }
    struct cn_buf tmp = CN_BUF_INIT;
    cn_buf_appendf(&tmp, "%s.bak", p->cluster_path);
    int rc = 0;
    int fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    size_t off = 0;
    while (off < next.len) {
        ssize_t n = write(fd, next.p + off, next.len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp.p, p->cluster_path) != 0) rc = -errno;
    if (rc != 0) {
        (void)unlink(tmp.p); /* best effort: the error that matters is reported below */
        goto out;
    }
    cn_buf_free(&p->cluster_json);
    p->cluster_json = next;
    next = (struct cn_buf)CN_BUF_INIT;
out:
    if (rc != 0)
        CN_LOGE("proxy", "cannot write cluster file path=%s err=\"%s\"", p->cluster_path,
                cn_strerror(rc));
    cn_buf_free(&tmp);
    cn_buf_free(&next);
    return rc;
}

/* Reads {"PeerURLs":[...]}; CN_ERR_NOT_FOUND when the file does not exist. */
static int read_cluster_file(struct cn_proxy *p, char *err, size_t errlen)
{
    int fd = open(p->cluster_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return CN_ERR_NOT_FOUND;
        int rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", p->cluster_path, cn_strerror(rc));
        return rc;
    }
    struct cn_buf b = CN_BUF_INIT;
    int rc = cn_buf_read_fd(&b, fd, MAX_CLUSTER_FILE);
    close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read %s: %s", p->cluster_path, cn_strerror(rc));
        cn_buf_free(&b);
        return rc;
    }
    json_error_t je;
    json_t *root = json_loadb(b.p ? b.p : "", b.len, 0, &je);
    json_t *arr = root ? json_object_get(root, "PeerURLs") : NULL;
    rc = 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: not a {\"PeerURLs\":[...]} document", p->cluster_path);
        rc = CN_ERR_PARSE;
    }
    size_t i;
    json_t *v;
    json_array_foreach(rc == 0 ? arr : NULL, i, v)
    {
        char why[256];
        const char *z = json_string_value(v);
        size_t len = z ? json_string_length(v) : 0;
        if (z == NULL || !usable_url(z, len, why, sizeof(why))) {
            snprintf(err, errlen, "%s: bad peer URL: %s", p->cluster_path,
                     z ? why : "not a string");
            rc = CN_ERR_PARSE;
            break;
        }
        if (cn_proxy__urls_add(&p->peers, z, len) != 0) break; /* more than we keep */
    }
    if (rc == 0) cn_buf_append(&p->cluster_json, b.p, b.len);
    json_decref(root);
    cn_buf_free(&b);
    return rc;
}

int cn_proxy__init_peers(struct cn_proxy *p, const struct cn_config *cfg,
                         const char *const *peer_urls, size_t npeer, char *err, size_t errlen)
{
    struct cn_buf dir = CN_BUF_INIT;
    cn_buf_appendf(&dir, "%s/proxy", cfg->data_dir);
    int rc = mkdir_p(dir.p);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create proxy dir %s: %s", dir.p, cn_strerror(rc));
        cn_buf_free(&dir);
        return rc;
    }
    cn_buf_appends(&dir, "/cluster");
    p->cluster_path = cn_buf_steal(&dir, NULL);

    const char *source;
    char why[256];
    if (npeer > 0) {
        source = "discovery";
        for (size_t i = 0; i < npeer; i++) {
            size_t len = strlen(peer_urls[i]);
            if (!usable_url(peer_urls[i], len, why, sizeof(why))) {
                snprintf(err, errlen, "bad peer URL %s: %s", peer_urls[i], why);
                return CN_ERR_INVAL;
            }
            (void)cn_proxy__urls_add(&p->peers, peer_urls[i], len); /* full: keep the first */
        }
    } else if ((rc = read_cluster_file(p, err, errlen)) == 0) {
        source = "cluster file";
    } else if (rc != CN_ERR_NOT_FOUND) {
        return rc;
    } else {
        source = "initial cluster";
        for (size_t i = 0; i < cfg->ninitial; i++) {
            const struct cn_url_list *l = &cfg->initial[i].peer_urls;
            for (size_t j = 0; j < l->n; j++) {
                size_t len = strlen(l->raw[j]);
                if (!usable_url(l->raw[j], len, why, sizeof(why))) {
                    snprintf(err, errlen, "bad peer URL %s in --initial-cluster: %s", l->raw[j],
                             why);
                    return CN_ERR_INVAL;
                }
                (void)cn_proxy__urls_add(&p->peers, l->raw[j], len); /* full: keep the first */
            }
        }
    }
    if (p->peers.n == 0) {
        snprintf(err, errlen, "no peer URLs to find the cluster members with (%s is empty)",
                 source);
        return CN_ERR_INVAL;
    }
    struct cn_buf b = CN_BUF_INIT;
    for (size_t i = 0; i < p->peers.n; i++)
        cn_buf_appendf(&b, "%s%s", i ? "," : "", p->peers.v[i]);
    CN_LOGN("proxy", "using peer urls source=\"%s\" peers=\"%s\"", source, b.p);
    cn_buf_free(&b);
    rc = write_cluster_file(p);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write %s: %s", p->cluster_path, cn_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- refresh ------------------------------------------------------------------------------- */

static void refresh_try(struct cn_proxy *p);

/* Adds the usable URLs of a member to out; unusable ones are skipped. */
static void add_urls(char *const *urls, size_t n, struct proxy_urls *out, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(urls[i]);
        char why[256];
        if (!usable_url(urls[i], len, why, sizeof(why))) {
            CN_LOGW("proxy", "skipping member URL kind=%s err=\"%s\"", what, why);
            continue;
        }
        if (cn_proxy__urls_add(out, urls[i], len) != 0) return;
    }
}

int cn_proxy__parse_members(struct cn_str body, struct proxy_urls *clients,
                            struct proxy_urls *peers)
{
    struct cn_member_list l;
    char err[160];
    if (cn_member_list_parse(body, CN_MEMBER_LIST_PEER, &l, err, sizeof(err)) != 0) {
        CN_LOGD("proxy", "members answer is not a member list err=\"%s\"", err);
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        add_urls(l.m[i].client_urls, l.m[i].n_client, clients, "client");
        add_urls(l.m[i].peer_urls, l.m[i].n_peer, peers, "peer");
    }
    int n = (int)l.n;
    cn_member_list_free(&l);
    return n;
}

static void on_refresh_timer(uv_timer_t *t)
{
    struct cn_proxy *p = t->data;
    p->refresh_i = 0;
    refresh_try(p);
}

uint64_t cn_proxy__refresh_wait_ms(uint64_t interval_ms, size_t available)
{
    uint64_t wait = interval_ms;
    if (wait < MIN_REFRESH_MS) wait = MIN_REFRESH_MS;
    if (wait >= DEFAULT_REFRESH_MS && available == 0) wait = FAST_REFRESH_MS;
    return wait;
}

static void refresh_finished(struct cn_proxy *p)
{
    uint64_t wait = cn_proxy__refresh_wait_ms(p->t.refresh_interval_ms, cn_proxy__available(p));
    uv_timer_start(&p->refresh_timer, on_refresh_timer, wait, 0);
    if (!p->refreshed) {
        p->refreshed = true;
        cn_proxy__run_queued(p);
    }
}

static void refresh_done(struct cn_http_client_req *creq, int rc,
                         const struct cn_http_client_resp *resp, void *ctx)
{
    struct cn_proxy *p = ctx;
    p->refresh_req = NULL;
    if (p->stopping) return;
    const char *peer = p->peers.v[p->refresh_i];
    struct proxy_urls clients = {0}, peers = {0};
    int n = -1;
    if (rc == 0 && resp->status == 200) n = cn_proxy__parse_members(resp->body, &clients, &peers);
    if (n < 0) {
        if (rc != 0)
            CN_LOGW("proxy", "cannot fetch members peer=%s err=\"%s\"", peer, cn_strerror(rc));
        else
            CN_LOGW("proxy", "bad members answer peer=%s status=%d", peer, resp->status);
        p->refresh_i++;
        refresh_try(p);
        return;
    }
    /* logged now: peer points into p->peers, which the new list replaces below */
    CN_LOGD("proxy", "members refreshed peer=%s members=%d", peer, n);
    if (n > 0) { /* etcd keeps its endpoints when the answer lists no member */
        cn_proxy__set_endpoints(p, &clients);
        if (peers.n > 0) {
            cn_proxy__urls_free(&p->peers);
            p->peers = peers;
            peers.n = 0;
            (void)write_cluster_file(p); /* logged inside; the old file stays usable */
        }
    }
    cn_proxy__urls_free(&clients);
    cn_proxy__urls_free(&peers);
    refresh_finished(p);
}

/* Asks p->peers from refresh_i on until one answers. */
static void refresh_try(struct cn_proxy *p)
{
    while (p->refresh_i < p->peers.n) {
        struct cn_buf url = CN_BUF_INIT;
        cn_buf_appendf(&url, "%s/members", p->peers.v[p->refresh_i]);
        struct cn_http_client_opts o = {
            .method = "GET",
            .url = url.p,
            .timeout_ms = PROXY_MEMBERS_MS,
            .connect_timeout_ms = p->t.dial_timeout_ms,
            .max_body_bytes = PROXY_MEMBERS_BYTES,
            .on_done = refresh_done,
            .ctx = p,
        };
        int rc = cn_http_client_request(p->client, &o, &p->refresh_req);
        cn_buf_free(&url);
        if (rc == 0) return;
        CN_LOGW("proxy", "cannot fetch members peer=%s err=\"%s\"", p->peers.v[p->refresh_i],
                cn_strerror(rc));
        p->refresh_req = NULL;
        p->refresh_i++;
    }
    CN_LOGW("proxy", "could not fetch the cluster members from any peer peers=%zu endpoints=%zu",
            p->peers.n, p->neps);
    refresh_finished(p);
}

void cn_proxy__refresh_start(struct cn_proxy *p)
{
    p->refresh_i = 0;
    refresh_try(p);
}

void cn_proxy__refresh_stop(struct cn_proxy *p)
{
    uv_timer_stop(&p->refresh_timer);
    if (p->refresh_req) {
        cn_http_client_cancel(p->refresh_req);
        p->refresh_req = NULL;
    }
}
