/* How long image_create and image_remove take (fallocate + two fsyncs,
 * and unlink + one fsync), and how fast the local vtpmmgr provider
 * answers on the loop. Prints figures; asserts nothing.
 *
 *   bench/image_bench [-n N] [-d DIR] [-s SIZE]
 *
 * DIR (default: a fresh directory under $TMPDIR or /tmp) should be on the
 * filesystem image.dir will live on: fsync cost is the filesystem's. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cfg.h"
#include "vconfig.h"
#include "image.h"
#include "log.h"
#include "uuidutil.h"
#include "vtpmmgr.h"
#include "xalloc.h"

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, int n)
{
    qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
    printf("%-28s n=%d p50=%.3f ms p99=%.3f ms max=%.3f ms\n", what, n, ns[n / 2] / 1e6,
           ns[(n * 99) / 100] / 1e6, ns[n - 1] / 1e6);
}

struct local {
    int done;
    int n;
    struct event_base *base;
};

static void local_cb(enum vtpmmgr_status st, const char *uuid, const char *error, void *arg)
{
    struct local *l = arg;

    if (st != VTPMMGR_OK)
        fprintf(stderr, "local provider failed: %s\n", error);
    if (++l->done == l->n)
        event_base_loopexit(l->base, NULL);
}

int main(int argc, char **argv)
{
    char tmpl[256], (*uuids)[UUIDUTIL_BUFLEN];
    const char *dir = NULL;
    uint64_t size = 2 * 1024 * 1024, *ns, t0;
    int n = 500, c;
    char *err = NULL;

    while ((c = getopt(argc, argv, "n:d:s:")) != -1) {
        switch (c) {
        case 'n':
            n = atoi(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        case 's':
            if (cfg_parse_size(optarg, &size) < 0) {
                fprintf(stderr, "bad size %s\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: image_bench [-n N] [-d DIR] [-s SIZE]\n");
            return 2;
        }
    }
    if (n < 1)
        n = 1;
    log_init("image_bench", LOG_LEVEL_WARNING, LOG_TARGET_STDERR);
    if (!dir) {
        snprintf(tmpl, sizeof(tmpl), "%s/image_bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmpl;
    }
    ns = xcalloc((size_t)n, sizeof(*ns));
    uuids = xcalloc((size_t)n, sizeof(*uuids));
    for (int i = 0; i < n; i++)
        uuid_generate_str(uuids[i]);

    for (int i = 0; i < n; i++) {
        t0 = now_ns();
        if (image_create(dir, uuids[i], size, NULL, &err) < 0) {
            fprintf(stderr, "image_create: %s\n", err);
            return 1;
        }
        ns[i] = now_ns() - t0;
    }
    report("image_create (new)", ns, n);
    for (int i = 0; i < n; i++) {
        t0 = now_ns();
        image_create(dir, uuids[i], size, NULL, &err);
        ns[i] = now_ns() - t0;
    }
    report("image_create (exists)", ns, n);
    for (int i = 0; i < n; i++) {
        t0 = now_ns();
        if (image_remove(dir, uuids[i], &err) < 0) {
            fprintf(stderr, "image_remove: %s\n", err);
            return 1;
        }
        ns[i] = now_ns() - t0;
    }
    report("image_remove", ns, n);
    if (dir == tmpl)
        rmdir(tmpl);

    {
        struct event_base *base = event_base_new();
        struct config cfg = {0};
        struct local l = {.n = n, .base = base};
        struct vtpmmgr *m;

        cfg.vtpmmgr.provider = VTPMMGR_PROVIDER_LOCAL;
        if (vtpmmgr_new(base, &cfg, &m) < 0)
            return 1;
        t0 = now_ns();
        for (int i = 0; i < n; i++)
            vtpmmgr_acquire(m, uuids[i], "bench-host", local_cb, &l);
        event_base_dispatch(base);
        printf("%-28s n=%d total=%.3f ms per=%.2f us\n", "vtpmmgr local acquire", n,
               (now_ns() - t0) / 1e6, (now_ns() - t0) / 1e3 / n);
        vtpmmgr_free(m);
        event_base_free(base);
    }
    free(ns);
    free(uuids);
    return 0;
}
