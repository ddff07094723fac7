/* main: the simulation's command line.
 *
 *   raft_sim --seeds N [--start S]   run seeds S..S+N-1 (CN_SIM_SEEDS in the environment overrides
 *                                    N, for slow sanitizer builds); a failure prints its seed
 *                                    and the command that replays it
 *   raft_sim replay SEED             run one seed with a readable trace of every event
 *   --break-figure8                  run the core with the commit rule (§3.6.2) broken
 *   --break-vote                     run the core with the election restriction (§3.6.1) broken
 *   --break-v3-snapshot              snapshots carry an empty v3 key space
 *   --expect-failure                 succeed only if some seed fails (proves the checks bite)
 *   --fault-ms MS                    length of the fault phase (default 3000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "sim.h"

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: raft_sim --seeds N [--start S] [--break-figure8|--break-vote|"
            "--break-v3-snapshot] [--expect-failure]\n"
            "       raft_sim replay SEED [--break-figure8|--break-vote|--break-v3-snapshot]\n");
    return 2;
}

int main(int argc, char **argv)
{
    cn_log_init();
    /* the members' own log lines would drown the run's report: errors only */
    cn_log_level_max = CN_LOG_ERR;
    struct sim_opts o = {0};
    o.fault_ms = 3000;
    unsigned long long n = 0, start = 1;
    bool replay = false, expect_failure = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "replay") == 0 && i + 1 < argc) {
            replay = true;
            start = strtoull(argv[++i], NULL, 10);
            n = 1;
        } else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            n = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--start") == 0 && i + 1 < argc) {
            start = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--fault-ms") == 0 && i + 1 < argc) {
            o.fault_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--unreachable") == 0) {
            o.unreachable = true;
        } else if (strcmp(argv[i], "--break-figure8") == 0) {
            o.break_figure8 = true;
        } else if (strcmp(argv[i], "--break-vote") == 0) {
            o.break_vote = true;
        } else if (strcmp(argv[i], "--break-v3-snapshot") == 0) {
            o.break_v3_snapshot = true;
        } else if (strcmp(argv[i], "--expect-failure") == 0) {
            expect_failure = true;
        } else {
            return usage();
        }
    }
    if (n == 0) return usage();
    const char *env = getenv("CN_SIM_SEEDS");
    if (env == NULL) env = getenv("SIM_SEEDS");
    /* the broken-rule runs keep their count: they stop at the first failure anyway */
    if (!replay && !expect_failure && env != NULL && *env) n = strtoull(env, NULL, 10);
    o.trace = replay;
    /* the core's trace (CAIRN_TRACE=raft) goes to stderr: keep the two in order */
    if (replay) setvbuf(stdout, NULL, _IOLBF, 0);
    double t0 = wall_seconds();
    unsigned long long failures = 0, first_failed = 0;
    for (unsigned long long seed = start; seed < start + n; seed++) {
        o.seed = seed;
        if (sim_run(&o) != 0) {
            if (failures++ == 0) first_failed = seed;
            const char *flags = o.break_figure8       ? " --break-figure8"
                                : o.break_vote        ? " --break-vote"
                                : o.break_v3_snapshot ? " --break-v3-snapshot"
                                : o.unreachable       ? " --unreachable"
                                                      : "";
            printf("replay with: tests/sim/replay %llu%s   (or: %s replay %llu%s)\n", seed, flags,
                   argv[0], seed, flags);
            if (expect_failure) break;
        }
    }
    double dt = wall_seconds() - t0;
    if (expect_failure) {
        if (failures == 0) {
            printf("the broken rule went unnoticed over %llu seeds\n", n);
            return 1;
        }
        printf("broken rule caught at seed %llu (%.1fs)\n", first_failed, dt);
        return 0;
    }
    if (!replay) printf("%llu seeds from %llu: %llu failed, %.1fs\n", n, start, failures, dt);
    return failures ? 1 : 0;
}
