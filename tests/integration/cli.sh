#!/bin/sh
# vtpmd's command line contract: -V, -h, -t and its exit codes, and the
# FILE:LINE:COL form of configuration errors.
. "$(dirname "$0")/../lib/common.sh"

"$VTPMD" -V > "$T/v.out" || fail "-V exit $?"
grep -Eq '^vtpmd [0-9]+\.[0-9]+\.[0-9]+$' "$T/v.out" || fail "-V printed $(cat "$T/v.out")"
"$VTPMD" --help > "$T/h.out" || fail "--help exit $?"
grep -q -- '--check-config' "$T/h.out" || fail "help lacks --check-config"
pass "version and help"

for f in vtpmd.yaml demo.yaml; do
    "$VTPMD" -c "$top_srcdir/conf/$f" -t > "$T/t.out" 2>&1 || fail "conf/$f: exit $? $(cat "$T/t.out")"
done
pass "shipped configurations are valid"

printf 'vtpmmgr:\n  provider: local\nimage:\n  size: lots\n' > "$T/bad.yaml"
"$VTPMD" -c "$T/bad.yaml" -t > "$T/bad.out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "invalid config: exit $rc, want 2"
grep -q "^$T/bad.yaml:4:9: image.size: 'lots' is not a size" "$T/bad.out" ||
    fail "invalid config message: $(cat "$T/bad.out")"
pass "invalid config exits 2 with FILE:LINE:COL"

# The same errors stop the daemon itself from starting.
"$VTPMD" -c "$T/bad.yaml" > "$T/bad2.out" 2>&1
[ $? -eq 2 ] || fail "daemon with invalid config: want exit 2"

"$VTPMD" -c "$T/missing.yaml" -t > "$T/m.out" 2>&1
[ $? -eq 2 ] || fail "missing config: want exit 2"
grep -q "^$T/missing.yaml:1:1: cannot open" "$T/m.out" || fail "missing: $(cat "$T/m.out")"

"$VTPMD" --bogus > "$T/u.out" 2>&1
[ $? -eq 2 ] || fail "unknown option: want exit 2"
grep -q "unknown option '--bogus'" "$T/u.out" || fail "usage message: $(cat "$T/u.out")"
"$VTPMD" -l chatty -t > "$T/u.out" 2>&1
[ $? -eq 2 ] || fail "bad level: want exit 2"
pass "usage errors exit 2"
