/* Unit tests for src/store: every operation and error code on concrete values (index after each
 * write, exact JSON of results and GETs), TTL and expiry through SYNC, watches (history, 401,
 * hidden, ancestors, recursive, stream, refresh), snapshots and the command codec. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "store/store.h"

/* 2023-11-14T22:13:20Z */
#define NOW (1700000000LL * CN_NS_PER_S)

static struct cn_store *S;
static struct cn_buf OUT;
static struct cn_store_result R;

static int setup(void **state)
{
    S = cn_store_new();
    cn_buf_init(&OUT);
    return 0;
}

static int teardown(void **state)
{
    cn_store_free(S);
    cn_buf_free(&OUT);
    return 0;
}

static void fmt_err(const struct cn_store_err *e)
{
    cn_buf_appendf(&OUT, "E%d %s @%llu", e->ecode, e->cause, (unsigned long long)e->index);
}

/* Applies c (through the encoder, so every test also exercises the codec) in namespace ns and
 * returns the result's event JSON, or "E<code> <cause> @<index>". */
static const char *run_ns(uint8_t ns, struct cn_store_cmd c)
{
    c.ns = ns;
    if (!c.now_ns) c.now_ns = NOW;
    struct cn_buf enc = CN_BUF_INIT;
    cn_store_cmd_encode(&c, &enc);
    assert_int_equal(cn_store_apply(S, enc.p, enc.len, &R), 0);
    cn_buf_free(&enc);
    cn_buf_reset(&OUT);
    if (R.err.ecode)
        fmt_err(&R.err);
    else if (R.ev)
        cn_store_event_json(R.ev, c.now_ns, &OUT);
    else
        cn_buf_appends(&OUT, "-");
    return OUT.p;
}

static const char *run(struct cn_store_cmd c)
{
    return run_ns(CN_NS_KEYS, c);
}

#define CMD(...) ((struct cn_store_cmd){__VA_ARGS__})

static const char *set(const char *k, const char *v)
{
    return run(CMD(.op = CN_OP_SET, .key = cn_str_c(k), .value = cn_str_c(v)));
}

static const char *get_at(const char *k, bool recursive, int64_t now)
{
    struct cn_store_err e;
    cn_buf_reset(&OUT);
    if (!cn_store_get_json(S, CN_NS_KEYS, cn_str_c(k), recursive, true, now, &OUT, &e)) {
        assert_int_equal(OUT.len, 0);
        fmt_err(&e);
    }
    return OUT.p;
}

static const char *get(const char *k, bool recursive)
{
    return get_at(k, recursive, NOW);
}

static struct cn_buf LOG;

static const char *sync_at(int64_t now)
{
    return run(CMD(.op = CN_OP_SYNC, .now_ns = now));
}

/* ---- basic operations ---------------------------------------------------------------------- */

static void set_and_get(void **state)
{
    assert_string_equal(get("/", false), "{\"action\":\"get\",\"node\":{\"dir\":true}}");
    assert_string_equal(set("/message", "Hello world"),
                        "{\"action\":\"set\",\"node\":{\"key\":\"/message\",\"value\":\"Hello "
                        "world\",\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_int_equal(cn_store_index(S), 1);
    assert_string_equal(
        set("/message", "Hello etcd"),
        "{\"action\":\"set\",\"node\":{\"key\":\"/message\",\"value\":\"Hello "
        "etcd\",\"modifiedIndex\":2,\"createdIndex\":2},\"prevNode\":{\"key\":\"/"
        "message\",\"value\":\"Hello world\",\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(get("/message", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/message\",\"value\":\"Hello "
                        "etcd\",\"modifiedIndex\":2,\"createdIndex\":2}}");
    /* empty value is still emitted; a longer value moves the node */
    assert_string_equal(set("/e", ""),
                        "{\"action\":\"set\",\"node\":{\"key\":\"/e\",\"value\":\"\","
                        "\"modifiedIndex\":3,\"createdIndex\":3}}");
    set("/e", "a much longer value than before <&>");
    assert_string_equal(
        get("/e", false),
        "{\"action\":\"get\",\"node\":{\"key\":\"/e\",\"value\":\"a much longer value "
        "than before \\u003c\\u0026\\u003e\",\"modifiedIndex\":4,\"createdIndex\":4}}");
    assert_string_equal(
        get("/", false),
        "{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/e\",\"value\":"
        "\"a much longer value than before \\u003c\\u0026\\u003e\",\"modifiedIndex\":4,"
        "\"createdIndex\":4},{\"key\":\"/message\",\"value\":\"Hello etcd\","
        "\"modifiedIndex\":2,\"createdIndex\":2}]}}");
    assert_string_equal(get("/nokey", false), "E100 /nokey @4");
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), 2);
    assert_int_equal(cn_store_key_count(S, CN_NS_SYS), 0);
}

static void path_cleaning(void **state)
{
    assert_string_equal(set("//foo/./bar/../baz/", "v"),
                        "{\"action\":\"set\",\"node\":{\"key\":\"/foo/baz\",\"value\":\"v\","
                        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(get("/foo//baz/", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/foo/baz\",\"value\":\"v\","
                        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(get("/../..//", false),
                        "{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/foo\","
                        "\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}]}}");
    assert_string_equal(get("", false), get("/", false));
    assert_string_equal(get("foo/../foo/baz", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/foo/baz\",\"value\":\"v\","
                        "\"modifiedIndex\":1,\"createdIndex\":1}}");
}

static void parents_and_listing(void **state)
{
    set("/a/b/c", "1");
    set("/a/x", "2");
    set("/a/_hidden", "h");
    set("/a/b/d/e", "3");
    assert_int_equal(cn_store_index(S), 4);
    /* auto-created dirs carry the creating write's index; later children do not touch them */
    assert_string_equal(get("/a", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/"
                        "a\",\"dir\":true,\"nodes\":[{\"key\":\"/a/b\",\"dir\":true,"
                        "\"modifiedIndex\":1,\"createdIndex\":1},{\"key\":\"/a/"
                        "x\",\"value\":\"2\",\"modifiedIndex\":2,"
                        "\"createdIndex\":2}],\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(
        get("/a", true),
        "{\"action\":\"get\",\"node\":{\"key\":\"/a\",\"dir\":true,\"nodes\":[{\"key\":\"/a/"
        "b\",\"dir\":true,"
        "\"nodes\":[{\"key\":\"/a/b/"
        "c\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1},{\"key\":"
        "\"/a/b/d\",\"dir\":true,\"nodes\":[{\"key\":\"/a/b/d/"
        "e\",\"value\":\"3\",\"modifiedIndex\":4,"
        "\"createdIndex\":4}],\"modifiedIndex\":4,\"createdIndex\":4}],\"modifiedIndex\":1,"
        "\"createdIndex\":1},{\"key\":\"/a/"
        "x\",\"value\":\"2\",\"modifiedIndex\":2,\"createdIndex\":2}],"
        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    /* hidden nodes are readable by path */
    assert_string_equal(get("/a/_hidden", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/a/_hidden\",\"value\":\"h\","
                        "\"modifiedIndex\":3,\"createdIndex\":3}}");
    /* a dir whose only child is hidden lists no nodes */
    set("/h/_x", "1");
    assert_string_equal(get("/h", true),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/h\",\"dir\":true,"
                        "\"modifiedIndex\":5,\"createdIndex\":5}}");
    /* errors: first missing component; a component that is a key */
    assert_string_equal(get("/q/b/c", false), "E100 /q @5");
    assert_string_equal(get("/a/b/zz/y", false), "E100 /a/b/zz @5");
    assert_string_equal(get("/a/x/y/z", false), "E104 /a/x @5");
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.gets_success, 4);
    assert_int_equal(st.gets_fail, 3);
}

static void sorted_children(void **state)
{
    const char *names[] = {"/d/b", "/d/a", "/d/ab", "/d/B", "/d/_z",
                           "/d/`", "/d/^", "/d/aa", "/d/c"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        set(names[i], "");
    const char *g = get("/d", false);
    const char *order[] = {"/d/B", "/d/^", "/d/`", "/d/a", "/d/aa", "/d/ab", "/d/b", "/d/c"};
    const char *p = g;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "\"key\":\"%s\"", order[i]);
        const char *q = strstr(p, want);
        assert_non_null(q);
        p = q + 1;
    }
    assert_null(strstr(g, "_z"));
}

static void set_errors(void **state)
{
    set("/k", "v");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/dir"), .dir = true));
    assert_string_equal(set("/dir", "x"), "E102 /dir @2");
    assert_string_equal(run(CMD(.op = CN_OP_SET, .key = CN_STR("/dir"), .dir = true)),
                        "E102 /dir @2");
    assert_string_equal(set("/k/sub", "x"), "E104 /k @2");
    assert_string_equal(set("/k/sub/deeper", "x"), "E104 /k @2");
    assert_string_equal(set("/", "x"), "E107 / @2");
    assert_string_equal(set("/a/..", "x"), "E107 / @2");
    assert_int_equal(cn_store_index(S), 2);
    /* set dir over a key replaces it */
    assert_string_equal(
        run(CMD(.op = CN_OP_SET, .key = CN_STR("/k"), .dir = true)),
        "{\"action\":\"set\",\"node\":{\"key\":\"/k\",\"dir\":true,\"modifiedIndex\":3,"
        "\"createdIndex\":3},\"prevNode\":{\"key\":\"/k\",\"value\":\"v\","
        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), 0);
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.sets_success, 3);
    assert_int_equal(st.sets_fail, 6);
}

static void create_ops(void **state)
{
    assert_string_equal(run(CMD(.op = CN_OP_CREATE, .key = CN_STR("/c"), .value = CN_STR("1"))),
                        "{\"action\":\"create\",\"node\":{\"key\":\"/c\",\"value\":\"1\","
                        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE, .key = CN_STR("/c"), .value = CN_STR("2"))),
                        "E105 /c @1");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE, .key = CN_STR("/c/d"))), "E104 /c @1");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE, .key = CN_STR("/"))), "E107 / @1");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE, .key = CN_STR("/dd"), .dir = true)),
                        "{\"action\":\"create\",\"node\":{\"key\":\"/dd\",\"dir\":true,"
                        "\"modifiedIndex\":2,\"createdIndex\":2}}");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE, .key = CN_STR("/dd"), .dir = true)),
                        "E105 /dd @2");
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.create_success, 2);
    assert_int_equal(st.create_fail, 4);
    assert_int_equal(st.sets_fail, 1); /* etcd's internalCreate also counts the 104 as setsFail */
}

static void in_order_keys(void **state)
{
    set("/x", "1");
    assert_string_equal(
        run(CMD(.op = CN_OP_CREATE_SEQ, .key = CN_STR("/queue"), .value = CN_STR("Job1"))),
        "{\"action\":\"create\",\"node\":{\"key\":\"/queue/00000000000000000002\","
        "\"value\":\"Job1\",\"modifiedIndex\":2,\"createdIndex\":2}}");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE_SEQ, .key = CN_STR("/queue/"), .dir = true)),
                        "{\"action\":\"create\",\"node\":{\"key\":\"/queue/00000000000000000003\","
                        "\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":3}}");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE_SEQ, .key = CN_STR("/x"), .value = CN_STR("j"))),
                        "E104 /x @3");
    assert_string_equal(run(CMD(.op = CN_OP_CREATE_SEQ, .key = CN_STR("/"), .value = CN_STR("r"))),
                        "{\"action\":\"create\",\"node\":{\"key\":\"/00000000000000000004\","
                        "\"value\":\"r\",\"modifiedIndex\":4,\"createdIndex\":4}}");
    assert_string_equal(
        get("/queue", false),
        "{\"action\":\"get\",\"node\":{\"key\":\"/queue\",\"dir\":true,\"nodes\":[{\"key\":"
        "\"/queue/00000000000000000002\",\"value\":\"Job1\",\"modifiedIndex\":2,"
        "\"createdIndex\":2},{\"key\":\"/queue/00000000000000000003\",\"dir\":true,"
        "\"modifiedIndex\":3,\"createdIndex\":3}],\"modifiedIndex\":2,\"createdIndex\":2}}");
}

static void update_ops(void **state)
{
    int64_t exp = NOW + 30 * CN_NS_PER_S;
    assert_string_equal(run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/u"), .value = CN_STR("1"))),
                        "E100 /u @0");
    assert_string_equal(run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/"))), "E107 / @0");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/u"), .value = CN_STR("1"), .expire_ns = exp));
    assert_int_equal(cn_store_next_expiry(S), exp);
    /* update keeps createdIndex; no expire_ns removes the TTL */
    assert_string_equal(run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/u"), .value = CN_STR("22"))),
                        "{\"action\":\"update\",\"node\":{\"key\":\"/u\",\"value\":\"22\","
                        "\"modifiedIndex\":2,\"createdIndex\":1},\"prevNode\":{\"key\":\"/u\","
                        "\"value\":\"1\",\"expiration\":\"2023-11-14T22:13:50Z\",\"ttl\":30,"
                        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_int_equal(cn_store_next_expiry(S), 0);
    assert_string_equal(get("/u", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/u\",\"value\":\"22\","
                        "\"modifiedIndex\":2,\"createdIndex\":1}}");
    /* directories: value → 102; TTL update reports the new index but keeps the stored one */
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/d"), .dir = true));
    assert_string_equal(run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/d"), .value = CN_STR("v"))),
                        "E102 /d @3");
    assert_string_equal(
        run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/d"), .expire_ns = exp)),
        "{\"action\":\"update\",\"node\":{\"key\":\"/d\",\"dir\":true,\"expiration\":"
        "\"2023-11-14T22:13:50Z\",\"ttl\":30,\"modifiedIndex\":4,\"createdIndex\":3},"
        "\"prevNode\":{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":3}}");
    assert_string_equal(get("/d", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,"
                        "\"expiration\":\"2023-11-14T22:13:50Z\",\"ttl\":30,"
                        "\"modifiedIndex\":3,\"createdIndex\":3}}");
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.update_success, 2);
    assert_int_equal(st.update_fail, 3);
}

static void cas_ops(void **state)
{
    set("/k", "one"); /* 1 */
    assert_string_equal(run(CMD(.op = CN_OP_CAS, .key = CN_STR("/k"), .has_prev_value = true,
                                .prev_value = CN_STR("two"), .value = CN_STR("x"))),
                        "E101 [two != one] @1");
    assert_string_equal(
        run(CMD(.op = CN_OP_CAS, .key = CN_STR("/k"), .prev_index = 2, .value = CN_STR("x"))),
        "E101 [2 != 1] @1");
    assert_string_equal(
        run(CMD(.op = CN_OP_CAS, .key = CN_STR("/k"), .has_prev_value = true,
                .prev_value = CN_STR("two"), .prev_index = 5, .value = CN_STR("x"))),
        "E101 [two != one] [5 != 1] @1");
    assert_string_equal(run(CMD(.op = CN_OP_CAS, .key = CN_STR("/nope"), .prev_index = 1)),
                        "E100 /nope @1");
    assert_string_equal(run(CMD(.op = CN_OP_CAS, .key = CN_STR("/"), .prev_index = 1)),
                        "E107 / @1");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/dir"), .dir = true)); /* 2 */
    assert_string_equal(run(CMD(.op = CN_OP_CAS, .key = CN_STR("/dir"), .prev_index = 2)),
                        "E102 /dir @2");
    assert_string_equal(
        run(CMD(.op = CN_OP_CAS, .key = CN_STR("/k"), .has_prev_value = true,
                .prev_value = CN_STR("one"), .prev_index = 1, .value = CN_STR("a longer value"),
                .expire_ns = NOW + 5 * CN_NS_PER_S + 1)),
        "{\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/k\",\"value\":\"a longer value\","
        "\"expiration\":\"2023-11-14T22:13:25.000000001Z\",\"ttl\":6,\"modifiedIndex\":3,"
        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/k\",\"value\":\"one\",\"modifiedIndex\":1,"
        "\"createdIndex\":1}}");
    /* CAS without expire removes the TTL */
    assert_string_equal(
        run(CMD(.op = CN_OP_CAS, .key = CN_STR("/k"), .prev_index = 3, .value = CN_STR("b"))),
        "{\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/k\",\"value\":\"b\","
        "\"modifiedIndex\":4,\"createdIndex\":1},\"prevNode\":{\"key\":\"/k\",\"value\":"
        "\"a longer value\",\"expiration\":\"2023-11-14T22:13:25.000000001Z\",\"ttl\":6,"
        "\"modifiedIndex\":3,\"createdIndex\":1}}");
    assert_int_equal(cn_store_next_expiry(S), 0);
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.cas_success, 2);
    assert_int_equal(st.cas_fail, 6);
}

static void delete_ops(void **state)
{
    set("/k", "v");                                              /* 1 */
    set("/d/a", "1");                                            /* 2 */
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/e"), .dir = true)); /* 3 */
    assert_string_equal(run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/"))), "E107 / @3");
    assert_string_equal(run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/zz"))), "E100 /zz @3");
    assert_string_equal(run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/d"))), "E102 /d @3");
    assert_string_equal(run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/d"), .dir = true)),
                        "E108 /d @3");
    assert_string_equal(run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/k"))),
                        "{\"action\":\"delete\",\"node\":{\"key\":\"/k\",\"modifiedIndex\":4,"
                        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/k\",\"value\":\"v\","
                        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(
        run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/e"), .dir = true)),
        "{\"action\":\"delete\",\"node\":{\"key\":\"/e\",\"dir\":true,\"modifiedIndex\":5,"
        "\"createdIndex\":3},\"prevNode\":{\"key\":\"/e\",\"dir\":true,"
        "\"modifiedIndex\":3,\"createdIndex\":3}}");
    assert_string_equal(
        run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/d"), .recursive = true)),
        "{\"action\":\"delete\",\"node\":{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":6,"
        "\"createdIndex\":2},\"prevNode\":{\"key\":\"/d\",\"dir\":true,"
        "\"modifiedIndex\":2,\"createdIndex\":2}}");
    assert_string_equal(get("/", true), "{\"action\":\"get\",\"node\":{\"dir\":true}}");
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), 0);
    /* recursive delete of a key works too */
    set("/k2", "v");
    assert_string_equal(run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/k2"), .recursive = true)),
                        "{\"action\":\"delete\",\"node\":{\"key\":\"/k2\",\"modifiedIndex\":8,"
                        "\"createdIndex\":7},\"prevNode\":{\"key\":\"/k2\",\"value\":\"v\","
                        "\"modifiedIndex\":7,\"createdIndex\":7}}");
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.delete_success, 4);
    assert_int_equal(st.delete_fail, 4);
}

static void cad_ops(void **state)
{
    set("/k", "v");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/d"), .dir = true));
    assert_string_equal(run(CMD(.op = CN_OP_CAD, .key = CN_STR("/k"), .has_prev_value = true,
                                .prev_value = CN_STR("w"))),
                        "E101 [w != v] @2");
    assert_string_equal(run(CMD(.op = CN_OP_CAD, .key = CN_STR("/k"), .prev_index = 9)),
                        "E101 [9 != 1] @2");
    assert_string_equal(run(CMD(.op = CN_OP_CAD, .key = CN_STR("/d"), .prev_index = 2)),
                        "E102 /d @2");
    assert_string_equal(run(CMD(.op = CN_OP_CAD, .key = CN_STR("/x"), .prev_index = 2)),
                        "E100 /x @2");
    assert_string_equal(run(CMD(.op = CN_OP_CAD, .key = CN_STR("/"), .prev_index = 2)),
                        "E107 / @2");
    assert_string_equal(
        run(CMD(.op = CN_OP_CAD, .key = CN_STR("/k"), .has_prev_value = true,
                .prev_value = CN_STR("v"), .prev_index = 1)),
        "{\"action\":\"compareAndDelete\",\"node\":{\"key\":\"/k\",\"modifiedIndex\":3,"
        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/k\",\"value\":\"v\","
        "\"modifiedIndex\":1,\"createdIndex\":1}}");
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.cad_success, 1);
    assert_int_equal(st.cad_fail, 5);
}

static void long_cause_truncated(void **state)
{
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    set("/k", big);
    run(CMD(.op = CN_OP_CAS, .key = CN_STR("/k"), .has_prev_value = true,
            .prev_value = CN_STR("y")));
    assert_int_equal(R.err.ecode, 101);
    assert_int_equal(strlen(R.err.cause), sizeof(R.err.cause) - 1);
    assert_memory_equal(R.err.cause, "[y != xxx", 9);
    /* shrinking a big value moves the key to a right-sized node, keeping its TTL in the heap */
    run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/k"), .value = CN_STR("s"), .expire_ns = NOW + 1));
    assert_string_equal(get("/k", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/k\",\"value\":\"s\","
                        "\"expiration\":\"2023-11-14T22:13:20.000000001Z\",\"ttl\":1,"
                        "\"modifiedIndex\":2,\"createdIndex\":1}}");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/k"), .value = CN_STR(""), .expire_ns = NOW + 2));
    assert_int_equal(cn_store_next_expiry(S), NOW + 2);
    sync_at(NOW + 2);
    assert_int_equal(R.nexpired, 1);
}

static void log_cb(struct cn_store_watcher *w, struct cn_store_event *ev, void *ctx)
{
    if (ctx) cn_buf_appends(&LOG, (const char *)ctx);
    if (!ev) {
        cn_buf_appends(&LOG, "END\n");
        return;
    }
    cn_store_event_json(ev, NOW, &LOG);
    cn_buf_putc(&LOG, '\n');
}

static struct cn_store_watcher *watch(const char *key, bool recursive, bool stream, uint64_t since,
                                      const char *tag)
{
    struct cn_store_watcher *w = NULL;
    struct cn_store_err err;
    assert_true(cn_store_watch(S, CN_NS_KEYS, cn_str_c(key), recursive, stream, since, log_cb,
                               (void *)tag, &w, &err));
    assert_int_equal(err.ecode, 0);
    return w;
}

/* ---- TTL ----------------------------------------------------------------------------------- */

static void ttl_and_expiry(void **state)
{
    int64_t e1 = NOW + 10 * CN_NS_PER_S, e2 = NOW + 5 * CN_NS_PER_S;
    assert_string_equal(
        run(CMD(.op = CN_OP_SET, .key = CN_STR("/t1"), .value = CN_STR("a"), .expire_ns = e1)),
        "{\"action\":\"set\",\"node\":{\"key\":\"/t1\",\"value\":\"a\",\"expiration\":"
        "\"2023-11-14T22:13:30Z\",\"ttl\":10,\"modifiedIndex\":1,\"createdIndex\":1}}");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/t2"), .value = CN_STR("b"), .expire_ns = e2)); /* 2 */
    set("/perm", "p");                                                                      /* 3 */
    /* expiry instants before 2000 mean no TTL */
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/old"), .value = CN_STR("o"),
            .expire_ns = 12345)); /* 4 */
    assert_string_equal(get("/old", false),
                        "{\"action\":\"get\",\"node\":{\"key\":\"/old\",\"value\":\"o\","
                        "\"modifiedIndex\":4,\"createdIndex\":4}}");
    assert_int_equal(cn_store_next_expiry(S), e2);
    /* ttl is ceil of the remaining time, omitted when <= 0 */
    assert_string_equal(
        get_at("/t1", false, NOW + CN_NS_PER_S / 2),
        "{\"action\":\"get\",\"node\":{\"key\":\"/t1\",\"value\":\"a\",\"expiration\":"
        "\"2023-11-14T22:13:30Z\",\"ttl\":10,\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(
        get_at("/t1", false, NOW + 9 * CN_NS_PER_S + 1),
        "{\"action\":\"get\",\"node\":{\"key\":\"/t1\",\"value\":\"a\",\"expiration\":"
        "\"2023-11-14T22:13:30Z\",\"ttl\":1,\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_string_equal(
        get_at("/t1", false, e1 + 1),
        "{\"action\":\"get\",\"node\":{\"key\":\"/t1\",\"value\":\"a\",\"expiration\":"
        "\"2023-11-14T22:13:30Z\",\"modifiedIndex\":1,\"createdIndex\":1}}");
    /* nothing due: no index consumed */
    assert_string_equal(sync_at(e2 - 1), "-");
    assert_int_equal(R.nexpired, 0);
    assert_int_equal(cn_store_index(S), 4);
    /* both due: heap order (t2 first), one index and one event each */
    cn_buf_init(&LOG);
    watch("/", true, true, 0, NULL);
    assert_string_equal(sync_at(e1), "-");
    assert_int_equal(R.nexpired, 2);
    assert_int_equal(cn_store_index(S), 6);
    assert_string_equal(LOG.p,
                        "{\"action\":\"expire\",\"node\":{\"key\":\"/t2\",\"modifiedIndex\":5,"
                        "\"createdIndex\":2},\"prevNode\":{\"key\":\"/t2\",\"value\":\"b\","
                        "\"expiration\":\"2023-11-14T22:13:25Z\",\"ttl\":5,\"modifiedIndex\":2,"
                        "\"createdIndex\":2}}\n"
                        "{\"action\":\"expire\",\"node\":{\"key\":\"/t1\",\"modifiedIndex\":6,"
                        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/t1\",\"value\":\"a\","
                        "\"expiration\":\"2023-11-14T22:13:30Z\",\"ttl\":10,\"modifiedIndex\":1,"
                        "\"createdIndex\":1}}\n");
    cn_buf_free(&LOG);
    assert_string_equal(get("/t1", false), "E100 /t1 @6");
    assert_int_equal(cn_store_next_expiry(S), 0);
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), 2);
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.expire_count, 2);
}

static void ttl_set_replace_and_ties(void **state)
{
    int64_t e = NOW + 10 * CN_NS_PER_S;
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/k"), .value = CN_STR("a"), .expire_ns = e));
    assert_int_equal(cn_store_next_expiry(S), e);
    set("/k", "b"); /* a plain set replaces the node: no TTL any more */
    assert_int_equal(cn_store_next_expiry(S), 0);
    /* an auto-created dir and its child share createdIndex; with equal expiry the dir (shallower)
     * goes first and takes the child along: one event */
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/d/c"), .value = CN_STR("x"), .expire_ns = e)); /* 3 */
    run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/d"), .expire_ns = e));                      /* 4 */
    sync_at(e);
    assert_int_equal(R.nexpired, 1);
    assert_int_equal(cn_store_index(S), 5);
    assert_string_equal(get("/d", false), "E100 /d @5");
}

static void dir_ttl_expires_subtree(void **state)
{
    cn_buf_init(&LOG);
    int64_t e = NOW + 30 * CN_NS_PER_S;
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/dir"), .dir = true, .expire_ns = e)); /* 1 */
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/dir/k"), .value = CN_STR("v"),
            .expire_ns = e)); /* 2 */
    set("/dir/sub/x", "1");   /* 3 */
    watch("/dir/sub/x", false, true, 0, "x:");
    watch("/dir", true, true, 0, "r:");
    assert_string_equal(sync_at(e), "-");
    assert_int_equal(R.nexpired, 1); /* the dir; /dir/k went with it */
    assert_int_equal(cn_store_index(S), 4);
    assert_int_equal(cn_store_next_expiry(S), 0);
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), 0);
    assert_string_equal(
        LOG.p,
        "r:{\"action\":\"expire\",\"node\":{\"key\":\"/dir\",\"dir\":true,\"modifiedIndex\":4,"
        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/dir\",\"dir\":true,\"expiration\":"
        "\"2023-11-14T22:13:50Z\",\"ttl\":30,\"modifiedIndex\":1,\"createdIndex\":1}}\n"
        "x:{\"action\":\"expire\",\"node\":{\"key\":\"/dir\",\"dir\":true,\"modifiedIndex\":4,"
        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/dir\",\"dir\":true,\"expiration\":"
        "\"2023-11-14T22:13:50Z\",\"ttl\":30,\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    cn_buf_free(&LOG);
}

static void expire_event_json(void **state)
{
    cn_buf_init(&LOG);
    int64_t e = NOW + CN_NS_PER_S + 542061182;
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/ttl"), .value = CN_STR("v"), .expire_ns = e));
    watch("/ttl", false, false, 0, NULL);
    assert_int_equal(cn_store_watcher_count(S), 1);
    sync_at(e + 5);
    assert_string_equal(LOG.p,
                        "{\"action\":\"expire\",\"node\":{\"key\":\"/ttl\",\"modifiedIndex\":2,"
                        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/ttl\",\"value\":\"v\","
                        "\"expiration\":\"2023-11-14T22:13:21.542061182Z\",\"ttl\":2,"
                        "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    assert_int_equal(cn_store_watcher_count(S), 0);
    /* the event JSON computes ttl against the caller's clock: after expiry it is omitted */
    struct cn_store_watcher *w = NULL;
    struct cn_store_err err;
    cn_buf_reset(&LOG);
    assert_true(
        cn_store_watch(S, CN_NS_KEYS, CN_STR("/ttl"), false, false, 2, log_cb, NULL, &w, &err));
    assert_null(w);
    assert_non_null(strstr(LOG.p, "\"ttl\":2")); /* log_cb formats at NOW */
    cn_buf_free(&LOG);
}

static void refresh_ops(void **state)
{
    cn_buf_init(&LOG);
    int64_t e1 = NOW + 10 * CN_NS_PER_S, e2 = NOW + 60 * CN_NS_PER_S;
    assert_string_equal(
        run(CMD(.op = CN_OP_SET, .key = CN_STR("/r"), .refresh = true, .expire_ns = e1)),
        "E100 /r @0");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/r"), .value = CN_STR("keep"),
            .expire_ns = e1)); /* 1 */
    watch("/r", false, true, 0, "live:");
    /* set+refresh keeps the value, sets the TTL, consumes an index, recreates the node (etcd) */
    assert_string_equal(
        run(CMD(.op = CN_OP_SET, .key = CN_STR("/r"), .refresh = true, .expire_ns = e2)),
        "{\"action\":\"set\",\"node\":{\"key\":\"/r\",\"value\":\"keep\",\"expiration\":"
        "\"2023-11-14T22:14:20Z\",\"ttl\":60,\"modifiedIndex\":2,\"createdIndex\":2},"
        "\"prevNode\":{\"key\":\"/r\",\"value\":\"keep\",\"expiration\":"
        "\"2023-11-14T22:13:30Z\",\"ttl\":10,\"modifiedIndex\":1,\"createdIndex\":1}}");
    assert_true(R.ev->refresh);
    /* update+refresh and cas+refresh */
    assert_string_equal(
        run(CMD(.op = CN_OP_UPDATE, .key = CN_STR("/r"), .refresh = true, .expire_ns = e1)),
        "{\"action\":\"update\",\"node\":{\"key\":\"/r\",\"value\":\"keep\",\"expiration\":"
        "\"2023-11-14T22:13:30Z\",\"ttl\":10,\"modifiedIndex\":3,\"createdIndex\":2},"
        "\"prevNode\":{\"key\":\"/r\",\"value\":\"keep\",\"expiration\":"
        "\"2023-11-14T22:14:20Z\",\"ttl\":60,\"modifiedIndex\":2,\"createdIndex\":2}}");
    run(CMD(.op = CN_OP_CAS, .key = CN_STR("/r"), .prev_index = 3, .refresh = true,
            .expire_ns = e2));
    assert_int_equal(R.err.ecode, 0);
    assert_true(R.ev->refresh);
    assert_int_equal(cn_store_index(S), 4);
    assert_int_equal(cn_store_next_expiry(S), e2);
    assert_int_equal(LOG.len, 0); /* never delivered */
    /* history scans skip refresh events */
    watch("/r", false, false, 1, "hist:");
    assert_string_equal(LOG.p,
                        "hist:{\"action\":\"set\",\"node\":{\"key\":\"/r\",\"value\":\"keep\","
                        "\"expiration\":\"2023-11-14T22:13:30Z\",\"ttl\":10,\"modifiedIndex\":1,"
                        "\"createdIndex\":1}}\n");
    cn_buf_reset(&LOG);
    watch("/r", false, false, 2, "hist2:"); /* only refreshes after 2: registered live */
    assert_int_equal(LOG.len, 0);
    set("/r", "new");
    assert_string_equal(
        LOG.p,
        "live:{\"action\":\"set\",\"node\":{\"key\":\"/r\",\"value\":\"new\",\"modifiedIndex\":5,"
        "\"createdIndex\":5},\"prevNode\":{\"key\":\"/r\",\"value\":\"keep\",\"expiration\":"
        "\"2023-11-14T22:14:20Z\",\"ttl\":60,\"modifiedIndex\":4,\"createdIndex\":2}}\n"
        "hist2:{\"action\":\"set\",\"node\":{\"key\":\"/r\",\"value\":\"new\",\"modifiedIndex\":5,"
        "\"createdIndex\":5},\"prevNode\":{\"key\":\"/r\",\"value\":\"keep\",\"expiration\":"
        "\"2023-11-14T22:14:20Z\",\"ttl\":60,\"modifiedIndex\":4,\"createdIndex\":2}}\n");
    cn_buf_free(&LOG);
}

/* ---- watches ------------------------------------------------------------------------------- */

static void watch_exact_recursive_stream(void **state)
{
    cn_buf_init(&LOG);
    struct cn_store_watcher *once = watch("/wd/x", false, false, 0, "once:");
    struct cn_store_watcher *str = watch("/wd", true, true, 0, "rec:");
    watch("/wd", false, true, 0, "exact:");
    watch("/", true, true, 0, "root:");
    assert_non_null(once);
    assert_non_null(str);
    assert_int_equal(cn_store_watcher_count(S), 4);
    set("/wd/x", "1");  /* 1 */
    set("/wd/y", "2");  /* 2 */
    set("/wd/_z", "3"); /* 3: hidden below /wd and below / */
    set("/wdx", "4");   /* 4: not below /wd */
    assert_int_equal(cn_store_watcher_count(S), 3);
    assert_string_equal(LOG.p, "root:{\"action\":\"set\",\"node\":{\"key\":\"/wd/"
                               "x\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
                               "rec:{\"action\":\"set\",\"node\":{\"key\":\"/wd/"
                               "x\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
                               "once:{\"action\":\"set\",\"node\":{\"key\":\"/wd/"
                               "x\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
                               "root:{\"action\":\"set\",\"node\":{\"key\":\"/wd/"
                               "y\",\"value\":\"2\",\"modifiedIndex\":2,\"createdIndex\":2}}\n"
                               "rec:{\"action\":\"set\",\"node\":{\"key\":\"/wd/"
                               "y\",\"value\":\"2\",\"modifiedIndex\":2,\"createdIndex\":2}}\n"
                               "root:{\"action\":\"set\",\"node\":{\"key\":\"/"
                               "wdx\",\"value\":\"4\",\"modifiedIndex\":4,\"createdIndex\":4}}\n");
    cn_buf_reset(&LOG);
    /* a recursive delete reaches each watcher once, the exact-dir watcher included */
    run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/wd"), .recursive = true)); /* 5 */
    const char *del =
        "{\"action\":\"delete\",\"node\":{\"key\":\"/wd\",\"dir\":true,\"modifiedIndex\":5,"
        "\"createdIndex\":1},\"prevNode\":{\"key\":\"/wd\",\"dir\":true,\"modifiedIndex\":1,"
        "\"createdIndex\":1}}\n";
    char want[2048];
    snprintf(want, sizeof(want), "root:%srec:%sexact:%s", del, del, del);
    assert_string_equal(LOG.p, want);
    cn_store_unwatch(S, str);
    assert_int_equal(cn_store_watcher_count(S), 2);
    cn_buf_free(&LOG);
}

static void watch_hidden_exact(void **state)
{
    cn_buf_init(&LOG);
    watch("/_h", false, false, 0, "h:");
    watch("/a", true, false, 0, "a:");
    set("/_h", "1");
    set("/a/_b/c", "2");
    set("/a/b/_c", "3");
    set("/a/b/c", "4");
    assert_string_equal(
        LOG.p,
        "h:{\"action\":\"set\",\"node\":{\"key\":\"/_h\",\"value\":\"1\",\"modifiedIndex\":1,"
        "\"createdIndex\":1}}\n"
        "a:{\"action\":\"set\",\"node\":{\"key\":\"/a/b/c\",\"value\":\"4\",\"modifiedIndex\":4,"
        "\"createdIndex\":4}}\n");
    /* history scans do not filter hidden nodes (etcd) */
    cn_buf_reset(&LOG);
    watch("/a", true, false, 2, "ha:");
    assert_non_null(strstr(LOG.p, "\"key\":\"/a/_b/c\""));
    cn_buf_free(&LOG);
}

static void watch_ancestor_delete(void **state)
{
    cn_buf_init(&LOG);
    set("/a/b/c", "1"); /* 1 */
    set("/k", "v");     /* 2 */
    watch("/a/b/c", false, false, 0, "c:");
    watch("/a/b/nonexistent", false, false, 0, "n:");
    watch("/ab", false, false, 0, "ab:");
    watch("/k/child", false, false, 0, "kc:");
    run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/a"), .recursive = true)); /* 3 */
    run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/k"))); /* 4: a key: no ancestor rule */
    assert_non_null(
        strstr(LOG.p, "c:{\"action\":\"delete\",\"node\":{\"key\":\"/a\",\"dir\":true"));
    assert_non_null(
        strstr(LOG.p, "n:{\"action\":\"delete\",\"node\":{\"key\":\"/a\",\"dir\":true"));
    assert_null(strstr(LOG.p, "ab:"));
    assert_null(strstr(LOG.p, "kc:"));
    assert_int_equal(cn_store_watcher_count(S), 2);
    /* history: the ancestor rule applies as well */
    cn_buf_reset(&LOG);
    watch("/a/b/c", false, false, 2, "hc:");
    assert_non_null(strstr(LOG.p, "hc:{\"action\":\"delete\",\"node\":{\"key\":\"/a\""));
    cn_buf_free(&LOG);
}

static void watch_history_and_401(void **state)
{
    cn_buf_init(&LOG);
    for (int i = 0; i < 1005; i++)
        set(i % 2 ? "/odd" : "/even", "v");
    assert_int_equal(cn_store_index(S), 1005);
    struct cn_store_watcher *w = (struct cn_store_watcher *)1;
    struct cn_store_err err;
    assert_false(
        cn_store_watch(S, CN_NS_KEYS, CN_STR("/odd"), false, false, 5, log_cb, NULL, &w, &err));
    assert_null(w);
    assert_int_equal(err.ecode, 401);
    assert_string_equal(err.cause, "the requested history has been cleared [6/5]");
    assert_int_equal(err.index, 1005);
    /* oldest still available */
    watch("/odd", false, false, 6, "h:");
    assert_non_null(strstr(LOG.p, "\"modifiedIndex\":6,"));
    cn_buf_reset(&LOG);
    /* a stream from history gets every later match, then live ones */
    struct cn_store_watcher *s = watch("/odd", false, true, 1000, "s:");
    assert_non_null(s);
    assert_non_null(strstr(LOG.p, "\"modifiedIndex\":1000,"));
    assert_non_null(strstr(LOG.p, "\"modifiedIndex\":1002,"));
    assert_non_null(strstr(LOG.p, "\"modifiedIndex\":1004,"));
    assert_null(strstr(LOG.p, "\"modifiedIndex\":1001,"));
    cn_buf_reset(&LOG);
    set("/odd", "live");
    assert_non_null(
        strstr(LOG.p, "s:{\"action\":\"set\",\"node\":{\"key\":\"/odd\",\"value\":\"live\""));
    /* a future index: events before it are ignored */
    cn_buf_reset(&LOG);
    watch("/odd", false, false, 1008, "f:");
    set("/odd", "1007");
    assert_null(strstr(LOG.p, "f:"));
    set("/odd", "1008");
    assert_non_null(
        strstr(LOG.p, "f:{\"action\":\"set\",\"node\":{\"key\":\"/odd\",\"value\":\"1008\""));
    cn_store_unwatch(S, s);
    assert_int_equal(cn_store_watcher_count(S), 0);
    cn_buf_free(&LOG);
}

/* Callbacks that unwatch themselves and others during delivery. */
static struct cn_store_watcher *VICTIM, *SELF;
static int NCALLS;

static void killer_cb(struct cn_store_watcher *w, struct cn_store_event *ev, void *ctx)
{
    NCALLS++;
    if (VICTIM) {
        cn_store_unwatch(S, VICTIM);
        VICTIM = NULL;
    }
    cn_store_unwatch(S, w); /* itself: allowed (no-op for one-shot watchers) */
}

static void victim_cb(struct cn_store_watcher *w, struct cn_store_event *ev, void *ctx)
{
    fail_msg("victim was unwatched before delivery");
}

static void rewatch_cb(struct cn_store_watcher *w, struct cn_store_event *ev, void *ctx)
{
    NCALLS++;
    /* register a new watcher on the same path from inside delivery: it must not see this event */
    struct cn_store_watcher *nw;
    struct cn_store_err err;
    if (NCALLS == 1)
        assert_true(cn_store_watch(S, CN_NS_KEYS, CN_STR("/p"), false, true, 0, rewatch_cb, NULL,
                                   &nw, &err));
}

static void watch_unwatch_in_callback(void **state)
{
    struct cn_store_watcher *w;
    struct cn_store_err err;
    NCALLS = 0;
    assert_true(
        cn_store_watch(S, CN_NS_KEYS, CN_STR("/p"), false, true, 0, killer_cb, NULL, &SELF, &err));
    assert_true(cn_store_watch(S, CN_NS_KEYS, CN_STR("/p"), false, true, 0, victim_cb, NULL,
                               &VICTIM, &err));
    assert_true(
        cn_store_watch(S, CN_NS_KEYS, CN_STR("/p"), false, false, 0, killer_cb, NULL, &w, &err));
    assert_int_equal(cn_store_watcher_count(S), 3);
    set("/p", "1");
    assert_int_equal(NCALLS, 2);
    assert_int_equal(cn_store_watcher_count(S), 0);
    set("/p", "2");
    assert_int_equal(NCALLS, 2);
    /* watchers added during delivery start with the next event */
    NCALLS = 0;
    assert_true(
        cn_store_watch(S, CN_NS_KEYS, CN_STR("/p"), false, true, 0, rewatch_cb, NULL, &w, &err));
    set("/p", "3");
    assert_int_equal(NCALLS, 1);
    assert_int_equal(cn_store_watcher_count(S), 2);
    set("/p", "4");
    assert_int_equal(NCALLS, 3);
    /* history delivery to a stream watcher that unwatches itself */
    NCALLS = 0;
    assert_true(
        cn_store_watch(S, CN_NS_KEYS, CN_STR("/p"), false, true, 1, killer_cb, NULL, &w, &err));
    assert_null(w);
    assert_int_equal(NCALLS, 1);
    assert_int_equal(cn_store_watcher_count(S), 2);
}

static void watch_namespaces(void **state)
{
    cn_buf_init(&LOG);
    watch("/", true, true, 0, "keys:");
    struct cn_store_watcher *w;
    struct cn_store_err err;
    assert_true(
        cn_store_watch(S, CN_NS_SYS, CN_STR("/members"), true, true, 0, log_cb, "sys:", &w, &err));
    run_ns(CN_NS_SYS,
           CMD(.op = CN_OP_SET, .key = CN_STR("/members/1/attributes"), .value = CN_STR("{}")));
    set("/members/1/attributes", "x");
    assert_string_equal(
        LOG.p,
        "sys:{\"action\":\"set\",\"node\":{\"key\":\"/members/1/attributes\",\"value\":\"{}\","
        "\"modifiedIndex\":1,\"createdIndex\":1}}\n"
        "keys:{\"action\":\"set\",\"node\":{\"key\":\"/members/1/attributes\",\"value\":\"x\","
        "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    cn_buf_free(&LOG);
}

/* ---- internal readers, stats --------------------------------------------------------------- */

static void each_cb(const char *key, const char *value, size_t value_len, bool is_dir, void *ctx)
{
    struct cn_buf *b = ctx;
    cn_buf_appendf(b, "%s=%s%s;", key, is_dir ? "<dir>" : "", value ? value : "");
}

static void peek_each_child(void **state)
{
    run_ns(CN_NS_SYS,
           CMD(.op = CN_OP_SET, .key = CN_STR("/members/b/attributes"), .value = CN_STR("B")));
    run_ns(CN_NS_SYS,
           CMD(.op = CN_OP_SET, .key = CN_STR("/members/a/attributes"), .value = CN_STR("A")));
    run_ns(CN_NS_SYS, CMD(.op = CN_OP_SET, .key = CN_STR("/members/_c"), .value = CN_STR("C")));
    run_ns(CN_NS_SYS, CMD(.op = CN_OP_SET, .key = CN_STR("/version"), .value = CN_STR("2.3.0")));
    size_t len = 0;
    const char *v = cn_store_peek(S, CN_NS_SYS, "/version", &len);
    assert_non_null(v);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "2.3.0", 5);
    assert_null(cn_store_peek(S, CN_NS_SYS, "/members", &len));
    assert_null(cn_store_peek(S, CN_NS_KEYS, "/version", &len));
    struct cn_buf b = CN_BUF_INIT;
    cn_store_each_child(S, CN_NS_SYS, "/members", each_cb, &b);
    assert_string_equal(b.p, "/members/_c=C;/members/a=<dir>;/members/b=<dir>;");
    cn_buf_reset(&b);
    cn_store_each_child(S, CN_NS_SYS, "/", each_cb, &b);
    assert_string_equal(b.p, "/members=<dir>;/version=2.3.0;");
    cn_buf_free(&b);
    assert_int_equal(cn_store_key_count(S, CN_NS_SYS), 4);
    /* internal reads are not client gets */
    struct cn_store_stats st;
    cn_store_get_stats(S, &st);
    assert_int_equal(st.gets_success + st.gets_fail, 0);
    assert_int_equal(st.sets_success, 4);
}

static void stats_json(void **state)
{
    set("/a", "1");
    set("/", "x");
    get("/a", false);
    get("/b", false);
    struct cn_store_watcher *w;
    struct cn_store_err err;
    cn_store_watch(S, CN_NS_KEYS, CN_STR("/a"), false, true, 0, log_cb, NULL, &w, &err);
    cn_buf_reset(&OUT);
    cn_store_stats_json(S, &OUT);
    assert_string_equal(OUT.p,
                        "{\"getsSuccess\":1,\"getsFail\":1,\"setsSuccess\":1,\"setsFail\":1,"
                        "\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,"
                        "\"createSuccess\":0,\"createFail\":0,\"compareAndSwapSuccess\":0,"
                        "\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,"
                        "\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":1}");
}

static void noop_consumes_nothing(void **state)
{
    set("/a", "1");
    assert_string_equal(run(CMD(.op = CN_OP_NOOP)), "-");
    assert_int_equal(cn_store_index(S), 1);
}

static void deep_paths(void **state)
{
    /* deep nesting must not recurse on the C stack (GET output is quadratic in depth, so the
     * recursive GET runs on a shallower tree) */
    enum { DEPTH = 100000, GET_DEPTH = 3000 };
    struct cn_buf k = CN_BUF_INIT;
    for (int i = 0; i < DEPTH; i++)
        cn_buf_append(&k, "/d", 2);
    run(CMD(.op = CN_OP_SET, .key = cn_buf_str(&k), .value = CN_STR("leaf")));
    assert_int_equal(R.err.ecode, 0);
    cn_buf_reset(&OUT);
    struct cn_store_err err;
    assert_true(cn_store_get_json(S, CN_NS_KEYS, cn_buf_str(&k), false, true, NOW, &OUT, &err));
    assert_non_null(strstr(OUT.p, "\"value\":\"leaf\""));
    struct cn_buf snap = CN_BUF_INIT;
    cn_store_snapshot_save(S, &snap);
    assert_int_equal(cn_store_snapshot_load(S, snap.p, snap.len), 0);
    run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/d"), .recursive = true));
    assert_int_equal(R.err.ecode, 0);
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), 0);
    k.len = 2 * GET_DEPTH;
    run(CMD(.op = CN_OP_SET, .key = cn_buf_str(&k), .value = CN_STR("leaf")));
    cn_buf_reset(&OUT);
    assert_true(cn_store_get_json(S, CN_NS_KEYS, CN_STR("/"), true, true, NOW, &OUT, &err));
    assert_non_null(strstr(OUT.p, "\"value\":\"leaf\""));
    assert_memory_equal(OUT.p + OUT.len - 4, "}]}}", 4);
    cn_buf_free(&snap);
    cn_buf_free(&k);
}

/* ---- snapshots ----------------------------------------------------------------------------- */

static void populate(void)
{
    int64_t e = NOW + 100 * CN_NS_PER_S;
    set("/a/b/c", "1");
    set("/a/_hidden", "h");
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/t"), .value = CN_STR("ttl"), .expire_ns = e));
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/td"), .dir = true, .expire_ns = e + 1));
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/t"), .refresh = true, .expire_ns = e + 2));
    run(CMD(.op = CN_OP_CREATE_SEQ, .key = CN_STR("/q"), .value = CN_STR("j")));
    run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/a/b"), .recursive = true));
    set("/bin", "\x00\x01\xff");
    run_ns(CN_NS_SYS,
           CMD(.op = CN_OP_SET, .key = CN_STR("/members/1/attributes"), .value = CN_STR("{}")));
    run_ns(CN_NS_AUTH, CMD(.op = CN_OP_SET, .key = CN_STR("/enabled"), .value = CN_STR("false")));
}

static void snapshot_roundtrip(void **state)
{
    populate();
    struct cn_buf s1 = CN_BUF_INIT, s2 = CN_BUF_INIT, g1 = CN_BUF_INIT, g2 = CN_BUF_INIT;
    cn_store_snapshot_save(S, &s1);
    get("/", true);
    cn_buf_append(&g1, OUT.p, OUT.len);

    struct cn_store *orig = S;
    S = cn_store_new();
    set("/junk", "x");
    cn_buf_init(&LOG);
    watch("/junk", false, true, 0, "j:");
    assert_int_equal(cn_store_snapshot_load(S, s1.p, s1.len), 0);
    assert_string_equal(LOG.p, "j:END\n"); /* live watchers are ended */
    assert_int_equal(cn_store_watcher_count(S), 0);
    cn_store_snapshot_save(S, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.p, s2.p, s1.len);
    get("/", true);
    cn_buf_append(&g2, OUT.p, OUT.len);
    assert_string_equal(g1.p, g2.p);
    assert_int_equal(cn_store_index(S), cn_store_index(orig));
    assert_int_equal(cn_store_next_expiry(S), cn_store_next_expiry(orig));
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), cn_store_key_count(orig, CN_NS_KEYS));
    assert_int_equal(cn_store_key_count(S, CN_NS_SYS), 1);
    size_t len;
    assert_non_null(cn_store_peek(S, CN_NS_AUTH, "/enabled", &len));
    /* the history came along: a watch from index 1 sees the first event */
    cn_buf_reset(&LOG);
    watch("/a/b/c", false, false, 1, "h:");
    assert_non_null(strstr(LOG.p, "h:{\"action\":\"set\",\"node\":{\"key\":\"/a/b/c\""));
    /* and the same operation yields the same result on both */
    int64_t later = NOW + 200 * CN_NS_PER_S;
    sync_at(later);
    uint64_t n1 = R.nexpired;
    struct cn_store *copy = S;
    S = orig;
    sync_at(later);
    assert_int_equal(R.nexpired, n1);
    assert_int_equal(n1, 2);
    cn_buf_reset(&s1);
    cn_store_snapshot_save(S, &s1);
    S = copy;
    cn_buf_reset(&s2);
    cn_store_snapshot_save(S, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.p, s2.p, s1.len);
    cn_store_free(orig);
    cn_buf_free(&s1);
    cn_buf_free(&s2);
    cn_buf_free(&g1);
    cn_buf_free(&g2);
    cn_buf_free(&LOG);
}

static void snapshot_corrupt_rejected(void **state)
{
    populate();
    struct cn_buf snap = CN_BUF_INIT, before = CN_BUF_INIT, after = CN_BUF_INIT;
    cn_store_snapshot_save(S, &snap);
    struct cn_store *orig = S;
    S = cn_store_new();
    set("/keep", "me");
    get("/", true);
    cn_buf_append(&before, OUT.p, OUT.len);
    cn_store_snapshot_save(S, &after); /* reuse as the "before" snapshot bytes */
    /* every single-byte flip and every truncation is rejected, store unchanged */
    for (size_t i = 0; i < snap.len; i++) {
        snap.p[i] ^= 0x5a;
        int rc = cn_store_snapshot_load(S, snap.p, snap.len);
        assert_true(rc == CN_ERR_CORRUPT || rc == CN_ERR_VERSION);
        snap.p[i] ^= 0x5a;
    }
    for (size_t i = 0; i < snap.len; i++)
        assert_int_equal(cn_store_snapshot_load(S, snap.p, i), CN_ERR_CORRUPT);
    snap.p[4] = 2; /* version */
    assert_int_equal(cn_store_snapshot_load(S, snap.p, snap.len), CN_ERR_VERSION);
    snap.p[4] = 1;
    get("/", true);
    assert_string_equal(OUT.p, before.p);
    assert_int_equal(cn_store_index(S), 1);
    struct cn_buf again = CN_BUF_INIT;
    cn_store_snapshot_save(S, &again);
    assert_int_equal(again.len, after.len);
    assert_memory_equal(again.p, after.p, again.len);
    /* and the intact one still loads */
    assert_int_equal(cn_store_snapshot_load(S, snap.p, snap.len), 0);
    assert_int_equal(cn_store_index(S), cn_store_index(orig));
    cn_store_free(orig);
    cn_buf_free(&snap);
    cn_buf_free(&before);
    cn_buf_free(&after);
    cn_buf_free(&again);
}

/* ---- frozen versions (the persistent tree) ------------------------------------------------ */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((rng_state >> 33) % n);
}

/* One deterministic pseudo-random write: every op, keys at several depths, TTLs and expiry,
 * directories replaced and deleted recursively, values of several sizes. */
static void random_cmd(struct cn_store_cmd *c, char *key, size_t keycap, char *val, size_t valcap,
                       int64_t *now)
{
    static const uint8_t ops[] = {CN_OP_SET,        CN_OP_SET,    CN_OP_SET, CN_OP_CREATE,
                                  CN_OP_CREATE_SEQ, CN_OP_UPDATE, CN_OP_CAS, CN_OP_DELETE,
                                  CN_OP_CAD,        CN_OP_SYNC};
    memset(c, 0, sizeof(*c));
    c->op = ops[rnd(sizeof(ops))];
    c->ns = rnd(8) == 0 ? CN_NS_SYS : CN_NS_KEYS;
    switch (rnd(3)) {
    case 0:
        snprintf(key, keycap, "/k%u", rnd(40));
        break;
    case 1:
        snprintf(key, keycap, "/d%u/k%u", rnd(4), rnd(30));
        break;
    default:
        snprintf(key, keycap, "/d%u/e%u/%sk%u", rnd(4), rnd(3), rnd(5) == 0 ? "_" : "", rnd(10));
        break;
    }
    if (rnd(6) == 0) snprintf(key, keycap, "/d%u", rnd(4)); /* a directory itself */
    size_t vlen = rnd(4) == 0 ? 0 : 1 + rnd((uint32_t)valcap - 1);
    for (size_t i = 0; i < vlen; i++)
        val[i] = (char)('a' + rnd(26));
    c->key = cn_str_c(key);
    c->value = cn_str_make(val, vlen);
    c->dir = rnd(10) == 0;
    c->recursive = rnd(2) == 0;
    c->refresh = c->op != CN_OP_CREATE && c->op != CN_OP_CREATE_SEQ && rnd(12) == 0;
    if (c->refresh) c->value = CN_STR_NULL;
    if (c->op == CN_OP_CAS || c->op == CN_OP_CAD) {
        if (rnd(2)) c->prev_index = 1 + rnd(200);
        c->has_prev_value = rnd(2);
        c->prev_value = cn_str_make(val, vlen > 3 ? 3 : vlen);
    }
    *now += rnd(3) * CN_NS_PER_S;
    c->now_ns = *now;
    if (rnd(4) == 0) c->expire_ns = *now + (1 + rnd(20)) * CN_NS_PER_S;
}

static void apply_random(struct cn_store *s, uint64_t seed, int n)
{
    uint64_t saved = rng_state;
    rng_state = seed;
    char key[64], val[300];
    int64_t now = NOW;
    struct cn_store_result res;
    for (int i = 0; i < n; i++) {
        struct cn_store_cmd c;
        random_cmd(&c, key, sizeof(key), val, sizeof(val), &now);
        cn_store_apply_cmd(s, &c, &res);
    }
    rng_state = saved;
}

static void snapshot_of(struct cn_store *s, struct cn_buf *out)
{
    cn_buf_reset(out);
    cn_store_snapshot_save(s, out);
}

/* A frozen version keeps the bytes it had at the freeze however the store changes after it,
 * several versions can be frozen at once, and the live store ends exactly as one that was never
 * frozen (the copies are invisible). */
static void frozen_versions_unchanged(void **state)
{
    struct cn_store *plain = cn_store_new();
    apply_random(S, 7, 3000);
    apply_random(plain, 7, 3000);
    struct cn_buf at1 = CN_BUF_INIT, at2 = CN_BUF_INIT, enc = CN_BUF_INIT, a = CN_BUF_INIT,
                  b = CN_BUF_INIT;
    snapshot_of(S, &at1);
    struct cn_store_frozen *f1 = cn_store_freeze(S);
    apply_random(S, 8, 1500);
    apply_random(plain, 8, 1500);
    snapshot_of(S, &at2);
    struct cn_store_frozen *f2 = cn_store_freeze(S);
    apply_random(S, 9, 1500);
    apply_random(plain, 9, 1500);
    /* the mix: about half the writes succeed, and a live key set of some size */
    assert_true(cn_store_index(S) > 2000);
    assert_true(cn_store_key_count(S, CN_NS_KEYS) > 50);

    cn_store_frozen_encode(f2, &enc);
    assert_int_equal(enc.len, at2.len);
    assert_memory_equal(enc.p, at2.p, enc.len);
    cn_store_frozen_free(f2);
    cn_buf_reset(&enc);
    cn_store_frozen_encode(f1, &enc);
    assert_int_equal(enc.len, at1.len);
    assert_memory_equal(enc.p, at1.p, enc.len);

    /* the live store and the never-frozen one agree byte for byte, and on every read */
    snapshot_of(S, &a);
    snapshot_of(plain, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    cn_buf_reset(&a);
    struct cn_store_err e;
    assert_true(cn_store_get_json(S, CN_NS_KEYS, CN_STR("/"), true, true, NOW, &a, &e));
    cn_buf_reset(&b);
    assert_true(cn_store_get_json(plain, CN_NS_KEYS, CN_STR("/"), true, true, NOW, &b, &e));
    assert_string_equal(a.p, b.p);
    assert_int_equal(cn_store_next_expiry(S), cn_store_next_expiry(plain));
    assert_int_equal(cn_store_key_count(S, CN_NS_KEYS), cn_store_key_count(plain, CN_NS_KEYS));

    /* a frozen version outlives a snapshot load and the store itself */
    assert_int_equal(cn_store_snapshot_load(S, at2.p, at2.len), 0);
    snapshot_of(S, &a);
    assert_memory_equal(a.p, at2.p, at2.len);
    cn_store_free(S);
    S = cn_store_new();
    cn_buf_reset(&enc);
    cn_store_frozen_encode(f1, &enc);
    assert_memory_equal(enc.p, at1.p, at1.len);
    cn_store_frozen_free(f1);
    /* and what it encoded loads into a store equal to the one frozen */
    assert_int_equal(cn_store_snapshot_load(S, enc.p, enc.len), 0);
    snapshot_of(S, &a);
    assert_memory_equal(a.p, at1.p, at1.len);

    cn_store_free(plain);
    cn_buf_free(&at1);
    cn_buf_free(&at2);
    cn_buf_free(&enc);
    cn_buf_free(&a);
    cn_buf_free(&b);
}

struct encoder {
    const struct cn_store_frozen *f;
    struct cn_buf out;
};

static void *encode_thread(void *arg)
{
    struct encoder *e = arg;
    cn_store_frozen_encode(e->f, &e->out);
    return NULL;
}

/* The encoding runs on another thread while the loop applies: the bytes are those of the
 * freeze (under ASan this also proves no frozen node is freed or rewritten meanwhile). */
static void frozen_encode_on_a_thread(void **state)
{
    apply_random(S, 21, 4000);
    struct cn_buf at = CN_BUF_INIT;
    for (int round = 0; round < 5; round++) {
        snapshot_of(S, &at);
        struct encoder e = {cn_store_freeze(S), CN_BUF_INIT};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, encode_thread, &e), 0);
        apply_random(S, 100 + (uint64_t)round, 2000);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(e.out.len, at.len);
        assert_memory_equal(e.out.p, at.p, at.len);
        cn_store_frozen_free((struct cn_store_frozen *)e.f);
        cn_buf_free(&e.out);
    }
    cn_buf_free(&at);
}

/* History events share their values with the tree: a key written with a big value, then its
 * events, hold one copy (checked through the event pointers). */
static void history_shares_values(void **state)
{
    char big[4096];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    set("/big", big);
    struct cn_store_event *first = R.ev;
    cn_store_event_ref(first);
    run(CMD(.op = CN_OP_SET, .key = CN_STR("/big"), .refresh = true,
            .expire_ns = NOW + CN_NS_PER_S));
    /* the refresh's node and prevNode, the first event's node and the tree: one value */
    assert_ptr_equal(R.ev->node.value, first->node.value);
    assert_ptr_equal(R.ev->prev.value, first->node.value);
    size_t len;
    assert_ptr_equal(cn_store_peek(S, CN_NS_KEYS, "/big", &len), first->node.value);
    assert_int_equal(len, sizeof(big) - 1);
    run(CMD(.op = CN_OP_DELETE, .key = CN_STR("/big")));
    assert_ptr_equal(R.ev->prev.value, first->node.value);
    assert_null(R.ev->node.value);
    cn_store_event_unref(first);
}

/* ---- command codec ------------------------------------------------------------------------- */

static void cmd_codec(void **state)
{
    struct cn_store_cmd c = {
        .op = CN_OP_CAS,
        .ns = CN_NS_KEYS,
        .dir = true,
        .recursive = true,
        .refresh = true,
        .has_prev_value = true,
        .key = CN_STR("/some/key"),
        .value = CN_STR("value\0with nul"),
        .prev_value = CN_STR(""),
        .prev_index = 300,
        .expire_ns = NOW + 1,
        .now_ns = NOW,
    };
    struct cn_buf b = CN_BUF_INIT;
    cn_store_cmd_encode(&c, &b);
    assert_int_equal((uint8_t)b.p[0], 1); /* format version first */
    struct cn_store_cmd d;
    assert_int_equal(cn_store_cmd_decode(b.p, b.len, &d), 0);
    assert_int_equal(d.op, c.op);
    assert_int_equal(d.ns, c.ns);
    assert_true(d.dir && d.recursive && d.refresh && d.has_prev_value);
    assert_true(cn_str_eq(d.key, c.key));
    assert_true(cn_str_eq(d.value, c.value));
    assert_int_equal(d.prev_value.len, 0);
    assert_int_equal(d.prev_index, 300);
    assert_int_equal(d.expire_ns, c.expire_ns);
    assert_int_equal(d.now_ns, c.now_ns);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(cn_store_cmd_decode(b.p, i, &d), CN_ERR_CORRUPT);
    cn_buf_putc(&b, 0);
    assert_int_equal(cn_store_cmd_decode(b.p, b.len, &d), CN_ERR_CORRUPT); /* trailing byte */
    b.p[0] = 9;
    assert_int_equal(cn_store_cmd_decode(b.p, b.len, &d), CN_ERR_VERSION);
    cn_buf_reset(&b);
    /* minimal SYNC */
    struct cn_store_cmd sync = {.op = CN_OP_SYNC, .now_ns = NOW};
    cn_store_cmd_encode(&sync, &b);
    assert_int_equal(b.len, 13);
    assert_int_equal(cn_store_cmd_decode(b.p, b.len, &d), 0);
    assert_int_equal(d.op, CN_OP_SYNC);
    b.p[1] = 42; /* unknown op */
    assert_int_equal(cn_store_cmd_decode(b.p, b.len, &d), CN_ERR_CORRUPT);
    assert_int_equal(cn_store_apply(S, b.p, b.len, &R), CN_ERR_CORRUPT);
    b.p[1] = CN_OP_SYNC;
    b.p[2] = 3; /* bad namespace */
    assert_int_equal(cn_store_cmd_decode(b.p, b.len, &d), CN_ERR_CORRUPT);
    assert_int_equal(cn_store_index(S), 0);
    cn_buf_free(&b);
}

/* cn_store_cmd_encoded_len is exact for every field's presence and size, and a value left as a
 * hole and written there gives the same bytes as one encoded from memory. */
static void cmd_encoded_len_and_hole(void **state)
{
    (void)state;
    char big[20000];
    memset(big, 'v', sizeof(big));
    struct cn_store_cmd cs[] = {
        {.op = CN_OP_SYNC, .now_ns = NOW},
        {.op = CN_OP_SET, .key = CN_STR("/k"), .value = CN_STR("x"), .now_ns = NOW},
        {.op = CN_OP_CAS,
         .key = CN_STR("/a/b"),
         .value = {big, sizeof(big)},
         .has_prev_value = true,
         .prev_value = {big, 200},
         .prev_index = 1u << 20,
         .expire_ns = NOW + 5,
         .now_ns = NOW},
        {.op = CN_OP_DELETE, .key = {big, 130}, .recursive = true, .dir = true, .now_ns = NOW},
    };
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
        cn_store_cmd_encode(&cs[i], &a);
        assert_int_equal(cn_store_cmd_encoded_len(&cs[i]), a.len);
        struct cn_store_cmd h = cs[i];
        h.value.p = NULL;
        cn_buf_reserve_exact(&b, a.len);
        char *hole = cn_store_cmd_encode_hole(&h, &b);
        assert_true((hole != NULL) == (cs[i].value.len > 0));
        if (hole) memcpy(hole, cs[i].value.p, cs[i].value.len);
        assert_int_equal(b.len, a.len);
        assert_int_equal(b.cap, a.len + 1); /* no growth past the exact reservation */
        assert_memory_equal(a.p, b.p, a.len);
        cn_buf_free(&a);
        cn_buf_free(&b);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(set_and_get),
        T(path_cleaning),
        T(parents_and_listing),
        T(sorted_children),
        T(set_errors),
        T(create_ops),
        T(in_order_keys),
        T(update_ops),
        T(cas_ops),
        T(delete_ops),
        T(cad_ops),
        T(long_cause_truncated),
        T(ttl_and_expiry),
        T(ttl_set_replace_and_ties),
        T(dir_ttl_expires_subtree),
        T(expire_event_json),
        T(refresh_ops),
        T(watch_exact_recursive_stream),
        T(watch_hidden_exact),
        T(watch_ancestor_delete),
        T(watch_history_and_401),
        T(watch_unwatch_in_callback),
        T(watch_namespaces),
        T(peek_each_child),
        T(stats_json),
        T(noop_consumes_nothing),
        T(deep_paths),
        T(snapshot_roundtrip),
        T(snapshot_corrupt_rejected),
        T(frozen_versions_unchanged),
        T(frozen_encode_on_a_thread),
        T(history_shares_values),
        T(cmd_codec),
        T(cmd_encoded_len_and_hole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
