#!/bin/sh
# vtpmmgr misbehaving, against the real vtpm-proxyd: no admin flag,
# failing statuses, slow answers (and the event loop still serving while
# one is pending), garbage, silence, the device vanishing and coming back.
# Every failure gets a clear JSON error with the right status, the next
# request works, and every vTPM that a lost answer left behind is found
# as an orphan by the reconcile.
. "$(dirname "$0")/lib.sh"

fake_start
write_conf
proxyd_start
create "$(uuidgen_)" > /dev/null
# The faults below hit VTPM_NEW (a create also sends GROUP_SHOW first).
fakectl target VTPM_NEW > /dev/null

# No admin flag: every management command is refused (tag + 3, status 1).
fakectl admin off > /dev/null
sleep 0.1
expect 502 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
[ "$(jget 'j["error"]["code"]')" = vtpmmgr_error ] || fail "not admin: $(cat "$T/body")"
jget 'j["error"]["message"]' | grep -q "admin flag" || fail "not admin message: $(cat "$T/body")"
expect 503 GET /v1/health
[ "$(jget 'j["vtpmmgr"]["state"]')" = refused ] || fail "health when refused: $(cat "$T/body")"
grep -qi '^Retry-After:' "$T/headers" || fail "503 without Retry-After"
fakectl admin on > /dev/null
sleep 0.1
create "$(uuidgen_)" > /dev/null
expect 200 GET /v1/health
pass "no admin flag: 502 naming it, health 503 refused; back to ok with the flag"

# A failing status, with no effect.
fakectl fail 9 1 > /dev/null
expect 502 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
jget 'j["error"]["message"]' | grep -q "refused VTPM_NEW: status 9" || fail "status 9: $(cat "$T/body")"
pass "status 9 on VTPM_NEW: 502"

# Slow: the answer comes after vtpmmgr.timeout (1s): 504. Meanwhile the
# loop still serves other requests.
fakectl slow 2500 1 > /dev/null
curl -s -o "$T/slow.body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}" \
    "$BASE/v1/vtpms" > "$T/slow.code" &
slow=$!
sleep 0.3
expect 200 GET /v1/health
expect 200 GET /v1/vtpms
kill -0 $slow 2>/dev/null || fail "the slow create finished before health was answered"
wait $slow
[ "$(cat "$T/slow.code")" = 504 ] || fail "slow create: $(cat "$T/slow.code") $(cat "$T/slow.body")"
grep -q vtpmmgr_timeout "$T/slow.body" || fail "slow body: $(cat "$T/slow.body")"
expect 503 GET /v1/health
[ "$(jget 'j["vtpmmgr"]["state"]')" = timeout ] || fail "health after timeout: $(cat "$T/body")"
sleep 2 # the fake finishes its late answer; the driver drops it
create "$(uuidgen_)" > /dev/null
expect 200 GET /v1/health
pass "slow vtpmmgr: 504 after vtpmmgr.timeout, the loop served health meanwhile"

# Garbage: a wrong tag, an impossible size: 502; random bytes: 502, or
# 504 when they happen to look like the start of a longer answer. Then a
# create works again.
for kind in tag size random; do
    fakectl garbage $kind 1 > /dev/null
    got=$(http POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}")
    case "$kind:$got" in
    *:502) jget 'j["error"]["message"]' | grep -q garbage || fail "garbage $kind: $(cat "$T/body")" ;;
    random:504) ;;
    *) fail "garbage $kind: status $got: $(cat "$T/body")" ;;
    esac
    sleep 0.1
    create "$(uuidgen_)" > /dev/null
done
expect 200 GET /v1/health
# An answer that announces more than it sends, and no answer: 504.
for sw in "garbage short 1" "silent 1"; do
    fakectl $sw > /dev/null
    expect 504 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
    sleep 0.1
    create "$(uuidgen_)" > /dev/null
done
pass "garbage 502, short and missing answers 504, each followed by a working create"

# The device vanishes (vtpmmgr's domain gone): 503, health unreachable;
# it comes back on a new pty behind the same path: served again.
fakectl list > "$T/state.json"
fake_stop
expect 503 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
jget 'j["error"]["message"]' | grep -q "device unavailable" || fail "no device: $(cat "$T/body")"
expect 503 GET /v1/health
[ "$(jget 'j["vtpmmgr"]["state"]')" = unreachable ] || fail "health without device: $(cat "$T/body")"
fake_start
# The new fake is a fresh vtpmmgr: put the old one's vTPMs back.
"$PYTHON" -c 'import json, sys
for g in json.load(open(sys.argv[1]))["groups"]:
    for u in g["vtpms"]:
        print(u)' "$T/state.json" | while read -r u; do fakectl add "$u" > /dev/null; done
create "$(uuidgen_)" > /dev/null
expect 200 GET /v1/health
pass "device gone: 503 unreachable; back: served again"

# Every lost answer above (slow, 3 x garbage, short, silent) left a vTPM
# without a record: the reconcile finds exactly those.
expect 200 POST /v1/reconcile
orphans=$(jget 'len(j["orphans"])')
[ "$orphans" = 6 ] || fail "orphans: $orphans, want 6: $(cat "$T/body")"
[ "$(jget 'j["missing"]')" = "[]" ] || fail "missing: $(cat "$T/body")"
live=$(fake_live | wc -l)
recs=$(records | wc -l)
[ $((live - recs)) = 6 ] || fail "live $live - records $recs != 6"
records | while read -r u; do fake_live | grep -q "$u" || fail "record $u not in vtpmmgr"; done
expect 200 GET /v1/health
[ "$(jget 'j["orphans"]')" = 6 ] || fail "health orphans: $(cat "$T/body")"
check_no_forbidden
pass "the reconcile reports the 6 vTPMs whose answers were lost, and nothing else"

proxyd_stop
