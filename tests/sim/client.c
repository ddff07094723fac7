/* client: what the simulated clients do: writes and linearizable reads through any member,
 * leadership transfers and membership changes, and the client-visible checks on every answer
 * (never twice, a write's result at the index it was acknowledged at, a read that sees every
 * write acknowledged before it started). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "sim_int.h"
#include "store/store.h"

struct sim_req *sim_new_req(struct sim *s, int member, bool is_read, uint64_t id)
{
    struct sim_req *r = CN_NEW(struct sim_req);
    r->s = s;
    r->member = member;
    r->incarnation = s->m[member].incarnation;
    r->is_read = is_read;
    r->id = id;
    r->v3_key = -1;
    if (s->n_reqs == s->cap_reqs) {
        s->cap_reqs = s->cap_reqs ? s->cap_reqs * 2 : 256;
        s->reqs = cn_xrealloc(s->reqs, s->cap_reqs * sizeof(*s->reqs));
    }
    s->reqs[s->n_reqs++] = r;
    return r;
}

bool sim_answered_once(struct sim_req *r, int rc)
{
    if (r->answered) {
        char why[128];
        snprintf(why, sizeof(why), "request %s %" PRIu64 " answered twice",
                 r->is_read ? "read" : "proposal", r->id);
        sim_fail(r->s, why);
        return false;
    }
    r->answered = true;
    r->rc = rc;
    return true;
}

static void prop_done(void *ctx, int rc, const void *res)
{
    struct sim_req *r = ctx;
    struct sim *s = r->s;
    if (!sim_answered_once(r, rc) || rc != 0) return;
    const struct sim_result *x = res;
    if (x == NULL || x->id != r->id) {
        sim_fail(s, "a proposal was answered with another one's result");
        return;
    }
    check_ack(s->check, r->id, x->index);
    s->n_acked++;
    sim_grow_by_id(s, r->id);
    s->ack_index[r->id] = x->index;
    if (s->applied_at[r->id] != x->index) sim_fail(s, "a proposal acknowledged at another index");
    sim_trace(s, "ack proposal %llu at index %llu", (unsigned long long)r->id,
              (unsigned long long)x->index);
}

static void read_done(void *ctx, int rc, const void *res)
{
    (void)res;
    struct sim_req *r = ctx;
    struct sim *s = r->s;
    if (!sim_answered_once(r, rc) || rc != 0) return;
    uint64_t applied, term;
    cn_node_raft_position(s->m[r->member].node, &applied, &term);
    if (applied < r->watermark) {
        char why[256];
        snprintf(why, sizeof(why),
                 "linearizability violated: read %llu on member %llu at index %llu misses a "
                 "write acknowledged at index %llu before it started",
                 (unsigned long long)r->id, (unsigned long long)s->m[r->member].id,
                 (unsigned long long)applied, (unsigned long long)r->watermark);
        sim_fail(s, why);
    }
    s->n_reads_served++;
    sim_trace(s, "read %llu served by %llu at index %llu", (unsigned long long)r->id,
              (unsigned long long)s->m[r->member].id, (unsigned long long)applied);
}

/* A client's write on member i (which forwards it to its leader when it is not the leader). */
struct sim_req *sim_propose(struct sim *s, int i, uint64_t id)
{
    struct sim_member *m = &s->m[i];
    struct cn_store_cmd c;
    memset(&c, 0, sizeof(c));
    char key[32], val[32];
    snprintf(key, sizeof(key), "/k%llu", (unsigned long long)(id % 7));
    snprintf(val, sizeof(val), "v%llu", (unsigned long long)id);
    c.ns = CN_NS_KEYS;
    c.op = (id % 5 == 0) ? CN_OP_DELETE : CN_OP_SET;
    c.key = cn_str_c(key);
    c.value = cn_str_c(val);
    c.now_ns = (int64_t)s->now * 1000000;
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_put_u8(&b, SIM_V2_TAG);
    cn_buf_append(&b, &id, 8);
    cn_store_cmd_encode(&c, &b);
    struct sim_req *r = sim_new_req(s, i, false, id);
    cn_node_propose(m->node, b.p, b.len, prop_done, r);
    cn_buf_free(&b);
    sim_trace(s, "propose %llu on %llu", (unsigned long long)id, (unsigned long long)m->id);
    return r;
}

static void read_on(struct sim *s, int i, uint64_t ctx)
{
    struct sim_req *r = sim_new_req(s, i, true, ctx);
    r->watermark = check_ack_watermark(s->check);
    cn_node_read_index(s->m[i].node, read_done, r);
    sim_trace(s, "read %llu on %llu (must see index %llu)", (unsigned long long)ctx,
              (unsigned long long)s->m[i].id, (unsigned long long)r->watermark);
}

static void change_done(void *ctx, int rc, const void *res)
{
    (void)res;
    sim_answered_once(ctx, rc);
}

/* A membership change asked of member i, the leader: add a learner (it joins empty and the
 * node promotes it once it caught up) or remove a voter, one at a time. */
static void change_membership(struct sim *s, int i)
{
    struct cn_raft_status st = sim_status_of(&s->m[i]);
    if (st.role != CN_RAFT_LEADER || st.conf.n_learners > 0) return;
    struct sim_req *r;
    if (s->n < SIM_MAX && (st.conf.n_voters <= 3 || sim_chance(s, 50))) {
        uint64_t id = (uint64_t)s->n + 1;
        r = sim_new_req(s, i, false, 0);
        cn_node_add_member(s->m[i].node, id, NULL, change_done, r);
        sim_trace(s, "membership: add learner %llu proposed on %llu", (unsigned long long)id,
                  (unsigned long long)s->m[i].id);
        sim_start_joiner(s);
    } else if (st.conf.n_voters > 3) {
        uint64_t id = st.conf.voters[sim_rndn(s, st.conf.n_voters)];
        r = sim_new_req(s, i, false, 0);
        cn_node_remove_member(s->m[i].node, id, NULL, change_done, r);
        sim_trace(s, "membership: remove %llu proposed on %llu", (unsigned long long)id,
                  (unsigned long long)s->m[i].id);
    }
}

void sim_client(struct sim *s)
{
    int i = (int)sim_rndn(s, (uint64_t)s->n);
    struct sim_member *m = &s->m[i];
    if (m->up) {
        unsigned what = (unsigned)sim_rndn(s, 100);
        if (what < 32) {
            sim_propose(s, i, ++s->next_prop);
        } else if (what < 65) {
            sim_propose_v3(s, i, ++s->next_prop);
        } else if (what < 97) {
            read_on(s, i, ++s->next_ctx);
        } else if (!s->faults_off) {
            int rc = cn_node_transfer_leadership(m->node, 1 + sim_rndn(s, (uint64_t)s->n));
            if (rc == 0) sim_trace(s, "transfer from %llu", (unsigned long long)m->id);
        }
        if (s->reconfig && !s->faults_off && sim_chance(s, 4)) {
            int lead = sim_leader_of(s);
            if (lead >= 0) change_membership(s, lead);
        }
    }
    if (!s->healed) sim_push(s, 1 + sim_rndn(s, 15), EV_CLIENT, -1, NULL);
}
