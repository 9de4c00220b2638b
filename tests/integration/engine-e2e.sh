#!/bin/sh
# End to end, all real: RabbitMQ, the vtpmd binary, libvirt's
# test:///default, Nova's own code publishing, an oslo.messaging listener
# receiving vtpmd's status. Legacy and versioned formats alone and
# together; policy deny and the "no is not remembered" rule; a
# rescheduled build; hostile input.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"

listener_start
vtpmd_config "$T/vtpmd.yaml"
vtpmd_start "$T/vtpmd.yaml"

# check_ready UUID: one running stub domain with the right XML and
# metadata, the image with the right size and mode.
check_ready() {
    u=$1
    ctl wait "$u" 30 > /dev/null || fail "$u: not ready ($(ctl show "$u" 2>&1 | head -c 300))"
    [ "$(json_field "$u" state)" = ready ] || fail "$u: state"
    vt=$(json_field "$u" vtpm_uuid)
    img=$(json_field "$u" image_path)
    dom=$(json_field "$u" vtpm_domain)
    [ "$dom" = "vtpm-$u" ] || fail "$u: domain name $dom"
    [ "$img" = "$T/images/$u.img" ] || fail "$u: image path $img"
    [ "$(stat -c '%s %a' "$img")" = "2097152 600" ] || fail "$u: image $(stat -c '%s %a' "$img")"
    [ "$(stat -c '%a' "$T/images")" = 700 ] || fail "image dir mode"
    json_field "$u" domain_xml > "$T/dom.xml"
    for pat in "<domain type='xen'" "<name>vtpm-$u</name>" "<uuid>$vt</uuid>" \
        "machine='xenpv'" "<kernel>/usr/lib/xen/boot/vtpm-stubdom.gz</kernel>" \
        "<cmdline>loglevel=debug</cmdline>" "<memory unit='KiB'>8192</memory>" \
        "<source file='$img'/>" "<target dev='hda' bus='xen'/>" \
        "<vtpmd:instance-uuid>$u</vtpmd:instance-uuid>" "<vtpmd:vtpm-uuid>$vt</vtpmd:vtpm-uuid>" \
        "<vtpmd:image>$img</vtpmd:image>" "<vtpmd:host>cmp1</vtpmd:host>"; do
        grep -qF "$pat" "$T/dom.xml" || fail "$u: domain XML lacks $pat"
    done
    # libvirt's own view: exactly one domain for it, running.
    n=$(ctl --json domains 2>/dev/null | "$PYTHON" -c "
import json,sys
d=[x for x in json.load(sys.stdin)['domains'] if x['instance_uuid']=='$u']
print(len([x for x in d if x['active']]), len(d))")
    [ "$n" = "1 1" ] || fail "$u: libvirt domains (active, all) = $n"
    wait_status vtpm.create.end "$u" 1 || fail "$u: no vtpm.create.end status"
}

check_gone() {
    u=$1
    i=0
    while ctl show "$u" > /dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    ctl show "$u" > /dev/null 2>&1 && fail "$u: still held after delete"
    [ -e "$T/images/$u.img" ] && fail "$u: image left behind"
    n=$(ctl --json domains | "$PYTHON" -c "
import json,sys
print(len([x for x in json.load(sys.stdin)['domains'] if x['instance_uuid']=='$u']))")
    [ "$n" = 0 ] || fail "$u: $n libvirt domains left"
    wait_status vtpm.delete.end "$u" 1 || fail "$u: no vtpm.delete.end status"
}

# Both formats together, then each alone.
for fmt in both legacy versioned; do
    u=$(new_uuid)
    NOVA_FORMAT=$fmt nova "create.start:$u" "create.end:$u"
    check_ready "$u"
    queue_idle || fail "$fmt: deliveries left unacked"
    NOVA_FORMAT=$fmt nova "delete:$u"
    check_gone "$u"
    queue_idle || fail "$fmt: deliveries left unacked after delete"
    # One provisioning for the pair of copies.
    [ "$(status_count vtpm.create.end "$u")" -eq 1 ] || fail "$fmt: create.end count $(status_count vtpm.create.end "$u")"
    pass "format $fmt: create then delete"
done

# Status notifications carry the contract's envelope and payload.
"$PYTHON" - "$T/status.jsonl" <<'PY' || fail "status payload"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if '"vtpm.' in l]
assert evs, "no status"
for e in evs:
    assert e["publisher_id"] == "vtpmd:cmp1", e
    p = e["payload"]
    for k in ("instance_uuid", "host", "vtpm_uuid", "vtpm_domain", "image_path",
              "rule", "state", "duration_ms", "request_id"):
        assert k in p, (k, e)
    assert e["priority"] == ("ERROR" if e["event_type"].endswith(".error") else "INFO")
    if e["event_type"] == "vtpm.create.end":
        assert p["state"] == "ready" and p["vtpm_uuid"] and p["rule"] == "default", p
        assert p["request_id"].startswith("req-"), p
PY
pass "status payloads"

# Policy: deny by default, a flavor rule, and an extra-spec rule that only
# the versioned copy can satisfy (the legacy "no" must not be remembered).
vtpmd_config "$T/vtpmd.yaml" "policy:" "  default: deny" "  rules:" \
    "    - {name: tpm-flavor, match: {flavor: 'tpm.*'}}" \
    "    - {name: tpm-spec, match: {flavor_extra_specs: {'hw:tpm_version': '2.0'}}}"
ctl reload > /dev/null || fail "reload"
u1=$(new_uuid); u2=$(new_uuid); u3=$(new_uuid)
nova "create.start:$u1:flavor=m1.small" "create.start:$u2:flavor=tpm.large" \
    "create.start:$u3:flavor=m1.small,spec.hw:tpm_version=2.0"
check_ready "$u2"
check_ready "$u3"
queue_idle || fail "policy: unacked"
ctl show "$u1" > /dev/null 2>&1 && fail "denied instance got a vTPM"
[ -e "$T/images/$u1.img" ] && fail "denied instance got an image"
[ "$(status_count vtpm.create.start "$u1")" -eq 0 ] || fail "denied instance got a status"
[ "$(json_field "$u2" rule)" = tpm-flavor ] || fail "rule of $u2"
[ "$(json_field "$u3" rule)" = tpm-spec ] || fail "rule of $u3"
ctl wait "$u1" 5 > /dev/null 2>&1
[ $? -eq 2 ] || fail "wait for a denied instance: want exit 2 (not selected)"
pass "policy deny, rules, extra specs from the versioned copy"
nova "delete:$u2" "delete:$u3"
check_gone "$u2"
check_gone "$u3"
vtpmd_config "$T/vtpmd.yaml"
ctl reload > /dev/null || fail "reload"

# A rescheduled build: it fails here and starts on another host.
u=$(new_uuid)
nova "create.start:$u"
check_ready "$u"
nova "create.error:$u" "create.start:$u:host=cmp2" "create.end:$u:host=cmp2"
check_gone "$u"
queue_idle || fail "reschedule: unacked"
# A late copy of the create here must not resurrect it (tombstone).
nova "create.start:$u"
queue_idle || fail "late create: unacked"
ctl show "$u" > /dev/null 2>&1 && fail "late create resurrected the instance"
[ -e "$T/images/$u.img" ] && fail "late create made an image"
pass "rescheduled build leaves nothing here; late create ignored"

# Another host's notifications are not ours.
u=$(new_uuid)
nova "create.start:$u:host=cmp9"
queue_idle || fail "other host: unacked"
ctl show "$u" > /dev/null 2>&1 && fail "another host's instance got a vTPM"
pass "other hosts ignored"

# Hostile input never reaches a path, a name or XML: an instance UUID
# that is a path, markup in the payload. Rejected as malformed, acked.
"$PYTHON" - "$BROKER_URL" <<'PY' || fail "raw publish"
import json, sys, pika
url = sys.argv[1]
c = pika.BlockingConnection(pika.URLParameters(url))
ch = c.channel()
for bad in ["../../../etc/passwd", "<x>&'\"", "2a0f9f2c-1d0d-4c6e-9d65-1b8e7a0e2f11/../x",
            "a" * 5000]:
    inner = {"message_id": "m", "publisher_id": "nova-compute:cmp1",
             "event_type": "instance.create.start", "priority": "INFO",
             "timestamp": "2026-01-01 00:00:00.0",
             "payload": {"nova_object.name": "InstanceCreatePayload",
                         "nova_object.data": {"uuid": bad, "host": "cmp1",
                                              "tenant_id": "t"}}}
    ch.basic_publish("nova", "versioned_notifications.info",
                     json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}))
c.close()
PY
queue_idle || fail "hostile: unacked"
ls "$T/images" | grep -v '\.img$' && fail "hostile input made a file"
ctl metrics | grep -q 'vtpmd_notifications_total{outcome="malformed"} [1-9]' || fail "malformed not counted"
pass "hostile instance UUIDs rejected"

ctl health > /dev/null || fail "health"
vtpmd_stop
pass "clean stop"
