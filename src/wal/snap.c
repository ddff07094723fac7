/* snap: snapshot files in <data-dir>/member/snap: atomic save, load of the newest valid one with
 * fallback to older ones, purge. The data is the state machine's own encoding, opaque here. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "wal.h"
#include "wal_int.h"

#define SNAP_MAGIC    0x50534e43u /* "CNSP" */
#define SNAP_VERSION  1u
#define SNAP_HDR      40u
#define SNAP_NAME_LEN 38u /* %016llx-%016llx.snap */

struct snap_name {
    uint64_t term, index;
};

static void snap_file_name(char *out, size_t n, uint64_t term, uint64_t index)
{
    snprintf(out, n, "%016llx-%016llx.snap", (unsigned long long)term, (unsigned long long)index);
}

/* Newest first: by index, then term. */
static int name_cmp_desc(const void *a, const void *b)
{
    const struct snap_name *x = a, *y = b;
    if (x->index != y->index) return x->index > y->index ? -1 : 1;
    if (x->term != y->term) return x->term > y->term ? -1 : 1;
    return 0;
}

/* Lists the .snap files, newest first, and removes leftover temp files when purge_tmp. */
static int list_snaps(struct cn_snap *s, struct snap_name **out, size_t *n_out, bool purge_tmp)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(s->dir);
    if (d == NULL) {
        int rc = -errno;
        cn_wal__errf(s->errmsg, "open dir %s: %s", s->dir, cn_strerror(rc));
        return rc;
    }
    struct snap_name *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *z = de->d_name;
        size_t len = strlen(z);
        struct snap_name sn;
        if (len == SNAP_NAME_LEN && z[16] == '-' && strcmp(z + 33, ".snap") == 0 &&
            cn_wal__parse_hex16(z, &sn.term) && cn_wal__parse_hex16(z + 17, &sn.index)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                v = cn_xrealloc(v, cap * sizeof(*v));
            }
            v[n++] = sn;
        } else if (purge_tmp && len == SNAP_NAME_LEN + 4 &&
                   strcmp(z + SNAP_NAME_LEN, ".tmp") == 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", s->dir, z);
            unlink(path);
        }
    }
    closedir(d);
    if (n > 1) qsort(v, n, sizeof(*v), name_cmp_desc);
    *out = v;
    *n_out = n;
    return 0;
}

int cn_snap_init(struct cn_snap *s, const char *dir, const struct cn_wal_fs *fs)
{
    memset(s, 0, sizeof(*s));
    s->fs = fs ? fs : &cn_wal_fs_default;
    if (strlen(dir) > CN_WAL__DIR_MAX) {
        cn_wal__errf(s->errmsg, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    int rc = cn_wal__mkdirs(dir);
    if (rc != 0) {
        cn_wal__errf(s->errmsg, "create %s: %s", dir, cn_strerror(rc));
        return rc;
    }
    s->dir = cn_xstrdup(dir);
    return 0;
}

void cn_snap_close(struct cn_snap *s)
{
    cn_free(s->dir);
    s->dir = NULL;
}

int cn_snap_save(struct cn_snap *s, uint64_t term, uint64_t index, const void *data, size_t len)
{
    uint8_t h[SNAP_HDR];
    cn_wal__put32(h, SNAP_MAGIC);
    cn_wal__put32(h + 4, SNAP_VERSION);
    cn_wal__put64(h + 8, term);
    cn_wal__put64(h + 16, index);
    cn_wal__put64(h + 24, len);
    cn_wal__put32(h + 32, cn_wal__crc(0, data, len));
    cn_wal__put32(h + 36, cn_wal__crc(0, h, 36));
    char name[64];
    snap_file_name(name, sizeof(name), term, index);
    return cn_wal__atomic_write(s->fs, s->dir, name, h, sizeof(h), data, len, s->errmsg);
}

/* Validates one snapshot file, read whole into b. On success leaves only the data in b. */
static int check_snap(const struct snap_name *sn, struct cn_buf *b, char *why, size_t why_len)
{
    const uint8_t *h = (const uint8_t *)b->p;
    if (b->len < SNAP_HDR) {
        snprintf(why, why_len, "file of %zu bytes is shorter than the header", b->len);
        return CN_ERR_CORRUPT;
    }
    if (cn_wal__get32(h) != SNAP_MAGIC || cn_wal__crc(0, h, 36) != cn_wal__get32(h + 36)) {
        snprintf(why, why_len, "bad header (magic or header crc)");
        return CN_ERR_CORRUPT;
    }
    if (cn_wal__get32(h + 4) != SNAP_VERSION) {
        snprintf(why, why_len, "unsupported version %u", cn_wal__get32(h + 4));
        return CN_ERR_VERSION;
    }
    if (cn_wal__get64(h + 8) != sn->term || cn_wal__get64(h + 16) != sn->index) {
        snprintf(why, why_len, "header says term %llu index %llu",
                 (unsigned long long)cn_wal__get64(h + 8),
                 (unsigned long long)cn_wal__get64(h + 16));
        return CN_ERR_CORRUPT;
    }
    uint64_t len = cn_wal__get64(h + 24);
    if (len != b->len - SNAP_HDR) {
        snprintf(why, why_len, "length %llu but %zu data bytes", (unsigned long long)len,
                 b->len - SNAP_HDR);
        return CN_ERR_CORRUPT;
    }
    if (cn_wal__crc(0, h + SNAP_HDR, (size_t)len) != cn_wal__get32(h + 32)) {
        snprintf(why, why_len, "data crc mismatch");
        return CN_ERR_CORRUPT;
    }
    memmove(b->p, b->p + SNAP_HDR, (size_t)len);
    b->len = (size_t)len;
    b->p[b->len] = '\0';
    return 0;
}

int cn_snap_load(struct cn_snap *s, struct cn_buf *out, uint64_t *term, uint64_t *index)
{
    s->n_skipped = 0;
    cn_buf_reset(out);
    struct snap_name *v;
    size_t n;
    int rc = list_snaps(s, &v, &n, false);
    if (rc != 0) return rc;
    if (n == 0) {
        cn_wal__errf(s->errmsg, "no snapshot in %s", s->dir);
        cn_free(v);
        return CN_ERR_NOT_FOUND;
    }
    rc = CN_ERR_CORRUPT;
    for (size_t i = 0; i < n; i++) {
        char name[64], path[4096], why[96];
        snap_file_name(name, sizeof(name), v[i].term, v[i].index);
        snprintf(path, sizeof(path), "%s/%s", s->dir, name);
        int rc1 = cn_wal__read_file(path, out);
        if (rc1 == 0) {
            rc1 = check_snap(&v[i], out, why, sizeof(why));
        } else {
            snprintf(why, sizeof(why), "read: %s", cn_strerror(rc1));
        }
        if (rc1 == 0) {
            *term = v[i].term;
            *index = v[i].index;
            rc = 0;
            break;
        }
        if (s->n_skipped < CN_SNAP_MAX_SKIPPED) {
            snprintf(s->skipped[s->n_skipped].name, sizeof(s->skipped[0].name), "%s", name);
            s->skipped[s->n_skipped].rc = rc1;
            snprintf(s->skipped[s->n_skipped].why, sizeof(s->skipped[0].why), "%s", why);
        }
        s->n_skipped++;
        if (rc1 != CN_ERR_CORRUPT && rc1 != CN_ERR_VERSION) {
            /* An I/O error says nothing about the file itself: stop rather than fall back to an
             * older state or rename a file that may be fine. */
            cn_wal__errf(s->errmsg, "snapshot %s: %s", name, why);
            rc = rc1;
            break;
        }
        if (rc1 == CN_ERR_CORRUPT) {
            /* As etcd does: set it aside so it is neither tried again nor counted by purge. */
            char broken[4096 + 8];
            snprintf(broken, sizeof(broken), "%s.broken", path);
            if (s->fs->rename(path, broken) != 0) {
                /* Leaving it in place is harmless: it is skipped again next time. */
            }
        }
        cn_wal__errf(s->errmsg, "snapshot %s: %s", name, why);
    }
    if (rc == CN_ERR_CORRUPT)
        cn_wal__errf(s->errmsg, "none of the %zu snapshots in %s is valid (newest: %s)", n, s->dir,
                     s->skipped[0].why);
    if (rc != 0) cn_buf_reset(out);
    cn_free(v);
    return rc;
}

int cn_snap_purge(struct cn_snap *s, size_t keep)
{
    struct snap_name *v;
    size_t n;
    int rc = list_snaps(s, &v, &n, true);
    if (rc != 0) return rc;
    int deleted = 0;
    for (size_t i = keep; i < n; i++) {
        char name[64], path[4096];
        snap_file_name(name, sizeof(name), v[i].term, v[i].index);
        snprintf(path, sizeof(path), "%s/%s", s->dir, name);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = -errno;
            cn_wal__errf(s->errmsg, "purge: unlink %s: %s", name, cn_strerror(rc));
            break;
        }
        deleted++;
    }
    cn_free(v);
    if (rc != 0) return rc;
    if (deleted > 0) {
        rc = cn_wal__fsync_dir(s->fs, s->dir);
        if (rc != 0) {
            cn_wal__errf(s->errmsg, "purge: fsync dir %s: %s", s->dir, cn_strerror(rc));
            return rc;
        }
    }
    return deleted;
}
