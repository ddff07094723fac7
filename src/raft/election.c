/* election: timeouts, pre-vote and vote (thesis §3.4, §9.6), check-quorum (§6.2). The
 * election timeout is drawn from [T, 2T) ticks with the member's own seeded generator. */
#include "common/log.h"
#include "raft_int.h"

static uint64_t next_random(struct cn_raft *r)
{
    /* splitmix64 */
    uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cn_raft__election_reset_timeout(struct cn_raft *r)
{
    unsigned t = r->cfg.election_ticks;
    r->randomized_timeout = t + (unsigned)(next_random(r) % t);
}

bool cn_raft__election_promotable(const struct cn_raft *r)
{
    if (r->removed) return false;
    if (cn_raft__conf_has_voter(&r->conf, r->id)) return true;
    /* §4.2.2, and what the thesis leaves open: the entry that took this voter out of the
     * configuration (effective on append) is not committed yet. Until it is, this member may hold
     * the only copy of it, while the others, still in the old configuration, need its vote and
     * cannot get it (its log is ahead of theirs): the cluster would stall for good. So it may
     * still campaign, in the new configuration, without counting itself; once elected it commits
     * the entry and steps down (cn_raft__membership_on_commit). ScyllaDB's raft met the same. */
    if (r->conf_index == 0 || r->conf_index <= r->log.committed) return false;
    struct cn_raft_conf prev;
    cn_raft__membership_conf_at(r, r->conf_index - 1, &prev);
    return cn_raft__conf_has_voter(&prev, r->id);
}

unsigned cn_raft__election_quorum(const struct cn_raft *r)
{
    return r->conf.n_voters / 2 + 1;
}

static void check_quorum(struct cn_raft *r)
{
    unsigned active = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->learner) continue;
        if (pr->id == r->id || pr->recent_active) active++;
        pr->recent_active = false;
    }
    if (active < cn_raft__election_quorum(r)) {
        TRACE(r, "check-quorum failed active=%u: stepping down", active);
        cn_raft__become_follower(r, r->term, CN_RAFT_NONE);
    }
}

void cn_raft__election_tick(struct cn_raft *r)
{
    if (r->role != CN_RAFT_LEADER) {
        r->election_elapsed++;
        /* a member that may not campaign (learner, removed, or not yet aware it was promoted)
         * lets its timer run on: restarting it would renew the lease on a leader it no
         * longer hears from, and it would ignore the votes that could elect a new one */
        if (r->election_elapsed >= r->randomized_timeout && cn_raft__election_promotable(r)) {
            r->election_elapsed = 0;
            cn_raft__election_campaign(r, r->cfg.pre_vote, false);
        }
        return;
    }
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (unsigned i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        /* a snapshot that got lost is sent again after an election timeout */
        if (pr->state == PR_SNAPSHOT && ++pr->snap_ticks >= r->cfg.election_ticks) {
            pr->pending_snap = 0; /* not known to have arrived: probe from match */
            cn_raft__progress_become_probe(pr);
        }
    }
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            check_quorum(r);
            if (r->role != CN_RAFT_LEADER) return;
        }
        cn_raft__transfer_tick(r);
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        cn_raft__replication_heartbeat(r, r->read_seq);
    }
}

static bool record_vote(uint64_t *v, unsigned *n, uint64_t id)
{
    for (unsigned i = 0; i < *n; i++)
        if (v[i] == id) return false;
    if (*n < CN_RAFT_MAX_MEMBERS) v[(*n)++] = id;
    return true;
}

static void tally(struct cn_raft *r)
{
    unsigned q = cn_raft__election_quorum(r);
    if (r->n_granted >= q) {
        if (r->role == CN_RAFT_PRE_CANDIDATE) {
            cn_raft__election_campaign(r, false, false);
        } else {
            cn_raft__become_leader(r);
        }
    } else if (r->n_rejected >= q) {
        cn_raft__become_follower(r, r->term, CN_RAFT_NONE);
    }
}

void cn_raft__election_campaign(struct cn_raft *r, bool pre, bool transfer)
{
    uint64_t term;
    uint8_t type;
    /* keep the timeout and lead reset as a follower does, then take the candidate role */
    if (pre) {
        cn_raft__become_follower(r, r->term, CN_RAFT_NONE);
        r->role = CN_RAFT_PRE_CANDIDATE;
        term = r->term + 1;
        type = CN_RAFT_MSG_PREVOTE;
    } else {
        cn_raft__become_follower(r, r->term + 1, CN_RAFT_NONE);
        r->role = CN_RAFT_CANDIDATE;
        r->vote = r->id;
        term = r->term;
        type = CN_RAFT_MSG_VOTE;
    }
    TRACE(r, "campaign pre=%d transfer=%d", pre, transfer);
    r->n_granted = r->n_rejected = 0;
    /* a member campaigning from outside the configuration (above) does not count itself */
    if (cn_raft__conf_has_voter(&r->conf, r->id))
        record_vote(r->votes_granted, &r->n_granted, r->id);
    if (r->n_granted >= cn_raft__election_quorum(r)) {
        tally(r);
        return;
    }
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        uint64_t id = r->conf.voters[i];
        if (id == r->id) continue;
        struct cn_raft_msg *m = cn_raft__send(r, type, id);
        m->term = term;
        m->index = cn_raft__log_last_index(&r->log);
        m->log_term = cn_raft__log_last_term(&r->log);
        if (transfer) m->flags |= CN_RAFT_FLAG_TRANSFER;
    }
}

void cn_raft__election_on_vote_request(struct cn_raft *r, const struct cn_raft_msg *m)
{
    bool pre = m->type == CN_RAFT_MSG_PREVOTE;
    /* we may vote again for whom we voted; a fresh vote only without a leader this term; a
     * pre-vote for a future term binds nothing */
    bool can_vote = r->vote == m->from || (r->vote == CN_RAFT_NONE && r->lead == CN_RAFT_NONE) ||
                    (pre && m->term > r->term);
    /* the candidate's membership is not checked: a member that is behind may not know yet that
     * the candidate was promoted, and refusing would stall elections; a removed member is
     * kept out by the leases and told by the leader (raft.c) */
    bool grant = can_vote && (cn_raft__log_is_up_to_date(&r->log, m->index, m->log_term) ||
                              r->cfg.unsafe_vote_any_log);
    struct cn_raft_msg *out =
        cn_raft__send(r, pre ? CN_RAFT_MSG_PREVOTE_RESP : CN_RAFT_MSG_VOTE_RESP, m->from);
    if (grant) {
        out->term = m->term;
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        out->flags = CN_RAFT_FLAG_REJECT;
    }
    TRACE(r, "%s %s from %llu", grant ? "granted" : "rejected", cn_raft_msg_type_name(m->type),
          (unsigned long long)m->from);
}

void cn_raft__election_on_vote_response(struct cn_raft *r, const struct cn_raft_msg *m)
{
    bool pre = m->type == CN_RAFT_MSG_PREVOTE_RESP;
    if (pre ? r->role != CN_RAFT_PRE_CANDIDATE : r->role != CN_RAFT_CANDIDATE) return;
    if (!cn_raft__conf_has_voter(&r->conf, m->from)) return;
    if (m->flags & CN_RAFT_FLAG_REJECT) {
        for (unsigned i = 0; i < r->n_granted; i++)
            if (r->votes_granted[i] == m->from) return;
        record_vote(r->votes_rejected, &r->n_rejected, m->from);
    } else {
        for (unsigned i = 0; i < r->n_rejected; i++)
            if (r->votes_rejected[i] == m->from) return;
        record_vote(r->votes_granted, &r->n_granted, m->from);
    }
    tally(r);
}

void cn_raft_campaign(struct cn_raft *r)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role == CN_RAFT_LEADER || !cn_raft__election_promotable(r)) return;
    cn_raft__election_campaign(r, r->cfg.pre_vote, false);
}

void cn_raft_leader_unreachable(struct cn_raft *r, uint64_t id)
{
    CN_ASSERT(r->loaded && !r->ready_out);
    if (r->role != CN_RAFT_FOLLOWER || r->lead != id || id == CN_RAFT_NONE) return;
    TRACE(r, "leader %llu unreachable: lease dropped", (unsigned long long)id);
    /* No lease on a leader whose process is gone: grant (pre-)votes now, and campaign after a
     * random part of one election timeout instead of a whole one. */
    r->lead = CN_RAFT_NONE;
    if (r->election_elapsed < r->cfg.election_ticks) r->election_elapsed = r->cfg.election_ticks;
    cn_raft__election_reset_timeout(r);
}
