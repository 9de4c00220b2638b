# The vTPM backing images (image pool).
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

# Figures for image_create/image_remove and the local provider.
noinst_PROGRAMS += bench/image_bench
bench_image_bench_SOURCES = bench/image_bench.c
bench_image_bench_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_image_bench_LDADD = $(VTPMD_LIBS)
