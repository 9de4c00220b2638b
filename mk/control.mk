# The control API (Unix socket and metrics over TCP) and vtpmctl.
libvtpmd_a_SOURCES += src/control.c include/control.h

bin_PROGRAMS += vtpmctl
vtpmctl_SOURCES = src/vtpmctl.c
# vtpmctl watch: librabbitmq-c (blocking API) and vtpmd's own
# configuration reader (vconfig.o, with cfg from libvtpmcommon.a).
vtpmctl_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(RABBITMQ_CFLAGS) $(YAML_CFLAGS)
vtpmctl_LDADD = libvtpmcommon.a $(JANSSON_LIBS) \
	libvtpmd.a libvtpmcommon.a $(YAML_LIBS) $(RABBITMQ_LIBS) $(OPENSSL_LIBS)
dist_man_MANS += docs/vtpmctl.1

# Status consumers: documentation and an example listener.
dist_doc_DATA += docs/status.md
examplesdir = $(docdir)/examples
dist_examples_SCRIPTS = contrib/examples/status_listener.py

# vtpmctl, the metrics, the example listener against the real daemon, and
# hostile clients under a lowered descriptor limit (the listeners' limits
# live in src/httpsrv.c, shared with vtpm-proxyd, whose own suite is
# tests/proxyd/hostile.sh).
CONTROL_ITESTS = tests/integration/ops-vtpmctl.sh tests/integration/ops-metrics.sh \
	tests/integration/ops-listener.sh tests/integration/hostile-control.sh
TESTS += $(CONTROL_ITESTS)
EXTRA_DIST += $(CONTROL_ITESTS) tests/tools/hostile_client.py
