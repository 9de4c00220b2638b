/* vtpmd's configuration: the contract's key set (docs/vtpmd.yaml.5),
 * declared once in src/vconfig.c's table. */
#ifndef VTPMD_CONFIG_H
#define VTPMD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"

enum vtpmmgr_provider {
    VTPMMGR_PROVIDER_KEYLIME_PROXY = 0,
    VTPMMGR_PROVIDER_LOCAL,
};

enum vtpmmgr_api {
    VTPMMGR_API_V1 = 0,
    VTPMMGR_API_LEGACY,
};

enum policy_default {
    POLICY_DEFAULT_ALLOW = 0,
    POLICY_DEFAULT_DENY,
};

enum log_target_cfg {
    LOG_TARGET_CFG_STDERR = 0,
    LOG_TARGET_CFG_SYSLOG,
};

struct tls_config {
    char *ca_file;
    char *cert_file;
    char *key_file;
    bool verify_peer;
    bool verify_hostname;
};

/* One policy rule: every match key that is given must hold. A strlist or
 * globmap with n == 0 was not given. vtpm.* overrides are 0/NULL when not
 * given (the global setting applies). */
struct config_rule {
    char *name;
    struct strlist project_id;
    struct strlist flavor;
    struct strlist host;
    struct globmap flavor_extra_specs;
    struct globmap image_properties;
    struct globmap metadata;
    uint64_t image_size;
    uint64_t memory;
    char *kernel;
    char *domain_name;
};

struct config {
    char *host;
    char *state_dir;

    struct {
        int level; /* enum log_level */
        int target; /* enum log_target_cfg */
    } log;

    struct {
        struct strlist urls;
        uint64_t heartbeat_ms;
        int64_t prefetch;
        uint64_t connect_timeout_ms;
        uint64_t reconnect_max_ms;
        struct tls_config tls;
    } amqp;

    struct {
        char *exchange;
        struct strlist topics;
        char *queue; /* template, may contain {host} */
        char *dead_letter_exchange;
        uint64_t max_message_size;
    } notifications;

    struct {
        char *exchange;
        char *topic;
        int64_t outbox_limit;
    } status;

    struct {
        int provider; /* enum vtpmmgr_provider */
        char *url;
        int api; /* enum vtpmmgr_api */
        uint64_t timeout_ms;
        uint64_t retry_for_ms;
        struct tls_config tls;
    } vtpmmgr;

    struct {
        char *dir;
        uint64_t size;
        int64_t spares;
    } image;

    struct {
        char *uri;
        char *domain_name; /* template: {uuid}, {instance_name} */
        char *kernel;
        uint64_t memory;
        char *vtpmmgr_domain;
        int64_t workers;
        bool require_vtpm; /* refuse stub domains libvirt keeps no <vtpm> in */
    } libvirt;

    struct {
        char *socket;
        char *metrics_listen;
        int64_t max_connections;
        uint64_t idle_timeout_ms;
        uint64_t header_timeout_ms;
        uint64_t request_timeout_ms;
        int64_t max_waiters;
    } control;

    struct {
        uint64_t interval_ms; /* 0: only at start-up and libvirt reconnects */
        int64_t restart_limit;
    } reconcile;

    struct {
        int dflt; /* enum policy_default */
        struct cfg_list rules; /* struct config_rule */
    } policy;

    char *source; /* the file it was loaded from, or NULL */
    /* where these keys were given, for config_check_paths' errors */
    struct cfg_pos control_socket_pos, image_dir_pos;
};

/* The key table (for the man page test and docs). */
extern const struct cfg_table config_table;

/* Loads path (NULL: defaults only) into a new config. 0 or -EINVAL with
 * errs filled ("FILE:LINE:COL: message"). */
int config_load(const char *path, struct config **out,
                 struct cfg_errors *errs);
void config_free(struct config *cfg);

/* The checks start-up makes of the paths vtpmd trusts, for -t and start
 * (not for vtpmctl, which may run as another user): image.dir as
 * image_create checks it, and the control socket's directory: owned by
 * vtpmd's user, a directory (not a symlink), not writable by others, and
 * group-writable only by vtpmd's own group. Missing directories pass (vtpmd
 * makes them). 0 or -EINVAL with "FILE:LINE:COL: key: message" in errs. */
int config_check_paths(const struct config *cfg, struct cfg_errors *errs);

static inline const struct config_rule *
config_rule_at(const struct config *cfg, size_t i)
{
    return &((const struct config_rule *)cfg->policy.rules.items)[i];
}

/* host's default, malloc'ed: gethostname() as it is, which is what Nova
 * takes by default (socket.gethostname()). */
char *config_default_host(void);
/* A warning (malloc'ed) when host does not look like what Nova uses:
 * the short form of this machine's fully qualified name; else NULL. */
char *config_host_warning(const struct config *cfg);

/* Expands "{host}" in a template (notifications.queue). */
char *config_expand_host(const char *tmpl, const char *host);

#endif
