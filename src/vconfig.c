/* vtpmd's configuration keys, declared once: this table drives parsing,
 * defaults, validation and the check of docs/vtpmd.yaml.5. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vconfig.h"
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
    {.name = "name", .type = CFG_STRING, .offset = ROFF(name), .flags = CFG_REQUIRED,
     .help = "Rule name, reported in status notifications and the control API."},
    {.name = "match.project_id", .type = CFG_GLOBS, .offset = ROFF(project_id),
     .help = "Project (tenant) id patterns."},
    {.name = "match.flavor", .type = CFG_GLOBS, .offset = ROFF(flavor),
     .help = "Flavor name patterns."},
    {.name = "match.host", .type = CFG_GLOBS, .offset = ROFF(host),
     .help = "Compute host name patterns."},
    {.name = "match.flavor_extra_specs", .type = CFG_GLOBMAP, .offset = ROFF(flavor_extra_specs),
     .help = "Flavor extra specs: key to pattern(s). Only versioned notifications carry them."},
    {.name = "match.image_properties", .type = CFG_GLOBMAP, .offset = ROFF(image_properties),
     .help = "Image properties: key to pattern(s). Only legacy notifications carry them."},
    {.name = "match.metadata", .type = CFG_GLOBMAP, .offset = ROFF(metadata),
     .help = "Instance metadata: key to pattern(s)."},
    {.name = "vtpm.image_size", .type = CFG_SIZE, .offset = ROFF(image_size), .min = 64 * KiB,
     .max = 64 * MiB,
     .help = "Overrides image.size for instances this rule selects."},
    {.name = "vtpm.memory", .type = CFG_SIZE, .offset = ROFF(memory), .min = 1 * MiB,
     .max = 1 * GiB,
     .help = "Overrides libvirt.memory."},
    {.name = "vtpm.kernel", .type = CFG_PATH, .offset = ROFF(kernel),
     .help = "Overrides libvirt.kernel."},
    {.name = "vtpm.domain_name", .type = CFG_STRING, .offset = ROFF(domain_name),
     .help = "Overrides libvirt.domain_name."},
};

static const struct cfg_table rule_table = {
    rule_keys, sizeof(rule_keys) / sizeof(rule_keys[0]),
    sizeof(struct config_rule), rule_validate,
};

static void config_validate(struct cfg_ctx *ctx, void *base);

static const struct cfg_key config_keys[] = {
    {.name = "host", .type = CFG_STRING, .offset = OFF(host),
     .help = "This compute host's name as Nova knows it ([DEFAULT] host). Default: gethostname(), as Nova's (often a FQDN, not shortened)."},
    {.name = "state_dir", .type = CFG_PATH, .offset = OFF(state_dir), .def = VTPMD_STATE_DIR,
     .flags = CFG_RESTART,
     .help = "Journal and runtime state."},
    {.name = "log.level", .type = CFG_ENUM, .offset = OFF(log.level), .def = "info",
     .choices = log_levels,
     .help = "error, warning, info or debug."},
    {.name = "log.target", .type = CFG_ENUM, .offset = OFF(log.target), .def = "stderr",
     .choices = log_targets,
     .help = "stderr or syslog."},
    {.name = "amqp.urls", .type = CFG_URL_LIST, .offset = OFF(amqp.urls),
     .def = "amqp://localhost:5672/", .min = 1, .choices = amqp_schemes,
     .help = "Broker URLs, tried in order (failover). amqp:// or amqps://."},
    {.name = "amqp.heartbeat", .type = CFG_DURATION, .offset = OFF(amqp.heartbeat_ms), .def = "30",
     .max = 3600 * 1000,
     .help = "AMQP heartbeat interval; 0 turns heartbeats off."},
    {.name = "amqp.prefetch", .type = CFG_INT, .offset = OFF(amqp.prefetch), .def = "256", .min = 1,
     .max = 65535,
     .help = "Unacknowledged deliveries in flight."},
    {.name = "amqp.connect_timeout", .type = CFG_DURATION, .offset = OFF(amqp.connect_timeout_ms),
     .def = "10s", .min = 100, .max = 600 * 1000,
     .help = "Time allowed for connect, TLS and login."},
    {.name = "amqp.reconnect_max", .type = CFG_DURATION, .offset = OFF(amqp.reconnect_max_ms),
     .def = "30s", .min = 100, .max = 3600 * 1000,
     .help = "Upper bound of the exponential reconnect backoff."},
    {.name = "amqp.tls.ca_file", .type = CFG_PATH, .offset = OFF(amqp.tls.ca_file),
     .help = "CA bundle for amqps://; default: the system's."},
    {.name = "amqp.tls.cert_file", .type = CFG_PATH, .offset = OFF(amqp.tls.cert_file),
     .help = "Client certificate for amqps://."},
    {.name = "amqp.tls.key_file", .type = CFG_PATH, .offset = OFF(amqp.tls.key_file),
     .help = "Client key for amqps://."},
    {.name = "amqp.tls.verify_peer", .type = CFG_BOOL, .offset = OFF(amqp.tls.verify_peer),
     .def = "true",
     .help = "Verify the broker's certificate."},
    {.name = "amqp.tls.verify_hostname", .type = CFG_BOOL, .offset = OFF(amqp.tls.verify_hostname),
     .def = "true",
     .help = "Check the broker's certificate names its host."},
    {.name = "notifications.exchange", .type = CFG_STRING, .offset = OFF(notifications.exchange),
     .def = "nova",
     .help = "Nova's notification exchange (topic, non-durable)."},
    {.name = "notifications.topics", .type = CFG_STRING_LIST, .offset = OFF(notifications.topics),
     .def = "notifications,versioned_notifications",
     .help = "Notification topics; vtpmd binds <topic>.info and <topic>.error."},
    {.name = "notifications.queue", .type = CFG_STRING, .offset = OFF(notifications.queue),
     .def = "vtpmd.{host}",
     .help = "vtpmd's own durable queue; {host} is replaced."},
    {.name = "notifications.dead_letter_exchange", .type = CFG_STRING,
     .offset = OFF(notifications.dead_letter_exchange),
     .help = "Exchange for rejected (malformed) notifications; none by default."},
    {.name = "notifications.max_message_size", .type = CFG_SIZE,
     .offset = OFF(notifications.max_message_size), .def = "1MiB", .min = 1 * KiB, .max = 64 * MiB,
     .help = "Larger notification bodies are rejected as malformed."},
    {.name = "status.exchange", .type = CFG_STRING, .offset = OFF(status.exchange), .def = "vtpmd",
     .help = "Exchange of vtpmd's status notifications (topic, non-durable)."},
    {.name = "status.topic", .type = CFG_STRING, .offset = OFF(status.topic),
     .def = "notifications",
     .help = "Topic of status notifications: <topic>.info and <topic>.error."},
    {.name = "status.outbox_limit", .type = CFG_INT, .offset = OFF(status.outbox_limit),
     .def = "10000", .min = 1, .max = 10000000,
     .help = "Status messages held while the broker is unreachable."},
    {.name = "vtpmmgr.provider", .type = CFG_ENUM, .offset = OFF(vtpmmgr.provider),
     .def = "keylime-proxy", .choices = providers,
     .help = "keylime-proxy (the Keylime VM's REST proxy) or local (libuuid)."},
    {.name = "vtpmmgr.url", .type = CFG_URL, .offset = OFF(vtpmmgr.url), .choices = http_schemes,
     .help = "Base URL of the proxy; required with provider keylime-proxy."},
    {.name = "vtpmmgr.api", .type = CFG_ENUM, .offset = OFF(vtpmmgr.api), .def = "v1",
     .choices = apis,
     .help = "v1 or legacy (GET <url>, no release)."},
    {.name = "vtpmmgr.timeout", .type = CFG_DURATION, .offset = OFF(vtpmmgr.timeout_ms),
     .def = "10s", .min = 100, .max = 600 * 1000,
     .help = "Time allowed for one request to the proxy."},
    {.name = "vtpmmgr.retry_for", .type = CFG_DURATION, .offset = OFF(vtpmmgr.retry_for_ms),
     .def = "2m", .max = 24 * 3600 * 1000ll,
     .help = "How long transient proxy failures are retried before giving up."},
    {.name = "vtpmmgr.tls.ca_file", .type = CFG_PATH, .offset = OFF(vtpmmgr.tls.ca_file),
     .help = "CA bundle for https://."},
    {.name = "vtpmmgr.tls.cert_file", .type = CFG_PATH, .offset = OFF(vtpmmgr.tls.cert_file),
     .help = "Client certificate (mTLS)."},
    {.name = "vtpmmgr.tls.key_file", .type = CFG_PATH, .offset = OFF(vtpmmgr.tls.key_file),
     .help = "Client key (mTLS)."},
    {.name = "vtpmmgr.tls.verify_peer", .type = CFG_BOOL, .offset = OFF(vtpmmgr.tls.verify_peer),
     .def = "true",
     .help = "Verify the proxy's certificate."},
    {.name = "vtpmmgr.tls.verify_hostname", .type = CFG_BOOL,
     .offset = OFF(vtpmmgr.tls.verify_hostname), .def = "true",
     .help = "Check the proxy's certificate names its host."},
    {.name = "image.dir", .type = CFG_PATH, .offset = OFF(image.dir),
     .def = VTPMD_STATE_DIR "/images",
     .help = "Directory of the vTPM backing images (created 0700)."},
    {.name = "image.size", .type = CFG_SIZE, .offset = OFF(image.size), .def = "2MiB",
     .min = 64 * KiB, .max = 64 * MiB,
     .help = "Size of each zero-filled backing image."},
    {.name = "image.spares", .type = CFG_INT, .offset = OFF(image.spares), .def = "32", .max = 4096,
     .help = "Images of image.size made ahead (hidden, reserved, fsync'd); a create renames one."},
    {.name = "libvirt.uri", .type = CFG_STRING, .offset = OFF(libvirt.uri), .def = "xen:///system",
     .flags = CFG_RESTART,
     .help = "libvirt connection URI; test:///default for demos and tests."},
    {.name = "libvirt.domain_name", .type = CFG_STRING, .offset = OFF(libvirt.domain_name),
     .def = "vtpm-{uuid}",
     .help = "Stub domain name template: {uuid} (instance), {instance_name}."},
    {.name = "libvirt.kernel", .type = CFG_PATH, .offset = OFF(libvirt.kernel),
     .def = "/usr/lib/xen/boot/vtpm-stubdom.gz",
     .help = "vTPM stub domain kernel."},
    {.name = "libvirt.memory", .type = CFG_SIZE, .offset = OFF(libvirt.memory), .def = "8MiB",
     .min = 1 * MiB, .max = 1 * GiB,
     .help = "Stub domain memory."},
    {.name = "libvirt.workers", .type = CFG_INT, .offset = OFF(libvirt.workers), .def = "8",
     .min = 1, .max = 32 /* VIRT_WORKERS_MAX */,
     .flags = CFG_RESTART,
     .help = "Threads calling libvirt (and waiting on the disk) in parallel; read at start."},
    {.name = "libvirt.require_vtpm", .type = CFG_BOOL, .offset = OFF(libvirt.require_vtpm),
     .def = "true",
     .help = "Refuse to report a vTPM ready unless libvirt keeps the stub domain's <vtpm> device (a libvirt with the contrib/libvirt series); false only for test:///default (demos, tests), which drops it."},
    {.name = "libvirt.vtpmmgr_domain", .type = CFG_STRING, .offset = OFF(libvirt.vtpmmgr_domain),
     .def = "vtpmmgr",
     .help = "Name of the vtpmmgr domain (the stub domain's vtpm backend)."},
    {.name = "control.socket", .type = CFG_PATH, .offset = OFF(control.socket),
     .def = VTPMD_RUN_DIR "/control.sock",
     .flags = CFG_RESTART,
     .help = "UNIX socket of the control API (mode 0660)."},
    {.name = "control.metrics_listen", .type = CFG_HOSTPORT, .offset = OFF(control.metrics_listen),
     .flags = CFG_RESTART,
     .help = "host:port to serve /metrics over TCP; off by default."},
    {.name = "control.max_connections", .type = CFG_INT, .offset = OFF(control.max_connections),
     .def = "256", .min = 1, .max = 100000,
     .help = "Open connections allowed on each control listener (the socket, the metrics port); beyond it a client gets 503 at once."},
    {.name = "control.idle_timeout", .type = CFG_DURATION, .offset = OFF(control.idle_timeout_ms),
     .def = "30s", .min = 1000, .max = 3600 * 1000,
     .help = "A connection without a request in progress is closed after this long."},
    {.name = "control.header_timeout", .type = CFG_DURATION, .offset = OFF(control.header_timeout_ms),
     .def = "10s", .min = 1000, .max = 3600 * 1000,
     .help = "A request must arrive whole within this long of its first byte."},
    {.name = "control.request_timeout", .type = CFG_DURATION, .offset = OFF(control.request_timeout_ms),
     .def = "60s", .min = 1000, .max = 3600 * 1000,
     .help = "A request must be answered within this long; a wait is bounded by its own timeout instead."},
    {.name = "control.max_waiters", .type = CFG_INT, .offset = OFF(control.max_waiters),
     .def = "128", .min = 1, .max = 100000,
     .help = "Long polls (wait) in progress at once; beyond it a wait gets 503 at once."},
    {.name = "reconcile.interval", .type = CFG_DURATION, .offset = OFF(reconcile.interval_ms),
     .def = "5m", .max = 24 * 3600 * 1000ll,
     .help = "How often the journal, libvirt and the image directory are compared; 0: only at start-up and after libvirt reconnects."},
    {.name = "reconcile.restart_limit", .type = CFG_INT, .offset = OFF(reconcile.restart_limit),
     .def = "5", .max = 1000,
     .help = "Restarts of a stopped or crashed stub domain allowed per instance in 10 minutes."},
    {.name = "policy.default", .type = CFG_ENUM, .offset = OFF(policy.dflt), .def = "allow",
     .choices = policy_defaults,
     .help = "allow or deny: the decision when no rule matches."},
    {.name = "policy.rules", .type = CFG_LIST, .offset = OFF(policy.rules), .sub = &rule_table,
     .help = "Rules, first match wins: {name, match: {...}, vtpm: {...}}."},
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
    c->control_socket_pos = cfg_key_pos(ctx, "control.socket");
    c->image_dir_pos = cfg_key_pos(ctx, "image.dir");
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

char *config_default_host(void)
{
    char buf[HOST_NAME_MAX + 2];

    /* Nova's [DEFAULT] host defaults to Python's socket.gethostname(),
     * which is gethostname(2) as it is: often a FQDN, never shortened. */
    if (gethostname(buf, sizeof(buf)) < 0)
        return xstrdup("localhost");
    buf[sizeof(buf) - 1] = '\0';
    return xstrdup(buf[0] ? buf : "localhost");
}

char *config_host_warning(const struct config *cfg)
{
    char *sys = config_default_host(), *msg = NULL;
    size_t n = strlen(cfg->host);

    if (strcmp(cfg->host, sys) != 0 && strncmp(sys, cfg->host, n) == 0 && sys[n] == '.')
        xasprintf(&msg, "host=%s is the short form of this machine's name %s, which Nova "
                  "takes as its host unless nova.conf sets [DEFAULT] host: if Nova's host "
                  "is %s, vtpmd ignores every notification of this host", cfg->host, sys, sys);
    free(sys);
    return msg;
}

int config_load(const char *path, struct config **out, struct cfg_errors *errs)
{
    void *base;
    struct config *c;
    int ret = cfg_load_new(&config_table, path, &base, errs);

    if (ret < 0)
        return ret;
    c = base;
    if (c->host == NULL)
        c->host = config_default_host();
    c->source = path ? xstrdup(path) : NULL;
    *out = c;
    return 0;
}

void config_free(struct config *cfg)
{
    if (cfg)
        free(cfg->source); /* no key: set after loading */
    /* Frees host too, a key's field even when defaulted after loading. */
    cfg_destroy(&config_table, cfg);
}
