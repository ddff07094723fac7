/* wal_fsync: how long one append + fdatasync takes on a growing file against a preallocated one,
 * the measurement behind the WAL's preallocated segments (src/wal/wal.h). Not part of the test
 * suite; build and run by hand:
 *
 *     cc -O2 -o /tmp/wal_fsync bench/wal_fsync.c && /tmp/wal_fsync /tmp 1000 4096
 *
 * For each way of preparing the file (grow: empty, each write extends it; fallocate: fallocate
 * only, so unwritten extents; zero: 64 MiB of written zeros; fallocate+zero: both) it times n
 * pwrite(len) + fdatasync pairs in a file in dir and prints the median, p90 and p99 in ms. The
 * modes are interleaved over three rounds so that a noisy neighbour hits all of them alike. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PREP_LEN (64u * 1024u * 1024u)
#define ROUNDS   3

enum { M_GROW, M_FALLOCATE, M_ZERO, M_FALLOCATE_ZERO, M_COUNT };
static const char *const mode_names[M_COUNT] = {"grow", "fallocate", "zero", "fallocate+zero"};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what)
{
    fprintf(stderr, "wal_fsync: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_zeros(int fd)
{
    static char zeros[1 << 20];
    for (size_t off = 0; off < PREP_LEN; off += sizeof(zeros))
        if (pwrite(fd, zeros, sizeof(zeros), (off_t)off) != (ssize_t)sizeof(zeros))
            die("pwrite zeros");
}

/* Prepares a file as mode says, then times n appends; the samples go to out (ms). Returns the
 * time the preparation took. */
static double run(const char *dir, int mode, size_t n, size_t len, double *out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/wal_fsync.%d.tmp", dir, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) die("open");
    double t0 = now_ms();
    if (mode == M_FALLOCATE || mode == M_FALLOCATE_ZERO)
        if (fallocate(fd, 0, 0, PREP_LEN) != 0) die("fallocate");
    if (mode == M_ZERO || mode == M_FALLOCATE_ZERO) write_zeros(fd);
    if (mode != M_GROW && fsync(fd) != 0) die("fsync");
    double prep = now_ms() - t0;
    char *buf = malloc(len);
    memset(buf, 'x', len);
    for (size_t i = 0; i < n; i++) {
        double t = now_ms();
        if (pwrite(fd, buf, len, (off_t)(i * len)) != (ssize_t)len) die("pwrite");
        if (fdatasync(fd) != 0) die("fdatasync");
        out[i] = now_ms() - t;
    }
    free(buf);
    close(fd);
    unlink(path);
    return prep;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    size_t len = argc > 3 ? strtoul(argv[3], NULL, 10) : 4096;
    if (n == 0 || len == 0 || n * len > PREP_LEN) {
        fprintf(stderr, "usage: wal_fsync [dir] [n] [len], n * len <= 64 MiB\n");
        return 2;
    }
    double *all[M_COUNT], prep[M_COUNT] = {0};
    for (int m = 0; m < M_COUNT; m++)
        all[m] = calloc(n * ROUNDS, sizeof(double));
    for (int r = 0; r < ROUNDS; r++)
        for (int m = 0; m < M_COUNT; m++)
            prep[m] += run(dir, m, n, len, all[m] + (size_t)r * n) / ROUNDS;
    printf("dir=%s appends=%zu x %zu bytes, %d rounds\n", dir, n, len, ROUNDS);
    printf("%-15s %9s %9s %9s %9s %12s\n", "mode", "median", "p90", "p99", "mean", "prepare_ms");
    for (int m = 0; m < M_COUNT; m++) {
        size_t k = n * ROUNDS;
        double sum = 0;
        for (size_t i = 0; i < k; i++)
            sum += all[m][i];
        qsort(all[m], k, sizeof(double), cmp_double);
        printf("%-15s %9.3f %9.3f %9.3f %9.3f %12.1f\n", mode_names[m], all[m][k / 2],
               all[m][k * 9 / 10], all[m][k * 99 / 100], sum / (double)k, prep[m]);
        free(all[m]);
    }
    return 0;
}
