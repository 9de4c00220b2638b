/* The EK public key as swtpm_setup passes it to its certificate tool
 * (swtpm_localca's --ek): an RSA modulus in hex, or x=<hex>,y=<hex>
 * [,id=<curve>] for ECC. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "kvmca.h"
#include "kvmca_priv.h"
#include "xalloc.h"

bool kvmca_all_hex(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;

    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static int ek_rsa(const char *hex, EVP_PKEY **out, char **err)
{
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *n = NULL, *e = NULL;
    int ret = -EINVAL, bits;

    if (!kvmca_all_hex(hex, strlen(hex)) || strlen(hex) > 2048) {
        kvmca_set_err(err, "EK: not an RSA modulus in hex");
        return -EINVAL;
    }
    if (!BN_hex2bn(&n, hex) || !(e = BN_new()) || !BN_set_word(e, 65537))
        goto out;
    bits = BN_num_bits(n);
    if (bits != 2048 && bits != 3072 && bits != 4096) {
        kvmca_set_err(err, "EK: RSA modulus of %d bits (2048, 3072 or 4096 expected)",
                bits);
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    *out = pkey_fromdata("RSA", bld);
    if (*out)
        ret = 0;
    else
        kvmca_set_err(err, "EK: not a valid RSA public key");
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return ret;
}

/* Left-pads a hex coordinate into len bytes. */
static int coord(const char *hex, size_t hexlen, unsigned char *dst, size_t len)
{
    size_t nbytes = (hexlen + 1) / 2;
    unsigned char *p;

    if (!kvmca_all_hex(hex, hexlen) || nbytes > len)
        return -EINVAL;
    memset(dst, 0, len);
    p = dst + len - nbytes;
    for (size_t i = 0; i < hexlen; i++) {
        char c = hex[hexlen - 1 - i];
        int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        p[nbytes - 1 - i / 2] |= (unsigned char)(i % 2 ? v << 4 : v);
    }
    return 0;
}

static int ek_ecc(const char *spec, EVP_PKEY **out, char **err)
{
    static const struct {
        const char *id, *group;
        size_t len;
    } curves[] = {
        { "secp256r1", "P-256", 32 }, { "prime256v1", "P-256", 32 },
        { "secp384r1", "P-384", 48 }, { "secp521r1", "P-521", 66 },
    };
    const char *x = NULL, *y = NULL, *id = "secp256r1", *p = spec;
    size_t xl = 0, yl = 0, idl = strlen(id), i;
    unsigned char point[1 + 2 * 66];
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *chk = NULL;
    int ret = -EINVAL;

    while (*p) {
        size_t n = strcspn(p, ",");
        if (strncmp(p, "x=", 2) == 0) {
            x = p + 2;
            xl = n - 2;
        } else if (strncmp(p, "y=", 2) == 0) {
            y = p + 2;
            yl = n - 2;
        } else if (strncmp(p, "id=", 3) == 0) {
            id = p + 3;
            idl = n - 3;
        } else {
            kvmca_set_err(err, "EK: unknown ECC parameter in '%s'", spec);
            return -EINVAL;
        }
        p += n;
        if (*p)
            p++;
    }
    for (i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (strlen(curves[i].id) == idl && strncmp(curves[i].id, id, idl) == 0)
            break;
    if (i == sizeof curves / sizeof curves[0]) {
        kvmca_set_err(err, "EK: unsupported curve '%.*s' (secp256r1, secp384r1, "
                "secp521r1)", (int)idl, id);
        return -EINVAL;
    }
    if (!x || !y || coord(x, xl, point + 1, curves[i].len) < 0 ||
        coord(y, yl, point + 1 + curves[i].len, curves[i].len) < 0) {
        kvmca_set_err(err, "EK: ECC key needs x=<hex>,y=<hex> of at most %zu bytes",
                curves[i].len);
        return -EINVAL;
    }
    point[0] = POINT_CONVERSION_UNCOMPRESSED;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                                 curves[i].group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                          1 + 2 * curves[i].len))
        goto out;
    *out = pkey_fromdata("EC", bld);
    if (*out) {
        chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
        if (chk && EVP_PKEY_public_check(chk) == 1) {
            ret = 0;
        } else {
            EVP_PKEY_free(*out);
            *out = NULL;
        }
    }
    if (ret < 0)
        kvmca_set_err(err, "EK: the point is not on curve %s", curves[i].id);
out:
    ERR_clear_error();
    EVP_PKEY_CTX_free(chk);
    OSSL_PARAM_BLD_free(bld);
    return ret;
}

int kvmca_ek_parse(const char *ek, EVP_PKEY **out, char **err)
{
    if (!ek || !*ek) {
        kvmca_set_err(err, "EK: missing");
        return -EINVAL;
    }
    if (strchr(ek, '='))
        return ek_ecc(ek, out, err);
    return ek_rsa(ek, out, err);
}

