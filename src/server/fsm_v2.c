/* fsm_v2: the v2 key space (src/store) as the node's state machine. A command is an encoded
 * cn_store_cmd; a membership change carries a batch of them (the member records of
 * src/cluster), applied in the same entry. The result handed to a proposer is the store's
 * struct cn_store_result. */
#include "fsm_v2.h"

#include <string.h>

#include "cluster/cluster.h"
#include "common/err.h"
#include "common/log.h"

static struct cn_fsm_v2 *of(struct cn_fsm *fsm)
{
    return fsm->data;
}

static int apply(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                 struct cn_fsm_out *out)
{
    (void)index;
    struct cn_fsm_v2 *f = of(fsm);
    struct cn_store_cmd c;
    int rc = cn_store_cmd_decode(cmd, len, &c);
    if (rc != 0) return rc;
    cn_store_apply_cmd(f->store, &c, &f->res);
    out->result = &f->res;
    out->members_changed = c.ns == CN_NS_SYS;
    return 0;
}

static void apply_conf(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                       const void *records, size_t len, struct cn_fsm_out *out)
{
    (void)op;
    (void)id;
    struct cn_fsm_v2 *f = of(fsm);
    size_t off = 0;
    const void *cmd;
    size_t cmd_len;
    int rc;
    while ((rc = cn_members_batch_next(records, len, &off, &cmd, &cmd_len)) == 1) {
        if (cn_store_apply(f->store, cmd, cmd_len, &f->res) != 0)
            CN_LOGE("fsm", "cannot apply a member record command index=%llu",
                    (unsigned long long)index);
    }
    if (rc != 0)
        CN_LOGE("fsm", "a member record batch is cut short index=%llu", (unsigned long long)index);
    out->members_changed = true;
}

static void snapshot(struct cn_fsm *fsm, struct cn_buf *out)
{
    cn_store_snapshot_save(of(fsm)->store, out);
}

static void *freeze(struct cn_fsm *fsm)
{
    return cn_store_freeze(of(fsm)->store);
}

static void encode(void *frozen, struct cn_buf *out)
{
    cn_store_frozen_encode(frozen, out);
}

static void thaw(struct cn_fsm *fsm, void *frozen)
{
    (void)fsm;
    cn_store_frozen_free(frozen);
}

static int restore(struct cn_fsm *fsm, const void *p, size_t len)
{
    return cn_store_snapshot_load(of(fsm)->store, p, len);
}

static bool peer_url(struct cn_fsm *fsm, uint64_t id, char *url, size_t len)
{
    return cn_members_peer_url(of(fsm)->store, id, url, len);
}

static bool is_removed(struct cn_fsm *fsm, uint64_t id)
{
    return cn_members_is_removed(of(fsm)->store, id);
}

/* Every founder writes the same bytes: no time in them. */
static void records_join(struct cn_fsm *fsm, const struct cn_node_member *m, struct cn_buf *out)
{
    (void)fsm;
    cn_members_batch_join(out, m->id, m->peer_urls, m->npeer, 0);
}

static void records_remove(struct cn_fsm *fsm, uint64_t id, struct cn_buf *out)
{
    (void)fsm;
    cn_members_batch_remove(out, id, 0);
}

void cn_fsm_v2_init(struct cn_fsm_v2 *f, struct cn_store *store)
{
    memset(f, 0, sizeof(*f));
    f->store = store;
    f->fsm = (struct cn_fsm){
        .data = f,
        .apply = apply,
        .apply_conf = apply_conf,
        .snapshot = snapshot,
        .freeze = freeze,
        .encode = encode,
        .thaw = thaw,
        .restore = restore,
        .peer_url = peer_url,
        .is_removed = is_removed,
        .records_join = records_join,
        .records_remove = records_remove,
    };
}
