/* discovery_int: the pure half of the discovery client, private to src/discovery (and its unit
 * test and fuzz target): reading the registry's answers and deciding what a listing means. No
 * loop, no sockets; discovery.c's state machine calls these and acts on the verdicts. */
#ifndef CN_DISCOVERY_DISCOVERY_INT_H
#define CN_DISCOVERY_DISCOVERY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/str.h"
#include "discovery/discovery.h"

/* An answer that is a transport-level failure (5xx, an empty 200 listing): the step is retried
 * after a backoff. The parse functions return this, CN_DISC_OK, or the enum cn_discovery_err the
 * protocol ends with. */
#define CN_DISCOVERY__RETRY (-1)

/* GET <url>/_config/size. status, body: the registry's answer (body borrowed for the call). On
 * CN_DISC_OK *size is the cluster size (1..1000). Else CN_DISCOVERY__RETRY, CN_DISC_SIZE_NOT_FOUND
 * (404 or errorCode 100), CN_DISC_BAD_SIZE (not a decimal in 1..1000) or CN_DISC_BAD_ENDPOINT
 * (not JSON). */
int cn_discovery__parse_size(int status, struct cn_str body, uint64_t *size);

/* PUT <url>/<id>?prevExist=false: CN_DISC_OK for 200/201, CN_DISC_DUP_ID (412 or errorCode 105),
 * CN_DISCOVERY__RETRY (5xx), else CN_DISC_BAD_ENDPOINT. */
int cn_discovery__parse_register(int status, struct cn_str body);

struct json_t;

/* The registrations of a listing (GET <url>), oldest first by createdIndex, without _config and
 * without directories, at most CN_DISCOVERY_MAX. regs[i].id is the hex id of the key's last
 * segment (0 when it has none); regs[i].value is NULL when the node has no string value. The
 * strings are borrowed from root, valid until cn_discovery__list_free. */
struct cn_discovery__list {
    struct json_t *root; /* owned */
    size_t n;
    struct cn_discovery_peer regs[CN_DISCOVERY_MAX];
};

/* Reads a listing. On CN_DISC_OK l holds it (free it with cn_discovery__list_free); otherwise l
 * holds nothing and the result is CN_DISCOVERY__RETRY (5xx, an empty 200), CN_DISC_SIZE_NOT_FOUND
 * (a non-200 JSON answer with errorCode 100) or CN_DISC_BAD_ENDPOINT. */
int cn_discovery__parse_list(int status, struct cn_str body, struct cn_discovery__list *l);
void cn_discovery__list_free(struct cn_discovery__list *l);

/* What the client does after a listing. */
enum cn_discovery__next {
    CN_DISCOVERY__NEXT_REGISTER, /* not registered yet and there is room */
    CN_DISCOVERY__NEXT_LIST,     /* registered already (before the register step): list again */
    CN_DISCOVERY__NEXT_WAIT,     /* fewer than size registered: long-poll for more */
    CN_DISCOVERY__NEXT_DONE,     /* the protocol ends with err (and peers) */
};

struct cn_discovery__verdict {
    enum cn_discovery__next next;
    int err;       /* NEXT_DONE: CN_DISC_OK, CN_DISC_FULL or CN_DISC_DUP_NAME */
    size_t npeers; /* NEXT_DONE with CN_DISC_OK, or CN_DISC_FULL before registering */
    struct cn_discovery_peer peers[CN_DISCOVERY_MAX]; /* values borrowed from the listing */
};

/* Judges a listing for the member self_id in a cluster of size members. check: the listing taken
 * before registering (etcd checks fullness then, so a late member never registers: a full
 * cluster ends with CN_DISC_FULL and the first size registrations). Afterwards: fewer than size
 * is NEXT_WAIT; self not among the first size is CN_DISC_FULL (no peers); two of the first size
 * with the same name (the part of the value before '=') is CN_DISC_DUP_NAME (no peers); else
 * CN_DISC_OK with the first size registrations (a missing value reads as ""). */
void cn_discovery__judge(const struct cn_discovery__list *l, uint64_t self_id, uint64_t size,
                         bool check, struct cn_discovery__verdict *v);

#endif
