#!/bin/sh
# vtpmctl against the real vtpmd and broker: every command's exit code
# (0 ok, 1 failure, 2 usage), --json output, and watch following vtpmd's
# status notifications from its own temporary queue.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"

vtpmd_config "$T/vtpmd.yaml"
vtpmd_start "$T/vtpmd.yaml"

# expect RC CMD...: runs vtpmctl, checks the exit code.
expect() {
    _want=$1
    shift
    "$VTPMCTL" "$@" > "$T/out" 2> "$T/err"
    _rc=$?
    [ $_rc -eq "$_want" ] || fail "vtpmctl $*: exit $_rc, want $_want ($(head -c 300 "$T/err"))"
}
is_json() { "$PYTHON" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" || fail "not JSON: $*"; }
S="-s $T/control.sock"

# --- usage: 2
expect 2
expect 2 $S nosuchcommand
expect 2 $S show
expect 2 $S show not-a-uuid
expect 2 $S show ../../etc/passwd
expect 2 $S wait 0f8fad5b-d9cb-469f-a165-70867728950e 99999
expect 2 $S wait 0f8fad5b-d9cb-469f-a165-70867728950e 10 extra
expect 2 $S wait 0f8fad5b-d9cb-469f-a165-70867728950e ''
expect 2 $S list extra
expect 2 --bogus-option health
expect 2 -n 0 watch
expect 2 watch not-a-uuid
expect 0 --help
grep -q 'watch' "$T/out" || fail "--help lacks watch"
pass "usage errors exit 2"

# --- ok: 0, tables and JSON
expect 0 $S health
grep -q '^status=ok bus=consuming libvirt=connected' "$T/out" || fail "health table: $(cat "$T/out")"
expect 0 $S --json health
is_json health
for c in list domains; do
    expect 0 $S $c
    expect 0 $S --json $c
    is_json $c
done
expect 0 $S metrics
grep -q '^vtpmd_bus_up 1$' "$T/out" || fail "metrics text"
expect 0 $S --json metrics
"$PYTHON" - "$T/out" <<'PY' || fail "metrics JSON"
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
up = [x for x in m if x["name"] == "vtpmd_bus_up"]
assert up and up[0]["value"] == 1.0, up
n = [x for x in m if x["name"] == "vtpmd_notifications_total" and x["labels"] == {"outcome": "relevant"}]
assert len(n) == 1, n
PY
expect 0 $S reload
expect 0 $S --json reload
is_json reload
pass "health, list, domains, metrics, reload: exit 0, tables and JSON"

# --- watch: its own exclusive auto-delete queue, bound before vtpmd
# publishes; one line per event; --count; the config's amqp.urls.
"$VTPMCTL" -c "$T/vtpmd.yaml" -n 2 watch > "$T/watch.txt" 2> "$T/watch.err" &
W1=$!
"$VTPMCTL" -u "$BROKER_URL" --json watch > "$T/watch.jsonl" 2> "$T/watch2.err" &
W2=$!
wait_for "$T/watch.err" 'watching exchange=vtpmd keys=notifications.info,notifications.error' 20 ||
    fail "watch did not start: $(cat "$T/watch.err")"
wait_for "$T/watch2.err" 'watching' 20 || fail "watch --url did not start"
n=$(broker_ctl list_queues -q name exclusive auto_delete | awk '$1 ~ /^amq\.gen/ && $2 == "true" && $3 == "true"' | wc -l)
[ "$n" -eq 2 ] || fail "watch queues: want 2 exclusive auto-delete, got $n"
u=$(new_uuid)
nova "create.start:$u" "create.end:$u"
ctl wait "$u" 30 > /dev/null || fail "$u not ready"
wait "$W1"
[ $? -eq 0 ] || fail "watch --count 2: exit non-zero"
[ "$(wc -l < "$T/watch.txt")" -eq 2 ] || fail "watch --count 2 printed $(wc -l < "$T/watch.txt") lines"
grep -q " vtpm.create.start $u state=provisioning " "$T/watch.txt" || fail "watch line: $(cat "$T/watch.txt")"
grep -q " vtpm.create.end   $u state=ready vtpm=[0-9a-f-]* domain=vtpm-$u duration_ms=[0-9]" "$T/watch.txt" ||
    fail "watch line: $(cat "$T/watch.txt")"
wait_count "$T/watch.jsonl" '"event_type": ?"vtpm.create.end"' 1 10 || fail "watch --json: $(cat "$T/watch.jsonl")"
kill -TERM "$W2"
wait "$W2"
[ $? -eq 0 ] || fail "watch: exit non-zero after SIGTERM"
"$PYTHON" - "$T/watch.jsonl" "$u" <<'PY' || fail "watch --json lines"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
assert [e["event_type"] for e in evs] == ["vtpm.create.start", "vtpm.create.end"], evs
for e in evs:
    assert e["publisher_id"] == "vtpmd:cmp1" and e["payload"]["instance_uuid"] == sys.argv[2], e
PY
i=0
while [ "$(broker_ctl list_queues -q name | grep -c '^amq\.gen')" -ne 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(broker_ctl list_queues -q name | grep -c '^amq\.gen')" -eq 0 ] || fail "watch queues left behind"
pass "watch: own queues, one line per event, --count, --json, SIGTERM, queues removed"

# watch UUID follows one instance.
"$VTPMCTL" -u "$BROKER_URL" -n 1 watch "$u" > "$T/watch3.txt" 2> "$T/watch3.err" &
W3=$!
wait_for "$T/watch3.err" 'watching' 20 || fail "watch UUID did not start"
u2=$(new_uuid)
nova "delete:$u2" "delete:$u"
wait "$W3"
grep -q "vtpm.delete.start $u" "$T/watch3.txt" || fail "watch UUID: $(cat "$T/watch3.txt")"
grep -q "$u2" "$T/watch3.txt" && fail "watch UUID showed another instance"
pass "watch UUID"

# health counts live instances, not the tombstone of the deleted one.
i=0
while ctl --json list | grep -q "$u" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
ctl --json list | grep -q "$u" && fail "$u still listed after its delete"
n_list=$(ctl --json list | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["instances"]))')
n_health=$(ctl --json health | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["instances"])')
[ "$n_list" = "$n_health" ] || fail "health counts $n_health instances, list shows $n_list"
pass "health counts live instances ($n_health), not tombstones"

# --- failures: 1
expect 1 $S show "$(new_uuid)"
grep -q '404' "$T/err" || fail "show 404 message"
expect 1 $S --json show "$(new_uuid)"
grep -q '"status": 404' "$T/out" || fail "show --json error"
expect 1 -s "$T/none.sock" health
grep -q 'is vtpmd running' "$T/err" || fail "unreachable message"
for c in list domains metrics reload; do expect 1 -s "$T/none.sock" $c; done
echo 'policy: {default: perhaps}' >> "$T/vtpmd.yaml"
expect 1 $S reload
vtpmd_config "$T/vtpmd.yaml"
expect 1 -u amqp://127.0.0.1:1/ watch
grep -q 'cannot connect to the broker' "$T/err" || fail "watch unreachable broker: $(cat "$T/err")"
expect 1 -u 'http://x/' watch
expect 1 -c "$T/missing.yaml" watch
expect 1 -u "amqp://nobody:wrong@127.0.0.1:$BROKER_PORT/" watch
pass "failures exit 1"

# --- health degraded: 1 (the broker gone).
broker_restart_stop
i=0
while ctl health > /dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect 1 $S health
expect 1 $S --json health
grep -q '"status": "degraded"' "$T/out" || fail "degraded health JSON"
broker_restart_start
pass "degraded health exits 1"
wait_for "$T/vtpmd.log" 'bus ready' 60
vtpmd_stop
