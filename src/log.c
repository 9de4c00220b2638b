/* Logging is process-wide by nature (tmux log.c, libvirt virlog.c): its
 * few settings are the one piece of global state outside the daemon
 * context. Each line is formatted first and written with one write(2),
 * so lines from the libvirt worker thread never interleave. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

#define LOG_LINE_MAX 4096

static struct {
    char ident[64];
    enum log_level level;
    enum log_target target;
    bool syslog_open;
    log_hook_fn hook;
    void *hook_arg;
} log_state = {
    .ident = "vtpmd",
    .level = LOG_LEVEL_INFO,
    .target = LOG_TARGET_STDERR,
};

static const char *const log_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

static const int log_syslog_prio[] = {
    [LOG_LEVEL_ERROR] = LOG_ERR,
    [LOG_LEVEL_WARNING] = LOG_WARNING,
    [LOG_LEVEL_INFO] = LOG_INFO,
    [LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void log_init(const char *ident, enum log_level level, enum log_target target)
{
    snprintf(log_state.ident, sizeof(log_state.ident), "%s", ident);
    log_state.level = level;
    log_set_target(target);
}

void log_set_level(enum log_level level)
{
    __atomic_store_n(&log_state.level, level, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
    return __atomic_load_n(&log_state.level, __ATOMIC_RELAXED);
}

void log_set_target(enum log_target target)
{
    if (target == LOG_TARGET_SYSLOG && !log_state.syslog_open) {
        openlog(log_state.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
        log_state.syslog_open = true;
    }
    log_state.target = target;
}

void log_close(void)
{
    if (log_state.syslog_open) {
        closelog();
        log_state.syslog_open = false;
    }
    log_state.target = LOG_TARGET_STDERR;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
        if (strcasecmp(s, log_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warn") == 0) {
        *out = LOG_LEVEL_WARNING;
        return 0;
    }
    return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_LEVEL_DEBUG)
        return "unknown";
    return log_names[level];
}

bool log_enabled(enum log_level level)
{
    return level <= log_get_level();
}

void log_set_hook(log_hook_fn fn, void *arg)
{
    log_state.hook = fn;
    log_state.hook_arg = arg;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    char stamp[40];
    struct timespec ts;
    struct tm tm;
    size_t off;
    int saved_errno = errno;

    if (!log_enabled(level))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    /* Control characters from peers must not forge log lines. */
    for (char *p = line; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    if (log_state.hook)
        log_state.hook(level, line, log_state.hook_arg);

    if (log_state.target == LOG_TARGET_SYSLOG) {
        syslog(log_syslog_prio[level], "%s", line);
    } else {
        char out[LOG_LINE_MAX + 128];
        int n;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        off = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + off, sizeof(stamp) - off, ".%03ldZ",
                 ts.tv_nsec / 1000000);
        n = snprintf(out, sizeof(out), "%s %s[%ld] %s: %s\n", stamp,
                     log_state.ident, (long)getpid(), log_names[level], line);
        if (n > (int)sizeof(out) - 1)
            n = (int)sizeof(out) - 1;
        if (write(STDERR_FILENO, out, (size_t)n) < 0) {
            /* Nowhere left to report it. */
        }
    }
    errno = saved_errno;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static void log_libevent_cb(int severity, const char *msg)
{
    enum log_level level;

    switch (severity) {
    case EVENT_LOG_DEBUG:
        level = LOG_LEVEL_DEBUG;
        break;
    case EVENT_LOG_MSG:
        level = LOG_LEVEL_INFO;
        break;
    case EVENT_LOG_WARN:
        level = LOG_LEVEL_WARNING;
        break;
    default:
        level = LOG_LEVEL_ERROR;
        break;
    }
    log_msg(level, "libevent: %s", msg);
}

void log_route_libevent(void)
{
    event_set_log_callback(log_libevent_cb);
}
