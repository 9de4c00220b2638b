/* Table-driven YAML configuration engine shared by vtpmd and vtpm-proxyd.
 *
 * A program declares its keys once (struct cfg_key: dotted name, type,
 * offset into its configuration struct, default, bounds, help); that table
 * drives parsing, defaults, validation, freeing and the man page check.
 * Errors carry FILE:LINE:COL and the key. */
#ifndef VTPMD_CFG_H
#define VTPMD_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strlist {
    size_t n;
    char **v;
};

struct globmap_entry {
    char *key;
    struct strlist pats;
};

/* A YAML map of name -> glob pattern or list of patterns. */
struct globmap {
    size_t n;
    struct globmap_entry *v;
};

struct cfg_pos {
    int line, col; /* 1-based; 0 when the value came from a default */
};

/* A YAML sequence of maps, each parsed with a sub-table into items. */
struct cfg_list {
    size_t n;
    void *items; /* n elements of the sub-table's struct_size */
    struct cfg_pos *pos; /* where each item starts */
};

enum cfg_type {
    CFG_STRING,      /* char *; NULL when unset */
    CFG_PATH,        /* char *; absolute path required */
    CFG_BOOL,        /* bool */
    CFG_INT,         /* int64_t within [min, max] */
    CFG_DURATION,    /* uint64_t milliseconds: 30, 500ms, 10s, 5m, 1h */
    CFG_SIZE,        /* uint64_t bytes: 2097152, 2MiB, 512KiB, 1GiB */
    CFG_ENUM,        /* int: index into choices */
    CFG_URL,         /* char *; scheme in choices */
    CFG_URL_LIST,    /* struct strlist of URLs */
    CFG_STRING_LIST, /* struct strlist */
    CFG_GLOBS,       /* struct strlist from a scalar or a list */
    CFG_GLOBMAP,     /* struct globmap */
    CFG_HOSTPORT,    /* char * "host:port" or "[v6]:port" */
    CFG_LIST,        /* struct cfg_list of maps, sub-table */
};

#define CFG_REQUIRED 0x1u /* no default: must be given */
#define CFG_SECRET 0x2u   /* the value is a secret (file mode check) */
/* Read at start only: a reload keeps the running value and warns when the
 * file changed it (cfg_restart_changed). Scalars and string lists only. */
#define CFG_RESTART 0x4u

struct cfg_table;

struct cfg_key {
    const char *name; /* dotted path: "amqp.tls.ca_file" */
    enum cfg_type type;
    size_t offset;
    const char *def; /* default, in the same syntax as the file; NULL: none */
    int64_t min, max; /* list types: min = least number of items */
    const char *const *choices; /* NULL-terminated: enum names, URL schemes */
    unsigned flags;
    const struct cfg_table *sub; /* CFG_LIST */
    const char *help;
};

struct cfg_ctx;

struct cfg_table {
    const struct cfg_key *keys;
    size_t nkeys;
    size_t struct_size;
    /* Cross-key checks after parsing; report with cfg_error(). */
    void (*validate)(struct cfg_ctx *ctx, void *base);
};

/* Accumulated "FILE:LINE:COL: message" lines. */
struct cfg_errors {
    size_t n;
    char **msgs;
};

/* Loads path with table into base (zeroed struct_size bytes, owned by the
 * caller). Returns 0, or -EINVAL with every problem in errs; base is then
 * already freed with cfg_free(). path NULL: defaults only. */
int cfg_load(const struct cfg_table *table, const char *path, void *base,
             struct cfg_errors *errs);
/* Same, from a buffer (name is used in messages). */
int cfg_load_buffer(const struct cfg_table *table, const char *name,
                    const char *buf, size_t len, void *base,
                    struct cfg_errors *errs);
/* cfg_load into a new zeroed struct of table->struct_size bytes: *out
 * (free it with cfg_destroy()), or -EINVAL with errs. */
int cfg_load_new(const struct cfg_table *table, const char *path, void **out,
                 struct cfg_errors *errs);
/* cfg_free() and free(base); NULL is fine. */
void cfg_destroy(const struct cfg_table *table, void *base);
void cfg_free(const struct cfg_table *table, void *base);
void cfg_errors_free(struct cfg_errors *errs);

/* Where a key was set in the file ({0,0} for defaults): for validators. */
struct cfg_pos cfg_key_pos(struct cfg_ctx *ctx, const char *key);
void cfg_error(struct cfg_ctx *ctx, struct cfg_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Value parsers, exported for tests and other modules (durations in
 * control query strings and so on). 0 or -EINVAL. */
int cfg_parse_duration(const char *s, uint64_t *ms);
int cfg_parse_size(const char *s, uint64_t *bytes);
int cfg_parse_bool(const char *s, bool *out);
/* Checks a URL "scheme://[user[:pass]@]host[:port][/path]" with scheme
 * in schemes; sets *has_password. Returns NULL or a static reason. */
const char *cfg_check_url(const char *url, const char *const *schemes,
                          bool *has_password);
const char *cfg_check_hostport(const char *s);

/* Calls changed(k, running, arg) for every CFG_RESTART key of table whose
 * value differs between running and next (two loaded configurations);
 * running_value is the running one as text. Returns how many differ. */
typedef void (*cfg_changed_fn)(const struct cfg_key *k, const char *running_value, void *arg);
size_t cfg_restart_changed(const struct cfg_table *table, const void *running,
                           const void *next, cfg_changed_fn changed, void *arg);
/* Whether cfg_restart_changed can compare keys of type t. */
bool cfg_type_comparable(enum cfg_type t);

void strlist_free(struct strlist *l);
void strlist_push(struct strlist *l, const char *s);
void globmap_free(struct globmap *m);

#endif
