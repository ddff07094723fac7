/* grpc_echo: a test server for src/h2, driven by tests/integration/test_h2_grpc.py with an
 * independent gRPC client (python3-grpcio). One port serves HTTP/1.1 (cairn's src/http) and
 * gRPC (connections opening with the HTTP/2 preface go to cn_grpc_server_adopt), as cairn's
 * client port will.
 *
 *   grpc_echo [--port N] [--max-recv BYTES]      prints "port=N" on stdout once listening
 *
 * Methods (service cairn.test.Echo), messages are raw bytes:
 *   Unary         replies the request
 *   ServerStream  request = 4-byte big-endian count + payload: count replies of payload
 *   Bidi          replies each message as it arrives; finishes OK when the client ends its side
 *   Later         replies the request from a timer 5 ms later (an answer from a later iteration;
 *                 300 ms when the request starts with "wait")
 *   Hang          never answers (deadline and cancel tests)
 *   Fail          request "CODE:message": finishes with that status and message
 *   Meta          request = a metadata name: replies its value (decoded for -bin)
 * HTTP/1.1: GET /stats -> {"cancels":N,"calls":N,"conns":N} (cancels = on_cancel callbacks,
 * calls = calls the handlers still own); anything else -> 200 "ok".
 * SIGTERM or SIGINT: graceful close of both servers, then exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "h2/grpc.h"
#include "http/http.h"

static struct cn_grpc_server *gsrv;
static struct cn_http_server *hsrv;
static unsigned long ncancels;

static void on_unary(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    cn_grpc_send(c, msg, len);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void on_sstream(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    const unsigned char *p = msg;
    if (len < 4) {
        cn_grpc_finish(c, CN_GRPC_INVALID_ARGUMENT, "need a count");
        return;
    }
    unsigned long n =
        (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
    for (unsigned long i = 0; i < n; i++)
        cn_grpc_send(c, p + 4, len - 4);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void on_bidi(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    cn_grpc_send(c, msg, len);
}

static void on_bidi_end(struct cn_grpc_call *c, void *ctx)
{
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void on_cancel(struct cn_grpc_call *c, void *ctx)
{
    ncancels++;
}

struct later {
    uv_timer_t t;
    struct cn_grpc_call *call; /* NULL once cancelled */
    size_t len;
    char msg[];
};

static void later_closed(uv_handle_t *h)
{
    cn_free(h->data);
}

static void on_later_timer(uv_timer_t *t)
{
    struct later *l = t->data;
    if (l->call) {
        cn_grpc_send(l->call, l->msg, l->len);
        cn_grpc_finish(l->call, CN_GRPC_OK, NULL);
    }
    uv_close((uv_handle_t *)t, later_closed);
}

static void on_later(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    struct later *l = cn_xmalloc(sizeof(*l) + len);
    l->call = c;
    l->len = len;
    memcpy(l->msg, msg, len);
    cn_grpc_call_set_data(c, l);
    uv_timer_init(ctx, &l->t);
    l->t.data = l;
    bool slow = len >= 4 && memcmp(msg, "wait", 4) == 0;
    uv_timer_start(&l->t, on_later_timer, slow ? 300 : 5, 0);
}

static void on_later_cancel(struct cn_grpc_call *c, void *ctx)
{
    struct later *l = cn_grpc_call_data(c);
    if (l) l->call = NULL;
    ncancels++;
}

static void on_hang(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
}

static void on_fail(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    char buf[256];
    size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
    char *colon = strchr(buf, ':');
    cn_grpc_finish(c, atoi(buf), colon ? colon + 1 : NULL);
}

static void on_meta(struct cn_grpc_call *c, const void *msg, size_t len, void *ctx)
{
    char name[128];
    size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
    memcpy(name, msg, n);
    name[n] = '\0';
    struct cn_str v = cn_grpc_metadata(c, name);
    if (!v.p) {
        cn_grpc_finish(c, CN_GRPC_NOT_FOUND, "no such metadata");
        return;
    }
    cn_grpc_send(c, v.p, v.len);
    cn_grpc_finish(c, CN_GRPC_OK, NULL);
}

static void on_http(struct cn_http_req *req, void *ctx)
{
    if (cn_str_eqz(req->path, "/stats")) {
        char body[128];
        int n =
            snprintf(body, sizeof(body), "{\"cancels\":%lu,\"calls\":%zu,\"conns\":%zu}", ncancels,
                     cn_grpc_server_call_count(gsrv), cn_grpc_server_conn_count(gsrv));
        cn_http_respond(req, 200, "application/json", NULL, 0, body, (size_t)n, false);
        return;
    }
    cn_http_respond(req, 200, "text/plain", NULL, 0, "ok", 2, false);
}

static uv_signal_t sigs[2];

static void on_signal(uv_signal_t *s, int signum)
{
    cn_grpc_server_close(gsrv, NULL, NULL);
    cn_http_server_close(hsrv, NULL, NULL);
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&sigs[i], NULL);
}

int main(int argc, char **argv)
{
    uint16_t port = 0;
    struct cn_grpc_limits lim = {0};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = (uint16_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--max-recv") == 0)
            lim.max_recv_msg = (size_t)strtoull(argv[i + 1], NULL, 10);
    }
    uv_loop_t *loop = uv_default_loop();
    struct cn_grpc_method methods[] = {
        {"/cairn.test.Echo/Unary", false, false, on_unary, NULL, on_cancel, NULL},
        {"/cairn.test.Echo/ServerStream", false, true, on_sstream, NULL, on_cancel, NULL},
        {"/cairn.test.Echo/Bidi", true, true, on_bidi, on_bidi_end, on_cancel, NULL},
        {"/cairn.test.Echo/Later", false, false, on_later, NULL, on_later_cancel, loop},
        {"/cairn.test.Echo/Hang", true, false, on_hang, NULL, on_cancel, NULL},
        {"/cairn.test.Echo/Fail", false, false, on_fail, NULL, on_cancel, NULL},
        {"/cairn.test.Echo/Meta", false, false, on_meta, NULL, on_cancel, NULL},
    };
    if (cn_grpc_server_new(loop, &lim, methods, sizeof(methods) / sizeof(methods[0]), &gsrv) != 0)
        return 1;
    hsrv = cn_http_server_new(loop, NULL, on_http, NULL, NULL);
    cn_http_server_set_h2(hsrv, cn_grpc_server_adopt_hook, gsrv);
    char err[256];
    if (cn_http_server_listen(hsrv, "127.0.0.1", port, err, sizeof(err)) != 0) {
        fprintf(stderr, "grpc_echo: %s\n", err);
        return 1;
    }
    printf("port=%u\n", cn_http_server_port(hsrv));
    fflush(stdout);
    uv_signal_init(loop, &sigs[0]);
    uv_signal_start(&sigs[0], on_signal, SIGTERM);
    uv_signal_init(loop, &sigs[1]);
    uv_signal_start(&sigs[1], on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 2;
}
