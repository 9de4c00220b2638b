/* vtpmmgr internals exposed for the unit tests. */
#ifndef VTPMD_VTPMMGR_PRIV_H
#define VTPMD_VTPMMGR_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "uuidutil.h"
#include "vtpmmgr.h"

enum vtpmmgr_op {
    VTPMMGR_OP_ACQUIRE = 0,
    VTPMMGR_OP_RELEASE,
};

/* Connections to the proxy at once; further requests wait their turn. */
#define VTPMMGR_MAX_INFLIGHT 32

/* Largest answer body read from the proxy; more is a permanent error. */
#define VTPMMGR_MAX_BODY (64 * 1024)
/* Longest piece of an answer quoted in an error message. */
#define VTPMMGR_SNIPPET_MAX 160

/* Judges one HTTP answer: status code and body. On OK of an acquire,
 * uuid_out receives the canonical UUID. On failure *error is a malloc'd
 * message quoting a sanitized snippet of the body. */
enum vtpmmgr_status vtpmmgr_parse_response(enum vtpmmgr_op op, int code,
                                           const char *body, size_t len,
                                           char uuid_out[UUIDUTIL_BUFLEN],
                                           char **error);

/* A printable, single-line, ASCII rendering of at most max bytes of an
 * untrusted body: control characters and runs of white space become one
 * space, other non-ASCII bytes '?', "..." marks a cut. malloc'd. */
char *vtpmmgr_sanitize(const char *body, size_t len, size_t max);

/* Delay before retry number attempt (1 = first retry): exponential from
 * VTPMMGR_BACKOFF_BASE_MS, capped at VTPMMGR_BACKOFF_MAX_MS, with "equal
 * jitter": uniformly in [d/2, d], rnd being a random 32-bit value. */
#define VTPMMGR_BACKOFF_BASE_MS 200
#define VTPMMGR_BACKOFF_MAX_MS 5000
uint64_t vtpmmgr_backoff_ms(unsigned attempt, uint32_t rnd);

/* The request targets the manager would use (for URL handling tests):
 * "/prefix/v1/vtpms" etc. NULL for the local provider and for release
 * with the legacy API (it has none). */
const char *vtpmmgr_target(const struct vtpmmgr *m, enum vtpmmgr_op op);

#endif
