#!/bin/sh
# The certificate tool as libvirt really runs it: a private libvirtd with
# Debian's QEMU driver (TCG: no /dev/kvm needed) starts a guest whose XML
# and vTPM secret Nova 26's own classes write for a flavor with
# hw:tpm_version=2.0 (tests/tools/nova_guest_xml.py). libvirt runs
# swtpm_setup, which calls vtpm-certtool through swtpm_setup.conf's
# create_certs_tool; the EK and platform certificates land in the vTPM's
# NV indexes (read back from the encrypted swtpm state with tpm2-tools),
# chain to the site CA with `openssl verify` and name the instance; a
# revoked one fails verification against the CRL. A CA key with loose
# modes makes the start fail with the tool's message, nothing half-made.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/kvm.sh"
. "$top_srcdir/tests/lib/libvirtd.sh"
kvm_require
libvirtd_require qemu

CA=$T/ca
kvm_make_ca "$CA"
libvirtd_start "$T"
# libvirt's swtpm_setup (run as the session's user) reads the user's
# swtpm_setup.conf; the tool runs as that user, so the CA is its own.
# The tool is copied next to the CA: the build tree may sit where that
# user cannot reach (a clone in /root).
mkdir -p "$T/bin"
cp "$VTPM_CERTTOOL" "$T/bin/vtpm-certtool"
VTPM_CERTTOOL=$T/bin/vtpm-certtool
kvm_setup_conf "$LVD_HOME/config/swtpm_setup.conf" "$VTPM_CERTTOOL" "$CA/ca.conf" "$CA/opts"
chown -R "$LVD_USER" "$CA" "$LVD_HOME/config/swtpm_setup.conf"

# new_guest N UUID: Nova's XML and secret for instance-0000000N, defined.
new_guest() {
    _g=$T/g$1
    _secret=$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$_g"
    "$PYTHON" "$top_srcdir/tests/tools/nova_guest_xml.py" "$2" "instance-0000000$1" \
        "$_secret" "$_g" || fail "Nova's classes did not write the guest XML"
    grep -q "<tpm model=\"tpm-crb\">" "$_g/guest.xml" || fail "Nova's XML has no tpm-crb"
    grep -q "<encryption secret=\"$_secret\"/>" "$_g/guest.xml" || fail "no encrypted vTPM"
    head -c 32 /dev/urandom | base64 | tr -d '\n' > "$_g/passphrase"
    lvd_virsh secret-define "$_g/secret.xml" >/dev/null || fail "secret-define"
    lvd_virsh secret-set-value "$_secret" --file "$_g/passphrase" --plain >/dev/null ||
        fail "secret-set-value"
    lvd_virsh define "$_g/guest.xml" >/dev/null || fail "define instance-0000000$1"
}

SWTPM_DIR=$LVD_HOME/config/libvirt/qemu/swtpm
SWTPM_LOG_DIR=$LVD_HOME/cache/libvirt/qemu/log

# 1. A selected instance starts: libvirt ran swtpm_setup, which asked the
# tool for three certificates with the instance's vmid.
U1=5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5
new_guest 1 "$U1"
lvd_virsh start instance-00000001 > "$T/start1.out" 2>&1 ||
    fail "start: $(cat "$T/start1.out"; tail -n 20 "$SWTPM_LOG_DIR/instance-00000001-swtpm.log")"
[ "$(lvd_virsh domstate instance-00000001)" = running ] || fail "guest not running"
L1=$SWTPM_LOG_DIR/instance-00000001-swtpm.log
[ "$(count_matches "$L1" "Invoking $VTPM_CERTTOOL .*--vmid instance-00000001:$U1 ")" -eq 3 ] ||
    fail "swtpm_setup did not call the tool three times with the vmid (see $L1)"
[ "$(count_matches "$L1" "^vtpm-certtool: issued (ek|platform) certificate instance=$U1 ")" -eq 3 ] ||
    fail "the tool did not issue three certificates (see $L1)"
pass "libvirtd + QEMU (TCG) started Nova's guest; swtpm_setup called vtpm-certtool 3x with vmid instance-00000001:$U1"

# 2. The certificates are in the vTPM's NV indexes (the state is
# encrypted with the instance's secret, as Nova asks) and chain to the
# site CA, naming the instance and the host.
lvd_virsh destroy instance-00000001 >/dev/null || fail "destroy"
cp -r "$SWTPM_DIR/$U1/tpm2" "$T/state1"
mkdir -p "$T/nv1"
KVM_SWTPM_KEY=$T/g1/passphrase
kvm_nvread "$T/state1" "$T/nv1" 0x01c00002 0x01c08000 0x01c00016
KVM_SWTPM_KEY=
for idx in 0x01c00002 0x01c00016; do
    openssl x509 -inform der -in "$T/nv1/$idx.der" -out "$T/nv1/$idx.pem" ||
        fail "NV $idx holds no X.509 certificate"
    openssl verify -CAfile "$CA/root.pem" -untrusted "$CA/int.pem" "$T/nv1/$idx.pem" \
        > "$T/verify.out" 2>&1 || fail "NV $idx: openssl verify: $(cat "$T/verify.out")"
    openssl x509 -in "$T/nv1/$idx.pem" -noout -text > "$T/nv1/$idx.txt"
    grep -q "Subject: CN = $U1\$" "$T/nv1/$idx.txt" || fail "NV $idx: subject is not CN=$U1"
    grep -A1 '2.25.60221483079735374994570854713342573898.1:' "$T/nv1/$idx.txt" |
        grep -q 'compute-1.example.org' || fail "NV $idx: no host extension"
done
[ -s "$T/nv1/0x01c08000.der" ] || fail "no platform certificate in NV 0x01c08000"
pass "EK certificates (RSA, ECC) in NV 0x01c00002/0x01c00016 verify against the site CA, CN=$U1, host extension"

# 3. Revoked on delete: the CRL the same key signs says so (the tool runs
# as the key's owner).
$LVD_AS "$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --revoke-instance "$U1" > "$T/rev.log" 2>&1 ||
    fail "revoke-instance: $(cat "$T/rev.log")"
$LVD_AS "$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --gencrl "$CA/site.crl" --crl-next-update 3600 \
    >> "$T/rev.log" 2>&1 || fail "gencrl: $(cat "$T/rev.log")"
openssl crl -inform der -in "$CA/site.crl" -out "$T/site.crl.pem" || fail "CRL not DER"
openssl verify -crl_check -CRLfile "$T/site.crl.pem" -CAfile "$CA/root.pem" -untrusted "$CA/int.pem" \
    "$T/nv1/0x01c00002.pem" > "$T/v.out" 2>&1 && fail "revoked EK certificate still verifies"
grep -q 'certificate revoked' "$T/v.out" || fail "openssl verify: $(cat "$T/v.out")"
pass "revoked instance's EK certificate fails verification against the CRL"

# 4. A CA key readable by others: the tool refuses, swtpm_setup fails, so
# libvirt fails the start (Nova reschedules); no vTPM state is left.
U2=6a1b2c3d-4e5f-4a6b-9c7d-8e9fa0b1c2d3
new_guest 2 "$U2"
chmod 644 "$CA/int.key"
lvd_virsh start instance-00000002 > "$T/start2.out" 2>&1 && fail "started with a world-readable CA key"
chmod 600 "$CA/int.key"
grep -q "Could not run '/usr/bin/swtpm_setup'" "$T/start2.out" ||
    fail "libvirt's error does not name swtpm_setup: $(cat "$T/start2.out")"
grep -q "vtpm-certtool: .*int.key" "$SWTPM_LOG_DIR/instance-00000002-swtpm.log" ||
    fail "the tool's message does not name the key (see $SWTPM_LOG_DIR/instance-00000002-swtpm.log)"
[ ! -e "$SWTPM_DIR/$U2" ] || fail "vTPM state left behind for the refused instance"
[ "$(lvd_virsh domstate instance-00000002)" = "shut off" ] || fail "refused guest not shut off"
pass "a loose CA key fails the start with the tool's message; nothing half-made"

# 5. With the key fixed the same instance starts.
lvd_virsh start instance-00000002 > "$T/start3.out" 2>&1 || fail "restart: $(cat "$T/start3.out")"
pass "the refused instance starts once the key is fixed"
