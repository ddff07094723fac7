/* Unit tests for src/api/v2's pure parts: the error table (codes, texts, statuses, the body),
 * the route table, the node's failure texts, and the keys API's parameter decoding with Go's
 * url.Values rules. The handlers themselves run against real processes in tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/v2/api_int.h"
#include "api/v2/params.h"
#include "common/err.h"

static void error_table(void **state)
{
    (void)state;
    /* the statuses clients branch on (etcd error/error.go) */
    assert_int_equal(cn_api__status_of(CN_V2_KEY_NOT_FOUND), 404);
    assert_int_equal(cn_api__status_of(CN_V2_TEST_FAILED), 412);
    assert_int_equal(cn_api__status_of(CN_V2_NOT_FILE), 403);
    assert_int_equal(cn_api__status_of(CN_V2_NODE_EXIST), 412);
    assert_int_equal(cn_api__status_of(CN_V2_DIR_NOT_EMPTY), 403);
    assert_int_equal(cn_api__status_of(CN_V2_UNAUTHORIZED), 401);
    assert_int_equal(cn_api__status_of(CN_V2_INVALID_FORM), 400);
    assert_int_equal(cn_api__status_of(CN_V2_RAFT_INTERNAL), 500);
    assert_int_equal(cn_api__status_of(CN_V2_EVENT_INDEX_CLEARED), 400);
    assert_int_equal(cn_api__status_of(999), 500);
    assert_int_equal(CN_V2_LEADER_ELECT, 301);
    assert_int_equal(CN_V2_CLIENT_INTERNAL, 500);

    struct cn_buf b = CN_BUF_INIT;
    cn_api__error_body(&b, CN_V2_KEY_NOT_FOUND, "/a<b>", 12);
    cn_buf_putc(&b, '\0');
    assert_string_equal(b.p, "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":"
                             "\"/a\\u003cb\\u003e\",\"index\":12}\n");
    cn_buf_reset(&b);
    cn_api__error_body(&b, CN_V2_RAFT_INTERNAL, "", 0); /* no cause: no field, as etcd */
    cn_buf_putc(&b, '\0');
    assert_string_equal(b.p,
                        "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"index\":0}\n");
    cn_buf_free(&b);

    assert_string_equal(cn_api__node_cause(CN_ERR_TIMEOUT), "etcdserver: request timed out");
    assert_string_equal(cn_api__node_cause(CN_ERR_NO_LEADER), "etcdserver: no leader");
    assert_string_equal(cn_api__node_cause(CN_ERR_STOPPED), "etcdserver: server stopped");
    assert_null(cn_api__node_cause(CN_ERR_CORRUPT));
}

static void routes(void **state)
{
    (void)state;
    struct cn_str rest;
    const struct cn_api__route *r = cn_api__find_route(cn_str_c("/v2/keys/a/b"), &rest);
    assert_non_null(r);
    assert_string_equal(r->path, "/v2/keys");
    assert_true(cn_str_eqz(rest, "/a/b"));
    assert_string_equal(r->allow, "HEAD,GET,PUT,POST,DELETE");
    assert_true(r->methods & (1u << CN_HTTP_PUT));
    assert_false(r->methods & (1u << CN_HTTP_OPTIONS));
    r = cn_api__find_route(cn_str_c("/v2/keys"), &rest);
    assert_true(r && rest.len == 0);
    assert_null(cn_api__find_route(cn_str_c("/v2/keysx"), &rest)); /* not under /v2/keys/ */
    r = cn_api__find_route(cn_str_c("/v2/members/leader"), &rest);
    assert_true(r && cn_str_eqz(rest, "/leader"));
    assert_string_equal(r->allow, "GET,POST,DELETE,PUT");
    r = cn_api__find_route(cn_str_c("/metrics"), &rest);
    assert_true(r && (r->methods & (1u << CN_HTTP_HEAD)));
    assert_string_equal(r->allow, "GET,HEAD"); /* what it takes is what the 405 says */
    assert_non_null(cn_api__find_route(cn_str_c("/v2/stats/leader"), &rest));
    assert_null(cn_api__find_route(cn_str_c("/v2/stats/other"), &rest));
    assert_null(cn_api__find_route(cn_str_c("/version/x"), &rest)); /* exact routes are exact */
    assert_null(cn_api__find_route(cn_str_c("/"), &rest));
}

static void params_go_rules(void **state)
{
    (void)state;
    struct cn_params p;
    cn_params_init(&p);
    char err[256];
    /* the first occurrence wins; presence differs from emptiness; escapes decode */
    assert_int_equal(cn_params_parse(&p, cn_str_c("value=a%20b&value=c&prevValue=&ttl=5+"), false,
                                     err, sizeof(err)),
                     0);
    assert_true(p.present[CN_P_VALUE] && cn_str_eqz(p.val[CN_P_VALUE], "a b"));
    assert_true(p.present[CN_P_PREV_VALUE] && p.val[CN_P_PREV_VALUE].len == 0);
    assert_true(cn_str_eqz(p.val[CN_P_TTL], "5 "));
    assert_false(p.present[CN_P_DIR]);
    /* the body wins over the query */
    assert_int_equal(
        cn_params_parse(&p, cn_str_c("value=fromBody&dir=true"), true, err, sizeof(err)), 0);
    assert_true(cn_str_eqz(p.val[CN_P_VALUE], "fromBody") && p.from_body[CN_P_VALUE]);
    assert_true(cn_str_eqz(p.val[CN_P_DIR], "true"));
    cn_params_free(&p);
    /* a bad escape is Go's error, reported as etcd's 210 by the caller */
    cn_params_init(&p);
    assert_int_equal(cn_params_parse(&p, cn_str_c("value=%zz"), false, err, sizeof(err)),
                     CN_ERR_PARSE);
    assert_true(strlen(err) > 0);
    cn_params_free(&p);
}

/* Values are decoded only when they must be: a plain one is the request's own bytes, an escaped
 * one is decoded once, and a lazy one (value=, for the keys API) is left for the caller to decode
 * into the command, its escapes checked all the same. */
static void params_copy_nothing_needless(void **state)
{
    (void)state;
    struct cn_params p;
    cn_params_init(&p);
    p.lazy = 1u << CN_P_VALUE;
    char err[256];
    struct cn_str q = cn_str_c("ttl=5&prevValue=a+b;%64ir=true");
    assert_int_equal(cn_params_parse(&p, q, false, err, sizeof(err)), 0);
    assert_ptr_equal(p.val[CN_P_TTL].p, q.p + 4);           /* borrowed */
    assert_true(cn_str_eqz(p.val[CN_P_PREV_VALUE], "a b")); /* decoded into the store */
    assert_true(p.present[CN_P_DIR] && cn_str_eqz(p.val[CN_P_DIR], "true")); /* an escaped name */
    struct cn_str plain = cn_str_c("value=plain");
    assert_int_equal(cn_params_parse(&p, plain, true, err, sizeof(err)), 0);
    assert_ptr_equal(p.val[CN_P_VALUE].p, plain.p + 6); /* lazy but plain: borrowed */
    cn_params_free(&p);

    cn_params_init(&p);
    p.lazy = 1u << CN_P_VALUE;
    struct cn_str body = cn_str_c("value=%7B%22a%22%3A+1%7D&dir=false");
    assert_int_equal(cn_params_parse(&p, body, true, err, sizeof(err)), 0);
    assert_null(p.val[CN_P_VALUE].p);
    assert_int_equal(p.val[CN_P_VALUE].len, 8); /* {"a": 1} */
    assert_int_equal(p.store.len, 0);           /* nothing decoded yet */
    char dst[8];
    cn_params_decode(&p, CN_P_VALUE, dst);
    assert_memory_equal(dst, "{\"a\": 1}", 8);
    cn_params_free(&p);
    /* a lazy value's bad escape fails the parse as any other */
    cn_params_init(&p);
    p.lazy = 1u << CN_P_VALUE;
    assert_int_equal(cn_params_parse(&p, cn_str_c("value=ok%2"), true, err, sizeof(err)),
                     CN_ERR_PARSE);
    assert_string_equal(err, "invalid URL escape \"ok%2\"");
    assert_int_equal(cn_params_parse(&p, cn_str_c("%zz=1"), true, err, sizeof(err)), CN_ERR_PARSE);
    cn_params_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_table),
        cmocka_unit_test(routes),
        cmocka_unit_test(params_go_rules),
        cmocka_unit_test(params_copy_nothing_needless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
