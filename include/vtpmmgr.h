/* vTPM UUIDs from vtpmmgr, without blocking the event loop.
 *
 * Provider keylime-proxy talks to the REST proxy on the Keylime VM over
 * HTTP or HTTPS (libevent's evhttp client; TLS through libevent's OpenSSL
 * bufferevents with peer and hostname verification on by default):
 *   api v1:     POST <url>/v1/vtpms {"instance_uuid","host"} -> 201/200 {"uuid"}
 *               DELETE <url>/v1/vtpms/<uuid> -> 204, 404 = already gone
 *   api legacy: GET <url> -> 200 {"uuid"}; no release (the original proxy).
 * Transient failures (unreachable, timeout, 5xx, 408, 429) are retried
 * with exponential backoff and jitter for at most vtpmmgr.retry_for, each
 * attempt bounded by vtpmmgr.timeout; everything else fails at once.
 * Provider local hands out libuuid UUIDs (demo, tests, hosts without
 * vtpmmgr); its release is a no-op.
 *
 * Callbacks always run from the event loop, never inside the call that
 * started the request, so callers never re-enter themselves. At most 32
 * connections to the proxy are open at once; further requests wait in
 * order. Not thread-safe: call it from the loop's thread only. */
#ifndef VTPMD_VTPMMGR_H
#define VTPMD_VTPMMGR_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct config;
struct vtpmmgr;

enum vtpmmgr_status {
    VTPMMGR_OK = 0,
    /* Gave up after retry_for: proxy unreachable, 5xx, timeout. */
    VTPMMGR_ERR_TRANSIENT,
    /* 4xx other than the idempotent cases, bad body, bad UUID, TLS
     * verification failure: retrying the same request cannot help. */
    VTPMMGR_ERR_PERMANENT,
};

/* vtpm_uuid: canonical, set on OK of an acquire (the released UUID on OK
 * of a release); error: a one-line, printable, human-readable reason on
 * failure (valid UTF-8, safe for logs and JSON), NULL on OK. Both are
 * valid during the call only. */
typedef void (*vtpmmgr_cb)(enum vtpmmgr_status st, const char *vtpm_uuid,
                           const char *error, void *arg);

/* Reads cfg->vtpmmgr.* and keeps copies (cfg may be freed afterwards).
 * Loads the TLS material at once so a bad CA or key is reported at
 * start-up. 0, or -EINVAL (reason logged). */
int vtpmmgr_new(struct event_base *base, const struct config *cfg,
                struct vtpmmgr **out);

/* Cancels every pending request: their callbacks are NOT called. */
void vtpmmgr_free(struct vtpmmgr *m);

/* Gets a vTPM UUID for the instance (any case; canonicalized). host is
 * the compute host sent to the proxy. 0 when the request is under way (cb
 * will be called exactly once, unless vtpmmgr_free comes first); -EINVAL
 * for an invalid instance UUID or host (cb is not called). */
int vtpmmgr_acquire(struct vtpmmgr *m, const char *instance_uuid,
                    const char *host, vtpmmgr_cb cb, void *arg);

/* Releases a vTPM UUID. A 404 from the proxy is OK (already gone); the
 * legacy API and the local provider have nothing to release: OK.
 * instance_uuid (may be NULL) only labels log lines. Returns as
 * vtpmmgr_acquire. */
int vtpmmgr_release(struct vtpmmgr *m, const char *vtpm_uuid,
                    const char *instance_uuid, vtpmmgr_cb cb, void *arg);

struct vtpmmgr_stats {
    uint64_t requests; /* acquire/release calls accepted */
    uint64_t retries;  /* extra HTTP attempts after transient failures */
    uint64_t failures; /* requests that ended in an error */
};

void vtpmmgr_get_stats(const struct vtpmmgr *m, struct vtpmmgr_stats *out);

/* Whether UUIDs come from provider local (at once, on the next loop turn)
 * rather than from a proxy over the network. */
bool vtpmmgr_is_local(const struct vtpmmgr *m);
/* Requests accepted and not yet called back. */
unsigned vtpmmgr_pending(const struct vtpmmgr *m);

const char *vtpmmgr_status_name(enum vtpmmgr_status st);

#endif
