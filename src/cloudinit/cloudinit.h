/* cloudinit: cairn's cloud-config processor (spec/cloud-config.md). This header is the module's
 * internal API, shared by its .c files, the unit tests and the fuzz target. Each section names the
 * file that implements it. Strings that come from user data carry a length: they may hold NULs. */
#ifndef CN_CLOUDINIT_H
#define CN_CLOUDINIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Hard caps on input, checked before anything is allocated from it. */
#define CI_MAX_USERDATA   (16u << 20) /* raw or decompressed user data */
#define CI_MAX_DECODED    (64u << 20) /* one write_files entry after gzip */
#define CI_MAX_READ       (16u << 20) /* any file read from under the root */
#define CI_MAX_YAML_NODES 200000u     /* nodes visited while building a tree (alias bombs) */
#define CI_MAX_YAML_DEPTH 100u

/* ---- input.c: classification, gzip payload, substitution (spec 2, 4) ---- */

enum ci_class { CI_EMPTY, CI_SCRIPT, CI_CLOUD_CONFIG, CI_IGNITION, CI_UNKNOWN };

/* Substitution values (spec 4); NULL or "" = unknown. Borrowed. */
struct ci_subst {
    const char *public_ipv4;
    const char *private_ipv4;
    const char *public_ipv6;
    const char *private_ipv6;
};

bool cn_cloudinit_is_cloud_config(const char *p, size_t len);
bool cn_cloudinit_is_script(const char *p, size_t len);
bool cn_cloudinit_is_ignition(const char *p, size_t len);
/* Classification as Apply does it (2.1 table). */
enum ci_class cn_cloudinit_classify(const char *p, size_t len);
/* If p starts with the gzip magic, decompresses it into out and returns 0, or a negative code
 * (out then empty). Otherwise copies p into out and returns 0. */
int cn_cloudinit_gunzip_payload(const char *p, size_t len, struct cn_buf *out);
/* Spec 4: appends the substituted text to out. */
void cn_cloudinit_substitute(const char *p, size_t len, const struct ci_subst *s,
                             struct cn_buf *out);

/* ---- codec.c: base64, gzip, Go-style quoting, path cleaning ---- */

/* Go's base64.StdEncoding: padding required, \r and \n ignored. 0 or CN_ERR_PARSE. */
int cn_cloudinit_base64_decode(const char *p, size_t len, struct cn_buf *out);
/* A gzip member: the header must be valid (CN_ERR_PARSE otherwise); errors in the deflate body
 * are ignored and what was inflated so far is kept, as Go's reader + ReadFrom did. */
int cn_cloudinit_gzip_decode(const char *p, size_t len, size_t max_out, struct cn_buf *out);
/* write_files decoding (7.3). 0, CN_ERR_PARSE (bad data) or CN_ERR_INVAL (unknown encoding). */
int cn_cloudinit_decode_content(const char *p, size_t len, const char *enc, size_t enc_len,
                                struct cn_buf *out);
/* Go's %q. */
void cn_cloudinit_quote(struct cn_buf *b, const char *p, size_t len);
/* Go's path.Clean. Returns a new string. */
char *cn_cloudinit_path_clean(const char *p, size_t len);
/* Go's path.Dir (cleaned). Returns a new string. */
char *cn_cloudinit_path_dir(const char *p, size_t len);

/* ---- yamltree.c: libyaml -> tree with implicit types and line numbers (spec 5, 6.7) ---- */

enum ci_kind { CI_NULL, CI_STR, CI_INT, CI_FLOAT, CI_BOOL, CI_MAP, CI_SEQ };

struct ci_node {
    enum ci_kind kind; /* implicit ("weak") type */
    char *text;        /* scalar source text (NUL-terminated; !!binary already decoded) */
    size_t text_len;
    long long ival;
    double fval;
    bool bval;
    char *key;  /* raw key text, for mapping children */
    char *name; /* normalised key ('-' -> '_'), or "<parent name>[i]" for sequence elements */
    int line;   /* spec 6.7; 0 = not found */
    struct ci_node **kids;
    size_t nkids;
};

struct ci_yaml_error {
    int line;
    char msg[256];
};

/* Parses the first document of p. *out is NULL when the document is empty or its top level is
 * not a mapping. Returns 0, or CN_ERR_PARSE with err filled in (6.3). */
int cn_cloudinit_yaml_parse(const char *p, size_t len, struct ci_node **out,
                            struct ci_yaml_error *err);
void cn_cloudinit_node_free(struct ci_node *n);
/* First child whose normalised name is name, or NULL. */
const struct ci_node *cn_cloudinit_node_child(const struct ci_node *n, const char *name);
bool cn_cloudinit_node_is_scalar(const struct ci_node *n);

/* ---- schema.c: the key schema (spec 7) ---- */

enum ci_type {
    CI_T_STR,
    CI_T_INT,
    CI_T_FLOAT,
    CI_T_BOOL,
    CI_T_STRUCT,
    CI_T_STRLIST,
    CI_T_STRUCTLIST
};

struct ci_schema;

struct ci_field {
    const char *key;
    enum ci_type type;
    const char *env;             /* drop-in / env file variable, or NULL */
    const char *rule;            /* POSIX ERE the whole value must match, or NULL */
    const char *deprecated;      /* reason, or NULL */
    const struct ci_schema *sub; /* for CI_T_STRUCT and CI_T_STRUCTLIST */
};

struct ci_schema {
    const char *name;
    const struct ci_field *fields;
    size_t nfields;
};

extern const struct ci_schema cn_cloudinit_schema_config, cn_cloudinit_schema_coreos,
    cn_cloudinit_schema_etcd, cn_cloudinit_schema_etcd2, cn_cloudinit_schema_fleet,
    cn_cloudinit_schema_flannel, cn_cloudinit_schema_locksmith, cn_cloudinit_schema_update,
    cn_cloudinit_schema_oem, cn_cloudinit_schema_unit, cn_cloudinit_schema_dropin,
    cn_cloudinit_schema_file, cn_cloudinit_schema_user;

/* Field indexes, in table order. */
enum { CC_SSH_KEYS, CC_COREOS, CC_WRITE_FILES, CC_HOSTNAME, CC_USERS, CC_MANAGE_ETC_HOSTS };
enum { CO_ETCD, CO_ETCD2, CO_FLANNEL, CO_FLEET, CO_LOCKSMITH, CO_OEM, CO_UPDATE, CO_UNITS };
enum { UP_REBOOT_STRATEGY, UP_GROUP, UP_SERVER };
enum { OEM_ID, OEM_NAME, OEM_VERSION_ID, OEM_HOME_URL, OEM_BUG_REPORT_URL };
enum { UN_NAME, UN_MASK, UN_ENABLE, UN_RUNTIME, UN_CONTENT, UN_COMMAND, UN_DROP_INS };
enum { DI_NAME, DI_CONTENT };
enum { WF_ENCODING, WF_CONTENT, WF_OWNER, WF_PATH, WF_PERMISSIONS };
enum {
    US_NAME,
    US_PASSWD,
    US_SSH_KEYS,
    US_GH,
    US_GH_USERS,
    US_URL,
    US_GECOS,
    US_HOMEDIR,
    US_NO_CREATE_HOME,
    US_PRIMARY_GROUP,
    US_GROUPS,
    US_NO_USER_GROUP,
    US_SYSTEM,
    US_NO_LOG_INIT,
    US_SHELL
};

/* Index of key (normalised) in s, or -1. */
int cn_cloudinit_schema_find(const struct ci_schema *s, const char *key);
/* Validator's type name: string int bool float64 struct []string []struct. */
const char *cn_cloudinit_type_name(enum ci_type t);
/* Rule match on a value's text; false for text holding a NUL. */
bool cn_cloudinit_rule_match(const char *rule, const char *p, size_t len);

/* ---- decode.c: the strong view (spec 5.5-5.8) ---- */

struct ci_obj;

struct ci_val {
    char *s; /* CI_T_STR: never NULL after decoding */
    size_t len;
    long long i;
    double f;
    bool b;
    struct ci_obj *obj;    /* CI_T_STRUCT: never NULL after decoding */
    struct ci_obj **items; /* CI_T_STRUCTLIST */
    char **strs;           /* CI_T_STRLIST */
    size_t *lens;
    size_t n;
};

struct ci_obj {
    const struct ci_schema *schema;
    struct ci_val *v; /* schema->nfields values */
};

/* Decodes tree (may be NULL) against the top-level schema. Never fails. */
struct ci_obj *cn_cloudinit_decode(const struct ci_node *tree);
void cn_cloudinit_obj_free(struct ci_obj *o);
/* Decodes each write_files content with its encoding (7.3); 0 or CN_ERR_PARSE/CN_ERR_INVAL with
 * *bad_index set. */
int cn_cloudinit_decode_write_files(struct ci_obj *cfg, size_t *bad_index);
static inline struct ci_obj *cn_cloudinit_sub(const struct ci_obj *o, int idx)
{
    return o->v[idx].obj;
}

/* ---- validate.c: the report (spec 6) ---- */

enum ci_entry_kind { CI_E_ERROR, CI_E_WARNING, CI_E_INFO };

struct ci_entry {
    int line;
    enum ci_entry_kind kind;
    char *msg;
};

struct ci_report {
    struct ci_entry *e;
    size_t n, cap;
};

void cn_cloudinit_validate(const char *p, size_t len, struct ci_report *r);
void cn_cloudinit_report_free(struct ci_report *r);
/* "line N: kind: msg\n" for each entry. */
void cn_cloudinit_report_format(const struct ci_report *r, struct cn_buf *out);
/* Go's url.ParseRequestURI acceptance (6.4 rule 1). */
bool cn_cloudinit_request_uri_valid(const char *p, size_t len);

/* ---- fsroot.c: confinement under --root and atomic writes ---- */

struct ci_root {
    int fd; /* O_PATH|O_DIRECTORY of the root */
    char *path;
};

int cn_cloudinit_root_open(struct ci_root *r, const char *path);
void cn_cloudinit_root_close(struct ci_root *r);
/* Every path below is relative to the root (a leading '/' is allowed; '..' cannot leave the
 * root; symlinks resolve as if the root were '/'). */
/* Writes data atomically: temp file in the target's directory (created 0755 as needed),
 * fchmod(mode), optional chown, fsync, rename, fsync of the directory. */
int cn_cloudinit_write_file(struct ci_root *r, const char *path, const void *data, size_t len,
                            unsigned mode, const char *owner);
/* Reads a whole file (<= CI_MAX_READ). CN_ERR_NOT_FOUND / -errno. */
int cn_cloudinit_read_file(struct ci_root *r, const char *path, struct cn_buf *out);
bool cn_cloudinit_path_exists(struct ci_root *r, const char *path);
/* mkdir -p with mode for each created directory. */
int cn_cloudinit_mkdirs(struct ci_root *r, const char *path, unsigned mode);
/* Removes whatever is at path (a directory recursively); missing is fine. */
int cn_cloudinit_remove(struct ci_root *r, const char *path);
int cn_cloudinit_symlink(struct ci_root *r, const char *target, const char *path);
/* 8.11 unmask: removes path if it (followed) is an empty regular file or a char device, or is a
 * symlink to /dev/null. */
int cn_cloudinit_unmask(struct ci_root *r, const char *path);
/* Sorted names of non-hidden regular files in dir; caller frees each and the array. */
int cn_cloudinit_list_dir(struct ci_root *r, const char *dir, char ***names, size_t *n);
/* st_size / st_mode of a file (followed); -errno. */
int cn_cloudinit_stat(struct ci_root *r, const char *path, long long *size, unsigned *mode);

/* ---- actions.c: systemctl, useradd, chpasswd, hostnamectl or the action log (8.12) ---- */

struct ci_actions {
    const char *root;    /* "/" or the --root path */
    const char *logpath; /* --systemctl-log, or NULL for real calls */
};

/* argv-style operation; the log line is the words joined by spaces. stdin_data may be NULL. */
int cn_cloudinit_action(const struct ci_actions *a, const char *logline, const char *const *argv,
                        const char *stdin_data);

/* ---- apply.c: applying a configuration (spec 8) ---- */

struct ci_apply_opts {
    struct ci_root *root;
    const struct ci_actions *act;
    const struct ci_subst *subst;
    const char *ssh_key_name;
    const char *meta_hostname; /* may be NULL */
    const char *const *meta_keys;
    size_t nmeta_keys;
};

/* Runs 8.0 steps 1-8 on cfg (never NULL; empty for rejected data). 0 or negative. */
int cn_cloudinit_apply(const struct ci_apply_opts *o, const struct ci_obj *cfg);
/* Renderers (render.c), exposed for unit tests. Each appends to out. */
void cn_cloudinit_render_dropin(const struct ci_obj *section, struct cn_buf *out);
int cn_cloudinit_render_update_conf(const struct ci_obj *update, const char *base, size_t base_len,
                                    struct cn_buf *out);
void cn_cloudinit_render_oem_release(const struct ci_obj *oem, struct cn_buf *out);
void cn_cloudinit_render_flannel(const struct ci_obj *flannel, struct cn_buf *out);
/* Returns true if the merged text differs from old. */
bool cn_cloudinit_render_environment(const struct ci_subst *s, const char *old, size_t old_len,
                                     bool exists, struct cn_buf *out);
void cn_cloudinit_format_float(double f, struct cn_buf *out);

/* ---- datasource.c (spec 3) ---- */

struct ci_metadata {
    char *public_ipv4, *private_ipv4; /* NULL if unknown */
};

/* 0 / CN_ERR_NOT_FOUND (not available) / other errors. */
int cn_cloudinit_ds_file(const char *path, struct cn_buf *userdata);
int cn_cloudinit_ds_waagent(const char *dir, struct cn_buf *userdata, struct ci_metadata *md);
/* SharedConfig.xml parsing: 0 or CN_ERR_PARSE. */
int cn_cloudinit_waagent_parse(const char *p, size_t len, struct ci_metadata *md);
void cn_cloudinit_metadata_free(struct ci_metadata *md);
/* Reads a regular file with a size cap; CN_ERR_NOT_FOUND if missing, CN_ERR_TOO_LARGE. */
int cn_cloudinit_read_host_file(const char *path, size_t max, struct cn_buf *out);

#endif
