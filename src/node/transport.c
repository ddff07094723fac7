/* transport: the node's side of the member links. What peers send waits in the inbox until Raft
 * takes input again (drain_inbox); Raft's messages go out through io->send, a leader's snapshot
 * with the bytes of the snapshot saved at its index, loaded through io when they are not in
 * memory; the transport is pointed at the members the state machine records. */
#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "node_int.h"
#include "peer/peer.h"

static struct cn_node__inbox_item *inbox_add(struct cn_node *n, uint8_t what, uint64_t from)
{
    if (n->ninbox >= CN_NODE__MAX_INBOX) return NULL; /* Raft retries what is dropped */
    if (n->ninbox == n->capinbox) {
        n->capinbox = n->capinbox ? n->capinbox * 2 : 64;
        n->inbox = cn_xrealloc(n->inbox, n->capinbox * sizeof(*n->inbox));
    }
    struct cn_node__inbox_item *it = &n->inbox[n->ninbox++];
    memset(it, 0, sizeof(*it));
    it->what = what;
    it->from = from;
    return it;
}

void cn_node__inbox_push(struct cn_node *n, uint8_t what, uint64_t from, const void *p, size_t len)
{
    struct cn_node__inbox_item *it = inbox_add(n, what, from);
    if (it && len) cn_buf_append(&it->data, p, len);
}

void cn_node__inbox_push_prop(struct cn_node *n, uint64_t from, const void *p, size_t len)
{
    uint64_t seq;
    uint8_t kind;
    const uint8_t *body;
    size_t body_len;
    if (!cn_node__prop_decode(p, len, &seq, &kind, &body, &body_len)) return;
    struct cn_node__inbox_item *it = inbox_add(n, CN_PEER_KIND_PROP, from);
    if (it == NULL) return;
    it->seq = seq;
    it->kind = kind;
    /* exactly sized: on the leader Raft takes these bytes as the entry's payload */
    cn_buf_reserve_exact(&it->data, body_len);
    cn_buf_append(&it->data, body, body_len);
}

bool cn_node__alive(const struct cn_node *n)
{
    return n->state != CN_NODE__CLOSED && n->state != CN_NODE__OPEN;
}

void cn_node_on_receive(struct cn_node *n, uint64_t from, uint8_t kind, const void *p, size_t len)
{
    if (!cn_node__alive(n)) return;
    if (kind == CN_PEER_KIND_PROP)
        cn_node__inbox_push_prop(n, from, p, len);
    else if (kind == CN_PEER_KIND_RAFT || kind == CN_PEER_KIND_PROP_FAIL)
        cn_node__inbox_push(n, kind, from, p, len);
    cn_node__process(n);
}

void cn_node_on_peer_closed(struct cn_node *n, uint64_t from)
{
    if (!cn_node__alive(n) || from != n->lead) return;
    CN_LOGI("node", "the leader closed its connection leader=%" PRIx64, from);
    cn_node__inbox_push(n, CN_NODE__IN_LEADER_GONE, from, NULL, 0);
    cn_node__process(n);
}

bool cn_node_peer_is_removed(struct cn_node *n, uint64_t id)
{
    return n->fsm->is_removed && n->fsm->is_removed(n->fsm, id);
}

void cn_node_on_told_removed(struct cn_node *n, uint64_t by)
{
    if (!cn_node__alive(n) || n->removed) return;
    CN_LOGN("node", "member %" PRIx64 " says this member was removed from the cluster", by);
    n->removed = true;
    cn_node__process(n);
}

int cn_node_peer_http_get(struct cn_node *n, const char *path, struct cn_buf *body)
{
    if (n->opt.peer_http_get == NULL) return 404;
    return n->opt.peer_http_get(n->opt.cb_ctx, path, body);
}

/* Points the transport at every member of the configuration the state machine has a record
 * for. */
void cn_node__refresh_peers(struct cn_node *n)
{
    if (n->fsm->peer_url == NULL || n->raft == NULL) return;
    struct cn_raft_status st;
    cn_raft_status(n->raft, &st);
    for (uint32_t i = 0; i < st.conf.n_voters + st.conf.n_learners; i++) {
        uint64_t id =
            i < st.conf.n_voters ? st.conf.voters[i] : st.conf.learners[i - st.conf.n_voters];
        char url[512];
        if (id != n->id && n->fsm->peer_url(n->fsm, id, url, sizeof(url)))
            n->io->set_peer(n->io, id, url);
    }
}

static void send_encoded(struct cn_node *n, const struct cn_raft_msg *m)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_msg_encode(m, &b);
    int rc = n->io->send(n->io, m->to, CN_PEER_KIND_RAFT, b.p, b.len);
    cn_buf_free(&b);
    if (m->type == CN_RAFT_MSG_SNAP)
        cn_node__inbox_push(n, CN_NODE__IN_SNAP_REPORT, m->to, rc == 0 ? "\1" : "\0", 1);
    cn_node__note_sent(n, m, rc);
}

/* A leader's snapshot message carries only the metadata: attach the bytes of the snapshot
 * saved at that index, loading them through io (off the loop) when they are not in memory.
 * Raft waits for the report, so a follower waiting for the load gets it once it arrives. */
static void send_snapshot(struct cn_node *n, struct cn_raft_msg *m)
{
    if (n->send_snap.len > 0 && n->send_snap_index == m->snap.index) {
        m->snap_data = n->send_snap.p;
        m->snap_len = n->send_snap.len;
        CN_LOGI("node", "sending snapshot to=%" PRIx64 " index=%" PRIu64 " bytes=%zu", m->to,
                m->snap.index, m->snap_len);
        send_encoded(n, m);
        return;
    }
    bool listed = false;
    for (unsigned i = 0; i < n->n_snap_wanted; i++)
        listed = listed || n->snap_wanted[i].to == m->to;
    if (!listed && n->n_snap_wanted < CN_NODE_MAX_MEMBERS) {
        struct cn_raft_msg *w = &n->snap_wanted[n->n_snap_wanted++];
        *w = *m; /* the batch's memory goes at advance: keep only the header */
        w->entries = NULL;
        w->n_entries = 0;
    }
    if (!n->snap_loading) {
        n->snap_loading = true;
        n->io->load_snapshot(n->io);
    }
}

void cn_node_on_snapshot_loaded(struct cn_node *n, int rc, uint64_t term, uint64_t index,
                                const void *p, size_t len)
{
    n->snap_loading = false;
    if (n->state == CN_NODE__CLOSED) return;
    if (rc == 0) {
        cn_buf_reset(&n->send_snap);
        cn_buf_append(&n->send_snap, p, len);
        n->send_snap_index = index;
    }
    bool usable = rc == 0;
    for (unsigned i = 0; i < n->n_snap_wanted; i++) {
        struct cn_raft_msg *m = &n->snap_wanted[i];
        if (!usable || m->snap.index != index) {
            CN_LOGW("node",
                    "no snapshot file for index=%" PRIu64 " to send to %" PRIx64 " (found %" PRIu64
                    " term %" PRIu64 ": %s)",
                    m->snap.index, m->to, index, term, rc ? cn_strerror(rc) : "another index");
            cn_node__inbox_push(n, CN_NODE__IN_SNAP_REPORT, m->to, "\0", 1);
            continue;
        }
        m->snap_data = n->send_snap.p;
        m->snap_len = n->send_snap.len;
        CN_LOGI("node", "sending snapshot to=%" PRIx64 " index=%" PRIu64 " bytes=%zu", m->to,
                m->snap.index, m->snap_len);
        send_encoded(n, m);
    }
    n->n_snap_wanted = 0;
    cn_node__process(n);
}

void cn_node__send_msg(struct cn_node *n, struct cn_raft_msg *m)
{
    if (m->type == CN_RAFT_MSG_SNAP && m->snap_data == NULL) {
        send_snapshot(n, m);
        return;
    }
    send_encoded(n, m);
}

void cn_node__drain_inbox(struct cn_node *n)
{
    for (size_t i = 0; i < n->ninbox; i++) {
        struct cn_node__inbox_item *it = &n->inbox[i];
        if (it->what == CN_PEER_KIND_RAFT) {
            struct cn_raft_msg m;
            struct cn_raft_entry *ents = NULL;
            if (cn_raft_msg_decode(it->data.p, it->data.len, &m, &ents) == 0) {
                if (m.from == it->from) {
                    cn_node__note_received(n, &m);
                    if (cn_raft_step(n->raft, &m) != 0)
                        CN_LOGD("node", "raft refused a message from=%" PRIx64, it->from);
                }
                cn_free(ents);
            } else {
                CN_LOGW("node", "dropping undecodable raft message from=%" PRIx64, it->from);
            }
        } else if (it->what == CN_PEER_KIND_PROP) {
            cn_node__on_prop(n, it); /* Raft may take it->data */
        } else if (it->what == CN_PEER_KIND_PROP_FAIL) {
            cn_node__on_prop_fail(n, it->data.p, it->data.len);
        } else if (it->what == CN_NODE__IN_LEADER_GONE) {
            cn_raft_leader_unreachable(n->raft, it->from);
        } else if (it->what == CN_NODE__IN_SNAP_REPORT) {
            cn_raft_report_snapshot(n->raft, it->from, it->data.len && it->data.p[0] == 1);
        }
        cn_buf_free(&it->data);
    }
    n->ninbox = 0;
}
