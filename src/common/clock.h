/* clock: wall and monotonic time, and the time formats etcd's clients read. Only the server layer
 * reads clocks; the store and raft get time passed in. */
#ifndef CN_COMMON_CLOCK_H
#define CN_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CN_NS_PER_MS 1000000LL
#define CN_NS_PER_S  1000000000LL

/* Nanoseconds since the Unix epoch. */
int64_t cn_clock_real_ns(void);
/* Nanoseconds on a monotonic clock. */
int64_t cn_clock_mono_ns(void);
/* RFC 3339 with nanoseconds, UTC, trailing zeros of the fraction trimmed (Go's RFC3339Nano). */
void cn_time_rfc3339nano(struct cn_buf *b, int64_t unix_ns);
/* Go's time.Duration.String(): "1h2m3.5s", "3.244038535s", "1.5ms", "0s". */
void cn_duration_go(struct cn_buf *b, int64_t ns);

#endif
