/* io_sim: a member's struct cn_node_io in the simulated world. Time is the world's virtual
 * clock; the disk is struct sim_disk, which survives crashes, written only when a staged batch's
 * virtual fsync completes (a random delay, now and then a long one); the network is the world's,
 * which drops, delays, reorders and (for Raft messages, which tolerate it, unlike TCP's
 * forwarded proposals) duplicates what is sent, and honours the partitions of the moment. */
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "peer/peer.h"
#include "sim_int.h"

struct sim_io {
    struct cn_node_io io;
    struct sim *s;
    int member;
};

static struct sim_io *of(struct cn_node_io *io)
{
    return (struct sim_io *)io;
}

static struct sim_member *member_of(struct cn_node_io *io)
{
    struct sim_io *x = of(io);
    return &x->s->m[x->member];
}

static int start(struct cn_node_io *io, unsigned interval_ms, char *errmsg, size_t errlen)
{
    (void)io;
    (void)errmsg;
    (void)errlen;
    CN_ASSERT(interval_ms == SIM_TICK_MS); /* the world ticks every member at this pace */
    return 0;
}

static int64_t now_ns(struct cn_node_io *io)
{
    return (int64_t)of(io)->s->now * CN_NS_PER_MS;
}

static void defer(struct cn_node_io *io)
{
    struct sim_member *m = member_of(io);
    if (m->defer_pending) return;
    m->defer_pending = true;
    sim_push(of(io)->s, 0, EV_DEFER, of(io)->member, NULL);
}

/* ---- the disk ----------------------------------------------------------------------------- */

static uint64_t entry_chain(uint64_t prev, const struct cn_raft_entry *e)
{
    uint64_t h = sim_hash(prev ^ 0x5bd1e995, &e->term, sizeof(e->term));
    h = sim_hash(h, &e->index, sizeof(e->index));
    h = sim_hash(h, &e->type, 1);
    return sim_hash(h, e->data, e->len);
}

static uint64_t chain_before(struct sim *s, const struct sim_disk *d, uint64_t index)
{
    if (index == d->snap.index + 1) return check_chain_at(s->check, d->snap.index);
    return d->chain[index - d->snap.index - 2];
}

static void disk_truncate(struct sim_disk *d, size_t n)
{
    for (size_t i = n; i < d->n; i++)
        cn_free(d->ents[i].data);
    d->n = n;
}

void sim_disk_append(struct sim *s, struct sim_member *m, const struct cn_raft_entry *e)
{
    struct sim_disk *d = &m->disk;
    uint64_t first = d->snap.index + 1;
    if (e->index < first || e->index > first + d->n) {
        sim_fail(s, "raft handed out an entry that does not follow the persisted log");
        return;
    }
    disk_truncate(d, (size_t)(e->index - first));
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->ents = cn_xrealloc(d->ents, d->cap * sizeof(*d->ents));
        d->chain = cn_xrealloc(d->chain, d->cap * sizeof(*d->chain));
    }
    d->ents[d->n] = *e;
    d->ents[d->n].data = e->len ? cn_xmemdup(e->data, e->len) : NULL;
    d->chain[d->n] = entry_chain(chain_before(s, d, e->index), e);
    char why[256];
    if (!check_persist(s->check, m->id, e, d->chain[d->n], why, sizeof(why))) sim_fail(s, why);
    d->n++;
}

/* A snapshot at index replaces the log up to index: all of it for one received from the leader,
 * the entries up to index for the member's own (which it applied, so they are on its disk). */
static void disk_snapshot(struct sim *s, struct sim_disk *d, uint64_t term, uint64_t index,
                          const void *p, size_t len, bool received)
{
    if (received) {
        disk_truncate(d, 0);
    } else {
        if (index < d->snap.index || index > d->snap.index + d->n) {
            sim_fail(s, "a snapshot saved at an index the disk does not hold");
            return;
        }
        size_t drop = (size_t)(index - d->snap.index);
        for (size_t i = 0; i < drop; i++)
            cn_free(d->ents[i].data);
        memmove(d->ents, d->ents + drop, (d->n - drop) * sizeof(*d->ents));
        memmove(d->chain, d->chain + drop, (d->n - drop) * sizeof(*d->chain));
        d->n -= drop;
    }
    d->snap.index = index;
    d->snap.term = term;
    cn_buf_reset(&d->snap_data);
    cn_buf_append(&d->snap_data, p, len);
}

void sim_io_snapshot_saved(struct sim *s, int i, const struct sim_ev *e)
{
    struct sim_member *m = &s->m[i];
    /* a member that restarted meanwhile saved nothing: its node asked in another life */
    if (e->index > m->disk.snap.index)
        disk_snapshot(s, &m->disk, e->term, e->index, e->msg.p, e->msg.len, false);
    if (!s->failed) cn_node_on_snapshot_saved(m->node, 0);
}

void sim_io_snapshot_loaded(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    const struct sim_disk *d = &m->disk;
    cn_node_on_snapshot_loaded(m->node, d->snap_data.len ? 0 : CN_ERR_NOT_FOUND, d->snap.term,
                               d->snap.index, d->snap_data.p, d->snap_data.len);
}

void sim_disk_free(struct sim_disk *d)
{
    disk_truncate(d, 0);
    cn_free(d->ents);
    cn_free(d->chain);
    cn_buf_free(&d->snap_data);
}

void sim_staged_reset(struct sim_staged *st)
{
    st->n = 0; /* the entries were borrowed */
    st->has_snap = false;
    st->has_hs = false;
    cn_buf_reset(&st->snap_data);
}

static void stage(struct sim_staged *st, const struct cn_node_batch *b)
{
    if (b->snapshot) {
        /* a snapshot replaces whatever was staged before it */
        sim_staged_reset(st);
        st->has_snap = true;
        st->snap_meta = b->snapshot->meta;
        cn_buf_append(&st->snap_data, b->snapshot->data, b->snapshot->len);
    }
    for (size_t i = 0; i < b->n_entries; i++) {
        if (st->n == st->cap) {
            st->cap = st->cap ? st->cap * 2 : 16;
            st->ents = cn_xrealloc(st->ents, st->cap * sizeof(*st->ents));
        }
        /* Borrowed, not copied, as the WAL does (cn_wal_append_entry_borrowed): Raft keeps the
         * payloads unchanged until the node advances, after the completion (node_io.h contract
         * 3). They are read only when the virtual fsync completes or the member crashes, so an
         * ASan run catches any payload freed while its write is in flight. */
        st->ents[st->n++] = b->entries[i];
    }
    if (b->has_hard_state) {
        st->has_hs = true;
        st->hs = b->hard_state;
    }
}

/* Writes the first n_ents staged entries (and the snapshot, and the hard state when keep_hs) to
 * the disk. */
static void write_staged(struct sim *s, struct sim_member *m, bool snap, size_t n_ents,
                         bool keep_hs)
{
    struct sim_staged *st = &m->staged;
    if (snap && st->has_snap) {
        if (st->snap_meta.index > check_committed_len(s->check))
            sim_fail(s, "snapshot past the committed sequence");
        disk_snapshot(s, &m->disk, st->snap_meta.term, st->snap_meta.index, st->snap_data.p,
                      st->snap_data.len, true);
    }
    for (size_t k = 0; k < n_ents && !s->failed; k++)
        sim_disk_append(s, m, &st->ents[k]);
    if (keep_hs && st->has_hs) m->disk.hs = st->hs;
    sim_staged_reset(st);
}

static bool persist(struct cn_node_io *io, const struct cn_node_batch *b)
{
    struct sim *s = of(io)->s;
    struct sim_member *m = member_of(io);
    stage(&m->staged, b);
    if (!b->must_sync && b->snapshot == NULL) return false; /* goes with the next write */
    m->fsync_pending = true;
    /* fsync latency: usually a few ms, sometimes a spike */
    uint64_t delay = (!s->faults_off && sim_chance(s, 10)) ? 20 + sim_rndn(s, 60) : sim_rndn(s, 4);
    sim_push(s, delay, EV_FSYNC, of(io)->member, NULL);
    return true;
}

void sim_io_fsync(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    m->fsync_pending = false;
    bool snap = m->staged.has_snap;
    uint64_t snap_index = m->staged.snap_meta.index;
    write_staged(s, m, true, m->staged.n, true);
    if (s->failed) return;
    if (snap) {
        /* the node loads it into its state machine when it goes on: applied moves there */
        m->applied = snap_index;
        m->applied_chain = check_chain_at(s->check, snap_index);
        s->n_snap_installs++;
        sim_trace(s, "member %llu installed snapshot %llu", (unsigned long long)m->id,
                  (unsigned long long)snap_index);
    }
    cn_node_on_persisted(m->node, 0, 0);
}

void sim_io_crash(struct sim *s, int i)
{
    struct sim_member *m = &s->m[i];
    if (!m->fsync_pending) {
        sim_staged_reset(&m->staged); /* records that were never to be synced on their own */
        return;
    }
    /* a torn write: a random prefix of the staged records reached the disk */
    struct sim_staged *st = &m->staged;
    bool go = !st->has_snap || sim_chance(s, 50);
    size_t keep = go ? (size_t)sim_rndn(s, st->n + 1) : 0;
    bool hs = go && keep == st->n && st->has_hs && sim_chance(s, 50);
    write_staged(s, m, go, keep, hs);
    m->fsync_pending = false;
}

static void release_log(struct cn_node_io *io, uint64_t index)
{
    /* the disk holds entries after its snapshot only, so there is nothing left to delete; but
     * the log may only go where a durable snapshot covers it */
    struct sim_member *m = member_of(io);
    if (index > m->disk.snap.index)
        sim_fail(of(io)->s, "the node released log entries no saved snapshot covers");
}

static void save_snapshot(struct cn_node_io *io, struct cn_node_snap *snap)
{
    struct sim *s = of(io)->s;
    cn_node_snap_encode(snap);
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_append(&b, snap->buf.p, snap->buf.len);
    struct sim_ev *e = sim_push(s, 1 + sim_rndn(s, 5), EV_SNAP_SAVED, of(io)->member, &b);
    e->term = snap->term;
    e->index = snap->index;
}

static void load_snapshot(struct cn_node_io *io)
{
    struct sim *s = of(io)->s;
    sim_push(s, 1 + sim_rndn(s, 3), EV_SNAP_LOADED, of(io)->member, NULL);
}

/* ---- the network -------------------------------------------------------------------------- */

static int send_payload(struct cn_node_io *io, uint64_t to, uint8_t kind, const void *p, size_t len)
{
    struct sim *s = of(io)->s;
    struct sim_member *m = member_of(io);
    int ti = (int)to - 1;
    if (ti < 0 || ti >= s->n) return 0; /* not started: nobody listens there */
    s->n_msgs++;
    struct sim_member *dst = &s->m[ti];
    if (dst->up && !s->cut[m->id - 1][ti] && cn_node_peer_is_removed(dst->node, m->id)) {
        /* as the peer transport does: a removed member's link is refused with "removed" */
        sim_trace(s, "%llu refuses removed %llu", (unsigned long long)dst->id,
                  (unsigned long long)m->id);
        struct sim_ev *e =
            sim_push(s, 1 + sim_rndn(s, s->delay_max), EV_TOLD_REMOVED, of(io)->member, NULL);
        e->from = dst->id;
        return 0;
    }
    if (s->cut[m->id - 1][ti] || (!s->faults_off && sim_chance(s, s->drop_pct))) {
        sim_trace(s, "drop %llu->%d kind=%u", (unsigned long long)m->id, ti + 1, kind);
        return 0;
    }
    /* a TCP stream never duplicates: only Raft's own messages are sent twice, as a retry can */
    int copies = (kind == CN_PEER_KIND_RAFT && !s->faults_off && sim_chance(s, s->dup_pct)) ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        struct cn_buf b = CN_BUF_INIT;
        cn_buf_append(&b, p, len);
        uint64_t delay = 1 + sim_rndn(s, s->delay_max);
        if (!s->faults_off && sim_chance(s, s->long_delay_pct)) delay += sim_rndn(s, 300);
        struct sim_ev *e = sim_push(s, delay, EV_DELIVER, ti, &b);
        e->from = m->id;
        e->kind = kind;
    }
    return 0;
}

static void set_peer(struct cn_node_io *io, uint64_t id, const char *url)
{
    (void)io; /* the world routes by id */
    (void)id;
    (void)url;
}

static void io_close(struct cn_node_io *io)
{
    (void)io;
    CN_ASSERT(!"members of the simulation crash, they never stop");
}

static void io_free(struct cn_node_io *io)
{
    cn_free(of(io));
}

struct sim_io *sim_io_new(struct sim *s, int member)
{
    struct sim_io *x = CN_NEW(struct sim_io);
    x->s = s;
    x->member = member;
    x->io = (struct cn_node_io){
        .data = x,
        .start = start,
        .now_ns = now_ns,
        .wall_ns = now_ns,
        .defer = defer,
        .persist = persist,
        .release_log = release_log,
        .save_snapshot = save_snapshot,
        .load_snapshot = load_snapshot,
        .send = send_payload,
        .set_peer = set_peer,
        .close = io_close,
        .free = io_free,
    };
    return x;
}
