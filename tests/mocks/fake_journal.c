/* Fake of the journal: the records it loads are the test's; a write is
 * traced with its state and answers on a later step. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fakes.h"
#include "journal.h"
#include "xalloc.h"

static struct journal_record *recs;
static size_t nrecs;

void fake_journal_load(const struct journal_record *r)
{
    recs = xreallocarray(recs, nrecs + 1, sizeof(*recs));
    memset(&recs[nrecs], 0, sizeof(*recs));
    journal_record_copy(&recs[nrecs], r);
    nrecs++;
}

void fake_journal_reset(void);
void fake_journal_reset(void)
{
    for (size_t i = 0; i < nrecs; i++)
        journal_record_clear(&recs[i]);
    free(recs);
    recs = NULL;
    nrecs = 0;
}

void __wrap_journal_loaded(const struct journal *j, const struct journal_record **out,
                           size_t *n);
void __wrap_journal_loaded(const struct journal *j, const struct journal_record **out,
                           size_t *n)
{
    (void)j;
    *out = recs;
    *n = nrecs;
}

struct write {
    journal_done_fn done;
    void *arg;
};

static void write_fire(void *arg)
{
    const struct write *w = arg;

    w->done((int)_mock(FAKE_JOURNAL, __FILE__, __LINE__), w->arg);
}

void __wrap_journal_put(struct journal *j, const struct journal_record *rec,
                        journal_done_fn done, void *arg);
void __wrap_journal_put(struct journal *j, const struct journal_record *rec,
                        journal_done_fn done, void *arg)
{
    struct write w = {done, arg};

    (void)j;
    fake_trace("journal:%s", journal_state_name(rec->state));
    fake_defer(write_fire, &w, sizeof(w));
}
