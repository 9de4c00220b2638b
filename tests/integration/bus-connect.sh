#!/bin/sh
# Connecting: amqp.urls fails over in order (a port nobody listens on, then
# a host name resolved through /etc/hosts); a broker that refuses the
# login, or the vhost, is reported clearly, without the password, and
# retried with backoff; SIGTERM while reconnecting stops at once.
. "$(dirname "$0")/bus-lib.sh"

broker_start "$T/broker"
add_cleanup broker_stop
dead_port=$(broker_free_port)

# Failover: the first URL is refused, the second one is a host name.
bus_config "$T/fo.yaml" "amqp://127.0.0.1:$dead_port/" "  reconnect_max: 1s"
sed -i "s|urls: \['amqp://127.0.0.1:$dead_port/'\]|urls: ['amqp://127.0.0.1:$dead_port/', 'amqp://localhost:$BROKER_PORT/']|" "$T/fo.yaml"
start_peer fo -c "$T/fo.yaml"
fo_pid=$PEER_PID
wait_for "$T/fo-events.log" '^ready$' 30 || fail "no failover to the second URL"
grep -q "amqp connection failed url=amqp://guest@127.0.0.1:$dead_port/ state=connecting: cannot connect: Connection refused" "$T/fo.log" ||
    fail "the refused first URL was not reported: $(cat "$T/fo.log")"
grep -q "amqp ready url=amqp://guest@localhost:$BROKER_PORT/" "$T/fo.log" || fail "not on the second URL"
stop_peer $fo_pid
pass "failover: refused URL, then the next one (name resolved)"

# A login the broker refuses: clear error, retried, password never logged.
bus_config "$T/bad.yaml" "amqp://guest:s3cret-wrong@127.0.0.1:$BROKER_PORT/" "  reconnect_max: 500ms"
start_peer bad -c "$T/bad.yaml"
bad_pid=$PEER_PID
wait_count "$T/bad.log" 'error: amqp connection failed .*state=login: login refused by the broker \(check the user and password in amqp.urls\): ACCESS_REFUSED' 2 30 ||
    fail "refused login not reported (or not retried): $(cat "$T/bad.log")"
grep -q 's3cret-wrong' "$T/bad.log" && fail "the password was logged"
kill -0 $bad_pid || fail "peer died on a refused login"
stop_peer $bad_pid
grep -q '^ready$' "$T/bad-events.log" && fail "ready with a wrong password?"
pass "refused login: clear error, retried with backoff, password not logged, clean stop"

# A vhost that does not exist.
bus_config "$T/vh.yaml" "amqp://127.0.0.1:$BROKER_PORT/novhost" "  reconnect_max: 500ms"
start_peer vh -c "$T/vh.yaml"
vh_pid=$PEER_PID
wait_for "$T/vh.log" "error: amqp connection failed .*state=login: the broker closed the connection: 530 NOT_ALLOWED - vhost novhost not found" 30 ||
    fail "missing vhost not reported: $(cat "$T/vh.log")"
stop_peer $vh_pid
pass "unknown vhost reported"
