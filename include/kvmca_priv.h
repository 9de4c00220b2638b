/* kvmca internals shared with its PKCS#11 half and the unit tests. */
#ifndef VTPMD_KVMCA_PRIV_H
#define VTPMD_KVMCA_PRIV_H

#include <openssl/evp.h>

struct kvmca_p11;

/* Loads the private key a PKCS#11 URI names through OpenSSL's pkcs11
 * ENGINE (libp11). module-path=, pin-value= and pin-source=file:… are
 * taken out of the URI and given to the engine; the rest names the key.
 * *handle keeps the engine; free it after the key. */
int kvmca_p11_load(const char *uri, EVP_PKEY **key, struct kvmca_p11 **handle,
                   char **err);
void kvmca_p11_free(struct kvmca_p11 *h);

/* Parses swtpm_localca's --ek syntax into a public key. */
int kvmca_ek_parse(const char *ek, EVP_PKEY **out, char **err);

/* Appends OpenSSL's queued errors to a message and clears the queue. */
char *kvmca_ossl_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
