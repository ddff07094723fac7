/* clock: time sources and Go-compatible formatting. */
#include "clock.h"

#include <time.h>

int64_t cn_clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * CN_NS_PER_S + ts.tv_nsec;
}

int64_t cn_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CN_NS_PER_S + ts.tv_nsec;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

void cn_time_rfc3339nano(struct cn_buf *b, int64_t unix_ns)
{
    int64_t sec = floor_div(unix_ns, CN_NS_PER_S);
    int64_t nsec = unix_ns - sec * CN_NS_PER_S;
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    cn_buf_appendf(b, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (nsec) {
        char frac[10];
        int n = 9;
        for (int i = 8; i >= 0; i--) {
            frac[i] = (char)('0' + nsec % 10);
            nsec /= 10;
        }
        while (n > 0 && frac[n - 1] == '0')
            n--;
        cn_buf_putc(b, '.');
        cn_buf_append(b, frac, (size_t)n);
    }
    cn_buf_putc(b, 'Z');
}

/* Appends v / 10^prec with trailing zeros (and a bare point) removed. */
static void frac_fmt(struct cn_buf *b, uint64_t v, int prec)
{
    uint64_t scale = 1;
    for (int i = 0; i < prec; i++)
        scale *= 10;
    cn_buf_append_u64(b, v / scale);
    uint64_t f = v % scale;
    if (f == 0) return;
    char digits[20];
    int n = prec;
    for (int i = prec - 1; i >= 0; i--) {
        digits[i] = (char)('0' + f % 10);
        f /= 10;
    }
    while (n > 0 && digits[n - 1] == '0')
        n--;
    cn_buf_putc(b, '.');
    cn_buf_append(b, digits, (size_t)n);
}

void cn_duration_go(struct cn_buf *b, int64_t ns)
{
    uint64_t u = ns < 0 ? (uint64_t)(-ns) : (uint64_t)ns;
    if (ns < 0) cn_buf_putc(b, '-');
    if (u == 0) {
        cn_buf_appends(b, "0s");
        return;
    }
    if (u < 1000) {
        cn_buf_append_u64(b, u);
        cn_buf_appends(b, "ns");
        return;
    }
    if (u < 1000000) {
        frac_fmt(b, u, 3);
        cn_buf_appends(b, "µs");
        return;
    }
    if (u < 1000000000) {
        frac_fmt(b, u, 6);
        cn_buf_appends(b, "ms");
        return;
    }
    uint64_t h = u / (3600ULL * 1000000000ULL);
    u -= h * 3600ULL * 1000000000ULL;
    uint64_t m = u / (60ULL * 1000000000ULL);
    u -= m * 60ULL * 1000000000ULL;
    if (h) {
        cn_buf_append_u64(b, h);
        cn_buf_putc(b, 'h');
    }
    if (h || m) {
        cn_buf_append_u64(b, m);
        cn_buf_putc(b, 'm');
    }
    frac_fmt(b, u, 9);
    cn_buf_putc(b, 's');
}
