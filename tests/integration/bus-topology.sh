#!/bin/sh
# Topology conflicts are reported clearly and retried, never "fixed" by
# vtpmd: an exchange nova declared with other flags than oslo.messaging's
# (Nova's publishes would fail against it too), and vtpmd's queue existing
# with other arguments (a dead-letter exchange added later). Once the
# operator removes the culprit, the bus recovers by itself.
. "$(dirname "$0")/bus-lib.sh"

broker_start "$T/broker"
add_cleanup broker_stop

amqp exchange nova --durable || fail "cannot pre-declare nova"
bus_config "$T/peer.yaml" "$BROKER_URL" "  reconnect_max: 500ms"
start_peer peer -c "$T/peer.yaml"
wait_count "$T/peer.log" "error: amqp connection failed .*state=declaring: the broker closed channel 1 after exchange.declare exchange=nova type=topic durable=false auto_delete=false \(oslo.messaging's flags, as Nova declares it\): 406 PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'nova'.*; the exchange exists with other flags" 2 30 ||
    fail "flag conflict not reported (or not retried): $(tail -n 5 "$T/peer.log")"
grep -q '^ready$' "$T/peer-events.log" && fail "ready against a conflicting exchange"
pass "exchange with other flags: clear error naming the flags, retried"

amqp delete-exchange nova || fail "cannot delete nova"
wait_for "$T/peer-events.log" '^ready$' 30 || fail "did not recover after the fix"
broker_ctl list_exchanges -q name durable auto_delete | grep -Eq '^nova[[:space:]]+false[[:space:]]+false$' ||
    fail "nova not declared with oslo's flags"
stop_peer $PEER_PID
pass "recovered by itself once the exchange was removed"

# The queue exists (declared above without arguments); adding a
# dead-letter exchange changes its arguments: the broker refuses.
bus_config "$T/dlx.yaml" "$BROKER_URL" "  reconnect_max: 500ms" \
    "notifications: {dead_letter_exchange: vtpmd.dlx}"
start_peer dlx -c "$T/dlx.yaml"
wait_for "$T/dlx.log" "error: amqp connection failed .*state=declaring: the broker closed channel 1 after queue.declare queue=vtpmd.testhost durable=true x-dead-letter-exchange=vtpmd.dlx: 406 PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange'.*a queue cannot be re-declared with a different x-dead-letter-exchange" 30 ||
    fail "argument conflict not reported: $(tail -n 5 "$T/dlx.log")"
stop_peer $PEER_PID
pass "queue with other arguments: clear error with the way out"
