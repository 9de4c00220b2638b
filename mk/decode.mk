# Issue 3: decoding Nova's notifications (novamsg) and the vTPM policy.
libvtpmd_a_SOURCES += src/novamsg.c src/novamsg_scan.c include/novamsg.h \
	include/novamsg_priv.h src/policy.c include/policy.h

check_PROGRAMS += tests/unit/test_novamsg
tests_unit_test_novamsg_SOURCES = tests/unit/test_novamsg.c
tests_unit_test_novamsg_CFLAGS = $(UNIT_CFLAGS) \
	-DFIXTURE_DIR='"$(abs_top_srcdir)/tests/fixtures/nova"'
tests_unit_test_novamsg_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_novamsg
EXTRA_DIST += tests/fixtures/nova tests/tools/gen-nova-fixtures.py

check_PROGRAMS += tests/unit/test_policy
tests_unit_test_policy_SOURCES = tests/unit/test_policy.c
tests_unit_test_policy_CFLAGS = $(UNIT_CFLAGS) \
	-DFIXTURE_DIR='"$(abs_top_srcdir)/tests/fixtures/nova"'
tests_unit_test_policy_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_policy
