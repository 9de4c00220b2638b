/* sd_notify(3) by hand: the protocol is one datagram per state change to
 * an AF_UNIX socket, so vtpmd needs no libsystemd (and builds where it is
 * absent). See include/sdnotify.h. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"
#include "xalloc.h"

struct sdnotify {
    int fd;                     /* -1: disabled */
    struct sockaddr_un addr;
    unsigned addrlen;
    uint64_t watchdog_usec;
};

int sdnotify_parse_addr(const char *value, struct sockaddr_un *sa, unsigned *salen)
{
    size_t len;

    if (value == NULL || (value[0] != '/' && value[0] != '@'))
        return -EINVAL;
    len = strlen(value);
    if (len < 2 || len >= sizeof(sa->sun_path))
        return -EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, value, len);
    /* Abstract namespace: a leading NUL, and the length counts exactly
     * the name's bytes (no trailing NUL), as systemd binds it. */
    if (value[0] == '@') {
        sa->sun_path[0] = '\0';
        *salen = (unsigned)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        *salen = (unsigned)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

static uint64_t sdnotify_read_watchdog(void)
{
    const char *us = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    unsigned long long v;
    char *end;

    if (us == NULL || *us == '\0')
        return 0;
    if (pid && *pid) {
        unsigned long long p = strtoull(pid, &end, 10);
        if (*end != '\0' || p != (unsigned long long)getpid())
            return 0; /* meant for another process (a parent shell) */
    }
    errno = 0;
    v = strtoull(us, &end, 10);
    if (errno || *end != '\0' || v == 0)
        return 0;
    return (uint64_t)v;
}

int sdnotify_new(struct sdnotify **out)
{
    struct sdnotify *n = xcalloc(1, sizeof(*n));
    const char *sock = getenv("NOTIFY_SOCKET");
    int ret = 0;

    n->fd = -1;
    if (sock == NULL || *sock == '\0')
        goto out;
    ret = sdnotify_parse_addr(sock, &n->addr, &n->addrlen);
    if (ret < 0)
        goto out;
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        ret = -errno;
        goto out;
    }
    n->watchdog_usec = sdnotify_read_watchdog();
out:
    if (ret < 0) {
        sdnotify_free(n);
        return ret;
    }
    *out = n;
    return 0;
}

void sdnotify_free(struct sdnotify *n)
{
    if (n == NULL)
        return;
    if (n->fd >= 0)
        close(n->fd);
    free(n);
}

int sdnotify_enabled(const struct sdnotify *n)
{
    return n && n->fd >= 0;
}

uint64_t sdnotify_watchdog_usec(const struct sdnotify *n)
{
    return n && n->fd >= 0 ? n->watchdog_usec : 0;
}

int sdnotify_send(struct sdnotify *n, const char *state)
{
    ssize_t r;

    if (!sdnotify_enabled(n))
        return 0;
    do {
        r = sendto(n->fd, state, strlen(state), MSG_NOSIGNAL,
                   (const struct sockaddr *)&n->addr, n->addrlen);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

int sdnotify_sendf(struct sdnotify *n, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int ret;

    if (!sdnotify_enabled(n))
        return 0;
    va_start(ap, fmt);
    ret = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (ret < 0)
        abort(); /* out of memory, as xasprintf */
    ret = sdnotify_send(n, s);
    free(s);
    return ret;
}
