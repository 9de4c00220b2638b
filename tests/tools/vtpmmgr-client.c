/* vtpmmgr-client: drives the vtpmmgr module from the command line on its
 * own event loop, for the integration tests (against
 * tests/tools/fake_proxy.py or a real proxy).
 *
 *   vtpmmgr-client -c CONFIG [-l LEVEL] COMMAND
 *     acquire INSTANCE [HOST]   prints "OK <vtpm-uuid>"
 *     release VTPM [INSTANCE]   prints "OK <vtpm-uuid>"
 *     cycle N [HOST]            N concurrent acquires for fresh instances,
 *                               then N concurrent releases; prints
 *                               "OK acquired=N released=N elapsed_ms=T"
 *     cancel INSTANCE MS        starts an acquire and frees the manager
 *                               after MS ms: the callback must not run
 *                               (prints "OK cancelled"; "EARLY ..." with
 *                               exit 1 when it ended before the cancel)
 *
 * Failures print "TRANSIENT <message>" or "PERMANENT <message>". Exit 0
 * ok, 3 transient, 4 permanent, 1 other failure, 2 usage or config error.
 * A line "stats requests=N retries=N failures=N" goes to stderr. The
 * program aborts if a callback runs inside the call that started it. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "vconfig.h"
#include "log.h"
#include "uuidutil.h"
#include "vtpmmgr.h"
#include "xalloc.h"

struct client {
    struct event_base *base;
    struct vtpmmgr *m;
    bool in_call; /* inside vtpmmgr_acquire/release */
    unsigned outstanding;
    enum vtpmmgr_status worst;
    char (*uuids)[UUIDUTIL_BUFLEN];
    unsigned acquired, released;
    bool quiet;
};

static void client_note(struct client *c, enum vtpmmgr_status st, const char *uuid,
                        const char *error)
{
    if (st > c->worst)
        c->worst = st;
    if (st != VTPMMGR_OK)
        printf("%s %s\n", st == VTPMMGR_ERR_TRANSIENT ? "TRANSIENT" : "PERMANENT", error);
    else if (!c->quiet)
        printf("OK %s\n", uuid);
    fflush(stdout);
}

static void client_check_async(struct client *c)
{
    if (c->in_call) {
        fprintf(stderr, "vtpmmgr-client: callback ran inside the call that started it\n");
        abort();
    }
}

static void client_done_cb(enum vtpmmgr_status st, const char *uuid, const char *error, void *arg)
{
    struct client *c = arg;

    client_check_async(c);
    client_note(c, st, uuid, error);
    if (--c->outstanding == 0)
        event_base_loopexit(c->base, NULL);
}

struct cycle_item {
    struct client *c;
    unsigned i;
};

static void cycle_release_cb(enum vtpmmgr_status st, const char *uuid, const char *error, void *arg)
{
    struct cycle_item *it = arg;
    struct client *c = it->c;

    client_check_async(c);
    if (st == VTPMMGR_OK)
        c->released++;
    else
        client_note(c, st, uuid, error);
    if (--c->outstanding == 0)
        event_base_loopexit(c->base, NULL);
}

static void cycle_acquire_cb(enum vtpmmgr_status st, const char *uuid, const char *error, void *arg)
{
    struct cycle_item *it = arg;
    struct client *c = it->c;

    client_check_async(c);
    if (st == VTPMMGR_OK) {
        c->acquired++;
        memcpy(c->uuids[it->i], uuid, UUIDUTIL_BUFLEN);
    } else {
        client_note(c, st, uuid, error);
    }
    if (--c->outstanding == 0)
        event_base_loopexit(c->base, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int run_cycle(struct client *c, unsigned n, const char *host)
{
    struct cycle_item *items = xcalloc(n, sizeof(*items));
    uint64_t t0 = now_ms();
    unsigned started = 0;

    c->uuids = xcalloc(n, sizeof(*c->uuids));
    c->quiet = true;
    for (unsigned i = 0; i < n; i++) {
        char inst[UUIDUTIL_BUFLEN];

        uuid_generate_str(inst);
        items[i].c = c;
        items[i].i = i;
        c->in_call = true;
        if (vtpmmgr_acquire(c->m, inst, host, cycle_acquire_cb, &items[i]) == 0)
            started++;
        c->in_call = false;
    }
    c->outstanding = started;
    if (started)
        event_base_dispatch(c->base);
    started = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!c->uuids[i][0])
            continue;
        c->in_call = true;
        if (vtpmmgr_release(c->m, c->uuids[i], NULL, cycle_release_cb, &items[i]) == 0)
            started++;
        c->in_call = false;
    }
    c->outstanding = started;
    if (started)
        event_base_dispatch(c->base);
    printf("%s acquired=%u released=%u elapsed_ms=%llu\n",
           c->acquired == n && c->released == n ? "OK" : "INCOMPLETE", c->acquired, c->released,
           (unsigned long long)(now_ms() - t0));
    free(items);
    free(c->uuids);
    return c->acquired == n && c->released == n ? 0 : -EIO;
}

struct cancel_state {
    struct client *c;
    bool freed;
    bool called_before, called_after;
};

static void cancel_cb(enum vtpmmgr_status st, const char *uuid, const char *error, void *arg)
{
    struct cancel_state *cs = arg;

    if (cs->freed)
        cs->called_after = true;
    else
        cs->called_before = true;
}

static void cancel_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cancel_state *cs = arg;

    vtpmmgr_free(cs->c->m);
    cs->c->m = NULL;
    cs->freed = true;
}

static int run_cancel(struct client *c, const char *instance, const char *ms)
{
    struct cancel_state cs = {.c = c};
    struct timeval tv;
    long v = strtol(ms, NULL, 10);
    struct event *ev;

    tv.tv_sec = v / 1000;
    tv.tv_usec = (v % 1000) * 1000;
    if (vtpmmgr_acquire(c->m, instance, "test-host", cancel_cb, &cs) < 0)
        return -EINVAL;
    ev = evtimer_new(c->base, cancel_timer_cb, &cs);
    evtimer_add(ev, &tv);
    /* Runs until nothing is left: the freed manager must leave no
     * event behind, and must not call back. */
    event_base_dispatch(c->base);
    event_free(ev);
    if (cs.called_after) {
        printf("FAILED callback ran after vtpmmgr_free\n");
        return -EIO;
    }
    if (cs.called_before) {
        printf("EARLY the request ended before the cancel: nothing tested\n");
        return -EAGAIN;
    }
    printf("OK cancelled\n");
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: vtpmmgr-client -c CONFIG [-l LEVEL] acquire INSTANCE [HOST] | "
                    "release VTPM [INSTANCE] | cycle N [HOST] | cancel INSTANCE MS\n");
}

int main(int argc, char **argv)
{
    struct client c = {0};
    struct cfg_errors errs = {0};
    struct config *cfg = NULL;
    const char *config_path = NULL;
    enum log_level level = LOG_LEVEL_WARNING;
    struct vtpmmgr_stats stats;
    int i = 1, ret, rc = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "-l") && i + 1 < argc) {
            if (log_level_parse(argv[++i], &level) < 0) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!config_path || i >= argc) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* as the daemon does */
    log_init("vtpmmgr-client", level, LOG_TARGET_STDERR);
    log_route_libevent();
    if (config_load(config_path, &cfg, &errs) < 0) {
        for (size_t k = 0; k < errs.n; k++)
            fprintf(stderr, "%s\n", errs.msgs[k]);
        cfg_errors_free(&errs);
        return 2;
    }
    c.base = event_base_new();
    if (!c.base || vtpmmgr_new(c.base, cfg, &c.m) < 0) {
        fprintf(stderr, "vtpmmgr-client: cannot set up vtpmmgr\n");
        config_free(cfg);
        if (c.base)
            event_base_free(c.base);
        return 2;
    }
    /* The manager keeps its own copies. */
    config_free(cfg);

    argc -= i;
    argv += i;
    if ((!strcmp(argv[0], "acquire") || !strcmp(argv[0], "release")) && (argc == 2 || argc == 3)) {
        c.in_call = true;
        if (!strcmp(argv[0], "acquire"))
            ret = vtpmmgr_acquire(c.m, argv[1], argc == 3 ? argv[2] : "test-host", client_done_cb, &c);
        else
            ret = vtpmmgr_release(c.m, argv[1], argc == 3 ? argv[2] : NULL, client_done_cb, &c);
        c.in_call = false;
        if (ret < 0) {
            printf("EINVAL invalid arguments\n");
            goto out;
        }
        c.outstanding = 1;
        event_base_dispatch(c.base);
        rc = c.worst == VTPMMGR_OK ? 0 : c.worst == VTPMMGR_ERR_TRANSIENT ? 3 : 4;
    } else if (!strcmp(argv[0], "cycle") && (argc == 2 || argc == 3)) {
        long n = strtol(argv[1], NULL, 10);

        if (n <= 0 || n > 100000) {
            usage();
            rc = 2;
            goto out;
        }
        ret = run_cycle(&c, (unsigned)n, argc == 3 ? argv[2] : "test-host");
        rc = ret == 0 ? 0 : c.worst == VTPMMGR_ERR_TRANSIENT ? 3 : c.worst == VTPMMGR_ERR_PERMANENT ? 4 : 1;
    } else if (!strcmp(argv[0], "cancel") && argc == 3) {
        ret = run_cancel(&c, argv[1], argv[2]);
        rc = ret == 0 ? 0 : 1;
        goto out_freed;
    } else {
        usage();
        rc = 2;
    }
out:
    vtpmmgr_get_stats(c.m, &stats);
    fprintf(stderr, "stats requests=%llu retries=%llu failures=%llu pending=%u\n",
            (unsigned long long)stats.requests, (unsigned long long)stats.retries,
            (unsigned long long)stats.failures, vtpmmgr_pending(c.m));
    vtpmmgr_free(c.m);
    c.m = NULL;
out_freed:
    vtpmmgr_free(c.m); /* NULL after cancel */
    event_base_free(c.base);
    log_close();
    return rc;
}
