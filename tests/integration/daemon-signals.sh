#!/bin/sh
# The real binary: starts on a configuration, reloads on SIGHUP (a good
# file is swapped in, a broken one is logged and the running one stays),
# stops cleanly on SIGTERM with exit 0. Runs under valgrind when present
# (always in CI): no leak, no invalid access.
. "$(dirname "$0")/../lib/common.sh"
use_valgrind

cat > "$T/vtpmd.yaml" <<YAML
host: sigtest
state_dir: $T/state
log: {level: info}
amqp: {urls: ['amqp://127.0.0.1:1/']}
vtpmmgr: {provider: local}
image: {dir: $T/images}
libvirt: {uri: 'test:///default', require_vtpm: false}
control: {socket: $T/control.sock}
YAML

$VALGRIND "$VTPMD" -c "$T/vtpmd.yaml" > "$T/daemon.log" 2>&1 &
pid=$!
add_cleanup stop_daemon
stop_daemon() { kill -9 $pid 2>/dev/null; }
wait_for "$T/daemon.log" 'started host=sigtest' 60 || fail "daemon did not start"
pass "started"

# Good reload: the new host name and log level take effect.
sed -i 's/host: sigtest/host: sigtest2/; s/level: info/level: debug/' "$T/vtpmd.yaml"
kill -HUP $pid
wait_for "$T/daemon.log" 'configuration reloaded .*host=sigtest2' 30 || fail "good reload not applied"
pass "reload with a good file"

# Broken reload: errors with position, the running configuration stays.
cp "$T/vtpmd.yaml" "$T/good.yaml"
printf 'amqp:\n  prefetch: -1\n' >> "$T/vtpmd.yaml"
kill -HUP $pid
wait_for "$T/daemon.log" 'reload failed, keeping the running configuration' 30 || fail "bad reload not reported"
grep -q "$T/vtpmd.yaml:.*duplicate key" "$T/daemon.log" || fail "bad reload lacks FILE:LINE:COL error"
kill -0 $pid || fail "daemon died on a bad reload"
cp "$T/good.yaml" "$T/vtpmd.yaml"
kill -HUP $pid
wait_count "$T/daemon.log" 'configuration reloaded' 2 30 || fail "second good reload not applied"
pass "reload with a broken file keeps running"

# What is read only at start is said so, not silently ignored.
grep -q 'restarts' "$T/daemon.log" && fail "restart warning without a change"
sed -i "s|libvirt: {uri: 'test:///default', require_vtpm: false}|libvirt: {uri: 'test:///default', require_vtpm: false, workers: 3}|" "$T/vtpmd.yaml"
kill -HUP $pid
wait_count "$T/daemon.log" 'configuration reloaded' 3 30 || fail "third good reload not applied"
grep -q 'libvirt.workers takes effect when vtpmd restarts; still using libvirt.workers=8' \
    "$T/daemon.log" || fail "no warning for a libvirt.workers change"
grep -q 'libvirt.uri takes effect' "$T/daemon.log" && fail "warning for libvirt.uri, which did not change"
pass "a reload that changes libvirt.workers warns that it needs a restart, for that key alone"

# reconcile.interval takes effect on reload (it was read once, at start).
[ "$(count_matches "$T/daemon.log" 'reconciling reason=periodic')" = 0 ] ||
    fail "a periodic pass within 5m"
echo 'reconcile: {interval: 1s}' >> "$T/vtpmd.yaml"
kill -HUP $pid
wait_count "$T/daemon.log" 'configuration reloaded' 4 30 || fail "fourth good reload not applied"
wait_count "$T/daemon.log" 'reconciling reason=periodic' 2 30 || fail "reconcile.interval not reloaded"
pass "a reload changes the reconciliation interval"

kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "exit status $rc after SIGTERM (42 = valgrind found errors)"
grep -q 'stopped' "$T/daemon.log" || fail "no clean stop logged"
pass "SIGTERM stops cleanly"

# SIGINT too.
$VALGRIND "$VTPMD" -c "$T/vtpmd.yaml" > "$T/daemon2.log" 2>&1 &
pid=$!
wait_for "$T/daemon2.log" 'started host=' 60 || fail "second start"
kill -INT $pid
wait $pid || fail "exit status $? after SIGINT"
pass "SIGINT stops cleanly"
