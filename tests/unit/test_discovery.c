/* Unit tests for src/discovery's client: the registry answers it reads (discovery_int.h: the size
 * key, listings in createdIndex order, registration results, error codes), the verdict on a
 * listing (full cluster, duplicate names, waiting for more), and the whole protocol against a
 * small registry served from this test on 127.0.0.1 (ephemeral port) in one uv loop. No sleeps:
 * the loop runs until a condition holds, under a deadline. SRV bootstrap needs a DNS server and
 * is covered by tests/integration/test_discovery.py. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/url.h"
#include "discovery/discovery.h"
#include "discovery/discovery_int.h"
#include "http/http.h"
#include "http/http_client.h"

#define S(lit) CN_STR(lit)

/* ---- the size key -------------------------------------------------------------------------- */

static int size_of(int status, struct cn_str body, uint64_t *size)
{
    *size = 0;
    return cn_discovery__parse_size(status, body, size);
}

static void size_key(void **state)
{
    uint64_t size;
    assert_int_equal(size_of(200,
                             S("{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/t/_config/"
                               "size\",\"value\":\"3\",\"modifiedIndex\":4,\"createdIndex\":4}}"),
                             &size),
                     CN_DISC_OK);
    assert_int_equal(size, 3);
    assert_int_equal(size_of(200, S("{\"node\":{\"value\":\"1000\"}}"), &size), CN_DISC_OK);
    assert_int_equal(size, 1000);
    assert_int_equal(size_of(200, S("{\"node\":{\"value\":\"1\"}}"), &size), CN_DISC_OK);
    assert_int_equal(size, 1);

    /* etcd's "size key is bad": not a decimal in 1..1000, or not a string */
    static const char *const bad[] = {
        "{\"node\":{\"value\":\"0\"}}",
        "{\"node\":{\"value\":\"1001\"}}",
        "{\"node\":{\"value\":\"-3\"}}",
        "{\"node\":{\"value\":\"3x\"}}",
        "{\"node\":{\"value\":\"\"}}",
        "{\"node\":{\"value\":3}}",
        "{\"node\":{\"key\":\"/size\"}}",
        "{\"action\":\"get\"}",
        "[1,2,3]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(size_of(200, cn_str_c(bad[i]), &size), CN_DISC_BAD_SIZE);
        assert_int_equal(size, 0);
    }

    /* etcd's "size key not found": a 404, or errorCode 100 whatever the status */
    assert_int_equal(
        size_of(404,
                S("{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/_etcd/"
                  "registry/t/_config\",\"index\":7}"),
                &size),
        CN_DISC_SIZE_NOT_FOUND);
    assert_int_equal(size_of(200, S("{\"errorCode\":100}"), &size), CN_DISC_SIZE_NOT_FOUND);
    assert_int_equal(size_of(404, S("{}"), &size), CN_DISC_SIZE_NOT_FOUND);

    /* a server error is retried; an answer that is not JSON is a bad endpoint */
    assert_int_equal(size_of(500, S("{\"message\":\"boom\"}"), &size), CN_DISCOVERY__RETRY);
    assert_int_equal(size_of(503, S("Service Unavailable"), &size), CN_DISCOVERY__RETRY);
    assert_int_equal(size_of(200, S("hello world"), &size), CN_DISC_BAD_ENDPOINT);
    assert_int_equal(size_of(404, S("404 page not found\n"), &size), CN_DISC_BAD_ENDPOINT);
    assert_int_equal(size_of(200, CN_STR_NULL, &size), CN_DISC_BAD_ENDPOINT);
    assert_int_equal(size, 0);
}

/* ---- registering --------------------------------------------------------------------------- */

static void register_answers(void **state)
{
    struct cn_str created = S("{\"action\":\"create\",\"node\":{\"key\":\"/_etcd/registry/t/"
                              "1a\",\"value\":\"n1=http://a:2380\",\"createdIndex\":9}}");
    assert_int_equal(cn_discovery__parse_register(201, created), CN_DISC_OK);
    assert_int_equal(cn_discovery__parse_register(200, created), CN_DISC_OK);
    /* prevExist=false on a key that exists: etcd answers 412 with errorCode 105 */
    struct cn_str exists = S("{\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":"
                             "\"/_etcd/registry/t/1a\",\"index\":9}");
    assert_int_equal(cn_discovery__parse_register(412, exists), CN_DISC_DUP_ID);
    assert_int_equal(cn_discovery__parse_register(200, exists), CN_DISC_DUP_ID);
    assert_int_equal(cn_discovery__parse_register(412, S("{}")), CN_DISC_DUP_ID);
    assert_int_equal(cn_discovery__parse_register(500, exists), CN_DISCOVERY__RETRY);
    assert_int_equal(cn_discovery__parse_register(502, S("Bad Gateway")), CN_DISCOVERY__RETRY);
    assert_int_equal(cn_discovery__parse_register(403, S("{\"errorCode\":107}")),
                     CN_DISC_BAD_ENDPOINT);
    assert_int_equal(cn_discovery__parse_register(201, S("created")), CN_DISC_BAD_ENDPOINT);
    assert_int_equal(cn_discovery__parse_register(204, S("{}")), CN_DISC_BAD_ENDPOINT);
}

/* ---- listings ------------------------------------------------------------------------------ */

/* A listing as etcd 2.3 writes it: _config first (a directory), then the registrations in key
 * order, which is not their creation order. */
static const char full_listing[] =
    "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/t\",\"dir\":true,\"nodes\":["
    "{\"key\":\"/_etcd/registry/t/_config\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4},"
    "{\"key\":\"/_etcd/registry/t/1a2b\",\"value\":\"n2=http://10.0.0.2:2380\","
    "\"modifiedIndex\":7,\"createdIndex\":7},"
    "{\"key\":\"/_etcd/registry/t/3c\",\"value\":\"n3=http://10.0.0.3:2380\","
    "\"modifiedIndex\":9,\"createdIndex\":9},"
    "{\"key\":\"/_etcd/registry/t/ff00000000000001\",\"value\":\"n1=http://10.0.0.1:2380,n1="
    "http://10.0.1.1:2380\",\"modifiedIndex\":5,\"createdIndex\":5}"
    "],\"modifiedIndex\":4,\"createdIndex\":4}}";

static void listing_in_created_order(void **state)
{
    struct cn_discovery__list l;
    assert_int_equal(cn_discovery__parse_list(200, cn_str_c(full_listing), &l), CN_DISC_OK);
    assert_int_equal(l.n, 3);
    assert_true(l.regs[0].id == 0xff00000000000001ULL);
    assert_string_equal(l.regs[0].value, "n1=http://10.0.0.1:2380,n1=http://10.0.1.1:2380");
    assert_true(l.regs[1].id == 0x1a2b);
    assert_string_equal(l.regs[1].value, "n2=http://10.0.0.2:2380");
    assert_true(l.regs[2].id == 0x3c);
    assert_string_equal(l.regs[2].value, "n3=http://10.0.0.3:2380");
    cn_discovery__list_free(&l);
    assert_null(l.root);
    assert_int_equal(l.n, 0);
}

static void listing_odd_nodes(void **state)
{
    /* a directory other than _config is skipped; a key without a value still counts (value
     * NULL); a node without a string key is skipped; a key without '/' has id 0; no
     * createdIndex sorts as 0 */
    struct cn_str body = S("{\"node\":{\"nodes\":["
                           "{\"key\":\"/r/sub\",\"dir\":true,\"createdIndex\":1},"
                           "{\"key\":\"/r/aa\",\"createdIndex\":8},"
                           "{\"value\":\"nokey=http://x:1\",\"createdIndex\":2},"
                           "{\"key\":17,\"value\":\"numkey=http://x:1\"},"
                           "{\"key\":\"bare\",\"value\":\"bare=http://b:1\",\"createdIndex\":6},"
                           "{\"key\":\"/r/zz\",\"value\":\"first=http://f:1\"},"
                           "{\"key\":\"/r/_config\",\"value\":\"cfg\",\"createdIndex\":0}"
                           "]}}");
    struct cn_discovery__list l;
    assert_int_equal(cn_discovery__parse_list(200, body, &l), CN_DISC_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.regs[0].value, "first=http://f:1");
    assert_true(l.regs[0].id == 0);
    assert_string_equal(l.regs[1].value, "bare=http://b:1");
    assert_true(l.regs[1].id == 0);
    assert_null(l.regs[2].value);
    assert_true(l.regs[2].id == 0xaa);
    cn_discovery__list_free(&l);

    /* an empty directory (a fresh token) */
    assert_int_equal(cn_discovery__parse_list(
                         200, S("{\"action\":\"get\",\"node\":{\"key\":\"/r\",\"dir\":true}}"), &l),
                     CN_DISC_OK);
    assert_int_equal(l.n, 0);
    cn_discovery__list_free(&l);
}

static void listing_caps_at_max(void **state)
{
    /* only the first CN_DISCOVERY_MAX registrations (in answer order) are read */
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "{\"node\":{\"nodes\":[");
    for (int i = 0; i < CN_DISCOVERY_MAX + 6; i++)
        cn_buf_appendf(&b, "%s{\"key\":\"/r/%x\",\"value\":\"m%d=http://h:1\",\"createdIndex\":%d}",
                       i ? "," : "", i + 1, i, 1000 - i);
    cn_buf_appends(&b, "]}}");
    struct cn_discovery__list l;
    assert_int_equal(cn_discovery__parse_list(200, cn_buf_str(&b), &l), CN_DISC_OK);
    assert_int_equal(l.n, CN_DISCOVERY_MAX);
    /* sorted by createdIndex: the 64th of the answer (index 937) comes first */
    assert_true(l.regs[0].id == CN_DISCOVERY_MAX);
    assert_string_equal(l.regs[CN_DISCOVERY_MAX - 1].value, "m0=http://h:1");
    cn_discovery__list_free(&l);
    cn_buf_free(&b);
}

static void listing_errors(void **state)
{
    struct cn_discovery__list l;
    assert_int_equal(cn_discovery__parse_list(404,
                                              S("{\"errorCode\":100,\"message\":\"Key not "
                                                "found\"}"),
                                              &l),
                     CN_DISC_SIZE_NOT_FOUND);
    assert_null(l.root);
    assert_int_equal(cn_discovery__parse_list(403, S("{\"errorCode\":110}"), &l),
                     CN_DISC_BAD_ENDPOINT);
    assert_int_equal(cn_discovery__parse_list(200, S("<html>hello</html>"), &l),
                     CN_DISC_BAD_ENDPOINT);
    assert_int_equal(cn_discovery__parse_list(404, S("404 page not found"), &l),
                     CN_DISC_BAD_ENDPOINT);
    /* an empty 200 and any 5xx are transport trouble: retried */
    assert_int_equal(cn_discovery__parse_list(200, S(""), &l), CN_DISCOVERY__RETRY);
    assert_int_equal(cn_discovery__parse_list(200, CN_STR_NULL, &l), CN_DISCOVERY__RETRY);
    assert_int_equal(cn_discovery__parse_list(500, cn_str_c(full_listing), &l),
                     CN_DISCOVERY__RETRY);
    assert_int_equal(cn_discovery__parse_list(503, S("busy"), &l), CN_DISCOVERY__RETRY);
    assert_null(l.root);
    assert_int_equal(l.n, 0);
}

/* ---- verdicts ------------------------------------------------------------------------------ */

/* A listing with n registrations: ids 1..n, values "<name>=http://10.0.0.<i>:2380" with names
 * from names (or "m<i>"), in order. */
static void fake_list(struct cn_discovery__list *l, size_t n, const char *const *names)
{
    static char vals[CN_DISCOVERY_MAX][64];
    memset(l, 0, sizeof(*l));
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        if (names)
            snprintf(vals[i], sizeof(vals[i]), "%s=http://10.0.0.%zu:2380", names[i], i + 1);
        else
            snprintf(vals[i], sizeof(vals[i]), "m%zu=http://10.0.0.%zu:2380", i + 1, i + 1);
        l->regs[i].id = i + 1;
        l->regs[i].value = vals[i];
    }
}

static void verdict_before_registering(void **state)
{
    struct cn_discovery__list l;
    struct cn_discovery__verdict v;

    /* room left, self not there: register */
    fake_list(&l, 2, NULL);
    cn_discovery__judge(&l, 99, 3, true, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_REGISTER);
    assert_int_equal(v.npeers, 0);

    /* self registered already (a restart during discovery): straight to listing */
    cn_discovery__judge(&l, 2, 3, true, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_LIST);

    /* full and self not among the first size: "cluster is full", with the members */
    fake_list(&l, 4, NULL);
    cn_discovery__judge(&l, 99, 3, true, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_DONE);
    assert_int_equal(v.err, CN_DISC_FULL);
    assert_int_equal(v.npeers, 3);
    assert_true(v.peers[0].id == 1 && v.peers[2].id == 3);
    assert_string_equal(v.peers[1].value, "m2=http://10.0.0.2:2380");
    /* ... also when self registered too late (4th of 3) */
    cn_discovery__judge(&l, 4, 3, true, &v);
    assert_int_equal(v.err, CN_DISC_FULL);
    assert_int_equal(v.npeers, 3);
    /* self among the first size: not full */
    cn_discovery__judge(&l, 3, 3, true, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_LIST);

    /* a value-less registration is handed on as NULL before registering */
    l.regs[0].value = NULL;
    cn_discovery__judge(&l, 99, 3, true, &v);
    assert_int_equal(v.err, CN_DISC_FULL);
    assert_null(v.peers[0].value);
}

static void verdict_after_registering(void **state)
{
    struct cn_discovery__list l;
    struct cn_discovery__verdict v;

    fake_list(&l, 2, NULL);
    cn_discovery__judge(&l, 2, 3, false, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_WAIT);

    fake_list(&l, 3, NULL);
    cn_discovery__judge(&l, 2, 3, false, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_DONE);
    assert_int_equal(v.err, CN_DISC_OK);
    assert_int_equal(v.npeers, 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(v.peers[i].id == i + 1);
    assert_string_equal(v.peers[0].value, "m1=http://10.0.0.1:2380");
    assert_string_equal(v.peers[2].value, "m3=http://10.0.0.3:2380");

    /* more registered than size: the first size form the cluster ... */
    fake_list(&l, 5, NULL);
    cn_discovery__judge(&l, 1, 3, false, &v);
    assert_int_equal(v.err, CN_DISC_OK);
    assert_int_equal(v.npeers, 3);
    /* ... and a member registered later is told the cluster is full (no peers) */
    cn_discovery__judge(&l, 5, 3, false, &v);
    assert_int_equal(v.err, CN_DISC_FULL);
    assert_int_equal(v.npeers, 0);
    /* the last registration with self's id is the one that counts */
    l.regs[4].id = 1;
    cn_discovery__judge(&l, 1, 3, false, &v);
    assert_int_equal(v.err, CN_DISC_FULL);

    /* a value-less registration reads as "" */
    fake_list(&l, 2, NULL);
    l.regs[1].value = NULL;
    cn_discovery__judge(&l, 1, 2, false, &v);
    assert_int_equal(v.err, CN_DISC_OK);
    assert_string_equal(v.peers[1].value, "");
}

static void verdict_duplicate_names(void **state)
{
    struct cn_discovery__list l;
    struct cn_discovery__verdict v;
    static const char *const dup[] = {"a", "b", "a"};
    fake_list(&l, 3, dup);
    cn_discovery__judge(&l, 2, 3, false, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_DONE);
    assert_int_equal(v.err, CN_DISC_DUP_NAME);
    assert_int_equal(v.npeers, 0);
    /* only the first size count: a duplicate beyond them does not matter */
    cn_discovery__judge(&l, 2, 2, false, &v);
    assert_int_equal(v.err, CN_DISC_OK);
    assert_int_equal(v.npeers, 2);
    /* the name is the part before the first '=': a prefix is another name */
    static const char *const prefix[] = {"node", "node1"};
    fake_list(&l, 2, prefix);
    cn_discovery__judge(&l, 1, 2, false, &v);
    assert_int_equal(v.err, CN_DISC_OK);
    /* a value without '=' is all name */
    l.regs[0].value = "node1";
    cn_discovery__judge(&l, 1, 2, false, &v);
    assert_int_equal(v.err, CN_DISC_DUP_NAME);
    /* before registering no names are compared */
    fake_list(&l, 3, dup);
    cn_discovery__judge(&l, 99, 4, true, &v);
    assert_int_equal(v.next, CN_DISCOVERY__NEXT_REGISTER);
}

static void error_messages(void **state)
{
    /* etcd's texts, which operators and scripts grep for */
    assert_string_equal(cn_discovery_strerror(CN_DISC_FULL), "discovery: cluster is full");
    assert_string_equal(cn_discovery_strerror(CN_DISC_DUP_ID), "discovery: found duplicate id");
    assert_string_equal(cn_discovery_strerror(CN_DISC_DUP_NAME), "discovery: found duplicate name");
    assert_string_equal(cn_discovery_strerror(CN_DISC_SIZE_NOT_FOUND),
                        "discovery: size key not found");
    assert_string_equal(cn_discovery_strerror(CN_DISC_BAD_SIZE), "discovery: size key is bad");
    assert_string_equal(cn_discovery_strerror(CN_DISC_BAD_ENDPOINT),
                        "discovery: bad discovery endpoint");
    assert_string_equal(cn_discovery_strerror(CN_DISC_TOO_MANY), "discovery: too many retries");
    assert_string_equal(cn_discovery_strerror(CN_DISC_BAD_URL), "discovery: invalid URL");
    assert_string_equal(cn_discovery_strerror(42), "discovery: unknown error");
}

/* ---- the protocol against a registry in this process --------------------------------------- */

#define MAX_REGS    8
#define DEADLINE_MS 5000

struct reg {
    uint64_t id;
    char value[256];
    uint64_t index;
};

/* A registry at http://127.0.0.1:<port>/reg, shaped as etcd's keys API under
 * /_etcd/registry/tok; one request of each kind is logged. */
struct registry {
    uint64_t size; /* 0: no size key */
    int size_fail; /* answer the size read with 503 this many times first */
    bool refuse_put;
    uint64_t index;
    struct reg regs[MAX_REGS];
    size_t nregs;
    struct cn_http_req *waiting; /* a held long poll */
    uint64_t wait_index;
    int nsize, nlist, nput, nwait;
    char put_target[128];
    char put_value[256];
    char wait_query[128];
};

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    struct cn_http_server *srv;
    struct cn_http_client *cl;
    uint16_t port;
    struct registry r;
    char url[64];
    /* the outcome */
    int done;
    int err;
    size_t npeers;
    uint64_t ids[MAX_REGS];
    char values[MAX_REGS][256];
    int closed;
};

static struct fx F;

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_update_time(&F.loop);                                                                   \
        uint64_t dl_ = uv_now(&F.loop) + DEADLINE_MS;                                              \
        while (!(cond)) {                                                                          \
            if (uv_now(&F.loop) > dl_) fail_msg("timed out waiting for: %s", #cond);               \
            uv_run(&F.loop, UV_RUN_ONCE);                                                          \
        }                                                                                          \
    } while (0)

static void reg_add(uint64_t id, const char *value)
{
    struct registry *r = &F.r;
    assert_true(r->nregs < MAX_REGS);
    struct reg *g = &r->regs[r->nregs++];
    g->id = id;
    snprintf(g->value, sizeof(g->value), "%s", value);
    g->index = ++r->index;
}

static void node_json(struct cn_buf *b, const struct reg *g)
{
    cn_buf_appendf(b,
                   "{\"key\":\"/_etcd/registry/tok/%" PRIx64
                   "\",\"value\":\"%s\",\"modifiedIndex\":%" PRIu64 ",\"createdIndex\":%" PRIu64
                   "}",
                   g->id, g->value, g->index, g->index);
}

static void respond_json(struct cn_http_req *req, int status, const struct cn_buf *b)
{
    char idx[24];
    snprintf(idx, sizeof(idx), "%" PRIu64, F.r.index);
    struct cn_http_hdr h[] = {{"X-Etcd-Index", idx}};
    cn_http_respond(req, status, "application/json", h, 1, b->p, b->len, false);
}

/* Listing, newest registration first (not creation order, as a real registry's key order). */
static void answer_list(struct cn_http_req *req)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok\",\"dir\":true,"
                       "\"nodes\":[{\"key\":\"/_etcd/registry/tok/_config\",\"dir\":true,"
                       "\"modifiedIndex\":1,\"createdIndex\":1}");
    for (size_t i = F.r.nregs; i > 0; i--) {
        cn_buf_putc(&b, ',');
        node_json(&b, &F.r.regs[i - 1]);
    }
    cn_buf_appends(&b, "],\"modifiedIndex\":1,\"createdIndex\":1}}");
    respond_json(req, 200, &b);
    cn_buf_free(&b);
}

/* Answers the held long poll with the first registration at or after its waitIndex. */
static void wake_waiter(void)
{
    struct registry *r = &F.r;
    if (r->waiting == NULL) return;
    for (size_t i = 0; i < r->nregs; i++) {
        if (r->regs[i].index < r->wait_index) continue;
        struct cn_buf b = CN_BUF_INIT;
        cn_buf_appends(&b, "{\"action\":\"create\",\"node\":");
        node_json(&b, &r->regs[i]);
        cn_buf_appends(&b, "}");
        struct cn_http_req *req = r->waiting;
        r->waiting = NULL;
        req->on_abort = NULL;
        respond_json(req, 200, &b);
        cn_buf_free(&b);
        return;
    }
}

static void waiter_gone(struct cn_http_req *req, void *ctx)
{
    F.r.waiting = NULL;
}

static void copy_str(char *out, size_t len, struct cn_str s)
{
    snprintf(out, len, "%.*s", (int)s.len, s.p ? s.p : "");
}

static void registry(struct cn_http_req *req, void *ctx)
{
    struct registry *r = &F.r;
    struct cn_str path = req->path;
    if (cn_str_eqz(path, "/reg/_config/size") && req->method == CN_HTTP_GET) {
        r->nsize++;
        struct cn_buf b = CN_BUF_INIT;
        if (r->size_fail > 0) {
            r->size_fail--;
            cn_http_respond(req, 503, "text/plain", NULL, 0, "busy", 4, false);
        } else if (r->size == 0) {
            cn_buf_appendf(&b,
                           "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/_etcd/"
                           "registry/tok/_config\",\"index\":%" PRIu64 "}",
                           r->index);
            respond_json(req, 404, &b);
        } else {
            cn_buf_appendf(&b,
                           "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok/_config/"
                           "size\",\"value\":\"%" PRIu64
                           "\",\"modifiedIndex\":1,\"createdIndex\":1}}",
                           r->size);
            respond_json(req, 200, &b);
        }
        cn_buf_free(&b);
        return;
    }
    if (cn_str_eqz(path, "/reg") && req->method == CN_HTTP_GET) {
        if (req->query.len > 0) { /* ?wait=true&recursive=true&waitIndex=N */
            r->nwait++;
            copy_str(r->wait_query, sizeof(r->wait_query), req->query);
            const char *wi = strstr(r->wait_query, "waitIndex=");
            r->wait_index = wi ? strtoull(wi + 10, NULL, 10) : 0;
            r->waiting = req;
            req->on_abort = waiter_gone;
            wake_waiter();
            return;
        }
        r->nlist++;
        answer_list(req);
        return;
    }
    if (cn_str_has_prefix(path, S("/reg/")) && req->method == CN_HTTP_PUT) {
        r->nput++;
        copy_str(r->put_target, sizeof(r->put_target), req->url);
        struct cn_buf v = CN_BUF_INIT;
        assert_true(cn_str_has_prefix(req->body, S("value=")));
        assert_int_equal(cn_url_decode(&v, cn_str_make(req->body.p + 6, req->body.len - 6), true),
                         0);
        copy_str(r->put_value, sizeof(r->put_value), cn_buf_str(&v));
        cn_buf_free(&v);
        struct cn_buf b = CN_BUF_INIT;
        if (r->refuse_put) {
            cn_buf_appendf(&b,
                           "{\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":\"%.*s"
                           "\",\"index\":%" PRIu64 "}",
                           (int)path.len, path.p, r->index);
            respond_json(req, 412, &b);
        } else {
            uint64_t id = strtoull(r->put_target + 5, NULL, 16);
            reg_add(id, r->put_value);
            cn_buf_appends(&b, "{\"action\":\"create\",\"node\":");
            node_json(&b, &r->regs[r->nregs - 1]);
            cn_buf_appends(&b, "}");
            respond_json(req, 201, &b);
            wake_waiter();
        }
        cn_buf_free(&b);
        return;
    }
    cn_http_respond(req, 404, "text/plain", NULL, 0, "404 page not found\n", 19, false);
}

static void on_tick(uv_timer_t *t)
{
}

static void on_done(void *ctx, int err, const struct cn_discovery_peer *peers, size_t npeers)
{
    struct fx *f = ctx;
    f->done++;
    f->err = err;
    f->npeers = npeers;
    assert_true(npeers <= MAX_REGS);
    for (size_t i = 0; i < npeers; i++) {
        f->ids[i] = peers[i].id;
        snprintf(f->values[i], sizeof(f->values[i]), "%s", peers[i].value);
    }
}

static int setup(void **state)
{
    memset(&F, 0, sizeof(F));
    cn_log_level_max = CN_LOG_WARN; /* the protocol's notices are noise here */
    assert_int_equal(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.tick);
    uv_timer_start(&F.tick, on_tick, 5, 5); /* bounds each UV_RUN_ONCE */
    F.srv = cn_http_server_new(&F.loop, NULL, registry, NULL, &F);
    char err[256];
    assert_int_equal(cn_http_server_listen(F.srv, "127.0.0.1", 0, err, sizeof(err)), 0);
    F.port = cn_http_server_port(F.srv);
    F.cl = cn_http_client_new(&F.loop);
    snprintf(F.url, sizeof(F.url), "http://127.0.0.1:%u/reg/", (unsigned)F.port);
    return 0;
}

static void count_closed(void *ctx)
{
    F.closed++;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int teardown(void **state)
{
    if (F.r.waiting) { /* a held long poll would keep the server open */
        F.r.waiting->on_abort = NULL;
        cn_http_respond(F.r.waiting, 500, NULL, NULL, 0, "", 0, true);
        F.r.waiting = NULL;
    }
    cn_http_client_close(F.cl, count_closed, NULL);
    cn_http_server_close(F.srv, count_closed, NULL);
    RUN_UNTIL(F.closed == 2);
    uv_walk(&F.loop, close_walk, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    return 0;
}

#define SELF_ID  0xabc123ULL
#define SELF_REG "me=http://127.0.0.1:2380,me=http://[::1]:2380"

static struct cn_discovery *start(void)
{
    struct cn_discovery_opts o = {
        .url = F.url, .self_id = SELF_ID, .self_reg = SELF_REG, .name = "me"};
    return cn_discovery_start(&F.loop, F.cl, &o, on_done, &F);
}

static void client_registers_and_finds_all(void **state)
{
    F.r.size = 3;
    reg_add(0x11, "a=http://10.0.0.1:2380");
    reg_add(0x22, "b=http://10.0.0.2:2380");
    start();
    RUN_UNTIL(F.done == 1);
    assert_int_equal(F.err, CN_DISC_OK);
    /* size, the fullness check, the PUT, the listing that finds all three */
    assert_int_equal(F.r.nsize, 1);
    assert_int_equal(F.r.nlist, 2);
    assert_int_equal(F.r.nput, 1);
    assert_int_equal(F.r.nwait, 0);
    assert_string_equal(F.r.put_target, "/reg/abc123?prevExist=false");
    assert_string_equal(F.r.put_value, SELF_REG);
    assert_int_equal(F.npeers, 3);
    assert_true(F.ids[0] == 0x11 && F.ids[1] == 0x22 && F.ids[2] == SELF_ID);
    assert_string_equal(F.values[0], "a=http://10.0.0.1:2380");
    assert_string_equal(F.values[2], SELF_REG);
}

static void client_waits_for_the_last_member(void **state)
{
    F.r.size = 3;
    reg_add(0x11, "a=http://10.0.0.1:2380");
    start();
    RUN_UNTIL(F.r.waiting != NULL);
    /* registered (index 2), listed two of three: long poll from the index after the listing's */
    assert_int_equal(F.r.nput, 1);
    assert_int_equal(F.r.nregs, 2);
    assert_string_equal(F.r.wait_query, "wait=true&recursive=true&waitIndex=3");
    assert_int_equal(F.done, 0);
    reg_add(0x33, "c=http://10.0.0.3:2380"); /* the third member arrives */
    wake_waiter();
    RUN_UNTIL(F.done == 1);
    assert_int_equal(F.err, CN_DISC_OK);
    assert_int_equal(F.r.nwait, 1);
    assert_int_equal(F.npeers, 3);
    assert_true(F.ids[0] == 0x11 && F.ids[1] == SELF_ID && F.ids[2] == 0x33);
    assert_string_equal(F.values[2], "c=http://10.0.0.3:2380");
}

static void client_full_cluster_does_not_register(void **state)
{
    F.r.size = 2;
    reg_add(0x11, "a=http://10.0.0.1:2380");
    reg_add(0x22, "b=http://10.0.0.2:2380");
    start();
    RUN_UNTIL(F.done == 1);
    assert_int_equal(F.err, CN_DISC_FULL);
    assert_int_equal(F.r.nput, 0);
    /* the members are handed on (the caller may fall back to proxying to them) */
    assert_int_equal(F.npeers, 2);
    assert_true(F.ids[0] == 0x11 && F.ids[1] == 0x22);
}

static void client_duplicate_id(void **state)
{
    F.r.size = 3;
    F.r.refuse_put = true;
    start();
    RUN_UNTIL(F.done == 1);
    assert_int_equal(F.err, CN_DISC_DUP_ID);
    assert_int_equal(F.r.nput, 1);
    assert_int_equal(F.npeers, 0);
}

static void client_duplicate_name(void **state)
{
    F.r.size = 2;
    reg_add(0x11, "me=http://10.0.0.1:2380");
    start();
    RUN_UNTIL(F.done == 1);
    assert_int_equal(F.err, CN_DISC_DUP_NAME);
    assert_int_equal(F.npeers, 0);
}

static void client_size_not_found(void **state)
{
    start();
    RUN_UNTIL(F.done == 1);
    assert_int_equal(F.err, CN_DISC_SIZE_NOT_FOUND);
    assert_int_equal(F.r.nsize, 1);
    assert_int_equal(F.r.nlist + F.r.nput, 0);
}

static void client_retries_a_server_error(void **state)
{
    F.r.size = 1;
    F.r.size_fail = 1; /* one 503, then the answer after the first backoff (250 ms) */
    uv_update_time(&F.loop);
    uint64_t t0 = uv_now(&F.loop);
    start();
    RUN_UNTIL(F.done == 1);
    assert_true(uv_now(&F.loop) - t0 >= 250);
    assert_int_equal(F.err, CN_DISC_OK);
    assert_int_equal(F.r.nsize, 2);
    assert_int_equal(F.npeers, 1);
    assert_true(F.ids[0] == SELF_ID);
}

static void client_bad_endpoint(void **state)
{
    snprintf(F.url, sizeof(F.url), "http://127.0.0.1:%u/elsewhere", (unsigned)F.port);
    start();
    RUN_UNTIL(F.done == 1);
    /* a server that is no registry: its 404 is not JSON */
    assert_int_equal(F.err, CN_DISC_BAD_ENDPOINT);
    assert_int_equal(F.r.nsize + F.r.nlist + F.r.nput, 0);
}

static void client_cancel(void **state)
{
    F.r.size = 3;
    struct cn_discovery *d = start();
    RUN_UNTIL(F.r.waiting != NULL);
    cn_discovery_cancel(d);
    /* the long poll's connection is gone: answering it ends that connection, and the client,
     * canceled, neither calls back nor lists again */
    reg_add(0x33, "c=http://10.0.0.3:2380");
    wake_waiter();
    RUN_UNTIL(cn_http_server_conn_count(F.srv) == 0);
    assert_int_equal(F.done, 0);
    assert_int_equal(F.r.nlist, 2);
    assert_int_equal(F.r.nwait, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(size_key),
        cmocka_unit_test(register_answers),
        cmocka_unit_test(listing_in_created_order),
        cmocka_unit_test(listing_odd_nodes),
        cmocka_unit_test(listing_caps_at_max),
        cmocka_unit_test(listing_errors),
        cmocka_unit_test(verdict_before_registering),
        cmocka_unit_test(verdict_after_registering),
        cmocka_unit_test(verdict_duplicate_names),
        cmocka_unit_test(error_messages),
        cmocka_unit_test_setup_teardown(client_registers_and_finds_all, setup, teardown),
        cmocka_unit_test_setup_teardown(client_waits_for_the_last_member, setup, teardown),
        cmocka_unit_test_setup_teardown(client_full_cluster_does_not_register, setup, teardown),
        cmocka_unit_test_setup_teardown(client_duplicate_id, setup, teardown),
        cmocka_unit_test_setup_teardown(client_duplicate_name, setup, teardown),
        cmocka_unit_test_setup_teardown(client_size_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(client_retries_a_server_error, setup, teardown),
        cmocka_unit_test_setup_teardown(client_bad_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(client_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
