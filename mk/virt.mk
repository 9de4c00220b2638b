# libvirt: the stub domain's XML (domxml) and the libvirt worker (virt).
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
EXTRA_DIST += tests/integration/virt-reconnect.sh tests/lib/libvirtd.sh

# vtpmd's domain XML against the schema of the libvirt that
# contrib/libvirt/check.sh builds (so that check runs first).
check_PROGRAMS += tests/tools/domxml-print
tests_tools_domxml_print_SOURCES = tests/tools/domxml-print.c
tests_tools_domxml_print_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_domxml_print_LDADD = $(VTPMD_LIBS)
TESTS += tests/integration/domxml-rng.sh
EXTRA_DIST += tests/integration/domxml-rng.sh
tests/integration/domxml-rng.log: contrib/libvirt/check.log

# Figures for define+start and destroy+undefine on test:///default.
noinst_PROGRAMS += bench/virt_bench
bench_virt_bench_SOURCES = bench/virt_bench.c
bench_virt_bench_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_virt_bench_LDADD = $(VTPMD_LIBS)
