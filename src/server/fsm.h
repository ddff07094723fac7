/* fsm: the member's state machine, the v2 key space and the v3 one in one Raft log (struct
 * cn_fsm over two parts, each itself a struct cn_fsm). See fsm.c for the command tag and the
 * snapshot format. */
#ifndef CN_SERVER_FSM_H
#define CN_SERVER_FSM_H

#include "node/node.h"

/* The first byte of every v3 command (a v2 command starts with its codec version, 1). */
#define CN_FSM_V3_TAG 0x33

struct cn_fsm_both {
    struct cn_fsm fsm; /* hand &fsm to the node */
    struct cn_fsm *v2; /* member records, membership changes, v2 commands */
    struct cn_fsm *v3; /* commands tagged CN_FSM_V3_TAG */
};

/* v2 must provide the member-record callbacks; both parts must accept restore(NULL, 0) as "empty"
 * (v3 only: a snapshot written before v3 existed). Both are borrowed for f's life. */
void cn_fsm_both_init(struct cn_fsm_both *f, struct cn_fsm *v2, struct cn_fsm *v3);

#endif
