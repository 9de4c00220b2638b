#!/bin/sh
# kill -9 against the site CA's durability: vtpm-certtool runs are killed
# at random points while others issue on the same CA state. Afterwards
# every certificate a run handed out (ek.cert written) is in the issued
# index, no serial appears twice, and the CA keeps issuing. FAULT_SEED=N
# repeats a run.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/kvm.sh"
kvm_require

SEED=${FAULT_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
echo "# FAULT_SEED=$SEED"
CA=$T/ca
kvm_make_ca "$CA"
mod=$(openssl genrsa 2048 2>/dev/null | openssl rsa -noout -modulus | cut -d= -f2)
UUID=9b1d6e1c-3f4a-4f5e-8a2b-1c2d3e4f5a6b

issue() { # DIR
    mkdir -p "$1"
    exec "$VTPM_CERTTOOL" --type ek --ek "$mod" --dir "$1" --vmid "i:$UUID" \
        --tpm-spec-family 2.0 --tpm-spec-level 0 --tpm-spec-revision 164 \
        --tpm-manufacturer id:00001014 --tpm-model swtpm --tpm-version id:20191023 \
        --tpm2 --configfile "$CA/ca.conf" > "$1.log" 2>&1
}

# Delays in milliseconds from the seed (awk's rand is seeded, not timed).
delays=$(awk -v s="$SEED" 'BEGIN { srand(s); for (i = 0; i < 40; i++) printf "%d ", int(rand() * 40) }')
i=0
for d in $delays; do
    i=$((i + 1))
    ( issue "$T/run$i" ) &
    p1=$!
    ( issue "$T/bg$i" ) &
    p2=$!
    sleep "$(awk -v d="$d" 'BEGIN { printf "%.3f", d / 1000 }')"
    kill -9 "$p1" 2>/dev/null
    wait "$p1" 2>/dev/null
    wait "$p2" || fail "an unkilled run failed: $(cat "$T/bg$i.log")"
done

handed=0
for c in "$T"/run*/ek.cert "$T"/bg*/ek.cert; do
    [ -f "$c" ] || continue
    handed=$((handed + 1))
    fp=$(openssl dgst -sha256 -r "$c" | cut -d' ' -f1)
    s=$(openssl x509 -inform der -in "$c" -noout -serial | cut -d= -f2)
    grep -q "^$s ek-rsa $UUID [^ ]* $fp " "$CA/state/issued" ||
        fail "certificate $s ($c) handed out but not in the issued index"
done
dups=$(cut -d' ' -f1 "$CA/state/issued" | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || fail "$dups serials issued twice"
awk 'NF != 6 { exit 1 }' "$CA/state/issued" || fail "a torn line in the issued index"
( issue "$T/after" ) || fail "the CA does not issue after the kills: $(cat "$T/after.log")"
killed=$(for l in "$T"/run*.log; do grep -q issued "$l" || echo x; done | wc -l)
pass "kill -9: $handed certificates handed out, all recorded; $killed runs killed before the end; no serial twice"
