/* Decode + policy throughput on one core, next to plain jansson.
 *
 *   bench_decode [-t SECONDS] [-s SET] [--smoke] [FIXTURE_DIR]
 *
 * Reads the genuine notifications of FIXTURE_DIR (default: the source
 * tree's tests/fixtures/nova; see its index.json) and measures, in one
 * thread:
 *   - irrelevant: every fixture as another host sees it (this_host
 *     "compute9"), versioned and legacy apart: novamsg_decode();
 *   - relevant: the creates and deletes that concern compute1:
 *     novamsg_decode() + policy_decide() + nova_event_clear();
 *   - for each set, jansson alone: json_loadb() of the body and, for the
 *     oslo envelope, of the inner message (what a decoder without the
 *     filter has to do at least).
 * Rates are messages per second of this thread's CPU time (the machine
 * may be shared; wall-clock rates are printed too). Every message's class
 * is checked first; a wrong one exits 1. --smoke: one pass, no timing.
 * -s SET: only the sets whose name starts with SET, without jansson (for
 * a profiler). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "vconfig.h"
#include "log.h"
#include "novamsg.h"
#include "policy.h"
#include "xalloc.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/fixtures/nova"
#endif

#define MAX_SIZE (1024 * 1024)
#define MAX_MSGS 256

/* The example policy of conf/vtpmd.yaml. */
static const char policy_yaml[] =
    "vtpmmgr: {provider: local}\n"
    "policy:\n"
    "  default: deny\n"
    "  rules:\n"
    "    - name: tpm-flavors\n"
    "      match: {flavor_extra_specs: {'hw:tpm_version': '*'}}\n"
    "    - name: tpm-images\n"
    "      match: {image_properties: {hw_tpm_version: '*'}}\n"
    "    - name: attestation-project\n"
    "      match: {project_id: ['6f70656e737461636b20342065766572']}\n"
    "      vtpm: {image_size: 4MiB}\n";

struct msg {
    char *body;
    size_t len;
};

struct set {
    const char *name;
    const char *host;
    bool relevant;
    size_t n;
    size_t bytes;
    struct msg m[MAX_MSGS];
};

static double now(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0) {
        fprintf(stderr, "bench_decode: cannot read %s\n", path);
        exit(1);
    }
    rewind(f);
    buf = xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "bench_decode: short read on %s\n", path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void add(struct set *s, const char *body, size_t len)
{
    if (s->n == MAX_MSGS)
        return;
    s->m[s->n].body = xstrndup(body, len);
    s->m[s->n].len = len;
    s->bytes += len;
    s->n++;
}

/* One pass over the set with novamsg; false when a class is wrong. */
static bool pass_novamsg(const struct set *s, const struct policy *p,
                         bool check)
{
    for (size_t i = 0; i < s->n; i++) {
        struct nova_event ev;
        struct policy_decision d;
        const char *reason;
        enum novamsg_class c;

        c = novamsg_decode(s->m[i].body, s->m[i].len, "application/json",
                           s->host, MAX_SIZE, &ev, &reason);
        if (c == NOVAMSG_RELEVANT)
            policy_decide(p, &ev, &d);
        nova_event_clear(&ev);
        if (check && c != (s->relevant ? NOVAMSG_RELEVANT : NOVAMSG_IRRELEVANT)) {
            fprintf(stderr, "bench_decode: %s message %zu: %s (%s)\n", s->name,
                    i, novamsg_class_name(c), reason);
            return false;
        }
    }
    return true;
}

static void pass_jansson(const struct set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        json_t *outer = json_loadb(s->m[i].body, s->m[i].len, 0, NULL);
        json_t *m = json_object_get(outer, "oslo.message");

        if (json_is_string(m))
            json_decref(json_loadb(json_string_value(m), json_string_length(m),
                                   0, NULL));
        json_decref(outer);
    }
}

struct rate {
    double cpu, wall; /* messages per second */
};

static struct rate measure(const struct set *s, const struct policy *p,
                           bool jansson, double seconds)
{
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC), c1;
    size_t done = 0;
    struct rate r;

    do {
        for (int k = 0; k < 16; k++) {
            if (jansson)
                pass_jansson(s);
            else
                pass_novamsg(s, p, false);
            done += s->n;
        }
        c1 = now(CLOCK_THREAD_CPUTIME_ID);
    } while (c1 - c0 < seconds);
    r.cpu = (double)done / (c1 - c0);
    r.wall = (double)done / (now(CLOCK_MONOTONIC) - w0);
    return r;
}

int main(int argc, char **argv)
{
    const char *dir = FIXTURE_DIR;
    double seconds = 2.0;
    bool smoke = false;
    const char *only = NULL;
    static struct set sets[] = {
        {"irrelevant, versioned", "compute9", false, 0, 0, {{0}}},
        {"irrelevant, legacy", "compute9", false, 0, 0, {{0}}},
        {"irrelevant, all", "compute9", false, 0, 0, {{0}}},
        {"relevant (+ policy)", "compute1", true, 0, 0, {{0}}},
    };
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct cfg_errors errs = {0};
    struct policy *p = NULL;
    json_t *idx, *msgs, *m;
    json_error_t err;
    char *path;
    size_t i;

    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--smoke") == 0)
            smoke = true;
        else if (strcmp(argv[a], "-t") == 0 && a + 1 < argc)
            seconds = atof(argv[++a]);
        else if (strcmp(argv[a], "-s") == 0 && a + 1 < argc)
            only = argv[++a];
        else if (argv[a][0] != '-')
            dir = argv[a];
        else {
            fprintf(stderr, "usage: bench_decode [-t SECONDS] [-s SET] [--smoke] "
                            "[FIXTURE_DIR]\n");
            return 2;
        }
    }
    log_init("bench_decode", LOG_LEVEL_ERROR, LOG_TARGET_STDERR);
    if (cfg_load_buffer(&config_table, "bench.yaml", policy_yaml,
                        sizeof(policy_yaml) - 1, cfg, &errs) < 0 ||
        policy_new(cfg, &p) < 0) {
        fprintf(stderr, "bench_decode: bad policy\n");
        return 1;
    }
    config_free(cfg);

    xasprintf(&path, "%s/index.json", dir);
    idx = json_load_file(path, 0, &err);
    if (!idx) {
        fprintf(stderr, "bench_decode: %s: %s\n", path, err.text);
        return 1;
    }
    free(path);
    msgs = json_object_get(idx, "messages");
    json_array_foreach(msgs, i, m) {
        const char *file = json_string_value(json_object_get(m, "file"));
        const char *fmt = json_string_value(json_object_get(m, "format"));
        json_t *rel = json_object_get(json_object_get(m, "expect"), "relevant_for"), *h;
        size_t len, j;
        char *body;

        xasprintf(&path, "%s/%s", dir, file);
        body = slurp(path, &len);
        free(path);
        add(&sets[strcmp(fmt, "legacy") == 0 ? 1 : 0], body, len);
        add(&sets[2], body, len);
        json_array_foreach(rel, j, h)
            if (strcmp(json_string_value(h), "compute1") == 0)
                add(&sets[3], body, len);
        free(body);
    }
    json_decref(idx);

    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        if (sets[i].n == 0 || !pass_novamsg(&sets[i], p, true))
            return 1;
    if (smoke) {
        printf("bench_decode: smoke pass over %zu messages ok\n", sets[2].n);
        goto out;
    }

    printf("decode throughput, one thread, %.1f s per figure (CPU time; wall in brackets)\n",
           seconds);
    printf("%-24s %5s %9s %24s %24s %8s\n", "set", "msgs", "avg bytes",
           "novamsg msg/s", "jansson msg/s", "speedup");
    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        struct rate n, j = {0, 0};
        char nb[40], jb[40];

        if (only && strncmp(sets[i].name, only, strlen(only)) != 0)
            continue;
        n = measure(&sets[i], p, false, seconds);
        if (!only)
            j = measure(&sets[i], p, true, seconds);

        snprintf(nb, sizeof(nb), "%.0f [%.0f]", n.cpu, n.wall);
        snprintf(jb, sizeof(jb), "%.0f [%.0f]", j.cpu, j.wall);
        printf("%-24s %5zu %9zu %24s %24s %7.1fx\n", sets[i].name, sets[i].n,
               sets[i].bytes / sets[i].n, nb, jb, j.cpu > 0 ? n.cpu / j.cpu : 0);
    }
out:
    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        for (size_t k = 0; k < sets[i].n; k++)
            free(sets[i].m[k].body);
    policy_free(p);
    return 0;
}
