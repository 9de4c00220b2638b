# AMQP bus (librabbitmq-c on libevent) and vtpmd's status notifications.
libvtpmd_a_SOURCES += src/bus.c include/bus.h \
	src/bus_ackwin.c include/bus_ackwin.h \
	src/bus_outbox.c include/bus_outbox.h \
	src/status.c include/status.h

# Unit tests: the ack window and the outbox (no broker), status building.
UNIT_TESTS += tests/unit/test_bus
UNIT_TESTS += tests/unit/test_status

# A program around the real bus, driven by the integration tests.
check_PROGRAMS += tests/tools/bus_peer
tests_tools_bus_peer_SOURCES = tests/tools/bus_peer.c
tests_tools_bus_peer_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_bus_peer_LDADD = $(VTPMD_LIBS)

# Integration tests: a private RabbitMQ per test, real peers.
BUS_ITESTS = tests/integration/bus-consume.sh tests/integration/bus-status.sh \
	tests/integration/bus-restart.sh tests/integration/bus-cut.sh \
	tests/integration/bus-connect.sh tests/integration/bus-topology.sh \
	tests/integration/bus-dlx.sh tests/integration/bus-ackwin.sh \
	tests/integration/bus-tls.sh tests/integration/bus-blocked.sh \
	tests/integration/bus-bench-smoke.sh
TESTS += $(BUS_ITESTS)
EXTRA_DIST += $(BUS_ITESTS) tests/integration/bus-lib.sh \
	tests/tools/bus_amqp.py tests/tools/bus_proxy.py

# Consume throughput (bench/bench-consume.sh; figures in docs/performance.md).
noinst_PROGRAMS += bench/bench_consume
bench_bench_consume_SOURCES = bench/bench_consume.c bench/amqp_plain.c bench/amqp_plain.h
bench_bench_consume_CFLAGS = $(libvtpmd_a_CFLAGS) \
	-DFIXTURE_DIR='"$(abs_top_srcdir)/tests/fixtures/nova"'
bench_bench_consume_LDADD = $(VTPMD_LIBS)
EXTRA_DIST += bench/bench-consume.sh bench/bench_oslo.py

# The bare librabbitmq-c consume loop the bus is measured against.
noinst_PROGRAMS += bench/bus_floor
bench_bus_floor_SOURCES = bench/bus_floor.c bench/amqp_plain.c bench/amqp_plain.h
bench_bus_floor_CFLAGS = $(libvtpmd_a_CFLAGS)
bench_bus_floor_LDADD = $(VTPMD_LIBS)
