#!/bin/sh
# contrib/openstack's files are valid: the vtpmd.yaml example passes
# vtpmd -t; nova.conf parses with oslo.config and carries the options
# vtpmd needs; the DevStack plugin and the hook are valid shell; the
# systemd unit is well-formed (systemd-analyze when present).
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
PY
pass "examples/nova.conf has what vtpmd needs"

bash -n "$O/devstack/plugin.sh" || fail "plugin.sh syntax"
sh -n "$O/libvirt-hooks/libxl" || fail "hook syntax"
grep -q '^enable_service vtpmd' "$O/devstack/settings" || fail "settings"
pass "devstack plugin and hook parse"

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
