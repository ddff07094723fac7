/* datasource: where the user data and metadata come from (spec 3): a plain file, or the Azure
 * agent's directory (CustomData + SharedConfig.xml). SharedConfig.xml is read with a small
 * strict XML scanner that knows only what Go's encoding/xml would reject. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

int cn_cloudinit_read_host_file(const char *path, size_t max, struct cn_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno == ENOENT ? CN_ERR_NOT_FOUND : -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > max) {
        rc = CN_ERR_TOO_LARGE;
    } else {
        rc = cn_buf_read_fd(out, fd, max);
    }
    close(fd);
    return rc;
}

int cn_cloudinit_ds_file(const char *path, struct cn_buf *userdata)
{
    return cn_cloudinit_read_host_file(path, CI_MAX_USERDATA, userdata);
}

/* ---- SharedConfig.xml ---- */

#define XML_MAX_DEPTH 256

struct xinst {
    char *id, *address;
    char **eps;
    size_t neps;
};

struct xstate {
    const char *p;
    size_t len, off;
    char *incarnation;
    struct xinst *inst;
    size_t ninst;
};

static bool xml_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':' || (unsigned char)c >= 0x80;
}

static const char *local_name(const char *n)
{
    const char *c = strrchr(n, ':');
    return c ? c + 1 : n;
}

static int decode_entities(const char *p, size_t len, struct cn_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '<') return CN_ERR_PARSE;
        if (p[i] != '&') {
            cn_buf_putc(out, p[i]);
            continue;
        }
        const char *semi = memchr(p + i, ';', len - i);
        if (semi == NULL) return CN_ERR_PARSE;
        size_t n = (size_t)(semi - (p + i + 1));
        const char *e = p + i + 1;
        if (n == 2 && memcmp(e, "lt", 2) == 0) {
            cn_buf_putc(out, '<');
        } else if (n == 2 && memcmp(e, "gt", 2) == 0) {
            cn_buf_putc(out, '>');
        } else if (n == 3 && memcmp(e, "amp", 3) == 0) {
            cn_buf_putc(out, '&');
        } else if (n == 4 && memcmp(e, "apos", 4) == 0) {
            cn_buf_putc(out, '\'');
        } else if (n == 4 && memcmp(e, "quot", 4) == 0) {
            cn_buf_putc(out, '"');
        } else if (n >= 2 && e[0] == '#') {
            char tmp[16];
            if (n > sizeof(tmp) - 1) return CN_ERR_PARSE;
            memcpy(tmp, e + 1, n - 1);
            tmp[n - 1] = '\0';
            char *end;
            long v = tmp[0] == 'x' ? strtol(tmp + 1, &end, 16) : strtol(tmp, &end, 10);
            if (*end || v <= 0 || v > 0x10ffff) return CN_ERR_PARSE;
            if (v < 0x80) {
                cn_buf_putc(out, (char)v);
            } else if (v < 0x800) {
                cn_buf_putc(out, (char)(0xc0 | (v >> 6)));
                cn_buf_putc(out, (char)(0x80 | (v & 0x3f)));
            } else if (v < 0x10000) {
                cn_buf_putc(out, (char)(0xe0 | (v >> 12)));
                cn_buf_putc(out, (char)(0x80 | ((v >> 6) & 0x3f)));
                cn_buf_putc(out, (char)(0x80 | (v & 0x3f)));
            } else {
                cn_buf_putc(out, (char)(0xf0 | (v >> 18)));
                cn_buf_putc(out, (char)(0x80 | ((v >> 12) & 0x3f)));
                cn_buf_putc(out, (char)(0x80 | ((v >> 6) & 0x3f)));
                cn_buf_putc(out, (char)(0x80 | (v & 0x3f)));
            }
        } else {
            return CN_ERR_PARSE;
        }
        i += n + 1;
    }
    return 0;
}

static bool skip_past(struct xstate *x, const char *end)
{
    size_t el = strlen(end);
    for (size_t i = x->off; i + el <= x->len; i++) {
        if (memcmp(x->p + i, end, el) == 0) {
            x->off = i + el;
            return true;
        }
    }
    return false;
}

/* Records the attributes the waagent datasource reads; path = element names from the root. */
static void on_attr(struct xstate *x, char **path, size_t depth, const char *name, char *value)
{
    const char *el = local_name(path[depth - 1]);
    const char *an = local_name(name);
    if (depth == 2 && strcmp(el, "Incarnation") == 0 && strcmp(an, "instance") == 0) {
        cn_free(x->incarnation);
        x->incarnation = value;
        return;
    }
    if (depth == 3 && strcmp(local_name(path[1]), "Instances") == 0 &&
        strcmp(el, "Instance") == 0 && x->ninst) {
        struct xinst *in = &x->inst[x->ninst - 1];
        if (strcmp(an, "id") == 0) {
            cn_free(in->id);
            in->id = value;
            return;
        }
        if (strcmp(an, "address") == 0) {
            cn_free(in->address);
            in->address = value;
            return;
        }
    }
    if (depth == 5 && strcmp(local_name(path[1]), "Instances") == 0 &&
        strcmp(local_name(path[2]), "Instance") == 0 &&
        strcmp(local_name(path[3]), "InputEndpoints") == 0 && strcmp(el, "Endpoint") == 0 &&
        strcmp(an, "loadBalancedPublicAddress") == 0 && x->ninst) {
        struct xinst *in = &x->inst[x->ninst - 1];
        cn_free(in->eps[in->neps - 1]);
        in->eps[in->neps - 1] = value;
        return;
    }
    cn_free(value);
}

static int xml_scan(struct xstate *x)
{
    char *path[XML_MAX_DEPTH];
    size_t depth = 0;
    bool seen_root = false;
    int rc = 0;
    while (rc == 0 && x->off < x->len) {
        const char *lt = memchr(x->p + x->off, '<', x->len - x->off);
        size_t text_end = lt ? (size_t)(lt - x->p) : x->len;
        struct cn_buf t = CN_BUF_INIT;
        rc = decode_entities(x->p + x->off, text_end - x->off, &t);
        bool blank = true;
        for (size_t i = 0; i < t.len; i++)
            if (!(t.p[i] == ' ' || t.p[i] == '\t' || t.p[i] == '\r' || t.p[i] == '\n'))
                blank = false;
        cn_buf_free(&t);
        if (rc != 0) break;
        if (!blank && depth == 0) rc = CN_ERR_PARSE;
        x->off = text_end;
        if (lt == NULL || rc != 0) break;
        const char *s = x->p + x->off;
        size_t left = x->len - x->off;
        if (left >= 4 && memcmp(s, "<!--", 4) == 0) {
            x->off += 4;
            if (!skip_past(x, "-->")) rc = CN_ERR_PARSE;
        } else if (left >= 9 && memcmp(s, "<![CDATA[", 9) == 0) {
            x->off += 9;
            if (depth == 0 || !skip_past(x, "]]>")) rc = CN_ERR_PARSE;
        } else if (left >= 2 && (s[1] == '?' || s[1] == '!')) {
            x->off += 2;
            if (!skip_past(x, s[1] == '?' ? "?>" : ">")) rc = CN_ERR_PARSE;
        } else if (left >= 2 && s[1] == '/') {
            size_t i = 2;
            while (i < left && xml_name_char(s[i]))
                i++;
            size_t nlen = i - 2;
            while (i < left && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
                i++;
            if (i >= left || s[i] != '>' || depth == 0 || strlen(path[depth - 1]) != nlen ||
                memcmp(path[depth - 1], s + 2, nlen) != 0) {
                rc = CN_ERR_PARSE;
                break;
            }
            cn_free(path[--depth]);
            x->off += i + 1;
        } else {
            size_t i = 1;
            while (i < left && xml_name_char(s[i]))
                i++;
            if (i == 1 || depth == XML_MAX_DEPTH || (depth == 0 && seen_root)) {
                rc = CN_ERR_PARSE;
                break;
            }
            path[depth++] = cn_xstrndup(s + 1, i - 1);
            seen_root = true;
            const char *el = local_name(path[depth - 1]);
            if (depth == 3 && strcmp(el, "Instance") == 0 &&
                strcmp(local_name(path[1]), "Instances") == 0) {
                x->inst = cn_xrealloc(x->inst, (x->ninst + 1) * sizeof(*x->inst));
                memset(&x->inst[x->ninst++], 0, sizeof(*x->inst));
            }
            if (depth == 5 && strcmp(el, "Endpoint") == 0 && x->ninst &&
                strcmp(local_name(path[3]), "InputEndpoints") == 0 &&
                strcmp(local_name(path[2]), "Instance") == 0 &&
                strcmp(local_name(path[1]), "Instances") == 0) {
                struct xinst *in = &x->inst[x->ninst - 1];
                in->eps = cn_xrealloc(in->eps, (in->neps + 1) * sizeof(char *));
                in->eps[in->neps++] = cn_xstrdup("");
            }
            /* attributes */
            for (;;) {
                while (i < left && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
                    i++;
                if (i >= left) {
                    rc = CN_ERR_PARSE;
                    break;
                }
                if (s[i] == '>') {
                    i++;
                    break;
                }
                if (s[i] == '/' && i + 1 < left && s[i + 1] == '>') {
                    i += 2;
                    cn_free(path[--depth]);
                    break;
                }
                size_t ns = i;
                while (i < left && xml_name_char(s[i]))
                    i++;
                if (i == ns || i >= left || s[i] != '=') {
                    rc = CN_ERR_PARSE;
                    break;
                }
                char *an = cn_xstrndup(s + ns, i - ns);
                i++;
                if (i >= left || (s[i] != '"' && s[i] != '\'')) {
                    cn_free(an);
                    rc = CN_ERR_PARSE;
                    break;
                }
                const char *q = memchr(s + i + 1, s[i], left - i - 1);
                if (q == NULL) {
                    cn_free(an);
                    rc = CN_ERR_PARSE;
                    break;
                }
                struct cn_buf v = CN_BUF_INIT;
                rc = decode_entities(s + i + 1, (size_t)(q - (s + i + 1)), &v);
                if (rc == 0) on_attr(x, path, depth, an, cn_buf_steal(&v, NULL));
                cn_buf_free(&v);
                cn_free(an);
                i = (size_t)(q - s) + 1;
                if (rc != 0) break;
                if (i < left && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' ||
                                  s[i] == '>' || s[i] == '/')) {
                    rc = CN_ERR_PARSE;
                    break;
                }
            }
            x->off += i;
        }
    }
    if (rc == 0 && (depth != 0 || !seen_root)) rc = CN_ERR_PARSE; /* unexpected EOF */
    while (depth)
        cn_free(path[--depth]);
    return rc;
}

/* Go's net.ParseIP + IP.String(): NULL if not an address. */
static char *parse_ip(const char *s)
{
    unsigned char a[16];
    char out[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, s, a) == 1) return cn_xstrdup(inet_ntop(AF_INET, a, out, sizeof(out)));
    if (inet_pton(AF_INET6, s, a) == 1) {
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0)
            return cn_xstrdup(inet_ntop(AF_INET, a + 12, out, sizeof(out)));
        return cn_xstrdup(inet_ntop(AF_INET6, a, out, sizeof(out)));
    }
    return NULL;
}

/* Go's net.SplitHostPort: the host, or NULL. */
static char *split_host(const char *hp)
{
    const char *colon = strrchr(hp, ':');
    if (colon == NULL) return NULL;
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (rb == NULL || rb + 1 != colon) return NULL;
        return cn_xstrndup(hp + 1, (size_t)(rb - hp - 1));
    }
    if (memchr(hp, ':', (size_t)(colon - hp)) != NULL) return NULL; /* too many colons */
    if (strchr(hp, '[') || strchr(hp, ']')) return NULL;
    return cn_xstrndup(hp, (size_t)(colon - hp));
}

int cn_cloudinit_waagent_parse(const char *p, size_t len, struct ci_metadata *md)
{
    struct xstate x = {p, len, 0, NULL, NULL, 0};
    int rc = xml_scan(&x);
    if (rc == 0) {
        const char *inc = x.incarnation ? x.incarnation : "";
        for (size_t i = 0; i < x.ninst; i++) {
            struct xinst *in = &x.inst[i];
            if (strcmp(in->id ? in->id : "", inc) != 0) continue;
            if (in->address) md->private_ipv4 = parse_ip(in->address);
            for (size_t k = 0; k < in->neps; k++) {
                char *host = split_host(in->eps[k]);
                if (host == NULL) continue;
                md->public_ipv4 = parse_ip(host);
                cn_free(host);
                break;
            }
            break;
        }
    }
    for (size_t i = 0; i < x.ninst; i++) {
        cn_free(x.inst[i].id);
        cn_free(x.inst[i].address);
        for (size_t k = 0; k < x.inst[i].neps; k++)
            cn_free(x.inst[i].eps[k]);
        cn_free(x.inst[i].eps);
    }
    cn_free(x.inst);
    cn_free(x.incarnation);
    return rc;
}

void cn_cloudinit_metadata_free(struct ci_metadata *md)
{
    cn_free(md->public_ipv4);
    cn_free(md->private_ipv4);
    md->public_ipv4 = md->private_ipv4 = NULL;
}

int cn_cloudinit_ds_waagent(const char *dir, struct cn_buf *userdata, struct ci_metadata *md)
{
    struct cn_buf path = CN_BUF_INIT, xml = CN_BUF_INIT;
    struct stat st;
    int rc = 0;
    cn_buf_appendf(&path, "%s/provisioned", dir);
    if (stat(path.p, &st) != 0 && errno == ENOENT) {
        rc = CN_ERR_NOT_FOUND;
        goto out;
    }
    cn_buf_reset(&path);
    cn_buf_appendf(&path, "%s/SharedConfig.xml", dir);
    rc = cn_cloudinit_read_host_file(path.p, CI_MAX_READ, &xml);
    if (rc == CN_ERR_NOT_FOUND) rc = 0;
    if (rc == 0 && xml.len > 0) {
        rc = cn_cloudinit_waagent_parse(xml.p, xml.len, md);
        if (rc != 0) {
            CN_LOGE("cloudinit", "parsing SharedConfig.xml failed path=%s", path.p);
            goto out;
        }
    } else if (rc != 0) {
        goto out;
    }
    cn_buf_reset(&path);
    cn_buf_appendf(&path, "%s/CustomData", dir);
    rc = cn_cloudinit_read_host_file(path.p, CI_MAX_USERDATA, userdata);
    if (rc == CN_ERR_NOT_FOUND) rc = 0;
out:
    cn_buf_free(&path);
    cn_buf_free(&xml);
    return rc;
}
