#!/bin/sh
# vtpm-proxyd over HTTPS with certificates made by openssl in the test's
# temp dir: server authentication, then mutual TLS (no client certificate,
# one from another CA, an expired one: refused and logged; the right one:
# served, its subject in the access log), plain HTTP refused on the TLS
# port, and a renewed server certificate picked up on SIGHUP.
. "$(dirname "$0")/lib.sh"
need openssl

# ---- a CA, the server, clients -----------------------------------------
cd "$T" || fail "no temp dir"
mkca() { # NAME
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" \
        -days 2 -subj "/CN=$1 test CA" > /dev/null 2>&1 || fail "openssl: CA $1"
}
# mkcert NAME CA SUBJECT-CN EXTFILE-LINES [DAYS]
mkcert() {
    printf '%s\n' "$4" > "$1.ext"
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" \
        -subj "/O=vtpmd tests/CN=$3" > /dev/null 2>&1 || fail "openssl: csr $1"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
        -out "$1.crt" -days "${5:-1}" -extfile "$1.ext" > /dev/null 2>&1 ||
        fail "openssl: cert $1"
}
mkca ca
mkca rogue
mkcert server ca localhost "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
mkcert client ca compute-1 "extendedKeyUsage=clientAuth"
mkcert client2 ca compute-2 "subjectAltName=DNS:compute-2
extendedKeyUsage=clientAuth"
mkcert client3 ca not-a-host "subjectAltName=DNS:compute-3
extendedKeyUsage=clientAuth"
mkcert intruder rogue compute-1 "extendedKeyUsage=clientAuth"
# An expired client certificate of the right CA (openssl ca can backdate).
openssl req -newkey rsa:2048 -nodes -keyout old.key -out old.csr \
    -subj "/CN=compute-old" > /dev/null 2>&1 || fail "openssl: old csr"
mkdir db && touch db/index.txt && echo 01 > db/serial
printf '[ca]\ndefault_ca = d\n[d]\ndatabase = db/index.txt\nserial = db/serial\nnew_certs_dir = db\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n' > ca.cnf
openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in old.csr -out old.crt \
    -startdate 20200101000000Z -enddate 20200102000000Z -notext > /dev/null 2>&1 ||
    fail "openssl: expired certificate"
cd - > /dev/null || true

fake_start
HTTPS="https://127.0.0.1:$PORT"

# ---- a private key others can read is refused (-t and start) ---------------
write_conf "tls:" "  cert_file: $T/server.crt" "  key_file: $T/server.key"
for mode in 0640 0604 0666; do
    chmod "$mode" "$T/server.key"
    "$PROXYD" -t -c "$CONF" > "$T/check.out" 2>&1
    rc=$?
    [ $rc = 2 ] || fail "key mode $mode: -t exit $rc: $(cat "$T/check.out")"
    grep -q "^$CONF:6:13: tls.key_file: $T/server.key is readable by group or others (mode $mode)" \
        "$T/check.out" || fail "key mode $mode: $(cat "$T/check.out")"
    timeout 30 "$PROXYD" -c "$CONF" > "$T/check.out" 2>&1
    rc=$?
    [ $rc = 2 ] || fail "key mode $mode: start exit $rc: $(cat "$T/check.out")"
done
chmod 0600 "$T/server.key"
"$PROXYD" -t -c "$CONF" > "$T/check.out" 2>&1 || fail "key mode 0600 refused: $(cat "$T/check.out")"
pass "a private key readable by group or others is refused at -t and start"

# ---- server authentication only -------------------------------------------
write_conf "tls: {cert_file: $T/server.crt, key_file: $T/server.key}"
proxyd_start
grep -q 'listening listen=.* tls=on client_certificates=no' "$T/proxyd.log" ||
    fail "not announced as HTTPS"
URL_BASE=$HTTPS CURL_OPTS="--cacert $T/ca.crt" expect 200 GET /v1/health
A=$(uuidgen_)
u=$(URL_BASE=$HTTPS CURL_OPTS="--cacert $T/ca.crt" create "$A")
curl -s -o /dev/null "$HTTPS/v1/health" && fail "a client that does not trust the CA got in"
curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/health" && fail "plain HTTP answered on the TLS port"
URL_BASE=$HTTPS CURL_OPTS="--cacert $T/ca.crt" expect 200 GET /v1/health
pass "HTTPS: served with the CA, refused without it; plain HTTP refused"

# ---- renewed server certificate on SIGHUP ---------------------------------
serial() {
    openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$T/ca.crt" < /dev/null 2> /dev/null |
        openssl x509 -noout -serial
}
before=$(serial)
[ -n "$before" ] || fail "no server certificate seen"
cd "$T" || fail "no temp dir"
mkcert server ca localhost "subjectAltName=IP:127.0.0.1,DNS:localhost"
cd - > /dev/null || true
kill -HUP "$PROXYD_PID"
wait_for "$T/proxyd.log" 'TLS material reloaded' 20 || fail "no TLS reload"
after=$(serial)
[ -n "$after" ] && [ "$after" != "$before" ] || fail "the renewed certificate is not served ($before -> $after)"
# A broken key on reload: the running TLS context stays.
cp "$T/server.key" "$T/server.key.good"
echo garbage > "$T/server.key"
kill -HUP "$PROXYD_PID"
wait_for "$T/proxyd.log" 'reload failed, keeping the running configuration' 20 ||
    fail "a broken key was not refused on reload"
URL_BASE=$HTTPS CURL_OPTS="--cacert $T/ca.crt" expect 200 GET /v1/health
cp "$T/server.key.good" "$T/server.key"
proxyd_stop
pass "SIGHUP serves a renewed certificate; a broken one is refused and the old stays"

# ---- mutual TLS -------------------------------------------------------------
write_conf "tls: {cert_file: $T/server.crt, key_file: $T/server.key, client_ca_file: $T/ca.crt}"
proxyd_start
grep -q 'client_certificates=required' "$T/proxyd.log" || fail "mTLS not announced"
curl -s -o /dev/null --cacert "$T/ca.crt" "$HTTPS/v1/health" &&
    fail "no client certificate, yet served"
curl -s -o /dev/null --cacert "$T/ca.crt" --cert "$T/intruder.crt" --key "$T/intruder.key" \
    "$HTTPS/v1/health" && fail "a client certificate of another CA was accepted"
wait_for "$T/proxyd.log" 'client certificate refused subject=".*CN=compute-1"' 10 ||
    fail "the refused certificate is not logged"
curl -s -o /dev/null --cacert "$T/ca.crt" --cert "$T/old.crt" --key "$T/old.key" \
    "$HTTPS/v1/health" && fail "an expired client certificate was accepted"
wait_for "$T/proxyd.log" 'client certificate refused subject=".*compute-old.*expired' 10 ||
    fail "the expired certificate is not logged"
CURL_OPTS="--cacert $T/ca.crt --cert $T/client.crt --key $T/client.key"
URL_BASE=$HTTPS expect 200 GET /v1/health
[ "$(URL_BASE=$HTTPS create "$A")" = "$u" ] || fail "mTLS create: another UUID"
B=$(uuidgen_)
ub=$(URL_BASE=$HTTPS create "$B")
URL_BASE=$HTTPS expect 204 DELETE "/v1/vtpms/$ub"
grep -q 'http method=POST uri="/v1/vtpms" status=201 peer=127.0.0.1:[0-9]* client=".*CN=compute-1"' \
    "$T/proxyd.log" || fail "the client's subject is not in the access log"
CURL_OPTS=""
pass "mTLS: no certificate, another CA's, an expired one refused and logged; the right one served"

# ---- a client certificate acts for its own host only ------------------------
as() { # CLIENT: curl options for that client certificate
    echo "--cacert $T/ca.crt --cert $T/$1.crt --key $T/$1.key"
}
C=$(uuidgen_)
uc=$(URL_BASE=$HTTPS CURL_OPTS=$(as client2) create "$C" compute-2)
D=$(uuidgen_)
ud=$(URL_BASE=$HTTPS CURL_OPTS=$(as client3) create "$D" compute-3)
news=$(fake_count VTPM_NEW)
URL_BASE=$HTTPS CURL_OPTS=$(as client) expect 403 POST /v1/vtpms \
    "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"compute-2\"}"
[ "$(jget 'j["error"]["code"]')" = forbidden ] || fail "403 body: $(cat "$T/body")"
URL_BASE=$HTTPS CURL_OPTS=$(as client3) expect 403 POST /v1/vtpms \
    "{\"instance_uuid\": \"$(uuidgen_)\", \"host\": \"not-a-host\"}"
[ "$(fake_count VTPM_NEW)" = "$news" ] || fail "a forbidden create reached vtpmmgr"
URL_BASE=$HTTPS CURL_OPTS=$(as client) expect 403 GET "/v1/vtpms/$uc"
URL_BASE=$HTTPS CURL_OPTS=$(as client) expect 403 DELETE "/v1/vtpms/$uc"
URL_BASE=$HTTPS CURL_OPTS=$(as client2) expect 200 GET "/v1/vtpms/$uc"
URL_BASE=$HTTPS CURL_OPTS=$(as client2) expect 200 GET /v1/vtpms
[ "$(jget '",".join(sorted(v["host"] for v in j["vtpms"]))')" = compute-2 ] ||
    fail "compute-2's list shows other hosts: $(cat "$T/body")"
URL_BASE=$HTTPS CURL_OPTS=$(as client) expect 200 GET /v1/vtpms
[ "$(jget '",".join(sorted(set(v["host"] for v in j["vtpms"])))')" = compute-1 ] ||
    fail "compute-1's list: $(cat "$T/body")"
URL_BASE=$HTTPS CURL_OPTS=$(as client3) expect 204 DELETE "/v1/vtpms/$ud"
[ "$(fake_live | grep -c "$uc")" = 1 ] || fail "compute-2's vTPM is gone"
proxyd_stop
pass "a client certificate creates, reads, lists and deletes only its own host's vTPMs (CN, or SAN DNS)"

write_conf "tls: {cert_file: $T/server.crt, key_file: $T/server.key, client_ca_file: $T/ca.crt, bind_host: false}"
proxyd_start
URL_BASE=$HTTPS CURL_OPTS=$(as client) expect 200 GET "/v1/vtpms/$uc"
URL_BASE=$HTTPS CURL_OPTS=$(as client) expect 204 DELETE "/v1/vtpms/$uc"
pass "tls.bind_host: false lets any client certificate act for any host"

proxyd_stop
check_no_forbidden
