/* bootstrap: etcd's member and cluster ids, and the checks a new or joining member makes of the
 * cluster map before it writes anything to its data dir (spec etcd-cluster.md §2). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

static uint64_t sha1_prefix(const void *p, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* Reading openssl.cnf costs ~10 ms of start-up and nothing here needs it. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    int ok = EVP_Digest(p, len, md, &mdlen, EVP_sha1(), NULL);
    CN_ASSERT(ok == 1 && mdlen >= 8);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | md[i];
    return id;
}

uint64_t cn_cluster_member_id(char *const *sorted_urls, size_t n, const char *token, int64_t unix_s)
{
    struct cn_buf b = CN_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        cn_buf_appends(&b, sorted_urls[i]);
    if (token) cn_buf_appends(&b, token);
    if (unix_s) cn_buf_appendf(&b, "%lld", (long long)unix_s);
    uint64_t id = sha1_prefix(b.p ? b.p : "", b.len);
    cn_buf_free(&b);
    return id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t cn_cluster_id(const uint64_t *ids, size_t n)
{
    uint64_t *sorted = cn_xmemdup(ids, n * sizeof(uint64_t));
    qsort(sorted, n, sizeof(uint64_t), cmp_u64);
    unsigned char *be = cn_xmalloc(n * 8 + 1);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 8; j++)
            be[i * 8 + (size_t)j] = (unsigned char)(sorted[i] >> (56 - 8 * j));
    uint64_t id = sha1_prefix(be, n * 8);
    cn_free(be);
    cn_free(sorted);
    return id;
}

/* Whether the two URL sets are equal (a contains every one of b, same count). */
static bool same_set(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < nb; i++) {
        bool found = false;
        for (size_t j = 0; j < na && !found; j++)
            found = strcmp(a[j], b[i]) == 0;
        if (!found) return false;
    }
    return true;
}

int cn_cluster_check_initial(const struct cn_cluster_seed *seeds, size_t n, const char *name,
                             char *const *advertised, size_t n_advertised, char *err, size_t errlen)
{
    const struct cn_cluster_seed *me = NULL;
    for (size_t i = 0; i < n && me == NULL; i++)
        if (strcmp(seeds[i].name, name) == 0) me = &seeds[i];
    if (me == NULL) {
        snprintf(err, errlen,
                 "couldn't find local name \"%s\" in the initial cluster configuration", name);
        return -1;
    }
    /* etcd: the advertised peer URLs, sorted, must equal this name's URLs in the cluster map */
    if (!same_set(advertised, n_advertised, me->peer_urls, me->n_peer)) {
        struct cn_buf b = CN_BUF_INIT;
        for (size_t i = 0; i < n_advertised; i++)
            cn_buf_appendf(&b, "%s%s", i ? "," : "", advertised[i]);
        snprintf(err, errlen,
                 "--initial-cluster must include %s=%s given "
                 "--initial-advertise-peer-urls=%s",
                 name, b.p ? b.p : "", b.p ? b.p : "");
        cn_buf_free(&b);
        return -1;
    }
    /* etcd: every peer URL belongs to one member */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < seeds[i].n_peer; k++)
            for (size_t j = 0; j <= i; j++)
                for (size_t l = 0; l < seeds[j].n_peer; l++) {
                    if (j == i && l >= k) break;
                    if (strcmp(seeds[i].peer_urls[k], seeds[j].peer_urls[l]) == 0) {
                        snprintf(err, errlen, "initial cluster has duplicate url %s",
                                 seeds[i].peer_urls[k]);
                        return -1;
                    }
                }
    return 0;
}

int cn_cluster_match_remote(struct cn_cluster_seed *seeds, size_t n, const char *name,
                            const struct cn_member_list *remote, uint64_t *self, char *err,
                            size_t errlen)
{
    *self = 0;
    if (remote->n != n) {
        snprintf(err, errlen, "member count is unequal");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cn_member *found = NULL;
        for (size_t k = 0; k < remote->n && found == NULL; k++) {
            const struct cn_member *m = &remote->m[k];
            if (m->id != 0 &&
                same_set(m->peer_urls, m->n_peer, seeds[i].peer_urls, seeds[i].n_peer))
                found = m;
        }
        if (found == NULL) {
            snprintf(err, errlen, "unmatched member while checking PeerURLs");
            return -1;
        }
        seeds[i].id = found->id;
        if (strcmp(seeds[i].name, name) == 0) *self = found->id;
    }
    if (*self == 0) {
        snprintf(err, errlen, "the cluster does not list this member");
        return -1;
    }
    return 0;
}
