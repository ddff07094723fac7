/* fsm_v3: see fsm_v3.h. A command is tagged CN_V3_CMD_TAG (apply.h has its format); the result
 * handed to a proposer is struct cn_v3_result. The snapshot is mvcc's. */
#include "fsm_v3.h"

#include <string.h>

#include "common/clock.h"
#include "common/err.h"

static struct cn_fsm_v3 *of(struct cn_fsm *fsm)
{
    return fsm->data;
}

static int64_t mono_ms(void *ctx)
{
    (void)ctx;
    return (int64_t)(cn_clock_mono_ns() / 1000000);
}

static int apply(struct cn_fsm *fsm, uint64_t index, const void *cmd, size_t len,
                 struct cn_fsm_out *out)
{
    (void)index;
    struct cn_fsm_v3 *f = of(fsm);
    int rc = cn_v3_apply_cmd(&f->ap, cmd, len, &f->res);
    if (rc != 0) return rc;
    out->result = &f->res;
    out->members_changed = false;
    return 0;
}

static void apply_conf(struct cn_fsm *fsm, uint64_t index, enum cn_node_conf_op op, uint64_t id,
                       const void *records, size_t len, struct cn_fsm_out *out)
{
    (void)fsm, (void)index, (void)op, (void)id, (void)records, (void)len, (void)out;
}

static void snapshot(struct cn_fsm *fsm, struct cn_buf *out)
{
    cn_mvcc_snapshot_save(of(fsm)->ap.kv, out);
}

static void *freeze(struct cn_fsm *fsm)
{
    return cn_mvcc_freeze(of(fsm)->ap.kv);
}

static void encode(void *frozen, struct cn_buf *out)
{
    cn_mvcc_frozen_encode(frozen, out);
}

static void thaw(struct cn_fsm *fsm, void *frozen)
{
    (void)fsm;
    cn_mvcc_frozen_free(frozen);
}

/* len 0: a snapshot from before v3 existed: the key space is empty. */
static int restore(struct cn_fsm *fsm, const void *p, size_t len)
{
    struct cn_fsm_v3 *f = of(fsm);
    int rc;
    if (len == 0) {
        struct cn_mvcc *empty = cn_mvcc_new();
        struct cn_buf b = CN_BUF_INIT;
        cn_mvcc_snapshot_save(empty, &b);
        cn_mvcc_free(empty);
        rc = cn_mvcc_snapshot_load(f->ap.kv, b.p, b.len);
        cn_buf_free(&b);
    } else {
        rc = cn_mvcc_snapshot_load(f->ap.kv, p, len);
    }
    if (rc == 0 && f->ap.lessor)
        cn_mvcc_lessor_sync(f->ap.lessor, f->ap.kv, f->ap.now_ms(f->ap.ctx));
    if (rc == 0 && f->ap.on_restore) f->ap.on_restore(f->ap.events_ctx);
    return rc;
}

void cn_fsm_v3_init(struct cn_fsm_v3 *f, struct cn_mvcc *kv, struct cn_mvcc_lessor *lessor)
{
    memset(f, 0, sizeof(*f));
    cn_v3_apply_init(&f->ap, kv, lessor);
    f->ap.now_ms = mono_ms;
    f->fsm = (struct cn_fsm){
        .data = f,
        .apply = apply,
        .apply_conf = apply_conf,
        .snapshot = snapshot,
        .freeze = freeze,
        .encode = encode,
        .thaw = thaw,
        .restore = restore,
    };
}

void cn_fsm_v3_free(struct cn_fsm_v3 *f)
{
    cn_v3_apply_free(&f->ap);
}
