/* Unit tests for src/common: JSON escaping as Go does it, time formats, buffers, URL helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "common/parse.h"
#include "common/url.h"

static void json_escapes_like_go(void **state)
{
    struct cn_buf b = CN_BUF_INIT;
    const char in[] = "a\"b\\c\n<>&\x01\xff\xe2\x80\xa8z";
    cn_json_str(&b, in, sizeof(in) - 1);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u003c\\u003e\\u0026\\u0001\\ufffd\\u2028z\"");
    cn_buf_reset(&b);
    cn_json_str(&b, "h\xc3\xa9llo", 6);
    assert_string_equal(b.p, "\"h\xc3\xa9llo\"");
    cn_buf_free(&b);
}

/* The 8-bytes-at-a-time scan must find a special byte at every position of a long clean run. */
static void json_escape_every_position(void **state)
{
    const char specials[] = {'"', '\\', '<', '>', '&', '\n', 0x01, 0x1f, (char)0xff};
    const char *want[] = {"\\\"", "\\\\",    "\\u003c", "\\u003e", "\\u0026",
                          "\\n",  "\\u0001", "\\u001f", "\\ufffd"};
    for (size_t k = 0; k < sizeof(specials); k++) {
        for (size_t pos = 0; pos < 40; pos++) {
            char in[41];
            memset(in, 'a', 40);
            in[pos] = specials[k];
            struct cn_buf b = CN_BUF_INIT, exp = CN_BUF_INIT;
            cn_json_str(&b, in, 40);
            cn_buf_putc(&exp, '"');
            cn_buf_append(&exp, in, pos);
            cn_buf_appends(&exp, want[k]);
            cn_buf_append(&exp, in + pos + 1, 40 - pos - 1);
            cn_buf_putc(&exp, '"');
            assert_string_equal(b.p, exp.p);
            cn_buf_free(&b);
            cn_buf_free(&exp);
        }
    }
    /* 0x7f and plain high-ASCII-free text pass through; valid UTF-8 stays as is. */
    struct cn_buf b = CN_BUF_INIT;
    const char *plain = "0123456789abcdef\x7f ~}{[]|`^_=+-*/%$#@!";
    cn_json_str(&b, plain, strlen(plain));
    assert_string_equal(b.p, "\"0123456789abcdef\x7f ~}{[]|`^_=+-*/%$#@!\"");
    cn_buf_reset(&b);
    cn_json_str(&b, "abcdefgh\xc3\xa9ijklmnop", 18);
    assert_string_equal(b.p, "\"abcdefgh\xc3\xa9ijklmnop\"");
    cn_buf_free(&b);
}

static void json_float_shortest(void **state)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_json_float(&b, 0.001896);
    assert_string_equal(b.p, "0.001896");
    cn_buf_reset(&b);
    cn_json_float(&b, 3);
    assert_string_equal(b.p, "3");
    cn_buf_free(&b);
}

static void time_formats(void **state)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_time_rfc3339nano(&b, 1795312624304866486LL);
    assert_string_equal(b.p, "2026-11-22T01:57:04.304866486Z");
    cn_buf_reset(&b);
    cn_time_rfc3339nano(&b, 1795312624300000000LL);
    assert_string_equal(b.p, "2026-11-22T01:57:04.3Z");
    cn_buf_reset(&b);
    cn_duration_go(&b, 3244038535LL);
    assert_string_equal(b.p, "3.244038535s");
    cn_buf_reset(&b);
    cn_duration_go(&b, 659322358947LL);
    assert_string_equal(b.p, "10m59.322358947s");
    cn_buf_reset(&b);
    cn_duration_go(&b, 3600LL * CN_NS_PER_S);
    assert_string_equal(b.p, "1h0m0s");
    cn_buf_reset(&b);
    cn_duration_go(&b, 1500000);
    assert_string_equal(b.p, "1.5ms");
    cn_buf_free(&b);
}

static void binary_roundtrip(void **state)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_put_u8(&b, 7);
    cn_buf_put_u32(&b, 0xdeadbeef);
    cn_buf_put_u64(&b, 0x0102030405060708ULL);
    cn_buf_put_uvarint(&b, 300);
    cn_buf_put_bytes(&b, "xyz", 3);
    struct cn_rd r;
    cn_rd_init(&r, b.p, b.len);
    assert_int_equal(cn_rd_u8(&r), 7);
    assert_int_equal(cn_rd_u32(&r), 0xdeadbeef);
    assert_true(cn_rd_u64(&r) == 0x0102030405060708ULL);
    assert_int_equal(cn_rd_uvarint(&r), 300);
    struct cn_str s = cn_rd_bytes(&r);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.p, "xyz", 3);
    assert_true(cn_rd_ok(&r));
    assert_int_equal(cn_rd_u8(&r), 0);
    assert_false(cn_rd_ok(&r));
    /* A length prefix larger than what is left fails instead of over-reading. */
    cn_buf_reset(&b);
    cn_buf_put_uvarint(&b, 1000000);
    cn_rd_init(&r, b.p, b.len);
    s = cn_rd_bytes(&r);
    assert_false(cn_rd_ok(&r));
    assert_null(s.p);
    cn_buf_free(&b);
    /* cn_uvarint_len says what cn_buf_put_uvarint writes */
    static const uint64_t vs[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        cn_buf_reset(&b);
        cn_buf_put_uvarint(&b, vs[i]);
        assert_int_equal(cn_uvarint_len(vs[i]), b.len);
    }
    cn_buf_free(&b);
    /* an exact reservation keeps no slack (one byte for the NUL), and is not shrunk */
    cn_buf_append(&b, "ab", 2);
    cn_buf_reserve_exact(&b, 300);
    assert_int_equal(b.cap, 303);
    cn_buf_reserve_exact(&b, 10);
    assert_int_equal(b.cap, 303);
    cn_buf_free(&b);
}

static void url_decode_and_parse(void **state)
{
    struct cn_buf b = CN_BUF_INIT;
    assert_int_equal(cn_url_decode(&b, CN_STR("a%20b+c%2F"), true), 0);
    assert_string_equal(b.p, "a b c/");
    cn_buf_reset(&b);
    cn_buf_reset(&b);
    assert_int_equal(cn_url_decode(&b, CN_STR("%41%42plain+tail+"), true), 0);
    assert_string_equal(b.p, "ABplain tail ");
    cn_buf_reset(&b);
    assert_int_equal(cn_url_decode(&b, CN_STR("a+b%2b"), false), 0); /* paths keep '+' */
    assert_string_equal(b.p, "a+b+");
    assert_int_equal(cn_url_decode(&b, CN_STR("a%2"), false), CN_ERR_PARSE);
    assert_int_equal(cn_url_decode(&b, CN_STR("%"), false), CN_ERR_PARSE);
    assert_int_equal(cn_url_decode(&b, CN_STR("%zz"), false), CN_ERR_PARSE);
    cn_buf_free(&b);
    /* checked and measured first, then decoded in place: the same bytes */
    size_t n = 0;
    assert_int_equal(cn_url_decoded_len(CN_STR("a%20b+c%2F"), &n), 0);
    assert_int_equal(n, 6);
    char dst[6];
    cn_url_decode_to(dst, CN_STR("a%20b+c%2F"), true);
    assert_memory_equal(dst, "a b c/", 6);
    cn_url_decode_to(dst, CN_STR("a+%2b"), false);
    assert_memory_equal(dst, "a++", 3);
    assert_int_equal(cn_url_decoded_len(CN_STR("plain"), &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(cn_url_decoded_len(CN_STR("a%2"), &n), CN_ERR_PARSE);
    assert_int_equal(cn_url_decoded_len(CN_STR("%"), &n), CN_ERR_PARSE);
    assert_int_equal(cn_url_decoded_len(CN_STR("%zz"), &n), CN_ERR_PARSE);
    assert_int_equal(cn_url_decoded_len(CN_STR("ok%4"), &n), CN_ERR_PARSE);

    struct cn_url u;
    char err[256];
    assert_int_equal(cn_url_parse("http://127.0.0.1:2379", &u, err, sizeof(err)), 0);
    assert_string_equal(u.scheme, "http");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 2379);
    assert_int_equal(cn_url_parse("https://[::1]:4001", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_false(u.has_path);
    assert_int_equal(cn_url_parse("http://a:1/", &u, err, sizeof(err)), 0);
    assert_true(u.has_path);
    assert_int_equal(cn_url_parse("http://localhost", &u, err, sizeof(err)), CN_ERR_PARSE);
    assert_string_equal(err, "URL address does not have the form \"host:port\": http://localhost");
    assert_int_equal(cn_url_parse("ftp://a:1", &u, err, sizeof(err)), CN_ERR_PARSE);
    assert_string_equal(err, "URL scheme must be http or https: ftp://a:1");
}

/* Go's strconv: the spellings etcd's flags and query parameters accept, and nothing else. */
static void go_bool_and_uint(void **state)
{
    bool b = false;
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (int i = 0; i < 6; i++) {
        assert_true(cn_parse_bool(cn_str_c(yes[i]), &b) && b);
        assert_true(cn_parse_bool(cn_str_c(no[i]), &b) && !b);
    }
    assert_false(cn_parse_bool(CN_STR(""), &b));
    assert_false(cn_parse_bool(CN_STR("yes"), &b));
    assert_false(cn_parse_bool(CN_STR("tRUE"), &b));
    uint64_t u = 0;
    assert_true(cn_parse_u64(CN_STR("18446744073709551615"), &u) && u == UINT64_MAX);
    assert_false(cn_parse_u64(CN_STR("18446744073709551616"), &u));
    assert_false(cn_parse_u64(CN_STR(""), &u));
    assert_false(cn_parse_u64(CN_STR("-1"), &u));
    assert_false(cn_parse_u64(CN_STR("+1"), &u));
    assert_false(cn_parse_u64(CN_STR(" 1"), &u));
    assert_false(cn_parse_u64(CN_STR("1a"), &u));
    assert_true(cn_parse_u64(CN_STR("007"), &u) && u == 7);
    /* strconv.ParseUint takes any number of leading zeros (prevIndex=000...042 works on etcd) */
    assert_true(cn_parse_u64(CN_STR("000000000000000000000042"), &u) && u == 42);
    assert_true(cn_parse_u64(CN_STR("0000000000000000000000000"), &u) && u == 0);
    assert_false(cn_parse_u64(CN_STR("0000000000000000000000018446744073709551616"), &u));
    char tmp[24];
    assert_int_equal(cn_u64_to_str(tmp, 0), 1);
    assert_string_equal(tmp, "0");
}

static void strerror_both_kinds(void **state)
{
    assert_string_equal(cn_strerror(CN_ERR_CORRUPT), "data corrupt");
    assert_string_equal(cn_strerror(-2), "No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_escapes_like_go), cmocka_unit_test(json_escape_every_position),
        cmocka_unit_test(json_float_shortest),  cmocka_unit_test(time_formats),
        cmocka_unit_test(binary_roundtrip),     cmocka_unit_test(url_decode_and_parse),
        cmocka_unit_test(strerror_both_kinds),  cmocka_unit_test(go_bool_and_uint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
