# AMQP bus (librabbitmq-c on libevent) and vtpmd's status notifications.
libvtpmd_a_SOURCES += src/bus.c include/bus.h include/bus_priv.h \
	src/status.c include/status.h

# A program around the real bus, driven by the integration tests.
check_PROGRAMS += tests/tools/bus_peer
tests_tools_bus_peer_SOURCES = tests/tools/bus_peer.c
tests_tools_bus_peer_CFLAGS = $(libvtpmd_a_CFLAGS)
tests_tools_bus_peer_LDADD = $(VTPMD_LIBS)

TESTS += tests/integration/bus-consume.sh
EXTRA_DIST += tests/integration/bus-consume.sh tests/integration/bus-lib.sh \
	tests/tools/bus_amqp.py tests/tools/bus_proxy.py
