#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmdline.h"

#define DEF "/etc/vtpmd/vtpmd.yaml"

static int parse(struct cmdline *c, char *msg, size_t msglen, int argc, ...)
{
    char *argv[16];
    va_list ap;
    FILE *err = fmemopen(msg, msglen, "w");
    int r;

    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    memset(msg, 0, msglen);
    r = cmdline_parse(argc, argv, DEF, c, err);
    fclose(err);
    return r;
}

static void test_defaults(void **state)
{
    struct cmdline c;
    char msg[256];

    assert_int_equal(parse(&c, msg, sizeof(msg), 1, "vtpmd"), 0);
    assert_int_equal(c.action, CMDLINE_RUN);
    assert_string_equal(c.config_path, DEF);
    assert_false(c.have_level);
}

static void test_options(void **state)
{
    struct cmdline c;
    char msg[256];

    assert_int_equal(parse(&c, msg, sizeof(msg), 4, "vtpmd", "-c", "/x.yaml", "-t"), 0);
    assert_int_equal(c.action, CMDLINE_CHECK);
    assert_string_equal(c.config_path, "/x.yaml");
    assert_int_equal(parse(&c, msg, sizeof(msg), 3, "vtpmd", "--config=/y", "--check-config"), 0);
    assert_string_equal(c.config_path, "/y");
    assert_int_equal(c.action, CMDLINE_CHECK);
    assert_int_equal(parse(&c, msg, sizeof(msg), 3, "vtpmd", "-l", "debug"), 0);
    assert_true(c.have_level);
    assert_int_equal(c.level, LOG_LEVEL_DEBUG);
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "--log-level=error"), 0);
    assert_int_equal(c.level, LOG_LEVEL_ERROR);
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "-V"), 0);
    assert_int_equal(c.action, CMDLINE_VERSION);
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "--version"), 0);
    assert_int_equal(c.action, CMDLINE_VERSION);
    assert_int_equal(parse(&c, msg, sizeof(msg), 3, "vtpmd", "-V", "-h"), 0);
    assert_int_equal(c.action, CMDLINE_HELP);
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "--help"), 0);
    assert_int_equal(c.action, CMDLINE_HELP);
}

static void test_errors(void **state)
{
    struct cmdline c;
    char msg[256];

    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "-x"), -22);
    assert_non_null(strstr(msg, "unknown option '-x'"));
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "--frobnicate"), -22);
    assert_non_null(strstr(msg, "unknown option '--frobnicate'"));
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "-c"), -22);
    assert_non_null(strstr(msg, "needs an argument"));
    assert_int_equal(parse(&c, msg, sizeof(msg), 3, "vtpmd", "-l", "loud"), -22);
    assert_non_null(strstr(msg, "unknown log level 'loud'"));
    assert_int_equal(parse(&c, msg, sizeof(msg), 2, "vtpmd", "extra"), -22);
    assert_non_null(strstr(msg, "unexpected argument 'extra'"));
    assert_int_equal(parse(&c, msg, sizeof(msg), 3, "vtpmd", "-c", ""), -22);
    assert_non_null(strstr(msg, "empty file name"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
