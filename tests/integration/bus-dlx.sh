#!/bin/sh
# Bodies that are not JSON objects, empty, or larger than
# notifications.max_message_size are rejected without requeue: the broker
# dead-letters them to notifications.dead_letter_exchange, and the bus goes
# on consuming. (The size limit is the bus's own; the JSON judgement here
# is the test consumer's, standing in for novamsg_decode.)
. "$(dirname "$0")/bus-lib.sh"
use_valgrind
PEER_VALGRIND=$VALGRIND

broker_start "$T/broker"
add_cleanup broker_stop

bus_config "$T/peer.yaml" "$BROKER_URL" \
    "notifications: {dead_letter_exchange: vtpmd.dlx, max_message_size: 1KiB}"
start_peer peer -c "$T/peer.yaml" --reject-malformed
wait_for "$T/peer-events.log" '^ready$' 60 || fail "peer not ready"
broker_ctl list_exchanges -q name type durable | grep -Eq '^vtpmd.dlx[[:space:]]+topic[[:space:]]+true$' ||
    fail "dead-letter exchange not declared"
broker_ctl list_queues -q name arguments | grep -q 'x-dead-letter-exchange.*vtpmd.dlx' ||
    fail "queue lacks x-dead-letter-exchange"
amqp queue dead --bind 'vtpmd.dlx:#' || fail "cannot bind the dead-letter queue"

amqp publish --exchange nova --key notifications.info --body 'this is not json' || fail "publish"
amqp publish --exchange nova --key notifications.info --body '' || fail "publish"
amqp publish --exchange nova --key versioned_notifications.info --size 2048 || fail "publish"
amqp publish --exchange nova --key notifications.error --body '[1, 2]' || fail "publish"
amqp publish --exchange nova --key notifications.info --body '{"oslo.version": "2.0"}' || fail "publish"
wait_count "$T/peer-events.log" '^deliver ' 4 30 || fail "deliveries missing"
wait_for "$T/peer.log" 'amqp delivery rejected: body of 2048 bytes exceeds notifications.max_message_size=1024 tag=3' 30 ||
    fail "oversized body not rejected by the bus"
grep -q '^deliver tag=3 ' "$T/peer-events.log" && fail "the oversized body reached the consumer"
wait_queue dead messages 4 30 || fail "dead-letter queue does not hold the 4 rejected"
wait_queue vtpmd.testhost messages_unacknowledged 0 30 || fail "left unacknowledged"
wait_queue vtpmd.testhost messages 0 30 || fail "left in the queue"
amqp dump dead > "$T/dead.jsonl" || fail "cannot read the dead-letter queue"
"$PYTHON" - "$T/dead.jsonl" <<'PY' || fail "dead letters wrong"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bodies = sorted(r["body"] for r in rows)
assert bodies == sorted(["this is not json", "", "x" * 2048, "[1, 2]"]), bodies
for r in rows:
    d = r["headers"]["x-death"][0]
    assert d["reason"] == "rejected" and d["queue"] == "vtpmd.testhost", d
PY
pass "not JSON, empty, oversized, not an object: dead-lettered (x-death rejected)"

amqp publish --exchange nova --key notifications.info --body '{"still": "consuming"}' || fail "publish"
wait_count "$T/peer-events.log" 'action=ack' 2 30 || fail "stopped consuming after rejects"
stop_peer $PEER_PID
grep -q '^stats delivered=5 acked=2 rejected=4 ' "$T/peer-events.log" ||
    fail "stats: $(grep '^stats' "$T/peer-events.log")"
pass "goes on consuming; stats count the rejects"

# The daemon itself: novamsg_decode decides what is malformed.
bus_config "$T/vtpmd.yaml" "$BROKER_URL" \
    "notifications: {dead_letter_exchange: vtpmd.dlx2, max_message_size: 4KiB, queue: vtpmd.daemon}"
"$VTPMD" -c "$T/vtpmd.yaml" > "$T/daemon.log" 2>&1 &
dpid=$!
stop_daemon() { kill -9 $dpid 2>/dev/null; }
add_cleanup stop_daemon
wait_for "$T/daemon.log" 'amqp ready' 60 || fail "daemon not ready"
amqp queue dead2 --bind 'vtpmd.dlx2:#' || fail "cannot bind dead2"
amqp publish --exchange nova --key notifications.info --body 'not json at all' || fail "publish"
amqp publish --exchange nova --key notifications.info --body '' || fail "publish"
amqp publish --exchange nova --key notifications.info --size 5000 || fail "publish"
amqp publish --exchange nova --key versioned_notifications.info \
    --body-file "$top_srcdir/tests/fixtures/nova/genuine/02-boot-versioned-instance.create.start.json" ||
    fail "publish"
wait_queue dead2 messages 3 30 || fail "the daemon did not dead-letter the 3 malformed bodies"
wait_queue vtpmd.daemon messages 0 30 || fail "the daemon left messages"
kill -0 $dpid || fail "the daemon died"
kill -TERM $dpid
wait $dpid || fail "daemon exit status $?"
grep -q 'amqp stopped delivered=3 acked=1 rejected=3' "$T/daemon.log" ||
    fail "daemon summary: $(grep 'amqp stopped' "$T/daemon.log")"
pass "the daemon dead-letters what novamsg_decode calls malformed and goes on"
