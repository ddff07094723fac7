/* test_cli: the pure parts of cairnctl (src/cli): Go-style flag parsing and urfave's argument
 * reordering, durations, URL paths and query encoding, and the json output encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "cli/cli.h"
#include "common/alloc.h"

static const struct cn_cli_flag flags[] = {
    {"ttl", CN_CLI_INT, "0", "--ttl value", "key time-to-live in seconds (default: 0)"},
    {"recursive, r", CN_CLI_BOOL, NULL, "--recursive, -r", "recursive"},
    {"with-value", CN_CLI_STRING, NULL, "--with-value value", "previous value"},
    {"timeout", CN_CLI_DURATION, "2s", "--timeout value", "timeout"},
};
#define NF (sizeof(flags) / sizeof(flags[0]))

static void test_parse_forms(void **state)
{
    (void)state;
    char *argv[] = {"-ttl=5", "--recursive", "-with-value", "x", "--timeout", "1m30s", "key", "-r"};
    struct cn_cli_flagval v[NF];
    int rest = -1;
    struct cn_buf err = CN_BUF_INIT;
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 8, argv, &rest, &err), CN_CLI_PARSE_OK);
    assert_int_equal(rest, 6); /* stops at the first positional argument */
    assert_int_equal(v[0].i, 5);
    assert_true(v[1].b);
    assert_string_equal(v[2].s, "x");
    assert_int_equal(v[3].i, 90LL * 1000000000LL);
    cn_buf_free(&err);
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct cn_cli_flagval v[NF];
    int rest;
    struct cn_buf err = CN_BUF_INIT;
    char *a1[] = {"--ttl=abc"};
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 1, a1, &rest, &err), CN_CLI_PARSE_ERR);
    assert_string_equal(err.p, "invalid value \"abc\" for flag -ttl: parse error");
    cn_buf_reset(&err);
    char *a2[] = {"--bogus"};
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 1, a2, &rest, &err), CN_CLI_PARSE_ERR);
    assert_string_equal(err.p, "flag provided but not defined: -bogus");
    cn_buf_reset(&err);
    char *a3[] = {"--ttl"};
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 1, a3, &rest, &err), CN_CLI_PARSE_ERR);
    assert_string_equal(err.p, "flag needs an argument: -ttl");
    cn_buf_reset(&err);
    char *a4[] = {"-r=maybe"};
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 1, a4, &rest, &err), CN_CLI_PARSE_ERR);
    assert_string_equal(err.p, "invalid boolean value \"maybe\" for -r: parse error");
    cn_buf_reset(&err);
    char *a5[] = {"-h"};
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 1, a5, &rest, &err), CN_CLI_PARSE_HELP);
    char *a6[] = {"--", "-x"};
    assert_int_equal(cn_cli_flags_parse(flags, NF, v, 2, a6, &rest, &err), CN_CLI_PARSE_OK);
    assert_int_equal(rest, 1); /* the terminator is consumed */
    cn_buf_free(&err);
}

static void test_reorder(void **state)
{
    (void)state;
    /* urfave moves the command's flags (and a following value) first; "--" stops it */
    char *in[] = {"/a", "--ttl", "60", "v", "--recursive", "/b", "--", "--ttl"};
    char *out[8];
    cn_cli_reorder_args(flags, NF, 8, in, out);
    const char *want[] = {"--ttl", "60", "--recursive", "/b", "--", "/a", "v", "--ttl"};
    for (int i = 0; i < 8; i++)
        assert_string_equal(out[i], want[i]);
    char *in2[] = {"/w2", "sh", "-c", "echo"}; /* -c is not ours: stays */
    char *out2[4];
    cn_cli_reorder_args(flags, NF, 4, in2, out2);
    for (int i = 0; i < 4; i++)
        assert_string_equal(out2[i], in2[i]);
}

static void test_duration(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(cn_cli_parse_duration("2s", &ns), 0);
    assert_int_equal(ns, 2000000000LL);
    assert_int_equal(cn_cli_parse_duration("1.5ms", &ns), 0);
    assert_int_equal(ns, 1500000LL);
    assert_int_equal(cn_cli_parse_duration("1h2m", &ns), 0);
    assert_int_equal(ns, 3720LL * 1000000000LL);
    assert_int_equal(cn_cli_parse_duration("0", &ns), 0);
    assert_int_equal(ns, 0);
    assert_int_equal(cn_cli_parse_duration("5", &ns), -1);
    assert_int_equal(cn_cli_parse_duration("x", &ns), -1);
    int64_t i;
    assert_int_equal(cn_cli_parse_int("0x10", &i), 0);
    assert_int_equal(i, 16);
    assert_int_equal(cn_cli_parse_int("12a", &i), -1);
    assert_int_equal(cn_cli_parse_int("99999999999999999999", &i), -2);
}

static void check_keys_path(const char *key, const char *want)
{
    struct cn_cli_action a;
    cn_cli_action_init(&a, "GET");
    cn_cli_keys_path(&a, key);
    assert_string_equal(a.path.p, want);
    cn_cli_action_free(&a);
}

static void test_paths(void **state)
{
    (void)state;
    check_keys_path("/", "/v2/keys/");
    check_keys_path("foo", "/v2/keys/foo");
    check_keys_path("/a//b/../c/", "/v2/keys/a/c/");
    check_keys_path("/../..", "/");
    /* Go's encodePath: $&+,:;=@ stay, space and ? are escaped */
    check_keys_path("/k e$&+,:;=@?y", "/v2/keys/k%20e$&+,:;=@%3Fy");
    struct cn_buf q = CN_BUF_INIT;
    cn_cli_query_add(&q, "ttl", "50", 2);
    cn_cli_query_add(&q, "value", "v a&l=ue", 8);
    assert_string_equal(q.p, "ttl=50&value=v+a%26l%3Due");
    cn_buf_reset(&q);
    cn_cli_go_quote(&q, "{\"a\":\"b\\\"}\n", 11);
    assert_string_equal(q.p, "\"{\\\"a\\\":\\\"b\\\\\\\"}\\n\"");
    cn_buf_free(&q);
}

static void test_resp_json(void **state)
{
    (void)state;
    const char *body =
        "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":[{\"key\":"
        "\"/d/x\",\"value\":\"<&>\",\"modifiedIndex\":3,\"createdIndex\":3}],"
        "\"modifiedIndex\":2,\"createdIndex\":2,\"ttl\":5,\"expiration\":\"2026-"
        "01-01T00:00:00Z\"}}";
    json_error_t jerr;
    struct cn_cli_keys_resp r = {0};
    r.root = json_loads(body, 0, &jerr);
    assert_non_null(r.root);
    r.node = json_object_get(r.root, "node");
    r.action = "get";
    struct cn_buf out = CN_BUF_INIT;
    cn_cli_resp_json(&out, &r);
    assert_string_equal(out.p,
                        "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"value\":\"\","
                        "\"nodes\":[{\"key\":\"/d/x\",\"value\":\"\\u003c\\u0026\\u003e\","
                        "\"nodes\":null,\"createdIndex\":3,\"modifiedIndex\":3}],"
                        "\"createdIndex\":2,\"modifiedIndex\":2,\"expiration\":\"2026-01-01T00:00:"
                        "00Z\",\"ttl\":5},\"prevNode\":null}");
    cn_buf_free(&out);
    json_decref(r.root);
}

static void test_basic_auth(void **state)
{
    (void)state;
    struct cn_cli cli;
    memset(&cli, 0, sizeof(cli));
    cn_cli_set_user(&cli, "root:pa ss");
    assert_string_equal(cli.auth, "Basic cm9vdDpwYSBzcw==");
    cn_cli_set_user(&cli, "ab:");
    assert_string_equal(cli.auth, "Basic YWI6");
    cn_free(cli.auth);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_reorder),     cmocka_unit_test(test_duration),
        cmocka_unit_test(test_paths),       cmocka_unit_test(test_resp_json),
        cmocka_unit_test(test_basic_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
