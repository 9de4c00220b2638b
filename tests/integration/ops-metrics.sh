#!/bin/sh
# Prometheus metrics move as work is done: scraped before and after a
# create and a delete, over the control socket (vtpmctl metrics) and over
# TCP (control.metrics_listen), parsed with the Prometheus project's own
# Python parser (python3-prometheus-client).
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"

"$PYTHON" -c 'import prometheus_client.parser' 2>/dev/null || {
    [ "${CI:-}" = true ] && { echo "python3-prometheus-client missing" >&2; exit 99; }
    echo "python3-prometheus-client missing: skipped" >&2; exit 77
}
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
vtpmd_config "$T/vtpmd.yaml" "control: {socket: $T/control.sock, metrics_listen: '127.0.0.1:$PORT'}"
# vtpmd_config wrote a control line already: keep the last one only.
"$PYTHON" - "$T/vtpmd.yaml" <<'PY'
import sys
p = sys.argv[1]
lines = open(p).read().splitlines()
ctl = [l for l in lines if l.startswith("control:")]
out = [l for l in lines if not l.startswith("control:")] + ctl[-1:]
open(p, "w").write("\n".join(out) + "\n")
PY
vtpmd_start "$T/vtpmd.yaml"

# scrape NAME: both endpoints, parsed; the two must agree on counters.
scrape() {
    ctl metrics > "$T/$1.sock.txt" || fail "vtpmctl metrics"
    "$PYTHON" - "$PORT" "$T/$1.tcp.txt" <<'PY' || fail "GET /metrics over TCP"
import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10)
assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain"), r.headers
open(sys.argv[2], "wb").write(r.read())
PY
}

# value FILE 'name{labels}' → the sample's value, via the real parser.
value() {
    "$PYTHON" - "$1" "$2" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
want = sys.argv[2]
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + ("{" + ",".join('%s="%s"' % kv for kv in sorted(s.labels.items())) + "}" if s.labels else "")
        if key == want:
            print(int(s.value) if s.value == int(s.value) else s.value)
            sys.exit(0)
sys.exit("no sample " + want)
PY
}

# grew BEFORE AFTER SAMPLE [MIN]: the sample grew by at least MIN (1).
grew() {
    _b=$(value "$T/$1" "$3") || fail "before: $3"
    _a=$(value "$T/$2" "$3") || fail "after: $3"
    "$PYTHON" -c "import sys; sys.exit(0 if float('$_a') - float('$_b') >= ${4:-1} else 1)" ||
        fail "$3 did not grow: $_b -> $_a"
}

# Spare images are made ahead (image.spares, 32 by default): wait for one.
i=0
until ctl metrics | grep -Eq '^vtpmd_image_spares [1-9]'; do
    [ $i -lt 300 ] || fail "no spare image made: $(ctl metrics | grep image_spares)"
    sleep 0.1
    i=$((i + 1))
done
[ "$(ls -A "$T/images" | grep -Ec '^\.spare-[0-9a-f]{16}\.img$')" -ge 1 ] || fail "no spare on disk"

scrape before
for f in before.sock.txt before.tcp.txt; do
    [ "$(value "$T/$f" vtpmd_bus_up)" = 1 ] || fail "$f: bus_up"
    [ "$(value "$T/$f" vtpmd_libvirt_up)" = 1 ] || fail "$f: libvirt_up"
done

u=$(new_uuid)
nova "create.start:$u" "create.end:$u"
ctl wait "$u" 30 > /dev/null || fail "$u not ready"
queue_idle || fail "unacked"
scrape mid
[ "$(value "$T/mid.sock.txt" 'vtpmd_instances{state="ready"}')" = 1 ] || fail "ready gauge"
nova "delete:$u"
i=0
while ctl show "$u" > /dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
queue_idle || fail "unacked after delete"
scrape after

for t in sock tcp; do
    B=before.$t.txt A=after.$t.txt
    grew $B $A 'vtpmd_notifications_total{outcome="relevant"}' 4
    grew $B $A 'vtpmd_provisions_total{outcome="ok"}'
    grew $B $A 'vtpmd_images_total{source="spare"}'
    [ "$(value "$T/$A" 'vtpmd_images_total{source="made"}')" = 0 ] || fail "$t: image made, not taken"
    grew $B $A 'vtpmd_teardowns_total{outcome="ok"}'
    grew $B $A vtpmd_vtpmmgr_requests_total
    grew $B $A vtpmd_provision_seconds_count
    grew $B $A 'vtpmd_provision_seconds_bucket{le="+Inf"}'
    grew $B $A vtpmd_provision_seconds_sum 0.000001
    [ "$(value "$T/$A" 'vtpmd_instances{state="ready"}')" = 0 ] || fail "$t: ready gauge after delete"
    [ "$(value "$T/$A" 'vtpmd_provisions_total{outcome="failed"}')" = 0 ] || fail "$t: failures"
done
pass "counters, gauges and the latency histogram move, same over the socket and TCP; the image was a spare"

# Malformed input is counted.
"$PYTHON" - "$BROKER_URL" <<'PY' || fail "raw publish"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
c.channel().basic_publish("nova", "notifications.info", b"{not json")
c.close()
PY
queue_idle || fail "malformed: unacked"
scrape bad
grew after.sock.txt bad.sock.txt 'vtpmd_notifications_total{outcome="malformed"}'
pass "malformed notifications counted"

# Only /metrics over TCP: the control API stays on the UNIX socket.
"$PYTHON" - "$PORT" <<'PY' || fail "control API reachable over TCP"
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:%s/v1/instances" % sys.argv[1], timeout=10)
except urllib.error.HTTPError as e:
    assert e.code in (403, 404), e.code
    sys.exit(0)
sys.exit("the control API answered over TCP")
PY
pass "TCP serves /metrics only"
vtpmd_stop
