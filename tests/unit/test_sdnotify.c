/* sdnotify against real datagram sockets: a filesystem path and an
 * abstract-namespace name, as systemd uses both. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sdnotify.h"

static int bind_dgram(const char *name, struct sockaddr_un *sa)
{
    unsigned len;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(sdnotify_parse_addr(name, sa, &len), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, len), 0);
    return fd;
}

static void recv_expect(int fd, const char *want)
{
    char buf[256];
    ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    assert_true(r >= 0);
    buf[r] = '\0';
    assert_string_equal(buf, want);
}

static void test_disabled(void **state)
{
    struct sdnotify *n;

    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "1000000", 1);
    assert_int_equal(sdnotify_new(&n), 0);
    assert_false(sdnotify_enabled(n));
    assert_int_equal(sdnotify_send(n, "READY=1"), 0);
    assert_int_equal(sdnotify_watchdog_usec(n), 0);
    sdnotify_free(n);
    sdnotify_free(NULL);
    unsetenv("WATCHDOG_USEC");
}

static void test_path_socket(void **state)
{
    char dir[] = "/tmp/sdnotify.XXXXXX", path[128];
    struct sockaddr_un sa;
    struct sdnotify *n;
    int fd;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    fd = bind_dgram(path, &sa);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sdnotify_new(&n), 0);
    assert_true(sdnotify_enabled(n));
    assert_int_equal(sdnotify_send(n, "READY=1\nSTATUS=consuming"), 0);
    recv_expect(fd, "READY=1\nSTATUS=consuming");
    assert_int_equal(sdnotify_sendf(n, "STATUS=%d instances", 3), 0);
    recv_expect(fd, "STATUS=3 instances");
    sdnotify_free(n);
    close(fd);
    unlink(path);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
    char name[64];
    struct sockaddr_un sa;
    struct sdnotify *n;
    int fd;

    snprintf(name, sizeof(name), "@vtpmd-test-%ld", (long)getpid());
    fd = bind_dgram(name, &sa);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(sdnotify_new(&n), 0);
    assert_int_equal(sdnotify_send(n, "STOPPING=1"), 0);
    recv_expect(fd, "STOPPING=1");
    sdnotify_free(n);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_gone_socket(void **state)
{
    struct sdnotify *n;

    setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
    assert_int_equal(sdnotify_new(&n), 0);
    assert_int_equal(sdnotify_send(n, "READY=1"), -ENOENT);
    sdnotify_free(n);
    unsetenv("NOTIFY_SOCKET");
}

static void test_bad_values(void **state)
{
    static const char *const bad[] = {"relative/path", "@", "", "x"};
    struct sockaddr_un sa;
    struct sdnotify *n;
    unsigned len;
    char longp[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sdnotify_parse_addr(bad[i], &sa, &len), -EINVAL);
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(sdnotify_parse_addr(longp, &sa, &len), -EINVAL);
    setenv("NOTIFY_SOCKET", "relative", 1);
    assert_int_equal(sdnotify_new(&n), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

/* The watchdog interval a new sdnotify reads from the environment. */
static uint64_t watchdog_usec(void)
{
    struct sdnotify *n;
    uint64_t usec;

    assert_int_equal(sdnotify_new(&n), 0);
    usec = sdnotify_watchdog_usec(n);
    sdnotify_free(n);
    return usec;
}

static void test_watchdog(void **state)
{
    char pid[32];

    setenv("NOTIFY_SOCKET", "@vtpmd-test-wd", 1);
    setenv("WATCHDOG_USEC", "2000000", 1);
    unsetenv("WATCHDOG_PID");
    assert_int_equal(watchdog_usec(), 2000000);
    /* Meant for another process. */
    setenv("WATCHDOG_PID", "1", 1);
    assert_int_equal(watchdog_usec(), 0);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(watchdog_usec(), 2000000);
    setenv("WATCHDOG_USEC", "junk", 1);
    assert_int_equal(watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_gone_socket),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_watchdog),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
