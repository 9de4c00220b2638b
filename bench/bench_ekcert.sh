#!/bin/sh
# The site CA's cost per vTPM, measured against swtpm's own local CA on the
# same machine in one run:
#   1. N vTPMs through swtpm_setup (RSA EK, platform and ECC EK certificates,
#      as libvirt asks) with vtpm-certtool as create_certs_tool, and N with
#      swtpm_localca, interleaved so that drift hits both alike;
#   2. certificates per second kvmca signs in one process (bench/bench_kvmca)
#      with the PEM key and with the key in softhsm2.
# Usage: bench/bench_ekcert.sh [BUILD_DIR] [N (default 20)] [SIGN_N (default 500)]
set -u
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/.." && pwd)
top_builddir=$(cd "${1:-$top_srcdir/build}" && pwd)
N=${2:-20}
SIGN_N=${3:-500}
export top_srcdir top_builddir
. "$top_srcdir/tests/lib/common.sh"
. "$top_srcdir/tests/lib/kvm.sh"
kvm_require
[ -x "$top_builddir/bench/bench_kvmca" ] || fail "build bench/bench_kvmca first (make bench/bench_kvmca)"

CA=$T/ca
kvm_make_ca "$CA"
kvm_setup_conf "$T/vtpmd.conf" "$VTPM_CERTTOOL" "$CA/ca.conf" "$CA/opts"
# swtpm_localca with its own CA in $T/lca (created on first use, as on a
# host; that first run is outside the timing).
mkdir -p "$T/lca"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
    "$T/lca" "$T/lca" "$T/lca" "$T/lca" > "$T/lca.conf"
kvm_setup_conf "$T/localca.conf" /usr/bin/swtpm_localca "$T/lca.conf" "$CA/opts"

now() { date +%s.%N; }

run_one() { # CONF TAG I
    _u=$(cat /proc/sys/kernel/random/uuid)
    kvm_swtpm_setup "$T/tpm-$2-$3" "instance-$3:$_u" "$1" "$T/$2.log" --ecc ||
        fail "swtpm_setup with $2 failed (see $T/$2.log)"
    rm -rf "$T/tpm-$2-$3"
}

# Warm-up: one of each (swtpm_localca makes its CA here).
run_one "$T/localca.conf" localca w
run_one "$T/vtpmd.conf" vtpmd w

tv=0
tl=0
i=0
while [ $i -lt "$N" ]; do
    a=$(now); run_one "$T/vtpmd.conf" vtpmd "$i"; b=$(now)
    tv=$(awk "BEGIN { print $tv + $b - $a }")
    a=$(now); run_one "$T/localca.conf" localca "$i"; b=$(now)
    tl=$(awk "BEGIN { print $tl + $b - $a }")
    i=$((i + 1))
done
[ "$(grep -c 'vtpm-certtool: issued' "$T/vtpmd.log")" -eq $((3 * (N + 1))) ] ||
    fail "vtpm-certtool did not issue 3 certificates per vTPM"
awk -v n="$N" -v tv="$tv" -v tl="$tl" 'BEGIN {
    printf "swtpm_setup per vTPM (N=%d, 3 certificates each): vtpm-certtool %.1f ms, swtpm_localca %.1f ms\n", n, tv * 1000 / n, tl * 1000 / n
    printf "site CA adds per vTPM: %.1f ms (%+.1f%% over swtpm_setup with swtpm_localca; target <= 10%%)\n", (tv - tl) * 1000 / n, (tv - tl) * 100 / tl
}' 

mod=$(openssl genrsa 2048 2>/dev/null | openssl rsa -noout -modulus | cut -d= -f2)

# The tools alone, one RSA EK certificate per call, same arguments.
call() { # TOOL CONFIG DIR
    mkdir -p "$3"
    "$1" --type ek --ek "$mod" --dir "$3" --vmid "instance-1:9b1d6e1c-3f4a-4f5e-8a2b-1c2d3e4f5a6b" \
        --tpm-spec-family 2.0 --tpm-spec-level 0 --tpm-spec-revision 164 \
        --tpm-manufacturer id:00001014 --tpm-model swtpm --tpm-version id:20191023 \
        --tpm2 --configfile "$2" --optsfile "$CA/opts" >> "$T/calls.log" 2>&1 ||
        fail "$1 failed (see $T/calls.log)"
}
cv=0
cl=0
i=0
while [ $i -lt "$N" ]; do
    a=$(now); call "$VTPM_CERTTOOL" "$CA/ca.conf" "$T/call-v"; b=$(now)
    cv=$(awk "BEGIN { print $cv + $b - $a }")
    a=$(now); call /usr/bin/swtpm_localca "$T/lca.conf" "$T/call-l"; b=$(now)
    cl=$(awk "BEGIN { print $cl + $b - $a }")
    i=$((i + 1))
done
awk -v n="$N" -v cv="$cv" -v cl="$cl" 'BEGIN {
    printf "one EK certificate per call (N=%d): vtpm-certtool %.1f ms, swtpm_localca %.1f ms\n", n, cv * 1000 / n, cl * 1000 / n
}'

printf 'kvmca signing, PEM key (ECDSA P-256): '
"$top_builddir/bench/bench_kvmca" "$CA/int.key" "$CA/chain.pem" "$T/st-pem" "$mod" "$SIGN_N" ||
    fail "bench_kvmca with the PEM key"
kvm_pkcs11_ca "$CA"
uri=$(sed -n 's/^signing_key = //p' "$CA/ca11.conf")
printf 'kvmca signing, softhsm2 key (ECDSA P-256): '
"$top_builddir/bench/bench_kvmca" "$uri" "$CA/chain.pem" "$T/st-p11" "$mod" "$SIGN_N" ||
    fail "bench_kvmca with softhsm2"
