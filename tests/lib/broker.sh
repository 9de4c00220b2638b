# Starts and stops a private RabbitMQ node for one test: loopback only, its
# own node directory, its own epmd port, so tests can run in parallel.
# Source it, then:  broker_start DIR  ...  broker_stop
# Sets BROKER_PORT, BROKER_URL (amqp://127.0.0.1:PORT/), BROKER_MGMT for
# rabbitmqctl (use broker_ctl ARGS...).
# In CI (CI=true) a missing broker is a failure (exit 99), never a skip.

# The packaged wrappers in /usr/sbin switch to the rabbitmq user; the
# scripts behind them run the node as whoever calls them.
RABBIT_BIN=/usr/lib/rabbitmq/bin

broker_free_port() {
    /usr/bin/python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

broker_ctl() {
    RABBITMQ_NODENAME="$BROKER_NODE" ERL_EPMD_PORT="$BROKER_EPMD_PORT" \
    RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia" RABBITMQ_LOG_BASE="$BROKER_DIR/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins" \
    HOME="$BROKER_DIR" \
        "$RABBIT_BIN/rabbitmqctl" -n "$BROKER_NODE" "$@"
}

# broker_server: runs the node of BROKER_* detached, its output added to
# $BROKER_DIR/start.log. The Erlang cookie lives in $HOME: keep it
# private to this node.
broker_server() {
    RABBITMQ_NODENAME="$BROKER_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$BROKER_PORT" RABBITMQ_DIST_PORT="$BROKER_DIST_PORT" \
    ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$BROKER_EPMD_PORT" \
    RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia" RABBITMQ_LOG_BASE="$BROKER_DIR/log" \
    RABBITMQ_PID_FILE="$BROKER_DIR/rabbit.pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    HOME="$BROKER_DIR" \
        "$RABBIT_BIN/rabbitmq-server" -detached >>"$BROKER_DIR/start.log" 2>&1
}

broker_start() {
    BROKER_DIR=$1
    if ! [ -x "$RABBIT_BIN/rabbitmq-server" ]; then
        echo "broker: rabbitmq-server is not installed (scripts/install-deps.sh)" >&2
        if [ "${CI:-}" = true ]; then exit 99; fi
        exit 77
    fi
    mkdir -p "$BROKER_DIR/mnesia" "$BROKER_DIR/log"
    : > "$BROKER_DIR/enabled_plugins"
    echo '[].' > "$BROKER_DIR/enabled_plugins"
    BROKER_PORT=${BROKER_PORT:-$(broker_free_port)}
    BROKER_DIST_PORT=$(broker_free_port)
    BROKER_EPMD_PORT=$(broker_free_port)
    BROKER_NODE="vtpmdtest$BROKER_PORT@localhost"
    BROKER_URL="amqp://127.0.0.1:$BROKER_PORT/"
    : > "$BROKER_DIR/start.log"
    broker_server
    if ! broker_wait; then
        echo "broker: RabbitMQ did not start; log:" >&2
        tail -n 30 "$BROKER_DIR"/log/*.log "$BROKER_DIR/start.log" >&2 2>/dev/null
        broker_stop
        exit 99
    fi
    export BROKER_PORT BROKER_URL BROKER_NODE BROKER_EPMD_PORT BROKER_DIR
}

broker_wait() {
    i=0
    while [ ! -s "$BROKER_DIR/rabbit.pid" ] && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    broker_ctl wait --timeout 60 "$BROKER_DIR/rabbit.pid" >/dev/null 2>&1 &&
        broker_ctl await_startup --timeout 60 >/dev/null 2>&1
}

# Stops the node (and its epmd); safe to call twice.
# Safe under set -e (scripts/demo.sh calls it from its EXIT trap): a
# process already gone is not a failure.
broker_stop() {
    [ -n "${BROKER_DIR:-}" ] || return 0
    if [ -s "$BROKER_DIR/rabbit.pid" ]; then
        broker_ctl stop "$BROKER_DIR/rabbit.pid" >/dev/null 2>&1 ||
            kill -9 "$(cat "$BROKER_DIR/rabbit.pid")" 2>/dev/null || true
        rm -f "$BROKER_DIR/rabbit.pid"
    fi
    pkill -f "epmd.*-port $BROKER_EPMD_PORT" 2>/dev/null || true
    for p in $(pgrep -x epmd 2>/dev/null); do
        if tr '\0' ' ' 2>/dev/null < /proc/$p/environ | grep -q "ERL_EPMD_PORT=$BROKER_EPMD_PORT "; then
            kill "$p" 2>/dev/null || true
        fi
    done
    return 0
}

# Restarts the same node (data kept): for broker-outage tests.
broker_restart_stop() {
    broker_ctl stop "$BROKER_DIR/rabbit.pid" >/dev/null 2>&1
    rm -f "$BROKER_DIR/rabbit.pid"
}
broker_restart_start() {
    broker_server
    broker_wait
}

# broker_test_start: a test's broker, in $T/broker (tests/lib/common.sh),
# stopped when the test exits. (scripts/demo.sh, without common.sh,
# calls broker_start and broker_stop itself.)
broker_test_start() {
    broker_start "$T/broker"
    add_cleanup broker_stop
}
