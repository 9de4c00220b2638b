#!/bin/sh
# The Nova patch (contrib/openstack/nova/) targets stable/victoria, the last
# Nova whose libvirt driver drives Xen: it applies with git apply to Debian
# 11's Nova 22 (tests/openstack/nova-victoria.sh fetches it), and the
# client it adds, run from that patched tree, asks the real vtpmd for the
# stub domain's name: selected instance: vtpmd's vtpm_domain; unselected:
# none; vtpmd gone: VtpmdUnavailable, so the spawn fails rather than boot a
# guest without its vTPM.
#
# VTPMD_NOVA_GIT=DIR (a clone of Nova's git repository) also checks the
# patch against its tag victoria-eol.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/openstack/nova-victoria.sh"

set -- "$top_srcdir"/contrib/openstack/nova/*.patch
[ $# -eq 1 ] && [ -f "$1" ] || fail "expected one patch in contrib/openstack/nova: $*"
PATCH=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
command -v git > /dev/null || fail "git not found"

nova_victoria_tree
nova_victoria_copy "$T/nova22"
grep -q "'kvm', 'lxc', 'qemu', 'uml', 'xen', 'parallels'" "$T/nova22/nova/conf/libvirt.py" ||
    fail "Nova 22 lost virt_type xen?"
(cd "$T/nova22" && git apply --check -R "$PATCH") 2> /dev/null &&
    fail "the patch is already in Debian's tree"
(cd "$T/nova22" && git apply --check "$PATCH") > "$T/apply.log" 2>&1 ||
    fail "git apply --check to Nova $NOVA_VICTORIA_VERSION: $(cat "$T/apply.log")"
(cd "$T/nova22" && git apply "$PATCH") || fail "git apply"
grep -q "libvirt_vtpmd.get_vtpm_backend(instance.uuid)" "$T/nova22/nova/virt/libvirt/driver.py" ||
    fail "driver.py lacks the call site"
pass "the patch applies to Debian $NOVA_VICTORIA_SUITE's Nova $NOVA_VICTORIA_VERSION (stable/victoria)"

# contrib/openstack/examples/nova.conf with Nova's own options: Nova 22
# (patched) takes virt_type xen and the patch's options; Debian 12's Nova
# 26 refuses virt_type xen (the reason for victoria).
"$PYTHON" - "$T/nova22" "$top_srcdir/contrib/openstack/examples/nova.conf" <<'PY' || fail "Nova 22 and the nova.conf example"
import sys
import warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
import nova.conf
assert nova.conf.__file__.startswith(sys.argv[1]), nova.conf.__file__
conf = nova.conf.CONF
conf(["--config-file", sys.argv[2]], project="nova", default_config_files=[])
assert conf.libvirt.virt_type == "xen"
assert conf.libvirt.vtpmd_socket == "/run/vtpmd/control.sock", conf.libvirt.vtpmd_socket
assert conf.libvirt.vtpmd_timeout == 10
assert conf.notifications.notification_format == "both"
PY
"$PYTHON" - "$top_srcdir/contrib/openstack/examples/nova.conf" > "$T/nova26.log" 2>&1 <<'PY' && fail "Debian 12's Nova took virt_type xen: $(cat "$T/nova26.log")"
import sys
import warnings
warnings.filterwarnings("ignore")
import nova.conf
conf = nova.conf.CONF
conf(["--config-file", sys.argv[1]], project="nova", default_config_files=[])
print(nova.__file__ if False else "", conf.libvirt.virt_type)
PY
grep -q "ConfigFileValueError\|Valid values are" "$T/nova26.log" || fail "Nova 26: $(tail -n 3 "$T/nova26.log")"
pass "examples/nova.conf: Nova 22 takes it (virt_type xen, vtpmd_socket); Debian 12's Nova 26 refuses virt_type xen"

if [ -n "${VTPMD_NOVA_GIT:-}" ]; then
    mkdir "$T/upstream"
    git -C "$VTPMD_NOVA_GIT" archive victoria-eol nova releasenotes | tar -x -C "$T/upstream" ||
        fail "no victoria-eol in $VTPMD_NOVA_GIT"
    (cd "$T/upstream" && git apply --check "$PATCH") > "$T/apply-up.log" 2>&1 ||
        fail "git apply --check to victoria-eol: $(cat "$T/apply-up.log")"
    pass "the patch applies to upstream victoria-eol ($(git -C "$VTPMD_NOVA_GIT" rev-parse 'victoria-eol^{commit}'))"
fi

. "$top_srcdir/tests/lib/broker.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"
vtpmd_config "$T/vtpmd.yaml" "policy: {default: deny, rules: [{name: tpm, match: {flavor: 'tpm.*'}}]}"
vtpmd_start "$T/vtpmd.yaml"

NP="$top_srcdir/tests/openstack/nova_patch.py"
u1=$(new_uuid)
u2=$(new_uuid)
nova "create.start:$u1:flavor=tpm.small" "create.start:$u2:flavor=m1.small"
out=$("$PYTHON" "$NP" "$T/nova22" "$T/control.sock" "$u1") || fail "selected: $out"
want=$(ctl --json show "$u1" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["vtpm_domain"])')
[ "$out" = "$want" ] && [ "$out" = "vtpm-$u1" ] || fail "selected: backend $out, vtpmd's vtpm_domain $want"
queue_idle || fail "unacked"
out=$("$PYTHON" "$NP" "$T/nova22" "$T/control.sock" "$u2") || fail "unselected: $out"
[ "$out" = None ] || fail "unselected: backend $out"
out=$("$PYTHON" "$NP" "$T/nova22" "$T/control.sock" "$(echo "$u1" | tr a-f A-F)") || fail "upper case: $out"
[ "$out" = "vtpm-$u1" ] || fail "upper-case UUID: backend $out"
out=$("$PYTHON" "$NP" "$T/nova22" "$T/control.sock" "../../etc")
[ $? -eq 3 ] || fail "bad UUID accepted: $out"
pass "Nova 22's get_vtpm_backend against vtpmd: vtpmd's vtpm_domain, or None"

vtpmd_stop
out=$("$PYTHON" "$NP" "$T/nova22" "$T/control.sock" "$u1")
[ $? -eq 3 ] || fail "vtpmd gone: $out"
case $out in *VtpmdUnavailable*) ;; *) fail "vtpmd gone: $out" ;; esac
pass "vtpmd unreachable: VtpmdUnavailable (the spawn fails, Nova reschedules)"
