#!/bin/sh
# The systemd notification protocol with the real vtpmd and a real broker:
# NOTIFY_SOCKET points at a datagram socket a small reader plays systemd
# with (a path, then an abstract '@' name). READY=1 only once the bus is
# consuming, STATUS= lines, WATCHDOG=1 at half of $WATCHDOG_USEC,
# STOPPING=1 on SIGTERM.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"

reader_stop() { [ -n "${READER_PID:-}" ] && kill "$READER_PID" 2>/dev/null; READER_PID=; return 0; }
add_cleanup reader_stop

reader_start() {
    rm -f "$2" "$2.ready"
    "$PYTHON" "$TOOLS/notify_reader.py" "$1" "$2" > "$T/reader.log" 2>&1 &
    READER_PID=$!
    _i=0
    while [ ! -f "$2.ready" ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
    [ -f "$2.ready" ] || fail "notify reader did not start"
}

vtpmd_config "$T/vtpmd.yaml"

run_one() {
    sock=$1 out=$T/notify.$2
    reader_start "$sock" "$out"
    export NOTIFY_SOCKET="$sock" WATCHDOG_USEC=400000
    unset WATCHDOG_PID
    vtpmd_start "$T/vtpmd.yaml"
    unset NOTIFY_SOCKET WATCHDOG_USEC
    wait_for "$out" '^READY=1\|STATUS=consuming notifications host=cmp1$' 20 ||
        fail "$2: no READY=1 with STATUS"
    [ "$(count_matches "$out" 'READY=1')" -eq 1 ] || fail "$2: READY=1 sent more than once"
    # READY=1 came after the bus was consuming: vtpmctl health agrees.
    ctl health > /dev/null || fail "$2: ready but not healthy"
    # 0.2 s watchdog period: several within 2 s.
    wait_count "$out" '^WATCHDOG=1$' 4 5 || fail "$2: watchdog pings missing"
    vtpmd_stop
    wait_for "$out" '^STOPPING=1\|STATUS=stopping' 5 || fail "$2: no STOPPING=1"
    reader_stop
    pass "$2 socket: READY=1, STATUS, WATCHDOG=1, STOPPING=1"
}

run_one "$T/notify.sock" path
run_one "@vtpmd-ops-notify-$$" abstract

# READY=1 waits for the broker: with the broker down vtpmd starts, says
# why in STATUS=, and is ready only when the broker comes back.
out=$T/notify.late
reader_start "$T/notify2.sock" "$out"
broker_restart_stop
NOTIFY_SOCKET="$T/notify2.sock" ${VALGRIND:-} "$VTPMD" -c "$T/vtpmd.yaml" >> "$T/vtpmd.log" 2>&1 &
VTPMD_PID=$!
sleep 2
grep -q 'READY=1' "$out" && fail "READY=1 without a broker"
broker_restart_start
wait_for "$out" '^READY=1' 60 || fail "no READY=1 after the broker came back"
vtpmd_stop
pass "READY=1 only once the broker is consuming"

# Outside systemd (no NOTIFY_SOCKET) nothing changes; a malformed one is
# reported and ignored.
n=$(count_matches "$T/vtpmd.log" 'bus ready')
NOTIFY_SOCKET=relative/path "$VTPMD" -c "$T/vtpmd.yaml" >> "$T/vtpmd.log" 2>&1 &
VTPMD_PID=$!
wait_for "$T/vtpmd.log" 'malformed NOTIFY_SOCKET' 10 || fail "malformed NOTIFY_SOCKET not reported"
wait_count "$T/vtpmd.log" 'bus ready' $((n + 1)) 30 || fail "vtpmd with a malformed NOTIFY_SOCKET did not run"
vtpmd_stop
pass "malformed NOTIFY_SOCKET ignored"
