/* The engine's work for the libvirt worker threads: a create's image and
 * stub domain (also a repair's, which never makes a new image), and the
 * removal of both (a rollback's, a teardown's, a cleanup's). A job is a
 * copy of what the work needs, taken on the loop's thread: the instance
 * and the configuration may change meanwhile. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vconfig.h"
#include "domxml.h"
#include "engine_priv.h"
#include "image.h"
#include "log.h"
#include "virt.h"
#include "xalloc.h"

struct engine_job *engine_job_new(struct inst *in)
{
    const struct config *cfg = in->e->cfg;
    struct engine_job *j = xcalloc(1, sizeof(*j));

    j->in = in;
    memcpy(j->uuid, in->uuid, UUIDUTIL_BUFLEN);
    memcpy(j->vtpm_uuid, in->vtpm_uuid, UUIDUTIL_BUFLEN);
    j->image_dir = xstrdup(cfg->image.dir);
    j->image_size = in->image_size;
    j->name = in->domain_name ? xstrdup(in->domain_name) : NULL;
    j->kernel = xstrdup(in->kernel ? in->kernel : cfg->libvirt.kernel);
    j->instance_name = in->instance_name ? xstrdup(in->instance_name) : NULL;
    j->rule = in->rule ? xstrdup(in->rule) : NULL;
    j->host = xstrdup(cfg->host);
    j->vtpmmgr_domain = xstrdup(cfg->libvirt.vtpmmgr_domain);
    j->require_vtpm = cfg->libvirt.require_vtpm;
    j->pool = in->e->pool ? image_pool_ref(in->e->pool) : NULL;
    j->p.name = j->name;
    j->p.vtpm_uuid = j->vtpm_uuid;
    j->p.instance_uuid = j->uuid;
    j->p.instance_name = j->instance_name;
    j->p.kernel = j->kernel;
    j->p.cmdline = "loglevel=debug";
    j->p.memory_bytes = in->memory;
    j->p.vtpmmgr_domain = j->vtpmmgr_domain;
    j->p.rule = j->rule;
    j->p.host = j->host;
    j->p.created = time(NULL);
    return j;
}

void engine_job_free(struct engine_job *j)
{
    free(j->image_dir);
    free(j->name);
    free(j->kernel);
    free(j->instance_name);
    free(j->rule);
    free(j->host);
    free(j->vtpmmgr_domain);
    free(j->image_path);
    image_pool_unref(j->pool);
    free(j);
}

/* Runs on the libvirt worker thread. */
int engine_job_build(virConnectPtr conn, void *arg, char **err)
{
    struct engine_job *j = arg;
    char *xml = NULL;
    int ret;

    if (conn == NULL) {
        xasprintf(err, "libvirt is not connected");
        return -ENOTCONN;
    }
    if (j->repair) {
        /* The image holds the vTPM's state: recreating it would silently
         * clear the vTPM. A lost image is reported, never replaced. */
        struct stat st;
        char *path = NULL;

        ret = image_path(j->image_dir, j->uuid, &path);
        if (ret == 0 && stat(path, &st) < 0) {
            xasprintf(err, "backing image %s is missing; not recreating it (that would "
                      "clear the vTPM)", path);
            ret = -ENOENT;
        }
        free(path);
        if (ret < 0)
            return ret;
    }
    /* From a spare when there is one: only a rename on this path. The
     * pool is image_dir's (both from the configuration engine_job_new
     * saw); none when it could not be started. */
    if (j->pool)
        ret = image_pool_create(j->pool, j->uuid, j->image_size, &j->image_path,
                                &j->sync_ticket, &j->from_spare, err);
    else
        ret = image_create(j->image_dir, j->uuid, j->image_size, &j->image_path, err);
    if (ret < 0)
        return ret;
    j->p.image_path = j->image_path;
    ret = domxml_build(&j->p, &xml);
    if (ret < 0) {
        xasprintf(err, "cannot build the domain XML: %s", strerror(-ret));
        return ret;
    }
    ret = virt_define_start(conn, xml, j->name, j->require_vtpm ? VIRT_REQUIRE_VTPM : 0, err);
    free(xml);
    return ret;
}

/* Runs on the libvirt worker thread. */
int engine_job_remove(virConnectPtr conn, void *arg, char **err)
{
    struct engine_job *j = arg;
    int ret;

    if (j->name) {
        if (conn == NULL) {
            xasprintf(err, "libvirt is not connected");
            return -ENOTCONN;
        }
        ret = virt_destroy_undefine_for(conn, j->name, j->uuid, err);
        if (ret == -EPERM) {
            /* The name is held by a domain without this instance's vtpmd
             * metadata (the define failed on it): nothing of ours to
             * remove there, but the image still is ours. */
            log_warn("domain name held by a domain that is not vtpmd's, left alone "
                     "instance=%s domain=%s", j->uuid, j->name);
            if (err) {
                free(*err);
                *err = NULL;
            }
        } else if (ret < 0) {
            return ret;
        }
    }
    return image_remove(j->image_dir, j->uuid, err);
}
