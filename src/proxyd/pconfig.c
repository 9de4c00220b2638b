/* vtpm-proxyd's configuration keys, declared once: the table drives
 * parsing, defaults, validation and the check of docs/vtpm-proxyd.8. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "proxyd/ids.h"
#include "proxyd/pconfig.h"
#include "xalloc.h"

#ifndef PROXYD_STATE_DIR
#define PROXYD_STATE_DIR "/var/lib/vtpm-proxyd"
#endif

#define OFF(f) offsetof(struct pconfig, f)

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};
static const char *const orphan_modes[] = {"report", "delete", NULL};
static const char *const missing_modes[] = {"report", "recreate", NULL};

static void pconfig_validate(struct cfg_ctx *ctx, void *base);

static const struct cfg_key pconfig_keys[] = {
    {.name = "listen", .type = CFG_HOSTPORT, .offset = OFF(listen), .def = "0.0.0.0:8081",
     .flags = CFG_RESTART,
     .help = "Address and port of the REST API (the original proxy's port)."},
    {.name = "tls.cert_file", .type = CFG_PATH, .offset = OFF(tls.cert_file),
     .help = "Server certificate chain (PEM); serves HTTPS when set."},
    {.name = "tls.key_file", .type = CFG_PATH, .offset = OFF(tls.key_file),
     .help = "Server private key (PEM)."},
    {.name = "tls.client_ca_file", .type = CFG_PATH, .offset = OFF(tls.client_ca_file),
     .help = "CA bundle for client certificates; when set, every client must present one it signed."},
    {.name = "tls.bind_host", .type = CFG_BOOL, .offset = OFF(tls.bind_host), .def = "true",
     .help = "With tls.client_ca_file: a client certificate may act only for the host it names (a subjectAltName DNS name, else its CN): the host of a POST, the recorded host of a GET or DELETE, and lists show only that host's vTPMs."},
    {.name = "tls.handshake_timeout", .type = CFG_DURATION, .offset = OFF(tls.handshake_timeout_ms),
     .def = "10s", .min = 1000, .max = 600 * 1000,
     .help = "A TLS handshake must finish within this long of the connection."},
    {.name = "max_connections", .type = CFG_INT, .offset = OFF(max_connections),
     .def = "256", .min = 1, .max = 100000,
     .help = "Open connections allowed, TLS handshakes included; beyond it a client gets 503 (HTTPS: a close) at once."},
    {.name = "idle_timeout", .type = CFG_DURATION, .offset = OFF(idle_timeout_ms),
     .def = "30s", .min = 1000, .max = 3600 * 1000,
     .help = "A connection without a request in progress is closed after this long."},
    {.name = "header_timeout", .type = CFG_DURATION, .offset = OFF(header_timeout_ms),
     .def = "10s", .min = 1000, .max = 3600 * 1000,
     .help = "A request must arrive whole within this long of its first byte."},
    {.name = "request_timeout", .type = CFG_DURATION, .offset = OFF(request_timeout_ms),
     .def = "60s", .min = 1000, .max = 3600 * 1000,
     .help = "A request must be answered within this long, or its connection is closed."},
    {.name = "vtpmmgr.device", .type = CFG_PATH, .offset = OFF(vtpmmgr.device), .def = "/dev/tpm0",
     .flags = CFG_RESTART,
     .help = "The device that reaches vtpmmgr: this VM's vTPM (any character device or pty)."},
    {.name = "vtpmmgr.group", .type = CFG_STRING, .offset = OFF(vtpmmgr.group),
     .help = "UUID of the vtpmmgr group to create vTPMs in; default: the group at index 0."},
    {.name = "vtpmmgr.timeout", .type = CFG_DURATION, .offset = OFF(vtpmmgr.timeout_ms),
     .def = "5s", .min = 100, .max = 600 * 1000,
     .help = "Time allowed for one vtpmmgr command, from sending it to the last byte of its answer."},
    {.name = "state_dir", .type = CFG_PATH, .offset = OFF(state_dir), .def = PROXYD_STATE_DIR,
     .flags = CFG_RESTART,
     .help = "Durable instance-to-vTPM records (created 0700)."},
    {.name = "orphans", .type = CFG_ENUM, .offset = OFF(orphans), .def = "report",
     .choices = orphan_modes,
     .help = "vTPMs of the group that no record accounts for: report, or delete them."},
    {.name = "missing", .type = CFG_ENUM, .offset = OFF(missing), .def = "report",
     .choices = missing_modes,
     .help = "Records whose vTPM vtpmmgr no longer has: report, or recreate them with the same UUID."},
    {.name = "log.level", .type = CFG_ENUM, .offset = OFF(log.level), .def = "info",
     .choices = log_levels,
     .help = "error, warning, info or debug."},
    {.name = "log.target", .type = CFG_ENUM, .offset = OFF(log.target), .def = "stderr",
     .choices = log_targets,
     .help = "stderr or syslog."},
};

const struct cfg_table pconfig_table = {
    pconfig_keys, sizeof(pconfig_keys) / sizeof(pconfig_keys[0]),
    sizeof(struct pconfig), pconfig_validate,
};

static void pconfig_validate(struct cfg_ctx *ctx, void *base)
{
    struct pconfig *c = base;
    uint8_t u[16];

    if (c->vtpmmgr.group && ids_parse_uuid(c->vtpmmgr.group, u) < 0)
        cfg_error(ctx, cfg_key_pos(ctx, "vtpmmgr.group"),
                  "vtpmmgr.group: '%s' is not a UUID", c->vtpmmgr.group);
    if ((c->tls.cert_file == NULL) != (c->tls.key_file == NULL))
        cfg_error(ctx, cfg_key_pos(ctx, c->tls.cert_file ? "tls.cert_file" : "tls.key_file"),
                  "tls: cert_file and key_file go together");
    if (c->tls.key_file) {
        struct stat st;

        /* Like vtpmd's rule for files holding passwords, stricter: a key
         * anyone else can read lets them impersonate this service. */
        if (stat(c->tls.key_file, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
            cfg_error(ctx, cfg_key_pos(ctx, "tls.key_file"),
                      "tls.key_file: %s is readable by group or others (mode %04o); "
                      "refusing a private key others can read (chmod 0600)",
                      c->tls.key_file, (unsigned)(st.st_mode & 07777));
    }
    if (c->tls.client_ca_file && c->tls.cert_file == NULL)
        cfg_error(ctx, cfg_key_pos(ctx, "tls.client_ca_file"),
                  "tls.client_ca_file: client certificates need HTTPS "
                  "(tls.cert_file and tls.key_file)");
}

int pconfig_load(const char *path, struct pconfig **out, struct cfg_errors *errs)
{
    void *base;
    struct pconfig *c;
    int ret = cfg_load_new(&pconfig_table, path, &base, errs);

    if (ret < 0)
        return ret;
    c = base;
    if (c->vtpmmgr.group) {
        ids_parse_uuid(c->vtpmmgr.group, c->group_uuid); /* validated */
        c->has_group = true;
    }
    c->source = path ? xstrdup(path) : NULL;
    *out = c;
    return 0;
}

void pconfig_free(struct pconfig *cfg)
{
    if (cfg)
        free(cfg->source);
    cfg_destroy(&pconfig_table, cfg);
}
