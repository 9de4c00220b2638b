# vtpm-proxyd: the Keylime VM's REST service that hands out vTPM UUIDs
# from vtpmmgr (src/proxyd/, include/proxyd/, tests/proxyd/). It shares
# libvtpmcommon.a (xalloc, log, cfg engine, cmdline) with vtpmd.
PROXYD_DEFS = \
	-DPROXYD_CONFIG_FILE='"$(sysconfdir)/vtpm-proxyd/vtpm-proxyd.yaml"' \
	-DPROXYD_STATE_DIR='"$(localstatedir)/lib/vtpm-proxyd"'
PROXYD_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS) \
	$(OPENSSL_CFLAGS) $(YAML_CFLAGS)

noinst_LIBRARIES += libproxyd.a
libproxyd_a_SOURCES = \
	src/proxyd/ids.c include/proxyd/ids.h \
	src/proxyd/mgrproto.c include/proxyd/mgrproto.h \
	src/proxyd/mgrdev.c include/proxyd/mgrdev.h \
	src/proxyd/jobq.c include/proxyd/jobq.h \
	src/proxyd/store.c include/proxyd/store.h \
	src/proxyd/pconfig.c include/proxyd/pconfig.h \
	src/proxyd/service.c include/proxyd/service.h \
	src/proxyd/service_work.c include/proxyd/service_priv.h \
	src/proxyd/tlsctx.c include/proxyd/tlsctx.h \
	src/proxyd/api.c include/proxyd/api.h \
	src/proxyd/proxyd.c include/proxyd/proxyd.h
libproxyd_a_CPPFLAGS = $(AM_CPPFLAGS) $(PROXYD_DEFS)
libproxyd_a_CFLAGS = $(PROXYD_CFLAGS)

PROXYD_LIBS = libproxyd.a libvtpmcommon.a $(LIBEVENT_LIBS) $(JANSSON_LIBS) \
	$(OPENSSL_LIBS) $(YAML_LIBS) $(LIBS)

sbin_PROGRAMS += vtpm-proxyd
vtpm_proxyd_SOURCES = src/proxyd/main.c
vtpm_proxyd_CPPFLAGS = $(AM_CPPFLAGS) $(PROXYD_DEFS)
vtpm_proxyd_CFLAGS = $(PROXYD_CFLAGS)
vtpm_proxyd_LDADD = $(PROXYD_LIBS)

# Unit tests (cmocka; UNIT_TESTS, see mk/common.mk), the vtpmmgr fake and
# the integration tests.
UNIT_TESTS += tests/proxyd/test_mgrproto
UNIT_TESTS += tests/proxyd/test_mgrdev
tests_proxyd_test_mgrdev_LDADD = $(UNIT_LIBS) -lutil
UNIT_TESTS += tests/proxyd/test_jobq
UNIT_TESTS += tests/proxyd/test_store
UNIT_TESTS += tests/proxyd/test_pconfig

PROXYD_IT = tests/proxyd/cli.sh tests/proxyd/api.sh tests/proxyd/faults.sh \
	tests/proxyd/tls.sh tests/proxyd/reconcile.sh tests/proxyd/crash.sh \
	tests/proxyd/valgrind.sh tests/proxyd/hostile.sh
# End to end with vtpmd (keylime-proxy, api v1), RabbitMQ and libvirt's
# test driver, vtpm-proxyd killed mid-burst.
PROXYD_IT += tests/integration/proxyd-e2e.sh
TESTS += $(PROXYD_IT)
EXTRA_DIST += $(PROXYD_IT) tests/proxyd/lib.sh tests/proxyd/fake_vtpmmgr.py \
	tests/proxyd/burst.py tests/proxyd/tmpdir.h

# The man page, the example configuration (installed as an example, never
# over a live one) and the systemd unit.
dist_man_MANS += docs/vtpm-proxyd.8
EXTRA_DIST += conf/vtpm-proxyd.yaml
proxydconfdir = $(sysconfdir)/vtpm-proxyd
proxydconf_DATA = conf/vtpm-proxyd.yaml.example
conf/vtpm-proxyd.yaml.example: conf/vtpm-proxyd.yaml
	$(AM_V_GEN)$(MKDIR_P) conf && cp $(srcdir)/conf/vtpm-proxyd.yaml $@
CLEANFILES += conf/vtpm-proxyd.yaml.example

# systemd unit, with the paths configure was given; into
# systemdsystemunitdir like vtpmd's (mk/vtpmd.mk).
proxydunitdir = $(systemdsystemunitdir)
proxydunit_DATA = contrib/systemd/vtpm-proxyd.service
contrib/systemd/vtpm-proxyd.service: contrib/systemd/vtpm-proxyd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|@localstatedir[@]|$(localstatedir)|g' \
	    $(srcdir)/contrib/systemd/vtpm-proxyd.service.in > $@.tmp && mv $@.tmp $@
CLEANFILES += contrib/systemd/vtpm-proxyd.service
EXTRA_DIST += contrib/systemd/vtpm-proxyd.service.in
