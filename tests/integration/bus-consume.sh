#!/bin/sh
# The real daemon on a real RabbitMQ, fed by Nova's own notification code
# (oslo.messaging Notifier, driver messagingv2, legacy and versioned):
# the topology has exactly oslo.messaging's flags, vtpmd's own durable
# queue is bound to <topic>.info/.error, every delivery is consumed and
# acknowledged, a reload applies a new prefetch, SIGTERM stops cleanly.
# Under valgrind when present (always in CI).
. "$(dirname "$0")/bus-lib.sh"
use_valgrind

broker_start "$T/broker"
add_cleanup broker_stop

bus_config "$T/vtpmd.yaml" "$BROKER_URL" "  prefetch: 32"
$VALGRIND "$VTPMD" -c "$T/vtpmd.yaml" > "$T/daemon.log" 2>&1 &
pid=$!
stop_daemon() { kill -9 $pid 2>/dev/null; }
add_cleanup stop_daemon
wait_for "$T/daemon.log" 'amqp ready url=amqp://guest@127.0.0.1:[0-9]+/ queue=vtpmd.testhost' 60 ||
    fail "bus not ready"
pass "connected and consuming"

# Topology, as the broker sees it.
broker_ctl list_exchanges -q name type durable auto_delete > "$T/exchanges.txt"
grep -Eq '^nova[[:space:]]+topic[[:space:]]+false[[:space:]]+false$' "$T/exchanges.txt" ||
    fail "exchange nova is not topic/non-durable/non-auto-delete: $(grep nova "$T/exchanges.txt")"
grep -Eq '^vtpmd[[:space:]]+topic[[:space:]]+false[[:space:]]+false$' "$T/exchanges.txt" ||
    fail "status exchange vtpmd has other flags"
broker_ctl list_queues -q name durable auto_delete exclusive > "$T/queues.txt"
grep -Eq '^vtpmd.testhost[[:space:]]+true[[:space:]]+false[[:space:]]+false$' "$T/queues.txt" ||
    fail "queue vtpmd.testhost is not durable: $(cat "$T/queues.txt")"
broker_ctl list_bindings -q source_name destination_name routing_key > "$T/bindings.txt"
for key in notifications.info notifications.error versioned_notifications.info \
    versioned_notifications.error; do
    grep -Eq "^nova[[:space:]]+vtpmd.testhost[[:space:]]+$key\$" "$T/bindings.txt" ||
        fail "no binding nova -> vtpmd.testhost $key"
done
# Never the shared queues other services read.
grep -Eq "vtpmd.testhost[[:space:]]+notifications.info" "$T/queues.txt" && fail "odd queue"
broker_ctl list_consumers -q queue_name ack_required prefetch_count > "$T/consumers.txt"
grep -Eq '^vtpmd.testhost[[:space:]]+true[[:space:]]+32$' "$T/consumers.txt" ||
    fail "consumer is not manual-ack with prefetch 32: $(cat "$T/consumers.txt")"
pass "topology: exchange nova topic durable=false auto_delete=false, durable queue, 4 bindings, manual acks"

# Genuine notifications from Nova's code, both formats, this host and
# others: 3 instances x (create.start, create.end, delete.start,
# delete.end) x 2 formats = 24 deliveries.
for i in 1 2 3; do
    u=$(cat /proc/sys/kernel/random/uuid)
    echo "create.start:$u create.end:$u delete:$u"
done > "$T/events.txt"
"$PYTHON" "$TOOLS/nova_emit.py" --url "$BROKER_URL" --host compute-7 - < "$T/events.txt" \
    > "$T/emit.log" 2>&1 || fail "nova_emit failed"
# "messages" counts ready and unacknowledged ones; the stop summary below
# proves they were delivered, not dropped.
wait_queue vtpmd.testhost messages 0 60 || fail "queue not drained"
wait_queue vtpmd.testhost messages_unacknowledged 0 30 || fail "deliveries left unacknowledged"
pass "24 genuine Nova notifications consumed and acknowledged"

# Reload: a new prefetch is applied with basic.qos, no reconnect.
sed -i 's/prefetch: 32/prefetch: 8/' "$T/vtpmd.yaml"
kill -HUP $pid
wait_for "$T/daemon.log" 'amqp prefetch changed prefetch=8' 30 || fail "prefetch not re-applied"
grep -q 'amqp settings changed: reconnecting' "$T/daemon.log" && fail "a prefetch change reconnected"
i=0
until broker_ctl list_consumers -q queue_name prefetch_count | grep -Eq '^vtpmd.testhost[[:space:]]+8$'; do
    i=$((i + 1)); [ $i -lt 20 ] || fail "consumer prefetch not 8: $(broker_ctl list_consumers -q)"; sleep 0.5
done
"$PYTHON" "$TOOLS/nova_emit.py" --url "$BROKER_URL" --host compute-8 \
    "create.start:$(cat /proc/sys/kernel/random/uuid)" > "$T/emit2.log" 2>&1 || fail "nova_emit"
wait_queue vtpmd.testhost messages 0 60 || fail "deliveries after reload"
pass "reload re-applies the prefetch (basic.qos, consumer started again)"

# A reload that changes the topology reconnects and re-declares.
sed -i 's/^amqp:$/notifications: {topics: [versioned_notifications]}\namqp:/' "$T/vtpmd.yaml"
kill -HUP $pid
wait_for "$T/daemon.log" 'amqp settings changed: reconnecting' 30 || fail "no reconnect"
wait_count "$T/daemon.log" 'amqp ready' 2 30 || fail "not ready again"
pass "reload with new topics reconnects"

term_wait $pid
grep -q 'amqp stopped delivered=26 acked=26' "$T/daemon.log" || fail "stop summary: $(grep 'amqp stopped' "$T/daemon.log")"
broker_ctl list_connections -q name > "$T/conns.txt"
[ -s "$T/conns.txt" ] && fail "connection left open: $(cat "$T/conns.txt")"
pass "SIGTERM: consumer cancelled, connection closed, exit 0"
