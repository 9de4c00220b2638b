#!/bin/sh
# bench/bench_decode must keep working: one untimed pass that checks the
# class of every genuine message (the figures come from running it by
# hand, see docs/performance.md).
. "$top_srcdir/tests/lib/common.sh"

"$top_builddir/bench/bench_decode" --smoke "$top_srcdir/tests/fixtures/nova" \
    >"$T/bench.log" 2>&1 || fail "bench_decode --smoke: $(cat "$T/bench.log")"
pass "$(cat "$T/bench.log")"
