/* wal_int: helpers shared by the log (wal.c), snapshots (snap.c) and the small-file helpers
 * (file.c). Private to src/wal. */
#ifndef CN_WAL_WAL_INT_H
#define CN_WAL_WAL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wal.h"

/* Longest directory accepted, so that dir + "/" + a file name always fits a 4096-byte path. */
#define CN_WAL__DIR_MAX 3968u

/* snprintf into a 256-byte errmsg, if errmsg is not NULL. */
void cn_wal__errf(char *errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* pwrite until all n bytes are written (a short write continues; a zero write is -EIO).
 * Returns 0 or -errno. */
int cn_wal__pwrite_all(const struct cn_wal_fs *fs, int fd, const void *p, size_t n, uint64_t off);

/* Writes len zero bytes at off (preallocation, and erasing a failed batch). 0 or -errno. */
int cn_wal__write_zeros(const struct cn_wal_fs *fs, int fd, uint64_t off, uint64_t len);

/* pwritev until all the bytes of iov[0..n) are written, IOV_MAX pieces at a time (with pwrite,
 * one piece at a time, when the seam has no pwritev). Short writes continue; a zero write is
 * -EIO. The array is consumed: its entries are advanced past what was written. 0 or -errno. */
struct iovec;
int cn_wal__pwritev_all(const struct cn_wal_fs *fs, int fd, struct iovec *iov, size_t n,
                        uint64_t off);

/* fsync a directory. 0 or -errno. */
int cn_wal__fsync_dir(const struct cn_wal_fs *fs, const char *dir);

/* mkdir -p with mode 0700. 0 or -errno. */
int cn_wal__mkdirs(const char *dir);

/* Writes hdr then data to dir/<name>.tmp, fsyncs it, renames it to dir/name and fsyncs dir.
 * On failure the temp file is removed. 0 or -errno; errmsg says which step failed. */
int cn_wal__atomic_write(const struct cn_wal_fs *fs, const char *dir, const char *name,
                         const void *hdr, size_t hdr_len, const void *data, size_t len,
                         char *errmsg);

/* Reads a whole file into out (reset first). 0 or -errno. */
int cn_wal__read_file(const char *path, struct cn_buf *out);

/* Parses exactly 16 lowercase hex digits (file names). */
bool cn_wal__parse_hex16(const char *p, uint64_t *out);

uint32_t cn_wal__crc(uint32_t crc, const void *p, size_t n);

static inline void cn_wal__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void cn_wal__put64(uint8_t *p, uint64_t v)
{
    cn_wal__put32(p, (uint32_t)v);
    cn_wal__put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t cn_wal__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t cn_wal__get64(const uint8_t *p)
{
    return (uint64_t)cn_wal__get32(p) | (uint64_t)cn_wal__get32(p + 4) << 32;
}

#endif
