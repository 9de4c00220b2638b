#!/bin/sh
# Nova's own code publishes its notifications through oslo.messaging to a
# real RabbitMQ (tests/tools/gen-nova-fixtures.py --broker); the bodies read
# back from the broker go through every test of tests/unit/test_novamsg
# instead of the committed fixtures. Also checks that the committed
# fixtures are what today's generator produces (same messages, same
# content types and routing keys), so a Nova update that changes them
# shows up here.
. "$top_srcdir/tests/lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"

if ! "$PYTHON" -c 'import nova.compute.utils, oslo_messaging, pika' 2>"$T/import.log"; then
    cat "$T/import.log" >&2
    echo "decode-genuine: $PYTHON lacks python3-nova, python3-oslo.messaging or python3-pika" >&2
    [ "${CI:-}" = true ] && exit 99
    exit 77
fi

broker_start "$T/broker"
add_cleanup broker_stop

"$PYTHON" "$top_srcdir/tests/tools/gen-nova-fixtures.py" --broker "$BROKER_URL" \
    --out "$T/fx" >"$T/gen.log" 2>&1 || fail "generator failed: $(tail -n 20 "$T/gen.log")"
grep -q '"transport": "rabbitmq"' "$T/fx/index.json" || fail "index does not say rabbitmq"
pass "Nova published $(ls "$T/fx/genuine" | wc -l) notifications through RabbitMQ"

# Everything was consumed: nothing left in the queues oslo.messaging made.
left=$(broker_ctl list_queues name messages 2>/dev/null | awk '$2 ~ /^[0-9]+$/ && $2 > 0')
[ -z "$left" ] || fail "messages left in the broker: $left"

# The committed fixtures match what the broker delivered, message by message.
"$PYTHON" - "$top_srcdir/tests/fixtures/nova/index.json" "$T/fx/index.json" <<'PY' ||
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
keys = ("file", "routing_key", "content_type", "event_type", "publisher_id",
        "format", "expect")
for x, y in zip(a["messages"], b["messages"]):
    for k in keys:
        if x[k] != y[k]:
            sys.exit("committed fixture %s differs in %s: %r vs %r (run "
                     "tests/tools/gen-nova-fixtures.py)" % (x["file"], k, x[k], y[k]))
if len(a["messages"]) != len(b["messages"]):
    sys.exit("committed fixtures: %d messages, generator: %d"
             % (len(a["messages"]), len(b["messages"])))
PY
    fail "committed fixtures are stale"
pass "committed fixtures match the broker's"

NOVA_FIXTURE_DIR="$T/fx" "$top_builddir/tests/unit/test_novamsg" >"$T/unit.log" 2>&1 ||
    fail "test_novamsg on the broker's messages: $(grep -E 'ERROR|FAILED' "$T/unit.log" | head -5)"
pass "test_novamsg passes on the messages read back from RabbitMQ"
