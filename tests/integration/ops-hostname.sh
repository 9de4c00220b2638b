#!/bin/sh
# vtpmd's default host is what Nova takes by default for [DEFAULT] host:
# Python's socket.gethostname(), often a fully qualified name. In a UTS
# namespace of its own (unshare --uts, as root) the machine gets a FQDN;
# vtpmd without a host key must then use exactly the name that
# /usr/bin/python3's socket.gethostname() returns there (it names its
# queue and its status publisher after it), and a host key set to the
# short form gets a warning at start.
. "$(dirname "$0")/../lib/common.sh"

if [ "$(id -u)" != 0 ] || ! unshare --uts true 2>/dev/null; then
    [ "${CI:-}" = true ] && fail "CI: this test needs root and unshare --uts"
    echo "not root or no unshare --uts: skipped"
    exit 77
fi
FQDN=cmp7.rack3.example.org

# in_uts CMD...: runs CMD in a new UTS namespace whose host name is $FQDN.
in_uts() { unshare --uts sh -c 'hostname "$0" && exec "$@"' "$FQDN" "$@"; }

py=$(in_uts "$PYTHON" -c 'import socket; print(socket.gethostname())') || fail "python3 in the namespace"
[ "$py" = "$FQDN" ] || fail "socket.gethostname() in the namespace: '$py', want $FQDN"

# start_vtpmd CONFIG: vtpmd in the namespace (no broker needed: it logs
# its host before it connects); waits for the start line.
start_vtpmd() {
    : > "$T/vtpmd.log"
    # Not through in_uts: $! must be vtpmd (unshare and sh exec it).
    unshare --uts sh -c 'hostname "$0" && exec "$@"' "$FQDN" "$VTPMD" -c "$1" \
        > "$T/vtpmd.log" 2>&1 &
    VTPMD_PID=$!
    wait_for "$T/vtpmd.log" 'started host=' 30 || fail "vtpmd did not start: $(cat "$T/vtpmd.log")"
}
stop_vtpmd() {
    [ -n "${VTPMD_PID:-}" ] || return 0
    kill -TERM "$VTPMD_PID" 2>/dev/null
    wait "$VTPMD_PID" 2>/dev/null
    VTPMD_PID=
    return 0
}
add_cleanup stop_vtpmd

cat > "$T/vtpmd.yaml" <<YAML
state_dir: $T/state
amqp: {urls: ['amqp://127.0.0.1:1/'], reconnect_max: 1s}
vtpmmgr: {provider: local}
image: {dir: $T/images, spares: 0}
libvirt: {uri: 'test:///default', require_vtpm: false}
control: {socket: $T/control.sock}
YAML
start_vtpmd "$T/vtpmd.yaml"
host=$(sed -n 's/.* started host=\([^ ]*\) .*/\1/p' "$T/vtpmd.log" | head -n 1)
[ "$host" = "$py" ] || fail "vtpmd's default host '$host', Nova's (socket.gethostname()) '$py'"
grep -q 'is the short form of' "$T/vtpmd.log" && fail "warned with the default host"
stop_vtpmd
pass "default host = socket.gethostname() = $py"

echo "host: cmp7" >> "$T/vtpmd.yaml"
start_vtpmd "$T/vtpmd.yaml"
wait_for "$T/vtpmd.log" "host=cmp7 is the short form of this machine's name $FQDN" 10 ||
    fail "no warning for a short host name: $(cat "$T/vtpmd.log")"
stop_vtpmd
pass "host set to the short form of the FQDN: warned"
