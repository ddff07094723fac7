/* node: one member as its own quorum. Proposals become log entries; the WAL's group commit makes
 * them durable on a threadpool worker while the loop keeps accepting more; durable entries are
 * applied to the store in log order and only then answered.
 *
 * Design notes
 *   States: OPEN (cn_node_open) -> RUNNING (cn_node_start: a new term, an empty entry of that term
 *   as a Raft leader appends) -> STOPPING (cn_node_stop: new requests fail, queued ones are flushed
 *   and answered) -> CLOSED (handles closed, stop callback called, node freed).
 *   Invariants:
 *    1. An entry is applied only after cn_wal_flush_end reported it durable, in index order.
 *    2. A request's callback runs exactly once, never from inside the call that created it.
 *    3. A failed flush fails every entry not yet durable (the WAL dropped them all) and the log's
 *       last index rolls back to the durable one, so indexes stay contiguous.
 *    4. At most one flush and one snapshot write run on the thread pool at any time. */
#include "node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/list.h"
#include "common/log.h"
#include "wal/wal.h"

enum { ENTRY_NORMAL = 0, ENTRY_NOOP = 1 };
enum { S_OPEN, S_RUNNING, S_STOPPING, S_CLOSED };

#define META_VERSION 1
#define TICK_MS      100

const double cn_node_fsync_buckets[14] = {0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                          0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192};

struct cn_node_req {
    struct cn_list link;
    uint64_t index; /* entry index (writes) or read index (reads) */
    int64_t deadline_ns;
    cn_node_done_cb cb;
    void *ctx;
    bool is_read;
    bool in_writes; /* counted in node.npending */
    bool detached;
    int rc; /* for early failures */
};

struct cn_node {
    uv_loop_t *loop;
    struct cn_store *store;
    struct cn_wal *wal;
    struct cn_snap snap;
    bool snap_ok;
    int lock_fd;
    int state;
    char *data_dir;
    char *member_dir;
    uint64_t id, cluster_id;
    uint64_t term;
    uint64_t applied;      /* raft index of the last applied entry */
    uint64_t applied_term; /* its term */
    uint64_t snap_index;   /* newest snapshot's index */
    uint64_t snapshot_count;
    unsigned max_snapshots;
    unsigned election_ms;
    int64_t leader_since_ns;
    uint64_t leader_changes;
    /* requests */
    struct cn_list writes; /* by index */
    struct cn_list reads;
    struct cn_list done; /* failed early: answered on the next kick */
    uint64_t committed, applied_count, failed;
    uint64_t npending; /* requests in writes */
    /* flush */
    uv_work_t flush_work;
    bool flushing;
    int flush_rc;
    int64_t flush_ns;
    uint64_t fsync_bucket[14], fsync_count;
    double fsync_sum;
    /* snapshot */
    uv_work_t snap_work;
    bool snapping;
    struct cn_buf snap_buf;
    uint64_t snap_work_index, snap_work_term;
    int64_t snap_encode_ns, snap_start_ns;
    int snap_rc;
    uint64_t release_to; /* a WAL release waiting for no flush in flight */
    uint64_t snapshots;
    /* timers */
    uv_timer_t kick; /* 0-timeout: answer what is ready */
    uv_timer_t tick; /* request timeouts */
    int open_handles;
    void (*stop_cb)(void *ctx);
    void *stop_ctx;
};

static void kick(struct cn_node *n);

/* ---- metadata ----------------------------------------------------------------------------- */

static int meta_path(struct cn_node *n, char *out, size_t len)
{
    return snprintf(out, len, "%s/meta", n->member_dir) >= (int)len ? CN_ERR_TOO_LARGE : 0;
}

static int meta_save(struct cn_node *n, const char *name, char *errmsg)
{
    char path[4096];
    if (meta_path(n, path, sizeof(path)) != 0) return CN_ERR_TOO_LARGE;
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_put_u8(&b, META_VERSION);
    cn_buf_put_u64(&b, n->id);
    cn_buf_put_u64(&b, n->cluster_id);
    cn_buf_put_bytes(&b, name, strlen(name));
    int rc = cn_meta_write(path, b.p, b.len, NULL, errmsg);
    cn_buf_free(&b);
    return rc;
}

static int meta_load(struct cn_node *n, char *errmsg, size_t errlen)
{
    char path[4096];
    if (meta_path(n, path, sizeof(path)) != 0) return CN_ERR_TOO_LARGE;
    struct cn_buf b = CN_BUF_INIT;
    char why[256] = "";
    int rc = cn_meta_read(path, &b, why);
    if (rc == 0) {
        struct cn_rd r;
        cn_rd_init(&r, b.p, b.len);
        uint8_t v = cn_rd_u8(&r);
        n->id = cn_rd_u64(&r);
        n->cluster_id = cn_rd_u64(&r);
        (void)cn_rd_bytes(&r); /* name: informational */
        if (!cn_rd_ok(&r) || v != META_VERSION) rc = CN_ERR_CORRUPT;
    }
    if (rc != 0)
        snprintf(errmsg, errlen, "member metadata %s: %s%s%s", path, cn_strerror(rc),
                 *why ? ": " : "", why);
    cn_buf_free(&b);
    return rc;
}

/* ---- open and recovery -------------------------------------------------------------------- */

struct replay_ctx {
    struct cn_node *n;
    uint64_t count;
};

static int replay_entry(void *arg, const struct cn_wal_entry *e)
{
    struct replay_ctx *rc = arg;
    struct cn_node *n = rc->n;
    if (e->type == ENTRY_NORMAL) {
        struct cn_store_result res;
        int r = cn_store_apply(n->store, e->data, e->len, &res);
        if (r != 0) return r;
    }
    n->applied = e->index;
    n->applied_term = e->term;
    rc->count++;
    return 0;
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

int cn_node_open(uv_loop_t *loop, const struct cn_node_options *opt, struct cn_store *store,
                 struct cn_node **out, struct cn_node_boot *boot, char *errmsg, size_t errlen)
{
    memset(boot, 0, sizeof(*boot));
    *out = NULL;
    struct cn_node *n = CN_NEW(struct cn_node);
    n->loop = loop;
    n->store = store;
    n->lock_fd = -1;
    n->state = S_OPEN;
    n->snapshot_count = opt->snapshot_count ? opt->snapshot_count : 10000;
    n->max_snapshots = opt->max_snapshots;
    n->election_ms = opt->election_ms ? opt->election_ms : 1000;
    cn_list_init(&n->writes);
    cn_list_init(&n->reads);
    cn_list_init(&n->done);
    cn_buf_init(&n->snap_buf);
    n->data_dir = cn_xstrdup(opt->data_dir);
    struct cn_buf p = CN_BUF_INIT;
    cn_buf_appendf(&p, "%s/member", opt->data_dir);
    n->member_dir = cn_buf_steal(&p, NULL);
    char why[256] = "";
    int rc = mkdir_p(opt->data_dir, errmsg, errlen);
    if (rc != 0) goto err;
    rc = cn_datadir_lock(opt->data_dir, &n->lock_fd, why);
    if (rc != 0) {
        if (rc == CN_ERR_LOCKED)
            snprintf(errmsg, errlen,
                     "data dir %s is in use by another process (lock held on %s/.lock)",
                     opt->data_dir, opt->data_dir);
        else
            snprintf(errmsg, errlen, "cannot lock data dir %s: %s", opt->data_dir,
                     *why ? why : cn_strerror(rc));
        goto err;
    }
    char meta[4096];
    snprintf(meta, sizeof(meta), "%s/meta", n->member_dir);
    struct stat stt;
    bool fresh = stat(meta, &stt) != 0;
    if (fresh) {
        rc = mkdir_p(n->member_dir, errmsg, errlen);
        if (rc != 0) goto err;
        n->id = opt->member_id;
        n->cluster_id = opt->cluster_id;
        rc = meta_save(n, opt->name ? opt->name : "", why);
        if (rc != 0) {
            snprintf(errmsg, errlen, "cannot write member metadata in %s: %s", n->member_dir,
                     *why ? why : cn_strerror(rc));
            goto err;
        }
    } else {
        rc = meta_load(n, errmsg, errlen);
        if (rc != 0) goto err;
    }
    boot->fresh = fresh;
    boot->member_id = n->id;
    boot->cluster_id = n->cluster_id;

    /* Snapshot first, then the log after it. */
    struct cn_buf sdir = CN_BUF_INIT;
    cn_buf_appendf(&sdir, "%s/snap", n->member_dir);
    rc = cn_snap_init(&n->snap, sdir.p, NULL);
    cn_buf_free(&sdir);
    if (rc != 0) {
        snprintf(errmsg, errlen, "snapshot dir: %s", cn_strerror(rc));
        goto err;
    }
    n->snap_ok = true;
    struct cn_buf data = CN_BUF_INIT;
    uint64_t sterm = 0, sindex = 0;
    rc = cn_snap_load(&n->snap, &data, &sterm, &sindex);
    for (size_t i = 0; i < n->snap.n_skipped && i < CN_SNAP_MAX_SKIPPED; i++)
        CN_LOGW("node", "skipped invalid snapshot file=%s reason=\"%s\"", n->snap.skipped[i].name,
                n->snap.skipped[i].why);
    if (rc == 0) {
        rc = cn_store_snapshot_load(store, data.p, data.len);
        if (rc != 0) {
            snprintf(errmsg, errlen,
                     "snapshot %016" PRIx64 "-%016" PRIx64 ".snap passed its checksum but its "
                     "contents do not decode: %s",
                     sterm, sindex, cn_strerror(rc));
            cn_buf_free(&data);
            goto err;
        }
        n->applied = n->snap_index = sindex;
        n->applied_term = sterm;
        boot->snap_index = sindex;
    } else if (rc != CN_ERR_NOT_FOUND) {
        snprintf(errmsg, errlen, "no valid snapshot in %s/snap: %s", n->member_dir,
                 n->snap.errmsg[0] ? n->snap.errmsg : cn_strerror(rc));
        cn_buf_free(&data);
        goto err;
    }
    cn_buf_free(&data);

    struct cn_buf wdir = CN_BUF_INIT;
    if (opt->wal_dir && *opt->wal_dir)
        cn_buf_appends(&wdir, opt->wal_dir);
    else
        cn_buf_appendf(&wdir, "%s/wal", n->member_dir);
    struct cn_wal_repair rep;
    memset(&rep, 0, sizeof(rep));
    char werr[256] = "";
    rc = cn_wal_open(wdir.p, NULL, &n->wal, &rep, werr);
    cn_buf_free(&wdir);
    if (rc != 0) {
        snprintf(errmsg, errlen, "cannot open the write-ahead log: %s",
                 *werr ? werr : cn_strerror(rc));
        goto err;
    }
    if (rep.bytes_dropped || rep.records_dropped) {
        CN_LOGW("node",
                "truncated damaged log tail segment=%s offset=%" PRIu64 " bytes=%" PRIu64
                " records=%" PRIu64 " reason=\"%s\"",
                rep.segment, rep.offset, rep.bytes_dropped, rep.records_dropped, rep.reason);
        boot->dropped_bytes = rep.bytes_dropped;
        boot->dropped_records = rep.records_dropped;
    }
    struct replay_ctx rctx = {n, 0};
    struct cn_wal_hard_state hs;
    rc = cn_wal_replay(n->wal, n->snap_index, replay_entry, &rctx, &hs);
    if (rc != 0) {
        snprintf(errmsg, errlen, "replaying the write-ahead log: %s (%s)", cn_strerror(rc),
                 cn_wal_errmsg(n->wal));
        goto err;
    }
    boot->replayed = rctx.count;
    n->term = hs.term > n->applied_term ? hs.term : n->applied_term;
    *out = n;
    return 0;
err:
    if (rc == 0) rc = CN_ERR_INVAL;
    if (n->wal) cn_wal_close(n->wal);
    if (n->snap_ok) cn_snap_close(&n->snap);
    if (n->lock_fd >= 0) cn_datadir_unlock(n->lock_fd);
    cn_free(n->data_dir);
    cn_free(n->member_dir);
    cn_buf_free(&n->snap_buf);
    cn_free(n);
    return rc;
}

/* ---- the write path ----------------------------------------------------------------------- */

static void finish_req(struct cn_node *n, struct cn_node_req *r, int rc,
                       const struct cn_store_result *res)
{
    cn_list_remove(&r->link);
    if (r->in_writes) n->npending--;
    if (!r->is_read) cn_buf_free((struct cn_buf *)(r + 1));
    if (!r->detached && r->cb) r->cb(r->ctx, rc, res);
    cn_free(r);
}

static void flush_work(uv_work_t *w)
{
    struct cn_node *n = w->data;
    int64_t t0 = cn_clock_mono_ns();
    n->flush_rc = cn_wal_flush_run(n->wal);
    n->flush_ns = cn_clock_mono_ns() - t0;
}

static void maybe_snapshot(struct cn_node *n);
static void maybe_finish_stop(struct cn_node *n);
static void start_flush(struct cn_node *n);

static void apply_durable(struct cn_node *n)
{
    uint64_t durable = cn_wal_durable_index(n->wal);
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->writes) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->index > durable) break;
        /* Entries are applied in index order; the request's command is stored with it. */
        struct cn_store_result res;
        const struct cn_buf *cmd = (const struct cn_buf *)(r + 1);
        n->committed++;
        int rc = cn_store_apply(n->store, cmd->p, cmd->len, &res);
        n->applied = r->index;
        n->applied_term = n->term;
        if (rc != 0) {
            /* A command we encoded ourselves does not decode: a bug, never user input. */
            CN_LOGE("node", "cannot apply entry index=%" PRIu64 " err=%s", r->index,
                    cn_strerror(rc));
            n->failed++;
            finish_req(n, r, rc, NULL);
            continue;
        }
        n->applied_count++;
        finish_req(n, r, 0, &res);
    }
    /* The no-op and other entries without a request still advance applied. */
    if (durable > n->applied) {
        n->applied = durable;
        n->applied_term = n->term;
    }
}

static void flush_after(uv_work_t *w, int status)
{
    struct cn_node *n = w->data;
    n->flushing = false;
    int rc = status != 0 ? status : n->flush_rc;
    cn_wal_flush_end(n->wal, rc);
    double s = (double)n->flush_ns / 1e9;
    for (int i = 0; i < 14; i++)
        if (s <= cn_node_fsync_buckets[i]) {
            n->fsync_bucket[i]++;
            break;
        }
    n->fsync_count++;
    n->fsync_sum += s;
    bool running = n->state == S_RUNNING || n->state == S_STOPPING;
    /* Starting the next flush before answering this batch (to overlap them) measured slower on
     * 2 cores: smaller batches, and the worker competes with the loop. */
    if (rc != 0) {
        CN_LOGE("node", "write-ahead log flush failed err=\"%s\" detail=\"%s\"", cn_strerror(rc),
                cn_wal_errmsg(n->wal));
        apply_durable(n);
        /* Everything not durable was dropped by the log: fail it (invariant 3). */
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &n->writes) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            n->failed++;
            finish_req(n, r, rc, NULL);
        }
    } else {
        apply_durable(n);
    }
    /* What queued up during this flush goes out now, not an iteration later. */
    if (running) start_flush(n);
    kick(n);
    maybe_snapshot(n);
}

static void start_flush(struct cn_node *n)
{
    if (n->flushing) return;
    if (n->release_to && !n->snapping) {
        int rc = cn_wal_release_to(n->wal, n->release_to);
        if (rc < 0)
            CN_LOGW("node", "releasing old log segments failed err=\"%s\"", cn_strerror(rc));
        n->release_to = 0;
    }
    if (!cn_wal_flush_begin(n->wal)) return;
    n->flushing = true;
    n->flush_work.data = n;
    int rc = uv_queue_work(n->loop, &n->flush_work, flush_work, flush_after);
    CN_ASSERT(rc == 0);
}

static void answer_ready(struct cn_node *n)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->done) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        finish_req(n, r, r->rc, NULL);
    }
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (n->applied < r->index) continue;
        finish_req(n, r, 0, NULL);
    }
}

static void kick_cb(uv_timer_t *t)
{
    struct cn_node *n = t->data;
    answer_ready(n);
    if (n->state == S_RUNNING || n->state == S_STOPPING) start_flush(n);
    maybe_finish_stop(n);
}

static void kick(struct cn_node *n)
{
    if (n->state == S_CLOSED || uv_is_closing((uv_handle_t *)&n->kick)) return;
    uv_timer_start(&n->kick, kick_cb, 0, 0);
}

static void tick_cb(uv_timer_t *t)
{
    struct cn_node *n = t->data;
    int64_t now = cn_clock_mono_ns();
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->writes) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->deadline_ns > now) break;
        if (!r->detached && r->cb) {
            /* The entry may still commit: etcd's timeout means "outcome unknown". */
            r->cb(r->ctx, CN_ERR_TIMEOUT, NULL);
            r->detached = true;
        }
    }
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->deadline_ns <= now) finish_req(n, r, CN_ERR_TIMEOUT, NULL);
    }
}

static struct cn_node_req *new_req(struct cn_node *n, bool is_read, size_t extra,
                                   cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = cn_xcalloc(1, sizeof(*r) + extra);
    r->cb = cb;
    r->ctx = ctx;
    r->is_read = is_read;
    r->deadline_ns = cn_clock_mono_ns() + (5000 + 2 * (int64_t)n->election_ms) * CN_NS_PER_MS;
    return r;
}

static struct cn_node_req *fail_later(struct cn_node *n, struct cn_node_req *r, int rc)
{
    r->rc = rc;
    cn_list_insert_tail(&n->done, &r->link);
    if (!r->is_read) n->failed++;
    kick(n);
    return r;
}

struct cn_node_req *cn_node_propose(struct cn_node *n, const void *cmd, size_t len,
                                    cn_node_done_cb cb, void *ctx)
{
    /* The command bytes live right after the request (one allocation per proposal). */
    struct cn_node_req *r = new_req(n, false, sizeof(struct cn_buf), cb, ctx);
    struct cn_buf *owned = (struct cn_buf *)(r + 1);
    cn_buf_init(owned);
    if (n->state != S_RUNNING) return fail_later(n, r, CN_ERR_STOPPED);
    cn_buf_append(owned, cmd, len);
    r->index = cn_wal_last_index(n->wal) + 1;
    struct cn_wal_entry e = {n->term, r->index, ENTRY_NORMAL, owned->p, owned->len};
    int rc = cn_wal_append_entry(n->wal, &e);
    if (rc != 0) return fail_later(n, r, rc);
    struct cn_wal_hard_state hs = {n->term, n->id, r->index};
    cn_wal_set_hard_state(n->wal, &hs);
    cn_list_insert_tail(&n->writes, &r->link);
    r->in_writes = true;
    n->npending++;
    start_flush(n);
    return r;
}

struct cn_node_req *cn_node_read_index(struct cn_node *n, cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = new_req(n, true, 0, cb, ctx);
    if (n->state != S_RUNNING) return fail_later(n, r, CN_ERR_STOPPED);
    /* One member is its own quorum: the read is safe once everything committed (durable) at
     * this moment has been applied. */
    r->index = cn_wal_durable_index(n->wal);
    cn_list_insert_tail(&n->reads, &r->link);
    kick(n);
    return r;
}

void cn_node_req_detach(struct cn_node_req *r)
{
    if (r) r->detached = true;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

static void snap_work(uv_work_t *w)
{
    struct cn_node *n = w->data;
    n->snap_rc = cn_snap_save(&n->snap, n->snap_work_term, n->snap_work_index, n->snap_buf.p,
                              n->snap_buf.len);
    if (n->snap_rc == 0 && n->max_snapshots) cn_snap_purge(&n->snap, n->max_snapshots);
}

static void snap_after(uv_work_t *w, int status)
{
    struct cn_node *n = w->data;
    n->snapping = false;
    int rc = status != 0 ? status : n->snap_rc;
    if (rc == 0) {
        n->snap_index = n->snap_work_index;
        n->snapshots++;
        n->release_to = n->snap_work_index;
        CN_LOGI("node",
                "saved snapshot index=%" PRIu64 " term=%" PRIu64 " bytes=%zu encode_ms=%.1f "
                "total_ms=%.1f",
                n->snap_work_index, n->snap_work_term, n->snap_buf.len,
                (double)n->snap_encode_ns / 1e6,
                (double)(cn_clock_mono_ns() - n->snap_start_ns) / 1e6);
    } else {
        CN_LOGE("node", "saving snapshot failed index=%" PRIu64 " err=\"%s\" detail=\"%s\"",
                n->snap_work_index, cn_strerror(rc), n->snap.errmsg);
    }
    cn_buf_free(&n->snap_buf);
    kick(n);
}

static void maybe_snapshot(struct cn_node *n)
{
    if (n->snapping || n->state == S_CLOSED) return;
    if (n->applied - n->snap_index < n->snapshot_count) return;
    /* Encode on the loop (the store is single-threaded); write and fsync on the pool. Encoding
     * 10,000 keys of 256 bytes takes ~8 ms here, the main source of PUT p99 under load. Forking a
     * child to encode (as redis's BGSAVE does) measured worse on this VM: p99 8 ms, max 168 ms
     * from copy-on-write faults in the loop while the child ran. */
    cn_buf_reset(&n->snap_buf);
    n->snap_start_ns = cn_clock_mono_ns();
    cn_store_snapshot_save(n->store, &n->snap_buf);
    n->snap_encode_ns = cn_clock_mono_ns() - n->snap_start_ns;
    n->snap_work_index = n->applied;
    n->snap_work_term = n->applied_term;
    n->snapping = true;
    n->snap_work.data = n;
    int rc = uv_queue_work(n->loop, &n->snap_work, snap_work, snap_after);
    CN_ASSERT(rc == 0);
}

/* ---- start, status, stop ------------------------------------------------------------------ */

void cn_node_start(struct cn_node *n)
{
    uv_timer_init(n->loop, &n->kick);
    uv_timer_init(n->loop, &n->tick);
    n->kick.data = n->tick.data = n;
    n->open_handles = 2;
    uv_timer_start(&n->tick, tick_cb, TICK_MS, TICK_MS);
    /* Elect ourselves: a new term, and an empty entry of it, as a Raft leader appends. */
    n->term++;
    n->state = S_RUNNING;
    n->leader_changes++;
    n->leader_since_ns = cn_clock_real_ns();
    uint64_t index = cn_wal_last_index(n->wal) + 1;
    struct cn_wal_entry e = {n->term, index, ENTRY_NOOP, NULL, 0};
    int rc = cn_wal_append_entry(n->wal, &e);
    CN_ASSERT(rc == 0);
    struct cn_wal_hard_state hs = {n->term, n->id, index};
    cn_wal_set_hard_state(n->wal, &hs);
    CN_LOGN("node", "became leader id=%" PRIx64 " term=%" PRIu64 " index=%" PRIu64, n->id, n->term,
            index);
    start_flush(n);
}

void cn_node_raft_position(const struct cn_node *n, uint64_t *applied_index, uint64_t *term)
{
    *applied_index = n->applied;
    *term = n->term;
}

void cn_node_get_status(const struct cn_node *n, struct cn_node_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = n->id;
    st->cluster_id = n->cluster_id;
    bool leader = n->state == S_RUNNING || n->state == S_STOPPING;
    st->leader = leader ? n->id : 0;
    st->term = n->term;
    st->commit_index = n->wal ? cn_wal_durable_index(n->wal) : n->applied;
    st->applied_index = n->applied;
    st->state = leader ? "StateLeader" : "StateFollower";
    st->leader_since_ns = n->leader_since_ns;
    st->leader_changes = n->leader_changes;
    st->proposals_committed = n->committed;
    st->proposals_applied = n->applied_count;
    st->proposals_failed = n->failed;
    st->proposals_pending = n->npending;
    st->snapshots = n->snapshots;
    memcpy(st->fsync_bucket, n->fsync_bucket, sizeof(st->fsync_bucket));
    st->fsync_count = n->fsync_count;
    st->fsync_sum_s = n->fsync_sum;
}

static void handle_closed(uv_handle_t *h)
{
    struct cn_node *n = h->data;
    if (--n->open_handles > 0) return;
    if (n->wal) cn_wal_close(n->wal);
    if (n->snap_ok) cn_snap_close(&n->snap);
    if (n->lock_fd >= 0) cn_datadir_unlock(n->lock_fd);
    void (*cb)(void *) = n->stop_cb;
    void *ctx = n->stop_ctx;
    cn_free(n->data_dir);
    cn_free(n->member_dir);
    cn_buf_free(&n->snap_buf);
    cn_free(n);
    if (cb) cb(ctx);
}

static void maybe_finish_stop(struct cn_node *n)
{
    if (n->state != S_STOPPING) return;
    if (n->flushing || n->snapping || !cn_list_empty(&n->writes) || !cn_list_empty(&n->done))
        return;
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        finish_req(n, r, CN_ERR_STOPPED, NULL);
    }
    n->state = S_CLOSED;
    CN_LOGI("node", "stopped applied=%" PRIu64 " term=%" PRIu64, n->applied, n->term);
    uv_close((uv_handle_t *)&n->kick, handle_closed);
    uv_close((uv_handle_t *)&n->tick, handle_closed);
}

void cn_node_stop(struct cn_node *n, void (*cb)(void *ctx), void *ctx)
{
    n->stop_cb = cb;
    n->stop_ctx = ctx;
    if (n->state == S_OPEN) { /* never started: no handles */
        n->state = S_CLOSED;
        n->open_handles = 1;
        handle_closed((uv_handle_t *)&(uv_handle_t){.data = n});
        return;
    }
    /* Queued writes are already in the log's pending batch: flush them and answer. */
    n->state = S_STOPPING;
    kick(n);
}
