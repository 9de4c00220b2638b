#!/bin/sh
# Records against vtpmmgr: orphans reported (and only deleted when asked
# to), vTPMs gone from vtpmmgr reported or re-created with their UUID, an
# interrupted delete finished, duplicates reported, listing across pages;
# the group found by UUID among several (also after its index moved,
# skipping a sealed group), an unknown group refused; a vtpmmgr restart
# on a TPM 2.0 host. GROUP_NEW and GROUP_DEL are never sent.
. "$(dirname "$0")/lib.sh"

# ---- orphans: report, then delete -------------------------------------
fake_start --page 5
O1=$(uuidgen_)
O2=$(uuidgen_)
fakectl add "$O1" > /dev/null
fakectl add "$O2" > /dev/null
write_conf
proxyd_start
grep -q "orphan (no record) vtpm=$O1 action=report" "$T/proxyd.log" || fail "orphan not reported at start"
a=$(create "$(uuidgen_)")
expect 200 GET /v1/health
[ "$(jget 'j["orphans"]')" = 2 ] || fail "health orphans: $(cat "$T/body")"
expect 200 POST /v1/reconcile
[ "$(jget 'sorted(j["orphans"])')" = "$("$PYTHON" -c 'import json, sys; print(json.dumps(sorted(sys.argv[1:])))' "$O1" "$O2")" ] ||
    fail "reconcile orphans: $(cat "$T/body")"
[ "$(jget 'j["in_group"]')" = 3 ] || fail "in_group: $(cat "$T/body")"
[ "$(jget 'j["deleted"]')" = "[]" ] || fail "report mode deleted something"
fake_live | grep -q "$O1" || fail "report mode deleted an orphan"
proxyd_stop
write_conf "orphans: delete"
proxyd_start
grep -q "orphan (no record) vtpm=$O1 action=delete" "$T/proxyd.log" || fail "orphan delete not logged"
[ "$(fake_live)" = "$a" ] || fail "after orphans: delete, vtpmmgr holds $(fake_live)"
expect 200 GET /v1/health
[ "$(jget 'j["orphans"]')" = 0 ] || fail "health orphans after delete: $(cat "$T/body")"
pass "orphans: reported and kept, then deleted with orphans: delete; records untouched"

# ---- listing across pages (5 per answer here), duplicates ----------------
i=0
while [ $i -lt 23 ]; do
    create "$(uuidgen_)" > /dev/null
    i=$((i + 1))
done
fakectl add "$a" > /dev/null # vtpmmgr never checks for duplicates
expect 200 POST /v1/reconcile
[ "$(jget 'j["in_group"]')" = 25 ] || fail "paged list: $(cat "$T/body")"
[ "$(jget 'j["orphans"]')" = "[]" ] || fail "paged list orphans: $(cat "$T/body")"
[ "$(jget 'j["duplicated"]')" = "[\"$a\"]" ] || fail "duplicate: $(cat "$T/body")"
[ "$(fake_count VTPM_LIST)" -ge 6 ] || fail "not paged: $(fake_count VTPM_LIST) VTPM_LIST"
pass "VTPM_LIST paged (24 vTPMs, 5 per answer); a duplicate reported"

# ---- missing: report, recreate -------------------------------------------
proxyd_stop
fake_stop
fake_start
rm -rf "$T/state"
write_conf
proxyd_start
u1=$(create "$(uuidgen_)")
u2=$(create "$(uuidgen_)")
fakectl drop "$u1" > /dev/null
expect 200 POST /v1/reconcile
[ "$(jget 'j["missing"]')" = "[\"$u1\"]" ] || fail "missing: $(cat "$T/body")"
expect 200 GET "/v1/vtpms/$u1"
grep -q "missing (recorded, gone from vtpmmgr) vtpm=$u1 action=report" "$T/proxyd.log" ||
    fail "missing not logged"
# Switch to recreate with a reload (SIGHUP also reconciles).
write_conf "missing: recreate"
kill -HUP "$PROXYD_PID"
wait_for "$T/proxyd.log" "missing .* vtpm=$u1 action=recreate" 20 || fail "no recreate on SIGHUP"
wait_for "$T/proxyd.log" 'recreated=1' 20 || fail "recreate not done"
fake_live | grep -q "$u1" || fail "$u1 not re-created in vtpmmgr"
grep -q "created vtpm=$u1 group=0 form=30" "$T/fake.log" || fail "not the 30-byte VTPM_NEW"
[ "$(records)" = "$(fake_live)" ] || fail "records $(records) != vtpmmgr $(fake_live)"
pass "missing: reported; re-created under the same UUID (30-byte VTPM_NEW) after SIGHUP"

# ---- an interrupted delete is finished -------------------------------------
proxyd_stop
"$PYTHON" - "$T/state/vtpms/$u2.json" <<'EOF'
import json, sys
p = sys.argv[1]
r = json.load(open(p))
r["state"] = "deleting"
json.dump(r, open(p, "w"))
EOF
proxyd_start
wait_for "$T/proxyd.log" 'finished=1' 10 || fail "interrupted delete not finished"
fake_live | grep -q "$u2" && fail "the interrupted delete left the vTPM"
[ -e "$T/state/vtpms/$u2.json" ] && fail "the interrupted delete left the record"
expect 404 GET "/v1/vtpms/$u2"
pass "a delete interrupted after its record was marked is finished at start"
proxyd_stop
fake_stop

# ---- the group by UUID among several ----------------------------------------
fake_start --groups 3 --sealed 0
groups=$(fakectl list)
g2=$(echo "$groups" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["groups"][2]["uuid"])')
printf 'vtpmmgr:\n  device: %s\n  timeout: 1s\n  group: %s\n' "$T/tpm0" "$g2" > "$T/vm.yaml"
write_conf "$(cat "$T/vm.yaml")"
rm -rf "$T/state"
proxyd_start
expect 200 GET /v1/health
[ "$(jget 'j["vtpmmgr"]["group"]')" = "$g2" ] || fail "group: $(cat "$T/body")"
[ "$(jget 'j["vtpmmgr"]["group_index"]')" = 2 ] || fail "group index: $(cat "$T/body")"
v1=$(create "$(uuidgen_)")
in_group() { fakectl list | "$PYTHON" -c 'import json, sys
g = [g for g in json.load(sys.stdin)["groups"] if g["uuid"] == sys.argv[1]][0]
print(" ".join(sorted(g["vtpms"])))' "$1"; }
[ "$(in_group "$g2")" = "$v1" ] || fail "not created in group $g2: $(fakectl list)"
# The operator deletes group 1: ours moves from index 2 to 1.
fakectl delgroup 1 > /dev/null
v2=$(create "$(uuidgen_)")
[ "$(in_group "$g2")" = "$(printf '%s\n%s\n' "$v1" "$v2" | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
    fail "after the index moved: $(fakectl list)"
grep -q "the group's index moved" "$T/proxyd.log" || fail "index move not noticed"
expect 200 GET /v1/health
[ "$(jget 'j["vtpmmgr"]["group_index"]')" = 1 ] || fail "new index: $(cat "$T/body")"
# Gone altogether: 503, nothing created elsewhere.
fakectl delgroup 1 > /dev/null
expect 503 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
jget 'j["error"]["message"]' | grep -q "group $g2 not found" || fail "unknown group: $(cat "$T/body")"
[ "$(fake_count VTPM_NEW)" = 2 ] || fail "a vTPM was made without the group"
proxyd_stop
# Unknown at start: health says why, POST refuses.
proxyd_start
expect 503 GET /v1/health
jget 'j["vtpmmgr"]["message"]' | grep -q "not found" || fail "health with an unknown group: $(cat "$T/body")"
grep -q 'retrying the start-up reconcile' "$T/proxyd.log" || fail "start-up reconcile not retried"
check_no_forbidden
proxyd_stop
fake_stop
pass "group by UUID (skipping a sealed one), followed when its index moves, refused when gone"

# ---- vtpmmgr restarts on a TPM 2.0 host: nothing kept ------------------------
fake_start --tpm2
rm -rf "$T/state"
write_conf "missing: recreate"
proxyd_start
t1=$(create "$(uuidgen_)")
t2=$(create "$(uuidgen_)")
old=$(fakectl list | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["groups"][0]["uuid"])')
fakectl restart > /dev/null
[ "$(fake_live)" = "" ] || fail "the fake kept vTPMs across a TPM 2.0 restart"
expect 200 POST /v1/reconcile
[ "$(jget 'len(j["missing"])')" = 2 ] || fail "after restart: $(cat "$T/body")"
[ "$(jget 'len(j["recreated"])')" = 2 ] || fail "not re-created: $(cat "$T/body")"
[ "$(jget 'j["group"]')" != "$old" ] || fail "the new group 0 was not followed"
[ "$(records)" = "$(fake_live)" ] || fail "records $(records) != vtpmmgr $(fake_live)"
check_no_forbidden
proxyd_stop
pass "TPM 2.0 restart: every record missing, re-created under the same UUIDs in the new group 0"
