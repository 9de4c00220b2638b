/* The HTTPS server's OpenSSL context: TLS 1.2 or later, the configured
 * certificate chain and key, and client certificates required (and
 * verified against client_ca_file) when that is set. */
#ifndef PROXYD_TLSCTX_H
#define PROXYD_TLSCTX_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* NULL on failure, with a one-line reason in err. */
SSL_CTX *tlsctx_new(const char *cert_file, const char *key_file,
                    const char *client_ca_file, char *err, size_t errlen);
/* "CN=client,O=..." of the peer's verified certificate, or "" (out). */
void tlsctx_peer_name(SSL *ssl, char *out, size_t len);

/* True when the peer's certificate names host: a subjectAltName DNS name
 * equal to it (no wildcards), else, without DNS names, its CN. False
 * without a certificate. */
bool tlsctx_peer_is_host(SSL *ssl, const char *host);

#endif
