#!/bin/sh
# vtpmmgr against the fake Keylime-VM proxy over plain HTTP: the v1 API
# (acquire, idempotent retry after a lost answer, release, 404 on release),
# the legacy API, 5xx then success, and permanent failures for 4xx and for
# answers that are not JSON, carry no valid UUID or are oversized. The
# proxy's count of live vTPMs proves that nothing leaks.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/vtpmmgr.sh"

fake_proxy_start

# mkcfg FILE API RETRY_FOR [TIMEOUT]
mkcfg() {
    cat > "$1" <<EOF
vtpmmgr:
  provider: keylime-proxy
  url: '$FAKE_PROXY_URL/'
  api: $2
  timeout: ${4:-2s}
  retry_for: $3
EOF
}
mkcfg "$T/v1.yaml" v1 60s 10s

expect_ok() {
    [ "$RC" = 0 ] || fail "$1: exit $RC: $OUT $(cat "$T/err")"
    echo "$OUT" | grep -Eq '^OK [0-9a-f-]{36}$' || fail "$1: $OUT"
}
# run_ok LABEL CONFIG ARGS...: run, then expect_ok LABEL.
run_ok() {
    _label=$1
    shift
    run "$@"
    expect_ok "$_label"
}

# --- v1: acquire, idempotent, release ---------------------------------
run_ok "acquire" "$T/v1.yaml" acquire $U1 compute-1
A=${OUT#OK }
[ "$(live)" = 1 ] || fail "live $(live), want 1"
[ "$(fake_proxy_state vtpms.0.instance_uuid)" = $U1 ] || fail "instance not sent"
[ "$(fake_proxy_state vtpms.0.host)" = compute-1 ] || fail "host not sent"
run_ok "acquire again" "$T/v1.yaml" acquire "$(echo $U1 | tr a-f A-F)" compute-1
[ "${OUT#OK }" = "$A" ] || fail "second acquire gave ${OUT#OK }, want $A"
[ "$(live)" = 1 ] || fail "duplicate acquire leaked: live $(live)"
pass "v1 acquire, idempotent per instance"

# A lost answer: the proxy made the vTPM but the connection dropped. The
# retry gets the same UUID; nothing leaks.
fake_proxy_faults '{"drop_after_commit_next": 1}'
run_ok "acquire after lost answer" "$T/v1.yaml" acquire $U2
B=${OUT#OK }
[ "$RETRIES" = 1 ] || fail "retries $RETRIES, want 1"
[ "$(live)" = 2 ] || fail "lost answer leaked: live $(live), want 2"
[ "$(fake_proxy_state counters.created)" = 2 ] || fail "created twice"
pass "lost answer: retried, same vTPM, nothing leaked"

fake_proxy_faults '{"fail_next": 2, "fail_status": 503}'
run_ok "acquire after 5xx" "$T/v1.yaml" acquire $U3
C=${OUT#OK }
[ "$RETRIES" = 2 ] || fail "retries $RETRIES, want 2"
fake_proxy_faults '{"fail_next": 1, "fail_status": 502}'
run_ok "release after 5xx" "$T/v1.yaml" release "$C" $U3
[ "$RETRIES" = 1 ] || fail "release retries $RETRIES, want 1"
pass "5xx then success, for acquire and release"

run_ok "release" "$T/v1.yaml" release "$A" $U1
[ "${OUT#OK }" = "$A" ] || fail "release answered $OUT"
[ "$(live)" = 1 ] || fail "live $(live) after release, want 1"
run_ok "release of a released vTPM (404)" "$T/v1.yaml" release "$A" $U1
[ "$(fake_proxy_state counters.not_found)" = 1 ] || fail "no 404 seen"
run_ok "release" "$T/v1.yaml" release "$B"
[ "$(live)" = 0 ] || fail "live $(live), want 0"
pass "release, and 404 on release counts as done"

# --- permanent failures -------------------------------------------------
perm() { # what expected-message
    [ "$RC" = 4 ] || fail "$1: exit $RC, want 4 (permanent): $OUT"
    case "$OUT" in "PERMANENT $2"*) ;; *) fail "$1: message: $OUT" ;; esac
    [ "$RETRIES" = 0 ] || fail "$1: retried $RETRIES times"
    [ "$(live)" = 0 ] || fail "$1: live $(live)"
}
fake_proxy_faults '{"fail_next": 1, "fail_status": 400}'
run "$T/v1.yaml" acquire $U4
perm "400" "proxy answered 400: injected failure 400"
fake_proxy_faults '{"fail_next": 1, "fail_status": 409}'
run "$T/v1.yaml" release $U4
perm "409 on release" "proxy answered 409: injected failure 409"
fake_proxy_faults '{"garbage_next": 1}'
run "$T/v1.yaml" acquire $U4
perm "garbage" "proxy answered 201 with a body that is not JSON ("
case "$OUT" in *"): <html><body>502 Bad Gateway ?</body></html>") ;; *) fail "garbage snippet: $OUT" ;; esac
fake_proxy_faults '{"bad_uuid_next": 1}'
run "$T/v1.yaml" acquire $U4
perm "bad uuid" 'proxy answered 201 with an invalid vTPM UUID: {"uuid": "../../etc/passwd-0000-0000-000000000000"}'
fake_proxy_faults '{"huge_next": 1}'
run "$T/v1.yaml" acquire $U4
perm "huge" "answer from $FAKE_PROXY_URL is larger than 64 KiB"
run "$T/v1.yaml" acquire "../../../etc/passwd"
[ "$RC" = 1 ] && [ "$OUT" = "EINVAL invalid arguments" ] || fail "hostile instance UUID: $RC $OUT"
pass "4xx, garbage, invalid UUID and oversized answers fail at once, nothing leaked"

# --- many at once -------------------------------------------------------
fake_proxy_reset
run "$T/v1.yaml" cycle 300
[ "$RC" = 0 ] || fail "cycle: $OUT"
echo "$OUT" | grep -q '^OK acquired=300 released=300 ' || fail "cycle: $OUT"
[ "$(live)" = 0 ] || fail "cycle leaked: live $(live)"
pass "300 concurrent acquires and releases, none leaked ($OUT)"

# --- legacy API ---------------------------------------------------------
mkcfg "$T/legacy.yaml" legacy 60s 10s
fake_proxy_faults '{"uuid_case": "upper"}'
run_ok "legacy acquire" "$T/legacy.yaml" acquire $U1
L=${OUT#OK }
[ "$(fake_proxy_state counters.legacy_get)" = 1 ] || fail "no legacy GET seen"
[ "$(fake_proxy_state vtpms.0.uuid)" = "$L" ] || fail "legacy UUID $L not canonical/lower case"
dels=$(fake_proxy_state counters.delete)
run_ok "legacy release" "$T/legacy.yaml" release "$L" $U1
[ "$(fake_proxy_state counters.delete)" = "$dels" ] || fail "legacy release sent a DELETE"
# The original proxy cannot release: the vTPM stays live on its side.
[ "$(live)" = 1 ] || fail "legacy live $(live)"
fake_proxy_reset
fake_proxy_faults '{"fail_next": 1}'
run_ok "legacy acquire after 503" "$T/legacy.yaml" acquire $U2
[ "$RETRIES" = 1 ] || fail "legacy retries $RETRIES"
pass "legacy API: GET, upper-case UUID canonicalized, no release"
