# Decoding Nova's notifications (novamsg) and the vTPM policy.
libvtpmd_a_SOURCES += src/novamsg.c src/novamsg_scan.c include/novamsg.h \
	include/novamsg_priv.h src/policy.c include/policy.h

UNIT_TESTS += tests/unit/test_novamsg
tests_unit_test_novamsg_CFLAGS = $(UNIT_CFLAGS) \
	-DFIXTURE_DIR='"$(abs_top_srcdir)/tests/fixtures/nova"'
EXTRA_DIST += tests/fixtures/nova tests/tools/gen-nova-fixtures.py \
	docs/performance.md

UNIT_TESTS += tests/unit/test_policy
tests_unit_test_policy_CFLAGS = $(UNIT_CFLAGS) \
	-DFIXTURE_DIR='"$(abs_top_srcdir)/tests/fixtures/nova"'

# Decode + policy throughput next to plain jansson (figures in
# docs/performance.md); decode-bench-smoke.sh runs one untimed pass.
noinst_PROGRAMS += bench/bench_decode
bench_bench_decode_SOURCES = bench/bench_decode.c
bench_bench_decode_CFLAGS = $(libvtpmd_a_CFLAGS) \
	-DFIXTURE_DIR='"$(abs_top_srcdir)/tests/fixtures/nova"'
bench_bench_decode_LDADD = $(VTPMD_LIBS)

TESTS += tests/integration/decode-genuine.sh \
	tests/integration/decode-bench-smoke.sh \
	tests/integration/decode-fuzz-smoke.sh
EXTRA_DIST += tests/integration/decode-genuine.sh \
	tests/integration/decode-bench-smoke.sh \
	tests/integration/decode-fuzz-smoke.sh \
	fuzz/fuzz_novamsg.c fuzz/fuzz_novamsg_diff.c fuzz/novamsg.dict \
	fuzz/corpus/novamsg
CLEANFILES += fuzz-artifacts/*

# libFuzzer targets (./configure --enable-fuzzing CC=clang). The module
# sources are compiled into each target so that they are instrumented.
if ENABLE_FUZZING
DECODE_FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
noinst_PROGRAMS += fuzz/fuzz_novamsg fuzz/fuzz_novamsg_diff
fuzz_fuzz_novamsg_SOURCES = fuzz/fuzz_novamsg.c src/novamsg.c \
	src/novamsg_scan.c src/policy.c
fuzz_fuzz_novamsg_CFLAGS = $(libvtpmd_a_CFLAGS) $(DECODE_FUZZ_FLAGS)
fuzz_fuzz_novamsg_LDFLAGS = $(DECODE_FUZZ_FLAGS)
fuzz_fuzz_novamsg_LDADD = $(VTPMD_LIBS)
fuzz_fuzz_novamsg_diff_SOURCES = fuzz/fuzz_novamsg_diff.c src/novamsg.c \
	src/novamsg_scan.c
fuzz_fuzz_novamsg_diff_CFLAGS = $(libvtpmd_a_CFLAGS) $(DECODE_FUZZ_FLAGS)
fuzz_fuzz_novamsg_diff_LDFLAGS = $(DECODE_FUZZ_FLAGS)
fuzz_fuzz_novamsg_diff_LDADD = $(VTPMD_LIBS)
endif
