#!/bin/sh
# Installs every Debian 12 package that vtpmd's build, test suite and demo
# need. Idempotent; needs root (or sudo). Set VTPMD_SKIP_APT=1 to skip.
set -eu

BUILD_PKGS="build-essential autoconf automake libtool pkg-config
 libevent-dev librabbitmq-dev libvirt-dev libxml2-dev libjansson-dev
 uuid-dev libyaml-dev libcmocka-dev libssl-dev libjsmn-dev"

# Real peers for the tests and the demo: the broker, Nova's and
# oslo.messaging's own code, xmllint (also what the libvirt hook
# contrib/openstack/libvirt-hooks/libxl needs on a compute host),
# sanitizers and fuzzers.
TEST_PKGS="rabbitmq-server python3 python3-oslo.messaging python3-pika
 python3-nova python3-yaml python3-prometheus-client libxml2-utils valgrind clang libclang-rt-14-dev
 curl procps openssl ca-certificates libvirt-daemon"

# KVM backend (issue 14): swtpm_setup and swtpm-localca as the peers of
# vtpm-certtool, tpm2-tools to read the vTPM's NV, softhsm2 and OpenSSL's
# pkcs11 ENGINE (Debian 12 has no pkcs11-provider) for a PKCS#11 CA key;
# libvirt's QEMU driver, QEMU (TCG, no /dev/kvm needed) and virsh, so that
# libvirt itself runs swtpm_setup and the tool (tests/integration/kvm-libvirt.sh).
KVM_PKGS="swtpm swtpm-tools tpm2-tools softhsm2 libengine-pkcs11-openssl
 libvirt-daemon-driver-qemu qemu-system-x86 libvirt-clients"

# The Nova stable/victoria patch's unit tests and flake8/hacking, run in
# Debian 11's Nova 22 tree (tests/openstack/nova-unit.sh).
NOVA_TEST_PKGS="python3-stestr python3-subunit python3-oslotest python3-mock
 python3-ddt python3-requests-mock python3-wsgi-intercept python3-hacking
 flake8 git"

# contrib/libvirt/check.sh builds Debian's libvirt 9.0.0 with our series.
LIBVIRT_PKGS="dpkg-dev xz-utils meson ninja-build libxen-dev libyajl-dev
 libglib2.0-dev xsltproc libgnutls28-dev libtirpc-dev python3-docutils
 libxml2-utils libxml2-dev"

[ "${VTPMD_SKIP_APT:-0}" = 1 ] && exit 0

SUDO=
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

missing=
for p in $BUILD_PKGS $TEST_PKGS $KVM_PKGS $NOVA_TEST_PKGS $LIBVIRT_PKGS; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing
