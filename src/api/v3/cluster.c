/* cluster: Cluster.MemberList from the member records (src/cluster; they live in the v2 store,
 * as etcd 3.4 keeps them in both spaces), which python-etcd3's status() and `etcdctl member
 * list` read. The membership changes (MemberAdd/Remove/Update/Promote) come with part 2. */
#include "cluster/cluster.h"

#include <string.h>

#include "v3_int.h"

static char **dup_strs(struct cn_arena *ar, char *const *v, size_t n)
{
    char **out = cn_arena_calloc(ar, n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]);
        out[i] = cn_arena_memdup(ar, v[i], len + 1);
    }
    return out;
}

void cn_v3__member_list(struct v3call *c)
{
    struct cn_v3 *api = c->api;
    struct cn_arena *ar = &c->arena;
    struct cn_member_list l;
    cn_members_load(api->opt.members, &l);
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    Etcdserverpb__MemberListResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__MemberListResponse);
    etcdserverpb__member_list_response__init(resp);
    resp->header = CN_ARENA_NEW(ar, Etcdserverpb__ResponseHeader);
    etcdserverpb__response_header__init(resp->header);
    resp->header->revision = cn_mvcc_rev(api->ap->kv);
    if (l.n > 0) {
        resp->members = cn_arena_calloc(ar, l.n, sizeof(*resp->members));
        for (size_t i = 0; i < l.n; i++) {
            const struct cn_member *m = &l.m[i];
            Etcdserverpb__Member *pm = CN_ARENA_NEW(ar, Etcdserverpb__Member);
            etcdserverpb__member__init(pm);
            pm->id = m->id;
            pm->name = cn_arena_memdup(ar, m->name, strlen(m->name) + 1);
            pm->peerurls = dup_strs(ar, m->peer_urls, m->n_peer);
            pm->n_peerurls = m->n_peer;
            pm->clienturls = dup_strs(ar, m->client_urls, m->n_client);
            pm->n_clienturls = m->n_client;
            for (unsigned k = 0; k < st.n_learners; k++)
                if (st.conf_learners[k] == m->id) pm->islearner = true;
            resp->members[i] = pm;
        }
        resp->n_members = l.n;
    }
    cn_member_list_free(&l);
    cn_v3__reply(c, &resp->base, resp->header);
}
