# Starts the fake Keylime-VM proxy (tests/tools/fake_proxy.py, documented
# at its top) for one test, and generates TLS material for it. Source
# tests/lib/common.sh first, then this file:
#
#   fake_proxy_start [fake_proxy.py options]   # e.g. --cert C --key K
#       sets FAKE_PROXY_PORT, FAKE_PROXY_URL (http(s)://127.0.0.1:PORT),
#       FAKE_PROXY_CTL (its always-plain-HTTP control port), FAKE_PROXY_PID;
#       registers its stop as a cleanup; log in $T/fake_proxy.log
#   fake_proxy_faults '{"fail_next": 2}'       # POST /_fake/faults
#   fake_proxy_reset                           # clears every fault switch
#   fake_proxy_outage SECONDS                  # listener closed for S s
#   fake_proxy_outage on|off
#   fake_proxy_state live                      # a value of /_fake/state:
#   fake_proxy_state counters.created          #   dotted path into it
#   fake_proxy_stop
#   tls_make_certs DIR                         # CA, server, client certs:
#       DIR/ca.pem, server.pem/server.key (127.0.0.1, ::1, localhost),
#       client.pem/client.key, wrong.pem/wrong.key (only wrong.example),
#       otherca.pem (an unrelated CA), expired.pem/expired.key (expired a
#       second after it was made)

FAKE_PROXY_PY="$top_srcdir/tests/tools/fake_proxy.py"

fake_proxy_start() {
    rm -f "$T/fake_proxy.port" "$T/fake_proxy.ctl"
    "$PYTHON" "$FAKE_PROXY_PY" --port-file "$T/fake_proxy.port" \
        --control-port-file "$T/fake_proxy.ctl" --log "$T/fake_proxy.log" "$@" &
    FAKE_PROXY_PID=$!
    add_cleanup fake_proxy_stop
    wait_for "$T/fake_proxy.ctl" '^[0-9]+$' 20 || fail "fake proxy did not start"
    wait_for "$T/fake_proxy.port" '^[0-9]+$' 20 || fail "fake proxy did not start"
    FAKE_PROXY_PORT=$(cat "$T/fake_proxy.port")
    FAKE_PROXY_CTL=$(cat "$T/fake_proxy.ctl")
    case " $* " in
    *" --cert "*) FAKE_PROXY_URL="https://127.0.0.1:$FAKE_PROXY_PORT" ;;
    *) FAKE_PROXY_URL="http://127.0.0.1:$FAKE_PROXY_PORT" ;;
    esac
    export FAKE_PROXY_PORT FAKE_PROXY_CTL FAKE_PROXY_URL
}

fake_proxy_stop() {
    if [ -n "${FAKE_PROXY_PID:-}" ]; then
        kill "$FAKE_PROXY_PID" 2>/dev/null || true
        wait "$FAKE_PROXY_PID" 2>/dev/null || true
        FAKE_PROXY_PID=
    fi
}

# fake_proxy_call METHOD PATH [JSON]: prints the answer body.
fake_proxy_call() {
    "$PYTHON" - "$FAKE_PROXY_CTL" "$1" "$2" "${3:-}" <<'PY'
import sys, urllib.request
port, method, path, body = sys.argv[1:5]
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), method=method,
                             data=body.encode() if body else None)
with urllib.request.urlopen(req, timeout=10) as r:
    sys.stdout.write(r.read().decode())
PY
}

fake_proxy_faults() { fake_proxy_call POST /_fake/faults "$1" > /dev/null || fail "fake proxy faults $1"; }
fake_proxy_reset() { fake_proxy_call POST /_fake/reset > /dev/null || fail "fake proxy reset"; }

fake_proxy_outage() {
    case $1 in
    on) fake_proxy_call POST /_fake/outage '{"on": true}' ;;
    off) fake_proxy_call POST /_fake/outage '{"on": false}' ;;
    *) fake_proxy_call POST /_fake/outage "{\"seconds\": $1}" ;;
    esac > /dev/null || fail "fake proxy outage $1"
    # The listener is closed (or reopened) by another thread: wait for it.
    _want=true
    [ "$1" = off ] && _want=false
    _i=0
    while [ "$(fake_proxy_state outage)" != "$_want" ] && [ $_i -lt 100 ]; do
        sleep 0.05
        _i=$((_i + 1))
    done
}

fake_proxy_state() {
    fake_proxy_call GET /_fake/state | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "$1"
}

tls_make_certs() {
    _d=$1
    mkdir -p "$_d"
    (
        cd "$_d" || exit 1
        set -e
        _ossl() { openssl "$@" > /dev/null 2>&1; }
        _ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=vtpmd test CA" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign
        _ossl req -x509 -newkey rsa:2048 -nodes -keyout otherca.key -out otherca.pem -days 2 \
            -subj "/CN=unrelated CA" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign
        # name SAN [EXTRA openssl x509 options]
        _leaf() {
            _n=$1 _san=$2
            shift 2
            _ossl req -newkey rsa:2048 -nodes -keyout "$_n.key" -out "$_n.csr" -subj "/CN=$_n"
            printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' \
                "$_san" > "$_n.ext"
            _ossl x509 -req -in "$_n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out "$_n.pem" -extfile "$_n.ext" "$@"
        }
        # Valid for 0 days: expired a second after it is made (first, so
        # that the others take that second).
        _leaf expired "IP:127.0.0.1,DNS:localhost" -days 0
        _leaf server "IP:127.0.0.1,IP:::1,DNS:localhost" -days 2
        _leaf client "DNS:compute-1.example" -days 2
        _leaf wrong "DNS:wrong.example" -days 2
        chmod 600 ./*.key
    ) || fail "cannot make test certificates with openssl"
}
