/* libFuzzer target for the discovery client's reading of a registry's answers
 * (src/discovery/discovery_int.h): the size key, registration results, listings (ids from keys,
 * createdIndex order, _config and directories skipped) and the verdict on a listing before and
 * after registering. A registry is any server the --discovery URL names, so its bodies are
 * untrusted.
 *
 * Input: status selector, cluster size, self selector, then the answer's body. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery_int.h"
#include "fuzz.h"

static const int statuses[] = {200, 201, 204, 400, 403, 404, 412, 500, 502, 503};

static void check_verdict(const struct cn_discovery__list *l, uint64_t self, uint64_t csize,
                          bool check)
{
    struct cn_discovery__verdict v;
    memset(&v, 0xa5, sizeof(v));
    cn_discovery__judge(l, self, csize, check, &v);
    CHECK(v.npeers <= l->n && v.npeers <= csize);
    switch (v.next) {
    case CN_DISCOVERY__NEXT_REGISTER:
    case CN_DISCOVERY__NEXT_LIST:
        CHECK(check && v.npeers == 0);
        break;
    case CN_DISCOVERY__NEXT_WAIT:
        CHECK(!check && l->n < csize && v.npeers == 0);
        break;
    case CN_DISCOVERY__NEXT_DONE:
        CHECK(v.err == CN_DISC_OK || v.err == CN_DISC_FULL || v.err == CN_DISC_DUP_NAME);
        if (v.err == CN_DISC_OK) CHECK(!check && v.npeers == csize);
        if (v.err == CN_DISC_DUP_NAME) CHECK(!check && v.npeers == 0);
        for (size_t i = 0; i < v.npeers; i++) {
            CHECK(v.peers[i].id == l->regs[i].id);
            if (!check) CHECK(v.peers[i].value != NULL);
            if (v.peers[i].value) (void)strlen(v.peers[i].value);
        }
        break;
    default:
        fprintf(stderr, "unknown verdict %d\n", (int)v.next);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > (1u << 20)) return 0;
    int status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    uint64_t csize = 1 + data[1] % (CN_DISCOVERY_MAX + 8);
    uint8_t self_sel = data[2];
    struct cn_str body = cn_str_make((const char *)data + 3, size - 3);

    uint64_t n = 0;
    int rc = cn_discovery__parse_size(status, body, &n);
    CHECK(rc == CN_DISC_OK || rc == CN_DISCOVERY__RETRY || rc == CN_DISC_SIZE_NOT_FOUND ||
          rc == CN_DISC_BAD_SIZE || rc == CN_DISC_BAD_ENDPOINT);
    if (rc == CN_DISC_OK) CHECK(n >= 1 && n <= 1000);

    rc = cn_discovery__parse_register(status, body);
    CHECK(rc == CN_DISC_OK || rc == CN_DISCOVERY__RETRY || rc == CN_DISC_DUP_ID ||
          rc == CN_DISC_BAD_ENDPOINT);
    if (rc == CN_DISC_OK) CHECK(status == 200 || status == 201);

    struct cn_discovery__list l;
    rc = cn_discovery__parse_list(status, body, &l);
    if (rc != CN_DISC_OK) {
        CHECK(rc == CN_DISCOVERY__RETRY || rc == CN_DISC_SIZE_NOT_FOUND ||
              rc == CN_DISC_BAD_ENDPOINT);
        CHECK(l.root == NULL && l.n == 0);
        return 0;
    }
    CHECK(status == 200 && l.root != NULL && l.n <= CN_DISCOVERY_MAX);
    uint64_t self = self_sel < l.n ? l.regs[self_sel].id : 0xfeedfacecafebeefULL;
    check_verdict(&l, self, csize, true);
    check_verdict(&l, self, csize, false);
    cn_discovery__list_free(&l);
    return 0;
}
