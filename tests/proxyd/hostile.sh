#!/bin/sh
# Hostile clients against the real vtpm-proxyd under a lowered descriptor
# limit (prlimit --nofile=128): a connection flood past its cap over HTTP
# and over HTTPS (connections that never start their handshake), slow
# clients. Clients beyond the cap are refused at once, the held ones are
# closed by the timeouts, a create and a delete complete after each flood
# (and during the slow one), and vtpm-proxyd's CPU time and log lines per
# second stay bounded. Before the fix, 1,100 idle connections made its
# accept spin (70% CPU, ~670k log lines in 12 s).
. "$(dirname "$0")/lib.sh"
need openssl prlimit
HOSTILE="$top_srcdir/tests/tools/hostile_client.py"
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PROXYD_PID/stat"; }
nfds() { ls "/proc/$PROXYD_PID/fd" | wc -l; }
log_lines() { wc -l < "$T/proxyd.log"; }
now() { date +%s.%N; }
json() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$T/flood.json"; }

bounded() {
    _l=$(( $(log_lines) - $2 ))
    _c=$(( $(cpu_ticks) - $3 ))
    _d=$(awk -v a="$(now)" -v b="$4" 'BEGIN { printf "%.1f", a - b }')
    echo "# $1: ${_d}s, $_l log lines, $_c CPU ticks (HZ $HZ), $(nfds) descriptors now"
    awk -v l="$_l" -v d="$_d" 'BEGIN { exit !(l <= 40 + 2 * d) }' || fail "$1: $_l log lines in ${_d}s"
    awk -v c="$_c" -v hz="$HZ" -v d="$_d" 'BEGIN { exit !(c <= hz / 2 + hz * d / 20) }' || fail "$1: $_c CPU ticks in ${_d}s"
}

# create_delete LABEL: POST then DELETE through the API.
create_delete() {
    inst=$("$PYTHON" -c 'import uuid; print(uuid.uuid4())')
    code=$(http POST /v1/vtpms "{\"instance_uuid\": \"$inst\", \"host\": \"cmp1\"}")
    [ "$code" = 201 ] || fail "$1: create: $code $(cat "$T/body")"
    v=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["uuid"])' "$T/body")
    expect 204 DELETE "/v1/vtpms/$v"
}

fake_start
write_conf "max_connections: 40" "idle_timeout: 5m" "header_timeout: 5m" "request_timeout: 30s"
VALGRIND="prlimit --nofile=128:128" proxyd_start
echo "# vtpm-proxyd pid $PROXYD_PID: $(nfds) descriptors at rest, limit 128"
base=$(nfds)

# 1. 300 connections held over plain HTTP; the cap is 40.
l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
rm -f "$T/ready" "$T/stop"
"$PYTHON" "$HOSTILE" flood --tcp "127.0.0.1:$PORT" --count 300 --hold 100 \
    --ready "$T/ready" --stop "$T/stop" > "$T/flood.json" &
fp=$!
wait_for "$T/ready" . 60 || fail "the flood did not start"
[ "$(nfds)" -lt 100 ] || fail "vtpm-proxyd holds $(nfds) descriptors"
# A client meanwhile is refused at once, not left hanging.
code=$(CURL_OPTS="--max-time 60" http GET /v1/health)
[ "$code" = 503 ] || fail "a client beyond the cap got $code"
grep -qi '^Connection: close' "$T/headers" || fail "no Connection: close on the refusal"
touch "$T/stop"
wait "$fp"
cat "$T/flood.json"
[ "$(json 'd["opened"]')" = 300 ] || fail "the flood opened too few"
[ "$(json 'd["statuses"].get("503", 0)')" -ge 250 ] || fail "clients beyond the cap not refused with 503"
[ "$(json 'd["still_open"]')" = 40 ] || fail "the accepted connections were not held"
bounded "http flood" "$l0" "$c0" "$t0"
create_delete "after the http flood"
pass "HTTP flood: refused at once beyond the cap, CPU and log bounded, API fine after"

# 2. Slow clients (half a request) below the cap, closed by the header
# timeout while a create and a delete complete.
write_conf "max_connections: 40" "idle_timeout: 3s" "header_timeout: 2s" "request_timeout: 30s"
kill -HUP "$PROXYD_PID"
wait_for "$T/proxyd.log" 'configuration reloaded' 20 || fail "reload"
l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
"$PYTHON" "$HOSTILE" flood --tcp "127.0.0.1:$PORT" --count 30 --hold 60 --half > "$T/flood.json" &
fp=$!
create_delete "during the slow clients"
wait "$fp"
cat "$T/flood.json"
[ "$(json 'd["still_open"]')" = 0 ] || fail "slow clients left open"
[ "$(json 'd["refused"]')" = 30 ] || fail "slow clients not closed by vtpm-proxyd"
bounded "slow clients" "$l0" "$c0" "$t0"
create_delete "after the slow clients"
pass "slow clients closed by the header timeout"
http GET /v1/health > /dev/null
"$PYTHON" - "$T/body" <<'PY' || fail "health counters: $(cat "$T/body")"
import json, sys
c = json.load(open(sys.argv[1]))["connections"]
assert c["refused"] >= 250 and c["timeouts"] >= 30 and c["open"] == 1, c
PY
proxyd_stop

# 3. HTTPS: connections that never start their handshake count against
# the cap; beyond it they are closed at once, the held ones after
# tls.handshake_timeout.
cd "$T" || fail "no temp dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    > /dev/null 2>&1 || fail "openssl"
cd - > /dev/null || true
write_conf "max_connections: 40" "idle_timeout: 5m" "header_timeout: 5m" \
    "tls: {cert_file: $T/server.crt, key_file: $T/server.key, handshake_timeout: 3s}"
VALGRIND="prlimit --nofile=128:128" proxyd_start
l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
"$PYTHON" "$HOSTILE" flood --tcp "127.0.0.1:$PORT" --tls --raw-tls --count 300 --hold 60 \
    > "$T/flood.json" || fail "tls flood client"
cat "$T/flood.json"
[ "$(json 'd["opened"]')" = 300 ] || fail "tls: the flood opened too few"
[ "$(json 'd["still_open"]')" = 0 ] || fail "tls: handshakes left open past their timeout"
bounded "tls flood" "$l0" "$c0" "$t0"
CURL_OPTS="--cacert $T/server.crt" URL_BASE="https://127.0.0.1:$PORT" create_delete "after the tls flood"
CURL_OPTS="--cacert $T/server.crt" URL_BASE="https://127.0.0.1:$PORT" http GET /v1/health > /dev/null
"$PYTHON" - "$T/body" <<'PY' || fail "tls health counters: $(cat "$T/body")"
import json, sys
c = json.load(open(sys.argv[1]))["connections"]
assert c["refused"] >= 250 and c["timeouts"] >= 40, c
PY
i=0
while [ "$(nfds)" -gt $((base + 4)) ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(nfds)" -le $((base + 4)) ] || fail "descriptors not released: $(nfds)"
pass "TLS flood: handshakes capped and timed out, API fine after"
proxyd_stop

# 4. A cap above the descriptor limit: accept() runs out of descriptors
# and must not spin; the API works again once the flood is gone.
write_conf "max_connections: 1000"
VALGRIND="prlimit --nofile=64:64" proxyd_start
grep -q 'descriptor limit is below' "$T/proxyd.log" || fail "no warning about the cap and the limit"
l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
rm -f "$T/ready" "$T/stop"
"$PYTHON" "$HOSTILE" flood --tcp "127.0.0.1:$PORT" --count 150 --hold 8 > "$T/flood.json" ||
    fail "emfile flood client"
cat "$T/flood.json"
bounded "descriptors exhausted" "$l0" "$c0" "$t0"
n=$(grep -c 'accept failed, pausing the listener' "$T/proxyd.log")
[ "$n" -ge 1 ] && [ "$n" -le 5 ] || fail "accept failures logged $n times"
i=0
until [ "$(http GET /v1/health)" = 200 ] || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
"$PYTHON" - "$T/body" <<'PY' || fail "health after exhaustion: $(cat "$T/body")"
import json, sys
c = json.load(open(sys.argv[1]))["connections"]
assert c["accept_errors"] >= 1, c
PY
create_delete "after descriptors ran out"
pass "descriptors exhausted: no spinning, one log line, API back after"
proxyd_stop
