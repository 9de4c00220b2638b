# Filled in by its work stream.

# --- provision: uuidutil, image, vtpmmgr (+ fake Keylime-VM proxy) -------
libvtpmd_a_SOURCES += src/uuidutil.c include/uuidutil.h

UNIT_TESTS += tests/unit/test_uuidutil

libvtpmd_a_SOURCES += src/image.c include/image.h
# A full disk is simulated by wrapping fallocate; image-enospc.sh fills a
# real tmpfs.
UNIT_TESTS += tests/unit/test_image
tests_unit_test_image_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=fallocate
check_PROGRAMS += tests/tools/image-tool
tests_tools_image_tool_SOURCES = tests/tools/image-tool.c
tests_tools_image_tool_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_image_tool_LDADD = $(VTPMD_LIBS)
TESTS += tests/integration/image-enospc.sh
EXTRA_DIST += tests/integration/image-enospc.sh

libvtpmd_a_SOURCES += src/vtpmmgr.c include/vtpmmgr.h include/vtpmmgr_priv.h
check_PROGRAMS += tests/tools/vtpmmgr-client
tests_tools_vtpmmgr_client_SOURCES = tests/tools/vtpmmgr-client.c
tests_tools_vtpmmgr_client_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_vtpmmgr_client_LDADD = $(VTPMD_LIBS)
UNIT_TESTS += tests/unit/test_vtpmmgr
# The fake Keylime-VM proxy (documented at its top) for the vtpmmgr,
# engine and fault tests.
EXTRA_DIST += tests/tools/fake_proxy.py tests/lib/fake_proxy.sh
TESTS += tests/integration/vtpmmgr-http.sh
EXTRA_DIST += tests/integration/vtpmmgr-http.sh
TESTS += tests/integration/vtpmmgr-faults.sh tests/integration/vtpmmgr-tls.sh
EXTRA_DIST += tests/integration/vtpmmgr-faults.sh tests/integration/vtpmmgr-tls.sh tests/lib/vtpmmgr.sh

# Figures for image_create/image_remove and the local provider.
noinst_PROGRAMS += bench/image_bench
bench_image_bench_SOURCES = bench/image_bench.c
bench_image_bench_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_image_bench_LDADD = $(VTPMD_LIBS)
# --- end provision: uuidutil, image, vtpmmgr ------------------------------

# --- provision: domxml, virt (libvirt worker) ------------------------------
libvtpmd_a_SOURCES += src/domxml.c include/domxml.h \
	src/virt.c include/virt.h include/virt_priv.h

UNIT_TESTS += tests/unit/test_domxml
tests_unit_test_domxml_CFLAGS = $(UNIT_CFLAGS) \
	-DLIBVIRT_SCHEMA_DIR='"$(LIBVIRT_DATAROOTDIR)/libvirt/schemas"'

UNIT_TESTS += tests/unit/test_virt
# Stands in for libvirts with and without the <vtpm> series.
tests_unit_test_virt_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=virDomainDefineXMLFlags \
	-Wl,--wrap=virDomainGetXMLDesc
TESTS += tests/integration/virt-valgrind.sh tests/integration/virt-require-vtpm.sh
EXTRA_DIST += tests/integration/virt-valgrind.sh tests/integration/virt-require-vtpm.sh

# virt against a private libvirtd that is killed and restarted.
check_PROGRAMS += tests/tools/virt-probe
tests_tools_virt_probe_SOURCES = tests/tools/virt-probe.c
tests_tools_virt_probe_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_virt_probe_LDADD = $(VTPMD_LIBS)
TESTS += tests/integration/virt-reconnect.sh
EXTRA_DIST += tests/integration/virt-reconnect.sh

# Figures for define+start and destroy+undefine on test:///default.
noinst_PROGRAMS += bench/virt_bench
bench_virt_bench_SOURCES = bench/virt_bench.c
bench_virt_bench_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_virt_bench_LDADD = $(VTPMD_LIBS)
# --- end provision: domxml, virt -------------------------------------------
