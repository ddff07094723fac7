/* fsroot: every file cairn-cloudinit touches lives under --root. Paths are cleaned so '..' stops at
 * the root, and each lookup goes through openat2(RESOLVE_IN_ROOT), so symlinks (absolute ones
 * included) resolve as if the root were '/': nothing is ever read or written outside it.
 * Writes are atomic: temp file in the target directory, fsync, rename, fsync of the directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

static int open_in_root(const struct ci_root *r, const char *rel, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    /* open(2) flags are a bit set: zero-extend them, never sign-extend */
    how.flags = (__u64)(unsigned)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, r->fd, *rel ? rel : ".", &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

/* "/a/../b//c" -> "b/c" (no leading slash; "" for the root itself). */
static char *rel_clean(const char *path)
{
    size_t len = strlen(path);
    char *tmp = cn_xmalloc(len + 2);
    tmp[0] = '/';
    memcpy(tmp + 1, path, len + 1);
    char *c = cn_cloudinit_path_clean(tmp, len + 1);
    cn_free(tmp);
    memmove(c, c + 1, strlen(c)); /* drop the leading '/' */
    return c;
}

/* Splits rel into its directory (NUL-terminated in place) and base name. */
static const char *split_base(char *rel)
{
    char *slash = strrchr(rel, '/');
    if (slash == NULL) {
        memmove(rel + 1, rel, strlen(rel) + 1);
        rel[0] = '\0';
        return rel + 1;
    }
    *slash = '\0';
    return slash + 1;
}

/* Opens directory rel (cleaned), creating missing components with mode if create. */
static int open_dir(const struct ci_root *r, const char *rel, bool create, unsigned mode)
{
    int fd = open_in_root(r, rel, O_RDONLY | O_DIRECTORY);
    if (fd >= 0 || fd != -ENOENT || !create) return fd;
    char *buf = cn_xstrdup(rel);
    size_t len = strlen(buf);
    int parent = open_in_root(r, "", O_RDONLY | O_DIRECTORY);
    int rc = parent;
    for (size_t i = 0; parent >= 0 && i <= len; i++) {
        if (i < len && buf[i] != '/') continue;
        buf[i] = '\0';
        int next = open_in_root(r, buf, O_RDONLY | O_DIRECTORY);
        if (next == -ENOENT) {
            const char *comp = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
            if (mkdirat(parent, comp, mode) != 0 && errno != EEXIST) {
                next = -errno;
            } else {
                (void)fchmodat(parent, comp, mode, 0); /* exact mode, whatever the umask */
                next = open_in_root(r, buf, O_RDONLY | O_DIRECTORY);
            }
        }
        close(parent);
        parent = next;
        rc = next;
        if (i < len) buf[i] = '/';
    }
    cn_free(buf);
    return rc;
}

int cn_cloudinit_root_open(struct ci_root *r, const char *path)
{
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    r->fd = fd;
    r->path = cn_xstrdup(path);
    /* Probe openat2 once: without it nothing can be confined, so nothing is done. */
    int t = open_in_root(r, "", O_RDONLY | O_DIRECTORY);
    if (t < 0) {
        close(fd);
        cn_free(r->path);
        return t;
    }
    close(t);
    return 0;
}

void cn_cloudinit_root_close(struct ci_root *r)
{
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    cn_free(r->path);
    r->path = NULL;
}

/* Looks name up in <root>/etc/passwd (field 3) or /etc/group; numeric ids pass through. */
static int lookup_id(struct ci_root *r, const char *file, const char *name, long *id)
{
    char *end;
    long v = strtol(name, &end, 10);
    if (*name && *end == '\0' && v >= 0) {
        *id = v;
        return 0;
    }
    struct cn_buf b = CN_BUF_INIT;
    int rc = cn_cloudinit_read_file(r, file, &b);
    size_t nlen = strlen(name);
    if (rc == 0) {
        rc = CN_ERR_NOT_FOUND;
        for (char *line = b.p; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
                char *f = strchr(line + nlen + 1, ':');
                if (f) {
                    *id = strtol(f + 1, NULL, 10);
                    rc = 0;
                    break;
                }
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    cn_buf_free(&b);
    if (rc != 0 && strcmp(name, "root") == 0) {
        *id = 0;
        rc = 0;
    }
    return rc;
}

/* chown's "user", "user:group", ":group" (also "user." as chown accepts). */
static int resolve_owner(struct ci_root *r, const char *owner, uid_t *uid, gid_t *gid)
{
    char *o = cn_xstrdup(owner);
    char *sep = strchr(o, ':');
    if (sep == NULL) sep = strchr(o, '.');
    if (sep) *sep = '\0';
    long id;
    int rc = 0;
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (*o) {
        rc = lookup_id(r, "/etc/passwd", o, &id);
        if (rc == 0) *uid = (uid_t)id;
    }
    if (rc == 0 && sep && sep[1]) {
        rc = lookup_id(r, "/etc/group", sep + 1, &id);
        if (rc == 0) *gid = (gid_t)id;
    }
    cn_free(o);
    return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cn_cloudinit_write_file(struct ci_root *r, const char *path, const void *data, size_t len,
                            unsigned mode, const char *owner)
{
    char *rel = rel_clean(path);
    const char *base = split_base(rel);
    int rc = 0;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (*base == '\0') {
        rc = -EISDIR;
        goto out;
    }
    if (owner && *owner && resolve_owner(r, owner, &uid, &gid) != 0) {
        CN_LOGE("cloudinit", "unknown owner owner=%s", owner);
        rc = CN_ERR_NOT_FOUND;
        goto out;
    }
    int dfd = open_dir(r, rel, true, 0755);
    if (dfd < 0) {
        rc = dfd;
        goto out;
    }
    char tmp[64];
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        unsigned long rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) rnd ^= (unsigned long)getpid();
        snprintf(tmp, sizeof(tmp), ".cairn-cloudinit.%016lx", rnd);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        rc = -errno;
        goto out_dir;
    }
    rc = write_all(fd, data, len);
    if (rc == 0 && fchmod(fd, mode & 07777) != 0) rc = -errno;
    if (rc == 0 && (uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0) {
        if (errno == EPERM && geteuid() != 0)
            CN_LOGW("cloudinit", "chown not permitted, ownership left path=%s", path);
        else
            rc = -errno;
    }
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && renameat(dfd, tmp, dfd, base) != 0) rc = -errno;
    if (rc != 0) {
        (void)unlinkat(dfd, tmp, 0); /* best effort: the temp file must not stay */
    } else if (fsync(dfd) != 0) {
        rc = -errno;
    }
out_dir:
    close(dfd);
out:
    cn_free(rel);
    return rc;
}

int cn_cloudinit_read_file(struct ci_root *r, const char *path, struct cn_buf *out)
{
    char *rel = rel_clean(path);
    int fd = open_in_root(r, rel, O_RDONLY | O_NONBLOCK);
    cn_free(rel);
    if (fd == -ENOENT || fd == -ENOTDIR) return CN_ERR_NOT_FOUND;
    if (fd < 0) return fd;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
    } else if ((unsigned long long)st.st_size > CI_MAX_READ) {
        rc = CN_ERR_TOO_LARGE;
    } else {
        rc = cn_buf_read_fd(out, fd, CI_MAX_READ);
    }
    close(fd);
    return rc;
}

int cn_cloudinit_stat(struct ci_root *r, const char *path, long long *size, unsigned *mode)
{
    char *rel = rel_clean(path);
    int fd = open_in_root(r, rel, O_PATH);
    cn_free(rel);
    if (fd < 0) return fd;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    close(fd);
    if (rc == 0) {
        if (size) *size = (long long)st.st_size;
        if (mode) *mode = (unsigned)st.st_mode;
    }
    return rc;
}

bool cn_cloudinit_path_exists(struct ci_root *r, const char *path)
{
    return cn_cloudinit_stat(r, path, NULL, NULL) == 0;
}

int cn_cloudinit_mkdirs(struct ci_root *r, const char *path, unsigned mode)
{
    char *rel = rel_clean(path);
    int fd = open_dir(r, rel, true, mode);
    cn_free(rel);
    if (fd < 0) return fd;
    close(fd);
    return 0;
}

static int remove_at(int dfd, const char *name, unsigned depth)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR && errno != EPERM) return -errno;
    if (depth > 64) return -ELOOP;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        rc = remove_at(dirfd(d), e->d_name, depth + 1);
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) rc = -errno;
    return rc;
}

int cn_cloudinit_remove(struct ci_root *r, const char *path)
{
    char *rel = rel_clean(path);
    const char *base = split_base(rel);
    int rc = 0;
    if (*base) {
        int dfd = open_dir(r, rel, false, 0);
        if (dfd >= 0) {
            rc = remove_at(dfd, base, 0);
            close(dfd);
        } else if (dfd != -ENOENT && dfd != -ENOTDIR) {
            rc = dfd;
        }
    }
    cn_free(rel);
    return rc;
}

int cn_cloudinit_symlink(struct ci_root *r, const char *target, const char *path)
{
    char *rel = rel_clean(path);
    const char *base = split_base(rel);
    int rc = -EINVAL;
    if (*base) {
        int dfd = open_dir(r, rel, true, 0755);
        rc = dfd < 0 ? dfd : symlinkat(target, dfd, base) == 0 ? 0 : -errno;
        if (dfd >= 0) close(dfd);
    }
    cn_free(rel);
    return rc;
}

int cn_cloudinit_unmask(struct ci_root *r, const char *path)
{
    char *rel = rel_clean(path);
    char *full = cn_xstrdup(rel);
    const char *base = split_base(rel);
    int rc = 0;
    int dfd = *base ? open_dir(r, rel, false, 0) : -EINVAL;
    if (dfd < 0) goto out;
    struct stat st;
    bool remove = false;
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) goto out_dir;
    if (S_ISLNK(st.st_mode)) {
        char target[16];
        ssize_t n = readlinkat(dfd, base, target, sizeof(target) - 1);
        if (n == 9 && memcmp(target, "/dev/null", 9) == 0) remove = true;
    }
    if (!remove) {
        int fd = open_in_root(r, full, O_PATH);
        if (fd >= 0) {
            if (fstat(fd, &st) == 0)
                remove = (S_ISREG(st.st_mode) && st.st_size == 0) || S_ISCHR(st.st_mode);
            close(fd);
        }
    }
    if (remove && unlinkat(dfd, base, 0) != 0) rc = -errno;
out_dir:
    close(dfd);
out:
    cn_free(full);
    cn_free(rel);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cn_cloudinit_list_dir(struct ci_root *r, const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    char *rel = rel_clean(dir);
    int fd = open_dir(r, rel, false, 0);
    cn_free(rel);
    if (fd < 0) return fd;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *names = cn_xrealloc(*names, cap * sizeof(char *));
        }
        (*names)[(*n)++] = cn_xstrdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(*names, *n, sizeof(char *), cmp_names);
    return 0;
}
