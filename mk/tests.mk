# Foundation tests: cmocka unit tests and the daemon's signal test.
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(libvtpmd_a_CFLAGS)
UNIT_LIBS = $(VTPMD_LIBS) $(CMOCKA_LIBS)

check_PROGRAMS += tests/unit/test_config tests/unit/test_log tests/unit/test_cmdline
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LIBS)
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LIBS)
tests_unit_test_cmdline_SOURCES = tests/unit/test_cmdline.c
tests_unit_test_cmdline_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cmdline_LDADD = $(UNIT_LIBS)

TESTS += tests/unit/test_config tests/unit/test_log tests/unit/test_cmdline \
	tests/integration/daemon-signals.sh tests/integration/cli.sh
EXTRA_DIST += tests/integration/daemon-signals.sh tests/integration/cli.sh \
	tests/lib/broker.sh tests/lib/common.sh

# The common library's helpers (vtime, backoff, fileutil, jsonutil).
check_PROGRAMS += tests/unit/test_util
tests_unit_test_util_SOURCES = tests/unit/test_util.c
tests_unit_test_util_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_util_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_util
