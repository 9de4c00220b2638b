#include "autoconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>

#include <event2/event.h>

#include "bus.h"
#include "log.h"
#include "vtpmd.h"
#include "xalloc.h"

struct vtpmd {
    struct event_base *base;
    struct config *cfg;
    char *config_path;
    bool level_override;
    enum log_level level;
    struct event *ev_term;
    struct event *ev_int;
    struct event *ev_hup;
    bool stopping;
    struct bus *bus;
};

/* ---- bus wiring ---------------------------------------------------
 * Until the engine takes the deliveries over, each one is logged and
 * acknowledged. SIGTERM stops the bus gracefully (consumer cancelled,
 * acks sent, confirms awaited, connection closed) before the loop ends. */
static void vtpmd_bus_deliver(struct bus_delivery *bd, const void *body, size_t len,
                              const char *content_type, bool redelivered, void *arg)
{
    struct vtpmd *d = arg;

    log_debug("delivery tag=%" PRIu64 " bytes=%zu content_type=%s redelivered=%d",
              bus_delivery_tag(bd), len, content_type ? content_type : "-", redelivered);
    bus_ack(d->bus, bd);
}

static void vtpmd_bus_stopped(void *arg)
{
    struct vtpmd *d = arg;

    event_base_loopexit(d->base, NULL);
}

static int vtpmd_bus_new(struct vtpmd *d)
{
    static const struct bus_callbacks cb = {.deliver = vtpmd_bus_deliver};

    return bus_new(d->base, d->cfg, &cb, d, &d->bus);
}
/* ---- end of bus wiring -------------------------------------------- */

static void vtpmd_apply_logging(struct vtpmd *d)
{
    log_set_level(d->level_override ? d->level : (enum log_level)d->cfg->log.level);
    log_set_target(d->cfg->log.target == LOG_TARGET_CFG_SYSLOG ? LOG_TARGET_SYSLOG
                                                               : LOG_TARGET_STDERR);
}

int vtpmd_reload(struct vtpmd *d)
{
    struct cfg_errors errs = {0};
    struct config *next;

    log_info("reloading configuration file=%s", d->config_path);
    if (config_load(d->config_path, &next, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("%s", errs.msgs[i]);
        log_error("reload failed, keeping the running configuration file=%s errors=%zu",
                  d->config_path, errs.n);
        cfg_errors_free(&errs);
        return -EINVAL;
    }
    config_free(d->cfg);
    d->cfg = next;
    vtpmd_apply_logging(d);
    bus_reconfigure(d->bus, d->cfg);
    log_info("configuration reloaded file=%s host=%s rules=%zu", d->config_path,
             d->cfg->host, d->cfg->policy.rules.n);
    return 0;
}

void vtpmd_stop(struct vtpmd *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("stopping");
    bus_stop(d->bus, vtpmd_bus_stopped, d);
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
    if (vtpmd_bus_new(d) < 0) {
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
    bus_free(d->bus);
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
