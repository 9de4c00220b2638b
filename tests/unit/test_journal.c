/* journal: durability callbacks, reload, group commit, torn tails,
 * corruption, tombstone expiry, compaction. Real files in a temp dir. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "journal.h"
#include "xalloc.h"

struct fixture {
    char dir[64];
    struct event_base *base;
    int done, failed, expected;
};

static void done_cb(int ret, void *arg)
{
    struct fixture *f = arg;

    if (ret == 0)
        f->done++;
    else
        f->failed++;
    if (f->done + f->failed >= f->expected)
        event_base_loopbreak(f->base);
}

static void make_rec(struct journal_record *r, int i, enum journal_state st)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->instance_uuid, sizeof(r->instance_uuid),
             "00000000-0000-4000-8000-%012d", i);
    snprintf(r->vtpm_uuid, sizeof(r->vtpm_uuid), "11111111-0000-4000-8000-%012d", i);
    r->state = st;
    r->rule = (char *)"rule-\"quoted\"\n";
    r->domain_name = (char *)"vtpm-x";
    r->image_path = (char *)"/tmp/x.img";
    r->image_size = 2097152;
}

static void put_and_wait(struct fixture *f, struct journal *j, int from, int to,
                         enum journal_state st)
{
    f->done = f->failed = 0;
    f->expected = to - from;
    for (int i = from; i < to; i++) {
        struct journal_record r;
        make_rec(&r, i, st);
        journal_put(j, &r, done_cb, f);
    }
    {
        /* Keeps the loop alive while the writer thread works. */
        struct timeval tv = {30, 0};
        struct event *guard = evtimer_new(f->base, NULL, NULL);
        evtimer_add(guard, &tv);
        event_base_dispatch(f->base);
        event_free(guard);
    }
    assert_int_equal(f->done, to - from);
    assert_int_equal(f->failed, 0);
}

static struct journal *reopen(struct fixture *f, time_t ttl)
{
    struct journal *j = NULL;
    char *err = NULL;

    if (journal_open(f->base, f->dir, ttl, &j, &err) < 0)
        fail_msg("journal_open: %s", err);
    return j;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/vtpmd-journal-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->base = event_base_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *p;

    xasprintf(&p, "%s/journal", f->dir);
    unlink(p);
    free(p);
    xasprintf(&p, "%s/journal.tmp", f->dir);
    unlink(p);
    free(p);
    rmdir(f->dir);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void test_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct journal *j = reopen(f, 3600);
    const struct journal_record *recs;
    size_t n;
    struct journal_stats st;
    struct stat sb;
    char *path;

    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 0);
    put_and_wait(f, j, 0, 200, JOURNAL_PROVISIONING);
    put_and_wait(f, j, 0, 100, JOURNAL_READY);
    journal_get_stats(j, &st);
    assert_int_equal(st.records, 300);
    /* Group commit: fewer fsyncs than records. */
    assert_true(st.syncs < st.records);
    journal_free(j);

    xasprintf(&path, "%s/journal", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    free(path);

    j = reopen(f, 3600);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 200);
    {
        int ready = 0;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].state == JOURNAL_READY)
                ready++;
            assert_string_equal(recs[i].rule, "rule-\"quoted\"\n");
            assert_int_equal(recs[i].image_size, 2097152);
            assert_int_equal(strncmp(recs[i].vtpm_uuid, "11111111-", 9), 0);
        }
        assert_int_equal(ready, 100);
    }
    journal_free(j);
}

static void append_raw(struct fixture *f, const char *text)
{
    char *path;
    FILE *fp;

    xasprintf(&path, "%s/journal", f->dir);
    fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(path);
}

static void test_torn_tail(void **state)
{
    struct fixture *f = *state;
    struct journal *j = reopen(f, 3600);
    const struct journal_record *recs;
    size_t n;

    put_and_wait(f, j, 0, 3, JOURNAL_READY);
    journal_free(j);
    append_raw(f, "deadbeef {\"instance\":\"00000000-0000-4000-8000-0000000");
    j = reopen(f, 3600);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 3);
    /* Appends after the cut land on a clean line boundary. */
    put_and_wait(f, j, 3, 4, JOURNAL_READY);
    journal_free(j);
    j = reopen(f, 3600);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 4);
    journal_free(j);
}

static void test_corrupt_middle(void **state)
{
    struct fixture *f = *state;
    struct journal *j = reopen(f, 3600);
    const struct journal_record *recs;
    size_t n;

    put_and_wait(f, j, 0, 2, JOURNAL_READY);
    journal_free(j);
    append_raw(f, "00000000 {\"instance\":\"bad\"}\n");
    append_raw(f, "not a record at all\n");
    j = reopen(f, 3600);
    put_and_wait(f, j, 2, 3, JOURNAL_READY);
    journal_free(j);
    j = reopen(f, 3600);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 3);
    journal_free(j);
}

static void test_tombstones(void **state)
{
    struct fixture *f = *state;
    struct journal *j = reopen(f, 3600);
    const struct journal_record *recs;
    size_t n;

    put_and_wait(f, j, 0, 5, JOURNAL_DELETED);
    journal_free(j);
    j = reopen(f, 3600);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 5); /* fresh tombstones are kept */
    assert_int_equal(recs[0].state, JOURNAL_DELETED);
    journal_free(j);
    sleep(2);
    j = reopen(f, 1);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 0); /* expired ones are dropped */
    journal_free(j);
}

static void test_compaction(void **state)
{
    struct fixture *f = *state;
    struct journal *j = reopen(f, 3600);
    struct journal_stats st;
    const struct journal_record *recs;
    size_t n;

    for (int round = 0; round < 12; round++)
        put_and_wait(f, j, 0, 200, round % 2 ? JOURNAL_READY : JOURNAL_PROVISIONING);
    journal_get_stats(j, &st);
    assert_true(st.compactions >= 1);
    assert_int_equal(st.live, 200);
    journal_free(j);
    j = reopen(f, 3600);
    journal_loaded(j, &recs, &n);
    assert_int_equal(n, 200);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(recs[i].state, JOURNAL_READY);
    journal_free(j);
}

static void test_bad_dir(void **state)
{
    struct fixture *f = *state;
    struct journal *j = NULL;
    char *err = NULL, *link;

    xasprintf(&link, "%s/link", f->dir);
    assert_int_equal(symlink("/tmp", link), 0);
    assert_true(journal_open(f->base, link, 3600, &j, &err) < 0);
    assert_non_null(strstr(err, "not a directory"));
    free(err);
    unlink(link);
    free(link);
    assert_int_equal(chmod(f->dir, 0777), 0);
    err = NULL;
    assert_true(journal_open(f->base, f->dir, 3600, &j, &err) < 0);
    assert_non_null(strstr(err, "group/world-writable"));
    free(err);
    assert_int_equal(chmod(f->dir, 0700), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_dir, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
