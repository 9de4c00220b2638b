#!/bin/sh
# amqps:// against RabbitMQ's TLS listener: the broker's certificate is
# verified against amqp.tls.ca_file and its name against the URL's host by
# default; a certificate that does not name the host, or a CA the bus does
# not trust, is refused with a clear error; consuming and publishing work
# over TLS (reads drained from OpenSSL's buffers by the loop).
. "$(dirname "$0")/bus-lib.sh"
command -v openssl >/dev/null || { echo "openssl missing"; [ "${CI:-}" = true ] && exit 99; exit 77; }

# A CA and a server certificate for "localhost" only (no IP address).
cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vtpmd test CA" \
    -keyout ca.key -out ca.pem > openssl.log 2>&1 || fail "CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
    -out server.csr >> openssl.log 2>&1 || fail "CSR"
printf 'subjectAltName=DNS:localhost\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out server.pem >> openssl.log 2>&1 || fail "server certificate"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
    -keyout other.key -out other.pem >> openssl.log 2>&1 || fail "other CA"
chmod 644 server.key
cd - > /dev/null

TLS_PORT=$(broker_free_port)
cat > "$T/rabbitmq.conf" <<CONF
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $T/ca.pem
ssl_options.certfile = $T/server.pem
ssl_options.keyfile = $T/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
RABBITMQ_CONFIG_FILE="$T/rabbitmq.conf"
export RABBITMQ_CONFIG_FILE
broker_start "$T/broker"
add_cleanup broker_stop
i=0
while ! "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $TLS_PORT), 1)" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "no TLS listener"; sleep 0.2
done

# Verified: CA given, host name matches.
bus_config "$T/ok.yaml" "amqps://localhost:$TLS_PORT/" "  reconnect_max: 500ms" \
    "  tls: {ca_file: $T/ca.pem}"
start_peer ok -c "$T/ok.yaml" --publish 20 --reject-malformed
ok_pid=$PEER_PID
wait_for "$T/ok-events.log" '^ready$' 30 || fail "no TLS connection: $(cat "$T/ok.log")"
grep -q "amqp ready url=amqps://guest@localhost:$TLS_PORT/" "$T/ok.log" || fail "not amqps"
wait_count "$T/ok-events.log" '^confirm seq=[0-9]+ status=0 ' 20 30 || fail "publishing over TLS"
amqp publish --exchange nova --key versioned_notifications.info --persistent \
    --body-file "$top_srcdir/tests/fixtures/nova/genuine/02-boot-versioned-instance.create.start.json" \
    --count 300 || fail "publish"
wait_count "$T/ok-events.log" '^deliver .*bytes=3335 .*action=ack' 300 60 || fail "consuming over TLS"
wait_queue vtpmd.testhost messages 0 30 || fail "not drained over TLS"
stop_peer $ok_pid
pass "amqps with CA and host name verified: 20 published, 300 consumed"

# The certificate names localhost, not 127.0.0.1.
bus_config "$T/ip.yaml" "amqps://127.0.0.1:$TLS_PORT/" "  reconnect_max: 500ms" \
    "  tls: {ca_file: $T/ca.pem}"
start_peer ip -c "$T/ip.yaml"
wait_for "$T/ip.log" "error: amqp connection failed url=amqps://guest@127.0.0.1:$TLS_PORT/ state=tls: TLS connection failed: SSL hostname verification failed" 30 ||
    fail "host name mismatch not refused: $(cat "$T/ip.log")"
stop_peer $PEER_PID
pass "a certificate for another name is refused"

# A CA the bus does not trust.
bus_config "$T/ca.yaml" "amqps://localhost:$TLS_PORT/" "  reconnect_max: 500ms" \
    "  tls: {ca_file: $T/other.pem}"
start_peer ca -c "$T/ca.yaml"
wait_for "$T/ca.log" "error: amqp connection failed .*state=tls: TLS connection failed: SSL peer cert verification failed" 30 ||
    fail "untrusted CA not refused: $(cat "$T/ca.log")"
stop_peer $PEER_PID
pass "an untrusted certificate is refused"

# Verification turned off explicitly: connects.
bus_config "$T/off.yaml" "amqps://127.0.0.1:$TLS_PORT/" \
    "  tls: {verify_peer: false, verify_hostname: false}"
start_peer off -c "$T/off.yaml"
wait_for "$T/off-events.log" '^ready$' 30 || fail "verification off: $(cat "$T/off.log")"
stop_peer $PEER_PID
pass "verify_peer/verify_hostname false connects"
