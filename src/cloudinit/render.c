/* render: the text of every generated file: service drop-ins (8.10), update.conf (8.6),
 * oem-release (8.5), flannel options (8.8) and the /etc/environment merge (8.9). Pure functions
 * from configuration to bytes; writing them is apply.c's job. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"

/* Go's %v for float64: the shortest digits that read back to f; strconv's 'g' with shortest
 * precision uses the exponent form when exp < -4 || exp >= 6. */
void cn_cloudinit_format_float(double f, struct cn_buf *out)
{
    if (isnan(f)) {
        cn_buf_appends(out, "NaN");
        return;
    }
    if (isinf(f)) {
        cn_buf_appends(out, f > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (f == 0) {
        cn_buf_appends(out, signbit(f) ? "-0" : "0");
        return;
    }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d[.ddd]e[+-]xx */
    char digits[32];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (neg) cn_buf_putc(out, '-');
    if (exp < -4 || exp >= 6) {
        cn_buf_putc(out, digits[0]);
        if (nd > 1) {
            cn_buf_putc(out, '.');
            cn_buf_append(out, digits + 1, nd - 1);
        }
        cn_buf_appendf(out, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        cn_buf_appends(out, "0.");
        for (int i = -1; i > exp; i--)
            cn_buf_putc(out, '0');
        cn_buf_append(out, digits, nd);
    } else {
        for (int i = 0; i <= exp; i++)
            cn_buf_putc(out, (size_t)i < nd ? digits[i] : '0');
        if (nd > (size_t)exp + 1) {
            cn_buf_putc(out, '.');
            cn_buf_append(out, digits + exp + 1, nd - (size_t)exp - 1);
        }
    }
}

void cn_cloudinit_render_dropin(const struct ci_obj *o, struct cn_buf *out)
{
    bool any = false;
    for (size_t i = 0; i < o->schema->nfields; i++) {
        const struct ci_field *f = &o->schema->fields[i];
        const struct ci_val *v = &o->v[i];
        bool zero = f->type == CI_T_STR     ? v->len == 0
                    : f->type == CI_T_BOOL  ? !v->b
                    : f->type == CI_T_INT   ? v->i == 0
                    : f->type == CI_T_FLOAT ? v->f == 0
                                            : true;
        if (zero || f->env == NULL) continue;
        if (!any) cn_buf_appends(out, "[Service]\n");
        any = true;
        cn_buf_appendf(out, "Environment=\"%s=", f->env);
        if (f->type == CI_T_STR)
            cn_buf_append(out, v->s, v->len);
        else if (f->type == CI_T_BOOL)
            cn_buf_appends(out, "true");
        else if (f->type == CI_T_INT)
            cn_buf_appendf(out, "%lld", v->i);
        else
            cn_cloudinit_format_float(v->f, out);
        cn_buf_appends(out, "\"\n");
    }
}

int cn_cloudinit_render_update_conf(const struct ci_obj *u, const char *base, size_t base_len,
                                    struct cn_buf *out)
{
    /* Sorted by name: the order unused settings are appended in. */
    static const struct {
        const char *name;
        int idx;
    } set[] = {{"GROUP", UP_GROUP}, {"REBOOT_STRATEGY", UP_REBOOT_STRATEGY}, {"SERVER", UP_SERVER}};
    bool used[3] = {false, false, false};
    for (size_t i = 0; i < 3; i++)
        used[i] = u->v[set[i].idx].len == 0;
    for (size_t off = 0; off < base_len;) {
        const char *nl = memchr(base + off, '\n', base_len - off);
        size_t end = nl ? (size_t)(nl - base) : base_len;
        size_t llen = end - off;
        if (llen > 0 && base[off + llen - 1] == '\r') llen--;
        bool replaced = false;
        for (size_t i = 0; i < 3 && !replaced; i++) {
            size_t nlen = strlen(set[i].name);
            if (used[i] || llen < nlen || memcmp(base + off, set[i].name, nlen) != 0) continue;
            const struct ci_val *v = &u->v[set[i].idx];
            cn_buf_appendf(out, "%s=", set[i].name);
            cn_buf_append(out, v->s, v->len);
            cn_buf_putc(out, '\n');
            used[i] = replaced = true;
        }
        if (!replaced) {
            cn_buf_append(out, base + off, llen);
            cn_buf_putc(out, '\n');
        }
        off = nl ? end + 1 : base_len;
    }
    for (size_t i = 0; i < 3; i++) {
        if (used[i]) continue;
        const struct ci_val *v = &u->v[set[i].idx];
        cn_buf_appendf(out, "%s=", set[i].name);
        cn_buf_append(out, v->s, v->len);
        cn_buf_putc(out, '\n');
    }
    return 0;
}

void cn_cloudinit_render_oem_release(const struct ci_obj *o, struct cn_buf *out)
{
    cn_buf_appends(out, "ID=");
    cn_buf_append(out, o->v[OEM_ID].s, o->v[OEM_ID].len);
    cn_buf_appends(out, "\nVERSION_ID=");
    cn_buf_append(out, o->v[OEM_VERSION_ID].s, o->v[OEM_VERSION_ID].len);
    cn_buf_appends(out, "\nNAME=");
    cn_cloudinit_quote(out, o->v[OEM_NAME].s, o->v[OEM_NAME].len);
    cn_buf_appends(out, "\nHOME_URL=");
    cn_cloudinit_quote(out, o->v[OEM_HOME_URL].s, o->v[OEM_HOME_URL].len);
    cn_buf_appends(out, "\nBUG_REPORT_URL=");
    cn_cloudinit_quote(out, o->v[OEM_BUG_REPORT_URL].s, o->v[OEM_BUG_REPORT_URL].len);
    cn_buf_putc(out, '\n');
}

void cn_cloudinit_render_flannel(const struct ci_obj *o, struct cn_buf *out)
{
    bool first = true;
    for (size_t i = 0; i < o->schema->nfields; i++) {
        const struct ci_val *v = &o->v[i];
        if (v->len == 0) continue;
        if (!first) cn_buf_putc(out, '\n');
        first = false;
        cn_buf_appendf(out, "%s=", o->schema->fields[i].env);
        cn_buf_append(out, v->s, v->len);
    }
}

bool cn_cloudinit_render_environment(const struct ci_subst *s, const char *old, size_t old_len,
                                     bool exists, struct cn_buf *out)
{
    /* Sorted by name. */
    struct {
        const char *name;
        const char *val;
        bool pending;
    } vars[] = {
        {"COREOS_PRIVATE_IPV4", s->private_ipv4, false},
        {"COREOS_PRIVATE_IPV6", s->private_ipv6, false},
        {"COREOS_PUBLIC_IPV4", s->public_ipv4, false},
        {"COREOS_PUBLIC_IPV6", s->public_ipv6, false},
    };
    for (size_t i = 0; i < 4; i++)
        vars[i].pending = vars[i].val && *vars[i].val;
    for (size_t off = 0; off < old_len;) {
        const char *nl = memchr(old + off, '\n', old_len - off);
        size_t end = nl ? (size_t)(nl - old) : old_len;
        size_t llen = end - off;
        if (llen > 0 && old[off + llen - 1] == '\r') llen--;
        const char *line = old + off;
        bool replaced = false;
        for (size_t i = 0; i < 4 && !replaced; i++) {
            size_t nlen = strlen(vars[i].name);
            if (!vars[i].pending || llen <= nlen || memcmp(line, vars[i].name, nlen) != 0 ||
                line[nlen] != '=')
                continue;
            cn_buf_appendf(out, "%s=%s\n", vars[i].name, vars[i].val);
            vars[i].pending = false;
            replaced = true;
        }
        if (!replaced) {
            cn_buf_append(out, line, llen);
            cn_buf_putc(out, '\n');
        }
        off = nl ? end + 1 : old_len;
    }
    for (size_t i = 0; i < 4; i++)
        if (vars[i].pending) cn_buf_appendf(out, "%s=%s\n", vars[i].name, vars[i].val);
    return !exists || out->len != old_len || (old_len && memcmp(out->p, old, old_len) != 0);
}
