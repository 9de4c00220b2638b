#!/bin/sh
# A notification that comes back redelivered after its outcome was made
# durable gets that outcome's status sent again before it is acked: vtpmd
# may have stopped after the journal record and before the status left
# (a kill -9 at that moment lost vtpm.delete.end in fault-kill.sh). A
# plain duplicate, not redelivered, sends nothing. All real: RabbitMQ,
# the vtpmd binary, Nova's own code publishing, an oslo.messaging
# listener.
#
# A resend holds the instance's next events until the broker confirms
# it, as a commit does: a delete that went on meanwhile would leave a
# tombstone, and a crash before the confirm would then meet the create
# again as "create after delete" and never resend its create.end (a
# second kill during recovery in fault-kill.sh). Shown with the broker
# blocking publishers (memory alarm): the resend waits, so must the
# delete behind it.
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

# requeue N: takes the N messages in vtpmd's queue without acking and
# closes the channel; the broker requeues them marked redelivered.
requeue() {
    "$PYTHON" - "$BROKER_URL" "vtpmd.$VTPMD_HOST" "$1" <<'PY' || fail "requeue"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
n = 0
while True:
    m, props, body = ch.basic_get(sys.argv[2], auto_ack=False)
    if m is None:
        break
    n += 1
if n != int(sys.argv[3]):
    sys.exit("expected %s messages in the queue, got %d" % (sys.argv[3], n))
c.close()  # unacked: requeued, redelivered=True
PY
}

# Copies while vtpmd is stopped: these two come back redelivered...
nova "create.start:$u" "delete.end:$d"
requeue 2
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

# The resend holds the delete behind it until the broker confirms it.
# Meanwhile the start-up reconciliation passes by both instances, whose
# domains this restart lost: libvirt (a test:// node file, missing at
# first) connects only while the resends wait. A resend decides nothing
# about a domain, so v gets its own back once its resend is confirmed
# (no periodic pass here to do it later); u is deleted instead.
v=$(new_uuid)
nova "create.start:$v"
ctl wait "$v" 30 > /dev/null || fail "$v not ready"
wait_status vtpm.create.end "$v" 1 || fail "$v: no vtpm.create.end"
queue_idle || fail "unacked before the stop"
vtpmd_stop
nova "create.start:$u" "create.start:$v"
requeue 2
nova "delete.end:$u"
clear_alarm() { broker_ctl set_vm_memory_high_watermark 0.4 > /dev/null 2>&1; return 0; }
add_cleanup clear_alarm
broker_ctl set_vm_memory_high_watermark 0.0000001 > /dev/null || fail "cannot raise an alarm"
vtpmd_config "$T/vtpmd-late.yaml" "reconcile: {interval: 0}"
sed -i "s|uri: 'test:///default'|uri: 'test://$T/node.xml'|" "$T/vtpmd-late.yaml"
vtpmd_start "$T/vtpmd-late.yaml"
wait_count "$T/vtpmd.log" "status sent again instance=$u event=vtpm.create.end" 2 30 ||
    fail "$u: no resend under the alarm"
wait_count "$T/vtpmd.log" "status sent again instance=$v event=vtpm.create.end" 1 30 ||
    fail "$v: no resend under the alarm"
# Counted before libvirt can connect: a reconnect between the two would
# otherwise be counted already and waited for in vain.
_n=$(count_matches "$T/vtpmd.log" 'start-up reconciliation done')
echo '<node/>' > "$T/node.xml"
wait_count "$T/vtpmd.log" 'start-up reconciliation done' $((_n + 1)) 30 ||
    fail "libvirt did not connect"
sleep 1
grep -q "tearing down instance=$u" "$T/vtpmd.log" && fail "$u: torn down before its resend was confirmed"
[ -f "$T/images/$u.img" ] || fail "$u: image gone before the resend was confirmed"
[ "$(json_field "$u" state)" = ready ] || fail "$u: state under the alarm"
clear_alarm
wait_status vtpm.create.end "$u" 3 || fail "$u: resend not delivered after the alarm"
wait_status vtpm.delete.end "$u" 1 || fail "$u: not deleted after the alarm"
wait_status vtpm.create.end "$v" 2 || fail "$v: resend not delivered after the alarm"
queue_idle 30 || fail "unacked after the alarm"
# In that order on the bus too.
line_of() { grep -n "\"event_type\": \"$1\".*\"instance_uuid\": \"$u\"" "$T/status.jsonl" | tail -n 1 | cut -d: -f1; }
[ "$(line_of vtpm.delete.end)" -gt "$(line_of vtpm.create.end)" ] ||
    fail "$u: delete.end before the resent create.end"
active_domains() { ctl --json domains | "$PYTHON" -c '
import json, sys
print(" ".join(d["instance_uuid"] for d in json.load(sys.stdin)["domains"] if d["active"]))'; }
_i=0
until [ "$(active_domains)" = "$v" ]; do
    _i=$((_i + 1))
    [ $_i -lt 100 ] || fail "active domains: '$(active_domains)', want $v's only"
    sleep 0.1
done
vtpmd_stop
pass "a resend holds the instance's next events until confirmed; its domain is restored after it"
