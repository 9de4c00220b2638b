#!/bin/sh
# End to end: vtpmd (provider keylime-proxy, api v1) provisions and tears
# down instances, from Nova's own notifications on a private RabbitMQ,
# through the real vtpm-proxyd and the vtpmmgr fake behind its pty, with
# libvirt's test:///default. vtpm-proxyd is killed with SIGKILL in the
# middle of a burst of creates and deletes, and restarted; vtpmd retries.
# Afterwards, for every instance: vtpmd's vTPM UUID is vtpm-proxyd's
# record for it and lives in vtpmmgr; deleted instances have neither; no
# instance has two records, vtpmmgr holds no duplicate, and the vTPMs the
# kill left without a record are exactly the reported orphans, which
# orphans: delete removes: vtpmmgr's live set equals the live instances'.
. "$(dirname "$0")/../proxyd/lib.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"

fake_start
write_conf
proxyd_start
listener_start
vtpmd_config "$T/vtpmd.yaml" \
    "vtpmmgr: {provider: keylime-proxy, url: 'http://127.0.0.1:$PORT/', api: v1, timeout: 5s, retry_for: 2m}"
vtpmd_start "$T/vtpmd.yaml"

# vtpmd's vTPM for an instance must be vtpm-proxyd's record for it, and
# alive in vtpmmgr.
check_instance() { # INSTANCE
    v=$(json_field "$1" vtpm_uuid)
    [ -n "$v" ] || fail "$1: vtpmd has no vTPM UUID"
    expect 200 GET "/v1/vtpms?instance_uuid=$1"
    [ "$(jget '[r["uuid"] for r in j["vtpms"]]')" = "[\"$v\"]" ] ||
        fail "$1: vtpmd holds $v, vtpm-proxyd $(cat "$T/body")"
    fake_live | grep -qx "$v" || fail "$1: $v is not in vtpmmgr"
}

# ---- a first batch, undisturbed --------------------------------------
: > "$T/live"
i=0
while [ $i -lt 8 ]; do new_uuid; i=$((i + 1)); done > "$T/batch1"
set --
while read -r u; do set -- "$@" "create.start:$u"; done < "$T/batch1"
nova "$@"
while read -r u; do
    ctl wait "$u" 60 > /dev/null || fail "$u not ready"
    check_instance "$u"
    echo "$u" >> "$T/live"
done < "$T/batch1"
[ "$(records | wc -l)" = 8 ] || fail "records: $(records)"
[ "$(fake_live | wc -l)" = 8 ] || fail "vtpmmgr: $(fake_live)"
pass "8 instances provisioned through vtpm-proxyd: one vTPM each, recorded, in vtpmmgr"

# ---- a burst, and vtpm-proxyd killed in its middle --------------------
i=0
while [ $i -lt 12 ]; do new_uuid; i=$((i + 1)); done > "$T/batch2"
head -n 4 "$T/batch1" > "$T/gone"
set --
while read -r u; do set -- "$@" "create.start:$u"; done < "$T/batch2"
while read -r u; do set -- "$@" "delete:$u"; done < "$T/gone"
fakectl slow 150 > /dev/null # every command takes 150 ms: the kill lands mid-command
made=$(count_matches "$T/proxyd.log" 'vtpm created ')
nova "$@" &
emit=$!
wait_count "$T/proxyd.log" 'vtpm created ' $((made + 3)) 60 || fail "the burst did not reach vtpm-proxyd"
proxyd_kill
wait $emit || fail "emitting the burst failed"
echo "# vtpm-proxyd killed after $(($(count_matches "$T/proxyd.log" 'vtpm created ') - made)) creates of the burst"
sleep 1
fakectl slow 0 > /dev/null
cp "$T/proxyd.log" "$T/proxyd-before-kill.log"
proxyd_start
while read -r u; do
    ctl wait "$u" 120 > /dev/null || fail "$u not ready after the restart"
    check_instance "$u"
    echo "$u" >> "$T/live"
done < "$T/batch2"
while read -r u; do
    wait_status vtpm.delete.end "$u" 1 120 || fail "$u: no vtpm.delete.end"
    expect 200 GET "/v1/vtpms?instance_uuid=$u"
    [ "$(jget 'j["vtpms"]')" = "[]" ] || fail "$u deleted, yet recorded: $(cat "$T/body")"
    grep -vx "$u" "$T/live" > "$T/live.new"; mv "$T/live.new" "$T/live"
done < "$T/gone"
while read -r u; do check_instance "$u"; done < "$T/live"
queue_idle 60 || fail "vtpmd's queue not drained"
pass "vtpm-proxyd killed mid-burst and restarted: every instance ready with its recorded vTPM"

# ---- nothing duplicated, nothing leaked -------------------------------------
expect 200 GET /v1/vtpms
"$PYTHON" - "$T/body" "$T/live" <<'EOF' || fail "records do not match the live instances"
import json, sys
recs = json.load(open(sys.argv[1]))["vtpms"]
live = sorted(l.strip() for l in open(sys.argv[2]) if l.strip())
insts = [r["instance_uuid"] for r in recs]
if len(insts) != len(set(insts)):
    sys.exit("an instance has two records")
if sorted(insts) != live:
    sys.exit("recorded instances %s != live %s" % (sorted(insts), live))
EOF
fake_live > "$T/fake.live"
[ "$(sort -u "$T/fake.live" | wc -l)" = "$(wc -l < "$T/fake.live")" ] || fail "vtpmmgr holds duplicates"
records > "$T/records"
comm -23 "$T/records" "$T/fake.live" | grep -q . && fail "records without a vTPM: $(comm -23 "$T/records" "$T/fake.live")"
expect 200 POST /v1/reconcile
[ "$(jget '"\n".join(sorted(j["orphans"]))')" = "$(comm -13 "$T/records" "$T/fake.live")" ] ||
    fail "orphans reported $(jget 'j["orphans"]') != vtpmmgr - records"
orphans=$(jget 'len(j["orphans"])')
proxyd_stop
write_conf "orphans: delete"
proxyd_start
[ "$(records)" = "$(fake_live)" ] || fail "after orphans: delete: records != vtpmmgr"
[ "$(fake_live | wc -l)" = "$(wc -l < "$T/live")" ] || fail "vtpmmgr holds $(fake_live | wc -l) vTPMs for $(wc -l < "$T/live") instances"
pass "no instance with two vTPMs, no duplicate in vtpmmgr; $orphans orphan(s) of the kill reported and deleted: none leaked"

# ---- tear everything down ----------------------------------------------------
set --
while read -r u; do set -- "$@" "delete:$u"; done < "$T/live"
nova "$@"
while read -r u; do
    wait_status vtpm.delete.end "$u" 1 120 || fail "$u: no vtpm.delete.end"
done < "$T/live"
[ "$(records)" = "" ] || fail "records left: $(records)"
[ "$(fake_live)" = "" ] || fail "vTPMs left in vtpmmgr: $(fake_live)"
check_no_forbidden
vtpmd_stop
proxyd_stop
pass "all torn down: no record, no vTPM left; no GROUP_NEW/GROUP_DEL sent"
