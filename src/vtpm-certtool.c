/* vtpm-certtool: swtpm_setup's create_certs_tool for vtpmd's KVM backend.
 *
 * Speaks swtpm_localca's argument protocol (swtpm_setup.conf(8),
 * swtpm_localca(8), swtpm 0.7): --type ek|platform, --ek, --dir, --vmid,
 * --logfile, --configfile, --optsfile, --tpm-spec-*, --tpm-manufacturer,
 * --tpm-model, --tpm-version, --tpm2; writes ek.cert or platform.cert (DER)
 * into --dir.
 *
 * This version signs itself through the site CA module (kvmca) with the
 * key, chain and state directory named in --configfile ("key = value"
 * lines, as swtpm-localca.conf). Going through vtpmd's control socket, so
 * that only authorized instances get a certificate, is the next step.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"
#include "kvmca.h"
#include "xalloc.h"

#define PROG "vtpm-certtool"

struct conf {
    char *signing_key;
    char *issuer_chain;
    char *state_dir;
    char *host;
    long validity_days;
    char *platform_manufacturer;
    char *platform_model;
    char *platform_version;
};

static FILE *logfp;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (logfp) {
        va_start(ap, fmt);
        fputs(PROG ": ", logfp);
        vfprintf(logfp, fmt, ap);
        fputc('\n', logfp);
        fflush(logfp);
        va_end(ap);
    }
}

static void conf_free(struct conf *c)
{
    free(c->signing_key);
    free(c->issuer_chain);
    free(c->state_dir);
    free(c->host);
    free(c->platform_manufacturer);
    free(c->platform_model);
    free(c->platform_version);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static int read_conf(const char *path, struct conf *c)
{
    char line[4096];
    unsigned lineno = 0;
    FILE *f = fopen(path, "re");

    if (!f) {
        say("%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *eq, *key, *val, **dst = NULL;
        lineno++;
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (!eq) {
            say("%s:%u:%ld: expected 'key = value'", path, lineno,
                (long)(key - line) + 1);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        val = trim(eq + 1);
        key = trim(key);
        if (!strcmp(key, "signing_key") || !strcmp(key, "signingkey"))
            dst = &c->signing_key;
        else if (!strcmp(key, "issuer_chain") || !strcmp(key, "issuercert"))
            dst = &c->issuer_chain;
        else if (!strcmp(key, "state_dir") || !strcmp(key, "statedir"))
            dst = &c->state_dir;
        else if (!strcmp(key, "host"))
            dst = &c->host;
        else if (!strcmp(key, "platform_manufacturer"))
            dst = &c->platform_manufacturer;
        else if (!strcmp(key, "platform_model"))
            dst = &c->platform_model;
        else if (!strcmp(key, "platform_version"))
            dst = &c->platform_version;
        else if (!strcmp(key, "validity_days")) {
            char *end;
            errno = 0;
            c->validity_days = strtol(val, &end, 10);
            if (errno || *end || end == val || c->validity_days > 36500) {
                say("%s:%u:%ld: validity_days: '%s' is not a number of days "
                    "(at most 36500; -1: no expiry)", path, lineno,
                    (long)(val - line) + 1, val);
                fclose(f);
                return -1;
            }
            continue;
        } else {
            say("%s:%u:%ld: unknown key '%s'", path, lineno,
                (long)(key - line) + 1, key);
            fclose(f);
            return -1;
        }
        free(*dst);
        *dst = xstrdup(val);
    }
    fclose(f);
    return 0;
}

/* The options file: whitespace-separated "--platform-manufacturer X"
 * pairs, as swtpm-localca.options. Other options are ignored. */
static int read_opts(const char *path, struct conf *c)
{
    char line[4096];
    FILE *f = fopen(path, "re");

    if (!f) {
        say("%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *opt = strtok_r(line, " \t\r\n", &save);
        char *val = opt ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        char **dst = NULL;
        if (!opt || !val)
            continue;
        if (!strcmp(opt, "--platform-manufacturer"))
            dst = &c->platform_manufacturer;
        else if (!strcmp(opt, "--platform-model"))
            dst = &c->platform_model;
        else if (!strcmp(opt, "--platform-version"))
            dst = &c->platform_version;
        if (dst) {
            free(*dst);
            *dst = xstrdup(val);
        }
    }
    fclose(f);
    return 0;
}

static int write_cert(const char *dir, const char *name,
                      const unsigned char *der, size_t len)
{
    char *path autofree = NULL;
    char *tmp autofree = NULL;
    int fd, ok;

    xasprintf(&path, "%s/%s", dir, name);
    xasprintf(&tmp, "%s/.%s.tmp", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        say("%s: %s", tmp, strerror(errno));
        return -1;
    }
    ok = file_write_all(fd, der, len) == 0 && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) < 0) {
        say("%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static unsigned int uint_arg(const char *name, const char *s, int *bad)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > 0xffffffffUL) {
        say("%s: '%s' is not a non-negative integer", name, s);
        *bad = 1;
    }
    return (unsigned int)v;
}

static int open_ca(const char *configfile, struct conf *conf, struct kvmca **ca)
{
    char hostbuf[256];
    struct kvmca_opts opts;
    char *err = NULL;

    if (!configfile) {
        say("refused: --configfile is required");
        return -1;
    }
    if (read_conf(configfile, conf) < 0)
        return -1;
    if (!conf->host) {
        if (gethostname(hostbuf, sizeof hostbuf) < 0)
            snprintf(hostbuf, sizeof hostbuf, "localhost");
        hostbuf[sizeof hostbuf - 1] = '\0';
        conf->host = xstrdup(hostbuf);
    }
    opts = (struct kvmca_opts){
        .signing_key = conf->signing_key,
        .issuer_chain = conf->issuer_chain,
        .state_dir = conf->state_dir,
        .host = conf->host,
        .validity_days = conf->validity_days,
    };
    if (kvmca_open(&opts, ca, &err) < 0) {
        say("refused: %s", err);
        free(err);
        return -1;
    }
    return 0;
}

/* --revoke and --gencrl: the site administrator's side until vtpmd
 * revokes on delete itself. */
static int admin(const char *configfile, const char *revoke,
                 const char *revoke_instance, const char *gencrl, long next_update)
{
    struct conf conf = { .validity_days = -1 };
    struct kvmca *ca = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    char *err = NULL;
    int rc = 1;

    if (open_ca(configfile, &conf, &ca) < 0)
        goto out;
    if (revoke) {
        if (kvmca_revoke(ca, revoke, &err) < 0) {
            say("revoke: %s", err);
            goto out;
        }
        say("revoked serial=%s", revoke);
    }
    if (revoke_instance) {
        unsigned int n = 0;
        if (kvmca_revoke_instance(ca, revoke_instance, &n, &err) < 0) {
            say("revoke: %s", err);
            goto out;
        }
        say("revoked instance=%s certificates=%u", revoke_instance, n);
    }
    if (gencrl) {
        char *dir autofree = xstrdup(gencrl);
        char *slash = strrchr(dir, '/');
        const char *base = slash ? slash + 1 : gencrl;
        if (slash)
            *slash = '\0';
        if (kvmca_crl(ca, next_update, &der, &len, &err) < 0) {
            say("crl: %s", err);
            goto out;
        }
        if (write_cert(slash ? dir : ".", base, der, len) < 0)
            goto out;
        say("wrote CRL %s", gencrl);
    }
    rc = 0;
out:
    free(der);
    free(err);
    kvmca_free(ca);
    conf_free(&conf);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " --type ek|platform --ek KEY --dir DIR --vmid NAME:UUID\n"
"         --configfile FILE [--optsfile FILE] [--logfile FILE] --tpm2\n"
"         [--tpm-spec-family S --tpm-spec-level N --tpm-spec-revision N]\n"
"         [--tpm-manufacturer S --tpm-model S --tpm-version S]\n"
"         [--allow-signing] [--decryption]\n"
"       " PROG " --configfile FILE --revoke SERIAL | --revoke-instance UUID\n"
"       " PROG " --configfile FILE --gencrl OUT.crl [--crl-next-update SECONDS]\n"
"swtpm_setup's create_certs_tool: signs the vTPM's EK or platform\n"
"certificate with the site CA and writes ek.cert or platform.cert to DIR.\n"
"--revoke adds a serial (hex) to the CA's revoked list, --revoke-instance\n"
"every certificate of an instance; --gencrl writes the\n"
"CRL (DER) signed by the CA key, nextUpdate in SECONDS (default 86400).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "type", required_argument, NULL, 't' },
        { "ek", required_argument, NULL, 'e' },
        { "key", required_argument, NULL, 'e' },
        { "dir", required_argument, NULL, 'd' },
        { "vmid", required_argument, NULL, 'v' },
        { "logfile", required_argument, NULL, 'l' },
        { "configfile", required_argument, NULL, 'c' },
        { "optsfile", required_argument, NULL, 'o' },
        { "tpm-spec-family", required_argument, NULL, 'F' },
        { "tpm-spec-level", required_argument, NULL, 'L' },
        { "tpm-spec-revision", required_argument, NULL, 'R' },
        { "tpm-manufacturer", required_argument, NULL, 'M' },
        { "tpm-model", required_argument, NULL, 'm' },
        { "tpm-version", required_argument, NULL, 'V' },
        { "tpm2", no_argument, NULL, '2' },
        { "allow-signing", no_argument, NULL, 's' },
        { "decryption", no_argument, NULL, 'D' },
        { "revoke", required_argument, NULL, 'r' },
        { "revoke-instance", required_argument, NULL, 'I' },
        { "gencrl", required_argument, NULL, 'g' },
        { "crl-next-update", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct kvmca_request req = { .spec_family = NULL };
    struct conf conf = { .validity_days = -1 };
    struct kvmca_cert cert = { 0 };
    struct kvmca *ca = NULL;
    const char *type = NULL, *dir = NULL, *vmid = NULL, *logfile = NULL;
    const char *configfile = NULL, *optsfile = NULL;
    const char *revoke = NULL, *revoke_instance = NULL, *gencrl = NULL;
    long next_update = 86400;
    char uuid[37];
    char *err = NULL;
    int c, bad = 0, tpm2 = 0, rc = 1;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': type = optarg; break;
        case 'e': req.ek = optarg; break;
        case 'd': dir = optarg; break;
        case 'v': vmid = optarg; break;
        case 'l': logfile = optarg; break;
        case 'c': configfile = optarg; break;
        case 'o': optsfile = optarg; break;
        case 'F': req.spec_family = optarg; break;
        case 'L': req.spec_level = uint_arg("--tpm-spec-level", optarg, &bad); break;
        case 'R': req.spec_revision = uint_arg("--tpm-spec-revision", optarg, &bad); break;
        case 'M': req.tpm_manufacturer = optarg; break;
        case 'm': req.tpm_model = optarg; break;
        case 'V': req.tpm_version = optarg; break;
        case '2': tpm2 = 1; break;
        case 's': req.allow_signing = true; break;
        case 'D': req.decryption = true; break;
        case 'r': revoke = optarg; break;
        case 'I': revoke_instance = optarg; break;
        case 'g': gencrl = optarg; break;
        case 'n': next_update = (long)uint_arg("--crl-next-update", optarg, &bad); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        say("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (logfile) {
        logfp = fopen(logfile, "ae");
        if (!logfp)
            say("--logfile %s: %s (logging to stderr only)", logfile, strerror(errno));
    }
    if (bad)
        goto out;
    if (revoke || revoke_instance || gencrl) {
        rc = admin(configfile, revoke, revoke_instance, gencrl, next_update);
        goto out;
    }
    if (!type || (strcmp(type, "ek") && strcmp(type, "platform"))) {
        say("refused: --type must be ek or platform");
        goto out;
    }
    req.type = strcmp(type, "ek") == 0 ? KVMCA_CERT_EK : KVMCA_CERT_PLATFORM;
    if (!tpm2) {
        say("refused: only TPM 2 certificates (--tpm2) are issued");
        goto out;
    }
    if (!dir || !req.ek || !configfile) {
        say("refused: --dir, --ek and --configfile are required");
        goto out;
    }
    if (kvmca_vmid_uuid(vmid, uuid) < 0) {
        say("refused: --vmid '%s' does not name an instance UUID (NAME:UUID)",
            vmid ? vmid : "");
        goto out;
    }
    req.instance_uuid = uuid;
    if (open_ca(configfile, &conf, &ca) < 0)
        goto out;
    if (optsfile && read_opts(optsfile, &conf) < 0)
        goto out;
    req.platform_manufacturer = conf.platform_manufacturer;
    req.platform_model = conf.platform_model;
    req.platform_version = conf.platform_version;
    if (kvmca_issue(ca, &req, &cert, &err) < 0) {
        say("refused: instance=%s type=%s: %s", uuid, type, err);
        goto out;
    }
    if (write_cert(dir, req.type == KVMCA_CERT_EK ? "ek.cert" : "platform.cert",
                   cert.der, cert.der_len) < 0)
        goto out;
    say("issued %s certificate instance=%s serial=%s sha256=%s", type, uuid,
        cert.serial_hex, cert.sha256_hex);
    rc = 0;
out:
    kvmca_cert_clear(&cert);
    kvmca_free(ca);
    conf_free(&conf);
    free(err);
    if (logfp)
        fclose(logfp);
    return rc;
}
