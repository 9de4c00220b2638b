# Foundation: shared library code (allocation, logging, configuration
# engine, command line) and the vtpmd daemon.
noinst_LIBRARIES += libvtpmcommon.a
libvtpmcommon_a_SOURCES = \
	src/xalloc.c include/xalloc.h \
	src/log.c include/log.h \
	src/cfg.c include/cfg.h \
	src/cmdline.c include/cmdline.h \
	src/vtime.c include/vtime.h \
	src/backoff.c include/backoff.h \
	src/fileutil.c include/fileutil.h \
	include/jsonutil.h \
	src/httpsrv.c include/httpsrv.h
libvtpmcommon_a_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(YAML_CFLAGS)

# vtpmd's modules; mk/*.mk fragments append to libvtpmd_a_SOURCES.
noinst_LIBRARIES += libvtpmd.a
libvtpmd_a_SOURCES = src/config_paths.c \
	src/vconfig.c include/vconfig.h \
	src/vtpmd.c include/vtpmd.h
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

# Lead: journal, engine, control API and their helpers.
libvtpmd_a_SOURCES += src/hmap.c include/hmap.h \
	src/journal.c include/journal.h

UNIT_TESTS += tests/unit/test_journal
libvtpmd_a_SOURCES += src/control.c include/control.h

bin_PROGRAMS += vtpmctl
vtpmctl_SOURCES = src/vtpmctl.c
vtpmctl_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
vtpmctl_LDADD = libvtpmcommon.a $(JANSSON_LIBS)
libvtpmd_a_SOURCES += src/engine.c src/engine_ctl.c src/engine_job.c src/engine_reconcile.c src/engine_vtpmcheck.c \
	include/engine.h include/engine_priv.h

# The engine's state machine against link-time fakes of its neighbours.
ENGINE_FAKES = -Wl,--wrap=bus_ack -Wl,--wrap=bus_reject \
	-Wl,--wrap=bus_caught_up -Wl,--wrap=bus_get_stats -Wl,--wrap=status_publish \
	-Wl,--wrap=vtpmmgr_acquire -Wl,--wrap=vtpmmgr_release \
	-Wl,--wrap=vtpmmgr_is_local -Wl,--wrap=vtpmmgr_get_stats \
	-Wl,--wrap=vtpmmgr_pending -Wl,--wrap=virt_submit \
	-Wl,--wrap=virt_define_start -Wl,--wrap=virt_destroy_undefine_for \
	-Wl,--wrap=virt_probe_vtpm \
	-Wl,--wrap=virt_list_vtpmd -Wl,--wrap=image_pool_new \
	-Wl,--wrap=image_pool_ref -Wl,--wrap=image_pool_unref \
	-Wl,--wrap=image_pool_dir -Wl,--wrap=image_pool_size \
	-Wl,--wrap=image_pool_target -Wl,--wrap=image_pool_spares \
	-Wl,--wrap=image_pool_create -Wl,--wrap=image_pool_sync \
	-Wl,--wrap=image_remove -Wl,--wrap=journal_loaded -Wl,--wrap=journal_put
check_PROGRAMS += tests/unit/test_engine
tests_unit_test_engine_SOURCES = tests/unit/test_engine.c tests/mocks/fakes.h \
	tests/mocks/fake_core.c tests/mocks/fake_bus.c tests/mocks/fake_virt.c \
	tests/mocks/fake_vtpmmgr.c tests/mocks/fake_image.c tests/mocks/fake_journal.c
tests_unit_test_engine_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_engine_LDFLAGS = $(AM_LDFLAGS) $(ENGINE_FAKES)
tests_unit_test_engine_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_engine

TESTS += tests/integration/engine-e2e.sh tests/integration/engine-proxy.sh \
	tests/integration/engine-redelivered.sh
EXTRA_DIST += tests/integration/engine-e2e.sh tests/integration/engine-proxy.sh tests/lib/vtpmd.sh \
	tests/integration/engine-redelivered.sh \
	tests/tools/nova_emit.py tests/tools/status_listener.py tests/tools/oslo_url.py

# vtpmd's domain XML against the schema of the libvirt that
# contrib/libvirt/check.sh builds (so that check runs first).
check_PROGRAMS += tests/tools/domxml-print
tests_tools_domxml_print_SOURCES = tests/tools/domxml-print.c
tests_tools_domxml_print_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_domxml_print_LDADD = $(VTPMD_LIBS)
TESTS += tests/integration/domxml-rng.sh
EXTRA_DIST += tests/integration/domxml-rng.sh
tests/integration/domxml-rng.log: contrib/libvirt/check.log

# Provisioning latency through the broker (bench/bench_provision.sh runs it).
noinst_PROGRAMS += bench/bench_provision
bench_bench_provision_SOURCES = bench/bench_provision.c bench/amqp_plain.c bench/amqp_plain.h
bench_bench_provision_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_bench_provision_LDADD = $(VTPMD_LIBS)
EXTRA_DIST += bench/bench_provision.sh
noinst_PROGRAMS += bench/bus_floor
bench_bus_floor_SOURCES = bench/bus_floor.c bench/amqp_plain.c bench/amqp_plain.h
bench_bus_floor_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_bus_floor_LDADD = $(VTPMD_LIBS)
EXTRA_DIST += bench/cfg-worst.sh

# Hostile clients against the control API under a lowered descriptor
# limit (the listeners' limits live in src/httpsrv.c, shared with
# vtpm-proxyd, whose own suite is tests/proxyd/hostile.sh).
TESTS += tests/integration/hostile-control.sh
EXTRA_DIST += tests/integration/hostile-control.sh tests/tools/hostile_client.py
