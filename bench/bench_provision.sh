#!/bin/sh
# Starts a private RabbitMQ and vtpmd (test:///default, local provider,
# log level warning) and runs bench/bench_provision against them.
# Usage: bench/bench_provision.sh [BUILD_DIR] [--floor] [--set KEY=VALUE]...
#            [bench_provision options: --rate R --steady N --burst M]
#   --floor           bench/bus_floor instead of vtpmd: the broker and the
#                     clients alone, no provisioning (the floor under it)
#   --set SECTION.KEY=VALUE   adds KEY: VALUE to the config's SECTION,
#                     e.g. --set image.spares=0
set -u
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/.." && pwd)
top_builddir=$(cd "${1:-$top_srcdir/build}" && pwd)
[ $# -gt 0 ] && shift
VTPMD=$top_builddir/vtpmd
export top_srcdir top_builddir VTPMD
. "$top_srcdir/tests/lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"

floor=false
sets=""
while [ $# -gt 0 ]; do
    case $1 in
    --floor) floor=true; shift ;;
    --set) sets="$sets $2"; shift 2 ;;
    *) break ;;
    esac
done

broker_start "$T/broker"
add_cleanup broker_stop
if $floor; then
    "$top_builddir/bench/bus_floor" --url "$BROKER_URL" > "$T/floor.out" 2>&1 &
    FLOOR_PID=$!
    floor_stop() { kill "$FLOOR_PID" 2>/dev/null; return 0; }
    add_cleanup floor_stop
    until grep -q ready "$T/floor.out"; do sleep 0.1; done
else
    . "$top_srcdir/tests/lib/vtpmd.sh"
    vtpmd_config "$T/vtpmd.yaml"
    sed -i 's/log: {level: debug}/log: {level: warning}/' "$T/vtpmd.yaml"
    for kv in $sets; do
        key=${kv%%=*} value=${kv#*=}
        section=${key%%.*} name=${key#*.}
        if grep -q "^$section: {" "$T/vtpmd.yaml"; then
            sed -i "s|^$section: {\(.*\)}\$|$section: {\1, $name: $value}|" "$T/vtpmd.yaml"
        else
            printf '%s: {%s: %s}\n' "$section" "$name" "$value" >> "$T/vtpmd.yaml"
        fi
    done
    : > "$T/vtpmd.log"
    "$VTPMD" -c "$T/vtpmd.yaml" > "$T/vtpmd.log" 2>&1 &
    VTPMD_PID=$!
    add_cleanup vtpmd_kill
    sleep 1
    until "$top_builddir/vtpmctl" -s "$T/control.sock" health > /dev/null 2>&1; do sleep 0.2; done
    # Let the spare images be made before measuring.
    sleep 2
fi
"$top_builddir/bench/bench_provision" --url "$BROKER_URL" --host cmp1 \
    --fixture "$top_srcdir/tests/fixtures/nova/genuine/02-boot-versioned-instance.create.start.json" "$@"
if ! $floor; then
    echo "vtpmd: $("$top_builddir/vtpmctl" -s "$T/control.sock" metrics | grep -E '^vtpmd_provisions_total')"
fi
