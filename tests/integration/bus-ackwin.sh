#!/bin/sh
# Acks against the real broker: a delivery whose work takes long (held by
# the consumer) must stay unacknowledged while the hundreds behind it are
# acknowledged (individually, since basic.ack multiple would take it
# along); no ack is ever sent twice or for an unknown tag (the broker
# would close the channel). "Caught up" is false while a delivery is held
# or the queue is not empty, and true again afterwards.
. "$(dirname "$0")/bus-lib.sh"

broker_start "$T/broker"
add_cleanup broker_stop

bus_config "$T/peer.yaml" "$BROKER_URL" "  prefetch: 64"
start_peer peer -c "$T/peer.yaml" --hold 20000 --probe 200
wait_for "$T/peer-events.log" '^ready$' 60 || fail "peer not ready"
wait_for "$T/peer-events.log" '^caught_up=1$' 30 || fail "never caught up on an empty queue"
pass "caught up on an empty queue"

mark=$(wc -l < "$T/peer-events.log")
amqp publish --exchange nova --key notifications.info --body '{"HOLD": 1}' || fail "publish"
amqp publish --exchange nova --key notifications.info --json-seq --count 500 || fail "publish"
wait_count "$T/peer-events.log" '^deliver ' 501 30 || fail "not every delivery arrived"
wait_queue vtpmd.testhost messages_unacknowledged 1 20 ||
    fail "the deliveries behind the held one were not acknowledged (or it was)"
tail -n +"$mark" "$T/peer-events.log" | grep -q '^caught_up=0$' || fail "caught up while holding a delivery"
grep -q '^release ' "$T/peer-events.log" && fail "released too early for this test"
pass "held delivery stays unacknowledged, the 500 behind it are acknowledged"

wait_for "$T/peer-events.log" '^release tag=1$' 60 || fail "no release"
wait_queue vtpmd.testhost messages_unacknowledged 0 20 || fail "held delivery not acknowledged"
mark=$(wc -l < "$T/peer-events.log")
i=0
until tail -n +"$mark" "$T/peer-events.log" | grep -q '^caught_up=1$'; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "not caught up after the release"; sleep 0.1
done
pass "acknowledged once released; caught up again"

grep -Eq 'PRECONDITION_FAILED|unknown delivery tag|connection failed' "$T/peer.log" &&
    fail "the broker objected: $(grep -E 'PRECONDITION|failed' "$T/peer.log")"
stop_peer $PEER_PID
grep -q '^stats delivered=501 acked=501 rejected=0 ' "$T/peer-events.log" ||
    fail "stats: $(grep '^stats' "$T/peer-events.log")"
pass "no double or unknown ack"
