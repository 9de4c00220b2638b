/* The HTTPS server's OpenSSL context, see include/proxyd/tlsctx.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "proxyd/tlsctx.h"

static void ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

/* Logs why a client certificate was refused: mTLS set-ups fail quietly
 * otherwise, and the client only sees a handshake alert. */
static int verify_cb(int ok, X509_STORE_CTX *store)
{
    if (!ok) {
        char subject[256] = "";
        X509 *cert = X509_STORE_CTX_get_current_cert(store);

        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
        log_warn("client certificate refused subject=\"%s\" depth=%d error=\"%s\"",
                 subject, X509_STORE_CTX_get_error_depth(store),
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
    }
    return ok;
}

SSL_CTX *tlsctx_new(const char *cert_file, const char *key_file,
                    const char *client_ca_file, char *err, size_t errlen)
{
    static const unsigned char sid[] = "vtpm-proxyd";
    char why[256];
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot create a TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "tls.cert_file %s: %s", cert_file, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "tls.key_file %s: %s", key_file, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "tls.key_file %s does not match tls.cert_file: %s",
                 key_file, why);
        goto fail;
    }
    if (client_ca_file) {
        STACK_OF(X509_NAME) *names;

        if (SSL_CTX_load_verify_locations(ctx, client_ca_file, NULL) != 1) {
            ssl_reason(why, sizeof(why));
            snprintf(err, errlen, "tls.client_ca_file %s: %s", client_ca_file, why);
            goto fail;
        }
        names = SSL_load_client_CA_file(client_ca_file);
        if (names == NULL) {
            ssl_reason(why, sizeof(why));
            snprintf(err, errlen, "tls.client_ca_file %s: no certificate: %s",
                     client_ca_file, why);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           verify_cb);
        SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

bool tlsctx_peer_is_host(SSL *ssl, const char *host)
{
    X509 *cert;
    bool ok;

    if (ssl == NULL || host == NULL || host[0] == '\0')
        return false;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    cert = SSL_get1_peer_certificate(ssl);
#else
    cert = SSL_get_peer_certificate(ssl);
#endif
    if (cert == NULL)
        return false;
    ok = X509_check_host(cert, host, strlen(host), X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
    X509_free(cert);
    return ok;
}

void tlsctx_peer_name(SSL *ssl, char *out, size_t len)
{
    X509 *cert;

    out[0] = '\0';
    if (ssl == NULL)
        return;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    cert = SSL_get1_peer_certificate(ssl);
#else
    cert = SSL_get_peer_certificate(ssl);
#endif
    if (cert == NULL)
        return;
    X509_NAME_oneline(X509_get_subject_name(cert), out, (int)len);
    X509_free(cert);
}
