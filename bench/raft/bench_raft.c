/* bench_raft: throughput and allocations of the Raft core alone. Three members exchange
 * messages through a zero-latency in-process network (a message is stepped into its target as
 * soon as its sender's batch is handled), the "disk" keeps nothing and the state machine does
 * nothing. Allocations are counted with cn_alloc_set_hooks after a warm-up.
 *
 *   bench_raft [entries] [batch] [payload_bytes]      (defaults 2000000 64 128) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"
#include "raft/raft.h"

#define N 3

static unsigned long long n_allocs;

static void *count_malloc(size_t n)
{
    n_allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
    n_allocs++;
    return realloc(p, n);
}

static struct cn_raft *rafts[N];
static unsigned long long applied[N];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Handles every member's batches until the cluster is quiet. */
static void settle(void)
{
    for (bool busy = true; busy;) {
        busy = false;
        for (int i = 0; i < N; i++) {
            if (!cn_raft_has_ready(rafts[i])) continue;
            busy = true;
            struct cn_raft_ready rd;
            cn_raft_ready(rafts[i], &rd);
            for (size_t k = 0; k < rd.n_msgs; k++) {
                int to = (int)rd.msgs[k].to - 1;
                if (cn_raft_step(rafts[to], &rd.msgs[k]) != 0) abort();
            }
            applied[i] += rd.n_committed;
            cn_raft_advance(rafts[i], &rd);
            struct cn_raft_status st;
            cn_raft_status(rafts[i], &st);
            /* keep the in-memory log short, as the node will with snapshots */
            if (st.applied >= st.first_index + 8192) cn_raft_compact(rafts[i], st.applied);
        }
    }
}

int main(int argc, char **argv)
{
    unsigned long long total = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    unsigned batch = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 64;
    size_t payload = argc > 3 ? strtoul(argv[3], NULL, 10) : 128;
    struct cn_alloc_hooks hooks = {count_malloc, count_realloc, free};
    cn_alloc_set_hooks(&hooks);
    cn_log_init();

    struct cn_raft_conf conf = {0};
    for (int i = 0; i < N; i++)
        conf.voters[conf.n_voters++] = (uint64_t)i + 1;
    for (int i = 0; i < N; i++) {
        struct cn_raft_config cfg;
        cn_raft_config_default(&cfg);
        cfg.id = (uint64_t)i + 1;
        cfg.seed = 1;
        rafts[i] = cn_raft_new(&cfg);
        struct cn_raft_hard_state hs = {0, 0, 0};
        struct cn_raft_snapshot_meta snap = {0, 0, conf};
        if (cn_raft_load(rafts[i], &hs, &snap, NULL, 0) != 0) abort();
    }
    struct cn_raft_status st;
    do {
        cn_raft_tick(rafts[0]);
        settle();
        cn_raft_status(rafts[0], &st);
    } while (st.role != CN_RAFT_LEADER);

    char *data = malloc(payload);
    memset(data, 'x', payload);
    unsigned long long warm = total / 10, proposed = 0, allocs0 = 0;
    unsigned long long applied0 = 0;
    double t0 = 0; /* set when the warm-up ends */
    while (proposed < warm + total) {
        if (proposed >= warm && t0 == 0) {
            settle();
            allocs0 = n_allocs;
            applied0 = applied[0];
            t0 = now();
        }
        for (unsigned b = 0; b < batch; b++, proposed++)
            if (cn_raft_propose(rafts[0], data, payload, NULL, NULL) != 0) abort();
        settle();
        /* a heartbeat round now and then, as the clock would bring */
        if (proposed % 4096 < batch) {
            cn_raft_tick(rafts[0]);
            settle();
        }
    }
    double dt = now() - t0;
    unsigned long long entries = applied[0] - applied0;
    unsigned long long allocs = n_allocs - allocs0;
    /* each member copies each payload once (the leader from the proposal, followers from the
     * message): that is the floor */
    double per_entry = (double)allocs / (double)entries;
    printf("raft core: members=%d batch=%u payload=%zuB entries=%llu time=%.2fs "
           "rate=%.0f entries/s allocs/entry=%.3f (payload copies %d, other %.3f)\n",
           N, batch, payload, entries, dt, (double)entries / dt, per_entry, N, per_entry - N);
    for (int i = 0; i < N; i++)
        cn_raft_free(rafts[i]);
    free(data);
    return 0;
}
