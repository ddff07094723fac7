/* flags: command-line parsing the way etcdctl 3.4 gets it from Go's flag package and urfave/cli
 * v1: single or double dash, "-name=value" or "-name value", bool flags never take the next
 * argument, parsing stops at the first positional argument, and a command's own flags are first
 * moved in front of its positional arguments (urfave's reorderArgs). Messages are Go's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/parse.h"

/* Does names ("recursive, r") contain name[0..len)? */
static bool names_has(const char *names, const char *name, size_t len)
{
    const char *p = names;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == len && len > 0 && memcmp(p, name, len) == 0) return true;
        p = e;
    }
    return false;
}

int cn_cli_flag_find(const struct cn_cli_flag *flags, size_t nflags, const char *name)
{
    for (size_t i = 0; i < nflags; i++) {
        if (names_has(flags[i].names, name, strlen(name))) return (int)i;
    }
    return -1;
}

int cn_cli_parse_bool(const char *z, bool *v)
{
    return cn_parse_bool(cn_str_c(z), v) ? 0 : -1;
}

int cn_cli_parse_int(const char *z, int64_t *v)
{
    if (*z == '\0' || *z == ' ' || *z == '\t' || *z == '\n') return -1;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(z, &end, 0);
    if (end == z || *end != '\0') return -1;
    if (errno == ERANGE) return -2;
    *v = (int64_t)x;
    return 0;
}

int cn_cli_parse_duration(const char *z, int64_t *ns)
{
    static const struct {
        const char *name;
        double mult;
    } units[] = {{"ns", 1.0}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
                 {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},        {"h", 3600e9}};
    const char *p = z;
    bool neg = false;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (*p == '\0') return -1;
    double total = 0;
    while (*p) {
        const char *start = p;
        double v = 0;
        while (*p >= '0' && *p <= '9')
            v = v * 10 + (*p++ - '0');
        bool digits = p > start;
        if (*p == '.') {
            p++;
            double scale = 0.1;
            const char *fs = p;
            while (*p >= '0' && *p <= '9') {
                v += (*p++ - '0') * scale;
                scale /= 10;
            }
            digits = digits || p > fs;
        }
        if (!digits) return -1;
        const char *us = p;
        while (*p && !(*p >= '0' && *p <= '9') && *p != '.')
            p++;
        size_t ulen = (size_t)(p - us);
        if (ulen == 0) return -1;
        bool found = false;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, us, ulen) == 0) {
                total += v * units[i].mult;
                found = true;
                break;
            }
        }
        if (!found) return -1;
    }
    if (total > 9.2e18) return -1;
    *ns = (int64_t)(neg ? -total : total);
    return 0;
}

static void set_default(const struct cn_cli_flag *f, struct cn_cli_flagval *v)
{
    memset(v, 0, sizeof(*v));
    v->s = "";
    if (!f->defval) return;
    switch (f->type) {
    case CN_CLI_BOOL:
        (void)cn_cli_parse_bool(f->defval, &v->b); /* defaults are ours, always valid */
        break;
    case CN_CLI_INT:
        (void)cn_cli_parse_int(f->defval, &v->i);
        break;
    case CN_CLI_DURATION:
        (void)cn_cli_parse_duration(f->defval, &v->i);
        break;
    case CN_CLI_STRING:
        v->s = f->defval;
        break;
    }
}

int cn_cli_flags_parse(const struct cn_cli_flag *flags, size_t nflags, struct cn_cli_flagval *vals,
                       int argc, char **argv, int *rest, struct cn_buf *err)
{
    bool help = false;
    for (size_t i = 0; i < nflags; i++)
        set_default(&flags[i], &vals[i]);
    int i = 0;
    while (i < argc) {
        const char *s = argv[i];
        size_t slen = strlen(s);
        if (slen < 2 || s[0] != '-') break;
        size_t minus = 1;
        if (s[1] == '-') {
            minus = 2;
            if (slen == 2) {
                i++;
                break;
            }
        }
        const char *name = s + minus;
        if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
            cn_buf_appendf(err, "bad flag syntax: %s", s);
            *rest = i;
            return CN_CLI_PARSE_ERR;
        }
        i++;
        const char *eq = strchr(name + 1, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        int fi = -1;
        for (size_t k = 0; k < nflags; k++) {
            if (names_has(flags[k].names, name, nlen)) {
                fi = (int)k;
                break;
            }
        }
        if (fi < 0) {
            if ((nlen == 4 && memcmp(name, "help", 4) == 0) || (nlen == 1 && name[0] == 'h')) {
                /* urfave's help flag is a bool like any other */
                if (value) {
                    bool b;
                    if (cn_cli_parse_bool(value, &b) != 0) {
                        cn_buf_appendf(err, "invalid boolean value ");
                        cn_cli_go_quote(err, value, strlen(value));
                        cn_buf_appendf(err, " for -%.*s: parse error", (int)nlen, name);
                        *rest = i;
                        return CN_CLI_PARSE_ERR;
                    }
                    help = help || b;
                } else {
                    help = true;
                }
                continue;
            }
            cn_buf_appendf(err, "flag provided but not defined: -%.*s", (int)nlen, name);
            *rest = i;
            return CN_CLI_PARSE_ERR;
        }
        const struct cn_cli_flag *f = &flags[fi];
        struct cn_cli_flagval *v = &vals[fi];
        if (f->type == CN_CLI_BOOL) {
            bool b = true;
            if (value && cn_cli_parse_bool(value, &b) != 0) {
                cn_buf_appendf(err, "invalid boolean value ");
                cn_cli_go_quote(err, value, strlen(value));
                cn_buf_appendf(err, " for -%.*s: parse error", (int)nlen, name);
                *rest = i;
                return CN_CLI_PARSE_ERR;
            }
            v->b = b;
            v->set = true;
            continue;
        }
        if (!value) {
            if (i >= argc) {
                cn_buf_appendf(err, "flag needs an argument: -%.*s", (int)nlen, name);
                *rest = i;
                return CN_CLI_PARSE_ERR;
            }
            value = argv[i++];
        }
        int rc = 0;
        if (f->type == CN_CLI_INT) {
            rc = cn_cli_parse_int(value, &v->i);
        } else if (f->type == CN_CLI_DURATION) {
            rc = cn_cli_parse_duration(value, &v->i);
        } else {
            v->s = value;
        }
        if (rc != 0) {
            cn_buf_appendf(err, "invalid value ");
            cn_cli_go_quote(err, value, strlen(value));
            cn_buf_appendf(err, " for flag -%.*s: %s", (int)nlen, name,
                           rc == -2 ? "value out of range" : "parse error");
            *rest = i;
            return CN_CLI_PARSE_ERR;
        }
        v->set = true;
    }
    *rest = i;
    return help ? CN_CLI_PARSE_HELP : CN_CLI_PARSE_OK;
}

/* urfave's argIsFlag: the command's flags plus its help flag. */
static bool arg_is_flag(const struct cn_cli_flag *flags, size_t nflags, const char *arg)
{
    if (strcmp(arg, "-") == 0 || strcmp(arg, "--") == 0 || arg[0] != '-') return false;
    const char *p = arg;
    if (p[1] == '-') p += 2;
    if (*p == '-') p++;
    size_t len = strcspn(p, "=");
    if ((len == 4 && memcmp(p, "help", 4) == 0) || (len == 1 && p[0] == 'h')) return true;
    for (size_t i = 0; i < nflags; i++) {
        if (names_has(flags[i].names, p, len)) return true;
    }
    return false;
}

void cn_cli_reorder_args(const struct cn_cli_flag *flags, size_t nflags, int argc, char **argv,
                         char **out)
{
    int nre = 0, nrem = 0;
    char **rem = cn_xcalloc((size_t)argc + 1, sizeof(char *));
    bool next_may_be_value = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        bool is_flag = arg_is_flag(flags, nflags, arg);
        if (next_may_be_value && !is_flag) {
            /* a value for the flag before it, even "--" or "-x" */
            next_may_be_value = false;
            out[nre++] = argv[i];
        } else if (strcmp(arg, "--") == 0) {
            /* the delimiter goes in front of the positional arguments, the rest stays */
            memmove(rem + 1, rem, (size_t)nrem * sizeof(char *));
            rem[0] = argv[i];
            nrem++;
            for (int k = i + 1; k < argc; k++)
                rem[nrem++] = argv[k];
            break;
        } else if (is_flag) {
            out[nre++] = argv[i];
            next_may_be_value = strchr(arg, '=') == NULL;
        } else {
            rem[nrem++] = argv[i];
        }
    }
    for (int k = 0; k < nrem; k++)
        out[nre + k] = rem[k];
    cn_free(rem);
}

void cn_cli_flags_help(struct cn_buf *out, const struct cn_cli_flag *flags, size_t nflags)
{
    size_t w = 0;
    for (size_t i = 0; i < nflags; i++) {
        size_t l = strlen(flags[i].disp);
        if (l > w) w = l;
    }
    for (size_t i = 0; i < nflags; i++) {
        cn_buf_appendf(out, "   %-*s  %s\n", (int)w, flags[i].disp, flags[i].usage);
    }
}
