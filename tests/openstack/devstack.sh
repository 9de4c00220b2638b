#!/bin/sh
# vtpmd's DevStack plugin is where DevStack looks for it (devstack/plugin.sh
# and devstack/settings at the repository's top: enable_plugin vtpmd URL
# REF) and does its job through DevStack stable/victoria's phases
# (tests/openstack/devstack-phases.bash runs them, with the system-changing
# calls stubbed):
#   - pre-install installs the build dependencies and xmllint (the hook's);
#   - install builds and installs vtpmd and patches Nova (Debian 11's Nova
#     22 from nova-victoria.sh, standing in for $NOVA_DIR at victoria-eol;
#     again: "already applied"); a Nova without libvirt Xen stops stack.sh;
#   - post-config edits $NOVA_CONF, so that nova-cpu.conf has the
#     options after start_nova_compute copied nova.conf over it;
#   - extra writes vtpmd.yaml with Nova's effective host (nova-compute's
#     [DEFAULT] host, else socket.gethostname() as Nova's default) and the
#     broker of Nova's notifications; vtpmd -t accepts it; vtpmd runs as
#     DevStack's unit devstack@vtpmd (run_process);
#   - unstack stops it, clean removes the hook.
# With DEVSTACK_DIR=/path/to/devstack (at victoria-eol) DevStack's own
# functions are used; otherwise a fake of them (devstack-fake-functions.bash),
# as DevStack is not packaged by Debian. The output says which.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/openstack/nova-victoria.sh"

command -v bash > /dev/null || fail "bash not found"
D="$top_srcdir/devstack"
[ -f "$D/plugin.sh" ] && [ -f "$D/settings" ] || fail "no devstack/plugin.sh and devstack/settings at the top"
grep -q '^define_plugin vtpmd$' "$D/settings" || fail "settings: define_plugin vtpmd"
grep -q '^enable_service vtpmd$' "$D/settings" || fail "settings: enable_service vtpmd"
bash -n "$D/plugin.sh" || fail "plugin.sh syntax"
for f in "$top_srcdir"/contrib/openstack/devstack/*; do
    [ -e "$f" ] || continue
    case $f in */README*) ;; *) fail "a second plugin in contrib/openstack/devstack: $f" ;; esac
done
pass "devstack/plugin.sh and devstack/settings at the top (enable_plugin vtpmd URL REF)"

# Nova victoria for the install phase; without it (not in CI) the test
# runs the rest with VTPMD_PATCH_NOVA=False.
tree=$( (nova_victoria_tree > "$T/tree.log" 2>&1 && echo "$NOVA_VICTORIA") ) || true
if [ -n "$tree" ]; then
    tree="$tree/nova"
else
    [ "${CI:-}" = true ] && fail "CI: no Nova victoria tree: $(cat "$T/tree.log")"
    echo "# no Nova victoria tree ($(tail -n 1 "$T/tree.log")): the patch step is not run"
fi

src=$(cd "$top_srcdir" && pwd)
vtpmd_bin=$(cd "$(dirname "$VTPMD")" && pwd)/$(basename "$VTPMD")
run_phases() {
    _w=$1
    shift
    mkdir -p "$_w"
    env VTPMD_TEST_SRC="$src" VTPMD_TEST_VTPMD="$vtpmd_bin" "$@" \
        bash "$top_srcdir/tests/openstack/devstack-phases.bash" "$_w" > "$_w/out.log" 2>&1
}

# 1. A stack with Nova's default host.
W=$T/w1
if [ -n "$tree" ]; then
    run_phases "$W" NOVA_TEST_TREE="$(dirname "$tree")" || fail "phases: $(tail -n 30 "$W/out.log")"
else
    run_phases "$W" VTPMD_PATCH_NOVA=False || fail "phases: $(tail -n 30 "$W/out.log")"
fi
head -n 1 "$W/out.log"
grep -q '^# done$' "$W/out.log" || fail "phases did not finish: $(tail -n 20 "$W/out.log")"
calls=$W/calls

grep -q '^install_package .*libxml2-utils' "$calls" || fail "pre-install: no install_package: $(cat "$calls")"
grep -q "^configure --prefix=$W/prefix " "$calls" || fail "install: configure"
grep -q '^make -j' "$calls" || fail "install: make"
grep -q '^sudo make install' "$calls" || fail "install: make install"
pass "pre-install and install: dependencies, build, make install"

if [ -n "$tree" ]; then
    grep -q "vtpmd_socket" "$W/opt/nova/nova/conf/libvirt.py" || fail "install: Nova not patched"
    [ -f "$W/opt/nova/nova/virt/libvirt/vtpmd.py" ] || fail "install: no vtpmd.py in Nova"
    # A second stack.sh: the patch is there already.
    W2=$T/w1b
    mkdir -p "$W2"
    run_phases "$W2" NOVA_TEST_TREE="$W/opt/nova" PHASES=install ||
        fail "second install: $(tail -n 20 "$W2/out.log")"
    grep -q "is already applied" "$W2/out.log" || fail "second install: $(tail -n 20 "$W2/out.log")"
    pass "install: the Nova patch applied to Nova victoria (and found applied on a second run)"
fi
W3=$T/w1c
run_phases "$W3" PHASES=install && fail "a Nova without libvirt Xen was patched"
grep -q "no libvirt Xen support; use Nova stable/victoria" "$W3/out.log" ||
    fail "no clear error for a Nova without Xen: $(tail -n 10 "$W3/out.log")"
pass "install: a Nova without libvirt Xen (wallaby and later) stops stack.sh with a clear error"

cpu=$W/etc/nova/nova-cpu.conf
ini() { "$PYTHON" - "$@" <<'PY'
import configparser, sys
c = configparser.ConfigParser(interpolation=None, strict=False)
c.read(sys.argv[1])
print(c.get(sys.argv[2], sys.argv[3], fallback=""))
PY
}
[ "$(ini "$cpu" oslo_messaging_notifications driver)" = messagingv2 ] || fail "nova-cpu.conf: driver"
[ "$(ini "$cpu" notifications notification_format)" = both ] || fail "nova-cpu.conf: notification_format"
if [ -n "$tree" ]; then
    [ "$(ini "$cpu" libvirt vtpmd_socket)" = /run/vtpmd/control.sock ] || fail "nova-cpu.conf: vtpmd_socket"
fi
[ -z "$(ini "$cpu" libvirt stale_option_written_at_post_config)" ] || fail "test: start_nova_compute's copy missing"
grep -q "^sudo usermod -a -G vtpmd stack" "$calls" || fail "post-config: stack not in group vtpmd"
grep -q "^sudo groupadd --system vtpmd" "$calls" || fail "post-config: groupadd"
pass "post-config: Nova's options in nova.conf reach nova-cpu.conf through start_nova_compute's copy"

hook=$W/stacked-etc/libvirt/hooks/libxl
sed "s|^VTPMD_HOOK_DEFAULTS=.*|VTPMD_HOOK_DEFAULTS=$W/etc/default/vtpmd-hook|" \
    "$top_srcdir/contrib/openstack/libvirt-hooks/libxl" > "$T/hook.expected"
[ -x "$hook" ] && cmp -s "$hook" "$T/hook.expected" || fail "hook not installed"
if grep -q '^VTPMD_HOOK_DEFAULTS=' "$hook"; then
    # The hook reads the defaults file the plugin wrote.
    grep -qx "VTPMD_HOOK_DEFAULTS=$W/etc/default/vtpmd-hook" "$hook" || fail "hook's defaults file"
fi
grep -qx "VTPMD_SOCKET=/run/vtpmd/control.sock" "$W/stacked-etc/default/vtpmd-hook" ||
    fail "hook defaults: $(cat "$W/stacked-etc/default/vtpmd-hook")"
grep -qx "VTPMCTL=$W/prefix/bin/vtpmctl" "$W/stacked-etc/default/vtpmd-hook" || fail "hook defaults: VTPMCTL"
grep -q '^restart_service libvirtd' "$calls" || fail "libvirtd not restarted after the hook"
pass "post-config: the hook and /etc/default/vtpmd-hook, libvirtd restarted"

y=$W/etc/vtpmd/vtpmd.yaml
[ -f "$y" ] || fail "no vtpmd.yaml"
yq() { "$PYTHON" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d if not isinstance(d, list) else " ".join(d))' "$@"; }
want=$("$PYTHON" -c 'import socket; print(socket.gethostname())')
[ "$(yq "$y" host)" = "$want" ] || fail "vtpmd.yaml host $(yq "$y" host), Nova's default $want"
[ "$(yq "$y" amqp.urls)" = "amqp://stackrabbit:secret@10.0.0.5:5672/" ] ||
    fail "amqp.urls: $(yq "$y" amqp.urls)"
[ "$(yq "$y" control.socket)" = /run/vtpmd/control.sock ] || fail "control.socket"
pass "extra: vtpmd.yaml host = socket.gethostname() ($want), the notifications' broker"

unit=$W/stacked-systemd/devstack@vtpmd.service
[ -f "$unit" ] || fail "no devstack@vtpmd unit: $(ls "$W/stacked-systemd")"
grep -qx "ExecStart *= *$W/prefix/sbin/vtpmd -c $y" "$unit" || fail "unit ExecStart: $(cat "$unit")"
grep -qx "User *= *root" "$unit" || fail "unit User"
grep -qx "Group *= *vtpmd" "$unit" || fail "unit Group"
grep -qx "RuntimeDirectory=vtpmd" "$W/stacked-systemd/devstack@vtpmd.service.d/vtpmd.conf" || fail "drop-in"
grep -q "^systemctl enable devstack@vtpmd.service" "$calls" || fail "not enabled"
grep -q "^systemctl start devstack@vtpmd.service" "$calls" || fail "not started"
[ "$(grep -n 'start_nova_compute' "$calls" | cut -d: -f1)" -lt "$(grep -n 'systemctl start devstack@vtpmd' "$calls" | cut -d: -f1)" ] ||
    fail "vtpmd.yaml written before nova-compute's configuration is final"
pass "extra: vtpmd runs as devstack@vtpmd.service (run_process: root, group vtpmd)"

grep -q "^systemctl stop devstack@vtpmd.service" "$calls" || fail "unstack: not stopped"
[ -e "$W/etc/libvirt/hooks/libxl" ] && fail "clean: hook left"
[ -e "$W/etc/default/vtpmd-hook" ] && fail "clean: hook defaults left"
[ -e "$W/systemd/devstack@vtpmd.service.d" ] && fail "clean: drop-in left"
pass "unstack stops devstack@vtpmd, clean removes the hook"

# 2. Nova's host set: vtpmd takes it, whatever the machine's name.
W=$T/w2
run_phases "$W" VTPMD_PATCH_NOVA=False NOVA_TEST_HOST=compute-07.example.org PHASES="post-config extra" \
    NOVA_TEST_NOTIFY_URL="rabbit://nova:pw@rabbit-1:5671,nova:pw@rabbit-2:5671/os?ssl=1" ||
    fail "phases with host: $(tail -n 30 "$W/out.log")"
[ "$(yq "$W/etc/vtpmd/vtpmd.yaml" host)" = compute-07.example.org ] ||
    fail "vtpmd.yaml host $(yq "$W/etc/vtpmd/vtpmd.yaml" host), nova-compute's compute-07.example.org"
[ "$(yq "$W/etc/vtpmd/vtpmd.yaml" amqp.urls)" = "amqps://nova:pw@rabbit-1:5671/os amqps://nova:pw@rabbit-2:5671/os" ] ||
    fail "amqp.urls from two brokers with TLS: $(yq "$W/etc/vtpmd/vtpmd.yaml" amqp.urls)"
pass "extra: vtpmd.yaml host = nova-compute's [DEFAULT] host; two TLS brokers"
