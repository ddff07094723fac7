#include "errors.h"

#include "common/err.h"

static const struct {
    int code;
    const char *msg;
} table[CN_V3_E_COUNT] = {
    [CN_V3_OK] = {0, ""},
#define X(name, c, m) [CN_V3_E_##name] = {c, m},
#include "v3_errors.def"
#undef X
};

int cn_v3_err_code(enum cn_v3_err e)
{
    return (unsigned)e < CN_V3_E_COUNT ? table[e].code : 2 /* Unknown */;
}

const char *cn_v3_err_msg(enum cn_v3_err e)
{
    return (unsigned)e < CN_V3_E_COUNT ? table[e].msg : "etcdserver: unknown error";
}

enum cn_v3_err cn_v3_err_of_node(int rc)
{
    switch (rc) {
    case CN_ERR_NO_LEADER:
        return CN_V3_E_NO_LEADER;
    case CN_ERR_STOPPED:
        return CN_V3_E_STOPPED;
    case CN_ERR_TIMEOUT:
        return CN_V3_E_TIMEOUT;
    default:
        /* a disk failure or anything else that kept the entry from committing here: the
         * outcome is unknown to the client, as a timeout is */
        return CN_V3_E_TIMEOUT;
    }
}
