# Filled in by its work stream.

# --- provision: uuidutil, image, vtpmmgr (+ fake Keylime-VM proxy) -------
libvtpmd_a_SOURCES += src/uuidutil.c include/uuidutil.h

check_PROGRAMS += tests/unit/test_uuidutil
tests_unit_test_uuidutil_SOURCES = tests/unit/test_uuidutil.c
tests_unit_test_uuidutil_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_uuidutil_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_uuidutil
# --- end provision: uuidutil, image, vtpmmgr ------------------------------
