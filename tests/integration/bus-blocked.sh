#!/bin/sh
# A broker resource alarm: RabbitMQ blocks publishing connections and says
# so (connection.blocked). The bus holds its status messages in the outbox
# meanwhile, without dropping the connection, and sends them all once the
# alarm clears (connection.unblocked).
. "$(dirname "$0")/bus-lib.sh"

broker_start "$T/broker"
add_cleanup broker_stop
clear_alarm() { broker_ctl set_vm_memory_high_watermark 0.4 > /dev/null 2>&1; return 0; }
add_cleanup clear_alarm

N=150  # 30 s of publishing: the alarm must land while the peer still publishes
bus_config "$T/peer.yaml" "$BROKER_URL"
start_peer peer -c "$T/peer.yaml" --publish $N --interval 200
wait_count "$T/peer-events.log" '^confirm seq=[0-9]+ status=0 ' 3 60 || fail "no confirms"
broker_ctl set_vm_memory_high_watermark 0.0000001 > /dev/null || fail "cannot raise an alarm"
wait_for "$T/peer.log" 'amqp broker blocks publishing \(resource alarm\): low on memory; status messages wait in the outbox' 30 ||
    fail "connection.blocked not handled: $(tail -n 3 "$T/peer.log")"
sleep 2
held=$(grep -c '^confirm ' "$T/peer-events.log")
[ "$held" -lt $N ] || fail "everything confirmed during the alarm?"
sleep 2
[ "$(grep -c '^confirm ' "$T/peer-events.log")" = "$held" ] || fail "confirms during the alarm"
pass "blocked: publishing held at $held of $N"

clear_alarm
wait_for "$T/peer.log" 'amqp broker unblocked publishing' 30 || fail "unblock not seen"
wait_count "$T/peer-events.log" '^confirm seq=[0-9]+ status=0 ' $N 120 || fail "outbox not drained"
grep -q 'connection failed' "$T/peer.log" && fail "the connection dropped"
stop_peer $PEER_PID
pass "unblocked: all $N confirmed, same connection"
