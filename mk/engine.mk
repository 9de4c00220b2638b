# The engine: each instance's state, its journal, jobs, reconciliation.
libvtpmd_a_SOURCES += src/hmap.c include/hmap.h \
	src/journal.c include/journal.h \
	src/engine.c src/engine_ctl.c src/engine_job.c src/engine_reconcile.c \
	src/engine_vtpmcheck.c include/engine.h include/engine_priv.h

UNIT_TESTS += tests/unit/test_journal

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
UNIT_TESTS += tests/unit/test_engine
tests_unit_test_engine_SOURCES = tests/unit/test_engine.c tests/mocks/fakes.h \
	tests/mocks/fake_core.c tests/mocks/fake_bus.c tests/mocks/fake_virt.c \
	tests/mocks/fake_vtpmmgr.c tests/mocks/fake_image.c tests/mocks/fake_journal.c
tests_unit_test_engine_LDFLAGS = $(AM_LDFLAGS) $(ENGINE_FAKES)

# End to end: Nova's notifications through RabbitMQ to libvirt's test
# driver, with the fake Keylime-VM proxy.
ENGINE_ITESTS = tests/integration/engine-e2e.sh tests/integration/engine-proxy.sh \
	tests/integration/engine-redelivered.sh
TESTS += $(ENGINE_ITESTS)
EXTRA_DIST += $(ENGINE_ITESTS) tests/lib/vtpmd.sh \
	tests/tools/nova_emit.py tests/tools/status_listener.py tests/tools/oslo_url.py

# Provisioning latency through the broker (bench/bench_provision.sh runs it).
noinst_PROGRAMS += bench/bench_provision
bench_bench_provision_SOURCES = bench/bench_provision.c bench/amqp_plain.c bench/amqp_plain.h
bench_bench_provision_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_bench_provision_LDADD = $(VTPMD_LIBS)
EXTRA_DIST += bench/bench_provision.sh bench/cfg-worst.sh
