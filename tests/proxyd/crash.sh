#!/bin/sh
# kill -9 of vtpm-proxyd in the middle of a burst of concurrent creates
# (each instance twice) and deletes, against a vtpmmgr that takes 15 ms
# per answer, so that kills land mid-command. After each restart:
# - every vTPM answered with 201 is recorded for its instance, and every
#   record's vTPM exists in vtpmmgr (nothing lost);
# - no instance has two records and vtpmmgr holds no duplicate;
# - every vTPM answered with 204 is gone from records and vtpmmgr;
# - vtpmmgr's vTPMs minus the records are exactly the orphans the
#   reconcile reports, and with orphans: delete they are removed, leaving
#   vtpmmgr's live set equal to the records (nothing leaked);
# - retrying every create returns the recorded UUID and makes nothing.
# PROXYD_CRASH_ROUNDS sets the number of kills (default 6).
. "$(dirname "$0")/lib.sh"
BURST="$top_srcdir/tests/proxyd/burst.py"
ROUNDS=${PROXYD_CRASH_ROUNDS:-6}

fake_start
i=0
while [ $i -lt 60 ]; do uuidgen_; i=$((i + 1)); done > "$T/instances"
head -n 30 "$T/instances" > "$T/half0"
tail -n 30 "$T/instances" > "$T/half1"

round=1
orphans_total=0
while [ $round -le "$ROUNDS" ]; do
    # Create one half; delete the vTPMs recorded for the other.
    write_conf
    proxyd_start
    if [ $((round % 2)) = 1 ]; then mine=half0; theirs=half1; else mine=half1; theirs=half0; fi
    expect 200 GET /v1/vtpms
    "$PYTHON" -c 'import json, sys
inst = set(l.strip() for l in open(sys.argv[2]))
for v in json.load(open(sys.argv[1]))["vtpms"]:
    if v["instance_uuid"] in inst:
        print(v["uuid"])' "$T/body" "$T/$theirs" > "$T/deletes"
    fakectl slow 15 > /dev/null
    "$PYTHON" "$BURST" burst "$BASE" "$T/$mine" "$T/deletes" "$T/out$round.json" &
    burst=$!
    delay=$("$PYTHON" -c 'import random; print(round(random.uniform(0.05, 0.8), 2))')
    sleep "$delay"
    proxyd_kill
    wait $burst
    fakectl slow 0 > /dev/null
    ok=$("$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("%d of %d" % (sum(1 for x in r if x["status"] in (201, 204)), len(r)))' "$T/out$round.json")

    # Restart: the start-up reconcile reports what the crash left.
    proxyd_start
    fakectl list > "$T/fake.json"
    "$PYTHON" "$BURST" check "$BASE" "$T/fake.json" "$T/out$round.json" > "$T/orphans" ||
        fail "round $round (kill after ${delay}s): invariants broken"
    expect 200 POST /v1/reconcile
    [ "$(jget 'j["missing"]')" = "[]" ] || fail "round $round: missing: $(cat "$T/body")"
    [ "$(jget 'j["duplicated"]')" = "[]" ] || fail "round $round: duplicated: $(cat "$T/body")"
    [ "$(jget '"\n".join(sorted(j["orphans"]))')" = "$(sort "$T/orphans")" ] ||
        fail "round $round: reported orphans $(jget 'j["orphans"]') != live - records $(cat "$T/orphans")"
    n=$(grep -c . "$T/orphans")
    orphans_total=$((orphans_total + n))
    proxyd_stop

    # orphans: delete removes exactly them.
    write_conf "orphans: delete"
    proxyd_start
    [ "$(records)" = "$(fake_live)" ] || fail "round $round: after orphans: delete, records != vtpmmgr"
    # Retrying the creates: the recorded UUIDs, nothing new.
    news=$(fake_count VTPM_NEW)
    "$PYTHON" "$BURST" retry "$BASE" "$T/$mine" || fail "round $round: retries"
    [ "$(fake_count VTPM_NEW)" = "$news" ] || fail "round $round: a retry made a vTPM"
    proxyd_stop
    echo "round $round: killed after ${delay}s with $ok requests answered; $n orphans found and deleted"
    round=$((round + 1))
done
check_no_forbidden
pass "$ROUNDS kill -9 rounds: nothing lost, nothing duplicated, $orphans_total orphans found and deleted, none leaked"
