#!/bin/sh
# kill -9 of vtpmd at random points of bursts of mixed creates and
# deletes; all real: RabbitMQ, the vtpmd binary, libvirt's
# test:///default, the fake Keylime-VM proxy (api v1), an oslo.messaging
# status listener.
#
# The bursts re-publish copies of the genuine notifications Nova's own
# code wrote into tests/fixtures/nova/ (host compute1), with fresh
# instance UUIDs and message ids (tests/tools/fault_burst.py: Nova's
# Python start-up costs ~2 s per process, too slow for bursts).
#
# Each trial (seed printed; FAULT_SEED=N repeats a run) publishes
# FAULT_KILL_INSTANCES instances (~40% created then deleted, the rest only
# created; each in both formats or one), kills vtpmd with SIGKILL at a
# random moment of the burst (after a random number of its commits) (some trials kill it again during its
# recovery), restarts it and, once its queue is empty with nothing
# unacked and the engine idle, checks every instance of every trial so
# far (fault_burst.py check): every live instance has exactly one running
# stub domain, its image, state ready, and the fake proxy's live vTPM
# UUIDs are exactly the live instances' (no leak, no duplicate); no
# deleted instance has anything; status vtpm.create.end (and
# vtpm.delete.end) reached the listener for each.
#
# "Acked exactly once, after its work was durable", from outside:
# test:///default keeps its domains only in the vtpmd process, so after a
# kill everything a live instance has comes back only from the journal.
# A create acked before its READY record was durable would leave that
# instance without a domain after the restart; a delete acked before its
# tombstone would bring the domain back. Either fails the check. A double
# ack (or an ack of a dead delivery on a new channel) makes RabbitMQ close
# the channel with PRECONDITION_FAILED: the log must show none. At the end
# the queue holds nothing, ready or unacked.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/fault.sh"

TRIALS=${FAULT_KILL_TRIALS:-10} N=${FAULT_KILL_INSTANCES:-150}
fault_seed "$TRIALS trials of $N instances"
fault_proxy_vtpmd

PLANS=""
trial=1
start=$(date +%s)
while [ $trial -le "$TRIALS" ]; do
    seed=$((SEED + trial))
    r0=$(commits)
    "$PYTHON" "$TOOLS/fault_burst.py" burst --url "$BROKER_URL" \
        --fixtures "$top_srcdir/tests/fixtures/nova" --seed "$seed" --instances "$N" \
        --plan "$T/plan.$trial" > "$T/burst.$trial.out" 2>&1 &
    burst=$!
    # The kill point: after a random number of this burst's commits
    # (0..N, of about 1.4 N), plus a random fraction of a second.
    k=$(rnd "$seed" 0 "$N" | cut -d. -f1)
    delay=$(rnd "$((seed * 3))" 0.0 0.3)
    wait_commits "$r0" "$k"
    sleep "$delay"
    done=$(($(commits) - r0))
    kill -9 "$VTPMD_PID"
    wait "$VTPMD_PID" 2>/dev/null
    wait "$burst" || fail "trial $trial: burst: $(cat "$T/burst.$trial.out")"
    PLANS="$PLANS --plan $T/plan.$trial"
    echo "# trial $trial seed=$seed: $(cat "$T/burst.$trial.out"); SIGKILL after $done commits of this burst (aimed at $k + ${delay}s)"
    vtpmd_start "$T/vtpmd.yaml"
    # Every third trial: killed again during its recovery.
    if [ $((seed % 3)) = 0 ]; then
        d2=$(rnd "$((seed * 7))" 0.0 1.0)
        sleep "$d2"
        kill -9 "$VTPMD_PID"
        wait "$VTPMD_PID" 2>/dev/null
        echo "# trial $trial: killed again ${d2}s into recovery"
        vtpmd_start "$T/vtpmd.yaml"
    fi
    quiesce_check || fail "trial $trial (seed $seed): invariants violated"
    pass "trial $trial seed=$seed: $(tail -n 1 "$T/check.out" | grep -o 'instances=.*' || true)"
    trial=$((trial + 1))
done
grep -Ei 'PRECONDITION_FAILED|unknown delivery tag|channel closed' "$T/vtpmd.log" &&
    fail "the broker closed a channel (double or stale ack?)"
queue_idle 10 || fail "queue not empty at the end"
ctl health > /dev/null || fail "health"
vtpmd_stop
pass "$TRIALS kill -9 trials, $((N * TRIALS)) instances, $(($(date +%s) - start)) s; no channel errors; clean stop"
