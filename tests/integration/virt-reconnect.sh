#!/bin/sh
# virt against a real libvirt daemon that goes away. A private session
# libvirtd (unprivileged, everything under $T) serves test:///default on
# its UNIX socket; virt-probe connects through it (test+unix://), the
# daemon is killed hard and restarted, and virt must notice the loss
# (libvirt's close callback), report it once, reconnect with backoff, and
# work again: define+start succeeds and lifecycle events arrive on the new
# connection. The probe runs under valgrind when it is installed.
. "$top_srcdir/tests/lib/common.sh"

. "$top_srcdir/tests/lib/libvirtd.sh"
libvirtd_require
PROBE=$top_builddir/tests/tools/virt-probe
NAME=vtpm-9e1f3a5c-7b2d-4c6e-8f10-a1b2c3d4e5f6
PROBE_PID=""

stop_probe() {
    [ -n "$PROBE_PID" ] && kill "$PROBE_PID" 2>/dev/null
    return 0
}
add_cleanup stop_probe

use_valgrind
if [ -n "$VALGRIND" ]; then
    VALGRIND="$VALGRIND --log-file=$T/probe-valgrind.log"
fi

libvirtd_start "$T"
URI=$LVD_TEST_URI
$VALGRIND "$PROBE" "$URI" 300 >"$T/probe.log" 2>"$T/probe-stderr.log" &
PROBE_PID=$!

wait_for "$T/probe.log" '^connection up$' 30 || fail "probe never connected"
wait_for "$T/probe.log" '^job define ret=0$' 30 || fail "define+start through libvirtd failed"
wait_for "$T/probe.log" "^event $NAME 2 " 30 || fail "no started event"
pass "connected through libvirtd: defined, started, lifecycle event on the loop"

libvirtd_kill
wait_for "$T/probe.log" '^connection down$' 30 || fail "loss of libvirtd not noticed"
pass "loss of libvirtd noticed"
# Several reconnect attempts fail while it is away: still one report.
sleep 1.5
[ "$(count_matches "$T/probe.log" '^connection down$')" -eq 1 ] ||
    fail "connection down reported more than once"

libvirtd_start "$T"
wait_count "$T/probe.log" '^connection up$' 2 30 || fail "no reconnect"
wait_count "$T/probe.log" '^job define ret=0$' 2 30 || fail "define+start after reconnect failed"
wait_count "$T/probe.log" "^event $NAME 2 " 2 30 || fail "no lifecycle events after reconnect"
pass "reconnected: jobs and lifecycle events work again"

kill -TERM "$PROBE_PID"
rc=0
wait "$PROBE_PID" || rc=$?
PROBE_PID=""
[ $rc -eq 0 ] || fail "probe exited $rc (42: valgrind found errors, see $T/probe-valgrind.log)"
grep -q '^exit$' "$T/probe.log" || fail "probe did not stop cleanly"
pass "probe stopped cleanly${VALGRIND:+ (valgrind clean)}"

# Only vtpmd's own log lines on stderr: libvirt printed nothing itself.
if grep -v 'virt-probe\[[0-9]*\] ' "$T/probe-stderr.log" | grep -q .; then
    cat "$T/probe-stderr.log" >&2
    fail "something other than vtpmd's log wrote to stderr"
fi
pass "no libvirt output behind vtpmd's back"
