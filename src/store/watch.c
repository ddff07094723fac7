/* store watches: the 1000-event history ring and the watcher hub (spec §8). Watchers are kept
 * per (namespace, path) in a hash table of path entries; an idle watcher costs its struct and
 * nothing else. An event is matched against the entries of its key's ancestors and of the key
 * itself, and, for the removal of a directory, against every entry below it.
 *
 * Delivery safety: callbacks may unwatch any watcher (themselves included) or add watchers.
 * While a delivery runs (hub.depth > 0) nothing is freed or unlinked: removed watchers are marked
 * dead, skipped, and freed when the outermost delivery ends. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "store_int.h"

struct wpath {
    struct wpath *hnext;
    uint64_t hash;
    struct cn_list watchers;
    uint8_t ns;
    size_t len;
    char path[]; /* absolute, clean; "/" for the namespace root */
};

struct cn_store_watcher {
    struct cn_list link; /* in wp->watchers */
    struct wpath *wp;
    uint64_t since; /* deliver live events with index >= since */
    cn_store_watch_cb cb;
    void *ctx;
    bool recursive;
    bool stream;
    bool dead;
    struct cn_store_watcher *next_dead;
};

/* ---- history -------------------------------------------------------------------------------- */

static struct cn_store_event *hist_at(const struct cn_store *s, size_t i)
{
    return s->hist[(s->hist_head + i) % STORE_HIST_CAP];
}

static void hist_add(struct cn_store *s, struct cn_store_event *ev)
{
    cn_store_event_ref(ev);
    if (s->hist_n == STORE_HIST_CAP) {
        cn_store_event_unref(s->hist[s->hist_head]);
        s->hist_head = (s->hist_head + 1) % STORE_HIST_CAP;
        s->hist_n--;
    }
    s->hist[(s->hist_head + s->hist_n) % STORE_HIST_CAP] = ev;
    s->hist_n++;
}

void cn_store__hist_clear(struct cn_store *s)
{
    for (size_t i = 0; i < s->hist_n; i++)
        cn_store_event_unref(hist_at(s, i));
    s->hist_head = s->hist_n = 0;
}

/* First history position whose event index is >= idx (hist_n if none). */
static size_t hist_lower_bound(const struct cn_store *s, uint64_t idx)
{
    size_t lo = 0, hi = s->hist_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hist_at(s, mid)->index < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- path entries --------------------------------------------------------------------------- */

#define FNV_OFF   1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static inline uint64_t fnv_byte(uint64_t h, uint8_t c)
{
    return (h ^ c) * FNV_PRIME;
}

static uint64_t path_hash(uint8_t ns, const char *p, size_t len)
{
    uint64_t h = fnv_byte(FNV_OFF, ns);
    for (size_t i = 0; i < len; i++)
        h = fnv_byte(h, (uint8_t)p[i]);
    return h;
}

static struct wpath *wpath_find(const struct store_hub *hub, uint8_t ns, uint64_t h, const char *p,
                                size_t len)
{
    if (!hub->tab_cap) return NULL;
    for (struct wpath *wp = hub->tab[h & (hub->tab_cap - 1)]; wp; wp = wp->hnext)
        if (wp->hash == h && wp->ns == ns && wp->len == len && memcmp(wp->path, p, len) == 0)
            return wp;
    return NULL;
}

static void tab_grow(struct store_hub *hub)
{
    size_t cap = hub->tab_cap ? hub->tab_cap * 2 : 16;
    struct wpath **tab = cn_xcalloc(cap, sizeof(*tab));
    for (size_t i = 0; i < hub->tab_cap; i++) {
        struct wpath *wp = hub->tab[i];
        while (wp) {
            struct wpath *next = wp->hnext;
            wp->hnext = tab[wp->hash & (cap - 1)];
            tab[wp->hash & (cap - 1)] = wp;
            wp = next;
        }
    }
    cn_free(hub->tab);
    hub->tab = tab;
    hub->tab_cap = cap;
}

static struct wpath *wpath_get(struct store_hub *hub, uint8_t ns, const char *p, size_t len)
{
    uint64_t h = path_hash(ns, p, len);
    struct wpath *wp = wpath_find(hub, ns, h, p, len);
    if (wp) return wp;
    if (hub->npaths >= hub->tab_cap) tab_grow(hub);
    wp = cn_xmalloc(sizeof(*wp) + len + 1);
    wp->hash = h;
    wp->ns = ns;
    wp->len = len;
    memcpy(wp->path, p, len);
    wp->path[len] = '\0';
    cn_list_init(&wp->watchers);
    struct wpath **slot = &hub->tab[h & (hub->tab_cap - 1)];
    wp->hnext = *slot;
    *slot = wp;
    hub->npaths++;
    return wp;
}

static void wpath_drop(struct store_hub *hub, struct wpath *wp)
{
    struct wpath **link = &hub->tab[wp->hash & (hub->tab_cap - 1)];
    while (*link != wp)
        link = &(*link)->hnext;
    *link = wp->hnext;
    hub->npaths--;
    cn_free(wp);
}

/* Unlinks and frees w; drops its path entry when it was the last watcher there. */
static void watcher_free(struct store_hub *hub, struct cn_store_watcher *w)
{
    struct wpath *wp = w->wp;
    cn_list_remove(&w->link);
    if (cn_list_empty(&wp->watchers)) wpath_drop(hub, wp);
    cn_free(w);
}

static void hub_enter(struct store_hub *hub)
{
    hub->depth++;
}

static void hub_leave(struct store_hub *hub)
{
    CN_ASSERT(hub->depth > 0);
    if (--hub->depth > 0) return;
    while (hub->dead) {
        struct cn_store_watcher *w = hub->dead;
        hub->dead = w->next_dead;
        watcher_free(hub, w);
    }
}

/* Marks w removed; it is freed when the outermost delivery ends (or now, outside delivery). */
static void watcher_kill(struct store_hub *hub, struct cn_store_watcher *w)
{
    w->dead = true;
    hub->count--;
    if (hub->depth > 0) {
        w->next_dead = hub->dead;
        hub->dead = w;
    } else {
        watcher_free(hub, w);
    }
}

void cn_store_unwatch(struct cn_store *s, struct cn_store_watcher *w)
{
    if (!w || w->dead) return; /* a one-shot watcher already fired, or a repeated unwatch */
    watcher_kill(&s->hub, w);
}

uint64_t cn_store_watcher_count(const struct cn_store *s)
{
    return s->hub.count;
}

/* Called with hub.depth > 0. */
static void deliver(struct store_hub *hub, struct cn_store_watcher *w, struct cn_store_event *ev)
{
    if (!w->stream) watcher_kill(hub, w); /* one-shot: gone before its callback runs */
    w->cb(w, ev, w->ctx);
}

/* ---- matching ------------------------------------------------------------------------------- */

static bool is_dir_removal(const struct cn_store_event *ev)
{
    return ev->node.dir && (strcmp(ev->action, "delete") == 0 || strcmp(ev->action, "expire") == 0);
}

/* Does the key, below the first plen bytes (the watched path), contain a hidden segment? */
static bool hidden_below(const char *key, size_t key_len, size_t plen)
{
    for (size_t i = plen; i + 1 < key_len; i++)
        if (key[i] == '/' && key[i + 1] == '_') return true;
    return false;
}

/* Is path p (len) strictly below dir key k (klen)? */
static bool below(const char *p, size_t len, const char *k, size_t klen)
{
    return len > klen && p[klen] == '/' && memcmp(p, k, klen) == 0;
}

/* History match (etcd's EventHistory.scan): no hidden filter, as etcd. */
static bool hist_match(const struct cn_store_event *ev, const struct cn_store_watcher *w)
{
    const struct wpath *wp = w->wp;
    if (ev->ns != wp->ns || ev->refresh) return false;
    const char *k = ev->node.key;
    size_t klen = ev->node.key_len;
    if (klen == wp->len && memcmp(k, wp->path, klen) == 0) return true;
    if (w->recursive) {
        if (wp->len == 1) return true; /* the namespace root: every key is below it */
        if (below(k, klen, wp->path, wp->len)) return true;
    }
    return is_dir_removal(ev) && below(wp->path, wp->len, k, klen);
}

/* Delivers ev to the watchers of one path entry. plen: bytes of the key covered by the entry's
 * path (0 for the root); exact: the entry is the key itself; forced: the entry lies below a
 * removed directory. */
static void deliver_entry(struct store_hub *hub, struct wpath *wp, struct cn_store_event *ev,
                          size_t plen, bool exact, bool forced)
{
    bool hidden = !exact && !forced && hidden_below(ev->node.key, ev->node.key_len, plen);
    struct cn_list *it = wp->watchers.next;
    while (it != &wp->watchers) {
        struct cn_store_watcher *w = CN_CONTAINER_OF(it, struct cn_store_watcher, link);
        /* w is never freed during delivery, so its next link can be read after the callback;
         * watchers added meanwhile have since > ev->index and are skipped */
        if (!w->dead && ev->index >= w->since && (exact || forced || (w->recursive && !hidden)))
            deliver(hub, w, ev);
        it = it->next;
    }
}

static void publish_live(struct cn_store *s, struct cn_store_event *ev)
{
    struct store_hub *hub = &s->hub;
    if (hub->npaths == 0) return;
    uint8_t ns = ev->ns;
    const char *k = ev->node.key;
    size_t klen = ev->node.key_len;
    hub_enter(hub);

    /* the root, each ancestor, then the key itself; FNV-1a runs incrementally over the key */
    struct wpath *wp = wpath_find(hub, ns, path_hash(ns, "/", 1), "/", 1);
    if (wp) deliver_entry(hub, wp, ev, 0, klen == 1, false);
    uint64_t h = fnv_byte(FNV_OFF, ns);
    for (size_t i = 0; i <= klen && klen > 1; i++) {
        if (i > 0 && (i == klen || k[i] == '/')) {
            wp = wpath_find(hub, ns, h, k, i);
            if (wp) deliver_entry(hub, wp, ev, i, i == klen, false);
        }
        if (i < klen) h = fnv_byte(h, (uint8_t)k[i]);
    }

    /* a removed directory takes every watched path below it along (spec §8 ancestor rule) */
    if (is_dir_removal(ev)) {
        size_t n = 0, cap = 0;
        struct wpath **hits = NULL;
        for (size_t b = 0; b < hub->tab_cap; b++) {
            for (wp = hub->tab[b]; wp; wp = wp->hnext) {
                if (wp->ns != ns || !below(wp->path, wp->len, k, klen)) continue;
                if (n == cap) {
                    cap = cap ? cap * 2 : 8;
                    hits = cn_xrealloc(hits, cap * sizeof(*hits));
                }
                hits[n++] = wp;
            }
        }
        for (size_t i = 0; i < n; i++)
            deliver_entry(hub, hits[i], ev, klen, false, true);
        cn_free(hits);
    }
    hub_leave(hub);
}

void cn_store__hub_publish(struct cn_store *s, struct cn_store_event *ev)
{
    hist_add(s, ev);
    if (!ev->refresh) publish_live(s, ev); /* refresh: history only, never delivered */
}

bool cn_store_watch(struct cn_store *s, uint8_t ns, struct cn_str key, bool recursive, bool stream,
                    uint64_t since_index, cn_store_watch_cb cb, void *ctx,
                    struct cn_store_watcher **out, struct cn_store_err *err)
{
    CN_ASSERT(ns < CN_NS_COUNT);
    struct store_hub *hub = &s->hub;
    uint64_t last = s->index;
    uint64_t since = since_index ? since_index : last + 1;
    err->ecode = 0;
    err->cause[0] = '\0';
    err->index = last;
    *out = NULL;
    if (s->hist_n > 0 && since < hist_at(s, 0)->index) {
        err->ecode = CN_EC_EVENT_INDEX_CLEARED;
        snprintf(err->cause, sizeof(err->cause),
                 "the requested history has been cleared [%llu/%llu]",
                 (unsigned long long)hist_at(s, 0)->index, (unsigned long long)since);
        return false;
    }

    struct cn_buf path = CN_BUF_INIT;
    cn_store__clean_path(&path, key);
    hub_enter(hub);
    struct cn_store_watcher *w = cn_xmalloc(sizeof(*w));
    w->wp = wpath_get(hub, ns, path.p, path.len);
    cn_buf_free(&path);
    cn_list_insert_tail(&w->wp->watchers, &w->link);
    w->since = since > last ? since : last + 1;
    w->cb = cb;
    w->ctx = ctx;
    w->recursive = recursive;
    w->stream = stream;
    w->dead = false;
    w->next_dead = NULL;
    hub->count++;

    /* Past index: scan the history up to the index at registration; live delivery covers the
     * rest. etcd stops after the first history hit even for streams; cairn keeps streaming. */
    if (since <= last) {
        for (size_t i = hist_lower_bound(s, since); i < s->hist_n && !w->dead; i++) {
            struct cn_store_event *ev = hist_at(s, i);
            if (ev->index > last) break;
            if (hist_match(ev, w)) deliver(hub, w, ev);
        }
    }
    if (!w->dead) *out = w;
    hub_leave(hub);
    return true;
}

void cn_store__hub_end_all(struct cn_store *s, bool notify)
{
    struct store_hub *hub = &s->hub;
    if (notify && hub->count > 0) {
        size_t n = 0;
        struct cn_store_watcher **all = cn_xmalloc(hub->count * sizeof(*all));
        hub_enter(hub);
        for (size_t b = 0; b < hub->tab_cap; b++) {
            for (struct wpath *wp = hub->tab[b]; wp; wp = wp->hnext) {
                struct cn_list *it;
                for (it = wp->watchers.next; it != &wp->watchers; it = it->next) {
                    struct cn_store_watcher *w = CN_CONTAINER_OF(it, struct cn_store_watcher, link);
                    if (!w->dead) all[n++] = w;
                }
            }
        }
        for (size_t i = 0; i < n; i++)
            watcher_kill(hub, all[i]);
        for (size_t i = 0; i < n; i++)
            all[i]->cb(all[i], NULL, all[i]->ctx);
        hub_leave(hub);
        cn_free(all);
        return;
    }
    if (notify) return;
    /* teardown: free everything without callbacks */
    CN_ASSERT(hub->depth == 0);
    for (size_t b = 0; b < hub->tab_cap; b++) {
        struct wpath *wp = hub->tab[b];
        while (wp) {
            struct wpath *next = wp->hnext;
            struct cn_list *it, *tmp;
            CN_LIST_FOREACH(it, tmp, &wp->watchers) {
                cn_free(CN_CONTAINER_OF(it, struct cn_store_watcher, link));
            }
            cn_free(wp);
            wp = next;
        }
    }
    cn_free(hub->tab);
    memset(hub, 0, sizeof(*hub));
}
