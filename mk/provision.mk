# Filled in by its work stream.

# --- provision: uuidutil, image, vtpmmgr (+ fake Keylime-VM proxy) -------
libvtpmd_a_SOURCES += src/uuidutil.c include/uuidutil.h

check_PROGRAMS += tests/unit/test_uuidutil
tests_unit_test_uuidutil_SOURCES = tests/unit/test_uuidutil.c
tests_unit_test_uuidutil_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_uuidutil_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_uuidutil

libvtpmd_a_SOURCES += src/image.c include/image.h
# A full disk is simulated by wrapping fallocate; image-enospc.sh fills a
# real tmpfs.
check_PROGRAMS += tests/unit/test_image
tests_unit_test_image_SOURCES = tests/unit/test_image.c
tests_unit_test_image_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_image_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=fallocate
tests_unit_test_image_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_image
check_PROGRAMS += tests/tools/image-tool
tests_tools_image_tool_SOURCES = tests/tools/image-tool.c
tests_tools_image_tool_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_image_tool_LDADD = $(VTPMD_LIBS)
TESTS += tests/integration/image-enospc.sh
EXTRA_DIST += tests/integration/image-enospc.sh
# --- end provision: uuidutil, image, vtpmmgr ------------------------------

# --- provision: domxml, virt (libvirt worker) ------------------------------
libvtpmd_a_SOURCES += src/domxml.c include/domxml.h

check_PROGRAMS += tests/unit/test_domxml
tests_unit_test_domxml_SOURCES = tests/unit/test_domxml.c
tests_unit_test_domxml_CFLAGS = $(UNIT_CFLAGS) \
	-DLIBVIRT_SCHEMA_DIR='"$(LIBVIRT_DATAROOTDIR)/libvirt/schemas"'
tests_unit_test_domxml_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_domxml
# --- end provision: domxml, virt -------------------------------------------
