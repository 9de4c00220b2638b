/* Engine internals shared by src/engine.c (the state machine, the only
 * writer of an instance's fields), src/engine_job.c (the libvirt
 * workers' jobs), src/engine_reconcile.c (reconciliation: plans, and asks
 * engine.c) and src/engine_ctl.c (control API, metrics: reads), and
 * reachable by tests. */
#ifndef VTPMD_ENGINE_PRIV_H
#define VTPMD_ENGINE_PRIV_H

#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "engine.h"
#include "hmap.h"
#include "journal.h"
#include "novamsg.h"
#include "uuidutil.h"
#include "virt.h"
#include "domxml.h"

enum inst_state {
    INST_NONE = 0,      /* nothing held (not selected yet) */
    INST_PROVISIONING,
    INST_READY,
    INST_FAILED,
    INST_DELETING,
    INST_DELETE_FAILED,
    INST_DELETED,       /* tombstone */
};
#define ENGINE_STATES (INST_DELETED + 1) /* arrays indexed by enum inst_state */

enum inst_op {
    OP_IDLE = 0,
    OP_CREATE,
    OP_ROLLBACK,
    OP_TEARDOWN,
    OP_REPAIR,   /* reconciliation or a lifecycle event restarts the domain */
    OP_CLEANUP,  /* removing leftovers of a failed or deleted instance */
    OP_RESEND,   /* a finished outcome's status sent again, until confirmed */
};

enum inst_step {
    STEP_NONE = 0,
    STEP_ACQUIRE,
    STEP_BUILD,
    STEP_COMMIT,
    STEP_REMOVE,
    STEP_RELEASE,
};
#define ENGINE_STEPS (STEP_RELEASE + 1) /* arrays indexed by enum inst_step */

struct inst_job {
    struct inst_job *next;
    struct nova_event ev;
    struct bus_delivery *d;
    bool redelivered;
};

struct inst {
    struct engine *e;
    char uuid[UUIDUTIL_BUFLEN];
    enum inst_state state;
    enum inst_op op;
    enum inst_step step;

    char vtpm_uuid[UUIDUTIL_BUFLEN];
    char *domain_name;
    char *image_path;
    char *rule;
    char *instance_name;
    char *request_id;
    char *error;
    char *error_code;
    char *kernel;
    uint64_t image_size;
    uint64_t memory;
    time_t updated;

    struct inst_job *queue, **queue_tail;
    struct bus_delivery **acks;
    size_t nacks;
    int outstanding;       /* journal write + status confirm of the commit */
    bool commit_failed;
    bool start_pending;    /* vtpm.create.start not published yet */
    bool torn_down;        /* DELETED by a teardown (vtpm.delete.end sent) */
    bool reconcile_after;  /* skipped by reconciliation during OP_RESEND */
    struct image_pool *sync_pool; /* with sync_ticket: the image's name */
    uint64_t sync_ticket;         /* is durable once image_pool_sync'd */
    struct timespec started;
    uint64_t retry_until_ms;
    unsigned attempt;
    struct event *timer;   /* retry backoff */
    struct event *jtimer;  /* journal write retry */
    time_t restart_window; /* start of the current 10-minute window */
    int restarts;          /* restarts in that window */
};

struct publish_ctx;

struct engine_waiter {
    struct engine_waiter *prev, *next;
    struct engine *e;
    struct control_req *req;
    char uuid[UUIDUTIL_BUFLEN];
    struct event *timeout;
};

#define ENGINE_LAT_BUCKETS 12 /* provisioning latency histogram */

struct engine_metrics {
    uint64_t relevant, irrelevant, malformed;
    uint64_t provisions_ok, provisions_failed, teardowns_ok, teardowns_failed;
    uint64_t denied, duplicates, tombstoned;
    uint64_t retries, status_retries, journal_retries;
    uint64_t images_spare, images_made; /* creates' images by source */
    uint64_t step_failures[ENGINE_STEPS];
    /* provisioning latency histogram (seconds), cumulative buckets */
    uint64_t lat_buckets[ENGINE_LAT_BUCKETS];
    uint64_t lat_count;
    double lat_sum;
};

struct engine {
    struct event_base *base;
    struct engine_deps deps;
    const struct config *cfg;
    const struct policy *policy;
    struct hmap *insts;   /* uuid -> struct inst* */
    size_t busy; /* instances whose op is not OP_IDLE (inst_set_op) */
    bool libvirt_up;
    /* Whether libvirt keeps <vtpm> (engine_vtpm_probe): -1 not known yet
     * (or the probe failed), 0 no, 1 yes; vtpm_why says why not. */
    int libvirt_vtpm;
    char *vtpm_why;
    unsigned vtpm_probe_gen; /* a newer connection outdates a probe */
    bool stopping; /* engine_shutdown: no more retries */
    bool draining; /* engine_drain: queued events wait for the next vtpmd */
    struct publish_ctx *publishing;
    struct engine_waiter *waiters;
    struct event *waiter_tick;
    struct event *prune_timer;
    struct engine_metrics m;
    size_t by_state[ENGINE_STATES]; /* instances by state (inst_set_state) */
    struct image_pool *pool; /* spare images of image.dir/image.size */
    /* reconciliation */
    bool reconciling, reconcile_again, reconciled;
    struct event *reconcile_timer; /* every reconcile_every_ms */
    uint64_t reconcile_every_ms;
    size_t orphan_domains, orphan_images;
    uint64_t reconciles, repairs, cleanups;
};

extern const double engine_lat_bounds[ENGINE_LAT_BUCKETS];

/* Work for the libvirt worker (src/engine_job.c): what it needs, copied
 * from the instance and the configuration (both may change meanwhile).
 * A create's build, a repair's (repair: never a new image), or a removal. */
struct engine_job {
    struct inst *in;
    char uuid[UUIDUTIL_BUFLEN];
    char vtpm_uuid[UUIDUTIL_BUFLEN];
    char *image_dir;
    uint64_t image_size;
    struct domxml_params p;
    char *name;
    char *kernel;
    char *instance_name;
    char *rule;
    char *host;
    char *vtpmmgr_domain;
    char *image_path; /* result */
    struct image_pool *pool; /* a reference, for a create */
    uint64_t sync_ticket;    /* result: image_pool_sync before the journal */
    bool from_spare;         /* result: the image was a spare */
    bool repair; /* re-define/start only: never recreate a lost image */
    bool require_vtpm; /* libvirt.require_vtpm: VIRT_REQUIRE_VTPM */
};

struct engine_job *engine_job_new(struct inst *in);
void engine_job_free(struct engine_job *j);
/* virt_work_fn: image and stub domain; domain and image removed. */
int engine_job_build(virConnectPtr conn, void *arg, char **err);
int engine_job_remove(virConnectPtr conn, void *arg, char **err);

/* What reconciliation asks of the engine (src/engine.c) for an idle
 * instance (engine_inst_idle): */
bool engine_inst_idle(const struct inst *in);
/* define and start a ready instance's stub domain again */
void engine_inst_repair(struct inst *in);
/* the same after a lifecycle event, within reconcile.restart_limit;
 * what: "stopped", "crashed", ... for the log */
void engine_inst_restart(struct inst *in, const char *what);
/* remove the leftovers (domain_name: the domain libvirt has, or NULL) */
void engine_inst_cleanup(struct inst *in, const char *domain_name);
/* tear down: remove, release, tombstone */
void engine_inst_teardown(struct inst *in);
/* an instance under OP_RESEND: reconcile again once it is over */
void engine_inst_reconcile_later(struct inst *in);

/* src/engine_vtpmcheck.c: asks libvirt whether it keeps <vtpm> (at
 * every connection), for health and the log. */
void engine_vtpm_probe(struct engine *e);

/* src/engine_reconcile.c */
void engine_reconcile(struct engine *e, const char *why);
void engine_reconcile_free(struct engine *e);
/* The periodic pass at reconcile.interval (none for 0): started with
 * libvirt's first state or a reload, set again when a reload changes it. */
void engine_reconcile_timer_update(struct engine *e);

/* The API's name of a state (DELETE_FAILED is "failed"); the key in logs
 * and metrics (one for each state); a step's name. */
const char *engine_inst_state_name(enum inst_state s);
const char *engine_inst_state_key(enum inst_state s);
const char *engine_step_name(enum inst_step s);
void engine_waiters_check(struct engine *e);

#endif
