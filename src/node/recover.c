/* recover: a member's data dir. Creates it or takes the lock on it, reads the member metadata,
 * loads the newest valid snapshot, replays the log after it, applies --force-new-cluster, and
 * hands what it found to cn_node_new on the libuv io. The one owner of the data-dir layout:
 *
 *     <data-dir>/.lock                      flock held while the member runs
 *     <data-dir>/member/meta                {u8 version, u64 id, u64 cluster id, name}
 *     <data-dir>/member/snap/<term>-<index>.snap  node snapshots (envelope.c's framing)
 *     <data-dir>/member/wal/<seq>-<index>.wal    the log (or --wal-dir)
 *
 * Blocking file I/O throughout: it runs before the member serves, off the loop (node.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "node_int.h"
#include "wal/wal.h"

#define META_VERSION 1

struct recovery {
    char *member_dir;
    uint64_t id, cluster_id;
    char *name;
    struct cn_wal *wal;
    struct cn_snap snap;
    bool snap_ok;
    int lock_fd;
    struct cn_raft_hard_state hs;
    struct cn_buf snap_data;
    uint64_t snap_term, snap_index;
    struct cn_raft_entry *ents;
    size_t nents, capents;
};

static void member_dir_of(struct cn_buf *b, const char *data_dir)
{
    cn_buf_appendf(b, "%s/member", data_dir);
}

bool cn_node_datadir_has_member(const char *data_dir)
{
    struct cn_buf p = CN_BUF_INIT;
    member_dir_of(&p, data_dir);
    cn_buf_appends(&p, "/meta");
    bool has = access(p.p, F_OK) == 0;
    cn_buf_free(&p);
    return has;
}

/* ---- metadata ----------------------------------------------------------------------------- */

static int meta_save(struct recovery *r, char *errmsg)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/meta", r->member_dir);
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_put_u8(&b, META_VERSION);
    cn_buf_put_u64(&b, r->id);
    cn_buf_put_u64(&b, r->cluster_id);
    cn_buf_put_bytes(&b, r->name, strlen(r->name));
    int rc = cn_meta_write(path, b.p, b.len, NULL, errmsg);
    cn_buf_free(&b);
    return rc;
}

static int meta_load(struct recovery *r, char *errmsg, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/meta", r->member_dir);
    struct cn_buf b = CN_BUF_INIT;
    char why[256] = "";
    int rc = cn_meta_read(path, &b, why);
    if (rc == 0) {
        struct cn_rd rd;
        cn_rd_init(&rd, b.p, b.len);
        uint8_t v = cn_rd_u8(&rd);
        r->id = cn_rd_u64(&rd);
        r->cluster_id = cn_rd_u64(&rd);
        struct cn_str name = cn_rd_bytes(&rd);
        if (!cn_rd_ok(&rd) || v != META_VERSION) rc = CN_ERR_CORRUPT;
        if (rc == 0) {
            cn_free(r->name);
            r->name = cn_xstrndup(name.p, name.len);
        }
    }
    if (rc != 0)
        snprintf(errmsg, errlen, "member metadata %s: %s%s%s", path, cn_strerror(rc),
                 *why ? ": " : "", why);
    cn_buf_free(&b);
    return rc;
}

/* ---- the log ------------------------------------------------------------------------------ */

static void add_entry(struct recovery *r, uint64_t term, uint64_t index, uint8_t wal_type,
                      const void *data, size_t len)
{
    if (r->nents == r->capents) {
        r->capents = r->capents ? r->capents * 2 : 1024;
        r->ents = cn_xrealloc(r->ents, r->capents * sizeof(*r->ents));
    }
    struct cn_raft_entry *x = &r->ents[r->nents++];
    x->term = term;
    x->index = index;
    x->type = wal_type == CN_NODE__WAL_CONF ? CN_RAFT_ENTRY_CONF : CN_RAFT_ENTRY_NORMAL;
    x->len = wal_type == CN_NODE__WAL_NOOP_V0 ? 0 : len;
    x->data = x->len ? cn_xmemdup(data, x->len) : NULL;
}

static int collect_entry(void *arg, const struct cn_wal_entry *e)
{
    add_entry(arg, e->term, e->index, e->type, e->data, e->len);
    return 0;
}

static void recovery_free(struct recovery *r)
{
    for (size_t i = 0; i < r->nents; i++)
        cn_free(r->ents[i].data);
    cn_free(r->ents);
    cn_buf_free(&r->snap_data);
    cn_free(r->member_dir);
    cn_free(r->name);
}

static int mkdir_p(const char *path, char *errmsg, size_t errlen)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len >= sizeof(tmp)) return CN_ERR_TOO_LARGE;
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            snprintf(errmsg, errlen, "cannot create directory %s: %s", tmp, strerror(e));
            return -e;
        }
        tmp[i] = c;
    }
    return 0;
}

/* ---- --force-new-cluster ------------------------------------------------------------------ */

/* Keeps what is committed, drops the rest, and appends (as committed) the removal of every other
 * member with the records the state machine keeps for it, so this member is a cluster of one
 * with the same data and the same cluster id. */
static int force_new_cluster(struct recovery *r, struct cn_fsm *fsm, char *errmsg, size_t errlen)
{
    while (r->nents && r->ents[r->nents - 1].index > r->hs.commit) {
        cn_free(r->ents[r->nents - 1].data);
        r->nents--;
    }
    struct cn_raft_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (r->snap_data.len) {
        const void *fp;
        size_t fl;
        int rc = cn_node__snap_decode(r->snap_data.p, r->snap_data.len, &conf, &fp, &fl);
        if (rc != 0) return rc;
    }
    for (size_t i = 0; i < r->nents; i++) {
        if (r->ents[i].type != CN_RAFT_ENTRY_CONF) continue;
        struct cn_raft_conf_change cc;
        if (cn_raft_conf_change_decode(r->ents[i].data, r->ents[i].len, &cc) != 0) continue;
        (void)cn_raft_conf_apply(&conf, &cc); /* one that does not fit: ignored, as raft does */
    }
    uint64_t others[2 * CN_RAFT_MAX_MEMBERS];
    size_t nothers = 0;
    bool self = false;
    for (uint32_t i = 0; i < conf.n_voters; i++)
        if (conf.voters[i] != r->id)
            others[nothers++] = conf.voters[i];
        else
            self = true;
    for (uint32_t i = 0; i < conf.n_learners; i++)
        if (conf.learners[i] != r->id) others[nothers++] = conf.learners[i];
    if (!self) {
        snprintf(errmsg, errlen,
                 "--force-new-cluster: this member (%" PRIx64 ") is not a voting member of the "
                 "configuration in its data dir",
                 r->id);
        return CN_ERR_INVAL;
    }
    uint64_t last = r->nents ? r->ents[r->nents - 1].index : r->snap_index;
    uint64_t term = r->nents ? r->ents[r->nents - 1].term : r->snap_term;
    if (r->hs.term > term) term = r->hs.term;
    for (size_t i = 0; i < nothers; i++) {
        struct cn_buf ctx = CN_BUF_INIT;
        cn_node__env_header(&ctx, 0, 0);
        if (fsm->records_remove) fsm->records_remove(fsm, others[i], &ctx);
        struct cn_raft_conf_change cc = {CN_RAFT_CONF_REMOVE, others[i], ctx.p, ctx.len};
        struct cn_buf enc = CN_BUF_INIT;
        cn_raft_conf_change_encode(&cc, &enc);
        struct cn_wal_entry we = {term, ++last, CN_NODE__WAL_CONF, enc.p, enc.len};
        int rc = cn_wal_append_entry(r->wal, &we);
        if (rc == 0) add_entry(r, we.term, we.index, we.type, we.data, we.len);
        cn_buf_free(&enc);
        cn_buf_free(&ctx);
        if (rc != 0) return rc;
    }
    r->hs.commit = last;
    r->hs.term = term;
    struct cn_wal_hard_state whs = {r->hs.term, r->hs.vote, r->hs.commit};
    cn_wal_set_hard_state(r->wal, &whs);
    /* before the member runs: the pool thread the server opens on may block */
    int rc = cn_wal_sync(r->wal);
    if (rc != 0) {
        snprintf(errmsg, errlen, "--force-new-cluster: writing the log: %s (%s)", cn_strerror(rc),
                 cn_wal_errmsg(r->wal));
        return rc;
    }
    CN_LOGW("node",
            "forcing a new cluster: removed %zu other member(s); this member keeps the data "
            "and the cluster cluster=%" PRIx64,
            nothers, r->cluster_id);
    return 0;
}

/* ---- open --------------------------------------------------------------------------------- */

static int open_dir(struct recovery *r, const struct cn_node_options *opt, struct cn_fsm *fsm,
                    bool *fresh, struct cn_node_boot *boot, char *errmsg, size_t errlen)
{
    char why[256] = "";
    int rc = mkdir_p(opt->data_dir, errmsg, errlen);
    if (rc != 0) return rc;
    rc = cn_datadir_lock(opt->data_dir, &r->lock_fd, why);
    if (rc != 0) {
        if (rc == CN_ERR_LOCKED)
            snprintf(errmsg, errlen,
                     "data dir %s is in use by another process (lock held on %s/.lock)",
                     opt->data_dir, opt->data_dir);
        else
            snprintf(errmsg, errlen, "cannot lock data dir %s: %s", opt->data_dir,
                     *why ? why : cn_strerror(rc));
        return rc;
    }
    *fresh = !cn_node_datadir_has_member(opt->data_dir);
    if (*fresh) {
        rc = mkdir_p(r->member_dir, errmsg, errlen);
        if (rc != 0) return rc;
    } else {
        rc = meta_load(r, errmsg, errlen);
        if (rc != 0) return rc;
    }
    boot->fresh = *fresh;
    boot->member_id = r->id;
    boot->cluster_id = r->cluster_id;
    snprintf(boot->name, sizeof(boot->name), "%s", r->name);

    struct cn_buf sdir = CN_BUF_INIT;
    cn_buf_appendf(&sdir, "%s/snap", r->member_dir);
    rc = cn_snap_init(&r->snap, sdir.p, NULL);
    cn_buf_free(&sdir);
    if (rc != 0) {
        snprintf(errmsg, errlen, "snapshot dir: %s", cn_strerror(rc));
        return rc;
    }
    r->snap_ok = true;
    rc = cn_snap_load(&r->snap, &r->snap_data, &r->snap_term, &r->snap_index);
    for (size_t i = 0; i < r->snap.n_skipped && i < CN_SNAP_MAX_SKIPPED; i++)
        CN_LOGW("node", "skipped invalid snapshot file=%s reason=\"%s\"", r->snap.skipped[i].name,
                r->snap.skipped[i].why);
    if (rc == CN_ERR_NOT_FOUND) {
        cn_buf_reset(&r->snap_data);
        r->snap_term = r->snap_index = 0;
    } else if (rc != 0) {
        snprintf(errmsg, errlen, "no valid snapshot in %s/snap: %s", r->member_dir,
                 r->snap.errmsg[0] ? r->snap.errmsg : cn_strerror(rc));
        return rc;
    }
    boot->snap_index = r->snap_index;

    struct cn_buf wdir = CN_BUF_INIT;
    if (opt->wal_dir && *opt->wal_dir)
        cn_buf_appends(&wdir, opt->wal_dir);
    else
        cn_buf_appendf(&wdir, "%s/wal", r->member_dir);
    if (!*fresh && !cn_wal_exists(wdir.p)) {
        snprintf(errmsg, errlen,
                 "the data dir %s has member state but no write-ahead log in %s (a --wal-dir "
                 "flag missing?)",
                 opt->data_dir, wdir.p);
        cn_buf_free(&wdir);
        return CN_ERR_NOT_FOUND;
    }
    struct cn_wal_repair rep;
    memset(&rep, 0, sizeof(rep));
    char werr[256] = "";
    struct cn_wal_options wopt = {.grow_first = true};
    rc = cn_wal_open(wdir.p, &wopt, &r->wal, &rep, werr);
    cn_buf_free(&wdir);
    if (rc != 0) {
        snprintf(errmsg, errlen, "cannot open the write-ahead log: %s",
                 *werr ? werr : cn_strerror(rc));
        return rc;
    }
    if (rep.bytes_dropped || rep.records_dropped) {
        CN_LOGW("node",
                "truncated damaged log tail segment=%s offset=%" PRIu64 " bytes=%" PRIu64
                " records=%" PRIu64 " reason=\"%s\"",
                rep.segment, rep.offset, rep.bytes_dropped, rep.records_dropped, rep.reason);
        boot->dropped_bytes = rep.bytes_dropped;
        boot->dropped_records = rep.records_dropped;
    }
    struct cn_wal_hard_state whs;
    rc = cn_wal_replay(r->wal, r->snap_index, collect_entry, r, &whs);
    if (rc != 0) {
        snprintf(errmsg, errlen, "replaying the write-ahead log: %s (%s)", cn_strerror(rc),
                 cn_wal_errmsg(r->wal));
        return rc;
    }
    r->hs = (struct cn_raft_hard_state){whs.term, whs.vote, whs.commit};
    uint64_t last = r->nents ? r->ents[r->nents - 1].index : r->snap_index;
    if (r->hs.commit > last) r->hs.commit = last;
    if (r->hs.commit < r->snap_index) r->hs.commit = r->snap_index;
    boot->replayed = r->nents;
    if (opt->force_new_cluster && !*fresh) {
        rc = force_new_cluster(r, fsm, errmsg, errlen);
        if (rc != 0) return rc;
    }
    /* The metadata file is written last: a data dir without it is not a member yet (a failed
     * first start can be retried with other flags). */
    if (*fresh) {
        rc = meta_save(r, why);
        if (rc != 0) {
            snprintf(errmsg, errlen, "cannot write member metadata in %s: %s", r->member_dir,
                     *why ? why : cn_strerror(rc));
            return rc;
        }
    }
    return 0;
}

int cn_node_open(uv_loop_t *loop, const struct cn_node_options *opt, struct cn_fsm *fsm,
                 struct cn_node **out, struct cn_node_boot *boot, char *errmsg, size_t errlen)
{
    memset(boot, 0, sizeof(*boot));
    *out = NULL;
    struct recovery r;
    memset(&r, 0, sizeof(r));
    r.lock_fd = -1;
    r.id = opt->member_id;
    r.cluster_id = opt->cluster_id;
    r.name = cn_xstrdup(opt->name ? opt->name : "");
    cn_buf_init(&r.snap_data);
    struct cn_buf p = CN_BUF_INIT;
    member_dir_of(&p, opt->data_dir);
    r.member_dir = cn_buf_steal(&p, NULL);
    bool fresh = false;
    int rc = open_dir(&r, opt, fsm, &fresh, boot, errmsg, errlen);
    if (rc != 0) goto err;

    struct cn_node_options o = *opt;
    o.member_id = r.id;
    o.cluster_id = r.cluster_id;
    o.name = r.name;
    if (o.seed == 0 && getrandom(&o.seed, sizeof(o.seed), 0) != sizeof(o.seed))
        o.seed = (uint64_t)cn_clock_mono_ns();
    struct cn_node_io *io =
        cn_node__io_uv_new(loop, &o, r.wal, &r.snap, r.lock_fd, r.member_dir, fresh);
    r.wal = NULL; /* the io's now */
    r.snap_ok = false;
    r.lock_fd = -1;
    struct cn_node_state st = {
        .fresh = fresh,
        .hs = r.hs,
        .snap_term = r.snap_term,
        .snap_index = r.snap_index,
        .snap = r.snap_data.len ? r.snap_data.p : NULL,
        .snap_len = r.snap_data.len,
        .ents = r.ents,
        .n_ents = r.nents,
    };
    *out = cn_node_new(&o, fsm, io, &st, NULL, NULL, errmsg, errlen);
    if (*out == NULL) {
        io->free(io);
        rc = CN_ERR_CORRUPT;
        goto err;
    }
    recovery_free(&r);
    return 0;
err:
    if (rc == 0) rc = CN_ERR_INVAL;
    if (r.wal) cn_wal_close(r.wal);
    if (r.snap_ok) cn_snap_close(&r.snap);
    if (r.lock_fd >= 0) cn_datadir_unlock(r.lock_fd);
    recovery_free(&r);
    return rc;
}
