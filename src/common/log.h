/* log: one logfmt line per event on stderr: `ts=... lvl=info mod=raft msg="became leader" term=7`.
 * The format string's text up to the first ` key=` becomes msg; the rest is appended as is, so
 * call sites read naturally: CN_LOGI("wal", "segment cut seq=%llu", seq). The level is checked
 * before anything is formatted. Under systemd (JOURNAL_STREAM set) ts is dropped and the line is
 * prefixed with the sd-daemon priority <N>. The sink is one of the two globals cairn allows. */
#ifndef CN_COMMON_LOG_H
#define CN_COMMON_LOG_H

#include <stdbool.h>

enum cn_log_level {
    CN_LOG_ERR = 3,
    CN_LOG_WARN = 4,
    CN_LOG_NOTICE = 5,
    CN_LOG_INFO = 6,
    CN_LOG_DEBUG = 7,
};

extern int cn_log_level_max; /* default CN_LOG_INFO */

void cn_log_init(void);
/* "err" "warn" "notice" "info" "debug" (also etcd's "ERROR" "WARNING" "NOTICE" "INFO" "DEBUG"). */
int cn_log_parse_level(const char *z);
/* Enables trace for a module named in CAIRN_TRACE (comma separated), e.g. CAIRN_TRACE=raft. */
bool cn_log_trace_enabled(const char *mod);
void cn_log_write(int level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CN_LOG(level, mod, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= cn_log_level_max) cn_log_write((level), (mod), __VA_ARGS__);                \
    } while (0)
#define CN_LOGE(mod, ...) CN_LOG(CN_LOG_ERR, mod, __VA_ARGS__)
#define CN_LOGW(mod, ...) CN_LOG(CN_LOG_WARN, mod, __VA_ARGS__)
#define CN_LOGN(mod, ...) CN_LOG(CN_LOG_NOTICE, mod, __VA_ARGS__)
#define CN_LOGI(mod, ...) CN_LOG(CN_LOG_INFO, mod, __VA_ARGS__)
#define CN_LOGD(mod, ...) CN_LOG(CN_LOG_DEBUG, mod, __VA_ARGS__)

/* Invariant checks stay on in release builds. */
#define CN_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) cn_assert_fail(#cond, __FILE__, __LINE__);                                    \
    } while (0)
_Noreturn void cn_assert_fail(const char *expr, const char *file, int line);

#endif
