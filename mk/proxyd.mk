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
