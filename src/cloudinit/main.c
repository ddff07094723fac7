/* cairn-cloudinit: the command line (spec 1) and the run of spec 2 and 9: pick a datasource,
 * validate, substitute, classify, parse, apply, run a script, pick the exit status. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cloudinit.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#define MOD "cloudinit"

enum {
    OPT_FILE = 1,
    OPT_WAAGENT,
    OPT_OEM,
    OPT_VALIDATE,
    OPT_IGNORE,
    OPT_KEYNAME,
    OPT_WORKSPACE,
    OPT_ROOT,
    OPT_LOG,
    OPT_HELP
};

struct opts {
    const char *from_file, *from_waagent, *root, *logpath, *workspace, *ssh_key_name;
    bool validate, ignore_failure;
};

static void usage(void)
{
    printf("usage: cairn-cloudinit [--root DIR] [--validate] [--ignore-failure] "
           "[--ssh-key-name NAME] [--systemctl-log FILE] [--workspace DIR] "
           "(--from-file PATH | --from-waagent DIR | --oem azure)...\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"from-file", required_argument, NULL, OPT_FILE},
        {"from-waagent", required_argument, NULL, OPT_WAAGENT},
        {"oem", required_argument, NULL, OPT_OEM},
        {"validate", no_argument, NULL, OPT_VALIDATE},
        {"ignore-failure", no_argument, NULL, OPT_IGNORE},
        {"ssh-key-name", required_argument, NULL, OPT_KEYNAME},
        {"workspace", required_argument, NULL, OPT_WORKSPACE},
        {"root", required_argument, NULL, OPT_ROOT},
        {"systemctl-log", required_argument, NULL, OPT_LOG},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 1;
    while ((c = getopt_long_only(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case OPT_FILE:
            o->from_file = optarg;
            break;
        case OPT_WAAGENT:
            o->from_waagent = optarg;
            break;
        case OPT_OEM:
            if (strcmp(optarg, "azure") != 0) {
                printf("Invalid option to -oem: \"%s\". Supported options: [\"azure\"]\n", optarg);
                return 2;
            }
            o->from_waagent = "/var/lib/waagent";
            break;
        case OPT_VALIDATE:
            o->validate = true;
            break;
        case OPT_IGNORE:
            o->ignore_failure = true;
            break;
        case OPT_KEYNAME:
            o->ssh_key_name = optarg;
            break;
        case OPT_WORKSPACE:
            o->workspace = optarg;
            break;
        case OPT_ROOT:
            o->root = optarg;
            break;
        case OPT_LOG:
            o->logpath = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind != argc || (o->from_file == NULL && o->from_waagent == NULL)) {
        usage();
        return 2;
    }
    return 0;
}

static const char *pick(const char *meta, const char *env)
{
    if (meta && *meta) return meta;
    const char *v = getenv(env);
    return v ? v : "";
}

/* Spec 2.3: saves the script under the workspace and starts it (or logs run-script). */
static int run_script(struct ci_root *root, const struct ci_actions *act, const char *workspace,
                      const char *text, size_t len)
{
    /* Named by a hash of the script (FNV-1a) rather than at random, so runs are reproducible. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
    struct cn_buf path = CN_BUF_INIT, unit = CN_BUF_INIT, un = CN_BUF_INIT, line = CN_BUF_INIT;
    char base[32];
    snprintf(base, sizeof(base), "%016llx", (unsigned long long)h);
    cn_buf_appendf(&path, "/%s/scripts/%s", workspace, base);
    char *clean = cn_cloudinit_path_clean(path.p, path.len);
    cn_buf_appendf(&unit, "coreos-cloudinit-%s.service", base);
    cn_buf_appendf(&un, "/%s/scripts/unit-name", workspace);
    int rc = cn_cloudinit_write_file(root, clean, text, len, 0744, NULL);
    if (rc == 0) rc = cn_cloudinit_write_file(root, un.p, unit.p, unit.len, 0644, NULL);
    if (rc == 0) {
        struct cn_buf full = CN_BUF_INIT, unitarg = CN_BUF_INIT;
        cn_buf_appendf(&full, "%s%s", strcmp(act->root, "/") ? act->root : "", clean);
        cn_buf_appendf(&unitarg, "--unit=%s", unit.p);
        cn_buf_appendf(&line, "run-script %s", clean);
        const char *argv[] = {"systemd-run", unitarg.p, "/bin/bash", full.p, NULL};
        rc = cn_cloudinit_action(act, line.p, argv, NULL);
        cn_buf_free(&full);
        cn_buf_free(&unitarg);
    }
    if (rc != 0) CN_LOGE(MOD, "Failed to run script err=%s", cn_strerror(rc));
    cn_free(clean);
    cn_buf_free(&path);
    cn_buf_free(&unit);
    cn_buf_free(&un);
    cn_buf_free(&line);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {NULL,  NULL, "/", NULL, "/var/lib/coreos-cloudinit", "coreos-cloudinit",
                     false, false};
    cn_log_init();
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc;

    bool failure = false;
    struct cn_buf raw = CN_BUF_INIT, ud = CN_BUF_INIT, text = CN_BUF_INIT;
    struct ci_metadata md = {NULL, NULL};
    bool meta_wanted = false;
    /* Spec 3.3: file, then waagent; the first available one, no retries. */
    int src = -1;
    if (o.from_file) {
        rc = cn_cloudinit_ds_file(o.from_file, &raw);
        if (rc != CN_ERR_NOT_FOUND) src = 0;
    }
    if (src < 0 && o.from_waagent) {
        cn_buf_reset(&raw);
        char prov[4096];
        snprintf(prov, sizeof(prov), "%s/provisioned", o.from_waagent);
        if (access(prov, F_OK) == 0) {
            src = 1;
            meta_wanted = true;
            struct cn_buf custom = CN_BUF_INIT;
            snprintf(prov, sizeof(prov), "%s/CustomData", o.from_waagent);
            rc = cn_cloudinit_read_host_file(prov, CI_MAX_USERDATA, &raw);
            if (rc == CN_ERR_NOT_FOUND) rc = 0;
            cn_buf_free(&custom);
        }
    }
    if (src < 0) {
        CN_LOGE(MOD, "No datasources available");
        rc = 1;
        goto out;
    }
    if (rc != 0) {
        CN_LOGE(MOD, "Failed fetching user-data from datasource, continuing err=%s",
                cn_strerror(rc));
        cn_buf_reset(&raw);
        failure = true;
    }
    rc = cn_cloudinit_gunzip_payload(raw.p ? raw.p : "", raw.len, &ud);
    if (rc != 0) {
        CN_LOGE(MOD, "Failed decompressing user-data from datasource, continuing err=%s",
                cn_strerror(rc));
        cn_buf_reset(&ud);
        failure = true;
    }
    const char *udp = ud.p ? ud.p : "";

    struct ci_report rep = {NULL, 0, 0};
    cn_cloudinit_validate(udp, ud.len, &rep);
    if (o.validate) {
        struct cn_buf out = CN_BUF_INIT;
        cn_cloudinit_report_format(&rep, &out);
        fwrite(out.p ? out.p : "", 1, out.len, stdout);
        cn_buf_free(&out);
        rc = rep.n ? 1 : 0;
        cn_cloudinit_report_free(&rep);
        goto out;
    }
    for (size_t i = 0; i < rep.n; i++) {
        static const char *const kinds[] = {"error", "warning", "info"};
        CN_LOGW(MOD, "line %d: %s: %s", rep.e[i].line, kinds[rep.e[i].kind], rep.e[i].msg);
    }
    cn_cloudinit_report_free(&rep);

    if (meta_wanted) {
        struct cn_buf x = CN_BUF_INIT;
        char path[4096];
        snprintf(path, sizeof(path), "%s/SharedConfig.xml", o.from_waagent);
        rc = cn_cloudinit_read_host_file(path, CI_MAX_READ, &x);
        if (rc == CN_ERR_NOT_FOUND) rc = 0;
        if (rc == 0 && x.len) rc = cn_cloudinit_waagent_parse(x.p, x.len, &md);
        cn_buf_free(&x);
        if (rc != 0) {
            CN_LOGE(MOD, "Failed fetching meta-data from datasource err=%s", cn_strerror(rc));
            rc = 1;
            goto out;
        }
    }
    struct ci_subst subst = {
        pick(md.public_ipv4, "COREOS_PUBLIC_IPV4"),
        pick(md.private_ipv4, "COREOS_PRIVATE_IPV4"),
        pick(NULL, "COREOS_PUBLIC_IPV6"),
        pick(NULL, "COREOS_PRIVATE_IPV6"),
    };
    cn_cloudinit_substitute(udp, ud.len, &subst, &text);
    const char *tp = text.p ? text.p : "";

    struct ci_node *tree = NULL;
    bool is_script = false;
    switch (cn_cloudinit_classify(tp, text.len)) {
    case CI_EMPTY:
        break;
    case CI_SCRIPT:
        is_script = true;
        break;
    case CI_IGNITION:
        CN_LOGN(MOD, "Detected an Ignition config. Exiting...");
        rc = 0;
        goto out;
    case CI_UNKNOWN:
        CN_LOGE(MOD, "Failed to parse user-data: Unrecognized user-data format");
        failure = true;
        break;
    case CI_CLOUD_CONFIG: {
        struct ci_yaml_error yerr;
        if (cn_cloudinit_yaml_parse(tp, text.len, &tree, &yerr) != 0) {
            CN_LOGE(MOD, "Failed to parse user-data: line %d: %s", yerr.line, yerr.msg);
            failure = true;
        }
        break;
    }
    }
    struct ci_obj *cfg = cn_cloudinit_decode(tree);
    cn_cloudinit_node_free(tree);
    size_t bad;
    int drc = cn_cloudinit_decode_write_files(cfg, &bad);
    if (drc != 0) {
        CN_LOGE(MOD,
                "Failed to parse user-data: write_files entry cannot be decoded index=%zu "
                "err=%s",
                bad, cn_strerror(drc));
        cn_cloudinit_obj_free(cfg);
        cfg = cn_cloudinit_decode(NULL);
        failure = true;
    }

    struct ci_root root = {-1, NULL};
    rc = cn_cloudinit_root_open(&root, o.root);
    if (rc != 0) {
        CN_LOGE(MOD, "cannot open root root=%s err=%s", o.root, cn_strerror(rc));
        cn_cloudinit_obj_free(cfg);
        rc = 1;
        goto out;
    }
    struct ci_actions act = {o.root, o.logpath};
    struct ci_apply_opts ao = {&root, &act, &subst, o.ssh_key_name, NULL, NULL, 0};
    rc = cn_cloudinit_apply(&ao, cfg);
    cn_cloudinit_obj_free(cfg);
    if (rc != 0) {
        CN_LOGE(MOD, "Failed to apply cloud-config err=%s", cn_strerror(rc));
        rc = 1;
    } else if (is_script && run_script(&root, &act, o.workspace, tp, text.len) != 0) {
        rc = 1;
    } else {
        rc = failure && !o.ignore_failure ? 1 : 0;
    }
    cn_cloudinit_root_close(&root);
out:
    cn_cloudinit_metadata_free(&md);
    cn_buf_free(&raw);
    cn_buf_free(&ud);
    cn_buf_free(&text);
    return rc;
}
