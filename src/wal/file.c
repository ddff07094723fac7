/* file: the file system seam's default table, the small durable-file helpers the log and the
 * snapshots share (atomic write, directory fsync), the member metadata file and the data-dir
 * lock. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "wal_int.h"

static int sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int sys_fallocate(int fd, off_t off, off_t len)
{
    return fallocate(fd, 0, off, len);
}

const struct cn_wal_fs cn_wal_fs_default = {
    .open = sys_open,
    .pwrite = pwrite,
    .pwritev = pwritev,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .rename = rename,
    .fallocate = sys_fallocate,
    .fstatvfs = fstatvfs,
};

void cn_wal__errf(char *errmsg, const char *fmt, ...)
{
    if (errmsg == NULL) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, 256, fmt, ap);
    va_end(ap);
}

bool cn_wal__parse_hex16(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

uint32_t cn_wal__crc(uint32_t crc, const void *p, size_t n)
{
    return (uint32_t)crc32_z(crc, (const Bytef *)p, n);
}

int cn_wal__pwrite_all(const struct cn_wal_fs *fs, int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = fs->pwrite(fd, c, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int cn_wal__write_zeros(const struct cn_wal_fs *fs, int fd, uint64_t off, uint64_t len)
{
    static const char zeros[64 * 1024];
    while (len > 0) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        int rc = cn_wal__pwrite_all(fs, fd, zeros, n, off);
        if (rc != 0) return rc;
        off += n;
        len -= n;
    }
    return 0;
}

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

int cn_wal__pwritev_all(const struct cn_wal_fs *fs, int fd, struct iovec *iov, size_t n,
                        uint64_t off)
{
    while (n > 0) {
        if (iov->iov_len == 0) {
            iov++;
            n--;
            continue;
        }
        ssize_t w = fs->pwritev ? fs->pwritev(fd, iov, n > IOV_MAX ? IOV_MAX : (int)n, (off_t)off)
                                : fs->pwrite(fd, iov->iov_base, iov->iov_len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        off += (uint64_t)w;
        /* a short write goes on from the first byte that did not land */
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (done > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

int cn_wal__fsync_dir(const struct cn_wal_fs *fs, const char *dir)
{
    int fd = fs->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = fs->fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int cn_wal__mkdirs(const char *dir)
{
    char *p = cn_xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) == 0) {
            /* Make the new directory's name durable: fsync its parent. */
            char *slash = strrchr(p, '/');
            if (slash != NULL) {
                *slash = '\0';
                rc = cn_wal__fsync_dir(&cn_wal_fs_default, slash == p ? "/" : p);
                *slash = '/';
                if (rc != 0) break;
            }
        } else if (errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0') break;
    }
    cn_free(p);
    if (rc != 0) return rc;
    struct stat st;
    if (stat(dir, &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int cn_wal__atomic_write(const struct cn_wal_fs *fs, const char *dir, const char *name,
                         const void *hdr, size_t hdr_len, const void *data, size_t len,
                         char *errmsg)
{
    char tmp[4096], dst[4096];
    if ((size_t)snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= sizeof(dst) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= sizeof(tmp)) {
        cn_wal__errf(errmsg, "%s/%s: path too long", dir, name);
        return -ENAMETOOLONG;
    }
    int fd = fs->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        cn_wal__errf(errmsg, "create %s: %s", tmp, cn_strerror(rc));
        return rc;
    }
    const char *step = "write";
    int rc = cn_wal__pwrite_all(fs, fd, hdr, hdr_len, 0);
    if (rc == 0) rc = cn_wal__pwrite_all(fs, fd, data, len, hdr_len);
    if (rc == 0 && fs->fsync(fd) != 0) {
        rc = -errno;
        step = "fsync";
    }
    close(fd);
    if (rc != 0) goto err_after_create;
    if (fs->rename(tmp, dst) != 0) {
        rc = -errno;
        step = "rename";
        goto err_after_create;
    }
    rc = cn_wal__fsync_dir(fs, dir);
    if (rc != 0) {
        /* The new file is in place but its name may not survive a crash; report it so the caller
         * does not rely on it (the old contents, if any, are gone either way). */
        cn_wal__errf(errmsg, "fsync dir %s after writing %s: %s", dir, name, cn_strerror(rc));
        return rc;
    }
    return 0;

err_after_create:
    cn_wal__errf(errmsg, "%s %s: %s", step, tmp, cn_strerror(rc));
    unlink(tmp);
    return rc;
}

int cn_wal__read_file(const char *path, struct cn_buf *out)
{
    cn_buf_reset(out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    cn_buf_reserve(out, (size_t)st.st_size);
    int rc = 0;
    for (;;) {
        cn_buf_reserve(out, 4096);
        ssize_t n = read(fd, out->p + out->len, out->cap - out->len - 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            break;
        }
        if (n == 0) break;
        out->len += (size_t)n;
    }
    close(fd);
    if (out->p) out->p[out->len] = '\0';
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Member metadata. */

#define META_MAGIC   0x544d4e43u /* "CNMT" */
#define META_VERSION 1u
#define META_HDR     16u
#define META_MAX     (1u << 20)

int cn_meta_write(const char *path, const void *p, size_t len, const struct cn_wal_fs *fs,
                  char *errmsg)
{
    if (fs == NULL) fs = &cn_wal_fs_default;
    if (len > META_MAX) {
        cn_wal__errf(errmsg, "meta %s: %zu bytes is too large", path, len);
        return CN_ERR_TOO_LARGE;
    }
    uint8_t hdr[META_HDR];
    cn_wal__put32(hdr, META_MAGIC);
    cn_wal__put32(hdr + 4, META_VERSION);
    cn_wal__put32(hdr + 8, (uint32_t)len);
    cn_wal__put32(hdr + 12, cn_wal__crc(0, p, len));
    char *dir = cn_xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *name = path;
    if (slash != NULL) {
        *slash = '\0';
        name = path + (slash - dir) + 1;
    }
    int rc = cn_wal__atomic_write(fs, slash ? (dir[0] ? dir : "/") : ".", name, hdr, sizeof(hdr), p,
                                  len, errmsg);
    cn_free(dir);
    return rc;
}

int cn_meta_read(const char *path, struct cn_buf *out, char *errmsg)
{
    int rc = cn_wal__read_file(path, out);
    if (rc != 0) {
        cn_wal__errf(errmsg, "read %s: %s", path, cn_strerror(rc));
        return rc;
    }
    const uint8_t *h = (const uint8_t *)out->p;
    if (out->len < META_HDR || cn_wal__get32(h) != META_MAGIC) {
        cn_wal__errf(errmsg, "meta %s: bad header", path);
        rc = CN_ERR_CORRUPT;
        goto err;
    }
    if (cn_wal__get32(h + 4) != META_VERSION) {
        cn_wal__errf(errmsg, "meta %s: unsupported version %u", path, cn_wal__get32(h + 4));
        rc = CN_ERR_VERSION;
        goto err;
    }
    uint32_t len = cn_wal__get32(h + 8);
    if (len != out->len - META_HDR) {
        cn_wal__errf(errmsg, "meta %s: length %u but %zu bytes follow the header", path, len,
                     out->len - META_HDR);
        rc = CN_ERR_CORRUPT;
        goto err;
    }
    if (cn_wal__crc(0, h + META_HDR, len) != cn_wal__get32(h + 12)) {
        cn_wal__errf(errmsg, "meta %s: crc mismatch", path);
        rc = CN_ERR_CORRUPT;
        goto err;
    }
    memmove(out->p, out->p + META_HDR, len);
    out->len = len;
    out->p[len] = '\0';
    return 0;

err:
    cn_buf_reset(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Data-dir lock. */

int cn_datadir_lock(const char *data_dir, int *fd_out, char *errmsg)
{
    *fd_out = -1;
    int rc = cn_wal__mkdirs(data_dir);
    if (rc != 0) {
        cn_wal__errf(errmsg, "create data dir %s: %s", data_dir, cn_strerror(rc));
        return rc;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/.lock", data_dir) >= sizeof(path)) {
        cn_wal__errf(errmsg, "%s/.lock: path too long", data_dir);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        cn_wal__errf(errmsg, "open %s: %s", path, cn_strerror(rc));
        return rc;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        rc = errno == EWOULDBLOCK ? CN_ERR_LOCKED : -errno;
        cn_wal__errf(errmsg, "lock %s: %s", path,
                     rc == CN_ERR_LOCKED ? "data dir is in use by another cairn" : cn_strerror(rc));
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

void cn_datadir_unlock(int fd)
{
    if (fd >= 0) close(fd); /* closing the only descriptor of the description drops the lock */
}
