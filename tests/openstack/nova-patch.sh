#!/bin/sh
# The Nova stable/wallaby patch (contrib/openstack/nova/): its config class
# with Debian's python3-nova objects, and its vtpmd client against the real
# vtpmd (selected instance: the stub domain's name; unselected: none;
# vtpmd gone: an error, so the spawn fails rather than boot a guest
# without its vTPM).
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"

NP="$top_srcdir/tests/openstack/nova_patch.py"
"$PYTHON" "$NP" config || fail "config class"
pass "LibvirtConfigGuestXenVTPM with python3-nova's config objects"

broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"
vtpmd_config "$T/vtpmd.yaml" "policy: {default: deny, rules: [{name: tpm, match: {flavor: 'tpm.*'}}]}"
vtpmd_start "$T/vtpmd.yaml"

u1=$(new_uuid)
u2=$(new_uuid)
nova "create.start:$u1:flavor=tpm.small" "create.start:$u2:flavor=m1.small"
out=$("$PYTHON" "$NP" backend "$T/control.sock" "$u1") || fail "selected: $out"
[ "$out" = "vtpm-$u1" ] || fail "selected: backend $out"
queue_idle || fail "unacked"
out=$("$PYTHON" "$NP" backend "$T/control.sock" "$u2") || fail "unselected: $out"
[ "$out" = None ] || fail "unselected: backend $out"
out=$("$PYTHON" "$NP" backend "$T/control.sock" "$(echo "$u1" | tr a-f A-F)") || fail "upper case: $out"
[ "$out" = "vtpm-$u1" ] || fail "upper-case UUID: backend $out"
out=$("$PYTHON" "$NP" backend "$T/control.sock" "../../etc")
[ $? -eq 3 ] || fail "bad UUID accepted: $out"
pass "vtpm_backend against vtpmd: selected, unselected"

vtpmd_stop
out=$("$PYTHON" "$NP" backend "$T/control.sock" "$u1")
[ $? -eq 3 ] || fail "vtpmd gone: $out"
case $out in *VtpmdUnavailable*) ;; *) fail "vtpmd gone: $out" ;; esac
pass "vtpmd unreachable: VtpmdUnavailable (the spawn fails, Nova reschedules)"
