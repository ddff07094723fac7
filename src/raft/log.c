/* log: the member's in-memory log from the last compaction point on. Entries live in one
 * growable array (no allocation per entry besides the payload); the log owns the payloads. */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "raft_int.h"

uint64_t cn_raft__log_last_index(const struct raft_log *l)
{
    return l->snap_index + l->n;
}

uint64_t cn_raft__log_last_term(const struct raft_log *l)
{
    return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

uint64_t cn_raft__log_term(const struct raft_log *l, uint64_t index)
{
    if (index == l->snap_index) return l->snap_term;
    if (index < l->snap_index || index > cn_raft__log_last_index(l)) return 0;
    return l->ents[index - l->snap_index - 1].term;
}

bool cn_raft__log_match_term(const struct raft_log *l, uint64_t index, uint64_t term)
{
    if (index < l->snap_index || index > cn_raft__log_last_index(l)) return false;
    return cn_raft__log_term(l, index) == term;
}

struct cn_raft_entry *cn_raft__log_entry(const struct raft_log *l, uint64_t index)
{
    if (index <= l->snap_index || index > cn_raft__log_last_index(l)) return NULL;
    return &l->ents[index - l->snap_index - 1];
}

static void grow(struct raft_log *l)
{
    if (l->n < l->cap) return;
    l->cap = l->cap ? l->cap * 2 : 256;
    l->ents = cn_xrealloc(l->ents, l->cap * sizeof(*l->ents));
}

void cn_raft__log_append_owned(struct raft_log *l, uint64_t term, uint8_t type, void *data,
                               size_t len)
{
    CN_ASSERT(term >= cn_raft__log_last_term(l));
    grow(l);
    struct cn_raft_entry *e = &l->ents[l->n++];
    e->term = term;
    e->index = cn_raft__log_last_index(l);
    e->type = type;
    e->len = len;
    e->data = data;
}

void cn_raft__log_append_copy(struct raft_log *l, const struct cn_raft_entry *e)
{
    CN_ASSERT(e->index == cn_raft__log_last_index(l) + 1);
    void *data = e->len ? cn_xmemdup(e->data, e->len) : NULL;
    cn_raft__log_append_owned(l, e->term, e->type, data, e->len);
}

void cn_raft__log_truncate(struct raft_log *l, uint64_t from)
{
    CN_ASSERT(from > l->snap_index);
    while (cn_raft__log_last_index(l) >= from) {
        cn_free(l->ents[l->n - 1].data);
        l->n--;
    }
    if (l->stabled >= from) l->stabled = from - 1;
}

void cn_raft__log_drop_prefix(struct raft_log *l, uint64_t index, uint64_t term)
{
    CN_ASSERT(index > l->snap_index && index <= cn_raft__log_last_index(l));
    size_t k = (size_t)(index - l->snap_index);
    for (size_t i = 0; i < k; i++)
        cn_free(l->ents[i].data);
    memmove(l->ents, l->ents + k, (l->n - k) * sizeof(*l->ents));
    l->n -= k;
    l->snap_index = index;
    l->snap_term = term;
}

void cn_raft__log_reset(struct raft_log *l, uint64_t index, uint64_t term)
{
    for (size_t i = 0; i < l->n; i++)
        cn_free(l->ents[i].data);
    l->n = 0;
    l->snap_index = index;
    l->snap_term = term;
    l->committed = index;
    l->applied = index; /* the snapshot handed to the caller is applied at advance */
    l->stabled = index;
}

bool cn_raft__log_is_up_to_date(const struct raft_log *l, uint64_t last_index, uint64_t last_term)
{
    uint64_t t = cn_raft__log_last_term(l);
    return last_term > t || (last_term == t && last_index >= cn_raft__log_last_index(l));
}

uint64_t cn_raft__log_find_conflict_by_term(const struct raft_log *l, uint64_t index, uint64_t term)
{
    if (index > cn_raft__log_last_index(l)) index = cn_raft__log_last_index(l);
    while (index > l->snap_index) {
        if (cn_raft__log_term(l, index) <= term) return index;
        index--;
    }
    return index;
}

void cn_raft__log_free(struct raft_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        cn_free(l->ents[i].data);
    cn_free(l->ents);
    memset(l, 0, sizeof(*l));
}
