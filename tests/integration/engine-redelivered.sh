#!/bin/sh
# A notification that comes back redelivered after its outcome was made
# durable gets that outcome's status sent again before it is acked: vtpmd
# may have stopped after the journal record and before the status left
# (a kill -9 at that moment lost vtpm.delete.end in fault-kill.sh). A
# plain duplicate, not redelivered, sends nothing. All real: RabbitMQ,
# the vtpmd binary, Nova's own code publishing, an oslo.messaging
# listener.
#
# Redelivery is made the way the broker makes it: while vtpmd is
# stopped, a consumer takes the copies from vtpmd's queue without acking
# and closes its channel; RabbitMQ requeues them marked redelivered.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"

listener_start
vtpmd_config "$T/vtpmd.yaml"
vtpmd_start "$T/vtpmd.yaml"

export NOVA_FORMAT=versioned
u=$(new_uuid)
d=$(new_uuid)
nova "create.start:$u" "create.start:$d"
ctl wait "$u" 30 > /dev/null || fail "$u not ready"
ctl wait "$d" 30 > /dev/null || fail "$d not ready"
nova "delete.end:$d"
wait_status vtpm.delete.end "$d" 1 || fail "$d: no vtpm.delete.end"
wait_status vtpm.create.end "$u" 1 || fail "$u: no vtpm.create.end"
queue_idle || fail "unacked before the stop"
vtpmd_stop

# Copies while vtpmd is stopped: these two come back redelivered...
nova "create.start:$u" "delete.end:$d"
"$PYTHON" - "$BROKER_URL" "vtpmd.$VTPMD_HOST" <<'PY' || fail "requeue"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
n = 0
while True:
    m, props, body = ch.basic_get(sys.argv[2], auto_ack=False)
    if m is None:
        break
    n += 1
if n != 2:
    sys.exit("expected 2 messages in the queue, got %d" % n)
c.close()  # unacked: requeued, redelivered=True
PY
# ...and this one is a plain duplicate.
nova "create.start:$u"

vtpmd_start "$T/vtpmd.yaml"
queue_idle 30 || fail "unacked after the restart"
wait_status vtpm.create.end "$u" 2 || fail "$u: vtpm.create.end not sent again"
wait_status vtpm.delete.end "$d" 2 || fail "$d: vtpm.delete.end not sent again"
[ "$(count_matches "$T/vtpmd.log" "status sent again instance=$u event=vtpm.create.end")" = 1 ] ||
    fail "$u: not exactly one resend"
[ "$(count_matches "$T/vtpmd.log" "status sent again instance=$d event=vtpm.delete.end")" = 1 ] ||
    fail "$d: not exactly one resend"
sleep 1
[ "$(status_count vtpm.create.end "$u")" = 2 ] || fail "$u: $(status_count vtpm.create.end "$u") create.end"
[ "$(status_count vtpm.delete.end "$d")" = 2 ] || fail "$d: $(status_count vtpm.delete.end "$d") delete.end"
# The resent statuses say what is, not a duration long gone.
grep "\"event_type\": \"vtpm.create.end\".*\"instance_uuid\": \"$u\"" "$T/status.jsonl" | tail -n 1 |
    grep -q '"duration_ms": null' || fail "resent status duration"
[ "$(json_field "$u" state)" = ready ] || fail "$u: state after the restart"
pass "redelivered notifications of finished instances resend their outcome; a plain duplicate does not"
