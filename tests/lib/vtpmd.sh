# Runs the real vtpmd for a test, with its peers: a private RabbitMQ
# (tests/lib/broker.sh), an oslo.messaging listener for status
# notifications and Nova's own code emitting notifications.
# Source after common.sh and broker.sh, and after broker_start.
#
#   vtpmd_config FILE [extra YAML lines...]   writes a config for host cmp1
#   vtpmd_start FILE                          starts it ($VTPMD_PID, log $T/vtpmd.log)
#   vtpmd_stop                                SIGTERM, waits, checks exit 0
#   listener_start                            status listener -> $T/status.jsonl
#   nova EVENT:UUID[:k=v,...] ...             emits through python3-nova
#   ctl ARGS...                               vtpmctl against the daemon's socket
#   wait_status EVENT UUID [N] [SECS]         waits for N status events
#   queue_idle [SECS]                         vtpmd's queue: 0 ready, 0 unacked
#   vtpmd_diag                                what vtpmd is doing (after a failure)

VTPMCTL="$top_builddir/vtpmctl"
TOOLS="$top_srcdir/tests/tools"
VTPMD_HOST=cmp1

vtpmd_config() {
    _f=$1
    shift
    cat > "$_f" <<YAML
host: $VTPMD_HOST
state_dir: $T/state
log: {level: debug}
amqp: {urls: ['$BROKER_URL'], heartbeat: 10s}
image: {dir: $T/images}
libvirt: {uri: 'test:///default', require_vtpm: false}
control: {socket: $T/control.sock}
YAML
    for _l in "$@"; do printf '%s\n' "$_l" >> "$_f"; done
    grep -q '^vtpmmgr:' "$_f" || echo 'vtpmmgr: {provider: local}' >> "$_f"
}

vtpmd_start() {
    : > "$T/vtpmd.log.mark"
    ${VALGRIND:-} "$VTPMD" -c "$1" >> "$T/vtpmd.log" 2>&1 &
    VTPMD_PID=$!
    add_cleanup vtpmd_kill
    _n=$(count_matches "$T/vtpmd.log" 'bus ready')
    wait_count "$T/vtpmd.log" 'bus ready' $((_n + 1)) 60 || { vtpmd_diag; fail "vtpmd did not get ready"; }
}

# vtpmd_diag: after a failure, whether vtpmd still runs, its health and,
# with gdb there, every thread's stack (a hang shows where it waits).
vtpmd_diag() {
    [ -n "${VTPMD_PID:-}" ] || return 0
    if ! kill -0 "$VTPMD_PID" 2>/dev/null; then
        wait "$VTPMD_PID" 2>/dev/null
        echo "# vtpmd (pid $VTPMD_PID) is gone: exit status $? (128+N: signal N)" >&2
        return 0
    fi
    echo "# vtpmd (pid $VTPMD_PID) runs; health: $(timeout 10 "$VTPMCTL" -s "$T/control.sock" --json health 2>&1)" >&2
    if command -v gdb > /dev/null 2>&1; then
        timeout 60 gdb -p "$VTPMD_PID" -batch -nx -ex 'thread apply all bt' 2>/dev/null |
            grep -E '^(Thread|#)' | cut -c1-160 >&2
    fi
    return 0
}

vtpmd_kill() { [ -n "${VTPMD_PID:-}" ] && kill -9 "$VTPMD_PID" 2>/dev/null; return 0; }

vtpmd_stop() {
    kill -TERM "$VTPMD_PID"
    wait "$VTPMD_PID"
    _rc=$?
    VTPMD_PID=
    [ $_rc -eq 0 ] || fail "vtpmd exit status $_rc after SIGTERM"
}

listener_start() {
    "$PYTHON" "$TOOLS/status_listener.py" --url "$BROKER_URL" --out "$T/status.jsonl" \
        > "$T/listener.log" 2>&1 &
    LISTENER_PID=$!
    add_cleanup listener_stop
    _i=0
    while [ ! -f "$T/status.jsonl.ready" ] && [ $_i -lt 300 ]; do sleep 0.1; _i=$((_i + 1)); done
    [ -f "$T/status.jsonl.ready" ] || fail "status listener did not start"
    touch "$T/status.jsonl"
}

# listener_stop: SIGTERM, then up to 5 s for its graceful stop (before
# the broker goes: else its log fills with reconnect attempts).
listener_stop() {
    [ -n "${LISTENER_PID:-}" ] || return 0
    kill "$LISTENER_PID" 2>/dev/null
    _i=0
    # Gone, or a zombie (state Z) until this shell waits for it.
    while [ "$(sed 's/.*) //' "/proc/$LISTENER_PID/stat" 2>/dev/null | cut -c1)" != Z ] &&
          [ -e "/proc/$LISTENER_PID" ] && [ $_i -lt 50 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    kill -9 "$LISTENER_PID" 2>/dev/null
    LISTENER_PID=
    return 0
}

nova() {
    "$PYTHON" "$TOOLS/nova_emit.py" --url "$BROKER_URL" --host "$VTPMD_HOST" ${NOVA_FORMAT:+--format "$NOVA_FORMAT"} "$@" \
        >> "$T/nova.log" 2>&1 || fail "nova_emit failed: $(tail -n 5 "$T/nova.log")"
}

ctl() { "$VTPMCTL" -s "$T/control.sock" "$@"; }

wait_status() {
    wait_count "$T/status.jsonl" "\"event_type\": \"$1\".*\"instance_uuid\": \"$2\"" "${3:-1}" "${4:-30}"
}

status_count() {
    count_matches "$T/status.jsonl" "\"event_type\": \"$1\".*\"instance_uuid\": \"$2\""
}

# vtpmd's queue holds nothing: every notification was acked.
queue_idle() {
    # A deadline, not a count: one rabbitmqctl call takes a second or
    # more on a loaded machine.
    _end=$(($(date +%s) + ${1:-20}))
    while :; do
        _q=$(broker_ctl list_queues -q name messages_ready messages_unacknowledged 2>/dev/null |
             awk -v q="vtpmd.$VTPMD_HOST" '$1 == q { print $2 + $3 }')
        [ "$_q" = 0 ] && return 0
        [ "$(date +%s)" -ge "$_end" ] && break
        sleep 0.1
    done
    echo "vtpmd.$VTPMD_HOST still holds messages after ${1:-20} s: $(broker_ctl list_queues -q name messages_ready messages_unacknowledged)" >&2
    return 1
}

new_uuid() { "$PYTHON" -c 'import uuid; print(uuid.uuid4())'; }

# JSON field of vtpmctl show: json_field UUID FIELD
json_field() {
    ctl --json show "$1" | "$PYTHON" -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"
}
