/* vtpm-proxyd's durable records: which vTPM UUID it made, for which
 * instance and host, and when. One JSON file per vTPM in
 * <state_dir>/vtpms/<uuid>.json, each written atomically (temporary file,
 * fsync, rename, fsync of the directory) before the vTPM is announced.
 *
 * The file functions (store_write, store_unlink) touch no shared state and
 * run on the job thread; the in-memory index (struct store) belongs to
 * the loop's thread. */
#ifndef PROXYD_STORE_H
#define PROXYD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/ids.h"

enum store_state {
    STORE_READY = 0,
    STORE_DELETING, /* VTPM_DEL sent or about to be: never re-create it */
};

struct store_rec {
    uint8_t uuid[16];      /* the vTPM */
    bool has_instance;     /* false: made by the legacy GET / */
    uint8_t instance[16];
    char host[IDS_HOST_MAX + 1]; /* "" when not known (legacy) */
    int64_t created_at;    /* seconds since the epoch */
    enum store_state state;
};

/* File side. create: the record must not exist yet (-EEXIST). */
int store_write(const char *dir, const struct store_rec *r, bool create,
                const char **why);
int store_unlink(const char *dir, const uint8_t *uuid, const char **why);
/* Whether the record file exists. */
bool store_exists(const char *dir, const uint8_t *uuid);
/* Reads every record file of dir into a new array (caller frees). tidy:
 * remove the temporary files of interrupted writes. A file that cannot be
 * read or parsed is logged and makes it fail with -EINVAL. */
int store_scan(const char *dir, bool tidy, struct store_rec **out, size_t *n);
/* One record file's contents (exposed for tests). */
int store_parse(const char *name, const char *buf, size_t len,
                struct store_rec *r, const char **why);

/* Index side. Creates state_dir (0700) and its vtpms/ directory, takes
 * an exclusive lock (one service per state_dir), loads every record. A
 * record file that cannot be read is an error: a lost record would turn
 * a live vTPM into an orphan. Errors are logged; -errno. */
struct store;
int store_open(const char *state_dir, struct store **out);
void store_free(struct store *s);
const char *store_dir(const struct store *s); /* the vtpms/ directory */
const struct store_rec *store_get(const struct store *s, const uint8_t *uuid);
const struct store_rec *store_get_instance(const struct store *s,
                                           const uint8_t *instance);
/* Inserts or replaces (by uuid). */
void store_set(struct store *s, const struct store_rec *r);
void store_del(struct store *s, const uint8_t *uuid);
size_t store_count(const struct store *s);
/* All records, oldest first; the caller frees the array. */
struct store_rec *store_list(const struct store *s, size_t *n);

#endif
