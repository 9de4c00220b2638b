#!/bin/sh
# Failure paths of every provisioning step, through the real vtpmd binary
# with RabbitMQ, the fake Keylime-VM proxy (api v1), an oslo.messaging
# status listener. Notifications are copies of Nova's genuine ones from
# tests/fixtures/nova/ (host compute1) with fresh instance UUIDs
# (tests/tools/fault_burst.py send: no 2 s Python start-up of Nova each).
#   image creation fails  the image directory is a 3 MiB tmpfs (vtpmd runs
#                         in a private mount namespace): the second 2 MiB
#                         image hits ENOSPC -> vtpm.create.error disk_full
#   define fails          libvirt's test driver loaded from a node file
#                         holding foreign domains whose names vtpmd would
#                         use: one without vtpmd metadata, one an orphan
#                         carrying another instance's metadata -> the
#                         define fails, vtpm.create.error, and the
#                         rollback leaves the foreign domains alone
#   proxy garbage, bad UUID, 5xx past retry_for, a lost response
#   release fails         (DELETE 5xx past retry_for) -> vtpm.delete.error,
#                         then reconciliation finishes the teardown
#   broker nacks a status a queue with x-max-length 0 and x-overflow
#                         reject-publish bound to the status exchange: the
#                         delivery stays unacked while the status is nacked
#                         and is acked once a status is confirmed
# After each: nothing left behind (no domain, no image, no vTPM UUID at
# the fake proxy for the failed instance) and the other instances intact.
. "$(dirname "$0")/../lib/common.sh"

# The tmpfs needs a mount namespace (root: unshare -m; else a user one).
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    NS="unshare -m"
elif unshare -rm true 2>/dev/null; then
    NS="unshare -rm"
else
    echo "SKIP: cannot create a mount namespace here (unshare -m / -rm refused)"
    exit 77
fi
. "$top_srcdir/tests/lib/broker.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"
VTPMD_HOST=compute1 # the fixtures' host
nova() {
    "$PYTHON" "$TOOLS/fault_burst.py" send --url "$BROKER_URL" \
        --fixtures "$top_srcdir/tests/fixtures/nova" "$@" || fail "send $*"
}

fake_proxy_start
listener_start

# Foreign domains in the test driver's node file.
UF1=$(new_uuid) UF2=$(new_uuid) V=$(new_uuid)
"$PYTHON" - "$T/node.xml" "$UF1" "$UF2" "$V" <<'PY' || fail "node file"
import sys, uuid
import xml.etree.ElementTree as ET
out, uf1, uf2, v = sys.argv[1:5]
NS = "http://vtpmd.org/xmlns/vtpmd/1.0"
ET.register_namespace("vtpmd", NS)
node = ET.Element("node")
for name, meta in (("vtpm-" + uf1, None), ("vtpm-" + uf2, v)):
    d = ET.SubElement(node, "domain", type="test")
    ET.SubElement(d, "name").text = name
    ET.SubElement(d, "uuid").text = str(uuid.uuid4())
    ET.SubElement(d, "memory").text = "8192"
    ET.SubElement(ET.SubElement(d, "os"), "type").text = "xen"
    if meta:
        m = ET.SubElement(ET.SubElement(d, "metadata"), "{%s}vtpm" % NS)
        ET.SubElement(m, "{%s}instance-uuid" % NS).text = meta
        ET.SubElement(m, "{%s}vtpm-uuid" % NS).text = str(uuid.uuid4())
        ET.SubElement(m, "{%s}image" % NS).text = "/nonexistent/%s.img" % meta
ET.ElementTree(node).write(out)
PY

# vtpmd in its own mount namespace with a 3 MiB tmpfs for the images.
mkdir -p "$T/images"
chmod 700 "$T/images"
cat > "$T/vtpmd-ns" <<EOF
#!/bin/sh
exec $NS sh -c 'mount -t tmpfs -o size=3m,mode=0700 vtpmd-test "\$0" && exec "\$@"' "$T/images" "$VTPMD" "\$@"
EOF
chmod +x "$T/vtpmd-ns"
VTPMD="$T/vtpmd-ns"
vtpmd_config "$T/vtpmd.yaml" \
    "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', api: v1, retry_for: 4s, timeout: 1s}" \
    "reconcile: {interval: 3s}"
sed -i "s|uri: 'test:///default'|uri: 'test://$T/node.xml'|" "$T/vtpmd.yaml"
vtpmd_start "$T/vtpmd.yaml"
in_ns() { nsenter -t "$VTPMD_PID" -m "$@"; }
in_ns mountpoint -q "$T/images" || fail "no tmpfs in vtpmd's namespace"

domains() { ctl --json domains | "$PYTHON" -c '
import json, sys
for d in json.load(sys.stdin)["domains"]:
    print(d["name"], d["instance_uuid"], "active" if d["active"] else "inactive",
          "orphan" if d["orphan"] else "held")'; }
live() { fake_proxy_state live; }

# nothing_left UUID: the failed instance holds nothing anywhere.
nothing_left() {
    [ "$(json_field "$1" state)" = failed ] || fail "$1: state $(json_field "$1" state)"
    [ -z "$(json_field "$1" vtpm_uuid)" ] || fail "$1: still has a vTPM UUID"
    domains | grep -q " $1 " && fail "$1: a domain left: $(domains)"
    in_ns test -e "$T/images/$1.img" && fail "$1: image left"
    fake_proxy_call GET /_fake/state | grep -q "$1" && fail "$1: vTPM left at the proxy"
    wait_status vtpm.create.error "$1" 1 || fail "$1: no vtpm.create.error"
    queue_idle || fail "$1: delivery not acked"
}
error_code() {
    grep "\"vtpm.create.error\".*\"instance_uuid\": \"$1\"" "$T/status.jsonl" | tail -n 1 |
        "$PYTHON" -c 'import json,sys; p=json.load(sys.stdin)["payload"]; print(p.get("error_code") or p.get("error", {}).get("code"))'
}

# ---- image creation fails: disk full ---------------------------------
A=$(new_uuid) B=$(new_uuid)
nova "create.start:$A"
ctl wait "$A" 30 > /dev/null || fail "first instance not ready"
nova "create.start:$B"
ctl wait "$B" 30 > /dev/null 2>&1
nothing_left "$B"
[ "$(error_code "$B")" = disk_full ] || fail "error code $(error_code "$B"), want disk_full"
[ "$(json_field "$A" state)" = ready ] && in_ns test -s "$T/images/$A.img" || fail "first instance hurt"
[ "$(live)" = 1 ] || fail "proxy live $(live), want 1"
pass "image creation fails (ENOSPC): vtpm.create.error disk_full, rolled back, nothing left"
nova "delete:$A"
wait_status vtpm.delete.end "$A" 1 || fail "delete of $A"

# ---- define fails: the name is taken ---------------------------------
domains | grep -q "^vtpm-$UF2 $V inactive orphan$" || domains | grep -q "^vtpm-$UF2 $V active orphan$" ||
    fail "the orphan is not listed: $(domains)"
nova "create.start:$UF1" "create.start:$UF2"
wait_status vtpm.create.error "$UF1" 1 || fail "$UF1: no vtpm.create.error"
wait_status vtpm.create.error "$UF2" 1 || fail "$UF2: no vtpm.create.error"
nothing_left "$UF1"
grep -q "domain event domain=vtpm-$UF1 " "$T/vtpmd.log" && fail "the foreign domain vtpm-$UF1 was touched"
domains | grep -q "^vtpm-$UF2 $V .* orphan$" || fail "rollback destroyed another instance's orphan domain: $(domains)"
nothing_left "$UF2"
[ "$(live)" = 0 ] || fail "proxy live $(live), want 0"
pass "define fails (name taken by a foreign domain, by an orphan): create.error, foreign domains untouched"

# ---- proxy faults -----------------------------------------------------
for f in '{"garbage_next": 1}' '{"bad_uuid_next": 1}' \
    '{"fail_next": 1000, "fail_status": 500, "fault_methods": ["POST"]}'; do
    fake_proxy_faults "$f"
    u=$(new_uuid)
    nova "create.start:$u"
    wait_status vtpm.create.error "$u" 1 || fail "$f: no vtpm.create.error"
    nothing_left "$u"
    fake_proxy_reset
    pass "proxy fault $f: vtpm.create.error, nothing left"
done
fake_proxy_faults '{"drop_after_commit_next": 1, "fault_methods": ["POST"]}'
C=$(new_uuid)
nova "create.start:$C"
ctl wait "$C" 30 > /dev/null || fail "lost proxy response: not ready"
[ "$(live)" = 1 ] || fail "lost response: proxy live $(live), want 1"
fake_proxy_call GET /_fake/state | grep -q "$(json_field "$C" vtpm_uuid)" || fail "vTPM UUID differs from the proxy's"
pass "lost proxy response: retried, the same vTPM, none leaked"

# ---- release fails: delete.error, then reconciliation finishes ---------
fake_proxy_faults '{"fail_next": 1000, "fail_status": 503, "fault_methods": ["DELETE"]}'
nova "delete:$C"
wait_status vtpm.delete.error "$C" 1 20 || fail "no vtpm.delete.error"
queue_idle || fail "delete.error: not acked"
[ "$(live)" = 1 ] || fail "release failed but the proxy forgot"
fake_proxy_reset
i=0
while ctl show "$C" > /dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
ctl show "$C" > /dev/null 2>&1 && fail "reconciliation did not finish the teardown"
[ "$(live)" = 0 ] || fail "proxy live $(live) after the teardown was finished"
in_ns test -e "$T/images/$C.img" && fail "image left"
pass "release fails: vtpm.delete.error, reconciliation finished the teardown"

# ---- the broker nacks a status ---------------------------------------
"$PYTHON" - "$BROKER_URL" <<'PY' || fail "nacking queue"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
ch.queue_declare("nacker", arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
ch.queue_bind("nacker", "vtpmd", "#")
c.close()
PY
D=$(new_uuid)
nova "create.start:$D"
wait_for "$T/vtpmd.log" "status notification not confirmed, retrying event=vtpm.create.end instance=$D" 30 ||
    fail "no nack seen"
ua=$(broker_ctl list_queues -q name messages_unacknowledged | awk -v q="vtpmd.$VTPMD_HOST" '$1 == q { print $2 }')
[ "$ua" -ge 1 ] || fail "acked although its status was nacked"
"$PYTHON" - "$BROKER_URL" <<'PY' || fail "delete nacking queue"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
c.channel().queue_delete("nacker")
c.close()
PY
wait_status vtpm.create.end "$D" 1 30 || fail "status not sent again after the nacks"
queue_idle || fail "not acked after the status was confirmed"
[ "$(json_field "$D" state)" = ready ] || fail "not ready"
pass "status nacked by the broker: retried, delivery acked only after the confirm"

ctl health > /dev/null || fail "health"
vtpmd_stop
pass "clean stop"
