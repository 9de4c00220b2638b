/* novamsg internals shared by src/novamsg.c (the full decoder, jansson)
 * and src/novamsg_scan.c (the cheap filter, jsmn), and reached by the unit
 * tests, the fuzz targets and the benchmark. Not for other modules. */
#ifndef VTPMD_NOVAMSG_PRIV_H
#define VTPMD_NOVAMSG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "novamsg.h"

/* Deeper JSON is malformed: Nova's deepest payload (versioned flavor extra
 * specs) nests 6 levels inside the message. */
#define NOVAMSG_MAX_DEPTH 32

/* The cheap filter's verdicts. */
enum novamsg_fast {
    NOVAMSG_FAST_IRRELEVANT = 0, /* surely irrelevant; *reason says why */
    NOVAMSG_FAST_UNDECIDED,      /* maybe relevant, or needs the full decoder */
};

/* Looks at as little of body as it can (the envelope and the first bytes
 * of the inner message for most messages; the whole inner message when the
 * payload's host decides) without allocating. Never IRRELEVANT for a body
 * that novamsg_decode_full() calls RELEVANT. */
enum novamsg_fast novamsg_fast(const char *body, size_t len,
                               const char *this_host, const char **reason);

/* The full decoder alone: novamsg_decode() without the cheap filter. */
enum novamsg_class novamsg_decode_full(const void *body, size_t len,
                                       const char *content_type,
                                       const char *this_host, size_t max_size,
                                       struct nova_event *ev,
                                       const char **reason);

/* Event type → kind and format (by its prefix: compute.instance. is
 * legacy, instance. versioned). */
enum nova_kind novamsg_kind_of(const char *event_type, size_t len,
                               enum nova_format *format);

enum novamsg_pub {
    NOVAMSG_PUB_OTHER = 0,   /* anything else, or no host part */
    NOVAMSG_PUB_COMPUTE,     /* compute.<host> (legacy; also nova-api's legacy) */
    NOVAMSG_PUB_NOVA_COMPUTE, /* nova-compute:<host> */
    NOVAMSG_PUB_NOVA_API,    /* nova-api:<host> */
};

/* Splits a publisher_id; host and host_len name the host part. */
enum novamsg_pub novamsg_publisher(const char *pub, size_t len,
                                   const char **host, size_t *host_len);

/* Where the host an event concerns comes from. */
enum novamsg_hostsrc {
    NOVAMSG_HOST_PUBLISHER = 0,       /* the publisher's host */
    NOVAMSG_HOST_PAYLOAD,             /* the payload's; null: no host */
    NOVAMSG_HOST_PAYLOAD_OR_PUBLISHER, /* the payload's; null: the publisher's */
};

enum novamsg_hostsrc novamsg_host_source(enum nova_kind kind,
                                         enum novamsg_pub pub);

/* A flat envelope: a JSON object whose values are all strings, checked as
 * strictly as jansson checks it (UTF-8, escapes, duplicate keys). The
 * spans point into the body, still escaped. */
struct novamsg_envelope {
    const char *message; /* oslo.message's value, NULL if absent */
    size_t message_len;
    const char *version; /* oslo.version's value, NULL if absent */
    size_t version_len;
};

/* 1: body is a flat object, *env filled. 0: it is something else (not an
 * object of strings, an escaped key, invalid JSON...): let jansson judge. */
int novamsg_envelope_scan(const char *body, size_t len,
                          struct novamsg_envelope *env);

/* Decodes the contents of a JSON string that novamsg_envelope_scan()
 * accepted into out (at least len + 1 bytes), NUL-terminated. 0, or
 * -EINVAL for what jansson refuses there (\u0000, unpaired surrogates),
 * which the scanner has already sent to jansson. */
int novamsg_json_unescape(const char *s, size_t len, char *out,
                          size_t *out_len);

#endif
