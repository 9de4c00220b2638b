/* novamsg: every field of both formats from the genuine fixtures (Nova's
 * own code, tests/tools/gen-nova-fixtures.py), hand-written messages of
 * the format's corners, every malformed class, the helpers, and a
 * deterministic differential run of the cheap filter against the full
 * decoder over mutations of the genuine messages.
 * NOVA_FIXTURE_DIR: read the fixtures from there instead. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "novamsg.h"
#include "novamsg_priv.h"
#include "xalloc.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/fixtures/nova"
#endif

#define MAX_SIZE (1024 * 1024)
#define THIS "compute1"

/* ---- helpers ---- */

/* The committed fixtures, or freshly generated ones
 * (tests/integration/decode-genuine.sh). */
static const char *fixture_dir(void)
{
    const char *d = getenv("NOVA_FIXTURE_DIR");

    return d && *d ? d : FIXTURE_DIR;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static char *fixture(const char *name, size_t *len)
{
    char *path, *buf;

    xasprintf(&path, "%s/%s", fixture_dir(), name);
    buf = read_file(path, len);
    free(path);
    return buf;
}

static json_t *load_index(void)
{
    json_error_t err;
    char *path;
    json_t *idx;

    xasprintf(&path, "%s/index.json", fixture_dir());
    idx = json_load_file(path, 0, &err);
    if (!idx)
        fail_msg("%s: %s", path, err.text);
    free(path);
    return idx;
}

/* The index entry whose file name contains part (unique). */
static const char *genuine(json_t *idx, const char *part)
{
    json_t *msgs = json_object_get(idx, "messages"), *m;
    const char *found = NULL;
    size_t i;

    json_array_foreach(msgs, i, m) {
        const char *f = json_string_value(json_object_get(m, "file"));

        if (strstr(f, part)) {
            if (found)
                fail_msg("fixture '%s' is ambiguous", part);
            found = f;
        }
    }
    if (!found)
        fail_msg("no fixture '%s'", part);
    return found;
}

/* The inner message of a body, parsed by jansson (the test's oracle). */
static json_t *inner_of(const char *body, size_t len)
{
    json_t *outer = json_loadb(body, len, 0, NULL), *m, *inner;

    assert_non_null(outer);
    m = json_object_get(outer, "oslo.message");
    if (!m)
        return outer;
    inner = json_loads(json_string_value(m), 0, NULL);
    assert_non_null(inner);
    json_decref(outer);
    return inner;
}

/* Wraps an inner message into the oslo 2.0 envelope, with jansson. */
static char *wrap(json_t *inner)
{
    char *text = json_dumps(inner, 0), *out;
    json_t *env = json_pack("{s:s, s:s}", "oslo.version", "2.0",
                            "oslo.message", text);

    out = json_dumps(env, 0);
    json_decref(env);
    free(text);
    return out;
}

/* The payload data object of an inner message (either format). */
static json_t *data_of(json_t *inner)
{
    json_t *p = json_object_get(inner, "payload");
    json_t *d = json_object_get(p, "nova_object.data");

    return d ? d : p;
}

/* Decodes with both the public entry and the full decoder, checks they
 * agree on the class, and returns it. */
static enum novamsg_class decode2(const char *body, size_t len,
                                  const char *ctype, const char *host,
                                  struct nova_event *ev, const char **reason)
{
    struct nova_event ev2;
    const char *r2;
    enum novamsg_class c, c2;

    c2 = novamsg_decode_full(body, len, ctype, host, MAX_SIZE, &ev2, &r2);
    nova_event_clear(&ev2);
    c = novamsg_decode(body, len, ctype, host, MAX_SIZE, ev, reason);
    if (c2 == NOVAMSG_RELEVANT && c != NOVAMSG_RELEVANT)
        fail_msg("filter and full decoder disagree: %s vs %s (%s)",
                 novamsg_class_name(c), novamsg_class_name(c2), *reason);
    return c;
}

static void expect_class(const char *body, size_t len, const char *host,
                         enum novamsg_class want, const char *reason_part)
{
    struct nova_event ev;
    const char *reason = NULL;
    enum novamsg_class c = decode2(body, len, "application/json", host, &ev,
                                   &reason);

    if (c != want)
        fail_msg("got %s (%s), want %s", novamsg_class_name(c), reason,
                 novamsg_class_name(want));
    assert_non_null(reason);
    if (reason_part && !strstr(reason, reason_part))
        fail_msg("reason '%s' lacks '%s'", reason, reason_part);
    nova_event_clear(&ev);
}

static void expect_str(const char *got, const json_t *want, const char *what)
{
    if (!want || json_is_null(want)) {
        if (got)
            fail_msg("%s: got '%s', want none", what, got);
        return;
    }
    if (!got)
        fail_msg("%s: got none, want '%s'", what, json_string_value(want));
    if (strcmp(got, json_string_value(want)) != 0)
        fail_msg("%s: got '%s', want '%s'", what, got, json_string_value(want));
}

static void expect_map(const struct nova_kvmap *got, bool has,
                       const json_t *want, const char *what)
{
    const char *k;
    json_t *v;

    if (!want || json_is_null(want)) {
        if (has)
            fail_msg("%s: present, want absent", what);
        return;
    }
    if (!has)
        fail_msg("%s: absent, want present", what);
    if (got->n != json_object_size(want))
        fail_msg("%s: %zu entries, want %zu", what, got->n,
                 json_object_size(want));
    json_object_foreach((json_t *)want, k, v) {
        const char *g = nova_kvmap_get(got, k);

        if (!g || strcmp(g, json_string_value(v)) != 0)
            fail_msg("%s[%s]: got '%s', want '%s'", what, k, g ? g : "(none)",
                     json_string_value(v));
    }
}

/* ---- genuine fixtures ---- */

/* Every genuine message, for every host of the scenario: the class the
 * generator expects from the scenario, every field, and that the cheap
 * filter settles every irrelevant one without the full decoder. */
static void test_genuine_all(void **state)
{
    json_t *idx = load_index(), *msgs = json_object_get(idx, "messages");
    json_t *hosts = json_object_get(idx, "hosts"), *m, *h;
    size_t i, j, nrel = 0, nirr = 0;
    const char *kinds[] = {"create.start", "create.end", "create.error",
                           "delete.start", "delete.end"};
    bool seen[2][5] = {{false}};

    (void)state;
    assert_true(json_array_size(msgs) >= 40);
    json_array_foreach(msgs, i, m) {
        const char *file = json_string_value(json_object_get(m, "file"));
        const char *ctype = json_string_value(json_object_get(m, "content_type"));
        json_t *exp = json_object_get(m, "expect");
        size_t len;
        char *body = fixture(file, &len);
        json_t *inner = inner_of(body, len);

        assert_string_equal(ctype, "application/json");
        json_array_foreach(hosts, j, h) {
            const char *host = json_string_value(h);
            bool rel = false;
            struct nova_event ev;
            const char *reason = NULL, *fr = NULL;
            enum novamsg_class c;
            json_t *r;
            size_t k;

            json_array_foreach(json_object_get(exp, "relevant_for"), k, r)
                rel |= strcmp(json_string_value(r), host) == 0;
            c = decode2(body, len, ctype, host, &ev, &reason);
            if (c != (rel ? NOVAMSG_RELEVANT : NOVAMSG_IRRELEVANT))
                fail_msg("%s for %s: %s (%s)", file, host,
                         novamsg_class_name(c), reason);
            if (!rel) {
                /* The filter alone must have settled it. */
                if (novamsg_fast(body, len, host, &fr) != NOVAMSG_FAST_IRRELEVANT)
                    fail_msg("%s for %s: the filter did not settle it", file,
                             host);
                nirr++;
                continue;
            }
            nrel++;
            assert_string_equal(nova_kind_name(ev.kind),
                                json_string_value(json_object_get(exp, "kind")));
            assert_string_equal(nova_format_name(ev.format),
                                json_string_value(json_object_get(m, "format")));
            for (k = 0; k < 5; k++)
                if (strcmp(nova_kind_name(ev.kind), kinds[k]) == 0)
                    seen[ev.format][k] = true;
            expect_str(ev.instance_uuid, json_object_get(exp, "instance_uuid"),
                       "instance_uuid");
            expect_str(ev.host, json_object_get(exp, "host"), "host");
            assert_string_equal(ev.host, host);
            expect_str(ev.project_id, json_object_get(exp, "project_id"),
                       "project_id");
            expect_str(ev.user_id, json_object_get(exp, "user_id"), "user_id");
            expect_str(ev.flavor, json_object_get(exp, "flavor"), "flavor");
            expect_map(&ev.flavor_extra_specs, ev.has_extra_specs,
                       json_object_get(exp, "flavor_extra_specs"), "extra specs");
            expect_map(&ev.image_properties, ev.has_image_properties,
                       json_object_get(exp, "image_properties"),
                       "image properties");
            expect_map(&ev.metadata, ev.has_metadata,
                       json_object_get(exp, "metadata"), "metadata");
            expect_str(ev.instance_name, json_object_get(exp, "instance_name"),
                       "instance_name");
            expect_str(ev.request_id, json_object_get(exp, "request_id"),
                       "request_id");
            expect_str(ev.fault, json_object_get(exp, "fault"), "fault");
            /* The envelope fields, against jansson's reading. */
            expect_str(ev.message_id, json_object_get(inner, "message_id"),
                       "message_id");
            expect_str(ev.timestamp, json_object_get(inner, "timestamp"),
                       "timestamp");
            expect_str(ev.event_type, json_object_get(inner, "event_type"),
                       "event_type");
            expect_str(ev.publisher_id, json_object_get(inner, "publisher_id"),
                       "publisher_id");
            assert_string_equal(ev.event_type,
                                json_string_value(json_object_get(m, "event_type")));
            nova_event_clear(&ev);
        }
        json_decref(inner);
        free(body);
    }
    /* All five kinds in both formats were among the relevant ones. */
    for (i = 0; i < 2; i++)
        for (j = 0; j < 5; j++)
            if (!seen[i][j])
                fail_msg("no relevant %s %s fixture",
                         nova_format_name((enum nova_format)i), kinds[j]);
    assert_true(nrel > 20 && nirr > 80);
    json_decref(idx);
}

/* The same facts written out by hand, so that a generator bug cannot
 * confirm itself. */
static void test_genuine_versioned_create(void **state)
{
    json_t *idx = load_index();
    size_t len;
    char *body = fixture(genuine(idx, "boot-versioned-instance.create.start"), &len);
    struct nova_event ev;
    const char *reason;

    (void)state;
    assert_int_equal(novamsg_decode(body, len, "application/json", THIS,
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_int_equal(ev.kind, NOVA_KIND_CREATE_START);
    assert_int_equal(ev.format, NOVA_FORMAT_VERSIONED);
    assert_string_equal(ev.instance_uuid, "5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37");
    /* create.start: the payload's host is still null; the publisher's. */
    assert_string_equal(ev.host, "compute1");
    assert_string_equal(ev.publisher_id, "nova-compute:compute1");
    assert_string_equal(ev.project_id, "6f70656e737461636b20342065766572");
    assert_string_equal(ev.flavor, "vtpm.small");
    assert_true(ev.has_extra_specs);
    assert_string_equal(nova_kvmap_get(&ev.flavor_extra_specs, "hw:tpm_version"), "2.0");
    assert_string_equal(nova_kvmap_get(&ev.flavor_extra_specs, "hw:tpm_model"), "tpm-tis");
    assert_false(ev.has_image_properties);
    assert_int_equal(ev.image_properties.n, 0);
    assert_string_equal(nova_kvmap_get(&ev.metadata, "vtpm"), "yes");
    assert_string_equal(ev.instance_name, "instance-0000002a");
    assert_string_equal(ev.request_id, "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d");
    assert_string_equal(ev.event_type, "instance.create.start");
    assert_non_null(ev.message_id);
    assert_non_null(ev.timestamp);
    assert_null(ev.fault);
    nova_event_clear(&ev);
    assert_null(ev.host);
    nova_event_clear(&ev); /* twice is harmless */
    free(body);
    json_decref(idx);
}

static void test_genuine_legacy_create_error(void **state)
{
    json_t *idx = load_index();
    size_t len;
    char *body = fixture(genuine(idx, "reschedule-legacy-compute.instance.create.error"), &len);
    struct nova_event ev;
    const char *reason;

    (void)state;
    assert_int_equal(novamsg_decode(body, len, "application/json", THIS,
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_int_equal(ev.kind, NOVA_KIND_CREATE_ERROR);
    assert_int_equal(ev.format, NOVA_FORMAT_LEGACY);
    assert_string_equal(ev.instance_uuid, "0b5e7d1c-9f2a-4c3e-8b6d-2a4f6c8e0d1b");
    assert_string_equal(ev.publisher_id, "compute.compute1");
    assert_string_equal(ev.flavor, "m1.small");
    assert_false(ev.has_extra_specs);
    assert_true(ev.has_image_properties);
    assert_string_equal(nova_kvmap_get(&ev.image_properties, "os_distro"), "cirros");
    assert_null(ev.instance_name); /* legacy payloads have none */
    assert_string_equal(ev.fault, "Insufficient compute resources: "
                                  "Insufficient free space for vTPM images.");
    /* Legacy: Nova's request id from the context. */
    assert_string_equal(ev.request_id, "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d");
    nova_event_clear(&ev);
    /* The reschedule: the other host's create.start is not ours. */
    free(body);
    body = fixture(genuine(idx, "reschedule-versioned-instance.create.start"), &len);
    assert_int_equal(novamsg_decode(body, len, "application/json", THIS,
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_IRRELEVANT);
    assert_string_equal(reason, "another host's instance");
    assert_int_equal(novamsg_decode(body, len, "application/json", "compute2",
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    json_decref(idx);
}

static void test_genuine_api_deletes(void **state)
{
    json_t *idx = load_index();
    size_t len;
    char *body;
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* Compute service down: nova-api deletes locally; the payload names
     * the instance's host. */
    body = fixture(genuine(idx, "delete_compute_down-versioned-instance.delete.end"), &len);
    assert_int_equal(novamsg_decode(body, len, NULL, THIS, MAX_SIZE, &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_string_equal(ev.publisher_id, "nova-api:controller");
    assert_string_equal(ev.host, "compute1");
    assert_int_equal(ev.kind, NOVA_KIND_DELETE_END);
    nova_event_clear(&ev);
    assert_int_equal(novamsg_decode(body, len, NULL, "controller", MAX_SIZE,
                                    &ev, &reason),
                     NOVAMSG_IRRELEVANT);
    free(body);
    /* Its legacy copy comes as compute.controller. */
    body = fixture(genuine(idx, "delete_compute_down-legacy-compute.instance.delete.start"), &len);
    assert_int_equal(novamsg_decode(body, len, NULL, THIS, MAX_SIZE, &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_string_equal(ev.publisher_id, "compute.controller");
    assert_string_equal(ev.host, "compute1");
    nova_event_clear(&ev);
    free(body);
    /* Never scheduled: no host anywhere. */
    body = fixture(genuine(idx, "delete_not_scheduled-versioned-instance.delete.start"), &len);
    assert_int_equal(novamsg_decode(body, len, NULL, THIS, MAX_SIZE, &ev, &reason),
                     NOVAMSG_IRRELEVANT);
    assert_string_equal(reason, "no host in the payload");
    assert_int_equal(novamsg_decode(body, len, NULL, "controller", MAX_SIZE,
                                    &ev, &reason),
                     NOVAMSG_IRRELEVANT);
    free(body);
    json_decref(idx);
}

static void test_genuine_bare_v1(void **state)
{
    json_t *idx = load_index();
    size_t len;
    char *body = fixture(genuine(idx, "boot_v1-versioned"), &len);
    struct nova_event ev;
    const char *reason;

    (void)state;
    assert_int_equal(body[0], '{');
    assert_null(strstr(body, "oslo.message"));
    assert_int_equal(novamsg_decode(body, len, "application/json", THIS,
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_string_equal(ev.instance_uuid, "c4e6a8b0-2d4f-4e6a-9c8b-7d5f3b1a9e0c");
    assert_string_equal(ev.instance_name, "instance-0000002d");
    nova_event_clear(&ev);
    assert_int_equal(novamsg_decode(body, len, "application/json", "compute2",
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_IRRELEVANT);
    free(body);
    json_decref(idx);
}

/* ---- hand-written messages: the format's corners ---- */

/* A relevant versioned create.start for compute1, to be bent by tests. */
static json_t *base_inner(void)
{
    json_t *idx = load_index(), *inner;
    size_t len;
    char *body = fixture(genuine(idx, "boot-versioned-instance.create.start"), &len);

    inner = inner_of(body, len);
    free(body);
    json_decref(idx);
    return inner;
}

static json_t *base_legacy_inner(const char *part)
{
    json_t *idx = load_index(), *inner;
    size_t len;
    char *body = fixture(genuine(idx, part), &len);

    inner = inner_of(body, len);
    free(body);
    json_decref(idx);
    return inner;
}

static enum novamsg_class decode_inner(json_t *inner, const char *host,
                                       struct nova_event *ev,
                                       const char **reason)
{
    char *body = wrap(inner);
    enum novamsg_class c = decode2(body, strlen(body), "application/json",
                                   host, ev, reason);

    free(body);
    return c;
}

static void expect_inner(json_t *inner, const char *host,
                         enum novamsg_class want, const char *reason_part)
{
    char *body = wrap(inner);

    expect_class(body, strlen(body), host, want, reason_part);
    free(body);
}

static void test_publisher_forms(void **state)
{
    json_t *inner = base_inner();
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* A dotted host name after compute. */
    json_object_set_new(inner, "publisher_id", json_string("compute.node-7.example.net"));
    assert_int_equal(decode_inner(inner, "node-7.example.net", &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_string_equal(ev.host, "node-7.example.net");
    nova_event_clear(&ev);
    expect_inner(inner, "node-7", NOVAMSG_IRRELEVANT, "another host");
    /* nova-compute: with no host part, or an unknown service: the payload's
     * host decides, and create.start's is null. */
    json_object_set_new(inner, "publisher_id", json_string("nova-compute:"));
    expect_inner(inner, THIS, NOVAMSG_IRRELEVANT, "no host in the payload");
    json_object_set_new(data_of(inner), "host", json_string(THIS));
    assert_int_equal(decode_inner(inner, THIS, &ev, &reason), NOVAMSG_RELEVANT);
    assert_string_equal(ev.host, THIS);
    nova_event_clear(&ev);
    json_object_set_new(inner, "publisher_id", json_string("nova-conductor:ctl"));
    assert_int_equal(decode_inner(inner, THIS, &ev, &reason), NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    /* The payload's host is "" : no host. */
    json_object_set_new(data_of(inner), "host", json_string(""));
    expect_inner(inner, THIS, NOVAMSG_IRRELEVANT, "no host in the payload");
    /* nova-compute:<host> wins over the payload. */
    json_object_set_new(inner, "publisher_id", json_string("nova-compute:compute2"));
    json_object_set_new(data_of(inner), "host", json_string(THIS));
    expect_inner(inner, THIS, NOVAMSG_IRRELEVANT, "another host");
    /* The configured host compares exactly. */
    json_object_set_new(inner, "publisher_id", json_string("nova-compute:Compute1"));
    expect_inner(inner, THIS, NOVAMSG_IRRELEVANT, "another host");
    json_object_set_new(inner, "publisher_id", json_string("nova-compute:compute10"));
    expect_inner(inner, THIS, NOVAMSG_IRRELEVANT, "another host");
    json_decref(inner);
}

static void test_legacy_delete_hosts(void **state)
{
    json_t *inner = base_legacy_inner("27-delete-legacy-compute.instance.delete.start");
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* compute.<api host> with the instance's host in the payload. */
    json_object_set_new(inner, "publisher_id", json_string("compute.controller"));
    assert_int_equal(decode_inner(inner, THIS, &ev, &reason), NOVAMSG_RELEVANT);
    assert_string_equal(ev.host, THIS);
    nova_event_clear(&ev);
    expect_inner(inner, "controller", NOVAMSG_IRRELEVANT, "another host");
    /* No host in the payload: the publisher's. */
    json_object_set_new(data_of(inner), "host", json_null());
    expect_inner(inner, THIS, NOVAMSG_IRRELEVANT, "another host");
    assert_int_equal(decode_inner(inner, "controller", &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_string_equal(ev.host, "controller");
    nova_event_clear(&ev);
    json_object_del(data_of(inner), "host");
    assert_int_equal(decode_inner(inner, "controller", &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    /* A payload host of the wrong type. */
    json_object_set_new(data_of(inner), "host", json_integer(7));
    expect_inner(inner, THIS, NOVAMSG_MALFORMED, "payload host is not a string");
    json_decref(inner);
    /* The nil UUID names no instance: malformed (dead-lettered), not a
     * create that fails later on its domain name. */
    inner = base_inner();
    json_object_set_new(data_of(inner), "uuid",
                        json_string("00000000-0000-0000-0000-000000000000"));
    expect_inner(inner, THIS, NOVAMSG_MALFORMED, "instance UUID missing or invalid");
    json_decref(inner);
}

/* Escapes that jansson decodes must not fool the filter. */
static void test_escapes(void **state)
{
    json_t *inner = base_inner();
    const char *tmpl;
    char *text, *body;
    json_t *env;
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* An escaped event type inside the inner text. */
    text = json_dumps(inner, 0);
    tmpl = strstr(text, "instance.create.start");
    assert_non_null(tmpl);
    {
        char *t2;

        xasprintf(&t2, "%.*sinstance.create.\\u0073tart%s", (int)(tmpl - text),
                  text, tmpl + strlen("instance.create.start"));
        env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", t2);
        body = json_dumps(env, 0);
        assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                         NOVAMSG_RELEVANT);
        assert_string_equal(ev.event_type, "instance.create.start");
        nova_event_clear(&ev);
        free(body);
        json_decref(env);
        free(t2);
    }
    free(text);
    /* Escaped host characters in the publisher. */
    json_object_set_new(inner, "publisher_id", json_string("nova-compute:compute\\u0031"));
    text = json_dumps(inner, 0);
    {
        /* json_dumps escaped the backslash; undo it to get \u0031. */
        char *p = strstr(text, "compute\\\\u0031");

        assert_non_null(p);
        memmove(p + 7, p + 8, strlen(p + 8) + 1);
    }
    env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", text);
    body = json_dumps(env, 0);
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    assert_string_equal(ev.host, THIS);
    nova_event_clear(&ev);
    free(body);
    json_decref(env);
    free(text);
    /* \u escapes in the envelope itself: jansson's ensure_ascii=False
     * cousin, non-ASCII display names, a surrogate pair. */
    json_object_set_new(inner, "publisher_id", json_string("nova-compute:compute1"));
    json_object_set_new(data_of(inner), "display_name",
                        json_string("g\xc3\xa4st \xf0\x9f\x94\x92"));
    text = json_dumps(inner, JSON_ENSURE_ASCII);
    env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", text);
    free(text);
    body = json_dumps(env, JSON_ENSURE_ASCII);
    assert_non_null(strstr(body, "\\\\uD83D\\\\uDD12"));
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    json_decref(env);
    /* The inner text with raw UTF-8, the envelope escaping it (\uXXXX at
     * the envelope level, where the filter stops reading). */
    text = json_dumps(inner, 0);
    env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", text);
    free(text);
    body = json_dumps(env, JSON_ENSURE_ASCII);
    assert_non_null(strstr(body, "\\u00E4"));
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    assert_int_equal(decode2(body, strlen(body), NULL, "compute2", &ev, &reason),
                     NOVAMSG_IRRELEVANT);
    free(body);
    json_decref(env);
    json_decref(inner);
}

static void test_envelope_forms(void **state)
{
    json_t *inner = base_inner(), *env;
    char *text = json_dumps(inner, 0), *body;
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* Keys in the other order, extra keys, whitespace. */
    env = json_pack("{s:s, s:s, s:s}", "oslo.message", text, "x-extra", "1",
                    "oslo.version", "2.0");
    body = json_dumps(env, JSON_INDENT(3));
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    json_decref(env);
    /* A non-string extra key sends the envelope through jansson. */
    env = json_pack("{s:s, s:i, s:s}", "oslo.version", "2.0", "n", 5,
                    "oslo.message", text);
    body = json_dumps(env, 0);
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    json_decref(env);
    /* The inner message as the bare body (oslo v1). */
    body = json_dumps(inner, 0);
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    /* A bare body that names another event first but carries an envelope
     * later is an envelope: the filter must not stop at the first keys. */
    env = json_pack("{s:s, s:s, s:s, s:s}", "event_type", "instance.update",
                    "publisher_id", "nova-compute:compute2", "oslo.version",
                    "2.0", "oslo.message", text);
    body = json_dumps(env, 0);
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    json_decref(env);
    /* The same with a non-string value first: the filter reads it as a
     * bare message and must find the envelope key further on. */
    env = json_pack("{s:s, s:{}, s:s, s:s}", "event_type", "instance.update",
                    "payload", "oslo.version", "2.0", "oslo.message", text);
    body = json_dumps(env, 0);
    assert_int_equal(decode2(body, strlen(body), NULL, THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    json_decref(env);
    /* Content types. */
    body = wrap(inner);
    assert_int_equal(decode2(body, strlen(body), "application/json; charset=utf-8",
                             THIS, &ev, &reason), NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    assert_int_equal(decode2(body, strlen(body), "Application/JSON", THIS, &ev,
                             &reason), NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    assert_int_equal(decode2(body, strlen(body), "", THIS, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    free(body);
    free(text);
    json_decref(inner);
}

static void test_fields(void **state)
{
    json_t *inner = base_inner(), *data = data_of(inner), *meta;
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* Upper-case UUIDs become canonical. */
    json_object_set_new(data, "uuid", json_string("5F0E8C1A-3B7D-4E2F-9A6C-8D4B2E1F0A37"));
    /* Scalars are kept as text; null and nested values are skipped. */
    meta = json_pack("{s:i, s:b, s:n, s:{}, s:[], s:f, s:s}", "n", 5, "b", 1,
                     "z", "o", "a", "r", 1.5, "s", "x");
    json_object_set_new(data, "metadata", meta);
    /* A name that must not become a domain name. */
    json_object_set_new(data, "instance_name", json_string("../../etc/passwd"));
    json_object_set_new(data, "tenant_id", json_null());
    json_object_del(data, "request_id");
    assert_int_equal(decode_inner(inner, THIS, &ev, &reason), NOVAMSG_RELEVANT);
    assert_string_equal(ev.instance_uuid, "5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37");
    assert_int_equal(ev.metadata.n, 4);
    assert_string_equal(nova_kvmap_get(&ev.metadata, "n"), "5");
    assert_string_equal(nova_kvmap_get(&ev.metadata, "b"), "true");
    assert_string_equal(nova_kvmap_get(&ev.metadata, "r"), "1.5");
    assert_string_equal(nova_kvmap_get(&ev.metadata, "s"), "x");
    assert_null(nova_kvmap_get(&ev.metadata, "z"));
    assert_null(nova_kvmap_get(&ev.metadata, "o"));
    assert_null(ev.instance_name);
    assert_null(ev.project_id);
    /* The context's request id when the payload has none. */
    assert_string_equal(ev.request_id, "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d");
    nova_event_clear(&ev);
    /* Extra specs null: not carried. No flavor at all. */
    json_object_set_new(json_object_get(json_object_get(data, "flavor"),
                                        "nova_object.data"),
                        "extra_specs", json_null());
    assert_int_equal(decode_inner(inner, THIS, &ev, &reason), NOVAMSG_RELEVANT);
    assert_false(ev.has_extra_specs);
    assert_string_equal(ev.flavor, "vtpm.small");
    nova_event_clear(&ev);
    json_object_set_new(data, "flavor", json_null());
    json_object_del(data, "metadata");
    assert_int_equal(decode_inner(inner, THIS, &ev, &reason), NOVAMSG_RELEVANT);
    assert_null(ev.flavor);
    assert_false(ev.has_metadata);
    nova_event_clear(&ev);
    json_decref(inner);
}

/* ---- malformed ---- */

static void test_malformed_json(void **state)
{
    static const char *const cases[][2] = {
        {"hello", "not JSON"},
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{not json\"}", "oslo.message is not JSON"},
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"a\\\": 1\"", "not JSON"},
        {"{\"oslo.version\": \"1.0\", \"oslo.message\": \"{}\"}", "version"},
        {"{\"oslo.message\": \"{}\"}", "version"},
        {"{\"oslo.version\": 2, \"oslo.message\": \"{}\"}", "version"},
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": 5}", "oslo.message is not a string"},
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": \"[1]\"}", "not a JSON object"},
        {"[1, 2]", "not a JSON object"},
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{}\"}", "event_type missing"},
        {"{\"event_type\": 5}", "event_type missing"},
        {"{\"event_type\": \"instance.create.start\"}", "publisher_id missing"},
        {"{\"event_type\": \"instance.create.start\", \"publisher_id\": 3}", "publisher_id missing"},
        {"{\"event_type\": \"instance.create.start\", \"publisher_id\": \"nova-compute:compute1\"}", "payload missing"},
        {"{\"event_type\": \"instance.create.start\", \"publisher_id\": \"nova-compute:compute1\", \"payload\": \"x\"}", "payload missing"},
        {"{\"event_type\": \"instance.create.start\", \"publisher_id\": \"nova-compute:compute1\", \"payload\": {}}", "nova_object.data"},
        {"{\"event_type\": \"instance.create.start\", \"publisher_id\": \"nova-compute:compute1\", \"payload\": {\"nova_object.data\": {}}}", "UUID"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": \"../../etc/passwd\"}}", "UUID"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": 12}}", "UUID"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": \"5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37 \"}}", "UUID"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": \"5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37\", \"tenant_id\": 5}}", "tenant_id"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": \"5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37\", \"image_meta\": []}}", "image_meta"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": \"5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37\", \"metadata\": \"x\"}}", "metadata"},
        {"{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute1\", \"payload\": {\"instance_id\": \"5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37\", \"instance_type\": {}}}", "instance_type"},
        {"{\"event_type\": \"instance.create.start\", \"publisher_id\": \"nova-compute:compute1\", \"payload\": {\"nova_object.data\": {\"uuid\": \"5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37\", \"flavor\": \"m1\"}}}", "flavor"},
        /* Duplicate keys: which one would count? */
        {"{\"event_type\": \"instance.update\", \"event_type\": \"instance.create.start\"}", "duplicate"},
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{}\", \"oslo.message\": \"{}\"}", "duplicate"},
        /* Trailing garbage. */
        {"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{}\"} x", "not JSON"},
        {"", "empty"},
        {"   ", "not JSON"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu: %s\n", i, cases[i][0]);
        expect_class(cases[i][0], strlen(cases[i][0]), THIS, NOVAMSG_MALFORMED,
                     cases[i][1]);
    }
}

static void test_malformed_bytes(void **state)
{
    json_t *inner = base_inner();
    char *body = wrap(inner), *b2, *p;
    size_t len = strlen(body);
    struct nova_event ev;
    const char *reason;

    (void)state;
    /* Oversized. */
    assert_int_equal(novamsg_decode(body, len, NULL, THIS, len - 1, &ev, &reason),
                     NOVAMSG_MALFORMED);
    assert_non_null(strstr(reason, "exceeds"));
    assert_int_equal(novamsg_decode(body, len, NULL, THIS, len, &ev, &reason),
                     NOVAMSG_RELEVANT);
    nova_event_clear(&ev);
    /* Content type. */
    assert_int_equal(novamsg_decode(body, len, "text/plain\n", THIS, MAX_SIZE,
                                    &ev, &reason),
                     NOVAMSG_MALFORMED);
    assert_string_equal(reason, "content type 'text/plain?' is not application/json");
    assert_int_equal(novamsg_decode(body, len, "application/jsonx", THIS,
                                    MAX_SIZE, &ev, &reason),
                     NOVAMSG_MALFORMED);
    /* A raw NUL anywhere, also where the filter would not look. */
    b2 = xstrdup(body);
    b2[len - 3] = '\0';
    assert_int_equal(novamsg_decode(b2, len, NULL, THIS, MAX_SIZE, &ev, &reason),
                     NOVAMSG_MALFORMED);
    assert_string_equal(reason, "embedded NUL byte");
    free(b2);
    /* Invalid UTF-8 in the envelope string (the inner text). */
    b2 = xstrdup(body);
    p = strstr(b2, "vtpm.small");
    assert_non_null(p);
    p[0] = (char)0xff;
    expect_class(b2, len, THIS, NOVAMSG_MALFORMED, "not JSON");
    p[0] = (char)0xc0; /* overlong */
    p[1] = (char)0xaf;
    expect_class(b2, len, THIS, NOVAMSG_MALFORMED, "not JSON");
    p[0] = (char)0xed; /* a UTF-16 surrogate in UTF-8 */
    p[1] = (char)0xa0;
    p[2] = (char)0x80;
    expect_class(b2, len, THIS, NOVAMSG_MALFORMED, "not JSON");
    free(b2);
    /* A raw control character inside the envelope string. */
    b2 = xstrdup(body);
    p = strstr(b2, "vtpm.small");
    p[0] = '\n';
    expect_class(b2, len, THIS, NOVAMSG_MALFORMED, "not JSON");
    free(b2);
    free(body);
    /* \u0000 in the envelope string and inside the inner text. */
    {
        static const char env_nul[] =
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"x\\u0000\\\"}\"}";
        static const char inner_nul[] =
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"x\\\\u0000\\\"}\"}";
        static const char lone[] =
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"x\\ud800\\\"}\"}";
        static const char lone_low[] =
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"x\\udc00\\\"}\"}";
        static const char bad_pair[] =
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"x\\ud800\\u0041\\\"}\"}";
        static const char bad_esc[] =
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"x\\q\\\"}\"}";

        expect_class(env_nul, strlen(env_nul), THIS, NOVAMSG_MALFORMED, "u0000");
        expect_class(inner_nul, strlen(inner_nul), THIS, NOVAMSG_MALFORMED, "not JSON");
        expect_class(lone, strlen(lone), THIS, NOVAMSG_MALFORMED, "invalid Unicode");
        expect_class(lone_low, strlen(lone_low), THIS, NOVAMSG_MALFORMED, "invalid Unicode");
        expect_class(bad_pair, strlen(bad_pair), THIS, NOVAMSG_MALFORMED, "invalid Unicode");
        expect_class(bad_esc, strlen(bad_esc), THIS, NOVAMSG_MALFORMED, "not JSON");
    }
    json_decref(inner);
}

static void test_malformed_depth(void **state)
{
    json_t *inner = base_inner(), *deep = json_string("x");
    char *text;
    size_t n;

    (void)state;
    for (int i = 0; i < NOVAMSG_MAX_DEPTH; i++)
        deep = json_pack("[o]", deep);
    json_object_set_new(data_of(inner), "deep", deep);
    expect_inner(inner, THIS, NOVAMSG_MALFORMED, "nested too deep");
    /* Within the limit: fine. */
    json_object_set_new(data_of(inner), "deep", json_loads("[[[[1]]]]", 0, NULL));
    expect_inner(inner, THIS, NOVAMSG_RELEVANT, NULL);
    /* Deep in an envelope that goes through jansson (and far beyond
     * jansson's own limit of 2048). */
    n = 5000;
    text = xmalloc(2 * n + 64);
    strcpy(text, "{\"oslo.version\": \"2.0\", \"x\": ");
    for (size_t i = 0; i < n; i++)
        strcat(text, "[");
    for (size_t i = 0; i < n; i++)
        strcat(text, "]");
    strcat(text, "}");
    expect_class(text, strlen(text), THIS, NOVAMSG_MALFORMED, "depth");
    /* Just over the limit, through jansson's envelope path: the object
     * and 32 arrays. */
    strcpy(text, "{\"oslo.version\": \"2.0\", \"x\": ");
    for (int i = 0; i < NOVAMSG_MAX_DEPTH; i++)
        strcat(text, "[");
    for (int i = 0; i < NOVAMSG_MAX_DEPTH; i++)
        strcat(text, "]");
    strcat(text, "}");
    expect_class(text, strlen(text), THIS, NOVAMSG_MALFORMED, "nested too deep");
    free(text);
    json_decref(inner);
}

/* Irrelevant messages: settled by the filter, some of them broken beyond
 * what it reads (it does not validate what it need not read). */
static void test_irrelevant(void **state)
{
    static const char *const cases[] = {
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"event_type\\\": \\\"instance.update\\\"}\"}",
        "{\"event_type\": \"compute.instance.exists\", \"publisher_id\": \"compute.x\", \"payload\": {}}",
        "{\"event_type\": \"instance.create\", \"publisher_id\": \"nova-compute:compute1\"}",
        "{\"event_type\": \"instance.create.started\", \"publisher_id\": \"nova-compute:compute1\"}",
        "{\"event_type\": \"compute.instance.create.start\", \"publisher_id\": \"compute.compute2\", \"payload\": {}}",
        "{\"event_type\": \"instance.delete.end\", \"publisher_id\": \"nova-api:ctl\", \"payload\": {\"nova_object.data\": {\"host\": null}}}",
        "{\"event_type\": \"instance.delete.end\", \"publisher_id\": \"nova-api:ctl\", \"payload\": {\"nova_object.data\": {}}}",
        "{\"event_type\": \"instance.delete.end\", \"publisher_id\": \"nova-api:compute1\", \"payload\": {\"nova_object.data\": {\"host\": \"compute2\"}}}",
    };
    const char *reason;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu\n", i);
        expect_class(cases[i], strlen(cases[i]), THIS, NOVAMSG_IRRELEVANT, NULL);
        assert_int_equal(novamsg_fast(cases[i], strlen(cases[i]), THIS, &reason),
                         NOVAMSG_FAST_IRRELEVANT);
    }
}

/* ---- helpers of the module ---- */

static void test_kind_publisher(void **state)
{
    enum nova_format f;
    const char *h;
    size_t hl;

    (void)state;
    assert_int_equal(novamsg_kind_of("compute.instance.delete.end", 27, &f),
                     NOVA_KIND_DELETE_END);
    assert_int_equal(f, NOVA_FORMAT_LEGACY);
    assert_int_equal(novamsg_kind_of("instance.create.error", 21, &f),
                     NOVA_KIND_CREATE_ERROR);
    assert_int_equal(f, NOVA_FORMAT_VERSIONED);
    assert_int_equal(novamsg_kind_of("instance.create.end", 18, &f), NOVA_KIND_OTHER);
    assert_int_equal(novamsg_kind_of("compute.instance.", 17, &f), NOVA_KIND_OTHER);
    assert_int_equal(novamsg_kind_of("scheduler.select_destinations.start", 35, &f),
                     NOVA_KIND_OTHER);
    assert_int_equal(novamsg_kind_of("", 0, &f), NOVA_KIND_OTHER);

    assert_int_equal(novamsg_publisher("compute.a.b", 11, &h, &hl), NOVAMSG_PUB_COMPUTE);
    assert_int_equal(hl, 3);
    assert_memory_equal(h, "a.b", 3);
    assert_int_equal(novamsg_publisher("nova-compute:c1", 15, &h, &hl),
                     NOVAMSG_PUB_NOVA_COMPUTE);
    assert_int_equal(novamsg_publisher("nova-api:c1", 11, &h, &hl), NOVAMSG_PUB_NOVA_API);
    assert_int_equal(novamsg_publisher("compute.", 8, &h, &hl), NOVAMSG_PUB_OTHER);
    assert_int_equal(novamsg_publisher("nova-scheduler:s", 16, &h, &hl),
                     NOVAMSG_PUB_OTHER);
    assert_null(h);

    assert_int_equal(novamsg_host_source(NOVA_KIND_CREATE_START, NOVAMSG_PUB_COMPUTE),
                     NOVAMSG_HOST_PUBLISHER);
    assert_int_equal(novamsg_host_source(NOVA_KIND_DELETE_END, NOVAMSG_PUB_COMPUTE),
                     NOVAMSG_HOST_PAYLOAD_OR_PUBLISHER);
    assert_int_equal(novamsg_host_source(NOVA_KIND_DELETE_END, NOVAMSG_PUB_NOVA_COMPUTE),
                     NOVAMSG_HOST_PUBLISHER);
    assert_int_equal(novamsg_host_source(NOVA_KIND_DELETE_END, NOVAMSG_PUB_NOVA_API),
                     NOVAMSG_HOST_PAYLOAD);
    assert_int_equal(novamsg_host_source(NOVA_KIND_CREATE_END, NOVAMSG_PUB_OTHER),
                     NOVAMSG_HOST_PAYLOAD);
    assert_string_equal(novamsg_class_name(NOVAMSG_MALFORMED), "malformed");
}

static int scan(const char *s, struct novamsg_envelope *env)
{
    return novamsg_envelope_scan(s, strlen(s), env);
}

static void test_envelope_scan(void **state)
{
    struct novamsg_envelope env;
    char out[64];
    size_t n;
    static const char flat[] = " { \"oslo.version\" : \"2.0\" ,"
                               "\"oslo.message\":\"a\\\"b\" } ";

    (void)state;
    assert_int_equal(novamsg_envelope_scan(flat, sizeof(flat) - 1, &env), 1);
    assert_int_equal(env.message_len, 4);
    assert_memory_equal(env.message, "a\\\"b", 4);
    assert_int_equal(env.version_len, 3);
    assert_int_equal(scan("{}", &env), 1);
    assert_null(env.message);
    assert_int_equal(scan("{\"a\": 1}", &env), 0);
    assert_int_equal(scan("{\"a\": \"1\", \"a\": \"2\"}", &env), 0);
    assert_int_equal(scan("{\"\\u0061\": \"1\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"1\",}", &env), 0);
    assert_int_equal(scan("{\"a\": \"1\"} {}", &env), 0);
    assert_int_equal(scan("{\"a\": \"\\x\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"\\u12\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"1\"", &env), 0);
    /* What jansson refuses in strings goes to jansson for the message. */
    assert_int_equal(scan("{\"a\": \"\\u0000\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"\\ud800\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"\\udc00\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"\\ud800\\u0041\"}", &env), 0);
    assert_int_equal(scan("{\"a\": \"\\ud83d\\udd12\"}", &env), 1);

    assert_int_equal(novamsg_json_unescape("a\\n\\u00e9\\ud83d\\udd12\\/", 23, out, &n), 0);
    assert_int_equal(n, 1 + 1 + 2 + 4 + 1);
    assert_memory_equal(out, "a\n\xc3\xa9\xf0\x9f\x94\x92/", n);
    assert_int_equal(novamsg_json_unescape("\\u0000", 6, out, &n), -EINVAL);
    assert_int_equal(novamsg_json_unescape("\\udd12", 6, out, &n), -EINVAL);
    assert_int_equal(novamsg_json_unescape("\\ud83dx", 7, out, &n), -EINVAL);

}

/* ---- a small differential run (the fuzz target does it at length) ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_differential(void **state)
{
    static const char *const tokens[] = {
        "\"", "\\", "\\\"", "\\\\", "\\u0041", "{", "}", "[", "]", ",", ":",
        "null", "instance.create.start", "compute.instance.delete.end",
        "nova-api:", "compute.", "nova-compute:compute1", "\"host\"",
        "compute1", "\"oslo.message\"", "\xff", " ",
    };
    json_t *idx = load_index(), *msgs = json_object_get(idx, "messages"), *m;
    const char *hosts[] = {THIS, "compute2", "controller"};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t i, runs = 0, irr = 0;

    (void)state;
    json_array_foreach(msgs, i, m) {
        size_t len;
        char *orig = fixture(json_string_value(json_object_get(m, "file")), &len);

        for (int it = 0; it < 300; it++) {
            char *buf = xmalloc(len + 64);
            size_t n = len;
            int edits = 1 + (int)(rng_next(&seed) % 3);

            memcpy(buf, orig, len);
            for (int e = 0; e < edits; e++) {
                size_t pos = (size_t)(rng_next(&seed) % (n + 1));
                uint64_t op = rng_next(&seed) % 4;

                if (op == 0 && pos < n) { /* flip a byte */
                    buf[pos] = (char)rng_next(&seed);
                } else if (op == 1 && pos < n) { /* delete a run */
                    size_t d = 1 + (size_t)(rng_next(&seed) % 8);

                    if (d > n - pos)
                        d = n - pos;
                    memmove(buf + pos, buf + pos + d, n - pos - d);
                    n -= d;
                } else if (op == 2) { /* insert a token */
                    const char *t = tokens[rng_next(&seed) %
                                           (sizeof(tokens) / sizeof(tokens[0]))];
                    size_t tl = strlen(t);

                    if (n + tl <= len + 64) {
                        memmove(buf + pos + tl, buf + pos, n - pos);
                        memcpy(buf + pos, t, tl);
                        n += tl;
                    }
                } else { /* truncate */
                    n = pos;
                }
            }
            for (size_t h = 0; h < 3; h++) {
                struct nova_event ev;
                const char *r1 = NULL, *r2 = NULL;
                enum novamsg_fast f = novamsg_fast(buf, n, hosts[h], &r1);
                enum novamsg_class c = novamsg_decode_full(buf, n, NULL, hosts[h],
                                                           MAX_SIZE, &ev, &r2);

                if (f == NOVAMSG_FAST_IRRELEVANT && c == NOVAMSG_RELEVANT)
                    fail_msg("filter says irrelevant (%s), full decoder relevant "
                             "for %s: %.*s", r1, hosts[h], (int)n, buf);
                assert_non_null(r2);
                irr += f == NOVAMSG_FAST_IRRELEVANT;
                nova_event_clear(&ev);
                runs++;
            }
            free(buf);
        }
        free(orig);
    }
    print_message("%zu differential runs, %zu settled by the filter\n", runs, irr);
    json_decref(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genuine_all),
        cmocka_unit_test(test_genuine_versioned_create),
        cmocka_unit_test(test_genuine_legacy_create_error),
        cmocka_unit_test(test_genuine_api_deletes),
        cmocka_unit_test(test_genuine_bare_v1),
        cmocka_unit_test(test_publisher_forms),
        cmocka_unit_test(test_legacy_delete_hosts),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_envelope_forms),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_malformed_bytes),
        cmocka_unit_test(test_malformed_depth),
        cmocka_unit_test(test_irrelevant),
        cmocka_unit_test(test_kind_publisher),
        cmocka_unit_test(test_envelope_scan),
        cmocka_unit_test(test_differential),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
