/* Reconciliation: compares the journal (desired), libvirt's domains that
 * carry vtpmd's metadata (reached) and the image directory, and
 * converges. Runs at start-up once libvirt is connected, after every
 * libvirt reconnect, every reconcile.interval, and restarts stub domains
 * of live instances that stop or crash (lifecycle events).
 *
 *   live instance, domain missing or stopped  -> define and start again
 *   live instance, image missing              -> reported, never recreated
 *   failed or deleted instance, leftovers     -> removed
 *   teardown that gave up                     -> tried again
 *   domain or image with no record            -> orphan: reported only
 *
 * A planner: it reads the instances and asks src/engine.c to repair,
 * clean up or tear down (engine_inst_*), which alone changes them. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <libvirt/libvirt.h>

#include "vconfig.h"
#include "engine_priv.h"
#include "image.h"
#include "log.h"
#include "vtime.h"
#include "xalloc.h"

struct reconcile_job {
    struct engine *e;
    char *image_dir;
    struct virt_domain_info *doms;
    size_t ndoms;
    struct strlist images;
    char *why;
};

static int reconcile_work(virConnectPtr conn, void *arg, char **err)
{
    struct reconcile_job *j = arg;
    int ret;

    if (conn == NULL)
        return virt_not_connected(err);
    ret = virt_list_vtpmd(conn, &j->doms, &j->ndoms, err);
    if (ret < 0)
        return ret;
    return image_list(j->image_dir, &j->images, err);
}

static const struct virt_domain_info *find_domain(const struct reconcile_job *j,
                                                  const char *instance_uuid)
{
    for (size_t i = 0; i < j->ndoms; i++) {
        if (strcmp(j->doms[i].meta.instance_uuid, instance_uuid) == 0)
            return &j->doms[i];
    }
    return NULL;
}

static bool has_image(const struct reconcile_job *j, const char *instance_uuid)
{
    for (size_t i = 0; i < j->images.n; i++) {
        if (strcmp(j->images.v[i], instance_uuid) == 0)
            return true;
    }
    return false;
}

/* ---- the pass ------------------------------------------------------ */

struct pass_ctx {
    struct reconcile_job *j;
    struct inst **todo;
    size_t n;
};

static void collect(const char *key, void *value, void *arg)
{
    struct pass_ctx *c = arg;

    c->todo = xreallocarray(c->todo, c->n + 1, sizeof(*c->todo));
    c->todo[c->n++] = value;
}

static void reconcile_inst(struct reconcile_job *j, struct inst *in)
{
    const struct virt_domain_info *d = find_domain(j, in->uuid);

    if (in->op == OP_RESEND) {
        engine_inst_reconcile_later(in); /* a status only: the domain is not decided */
        return;
    }
    if (!engine_inst_idle(in))
        return; /* its own events decide */
    switch (in->state) {
    case INST_READY:
        if (d == NULL || !d->active) {
            log_warn("stub domain of a live instance is %s instance=%s domain=%s",
                     d ? "stopped" : "missing", in->uuid,
                     in->domain_name ? in->domain_name : "-");
            engine_inst_repair(in);
        }
        break;
    case INST_DELETE_FAILED:
        log_info("retrying a teardown that gave up instance=%s", in->uuid);
        engine_inst_teardown(in);
        break;
    case INST_FAILED:
    case INST_DELETED:
    case INST_NONE:
        if (d != NULL || has_image(j, in->uuid))
            engine_inst_cleanup(in, d ? d->name : NULL);
        break;
    default:
        break;
    }
}

static void reconcile_done(int ret, char *err, void *arg)
{
    struct reconcile_job *j = arg;
    struct engine *e = j->e;
    struct pass_ctx c = {.j = j};
    size_t orphan_domains = 0, orphan_images = 0;

    e->reconciling = false;
    if (ret < 0) {
        log_warn("reconciliation postponed reason=%s error=%s", j->why,
                 err ? err : strerror(-ret));
        goto out;
    }
    hmap_foreach(e->insts, collect, &c);
    for (size_t i = 0; i < c.n; i++)
        reconcile_inst(j, c.todo[i]);
    free(c.todo);
    for (size_t i = 0; i < j->ndoms; i++) {
        if (hmap_get(e->insts, j->doms[i].meta.instance_uuid) == NULL) {
            orphan_domains++;
            log_warn("orphan stub domain: vtpmd metadata but no record domain=%s "
                     "instance=%s vtpm=%s (left alone)",
                     j->doms[i].name, j->doms[i].meta.instance_uuid, j->doms[i].meta.vtpm_uuid);
        }
    }
    for (size_t i = 0; i < j->images.n; i++) {
        if (hmap_get(e->insts, j->images.v[i]) == NULL && find_domain(j, j->images.v[i]) == NULL) {
            orphan_images++;
            log_warn("orphan image: no record and no domain instance=%s dir=%s (left alone)",
                     j->images.v[i], j->image_dir);
        }
    }
    e->orphan_domains = orphan_domains;
    e->orphan_images = orphan_images;
    e->reconciles++;
    if (!e->reconciled) {
        log_info("start-up reconciliation done domains=%zu images=%zu orphans=%zu",
                 j->ndoms, j->images.n, orphan_domains + orphan_images);
        e->reconciled = true;
        if (e->deps.reconciled)
            e->deps.reconciled(e->deps.reload_arg);
    }
out:
    free(err);
    virt_domain_info_free(j->doms, j->ndoms);
    strlist_free(&j->images);
    free(j->image_dir);
    free(j->why);
    free(j);
    if (e->reconcile_again) {
        e->reconcile_again = false;
        engine_reconcile(e, "again");
    }
    engine_waiters_check(e);
}

void engine_reconcile(struct engine *e, const char *why)
{
    struct reconcile_job *j;

    if (e->stopping)
        return;
    if (e->reconciling) {
        e->reconcile_again = true;
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->e = e;
    j->image_dir = xstrdup(e->cfg->image.dir);
    j->why = xstrdup(why);
    e->reconciling = true;
    log_debug("reconciling reason=%s", why);
    if (virt_submit(e->deps.virt, reconcile_work, reconcile_done, j) < 0)
        reconcile_done(-EIO, NULL, j);
}

/* ---- lifecycle events --------------------------------------------- */

struct find_ctx {
    const char *name;
    struct inst *found;
};

static void find_by_domain(const char *key, void *value, void *arg)
{
    struct find_ctx *c = arg;
    struct inst *in = value;

    if (in->domain_name && strcmp(in->domain_name, c->name) == 0)
        c->found = in;
}

const unsigned engine_domain_events = 1u << VIR_DOMAIN_EVENT_STOPPED |
                                      1u << VIR_DOMAIN_EVENT_CRASHED |
                                      1u << VIR_DOMAIN_EVENT_UNDEFINED;

void engine_domain_event(struct engine *e, const char *domain_name, int event, int detail)
{
    struct find_ctx c = {.name = domain_name};

    log_debug("domain event domain=%s event=%d detail=%d", domain_name, event, detail);
    if (event < 0 || event >= 32 || !(engine_domain_events & (1u << event)))
        return;
    hmap_foreach(e->insts, find_by_domain, &c);
    if (c.found && c.found->op == OP_RESEND)
        engine_inst_reconcile_later(c.found);
    if (c.found == NULL || c.found->state != INST_READY || !engine_inst_idle(c.found) ||
        e->stopping)
        return; /* not ours, or our own teardown */
    engine_inst_restart(c.found, event == VIR_DOMAIN_EVENT_CRASHED     ? "crashed"
                                 : event == VIR_DOMAIN_EVENT_UNDEFINED ? "was undefined"
                                                                       : "stopped");
}

static void reconcile_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    engine_reconcile(arg, "periodic");
}

void engine_libvirt_state(struct engine *e, bool up)
{
    bool was = e->libvirt_up;

    e->libvirt_up = up;
    if (up && !was) {
        engine_vtpm_probe(e);
        engine_reconcile(e, e->reconciled ? "libvirt reconnected" : "start-up");
    }
    engine_reconcile_timer_update(e);
}

void engine_reconcile_timer_update(struct engine *e)
{
    uint64_t ms = e->cfg->reconcile.interval_ms;
    struct timeval tv = vtime_tv_ms(ms);

    if (e->reconcile_timer && ms == e->reconcile_every_ms)
        return;
    engine_reconcile_free(e);
    e->reconcile_every_ms = ms;
    if (ms == 0)
        return;
    e->reconcile_timer = event_new(e->base, -1, EV_PERSIST, reconcile_timer_cb, e);
    event_add(e->reconcile_timer, &tv);
}

bool engine_reconciled(const struct engine *e)
{
    return e->reconciled;
}

void engine_reconcile_free(struct engine *e)
{
    if (e->reconcile_timer)
        event_free(e->reconcile_timer);
    e->reconcile_timer = NULL;
}
