/* The per-instance state machine. See include/engine.h.
 *
 * create:   ACQUIRE (vtpmmgr) -> BUILD (worker: image, domain define+start)
 *           -> COMMIT (journal READY || status vtpm.create.end) -> ack
 * rollback: REMOVE (worker: domain, image) -> RELEASE -> COMMIT (FAILED
 *           || vtpm.create.error) -> ack
 * teardown: REMOVE -> RELEASE -> COMMIT (tombstone || vtpm.delete.end) -> ack
 *
 * Every step is idempotent (the v1 proxy returns the same UUID for the
 * same instance; image and domain are named after the instance), so no
 * intent is journaled before the work: a crash leaves the delivery
 * unacked and its redelivery redoes only what is missing.
 *
 * This file is the only writer of an instance's op, state and step
 * (inst_set_op, inst_set_state, inst_set_step keep the counters derived
 * from them); src/engine_reconcile.c plans and asks it to repair, clean
 * up or tear down; src/engine_job.c is the work of the libvirt workers.
 * The table of transitions, each with its test: tests/unit/test_engine.c. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "backoff.h"
#include "bus.h"
#include "vconfig.h"
#include "domxml.h"
#include "engine_priv.h"
#include "image.h"
#include "log.h"
#include "policy.h"
#include "status.h"
#include "uuidutil.h"
#include "virt.h"
#include "vtime.h"
#include "vtpmmgr.h"
#include "xalloc.h"

#define TOMBSTONE_TTL (24 * 3600)
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define RESTART_WINDOW_S 600

const double engine_lat_bounds[ENGINE_LAT_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0};

static void inst_step(struct inst *in);
static void inst_commit(struct inst *in);
static void inst_kick(struct inst *in);

/* Names in logs and metrics. */
static const char *const inst_state_keys[] = {
    [INST_NONE] = "none",
    [INST_PROVISIONING] = "provisioning",
    [INST_READY] = "ready",
    [INST_FAILED] = "failed",
    [INST_DELETING] = "deleting",
    [INST_DELETE_FAILED] = "delete_failed",
    [INST_DELETED] = "deleted",
};

const char *engine_inst_state_key(enum inst_state s)
{
    return inst_state_keys[s];
}

/* The API's and status notifications' name: a teardown that gave up is
 * "failed" there too. */
const char *engine_inst_state_name(enum inst_state s)
{
    return s == INST_DELETE_FAILED ? "failed" : inst_state_keys[s];
}

static const char *const inst_op_names[] = {
    [OP_IDLE] = "idle",         [OP_CREATE] = "create", [OP_ROLLBACK] = "rollback",
    [OP_TEARDOWN] = "teardown", [OP_REPAIR] = "repair", [OP_CLEANUP] = "cleanup",
    [OP_RESEND] = "resend",
};

static const char *const inst_step_names[] = {
    [STEP_NONE] = "none",     [STEP_ACQUIRE] = "acquire", [STEP_BUILD] = "build",
    [STEP_COMMIT] = "commit", [STEP_REMOVE] = "remove",   [STEP_RELEASE] = "release",
};

const char *engine_step_name(enum inst_step s)
{
    return inst_step_names[s];
}

/* ---- transitions: the only writers of op, state and step ------------ */

/* e->by_state counts the instances in each state (metrics). */
static void inst_set_state(struct inst *in, enum inst_state s)
{
    if (in->state == s)
        return;
    log_debug("instance state instance=%s from=%s to=%s", in->uuid,
              inst_state_keys[in->state], inst_state_keys[s]);
    in->e->by_state[in->state]--;
    in->e->by_state[s]++;
    in->state = s;
}

/* e->busy counts the instances with work under way (op not IDLE). */
static void inst_set_op(struct inst *in, enum inst_op op)
{
    if (in->op == op)
        return;
    log_debug("instance op instance=%s from=%s to=%s", in->uuid, inst_op_names[in->op],
              inst_op_names[op]);
    if (in->op == OP_IDLE)
        in->e->busy++;
    else if (op == OP_IDLE)
        in->e->busy--;
    in->op = op;
}

/* A new step starts with no failed attempt. */
static void inst_set_step(struct inst *in, enum inst_step step)
{
    if (in->step != step)
        log_debug("instance step instance=%s op=%s from=%s to=%s", in->uuid,
                  inst_op_names[in->op], inst_step_names[in->step], inst_step_names[step]);
    in->step = step;
    in->attempt = 0;
}

/* Nothing under way and nothing queued: its own events decide nothing. */
bool engine_inst_idle(const struct inst *in)
{
    return in->op == OP_IDLE && in->queue == NULL;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? xstrdup(src) : NULL;
}

/* ---- instances --------------------------------------------------- */

static void inst_free(void *p)
{
    struct inst *in = p;
    struct inst_job *j, *next;

    if (in == NULL)
        return;
    for (j = in->queue; j; j = next) {
        next = j->next;
        nova_event_clear(&j->ev);
        free(j); /* its delivery dies with the bus */
    }
    if (in->timer)
        event_free(in->timer);
    if (in->jtimer)
        event_free(in->jtimer);
    image_pool_unref(in->sync_pool);
    free(in->acks);
    free(in->domain_name);
    free(in->image_path);
    free(in->rule);
    free(in->instance_name);
    free(in->request_id);
    free(in->error);
    free(in->error_code);
    free(in->kernel);
    free(in);
}

static struct inst *inst_get(struct engine *e, const char *uuid, bool create)
{
    struct inst *in = hmap_get(e->insts, uuid);

    if (in || !create)
        return in;
    in = xcalloc(1, sizeof(*in));
    in->e = e;
    memcpy(in->uuid, uuid, UUIDUTIL_BUFLEN);
    in->queue_tail = &in->queue;
    hmap_put(e->insts, uuid, in);
    e->by_state[INST_NONE]++;
    return in;
}

static void inst_drop(struct engine *e, const char *uuid)
{
    struct inst *in = hmap_del(e->insts, uuid);

    e->by_state[in->state]--;
    inst_free(in);
}

/* An instance we hold nothing for and that has nothing queued goes. */
static void inst_maybe_drop(struct inst *in)
{
    if (in->state == INST_NONE && engine_inst_idle(in) && in->nacks == 0)
        inst_drop(in->e, in->uuid);
}

static void inst_ack_all(struct inst *in)
{
    for (size_t i = 0; i < in->nacks; i++)
        bus_ack(in->e->deps.bus, in->acks[i]);
    in->nacks = 0;
}

static void inst_hold_ack(struct inst *in, struct bus_delivery *d)
{
    in->acks = xreallocarray(in->acks, in->nacks + 1, sizeof(*in->acks));
    in->acks[in->nacks++] = d;
}

static void inst_set_error(struct inst *in, const char *code, const char *msg)
{
    set_str(&in->error_code, code);
    set_str(&in->error, msg);
}

/* ---- status ------------------------------------------------------ */

/* A status notification in flight: a snapshot of the payload, so that it
 * can be sent again after a nack or a lost connection. */
struct publish_ctx {
    struct publish_ctx *prev, *next; /* engine's list of live ones */
    struct event *timer;             /* retry backoff */
    struct inst *in; /* counts toward in's commit; NULL otherwise */
    struct bus_delivery *ack; /* acked once confirmed (a republished outcome) */
    struct inst *resume;      /* OP_RESEND: its next events wait for the confirm */
    struct engine *e;
    char *event_type;
    char *strs[9];
    struct status_payload p;
    unsigned attempt;
};

static void publish_send(struct publish_ctx *p);

/* The end of OP_RESEND: the instance's queued events go on. kick is
 * false when called from within inst_kick (which goes on by itself).
 * A reconciliation that passed the instance by meanwhile (a resend does
 * nothing to its domain, which a restart may have lost) runs again. */
static void inst_resume(struct inst *in, bool kick)
{
    struct engine *e = in->e;
    bool again = in->reconcile_after;

    inst_set_op(in, OP_IDLE);
    in->reconcile_after = false;
    if (kick) {
        engine_waiters_check(e);
        inst_kick(in);
    }
    if (again)
        engine_reconcile(e, "after a resent status");
}

static void publish_free(struct publish_ctx *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->e->publishing = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->timer)
        event_free(p->timer);
    for (size_t i = 0; i < sizeof(p->strs) / sizeof(p->strs[0]); i++)
        free(p->strs[i]);
    free(p->event_type);
    free(p);
}

static void publish_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    publish_send(arg);
}

static void publish_done(int status, void *arg)
{
    struct publish_ctx *p = arg;
    struct inst *in = p->in;
    struct inst *resume = p->resume;

    if (status != 0 && !p->e->stopping) {
        /* Nacked, lost with the connection or outbox full: send again. A
         * duplicate is harmless, a lost status is not. */
        struct timeval tv = vtime_tv_ms(backoff_ms(RETRY_MIN_MS, RETRY_MAX_MS, p->attempt));

        p->attempt++;
        p->e->m.status_retries++;
        log_warn("status notification not confirmed, retrying event=%s instance=%s error=%s",
                 p->event_type, p->p.instance_uuid, strerror(-status));
        if (p->timer == NULL)
            p->timer = evtimer_new(p->e->base, publish_retry_cb, p);
        evtimer_add(p->timer, &tv);
        return;
    }
    if (p->ack) /* confirmed; or stopping: dropped, the broker redelivers */
        bus_ack(p->e->deps.bus, steal_ptr(p->ack));
    publish_free(p);
    if (in && status == 0 && --in->outstanding == 0)
        inst_commit(in);
    if (resume && status == 0)
        inst_resume(resume, true);
}

static void publish_send(struct publish_ctx *p)
{
    int ret = status_publish(p->e->deps.bus, p->e->cfg, p->event_type, &p->p,
                             publish_done, p);

    if (ret == -ENOBUFS) {
        publish_done(ret, p);
    } else if (ret < 0) {
        /* Stopping, or a payload the status module refuses: nothing a
         * retry can fix. The delivery stays unacked (stopping) or the
         * commit goes on without this status. */
        struct inst *resume = p->resume;
        /* First attempt: called from inst_republish, within inst_kick. */
        bool kick = p->attempt > 0;

        log_error("status notification not sent event=%s instance=%s error=%s",
                  p->event_type, p->p.instance_uuid, strerror(-ret));
        if (p->in && !p->e->stopping && --p->in->outstanding == 0)
            inst_commit(p->in);
        if (p->ack)
            bus_ack(p->e->deps.bus, steal_ptr(p->ack));
        publish_free(p);
        if (resume && !resume->e->stopping)
            inst_resume(resume, kick);
    }
}

static const char *keep(struct publish_ctx *p, size_t i, const char *s)
{
    p->strs[i] = s && *s ? xstrdup(s) : NULL;
    return p->strs[i];
}

/* Publishes a status notification about in; with commit, it counts
 * toward the instance's commit (the ack waits for its confirm); with ack
 * (a resend, OP_RESEND), that delivery is acked and the instance resumes
 * once the broker confirms it. */
static void inst_publish_ack(struct inst *in, const char *event_type, bool commit,
                             struct bus_delivery *ack)
{
    struct publish_ctx *p = xcalloc(1, sizeof(*p));
    double ms = vtime_since_ms(&in->started);

    p->e = in->e;
    p->next = in->e->publishing;
    if (p->next)
        p->next->prev = p;
    in->e->publishing = p;
    p->in = commit ? in : NULL;
    p->resume = ack ? in : NULL;
    p->ack = ack;
    p->event_type = xstrdup(event_type);
    p->p.instance_uuid = keep(p, 0, in->uuid);
    p->p.host = keep(p, 1, in->e->cfg->host);
    p->p.vtpm_uuid = keep(p, 2, in->vtpm_uuid);
    p->p.vtpm_domain = keep(p, 3, in->domain_name);
    p->p.image_path = keep(p, 4, in->image_path);
    p->p.rule = keep(p, 5, in->rule);
    p->p.state = engine_inst_state_name(in->state);
    p->p.duration_ms = (int64_t)(ms < 0 ? 0 : ms);
    if (ack)
        p->p.duration_ms = -1; /* a resent outcome: null, its duration is long gone */
    p->p.request_id = keep(p, 6, in->request_id);
    if (in->error) {
        p->p.error_code = keep(p, 7, in->error_code ? in->error_code : "error");
        p->p.error_message = keep(p, 8, in->error);
    }
    if (commit)
        in->outstanding++;
    publish_send(p);
}

static void inst_publish(struct inst *in, const char *event_type, bool commit)
{
    inst_publish_ack(in, event_type, commit, NULL);
}

/* A redelivered notification whose outcome is already durable: the
 * delivery was not acked, so vtpmd may have stopped before that outcome's
 * status reached the broker (it is sent after the journal write is handed
 * over, and a crash can fall between the two). Send it again and ack
 * once it is confirmed: a duplicate status is harmless, a lost one is
 * not. The instance's next events wait for the confirm (OP_RESEND), as
 * they wait for a commit's: a delete that went on meanwhile would leave
 * a tombstone, and a crash before the confirm would then redeliver the
 * create to an instance whose create.end it no longer resends. Called
 * from inst_kick only. */
static void inst_republish(struct inst *in, const char *event_type, struct bus_delivery *d)
{
    inst_set_op(in, OP_RESEND);
    inst_publish_ack(in, event_type, false, d);
    log_info("redelivered notification of a finished instance: status sent again "
             "instance=%s event=%s", in->uuid, event_type);
}

/* ---- commit ------------------------------------------------------ */

static void inst_journal_done(int ret, void *arg);

/* The journal's word for each state (NONE is never written). */
static const enum journal_state journal_of[] = {
    [INST_NONE] = JOURNAL_PROVISIONING,
    [INST_PROVISIONING] = JOURNAL_PROVISIONING,
    [INST_READY] = JOURNAL_READY,
    [INST_FAILED] = JOURNAL_FAILED,
    [INST_DELETING] = JOURNAL_DELETING,
    [INST_DELETE_FAILED] = JOURNAL_DELETE_FAILED,
    [INST_DELETED] = JOURNAL_DELETED,
};

static void inst_fill_record(struct inst *in, struct journal_record *r)
{
    memset(r, 0, sizeof(*r));
    memcpy(r->instance_uuid, in->uuid, UUIDUTIL_BUFLEN);
    r->state = journal_of[in->state];
    memcpy(r->vtpm_uuid, in->vtpm_uuid, UUIDUTIL_BUFLEN);
    r->domain_name = in->domain_name;
    r->image_path = in->image_path;
    r->rule = in->rule;
    r->instance_name = in->instance_name;
    r->request_id = in->request_id;
    r->error = in->error;
    r->image_size = in->image_size;
    r->memory = in->memory;
    r->kernel = in->kernel;
}

static void inst_journal_write(struct inst *in)
{
    struct journal_record r;

    inst_fill_record(in, &r);
    journal_put(in->e->deps.journal, &r, inst_journal_done, in);
}

/* ---- the image's name, then the journal ---------------------------- */

struct sync_job {
    struct inst *in;
    struct image_pool *pool;
    uint64_t ticket;
};

static void inst_persist(struct inst *in);

static void persist_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    inst_persist(arg);
}

static void persist_retry(struct inst *in)
{
    struct timeval tv = {1, 0};

    if (in->jtimer == NULL)
        in->jtimer = evtimer_new(in->e->base, persist_retry_cb, in);
    evtimer_add(in->jtimer, &tv);
}

/* Runs on a libvirt worker (it blocks on the disk; conn is not used). */
static int sync_work(virConnectPtr conn, void *arg, char **err)
{
    struct sync_job *j = arg;

    return image_pool_sync(j->pool, j->ticket, err);
}

static void sync_done(int ret, char *err, void *arg)
{
    struct sync_job *j = arg;
    struct inst *in = j->in;

    image_pool_unref(j->pool);
    free(j);
    if (in->e->stopping) { /* the delivery stays unacked: redone next time */
        free(err);
        return;
    }
    if (ret < 0) {
        /* Not durable: the deliveries stay unacked; try again. */
        in->e->m.journal_retries++;
        log_error("image directory sync failed, retrying instance=%s error=%s", in->uuid,
                  err ? err : strerror(-ret));
        free(err);
        persist_retry(in);
        return;
    }
    free(err);
    image_pool_unref(steal_ptr(in->sync_pool));
    in->sync_ticket = 0;
    inst_journal_write(in);
}

/* Makes the outcome durable: the image's name when it came from a spare
 * (one directory fsync, shared with every create meanwhile), then the
 * journal record. The record waits for the image: a journal saying READY
 * for an image a crash then lost would make the redelivered create look
 * done. */
static void inst_persist(struct inst *in)
{
    struct sync_job *j;

    if (in->sync_pool == NULL) {
        inst_journal_write(in);
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->in = in;
    j->pool = image_pool_ref(in->sync_pool);
    j->ticket = in->sync_ticket;
    if (virt_submit(in->e->deps.virt, sync_work, sync_done, j) < 0) {
        image_pool_unref(j->pool);
        free(j);
        if (!in->e->stopping)
            persist_retry(in);
    }
}

static void inst_journal_done(int ret, void *arg)
{
    struct inst *in = arg;

    if (ret < 0 && in->e->stopping)
        return;
    if (ret < 0) {
        /* Not durable: the deliveries stay unacked; try again. */
        in->e->m.journal_retries++;
        log_error("journal write failed, retrying instance=%s error=%s", in->uuid,
                  strerror(-ret));
        persist_retry(in);
        return;
    }
    if (--in->outstanding == 0)
        inst_commit(in);
}

static void latency_observe(struct engine *e, const struct timespec *start)
{
    double s = vtime_since_ms(start) / 1000.0;

    for (size_t i = 0; i < ENGINE_LAT_BUCKETS; i++) {
        if (s <= engine_lat_bounds[i])
            e->m.lat_buckets[i]++;
    }
    e->m.lat_count++;
    e->m.lat_sum += s;
}

/* Starts the commit (state already set), or finishes it when both the
 * journal write (after the image sync, if any) and the status confirm are
 * in. The status goes out first: it waits for nothing on disk, the ack
 * waits for everything. */
static void inst_commit_start(struct inst *in, const char *event_type)
{
    inst_set_step(in, STEP_COMMIT);
    in->outstanding = 1;                /* a guard until both are issued */
    inst_publish(in, event_type, true); /* counts itself */
    in->outstanding++;                  /* the journal write */
    inst_persist(in);
    if (--in->outstanding == 0)
        inst_commit(in);
}

static void inst_commit(struct inst *in)
{
    struct engine *e = in->e;

    log_info("instance %s instance=%s vtpm=%s domain=%s", engine_inst_state_name(in->state),
             in->uuid, in->vtpm_uuid[0] ? in->vtpm_uuid : "-",
             in->domain_name ? in->domain_name : "-");
    if (in->state == INST_READY) {
        e->m.provisions_ok++;
        latency_observe(e, &in->started);
    } else if (in->state == INST_FAILED) {
        e->m.provisions_failed++;
    } else if (in->state == INST_DELETED) {
        e->m.teardowns_ok++;
    } else if (in->state == INST_DELETE_FAILED) {
        e->m.teardowns_failed++;
    }
    inst_ack_all(in);
    inst_set_op(in, OP_IDLE);
    inst_set_step(in, STEP_NONE);
    engine_waiters_check(e);
    inst_kick(in);
}

/* ---- failures and retries ---------------------------------------- */

static void inst_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    inst_step(arg);
}

/* Schedules the current step again if still within the retry window. */
static bool inst_retry(struct inst *in)
{
    struct timeval tv;

    if (vtime_now_ms() >= in->retry_until_ms)
        return false;
    tv = vtime_tv_ms(backoff_ms(RETRY_MIN_MS, RETRY_MAX_MS, in->attempt));
    in->attempt++;
    in->e->m.retries++;
    if (in->timer == NULL)
        in->timer = evtimer_new(in->e->base, inst_retry_cb, in);
    evtimer_add(in->timer, &tv);
    return true;
}

static void inst_begin_rollback(struct inst *in)
{
    log_warn("provisioning failed, rolling back instance=%s step=%d error=%s", in->uuid,
             (int)in->step, in->error ? in->error : "?");
    in->e->m.step_failures[in->step]++;
    inst_set_op(in, OP_ROLLBACK);
    inst_set_step(in, STEP_REMOVE);
    in->retry_until_ms = vtime_now_ms() + in->e->cfg->vtpmmgr.retry_for_ms;
    inst_step(in);
}

static void inst_teardown_failed(struct inst *in)
{
    in->e->m.step_failures[in->step]++;
    log_error("teardown failed instance=%s error=%s", in->uuid, in->error ? in->error : "?");
    inst_set_state(in, INST_DELETE_FAILED);
    inst_commit_start(in, "vtpm.delete.error");
}

/* ---- steps ------------------------------------------------------- */

/* With the local provider, vtpm.create.start waits for the first outcome
 * and goes out just before it: the whole create takes about a
 * millisecond, and a status sent while the build runs costs it a broker
 * round of CPU on a small host. */
static void publish_start_pending(struct inst *in)
{
    if (in->start_pending) {
        in->start_pending = false;
        inst_publish(in, "vtpm.create.start", false);
    }
}

static void acquire_done(enum vtpmmgr_status st, const char *vtpm_uuid,
                         const char *error, void *arg)
{
    struct inst *in = arg;

    if (st != VTPMMGR_OK) {
        publish_start_pending(in);
        inst_set_error(in, st == VTPMMGR_ERR_TRANSIENT ? "vtpmmgr_unavailable" : "vtpmmgr_error",
                       error ? error : "vtpmmgr failed");
        inst_begin_rollback(in);
        return;
    }
    memcpy(in->vtpm_uuid, vtpm_uuid, UUIDUTIL_BUFLEN);
    inst_set_step(in, STEP_BUILD);
    inst_step(in);
}



static void build_done(int ret, char *err, void *arg)
{
    struct engine_job *j = arg;
    struct inst *in = j->in;

    if (in->e->stopping) { /* virt_free_cancel at shutdown */
        engine_job_free(j);
        free(err);
        return;
    }
    publish_start_pending(in);
    if (ret == 0) {
        set_str(&in->image_path, j->image_path);
        image_pool_unref(steal_ptr(in->sync_pool));
        in->sync_ticket = j->sync_ticket;
        if (j->sync_ticket)
            in->sync_pool = image_pool_ref(j->pool);
        if (!j->repair) {
            if (j->from_spare)
                in->e->m.images_spare++;
            else
                in->e->m.images_made++;
        }
        engine_job_free(j);
        free(err);
        inst_set_state(in, INST_READY);
        set_str(&in->error, NULL);
        set_str(&in->error_code, NULL);
        inst_commit_start(in, "vtpm.create.end");
        return;
    }
    engine_job_free(j);
    inst_set_error(in, ret == -ENOTCONN ? "libvirt_unavailable"
                       : ret == -ENOSPC ? "disk_full"
                       : ret == -ENODEV ? "vtpm_device_dropped"
                       : ret == -EMFILE || ret == -ENFILE ? "out_of_descriptors"
                                        : "provisioning_failed",
                   err ? err : strerror(-ret));
    free(err);
    if (virt_error_transient(ret) && inst_retry(in))
        return;
    inst_begin_rollback(in);
}

/* The end of a job on the loop's thread: NULL when stopping (then the
 * answer is dropped: the delivery stays unacked and is redone). */
static struct inst *job_done(struct engine_job *j, char *err)
{
    struct inst *in = j->in;

    engine_job_free(j);
    if (in->e->stopping) {
        free(err);
        return NULL;
    }
    return in;
}

static void remove_done(int ret, char *err, void *arg)
{
    struct inst *in = job_done(arg, err);

    if (in == NULL)
        return;
    if (ret < 0) {
        log_warn("removing vTPM resources failed instance=%s error=%s", in->uuid,
                 err ? err : strerror(-ret));
        if (in->op == OP_TEARDOWN)
            inst_set_error(in, ret == -ENOTCONN ? "libvirt_unavailable" : "teardown_failed",
                           err ? err : strerror(-ret));
        free(err);
        if (inst_retry(in))
            return;
        if (in->op == OP_TEARDOWN) {
            inst_teardown_failed(in);
            return;
        }
        /* A rollback that cannot remove everything still reports the
         * create as failed; reconciliation finds what is left. */
    } else {
        free(err);
        set_str(&in->image_path, NULL);
    }
    inst_set_step(in, STEP_RELEASE);
    inst_step(in);
}

static void release_done(enum vtpmmgr_status st, const char *vtpm_uuid,
                         const char *error, void *arg)
{
    struct inst *in = arg;

    if (st != VTPMMGR_OK && in->op == OP_TEARDOWN) {
        inst_set_error(in, "vtpmmgr_release_failed", error ? error : "release failed");
        inst_teardown_failed(in);
        return;
    }
    if (st != VTPMMGR_OK)
        log_warn("releasing the vTPM failed during rollback instance=%s vtpm=%s error=%s",
                 in->uuid, in->vtpm_uuid, error ? error : "?");
    else if (in->op == OP_ROLLBACK)
        in->vtpm_uuid[0] = '\0'; /* released: a FAILED record holds none */
    if (in->op == OP_TEARDOWN) {
        inst_set_state(in, INST_DELETED);
        in->torn_down = true;
        set_str(&in->error, NULL);
        set_str(&in->error_code, NULL);
        inst_commit_start(in, "vtpm.delete.end");
    } else {
        inst_set_state(in, INST_FAILED);
        inst_commit_start(in, "vtpm.create.error");
    }
}


static void inst_step(struct inst *in)
{
    struct engine *e = in->e;
    struct engine_job *j;
    int ret;

    switch (in->step) {
    case STEP_ACQUIRE:
        ret = vtpmmgr_acquire(e->deps.vtpmmgr, in->uuid, e->cfg->host, acquire_done, in);
        if (ret < 0) {
            inst_set_error(in, "vtpmmgr_error", strerror(-ret));
            inst_begin_rollback(in);
        }
        break;
    case STEP_BUILD:
        j = engine_job_new(in);
        ret = virt_submit(e->deps.virt, engine_job_build, build_done, j);
        if (ret < 0) {
            engine_job_free(j);
            inst_set_error(in, "internal", strerror(-ret));
            inst_begin_rollback(in);
        }
        break;
    case STEP_REMOVE:
        j = engine_job_new(in);
        ret = virt_submit(e->deps.virt, engine_job_remove, remove_done, j);
        if (ret < 0) {
            engine_job_free(j);
            remove_done(ret, NULL, engine_job_new(in));
        }
        break;
    case STEP_RELEASE:
        if (in->vtpm_uuid[0] == '\0') {
            release_done(VTPMMGR_OK, NULL, NULL, in);
            break;
        }
        ret = vtpmmgr_release(e->deps.vtpmmgr, in->vtpm_uuid, in->uuid, release_done, in);
        if (ret < 0)
            release_done(VTPMMGR_ERR_PERMANENT, NULL, strerror(-ret), in);
        break;
    default:
        break;
    }
}

/* ---- events ------------------------------------------------------ */

/* A create or a teardown starts: its clock and its retry window. */
static void inst_begin(struct inst *in, enum inst_state state, enum inst_op op,
                       enum inst_step step)
{
    inst_set_state(in, state);
    inst_set_op(in, op);
    inst_set_step(in, step);
    in->started = vtime_now();
    in->retry_until_ms = vtime_now_ms() + in->e->cfg->vtpmmgr.retry_for_ms;
}

static void inst_start_create(struct inst *in, const struct nova_event *ev,
                              const struct policy_decision *pd)
{
    struct engine *e = in->e;
    char *name = NULL;

    inst_begin(in, INST_PROVISIONING, OP_CREATE, STEP_ACQUIRE);
    set_str(&in->rule, pd->rule ? pd->rule : "default");
    set_str(&in->instance_name, ev->instance_name);
    set_str(&in->request_id, ev->request_id);
    set_str(&in->kernel, pd->kernel);
    set_str(&in->error, NULL);
    set_str(&in->error_code, NULL);
    in->image_size = pd->image_size;
    in->memory = pd->memory;
    in->vtpm_uuid[0] = '\0';
    if (domxml_expand_name(pd->domain_name, in->uuid, ev->instance_name, &name) < 0) {
        inst_set_error(in, "bad_domain_name", "the domain name template gives no valid name");
        inst_begin_rollback(in);
        return;
    }
    free(in->domain_name);
    in->domain_name = name;
    log_info("provisioning instance=%s rule=%s domain=%s request=%s", in->uuid, in->rule,
             name, in->request_id ? in->request_id : "-");
    inst_step(in);
    /* vtpm.create.start once the first step is under way; with the local
     * provider, whose UUID comes on the next loop turn, just before the
     * build's outcome (publish_start_pending). */
    if (in->step == STEP_ACQUIRE && vtpmmgr_is_local(e->deps.vtpmmgr))
        in->start_pending = true;
    else
        inst_publish(in, "vtpm.create.start", false);
}

void engine_inst_teardown(struct inst *in)
{
    inst_begin(in, INST_DELETING, OP_TEARDOWN, STEP_REMOVE);
    log_info("tearing down instance=%s vtpm=%s domain=%s", in->uuid,
             in->vtpm_uuid[0] ? in->vtpm_uuid : "-", in->domain_name ? in->domain_name : "-");
    inst_publish(in, "vtpm.delete.start", false);
    inst_step(in);
}

/* ---- repair and cleanup (asked by reconciliation) ------------------ */

static void repair_done(int ret, char *err, void *arg)
{
    struct inst *in = job_done(arg, err);
    struct engine *e;

    if (in == NULL)
        return;
    e = in->e;
    if (ret == -ENOENT) {
        /* The vTPM's state is gone with its image: failed, and said so
         * durably (op REPAIR goes on through the commit). */
        log_error("cannot restart the stub domain instance=%s error=%s", in->uuid,
                  err ? err : "image missing");
        inst_set_error(in, "image_lost", err ? err : "backing image missing");
        inst_set_state(in, INST_FAILED);
        in->started = vtime_now();
        inst_commit_start(in, STATUS_DOMAIN_ERROR);
        free(err);
        return;
    }
    inst_set_op(in, OP_IDLE);
    if (ret == 0) {
        e->repairs++;
        log_info("stub domain started again instance=%s domain=%s", in->uuid,
                 in->domain_name);
        inst_publish(in, STATUS_DOMAIN_RESTARTED, false);
    } else if (ret != -ENOTCONN) {
        log_error("cannot restart the stub domain instance=%s error=%s", in->uuid,
                  err ? err : strerror(-ret));
        inst_publish(in, STATUS_DOMAIN_ERROR, false);
    }
    free(err);
    inst_kick(in);
}

void engine_inst_repair(struct inst *in)
{
    struct engine_job *j;

    inst_set_op(in, OP_REPAIR);
    in->started = vtime_now();
    j = engine_job_new(in);
    j->repair = true;
    if (virt_submit(in->e->deps.virt, engine_job_build, repair_done, j) < 0)
        repair_done(-EIO, NULL, j);
}

/* A ready instance's stub domain stopped: started again, up to
 * reconcile.restart_limit times in RESTART_WINDOW_S; then reported once. */
void engine_inst_restart(struct inst *in, const char *what)
{
    struct engine *e = in->e;
    time_t now = time(NULL);

    if (now - in->restart_window > RESTART_WINDOW_S) {
        in->restart_window = now;
        in->restarts = 0;
    }
    if (in->restarts >= e->cfg->reconcile.restart_limit) {
        log_error("stub domain keeps stopping, not restarting it again instance=%s "
                  "domain=%s restarts=%d",
                  in->uuid, in->domain_name, in->restarts);
        if (in->restarts++ == e->cfg->reconcile.restart_limit)
            inst_publish(in, STATUS_DOMAIN_ERROR, false);
        return;
    }
    in->restarts++;
    log_warn("stub domain of a live instance %s, starting it again instance=%s domain=%s", what,
             in->uuid, in->domain_name);
    engine_inst_repair(in);
}

/* Reconciliation passed in by during OP_RESEND (a status only: its
 * domain was not looked at): it runs again after the resend. */
void engine_inst_reconcile_later(struct inst *in)
{
    in->reconcile_after = true;
}

static void cleanup_done(int ret, char *err, void *arg)
{
    struct inst *in = job_done(arg, err);

    if (in == NULL)
        return;
    inst_set_op(in, OP_IDLE);
    if (ret < 0)
        log_warn("removing leftovers failed instance=%s error=%s", in->uuid,
                 err ? err : strerror(-ret));
    else
        in->e->cleanups++;
    free(err);
    inst_kick(in);
}

void engine_inst_cleanup(struct inst *in, const char *domain_name)
{
    struct engine_job *j;

    log_info("removing leftovers instance=%s state=%s domain=%s", in->uuid,
             engine_inst_state_name(in->state), domain_name ? domain_name : "-");
    inst_set_op(in, OP_CLEANUP);
    j = engine_job_new(in);
    free(j->name);
    j->name = domain_name ? xstrdup(domain_name) : NULL;
    if (virt_submit(in->e->deps.virt, engine_job_remove, cleanup_done, j) < 0)
        cleanup_done(-EIO, NULL, j);
}

static bool holds_something(const struct inst *in)
{
    return in->state == INST_READY || in->state == INST_FAILED ||
           in->state == INST_DELETE_FAILED || in->state == INST_PROVISIONING;
}

/* Handles queued events until one starts work. */
static void inst_kick(struct inst *in)
{
    struct engine *e = in->e;

    while (in->op == OP_IDLE && in->queue && !e->draining) {
        struct inst_job *j = in->queue;
        struct policy_decision pd;

        in->queue = j->next;
        if (in->queue == NULL)
            in->queue_tail = &in->queue;

        switch (j->ev.kind) {
        case NOVA_KIND_CREATE_START:
            if (in->state == INST_DELETED) {
                e->m.tombstoned++;
                log_info("create after delete ignored (tombstone) instance=%s", in->uuid);
                bus_ack(e->deps.bus, j->d);
            } else if (in->state != INST_NONE) {
                e->m.duplicates++;
                log_debug("create already handled instance=%s state=%s", in->uuid,
                          engine_inst_state_name(in->state));
                if (j->redelivered && in->state == INST_READY)
                    inst_republish(in, "vtpm.create.end", j->d);
                else if (j->redelivered && in->state == INST_FAILED)
                    inst_republish(in, "vtpm.create.error", j->d);
                else
                    bus_ack(e->deps.bus, j->d);
            } else {
                policy_decide(e->policy, &j->ev, &pd);
                if (!pd.selected) {
                    /* Not remembered: the other format's copy may match. */
                    e->m.denied++;
                    log_info("not selected instance=%s format=%s rule=%s", in->uuid,
                             j->ev.format == NOVA_FORMAT_LEGACY ? "legacy" : "versioned",
                             pd.rule ? pd.rule : "default");
                    bus_ack(e->deps.bus, j->d);
                } else {
                    inst_hold_ack(in, j->d);
                    inst_start_create(in, &j->ev, &pd);
                }
            }
            break;
        case NOVA_KIND_CREATE_ERROR:
        case NOVA_KIND_DELETE_END:
            if (holds_something(in)) {
                inst_hold_ack(in, j->d);
                engine_inst_teardown(in);
            } else {
                /* Nothing held; remember the end so a late create does
                 * not resurrect it (in memory only: nothing to undo). */
                if (in->state == INST_NONE)
                    inst_set_state(in, INST_DELETED);
                in->updated = time(NULL);
                if (j->redelivered && in->torn_down)
                    inst_republish(in, "vtpm.delete.end", j->d);
                else
                    bus_ack(e->deps.bus, j->d);
            }
            break;
        default:
            bus_ack(e->deps.bus, j->d);
            break;
        }
        nova_event_clear(&j->ev);
        free(j);
    }
    engine_waiters_check(e);
    inst_maybe_drop(in);
}

void engine_deliver(struct bus_delivery *d, const void *body, size_t len,
                    const char *content_type, bool redelivered, void *arg)
{
    struct engine *e = arg;
    struct inst_job *j = xcalloc(1, sizeof(*j));
    const char *reason = NULL;
    struct inst *in;

    switch (novamsg_decode(body, len, content_type, e->cfg->host,
                           e->cfg->notifications.max_message_size, &j->ev, &reason)) {
    case NOVAMSG_IRRELEVANT:
        e->m.irrelevant++;
        bus_ack(e->deps.bus, d);
        free(j);
        return;
    case NOVAMSG_MALFORMED:
        e->m.malformed++;
        log_warn("malformed notification rejected reason=%s size=%zu", reason ? reason : "?", len);
        bus_reject(e->deps.bus, d);
        nova_event_clear(&j->ev);
        free(j);
        return;
    case NOVAMSG_RELEVANT:
        break;
    }
    e->m.relevant++;
    log_debug("notification event=%s instance=%s format=%s redelivered=%d",
              j->ev.event_type ? j->ev.event_type : "?", j->ev.instance_uuid,
              j->ev.format == NOVA_FORMAT_LEGACY ? "legacy" : "versioned", (int)redelivered);
    j->d = d;
    j->redelivered = redelivered;
    in = inst_get(e, j->ev.instance_uuid, true);
    *in->queue_tail = j;
    in->queue_tail = &j->next;
    inst_kick(in);
}

/* ---- lifecycle --------------------------------------------------- */

/* A state from the journal. Interrupted work (provisioning, deleting):
 * provisioning again on redelivery would be right, but the delivery may
 * be gone; teardown is what is safe to finish, reconciliation decides the
 * rest. */
static enum inst_state state_from_journal(enum journal_state s)
{
    static const enum inst_state of[] = {
        [JOURNAL_PROVISIONING] = INST_DELETE_FAILED,
        [JOURNAL_READY] = INST_READY,
        [JOURNAL_FAILED] = INST_FAILED,
        [JOURNAL_DELETING] = INST_DELETE_FAILED,
        [JOURNAL_DELETE_FAILED] = INST_DELETE_FAILED,
        [JOURNAL_DELETED] = INST_DELETED,
    };

    return (unsigned)s <= JOURNAL_DELETED ? of[s] : INST_DELETE_FAILED;
}

static void prune_cb(evutil_socket_t fd, short what, void *arg);

/* (Re)starts the spare image pool when image.* changed. */
static void engine_pool_update(struct engine *e, const struct config *cfg)
{
    struct image_pool *p = e->pool;
    int ret;

    if (p && strcmp(image_pool_dir(p), cfg->image.dir) == 0 &&
        image_pool_size(p) == cfg->image.size &&
        image_pool_target(p) == (unsigned)cfg->image.spares)
        return;
    e->pool = NULL;
    image_pool_unref(p); /* jobs under way keep theirs */
    ret = image_pool_new(cfg->image.dir, cfg->image.size, (unsigned)cfg->image.spares, &e->pool);
    if (ret < 0)
        log_error("spare images unavailable, every image is made when needed dir=%s error=%s",
                  cfg->image.dir, strerror(-ret));
}

int engine_new(struct event_base *base, const struct engine_deps *deps,
               const struct config *cfg, const struct policy *policy,
               struct engine **out)
{
    struct engine *e = xcalloc(1, sizeof(*e));
    const struct journal_record *recs;
    size_t n;
    struct timeval minute = {60, 0};

    e->base = base;
    e->deps = *deps;
    e->cfg = cfg;
    e->policy = policy;
    e->insts = hmap_new();
    e->libvirt_vtpm = -1;
    journal_loaded(deps->journal, &recs, &n);
    for (size_t i = 0; i < n; i++) {
        struct inst *in = inst_get(e, recs[i].instance_uuid, true);

        inst_set_state(in, state_from_journal(recs[i].state));
        in->torn_down = in->state == INST_DELETED; /* tombstones are written by teardowns */
        memcpy(in->vtpm_uuid, recs[i].vtpm_uuid, UUIDUTIL_BUFLEN);
        set_str(&in->domain_name, recs[i].domain_name);
        set_str(&in->image_path, recs[i].image_path);
        set_str(&in->rule, recs[i].rule);
        set_str(&in->instance_name, recs[i].instance_name);
        set_str(&in->request_id, recs[i].request_id);
        set_str(&in->error, recs[i].error);
        in->image_size = recs[i].image_size ? recs[i].image_size : cfg->image.size;
        in->memory = recs[i].memory ? recs[i].memory : cfg->libvirt.memory;
        set_str(&in->kernel, recs[i].kernel);
        in->updated = recs[i].updated;
    }
    log_info("journal loaded instances=%zu", n);
    engine_pool_update(e, cfg);
    e->prune_timer = event_new(base, -1, EV_PERSIST, prune_cb, e);
    event_add(e->prune_timer, &minute);
    *out = e;
    return 0;
}

struct prune_ctx {
    time_t now;
    char **drop;
    size_t n;
};

static void prune_find(const char *key, void *value, void *arg)
{
    struct prune_ctx *c = arg;
    struct inst *in = value;

    if (in->state == INST_DELETED && engine_inst_idle(in) &&
        in->updated + TOMBSTONE_TTL < c->now) {
        c->drop = xreallocarray(c->drop, c->n + 1, sizeof(char *));
        c->drop[c->n++] = xstrdup(key);
    }
}

static void prune_cb(evutil_socket_t fd, short what, void *arg)
{
    struct engine *e = arg;
    struct prune_ctx c = {.now = time(NULL)};

    hmap_foreach(e->insts, prune_find, &c);
    for (size_t i = 0; i < c.n; i++) {
        inst_drop(e, c.drop[i]);
        free(c.drop[i]);
    }
    free(c.drop);
}

void engine_set_vtpmmgr(struct engine *e, struct vtpmmgr *m)
{
    e->deps.vtpmmgr = m;
}

void engine_reconfigure(struct engine *e, const struct config *cfg,
                        const struct policy *policy)
{
    e->cfg = cfg;
    e->policy = policy;
    engine_pool_update(e, cfg);
    engine_reconcile_timer_update(e);
}

size_t engine_busy(const struct engine *e)
{
    return e->busy;
}

void engine_drain(struct engine *e)
{
    e->draining = true;
}

static void release_held(const char *key, void *value, void *arg)
{
    struct inst *in = value;
    struct engine *e = arg;
    struct inst_job *j;

    /* The bus has closed its connection: these acks are dropped and the
     * broker redelivers the messages to the next vtpmd. */
    for (j = in->queue; j; j = j->next) {
        bus_ack(e->deps.bus, j->d);
        j->d = NULL;
    }
    for (size_t i = 0; i < in->nacks; i++)
        bus_ack(e->deps.bus, in->acks[i]);
    in->nacks = 0;
}

void engine_shutdown(struct engine *e)
{
    e->stopping = true;
    e->draining = true;
    hmap_foreach(e->insts, release_held, e);
    for (struct publish_ctx *p = e->publishing; p; p = p->next)
        if (p->ack)
            bus_ack(e->deps.bus, steal_ptr(p->ack));
}

void engine_free(struct engine *e)
{
    if (e == NULL)
        return;
    while (e->waiters) {
        struct engine_waiter *w = e->waiters;
        control_reply_error(w->req, 503, "vtpmd is stopping");
        e->waiters = w->next;
        event_free(w->timeout);
        free(w);
    }
    if (e->waiter_tick)
        event_free(e->waiter_tick);
    if (e->prune_timer)
        event_free(e->prune_timer);
    engine_reconcile_free(e);
    while (e->publishing)
        publish_free(e->publishing);
    hmap_free(e->insts, inst_free);
    image_pool_unref(e->pool);
    free(e->vtpm_why);
    free(e);
}
