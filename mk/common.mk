# libvtpmcommon.a: allocation, logging, the configuration engine, the
# command line, clocks, backoff, files, JSON helpers and the HTTP listener,
# shared by vtpmd, vtpmctl, vtpm-proxyd and vtpm-certtool.
noinst_LIBRARIES += libvtpmcommon.a
libvtpmcommon_a_SOURCES = \
	src/xalloc.c include/xalloc.h \
	src/log.c include/log.h \
	src/cfg.c include/cfg.h \
	src/cmdline.c include/cmdline.h \
	src/vtime.c include/vtime.h \
	src/backoff.c include/backoff.h \
	src/fileutil.c include/fileutil.h \
	include/jsonutil.h \
	src/httpsrv.c include/httpsrv.h
libvtpmcommon_a_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(YAML_CFLAGS)

# Tests, one idiom for every module.
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
# A script test (shell or Python, run against the real components) is
#     TESTS += tests/integration/<mod>-<what>.sh
#     EXTRA_DIST += tests/integration/<mod>-<what>.sh
# and a program the scripts drive is a check_PROGRAMS entry with
# <prog>_CFLAGS = $(libvtpmd_a_CFLAGS) and <prog>_LDADD = $(VTPMD_LIBS).
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(libvtpmd_a_CFLAGS)
UNIT_LIBS = libproxyd.a $(VTPMD_LIBS) $(CMOCKA_LIBS)
LDADD = $(UNIT_LIBS)
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)

UNIT_TESTS += tests/unit/test_log
UNIT_TESTS += tests/unit/test_cmdline
# vtime, backoff, fileutil, jsonutil.
UNIT_TESTS += tests/unit/test_util
# The shell library every script test sources, and the private RabbitMQ.
EXTRA_DIST += tests/lib/common.sh tests/lib/broker.sh
