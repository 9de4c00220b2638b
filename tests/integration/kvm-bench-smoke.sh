#!/bin/sh
# bench/bench_ekcert.sh still runs (one vTPM each way, a few signatures):
# keeps the benchmark from rotting. No figure is asserted.
. "$(dirname "$0")/../lib/common.sh"
sh "$top_srcdir/bench/bench_ekcert.sh" "$top_builddir" 1 3 > "$T/bench.log" 2>&1 ||
    fail "bench_ekcert.sh: $(tail -n 20 "$T/bench.log")"
grep -q '^site CA adds per vTPM: ' "$T/bench.log" || fail "no per-vTPM figure"
[ "$(grep -c 'certs=3 ' "$T/bench.log")" -eq 2 ] || fail "no signing figures"
pass "bench_ekcert.sh runs"
