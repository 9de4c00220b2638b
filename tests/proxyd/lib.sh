# Helpers for vtpm-proxyd's integration tests: the vtpmmgr fake behind a
# pty, the real vtpm-proxyd binary on a private port and state_dir, and
# HTTP calls with curl. Source it after nothing else: it sources
# tests/lib/common.sh ($T, fail, pass, wait_for, add_cleanup, VALGRIND).
. "$(dirname "$0")/../lib/common.sh"

PROXYD=${VTPM_PROXYD:-$top_builddir/vtpm-proxyd}
FAKE="$top_srcdir/tests/proxyd/fake_vtpmmgr.py"
FAKE_PID=""
PROXYD_PID=""

# need CMD...: the test cannot run without them (a failure in CI).
need() {
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 && continue
        if [ "${CI:-}" = true ]; then
            echo "FAIL: $c is required" >&2
            exit 99
        fi
        echo "SKIP: $c not installed" >&2
        exit 77
    done
}
need curl "$PYTHON"
[ -x "$PROXYD" ] || fail "no vtpm-proxyd binary at $PROXYD"

# fake_start [FAKE ARGS...]: the fake vtpmmgr; its pty is $T/tpm0.
fake_start() {
    rm -f "$T/fake.out"
    "$PYTHON" "$FAKE" serve --link "$T/tpm0" --ctl "$T/fake.ctl" "$@" \
        > "$T/fake.out" 2>> "$T/fake.log" &
    FAKE_PID=$!
    wait_for "$T/fake.out" 'fake vtpmmgr ready' 20 || fail "the fake did not start"
}
fake_stop() {
    [ -n "$FAKE_PID" ] || return 0
    kill "$FAKE_PID" 2>/dev/null
    wait "$FAKE_PID" 2>/dev/null
    FAKE_PID=""
}
add_cleanup fake_stop

# fakectl COMMAND...: prints the fake's one-line reply.
fakectl() { "$PYTHON" "$FAKE" ctl "$T/fake.ctl" "$@"; }

# fake_live: the UUIDs vtpmmgr (the fake) holds in all groups, sorted.
fake_live() {
    fakectl list | "$PYTHON" -c '
import json, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # for grep -q downstream
s = json.load(sys.stdin)
for u in sorted(u for g in s["groups"] for u in g["vtpms"]):
    print(u)'
}

# fake_get KEY: a counter from the fake's list (forbidden, bad_requests...).
fake_get() {
    fakectl list | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# fake_count ORDINAL: how often the fake received it.
fake_count() {
    fakectl list | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["commands"].get(sys.argv[1], 0))' "$1"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
CONF="$T/proxyd.yaml"

# write_conf [YAML LINES...]: a configuration on the private port, the
# fake's pty and a private state_dir; extra top-level lines appended.
write_conf() {
    {
        echo "listen: 127.0.0.1:$PORT"
        echo "state_dir: $T/state"
        echo "log: {level: debug}"
        for l in "$@"; do echo "$l"; done
    } > "$CONF"
    grep -q '^vtpmmgr:' "$CONF" ||
        printf 'vtpmmgr:\n  device: %s\n  timeout: 1s\n' "$T/tpm0" >> "$CONF"
}

# proxyd_start: runs vtpm-proxyd (under $VALGRIND when set) and waits
# until it listens and its start-up reconcile is through (or has failed).
proxyd_start() {
    : > "$T/proxyd.log"
    $VALGRIND "$PROXYD" -c "$CONF" >> "$T/proxyd.log" 2>&1 &
    PROXYD_PID=$!
    _i=0
    while [ $_i -lt $((${1:-60} * 10)) ]; do
        grep -Eq 'reconciled group=|reconcile failed' "$T/proxyd.log" && return 0
        kill -0 "$PROXYD_PID" 2>/dev/null || fail "vtpm-proxyd exited at start"
        sleep 0.1
        _i=$((_i + 1))
    done
    fail "vtpm-proxyd did not reconcile at start"
}

# proxyd_stop: SIGTERM; fails unless it exits 0.
proxyd_stop() {
    [ -n "$PROXYD_PID" ] || return 0
    kill -TERM "$PROXYD_PID" 2>/dev/null
    wait "$PROXYD_PID"
    rc=$?
    PROXYD_PID=""
    [ $rc -eq 0 ] || fail "vtpm-proxyd exited $rc on SIGTERM"
}
proxyd_kill() {
    [ -n "$PROXYD_PID" ] || return 0
    kill -9 "$PROXYD_PID" 2>/dev/null
    wait "$PROXYD_PID" 2>/dev/null
    PROXYD_PID=""
}
add_cleanup proxyd_kill

# http METHOD PATH [BODY [CONTENT-TYPE]]: prints the status code; the body
# is in $T/body, the headers in $T/headers. CURL_OPTS adds options.
http() {
    if [ $# -ge 3 ]; then
        curl -s ${CURL_OPTS:-} -o "$T/body" -D "$T/headers" -w '%{http_code}' \
            -X "$1" -H "Content-Type: ${4:-application/json}" --data-binary "$3" \
            "${URL_BASE:-$BASE}$2"
    else
        curl -s ${CURL_OPTS:-} -o "$T/body" -D "$T/headers" -w '%{http_code}' \
            -X "$1" "${URL_BASE:-$BASE}$2"
    fi
}

# expect CODE METHOD PATH [BODY [CONTENT-TYPE]]
expect() {
    want=$1
    shift
    got=$(http "$@")
    [ "$got" = "$want" ] || fail "$1 $2: status $got, want $want: $(cat "$T/body" 2>/dev/null)"
}

# jget EXPR: evaluates a Python expression on the last body (as j).
jget() {
    "$PYTHON" -c 'import json, sys; j = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print(v if not isinstance(v, (list, dict)) else json.dumps(v))' \
        "$T/body" "$1"
}

# create INSTANCE [HOST]: POST /v1/vtpms, expects 201, prints the UUID.
create() {
    expect 201 POST /v1/vtpms "{\"instance_uuid\": \"$1\", \"host\": \"${2:-compute-1}\"}"
    jget 'j["uuid"]'
}

# records: the vTPM UUIDs of GET /v1/vtpms, sorted.
records() {
    expect 200 GET /v1/vtpms
    "$PYTHON" -c 'import json, sys
for u in sorted(v["uuid"] for v in json.load(open(sys.argv[1]))["vtpms"]):
    print(u)' "$T/body"
}

uuidgen_() { "$PYTHON" -c 'import uuid; print(uuid.uuid4())'; }

# The fake must never have seen GROUP_NEW or GROUP_DEL.
check_no_forbidden() {
    [ "$(fake_get forbidden)" = 0 ] || fail "vtpm-proxyd sent GROUP_NEW or GROUP_DEL"
}
