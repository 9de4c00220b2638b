#!/bin/sh
# bench/bench-consume.sh once with a small backlog, untimed: the benchmark
# keeps working (every consumer drains the whole queue; the table is
# printed). The figures themselves are in docs/performance.md.
. "$(dirname "$0")/bus-lib.sh"
[ -x "$top_builddir/bench/bench_consume" ] || fail "bench/bench_consume not built"
sh "$top_srcdir/bench/bench-consume.sh" 600 > "$T/bench.log" 2>&1 || fail "benchmark failed"
for row in 'vtpmd bus' 'ack each' 'every 64' 'oslo.messaging listener'; do
    grep -q "^| [^|]*$row[^|]* | [0-9]" "$T/bench.log" || fail "no result for $row"
done
grep -q 'handler novamsg_decode, 600 irrelevant' "$T/bench.log" || fail "bus handler did not classify"
cat "$T/bench.log"
pass "bench-consume.sh runs"
