/* Unit tests for src/config: flag syntax, env fallback and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

static int load(struct cn_config *cfg, char **argv, char **envp)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return cn_config_load(cfg, argc, argv, envp);
}

static void flags_and_env(void **state)
{
    struct cn_config cfg;
    char *argv[] = {"cairn",
                    "-name=n1",
                    "--data-dir",
                    "/tmp/x",
                    "--snapshot-count=77",
                    "--listen-client-urls",
                    "http://127.0.0.1:1",
                    "--advertise-client-urls",
                    "http://127.0.0.1:1",
                    NULL};
    char *envp[] = {"ETCD_NAME=shadowed", "ETCD_HEARTBEAT_INTERVAL=50", "ETCD_ELECTION_TIMEOUT=500",
                    "PATH=/bin", NULL};
    assert_int_equal(load(&cfg, argv, envp), CN_CONFIG_OK);
    assert_string_equal(cfg.name, "n1");
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_int_equal(cfg.snapshot_count, 77);
    assert_int_equal(cfg.heartbeat_ms, 50);
    assert_int_equal(cfg.election_ms, 500);
    assert_int_equal(cfg.listen_client.n, 1);
    assert_int_equal(cfg.listen_client.u[0].port, 1);
    /* The default initial cluster is rewritten with the name. */
    assert_int_equal(cfg.ninitial, 1);
    assert_string_equal(cfg.initial[0].name, "n1");
    assert_int_equal(cfg.initial[0].peer_urls.n, 2);
    cn_config_free(&cfg);
}

static void bad_values(void **state)
{
    struct cn_config cfg;
    char *envp[] = {NULL};
    char *a1[] = {"cairn", "--bogus", NULL};
    assert_int_equal(load(&cfg, a1, envp), CN_CONFIG_USAGE); /* Go's flag package: exit 2 */
    cn_config_free(&cfg);
    char *a2[] = {"cairn", "--snapshot-count", "abc", NULL};
    assert_int_equal(load(&cfg, a2, envp), CN_CONFIG_ERROR);
    cn_config_free(&cfg);
    char *a3[] = {"cairn", "--election-timeout", "100", NULL};
    assert_int_equal(load(&cfg, a3, envp), CN_CONFIG_ERROR);
    cn_config_free(&cfg);
    char *a4[] = {"cairn", "stray", NULL};
    assert_int_equal(load(&cfg, a4, envp), CN_CONFIG_ERROR);
    cn_config_free(&cfg);
    char *a5[] = {"cairn",       "--initial-cluster", "a=http://h:1",
                  "--discovery", "http://d:1/x",      NULL};
    assert_int_equal(load(&cfg, a5, envp), CN_CONFIG_ERROR);
    cn_config_free(&cfg);
    char *e6[] = {"ETCD_SNAPSHOT_COUNT=zz", NULL};
    char *a6[] = {"cairn", NULL};
    assert_int_equal(load(&cfg, a6, e6), CN_CONFIG_ERROR);
    cn_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_and_env),
        cmocka_unit_test(bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
