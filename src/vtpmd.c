/* The daemon context: creates the modules, wires their callbacks to one
 * another, reloads and stops them. It decides nothing itself. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>

#include <event2/event.h>

#include "bus.h"
#include "cfg.h"
#include "cmdline.h"
#include "control.h"
#include "engine.h"
#include "httpsrv.h"
#include "journal.h"
#include "log.h"
#include "policy.h"
#include "sdnotify.h"
#include "virt.h"
#include "vtpmd.h"
#include "vtpmmgr.h"
#include "xalloc.h"

/* How long a graceful stop waits for work under way. */
#define VTPMD_DRAIN_MS 10000
#define VTPMD_TOMBSTONE_TTL (24 * 3600)

struct vtpmd {
    struct event_base *base;
    struct config *cfg;
    char *config_path;
    bool level_override;
    enum log_level level;
    struct event *ev_term;
    struct event *ev_int;
    struct event *ev_hup;
    struct event *drain_timer;
    unsigned drain_ticks;
    bool stopping;

    /* systemd (sd_notify): READY=1 once, when vtpmd_maybe_ready says so. */
    struct sdnotify *notify;
    struct event *watchdog;
    bool bus_ready;
    bool ready_sent;

    struct journal *journal;
    struct vtpmmgr *vtpmmgr;
    struct vtpmmgr **retired; /* replaced by a reload, freed once idle */
    size_t nretired;
    struct event *retire_timer;
    struct virt *virt;
    struct policy *policy;
    struct bus *bus;
    struct engine *engine;
    struct control *control;
};

/* ---- callbacks between modules ----------------------------------- */

static void vtpmd_deliver(struct bus_delivery *bd, const void *body, size_t len,
                          const char *content_type, bool redelivered, void *arg)
{
    struct vtpmd *d = arg;

    log_debug("delivery tag=%" PRIu64 " bytes=%zu content_type=%s redelivered=%d",
              bus_delivery_tag(bd), len, content_type ? content_type : "-", redelivered);
    engine_deliver(bd, body, len, content_type, redelivered, d->engine);
}

/* Tells systemd READY=1 the first time everything vtpmd must have before
 * it can answer for guests is there: the bus consuming, and the start-up
 * reconciliation done (libvirt brought in line with the journal). Later
 * calls only update STATUS=. */
static void vtpmd_maybe_ready(struct vtpmd *d)
{
    int ret;

    if (d->stopping || !d->bus_ready || d->engine == NULL || !engine_reconciled(d->engine))
        return;
    ret = sdnotify_sendf(d->notify, "%sSTATUS=consuming notifications host=%s",
                         d->ready_sent ? "" : "READY=1\n", d->cfg->host);
    if (ret < 0)
        log_warn("cannot notify systemd: %s", strerror(-ret));
    d->ready_sent = true;
}

static void vtpmd_reconciled(void *arg)
{
    vtpmd_maybe_ready(arg);
}

static void vtpmd_bus_state(bool ready, void *arg)
{
    struct vtpmd *d = arg;

    log_info("bus %s", ready ? "ready" : "not ready");
    d->bus_ready = ready;
    if (ready)
        vtpmd_maybe_ready(d);
    else if (!d->stopping)
        sdnotify_send(d->notify, "STATUS=broker not reachable, reconnecting");
}

static void vtpmd_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vtpmd *d = arg;

    /* The loop turning is what the watchdog checks. */
    sdnotify_send(d->notify, "WATCHDOG=1");
}

static void vtpmd_libvirt_connection(bool up, void *arg)
{
    struct vtpmd *d = arg;

    log_info("libvirt %s uri=%s", up ? "connected" : "disconnected", d->cfg->libvirt.uri);
    if (d->engine)
        engine_libvirt_state(d->engine, up);
}

static void vtpmd_lifecycle(const char *name, int event, int detail, void *arg)
{
    struct vtpmd *d = arg;

    if (d->engine)
        engine_domain_event(d->engine, name, event, detail);
}

static unsigned secs(uint64_t ms)
{
    return (unsigned)((ms + 999) / 1000);
}

static void vtpmd_control_limits(const struct config *cfg, struct control_limits *l)
{
    l->max_connections = (unsigned)cfg->control.max_connections;
    l->idle_timeout_s = secs(cfg->control.idle_timeout_ms);
    l->header_timeout_s = secs(cfg->control.header_timeout_ms);
    l->request_timeout_s = secs(cfg->control.request_timeout_ms);
    l->max_waiters = (unsigned)cfg->control.max_waiters;
}

static int vtpmd_control_reload(void *arg)
{
    return vtpmd_reload(arg);
}

/* A vtpmmgr client replaced by a reload finishes what it has under way
 * and is freed when idle. */
static void vtpmd_retire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vtpmd *d = arg;
    size_t k = 0;

    for (size_t i = 0; i < d->nretired; i++) {
        if (vtpmmgr_pending(d->retired[i]) == 0)
            vtpmmgr_free(d->retired[i]);
        else
            d->retired[k++] = d->retired[i];
    }
    d->nretired = k;
    if (k == 0)
        event_del(d->retire_timer);
}

static bool vtpmmgr_settings_changed(const struct config *a, const struct config *b)
{
#define SAME_STR(x) ((a->x == NULL && b->x == NULL) || (a->x && b->x && strcmp(a->x, b->x) == 0))
    return !(a->vtpmmgr.provider == b->vtpmmgr.provider && SAME_STR(vtpmmgr.url) &&
             a->vtpmmgr.api == b->vtpmmgr.api && a->vtpmmgr.timeout_ms == b->vtpmmgr.timeout_ms &&
             a->vtpmmgr.retry_for_ms == b->vtpmmgr.retry_for_ms &&
             SAME_STR(vtpmmgr.tls.ca_file) && SAME_STR(vtpmmgr.tls.cert_file) &&
             SAME_STR(vtpmmgr.tls.key_file) &&
             a->vtpmmgr.tls.verify_peer == b->vtpmmgr.tls.verify_peer &&
             a->vtpmmgr.tls.verify_hostname == b->vtpmmgr.tls.verify_hostname &&
             SAME_STR(host));
#undef SAME_STR
}

static void vtpmd_apply_logging(struct vtpmd *d)
{
    log_set_level(d->level_override ? d->level : (enum log_level)d->cfg->log.level);
    log_set_target(d->cfg->log.target == LOG_TARGET_CFG_SYSLOG ? LOG_TARGET_SYSLOG
                                                               : LOG_TARGET_STDERR);
}

/* What an operator should know about a configuration that loaded. */
static void vtpmd_config_warnings(const struct config *cfg)
{
    char *w = config_host_warning(cfg);

    if (w)
        log_warn("%s", w);
    free(w);
    if (!cfg->libvirt.require_vtpm)
        log_warn("libvirt.require_vtpm is false: a stub domain that libvirt defines "
                 "without its <vtpm> device is reported ready (only for test:///default)");
}

int vtpmd_reload(struct vtpmd *d)
{
    struct cfg_errors errs = {0};
    struct config *next;
    struct policy *policy;

    log_info("reloading configuration file=%s", d->config_path);
    if (config_load(d->config_path, &next, &errs) < 0)
        return cmdline_reload_errors(&errs, d->config_path);
    if (policy_new(next, &policy) < 0) {
        log_error("reload failed: the policy cannot be compiled; keeping the running "
                  "configuration file=%s", d->config_path);
        config_free(next);
        return -EINVAL;
    }
    if (d->vtpmmgr && vtpmmgr_settings_changed(d->cfg, next)) {
        struct vtpmmgr *m = NULL;
        struct timeval sec = {1, 0};

        if (vtpmmgr_new(d->base, next, &m) < 0) {
            log_error("reload failed: cannot set up the new vtpmmgr client; keeping the "
                      "running configuration file=%s", d->config_path);
            policy_free(policy);
            config_free(next);
            return -EINVAL;
        }
        d->retired = xreallocarray(d->retired, d->nretired + 1, sizeof(*d->retired));
        d->retired[d->nretired++] = d->vtpmmgr;
        d->vtpmmgr = m;
        if (d->engine)
            engine_set_vtpmmgr(d->engine, m);
        if (d->retire_timer == NULL)
            d->retire_timer = event_new(d->base, -1, EV_PERSIST, vtpmd_retire_cb, d);
        event_add(d->retire_timer, &sec);
        log_info("vtpmmgr client replaced provider=%d api=%d", next->vtpmmgr.provider,
                 next->vtpmmgr.api);
    }
    /* Everything is valid: swap. */
    cfg_restart_changed(&config_table, d->cfg, next, cmdline_warn_restart, (void *)"vtpmd");
    if (d->engine)
        engine_reconfigure(d->engine, next, policy);
    if (d->bus)
        bus_reconfigure(d->bus, next);
    if (d->control) {
        struct control_limits lim;

        vtpmd_control_limits(next, &lim);
        control_set_limits(d->control, &lim);
    }
    policy_free(d->policy);
    d->policy = policy;
    config_free(d->cfg);
    d->cfg = next;
    vtpmd_apply_logging(d);
    log_info("configuration reloaded file=%s host=%s rules=%zu", d->config_path,
             d->cfg->host, d->cfg->policy.rules.n);
    vtpmd_config_warnings(d->cfg);
    return 0;
}

/* ---- stopping ---------------------------------------------------- */

static void vtpmd_bus_stopped(void *arg)
{
    struct vtpmd *d = arg;

    event_base_loopexit(d->base, NULL);
}

static void vtpmd_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vtpmd *d = arg;
    size_t busy = engine_busy(d->engine);

    if (busy > 0 && ++d->drain_ticks * 50 < VTPMD_DRAIN_MS)
        return;
    if (busy > 0)
        log_warn("stopping with work under way instances=%zu (redelivered on restart)", busy);
    event_del(d->drain_timer);
    bus_stop(d->bus, vtpmd_bus_stopped, d);
}

void vtpmd_stop(struct vtpmd *d)
{
    struct timeval tick = {0, 50000};

    if (d->stopping)
        return;
    d->stopping = true;
    log_info("stopping busy=%zu", d->engine ? engine_busy(d->engine) : 0);
    sdnotify_send(d->notify, "STOPPING=1\nSTATUS=stopping, draining work under way");
    if (d->engine == NULL) {
        event_base_loopexit(d->base, NULL);
        return;
    }
    engine_drain(d->engine);
    d->drain_timer = event_new(d->base, -1, EV_PERSIST, vtpmd_drain_cb, d);
    event_add(d->drain_timer, &tick);
    vtpmd_drain_cb(-1, 0, d);
}

static void vtpmd_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct vtpmd *d = arg;

    if (sig == SIGHUP) {
        vtpmd_reload(d);
        return;
    }
    log_info("signal received signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    vtpmd_stop(d);
}

/* ---- creation ---------------------------------------------------- */

static int vtpmd_modules_new(struct vtpmd *d)
{
    static const struct bus_callbacks bus_cb = {
        .deliver = vtpmd_deliver,
        .state_changed = vtpmd_bus_state,
    };
    const struct virt_callbacks virt_cb = { /* copied by virt_new */
        .lifecycle = vtpmd_lifecycle,
        .lifecycle_events = engine_domain_events,
        .connection = vtpmd_libvirt_connection,
    };
    struct engine_deps deps = {0};
    struct control_limits lim;
    char *err = NULL;
    int ret;

    ret = journal_open(d->base, d->cfg->state_dir, VTPMD_TOMBSTONE_TTL, &d->journal, &err);
    if (ret < 0) {
        log_error("cannot open the journal: %s", err);
        goto out;
    }
    ret = policy_new(d->cfg, &d->policy);
    if (ret < 0) {
        log_error("cannot compile the policy");
        goto out;
    }
    ret = vtpmmgr_new(d->base, d->cfg, &d->vtpmmgr);
    if (ret < 0) {
        log_error("cannot set up the vtpmmgr client provider=%s", d->cfg->vtpmmgr.url ? d->cfg->vtpmmgr.url : "local");
        goto out;
    }
    ret = virt_new_workers(d->base, d->cfg->libvirt.uri, (unsigned)d->cfg->libvirt.workers,
                           &virt_cb, d, &d->virt);
    if (ret < 0) {
        log_error("cannot start the libvirt workers uri=%s", d->cfg->libvirt.uri);
        goto out;
    }
    ret = bus_new(d->base, d->cfg, &bus_cb, d, &d->bus);
    if (ret < 0) {
        log_error("cannot set up the AMQP bus");
        goto out;
    }
    deps.bus = d->bus;
    deps.vtpmmgr = d->vtpmmgr;
    deps.virt = d->virt;
    deps.journal = d->journal;
    deps.reload = vtpmd_control_reload;
    deps.reload_arg = d;
    deps.reconciled = vtpmd_reconciled;
    ret = engine_new(d->base, &deps, d->cfg, d->policy, &d->engine);
    if (ret < 0)
        goto out;
    engine_libvirt_state(d->engine, virt_is_connected(d->virt));
    vtpmd_control_limits(d->cfg, &lim);
    /* Every listener's cap, plus the daemon's own descriptors (broker,
     * libvirt, journal, images, the proxy). */
    httpsrv_fd_budget((unsigned long)lim.max_connections *
                          (d->cfg->control.metrics_listen ? 2 : 1) + 64 +
                      2 * (unsigned long)d->cfg->libvirt.workers);
    ret = control_new(d->base, d->cfg->control.socket, d->cfg->control.metrics_listen,
                      &lim, engine_control, d->engine, &d->control, &err);
    if (ret < 0)
        log_error("cannot start the control API: %s", err);
out:
    free(err);
    return ret;
}

int vtpmd_new(const struct cmdline *cl, struct config *cfg, struct vtpmd **out)
{
    struct vtpmd *d = xcalloc(1, sizeof(*d));

    d->cfg = cfg;
    d->config_path = xstrdup(cl->config_path);
    d->level_override = cl->have_level;
    d->level = cl->level;
    d->base = event_base_new();
    if (d->base == NULL) {
        log_error("cannot create the event loop");
        vtpmd_free(d);
        return -ENOMEM;
    }
    d->ev_term = evsignal_new(d->base, SIGTERM, vtpmd_signal_cb, d);
    d->ev_int = evsignal_new(d->base, SIGINT, vtpmd_signal_cb, d);
    d->ev_hup = evsignal_new(d->base, SIGHUP, vtpmd_signal_cb, d);
    if (!d->ev_term || !d->ev_int || !d->ev_hup || evsignal_add(d->ev_term, NULL) < 0 ||
        evsignal_add(d->ev_int, NULL) < 0 || evsignal_add(d->ev_hup, NULL) < 0) {
        log_error("cannot install signal handlers");
        vtpmd_free(d);
        return -EIO;
    }
    vtpmd_apply_logging(d);
    if (sdnotify_new(&d->notify) < 0)
        log_warn("ignoring a malformed NOTIFY_SOCKET (want /path or @name)");
    if (sdnotify_watchdog_usec(d->notify) > 0) {
        uint64_t half = sdnotify_watchdog_usec(d->notify) / 2;
        struct timeval tv = {(time_t)(half / 1000000), (suseconds_t)(half % 1000000)};

        d->watchdog = event_new(d->base, -1, EV_PERSIST, vtpmd_watchdog_cb, d);
        event_add(d->watchdog, &tv);
    }
    if (vtpmd_modules_new(d) < 0) {
        vtpmd_free(d);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int vtpmd_run(struct vtpmd *d)
{
    log_info("vtpmd %s started host=%s config=%s libvirt=%s", PACKAGE_VERSION,
             d->cfg->host, d->config_path, d->cfg->libvirt.uri);
    vtpmd_config_warnings(d->cfg);
    bus_start(d->bus);
    if (event_base_dispatch(d->base) < 0) {
        log_error("event loop failed");
        return EXIT_RUNTIME;
    }
    log_info("stopped");
    return EXIT_OK;
}

void vtpmd_free(struct vtpmd *d)
{
    if (d == NULL)
        return;
    if (d->ev_term)
        event_free(d->ev_term);
    if (d->ev_int)
        event_free(d->ev_int);
    if (d->ev_hup)
        event_free(d->ev_hup);
    if (d->drain_timer)
        event_free(d->drain_timer);
    if (d->watchdog)
        event_free(d->watchdog);
    sdnotify_free(d->notify);
    control_free(d->control);
    /* The bus has closed its connection (vtpmd_stop): the engine's held
     * deliveries are released unacked, then unconfirmed publishes are
     * reported to a stopping engine. */
    if (d->engine)
        engine_shutdown(d->engine);
    bus_free(d->bus);
    /* Jobs still with libvirt's workers hand their arguments back to the
     * (stopping) engine, which frees them. */
    virt_free_cancel(d->virt);
    engine_free(d->engine);
    vtpmmgr_free(d->vtpmmgr);
    for (size_t i = 0; i < d->nretired; i++)
        vtpmmgr_free(d->retired[i]);
    free(d->retired);
    if (d->retire_timer)
        event_free(d->retire_timer);
    journal_free(d->journal);
    policy_free(d->policy);
    if (d->base)
        event_base_free(d->base);
    config_free(d->cfg);
    free(d->config_path);
    free(d);
}

struct event_base *vtpmd_base(struct vtpmd *d)
{
    return d->base;
}

const struct config *vtpmd_config(const struct vtpmd *d)
{
    return d->cfg;
}

struct bus *vtpmd_bus(struct vtpmd *d)
{
    return d->bus;
}
