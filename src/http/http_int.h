/* http_int: helpers shared by the server and client halves of src/http; not for other modules. */
#ifndef CN_HTTP_HTTP_INT_H
#define CN_HTTP_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/str.h"

/* ASCII case-insensitive equality of a slice and a NUL-terminated name. */
bool cn_http__name_eq(struct cn_str a, const char *z);

/* Appends "<code> <reason>\r\n" (Go's reason, or "status code N" when Go has none). */
void cn_http__put_status(struct cn_buf *b, int status);

/* Appends a header value with CR and LF replaced by spaces. */
void cn_http__put_value(struct cn_buf *b, const char *z);

/* Ignores SIGPIPE once per process (libuv writes sockets with writev). */
void cn_http__ignore_sigpipe(void);

#endif
