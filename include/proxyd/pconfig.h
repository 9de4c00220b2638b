/* vtpm-proxyd's configuration (the contract's key set, documented in
 * vtpm-proxyd(8)), declared once in src/proxyd/pconfig.c's table and
 * parsed by the shared cfg engine. */
#ifndef PROXYD_PCONFIG_H
#define PROXYD_PCONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"

enum pconfig_orphans {
    PCONFIG_ORPHANS_REPORT = 0,
    PCONFIG_ORPHANS_DELETE,
};

enum pconfig_missing {
    PCONFIG_MISSING_REPORT = 0,
    PCONFIG_MISSING_RECREATE,
};

enum pconfig_log_target {
    PCONFIG_LOG_STDERR = 0,
    PCONFIG_LOG_SYSLOG,
};

struct pconfig {
    char *listen; /* host:port */
    struct {
        char *cert_file;
        char *key_file;
        char *client_ca_file;
        bool bind_host; /* with client_ca_file: a certificate acts for its own host only */
        uint64_t handshake_timeout_ms;
    } tls;
    int64_t max_connections;
    uint64_t idle_timeout_ms;
    uint64_t header_timeout_ms;
    uint64_t request_timeout_ms;
    struct {
        char *device;
        char *group;  /* the group's UUID as written; NULL: index 0 */
        uint64_t timeout_ms;
    } vtpmmgr;
    char *state_dir;
    int orphans; /* enum pconfig_orphans */
    int missing; /* enum pconfig_missing */
    struct {
        int level;  /* enum log_level */
        int target; /* enum pconfig_log_target */
    } log;

    /* Derived after parsing. */
    bool has_group;
    uint8_t group_uuid[16];
    char *source; /* the file it came from */
};

extern const struct cfg_table pconfig_table;

/* 0, or -EINVAL with every problem in errs ("FILE:LINE:COL: message"). */
int pconfig_load(const char *path, struct pconfig **out, struct cfg_errors *errs);
void pconfig_free(struct pconfig *cfg);

#endif
