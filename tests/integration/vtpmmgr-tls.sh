#!/bin/sh
# vtpmmgr over HTTPS against the fake Keylime-VM proxy, with certificates
# made here by openssl: peer and host name verification on by default
# (unknown CA, wrong name, expired certificate and plain HTTP are refused
# at once as permanent errors), mutual TLS with a client certificate, and
# the two switches that turn verification off.
. "$(dirname "$0")/../lib/common.sh"
. "$top_srcdir/tests/lib/vtpmmgr.sh"
command -v openssl > /dev/null || fail "openssl is required (scripts/install-deps.sh)"

P="$T/pki"
tls_make_certs "$P"

# mkcfg FILE URL [yaml lines under vtpmmgr.tls, each "key: value"]...
mkcfg() {
    _f=$1 _u=$2
    shift 2
    {
        # Generous: OpenSSL under valgrind on a busy machine is slow, and
        # the failures expected here are permanent (immediate) anyway.
        printf 'vtpmmgr:\n  provider: keylime-proxy\n  url: %s\n  timeout: 20s\n  retry_for: 60s\n  tls:\n' "$_u"
        printf '    verify_peer: true\n'
        for l in "$@"; do printf '    %s\n' "$l"; done
    } > "$_f"
}
expect_ok() {
    [ "$RC" = 0 ] || fail "$1: exit $RC: $OUT $(cat "$T/err")"
}
# expect_tls_refused WHAT MESSAGE: a permanent error at once.
expect_refused() {
    [ "$RC" = 4 ] || fail "$1: exit $RC, want 4 (permanent): $OUT"
    case "$OUT" in "PERMANENT $2"*) ;; *) fail "$1: message: $OUT" ;; esac
    [ "$RETRIES" = 0 ] || fail "$1: retried $RETRIES times"
}

# proxy_cert NAME: the fake proxy (restarted) serves $P/NAME.pem; URL_IP.
proxy_cert() {
    fake_proxy_stop
    fake_proxy_start --cert "$P/$1.pem" --key "$P/$1.key"
    URL_IP="https://127.0.0.1:$FAKE_PROXY_PORT"
}
proxy_cert server
URL_NAME="https://localhost:$FAKE_PROXY_PORT"

mkcfg "$T/ok.yaml" "$URL_IP" "ca_file: $P/ca.pem"
run "$T/ok.yaml" acquire $U1
expect_ok "https acquire"
A=${OUT#OK }
run "$T/ok.yaml" release "$A"
expect_ok "https release"
[ "$(fake_proxy_state live)" = 0 ] || fail "live $(fake_proxy_state live)"
pass "HTTPS with the proxy's CA, IP address in the URL"

fake_proxy_faults '{"huge_next": 1}'
run "$T/ok.yaml" acquire $U1
expect_refused "huge answer over TLS" "answer from $URL_IP is larger than 64 KiB"
fake_proxy_faults '{"drop_next": 1}'
run "$T/ok.yaml" acquire $U2
expect_ok "dropped connection over TLS"
[ "$RETRIES" -ge 1 ] || fail "dropped connection over TLS: not retried"
run "$T/ok.yaml" release "${OUT#OK }"
expect_ok "release"
pass "over TLS too: oversized answer refused, dropped connection retried"

# A host name: resolved without blocking (libevent's resolver reads
# /etc/hosts), sent as SNI and checked against the certificate.
if grep -Eq '^[[:space:]]*127\.0\.0\.1[[:space:]].*\blocalhost\b' /etc/hosts; then
    mkcfg "$T/name.yaml" "$URL_NAME" "ca_file: $P/ca.pem"
    run "$T/name.yaml" acquire $U1
    expect_ok "https by name"
    pass "HTTPS with a host name"
else
    echo "note: /etc/hosts maps no 127.0.0.1 localhost; host name case not run"
fi

mkcfg "$T/sysca.yaml" "$URL_IP"
run "$T/sysca.yaml" acquire $U1
expect_refused "system CAs" "TLS: certificate of $URL_IP failed verification: unable to get local issuer certificate"
mkcfg "$T/otherca.yaml" "$URL_IP" "ca_file: $P/otherca.pem"
run "$T/otherca.yaml" acquire $U1
expect_refused "unrelated CA" "TLS: certificate of $URL_IP failed verification: unable to get local issuer certificate"
pass "unknown CA refused, not retried"

# Trusting nothing (verify_peer false) works, loudly.
mkcfg "$T/noverify.yaml" "$URL_IP" "ca_file: $P/otherca.pem" "verify_peer: false"
sed -i '/verify_peer: true/d' "$T/noverify.yaml"
run "$T/noverify.yaml" acquire $U1
expect_ok "verify_peer false"
grep -q "TLS peer verification is off" "$T/err" || fail "no warning for verify_peer false"
pass "verify_peer: false connects (and warns)"

# Certificates that do not fit.
proxy_cert wrong
mkcfg "$T/wrong.yaml" "$URL_IP" "ca_file: $P/ca.pem"
run "$T/wrong.yaml" acquire $U1
expect_refused "wrong name (IP)" "TLS: certificate of $URL_IP failed verification: IP address mismatch"
if [ -f "$T/name.yaml" ]; then
    mkcfg "$T/wrongname.yaml" "https://localhost:$FAKE_PROXY_PORT" "ca_file: $P/ca.pem"
    run "$T/wrongname.yaml" acquire $U1
    expect_refused "wrong name" "TLS: certificate of https://localhost:$FAKE_PROXY_PORT failed verification: hostname mismatch"
fi
mkcfg "$T/nohost.yaml" "$URL_IP" "ca_file: $P/ca.pem" "verify_hostname: false"
run "$T/nohost.yaml" acquire $U1
expect_ok "verify_hostname false"
pass "certificate for another name refused; verify_hostname: false accepts it"

proxy_cert expired
mkcfg "$T/expired.yaml" "$URL_IP" "ca_file: $P/ca.pem"
run "$T/expired.yaml" acquire $U1
expect_refused "expired" "TLS: certificate of $URL_IP failed verification: certificate has expired"
pass "expired certificate refused"

# https:// to a plain HTTP proxy.
fake_proxy_stop
fake_proxy_start
mkcfg "$T/plain.yaml" "https://127.0.0.1:$FAKE_PROXY_PORT" "ca_file: $P/ca.pem"
run "$T/plain.yaml" acquire $U1
expect_refused "plain HTTP server" "TLS error with https://127.0.0.1:$FAKE_PROXY_PORT: "
pass "https:// to a plain HTTP server: permanent TLS error"

# Mutual TLS: the proxy requires a client certificate from our CA.
fake_proxy_stop
fake_proxy_start --cert "$P/server.pem" --key "$P/server.key" --client-ca "$P/ca.pem"
URL_IP="https://127.0.0.1:$FAKE_PROXY_PORT"
mkcfg "$T/mtls.yaml" "$URL_IP" "ca_file: $P/ca.pem" "cert_file: $P/client.pem" "key_file: $P/client.key"
run "$T/mtls.yaml" acquire $U2 compute-1
expect_ok "mTLS acquire"
run "$T/mtls.yaml" release "${OUT#OK }" $U2
expect_ok "mTLS release"
mkcfg "$T/nocert.yaml" "$URL_IP" "ca_file: $P/ca.pem"
run "$T/nocert.yaml" acquire $U2
expect_refused "mTLS without a client certificate" "TLS error with $URL_IP: "
[ "$(fake_proxy_state counters.tls_failures)" -ge 1 ] || fail "proxy saw no TLS failure"
[ "$(fake_proxy_state live)" = 0 ] || fail "live $(fake_proxy_state live)"
# A key that does not match the certificate is refused at start-up.
mkcfg "$T/badkey.yaml" "$URL_IP" "ca_file: $P/ca.pem" "cert_file: $P/client.pem" "key_file: $P/wrong.key"
run "$T/badkey.yaml" acquire $U2
[ "$RC" = 2 ] || fail "mismatched key: exit $RC, want 2"
grep -q "cannot load the client key or it does not match the certificate" "$T/err" || fail "bad key message: $(cat "$T/err")"
pass "mutual TLS: client certificate accepted, none refused, mismatched key caught at start-up"
