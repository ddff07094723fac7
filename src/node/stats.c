/* stats: what the node counts for /v2/stats, /metrics and the status: replication round trips
 * per follower (etcd's LeaderStats), the fsync histogram, leader changes. */
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "node_int.h"

const double cn_node_fsync_buckets[CN_NODE_FSYNC_BUCKETS] = {0.001, 0.002, 0.004, 0.008, 0.016,
                                                             0.032, 0.064, 0.128, 0.256, 0.512,
                                                             1.024, 2.048, 4.096, 8.192};

struct cn_node__follower_stats *cn_node__fstat_of(struct cn_node *n, uint64_t id)
{
    struct cn_node__stats *s = &n->stats;
    for (unsigned i = 0; i < s->nfstats; i++)
        if (s->fstats[i].id == id) return &s->fstats[i];
    if (s->nfstats == CN_NODE_MAX_MEMBERS) return NULL;
    struct cn_node__follower_stats *f = &s->fstats[s->nfstats++];
    memset(f, 0, sizeof(*f));
    f->id = f->st.id = id;
    return f;
}

void cn_node__note_sent(struct cn_node *n, const struct cn_raft_msg *m, int rc)
{
    if (m->type == CN_RAFT_MSG_APP) n->stats.send_append++;
    if (m->type != CN_RAFT_MSG_APP && m->type != CN_RAFT_MSG_HEARTBEAT) return;
    struct cn_node__follower_stats *f = cn_node__fstat_of(n, m->to);
    if (f == NULL) return;
    if (rc != 0)
        f->st.fail++;
    else if (f->sent_ns == 0)
        f->sent_ns = n->io->now_ns(n->io);
}

void cn_node__note_received(struct cn_node *n, const struct cn_raft_msg *m)
{
    if (m->type == CN_RAFT_MSG_APP) n->stats.recv_append++;
    if (m->type != CN_RAFT_MSG_APP_RESP && m->type != CN_RAFT_MSG_HEARTBEAT_RESP) return;
    struct cn_node__follower_stats *f = cn_node__fstat_of(n, m->from);
    if (f == NULL) return;
    f->st.success++;
    if (f->sent_ns == 0) return;
    double ms = (double)(n->io->now_ns(n->io) - f->sent_ns) / 1e6;
    f->sent_ns = 0;
    f->st.lat_current = ms;
    if (f->st.lat_n == 0 || ms < f->st.lat_min) f->st.lat_min = ms;
    if (ms > f->st.lat_max) f->st.lat_max = ms;
    f->st.lat_n++;
    f->st.lat_sum += ms;
    f->st.lat_sq += ms * ms;
}

static void observe(struct cn_node_histogram *h, int64_t dur_ns)
{
    double sec = (double)dur_ns / 1e9;
    for (int i = 0; i < CN_NODE_FSYNC_BUCKETS; i++)
        if (sec <= cn_node_fsync_buckets[i]) {
            h->bucket[i]++;
            break;
        }
    h->count++;
    h->sum_s += sec;
}

void cn_node__note_fsync(struct cn_node *n, int64_t dur_ns)
{
    observe(&n->stats.persist, dur_ns);
}

void cn_node_on_disk_timing(struct cn_node *n, enum cn_node_disk_op op, int64_t dur_ns)
{
    if (dur_ns < 0) return;
    observe(op == CN_NODE_DISK_WAL_FSYNC ? &n->stats.wal_fsync : &n->stats.snap_save, dur_ns);
}

void cn_node__note_leader(struct cn_node *n, uint64_t lead)
{
    if (lead != CN_RAFT_NONE) {
        n->stats.leader_changes++;
        n->stats.leader_since_ns = n->io->wall_ns(n->io);
        CN_LOGN("node", "leader is %" PRIx64 " term=%" PRIu64 " self=%" PRIx64 "%s", lead, n->term,
                n->id, lead == n->id ? " (this member)" : "");
    } else {
        CN_LOGI("node", "lost the leader term=%" PRIu64, n->term);
    }
    for (unsigned i = 0; i < n->stats.nfstats; i++)
        n->stats.fstats[i].sent_ns = 0;
}

void cn_node_raft_position(const struct cn_node *n, uint64_t *applied_index, uint64_t *term)
{
    *applied_index = n->applied;
    *term = n->term;
}

void cn_node_get_status(const struct cn_node *n, struct cn_node_status *st)
{
    memset(st, 0, sizeof(*st));
    const struct cn_node__stats *s = &n->stats;
    st->id = n->id;
    st->cluster_id = n->cluster_id;
    st->leader = n->lead;
    st->term = n->term;
    st->applied_index = n->applied;
    st->commit_index = n->applied;
    st->role = n->role == CN_RAFT_LEADER          ? CN_NODE_LEADER
               : n->role == CN_RAFT_CANDIDATE     ? CN_NODE_CANDIDATE
               : n->role == CN_RAFT_PRE_CANDIDATE ? CN_NODE_PRE_CANDIDATE
                                                  : CN_NODE_FOLLOWER;
    st->leader_since_ns = s->leader_since_ns;
    st->leader_changes = s->leader_changes;
    st->recv_append = s->recv_append;
    st->send_append = s->send_append;
    st->proposals_committed = n->applied; /* raised below to the commit index */
    st->proposals_applied = n->applied;
    st->proposals_failed = s->failed;
    st->proposals_pending = n->npending;
    st->snapshots = s->snapshots;
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
                for (unsigned k = 0; k < s->nfstats; k++)
                    if (s->fstats[k].id == id) *f = s->fstats[k].st;
            }
        }
    }
    st->persist = s->persist;
    st->wal_fsync = s->wal_fsync;
    st->snap_save = s->snap_save;
}
