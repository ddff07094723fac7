/* err: messages for cairn's error codes and for negative errno values. */
#include "err.h"

#include <string.h>

const char *cn_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
#define CN_ERR_CASE(name, code, msg)                                                               \
    case code:                                                                                     \
        return msg;
        CN_ERR_MAP(CN_ERR_CASE)
#undef CN_ERR_CASE
    default:
        break;
    }
    if (rc < 0 && rc > -4096) return strerror(-rc);
    return "unknown error";
}
