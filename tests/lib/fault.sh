# The fault tests' set-up and checks, over tests/tools/fault_burst.py.
# Source after tests/lib/common.sh, at the test's top level: it sources
# broker.sh, fake_proxy.sh and vtpmd.sh, starts the test's broker
# (broker_test_start) and sets VTPMD_HOST to the fixtures' host. When the
# test runs the fake proxy, the fake's live vTPM UUIDs are checked too.
# PLANS holds "--plan FILE" for every burst published so far.
. "$top_srcdir/tests/lib/broker.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"
VTPMD_HOST=compute1 # the fixtures' host

# fault_seed [WHAT]: SEED from FAULT_SEED, else the clock; printed, with
# WHAT, so that a failed run can be repeated.
fault_seed() {
    SEED=${FAULT_SEED:-$(date +%s)}
    echo "# seed $SEED (FAULT_SEED=$SEED repeats this run)${1:+, $1}"
}

# fault_proxy_vtpmd [YAML lines...]: the fake Keylime-VM proxy, the
# status listener, then vtpmd on the fake (api v1, retry_for 2m) with
# the YAML lines added to its config.
fault_proxy_vtpmd() {
    fake_proxy_start
    listener_start
    vtpmd_config "$T/vtpmd.yaml" \
        "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', api: v1, retry_for: 2m}" "$@"
    vtpmd_start "$T/vtpmd.yaml"
}

# check [fault_burst.py check options]: every instance of PLANS is as it
# should be (vtpmctl, the images, the fake proxy, the status listener).
check() {
    "$PYTHON" "$TOOLS/fault_burst.py" check $PLANS --vtpmctl "$VTPMCTL" --socket "$T/control.sock" \
        --images "$T/images" ${FAKE_PROXY_CTL:+--fake-ctl "$FAKE_PROXY_CTL"} \
        --status "$T/status.jsonl" "$@"
}

# check_until TRIES PAUSE [check options]: check, retried up to TRIES
# times PAUSE seconds apart (reconciliation after a restart and status
# confirms may still be finishing). Its output is in $T/check.out, and
# printed when it never passes.
check_until() {
    _tries=$1 _pause=$2
    shift 2
    _i=0
    while ! check "$@" > "$T/check.out" 2>&1; do
        _i=$((_i + 1))
        [ $_i -ge "$_tries" ] && { cat "$T/check.out"; return 1; }
        sleep "$_pause"
    done
}

# quiesce_check [QUEUE_S [TRIES [SHOW]]]: the queue empty and nothing
# unacked (within QUEUE_S, default 120), the checks (TRIES a second apart,
# default 30), then the same with `vtpmctl show` of SHOW instances
# (default 40).
quiesce_check() {
    queue_idle "${1:-120}" || { vtpmd_diag; return 1; }
    check_until "${2:-30}" 1 || { vtpmd_diag; return 1; }
    check --show "${3:-40}" > "$T/check.out" 2>&1 || { cat "$T/check.out"; return 1; }
}

# rnd SEED LO HI: a number in [LO, HI] from SEED, two decimals.
rnd() { "$PYTHON" -c "import random,sys; r=random.Random($1); print('%.2f' % r.uniform($2, $3))"; }

# commits: instances vtpmd has logged ready or deleted so far.
commits() { count_matches "$T/vtpmd.log" 'instance (ready|deleted) '; }

# wait_commits R0 K: until vtpmd has logged K commits more than R0 (at
# most 60 s).
wait_commits() {
    _i=0
    while [ $(($(commits) - $1)) -lt "$2" ] && [ $_i -lt 1200 ]; do
        sleep 0.05
        _i=$((_i + 1))
    done
}
