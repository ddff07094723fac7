/* fsm_v3: the v3 key space (src/mvcc, with api/v3/apply.h's semantics) as the v3 part of the
 * member's state machine (fsm.h composes it with the v2 part). */
#ifndef CN_SERVER_FSM_V3_H
#define CN_SERVER_FSM_V3_H

#include "api/v3/apply.h"
#include "node/node.h"

struct cn_fsm_v3 {
    struct cn_fsm fsm;
    struct cn_v3_apply ap;
    struct cn_v3_result res; /* the last apply's: what a proposer's callback borrows */
};

/* kv and lessor are borrowed for f's life. The lessor's clock is the monotonic one; a caller may
 * set f->ap.now_ms / f->ap.ctx after init to run it on another (the simulation's virtual time). */
void cn_fsm_v3_init(struct cn_fsm_v3 *f, struct cn_mvcc *kv, struct cn_mvcc_lessor *lessor);
void cn_fsm_v3_free(struct cn_fsm_v3 *f);

#endif
