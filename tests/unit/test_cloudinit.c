/* Unit tests for src/cloudinit: the Go-compatible decoders and formatters, scalar typing, line
 * numbers, substitution, renderers and root confinement, each checked on concrete values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cloudinit/cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"

static char *b64(const char *in, int *rc)
{
    struct cn_buf b = CN_BUF_INIT;
    *rc = cn_cloudinit_base64_decode(in, strlen(in), &b);
    return cn_buf_steal(&b, NULL);
}

static void test_base64(void **state)
{
    (void)state;
    int rc;
    char *s = b64("aGVsbG8=", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "hello");
    cn_free(s);
    s = b64("aGVs\r\nbG8h", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "hello!");
    cn_free(s);
    cn_free(b64("aGVsbG8", &rc)); /* padding required */
    assert_int_equal(rc, CN_ERR_PARSE);
    cn_free(b64("aG Vs", &rc));
    assert_int_equal(rc, CN_ERR_PARSE);
    cn_free(b64("aGVsbG8=aGVs", &rc)); /* data after padding */
    assert_int_equal(rc, CN_ERR_PARSE);
    cn_free(b64("a===", &rc));
    assert_int_equal(rc, CN_ERR_PARSE);
    s = b64("", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "");
    cn_free(s);
}

static void test_gzip(void **state)
{
    (void)state;
    /* gzip of "hi\n" (mtime 0) */
    static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x02, 0xff, 0xcb, 0xc8, 0xe4, 0x02, 0x00, 0x7a,
                                       0x7a, 0x6f, 0xed, 0x03, 0x00, 0x00, 0x00};
    struct cn_buf b = CN_BUF_INIT;
    assert_int_equal(cn_cloudinit_gzip_decode((const char *)gz, sizeof(gz), 1024, &b), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.p, "hi\n", 3);
    cn_buf_reset(&b);
    /* A truncated body keeps what was inflated; a bad header is an error. */
    assert_int_equal(cn_cloudinit_gzip_decode((const char *)gz, 14, 1024, &b), 0);
    cn_buf_reset(&b);
    assert_int_equal(cn_cloudinit_gzip_decode("\x1f\x8b\x09", 3, 1024, &b), CN_ERR_PARSE);
    assert_int_equal(cn_cloudinit_gzip_decode("plain", 5, 1024, &b), CN_ERR_PARSE);
    cn_buf_free(&b);
}

static void test_decode_content(void **state)
{
    (void)state;
    struct cn_buf b = CN_BUF_INIT;
    assert_int_equal(cn_cloudinit_decode_content("x", 1, "rot13", 5, &b), CN_ERR_INVAL);
    assert_int_equal(cn_cloudinit_decode_content("aGk=", 4, "base64", 6, &b), 0);
    assert_string_equal(b.p, "hi");
    cn_buf_reset(&b);
    assert_int_equal(cn_cloudinit_decode_content("aGk=", 4, "", 0, &b), 0);
    assert_string_equal(b.p, "aGk=");
    cn_buf_free(&b);
}

static void check_quote(const char *in, size_t len, const char *want)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_cloudinit_quote(&b, in, len);
    assert_string_equal(b.p, want);
    cn_buf_free(&b);
}

static void test_quote(void **state)
{
    (void)state;
    check_quote("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_quote("t\tn\n", 4, "\"t\\tn\\n\"");
    check_quote("\x01\x7f", 2, "\"\\x01\\x7f\"");
    check_quote("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");
    check_quote("\xff", 1, "\"\\xff\"");
    check_quote("", 0, "\"\"");
}

static void check_clean(const char *in, const char *want)
{
    char *c = cn_cloudinit_path_clean(in, strlen(in));
    assert_string_equal(c, want);
    cn_free(c);
}

static void test_path_clean(void **state)
{
    (void)state;
    check_clean("", ".");
    check_clean("/", "/");
    check_clean("/../a/./b//c/..", "/a/b");
    check_clean("a/../../b", "../b");
    check_clean("etc/environment", "etc/environment");
    check_clean("/etc/../etc/environment", "/etc/environment");
    char *d = cn_cloudinit_path_dir("/usrlocal/x", 11);
    assert_string_equal(d, "/usrlocal");
    cn_free(d);
    d = cn_cloudinit_path_dir("x", 1);
    assert_string_equal(d, ".");
    cn_free(d);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(cn_cloudinit_classify("", 0), CI_EMPTY);
    assert_int_equal(cn_cloudinit_classify("#!/bin/sh\n", 10), CI_SCRIPT);
    assert_int_equal(cn_cloudinit_classify("#cloud-config\t \r\nx: 1", 20), CI_CLOUD_CONFIG);
    assert_int_equal(cn_cloudinit_classify("#cloud-config:\n", 15), CI_UNKNOWN);
    assert_int_equal(cn_cloudinit_classify(" #cloud-config\n", 15), CI_UNKNOWN);
    const char *ign = "{\"ignition\":{\"version\":\"2.0.0\"}}";
    assert_int_equal(cn_cloudinit_classify(ign, strlen(ign)), CI_IGNITION);
    const char *ign1 = "{\"IgnitionVersion\": 1}";
    assert_int_equal(cn_cloudinit_classify(ign1, strlen(ign1)), CI_IGNITION);
    const char *notign = "{\"ignitionVersion\": \"1\"}"; /* a string: Go's decode fails */
    assert_int_equal(cn_cloudinit_classify(notign, strlen(notign)), CI_UNKNOWN);
    const char *nullv = "{\"ignition\":{\"version\":null}}";
    assert_int_equal(cn_cloudinit_classify(nullv, strlen(nullv)), CI_UNKNOWN);
}

static char *subst(const char *in, const char *priv, const char *pub)
{
    struct ci_subst s = {pub, priv, NULL, NULL};
    struct cn_buf b = CN_BUF_INIT;
    cn_cloudinit_substitute(in, strlen(in), &s, &b);
    return cn_buf_steal(&b, NULL);
}

static void test_substitute(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"$private_ipv4", "10.0.0.4"},
        {"$private_ipv4$private_ipv4", "10.0.0.4$private_ipv4"},
        {"x$private_ipv4x", "x10.0.0.4x"},
        {"\\$private_ipv4", "$private_ipv4"},
        {"\\\\$private_ipv4", "\\$private_ipv4"},
        {"${private_ipv4} $hostname %H", "${private_ipv4} $hostname %H"},
        {"http://$public_ipv4:2379", "http://:2379"},
        {"a $private_ipv6 b", "a  b"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = subst(cases[i].in, "10.0.0.4", NULL);
        assert_string_equal(s, cases[i].want);
        cn_free(s);
    }
}

static struct ci_node *parse(const char *text)
{
    struct ci_node *n = NULL;
    struct ci_yaml_error e;
    assert_int_equal(cn_cloudinit_yaml_parse(text, strlen(text), &n, &e), 0);
    assert_non_null(n);
    return n;
}

static void test_scalar_typing(void **state)
{
    (void)state;
    struct ci_node *n = parse("a: 0644\nb: off\nc: '0644'\nd: 0x1F\ne: 1_000\nf: 08\ng: .5\n"
                              "h: ~\ni: -.inf\nj: 0b101\nk: 1e3\nl: yes\nm: 9223372036854775808\n"
                              "n: +12\no: abc\np:\n");
    struct {
        const char *key;
        enum ci_kind kind;
    } want[] = {{"a", CI_INT},   {"b", CI_BOOL},  {"c", CI_STR},   {"d", CI_INT},
                {"e", CI_INT},   {"f", CI_FLOAT}, {"g", CI_FLOAT}, {"h", CI_NULL},
                {"i", CI_FLOAT}, {"j", CI_INT},   {"k", CI_FLOAT}, {"l", CI_BOOL},
                {"m", CI_FLOAT}, {"n", CI_INT},   {"o", CI_STR},   {"p", CI_NULL}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct ci_node *k = cn_cloudinit_node_child(n, want[i].key);
        assert_non_null(k);
        assert_int_equal(k->kind, want[i].kind);
    }
    assert_int_equal(cn_cloudinit_node_child(n, "a")->ival, 420);
    assert_int_equal(cn_cloudinit_node_child(n, "d")->ival, 31);
    assert_int_equal(cn_cloudinit_node_child(n, "e")->ival, 1000);
    assert_int_equal(cn_cloudinit_node_child(n, "j")->ival, 5);
    assert_true(isinf(cn_cloudinit_node_child(n, "i")->fval) &&
                cn_cloudinit_node_child(n, "i")->fval < 0);
    assert_false(cn_cloudinit_node_child(n, "b")->bval);
    assert_string_equal(cn_cloudinit_node_child(n, "a")->text, "0644"); /* source text kept */
    cn_cloudinit_node_free(n);
}

static void test_line_numbers(void **state)
{
    (void)state;
    struct ci_node *n = parse("#cloud-config\r\nusers:\n  - name: elroy\n    groups:\n"
                              "      - sudo\n      - docker\n  - bogus\nwrite-files:\n");
    const struct ci_node *users = cn_cloudinit_node_child(n, "users");
    assert_int_equal(users->line, 2);
    assert_int_equal(users->nkids, 2);
    assert_int_equal(users->kids[0]->line, 3);
    assert_int_equal(users->kids[1]->line, 5); /* the validator's quirk: "- sudo" */
    assert_string_equal(users->kids[1]->name, "users[1]");
    const struct ci_node *wf = cn_cloudinit_node_child(n, "write_files");
    assert_non_null(wf);
    assert_string_equal(wf->key, "write-files");
    assert_int_equal(wf->line, 8);
    cn_cloudinit_node_free(n);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    struct ci_node *n = NULL;
    struct ci_yaml_error e;
    const char *t = "#cloud-config\ncoreos:\n  units:\n    - name: a.service\n  bad\n";
    assert_int_equal(cn_cloudinit_yaml_parse(t, strlen(t), &n, &e), CN_ERR_PARSE);
    assert_int_equal(e.line, 5);
    assert_string_equal(e.msg, "could not find expected ':'");
    t = "a: !!binary '@@@'\n";
    assert_int_equal(cn_cloudinit_yaml_parse(t, strlen(t), &n, &e), CN_ERR_PARSE);
    assert_string_equal(e.msg, "!!binary value contains invalid base64 data");
    /* A self-referencing alias must not recurse forever. */
    t = "a: &x [*x, *x]\n";
    int rc = cn_cloudinit_yaml_parse(t, strlen(t), &n, &e);
    if (rc == 0) cn_cloudinit_node_free(n);
    /* Not a mapping: an empty configuration. */
    t = "- a\n";
    assert_int_equal(cn_cloudinit_yaml_parse(t, strlen(t), &n, &e), 0);
    assert_null(n);
}

static void test_decode(void **state)
{
    (void)state;
    struct ci_node *n = parse("hostname: 4\ncoreos:\n  units:\n    - str\n    -\n    - name: a\n"
                              "      enable: \"true\"\n      runtime: yes\n  etcd2:\n"
                              "    heartbeat-interval: 1.9\nwrite_files:\n  - permissions: 0644\n");
    struct ci_obj *c = cn_cloudinit_decode(n);
    assert_string_equal(c->v[CC_HOSTNAME].s, "4");
    const struct ci_val *units = &cn_cloudinit_sub(c, CC_COREOS)->v[CO_UNITS];
    assert_int_equal(units->n, 2); /* "str" dropped, null kept */
    assert_string_equal(units->items[0]->v[UN_NAME].s, "");
    assert_string_equal(units->items[1]->v[UN_NAME].s, "a");
    assert_false(units->items[1]->v[UN_ENABLE].b);
    assert_true(units->items[1]->v[UN_RUNTIME].b);
    assert_int_equal(cn_cloudinit_sub(cn_cloudinit_sub(c, CC_COREOS), CO_ETCD2)->v[14].i,
                     1); /* heartbeat */
    assert_string_equal(c->v[CC_WRITE_FILES].items[0]->v[WF_PERMISSIONS].s, "0644");
    cn_cloudinit_obj_free(c);
    cn_cloudinit_node_free(n);
}

static void test_validate_report(void **state)
{
    (void)state;
    const char *t = "#cloud-config\ncoreos:\n  update:\n    reboot-strategy: off\n"
                    "  etcd2:\n    proxy: maybe\nhostname:\n";
    struct ci_report r = {NULL, 0, 0};
    cn_cloudinit_validate(t, strlen(t), &r);
    struct cn_buf out = CN_BUF_INIT;
    cn_cloudinit_report_format(&r, &out);
    assert_string_equal(out.p, "line 7: warning: incorrect type for \"hostname\" (want string)\n"
                               "line 6: error: invalid value maybe\n");
    cn_buf_free(&out);
    cn_cloudinit_report_free(&r);
}

static void test_request_uri(void **state)
{
    (void)state;
    assert_true(cn_cloudinit_request_uri_valid("*", 1));
    assert_true(cn_cloudinit_request_uri_valid("/path", 5));
    assert_true(cn_cloudinit_request_uri_valid("https://discovery.etcd.io/x", 27));
    assert_true(cn_cloudinit_request_uri_valid("mailto:x", 8));
    assert_false(cn_cloudinit_request_uri_valid("", 0));
    assert_false(cn_cloudinit_request_uri_valid("foo", 3));
    assert_false(cn_cloudinit_request_uri_valid(":x", 2));
    assert_false(cn_cloudinit_request_uri_valid("http://x/%zz", 12));
    assert_false(cn_cloudinit_request_uri_valid("http://host:port/", 17));
}

static void check_float(double f, const char *want)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_cloudinit_format_float(f, &b);
    assert_string_equal(b.p, want);
    cn_buf_free(&b);
}

static void test_format_float(void **state)
{
    (void)state;
    check_float(2.5, "2.5");
    check_float(0.000001, "1e-06");
    check_float(1000000, "1e+06");
    check_float(123456, "123456");
    check_float(1234567, "1.234567e+06");
    check_float(0.0001, "0.0001");
    check_float(0.1, "0.1");
    check_float(-3, "-3");
    check_float(1e21, "1e+21");
}

static struct ci_obj *obj_from(const char *yaml)
{
    struct ci_node *n = parse(yaml);
    struct ci_obj *c = cn_cloudinit_decode(n);
    cn_cloudinit_node_free(n);
    return c;
}

static void test_render(void **state)
{
    (void)state;
    struct ci_obj *c =
        obj_from("coreos:\n  update:\n    group: stable\n    reboot-strategy: off\n");
    struct cn_buf b = CN_BUF_INIT;
    const char *base = "GROUP=alpha\nSERVER=https://updates.example.com/v1/update/\n";
    cn_cloudinit_render_update_conf(cn_cloudinit_sub(cn_cloudinit_sub(c, CC_COREOS), CO_UPDATE),
                                    base, strlen(base), &b);
    assert_string_equal(b.p, "GROUP=stable\nSERVER=https://updates.example.com/v1/update/\n"
                             "REBOOT_STRATEGY=off\n");
    cn_cloudinit_obj_free(c);
    cn_buf_reset(&b);
    struct ci_subst s = {"1.2.3.4", "10.0.0.4", NULL, ""};
    const char *old = "A=1\r\nCOREOS_PRIVATE_IPV4=old";
    assert_true(cn_cloudinit_render_environment(&s, old, strlen(old), true, &b));
    assert_string_equal(b.p, "A=1\nCOREOS_PRIVATE_IPV4=10.0.0.4\nCOREOS_PUBLIC_IPV4=1.2.3.4\n");
    cn_buf_reset(&b);
    const char *same = "COREOS_PRIVATE_IPV4=10.0.0.4\nCOREOS_PUBLIC_IPV4=1.2.3.4\n";
    assert_false(cn_cloudinit_render_environment(&s, same, strlen(same), true, &b));
    cn_buf_free(&b);
}

static void test_waagent_xml(void **state)
{
    (void)state;
    const char *x = "<?xml version=\"1.0\"?><SharedConfig><Incarnation instance=\"b\"/>"
                    "<Instances><Instance id=\"a\" address=\"1.1.1.1\"/>"
                    "<Instance id=\"b\" address=\"10.0.0.5\"><InputEndpoints>"
                    "<Endpoint loadBalancedPublicAddress=\"[::1]:22\"/></InputEndpoints>"
                    "</Instance></Instances></SharedConfig>";
    struct ci_metadata md = {NULL, NULL};
    assert_int_equal(cn_cloudinit_waagent_parse(x, strlen(x), &md), 0);
    assert_string_equal(md.private_ipv4, "10.0.0.5");
    assert_string_equal(md.public_ipv4, "::1");
    cn_cloudinit_metadata_free(&md);
    assert_int_equal(cn_cloudinit_waagent_parse("<a><b></a>", 10, &md), CN_ERR_PARSE);
    assert_int_equal(cn_cloudinit_waagent_parse("<a>", 3, &md), CN_ERR_PARSE);
    assert_int_equal(cn_cloudinit_waagent_parse("<a x='&bogus;'/>", 16, &md), CN_ERR_PARSE);
    assert_int_equal(cn_cloudinit_waagent_parse("   ", 3, &md), CN_ERR_PARSE);
}

static void test_root_confinement(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/ci-unit-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char root[64], outside[64], link[96];
    snprintf(root, sizeof(root), "%s/root", tmpl);
    snprintf(outside, sizeof(outside), "%s/outside", tmpl);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(mkdir(outside, 0755), 0);
    snprintf(link, sizeof(link), "%s/evil", root);
    assert_int_equal(symlink(outside, link), 0); /* absolute, pointing outside */
    struct ci_root r;
    char p0[256];
    assert_int_equal(cn_cloudinit_root_open(&r, root), 0);
    /* The link dangles inside the root: like mkdir -p, the write fails, and nothing leaks. */
    assert_int_not_equal(cn_cloudinit_write_file(&r, "/evil/f", "x", 1, 0600, NULL), 0);
    snprintf(p0, sizeof(p0), "%s/f", outside);
    assert_int_not_equal(access(p0, F_OK), 0);
    assert_int_equal(cn_cloudinit_mkdirs(&r, outside, 0755), 0); /* now <root><outside> exists */
    assert_int_equal(cn_cloudinit_write_file(&r, "/evil/f", "x", 1, 0600, NULL), 0);
    assert_int_equal(cn_cloudinit_write_file(&r, "../../outside/g", "y", 1, 0644, NULL), 0);
    char p[256];
    snprintf(p, sizeof(p), "%s/f", outside);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/g", outside);
    assert_int_not_equal(access(p, F_OK), 0);
    /* Both landed inside: /evil resolves to <root>/<outside path>. */
    snprintf(p, sizeof(p), "%s%s/f", root, outside);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(p, sizeof(p), "%s/outside/g", root);
    assert_int_equal(stat(p, &st), 0);
    /* No temp file is left behind. */
    char **names;
    size_t n;
    assert_int_equal(cn_cloudinit_list_dir(&r, "/outside", &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "g");
    cn_free(names[0]);
    cn_free(names);
    /* A failing write (target is a directory) leaves nothing. */
    assert_int_not_equal(cn_cloudinit_write_file(&r, "/outside", "z", 1, 0644, NULL), 0);
    assert_int_equal(cn_cloudinit_list_dir(&r, "/", &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(strncmp(names[i], ".cairn", 6) != 0);
        cn_free(names[i]);
    }
    cn_free(names);
    cn_cloudinit_root_close(&r);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),           cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_decode_content),   cmocka_unit_test(test_quote),
        cmocka_unit_test(test_path_clean),       cmocka_unit_test(test_classify),
        cmocka_unit_test(test_substitute),       cmocka_unit_test(test_scalar_typing),
        cmocka_unit_test(test_line_numbers),     cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_decode),           cmocka_unit_test(test_validate_report),
        cmocka_unit_test(test_request_uri),      cmocka_unit_test(test_format_float),
        cmocka_unit_test(test_render),           cmocka_unit_test(test_waagent_xml),
        cmocka_unit_test(test_root_confinement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
