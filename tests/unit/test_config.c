/* config: every error class with its message and FILE:LINE:COL, the
 * defaults, units, rules, and the man page listing every key. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vconfig.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/vtpmd-test-config-XXXXXX";

/* gethostname, faked (-Wl,--wrap=gethostname) while fake_hostname is set:
 * the machine's own name is whatever the test runs on. */
static const char *fake_hostname;
int __real_gethostname(char *name, size_t len);
int __wrap_gethostname(char *name, size_t len);

int __wrap_gethostname(char *name, size_t len)
{
    if (fake_hostname == NULL)
        return __real_gethostname(name, len);
    if (strlen(fake_hostname) >= len)
        return -1;
    strcpy(name, fake_hostname);
    return 0;
}

static char *write_file(const char *name, const char *text, size_t len,
                        mode_t mode)
{
    char *path;
    FILE *f;

    xasprintf(&path, "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* Loads text; on success returns the config, else NULL with errs set. */
static struct config *load(const char *text, struct cfg_errors *errs,
                           char **pathp)
{
    struct config *cfg = NULL;
    char *path = write_file("t.yaml", text, strlen(text), 0600);

    memset(errs, 0, sizeof(*errs));
    if (config_load(path, &cfg, errs) < 0)
        cfg = NULL;
    if (pathp)
        *pathp = path;
    else
        free(path);
    return cfg;
}

/* Asserts that loading text fails with exactly one error that starts
 * with FILE:want_pos and contains want_msg. */
static void expect_error(const char *text, const char *want_pos,
                         const char *want_msg)
{
    struct cfg_errors errs;
    char *path, *prefix;
    struct config *cfg = load(text, &errs, &path);

    assert_null(cfg);
    assert_true(errs.n >= 1);
    xasprintf(&prefix, "%s:%s: ", path, want_pos);
    if (strncmp(errs.msgs[0], prefix, strlen(prefix)) != 0 ||
        strstr(errs.msgs[0], want_msg) == NULL)
        fail_msg("got '%s', want prefix '%s' and '%s'", errs.msgs[0], prefix,
                 want_msg);
    free(prefix);
    free(path);
    cfg_errors_free(&errs);
}

static const char *local = "vtpmmgr:\n  provider: local\n";

static void test_defaults(void **state)
{
    struct cfg_errors errs;
    struct config *cfg = load(local, &errs, NULL);

    assert_non_null(cfg);
    assert_non_null(cfg->host);
    assert_string_equal(cfg->amqp.urls.v[0], "amqp://localhost:5672/");
    assert_int_equal(cfg->amqp.urls.n, 1);
    assert_int_equal(cfg->amqp.heartbeat_ms, 30000);
    assert_int_equal(cfg->amqp.prefetch, 256);
    assert_true(cfg->amqp.tls.verify_peer);
    assert_true(cfg->amqp.tls.verify_hostname);
    assert_string_equal(cfg->notifications.exchange, "nova");
    assert_int_equal(cfg->notifications.topics.n, 2);
    assert_string_equal(cfg->notifications.topics.v[0], "notifications");
    assert_string_equal(cfg->notifications.topics.v[1], "versioned_notifications");
    assert_string_equal(cfg->notifications.queue, "vtpmd.{host}");
    assert_null(cfg->notifications.dead_letter_exchange);
    assert_string_equal(cfg->status.exchange, "vtpmd");
    assert_string_equal(cfg->status.topic, "notifications");
    assert_int_equal(cfg->vtpmmgr.provider, VTPMMGR_PROVIDER_LOCAL);
    assert_int_equal(cfg->vtpmmgr.api, VTPMMGR_API_V1);
    assert_int_equal(cfg->image.size, 2 * 1024 * 1024);
    assert_string_equal(cfg->libvirt.uri, "xen:///system");
    assert_string_equal(cfg->libvirt.domain_name, "vtpm-{uuid}");
    assert_string_equal(cfg->libvirt.kernel, "/usr/lib/xen/boot/vtpm-stubdom.gz");
    assert_int_equal(cfg->libvirt.memory, 8 * 1024 * 1024);
    assert_string_equal(cfg->libvirt.vtpmmgr_domain, "vtpmmgr");
    assert_int_equal(cfg->policy.dflt, POLICY_DEFAULT_ALLOW);
    assert_int_equal(cfg->policy.rules.n, 0);
    assert_null(cfg->control.metrics_listen);
    config_free(cfg);
}

static void test_full(void **state)
{
    struct cfg_errors errs;
    struct config *cfg = load(
        "host: compute-1\n"
        "state_dir: /var/lib/x\n"
        "log: {level: debug, target: syslog}\n"
        "amqp:\n"
        "  urls: [amqp://a:5672/, 'amqps://b.example:5671/vhost']\n"
        "  heartbeat: 500ms\n"
        "  prefetch: 10\n"
        "notifications:\n"
        "  topics: versioned_notifications\n"
        "  dead_letter_exchange: vtpmd.dlx\n"
        "vtpmmgr:\n"
        "  url: https://keylime.example:8081\n"
        "  api: legacy\n"
        "  timeout: 5m\n"
        "image: {dir: /srv/img, size: 512KiB}\n"
        "libvirt: {uri: 'test:///default', memory: 16MiB, domain_name: 'vtpm-{instance_name}-{uuid}'}\n"
        "control: {socket: /run/x.sock, metrics_listen: '127.0.0.1:9100'}\n"
        "policy:\n"
        "  default: deny\n"
        "  rules:\n"
        "    - name: trusted\n"
        "      match:\n"
        "        project_id: ['abc*', 'def']\n"
        "        flavor: 'tpm.*'\n"
        "        flavor_extra_specs: {'hw:tpm': 'true', 'x': [a, b]}\n"
        "        metadata: {vtpm: yes}\n"
        "      vtpm: {image_size: 4MiB, memory: 16MiB, kernel: /k.gz}\n"
        "    - name: all\n",
        &errs, NULL);

    if (cfg == NULL)
        fail_msg("%s", errs.msgs[0]);
    assert_string_equal(cfg->host, "compute-1");
    assert_int_equal(cfg->log.level, 3);
    assert_int_equal(cfg->log.target, LOG_TARGET_CFG_SYSLOG);
    assert_int_equal(cfg->amqp.urls.n, 2);
    assert_string_equal(cfg->amqp.urls.v[1], "amqps://b.example:5671/vhost");
    assert_int_equal(cfg->amqp.heartbeat_ms, 500);
    assert_int_equal(cfg->notifications.topics.n, 1);
    assert_string_equal(cfg->notifications.dead_letter_exchange, "vtpmd.dlx");
    assert_int_equal(cfg->vtpmmgr.provider, VTPMMGR_PROVIDER_KEYLIME_PROXY);
    assert_int_equal(cfg->vtpmmgr.api, VTPMMGR_API_LEGACY);
    assert_int_equal(cfg->vtpmmgr.timeout_ms, 300000);
    assert_int_equal(cfg->image.size, 512 * 1024);
    assert_int_equal(cfg->libvirt.memory, 16 * 1024 * 1024);
    assert_int_equal(cfg->policy.dflt, POLICY_DEFAULT_DENY);
    assert_int_equal(cfg->policy.rules.n, 2);
    {
        const struct config_rule *r = config_rule_at(cfg, 0);
        assert_string_equal(r->name, "trusted");
        assert_int_equal(r->project_id.n, 2);
        assert_string_equal(r->project_id.v[0], "abc*");
        assert_int_equal(r->flavor.n, 1);
        assert_int_equal(r->flavor_extra_specs.n, 2);
        assert_string_equal(r->flavor_extra_specs.v[0].key, "hw:tpm");
        assert_string_equal(r->flavor_extra_specs.v[1].pats.v[1], "b");
        assert_int_equal(r->metadata.n, 1);
        assert_string_equal(r->metadata.v[0].pats.v[0], "yes");
        assert_int_equal(r->image_properties.n, 0);
        assert_int_equal(r->image_size, 4 * 1024 * 1024);
        assert_string_equal(r->kernel, "/k.gz");
        assert_null(r->domain_name);
        r = config_rule_at(cfg, 1);
        assert_string_equal(r->name, "all");
        assert_int_equal(r->project_id.n, 0);
        assert_int_equal(r->image_size, 0);
    }
    config_free(cfg);
}

static void test_unknown_key(void **state)
{
    expect_error("amqp:\n  heartbeet: 5\n", "2:3", "amqp.heartbeet: unknown key");
    expect_error("bogus: 1\n", "1:1", "bogus: unknown key");
    expect_error("vtpmmgr: {provider: local}\npolicy:\n  rules:\n    - name: a\n      match: {colour: red}\n",
                 "5:15", "match.colour: unknown key");
}

static void test_wrong_type(void **state)
{
    expect_error("vtpmmgr: {provider: local}\nimage:\n  size: [1]\n", "3:9",
                 "image.size: expected a scalar value, got a list");
    expect_error("vtpmmgr: {provider: local}\nlog: debug\n", "2:6",
                 "log: expected a mapping, got a scalar");
    expect_error("vtpmmgr: {provider: local}\namqp: {prefetch: many}\n", "2:18",
                 "amqp.prefetch: 'many' is not an integer");
    expect_error("vtpmmgr: {provider: local}\namqp: {tls: {verify_peer: maybe}}\n", "2:27",
                 "amqp.tls.verify_peer: 'maybe' is not a boolean");
    expect_error("vtpmmgr: {provider: local}\nlog: {level: loud}\n", "2:14",
                 "log.level: 'loud' is not one of: error, warning, info, debug");
    expect_error("vtpmmgr: {provider: local}\npolicy: {rules: {name: x}}\n", "2:17",
                 "policy.rules: expected a list, got a mapping");
    expect_error("- a\n- b\n", "1:1", "the top level must be a mapping");
    expect_error("vtpmmgr: {provider: local}\nimage: {size: 2MB}\n", "2:15",
                 "image.size: '2MB' is not a size");
    expect_error("vtpmmgr: {provider: local}\namqp: {heartbeat: 1y}\n", "2:19",
                 "amqp.heartbeat: '1y' is not a duration");
    expect_error("vtpmmgr: {provider: local}\nstate_dir: relative/dir\n", "2:12",
                 "state_dir: 'relative/dir' is not an absolute path");
}

static void test_out_of_range(void **state)
{
    expect_error("vtpmmgr: {provider: local}\namqp:\n  prefetch: 0\n", "3:13",
                 "amqp.prefetch: 0 is out of range 1..65535");
    expect_error("vtpmmgr: {provider: local}\nimage:\n  size: 1GiB\n", "3:9",
                 "image.size: 1GiB is out of range");
    expect_error("vtpmmgr: {provider: local}\nimage:\n  size: 99999999999999999999999\n", "3:9",
                 "is not a size");
}

static void test_bad_url(void **state)
{
    expect_error("vtpmmgr: {provider: local}\namqp:\n  urls: ['http://x/']\n", "3:10",
                 "amqp.urls: bad URL: unsupported URL scheme");
    expect_error("vtpmmgr: {provider: local}\namqp:\n  urls: [amqp://h:99999/]\n", "3:10",
                 "port out of range");
    expect_error("vtpmmgr: {provider: local}\namqp:\n  urls: [amqp://]\n", "3:10",
                 "empty host");
    expect_error("vtpmmgr:\n  url: ftp://kl/\n", "2:8",
                 "vtpmmgr.url: bad URL: unsupported URL scheme");
    expect_error("vtpmmgr: {provider: local}\ncontrol: {metrics_listen: nohost}\n", "2:27",
                 "control.metrics_listen: 'nohost': expected host:port");
}

static void test_missing(void **state)
{
    expect_error("vtpmmgr:\n  provider: keylime-proxy\n", "2:13",
                 "vtpmmgr.url: required with vtpmmgr.provider keylime-proxy");
    expect_error("vtpmmgr: {provider: local}\npolicy:\n  rules:\n    - match: {flavor: x}\n",
                 "4:7", "policy.rules[0]: missing required key 'name'");
    expect_error("vtpmmgr: {provider: local}\namqp:\n  heartbeat:\n", "3:13",
                 "amqp.heartbeat: missing value");
    expect_error("vtpmmgr: {provider: local}\namqp:\n  urls: []\n", "3:9",
                 "amqp.urls: the list must not be empty");
}

static void test_duplicate(void **state)
{
    expect_error("vtpmmgr: {provider: local}\nlog:\n  level: info\n  level: debug\n",
                 "4:3", "log.level: duplicate key");
    expect_error("vtpmmgr: {provider: local}\nlog: {level: info}\nlog: {target: syslog}\n",
                 "3:1", "log: duplicate key");
    expect_error("vtpmmgr: {provider: local}\npolicy:\n  rules:\n    - name: a\n    - name: a\n",
                 "5:7", "policy.rules[1]: duplicate rule name 'a'");
}

/* Hostile shapes: each is refused at the first event beyond a limit, so
 * the parse stays linear (a 50k-level list took seconds before). */
static void test_limits(void **state)
{
    const char *meta = "vtpmmgr: {provider: local}\npolicy:\n  rules:\n"
                       "    - name: r\n      match:\n        metadata:\n";
    char *text, *p;
    size_t n;
    struct cfg_errors errs;
    struct config *cfg;

    /* 64 levels (the top mapping and 63 lists) pass the depth check and
     * fail on their type; 65 do not */
    text = xmalloc(300000);
    p = text + sprintf(text, "vtpmmgr: {provider: local}\nhost: ");
    for (int i = 0; i < 63; i++)
        *p++ = '[';
    for (int i = 0; i < 63; i++)
        *p++ = ']';
    strcpy(p, "\n");
    expect_error(text, "2:7", "host: expected a scalar value, got a list");
    p = text + sprintf(text, "vtpmmgr: {provider: local}\nhost: ");
    for (int i = 0; i < 50000; i++)
        *p++ = '[';
    for (int i = 0; i < 50000; i++)
        *p++ = ']';
    strcpy(p, "\n");
    /* the mapping is level 1; the 64th '[' is level 65 */
    expect_error(text, "2:70", "nested deeper than 64 levels");
    free(text);

    /* more than 100,000 nodes */
    n = strlen(meta) + 200000 * 2 + 100;
    text = xmalloc(n);
    p = text + sprintf(text, "%s          k: [", meta);
    for (int i = 0; i < 100000; i++)
        p += sprintf(p, "x,");
    strcpy(p - 1, "]\n");
    cfg = load(text, &errs, NULL);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "more than 100000 values"));
    cfg_errors_free(&errs);
    free(text);

    /* aliases that expand beyond 100,000 values ("billion laughs") */
    text = xmalloc(1024 * 1024);
    p = text + sprintf(text, "%s          k0: &a [", meta);
    for (int i = 0; i < 20000; i++)
        p += sprintf(p, "x,");
    strcpy(p - 1, "]\n");
    p++;
    for (int i = 1; i < 10; i++)
        p += sprintf(p, "          k%d: *a\n", i);
    cfg = load(text, &errs, NULL);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "aliases expand the document to more than 100000 values"));
    cfg_errors_free(&errs);
    free(text);

    /* many keys: duplicates are still found, and errors are capped */
    text = xmalloc(1024 * 1024);
    p = text + sprintf(text, "%s", meta);
    for (int i = 0; i < 40000; i++)
        p += sprintf(p, "          k%d: x\n", i);
    p += sprintf(p, "          k7: y\n");
    cfg = load(text, &errs, NULL);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], ":40007:11: match.metadata: duplicate key 'k7'"));
    cfg_errors_free(&errs);
    p = text + sprintf(text, "vtpmmgr: {provider: local}\n");
    for (int i = 0; i < 1000; i++)
        p += sprintf(p, "unknown%d: x\n", i);
    cfg = load(text, &errs, NULL);
    assert_null(cfg);
    assert_int_equal(errs.n, 101);
    assert_non_null(strstr(errs.msgs[100], "too many errors"));
    cfg_errors_free(&errs);
    free(text);
    (void)state;
}

static void test_not_yaml(void **state)
{
    expect_error("vtpmmgr: {provider: local\n", "2:1", "invalid YAML");
    expect_error("a: b: c\n", "1:5", "invalid YAML: mapping values are not allowed");
    expect_error("host: \xff\xfe\n", "1:7", "invalid YAML: invalid leading UTF-8 octet");
    expect_error("host: \xc3\n", "1:8", "invalid YAML: invalid trailing UTF-8 octet");
}

static void test_nul(void **state)
{
    static const char text[] = "host: a\nlog: {lev\0el: info}\n";
    char *path = write_file("nul.yaml", text, sizeof(text) - 1, 0600);
    struct cfg_errors errs = {0};
    struct config *cfg = NULL;
    char *want;

    assert_int_equal(config_load(path, &cfg, &errs), -22);
    xasprintf(&want, "%s:2:10: invalid input: NUL byte", path);
    assert_int_equal(strncmp(errs.msgs[0], want, strlen(want)), 0);
    free(want);
    free(path);
    cfg_errors_free(&errs);
}

static void test_empty_and_dir(void **state)
{
    struct cfg_errors errs = {0};
    struct config *cfg = NULL;
    char *path = write_file("empty.yaml", "", 0, 0600);
    char *want;

    assert_int_equal(config_load(path, &cfg, &errs), -22);
    xasprintf(&want, "%s:1:1: empty configuration file", path);
    assert_string_equal(errs.msgs[0], want);
    free(want);
    cfg_errors_free(&errs);
    free(path);

    path = write_file("comments.yaml", "# nothing\n", 10, 0600);
    assert_int_equal(config_load(path, &cfg, &errs), -22);
    assert_non_null(strstr(errs.msgs[0], "empty configuration file"));
    cfg_errors_free(&errs);
    free(path);

    assert_int_equal(config_load(tmpdir, &cfg, &errs), -22);
    xasprintf(&want, "%s:1:1: is a directory", tmpdir);
    assert_int_equal(strncmp(errs.msgs[0], want, strlen(want)), 0);
    free(want);
    cfg_errors_free(&errs);

    assert_int_equal(config_load("/nonexistent/vtpmd.yaml", &cfg, &errs), -22);
    assert_string_equal(errs.msgs[0],
                        "/nonexistent/vtpmd.yaml:1:1: cannot open: No such file or directory");
    cfg_errors_free(&errs);
}

static void test_password_mode(void **state)
{
    static const char text[] =
        "vtpmmgr: {provider: local}\namqp:\n  urls: ['amqp://nova:s3cret@rabbit:5672/']\n";
    struct cfg_errors errs = {0};
    struct config *cfg = NULL;
    char *path = write_file("pw.yaml", text, sizeof(text) - 1, 0644);
    char *want;

    assert_int_equal(config_load(path, &cfg, &errs), -22);
    xasprintf(&want, "%s:3:10: amqp.urls: holds a password but the file is readable by other users", path);
    assert_int_equal(strncmp(errs.msgs[0], want, strlen(want)), 0);
    free(want);
    cfg_errors_free(&errs);

    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(config_load(path, &cfg, &errs), 0);
    config_free(cfg);
    free(path);

    /* A user name alone is no secret. */
    {
        static const char user[] =
            "vtpmmgr: {provider: local}\namqp: {urls: [amqp://nova@rabbit/]}\n";
        path = write_file("user.yaml", user, sizeof(user) - 1, 0644);
    }
    assert_int_equal(config_load(path, &cfg, &errs), 0);
    config_free(cfg);
    free(path);
}

static void test_templates(void **state)
{
    expect_error("vtpmmgr: {provider: local}\nlibvirt: {domain_name: vtpm-fixed}\n", "2:24",
                 "libvirt.domain_name: must contain {uuid}");
    expect_error("vtpmmgr: {provider: local}\nlibvirt: {domain_name: 'vtpm-{uuid}-{x}'}\n", "2:24",
                 "unknown placeholder");
    expect_error("vtpmmgr: {provider: local}\nlibvirt: {domain_name: 'vtpm/{uuid}'}\n", "2:24",
                 "may contain only");
    expect_error("vtpmmgr: {provider: local}\npolicy: {rules: [{name: a, vtpm: {domain_name: x}}]}\n",
                 "2:48", "vtpm.domain_name: must contain {uuid}");
    expect_error("vtpmmgr: {provider: local}\nhost: 'a b'\n", "2:7",
                 "host: 'a b' is not a valid host name");
}

static void test_units(void **state)
{
    uint64_t v;
    bool b;

    assert_int_equal(cfg_parse_size("2MiB", &v), 0);
    assert_int_equal(v, 2097152);
    assert_int_equal(cfg_parse_size("2097152", &v), 0);
    assert_int_equal(v, 2097152);
    assert_int_equal(cfg_parse_size("512 KiB", &v), 0);
    assert_int_equal(v, 524288);
    assert_int_equal(cfg_parse_size("1GiB", &v), 0);
    assert_int_equal(v, 1073741824);
    assert_int_equal(cfg_parse_size("10B", &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(cfg_parse_size("2mib", &v), -22);
    assert_int_equal(cfg_parse_size("-1", &v), -22);
    assert_int_equal(cfg_parse_size("", &v), -22);
    assert_int_equal(cfg_parse_size("1 ", &v), -22);
    assert_int_equal(cfg_parse_size("18446744073709551615GiB", &v), -22);
    assert_int_equal(cfg_parse_duration("500ms", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(cfg_parse_duration("10s", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(cfg_parse_duration("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(cfg_parse_duration("30", &v), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(cfg_parse_duration("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(cfg_parse_duration("1.5s", &v), -22);
    assert_int_equal(cfg_parse_duration("s", &v), -22);
    assert_int_equal(cfg_parse_bool("yes", &b), 0);
    assert_true(b);
    assert_int_equal(cfg_parse_bool("off", &b), 0);
    assert_false(b);
    assert_int_equal(cfg_parse_bool("1", &b), -22);
}

static void test_urls(void **state)
{
    static const char *const s[] = {"amqp", "amqps", NULL};
    bool pw;

    assert_null(cfg_check_url("amqp://u:p@[::1]:5672/%2f", s, &pw));
    assert_true(pw);
    assert_null(cfg_check_url("amqps://host.example/", s, &pw));
    assert_false(pw);
    assert_non_null(cfg_check_url("amqp://ho st/", s, &pw));
    assert_non_null(cfg_check_url("amqp://h:0/", s, &pw));
    assert_non_null(cfg_check_url("amqp://h:x/", s, &pw));
    assert_non_null(cfg_check_url("amqp//h/", s, &pw));
    assert_non_null(cfg_check_url("amqp://@h/", s, &pw));
    assert_null(cfg_check_hostport("0.0.0.0:8081"));
    assert_null(cfg_check_hostport("[::1]:9100"));
    assert_null(cfg_check_hostport(":9100"));
    assert_non_null(cfg_check_hostport("host:"));
    assert_non_null(cfg_check_hostport("host:70000"));
}

static void test_expand_host(void **state)
{
    char *s = config_expand_host("vtpmd.{host}.{host}", "cmp1");

    assert_string_equal(s, "vtpmd.cmp1.cmp1");
    free(s);
}

/* The shipped examples are valid, and the man page lists every key. */
static void test_shipped(void **state)
{
    const char *top = getenv("top_srcdir");
    struct cfg_errors errs = {0};
    struct config *cfg;
    char *path, *man = NULL;
    size_t cap = 0;
    FILE *f;

    if (top == NULL)
        top = ".";
    for (int i = 0; i < 2; i++) {
        xasprintf(&path, "%s/conf/%s", top, i ? "demo.yaml" : "vtpmd.yaml");
        cfg = NULL;
        if (config_load(path, &cfg, &errs) < 0)
            fail_msg("%s", errs.msgs[0]);
        config_free(cfg);
        free(path);
    }
    xasprintf(&path, "%s/docs/vtpmd.yaml.5", top);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_true(getdelim(&man, &cap, '\0', f) > 0);
    fclose(f);
    for (size_t i = 0; i < config_table.nkeys; i++) {
        const struct cfg_key *k = &config_table.keys[i];
        char *needle;
        /* roff escapes '-' and '.' at line start: look for the bare name. */
        xasprintf(&needle, "%s", k->name);
        if (strstr(man, needle) == NULL)
            fail_msg("%s does not document key %s", path, k->name);
        free(needle);
    }
    {
        const struct cfg_key *rules = NULL;
        for (size_t i = 0; i < config_table.nkeys; i++)
            if (config_table.keys[i].sub)
                rules = &config_table.keys[i];
        assert_non_null(rules);
        for (size_t i = 0; i < rules->sub->nkeys; i++) {
            if (strstr(man, rules->sub->keys[i].name) == NULL)
                fail_msg("%s does not document rule key %s", path,
                         rules->sub->keys[i].name);
        }
    }
    /* Keys read at start only: comparable, and the man page says so. */
    for (size_t i = 0; i < config_table.nkeys; i++) {
        const struct cfg_key *k = &config_table.keys[i];
        char *needle, *entry, *eol;

        if (!(k->flags & CFG_RESTART))
            continue;
        assert_true(cfg_type_comparable(k->type));
        xasprintf(&needle, ".B %s\n", k->name);
        entry = strstr(man, needle);
        if (entry == NULL)
            fail_msg("%s has no entry for key %s", path, k->name);
        entry += strlen(needle);
        eol = strchr(entry, '\n');
        if (eol == NULL || memmem(entry, (size_t)(eol - entry), "Read at start", 13) == NULL)
            fail_msg("%s: key %s is read at start only, its entry must say so", path, k->name);
        free(needle);
    }
    free(man);
    free(path);
}

struct changed {
    char names[256];
    char values[256];
};

static void note_changed(const struct cfg_key *k, const char *running, void *arg)
{
    struct changed *c = arg;

    strcat(c->names, k->name);
    strcat(c->names, " ");
    strcat(c->values, running);
    strcat(c->values, " ");
}

/* A reload names every restart-only key whose value changed, and no other. */
static void test_restart_changed(void **state)
{
    struct cfg_errors errs;
    struct config *a = load("vtpmmgr: {provider: local}\n"
                            "libvirt: {uri: 'test:///default', workers: 8}\n"
                            "control: {socket: /run/a.sock}\n"
                            "amqp: {prefetch: 10}\n",
                            &errs, NULL);
    struct config *b = load("vtpmmgr: {provider: local}\n"
                            "libvirt: {uri: 'test:///default', workers: 3}\n"
                            "control: {socket: /run/b.sock, metrics_listen: '127.0.0.1:9100'}\n"
                            "amqp: {prefetch: 20}\n",
                            &errs, NULL);
    struct changed c = {{0}, {0}};

    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(cfg_restart_changed(&config_table, a, a, note_changed, &c), 0);
    assert_string_equal(c.names, "");
    assert_int_equal(cfg_restart_changed(&config_table, a, b, note_changed, &c), 3);
    /* Table order; the running values; amqp.prefetch reloads, libvirt.uri
     * did not change. */
    assert_string_equal(c.names, "libvirt.workers control.socket control.metrics_listen ");
    assert_string_equal(c.values, "8 /run/a.sock (none) ");
    config_free(a);
    config_free(b);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char *cmd;

    xasprintf(&cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return -1;
    free(cmd);
    return 0;
}

/* host's default is what Nova takes by default, socket.gethostname():
 * gethostname(2) as it is, a FQDN not shortened; a host set to the short
 * form of a FQDN gets a warning. */
static void test_default_host(void **state)
{
    struct cfg_errors errs = {0};
    struct config *cfg;
    char *w;

    fake_hostname = "cmp7.example.org";
    cfg = load("vtpmmgr: {provider: local}\n", &errs, NULL);
    assert_non_null(cfg);
    assert_string_equal(cfg->host, "cmp7.example.org");
    assert_null(config_host_warning(cfg));
    config_free(cfg);

    cfg = load("vtpmmgr: {provider: local}\nhost: cmp7\n", &errs, NULL);
    assert_non_null(cfg);
    w = config_host_warning(cfg);
    assert_non_null(w);
    assert_non_null(strstr(w, "host=cmp7 is the short form of this machine's name "
                              "cmp7.example.org"));
    free(w);
    config_free(cfg);

    /* Another name entirely (nova.conf may set host): no guess. */
    cfg = load("vtpmmgr: {provider: local}\nhost: cmp70\n", &errs, NULL);
    assert_non_null(cfg);
    assert_null(config_host_warning(cfg));
    config_free(cfg);

    fake_hostname = "cmp8";
    cfg = load("vtpmmgr: {provider: local}\n", &errs, NULL);
    assert_non_null(cfg);
    assert_string_equal(cfg->host, "cmp8");
    assert_null(config_host_warning(cfg));
    config_free(cfg);
    fake_hostname = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_not_yaml),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_empty_and_dir),
        cmocka_unit_test(test_password_mode),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_expand_host),
        cmocka_unit_test(test_default_host),
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_restart_changed),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
