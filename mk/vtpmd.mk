# The vtpmd daemon: its library (libvtpmd.a, to which every module's
# fragment appends), configuration, main loop, sd_notify, the program, its
# unit, man pages and example configuration.
noinst_LIBRARIES += libvtpmd.a
libvtpmd_a_SOURCES = src/config_paths.c \
	src/vconfig.c include/vconfig.h \
	src/vtpmd.c include/vtpmd.h \
	src/uuidutil.c include/uuidutil.h \
	src/sdnotify.c include/sdnotify.h
libvtpmd_a_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(RABBITMQ_CFLAGS) \
	$(LIBVIRT_CFLAGS) $(LIBXML2_CFLAGS) $(JANSSON_CFLAGS) $(UUID_CFLAGS) \
	$(YAML_CFLAGS) $(OPENSSL_CFLAGS)

VTPMD_LIBS = libvtpmd.a libvtpmcommon.a $(LIBEVENT_LIBS) $(RABBITMQ_LIBS) \
	$(LIBVIRT_LIBS) $(LIBXML2_LIBS) $(JANSSON_LIBS) $(UUID_LIBS) \
	$(YAML_LIBS) $(OPENSSL_LIBS) $(LIBS)

sbin_PROGRAMS += vtpmd
vtpmd_SOURCES = src/main.c
vtpmd_CFLAGS = $(libvtpmd_a_CFLAGS)
vtpmd_LDADD = $(VTPMD_LIBS)

dist_man_MANS += docs/vtpmd.8 docs/vtpmd.yaml.5
dist_doc_DATA += docs/architecture.md
EXTRA_DIST += conf/vtpmd.yaml conf/demo.yaml

vtpmdconfdir = $(sysconfdir)/vtpmd
vtpmdconf_DATA = conf/vtpmd.yaml.example
conf/vtpmd.yaml.example: conf/vtpmd.yaml
	$(AM_V_GEN)$(MKDIR_P) conf && cp $(srcdir)/conf/vtpmd.yaml $@
CLEANFILES += conf/vtpmd.yaml.example

# systemd unit: into systemdsystemunitdir (configure's
# --with-systemdsystemunitdir, by default systemd's own directory).
systemdsystemunit_DATA = contrib/systemd/vtpmd.service
contrib/systemd/vtpmd.service: contrib/systemd/vtpmd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|@localstatedir[@]|$(localstatedir)|g' -e 's|@runstatedir[@]|$(runstatedir)|g' \
	    $(srcdir)/contrib/systemd/vtpmd.service.in > $@.tmp && mv $@.tmp $@
CLEANFILES += contrib/systemd/vtpmd.service
EXTRA_DIST += contrib/systemd/vtpmd.service.in

# Configuration: the host's default is checked with a fully qualified host
# name whatever the machine's.
UNIT_TESTS += tests/unit/test_config
tests_unit_test_config_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=gethostname
UNIT_TESTS += tests/unit/test_uuidutil
UNIT_TESTS += tests/unit/test_sdnotify

# The real binary: command line, signals, sd_notify, the host name rule,
# hostile local users and files (control socket, image.dir, the parser).
VTPMD_ITESTS = tests/integration/cli.sh tests/integration/daemon-signals.sh \
	tests/integration/ops-notify.sh tests/integration/ops-hostname.sh \
	tests/integration/hostile-trust.sh
TESTS += $(VTPMD_ITESTS)
EXTRA_DIST += $(VTPMD_ITESTS) tests/tools/notify_reader.py
