#!/bin/sh
# The libvirt hook (contrib/openstack/libvirt-hooks/libxl), run exactly as
# libvirt runs it (libxl DOMAIN prepare begin -, the domain XML on stdin,
# the environment scrubbed to what virCommandAddEnvPassCommon passes),
# against the real vtpmd, a real broker, Nova's own notifications and the
# fake Keylime-VM proxy (to make provisioning slow or fail). Guest XML comes
# from Nova's own libvirt config classes (nova.virt.libvirt.config), with
# victoria's metadata namespace (nova/1.0) and later ones' (nova/1.1).
# The hook is installed as an installation would: a copy whose
# VTPMD_HOOK_DEFAULTS line names this test's defaults file. Also vtpmctl
# wait's exit codes, which the hook relies on.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
command -v xmllint > /dev/null || fail "xmllint missing (libxml2-utils, a hook dependency)"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"

SRC_HOOK="$top_srcdir/contrib/openstack/libvirt-hooks/libxl"
HOOK="$T/hook/libxl"
DEFAULTS="$T/hook/vtpmd-hook"
mkdir -p "$T/hook"
grep -q '^VTPMD_HOOK_DEFAULTS=/etc/default/vtpmd-hook$' "$SRC_HOOK" ||
    fail "the hook's defaults line is not where installations rewrite it"
sed "s|^VTPMD_HOOK_DEFAULTS=.*|VTPMD_HOOK_DEFAULTS=$DEFAULTS|" "$SRC_HOOK" > "$HOOK"
chmod 755 "$HOOK"
# defaults LINES...: the hook's defaults file.
defaults() { printf '%s\n' "$@" > "$DEFAULTS"; }
SOCK_LINE="VTPMD_SOCKET=$T/control.sock"
CTL_LINE="VTPMCTL=$top_builddir/vtpmctl"

fake_proxy_start
vtpmd_config "$T/vtpmd.yaml" "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', timeout: 30s}"
vtpmd_start "$T/vtpmd.yaml"

# guest_xml UUID [NS [DISPLAY_NAME [BACKEND]]]: a guest's domain XML as
# Nova's libvirt driver writes it for Xen (its own config classes), with
# <vtpm backend='BACKEND'/> when BACKEND is given (vtpmd's Nova patch).
guest_xml() {
    "$PYTHON" - "$1" "${2:-http://openstack.org/xmlns/libvirt/nova/1.0}" "${3:-vm-1}" "${4:-}" <<'PY'
import sys
from lxml import etree
from nova.virt.libvirt import config as vconfig
uuid, ns, display, backend = sys.argv[1:5]
vconfig.NOVA_NS = ns  # victoria: nova/1.0; later: nova/1.1
g = vconfig.LibvirtConfigGuest()
g.virt_type = "xen"
g.name = "instance-0000002a"
g.uuid = uuid
g.memory = 524288
g.vcpus = 1
g.os_type = "linux"
meta = vconfig.LibvirtConfigGuestMetaNovaInstance()
meta.name = display
meta.package = "22.0.1"
meta.creationTime = 0
g.metadata.append(meta)
disk = vconfig.LibvirtConfigGuestDisk()
disk.source_type = "file"
disk.source_path = "/var/lib/nova/instances/%s/disk" % uuid
disk.target_dev = "xvda"
disk.target_bus = "xen"
g.add_device(disk)
root = etree.fromstring(g.to_xml())
if backend:
    etree.SubElement(root.find("devices"), "vtpm", backend=backend)
assert root.find("metadata")[0].tag == "{%s}instance" % ns
sys.stdout.write(etree.tostring(root, pretty_print=True).decode())
PY
}

# hook_xml FILE [OPERATION SUBOP] → $HOOK_RC; run with libvirt's scrubbed
# environment, plus a hostile VTPMD_* environment the hook must ignore.
hook_xml() {
    env -i PATH="$PATH" HOME="$T" LC_ALL=C \
        VTPMD_SOCKET="$T/nothing.sock" VTPMD_HOOK_TIMEOUT=abc VTPMD_HOOK_UNREACHABLE=allow \
        "$HOOK" instance-0000002a "${2:-prepare}" "${3:-begin}" - < "$1" \
        > "$T/hook.out" 2> "$T/hook.err"
    HOOK_RC=$?
}
# hook UUID [BACKEND [NS [DISPLAY_NAME]]]: a Nova guest of that instance.
hook() {
    guest_xml "$1" "${3:-}" "${4:-}" "${2:-}" > "$T/guest.xml" || fail "guest_xml"
    hook_xml "$T/guest.xml"
}

defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=120"

# --- a selected guest: the hook holds the start until the vTPM is ready.
# The Keylime VM's proxy is down, so provisioning stays under way (vtpmd
# retries) for as long as the test wants, whatever the machine's speed.
fake_proxy_outage on
u1=$(new_uuid)
nova "create.start:$u1"
i=0
until [ "$(json_field "$u1" state 2>/dev/null)" = provisioning ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(json_field "$u1" state)" = provisioning ] || fail "$u1 not provisioning"
( hook "$u1" "vtpm-$u1"; echo $HOOK_RC > "$T/hook.rc" ) &
HOOK_PID=$!
sleep 2
[ -f "$T/hook.rc" ] && fail "hook returned while the vTPM was provisioning: $(cat "$T/hook.rc") $(cat "$T/hook.err")"
[ "$(json_field "$u1" state)" = provisioning ] || fail "$u1 left provisioning during the outage"
fake_proxy_outage off
wait "$HOOK_PID"
[ "$(cat "$T/hook.rc")" = 0 ] || fail "selected guest: hook exit $(cat "$T/hook.rc") ($(cat "$T/hook.err"))"
[ "$(json_field "$u1" state)" = ready ] || fail "hook returned before the vTPM was ready"
grep -q "vTPM ready (vtpm-$u1)" "$T/hook.err" || fail "hook did not say why: $(cat "$T/hook.err")"
ctl wait "$u1" 5 > /dev/null
[ $? -eq 0 ] || fail "vtpmctl wait for a ready vTPM: want exit 0"
fake_proxy_reset
pass "selected guest: held while provisioning, started once ready"

# --- a ready vTPM, but the guest XML does not name its stub: refused.
hook "$u1"
[ $HOOK_RC -ne 0 ] || fail "guest without <vtpm> let through"
grep -q "does not carry <vtpm backend='vtpm-$u1'/>" "$T/hook.err" || fail "message: $(cat "$T/hook.err")"
hook "$u1" "vtpm-$(new_uuid)"
[ $HOOK_RC -ne 0 ] || fail "guest naming another stub domain let through"
hook "$u1" "vtpm-$u1" http://openstack.org/xmlns/libvirt/nova/1.1
[ $HOOK_RC -eq 0 ] || fail "nova/1.1 namespace: hook exit $HOOK_RC ($(cat "$T/hook.err"))"
pass "selected guest: its XML must carry <vtpm backend='STUB'/>"

# --- an unselected guest: let through at once, once vtpmd is caught up.
u2=$(new_uuid)
defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=30"
hook "$u2"
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
hook "$u3" "vtpm-$u3"
[ $HOOK_RC -ne 0 ] || fail "failed vTPM: hook let the guest start"
grep -q 'its vTPM failed' "$T/hook.err" || fail "failed vTPM: hook message $(cat "$T/hook.err")"
[ "$(json_field "$u3" state)" = failed ] || fail "$u3 not failed"
ctl wait "$u3" 5 > /dev/null 2>&1
[ $? -eq 1 ] || fail "vtpmctl wait for a failed vTPM: want exit 1"
# Failed is failed, whatever VTPMD_HOOK_UNREACHABLE says.
defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=30" "VTPMD_HOOK_UNREACHABLE=allow"
hook "$u3" "vtpm-$u3"
[ $HOOK_RC -ne 0 ] || fail "failed vTPM let through with VTPMD_HOOK_UNREACHABLE=allow"
fake_proxy_reset
pass "failed vTPM: start refused"

# --- a timeout: the start fails too.
fake_proxy_outage on
u4=$(new_uuid)
nova "create.start:$u4"
defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=1"
hook "$u4" "vtpm-$u4"
[ $HOOK_RC -ne 0 ] || fail "timeout: hook let the guest start"
grep -q 'timed out' "$T/hook.err" || fail "timeout: hook message $(cat "$T/hook.err")"
ctl wait "$u4" 1 > /dev/null 2> "$T/err"
[ $? -eq 3 ] || fail "vtpmctl wait timeout: want exit 3"
grep -q 'timed out' "$T/err" || fail "vtpmctl wait timeout message"
ctl --json wait "$u4" 0 2>/dev/null | grep -q '"result": "timeout"' || fail "--json timeout"
pass "timeout: start refused"

# --- a hostile display name: a Nova guest whose <nova:name> holds vtpmd's
# namespace URI (and what looks like its metadata) is still checked: it
# waits for its (provisioning) vTPM and is refused at the timeout.
hostile='http://vtpmd.org/xmlns/vtpmd/1.0 <vtpmd:vtpm xmlns:vtpmd="http://vtpmd.org/xmlns/vtpmd/1.0"/>'
hook "$u4" "vtpm-$u4" "" "$hostile"
grep -q 'vtpmd.org/xmlns/vtpmd/1.0' "$T/guest.xml" || fail "the display name did not reach the XML"
[ $HOOK_RC -ne 0 ] || fail "hostile display name: the guest skipped the check"
grep -q 'timed out' "$T/hook.err" || fail "hostile display name: hook message $(cat "$T/hook.err")"
fake_proxy_outage off
fake_proxy_reset
pass "hostile display name: checked like any Nova guest"

# --- other operations pass at once, without reading anything.
for op in "start begin" "started begin" "stopped end" "release end" "migrate begin"; do
    # shellcheck disable=SC2086
    env -i PATH="$PATH" "$HOOK" instance-0000002a $op - < /dev/null || fail "operation $op: non-zero"
done
pass "other operations"

# --- vtpmd unreachable: stub domains and non-Nova domains pass at once,
# Nova guests follow VTPMD_HOOK_UNREACHABLE (default refuse).
defaults "VTPMD_SOCKET=$T/nothing.sock" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=5"
printf '<domain type="xen"><name>vtpm-%s</name><uuid>%s</uuid><metadata><vtpmd:vtpm xmlns:vtpmd="http://vtpmd.org/xmlns/vtpmd/1.0"/></metadata></domain>\n' \
    "$u4" "$(new_uuid)" > "$T/stub.xml"
hook_xml "$T/stub.xml"
[ $HOOK_RC -eq 0 ] || fail "stub domain held: $(cat "$T/hook.err")"
cat > "$T/other.xml" <<XML
<domain type='xen'>
  <name>router</name>
  <uuid>$(new_uuid)</uuid>
  <description>not Nova's; mentions http://openstack.org/xmlns/libvirt/nova/1.0</description>
  <metadata><app:info xmlns:app="http://example.org/xmlns/app/1.0">x</app:info></metadata>
  <memory unit='KiB'>524288</memory>
</domain>
XML
hook_xml "$T/other.xml"
[ $HOOK_RC -eq 0 ] || fail "a non-Nova domain depends on vtpmd: $(cat "$T/hook.err")"
[ -s "$T/hook.err" ] && fail "a non-Nova domain asked vtpmd: $(cat "$T/hook.err")"
hook "$u2"
[ $HOOK_RC -ne 0 ] || fail "vtpmd unreachable: hook let a Nova guest start (default refuse)"
grep -q 'cannot be asked.*refusing' "$T/hook.err" || fail "unreachable message: $(cat "$T/hook.err")"
defaults "VTPMD_SOCKET=$T/nothing.sock" "$CTL_LINE" "VTPMD_HOOK_UNREACHABLE=allow"
hook "$u2"
[ $HOOK_RC -eq 0 ] || fail "VTPMD_HOOK_UNREACHABLE=allow: exit $HOOK_RC ($(cat "$T/hook.err"))"
grep -q 'starting it anyway' "$T/hook.err" || fail "allow message: $(cat "$T/hook.err")"
ctl -s "$T/nothing.sock" wait "$u2" 1 > /dev/null 2>&1
[ $? -eq 1 ] || fail "vtpmctl wait, vtpmd unreachable: want exit 1"
pass "vtpmd unreachable: stub and non-Nova domains pass, Nova guests refused (or allowed)"

# --- configuration only from the defaults file: VTPMD_SOCKET in the
# environment (hook_xml sets a wrong one, which libvirt would not even
# pass) changes nothing; without a socket line, vtpmctl's default.
defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=5"
guest_xml "$u1" "" "" "vtpm-$u1" > "$T/g1.xml"
env -i PATH="$PATH" VTPMD_SOCKET="$T/nothing.sock" "$HOOK" x prepare begin - < "$T/g1.xml" \
    2> "$T/hook.err" || fail "socket from the file ignored: $(cat "$T/hook.err")"
defaults "$CTL_LINE"
env -i PATH="$PATH" VTPMD_SOCKET="$T/control.sock" "$HOOK" x prepare begin - < "$T/g1.xml" \
    2> "$T/hook.err" && fail "VTPMD_SOCKET taken from the environment"
pass "configuration only from the defaults file"

# --- the default timeout: longer than vtpmd's own retry window with its
# defaults (create retried for vtpmmgr.retry_for, then the rollback as
# long, each request up to vtpmmgr.timeout), as vtpmd.yaml(5) gives them.
cat > "$T/hook/fake-vtpmctl" <<'SH'
#!/bin/sh
echo "$*" > "$(dirname "$0")/args"
exit 2
SH
chmod 755 "$T/hook/fake-vtpmctl"
defaults "VTPMCTL=$T/hook/fake-vtpmctl"
hook_xml "$T/g1.xml"
hook_timeout=$(awk '{ print $NF }' "$T/hook/args")
secs() { # a vtpmd duration (Ns, Nm, N) in seconds
    case $1 in *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac
}
man="$top_srcdir/docs/vtpmd.yaml.5"
retry_for=$(sed -n '/^\.B vtpmmgr\.retry_for$/{n;s/.*default \\fB\([0-9]*[sm]*\)\\fR.*/\1/p;}' "$man")
req_timeout=$(sed -n '/^\.B vtpmmgr\.timeout$/{n;s/.*default \\fB\([0-9]*[sm]*\)\\fR.*/\1/p;}' "$man")
[ -n "$retry_for" ] && [ -n "$req_timeout" ] || fail "defaults not found in $man"
window=$((2 * $(secs "$retry_for") + 2 * $(secs "$req_timeout")))
[ "$hook_timeout" -gt "$window" ] ||
    fail "default hook timeout ${hook_timeout}s is not longer than vtpmd's window ${window}s"
pass "default timeout ${hook_timeout}s > vtpmd's retry window ${window}s"

# --- bad input: refused.
defaults "$SOCK_LINE" "$CTL_LINE"
echo '<domain type="xen"><name>x</nam>' > "$T/bad.xml"
hook_xml "$T/bad.xml"
[ $HOOK_RC -ne 0 ] || fail "malformed XML let through"
cat > "$T/nouuid.xml" <<XML
<domain type='xen'><name>x</name><metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.0"/></metadata></domain>
XML
hook_xml "$T/nouuid.xml"
[ $HOOK_RC -ne 0 ] || fail "a Nova guest without a UUID was let through"
defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_TIMEOUT=abc"
hook "$u1" "vtpm-$u1"
[ $HOOK_RC -ne 0 ] || fail "bad VTPMD_HOOK_TIMEOUT accepted"
defaults "$SOCK_LINE" "$CTL_LINE" "VTPMD_HOOK_UNREACHABLE=maybe"
hook "$u1" "vtpm-$u1"
[ $HOOK_RC -ne 0 ] || fail "bad VTPMD_HOOK_UNREACHABLE accepted"
pass "bad input refused"

vtpmd_stop
