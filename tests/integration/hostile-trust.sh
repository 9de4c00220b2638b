#!/bin/sh
# Attacks on what vtpmd trusts, by another local user (a test user made
# here when run as root; CI runs as root): a control socket swapped for an
# impostor (vtpmctl refuses it), a socket directory others can write or a
# path pre-created there (-t and start refuse it, with FILE:LINE:COL), an
# image.dir that is a symlink or world-writable (-t and start refuse it),
# and YAML nested 50,000 levels deep at start and on reload (refused at
# once; on reload the daemon keeps answering and keeps its configuration).
. "$(dirname "$0")/../lib/common.sh"

VTPMCTL="$top_builddir/vtpmctl"
if [ "$(id -u)" != 0 ]; then
    [ "${CI:-}" = true ] && fail "CI runs this as root (it needs a second user)"
    echo "skip: needs root to act as a second user"
    exit 77
fi
EVIL=vtpmd-hostile
if ! id "$EVIL" > /dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$EVIL" 2>/dev/null ||
        id "$EVIL" > /dev/null 2>&1 || fail "cannot add the test user $EVIL"
fi
EUID_=$(id -u "$EVIL")
as_evil() { setpriv --reuid="$EVIL" --regid="$(id -g "$EVIL")" --clear-groups "$@"; }

# $T is root's; let the other user reach $T/pub (its own corner) and $T/run.
chmod 0711 "$T"
mkdir -m 0755 "$T/pub" "$T/run"
mkdir -m 0777 "$T/pub/evil"
chown "$EVIL" "$T/pub/evil"

# An impostor: answers every request with a healthy vtpmd's answer.
cat > "$T/pub/impostor.py" <<'PY'
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
s.listen(8)
open(sys.argv[2], 'w').close()
body = b'{"status": "ok", "bus": "ready", "libvirt": "connected", "instances": 0, "busy": 0}'
while True:
    c, _ = s.accept()
    try:
        c.recv(65536)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n'
                  b'Connection: close\r\n\r\n%s' % (len(body), body))
    except OSError:
        pass  # a client that hung up on us
    c.close()
PY
IMPOSTOR_PID=
impostor_start() { # PATH
    rm -f "$T/pub/impostor.ready"
    as_evil "$PYTHON" "$T/pub/impostor.py" "$1" "$T/pub/evil/impostor.ready" > "$T/impostor.log" 2>&1 &
    IMPOSTOR_PID=$!
    wait_for "$T/pub/evil/impostor.ready" . 10 > /dev/null 2>&1 ||
        [ -e "$T/pub/evil/impostor.ready" ] || fail "impostor did not start"
    rm -f "$T/pub/evil/impostor.ready"
}
impostor_stop() { [ -n "$IMPOSTOR_PID" ] && kill "$IMPOSTOR_PID" 2>/dev/null; IMPOSTOR_PID=; return 0; }
add_cleanup impostor_stop

write_config() { # FILE SOCKET IMAGEDIR [extra lines]
    _f=$1 _s=$2 _i=$3
    shift 3
    cat > "$_f" <<YAML
host: trust1
state_dir: $T/state
log: {level: info}
amqp: {urls: ['amqp://127.0.0.1:1/']}
vtpmmgr: {provider: local}
libvirt: {uri: 'test:///default'}
image:
  dir: $_i
control:
  socket: $_s
YAML
    for _l in "$@"; do printf '%s\n' "$_l" >> "$_f"; done
}

# check_refused CONFIG PATTERN WHAT: -t and start exit 2 with PATTERN.
check_refused() {
    "$VTPMD" -t -c "$1" > "$T/check.out" 2>&1
    _rc=$?
    [ $_rc = 2 ] || fail "$3: vtpmd -t exit $_rc, want 2: $(cat "$T/check.out")"
    grep -Eq -- "$2" "$T/check.out" || fail "$3: -t said: $(cat "$T/check.out")"
    timeout 60 "$VTPMD" -c "$1" > "$T/start.out" 2>&1
    _rc=$?
    [ $_rc = 2 ] || fail "$3: vtpmd start exit $_rc, want 2: $(cat "$T/start.out")"
    grep -Eq -- "$2" "$T/start.out" || fail "$3: start said: $(cat "$T/start.out")"
}

# 1. A socket directory another user can write: world-writable and sticky
# (another user can pre-create the path), world-writable, owned by that user.
mkdir -m 1777 "$T/pub/sticky"
write_config "$T/sticky.yaml" "$T/pub/sticky/control.sock" "$T/images"
check_refused "$T/sticky.yaml" \
    "^$T/sticky.yaml:10:11: control.socket: its directory $T/pub/sticky is writable by others" \
    "a sticky world-writable socket directory"
as_evil "$PYTHON" -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" \
    "$T/pub/sticky/control.sock" || fail "pre-create"
check_refused "$T/sticky.yaml" "control.socket: its directory $T/pub/sticky is writable by others" \
    "a socket pre-created by another user in a sticky directory"
write_config "$T/evil.yaml" "$T/pub/evil/control.sock" "$T/images"
check_refused "$T/evil.yaml" \
    "^$T/evil.yaml:10:11: control.socket: its directory $T/pub/evil is owned by uid $EUID_, not by vtpmd" \
    "a socket directory owned by another user"
mkdir -m 0775 "$T/pub/grp"
chgrp "$(id -g "$EVIL")" "$T/pub/grp"
write_config "$T/grp.yaml" "$T/pub/grp/control.sock" "$T/images"
check_refused "$T/grp.yaml" "control.socket: its directory $T/pub/grp is writable by group" \
    "a socket directory writable by another group"
pass "-t and start refuse a control socket directory another user can write"

# 2. image.dir a symlink, or world-writable: refused at -t and start.
mkdir -m 0700 "$T/realimages"
ln -s "$T/realimages" "$T/linkimages"
write_config "$T/imglink.yaml" "$T/run/control.sock" "$T/linkimages"
check_refused "$T/imglink.yaml" \
    "^$T/imglink.yaml:8:8: image.dir: image directory $T/linkimages is a symbolic link" \
    "a symlinked image.dir"
mkdir -m 0777 "$T/wwimages"
chmod 0777 "$T/wwimages"
write_config "$T/imgww.yaml" "$T/run/control.sock" "$T/wwimages"
check_refused "$T/imgww.yaml" "^$T/imgww.yaml:8:8: image.dir: .*writable" "a world-writable image.dir"
pass "-t and start refuse a symlinked or world-writable image.dir"

# 3. A stale socket of another user in vtpmd's own directory (moved there:
# the directory is vtpmd's), served or not: not taken for a running vtpmd.
impostor_start "$T/pub/evil/control.sock"
mv "$T/pub/evil/control.sock" "$T/run/control.sock"
write_config "$T/good.yaml" "$T/run/control.sock" "$T/images"
"$VTPMD" -t -c "$T/good.yaml" > "$T/check.out" 2>&1 || fail "good config refused: $(cat "$T/check.out")"
timeout 60 "$VTPMD" -c "$T/good.yaml" > "$T/start.out" 2>&1 && fail "vtpmd started over another user's socket"
grep -q "$T/run/control.sock is a socket owned by uid $EUID_, not by vtpmd" "$T/start.out" ||
    fail "another user's served socket: $(cat "$T/start.out")"
impostor_stop
timeout 60 "$VTPMD" -c "$T/good.yaml" > "$T/start.out" 2>&1 && fail "vtpmd started over another user's socket"
grep -q "$T/run/control.sock is a socket owned by uid $EUID_, not by vtpmd" "$T/start.out" ||
    fail "another user's stale socket: $(cat "$T/start.out")"
[ -S "$T/run/control.sock" ] || fail "another user's socket was removed"
rm -f "$T/run/control.sock"
pass "a socket of another user is not mistaken for a running vtpmd, nor removed"

# 4. The real vtpmd; a second one is told it runs; then its directory
# becomes writable (a mistake) and another user swaps in an impostor.
"$VTPMD" -c "$T/good.yaml" > "$T/daemon.log" 2>&1 &
pid=$!
stop_daemon() { kill -9 $pid 2>/dev/null; return 0; }
add_cleanup stop_daemon
wait_for "$T/daemon.log" 'started host=trust1' 60 || fail "vtpmd did not start"
"$VTPMCTL" -s "$T/run/control.sock" --json health > "$T/health.out" 2>&1
grep -q '"status"' "$T/health.out" || fail "health of the real vtpmd: $(cat "$T/health.out")"
timeout 60 "$VTPMD" -c "$T/good.yaml" > "$T/start.out" 2>&1 && fail "a second vtpmd started"
grep -q "$T/run/control.sock is in use by a running vtpmd (pid $pid)" "$T/start.out" ||
    fail "second vtpmd: $(cat "$T/start.out")"
pass "a second vtpmd is told the socket is in use by the running one"

# Raw requests on the control socket: the nil UUID is no instance (400, as
# any malformed UUID), and two Content-Length headers are a 400.
raw() { # REQUEST-HEAD (\r\n-separated, without the final blank line) -> status
    "$PYTHON" - "$T/run/control.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].replace("\\r\\n", "\r\n").encode() + b"\r\nConnection: close\r\n\r\n")
r = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    r += d
print(r.split(b" ")[1].decode() if r else "none")
PY
}
NIL=00000000-0000-0000-0000-000000000000
[ "$(raw "GET /v1/instances/$NIL HTTP/1.1\\r\\nHost: x")" = 400 ] || fail "nil UUID show: not 400"
[ "$(raw "GET /v1/instances/$NIL/wait?timeout=1 HTTP/1.1\\r\\nHost: x")" = 400 ] || fail "nil UUID wait: not 400"
[ "$(raw "GET /v1/instances/11111111-2222-3333-4444-555555555555 HTTP/1.1\\r\\nHost: x")" = 404 ] ||
    fail "a valid unknown UUID: not 404"
[ "$(raw "POST /v1/reload HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\nContent-Length: 0")" = 400 ] ||
    fail "two Content-Length headers: not 400"
[ "$(raw "GET /v1/health HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\ncontent-length: 5")" = 400 ] ||
    fail "two Content-Length headers (case differs): not 400"
grep -q 'configuration reloaded' "$T/daemon.log" && fail "a request with two Content-Length headers reloaded"
pass "control API: the nil UUID and two Content-Length headers are a 400"

chmod 0777 "$T/run"
as_evil mv "$T/run/control.sock" "$T/run/control.sock.real" || fail "rename as $EVIL"
impostor_start "$T/run/control.sock"
"$VTPMCTL" -s "$T/run/control.sock" health > "$T/ctl.out" 2>&1 &&
    fail "vtpmctl trusted an impostor: $(cat "$T/ctl.out")"
grep -q "served by uid $EUID_" "$T/ctl.out" || fail "vtpmctl: $(cat "$T/ctl.out")"
grep -q 'status=ok' "$T/ctl.out" && fail "vtpmctl printed the impostor's answer"
VTPMCTL_PEER_USER=root "$VTPMCTL" -s "$T/run/control.sock" health > "$T/ctl.out" 2>&1 &&
    fail "vtpmctl with VTPMCTL_PEER_USER=root trusted an impostor"
grep -q "served by uid $EUID_ .*not by root" "$T/ctl.out" || fail "vtpmctl peer-user: $(cat "$T/ctl.out")"
"$VTPMCTL" -s "$T/run/control.sock" wait 11111111-2222-3333-4444-555555555555 5 > "$T/ctl.out" 2>&1
[ $? = 1 ] || fail "vtpmctl wait on an impostor: not a failure: $(cat "$T/ctl.out")"
# Told to trust that user, it does (the option is honoured).
"$VTPMCTL" -s "$T/run/control.sock" --peer-user "$EVIL" health > "$T/ctl.out" 2>&1 ||
    fail "vtpmctl --peer-user $EVIL: $(cat "$T/ctl.out")"
"$VTPMCTL" -s "$T/run/control.sock.real" --json health > "$T/ctl.out" 2>&1
grep -q '"status"' "$T/ctl.out" || fail "the real socket: $(cat "$T/ctl.out")"
impostor_stop
chmod 0755 "$T/run"
as_evil true
mv "$T/run/control.sock.real" "$T/run/control.sock"
pass "vtpmctl refuses a socket served by another user"

# 5. YAML nested 50,000 levels deep: refused at -t and start at once, and
# on reload while the daemon answers and keeps its configuration.
deep() { "$PYTHON" -c "import sys; n=50000; sys.stdout.write('policy: ' + '['*n + ']'*n + '\n')"; }
cp "$T/good.yaml" "$T/deep.yaml"
deep >> "$T/deep.yaml"
check_refused "$T/deep.yaml" "^$T/deep.yaml:11:72: nested deeper than 64 levels" "50,000 levels at start"
cp "$T/good.yaml" "$T/good.yaml.orig"
deep >> "$T/good.yaml"
kill -HUP $pid
"$VTPMCTL" -s "$T/run/control.sock" --json health > "$T/health.out" 2>&1
grep -q '"status"' "$T/health.out" || fail "health during the reload: $(cat "$T/health.out")"
wait_for "$T/daemon.log" 'reload failed, keeping the running configuration' 60 ||
    fail "the deep reload was not refused"
grep -q "$T/good.yaml:11:72: nested deeper than 64 levels" "$T/daemon.log" ||
    fail "the deep reload lacks its FILE:LINE:COL error"
kill -0 $pid || fail "vtpmd died on the deep reload"
cp "$T/good.yaml.orig" "$T/good.yaml"
sed -i 's/host: trust1/host: trust2/' "$T/good.yaml"
kill -HUP $pid
wait_for "$T/daemon.log" 'configuration reloaded .*host=trust2' 30 || fail "a good reload after the deep one"
pass "50,000 levels of YAML: refused at -t, start and reload; vtpmd answers and keeps its configuration"

kill -TERM $pid
wait $pid
rc=$?
pid=
[ $rc = 0 ] || fail "vtpmd exit $rc after SIGTERM"
