/* store: record files written atomically and read back, the leftovers of
 * a crash, corrupt records refusing the start, the one-service lock, and
 * the in-memory index. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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

#include "proxyd/ids.h"
#include "proxyd/store.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/vtpm-proxyd-test-store-XXXXXX";
#include "tmpdir.h"

static struct store_rec mkrec(uint8_t seed, bool inst, int64_t t)
{
    struct store_rec r = {0};

    memset(r.uuid, seed, 16);
    r.uuid[6] = 0x40;
    if (inst) {
        r.has_instance = true;
        memset(r.instance, (uint8_t)(seed + 100), 16);
        snprintf(r.host, sizeof(r.host), "compute-%u.example", seed);
    }
    r.created_at = t;
    r.state = STORE_READY;
    return r;
}

static char *state_dir(const char *name)
{
    char *d;

    xasprintf(&d, "%s/%s", tmpdir, name);
    return d;
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char *p;
    FILE *f;

    xasprintf(&p, "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static void test_roundtrip(void **state)
{
    char *sd = state_dir("rt");
    struct store *s = NULL;
    struct store_rec a = mkrec(1, true, 1700000000), b = mkrec(2, false, 1600000000);
    const struct store_rec *g;
    struct store_rec *list;
    const char *why = "";
    struct stat st;
    char *path, u[IDS_UUID_STR];
    size_t n;

    assert_int_equal(store_open(sd, &s), 0);
    assert_int_equal(store_count(s), 0);
    assert_int_equal(stat(sd, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(store_write(store_dir(s), &a, true, &why), 0);
    assert_int_equal(store_write(store_dir(s), &b, true, &why), 0);
    /* A second record for the same vTPM UUID is refused. */
    assert_int_equal(store_write(store_dir(s), &a, true, &why), -EEXIST);
    assert_true(store_exists(store_dir(s), a.uuid));
    ids_format_uuid(a.uuid, u);
    xasprintf(&path, "%s/%s.json", store_dir(s), u);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(path);
    store_free(s);

    /* Read back by a new service. */
    assert_int_equal(store_open(sd, &s), 0);
    assert_int_equal(store_count(s), 2);
    g = store_get(s, a.uuid);
    assert_non_null(g);
    assert_memory_equal(g, &a, sizeof(a));
    g = store_get_instance(s, a.instance);
    assert_non_null(g);
    assert_memory_equal(g->uuid, a.uuid, 16);
    g = store_get(s, b.uuid);
    assert_non_null(g);
    assert_false(g->has_instance);
    assert_string_equal(g->host, "");
    list = store_list(s, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(list[0].uuid, b.uuid, 16); /* oldest first */
    free(list);

    /* Replace in place (deleting), then drop. */
    a.state = STORE_DELETING;
    assert_int_equal(store_write(store_dir(s), &a, false, &why), 0);
    store_set(s, &a);
    assert_int_equal(store_get(s, a.uuid)->state, STORE_DELETING);
    assert_int_equal(store_count(s), 2);
    assert_int_equal(store_unlink(store_dir(s), a.uuid, &why), 0);
    assert_false(store_exists(store_dir(s), a.uuid));
    assert_int_equal(store_unlink(store_dir(s), a.uuid, &why), 0); /* idempotent */
    store_del(s, a.uuid);
    assert_null(store_get(s, a.uuid));
    assert_null(store_get_instance(s, a.instance));
    assert_int_equal(store_count(s), 1);
    store_free(s);
    free(sd);
}

static void test_lock(void **state)
{
    char *sd = state_dir("lock");
    struct store *s = NULL, *t = NULL;

    assert_int_equal(store_open(sd, &s), 0);
    assert_true(store_open(sd, &t) < 0); /* one service per state_dir */
    store_free(s);
    assert_int_equal(store_open(sd, &t), 0);
    store_free(t);
    free(sd);
}

static void test_leftovers(void **state)
{
    char *sd = state_dir("left"), *tmp;
    struct store *s = NULL;
    struct store_rec a = mkrec(3, true, 1700000000);
    const char *why;

    assert_int_equal(store_open(sd, &s), 0);
    assert_int_equal(store_write(store_dir(s), &a, true, &why), 0);
    /* A crash mid-write leaves a temporary file; a stray file is ignored. */
    put_file(store_dir(s), ".44444444-4444-4444-4444-444444444444.tmp", "{\"ver");
    put_file(store_dir(s), "README", "not a record");
    xasprintf(&tmp, "%s/.44444444-4444-4444-4444-444444444444.tmp", store_dir(s));
    store_free(s);
    assert_int_equal(store_open(sd, &s), 0);
    assert_int_equal(store_count(s), 1);
    assert_int_equal(access(tmp, F_OK), -1);
    store_free(s);
    free(tmp);
    free(sd);
}

static void test_corrupt(void **state)
{
    static const char *bad[] = {
        "{\"version\": 1, \"uuid\": \"55555555-5555-4555-8555-55555555",
        "[]",
        "{\"version\": 2, \"uuid\": \"55555555-5555-4555-8555-555555555555\", "
        "\"created_at\": \"2026-01-01T00:00:00Z\", \"state\": \"ready\"}",
        "{\"version\": 1, \"uuid\": \"66666666-5555-4555-8555-555555555555\", "
        "\"created_at\": \"2026-01-01T00:00:00Z\", \"state\": \"ready\"}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *sd, name[16];
        struct store *s = NULL;

        snprintf(name, sizeof(name), "bad%zu", i);
        sd = state_dir(name);
        assert_int_equal(store_open(sd, &s), 0);
        put_file(store_dir(s), "55555555-5555-4555-8555-555555555555.json", bad[i]);
        store_free(s);
        /* A record that cannot be read must stop the start: losing it
         * would make its vTPM an orphan, which orphans: delete removes. */
        s = NULL;
        assert_true(store_open(sd, &s) < 0);
        assert_null(s);
        free(sd);
    }
}

static void test_parse(void **state)
{
    struct store_rec r;
    const char *why = "";
    const char *good = "{\"version\": 1, \"uuid\": \"55555555-5555-4555-8555-555555555555\","
                       " \"instance_uuid\": \"AAAAAAAA-5555-4555-8555-555555555555\","
                       " \"host\": \"cmp-1\", \"created_at\": \"2026-01-02T03:04:05Z\","
                       " \"state\": \"deleting\"}";
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"{\"version\": 1, \"uuid\": 5}", "uuid"},
        {"{\"version\": 1, \"version\": 1}", "JSON"},
        {"{\"version\": 1, \"uuid\": \"55555555-5555-4555-8555-555555555555\", "
         "\"instance_uuid\": \"x\"}", "instance_uuid"},
        {"{\"version\": 1, \"uuid\": \"55555555-5555-4555-8555-555555555555\", "
         "\"host\": \"a b\"}", "host"},
        {"{\"version\": 1, \"uuid\": \"55555555-5555-4555-8555-555555555555\", "
         "\"created_at\": \"2026-01-02 03:04:05\"}", "created_at"},
        {"{\"version\": 1, \"uuid\": \"55555555-5555-4555-8555-555555555555\", "
         "\"created_at\": \"2026-01-02T03:04:05Z\", \"state\": \"gone\"}", "state"},
    };

    assert_int_equal(store_parse("55555555-5555-4555-8555-555555555555.json", good,
                                 strlen(good), &r, &why), 0);
    assert_true(r.has_instance);
    assert_int_equal(r.instance[0], 0xaa);
    assert_string_equal(r.host, "cmp-1");
    assert_int_equal(r.created_at, 1767323045);
    assert_int_equal(r.state, STORE_DELETING);
    assert_int_equal(store_parse("66666666-5555-4555-8555-555555555555.json", good,
                                 strlen(good), &r, &why), -EINVAL);
    assert_non_null(strstr(why, "file name"));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = "";
        assert_int_equal(store_parse(NULL, cases[i].text, strlen(cases[i].text), &r, &why),
                         -EINVAL);
        if (strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, why, cases[i].why);
    }
}

static void test_ids(void **state)
{
    uint8_t u[16];
    char s[IDS_UUID_STR], t[IDS_TIME_STR];
    int64_t when;

    assert_int_equal(ids_parse_uuid("0123ABCD-4567-89ab-cdef-0123456789AB", u), 0);
    ids_format_uuid(u, s);
    assert_string_equal(s, "0123abcd-4567-89ab-cdef-0123456789ab");
    assert_int_equal(ids_parse_uuid("0123abcd456789abcdef0123456789ab", u), -EINVAL);
    assert_int_equal(ids_parse_uuid("0123abcd-4567-89ab-cdef-0123456789a", u), -EINVAL);
    assert_int_equal(ids_parse_uuid("0123abcd-4567-89ab-cdef-0123456789abc", u), -EINVAL);
    assert_int_equal(ids_parse_uuid("0123abcg-4567-89ab-cdef-0123456789ab", u), -EINVAL);
    assert_int_equal(ids_parse_uuid("0123abcd+4567-89ab-cdef-0123456789ab", u), -EINVAL);
    assert_int_equal(ids_parse_uuid("../../etc/passwd-89ab-cdef-0123456789", u), -EINVAL);
    assert_int_equal(ids_parse_uuid(NULL, u), -EINVAL);
    assert_true(ids_valid_host("compute-1.example.org"));
    assert_true(ids_valid_host("fe80::1"));
    assert_false(ids_valid_host(""));
    assert_false(ids_valid_host("a b"));
    assert_false(ids_valid_host("a/b"));
    assert_false(ids_valid_host("a\nb"));
    memset(s, 'a', sizeof(s));
    {
        char longhost[300];

        memset(longhost, 'h', sizeof(longhost));
        longhost[256] = '\0';
        assert_false(ids_valid_host(longhost));
        longhost[255] = '\0';
        assert_true(ids_valid_host(longhost));
    }
    ids_format_time(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00Z");
    assert_int_equal(ids_parse_time("2026-01-02T03:04:05Z", &when), 0);
    assert_int_equal(when, 1767323045);
    assert_int_equal(ids_parse_time("2026-01-02T03:04:05", &when), -EINVAL);
    assert_int_equal(ids_parse_time("2026-01-02T03:04:05Zx", &when), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_leftovers),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_ids),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
