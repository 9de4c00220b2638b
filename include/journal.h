/* Durable per-instance records in state_dir.
 *
 * Logically one record per instance (desired state, reached step, vTPM
 * UUID, image, domain, rule, last error); the latest record wins. On disk
 * an append-only log (state_dir/journal), one checksummed JSON line per
 * record, written by a thread that groups every record queued meanwhile
 * into one write and one fdatasync (group commit): a burst of creates
 * costs one fsync per batch, not per instance. The log is compacted into
 * a snapshot written atomically (temp file, fsync, rename, fsync dir);
 * a torn last line (crash mid-write) is detected by its checksum and cut
 * off at load: such a record was never reported durable. */
#ifndef VTPMD_JOURNAL_H
#define VTPMD_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "uuidutil.h"

struct event_base;
struct journal;

enum journal_state {
    JOURNAL_PROVISIONING = 0, /* desired present, not reached yet */
    JOURNAL_READY,            /* domain defined and running, status published */
    JOURNAL_FAILED,           /* gave up creating (rolled back) */
    JOURNAL_DELETING,         /* desired absent, teardown under way */
    JOURNAL_DELETE_FAILED,    /* teardown gave up: something may remain */
    JOURNAL_DELETED,          /* tombstone: gone; late creates must not resurrect */
};

struct journal_record {
    char instance_uuid[UUIDUTIL_BUFLEN];
    enum journal_state state;
    char vtpm_uuid[UUIDUTIL_BUFLEN];   /* "" when none */
    char *domain_name;    /* NULL when unknown */
    char *image_path;
    char *rule;
    char *instance_name;
    char *request_id;
    char *error;
    uint64_t image_size;
    uint64_t memory;      /* stub domain memory, bytes */
    char *kernel;         /* stub domain kernel */
    time_t updated;
};

const char *journal_state_name(enum journal_state s);
int journal_state_parse(const char *s, enum journal_state *out);

void journal_record_clear(struct journal_record *r);
void journal_record_copy(struct journal_record *dst, const struct journal_record *src);

/* Called on the loop when a record is durable (0) or failed (-errno). */
typedef void (*journal_done_fn)(int ret, void *arg);

/* Opens (creating state_dir 0700 if needed) and loads the journal.
 * Tombstones older than tombstone_ttl seconds are dropped. */
int journal_open(struct event_base *base, const char *state_dir,
                 time_t tombstone_ttl, struct journal **out, char **err);
/* The records loaded at open (latest per instance), valid until the
 * first journal_put. */
void journal_loaded(const struct journal *j, const struct journal_record **recs,
                    size_t *n);
/* Queues rec (copied) for the next group commit; done runs on the loop. */
void journal_put(struct journal *j, const struct journal_record *rec,
                 journal_done_fn done, void *arg);
/* Writes what is queued, stops the thread, frees. Pending callbacks are
 * not called. */
void journal_free(struct journal *j);

struct journal_stats {
    uint64_t records, batches, syncs, compactions, torn_tails;
    size_t live;
};
void journal_get_stats(struct journal *j, struct journal_stats *out);

#endif
