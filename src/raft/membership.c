/* membership: one-at-a-time changes (add learner, promote, remove), each effective as soon as
 * its entry is appended to a log (thesis §4.1), learners that catch up before they vote
 * (§4.2.1), a leader that removes itself steps down once the change commits (§4.2.2), and a
 * removed member told to stop campaigning (§4.2.3). */
#include <errno.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "raft_int.h"

static bool has(const uint64_t *v, uint32_t n, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == id) return true;
    return false;
}

static void del(uint64_t *v, uint32_t *n, uint64_t id)
{
    for (uint32_t i = 0; i < *n; i++)
        if (v[i] == id) {
            memmove(v + i, v + i + 1, (*n - i - 1) * sizeof(*v));
            (*n)--;
            return;
        }
}

bool cn_raft__conf_has_voter(const struct cn_raft_conf *c, uint64_t id)
{
    return has(c->voters, c->n_voters, id);
}

bool cn_raft__conf_has_learner(const struct cn_raft_conf *c, uint64_t id)
{
    return has(c->learners, c->n_learners, id);
}

bool cn_raft__conf_has_member(const struct cn_raft_conf *c, uint64_t id)
{
    return cn_raft__conf_has_voter(c, id) || cn_raft__conf_has_learner(c, id);
}

int cn_raft_conf_apply(struct cn_raft_conf *c, const struct cn_raft_conf_change *cc)
{
    if (cc->id == CN_RAFT_NONE) return CN_ERR_INVAL;
    switch (cc->op) {
    case CN_RAFT_CONF_ADD_LEARNER:
        if (cn_raft__conf_has_member(c, cc->id)) return CN_ERR_INVAL;
        if (c->n_voters + c->n_learners >= CN_RAFT_MAX_MEMBERS) return CN_ERR_INVAL;
        c->learners[c->n_learners++] = cc->id;
        return 0;
    case CN_RAFT_CONF_PROMOTE:
        if (!cn_raft__conf_has_learner(c, cc->id)) return CN_ERR_INVAL;
        del(c->learners, &c->n_learners, cc->id);
        c->voters[c->n_voters++] = cc->id;
        return 0;
    case CN_RAFT_CONF_ADD_VOTER:
        if (cn_raft__conf_has_member(c, cc->id)) return CN_ERR_INVAL;
        if (c->n_voters + c->n_learners >= CN_RAFT_MAX_MEMBERS) return CN_ERR_INVAL;
        c->voters[c->n_voters++] = cc->id;
        return 0;
    case CN_RAFT_CONF_REMOVE:
        if (!cn_raft__conf_has_member(c, cc->id)) return CN_ERR_INVAL;
        if (cn_raft__conf_has_voter(c, cc->id) && c->n_voters == 1) return CN_ERR_INVAL;
        del(c->voters, &c->n_voters, cc->id);
        del(c->learners, &c->n_learners, cc->id);
        return 0;
    default:
        return CN_ERR_INVAL;
    }
}

/* Applies a conf entry to c. A change that does not fit (it was validated by the leader that
 * proposed it, so only a corrupt entry) is ignored identically on every member. */
static void apply_entry(struct cn_raft_conf *c, const struct cn_raft_entry *e)
{
    struct cn_raft_conf_change cc;
    if (cn_raft_conf_change_decode(e->data, e->len, &cc) != 0) return;
    struct cn_raft_conf tmp = *c;
    if (cn_raft_conf_apply(&tmp, &cc) == 0) *c = tmp;
}

void cn_raft__membership_on_append(struct cn_raft *r, const struct cn_raft_entry *e)
{
    if (e->type != CN_RAFT_ENTRY_CONF) return;
    apply_entry(&r->conf, e);
    r->conf_index = e->index;
    TRACE(r, "conf changed at %llu voters=%u learners=%u", (unsigned long long)e->index,
          r->conf.n_voters, r->conf.n_learners);
    if (r->role == CN_RAFT_LEADER) cn_raft__membership_sync_progress(r);
}

void cn_raft__membership_conf_at(const struct cn_raft *r, uint64_t index, struct cn_raft_conf *out)
{
    *out = r->log.snap_conf;
    for (size_t i = 0; i < r->log.n && r->log.ents[i].index <= index; i++)
        if (r->log.ents[i].type == CN_RAFT_ENTRY_CONF) apply_entry(out, &r->log.ents[i]);
}

void cn_raft__membership_recompute(struct cn_raft *r)
{
    r->conf = r->log.snap_conf;
    r->conf_index = 0;
    for (size_t i = 0; i < r->log.n; i++)
        if (r->log.ents[i].type == CN_RAFT_ENTRY_CONF) {
            apply_entry(&r->conf, &r->log.ents[i]);
            r->conf_index = r->log.ents[i].index;
        }
    if (r->role == CN_RAFT_LEADER) cn_raft__membership_sync_progress(r);
}

void cn_raft__membership_sync_progress(struct cn_raft *r)
{
    /* drop members that left (swap with the last slot, keeping each slot's buffers) */
    for (unsigned i = 0; i < r->n_prs;) {
        if (cn_raft__conf_has_member(&r->conf, r->prs[i].id)) {
            r->prs[i].learner = cn_raft__conf_has_learner(&r->conf, r->prs[i].id);
            i++;
            continue;
        }
        if (r->prs[i].id == r->transferee) r->transferee = CN_RAFT_NONE;
        struct progress tmp = r->prs[i];
        r->prs[i] = r->prs[r->n_prs - 1];
        r->prs[r->n_prs - 1] = tmp;
        r->n_prs--;
    }
    const struct cn_raft_conf *c = &r->conf;
    uint64_t next = cn_raft__log_last_index(&r->log) + 1;
    for (uint32_t k = 0; k < c->n_voters + c->n_learners; k++) {
        bool learner = k >= c->n_voters;
        uint64_t id = learner ? c->learners[k - c->n_voters] : c->voters[k];
        if (cn_raft__progress_find(r, id) != NULL) continue;
        CN_ASSERT(r->n_prs < CN_RAFT_MAX_MEMBERS);
        struct progress *pr = &r->prs[r->n_prs++];
        cn_raft__progress_init(pr, id, learner, next, r->cfg.max_inflight_msgs);
        pr->recent_active = true;
        if (id == r->id) {
            pr->match = r->log.stabled;
            cn_raft__progress_become_replicate(pr);
            pr->next = next;
        } else if (r->role == CN_RAFT_LEADER && r->log.n > 0) {
            r->bcast_pending = true;
        }
    }
}

void cn_raft__membership_on_commit(struct cn_raft *r)
{
    if (r->conf_index > r->log.committed) return;
    if (r->role == CN_RAFT_LEADER && !cn_raft__conf_has_voter(&r->conf, r->id)) {
        TRACE(r, "own removal committed: stepping down");
        /* §4.2.2: the commit index reached followers with the next append; tell them now */
        cn_raft__replication_flush(r);
        r->removed = !cn_raft__conf_has_member(&r->conf, r->id);
        cn_raft__become_follower(r, r->term, CN_RAFT_NONE);
    }
}

int cn_raft_propose_conf(struct cn_raft *r, const struct cn_raft_conf_change *cc, uint64_t *index,
                         uint64_t *term)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role != CN_RAFT_LEADER) return CN_ERR_NO_LEADER;
    if (r->transferee != CN_RAFT_NONE) return -EBUSY;
    /* one at a time, and only once this leader has committed an entry of its term (the fix
     * to the single-server change bug Ongaro described on raft-dev in 2015) */
    if (r->conf_index > r->log.committed) return -EBUSY;
    if (cn_raft__log_term(&r->log, r->log.committed) != r->term) return -EBUSY;
    /* §4.2.1: a new member first catches up as a learner */
    if (cc->op == CN_RAFT_CONF_ADD_VOTER) return CN_ERR_INVAL;
    struct cn_raft_conf tmp = r->conf;
    int rc = cn_raft_conf_apply(&tmp, cc);
    if (rc != 0) return rc;
    struct cn_buf b = CN_BUF_INIT;
    cn_raft_conf_change_encode(cc, &b);
    size_t len = 0;
    void *data = cn_buf_steal(&b, &len);
    cn_raft__replication_leader_append(r, CN_RAFT_ENTRY_CONF, data, len);
    if (index) *index = cn_raft__log_last_index(&r->log);
    if (term) *term = r->term;
    return 0;
}

int cn_raft_bootstrap(struct cn_raft *r, const struct cn_raft_conf *conf)
{
    return cn_raft_bootstrap_ctx(r, conf, NULL);
}

int cn_raft_bootstrap_ctx(struct cn_raft *r, const struct cn_raft_conf *conf,
                          const struct cn_buf *ctxs)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->term != 0 || r->log.snap_index != 0 || r->log.n != 0 || r->conf.n_voters != 0 ||
        r->conf.n_learners != 0 || conf->n_voters == 0)
        return CN_ERR_INVAL;
    struct cn_raft_conf check = {0};
    for (uint32_t k = 0; k < conf->n_voters + conf->n_learners; k++) {
        bool learner = k >= conf->n_voters;
        struct cn_raft_conf_change cc = {
            learner ? CN_RAFT_CONF_ADD_LEARNER : CN_RAFT_CONF_ADD_VOTER,
            learner ? conf->learners[k - conf->n_voters] : conf->voters[k], NULL, 0};
        if (cn_raft_conf_apply(&check, &cc) != 0) return CN_ERR_INVAL;
    }
    r->term = 1;
    for (uint32_t k = 0; k < conf->n_voters + conf->n_learners; k++) {
        bool learner = k >= conf->n_voters;
        struct cn_raft_conf_change cc = {
            learner ? CN_RAFT_CONF_ADD_LEARNER : CN_RAFT_CONF_ADD_VOTER,
            learner ? conf->learners[k - conf->n_voters] : conf->voters[k], NULL, 0};
        if (ctxs) {
            cc.ctx = ctxs[k].p;
            cc.ctx_len = ctxs[k].len;
        }
        struct cn_buf b = CN_BUF_INIT;
        cn_raft_conf_change_encode(&cc, &b);
        size_t len = 0;
        void *data = cn_buf_steal(&b, &len);
        cn_raft__log_append_owned(&r->log, 1, CN_RAFT_ENTRY_CONF, data, len);
        cn_raft__membership_on_append(r, &r->log.ents[r->log.n - 1]);
    }
    r->log.committed = cn_raft__log_last_index(&r->log);
    return 0;
}

void cn_raft_conf_at(const struct cn_raft *r, uint64_t index, struct cn_raft_conf *out)
{
    cn_raft__membership_conf_at(r, index, out);
}
