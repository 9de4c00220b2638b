#!/bin/sh
# The whole daemon under valgrind (--leak-check=full, errors and definite
# or indirect leaks exit 42) through a complete integration run: a burst
# of creates and deletes (copies of Nova's genuine notifications from
# tests/fixtures/nova/, fresh UUIDs: tests/tools/fault_burst.py) with
# malformed messages dead-lettered among them, proxy faults (5xx, a
# dropped connection) retried, every control API call, a
# graceful SIGTERM with work in flight, then a second run that
# reconciles from the journal (test:///default lost every domain with
# the process: all re-defined and started), tears down the rest and stops.
# Sized for valgrind's ~20x slowdown.
. "$(dirname "$0")/../lib/common.sh"
use_valgrind
[ -n "$VALGRIND" ] || { echo "valgrind not installed: skipped"; exit 77; }
. "$top_srcdir/tests/lib/fault.sh"
N=${FAULT_VALGRIND_INSTANCES:-16}
fault_seed

VALGRIND="$VALGRIND --log-file=$T/valgrind.log"
fault_proxy_vtpmd "notifications: {dead_letter_exchange: vtpmd.dlx, max_message_size: 64KiB}"
readlink "/proc/$VTPMD_PID/exe" | grep -q memcheck || fail "vtpmd is not running under valgrind"
"$PYTHON" "$TOOLS/bus_amqp.py" --url "$BROKER_URL" queue dead --bind 'vtpmd.dlx:#' ||
    fail "cannot bind a queue to the dead-letter exchange"

vg_stop() {
    vtpmd_stop # fails unless exit status 0 (valgrind's is 42 on errors)
    grep -q 'ERROR SUMMARY: [1-9]\|definitely lost: [1-9]\|indirectly lost: [1-9]' "$T/valgrind.log" &&
        { cat "$T/valgrind.log"; fail "valgrind: $1"; }
    return 0
}

fake_proxy_faults '{"fail_next": 2, "fail_status": 503}'
"$PYTHON" "$TOOLS/fault_burst.py" burst --url "$BROKER_URL" --fixtures "$top_srcdir/tests/fixtures/nova" \
    --seed "$SEED" --instances "$N" --deleted 0.4 --malformed 20 --plan "$T/plan.1" || fail "burst"
PLANS="--plan $T/plan.1"
quiesce_check 180 60 5 || fail "first burst"
[ "$("$PYTHON" "$TOOLS/bus_amqp.py" --url "$BROKER_URL" count dead)" = 20 ] || fail "dead letters"
for c in health list domains metrics; do ctl "$c" > /dev/null || fail "ctl $c"; ctl --json "$c" > /dev/null 2>&1; done
pass "burst of $N instances and 20 malformed under valgrind: $(grep -o 'instances=.*' "$T/check.out")"

# A dropped connection to the proxy (retried), then SIGTERM with work in
# flight. (Garbage from the proxy fails a create for good: fault-steps.sh.)
fake_proxy_faults '{"drop_next": 1, "latency_ms": 300}'
"$PYTHON" "$TOOLS/fault_burst.py" burst --url "$BROKER_URL" --fixtures "$top_srcdir/tests/fixtures/nova" \
    --seed "$((SEED + 1))" --instances 6 --deleted 0 --plan "$T/plan.2" || fail "burst"
PLANS="$PLANS --plan $T/plan.2"
wait_for "$T/vtpmd.log" 'provisioning instance=' 60 || fail "no work started"
sleep 1
vg_stop "first run"
fake_proxy_reset
pass "graceful stop with work in flight: valgrind clean"

# Second run: reconciliation from the journal, then what SIGTERM left.
: > "$T/valgrind.log"
vtpmd_start "$T/vtpmd.yaml"
quiesce_check 180 60 5 || fail "after restart"
pass "restart reconciled: $(grep -o 'instances=.*' "$T/check.out")"
vg_stop "second run"
pass "second run valgrind clean"
