/* kvmca: the site CA. Real keys made with the openssl command, real
 * certificates checked with OpenSSL's APIs, a real softhsm2 token made with
 * softhsm2-util in a temp SOFTHSM2_CONF. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <time.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kvmca.h"
#include "kvmca_priv.h"
#include "xalloc.h"

#define UUID1 "9b1d6e1c-3f4a-4f5e-8a2b-1c2d3e4f5a6b"
#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char dir[64];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char *cmd autofree = NULL;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    assert_true(vasprintf(&cmd, fmt, ap) >= 0);
    va_end(ap);
    rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static char *path(const char *name)
{
    char *p;

    xasprintf(&p, "%s/%s", dir, name);
    return p;
}

/* A site root (RSA) and a host intermediate (ECC P-256) signed by it. */
static int setup_ca(void **state)
{
    strcpy(dir, "/tmp/test_kvmca.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key "
       "-out root.pem -subj '/CN=Site Root CA' -days 3650 "
       "-addext basicConstraints=critical,CA:TRUE "
       "-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 && "
       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout int.key -out int.csr -subj '/CN=host1 vTPM CA' >/dev/null 2>&1 && "
       "printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\n"
       "keyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\n"
       "authorityKeyIdentifier=keyid\\n' > ext.cnf && "
       "openssl x509 -req -in int.csr -CA root.pem -CAkey root.key "
       "-CAcreateserial -out int.pem -days 3650 -extfile ext.cnf >/dev/null 2>&1 && "
       "chmod 600 int.key root.key && cat int.pem root.pem > chain.pem && "
       "openssl genrsa -out ek.key 2048 >/dev/null 2>&1 && "
       "openssl rsa -in ek.key -noout -modulus | cut -d= -f2 > ek.mod && "
       "openssl ecparam -name secp384r1 -genkey -noout -out ek384.key && "
       "openssl ec -in ek384.key -pubout -outform der 2>/dev/null "
       "| tail -c 96 | od -An -tx1 -v | tr -d ' \\n' > ek384.xy", dir);
    *state = NULL;
    return 0;
}

static int teardown_ca(void **state)
{
    sh("rm -rf %s", dir);
    return 0;
}

static char *slurp(const char *name)
{
    char *p autofree = path(name);
    char *buf = xcalloc(1, 4096);
    FILE *f = fopen(p, "r");

    assert_non_null(f);
    assert_true(fread(buf, 1, 4095, f) > 0);
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static struct kvmca *open_ca(const char *key, const char *state_dir)
{
    char *chain autofree = path("chain.pem");
    char *st autofree = path(state_dir);
    struct kvmca_opts o = {
        .signing_key = key, .issuer_chain = chain, .state_dir = st,
        .host = "compute-7.example.org", .validity_days = -1,
    };
    struct kvmca *ca = NULL;
    char *err = NULL;
    int rc = kvmca_open(&o, &ca, &err);

    if (rc < 0)
        fail_msg("kvmca_open: %s", err);
    free(err);
    return ca;
}

static void ek_request(struct kvmca_request *r, const char *ek)
{
    *r = (struct kvmca_request){
        .type = KVMCA_CERT_EK, .ek = ek, .instance_uuid = UUID1,
        .tpm_manufacturer = "id:00001014", .tpm_model = "swtpm",
        .tpm_version = "id:20191023", .spec_family = "2.0", .spec_level = 0,
        .spec_revision = 164,
    };
}

static X509 *parse(const struct kvmca_cert *c)
{
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);

    assert_non_null(x);
    return x;
}

static X509 *issuer(void)
{
    char *p autofree = path("int.pem");
    FILE *f = fopen(p, "r");
    X509 *x;

    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

/* The DER of an extension's value, by OID text. */
static const ASN1_OCTET_STRING *ext_data(X509 *x, const char *oid, int *crit)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int i = X509_get_ext_by_OBJ(x, obj, -1);
    X509_EXTENSION *e;

    ASN1_OBJECT_free(obj);
    if (i < 0)
        return NULL;
    e = X509_get_ext(x, i);
    if (crit)
        *crit = X509_EXTENSION_get_critical(e);
    return X509_EXTENSION_get_data(e);
}

static void assert_dirname(X509 *x, const char *oids[3], const char *vals[3])
{
    int crit = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    GENERAL_NAME *g;
    X509_NAME *dn;

    assert_non_null(gens);
    assert_int_equal(crit, 1);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    g = sk_GENERAL_NAME_value(gens, 0);
    assert_int_equal(g->type, GEN_DIRNAME);
    dn = g->d.directoryName;
    assert_int_equal(X509_NAME_entry_count(dn), 3);
    for (int i = 0; i < 3; i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(dn, i);
        char buf[64];
        ASN1_STRING *s = X509_NAME_ENTRY_get_data(e);
        OBJ_obj2txt(buf, sizeof buf, X509_NAME_ENTRY_get_object(e), 1);
        assert_string_equal(buf, oids[i]);
        assert_int_equal(ASN1_STRING_type(s), V_ASN1_UTF8STRING);
        assert_int_equal(ASN1_STRING_length(s), (int)strlen(vals[i]));
        assert_memory_equal(ASN1_STRING_get0_data(s), vals[i], strlen(vals[i]));
    }
    GENERAL_NAMES_free(gens);
}

static void assert_eku(X509 *x, const char *oid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    char buf[64];

    assert_non_null(eku);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
    OBJ_obj2txt(buf, sizeof buf, sk_ASN1_OBJECT_value(eku, 0), 1);
    assert_string_equal(buf, oid);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
}

static void test_ek_rsa(void **state)
{
    char *key autofree = path("int.key");
    char *mod autofree = slurp("ek.mod");
    static const char *oids[3] = { "2.23.133.2.1", "2.23.133.2.2", "2.23.133.2.3" };
    static const char *vals[3] = { "id:00001014", "swtpm", "id:20191023" };
    /* swtpm_cert's encoding of tpmSpecification 2.0/0/164, byte for byte. */
    static const unsigned char sda[] = {
        0x30, 0x19, 0x30, 0x17, 0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10, 0x31,
        0x0e, 0x30, 0x0c, 0x0c, 0x03, 0x32, 0x2e, 0x30, 0x02, 0x01, 0x00, 0x02,
        0x02, 0x00, 0xa4,
    };
    static const unsigned char host[] = { 0x0c, 21, 'c', 'o', 'm', 'p', 'u', 't',
        'e', '-', '7', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g' };
    struct kvmca *ca = open_ca(key, "state");
    struct kvmca_request r;
    struct kvmca_cert c = { 0 };
    const ASN1_OCTET_STRING *d;
    ASN1_BIT_STRING *ku;
    BASIC_CONSTRAINTS *bc;
    X509 *x, *is = issuer();
    EVP_PKEY *ek = NULL;
    char cn[64];
    char *err = NULL;
    int crit = 0;

    ek_request(&r, mod);
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), 0);
    x = parse(&c);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(is)), 1);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(is)), 0);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, UUID1);
    /* The certificate is over the EK given. */
    assert_int_equal(kvmca_ek_parse(mod, &ek, &err), 0);
    assert_int_equal(EVP_PKEY_eq(ek, X509_get0_pubkey(x)), 1);
    assert_dirname(x, oids, vals);
    bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
    assert_int_equal(crit, 1);
    assert_true(ASN1_BIT_STRING_get_bit(ku, 2));   /* keyEncipherment */
    assert_false(ASN1_BIT_STRING_get_bit(ku, 4));  /* keyAgreement */
    assert_false(ASN1_BIT_STRING_get_bit(ku, 0));  /* digitalSignature */
    ASN1_BIT_STRING_free(ku);
    assert_eku(x, "2.23.133.8.1");
    d = ext_data(x, "2.5.29.9", &crit);
    assert_non_null(d);
    assert_int_equal(crit, 0);
    assert_int_equal(ASN1_STRING_length(d), sizeof sda);
    assert_memory_equal(ASN1_STRING_get0_data(d), sda, sizeof sda);
    d = ext_data(x, KVMCA_OID_HOST, &crit);
    assert_non_null(d);
    assert_int_equal(crit, 0);
    assert_int_equal(ASN1_STRING_length(d), sizeof host);
    assert_memory_equal(ASN1_STRING_get0_data(d), host, sizeof host);
    assert_non_null(ext_data(x, "2.5.29.35", NULL));  /* authorityKeyIdentifier */
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), 253402300798), 1);
    assert_int_equal(strlen(c.sha256_hex), 64);
    /* An unknown critical extension would make verifiers refuse it. */
    assert_true(X509_check_purpose(x, -1, 0) == 1);
    assert_int_equal(X509_get_extension_flags(x) & EXFLAG_CRITICAL, 0);

    X509_free(x);
    X509_free(is);
    EVP_PKEY_free(ek);
    kvmca_cert_clear(&c);
    kvmca_free(ca);
}

static void test_ek_ecc_and_platform(void **state)
{
    char *key autofree = path("int.key");
    char *xy autofree = slurp("ek384.xy");
    char *mod autofree = slurp("ek.mod");
    char *ek autofree = NULL;
    static const char *oids[3] = { "2.23.133.5.1.1", "2.23.133.5.1.4", "2.23.133.5.1.5" };
    static const char *vals[3] = { "vtpmd", "QEMU", "2.1" };
    struct kvmca *ca = open_ca(key, "state");
    struct kvmca_request r;
    struct kvmca_cert c = { 0 };
    ASN1_BIT_STRING *ku;
    X509 *x, *is = issuer();
    char *err = NULL;

    assert_int_equal(strlen(xy), 192);
    xasprintf(&ek, "x=%.96s,y=%s,id=secp384r1", xy, xy + 96);
    ek_request(&r, ek);
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), 0);
    x = parse(&c);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(is)), 1);
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(x)), 384);
    ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
    assert_true(ASN1_BIT_STRING_get_bit(ku, 4));   /* keyAgreement */
    assert_false(ASN1_BIT_STRING_get_bit(ku, 2));
    ASN1_BIT_STRING_free(ku);
    X509_free(x);
    kvmca_cert_clear(&c);

    r = (struct kvmca_request){
        .type = KVMCA_CERT_PLATFORM, .ek = mod, .instance_uuid = UUID1,
        .platform_manufacturer = "vtpmd", .platform_model = "QEMU",
        .platform_version = "2.1",
    };
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), 0);
    x = parse(&c);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(is)), 1);
    assert_dirname(x, oids, vals);
    assert_eku(x, "2.23.133.8.2");
    assert_null(ext_data(x, "2.5.29.9", NULL));
    X509_free(x);
    kvmca_cert_clear(&c);
    /* Platform attributes are required. */
    r.platform_model = NULL;
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), -EINVAL);
    assert_non_null(strstr(err, "--platform-model"));
    free(err);
    X509_free(is);
    kvmca_free(ca);
}

static void test_serials_unique_durable(void **state)
{
    char *key autofree = path("int.key");
    char *mod autofree = slurp("ek.mod");
    char *seen[6] = { 0 };
    struct kvmca_request r;
    char *err = NULL;

    ek_request(&r, mod);
    for (int round = 0; round < 2; round++) {
        /* A new process (re-opened CA) continues the sequence. */
        struct kvmca *ca = open_ca(key, "serials");
        for (int i = 0; i < 3; i++) {
            struct kvmca_cert c = { 0 };
            assert_int_equal(kvmca_issue(ca, &r, &c, &err), 0);
            assert_int_equal(strlen(c.serial_hex), 32);
            for (int j = 0; j < round * 3 + i; j++)
                assert_string_not_equal(seen[j], c.serial_hex);
            seen[round * 3 + i] = xstrdup(c.serial_hex);
            kvmca_cert_clear(&c);
        }
        kvmca_free(ca);
    }
    /* Same random prefix, counter 1..6. */
    assert_memory_equal(seen[0], seen[5], 16);
    assert_string_equal(seen[5] + 16, "0000000000000006");
    for (int i = 0; i < 6; i++)
        free(seen[i]);
}

static void test_bad_requests(void **state)
{
    char *key autofree = path("int.key");
    char *mod autofree = slurp("ek.mod");
    struct kvmca *ca = open_ca(key, "state");
    struct kvmca_request r;
    struct kvmca_cert c = { 0 };
    char *err = NULL;
    static const char *bad_eks[] = {
        "", "zz", "abcdef",                          /* not a 2048-bit modulus */
        "x=01,y=02,id=secp256r1",                     /* not on the curve */
        "x=01,y=02,id=brainpool",                     /* unknown curve */
        "x=01",
    };

    for (size_t i = 0; i < sizeof bad_eks / sizeof bad_eks[0]; i++) {
        ek_request(&r, bad_eks[i]);
        assert_int_equal(kvmca_issue(ca, &r, &c, &err), -EINVAL);
        assert_non_null(strstr(err, "EK"));
        assert_null(c.der);
    }
    ek_request(&r, mod);
    r.instance_uuid = "instance-00000001";
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), -EINVAL);
    assert_non_null(strstr(err, "UUID"));
    ek_request(&r, mod);
    r.tpm_model = "sw\ntpm";
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), -EINVAL);
    free(err);
    kvmca_free(ca);
}

static void test_vmid(void **state)
{
    char u[37];

    assert_int_equal(kvmca_vmid_uuid("instance-00000001:" UUID1, u), 0);
    assert_string_equal(u, UUID1);
    assert_int_equal(kvmca_vmid_uuid(UUID1, u), 0);
    assert_int_equal(kvmca_vmid_uuid("instance-00000001", u), -EINVAL);
    assert_int_equal(kvmca_vmid_uuid(NULL, u), -EINVAL);
}

static void test_key_refused(void **state)
{
    char *key autofree = path("int.key");
    char *chain autofree = path("chain.pem");
    char *rootkey autofree = path("root.key");
    char *st autofree = path("refused");
    struct kvmca_opts o = { .signing_key = key, .issuer_chain = chain,
                            .state_dir = st, .host = "h", .validity_days = -1 };
    struct kvmca *ca = NULL;
    char *err = NULL;

    chmod(key, 0640);
    assert_int_equal(kvmca_open(&o, &ca, &err), KVMCA_EKEYMODE);
    assert_null(ca);
    assert_non_null(strstr(err, "mode 0640 is refused"));
    chmod(key, 0600);
    if (geteuid() == 0) {
        assert_int_equal(chown(key, 4242, (gid_t)-1), 0);
        assert_int_equal(kvmca_open(&o, &ca, &err), KVMCA_EKEYMODE);
        assert_non_null(strstr(err, "owned by uid 4242"));
        assert_int_equal(chown(key, 0, (gid_t)-1), 0);
    }
    /* An encrypted key: refused without prompting. */
    sh("cd %s && openssl pkey -in int.key -aes256 -passout pass:x -out enc.key && "
       "chmod 600 enc.key", dir);
    {
        char *enc autofree = path("enc.key");
        o.signing_key = enc;
        assert_int_equal(kvmca_open(&o, &ca, &err), -EINVAL);
        assert_non_null(strstr(err, "encrypted key is not supported"));
        o.signing_key = key;
    }
    /* A chain out of order (the root is not the issuer's issuer here). */
    sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key "
       "-out other.pem -subj '/CN=Other' -days 30 >/dev/null 2>&1 && "
       "cat int.pem other.pem > badchain.pem", dir);
    {
        char *bad autofree = path("badchain.pem");
        o.issuer_chain = bad;
        assert_int_equal(kvmca_open(&o, &ca, &err), -EINVAL);
        assert_non_null(strstr(err, "certificate 2 is not the issuer of certificate 1"));
        o.issuer_chain = chain;
    }
    /* A key that is not the issuer's. */
    o.signing_key = rootkey;
    assert_int_equal(kvmca_open(&o, &ca, &err), -EINVAL);
    assert_non_null(strstr(err, "does not match"));
    assert_null(ca);
    o.signing_key = key;
    assert_int_equal(kvmca_open(&o, &ca, &err), 0);
    kvmca_free(ca);
    free(err);
}

static void test_revoke_crl(void **state)
{
    char *key autofree = path("int.key");
    char *mod autofree = slurp("ek.mod");
    struct kvmca *ca = open_ca(key, "crl");
    struct kvmca_request r;
    struct kvmca_cert c1 = { 0 }, c2 = { 0 };
    const unsigned char *p;
    unsigned char *der = NULL;
    size_t len;
    X509_CRL *crl;
    X509_REVOKED *rev;
    X509 *x1, *x2, *is = issuer();
    ASN1_INTEGER *num;
    char *err = NULL;

    ek_request(&r, mod);
    assert_int_equal(kvmca_issue(ca, &r, &c1, &err), 0);
    assert_int_equal(kvmca_issue(ca, &r, &c2, &err), 0);
    assert_int_equal(kvmca_revoke(ca, c1.serial_hex, &err), 0);
    assert_int_equal(kvmca_revoke(ca, c1.serial_hex, &err), 0);  /* again: ok */
    assert_int_equal(kvmca_revoke(ca, "0123456789", &err), -ENOENT);
    assert_non_null(strstr(err, "not issued"));
    assert_int_equal(kvmca_revoke(ca, "xyz", &err), -EINVAL);
    assert_int_equal(kvmca_crl(ca, 0, &der, &len, &err), -EINVAL);

    assert_int_equal(kvmca_crl(ca, 3600, &der, &len, &err), 0);
    p = der;
    crl = d2i_X509_CRL(NULL, &p, (long)len);
    assert_non_null(crl);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(is)), 1);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(is)), 0);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
    x1 = parse(&c1);
    x2 = parse(&c2);
    assert_int_equal(X509_CRL_get0_by_cert(crl, &rev, x1), 1);
    assert_int_equal(X509_CRL_get0_by_cert(crl, &rev, x2), 0);
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_non_null(num);
    assert_int_equal(ASN1_INTEGER_get(num), 1);
    ASN1_INTEGER_free(num);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), time(NULL) + 3000), 1);
    X509_CRL_free(crl);
    /* Every certificate of an instance (EK and platform, as on delete). */
    {
        struct kvmca_cert c3 = { 0 };
        unsigned int n = 99;
        r.instance_uuid = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";
        assert_int_equal(kvmca_issue(ca, &r, &c3, &err), 0);
        assert_int_equal(kvmca_revoke_instance(ca, UUID1, &n, &err), 0);
        assert_int_equal(n, 1);   /* c2; c1 already revoked */
        assert_int_equal(kvmca_revoke_instance(ca, UUID1, &n, &err), 0);
        assert_int_equal(n, 0);
        assert_int_equal(kvmca_revoke_instance(ca, "7d3c2b1a-0000-4000-8000-000000000001", &n, &err), 0);
        assert_int_equal(n, 0);
        assert_int_equal(kvmca_revoke_instance(ca, "nope", &n, &err), -EINVAL);
        free(der);
        assert_int_equal(kvmca_crl(ca, 60, &der, &len, &err), 0);
        p = der;
        crl = d2i_X509_CRL(NULL, &p, (long)len);
        assert_int_equal(X509_CRL_get0_by_cert(crl, &rev, x2), 1);
        assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
        X509_CRL_free(crl);
        free(der);
        kvmca_cert_clear(&c3);
    }
    /* The CRL number grows. */
    assert_int_equal(kvmca_crl(ca, 60, &der, &len, &err), 0);
    p = der;
    crl = d2i_X509_CRL(NULL, &p, (long)len);
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_int_equal(ASN1_INTEGER_get(num), 3);
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    free(der);

    X509_free(x1);
    X509_free(x2);
    X509_free(is);
    kvmca_cert_clear(&c1);
    kvmca_cert_clear(&c2);
    free(err);
    kvmca_free(ca);
}

static bool have_softhsm(void)
{
    if (access("/usr/bin/softhsm2-util", X_OK) == 0 && access(SOFTHSM_MODULE, R_OK) == 0)
        return true;
    if (getenv("CI") && strcmp(getenv("CI"), "true") == 0)
        fail_msg("softhsm2 is missing (CI=true): run scripts/install-deps.sh");
    return false;
}

static void test_pkcs11(void **state)
{
    char *mod autofree = slurp("ek.mod");
    char *uri autofree = NULL;
    char *chain autofree = path("chain.pem");
    char *st autofree = path("p11state");
    char *conf autofree = path("softhsm2.conf");
    struct kvmca *ca;
    struct kvmca_request r;
    struct kvmca_cert c = { 0 };
    struct kvmca_opts o = { .issuer_chain = chain, .state_dir = st, .host = "h",
                            .validity_days = 30 };
    X509 *x, *is = issuer();
    char *err = NULL;

    if (!have_softhsm())
        skip();
    sh("cd %s && mkdir -p tokens && "
       "printf 'directories.tokendir = %s/tokens\\nobjectstore.backend = file\\n"
       "log.level = ERROR\\n' > softhsm2.conf && "
       "SOFTHSM2_CONF=%s softhsm2-util --init-token --free --label vtpmca "
       "--pin 1234 --so-pin 5678 >/dev/null && "
       "openssl pkcs8 -topk8 -nocrypt -in int.key -out int.p8 && "
       "SOFTHSM2_CONF=%s softhsm2-util --import int.p8 --token vtpmca "
       "--label cakey --id 01 --pin 1234 >/dev/null && "
       "echo 1234 > pin && chmod 600 pin", dir, dir, conf, conf);
    setenv("SOFTHSM2_CONF", conf, 1);

    /* Wrong PIN: a clear error, no CA. */
    xasprintf(&uri, "pkcs11:token=vtpmca;object=cakey;type=private"
              "?module-path=%s&pin-value=9999", SOFTHSM_MODULE);
    o.signing_key = uri;
    ca = NULL;
    assert_true(kvmca_open(&o, &ca, &err) < 0);
    assert_null(ca);
    assert_non_null(strstr(err, "PKCS#11"));

    free(uri);
    xasprintf(&uri, "pkcs11:token=vtpmca;object=cakey;type=private"
              "?module-path=%s&pin-source=file:%s/pin", SOFTHSM_MODULE, dir);
    o.signing_key = uri;
    /* A PIN file others can read: refused like a loose key file. */
    sh("chmod 0644 %s/pin", dir);
    assert_int_equal(kvmca_open(&o, &ca, &err), -EPERM);
    assert_non_null(strstr(err, "mode 0644 is refused"));
    sh("chmod 0600 %s/pin", dir);
    assert_int_equal(kvmca_open(&o, &ca, &err), 0);
    ek_request(&r, mod);
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), 0);
    x = parse(&c);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(is)), 1);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), time(NULL) + 29 * 86400), 1);
    X509_free(x);
    kvmca_cert_clear(&c);

    /* The HSM gone (token removed) under a running CA: a clear error, no
     * certificate. */
    sh("rm -rf %s/tokens/*", dir);
    assert_int_equal(kvmca_issue(ca, &r, &c, &err), KVMCA_ESIGN);
    assert_null(c.der);
    assert_non_null(strstr(err, "HSM or token gone"));
    kvmca_free(ca);
    X509_free(is);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ek_rsa),
        cmocka_unit_test(test_ek_ecc_and_platform),
        cmocka_unit_test(test_serials_unique_durable),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_vmid),
        cmocka_unit_test(test_key_refused),
        cmocka_unit_test(test_revoke_crl),
        cmocka_unit_test(test_pkcs11),
    };

    return cmocka_run_group_tests(tests, setup_ca, teardown_ca);
}
