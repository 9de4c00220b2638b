/* vtpmd's configuration keys, declared once: this table drives parsing,
 * defaults, validation and the check of docs/vtpmd.yaml.5. */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "xalloc.h"

#ifndef VTPMD_STATE_DIR
#define VTPMD_STATE_DIR "/var/lib/vtpmd"
#endif
#ifndef VTPMD_RUN_DIR
#define VTPMD_RUN_DIR "/run/vtpmd"
#endif

#define OFF(f) offsetof(struct config, f)
#define ROFF(f) offsetof(struct config_rule, f)
#define KiB 1024ll
#define MiB (1024ll * 1024)
#define GiB (1024ll * 1024 * 1024)

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};
static const char *const amqp_schemes[] = {"amqp", "amqps", NULL};
static const char *const http_schemes[] = {"http", "https", NULL};
static const char *const providers[] = {"keylime-proxy", "local", NULL};
static const char *const apis[] = {"v1", "legacy", NULL};
static const char *const policy_defaults[] = {"allow", "deny", NULL};

static void rule_validate(struct cfg_ctx *ctx, void *base);

static const struct cfg_key rule_keys[] = {
    {"name", CFG_STRING, ROFF(name), NULL, 0, 0, NULL, CFG_REQUIRED, NULL,
     "Rule name, reported in status notifications and the control API."},
    {"match.project_id", CFG_GLOBS, ROFF(project_id), NULL, 0, 0, NULL, 0, NULL,
     "Project (tenant) id patterns."},
    {"match.flavor", CFG_GLOBS, ROFF(flavor), NULL, 0, 0, NULL, 0, NULL,
     "Flavor name patterns."},
    {"match.host", CFG_GLOBS, ROFF(host), NULL, 0, 0, NULL, 0, NULL,
     "Compute host name patterns."},
    {"match.flavor_extra_specs", CFG_GLOBMAP, ROFF(flavor_extra_specs), NULL, 0, 0, NULL, 0, NULL,
     "Flavor extra specs: key to pattern(s). Only versioned notifications carry them."},
    {"match.image_properties", CFG_GLOBMAP, ROFF(image_properties), NULL, 0, 0, NULL, 0, NULL,
     "Image properties: key to pattern(s). Only legacy notifications carry them."},
    {"match.metadata", CFG_GLOBMAP, ROFF(metadata), NULL, 0, 0, NULL, 0, NULL,
     "Instance metadata: key to pattern(s)."},
    {"vtpm.image_size", CFG_SIZE, ROFF(image_size), NULL, 64 * KiB, 64 * MiB, NULL, 0, NULL,
     "Overrides image.size for instances this rule selects."},
    {"vtpm.memory", CFG_SIZE, ROFF(memory), NULL, 1 * MiB, 1 * GiB, NULL, 0, NULL,
     "Overrides libvirt.memory."},
    {"vtpm.kernel", CFG_PATH, ROFF(kernel), NULL, 0, 0, NULL, 0, NULL,
     "Overrides libvirt.kernel."},
    {"vtpm.domain_name", CFG_STRING, ROFF(domain_name), NULL, 0, 0, NULL, 0, NULL,
     "Overrides libvirt.domain_name."},
};

static const struct cfg_table rule_table = {
    rule_keys, sizeof(rule_keys) / sizeof(rule_keys[0]),
    sizeof(struct config_rule), rule_validate,
};

static void config_validate(struct cfg_ctx *ctx, void *base);

static const struct cfg_key config_keys[] = {
    {"host", CFG_STRING, OFF(host), NULL, 0, 0, NULL, 0, NULL,
     "This compute host's name as Nova knows it. Default: the short hostname."},
    {"state_dir", CFG_PATH, OFF(state_dir), VTPMD_STATE_DIR, 0, 0, NULL, 0, NULL,
     "Journal and runtime state."},
    {"log.level", CFG_ENUM, OFF(log.level), "info", 0, 0, log_levels, 0, NULL,
     "error, warning, info or debug."},
    {"log.target", CFG_ENUM, OFF(log.target), "stderr", 0, 0, log_targets, 0, NULL,
     "stderr or syslog."},
    {"amqp.urls", CFG_URL_LIST, OFF(amqp.urls), "amqp://localhost:5672/", 1, 0, amqp_schemes, 0, NULL,
     "Broker URLs, tried in order (failover). amqp:// or amqps://."},
    {"amqp.heartbeat", CFG_DURATION, OFF(amqp.heartbeat_ms), "30", 0, 3600 * 1000, NULL, 0, NULL,
     "AMQP heartbeat interval; 0 turns heartbeats off."},
    {"amqp.prefetch", CFG_INT, OFF(amqp.prefetch), "256", 1, 65535, NULL, 0, NULL,
     "Unacknowledged deliveries in flight."},
    {"amqp.connect_timeout", CFG_DURATION, OFF(amqp.connect_timeout_ms), "10s", 100, 600 * 1000, NULL, 0, NULL,
     "Time allowed for connect, TLS and login."},
    {"amqp.reconnect_max", CFG_DURATION, OFF(amqp.reconnect_max_ms), "30s", 100, 3600 * 1000, NULL, 0, NULL,
     "Upper bound of the exponential reconnect backoff."},
    {"amqp.tls.ca_file", CFG_PATH, OFF(amqp.tls.ca_file), NULL, 0, 0, NULL, 0, NULL,
     "CA bundle for amqps://; default: the system's."},
    {"amqp.tls.cert_file", CFG_PATH, OFF(amqp.tls.cert_file), NULL, 0, 0, NULL, 0, NULL,
     "Client certificate for amqps://."},
    {"amqp.tls.key_file", CFG_PATH, OFF(amqp.tls.key_file), NULL, 0, 0, NULL, 0, NULL,
     "Client key for amqps://."},
    {"amqp.tls.verify_peer", CFG_BOOL, OFF(amqp.tls.verify_peer), "true", 0, 0, NULL, 0, NULL,
     "Verify the broker's certificate."},
    {"amqp.tls.verify_hostname", CFG_BOOL, OFF(amqp.tls.verify_hostname), "true", 0, 0, NULL, 0, NULL,
     "Check the broker's certificate names its host."},
    {"notifications.exchange", CFG_STRING, OFF(notifications.exchange), "nova", 0, 0, NULL, 0, NULL,
     "Nova's notification exchange (topic, non-durable)."},
    {"notifications.topics", CFG_STRING_LIST, OFF(notifications.topics), "notifications,versioned_notifications", 0, 0, NULL, 0, NULL,
     "Notification topics; vtpmd binds <topic>.info and <topic>.error."},
    {"notifications.queue", CFG_STRING, OFF(notifications.queue), "vtpmd.{host}", 0, 0, NULL, 0, NULL,
     "vtpmd's own durable queue; {host} is replaced."},
    {"notifications.dead_letter_exchange", CFG_STRING, OFF(notifications.dead_letter_exchange), NULL, 0, 0, NULL, 0, NULL,
     "Exchange for rejected (malformed) notifications; none by default."},
    {"notifications.max_message_size", CFG_SIZE, OFF(notifications.max_message_size), "1MiB", 1 * KiB, 64 * MiB, NULL, 0, NULL,
     "Larger notification bodies are rejected as malformed."},
    {"status.exchange", CFG_STRING, OFF(status.exchange), "vtpmd", 0, 0, NULL, 0, NULL,
     "Exchange of vtpmd's status notifications (topic, non-durable)."},
    {"status.topic", CFG_STRING, OFF(status.topic), "notifications", 0, 0, NULL, 0, NULL,
     "Topic of status notifications: <topic>.info and <topic>.error."},
    {"status.outbox_limit", CFG_INT, OFF(status.outbox_limit), "10000", 1, 10000000, NULL, 0, NULL,
     "Status messages held while the broker is unreachable."},
    {"vtpmmgr.provider", CFG_ENUM, OFF(vtpmmgr.provider), "keylime-proxy", 0, 0, providers, 0, NULL,
     "keylime-proxy (the Keylime VM's REST proxy) or local (libuuid)."},
    {"vtpmmgr.url", CFG_URL, OFF(vtpmmgr.url), NULL, 0, 0, http_schemes, 0, NULL,
     "Base URL of the proxy; required with provider keylime-proxy."},
    {"vtpmmgr.api", CFG_ENUM, OFF(vtpmmgr.api), "v1", 0, 0, apis, 0, NULL,
     "v1 or legacy (GET <url>, no release)."},
    {"vtpmmgr.timeout", CFG_DURATION, OFF(vtpmmgr.timeout_ms), "10s", 100, 600 * 1000, NULL, 0, NULL,
     "Time allowed for one request to the proxy."},
    {"vtpmmgr.retry_for", CFG_DURATION, OFF(vtpmmgr.retry_for_ms), "2m", 0, 24 * 3600 * 1000ll, NULL, 0, NULL,
     "How long transient proxy failures are retried before giving up."},
    {"vtpmmgr.tls.ca_file", CFG_PATH, OFF(vtpmmgr.tls.ca_file), NULL, 0, 0, NULL, 0, NULL,
     "CA bundle for https://."},
    {"vtpmmgr.tls.cert_file", CFG_PATH, OFF(vtpmmgr.tls.cert_file), NULL, 0, 0, NULL, 0, NULL,
     "Client certificate (mTLS)."},
    {"vtpmmgr.tls.key_file", CFG_PATH, OFF(vtpmmgr.tls.key_file), NULL, 0, 0, NULL, 0, NULL,
     "Client key (mTLS)."},
    {"vtpmmgr.tls.verify_peer", CFG_BOOL, OFF(vtpmmgr.tls.verify_peer), "true", 0, 0, NULL, 0, NULL,
     "Verify the proxy's certificate."},
    {"vtpmmgr.tls.verify_hostname", CFG_BOOL, OFF(vtpmmgr.tls.verify_hostname), "true", 0, 0, NULL, 0, NULL,
     "Check the proxy's certificate names its host."},
    {"image.dir", CFG_PATH, OFF(image.dir), VTPMD_STATE_DIR "/images", 0, 0, NULL, 0, NULL,
     "Directory of the vTPM backing images (created 0700)."},
    {"image.size", CFG_SIZE, OFF(image.size), "2MiB", 64 * KiB, 64 * MiB, NULL, 0, NULL,
     "Size of each zero-filled backing image."},
    {"image.spares", CFG_INT, OFF(image.spares), "32", 0, 4096, NULL, 0, NULL,
     "Images of image.size made ahead (hidden, reserved, fsync'd); a create renames one."},
    {"libvirt.uri", CFG_STRING, OFF(libvirt.uri), "xen:///system", 0, 0, NULL, 0, NULL,
     "libvirt connection URI; test:///default for demos and tests."},
    {"libvirt.domain_name", CFG_STRING, OFF(libvirt.domain_name), "vtpm-{uuid}", 0, 0, NULL, 0, NULL,
     "Stub domain name template: {uuid} (instance), {instance_name}."},
    {"libvirt.kernel", CFG_PATH, OFF(libvirt.kernel), "/usr/lib/xen/boot/vtpm-stubdom.gz", 0, 0, NULL, 0, NULL,
     "vTPM stub domain kernel."},
    {"libvirt.memory", CFG_SIZE, OFF(libvirt.memory), "8MiB", 1 * MiB, 1 * GiB, NULL, 0, NULL,
     "Stub domain memory."},
    {"libvirt.workers", CFG_INT, OFF(libvirt.workers), "8", 1, 32 /* VIRT_WORKERS_MAX */, NULL, 0, NULL,
     "Threads calling libvirt (and waiting on the disk) in parallel; read at start."},
    {"libvirt.vtpmmgr_domain", CFG_STRING, OFF(libvirt.vtpmmgr_domain), "vtpmmgr", 0, 0, NULL, 0, NULL,
     "Name of the vtpmmgr domain (the stub domain's vtpm backend)."},
    {"control.socket", CFG_PATH, OFF(control.socket), VTPMD_RUN_DIR "/control.sock", 0, 0, NULL, 0, NULL,
     "UNIX socket of the control API (mode 0660)."},
    {"control.metrics_listen", CFG_HOSTPORT, OFF(control.metrics_listen), NULL, 0, 0, NULL, 0, NULL,
     "host:port to serve /metrics over TCP; off by default."},
    {"reconcile.interval", CFG_DURATION, OFF(reconcile.interval_ms), "5m", 0, 24 * 3600 * 1000ll, NULL, 0, NULL,
     "How often the journal, libvirt and the image directory are compared; 0: only at start-up and after libvirt reconnects."},
    {"reconcile.restart_limit", CFG_INT, OFF(reconcile.restart_limit), "5", 0, 1000, NULL, 0, NULL,
     "Restarts of a stopped or crashed stub domain allowed per instance in 10 minutes."},
    {"policy.default", CFG_ENUM, OFF(policy.dflt), "allow", 0, 0, policy_defaults, 0, NULL,
     "allow or deny: the decision when no rule matches."},
    {"policy.rules", CFG_LIST, OFF(policy.rules), NULL, 0, 0, NULL, 0, &rule_table,
     "Rules, first match wins: {name, match: {...}, vtpm: {...}}."},
};

const struct cfg_table config_table = {
    config_keys, sizeof(config_keys) / sizeof(config_keys[0]),
    sizeof(struct config), config_validate,
};

/* Names end up in libvirt domain names and file names. */
static const char *check_domain_template(const char *t)
{
    const char *p;

    if (strstr(t, "{uuid}") == NULL)
        return "must contain {uuid} so that every instance gets its own domain";
    for (p = t; *p; p++) {
        if (*p == '{') {
            if (strncmp(p, "{uuid}", 6) == 0) {
                p += 5;
                continue;
            }
            if (strncmp(p, "{instance_name}", 15) == 0) {
                p += 14;
                continue;
            }
            return "unknown placeholder (only {uuid} and {instance_name})";
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return "may contain only letters, digits, '-', '_', '.' and placeholders";
    }
    return NULL;
}

static bool valid_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 255)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.' ||
              *s == ':'))
            return false;
    }
    return true;
}

static void rule_validate(struct cfg_ctx *ctx, void *base)
{
    struct config_rule *r = base;
    const char *why;

    if (r->domain_name && (why = check_domain_template(r->domain_name)))
        cfg_error(ctx, cfg_key_pos(ctx, "vtpm.domain_name"),
                  "vtpm.domain_name: %s", why);
}

static void config_validate(struct cfg_ctx *ctx, void *base)
{
    struct config *c = base;
    const struct config_rule *rules = c->policy.rules.items;
    const char *why;

    if (c->vtpmmgr.provider == VTPMMGR_PROVIDER_KEYLIME_PROXY && !c->vtpmmgr.url)
        cfg_error(ctx, cfg_key_pos(ctx, "vtpmmgr.provider"),
                  "vtpmmgr.url: required with vtpmmgr.provider keylime-proxy");
    if ((why = check_domain_template(c->libvirt.domain_name)))
        cfg_error(ctx, cfg_key_pos(ctx, "libvirt.domain_name"),
                  "libvirt.domain_name: %s", why);
    if (c->host && !valid_name(c->host))
        cfg_error(ctx, cfg_key_pos(ctx, "host"),
                  "host: '%s' is not a valid host name", c->host);
    if (!valid_name(c->libvirt.vtpmmgr_domain))
        cfg_error(ctx, cfg_key_pos(ctx, "libvirt.vtpmmgr_domain"),
                  "libvirt.vtpmmgr_domain: '%s' is not a valid domain name",
                  c->libvirt.vtpmmgr_domain);
    if (!valid_name(c->notifications.exchange) || !valid_name(c->status.exchange))
        cfg_error(ctx, cfg_key_pos(ctx, "notifications.exchange"),
                  "exchange names may contain only letters, digits, '-', '_', '.', ':'");
    if (c->notifications.dead_letter_exchange &&
        !valid_name(c->notifications.dead_letter_exchange))
        cfg_error(ctx, cfg_key_pos(ctx, "notifications.dead_letter_exchange"),
                  "notifications.dead_letter_exchange: not a valid exchange name");
    if ((c->amqp.tls.cert_file == NULL) != (c->amqp.tls.key_file == NULL))
        cfg_error(ctx, cfg_key_pos(ctx, c->amqp.tls.cert_file ? "amqp.tls.cert_file" : "amqp.tls.key_file"),
                  "amqp.tls: cert_file and key_file go together");
    if ((c->vtpmmgr.tls.cert_file == NULL) != (c->vtpmmgr.tls.key_file == NULL))
        cfg_error(ctx, cfg_key_pos(ctx, c->vtpmmgr.tls.cert_file ? "vtpmmgr.tls.cert_file" : "vtpmmgr.tls.key_file"),
                  "vtpmmgr.tls: cert_file and key_file go together");
    for (size_t i = 0; i < c->policy.rules.n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(rules[i].name, rules[j].name) == 0)
                cfg_error(ctx, c->policy.rules.pos[i],
                          "policy.rules[%zu]: duplicate rule name '%s'", i,
                          rules[i].name);
        }
    }
}

char *config_expand_host(const char *tmpl, const char *host)
{
    size_t hl = strlen(host), cap = strlen(tmpl) + 1, len = 0;
    char *out;

    for (const char *p = strstr(tmpl, "{host}"); p; p = strstr(p + 6, "{host}"))
        cap += hl;
    out = xmalloc(cap);
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{host}", 6) == 0) {
            memcpy(out + len, host, hl);
            len += hl;
            p += 6;
        } else {
            out[len++] = *p++;
        }
    }
    out[len] = '\0';
    return out;
}

static char *short_hostname(void)
{
    char buf[256];

    if (gethostname(buf, sizeof(buf)) < 0)
        return xstrdup("localhost");
    buf[sizeof(buf) - 1] = '\0';
    buf[strcspn(buf, ".")] = '\0';
    return xstrdup(buf[0] ? buf : "localhost");
}

int config_load(const char *path, struct config **out, struct cfg_errors *errs)
{
    struct config *c = xcalloc(1, sizeof(*c));
    int ret;

    ret = cfg_load(&config_table, path, c, errs);
    if (ret < 0) {
        free(c);
        return ret;
    }
    if (c->host == NULL)
        c->host = short_hostname();
    c->source = path ? xstrdup(path) : NULL;
    *out = c;
    return 0;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    cfg_free(&config_table, cfg);
    free(cfg->host); /* set after loading when defaulted */
    free(cfg->source);
    free(cfg);
}
