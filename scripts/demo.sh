#!/bin/sh
# The README's first command. On a fresh Debian 12 machine (as root):
# installs what vtpmd needs, builds it, and runs its main job on the
# embedded default (conf/demo.yaml): a private RabbitMQ on 127.0.0.1:5672,
# vtpmd with libvirt's test:///default driver and local vTPM UUIDs, Nova's
# own code (Debian's python3-nova) emitting the notifications of an
# instance being created and then deleted, and an oslo.messaging listener
# showing vtpmd's status notifications. Everything it starts, it stops.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
D=/tmp/vtpmd-demo
PY=/usr/bin/python3

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing packages and building"
"$top/scripts/install-deps.sh"
autoreconf -fi >/dev/null 2>&1
mkdir -p build
cd build
[ -f Makefile ] || "$top/configure" >/dev/null
make -j"$(nproc)" >/dev/null
cd "$top"
VTPMD="$top/build/vtpmd"
VTPMCTL="$top/build/vtpmctl -s $D/control.sock"

rm -rf "$D"
mkdir -p "$D"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    broker_stop
}
. "$top/tests/lib/broker.sh"
if "$PY" -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1",5672)))'; then
    echo "demo: something already listens on 127.0.0.1:5672 (conf/demo.yaml's broker); stop it first" >&2
    exit 1
fi
BROKER_PORT=5672
trap cleanup EXIT INT TERM
say "starting a private RabbitMQ on 127.0.0.1:5672"
broker_start "$D/broker"

say "starting vtpmd on conf/demo.yaml (log: $D/vtpmd.log)"
"$VTPMD" -c "$top/conf/demo.yaml" > "$D/vtpmd.log" 2>&1 &
pids="$pids $!"
"$PY" "$top/tests/tools/status_listener.py" --url "$BROKER_URL" --out "$D/status.jsonl" \
    > "$D/listener.log" 2>&1 &
pids="$pids $!"
i=0
until grep -q 'bus ready' "$D/vtpmd.log" 2>/dev/null && [ -f "$D/status.jsonl.ready" ]; do
    i=$((i + 1))
    [ $i -lt 300 ] || { tail -n 20 "$D/vtpmd.log"; exit 1; }
    sleep 0.1
done
$VTPMCTL health

show_status() {
    "$PY" - "$D/status.jsonl" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event_type"].startswith("vtpm.") and e["payload"]["instance_uuid"] == sys.argv[2]:
        p = e["payload"]
        print("  %-6s %-18s instance=%s vtpm=%s domain=%s state=%s %sms" % (
            e["priority"], e["event_type"], p["instance_uuid"][:8], p["vtpm_uuid"],
            p["vtpm_domain"], p["state"], p["duration_ms"]))
PY
}

U=$("$PY" -c 'import uuid; print(uuid.uuid4())')
say "Nova (its own code) builds instance $U on demo-compute"
"$PY" "$top/tests/tools/nova_emit.py" --url "$BROKER_URL" --host demo-compute \
    "create.start:$U" 2>/dev/null
$VTPMCTL wait "$U" 30
say "vtpmd's instances"
$VTPMCTL list
say "the vTPM stub domain, as libvirt has it now"
$VTPMCTL show "$U" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["domain_xml"])'
ls -l "$D/images"
"$PY" "$top/tests/tools/nova_emit.py" --url "$BROKER_URL" --host demo-compute \
    "create.end:$U" 2>/dev/null
sleep 0.5
say "status notifications received by an oslo.messaging listener"
show_status "$U"

say "Nova deletes instance $U"
"$PY" "$top/tests/tools/nova_emit.py" --url "$BROKER_URL" --host demo-compute \
    "delete:$U" 2>/dev/null
i=0
while $VTPMCTL show "$U" > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1
done
sleep 0.5
say "after the delete: libvirt's vtpmd domains, the images, the status"
$VTPMCTL domains
ls -l "$D/images"
show_status "$U"

say "stopping vtpmd"
set -- $pids
kill -TERM "$1"
wait "$1"
echo "vtpmd stopped cleanly"
