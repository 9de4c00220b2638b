#!/bin/sh
# vtpmd's status notifications, published by the real bus with publisher
# confirms, are received by an oslo.messaging notification listener on
# Target(exchange='vtpmd', topic='notifications'), as any OpenStack
# consumer would: oslo 2.0 envelope, publisher vtpmd:<host>, INFO/ERROR
# priority and routing key, fresh message ids, oslo's timestamp format,
# persistent and application/json on the wire.
. "$(dirname "$0")/bus-lib.sh"

broker_start "$T/broker"
add_cleanup broker_stop

"$PYTHON" "$TOOLS/status_listener.py" --url "$BROKER_URL" --out "$T/received.jsonl" \
    > "$T/listener.log" 2>&1 &
lpid=$!
stop_listener() { kill "$lpid" 2>/dev/null; }
add_cleanup stop_listener
i=0
while [ ! -e "$T/received.jsonl.ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$T/received.jsonl.ready" ] || fail "oslo listener did not start"
# A plain queue on the same exchange shows the wire properties.
amqp queue wire --bind vtpmd:notifications.info --bind vtpmd:notifications.error ||
    fail "cannot declare the wire queue"

N=30
bus_config "$T/peer.yaml" "$BROKER_URL"
start_peer peer -c "$T/peer.yaml" --publish $N
wait_count "$T/peer-events.log" '^confirm seq=[0-9]+ status=0 ' $N 60 || fail "not every publish was confirmed"
grep -q 'status=-' "$T/peer-events.log" && fail "a publish failed: $(grep 'status=-' "$T/peer-events.log")"
pass "$N status notifications confirmed by the broker"

wait_count "$T/received.jsonl" '"event_type"' $N 60 || fail "the oslo listener did not get all $N"
"$PYTHON" - "$T/received.jsonl" $N <<'PY' || fail "oslo listener saw wrong notifications"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
assert len(rows) == n, len(rows)
seen = set()
for r in rows:
    p = r["payload"]
    i = int(p["request_id"][4:])
    seen.add(i)
    ev = ["vtpm.create.start", "vtpm.create.end", "vtpm.create.error"][i % 3]
    assert r["event_type"] == ev, r
    assert r["priority"] == ("ERROR" if ev.endswith(".error") else "INFO"), r
    assert r["publisher_id"] == "vtpmd:testhost", r
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", r["message_id"]), r
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", r["timestamp"]), r
    assert p["instance_uuid"] == "00000000-0000-4000-8000-%012d" % i, p
    assert p["host"] == "testhost" and p["state"] == "ready" and p["duration_ms"] == i, p
    for k in ("vtpm_uuid", "vtpm_domain", "image_path", "rule"):
        assert isinstance(p[k], str), (k, p)
    if ev.endswith(".error"):
        assert p["error"] == {"code": "test", "message": "a test error"}, p
    else:
        assert "error" not in p, p
assert seen == set(range(1, n + 1)), sorted(seen)
assert len({r["message_id"] for r in rows}) == n, "message_id reused"
PY
pass "the oslo.messaging listener received all of them, correctly"

amqp dump wire > "$T/wire.jsonl" || fail "cannot read the wire queue"
"$PYTHON" - "$T/wire.jsonl" $N <<'PY' || fail "wrong wire format"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == int(sys.argv[2]), len(rows)
uids = set()
for r in rows:
    assert r["content_type"] == "application/json" and r["delivery_mode"] == 2, r
    env = json.loads(r["body"])
    assert set(env) == {"oslo.version", "oslo.message"} and env["oslo.version"] == "2.0", env
    m = json.loads(env["oslo.message"])
    want = "notifications.error" if m["priority"] == "ERROR" else "notifications.info"
    assert r["routing_key"] == want, r
    assert len(m["_unique_id"]) == 32 and int(m["_unique_id"], 16) >= 0, m
    uids.add(m["_unique_id"])
assert len(uids) == len(rows)
PY
pass "wire: persistent, application/json, oslo 2.0 envelope, routing keys, unique ids"

stop_peer $PEER_PID
grep -q "^stats delivered=0 acked=0 rejected=0 published=$N confirmed=$N nacked=0" "$T/peer-events.log" ||
    fail "stats: $(grep '^stats' "$T/peer-events.log")"
pass "graceful stop"
