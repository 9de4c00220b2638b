# Helpers for the bus-*.sh tests (sourced, not a test itself).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/broker.sh"

BUS_PEER="$top_builddir/tests/tools/bus_peer"
TOOLS="$top_srcdir/tests/tools"

# bus_config FILE URL [YAML lines...]: a vtpmd configuration for this test.
bus_config() {
    _f=$1 _u=$2
    shift 2
    {
        echo "host: testhost"
        echo "state_dir: $T/state"
        echo "log: {level: info}"
        echo "vtpmmgr: {provider: local}"
        echo "image: {dir: $T/images}"
        echo "libvirt: {uri: 'test:///default', require_vtpm: false}"
        echo "control: {socket: $T/control.sock}"
        echo "amqp:"
        echo "  urls: ['$_u']"
        for _l in "$@"; do echo "$_l"; done
    } > "$_f"
    chmod 600 "$_f"
}

# amqp ARGS...: tests/tools/bus_amqp.py against the test's broker.
amqp() { "$PYTHON" "$TOOLS/bus_amqp.py" --url "$BROKER_URL" "$@"; }

# start_peer NAME ARGS...: bus_peer in the background; its events go to
# $T/NAME-events.log, its log to $T/NAME.log. Sets PEER_PID.
start_peer() {
    _n=$1
    shift
    ${PEER_VALGRIND:-} "$BUS_PEER" "$@" > "$T/$_n-events.log" 2> "$T/$_n.log" &
    PEER_PID=$!
    PEER_PIDS="${PEER_PIDS:-} $PEER_PID"
}
kill_peers() { for _p in ${PEER_PIDS:-}; do kill -9 "$_p" 2>/dev/null; done; return 0; }
add_cleanup kill_peers

# stop_peer PID: SIGTERM, and the exit status must be 0.
stop_peer() {
    kill -TERM "$1"
    wait "$1"
    _rc=$?
    [ $_rc -eq 0 ] || fail "peer exited with status $_rc (42: valgrind found errors)"
}

# start_proxy TARGET_PORT: tests/tools/bus_proxy.py; sets PROXY_PORT,
# PROXY_URL. proxy_cmd COMMAND sends it a command.
start_proxy() {
    "$PYTHON" "$TOOLS/bus_proxy.py" --listen-port-file "$T/proxy.port" \
        --target "127.0.0.1:$1" --control "$T/proxy.cmd" > "$T/proxy.log" 2>&1 &
    PROXY_PID=$!
    add_cleanup kill_proxy
    _i=0
    while [ ! -s "$T/proxy.port" ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
    PROXY_PORT=$(cat "$T/proxy.port") || fail "proxy did not start"
    PROXY_URL="amqp://127.0.0.1:$PROXY_PORT/"
}
kill_proxy() { kill "$PROXY_PID" 2>/dev/null; return 0; }
proxy_cmd() {
    echo "$1" > "$T/proxy.cmd.tmp" && mv "$T/proxy.cmd.tmp" "$T/proxy.cmd"
    _i=0
    while [ -e "$T/proxy.cmd" ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
}

# queue_field QUEUE COLUMN: a column of rabbitmqctl list_queues for QUEUE.
queue_field() {
    broker_ctl list_queues -q name "$2" 2>/dev/null | awk -v q="$1" '$1 == q { print $2 }'
}

# wait_queue QUEUE COLUMN VALUE SECS
wait_queue() {
    _i=0
    while [ $_i -lt $(($4 * 5)) ]; do
        [ "$(queue_field "$1" "$2")" = "$3" ] && return 0
        sleep 0.2
        _i=$((_i + 1))
    done
    echo "queue $1: $2 is $(queue_field "$1" "$2"), expected $3" >&2
    return 1
}

# BUS_TEST_KEEP=DIR keeps the logs of a run (debugging).
keep_logs() { [ -n "${BUS_TEST_KEEP:-}" ] && mkdir -p "$BUS_TEST_KEEP" && cp "$T"/*.log "$BUS_TEST_KEEP"/ 2>/dev/null; return 0; }
add_cleanup keep_logs
