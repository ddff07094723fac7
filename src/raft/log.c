/* log: the member's in-memory log from the last compaction point on. Entries live in one
 * growable array (no allocation per entry besides the payload); the log owns the payloads. */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "raft_int.h"

uint64_t logLastIndex(const struct raft_log *l)
{
    return l->snap_index + l->n;
}

uint64_t logLastTerm(const struct raft_log *l)
{
    return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

uint64_t logTerm(const struct raft_log *l, uint64_t index)
{
    if (index == l->snap_index) return l->snap_term;
    if (index < l->snap_index || index > logLastIndex(l)) return 0;
    return l->ents[index - l->snap_index - 1].term;
}

bool logMatchTerm(const struct raft_log *l, uint64_t index, uint64_t term)
{
    if (index < l->snap_index || index > logLastIndex(l)) return false;
    return logTerm(l, index) == term;
}

struct cn_raft_entry *logEntry(const struct raft_log *l, uint64_t index)
{
    if (index <= l->snap_index || index > logLastIndex(l)) return NULL;
    return &l->ents[index - l->snap_index - 1];
}

static void grow(struct raft_log *l)
{
    if (l->n < l->cap) return;
    l->cap = l->cap ? l->cap * 2 : 256;
    l->ents = cn_xrealloc(l->ents, l->cap * sizeof(*l->ents));
}

void logAppendOwned(struct raft_log *l, uint64_t term, uint8_t type, void *data, size_t len)
{
    CN_ASSERT(term >= logLastTerm(l));
    grow(l);
    struct cn_raft_entry *e = &l->ents[l->n++];
    e->term = term;
    e->index = logLastIndex(l);
    e->type = type;
    e->len = len;
    e->data = data;
}

void logAppendCopy(struct raft_log *l, const struct cn_raft_entry *e)
{
    CN_ASSERT(e->index == logLastIndex(l) + 1);
    void *data = e->len ? cn_xmemdup(e->data, e->len) : NULL;
    logAppendOwned(l, e->term, e->type, data, e->len);
}

void logTruncate(struct raft_log *l, uint64_t from)
{
    CN_ASSERT(from > l->snap_index);
    while (logLastIndex(l) >= from) {
        cn_free(l->ents[l->n - 1].data);
        l->n--;
    }
    if (l->stabled >= from) l->stabled = from - 1;
}

void logDropPrefix(struct raft_log *l, uint64_t index, uint64_t term)
{
    CN_ASSERT(index > l->snap_index && index <= logLastIndex(l));
    size_t k = (size_t)(index - l->snap_index);
    for (size_t i = 0; i < k; i++)
        cn_free(l->ents[i].data);
    memmove(l->ents, l->ents + k, (l->n - k) * sizeof(*l->ents));
    l->n -= k;
    l->snap_index = index;
    l->snap_term = term;
}

void logReset(struct raft_log *l, uint64_t index, uint64_t term)
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

bool logIsUpToDate(const struct raft_log *l, uint64_t last_index, uint64_t last_term)
{
    uint64_t t = logLastTerm(l);
    return last_term > t || (last_term == t && last_index >= logLastIndex(l));
}

uint64_t logFindConflictByTerm(const struct raft_log *l, uint64_t index, uint64_t term)
{
    if (index > logLastIndex(l)) index = logLastIndex(l);
    while (index > l->snap_index) {
        if (logTerm(l, index) <= term) return index;
        index--;
    }
    return index;
}

void logFree(struct raft_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        cn_free(l->ents[i].data);
    cn_free(l->ents);
    memset(l, 0, sizeof(*l));
}
