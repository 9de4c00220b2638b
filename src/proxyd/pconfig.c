/* vtpm-proxyd's configuration keys, declared once: the table drives
 * parsing, defaults, validation and the check of docs/vtpm-proxyd.8. */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

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
    {"listen", CFG_HOSTPORT, OFF(listen), "0.0.0.0:8081", 0, 0, NULL, 0, NULL,
     "Address and port of the REST API (the original proxy's port)."},
    {"tls.cert_file", CFG_PATH, OFF(tls.cert_file), NULL, 0, 0, NULL, 0, NULL,
     "Server certificate chain (PEM); serves HTTPS when set."},
    {"tls.key_file", CFG_PATH, OFF(tls.key_file), NULL, 0, 0, NULL, 0, NULL,
     "Server private key (PEM)."},
    {"tls.client_ca_file", CFG_PATH, OFF(tls.client_ca_file), NULL, 0, 0, NULL, 0, NULL,
     "CA bundle for client certificates; when set, every client must present one it signed."},
    {"vtpmmgr.device", CFG_PATH, OFF(vtpmmgr.device), "/dev/tpm0", 0, 0, NULL, 0, NULL,
     "The device that reaches vtpmmgr: this VM's vTPM (any character device or pty)."},
    {"vtpmmgr.group", CFG_STRING, OFF(vtpmmgr.group), NULL, 0, 0, NULL, 0, NULL,
     "UUID of the vtpmmgr group to create vTPMs in; default: the group at index 0."},
    {"vtpmmgr.timeout", CFG_DURATION, OFF(vtpmmgr.timeout_ms), "5s", 100, 600 * 1000, NULL, 0, NULL,
     "Time allowed for one vtpmmgr command, from sending it to the last byte of its answer."},
    {"state_dir", CFG_PATH, OFF(state_dir), PROXYD_STATE_DIR, 0, 0, NULL, 0, NULL,
     "Durable instance-to-vTPM records (created 0700)."},
    {"orphans", CFG_ENUM, OFF(orphans), "report", 0, 0, orphan_modes, 0, NULL,
     "vTPMs of the group that no record accounts for: report, or delete them."},
    {"missing", CFG_ENUM, OFF(missing), "report", 0, 0, missing_modes, 0, NULL,
     "Records whose vTPM vtpmmgr no longer has: report, or recreate them with the same UUID."},
    {"log.level", CFG_ENUM, OFF(log.level), "info", 0, 0, log_levels, 0, NULL,
     "error, warning, info or debug."},
    {"log.target", CFG_ENUM, OFF(log.target), "stderr", 0, 0, log_targets, 0, NULL,
     "stderr or syslog."},
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
    if (c->tls.client_ca_file && c->tls.cert_file == NULL)
        cfg_error(ctx, cfg_key_pos(ctx, "tls.client_ca_file"),
                  "tls.client_ca_file: client certificates need HTTPS "
                  "(tls.cert_file and tls.key_file)");
}

int pconfig_load(const char *path, struct pconfig **out, struct cfg_errors *errs)
{
    struct pconfig *c = xcalloc(1, sizeof(*c));
    int ret;

    ret = cfg_load(&pconfig_table, path, c, errs);
    if (ret < 0) {
        free(c);
        return ret;
    }
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
    if (cfg == NULL)
        return;
    cfg_free(&pconfig_table, cfg);
    free(cfg->source);
    free(cfg);
}
