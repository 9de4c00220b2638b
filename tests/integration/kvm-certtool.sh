#!/bin/sh
# vtpm-certtool under the real swtpm_setup (swtpm 0.7), as libvirt runs it:
# the EK and platform certificates land in the vTPM's NV indexes, read back
# through a real swtpm with tpm2-tools, verify against the site CA with
# `openssl verify`, name the instance and carry the TCG profile; a PEM key
# with loose modes, a vmid without an instance UUID and a CA whose HSM is
# gone fail swtpm_setup with a clear message; revocation shows in the CRL.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/kvm.sh"
kvm_require

UUID=9b1d6e1c-3f4a-4f5e-8a2b-1c2d3e4f5a6b
CA=$T/ca
kvm_make_ca "$CA"
kvm_setup_conf "$T/setup.conf" "$VTPM_CERTTOOL" "$CA/ca.conf" "$CA/opts"

# verify_cert DER NAME: chains to the site root through the host's
# intermediate, names the instance.
verify_cert() {
    openssl x509 -inform der -in "$1" -out "$1.pem" || fail "$2: not DER X.509"
    openssl verify -CAfile "$CA/root.pem" -untrusted "$CA/int.pem" "$1.pem" \
        > "$T/verify.out" 2>&1 || fail "$2: openssl verify: $(cat "$T/verify.out")"
    openssl x509 -in "$1.pem" -noout -text > "$1.txt"
    grep -q "Subject: CN = $UUID\$" "$1.txt" || fail "$2: subject is not CN=$UUID"
    grep -q "Issuer: CN = compute-1 vTPM CA" "$1.txt" || fail "$2: issuer"
    grep -A1 '2.25.60221483079735374994570854713342573898.1:' "$1.txt" |
        grep -q 'compute-1.example.org' || fail "$2: no host extension"
}

# 1. RSA EK, platform and ECC EK certificates, as libvirt asks for them.
kvm_swtpm_setup "$T/tpm1" "instance-00000001:$UUID" "$T/setup.conf" "$T/setup1.log" --ecc ||
    fail "swtpm_setup with vtpm-certtool failed"
[ "$(grep -c 'vtpm-certtool: issued' "$T/setup1.log")" -eq 3 ] ||
    fail "want 3 certificates issued"
mkdir "$T/nv1"
kvm_nvread "$T/tpm1" "$T/nv1" 0x01c00002 0x01c08000 0x01c00016
verify_cert "$T/nv1/0x01c00002.der" "RSA EK certificate"
verify_cert "$T/nv1/0x01c08000.der" "platform certificate"
verify_cert "$T/nv1/0x01c00016.der" "ECC EK certificate"
t=$T/nv1/0x01c00002.der.txt
grep -q 'DirName:/2.23.133.2.1=id:00001014/2.23.133.2.2=swtpm/2.23.133.2.3=id:20191023' "$t" ||
    fail "RSA EK: TPM attributes in the SAN"
grep -q 'X509v3 Subject Alternative Name: critical' "$t" || fail "RSA EK: SAN not critical"
grep -A1 'Extended Key Usage' "$t" | grep -q '2.23.133.8.1' || fail "RSA EK: EKU"
grep -A1 'Key Usage: critical' "$t" | grep -q 'Key Encipherment' || fail "RSA EK: key usage"
grep -q 'Subject Directory Attributes' "$t" || fail "RSA EK: no tpmSpecification"
grep -q 'Public-Key: (2048 bit)' "$t" || fail "RSA EK: not RSA-2048"
t=$T/nv1/0x01c00016.der.txt
grep -q 'NIST CURVE: P-384' "$t" || fail "ECC EK: not P-384"
grep -A1 'Key Usage: critical' "$t" | grep -q 'Key Agreement' || fail "ECC EK: key usage"
t=$T/nv1/0x01c08000.der.txt
grep -q 'DirName:/2.23.133.5.1.1=vtpmd/2.23.133.5.1.4=QEMU/2.23.133.5.1.5=2.1' "$t" ||
    fail "platform: platform attributes in the SAN"
grep -A1 'Extended Key Usage' "$t" | grep -q '2.23.133.8.2' || fail "platform: EKU"
# The EK certificate is over the EK the vTPM holds (swtpm_setup read it
# from the TPM and passed it as --ek).
ek=$(sed -n 's/.*vtpm-certtool --type ek --ek \([0-9a-f]*\) .*/\1/p' "$T/setup1.log" | head -n1)
mod=$(openssl x509 -in "$T/nv1/0x01c00002.der.pem" -noout -modulus | cut -d= -f2)
[ "$(echo "$ek" | tr a-f A-F)" = "$mod" ] || fail "EK certificate's key is not the vTPM's EK"
pass "swtpm_setup stores site-CA EK (RSA, ECC) and platform certificates that verify"

# Serials are distinct.
s=$(for f in "$T"/nv1/*.pem; do openssl x509 -in "$f" -noout -serial; done | sort -u | wc -l)
[ "$s" -eq 3 ] || fail "serials not distinct"

# Several swtpm_setup runs at once (libvirt starting many domains): the
# state's lock keeps serials unique and the issued index whole.
mod=$(openssl genrsa 2048 2>/dev/null | openssl rsa -noout -modulus | cut -d= -f2)
before=$(wc -l < "$CA/state/issued")
pids=
for i in 1 2 3 4 5 6 7 8; do
    mkdir "$T/par$i"
    "$VTPM_CERTTOOL" --type ek --ek "$mod" --dir "$T/par$i" --vmid "i-$i:$UUID" \
        --tpm-spec-family 2.0 --tpm-spec-level 0 --tpm-spec-revision 164 \
        --tpm-manufacturer id:00001014 --tpm-model swtpm --tpm-version id:20191023 \
        --tpm2 --configfile "$CA/ca.conf" > "$T/par$i.log" 2>&1 &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "parallel vtpm-certtool failed"; done
n=$(for i in 1 2 3 4 5 6 7 8; do openssl x509 -inform der -in "$T/par$i/ek.cert" -noout -serial; done | sort -u | wc -l)
[ "$n" -eq 8 ] || fail "parallel issuance: $n distinct serials of 8"
[ $(($(wc -l < "$CA/state/issued") - before)) -eq 8 ] || fail "issued index lost lines"
pass "parallel issuance: unique serials, every certificate recorded"

# As libvirt runs it: swtpm_setup and the tool as user tss, with a CA key
# tss owns (standalone mode; root's key is refused there).
if [ "$(id -u)" = 0 ] && id tss >/dev/null 2>&1; then
    # Everything tss uses is copied under $T: the build and source trees
    # may sit where tss cannot go (a CI clone under /root).
    chmod 0711 "$T"
    mkdir "$T/tss"
    cp -r "$CA" "$T/tss/ca"
    cp "$VTPM_CERTTOOL" "$top_srcdir/tests/lib/common.sh" "$top_srcdir/tests/lib/kvm.sh" "$T/tss/"
    sed "s|$CA|$T/tss/ca|g" "$CA/ca.conf" > "$T/tss/ca/ca.conf"
    rm -rf "$T/tss/ca/state"
    kvm_setup_conf "$T/tss/setup.conf" "$T/tss/vtpm-certtool" "$T/tss/ca/ca.conf" "$T/tss/ca/opts"
    chown -R tss:tss "$T/tss"
    as_tss() { # STATE VMID LOG
        setpriv --reuid=tss --regid=tss --clear-groups env top_srcdir="$T/tss" \
            top_builddir="$T/tss" VTPM_CERTTOOL="$T/tss/vtpm-certtool" sh -c \
            ". '$T/tss/common.sh' >/dev/null; . '$T/tss/kvm.sh'; \
             kvm_swtpm_setup '$1' '$2' '$T/tss/setup.conf' '$3'"
    }
    as_tss "$T/tss/tpm" "instance-00000009:$UUID" "$T/tss/setup.log" ||
        fail "swtpm_setup as tss: $(tail -n 5 "$T/tss/setup.log")"
    [ "$(grep -c 'vtpm-certtool: issued' "$T/tss/setup.log")" -eq 3 ] || fail "as tss: want 3 certificates"
    # Root's key (0600): unreadable by tss; a clear refusal. (The owner
    # check itself matters when root, which reads anything, signs.)
    chown root "$T/tss/ca/int.key"
    as_tss "$T/tss/tpm2" "instance-00000010:$UUID" "$T/tss/setup2.log" &&
        fail "swtpm_setup as tss succeeded with root's key"
    grep -q "refused: signing key $T/tss/ca/int.key: Permission denied" "$T/tss/setup2.log" ||
        fail "as tss: $(tail -n 3 "$T/tss/setup2.log")"
    pass "as user tss (libvirt's swtpm user): issues with its own key, refused root's"
elif [ "${CI:-}" = true ]; then
    fail "the tss user test needs root and the tss user (CI=true)"
fi

# 2. Refusals: each fails swtpm_setup (libvirt fails the start) with a
# clear message in its log.
kvm_swtpm_setup "$T/tpm2" "instance-00000002" "$T/setup.conf" "$T/setup2.log" &&
    fail "swtpm_setup succeeded without an instance UUID"
grep -q "refused: --vmid 'instance-00000002' does not name an instance UUID" "$T/setup2.log" ||
    fail "no clear message for a vmid without UUID"
chmod 0644 "$CA/int.key"
kvm_swtpm_setup "$T/tpm3" "instance-00000003:$UUID" "$T/setup.conf" "$T/setup3.log" &&
    fail "swtpm_setup succeeded with a 0644 key"
grep -q "mode 0644 is refused" "$T/setup3.log" || fail "no clear message for key mode"
chmod 0600 "$CA/int.key"
pass "no instance UUID and a loose key mode fail swtpm_setup with a clear message"

# 3. The key in an HSM (softhsm2 through PKCS#11), then the HSM gone.
kvm_pkcs11_ca "$CA"
kvm_setup_conf "$T/setup11.conf" "$VTPM_CERTTOOL" "$CA/ca11.conf" "$CA/opts"
kvm_swtpm_setup "$T/tpm4" "instance-00000004:$UUID" "$T/setup11.conf" "$T/setup4.log" ||
    fail "swtpm_setup with the PKCS#11 key failed"
mkdir "$T/nv4"
kvm_nvread "$T/tpm4" "$T/nv4" 0x01c00002
verify_cert "$T/nv4/0x01c00002.der" "EK certificate signed in softhsm2"
rm -rf "$CA/tokens"/*
kvm_swtpm_setup "$T/tpm5" "instance-00000005:$UUID" "$T/setup11.conf" "$T/setup5.log" &&
    fail "swtpm_setup succeeded with the HSM gone"
grep -q "refused: PKCS#11: cannot load the signing key" "$T/setup5.log" ||
    fail "no clear message with the HSM gone"
pass "PKCS#11 key in softhsm2 signs; token gone: clear refusal"

# 4. Revocation and the CRL.
serial=$(openssl x509 -in "$T/nv1/0x01c00002.der.pem" -noout -serial | cut -d= -f2)
"$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --revoke "$serial" > "$T/rev.log" 2>&1 ||
    fail "revoke: $(cat "$T/rev.log")"
"$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --gencrl "$T/site.crl" --crl-next-update 3600 \
    >> "$T/rev.log" 2>&1 || fail "gencrl: $(cat "$T/rev.log")"
openssl crl -inform der -in "$T/site.crl" -out "$T/site.crl.pem" || fail "CRL not DER"
openssl crl -in "$T/site.crl.pem" -noout -text | grep -q "Serial Number: $serial" ||
    fail "revoked serial not in the CRL"
openssl verify -crl_check -CRLfile "$T/site.crl.pem" -CAfile "$CA/root.pem" -untrusted "$CA/int.pem" \
    "$T/nv1/0x01c00002.der.pem" > "$T/v.out" 2>&1 && fail "revoked certificate still verifies"
grep -q 'certificate revoked' "$T/v.out" || fail "openssl verify: $(cat "$T/v.out")"
openssl verify -crl_check -CRLfile "$T/site.crl.pem" -CAfile "$CA/root.pem" -untrusted "$CA/int.pem" \
    "$T/nv1/0x01c00016.der.pem" > "$T/v.out" 2>&1 || fail "unrevoked: $(cat "$T/v.out")"
# The whole instance (what vtpmd does on delete): its RSA EK, platform and
# ECC EK certificates of tpm1 (and the tss and parallel ones: same UUID).
"$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --revoke-instance "$UUID" \
    --gencrl "$T/site2.crl" > "$T/rev3.log" 2>&1 || fail "revoke-instance: $(cat "$T/rev3.log")"
grep -q "revoked instance=$UUID certificates=" "$T/rev3.log" || fail "revoke-instance: $(cat "$T/rev3.log")"
for f in 0x01c00002 0x01c08000 0x01c00016; do
    s=$(openssl x509 -in "$T/nv1/$f.der.pem" -noout -serial | cut -d= -f2)
    openssl crl -inform der -in "$T/site2.crl" -noout -text | grep -q "Serial Number: $s" ||
        fail "revoke-instance: $f's serial $s not in the CRL"
done
"$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --revoke 0badc0de > "$T/rev2.log" 2>&1 &&
    fail "revoked a serial never issued"
grep -q 'was not issued by this CA' "$T/rev2.log" || fail "revoke: $(cat "$T/rev2.log")"
pass "revoked certificates (one, or all of an instance) are in the CRL; openssl verify -crl_check refuses them"

# 5. Configuration errors name FILE:LINE:COL.
printf 'signing_key = %s\nvalidty_days = 3\n' "$CA/int.key" > "$T/bad.conf"
"$VTPM_CERTTOOL" --configfile "$T/bad.conf" --gencrl "$T/x.crl" > "$T/bad.out" 2>&1 &&
    fail "bad config accepted"
grep -q "$T/bad.conf:2:1: unknown key 'validty_days'" "$T/bad.out" || fail "bad config: $(cat "$T/bad.out")"
pass "configuration errors give FILE:LINE:COL"
