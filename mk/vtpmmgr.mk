# vtpmmgr's client: vTPM UUIDs through the REST proxy on the Keylime VM.
libvtpmd_a_SOURCES += src/vtpmmgr.c include/vtpmmgr.h include/vtpmmgr_priv.h

UNIT_TESTS += tests/unit/test_vtpmmgr
check_PROGRAMS += tests/tools/vtpmmgr-client
tests_tools_vtpmmgr_client_SOURCES = tests/tools/vtpmmgr-client.c
tests_tools_vtpmmgr_client_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_vtpmmgr_client_LDADD = $(VTPMD_LIBS)

# The fake Keylime-VM proxy (documented at its top) for the vtpmmgr,
# engine and fault tests.
VTPMMGR_ITESTS = tests/integration/vtpmmgr-http.sh \
	tests/integration/vtpmmgr-faults.sh tests/integration/vtpmmgr-tls.sh
TESTS += $(VTPMMGR_ITESTS)
EXTRA_DIST += $(VTPMMGR_ITESTS) tests/tools/fake_proxy.py tests/lib/fake_proxy.sh \
	tests/lib/vtpmmgr.sh
