/* Unit tests for src/node: the envelope codecs byte for byte, and the node core on a state
 * machine that is not the v2 store (a running sum) and an io of the test's own, which proves the
 * seams: a second state machine and a second io plug in without touching the node. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "node/node_int.h"
#include "peer/peer.h"
#include "wal/wal.h"

/* ---- envelope ----------------------------------------------------------------------------- */

static void envelope_bytes(void **state)
{
    (void)state;
    struct cn_buf b = CN_BUF_INIT;
    cn_node__env_header(&b, 0x1234, 300);
    cn_buf_append(&b, "cmd", 3);
    static const uint8_t want[] = {0x01, 0xb4, 0x24, 0xac, 0x02, 'c', 'm', 'd'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    uint64_t origin, seq;
    const uint8_t *rest;
    size_t rest_len;
    assert_true(cn_node__env_decode(b.p, b.len, &origin, &seq, &rest, &rest_len));
    assert_true(origin == 0x1234 && seq == 300);
    assert_int_equal(rest_len, 3);
    assert_memory_equal(rest, "cmd", 3);
    assert_false(cn_node__env_decode(b.p, 3, &origin, &seq, &rest, &rest_len)); /* cut short */
    b.p[0] = 2; /* another version */
    assert_false(cn_node__env_decode(b.p, b.len, &origin, &seq, &rest, &rest_len));
    cn_buf_free(&b);
}

static void prop_frames(void **state)
{
    (void)state;
    struct cn_buf b = CN_BUF_INIT;
    cn_node__prop_encode(&b, 7, CN_NODE__K_CONF);
    cn_buf_append(&b, "xy", 2);
    uint64_t seq;
    uint8_t kind;
    const uint8_t *body;
    size_t body_len;
    assert_true(cn_node__prop_decode(b.p, b.len, &seq, &kind, &body, &body_len));
    assert_true(seq == 7 && kind == CN_NODE__K_CONF && body_len == 2 && body[0] == 'x');
    b.p[1] = 9; /* no such kind */
    assert_false(cn_node__prop_decode(b.p, b.len, &seq, &kind, &body, &body_len));
    cn_buf_reset(&b);
    cn_node__prop_fail_encode(&b, 1u << 20, -ENOSPC);
    static const uint8_t want[] = {0x80, 0x80, 0x40, 0xe4, 0xff, 0xff, 0xff};
    assert_memory_equal(b.p, want, sizeof(want));
    int rc;
    assert_true(cn_node__prop_fail_decode(b.p, b.len, &seq, &rc));
    assert_true(seq == 1u << 20 && rc == -ENOSPC);
    assert_false(cn_node__prop_fail_decode(b.p, b.len - 1, &seq, &rc));
    cn_buf_reset(&b);
    cn_node__prop_fail_encode(&b, 1, 5); /* a code is negative: a positive one is garbage */
    assert_false(cn_node__prop_fail_decode(b.p, b.len, &seq, &rc));
    cn_buf_free(&b);
}

static void snapshot_framing(void **state)
{
    (void)state;
    struct cn_raft_conf conf = {2, 1, {0xa, 0xb}, {0xc}};
    struct cn_buf b = CN_BUF_INIT;
    cn_node__snap_header(&b, &conf);
    cn_buf_append(&b, "state", 5);
    assert_int_equal(b.len, 4 + 1 + 4 + 16 + 4 + 8 + 5);
    assert_memory_equal(b.p, "CNND\x01", 5);
    struct cn_raft_conf got;
    const void *fsm;
    size_t fsm_len;
    assert_int_equal(cn_node__snap_decode(b.p, b.len, &got, &fsm, &fsm_len), 0);
    assert_true(got.n_voters == 2 && got.voters[1] == 0xb && got.n_learners == 1 &&
                got.learners[0] == 0xc);
    assert_int_equal(fsm_len, 5);
    assert_memory_equal(fsm, "state", 5);
    assert_int_equal(cn_node__snap_decode(b.p, 20, &got, &fsm, &fsm_len), CN_ERR_CORRUPT);
    b.p[4] = 2;
    assert_int_equal(cn_node__snap_decode(b.p, b.len, &got, &fsm, &fsm_len), CN_ERR_VERSION);
    b.p[4] = 1;
    b.p[5] = 17; /* more voters than a configuration holds */
    assert_int_equal(cn_node__snap_decode(b.p, b.len, &got, &fsm, &fsm_len), CN_ERR_CORRUPT);
    b.p[0] = 'X';
    assert_int_equal(cn_node__snap_decode(b.p, b.len, &got, &fsm, &fsm_len), CN_ERR_CORRUPT);
    cn_buf_free(&b);
}

/* ---- a state machine that is not the v2 store: a running sum ------------------------------- */

struct sum_fsm {
    struct cn_fsm fsm;
    uint64_t sum, applies, last_index;
    uint64_t result;
};

static int sum_apply(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                     struct cn_fsm_out *out)
{
    struct sum_fsm *f = fsm->data;
    if (len != 8) return CN_ERR_CORRUPT;
    uint64_t v;
    memcpy(&v, cmd, 8);
    f->sum += v;
    f->applies++;
    f->last_index = index;
    f->result = f->sum;
    out->result = &f->result;
    return 0;
}

static void sum_apply_conf(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                           const void *records, size_t len, struct cn_fsm_out *out)
{
    (void)fsm, (void)index, (void)op, (void)id, (void)records, (void)len, (void)out;
}

static void sum_snapshot(struct cn_fsm *fsm, struct cn_buf *out)
{
    struct sum_fsm *f = fsm->data;
    cn_buf_put_u64(out, f->sum);
}

static int sum_restore(struct cn_fsm *fsm, const void *p, size_t len)
{
    struct sum_fsm *f = fsm->data;
    if (len != 8) return CN_ERR_CORRUPT;
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    f->sum = cn_rd_u64(&r);
    return 0;
}

/* The same sum with a snapshot in steps: freeze copies the sum, encode may run later. */
static int thaws;

static void *sum_freeze(struct cn_fsm *fsm)
{
    struct sum_fsm *f = fsm->data;
    return cn_xmemdup(&f->sum, sizeof(f->sum));
}

static void sum_encode(void *frozen, struct cn_buf *out)
{
    uint64_t v;
    memcpy(&v, frozen, sizeof(v));
    cn_buf_put_u64(out, v);
}

static void sum_thaw(struct cn_fsm *fsm, void *frozen)
{
    (void)fsm;
    cn_free(frozen);
    thaws++;
}

static void sum_init(struct sum_fsm *f)
{
    memset(f, 0, sizeof(*f));
    f->fsm = (struct cn_fsm){.data = f,
                             .apply = sum_apply,
                             .apply_conf = sum_apply_conf,
                             .snapshot = sum_snapshot,
                             .restore = sum_restore};
}

/* ---- an io of the test's own: completions wait until the test runs them -------------------- */

struct test_io {
    struct cn_node_io io;
    int64_t now;
    bool persist_pending, deferred, snap_pending, closed;
    bool hold_snap; /* keep the snapshot to save in held, unencoded */
    struct cn_node_snap *held;
    int fail_persist; /* the next persists fail with this */
    unsigned persists, saves, sends;
    bool last_must;  /* the last persist's must_sync */
    unsigned staged; /* persists asked, synced or not */
    uint8_t last_kind;
    uint64_t last_to;
    struct cn_buf last_sent;
    uint64_t released;
    struct cn_buf saved; /* the last snapshot saved */
    uint64_t saved_index, saved_term;
    /* the log as persisted */
    struct cn_raft_entry ents[64]; /* ents[0] is index base + 1 */
    size_t n_ents;
    uint64_t base;
    struct cn_raft_hard_state hs;
    /* with a real log (test_io_wal): entries are appended borrowed, as io_uv does, and written
     * only when the test completes the persist, as the pool thread would */
    struct cn_wal *wal;
    char wal_dir[64];
    bool wal_flush;
    const struct cn_raft_entry *late; /* the batch's entries, borrowed until the completion */
    size_t n_late;
    const void *watch; /* a payload the test looks for in the batches */
    bool watch_seen;
};

static struct test_io *tio(struct cn_node_io *io)
{
    return io->data;
}

static int t_start(struct cn_node_io *io, unsigned ms, char *e, size_t l)
{
    (void)io, (void)ms, (void)e, (void)l;
    return 0;
}

static int64_t t_now(struct cn_node_io *io)
{
    return tio(io)->now;
}

static void t_defer(struct cn_node_io *io)
{
    tio(io)->deferred = true;
}

/* Records entries in the test's copy of the log (an index already there overwrites). */
static void log_entries(struct test_io *t, const struct cn_raft_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cn_raft_entry *e = &ents[i];
        size_t at = (size_t)(e->index - 1 - t->base);
        assert_true(at <= t->n_ents && at < 64);
        for (size_t k = at; k < t->n_ents; k++)
            cn_free(t->ents[k].data);
        t->ents[at] = *e;
        t->ents[at].data = e->len ? cn_xmemdup(e->data, e->len) : NULL;
        t->n_ents = at + 1;
    }
}

static bool t_persist(struct cn_node_io *io, const struct cn_node_batch *b)
{
    struct test_io *t = tio(io);
    for (size_t i = 0; i < b->n_entries; i++)
        t->watch_seen = t->watch_seen || (t->watch && b->entries[i].data == t->watch);
    if (t->wal) {
        for (size_t i = 0; i < b->n_entries; i++) {
            const struct cn_raft_entry *e = &b->entries[i];
            struct cn_wal_entry we = {e->term, e->index, e->type, e->data, e->len};
            assert_int_equal(cn_wal_append_entry_borrowed(t->wal, &we), 0);
        }
        if (b->has_hard_state) {
            struct cn_wal_hard_state hs = {b->hard_state.term, b->hard_state.vote,
                                           b->hard_state.commit};
            cn_wal_set_hard_state(t->wal, &hs);
        }
        t->late = b->entries;
        t->n_late = b->n_entries;
        t->wal_flush = b->must_sync && cn_wal_flush_begin(t->wal);
    } else {
        log_entries(t, b->entries, b->n_entries);
    }
    if (b->has_hard_state) t->hs = b->hard_state;
    t->staged++;
    t->last_must = b->must_sync;
    if (!b->must_sync) return false;
    t->persists++;
    t->persist_pending = true;
    return true;
}

static void t_release(struct cn_node_io *io, uint64_t index)
{
    tio(io)->released = index;
}

static void t_save(struct cn_node_io *io, struct cn_node_snap *snap)
{
    struct test_io *t = tio(io);
    if (t->hold_snap) {
        t->held = snap;
        return;
    }
    cn_node_snap_encode(snap);
    cn_buf_reset(&t->saved);
    cn_buf_append(&t->saved, snap->buf.p, snap->buf.len);
    t->saved_index = snap->index;
    t->saved_term = snap->term;
    t->saves++;
    t->snap_pending = true;
}

static void t_load(struct cn_node_io *io)
{
    (void)io;
    fail_msg("a single member sends no snapshot");
}

static int t_send(struct cn_node_io *io, uint64_t to, uint8_t kind, const void *p, size_t len)
{
    struct test_io *t = tio(io);
    t->sends++;
    t->last_kind = kind;
    t->last_to = to;
    cn_buf_reset(&t->last_sent);
    cn_buf_append(&t->last_sent, p, len);
    return 0;
}

static void t_set_peer(struct cn_node_io *io, uint64_t id, const char *url)
{
    (void)io, (void)id, (void)url;
}

static void t_close(struct cn_node_io *io)
{
    tio(io)->closed = true;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void t_free(struct cn_node_io *io)
{
    struct test_io *t = tio(io);
    if (t->wal) {
        cn_wal_close(t->wal);
        nftw(t->wal_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    for (size_t k = 0; k < t->n_ents; k++)
        cn_free(t->ents[k].data);
    cn_buf_free(&t->saved);
    cn_buf_free(&t->last_sent);
    cn_free(t);
}

static struct test_io *test_io_new(void)
{
    struct test_io *t = CN_NEW(struct test_io);
    t->io = (struct cn_node_io){.data = t,
                                .start = t_start,
                                .now_ns = t_now,
                                .wall_ns = t_now,
                                .defer = t_defer,
                                .persist = t_persist,
                                .release_log = t_release,
                                .save_snapshot = t_save,
                                .load_snapshot = t_load,
                                .send = t_send,
                                .set_peer = t_set_peer,
                                .close = t_close,
                                .free = t_free};
    t->now = 1000000000;
    return t;
}

/* The same on a real log in a temp dir. */
static struct test_io *test_io_wal(void)
{
    struct test_io *t = test_io_new();
    snprintf(t->wal_dir, sizeof(t->wal_dir), "/tmp/cn-node-XXXXXX");
    assert_non_null(mkdtemp(t->wal_dir));
    char err[256];
    assert_int_equal(cn_wal_open(t->wal_dir, NULL, &t->wal, NULL, err), 0);
    return t;
}

/* Completes the persist that is out: with a real log, writes the batch now (the entries it
 * borrowed must still be Raft's, unchanged: the CRCs were computed at append). */
static void complete_persist(struct cn_node *n, struct test_io *t)
{
    t->persist_pending = false;
    int rc = t->fail_persist;
    if (t->wal && rc == 0) {
        if (t->wal_flush) {
            rc = cn_wal_flush_run(t->wal);
            cn_wal_flush_end(t->wal, rc);
            t->wal_flush = false;
        }
        log_entries(t, t->late, t->n_late);
        t->late = NULL;
        t->n_late = 0;
    }
    cn_node_on_persisted(n, rc, 1000);
}

/* Runs what the io holds until nothing is left. */
static void pump(struct cn_node *n, struct test_io *t)
{
    for (int guard = 0; guard < 1000; guard++) {
        if (t->persist_pending) {
            complete_persist(n, t);
        } else if (t->snap_pending) {
            t->snap_pending = false;
            cn_node_on_snapshot_saved(n, 0);
        } else if (t->deferred) {
            t->deferred = false;
            cn_node_on_deferred(n);
        } else {
            return;
        }
    }
    fail_msg("the node never settles");
}

static struct cn_node_member self = {1, 0, NULL};

static struct cn_node *single(struct sum_fsm *f, struct test_io *t, uint64_t snapshot_count,
                              const struct cn_node_state *st)
{
    struct cn_node_options opt = {
        .member_id = 1,
        .cluster_id = 7,
        .seed = 42,
        .snapshot_count = snapshot_count,
        .heartbeat_ms = 10,
        .election_ms = 100,
        .members = &self,
        .nmembers = 1,
    };
    struct cn_node_state fresh = {.fresh = true};
    char err[256];
    struct cn_node *n =
        cn_node_new(&opt, &f->fsm, &t->io, st ? st : &fresh, NULL, NULL, err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(cn_node_start(n, err, sizeof(err)), 0);
    pump(n, t);
    struct cn_node_status s;
    cn_node_get_status(n, &s);
    assert_int_equal(s.role, CN_NODE_LEADER); /* one voter elects itself at once */
    assert_true(s.leader == 1);
    return n;
}

struct answer {
    int calls, rc;
    uint64_t result;
};

static void on_done(void *ctx, int rc, const void *res)
{
    struct answer *a = ctx;
    a->calls++;
    a->rc = rc;
    a->result = res ? *(const uint64_t *)res : 0;
}

static struct cn_node_req *add(struct cn_node *n, uint64_t v, struct answer *a)
{
    return cn_node_propose(n, &v, 8, on_done, a);
}

static void proposals_and_reads(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_new();
    struct cn_node *n = single(&f, t, 0, NULL);
    struct answer a[3] = {{0}}, r = {0}, d = {0};
    add(n, 5, &a[0]);
    add(n, 7, &a[1]);
    add(n, 8, &a[2]);
    assert_int_equal(a[0].calls, 0); /* never inside the call */
    pump(n, t);
    for (int i = 0; i < 3; i++)
        assert_true(a[i].calls == 1 && a[i].rc == 0);
    assert_true(a[0].result == 5 && a[1].result == 12 && a[2].result == 20);
    assert_true(f.sum == 20 && f.applies == 3);
    uint64_t applied, term;
    cn_node_raft_position(n, &applied, &term);
    assert_true(applied == f.last_index && applied >= 4); /* the bootstrap and the no-op first */
    cn_node_read_index(n, on_done, &r);
    pump(n, t);
    assert_true(r.calls == 1 && r.rc == 0 && r.result == 0);
    /* a detached request's outcome reaches nobody, but it still applies */
    cn_node_req_detach(add(n, 100, &d));
    pump(n, t);
    assert_int_equal(d.calls, 0);
    assert_true(f.sum == 120);
    /* a command the state machine cannot decode: its proposer gets the code */
    struct answer bad = {0};
    cn_node_propose(n, "x", 1, on_done, &bad);
    pump(n, t);
    assert_true(bad.calls == 1 && bad.rc == CN_ERR_CORRUPT);
    cn_node_destroy(n);
}

static void persist_failure_and_retry(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_new();
    struct cn_node *n = single(&f, t, 0, NULL);
    t->fail_persist = -ENOSPC;
    struct answer a = {0};
    add(n, 3, &a);
    pump(n, t);
    assert_true(a.calls == 1 && a.rc == -ENOSPC); /* nothing durable, nothing applied */
    assert_true(f.sum == 0);
    t->fail_persist = 0;
    unsigned before = t->persists;
    cn_node_on_tick(n); /* the batch is staged again on the next tick */
    pump(n, t);
    assert_true(t->persists > before);
    assert_true(f.sum == 3); /* the entry was in the batch: once durable it commits */
    struct answer b = {0};
    add(n, 4, &b);
    pump(n, t);
    assert_true(b.calls == 1 && b.rc == 0 && b.result == 7);
    cn_node_destroy(n);
}

static void snapshot_and_restore(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_new();
    struct cn_node *n = single(&f, t, 4, NULL);
    struct answer a[6] = {{0}};
    for (int i = 0; i < 6; i++) {
        add(n, (uint64_t)i + 1, &a[i]);
        pump(n, t);
    }
    assert_true(f.sum == 21);
    assert_true(t->saves >= 1);
    /* the saved snapshot is the framing around the state machine's own bytes */
    struct cn_raft_conf conf;
    const void *fp;
    size_t fl;
    assert_int_equal(cn_node__snap_decode(t->saved.p, t->saved.len, &conf, &fp, &fl), 0);
    assert_true(conf.n_voters == 1 && conf.voters[0] == 1 && fl == 8);
    /* the log before it goes once Raft compacted (with the next write) */
    struct answer more = {0};
    add(n, 100, &more);
    pump(n, t);
    assert_true(t->released == t->saved_index);

    /* a new life from that snapshot and the log after it: the same sum */
    struct test_io *t2 = test_io_new();
    size_t first = (size_t)t->saved_index; /* entries after the snapshot */
    for (size_t k = first; k < t->n_ents; k++) {
        t2->ents[t2->n_ents] = t->ents[k];
        t2->ents[t2->n_ents].data =
            t->ents[k].len ? cn_xmemdup(t->ents[k].data, t->ents[k].len) : NULL;
        t2->n_ents++;
    }
    struct cn_node_state st = {
        .hs = t->hs,
        .snap_term = t->saved_term,
        .snap_index = t->saved_index,
        .snap = t->saved.p,
        .snap_len = t->saved.len,
        .ents = t2->ents,
        .n_ents = t2->n_ents,
    };
    struct sum_fsm f2;
    sum_init(&f2);
    t2->base = t->saved_index;
    t2->hs = t->hs;
    uint64_t commands = 0; /* what must apply again: the sums in the log after the snapshot */
    for (size_t k = 0; k < t2->n_ents; k++)
        commands += t2->ents[k].type == CN_RAFT_ENTRY_NORMAL && t2->ents[k].len > 8;
    assert_true(commands >= 1 && commands < 7);
    struct cn_node *n2 = single(&f2, t2, 0, &st);
    pump(n2, t2);
    assert_true(f2.sum == f.sum);        /* restored, then the entries after it applied again */
    assert_true(f2.applies == commands); /* the state before came from the snapshot */
    cn_node_destroy(n2);
    cn_node_destroy(n);
}

/* A state machine that freezes: the node freezes it on the loop and the io encodes it later
 * (off the loop in io_uv), while the node goes on applying; the bytes saved are the state at the
 * freeze, and the frozen state is released once the save completed. */
static void snapshot_frozen_encoded_later(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    f.fsm.freeze = sum_freeze;
    f.fsm.encode = sum_encode;
    f.fsm.thaw = sum_thaw;
    thaws = 0;
    struct test_io *t = test_io_new();
    t->hold_snap = true;
    struct cn_node *n = single(&f, t, 4, NULL);
    struct answer a[8] = {{0}};
    uint64_t at_freeze = 0;
    for (int i = 0; i < 8; i++) {
        add(n, (uint64_t)i + 1, &a[i]);
        pump(n, t);
        if (t->held && !at_freeze) at_freeze = f.sum;
    }
    assert_non_null(t->held);
    assert_true(f.sum == 36);                     /* applying went on meanwhile */
    assert_true(at_freeze > 0 && at_freeze < 36); /* the freeze came before the last writes */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].rc, 0);
    }
    struct cn_node_snap *sn = t->held;
    assert_true(sn->buf.len > 0); /* the node's header only, so far */
    cn_node_snap_encode(sn);      /* what io_uv does on its worker */
    struct cn_raft_conf conf;
    const void *fp;
    size_t fl;
    assert_int_equal(cn_node__snap_decode(sn->buf.p, sn->buf.len, &conf, &fp, &fl), 0);
    assert_int_equal(fl, 8);
    uint64_t got;
    memcpy(&got, fp, 8);
    assert_true(got == at_freeze);
    assert_int_equal(thaws, 0);
    t->held = NULL;
    t->hold_snap = false;
    cn_node_on_snapshot_saved(n, 0);
    assert_int_equal(thaws, 1);
    pump(n, t);
    cn_node_destroy(n);
}

/* A follower forwards a proposal; the leader answers PROP_FAIL with a code that sends it back
 * to the queue (a transfer in progress): the follower sends the very same frame again. Before
 * the fix the frame was freed once forwarded, and the retry proposed from freed memory. */
static void forwarded_proposal_retried(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_new();
    struct cn_node_member two[] = {{1, 0, NULL}, {2, 0, NULL}};
    struct cn_node_options opt = {.member_id = 2,
                                  .cluster_id = 7,
                                  .seed = 9,
                                  .heartbeat_ms = 10,
                                  .election_ms = 100,
                                  .members = two,
                                  .nmembers = 2};
    struct cn_node_state fresh = {.fresh = true};
    char err[256];
    struct cn_node *n = cn_node_new(&opt, &f.fsm, &t->io, &fresh, NULL, NULL, err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(cn_node_start(n, err, sizeof(err)), 0);
    pump(n, t);
    /* member 1 leads term 2 */
    struct cn_raft_msg hb = {.type = CN_RAFT_MSG_HEARTBEAT, .to = 2, .from = 1, .term = 2};
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(&hb, &b);
    cn_node_on_receive(n, 1, CN_PEER_KIND_RAFT, b.p, b.len);
    pump(n, t);
    struct cn_node_status st;
    cn_node_get_status(n, &st);
    assert_true(st.leader == 1 && st.role == CN_NODE_FOLLOWER);
    struct answer a = {0};
    add(n, 9, &a);
    pump(n, t);
    assert_int_equal(t->last_kind, CN_PEER_KIND_PROP);
    assert_true(t->last_to == 1);
    struct cn_buf first = CN_BUF_INIT;
    cn_buf_append(&first, t->last_sent.p, t->last_sent.len);
    uint64_t seq;
    uint8_t kind;
    const uint8_t *body;
    size_t body_len;
    assert_true(cn_node__prop_decode(first.p, first.len, &seq, &kind, &body, &body_len));
    cn_buf_reset(&b);
    cn_node__prop_fail_encode(&b, seq, -EBUSY);
    unsigned sends = t->sends;
    cn_node_on_receive(n, 1, CN_PEER_KIND_PROP_FAIL, b.p, b.len);
    pump(n, t);
    assert_true(t->sends > sends);
    assert_int_equal(t->last_kind, CN_PEER_KIND_PROP);
    assert_int_equal(t->last_sent.len, first.len);
    assert_memory_equal(t->last_sent.p, first.p, first.len);
    assert_int_equal(a.calls, 0); /* still waiting for its entry */
    /* a code that is final fails it */
    cn_buf_reset(&b);
    cn_node__prop_fail_encode(&b, seq, CN_ERR_TOO_LARGE);
    cn_node_on_receive(n, 1, CN_PEER_KIND_PROP_FAIL, b.p, b.len);
    pump(n, t);
    assert_true(a.calls == 1 && a.rc == CN_ERR_TOO_LARGE);
    cn_buf_free(&b);
    cn_buf_free(&first);
    cn_node_destroy(n);
}

/* A vote is a hard state change with no entry: it must be synced before the answer goes out.
 * When that sync fails, the retry must sync it again (the vote is not durable). Before the fix
 * the failed attempt had already marked the vote synced, so the retry skipped the fsync and the
 * member answered the vote on the strength of a write that had failed. */
static void failed_vote_sync_is_retried_as_a_sync(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_new();
    struct cn_node_member two[] = {{1, 0, NULL}, {2, 0, NULL}};
    struct cn_node_options opt = {.member_id = 2,
                                  .cluster_id = 7,
                                  .seed = 9,
                                  .heartbeat_ms = 10,
                                  .election_ms = 100,
                                  .members = two,
                                  .nmembers = 2};
    struct cn_node_state fresh = {.fresh = true};
    char err[256];
    struct cn_node *n = cn_node_new(&opt, &f.fsm, &t->io, &fresh, NULL, NULL, err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(cn_node_start(n, err, sizeof(err)), 0);
    pump(n, t);
    /* 1 asks for 2's vote in term 5 (2's log is the bootstrap: 1's is as long) */
    struct cn_raft_msg v = {
        .type = CN_RAFT_MSG_VOTE, .to = 2, .from = 1, .term = 5, .index = 2, .log_term = 1};
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(&v, &b);
    t->fail_persist = -EIO;
    unsigned sends = t->sends;
    cn_node_on_receive(n, 1, CN_PEER_KIND_RAFT, b.p, b.len);
    assert_true(t->last_must); /* the vote must be durable first */
    pump(n, t);
    assert_int_equal(t->sends, sends); /* no answer on a failed write */
    t->fail_persist = 0;
    cn_node_on_tick(n);
    assert_true(t->last_must); /* the retry syncs the vote again */
    pump(n, t);
    assert_true(t->sends > sends);
    assert_int_equal(t->last_kind, CN_PEER_KIND_RAFT);
    cn_buf_free(&b);
    cn_node_destroy(n);
}

/* The log as the real WAL replays it must be the test's record of what was persisted. */
struct replayed {
    const struct test_io *t;
    size_t n;
};

static int replay_check(void *arg, const struct cn_wal_entry *e)
{
    struct replayed *r = arg;
    const struct cn_raft_entry *want = &r->t->ents[r->n++];
    assert_true(e->index == want->index && e->term == want->term && e->type == want->type);
    assert_int_equal(e->len, want->len);
    if (e->len) assert_memory_equal(e->data, want->data, e->len);
    return 0;
}

static void wal_matches(struct test_io *t)
{
    struct replayed r = {t, 0};
    assert_int_equal(cn_wal_replay(t->wal, 0, replay_check, &r, NULL), 0);
    assert_int_equal(r.n, t->n_ents);
}

/* One copy per write: the proposer writes its command after the node's header into a buffer the
 * node takes, that very buffer is Raft's entry, and the log writes it from there (appended
 * borrowed, written later). With the copying call, the proposer frees its bytes right after
 * proposing. Under ASan any use of memory after it was given up or freed fails the test; the
 * WAL's CRCs (computed at append) catch bytes that changed before the write. */
static void command_written_in_place(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_wal();
    struct cn_node *n = single(&f, t, 0, NULL);
    struct cn_node_cmd c;
    cn_node_cmd_begin(n, &c, 8);
    uint64_t v = 40;
    cn_buf_append(&c.buf, &v, 8);
    assert_int_equal(c.buf.cap, c.buf.len + 1); /* sized exactly: the entry keeps no slack */
    t->watch = c.buf.p;
    struct answer a = {0};
    cn_node_propose_cmd(n, &c, on_done, &a);
    assert_null(c.buf.p); /* the node's now */
    cn_node_cmd_free(&c); /* a no-op on what was given away */
    char *mine = cn_xmalloc(8);
    v = 2;
    memcpy(mine, &v, 8);
    struct answer b = {0};
    cn_node_propose(n, mine, 8, on_done, &b);
    cn_free(mine); /* copied: the proposer's bytes are its own again */
    pump(n, t);
    assert_true(t->watch_seen); /* the proposer's buffer reached the log as it was */
    assert_true(a.calls == 1 && a.rc == 0 && a.result == 40);
    assert_true(b.calls == 1 && b.rc == 0 && b.result == 42);
    wal_matches(t);
    /* a begun command may be dropped */
    cn_node_cmd_begin(n, &c, 8);
    cn_node_cmd_free(&c);
    cn_node_destroy(n);
}

static void append_from(struct cn_node *n, uint64_t leader, uint64_t term, uint64_t prev,
                        const struct cn_raft_entry *e)
{
    struct cn_raft_msg m = {.type = CN_RAFT_MSG_APP,
                            .to = 2,
                            .from = leader,
                            .term = term,
                            .index = prev,
                            .log_term = 1,
                            .commit = prev,
                            .entries = e,
                            .n_entries = 1};
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(&m, &b);
    cn_node_on_receive(n, leader, CN_PEER_KIND_RAFT, b.p, b.len);
    cn_buf_free(&b);
}

/* A new leader's overwrite arrives while the write of the entries it replaces is in flight: the
 * node must not step it (Raft would free those entries, which the log is writing from) until the
 * write completed. The follower's log is written from Raft's payloads, borrowed; the first
 * leader's entry must reach the disk intact, then the new leader's replace it. */
static void overwrite_waits_for_the_write(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_wal();
    struct cn_node_member three[] = {{1, 0, NULL}, {2, 0, NULL}, {3, 0, NULL}};
    struct cn_node_options opt = {.member_id = 2,
                                  .cluster_id = 7,
                                  .seed = 9,
                                  .heartbeat_ms = 10,
                                  .election_ms = 100,
                                  .members = three,
                                  .nmembers = 3};
    struct cn_node_state fresh = {.fresh = true};
    char err[256];
    struct cn_node *n = cn_node_new(&opt, &f.fsm, &t->io, &fresh, NULL, NULL, err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(cn_node_start(n, err, sizeof(err)), 0);
    pump(n, t);
    assert_int_equal(t->n_ents, 3); /* the bootstrap's configuration entries */

    char pa[300], pb[300];
    memset(pa, 'a', sizeof(pa));
    memset(pb, 'b', sizeof(pb));
    struct cn_raft_entry ea = {2, 4, CN_RAFT_ENTRY_NORMAL, sizeof(pa), pa};
    struct cn_raft_entry eb = {3, 4, CN_RAFT_ENTRY_NORMAL, sizeof(pb), pb};
    append_from(n, 1, 2, 3, &ea); /* leader 1, term 2: entry 4 */
    assert_true(t->persist_pending && t->wal_flush && t->n_late == 1);
    append_from(n, 3, 3, 3, &eb); /* leader 3, term 3: another entry 4, while the write runs */
    cn_node_on_tick(n);
    struct cn_raft_status st;
    cn_raft_status(cn_node_raft(n), &st);
    assert_int_equal(st.term, 2); /* not stepped yet: it waits in the inbox */
    assert_int_equal(t->late[0].term, 2);

    complete_persist(n, t); /* the write of 1's entry, from Raft's payload, then 3's message */
    assert_int_equal(t->n_ents, 4);
    assert_int_equal(t->ents[3].term, 2);
    assert_memory_equal(t->ents[3].data, pa, sizeof(pa));
    pump(n, t);
    cn_raft_status(cn_node_raft(n), &st);
    assert_true(st.term == 3 && st.lead == 3);
    assert_int_equal(t->n_ents, 4);
    assert_int_equal(t->ents[3].term, 3); /* overwritten, once the first write was done */
    assert_memory_equal(t->ents[3].data, pb, sizeof(pb));
    wal_matches(t); /* the disk replays the final log; every record's CRC held */
    cn_node_destroy(n);
}

static void stopped_node_refuses(void **state)
{
    (void)state;
    struct sum_fsm f;
    sum_init(&f);
    struct test_io *t = test_io_new();
    struct cn_node *n = single(&f, t, 0, NULL);
    struct answer pending = {0};
    add(n, 1, &pending);
    cn_node_stop(n, NULL, NULL);
    struct answer late = {0};
    add(n, 2, &late);
    pump(n, t);
    assert_true(late.calls == 1 && late.rc == CN_ERR_STOPPED);
    assert_int_equal(pending.calls, 1); /* answered or failed, never lost */
    assert_true(t->closed);
    cn_node_on_closed(n); /* frees the node and the io */
}

int main(void)
{
    cn_log_level_max = CN_LOG_ERR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(envelope_bytes),
        cmocka_unit_test(prop_frames),
        cmocka_unit_test(snapshot_framing),
        cmocka_unit_test(proposals_and_reads),
        cmocka_unit_test(persist_failure_and_retry),
        cmocka_unit_test(snapshot_frozen_encoded_later),
        cmocka_unit_test(snapshot_and_restore),
        cmocka_unit_test(forwarded_proposal_retried),
        cmocka_unit_test(failed_vote_sync_is_retried_as_a_sync),
        cmocka_unit_test(stopped_node_refuses),
        cmocka_unit_test(command_written_in_place),
        cmocka_unit_test(overwrite_waits_for_the_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
