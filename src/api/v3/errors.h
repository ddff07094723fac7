/* api/v3 errors: etcd 3.4's v3 errors (v3_errors.def) as an enum with their gRPC codes and exact
 * messages, plus the gRPC status codes cairn uses. */
#ifndef CN_API_V3_ERRORS_H
#define CN_API_V3_ERRORS_H

enum cn_v3_err {
    CN_V3_OK = 0,
#define X(name, code, msg) CN_V3_E_##name,
#include "v3_errors.def"
#undef X
    CN_V3_E_COUNT
};

/* The gRPC code and etcd's message of e (e != CN_V3_OK). */
int cn_v3_err_code(enum cn_v3_err e);
const char *cn_v3_err_msg(enum cn_v3_err e);

/* The v3 error for a failed node request (CN_ERR_TIMEOUT, CN_ERR_NO_LEADER, CN_ERR_STOPPED, a
 * disk error...), as etcd words each. */
enum cn_v3_err cn_v3_err_of_node(int rc);

#endif
