/* The bus's publisher outbox, see include/bus_outbox.h. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus_outbox.h"
#include "xalloc.h"

void bus_outbox_init(struct bus_outbox *ob, size_t limit)
{
    memset(ob, 0, sizeof(*ob));
    ob->queue_tail = &ob->queue;
    ob->sent_tail = &ob->sent;
    ob->limit = limit;
}

int bus_outbox_push(struct bus_outbox *ob, const char *exchange,
                    const char *routing_key, const void *body, size_t len,
                    bus_publish_cb cb, void *arg)
{
    struct bus_msg *m;

    if (bus_outbox_count(ob) >= ob->limit)
        return -ENOBUFS;
    m = xcalloc(1, sizeof(*m));
    m->exchange = xstrdup(exchange);
    m->routing_key = xstrdup(routing_key);
    m->body = xmalloc(len + 1);
    if (len)
        memcpy(m->body, body, len);
    ((char *)m->body)[len] = '\0'; /* for logs and tests; len is what counts */
    m->len = len;
    m->cb = cb;
    m->arg = arg;
    *ob->queue_tail = m;
    ob->queue_tail = &m->next;
    ob->n_queue++;
    return 0;
}

struct bus_msg *bus_outbox_peek(struct bus_outbox *ob)
{
    return ob->queue;
}

void bus_outbox_sent(struct bus_outbox *ob)
{
    struct bus_msg *m = ob->queue;

    if (m == NULL)
        return;
    ob->queue = m->next;
    if (ob->queue == NULL)
        ob->queue_tail = &ob->queue;
    ob->n_queue--;
    m->next = NULL;
    m->seq = ++ob->seq;
    *ob->sent_tail = m;
    ob->sent_tail = &m->next;
    ob->n_sent++;
}

static void outbox_msg_done(struct bus_msg *m, int status)
{
    bus_publish_cb cb = m->cb;
    void *arg = m->arg;

    free(m->exchange);
    free(m->routing_key);
    free(m->body);
    free(m);
    if (cb)
        cb(status, arg);
}

size_t bus_outbox_confirm(struct bus_outbox *ob, uint64_t tag, bool multiple,
                          int status)
{
    struct bus_msg **pp = &ob->sent, *m;
    size_t n = 0;

    while ((m = *pp) != NULL) {
        if (m->seq > tag)
            break;
        if (!multiple && m->seq != tag) {
            pp = &m->next;
            continue;
        }
        /* Unlink before the callback: it may publish again. */
        *pp = m->next;
        if (*pp == NULL)
            ob->sent_tail = pp;
        ob->n_sent--;
        n++;
        outbox_msg_done(m, status);
        if (!multiple)
            break;
    }
    return n;
}

void bus_outbox_requeue(struct bus_outbox *ob)
{
    if (ob->sent) {
        for (struct bus_msg *m = ob->sent; m; m = m->next)
            m->seq = 0;
        *ob->sent_tail = ob->queue;
        if (ob->queue == NULL)
            ob->queue_tail = ob->sent_tail;
        ob->queue = ob->sent;
        ob->n_queue += ob->n_sent;
        ob->sent = NULL;
        ob->sent_tail = &ob->sent;
        ob->n_sent = 0;
    }
    ob->seq = 0;
}

size_t bus_outbox_fail_all(struct bus_outbox *ob, int status)
{
    size_t n = 0;
    struct bus_msg *m;

    bus_outbox_requeue(ob);
    while ((m = ob->queue) != NULL) {
        ob->queue = m->next;
        if (ob->queue == NULL)
            ob->queue_tail = &ob->queue;
        ob->n_queue--;
        n++;
        outbox_msg_done(m, status);
    }
    return n;
}
