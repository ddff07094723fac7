/* input: what the user data is (spec 2.1, 6.1), the gzip payload wrapper and variable
 * substitution (spec 4). */
#include <jansson.h>
#include <strings.h>

#include "cloudinit.h"
#include "common/err.h"

static size_t first_line_len(const char *p, size_t len)
{
    const char *nl = memchr(p, '\n', len);
    return nl ? (size_t)(nl - p) : len;
}

bool cn_cloudinit_is_script(const char *p, size_t len)
{
    return first_line_len(p, len) >= 2 && p[0] == '#' && p[1] == '!';
}

bool cn_cloudinit_is_cloud_config(const char *p, size_t len)
{
    size_t n = first_line_len(p, len);
    /* Go trimmed with unicode.IsSpace; the ASCII ones plus NEL and NBSP in UTF-8. */
    for (;;) {
        if (n > 0 && (p[n - 1] == ' ' || (p[n - 1] >= '\t' && p[n - 1] <= '\r'))) {
            n--;
        } else if (n >= 2 && (unsigned char)p[n - 2] == 0xc2 &&
                   ((unsigned char)p[n - 1] == 0x85 || (unsigned char)p[n - 1] == 0xa0)) {
            n -= 2;
        } else {
            break;
        }
    }
    return n == 13 && memcmp(p, "#cloud-config", 13) == 0;
}

/* Go's json.Unmarshal into {ignitionVersion *int; ignition {version *string}}: field names
 * match case-insensitively, any type mismatch fails the whole decode. */
bool cn_cloudinit_is_ignition(const char *p, size_t len)
{
    json_t *root = json_loadb(p, len, 0, NULL);
    if (root == NULL) return false;
    bool ok = json_is_object(root), found = false;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (!ok) break;
        if (strcasecmp(k, "ignitionVersion") == 0) {
            if (json_is_integer(v))
                found = true;
            else if (!json_is_null(v))
                ok = false;
        } else if (strcasecmp(k, "ignition") == 0) {
            if (json_is_null(v)) continue;
            if (!json_is_object(v)) {
                ok = false;
                continue;
            }
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2)
            {
                if (strcasecmp(k2, "version") != 0) continue;
                if (json_is_string(v2))
                    found = true;
                else if (!json_is_null(v2))
                    ok = false;
            }
        }
    }
    json_decref(root);
    return ok && found;
}

enum ci_class cn_cloudinit_classify(const char *p, size_t len)
{
    if (len == 0) return CI_EMPTY;
    if (cn_cloudinit_is_script(p, len)) return CI_SCRIPT;
    if (cn_cloudinit_is_cloud_config(p, len)) return CI_CLOUD_CONFIG;
    if (cn_cloudinit_is_ignition(p, len)) return CI_IGNITION;
    return CI_UNKNOWN;
}

int cn_cloudinit_gunzip_payload(const char *p, size_t len, struct cn_buf *out)
{
    if (len >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b)
        return cn_cloudinit_gzip_decode(p, len, CI_MAX_USERDATA, out);
    cn_buf_append(out, p, len);
    return 0;
}

static bool at(const char *p, size_t len, size_t i, const char *tok, size_t tlen)
{
    return len - i >= tlen && memcmp(p + i, tok, tlen) == 0;
}

/* One token: `([^\\]|^)TOKEN` -> `${1}value`, then `\TOKEN` -> `TOKEN`, as Go's regexps did. */
static void subst_one(struct cn_buf *in, const char *tok, const char *val)
{
    size_t tlen = strlen(tok), vlen = val ? strlen(val) : 0;
    const char *p = in->p ? in->p : "";
    size_t len = in->len;
    struct cn_buf a = CN_BUF_INIT, b = CN_BUF_INIT;
    for (size_t i = 0; i < len;) {
        if (p[i] != '\\' && i + 1 <= len && at(p, len, i + 1, tok, tlen)) {
            cn_buf_putc(&a, p[i]);
            cn_buf_append(&a, val, vlen);
            i += 1 + tlen;
        } else if (i == 0 && at(p, len, 0, tok, tlen)) {
            cn_buf_append(&a, val, vlen);
            i += tlen;
        } else {
            cn_buf_putc(&a, p[i++]);
        }
    }
    for (size_t i = 0; i < a.len;) {
        if (a.p[i] == '\\' && at(a.p, a.len, i + 1, tok, tlen)) {
            cn_buf_append(&b, tok, tlen);
            i += 1 + tlen;
        } else {
            cn_buf_putc(&b, a.p[i++]);
        }
    }
    cn_buf_free(&a);
    cn_buf_free(in);
    *in = b;
}

void cn_cloudinit_substitute(const char *p, size_t len, const struct ci_subst *s,
                             struct cn_buf *out)
{
    struct cn_buf t = CN_BUF_INIT;
    cn_buf_append(&t, p, len);
    subst_one(&t, "$public_ipv4", s->public_ipv4);
    subst_one(&t, "$private_ipv4", s->private_ipv4);
    subst_one(&t, "$public_ipv6", s->public_ipv6);
    subst_one(&t, "$private_ipv6", s->private_ipv6);
    cn_buf_append(out, t.p ? t.p : "", t.len);
    cn_buf_free(&t);
}
