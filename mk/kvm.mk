# KVM backend: the site CA module, swtpm_setup's certificate
# tool, Keylime's EK check, their tests and benchmark.
libvtpmd_a_SOURCES += src/kvmca.c src/kvmca_ek.c src/kvmca_state.c src/kvmca_p11.c include/kvmca.h \
	include/kvmca_priv.h

bin_PROGRAMS += vtpm-certtool
vtpm_certtool_SOURCES = src/vtpm-certtool.c
vtpm_certtool_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
vtpm_certtool_LDADD = libvtpmd.a libvtpmcommon.a $(UUID_LIBS) $(OPENSSL_LIBS)

UNIT_TESTS += tests/unit/test_kvmca

TESTS += tests/integration/kvm-certtool.sh
EXTRA_DIST += tests/integration/kvm-certtool.sh tests/lib/kvm.sh

# Benchmark (bench/bench_ekcert.sh; figures in docs/kvm.md).
noinst_PROGRAMS += bench/bench_kvmca
bench_bench_kvmca_SOURCES = bench/bench_kvmca.c
bench_bench_kvmca_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
bench_bench_kvmca_LDADD = libvtpmd.a libvtpmcommon.a $(UUID_LIBS) $(OPENSSL_LIBS)
EXTRA_DIST += bench/bench_ekcert.sh
TESTS += tests/integration/kvm-bench-smoke.sh
EXTRA_DIST += tests/integration/kvm-bench-smoke.sh

# Keylime's ek_check_script.
dist_pkgdata_SCRIPTS = contrib/keylime/vtpmd-ek-check
TESTS += tests/integration/kvm-keylime.sh
EXTRA_DIST += tests/integration/kvm-keylime.sh
dist_man_MANS += docs/vtpm-certtool.8
dist_doc_DATA += docs/kvm.md
TESTS += tests/integration/kvm-kill.sh
EXTRA_DIST += tests/integration/kvm-kill.sh
# libvirt's QEMU driver runs swtpm_setup and the tool for a guest Nova's
# classes describe.
TESTS += tests/integration/kvm-libvirt.sh
EXTRA_DIST += tests/integration/kvm-libvirt.sh tests/tools/nova_guest_xml.py
