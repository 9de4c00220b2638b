/* vtpm-proxyd's service internals, shared by its loop side (service.c)
 * and its job-thread side (service_work.c). Nothing else includes it. */
#ifndef PROXYD_SERVICE_PRIV_H
#define PROXYD_SERVICE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "proxyd/mgrproto.h"
#include "proxyd/service.h"

struct event;
struct jobq;
struct mgrdev;

enum job_kind {
    JOB_CREATE,
    JOB_LEGACY,
    JOB_DELETE,
    JOB_RECONCILE,
};

enum link_state {
    LINK_UNKNOWN = 0,
    LINK_OK,
    LINK_DOWN,
    LINK_TIMEOUT,
    LINK_GARBAGE,
};

/* The settings a job runs with, copied when it is submitted. */
struct env {
    bool has_group;
    uint8_t group[16];
    uint64_t timeout_ms;
    int orphans;
    int missing;
};

/* Job thread only. */
struct wside {
    struct mgrdev *dev;
    uint8_t buf[MGRPROTO_MAX_MSG];
    bool cached;           /* idx/uuid are valid for the cached setting */
    bool cached_has_group;
    uint8_t cached_for[16];
    uint32_t idx;
    uint8_t uuid[16];
};

struct waiter {
    service_cb cb;
    void *arg;
    struct waiter *next;
};

struct job {
    struct service *s;
    enum job_kind kind;
    struct env env;
    struct store_rec rec;
    struct waiter *waiters;     /* create, delete */
    struct job *next;           /* s->inflight */
    service_report_cb rcb;      /* reconcile */
    void *rarg;
    bool startup;               /* the start-up reconcile (retried) */

    /* Outcome, written on the job thread. */
    struct service_result res;
    bool rec_gone;              /* delete: the record file is gone */
    enum link_state link;
    bool refused;               /* failed on vtpmmgr's status 1 */
    bool group_ok;
    bool group_missing;         /* vtpmmgr answered: no such group */
    uint32_t group_idx;
    uint8_t group_uuid[16];
    struct service_report rep;
};

struct service {
    struct event_base *base;
    struct store *store;
    char *recdir;               /* immutable: read by jobs too */
    struct jobq *q;
    struct wside *w;
    struct env env;
    struct job *inflight;       /* create and delete jobs, for coalescing */

    enum link_state link;
    bool refused;
    char link_msg[320];
    bool group_known;
    uint32_t group_idx;
    uint8_t group_uuid[16];
    bool reconciled;
    size_t last_orphans, last_missing;

    bool started;               /* the start-up reconcile succeeded */
    struct event *retry;
    unsigned startup_failures; /* start-up reconciles failed in a row */

    bool stopping;
    bool drained_called;
    void (*drained)(void *arg);
    void *drained_arg;
};

/* Job thread (service_work.c): each runs one job from start to end. */
void service_work_create(void *arg);
void service_work_delete(void *arg);
void service_work_reconcile(void *arg);

#endif
