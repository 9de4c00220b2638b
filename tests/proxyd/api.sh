#!/bin/sh
# vtpm-proxyd's HTTP API against the real binary and the vtpmmgr fake:
# create (idempotent, also under concurrent retries), list, get, delete,
# in-use vTPMs, the legacy GET /, every kind of invalid input (with the
# proof that none of it reached vtpmmgr), methods and paths, health.
. "$(dirname "$0")/lib.sh"

fake_start
write_conf
proxyd_start

expect 200 GET /v1/health
[ "$(jget 'j["status"]')" = ok ] || fail "health: $(cat "$T/body")"
[ "$(jget 'j["vtpmmgr"]["state"]')" = ok ] || fail "health state: $(cat "$T/body")"
group=$(fakectl list | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["groups"][0]["uuid"])')
[ "$(jget 'j["vtpmmgr"]["group"]')" = "$group" ] || fail "health group: $(cat "$T/body")"
[ "$(jget 'j["vtpmmgr"]["group_index"]')" = 0 ] || fail "health group index"
pass "health: ok, group 0 resolved"

# ---- create ------------------------------------------------------------
A=$(uuidgen_)
ua=$(create "$A" compute-1)
grep -qi "^Location: /v1/vtpms/$ua" "$T/headers" || fail "no Location header"
[ "$(fake_live)" = "$ua" ] || fail "fake does not hold $ua: $(fake_live)"
[ -f "$T/state/vtpms/$ua.json" ] || fail "no record file for $ua"
[ "$(stat -c %a "$T/state/vtpms/$ua.json")" = 600 ] || fail "record mode"
[ "$(stat -c %a "$T/state")" = 700 ] || fail "state_dir mode"
news=$(fake_count VTPM_NEW)
[ "$(create "$A" compute-1)" = "$ua" ] || fail "second create: another UUID"
upper=$(echo "$A" | tr a-f A-F)
[ "$(create "$upper" compute-1)" = "$ua" ] || fail "upper-case instance UUID: another UUID"
[ "$(fake_count VTPM_NEW)" = "$news" ] || fail "a repeated create reached vtpmmgr"
pass "create: 201, Location, record 0600, the same UUID again without VTPM_NEW"

# Concurrent retries for one instance while vtpmmgr is slow: one vTPM.
B=$(uuidgen_)
fakectl slow 400 2 > /dev/null
i=0
pids=""
while [ $i -lt 8 ]; do
    curl -s -o "$T/b$i" -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
        --data-binary "{\"instance_uuid\": \"$B\", \"host\": \"compute-2\"}" \
        "$BASE/v1/vtpms" > "$T/b$i.code" &
    pids="$pids $!"
    i=$((i + 1))
done
wait $pids
ub=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["uuid"])' "$T/b0")
i=0
while [ $i -lt 8 ]; do
    [ "$(cat "$T/b$i.code")" = 201 ] || fail "concurrent create $i: $(cat "$T/b$i.code")"
    grep -q "$ub" "$T/b$i" || fail "concurrent create $i: another UUID: $(cat "$T/b$i")"
    i=$((i + 1))
done
[ "$(fake_live | wc -l)" = 2 ] || fail "concurrent creates made $(fake_live | wc -l) vTPMs"
[ "$(fake_count VTPM_NEW)" = $((news + 1)) ] || fail "concurrent creates sent several VTPM_NEW"
pass "8 concurrent creates for one instance: one VTPM_NEW, one UUID"

# ---- list and get --------------------------------------------------------
expect 200 GET /v1/vtpms
[ "$(jget 'len(j["vtpms"])')" = 2 ] || fail "list: $(cat "$T/body")"
[ "$(jget '[v["instance_uuid"] for v in j["vtpms"] if v["uuid"] == "'"$ua"'"][0]')" = "$A" ] ||
    fail "list: instance of $ua"
jget 'j["vtpms"][0]["created_at"]' | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' ||
    fail "created_at: $(cat "$T/body")"
[ "$(jget 'sorted(j["vtpms"][0].keys())')" = '["created_at", "host", "instance_uuid", "uuid"]' ] ||
    fail "list entry keys: $(cat "$T/body")"
expect 200 GET "/v1/vtpms?host=compute-2"
[ "$(jget '[v["uuid"] for v in j["vtpms"]]')" = "[\"$ub\"]" ] || fail "host filter: $(cat "$T/body")"
expect 200 GET "/v1/vtpms?instance_uuid=$A"
[ "$(jget '[v["uuid"] for v in j["vtpms"]]')" = "[\"$ua\"]" ] || fail "instance filter: $(cat "$T/body")"
expect 400 GET "/v1/vtpms?instance_uuid=nope"
expect 400 GET "/v1/vtpms?color=red"
expect 200 GET "/v1/vtpms/$ua"
[ "$(jget 'j["host"]')" = compute-1 ] || fail "get: $(cat "$T/body")"
expect 404 GET "/v1/vtpms/$(uuidgen_)"
[ "$(jget 'j["error"]["code"]')" = not_found ] || fail "404 body: $(cat "$T/body")"
expect 400 GET "/v1/vtpms/not-a-uuid"
expect 400 GET "/v1/vtpms/00000000-0000-0000-0000-000000000000"
expect 400 DELETE "/v1/vtpms/00000000-0000-0000-0000-000000000000"
expect 400 GET "/v1/vtpms?instance_uuid=00000000-0000-0000-0000-000000000000"
expect 400 GET "/v1/vtpms/..%2F..%2Fetc%2Fpasswd"
pass "list with filters, get, 404 and 400"

# ---- invalid input never reaches vtpmmgr ---------------------------------
news=$(fake_count VTPM_NEW)
U=$(uuidgen_)
long=$("$PYTHON" -c 'print("h" * 256)')
big=$("$PYTHON" -c 'print("{\"instance_uuid\": \"'"$U"'\", \"host\": \"" + "h" * 5000 + "\"}")')
while IFS='|' read -r want code body; do
    got=$(http POST /v1/vtpms "$body")
    [ "$got" = "$want" ] || fail "body $body: status $got, want $want ($(cat "$T/body"))"
    [ "$(jget 'j["error"]["code"]')" = "$code" ] || fail "body $body: $(cat "$T/body")"
    jget 'j["error"]["message"]' | grep -q . || fail "no message: $(cat "$T/body")"
done <<EOF
400|invalid_request|not json
400|invalid_request|[]
400|invalid_request|"x"
400|invalid_request|{}
400|invalid_request|{"instance_uuid": 5, "host": "h"}
400|invalid_request|{"instance_uuid": null, "host": "h"}
400|invalid_request|{"instance_uuid": "$U"}
400|invalid_request|{"host": "h"}
400|invalid_request|{"instance_uuid": "not-a-uuid", "host": "h"}
400|invalid_request|{"instance_uuid": "$U ", "host": "h"}
400|invalid_request|{"instance_uuid": "$U\\u0000", "host": "h"}
400|invalid_request|{"instance_uuid": "$U", "host": ["h"]}
400|invalid_request|{"instance_uuid": "$U", "host": ""}
400|invalid_request|{"instance_uuid": "$U", "host": "a b"}
400|invalid_request|{"instance_uuid": "$U", "host": "a/../b"}
400|invalid_request|{"instance_uuid": "$U", "host": "$long"}
400|invalid_request|{"instance_uuid": "$U", "host": "h", "flavor": "x"}
400|invalid_request|{"instance_uuid": "$U", "instance_uuid": "$U", "host": "h"}
400|invalid_request|{"instance_uuid": "$U", "host": "h"} trailing
400|invalid_request|{"instance_uuid": "00000000-0000-0000-0000-000000000000", "host": "h"}
413|payload_too_large|$big
EOF
got=$(http POST /v1/vtpms "" )
[ "$got" = 400 ] || fail "empty body: $got"
got=$(http POST /v1/vtpms "{\"instance_uuid\": \"$U\", \"host\": \"h\"}" text/plain)
[ "$got" = 415 ] || fail "text/plain: $got"
got=$(http POST /v1/vtpms "{\"instance_uuid\": \"$U\", \"host\": \"h\"}" "application/json; charset=utf-8")
[ "$got" = 201 ] || fail "application/json with charset: $got"
"$PYTHON" -c 'import sys; sys.stdout.write("x" * 100000)' > "$T/huge"
got=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      --data-binary @"$T/huge" "$BASE/v1/vtpms")
[ "$got" = 413 ] || fail "100 kB body: $got"
# Two Content-Length headers (equal or not): 400, as a proxy in front might
# frame the request otherwise.
for second in 0 49; do
    got=$("$PYTHON" - "$PORT" "$U" "$second" <<'PY'
import socket, sys
body = ('{"instance_uuid": "%s", "host": "h"}' % sys.argv[2]).encode()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/vtpms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
          % (len(body), len(body) if sys.argv[3] == "0" else int(sys.argv[3]), body))
r = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    r += d
print(r.split(b" ")[1].decode() if r else "none")
PY
)
    [ "$got" = 400 ] || fail "two Content-Length headers: $got"
done
[ "$(fake_count VTPM_NEW)" = $((news + 1)) ] || fail "invalid input reached vtpmmgr"
pass "invalid JSON, types, UUIDs (nil too), hosts, fields, sizes, media types, two Content-Length: 400/413/415, nothing sent"

# ---- methods and paths ----------------------------------------------------
expect 405 PUT /v1/vtpms
grep -qi '^Allow: GET, POST' "$T/headers" || fail "405 without Allow"
[ "$(jget 'j["error"]["code"]')" = method_not_allowed ] || fail "405 body"
expect 405 POST "/v1/vtpms/$ua"
expect 405 DELETE /v1/health
expect 405 GET /v1/reconcile
expect 405 POST /
expect 404 GET /v2/vtpms
expect 404 GET /v1/vtpms/
expect 404 GET "/v1/vtpms/$ua/extra"
pass "wrong methods 405 with Allow, unknown paths 404"

# ---- legacy GET / ---------------------------------------------------------
expect 200 GET /
l1=$(jget 'j["uuid"]')
expect 200 GET /
l2=$(jget 'j["uuid"]')
[ "$l1" != "$l2" ] || fail "legacy: the same UUID twice"
fake_live | grep -q "$l1" || fail "legacy vTPM not in vtpmmgr"
expect 200 GET "/v1/vtpms/$l1"
[ "$(jget 'j["instance_uuid"]')" = None ] || fail "legacy record: $(cat "$T/body")"
[ "$(jget 'j["host"]')" = None ] || fail "legacy record host: $(cat "$T/body")"
pass "legacy GET /: a new vTPM per call, recorded without an instance"

# ---- delete ---------------------------------------------------------------
expect 204 DELETE "/v1/vtpms/$ua"
fake_live | grep -q "$ua" && fail "deleted vTPM still in vtpmmgr"
[ -e "$T/state/vtpms/$ua.json" ] && fail "record of a deleted vTPM remains"
expect 404 DELETE "/v1/vtpms/$ua"
expect 400 DELETE /v1/vtpms/xyz
expect 204 DELETE "/v1/vtpms/$l1"
# A new create for the instance gets a new vTPM.
ua2=$(create "$A" compute-1)
[ "$ua2" != "$ua" ] || fail "re-create after delete: the old UUID"
pass "delete: 204, then 404; the instance gets a new vTPM afterwards"

# In use (its stub domain still connected): 409, the record stays.
fakectl open "$ua2" > /dev/null
expect 409 DELETE "/v1/vtpms/$ua2"
[ "$(jget 'j["error"]["code"]')" = conflict ] || fail "409 body: $(cat "$T/body")"
expect 200 GET "/v1/vtpms/$ua2"
[ "$(create "$A")" = "$ua2" ] || fail "create after a refused delete: another UUID"
fakectl close "$ua2" > /dev/null
expect 204 DELETE "/v1/vtpms/$ua2"
# Gone from vtpmmgr behind our back: the delete still succeeds.
uc=$(create "$(uuidgen_)")
fakectl drop "$uc" > /dev/null
expect 204 DELETE "/v1/vtpms/$uc"
expect 404 GET "/v1/vtpms/$uc"
pass "in-use vTPM: 409 and kept; already gone: 204"

# Records and vtpmmgr agree; nothing forbidden was sent.
[ "$(records)" = "$(fake_live)" ] || fail "records $(records) != vtpmmgr $(fake_live)"
check_no_forbidden
[ "$(fake_get bad_requests)" = 0 ] || fail "the fake saw unframeable requests"
expect 200 POST /v1/reconcile
[ "$(jget 'j["orphans"]')" = "[]" ] || fail "orphans after clean operation: $(cat "$T/body")"
[ "$(jget 'j["missing"]')" = "[]" ] || fail "missing after clean operation: $(cat "$T/body")"
pass "records match vtpmmgr; no GROUP_NEW/GROUP_DEL ever sent"

proxyd_stop
grep -q 'stopped' "$T/proxyd.log" || fail "no orderly stop"
pass "SIGTERM: exit 0"
