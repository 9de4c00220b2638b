#!/bin/sh
# contrib/examples/status_listener.py against vtpmd's real output: a
# create that succeeds, one that fails (the fake Keylime-VM proxy refuses),
# the deletes (the first fails: the proxy refuses the release too), so all
# six event types; --json, --instance, --count and --exec; and two listeners
# with different pools each get every event.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"

EX="$top_srcdir/contrib/examples/status_listener.py"
fake_proxy_start
vtpmd_config "$T/vtpmd.yaml" "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', timeout: 5s}"
vtpmd_start "$T/vtpmd.yaml"

cat > "$T/hook.sh" <<SH
#!/bin/sh
echo "\$VTPM_EVENT \$VTPM_INSTANCE_UUID \$VTPM_STATE \$VTPM_UUID \$VTPM_ERROR_CODE" >> "$T/exec.log"
SH
chmod +x "$T/hook.sh"

ex_stop() { for p in ${EX_PIDS:-}; do kill "$p" 2>/dev/null; done; return 0; }
add_cleanup ex_stop
"$PYTHON" "$EX" --url "$BROKER_URL" --json --exec "$T/hook.sh" > "$T/ex1.jsonl" 2> "$T/ex1.log" &
EX_PIDS=$!
"$PYTHON" "$EX" --url "$BROKER_URL" --pool other > "$T/ex2.txt" 2> "$T/ex2.log" &
EX_PIDS="$EX_PIDS $!"
wait_for "$T/ex1.log" '^listening' 30 || fail "example listener did not start"
wait_for "$T/ex2.log" '^listening' 30 || fail "second example listener did not start"

u1=$(new_uuid)
nova "create.start:$u1" "create.end:$u1"
ctl wait "$u1" 30 > /dev/null || fail "$u1 not ready"
"$PYTHON" "$EX" --url "$BROKER_URL" --pool one --instance "$u1" --count 2 > "$T/ex3.txt" 2> "$T/ex3.log" &
EX3=$!
wait_for "$T/ex3.log" '^listening' 30 || fail "third listener did not start"
fake_proxy_faults '{"fail_next": 1000, "fail_status": 400}'
u2=$(new_uuid)
nova "create.start:$u2"
ctl wait "$u2" 30 > /dev/null 2>&1
nova "delete:$u1" "delete:$u2"
for f in ex1.jsonl ex2.txt; do
    wait_count "$T/$f" 'vtpm\.delete\.end' 1 30 || fail "$f: delete.end missing"
    wait_count "$T/$f" 'vtpm\.delete\.error' 1 60 || fail "$f: delete.error missing"
done
wait "$EX3" || fail "--count listener exit"

"$PYTHON" - "$T/ex1.jsonl" "$u1" "$u2" <<'PY' || fail "listener --json output"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
u1, u2 = sys.argv[2], sys.argv[3]
by = lambda u: [e["event_type"] for e in evs if e["payload"]["instance_uuid"] == u]
# A failed teardown is tried again by the next copy of Nova's delete.
assert by(u1)[:4] == ["vtpm.create.start", "vtpm.create.end", "vtpm.delete.start", "vtpm.delete.error"], by(u1)
assert set(by(u1)[4:]) <= {"vtpm.delete.start", "vtpm.delete.error"}, by(u1)
assert by(u2) == ["vtpm.create.start", "vtpm.create.error", "vtpm.delete.start", "vtpm.delete.end"], by(u2)
for e in evs:
    assert e["publisher_id"] == "vtpmd:cmp1"
    assert e["priority"] == ("ERROR" if e["event_type"].endswith(".error") else "INFO"), e
err = [e for e in evs if e["event_type"] == "vtpm.create.error"][0]["payload"]
assert err["state"] == "failed" and err["error"]["code"] == "vtpmmgr_error", err
derr = [e for e in evs if e["event_type"] == "vtpm.delete.error"][0]["payload"]
assert derr["state"] == "failed" and derr["error"]["code"] == "vtpmmgr_release_failed", derr
end = [e for e in evs if e["event_type"] == "vtpm.create.end"][0]["payload"]
assert end["state"] == "ready" and len(end["vtpm_uuid"]) == 36, end
PY
grep -q "vtpm.create.error instance=$u2 state=failed .* error=vtpmmgr_error: " "$T/ex2.txt" ||
    fail "text line: $(cat "$T/ex2.txt")"
[ "$(wc -l < "$T/ex3.txt")" -eq 2 ] || fail "--instance --count 2: $(cat "$T/ex3.txt")"
grep -q "vtpm.delete.start instance=$u1" "$T/ex3.txt" || fail "--instance: $(cat "$T/ex3.txt")"
grep -q "$u2" "$T/ex3.txt" && fail "--instance showed another instance"
grep -q "^vtpm.create.end $u1 ready [0-9a-f-]\{36\} $" "$T/exec.log" || fail "--exec: $(cat "$T/exec.log")"
grep -q "^vtpm.create.error $u2 failed  vtpmmgr_error$" "$T/exec.log" || fail "--exec error: $(cat "$T/exec.log")"
pass "example listener: text, JSON, --instance, --count, --exec, own pools"
ex_stop
vtpmd_stop
