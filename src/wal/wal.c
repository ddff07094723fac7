/* wal: the segmented, CRC-framed Raft log: open with torn-tail repair, replay, group-committed
 * appends and segment release. The record format and invariants are in wal.h's design notes. */
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
#define SEG_NAME_LEN 37u /* %016llx-%016llx.wal */
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
    bool broken;   /* a failed flush could not be rolled back */
    bool cut_done; /* flush_run cut `cut`; flush_end adds it to segs */
    struct seg cut;
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
 * Record decoding. */

struct rec {
    uint8_t type;
    uint32_t len;
    const uint8_t *payload;
};

/* Reads the frame at *off. Returns 1 and advances *off, 0 at the end of the data, or -1 with *why
 * set when the frame is torn or corrupt. */
static int rec_next(const uint8_t *p, size_t n, size_t *off, struct rec *r, const char **why)
{
    size_t left = n - *off;
    if (left == 0) return 0;
    if (left < REC_HDR) {
        *why = "torn record header";
        return -1;
    }
    const uint8_t *h = p + *off;
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
        *why = "crc mismatch";
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
 * Cutting a segment: header + current hard state, written to a temp file, fsynced, renamed, the
 * directory fsynced (invariant 1), then opened for appending. Runs on the worker inside
 * flush_run, or on the loop thread in open. */

static int cut(struct cn_wal *w, uint64_t seq, uint64_t first_index)
{
    uint8_t rec[2 * REC_HDR + SEG_HDR_LEN + HARD_LEN];
    uint8_t *p = rec + REC_HDR;
    cn_wal__put32(p, SEG_MAGIC);
    cn_wal__put32(p + 4, SEG_VERSION);
    cn_wal__put64(p + 8, seq);
    cn_wal__put64(p + 16, first_index);
    frame_seal(rec, REC_SEGMENT, SEG_HDR_LEN);
    hard_encode(rec + 2 * REC_HDR + SEG_HDR_LEN, &w->file_hs);
    frame_seal(rec + REC_HDR + SEG_HDR_LEN, REC_HARD, HARD_LEN);

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
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    w->seq = seq;
    w->seg_first = first_index;
    w->seg_len = sizeof(rec);
    w->cut_done = true;
    w->cut.seq = seq;
    w->cut.first_index = first_index;
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
        } else if (n == SEG_NAME_LEN + 4 && strcmp(de->d_name + SEG_NAME_LEN, ".tmp") == 0) {
            /* A cut that crashed before its rename: never part of the log. */
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

/* Cuts the last segment at off (a torn or corrupt tail) and fills *repair. */
static int repair_tail(struct cn_wal *w, const char *name, const struct seg_map *m, size_t off,
                       const char *why, struct cn_wal_repair *repair)
{
    /* Count the bad frame and whatever still parses after it, so the caller can tell a torn last
     * write (1) from damage with good records behind it (> 1). */
    uint64_t n = 1;
    size_t len_left = m->len - off;
    if (len_left >= REC_HDR) {
        uint32_t len = cn_wal__get32(m->p + off + 4);
        if ((size_t)len <= len_left - REC_HDR) {
            size_t pos = off + REC_HDR + len;
            struct rec r;
            const char *w2;
            while (rec_next(m->p, m->len, &pos, &r, &w2) == 1)
                n++;
        }
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    int fd = w->fs->open(path, O_RDWR | O_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && w->fs->ftruncate(fd, (off_t)off) != 0) rc = -errno;
    if (rc == 0 && w->fs->fdatasync(fd) != 0) rc = -errno;
    if (fd >= 0) close(fd);
    if (rc != 0) {
        cn_wal__errf(w->errmsg, "segment %s offset %zu: %s; truncating failed: %s", name, off, why,
                     cn_strerror(rc));
        return rc;
    }
    if (repair != NULL) {
        repair->bytes_dropped = m->len - off;
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
    uint64_t good = 0;
    for (size_t i = 0; i < w->n_segs; i++) {
        const struct seg *s = &w->segs[i];
        bool is_last = i + 1 == w->n_segs;
        char name[64];
        seg_name(name, sizeof(name), s->seq, s->first_index);
        struct seg_map m;
        int rc = map_seg(w, s, &m);
        if (rc != 0) return rc;
        size_t off = 0, start = 0;
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
        if (rc == 0 && got < 0) {
            if (!is_last || start == 0) {
                /* Only the last segment's tail can be torn by a crash; a segment's header was
                 * fsynced before its rename. */
                cn_wal__errf(w->errmsg, "segment %s offset %zu: %s", name, start, why);
                rc = CN_ERR_CORRUPT;
            } else {
                rc = repair_tail(w, name, &m, start, why, repair);
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
    w->file_last_index = w->durable_index = w->last_index = last_index;
    w->file_hs = w->durable_hs = w->hs = hs;
    return 0;
}

int cn_wal_open(const char *dir, const struct cn_wal_options *opts, struct cn_wal **out,
                struct cn_wal_repair *repair, char *errmsg)
{
    *out = NULL;
    if (repair != NULL) memset(repair, 0, sizeof(*repair));
    struct cn_wal *w = CN_NEW(struct cn_wal);
    w->dir = cn_xstrdup(dir);
    w->fd = -1;
    w->fs = opts && opts->fs ? opts->fs : &cn_wal_fs_default;
    w->segment_size = opts && opts->segment_size ? opts->segment_size : CN_WAL_SEGMENT_SIZE_DEFAULT;

    int rc = strlen(dir) > CN_WAL__DIR_MAX ? -ENAMETOOLONG : cn_wal__mkdirs(dir);
    if (rc != 0) {
        cn_wal__errf(w->errmsg, "create %s: %s", dir, cn_strerror(rc));
        goto err;
    }
    rc = list_segs(w);
    if (rc != 0) goto err;
    if (w->n_segs == 0) {
        rc = cut(w, 0, 0);
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
    CN_ASSERT(!w->flushing);
    if (w->fd >= 0) close(w->fd);
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
    return true;
}

int cn_wal_flush_run(struct cn_wal *w)
{
    struct batch *b = &w->batch;
    if (w->broken) {
        cn_wal__errf(w->errmsg, "wal is broken after a failed rollback");
        return CN_ERR_IO;
    }
    if (w->seg_len >= w->segment_size) {
        /* Invariant 3: name the segment after the first entry it will hold. */
        uint64_t first = b->has_entries ? b->first_index : w->file_last_index + 1;
        int rc = cut(w, w->seq + 1, first);
        if (rc != 0) return rc;
    }
    char name[64];
    uint64_t good = w->seg_len;
    int rc = cn_wal__pwritev_all(w->fs, w->fd, b->iov, b->n_iov, good);
    const char *step = "write";
    if (rc == 0 && w->fs->fdatasync(w->fd) != 0) {
        rc = -errno;
        step = "fdatasync";
    }
    if (rc != 0) {
        /* Invariant 2: nothing of a failed batch may stay behind, or a restart would replay
         * records the caller was told had failed. */
        seg_name(name, sizeof(name), w->seq, w->seg_first);
        int rc2 = 0;
        if (w->fs->ftruncate(w->fd, (off_t)good) != 0 || w->fs->fdatasync(w->fd) != 0) {
            rc2 = -errno;
            w->broken = true;
        }
        cn_wal__errf(w->errmsg, "segment %s offset %llu: %s of %zu bytes: %s%s%s", name,
                     (unsigned long long)good, step, b->len, cn_strerror(rc),
                     rc2 ? "; truncate back failed: " : "", rc2 ? cn_strerror(rc2) : "");
        return rc2 ? CN_ERR_IO : rc;
    }
    w->seg_len += b->len;
    if (b->has_entries) w->file_last_index = b->last_index;
    if (b->has_hs) w->file_hs = b->hs;
    return 0;
}

void cn_wal_flush_end(struct cn_wal *w, int rc)
{
    CN_ASSERT(w->flushing);
    w->flushing = false;
    if (w->cut_done) {
        push_seg(w, w->cut);
        w->cut_done = false;
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
