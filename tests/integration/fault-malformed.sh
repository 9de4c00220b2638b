#!/bin/sh
# 1,000 malformed messages interleaved with good ones, with
# notifications.dead_letter_exchange configured; all real: RabbitMQ, the
# vtpmd binary, libvirt's test:///default, an oslo.messaging status
# listener. Good messages are copies of Nova's genuine notifications from
# tests/fixtures/nova/ with fresh instance UUIDs; malformed ones are of
# many kinds (not JSON, empty, not an object, wrong oslo envelope, an
# envelope whose message is not JSON, bad instance UUIDs, oversize,
# invalid UTF-8, truncated, an embedded NUL, nested too deep, a wrong
# content type, a payload that is not an object, no event_type) - see
# tests/tools/fault_burst.py.
#
# Checks: every malformed message is dead-lettered (counted in a queue
# bound to the dead-letter exchange), every good one processed (the
# invariants of fault-kill.sh), nothing left unacked, and vtpmd's
# resident memory (VmRSS) after the last batch is within a small slack of
# what it was after a warm-up batch (only tombstones of deleted instances
# may rightly be added: under a hundred records).
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/fault.sh"

BATCHES=5       # one warm-up, then four
BAD=200         # malformed messages a batch
GOOD=20         # good instances in the warm-up (half of them deleted
                # again), then GOOD2 a batch, all deleted again: what an
                # instance rightly keeps in memory (a live one's
                # test:///default domain, a tombstone: ~6 kB measured) is
                # not the growth this test looks for
GOOD2=6
SLACK_KB=${FAULT_RSS_SLACK_KB:-256}
fault_seed

listener_start
vtpmd_config "$T/vtpmd.yaml" "notifications: {dead_letter_exchange: vtpmd.dlx, max_message_size: 64KiB}"
vtpmd_start "$T/vtpmd.yaml"
"$PYTHON" "$TOOLS/bus_amqp.py" --url "$BROKER_URL" queue dead --bind 'vtpmd.dlx:#' ||
    fail "cannot bind a queue to the dead-letter exchange"

dead() { "$PYTHON" "$TOOLS/bus_amqp.py" --url "$BROKER_URL" count dead; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$VTPMD_PID/status"; }

PLANS=""
nbad=0
b=1
while [ $b -le $BATCHES ]; do
    seed=$((SEED + b))
    "$PYTHON" "$TOOLS/fault_burst.py" burst --url "$BROKER_URL" \
        --fixtures "$top_srcdir/tests/fixtures/nova" --seed "$seed" --instances "$([ $b = 1 ] && echo $GOOD || echo $GOOD2)" \
        --deleted "$([ $b = 1 ] && echo 0.5 || echo 1.0)" --malformed $BAD --max-size 65536 --plan "$T/plan.$b" > "$T/burst.out" ||
        fail "burst: $(cat "$T/burst.out")"
    PLANS="$PLANS --plan $T/plan.$b"
    nbad=$((nbad + BAD))
    queue_idle 120 || fail "batch $b: not all acked or rejected"
    i=0
    while [ "$(dead)" != "$nbad" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(dead)" = "$nbad" ] || fail "batch $b: $(dead) dead-lettered, want $nbad"
    check_until 20 0.5 || fail "batch $b: good messages not all processed"
    [ $b = 1 ] && rss1=$(rss)
    echo "# batch $b seed=$seed: $(cat "$T/burst.out"); dead-lettered $(dead); VmRSS $(rss) kB"
    b=$((b + 1))
done
rss2=$(rss)
check --show 40 > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "show"; }
pass "$nbad malformed all dead-lettered; $(grep -o 'instances=.*' "$T/check.out")"
ctl metrics | grep 'outcome="malformed"'
echo "# VmRSS after warm-up ${rss1} kB, after $((nbad - BAD)) more malformed and $((GOOD2 * (BATCHES - 1))) instances ${rss2} kB (slack ${SLACK_KB} kB)"
[ $((rss2 - rss1)) -le "$SLACK_KB" ] || fail "memory grew by $((rss2 - rss1)) kB"
pass "memory: $rss1 kB -> $rss2 kB"
vtpmd_stop
pass "clean stop"
