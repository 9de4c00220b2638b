/* vtpm-proxyd's daemon context, see include/proxyd/proxyd.h. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <event2/event.h>

#include "cmdline.h"
#include "log.h"
#include "proxyd/api.h"
#include "proxyd/proxyd.h"
#include "proxyd/service.h"
#include "xalloc.h"

/* After SIGTERM, jobs in flight get this long to finish. */
#define STOP_GRACE_S 30

struct proxyd {
    struct event_base *base;
    struct pconfig *cfg;
    char *config_path;
    bool level_override;
    enum log_level level;
    struct service *svc;
    struct api *api;
    struct event *ev_term, *ev_int, *ev_hup, *ev_stop;
    bool stopping;
};

static void apply_logging(struct proxyd *p)
{
    log_set_level(p->level_override ? p->level : (enum log_level)p->cfg->log.level);
    log_set_target(p->cfg->log.target == PCONFIG_LOG_SYSLOG ? LOG_TARGET_SYSLOG
                                                            : LOG_TARGET_STDERR);
}

int proxyd_reload(struct proxyd *p)
{
    struct cfg_errors errs = {0};
    struct pconfig *next;

    log_info("reloading configuration file=%s", p->config_path);
    if (pconfig_load(p->config_path, &next, &errs) < 0)
        return cmdline_reload_errors(&errs, p->config_path);
    if (api_reload_tls(p->api, next) < 0) {
        log_error("reload failed, keeping the running configuration file=%s",
                  p->config_path);
        pconfig_free(next);
        return -EINVAL;
    }
    /* Fixed for the process' life: the socket, the device, the lock (the
     * keys marked CFG_RESTART), and whether the API speaks TLS. */
    cfg_restart_changed(&pconfig_table, p->cfg, next, cmdline_warn_restart,
                        (void *)"vtpm-proxyd");
    if ((next->tls.cert_file == NULL) != (p->cfg->tls.cert_file == NULL))
        log_warn("turning TLS on or off takes effect at the next start");
    service_reconfigure(p->svc, next);
    api_set_limits(p->api, next);
    pconfig_free(p->cfg);
    p->cfg = next;
    apply_logging(p);
    log_info("configuration reloaded file=%s", p->config_path);
    return 0;
}

static void stop_now(evutil_socket_t fd, short what, void *arg)
{
    struct proxyd *p = arg;

    log_warn("jobs still running after %d s, stopping anyway", STOP_GRACE_S);
    event_base_loopexit(p->base, NULL);
}

static void drained(void *arg)
{
    struct proxyd *p = arg;
    /* A moment for the last answers to leave their sockets. */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200 * 1000};

    event_base_loopexit(p->base, &tv);
}

static void proxyd_stop(struct proxyd *p)
{
    struct timeval tv = {.tv_sec = STOP_GRACE_S};

    if (p->stopping)
        return;
    p->stopping = true;
    log_info("stopping");
    api_stop_accepting(p->api);
    evtimer_add(p->ev_stop, &tv);
    service_drain(p->svc, drained, p);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxyd *p = arg;

    if (sig == SIGHUP) {
        if (!p->stopping && proxyd_reload(p) == 0)
            service_reconcile(p->svc, NULL, NULL);
        return;
    }
    log_info("signal received signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    proxyd_stop(p);
}

int proxyd_new(const struct cmdline *cl, struct pconfig *cfg, struct proxyd **out)
{
    struct proxyd *p = xcalloc(1, sizeof(*p));
    int ret;

    p->cfg = cfg;
    p->config_path = xstrdup(cl->config_path);
    p->level_override = cl->have_level;
    p->level = cl->level;
    apply_logging(p);
    p->base = event_base_new();
    if (p->base == NULL) {
        log_error("cannot create the event loop");
        ret = -ENOMEM;
        goto fail;
    }
    p->ev_term = evsignal_new(p->base, SIGTERM, signal_cb, p);
    p->ev_int = evsignal_new(p->base, SIGINT, signal_cb, p);
    p->ev_hup = evsignal_new(p->base, SIGHUP, signal_cb, p);
    p->ev_stop = evtimer_new(p->base, stop_now, p);
    if (!p->ev_term || !p->ev_int || !p->ev_hup || !p->ev_stop ||
        evsignal_add(p->ev_term, NULL) < 0 || evsignal_add(p->ev_int, NULL) < 0 ||
        evsignal_add(p->ev_hup, NULL) < 0) {
        log_error("cannot install signal handlers");
        ret = -EIO;
        goto fail;
    }
    if ((ret = service_new(p->base, cfg, &p->svc)) < 0)
        goto fail;
    if ((ret = api_new(p->base, cfg, p->svc, &p->api)) < 0)
        goto fail;
    *out = p;
    return 0;
fail:
    proxyd_free(p);
    return ret;
}

int proxyd_run(struct proxyd *p)
{
    log_info("vtpm-proxyd %s started config=%s device=%s group=%s state_dir=%s "
             "orphans=%s missing=%s", PACKAGE_VERSION, p->config_path,
             p->cfg->vtpmmgr.device, p->cfg->vtpmmgr.group ? p->cfg->vtpmmgr.group : "index-0",
             p->cfg->state_dir, p->cfg->orphans == PCONFIG_ORPHANS_DELETE ? "delete" : "report",
             p->cfg->missing == PCONFIG_MISSING_RECREATE ? "recreate" : "report");
    service_start(p->svc);
    if (event_base_dispatch(p->base) < 0) {
        log_error("event loop failed");
        return EXIT_RUNTIME;
    }
    log_info("stopped");
    return EXIT_OK;
}

void proxyd_free(struct proxyd *p)
{
    if (p == NULL)
        return;
    /* Jobs first: their callbacks still answer requests on the server. */
    service_free(p->svc);
    api_free(p->api);
    if (p->ev_term)
        event_free(p->ev_term);
    if (p->ev_int)
        event_free(p->ev_int);
    if (p->ev_hup)
        event_free(p->ev_hup);
    if (p->ev_stop)
        event_free(p->ev_stop);
    if (p->base)
        event_base_free(p->base);
    pconfig_free(p->cfg);
    free(p->config_path);
    free(p);
}
