#!/bin/sh
# Starts a private RabbitMQ and vtpmd (test:///default, local provider,
# log level warning) and runs bench/bench_provision against them.
# Usage: bench/bench_provision.sh [BUILD_DIR] [bench_provision.py options]
set -u
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/.." && pwd)
top_builddir=$(cd "${1:-$top_srcdir/build}" && pwd)
[ $# -gt 0 ] && shift
VTPMD=$top_builddir/vtpmd
export top_srcdir top_builddir VTPMD
. "$top_srcdir/tests/lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"
vtpmd_config "$T/vtpmd.yaml"
sed -i 's/log: {level: debug}/log: {level: warning}/' "$T/vtpmd.yaml"
: > "$T/vtpmd.log"
"$VTPMD" -c "$T/vtpmd.yaml" > "$T/vtpmd.log" 2>&1 &
VTPMD_PID=$!
add_cleanup vtpmd_kill
sleep 1
until "$top_builddir/vtpmctl" -s "$T/control.sock" health > /dev/null 2>&1; do sleep 0.2; done
"$top_builddir/bench/bench_provision" --url "$BROKER_URL" --host cmp1 \
    --fixture "$top_srcdir/tests/fixtures/nova/genuine/02-boot-versioned-instance.create.start.json" "$@"
echo "vtpmd: $("$top_builddir/vtpmctl" -s "$T/control.sock" metrics | grep -E '^vtpmd_provisions_total')"
