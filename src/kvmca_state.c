/* The site CA's state directory: "serial" (8 random bytes fixed at
 * creation, hex, and a counter), "issued" and "revoked" (append-only
 * lines), "crlnumber", and "lock" (flock: swtpm_setup may run the tool
 * for several domains at once). Serial reservation, revocation, the CRL.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fileutil.h"
#include "kvmca.h"
#include "kvmca_priv.h"
#include "uuidutil.h"
#include "xalloc.h"

/* ---- small file helpers ---- */

/* Replaces dir/name with text, durably (tmp, fsync, rename, fsync dir). */
static int replace_file(const char *dir, const char *name, const char *text)
{
    char *path autofree = NULL;
    char *tmp autofree = NULL;
    int fd, ret;

    xasprintf(&path, "%s/%s", dir, name);
    xasprintf(&tmp, "%s/.%s.tmp", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ret = file_write_all(fd, text, strlen(text));
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret == 0 && rename(tmp, path) < 0)
        ret = -errno;
    if (ret == 0)
        ret = file_fsync_dir(dir);
    if (ret < 0)
        unlink(tmp);
    return ret;
}

int kvmca_append_line(const char *dir, const char *name, const char *line)
{
    char *path autofree = NULL;
    int fd, ret;

    bool created = false;

    xasprintf(&path, "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        created = true;
    }
    if (fd < 0)
        return -errno;
    ret = file_write_all(fd, line, strlen(line));
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    /* The directory entry needs syncing only when the file is new. */
    if (ret == 0 && created)
        ret = file_fsync_dir(dir);
    return ret;
}

char *kvmca_read_text(const char *path)
{
    char *buf = NULL;
    size_t cap = 0, len = 0;
    FILE *f;

    f = fopen(path, "re");
    if (!f)
        return NULL;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = xrealloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Takes the state directory's lock; returns the fd to close. */
int kvmca_state_lock(const struct kvmca *ca, char **err)
{
    char *path autofree = NULL;
    int fd;

    xasprintf(&path, "%s/lock", ca->state_dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        kvmca_set_err(err, "CA state %s: %s", path, strerror(e));
        return -e;
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            kvmca_set_err(err, "CA state %s: lock: %s", path, strerror(e));
            close(fd);
            return -e;
        }
    }
    return fd;
}

/* Reserves the next serial durably: 8 random bytes fixed when the state
 * directory was first used, then a 64-bit counter. The random half keeps
 * serials of different hosts' CAs (or a re-created state directory) apart. */
int kvmca_next_serial(struct kvmca *ca, BIGNUM **out, char **err)
{
    char *text autofree = NULL;
    char *path autofree = NULL;
    char prefix[17], line[64];
    unsigned long long counter = 0;
    unsigned char bytes[16];
    int ret;

    xasprintf(&path, "%s/serial", ca->state_dir);
    text = kvmca_read_text(path);
    if (text) {
        if (sscanf(text, "%16[0-9a-f] %llu", prefix, &counter) != 2 ||
            strlen(prefix) != 16) {
            kvmca_set_err(err, "CA state %s: corrupt serial file", path);
            return -EINVAL;
        }
    } else if (errno == ENOENT) {
        unsigned char r[8];
        if (RAND_bytes(r, sizeof r) != 1) {
            kvmca_set_err(err, "CA: no randomness for the serial prefix");
            return -EIO;
        }
        r[0] = (unsigned char)((r[0] & 0x7f) | 0x40); /* positive, 16 bytes */
        for (int i = 0; i < 8; i++)
            snprintf(prefix + 2 * i, 3, "%02x", r[i]);
    } else {
        int e = errno;
        kvmca_set_err(err, "CA state %s: %s", path, strerror(e));
        return -e;
    }
    counter++;
    snprintf(line, sizeof line, "%s %llu\n", prefix, counter);
    ret = replace_file(ca->state_dir, "serial", line);
    if (ret < 0) {
        kvmca_set_err(err, "CA state %s: %s", path, strerror(-ret));
        return ret;
    }
    for (int i = 0; i < 8; i++) {
        unsigned int b;
        sscanf(prefix + 2 * i, "%2x", &b);
        bytes[i] = (unsigned char)b;
        bytes[8 + i] = (unsigned char)(counter >> (56 - 8 * i));
    }
    *out = BN_bin2bn(bytes, sizeof bytes, NULL);
    return *out ? 0 : -ENOMEM;
}

/* ---- revocation ---- */

static bool index_has(const char *text, const char *serial)
{
    size_t n = strlen(serial);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, serial, n) == 0 && p[n] == ' ')
            return true;
    return false;
}

/* Appends norm to the revoked index unless it is there; lock held. */
static int revoke_locked(struct kvmca *ca, const char *norm, const char *revoked,
                         char **err)
{
    char *line autofree = NULL;
    int ret;

    if (revoked && index_has(revoked, norm))
        return 0;
    xasprintf(&line, "%s %lld\n", norm, (long long)time(NULL));
    ret = kvmca_append_line(ca->state_dir, "revoked", line);
    if (ret < 0)
        kvmca_set_err(err, "CA state %s/revoked: %s", ca->state_dir, strerror(-ret));
    return ret;
}

int kvmca_revoke(struct kvmca *ca, const char *serial_hex, char **err)
{
    char *issued autofree = NULL;
    char *revoked autofree = NULL;
    char *path autofree = NULL;
    char *norm autofree = NULL;
    BIGNUM *bn = NULL;
    int lockfd, ret;

    if (!serial_hex || !kvmca_all_hex(serial_hex, strlen(serial_hex)) ||
        strlen(serial_hex) > 40 || !BN_hex2bn(&bn, serial_hex)) {
        kvmca_set_err(err, "revoke: '%s' is not a serial number in hex",
                serial_hex ? serial_hex : "");
        return -EINVAL;
    }
    {
        char *h = BN_bn2hex(bn);
        norm = xstrdup(h);
        OPENSSL_free(h);
        BN_free(bn);
    }
    lockfd = kvmca_state_lock(ca, err);
    if (lockfd < 0)
        return lockfd;
    xasprintf(&path, "%s/issued", ca->state_dir);
    issued = kvmca_read_text(path);
    if (!issued || !index_has(issued, norm)) {
        kvmca_set_err(err, "revoke: serial %s was not issued by this CA", norm);
        ret = -ENOENT;
        goto out;
    }
    free(path);
    xasprintf(&path, "%s/revoked", ca->state_dir);
    revoked = kvmca_read_text(path);
    ret = revoke_locked(ca, norm, revoked, err);
out:
    close(lockfd);
    return ret;
}

int kvmca_revoke_instance(struct kvmca *ca, const char *instance_uuid,
                          unsigned int *count, char **err)
{
    char *issued autofree = NULL;
    char *revoked autofree = NULL;
    char *path autofree = NULL;
    char uuid[UUIDUTIL_BUFLEN];
    unsigned int n = 0;
    int lockfd, ret = 0;

    if (!instance_uuid || uuid_canonical(instance_uuid, uuid) < 0) {
        kvmca_set_err(err, "revoke: '%s' is not an instance UUID",
                instance_uuid ? instance_uuid : "");
        return -EINVAL;
    }
    lockfd = kvmca_state_lock(ca, err);
    if (lockfd < 0)
        return lockfd;
    xasprintf(&path, "%s/issued", ca->state_dir);
    issued = kvmca_read_text(path);
    free(path);
    xasprintf(&path, "%s/revoked", ca->state_dir);
    revoked = kvmca_read_text(path);
    /* issued lines: serial type uuid host sha256 time */
    for (char *p = issued; ret == 0 && p && *p;) {
        char serial[64], type[16], u[64];
        char *nl = strchr(p, '\n');
        if (sscanf(p, "%63s %15s %63s", serial, type, u) == 3 &&
            strcmp(u, uuid) == 0) {
            if (!revoked || !index_has(revoked, serial))
                n++;
            ret = revoke_locked(ca, serial, revoked, err);
        }
        p = nl ? nl + 1 : NULL;
    }
    close(lockfd);
    if (ret == 0 && count)
        *count = n;
    return ret;
}

int kvmca_crl(struct kvmca *ca, long next_update_secs, unsigned char **der,
              size_t *der_len, char **err)
{
    char *revoked autofree = NULL;
    char *path autofree = NULL;
    char *numtext autofree = NULL;
    char numline[32];
    unsigned long long crlnum = 0;
    X509_CRL *crl = NULL;
    ASN1_TIME *t = NULL;
    ASN1_INTEGER *num = NULL;
    X509V3_CTX ctx;
    X509_EXTENSION *aki = NULL;
    unsigned char *out = NULL;
    int lockfd, len, ret = -ENOMEM;

    if (next_update_secs <= 0) {
        kvmca_set_err(err, "CRL: nextUpdate must be in the future");
        return -EINVAL;
    }
    lockfd = kvmca_state_lock(ca, err);
    if (lockfd < 0)
        return lockfd;
    xasprintf(&path, "%s/revoked", ca->state_dir);
    revoked = kvmca_read_text(path);
    free(path);
    xasprintf(&path, "%s/crlnumber", ca->state_dir);
    numtext = kvmca_read_text(path);
    if (numtext)
        crlnum = strtoull(numtext, NULL, 10);
    crlnum++;
    snprintf(numline, sizeof numline, "%llu\n", crlnum);
    ret = replace_file(ca->state_dir, "crlnumber", numline);
    if (ret < 0) {
        kvmca_set_err(err, "CA state %s: %s", path, strerror(-ret));
        goto out;
    }
    ret = -ENOMEM;
    crl = X509_CRL_new();
    t = ASN1_TIME_new();
    num = ASN1_INTEGER_new();
    if (!crl || !t || !num || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->issuer)) ||
        !X509_gmtime_adj(t, 0) || !X509_CRL_set1_lastUpdate(crl, t) ||
        !X509_gmtime_adj(t, next_update_secs) || !X509_CRL_set1_nextUpdate(crl, t))
        goto fail;
    for (char *p = revoked; p && *p;) {
        char serial[64];
        long long when;
        char *nl = strchr(p, '\n');
        if (sscanf(p, "%63s %lld", serial, &when) == 2) {
            X509_REVOKED *rev = X509_REVOKED_new();
            BIGNUM *bn = NULL;
            ASN1_INTEGER *ai = NULL;
            ASN1_TIME *rt = ASN1_TIME_set(NULL, (time_t)when);
            int ok = rev && rt && BN_hex2bn(&bn, serial) &&
                     (ai = BN_to_ASN1_INTEGER(bn, NULL)) &&
                     X509_REVOKED_set_serialNumber(rev, ai) &&
                     X509_REVOKED_set_revocationDate(rev, rt) &&
                     X509_CRL_add0_revoked(crl, rev);
            ASN1_INTEGER_free(ai);
            ASN1_TIME_free(rt);
            BN_free(bn);
            if (!ok) {
                X509_REVOKED_free(rev);
                goto fail;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    X509_CRL_sort(crl);
    if (!ASN1_INTEGER_set_uint64(num, crlnum) ||
        !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0))
        goto fail;
    X509V3_set_ctx(&ctx, ca->issuer, NULL, NULL, crl, 0);
    aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid");
    if (!aki || !X509_CRL_add_ext(crl, aki, -1))
        goto fail;
    if (X509_CRL_sign(crl, ca->key, kvmca_sign_md(ca->key)) <= 0) {
        char *m = kvmca_ossl_msg("CRL: signing failed: the signing key is not "
                                 "usable (HSM or token gone?)");
        kvmca_set_err(err, "%s", m);
        free(m);
        ret = KVMCA_ESIGN;
        goto out;
    }
    len = i2d_X509_CRL(crl, &out);
    if (len <= 0)
        goto fail;
    *der = xmalloc((size_t)len);
    memcpy(*der, out, (size_t)len);
    *der_len = (size_t)len;
    ret = 0;
    goto out;
fail:
    {
        char *m = kvmca_ossl_msg("CRL: cannot build the CRL");
        kvmca_set_err(err, "%s", m);
        free(m);
    }
    ret = -EINVAL;
out:
    close(lockfd);
    OPENSSL_free(out);
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    return ret;
}

