/* maint: Maintenance.Status (what `etcdctl endpoint status` and Kubernetes' health and dbSize
 * polling read). The other Maintenance calls come with part 2 of the v3 work. */
#include "v3_int.h"

/* The etcd version cairn answers as (docs/compat.md: 3.4.23 until Watch progress requests
 * behave as 3.4.31+ / 3.5.13+, which Kubernetes checks before it uses them). */
#define V3_VERSION "3.4.23"

/* What Status reports as dbSize: the bytes the key space holds, counted as mvcc stores them (every
 * kept key and value, each kept revision's record, each key's tree node) plus the store's own
 * 16 KiB of fixed structures (etcd's empty bbolt file is 20 KiB; neither is ever 0). */
static uint64_t db_size(const struct cn_mvcc *kv)
{
    struct cn_mvcc_stats st;
    cn_mvcc_stats(kv, &st);
    return 16384 + st.data_bytes + st.revisions_kept * 48 + st.keys_kept * 64 + st.leases * 64;
}

void cn_v3__status(struct v3call *c)
{
    struct cn_v3 *api = c->api;
    struct cn_arena *ar = &c->arena;
    struct cn_node_status st;
    cn_node_get_status(api->node, &st);
    Etcdserverpb__StatusResponse *resp = CN_ARENA_NEW(ar, Etcdserverpb__StatusResponse);
    etcdserverpb__status_response__init(resp);
    resp->header = CN_ARENA_NEW(ar, Etcdserverpb__ResponseHeader);
    etcdserverpb__response_header__init(resp->header);
    resp->header->revision = cn_mvcc_rev(api->ap->kv);
    resp->version = (char *)V3_VERSION;
    resp->leader = st.leader;
    resp->raftindex = st.commit_index;
    resp->raftterm = st.term;
    resp->raftappliedindex = st.applied_index;
    resp->dbsize = (int64_t)db_size(api->ap->kv);
    resp->dbsizeinuse = resp->dbsize;
    bool learner = false;
    for (unsigned i = 0; i < st.n_learners; i++)
        if (st.conf_learners[i] == api->opt.member_id) learner = true;
    resp->islearner = learner;
    cn_v3__reply(c, &resp->base, resp->header);
}
