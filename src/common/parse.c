/* parse: Go-compatible boolean and unsigned parsing. */
#include "parse.h"

bool cn_parse_bool(struct cn_str s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (cn_str_eqz(s, yes[i])) return *out = true, true;
        if (cn_str_eqz(s, no[i])) return *out = false, true;
    }
    return false;
}

bool cn_parse_u64(struct cn_str s, uint64_t *out)
{
    if (s.len == 0) return false;
    /* Go takes any number of leading zeros; what follows them is bounded by the overflow check */
    size_t i = 0;
    while (i + 1 < s.len && s.p[i] == '0')
        i++;
    uint64_t x = 0;
    for (; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return false;
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

bool cn_parse_hex_u64(struct cn_str s, uint64_t *out)
{
    if (s.len == 0 || s.len > 16) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a') + 10;
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A') + 10;
        else
            return false;
        x = x << 4 | d;
    }
    *out = x;
    return true;
}
