#!/bin/sh
# Consume throughput, one run, one private broker: drain a backlog of N
# (default 100,000) genuine versioned Nova notifications of other hosts
# (persistent, in a durable queue) with vtpmd's bus, a plain librabbitmq-c
# loop acking each message and acking with multiple every 64, and an
# oslo.messaging notification listener. Prints a table; timings, not a
# test (docs/performance.md).
#
#   bench/bench-consume.sh [N]      (from a build directory, or set
#                                    top_builddir / top_srcdir)
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$(cd "$here/.." && pwd)}"
: "${top_builddir:=$PWD}"
export top_srcdir top_builddir
N=${1:-${N:-100000}}
ROUNDS=${ROUNDS:-1}
. "$top_srcdir/tests/lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
BENCH="$top_builddir/bench/bench_consume"
[ -x "$BENCH" ] || fail "build bench/bench_consume first (make)"

broker_start "$T/broker"
add_cleanup broker_stop
cat > "$T/bench.yaml" <<YAML
host: benchhost
state_dir: $T/state
vtpmmgr: {provider: local}
amqp: {urls: ['$BROKER_URL'], prefetch: 256}
YAML

run() { # MODE
    "$BENCH" --url "$BROKER_URL" --count "$N" fill > "$T/fill.out" || fail "fill"
    if [ "$1" = bus-trivial ]; then
        set -- bus --trivial
    fi
    "$BENCH" --url "$BROKER_URL" --count "$N" --config "$T/bench.yaml" "$@" >> "$T/results" ||
        fail "$* failed"
    left=$("$BENCH" --url "$BROKER_URL" count)
    [ "$left" = 0 ] || fail "$1 left $left messages in the queue"
}

: > "$T/results"
r=0
while [ $r -lt "$ROUNDS" ]; do
    for mode in bare-each bare-64 bus bus-trivial; do run $mode; done
    r=$((r + 1))
done
"$BENCH" --url "$BROKER_URL" --count "$N" --queue bench_oslo.info fill > "$T/fill-oslo.out" ||
    fail "fill for oslo"
"$PYTHON" "$here/bench_oslo.py" --url "$BROKER_URL" --topic bench_oslo --count "$N" \
    >> "$T/results" || fail "oslo listener"
left=$("$BENCH" --url "$BROKER_URL" --queue bench_oslo.info count)
[ "$left" = 0 ] || fail "oslo left $left messages"

cat "$T/fill.out"
echo "rabbitmq $(broker_ctl version 2>/dev/null | tail -n 1), librabbitmq $(pkg-config --modversion librabbitmq 2>/dev/null), prefetch 256, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - "$T/results" <<'PY'
import collections, re, sys
rates = collections.defaultdict(list)
cpu = collections.defaultdict(list)
extra = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    if "mode" in kv:
        mode = kv["mode"] + ("-trivial" if kv.get("handler") == "trivial" else "")
        rates[mode].append(float(kv["rate"]))
        cpu[mode].append(float(kv["cpu_us"]))
        if kv.get("handler") == "novamsg_decode":
            extra[mode] = "handler %s, %s irrelevant" % (kv["handler"], kv["irrelevant"])
best = lambda m: max(rates[m]) if rates[m] else 0.0
bare = max(best("bare-each"), best("bare-64"))
names = {"bus": "vtpmd bus", "bus-trivial": "vtpmd bus, handler acks without decoding",
         "bare-each": "librabbitmq-c loop, ack each",
         "bare-64": "librabbitmq-c loop, ack multiple every 64",
         "oslo": "oslo.messaging listener"}
print("| consumer | msgs/s | of the faster bare loop | consumer CPU per message |")
print("| --- | ---: | ---: | ---: |")
for m in ("bus", "bus-trivial", "bare-each", "bare-64", "oslo"):
    if rates[m]:
        runs = "" if len(rates[m]) == 1 else " (best of %d: %s)" % (
            len(rates[m]), ", ".join("%.0f" % r for r in rates[m]))
        print("| %s | %.0f%s | %.0f%% | %.1f µs |" % (names[m], best(m), runs,
                                                   100 * best(m) / bare, min(cpu[m])))
for m, e in extra.items():
    print("%s: %s" % (names[m], e))
PY
