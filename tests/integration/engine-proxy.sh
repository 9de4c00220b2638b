#!/bin/sh
# vtpmd with provider keylime-proxy against the fake Keylime-VM proxy
# (tests/tools/fake_proxy.py): v1 acquires and releases (no UUID leaks),
# the legacy API, and a proxy that stays down: retries, then
# vtpm.create.error with nothing left behind.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/broker.sh"
broker_test_start
. "$top_srcdir/tests/lib/vtpmd.sh"
. "$top_srcdir/tests/lib/fake_proxy.sh"
fake_proxy_start

listener_start
proxy_cfg() {
    vtpmd_config "$T/vtpmd.yaml" "vtpmmgr:" "  provider: keylime-proxy" \
        "  url: '$FAKE_PROXY_URL'" "  api: $1" "  timeout: 1s" "  retry_for: $2"
}
proxy_cfg v1 20s
vtpmd_start "$T/vtpmd.yaml"

# v1: one UUID per instance, released on delete.
a=$(new_uuid); b=$(new_uuid)
nova "create.start:$a" "create.start:$b"
ctl wait "$a" 30 > /dev/null || fail "$a not ready"
ctl wait "$b" 30 > /dev/null || fail "$b not ready"
[ "$(fake_proxy_state live)" = 2 ] || fail "live UUIDs at the proxy: $(fake_proxy_state live), want 2"
va=$(json_field "$a" vtpm_uuid)
fake_proxy_call GET /_fake/state | grep -q "$va" || fail "proxy does not know $va"
nova "delete:$a"
wait_status vtpm.delete.end "$a" || fail "no delete.end"
[ "$(fake_proxy_state live)" = 1 ] || fail "after delete, live: $(fake_proxy_state live), want 1"
pass "v1: acquire per instance, release on delete"

# A few 5xx answers are retried and the create still succeeds.
fake_proxy_faults '{"fail_next": 3, "fail_status": 503, "fault_methods": ["POST"]}'
c=$(new_uuid)
nova "create.start:$c"
ctl wait "$c" 30 > /dev/null || fail "$c not ready after 503s"
[ "$(fake_proxy_state live)" = 2 ] || fail "live after retries: $(fake_proxy_state live)"
fake_proxy_reset
pass "5xx answers retried"

# The proxy stays down longer than retry_for: vtpm.create.error, rolled back.
proxy_cfg v1 2s
ctl reload > /dev/null || fail "reload"
fake_proxy_outage on
d=$(new_uuid)
nova "create.start:$d"
wait_status vtpm.create.error "$d" 1 40 || fail "no vtpm.create.error while the proxy is down"
[ "$(json_field "$d" state)" = failed ] || fail "state after giving up: $(json_field "$d" state)"
ctl --json show "$d" | grep -q '"code": "vtpmmgr_unavailable"' || fail "error code: $(ctl --json show "$d")"
[ -e "$T/images/$d.img" ] && fail "image left behind after a failed create"
n=$(ctl --json domains | "$PYTHON" -c "
import json,sys
print(len([x for x in json.load(sys.stdin)['domains'] if x['instance_uuid']=='$d']))")
[ "$n" = 0 ] || fail "domain left behind after a failed create"
ctl wait "$d" 5 > /dev/null 2>&1
[ $? -eq 1 ] || fail "vtpmctl wait on a failed vTPM: want exit 1"
queue_idle || fail "failed create left unacked"
fake_proxy_outage off
[ "$(fake_proxy_state live)" = 2 ] || fail "live after the failed create: $(fake_proxy_state live)"
nova "delete:$d"
wait_status vtpm.delete.end "$d" || fail "delete of a failed instance"
pass "proxy down: vtpm.create.error, nothing left behind"

# Legacy API: GET <url>, never released (the 2016 proxy's behaviour).
proxy_cfg legacy 20s
ctl reload > /dev/null || fail "reload"
e=$(new_uuid)
before=$(fake_proxy_state counters.legacy_get)
nova "create.start:$e"
ctl wait "$e" 30 > /dev/null || fail "legacy create"
[ "$(fake_proxy_state counters.legacy_get)" -gt "$before" ] || fail "no legacy GET"
nova "delete:$e"
wait_status vtpm.delete.end "$e" || fail "legacy delete"
pass "legacy API"

proxy_cfg v1 20s
ctl reload > /dev/null || fail "reload"
nova "delete:$b" "delete:$c"
wait_status vtpm.delete.end "$b" || fail "delete b"
wait_status vtpm.delete.end "$c" || fail "delete c"
[ "$(fake_proxy_state live)" = 1 ] || fail "v1 UUIDs leaked: live $(fake_proxy_state live) (1 is the legacy one)"
vtpmd_stop
pass "no v1 UUID leaked"
