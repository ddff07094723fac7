/* node: cairn's Raft core driven on libuv. See node.h.
 *
 * Design notes
 *   The loop (process()) follows raft.h's contract: feed inputs, take a ready batch, append its
 *   entries and hard state to the WAL, fsync on the thread pool (with a snapshot to install saved
 *   first, in the same job), then send its messages, apply its committed entries, serve its reads
 *   and advance. While a batch is out Raft takes no input: ticks, peer frames and local requests
 *   wait in the inbox and queues, and go in together once the batch is done (group commit).
 *
 *   Entries. A normal entry carries [u8 1][uvarint origin][uvarint seq][store command]; a conf
 *   entry's context carries [u8 1][uvarint origin][uvarint seq] then [uvarint len][store command]
 *   for each member record it changes. Every member applies both the same way; the member whose
 *   id is origin also answers the request seq waiting on it, with the result of its own apply.
 *   An empty normal entry is a new leader's no-op.
 *
 *   Requests: a proposal is QUEUED until a leader is known; then it is proposed (leader) or sent
 *   to the leader in a PROP frame (follower), and waits in `waiting` for its entry to be applied
 *   here. The leader answers a PROP it cannot propose with PROP_FAIL, and the follower queues it
 *   again (no leader, transfer in progress) or fails it. A read is QUEUED, then given to Raft's
 *   ReadIndex (which forwards it to the leader) and answered once applied >= its index; reads
 *   are re-issued after a leader change, since Raft drops them.
 *   Every request has a deadline (5 s + 2 x election timeout, etcd's): a proposal that reached
 *   Raft may still commit after it, so its client gets etcd's timeout ("outcome unknown").
 *
 *   Snapshots: every snapshot_count applied entries the store is encoded on the loop (with the
 *   configuration at that index) and written on the pool; then Raft's log is compacted to it and
 *   older WAL segments released. A follower too far behind gets that file's bytes. */
#include "node.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/list.h"
#include "common/log.h"
#include "peer/peer.h"
#include "raft/raft.h"
#include "wal/wal.h"

enum { S_OPEN, S_RUNNING, S_TRANSFER, S_STOPPING, S_CLOSED };
enum { R_QUEUED, R_WAITING, R_READ_WAIT, R_READ_READY };
enum { K_NORMAL = 0, K_CONF = 1 };

/* WAL entry types: 0 normal (empty: no-op), 1 the first cairn's no-op, 2 conf. */
#define WAL_NORMAL  0
#define WAL_NOOP_V0 1
#define WAL_CONF    2

#define META_VERSION   1
#define ENV_VERSION    1
#define SNAP_MAGIC     "CNND"
#define SNAP_VERSION   1
#define MAX_INBOX      100000
#define PROMOTE_WITHIN 1000 /* a learner this close to the leader's log is promoted */

const double cn_node_fsync_buckets[14] = {0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                          0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192};

struct cn_node_req {
    struct cn_list link;
    uint64_t seq;
    int64_t deadline_ns;
    cn_node_done_cb cb;
    void *ctx;
    int state;
    uint8_t kind; /* K_NORMAL or K_CONF */
    bool is_read;
    bool detached;
    bool proposed;   /* reached Raft (ours or the leader's): it may still commit */
    uint8_t conf_op; /* K_CONF: the change */
    uint64_t conf_id;
    int rc; /* for early failures */
    uint64_t index;
    /* QUEUED: [uvarint seq][u8 kind] then the envelope (normal) or conf change encoding: the
     * whole buffer is the PROP frame a follower sends, data + body_off what a leader proposes */
    struct cn_buf data;
    size_t body_off;
};

struct inbox_item {
    uint8_t what; /* CN_PEER_KIND_RAFT, _PROP, _PROP_FAIL, or IN_SNAP_REPORT, IN_LEADER_GONE */
    uint64_t from;
    struct cn_buf data;
};

/* Inbox items that do not come from a peer frame. */
enum { IN_SNAP_REPORT = 100, IN_LEADER_GONE = 101 };

struct follower_stats {
    uint64_t id;
    int64_t sent_ns; /* an append/heartbeat out, not answered yet */
    struct cn_node_follower st;
};

struct cn_node {
    uv_loop_t *loop;
    struct cn_store *store;
    struct cn_wal *wal;
    struct cn_snap snap;
    bool snap_ok;
    int lock_fd;
    int state;
    char *data_dir, *member_dir, *name;
    uint64_t id, cluster_id;
    struct cn_node_options opt;
    struct cn_node_member *members; /* copies for start */
    size_t nmembers;
    bool fresh;
    /* recovered state, handed to raft at start */
    struct cn_raft_hard_state hs;
    struct cn_raft_snapshot_meta snap_meta;
    struct cn_raft_entry *ents;
    size_t nents, capents;
    /* raft */
    struct cn_raft *raft;
    struct cn_peer *peer;
    bool in_ready;
    struct cn_raft_ready rd;
    uint64_t lead;
    uint8_t role;
    uint64_t term;
    uint64_t applied, applied_term, snap_index;
    bool removed;
    bool fatal;    /* unused: kept for a fatal log failure */
    bool io_retry; /* the batch failed to persist: written again on the next tick */
    uint64_t synced_term, synced_vote; /* the hard state's last term and vote handed to the log */
    /* inputs waiting for the batch */
    unsigned ticks;
    struct inbox_item *inbox;
    size_t ninbox, capinbox;
    uint64_t compact_to;
    uint64_t transfer_to;
    /* requests */
    uint64_t next_seq;
    struct cn_list queued, waiting, reads;
    struct cn_list done; /* failed early: answered on the next kick */
    uint64_t committed, applied_count, failed, npending;
    uint64_t recv_append, send_append;
    int64_t leader_since_ns;
    uint64_t leader_changes;
    struct follower_stats fstats[16];
    unsigned nfstats;
    /* io */
    uv_work_t io_work;
    bool io_busy;
    int io_rc, snap_install_rc;
    int64_t io_ns;
    uint64_t fsync_bucket[14], fsync_count;
    double fsync_sum;
    /* snapshot creation */
    uv_work_t snap_work;
    bool snapping;
    struct cn_buf snap_buf;
    uint64_t snap_work_index, snap_work_term;
    int64_t snap_encode_ns, snap_start_ns;
    int snap_rc;
    uint64_t release_to;
    uint64_t snapshots;
    /* the snapshot sent to followers (loaded from its file on demand) */
    struct cn_buf send_snap;
    uint64_t send_snap_index;
    /* handles */
    uv_timer_t kick, tick;
    int open_handles;
    int64_t transfer_deadline;
    void (*stop_cb)(void *ctx);
    void *stop_ctx;
    bool peer_closed;
    bool in_process;
    bool discard; /* a fresh member that failed to start: remove member/ when freed */
    bool removed_logged;
};

static void kick(struct cn_node *n);
static void process(struct cn_node *n);
static void maybe_finish_stop(struct cn_node *n);
static bool early_type(uint8_t t);

/* ---- encoding helpers ---------------------------------------------------------------------- */

static void env_header(struct cn_buf *b, uint64_t origin, uint64_t seq)
{
    cn_buf_put_u8(b, ENV_VERSION);
    cn_buf_put_uvarint(b, origin);
    cn_buf_put_uvarint(b, seq);
}

static bool env_decode(const void *p, size_t len, uint64_t *origin, uint64_t *seq,
                       const uint8_t **rest, size_t *rest_len)
{
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    uint8_t v = cn_rd_u8(&r);
    *origin = cn_rd_uvarint(&r);
    *seq = cn_rd_uvarint(&r);
    if (!cn_rd_ok(&r) || v != ENV_VERSION) return false;
    *rest_len = cn_rd_left(&r);
    *rest = (const uint8_t *)p + (len - *rest_len);
    return true;
}

static void conf_encode(struct cn_buf *b, const struct cn_raft_conf *c)
{
    cn_buf_put_u32(b, c->n_voters);
    for (uint32_t i = 0; i < c->n_voters; i++)
        cn_buf_put_u64(b, c->voters[i]);
    cn_buf_put_u32(b, c->n_learners);
    for (uint32_t i = 0; i < c->n_learners; i++)
        cn_buf_put_u64(b, c->learners[i]);
}

/* Splits a node snapshot into its configuration and the store's bytes. */
static int snap_decode(const void *p, size_t len, struct cn_raft_conf *conf, const void **store,
                       size_t *store_len)
{
    memset(conf, 0, sizeof(*conf));
    struct cn_rd r;
    cn_rd_init(&r, p, len);
    if (len < 5 || memcmp(p, SNAP_MAGIC, 4) != 0) return CN_ERR_CORRUPT;
    r.off = 4;
    if (cn_rd_u8(&r) != SNAP_VERSION) return CN_ERR_VERSION;
    conf->n_voters = cn_rd_u32(&r);
    if (conf->n_voters > CN_RAFT_MAX_MEMBERS) return CN_ERR_CORRUPT;
    for (uint32_t i = 0; i < conf->n_voters; i++)
        conf->voters[i] = cn_rd_u64(&r);
    conf->n_learners = cn_rd_u32(&r);
    if (conf->n_learners > CN_RAFT_MAX_MEMBERS) return CN_ERR_CORRUPT;
    for (uint32_t i = 0; i < conf->n_learners; i++)
        conf->learners[i] = cn_rd_u64(&r);
    if (!cn_rd_ok(&r)) return CN_ERR_CORRUPT;
    *store_len = cn_rd_left(&r);
    *store = (const uint8_t *)p + (len - *store_len);
    return 0;
}

/* ---- metadata ----------------------------------------------------------------------------- */

static int meta_save(struct cn_node *n, const char *name, char *errmsg)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/meta", n->member_dir);
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
    char path[4200];
    snprintf(path, sizeof(path), "%s/meta", n->member_dir);
    struct cn_buf b = CN_BUF_INIT;
    char why[256] = "";
    int rc = cn_meta_read(path, &b, why);
    if (rc == 0) {
        struct cn_rd r;
        cn_rd_init(&r, b.p, b.len);
        uint8_t v = cn_rd_u8(&r);
        n->id = cn_rd_u64(&r);
        n->cluster_id = cn_rd_u64(&r);
        struct cn_str name = cn_rd_bytes(&r);
        if (!cn_rd_ok(&r) || v != META_VERSION) rc = CN_ERR_CORRUPT;
        if (rc == 0) {
            cn_free(n->name);
            n->name = cn_xstrndup(name.p, name.len);
        }
    }
    if (rc != 0)
        snprintf(errmsg, errlen, "member metadata %s: %s%s%s", path, cn_strerror(rc),
                 *why ? ": " : "", why);
    cn_buf_free(&b);
    return rc;
}

/* ---- open and recovery -------------------------------------------------------------------- */

static int collect_entry(void *arg, const struct cn_wal_entry *e)
{
    struct cn_node *n = arg;
    if (n->nents == n->capents) {
        n->capents = n->capents ? n->capents * 2 : 1024;
        n->ents = cn_xrealloc(n->ents, n->capents * sizeof(*n->ents));
    }
    struct cn_raft_entry *x = &n->ents[n->nents++];
    x->term = e->term;
    x->index = e->index;
    x->type = e->type == WAL_CONF ? CN_RAFT_ENTRY_CONF : CN_RAFT_ENTRY_NORMAL;
    x->len = e->type == WAL_NOOP_V0 ? 0 : e->len;
    x->data = NULL;
    if (x->len) {
        x->data = cn_xmalloc(x->len);
        memcpy(x->data, e->data, x->len);
    }
    return 0;
}

static void free_ents(struct cn_node *n)
{
    for (size_t i = 0; i < n->nents; i++)
        cn_free(n->ents[i].data);
    cn_free(n->ents);
    n->ents = NULL;
    n->nents = n->capents = 0;
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

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void node_free(struct cn_node *n)
{
    if (n->discard && n->member_dir) {
        /* a first start that failed leaves no member state: a retry starts fresh */
        if (nftw(n->member_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            CN_LOGW("node", "cannot remove %s after a failed first start", n->member_dir);
    }
    if (n->wal) cn_wal_close(n->wal);
    if (n->snap_ok) cn_snap_close(&n->snap);
    if (n->lock_fd >= 0) cn_datadir_unlock(n->lock_fd);
    if (n->raft) cn_raft_free(n->raft);
    free_ents(n);
    for (size_t i = 0; i < n->nmembers; i++) {
        for (size_t j = 0; j < n->members[i].npeer; j++)
            cn_free(n->members[i].peer_urls[j]);
        cn_free((void *)n->members[i].peer_urls);
    }
    cn_free(n->members);
    for (size_t i = 0; i < n->ninbox; i++)
        cn_buf_free(&n->inbox[i].data);
    cn_free(n->inbox);
    cn_free(n->data_dir);
    cn_free(n->member_dir);
    cn_free(n->name);
    cn_buf_free(&n->snap_buf);
    cn_buf_free(&n->send_snap);
    cn_free(n);
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
    n->opt = *opt;
    n->opt.snapshot_count = opt->snapshot_count ? opt->snapshot_count : 10000;
    n->opt.election_ms = opt->election_ms ? opt->election_ms : 1000;
    n->opt.heartbeat_ms = opt->heartbeat_ms ? opt->heartbeat_ms : 100;
    n->name = cn_xstrdup(opt->name ? opt->name : "");
    n->opt.name = n->name;
    n->next_seq = 1;
    cn_list_init(&n->queued);
    cn_list_init(&n->waiting);
    cn_list_init(&n->reads);
    cn_list_init(&n->done);
    cn_buf_init(&n->snap_buf);
    cn_buf_init(&n->send_snap);
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
    char meta[4200];
    snprintf(meta, sizeof(meta), "%s/meta", n->member_dir);
    struct stat stt;
    bool fresh = stat(meta, &stt) != 0;
    if (fresh) {
        rc = mkdir_p(n->member_dir, errmsg, errlen);
        if (rc != 0) goto err;
        n->id = opt->member_id;
        n->cluster_id = opt->cluster_id;
    } else {
        rc = meta_load(n, errmsg, errlen);
        if (rc != 0) goto err;
    }
    n->fresh = fresh;
    boot->fresh = fresh;
    boot->member_id = n->id;
    boot->cluster_id = n->cluster_id;
    snprintf(boot->name, sizeof(boot->name), "%s", n->name);

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
        const void *sp;
        size_t sl;
        rc = snap_decode(data.p, data.len, &n->snap_meta.conf, &sp, &sl);
        if (rc == 0) rc = cn_store_snapshot_load(store, sp, sl);
        if (rc != 0) {
            snprintf(errmsg, errlen,
                     "snapshot %016" PRIx64 "-%016" PRIx64 ".snap passed its checksum but its "
                     "contents do not decode: %s",
                     sterm, sindex, cn_strerror(rc));
            cn_buf_free(&data);
            goto err;
        }
        n->snap_meta.index = n->applied = n->snap_index = sindex;
        n->snap_meta.term = n->applied_term = sterm;
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
    if (!fresh && !cn_wal_exists(wdir.p)) {
        snprintf(errmsg, errlen,
                 "the data dir %s has member state but no write-ahead log in %s (a --wal-dir "
                 "flag missing?)",
                 opt->data_dir, wdir.p);
        cn_buf_free(&wdir);
        rc = CN_ERR_NOT_FOUND;
        goto err;
    }
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
    struct cn_wal_hard_state whs;
    rc = cn_wal_replay(n->wal, n->snap_index, collect_entry, n, &whs);
    if (rc != 0) {
        snprintf(errmsg, errlen, "replaying the write-ahead log: %s (%s)", cn_strerror(rc),
                 cn_wal_errmsg(n->wal));
        goto err;
    }
    n->hs.term = whs.term;
    n->hs.vote = whs.vote;
    n->hs.commit = whs.commit;
    uint64_t last = n->nents ? n->ents[n->nents - 1].index : n->snap_index;
    if (n->hs.commit > last) n->hs.commit = last;
    if (n->hs.commit < n->snap_index) n->hs.commit = n->snap_index;
    boot->replayed = n->nents;
    /* The metadata file is written last: a data dir without it is not a member yet (a failed
     * first start can be retried with other flags). */
    if (fresh) {
        rc = meta_save(n, n->name, why);
        if (rc != 0) {
            snprintf(errmsg, errlen, "cannot write member metadata in %s: %s", n->member_dir,
                     *why ? why : cn_strerror(rc));
            goto err;
        }
    }
    *out = n;
    return 0;
err:
    if (rc == 0) rc = CN_ERR_INVAL;
    node_free(n);
    return rc;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void finish_req(struct cn_node *n, struct cn_node_req *r, int rc,
                       const struct cn_store_result *res)
{
    cn_list_remove(&r->link);
    if (!r->is_read) n->npending--;
    cn_buf_free(&r->data);
    if (!r->detached && r->cb) r->cb(r->ctx, rc, res);
    cn_free(r);
}

static struct cn_node_req *new_req(struct cn_node *n, bool is_read, cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = CN_NEW(struct cn_node_req);
    r->cb = cb;
    r->ctx = ctx;
    r->is_read = is_read;
    r->seq = n->next_seq++;
    cn_buf_init(&r->data);
    r->deadline_ns = cn_clock_mono_ns() + (5000 + 2 * (int64_t)n->opt.election_ms) * CN_NS_PER_MS;
    if (!is_read) n->npending++;
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

static bool accepting(const struct cn_node *n)
{
    return n->state == S_RUNNING && !n->removed;
}

struct cn_node_req *cn_node_propose(struct cn_node *n, const void *cmd, size_t len,
                                    cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = new_req(n, false, cb, ctx);
    if (!accepting(n)) return fail_later(n, r, CN_ERR_STOPPED);
    r->kind = K_NORMAL;
    cn_buf_put_uvarint(&r->data, r->seq);
    cn_buf_put_u8(&r->data, K_NORMAL);
    r->body_off = r->data.len;
    env_header(&r->data, n->id, r->seq);
    cn_buf_append(&r->data, cmd, len);
    r->state = R_QUEUED;
    cn_list_insert_tail(&n->queued, &r->link);
    kick(n);
    return r;
}

static struct cn_node_req *propose_conf(struct cn_node *n, uint8_t op, uint64_t id,
                                        const struct cn_buf *cmds, cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = new_req(n, false, cb, ctx);
    if (!accepting(n)) return fail_later(n, r, CN_ERR_STOPPED);
    r->kind = K_CONF;
    r->conf_op = op;
    r->conf_id = id;
    struct cn_buf c = CN_BUF_INIT;
    env_header(&c, n->id, r->seq);
    if (cmds) cn_buf_append(&c, cmds->p, cmds->len);
    struct cn_raft_conf_change cc = {op, id, c.p, c.len};
    cn_buf_put_uvarint(&r->data, r->seq);
    cn_buf_put_u8(&r->data, K_CONF);
    r->body_off = r->data.len;
    cn_raft_conf_change_encode(&cc, &r->data);
    cn_buf_free(&c);
    r->state = R_QUEUED;
    cn_list_insert_tail(&n->queued, &r->link);
    kick(n);
    return r;
}

struct cn_node_req *cn_node_add_member(struct cn_node *n, uint64_t id, const struct cn_buf *records,
                                       cn_node_done_cb cb, void *ctx)
{
    return propose_conf(n, CN_RAFT_CONF_ADD_LEARNER, id, records, cb, ctx);
}

struct cn_node_req *cn_node_remove_member(struct cn_node *n, uint64_t id,
                                          const struct cn_buf *records, cn_node_done_cb cb,
                                          void *ctx)
{
    return propose_conf(n, CN_RAFT_CONF_REMOVE, id, records, cb, ctx);
}

struct cn_node_req *cn_node_read_index(struct cn_node *n, cn_node_done_cb cb, void *ctx)
{
    struct cn_node_req *r = new_req(n, true, cb, ctx);
    if (!accepting(n)) return fail_later(n, r, CN_ERR_STOPPED);
    r->state = R_QUEUED;
    cn_list_insert_tail(&n->reads, &r->link);
    kick(n);
    return r;
}

void cn_node_req_detach(struct cn_node_req *r)
{
    if (r) r->detached = true;
}

static struct cn_node_req *find_waiting(struct cn_node *n, uint64_t seq)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->waiting) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->seq == seq) return r;
    }
    return NULL;
}

/* ---- peers -------------------------------------------------------------------------------- */

static void inbox_push(struct cn_node *n, uint8_t what, uint64_t from, const void *p, size_t len)
{
    if (n->ninbox >= MAX_INBOX) return; /* Raft retries what is dropped */
    if (n->ninbox == n->capinbox) {
        n->capinbox = n->capinbox ? n->capinbox * 2 : 64;
        n->inbox = cn_xrealloc(n->inbox, n->capinbox * sizeof(*n->inbox));
    }
    struct inbox_item *it = &n->inbox[n->ninbox++];
    it->what = what;
    it->from = from;
    cn_buf_init(&it->data);
    if (len) cn_buf_append(&it->data, p, len);
}

static void on_peer_frame(void *ctx, uint64_t from, uint8_t kind, const void *p, size_t len)
{
    struct cn_node *n = ctx;
    if (n->state == S_CLOSED || n->state == S_OPEN) return;
    if (kind == CN_PEER_KIND_RAFT || kind == CN_PEER_KIND_PROP || kind == CN_PEER_KIND_PROP_FAIL)
        inbox_push(n, kind, from, p, len);
    process(n);
}

static void on_peer_closed(void *ctx, uint64_t from)
{
    struct cn_node *n = ctx;
    if (n->state == S_CLOSED || n->state == S_OPEN || from != n->lead) return;
    CN_LOGI("node", "the leader closed its connection leader=%" PRIx64, from);
    inbox_push(n, IN_LEADER_GONE, from, NULL, 0);
    process(n);
}

static bool peer_is_removed(void *ctx, uint64_t id)
{
    struct cn_node *n = ctx;
    return cn_members_is_removed(n->store, id);
}

static void on_told_removed(void *ctx, uint64_t by)
{
    struct cn_node *n = ctx;
    if (n->state == S_CLOSED || n->state == S_OPEN || n->removed) return;
    CN_LOGN("node", "member %" PRIx64 " says this member was removed from the cluster", by);
    n->removed = true;
    process(n);
}

static int on_peer_http(void *ctx, const char *path, struct cn_buf *body)
{
    struct cn_node *n = ctx;
    if (n->opt.peer_http_get == NULL) return 404;
    return n->opt.peer_http_get(n->opt.cb_ctx, path, body);
}

/* Points the transport at every member recorded in the store. */
static void refresh_addrs(struct cn_node *n)
{
    if (n->peer == NULL) return;
    struct cn_member_list l;
    cn_members_load(n->store, &l);
    for (size_t i = 0; i < l.n; i++)
        if (l.m[i].id != n->id && l.m[i].n_peer)
            cn_peer_set_addr(n->peer, l.m[i].id, l.m[i].peer_urls[0]);
    cn_member_list_free(&l);
}

static struct follower_stats *fstat_of(struct cn_node *n, uint64_t id)
{
    for (unsigned i = 0; i < n->nfstats; i++)
        if (n->fstats[i].id == id) return &n->fstats[i];
    if (n->nfstats == 16) return NULL;
    struct follower_stats *f = &n->fstats[n->nfstats++];
    memset(f, 0, sizeof(*f));
    f->id = f->st.id = id;
    return f;
}

static void send_msg(struct cn_node *n, struct cn_raft_msg *m)
{
    if (m->type == CN_RAFT_MSG_SNAP && m->snap_data == NULL) {
        if (n->send_snap_index != m->snap.index) {
            struct cn_buf data = CN_BUF_INIT;
            uint64_t t = 0, i = 0;
            int rc = cn_snap_load(&n->snap, &data, &t, &i);
            if (rc != 0 || i != m->snap.index) {
                CN_LOGW("node", "no snapshot file for index=%" PRIu64 " to send to %" PRIx64,
                        m->snap.index, m->to);
                cn_buf_free(&data);
                inbox_push(n, IN_SNAP_REPORT, m->to, "\0", 1);
                return;
            }
            cn_buf_free(&n->send_snap);
            n->send_snap = data;
            n->send_snap_index = i;
        }
        m->snap_data = n->send_snap.p;
        m->snap_len = n->send_snap.len;
        CN_LOGI("node", "sending snapshot to=%" PRIx64 " index=%" PRIu64 " bytes=%zu", m->to,
                m->snap.index, m->snap_len);
    }
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(m, &b);
    int rc = cn_peer_send(n->peer, m->to, CN_PEER_KIND_RAFT, b.p, b.len);
    cn_buf_free(&b);
    if (m->type == CN_RAFT_MSG_SNAP) inbox_push(n, IN_SNAP_REPORT, m->to, rc == 0 ? "\1" : "\0", 1);
    if (m->type == CN_RAFT_MSG_APP) n->send_append++;
    if (m->type == CN_RAFT_MSG_APP || m->type == CN_RAFT_MSG_HEARTBEAT) {
        struct follower_stats *f = fstat_of(n, m->to);
        if (f) {
            if (rc != 0)
                f->st.fail++;
            else if (f->sent_ns == 0)
                f->sent_ns = cn_clock_mono_ns();
        }
    }
}

static void note_response(struct cn_node *n, const struct cn_raft_msg *m)
{
    if (m->type == CN_RAFT_MSG_APP) n->recv_append++;
    if (m->type != CN_RAFT_MSG_APP_RESP && m->type != CN_RAFT_MSG_HEARTBEAT_RESP) return;
    struct follower_stats *f = fstat_of(n, m->from);
    if (f == NULL) return;
    f->st.success++;
    if (f->sent_ns == 0) return;
    double ms = (double)(cn_clock_mono_ns() - f->sent_ns) / 1e6;
    f->sent_ns = 0;
    f->st.lat_current = ms;
    if (f->st.lat_n == 0 || ms < f->st.lat_min) f->st.lat_min = ms;
    if (ms > f->st.lat_max) f->st.lat_max = ms;
    f->st.lat_n++;
    f->st.lat_sum += ms;
    f->st.lat_sq += ms * ms;
}

/* ---- feeding raft ------------------------------------------------------------------------- */

static void forward_fail(struct cn_node *n, uint64_t to, uint64_t seq, int rc)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_put_uvarint(&b, seq);
    cn_buf_put_u32(&b, (uint32_t)rc);
    (void)cn_peer_send(n->peer, to, CN_PEER_KIND_PROP_FAIL, b.p, b.len);
    cn_buf_free(&b);
}

/* Leader: proposes a request's data. */
static int raft_propose(struct cn_node *n, uint8_t kind, const void *p, size_t len)
{
    if (kind == K_NORMAL) return cn_raft_propose(n->raft, p, len, NULL, NULL);
    struct cn_raft_conf_change cc;
    int rc = cn_raft_conf_change_decode(p, len, &cc);
    if (rc != 0) return CN_ERR_INVAL;
    return cn_raft_propose_conf(n->raft, &cc, NULL, NULL);
}

static bool retryable(int rc)
{
    return rc == CN_ERR_NO_LEADER || rc == -EBUSY || rc == -ENOBUFS || rc == -ENOTCONN;
}

static void drain_inbox(struct cn_node *n)
{
    for (size_t i = 0; i < n->ninbox; i++) {
        struct inbox_item *it = &n->inbox[i];
        if (it->what == CN_PEER_KIND_RAFT) {
            struct cn_raft_msg m;
            struct cn_raft_entry *ents = NULL;
            if (cn_raft_msg_decode(it->data.p, it->data.len, &m, &ents) == 0) {
                if (m.from == it->from) {
                    note_response(n, &m);
                    cn_raft_step(n->raft, &m);
                }
                cn_free(ents);
            } else {
                CN_LOGW("node", "dropping undecodable raft message from=%" PRIx64, it->from);
            }
        } else if (it->what == CN_PEER_KIND_PROP) {
            struct cn_rd r;
            cn_rd_init(&r, it->data.p, it->data.len);
            uint64_t seq = cn_rd_uvarint(&r);
            uint8_t kind = cn_rd_u8(&r);
            size_t left = cn_rd_left(&r);
            int rc = CN_ERR_CORRUPT;
            if (cn_rd_ok(&r))
                rc = raft_propose(n, kind, (const uint8_t *)it->data.p + (it->data.len - left),
                                  left);
            if (rc != 0) forward_fail(n, it->from, seq, rc);
        } else if (it->what == CN_PEER_KIND_PROP_FAIL) {
            struct cn_rd r;
            cn_rd_init(&r, it->data.p, it->data.len);
            uint64_t seq = cn_rd_uvarint(&r);
            int rc = (int)cn_rd_u32(&r);
            struct cn_node_req *q = cn_rd_ok(&r) ? find_waiting(n, seq) : NULL;
            if (q) {
                cn_list_remove(&q->link);
                if (retryable(rc)) {
                    q->state = R_QUEUED;
                    q->proposed = false;
                    cn_list_insert_tail(&n->queued, &q->link);
                } else {
                    cn_list_insert_tail(&n->waiting, &q->link);
                    n->failed++;
                    finish_req(n, q, rc, NULL);
                }
            }
        } else if (it->what == IN_LEADER_GONE) {
            cn_raft_leader_unreachable(n->raft, it->from);
        } else if (it->what == IN_SNAP_REPORT) {
            cn_raft_report_snapshot(n->raft, it->from, it->data.len && it->data.p[0] == 1);
        }
        cn_buf_free(&it->data);
    }
    n->ninbox = 0;
}

static void feed(struct cn_node *n)
{
    while (n->ticks) {
        n->ticks--;
        cn_raft_tick(n->raft);
    }
    drain_inbox(n);
    if (n->compact_to) {
        if (cn_raft_compact(n->raft, n->compact_to) == 0) n->release_to = n->compact_to;
        n->compact_to = 0;
    }
    if (n->transfer_to) {
        int rc = cn_raft_transfer(n->raft, n->transfer_to);
        CN_LOGN("node", "handing leadership over to=%" PRIx64 " rc=%d", n->transfer_to, rc);
        n->transfer_to = 0;
    }
    bool leader = n->role == CN_RAFT_LEADER;
    struct cn_list *it, *tmp;
    if (n->lead != CN_RAFT_NONE) {
        CN_LIST_FOREACH(it, tmp, &n->queued) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            int rc;
            if (leader)
                rc = raft_propose(n, r->kind, r->data.p + r->body_off, r->data.len - r->body_off);
            else
                rc = cn_peer_send(n->peer, n->lead, CN_PEER_KIND_PROP, r->data.p, r->data.len);
            if (rc != 0 && retryable(rc)) continue;
            cn_list_remove(&r->link);
            cn_list_insert_tail(&n->waiting, &r->link);
            if (rc != 0) {
                n->failed++;
                finish_req(n, r, rc, NULL);
                continue;
            }
            r->state = R_WAITING;
            r->proposed = true;
            cn_buf_free(&r->data);
            cn_buf_init(&r->data);
        }
        CN_LIST_FOREACH(it, tmp, &n->reads) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            if (r->state != R_QUEUED) continue;
            if (cn_raft_read_index(n->raft, r->seq) == 0) r->state = R_READ_WAIT;
        }
    }
}

/* ---- applying ----------------------------------------------------------------------------- */

static void apply_cmds(struct cn_node *n, const uint8_t *p, size_t len, struct cn_store_result *res,
                       bool *sys)
{
    size_t off = 0;
    const void *c;
    size_t l;
    int rc;
    while ((rc = cn_members_batch_next(p, len, &off, &c, &l)) == 1) {
        if (cn_store_apply(n->store, c, l, res) != 0)
            CN_LOGE("node", "cannot apply a member record command");
        *sys = true;
    }
    if (rc != 0) CN_LOGE("node", "a member record batch is cut short");
}

static void apply_entry(struct cn_node *n, const struct cn_raft_entry *e, bool *sys)
{
    uint64_t origin = 0, seq = 0;
    const uint8_t *rest;
    size_t rest_len;
    struct cn_store_result res;
    memset(&res, 0, sizeof(res));
    int rc = 0;
    bool have = false;
    if (e->type == CN_RAFT_ENTRY_NORMAL && e->len) {
        if (env_decode(e->data, e->len, &origin, &seq, &rest, &rest_len)) {
            struct cn_store_cmd c;
            rc = cn_store_cmd_decode(rest, rest_len, &c);
            if (rc == 0) {
                cn_store_apply_cmd(n->store, &c, &res);
                if (c.ns == CN_NS_SYS) *sys = true;
            }
            have = true;
        } else {
            rc = CN_ERR_CORRUPT;
        }
        if (rc != 0)
            CN_LOGE("node", "cannot apply entry index=%" PRIu64 " err=%s", e->index,
                    cn_strerror(rc));
    } else if (e->type == CN_RAFT_ENTRY_CONF) {
        struct cn_raft_conf_change cc;
        if (cn_raft_conf_change_decode(e->data, e->len, &cc) == 0) {
            if (cc.ctx_len && env_decode(cc.ctx, cc.ctx_len, &origin, &seq, &rest, &rest_len))
                apply_cmds(n, rest, rest_len, &res, sys);
            *sys = true;
            static const char *ops[] = {"?", "add learner", "promote", "remove", "add voter"};
            CN_LOGN("node", "membership change applied op=\"%s\" member=%" PRIx64 " index=%" PRIu64,
                    cc.op <= 4 ? ops[cc.op] : "?", cc.id, e->index);
            if (cc.op == CN_RAFT_CONF_REMOVE) {
                if (cc.id == n->id) {
                    n->removed = true;
                } else if (n->peer) {
                    /* its links go; when it dials again the transport tells it it was removed */
                    cn_peer_set_addr(n->peer, cc.id, NULL);
                    cn_peer_disconnect(n->peer, cc.id);
                }
            }
        }
        res.ev = NULL;
        have = false;
    }
    n->applied = e->index;
    n->applied_term = e->term;
    if (origin == n->id && seq) {
        struct cn_node_req *r = find_waiting(n, seq);
        if (r) {
            n->committed++;
            if (rc == 0) n->applied_count++;
            finish_req(n, r, rc, have && rc == 0 ? &res : NULL);
        }
    }
}

static void serve_reads(struct cn_node *n)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->state == R_READ_READY && n->applied >= r->index) finish_req(n, r, 0, NULL);
    }
}

/* ---- snapshots ---------------------------------------------------------------------------- */

static void snap_work(uv_work_t *w)
{
    struct cn_node *n = w->data;
    n->snap_rc = cn_snap_save(&n->snap, n->snap_work_term, n->snap_work_index, n->snap_buf.p,
                              n->snap_buf.len);
    if (n->snap_rc == 0 && n->opt.max_snapshots) cn_snap_purge(&n->snap, n->opt.max_snapshots);
}

static void snap_after(uv_work_t *w, int status)
{
    struct cn_node *n = w->data;
    n->snapping = false;
    int rc = status != 0 ? status : n->snap_rc;
    if (rc == 0) {
        n->snap_index = n->snap_work_index;
        n->snapshots++;
        n->compact_to = n->snap_work_index;
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
    cn_buf_init(&n->snap_buf);
    kick(n);
    maybe_finish_stop(n);
}

static void maybe_snapshot(struct cn_node *n)
{
    if (n->snapping || n->state == S_CLOSED || n->state == S_STOPPING) return;
    if (n->applied - n->snap_index < n->opt.snapshot_count) return;
    /* Encoded on the loop (the store is single-threaded), written and fsynced on the pool. */
    n->snap_start_ns = cn_clock_mono_ns();
    struct cn_raft_conf conf;
    cn_raft_conf_at(n->raft, n->applied, &conf);
    cn_buf_reset(&n->snap_buf);
    cn_buf_append(&n->snap_buf, SNAP_MAGIC, 4);
    cn_buf_put_u8(&n->snap_buf, SNAP_VERSION);
    conf_encode(&n->snap_buf, &conf);
    cn_store_snapshot_save(n->store, &n->snap_buf);
    n->snap_encode_ns = cn_clock_mono_ns() - n->snap_start_ns;
    n->snap_work_index = n->applied;
    n->snap_work_term = n->applied_term;
    n->snapping = true;
    n->snap_work.data = n;
    int rc = uv_queue_work(n->loop, &n->snap_work, snap_work, snap_after);
    CN_ASSERT(rc == 0);
}

/* ---- the ready loop ----------------------------------------------------------------------- */

static void io_work(uv_work_t *w)
{
    struct cn_node *n = w->data;
    int64_t t0 = cn_clock_mono_ns();
    n->snap_install_rc = 0;
    if (n->rd.snapshot) {
        const struct cn_raft_snapshot *s = n->rd.snapshot;
        n->snap_install_rc = cn_snap_save(&n->snap, s->meta.term, s->meta.index, s->data, s->len);
    }
    n->io_rc = n->snap_install_rc ? n->snap_install_rc : cn_wal_flush_run(n->wal);
    n->io_ns = cn_clock_mono_ns() - t0;
}

static void finish_ready(struct cn_node *n);

static void io_after(uv_work_t *w, int status)
{
    struct cn_node *n = w->data;
    n->io_busy = false;
    int rc = status != 0 ? status : n->io_rc;
    if (n->snap_install_rc == 0 || status != 0) {
        cn_wal_flush_end(n->wal, rc);
    } else {
        /* the batch never ran: give it back as failed */
        cn_wal_flush_end(n->wal, rc);
    }
    double s = (double)n->io_ns / 1e9;
    for (int i = 0; i < 14; i++)
        if (s <= cn_node_fsync_buckets[i]) {
            n->fsync_bucket[i]++;
            break;
        }
    n->fsync_count++;
    n->fsync_sum += s;
    if (rc != 0) {
        /* The log cannot take this batch (disk full, I/O error). The batch stays outstanding
         * and is written again every tick until it succeeds; Raft takes no input meanwhile, so
         * this member acknowledges nothing it has not made durable. Requests waiting here fail
         * now with the error (their entries may still commit later: outcome unknown). */
        if (!n->io_retry)
            CN_LOGE("node", "write-ahead log write failed err=\"%s\" detail=\"%s\": retrying",
                    cn_strerror(rc), cn_wal_errmsg(n->wal));
        n->io_retry = true;
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &n->waiting) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            n->failed++;
            finish_req(n, r, rc, NULL);
        }
        maybe_finish_stop(n);
        return;
    }
    if (n->io_retry) CN_LOGN("node", "write-ahead log writes succeed again");
    n->io_retry = false;
    finish_ready(n);
    process(n);
}

static void start_io(struct cn_node *n)
{
    if (n->release_to && !n->snapping) {
        int rc = cn_wal_release_to(n->wal, n->release_to);
        if (rc < 0)
            CN_LOGW("node", "releasing old log segments failed err=\"%s\"", cn_strerror(rc));
        n->release_to = 0;
    }
    /* etcd's MustSync: entries, a snapshot, or a new term or vote must be durable before the
     * batch's messages go out; a commit index alone need not (it is re-learned from the
     * leader), so it rides along with the next write instead of costing an fsync. */
    const struct cn_raft_ready *rd = &n->rd;
    bool must = rd->n_entries > 0 || rd->snapshot != NULL ||
                (rd->has_hard_state &&
                 (rd->hard_state.term != n->synced_term || rd->hard_state.vote != n->synced_vote));
    if (rd->has_hard_state) {
        n->synced_term = rd->hard_state.term;
        n->synced_vote = rd->hard_state.vote;
    }
    bool has = must && cn_wal_flush_begin(n->wal);
    if (!has && n->rd.snapshot == NULL) {
        finish_ready(n);
        return;
    }
    n->io_busy = true;
    n->io_work.data = n;
    int rc = uv_queue_work(n->loop, &n->io_work, io_work, io_after);
    CN_ASSERT(rc == 0);
}

static void leader_changed(struct cn_node *n, uint64_t lead)
{
    if (lead != CN_RAFT_NONE) {
        n->leader_changes++;
        n->leader_since_ns = cn_clock_real_ns();
        CN_LOGN("node", "leader is %" PRIx64 " term=%" PRIu64 " self=%" PRIx64 "%s", lead, n->term,
                n->id, lead == n->id ? " (this member)" : "");
    } else {
        CN_LOGI("node", "lost the leader term=%" PRIu64, n->term);
    }
    n->lead = lead;
    for (unsigned i = 0; i < n->nfstats; i++)
        n->fstats[i].sent_ns = 0;
    /* Raft drops pending reads on a leader change: ask again. */
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->reads) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->state == R_READ_WAIT) r->state = R_QUEUED;
    }
}

/* Steps 1-4 of raft.h's loop once the batch is durable. */
static void finish_ready(struct cn_node *n)
{
    struct cn_raft_ready *rd = &n->rd;
    if (rd->snapshot) {
        const struct cn_raft_snapshot *s = rd->snapshot;
        struct cn_raft_conf conf;
        const void *sp;
        size_t sl;
        int rc = snap_decode(s->data, s->len, &conf, &sp, &sl);
        if (rc == 0) rc = cn_store_snapshot_load(n->store, sp, sl);
        if (rc != 0) {
            CN_LOGE("node", "cannot load the snapshot received index=%" PRIu64 " err=%s",
                    s->meta.index, cn_strerror(rc));
        } else {
            n->applied = n->snap_index = s->meta.index;
            n->applied_term = s->meta.term;
            n->release_to = s->meta.index;
            CN_LOGN("node", "installed snapshot index=%" PRIu64 " term=%" PRIu64 " bytes=%zu",
                    s->meta.index, s->meta.term, s->len);
            refresh_addrs(n);
        }
    }
    for (size_t i = 0; i < rd->n_msgs; i++)
        if (rd->role != CN_RAFT_LEADER || !early_type(rd->msgs[i].type)) send_msg(n, &rd->msgs[i]);
    bool sys = false;
    for (size_t i = 0; i < rd->n_committed; i++) {
        if (rd->committed[i].index <= n->applied) continue;
        apply_entry(n, &rd->committed[i], &sys);
    }
    if (sys) refresh_addrs(n);
    for (size_t i = 0; i < rd->n_reads; i++) {
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &n->reads) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            if (r->seq == rd->reads[i].ctx && r->state == R_READ_WAIT) {
                r->state = R_READ_READY;
                r->index = rd->reads[i].index;
            }
        }
    }
    serve_reads(n);
    cn_raft_advance(n->raft, rd);
    n->in_ready = false;
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    n->term = st.term;
    n->role = st.role;
    if (st.lead != n->lead) leader_changed(n, st.lead);
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
        if (early_type(n->rd.msgs[i].type)) send_msg(n, &n->rd.msgs[i]);
}

/* Appends the outstanding batch's entries and hard state to the log's pending batch. */
static void stage_ready(struct cn_node *n)
{
    const struct cn_raft_ready *rd = &n->rd;
    int rc = 0;
    for (size_t i = 0; i < rd->n_entries && rc == 0; i++) {
        const struct cn_raft_entry *e = &rd->entries[i];
        struct cn_wal_entry we = {e->term, e->index,
                                  e->type == CN_RAFT_ENTRY_CONF ? WAL_CONF : WAL_NORMAL, e->data,
                                  e->len};
        rc = cn_wal_append_entry(n->wal, &we);
    }
    CN_ASSERT(rc == 0); /* raft bounds entries far below the WAL's record limit */
    if (rd->has_hard_state) {
        struct cn_wal_hard_state hs = {rd->hard_state.term, rd->hard_state.vote,
                                       rd->hard_state.commit};
        cn_wal_set_hard_state(n->wal, &hs);
    }
}

static void process(struct cn_node *n)
{
    if (n->in_process || n->raft == NULL || n->state == S_CLOSED) return;
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
        stage_ready(n);
        start_io(n); /* finishes synchronously when nothing needs the disk */
    }
    n->in_process = false;
    if (n->removed && !n->removed_logged && n->state != S_CLOSED && n->state != S_STOPPING &&
        !n->in_ready) {
        n->removed_logged = true;
        /* a removal of this member asked here committed (that is how we know): answer it */
        struct cn_list *it, *tmp;
        CN_LIST_FOREACH(it, tmp, &n->waiting) {
            struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
            if (r->kind == K_CONF && r->conf_op == CN_RAFT_CONF_REMOVE && r->conf_id == n->id)
                finish_req(n, r, 0, NULL);
        }
        if (!n->fatal)
            CN_LOGN("node", "the member has been permanently removed from the cluster id=%" PRIx64,
                    n->id);
        void (*cb)(void *) = n->opt.on_removed;
        n->opt.on_removed = NULL;
        if (cb) cb(n->opt.cb_ctx);
    }
    maybe_finish_stop(n);
}

/* ---- timers ------------------------------------------------------------------------------- */

static void answer_done(struct cn_node *n)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, &n->done) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        finish_req(n, r, r->rc, NULL);
    }
}

static void kick_cb(uv_timer_t *t)
{
    struct cn_node *n = t->data;
    answer_done(n);
    process(n);
}

static void kick(struct cn_node *n)
{
    if (n->state == S_CLOSED || n->open_handles == 0 || uv_is_closing((uv_handle_t *)&n->kick))
        return;
    uv_timer_start(&n->kick, kick_cb, 0, 0);
}

static void expire(struct cn_node *n, struct cn_list *l, int64_t now)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, l) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        if (r->deadline_ns > now) continue;
        if (r->proposed && !r->is_read) {
            /* It may still commit: etcd's timeout means "outcome unknown". Keep it to match
             * the entry if it comes, but answer now. */
            if (!r->detached && r->cb) r->cb(r->ctx, CN_ERR_TIMEOUT, NULL);
            r->detached = true;
            if (r->deadline_ns + 60 * CN_NS_PER_S <= now) {
                n->failed++;
                finish_req(n, r, CN_ERR_TIMEOUT, NULL);
            }
            continue;
        }
        n->failed += !r->is_read;
        finish_req(n, r, n->lead ? CN_ERR_TIMEOUT : CN_ERR_NO_LEADER, NULL);
    }
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
        if (match == 0 || match + PROMOTE_WITHIN < st.last_index) continue;
        struct cn_raft_conf_change cc = {CN_RAFT_CONF_PROMOTE, id, NULL, 0};
        if (cn_raft_propose_conf(n->raft, &cc, NULL, NULL) == 0)
            CN_LOGN("node", "promoting caught-up member to voter id=%" PRIx64 " match=%" PRIu64, id,
                    match);
        break;
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct cn_node *n = t->data;
    n->ticks++;
    int64_t now = cn_clock_mono_ns();
    expire(n, &n->queued, now);
    expire(n, &n->waiting, now);
    expire(n, &n->reads, now);
    maybe_promote(n);
    if (n->io_retry && !n->io_busy) {
        stage_ready(n);
        start_io(n);
    }
    if (n->state == S_TRANSFER && (n->lead != n->id || now >= n->transfer_deadline)) {
        if (n->lead != n->id)
            CN_LOGN("node", "leadership handed over to=%" PRIx64, n->lead);
        else
            CN_LOGW("node", "leadership transfer did not finish in time: stopping anyway");
        n->state = S_STOPPING;
    }
    process(n);
}

/* ---- start -------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* --force-new-cluster: keep what is committed, drop the rest, and append (as committed) the
 * removal of every other member, so this member is a cluster of one with the same data and the
 * same cluster id. */
static int force_new_cluster(struct cn_node *n, char *errmsg, size_t errlen)
{
    while (n->nents && n->ents[n->nents - 1].index > n->hs.commit) {
        cn_free(n->ents[n->nents - 1].data);
        n->nents--;
    }
    struct cn_raft_conf conf = n->snap_meta.conf;
    for (size_t i = 0; i < n->nents; i++) {
        if (n->ents[i].type != CN_RAFT_ENTRY_CONF) continue;
        struct cn_raft_conf_change cc;
        if (cn_raft_conf_change_decode(n->ents[i].data, n->ents[i].len, &cc) != 0) continue;
        struct cn_raft_conf *c = &conf;
        /* the same rules as raft's confApply, enough for a committed log */
        if (cc.op == CN_RAFT_CONF_ADD_LEARNER) c->learners[c->n_learners++] = cc.id;
        if (cc.op == CN_RAFT_CONF_ADD_VOTER) c->voters[c->n_voters++] = cc.id;
        if (cc.op == CN_RAFT_CONF_PROMOTE || cc.op == CN_RAFT_CONF_REMOVE) {
            for (uint32_t k = 0; k < c->n_learners; k++)
                if (c->learners[k] == cc.id) c->learners[k--] = c->learners[--c->n_learners];
            if (cc.op == CN_RAFT_CONF_REMOVE)
                for (uint32_t k = 0; k < c->n_voters; k++)
                    if (c->voters[k] == cc.id) c->voters[k--] = c->voters[--c->n_voters];
            if (cc.op == CN_RAFT_CONF_PROMOTE) c->voters[c->n_voters++] = cc.id;
        }
        if (c->n_voters > CN_RAFT_MAX_MEMBERS || c->n_learners > CN_RAFT_MAX_MEMBERS) break;
    }
    uint64_t others[2 * CN_RAFT_MAX_MEMBERS];
    size_t nothers = 0;
    bool self = false;
    for (uint32_t i = 0; i < conf.n_voters; i++)
        if (conf.voters[i] != n->id)
            others[nothers++] = conf.voters[i];
        else
            self = true;
    for (uint32_t i = 0; i < conf.n_learners; i++)
        if (conf.learners[i] != n->id) others[nothers++] = conf.learners[i];
    if (!self) {
        snprintf(errmsg, errlen,
                 "--force-new-cluster: this member (%" PRIx64 ") is not a voting member of the "
                 "configuration in its data dir",
                 n->id);
        return CN_ERR_INVAL;
    }
    uint64_t last = n->nents ? n->ents[n->nents - 1].index : n->snap_meta.index;
    uint64_t term = n->nents ? n->ents[n->nents - 1].term : n->snap_meta.term;
    if (n->hs.term > term) term = n->hs.term;
    for (size_t i = 0; i < nothers; i++) {
        struct cn_buf cmds = CN_BUF_INIT;
        cn_members_batch_remove(&cmds, others[i], 0);
        struct cn_buf ctx = CN_BUF_INIT;
        env_header(&ctx, 0, 0);
        cn_buf_append(&ctx, cmds.p, cmds.len);
        struct cn_raft_conf_change cc = {CN_RAFT_CONF_REMOVE, others[i], ctx.p, ctx.len};
        struct cn_buf enc = CN_BUF_INIT;
        cn_raft_conf_change_encode(&cc, &enc);
        struct cn_wal_entry we = {term, ++last, WAL_CONF, enc.p, enc.len};
        int rc = cn_wal_append_entry(n->wal, &we);
        struct cn_wal_entry copy = we;
        if (rc == 0) collect_entry(n, &copy);
        cn_buf_free(&enc);
        cn_buf_free(&ctx);
        cn_buf_free(&cmds);
        if (rc != 0) return rc;
    }
    n->hs.commit = last;
    n->hs.term = term;
    struct cn_wal_hard_state whs = {n->hs.term, n->hs.vote, n->hs.commit};
    cn_wal_set_hard_state(n->wal, &whs);
    int rc = cn_wal_sync(n->wal);
    if (rc != 0) {
        snprintf(errmsg, errlen, "--force-new-cluster: writing the log: %s", cn_strerror(rc));
        return rc;
    }
    CN_LOGW("node",
            "forcing a new cluster: removed %zu other member(s); this member keeps the data "
            "and the cluster cluster=%" PRIx64,
            nothers, n->cluster_id);
    return 0;
}

static int node_start(struct cn_node *n, char *errmsg, size_t errlen);

int cn_node_start(struct cn_node *n, char *errmsg, size_t errlen)
{
    int rc = node_start(n, errmsg, errlen);
    if (rc != 0 && n->fresh) n->discard = true;
    return rc;
}

static int node_start(struct cn_node *n, char *errmsg, size_t errlen)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) seed = (uint64_t)cn_clock_mono_ns();
    struct cn_raft_config cfg;
    cn_raft_config_default(&cfg);
    cfg.id = n->id;
    cfg.seed = seed ^ n->id;
    cfg.pre_vote = true;
    cfg.check_quorum = true;
    unsigned et = n->opt.election_ms / n->opt.heartbeat_ms;
    cfg.election_ticks = et < 2 ? 2 : et;
    cfg.heartbeat_ticks = 1;
    cfg.max_entry_bytes = 16u << 20; /* requests are bounded by --max-request-bytes first */
    if (n->opt.force_new_cluster && !n->fresh) {
        int rc = force_new_cluster(n, errmsg, errlen);
        if (rc != 0) return rc;
    }
    n->synced_term = n->hs.term;
    n->synced_vote = n->hs.vote;
    n->raft = cn_raft_new(&cfg);
    int rc = cn_raft_load(n->raft, &n->hs, &n->snap_meta, n->ents, n->nents);
    free_ents(n);
    if (rc != 0) {
        snprintf(errmsg, errlen, "the log in the data dir is inconsistent with its snapshot");
        return rc;
    }
    if (n->fresh && n->opt.mode == CN_NODE_NEW) {
        struct cn_node_member *ms = n->members;
        size_t nm = n->nmembers;
        /* Every founder writes the same entries: members sorted by id. */
        for (size_t i = 1; i < nm; i++)
            for (size_t j = i; j > 0 && ms[j].id < ms[j - 1].id; j--) {
                struct cn_node_member t = ms[j];
                ms[j] = ms[j - 1];
                ms[j - 1] = t;
            }
        struct cn_raft_conf conf;
        memset(&conf, 0, sizeof(conf));
        struct cn_buf ctxs[CN_RAFT_MAX_MEMBERS];
        for (size_t i = 0; i < nm && i < CN_RAFT_MAX_MEMBERS; i++) {
            conf.voters[conf.n_voters++] = ms[i].id;
            cn_buf_init(&ctxs[i]);
            env_header(&ctxs[i], 0, 0);
            cn_members_batch_join(&ctxs[i], ms[i].id, ms[i].peer_urls, ms[i].npeer, 0);
        }
        qsort(conf.voters, conf.n_voters, sizeof(uint64_t), cmp_u64);
        rc = cn_raft_bootstrap_ctx(n->raft, &conf, ctxs);
        for (size_t i = 0; i < conf.n_voters; i++)
            cn_buf_free(&ctxs[i]);
        if (rc != 0) {
            snprintf(errmsg, errlen, "cannot bootstrap the initial cluster configuration");
            return rc;
        }
    }
    n->peer = cn_peer_new(n->loop, n->cluster_id, n->id,
                          &(struct cn_peer_callbacks){on_peer_frame, on_peer_http, on_peer_closed,
                                                      peer_is_removed, on_told_removed},
                          n);
    for (size_t i = 0; i < n->opt.nlisten; i++) {
        rc =
            cn_peer_listen(n->peer, n->opt.listen_hosts[i], n->opt.listen_ports[i], errmsg, errlen);
        if (rc != 0) return rc;
    }
    /* addresses: the store's member records, and the ones we were given (joining) */
    refresh_addrs(n);
    if (n->fresh)
        for (size_t i = 0; i < n->nmembers; i++)
            if (n->members[i].npeer && n->members[i].id != n->id)
                cn_peer_set_addr(n->peer, n->members[i].id, n->members[i].peer_urls[0]);
    uv_timer_init(n->loop, &n->kick);
    uv_timer_init(n->loop, &n->tick);
    n->kick.data = n->tick.data = n;
    n->open_handles = 2;
    n->state = S_RUNNING;
    uv_timer_start(&n->tick, tick_cb, n->opt.heartbeat_ms, n->opt.heartbeat_ms);
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    n->term = st.term;
    if (st.conf.n_voters == 1 && st.conf.voters[0] == n->id) cn_raft_campaign(n->raft);
    process(n);
    return 0;
}

/* ---- status ------------------------------------------------------------------------------- */

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
    st->leader = n->lead;
    st->term = n->term;
    st->applied_index = n->applied;
    st->commit_index = n->applied;
    st->state = n->role == CN_RAFT_LEADER          ? "StateLeader"
                : n->role == CN_RAFT_CANDIDATE     ? "StateCandidate"
                : n->role == CN_RAFT_PRE_CANDIDATE ? "StatePreCandidate"
                                                   : "StateFollower";
    st->leader_since_ns = n->leader_since_ns;
    st->leader_changes = n->leader_changes;
    st->recv_append = n->recv_append;
    st->send_append = n->send_append;
    st->proposals_committed = n->applied; /* raised below to the commit index */
    st->proposals_applied = n->applied;
    st->proposals_failed = n->failed;
    st->proposals_pending = n->npending;
    st->snapshots = n->snapshots;
    if (n->raft) {
        struct cn_raft_status rs;
        cn_raft_status(n->raft, &rs);
        st->commit_index = rs.commit;
        st->proposals_committed = rs.commit;
        st->n_voters = rs.conf.n_voters;
        st->n_learners = rs.conf.n_learners;
        memcpy(st->conf_voters, rs.conf.voters, sizeof(uint64_t) * rs.conf.n_voters);
        memcpy(st->conf_learners, rs.conf.learners, sizeof(uint64_t) * rs.conf.n_learners);
        if (n->role == CN_RAFT_LEADER) {
            for (uint32_t i = 0; i < rs.conf.n_voters + rs.conf.n_learners; i++) {
                uint64_t id = i < rs.conf.n_voters ? rs.conf.voters[i]
                                                   : rs.conf.learners[i - rs.conf.n_voters];
                if (id == n->id) continue;
                struct cn_node_follower *f = &st->followers[st->n_followers++];
                memset(f, 0, sizeof(*f));
                f->id = id;
                for (unsigned k = 0; k < n->nfstats; k++)
                    if (n->fstats[k].id == id) *f = n->fstats[k].st;
            }
        }
    }
    memcpy(st->fsync_bucket, n->fsync_bucket, sizeof(st->fsync_bucket));
    st->fsync_count = n->fsync_count;
    st->fsync_sum_s = n->fsync_sum;
}

bool cn_node_removed(const struct cn_node *n)
{
    return n->removed && !n->fatal;
}

/* ---- stop --------------------------------------------------------------------------------- */

static void handle_done(struct cn_node *n)
{
    if (--n->open_handles > 0) return;
    void (*cb)(void *) = n->stop_cb;
    void *ctx = n->stop_ctx;
    node_free(n);
    if (cb) cb(ctx);
}

static void handle_closed(uv_handle_t *h)
{
    handle_done(h->data);
}

static void peer_closed(void *ctx)
{
    struct cn_node *n = ctx;
    n->peer = NULL;
    handle_done(n);
}

static void fail_all(struct cn_node *n, struct cn_list *l, int rc)
{
    struct cn_list *it, *tmp;
    CN_LIST_FOREACH(it, tmp, l) {
        struct cn_node_req *r = CN_CONTAINER_OF(it, struct cn_node_req, link);
        n->failed += !r->is_read;
        finish_req(n, r, rc, NULL);
    }
}

static void maybe_finish_stop(struct cn_node *n)
{
    if (n->state != S_STOPPING) return;
    if ((n->in_ready && !n->io_retry) || n->io_busy || n->snapping) return;
    answer_done(n);
    fail_all(n, &n->queued, CN_ERR_STOPPED);
    fail_all(n, &n->waiting, CN_ERR_STOPPED);
    fail_all(n, &n->reads, CN_ERR_STOPPED);
    /* the hard state set last (a commit index) goes to disk */
    (void)cn_wal_sync(n->wal);
    n->state = S_CLOSED;
    CN_LOGI("node", "stopped applied=%" PRIu64 " term=%" PRIu64, n->applied, n->term);
    n->open_handles++; /* the transport */
    uv_close((uv_handle_t *)&n->kick, handle_closed);
    uv_close((uv_handle_t *)&n->tick, handle_closed);
    cn_peer_close(n->peer, peer_closed, n);
}

void cn_node_stop(struct cn_node *n, void (*cb)(void *ctx), void *ctx)
{
    n->stop_cb = cb;
    n->stop_ctx = ctx;
    if (n->state == S_OPEN || n->raft == NULL || n->peer == NULL) {
        n->state = S_CLOSED;
        if (n->peer) {
            n->open_handles++;
            cn_peer_close(n->peer, peer_closed, n);
            if (n->open_handles == 1) return;
        }
        node_free(n);
        if (cb) cb(ctx);
        return;
    }
    if (n->state == S_CLOSED || n->state == S_STOPPING || n->state == S_TRANSFER) return;
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
        n->state = S_TRANSFER;
        n->transfer_to = best;
        n->transfer_deadline = cn_clock_mono_ns() + (int64_t)n->opt.election_ms * CN_NS_PER_MS;
        process(n);
        return;
    }
    n->state = S_STOPPING;
    kick(n);
}
