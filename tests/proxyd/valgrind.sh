#!/bin/sh
# vtpm-proxyd under valgrind (required in CI): creates (also concurrent),
# the legacy call, list, get, delete, invalid input, a refused delete, a
# timed-out command with its late answer, garbage, a reconcile, a reload,
# then HTTPS with client certificates (one refused); every run ends with
# SIGTERM and must exit 0: no invalid access, no definite or indirect leak
# (valgrind's exit code would be 42).
. "$(dirname "$0")/lib.sh"
use_valgrind
[ -n "$VALGRIND" ] || { echo "SKIP: valgrind not installed" >&2; exit 77; }
need openssl

fake_start
write_conf
proxyd_start 120

a=$(create "$(uuidgen_)")
expect 200 GET /
legacy=$(jget 'j["uuid"]')
B=$(uuidgen_)
pids=""
for i in 1 2 3 4; do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
        --data-binary "{\"instance_uuid\": \"$B\", \"host\": \"h\"}" "$BASE/v1/vtpms" &
    pids="$pids $!"
done
wait $pids
expect 200 GET /v1/vtpms
expect 200 GET "/v1/vtpms/$a"
expect 400 POST /v1/vtpms '{"instance_uuid": 1}'
expect 400 POST /v1/vtpms 'nonsense'
expect 404 GET /nowhere
expect 405 PUT /v1/vtpms
fakectl open "$a" > /dev/null
expect 409 DELETE "/v1/vtpms/$a"
fakectl close "$a" > /dev/null
expect 204 DELETE "/v1/vtpms/$a"
expect 204 DELETE "/v1/vtpms/$legacy"
fakectl target VTPM_NEW > /dev/null
fakectl slow 1500 1 > /dev/null
expect 504 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
sleep 1
fakectl garbage size 1 > /dev/null
expect 502 POST /v1/vtpms "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"h\"}"
create "$(uuidgen_)" > /dev/null
expect 200 POST /v1/reconcile
[ "$(jget 'len(j["orphans"])')" = 2 ] || fail "orphans: $(cat "$T/body")"
kill -HUP "$PROXYD_PID"
wait_for "$T/proxyd.log" 'reconciled .*orphans=2' 60 || fail "no reconcile after SIGHUP"
expect 200 GET /v1/health
proxyd_stop
pass "HTTP: every path, faults and a reload under valgrind; clean exit"

# HTTPS with client certificates.
cd "$T" || fail "no temp dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
    -subj "/CN=valgrind CA" > /dev/null 2>&1 || fail "openssl: CA"
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl req -newkey rsa:2048 -nodes -keyout s.key -out s.csr -subj "/CN=localhost" > /dev/null 2>&1
openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out s.crt -days 1 \
    -extfile san.ext > /dev/null 2>&1 || fail "openssl: server"
openssl req -newkey rsa:2048 -nodes -keyout c.key -out c.csr -subj "/CN=compute-1" > /dev/null 2>&1
openssl x509 -req -in c.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out c.crt -days 1 \
    > /dev/null 2>&1 || fail "openssl: client"
cd - > /dev/null || true
write_conf "tls: {cert_file: $T/s.crt, key_file: $T/s.key, client_ca_file: $T/ca.crt}"
proxyd_start 120
curl -s -o /dev/null --cacert "$T/ca.crt" "https://127.0.0.1:$PORT/v1/health" &&
    fail "served without a client certificate"
URL_BASE="https://127.0.0.1:$PORT" CURL_OPTS="--cacert $T/ca.crt --cert $T/c.crt --key $T/c.key" \
    create "$(uuidgen_)" > /dev/null
kill -HUP "$PROXYD_PID"
wait_for "$T/proxyd.log" 'TLS material reloaded' 60 || fail "no TLS reload"
proxyd_stop
check_no_forbidden
pass "HTTPS with client certificates and a TLS reload under valgrind; clean exit"
