/* shutdown: SIGTERM/SIGINT and every failure end here, in one order: stop accepting and end the
 * watches (http), answer what waited for recovery, let the node answer or fail what is queued
 * and flush its log, then close the handles left so the loop ends. A proxy stops its own way. */
#include <signal.h>

#include "common/alloc.h"
#include "common/log.h"
#include "discovery/discovery.h"
#include "h2/grpc.h"
#include "proxy/proxy.h"
#include "server_int.h"

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void cn_server__close_all(struct server *s)
{
    uv_walk(s->loop, close_walk, NULL);
}

void cn_server__node_stopped(void *ctx)
{
    struct server *s = ctx;
    s->node = NULL;
    CN_LOGN("server", "stopped cleanly");
    cn_server__close_all(s);
}

static void grpc_closed(void *ctx);
static void http_closed(void *ctx);

static void http_closed_cb(void *ctx)
{
    struct server *s = ctx;
    s->http_closing = false;
    http_closed(s);
}

static void http_closed(void *ctx)
{
    struct server *s = ctx;
    s->http = NULL;
    if (s->grpc) return;    /* grpc_closed goes on */
    if (s->opening) return; /* open_after stops the node once recovery returns */
    if (s->node)
        cn_node_stop(s->node, cn_server__node_stopped, s);
    else
        cn_server__node_stopped(s);
}

static void grpc_closed(void *ctx)
{
    struct server *s = ctx;
    s->grpc = NULL;
    if (s->http == NULL && !s->http_closing) http_closed(s);
}

static void proxy_stopped(void *ctx)
{
    struct server *s = ctx;
    s->proxy = NULL;
    CN_LOGN("server", "proxy stopped cleanly");
    cn_server__close_all(s);
}

void cn_server__shutdown(struct server *s, const char *why)
{
    if (s->stopping) return;
    s->stopping = true;
    CN_LOGN("server", "shutting down reason=%s", why);
    uv_signal_stop(&s->sigterm);
    uv_signal_stop(&s->sigint);
    cn_server__notify("STOPPING=1");
    if (s->proxy) {
        cn_proxy_stop(s->proxy, proxy_stopped, s);
        return;
    }
    cn_server__duties_stop(s);
    if (s->disc) {
        cn_discovery_cancel(s->disc);
        s->disc = NULL;
    }
    if (s->client) {
        cn_http_client_close(s->client, NULL, NULL);
        s->client = NULL;
    }
    if (s->api) cn_api_end_watches(s->api);
    if (s->v3) cn_v3_stop(s->v3);
    cn_server__drop_waiting(s);
    /* the HTTP and gRPC servers close together; the node stops once both are closed */
    if (s->grpc) cn_grpc_server_close(s->grpc, grpc_closed, s);
    if (s->http) {
        s->http_closing = true;
        cn_http_server_close(s->http, http_closed_cb, s);
    } else if (!s->grpc) {
        http_closed(s);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    cn_server__shutdown(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void cn_server__signals_start(struct server *s)
{
    uv_signal_init(s->loop, &s->sigterm);
    uv_signal_init(s->loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
}
