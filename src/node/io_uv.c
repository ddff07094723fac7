/* io_uv: struct cn_node_io on libuv. The log (src/wal) is staged on the loop and flushed on the
 * thread pool with group commit; snapshot files (save, load, purge, and the install of a
 * received one) go through one lane of pool jobs so that no two of them touch the snapshot
 * directory at once; old log segments are deleted by a pool job of their own, and the next
 * preallocated segment is made by another, ahead of need; messages go through the peer
 * transport (src/peer); ticks and deferred calls are libuv timers. Disk latencies are measured
 * on the workers and reported with cn_node_on_disk_timing.
 *
 * Threads: a pool job touches only what its own fields name (the flushing batch and the active
 * segment through cn_wal_flush_run, the spare through cn_wal_prepare_run, the snapshot
 * directory, a cn_wal_release); the hand-off of uv_queue_work orders the memory, so no locks are
 * needed. Everything else is the loop's. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "node_int.h"
#include "peer/peer.h"
#include "wal/wal.h"

struct io_uv {
    struct cn_node_io io;
    uv_loop_t *loop;
    struct cn_wal *wal;
    struct cn_snap snap;
    int lock_fd;
    char *member_dir;
    bool fresh, started, discard;
    unsigned max_snapshots;
    uint64_t id, cluster_id;
    size_t nlisten;
    char **listen_hosts;
    uint16_t *listen_ports;
    struct cn_peer *peer;
    uv_timer_t kick, tick;
    int open_handles;
    /* the flush job: entries and hard state, after the install of a received snapshot */
    uv_work_t flush_work;
    bool flushing, flush_has_wal, flush_final;
    int flush_rc;
    int64_t flush_ns;
    int64_t fsync_ns;   /* the flush's WAL fdatasync, -1 if it did not run */
    int64_t install_ns; /* its snapshot save, -1 if none ran */
    const struct cn_raft_snapshot *install;
    bool install_waiting; /* for the snapshot lane */
    /* the snapshot lane */
    uv_work_t snap_work;
    bool snap_busy;
    bool save_waiting, load_waiting;
    int snap_op;               /* SNAP_SAVE or SNAP_LOAD */
    struct cn_node_snap *save; /* the node's, borrowed until snap_after */
    int snap_rc;
    int64_t save_ns;
    struct cn_buf load_buf;
    uint64_t load_term, load_index;
    /* releasing old segments */
    uv_work_t rel_work;
    bool releasing;
    uint64_t release_wanted;
    struct cn_wal_release rel;
    int rel_rc;
    /* preparing the next log segment */
    uv_work_t prep_work;
    bool preparing;
    int prep_rc;
    uint64_t prealloc_logged; /* failures already reported */
    /* stop */
    bool closing;
};

enum { SNAP_SAVE = 1, SNAP_LOAD = 2 };

static struct io_uv *of(struct cn_node_io *io)
{
    return (struct io_uv *)io;
}

static int64_t now_ns(struct cn_node_io *io)
{
    (void)io;
    return cn_clock_mono_ns();
}

static int64_t wall_ns(struct cn_node_io *io)
{
    (void)io;
    return cn_clock_real_ns();
}

/* ---- timers ------------------------------------------------------------------------------- */

static void kick_cb(uv_timer_t *t)
{
    struct io_uv *u = t->data;
    cn_node_on_deferred(u->io.node);
}

static void defer(struct cn_node_io *io)
{
    struct io_uv *u = of(io);
    if (!u->started || u->closing) return;
    uv_timer_start(&u->kick, kick_cb, 0, 0);
}

static void tick_cb(uv_timer_t *t)
{
    struct io_uv *u = t->data;
    cn_node_on_tick(u->io.node);
}

/* ---- the peer transport ------------------------------------------------------------------- */

static void on_peer_frame(void *ctx, uint64_t from, uint8_t kind, const void *p, size_t len)
{
    struct io_uv *u = ctx;
    if (!u->closing) cn_node_on_receive(u->io.node, from, kind, p, len);
}

static void on_peer_closed(void *ctx, uint64_t from)
{
    struct io_uv *u = ctx;
    if (!u->closing) cn_node_on_peer_closed(u->io.node, from);
}

static bool peer_is_removed(void *ctx, uint64_t id)
{
    struct io_uv *u = ctx;
    return cn_node_peer_is_removed(u->io.node, id);
}

static void on_told_removed(void *ctx, uint64_t by)
{
    struct io_uv *u = ctx;
    if (!u->closing) cn_node_on_told_removed(u->io.node, by);
}

static int on_peer_http(void *ctx, const char *path, struct cn_buf *body)
{
    struct io_uv *u = ctx;
    return cn_node_peer_http_get(u->io.node, path, body);
}

static int send_payload(struct cn_node_io *io, uint64_t to, uint8_t kind, const void *p, size_t len)
{
    struct io_uv *u = of(io);
    if (u->peer == NULL) return -ENOTCONN;
    return cn_peer_send(u->peer, to, kind, p, len);
}

static void set_peer(struct cn_node_io *io, uint64_t id, const char *url)
{
    struct io_uv *u = of(io);
    if (u->peer == NULL) return;
    cn_peer_set_addr(u->peer, id, url);
    if (url == NULL) cn_peer_disconnect(u->peer, id);
}

static void note_prealloc(struct io_uv *u);
static void maybe_prepare(struct io_uv *u);

static int start(struct cn_node_io *io, unsigned interval_ms, char *errmsg, size_t errlen)
{
    struct io_uv *u = of(io);
    u->peer = cn_peer_new(u->loop, u->cluster_id, u->id,
                          &(struct cn_peer_callbacks){on_peer_frame, on_peer_http, on_peer_closed,
                                                      peer_is_removed, on_told_removed},
                          u);
    for (size_t i = 0; i < u->nlisten; i++) {
        int rc = cn_peer_listen(u->peer, u->listen_hosts[i], u->listen_ports[i], errmsg, errlen);
        if (rc != 0) {
            u->discard = u->fresh;
            return rc;
        }
    }
    uv_timer_init(u->loop, &u->kick);
    uv_timer_init(u->loop, &u->tick);
    u->kick.data = u->tick.data = u;
    u->open_handles = 2;
    u->started = true;
    uv_timer_start(&u->tick, tick_cb, interval_ms, interval_ms);
    note_prealloc(u); /* the first segment's, if open could not preallocate it */
    maybe_prepare(u);
    return 0;
}

/* ---- the snapshot lane -------------------------------------------------------------------- */

static void start_flush(struct io_uv *u);
static void lane_next(struct io_uv *u);
static void maybe_closed(struct io_uv *u);

static void snap_work(uv_work_t *w)
{
    struct io_uv *u = w->data;
    if (u->snap_op == SNAP_SAVE) {
        /* the state machine's frozen state is encoded here, off the loop */
        cn_node_snap_encode(u->save);
        int64_t t0 = cn_clock_mono_ns();
        u->snap_rc =
            cn_snap_save(&u->snap, u->save->term, u->save->index, u->save->buf.p, u->save->buf.len);
        u->save_ns = cn_clock_mono_ns() - t0;
        if (u->snap_rc == 0 && u->max_snapshots) {
            int rc = cn_snap_purge(&u->snap, u->max_snapshots);
            if (rc < 0)
                u->snap_rc = 0; /* the new snapshot stands; the purge is retried next time */
        }
    } else {
        u->snap_rc = cn_snap_load(&u->snap, &u->load_buf, &u->load_term, &u->load_index);
    }
}

static void snap_after(uv_work_t *w, int status)
{
    struct io_uv *u = w->data;
    u->snap_busy = false;
    int rc = status != 0 ? status : u->snap_rc;
    if (u->snap_op == SNAP_SAVE) {
        if (rc != 0)
            CN_LOGE("node", "snapshot save failed index=%" PRIu64 " err=\"%s\" detail=\"%s\"",
                    u->save->index, cn_strerror(rc), u->snap.errmsg);
        else
            cn_node_on_disk_timing(u->io.node, CN_NODE_DISK_SNAP_SAVE, u->save_ns);
        cn_node_on_snapshot_saved(u->io.node, rc);
    } else {
        cn_node_on_snapshot_loaded(u->io.node, rc, u->load_term, u->load_index, u->load_buf.p,
                                   u->load_buf.len);
        cn_buf_free(&u->load_buf);
    }
    lane_next(u);
    maybe_closed(u);
}

static void lane_start(struct io_uv *u, int op)
{
    u->snap_busy = true;
    u->snap_op = op;
    u->snap_work.data = u;
    int rc = uv_queue_work(u->loop, &u->snap_work, snap_work, snap_after);
    CN_ASSERT(rc == 0);
}

/* The lane is free: whoever waited goes, an install (it holds up the log) first. */
static void lane_next(struct io_uv *u)
{
    if (u->snap_busy || u->flushing) return;
    if (u->install_waiting) {
        u->install_waiting = false;
        start_flush(u);
    } else if (u->save_waiting) {
        u->save_waiting = false;
        lane_start(u, SNAP_SAVE);
    } else if (u->load_waiting) {
        u->load_waiting = false;
        lane_start(u, SNAP_LOAD);
    }
}

static bool lane_busy(const struct io_uv *u)
{
    return u->snap_busy || (u->flushing && u->install != NULL) || u->install_waiting;
}

static void save_snapshot(struct cn_node_io *io, struct cn_node_snap *snap)
{
    struct io_uv *u = of(io);
    u->save = snap;
    if (lane_busy(u))
        u->save_waiting = true;
    else
        lane_start(u, SNAP_SAVE);
}

static void load_snapshot(struct cn_node_io *io)
{
    struct io_uv *u = of(io);
    cn_buf_init(&u->load_buf);
    if (lane_busy(u))
        u->load_waiting = true;
    else
        lane_start(u, SNAP_LOAD);
}

/* ---- the log ------------------------------------------------------------------------------ */

static void flush_work(uv_work_t *w)
{
    struct io_uv *u = w->data;
    int64_t t0 = cn_clock_mono_ns();
    int rc = 0;
    u->fsync_ns = u->install_ns = -1;
    if (u->install) {
        const struct cn_raft_snapshot *s = u->install;
        rc = cn_snap_save(&u->snap, s->meta.term, s->meta.index, s->data, s->len);
        if (rc == 0) u->install_ns = cn_clock_mono_ns() - t0;
    }
    if (rc == 0 && u->flush_has_wal) {
        rc = cn_wal_flush_run(u->wal);
        u->fsync_ns = cn_wal_last_fsync_ns(u->wal);
    }
    u->flush_rc = rc;
    u->flush_ns = cn_clock_mono_ns() - t0;
}

static void close_handles(struct io_uv *u);

static void flush_after(uv_work_t *w, int status)
{
    struct io_uv *u = w->data;
    u->flushing = false;
    int rc = status != 0 ? status : u->flush_rc;
    /* a batch that never ran (the install failed) comes back as failed: the log rolls back */
    if (u->flush_has_wal) cn_wal_flush_end(u->wal, rc);
    if (rc != 0 && u->install)
        CN_LOGE("node", "saving the snapshot received failed err=\"%s\" detail=\"%s\"",
                cn_strerror(rc), u->snap.errmsg);
    else if (rc != 0)
        CN_LOGD("node", "log flush failed err=\"%s\" detail=\"%s\"", cn_strerror(rc),
                cn_wal_errmsg(u->wal));
    u->install = NULL;
    if (u->flush_final) {
        /* the last hard state of a stopping member: nothing waits for it but the log line */
        if (rc != 0)
            CN_LOGE("node", "the final log flush failed err=\"%s\" detail=\"%s\"", cn_strerror(rc),
                    cn_wal_errmsg(u->wal));
        close_handles(u);
        return;
    }
    lane_next(u);
    note_prealloc(u);
    maybe_prepare(u); /* after a cut: the next segment */
    cn_node_on_disk_timing(u->io.node, CN_NODE_DISK_WAL_FSYNC, u->fsync_ns);
    cn_node_on_disk_timing(u->io.node, CN_NODE_DISK_SNAP_SAVE, u->install_ns);
    cn_node_on_persisted(u->io.node, rc, u->flush_ns);
}

static void start_flush(struct io_uv *u)
{
    u->flushing = true;
    u->flush_work.data = u;
    int rc = uv_queue_work(u->loop, &u->flush_work, flush_work, flush_after);
    CN_ASSERT(rc == 0);
}

static bool persist(struct cn_node_io *io, const struct cn_node_batch *b)
{
    struct io_uv *u = of(io);
    int rc = 0;
    /* The log writes the payloads from Raft's entries, which stay unchanged until the node
     * advances, after on_persisted (node_io.h contract 3, raft.h's payload rules), so after the
     * flush_end of this batch: no copy. (A batch that needs no flush has no entries.) */
    for (size_t i = 0; i < b->n_entries && rc == 0; i++) {
        const struct cn_raft_entry *e = &b->entries[i];
        struct cn_wal_entry we = {e->term, e->index,
                                  e->type == CN_RAFT_ENTRY_CONF ? CN_NODE__WAL_CONF
                                                                : CN_NODE__WAL_NORMAL,
                                  e->data, e->len};
        rc = cn_wal_append_entry_borrowed(u->wal, &we);
    }
    CN_ASSERT(rc == 0); /* raft bounds entries far below the WAL's record limit */
    if (b->has_hard_state) {
        struct cn_wal_hard_state hs = {b->hard_state.term, b->hard_state.vote,
                                       b->hard_state.commit};
        cn_wal_set_hard_state(u->wal, &hs);
    }
    u->flush_has_wal = b->must_sync && cn_wal_flush_begin(u->wal);
    CN_ASSERT(b->n_entries == 0 || u->flush_has_wal); /* the entries' flush starts now */
    if (!u->flush_has_wal && b->snapshot == NULL) return false;
    u->install = b->snapshot;
    u->flush_final = false;
    if (u->install && u->snap_busy)
        u->install_waiting = true; /* after the snapshot job in progress */
    else
        start_flush(u);
    return true;
}

static void rel_work(uv_work_t *w)
{
    struct io_uv *u = w->data;
    u->rel_rc = cn_wal_release_run(&u->rel);
}

static void rel_after(uv_work_t *w, int status)
{
    struct io_uv *u = w->data;
    u->releasing = false;
    int rc = status != 0 ? status : u->rel_rc;
    if (rc < 0)
        CN_LOGW("node", "releasing old log segments failed err=\"%s\" detail=\"%s\"",
                cn_strerror(rc), u->rel.errmsg);
    cn_wal_release_free(&u->rel);
    if (u->release_wanted && !u->closing) {
        uint64_t index = u->release_wanted;
        u->release_wanted = 0;
        u->io.release_log(&u->io, index);
    }
    maybe_closed(u);
}

static void release_log(struct cn_node_io *io, uint64_t index)
{
    struct io_uv *u = of(io);
    if (u->releasing) {
        if (index > u->release_wanted) u->release_wanted = index;
        return;
    }
    if (cn_wal_release_begin(u->wal, index, &u->rel) == 0) {
        cn_wal_release_free(&u->rel);
        return;
    }
    u->releasing = true;
    u->rel_work.data = u;
    int rc = uv_queue_work(u->loop, &u->rel_work, rel_work, rel_after);
    CN_ASSERT(rc == 0);
}

/* ---- preallocating the next segment ------------------------------------------------------ */

/* Preallocation failures cost speed, not data (the log grows its segments instead): the first is
 * worth a warning, the rest a debug line. */
static void note_prealloc(struct io_uv *u)
{
    const char *detail = "";
    uint64_t n = cn_wal_prealloc_failures(u->wal, &detail);
    if (n == u->prealloc_logged) return;
    if (u->prealloc_logged == 0)
        CN_LOGW("node",
                "cannot preallocate write-ahead log segments: they grow as written, with slower "
                "fsyncs detail=\"%s\"",
                detail);
    else
        CN_LOGD("node",
                "preallocating a log segment failed again failures=%" PRIu64 " detail=\"%s\"", n,
                detail);
    u->prealloc_logged = n;
}

static void prep_work(uv_work_t *w)
{
    struct io_uv *u = w->data;
    u->prep_rc = cn_wal_prepare_run(u->wal);
}

static void prep_after(uv_work_t *w, int status)
{
    struct io_uv *u = w->data;
    u->preparing = false;
    cn_wal_prepare_end(u->wal, status != 0 ? status : u->prep_rc);
    note_prealloc(u);
    maybe_closed(u);
}

static void maybe_prepare(struct io_uv *u)
{
    if (u->preparing || u->closing || !cn_wal_prepare_begin(u->wal)) return;
    u->preparing = true;
    u->prep_work.data = u;
    int rc = uv_queue_work(u->loop, &u->prep_work, prep_work, prep_after);
    CN_ASSERT(rc == 0);
}

/* ---- stop --------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void io_free(struct cn_node_io *io)
{
    struct io_uv *u = of(io);
    if (u->wal) cn_wal_close(u->wal);
    cn_snap_close(&u->snap);
    if (u->lock_fd >= 0) cn_datadir_unlock(u->lock_fd);
    if (u->discard && u->member_dir) {
        /* a first start that failed leaves no member state: a retry starts fresh */
        if (nftw(u->member_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            CN_LOGW("node", "cannot remove %s after a failed first start", u->member_dir);
    }
    for (size_t i = 0; i < u->nlisten; i++)
        cn_free(u->listen_hosts[i]);
    cn_free(u->listen_hosts);
    cn_free(u->listen_ports);
    cn_buf_free(&u->load_buf);
    cn_free(u->member_dir);
    cn_free(u);
}

static void handle_done(struct io_uv *u)
{
    if (--u->open_handles > 0) return;
    cn_node_on_closed(u->io.node); /* frees u through io_free */
}

static void handle_closed(uv_handle_t *h)
{
    handle_done(h->data);
}

static void peer_closed(void *ctx)
{
    struct io_uv *u = ctx;
    u->peer = NULL;
    handle_done(u);
}

static void close_handles(struct io_uv *u)
{
    if (!u->started) {
        u->open_handles = 1;
        if (u->peer) {
            cn_peer_close(u->peer, peer_closed, u); /* a listener failed: the transport exists */
            return;
        }
        handle_done(u);
        return;
    }
    u->open_handles = 3; /* the timers and the transport */
    uv_close((uv_handle_t *)&u->kick, handle_closed);
    uv_close((uv_handle_t *)&u->tick, handle_closed);
    cn_peer_close(u->peer, peer_closed, u);
}

/* Once no job runs: the final flush, then the handles. */
static void maybe_closed(struct io_uv *u)
{
    if (!u->closing || u->flushing || u->snap_busy || u->releasing || u->preparing ||
        u->flush_final)
        return;
    u->flush_final = true; /* the hard state set last (a commit index) goes to disk */
    u->install = NULL;
    u->flush_has_wal = cn_wal_flush_begin(u->wal);
    if (u->flush_has_wal)
        start_flush(u);
    else
        close_handles(u);
}

static void io_close(struct cn_node_io *io)
{
    struct io_uv *u = of(io);
    u->closing = true;
    u->save_waiting = u->load_waiting = u->install_waiting = false;
    if (u->started) uv_timer_stop(&u->tick);
    maybe_closed(u);
}

struct cn_node_io *cn_node__io_uv_new(uv_loop_t *loop, const struct cn_node_options *opt,
                                      struct cn_wal *wal, struct cn_snap *snap, int lock_fd,
                                      const char *member_dir, bool fresh)
{
    struct io_uv *u = CN_NEW(struct io_uv);
    u->io.data = u;
    u->io.start = start;
    u->io.now_ns = now_ns;
    u->io.wall_ns = wall_ns;
    u->io.defer = defer;
    u->io.persist = persist;
    u->io.release_log = release_log;
    u->io.save_snapshot = save_snapshot;
    u->io.load_snapshot = load_snapshot;
    u->io.send = send_payload;
    u->io.set_peer = set_peer;
    u->io.close = io_close;
    u->io.free = io_free;
    u->loop = loop;
    u->wal = wal;
    u->snap = *snap;
    u->lock_fd = lock_fd;
    u->member_dir = cn_xstrdup(member_dir);
    u->fresh = fresh;
    u->max_snapshots = opt->max_snapshots;
    u->id = opt->member_id;
    u->cluster_id = opt->cluster_id;
    u->nlisten = opt->nlisten;
    u->listen_hosts = cn_xcalloc(opt->nlisten + 1, sizeof(char *));
    u->listen_ports = cn_xcalloc(opt->nlisten + 1, sizeof(uint16_t));
    for (size_t i = 0; i < opt->nlisten; i++) {
        u->listen_hosts[i] = cn_xstrdup(opt->listen_hosts[i]);
        u->listen_ports[i] = opt->listen_ports[i];
    }
    cn_buf_init(&u->load_buf);
    return &u->io;
}
