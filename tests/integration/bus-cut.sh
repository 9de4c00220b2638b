#!/bin/sh
# Faults between the bus and the broker, through a TCP proxy the test
# breaks: the connection cut in the middle of a frame of a large message
# (the bus reconnects, the broker redelivers it whole, it is acked once),
# and a broker that vanishes without closing anything (only heartbeats
# notice: two missed intervals, then reconnect). Under valgrind when present.
. "$(dirname "$0")/bus-lib.sh"
use_valgrind
PEER_VALGRIND=$VALGRIND

broker_test_start
start_proxy "$BROKER_PORT"

bus_config "$T/peer.yaml" "$PROXY_URL" "  heartbeat: 2s" "  reconnect_max: 500ms"
start_peer peer -c "$T/peer.yaml"
wait_for "$T/peer-events.log" '^ready$' 60 || fail "peer not ready"

# 300 KB: three body frames at the negotiated frame_max of 128 KiB.
proxy_cmd "cut 100000"
amqp publish --exchange nova --key notifications.info --persistent --size 300000 ||
    fail "cannot publish"
wait_for "$T/proxy.log" '^cut$' 30 || fail "proxy did not cut"
wait_for "$T/peer.log" 'amqp connection failed .*state=ready' 30 || fail "cut not noticed"
wait_count "$T/peer-events.log" '^ready$' 2 60 || fail "no reconnect after the cut"
wait_for "$T/peer-events.log" '^deliver tag=1 bytes=300000 redelivered=1 ' 30 ||
    fail "the large message was not redelivered whole: $(grep deliver "$T/peer-events.log")"
grep -q '^deliver .*redelivered=0' "$T/peer-events.log" &&
    fail "a partial message was delivered"
wait_queue vtpmd.testhost messages_unacknowledged 0 30 || fail "left unacknowledged"
wait_queue vtpmd.testhost messages 0 30 || fail "left in the queue"
pass "cut mid-frame: reconnected, redelivered whole, acknowledged once"

# The broker stops answering, the TCP connection stays up.
proxy_cmd freeze
wait_for "$T/peer.log" 'no data from the broker for [0-9]+ ms \(two heartbeat intervals\): peer dead' 30 ||
    fail "dead peer not detected by heartbeats"
grep -q '^lost$' "$T/peer-events.log" || fail "no state change"
silent=$(sed -n 's/.*no data from the broker for \([0-9]*\) ms.*/\1/p' "$T/peer.log" | head -n 1)
[ "$silent" -ge 4000 ] || fail "declared dead after $silent ms, before two intervals of 2 s"
proxy_cmd thaw
wait_count "$T/peer-events.log" '^ready$' 3 60 || fail "no reconnect after the freeze"
amqp publish --exchange nova --key versioned_notifications.error --json-seq --count 3 ||
    fail "publish"
wait_count "$T/peer-events.log" '^deliver ' 4 30 || fail "not consuming after the freeze"
pass "frozen broker detected by heartbeats after two intervals; consuming again"

stop_peer $PEER_PID
pass "graceful stop"

# An ack for a delivery of a lost connection must not be sent on the new
# one: there, the same tag names the redelivered copy, still at work (the
# broker would then refuse the second ack and close the channel).
start_peer held -c "$T/peer.yaml" --hold 5000
wait_for "$T/held-events.log" '^ready$' 60 || fail "held peer not ready"
amqp publish --exchange nova --key notifications.info --persistent --body '{"HOLD": true}' ||
    fail "publish"
wait_for "$T/held-events.log" '^deliver tag=1 .*redelivered=0 .*action=hold' 30 || fail "not held"
proxy_cmd close
wait_for "$T/held-events.log" '^lost$' 30 || fail "cut not noticed"
proxy_cmd open
wait_for "$T/held-events.log" '^deliver tag=1 .*redelivered=1 .*action=hold' 60 ||
    fail "not redelivered"
wait_count "$T/held-events.log" '^release tag=1$' 2 60 || fail "holds not released"
wait_queue vtpmd.testhost messages 0 30 || fail "message left"
grep -Eq 'PRECONDITION_FAILED|unknown delivery tag' "$T/held.log" &&
    fail "an ack went to the wrong channel: $(grep PRECONDITION "$T/held.log")"
[ "$(grep -c 'connection failed .*state=ready' "$T/held.log")" = 1 ] ||
    fail "a working connection failed besides the cut: $(grep failed "$T/held.log")"
stop_peer $PEER_PID
grep -q '^stats delivered=2 acked=1 ' "$T/held-events.log" ||
    fail "stats: $(grep '^stats' "$T/held-events.log")"
pass "the ack of the lost connection's delivery was dropped; the redelivered copy acked once"
