/* Certificates per second the site CA (kvmca) signs in one process:
 * bench/bench_kvmca CONFIG-KEY CHAIN STATE_DIR EK_MODULUS_HEX N
 * Each certificate is a complete kvmca_issue: serial reserved and fsync'd,
 * certificate built, signed, checked against the issuer, recorded in the
 * issued index (fsync'd). Prints one line: "certs=N seconds=S certs_per_s=R".
 * bench/bench_ekcert.sh runs it with the PEM key and with softhsm2. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kvmca.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct kvmca_opts o = { .host = "bench.example.org", .validity_days = -1 };
    struct kvmca_request r = {
        .type = KVMCA_CERT_EK, .instance_uuid = "9b1d6e1c-3f4a-4f5e-8a2b-1c2d3e4f5a6b",
        .tpm_manufacturer = "id:00001014", .tpm_model = "swtpm",
        .tpm_version = "id:20191023", .spec_family = "2.0", .spec_revision = 164,
    };
    struct kvmca *ca = NULL;
    char *err = NULL;
    double t0, t1;
    long n;

    if (argc != 6) {
        fprintf(stderr, "usage: %s KEY CHAIN STATE_DIR EK_MODULUS_HEX N\n", argv[0]);
        return 2;
    }
    o.signing_key = argv[1];
    o.issuer_chain = argv[2];
    o.state_dir = argv[3];
    r.ek = argv[4];
    n = strtol(argv[5], NULL, 10);
    if (kvmca_open(&o, &ca, &err) < 0) {
        fprintf(stderr, "bench_kvmca: %s\n", err);
        return 1;
    }
    t0 = now();
    for (long i = 0; i < n; i++) {
        struct kvmca_cert c = { 0 };
        if (kvmca_issue(ca, &r, &c, &err) < 0) {
            fprintf(stderr, "bench_kvmca: %s\n", err);
            return 1;
        }
        kvmca_cert_clear(&c);
    }
    t1 = now();
    printf("certs=%ld seconds=%.3f certs_per_s=%.1f\n", n, t1 - t0, (double)n / (t1 - t0));
    kvmca_free(ca);
    return 0;
}
