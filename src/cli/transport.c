/* transport: one HTTP exchange at a time over cairn's async client (src/http), run to completion
 * on the command's own libuv loop, plus the loop chores a CLI needs: sleeping, SIGINT, exit.
 * Errors are worded as Go's net/http words them, since etcdctl prints them verbatim. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/parse.h"
#include "http/http_client.h"

struct xfer {
    bool done;
    int rc;
    struct cn_cli_resp *resp;
    struct cn_buf *location;
};

static void on_done(struct cn_http_client_req *req, int rc, const struct cn_http_client_resp *r,
                    void *ctx)
{
    struct xfer *x = ctx;
    x->done = true;
    x->rc = rc;
    if (rc != 0) return;
    x->resp->status = r->status;
    cn_buf_append(&x->resp->body, r->body.p, r->body.len);
    struct cn_str idx = cn_http_client_resp_header(r, "X-Etcd-Index");
    uint64_t v;
    if (idx.p && cn_parse_u64(idx, &v)) {
        x->resp->has_index = true;
        x->resp->index = v;
    }
    if (x->location) {
        struct cn_str loc = cn_http_client_resp_header(r, "Location");
        if (loc.p) cn_buf_append(x->location, loc.p, loc.len);
    }
}

int cn_cli_exchange(struct cn_cli *cli, const char *method, const char *url, const char *ctype,
                    const void *body, size_t len, uint64_t timeout_ms, bool auth,
                    struct cn_cli_resp *resp, struct cn_buf *location)
{
    struct xfer x = {false, 0, resp, location};
    struct cn_http_hdr hdrs[3];
    size_t nh = 0;
    if (ctype) hdrs[nh++] = (struct cn_http_hdr){"Content-Type", ctype};
    if (auth && cli->auth) hdrs[nh++] = (struct cn_http_hdr){"Authorization", cli->auth};
    struct cn_http_client_opts o = {
        .method = method,
        .url = url,
        .headers = hdrs,
        .nheaders = nh,
        .body = body,
        .body_len = len,
        .timeout_ms = timeout_ms,
        .on_done = on_done,
        .ctx = &x,
    };
    int rc = cn_http_client_request(cli->http, &o, NULL);
    if (rc != 0) return rc;
    while (!x.done)
        uv_run(&cli->loop, UV_RUN_ONCE);
    return x.rc;
}

void cn_cli_transport_err(struct cn_buf *out, int rc, const char *host, int port, bool *conn)
{
    *conn = true;
    switch (rc) {
    case CN_ERR_NOT_FOUND:
        cn_buf_appendf(out, "dial tcp: lookup %s: no such host", host);
        return;
    case CN_ERR_PROTO:
        /* in practice: the server went away in the middle of a response (a watch whose
         * server died), which Go reports as "unexpected EOF" */
        *conn = false;
        cn_buf_appends(out, "unexpected EOF");
        return;
    case CN_ERR_TOO_LARGE:
        *conn = false;
        cn_buf_appends(out, "http: response body too large");
        return;
    case -ECONNRESET: /* src/http's word for a close before any response byte, too */
    case -EPIPE:
    case UV_EOF:
        *conn = false;
        cn_buf_appends(out, "EOF");
        return;
    case -EPROTONOSUPPORT:
        *conn = false;
        cn_buf_appends(out, "https endpoints are not supported by cairnctl yet");
        return;
    default:
        break;
    }
    const char *msg = rc < 0 && rc > -4096 ? strerror(-rc) : cn_strerror(rc);
    cn_buf_appendf(out, "dial tcp %s:%d: connect: ", host, port);
    /* Go's syscall messages are strerror's, lower-cased */
    for (const char *p = msg; *p; p++) {
        char c = *p;
        if (p == msg && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        cn_buf_putc(out, c);
    }
}

void cn_cli_set_user(struct cn_cli *cli, const char *user)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct cn_buf cred = CN_BUF_INIT;
    cn_buf_appends(&cred, user);
    if (strchr(user, ':') == NULL) {
        /* etcdctl prompts for the password when the flag has none */
        char *pw = getpass("Password: ");
        cn_buf_putc(&cred, ':');
        cn_buf_appends(&cred, pw ? pw : "");
    }
    struct cn_buf out = CN_BUF_INIT;
    cn_buf_appends(&out, "Basic ");
    const unsigned char *p = (const unsigned char *)cred.p;
    for (size_t i = 0; i < cred.len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < cred.len) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < cred.len) v |= p[i + 2];
        cn_buf_putc(&out, b64[(v >> 18) & 63]);
        cn_buf_putc(&out, b64[(v >> 12) & 63]);
        cn_buf_putc(&out, i + 1 < cred.len ? b64[(v >> 6) & 63] : '=');
        cn_buf_putc(&out, i + 2 < cred.len ? b64[v & 63] : '=');
    }
    cn_buf_free(&cred);
    cn_free(cli->auth);
    cli->auth = cn_buf_steal(&out, NULL);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    cn_cli_exit(CN_CLI_EXIT_OK); /* etcdctl's watch loops exit 0 on Ctrl-C */
}

void cn_cli_exit_on_sigint(struct cn_cli *cli)
{
    if (cli->sigint_on) return;
    uv_signal_init(&cli->loop, &cli->sigint);
    uv_signal_start(&cli->sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&cli->sigint);
    cli->sigint_on = true;
}

void cn_cli_poll(struct cn_cli *cli)
{
    uv_run(&cli->loop, UV_RUN_NOWAIT);
}

static void on_sleep(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

void cn_cli_sleep(struct cn_cli *cli, uint64_t ms)
{
    bool fired = false;
    uv_timer_t t;
    uv_timer_init(&cli->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_sleep, ms, 0);
    while (!fired)
        uv_run(&cli->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&cli->loop, UV_RUN_NOWAIT);
}

_Noreturn void cn_cli_exit(int code)
{
    fflush(stdout);
    fflush(stderr);
    exit(code);
}
