/* health: /health, answered through a quorum read (etcd 3.4's rule). */
#include "api_int.h"
#include "common/alloc.h"

struct health {
    struct cn_api *api;
    struct cn_http_req *req;
    struct cn_node_req *nreq;
};

static void health_abort(struct cn_http_req *req, void *ctx)
{
    (void)ctx;
    struct health *h = req->data; /* ctx is the server's */
    cn_node_req_detach(h->nreq);
    cn_free(h);
}

static void health_send(struct cn_api *api, struct cn_http_req *req, bool ok)
{
    if (ok) {
        api->health_ok++;
        /* etcd's /health body is JSON but its Content-Type is Go's sniffed text/plain */
        cn_http_respond(req, 200, "text/plain; charset=utf-8", NULL, 0, "{\"health\":\"true\"}", 17,
                        false);
    } else {
        api->health_fail++;
        cn_http_respond(req, 503, "text/plain; charset=utf-8", NULL, 0, "{\"health\":\"false\"}",
                        18, false);
    }
}

static void health_done(void *ctx, int rc, const void *res)
{
    (void)res; /* a read carries no result */
    struct health *h = ctx;
    h->req->on_abort = NULL;
    health_send(h->api, h->req, rc == 0);
    cn_free(h);
}

void cn_api__health(struct cn_api *api, struct cn_http_req *req)
{
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    if (st.leader == 0) {
        health_send(api, req, false);
        return;
    }
    /* A quorum read through consensus proves the member can serve (etcd 3.4's rule). */
    struct health *h = CN_NEW(struct health);
    h->api = api;
    h->req = req;
    req->data = h;
    req->on_abort = health_abort;
    h->nreq = cn_node_read_index(api->node, health_done, h);
}
