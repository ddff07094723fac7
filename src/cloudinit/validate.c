/* validate: the --validate report (spec 6): the six rules of coreos-cloudinit's validator run
 * over the weak tree, in rule order and, within a rule, in document order. */
#include <stdio.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"

static void add(struct ci_report *r, int line, enum ci_entry_kind kind, struct cn_buf *msg)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->e = cn_xrealloc(r->e, r->cap * sizeof(*r->e));
    }
    r->e[r->n].line = line;
    r->e[r->n].kind = kind;
    r->e[r->n].msg = cn_buf_steal(msg, NULL);
    r->n++;
}

static void addz(struct ci_report *r, int line, enum ci_entry_kind kind, const char *msg)
{
    struct cn_buf b = CN_BUF_INIT;
    cn_buf_appends(&b, msg);
    add(r, line, kind, &b);
}

/* reflect.Value.String() of the node's (coerced) value, as the Go rules saw it. */
static struct cn_str go_string(const struct ci_node *n)
{
    if (n == NULL || n->kind == CI_NULL) return CN_STR("<invalid Value>");
    if (n->kind == CI_MAP) return CN_STR("<map[interface {}]interface {} Value>");
    if (n->kind == CI_SEQ) return CN_STR("<[]interface {} Value>");
    return cn_str_make(n->text, n->text_len);
}

static bool present(const struct ci_node *n)
{
    return n != NULL && n->kind != CI_NULL;
}

/* ---- rule 1: url.ParseRequestURI ---- */

static bool ishex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool escapes_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '%') continue;
        if (i + 2 >= len) return false;
        if (!ishex(p[i + 1]) || !ishex(p[i + 2])) return false;
        i += 2;
    }
    return true;
}

static bool authority_ok(const char *p, size_t len)
{
    const char *at = NULL;
    for (size_t i = len; i > 0; i--) {
        if (p[i - 1] == '@') {
            at = p + i - 1;
            break;
        }
    }
    if (at) {
        if (!escapes_ok(p, (size_t)(at - p))) return false;
        len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    size_t hostend = len;
    if (len > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', len);
        if (rb == NULL) return false;
        hostend = (size_t)(rb - p) + 1;
        if (hostend < len && p[hostend] != ':') return false;
    } else {
        const char *colon = memchr(p, ':', len);
        if (colon) hostend = (size_t)(colon - p);
    }
    if (hostend < len) {
        for (size_t i = hostend + 1; i < len; i++)
            if (p[i] < '0' || p[i] > '9') return false;
    }
    return escapes_ok(p, hostend);
}

bool cn_cloudinit_request_uri_valid(const char *p, size_t len)
{
    if (len == 0) return false;
    if (len == 1 && p[0] == '*') return true;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) return false;
    /* Scheme: a letter, then letters, digits, + - . up to ':'. */
    size_t rest = 0;
    bool scheme = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alpha) continue;
        if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
            if (i == 0) break;
            continue;
        }
        if (c == ':') {
            if (i == 0) return false; /* missing protocol scheme */
            scheme = true;
            rest = i + 1;
        }
        break;
    }
    const char *r = p + rest;
    size_t rlen = len - rest;
    const char *q = memchr(r, '?', rlen);
    if (q) rlen = (size_t)(q - r);
    if (rlen == 0 || r[0] != '/') return scheme; /* opaque with a scheme; else not a request */
    if (scheme && rlen >= 2 && r[1] == '/') {
        const char *slash = memchr(r + 2, '/', rlen - 2);
        size_t alen = slash ? (size_t)(slash - (r + 2)) : rlen - 2;
        if (!authority_ok(r + 2, alen)) return false;
        r += 2 + alen;
        rlen -= 2 + alen;
    }
    return escapes_ok(r, rlen);
}

static void rule_discovery(const struct ci_node *root, struct ci_report *r)
{
    const struct ci_node *c = cn_cloudinit_node_child(
        cn_cloudinit_node_child(cn_cloudinit_node_child(root, "coreos"), "etcd"), "discovery");
    if (!present(c)) return;
    struct cn_str s = go_string(c);
    if (!cn_cloudinit_request_uri_valid(s.p, s.len))
        addz(r, c->line, CI_E_WARNING, "discovery URL is not valid");
}

static void rule_encoding(const struct ci_node *root, struct ci_report *r)
{
    const struct ci_node *wf = cn_cloudinit_node_child(root, "write_files");
    for (size_t i = 0; wf && i < wf->nkids; i++) {
        const struct ci_node *e = cn_cloudinit_node_child(wf->kids[i], "encoding");
        if (!present(e)) continue;
        const struct ci_node *c = cn_cloudinit_node_child(wf->kids[i], "content");
        struct cn_str cs = go_string(c), es = go_string(e);
        struct cn_buf out = CN_BUF_INIT;
        int rc = cn_cloudinit_decode_content(cs.p, cs.len, es.p, es.len, &out);
        cn_buf_free(&out);
        if (rc == 0) continue;
        struct cn_buf m = CN_BUF_INIT;
        cn_buf_appends(&m, "content cannot be decoded as ");
        cn_cloudinit_quote(&m, es.p, es.len);
        add(r, c ? c->line : 0, CI_E_ERROR, &m);
    }
}

static bool compatible(enum ci_kind k, enum ci_type t)
{
    switch (t) {
    case CI_T_STR:
        return k == CI_STR || k == CI_INT || k == CI_FLOAT || k == CI_BOOL;
    case CI_T_STRUCT:
        return k == CI_MAP;
    case CI_T_FLOAT:
        return k == CI_FLOAT || k == CI_INT;
    case CI_T_BOOL:
        return k == CI_BOOL;
    case CI_T_INT:
        return k == CI_INT;
    case CI_T_STRLIST:
    case CI_T_STRUCTLIST:
        return k == CI_SEQ;
    }
    return false;
}

static void check_structure(const struct ci_node *n, enum ci_type t, const struct ci_schema *sub,
                            struct ci_report *r)
{
    if (!compatible(n->kind, t)) {
        struct cn_buf m = CN_BUF_INIT;
        cn_buf_appends(&m, "incorrect type for ");
        cn_cloudinit_quote(&m, n->name, strlen(n->name));
        cn_buf_appendf(&m, " (want %s)", cn_cloudinit_type_name(t));
        add(r, n->line, CI_E_WARNING, &m);
        return;
    }
    if (t == CI_T_STRUCT) {
        for (size_t i = 0; i < n->nkids; i++) {
            const struct ci_node *k = n->kids[i];
            int idx = cn_cloudinit_schema_find(sub, k->name);
            struct cn_buf m = CN_BUF_INIT;
            if (idx < 0) {
                cn_buf_appends(&m, "unrecognized key ");
                cn_cloudinit_quote(&m, k->name, strlen(k->name));
                add(r, k->line, CI_E_WARNING, &m);
                continue;
            }
            const struct ci_field *f = &sub->fields[idx];
            if (f->deprecated) {
                cn_buf_appends(&m, "deprecated key ");
                cn_cloudinit_quote(&m, k->name, strlen(k->name));
                cn_buf_appendf(&m, " (%s)", f->deprecated);
                add(r, k->line, CI_E_WARNING, &m);
            }
            check_structure(k, f->type, f->sub, r);
        }
    } else if (t == CI_T_STRLIST || t == CI_T_STRUCTLIST) {
        for (size_t i = 0; i < n->nkids; i++)
            check_structure(n->kids[i], t == CI_T_STRLIST ? CI_T_STR : CI_T_STRUCT, sub, r);
    }
}

/* Rule 4 walks like Go's checkNodeValidity: it descends whatever the node's kind. */
static void check_validity(const struct ci_node *n, const struct ci_field *f, enum ci_type t,
                           const struct ci_schema *sub, struct ci_report *r)
{
    /* [R] 6.6: null (and, as Go crashed there too, non-scalar) values skip the rule. */
    if (f && f->rule && cn_cloudinit_node_is_scalar(n) && n->text_len > 0 &&
        !cn_cloudinit_rule_match(f->rule, n->text, n->text_len)) {
        struct cn_buf m = CN_BUF_INIT;
        cn_buf_appends(&m, "invalid value ");
        cn_buf_append(&m, n->text, n->text_len);
        add(r, n->line, CI_E_ERROR, &m);
    }
    if (t == CI_T_STRUCT) {
        for (size_t i = 0; i < n->nkids; i++) {
            int idx = cn_cloudinit_schema_find(sub, n->kids[i]->name);
            if (idx < 0) continue;
            const struct ci_field *cf = &sub->fields[idx];
            check_validity(n->kids[i], cf, cf->type, cf->sub, r);
        }
    } else if (t == CI_T_STRLIST || t == CI_T_STRUCTLIST) {
        for (size_t i = 0; i < n->nkids; i++)
            check_validity(n->kids[i], NULL, t == CI_T_STRLIST ? CI_T_STR : CI_T_STRUCT, sub, r);
    }
}

static void rule_write_files_path(const struct ci_node *root, struct ci_report *r)
{
    const struct ci_node *wf = cn_cloudinit_node_child(root, "write_files");
    for (size_t i = 0; wf && i < wf->nkids; i++) {
        const struct ci_node *c = cn_cloudinit_node_child(wf->kids[i], "path");
        if (!present(c)) continue;
        struct cn_str s = go_string(c);
        char *d = cn_cloudinit_path_dir(s.p, s.len);
        if (strncmp(d, "/usr", 4) == 0)
            addz(r, c->line, CI_E_ERROR, "file cannot be written to a read-only filesystem");
        cn_free(d);
    }
}

void cn_cloudinit_validate(const char *p, size_t len, struct ci_report *r)
{
    if (len == 0 || cn_cloudinit_is_script(p, len) || cn_cloudinit_is_ignition(p, len)) return;
    if (!cn_cloudinit_is_cloud_config(p, len)) {
        addz(r, 1, CI_E_ERROR, "must be \"#cloud-config\" or begin with \"#!\"");
        return;
    }
    struct ci_node *root = NULL;
    struct ci_yaml_error yerr;
    if (cn_cloudinit_yaml_parse(p, len, &root, &yerr) != 0) {
        addz(r, yerr.line, CI_E_ERROR, yerr.msg);
        return;
    }
    if (root == NULL) return;
    rule_discovery(root, r);
    rule_encoding(root, r);
    check_structure(root, CI_T_STRUCT, &cn_cloudinit_schema_config, r);
    check_validity(root, NULL, CI_T_STRUCT, &cn_cloudinit_schema_config, r);
    rule_write_files_path(root, r);
    const struct ci_node *wf =
        cn_cloudinit_node_child(cn_cloudinit_node_child(root, "coreos"), "write_files");
    if (present(wf)) addz(r, wf->line, CI_E_INFO, "write_files doesn't belong under coreos");
    cn_cloudinit_node_free(root);
}

void cn_cloudinit_report_free(struct ci_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        cn_free(r->e[i].msg);
    cn_free(r->e);
    r->e = NULL;
    r->n = r->cap = 0;
}

void cn_cloudinit_report_format(const struct ci_report *r, struct cn_buf *out)
{
    static const char *const kinds[] = {"error", "warning", "info"};
    for (size_t i = 0; i < r->n; i++)
        cn_buf_appendf(out, "line %d: %s: %s\n", r->e[i].line, kinds[r->e[i].kind], r->e[i].msg);
}
