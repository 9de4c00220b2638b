/* Consume throughput: drains a backlog of genuine versioned Nova
 * notifications of other hosts (tests/fixtures/nova, 3-4 KB, persistent,
 * in vtpmd's durable queue) and prints messages per second. Run by
 * bench/bench-consume.sh, which starts a private broker and compares:
 *
 *   fill       publish the backlog (fixtures, a fresh instance UUID each)
 *   bus        vtpmd's bus with the daemon's classification
 *              (novamsg_decode, every one irrelevant: acked in batches)
 *   bare-each  a plain librabbitmq-c loop (amqp_consume_message) acking
 *              every message, doing nothing with the bodies
 *   bare-64    the same, acking with multiple every 64
 *   count      prints the messages left in the queue
 *
 * Usage: bench_consume --url URL --queue Q --count N [--prefetch P]
 *                      [--config YAML] [--fixtures DIR] [--trivial] MODE
 * The rate is measured from the first delivery to the last ack sent. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <event2/event.h>
#include <jansson.h>
#include <uuid/uuid.h>

#include "amqp_plain.h"
#include "bus.h"
#include "vconfig.h"
#include "log.h"
#include "novamsg.h"
#include "xalloc.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/fixtures/nova"
#endif

struct opts {
    const char *url, *queue, *config, *fixtures;
    long count;
    unsigned prefetch;
    bool trivial; /* bus handler acks without decoding */
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used. */
static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint32_t queue_count(amqp_connection_state_t c, const char *q, bool declare)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(q), !declare, 1, 0, 0, amqp_empty_table);

    amqp_plain_check("queue.declare", c);
    return ok->message_count;
}

/* ---- fill -------------------------------------------------------- */

struct fixture {
    char *body;
    size_t len;
    char uuid[37]; /* to replace with a fresh one per message; "" none */
    long message_id, unique_id; /* offsets of their values; -1 none */
};

/* Offset of the value of an inner-message key, or -1. In the 2.0
 * envelope the inner message is a JSON string (its quotes escaped); the
 * 1.0 format (driver messaging) sends it bare. */
static long inner_value_at(const char *body, size_t len, const char *key, size_t vlen)
{
    long off = -1;

    for (int escaped = 1; escaped >= 0 && off < 0; escaped--) {
        const char *q = escaped ? "\\\"" : "\"";
        char *pat;
        const char *p;

        xasprintf(&pat, "%s%s%s: %s", q, key, q, q);
        p = memmem(body, len, pat, strlen(pat));
        if (p && (size_t)(p - body) + strlen(pat) + vlen <= len)
            off = (long)(p - body) + (long)strlen(pat);
        free(pat);
    }
    return off;
}

static size_t load_fixtures(const char *dir, struct fixture **out)
{
    char *path;
    json_error_t err;
    json_t *idx, *msgs, *m;
    struct fixture *f = NULL;
    size_t n = 0, i;

    xasprintf(&path, "%s/index.json", dir);
    idx = json_load_file(path, 0, &err);
    if (idx == NULL) {
        fprintf(stderr, "bench_consume: %s: %s\n", path, err.text);
        exit(2);
    }
    free(path);
    msgs = json_object_get(idx, "messages");
    json_array_foreach(msgs, i, m) {
        const char *fmt = json_string_value(json_object_get(m, "format"));
        const char *file = json_string_value(json_object_get(m, "file"));
        const char *uuid = json_string_value(
            json_object_get(json_object_get(m, "expect"), "instance_uuid"));
        FILE *fp;
        long len;

        if (fmt == NULL || strcmp(fmt, "versioned") != 0 || file == NULL)
            continue;
        xasprintf(&path, "%s/%s", dir, file);
        fp = fopen(path, "rb");
        if (fp == NULL) {
            perror(path);
            exit(2);
        }
        fseek(fp, 0, SEEK_END);
        len = ftell(fp);
        rewind(fp);
        f = xreallocarray(f, n + 1, sizeof(*f));
        f[n].body = xmalloc((size_t)len);
        f[n].len = fread(f[n].body, 1, (size_t)len, fp);
        snprintf(f[n].uuid, sizeof(f[n].uuid), "%s", uuid && strlen(uuid) == 36 ? uuid : "");
        f[n].message_id = inner_value_at(f[n].body, f[n].len, "message_id", 36);
        f[n].unique_id = inner_value_at(f[n].body, f[n].len, "_unique_id", 32);
        fclose(fp);
        free(path);
        n++;
    }
    json_decref(idx);
    *out = f;
    return n;
}

static int mode_fill(const struct opts *o)
{
    struct fixture *fx;
    size_t nfx = load_fixtures(o->fixtures, &fx), total = 0;
    amqp_connection_state_t c = amqp_plain_connect(o->url);
    amqp_basic_properties_t p;
    char *buf = NULL;
    size_t cap = 0;
    uint32_t have;
    double t0;

    if (nfx == 0) {
        fprintf(stderr, "bench_consume: no versioned fixtures in %s\n", o->fixtures);
        return 2;
    }
    have = queue_count(c, o->queue, true);
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
               AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.content_encoding = amqp_cstring_bytes("utf-8");
    p.delivery_mode = 2;
    t0 = now_s();
    for (long i = 0; i < o->count; i++) {
        struct fixture *f = &fx[(size_t)i % nfx];
        amqp_bytes_t body;

        if (cap < f->len) {
            buf = xrealloc(buf, f->len);
            cap = f->len;
        }
        memcpy(buf, f->body, f->len);
        if (f->uuid[0]) {
            char fresh[37];
            uuid_t u;

            uuid_generate_random(u);
            uuid_unparse_lower(u, fresh);
            for (char *q = memmem(buf, f->len, f->uuid, 36); q;
                 q = memmem(q + 36, f->len - (size_t)(q + 36 - buf), f->uuid, 36))
                memcpy(q, fresh, 36);
        }
        /* Fresh ids too: oslo.messaging drops a _unique_id it has seen. */
        {
            char hex[37];
            uuid_t u;

            uuid_generate_random(u);
            uuid_unparse_lower(u, hex);
            if (f->message_id >= 0)
                memcpy(buf + f->message_id, hex, 36);
            uuid_generate_random(u);
            for (int k = 0; k < 16; k++)
                snprintf(hex + 2 * k, 3, "%02x", u[k]);
            if (f->unique_id >= 0)
                memcpy(buf + f->unique_id, hex, 32);
        }
        body.bytes = buf;
        body.len = f->len;
        total += f->len;
        if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(o->queue), 0, 0,
                               &p, body) != AMQP_STATUS_OK) {
            fprintf(stderr, "bench_consume: publish failed\n");
            return 1;
        }
    }
    /* Published without confirms: wait until the broker has them all. */
    while (queue_count(c, o->queue, false) < have + (uint32_t)o->count) {
        struct timespec ts = {0, 50 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    printf("fill %ld messages avg_bytes=%zu fixtures=%zu seconds=%.2f\n", o->count,
           total / (size_t)o->count, nfx, now_s() - t0);
    amqp_plain_close(c);
    for (size_t i = 0; i < nfx; i++)
        free(fx[i].body);
    free(fx);
    free(buf);
    return 0;
}

/* ---- plain librabbitmq-c loops ----------------------------------- */

static int mode_bare(const struct opts *o, unsigned every)
{
    amqp_connection_state_t c = amqp_plain_connect(o->url);
    double t0 = 0, t1, c0 = 0;
    long n = 0;

    amqp_basic_qos(c, 1, 0, (uint16_t)o->prefetch, 0);
    amqp_plain_check("basic.qos", c);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(o->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    amqp_plain_check("basic.consume", c);
    while (n < o->count) {
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        amqp_maybe_release_buffers(c);
        r = amqp_consume_message(c, &env, NULL, 0);
        amqp_plain_check_reply("consume", r);
        if (n++ == 0) {
            t0 = now_s();
            c0 = cpu_s();
        }
        if (every <= 1)
            amqp_basic_ack(c, 1, env.delivery_tag, 0);
        else if (n % every == 0 || n == o->count)
            amqp_basic_ack(c, 1, env.delivery_tag, 1);
        amqp_destroy_envelope(&env);
    }
    t1 = now_s();
    printf("result mode=%s messages=%ld seconds=%.3f rate=%.0f cpu_us=%.2f\n",
           every <= 1 ? "bare-each" : "bare-64", n, t1 - t0, (double)n / (t1 - t0),
           (cpu_s() - c0) * 1e6 / (double)n);
    amqp_plain_close(c);
    return 0;
}

/* ---- vtpmd's bus ------------------------------------------------- */

struct busrun {
    struct event_base *base;
    struct config *cfg;
    struct bus *bus;
    struct event *ev_done;
    long count, n;
    long irrelevant, relevant, malformed;
    double t0, t1, c0, c1;
    bool trivial;
};

static void bus_deliver_cb(struct bus_delivery *d, const void *body, size_t len,
                           const char *ctype, bool redelivered, void *arg)
{
    struct busrun *r = arg;
    struct nova_event ev;
    const char *why;

    if (r->n++ == 0) {
        r->t0 = now_s();
        r->c0 = cpu_s();
    }
    if (r->trivial) {
        r->irrelevant++;
        bus_ack(r->bus, d);
    } else switch (novamsg_decode(body, len, ctype, r->cfg->host,
                           r->cfg->notifications.max_message_size, &ev, &why)) {
    case NOVAMSG_IRRELEVANT:
        r->irrelevant++;
        bus_ack(r->bus, d);
        break;
    case NOVAMSG_RELEVANT:
        r->relevant++;
        nova_event_clear(&ev);
        bus_ack(r->bus, d);
        break;
    default:
        r->malformed++;
        bus_reject(r->bus, d);
        break;
    }
    if (r->n == r->count) {
        struct timeval tv = {0, 1000};

        event_add(r->ev_done, &tv);
    }
}

static void bus_stopped_cb(void *arg)
{
    struct busrun *r = arg;

    event_base_loopexit(r->base, NULL);
}

/* Done when the last batched ack has gone out (at most 10 ms later). */
static void bus_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct busrun *r = arg;
    struct bus_stats st;

    bus_get_stats(r->bus, &st);
    if (st.ack_pending > 0)
        return;
    event_del(r->ev_done);
    r->t1 = now_s();
    r->c1 = cpu_s();
    bus_stop(r->bus, bus_stopped_cb, r);
}

static int mode_bus(const struct opts *o)
{
    struct bus_callbacks cb = {.deliver = bus_deliver_cb};
    struct cfg_errors errs = {0};
    struct busrun r;

    memset(&r, 0, sizeof(r));
    r.count = o->count;
    r.trivial = o->trivial;
    if (config_load(o->config, &r.cfg, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        return 2;
    }
    r.base = event_base_new();
    r.ev_done = event_new(r.base, -1, EV_PERSIST, bus_done_cb, &r);
    if (bus_new(r.base, r.cfg, &cb, &r, &r.bus) < 0)
        return 1;
    bus_start(r.bus);
    event_base_dispatch(r.base);
    printf("result mode=bus messages=%ld seconds=%.3f rate=%.0f cpu_us=%.2f "
           "handler=%s irrelevant=%ld relevant=%ld malformed=%ld\n",
           r.n, r.t1 - r.t0, (double)r.n / (r.t1 - r.t0), (r.c1 - r.c0) * 1e6 / (double)r.n,
           r.trivial ? "trivial" : "novamsg_decode", r.irrelevant, r.relevant, r.malformed);
    bus_free(r.bus);
    event_free(r.ev_done);
    event_base_free(r.base);
    config_free(r.cfg);
    return r.n == r.count && r.malformed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"count", required_argument, NULL, 'n'},
        {"prefetch", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"fixtures", required_argument, NULL, 'f'},
        {"trivial", no_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {.queue = "vtpmd.benchhost", .count = 100000, .prefetch = 256,
                     .fixtures = FIXTURE_DIR};
    const char *mode;
    int ch;

    amqp_plain_prog = "bench_consume";
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': o.url = optarg; break;
        case 'q': o.queue = optarg; break;
        case 'n': o.count = atol(optarg); break;
        case 'p': o.prefetch = (unsigned)atoi(optarg); break;
        case 'c': o.config = optarg; break;
        case 'f': o.fixtures = optarg; break;
        case 't': o.trivial = true; break;
        default: return 2;
        }
    }
    if (optind != argc - 1 || o.url == NULL || o.count <= 0) {
        fprintf(stderr, "usage: bench_consume --url URL [--queue Q] [--count N] "
                        "[--prefetch P] [--config YAML] [--fixtures DIR] [--trivial] "
                        "fill|bus|bare-each|bare-64|count\n");
        return 2;
    }
    mode = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_init("bench_consume", LOG_LEVEL_WARNING, LOG_TARGET_STDERR);
    if (strcmp(mode, "fill") == 0)
        return mode_fill(&o);
    if (strcmp(mode, "bare-each") == 0)
        return mode_bare(&o, 1);
    if (strcmp(mode, "bare-64") == 0)
        return mode_bare(&o, 64);
    if (strcmp(mode, "bus") == 0) {
        if (o.config == NULL) {
            fprintf(stderr, "bench_consume: bus needs --config\n");
            return 2;
        }
        return mode_bus(&o);
    }
    if (strcmp(mode, "count") == 0) {
        amqp_connection_state_t c = amqp_plain_connect(o.url);

        printf("%" PRIu32 "\n", queue_count(c, o.queue, false));
        amqp_plain_close(c);
        return 0;
    }
    fprintf(stderr, "bench_consume: unknown mode %s\n", mode);
    return 2;
}
