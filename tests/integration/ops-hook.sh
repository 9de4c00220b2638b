#!/bin/sh
# The libvirt hook (contrib/openstack/libvirt-hooks/libxl), run exactly as
# libvirt runs it (libxl DOMAIN prepare begin -, the domain XML on stdin),
# against the real vtpmd, a real broker, Nova's own notifications and the
# fake Keylime-VM proxy (to make provisioning slow or fail). Also vtpmctl
# wait's exit codes, which the hook relies on.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"

HOOK="$top_srcdir/contrib/openstack/libvirt-hooks/libxl"
export VTPMCTL="$top_builddir/vtpmctl"
export VTPMD_SOCKET="$T/control.sock"

fake_proxy_start
vtpmd_config "$T/vtpmd.yaml" "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', timeout: 30s}"
vtpmd_start "$T/vtpmd.yaml"

# A guest's domain XML as Nova's libvirt driver writes it for Xen.
guest_xml() {
    cat <<XML
<domain type='xen'>
  <name>instance-0000002a</name>
  <uuid>$1</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>vm-1</nova:name>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>524288</memory>
  <vcpu>1</vcpu>
  <sysinfo type='smbios'><system><entry name='uuid'>$1</entry></system></sysinfo>
  <os><type arch='x86_64' machine='xenpv'>linux</type></os>
  <devices><disk type='file' device='disk'><source file='/var/lib/nova/instances/$1/disk'/><target dev='xvda' bus='xen'/></disk></devices>
</domain>
XML
}

# hook UUID [OPERATION SUBOP] → $HOOK_RC
hook() {
    guest_xml "$1" | "$HOOK" instance-0000002a "${2:-prepare}" "${3:-begin}" - \
        > "$T/hook.out" 2> "$T/hook.err"
    HOOK_RC=$?
}

# --- a selected guest: the hook holds the start until the vTPM is ready.
# The Keylime VM's proxy is down, so provisioning stays under way (vtpmd
# retries) for as long as the test wants, whatever the machine's speed.
fake_proxy_outage on
u1=$(new_uuid)
nova "create.start:$u1"
i=0
until [ "$(json_field "$u1" state 2>/dev/null)" = provisioning ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(json_field "$u1" state)" = provisioning ] || fail "$u1 not provisioning"
( VTPMD_HOOK_TIMEOUT=120 hook "$u1"; echo $HOOK_RC > "$T/hook.rc" ) &
HOOK_PID=$!
sleep 2
[ -f "$T/hook.rc" ] && fail "hook returned while the vTPM was provisioning: $(cat "$T/hook.rc") $(cat "$T/hook.err")"
[ "$(json_field "$u1" state)" = provisioning ] || fail "$u1 left provisioning during the outage"
fake_proxy_outage off
wait "$HOOK_PID"
[ "$(cat "$T/hook.rc")" = 0 ] || fail "selected guest: hook exit $(cat "$T/hook.rc") ($(cat "$T/hook.err"))"
[ "$(json_field "$u1" state)" = ready ] || fail "hook returned before the vTPM was ready"
grep -q 'vTPM ready' "$T/hook.err" || fail "hook did not say why"
ctl wait "$u1" 5 > /dev/null
[ $? -eq 0 ] || fail "vtpmctl wait for a ready vTPM: want exit 0"
fake_proxy_reset
pass "selected guest: held while provisioning, started once ready"

# --- an unselected guest: let through at once, once vtpmd is caught up.
u2=$(new_uuid)
VTPMD_HOOK_TIMEOUT=30 hook "$u2"
[ $HOOK_RC -eq 0 ] || fail "unselected guest: hook exit $HOOK_RC ($(cat "$T/hook.err"))"
ctl wait "$u2" 5 > /dev/null 2> "$T/err"
[ $? -eq 2 ] || fail "vtpmctl wait, not selected: want exit 2"
grep -q 'not selected' "$T/err" || fail "vtpmctl wait, not selected: message $(cat "$T/err")"
ctl --json wait "$u2" 5 2>/dev/null | grep -q '"result": "not_selected"' || fail "--json not_selected"
pass "unselected guest: let through"

# --- a failed vTPM: the start fails (Nova reschedules).
fake_proxy_faults '{"fail_next": 1000, "fail_status": 400}'
u3=$(new_uuid)
nova "create.start:$u3"
VTPMD_HOOK_TIMEOUT=30 hook "$u3"
[ $HOOK_RC -ne 0 ] || fail "failed vTPM: hook let the guest start"
grep -q 'failed' "$T/hook.err" || fail "failed vTPM: hook message $(cat "$T/hook.err")"
[ "$(json_field "$u3" state)" = failed ] || fail "$u3 not failed"
ctl wait "$u3" 5 > /dev/null 2>&1
[ $? -eq 1 ] || fail "vtpmctl wait for a failed vTPM: want exit 1"
fake_proxy_reset
pass "failed vTPM: start refused"

# --- a timeout: the start fails too.
fake_proxy_outage on
u4=$(new_uuid)
nova "create.start:$u4"
VTPMD_HOOK_TIMEOUT=1 hook "$u4"
[ $HOOK_RC -ne 0 ] || fail "timeout: hook let the guest start"
grep -q 'timed out' "$T/hook.err" || fail "timeout: hook message $(cat "$T/hook.err")"
ctl wait "$u4" 1 > /dev/null 2> "$T/err"
[ $? -eq 3 ] || fail "vtpmctl wait timeout: want exit 3"
grep -q 'timed out' "$T/err" || fail "vtpmctl wait timeout message"
ctl --json wait "$u4" 0 2>/dev/null | grep -q '"result": "timeout"' || fail "--json timeout"
fake_proxy_outage off
fake_proxy_reset
pass "timeout: start refused"

# --- other operations pass at once, without reading anything.
for op in "start begin" "started begin" "stopped end" "release end" "migrate begin"; do
    # shellcheck disable=SC2086
    "$HOOK" instance-0000002a $op - < /dev/null || fail "operation $op: non-zero"
done
# vtpmd's own stub domains are never held.
printf '<domain type="xen"><name>vtpm-%s</name><uuid>%s</uuid><metadata><vtpmd:vtpm xmlns:vtpmd="http://vtpmd.org/xmlns/vtpmd/1.0"/></metadata></domain>\n' \
    "$u4" "$(new_uuid)" | VTPMD_HOOK_TIMEOUT=1 "$HOOK" "vtpm-$u4" prepare begin - ||
    fail "stub domain held"
# No UUID: refuse, it cannot be checked.
echo '<domain type="xen"><name>x</name></domain>' | "$HOOK" x prepare begin - 2>/dev/null &&
    fail "a domain without a UUID was let through"
VTPMD_HOOK_TIMEOUT=abc hook "$u1"
[ $HOOK_RC -ne 0 ] || fail "bad VTPMD_HOOK_TIMEOUT accepted"
pass "other operations, stub domains, bad input"

# --- vtpmd not running: refuse (a guest must not boot without its vTPM).
VTPMD_SOCKET="$T/nothing.sock" hook "$u2"
[ $HOOK_RC -ne 0 ] || fail "vtpmd unreachable: hook let the guest start"
ctl -s "$T/nothing.sock" wait "$u2" 1 > /dev/null 2>&1
[ $? -eq 1 ] || fail "vtpmctl wait, vtpmd unreachable: want exit 1"
pass "vtpmd unreachable: start refused"

vtpmd_stop
