#!/bin/sh
# The README's first command: installs what vtpmd needs, builds it, starts
# a private RabbitMQ on 127.0.0.1:5672 and runs vtpmd on the embedded
# default (conf/demo.yaml: libvirt test:///default, local vTPM UUIDs).
# VTPMD_DEMO_SECONDS (default 5) is how long it runs before SIGTERM.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

"$top/scripts/install-deps.sh"
autoreconf -fi >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || "$top/configure" >/dev/null
make -j"$(nproc)" >/dev/null
cd "$top"

rm -rf /tmp/vtpmd-demo
mkdir -p /tmp/vtpmd-demo
. "$top/tests/lib/broker.sh"
BROKER_PORT=5672
trap 'broker_stop' EXIT INT TERM
broker_start /tmp/vtpmd-demo/broker
echo "demo: RabbitMQ running at $BROKER_URL"

"$top/build/vtpmd" -c "$top/conf/demo.yaml" &
pid=$!
sleep "${VTPMD_DEMO_SECONDS:-5}"
echo "demo: vtpmd (pid $pid) is running; stopping it"
kill -TERM $pid
wait $pid
echo "demo: vtpmd stopped cleanly"
