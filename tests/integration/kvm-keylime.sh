#!/bin/sh
# contrib/keylime/vtpmd-ek-check as Keylime's ek_check_script runs it (EK,
# EK_CERT as base64 DER, AGENT_UUID, TPM_CERT_STORE in its environment),
# with EKs and certificates read from real vTPMs made by swtpm_setup:
# accepts the good one; rejects a swtpm_localca-signed one, a revoked one,
# a mismatched EK, another instance's agent, a certificate missing from the
# registry, and any when no CRL is there.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/kvm.sh"
kvm_require
CHECK=$top_srcdir/contrib/keylime/vtpmd-ek-check

U1=9b1d6e1c-3f4a-4f5e-8a2b-1c2d3e4f5a6b
U2=0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
CA=$T/ca
kvm_make_ca "$CA"
kvm_setup_conf "$T/setup.conf" "$VTPM_CERTTOOL" "$CA/ca.conf" "$CA/opts"
mkdir -p "$T/lca"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
    "$T/lca" "$T/lca" "$T/lca" "$T/lca" > "$T/lca.conf"
kvm_setup_conf "$T/localca.conf" /usr/bin/swtpm_localca "$T/lca.conf" "$CA/opts"

# Three vTPMs: two from the site CA, one from swtpm_localca.
KVM_READPUB=0x81010001
export KVM_READPUB
for v in 1:$U1:setup 2:$U2:setup 3:$U1:localca; do
    n=${v%%:*} rest=${v#*:}
    u=${rest%%:*} c=${rest#*:}
    kvm_swtpm_setup "$T/tpm$n" "instance-0000000$n:$u" "$T/$c.conf" "$T/setup$n.log" ||
        fail "swtpm_setup $n"
    mkdir "$T/nv$n"
    kvm_nvread "$T/tpm$n" "$T/nv$n" 0x01c00002
done

# Keylime's tpm_cert_store: the site root, this host's intermediate; and
# swtpm_localca's CA too, as a careless operator might add it.
mkdir "$T/store" "$T/crl"
cp "$CA/root.pem" "$T/store/vtpmd-site-root.pem"
cp "$CA/int.pem" "$T/store/vtpmd-compute-1.pem"
cp "$T/lca/issuercert.pem" "$T/store/swtpm-localca-issuer.pem"
cp "$T/lca/swtpm-localca-rootca-cert.pem" "$T/store/swtpm-localca-root.pem"
"$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --gencrl "$T/crl/compute-1.crl" > "$T/crl.log" 2>&1 ||
    fail "gencrl: $(cat "$T/crl.log")"
cat > "$T/check.conf" <<EOC
site_ca = $CA/root.pem
crl_dir = $T/crl
registry = $CA/state/issued
EOC
VTPMD_EK_CHECK_CONF=$T/check.conf
TPM_CERT_STORE=$T/store
export VTPMD_EK_CHECK_CONF TPM_CERT_STORE

# check N_EK N_CERT AGENT: runs the script as Keylime's tenant does.
check() {
    EK=$(cat "$T/nv$1/0x81010001.pem") EK_CERT=$(base64 -w0 "$T/nv$2/0x01c00002.der") \
        AGENT_UUID=$3 "$CHECK" > "$T/check.out" 2>&1
}
accept() { check "$@" || fail "$4: rejected: $(cat "$T/check.out")"; }
reject() {
    check "$1" "$2" "$3" && fail "$4: accepted"
    grep -q "$5" "$T/check.out" || fail "$4: reason: $(cat "$T/check.out")"
}

accept 1 1 "$U1" "the good vTPM"
accept 2 2 "$(echo "$U2" | tr a-f A-F)" "the second vTPM, upper-case agent UUID"
# PEM in EK_CERT works too.
EK=$(cat "$T/nv1/0x81010001.pem") EK_CERT=$(openssl x509 -inform der -in "$T/nv1/0x01c00002.der") \
    AGENT_UUID=$U1 "$CHECK" > "$T/check.out" 2>&1 || fail "PEM EK_CERT: $(cat "$T/check.out")"
pass "accepts site-CA EK certificates whose EK matches"

reject 3 3 "$U1" "swtpm_localca-signed" "does not verify against the site CA"
reject 2 1 "$U1" "mismatched EK" "does not match the EK certificate"
reject 1 1 "$U2" "another instance's agent" "names instance '$U1'"
pass "rejects a swtpm_localca-signed certificate, a mismatched EK, another agent"

# Not in the registry (e.g. a certificate from a CA state not vtpmd's).
grep -v " $U2 " "$CA/state/issued" > "$T/issued.partial"
sed "s|^registry = .*|registry = $T/issued.partial|" "$T/check.conf" > "$T/check2.conf"
VTPMD_EK_CHECK_CONF=$T/check2.conf reject 2 2 "$U2" "not in the registry" "not in the registry"

# Revoked: the CRL lists it.
serial=$(openssl x509 -inform der -in "$T/nv1/0x01c00002.der" -noout -serial | cut -d= -f2)
"$VTPM_CERTTOOL" --configfile "$CA/ca.conf" --revoke "$serial" \
    --gencrl "$T/crl/compute-1.crl" > "$T/crl.log" 2>&1 || fail "revoke: $(cat "$T/crl.log")"
reject 1 1 "$U1" "revoked" "certificate revoked"
accept 2 2 "$U2" "the unrevoked one after the revocation"

# No CRL: fail closed.
rm "$T/crl/compute-1.crl"
reject 2 2 "$U2" "no CRL" "no CRL in"
pass "rejects a revoked certificate, one missing from the registry, any without CRL"
