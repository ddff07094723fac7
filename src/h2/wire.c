/* wire: gRPC's small text formats, pure: grpc-timeout, grpc-message's percent-encoding, the
 * base64 of -bin metadata, and :path routing with grpc-go's error wording. */
#include <stdint.h>
#include <string.h>

#include "h2/h2_int.h"

int cn_h2__parse_timeout(struct cn_str v, uint64_t *ms)
{
    /* [G]: TimeoutValue is at most 8 ASCII digits, then one unit letter. */
    if (v.len < 2 || v.len > 9) return -1;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return -1;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    switch (v.p[v.len - 1]) {
    case 'H':
        *ms = n * 3600000u;
        break;
    case 'M':
        *ms = n * 60000u;
        break;
    case 'S':
        *ms = n * 1000u;
        break;
    case 'm':
        *ms = n;
        break;
    case 'u':
        *ms = (n + 999u) / 1000u;
        break;
    case 'n':
        *ms = (n + 999999u) / 1000000u;
        break;
    default:
        return -1;
    }
    return 0;
}

void cn_h2__percent_encode(struct cn_buf *b, const char *z)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)z; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            cn_buf_putc(b, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            cn_buf_append(b, e, 3);
        }
    }
}

static int b64_val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

int cn_h2__base64_decode(struct cn_buf *b, struct cn_str in)
{
    size_t n = in.len;
    while (n > 0 && in.p[n - 1] == '=')
        n--; /* grpc senders may omit the padding */
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)in.p[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            cn_buf_putc(b, (char)((acc >> bits) & 0xff));
        }
    }
    return bits >= 6 ? -1 : 0; /* one stray character is not a whole byte */
}

const struct cn_grpc_method *cn_h2__lookup(const struct cn_grpc_method *m, size_t n,
                                           struct cn_str path, struct cn_buf *msg)
{
    for (size_t i = 0; i < n; i++)
        if (cn_str_eqz(path, m[i].path)) return &m[i];
    /* grpc-go server.go handleStream: "/S/M" split at the last '/' */
    struct cn_str sm = path;
    if (sm.len > 0 && sm.p[0] == '/') sm = cn_str_make(sm.p + 1, sm.len - 1);
    size_t pos = sm.len;
    for (size_t i = sm.len; i > 0; i--) {
        if (sm.p[i - 1] == '/') {
            pos = i - 1;
            break;
        }
    }
    if (pos == sm.len) {
        cn_buf_appendf(msg, "malformed method name: \"%.*s\"", (int)path.len, path.p);
        return NULL;
    }
    struct cn_str service = cn_str_make(sm.p, pos);
    struct cn_str method = cn_str_make(sm.p + pos + 1, sm.len - pos - 1);
    bool known = false;
    for (size_t i = 0; i < n && !known; i++) {
        const char *p = m[i].path;
        const char *slash = strrchr(p, '/');
        if (p[0] == '/' && slash && (size_t)(slash - p - 1) == service.len &&
            memcmp(p + 1, service.p, service.len) == 0)
            known = true;
    }
    if (known)
        cn_buf_appendf(msg, "unknown method %.*s for service %.*s", (int)method.len, method.p,
                       (int)service.len, service.p);
    else
        cn_buf_appendf(msg, "unknown service %.*s", (int)service.len, service.p);
    return NULL;
}
