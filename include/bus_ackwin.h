/* The bus's ack window: which delivery tags of the consume channel may
 * be acknowledged with one basic.ack multiple. Pure bookkeeping, no
 * network: src/bus.c feeds it deliveries and completions and sends the
 * acks it emits; tests/unit/test_bus.c drives it alone. */
#ifndef VTPMD_BUS_ACKWIN_H
#define VTPMD_BUS_ACKWIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
