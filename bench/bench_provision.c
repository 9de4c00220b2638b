/* Provisioning latency of a running vtpmd, from outside, through the
 * broker. Publishes genuine versioned instance.create.start notifications
 * (a Nova fixture with a fresh instance UUID each) for vtpmd's host to
 * exchange `nova`, and times each one until vtpmd's vtpm.create.end for
 * that instance arrives at a consumer of exchange `vtpmd`. Prints
 * p50/p90/p99/max at a steady rate, and the time to finish a burst.
 * Run by bench/bench_provision.sh, which starts the broker and vtpmd; not
 * a test. Written in C (librabbitmq-c, one thread publishing, one
 * consuming) so that the measuring side adds as little as it can: a
 * Python (pika) client added about a millisecond per message here.
 *
 * Usage: bench_provision --url amqp://127.0.0.1:PORT/ --fixture FILE
 *            --host HOST [--rate 50] [--steady 500] [--burst 1000]
 *            [--warmup 20] */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp.h>
#include <jansson.h>
#include <uuid/uuid.h>

#include "amqp_plain.h"
#include "hmap.h"
#include "xalloc.h"

struct sample {
    uint64_t sent_ns, done_ns; /* done_ns 0: not yet */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct hmap *samples; /* instance UUID -> struct sample */
    size_t done, errors, others;
    bool stop;
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, false};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- consumer thread ----------------------------------------------- */

static void on_status(const char *body, size_t len, uint64_t t)
{
    json_t *outer = json_loadb(body, len, 0, NULL);
    json_t *inner = NULL;
    const char *msg, *event, *uuid;
    struct sample *s;

    msg = json_string_value(json_object_get(outer, "oslo.message"));
    if (msg)
        inner = json_loads(msg, 0, NULL);
    event = json_string_value(json_object_get(inner, "event_type"));
    uuid = json_string_value(json_object_get(json_object_get(inner, "payload"), "instance_uuid"));
    pthread_mutex_lock(&g.lock);
    if (event && uuid && strcmp(event, "vtpm.create.end") == 0 &&
        (s = hmap_get(g.samples, uuid)) != NULL && s->done_ns == 0) {
        s->done_ns = t;
        g.done++;
        pthread_cond_broadcast(&g.cond);
    } else if (event && strstr(event, ".error")) {
        g.errors++;
    } else {
        g.others++;
    }
    pthread_mutex_unlock(&g.lock);
    json_decref(inner);
    json_decref(outer);
}

static void *consume(void *arg)
{
    amqp_connection_state_t c = arg;

    for (;;) {
        struct timeval tv = {0, 200000};
        amqp_envelope_t env;
        amqp_rpc_reply_t r;
        bool stop;

        pthread_mutex_lock(&g.lock);
        stop = g.stop;
        pthread_mutex_unlock(&g.lock);
        if (stop)
            break;
        amqp_maybe_release_buffers(c);
        r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        amqp_plain_check_reply("consume", r);
        on_status(env.message.body.bytes, env.message.body.len, now_ns());
        amqp_destroy_envelope(&env);
    }
    return NULL;
}

static amqp_connection_state_t consumer_setup(const char *url)
{
    amqp_connection_state_t c = amqp_plain_connect(url);
    amqp_queue_declare_ok_t *q;
    amqp_bytes_t name;
    static const char *const keys[] = {"notifications.info", "notifications.error"};

    /* oslo.messaging's flags, which vtpmd uses too. */
    amqp_exchange_declare(c, 1, amqp_cstring_bytes("vtpmd"), amqp_cstring_bytes("topic"), 0,
                          0, 0, 0, amqp_empty_table);
    amqp_plain_check("exchange.declare", c);
    q = amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    amqp_plain_check("queue.declare", c);
    name = amqp_bytes_malloc_dup(q->queue);
    for (size_t i = 0; i < 2; i++) {
        amqp_queue_bind(c, 1, name, amqp_cstring_bytes("vtpmd"), amqp_cstring_bytes(keys[i]),
                        amqp_empty_table);
        amqp_plain_check("queue.bind", c);
    }
    amqp_basic_consume(c, 1, name, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    amqp_plain_check("basic.consume", c);
    amqp_bytes_free(name);
    return c;
}

/* ---- the fixture ---------------------------------------------------- */

struct fixture {
    char *body;      /* with the host replaced */
    char old_uuid[37];
};

/* s with every occurrence of from replaced by to. */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    const char *p;
    char *out, *o;

    for (p = strstr(s, from); p; p = strstr(p + nf, from))
        n++;
    out = o = xmalloc(strlen(s) + n * (nt > nf ? nt - nf : 0) + 1);
    for (p = strstr(s, from); p; p = strstr(s, from)) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, nt);
        o += nt;
        s = p + nf;
    }
    strcpy(o, s);
    return out;
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;

    if (fp == NULL || getdelim(&buf, &len, '\0', fp) < 0) {
        fprintf(stderr, "bench_provision: cannot read %s\n", path);
        exit(2);
    }
    fclose(fp);
    return buf;
}

static void fixture_load(struct fixture *f, const char *path, const char *host)
{
    json_error_t je;
    json_t *outer = json_load_file(path, 0, &je), *inner = NULL;
    const char *msg, *uuid, *pub;
    char *from, *to, *raw;

    if (outer == NULL) {
        fprintf(stderr, "bench_provision: %s:%d: %s\n", path, je.line, je.text);
        exit(2);
    }

    msg = json_string_value(json_object_get(outer, "oslo.message"));
    if (msg)
        inner = json_loads(msg, 0, &je);
    uuid = json_string_value(json_object_get(
        json_object_get(json_object_get(inner, "payload"), "nova_object.data"), "uuid"));
    pub = json_string_value(json_object_get(inner, "publisher_id"));
    if (!uuid || strlen(uuid) != 36 || !pub || strncmp(pub, "nova-compute:", 13) != 0) {
        fprintf(stderr, "bench_provision: %s is not a versioned instance.create.start "
                        "of nova-compute\n", path);
        exit(2);
    }
    memcpy(f->old_uuid, uuid, 37);
    raw = read_file(path); /* the genuine bytes, not a re-encoding */
    xasprintf(&from, "%s", pub);
    xasprintf(&to, "nova-compute:%s", host);
    f->body = replace_all(raw, from, to);
    free(raw);
    free(from);
    free(to);
    json_decref(inner);
    json_decref(outer);
}

/* ---- publishing and waiting ----------------------------------------- */

static void publish(amqp_connection_state_t c, const struct fixture *f, char uuid_out[37])
{
    amqp_basic_properties_t p;
    uuid_t u;
    char *body;
    struct sample *s = xcalloc(1, sizeof(*s));

    uuid_generate_random(u);
    uuid_unparse_lower(u, uuid_out);
    body = replace_all(f->body, f->old_uuid, uuid_out);
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    pthread_mutex_lock(&g.lock);
    hmap_put(g.samples, uuid_out, s);
    s->sent_ns = now_ns();
    pthread_mutex_unlock(&g.lock);
    if (amqp_basic_publish(c, 1, amqp_cstring_bytes("nova"),
                           amqp_cstring_bytes("versioned_notifications.info"), 0, 0, &p,
                           amqp_cstring_bytes(body)) != AMQP_STATUS_OK) {
        fprintf(stderr, "bench_provision: publish failed\n");
        exit(1);
    }
    free(body);
}

/* Waits until g.done reaches target or timeout_s passes; false on timeout. */
static bool wait_done(size_t target, double timeout_s)
{
    struct timespec ts;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)timeout_s;
    pthread_mutex_lock(&g.lock);
    while (g.done < target)
        if (pthread_cond_timedwait(&g.cond, &g.lock, &ts) == ETIMEDOUT)
            break;
    ok = g.done >= target;
    pthread_mutex_unlock(&g.lock);
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);

    return v[i < n ? i : n - 1];
}

/* Latencies (ms) of the given UUIDs that finished, sorted; returns count. */
static size_t collect(char (*uuids)[37], size_t n, double *out, uint64_t *last_done)
{
    size_t k = 0;

    *last_done = 0;
    pthread_mutex_lock(&g.lock);
    for (size_t i = 0; i < n; i++) {
        struct sample *s = hmap_get(g.samples, uuids[i]);

        if (s && s->done_ns) {
            out[k++] = (double)(s->done_ns - s->sent_ns) / 1e6;
            if (s->done_ns > *last_done)
                *last_done = s->done_ns;
        }
    }
    pthread_mutex_unlock(&g.lock);
    qsort(out, k, sizeof(*out), cmp_double);
    return k;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_provision --url URL --fixture FILE --host HOST [--rate R] "
                    "[--steady N] [--burst M] [--warmup W]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},    {"fixture", required_argument, NULL, 'f'},
        {"host", required_argument, NULL, 'H'},   {"rate", required_argument, NULL, 'r'},
        {"steady", required_argument, NULL, 's'}, {"burst", required_argument, NULL, 'b'},
        {"warmup", required_argument, NULL, 'w'}, {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *fixture = NULL, *host = NULL;
    double rate = 50;
    long steady = 500, burst = 1000, warmup = 20;
    struct fixture f;
    amqp_connection_state_t pub, cons;
    pthread_t th;
    char(*uuids)[37];
    double *lat;
    size_t n, base;
    uint64_t t0, tp, last;
    int o;

    amqp_plain_prog = "bench_provision";
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'f': fixture = optarg; break;
        case 'H': host = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 's': steady = atol(optarg); break;
        case 'b': burst = atol(optarg); break;
        case 'w': warmup = atol(optarg); break;
        default: usage();
        }
    }
    if (!url || !fixture || !host || rate <= 0 || steady < 1 || burst < 1 || warmup < 0)
        usage();
    fixture_load(&f, fixture, host);
    g.samples = hmap_new();
    cons = consumer_setup(url);
    pub = amqp_plain_connect(url);
    if (pthread_create(&th, NULL, consume, cons) != 0)
        return 1;
    n = (size_t)(steady > burst ? steady : burst);
    if ((size_t)warmup > n)
        n = (size_t)warmup;
    uuids = xcalloc(n, sizeof(*uuids));
    lat = xcalloc(n, sizeof(*lat));

    /* Warm-up: paced, not measured. */
    for (long i = 0; i < warmup; i++) {
        publish(pub, &f, uuids[i]);
        wait_done((size_t)i + 1, 30);
    }
    base = g.done;

    /* Steady rate. */
    t0 = now_ns();
    for (long i = 0; i < steady; i++) {
        sleep_until(t0 + (uint64_t)((double)i * 1e9 / rate));
        publish(pub, &f, uuids[i]);
    }
    if (!wait_done(base + (size_t)steady, 60))
        printf("steady: TIMEOUT\n");
    n = collect(uuids, (size_t)steady, lat, &last);
    printf("steady %ld creates at %.0f/s: %zu done\n", steady, rate, n);
    if (n)
        printf("  latency publish -> vtpm.create.end: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
               "max %.2f ms\n",
               pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99), lat[n - 1]);
    base = g.done;
    sleep_until(now_ns() + 500000000u); /* let the acks and journal settle */

    /* Burst. */
    t0 = now_ns();
    for (long i = 0; i < burst; i++)
        publish(pub, &f, uuids[i]);
    tp = now_ns();
    if (!wait_done(base + (size_t)burst, 120))
        printf("burst: TIMEOUT\n");
    n = collect(uuids, (size_t)burst, lat, &last);
    printf("burst of %ld creates: published in %.3f s, %zu vtpm.create.end, the last %.3f s "
           "after the first publish\n",
           burst, (double)(tp - t0) / 1e9, n, last ? (double)(last - t0) / 1e9 : 0.0);
    if (n)
        printf("  each: p50 %.1f ms  p99 %.1f ms\n", pct(lat, n, 50), pct(lat, n, 99));
    printf("  error statuses seen: %zu\n", g.errors);

    pthread_mutex_lock(&g.lock);
    g.stop = true;
    pthread_mutex_unlock(&g.lock);
    pthread_join(th, NULL);
    amqp_plain_close(pub);
    amqp_plain_close(cons);
    hmap_free(g.samples, free);
    free(uuids);
    free(lat);
    free(f.body);
    return g.errors ? 1 : 0;
}
