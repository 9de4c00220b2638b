#!/bin/bash
# DevStack plugin for vtpmd (DevStack and Nova stable/victoria on Xen
# compute hosts). DevStack runs it as
#   source devstack/plugin.sh stack pre-install|install|post-config|extra
#   source devstack/plugin.sh unstack|clean
# It builds and installs vtpmd, patches Nova ($NOVA_DIR) to put
# <vtpm backend='...'/> in selected guests' XML, turns on Nova's
# notifications in both formats, installs the libvirt hook, and runs vtpmd
# as DevStack's service devstack@vtpmd. Knobs: devstack/settings; see
# docs/openstack.md.

VTPMD_XTRACE=$(set +o | grep xtrace)
set -o xtrace

function vtpmd_install_deps {
    # Build dependencies (scripts/install-deps.sh's BUILD_PKGS) and the
    # hook's xmllint.
    install_package build-essential autoconf automake libtool pkg-config \
        libevent-dev librabbitmq-dev libvirt-dev libxml2-dev libjansson-dev \
        uuid-dev libyaml-dev libssl-dev libcmocka-dev libjsmn-dev libxml2-utils
}

function install_vtpmd {
    if [ ! -x "$VTPMD_DIR/configure" ]; then
        (cd "$VTPMD_DIR" && autoreconf -fi) || die $LINENO "vtpmd: autoreconf failed in $VTPMD_DIR"
    fi
    mkdir -p "$VTPMD_BUILD_DIR"
    (cd "$VTPMD_BUILD_DIR" &&
        "$VTPMD_DIR/configure" --prefix="$VTPMD_PREFIX" --sysconfdir=/etc \
            --localstatedir=/var --runstatedir=/run \
            --with-systemdsystemunitdir="$VTPMD_PREFIX/lib/systemd/system" &&
        make -j"$(nproc)") || die $LINENO "vtpmd: build failed in $VTPMD_BUILD_DIR"
    # DevStack runs vtpmd as devstack@vtpmd (start_vtpmd): the packaged
    # units stay out of systemd's directories (above).
    (cd "$VTPMD_BUILD_DIR" && sudo make install) || die $LINENO "vtpmd: make install failed"
}

# Applies contrib/openstack/nova/*.patch to $NOVA_DIR (a stable/victoria
# tree: Nova 23 and later have no libvirt Xen driver). Idempotent.
function vtpmd_patch_nova {
    local p
    grep -q "'xen'" "$NOVA_DIR/nova/conf/libvirt.py" 2>/dev/null ||
        die $LINENO "vtpmd: Nova in $NOVA_DIR has no libvirt Xen support; use Nova stable/victoria (NOVA_BRANCH=victoria-eol)"
    for p in "$VTPMD_DIR"/contrib/openstack/nova/*.patch; do
        if (cd "$NOVA_DIR" && git apply --reverse --check "$p") >/dev/null 2>&1; then
            echo "vtpmd: $(basename "$p") is already applied to $NOVA_DIR"
        else
            (cd "$NOVA_DIR" && git apply --check "$p") ||
                die $LINENO "vtpmd: $p does not apply to $NOVA_DIR (Nova stable/victoria expected)"
            (cd "$NOVA_DIR" && git apply "$p") || die $LINENO "vtpmd: git apply $p failed"
        fi
    done
}

# post-config: before stack.sh starts the services. Nova's options go to
# $NOVA_CONF: start_nova_compute copies it over $NOVA_CPU_CONF later, so
# what a plugin writes to $NOVA_CPU_CONF now is lost.
function configure_vtpmd {
    getent group "$VTPMD_GROUP" >/dev/null || sudo groupadd --system "$VTPMD_GROUP"
    # nova-compute (devstack@n-cpu runs as $STACK_USER) asks the socket.
    sudo usermod -a -G "$VTPMD_GROUP" "$STACK_USER"

    # vtpmd takes both formats of Nova's notifications.
    iniset "$NOVA_CONF" oslo_messaging_notifications driver messagingv2
    iniset "$NOVA_CONF" notifications notification_format both
    if [ "$VTPMD_PATCH_NOVA" = True ]; then
        iniset "$NOVA_CONF" libvirt vtpmd_socket "$VTPMD_SOCKET"
    fi

    if [ "$VTPMD_INSTALL_HOOK" = True ]; then
        sudo install -d -m 0755 "$VTPMD_HOOK_DIR"
        # The hook names its defaults file on one line, for installations
        # to rewrite.
        sed "s|^VTPMD_HOOK_DEFAULTS=.*|VTPMD_HOOK_DEFAULTS=$VTPMD_HOOK_DEFAULTS|" \
            "$VTPMD_DIR/contrib/openstack/libvirt-hooks/libxl" | sudo tee "$VTPMD_HOOK_DIR/libxl" >/dev/null
        sudo chmod 0755 "$VTPMD_HOOK_DIR/libxl"
        # The hook reads only this file: libvirt scrubs hooks' environment.
        sudo tee "$VTPMD_HOOK_DEFAULTS" >/dev/null <<ENV
# Written by vtpmd's DevStack plugin. See $VTPMD_HOOK_DIR/libxl.
VTPMD_SOCKET=$VTPMD_SOCKET
VTPMD_HOOK_TIMEOUT=$VTPMD_HOOK_TIMEOUT
VTPMD_HOOK_UNREACHABLE=$VTPMD_HOOK_UNREACHABLE
VTPMCTL=$VTPMD_PREFIX/bin/vtpmctl
ENV
        sudo chmod 0644 "$VTPMD_HOOK_DEFAULTS"
        # libvirt reads its hooks when it starts.
        restart_service "$VTPMD_LIBVIRT_SERVICE"
    fi
}

# Nova's effective [DEFAULT] host on this node: nova-compute's file
# (complete once start_nova_compute ran), else nova.conf, else Nova's
# default, socket.gethostname() (not `hostname -s`: often a FQDN).
function vtpmd_nova_host {
    local host f
    for f in "$NOVA_CPU_CONF" "$NOVA_CONF"; do
        [ -f "$f" ] || continue
        host=$(iniget "$f" DEFAULT host)
        if [ -n "$host" ]; then
            echo "$host"
            return
        fi
        # nova-compute reads $NOVA_CPU_CONF alone when it exists.
        break
    done
    ${PYTHON:-python3} -c 'import socket; print(socket.gethostname())'
}

# vtpmd's amqp.urls: the broker Nova publishes its notifications to.
function vtpmd_amqp_urls {
    local url="" f
    for f in "$NOVA_CPU_CONF" "$NOVA_CONF"; do
        [ -f "$f" ] || continue
        url=$(iniget "$f" oslo_messaging_notifications transport_url)
        [ -n "$url" ] || url=$(iniget "$f" DEFAULT transport_url)
        [ -n "$url" ] && break
    done
    if [ -z "$url" ]; then
        url="rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@${RABBIT_HOST:-$SERVICE_HOST}:5672/"
    fi
    # rabbit://u:p@h1:5672,u:p@h2:5672/vhost[?ssl=1] ->
    # amqp[s]://u:p@h1:5672/vhost, amqp[s]://u:p@h2:5672/vhost
    local rest=${url#*://} path="/"
    case $rest in
        */*) path="/${rest#*/}"; rest=${rest%%/*} ;;
    esac
    local scheme=amqp
    case $path in
        *\?*ssl=1* | *\?*ssl=[Tt]rue*) scheme=amqps ;;
    esac
    path=${path%%\?*}
    local hostpart first=1
    local IFS=,
    for hostpart in $rest; do
        [ $first = 1 ] || printf ', '
        printf "'%s://%s%s'" "$scheme" "$hostpart" "$path"
        first=0
    done
}

function write_vtpmd_conf {
    local host urls vtpmmgr
    host=$(vtpmd_nova_host)
    urls=$(vtpmd_amqp_urls)
    vtpmmgr="provider: $VTPMD_VTPMMGR_PROVIDER"
    if [ "$VTPMD_VTPMMGR_PROVIDER" = keylime-proxy ]; then
        vtpmmgr="$vtpmmgr, url: '$VTPMD_VTPMMGR_URL', api: $VTPMD_VTPMMGR_API"
    fi
    sudo install -d -m 0750 -o root -g "$VTPMD_GROUP" "$VTPMD_CONF_DIR"
    sudo tee "$VTPMD_CONF" >/dev/null <<YAML
# Written by vtpmd's DevStack plugin. See vtpmd.yaml(5).
# = nova-compute's [DEFAULT] host: vtpmd only acts on this host's instances.
host: '$host'
state_dir: $VTPMD_STATE_DIR
log: {level: info, target: stderr}
amqp:
  urls: [$urls]
notifications:
  exchange: nova
  topics: [notifications, versioned_notifications]
vtpmmgr: {$vtpmmgr}
image: {dir: $VTPMD_STATE_DIR/images}
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
    # It holds the broker's password.
    sudo chown root:"$VTPMD_GROUP" "$VTPMD_CONF"
    sudo chmod 0640 "$VTPMD_CONF"
    sudo "$VTPMD_PREFIX/sbin/vtpmd" -t -c "$VTPMD_CONF" || die $LINENO "vtpmd: invalid $VTPMD_CONF"
}

# extra: nova-compute runs, so its configuration is final.
function start_vtpmd {
    write_vtpmd_conf
    # devstack@vtpmd gets what vtpmd's own unit has: the socket's
    # directory, its state directory, the configuration check.
    local dropin="$SYSTEMD_DIR/devstack@vtpmd.service.d" rundir
    rundir=$(dirname "$VTPMD_SOCKET")
    sudo install -d -m 0700 "$VTPMD_STATE_DIR"
    sudo install -d -m 0755 "$dropin"
    {
        echo "[Service]"
        # systemd makes (and removes) the socket's directory under /run.
        if [ "$(dirname "$rundir")" = /run ]; then
            echo "RuntimeDirectory=$(basename "$rundir")"
            echo "RuntimeDirectoryMode=0750"
        fi
        echo "ExecStartPre=$VTPMD_PREFIX/sbin/vtpmd -t -c $VTPMD_CONF"
        echo "Restart=on-failure"
    } | sudo tee "$dropin/vtpmd.conf" >/dev/null
    if [ "$(dirname "$rundir")" != /run ]; then
        sudo install -d -m 0750 -o root -g "$VTPMD_GROUP" "$rundir"
    fi
    # As root (its stub domains' images, libvirt's root socket), in the
    # socket's group.
    run_process vtpmd "$VTPMD_PREFIX/sbin/vtpmd -c $VTPMD_CONF" "$VTPMD_GROUP" root
}

function stop_vtpmd {
    stop_process vtpmd
}

function cleanup_vtpmd {
    sudo rm -f "$VTPMD_HOOK_DIR/libxl" "$VTPMD_HOOK_DEFAULTS"
    sudo rm -rf "$SYSTEMD_DIR/devstack@vtpmd.service.d"
    # Keep $VTPMD_STATE_DIR (journal and vTPM images: guests' TPM state).
}

if is_service_enabled vtpmd; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        echo_summary "Installing vtpmd's build dependencies"
        vtpmd_install_deps
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Building and installing vtpmd"
        install_vtpmd
        if [ "$VTPMD_PATCH_NOVA" = True ]; then
            vtpmd_patch_nova
        fi
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring Nova and libvirt for vtpmd"
        configure_vtpmd
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting vtpmd"
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
