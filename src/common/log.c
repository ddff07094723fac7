/* log: logfmt lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

int cn_log_level_max = CN_LOG_INFO;
static bool journal;
static const char *trace;

void cn_log_init(void)
{
    journal = getenv("JOURNAL_STREAM") != NULL;
    trace = getenv("CAIRN_TRACE");
}

int cn_log_parse_level(const char *z)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        {"err", CN_LOG_ERR},   {"error", CN_LOG_ERR},    {"critical", CN_LOG_ERR},
        {"warn", CN_LOG_WARN}, {"warning", CN_LOG_WARN}, {"notice", CN_LOG_NOTICE},
        {"info", CN_LOG_INFO}, {"debug", CN_LOG_DEBUG},  {"trace", CN_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(z, names[i].name) == 0) return names[i].level;
    return -1;
}

bool cn_log_trace_enabled(const char *mod)
{
    if (trace == NULL) return false;
    size_t n = strlen(mod);
    for (const char *p = trace; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if ((len == n && strncmp(p, mod, n) == 0) || (len == 3 && strncmp(p, "all", 3) == 0))
            return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static const char *level_name(int level)
{
    switch (level) {
    case CN_LOG_ERR:
        return "err";
    case CN_LOG_WARN:
        return "warn";
    case CN_LOG_NOTICE:
        return "notice";
    case CN_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* Finds where " key=" starts in the formatted text: the end of msg. */
static size_t msg_end(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ') continue;
        size_t j = i + 1;
        /* Keys are lower-case identifiers; ETCD_NAME=x inside a message stays in the message. */
        if (j >= len || s[j] < 'a' || s[j] > 'z') continue;
        while (j < len &&
               (s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= '0' && s[j] <= '9')))
            j++;
        if (j > i + 1 && j < len && s[j] == '=') return i;
    }
    return len;
}

void cn_log_write(int level, const char *mod, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;

    struct cn_buf b = CN_BUF_INIT;
    if (journal) {
        cn_buf_appendf(&b, "<%d>", level);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        cn_buf_appendf(&b, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ ", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       ts.tv_nsec / 1000);
    }
    cn_buf_appendf(&b, "lvl=%s mod=%s msg=\"", level_name(level), mod);
    size_t m = msg_end(tmp, len);
    for (size_t i = 0; i < m; i++) {
        if (tmp[i] == '"' || tmp[i] == '\\') cn_buf_putc(&b, '\\');
        cn_buf_putc(&b, tmp[i] == '\n' ? ' ' : tmp[i]);
    }
    cn_buf_putc(&b, '"');
    cn_buf_append(&b, tmp + m, len - m);
    cn_buf_putc(&b, '\n');
    /* One write per line so concurrent writers never interleave within a line. */
    ssize_t w = write(STDERR_FILENO, b.p, b.len);
    (void)w; /* nothing sensible to do if stderr is gone */
    cn_buf_free(&b);
}

void cn_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "lvl=err mod=assert msg=\"assertion failed\" expr=\"%s\" at=%s:%d\n", expr,
            file, line);
    abort();
}
