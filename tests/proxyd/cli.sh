#!/bin/sh
# vtpm-proxyd's command line contract (the same as vtpmd's): -V, -h, -t
# and the exit codes 0/1/2, FILE:LINE:COL errors, and start-up failures
# that exit 1 with a clear message.
. "$(dirname "$0")/lib.sh"

"$PROXYD" -V > "$T/v.out" || fail "-V exit $?"
grep -Eq '^vtpm-proxyd [0-9]+\.[0-9]+\.[0-9]+$' "$T/v.out" || fail "-V printed $(cat "$T/v.out")"
"$PROXYD" --help > "$T/h.out" || fail "--help exit $?"
grep -q -- '--check-config' "$T/h.out" || fail "help lacks --check-config"
grep -q 'vtpm-proxyd/vtpm-proxyd.yaml' "$T/h.out" || fail "help lacks the default path"
pass "version and help"

"$PROXYD" -c "$top_srcdir/conf/vtpm-proxyd.yaml" -t > "$T/t.out" 2>&1 ||
    fail "conf/vtpm-proxyd.yaml: exit $? $(cat "$T/t.out")"
pass "the shipped configuration is valid"

printf 'vtpmmgr:\n  group: 12345\norphans: sometimes\n' > "$T/bad.yaml"
"$PROXYD" -c "$T/bad.yaml" -t > "$T/bad.out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "invalid config: exit $rc, want 2"
grep -q "^$T/bad.yaml:3:10: orphans: 'sometimes'" "$T/bad.out" || fail "enum error: $(cat "$T/bad.out")"
printf 'vtpmmgr:\n  group: 12345\n' > "$T/bad-group.yaml"
"$PROXYD" -c "$T/bad-group.yaml" -t > "$T/bad.out" 2>&1
[ $? -eq 2 ] || fail "bad group: want exit 2"
grep -q "^$T/bad-group.yaml:2:10: vtpmmgr.group: '12345' is not a UUID" "$T/bad.out" ||
    fail "group error: $(cat "$T/bad.out")"
"$PROXYD" -c "$T/bad.yaml" > "$T/bad2.out" 2>&1
[ $? -eq 2 ] || fail "daemon with an invalid config: want exit 2"
"$PROXYD" -c "$T/missing.yaml" -t > "$T/m.out" 2>&1
[ $? -eq 2 ] || fail "missing config: want exit 2"
grep -q "^$T/missing.yaml:1:1: cannot open" "$T/m.out" || fail "missing: $(cat "$T/m.out")"
# YAML nested 50,000 levels deep: refused at the 65th level (the shared
# parser bounds the depth before building a tree).
"$PYTHON" -c "import sys; n=50000; sys.stdout.write('orphans: ' + '['*n + ']'*n + '\\n')" > "$T/deep.yaml"
"$PROXYD" -c "$T/deep.yaml" -t > "$T/deep.out" 2>&1
[ $? -eq 2 ] || fail "deep config: want exit 2"
grep -q "^$T/deep.yaml:1:73: nested deeper than 64 levels" "$T/deep.out" || fail "deep: $(cat "$T/deep.out")"
pass "invalid configurations exit 2 with FILE:LINE:COL"

"$PROXYD" --bogus > "$T/u.out" 2>&1
[ $? -eq 2 ] || fail "unknown option: want exit 2"
"$PROXYD" -l chatty -t > "$T/u.out" 2>&1
[ $? -eq 2 ] || fail "bad level: want exit 2"
pass "usage errors exit 2"

# Start-up failures are runtime failures: exit 1 with the reason.
fake_start
write_conf
"$PYTHON" -c 'import socket, time, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(5)' "$PORT" &
holder=$!
sleep 0.5
"$PROXYD" -c "$CONF" > "$T/busy.out" 2>&1
rc=$?
kill $holder 2>/dev/null
wait $holder 2>/dev/null
[ $rc -eq 1 ] || fail "port in use: exit $rc, want 1"
grep -q "cannot listen listen=127.0.0.1:$PORT" "$T/busy.out" || fail "port in use: $(cat "$T/busy.out")"

write_conf "tls: {cert_file: $T/none.crt, key_file: $T/none.key}"
"$PROXYD" -c "$CONF" > "$T/tls.out" 2>&1
[ $? -eq 1 ] || fail "missing TLS files: want exit 1"
grep -q "cannot load the TLS material: tls.cert_file $T/none.crt" "$T/tls.out" ||
    fail "missing TLS files: $(cat "$T/tls.out")"

write_conf
mkdir -p "$T/state/vtpms"
echo '{"version": 1' > "$T/state/vtpms/11111111-2222-4333-8444-555555555555.json"
"$PROXYD" -c "$CONF" > "$T/corrupt.out" 2>&1
[ $? -eq 1 ] || fail "corrupt record: want exit 1"
grep -q "corrupt record file=$T/state/vtpms/11111111-2222-4333-8444-555555555555.json" "$T/corrupt.out" ||
    fail "corrupt record: $(cat "$T/corrupt.out")"
rm -f "$T/state/vtpms/11111111-2222-4333-8444-555555555555.json"
pass "start-up failures exit 1 with the reason"

# Two services on one state_dir: the second refuses.
proxyd_start
"$PROXYD" -c "$CONF" > "$T/second.out" 2>&1
[ $? -eq 1 ] || fail "second instance: want exit 1"
grep -q "another vtpm-proxyd uses this state directory" "$T/second.out" ||
    fail "second instance: $(cat "$T/second.out")"
proxyd_stop
grep -q 'stopped' "$T/proxyd.log" || fail "no orderly stop"
pass "one service per state_dir; SIGTERM exits 0"
