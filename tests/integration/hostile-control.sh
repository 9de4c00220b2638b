#!/bin/sh
# Hostile clients against the real vtpmd started under a lowered
# descriptor limit (prlimit --nofile=128): connection floods on the control
# socket and on the metrics port, slow and idle clients, and 300 abandoned
# waits. During and after each flood a create and a delete (Nova's own
# code over a real RabbitMQ) still complete, nothing ends failed, and
# vtpmd's CPU time (/proc/PID/stat) and log lines per second stay bounded.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_start "$T/broker"
add_cleanup broker_stop
. "$top_srcdir/tests/lib/vtpmd.sh"

if ! command -v prlimit > /dev/null 2>&1; then
    [ "${CI:-}" = true ] && fail "prlimit (util-linux) is required"
    echo "SKIP: prlimit not installed" >&2
    exit 77
fi
HOSTILE="$TOOLS/hostile_client.py"
HZ=$(getconf CLK_TCK)
MPORT=$(broker_free_port)

# conf NOFILE_CONTROL_LINE [more lines]: vtpmd's config with these limits.
conf() {
    vtpmd_config "$T/vtpmd.yaml" "$@"
    # image.spares 0: every create opens the image directory and makes
    # its image while the flood holds descriptors.
    sed -i '/^control: {socket: [^,]*}$/d; /^image: {dir: [^,]*}$/d' "$T/vtpmd.yaml"
    echo "image: {dir: $T/images, spares: 0}" >> "$T/vtpmd.yaml"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$VTPMD_PID/stat"; }
nfds() { ls "/proc/$VTPMD_PID/fd" | wc -l; }
log_lines() { wc -l < "$T/vtpmd.log"; }
now() { date +%s.%N; }

# create_delete LABEL: a create then a delete complete through the bus
# (status notifications; the control socket may be the flooded one).
create_delete() {
    u=$(new_uuid)
    # One run of Nova's code (it takes seconds to start): the delete is
    # handled once the create is done.
    nova "create.start:$u" "create.end:$u" "delete:$u"
    wait_status vtpm.create.end "$u" 1 90 || fail "$1: no vtpm.create.end for $u"
    wait_status vtpm.delete.end "$u" 1 90 || fail "$1: no vtpm.delete.end for $u"
    [ "$(status_count vtpm.create.error "$u")" = 0 ] || fail "$1: $u ended failed"
}

# bounded LABEL L0 C0 T0: vtpmd's log lines per second and CPU time over
# the window since (L0, C0, T0) stay small. Before the fix a flood made
# libevent's accept spin: ~20,000 log lines per second and a busy CPU.
bounded() {
    _l=$(( $(log_lines) - $2 ))
    _c=$(( $(cpu_ticks) - $3 ))
    _d=$(awk -v a="$(now)" -v b="$4" 'BEGIN { printf "%.1f", a - b }')
    echo "# $1: ${_d}s, $_l log lines, $_c CPU ticks (HZ $HZ), $(nfds) descriptors now"
    # Some 30 lines per create and delete at debug level, plus one
    # rate-limited line per 10 s per kind of trouble.
    awk -v l="$_l" -v d="$_d" 'BEGIN { exit !(l <= 100 + 2 * d) }' || fail "$1: $_l log lines in ${_d}s"
    # The create and delete cost a few ticks; a spinning loop costs most
    # of a core.
    awk -v c="$_c" -v hz="$HZ" -v d="$_d" 'BEGIN { exit !(c <= hz / 2 + hz * d / 20) }' ||
        fail "$1: $_c CPU ticks in ${_d}s"
}

# flood LABEL CLIENT_ARGS...: holds a flood while a create and a delete
# complete, then checks what the clients got and what vtpmd spent.
flood() {
    _label=$1
    shift
    rm -f "$T/ready" "$T/stop"
    l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
    "$PYTHON" "$HOSTILE" flood "$@" --hold 110 --ready "$T/ready" --stop "$T/stop" \
        > "$T/flood.json" 2> "$T/flood.err" &
    _fp=$!
    wait_for "$T/ready" . 60 || fail "$_label: the flood did not start"
    [ "$(nfds)" -lt 128 ] || fail "$_label: vtpmd at its descriptor limit ($(nfds))"
    create_delete "$_label (during)"
    touch "$T/stop"
    wait "$_fp"
    cat "$T/flood.json"
    bounded "$_label" "$l0" "$c0" "$t0"
}

json() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$T/flood.json"; }

listener_start
# The floods hold their connections: long timeouts first.
conf "control: {socket: $T/control.sock, metrics_listen: '127.0.0.1:$MPORT', max_connections: 40, idle_timeout: 5m, header_timeout: 5m, request_timeout: 20s, max_waiters: 20}"
VALGRIND="prlimit --nofile=128:128"
vtpmd_start "$T/vtpmd.yaml"
VALGRIND=
base_fds=$(nfds)
echo "# vtpmd pid $VTPMD_PID: $base_fds descriptors at rest, limit 128"

# 1. Control socket: 300 connections held, the cap is 40.
flood control --unix "$T/control.sock" --count 300
[ "$(json 'd["opened"]')" -ge 250 ] || fail "control: the flood opened too few"
[ "$(json 'd["still_open"]')" -ge 30 ] || fail "control: the accepted connections were not held"
[ "$(json 'd["statuses"].get("503", 0)')" -ge 200 ] || fail "control: clients beyond the cap not refused with 503"
create_delete "control (after)"
pass "control socket flood: refused beyond the cap, provisioning unhurt, CPU and log bounded"

# 2. The metrics port, the same.
flood metrics --tcp "127.0.0.1:$MPORT" --count 300
[ "$(json 'd["statuses"].get("503", 0)')" -ge 200 ] || fail "metrics: clients beyond the cap not refused with 503"
create_delete "metrics (after)"
pass "metrics port flood: refused beyond the cap, provisioning unhurt, CPU and log bounded"

# 3. Both at once, past the descriptor limit if nothing capped them.
rm -f "$T/stop"
"$PYTHON" "$HOSTILE" flood --tcp "127.0.0.1:$MPORT" --count 200 --hold 110 --stop "$T/stop" \
    > "$T/flood2.json" 2>&1 &
fp2=$!
flood both --unix "$T/control.sock" --count 200
wait "$fp2"
create_delete "both (after)"
pass "both listeners flooded at once: provisioning unhurt"

[ "$(json 'd["still_open"]')" -ge 30 ] || fail "both: the accepted connections were not held"

# 4. Slow clients (half a request line, then nothing) and idle ones are
# closed by the header and idle timeouts (short ones now, by a reload):
# the clients see every one of their connections closed by vtpmd before
# their own deadline.
conf "control: {socket: $T/control.sock, metrics_listen: '127.0.0.1:$MPORT', max_connections: 40, idle_timeout: 3s, header_timeout: 2s, request_timeout: 20s, max_waiters: 20}"
ctl reload > /dev/null || fail "reload"
for mode in --half ""; do
    l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
    "$PYTHON" "$HOSTILE" flood --unix "$T/control.sock" --count 30 --hold 60 $mode > "$T/flood.json" ||
        fail "slow clients ($mode): client failed"
    cat "$T/flood.json"
    [ "$(json 'd["still_open"]')" = 0 ] || fail "slow clients ($mode): connections left open by vtpmd"
    [ "$(json 'd["refused"]')" = 30 ] || fail "slow clients ($mode): not all closed"
    bounded "slow clients $mode" "$l0" "$c0" "$t0"
done
ctl metrics | grep -E '^vtpmd_control_timeouts_total\{listener="control"\} [1-9]' > /dev/null ||
    fail "timeouts not counted: $(ctl metrics | grep timeouts)"
pass "slow and idle clients closed by the header and idle timeouts"

# Descriptors back to where they were; the counters in /metrics.
i=0
while [ "$(nfds)" -gt $((base_fds + 4)) ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(nfds)" -le $((base_fds + 4)) ] || fail "descriptors not released: $(nfds) (at rest $base_fds)"
ctl metrics > "$T/metrics.txt" || fail "metrics"
grep -E '^vtpmd_control_connections_total\{listener="control",outcome="refused"\} [1-9]' "$T/metrics.txt" > /dev/null ||
    fail "control refusals not counted"
grep -E '^vtpmd_control_connections_total\{listener="metrics",outcome="refused"\} [1-9]' "$T/metrics.txt" > /dev/null ||
    fail "metrics refusals not counted"
grep -E '^vtpmd_control_connections\{listener="control"\} 1$' "$T/metrics.txt" > /dev/null ||
    fail "open connections: $(grep '^vtpmd_control_connections{' "$T/metrics.txt")"
ctl list --json 2>/dev/null | grep -q '"failed"' && fail "an instance ended failed"
pass "descriptors released, refusals and timeouts in /metrics"
vtpmd_stop

# 5. Abandoned waits: 300 long polls on an instance that stays
# provisioning (its proxy is unreachable, so it retries), then every
# client closes. vtpmd must drop each wait at once, not when the instance
# settles: descriptors fall back and the waiters gauge reads 0.
DEAD=$(broker_free_port)
conf "control: {socket: $T/control.sock, max_connections: 400, max_waiters: 300}" \
    "vtpmmgr: {provider: keylime-proxy, url: 'http://127.0.0.1:$DEAD/', retry_for: 10m, timeout: 1s}"
VALGRIND="prlimit --nofile=1024:1024"
vtpmd_start "$T/vtpmd.yaml"
VALGRIND=
base_fds=$(nfds)
u=$(new_uuid)
nova "create.start:$u"
i=0
until [ "$(json_field "$u" state 2>/dev/null)" = provisioning ] || [ $i -ge 300 ]; do sleep 0.2; i=$((i + 1)); done
[ "$(json_field "$u" state)" = provisioning ] || fail "waiters: $u not provisioning"
l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
"$PYTHON" "$HOSTILE" waiters --unix "$T/control.sock" --uuid "$u" --count 330 --hold 3 \
    --ready "$T/wready" > "$T/waiters.json" 2>&1 &
wp=$!
wait_for "$T/wready" . 60 || fail "waiters: client did not start"
held=$(nfds)
ctl metrics | grep -E '^vtpmd_control_waiters 300$' > /dev/null ||
    fail "waiters: not 300 waiting: $(ctl metrics | grep '^vtpmd_control_waiters')"
wait "$wp"
cat "$T/waiters.json"
"$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['answered'].get('503') == 30 else 1)" \
    "$T/waiters.json" || fail "waiters beyond control.max_waiters not refused with 503"
i=0
while [ "$(nfds)" -gt $((base_fds + 4)) ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "# waiters: $base_fds descriptors at rest, $held with 300 waits, $(nfds) after they left"
[ "$held" -ge $((base_fds + 300)) ] || fail "waiters: the waits did not hold descriptors ($held)"
[ "$(nfds)" -le $((base_fds + 4)) ] || fail "waiters: descriptors not released ($(nfds), at rest $base_fds)"
[ "$(json_field "$u" state)" = provisioning ] || fail "waiters: $u settled; the test proves nothing"
ctl metrics > "$T/metrics.txt"
grep -E '^vtpmd_control_waiters 0$' "$T/metrics.txt" > /dev/null || fail "waiters gauge not 0"
grep -E '^vtpmd_control_abandoned_total\{listener="control"\} 300$' "$T/metrics.txt" > /dev/null ||
    fail "abandoned waits: $(grep abandoned "$T/metrics.txt")"
bounded "abandoned waits" "$l0" "$c0" "$t0"
# The hook's own wait still works afterwards.
ctl wait "$u" 1 > /dev/null 2>&1
[ $? = 0 ] && fail "wait on a provisioning instance answered ready"
pass "300 abandoned waits dropped at once, descriptors released"
vtpmd_stop

# 6. A cap above the descriptor limit (misconfigured): accept() runs out
# of descriptors. vtpmd must not spin (one log line per 10 s, a reserved
# descriptor to take the waiting client off the backlog, a paused
# listener), and a create that meanwhile cannot open its image directory
# is retried as a transient error, not failed: it completes once the
# flood is gone.
conf "control: {socket: $T/control.sock, max_connections: 1000}"
VALGRIND="prlimit --nofile=128:128"
vtpmd_start "$T/vtpmd.yaml"
VALGRIND=
grep -q 'descriptor limit is below' "$T/vtpmd.log" || fail "no warning about the caps and the limit"
l0=$(log_lines) c0=$(cpu_ticks) t0=$(now)
rm -f "$T/ready" "$T/stop"
"$PYTHON" "$HOSTILE" flood --unix "$T/control.sock" --count 300 --hold 110 \
    --ready "$T/ready" --stop "$T/stop" > "$T/flood.json" 2> "$T/flood.err" &
fp=$!
wait_for "$T/ready" . 60 || fail "emfile: the flood did not start"
u=$(new_uuid)
nova "create.start:$u" "create.end:$u"
wait_for "$T/vtpmd.log" "provisioning instance=$u" 60 || fail "emfile: no provisioning"
# The build step meets EMFILE and is retried (within vtpmmgr.retry_for).
i=0
while [ "$(nfds)" -ge 126 ] && [ $i -lt 30 ] && ! grep -q "instance ready instance=$u" "$T/vtpmd.log"; do
    sleep 0.2
    i=$((i + 1))
done
touch "$T/stop"
wait "$fp"
cat "$T/flood.json"
bounded "descriptors exhausted" "$l0" "$c0" "$t0"
wait_status vtpm.create.end "$u" 1 120 || fail "emfile: $u did not complete after the flood"
[ "$(status_count vtpm.create.error "$u")" = 0 ] || fail "emfile: $u ended failed"
ctl metrics > "$T/metrics.txt"
grep -E '^vtpmd_control_accept_errors_total\{listener="control"\} [1-9]' "$T/metrics.txt" > /dev/null ||
    fail "emfile: accept errors not counted"
grep -c 'accept failed, pausing the listener' "$T/vtpmd.log" | awk '{ exit !($1 >= 1 && $1 <= 20) }' ||
    fail "emfile: accept failures not logged once per 10 s"
echo "# emfile: $(grep -E '^vtpmd_(control_accept_errors_total\{listener="control"\}|retries_total\{kind="step"\})' "$T/metrics.txt" | tr '\n' ' ')"
nova "delete:$u"
wait_status vtpm.delete.end "$u" 1 90 || fail "emfile: no delete"
pass "descriptors exhausted: no spinning, the create retried and completed"
vtpmd_stop
