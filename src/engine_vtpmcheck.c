/* Whether the connected libvirt keeps the stub domain's <vtpm> device.
 * A libvirt without the contrib/libvirt series (or a distribution update
 * that replaced the rebuilt one) refuses or silently drops it; creates
 * then fail (libvirt.require_vtpm), and health says why before the first
 * one does. Asked again at every connection: a libvirtd restart may have
 * brought another libvirt. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vconfig.h"
#include "engine_priv.h"
#include "log.h"
#include "virt.h"
#include "xalloc.h"

struct vtpm_probe_job {
    struct engine *e;
    unsigned gen;
    char *kernel;
    int answer;
};

static int probe_work(virConnectPtr conn, void *arg, char **err)
{
    struct vtpm_probe_job *j = arg;
    int ret = virt_probe_vtpm(conn, j->kernel, err);

    if (ret < 0)
        return ret;
    j->answer = ret;
    return 0;
}

static void probe_done(int ret, char *err, void *arg)
{
    struct vtpm_probe_job *j = arg;
    struct engine *e = j->e;
    const char *uri = e->cfg->libvirt.uri;

    /* Cancelled at shutdown, or a newer connection asks again. */
    if (ret == -ECANCELED || e->stopping || j->gen != e->vtpm_probe_gen)
        goto out;
    free(e->vtpm_why);
    e->vtpm_why = NULL;
    if (ret < 0) {
        e->libvirt_vtpm = -1;
        e->vtpm_why = xstrdup(err ? err : strerror(-ret));
        log_warn("cannot ask libvirt whether it keeps <vtpm> uri=%s error=\"%s\"", uri,
                 e->vtpm_why);
    } else if (j->answer == 1) {
        e->libvirt_vtpm = 1;
        log_info("libvirt keeps the <vtpm> device uri=%s", uri);
    } else {
        e->libvirt_vtpm = 0;
        e->vtpm_why = xstrdup(err ? err : "libvirt does not keep <vtpm>");
        if (e->cfg->libvirt.require_vtpm)
            log_error("libvirt lacks the <vtpm> device uri=%s error=\"%s\": every create "
                      "fails (vtpm_device_dropped) until a libvirt with vtpmd's series "
                      "(contrib/libvirt) runs", uri, e->vtpm_why);
        else
            log_warn("libvirt lacks the <vtpm> device uri=%s error=\"%s\": stub domains "
                     "come up without it (libvirt.require_vtpm is false)", uri, e->vtpm_why);
    }
out:
    free(err);
    free(j->kernel);
    free(j);
}

void engine_vtpm_probe(struct engine *e)
{
    struct vtpm_probe_job *j = xcalloc(1, sizeof(*j));

    e->libvirt_vtpm = -1;
    free(e->vtpm_why);
    e->vtpm_why = NULL;
    j->e = e;
    j->gen = ++e->vtpm_probe_gen;
    j->kernel = xstrdup(e->cfg->libvirt.kernel);
    if (virt_submit(e->deps.virt, probe_work, probe_done, j) < 0) {
        free(j->kernel);
        free(j);
    }
}
