#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

struct seen {
    int count;
    enum log_level level;
    char line[256];
};

static void hook(enum log_level level, const char *line, void *arg)
{
    struct seen *s = arg;

    s->count++;
    s->level = level;
    strncpy(s->line, line, sizeof(s->line) - 1);
}

static void test_levels(void **state)
{
    enum log_level l;

    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARNING);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARNING);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_LEVEL_ERROR);
    assert_int_equal(log_level_parse("verbose", &l), -22);
    assert_string_equal(log_level_name(LOG_LEVEL_INFO), "info");
}

static void test_filter_and_format(void **state)
{
    struct seen s = {0};

    log_init("test", LOG_LEVEL_WARNING, LOG_TARGET_STDERR);
    log_set_hook(hook, &s);
    log_info("dropped instance=%s", "x");
    log_debug("dropped too n=%d", 1);
    assert_int_equal(s.count, 0);
    log_warn("kept instance=%s n=%d", "abc", 7);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.level, LOG_LEVEL_WARNING);
    assert_string_equal(s.line, "kept instance=abc n=7");
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("now debug=%s", "yes");
    assert_int_equal(s.count, 2);
    assert_string_equal(s.line, "now debug=yes");
    log_set_hook(NULL, NULL);
}

/* A peer's newline must not forge a second log line. */
static void test_sanitize(void **state)
{
    struct seen s = {0};

    log_init("test", LOG_LEVEL_INFO, LOG_TARGET_STDERR);
    log_set_hook(hook, &s);
    log_error("host=%s", "evil\nvtpmd: error: forged\x1b[0m");
    assert_null(strchr(s.line, '\n'));
    assert_null(strchr(s.line, '\x1b'));
    assert_string_equal(s.line, "host=evil?vtpmd: error: forged?[0m");
    log_set_hook(NULL, NULL);
}

static void test_syslog_target(void **state)
{
    struct seen s = {0};

    log_init("test", LOG_LEVEL_INFO, LOG_TARGET_SYSLOG);
    log_set_hook(hook, &s);
    log_info("to syslog n=%d", 1);
    assert_int_equal(s.count, 1);
    log_close();
    log_set_hook(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_filter_and_format),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_syslog_target),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
