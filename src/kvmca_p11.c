/* The PKCS#11 half of the site CA: a key in an HSM, a softhsm2 token or
 * the host's TPM (tpm2-pkcs11), reached through OpenSSL's pkcs11 ENGINE
 * (Debian 12: libengine-pkcs11-openssl, libp11 0.4.12).
 *
 * Debian 12 ships no pkcs11-provider, so the ENGINE API is the only
 * PKCS#11 route OpenSSL 3 has here. It is deprecated, not removed: this
 * file, and only this file, silences the deprecation warnings. When the
 * provider is available, OSSL_STORE with "pkcs11:" URIs replaces it.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include "kvmca_priv.h"
#include "xalloc.h"

struct kvmca_p11 {
    ENGINE *engine;
    bool initialised;
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 7512 percent-decoding of one attribute value. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
            hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int read_pin_file(const char *src, char **pin, char **err)
{
    const char *path = src;
    char buf[256];
    FILE *f;

    if (strncmp(path, "file:", 5) == 0)
        path += 5;
    struct stat st;

    f = fopen(path, "re");
    if (!f) {
        int e = errno;
        xasprintf(err, "PKCS#11 pin-source %s: %s", path, strerror(e));
        return -e;
    }
    /* The PIN unlocks the key: the same rule as a PEM key file. */
    if (fstat(fileno(f), &st) < 0 || (st.st_mode & 077) != 0) {
        xasprintf(err, "PKCS#11 pin-source %s: mode %04o is refused: the PIN "
                  "file must not be readable by group or others (chmod 0600)",
                  path, (unsigned)(st.st_mode & 07777));
        fclose(f);
        return -EPERM;
    }
    if (!fgets(buf, sizeof buf, f))
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    *pin = xstrdup(buf);
    return 0;
}

void kvmca_p11_free(struct kvmca_p11 *h)
{
    if (!h)
        return;
    if (h->initialised)
        ENGINE_finish(h->engine);
    ENGINE_free(h->engine);
    free(h);
}

int kvmca_p11_load(const char *uri, EVP_PKEY **key, struct kvmca_p11 **handle,
                   char **err)
{
    char *module autofree = NULL;
    char *pin autofree = NULL;
    char *keyuri autofree = NULL;
    struct kvmca_p11 *h = xcalloc(1, sizeof *h);
    size_t cap = strlen(uri) + 1, len;
    const char *p;
    EVP_PKEY *pk;
    int ret;

    if (strncmp(uri, "pkcs11:", 7) != 0) {
        xasprintf(err, "not a PKCS#11 URI: %s", uri);
        ret = -EINVAL;
        goto out;
    }
    /* Split path (;) and query (? &) attributes; keep the ones that name
     * the key for the engine. */
    keyuri = xmalloc(cap);
    strcpy(keyuri, "pkcs11:");
    len = 7;
    p = uri + 7;
    while (*p) {
        size_t n = strcspn(p, ";?&");
        if (n > 0) {
            if (strncmp(p, "module-path=", 12) == 0) {
                free(module);
                module = pct_decode(p + 12, n - 12);
            } else if (strncmp(p, "pin-value=", 10) == 0) {
                free(pin);
                pin = pct_decode(p + 10, n - 10);
            } else if (strncmp(p, "pin-source=", 11) == 0) {
                char *src autofree = pct_decode(p + 11, n - 11);
                free(pin);
                pin = NULL;
                ret = read_pin_file(src, &pin, err);
                if (ret < 0)
                    goto out;
            } else {
                if (len > 7)
                    keyuri[len++] = ';';
                memcpy(keyuri + len, p, n);
                len += n;
            }
        }
        p += n;
        if (*p)
            p++;
    }
    keyuri[len] = '\0';

    ENGINE_load_builtin_engines();
    h->engine = ENGINE_by_id("pkcs11");
    if (!h->engine) {
        *err = kvmca_ossl_msg("PKCS#11: OpenSSL's pkcs11 engine is not available "
                              "(install libengine-pkcs11-openssl)");
        ret = -ENOENT;
        goto out;
    }
    if (module && !ENGINE_ctrl_cmd_string(h->engine, "MODULE_PATH", module, 0)) {
        *err = kvmca_ossl_msg("PKCS#11: cannot set module-path %s", module);
        ret = -EINVAL;
        goto out;
    }
    if (!ENGINE_init(h->engine)) {
        *err = kvmca_ossl_msg("PKCS#11: cannot initialise the pkcs11 engine%s%s",
                              module ? " with module " : "", module ? module : "");
        ret = -EIO;
        goto out;
    }
    h->initialised = true;
    if (pin && !ENGINE_ctrl_cmd_string(h->engine, "PIN", pin, 0)) {
        *err = kvmca_ossl_msg("PKCS#11: cannot set the PIN");
        ret = -EINVAL;
        goto out;
    }
    /* UI_null: never prompt (a daemon or swtpm_setup has no terminal). */
    pk = ENGINE_load_private_key(h->engine, keyuri, (UI_METHOD *)UI_null(), NULL);
    if (!pk) {
        *err = kvmca_ossl_msg("PKCS#11: cannot load the signing key %s "
                              "(token absent, wrong PIN or no such object?)",
                              keyuri);
        ret = -EIO;
        goto out;
    }
    *key = pk;
    *handle = steal_ptr(h);
    ret = 0;
out:
    if (pin)
        OPENSSL_cleanse(pin, strlen(pin));
    kvmca_p11_free(h);
    return ret;
}
