#!/bin/sh
# vtpmmgr when the Keylime-VM proxy misbehaves in time: an outage shorter
# than vtpmmgr.retry_for is ridden out, a longer one is a transient error;
# a slow or silent proxy hits vtpmmgr.timeout and is retried; a manager
# freed with requests under way calls nobody back and leaks nothing.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/vtpmmgr.sh"

fake_proxy_start

mkcfg() { # FILE RETRY_FOR TIMEOUT
    cat > "$1" <<EOF
vtpmmgr:
  provider: keylime-proxy
  url: '$FAKE_PROXY_URL'
  timeout: $3
  retry_for: $2
EOF
}

# --- outages --------------------------------------------------------------
mkcfg "$T/short.yaml" 1500ms 1s
fake_proxy_outage on
run "$T/short.yaml" acquire $U1
[ "$RC" = 3 ] || fail "outage: exit $RC, want 3 (transient): $OUT"
case "$OUT" in
"TRANSIENT cannot connect to $FAKE_PROXY_URL"*"(gave up after "*" attempts in "*"s; vtpmmgr.retry_for is 1.5s)") ;;
*) fail "outage message: $OUT" ;;
esac
[ "$RETRIES" -ge 1 ] || fail "outage: no retry"
fake_proxy_outage off
[ "$(live)" = 0 ] || fail "live $(live)"
pass "outage longer than retry_for: transient error after $RETRIES retries"

mkcfg "$T/long.yaml" 60s 10s
fake_proxy_outage on
rm -f "$T/out" "$T/err"
run "$T/long.yaml" acquire $U1 &
# The outage ends once the client has met it (valgrind starts slowly).
wait_for "$T/err" "proxy request failed, retrying" 60 || fail "client did not retry"
sleep 0.3
fake_proxy_outage off
wait $! || true
OUT=$(cat "$T/out")
RETRIES=$(sed -n 's/^stats .*retries=\([0-9]*\).*/\1/p' "$T/err")
case "$OUT" in "OK "*) ;; *) fail "short outage: $OUT $(cat "$T/err")" ;; esac
[ "$RETRIES" -ge 1 ] || fail "short outage: no retry seen"
[ "$(live)" = 1 ] || fail "live $(live)"
[ "$(fake_proxy_state outage)" = false ] || fail "outage did not end"
pass "outage shorter than retry_for: ridden out ($RETRIES retries)"

# --- slow and silent proxies -----------------------------------------------
mkcfg "$T/slow.yaml" 800ms 300ms
fake_proxy_faults '{"latency_ms": 1000}'
run "$T/slow.yaml" acquire $U2
sleep 1.2 # the proxy finishes the abandoned requests
[ "$RC" = 3 ] || fail "slow proxy: exit $RC: $OUT"
case "$OUT" in
"TRANSIENT no answer from $FAKE_PROXY_URL within 0.3s (vtpmmgr.timeout) (gave up after "*) ;;
*) fail "slow message: $OUT" ;;
esac
fake_proxy_reset
# The slow answers were made after the client left: the same instance
# gets the same vTPM, and nothing beyond it stays live.
run "$T/long.yaml" acquire $U2
[ "$RC" = 0 ] || fail "acquire after slow: $OUT"
run "$T/long.yaml" release "${OUT#OK }" $U2
[ "$RC" = 0 ] || fail "release after slow: $OUT"
[ "$(live)" = 1 ] || fail "slow proxy leaked: live $(live), want 1"
pass "proxy slower than vtpmmgr.timeout: transient error, no leak"

mkcfg "$T/hang.yaml" 60s 2s
fake_proxy_faults '{"hang_next": 1}'
run "$T/hang.yaml" acquire $U3
[ "$RC" = 0 ] || fail "silent proxy: exit $RC: $OUT"
[ "$RETRIES" -ge 1 ] || fail "silent proxy: not retried"
fake_proxy_faults '{"drop_next": 1}'
run "$T/hang.yaml" acquire $U4
[ "$RC" = 0 ] || fail "dropped connection: exit $RC: $OUT"
[ "$RETRIES" -ge 1 ] || fail "dropped connection: not retried"
[ "$(live)" = 3 ] || fail "live $(live), want 3"
pass "a proxy that never answers or drops the connection is retried"

# --- cancellation ----------------------------------------------------------
fake_proxy_faults '{"hang_next": 1}'
run "$T/hang.yaml" cancel 5a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d 200
[ "$RC" = 0 ] || fail "cancel: exit $RC: $OUT $(cat "$T/err")"
[ "$OUT" = "OK cancelled" ] || fail "cancel: $OUT"
fake_proxy_outage on
run "$T/long.yaml" cancel 5a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d 700
[ "$OUT" = "OK cancelled" ] || fail "cancel in backoff: $OUT"
fake_proxy_outage off
pass "vtpmmgr_free with requests in flight or in backoff: no callback${VALGRIND:+, no leak (valgrind)}"

# --- a name server that never answers ---------------------------------------
# libevent's resolver reads /etc/resolv.conf: point it, in a private mount
# namespace, at a UDP port that swallows queries. The lookup is then under
# way when the attempt times out, and when the manager is freed.
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    NS="unshare -m"
elif unshare -rm true 2>/dev/null; then
    NS="unshare -rm"
else
    NS=""
    echo "note: no mount namespace here; silent name server case not run"
fi
if [ -n "$NS" ]; then
    "$PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1] + ".tmp", "w").write("%d\n" % s.getsockname()[1])
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    s.recvfrom(4096)
' "$T/dns.port" &
    DNS_PID=$!
    stop_dns() { kill "$DNS_PID" 2>/dev/null || true; }
    add_cleanup stop_dns
    wait_for "$T/dns.port" '^[0-9]+$' 20 || fail "silent DNS server did not start"
    printf 'nameserver 127.0.0.1:%s\noptions timeout:30 attempts:1\n' "$(cat "$T/dns.port")" > "$T/resolv.conf"
    cat > "$T/dns.yaml" <<EOF2
vtpmmgr:
  provider: keylime-proxy
  url: 'http://proxy.vtpmd-test.invalid:$FAKE_PROXY_PORT/'
  timeout: 500ms
  retry_for: 0
EOF2
    nsrun() {
        $NS sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$T/resolv.conf" \
            $VALGRIND "$CLIENT" -c "$T/dns.yaml" "$@" > "$T/out" 2> "$T/err"
        RC=$?
        OUT=$(cat "$T/out")
        [ "$RC" != 42 ] || fail "valgrind: $(cat "$T/err")"
    }
    nsrun acquire $U1
    [ "$RC" = 3 ] || fail "silent DNS: exit $RC: $OUT $(cat "$T/err")"
    case "$OUT" in
    "TRANSIENT no answer from http://proxy.vtpmd-test.invalid:$FAKE_PROXY_PORT within 0.5s (vtpmmgr.timeout)"*) ;;
    *) fail "silent DNS message: $OUT" ;;
    esac
    nsrun cancel $U1 200
    [ "$OUT" = "OK cancelled" ] || fail "cancel during a lookup: $OUT $(cat "$T/err")"
    pass "silent name server: the attempt times out; freeing during a lookup is clean"
fi
