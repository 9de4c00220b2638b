/* Levelled logging to stderr or syslog, one line per event with
 * key=value fields: log_info("provisioned instance=%s vtpm=%s", ...). */
#ifndef VTPMD_LOG_H
#define VTPMD_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

enum log_target {
    LOG_TARGET_STDERR = 0,
    LOG_TARGET_SYSLOG,
};

/* ident is the program name used as prefix (stderr) or syslog ident. */
void log_init(const char *ident, enum log_level level, enum log_target target);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_target(enum log_target target);
void log_close(void);

/* Parses "error", "warning" (or "warn"), "info", "debug". */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Sends libevent's own warnings and errors through this module. */
void log_route_libevent(void);

/* For tests: every formatted line also goes to this hook when set. */
typedef void (*log_hook_fn)(enum log_level level, const char *line, void *arg);
void log_set_hook(log_hook_fn fn, void *arg);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                        \
    do {                                                                      \
        if (log_enabled(LOG_LEVEL_DEBUG))                                     \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                            \
    } while (0)

#endif
