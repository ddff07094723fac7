/* list: an intrusive, circular, doubly linked list (the node is embedded in the element). */
#ifndef CN_COMMON_LIST_H
#define CN_COMMON_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct cn_list {
    struct cn_list *prev, *next;
};

#define CN_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

static inline void cn_list_init(struct cn_list *l)
{
    l->prev = l->next = l;
}

static inline bool cn_list_empty(const struct cn_list *l)
{
    return l->next == l;
}

static inline void cn_list_insert_tail(struct cn_list *head, struct cn_list *n)
{
    n->next = head;
    n->prev = head->prev;
    head->prev->next = n;
    head->prev = n;
}

static inline void cn_list_remove(struct cn_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Safe against removal of the current element. */
#define CN_LIST_FOREACH(it, tmp, head)                                                             \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
