/* How long the libvirt side of a create and a teardown takes through
 * virt: domxml_build + define + start, and destroy + undefine, on
 * test:///default (or -u URI). Prints figures; asserts nothing.
 *
 *   bench/virt_bench [-n N] [-w WORKERS] [-u URI] [-g GAP_MS]
 *
 * "serial": one job at a time, submit → done callback on the loop
 * (includes the hand-off to the worker and back) and the libvirt calls
 * alone as timed on the worker; -g sleeps between them, as creates at a
 * steady rate do (caches cold again). "burst": N jobs submitted at once. */
#include "config.h"

#include <errno.h>
#include <unistd.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "domxml.h"
#include "log.h"
#include "virt.h"
#include "xalloc.h"

struct job {
    char name[DOMXML_NAME_MAX + 1];
    char *xml;
    bool destroy;
    bool done;
    int ret;
    uint64_t submitted, work_ns, finished;
    int *ndone;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int work(virConnectPtr conn, void *arg, char **err)
{
    struct job *j = arg;
    uint64_t t0 = now_ns();
    int ret;

    if (j->destroy)
        ret = virt_destroy_undefine(conn, j->name, err);
    else
        ret = virt_define_start(conn, j->xml, j->name, 0, err);
    j->work_ns = now_ns() - t0;
    return ret;
}

static void done(int ret, char *err, void *arg)
{
    struct job *j = arg;

    if (ret < 0)
        fprintf(stderr, "job %s failed: %s\n", j->name, err ? err : "?");
    free(err);
    j->ret = ret;
    j->done = true;
    j->finished = now_ns();
    (*j->ndone)++;
}

static void on_conn(bool up, void *arg)
{
    *(int *)arg = up ? 1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    printf("%-34s p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", what,
           v[n / 2] / 1e6, v[(n * 99) / 100] / 1e6, v[n - 1] / 1e6);
}

static void loop_until(struct event_base *base, const int *count, int want)
{
    while (*count < want)
        event_base_loop(base, EVLOOP_ONCE);
}

int main(int argc, char **argv)
{
    const char *uri = "test:///default";
    int n = 1000, workers = VIRT_WORKERS_DEFAULT, conn_state = -1, ndone, c, gap_ms = 0;
    struct virt_callbacks cb = {.connection = on_conn};
    struct event_base *base;
    struct virt *v;
    struct job *jobs;
    uint64_t *lat, *wk, t0, build_ns = 0;

    while ((c = getopt(argc, argv, "n:w:u:g:")) != -1) {
        switch (c) {
        case 'n': n = atoi(optarg); break;
        case 'g': gap_ms = atoi(optarg); break;
        case 'w': workers = atoi(optarg); break;
        case 'u': uri = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-n N] [-w WORKERS] [-u URI] [-g GAP_MS]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || workers < 1 || gap_ms < 0) {
        fprintf(stderr, "bad -n or -w\n");
        return 2;
    }
    log_init("virt_bench", LOG_LEVEL_WARNING, LOG_TARGET_STDERR);
    evthread_use_pthreads();
    base = event_base_new();
    if (virt_new_workers(base, uri, (unsigned)workers, &cb, &conn_state, &v) < 0) {
        fprintf(stderr, "virt_new failed\n");
        return 1;
    }
    while (conn_state < 0)
        event_base_loop(base, EVLOOP_ONCE);
    if (conn_state == 0) {
        fprintf(stderr, "cannot connect to %s\n", uri);
        return 1;
    }

    jobs = xcalloc((size_t)n, sizeof(*jobs));
    lat = xcalloc((size_t)n, sizeof(*lat));
    wk = xcalloc((size_t)n, sizeof(*wk));
    for (int i = 0; i < n; i++) {
        char iu[40], vu[40], img[128], *name;
        struct domxml_params p = {
            .kernel = "/usr/lib/xen/boot/vtpm-stubdom.gz",
            .memory_bytes = 8 << 20,
            .vtpmmgr_domain = "vtpmmgr",
            .rule = "bench",
            .host = "bench-host",
        };

        snprintf(iu, sizeof(iu), "b0000000-0000-4000-8000-%012d", i);
        snprintf(vu, sizeof(vu), "c0000000-0000-4000-8000-%012d", i);
        snprintf(img, sizeof(img), "/var/lib/vtpmd/images/%s.img", iu);
        if (domxml_expand_name("vtpm-{uuid}", iu, NULL, &name) < 0)
            abort();
        snprintf(jobs[i].name, sizeof(jobs[i].name), "%s", name);
        free(name);
        p.name = jobs[i].name;
        p.instance_uuid = iu;
        p.vtpm_uuid = vu;
        p.image_path = img;
        t0 = now_ns();
        if (domxml_build(&p, &jobs[i].xml) < 0)
            abort();
        build_ns += now_ns() - t0;
        jobs[i].ndone = &ndone;
    }
    printf("uri=%s workers=%d n=%d serial gap=%d ms\n", uri, workers, n, gap_ms);
    printf("%-34s mean %7.3f ms\n", "domxml_build", build_ns / 1e6 / n);

    for (int phase = 0; phase < 2; phase++) {
        bool destroy = phase == 1;

        ndone = 0;
        for (int i = 0; i < n; i++) {
            jobs[i].destroy = destroy;
            jobs[i].submitted = now_ns();
            virt_submit(v, work, done, &jobs[i]);
            loop_until(base, &ndone, i + 1);
            lat[i] = jobs[i].finished - jobs[i].submitted;
            wk[i] = jobs[i].work_ns;
            if (gap_ms)
                usleep((useconds_t)gap_ms * 1000);
        }
        report(destroy ? "serial destroy+undefine, loop" : "serial define+start, loop", lat, n);
        report(destroy ? "serial destroy+undefine, libvirt" : "serial define+start, libvirt", wk, n);
    }

    for (int phase = 0; phase < 2; phase++) {
        bool destroy = phase == 1;

        ndone = 0;
        t0 = now_ns();
        for (int i = 0; i < n; i++) {
            jobs[i].destroy = destroy;
            jobs[i].submitted = now_ns();
            virt_submit(v, work, done, &jobs[i]);
        }
        loop_until(base, &ndone, n);
        printf("%-34s %7.3f s for %d (%.0f/s)\n",
               destroy ? "burst destroy+undefine" : "burst define+start",
               (now_ns() - t0) / 1e9, n, n / ((now_ns() - t0) / 1e9));
        for (int i = 0; i < n; i++)
            lat[i] = jobs[i].finished - jobs[i].submitted;
        report(destroy ? "burst destroy+undefine, each" : "burst define+start, each", lat, n);
    }

    virt_free(v);
    for (int i = 0; i < n; i++)
        free(jobs[i].xml);
    free(jobs);
    free(lat);
    free(wk);
    event_base_free(base);
    return 0;
}
