/* The common library's small helpers: vtime.h, backoff.h, fileutil.h,
 * jsonutil.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backoff.h"
#include "fileutil.h"
#include "jsonutil.h"
#include "vtime.h"
#include "xalloc.h"

/* ---- vtime ---------------------------------------------------------- */

static void test_vtime_conversions(void **state)
{
    struct timeval tv;
    struct timespec ts;

    /* {argument, seconds, micro- or nanoseconds} */
    static const uint64_t ms[][3] = {
        {0, 0, 0}, {999, 0, 999000}, {1500, 1, 500000}, {86400001, 86400, 1000},
    };
    static const uint64_t ns[][3] = {
        {0, 0, 0}, {1500000000ull, 1, 500000000}, {999999999ull, 0, 999999999},
    };

    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        tv = vtime_tv_ms(ms[i][0]);
        assert_int_equal(tv.tv_sec, ms[i][1]);
        assert_int_equal(tv.tv_usec, ms[i][2]);
    }
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        ts = vtime_ts_ns(ns[i][0]);
        assert_int_equal(ts.tv_sec, ns[i][1]);
        assert_int_equal(ts.tv_nsec, ns[i][2]);
    }
}

static void test_vtime_clock(void **state)
{
    struct timespec start = vtime_now();
    uint64_t ms1 = vtime_now_ms();
    uint64_t ns = vtime_now_ns();
    uint64_t ms2 = vtime_now_ms();
    struct timespec ahead = vtime_now();

    /* One clock: readings taken in order never go back. */
    assert_true(ms1 <= ns / 1000000);
    assert_true(ns / 1000000 <= ms2);
    assert_true((uint64_t)start.tv_sec * 1000 <= ms1);
    assert_true(vtime_since_ms(&start) >= 0.0);
    /* A start in the future is no negative duration. */
    ahead.tv_sec += 3600;
    assert_true(vtime_since_ms(&ahead) == 0.0);
    /* A start an hour ago is an hour ago, however slow this machine. */
    ahead.tv_sec -= 7200;
    assert_true(vtime_since_ms(&ahead) >= 3600.0 * 1000.0);
}

/* ---- backoff -------------------------------------------------------- */

static void test_backoff_steps(void **state)
{
    /* The engine's step retries: 100 ms doubling, 5 s cap. */
    assert_int_equal(backoff_ms(100, 5000, 0), 100);
    assert_int_equal(backoff_ms(100, 5000, 1), 200);
    assert_int_equal(backoff_ms(100, 5000, 5), 3200);
    assert_int_equal(backoff_ms(100, 5000, 6), 5000);
    assert_int_equal(backoff_ms(100, 5000, 7), 5000);
    /* vtpm-proxyd's start-up reconcile: 1 s doubling, 60 s cap. */
    assert_int_equal(backoff_ms(1000, 60000, 5), 32000);
    assert_int_equal(backoff_ms(1000, 60000, 6), 60000);
    /* No overflow, whatever the attempt. */
    assert_int_equal(backoff_ms(100, 5000, 64), 5000);
    assert_int_equal(backoff_ms(100, 5000, UINT32_MAX), 5000);
    assert_int_equal(backoff_ms(1, UINT64_MAX, 63), 1ull << 63);
    assert_int_equal(backoff_ms(1, UINT64_MAX, 64), UINT64_MAX);
    assert_int_equal(backoff_ms(1, UINT64_MAX, UINT32_MAX), UINT64_MAX);
    /* A cap under the base wins (a misconfiguration is still bounded). */
    assert_int_equal(backoff_ms(500, 200, 0), 200);
    assert_int_equal(backoff_ms(500, 200, 3), 200);
    /* A cap that is no power-of-two multiple of the base is reached. */
    assert_int_equal(backoff_ms(300, 1000, 2), 1000);
}

static void test_backoff_monotonic_and_capped(void **state)
{
    static const uint64_t pairs[][2] = {
        {1, 1}, {1, 2}, {100, 5000}, {250, 30000}, {1000, 60000}, {7, 1000000007},
    };

    for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
        uint64_t prev = 0;

        for (unsigned a = 0; a < 200; a++) {
            uint64_t d = backoff_ms(pairs[p][0], pairs[p][1], a);

            assert_true(d >= pairs[p][0]);
            assert_true(d <= pairs[p][1]);
            assert_true(d >= prev);
            prev = d;
        }
        assert_int_equal(prev, pairs[p][1]);
    }
}

static void test_backoff_jitter_bounds(void **state)
{
    static const uint64_t rnds[] = {0, 1, 2, 49, 50, 51, 100, 101, 12345, UINT32_MAX,
                                    UINT64_MAX - 1, UINT64_MAX};
    static const uint64_t delays[] = {0, 1, 2, 3, 100, 101, 5000, 60000, UINT64_MAX};

    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        for (size_t j = 0; j < sizeof(rnds) / sizeof(rnds[0]); j++) {
            uint64_t d = backoff_jitter_ms(delays[i], rnds[j]);

            assert_true(d >= delays[i] / 2);
            assert_true(d <= delays[i]);
        }
    }
    /* Both ends of [d/2, d] are reached, and rnd picks uniformly. */
    assert_int_equal(backoff_jitter_ms(100, 0), 50);
    assert_int_equal(backoff_jitter_ms(100, 50), 100);
    assert_int_equal(backoff_jitter_ms(100, 51), 50);
    assert_int_equal(backoff_jitter_ms(101, 50), 100);
    assert_int_equal(backoff_jitter_ms(0, UINT64_MAX), 0);
    assert_int_equal(backoff_jitter_ms(1, 0), 0);
    assert_int_equal(backoff_jitter_ms(1, 1), 1);
}

static void test_backoff_rand(void **state)
{
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    uint64_t lo = UINT64_MAX, hi = 0;
    bool seen[11] = {false};

    /* Deterministic per seed, different across seeds. */
    for (int i = 0; i < 100; i++)
        assert_true(backoff_rand(&s1) == backoff_rand(&s2));
    assert_true(backoff_rand(&s1) != backoff_rand(&s3));
    /* Jitter from it spreads over the whole window, within the bounds. */
    for (int i = 0; i < 10000; i++) {
        uint64_t d = backoff_jitter_ms(backoff_ms(100, 20, 3), backoff_rand(&s1));

        assert_true(d >= 10 && d <= 20);
        seen[d - 10] = true;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_int_equal(lo, 10);
    assert_int_equal(hi, 20);
    for (int i = 0; i <= 10; i++)
        assert_true(seen[i]);
    /* The state never collapses to the fixed point 0. */
    for (int i = 0; i < 100000; i++) {
        backoff_rand(&s3);
        assert_true(s3 != 0);
    }
}

/* ---- fileutil ------------------------------------------------------- */

struct reader {
    int fd;
    char *buf;
    size_t len;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    ssize_t n;

    while ((n = read(r->fd, r->buf + r->len, 65536)) > 0)
        r->len += (size_t)n;
    return NULL;
}

static void test_write_all_pipe(void **state)
{
    /* Much more than a pipe holds: write(2) blocks and goes on in parts. */
    const size_t len = 4u << 20;
    char *data = xmalloc(len);
    struct reader r = {.buf = xmalloc(len + 65536)};
    pthread_t t;
    int fds[2];

    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 131 + i / 7);
    assert_int_equal(pipe(fds), 0);
    r.fd = fds[0];
    assert_int_equal(pthread_create(&t, NULL, read_all, &r), 0);
    assert_int_equal(file_write_all(fds[1], data, len), 0);
    close(fds[1]);
    pthread_join(t, NULL);
    close(fds[0]);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.buf, data, len);
    free(r.buf);
    free(data);
}

static void test_write_all_errors(void **state)
{
    char dir[] = "/tmp/test_util.XXXXXX";
    char *path = NULL;
    int fd;

    assert_int_equal(file_write_all(-1, "x", 1), -EBADF);
    assert_non_null(mkdtemp(dir));
    xasprintf(&path, "%s/f", dir);
    fd = open(path, O_RDONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(file_write_all(fd, "x", 1), -EBADF);
    /* Nothing to write is no write at all, even on a bad descriptor. */
    assert_int_equal(file_write_all(fd, "", 0), 0);
    close(fd);

    assert_int_equal(file_fsync_dir(dir), 0);
    assert_int_equal(file_fsync_dir(path), -ENOTDIR);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(file_fsync_dir(path), -ENOENT);
    assert_int_equal(rmdir(dir), 0);
    free(path);
}

/* ---- jsonutil ------------------------------------------------------- */

static void test_autojson(void **state)
{
    json_t *keep = json_object();

    {
        json_t *o autojson = json_incref(keep);
        json_t *none autojson = NULL; /* NULL is fine */

        assert_int_equal(keep->refcount, 2);
        (void)o;
        (void)none;
    }
    assert_int_equal(keep->refcount, 1);
    json_decref(keep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vtime_conversions),
        cmocka_unit_test(test_vtime_clock),
        cmocka_unit_test(test_backoff_steps),
        cmocka_unit_test(test_backoff_monotonic_and_capped),
        cmocka_unit_test(test_backoff_jitter_bounds),
        cmocka_unit_test(test_backoff_rand),
        cmocka_unit_test(test_write_all_pipe),
        cmocka_unit_test(test_write_all_errors),
        cmocka_unit_test(test_autojson),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
