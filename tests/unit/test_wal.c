/* Unit tests for src/wal: replay after reopen, torn and corrupt tails, older-segment corruption,
 * rollover names, overwrites, release, snapshots, metadata, the data-dir lock, and injected
 * ENOSPC / short writes / failed fsyncs through the file system seam; preallocated segments:
 * zero tails, torn records inside them, the spare, preallocation failures, and logs written
 * before preallocation (hand-built, byte by byte). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "wal/wal.h"

#define SEG_HEAD_LEN 66u /* segment header record + hard state record */
#define ENTRY_REC(n) (9u + 17u + (n))

/* ---------------------------------------------------------------------------------------------
 * Fixture: a fresh temp dir per test. */

struct fx {
    char root[64];
    char wal[128];
    char snap[128];
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = CN_NEW(struct fx);
    snprintf(f->root, sizeof(f->root), "/tmp/cn-wal-XXXXXX");
    if (mkdtemp(f->root) == NULL) return -1;
    snprintf(f->wal, sizeof(f->wal), "%s/member/wal", f->root);
    snprintf(f->snap, sizeof(f->snap), "%s/member/snap", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    cn_free(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Fault-injecting file system. */

static struct {
    int pwrite_errno;    /* fail pwrite with this errno... */
    size_t pwrite_short; /* ...after writing this many bytes of the call first */
    int pwrite_fail_n;   /* number of pwrite calls to fail */
    size_t short_ok;     /* every write lands at most this many bytes, and succeeds */
    unsigned writes;     /* pwrite and pwritev calls */
    int fdatasync_errno;
    int fdatasync_fail_n;
    int open_errno;
    int open_fail_n;
    int fallocate_errno;
    int fallocate_fail_n;
    int fsync_errno;
    int fsync_fail_n;
    uint64_t free_bytes;   /* fstatvfs reports this much free, when not 0 */
    uint64_t pwrite_bytes; /* written through the seam, for tests that count */
    int fallocate_calls;
} inj;

static int t_open(const char *path, int flags, mode_t mode)
{
    if (inj.open_fail_n > 0 && (flags & O_CREAT)) {
        inj.open_fail_n--;
        errno = inj.open_errno;
        return -1;
    }
    return cn_wal_fs_default.open(path, flags, mode);
}

static ssize_t t_pwrite(int fd, const void *p, size_t n, off_t off)
{
    inj.writes++;
    if (inj.short_ok > 0 && n > inj.short_ok) n = inj.short_ok;
    if (inj.pwrite_fail_n > 0) {
        if (inj.pwrite_short > 0 && n > inj.pwrite_short) {
            ssize_t w = pwrite(fd, p, inj.pwrite_short, off);
            inj.pwrite_short = 0; /* the next call (the rest) fails */
            return w;
        }
        inj.pwrite_fail_n--;
        errno = inj.pwrite_errno;
        return -1;
    }
    ssize_t w = pwrite(fd, p, n, off);
    if (w > 0) /* the spare's zeros may be written alongside a flush */
        __atomic_fetch_add(&inj.pwrite_bytes, (uint64_t)w, __ATOMIC_RELAXED);
    return w;
}

/* The same faults for the log's gathered writes: a short write lands the first bytes of the
 * pieces, in order. */
static ssize_t t_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    inj.writes++;
    size_t cap = inj.short_ok;
    if (inj.pwrite_fail_n > 0) {
        if (inj.pwrite_short == 0) {
            inj.pwrite_fail_n--;
            errno = inj.pwrite_errno;
            return -1;
        }
        cap = inj.pwrite_short;
        inj.pwrite_short = 0; /* the next call (the rest) fails */
    }
    ssize_t w;
    if (cap == 0) {
        w = pwritev(fd, iov, n, off);
    } else {
        struct iovec cut[64];
        int k = 0;
        for (size_t left = cap; k < n && k < 64 && left > 0; k++) {
            cut[k] = iov[k];
            if (cut[k].iov_len > left) cut[k].iov_len = left;
            left -= cut[k].iov_len;
        }
        w = pwritev(fd, cut, k, off);
    }
    if (w > 0) __atomic_fetch_add(&inj.pwrite_bytes, (uint64_t)w, __ATOMIC_RELAXED);
    return w;
}

static int t_fdatasync(int fd)
{
    if (inj.fdatasync_fail_n > 0) {
        inj.fdatasync_fail_n--;
        errno = inj.fdatasync_errno;
        return -1;
    }
    return fdatasync(fd);
}

static int t_fsync(int fd)
{
    if (inj.fsync_fail_n > 0) {
        inj.fsync_fail_n--;
        errno = inj.fsync_errno;
        return -1;
    }
    return fsync(fd);
}

static int t_fallocate(int fd, off_t off, off_t len)
{
    __atomic_fetch_add(&inj.fallocate_calls, 1, __ATOMIC_RELAXED);
    if (inj.fallocate_fail_n > 0) {
        inj.fallocate_fail_n--;
        errno = inj.fallocate_errno;
        return -1;
    }
    return cn_wal_fs_default.fallocate(fd, off, len);
}

static int t_fstatvfs(int fd, struct statvfs *st)
{
    if (fstatvfs(fd, st) != 0) return -1;
    if (inj.free_bytes) st->f_bavail = (fsblkcnt_t)(inj.free_bytes / st->f_frsize);
    return 0;
}

static const struct cn_wal_fs test_fs = {
    .open = t_open,
    .pwrite = t_pwrite,
    .pwritev = t_pwritev,
    .fdatasync = t_fdatasync,
    .fsync = t_fsync,
    .ftruncate = ftruncate,
    .rename = rename,
    .fallocate = t_fallocate,
    .fstatvfs = t_fstatvfs,
};

/* ---------------------------------------------------------------------------------------------
 * Helpers. */

struct collected {
    size_t n;
    uint64_t term[256];
    uint64_t index[256];
    uint8_t type[256];
    char data[256][32];
};

static int collect_cb(void *arg, const struct cn_wal_entry *e)
{
    struct collected *c = arg;
    assert_true(c->n < 256);
    assert_true(e->len < 32);
    c->term[c->n] = e->term;
    c->index[c->n] = e->index;
    c->type[c->n] = e->type;
    memcpy(c->data[c->n], e->data, e->len);
    c->data[c->n][e->len] = '\0';
    c->n++;
    return 0;
}

static void append(struct cn_wal *w, uint64_t term, uint64_t index, const char *data)
{
    struct cn_wal_entry e = {term, index, (uint8_t)(index % 3), data, strlen(data)};
    assert_int_equal(cn_wal_append_entry(w, &e), 0);
}

static void append_n(struct cn_wal *w, uint64_t term, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i <= to; i++) {
        char d[32];
        snprintf(d, sizeof(d), "e%llu-t%llu", (unsigned long long)i, (unsigned long long)term);
        append(w, term, i, d);
    }
}

static struct cn_wal *open_opts(const char *dir, uint64_t seg_size, bool no_prealloc,
                                struct cn_wal_repair *rep)
{
    struct cn_wal_options o = {seg_size, &test_fs, no_prealloc, false};
    struct cn_wal *w = NULL;
    char err[256] = "";
    int rc = cn_wal_open(dir, &o, &w, rep, err);
    if (rc != 0) fprintf(stderr, "open: %s: %s\n", cn_strerror(rc), err);
    assert_int_equal(rc, 0);
    assert_non_null(w);
    return w;
}

/* Preallocated segments (the default). */
static struct cn_wal *open_ok(const char *dir, uint64_t seg_size, struct cn_wal_repair *rep)
{
    return open_opts(dir, seg_size, false, rep);
}

/* Segments that grow with each write, as before preallocation. */
static struct cn_wal *open_grow(const char *dir, uint64_t seg_size, struct cn_wal_repair *rep)
{
    return open_opts(dir, seg_size, true, rep);
}

static void replay(struct cn_wal *w, uint64_t from, struct collected *c,
                   struct cn_wal_hard_state *hs)
{
    memset(c, 0, sizeof(*c));
    int rc = cn_wal_replay(w, from, collect_cb, c, hs);
    if (rc != 0) fprintf(stderr, "replay: %s\n", cn_wal_errmsg(w));
    assert_int_equal(rc, 0);
}

/* The segment files in dir, sorted (names are fixed width, so strcmp order is numeric). */
static size_t list_wal(const char *dir, char names[][64], size_t max)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls %s | grep '\\.wal$' | sort", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = 0;
    while (n < max && fgets(names[n], 64, p) != NULL) {
        names[n][strcspn(names[n], "\n")] = '\0';
        n++;
    }
    pclose(p);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void read_at(const char *path, off_t off, void *p, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, p, n, off), (ssize_t)n);
    close(fd);
}

static void write_at(const char *path, off_t off, const void *p, size_t n)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

/* How many bytes of path[from, to) are not zero. */
static size_t nonzero_bytes(const char *path, off_t from, off_t to)
{
    size_t n = 0;
    unsigned char b[4096];
    for (off_t off = from; off < to;) {
        size_t k = (size_t)(to - off) < sizeof(b) ? (size_t)(to - off) : sizeof(b);
        read_at(path, off, b, k);
        for (size_t i = 0; i < k; i++)
            n += b[i] != 0;
        off += (off_t)k;
    }
    return n;
}

static bool exists(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void only_seg_path(const struct fx *f, char *out, size_t n)
{
    char names[8][64];
    assert_int_equal(list_wal(f->wal, names, 8), 1);
    snprintf(out, n, "%s/%s", f->wal, names[0]);
}

/* ---------------------------------------------------------------------------------------------
 * Tests. */

static void append_flush_reopen_replays(void **state)
{
    struct fx *f = *state;
    assert_false(cn_wal_exists(f->wal));
    struct cn_wal_repair rep;
    struct cn_wal *w = open_ok(f->wal, 0, &rep);
    assert_true(cn_wal_exists(f->wal));
    assert_int_equal(rep.records_dropped, 0);
    char names[8][64];
    assert_int_equal(list_wal(f->wal, names, 8), 1);
    assert_string_equal(names[0], "0000000000000000-0000000000000000.wal");

    append_n(w, 1, 1, 10);
    struct cn_wal_hard_state hs = {2, 7, 9};
    cn_wal_set_hard_state(w, &hs);
    assert_int_equal(cn_wal_last_index(w), 10);
    assert_int_equal(cn_wal_durable_index(w), 0);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_durable_index(w), 10);
    assert_int_equal(cn_wal_sync(w), 0); /* nothing pending */
    cn_wal_close(w);

    w = open_ok(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 0);
    assert_int_equal(rep.bytes_dropped, 0);
    assert_int_equal(cn_wal_last_index(w), 10);
    struct collected c;
    struct cn_wal_hard_state got;
    replay(w, 0, &c, &got);
    assert_int_equal(c.n, 10);
    for (size_t i = 0; i < 10; i++) {
        char d[32];
        snprintf(d, sizeof(d), "e%zu-t1", i + 1);
        assert_int_equal(c.index[i], i + 1);
        assert_int_equal(c.term[i], 1);
        assert_int_equal(c.type[i], (i + 1) % 3);
        assert_string_equal(c.data[i], d);
    }
    assert_int_equal(got.term, 2);
    assert_int_equal(got.vote, 7);
    assert_int_equal(got.commit, 9);
    replay(w, 6, &c, NULL);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.index[0], 7);
    cn_wal_close(w);
}

static void group_commit_keeps_appending(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 0, NULL);
    assert_false(cn_wal_flush_begin(w)); /* nothing pending */
    append_n(w, 1, 1, 3);
    assert_true(cn_wal_flush_begin(w));
    assert_false(cn_wal_flush_begin(w)); /* one flush at a time */
    append_n(w, 1, 4, 6);                /* arrives while the first flush runs */
    assert_int_equal(cn_wal_flush_run(w), 0);
    cn_wal_flush_end(w, 0);
    assert_int_equal(cn_wal_durable_index(w), 3);
    assert_int_equal(cn_wal_last_index(w), 6);
    assert_true(cn_wal_flush_begin(w));
    assert_int_equal(cn_wal_flush_run(w), 0);
    cn_wal_flush_end(w, 0);
    assert_int_equal(cn_wal_durable_index(w), 6);
    cn_wal_close(w);

    w = open_ok(f->wal, 0, NULL);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 6);
    assert_int_equal(c.index[5], 6);
    cn_wal_close(w);
}

struct run_arg {
    struct cn_wal *w;
    int rc;
};

static void *run_thread(void *p)
{
    struct run_arg *a = p;
    a->rc = cn_wal_flush_run(a->w);
    return NULL;
}

/* flush_run on another thread while this one appends: the uv_queue_work pattern (run under TSan
 * to check that flush_run and the appenders share nothing). */
static void flush_on_worker_thread(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 256, NULL);
    uint64_t next = 1;
    for (int round = 0; round < 20; round++) {
        append_n(w, 1, next, next + 2);
        next += 3;
        assert_true(cn_wal_flush_begin(w));
        struct run_arg a = {w, -1};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, run_thread, &a), 0);
        append_n(w, 1, next, next + 1); /* meanwhile, on the "loop" */
        next += 2;
        struct cn_wal_hard_state hs = {1, 1, next - 1};
        cn_wal_set_hard_state(w, &hs);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(a.rc, 0);
        cn_wal_flush_end(w, a.rc);
    }
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_durable_index(w), next - 1);
    assert_true(cn_wal_segment_count(w) > 5);
    cn_wal_close(w);
    w = open_ok(f->wal, 256, NULL);
    struct collected c;
    struct cn_wal_hard_state hs;
    replay(w, 0, &c, &hs);
    assert_int_equal(c.n, next - 1);
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.index[i], i + 1);
    assert_int_equal(hs.commit, next - 1);
    cn_wal_close(w);
}

/* Growing segments (the format before preallocation): a torn tail is cut off. */
static void torn_tail_truncated_and_reported(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_grow(f->wal, 0, NULL);
    append_n(w, 1, 1, 5); /* "eN-t1": 5 bytes each */
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    off_t full = file_size(path);
    assert_int_equal(full, SEG_HEAD_LEN + 5 * ENTRY_REC(5));
    assert_int_equal(truncate(path, full - 3), 0);

    struct cn_wal_repair rep;
    w = open_grow(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 1);
    assert_int_equal(rep.bytes_dropped, ENTRY_REC(5) - 3);
    assert_int_equal(rep.offset, SEG_HEAD_LEN + 4 * ENTRY_REC(5));
    assert_string_equal(rep.segment, "0000000000000000-0000000000000000.wal");
    assert_non_null(strstr(rep.reason, "torn"));
    assert_int_equal(file_size(path), SEG_HEAD_LEN + 4 * ENTRY_REC(5));
    assert_int_equal(cn_wal_last_index(w), 4);

    append(w, 2, 5, "again");
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    w = open_grow(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.term[4], 2);
    assert_string_equal(c.data[4], "again");
    cn_wal_close(w);
}

static void torn_header_only(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_grow(f->wal, 0, NULL);
    append_n(w, 1, 1, 2);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    assert_int_equal(truncate(path, SEG_HEAD_LEN + ENTRY_REC(5) + 4), 0); /* 4 bytes of a frame */
    struct cn_wal_repair rep;
    w = open_grow(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 1);
    assert_int_equal(rep.bytes_dropped, 4);
    assert_int_equal(cn_wal_last_index(w), 1);
    cn_wal_close(w);
}

static void crc_corrupt_tail_dropped(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 0, NULL);
    append_n(w, 1, 1, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    append_n(w, 1, 4, 5);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    /* Damage the data of entry 4: entries 4 and 5 (which still parses) go. */
    flip_byte(path, SEG_HEAD_LEN + 3 * ENTRY_REC(5) + 9 + 17 + 1);
    struct cn_wal_repair rep;
    w = open_ok(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 2);
    assert_int_equal(rep.bytes_dropped, 2 * ENTRY_REC(5));
    assert_string_equal(rep.reason, "crc mismatch");
    assert_int_equal(cn_wal_last_index(w), 3);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 3);
    cn_wal_close(w);

    /* The last record only: exactly one dropped. */
    flip_byte(path, SEG_HEAD_LEN + 2 * ENTRY_REC(5) + 12);
    w = open_ok(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 1);
    assert_int_equal(rep.bytes_dropped, ENTRY_REC(5));
    assert_int_equal(cn_wal_last_index(w), 2);
    cn_wal_close(w);
}

static void rollover_names_and_replay(void **state)
{
    struct fx *f = *state;
    /* 66-byte head + 31-byte records: a segment is cut once it reaches 128 bytes. */
    struct cn_wal *w = open_ok(f->wal, 128, NULL);
    for (uint64_t i = 1; i <= 7; i++) {
        append_n(w, 1, i, i);
        assert_int_equal(cn_wal_sync(w), 0);
    }
    assert_int_equal(cn_wal_segment_count(w), 4);
    cn_wal_close(w);
    char names[8][64];
    /* A segment is cut before a write once it has reached 128 bytes: 66-byte head + two 31-byte
     * entries each. */
    assert_int_equal(list_wal(f->wal, names, 8), 4);
    assert_string_equal(names[0], "0000000000000000-0000000000000000.wal");
    assert_string_equal(names[1], "0000000000000001-0000000000000003.wal");
    assert_string_equal(names[2], "0000000000000002-0000000000000005.wal");
    assert_string_equal(names[3], "0000000000000003-0000000000000007.wal");
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->wal, names[1]);
    assert_int_equal(file_size(path), 128);
    struct cn_wal_repair rep;
    w = open_ok(f->wal, 128, &rep);
    assert_int_equal(rep.records_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(c.index[i], i + 1);
    append_n(w, 1, 8, 8); /* fills segment 3 after the reopen */
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 4);
    append_n(w, 1, 9, 10); /* one batch: never split, so segment 4 holds both */
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 5);
    cn_wal_close(w);
    assert_int_equal(list_wal(f->wal, names, 8), 5);
    assert_string_equal(names[4], "0000000000000004-0000000000000009.wal");
    snprintf(path, sizeof(path), "%s/%s", f->wal, names[4]);
    assert_int_equal(file_size(path), SEG_HEAD_LEN + ENTRY_REC(5) + ENTRY_REC(6));
}

static void hard_state_survives_rollover(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 100, NULL);
    struct cn_wal_hard_state hs = {3, 2, 1};
    cn_wal_set_hard_state(w, &hs);
    append_n(w, 3, 1, 2);
    assert_int_equal(cn_wal_sync(w), 0);
    append_n(w, 3, 3, 4);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 2);
    assert_int_equal(cn_wal_release_to(w, 2), 1); /* the hard state's segment is gone */
    cn_wal_close(w);
    w = open_ok(f->wal, 100, NULL);
    struct collected c;
    struct cn_wal_hard_state got;
    replay(w, 2, &c, &got);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.vote, 2);
    assert_int_equal(got.commit, 1);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.index[0], 3);
    cn_wal_close(w);
}

static void corrupt_older_segment_is_error(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 128, NULL);
    for (uint64_t i = 1; i <= 5; i++) {
        append_n(w, 1, i, i);
        assert_int_equal(cn_wal_sync(w), 0);
    }
    cn_wal_close(w);
    char names[8][64], path[256];
    assert_int_equal(list_wal(f->wal, names, 8), 3);
    snprintf(path, sizeof(path), "%s/%s", f->wal, names[0]);
    flip_byte(path, SEG_HEAD_LEN + 9 + 17 + 2); /* e1's data */
    off_t before = file_size(path);
    struct cn_wal_options o = {128, NULL, false, false};
    struct cn_wal *w2 = NULL;
    char err[256] = "";
    assert_int_equal(cn_wal_open(f->wal, &o, &w2, NULL, err), CN_ERR_CORRUPT);
    assert_null(w2);
    char want[160];
    snprintf(want, sizeof(want), "segment %s offset %u: crc mismatch", names[0], SEG_HEAD_LEN);
    assert_string_equal(err, want);
    assert_int_equal(file_size(path), before); /* nothing was cut */

    /* A missing middle segment is an error too. */
    flip_byte(path, SEG_HEAD_LEN + 9 + 17 + 2);
    snprintf(path, sizeof(path), "%s/%s", f->wal, names[1]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(cn_wal_open(f->wal, &o, &w2, NULL, err), CN_ERR_CORRUPT);
    assert_non_null(strstr(err, "missing"));
}

static void overwrite_replays_final_log(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 160, NULL);
    append_n(w, 1, 1, 5);
    assert_int_equal(cn_wal_sync(w), 0);
    append_n(w, 2, 3, 4); /* a new leader overwrote 3..5 */
    assert_int_equal(cn_wal_last_index(w), 4);
    assert_int_equal(cn_wal_sync(w), 0);
    append_n(w, 3, 4, 6); /* and again, in a later segment */
    assert_int_equal(cn_wal_sync(w), 0);
    assert_true(cn_wal_segment_count(w) >= 2);
    cn_wal_close(w);

    w = open_ok(f->wal, 160, NULL);
    assert_int_equal(cn_wal_last_index(w), 6);
    struct collected c;
    replay(w, 0, &c, NULL);
    uint64_t want_term[] = {1, 1, 2, 3, 3, 3};
    assert_int_equal(c.n, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(c.index[i], i + 1);
        assert_int_equal(c.term[i], want_term[i]);
    }
    assert_string_equal(c.data[2], "e3-t2");
    replay(w, 3, &c, NULL);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.index[0], 4);
    assert_int_equal(c.term[0], 3);
    cn_wal_close(w);
}

static void release_deletes_covered_segments(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 128, NULL);
    for (uint64_t i = 1; i <= 8; i++) {
        append_n(w, 1, i, i);
        assert_int_equal(cn_wal_sync(w), 0);
    }
    char names[8][64];
    /* 0-0: e1 e2, 1-3: e3 e4, 2-5: e5 e6, 3-7: e7 e8 */
    assert_int_equal(list_wal(f->wal, names, 8), 4);
    assert_int_equal(cn_wal_release_to(w, 1), 0); /* 2 is in segment 0 */
    assert_int_equal(cn_wal_release_to(w, 2), 1); /* 3 starts segment 1 */
    assert_int_equal(list_wal(f->wal, names, 8), 3);
    assert_string_equal(names[0], "0000000000000001-0000000000000003.wal");
    assert_int_equal(cn_wal_release_to(w, 5), 1);   /* 6 is in segment 2 */
    assert_int_equal(cn_wal_release_to(w, 100), 1); /* the last is always kept */
    assert_int_equal(list_wal(f->wal, names, 8), 1);
    assert_string_equal(names[0], "0000000000000003-0000000000000007.wal");
    assert_int_equal(cn_wal_segment_count(w), 1);
    cn_wal_close(w);

    w = open_ok(f->wal, 128, NULL);
    struct collected c;
    replay(w, 6, &c, NULL);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.index[0], 7);
    /* Replaying from before what is kept cannot produce a contiguous log. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(cn_wal_replay(w, 2, collect_cb, &c, NULL), CN_ERR_CORRUPT);
    assert_non_null(strstr(cn_wal_errmsg(w), "entry 7 follows 2"));
    append_n(w, 1, 9, 9);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 2);
    cn_wal_close(w);
    assert_int_equal(list_wal(f->wal, names, 8), 2);
    assert_string_equal(names[1], "0000000000000004-0000000000000009.wal");
}

/* Growing segments: a failed batch is truncated away. */
static void enospc_truncates_and_recovers(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_grow(f->wal, 0, NULL);
    append_n(w, 1, 1, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    off_t good = file_size(path);

    /* A short write (10 bytes land) and then ENOSPC. */
    inj.pwrite_errno = ENOSPC;
    inj.pwrite_short = 10;
    inj.pwrite_fail_n = 1;
    append_n(w, 1, 4, 6);
    assert_true(cn_wal_flush_begin(w));
    append_n(w, 1, 7, 7); /* appended meanwhile: follows the failed batch, dropped with it */
    int rc = cn_wal_flush_run(w);
    assert_int_equal(rc, -ENOSPC);
    assert_non_null(strstr(cn_wal_errmsg(w), "No space left on device"));
    assert_int_equal(file_size(path), good); /* nothing half-written stays */
    cn_wal_flush_end(w, rc);
    assert_int_equal(cn_wal_last_index(w), 3);
    assert_int_equal(cn_wal_durable_index(w), 3);
    assert_false(cn_wal_flush_begin(w)); /* pending dropped */

    /* Space returns. */
    append_n(w, 2, 4, 5);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(file_size(path), good + 2 * ENTRY_REC(5));
    cn_wal_close(w);
    struct cn_wal_repair rep;
    w = open_grow(f->wal, 0, &rep);
    assert_int_equal(rep.records_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.term[3], 2);
    assert_string_equal(c.data[4], "e5-t2");
    cn_wal_close(w);
}

static void failed_fsync_truncates_and_recovers(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_grow(f->wal, 0, NULL);
    struct cn_wal_hard_state hs1 = {1, 1, 0};
    cn_wal_set_hard_state(w, &hs1);
    append_n(w, 1, 1, 2);
    assert_int_equal(cn_wal_sync(w), 0);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    off_t good = file_size(path);

    inj.fdatasync_errno = EIO;
    inj.fdatasync_fail_n = 1;
    append_n(w, 1, 3, 4);
    struct cn_wal_hard_state hs2 = {1, 1, 4};
    cn_wal_set_hard_state(w, &hs2);
    assert_int_equal(cn_wal_sync(w), -EIO);
    assert_int_equal(file_size(path), good);
    assert_int_equal(cn_wal_last_index(w), 2);
    assert_int_equal(cn_wal_hard_state(w).commit, 0); /* rolled back to the durable one */

    append_n(w, 1, 3, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    w = open_grow(f->wal, 0, NULL);
    struct collected c;
    struct cn_wal_hard_state got;
    replay(w, 0, &c, &got);
    assert_int_equal(c.n, 3);
    assert_int_equal(got.commit, 0);
    assert_int_equal(got.vote, 1);
    cn_wal_close(w);
}

static void failed_cut_then_ok(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 100, NULL);
    append_n(w, 1, 1, 2);
    assert_int_equal(cn_wal_sync(w), 0); /* 66 + 62 >= 100: the next flush cuts */
    inj.open_errno = ENOSPC;
    inj.open_fail_n = 1;
    append_n(w, 1, 3, 3);
    assert_int_equal(cn_wal_sync(w), -ENOSPC);
    assert_int_equal(cn_wal_segment_count(w), 1);
    char names[8][64];
    assert_int_equal(list_wal(f->wal, names, 8), 1);
    append_n(w, 1, 3, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 2);
    cn_wal_close(w);
    assert_int_equal(list_wal(f->wal, names, 8), 2);
    assert_string_equal(names[1], "0000000000000001-0000000000000003.wal");
    w = open_ok(f->wal, 100, NULL);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 3);
    cn_wal_close(w);
}

static void snapshot_save_load_fallback_purge(void **state)
{
    struct fx *f = *state;
    struct cn_snap s;
    assert_int_equal(cn_snap_init(&s, f->snap, NULL), 0);
    struct cn_buf b = CN_BUF_INIT;
    uint64_t term = 0, index = 0;
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), CN_ERR_NOT_FOUND);

    assert_int_equal(cn_snap_save(&s, 1, 10, "ten", 3), 0);
    assert_int_equal(cn_snap_save(&s, 2, 20, "twenty", 6), 0);
    assert_int_equal(cn_snap_save(&s, 2, 30, "thirty", 6), 0);
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), 0);
    assert_int_equal(term, 2);
    assert_int_equal(index, 30);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p, "thirty", 6);
    assert_int_equal(s.n_skipped, 0);

    char path[256];
    snprintf(path, sizeof(path), "%s/0000000000000002-000000000000001e.snap", f->snap);
    flip_byte(path, 42); /* data */
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), 0);
    assert_int_equal(index, 20);
    assert_memory_equal(b.p, "twenty", 6);
    assert_int_equal(s.n_skipped, 1);
    assert_string_equal(s.skipped[0].name, "0000000000000002-000000000000001e.snap");
    assert_int_equal(s.skipped[0].rc, CN_ERR_CORRUPT);
    assert_string_equal(s.skipped[0].why, "data crc mismatch");
    strcat(path, ".broken");
    assert_int_equal(access(path, F_OK), 0);

    /* Purge keeps the newest valid one; the broken file is not counted. */
    assert_int_equal(cn_snap_purge(&s, 1), 1);
    snprintf(path, sizeof(path), "%s/0000000000000001-000000000000000a.snap", f->snap);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), 0);
    assert_int_equal(index, 20);

    /* None valid: a clear error, not "no snapshot". */
    snprintf(path, sizeof(path), "%s/0000000000000002-0000000000000014.snap", f->snap);
    assert_int_equal(truncate(path, 30), 0);
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), CN_ERR_CORRUPT);
    assert_non_null(strstr(s.errmsg, "none of the 1 snapshots"));
    assert_int_equal(b.len, 0);

    /* Empty data is fine. */
    assert_int_equal(cn_snap_save(&s, 5, 50, "", 0), 0);
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), 0);
    assert_int_equal(index, 50);
    assert_int_equal(b.len, 0);
    cn_buf_free(&b);
    cn_snap_close(&s);
}

static void snapshot_save_failure_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct cn_snap s;
    assert_int_equal(cn_snap_init(&s, f->snap, &test_fs), 0);
    inj.pwrite_errno = ENOSPC;
    inj.pwrite_fail_n = 1;
    assert_int_equal(cn_snap_save(&s, 1, 10, "ten", 3), -ENOSPC);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", f->snap);
    assert_int_equal(system(cmd), 0); /* no .snap, no leftover .tmp */
    struct cn_buf b = CN_BUF_INIT;
    uint64_t term, index;
    assert_int_equal(cn_snap_load(&s, &b, &term, &index), CN_ERR_NOT_FOUND);
    cn_buf_free(&b);
    cn_snap_close(&s);
}

static void meta_roundtrip(void **state)
{
    struct fx *f = *state;
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/meta", f->root);
    struct cn_buf b = CN_BUF_INIT;
    assert_int_equal(cn_meta_read(path, &b, err), -ENOENT);
    assert_int_equal(cn_meta_write(path, "cluster=1 member=2", 18, NULL, err), 0);
    assert_int_equal(cn_meta_read(path, &b, err), 0);
    assert_int_equal(b.len, 18);
    assert_memory_equal(b.p, "cluster=1 member=2", 18);
    assert_int_equal(cn_meta_write(path, "v2", 2, NULL, err), 0); /* replaces */
    assert_int_equal(cn_meta_read(path, &b, err), 0);
    assert_int_equal(b.len, 2);
    flip_byte(path, 17);
    assert_int_equal(cn_meta_read(path, &b, err), CN_ERR_CORRUPT);
    assert_non_null(strstr(err, "crc mismatch"));
    cn_buf_free(&b);
}

static void lock_held_twice(void **state)
{
    struct fx *f = *state;
    char dd[128], err[256];
    snprintf(dd, sizeof(dd), "%s/data", f->root);
    int fd = -1, fd2 = -1;
    assert_int_equal(cn_datadir_lock(dd, &fd, err), 0);
    /* flock belongs to the open file description: a second open in this process conflicts. */
    assert_int_equal(cn_datadir_lock(dd, &fd2, err), CN_ERR_LOCKED);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(err, "in use"));

    /* Another process too. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int cfd;
        _exit(cn_datadir_lock(dd, &cfd, NULL) == CN_ERR_LOCKED ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    cn_datadir_unlock(fd);
    assert_int_equal(cn_datadir_lock(dd, &fd2, err), 0);
    cn_datadir_unlock(fd2);
}

/* ---------------------------------------------------------------------------------------------
 * Preallocated segments. */

/* "x0001"...: 5 bytes each, so every entry record is ENTRY_REC(5) = 31 bytes. */
static void append_fixed(struct cn_wal *w, uint64_t term, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i <= to; i++) {
        char d[8];
        snprintf(d, sizeof(d), "x%04llu", (unsigned long long)i);
        append(w, term, i, d);
    }
}

static void seg_path(const struct fx *f, size_t i, char *out, size_t n)
{
    char names[16][64];
    assert_true(list_wal(f->wal, names, 16) > i);
    snprintf(out, n, "%s/%s", f->wal, names[i]);
}

static void prealloc_zero_tail_reopens(void **state)
{
    struct fx *f = *state;
    struct cn_wal_repair rep;
    struct cn_wal *w = open_ok(f->wal, 4096, &rep);
    const char *msg = NULL;
    assert_int_equal(cn_wal_prealloc_failures(w, &msg), 0);
    assert_string_equal(msg, "");
    assert_int_equal(inj.fallocate_calls, 1);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    assert_int_equal(file_size(path), 4096);
    assert_int_equal(nonzero_bytes(path, SEG_HEAD_LEN, 4096), 0);
    assert_false(exists(f->wal, "spare.tmp")); /* the first segment was made from it */

    append_fixed(w, 1, 1, 5);
    struct cn_wal_hard_state hs = {1, 1, 5};
    cn_wal_set_hard_state(w, &hs);
    assert_int_equal(cn_wal_last_fsync_ns(w), -1); /* no flush yet */
    assert_int_equal(cn_wal_sync(w), 0);
    assert_true(cn_wal_last_fsync_ns(w) >= 0);
    cn_wal_close(w);
    off_t end = SEG_HEAD_LEN + 5 * ENTRY_REC(5) + 9 + 24;
    assert_int_equal(file_size(path), 4096); /* written inside: the size never changed */
    assert_int_equal(nonzero_bytes(path, end, 4096), 0);

    w = open_ok(f->wal, 4096, &rep);
    assert_int_equal(rep.records_dropped, 0);
    assert_int_equal(rep.bytes_dropped, 0);
    assert_int_equal(cn_wal_last_index(w), 5);
    struct collected c;
    struct cn_wal_hard_state got;
    replay(w, 0, &c, &got);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.data[4], "x0005");
    assert_int_equal(got.commit, 5);
    append_fixed(w, 1, 6, 6);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    /* The append after the reopen went right after the data, not to the end of the file. */
    assert_int_equal(file_size(path), 4096);
    assert_int_equal(nonzero_bytes(path, end + ENTRY_REC(5), 4096), 0);
    char b[5];
    read_at(path, end + 26, b, 5);
    assert_memory_equal(b, "x0006", 5);
    w = open_ok(f->wal, 4096, &rep);
    assert_int_equal(rep.records_dropped, 0);
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.data[5], "x0006");
    cn_wal_close(w);
}

static void zero_tail_shorter_than_a_header(void **state)
{
    struct fx *f = *state;
    /* 66 + 2 * 31 = 128 bytes of data in a 133-byte file: 5 zero bytes, less than a header. */
    struct cn_wal *w = open_ok(f->wal, 133, NULL);
    append_fixed(w, 1, 1, 2);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    assert_int_equal(file_size(path), 133);
    struct cn_wal_repair rep;
    w = open_ok(f->wal, 133, &rep);
    assert_int_equal(rep.records_dropped, 0);
    assert_int_equal(rep.bytes_dropped, 0);
    assert_int_equal(cn_wal_last_index(w), 2);
    /* 128 < 133: no cut yet; the record runs past the preallocated end and the file grows. */
    append_fixed(w, 1, 3, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 1);
    assert_int_equal(file_size(path), 128 + ENTRY_REC(5));
    cn_wal_close(w);
    w = open_ok(f->wal, 133, &rep);
    assert_int_equal(rep.records_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.data[2], "x0003");
    cn_wal_close(w);
}

static void torn_record_inside_prealloc_is_zeroed(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 4096, NULL);
    append_fixed(w, 1, 1, 20); /* one batch, one pwrite: entry i's record at 66 + 31 (i - 1) */
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    /* A crash tore the write at the sector boundary 512: entry 15's record (500..530) lost all
     * but its first 12 bytes, and everything after it never reached the disk. */
    off_t rec15 = SEG_HEAD_LEN + 14 * ENTRY_REC(5);
    assert_int_equal(rec15, 500);
    static const char z[4096];
    write_at(path, 512, z, SEG_HEAD_LEN + 20 * ENTRY_REC(5) - 512);

    struct cn_wal_repair rep;
    w = open_ok(f->wal, 4096, &rep);
    assert_string_equal(rep.reason, "torn record (a sector of it is zeros)");
    assert_string_equal(rep.segment, "0000000000000000-0000000000000000.wal");
    assert_int_equal(rep.offset, 500);
    assert_int_equal(rep.records_dropped, 1);
    assert_int_equal(rep.bytes_dropped, ENTRY_REC(5)); /* the frame its header describes */
    assert_int_equal(file_size(path), 4096);           /* zeroed, not truncated */
    assert_int_equal(nonzero_bytes(path, 500, 4096), 0);
    assert_int_equal(cn_wal_last_index(w), 14);

    append_fixed(w, 2, 15, 15);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    w = open_ok(f->wal, 4096, &rep);
    assert_int_equal(rep.records_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 15);
    assert_int_equal(c.term[13], 1);
    assert_int_equal(c.term[14], 2);
    assert_string_equal(c.data[14], "x0015");
    cn_wal_close(w);
}

static void data_after_zero_header_last_segment(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 4096, NULL);
    append_fixed(w, 1, 1, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    append_fixed(w, 1, 4, 8);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    /* The second batch's first page never landed but its later one did: entries 4 and 5 are
     * zeros, 6..8 intact behind them. */
    off_t rec4 = SEG_HEAD_LEN + 3 * ENTRY_REC(5), end = SEG_HEAD_LEN + 8 * ENTRY_REC(5);
    static const char z[64];
    write_at(path, rec4, z, 2 * ENTRY_REC(5));

    struct cn_wal_repair rep;
    w = open_ok(f->wal, 4096, &rep);
    assert_string_equal(rep.reason, "data after the zero frame header that ends the log");
    assert_int_equal(rep.offset, rec4);
    assert_int_equal(rep.records_dropped, 3); /* 6, 7, 8 still parse: never acknowledged */
    assert_int_equal(rep.bytes_dropped, end - rec4);
    assert_int_equal(file_size(path), 4096);
    assert_int_equal(nonzero_bytes(path, rec4, 4096), 0);
    assert_int_equal(cn_wal_last_index(w), 3);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 3);
    cn_wal_close(w);
}

static void data_after_zero_header_older_segment_is_corrupt(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 4096, NULL);
    append_fixed(w, 1, 1, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    /* A smaller segment size from now on: segment 0 is cut with most of its zeros unused. */
    w = open_ok(f->wal, 128, NULL);
    append_fixed(w, 1, 4, 4);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(cn_wal_segment_count(w), 2);
    cn_wal_close(w);
    w = open_ok(f->wal, 128, NULL); /* a zero tail in an older segment is fine */
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 4);
    cn_wal_close(w);

    char path[256];
    seg_path(f, 0, path, sizeof(path));
    write_at(path, 1000, "junk", 4);
    struct cn_wal_options o = {128, &test_fs, false, false};
    char err[256] = "";
    assert_int_equal(cn_wal_open(f->wal, &o, &w, NULL, err), CN_ERR_CORRUPT);
    assert_null(w);
    char want[200];
    snprintf(want, sizeof(want),
             "segment 0000000000000000-0000000000000000.wal offset %u: data after the zero frame "
             "header that ends the log (nonzero byte at offset 1000)",
             SEG_HEAD_LEN + 3 * ENTRY_REC(5));
    assert_string_equal(err, want);
    char b[4];
    read_at(path, 1000, b, 4);
    assert_memory_equal(b, "junk", 4); /* nothing was modified */
    assert_int_equal(file_size(path), 4096);
}

static void prealloc_failure_falls_back_to_growing(void **state)
{
    struct fx *f = *state;
    inj.fallocate_errno = ENOSPC;
    inj.fallocate_fail_n = 1;
    struct cn_wal *w = open_ok(f->wal, 128, NULL);
    const char *msg = NULL;
    assert_int_equal(cn_wal_prealloc_failures(w, &msg), 1);
    char want[300];
    snprintf(want, sizeof(want),
             "preallocate %s/spare.tmp (128 bytes): fallocate: No space left on device", f->wal);
    assert_string_equal(msg, want);
    assert_false(exists(f->wal, "spare.tmp"));
    char path[256];
    only_seg_path(f, path, sizeof(path));
    assert_int_equal(file_size(path), SEG_HEAD_LEN); /* growing */
    append_fixed(w, 1, 1, 2);
    assert_int_equal(cn_wal_sync(w), 0); /* durable all the same */
    assert_int_equal(cn_wal_durable_index(w), 2);
    assert_int_equal(file_size(path), SEG_HEAD_LEN + 2 * ENTRY_REC(5));

    /* The spare fails while its zeros are written (a short write, then ENOSPC). */
    inj.pwrite_errno = ENOSPC;
    inj.pwrite_short = 50;
    inj.pwrite_fail_n = 1;
    assert_int_equal(cn_wal_prepare(w), -ENOSPC);
    assert_int_equal(cn_wal_prealloc_failures(w, &msg), 2);
    snprintf(want, sizeof(want),
             "preallocate %s/spare.tmp (128 bytes): write zeros to: No space left on device",
             f->wal);
    assert_string_equal(msg, want);
    assert_false(exists(f->wal, "spare.tmp")); /* its space is given back */
    assert_false(cn_wal_spare_ready(w));
    assert_false(cn_wal_prepare_begin(w)); /* held back until the next cut */

    append_fixed(w, 1, 3, 3);
    assert_int_equal(cn_wal_sync(w), 0); /* cuts without a spare: growing */
    assert_int_equal(cn_wal_segment_count(w), 2);
    seg_path(f, 1, path, sizeof(path));
    assert_int_equal(file_size(path), SEG_HEAD_LEN + ENTRY_REC(5));

    /* After the cut it is tried again; a failed fsync fails it too. */
    inj.fsync_errno = EIO;
    inj.fsync_fail_n = 1;
    assert_int_equal(cn_wal_prepare(w), -EIO);
    assert_int_equal(cn_wal_prealloc_failures(w, &msg), 3);
    assert_non_null(strstr(msg, ": fsync: Input/output error"));
    append_fixed(w, 1, 4, 5);
    assert_int_equal(cn_wal_sync(w), 0); /* 97 < 128: no cut */
    append_fixed(w, 1, 6, 6);
    assert_int_equal(cn_wal_sync(w), 0); /* cut, growing again */
    assert_int_equal(cn_wal_segment_count(w), 3);
    assert_int_equal(cn_wal_prepare(w), 1); /* and now it works */
    assert_true(cn_wal_spare_ready(w));
    append_fixed(w, 1, 7, 7);
    assert_int_equal(cn_wal_sync(w), 0);
    append_fixed(w, 1, 8, 8);
    assert_int_equal(cn_wal_sync(w), 0); /* cut into the spare */
    assert_int_equal(cn_wal_segment_count(w), 4);
    seg_path(f, 3, path, sizeof(path));
    assert_int_equal(file_size(path), 128);
    assert_int_equal(cn_wal_prealloc_failures(w, NULL), 3);
    cn_wal_close(w);

    struct cn_wal_repair rep;
    w = open_ok(f->wal, 128, &rep);
    assert_int_equal(rep.records_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 8);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(c.index[i], i + 1);
    cn_wal_close(w);
}

/* A spare takes at most half of the free space: below that, segments grow. */
static void prealloc_leaves_half_the_free_space(void **state)
{
    struct fx *f = *state;
    inj.free_bytes = 8191; /* fstatvfs rounds down to whole blocks */
    struct cn_wal *w = open_ok(f->wal, 4096, NULL);
    const char *msg = NULL;
    assert_int_equal(cn_wal_prealloc_failures(w, &msg), 1);
    assert_int_equal(inj.fallocate_calls, 0);
    assert_non_null(strstr(msg, "spare.tmp (4096 bytes): only "));
    assert_non_null(strstr(msg, " bytes free"));
    char path[256];
    only_seg_path(f, path, sizeof(path));
    assert_int_equal(file_size(path), SEG_HEAD_LEN);
    assert_false(exists(f->wal, "spare.tmp"));
    append_fixed(w, 1, 1, 1);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);

    inj.free_bytes = 2 * 4096 * 4096; /* plenty again (in 4 KiB blocks or larger) */
    w = open_ok(f->wal, 4096, NULL);
    assert_int_equal(cn_wal_prepare(w), 1);
    assert_int_equal(inj.fallocate_calls, 1);
    assert_int_equal(cn_wal_prealloc_failures(w, NULL), 0);
    cn_wal_close(w);
}

static void spare_prepared_then_used_by_the_cut(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 256, NULL);
    assert_false(cn_wal_spare_ready(w));
    assert_int_equal(cn_wal_prepare(w), 1);
    assert_true(cn_wal_spare_ready(w));
    char spare[256];
    snprintf(spare, sizeof(spare), "%s/spare.tmp", f->wal);
    assert_int_equal(file_size(spare), 256);
    assert_int_equal(nonzero_bytes(spare, 0, 256), 0);
    assert_int_equal(cn_wal_prepare(w), 0); /* one is enough */

    /* 66 + 6 * 31 = 252, then entry 7 takes the first segment to 283 (past its 256). */
    for (uint64_t i = 1; i <= 7; i++) {
        append_fixed(w, 1, i, i);
        assert_int_equal(cn_wal_sync(w), 0);
        assert_true(cn_wal_spare_ready(w)); /* lent to each flush, given back unused */
    }
    assert_int_equal(cn_wal_segment_count(w), 1);
    /* The cut: the header goes into the spare; no zeros are written by the flush. */
    uint64_t before = inj.pwrite_bytes;
    append_fixed(w, 1, 8, 8);
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(inj.pwrite_bytes - before, SEG_HEAD_LEN + ENTRY_REC(5));
    assert_int_equal(cn_wal_segment_count(w), 2);
    assert_false(exists(f->wal, "spare.tmp"));
    assert_false(cn_wal_spare_ready(w));
    char names[8][64];
    assert_int_equal(list_wal(f->wal, names, 8), 2);
    assert_string_equal(names[1], "0000000000000001-0000000000000008.wal");
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->wal, names[1]);
    assert_int_equal(file_size(path), 256);
    assert_int_equal(nonzero_bytes(path, SEG_HEAD_LEN + ENTRY_REC(5), 256), 0);
    assert_int_equal(cn_wal_prepare(w), 1); /* the next one */
    assert_true(exists(f->wal, "spare.tmp"));
    cn_wal_close(w);
    assert_false(exists(f->wal, "spare.tmp")); /* close deletes an unused spare */

    /* Leftovers of a crash (a spare, a cut before its rename) are deleted by open. */
    int fd = open(spare, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s/0000000000000002-0000000000000009.wal.tmp", f->wal);
    fd = open(tmp, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    w = open_ok(f->wal, 256, NULL);
    assert_false(exists(f->wal, "spare.tmp"));
    assert_false(exists(f->wal, "0000000000000002-0000000000000009.wal.tmp"));
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 8);
    assert_string_equal(c.data[7], "x0008");
    cn_wal_close(w);
}

static void *prepare_thread(void *p)
{
    struct run_arg *a = p;
    a->rc = cn_wal_prepare_run(a->w);
    return NULL;
}

/* The spare is made on one worker while another flushes (run under TSan to check that they
 * share nothing); every cut finds a spare ready, so every segment is preallocated. */
static void prepare_alongside_flush(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 512, NULL);
    uint64_t next = 1;
    for (int round = 0; round < 40; round++) {
        append_fixed(w, 1, next, next + 2);
        next += 3;
        assert_true(cn_wal_flush_begin(w));
        struct run_arg fa = {w, -1}, pa = {w, -1};
        pthread_t ft, pt;
        bool prep = cn_wal_prepare_begin(w);
        assert_int_equal(pthread_create(&ft, NULL, run_thread, &fa), 0);
        if (prep) assert_int_equal(pthread_create(&pt, NULL, prepare_thread, &pa), 0);
        append_fixed(w, 1, next, next); /* meanwhile, on the "loop" */
        next++;
        assert_int_equal(pthread_join(ft, NULL), 0);
        if (prep) assert_int_equal(pthread_join(pt, NULL), 0);
        assert_int_equal(fa.rc, 0);
        cn_wal_flush_end(w, fa.rc);
        if (prep) {
            assert_int_equal(pa.rc, 0);
            cn_wal_prepare_end(w, pa.rc);
        }
    }
    assert_int_equal(cn_wal_sync(w), 0);
    size_t n = cn_wal_segment_count(w);
    assert_true(n >= 5);
    assert_int_equal(cn_wal_prealloc_failures(w, NULL), 0);
    cn_wal_close(w);
    for (size_t i = 0; i < n; i++) {
        char path[256];
        seg_path(f, i, path, sizeof(path));
        assert_true(file_size(path) >= 512);
    }
    w = open_ok(f->wal, 512, NULL);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, next - 1);
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.index[i], i + 1);
    cn_wal_close(w);
}

/* Byte-by-byte encoding of the version 1 format, independent of wal.c: what logs written
 * before preallocation hold. */
static size_t old_rec(uint8_t *p, uint8_t type, const uint8_t *payload, uint32_t len)
{
    for (int i = 0; i < 4; i++)
        p[4 + i] = (uint8_t)(len >> (8 * i));
    p[8] = type;
    memcpy(p + 9, payload, len);
    uint32_t crc = (uint32_t)crc32(0, p + 4, 5 + len);
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(crc >> (8 * i));
    return 9 + len;
}

static void old_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static size_t old_head(uint8_t *p, uint64_t seq, uint64_t first, uint64_t term, uint64_t vote,
                       uint64_t commit)
{
    uint8_t h[24] = {0x43, 0x4e, 0x57, 0x4c, 1, 0, 0, 0}; /* "CNWL", version 1 */
    old_u64(h + 8, seq);
    old_u64(h + 16, first);
    size_t n = old_rec(p, 1, h, 24);
    uint8_t hs[24];
    old_u64(hs, term);
    old_u64(hs + 8, vote);
    old_u64(hs + 16, commit);
    return n + old_rec(p + n, 3, hs, 24);
}

static size_t old_entry(uint8_t *p, uint64_t term, uint64_t index, const char *data)
{
    uint8_t e[64];
    old_u64(e, term);
    old_u64(e + 8, index);
    e[16] = (uint8_t)(index % 3);
    size_t len = strlen(data);
    memcpy(e + 17, data, len);
    return old_rec(p, 2, e, (uint32_t)(17 + len));
}

static void old_format_log_opens_and_continues(void **state)
{
    struct fx *f = *state;
    assert_int_equal(mkdir(f->root, 0700) == 0 || errno == EEXIST, 1);
    char member[160];
    snprintf(member, sizeof(member), "%s/member", f->root);
    assert_int_equal(mkdir(member, 0700), 0);
    assert_int_equal(mkdir(f->wal, 0700), 0);
    uint8_t b[1024];
    size_t n = old_head(b, 0, 0, 1, 1, 0);
    n += old_entry(b + n, 1, 1, "old01");
    n += old_entry(b + n, 1, 2, "old02");
    n += old_entry(b + n, 1, 3, "old03");
    uint8_t hs[24];
    old_u64(hs, 1);
    old_u64(hs + 8, 1);
    old_u64(hs + 16, 3);
    n += old_rec(b + n, 3, hs, 24);
    char p0[256], p1[256];
    snprintf(p0, sizeof(p0), "%s/0000000000000000-0000000000000000.wal", f->wal);
    int fd = open(p0, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
    n = old_head(b, 1, 4, 1, 1, 3);
    n += old_entry(b + n, 1, 4, "old04");
    n += old_entry(b + n, 1, 5, "old05");
    size_t good = n;
    n += old_entry(b + n, 1, 6, "old06");
    snprintf(p1, sizeof(p1), "%s/0000000000000001-0000000000000004.wal", f->wal);
    fd = open(p1, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, good + 12), (ssize_t)(good + 12)); /* entry 6 torn */
    close(fd);
    assert_int_equal(good, SEG_HEAD_LEN + 2 * ENTRY_REC(5));

    /* Opened with preallocation on: the old segments read as they always did. */
    struct cn_wal_repair rep;
    struct cn_wal *w = open_ok(f->wal, 256, &rep);
    assert_string_equal(rep.segment, "0000000000000001-0000000000000004.wal");
    assert_string_equal(rep.reason, "torn record (length runs past end of file)");
    assert_int_equal(rep.offset, good);
    assert_int_equal(rep.bytes_dropped, 12);
    assert_int_equal(rep.records_dropped, 1);
    assert_int_equal(file_size(p1), good); /* a growing segment is cut, as before */
    assert_int_equal(cn_wal_segment_count(w), 2);
    assert_false(exists(f->wal, "spare.tmp")); /* open preallocates only a fresh log's */
    struct collected c;
    struct cn_wal_hard_state got;
    replay(w, 0, &c, &got);
    assert_int_equal(c.n, 5);
    for (size_t i = 0; i < 5; i++) {
        char d[8];
        snprintf(d, sizeof(d), "old%02zu", i + 1);
        assert_int_equal(c.index[i], i + 1);
        assert_int_equal(c.type[i], (i + 1) % 3);
        assert_string_equal(c.data[i], d);
    }
    assert_int_equal(got.term, 1);
    assert_int_equal(got.vote, 1);
    assert_int_equal(got.commit, 3);

    /* Appends continue in the old segment, growing it; the next cut is preallocated. */
    append(w, 2, 6, "new06");
    assert_int_equal(cn_wal_sync(w), 0);
    assert_int_equal(file_size(p1), good + ENTRY_REC(5));
    assert_int_equal(cn_wal_prepare(w), 1);
    for (uint64_t i = 7; cn_wal_segment_count(w) < 3; i++) {
        append_fixed(w, 2, i, i);
        assert_int_equal(cn_wal_sync(w), 0);
    }
    char p2[256];
    seg_path(f, 2, p2, sizeof(p2));
    assert_int_equal(file_size(p2), 256);
    uint64_t last = cn_wal_last_index(w);
    cn_wal_close(w);
    w = open_ok(f->wal, 256, &rep);
    assert_int_equal(rep.records_dropped, 0);
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, last);
    assert_string_equal(c.data[5], "new06");
    assert_int_equal(c.term[5], 2);
    cn_wal_close(w);
}

static void failed_batch_is_zeroed_in_prealloc(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 256, NULL);
    append_fixed(w, 1, 1, 3);
    assert_int_equal(cn_wal_sync(w), 0);
    char path[256];
    only_seg_path(f, path, sizeof(path));
    off_t good = SEG_HEAD_LEN + 3 * ENTRY_REC(5);

    /* A short write (10 bytes land) and then ENOSPC: the 10 bytes are zeroed back. */
    inj.pwrite_errno = ENOSPC;
    inj.pwrite_short = 10;
    inj.pwrite_fail_n = 1;
    append_fixed(w, 1, 4, 6);
    assert_int_equal(cn_wal_sync(w), -ENOSPC);
    assert_int_equal(cn_wal_last_fsync_ns(w), -1); /* it never got to the fdatasync */
    assert_int_equal(file_size(path), 256);
    assert_int_equal(nonzero_bytes(path, good, 256), 0);
    assert_int_equal(cn_wal_last_index(w), 3);

    /* A batch that runs past the preallocated end fails in fdatasync: the file goes back to
     * its preallocated size, its part inside is zeroed. */
    inj.fdatasync_errno = EIO;
    inj.fdatasync_fail_n = 1;
    append_fixed(w, 1, 4, 9); /* 159 + 186 = 345 > 256 */
    assert_int_equal(cn_wal_sync(w), -EIO);
    assert_true(cn_wal_last_fsync_ns(w) >= 0); /* a failed fdatasync is timed too */
    assert_int_equal(file_size(path), 256);
    assert_int_equal(nonzero_bytes(path, good, 256), 0);

    /* With a spare lent, ENOSPC deletes it: the log needs the space more. */
    assert_int_equal(cn_wal_prepare(w), 1);
    inj.pwrite_errno = ENOSPC;
    inj.pwrite_fail_n = 1;
    append_fixed(w, 1, 4, 4);
    assert_int_equal(cn_wal_sync(w), -ENOSPC);
    assert_false(exists(f->wal, "spare.tmp"));
    assert_false(cn_wal_spare_ready(w));
    assert_false(cn_wal_prepare_begin(w)); /* until the next cut */

    append_fixed(w, 2, 4, 5);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_wal_close(w);
    struct cn_wal_repair rep;
    w = open_ok(f->wal, 256, &rep);
    assert_int_equal(rep.records_dropped, 0);
    assert_int_equal(rep.bytes_dropped, 0);
    struct collected c;
    replay(w, 0, &c, NULL);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.term[3], 2);
    assert_string_equal(c.data[4], "x0005");
    cn_wal_close(w);
}

/* ---------------------------------------------------------------------------------------------
 * Borrowed payloads: written from the caller's memory with one gathered write. */

/* Entry i's payload: len bytes derived from i, so a replay can check every one. */
static char *payload(uint64_t i, size_t len)
{
    char *p = cn_xmalloc(len ? len : 1);
    for (size_t k = 0; k < len; k++)
        p[k] = (char)('a' + (i * 7 + k) % 26);
    return p;
}

static size_t payload_len(uint64_t i)
{
    static const size_t lens[] = {0, 5, 63, 64, 65, 300, 4096, 1};
    return lens[i % 8];
}

struct checked {
    uint64_t n, next_index;
    bool ok;
};

static int check_cb(void *arg, const struct cn_wal_entry *e)
{
    struct checked *c = arg;
    size_t len = payload_len(e->index);
    char *want = payload(e->index, len);
    c->ok = c->ok && e->index == c->next_index && e->len == len && e->type == 1 &&
            (len == 0 || memcmp(e->data, want, len) == 0);
    cn_free(want);
    c->next_index++;
    c->n++;
    return 0;
}

static uint64_t check_log(const char *dir)
{
    struct cn_wal *w = open_ok(dir, 0, NULL);
    struct checked c = {0, 1, true};
    assert_int_equal(cn_wal_replay(w, 0, check_cb, &c, NULL), 0);
    assert_true(c.ok);
    cn_wal_close(w);
    return c.n;
}

static void slurp(const char *dir, struct cn_buf *out)
{
    char names[8][64], path[256];
    assert_int_equal(list_wal(dir, names, 8), 1);
    snprintf(path, sizeof(path), "%s/%s", dir, names[0]);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(cn_buf_read_fd(out, fd, 1u << 26), 0);
    close(fd);
}

/* The caller frees each payload as soon as the flush that carried it has ended (run under ASan,
 * any later read of it is caught), and the log reads back what was appended, in the same bytes
 * a copying append writes. */
static void borrowed_payloads_written_in_place(void **state)
{
    struct fx *f = *state;
    char copied[160];
    snprintf(copied, sizeof(copied), "%s/copied", f->root);
    struct cn_wal *w = open_ok(f->wal, 0, NULL);
    struct cn_wal *wc = open_ok(copied, 0, NULL);
    uint64_t next = 1;
    for (int round = 0; round < 6; round++) {
        char *held[16];
        size_t n = 3 + (size_t)round * 2;
        for (size_t k = 0; k < n; k++, next++) {
            held[k] = payload(next, payload_len(next));
            struct cn_wal_entry e = {1, next, 1, held[k], payload_len(next)};
            assert_int_equal(cn_wal_append_entry_borrowed(w, &e), 0);
            assert_int_equal(cn_wal_append_entry(wc, &e), 0);
        }
        struct cn_wal_hard_state hs = {1, 1, next - 1};
        cn_wal_set_hard_state(w, &hs);
        cn_wal_set_hard_state(wc, &hs);
        assert_true(cn_wal_flush_begin(w));
        unsigned writes = inj.writes;
        int rc = cn_wal_flush_run(w);
        assert_int_equal(rc, 0);
        assert_int_equal(inj.writes, writes + 1); /* the whole batch in one gathered write */
        cn_wal_flush_end(w, rc);
        for (size_t k = 0; k < n; k++)
            cn_free(held[k]); /* the log holds no reference any more */
        assert_int_equal(cn_wal_sync(wc), 0);
    }
    cn_wal_close(w);
    cn_wal_close(wc);
    assert_int_equal(check_log(f->wal), next - 1);
    struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
    slurp(f->wal, &a);
    slurp(copied, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len); /* the format does not change */
    cn_buf_free(&a);
    cn_buf_free(&b);
}

/* More pieces than one pwritev takes (IOV_MAX), and writes that land a few bytes at a time:
 * every byte still lands once, in order, across the piece boundaries. */
static void gathered_write_in_parts(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 0, NULL);
    char **held = cn_xcalloc(3040, sizeof(char *));
    uint64_t next = 1;
    for (; next <= 3000; next++) {
        held[next - 1] = payload(next, payload_len(next));
        struct cn_wal_entry e = {1, next, 1, held[next - 1], payload_len(next)};
        assert_int_equal(cn_wal_append_entry_borrowed(w, &e), 0);
    }
    assert_int_equal(cn_wal_sync(w), 0);
    /* now writes of 37 bytes at most, each succeeding */
    inj.short_ok = 37;
    for (; next <= 3040; next++) {
        held[next - 1] = payload(next, payload_len(next));
        struct cn_wal_entry e = {1, next, 1, held[next - 1], payload_len(next)};
        assert_int_equal(cn_wal_append_entry_borrowed(w, &e), 0);
    }
    unsigned writes = inj.writes;
    assert_int_equal(cn_wal_sync(w), 0);
    assert_true(inj.writes > writes + 100);
    inj.short_ok = 0;
    for (uint64_t i = 0; i < next - 1; i++)
        cn_free(held[i]);
    cn_free(held);
    cn_wal_close(w);
    assert_int_equal(check_log(f->wal), 3040);
}

/* A failed write drops the borrowed payloads of the failed batch and of the pending one behind
 * it: the caller may free them once flush_end returned, and appends them again (from new
 * memory) when space returns. */
static void failed_batch_releases_borrowed(void **state)
{
    struct fx *f = *state;
    struct cn_wal *w = open_ok(f->wal, 0, NULL);
    char *p1 = payload(1, payload_len(1)), *p3 = payload(3, payload_len(3));
    struct cn_wal_entry e1 = {1, 1, 1, p1, payload_len(1)};
    assert_int_equal(cn_wal_append_entry_borrowed(w, &e1), 0);
    assert_int_equal(cn_wal_sync(w), 0);
    char *a[2] = {payload(2, payload_len(2)), payload(3, payload_len(3))};
    struct cn_wal_entry e2 = {1, 2, 1, a[0], payload_len(2)};
    assert_int_equal(cn_wal_append_entry_borrowed(w, &e2), 0);
    inj.pwrite_errno = ENOSPC;
    inj.pwrite_short = 40; /* part of it lands first: it must be cut away */
    inj.pwrite_fail_n = 1;
    assert_true(cn_wal_flush_begin(w));
    struct cn_wal_entry e3 = {1, 3, 1, a[1], payload_len(3)};
    assert_int_equal(cn_wal_append_entry_borrowed(w, &e3), 0); /* pending, behind it */
    int rc = cn_wal_flush_run(w);
    assert_int_equal(rc, -ENOSPC);
    cn_wal_flush_end(w, rc);
    cn_free(a[0]);
    cn_free(a[1]);
    assert_int_equal(cn_wal_last_index(w), 1);
    assert_false(cn_wal_flush_begin(w)); /* nothing left that points at them */
    char *b2 = payload(2, payload_len(2));
    struct cn_wal_entry f2 = {1, 2, 1, b2, payload_len(2)};
    struct cn_wal_entry f3 = {1, 3, 1, p3, payload_len(3)};
    assert_int_equal(cn_wal_append_entry_borrowed(w, &f2), 0);
    assert_int_equal(cn_wal_append_entry_borrowed(w, &f3), 0);
    assert_int_equal(cn_wal_sync(w), 0);
    cn_free(p1);
    cn_free(b2);
    cn_free(p3);
    cn_wal_close(w);
    assert_int_equal(check_log(f->wal), 3);
}

static int reset_inj(void **state)
{
    memset(&inj, 0, sizeof(inj));
    return setup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(append_flush_reopen_replays, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(group_commit_keeps_appending, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(flush_on_worker_thread, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(torn_tail_truncated_and_reported, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(torn_header_only, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(crc_corrupt_tail_dropped, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(rollover_names_and_replay, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(hard_state_survives_rollover, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(corrupt_older_segment_is_error, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(overwrite_replays_final_log, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(release_deletes_covered_segments, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(enospc_truncates_and_recovers, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(borrowed_payloads_written_in_place, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(gathered_write_in_parts, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(failed_batch_releases_borrowed, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(failed_fsync_truncates_and_recovers, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(failed_cut_then_ok, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(snapshot_save_load_fallback_purge, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(snapshot_save_failure_leaves_nothing, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(meta_roundtrip, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(lock_held_twice, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(prealloc_zero_tail_reopens, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(zero_tail_shorter_than_a_header, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(torn_record_inside_prealloc_is_zeroed, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(data_after_zero_header_last_segment, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(data_after_zero_header_older_segment_is_corrupt, reset_inj,
                                        teardown),
        cmocka_unit_test_setup_teardown(prealloc_failure_falls_back_to_growing, reset_inj,
                                        teardown),
        cmocka_unit_test_setup_teardown(prealloc_leaves_half_the_free_space, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(spare_prepared_then_used_by_the_cut, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(prepare_alongside_flush, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(old_format_log_opens_and_continues, reset_inj, teardown),
        cmocka_unit_test_setup_teardown(failed_batch_is_zeroed_in_prealloc, reset_inj, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
