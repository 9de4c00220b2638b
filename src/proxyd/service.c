/* vtpm-proxyd's logic, see include/proxyd/service.h. This is the loop's
 * side: the public functions and the done callbacks. It owns the
 * in-memory index, the requests in flight and the health state; the job
 * thread's side is service_work.c. Jobs carry a copy of the settings they
 * need, so a reload never races with the job thread. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "backoff.h"
#include "log.h"
#include "proxyd/jobq.h"
#include "proxyd/mgrdev.h"
#include "proxyd/service_priv.h"
#include "vtime.h"
#include "xalloc.h"

/* Start-up reconcile retries back off up to this. */
#define RETRY_MIN_MS 1000  /* start-up reconcile retries */
#define RETRY_MAX_MS 60000
/* Jobs waiting for vtpmmgr beyond this are refused (503): vtpmmgr does
 * about a hundred commands a second at best, and clients time out. */
#define MAX_JOBS 1024

static void set_env(struct env *e, const struct pconfig *cfg)
{
    e->has_group = cfg->has_group;
    memcpy(e->group, cfg->group_uuid, 16);
    e->timeout_ms = cfg->vtpmmgr.timeout_ms;
    e->orphans = cfg->orphans;
    e->missing = cfg->missing;
}

static void report_free(struct service_report *r)
{
    free(r->orphans.v);
    free(r->missing.v);
    free(r->duplicated.v);
    free(r->deleted.v);
    free(r->recreated.v);
    free(r->finished.v);
    free(r->in_use.v);
}

static void job_free(struct job *j)
{
    while (j->waiters) {
        struct waiter *w = j->waiters;

        j->waiters = w->next;
        free(w);
    }
    report_free(&j->rep);
    free(j);
}

static void check_drained(struct service *s)
{
    if (s->stopping && !s->drained_called && jobq_pending(s->q) == 0 && s->drained) {
        s->drained_called = true;
        s->drained(s->drained_arg);
    }
}

static void note_link(struct service *s, const struct job *j)
{
    if (j->link == LINK_UNKNOWN)
        return;
    s->link = j->link;
    s->refused = j->refused;
    switch (j->res.code) {
    case SERVICE_OK:
    case SERVICE_CREATED:
        s->link_msg[0] = '\0';
        break;
    case SERVICE_NOT_FOUND:
    case SERVICE_CONFLICT:
        break; /* the request's problem, not vtpmmgr's */
    default:
        snprintf(s->link_msg, sizeof(s->link_msg), "%s", j->res.message);
        break;
    }
    if (j->group_ok) {
        if (s->group_known && (s->group_idx != j->group_idx ||
                               memcmp(s->group_uuid, j->group_uuid, 16) != 0)) {
            char g[IDS_UUID_STR];

            ids_format_uuid(j->group_uuid, g);
            log_info("vtpmmgr group resolved group=%s index=%" PRIu32, g, j->group_idx);
        }
        s->group_known = true;
        s->group_idx = j->group_idx;
        memcpy(s->group_uuid, j->group_uuid, 16);
    } else if (j->group_missing) {
        s->group_known = false;
    }
}

static void unlink_inflight(struct service *s, struct job *j)
{
    for (struct job **p = &s->inflight; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            return;
        }
    }
}

static void notify(struct job *j)
{
    j->res.rec = j->rec;
    for (struct waiter *w = j->waiters; w; w = w->next)
        w->cb(&j->res, w->arg);
}

static void done_create(void *arg)
{
    struct job *j = arg;
    struct service *s = j->s;
    char u[IDS_UUID_STR], i[IDS_UUID_STR] = "-";

    note_link(s, j);
    unlink_inflight(s, j);
    if (j->rec.has_instance)
        ids_format_uuid(j->rec.instance, i);
    if (j->res.code == SERVICE_CREATED) {
        store_set(s->store, &j->rec);
        ids_format_uuid(j->rec.uuid, u);
        log_info("vtpm created vtpm=%s instance=%s host=%s group_index=%" PRIu32,
                 u, i, j->rec.host[0] ? j->rec.host : "-", j->group_idx);
    } else {
        log_warn("vtpm create failed instance=%s error=\"%s\"", i, j->res.message);
    }
    notify(j);
    job_free(j);
    check_drained(s);
}

static void done_delete(void *arg)
{
    struct job *j = arg;
    struct service *s = j->s;
    char u[IDS_UUID_STR];

    note_link(s, j);
    unlink_inflight(s, j);
    ids_format_uuid(j->rec.uuid, u);
    if (j->rec_gone) {
        store_del(s->store, j->rec.uuid);
        log_info("vtpm deleted vtpm=%s", u);
    } else {
        store_set(s->store, &j->rec);
        log_warn("vtpm delete failed vtpm=%s state=%s error=\"%s\"", u,
                 j->rec.state == STORE_DELETING ? "deleting" : "ready", j->res.message);
    }
    notify(j);
    job_free(j);
    check_drained(s);
}

static void log_uuids(const char *what, const struct service_uuids *l,
                      const char *action)
{
    char u[IDS_UUID_STR];

    for (size_t i = 0; i < l->n; i++) {
        ids_format_uuid(l->v[i], u);
        log_warn("%s vtpm=%s action=%s", what, u, action);
    }
}

static void submit_reconcile(struct service *s, bool startup,
                             service_report_cb cb, void *arg);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct service *s = arg;

    submit_reconcile(s, true, NULL, NULL);
}

static void done_reconcile(void *arg)
{
    struct job *j = arg;
    struct service *s = j->s;
    struct service_report *rep = &j->rep;

    note_link(s, j);
    rep->code = j->res.code;
    snprintf(rep->message, sizeof(rep->message), "%s", j->res.message);
    if (j->res.code == SERVICE_OK) {
        for (size_t i = 0; i < rep->finished.n; i++)
            store_del(s->store, rep->finished.v[i]);
        s->reconciled = true;
        s->last_orphans = rep->orphans.n - rep->deleted.n;
        s->last_missing = rep->missing.n - rep->recreated.n;
        log_uuids("orphan (no record)", &rep->orphans,
                  j->env.orphans == PCONFIG_ORPHANS_DELETE ? "delete" : "report");
        log_uuids("missing (recorded, gone from vtpmmgr)", &rep->missing,
                  j->env.missing == PCONFIG_MISSING_RECREATE ? "recreate" : "report");
        log_uuids("duplicated in vtpmmgr", &rep->duplicated, "report");
        log_uuids("still open, not deleted", &rep->in_use, "report");
        log_info("reconciled group=%s index=%" PRIu32 " in_group=%zu records=%zu "
                 "orphans=%zu missing=%zu deleted=%zu recreated=%zu finished=%zu "
                 "duplicated=%zu", rep->group, rep->group_index, rep->in_group,
                 rep->records, rep->orphans.n, rep->missing.n, rep->deleted.n,
                 rep->recreated.n, rep->finished.n, rep->duplicated.n);
        if (j->startup) {
            s->started = true;
            s->startup_failures = 0;
        }
    } else {
        log_error("reconcile failed error=\"%s\"", j->res.message);
        if (j->startup && !s->stopping) {
            /* Until vtpmmgr answers once, keep trying: it may be starting. */
            uint64_t ms = backoff_ms(RETRY_MIN_MS, RETRY_MAX_MS, s->startup_failures++);
            struct timeval tv = vtime_tv_ms(ms);

            evtimer_add(s->retry, &tv);
            log_info("retrying the start-up reconcile in_s=%" PRIu64, ms / 1000);
        }
    }
    if (j->rcb)
        j->rcb(rep, j->rarg);
    job_free(j);
    check_drained(s);
}

static void submit_reconcile(struct service *s, bool startup,
                             service_report_cb cb, void *arg)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->s = s;
    j->kind = JOB_RECONCILE;
    j->env = s->env;
    j->startup = startup;
    j->rcb = cb;
    j->rarg = arg;
    jobq_submit(s->q, service_work_reconcile, done_reconcile, j);
}

static void add_waiter(struct job *j, service_cb cb, void *arg)
{
    struct waiter *w = xcalloc(1, sizeof(*w)), **p = &j->waiters;

    w->cb = cb;
    w->arg = arg;
    while (*p)
        p = &(*p)->next;
    *p = w;
}

static void reply_now(service_cb cb, void *arg, enum service_code code,
                      const struct store_rec *rec, const char *msg)
{
    struct service_result res = {.code = code};

    if (rec)
        res.rec = *rec;
    snprintf(res.message, sizeof(res.message), "%s", msg);
    cb(&res, arg);
}

/* Refuses new work while stopping or when too much waits already. */
static bool refuse(struct service *s, service_cb cb, void *arg)
{
    char msg[96];

    if (s->stopping) {
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, "vtpm-proxyd is shutting down");
        return true;
    }
    if (jobq_pending(s->q) >= MAX_JOBS) {
        snprintf(msg, sizeof(msg), "%d requests are already waiting for vtpmmgr",
                 MAX_JOBS);
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, msg);
        return true;
    }
    return false;
}

static struct job *find_inflight(struct service *s, enum job_kind kind,
                                 const uint8_t *key)
{
    for (struct job *j = s->inflight; j; j = j->next) {
        const uint8_t *k = kind == JOB_CREATE ? j->rec.instance : j->rec.uuid;

        if (j->kind == kind && memcmp(k, key, 16) == 0)
            return j;
    }
    return NULL;
}

void service_create(struct service *s, const uint8_t *instance,
                    const char *host, service_cb cb, void *arg)
{
    const struct store_rec *r;
    struct job *j;
    char msg[160], u[IDS_UUID_STR], i[IDS_UUID_STR];

    if (s->stopping) {
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, "vtpm-proxyd is shutting down");
        return;
    }
    if ((r = store_get_instance(s->store, instance)) != NULL) {
        ids_format_uuid(r->uuid, u);
        if (r->state == STORE_DELETING) {
            snprintf(msg, sizeof(msg), "the instance's vTPM %s is being deleted", u);
            reply_now(cb, arg, SERVICE_CONFLICT, r, msg);
            return;
        }
        if (strcmp(r->host, host) != 0) {
            ids_format_uuid(instance, i);
            log_warn("instance asked for its vTPM from another host instance=%s "
                     "vtpm=%s recorded_host=%s host=%s", i, u, r->host, host);
        }
        /* Retries must not leak vTPMs: the same answer again. */
        reply_now(cb, arg, SERVICE_OK, r, "exists");
        return;
    }
    if ((j = find_inflight(s, JOB_CREATE, instance)) != NULL) {
        add_waiter(j, cb, arg);
        return;
    }
    if (refuse(s, cb, arg))
        return;
    j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->kind = JOB_CREATE;
    j->env = s->env;
    j->rec.has_instance = true;
    memcpy(j->rec.instance, instance, 16);
    snprintf(j->rec.host, sizeof(j->rec.host), "%s", host);
    add_waiter(j, cb, arg);
    j->next = s->inflight;
    s->inflight = j;
    jobq_submit(s->q, service_work_create, done_create, j);
}

void service_create_legacy(struct service *s, service_cb cb, void *arg)
{
    struct job *j;

    if (refuse(s, cb, arg))
        return;
    j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->kind = JOB_LEGACY;
    j->env = s->env;
    add_waiter(j, cb, arg);
    jobq_submit(s->q, service_work_create, done_create, j);
}

void service_delete(struct service *s, const uint8_t *uuid, service_cb cb,
                    void *arg)
{
    const struct store_rec *r;
    struct store_rec copy;
    struct job *j;
    char u[IDS_UUID_STR], msg[160];

    if (s->stopping) {
        reply_now(cb, arg, SERVICE_UNAVAILABLE, NULL, "vtpm-proxyd is shutting down");
        return;
    }
    if ((j = find_inflight(s, JOB_DELETE, uuid)) != NULL) {
        add_waiter(j, cb, arg);
        return;
    }
    if ((r = store_get(s->store, uuid)) == NULL) {
        ids_format_uuid(uuid, u);
        snprintf(msg, sizeof(msg), "no vTPM %s here (never made by this "
                 "service, or already deleted)", u);
        reply_now(cb, arg, SERVICE_NOT_FOUND, NULL, msg);
        return;
    }
    if (refuse(s, cb, arg))
        return;
    copy = *r;
    j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->kind = JOB_DELETE;
    j->env = s->env;
    j->rec = copy;
    add_waiter(j, cb, arg);
    j->next = s->inflight;
    s->inflight = j;
    /* Hidden from lists, and creates for its instance wait, from now on. */
    copy.state = STORE_DELETING;
    store_set(s->store, &copy);
    jobq_submit(s->q, service_work_delete, done_delete, j);
}

void service_reconcile(struct service *s, service_report_cb cb, void *arg)
{
    if (s->stopping || jobq_pending(s->q) >= MAX_JOBS) {
        struct service_report rep = {.code = SERVICE_UNAVAILABLE};

        snprintf(rep.message, sizeof(rep.message), "%s", s->stopping
                 ? "vtpm-proxyd is shutting down"
                 : "too many requests are already waiting for vtpmmgr");
        if (cb)
            cb(&rep, arg);
        return;
    }
    submit_reconcile(s, false, cb, arg);
}

struct store_rec *service_list(const struct service *s, size_t *n)
{
    struct store_rec *v = store_list(s->store, n);
    size_t k = 0;

    for (size_t i = 0; i < *n; i++) {
        if (v[i].state == STORE_READY)
            v[k++] = v[i];
    }
    *n = k;
    return v;
}

const struct store_rec *service_get(const struct service *s, const uint8_t *uuid)
{
    const struct store_rec *r = store_get(s->store, uuid);

    return r && r->state == STORE_READY ? r : NULL;
}

void service_health(const struct service *s, struct service_health *h)
{
    static const char *const names[] = {
        [LINK_UNKNOWN] = "starting", [LINK_OK] = "ok", [LINK_DOWN] = "unreachable",
        [LINK_TIMEOUT] = "timeout", [LINK_GARBAGE] = "protocol_error",
    };

    memset(h, 0, sizeof(*h));
    h->state = s->stopping ? "stopping"
               : (s->link == LINK_OK && s->refused) ? "refused"
               : (s->link == LINK_OK && !s->group_known) ? "group_not_found"
               : (s->link == LINK_OK && !s->started) ? "starting"
               : names[s->link];
    h->message = s->link_msg;
    h->ok = strcmp(h->state, "ok") == 0;
    h->group_known = s->group_known;
    h->group_index = s->group_idx;
    if (s->group_known)
        ids_format_uuid(s->group_uuid, h->group);
    h->records = store_count(s->store);
    h->jobs = jobq_pending(s->q);
    h->reconciled = s->reconciled;
    h->orphans = s->last_orphans;
    h->missing = s->last_missing;
}

int service_new(struct event_base *base, const struct pconfig *cfg,
                struct service **out)
{
    struct service *s = xcalloc(1, sizeof(*s));
    int ret;

    s->base = base;
    set_env(&s->env, cfg);
    if ((ret = store_open(cfg->state_dir, &s->store)) < 0)
        goto fail;
    s->recdir = xstrdup(store_dir(s->store));
    s->w = xcalloc(1, sizeof(*s->w));
    s->w->dev = mgrdev_new(cfg->vtpmmgr.device);
    s->retry = evtimer_new(base, retry_cb, s);
    if (s->retry == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    if ((ret = jobq_new(base, &s->q)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    service_free(s);
    return ret;
}

void service_start(struct service *s)
{
    submit_reconcile(s, true, NULL, NULL);
}

void service_reconfigure(struct service *s, const struct pconfig *cfg)
{
    set_env(&s->env, cfg);
}

void service_drain(struct service *s, void (*done)(void *arg), void *arg)
{
    s->stopping = true;
    s->drained = done;
    s->drained_arg = arg;
    if (s->retry)
        evtimer_del(s->retry);
    check_drained(s);
}

static void drop_job(void *arg)
{
    job_free(arg);
}

void service_free(struct service *s)
{
    if (s == NULL)
        return;
    s->stopping = true;
    s->drained = NULL;
    if (s->q)
        jobq_free(s->q, drop_job);
    if (s->retry)
        event_free(s->retry);
    if (s->w) {
        mgrdev_free(s->w->dev);
        free(s->w);
    }
    store_free(s->store);
    free(s->recdir);
    free(s);
}
