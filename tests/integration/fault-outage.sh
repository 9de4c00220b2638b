#!/bin/sh
# A 30 s outage of the Keylime-VM proxy (the fake's API listener closed:
# connections refused) during bursts; all real: RabbitMQ, the vtpmd
# binary, libvirt's test:///default, the fake proxy (api v1), an
# oslo.messaging status listener. Bursts re-publish copies of Nova's
# genuine notifications from tests/fixtures/nova/ with fresh instance
# UUIDs (tests/tools/fault_burst.py).
#
# Phase 1, vtpmmgr.retry_for 2m (longer than the outage): a burst of
# creates and deletes arrives during the outage; nothing completes while
# the proxy is away (the deliveries wait, unacked), everything completes
# after it, with the invariants of fault-kill.sh.
# Phase 2, vtpmmgr.retry_for 8s (shorter than the outage): every create
# of a burst fails cleanly: state failed, vtpm.create.error, no domain,
# no image, no vTPM UUID held at the fake; the deliveries are acked; what
# phase 1 made is untouched.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/fault.sh"

N=${FAULT_OUTAGE_INSTANCES:-60}
fault_seed "$N instances a phase"

fake_proxy_start
listener_start

burst() {
    "$PYTHON" "$TOOLS/fault_burst.py" burst --url "$BROKER_URL" \
        --fixtures "$top_srcdir/tests/fixtures/nova" --seed "$1" --instances "$2" \
        --deleted "$3" --plan "$T/plan.$1" || fail "burst $1"
}

unacked() {
    broker_ctl list_queues -q name messages_unacknowledged |
        awk -v q="vtpmd.$VTPMD_HOST" '$1 == q { print $2 }'
}

# ---- phase 1: the work waits for the proxy -------------------------
vtpmd_config "$T/vtpmd.yaml" \
    "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', api: v1, retry_for: 2m, timeout: 2s}"
vtpmd_start "$T/vtpmd.yaml"
t0=$(date +%s)
fake_proxy_outage 30
burst "$SEED" "$N" 0.3
PLANS="--plan $T/plan.$SEED"
sleep 5
[ "$(count_matches "$T/vtpmd.log" 'instance ready ')" = 0 ] || fail "ready without the proxy"
[ "$(fake_proxy_state outage)" = true ] || fail "the outage ended early"
busy=$(ctl --json health | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["busy"])')
ua=$(unacked)
[ "$busy" -gt 0 ] && [ "$ua" -gt 0 ] || fail "nothing waiting during the outage (busy=$busy unacked=$ua)"
echo "# during the outage: busy=$busy unacked=$ua"
quiesce_check || fail "phase 1: invariants violated"
pass "phase 1 (retry_for 2m > 30 s outage): all waited and completed in $(($(date +%s) - t0)) s; $(grep -o 'instances=.*' "$T/check.out")"

# ---- phase 2: the work gives up cleanly -----------------------------
vtpmd_stop
vtpmd_config "$T/vtpmd.yaml" \
    "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', api: v1, retry_for: 8s, timeout: 2s}"
vtpmd_start "$T/vtpmd.yaml"
t0=$(date +%s)
fake_proxy_outage 30
burst "$((SEED + 1))" "$N" 0
queue_idle 60 || fail "phase 2: deliveries not acked after retry_for"
[ "$(fake_proxy_state outage)" = true ] || fail "the outage ended before the creates gave up"
elapsed=$(($(date +%s) - t0))
[ "$elapsed" -ge 8 ] || fail "gave up after ${elapsed}s, before retry_for"
check_until 20 1 --failed "$T/plan.$((SEED + 1))" || fail "phase 2: invariants violated"
check --failed "$T/plan.$((SEED + 1))" --show 40 > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "phase 2: show"; }
grep -q 'vtpm.create.error.*vtpmmgr_unavailable\|vtpmmgr_unavailable.*vtpm.create.error' "$T/status.jsonl" ||
    fail "no vtpm.create.error with error_code vtpmmgr_unavailable"
pass "phase 2 (retry_for 8s < 30 s outage): all failed cleanly after ${elapsed}s; $(grep -o 'instances=.*' "$T/check.out")"
fake_proxy_outage off
vtpmd_stop
pass "clean stop"
