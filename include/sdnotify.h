/* The systemd notification protocol (sd_notify(3)) without libsystemd:
 * one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Without
 * $NOTIFY_SOCKET every call is a no-op returning 0, so the daemon behaves
 * the same outside systemd. */
#ifndef VTPMD_SDNOTIFY_H
#define VTPMD_SDNOTIFY_H

#include <stdint.h>

struct sdnotify;

/* Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID when
 * set: the watchdog is ours only if it names our pid) and opens the
 * socket. Returns 0 (*out set, possibly a disabled notifier) or -EINVAL
 * for a malformed $NOTIFY_SOCKET, -errno when the socket cannot be made. */
int sdnotify_new(struct sdnotify **out);
void sdnotify_free(struct sdnotify *n);

/* true when $NOTIFY_SOCKET was set. */
int sdnotify_enabled(const struct sdnotify *n);

/* Sends state (one or more "KEY=VALUE" lines) as one datagram.
 * 0, or -errno (the caller logs; systemd notification is best effort). */
int sdnotify_send(struct sdnotify *n, const char *state);
int sdnotify_sendf(struct sdnotify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The watchdog interval in microseconds, 0 when none was asked for. */
uint64_t sdnotify_watchdog_usec(const struct sdnotify *n);

/* Parses a $NOTIFY_SOCKET value into a sockaddr_un image: path and its
 * length for connect/sendto. Exposed for the unit test. 0 or -EINVAL. */
struct sockaddr_un;
int sdnotify_parse_addr(const char *value, struct sockaddr_un *sa, unsigned *salen);

#endif
