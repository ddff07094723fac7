/* node: the member's lifecycle and Raft's ready loop, on a struct cn_node_io and a struct
 * cn_fsm (see node.h, node_io.h and the design notes in node_int.h). */
#include "node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "node_int.h"
#include "peer/peer.h"

static void maybe_finish_stop(struct cn_node *n);
static bool early_type(uint8_t t);

/* ---- creation ----------------------------------------------------------------------------- */

/* Request numbers must never repeat across the member's restarts: an entry proposed by an
 * earlier process may still commit after a restart, and its (origin, seq) must not match a
 * request of this one (which would get another request's result). Each process starts at a
 * point of the 63-bit space drawn from its seed, so two lives' ranges never meet in practice. */
static uint64_t first_seq(uint64_t seed)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (z >> 1) | 1;
}

static void copy_members(struct cn_node *n, const struct cn_node_options *opt)
{
    n->members = cn_xcalloc(opt->nmembers ? opt->nmembers : 1, sizeof(*n->members));
    n->nmembers = opt->nmembers;
    for (size_t i = 0; i < opt->nmembers; i++) {
        n->members[i].id = opt->members[i].id;
        n->members[i].npeer = opt->members[i].npeer;
        char **urls = cn_xcalloc(opt->members[i].npeer + 1, sizeof(char *));
        for (size_t j = 0; j < opt->members[i].npeer; j++)
            urls[j] = cn_xstrdup(opt->members[i].peer_urls[j]);
        n->members[i].peer_urls = urls;
    }
    n->opt.members = n->members;
}

static void node_free(struct cn_node *n)
{
    if (n->raft) cn_raft_free(n->raft);
    for (size_t i = 0; i < n->nmembers; i++) {
        for (size_t j = 0; j < n->members[i].npeer; j++)
            cn_free(n->members[i].peer_urls[j]);
        cn_free((void *)n->members[i].peer_urls);
    }
    cn_free(n->members);
    for (size_t i = 0; i < n->ninbox; i++)
        cn_buf_free(&n->inbox[i].data);
    cn_free(n->inbox);
    cn_free(n->name);
    if (n->snap.frozen) n->fsm->thaw(n->fsm, n->snap.frozen); /* io never took it */
    cn_buf_free(&n->snap.buf);
    cn_buf_free(&n->send_snap);
    cn_buf_free(&n->frame);
    cn_free(n);
}

struct cn_node *cn_node_new(const struct cn_node_options *opt, struct cn_fsm *fsm,
                            struct cn_node_io *io, const struct cn_node_state *st,
                            void (*tune)(void *ctx, struct cn_raft_config *cfg), void *tune_ctx,
                            char *errmsg, size_t errlen)
{
    struct cn_node *n = CN_NEW(struct cn_node);
    n->io = io;
    n->fsm = fsm;
    n->state = CN_NODE__OPEN;
    n->opt = *opt;
    n->opt.snapshot_count = opt->snapshot_count ? opt->snapshot_count : 10000;
    n->opt.election_ms = opt->election_ms ? opt->election_ms : 1000;
    n->opt.heartbeat_ms = opt->heartbeat_ms ? opt->heartbeat_ms : 100;
    n->name = cn_xstrdup(opt->name ? opt->name : "");
    n->opt.name = n->name;
    n->opt.data_dir = n->opt.wal_dir = NULL; /* the io's business */
    n->id = opt->member_id;
    n->cluster_id = opt->cluster_id;
    n->fresh = st->fresh;
    n->next_seq = first_seq(opt->seed);
    cn_list_init(&n->queued);
    cn_list_init(&n->waiting);
    cn_list_init(&n->reads);
    cn_list_init(&n->done);
    cn_buf_init(&n->snap.buf);
    cn_buf_init(&n->send_snap);
    cn_buf_init(&n->frame);
    copy_members(n, opt);

    struct cn_raft_snapshot_meta meta = {st->snap_index, st->snap_term, {0}};
    if (st->snap) {
        const void *fp;
        size_t fl;
        int rc = cn_node__snap_decode(st->snap, st->snap_len, &meta.conf, &fp, &fl);
        if (rc == 0) rc = fsm->restore(fsm, fp, fl);
        if (rc != 0) {
            snprintf(errmsg, errlen,
                     "snapshot %016" PRIx64 "-%016" PRIx64 ".snap passed its checksum but its "
                     "contents do not decode: %s",
                     st->snap_term, st->snap_index, cn_strerror(rc));
            node_free(n);
            return NULL;
        }
        n->applied = n->snap_index = st->snap_index;
        n->applied_term = st->snap_term;
    }
    struct cn_raft_config cfg;
    cn_raft_config_default(&cfg);
    cfg.id = n->id;
    cfg.seed = opt->seed ^ n->id;
    cfg.pre_vote = true;
    cfg.check_quorum = true;
    unsigned et = n->opt.election_ms / n->opt.heartbeat_ms;
    cfg.election_ticks = et < 2 ? 2 : et;
    cfg.heartbeat_ticks = 1;
    cfg.max_entry_bytes = 16u << 20; /* requests are bounded by --max-request-bytes first */
    if (tune) tune(tune_ctx, &cfg);
    n->raft = cn_raft_new(&cfg);
    struct cn_raft_hard_state hs = st->hs;
    uint64_t last = st->n_ents ? st->ents[st->n_ents - 1].index : st->snap_index;
    if (hs.commit > last) hs.commit = last;
    if (hs.commit < st->snap_index) hs.commit = st->snap_index;
    if (cn_raft_load(n->raft, &hs, &meta, st->ents, st->n_ents) != 0) {
        snprintf(errmsg, errlen, "the log in the data dir is inconsistent with its snapshot");
        node_free(n);
        return NULL;
    }
    n->synced_term = hs.term;
    n->synced_vote = hs.vote;
    io->node = n;
    return n;
}

void cn_node_destroy(struct cn_node *n)
{
    struct cn_node_io *io = n->io;
    /* requests vanish unanswered, as they do when a process dies */
    struct cn_list *lists[] = {&n->queued, &n->waiting, &n->reads, &n->done};
    for (size_t k = 0; k < 4; k++) {
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, lists[k]) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            cn_list_remove(&r->link);
            cn_buf_free(&r->data);
            cn_free(r);
        }
    }
    node_free(n);
    io->free(io);
}

const struct cn_raft *cn_node_raft(const struct cn_node *n)
{
    return n->raft;
}

void cn_node_observe_apply(struct cn_node *n, void (*fn)(void *ctx, const struct cn_raft_entry *e),
                           void *ctx)
{
    n->observe = fn;
    n->observe_ctx = ctx;
}

/* ---- feeding raft ------------------------------------------------------------------------- */

static void feed(struct cn_node *n)
{
    while (n->ticks) {
        n->ticks--;
        cn_raft_tick(n->raft);
    }
    cn_node__drain_inbox(n);
    if (n->compact_to) {
        if (cn_raft_compact(n->raft, n->compact_to) == 0) n->release_to = n->compact_to;
        n->compact_to = 0;
    }
    if (n->transfer_to) {
        int rc = cn_raft_transfer(n->raft, n->transfer_to);
        CN_LOGN("node", "handing leadership over to=%" PRIx64 " rc=%d", n->transfer_to, rc);
        n->transfer_to = 0;
    }
    cn_node__submit(n);
}

int cn_node_transfer_leadership(struct cn_node *n, uint64_t id)
{
    if (n->role != CN_RAFT_LEADER) return CN_ERR_NO_LEADER;
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    bool voter = false;
    for (uint32_t i = 0; i < st.conf.n_voters; i++)
        voter = voter || st.conf.voters[i] == id;
    if (!voter || id == n->id) return CN_ERR_INVAL;
    n->transfer_to = id;
    cn_node__kick(n);
    return 0;
}

/* ---- applying ----------------------------------------------------------------------------- */

static void apply_entry(struct cn_node *n, const struct cn_raft_entry *e, bool *members)
{
    uint64_t origin = 0, seq = 0;
    const uint8_t *rest;
    size_t rest_len;
    struct cn_fsm_out out = {NULL, false};
    int rc = 0;
    if (e->type == CN_RAFT_ENTRY_NORMAL && e->len) {
        if (cn_node__env_decode(e->data, e->len, &origin, &seq, &rest, &rest_len))
            rc = n->fsm->apply(n->fsm, e->index, rest, rest_len, &out);
        else
            rc = CN_ERR_CORRUPT;
        if (rc != 0)
            CN_LOGE("node", "cannot apply entry index=%" PRIu64 " err=%s", e->index,
                    cn_strerror(rc));
    } else if (e->type == CN_RAFT_ENTRY_CONF) {
        struct cn_raft_conf_change cc;
        if (cn_raft_conf_change_decode(e->data, e->len, &cc) == 0) {
            const uint8_t *records = NULL;
            size_t records_len = 0;
            if (!cc.ctx_len ||
                !cn_node__env_decode(cc.ctx, cc.ctx_len, &origin, &seq, &records, &records_len))
                origin = seq = 0;
            n->fsm->apply_conf(n->fsm, e->index, (enum cn_node_conf_op)cc.op, cc.id, records,
                               records_len, &out);
            out.members_changed = true;
            static const char *ops[] = {"?", "add learner", "promote", "remove", "add voter"};
            CN_LOGN("node", "membership change applied op=\"%s\" member=%" PRIx64 " index=%" PRIu64,
                    cc.op <= 4 ? ops[cc.op] : "?", cc.id, e->index);
            if (cc.op == CN_RAFT_CONF_REMOVE) {
                if (cc.id == n->id) {
                    n->removed = true;
                } else {
                    /* its links go; when it dials again the transport tells it it was removed */
                    n->io->set_peer(n->io, cc.id, NULL);
                }
            }
        }
        out.result = NULL;
    }
    *members = *members || out.members_changed;
    n->applied = e->index;
    n->applied_term = e->term;
    if (n->observe) n->observe(n->observe_ctx, e);
    if (origin == n->id && seq) {
        struct cn_node_req *r = cn_node__find_waiting(n, seq);
        if (r) {
            n->stats.committed++;
            if (rc == 0) n->stats.applied_count++;
            cn_node__finish_req(n, r, rc, rc == 0 ? out.result : NULL);
        }
    }
}

/* ---- snapshots ---------------------------------------------------------------------------- */

void cn_node_snap_encode(struct cn_node_snap *snap)
{
    if (!snap->frozen) return;
    int64_t t0 = cn_clock_mono_ns();
    snap->fsm->encode(snap->frozen, &snap->buf);
    snap->encode_ns = cn_clock_mono_ns() - t0;
}

void cn_node_on_snapshot_saved(struct cn_node *n, int rc)
{
    struct cn_node_snap *sn = &n->snap;
    n->snapping = false;
    if (sn->frozen) {
        n->fsm->thaw(n->fsm, sn->frozen);
        sn->frozen = NULL;
    }
    if (rc == 0) {
        n->snap_index = sn->index;
        n->stats.snapshots++;
        n->compact_to = sn->index;
        CN_LOGI("node",
                "saved snapshot index=%" PRIu64 " term=%" PRIu64 " bytes=%zu loop_ms=%.2f "
                "encode_ms=%.1f total_ms=%.1f",
                sn->index, sn->term, sn->buf.len, (double)n->snap_freeze_ns / 1e6,
                (double)sn->encode_ns / 1e6,
                (double)(n->io->now_ns(n->io) - n->snap_start_ns) / 1e6);
    } else {
        CN_LOGE("node", "saving snapshot failed index=%" PRIu64 " err=\"%s\"", sn->index,
                cn_strerror(rc));
    }
    /* not kept: a follower that falls behind is rare, and its load goes off the loop */
    cn_buf_free(&sn->buf);
    cn_buf_init(&sn->buf);
    cn_node__kick(n);
    maybe_finish_stop(n);
}

static void maybe_snapshot(struct cn_node *n)
{
    if (n->snapping || n->state == CN_NODE__CLOSED || n->state == CN_NODE__STOPPING) return;
    if (n->applied - n->snap_index < n->opt.snapshot_count) return;
    /* The state is frozen on the loop (O(1) for a persistent state machine) and encoded and
     * saved off it by io; a state machine without freeze is encoded here. */
    struct cn_node_snap *sn = &n->snap;
    n->snap_start_ns = n->io->now_ns(n->io);
    struct cn_raft_conf conf;
    cn_raft_conf_at(n->raft, n->applied, &conf);
    cn_buf_reset(&sn->buf);
    cn_node__snap_header(&sn->buf, &conf);
    sn->fsm = n->fsm;
    sn->encode_ns = 0;
    if (n->fsm->freeze) {
        sn->frozen = n->fsm->freeze(n->fsm);
    } else {
        sn->frozen = NULL;
        n->fsm->snapshot(n->fsm, &sn->buf);
    }
    n->snap_freeze_ns = n->io->now_ns(n->io) - n->snap_start_ns;
    sn->index = n->applied;
    sn->term = n->applied_term;
    n->snapping = true;
    n->io->save_snapshot(n->io, sn);
}

/* ---- the ready loop ----------------------------------------------------------------------- */

static void finish_ready(struct cn_node *n);

/* Hands the outstanding batch to io; finishes it at once when nothing needs the disk. */
static void persist(struct cn_node *n)
{
    if (n->release_to && !n->snapping) {
        n->io->release_log(n->io, n->release_to);
        n->release_to = 0;
    }
    const struct cn_raft_ready *rd = &n->rd;
    struct cn_node_batch b = {
        .snapshot = rd->snapshot,
        .entries = rd->entries,
        .n_entries = rd->n_entries,
        .has_hard_state = rd->has_hard_state,
        .hard_state = rd->hard_state,
    };
    /* etcd's MustSync: entries, a snapshot, or a new term or vote must be durable before the
     * batch's messages go out; a commit index alone need not (it is re-learned from the
     * leader), so it rides along with the next write instead of costing an fsync. */
    b.must_sync = rd->n_entries > 0 || rd->snapshot != NULL ||
                  (rd->has_hard_state && (rd->hard_state.term != n->synced_term ||
                                          rd->hard_state.vote != n->synced_vote));
    n->persisting = n->io->persist(n->io, &b);
    if (!n->persisting) finish_ready(n);
}

void cn_node_on_persisted(struct cn_node *n, int rc, int64_t dur_ns)
{
    n->persisting = false;
    cn_node__note_fsync(n, dur_ns);
    if (rc != 0) {
        /* The log cannot take this batch (disk full, I/O error): invariant 4. The requests
         * waiting here fail now with the error (their entries may still commit later: outcome
         * unknown). */
        if (!n->io_retry)
            CN_LOGE("node", "write-ahead log write failed err=\"%s\": retrying", cn_strerror(rc));
        n->io_retry = true;
        cn_node__fail_all(n, &n->waiting, rc);
        maybe_finish_stop(n);
        return;
    }
    if (n->io_retry) CN_LOGN("node", "write-ahead log writes succeed again");
    n->io_retry = false;
    if (n->rd.has_hard_state) {
        n->synced_term = n->rd.hard_state.term;
        n->synced_vote = n->rd.hard_state.vote;
    }
    finish_ready(n);
    cn_node__process(n);
}

/* Steps 1-4 of raft.h's loop once the batch is durable. */
static void finish_ready(struct cn_node *n)
{
    struct cn_raft_ready *rd = &n->rd;
    bool members = false;
    if (rd->snapshot) {
        const struct cn_raft_snapshot *s = rd->snapshot;
        struct cn_raft_conf conf;
        const void *fp;
        size_t fl;
        int rc = cn_node__snap_decode(s->data, s->len, &conf, &fp, &fl);
        if (rc == 0) rc = n->fsm->restore(n->fsm, fp, fl);
        if (rc != 0) {
            CN_LOGE("node", "cannot load the snapshot received index=%" PRIu64 " err=%s",
                    s->meta.index, cn_strerror(rc));
        } else {
            n->applied = n->snap_index = s->meta.index;
            n->applied_term = s->meta.term;
            n->release_to = s->meta.index;
            CN_LOGN("node", "installed snapshot index=%" PRIu64 " term=%" PRIu64 " bytes=%zu",
                    s->meta.index, s->meta.term, s->len);
            members = true;
        }
    }
    for (size_t i = 0; i < rd->n_msgs; i++)
        if (rd->role != CN_RAFT_LEADER || !early_type(rd->msgs[i].type))
            cn_node__send_msg(n, &rd->msgs[i]);
    for (size_t i = 0; i < rd->n_committed; i++) {
        if (rd->committed[i].index <= n->applied) continue;
        apply_entry(n, &rd->committed[i], &members);
    }
    cn_node__reads_ready(n, rd);
    cn_raft_advance(n->raft, rd);
    n->in_ready = false;
    if (members) cn_node__refresh_peers(n);
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    n->term = st.term;
    n->role = st.role;
    if (st.lead != n->lead) {
        n->lead = st.lead;
        cn_node__note_leader(n, st.lead);
        cn_node__requeue_reads(n);
    }
    if (st.removed) n->removed = true;
    maybe_snapshot(n);
}

/* Thesis §10.2.1: a leader may send its appends before its own write is durable (its own copy
 * counts towards commitment only after, in cn_raft_advance), so replication and the leader's
 * fsync overlap. Only appends, heartbeats and snapshots go early: they promise nothing about
 * what this member has persisted. */
static bool early_type(uint8_t t)
{
    return t == CN_RAFT_MSG_APP || t == CN_RAFT_MSG_HEARTBEAT || t == CN_RAFT_MSG_SNAP;
}

static void send_early(struct cn_node *n)
{
    if (n->rd.role != CN_RAFT_LEADER) return;
    for (size_t i = 0; i < n->rd.n_msgs; i++)
        if (early_type(n->rd.msgs[i].type)) cn_node__send_msg(n, &n->rd.msgs[i]);
}

static void told_removed(struct cn_node *n)
{
    if (!n->removed || n->removed_told || !cn_node__alive(n) || n->state == CN_NODE__STOPPING ||
        n->in_ready)
        return;
    n->removed_told = true;
    /* a removal of this member asked here committed (that is how we know): answer it */
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->waiting) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->kind == CN_NODE__K_CONF && r->conf_op == CN_RAFT_CONF_REMOVE && r->conf_id == n->id)
            cn_node__finish_req(n, r, 0, NULL);
    }
    CN_LOGN("node", "the member has been permanently removed from the cluster id=%" PRIx64, n->id);
    void (*cb)(void *) = n->opt.on_removed;
    n->opt.on_removed = NULL;
    if (cb) cb(n->opt.cb_ctx);
}

void cn_node__process(struct cn_node *n)
{
    /* closing: io is flushing its last records and closing; nothing new may start */
    if (n->in_process || n->raft == NULL || n->state == CN_NODE__CLOSED ||
        n->state == CN_NODE__OPEN || n->closing)
        return;
    n->in_process = true;
    while (!n->in_ready && !n->removed) {
        feed(n);
        if (!cn_raft_has_ready(n->raft)) {
            struct cn_raft_status st;
            cn_raft_status(n->raft, &st);
            if (st.removed) n->removed = true;
            break;
        }
        cn_raft_ready(n->raft, &n->rd);
        n->in_ready = true;
        send_early(n);
        persist(n); /* finishes synchronously when nothing needs the disk */
    }
    n->in_process = false;
    told_removed(n);
    maybe_finish_stop(n);
}

/* ---- timers ------------------------------------------------------------------------------- */

void cn_node__kick(struct cn_node *n)
{
    if (n->state == CN_NODE__CLOSED || n->closing) return;
    n->io->defer(n->io);
}

void cn_node_on_deferred(struct cn_node *n)
{
    cn_node__answer_done(n);
    cn_node__process(n);
}

static void maybe_promote(struct cn_node *n)
{
    if (n->role != CN_RAFT_LEADER || n->in_ready) return;
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    for (uint32_t i = 0; i < st.conf.n_learners; i++) {
        uint64_t match;
        bool active;
        uint64_t id = st.conf.learners[i];
        if (!cn_raft_progress(n->raft, id, &match, &active) || !active) continue;
        /* it must have answered (match > 0) and be close to the leader's log */
        if (match == 0 || match + CN_NODE__PROMOTE_WITHIN < st.last_index) continue;
        struct cn_raft_conf_change cc = {CN_RAFT_CONF_PROMOTE, id, NULL, 0};
        if (cn_raft_propose_conf(n->raft, &cc, NULL, NULL) == 0)
            CN_LOGN("node", "promoting caught-up member to voter id=%" PRIx64 " match=%" PRIu64, id,
                    match);
        break;
    }
}

void cn_node_on_tick(struct cn_node *n)
{
    if (!cn_node__alive(n) || n->closing) return;
    n->ticks++;
    int64_t now = n->io->now_ns(n->io);
    cn_node__expire(n, now);
    maybe_promote(n);
    if (n->io_retry && !n->persisting && n->in_ready) persist(n);
    if (n->state == CN_NODE__TRANSFER && (n->lead != n->id || now >= n->transfer_deadline)) {
        if (n->lead != n->id)
            CN_LOGN("node", "leadership handed over to=%" PRIx64, n->lead);
        else
            CN_LOGW("node", "leadership transfer did not finish in time: stopping anyway");
        n->state = CN_NODE__STOPPING;
    }
    cn_node__process(n);
}

/* ---- start -------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A new cluster: every founder writes the same first entries, members sorted by id. */
static int bootstrap(struct cn_node *n, char *errmsg, size_t errlen)
{
    struct cn_node_member *ms = n->members;
    size_t nm = n->nmembers < CN_RAFT_MAX_MEMBERS ? n->nmembers : CN_RAFT_MAX_MEMBERS;
    for (size_t i = 1; i < nm; i++)
        for (size_t j = i; j > 0 && ms[j].id < ms[j - 1].id; j--) {
            struct cn_node_member t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    struct cn_raft_conf conf;
    memset(&conf, 0, sizeof(conf));
    struct cn_buf ctxs[CN_RAFT_MAX_MEMBERS];
    for (size_t i = 0; i < nm; i++) {
        conf.voters[conf.n_voters++] = ms[i].id;
        cn_buf_init(&ctxs[i]);
        cn_node__env_header(&ctxs[i], 0, 0);
        if (n->fsm->records_join) n->fsm->records_join(n->fsm, &ms[i], &ctxs[i]);
    }
    qsort(conf.voters, conf.n_voters, sizeof(uint64_t), cmp_u64);
    int rc = cn_raft_bootstrap_ctx(n->raft, &conf, ctxs);
    for (size_t i = 0; i < nm; i++)
        cn_buf_free(&ctxs[i]);
    if (rc != 0) snprintf(errmsg, errlen, "cannot bootstrap the initial cluster configuration");
    return rc;
}

int cn_node_start(struct cn_node *n, char *errmsg, size_t errlen)
{
    if (n->fresh && n->opt.mode == CN_NODE_NEW) {
        int rc = bootstrap(n, errmsg, errlen);
        if (rc != 0) return rc;
    }
    int rc = n->io->start(n->io, n->opt.heartbeat_ms, errmsg, errlen);
    if (rc != 0) return rc;
    n->state = CN_NODE__RUNNING;
    /* addresses: the state machine's member records, and the ones we were given (joining) */
    cn_node__refresh_peers(n);
    if (n->fresh)
        for (size_t i = 0; i < n->nmembers; i++)
            if (n->members[i].npeer && n->members[i].id != n->id)
                n->io->set_peer(n->io, n->members[i].id, n->members[i].peer_urls[0]);
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    n->term = st.term;
    if (st.conf.n_voters == 1 && st.conf.voters[0] == n->id) cn_raft_campaign(n->raft);
    cn_node__process(n);
    return 0;
}

bool cn_node_removed(const struct cn_node *n)
{
    return n->removed;
}

/* ---- stop --------------------------------------------------------------------------------- */

static void maybe_finish_stop(struct cn_node *n)
{
    if (n->state != CN_NODE__STOPPING || n->closing) return;
    if ((n->in_ready && !n->io_retry) || n->persisting || n->snapping || n->snap_loading) return;
    cn_node__answer_done(n);
    cn_node__fail_all(n, &n->queued, CN_ERR_STOPPED);
    cn_node__fail_all(n, &n->waiting, CN_ERR_STOPPED);
    cn_node__fail_all(n, &n->reads, CN_ERR_STOPPED);
    n->closing = true;
    CN_LOGI("node", "stopped applied=%" PRIu64 " term=%" PRIu64, n->applied, n->term);
    n->io->close(n->io); /* flushes the hard state set last (a commit index) first */
}

void cn_node_on_closed(struct cn_node *n)
{
    n->state = CN_NODE__CLOSED;
    void (*cb)(void *) = n->stop_cb;
    void *ctx = n->stop_ctx;
    struct cn_node_io *io = n->io;
    node_free(n);
    io->free(io);
    if (cb) cb(ctx);
}

void cn_node_stop(struct cn_node *n, void (*cb)(void *ctx), void *ctx)
{
    n->stop_cb = cb;
    n->stop_ctx = ctx;
    if (n->state == CN_NODE__OPEN) {
        /* never started: nothing runs, close releases the files */
        n->state = CN_NODE__STOPPING;
        n->closing = true;
        n->io->close(n->io);
        return;
    }
    if (n->state != CN_NODE__RUNNING) return;
    /* A leader hands over first, so the cluster does not wait out an election timeout. */
    uint64_t best = 0, best_match = 0;
    if (n->role == CN_RAFT_LEADER && !n->removed) {
        struct cn_raft_status st;
        cn_raft_status(n->raft, &st);
        for (uint32_t i = 0; i < st.conf.n_voters; i++) {
            uint64_t id = st.conf.voters[i], match;
            bool active;
            if (id == n->id || !cn_raft_progress(n->raft, id, &match, &active) || !active) continue;
            if (best == 0 || match > best_match) {
                best = id;
                best_match = match;
            }
        }
    }
    if (best) {
        n->state = CN_NODE__TRANSFER;
        n->transfer_to = best;
        n->transfer_deadline = n->io->now_ns(n->io) + (int64_t)n->opt.election_ms * CN_NS_PER_MS;
        cn_node__process(n);
        return;
    }
    n->state = CN_NODE__STOPPING;
    cn_node__kick(n);
}
