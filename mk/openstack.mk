# OpenStack: the libvirt hook, the Nova stable/victoria patch (applied to
# Debian 11's Nova 22: its client against vtpmd, its unit tests and
# flake8/hacking in Nova's tree), the DevStack plugin and the examples.
TESTS += tests/integration/ops-hook.sh
EXTRA_DIST += tests/integration/ops-hook.sh contrib/openstack/libvirt-hooks/libxl

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
