# A private session libvirtd for the tests: unprivileged, everything
# (sockets, config, logs, swtpm state) under LVD_HOME, its QEMU guests and
# virtlogd its own. As root it runs as nobody, so it touches only
# LVD_HOME. Source after common.sh; the daemons started here are stopped
# by their pids when the test exits.
#
#   libvirtd_require [qemu]   the binaries (in CI a missing one fails)
#   libvirtd_start DIR        starts it (again after a kill), sets LVD_PID,
#                             LVD_HOME=DIR/home, LVD_SOCK, LVD_QEMU_URI,
#                             LVD_TEST_URI, LVD_USER and LVD_AS (the
#                             command prefix that runs as LVD_USER)
#   libvirtd_kill             kill -9 of libvirtd alone (its guests live on)
#   lvd_virsh ARGS...         virsh against the session's QEMU driver

LIBVIRTD=$(command -v libvirtd 2>/dev/null || echo /usr/sbin/libvirtd)
LVD_PID=""

libvirtd_require() {
    _need="$LIBVIRTD"
    [ "${1:-}" = qemu ] && _need="$_need virsh qemu-system-x86_64"
    for _b in $_need; do
        command -v "$_b" >/dev/null 2>&1 && continue
        [ "${CI:-}" = true ] && fail "$_b is required in CI: run scripts/install-deps.sh"
        echo "SKIP: $_b not installed (scripts/install-deps.sh installs it)"
        exit 77
    done
}

libvirtd_start() {
    LVD_HOME=$1/home
    LVD_RUN=$LVD_HOME/run
    LVD_SOCK=$LVD_RUN/libvirt/libvirt-sock
    LVD_QEMU_URI="qemu+unix:///session?socket=$LVD_SOCK"
    LVD_TEST_URI="test+unix:///default?socket=$LVD_SOCK"
    mkdir -p "$LVD_HOME/config"
    LVD_AS=""
    LVD_USER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        chmod 711 "$1"
        chown -R nobody "$LVD_HOME"
        LVD_USER=nobody
        LVD_AS="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups --"
    fi
    if [ -z "${LVD_CLEANUP_SET:-}" ]; then
        add_cleanup libvirtd_stop
        LVD_CLEANUP_SET=1
    fi
    rm -f "$LVD_SOCK"
    # setpriv and env exec, so $! is libvirtd itself.
    $LVD_AS env -i HOME="$LVD_HOME" XDG_RUNTIME_DIR="$LVD_RUN" \
        XDG_CONFIG_HOME="$LVD_HOME/config" XDG_CACHE_HOME="$LVD_HOME/cache" \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        "$LIBVIRTD" >>"$1/libvirtd.out" 2>&1 &
    LVD_PID=$!
    _i=0
    while [ ! -S "$LVD_SOCK" ]; do
        kill -0 "$LVD_PID" 2>/dev/null || fail "libvirtd exited (see $1/libvirtd.out)"
        _i=$((_i + 1))
        [ $_i -le 400 ] || fail "libvirtd did not create $LVD_SOCK"
        sleep 0.05
    done
}

lvd_virsh() { virsh -q -c "$LVD_QEMU_URI" "$@"; }

libvirtd_kill() {
    [ -n "$LVD_PID" ] && kill -KILL "$LVD_PID" 2>/dev/null
    [ -n "$LVD_PID" ] && wait "$LVD_PID" 2>/dev/null
    LVD_PID=""
    return 0
}

# Guests first (through libvirtd while it is up, then by their pid files),
# then libvirtd and the virtlogd it spawned.
libvirtd_stop() {
    if [ -n "$LVD_PID" ] && command -v virsh >/dev/null 2>&1; then
        for _d in $(virsh -q -c "$LVD_QEMU_URI" list --name 2>/dev/null); do
            virsh -q -c "$LVD_QEMU_URI" destroy "$_d" >/dev/null 2>&1
        done
    fi
    for _p in $(ls "$LVD_RUN"/libvirt/qemu/run/*.pid 2>/dev/null | grep -v /driver.pid) "$LVD_RUN"/libvirt/qemu/run/swtpm/*.pid; do
        [ -f "$_p" ] && kill -KILL "$(cat "$_p")" 2>/dev/null
    done
    libvirtd_kill
    [ -f "$LVD_RUN/libvirt/virtlogd.pid" ] && kill "$(cat "$LVD_RUN/libvirt/virtlogd.pid")" 2>/dev/null
    return 0
}
