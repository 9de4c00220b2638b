/* vtpmd's own notifications (DESIGN "Contract: status notifications"):
 * an oslo.messaging 2.0 envelope around {message_id, _unique_id,
 * publisher_id "vtpmd:<host>", event_type, priority, payload, timestamp},
 * so that any oslo.messaging notification listener on
 * Target(exchange=status.exchange, topic=status.topic) receives them. */
#ifndef VTPMD_STATUS_H
#define VTPMD_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"

struct config;

/* What vtpmd says about one instance. NULL strings become JSON null. */
struct status_payload {
    const char *instance_uuid; /* required, a UUID */
    const char *host;          /* NULL: the configured host */
    const char *vtpm_uuid;
    const char *vtpm_domain;
    const char *image_path;
    const char *rule;
    const char *state;         /* provisioning, ready, failed, deleting, deleted */
    int64_t duration_ms;       /* < 0: unknown (null) */
    const char *request_id;    /* Nova's, when known */
    const char *error_code;    /* *.error events: payload.error = {code, message} */
    const char *error_message;
};

/* The contract's event types. */
#define STATUS_CREATE_START "vtpm.create.start"
#define STATUS_CREATE_END "vtpm.create.end"
#define STATUS_CREATE_ERROR "vtpm.create.error"
#define STATUS_DELETE_START "vtpm.delete.start"
#define STATUS_DELETE_END "vtpm.delete.end"
#define STATUS_DELETE_ERROR "vtpm.delete.error"
/* A stub domain of a live instance was found stopped, crashed or missing
 * and was started again (or could not be). */
#define STATUS_DOMAIN_RESTARTED "vtpm.domain.restarted"
#define STATUS_DOMAIN_ERROR "vtpm.domain.error"

/* Builds one notification: body (NUL-terminated JSON, *len bytes) and
 * its routing key "<status.topic>.info" or ".error" (priority ERROR for
 * the *.error event types). Fresh message_id (uuid4) and _unique_id
 * (hex) every call; timestamp now, UTC, "%Y-%m-%d %H:%M:%S.%f".
 * 0, or -EINVAL (unknown event type, instance_uuid not a UUID, a string
 * that is not UTF-8). Outputs are written only on success. */
int status_build(const struct config *cfg, const char *event_type,
                 const struct status_payload *p, char **body, size_t *len,
                 char **routing_key);

/* status_build + bus_publish to status.exchange. Returns what they do;
 * cb is called (later) only when it returns 0. */
int status_publish(struct bus *b, const struct config *cfg, const char *event_type,
                   const struct status_payload *p, bus_publish_cb cb, void *arg);

#endif
