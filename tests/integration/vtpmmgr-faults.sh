#!/bin/sh
# vtpmmgr when the Keylime-VM proxy misbehaves in time: an outage shorter
# than vtpmmgr.retry_for is ridden out, a longer one is a transient error;
# a slow or silent proxy hits vtpmmgr.timeout and is retried; a manager
# freed with requests under way calls nobody back and leaks nothing.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"

CLIENT="$top_builddir/tests/tools/vtpmmgr-client"
[ -x "$CLIENT" ] || fail "missing $CLIENT"
use_valgrind

U1=0f8fad5b-d9cb-469f-a165-70867728950e
U2=7c9e6679-7425-40de-944b-e07fc1f90ae7
U3=16fd2706-8baf-433b-82eb-8c7fada847da
U4=9b2f37e1-2a9c-4f2e-b3c6-6d1a3e8f0c11

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
run() {
    _cfg=$1
    shift
    $VALGRIND "$CLIENT" -c "$_cfg" "$@" > "$T/out" 2> "$T/err"
    RC=$?
    OUT=$(cat "$T/out")
    RETRIES=$(sed -n 's/^stats .*retries=\([0-9]*\).*/\1/p' "$T/err")
    [ "$RC" != 42 ] || fail "valgrind: $(cat "$T/err")"
}
live() { fake_proxy_state live; }

# --- outages --------------------------------------------------------------
mkcfg "$T/short.yaml" 1500ms 1s
fake_proxy_outage on
run "$T/short.yaml" acquire $U1
[ "$RC" = 3 ] || fail "outage: exit $RC, want 3 (transient): $OUT"
case "$OUT" in
"TRANSIENT cannot connect to $FAKE_PROXY_URL"*"(gave up after "*" attempts in "*"s; vtpmmgr.retry_for is 1.5s)") ;;
*) fail "outage message: $OUT" ;;
esac
[ "$RETRIES" -ge 2 ] || fail "outage: only $RETRIES retries"
fake_proxy_outage off
[ "$(live)" = 0 ] || fail "live $(live)"
pass "outage longer than retry_for: transient error after $RETRIES retries"

mkcfg "$T/long.yaml" 30s 2s
fake_proxy_outage on
run "$T/long.yaml" acquire $U1 &
# The outage ends once the client has met it (valgrind starts slowly).
wait_for "$T/err" "will retry op=acquire instance=$U1" 60 || fail "client did not retry"
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

mkcfg "$T/hang.yaml" 10s 500ms
fake_proxy_faults '{"hang_next": 1}'
run "$T/hang.yaml" acquire $U3
[ "$RC" = 0 ] || fail "silent proxy: exit $RC: $OUT"
[ "$RETRIES" = 1 ] || fail "silent proxy: retries $RETRIES, want 1"
fake_proxy_faults '{"drop_next": 1}'
run "$T/hang.yaml" acquire $U4
[ "$RC" = 0 ] || fail "dropped connection: exit $RC: $OUT"
[ "$RETRIES" = 1 ] || fail "dropped connection: retries $RETRIES, want 1"
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
