/* libFuzzer target for cairn-cloudinit's parser and validator: classification, substitution,
 * the YAML tree, the validator's six rules, the typed decoding with write_files decoding, the
 * drop-in renderers and the SharedConfig.xml scanner. Pure code only: nothing touches files. */
#include <stddef.h>
#include <stdint.h>

#include "cloudinit/cloudinit.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    const char *p = (const char *)data;

    struct ci_report r = {NULL, 0, 0};
    cn_cloudinit_validate(p, size, &r);
    struct cn_buf out = CN_BUF_INIT;
    cn_cloudinit_report_format(&r, &out);
    cn_cloudinit_report_free(&r);

    struct ci_subst s = {"203.0.113.1", "10.0.0.4", "", NULL};
    struct cn_buf text = CN_BUF_INIT;
    cn_cloudinit_substitute(p, size, &s, &text);
    const char *tp = text.p ? text.p : "";
    if (cn_cloudinit_classify(tp, text.len) == CI_CLOUD_CONFIG) {
        struct ci_node *tree = NULL;
        struct ci_yaml_error e;
        if (cn_cloudinit_yaml_parse(tp, text.len, &tree, &e) == 0) {
            struct ci_obj *cfg = cn_cloudinit_decode(tree);
            size_t bad;
            (void)cn_cloudinit_decode_write_files(cfg, &bad); /* either outcome is fine here */
            const struct ci_obj *co = cn_cloudinit_sub(cfg, CC_COREOS);
            for (int i = CO_ETCD; i <= CO_LOCKSMITH; i++)
                if (i != CO_FLANNEL) cn_cloudinit_render_dropin(cn_cloudinit_sub(co, i), &out);
            cn_cloudinit_render_flannel(cn_cloudinit_sub(co, CO_FLANNEL), &out);
            cn_cloudinit_render_oem_release(cn_cloudinit_sub(co, CO_OEM), &out);
            cn_cloudinit_render_update_conf(cn_cloudinit_sub(co, CO_UPDATE), tp, text.len, &out);
            cn_cloudinit_obj_free(cfg);
        }
        cn_cloudinit_node_free(tree);
    }
    struct ci_metadata md = {NULL, NULL};
    (void)cn_cloudinit_waagent_parse(p, size, &md); /* XML errors are expected */
    cn_cloudinit_metadata_free(&md);
    bool changed = cn_cloudinit_render_environment(&s, p, size, true, &out);
    (void)changed;
    cn_buf_free(&text);
    cn_buf_free(&out);
    return 0;
}
