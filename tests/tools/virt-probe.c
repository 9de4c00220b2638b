/* Drives virt against a libvirt URI for tests/integration/virt-reconnect.sh
 * and prints what the loop sees, one line each:
 *
 *   connection up|down
 *   job define ret=N [err=...]     (define+start submitted on every "up")
 *   event NAME EVENT DETAIL        (lifecycle events)
 *   exit
 *
 * virt-probe URI SECONDS: exits after SECONDS, or on SIGTERM. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "domxml.h"
#include "log.h"
#include "virt.h"
#include "virt_priv.h"
#include "xalloc.h"

#define IUUID "9e1f3a5c-7b2d-4c6e-8f10-a1b2c3d4e5f6"
#define VUUID "5d4c3b2a-1f0e-4d9c-8b7a-0123456789ab"

struct probe {
    struct event_base *base;
    struct virt *v;
    char *name;
    char *xml;
};

static int work_define(virConnectPtr conn, void *arg, char **err)
{
    struct probe *p = arg;

    return virt_define_start(conn, p->xml, p->name, 0, err);
}

static void done_define(int ret, char *err, void *arg)
{
    if (err)
        printf("job define ret=%d err=%s\n", ret, err);
    else
        printf("job define ret=%d\n", ret);
    free(err);
}

static void on_connection(bool up, void *arg)
{
    struct probe *p = arg;

    printf("connection %s\n", up ? "up" : "down");
    if (up && virt_submit(p->v, work_define, done_define, p) < 0)
        printf("submit failed\n");
}

static void on_lifecycle(const char *name, int event, int detail, void *arg)
{
    printf("event %s %d %d\n", name, event, detail);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct probe p = {0};
    struct virt_callbacks cb = {.lifecycle = on_lifecycle, .connection = on_connection};
    struct domxml_params dp = {
        .vtpm_uuid = VUUID,
        .instance_uuid = IUUID,
        .image_path = "/var/lib/vtpmd/images/" IUUID ".img",
        .kernel = "/usr/lib/xen/boot/vtpm-stubdom.gz",
        .memory_bytes = 8 << 20,
        .vtpmmgr_domain = "vtpmmgr",
        .host = "probe",
    };
    struct timeval tv = {0, 0};
    struct event *sig, *timer;

    if (argc != 3) {
        fprintf(stderr, "usage: %s URI SECONDS\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_init("virt-probe", LOG_LEVEL_INFO, LOG_TARGET_STDERR);
    evthread_use_pthreads();
    p.base = event_base_new();
    if (domxml_expand_name("vtpm-{uuid}", IUUID, NULL, &p.name) < 0)
        return 1;
    dp.name = p.name;
    if (domxml_build(&dp, &p.xml) < 0)
        return 1;
    if (virt_new(p.base, argv[1], &cb, &p, &p.v) < 0)
        return 1;
    /* Quick retries so the test need not wait long after a restart. */
    virt_set_backoff(p.v, 100, 1000);

    sig = evsignal_new(p.base, SIGTERM, on_stop, p.base);
    evsignal_add(sig, NULL);
    timer = evtimer_new(p.base, on_stop, p.base);
    tv.tv_sec = atoi(argv[2]);
    evtimer_add(timer, &tv);
    event_base_dispatch(p.base);

    virt_free(p.v);
    event_free(sig);
    event_free(timer);
    event_base_free(p.base);
    free(p.name);
    free(p.xml);
    printf("exit\n");
    return 0;
}
