/* vtpm-proxyd's REST API (the contract "vtpmmgr proxy API") on evhttp,
 * over HTTP or HTTPS (libevent's OpenSSL bufferevents):
 *
 *   POST   /v1/vtpms          {"instance_uuid", "host"} -> 201 {"uuid"}
 *   GET    /v1/vtpms          -> {"vtpms": [...]} (?host=, ?instance_uuid=)
 *   GET    /v1/vtpms/{uuid}   -> one record
 *   DELETE /v1/vtpms/{uuid}   -> 204, 404, 409 (in use)
 *   POST   /v1/reconcile      -> the reconcile report
 *   GET    /v1/health         -> 200 or 503
 *   GET    /                  -> 200 {"uuid"}: the original proxy's call
 *
 * Every input is checked (UUIDs, JSON types, body size); every error is
 * a JSON object {"error": {"code", "message"}} with a fitting status. */
#ifndef PROXYD_API_H
#define PROXYD_API_H

#include "proxyd/pconfig.h"
#include "proxyd/service.h"

struct api;
struct event_base;

/* Largest request body accepted (a create request is ~100 bytes). */
#define API_MAX_BODY 4096

/* Binds cfg->listen (and loads the TLS material). -errno, logged. */
int api_new(struct event_base *base, const struct pconfig *cfg,
            struct service *svc, struct api **out);
/* Reloads certificate, key and client CA from cfg's paths; on failure
 * the running context stays. 0 or -EINVAL (logged). */
int api_reload_tls(struct api *a, const struct pconfig *cfg);
/* New connection limits (reload). */
void api_set_limits(struct api *a, const struct pconfig *cfg);
/* Closes the listening socket; connections in progress go on. */
void api_stop_accepting(struct api *a);
void api_free(struct api *a);

#endif
