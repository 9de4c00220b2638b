# Operations: systemd notification, the systemd unit, vtpmctl's bus
# follower, man pages, status docs and examples, OpenStack integration.
libvtpmd_a_SOURCES += src/sdnotify.c include/sdnotify.h

UNIT_TESTS += tests/unit/test_sdnotify

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

TESTS += tests/integration/ops-notify.sh tests/integration/ops-hook.sh \
	tests/integration/ops-vtpmctl.sh tests/integration/ops-metrics.sh \
	tests/integration/ops-listener.sh tests/integration/ops-hostname.sh
EXTRA_DIST += tests/integration/ops-notify.sh tests/tools/notify_reader.py \
	tests/integration/ops-hook.sh contrib/openstack/libvirt-hooks/libxl \
	tests/integration/ops-vtpmctl.sh tests/integration/ops-metrics.sh \
	tests/integration/ops-listener.sh tests/integration/ops-hostname.sh

# vtpmctl watch: librabbitmq-c (blocking API) and vtpmd's own
# configuration reader (config.o, with cfg from libvtpmcommon.a).
vtpmctl_CFLAGS += $(RABBITMQ_CFLAGS) $(YAML_CFLAGS)
vtpmctl_LDADD += libvtpmd.a libvtpmcommon.a $(YAML_LIBS) $(RABBITMQ_LIBS) $(OPENSSL_LIBS)

# Status consumers: documentation and an example listener.
dist_doc_DATA += docs/status.md
examplesdir = $(docdir)/examples
dist_examples_SCRIPTS = contrib/examples/status_listener.py
dist_man_MANS += docs/vtpmctl.1

# OpenStack: the libvirt hook (tested above), the Nova stable/victoria
# patch (applied to Debian 11's Nova 22: its client against vtpmd, its
# unit tests and flake8/hacking in Nova's tree), DevStack plugin and
# examples.
TESTS += tests/openstack/nova-patch.sh tests/openstack/nova-unit.sh
EXTRA_DIST += tests/openstack/nova-patch.sh tests/openstack/nova_patch.py \
	tests/openstack/nova-unit.sh tests/openstack/nova-victoria.sh \
	contrib/openstack/nova/0001-libvirt-Xen-split-driver-vTPM-from-vtpmd.patch
TESTS += tests/openstack/examples.sh
EXTRA_DIST += tests/openstack/examples.sh \
	contrib/openstack/examples/vtpmd.yaml contrib/openstack/examples/nova.conf
# The DevStack plugin, where DevStack looks for it (devstack/ at the top),
# run through DevStack victoria's phases.
TESTS += tests/openstack/devstack.sh
EXTRA_DIST += tests/openstack/devstack.sh tests/openstack/devstack-phases.bash \
	tests/openstack/devstack-fake-functions.bash \
	devstack/plugin.sh devstack/settings contrib/openstack/devstack/README.md
dist_doc_DATA += docs/openstack.md

# Hostile local users and files: trust in the control socket, image.dir and
# the configuration parser (issue 17).
TESTS += tests/integration/hostile-trust.sh
EXTRA_DIST += tests/integration/hostile-trust.sh
