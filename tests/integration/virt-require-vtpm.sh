#!/bin/sh
# No silent loss of the vTPM. libvirt's test:///default drops <vtpm>
# exactly as a libvirt without vtpmd's series does (and its schema refuses
# the element under VIR_DOMAIN_DEFINE_VALIDATE). With libvirt.require_vtpm
# true (the default) the real vtpmd must say so in health at start-up and
# end every create in vtpm.create.error, code vtpm_device_dropped, never
# ready, with nothing left behind: no domain, no image, the vTPM UUID
# released at the (fake) Keylime-VM proxy; the libvirt hook then refuses
# the guest's start. With require_vtpm false (demo and test
# configurations) the create works, and vtpmd warns at start.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
fake_proxy_start
listener_start

vtpmd_config "$T/vtpmd.yaml" "vtpmmgr: {provider: keylime-proxy, url: '$FAKE_PROXY_URL', timeout: 5s}"
sed -i 's/require_vtpm: false/require_vtpm: true/' "$T/vtpmd.yaml"
grep -q 'require_vtpm: true' "$T/vtpmd.yaml" || fail "config writer changed: $(cat "$T/vtpmd.yaml")"
vtpmd_start "$T/vtpmd.yaml"

health_field() { ctl --json health | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin).get('$1'))"; }

# --- start-up: the probe finds that libvirt lacks the device.
i=0
until [ "$(health_field libvirt_vtpm)" = missing ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(health_field libvirt_vtpm)" = missing ] || fail "health: libvirt_vtpm=$(health_field libvirt_vtpm), want missing"
[ "$(health_field status)" = degraded ] || fail "health status $(health_field status), want degraded"
health_field libvirt_vtpm_error | grep -q 'schema refuses <vtpm>' ||
    fail "health does not say why: $(health_field libvirt_vtpm_error)"
ctl health > /dev/null 2>&1 && fail "vtpmctl health exits 0 while libvirt lacks <vtpm>"
grep -q 'libvirt lacks the <vtpm> device' "$T/vtpmd.log" || fail "no error logged at start-up"
grep -q 'require_vtpm is false' "$T/vtpmd.log" && fail "warned about require_vtpm false while it is true"
# The probe domain is gone again.
ctl --json domains | grep -q 'vtpmd-vtpm-probe' && fail "probe domain left behind"
pass "start-up check: health degraded, libvirt_vtpm missing, logged"

# --- a create: vtpm.create.error, code vtpm_device_dropped, never ready.
u=$(new_uuid)
nova "create.start:$u"
wait_status vtpm.create.error "$u" 1 60 || fail "no vtpm.create.error for $u"
[ "$(status_count vtpm.create.end "$u")" = 0 ] || fail "vtpm.create.end published for $u"
grep "\"event_type\": \"vtpm.create.error\".*\"instance_uuid\": \"$u\"" "$T/status.jsonl" |
    grep -q '"code": "vtpm_device_dropped"' ||
    fail "create.error without code vtpm_device_dropped: $(grep "$u" "$T/status.jsonl")"
[ "$(json_field "$u" state)" = failed ] || fail "$u state $(json_field "$u" state), want failed"
ctl --json show "$u" | grep -q '"code": "vtpm_device_dropped"' || fail "show lacks the code"
ctl wait "$u" 5 > /dev/null 2>&1
[ $? -eq 1 ] || fail "vtpmctl wait: want exit 1 (failed)"
pass "create: vtpm.create.error code vtpm_device_dropped, state failed"

# --- nothing left behind.
ctl --json domains > "$T/domains.json" || fail "vtpmctl domains"
grep -q "$u" "$T/domains.json" && fail "stub domain of $u left in libvirt: $(cat "$T/domains.json")"
ls -A "$T/images" | grep -q "$u" && fail "image of $u left: $(ls -A "$T/images")"
[ "$(fake_proxy_state counters.created)" = 1 ] || fail "no vTPM acquired: $(fake_proxy_state counters)"
[ "$(fake_proxy_state counters.released)" = 1 ] || fail "vTPM not released: $(fake_proxy_state counters)"
[ "$(fake_proxy_state live)" = 0 ] || fail "vTPM UUID not released: live=$(fake_proxy_state live)"
pass "rolled back: no domain, no image, UUID released"

# --- the libvirt hook refuses the guest's start.
HOOKDIR=$T/hook
mkdir -p "$HOOKDIR"
sed "s|^VTPMD_HOOK_DEFAULTS=.*|VTPMD_HOOK_DEFAULTS=$HOOKDIR/vtpmd-hook|" \
    "$top_srcdir/contrib/openstack/libvirt-hooks/libxl" > "$HOOKDIR/libxl"
chmod 755 "$HOOKDIR/libxl"
printf 'VTPMD_SOCKET=%s\nVTPMCTL=%s\nVTPMD_HOOK_TIMEOUT=10\n' "$T/control.sock" "$VTPMCTL" \
    > "$HOOKDIR/vtpmd-hook"
cat > "$T/guest.xml" <<XML
<domain type='xen'>
  <name>instance-00000001</name>
  <uuid>$u</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.0">
      <nova:name>vm</nova:name>
    </nova:instance>
  </metadata>
  <devices><vtpm backend='vtpm-$u'/></devices>
</domain>
XML
env -i PATH="$PATH" "$HOOKDIR/libxl" instance-00000001 prepare begin - < "$T/guest.xml" \
    2> "$T/hook.err" && fail "hook let a guest start whose vTPM failed"
grep -q 'failed' "$T/hook.err" || fail "hook message: $(cat "$T/hook.err")"
pass "hook refuses the guest's start"

vtpmd_stop

# --- require_vtpm false: works (the device is not there), with a warning.
sed -i 's/require_vtpm: true/require_vtpm: false/' "$T/vtpmd.yaml"
vtpmd_start "$T/vtpmd.yaml"
grep -q 'libvirt.require_vtpm is false' "$T/vtpmd.log" || fail "no warning for require_vtpm false"
i=0
until [ "$(health_field libvirt_vtpm)" = missing ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(health_field libvirt_vtpm)" = missing ] || fail "health: libvirt_vtpm=$(health_field libvirt_vtpm)"
[ "$(health_field status)" = ok ] || fail "health $(health_field status) with require_vtpm false"
w=$(new_uuid)
nova "create.start:$w"
ctl wait "$w" 30 > /dev/null || fail "$w not ready with require_vtpm false"
wait_status vtpm.create.end "$w" || fail "no vtpm.create.end for $w"
pass "require_vtpm false: ready, warned at start"

vtpmd_stop
