/* pconfig: vtpm-proxyd's keys through the shared cfg engine: defaults,
 * every key set, the cross-key errors with FILE:LINE:COL, the shipped
 * example, and the man page documenting every key. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxyd/pconfig.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/vtpm-proxyd-test-pconfig-XXXXXX";
#include "tmpdir.h"

static struct pconfig *load(const char *text, struct cfg_errors *errs, char **pathp)
{
    struct pconfig *cfg = NULL;
    char *path;
    FILE *f;

    xasprintf(&path, "%s/p.yaml", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    memset(errs, 0, sizeof(*errs));
    if (pconfig_load(path, &cfg, errs) < 0)
        cfg = NULL;
    if (pathp)
        *pathp = path;
    else
        free(path);
    return cfg;
}

static void expect_error(const char *text, const char *pos, const char *msg)
{
    struct cfg_errors errs;
    char *path, *prefix;
    struct pconfig *cfg = load(text, &errs, &path);

    assert_null(cfg);
    assert_true(errs.n >= 1);
    xasprintf(&prefix, "%s:%s: ", path, pos);
    if (strncmp(errs.msgs[0], prefix, strlen(prefix)) != 0 ||
        strstr(errs.msgs[0], msg) == NULL)
        fail_msg("got '%s', want prefix '%s' and '%s'", errs.msgs[0], prefix, msg);
    free(prefix);
    free(path);
    cfg_errors_free(&errs);
}

static void test_defaults(void **state)
{
    struct cfg_errors errs = {0};
    struct pconfig *cfg = NULL;

    assert_int_equal(pconfig_load(NULL, &cfg, &errs), 0);
    assert_string_equal(cfg->listen, "0.0.0.0:8081");
    assert_null(cfg->tls.cert_file);
    assert_null(cfg->tls.key_file);
    assert_null(cfg->tls.client_ca_file);
    assert_string_equal(cfg->vtpmmgr.device, "/dev/tpm0");
    assert_null(cfg->vtpmmgr.group);
    assert_false(cfg->has_group);
    assert_int_equal(cfg->vtpmmgr.timeout_ms, 5000);
    assert_non_null(strstr(cfg->state_dir, "/lib/vtpm-proxyd"));
    assert_int_equal(cfg->orphans, PCONFIG_ORPHANS_REPORT);
    assert_int_equal(cfg->missing, PCONFIG_MISSING_REPORT);
    assert_int_equal(cfg->log.level, 2);
    assert_int_equal(cfg->log.target, PCONFIG_LOG_STDERR);
    pconfig_free(cfg);
}

static void test_full(void **state)
{
    struct cfg_errors errs;
    struct pconfig *cfg = load(
        "listen: '[::1]:9443'\n"
        "tls:\n"
        "  cert_file: /etc/pki/proxy.crt\n"
        "  key_file: /etc/pki/proxy.key\n"
        "  client_ca_file: /etc/pki/ca.crt\n"
        "vtpmmgr:\n"
        "  device: /dev/tpm1\n"
        "  group: 0123ABCD-4567-89ab-cdef-0123456789ab\n"
        "  timeout: 1500ms\n"
        "state_dir: /srv/proxyd\n"
        "orphans: delete\n"
        "missing: recreate\n"
        "log: {level: debug, target: syslog}\n",
        &errs, NULL);

    assert_non_null(cfg);
    assert_string_equal(cfg->listen, "[::1]:9443");
    assert_string_equal(cfg->tls.client_ca_file, "/etc/pki/ca.crt");
    assert_string_equal(cfg->vtpmmgr.device, "/dev/tpm1");
    assert_true(cfg->has_group);
    assert_int_equal(cfg->group_uuid[0], 0x01);
    assert_int_equal(cfg->group_uuid[15], 0xab);
    assert_int_equal(cfg->vtpmmgr.timeout_ms, 1500);
    assert_string_equal(cfg->state_dir, "/srv/proxyd");
    assert_int_equal(cfg->orphans, PCONFIG_ORPHANS_DELETE);
    assert_int_equal(cfg->missing, PCONFIG_MISSING_RECREATE);
    assert_int_equal(cfg->log.target, PCONFIG_LOG_SYSLOG);
    pconfig_free(cfg);
}

static void test_errors(void **state)
{
    expect_error("vtpmmgr:\n  group: 7\n", "2:10", "vtpmmgr.group: '7' is not a UUID");
    expect_error("tls:\n  cert_file: /a.crt\n", "2:14", "cert_file and key_file go together");
    expect_error("tls:\n  client_ca_file: /ca.crt\n", "2:19",
                 "client certificates need HTTPS");
    expect_error("orphans: purge\n", "1:10", "orphans");
    expect_error("missing: maybe\n", "1:10", "missing");
    expect_error("listen: 8081\n", "1:9", "listen");
    expect_error("vtpmmgr:\n  device: tpm0\n", "2:11", "not an absolute path");
    expect_error("vtpmmgr:\n  timeout: 10ms\n", "2:12", "vtpmmgr.timeout");
    expect_error("vtpmmgr:\n  url: http://x/\n", "2:3", "url");
    expect_error("amqp: {}\n", "1:1", "amqp");
}

/* The example ships valid, and vtpm-proxyd(8) documents every key. */
static void test_shipped(void **state)
{
    const char *top = getenv("top_srcdir");
    struct cfg_errors errs = {0};
    struct pconfig *cfg = NULL;
    char *path, *man = NULL;
    size_t cap = 0;
    FILE *f;

    if (top == NULL)
        top = ".";
    xasprintf(&path, "%s/conf/vtpm-proxyd.yaml", top);
    if (pconfig_load(path, &cfg, &errs) < 0)
        fail_msg("%s", errs.msgs[0]);
    pconfig_free(cfg);
    free(path);
    xasprintf(&path, "%s/docs/vtpm-proxyd.8", top);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_true(getdelim(&man, &cap, '\0', f) > 0);
    fclose(f);
    for (size_t i = 0; i < pconfig_table.nkeys; i++) {
        const char *name = pconfig_table.keys[i].name;
        /* roff writes the keys as \fBtls.cert_file\fR, the dots bare. */
        if (strstr(man, name) == NULL)
            fail_msg("%s does not document key %s", path, name);
    }
    free(man);
    free(path);
}

static void note_changed(const struct cfg_key *k, const char *running, void *arg)
{
    char *names = arg;

    strcat(names, k->name);
    strcat(names, "=");
    strcat(names, running);
    strcat(names, " ");
}

/* The keys fixed for the process' life are the ones a reload warns of. */
static void test_restart_keys(void **state)
{
    struct cfg_errors errs;
    struct pconfig *a = load("listen: 127.0.0.1:8081\norphans: report\n", &errs, NULL);
    struct pconfig *b = load("listen: 127.0.0.1:9091\norphans: delete\n"
                             "vtpmmgr: {device: /dev/tpm1}\n", &errs, NULL);
    char names[256] = "";

    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < pconfig_table.nkeys; i++)
        if (pconfig_table.keys[i].flags & CFG_RESTART)
            assert_true(cfg_type_comparable(pconfig_table.keys[i].type));
    assert_int_equal(cfg_restart_changed(&pconfig_table, a, b, note_changed, names), 2);
    assert_string_equal(names, "listen=127.0.0.1:8081 vtpmmgr.device=/dev/tpm0 ");
    pconfig_free(a);
    pconfig_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_restart_keys),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
