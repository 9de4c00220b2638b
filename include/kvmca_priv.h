/* kvmca internals shared with its PKCS#11 half and the unit tests. */
#ifndef VTPMD_KVMCA_PRIV_H
#define VTPMD_KVMCA_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

struct kvmca_p11;

struct kvmca {
    EVP_PKEY *key;
    struct kvmca_p11 *p11;
    X509 *issuer;
    char *chain_pem;
    char *state_dir;
    char *host;
    long validity_days;
};

/* Sets *err (if err) to a formatted message, freeing the old one. */
void kvmca_set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool kvmca_all_hex(const char *s, size_t n);
/* The digest the CA key signs with (NULL for EdDSA). */
const EVP_MD *kvmca_sign_md(EVP_PKEY *key);

/* kvmca_state.c: the state directory. */
char *kvmca_read_text(const char *path);
int kvmca_append_line(const char *dir, const char *name, const char *line);
/* Takes the state directory's lock; returns the fd to close. */
int kvmca_state_lock(const struct kvmca *ca, char **err);
int kvmca_next_serial(struct kvmca *ca, BIGNUM **out, char **err);

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
