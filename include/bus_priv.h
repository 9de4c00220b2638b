/* The bus's pure bookkeeping, exposed for unit tests: the ack window
 * (which delivery tags may be acknowledged with basic.ack multiple) and
 * the publisher outbox (order, limit, confirms, requeue after a lost
 * connection). Nothing here touches the network. */
#ifndef VTPMD_BUS_PRIV_H
#define VTPMD_BUS_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

/* Delivery tags of one channel are consecutive from 1. The window holds
 * the tags from the lowest one not yet settled (base) to the last one
 * delivered (next - 1). A basic.ack with multiple=true acknowledges every
 * unacknowledged tag up to it, so it may only be sent for a tag whose
 * predecessors are all completed: the contiguous prefix [base, scan). */
enum bus_ack_state {
    BUS_ACK_PENDING = 0, /* with the consumer */
    BUS_ACK_WANTED,      /* consumer acked; basic.ack not sent yet */
    BUS_ACK_SETTLED,     /* basic.ack or basic.reject sent for it alone */
};

struct bus_ackwin {
    uint64_t base; /* every tag below is settled */
    uint64_t scan; /* every tag in [base, scan) is WANTED or SETTLED */
    uint64_t next; /* the next tag the broker will deliver */
    uint8_t *st;   /* ring: state of tag t at st[t & (cap - 1)] */
    size_t cap;    /* power of two >= next - base */
    size_t wanted; /* WANTED tags in [base, next) */
    size_t prefix_wanted; /* WANTED tags in [base, scan) */
    uint64_t prefix_last; /* highest WANTED tag in [base, scan); 0: none */
};

/* Sends one basic.ack. */
typedef void (*bus_ackwin_emit_fn)(uint64_t tag, bool multiple, void *arg);

void bus_ackwin_init(struct bus_ackwin *w);
/* A new channel: tags start again at 1. */
void bus_ackwin_reset(struct bus_ackwin *w);
void bus_ackwin_release(struct bus_ackwin *w);
/* The broker delivered tag (normally w->next). 0 or -EINVAL for a tag
 * already seen. */
int bus_ackwin_push(struct bus_ackwin *w, uint64_t tag);
/* The consumer finished tag: ack (WANTED) or reject (SETTLED; the caller
 * sends basic.reject itself). 0, or -ENOENT when tag is not pending. */
int bus_ackwin_complete(struct bus_ackwin *w, uint64_t tag, bool ack);
/* Sends what may be sent: one multiple ack for the contiguous prefix, and
 * with all also a single ack for every WANTED tag beyond a gap. Returns
 * the number of basic.ack frames emitted. */
size_t bus_ackwin_flush(struct bus_ackwin *w, bool all,
                        bus_ackwin_emit_fn emit, void *arg);
/* Tags with the consumer. */
size_t bus_ackwin_pending(const struct bus_ackwin *w);

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
