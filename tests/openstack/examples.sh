#!/bin/sh
# contrib/openstack's files are valid: the vtpmd.yaml example passes
# vtpmd -t; nova.conf parses and carries the options vtpmd needs (with
# Nova 22's own options: nova-patch.sh); the hook is valid shell; no
# example asks for QEMU's vTPM (hw:tpm_version); the systemd unit is
# well-formed (systemd-analyze when present).
. "$(dirname "$0")/../lib/common.sh"
O="$top_srcdir/contrib/openstack"

cp "$O/examples/vtpmd.yaml" "$T/vtpmd.yaml"
chmod 0600 "$T/vtpmd.yaml"
"$VTPMD" -t -c "$T/vtpmd.yaml" > "$T/check.log" 2>&1 || fail "vtpmd.yaml example: $(cat "$T/check.log")"
pass "examples/vtpmd.yaml is valid"

"$PYTHON" - "$O/examples/nova.conf" <<'PY' || fail "nova.conf example"
import sys
import configparser
c = configparser.ConfigParser(interpolation=None)
c.read(sys.argv[1])
assert c["oslo_messaging_notifications"]["driver"] == "messagingv2"
assert c["notifications"]["notification_format"] == "both"
assert c["libvirt"]["virt_type"] == "xen"
assert c["libvirt"]["vtpmd_socket"] == "/run/vtpmd/control.sock"
PY
pass "examples/nova.conf has what vtpmd needs"

sh -n "$O/libvirt-hooks/libxl" || fail "hook syntax"
pass "the hook parses"

# No example asks for QEMU's emulated TPM: on Xen, hw:tpm_version or
# hw:tpm_model (flavors) and hw_tpm_* (images) make the scheduler demand
# COMPUTE_SECURITY_TPM_* traits that Xen hosts never report.
bad=$(grep -rn -E 'hw[:_]tpm_(version|model)' "$O/examples" "$top_srcdir/devstack" "$top_srcdir/conf" \
    "$top_srcdir/contrib/openstack/nova" 2> /dev/null |
    grep -v -E '^[^:]*:[0-9]+:[[:space:]]*#.*[Nn]ever|\+.*Do not set' || true)
[ -z "$bad" ] || fail "an example suggests QEMU's vTPM extra specs:
$bad"
grep -q 'Do not set `hw:tpm_version`' "$top_srcdir/docs/openstack.md" ||
    fail "docs/openstack.md does not warn against hw:tpm_version"
pass "no example flavor or image sets hw:tpm_version/hw:tpm_model (docs warn against it)"

# What an operator must know is in docs/openstack.md; nothing names
# wallaby as the target.
doc="$top_srcdir/docs/openstack.md"
for want in 'stable/victoria (Nova' 'Debian 11 (bullseye) | 2:22' 'Debian 12 (bookworm) | 2:26' \
    'vtpm-stubdom.gz' 'vtpmmgr-stubdom.gz' '`stubdom/`' 'TPM 1.2' 'apt-mark hold' \
    'socket.gethostname()' '## Instance moves' 'enable_plugin vtpmd' '## DevStack'; do
    grep -qF -- "$want" "$doc" || fail "docs/openstack.md lacks: $want"
done
bad=$(grep -rn -i 'stable/wallaby\|wallaby deployment\|wallaby DevStack' "$doc" "$top_srcdir/README.md" \
    "$O" "$top_srcdir/devstack" 2> /dev/null | grep -v '\.patch:' || true)
[ -z "$bad" ] || fail "wallaby named as the target:
$bad"
grep -q '^| `contrib/openstack/` |.*stable/victoria' "$top_srcdir/README.md" || fail "README's contrib/openstack row"
pass "docs/openstack.md: victoria, the stub-domain images, TPM 1.2, apt-mark hold, the host name, moves"

unit="$top_builddir/contrib/systemd/vtpmd.service"
[ -f "$unit" ] || fail "unit not built"
grep -q '^Type=notify$' "$unit" || fail "unit Type"
grep -q "^ExecStart=/.*/vtpmd -c /" "$unit" || fail "unit ExecStart: $(grep ExecStart "$unit")"
grep -q '@[a-z]*@' "$unit" && fail "unit has unsubstituted @vars@"
if command -v systemd-analyze > /dev/null 2>&1; then
    # Verify against a copy whose binaries exist (the built ones).
    sed "s|^ExecStartPre=.*|ExecStartPre=$VTPMD -t -c /dev/null|; s|^ExecStart=.*|ExecStart=$VTPMD -c /dev/null|" \
        "$unit" > "$T/vtpmd.service"
    systemd-analyze verify "$T/vtpmd.service" > "$T/verify.log" 2>&1 || true
    grep -E 'Unknown (key|section)|Invalid|Failed to parse' "$T/verify.log" &&
        fail "systemd-analyze: $(cat "$T/verify.log")"
    pass "systemd unit verified"
else
    pass "systemd unit well-formed (systemd-analyze not installed)"
fi
