/* Unit tests for src/stream: the TCP stream, dialer and listener on 127.0.0.1 (ephemeral ports)
 * in one uv loop, with exact bytes, callback counts and orders (rule 3 of stream.h: a cut-short
 * write or dial completes with -ECANCELED before the close callback). No sleeps: the loop runs
 * until a condition holds, under a deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "stream/stream.h"

#define DEADLINE_MS 5000

static uv_loop_t loop;
static uv_timer_t tick;

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_update_time(&loop);                                                                     \
        uint64_t dl_ = uv_now(&loop) + DEADLINE_MS;                                                \
        while (!(cond)) {                                                                          \
            if (uv_now(&loop) > dl_) fail_msg("timed out waiting for: %s", #cond);                 \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        }                                                                                          \
    } while (0)

/* One end of a connection, as the tests see it. */
struct end {
    struct cn_stream *s;
    struct cn_buf in;
    char rbuf[4096];
    int connects, connect_status;
    int writes, write_status;
    int shutdowns, shutdown_status;
    int eofs, errors;
    int closes;
    char order[16]; /* 'w' write done, 'c' connect done, 'x' closed */
    size_t norder;
};

static void note(struct end *e, char c)
{
    if (e->norder < sizeof(e->order) - 1) e->order[e->norder++] = c;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5); /* bounds each UV_RUN_ONCE */
    return 0;
}

static void tick_closed(uv_handle_t *h)
{
    (void)h;
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&tick, tick_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle of the layer was closed */
    return 0;
}

static void e_alloc(struct cn_stream *s, size_t hint, struct cn_stream_buf *buf)
{
    (void)hint;
    struct end *e = s->data;
    buf->p = e->rbuf;
    buf->len = sizeof(e->rbuf);
}

static void e_read(struct cn_stream *s, ssize_t n, const struct cn_stream_buf *buf)
{
    struct end *e = s->data;
    if (n > 0) cn_buf_append(&e->in, buf->p, (size_t)n);
    if (n == CN_ERR_EOF) e->eofs++;
    if (n < 0 && n != CN_ERR_EOF) e->errors++;
}

static void e_connected(struct cn_stream *s, int status)
{
    struct end *e = s->data;
    e->connects++;
    e->connect_status = status;
    note(e, 'c');
}

static void e_written(struct cn_stream *s, int status, void *arg)
{
    struct end *e = s->data;
    assert_ptr_equal(arg, e);
    e->writes++;
    e->write_status = status;
    note(e, 'w');
}

static void e_shut(struct cn_stream *s, int status)
{
    struct end *e = s->data;
    e->shutdowns++;
    e->shutdown_status = status;
}

static void e_closed(struct cn_stream *s)
{
    struct end *e = s->data;
    e->closes++;
    note(e, 'x');
}

/* ---- a listener that hands its connections to a struct end ----------------------------------- */

struct lis {
    struct cn_stream_listener *l;
    uint16_t port;
    struct end *next; /* where the next accepted stream goes */
    int accepted, closed;
};

static void on_accept(struct cn_stream_listener *l, int status, struct cn_stream *s)
{
    struct lis *li = l->data;
    assert_int_equal(status, 0);
    assert_non_null(li->next);
    assert_null(s->data);
    s->data = li->next;
    li->next->s = s;
    li->next = NULL;
    li->accepted++;
    assert_int_equal(cn_stream_set_nodelay(s, true), 0);
    assert_int_equal(cn_stream_read_start(s, e_alloc, e_read), 0);
}

static void lis_closed(struct cn_stream_listener *l)
{
    struct lis *li = l->data;
    li->closed++;
}

static void lis_open(struct lis *li)
{
    memset(li, 0, sizeof(*li));
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(
        cn_stream_tcp_listen(&loop, (struct sockaddr *)&sa, false, 16, on_accept, li, &li->l), 0);
    struct sockaddr_storage ss;
    assert_int_equal(cn_stream_listener_addr(li->l, &ss), 0);
    li->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_true(li->port != 0);
}

static void lis_close(struct lis *li)
{
    cn_stream_listener_close(li->l, lis_closed);
    RUN_UNTIL(li->closed == 1);
}

static void end_close(struct end *e)
{
    cn_stream_close(e->s, e_closed);
    RUN_UNTIL(e->closes == 1);
    cn_buf_free(&e->in);
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* Dial, accept, a three-buffer write, try_write back, shutdown seen as EOF, close. */
static void dial_write_shutdown(void **state)
{
    (void)state;
    struct lis li;
    lis_open(&li);
    struct end c = {0}, srv = {0};
    li.next = &srv;
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", li.port, 0, e_connected, &c, &c.s), 0);
    assert_non_null(c.s);
    assert_ptr_equal(c.s->data, &c);
    assert_int_equal(c.connects, 0); /* never inside the call */
    RUN_UNTIL(c.connects == 1 && li.accepted == 1);
    assert_int_equal(c.connect_status, 0);
    assert_int_equal(cn_stream_read_start(c.s, e_alloc, e_read), 0);

    struct sockaddr_storage ss;
    assert_int_equal(cn_stream_peer_addr(srv.s, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);

    struct cn_str v[3] = {CN_STR("one "), CN_STR("two "), CN_STR("three")};
    assert_int_equal(cn_stream_write(c.s, v, 3, e_written, &c), 0);
    assert_int_equal(c.writes, 0);
    RUN_UNTIL(srv.in.len == 13 && c.writes == 1);
    assert_int_equal(c.write_status, 0);
    assert_memory_equal(srv.in.p, "one two three", 13);
    assert_int_equal(cn_stream_write_queue_size(c.s), 0);

    struct cn_str back = CN_STR("back");
    assert_int_equal(cn_stream_try_write(srv.s, &back, 1), 4);
    RUN_UNTIL(c.in.len == 4);
    assert_memory_equal(c.in.p, "back", 4);

    assert_int_equal(cn_stream_shutdown(c.s, e_shut), 0);
    RUN_UNTIL(srv.eofs == 1 && c.shutdowns == 1);
    assert_int_equal(c.shutdown_status, 0);
    assert_int_equal(cn_stream_write(c.s, v, 1, e_written, &c), -EPIPE);
    /* the server answers after the client's FIN, then closes: the client sees the bytes, EOF */
    assert_int_equal(cn_stream_write(srv.s, &back, 1, e_written, &srv), 0);
    RUN_UNTIL(srv.writes == 1);
    end_close(&srv);
    RUN_UNTIL(c.eofs == 1);
    assert_int_equal(c.in.len, 8);
    assert_int_equal(c.errors, 0);
    end_close(&c);
    assert_string_equal(c.order, "cwx");
    lis_close(&li);
}

/* A name: resolved on the thread pool; "localhost" may give ::1 first, which nothing listens on,
 * and the next address is tried. */
static void dial_name_tries_each_address(void **state)
{
    (void)state;
    struct lis li;
    lis_open(&li);
    struct end c = {0}, srv = {0};
    li.next = &srv;
    assert_int_equal(cn_stream_tcp_dial(&loop, "localhost", li.port, 0, e_connected, &c, &c.s), 0);
    RUN_UNTIL(c.connects == 1);
    assert_int_equal(c.connect_status, 0);
    RUN_UNTIL(li.accepted == 1);
    end_close(&c);
    RUN_UNTIL(srv.eofs == 1);
    end_close(&srv);
    lis_close(&li);
}

static void dial_failures(void **state)
{
    (void)state;
    /* refused: the stream still has to be closed */
    struct lis li;
    lis_open(&li);
    uint16_t port = li.port;
    lis_close(&li);
    struct end a = {0};
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", port, 0, e_connected, &a, &a.s), 0);
    RUN_UNTIL(a.connects == 1);
    assert_int_equal(a.connect_status, -ECONNREFUSED);
    assert_int_equal(cn_stream_read_start(a.s, e_alloc, e_read), -ENOTCONN);
    end_close(&a);
    assert_string_equal(a.order, "cx");

    /* a name that does not resolve */
    struct end b = {0};
    assert_int_equal(
        cn_stream_tcp_dial(&loop, "no-such-host.invalid", 80, 0, e_connected, &b, &b.s), 0);
    RUN_UNTIL(b.connects == 1);
    assert_int_equal(b.connect_status, CN_ERR_NOT_FOUND);
    end_close(&b);

    /* what cannot be dialed at all */
    struct cn_stream *s = NULL;
    assert_int_equal(cn_stream_tcp_dial(&loop, "", 80, 0, e_connected, NULL, &s), CN_ERR_INVAL);
    assert_null(s);
}

/* Closing a stream that is still dialing: the dial completes with -ECANCELED, then close_cb. */
static void close_while_dialing(void **state)
{
    (void)state;
    struct lis li;
    lis_open(&li);
    struct end a = {0}, srv = {0};
    li.next = &srv;
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", li.port, 0, e_connected, &a, &a.s), 0);
    cn_stream_close(a.s, e_closed);
    assert_int_equal(a.connects + a.closes, 0);
    RUN_UNTIL(a.closes == 1);
    assert_int_equal(a.connect_status, -ECANCELED);
    assert_string_equal(a.order, "cx");
    cn_buf_free(&a.in);

    /* ... also while the name is being resolved */
    struct end b = {0};
    assert_int_equal(cn_stream_tcp_dial(&loop, "localhost", li.port, 0, e_connected, &b, &b.s), 0);
    cn_stream_close(b.s, e_closed);
    RUN_UNTIL(b.closes == 1);
    assert_int_equal(b.connects, 1);
    assert_int_equal(b.connect_status, -ECANCELED);
    assert_string_equal(b.order, "cx");
    cn_buf_free(&b.in);
    /* the listener may have accepted the first one before it was closed */
    if (srv.s) {
        RUN_UNTIL(srv.eofs + srv.errors >= 1);
        end_close(&srv);
    }
    lis_close(&li);
}

/* A write the peer does not read is still pending at close: -ECANCELED, then close_cb. */
static void close_cancels_pending_write(void **state)
{
    (void)state;
    struct lis li;
    lis_open(&li);
    struct end c = {0}, srv = {0};
    li.next = &srv;
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", li.port, 0, e_connected, &c, &c.s), 0);
    RUN_UNTIL(c.connects == 1 && li.accepted == 1);
    cn_stream_read_stop(srv.s); /* the server stops reading */
    size_t big = 64u << 20;
    char *p = cn_xcalloc(1, big);
    struct cn_str v = {p, big};
    assert_int_equal(cn_stream_write(c.s, &v, 1, e_written, &c), 0);
    RUN_UNTIL(cn_stream_write_queue_size(c.s) > 0);
    assert_int_equal(cn_stream_try_write(c.s, &v, 1), -EAGAIN); /* something is queued */
    cn_stream_close(c.s, e_closed);
    RUN_UNTIL(c.closes == 1);
    assert_int_equal(c.writes, 1);
    assert_int_equal(c.write_status, -ECANCELED);
    assert_string_equal(c.order, "cwx");
    cn_free(p);
    cn_buf_free(&c.in);
    end_close(&srv);
    lis_close(&li);
}

/* One connect attempt over its limit ends the dial with CN_ERR_TIMEOUT: a listening socket whose
 * accept queue is full drops the SYN of the next connection, which then hangs. */
static void connect_attempt_timeout(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 0), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    uint16_t port = ntohs(sa.sin_port);
    /* with backlog 0, Linux queues one connection and drops the SYN of the next */
    struct end fill = {0};
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", port, 0, e_connected, &fill, &fill.s),
                     0);
    RUN_UNTIL(fill.connects == 1);
    assert_int_equal(fill.connect_status, 0);
    struct end t = {0};
    assert_int_equal(cn_stream_tcp_dial(&loop, "127.0.0.1", port, 50, e_connected, &t, &t.s), 0);
    RUN_UNTIL(t.connects == 1);
    assert_int_equal(t.connect_status, CN_ERR_TIMEOUT);
    end_close(&t);
    end_close(&fill);
    close(fd);
}

static void listen_errors(void **state)
{
    (void)state;
    struct lis li;
    lis_open(&li);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", li.port, &sa);
    struct cn_stream_listener *l2 = NULL;
    assert_int_equal(
        cn_stream_tcp_listen(&loop, (struct sockaddr *)&sa, false, 16, on_accept, NULL, &l2),
        -EADDRINUSE);
    assert_null(l2);
    lis_close(&li);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(dial_write_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(dial_name_tries_each_address, setup, teardown),
        cmocka_unit_test_setup_teardown(dial_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(close_while_dialing, setup, teardown),
        cmocka_unit_test_setup_teardown(close_cancels_pending_write, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_attempt_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(listen_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
