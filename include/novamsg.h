/* Nova's compute notifications → one normalized struct nova_event.
 *
 * Accepts the oslo.messaging 2.0 envelope ({"oslo.version": "2.0",
 * "oslo.message": "<JSON text>"}) and the bare v1 message, the legacy
 * (compute.instance.*, flat payload) and the versioned (instance.*,
 * nova_object payload) formats.
 *
 * Every compute host receives every host's notifications, so most inputs
 * are irrelevant and novamsg_decode() settles those cheaply: a tokenizer
 * (jsmn) over the envelope and the first bytes of the inner message, no
 * tree, no allocation. Only creates and deletes that may concern this host
 * are loaded in full with jansson. The cheap path never calls irrelevant a
 * message the full decoder calls relevant (fuzz/fuzz_novamsg_diff.c). */
#ifndef VTPMD_NOVAMSG_H
#define VTPMD_NOVAMSG_H

#include <stdbool.h>
#include <stddef.h>

#include "uuidutil.h"

enum nova_kind {
    NOVA_KIND_OTHER = 0,
    NOVA_KIND_CREATE_START,
    NOVA_KIND_CREATE_END,
    NOVA_KIND_CREATE_ERROR,
    NOVA_KIND_DELETE_START,
    NOVA_KIND_DELETE_END,
};

enum nova_format {
    NOVA_FORMAT_LEGACY = 0, /* compute.instance.*, flat payload */
    NOVA_FORMAT_VERSIONED,  /* instance.*, nova_object payload */
};

enum novamsg_class {
    NOVAMSG_RELEVANT = 0, /* a create or delete that concerns this host */
    NOVAMSG_IRRELEVANT,   /* another event, another host: ack and forget */
    NOVAMSG_MALFORMED,    /* undecodable: reject without requeue */
};

struct nova_kv {
    char *key;
    char *value; /* JSON strings as they are; numbers and booleans as JSON text */
};

/* A flat string map (flavor extra specs, image properties, metadata). */
struct nova_kvmap {
    size_t n;
    struct nova_kv *v;
};

struct nova_event {
    enum nova_kind kind;
    enum nova_format format;
    char instance_uuid[UUIDUTIL_BUFLEN]; /* validated, canonical lower case */
    /* The host the event concerns: the publisher's (compute.<host>,
     * nova-compute:<host>), or the payload's for nova-api publishers and
     * for legacy deletes (nova-api publishes those as compute.<api-host>).
     * Equal to this_host for a relevant event. */
    char *host;
    char *project_id;    /* tenant_id; NULL when absent or null */
    char *user_id;
    char *flavor;        /* flavor name */
    struct nova_kvmap flavor_extra_specs; /* versioned only */
    struct nova_kvmap image_properties;   /* legacy image_meta only */
    struct nova_kvmap metadata;           /* instance metadata */
    bool has_extra_specs;      /* the event carries extra specs */
    bool has_image_properties; /* the event carries image properties */
    bool has_metadata;
    char *instance_name; /* versioned instance_name (libvirt domain name) */
    char *request_id;    /* Nova's request id */
    char *message_id;
    char *timestamp;
    char *event_type;
    char *publisher_id;
    char *fault;         /* create.error: the error message, when given */
    char why[160];       /* holds *reason when it needs formatting */
};

/* Classifies one AMQP body. For NOVAMSG_RELEVANT, fills *ev (release it
 * with nova_event_clear()); otherwise *ev holds nothing to release, and
 * nova_event_clear() on it is harmless. *reason is always set: a short
 * static string, or ev->why (valid until ev is cleared or reused), for
 * the log line; it never holds control characters.
 * content_type: the AMQP property, NULL or "" when the publisher set none.
 * this_host: the configured host (exact match). max_size:
 * notifications.max_message_size, 0 for no limit. */
enum novamsg_class novamsg_decode(const void *body, size_t len,
                                  const char *content_type,
                                  const char *this_host, size_t max_size,
                                  struct nova_event *ev, const char **reason);

void nova_event_clear(struct nova_event *ev);

/* The value of key in m, or NULL. */
const char *nova_kvmap_get(const struct nova_kvmap *m, const char *key);

const char *nova_kind_name(enum nova_kind kind);     /* "create.start", ... */
const char *nova_format_name(enum nova_format format); /* "legacy", ... */
const char *novamsg_class_name(enum novamsg_class c);

#endif
