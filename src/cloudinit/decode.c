/* decode: the typed ("strong") view of a cloud-config, following the decoding rules of the YAML
 * library coreos-cloudinit used (spec 5.5-5.8): string fields keep the scalar's source text,
 * mismatched types silently give zero values, undecodable list elements are dropped. */
#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"

static struct ci_obj *obj_new(const struct ci_schema *s)
{
    struct ci_obj *o = CN_NEW(struct ci_obj);
    o->schema = s;
    o->v = cn_xcalloc(s->nfields, sizeof(*o->v));
    for (size_t i = 0; i < s->nfields; i++) {
        const struct ci_field *f = &s->fields[i];
        if (f->type == CI_T_STR) o->v[i].s = cn_xstrdup("");
        if (f->type == CI_T_STRUCT) o->v[i].obj = obj_new(f->sub);
    }
    return o;
}

static struct ci_obj *decode_obj(const struct ci_schema *s, const struct ci_node *n);

static void decode_field(const struct ci_field *f, struct ci_val *v, const struct ci_node *n)
{
    switch (f->type) {
    case CI_T_STR:
        if (cn_cloudinit_node_is_scalar(n)) {
            cn_free(v->s);
            v->s = cn_xmemdup(n->text, n->text_len + 1);
            v->len = n->text_len;
        } else {
            cn_free(v->s);
            v->s = cn_xstrdup("");
            v->len = 0;
        }
        break;
    case CI_T_BOOL:
        v->b = n->kind == CI_BOOL && n->bval;
        break;
    case CI_T_INT:
        v->i = 0;
        if (n->kind == CI_INT) {
            v->i = n->ival;
        } else if (n->kind == CI_FLOAT && n->fval > -9.2e18 && n->fval < 9.2e18) {
            v->i = (long long)n->fval; /* truncated toward zero; NaN/inf fail the range test */
        }
        break;
    case CI_T_FLOAT:
        v->f = n->kind == CI_FLOAT ? n->fval : n->kind == CI_INT ? (double)n->ival : 0;
        break;
    case CI_T_STRUCT:
        cn_cloudinit_obj_free(v->obj);
        v->obj = n->kind == CI_MAP ? decode_obj(f->sub, n) : obj_new(f->sub);
        break;
    case CI_T_STRLIST:
        for (size_t i = 0; i < v->n; i++)
            cn_free(v->strs[i]);
        cn_free(v->strs);
        cn_free(v->lens);
        v->strs = NULL;
        v->lens = NULL;
        v->n = 0;
        if (n->kind != CI_SEQ) break;
        v->strs = cn_xcalloc(n->nkids + 1, sizeof(char *));
        v->lens = cn_xcalloc(n->nkids + 1, sizeof(size_t));
        for (size_t i = 0; i < n->nkids; i++) {
            const struct ci_node *k = n->kids[i];
            if (k->kind == CI_MAP || k->kind == CI_SEQ) continue; /* dropped */
            v->strs[v->n] = cn_xmemdup(k->text, k->text_len + 1);
            v->lens[v->n++] = k->text_len;
        }
        break;
    case CI_T_STRUCTLIST:
        for (size_t i = 0; i < v->n; i++)
            cn_cloudinit_obj_free(v->items[i]);
        cn_free(v->items);
        v->items = NULL;
        v->n = 0;
        if (n->kind != CI_SEQ) break;
        v->items = cn_xcalloc(n->nkids + 1, sizeof(*v->items));
        for (size_t i = 0; i < n->nkids; i++) {
            const struct ci_node *k = n->kids[i];
            if (k->kind == CI_MAP)
                v->items[v->n++] = decode_obj(f->sub, k);
            else if (k->kind == CI_NULL)
                v->items[v->n++] = obj_new(f->sub);
        }
        break;
    }
}

static struct ci_obj *decode_obj(const struct ci_schema *s, const struct ci_node *n)
{
    struct ci_obj *o = obj_new(s);
    /* Keys in document order, so the last of two spellings of one key wins. */
    for (size_t i = 0; n && i < n->nkids; i++) {
        int idx = cn_cloudinit_schema_find(s, n->kids[i]->name);
        if (idx >= 0) decode_field(&s->fields[idx], &o->v[idx], n->kids[i]);
    }
    return o;
}

struct ci_obj *cn_cloudinit_decode(const struct ci_node *tree)
{
    return decode_obj(&cn_cloudinit_schema_config, tree);
}

void cn_cloudinit_obj_free(struct ci_obj *o)
{
    if (o == NULL) return;
    for (size_t i = 0; i < o->schema->nfields; i++) {
        struct ci_val *v = &o->v[i];
        cn_free(v->s);
        cn_cloudinit_obj_free(v->obj);
        for (size_t j = 0; j < v->n; j++) {
            if (v->items) cn_cloudinit_obj_free(v->items[j]);
            if (v->strs) cn_free(v->strs[j]);
        }
        cn_free(v->items);
        cn_free(v->strs);
        cn_free(v->lens);
    }
    cn_free(o->v);
    cn_free(o);
}

int cn_cloudinit_decode_write_files(struct ci_obj *cfg, size_t *bad_index)
{
    struct ci_val *wf = &cfg->v[CC_WRITE_FILES];
    for (size_t i = 0; i < wf->n; i++) {
        struct ci_obj *f = wf->items[i];
        struct cn_buf out = CN_BUF_INIT;
        int rc = cn_cloudinit_decode_content(f->v[WF_CONTENT].s, f->v[WF_CONTENT].len,
                                             f->v[WF_ENCODING].s, f->v[WF_ENCODING].len, &out);
        if (rc != 0) {
            cn_buf_free(&out);
            *bad_index = i;
            return rc;
        }
        cn_free(f->v[WF_CONTENT].s);
        f->v[WF_CONTENT].s = cn_buf_steal(&out, &f->v[WF_CONTENT].len);
        f->v[WF_ENCODING].len = 0;
        f->v[WF_ENCODING].s[0] = '\0';
    }
    return 0;
}
