/* Fake of the libvirt worker: a job's work runs on a later step, on the
 * loop's thread, with a fake connection (NULL when disconnected); the
 * domain calls it makes keep a list of vtpmd's domains that
 * virt_list_vtpmd reports. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"
#include "fakes.h"
#include "uuidutil.h"
#include "virt.h"
#include "xalloc.h"

bool fake_libvirt_connected = true;

struct fake_domain {
    char *name;
    char uuid[UUIDUTIL_BUFLEN];
    bool active;
};

static struct fake_domain *doms;
static size_t ndoms;
static int conn_token;

void fake_domain_add(const char *name, const char *instance_uuid, bool active)
{
    doms = xreallocarray(doms, ndoms + 1, sizeof(*doms));
    doms[ndoms].name = xstrdup(name);
    memcpy(doms[ndoms].uuid, instance_uuid, UUIDUTIL_BUFLEN);
    doms[ndoms].active = active;
    ndoms++;
}

static struct fake_domain *domain_find(const char *name)
{
    for (size_t i = 0; i < ndoms; i++) {
        if (strcmp(doms[i].name, name) == 0)
            return &doms[i];
    }
    return NULL;
}

void fake_virt_reset(void);
void fake_virt_reset(void)
{
    for (size_t i = 0; i < ndoms; i++)
        free(doms[i].name);
    free(doms);
    doms = NULL;
    ndoms = 0;
}

struct job {
    virt_work_fn work;
    virt_done_fn done;
    void *arg;
};

static void job_fire(void *arg)
{
    const struct job *j = arg;
    char *err = NULL;
    int ret = j->work(fake_libvirt_connected ? (virConnectPtr)&conn_token : NULL, j->arg, &err);

    j->done(ret, err, j->arg);
}

int __wrap_virt_submit(struct virt *v, virt_work_fn work, virt_done_fn done, void *job_arg);
int __wrap_virt_submit(struct virt *v, virt_work_fn work, virt_done_fn done, void *job_arg)
{
    int ret = (int)_mock(FAKE_SUBMIT, __FILE__, __LINE__);
    struct job j = {work, done, job_arg};

    (void)v;
    if (ret < 0)
        fake_trace("submit-failed");
    else
        fake_defer(job_fire, &j, sizeof(j));
    return ret;
}

/* One call on the connection: traced, its result injected. */
static int call(const char *result, const char *what, virConnectPtr conn, char **err)
{
    int ret = (int)_mock(result, __FILE__, __LINE__);

    assert_non_null(conn);
    fake_trace("%s", what);
    if (ret < 0 && err)
        *err = xstrdup("injected libvirt failure");
    return ret;
}

int __wrap_virt_define_start(virConnectPtr conn, const char *xml, const char *name,
                             unsigned flags, char **err);
int __wrap_virt_define_start(virConnectPtr conn, const char *xml, const char *name,
                             unsigned flags, char **err)
{
    int ret = call(FAKE_DEFINE, "define", conn, err);
    struct domxml_meta m;
    struct fake_domain *d;

    if (ret < 0)
        return ret;
    assert_int_equal(domxml_parse_metadata(xml, &m), 0);
    d = domain_find(name);
    if (d == NULL)
        fake_domain_add(name, m.instance_uuid, true);
    else
        d->active = true;
    domxml_meta_clear(&m);
    return 0;
}

int __wrap_virt_destroy_undefine_for(virConnectPtr conn, const char *name,
                                     const char *instance_uuid, char **err);
int __wrap_virt_destroy_undefine_for(virConnectPtr conn, const char *name,
                                     const char *instance_uuid, char **err)
{
    int ret = call(FAKE_UNDEFINE, "undefine", conn, err);
    struct fake_domain *d = domain_find(name);

    if (ret == 0 && d && strcmp(d->uuid, instance_uuid) == 0) {
        free(d->name);
        *d = doms[--ndoms];
    }
    return ret;
}

int __wrap_virt_list_vtpmd(virConnectPtr conn, struct virt_domain_info **out, size_t *n,
                           char **err);
int __wrap_virt_list_vtpmd(virConnectPtr conn, struct virt_domain_info **out, size_t *n,
                           char **err)
{
    int ret = call(FAKE_LIST, "list", conn, err);
    struct virt_domain_info *v;

    if (ret < 0)
        return ret;
    v = xcalloc(ndoms + 1, sizeof(*v));
    for (size_t i = 0; i < ndoms; i++) {
        v[i].name = xstrdup(doms[i].name);
        v[i].active = doms[i].active;
        memcpy(v[i].meta.instance_uuid, doms[i].uuid, UUIDUTIL_BUFLEN);
        memcpy(v[i].meta.vtpm_uuid, FAKE_VTPM_UUID, UUIDUTIL_BUFLEN);
    }
    *out = v;
    *n = ndoms;
    return 0;
}

/* engine_vtpmcheck's probe at each connection: a libvirt that keeps
 * <vtpm> (the create path checks the device through define_start). */
int __wrap_virt_probe_vtpm(virConnectPtr conn, const char *kernel, char **err);
int __wrap_virt_probe_vtpm(virConnectPtr conn, const char *kernel, char **err)
{
    (void)kernel;
    (void)err;
    assert_non_null(conn);
    return 1;
}
