/* The AMQP bus: librabbitmq-c driven by the daemon's libevent loop.
 *
 * One connection (amqp.urls tried in order, exponential backoff with
 * jitter), two channels: channel 1 consumes vtpmd's own durable queue
 * (notifications.queue) with manual acks, channel 2 publishes with
 * publisher confirms. The topology is declared again after every
 * reconnect. See docs/performance.md ("bus") for what blocks and why.
 *
 * Callbacks run on the loop. They may call bus_ack, bus_reject,
 * bus_publish, bus_stop, bus_get_stats and bus_caught_up, never bus_free. */
#ifndef VTPMD_BUS_H
#define VTPMD_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct bus_delivery; /* handle of one delivery, owned by the consumer */
struct config;
struct event_base;

struct bus_callbacks {
    /* body is valid only during the call unless copied. The consumer must
     * eventually call bus_ack or bus_reject with d, possibly much later
     * (after the work is durable). Bodies over
     * notifications.max_message_size never get here: the bus rejects them. */
    void (*deliver)(struct bus_delivery *d, const void *body, size_t len,
                    const char *content_type, bool redelivered, void *arg);
    /* Optional: the bus became ready (consuming and able to publish) or
     * stopped being so. */
    void (*state_changed)(bool ready, void *arg);
};

/* Copies what it needs from cfg (cfg may be freed afterwards). 0 or
 * -EINVAL (an unparsable amqp URL; config validation normally catches it). */
int bus_new(struct event_base *base, const struct config *cfg,
            const struct bus_callbacks *cb, void *arg, struct bus **out);
/* Starts connecting; never blocks the loop for long (see the header). */
int bus_start(struct bus *b);
/* Applies a reloaded configuration: prefetch with basic.qos, limits at
 * once; a change of broker, TLS, heartbeat or topology reconnects. */
void bus_reconfigure(struct bus *b, const struct config *cfg);

/* Acknowledge: irrelevant deliveries are acked in batches (basic.ack with
 * multiple, only over the contiguous completed prefix of delivery tags,
 * bounded in count and time). Frees d. An ack for a delivery of a
 * connection that has since been lost is dropped: the broker redelivers. */
void bus_ack(struct bus *b, struct bus_delivery *d);
/* Reject without requeue: the broker dead-letters it to
 * notifications.dead_letter_exchange when configured. Frees d. */
void bus_reject(struct bus *b, struct bus_delivery *d);
/* The broker's delivery tag and connection number, for log lines. */
uint64_t bus_delivery_tag(const struct bus_delivery *d);

/* status: 0 confirmed by the broker (ack), -EIO nacked, -ECONNRESET lost
 * before a confirm (the bus was stopped or freed first; a connection lost
 * while running only delays it: the message is sent again after the
 * reconnect, so a consumer may see it twice). */
typedef void (*bus_publish_cb)(int status, void *arg);
/* Queues a persistent application/json message (delivery_mode 2) in the
 * outbox; messages go out in order as soon as the publishing channel is
 * ready, again after a reconnect. Copies exchange, routing_key and body.
 * Returns 0 (cb will be called exactly once), -ENOBUFS when the outbox
 * holds status.outbox_limit messages, -ESHUTDOWN after bus_stop (cb is
 * then not called). */
int bus_publish(struct bus *b, const char *exchange, const char *routing_key,
                const void *body, size_t len, bus_publish_cb cb, void *arg);

/* Graceful stop: cancel the consumer, send pending acks, wait (at most
 * amqp.connect_timeout) for outstanding publisher confirms, close the
 * connection; then call stopped (from the loop, never from inside
 * bus_stop). Unconfirmed messages get -ECONNRESET. */
void bus_stop(struct bus *b, void (*stopped)(void *arg), void *arg);
/* Immediate teardown; callbacks of unconfirmed messages get -ECONNRESET.
 * Release every bus_delivery first (bus_ack after bus_stop is fine). */
void bus_free(struct bus *b);

struct bus_stats {
    bool connected; /* logged in, topology declared */
    bool consuming; /* basic.consume-ok received */
    uint64_t delivered, acked, rejected; /* rejected includes oversized */
    uint64_t published, confirmed, nacked;
    uint64_t reconnects; /* connections lost or refused after the first */
    size_t in_flight; /* handed to the consumer, not yet acked/rejected */
    size_t ack_pending; /* acked by the consumer, ack not yet sent */
    size_t outbox; /* queued or sent but not yet confirmed */
    const char *state; /* name of the connection state */
    const char *url; /* the broker in use, without password; NULL */
};
void bus_get_stats(const struct bus *b, struct bus_stats *out);

/* "Caught up": ready and consuming, no delivery in flight, and the queue
 * reported empty by a passive queue.declare whose answer was followed by
 * a second round trip on the consuming channel (so that every message the
 * broker had already dispatched has arrived). Cached: returns the verdict
 * of the last probe when it is fresh (< 250 ms), else false, and starts a
 * probe (at most one every 100 ms). Never blocks. */
bool bus_caught_up(struct bus *b);
/* Asynchronous form: cb gets the verdict of a probe that starts after
 * this call (false at once, from the loop, when not ready). */
void bus_probe(struct bus *b, void (*cb)(bool caught_up, void *arg), void *arg);

#endif
