/* vtpm-proxyd's logic: hands out vTPM UUIDs from vtpmmgr, one per
 * instance, keeps the durable records, and reconciles them with what
 * vtpmmgr holds.
 *
 * Every request becomes a job on the job thread (jobq): vtpmmgr takes one
 * command at a time, its device blocks, and a record must be durable
 * before the answer goes out. Requests for the same instance (or the same
 * vTPM) that arrive while one is in flight share its outcome, so retries
 * never make a second vTPM. Callbacks run on the loop's thread. */
#ifndef PROXYD_SERVICE_H
#define PROXYD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/pconfig.h"
#include "proxyd/store.h"

struct event_base;
struct service;

enum service_code {
    SERVICE_OK = 0,
    SERVICE_CREATED,     /* a new vTPM and record */
    SERVICE_NOT_FOUND,   /* no record */
    SERVICE_CONFLICT,    /* in use, or being deleted */
    SERVICE_UNAVAILABLE, /* device unavailable, group unknown, stopping */
    SERVICE_TIMEOUT,     /* vtpmmgr did not answer in time */
    SERVICE_BAD_GATEWAY, /* vtpmmgr refused the command or answered garbage */
    SERVICE_INTERNAL,    /* the record could not be written */
};

struct service_result {
    enum service_code code;
    char message[320];
    struct store_rec rec; /* create, delete: the record concerned */
};

typedef void (*service_cb)(const struct service_result *res, void *arg);

/* A UUID list in a reconcile report. */
struct service_uuids {
    size_t n;
    uint8_t (*v)[16];
};

struct service_report {
    enum service_code code;
    char message[320];
    char group[IDS_UUID_STR];
    uint32_t group_index;
    size_t in_group;                 /* vTPMs vtpmmgr lists for the group */
    size_t records;
    struct service_uuids orphans;    /* in the group, no record */
    struct service_uuids missing;    /* recorded, not in the group */
    struct service_uuids duplicated; /* listed more than once */
    struct service_uuids deleted;    /* orphans deleted (orphans: delete) */
    struct service_uuids recreated;  /* missing ones re-created */
    struct service_uuids finished;   /* interrupted deletes completed */
    struct service_uuids in_use;     /* could not be deleted: still open */
};

typedef void (*service_report_cb)(const struct service_report *rep, void *arg);

struct service_health {
    bool ok;
    const char *state;   /* starting, ok, unreachable, timeout, protocol_error, refused, stopping */
    const char *message; /* the last failure, or "" */
    bool group_known;
    uint32_t group_index;
    char group[IDS_UUID_STR];
    size_t records;
    size_t jobs;
    bool reconciled;     /* a reconcile has completed */
    size_t orphans, missing; /* as of the last reconcile */
};

/* Opens the store; no device I/O before service_start(). cfg is copied. */
int service_new(struct event_base *base, const struct pconfig *cfg,
                struct service **out);
/* Resolves the group and reconciles, retrying with backoff until it
 * succeeds once. */
void service_start(struct service *s);
/* Takes the new timeout, group and policies (the next job uses them);
 * the device path and state_dir are fixed for the process' life. */
void service_reconfigure(struct service *s, const struct pconfig *cfg);

void service_create(struct service *s, const uint8_t *instance,
                    const char *host, service_cb cb, void *arg);
/* The original proxy's GET /: a new vTPM on every call, recorded without
 * an instance (nothing ever releases it unless an operator deletes it). */
void service_create_legacy(struct service *s, service_cb cb, void *arg);
void service_delete(struct service *s, const uint8_t *uuid, service_cb cb,
                    void *arg);
/* cb may be NULL (SIGHUP): the outcome is logged either way. */
void service_reconcile(struct service *s, service_report_cb cb, void *arg);

/* Records that are not being deleted, oldest first; caller frees. */
struct store_rec *service_list(const struct service *s, size_t *n);
/* NULL when there is no record or it is being deleted. */
const struct store_rec *service_get(const struct service *s, const uint8_t *uuid);
void service_health(const struct service *s, struct service_health *h);

/* Refuses new work and calls done once every job has finished. */
void service_drain(struct service *s, void (*done)(void *arg), void *arg);
void service_free(struct service *s);

#endif
