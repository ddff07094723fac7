/* fsm_v2: the v2 key space (src/store) and its member records (src/cluster) as the node's
 * state machine (struct cn_fsm). */
#ifndef CN_SERVER_FSM_V2_H
#define CN_SERVER_FSM_V2_H

#include "node/node.h"
#include "store/store.h"

struct cn_fsm_v2 {
    struct cn_fsm fsm; /* hand &fsm to the node */
    struct cn_store *store;
    struct cn_store_result res; /* the last apply's: what a proposer's callback borrows */
};

/* store is borrowed for the state machine's life. */
void cn_fsm_v2_init(struct cn_fsm_v2 *f, struct cn_store *store);

#endif
