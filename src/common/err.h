/* err: cairn's error codes. Functions return 0 on success and a negative value on failure: either
 * -errno (OS failures, as libuv does) or one of cairn's own codes below, numbered from -10000 down
 * so that they can never meet an errno value (as LMDB does). cn_strerror() names both kinds. */
#ifndef CN_COMMON_ERR_H
#define CN_COMMON_ERR_H

#define CN_ERR_MAP(X)                                                                              \
    X(NOMEM, -10000, "out of memory")                                                              \
    X(INVAL, -10001, "invalid argument")                                                           \
    X(CORRUPT, -10002, "data corrupt")                                                             \
    X(TOO_LARGE, -10003, "too large")                                                              \
    X(NOT_FOUND, -10004, "not found")                                                              \
    X(PARSE, -10005, "parse error")                                                                \
    X(AGAIN, -10006, "incomplete, need more data")                                                 \
    X(STOPPED, -10007, "stopped")                                                                  \
    X(TIMEOUT, -10008, "timed out")                                                                \
    X(LOCKED, -10009, "in use by another process")                                                 \
    X(VERSION, -10010, "unsupported format version")                                               \
    X(EXISTS, -10011, "already exists")                                                            \
    X(PROTO, -10012, "protocol error")                                                             \
    X(NO_LEADER, -10013, "no leader")                                                              \
    X(IO, -10014, "i/o error")                                                                     \
    X(CANCELED, -10015, "canceled")                                                                \
    X(EOF, -10016, "end of stream")

enum cn_err {
#define CN_ERR_ENUM(name, code, msg) CN_ERR_##name = (code),
    CN_ERR_MAP(CN_ERR_ENUM)
#undef CN_ERR_ENUM
};

/* Returns a static string describing rc: a cairn code or a negative errno value. */
const char *cn_strerror(int rc);

#endif
