/* Unit tests for src/cluster: etcd's id formulas, the member records written and read back
 * through a real store, the member-list JSON both ways, and the bootstrap checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "common/err.h"
#include "store/store.h"

static void ids_match_etcd(void **state)
{
    (void)state;
    /* Observed on etcd 3.4.23 (spec etcd-cluster.md §3). */
    char *urls[] = {"http://127.0.0.1:23801"};
    uint64_t id = cn_cluster_member_id(urls, 1, "etcd-cluster", 0);
    assert_true(id == 0xbdae9bbc11dd390dULL);
    assert_true(cn_cluster_id(&id, 1) == 0xd1cfaf999eb97a2aULL);
    char *durls[] = {"http://127.0.0.1:23803"};
    assert_true(cn_cluster_member_id(durls, 1,
                                     "http://127.0.0.1:23791/v2/keys/_etcd/registry/"
                                     "6c007a14875d53d9bf0ef5a6fc0257c8",
                                     0) == 0xfda44dfd8f42170eULL);
    /* the time makes a re-added URL a new member */
    assert_true(cn_cluster_member_id(urls, 1, "", 1700000000) !=
                cn_cluster_member_id(urls, 1, "", 1700000001));
    /* the cluster id does not depend on the order of the ids */
    uint64_t ab[] = {1, 2}, ba[] = {2, 1};
    assert_true(cn_cluster_id(ab, 2) == cn_cluster_id(ba, 2));
}

static void apply_batch(struct cn_store *s, const struct cn_buf *batch)
{
    size_t off = 0;
    const void *cmd;
    size_t len;
    int rc;
    while ((rc = cn_members_batch_next(batch->p, batch->len, &off, &cmd, &len)) == 1) {
        struct cn_store_result res;
        assert_int_equal(cn_store_apply(s, cmd, len, &res), 0);
        assert_int_equal(res.err.ecode, 0);
    }
    assert_int_equal(rc, 0);
}

static void apply_cmd(struct cn_store *s, const struct cn_buf *cmd)
{
    struct cn_store_result res;
    assert_int_equal(cn_store_apply(s, cmd->p, cmd->len, &res), 0);
    assert_int_equal(res.err.ecode, 0);
}

static void records_round_trip(void **state)
{
    (void)state;
    struct cn_store *s = cn_store_new();
    struct cn_buf b = CN_BUF_INIT;
    char *p1[] = {"http://10.0.0.1:2380"};
    char *p2[] = {"http://10.0.0.2:2380", "http://10.0.0.2:7001"};
    cn_members_batch_join(&b, 0x2b, p2, 2, 0);
    cn_members_batch_join(&b, 0x1a, p1, 1, 0);
    apply_batch(s, &b);
    char *c1[] = {"http://10.0.0.1:2379"};
    cn_buf_reset(&b);
    cn_members_cmd_publish(&b, 0x1a, "infra<0>", c1, 1, 5);
    apply_cmd(s, &b);

    struct cn_member_list l;
    cn_members_load(s, &l);
    assert_int_equal(l.n, 2);
    assert_true(l.m[0].id == 0x1a && l.m[1].id == 0x2b); /* sorted by id */
    assert_string_equal(l.m[0].name, "infra<0>");
    assert_int_equal(l.m[0].n_client, 1);
    assert_string_equal(l.m[0].client_urls[0], "http://10.0.0.1:2379");
    assert_string_equal(l.m[1].name, "");
    assert_int_equal(l.m[1].n_peer, 2);
    assert_string_equal(l.m[1].peer_urls[1], "http://10.0.0.2:7001");
    assert_true(cn_member_list_has_peer_url(&l, "http://10.0.0.2:7001", 0x1a));
    assert_false(cn_member_list_has_peer_url(&l, "http://10.0.0.2:7001", 0x2b));
    assert_non_null(cn_member_list_find(&l, 0x2b));
    assert_null(cn_member_list_find(&l, 0x3c));

    struct cn_buf j = CN_BUF_INIT;
    cn_member_list_json(&j, &l);
    cn_buf_putc(&j, '\0');
    /* Go's encoding/json escapes < and > */
    assert_string_equal(j.p,
                        "[{\"id\":\"1a\",\"name\":\"infra\\u003c0\\u003e\",\"peerURLs\":"
                        "[\"http://10.0.0.1:2380\"],\"clientURLs\":[\"http://10.0.0.1:2379\"]},"
                        "{\"id\":\"2b\",\"name\":\"\",\"peerURLs\":[\"http://10.0.0.2:2380\","
                        "\"http://10.0.0.2:7001\"],\"clientURLs\":[]}]");
    cn_member_list_free(&l);

    char url[64];
    assert_true(cn_members_peer_url(s, 0x2b, url, sizeof(url)));
    assert_string_equal(url, "http://10.0.0.2:2380");
    assert_false(cn_members_peer_url(s, 0x2b, url, 8)); /* does not fit */
    assert_false(cn_members_peer_url(s, 0x3c, url, sizeof(url)));
    assert_true(cn_members_attributes_equal(s, 0x1a, "infra<0>", c1, 1));
    assert_false(cn_members_attributes_equal(s, 0x1a, "infra0", c1, 1));
    assert_false(cn_members_attributes_equal(s, 0x2b, "", NULL, 0));

    assert_false(cn_members_has_version(s));
    cn_buf_reset(&b);
    cn_members_cmd_version(&b, "2.3.0", 6);
    apply_cmd(s, &b);
    assert_true(cn_members_has_version(s));

    /* removal: the records go, the id stays known */
    assert_false(cn_members_is_removed(s, 0x2b));
    cn_buf_reset(&b);
    cn_members_batch_remove(&b, 0x2b, 7);
    apply_batch(s, &b);
    assert_true(cn_members_is_removed(s, 0x2b));
    assert_false(cn_members_peer_url(s, 0x2b, url, sizeof(url)));
    cn_members_load(s, &l);
    assert_int_equal(l.n, 1);
    assert_true(l.m[0].id == 0x1a);
    cn_member_list_free(&l);

    /* an update replaces the peer URLs */
    char *p1b[] = {"http://10.0.0.9:2380"};
    cn_buf_reset(&b);
    cn_members_cmd_peer_urls(&b, 0x1a, p1b, 1, false, 8);
    apply_cmd(s, &b);
    assert_true(cn_members_peer_url(s, 0x1a, url, sizeof(url)));
    assert_string_equal(url, "http://10.0.0.9:2380");

    cn_buf_free(&j);
    cn_buf_free(&b);
    cn_store_free(s);
}

static void batch_cut_short(void **state)
{
    (void)state;
    struct cn_buf b = CN_BUF_INIT;
    cn_members_batch_add(&b, "abc", 3);
    size_t off = 0;
    const void *cmd;
    size_t len;
    assert_int_equal(cn_members_batch_next(b.p, b.len, &off, &cmd, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(cmd, "abc", 3);
    assert_int_equal(cn_members_batch_next(b.p, b.len, &off, &cmd, &len), 0);
    off = 0;
    assert_int_equal(cn_members_batch_next(b.p, b.len - 1, &off, &cmd, &len), CN_ERR_CORRUPT);
    cn_buf_free(&b);
}

static void parse_lists(void **state)
{
    (void)state;
    struct cn_member_list l;
    char err[128];
    /* etcd 2's peer port: an array, ids as hex strings */
    const char *a = "[{\"id\":\"8e9e05c52164694d\",\"name\":\"default\",\"peerURLs\":"
                    "[\"http://localhost:2380\"],\"clientURLs\":[\"http://localhost:2379\"]},7]";
    assert_int_equal(cn_member_list_parse(cn_str_c(a), CN_MEMBER_LIST_PEER, &l, err, sizeof(err)),
                     0);
    assert_int_equal(l.n, 1);
    assert_true(l.m[0].id == 0x8e9e05c52164694dULL);
    assert_string_equal(l.m[0].name, "default");
    assert_string_equal(l.m[0].peer_urls[0], "http://localhost:2380");
    cn_member_list_free(&l);
    /* etcd 3's: ids as numbers, beyond int64 too; and the client API's object form */
    const char *b = "{\"members\":[{\"id\":10276657743932975437,\"name\":\"x\",\"peerURLs\":"
                    "[\"http://a:2380\",5],\"clientURLs\":null},{\"id\":12,\"name\":\"y\"}]}";
    assert_int_equal(cn_member_list_parse(cn_str_c(b), CN_MEMBER_LIST_CLIENT, &l, err, sizeof(err)),
                     0);
    assert_int_equal(l.n, 2);
    assert_true(l.m[0].id != 0); /* rounded to a double's precision, but present */
    assert_int_equal(l.m[0].n_peer, 1);
    assert_int_equal(l.m[0].n_client, 0);
    assert_true(l.m[1].id == 12);
    cn_member_list_free(&l);
    assert_int_equal(cn_member_list_parse(cn_str_c("{\"members\":3}"), CN_MEMBER_LIST_CLIENT, &l,
                                          err, sizeof(err)),
                     CN_ERR_PARSE);
    assert_string_equal(err, "not a member list");
    /* an object is not the peer form; an object without members is an empty client list */
    assert_int_equal(cn_member_list_parse(cn_str_c(b), CN_MEMBER_LIST_PEER, &l, err, sizeof(err)),
                     CN_ERR_PARSE);
    assert_int_equal(
        cn_member_list_parse(cn_str_c("{}"), CN_MEMBER_LIST_CLIENT, &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(
        cn_member_list_parse(cn_str_c("[{"), CN_MEMBER_LIST_PEER, &l, err, sizeof(err)),
        CN_ERR_PARSE);
    assert_int_equal(l.n, 0);
}

static void initial_checks(void **state)
{
    (void)state;
    char *u0[] = {"http://10.0.0.1:2380"};
    char *u1[] = {"http://10.0.0.2:2380"};
    char *dup[] = {"http://10.0.0.1:2380"};
    struct cn_cluster_seed seeds[] = {{"infra0", 1, u0, 0}, {"infra1", 1, u1, 0}};
    char err[256];
    assert_int_equal(cn_cluster_check_initial(seeds, 2, "infra1", u1, 1, err, sizeof(err)), 0);
    assert_int_equal(cn_cluster_check_initial(seeds, 2, "infra9", u1, 1, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "couldn't find local name \"infra9\" in the initial cluster configuration");
    assert_int_equal(cn_cluster_check_initial(seeds, 2, "infra1", u0, 1, err, sizeof(err)), -1);
    assert_string_equal(err, "--initial-cluster must include infra1=http://10.0.0.1:2380 given "
                             "--initial-advertise-peer-urls=http://10.0.0.1:2380");
    struct cn_cluster_seed dups[] = {{"infra0", 1, u0, 0}, {"infra1", 1, dup, 0}};
    assert_int_equal(cn_cluster_check_initial(dups, 2, "infra0", u0, 1, err, sizeof(err)), -1);
    assert_string_equal(err, "initial cluster has duplicate url http://10.0.0.1:2380");
}

static void join_matching(void **state)
{
    (void)state;
    char *u0[] = {"http://10.0.0.1:2380"};
    char *u1[] = {"http://10.0.0.2:2380"};
    struct cn_cluster_seed seeds[] = {{"infra0", 1, u0, 0}, {"infra1", 1, u1, 0}};
    struct cn_member_list l;
    char err[128];
    const char *body =
        "[{\"id\":\"a1\",\"peerURLs\":[\"http://10.0.0.2:2380\"]},"
        "{\"id\":\"b2\",\"name\":\"infra0\",\"peerURLs\":[\"http://10.0.0.1:2380\"]}]";
    assert_int_equal(
        cn_member_list_parse(cn_str_c(body), CN_MEMBER_LIST_PEER, &l, err, sizeof(err)), 0);
    uint64_t self = 0;
    assert_int_equal(cn_cluster_match_remote(seeds, 2, "infra1", &l, &self, err, sizeof(err)), 0);
    assert_true(self == 0xa1);
    assert_true(seeds[0].id == 0xb2 && seeds[1].id == 0xa1);
    assert_int_equal(cn_cluster_match_remote(seeds, 1, "infra1", &l, &self, err, sizeof(err)), -1);
    assert_string_equal(err, "member count is unequal");
    char *u9[] = {"http://10.0.0.9:2380"};
    struct cn_cluster_seed other[] = {{"infra0", 1, u0, 0}, {"infra1", 1, u9, 0}};
    assert_int_equal(cn_cluster_match_remote(other, 2, "infra1", &l, &self, err, sizeof(err)), -1);
    assert_string_equal(err, "unmatched member while checking PeerURLs");
    assert_int_equal(cn_cluster_match_remote(seeds, 2, "infra7", &l, &self, err, sizeof(err)), -1);
    assert_string_equal(err, "the cluster does not list this member");
    cn_member_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_match_etcd),  cmocka_unit_test(records_round_trip),
        cmocka_unit_test(batch_cut_short), cmocka_unit_test(parse_lists),
        cmocka_unit_test(initial_checks),  cmocka_unit_test(join_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
