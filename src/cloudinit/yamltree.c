/* yamltree: turns libyaml's first document into a tree of ci_node with the implicit ("weak")
 * types of the YAML library coreos-cloudinit used (spec 5.4), normalised key names (5.1) and the
 * validator's line numbers, found by its text search (6.7). No YAML is parsed by hand here. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <yaml.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"

struct build {
    yaml_document_t *doc;
    size_t budget;
    bool too_big;
};

static bool is_one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

/* Go's strconv.ParseInt(s, 0, 64) of its era: sign, then 0x hex, 0 octal or decimal. */
static bool parse_int(const char *s, int base0, long long *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    int base = base0;
    if (base == 0) {
        base = 10;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
            base = 16;
            p += 2;
        } else if (p[0] == '0' && p[1] != '\0') {
            base = 8;
            p++;
        }
    }
    if (*p == '\0') return false;
    unsigned long long v = 0;
    for (; *p; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'z')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'Z')
            d = *p - 'A' + 10;
        else
            return false;
        if (d >= base) return false;
        if (v > (ULLONG_MAX - (unsigned)d) / (unsigned)base) return false;
        v = v * (unsigned)base + (unsigned)d;
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
        return false;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

/* Go's strconv.ParseFloat: decimal syntax, or inf/infinity/nan with an optional sign. */
static bool parse_float(const char *s, double *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (strcasecmp(p, "inf") == 0 || strcasecmp(p, "infinity") == 0 || strcasecmp(p, "nan") == 0) {
        *out = strtod(s, NULL);
        return true;
    }
    bool digits = false;
    while (*p >= '0' && *p <= '9')
        p++, digits = true;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, digits = true;
    }
    if (!digits) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p != '\0') return false;
    errno = 0;
    double d = strtod(s, NULL);
    if (errno == ERANGE && isinf(d)) return false; /* Go: out of range is an error */
    *out = d;
    return true;
}

static void resolve_plain(struct ci_node *n)
{
    static const char *const trues[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                        "True", "TRUE", "on",  "On",  "ON",  NULL};
    static const char *const falses[] = {"n",     "N",     "no",  "No",  "NO",  "false",
                                         "False", "FALSE", "off", "Off", "OFF", NULL};
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = n->text;
    if (strlen(s) != n->text_len) return; /* holds a NUL: a string */
    if (is_one_of(s, nulls)) {
        n->kind = CI_NULL;
    } else if (is_one_of(s, trues) || is_one_of(s, falses)) {
        n->kind = CI_BOOL;
        n->bval = is_one_of(s, trues);
    } else if (is_one_of(s, infs) || is_one_of(s, ninfs) || is_one_of(s, nans)) {
        n->kind = CI_FLOAT;
        n->fval = is_one_of(s, nans) ? NAN : is_one_of(s, infs) ? INFINITY : -INFINITY;
    } else if (s[0] == '.') {
        if (parse_float(s, &n->fval)) n->kind = CI_FLOAT;
    } else if ((s[0] >= '0' && s[0] <= '9') || s[0] == '+' || s[0] == '-') {
        char *plain = cn_xmalloc(n->text_len + 1);
        size_t w = 0;
        for (size_t i = 0; i < n->text_len; i++)
            if (s[i] != '_') plain[w++] = s[i];
        plain[w] = '\0';
        long long iv;
        if (parse_int(plain, 0, &iv)) {
            n->kind = CI_INT;
            n->ival = iv;
        } else if (parse_float(plain, &n->fval)) {
            n->kind = CI_FLOAT;
        } else if (strncmp(plain, "0b", 2) == 0 && parse_int(plain + 2, 2, &iv) &&
                   plain[2] != '+' && plain[2] != '-') {
            n->kind = CI_INT;
            n->ival = iv;
        } else if (strncmp(plain, "-0b", 3) == 0 && parse_int(plain + 3, 2, &iv) &&
                   plain[3] != '+' && plain[3] != '-') {
            n->kind = CI_INT;
            n->ival = -iv;
        }
        cn_free(plain);
    }
}

static char *normalise(const char *s, size_t len)
{
    char *o = cn_xstrndup(s, len);
    for (size_t i = 0; i < len; i++)
        if (o[i] == '-') o[i] = '_';
    return o;
}

static void add_kid(struct ci_node *p, struct ci_node *k)
{
    p->kids = cn_xrealloc(p->kids, (p->nkids + 1) * sizeof(*p->kids));
    p->kids[p->nkids++] = k;
}

static struct ci_node *build(struct build *b, yaml_node_t *yn, unsigned depth, int *err)
{
    if (yn == NULL) return NULL;
    if (b->budget == 0 || depth > CI_MAX_YAML_DEPTH) {
        b->too_big = true;
        return NULL;
    }
    b->budget--;
    struct ci_node *n = CN_NEW(struct ci_node);
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)yn->data.scalar.value;
        size_t len = yn->data.scalar.length;
        const char *tag = (const char *)yn->tag;
        n->kind = CI_STR;
        if (tag && strcmp(tag, "tag:yaml.org,2002:binary") == 0) {
            struct cn_buf d = CN_BUF_INIT;
            if (cn_cloudinit_base64_decode(v, len, &d) != 0) *err = 1;
            n->text = cn_buf_steal(&d, &n->text_len);
        } else {
            n->text = cn_xstrndup(v, len);
            n->text_len = len;
            if (yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) resolve_plain(n);
        }
        break;
    }
    case YAML_SEQUENCE_NODE:
        n->kind = CI_SEQ;
        for (yaml_node_item_t *it = yn->data.sequence.items.start;
             it < yn->data.sequence.items.top && !b->too_big; it++) {
            struct ci_node *k = build(b, yaml_document_get_node(b->doc, *it), depth + 1, err);
            if (k == NULL) {
                k = CN_NEW(struct ci_node);
                k->kind = CI_NULL;
                k->text = cn_xstrdup("");
            }
            add_kid(n, k);
        }
        break;
    case YAML_MAPPING_NODE:
        n->kind = CI_MAP;
        for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start;
             pr < yn->data.mapping.pairs.top && !b->too_big; pr++) {
            yaml_node_t *kn = yaml_document_get_node(b->doc, pr->key);
            const char *ks = "";
            size_t klen = 0;
            if (kn && kn->type == YAML_SCALAR_NODE) {
                ks = (const char *)kn->data.scalar.value;
                klen = kn->data.scalar.length;
            }
            b->budget = b->budget ? b->budget - 1 : 0;
            struct ci_node *v = build(b, yaml_document_get_node(b->doc, pr->value), depth + 1, err);
            if (v == NULL) {
                v = CN_NEW(struct ci_node);
                v->kind = CI_NULL;
                v->text = cn_xstrdup("");
            }
            v->key = cn_xstrndup(ks, klen);
            v->name = normalise(ks, klen);
            /* Duplicate keys: the last value wins, in the first one's place (a Go map). */
            bool replaced = false;
            for (size_t i = 0; i < n->nkids; i++) {
                if (strcmp(n->kids[i]->key, v->key) == 0) {
                    cn_cloudinit_node_free(n->kids[i]);
                    n->kids[i] = v;
                    replaced = true;
                    break;
                }
            }
            if (!replaced) add_kid(n, v);
        }
        break;
    default:
        n->kind = CI_NULL;
        break;
    }
    if (n->text == NULL) n->text = cn_xstrdup("");
    return n;
}

/* Spec 6.7: lines[i] is line i+1 of the text with \r removed. */
struct lines {
    char **l;
    size_t n;
};

static bool key_line_matches(const char *line, const char *key)
{
    const char *p = line;
    while (*p == ' ')
        p++;
    if (*p == '-') p++;
    if (*p == ' ') p++;
    const char *c = strchr(p, ':');
    if (c == NULL) return false;
    return strlen(key) == (size_t)(c - p) && memcmp(p, key, (size_t)(c - p)) == 0;
}

static bool elem_line_matches(const char *line)
{
    while (*line == ' ')
        line++;
    return *line == '-';
}

/* cursor: 0-based index into lines; n = end of input. */
static void assign_lines(struct ci_node *n, const struct lines *ls, size_t cursor)
{
    if (n->kind == CI_MAP) {
        for (size_t i = 0; i < n->nkids; i++) {
            struct ci_node *k = n->kids[i];
            size_t c = cursor;
            while (c < ls->n && !key_line_matches(ls->l[c], k->key))
                c++;
            k->line = c < ls->n ? (int)(c + 1) : 0;
            assign_lines(k, ls, c);
        }
    } else if (n->kind == CI_SEQ) {
        size_t c = cursor;
        for (size_t i = 0; i < n->nkids; i++) {
            struct ci_node *k = n->kids[i];
            while (c < ls->n && !elem_line_matches(ls->l[c]))
                c++;
            k->line = c < ls->n ? (int)(c + 1) : 0;
            assign_lines(k, ls, c);
            if (c < ls->n) c++;
        }
    }
}

static void assign_names(struct ci_node *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        struct ci_node *k = n->kids[i];
        if (n->kind == CI_SEQ) {
            struct cn_buf b = CN_BUF_INIT;
            cn_buf_appendf(&b, "%s[%zu]", n->name ? n->name : "", i);
            k->name = cn_buf_steal(&b, NULL);
        }
        assign_names(k);
    }
}

int cn_cloudinit_yaml_parse(const char *p, size_t len, struct ci_node **out,
                            struct ci_yaml_error *err)
{
    *out = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) abort(); /* only fails on OOM */
    yaml_parser_set_input_string(&parser, (const unsigned char *)p, len);
    if (!yaml_parser_load(&parser, &doc)) {
        /* Spec 6.3: 0-based marks, first non-zero one wins, else line 1. */
        size_t line = parser.problem_mark.line   ? parser.problem_mark.line
                      : parser.context_mark.line ? parser.context_mark.line
                                                 : 1;
        err->line = line > INT32_MAX ? INT32_MAX : (int)line;
        snprintf(err->msg, sizeof(err->msg), "%s",
                 parser.problem ? parser.problem : "unknown YAML error");
        yaml_parser_delete(&parser);
        return CN_ERR_PARSE;
    }
    struct build b = {&doc, CI_MAX_YAML_NODES, false};
    int binerr = 0;
    struct ci_node *root = build(&b, yaml_document_get_root_node(&doc), 0, &binerr);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (b.too_big || binerr) {
        cn_cloudinit_node_free(root);
        err->line = 1;
        snprintf(err->msg, sizeof(err->msg), "%s",
                 binerr ? "!!binary value contains invalid base64 data"
                        : "document too large or too deeply nested");
        return CN_ERR_PARSE;
    }
    if (root == NULL || root->kind != CI_MAP) {
        cn_cloudinit_node_free(root);
        return 0;
    }
    root->name = cn_xstrdup("");
    assign_names(root);
    struct lines ls = {NULL, 0};
    char *text = cn_xmalloc(len + 1);
    size_t w = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] != '\r') text[w++] = p[i];
    text[w] = '\0';
    for (size_t i = 0, start = 0; i <= w; i++) {
        if (i == w || text[i] == '\n') {
            text[i] = '\0';
            if ((ls.n & (ls.n - 1)) == 0)
                ls.l = cn_xrealloc(ls.l, (ls.n ? ls.n * 2 : 1) * sizeof(char *));
            ls.l[ls.n++] = text + start;
            start = i + 1;
        }
    }
    assign_lines(root, &ls, 0);
    cn_free(ls.l);
    cn_free(text);
    *out = root;
    return 0;
}

void cn_cloudinit_node_free(struct ci_node *n)
{
    if (n == NULL) return;
    for (size_t i = 0; i < n->nkids; i++)
        cn_cloudinit_node_free(n->kids[i]);
    cn_free(n->kids);
    cn_free(n->text);
    cn_free(n->key);
    cn_free(n->name);
    cn_free(n);
}

const struct ci_node *cn_cloudinit_node_child(const struct ci_node *n, const char *name)
{
    if (n == NULL) return NULL;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->name && strcmp(n->kids[i]->name, name) == 0) return n->kids[i];
    return NULL;
}

bool cn_cloudinit_node_is_scalar(const struct ci_node *n)
{
    return n->kind == CI_STR || n->kind == CI_INT || n->kind == CI_FLOAT || n->kind == CI_BOOL;
}
