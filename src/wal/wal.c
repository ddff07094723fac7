/* wal: the segmented, CRC-framed Raft log: open with torn-tail repair, replay, group-committed
 * appends into preallocated segments, the spare segment made ahead of need, and segment release.
 * The record format and invariants are in wal.h's design notes. */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "wal_int.h"

#define REC_HDR      9u /* u32 crc, u32 len, u8 type */
#define REC_SEGMENT  1
#define REC_ENTRY    2
#define REC_HARD     3
#define SEG_MAGIC    0x4c574e43u /* "CNWL" */
#define SEG_VERSION  1u
#define SEG_HDR_LEN  24u
#define ENTRY_FIXED  17u
#define HARD_LEN     24u
#define SEG_NAME_LEN 37u                                     /* %016llx-%016llx.wal */
#define HEAD_LEN     (2u * REC_HDR + SEG_HDR_LEN + HARD_LEN) /* what a cut writes: 66 bytes */
#define SPARE_NAME   "spare.tmp"
#define SECTOR       512u /* the unit a torn write is made of (etcd's minSectorSize) */

/* The spare's states (wal.h's diagram). */
enum spare_state { SPARE_NONE, SPARE_MAKING, SPARE_READY, SPARE_LENT, SPARE_OFF };
/* A borrowed payload shorter than this is copied into the batch after all: copying a few bytes
 * costs less than an iovec of its own (the new leader's empty entry, SYNC commands). */
#define INLINE_MAX 64u

struct seg {
    uint64_t seq;
    uint64_t first_index; /* from the name */
};

/* A payload appended borrowed (cn_wal_append_entry_borrowed): written from where the caller
 * keeps it, right after byte `at` of the batch's head. */
struct ext {
    size_t at;
    const void *p;
    size_t len;
};

/* Records waiting for a write: the pending batch (loop thread) or the flushing one (the worker's
 * between flush_begin and flush_end). Their bytes are `head` (the frames, and the payloads that
 * were copied) with the borrowed payloads spliced in; flush_begin lays the whole out as iov. */
struct batch {
    struct cn_buf head;
    struct ext *ext;
    size_t n_ext, cap_ext;
    size_t len; /* bytes on disk: head.len + the borrowed payloads */
    struct iovec *iov;
    size_t n_iov, cap_iov;
    bool has_entries;
    uint64_t first_index, last_index;
    bool has_hs;
    struct cn_wal_hard_state hs;
};

struct cn_wal {
    char errmsg[256];
    char *dir;
    const struct cn_wal_fs *fs;
    uint64_t segment_size;

    /* Loop thread. */
    struct seg *segs; /* in sequence order; the last is the active one (or the one before a cut
                       * that flush_end has not merged yet) */
    size_t n_segs, cap_segs;
    struct batch pending;
    uint64_t last_index;         /* last appended entry, pending or durable */
    struct cn_wal_hard_state hs; /* last set, pending or durable */
    uint64_t durable_index;
    struct cn_wal_hard_state durable_hs;
    bool flushing;
    bool prealloc;          /* !no_prealloc */
    bool grow_first;        /* cn_wal_options.grow_first */
    enum spare_state spare; /* see wal.h */
    uint64_t prealloc_failures;
    char prealloc_errmsg[256];

    /* The spare: its file's descriptor and size, and prepare_run's errmsg. Owned by prepare_run
     * while MAKING, by flush_run while LENT, by the loop thread otherwise. */
    int spare_fd;
    uint64_t spare_len;
    char spare_errmsg[256];

    /* The flushing batch: filled by flush_begin, read by the worker, reset by flush_end. */
    struct batch batch;

    /* Worker state: touched only by flush_run, or by the loop thread when no flush is in
     * flight (open, flush_end, close). */
    int fd;                   /* the active segment, O_RDWR */
    uint64_t seq;             /* its sequence number */
    uint64_t seg_first;       /* and its name's first index */
    uint64_t seg_len;         /* its last good length */
    uint64_t file_last_index; /* last entry index in the files */
    struct cn_wal_hard_state file_hs;
    uint64_t alloc_len; /* its preallocated size: zeros from seg_len to here; 0 if none */
    bool broken;        /* a failed flush could not be rolled back */
    bool cut_done;      /* flush_run cut `cut`; flush_end adds it to segs */
    struct seg cut;
    int64_t fsync_ns;   /* the last flush_run's batch fdatasync, -1 if it did not run */
    bool flush_spare;   /* flush_begin lent the spare; flush_run clears it when it uses it */
    bool spare_used;    /* flush_run used (or spoiled) the lent spare */
    bool spare_dropped; /* flush_run deleted the lent spare after ENOSPC */
    int spare_rc;       /* a cut into the lent spare failed with this (and grew instead) */
};

static void seg_name(char *out, size_t n, uint64_t seq, uint64_t first_index)
{
    snprintf(out, n, "%016llx-%016llx.wal", (unsigned long long)seq,
             (unsigned long long)first_index);
}

static bool parse_seg_name(const char *name, struct seg *s)
{
    return strlen(name) == SEG_NAME_LEN && name[16] == '-' && strcmp(name + 33, ".wal") == 0 &&
           cn_wal__parse_hex16(name, &s->seq) && cn_wal__parse_hex16(name + 17, &s->first_index);
}

static void push_seg(struct cn_wal *w, struct seg s)
{
    if (w->n_segs == w->cap_segs) {
        w->cap_segs = w->cap_segs ? w->cap_segs * 2 : 8;
        w->segs = cn_xrealloc(w->segs, w->cap_segs * sizeof(*w->segs));
    }
    w->segs[w->n_segs++] = s;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---------------------------------------------------------------------------------------------
 * Record encoding. Appending reserves room once and writes in place: no allocation per record
 * beyond the buffer's own growth. */

/* Fills in the frame around a payload of len bytes: the first len - tail_len of them already at
 * h + REC_HDR, the rest at tail (a borrowed payload, written from there). The CRC covers len,
 * type and the whole payload, and is computed here, once. */
static void frame_seal_tail(uint8_t *h, uint8_t type, uint32_t len, const void *tail,
                            size_t tail_len)
{
    cn_wal__put32(h + 4, len);
    h[8] = type;
    uint32_t crc = cn_wal__crc(0, h + 4, REC_HDR - 4 + (size_t)len - tail_len);
    if (tail_len) crc = cn_wal__crc(crc, tail, tail_len);
    cn_wal__put32(h, crc);
}

static void frame_seal(uint8_t *h, uint8_t type, uint32_t len)
{
    frame_seal_tail(h, type, len, NULL, 0);
}

/* Room for a record whose first in_head payload bytes go into the batch's head. */
static uint8_t *rec_begin(struct batch *b, size_t in_head)
{
    cn_buf_reserve(&b->head, REC_HDR + in_head);
    return (uint8_t *)b->head.p + b->head.len + REC_HDR;
}

/* Seals the record rec_begin made room for: len payload bytes, the last tail_len of them
 * borrowed from tail. */
static void rec_end(struct batch *b, uint8_t type, uint32_t len, const void *tail, size_t tail_len)
{
    struct cn_buf *h = &b->head;
    frame_seal_tail((uint8_t *)h->p + h->len, type, len, tail, tail_len);
    h->len += REC_HDR + (size_t)len - tail_len;
    h->p[h->len] = '\0';
    if (tail_len) {
        if (b->n_ext == b->cap_ext) {
            b->cap_ext = b->cap_ext ? b->cap_ext * 2 : 64;
            b->ext = cn_xrealloc(b->ext, b->cap_ext * sizeof(*b->ext));
        }
        b->ext[b->n_ext++] = (struct ext){h->len, tail, tail_len};
    }
    b->len += REC_HDR + (size_t)len;
}

static void hard_encode(uint8_t *p, const struct cn_wal_hard_state *hs)
{
    cn_wal__put64(p, hs->term);
    cn_wal__put64(p + 8, hs->vote);
    cn_wal__put64(p + 16, hs->commit);
}

static void put_hard(struct batch *b, const struct cn_wal_hard_state *hs)
{
    hard_encode(rec_begin(b, HARD_LEN), hs);
    rec_end(b, REC_HARD, HARD_LEN, NULL, 0);
}

/* Forgets the records (keeping the memory for reuse, unless one huge batch grew it). */
static void batch_reset(struct batch *b)
{
    if (b->head.cap > 16u * 1024u * 1024u)
        cn_buf_free(&b->head); /* do not pin one huge batch's memory */
    else
        cn_buf_reset(&b->head);
    b->n_ext = 0;
    b->n_iov = 0;
    b->len = 0;
    b->has_entries = false;
    b->has_hs = false;
}

static void batch_free(struct batch *b)
{
    cn_buf_free(&b->head);
    cn_free(b->ext);
    cn_free(b->iov);
    memset(b, 0, sizeof(*b));
}

/* Lays the batch out for one gathered write: head pieces with the borrowed payloads between. */
static void batch_layout(struct batch *b)
{
    size_t need = 2 * b->n_ext + 1;
    if (need > b->cap_iov) {
        b->cap_iov = need;
        b->iov = cn_xrealloc(b->iov, need * sizeof(*b->iov));
    }
    size_t at = 0, n = 0;
    for (size_t i = 0; i < b->n_ext; i++) {
        const struct ext *x = &b->ext[i];
        if (x->at > at) b->iov[n++] = (struct iovec){b->head.p + at, x->at - at};
        b->iov[n++] = (struct iovec){(void *)x->p, x->len};
        at = x->at;
    }
    if (b->head.len > at) b->iov[n++] = (struct iovec){b->head.p + at, b->head.len - at};
    b->n_iov = n;
}

/* ---------------------------------------------------------------------------------------------
 * Zero tails. */

static const uint8_t zeros[64 * 1024];

/* The offset of the first nonzero byte of p[from, n), or n when there is none. */
static size_t first_nonzero(const uint8_t *p, size_t from, size_t n)
{
    while (from < n) {
        size_t k = n - from < sizeof(zeros) ? n - from : sizeof(zeros);
        if (memcmp(p + from, zeros, k) != 0) {
            while (p[from] == 0)
                from++;
            return from;
        }
        from += k;
    }
    return n;
}

/* One past the last nonzero byte of p[from, n), or from when they are all zero. */
static size_t nonzero_end(const uint8_t *p, size_t from, size_t n)
{
    while (n > from) {
        size_t k = n - from < sizeof(zeros) ? n - from : sizeof(zeros);
        if (memcmp(p + n - k, zeros, k) != 0) {
            while (p[n - 1] == 0)
                n--;
            return n;
        }
        n -= k;
    }
    return from;
}

/* Whether the record at p[off, off + n) has a zero-filled piece in one of the disk sectors it
 * spans: what a write torn by a crash leaves in a preallocated file (etcd's isTornEntry). */
static bool torn_sectors(const uint8_t *p, size_t off, size_t n)
{
    size_t end = off + n;
    while (off < end) {
        size_t next = (off / SECTOR + 1) * SECTOR;
        size_t k = (next < end ? next : end) - off;
        if (memcmp(p + off, zeros, k) == 0) return true;
        off += k;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Record decoding. */

struct rec {
    uint8_t type;
    uint32_t len;
    const uint8_t *payload;
};

/* Reads the frame at *off. Returns 1 and advances *off, 0 at the end of the data (the end of the
 * file, a zero frame header, or fewer than REC_HDR zero bytes before the end), or -1 with *why
 * set when the frame is torn or corrupt. What follows a zero header is not looked at here. */
static int rec_next(const uint8_t *p, size_t n, size_t *off, struct rec *r, const char **why)
{
    size_t left = n - *off;
    if (left == 0) return 0;
    const uint8_t *h = p + *off;
    if (memcmp(h, zeros, left < REC_HDR ? left : REC_HDR) == 0) return 0;
    if (left < REC_HDR) {
        *why = "torn record header";
        return -1;
    }
    uint32_t len = cn_wal__get32(h + 4);
    if (len > CN_WAL_MAX_RECORD) {
        *why = "record length too large";
        return -1;
    }
    if ((size_t)len > left - REC_HDR) {
        *why = "torn record (length runs past end of file)";
        return -1;
    }
    if (cn_wal__crc(0, h + 4, REC_HDR - 4 + (size_t)len) != cn_wal__get32(h)) {
        *why = torn_sectors(p, *off, REC_HDR + (size_t)len)
                   ? "torn record (a sector of it is zeros)"
                   : "crc mismatch";
        return -1;
    }
    r->type = h[8];
    r->len = len;
    r->payload = h + REC_HDR;
    *off += REC_HDR + (size_t)len;
    return 1;
}

static void decode_entry(const struct rec *r, struct cn_wal_entry *e)
{
    e->term = cn_wal__get64(r->payload);
    e->index = cn_wal__get64(r->payload + 8);
    e->type = r->payload[16];
    e->data = r->payload + ENTRY_FIXED;
    e->len = r->len - ENTRY_FIXED;
}

static void decode_hard(const struct rec *r, struct cn_wal_hard_state *hs)
{
    hs->term = cn_wal__get64(r->payload);
    hs->vote = cn_wal__get64(r->payload + 8);
    hs->commit = cn_wal__get64(r->payload + 16);
}

/* A read-only view of one segment file. */
struct seg_map {
    const uint8_t *p;
    size_t len;
};

static int map_seg(struct cn_wal *w, const struct seg *s, struct seg_map *m)
{
    char name[64], path[4096];
    seg_name(name, sizeof(name), s->seq, s->first_index);
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    m->p = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        cn_wal__errf(w->errmsg, "open segment %s: %s", name, cn_strerror(rc));
        return rc;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
        } else {
            m->p = p;
            m->len = (size_t)st.st_size;
        }
    }
    close(fd);
    if (rc != 0) cn_wal__errf(w->errmsg, "read segment %s: %s", name, cn_strerror(rc));
    return rc;
}

static void unmap_seg(struct seg_map *m)
{
    if (m->p != NULL) munmap((void *)m->p, m->len);
    m->p = NULL;
}

/* Checks a decoded record's payload against its type (the CRC was fine, so a mismatch here is
 * corruption or a newer format, not a torn write). off is the record's start, for errmsg. */
static int check_rec(struct cn_wal *w, const char *name, size_t off, const struct rec *r,
                     bool first, const struct seg *s)
{
    if (first != (r->type == REC_SEGMENT)) {
        cn_wal__errf(w->errmsg, "segment %s offset %zu: %s", name, off,
                     first ? "missing segment header" : "segment header in the middle");
        return CN_ERR_CORRUPT;
    }
    switch (r->type) {
    case REC_SEGMENT:
        if (r->len != SEG_HDR_LEN || cn_wal__get32(r->payload) != SEG_MAGIC) {
            cn_wal__errf(w->errmsg, "segment %s offset %zu: bad segment header", name, off);
            return CN_ERR_CORRUPT;
        }
        if (cn_wal__get32(r->payload + 4) != SEG_VERSION) {
            cn_wal__errf(w->errmsg, "segment %s: unsupported version %u", name,
                         cn_wal__get32(r->payload + 4));
            return CN_ERR_VERSION;
        }
        if (cn_wal__get64(r->payload + 8) != s->seq ||
            cn_wal__get64(r->payload + 16) != s->first_index) {
            cn_wal__errf(w->errmsg, "segment %s: header says seq %llx index %llx", name,
                         (unsigned long long)cn_wal__get64(r->payload + 8),
                         (unsigned long long)cn_wal__get64(r->payload + 16));
            return CN_ERR_CORRUPT;
        }
        return 0;
    case REC_ENTRY:
        if (r->len < ENTRY_FIXED) break;
        return 0;
    case REC_HARD:
        if (r->len != HARD_LEN) break;
        return 0;
    default:
        cn_wal__errf(w->errmsg, "segment %s offset %zu: unknown record type %u", name, off,
                     r->type);
        return CN_ERR_VERSION;
    }
    cn_wal__errf(w->errmsg, "segment %s offset %zu: record type %u has bad length %u", name, off,
                 r->type, r->len);
    return CN_ERR_CORRUPT;
}

/* ---------------------------------------------------------------------------------------------
 * Cutting a segment: header + current hard state, written into a .tmp file (the spare, or a new
 * growing one), fsynced, renamed, the directory fsynced (invariant 1), then kept open for
 * appending. Runs on the worker inside flush_run, or on the loop thread in open. */

static void head_encode(const struct cn_wal *w, uint8_t *rec, uint64_t seq, uint64_t first_index)
{
    uint8_t *p = rec + REC_HDR;
    cn_wal__put32(p, SEG_MAGIC);
    cn_wal__put32(p + 4, SEG_VERSION);
    cn_wal__put64(p + 8, seq);
    cn_wal__put64(p + 16, first_index);
    frame_seal(rec, REC_SEGMENT, SEG_HDR_LEN);
    hard_encode(rec + 2 * REC_HDR + SEG_HDR_LEN, &w->file_hs);
    frame_seal(rec + REC_HDR + SEG_HDR_LEN, REC_HARD, HARD_LEN);
}

/* The new segment is the active one. */
static void cut_installed(struct cn_wal *w, int fd, uint64_t seq, uint64_t first_index,
                          uint64_t alloc_len)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    w->seq = seq;
    w->seg_first = first_index;
    w->seg_len = HEAD_LEN;
    w->alloc_len = alloc_len;
    w->cut_done = true;
    w->cut.seq = seq;
    w->cut.first_index = first_index;
}

/* A segment that grows with each write: the way before preallocation, and the fallback. */
static int cut_grow(struct cn_wal *w, uint64_t seq, uint64_t first_index)
{
    uint8_t rec[HEAD_LEN];
    head_encode(w, rec, seq, first_index);
    char name[64], path[4096];
    seg_name(name, sizeof(name), seq, first_index);
    int rc = cn_wal__atomic_write(w->fs, w->dir, name, rec, sizeof(rec), NULL, 0, w->errmsg);
    if (rc != 0) return rc;
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    int fd = w->fs->open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        cn_wal__errf(w->errmsg, "open new segment %s: %s", name, cn_strerror(rc));
        return rc;
    }
    cut_installed(w, fd, seq, first_index, 0);
    return 0;
}

/* Creates dir/spare.tmp of len bytes: fallocate (where there is one), written zeros, fsync.
 * On failure the file is removed and errmsg says which step failed. 0 or -errno. */
static int spare_make(const struct cn_wal *w, uint64_t len, int *fd_out, char *errmsg)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", w->dir, SPARE_NAME);
    *fd_out = -1;
    int fd = w->fs->open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        cn_wal__errf(errmsg, "create %s: %s", path, cn_strerror(rc));
        return rc;
    }
    const char *step = "fallocate";
    int rc = 0;
    struct statvfs st;
    if (w->fs->fstatvfs != NULL && w->fs->fstatvfs(fd, &st) == 0 &&
        (uint64_t)st.f_bavail * st.f_frsize / 2 < len) {
        /* Half of what is free at most: the rest is for snapshots, metadata and the log. */
        rc = -ENOSPC;
        cn_wal__errf(errmsg, "preallocate %s (%llu bytes): only %llu bytes free", path,
                     (unsigned long long)len,
                     (unsigned long long)((uint64_t)st.f_bavail * st.f_frsize));
        close(fd);
        unlink(path);
        return rc;
    }
    if (w->fs->fallocate != NULL) {
        while (rc == 0 && w->fs->fallocate(fd, 0, (off_t)len) != 0) {
            if (errno == EINTR) continue;
            if (errno != EOPNOTSUPP) rc = -errno;
            break;
        }
    }
    if (rc == 0) {
        step = "write zeros to";
        rc = cn_wal__write_zeros(w->fs, fd, 0, len);
    }
    if (rc == 0 && w->fs->fsync(fd) != 0) {
        rc = -errno;
        step = "fsync";
    }
    if (rc != 0) {
        close(fd);
        unlink(path); /* give the space back: the log may need it */
        cn_wal__errf(errmsg, "preallocate %s (%llu bytes): %s: %s", path, (unsigned long long)len,
                     step, cn_strerror(rc));
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Closes and deletes the spare (its fd is the caller's to give up). */
static void spare_drop(const struct cn_wal *w, int fd)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", w->dir, SPARE_NAME);
    if (fd >= 0) close(fd);
    unlink(path);
}

/* Into the spare: the header at offset 0, fsync, rename to the segment's name, fsync dir. The
 * spare is used up either way (a failed step leaves it half written; it is deleted). */
static int cut_spare(struct cn_wal *w, uint64_t seq, uint64_t first_index, char *errmsg)
{
    uint8_t rec[HEAD_LEN];
    head_encode(w, rec, seq, first_index);
    char name[64], from[4096], to[4096];
    seg_name(name, sizeof(name), seq, first_index);
    snprintf(from, sizeof(from), "%s/%s", w->dir, SPARE_NAME);
    snprintf(to, sizeof(to), "%s/%s", w->dir, name);
    int fd = w->spare_fd;
    w->spare_fd = -1;
    const char *step = "write the header into";
    int rc = cn_wal__pwrite_all(w->fs, fd, rec, sizeof(rec), 0);
    if (rc == 0 && w->fs->fsync(fd) != 0) {
        rc = -errno;
        step = "fsync";
    }
    if (rc == 0 && w->fs->rename(from, to) != 0) {
        rc = -errno;
        step = "rename";
    }
    if (rc != 0) {
        spare_drop(w, fd);
        cn_wal__errf(errmsg, "cut %s from the spare: %s %s: %s", name, step, SPARE_NAME,
                     cn_strerror(rc));
        return rc;
    }
    rc = cn_wal__fsync_dir(w->fs, w->dir);
    if (rc != 0) {
        /* The name may not survive a crash: the flush fails, and its retry cuts again (growing,
         * over this file). */
        close(fd);
        cn_wal__errf(errmsg, "fsync dir %s after cutting %s from the spare: %s", w->dir, name,
                     cn_strerror(rc));
        return rc;
    }
    cut_installed(w, fd, seq, first_index, w->spare_len);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Open. */

static int list_segs(struct cn_wal *w)
{
    DIR *d = opendir(w->dir);
    if (d == NULL) {
        int rc = -errno;
        cn_wal__errf(w->errmsg, "open dir %s: %s", w->dir, cn_strerror(rc));
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct seg s;
        size_t n = strlen(de->d_name);
        if (parse_seg_name(de->d_name, &s)) {
            push_seg(w, s);
        } else if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
            /* A cut that crashed before its rename, or a spare: never part of the log. */
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", w->dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
    if (w->n_segs > 1) qsort(w->segs, w->n_segs, sizeof(*w->segs), seg_cmp);
    for (size_t i = 1; i < w->n_segs; i++) {
        if (w->segs[i].seq != w->segs[i - 1].seq + 1) {
            char a[64], b[64];
            seg_name(a, sizeof(a), w->segs[i - 1].seq, w->segs[i - 1].first_index);
            seg_name(b, sizeof(b), w->segs[i].seq, w->segs[i].first_index);
            cn_wal__errf(w->errmsg, "segments missing between %s and %s", a, b);
            return CN_ERR_CORRUPT;
        }
    }
    return 0;
}

/* Drops the last segment's damaged tail from off (see wal.h's "Damage") and fills *repair. gap is
 * the first nonzero byte after a zero header at off (data past the end), or 0 when the frame at
 * off is bad. *size_out: the file's length afterwards. */
static int repair_tail(struct cn_wal *w, const char *name, const struct seg_map *m, size_t off,
                       size_t gap, const char *why, uint64_t *size_out,
                       struct cn_wal_repair *repair)
{
    /* Count the bad frame and whatever still parses after it, so the caller can tell a torn last
     * write (1) from damage with good records behind it (> 1). */
    uint64_t n = 0;
    struct rec r;
    const char *w2;
    /* The damage ends at the last nonzero byte, or at the end of the bad frame if that is
     * later (its own zeros are part of it). */
    size_t end = nonzero_end(m->p, off, m->len);
    if (gap != 0) {
        size_t pos = gap;
        while (rec_next(m->p, m->len, &pos, &r, &w2) == 1)
            n++;
        if (n == 0) n = 1;
    } else {
        n = 1;
        size_t len_left = m->len - off;
        uint32_t len = len_left >= REC_HDR ? cn_wal__get32(m->p + off + 4) : 0;
        if (len_left < REC_HDR || (size_t)len > len_left - REC_HDR) {
            end = m->len; /* torn header, or a length that runs past the end of the file */
        } else {
            size_t pos = off + REC_HDR + len;
            if (pos > end) end = pos;
            while (rec_next(m->p, m->len, &pos, &r, &w2) == 1)
                n++;
        }
    }
    /* Damage that runs to the end of the file is cut off (a growing segment, as before
     * preallocation); damage followed by zeros is zeroed, so the preallocated size stays. */
    bool shrink = end == m->len;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    int fd = w->fs->open(path, O_RDWR | O_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && shrink && w->fs->ftruncate(fd, (off_t)off) != 0) rc = -errno;
    if (rc == 0 && !shrink) rc = cn_wal__write_zeros(w->fs, fd, off, end - off);
    if (rc == 0 && w->fs->fdatasync(fd) != 0) rc = -errno;
    if (fd >= 0) close(fd);
    if (rc != 0) {
        cn_wal__errf(w->errmsg, "segment %s offset %zu: %s; %s failed: %s", name, off, why,
                     shrink ? "truncating" : "zeroing", cn_strerror(rc));
        return rc;
    }
    *size_out = shrink ? off : m->len;
    if (repair != NULL) {
        repair->bytes_dropped = end - off;
        repair->records_dropped = n;
        repair->offset = off;
        snprintf(repair->segment, sizeof(repair->segment), "%s", name);
        snprintf(repair->reason, sizeof(repair->reason), "%s", why);
    }
    return 0;
}

/* Reads every segment; leaves the active one open for appending. */
static int recover(struct cn_wal *w, struct cn_wal_repair *repair)
{
    uint64_t last_index = 0;
    struct cn_wal_hard_state hs = {0, 0, 0};
    uint64_t good = 0, size = 0;
    for (size_t i = 0; i < w->n_segs; i++) {
        const struct seg *s = &w->segs[i];
        bool is_last = i + 1 == w->n_segs;
        char name[64];
        seg_name(name, sizeof(name), s->seq, s->first_index);
        struct seg_map m;
        int rc = map_seg(w, s, &m);
        if (rc != 0) return rc;
        size_t off = 0, start = 0, gap = 0;
        struct rec r;
        const char *why = NULL;
        int got;
        while ((got = rec_next(m.p, m.len, &off, &r, &why)) == 1) {
            rc = check_rec(w, name, start, &r, start == 0, s);
            if (rc != 0) break;
            if (r.type == REC_ENTRY) {
                last_index = cn_wal__get64(r.payload + 8);
            } else if (r.type == REC_HARD) {
                decode_hard(&r, &hs);
            }
            start = off;
        }
        if (rc == 0 && got == 0 && start < m.len) {
            /* Invariant 5: only zeros after the end of the data. */
            gap = first_nonzero(m.p, start, m.len);
            if (gap < m.len) {
                got = -1;
                why = "data after the zero frame header that ends the log";
            } else {
                gap = 0;
            }
        }
        size = m.len;
        if (rc == 0 && got < 0) {
            if (!is_last || start == 0) {
                /* Only the last segment's tail can be torn by a crash; a segment's header was
                 * fsynced before its rename. */
                if (gap != 0)
                    cn_wal__errf(w->errmsg,
                                 "segment %s offset %zu: %s (nonzero byte at offset %zu)", name,
                                 start, why, gap);
                else
                    cn_wal__errf(w->errmsg, "segment %s offset %zu: %s", name, start, why);
                rc = CN_ERR_CORRUPT;
            } else {
                rc = repair_tail(w, name, &m, start, gap, why, &size, repair);
            }
        }
        if (rc == 0 && start == 0) {
            cn_wal__errf(w->errmsg, "segment %s: empty", name);
            rc = CN_ERR_CORRUPT;
        }
        unmap_seg(&m);
        if (rc != 0) return rc;
        good = start;
    }
    const struct seg *s = &w->segs[w->n_segs - 1];
    char name[64], path[4096];
    seg_name(name, sizeof(name), s->seq, s->first_index);
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    w->fd = w->fs->open(path, O_RDWR | O_CLOEXEC, 0);
    if (w->fd < 0) {
        int rc = -errno;
        cn_wal__errf(w->errmsg, "open segment %s: %s", name, cn_strerror(rc));
        return rc;
    }
    w->seq = s->seq;
    w->seg_first = s->first_index;
    w->seg_len = good;
    w->alloc_len = size > good ? size : 0; /* a zero tail (invariant 5): preallocated */
    w->file_last_index = w->durable_index = w->last_index = last_index;
    w->file_hs = w->durable_hs = w->hs = hs;
    return 0;
}

/* A fresh log's first segment: preallocated when it can be, else growing. */
static int first_segment(struct cn_wal *w)
{
    if (w->prealloc && !w->grow_first) {
        int rc = spare_make(w, w->segment_size, &w->spare_fd, w->spare_errmsg);
        if (rc == 0) {
            w->spare_len = w->segment_size;
            rc = cut_spare(w, 0, 0, w->spare_errmsg);
            if (rc == 0) return 0;
        }
        w->prealloc_failures++;
        snprintf(w->prealloc_errmsg, sizeof(w->prealloc_errmsg), "%s", w->spare_errmsg);
    }
    return cut_grow(w, 0, 0);
}

int cn_wal_open(const char *dir, const struct cn_wal_options *opts, struct cn_wal **out,
                struct cn_wal_repair *repair, char *errmsg)
{
    *out = NULL;
    if (repair != NULL) memset(repair, 0, sizeof(*repair));
    struct cn_wal *w = CN_NEW(struct cn_wal);
    w->dir = cn_xstrdup(dir);
    w->fd = -1;
    w->spare_fd = -1;
    w->fsync_ns = -1;
    w->fs = opts && opts->fs ? opts->fs : &cn_wal_fs_default;
    w->segment_size = opts && opts->segment_size ? opts->segment_size : CN_WAL_SEGMENT_SIZE_DEFAULT;
    w->prealloc = !(opts && opts->no_prealloc);
    w->grow_first = opts && opts->grow_first;

    int rc = strlen(dir) > CN_WAL__DIR_MAX ? -ENAMETOOLONG : cn_wal__mkdirs(dir);
    if (rc != 0) {
        cn_wal__errf(w->errmsg, "create %s: %s", dir, cn_strerror(rc));
        goto err;
    }
    rc = list_segs(w);
    if (rc != 0) goto err;
    if (w->n_segs == 0) {
        rc = first_segment(w);
        if (rc != 0) goto err;
        push_seg(w, w->cut);
        w->cut_done = false;
        *out = w;
        return 0;
    }
    rc = recover(w, repair);
    if (rc != 0) goto err;
    *out = w;
    return 0;

err:
    if (errmsg != NULL) snprintf(errmsg, 256, "%s", w->errmsg);
    cn_wal_close(w);
    return rc;
}

void cn_wal_close(struct cn_wal *w)
{
    if (w == NULL) return;
    CN_ASSERT(!w->flushing && w->spare != SPARE_MAKING);
    if (w->fd >= 0) close(w->fd);
    if (w->spare == SPARE_READY) spare_drop(w, w->spare_fd);
    batch_free(&w->pending);
    batch_free(&w->batch);
    cn_free(w->segs);
    cn_free(w->dir);
    cn_free(w);
}

bool cn_wal_exists(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return false;
    bool found = false;
    struct dirent *de;
    struct seg s;
    while (!found && (de = readdir(d)) != NULL)
        found = parse_seg_name(de->d_name, &s);
    closedir(d);
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * Replay. */

struct replay_ent {
    uint64_t term, index;
    uint8_t type;
    size_t off, len; /* in the data buffer */
};

int cn_wal_replay(struct cn_wal *w, uint64_t from_index, cn_wal_replay_cb cb, void *arg,
                  struct cn_wal_hard_state *hs)
{
    CN_ASSERT(!w->flushing);
    if (hs != NULL) *hs = w->durable_hs;
    /* Segment i holds no live entry above from_index when segment i+1's name says its first
     * index is <= from_index + 1 (invariant 3): skip those. */
    size_t first = 0;
    while (first + 1 < w->n_segs && w->segs[first + 1].first_index <= from_index + 1)
        first++;

    struct replay_ent *ents = NULL;
    size_t n = 0, cap = 0;
    struct cn_buf data = CN_BUF_INIT;
    int rc = 0;
    for (size_t i = first; i < w->n_segs && rc == 0; i++) {
        const struct seg *s = &w->segs[i];
        char name[64];
        seg_name(name, sizeof(name), s->seq, s->first_index);
        struct seg_map m;
        rc = map_seg(w, s, &m);
        if (rc != 0) break;
        size_t off = 0, start = 0;
        struct rec r;
        const char *why = NULL;
        int got;
        while ((got = rec_next(m.p, m.len, &off, &r, &why)) == 1) {
            rc = check_rec(w, name, start, &r, start == 0, s);
            if (rc != 0) break;
            start = off;
            if (r.type != REC_ENTRY) continue;
            struct cn_wal_entry e;
            decode_entry(&r, &e);
            /* Raft's overwrite: this entry replaces everything from its index on. */
            while (n > 0 && ents[n - 1].index >= e.index)
                data.len = ents[--n].off;
            if (e.index <= from_index) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                ents = cn_xrealloc(ents, cap * sizeof(*ents));
            }
            ents[n++] = (struct replay_ent){e.term, e.index, e.type, data.len, e.len};
            cn_buf_append(&data, e.data, e.len);
        }
        if (rc == 0 && got < 0) {
            cn_wal__errf(w->errmsg, "segment %s offset %zu: %s (changed since open)", name, start,
                         why);
            rc = CN_ERR_CORRUPT;
        }
        unmap_seg(&m);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t want = i == 0 ? from_index + 1 : ents[i - 1].index + 1;
        if (ents[i].index != want) {
            cn_wal__errf(w->errmsg, "replay from %llu: entry %llu follows %llu",
                         (unsigned long long)from_index, (unsigned long long)ents[i].index,
                         (unsigned long long)(want - 1));
            rc = CN_ERR_CORRUPT;
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct cn_wal_entry e = {ents[i].term, ents[i].index, ents[i].type,
                                 data.p ? data.p + ents[i].off : "", ents[i].len};
        rc = cb(arg, &e);
    }
    cn_free(ents);
    cn_buf_free(&data);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Appending and group commit. */

uint64_t cn_wal_last_index(const struct cn_wal *w)
{
    return w->last_index;
}

uint64_t cn_wal_durable_index(const struct cn_wal *w)
{
    return w->durable_index;
}

struct cn_wal_hard_state cn_wal_hard_state(const struct cn_wal *w)
{
    return w->hs;
}

/* borrow: the payload (unless it is short) is written from e->data, not copied. */
static int append_entry(struct cn_wal *w, const struct cn_wal_entry *e, bool borrow)
{
    if (e->len > CN_WAL_MAX_RECORD - ENTRY_FIXED) {
        cn_wal__errf(w->errmsg, "entry %llu: %zu bytes exceed the record limit",
                     (unsigned long long)e->index, e->len);
        return CN_ERR_TOO_LARGE;
    }
    struct batch *b = &w->pending;
    size_t tail = borrow && e->len >= INLINE_MAX ? e->len : 0;
    uint32_t len = (uint32_t)(ENTRY_FIXED + e->len);
    uint8_t *p = rec_begin(b, len - tail);
    cn_wal__put64(p, e->term);
    cn_wal__put64(p + 8, e->index);
    p[16] = e->type;
    if (e->len && !tail) memcpy(p + ENTRY_FIXED, e->data, e->len);
    rec_end(b, REC_ENTRY, len, e->data, tail);
    if (!b->has_entries) {
        b->has_entries = true;
        b->first_index = e->index;
    }
    w->last_index = e->index;
    return 0;
}

int cn_wal_append_entry(struct cn_wal *w, const struct cn_wal_entry *e)
{
    return append_entry(w, e, false);
}

int cn_wal_append_entry_borrowed(struct cn_wal *w, const struct cn_wal_entry *e)
{
    return append_entry(w, e, true);
}

void cn_wal_set_hard_state(struct cn_wal *w, const struct cn_wal_hard_state *hs)
{
    put_hard(&w->pending, hs);
    w->hs = *hs;
    w->pending.has_hs = true;
}

bool cn_wal_flush_begin(struct cn_wal *w)
{
    if (w->flushing || w->pending.len == 0) return false;
    struct batch t = w->batch; /* empty, but keeps its capacity for reuse */
    w->batch = w->pending;
    w->pending = t;
    w->batch.last_index = w->last_index;
    w->batch.hs = w->hs;
    batch_layout(&w->batch);
    w->flushing = true;
    w->flush_spare = w->spare == SPARE_READY;
    if (w->flush_spare) w->spare = SPARE_LENT;
    w->spare_used = w->spare_dropped = false;
    w->spare_rc = 0;
    return true;
}

/* Erases a failed batch of len bytes written at good (invariant 2): truncates what lies past the
 * preallocated size, zeroes what lies inside it, fdatasyncs. 0 or -errno. */
static int erase_batch(struct cn_wal *w, uint64_t good, uint64_t len)
{
    uint64_t end = good + len;
    int rc = 0;
    if (good >= w->alloc_len) {
        if (w->fs->ftruncate(w->fd, (off_t)good) != 0) rc = -errno;
    } else {
        if (end > w->alloc_len && w->fs->ftruncate(w->fd, (off_t)w->alloc_len) != 0) rc = -errno;
        if (rc == 0)
            rc = cn_wal__write_zeros(w->fs, w->fd, good,
                                     (end < w->alloc_len ? end : w->alloc_len) - good);
    }
    if (rc == 0 && w->fs->fdatasync(w->fd) != 0) rc = -errno;
    return rc;
}

int cn_wal_flush_run(struct cn_wal *w)
{
    w->fsync_ns = -1;
    struct batch *b = &w->batch;
    if (w->broken) {
        cn_wal__errf(w->errmsg, "wal is broken after a failed rollback");
        return CN_ERR_IO;
    }
    /* a growing segment (a fresh log's first, or one made when no spare was ready) is left for
     * the spare as soon as one is lent: only the spare's fdatasyncs are cheap */
    if (w->seg_len >= w->segment_size || (w->alloc_len == 0 && w->flush_spare)) {
        /* Invariant 3: name the segment after the first entry it will hold. */
        uint64_t first = b->has_entries ? b->first_index : w->file_last_index + 1;
        int rc = -1;
        if (w->flush_spare) {
            w->flush_spare = false;
            w->spare_used = true;
            rc = cut_spare(w, w->seq + 1, first, w->spare_errmsg);
            w->spare_rc = rc;
        }
        if (rc != 0) rc = cut_grow(w, w->seq + 1, first); /* no spare, or it failed */
        if (rc != 0) return rc;
    }
    char name[64];
    uint64_t good = w->seg_len;
    int rc = cn_wal__pwritev_all(w->fs, w->fd, b->iov, b->n_iov, good);
    const char *step = "write";
    if (rc == 0) {
        int64_t t0 = cn_clock_mono_ns();
        int r = w->fs->fdatasync(w->fd);
        w->fsync_ns = cn_clock_mono_ns() - t0;
        if (r != 0) {
            rc = -errno;
            step = "fdatasync";
        }
    }
    if (rc != 0) {
        /* Invariant 2: nothing of a failed batch may stay behind, or a restart would replay
         * records the caller was told had failed. */
        seg_name(name, sizeof(name), w->seq, w->seg_first);
        int rc2 = erase_batch(w, good, w->batch.len);
        if (rc2 != 0) w->broken = true;
        if (rc == -ENOSPC && w->flush_spare) {
            /* The spare's space is worth more to the log now; another is made after a cut. */
            w->flush_spare = false;
            w->spare_dropped = true;
            spare_drop(w, w->spare_fd);
            w->spare_fd = -1;
        }
        cn_wal__errf(w->errmsg, "segment %s offset %llu: %s of %zu bytes: %s%s%s", name,
                     (unsigned long long)good, step, b->len, cn_strerror(rc),
                     rc2 ? "; erasing it failed: " : "", rc2 ? cn_strerror(rc2) : "");
        return rc2 ? CN_ERR_IO : rc;
    }
    w->seg_len += b->len;
    if (b->has_entries) w->file_last_index = b->last_index;
    if (b->has_hs) w->file_hs = b->hs;
    return 0;
}

int64_t cn_wal_last_fsync_ns(const struct cn_wal *w)
{
    return w->fsync_ns;
}

void cn_wal_flush_end(struct cn_wal *w, int rc)
{
    CN_ASSERT(w->flushing);
    w->flushing = false;
    if (w->spare == SPARE_LENT) {
        if (w->spare_dropped)
            w->spare = SPARE_OFF;
        else
            w->spare = w->spare_used ? SPARE_NONE : SPARE_READY;
        if (w->spare_rc != 0) {
            w->prealloc_failures++;
            snprintf(w->prealloc_errmsg, sizeof(w->prealloc_errmsg), "%s", w->spare_errmsg);
        }
    }
    if (w->cut_done) {
        push_seg(w, w->cut);
        w->cut_done = false;
        if (w->spare == SPARE_OFF) w->spare = SPARE_NONE; /* try again after every cut */
    }
    if (rc == 0) {
        w->durable_index = w->file_last_index;
        w->durable_hs = w->file_hs;
    } else {
        /* What was appended after the failed batch follows it: drop it too (see wal.h). */
        batch_reset(&w->pending);
        w->last_index = w->durable_index;
        w->hs = w->durable_hs;
    }
    /* from here on nothing of the batch is referenced: borrowed payloads are the caller's again */
    batch_reset(&w->batch);
}

int cn_wal_sync(struct cn_wal *w)
{
    if (!cn_wal_flush_begin(w)) return 0;
    int rc = cn_wal_flush_run(w);
    cn_wal_flush_end(w, rc);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The spare. */

bool cn_wal_prepare_begin(struct cn_wal *w)
{
    if (!w->prealloc || w->broken || w->spare != SPARE_NONE) return false;
    w->spare = SPARE_MAKING;
    return true;
}

int cn_wal_prepare_run(struct cn_wal *w)
{
    return spare_make(w, w->segment_size, &w->spare_fd, w->spare_errmsg);
}

void cn_wal_prepare_end(struct cn_wal *w, int rc)
{
    CN_ASSERT(w->spare == SPARE_MAKING);
    if (rc == 0) {
        w->spare = SPARE_READY;
        w->spare_len = w->segment_size;
        return;
    }
    w->spare = SPARE_OFF;
    w->prealloc_failures++;
    snprintf(w->prealloc_errmsg, sizeof(w->prealloc_errmsg), "%s", w->spare_errmsg);
}

int cn_wal_prepare(struct cn_wal *w)
{
    if (!cn_wal_prepare_begin(w)) return 0;
    int rc = cn_wal_prepare_run(w);
    cn_wal_prepare_end(w, rc);
    return rc == 0 ? 1 : rc;
}

bool cn_wal_spare_ready(const struct cn_wal *w)
{
    return w->spare == SPARE_READY;
}

uint64_t cn_wal_prealloc_failures(const struct cn_wal *w, const char **errmsg)
{
    if (errmsg != NULL) *errmsg = w->prealloc_errmsg;
    return w->prealloc_failures;
}

/* ---------------------------------------------------------------------------------------------
 * Release. */

size_t cn_wal_release_begin(struct cn_wal *w, uint64_t index, struct cn_wal_release *rel)
{
    memset(rel, 0, sizeof(*rel));
    rel->dir = w->dir;
    rel->fs = w->fs;
    size_t n = 0;
    while (n + 1 < w->n_segs && w->segs[n + 1].first_index <= index + 1)
        n++;
    if (n == 0) return 0;
    rel->names = cn_xcalloc(n, sizeof(*rel->names));
    for (size_t i = 0; i < n; i++)
        seg_name(rel->names[i], sizeof(rel->names[i]), w->segs[i].seq, w->segs[i].first_index);
    rel->n = n;
    memmove(w->segs, w->segs + n, (w->n_segs - n) * sizeof(*w->segs));
    w->n_segs -= n;
    return n;
}

int cn_wal_release_run(struct cn_wal_release *rel)
{
    if (rel->n == 0) return 0;
    for (size_t i = 0; i < rel->n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", rel->dir, rel->names[i]);
        if (unlink(path) != 0 && errno != ENOENT) {
            int rc = -errno;
            cn_wal__errf(rel->errmsg, "release: unlink %s: %s", rel->names[i], cn_strerror(rc));
            return rc;
        }
    }
    int rc = cn_wal__fsync_dir(rel->fs, rel->dir);
    if (rc != 0) {
        cn_wal__errf(rel->errmsg, "release: fsync dir %s: %s", rel->dir, cn_strerror(rc));
        return rc;
    }
    return (int)rel->n;
}

void cn_wal_release_free(struct cn_wal_release *rel)
{
    cn_free(rel->names);
    rel->names = NULL;
    rel->n = 0;
}

int cn_wal_release_to(struct cn_wal *w, uint64_t index)
{
    struct cn_wal_release rel;
    cn_wal_release_begin(w, index, &rel);
    int rc = cn_wal_release_run(&rel);
    if (rc < 0) snprintf(w->errmsg, sizeof(w->errmsg), "%s", rel.errmsg);
    cn_wal_release_free(&rel);
    return rc;
}

size_t cn_wal_segment_count(const struct cn_wal *w)
{
    return w->n_segs;
}

const char *cn_wal_errmsg(const struct cn_wal *w)
{
    return w->errmsg;
}
