/* check: the simulation's safety checker. It keeps the one common applied sequence (index ->
 * term, prefix hash, proposal), every (index, term) ever persisted with its prefix hash, the
 * leader of each term and the acknowledged proposals, and is called after every event:
 *   - election safety: at most one leader per term;
 *   - log matching: two entries with the same index and term have the same prefix (hash);
 *   - leader completeness: a new leader holds every entry committed in an earlier term;
 *   - state machine safety: every member's applied sequence is a prefix of the common one;
 *   - durability: every acknowledged proposal is in the common sequence. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "sim.h"

struct seen {
    uint64_t term, chain;
};

struct slot {
    struct seen *v;
    size_t n;
};

struct common {
    uint64_t term, chain, commit_term, proposal;
};

struct sim_check {
    struct slot *persisted; /* by index */
    size_t n_persisted;
    struct common *seq; /* seq[i - 1] is index i */
    size_t n_seq, cap_seq;
    uint64_t *leader_of; /* by term */
    size_t n_terms;
    struct {
        uint64_t proposal, index;
    } * acks;
    size_t n_acks, cap_acks;
    uint64_t ack_watermark;
};

uint64_t sim_hash(uint64_t h, const void *p, size_t n)
{
    /* FNV-1a, 64 bit */
    const uint8_t *b = p;
    if (h == 0) h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

struct sim_check *check_new(void)
{
    return CN_NEW(struct sim_check);
}

void check_free(struct sim_check *c)
{
    for (size_t i = 0; i < c->n_persisted; i++)
        cn_free(c->persisted[i].v);
    cn_free(c->persisted);
    cn_free(c->seq);
    cn_free(c->leader_of);
    cn_free(c->acks);
    cn_free(c);
}

bool check_persist(struct sim_check *c, uint64_t member, const struct cn_raft_entry *e,
                   uint64_t chain, char *why, size_t n)
{
    if (e->index >= c->n_persisted) {
        size_t k = c->n_persisted ? c->n_persisted : 64;
        while (k <= e->index)
            k *= 2;
        c->persisted = cn_xrealloc(c->persisted, k * sizeof(*c->persisted));
        memset(c->persisted + c->n_persisted, 0, (k - c->n_persisted) * sizeof(*c->persisted));
        c->n_persisted = k;
    }
    struct slot *s = &c->persisted[e->index];
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].term != e->term) continue;
        if (s->v[i].chain != chain) {
            snprintf(why, n,
                     "log matching violated: member %llu has entry index=%llu term=%llu with a "
                     "different prefix than another log",
                     (unsigned long long)member, (unsigned long long)e->index,
                     (unsigned long long)e->term);
            return false;
        }
        return true;
    }
    s->v = cn_xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    s->v[s->n].term = e->term;
    s->v[s->n].chain = chain;
    s->n++;
    return true;
}

bool check_apply(struct sim_check *c, uint64_t member, const struct cn_raft_entry *e,
                 uint64_t chain, uint64_t member_term, char *why, size_t n)
{
    if (e->index <= c->n_seq) {
        struct common *k = &c->seq[e->index - 1];
        if (k->term != e->term || k->chain != chain) {
            snprintf(why, n,
                     "state machine safety violated: member %llu applied index=%llu term=%llu "
                     "but index %llu was applied elsewhere with term=%llu",
                     (unsigned long long)member, (unsigned long long)e->index,
                     (unsigned long long)e->term, (unsigned long long)e->index,
                     (unsigned long long)k->term);
            return false;
        }
        if (member_term < k->commit_term) k->commit_term = member_term;
        return true;
    }
    if (e->index != c->n_seq + 1) {
        snprintf(why, n, "member %llu applied index=%llu past the common sequence's end %zu",
                 (unsigned long long)member, (unsigned long long)e->index, c->n_seq);
        return false;
    }
    if (c->n_seq == c->cap_seq) {
        c->cap_seq = c->cap_seq ? c->cap_seq * 2 : 256;
        c->seq = cn_xrealloc(c->seq, c->cap_seq * sizeof(*c->seq));
    }
    struct common *k = &c->seq[c->n_seq++];
    k->term = e->term;
    k->chain = chain;
    k->commit_term = member_term;
    k->proposal = 0;
    return true;
}

uint64_t check_committed_len(const struct sim_check *c)
{
    return c->n_seq;
}

uint64_t check_chain_at(const struct sim_check *c, uint64_t index)
{
    return index == 0 ? 0 : c->seq[index - 1].chain;
}

void check_set_proposal(struct sim_check *c, uint64_t index, uint64_t proposal)
{
    if (index >= 1 && index <= c->n_seq) c->seq[index - 1].proposal = proposal;
}

bool check_leader(struct sim_check *c, uint64_t member, uint64_t term, char *why, size_t n)
{
    if (term >= c->n_terms) {
        size_t k = c->n_terms ? c->n_terms : 64;
        while (k <= term)
            k *= 2;
        c->leader_of = cn_xrealloc(c->leader_of, k * sizeof(uint64_t));
        memset(c->leader_of + c->n_terms, 0, (k - c->n_terms) * sizeof(uint64_t));
        c->n_terms = k;
    }
    if (c->leader_of[term] == 0) c->leader_of[term] = member;
    if (c->leader_of[term] != member) {
        snprintf(why, n, "election safety violated: members %llu and %llu both lead term %llu",
                 (unsigned long long)c->leader_of[term], (unsigned long long)member,
                 (unsigned long long)term);
        return false;
    }
    return true;
}

bool check_leader_log(struct sim_check *c, uint64_t member, uint64_t term, const struct sim_disk *d,
                      char *why, size_t n)
{
    for (size_t i = 0; i < c->n_seq; i++) {
        const struct common *k = &c->seq[i];
        uint64_t index = i + 1;
        if (k->commit_term >= term) continue;
        if (index <= d->snap.index) continue; /* covered by its snapshot (checked on install) */
        uint64_t off = index - d->snap.index - 1;
        if (off >= d->n || d->ents[off].term != k->term || d->chain[off] != k->chain) {
            snprintf(why, n,
                     "leader completeness violated: leader %llu of term %llu lacks committed "
                     "index=%llu term=%llu",
                     (unsigned long long)member, (unsigned long long)term,
                     (unsigned long long)index, (unsigned long long)k->term);
            return false;
        }
    }
    return true;
}

void check_ack(struct sim_check *c, uint64_t proposal, uint64_t index)
{
    if (c->n_acks == c->cap_acks) {
        c->cap_acks = c->cap_acks ? c->cap_acks * 2 : 256;
        c->acks = cn_xrealloc(c->acks, c->cap_acks * sizeof(*c->acks));
    }
    c->acks[c->n_acks].proposal = proposal;
    c->acks[c->n_acks].index = index;
    c->n_acks++;
    if (index > c->ack_watermark) c->ack_watermark = index;
}

uint64_t check_ack_watermark(const struct sim_check *c)
{
    return c->ack_watermark;
}

bool check_acks_final(struct sim_check *c, char *why, size_t n)
{
    for (size_t i = 0; i < c->n_acks; i++) {
        uint64_t index = c->acks[i].index;
        if (index > c->n_seq || c->seq[index - 1].proposal != c->acks[i].proposal) {
            snprintf(why, n, "acknowledged proposal %llu lost (index %llu)",
                     (unsigned long long)c->acks[i].proposal, (unsigned long long)index);
            return false;
        }
    }
    return true;
}
