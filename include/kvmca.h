/* The site CA of the KVM backend: signs each vTPM's EK certificate and
 * platform certificate following the TCG EK credential profile as
 * swtpm_cert does, binds them to the instance (its UUID as the subject's
 * CN, the host in a vtpmd extension), hands out unique durable serial
 * numbers and signs the CRL of revoked ones. The signing key is a PEM file
 * (mode 0600 or stricter, owned by the caller's user) or a PKCS#11 URI.
 */
#ifndef VTPMD_KVMCA_H
#define VTPMD_KVMCA_H

#include <stdbool.h>
#include <stddef.h>

struct kvmca;

/* vtpmd's own OID arc, allocated from a UUID under ITU-T X.667's 2.25
 * (no registration needed): 2.25.<uuid 2d4e3c5a-7f1b-4c8e-9a6d-0b5f1e2c3d4a>. */
#define KVMCA_OID_ARC "2.25.60221483079735374994570854713342573898"
/* Non-critical extension: UTF8String, the host that requested the
 * certificate (vtpmd's host name). */
#define KVMCA_OID_HOST KVMCA_OID_ARC ".1"

struct kvmca_opts {
    /* PEM file, or a PKCS#11 URI "pkcs11:token=…;object=…" with the
     * query attributes module-path=, pin-value= or pin-source=file:… */
    const char *signing_key;
    /* PEM: the issuer certificate (matching signing_key) first, then any
     * intermediates up to the site root (an intermediate per host). */
    const char *issuer_chain;
    /* Serial counter, issued and revoked index; created 0700. */
    const char *state_dir;
    /* Named in each certificate's host extension. */
    const char *host;
    /* Certificate lifetime in days; < 0: no expiry (99991231235959Z, as
     * swtpm_localca and IEEE 802.1AR device certificates). */
    long validity_days;
};

enum kvmca_cert_type {
    KVMCA_CERT_EK = 0,
    KVMCA_CERT_PLATFORM,
};

struct kvmca_request {
    enum kvmca_cert_type type;
    /* swtpm_localca's --ek: RSA modulus in hex, or x=<hex>,y=<hex>[,id=<curve>] */
    const char *ek;
    const char *instance_uuid;
    /* --tpm-manufacturer / --tpm-model / --tpm-version (EK) */
    const char *tpm_manufacturer;
    const char *tpm_model;
    const char *tpm_version;
    /* --tpm-spec-family / -level / -revision (EK) */
    const char *spec_family;
    unsigned int spec_level;
    unsigned int spec_revision;
    /* --platform-manufacturer / -model / -version (platform) */
    const char *platform_manufacturer;
    const char *platform_model;
    const char *platform_version;
    bool allow_signing;
    bool decryption;
};

struct kvmca_cert {
    unsigned char *der;
    size_t der_len;
    char *serial_hex;   /* upper-case hex, as `openssl x509 -serial` */
    char *sha256_hex;   /* fingerprint of der, lower-case hex */
};

/* Error codes besides negative errno values. */
#define KVMCA_EKEYMODE   (-1001)   /* key file mode or owner refused */
#define KVMCA_ESIGN      (-1002)   /* the key cannot sign (HSM gone) */

/* Loads key and chain and checks that they match. *err gets a message on
 * failure (free it). */
int kvmca_open(const struct kvmca_opts *opts, struct kvmca **out, char **err);
void kvmca_free(struct kvmca *ca);

/* Issues one certificate. The serial is reserved durably (fsync'd) before
 * signing and the certificate recorded in the issued index before it is
 * returned; nothing is returned on a signing failure. */
int kvmca_issue(struct kvmca *ca, const struct kvmca_request *req,
                struct kvmca_cert *out, char **err);
void kvmca_cert_clear(struct kvmca_cert *c);

/* Adds serial_hex to the revoked index (durably). Revoking an already
 * revoked serial is a success; a serial this CA never issued is -ENOENT. */
int kvmca_revoke(struct kvmca *ca, const char *serial_hex, char **err);

/* Revokes every certificate issued for an instance (its EK and platform
 * certificates: what vtpmd does on delete). *count gets how many were
 * newly revoked; none issued is a success with 0. */
int kvmca_revoke_instance(struct kvmca *ca, const char *instance_uuid,
                          unsigned int *count, char **err);

/* Signs the CRL of every revoked serial, nextUpdate now + next_update_secs,
 * with a durable CRL number. Returns DER (free() it). */
int kvmca_crl(struct kvmca *ca, long next_update_secs, unsigned char **der,
              size_t *der_len, char **err);

/* The issuer chain (PEM, as loaded) for those who verify. */
const char *kvmca_chain_pem(const struct kvmca *ca);

/* Extracts the instance UUID from swtpm_setup's --vmid "<name>:<uuid>" (or
 * a bare UUID) into out (37 bytes, lower case). */
int kvmca_vmid_uuid(const char *vmid, char out[37]);

#endif
