/* A small program around the real bus for the integration tests: it
 * consumes vtpmd's queue like the daemon does, decides per delivery (ack,
 * reject when the body is not a JSON object, hold for a while when the
 * body contains "HOLD"), publishes status notifications built by the
 * status module, and prints one line per event on stdout:
 *
 *   ready | lost
 *   deliver tag=N bytes=N redelivered=0|1 ctype=T action=ack|reject|hold
 *   confirm seq=N status=S request_id=R
 *   caught_up=0|1
 *   stats delivered=N acked=N rejected=N published=N confirmed=N nacked=N reconnects=N
 *   stopped
 *
 * Usage: bus_peer -c CONFIG [--publish N] [--interval MS] [--hold MS]
 *                 [--probe MS] [--reject-malformed]
 * SIGTERM stops the bus gracefully, then prints stats and exits 0. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "bus.h"
#include "vconfig.h"
#include "log.h"
#include "status.h"
#include "xalloc.h"

struct peer {
    struct event_base *base;
    struct config *cfg;
    struct bus *bus;
    bool reject_malformed;
    uint64_t hold_ms;
    long publish_n, published;
    uint64_t interval_ms;
    uint64_t probe_ms;
    struct event *ev_pub, *ev_probe, *ev_term;
};

struct held {
    struct peer *p;
    struct bus_delivery *d;
};

struct pubarg {
    struct peer *p;
    long seq;
};

static void peer_held_cb(evutil_socket_t fd, short what, void *arg)
{
    struct held *h = arg;

    printf("release tag=%" PRIu64 "\n", bus_delivery_tag(h->d));
    bus_ack(h->p->bus, h->d);
    free(h);
}

static void peer_deliver(struct bus_delivery *d, const void *body, size_t len,
                         const char *ctype, bool redelivered, void *arg)
{
    struct peer *p = arg;
    const char *action = "ack";

    if (p->reject_malformed) {
        json_t *j = json_loadb(body, len, 0, NULL);

        if (j == NULL || !json_is_object(j))
            action = "reject";
        json_decref(j);
    }
    if (p->hold_ms && len >= 4 && memmem(body, len, "HOLD", 4))
        action = "hold";
    printf("deliver tag=%" PRIu64 " bytes=%zu redelivered=%d ctype=%s action=%s\n",
           bus_delivery_tag(d), len, redelivered, ctype ? ctype : "-", action);
    if (strcmp(action, "reject") == 0) {
        bus_reject(p->bus, d);
    } else if (strcmp(action, "hold") == 0) {
        struct held *h = xmalloc(sizeof(*h));
        struct timeval tv = {(time_t)(p->hold_ms / 1000),
                             (suseconds_t)(p->hold_ms % 1000) * 1000};

        h->p = p;
        h->d = d;
        event_base_once(p->base, -1, EV_TIMEOUT, peer_held_cb, h, &tv);
    } else {
        bus_ack(p->bus, d);
    }
}

static void peer_state(bool ready, void *arg)
{
    printf("%s\n", ready ? "ready" : "lost");
}

static void peer_confirmed(int status, void *arg)
{
    struct pubarg *a = arg;

    printf("confirm seq=%ld status=%d request_id=req-%ld\n", a->seq, status, a->seq);
    free(a);
}

static void peer_publish_one(struct peer *p)
{
    static const char *const events[] = {STATUS_CREATE_START, STATUS_CREATE_END,
                                         STATUS_CREATE_ERROR};
    struct status_payload pl;
    struct pubarg *a = xmalloc(sizeof(*a));
    char req[32], uuid[64];
    long i = ++p->published;
    int r;

    snprintf(req, sizeof(req), "req-%ld", i);
    snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012ld", i % 1000000000000L);
    memset(&pl, 0, sizeof(pl));
    pl.instance_uuid = uuid;
    pl.vtpm_uuid = "11111111-2222-4333-8444-555555555555";
    pl.vtpm_domain = "vtpm-test";
    pl.image_path = "/var/lib/vtpmd/images/test.img";
    pl.rule = "all";
    pl.state = "ready";
    pl.duration_ms = i;
    pl.request_id = req;
    pl.error_code = "test";
    pl.error_message = "a test error";
    a->p = p;
    a->seq = i;
    r = status_publish(p->bus, p->cfg, events[i % 3], &pl, peer_confirmed, a);
    if (r < 0) {
        printf("publish seq=%ld error=%d\n", i, r);
        free(a);
    }
}

static void peer_pub_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;

    if (p->interval_ms == 0) {
        while (p->published < p->publish_n)
            peer_publish_one(p);
        return;
    }
    peer_publish_one(p);
    if (p->published < p->publish_n) {
        struct timeval tv = {(time_t)(p->interval_ms / 1000),
                             (suseconds_t)(p->interval_ms % 1000) * 1000};

        evtimer_add(p->ev_pub, &tv);
    }
}

static void peer_probe_answer(bool caught_up, void *arg)
{
    printf("caught_up=%d\n", caught_up);
}

static void peer_probe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;

    bus_probe(p->bus, peer_probe_answer, p);
}

static void peer_stopped(void *arg)
{
    struct peer *p = arg;

    event_base_loopexit(p->base, NULL);
}

static void peer_term_cb(evutil_socket_t sig, short what, void *arg)
{
    struct peer *p = arg;

    event_del(p->ev_pub);
    event_del(p->ev_probe);
    bus_stop(p->bus, peer_stopped, p);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"publish", required_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        {"hold", required_argument, NULL, 'H'},
        {"probe", required_argument, NULL, 'p'},
        {"reject-malformed", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    struct bus_callbacks cb = {.deliver = peer_deliver, .state_changed = peer_state};
    struct cfg_errors errs = {0};
    struct peer p;
    struct bus_stats st;
    const char *path = NULL;
    int c;

    memset(&p, 0, sizeof(p));
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'n': p.publish_n = atol(optarg); break;
        case 'i': p.interval_ms = strtoull(optarg, NULL, 10); break;
        case 'H': p.hold_ms = strtoull(optarg, NULL, 10); break;
        case 'p': p.probe_ms = strtoull(optarg, NULL, 10); break;
        case 'r': p.reject_malformed = true; break;
        default: return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "usage: bus_peer -c CONFIG [options]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    log_init("bus_peer", LOG_LEVEL_INFO, LOG_TARGET_STDERR);
    if (config_load(path, &p.cfg, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        cfg_errors_free(&errs);
        return 2;
    }
    log_set_level((enum log_level)p.cfg->log.level);
    p.base = event_base_new();
    if (bus_new(p.base, p.cfg, &cb, &p, &p.bus) < 0)
        return 1;
    p.ev_pub = evtimer_new(p.base, peer_pub_cb, &p);
    p.ev_probe = event_new(p.base, -1, EV_PERSIST, peer_probe_cb, &p);
    p.ev_term = evsignal_new(p.base, SIGTERM, peer_term_cb, &p);
    evsignal_add(p.ev_term, NULL);
    if (p.publish_n > 0)
        event_active(p.ev_pub, EV_TIMEOUT, 1);
    if (p.probe_ms) {
        struct timeval tv = {(time_t)(p.probe_ms / 1000),
                             (suseconds_t)(p.probe_ms % 1000) * 1000};

        event_add(p.ev_probe, &tv);
    }
    bus_start(p.bus);
    event_base_dispatch(p.base);
    bus_get_stats(p.bus, &st);
    printf("stats delivered=%" PRIu64 " acked=%" PRIu64 " rejected=%" PRIu64
           " published=%" PRIu64 " confirmed=%" PRIu64 " nacked=%" PRIu64
           " reconnects=%" PRIu64 "\n",
           st.delivered, st.acked, st.rejected, st.published, st.confirmed, st.nacked,
           st.reconnects);
    printf("stopped\n");
    bus_free(p.bus);
    event_free(p.ev_pub);
    event_free(p.ev_probe);
    event_free(p.ev_term);
    event_base_free(p.base);
    config_free(p.cfg);
    log_close();
    libevent_global_shutdown();
    return 0;
}
