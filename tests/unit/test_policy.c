/* policy: every match key, globs and lists, maps, keys the event does not
 * carry, first match wins, overrides and defaults, the debug explanations,
 * independence from the configuration it was built from, and decisions on
 * genuine Nova notifications in both formats. */
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

#include "vconfig.h"
#include "log.h"
#include "novamsg.h"
#include "policy.h"
#include "xalloc.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/fixtures/nova"
#endif

#define MiB (1024ull * 1024)

static struct config *load(const char *yaml)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct cfg_errors errs = {0};
    char *text;

    xasprintf(&text, "vtpmmgr:\n  provider: local\n%s", yaml);
    if (cfg_load_buffer(&config_table, "policy.yaml", text, strlen(text), cfg,
                        &errs) < 0)
        fail_msg("%s", errs.n ? errs.msgs[0] : "load failed");
    free(text);
    return cfg;
}

static struct policy *compile(const char *yaml)
{
    struct config *cfg = load(yaml);
    struct policy *p = NULL;

    assert_int_equal(policy_new(cfg, &p), 0);
    /* The policy keeps its own copies. */
    config_free(cfg);
    return p;
}

/* A versioned create for compute1 of a TPM flavor. */
static struct nova_kv specs_v[] = {
    {(char *)"hw:tpm_version", (char *)"2.0"},
    {(char *)"hw:tpm_model", (char *)"tpm-crb"},
};
static struct nova_kv image_v[] = {
    {(char *)"hw_tpm_version", (char *)"2.0"},
    {(char *)"os_distro", (char *)"ubuntu"},
};
static struct nova_kv meta_v[] = {
    {(char *)"vtpm", (char *)"yes"},
};

static struct nova_event event(void)
{
    struct nova_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = NOVA_KIND_CREATE_START;
    ev.format = NOVA_FORMAT_VERSIONED;
    strcpy(ev.instance_uuid, "5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37");
    ev.host = (char *)"compute1";
    ev.project_id = (char *)"6f70656e737461636b20342065766572";
    ev.flavor = (char *)"vtpm.small";
    ev.flavor_extra_specs.n = 2;
    ev.flavor_extra_specs.v = specs_v;
    ev.has_extra_specs = true;
    ev.metadata.n = 1;
    ev.metadata.v = meta_v;
    ev.has_metadata = true;
    return ev;
}

static struct nova_event legacy_event(void)
{
    struct nova_event ev = event();

    ev.format = NOVA_FORMAT_LEGACY;
    ev.flavor_extra_specs.n = 0;
    ev.flavor_extra_specs.v = NULL;
    ev.has_extra_specs = false;
    ev.image_properties.n = 2;
    ev.image_properties.v = image_v;
    ev.has_image_properties = true;
    return ev;
}

static void decide(const struct policy *p, const struct nova_event *ev,
                   struct policy_decision *d)
{
    memset(d, 0xa5, sizeof(*d)); /* everything must be written */
    policy_decide(p, ev, d);
}

static void test_defaults(void **state)
{
    struct policy *p = compile("");
    struct nova_event ev = event();
    struct policy_decision d;

    (void)state;
    assert_int_equal(policy_rule_count(p), 0);
    decide(p, &ev, &d);
    assert_true(d.selected); /* policy.default: allow */
    assert_null(d.rule);
    assert_int_equal(d.image_size, 2 * MiB);
    assert_int_equal(d.memory, 8 * MiB);
    assert_string_equal(d.kernel, "/usr/lib/xen/boot/vtpm-stubdom.gz");
    assert_string_equal(d.domain_name, "vtpm-{uuid}");
    policy_free(p);

    p = compile("policy:\n  default: deny\n"
                "image:\n  size: 4MiB\n"
                "libvirt:\n  memory: 16MiB\n  kernel: /boot/vtpm.gz\n"
                "  domain_name: 'tpm-{instance_name}-{uuid}'\n");
    decide(p, &ev, &d);
    assert_false(d.selected);
    assert_null(d.rule);
    assert_int_equal(d.image_size, 4 * MiB);
    assert_int_equal(d.memory, 16 * MiB);
    assert_string_equal(d.kernel, "/boot/vtpm.gz");
    assert_string_equal(d.domain_name, "tpm-{instance_name}-{uuid}");
    policy_free(p);

    assert_int_equal(policy_new(NULL, &p), -EINVAL);
    policy_free(NULL);
    assert_int_equal(policy_rule_count(NULL), 0);
}

/* One rule with one match key: does it select ev? */
static bool one(const char *match, const struct nova_event *ev)
{
    char *yaml;
    struct policy *p;
    struct policy_decision d;

    xasprintf(&yaml, "policy:\n  default: deny\n  rules:\n"
                     "    - name: r\n      match:\n        %s\n", match);
    p = compile(yaml);
    decide(p, ev, &d);
    free(yaml);
    if (d.selected)
        assert_string_equal(d.rule, "r");
    else
        assert_null(d.rule);
    policy_free(p);
    return d.selected;
}

/* A match and whether it selects the event. */
struct match_case {
    const char *match;
    bool selects;
};

static void check_matches(const struct match_case *c, size_t n, const struct nova_event *ev)
{
    for (size_t i = 0; i < n; i++)
        if (one(c[i].match, ev) != c[i].selects)
            fail_msg("match %s: selects %d, want %d", c[i].match, !c[i].selects, c[i].selects);
}

#define CHECK_MATCHES(cases, ev) check_matches(cases, sizeof(cases) / sizeof(cases[0]), ev)

static void test_scalar_keys(void **state)
{
    static const struct match_case cases[] = {
        {"project_id: 6f70656e737461636b20342065766572", true},
        {"project_id: '6f70*'", true},
        {"project_id: '6f70'", false},
        {"project_id: [aaa, '*6572']", true},
        {"project_id: [aaa, bbb]", false},
        {"flavor: 'vtpm.*'", true},
        {"flavor: 'vtpm.[sm]mall'", true},
        {"flavor: 'vtpm.smal?'", true},
        {"flavor: 'VTPM.*'", false},
        {"flavor: 'm1.*'", false},
        {"host: 'compute[0-9]'", true},
        {"host: [compute2, compute3]", false},
        /* Several keys: all must hold. */
        {"{flavor: 'vtpm.*', host: compute1}", true},
        {"{flavor: 'vtpm.*', host: compute2}", false},
    };
    struct nova_event ev = event();

    (void)state;
    CHECK_MATCHES(cases, &ev);
    /* A key the event does not carry does not match, even with '*'. */
    ev.project_id = NULL;
    assert_false(one("project_id: '*'", &ev));
    ev.flavor = NULL;
    assert_false(one("flavor: '*'", &ev));
    /* An empty match holds for everything. */
    assert_true(one("{}", &ev));
}

static void test_map_keys(void **state)
{
    static const struct match_case cases[] = {
        {"flavor_extra_specs: {'hw:tpm_version': '*'}", true},
        {"flavor_extra_specs: {'hw:tpm_version': ['1.2', '2.0']}", true},
        {"flavor_extra_specs: {'hw:tpm_version': '1.2'}", false},
        {"flavor_extra_specs: {'hw:tpm_version': '2.*', 'hw:tpm_model': 'tpm-crb'}", true},
        {"flavor_extra_specs: {'hw:tpm_version': '2.*', 'hw:tpm_model': 'tpm-tis'}", false},
        {"flavor_extra_specs: {'hw:absent': '*'}", false},
        /* Image properties only in legacy events. */
        {"image_properties: {hw_tpm_version: '*'}", false},
        {"metadata: {vtpm: 'y*'}", true},
        {"metadata: {vtpm: 'no'}", false},
        {"metadata: {other: '*'}", false},
    };
    static const struct match_case legacy_cases[] = {
        /* Extra specs only in versioned events. */
        {"flavor_extra_specs: {'hw:tpm_version': '*'}", false},
        {"image_properties: {hw_tpm_version: '2.0'}", true},
        {"image_properties: {os_distro: [debian, cirros]}", false},
        {"metadata: {vtpm: 'y*'}", true},
    };
    struct nova_event ev = event(), lev = legacy_event();

    (void)state;
    CHECK_MATCHES(cases, &ev);
    CHECK_MATCHES(legacy_cases, &lev);
    ev.has_metadata = false;
    ev.metadata.n = 0;
    assert_false(one("metadata: {vtpm: '*'}", &ev));
}

static void test_order_and_overrides(void **state)
{
    struct policy *p = compile(
        "image:\n  size: 3MiB\n"
        "libvirt:\n  memory: 12MiB\n"
        "policy:\n  default: deny\n  rules:\n"
        "    - name: big\n      match: {project_id: 'f00d*'}\n"
        "      vtpm: {image_size: 8MiB, memory: 32MiB, kernel: /opt/vtpm.gz,\n"
        "             domain_name: 'big-{uuid}'}\n"
        "    - name: tpm-flavors\n      match: {flavor_extra_specs: {'hw:tpm_version': '*'}}\n"
        "      vtpm: {image_size: 4MiB}\n"
        "    - name: tpm-images\n      match: {image_properties: {hw_tpm_version: '*'}}\n"
        "    - name: everything-else-of-compute1\n      match: {host: compute1}\n"
        "      vtpm: {memory: 10MiB}\n");
    struct nova_event ev = event(), lev = legacy_event();
    struct policy_decision d;

    (void)state;
    assert_int_equal(policy_rule_count(p), 4);
    decide(p, &ev, &d);
    assert_true(d.selected);
    assert_string_equal(d.rule, "tpm-flavors");
    assert_int_equal(d.image_size, 4 * MiB);
    assert_int_equal(d.memory, 12 * MiB); /* the global setting */
    assert_string_equal(d.kernel, "/usr/lib/xen/boot/vtpm-stubdom.gz");
    assert_string_equal(d.domain_name, "vtpm-{uuid}");
    decide(p, &lev, &d);
    assert_string_equal(d.rule, "tpm-images");
    assert_int_equal(d.image_size, 3 * MiB);
    /* The first match wins over later ones that also hold. */
    ev.project_id = (char *)"f00dfacef00dfacef00dfacef00dface";
    decide(p, &ev, &d);
    assert_string_equal(d.rule, "big");
    assert_int_equal(d.image_size, 8 * MiB);
    assert_int_equal(d.memory, 32 * MiB);
    assert_string_equal(d.kernel, "/opt/vtpm.gz");
    assert_string_equal(d.domain_name, "big-{uuid}");
    ev = event();
    ev.has_extra_specs = false;
    ev.flavor_extra_specs.n = 0;
    decide(p, &ev, &d);
    assert_string_equal(d.rule, "everything-else-of-compute1");
    assert_int_equal(d.memory, 10 * MiB);
    ev.host = (char *)"compute9";
    decide(p, &ev, &d);
    assert_false(d.selected);
    assert_null(d.rule);
    assert_int_equal(d.image_size, 3 * MiB);
    policy_free(p);
}

struct lines {
    int n;
    char text[16][320];
};

static void hook(enum log_level level, const char *line, void *arg)
{
    struct lines *l = arg;

    (void)level;
    if (l->n < 16)
        snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", line);
}

static void test_debug_explanations(void **state)
{
    struct policy *p = compile(
        "policy:\n  default: allow\n  rules:\n"
        "    - name: by-project\n      match: {project_id: [a, b]}\n"
        "    - name: by-specs\n      match: {flavor_extra_specs: {'hw:tpm_version': '1.2'}}\n"
        "    - name: by-image\n      match: {image_properties: {hw_tpm_version: '*'}}\n"
        "    - name: by-meta\n      match: {metadata: {owner: '*'}}\n");
    struct nova_event ev = event();
    struct policy_decision d;
    struct lines l = {0};

    (void)state;
    ev.flavor = (char *)"evil\nname";
    log_init("test", LOG_LEVEL_DEBUG, LOG_TARGET_STDERR);
    log_set_hook(hook, &l);
    decide(p, &ev, &d);
    log_set_hook(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    assert_true(d.selected);
    assert_null(d.rule);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.text[0], "policy instance=5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37 "
                                   "rule=by-project no match: project_id "
                                   "'6f70656e737461636b20342065766572' matches no pattern");
    assert_non_null(strstr(l.text[1], "rule=by-specs no match: flavor extra specs "
                                      "'hw:tpm_version' = '2.0' matches no pattern"));
    assert_non_null(strstr(l.text[2], "rule=by-image no match: the event carries "
                                      "no image properties"));
    assert_non_null(strstr(l.text[3], "rule=by-meta no match: metadata has no 'owner'"));
    assert_non_null(strstr(l.text[4], "no rule matched: default allow"));
    /* Not at info level: nothing logged, same decision. */
    l.n = 0;
    log_set_hook(hook, &l);
    decide(p, &ev, &d);
    log_set_hook(NULL, NULL);
    assert_int_equal(l.n, 0);
    assert_true(d.selected);
    policy_free(p);
}

/* A reload: the old policy keeps answering (and its pointers stay valid)
 * while the new one is built from another configuration. */
static void test_swap(void **state)
{
    struct policy *old = compile("policy:\n  rules:\n    - name: first\n"
                                 "      match: {host: compute1}\n"
                                 "      vtpm: {kernel: /a.gz}\n");
    struct policy *cur = old, *next;
    struct nova_event ev = event();
    struct policy_decision d;

    (void)state;
    decide(cur, &ev, &d);
    assert_string_equal(d.rule, "first");
    next = compile("policy:\n  rules:\n    - name: second\n"
                   "      match: {host: compute1}\n");
    assert_string_equal(d.kernel, "/a.gz"); /* still valid */
    cur = next;
    policy_free(old);
    decide(cur, &ev, &d);
    assert_string_equal(d.rule, "second");
    policy_free(cur);
}

static char *read_fixture(const char *name, size_t *len)
{
    char *path, *buf;
    FILE *f;
    long n;

    xasprintf(&path, "%s/genuine/%s", FIXTURE_DIR, name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = xmalloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(path);
    *len = (size_t)n;
    return buf;
}

/* The shipped example rules on genuine notifications: the versioned copy
 * is selected by the flavor's extra specs, the legacy copy by the image's
 * properties; an ordinary instance by neither. */
static void test_genuine(void **state)
{
    static const struct {
        const char *file;
        const char *host;
        const char *rule; /* NULL: not selected */
    } cases[] = {
        {"02-boot-versioned-instance.create.start.json", "compute1", "tpm-flavors"},
        {"01-boot-legacy-compute.instance.create.start.json", "compute1", "tpm-images"},
        {"06-reschedule-versioned-instance.create.error.json", "compute1", "attestation-project"},
        {"05-reschedule-legacy-compute.instance.create.error.json", "compute1", "attestation-project"},
        {"31-delete_not_scheduled-legacy-compute.instance.delete.start.json", "controller", NULL},
    };
    struct policy *p = compile(
        "policy:\n  default: deny\n  rules:\n"
        "    - name: tpm-flavors\n      match:\n"
        "        flavor_extra_specs: {'hw:tpm_version': '*'}\n"
        "    - name: tpm-images\n      match:\n"
        "        image_properties: {hw_tpm_version: '*'}\n"
        "    - name: attestation-project\n      match:\n"
        "        project_id: ['6f70656e737461636b20342065766572']\n"
        "        flavor: 'm1.*'\n"
        "      vtpm:\n        image_size: 4MiB\n");

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *body = read_fixture(cases[i].file, &len);
        struct nova_event ev;
        struct policy_decision d;
        const char *reason;

        assert_int_equal(novamsg_decode(body, len, "application/json",
                                        cases[i].host, 1024 * 1024, &ev,
                                        &reason),
                         NOVAMSG_RELEVANT);
        decide(p, &ev, &d);
        if (cases[i].rule) {
            assert_true(d.selected);
            assert_string_equal(d.rule, cases[i].rule);
            assert_int_equal(d.image_size,
                             strcmp(cases[i].rule, "attestation-project") == 0
                                 ? 4 * MiB
                                 : 2 * MiB);
        } else {
            assert_false(d.selected);
            assert_null(d.rule);
        }
        nova_event_clear(&ev);
        free(body);
    }
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_scalar_keys),
        cmocka_unit_test(test_map_keys),
        cmocka_unit_test(test_order_and_overrides),
        cmocka_unit_test(test_debug_explanations),
        cmocka_unit_test(test_swap),
        cmocka_unit_test(test_genuine),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
