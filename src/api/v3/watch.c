/* watch: etcd 3.4's Watch service (etcdserver/api/v3rpc/watch.go over mvcc/watchable_store.go).
 *
 * A Watch call is a bidirectional stream carrying many watchers. Each watcher wants the events of
 * a key or a range from a revision on (next_rev). It is either
 *   - synced: it has seen everything up to the current revision, and every applied write hands
 *     it its events at once (cn_v3__watch_events, from the apply on this member: a watch is
 *     always served by the member it is on, leader or not, as etcd does); or
 *   - unsynced: it starts in the past, its stream's output is backed up, or a snapshot replaced
 *     the key space under it. It catches up from mvcc's history (cn_mvcc_changes) in batches of
 *     at most BATCH_REVS revisions, from a timer, until it reaches the current revision; a
 *     revision that compaction removed ends it with compact_revision, as etcd does.
 * So a slow client costs at most STREAM_CAP queued bytes per stream, never an unbounded buffer,
 * and an idle watcher costs its struct and its key.
 *
 * Responses as etcd sends them: created (header revision = current), events (one response per
 * write while synced; one per catch-up batch with the current revision), canceled (a cancel
 * request, a compacted start), a progress response (watch_id -1) for WatchProgressRequest, and
 * every 10 minutes a progress notify to watchers that asked and saw no events. fragment splits a
 * response over --max-request-bytes. */
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "v3_int.h"

#define STREAM_CAP  (1u << 20) /* queued reply bytes past which a stream's watchers wait */
#define BATCH_REVS  1000       /* revisions per catch-up response (etcd's watchBatchMaxRevs) */
#define SYNC_MS     10         /* how often unsynced watchers are caught up */
#define PROGRESS_MS (10 * 60 * 1000) /* etcd's progressReportInterval */
#define INVALID_ID  (-1)

struct wstream {
    struct cn_list link; /* api->wstreams */
    struct cn_v3 *api;
    struct cn_grpc_call *gc;
    struct cn_list watchers; /* struct watcher, by creation */
    int64_t next_id;
    size_t nwatchers;
};

struct watcher {
    struct cn_list link; /* in its stream */
    struct cn_list sync; /* api->wsynced or api->wunsynced */
    struct wstream *ws;
    int64_t id;
    int64_t next_rev; /* the first revision not delivered yet */
    bool synced;
    bool prev_kv, fragment, progress, noput, nodelete;
    bool progress_due;  /* no event since the last progress tick */
    bool all_from;      /* range_end "\0": every key >= key */
    uint8_t *key, *end; /* end NULL: the single key */
    size_t key_len, end_len;
};

/* ---- keys ---------------------------------------------------------------------------------- */

static int bytes_cmp(const void *a, size_t na, const void *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return na < nb ? -1 : na > nb;
}

static bool matches(const struct watcher *w, const char *k, size_t n)
{
    if (!w->end && !w->all_from) return n == w->key_len && memcmp(k, w->key, n) == 0;
    if (bytes_cmp(k, n, w->key, w->key_len) < 0) return false;
    return w->all_from || bytes_cmp(k, n, w->end, w->end_len) < 0;
}

static bool wanted(const struct watcher *w, const struct cn_mvcc_event *e)
{
    if (e->type == CN_MVCC_PUT && w->noput) return false;
    if (e->type == CN_MVCC_DELETE && w->nodelete) return false;
    return matches(w, e->kv.key, e->kv.key_len);
}

/* ---- sending --------------------------------------------------------------------------------- */

static void kv_fill(Mvccpb__KeyValue *m, const struct cn_mvcc_kv *kv)
{
    mvccpb__key_value__init(m);
    m->key.data = (uint8_t *)kv->key;
    m->key.len = kv->key_len;
    m->value.data = (uint8_t *)kv->value;
    m->value.len = kv->value_len;
    m->create_revision = kv->create_revision;
    m->mod_revision = kv->mod_revision;
    m->version = kv->version;
    m->lease = kv->lease;
}

static void header(struct cn_v3 *api, Etcdserverpb__ResponseHeader *h, int64_t rev)
{
    etcdserverpb__response_header__init(h);
    cn_v3__fill_header(api, h, rev);
}

static void send_resp(struct wstream *ws, Etcdserverpb__WatchResponse *r)
{
    cn_grpc_send_pb(ws->gc, &r->base);
}

/* A control response (created, canceled, progress) for id. */
static void send_ctrl_at(struct wstream *ws, int64_t rev, int64_t id, bool created, bool canceled,
                         const char *reason, int64_t compact_rev)
{
    Etcdserverpb__ResponseHeader h;
    header(ws->api, &h, rev);
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    r.header = &h;
    r.watch_id = id;
    r.created = created;
    r.canceled = canceled;
    r.compact_revision = compact_rev;
    r.cancel_reason = (char *)(reason ? reason : "");
    send_resp(ws, &r);
}

/* The same with the current revision in the header. */
static void send_ctrl(struct wstream *ws, int64_t id, bool created, bool canceled,
                      const char *reason, int64_t compact_rev)
{
    send_ctrl_at(ws, cn_mvcc_rev(ws->api->ap->kv), id, created, canceled, reason, compact_rev);
}

/* Sends the events ev[0..n) that w wants, in one response (or fragments of it) with header
 * revision rev. Returns whether anything was sent. */
static bool send_events(struct watcher *w, const struct cn_mvcc_event *ev, size_t n, int64_t rev)
{
    struct cn_v3 *api = w->ws->api;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (wanted(w, &ev[i])) k++;
    if (k == 0) return false;
    Mvccpb__Event *evs = cn_xcalloc(k, sizeof(*evs));
    Mvccpb__Event **evp = cn_xcalloc(k, sizeof(*evp));
    Mvccpb__KeyValue *kvs = cn_xcalloc(2 * k, sizeof(*kvs));
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cn_mvcc_event *e = &ev[i];
        if (!wanted(w, e)) continue;
        mvccpb__event__init(&evs[j]);
        evs[j].type = e->type == CN_MVCC_DELETE ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                                                : MVCCPB__EVENT__EVENT_TYPE__PUT;
        kv_fill(&kvs[2 * j], &e->kv);
        evs[j].kv = &kvs[2 * j];
        if (w->prev_kv && e->has_prev) {
            kv_fill(&kvs[2 * j + 1], &e->prev);
            evs[j].prev_kv = &kvs[2 * j + 1];
        }
        evp[j] = &evs[j];
        j++;
    }
    Etcdserverpb__ResponseHeader h;
    header(api, &h, rev);
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    r.header = &h;
    r.watch_id = w->id;
    r.n_events = k;
    r.events = evp;
    size_t limit = api->opt.max_request_bytes + CN_V3_REQUEST_OVERHEAD; /* etcd's */
    if (!w->fragment || k < 2 || protobuf_c_message_get_packed_size(&r.base) < limit) {
        send_resp(w->ws, &r);
    } else {
        /* etcd's sendFragments: as many events as fit under the limit (at least one) per
         * response, fragment set on all but the last */
        size_t at = 0;
        while (at < k) {
            size_t take = 1;
            r.events = evp + at;
            r.fragment = true;
            for (;;) {
                if (at + take >= k) break;
                r.n_events = take + 1;
                if (protobuf_c_message_get_packed_size(&r.base) >= limit) break;
                take++;
            }
            r.n_events = take;
            at += take;
            r.fragment = at < k;
            send_resp(w->ws, &r);
        }
    }
    cn_free(kvs);
    cn_free(evp);
    cn_free(evs);
    return true;
}

/* ---- synced and unsynced ------------------------------------------------------------------- */

static void sync_timer_cb(uv_timer_t *t);

static void arm_sync(struct cn_v3 *api)
{
    if (api->wstopped) return;
    if (!api->wtimer_init) {
        uv_timer_init(api->loop, &api->wtimer);
        api->wtimer.data = api;
        api->wtimer_init = true;
    }
    if (!uv_is_active((uv_handle_t *)&api->wtimer))
        uv_timer_start(&api->wtimer, sync_timer_cb, SYNC_MS, SYNC_MS);
}

static void make_unsynced(struct watcher *w)
{
    if (!w->synced) return;
    w->synced = false;
    cn_list_remove(&w->sync);
    cn_list_insert_tail(&w->ws->api->wunsynced, &w->sync);
    arm_sync(w->ws->api);
}

static void make_synced(struct watcher *w)
{
    if (w->synced) return;
    w->synced = true;
    cn_list_remove(&w->sync);
    cn_list_insert_tail(&w->ws->api->wsynced, &w->sync);
}

static void watcher_free(struct watcher *w)
{
    cn_list_remove(&w->link);
    cn_list_remove(&w->sync);
    w->ws->nwatchers--;
    w->ws->api->nwatchers--;
    cn_free(w->key);
    cn_free(w->end);
    cn_free(w);
}

/* One catch-up step for an unsynced watcher: true when it is done with (synced or gone). */
static bool catch_up(struct watcher *w)
{
    struct cn_v3 *api = w->ws->api;
    if (cn_grpc_call_backlog(w->ws->gc) >= STREAM_CAP) return false;
    int64_t cur = cn_mvcc_rev(api->ap->kv);
    if (w->next_rev > cur) {
        make_synced(w);
        return true;
    }
    int64_t end = w->next_rev + BATCH_REVS - 1;
    if (end > cur) end = cur;
    int64_t last =
        cn_mvcc_changes(api->ap->kv, w->next_rev, end, 0, &api->wbuf, &api->wbuf_n, &api->wbuf_cap);
    if (last == CN_MVCC_ERR_COMPACTED) {
        api->wbuf_n = 0;
        /* etcd's compacted response carries no header revision */
        send_ctrl_at(w->ws, 0, w->id, false, true, NULL, cn_mvcc_compacted_rev(api->ap->kv));
        watcher_free(w);
        return true;
    }
    if (send_events(w, api->wbuf, api->wbuf_n, cur)) w->progress_due = false;
    api->wbuf_n = 0;
    w->next_rev = (last < w->next_rev ? end : last) + 1;
    if (w->next_rev > cur) {
        make_synced(w);
        return true;
    }
    return false;
}

static void sync_unsynced(struct cn_v3 *api)
{
    struct cn_list *l = api->wunsynced.next;
    while (l != &api->wunsynced) {
        struct watcher *w = CN_CONTAINER_OF(l, struct watcher, sync);
        l = l->next;
        catch_up(w);
    }
}

static void progress_tick(struct cn_v3 *api, uint64_t now)
{
    if (now - api->wprogress_at < PROGRESS_MS) return;
    api->wprogress_at = now;
    for (struct cn_list *l = api->wsynced.next; l != &api->wsynced; l = l->next) {
        struct watcher *w = CN_CONTAINER_OF(l, struct watcher, sync);
        if (!w->progress) continue;
        if (w->progress_due) send_ctrl(w->ws, w->id, false, false, NULL, 0);
        w->progress_due = true;
    }
}

static void sync_timer_cb(uv_timer_t *t)
{
    struct cn_v3 *api = t->data;
    sync_unsynced(api);
    if (cn_list_empty(&api->wunsynced)) uv_timer_stop(t);
}

void cn_v3__watch_tick(struct cn_v3 *api, uint64_t now_ms)
{
    if (api->wprogress_at == 0) api->wprogress_at = now_ms;
    progress_tick(api, now_ms);
}

/* Every write applied on this member: its events go to the synced watchers that want them. */
void cn_v3__watch_events(void *ctx, const struct cn_mvcc_event *ev, size_t n, int64_t rev)
{
    struct cn_v3 *api = ctx;
    struct cn_list *l = api->wsynced.next;
    while (l != &api->wsynced) {
        struct watcher *w = CN_CONTAINER_OF(l, struct watcher, sync);
        l = l->next;
        if (rev < w->next_rev) continue;
        if (cn_grpc_call_backlog(w->ws->gc) >= STREAM_CAP) {
            /* the client is not reading: catch up from history once it does */
            make_unsynced(w);
            continue;
        }
        if (send_events(w, ev, n, rev)) w->progress_due = false;
        w->next_rev = rev + 1;
    }
}

/* A snapshot replaced the key space: every watcher catches up from where it was. */
void cn_v3__watch_restored(void *ctx)
{
    struct cn_v3 *api = ctx;
    while (!cn_list_empty(&api->wsynced)) {
        struct watcher *w = CN_CONTAINER_OF(api->wsynced.next, struct watcher, sync);
        make_unsynced(w);
    }
}

/* ---- the stream ------------------------------------------------------------------------------ */

static void stream_free(struct wstream *ws)
{
    while (!cn_list_empty(&ws->watchers))
        watcher_free(CN_CONTAINER_OF(ws->watchers.next, struct watcher, link));
    cn_list_remove(&ws->link);
    cn_free(ws);
}

static struct watcher *find(struct wstream *ws, int64_t id)
{
    for (struct cn_list *l = ws->watchers.next; l != &ws->watchers; l = l->next) {
        struct watcher *w = CN_CONTAINER_OF(l, struct watcher, link);
        if (w->id == id) return w;
    }
    return NULL;
}

static void create(struct wstream *ws, const Etcdserverpb__WatchCreateRequest *cr)
{
    struct cn_v3 *api = ws->api;
    const uint8_t zero = 0;
    const uint8_t *key = cr->key.len ? cr->key.data : &zero;
    size_t key_len = cr->key.len ? cr->key.len : 1;
    bool all_from = cr->range_end.len == 1 && cr->range_end.data[0] == 0;
    bool ranged = cr->range_end.len > 0 && !all_from;
    if (ranged && bytes_cmp(key, key_len, cr->range_end.data, cr->range_end.len) >= 0) {
        send_ctrl(ws, INVALID_ID, true, true, "mvcc: watcher range is empty", 0);
        return;
    }
    int64_t id = cr->watch_id;
    if (id != 0 && find(ws, id)) {
        send_ctrl(ws, INVALID_ID, true, true,
                  "mvcc: duplicate watch ID provided on the WatchStream", 0);
        return;
    }
    if (id == 0) {
        while (find(ws, ws->next_id))
            ws->next_id++;
        id = ws->next_id++;
    }
    struct watcher *w = CN_NEW(struct watcher);
    w->ws = ws;
    w->id = id;
    w->key = cn_xmalloc(key_len);
    memcpy(w->key, key, key_len);
    w->key_len = key_len;
    w->all_from = all_from;
    if (ranged) {
        w->end = cn_xmalloc(cr->range_end.len);
        memcpy(w->end, cr->range_end.data, cr->range_end.len);
        w->end_len = cr->range_end.len;
    }
    w->prev_kv = cr->prev_kv;
    w->fragment = cr->fragment;
    w->progress = cr->progress_notify;
    w->progress_due = true;
    for (size_t i = 0; i < cr->n_filters; i++) {
        if (cr->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT)
            w->noput = true;
        else if (cr->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
            w->nodelete = true;
    }
    int64_t cur = cn_mvcc_rev(api->ap->kv);
    w->next_rev = cr->start_revision > 0 ? cr->start_revision : cur + 1;
    cn_list_insert_tail(&ws->watchers, &w->link);
    ws->nwatchers++;
    api->nwatchers++;
    send_ctrl(ws, id, true, false, NULL, 0);
    if (w->next_rev > cur) {
        w->synced = true;
        cn_list_insert_tail(&api->wsynced, &w->sync);
    } else {
        cn_list_insert_tail(&api->wunsynced, &w->sync);
        if (!catch_up(w)) arm_sync(api);
    }
}

static void cancel(struct wstream *ws, int64_t id)
{
    struct watcher *w = find(ws, id);
    if (!w) return; /* etcd answers nothing for an unknown id */
    watcher_free(w);
    send_ctrl(ws, id, false, true, NULL, 0);
}

void cn_v3__watch_message(struct cn_grpc_call *gc, const void *msg, size_t len, void *ctx)
{
    struct cn_v3 *api = ctx;
    struct wstream *ws = cn_grpc_call_data(gc);
    if (!ws) {
        ws = CN_NEW(struct wstream);
        ws->api = api;
        ws->gc = gc;
        cn_list_init(&ws->watchers);
        cn_list_insert_tail(&api->wstreams, &ws->link);
        cn_grpc_call_set_data(gc, ws);
    }
    if (!cn_v3_pb_depth_ok(&etcdserverpb__watch_request__descriptor, msg, len, 8)) {
        stream_free(ws);
        cn_grpc_finish(gc, CN_GRPC_INTERNAL,
                       "grpc: error unmarshalling request: proto: bad wire format");
        return;
    }
    Etcdserverpb__WatchRequest *r = etcdserverpb__watch_request__unpack(NULL, len, msg);
    if (!r) {
        stream_free(ws);
        cn_grpc_finish(gc, CN_GRPC_INTERNAL,
                       "grpc: error unmarshalling request: proto: bad wire format");
        return;
    }
    switch (r->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        if (r->create_request) create(ws, r->create_request);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        if (r->cancel_request) cancel(ws, r->cancel_request->watch_id);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        send_ctrl(ws, INVALID_ID, false, false, NULL, 0);
        break;
    default:
        break; /* etcd ignores an empty request */
    }
    etcdserverpb__watch_request__free_unpacked(r, NULL);
}

/* etcd keeps the stream after the client's half-close: its watchers go on until it resets. */
void cn_v3__watch_half_close(struct cn_grpc_call *gc, void *ctx)
{
    (void)gc, (void)ctx;
}

void cn_v3__watch_cancel(struct cn_grpc_call *gc, void *ctx)
{
    (void)ctx;
    struct wstream *ws = cn_grpc_call_data(gc);
    if (ws) stream_free(ws);
}

static void timer_closed(uv_handle_t *h)
{
    (void)h;
}

/* Shutdown: every watch stream ends with "server stopped"; the timer closes. */
void cn_v3__watches_close(struct cn_v3 *api)
{
    api->wstopped = true;
    while (!cn_list_empty(&api->wstreams)) {
        struct wstream *ws = CN_CONTAINER_OF(api->wstreams.next, struct wstream, link);
        struct cn_grpc_call *gc = ws->gc;
        stream_free(ws);
        cn_grpc_finish(gc, cn_v3_err_code(CN_V3_E_STOPPED), cn_v3_err_msg(CN_V3_E_STOPPED));
    }
    if (api->wtimer_init && !uv_is_closing((uv_handle_t *)&api->wtimer))
        uv_close((uv_handle_t *)&api->wtimer, timer_closed);
}

void cn_v3__watches_free(struct cn_v3 *api)
{
    while (!cn_list_empty(&api->wstreams))
        stream_free(CN_CONTAINER_OF(api->wstreams.next, struct wstream, link));
    cn_free(api->wbuf);
    api->wbuf = NULL;
}
