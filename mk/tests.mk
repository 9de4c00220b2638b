# Foundation tests: cmocka unit tests and the daemon's signal test.
#
# A cmocka unit test is one line in its module's fragment:
#     UNIT_TESTS += tests/unit/test_<mod>
# It is built from tests/unit/test_<mod>.c with automake's defaults for a
# program that sets nothing of its own: AM_CFLAGS (which carries every
# dependency's flags, see Makefile.am) and the LDADD below (vtpmd's and
# vtpm-proxyd's libraries: a static library adds only what a test uses).
# A test that needs more adds only that: a -D with
# tests_unit_test_<mod>_CFLAGS = $(UNIT_CFLAGS) -D..., a --wrap with
# tests_unit_test_<mod>_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=..., another
# library with tests_unit_test_<mod>_LDADD = $(UNIT_LIBS) -l...
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(libvtpmd_a_CFLAGS)
UNIT_LIBS = libproxyd.a $(VTPMD_LIBS) $(CMOCKA_LIBS)
LDADD = $(UNIT_LIBS)
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)

UNIT_TESTS += tests/unit/test_config
# host's default, with a fully qualified host name whatever the machine's.
tests_unit_test_config_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=gethostname
UNIT_TESTS += tests/unit/test_log
UNIT_TESTS += tests/unit/test_cmdline
TESTS += tests/integration/daemon-signals.sh tests/integration/cli.sh
EXTRA_DIST += tests/integration/daemon-signals.sh tests/integration/cli.sh \
	tests/lib/broker.sh tests/lib/common.sh

# The common library's helpers (vtime, backoff, fileutil, jsonutil).
UNIT_TESTS += tests/unit/test_util
