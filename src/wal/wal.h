/* wal: cairn's durable Raft log. A directory of append-only segment files holding entries and hard
 * state, every record framed with a CRC-32, with torn-tail repair on open and group commit (one
 * fdatasync covers every record appended while the previous one ran). The same module owns the
 * snapshot files (member/snap), the member metadata file and the data-dir lock. */
#ifndef CN_WAL_WAL_H
#define CN_WAL_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/buf.h"

/*
 * Design notes
 *
 * On disk: <dir>/%016llx-%016llx.wal, (sequence, first index). The first segment of a fresh log is
 * 0000000000000000-0000000000000000.wal. Every record is framed as
 *
 *     u32 crc | u32 len | u8 type | payload[len]        (little-endian; crc = zlib crc32 of
 *                                                        len, type and payload)
 *
 * Record types: 1 segment header {u32 magic, u32 version, u64 seq, u64 first_index}, always the
 * first record of a segment; 2 entry {u64 term, u64 index, u8 type, data...}; 3 hard state
 * {u64 term, u64 vote, u64 commit}. Every new segment repeats the current hard state after its
 * header, so deleting old segments never loses it.
 *
 * Preallocation. A segment file is made at its full size (segment_size) before it holds a
 * record, so that an append overwrites blocks that already exist and fdatasync has no file size
 * or extent change to commit (etcd's filePipeline does the same). The spare, <dir>/spare.tmp, is
 * fallocated and then filled with written zeros (fallocate alone leaves unwritten extents, and
 * converting them costs a metadata commit on the next fdatasync; fallocate first fails early
 * with ENOSPC and makes the zeroing faster on ext4) and fsynced, by cn_wal_prepare_run() off the
 * loop. It is made only while the file system has at least twice its size free, so that
 * preallocation never takes the last space the snapshots, the metadata and the log itself
 * need (below that, segments grow as written). A cut writes the header into it, fsyncs it, renames
 * it to the segment's name and fsyncs the directory. Records are written from offset 0; a segment's
 * data ends at a frame header of 9 zero bytes (crc 0, len 0, type 0: type 0 does not exist, so no
 * record has it), at fewer than 9 zero bytes before the end of the file, or at the end of the file.
 * Segments that grow with each write (logs written before preallocation, segments cut when no spare
 * was ready, cn_wal_options.no_prealloc) have no zero tail and read the same way. A batch may run
 * past the preallocated size; the file then grows. The same version 1 format either way.
 *
 * Invariants:
 *  1. Only the last segment is ever written. A segment starts as a .tmp file (spare.tmp, or
 *     <name>.tmp when no spare is ready), has its header written and fsynced, is renamed to its
 *     name and the directory fsynced (cut_spare, cut_grow), so a segment file that exists is
 *     complete up to its header. A .tmp file is never part of the log: open deletes every one.
 *  2. A record is durable only once cn_wal_flush_run() returned 0 for its batch. A failed batch
 *     is erased before flush_run returns: what lies past the preallocated size is truncated
 *     away, what lies inside it is overwritten with zeros, so the file goes back to its last good
 *     contents (data up to the last good length, then zeros).
 *  3. All entries in segment i have an index < the first index in segment i+1's name (the name is
 *     the first entry index the new segment will hold, or last index + 1). cn_wal_release_to()
 *     relies on it.
 *  4. An entry whose index is <= an earlier one truncates the log there (Raft's overwrite);
 *     replay yields the log as it stands after every overwrite.
 *  5. After the end of its data a segment holds only zeros, to the end of the file. Open checks
 *     it: a nonzero byte there is damage, as a bad frame is (a torn batch whose later pages
 *     reached the disk while an earlier one did not looks like this).
 *
 * Damage. In the last segment a torn or corrupt tail is repaired (cn_wal_open's *repair): the
 * bytes from the first bad frame to the end of the damage (its last nonzero byte, or the end of
 * the bad frame if that is later) are dropped: cut off with ftruncate when the damage runs to the
 * end of the file (a growing segment, as before preallocation, or a length field that runs past
 * the end), else overwritten with zeros, so a preallocated segment keeps its size and written
 * extents. Anywhere else damage is CN_ERR_CORRUPT and nothing is modified. Checking invariant 5
 * reads the zero tail: open reads up to segment_size more bytes of the last segment than it did.
 *
 * The spare (loop thread state; the function making each move):
 *
 *     NONE --prepare_begin--> MAKING --prepare_end(0)--> READY <--flush_end: no cut--+
 *      ^  ^                     |                          |                         |
 *      |  |              prepare_end(< 0)             flush_begin                    |
 *      |  |                     v                          v                         |
 *      |  +--flush_end: a cut-- OFF <--flush_end: ENOSPC-- LENT ---------------------+
 *      |                                                   |
 *      +--------------flush_end: a cut used (or spoiled) it+
 *
 * A cut that finds no spare lent (NONE, MAKING, OFF) makes a growing segment: a failed or slow
 * preallocation never refuses or delays a write. OFF holds back new attempts until the next
 * cut, so a full disk is not zeroed at in a loop; a flush that fails with ENOSPC deletes a lent
 * spare to give its space back to the log.
 *
 * Batches. Appended records wait in the pending batch until cn_wal_flush_begin() makes it the
 * flushing one, which cn_wal_flush_run() writes with one gathered write (pwritev) and one
 * fdatasync. A batch is the record frames (and the payloads that were copied) in one buffer, plus
 * the payloads appended borrowed (cn_wal_append_entry_borrowed), which are written from the
 * caller's memory: the WAL keeps no copy of them. A borrowed payload is referenced from its append
 * until the cn_wal_flush_end() of the batch that carries it returns, or until a failed flush_end
 * or cn_wal_close() drops it; nothing of it is touched after that. Each record's CRC is computed
 * once, at append, over the frame's len and type and the whole payload.
 *
 * Threads: everything runs on the loop thread except cn_wal_flush_run() and
 * cn_wal_prepare_run(), which threadpool workers (uv_queue_work) call between their _begin and
 * _end, possibly at the same time. flush_run touches only the flushing batch (and reads its
 * borrowed payloads), the segment file and, while LENT, the spare; prepare_run only the spare's
 * file, descriptor and errmsg, which no flush holds while MAKING. The loop keeps appending to the
 * pending batch meanwhile, and may read a borrowed payload while it is written (no one may
 * change it). uv_queue_work's work_cb/after_work_cb hand-off orders the memory, so no locks are
 * needed.
 */

#define CN_WAL_SEGMENT_SIZE_DEFAULT (64u * 1024u * 1024u)
/* Largest record payload accepted on append and on read (an entry's data is up to this, minus
 * 17 bytes). A bigger length field on disk is treated as corruption. */
#define CN_WAL_MAX_RECORD (64u * 1024u * 1024u)

/* ---------------------------------------------------------------------------------------------
 * File system seam. Every write-side file operation of this module goes through one of these
 * tables, so tests can inject short writes, ENOSPC and failed fsyncs (cf. SQLite's VFS). The
 * functions have libc's contract: -1 with errno set on failure. */
struct cn_wal_fs {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*pwrite)(int fd, const void *p, size_t n, off_t off);
    /* The log's batches. NULL: each piece goes through pwrite instead. */
    ssize_t (*pwritev)(int fd, const struct iovec *iov, int n, off_t off);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd); /* files after rename, and directories */
    int (*ftruncate)(int fd, off_t len);
    int (*rename)(const char *from, const char *to);
    /* Reserves [off, off + len) as Linux fallocate(fd, 0, off, len) does. NULL, or -1 with
     * EOPNOTSUPP, where the file system has none: the zeros are then written without it. */
    int (*fallocate)(int fd, off_t off, off_t len);
    /* Free space of the file system holding fd, asked before preallocating. NULL: not asked. */
    int (*fstatvfs)(int fd, struct statvfs *st);
};

/* The real file system (libc). */
extern const struct cn_wal_fs cn_wal_fs_default;

/* ---------------------------------------------------------------------------------------------
 * The log. */

struct cn_wal; /* opaque */

struct cn_wal_options {
    uint64_t segment_size;      /* cut a new segment once the current one reaches this; 0: default.
                                 * A batch is never split, so a segment may exceed it by one batch.
                                 * Also the size segments are preallocated to */
    const struct cn_wal_fs *fs; /* NULL: cn_wal_fs_default */
    bool no_prealloc;           /* segments grow with each write, as logs written before
                                 * preallocation did (tests, tools) */
    bool grow_first;            /* a fresh log's first segment grows instead of being zeroed
                                 * in open (a new member serves in milliseconds); the first
                                 * flush that is lent a spare cuts into it, as does any flush
                                 * that finds the log in a growing segment */
};

/* An entry as Raft sees it. In replay callbacks data is borrowed: valid during the callback only.
 */
struct cn_wal_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type;
    const void *data;
    size_t len;
};

struct cn_wal_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};

/* What open did to the last segment's tail. All zero when nothing was dropped. */
struct cn_wal_repair {
    uint64_t bytes_dropped;   /* from offset to the end of the damage: cut off, or zeroed */
    uint64_t records_dropped; /* the bad record plus every frame after it that still parsed (for
                               * data after a zero header: the frames parsed there, at least 1) */
    uint64_t offset;          /* where the log's data now ends */
    char segment[64];         /* the segment's file name */
    char reason[96];          /* "torn record", "crc mismatch", ... */
};

/* Opens (creating dir and a first segment when there is none) the log in dir, the caller's
 * <data-dir>/member/wal. A fresh log's first segment is preallocated here, on the calling
 * thread (a failure falls back to a growing one: cn_wal_prealloc_failures()). Reads every
 * segment and validates every record and every zero tail (invariant 5): a torn or corrupt tail
 * of the LAST segment is dropped (cut off or zeroed, see "Damage") and described in *repair (may
 * be NULL; the caller should log it); damage anywhere else fails with CN_ERR_CORRUPT and a
 * precise errmsg, in which case nothing was modified. Deletes leftover .tmp files. On success *out
 * is the caller's, freed with cn_wal_close(). On failure *out is NULL and, when errmsg is not NULL,
 * errmsg (256 bytes) says why. Errors: -errno from the file system, CN_ERR_CORRUPT, CN_ERR_VERSION,
 * CN_ERR_INVAL. */
int cn_wal_open(const char *dir, const struct cn_wal_options *opts, struct cn_wal **out,
                struct cn_wal_repair *repair, char *errmsg);

/* Closes the files, deletes an unused spare and frees w. No flush or prepare may be in flight;
 * pending records are discarded (they were never durable). */
void cn_wal_close(struct cn_wal *w);

/* Whether dir holds at least one segment (the node's "is there an existing member?" test). */
bool cn_wal_exists(const char *dir);

typedef int (*cn_wal_replay_cb)(void *arg, const struct cn_wal_entry *e);

/* Replays the durable log: calls cb, in index order, for each entry of the final log (after
 * overwrites) whose index is > from_index (the newest snapshot's index, or 0). Stops and returns
 * cb's value if it returns non-zero. *hs (may be NULL) receives the last hard state (all zero if
 * none was ever written). Only segments that may hold such entries are read. Call after open,
 * before appending. Errors: -errno, CN_ERR_CORRUPT (also when the entries after from_index are not
 * contiguous from from_index + 1: the caller's snapshot and log do not meet). */
int cn_wal_replay(struct cn_wal *w, uint64_t from_index, cn_wal_replay_cb cb, void *arg,
                  struct cn_wal_hard_state *hs);

/* Index of the last entry appended (pending or durable) and of the last durable one. */
uint64_t cn_wal_last_index(const struct cn_wal *w);
uint64_t cn_wal_durable_index(const struct cn_wal *w);
/* The last hard state set (pending or durable). */
struct cn_wal_hard_state cn_wal_hard_state(const struct cn_wal *w);

/* Appends to the pending batch (memory only; copied, so e->data stays the caller's). Entries
 * must follow the log: e->index <= last index + 1 (smaller overwrites, as Raft does); after
 * installing a snapshot at S the next entry is S + 1 and later replays start from S.
 * Loop thread. Errors: CN_ERR_TOO_LARGE when e->len exceeds CN_WAL_MAX_RECORD - 17. */
int cn_wal_append_entry(struct cn_wal *w, const struct cn_wal_entry *e);
/* The same without a copy of the payload: e->data is borrowed, and must stay valid and unchanged
 * until the cn_wal_flush_end() of the batch that carries it has returned (or a failed flush_end or
 * cn_wal_close() dropped it; see "Batches" above). The node passes Raft's unstable entries, which
 * Raft keeps unchanged until the batch is durable. A payload of a few bytes is copied after all
 * (cheaper than a piece of its own in the write); e is never kept. */
int cn_wal_append_entry_borrowed(struct cn_wal *w, const struct cn_wal_entry *e);
void cn_wal_set_hard_state(struct cn_wal *w, const struct cn_wal_hard_state *hs);

/* Group commit. Loop thread: if cn_wal_flush_begin() returns true, the pending batch became the
 * flushing batch; run cn_wal_flush_run() on a worker, then call cn_wal_flush_end(w, rc) with its
 * result on the loop thread. Returns false when nothing is pending or a flush is in flight (then
 * call it again from flush_end's caller). */
bool cn_wal_flush_begin(struct cn_wal *w);

/* Worker thread. Cuts a new segment first if the current one reached segment_size (into the
 * spare when one was lent by flush_begin, else a growing one), writes the batch with one gathered
 * write (pwritev; more than one only past IOV_MAX pieces or on a short write) and fdatasyncs it.
 * Returns 0, or -errno (ENOSPC, EIO...) after erasing the batch (invariant 2); CN_ERR_IO if even
 * that failed (the log is then broken: every later flush fails). w->errmsg says where. */
int cn_wal_flush_run(struct cn_wal *w);

/* How long the batch's fdatasync took in the last cn_wal_flush_run(), measured around the call
 * (etcd's wal_fsync_duration_seconds), or -1 when that flush did not reach it. Read it on the
 * worker right after flush_run, or on the loop thread after flush_end. */
int64_t cn_wal_last_fsync_ns(const struct cn_wal *w);

/* Loop thread, with flush_run's rc. On 0 the batch is durable: cn_wal_durable_index() moves on
 * and the caller may apply and acknowledge it. On failure the failed batch AND every record
 * appended since (they follow the failed ones) are dropped: the caller must not treat any of them
 * as written (fail those proposals), and the log's view rolls back to the durable state:
 * cn_wal_last_index() == cn_wal_durable_index() and the hard state to the durable one. Appending
 * again and flushing later (once space returns) works. */
void cn_wal_flush_end(struct cn_wal *w, int rc);

/* Convenience for tests and tools: begin + run + end on the calling thread. 0 when there was
 * nothing to flush. */
int cn_wal_sync(struct cn_wal *w);

/* Releasing the segments whose entries are all <= index (after a snapshot at index), keeping
 * the one that may hold index + 1 and always the last, in two steps so that the file work runs
 * off the loop:
 *   cn_wal_release_begin (loop thread) takes them out of the log and names them in *rel;
 *   cn_wal_release_run (any thread; it touches nothing of the log, only the files named and the
 *     directory, so a flush may run meanwhile) unlinks them and fsyncs the directory. It returns
 *     how many were deleted, or -errno with rel->errmsg set; files it could not delete stay on
 *     disk and are released after the next restart;
 *   cn_wal_release_free frees rel.
 * rel borrows the log's directory name: the log stays open until run returned.
 * begin returns how many segments it named (0: nothing to do; run is then a no-op). */
struct cn_wal_release {
    char errmsg[256];
    /* private */
    const char *dir;
    const struct cn_wal_fs *fs;
    size_t n;
    char (*names)[64];
};
size_t cn_wal_release_begin(struct cn_wal *w, uint64_t index, struct cn_wal_release *rel);
int cn_wal_release_run(struct cn_wal_release *rel);
void cn_wal_release_free(struct cn_wal_release *rel);
/* The three steps on the calling thread, for tests and tools: deleted count or -errno. */
int cn_wal_release_to(struct cn_wal *w, uint64_t index);

/* Preparing the next segment ahead of need (see the spare's states above), so that a cut never
 * waits for 64 MiB of zeros:
 *   cn_wal_prepare_begin (loop thread) returns true when a spare should be made now (none is
 *     ready or being made, preallocation is on and not held back after a failure);
 *   cn_wal_prepare_run (worker thread; a flush may run meanwhile) creates <dir>/spare.tmp,
 *     fallocates it to segment_size, writes the zeros and fsyncs it. 0 or -errno; on failure the
 *     file is removed;
 *   cn_wal_prepare_end (loop thread) with run's rc. A failure counts in
 *     cn_wal_prealloc_failures(); the log goes on with growing segments.
 * Call begin after open and after every flush_end. */
bool cn_wal_prepare_begin(struct cn_wal *w);
int cn_wal_prepare_run(struct cn_wal *w);
void cn_wal_prepare_end(struct cn_wal *w, int rc);
/* The three on the calling thread, for tests and tools: 1 when a spare was made, 0 when none
 * was wanted, or run's -errno. */
int cn_wal_prepare(struct cn_wal *w);
/* Whether a spare is ready to be used by the next cut. */
bool cn_wal_spare_ready(const struct cn_wal *w);

/* Preallocations that failed since open (the first segment's in open, cn_wal_prepare_run's),
 * with the last one's context in *errmsg (may be NULL; valid until the next cn_wal call). The
 * caller logs the first; nothing is lost by them. Loop thread. */
uint64_t cn_wal_prealloc_failures(const struct cn_wal *w, const char **errmsg);

/* Number of segment files, for tests and metrics. */
size_t cn_wal_segment_count(const struct cn_wal *w);

/* The last error's context, e.g. "segment 0000000000000002-0000000000000401.wal offset 1234: crc
 * mismatch". Valid until the next cn_wal call. */
const char *cn_wal_errmsg(const struct cn_wal *w);

/* ---------------------------------------------------------------------------------------------
 * Snapshots: <data-dir>/member/snap/%016llx-%016llx.snap (term, index). File layout: a 40-byte
 * header {u32 magic "CNSP", u32 version, u64 term, u64 index, u64 len, u32 data crc, u32 header
 * crc} then len bytes of data (the store's own encoding, opaque here). */

#define CN_SNAP_MAX_SKIPPED 8

struct cn_snap {
    /* public, read-only */
    char errmsg[256];
    size_t n_skipped; /* set by cn_snap_load: newer snapshots that were not valid */
    struct {
        char name[64];
        int rc;
        char why[96];
    } skipped[CN_SNAP_MAX_SKIPPED]; /* the first CN_SNAP_MAX_SKIPPED of them */
    /* private */
    char *dir;
    const struct cn_wal_fs *fs;
};

/* Creates dir (mode 0700) if missing. fs NULL: the real file system. cn_snap_close() frees. */
int cn_snap_init(struct cn_snap *s, const char *dir, const struct cn_wal_fs *fs);
void cn_snap_close(struct cn_snap *s);

/* Writes a snapshot atomically: <name>.tmp, fsync, rename, fsync dir. data stays the caller's.
 * Errors: -errno; on failure no .snap file for (term, index) exists (the temp file is removed). */
int cn_snap_save(struct cn_snap *s, uint64_t term, uint64_t index, const void *data, size_t len);

/* Loads the newest valid snapshot into out (reset first; the caller owns it), *term and *index.
 * Invalid newer ones are skipped, listed in s->skipped and renamed <name>.broken (as etcd does) so
 * they are never tried or counted again. Errors: CN_ERR_NOT_FOUND when there is no snapshot at
 * all; CN_ERR_CORRUPT when some exist but none is valid; -errno. */
int cn_snap_load(struct cn_snap *s, struct cn_buf *out, uint64_t *term, uint64_t *index);

/* Deletes all but the newest keep snapshots, and any leftover temp files. Returns how many .snap
 * files were deleted or -errno. */
int cn_snap_purge(struct cn_snap *s, size_t keep);

/* ---------------------------------------------------------------------------------------------
 * Member metadata and the data-dir lock. errmsg (256 bytes) may be NULL. */

/* Writes a small blob (<= 1 MiB) atomically to path (normally <data-dir>/member/meta) with a header
 * {u32 magic "CNMT", u32 version, u32 len, u32 crc}: temp file, fsync, rename, fsync dir.
 * Errors: -errno, CN_ERR_TOO_LARGE. fs NULL: the real file system. */
int cn_meta_write(const char *path, const void *p, size_t len, const struct cn_wal_fs *fs,
                  char *errmsg);
/* Reads it back into out (reset first). Errors: -ENOENT when missing, CN_ERR_CORRUPT,
 * CN_ERR_VERSION, -errno. */
int cn_meta_read(const char *path, struct cn_buf *out, char *errmsg);

/* Takes a non-blocking exclusive flock on <data_dir>/.lock, creating data_dir (0700) and the file
 * as needed. On success *fd_out holds the lock until cn_datadir_unlock(fd) (or exit). flock locks
 * belong to the open file description, so a second attempt fails even from the same process.
 * Errors: CN_ERR_LOCKED when held elsewhere, -errno. */
int cn_datadir_lock(const char *data_dir, int *fd_out, char *errmsg);
void cn_datadir_unlock(int fd);

#endif
