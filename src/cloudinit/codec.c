/* codec: the small decoders and formatters the spec borrows from Go's standard library:
 * base64.StdEncoding, gzip.NewReader, strconv.Quote (%q) and path.Clean / path.Dir. */
#include <string.h>
#include <zlib.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int cn_cloudinit_base64_decode(const char *p, size_t len, struct cn_buf *out)
{
    unsigned char q[4];
    size_t nq = 0;
    bool done = false; /* padding seen: nothing may follow */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r' || c == '\n') continue;
        if (done) return CN_ERR_PARSE;
        q[nq++] = c;
        if (nq < 4) continue;
        nq = 0;
        int v[4];
        int npad = 0;
        for (int k = 0; k < 4; k++) {
            if (q[k] == '=') {
                if (k < 2) return CN_ERR_PARSE;
                v[k] = 0;
                npad++;
            } else {
                if (npad) return CN_ERR_PARSE; /* data after '=' in a quantum */
                v[k] = b64_val(q[k]);
                if (v[k] < 0) return CN_ERR_PARSE;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        char o[3] = {(char)(w >> 16), (char)(w >> 8), (char)w};
        cn_buf_append(out, o, (size_t)(3 - npad));
        if (npad) done = true;
    }
    return nq == 0 ? 0 : CN_ERR_PARSE;
}

/* Length of a valid gzip member header at p, or 0. Mirrors what Go's gzip.NewReader rejects. */
static size_t gzip_header_len(const unsigned char *p, size_t len)
{
    if (len < 10 || p[0] != 0x1f || p[1] != 0x8b || p[2] != 8) return 0;
    unsigned flg = p[3];
    size_t off = 10;
    if (flg & 4) {
        if (len - off < 2) return 0;
        size_t xlen = (size_t)p[off] | (size_t)p[off + 1] << 8;
        off += 2;
        if (len - off < xlen) return 0;
        off += xlen;
    }
    for (unsigned bit = 8; bit <= 16; bit <<= 1) {
        if (!(flg & bit)) continue;
        const void *nul = memchr(p + off, 0, len - off);
        if (nul == NULL) return 0;
        off = (size_t)((const unsigned char *)nul - p) + 1;
    }
    if (flg & 2) {
        if (len - off < 2) return 0;
        uLong crc = crc32(0L, p, (uInt)off) & 0xffff;
        if (crc != ((uLong)p[off] | (uLong)p[off + 1] << 8)) return 0;
        off += 2;
    }
    return off;
}

int cn_cloudinit_gzip_decode(const char *p, size_t len, size_t max_out, struct cn_buf *out)
{
    size_t hl = gzip_header_len((const unsigned char *)p, len);
    if (hl == 0) return CN_ERR_PARSE;
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return CN_ERR_NOMEM;
    z.next_in = (Bytef *)(uintptr_t)(p + hl);
    size_t left = len - hl;
    size_t start = out->len;
    int rc = 0;
    for (;;) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        z.avail_in = chunk;
        cn_buf_reserve(out, 65536);
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = 65536;
        int zr = inflate(&z, Z_NO_FLUSH);
        size_t produced = 65536 - z.avail_out;
        left -= chunk - z.avail_in;
        out->len += produced;
        out->p[out->len] = '\0';
        if (out->len - start > max_out) {
            rc = CN_ERR_TOO_LARGE;
            break;
        }
        /* Body errors end the stream quietly: Go's ReadFrom error was ignored. */
        if (zr != Z_OK || (produced == 0 && z.avail_in == 0 && left == 0)) break;
    }
    inflateEnd(&z);
    if (rc != 0) {
        out->len = start;
        out->p[start] = '\0';
    }
    return rc;
}

int cn_cloudinit_decode_content(const char *p, size_t len, const char *enc, size_t enc_len,
                                struct cn_buf *out)
{
    struct cn_str e = cn_str_make(enc, enc_len);
    if (enc_len == 0) {
        cn_buf_append(out, p, len);
        return 0;
    }
    if (cn_str_eqz(e, "b64") || cn_str_eqz(e, "base64"))
        return cn_cloudinit_base64_decode(p, len, out);
    if (cn_str_eqz(e, "gz") || cn_str_eqz(e, "gzip"))
        return cn_cloudinit_gzip_decode(p, len, CI_MAX_DECODED, out);
    if (cn_str_eqz(e, "gz+base64") || cn_str_eqz(e, "gzip+base64") || cn_str_eqz(e, "gz+b64") ||
        cn_str_eqz(e, "gzip+b64")) {
        struct cn_buf tmp = CN_BUF_INIT;
        int rc = cn_cloudinit_base64_decode(p, len, &tmp);
        if (rc == 0)
            rc = cn_cloudinit_gzip_decode(tmp.p ? tmp.p : "", tmp.len, CI_MAX_DECODED, out);
        cn_buf_free(&tmp);
        return rc;
    }
    return CN_ERR_INVAL;
}

/* Length of a valid UTF-8 sequence at p (>= 2), or 0. */
static size_t utf8_len(const unsigned char *p, size_t len)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n) return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

void cn_cloudinit_quote(struct cn_buf *b, const char *p, size_t len)
{
    cn_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '"':
            cn_buf_appends(b, "\\\"");
            continue;
        case '\\':
            cn_buf_appends(b, "\\\\");
            continue;
        case '\a':
            cn_buf_appends(b, "\\a");
            continue;
        case '\b':
            cn_buf_appends(b, "\\b");
            continue;
        case '\f':
            cn_buf_appends(b, "\\f");
            continue;
        case '\n':
            cn_buf_appends(b, "\\n");
            continue;
        case '\r':
            cn_buf_appends(b, "\\r");
            continue;
        case '\t':
            cn_buf_appends(b, "\\t");
            continue;
        case '\v':
            cn_buf_appends(b, "\\v");
            continue;
        default:
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            cn_buf_putc(b, (char)c);
        } else if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)p + i, len - i);
            if (n) {
                cn_buf_append(b, p + i, n);
                i += n - 1;
            } else {
                cn_buf_appendf(b, "\\x%02x", c);
            }
        } else {
            cn_buf_appendf(b, "\\x%02x", c);
        }
    }
    cn_buf_putc(b, '"');
}

char *cn_cloudinit_path_clean(const char *p, size_t len)
{
    if (len == 0) return cn_xstrdup(".");
    bool rooted = p[0] == '/';
    char *out = cn_xmalloc(len + 2);
    size_t w = 0, r = 0, dotdot = 0;
    if (rooted) {
        out[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < len) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == len || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == len || p[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0) out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0)) out[w++] = '/';
            for (; r < len && p[r] != '/'; r++)
                out[w++] = p[r];
        }
    }
    if (w == 0) out[w++] = '.';
    out[w] = '\0';
    return out;
}

char *cn_cloudinit_path_dir(const char *p, size_t len)
{
    size_t i = len;
    while (i > 0 && p[i - 1] != '/')
        i--;
    return cn_cloudinit_path_clean(p, i);
}
