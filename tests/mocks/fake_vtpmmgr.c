/* Fake of the vtpmmgr client: acquire and release answer on a later step. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fakes.h"
#include "vtpmmgr.h"
#include "xalloc.h"

bool fake_vtpmmgr_local;

struct answer {
    vtpmmgr_cb cb;
    void *arg;
    const char *result;
};

static void answer_fire(void *arg)
{
    const struct answer *a = arg;
    enum vtpmmgr_status st = (enum vtpmmgr_status)_mock(a->result, __FILE__, __LINE__);

    a->cb(st, st == VTPMMGR_OK ? FAKE_VTPM_UUID : NULL,
          st == VTPMMGR_OK ? NULL : "injected vtpmmgr failure", a->arg);
}

static int request(const char *what, const char *result, const char *result_cb,
                   vtpmmgr_cb cb, void *arg)
{
    int ret = (int)_mock(result, __FILE__, __LINE__);
    struct answer a = {cb, arg, result_cb};

    fake_trace("%s", what);
    if (ret == 0)
        fake_defer(answer_fire, &a, sizeof(a));
    return ret;
}

int __wrap_vtpmmgr_acquire(struct vtpmmgr *m, const char *instance_uuid, const char *host,
                           vtpmmgr_cb cb, void *arg);
int __wrap_vtpmmgr_acquire(struct vtpmmgr *m, const char *instance_uuid, const char *host,
                           vtpmmgr_cb cb, void *arg)
{
    (void)m;
    assert_non_null(instance_uuid);
    assert_non_null(host);
    return request("acquire", FAKE_ACQUIRE, FAKE_ACQUIRE_CB, cb, arg);
}

int __wrap_vtpmmgr_release(struct vtpmmgr *m, const char *vtpm_uuid, const char *instance_uuid,
                           vtpmmgr_cb cb, void *arg);
int __wrap_vtpmmgr_release(struct vtpmmgr *m, const char *vtpm_uuid, const char *instance_uuid,
                           vtpmmgr_cb cb, void *arg)
{
    (void)m;
    assert_string_equal(vtpm_uuid, FAKE_VTPM_UUID);
    assert_non_null(instance_uuid);
    return request("release", FAKE_RELEASE, FAKE_RELEASE_CB, cb, arg);
}

bool __wrap_vtpmmgr_is_local(const struct vtpmmgr *m);
bool __wrap_vtpmmgr_is_local(const struct vtpmmgr *m)
{
    (void)m;
    return fake_vtpmmgr_local;
}

void __wrap_vtpmmgr_get_stats(const struct vtpmmgr *m, struct vtpmmgr_stats *out);
void __wrap_vtpmmgr_get_stats(const struct vtpmmgr *m, struct vtpmmgr_stats *out)
{
    (void)m;
    memset(out, 0, sizeof(*out));
}

unsigned __wrap_vtpmmgr_pending(const struct vtpmmgr *m);
unsigned __wrap_vtpmmgr_pending(const struct vtpmmgr *m)
{
    (void)m;
    return 0;
}
