/* The per-instance state machine: turns Nova's create/delete
 * notifications for this host into provisioned (or removed) vTPMs.
 *
 * Events for one instance are handled one at a time in arrival order;
 * different instances proceed concurrently. A delivery is acknowledged
 * only when its outcome is durable: journaled and its status
 * notification confirmed by the broker. */
#ifndef VTPMD_ENGINE_H
#define VTPMD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "control.h"

struct event_base;
struct engine;
struct bus;
struct bus_delivery;
struct vtpmmgr;
struct virt;
struct journal;
struct policy;
struct config;
struct control_req;

struct engine_deps {
    struct bus *bus;
    struct vtpmmgr *vtpmmgr;
    struct virt *virt;
    struct journal *journal;
    /* POST /v1/reload: the daemon's reload; 0 or -EINVAL. */
    int (*reload)(void *arg);
    void *reload_arg;
    /* Optional: the start-up reconciliation is done (called once). */
    void (*reconciled)(void *arg);
};

/* cfg and policy are borrowed; engine_reconfigure swaps them. Loads the
 * journal's records. */
int engine_new(struct event_base *base, const struct engine_deps *deps,
               const struct config *cfg, const struct policy *policy,
               struct engine **out);
void engine_reconfigure(struct engine *e, const struct config *cfg,
                        const struct policy *policy);
/* New requests go to m (after a reload changed vtpmmgr.*). */
void engine_set_vtpmmgr(struct engine *e, struct vtpmmgr *m);
/* Graceful stop: work under way finishes, queued events are left for
 * redelivery. */
void engine_drain(struct engine *e);
/* After the bus has stopped, before it is freed: releases the deliveries
 * the engine holds (the broker redelivers them) and stops retries;
 * callbacks that arrive from then on (status
 * confirms failing with the connection) no longer schedule retries. */
void engine_shutdown(struct engine *e);
void engine_free(struct engine *e);

/* bus callback: classifies the delivery; acks irrelevant ones, rejects
 * malformed ones, hands relevant ones to their instance. */
void engine_deliver(struct bus_delivery *d, const void *body, size_t len,
                    const char *content_type, bool redelivered, void *arg);

/* Control API handler (a control_handler_fn). */
void engine_control(struct control_req *req, enum control_route route,
                    const char *param, void *arg);

/* True once the start-up reconciliation has run. */
bool engine_reconciled(const struct engine *e);

/* libvirt connection state and domain lifecycle events, from virt. */
void engine_libvirt_state(struct engine *e, bool up);
void engine_domain_event(struct engine *e, const char *domain_name, int event,
                         int detail);
/* The lifecycle events engine_domain_event acts on, as bits
 * 1u << virDomainEventType (for virt_callbacks.lifecycle_events). */
extern const unsigned engine_domain_events;

/* Number of instances with work in flight (for graceful stop). */
size_t engine_busy(const struct engine *e);

#endif
