/* mgrdev against a real pty: a response that arrives in pieces, one that
 * never arrives (timeout), garbage sizes, trailing bytes, a device that
 * does not exist or is no character device, and starting clean after a
 * failure. The other end is a thread in this test. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxyd/mgrdev.h"
#include "proxyd/mgrproto.h"

enum mode {
    M_WHOLE,     /* the answer in one write */
    M_PIECES,    /* byte by byte */
    M_SILENT,    /* no answer */
    M_HUGE,      /* size field beyond any message */
    M_TINY,      /* size field below the header */
    M_TRAILING,  /* the answer and more */
};

struct peer {
    int master;
    enum mode mode;
    pthread_t thread;
    int served;
    uint8_t last_req[64];
    size_t last_len;
};

static const uint8_t ANSWER[] = {0x01, 0xC4, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, 7};

static void *peer_run(void *arg)
{
    struct peer *p = arg;
    uint8_t buf[64];
    size_t got = 0;

    for (;;) {
        struct pollfd pfd = {.fd = p->master, .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, 3000) <= 0)
            return NULL;
        if (!(pfd.revents & POLLIN)) {
            usleep(1000); /* the client closed its end */
            continue;
        }
        n = read(p->master, buf + got, sizeof(buf) - got);
        if (n <= 0)
            continue;
        got += (size_t)n;
        if (got < 10 || got < mgrproto_msg_size(buf, got))
            continue;
        memcpy(p->last_req, buf, got);
        p->last_len = got;
        got = 0;
        p->served++;
        switch (p->mode) {
        case M_WHOLE:
            (void)!write(p->master, ANSWER, sizeof(ANSWER));
            break;
        case M_PIECES:
            for (size_t i = 0; i < sizeof(ANSWER); i++) {
                (void)!write(p->master, ANSWER + i, 1);
                usleep(2000);
            }
            break;
        case M_SILENT:
            break;
        case M_HUGE: {
            uint8_t a[sizeof(ANSWER)];

            memcpy(a, ANSWER, sizeof(a));
            a[2] = 0x7f;
            (void)!write(p->master, a, sizeof(a));
            break;
        }
        case M_TINY: {
            uint8_t a[sizeof(ANSWER)];

            memcpy(a, ANSWER, sizeof(a));
            a[5] = 9;
            (void)!write(p->master, a, sizeof(a));
            break;
        }
        case M_TRAILING: {
            uint8_t a[sizeof(ANSWER) + 4];

            memcpy(a, ANSWER, sizeof(ANSWER));
            memset(a + sizeof(ANSWER), 0xee, 4);
            (void)!write(p->master, a, sizeof(a));
            break;
        }
        }
    }
}

static char *start_peer(struct peer *p, enum mode mode)
{
    int slave;
    char *name;
    struct termios tio;

    memset(p, 0, sizeof(*p));
    assert_int_equal(openpty(&p->master, &slave, NULL, NULL, NULL), 0);
    tcgetattr(slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    name = strdup(ttyname(slave));
    close(slave);
    p->mode = mode;
    assert_int_equal(pthread_create(&p->thread, NULL, peer_run, p), 0);
    return name;
}

static void stop_peer(struct peer *p)
{
    pthread_cancel(p->thread);
    pthread_join(p->thread, NULL);
    close(p->master);
}

static int transact(struct mgrdev *d, uint64_t timeout, size_t *len, const char **why)
{
    uint8_t req[MGRPROTO_REQ_MAX], rsp[MGRPROTO_MAX_MSG];
    size_t n = mgrproto_group_list(req);

    return mgrdev_transact(d, req, n, rsp, sizeof(rsp), len, timeout, why);
}

static void test_whole_and_pieces(void **state)
{
    for (int m = M_WHOLE; m <= M_PIECES; m++) {
        struct peer p;
        char *name = start_peer(&p, (enum mode)m);
        struct mgrdev *d = mgrdev_new(name);
        const char *why = NULL;
        size_t len = 0;

        for (int i = 0; i < 3; i++) {
            assert_int_equal(transact(d, 2000, &len, &why), 0);
            assert_int_equal(len, sizeof(ANSWER));
        }
        assert_int_equal(p.served, 3);
        assert_int_equal(p.last_len, 10);
        assert_int_equal(p.last_req[1], 0xC2);
        mgrdev_free(d);
        stop_peer(&p);
        free(name);
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_timeout_then_recover(void **state)
{
    struct peer p;
    char *name = start_peer(&p, M_SILENT);
    struct mgrdev *d = mgrdev_new(name);
    const char *why = NULL;
    size_t len = 0;
    uint64_t t0 = now_ms();

    assert_int_equal(transact(d, 200, &len, &why), -ETIMEDOUT);
    assert_true(now_ms() - t0 >= 200);
    assert_non_null(strstr(why, "timed out"));
    p.mode = M_WHOLE;
    assert_int_equal(transact(d, 2000, &len, &why), 0);
    assert_int_equal(len, sizeof(ANSWER));
    mgrdev_free(d);
    stop_peer(&p);
    free(name);
}

static void test_garbage(void **state)
{
    static const enum mode modes[] = {M_HUGE, M_TINY, M_TRAILING};

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct peer p;
        char *name = start_peer(&p, modes[i]);
        struct mgrdev *d = mgrdev_new(name);
        const char *why = NULL;
        size_t len = 0;

        assert_int_equal(transact(d, 1000, &len, &why), -EPROTO);
        assert_true(strlen(why) > 0);
        /* The device was closed and flushed: the next command is clean. */
        usleep(20 * 1000);
        p.mode = M_WHOLE;
        assert_int_equal(transact(d, 2000, &len, &why), 0);
        mgrdev_free(d);
        stop_peer(&p);
        free(name);
    }
}

static void test_bad_device(void **state)
{
    const char *why = NULL;
    size_t len;
    struct mgrdev *d = mgrdev_new("/nonexistent/tpm0");
    char path[] = "/tmp/vtpm-proxyd-test-mgrdev-XXXXXX";
    int fd;

    assert_int_equal(transact(d, 100, &len, &why), -ENOENT);
    assert_non_null(strstr(why, "open"));
    mgrdev_free(d);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    d = mgrdev_new(path);
    assert_int_equal(transact(d, 100, &len, &why), -ENODEV);
    assert_string_equal(why, "not a character device");
    mgrdev_free(d);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_and_pieces),
        cmocka_unit_test(test_timeout_then_recover),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bad_device),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
