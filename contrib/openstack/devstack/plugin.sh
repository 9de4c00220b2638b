#!/bin/bash
# DevStack plugin for vtpmd: builds and installs vtpmd on compute nodes,
# starts it under systemd, turns on Nova's notifications, installs the
# libvirt hook and patches Nova (stable/wallaby) to give Xen guests their
# <vtpm> device. See settings for the knobs and docs/openstack.md.

VTPMD_XTRACE=$(set +o | grep xtrace)
set -o xtrace

VTPMD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)

function vtpmd_install_deps {
    # What scripts/install-deps.sh calls BUILD_PKGS (Debian/Ubuntu names).
    install_package build-essential autoconf automake pkg-config \
        libevent-dev librabbitmq-dev libvirt-dev libxml2-dev libjansson-dev \
        uuid-dev libyaml-dev libssl-dev libcmocka-dev
}

function install_vtpmd {
    vtpmd_install_deps
    pushd "$VTPMD_SRC"
    [ -x configure ] || autoreconf -fi
    mkdir -p build
    cd build
    ../configure --prefix="$VTPMD_PREFIX" --sysconfdir=/etc --localstatedir=/var \
        --runstatedir=/run
    make -j"$(nproc)"
    # The unit where systemd looks for local units.
    sudo make install systemdsystemunitdir=/etc/systemd/system
    popd
}

function vtpmd_patch_nova {
    local p
    for p in "$VTPMD_SRC"/contrib/openstack/nova/*.patch; do
        if git -C "$NOVA_DIR" apply --reverse --check "$p" 2>/dev/null; then
            echo "vtpmd: $(basename "$p") already applied to $NOVA_DIR"
        else
            git -C "$NOVA_DIR" apply --check "$p" || die $LINENO "vtpmd: $p does not apply to $NOVA_DIR (stable/wallaby expected)"
            git -C "$NOVA_DIR" apply "$p"
        fi
    done
}

function configure_vtpmd {
    local rabbit_url="amqp://${RABBIT_USERID}:${RABBIT_PASSWORD}@${RABBIT_HOST:-$SERVICE_HOST}:5672/"

    getent group "$VTPMD_GROUP" >/dev/null || sudo groupadd --system "$VTPMD_GROUP"
    # nova-compute asks vtpmd's control socket (the Nova patch).
    sudo usermod -a -G "$VTPMD_GROUP" "$STACK_USER"
    sudo install -d -m 0750 -o root -g "$VTPMD_GROUP" "$VTPMD_CONF_DIR"
    sudo tee "$VTPMD_CONF" >/dev/null <<YAML
# Written by vtpmd's DevStack plugin. See vtpmd.yaml(5).
host: $(hostname -s)
log: {level: info, target: stderr}
amqp:
  urls: ['$rabbit_url']
notifications:
  exchange: nova
  topics: [notifications, versioned_notifications]
vtpmmgr:
  provider: $VTPMD_VTPMMGR_PROVIDER
$( [ "$VTPMD_VTPMMGR_PROVIDER" = keylime-proxy ] && printf '  url: %s\n  api: %s\n' "$VTPMD_VTPMMGR_URL" "$VTPMD_VTPMMGR_API")
libvirt:
  uri: '$VTPMD_LIBVIRT_URI'
control:
  socket: $VTPMD_SOCKET
policy:
  default: $VTPMD_POLICY_DEFAULT
  rules:
    - name: tpm-flavors
      match: {flavor: '$VTPMD_FLAVOR_GLOB'}
YAML
    sudo chown root:"$VTPMD_GROUP" "$VTPMD_CONF"
    sudo chmod 0640 "$VTPMD_CONF"
    sudo "$VTPMD_PREFIX/sbin/vtpmd" -t -c "$VTPMD_CONF" || die $LINENO "vtpmd: invalid $VTPMD_CONF"

    # The control socket's group: nova-compute and operators in it.
    sudo install -d /etc/systemd/system/vtpmd.service.d
    sudo tee /etc/systemd/system/vtpmd.service.d/devstack.conf >/dev/null <<UNIT
[Service]
Group=$VTPMD_GROUP
ExecStartPre=
ExecStartPre=$VTPMD_PREFIX/sbin/vtpmd -t -c $VTPMD_CONF
ExecStart=
ExecStart=$VTPMD_PREFIX/sbin/vtpmd -c $VTPMD_CONF
UNIT
    sudo systemctl daemon-reload

    # Nova publishes both notification formats on the same broker.
    iniset "$NOVA_CONF" oslo_messaging_notifications driver messagingv2
    iniset "$NOVA_CONF" notifications notification_format both
    iniset "$NOVA_CPU_CONF" oslo_messaging_notifications driver messagingv2
    iniset "$NOVA_CPU_CONF" notifications notification_format both
    if [ "${LIBVIRT_TYPE:-}" = xen ]; then
        iniset "$NOVA_CPU_CONF" libvirt virt_type xen
        iniset "$NOVA_CPU_CONF" libvirt connection_uri xen:///system
    fi

    if [ "$VTPMD_INSTALL_HOOK" = True ]; then
        sudo install -d /etc/libvirt/hooks
        sudo install -m 0755 "$VTPMD_SRC/contrib/openstack/libvirt-hooks/libxl" /etc/libvirt/hooks/libxl
        sudo tee /etc/default/vtpmd-hook >/dev/null <<ENV
VTPMD_SOCKET=$VTPMD_SOCKET
VTPMD_HOOK_TIMEOUT=$VTPMD_HOOK_TIMEOUT
VTPMCTL=$VTPMD_PREFIX/bin/vtpmctl
ENV
        # libvirt reads hooks at start-up.
        restart_service libvirtd || true
    fi
}

function start_vtpmd {
    sudo systemctl enable --now vtpmd.service
    # Type=notify: active means the broker is consuming.
    sudo systemctl is-active --quiet vtpmd.service || die $LINENO "vtpmd did not start"
    "$VTPMD_PREFIX/bin/vtpmctl" -s "$VTPMD_SOCKET" health || true
}

function stop_vtpmd {
    sudo systemctl stop vtpmd.service || true
}

function cleanup_vtpmd {
    sudo systemctl disable vtpmd.service || true
    sudo rm -f /etc/libvirt/hooks/libxl /etc/default/vtpmd-hook
    sudo rm -rf /etc/systemd/system/vtpmd.service.d
    # Keep /var/lib/vtpmd (journal and vTPM images: the guests' TPM state).
}

if is_service_enabled vtpmd; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        vtpmd_install_deps
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        install_vtpmd
        if [ "$VTPMD_PATCH_NOVA" = True ]; then
            vtpmd_patch_nova
        fi
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        configure_vtpmd
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        start_vtpmd
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_vtpmd
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_vtpmd
    fi
fi

$VTPMD_XTRACE
