#!/bin/bash
# Runs vtpmd's DevStack plugin through the phases of a DevStack
# stable/victoria stack.sh, unstack.sh and clean.sh, in the order stack.sh
# calls them, with DevStack's function library: DEVSTACK_DIR's (a DevStack
# checkout) when set, else tests/openstack/devstack-fake-functions.bash.
# Called by tests/openstack/devstack.sh, which asserts on what it leaves in
# W (the work directory, $1):
#   W/calls        every system-changing call, stubbed: sudo'd commands
#                  that change users, groups or services, install_package,
#                  systemctl, make
#   W/etc/...      nova.conf, nova-cpu.conf, vtpmd.yaml, the hook and its
#                  defaults; W/stacked-etc: the same after stack.sh (before
#                  unstack and clean); the units (SYSTEMD_DIR=W/systemd;
#                  W/stacked-systemd after stack.sh)
# Environment: VTPMD_TEST_SRC (vtpmd's source), VTPMD_TEST_VTPMD (a built
# vtpmd: the plugin runs its vtpmd -t on the vtpmd.yaml it writes),
# NOVA_TEST_TREE (a Nova tree to patch, or empty), NOVA_TEST_HOST (a
# [DEFAULT] host for nova.conf, or empty), NOVA_TEST_NOTIFY_URL (Nova's
# notification transport_url), PHASES (default: all).
W=$1
: > "$W/calls" || exit 1

if [ -n "${DEVSTACK_DIR:-}" ]; then
    TOP_DIR=$DEVSTACK_DIR
    # shellcheck disable=SC1091
    source "$DEVSTACK_DIR/functions"
    echo "# DevStack's own functions: $DEVSTACK_DIR ($(git -C "$DEVSTACK_DIR" describe --tags --always 2>/dev/null || echo not a git tree))"
else
    # shellcheck disable=SC1091
    source "$(dirname "$0")/devstack-fake-functions.bash"
    echo "# DevStack functions: the FAKE tests/openstack/devstack-fake-functions.bash (no DEVSTACK_DIR)"
fi
set +o xtrace

# --- stubs of what changes the system ----------------------------------
function record { echo "$*" >> "$W/calls"; }
function sudo {
    case $1 in
        groupadd | usermod | chown | systemctl | make | apt-get)
            record "sudo $*" ;;
        install)
            # No ownership changes (the group need not exist here).
            local a=() skip=0 x
            for x in "$@"; do
                if [ $skip = 1 ]; then skip=0; continue; fi
                case $x in -o | -g) skip=1; continue ;; esac
                a+=("$x")
            done
            "${a[@]}" ;;
        *) "$@" ;;
    esac
}
function install_package { record "install_package $*"; }
function restart_service { record "restart_service $*"; }
function make { record "make $*"; }
function fake_systemctl {
    record "systemctl $*"
    return 0
}
function getent { return 2; }
SYSTEMCTL=fake_systemctl
SYSTEMD_DIR=$W/systemd

# --- what stack.sh has set by the time plugins run --------------------
DEST=$W/opt
STACK_USER=stack
SERVICE_HOST=10.0.0.5
RABBIT_HOST=10.0.0.5
RABBIT_USERID=stackrabbit
RABBIT_PASSWORD=secret
PYTHON=/usr/bin/python3
LIBVIRT_TYPE=xen
ENABLED_SERVICES=n-cpu,rabbit,placement-client
NOVA_CONF_DIR=$W/etc/nova
NOVA_CONF=$NOVA_CONF_DIR/nova.conf
NOVA_CPU_CONF=$NOVA_CONF_DIR/nova-cpu.conf
NOVA_DIR=$DEST/nova
mkdir -p "$DEST" "$NOVA_CONF_DIR" "$W/etc/default" "$W/prefix/sbin"
# enable_plugin vtpmd URL REF: DevStack clones the repository to
# $DEST/vtpmd and runs $DEST/vtpmd/devstack/{settings,plugin.sh}.
mkdir -p "$DEST/vtpmd"
ln -s "$VTPMD_TEST_SRC/devstack" "$DEST/vtpmd/devstack"
ln -s "$VTPMD_TEST_SRC/contrib" "$DEST/vtpmd/contrib"
# configure stands in for vtpmd's (the build is not under test here).
printf '#!/bin/sh\necho "configure $*" >> "%s/calls"\n' "$W" > "$DEST/vtpmd/configure"
chmod +x "$DEST/vtpmd/configure"
ln -s "$VTPMD_TEST_VTPMD" "$W/prefix/sbin/vtpmd"
if [ -n "${NOVA_TEST_TREE:-}" ]; then
    cp -a "$NOVA_TEST_TREE" "$NOVA_DIR"
else
    mkdir -p "$NOVA_DIR/nova/conf"
    echo "virt_type choices: kvm, lxc, qemu, parallels" > "$NOVA_DIR/nova/conf/libvirt.py"
fi

# Operator's local.conf knobs (paths into W instead of /etc).
VTPMD_PREFIX=$W/prefix
VTPMD_CONF_DIR=$W/etc/vtpmd
VTPMD_STATE_DIR=$W/var/lib/vtpmd
VTPMD_HOOK_DIR=$W/etc/libvirt/hooks
VTPMD_HOOK_DEFAULTS=$W/etc/default/vtpmd-hook
VTPMD_VTPMMGR_PROVIDER=local
VTPMD_PATCH_NOVA=${VTPMD_PATCH_NOVA:-True}

# stack.sh: plugin settings are sourced early.
source "$DEST/vtpmd/devstack/settings"
[ "$VTPMD_DIR" = "$DEST/vtpmd" ] || die $LINENO "VTPMD_DIR=$VTPMD_DIR"

function phase {
    echo "# phase $*"
    record "phase $*"
    source "$DEST/vtpmd/devstack/plugin.sh" "$@"
}

for p in ${PHASES:-pre-install install post-config extra unstack clean}; do
    case $p in
        post-config)
            # stack.sh's create_nova_conf (lib/nova, victoria): notifications
            # on, unversioned format by default.
            iniset "$NOVA_CONF" DEFAULT debug True
            [ -n "${NOVA_TEST_HOST:-}" ] && iniset "$NOVA_CONF" DEFAULT host "$NOVA_TEST_HOST"
            iniset "$NOVA_CONF" oslo_messaging_notifications driver messagingv2
            iniset "$NOVA_CONF" oslo_messaging_notifications transport_url \
                "${NOVA_TEST_NOTIFY_URL:-rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/}"
            iniset "$NOVA_CONF" notifications notification_format unversioned
            iniset "$NOVA_CONF" libvirt virt_type "$LIBVIRT_TYPE"
            # A nova-cpu.conf written before: start_nova_compute replaces it.
            iniset "$NOVA_CPU_CONF" libvirt stale_option_written_at_post_config 1
            phase stack post-config
            ;;
        extra)
            # stack.sh's start_nova -> start_nova_compute (lib/nova,
            # victoria): "cp $compute_cell_conf $NOVA_CPU_CONF", then
            # superconductor's rpc settings, then run_process n-cpu.
            cp "$NOVA_CONF" "$NOVA_CPU_CONF"
            iniset "$NOVA_CPU_CONF" DEFAULT transport_url \
                "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/nova_cell1"
            record "start_nova_compute"
            phase stack extra
            # What a stacked host has (unstack and clean come next).
            cp -a "$W/etc" "$W/stacked-etc"
            cp -a "$W/systemd" "$W/stacked-systemd"
            ;;
        unstack | clean) phase "$p" ;;
        *) phase stack "$p" ;;
    esac
done
echo "# done"
