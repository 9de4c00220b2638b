/* The site CA of the KVM backend. See include/kvmca.h.
 *
 * Certificates follow swtpm_cert (swtpm 0.7, src/swtpm_cert/ek-cert.c) for
 * --tpm2, which follows the TCG EK Credential Profile: X.509 v3, critical
 * subjectAltName with a directoryName of TPM manufacturer/model/version
 * (2.23.133.2.1/2/3; the platform certificate: platform manufacturer/
 * model/version 2.23.133.5.1.1/4/5), critical basicConstraints CA:FALSE,
 * subjectDirectoryAttributes with tpmSpecification 2.23.133.2.16 (EK),
 * authorityKeyIdentifier, critical keyUsage keyEncipherment (RSA) or
 * keyAgreement (ECC), extKeyUsage tcg-kp-EKCertificate 2.23.133.8.1
 * (platform: 2.23.133.8.2). swtpm_cert's platform certificate is such an
 * X.509 certificate over the EK, not an attribute certificate; so is ours.
 * vtpmd adds: subject CN=<instance uuid> and the host extension.
 *
 * The EK's public key is parsed in kvmca_ek.c, the state directory
 * (serials, indexes, revocation, CRL) lives in kvmca_state.c, the PKCS#11
 * key in kvmca_p11.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kvmca.h"
#include "kvmca_priv.h"
#include "uuidutil.h"
#include "xalloc.h"


/* TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER,
 * revision INTEGER } (TCG EK Credential Profile, swtpm's tpm.asn). */
typedef struct {
    ASN1_UTF8STRING *family;
    ASN1_INTEGER *level;
    ASN1_INTEGER *revision;
} KVMCA_TPM_SPEC;

ASN1_SEQUENCE(KVMCA_TPM_SPEC) = {
    ASN1_SIMPLE(KVMCA_TPM_SPEC, family, ASN1_UTF8STRING),
    ASN1_SIMPLE(KVMCA_TPM_SPEC, level, ASN1_INTEGER),
    ASN1_SIMPLE(KVMCA_TPM_SPEC, revision, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(KVMCA_TPM_SPEC)

/* SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute */
typedef STACK_OF(X509_ATTRIBUTE) KVMCA_SDA;

ASN1_ITEM_TEMPLATE(KVMCA_SDA) =
    ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, KVMCA_SDA, X509_ATTRIBUTE)
static_ASN1_ITEM_TEMPLATE_END(KVMCA_SDA)

char *kvmca_ossl_msg(const char *fmt, ...)
{
    char *msg = NULL, *full = NULL;
    char buf[256];
    unsigned long e;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    e = ERR_get_error();
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        xasprintf(&full, "%s: %s", msg, buf);
        free(msg);
        msg = full;
    }
    ERR_clear_error();
    return msg;
}

void kvmca_set_err(char **err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    free(*err);
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        abort();
    va_end(ap);
}

/* ---- loading ---- */

/* Never prompt for a passphrase (no terminal in a daemon or swtpm_setup). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int load_pem_key(const char *path, EVP_PKEY **out, char **err)
{
    struct stat st;
    BIO *bio = NULL;
    FILE *f = NULL;
    int fd, ret;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        kvmca_set_err(err, "signing key %s: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        kvmca_set_err(err, "signing key %s: not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if ((st.st_mode & 077) != 0) {
        kvmca_set_err(err, "signing key %s: mode %04o is refused: the key must not "
                "be readable by group or others (chmod 0600)", path,
                (unsigned)(st.st_mode & 07777));
        close(fd);
        return KVMCA_EKEYMODE;
    }
    if (st.st_uid != geteuid()) {
        kvmca_set_err(err, "signing key %s: owned by uid %u, refused: it must be "
                "owned by uid %u, the user that signs", path,
                (unsigned)st.st_uid, (unsigned)geteuid());
        close(fd);
        return KVMCA_EKEYMODE;
    }
    f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    bio = BIO_new_fp(f, BIO_CLOSE);
    *out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!*out) {
        char *m = kvmca_ossl_msg("signing key %s: not a PEM private key "
                                 "(an encrypted key is not supported)", path);
        kvmca_set_err(err, "%s", m);
        free(m);
        ret = -EINVAL;
    } else {
        ret = 0;
    }
    BIO_free(bio);
    return ret;
}

static int load_chain(struct kvmca *ca, const char *path, char **err)
{
    char *text autofree = kvmca_read_text(path);
    BIO *bio;

    if (!text) {
        kvmca_set_err(err, "issuer chain %s: %s", path, strerror(errno));
        return -EIO;
    }
    bio = BIO_new_mem_buf(text, -1);
    ca->issuer = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!ca->issuer) {
        char *m = kvmca_ossl_msg("issuer chain %s: no PEM certificate", path);
        kvmca_set_err(err, "%s", m);
        free(m);
        BIO_free(bio);
        return -EINVAL;
    }
    /* The rest of the chain, if any, must be in order: each certificate
     * issued by the next. */
    {
        X509 *prev = ca->issuer, *next;
        int n = 1, ret = 0;
        while (ret == 0 && (next = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
            n++;
            if (X509_check_issued(next, prev) != X509_V_OK ||
                X509_verify(prev, X509_get0_pubkey(next)) != 1) {
                kvmca_set_err(err, "issuer chain %s: certificate %d is not the issuer "
                        "of certificate %d (issuer certificate first, then up "
                        "to the root)", path, n, n - 1);
                ret = -EINVAL;
            }
            if (prev != ca->issuer)
                X509_free(prev);
            prev = next;
        }
        if (prev != ca->issuer)
            X509_free(prev);
        ERR_clear_error();
        BIO_free(bio);
        if (ret < 0)
            return ret;
    }
    ca->chain_pem = steal_ptr(text);
    return 0;
}

const EVP_MD *kvmca_sign_md(EVP_PKEY *key)
{
    int bits = EVP_PKEY_get_bits(key);

    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ||
        EVP_PKEY_get_base_id(key) == EVP_PKEY_ED448)
        return NULL;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        if (bits > 384)
            return EVP_sha512();
        if (bits > 256)
            return EVP_sha384();
        return EVP_sha256();
    }
    return bits > 3072 ? EVP_sha384() : EVP_sha256();
}

void kvmca_free(struct kvmca *ca)
{
    if (!ca)
        return;
    EVP_PKEY_free(ca->key);
    kvmca_p11_free(ca->p11);
    X509_free(ca->issuer);
    free(ca->chain_pem);
    free(ca->state_dir);
    free(ca->host);
    free(ca);
}

int kvmca_open(const struct kvmca_opts *o, struct kvmca **out, char **err)
{
    struct kvmca *ca = xcalloc(1, sizeof *ca);
    int ret;

    if (!o->signing_key || !o->issuer_chain || !o->state_dir || !o->host ||
        !*o->host) {
        kvmca_set_err(err, "CA: signing key, issuer chain, state directory and "
                "host are required");
        ret = -EINVAL;
        goto out;
    }
    ca->state_dir = xstrdup(o->state_dir);
    ca->host = xstrdup(o->host);
    ca->validity_days = o->validity_days;
    if (strncmp(o->signing_key, "pkcs11:", 7) == 0) {
        char *m = NULL;
        ret = kvmca_p11_load(o->signing_key, &ca->key, &ca->p11, &m);
        if (ret < 0) {
            kvmca_set_err(err, "%s", m);
            free(m);
            goto out;
        }
    } else {
        ret = load_pem_key(o->signing_key, &ca->key, err);
        if (ret < 0)
            goto out;
    }
    ret = load_chain(ca, o->issuer_chain, err);
    if (ret < 0)
        goto out;
    if (X509_check_private_key(ca->issuer, ca->key) != 1) {
        char *m = kvmca_ossl_msg("CA: the signing key does not match the "
                                 "issuer certificate in %s", o->issuer_chain);
        kvmca_set_err(err, "%s", m);
        free(m);
        ret = -EINVAL;
        goto out;
    }
    if (mkdir(ca->state_dir, 0700) < 0 && errno != EEXIST) {
        ret = -errno;
        kvmca_set_err(err, "CA state %s: %s", ca->state_dir, strerror(-ret));
        goto out;
    }
    *out = steal_ptr(ca);
    ret = 0;
out:
    kvmca_free(ca);
    return ret;
}

const char *kvmca_chain_pem(const struct kvmca *ca)
{
    return ca->chain_pem;
}

int kvmca_vmid_uuid(const char *vmid, char out[37])
{
    const char *u;
    char buf[UUIDUTIL_BUFLEN];

    if (!vmid)
        return -EINVAL;
    u = strrchr(vmid, ':');
    u = u ? u + 1 : vmid;
    if (uuid_canonical(u, buf) < 0)
        return -EINVAL;
    memcpy(out, buf, 37);
    return 0;
}

/* ---- building a certificate ---- */

/* Printable attribute text: no control characters, bounded. */
static bool attr_ok(const char *s)
{
    size_t n;

    if (!s || !*s)
        return false;
    n = strlen(s);
    if (n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int name_add(X509_NAME *name, const char *oid, const char *val)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int ok;

    if (!obj)
        return 0;
    ok = X509_NAME_add_entry_by_OBJ(name, obj, V_ASN1_UTF8STRING,
                                    (const unsigned char *)val, -1, -1, 0);
    ASN1_OBJECT_free(obj);
    return ok;
}

static int add_ext_der(X509 *crt, const char *oid, int nid, int crit,
                       const unsigned char *der, int len)
{
    ASN1_OCTET_STRING *oct = ASN1_OCTET_STRING_new();
    ASN1_OBJECT *obj = oid ? OBJ_txt2obj(oid, 1) : OBJ_nid2obj(nid);
    X509_EXTENSION *ext = NULL;
    int ok = 0;

    if (oct && obj && ASN1_OCTET_STRING_set(oct, der, len))
        ext = X509_EXTENSION_create_by_OBJ(NULL, obj, crit, oct);
    if (ext)
        ok = X509_add_ext(crt, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(oct);
    if (oid)
        ASN1_OBJECT_free(obj);
    return ok;
}

static int add_san(X509 *crt, const char *oids[3], const char *vals[3])
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gen = GENERAL_NAME_new();
    X509_NAME *dn = X509_NAME_new();
    int ok = 0;

    if (!gens || !gen || !dn)
        goto out;
    for (int i = 0; i < 3; i++)
        if (!name_add(dn, oids[i], vals[i]))
            goto out;
    GENERAL_NAME_set0_value(gen, GEN_DIRNAME, steal_ptr(dn));
    if (!sk_GENERAL_NAME_push(gens, gen))
        goto out;
    gen = NULL;
    /* Critical: the profile's SAN carries the TPM identity. */
    ok = X509_add1_ext_i2d(crt, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT);
out:
    X509_NAME_free(dn);
    GENERAL_NAME_free(gen);
    GENERAL_NAMES_free(gens);
    return ok;
}

static int add_tpm_spec(X509 *crt, const struct kvmca_request *r)
{
    KVMCA_TPM_SPEC spec = { 0 };
    KVMCA_SDA *sda = sk_X509_ATTRIBUTE_new_null();
    X509_ATTRIBUTE *attr = NULL;
    ASN1_OBJECT *obj = OBJ_txt2obj("2.23.133.2.16", 1);
    unsigned char *specder = NULL, *sdader = NULL;
    int specl, sdal, ok = 0;

    spec.family = ASN1_UTF8STRING_new();
    spec.level = ASN1_INTEGER_new();
    spec.revision = ASN1_INTEGER_new();
    if (!sda || !obj || !spec.family || !spec.level || !spec.revision ||
        !ASN1_STRING_set(spec.family, r->spec_family, -1) ||
        !ASN1_INTEGER_set_int64(spec.level, r->spec_level) ||
        !ASN1_INTEGER_set_int64(spec.revision, r->spec_revision))
        goto out;
    specl = ASN1_item_i2d((ASN1_VALUE *)&spec, &specder, ASN1_ITEM_rptr(KVMCA_TPM_SPEC));
    if (specl <= 0)
        goto out;
    /* A V_ASN1_SEQUENCE attribute value holds its complete encoding. */
    attr = X509_ATTRIBUTE_create_by_OBJ(NULL, obj, V_ASN1_SEQUENCE, specder, specl);
    if (!attr || !sk_X509_ATTRIBUTE_push(sda, attr))
        goto out;
    attr = NULL;
    sdal = ASN1_item_i2d((ASN1_VALUE *)sda, &sdader, ASN1_ITEM_rptr(KVMCA_SDA));
    if (sdal <= 0)
        goto out;
    ok = add_ext_der(crt, NULL, NID_subject_directory_attributes, 0, sdader, sdal);
out:
    OPENSSL_free(specder);
    OPENSSL_free(sdader);
    X509_ATTRIBUTE_free(attr);
    sk_X509_ATTRIBUTE_pop_free(sda, X509_ATTRIBUTE_free);
    ASN1_OBJECT_free(obj);
    ASN1_UTF8STRING_free(spec.family);
    ASN1_INTEGER_free(spec.level);
    ASN1_INTEGER_free(spec.revision);
    return ok;
}

static int add_conf_ext(X509 *crt, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (!ext)
        return 0;
    ok = X509_add_ext(crt, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static int add_eku(X509 *crt, const char *oid)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int ok = 0;

    if (eku && obj && sk_ASN1_OBJECT_push(eku, obj)) {
        obj = NULL;
        ok = X509_add1_ext_i2d(crt, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT);
    }
    ASN1_OBJECT_free(obj);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return ok;
}

static int add_host(X509 *crt, const char *host)
{
    ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();
    unsigned char *der = NULL;
    int len, ok = 0;

    if (s && ASN1_STRING_set(s, host, -1)) {
        len = i2d_ASN1_UTF8STRING(s, &der);
        if (len > 0)
            ok = add_ext_der(crt, KVMCA_OID_HOST, 0, 0, der, len);
    }
    OPENSSL_free(der);
    ASN1_UTF8STRING_free(s);
    return ok;
}

static int check_request(const struct kvmca_request *r, char **err)
{
    char u[UUIDUTIL_BUFLEN];

    if (!r->instance_uuid || uuid_canonical(r->instance_uuid, u) < 0) {
        kvmca_set_err(err, "request: instance UUID '%s' is not a UUID",
                r->instance_uuid ? r->instance_uuid : "");
        return -EINVAL;
    }
    if (r->type == KVMCA_CERT_EK) {
        if (!attr_ok(r->tpm_manufacturer) || !attr_ok(r->tpm_model) ||
            !attr_ok(r->tpm_version) || !attr_ok(r->spec_family)) {
            kvmca_set_err(err, "request: an EK certificate needs --tpm-manufacturer, "
                    "--tpm-model, --tpm-version and --tpm-spec-family "
                    "(printable, at most 128 characters)");
            return -EINVAL;
        }
    } else if (r->type == KVMCA_CERT_PLATFORM) {
        if (!attr_ok(r->platform_manufacturer) || !attr_ok(r->platform_model) ||
            !attr_ok(r->platform_version)) {
            kvmca_set_err(err, "request: a platform certificate needs "
                    "--platform-manufacturer, --platform-model and "
                    "--platform-version (printable, at most 128 characters)");
            return -EINVAL;
        }
    } else {
        kvmca_set_err(err, "request: unknown certificate type");
        return -EINVAL;
    }
    return 0;
}

static char *hex_lower(const unsigned char *b, size_t n)
{
    char *s = xmalloc(2 * n + 1);

    for (size_t i = 0; i < n; i++)
        snprintf(s + 2 * i, 3, "%02x", b[i]);
    return s;
}

void kvmca_cert_clear(struct kvmca_cert *c)
{
    if (!c)
        return;
    free(c->der);
    free(c->serial_hex);
    free(c->sha256_hex);
    memset(c, 0, sizeof *c);
}

int kvmca_issue(struct kvmca *ca, const struct kvmca_request *r,
                struct kvmca_cert *out, char **err)
{
    static const char *tpm_oids[3] = { "2.23.133.2.1", "2.23.133.2.2", "2.23.133.2.3" };
    static const char *platf_oids[3] = { "2.23.133.5.1.1", "2.23.133.5.1.4", "2.23.133.5.1.5" };
    char uuid[UUIDUTIL_BUFLEN];
    EVP_PKEY *ek = NULL, *ipub;
    X509 *crt = NULL;
    BIGNUM *serial = NULL;
    ASN1_INTEGER *aserial = NULL;
    X509_NAME *subj = NULL;
    X509V3_CTX ctx;
    unsigned char *der = NULL, md[32];
    char *serial_hex = NULL, *fp = NULL, *line = NULL;
    int lockfd = -1, der_len, ret;
    bool ecc;
    char ku[64];

    ret = check_request(r, err);
    if (ret < 0)
        return ret;
    uuid_canonical(r->instance_uuid, uuid);
    ret = kvmca_ek_parse(r->ek, &ek, err);
    if (ret < 0)
        return ret;
    ecc = EVP_PKEY_get_base_id(ek) == EVP_PKEY_EC;

    lockfd = kvmca_state_lock(ca, err);
    if (lockfd < 0) {
        ret = lockfd;
        goto out;
    }
    ret = kvmca_next_serial(ca, &serial, err);
    if (ret < 0)
        goto out;
    ret = -ENOMEM;
    crt = X509_new();
    subj = X509_NAME_new();
    aserial = BN_to_ASN1_INTEGER(serial, NULL);
    if (!crt || !subj || !aserial || !X509_set_version(crt, X509_VERSION_3) ||
        !X509_set_serialNumber(crt, aserial) ||
        !X509_set_issuer_name(crt, X509_get_subject_name(ca->issuer)) ||
        !X509_gmtime_adj(X509_getm_notBefore(crt), 0))
        goto fail;
    if (ca->validity_days < 0) {
        if (!ASN1_TIME_set_string(X509_getm_notAfter(crt), "99991231235959Z"))
            goto fail;
    } else if (!X509_time_adj_ex(X509_getm_notAfter(crt), (int)ca->validity_days, 0, NULL)) {
        goto fail;
    }
    if (!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
                                    (const unsigned char *)uuid, -1, -1, 0) ||
        !X509_set_subject_name(crt, subj) || !X509_set_pubkey(crt, ek))
        goto fail;

    if (r->type == KVMCA_CERT_EK) {
        const char *vals[3] = { r->tpm_manufacturer, r->tpm_model, r->tpm_version };
        if (!add_san(crt, tpm_oids, vals))
            goto fail;
    } else {
        const char *vals[3] = { r->platform_manufacturer, r->platform_model,
                                r->platform_version };
        if (!add_san(crt, platf_oids, vals))
            goto fail;
    }
    X509V3_set_ctx(&ctx, ca->issuer, crt, NULL, NULL, 0);
    if (!add_conf_ext(crt, &ctx, NID_basic_constraints, "critical,CA:FALSE"))
        goto fail;
    if (r->type == KVMCA_CERT_EK && !add_tpm_spec(crt, r))
        goto fail;
    if (!add_conf_ext(crt, &ctx, NID_authority_key_identifier, "keyid"))
        goto fail;
    /* swtpm_cert: keyEncipherment (RSA) or keyAgreement (ECC) unless the
     * EK may only sign; digitalSignature when it may sign. */
    snprintf(ku, sizeof ku, "critical%s%s",
             r->allow_signing ? ",digitalSignature" : "",
             (!r->allow_signing || r->decryption)
                 ? (ecc ? ",keyAgreement" : ",keyEncipherment") : "");
    if (!add_conf_ext(crt, &ctx, NID_key_usage, ku))
        goto fail;
    if (!add_eku(crt, r->type == KVMCA_CERT_EK ? "2.23.133.8.1" : "2.23.133.8.2"))
        goto fail;
    if (!add_host(crt, ca->host))
        goto fail;

    if (X509_sign(crt, ca->key, kvmca_sign_md(ca->key)) <= 0) {
        char *m = kvmca_ossl_msg("CA: signing failed: the signing key is not "
                                 "usable (HSM or token gone?)");
        kvmca_set_err(err, "%s", m);
        free(m);
        ret = KVMCA_ESIGN;
        goto out;
    }
    /* Check what the key (maybe an HSM) returned against the issuer. */
    ipub = X509_get0_pubkey(ca->issuer);
    if (!ipub || X509_verify(crt, ipub) != 1) {
        char *m = kvmca_ossl_msg("CA: the signature does not verify with the "
                                 "issuer certificate");
        kvmca_set_err(err, "%s", m);
        free(m);
        ret = KVMCA_ESIGN;
        goto out;
    }
    der_len = i2d_X509(crt, &der);
    if (der_len <= 0)
        goto fail;
    SHA256(der, (size_t)der_len, md);
    fp = hex_lower(md, sizeof md);
    serial_hex = BN_bn2hex(serial);
    xasprintf(&line, "%s %s %s %s %s %lld\n", serial_hex,
              r->type == KVMCA_CERT_EK ? (ecc ? "ek-ecc" : "ek-rsa") : "platform",
              uuid, ca->host, fp, (long long)time(NULL));
    ret = kvmca_append_line(ca->state_dir, "issued", line);
    if (ret < 0) {
        kvmca_set_err(err, "CA state %s/issued: %s", ca->state_dir, strerror(-ret));
        goto out;
    }
    out->der = xmalloc((size_t)der_len);
    memcpy(out->der, der, (size_t)der_len);
    out->der_len = (size_t)der_len;
    out->serial_hex = xstrdup(serial_hex);
    out->sha256_hex = steal_ptr(fp);
    ret = 0;
    goto out;
fail:
    {
        char *m = kvmca_ossl_msg("CA: cannot build the certificate");
        kvmca_set_err(err, "%s", m);
        free(m);
    }
out:
    if (lockfd >= 0)
        close(lockfd);
    free(line);
    free(fp);
    OPENSSL_free(serial_hex);
    OPENSSL_free(der);
    X509_NAME_free(subj);
    ASN1_INTEGER_free(aserial);
    BN_free(serial);
    X509_free(crt);
    EVP_PKEY_free(ek);
    return ret;
}

