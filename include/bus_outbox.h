/* The bus's publisher outbox: status messages in order, under a limit,
 * awaiting their publisher confirms, requeued in order after a lost
 * connection. Pure bookkeeping, no network: src/bus.c sends what it
 * hands out and reports the confirms; tests/unit/test_bus.c drives it
 * alone. */
#ifndef VTPMD_BUS_OUTBOX_H
#define VTPMD_BUS_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

/* One message of the outbox. */
struct bus_msg {
    struct bus_msg *next;
    uint64_t seq; /* publish sequence number on the confirm channel; 0: unsent */
    char *exchange;
    char *routing_key;
    void *body;
    size_t len;
    bus_publish_cb cb;
    void *arg;
};

struct bus_outbox {
    struct bus_msg *queue, **queue_tail; /* not sent yet, in order */
    struct bus_msg *sent, **sent_tail;   /* sent, awaiting a confirm, by seq */
    size_t n_queue, n_sent;
    size_t limit;  /* n_queue + n_sent never exceeds it */
    uint64_t seq;  /* last sequence number used on the current channel */
};

void bus_outbox_init(struct bus_outbox *ob, size_t limit);
/* 0 or -ENOBUFS (full). Copies everything. */
int bus_outbox_push(struct bus_outbox *ob, const char *exchange,
                    const char *routing_key, const void *body, size_t len,
                    bus_publish_cb cb, void *arg);
/* The next message to send, or NULL. */
struct bus_msg *bus_outbox_peek(struct bus_outbox *ob);
/* The message from bus_outbox_peek went out: it gets the next sequence
 * number and waits for its confirm. */
void bus_outbox_sent(struct bus_outbox *ob);
/* A basic.ack (status 0) or basic.nack (status -EIO) for tag: completes
 * that message, or with multiple every one up to tag, calling their
 * callbacks. Returns how many were completed. */
size_t bus_outbox_confirm(struct bus_outbox *ob, uint64_t tag, bool multiple,
                          int status);
/* The channel is gone: unconfirmed messages go back to the front of the
 * queue (sent again, in order, on the next channel). */
void bus_outbox_requeue(struct bus_outbox *ob);
/* Completes every message with status (bus stopped or freed). */
size_t bus_outbox_fail_all(struct bus_outbox *ob, int status);
static inline size_t bus_outbox_count(const struct bus_outbox *ob)
{
    return ob->n_queue + ob->n_sent;
}

#endif
