/* The engine's side of the control API: health, instances, long-poll
 * wait, reload and Prometheus metrics. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "vconfig.h"
#include "engine_priv.h"
#include "image.h"
#include "log.h"
#include "uuidutil.h"
#include "virt.h"
#include "vtpmmgr.h"
#include "xalloc.h"

#define WAIT_DEFAULT_S 300
#define WAIT_MAX_S 3600

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *inst_json(const struct inst *in)
{
    json_t *o = json_object();

    json_object_set_new(o, "instance_uuid", json_string(in->uuid));
    json_object_set_new(o, "state", json_string(engine_inst_state_name(in->state)));
    json_object_set_new(o, "vtpm_uuid", in->vtpm_uuid[0] ? json_string(in->vtpm_uuid) : json_null());
    json_object_set_new(o, "vtpm_domain", jstr_or_null(in->domain_name));
    json_object_set_new(o, "image_path", jstr_or_null(in->image_path));
    json_object_set_new(o, "rule", jstr_or_null(in->rule));
    json_object_set_new(o, "error", in->error ? json_pack("{s:s,s:s}", "code",
                                                          in->error_code ? in->error_code : "error",
                                                          "message", in->error)
                                              : json_null());
    return o;
}

/* Instances the API shows: anything vtpmd holds (not tombstones). */
static bool inst_visible(const struct inst *in)
{
    return in->state != INST_NONE && in->state != INST_DELETED;
}

static void list_one(const char *key, void *value, void *arg)
{
    struct inst *in = value;

    if (inst_visible(in))
        json_array_append_new(arg, inst_json(in));
}

/* ---- show: domain_xml as libvirt has it now ----------------------- */

struct show_job {
    struct engine *e;
    struct control_req *req;
    bool cancelled;
    char uuid[UUIDUTIL_BUFLEN];
    char *name;
    char *xml;
};

static void show_cancel(void *arg)
{
    ((struct show_job *)arg)->cancelled = true;
}

static int show_work(virConnectPtr conn, void *arg, char **err)
{
    struct show_job *j = arg;

    if (conn == NULL)
        return -ENOTCONN;
    return virt_get_xml(conn, j->name, &j->xml, err);
}

static void show_done(int ret, char *err, void *arg)
{
    struct show_job *j = arg;
    struct inst *in = hmap_get(j->e->insts, j->uuid);

    free(err);
    if (!j->cancelled) {
        control_req_on_cancel(j->req, NULL, NULL);
        if (in == NULL || !inst_visible(in)) {
            control_reply_error(j->req, 404, "vtpmd holds nothing for instance %s", j->uuid);
        } else {
            json_t *o = inst_json(in);
            json_object_set_new(o, "domain_xml", ret == 0 ? json_string(j->xml) : json_null());
            control_reply_json(j->req, 200, o);
        }
    }
    free(j->name);
    free(j->xml);
    free(j);
}

static void handle_show(struct engine *e, struct control_req *req, const char *uuid)
{
    struct inst *in = hmap_get(e->insts, uuid);
    struct show_job *j;

    if (in == NULL || !inst_visible(in)) {
        control_reply_error(req, 404, "vtpmd holds nothing for instance %s", uuid);
        return;
    }
    if (in->domain_name == NULL) {
        json_t *o = inst_json(in);
        json_object_set_new(o, "domain_xml", json_null());
        control_reply_json(req, 200, o);
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->e = e;
    j->req = req;
    memcpy(j->uuid, uuid, UUIDUTIL_BUFLEN);
    j->name = xstrdup(in->domain_name);
    control_req_on_cancel(req, show_cancel, j);
    if (virt_submit(e->deps.virt, show_work, show_done, j) < 0)
        show_done(-EIO, NULL, j);
}

/* ---- domains: libvirt's view ------------------------------------- */

struct domains_job {
    struct engine *e;
    struct control_req *req;
    bool cancelled;
    struct virt_domain_info *doms;
    size_t n;
};

static void domains_cancel(void *arg)
{
    ((struct domains_job *)arg)->cancelled = true;
}

static int domains_work(virConnectPtr conn, void *arg, char **err)
{
    struct domains_job *j = arg;

    if (conn == NULL)
        return virt_not_connected(err);
    return virt_list_vtpmd(conn, &j->doms, &j->n, err);
}

static void domains_done(int ret, char *err, void *arg)
{
    struct domains_job *j = arg;

    if (!j->cancelled) {
        control_req_on_cancel(j->req, NULL, NULL);
        if (ret < 0) {
            control_reply_error(j->req, 503, "libvirt: %s", err ? err : strerror(-ret));
        } else {
            json_t *a = json_array();
            for (size_t i = 0; i < j->n; i++) {
                const struct virt_domain_info *d = &j->doms[i];
                struct inst *in = hmap_get(j->e->insts, d->meta.instance_uuid);
                /* An orphan: vtpmd's metadata, but no instance it holds. */
                bool orphan = in == NULL || !(in->state == INST_READY ||
                                              in->state == INST_PROVISIONING ||
                                              in->state == INST_DELETING ||
                                              in->state == INST_DELETE_FAILED);
                json_array_append_new(
                    a, json_pack("{s:s,s:b,s:s,s:s,s:s?,s:b}", "name", d->name, "active",
                                 d->active, "instance_uuid", d->meta.instance_uuid,
                                 "vtpm_uuid", d->meta.vtpm_uuid, "image_path",
                                 d->meta.image_path, "orphan", orphan));
            }
            control_reply_json(j->req, 200, json_pack("{s:o}", "domains", a));
        }
    }
    free(err);
    virt_domain_info_free(j->doms, j->n);
    free(j);
}

static void handle_domains(struct engine *e, struct control_req *req)
{
    struct domains_job *j = xcalloc(1, sizeof(*j));

    j->e = e;
    j->req = req;
    control_req_on_cancel(req, domains_cancel, j);
    if (virt_submit(e->deps.virt, domains_work, domains_done, j) < 0)
        domains_done(-EIO, NULL, j);
}

/* ---- wait ------------------------------------------------------- */

static void waiter_free(struct engine_waiter *w)
{
    struct engine *e = w->e;

    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    event_free(w->timeout);
    free(w);
    if (e->waiters == NULL && e->waiter_tick)
        event_del(e->waiter_tick);
}

static void waiter_cancel(void *arg)
{
    waiter_free(arg);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct engine_waiter *w = arg;
    struct control_req *req = w->req;
    char uuid[UUIDUTIL_BUFLEN];

    memcpy(uuid, w->uuid, UUIDUTIL_BUFLEN);
    control_req_on_cancel(req, NULL, NULL);
    waiter_free(w);
    control_reply_error(req, 504, "timed out waiting for instance %s", uuid);
}

/* Answers the waiter if its question is settled; true when answered. */
static bool waiter_try(struct engine *e, struct engine_waiter *w)
{
    struct inst *in = hmap_get(e->insts, w->uuid);
    struct control_req *req = w->req;

    if (in && (in->state == INST_READY || in->state == INST_FAILED ||
               in->state == INST_DELETE_FAILED) && in->op == OP_IDLE) {
        json_t *o = inst_json(in);
        control_req_on_cancel(req, NULL, NULL);
        waiter_free(w);
        control_reply_json(req, 200, o);
        return true;
    }
    if (in && in->state != INST_NONE && in->state != INST_DELETED)
        return false; /* provisioning or deleting */
    if (in && (in->op != OP_IDLE || in->queue))
        return false;
    /* Holds nothing: an answer only once nothing is left to read. */
    if (!bus_caught_up(e->deps.bus))
        return false;
    {
        char uuid[UUIDUTIL_BUFLEN];
        memcpy(uuid, w->uuid, UUIDUTIL_BUFLEN);
        control_req_on_cancel(req, NULL, NULL);
        waiter_free(w);
        control_reply_error(req, 404, "vtpmd holds nothing for instance %s", uuid);
    }
    return true;
}

void engine_waiters_check(struct engine *e)
{
    struct engine_waiter *w = e->waiters, *next;

    for (; w; w = next) {
        next = w->next;
        waiter_try(e, w);
    }
}

static void waiter_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    engine_waiters_check(arg);
}

static void handle_wait(struct engine *e, struct control_req *req, const char *uuid)
{
    const char *ts = control_req_query(req, "timeout");
    struct engine_waiter *w;
    struct timeval tv = {WAIT_DEFAULT_S, 0};
    struct timeval tick = {0, 100000};

    if (ts) {
        char *end;
        double t = strtod(ts, &end);
        if (*ts == '\0' || *end != '\0' || !(t >= 0) || t > WAIT_MAX_S) {
            control_reply_error(req, 400, "timeout must be a number of seconds 0..%d", WAIT_MAX_S);
            return;
        }
        tv.tv_sec = (time_t)t;
        tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
    }
    w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->req = req;
    memcpy(w->uuid, uuid, UUIDUTIL_BUFLEN);
    w->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = w;
    e->waiters = w;
    w->timeout = evtimer_new(e->base, waiter_timeout, w);
    control_req_on_cancel(req, waiter_cancel, w);
    if (waiter_try(e, w))
        return;
    evtimer_add(w->timeout, &tv);
    /* Catching up is noticed by polling the bus's view of the queue. */
    if (e->waiter_tick == NULL)
        e->waiter_tick = event_new(e->base, -1, EV_PERSIST, waiter_tick_cb, e);
    if (!event_pending(e->waiter_tick, EV_TIMEOUT, NULL))
        event_add(e->waiter_tick, &tick);
}

/* ---- health and metrics ----------------------------------------- */

static void count_visible(const char *key, void *value, void *arg)
{
    (void)key;
    if (inst_visible(value))
        (*(size_t *)arg)++;
}

/* "instances" counts what list shows: live instances, not tombstones. */
static void handle_health(struct engine *e, struct control_req *req)
{
    struct bus_stats bs;
    size_t live = 0;
    bool ok;

    hmap_foreach(e->insts, count_visible, &live);
    bus_get_stats(e->deps.bus, &bs);
    /* A libvirt that drops <vtpm> fails every create while required. */
    ok = bs.connected && bs.consuming && e->libvirt_up &&
         !(e->libvirt_vtpm == 0 && e->cfg->libvirt.require_vtpm);
    control_reply_json(req, ok ? 200 : 503,
                       json_pack("{s:s,s:s,s:s,s:s,s:s?,s:i,s:i}", "status", ok ? "ok" : "degraded",
                                 "bus", bs.consuming ? "consuming"
                                        : bs.connected ? "connected" : "disconnected",
                                 "libvirt", e->libvirt_up ? "connected" : "disconnected",
                                 "libvirt_vtpm", e->libvirt_vtpm == 1 ? "supported"
                                                 : e->libvirt_vtpm == 0 ? "missing"
                                                                        : "unknown",
                                 "libvirt_vtpm_error", e->libvirt_vtpm == 1 ? NULL : e->vtpm_why,
                                 "instances", (json_int_t)live,
                                 "busy", (json_int_t)e->busy));
}

/* The Prometheus text being built. */
struct mbuf {
    char *buf;
    size_t len, cap;
};

static void metric(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void metric(struct mbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len)
            break;
        b->cap = (b->cap + (size_t)n) * 2;
        b->buf = xrealloc(b->buf, b->cap);
    }
    b->len += (size_t)n;
}

static void metric_head(struct mbuf *b, const char *name, const char *type, const char *help)
{
    metric(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Notifications, outcomes, decisions, retries. */
static void metrics_counts(struct mbuf *b, const struct engine *e)
{
    const struct engine_metrics *m = &e->m;

    metric(b,
           "# HELP vtpmd_notifications_total Nova notifications received, by outcome.\n"
           "# TYPE vtpmd_notifications_total counter\n"
           "vtpmd_notifications_total{outcome=\"relevant\"} %lu\n"
           "vtpmd_notifications_total{outcome=\"irrelevant\"} %lu\n"
           "vtpmd_notifications_total{outcome=\"malformed\"} %lu\n",
           (unsigned long)m->relevant, (unsigned long)m->irrelevant, (unsigned long)m->malformed);
    metric(b,
           "# HELP vtpmd_provisions_total vTPM provisionings finished, by outcome.\n"
           "# TYPE vtpmd_provisions_total counter\n"
           "vtpmd_provisions_total{outcome=\"ok\"} %lu\n"
           "vtpmd_provisions_total{outcome=\"failed\"} %lu\n"
           "# HELP vtpmd_teardowns_total vTPM teardowns finished, by outcome.\n"
           "# TYPE vtpmd_teardowns_total counter\n"
           "vtpmd_teardowns_total{outcome=\"ok\"} %lu\n"
           "vtpmd_teardowns_total{outcome=\"failed\"} %lu\n",
           (unsigned long)m->provisions_ok, (unsigned long)m->provisions_failed,
           (unsigned long)m->teardowns_ok, (unsigned long)m->teardowns_failed);
    metric(b,
           "# HELP vtpmd_decisions_total Creates not provisioned, by reason.\n"
           "# TYPE vtpmd_decisions_total counter\n"
           "vtpmd_decisions_total{decision=\"denied\"} %lu\n"
           "vtpmd_decisions_total{decision=\"duplicate\"} %lu\n"
           "vtpmd_decisions_total{decision=\"tombstoned\"} %lu\n"
           "# HELP vtpmd_retries_total Retried steps.\n"
           "# TYPE vtpmd_retries_total counter\n"
           "vtpmd_retries_total{kind=\"step\"} %lu\n"
           "vtpmd_retries_total{kind=\"status\"} %lu\n"
           "vtpmd_retries_total{kind=\"journal\"} %lu\n",
           (unsigned long)m->denied, (unsigned long)m->duplicates, (unsigned long)m->tombstoned,
           (unsigned long)m->retries, (unsigned long)m->status_retries,
           (unsigned long)m->journal_retries);
}

/* Failed steps and instances by state. */
static void metrics_states(struct mbuf *b, const struct engine *e)
{
    const struct engine_metrics *m = &e->m;

    metric_head(b, "vtpmd_step_failures_total", "counter", "Failed steps.");
    for (size_t i = STEP_NONE + 1; i < ENGINE_STEPS; i++)
        metric(b, "vtpmd_step_failures_total{step=\"%s\"} %lu\n",
               engine_step_name((enum inst_step)i), (unsigned long)m->step_failures[i]);
    metric_head(b, "vtpmd_instances", "gauge", "Instances by state.");
    for (int s = INST_PROVISIONING; s <= INST_DELETED; s++)
        metric(b, "vtpmd_instances{state=\"%s\"} %lu\n",
               engine_inst_state_key((enum inst_state)s), (unsigned long)e->by_state[s]);
}

/* The bus and vtpmmgr. */
static void metrics_deps(struct mbuf *b, const struct engine *e)
{
    struct bus_stats bs;
    struct vtpmmgr_stats vs;

    bus_get_stats(e->deps.bus, &bs);
    metric(b,
           "# HELP vtpmd_bus_reconnects_total Broker reconnections.\n"
           "# TYPE vtpmd_bus_reconnects_total counter\n"
           "vtpmd_bus_reconnects_total %lu\n"
           "# HELP vtpmd_bus_in_flight Deliveries received and not yet acknowledged.\n"
           "# TYPE vtpmd_bus_in_flight gauge\n"
           "vtpmd_bus_in_flight %zu\n"
           "# HELP vtpmd_status_outbox Status notifications waiting for the broker.\n"
           "# TYPE vtpmd_status_outbox gauge\n"
           "vtpmd_status_outbox %zu\n"
           "# HELP vtpmd_bus_up 1 when consuming from the broker.\n"
           "# TYPE vtpmd_bus_up gauge\n"
           "vtpmd_bus_up %d\n"
           "# HELP vtpmd_libvirt_up 1 when connected to libvirt.\n"
           "# TYPE vtpmd_libvirt_up gauge\n"
           "vtpmd_libvirt_up %d\n",
           (unsigned long)bs.reconnects, bs.in_flight, bs.outbox, bs.consuming ? 1 : 0,
           e->libvirt_up ? 1 : 0);
    vtpmmgr_get_stats(e->deps.vtpmmgr, &vs);
    metric(b,
           "# HELP vtpmd_vtpmmgr_requests_total vTPM acquire/release requests to vtpmmgr.\n"
           "# TYPE vtpmd_vtpmmgr_requests_total counter\n"
           "vtpmd_vtpmmgr_requests_total %lu\n"
           "# HELP vtpmd_vtpmmgr_retries_total Extra attempts after transient vtpmmgr failures.\n"
           "# TYPE vtpmd_vtpmmgr_retries_total counter\n"
           "vtpmd_vtpmmgr_retries_total %lu\n"
           "# HELP vtpmd_vtpmmgr_failures_total vtpmmgr requests that ended in an error.\n"
           "# TYPE vtpmd_vtpmmgr_failures_total counter\n"
           "vtpmd_vtpmmgr_failures_total %lu\n"
           "# HELP vtpmd_vtpmmgr_pending vtpmmgr requests under way.\n"
           "# TYPE vtpmd_vtpmmgr_pending gauge\n"
           "vtpmd_vtpmmgr_pending %u\n",
           (unsigned long)vs.requests, (unsigned long)vs.retries, (unsigned long)vs.failures,
           vtpmmgr_pending(e->deps.vtpmmgr));
}

/* Images and reconciliation. */
static void metrics_images(struct mbuf *b, const struct engine *e)
{
    const struct engine_metrics *m = &e->m;

    metric(b,
           "# HELP vtpmd_images_total Backing images of creates: spare (renamed from the pool) or made (when needed, or already there).\n"
           "# TYPE vtpmd_images_total counter\n"
           "vtpmd_images_total{source=\"spare\"} %lu\n"
           "vtpmd_images_total{source=\"made\"} %lu\n"
           "# HELP vtpmd_image_spares Spare images ready (image.spares is the target).\n"
           "# TYPE vtpmd_image_spares gauge\n"
           "vtpmd_image_spares %u\n",
           (unsigned long)m->images_spare, (unsigned long)m->images_made,
           e->pool ? image_pool_spares(e->pool) : 0u);
    metric(b,
           "# HELP vtpmd_orphans Stub domains or images found by the last reconciliation "
           "that belong to no instance vtpmd holds.\n"
           "# TYPE vtpmd_orphans gauge\n"
           "vtpmd_orphans{kind=\"domain\"} %zu\n"
           "vtpmd_orphans{kind=\"image\"} %zu\n"
           "# HELP vtpmd_reconciliations_total Reconciliations of journal, libvirt and images.\n"
           "# TYPE vtpmd_reconciliations_total counter\n"
           "vtpmd_reconciliations_total %lu\n"
           "# HELP vtpmd_reconcile_actions_total What reconciliation did, by action.\n"
           "# TYPE vtpmd_reconcile_actions_total counter\n"
           "vtpmd_reconcile_actions_total{action=\"repair\"} %lu\n"
           "vtpmd_reconcile_actions_total{action=\"cleanup\"} %lu\n",
           e->orphan_domains, e->orphan_images, (unsigned long)e->reconciles,
           (unsigned long)e->repairs, (unsigned long)e->cleanups);
}

/* Provisioning latency. */
static void metrics_latency(struct mbuf *b, const struct engine *e)
{
    const struct engine_metrics *m = &e->m;

    metric_head(b, "vtpmd_provision_seconds", "histogram",
                "Time from a create notification to the vTPM ready.");
    for (size_t i = 0; i < ENGINE_LAT_BUCKETS; i++)
        metric(b, "vtpmd_provision_seconds_bucket{le=\"%g\"} %lu\n",
               engine_lat_bounds[i], (unsigned long)m->lat_buckets[i]);
    metric(b,
           "vtpmd_provision_seconds_bucket{le=\"+Inf\"} %lu\n"
           "vtpmd_provision_seconds_sum %.6f\n"
           "vtpmd_provision_seconds_count %lu\n",
           (unsigned long)m->lat_count, m->lat_sum, (unsigned long)m->lat_count);
}

static void handle_metrics(struct engine *e, struct control_req *req)
{
    struct mbuf b = {.cap = 8192};

    b.buf = xmalloc(b.cap);
    metrics_counts(&b, e);
    metrics_states(&b, e);
    metrics_deps(&b, e);
    metrics_images(&b, e);
    metrics_latency(&b, e);
    control_reply_text(req, 200, "text/plain; version=0.0.4", b.buf, b.len);
    free(b.buf);
}

void engine_control(struct control_req *req, enum control_route route,
                    const char *param, void *arg)
{
    struct engine *e = arg;

    switch (route) {
    case CONTROL_HEALTH:
        handle_health(e, req);
        break;
    case CONTROL_LIST: {
        json_t *a = json_array();
        hmap_foreach(e->insts, list_one, a);
        control_reply_json(req, 200, json_pack("{s:o}", "instances", a));
        break;
    }
    case CONTROL_SHOW:
        handle_show(e, req, param);
        break;
    case CONTROL_WAIT:
        handle_wait(e, req, param);
        break;
    case CONTROL_RELOAD:
        if (e->deps.reload && e->deps.reload(e->deps.reload_arg) == 0)
            control_reply_json(req, 200, json_pack("{s:s}", "status", "reloaded"));
        else
            control_reply_error(req, 400, "reload failed: the configuration is invalid "
                                          "(see the log); the running one is kept");
        break;
    case CONTROL_METRICS:
        handle_metrics(e, req);
        break;
    case CONTROL_DOMAINS:
        handle_domains(e, req);
        break;
    default:
        control_reply_error(req, 404, "no such resource");
        break;
    }
}
