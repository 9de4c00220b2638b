/* libvirt worker threads, the libvirt event thread, and the queue that
 * brings their results back to the event loop.
 *
 * Threads: the loop thread (virt_submit, virt_on_wake, virt_free), N
 * workers (jobs, connect, disconnect) and one thread running libvirt's
 * default event loop (lifecycle and close callbacks). They share struct
 * virt under v->lock. Rule: libvirt is never called with v->lock held, so
 * libvirt's callbacks, which take v->lock, cannot deadlock against us. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "backoff.h"
#include "log.h"
#include "virt.h"
#include "virt_priv.h"
#include "vtime.h"
#include "xalloc.h"

enum virt_item_kind {
    VIRT_ITEM_JOB,
    VIRT_ITEM_LIFECYCLE,
    VIRT_ITEM_CONNECTION,
};

struct virt_item {
    TAILQ_ENTRY(virt_item) entry;
    enum virt_item_kind kind;
    /* VIRT_ITEM_JOB */
    virt_work_fn work;
    virt_done_fn done;
    void *arg;
    int ret;
    char *err;
    /* VIRT_ITEM_LIFECYCLE */
    char *name;
    int event;
    int detail;
    /* VIRT_ITEM_CONNECTION */
    bool up;
};
TAILQ_HEAD(virt_items, virt_item);

struct virt {
    struct event_base *base;
    struct event *wake;
    char *uri;
    struct virt_callbacks cb;
    void *cb_arg;
    bool up; /* loop thread only: last state delivered */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct virt_items jobs; /* waiting for a worker */
    struct virt_items out;  /* waiting for the loop */
    size_t njobs;
    bool stopping;

    /* The connection. connecting is set while one worker opens or closes
     * it; the others wait for the outcome instead of racing it. */
    virConnectPtr conn;
    int lifecycle_id;
    bool lost;
    bool connecting;
    int reported; /* -1 nothing yet, 0 down, 1 up */
    uint64_t next_connect_ms;
    unsigned failures; /* connects failed in a row: the backoff's attempt */
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;

    unsigned nworkers;
    unsigned running;
    pthread_t *workers;
    pthread_t events;
    bool events_started;
    atomic_bool events_stop;
    atomic_int events_timer;
};

/* libvirt's default handler prints every error to stderr. */
static void virt_silent_error(void *data, virErrorPtr err)
{
}

static void virt_silent_xml(void *ctx, const char *msg, ...)
{
}

/* libxml2's default handlers (per thread) print what libvirt's XML
 * parsing of files reports, e.g. the test driver's missing file. */
static void virt_quiet_thread(void)
{
    xmlSetGenericErrorFunc(NULL, virt_silent_xml);
    xmlSetStructuredErrorFunc(NULL, NULL);
}

static void item_free(struct virt_item *it)
{
    if (it == NULL)
        return;
    free(it->err);
    free(it->name);
    free(it);
}

/* Lock held. */
static void virt_post_locked(struct virt *v, struct virt_item *it)
{
    TAILQ_INSERT_TAIL(&v->out, it, entry);
    event_active(v->wake, EV_READ, 0);
}

/* The delay before the next connect attempt; lock held. */
static uint64_t virt_backoff_locked(const struct virt *v)
{
    return backoff_ms(v->backoff_min_ms, v->backoff_max_ms, v->failures);
}

/* Lock held. */
static void virt_report_locked(struct virt *v, bool up)
{
    struct virt_item *it;

    if (v->reported == (int)up)
        return;
    v->reported = up;
    it = xcalloc(1, sizeof(*it));
    it->kind = VIRT_ITEM_CONNECTION;
    it->up = up;
    virt_post_locked(v, it);
}

/* ---- callbacks on libvirt's event thread ---- */

static int virt_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
                             int detail, void *opaque)
{
    struct virt *v = opaque;
    const char *name = virDomainGetName(dom);
    struct virt_item *it;

    if (name == NULL)
        return 0;
    if (v->cb.lifecycle_events && (event < 0 || event >= 32 ||
                                   !(v->cb.lifecycle_events & (1u << event))))
        return 0;
    it = xcalloc(1, sizeof(*it));
    it->kind = VIRT_ITEM_LIFECYCLE;
    it->name = xstrdup(name);
    it->event = event;
    it->detail = detail;
    pthread_mutex_lock(&v->lock);
    virt_post_locked(v, it);
    pthread_mutex_unlock(&v->lock);
    return 0;
}

static void virt_on_close(virConnectPtr conn, int reason, void *opaque)
{
    struct virt *v = opaque;

    pthread_mutex_lock(&v->lock);
    /* While connecting, conn is not installed yet but is the one. */
    if (v->conn == conn || v->connecting) {
        v->lost = true;
        pthread_cond_broadcast(&v->cond);
    }
    pthread_mutex_unlock(&v->lock);
}

static void virt_events_tick(int timer, void *opaque)
{
}

static void *virt_events_main(void *arg)
{
    struct virt *v = arg;

    virt_quiet_thread();
    while (!atomic_load(&v->events_stop)) {
        if (virEventRunDefaultImpl() < 0) {
            /* Not expected; don't spin if it keeps failing. */
            struct timespec ts = {0, 10 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    if (atomic_load(&v->events_timer) >= 0)
        virEventRemoveTimeout(atomic_load(&v->events_timer));
    return NULL;
}

/* Any thread: makes libvirt's event thread return and exit. The timer
 * repeats until that thread removes it: should another thread iterate
 * libvirt's (process-global) loop too, a single wake-up could be consumed
 * there while ours waits for the loop. */
static void virt_events_stop(struct virt *v)
{
    int timer;

    if (!v->events_started)
        return;
    timer = virEventAddTimeout(10, virt_events_tick, NULL, NULL);
    if (timer < 0)
        log_error("libvirt event loop cannot be woken; shutdown may hang");
    atomic_store(&v->events_timer, timer);
    atomic_store(&v->events_stop, true);
}

/* ---- connection management on the workers ---- */

/* Lock held on entry and exit; dropped while libvirt is called. */
static void virt_connect_locked(struct virt *v)
{
    virConnectPtr conn;
    int id = -1;
    char *err = NULL;

    v->connecting = true;
    v->lost = false;
    pthread_mutex_unlock(&v->lock);

    virResetLastError();
    conn = virConnectOpen(v->uri);
    if (conn == NULL) {
        virt_error(NULL, "connect", &err);
    } else {
        virConnSetErrorFunc(conn, NULL, virt_silent_error);
        /* Remote drivers only; the dead peer is then noticed in ~15 s. */
        if (virConnectSetKeepAlive(conn, 5, 3) < 0)
            virResetLastError();
        id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(virt_on_lifecycle),
                                              v, NULL);
        if (id < 0) {
            char *why = NULL;

            virt_error(conn, "lifecycle events", &why);
            log_warn("libvirt lifecycle events unavailable uri=%s error=\"%s\"", v->uri, why);
            free(why);
        }
        if (virConnectRegisterCloseCallback(conn, virt_on_close, v, NULL) < 0)
            virResetLastError();
    }

    pthread_mutex_lock(&v->lock);
    v->connecting = false;
    if (conn) {
        v->conn = conn;
        v->lifecycle_id = id;
        v->failures = 0;
        log_info("libvirt connected uri=%s", v->uri);
        virt_report_locked(v, true);
    } else {
        uint64_t delay = virt_backoff_locked(v);

        v->next_connect_ms = vtime_now_ms() + delay;
        log_warn("libvirt connect failed uri=%s error=\"%s\" retry_ms=%" PRIu64, v->uri,
                 err, delay);
        v->failures++;
        virt_report_locked(v, false);
    }
    free(err);
    pthread_cond_broadcast(&v->cond);
}

/* Closes our connection (jobs still running keep their reference). */
static void virt_close_conn(virConnectPtr conn, int id)
{
    if (id >= 0 && virConnectDomainEventDeregisterAny(conn, id) < 0)
        virResetLastError();
    if (virConnectUnregisterCloseCallback(conn, virt_on_close) < 0)
        virResetLastError();
    if (virConnectClose(conn) < 0)
        virResetLastError();
}

/* Lock held on entry and exit. */
static void virt_disconnect_locked(struct virt *v)
{
    virConnectPtr conn = steal_ptr(v->conn);
    int id = v->lifecycle_id;
    uint64_t delay;

    v->lifecycle_id = -1;
    v->connecting = true;
    pthread_mutex_unlock(&v->lock);
    virt_close_conn(conn, id);
    pthread_mutex_lock(&v->lock);
    v->connecting = false;
    v->lost = false;
    delay = virt_backoff_locked(v);
    v->next_connect_ms = vtime_now_ms() + delay;
    log_warn("libvirt connection lost uri=%s retry_ms=%" PRIu64, v->uri, delay);
    virt_report_locked(v, false);
    pthread_cond_broadcast(&v->cond);
}

/* Lock held on entry and exit. */
static void virt_run_job_locked(struct virt *v, struct virt_item *it)
{
    virConnectPtr conn = v->conn;
    bool dead = false;

    if (conn)
        virConnectRef(conn);
    pthread_mutex_unlock(&v->lock);

    virResetLastError();
    it->ret = it->work(conn, it->arg, &it->err);
    /* A failure on a connection that died is the sign to reconnect. */
    if (conn) {
        dead = it->ret < 0 && virConnectIsAlive(conn) == 0;
        virConnectClose(conn);
    }
    virResetLastError();

    pthread_mutex_lock(&v->lock);
    if (dead && v->conn == conn)
        v->lost = true;
    it->kind = VIRT_ITEM_JOB;
    virt_post_locked(v, it);
}

static void *virt_worker_main(void *arg)
{
    struct virt *v = arg;
    virConnectPtr last = NULL;
    int last_id = -1;
    bool stop_events = false;

    virt_quiet_thread();
    pthread_mutex_lock(&v->lock);
    while (!v->stopping) {
        struct virt_item *it;

        if (v->connecting) {
            pthread_cond_wait(&v->cond, &v->lock);
            continue;
        }
        if (v->conn && v->lost) {
            virt_disconnect_locked(v);
            continue;
        }
        if (v->conn == NULL && vtime_now_ms() >= v->next_connect_ms) {
            virt_connect_locked(v);
            continue;
        }
        if ((it = TAILQ_FIRST(&v->jobs)) == NULL) {
            if (v->conn) {
                pthread_cond_wait(&v->cond, &v->lock);
            } else {
                struct timespec ts = vtime_ts_ns(v->next_connect_ms * 1000000);

                pthread_cond_timedwait(&v->cond, &v->lock, &ts);
            }
            continue;
        }
        TAILQ_REMOVE(&v->jobs, it, entry);
        v->njobs--;
        virt_run_job_locked(v, it);
    }
    /* The last worker out closes the connection and libvirt's loop. */
    if (--v->running == 0) {
        last = steal_ptr(v->conn);
        last_id = v->lifecycle_id;
        stop_events = true;
    }
    pthread_mutex_unlock(&v->lock);
    if (last)
        virt_close_conn(last, last_id);
    if (stop_events)
        virt_events_stop(v);
    return NULL;
}

/* ---- the loop side ---- */

static void virt_on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct virt *v = arg;
    struct virt_items items = TAILQ_HEAD_INITIALIZER(items);
    struct virt_item *it;

    pthread_mutex_lock(&v->lock);
    TAILQ_CONCAT(&items, &v->out, entry);
    pthread_mutex_unlock(&v->lock);

    while ((it = TAILQ_FIRST(&items)) != NULL) {
        TAILQ_REMOVE(&items, it, entry);
        switch (it->kind) {
        case VIRT_ITEM_JOB:
            if (it->done)
                it->done(it->ret, steal_ptr(it->err), it->arg);
            break;
        case VIRT_ITEM_LIFECYCLE:
            if (v->cb.lifecycle)
                v->cb.lifecycle(it->name, it->event, it->detail, v->cb_arg);
            break;
        case VIRT_ITEM_CONNECTION:
            v->up = it->up;
            if (v->cb.connection)
                v->cb.connection(it->up, v->cb_arg);
            break;
        }
        item_free(it);
    }
}

static void virt_drop(struct virt_items *items)
{
    struct virt_item *it;

    while ((it = TAILQ_FIRST(items)) != NULL) {
        TAILQ_REMOVE(items, it, entry);
        item_free(it);
    }
}

int virt_new_workers(struct event_base *base, const char *uri, unsigned workers,
                     const struct virt_callbacks *cb, void *arg, struct virt **out)
{
    struct virt *v;
    pthread_condattr_t ca;
    int ret;

    if (base == NULL || uri == NULL || *uri == '\0' || workers == 0 ||
        workers > VIRT_WORKERS_MAX)
        return -EINVAL;

    /* Process-wide libvirt and libxml2 set-up; none of it blocks. */
    xmlInitParser();
    virSetErrorFunc(NULL, virt_silent_error);
    if (virEventRegisterDefaultImpl() < 0) {
        virResetLastError();
        return -EIO;
    }

    v = xcalloc(1, sizeof(*v));
    v->base = base;
    v->uri = xstrdup(uri);
    if (cb)
        v->cb = *cb;
    v->cb_arg = arg;
    TAILQ_INIT(&v->jobs);
    TAILQ_INIT(&v->out);
    v->lifecycle_id = -1;
    v->reported = -1;
    v->backoff_min_ms = VIRT_BACKOFF_MIN_MS;
    v->backoff_max_ms = VIRT_BACKOFF_MAX_MS;
    atomic_init(&v->events_stop, false);
    atomic_init(&v->events_timer, -1);
    pthread_mutex_init(&v->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&v->cond, &ca);
    pthread_condattr_destroy(&ca);
    v->wake = event_new(base, -1, 0, virt_on_wake, v);
    if (v->wake == NULL) {
        ret = -ENOMEM;
        goto out;
    }

    if ((ret = -pthread_create(&v->events, NULL, virt_events_main, v)) < 0)
        goto out;
    v->events_started = true;

    v->workers = xcalloc(workers, sizeof(*v->workers));
    for (unsigned i = 0; i < workers; i++) {
        pthread_mutex_lock(&v->lock);
        v->running++;
        pthread_mutex_unlock(&v->lock);
        if ((ret = -pthread_create(&v->workers[i], NULL, virt_worker_main, v)) < 0) {
            pthread_mutex_lock(&v->lock);
            v->running--;
            pthread_mutex_unlock(&v->lock);
            break;
        }
        v->nworkers++;
    }
    if (ret < 0 && v->nworkers == 0)
        virt_events_stop(v);
    if (ret < 0)
        goto out;
    *out = steal_ptr(v);
out:
    virt_free(v);
    return ret;
}

int virt_new(struct event_base *base, const char *uri, const struct virt_callbacks *cb,
             void *arg, struct virt **out)
{
    return virt_new_workers(base, uri, VIRT_WORKERS_DEFAULT, cb, arg, out);
}

static void virt_cancel_items(struct virt_items *items)
{
    struct virt_item *it;

    TAILQ_FOREACH(it, items, entry) {
        if (it->kind == VIRT_ITEM_JOB && it->done) {
            it->done(-ECANCELED, it->err, it->arg);
            it->err = NULL;
            it->done = NULL;
        }
    }
}

static void virt_free_impl(struct virt *v, bool cancel);

void virt_free(struct virt *v)
{
    virt_free_impl(v, false);
}

void virt_free_cancel(struct virt *v)
{
    virt_free_impl(v, true);
}

static void virt_free_impl(struct virt *v, bool cancel)
{
    if (v == NULL)
        return;
    pthread_mutex_lock(&v->lock);
    v->stopping = true;
    pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->lock);
    for (unsigned i = 0; i < v->nworkers; i++)
        pthread_join(v->workers[i], NULL);
    if (v->events_started)
        pthread_join(v->events, NULL);
    if (cancel) {
        /* Workers are joined: what they finished is in out, the rest in jobs. */
        virt_cancel_items(&v->out);
        virt_cancel_items(&v->jobs);
    }
    virt_drop(&v->jobs);
    virt_drop(&v->out);
    if (v->wake)
        event_free(v->wake);
    pthread_cond_destroy(&v->cond);
    pthread_mutex_destroy(&v->lock);
    free(v->workers);
    free(v->uri);
    free(v);
}

int virt_submit(struct virt *v, virt_work_fn work, virt_done_fn done, void *job_arg)
{
    struct virt_item *it;

    if (v == NULL || work == NULL)
        return -EINVAL;
    it = xcalloc(1, sizeof(*it));
    it->kind = VIRT_ITEM_JOB;
    it->work = work;
    it->done = done;
    it->arg = job_arg;
    pthread_mutex_lock(&v->lock);
    if (v->stopping) {
        pthread_mutex_unlock(&v->lock);
        free(it);
        return -ESHUTDOWN;
    }
    TAILQ_INSERT_TAIL(&v->jobs, it, entry);
    v->njobs++;
    /* Connected: any idle worker takes it, so wake one, not all.
     * Otherwise broadcast: a worker waiting for a connect attempt may
     * not take it. */
    if (v->conn && !v->connecting && !v->lost)
        pthread_cond_signal(&v->cond);
    else
        pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->lock);
    return 0;
}

bool virt_is_connected(const struct virt *v)
{
    return v && v->up;
}

size_t virt_queue_length(struct virt *v)
{
    size_t n;

    pthread_mutex_lock(&v->lock);
    n = v->njobs;
    pthread_mutex_unlock(&v->lock);
    return n;
}

void virt_set_backoff(struct virt *v, unsigned min_ms, unsigned max_ms)
{
    pthread_mutex_lock(&v->lock);
    v->backoff_min_ms = min_ms ? min_ms : 1;
    v->backoff_max_ms = max_ms < v->backoff_min_ms ? v->backoff_min_ms : max_ms;
    v->failures = 0;
    pthread_mutex_unlock(&v->lock);
}

void virt_force_reconnect(struct virt *v)
{
    pthread_mutex_lock(&v->lock);
    if (v->conn)
        v->lost = true;
    pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->lock);
}

/* ---- ready-made work (worker threads) ---- */

int virt_error(virConnectPtr conn, const char *what, char **err)
{
    virErrorPtr e = virGetLastError();
    int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
    int ret;

    switch (code) {
    case VIR_ERR_NO_DOMAIN:
        ret = -ENOENT;
        break;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_RPC:
        ret = -ENOTCONN;
        break;
    case VIR_ERR_OPERATION_TIMEOUT:
        ret = -ETIMEDOUT;
        break;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_CONFIG_UNSUPPORTED:
    case VIR_ERR_INVALID_ARG:
        ret = -EINVAL;
        break;
    case VIR_ERR_DOM_EXIST:
        ret = -EEXIST;
        break;
    case VIR_ERR_OPERATION_DENIED:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_ACCESS_DENIED:
        ret = -EACCES;
        break;
    case VIR_ERR_NO_SUPPORT:
        ret = -ENOTSUP;
        break;
    default:
        ret = -EIO;
        break;
    }
    if (err) {
        /* Before virConnectIsAlive, which resets the last error. */
        free(*err);
        xasprintf(err, "%s: %s", what,
                  e && e->message ? e->message : "unknown libvirt error");
        /* Schema errors span lines; a log line and a status message do not. */
        for (char *p = *err; *p; p++) {
            if (*p == '\n')
                *p = p[1] ? ' ' : '\0';
        }
    }
    /* Whatever libvirt called it, a dead connection is what to act on. */
    if (ret != -ENOENT && conn && virConnectIsAlive(conn) == 0)
        ret = -ENOTCONN;
    virResetLastError();
    return ret;
}

int virt_not_connected(char **err)
{
    if (err) {
        free(*err);
        *err = xstrdup("not connected to libvirt");
    }
    return -ENOTCONN;
}

bool virt_error_transient(int ret)
{
    /* Out of descriptors: another client of the host (or of vtpmd)
     * holds them for now; a retry can succeed. */
    return ret == -ENOTCONN || ret == -ETIMEDOUT || ret == -EAGAIN || ret == -EMFILE ||
           ret == -ENFILE;
}

static int virt_bad_args(char **err, const char *what)
{
    if (err) {
        free(*err);
        xasprintf(err, "%s: invalid arguments", what);
    }
    return -EINVAL;
}

static void dom_freep(virDomainPtr *d)
{
    if (*d)
        virDomainFree(*d);
}
#define autodom __attribute__((cleanup(dom_freep)))

/* The last error's code without consuming it. */
static int virt_last_code(void)
{
    virErrorPtr e = virGetLastError();

    return e ? e->code : VIR_ERR_OK;
}

static void virt_set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void virt_set_err(char **err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    free(*err);
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        abort();
    va_end(ap);
}

/* Starts dom unless it runs (resumes it when paused). */
static int virt_start(virConnectPtr conn, virDomainPtr dom, char **err)
{
    int active, state, reason;

    if ((active = virDomainIsActive(dom)) < 0)
        return virt_error(conn, "start", err);
    if (!active) {
        if (virDomainCreate(dom) == 0)
            return 0;
        /* Started by someone else meanwhile: that is what we wanted. */
        if (virt_last_code() == VIR_ERR_OPERATION_INVALID && virDomainIsActive(dom) == 1) {
            virResetLastError();
            return 0;
        }
        return virt_error(conn, "start", err);
    }
    if (virDomainGetState(dom, &state, &reason, 0) < 0)
        return virt_error(conn, "state", err);
    if (state == VIR_DOMAIN_PAUSED && virDomainResume(dom) < 0)
        return virt_error(conn, "resume", err);
    return 0;
}

/* What libvirt says when VIR_DOMAIN_DEFINE_VALIDATE fails on the schema. */
static bool virt_schema_refused(void)
{
    return virt_last_code() == VIR_ERR_XML_INVALID_SCHEMA;
}

/* The <vtpm> of the domain as libvirt has it defined, against the one
 * of the XML that was given: 0 the same, -ENODEV dropped or changed. */
static int virt_check_vtpm(virConnectPtr conn, virDomainPtr dom, const char *want_backend,
                           const char *want_uuid, char **err)
{
    char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    char *backend = NULL, *uuid = NULL;
    int r, ret = 0;

    if (xml == NULL)
        return virt_error(conn, "dumpxml", err);
    r = domxml_find_vtpm(xml, &backend, &uuid);
    free(xml);
    if (r == -ENOENT) {
        virt_set_err(err, "define: libvirt dropped the <vtpm> device from domain '%s' (a "
                     "libvirt without vtpmd's <vtpm> series, see contrib/libvirt)",
                     virDomainGetName(dom));
        ret = -ENODEV;
    } else if (r < 0 || strcmp(backend, want_backend) != 0 ||
               (want_uuid && (uuid == NULL || strcasecmp(uuid, want_uuid) != 0))) {
        virt_set_err(err, "define: domain '%s' has not the <vtpm> device it was defined with",
                     virDomainGetName(dom));
        ret = -ENODEV;
    }
    free(backend);
    free(uuid);
    return ret;
}

int virt_define_start(virConnectPtr conn, const char *xml, const char *name, unsigned flags,
                      char **err)
{
    virDomainPtr dom autodom = NULL;
    char *want_backend = NULL, *want_uuid = NULL;
    int ret;

    if (conn == NULL)
        return virt_not_connected(err);
    if (xml == NULL || !domxml_name_valid(name) || (flags & ~VIRT_REQUIRE_VTPM))
        return virt_bad_args(err, "define");
    if ((flags & VIRT_REQUIRE_VTPM) && domxml_find_vtpm(xml, &want_backend, &want_uuid) < 0)
        return virt_bad_args(err, "define (no <vtpm> device to require)");

    dom = virDomainDefineXMLFlags(conn, xml,
                                  flags & VIRT_REQUIRE_VTPM ? VIR_DOMAIN_DEFINE_VALIDATE : 0);
    if (dom == NULL) {
        /* Name or UUID taken by another domain is OPERATION_FAILED. */
        int code = virt_last_code();
        bool refused = (flags & VIRT_REQUIRE_VTPM) && virt_schema_refused();

        ret = virt_error(conn, "define", err);
        if (refused) {
            char *why = err ? steal_ptr(*err) : NULL;

            virt_set_err(err, "libvirt's domain schema refuses the stub domain (a libvirt "
                         "without vtpmd's <vtpm> series, see contrib/libvirt): %s",
                         why ? why : "?");
            free(why);
            ret = -ENODEV;
        } else if (code == VIR_ERR_OPERATION_FAILED && ret == -EIO) {
            ret = -EEXIST;
        }
        goto out;
    }
    if (strcmp(virDomainGetName(dom), name) != 0) {
        virt_set_err(err, "define: XML names domain '%s', expected '%s'",
                     virDomainGetName(dom), name);
        ret = -EINVAL;
        goto out;
    }
    /* Before anything starts: a stub domain without its device would come
     * up and be reported ready while the guest gets no vTPM. */
    if ((flags & VIRT_REQUIRE_VTPM) &&
        (ret = virt_check_vtpm(conn, dom, want_backend, want_uuid, err)) < 0)
        goto out;
    ret = virt_start(conn, dom, err);
out:
    free(want_backend);
    free(want_uuid);
    return ret;
}

int virt_probe_vtpm(virConnectPtr conn, const char *kernel, char **err)
{
    virDomainPtr dom autodom = NULL;
    char *xml = NULL;
    int ret;

    if (conn == NULL)
        return virt_not_connected(err);
    if (domxml_build_probe(VIRT_PROBE_NAME, VIRT_PROBE_UUID, kernel, "vtpmmgr", &xml) < 0)
        return virt_bad_args(err, "probe");
    dom = virDomainDefineXMLFlags(conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
    free(xml);
    if (dom == NULL) {
        if (virt_schema_refused()) {
            char *why = NULL;

            virt_error(conn, "define", &why);
            virt_set_err(err, "libvirt's domain schema refuses <vtpm>: %s", why);
            free(why);
            return 0;
        }
        return virt_error(conn, "probe: define", err);
    }
    ret = virt_check_vtpm(conn, dom, "vtpmmgr", VIRT_PROBE_UUID, err);
    if (ret == -ENODEV) {
        virt_set_err(err, "libvirt drops the <vtpm> device from a domain it defines");
        ret = 0;
    } else if (ret == 0) {
        ret = 1;
    }
    if (virDomainUndefine(dom) < 0) {
        if (ret >= 0)
            ret = virt_error(conn, "probe: undefine", err);
        else
            virResetLastError();
    }
    return ret;
}

/* Whether dom carries vtpmd metadata (of instance_uuid, when not NULL):
 * 1 yes, 0 no, <0 error. */
static int virt_has_metadata(virConnectPtr conn, virDomainPtr dom, const char *instance_uuid,
                             char **err)
{
    char *m = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, DOMXML_NS_URI, 0);

    if (m) {
        struct domxml_meta meta;
        int ours = 1;

        /* Another instance's domain (an orphan, or a name template that
         * collided) is not this instance's to remove. */
        if (instance_uuid) {
            ours = 0;
            if (domxml_parse_metadata(m, &meta) == 0) {
                ours = strcmp(meta.instance_uuid, instance_uuid) == 0;
                domxml_meta_clear(&meta);
            }
        }
        free(m);
        return ours;
    }
    if (virt_last_code() == VIR_ERR_NO_DOMAIN_METADATA) {
        virResetLastError();
        return 0;
    }
    return virt_error(conn, "metadata", err);
}

int virt_destroy_undefine(virConnectPtr conn, const char *name, char **err)
{
    return virt_destroy_undefine_for(conn, name, NULL, err);
}

int virt_destroy_undefine_for(virConnectPtr conn, const char *name, const char *instance_uuid,
                              char **err)
{
    virDomainPtr dom autodom = NULL;
    int ret, active;

    if (conn == NULL)
        return virt_not_connected(err);
    if (!domxml_name_valid(name))
        return virt_bad_args(err, "destroy");

    if ((dom = virDomainLookupByName(conn, name)) == NULL) {
        ret = virt_error(conn, "lookup", err);
        goto gone;
    }
    if ((ret = virt_has_metadata(conn, dom, instance_uuid, err)) <= 0) {
        if (ret == 0) {
            if (err) {
                free(*err);
                xasprintf(err, "destroy: domain '%s' has no vtpmd metadata%s; not ours", name,
                          instance_uuid ? " of this instance" : "");
            }
            return -EPERM;
        }
        goto gone;
    }
    if ((active = virDomainIsActive(dom)) < 0) {
        ret = virt_error(conn, "destroy", err);
        goto gone;
    }
    if (active && virDomainDestroy(dom) < 0) {
        /* Stopped meanwhile: carry on with undefine. */
        if (virt_last_code() == VIR_ERR_OPERATION_INVALID) {
            virResetLastError();
        } else {
            ret = virt_error(conn, "destroy", err);
            goto gone;
        }
    }
    if (virDomainUndefine(dom) == 0)
        return 0;
    /* A transient domain vanished with destroy; "cannot undefine
     * transient domain" then means it is gone. */
    ret = virt_error(conn, "undefine", err);
    if (ret != -ENOENT) {
        virDomainPtr again = virDomainLookupByName(conn, name);

        if (again == NULL && virt_last_code() == VIR_ERR_NO_DOMAIN)
            ret = -ENOENT;
        if (again)
            virDomainFree(again);
        virResetLastError();
    }
gone:
    if (ret == -ENOENT) {
        if (err) {
            free(*err);
            *err = NULL;
        }
        return 0;
    }
    return ret;
}

int virt_get_xml(virConnectPtr conn, const char *name, char **xml_out, char **err)
{
    virDomainPtr dom autodom = NULL;
    char *xml;

    if (conn == NULL)
        return virt_not_connected(err);
    if (!domxml_name_valid(name) || xml_out == NULL)
        return virt_bad_args(err, "dumpxml");
    if ((dom = virDomainLookupByName(conn, name)) == NULL)
        return virt_error(conn, "lookup", err);
    if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL)
        return virt_error(conn, "dumpxml", err);
    *xml_out = xml;
    return 0;
}

int virt_list_vtpmd(virConnectPtr conn, struct virt_domain_info **out, size_t *n, char **err)
{
    virDomainPtr *doms = NULL;
    struct virt_domain_info *list = NULL;
    size_t count = 0;
    int ndoms, ret = 0;

    if (conn == NULL)
        return virt_not_connected(err);
    if (out == NULL || n == NULL)
        return virt_bad_args(err, "list");
    if ((ndoms = virConnectListAllDomains(conn, &doms, 0)) < 0)
        return virt_error(conn, "list", err);
    if (ndoms > 0)
        list = xcalloc((size_t)ndoms, sizeof(*list));

    for (int i = 0; i < ndoms; i++) {
        const char *name = virDomainGetName(doms[i]);
        char *m = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT,
                                       DOMXML_NS_URI, 0);
        struct domxml_meta meta;
        int active, r;

        if (m == NULL) {
            int code = virt_last_code();

            /* Not ours, or undefined since the listing. */
            if (code == VIR_ERR_NO_DOMAIN_METADATA || code == VIR_ERR_NO_DOMAIN) {
                virResetLastError();
                continue;
            }
            ret = virt_error(conn, "metadata", err);
            goto out;
        }
        r = domxml_parse_metadata(m, &meta);
        free(m);
        if (r < 0) {
            log_warn("libvirt domain with invalid vtpmd metadata skipped domain=%s", name);
            continue;
        }
        if ((active = virDomainIsActive(doms[i])) < 0) {
            domxml_meta_clear(&meta);
            if (virt_last_code() == VIR_ERR_NO_DOMAIN) {
                virResetLastError();
                continue;
            }
            ret = virt_error(conn, "state", err);
            goto out;
        }
        list[count].name = xstrdup(name);
        list[count].active = active == 1;
        list[count].meta = meta;
        count++;
    }
    if (count == 0) {
        free(list);
        list = NULL;
    }
    *out = steal_ptr(list);
    *n = count;
out:
    virt_domain_info_free(list, count);
    for (int i = 0; i < ndoms; i++)
        virDomainFree(doms[i]);
    free(doms);
    return ret;
}

void virt_domain_info_free(struct virt_domain_info *d, size_t n)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(d[i].name);
        domxml_meta_clear(&d[i].meta);
    }
    free(d);
}
