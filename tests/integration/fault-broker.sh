#!/bin/sh
# RabbitMQ stopped and started again in the middle of a burst of mixed
# creates and deletes; all real: the broker (same node, data kept), the
# vtpmd binary, libvirt's test:///default, the fake Keylime-VM proxy (api
# v1), an oslo.messaging status listener (which reconnects by itself).
#
# The bursts re-publish copies of the genuine notifications Nova's own
# code wrote into tests/fixtures/nova/ (host compute1), with fresh
# instance UUIDs and message ids, persistent like kombu's
# (tests/tools/fault_burst.py).
#
# Per trial (seed printed; FAULT_SEED=N repeats): a burst of
# FAULT_BROKER_INSTANCES instances, the broker stopped at a random moment
# while vtpmd works through it (after a random number of its commits), started again after a few seconds, a
# smaller burst after the restart; then, once vtpmd's queue is empty with
# nothing unacked and the engine idle, the invariants of fault-kill.sh
# (fault_burst.py check) and the status notifications: at least one
# vtpm.create.end for every instance and one vtpm.delete.end for every
# deleted one reached the oslo listener (duplicates allowed).
#
# The status exchange is not durable (the contract, like Nova's own
# notification exchange), so RabbitMQ forgets it and the listener's
# queue with the restart, and drops as unroutable whatever is published
# before a consumer has declared its queue again. oslo.messaging's
# listener reconnects with a growing back-off (seconds), vtpmd sooner; so
# the moment the broker listens again the test declares the listener's
# queues exactly as oslo.messaging does (fault_burst.py prebind) - as any
# status consumer whose queues outlive its own restarts would have them.
# Every status vtpmd publishes after that must then reach the listener.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/fault.sh"

TRIALS=${FAULT_BROKER_TRIALS:-1} N=${FAULT_BROKER_INSTANCES:-150}
fault_seed "$TRIALS trials of $N + $((N / 3)) instances"
fault_proxy_vtpmd

burst() {
    "$PYTHON" "$TOOLS/fault_burst.py" burst --url "$BROKER_URL" \
        --fixtures "$top_srcdir/tests/fixtures/nova" --seed "$1" --instances "$2" \
        --plan "$T/plan.$1" || fail "burst $1"
    PLANS="$PLANS --plan $T/plan.$1"
}

PLANS=""
trial=1
start=$(date +%s)
while [ $trial -le "$TRIALS" ]; do
    seed=$((SEED + trial * 2))
    r0=$(commits)
    # Stopped after a random number of this burst's commits (of ~1.4 N).
    k=$(rnd "$seed" 10 "$N" | cut -d. -f1)
    burst "$seed" "$N"
    wait_commits "$r0" "$k"
    done=$(($(commits) - r0))
    t0=$(date +%s)
    broker_restart_stop
    echo "# trial $trial: broker stopping after $done of the burst's commits (aimed at $k)"
    sleep 2
    "$PYTHON" "$TOOLS/fault_burst.py" prebind --url "$BROKER_URL" > "$T/prebind.log" 2>&1 &
    prebind=$!
    broker_restart_start || fail "broker did not start again"
    wait "$prebind" || fail "prebind: $(cat "$T/prebind.log")"
    echo "# trial $trial: broker back after $(($(date +%s) - t0)) s"
    wait_count "$T/vtpmd.log" 'bus ready' $((trial + 1)) 60 || fail "vtpmd did not reconnect"
    burst "$((seed + 1))" "$((N / 3))"
    queue_idle 120 || fail "trial $trial: queue not drained"
    check_until 30 1 || fail "trial $trial (seed $seed): invariants violated"
    check --show 40 > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "trial $trial: ctl show"; }
    pass "trial $trial seed=$seed: $(grep -o 'instances=.*' "$T/check.out")"
    trial=$((trial + 1))
done
grep -Ei 'PRECONDITION_FAILED|unknown delivery tag' "$T/vtpmd.log" &&
    fail "the broker refused an ack (double or stale ack?)"
ctl health > /dev/null || fail "health"
vtpmd_stop
pass "$TRIALS broker restarts, $(( (N + N / 3) * TRIALS)) instances, $(($(date +%s) - start)) s; statuses all delivered; clean stop"
