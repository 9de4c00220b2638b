/* libFuzzer target: the cheap filter against the full decoder. The
 * filter may call irrelevant only what the full decoder does not call
 * relevant; novamsg_decode() must be exactly "filter, then full decoder";
 * and the strict envelope scanner must agree with jansson on every body
 * it accepts. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "novamsg.h"
#include "novamsg_priv.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *host, const uint8_t *data,
                size_t size)
{
    fprintf(stderr, "fuzz_novamsg_diff: %s (host %s): %.*s\n", what,
            host ? host : "-", (int)(size > 2000 ? 2000 : size),
            (const char *)data);
    abort();
}

/* The scanner's value of key against jansson's. */
static void same_string(const json_t *obj, const char *key, const char *raw,
                        size_t raw_len, const uint8_t *data, size_t size)
{
    const json_t *j = json_object_get(obj, key);
    char *buf;
    size_t n;

    if (!raw) {
        if (j)
            die("scanner missed a key jansson sees", key, data, size);
        return;
    }
    if (!json_is_string(j))
        die("scanner found a string jansson does not", key, data, size);
    buf = xmalloc(raw_len + 1);
    if (novamsg_json_unescape(raw, raw_len, buf, &n) < 0 ||
        n != json_string_length(j) || memcmp(buf, json_string_value(j), n) != 0)
        die("scanner and jansson decode a string differently", key, data, size);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const hosts[] = {"compute1", "compute2", "controller", ""};
    const char *body = (const char *)data;
    struct novamsg_envelope env;

    for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++) {
        struct nova_event ev;
        const char *r1 = NULL, *r2 = NULL, *r3 = NULL;
        enum novamsg_fast f = novamsg_fast(body, size, hosts[h], &r1);
        enum novamsg_class full, pub;

        full = novamsg_decode_full(data, size, NULL, hosts[h], 1024 * 1024,
                                   &ev, &r2);
        nova_event_clear(&ev);
        if (f == NOVAMSG_FAST_IRRELEVANT && full == NOVAMSG_RELEVANT)
            die("filter says irrelevant, full decoder relevant", hosts[h],
                data, size);
        if (f == NOVAMSG_FAST_IRRELEVANT && !r1)
            die("filter gave no reason", hosts[h], data, size);
        pub = novamsg_decode(data, size, NULL, hosts[h], 1024 * 1024, &ev, &r3);
        nova_event_clear(&ev);
        if (pub != full && !(f == NOVAMSG_FAST_IRRELEVANT &&
                             pub == NOVAMSG_IRRELEVANT))
            die("novamsg_decode is not filter + full decoder", hosts[h], data,
                size);
    }

    if (novamsg_envelope_scan(body, size, &env) == 1) {
        json_error_t err;
        json_t *j = json_loadb(body, size, JSON_REJECT_DUPLICATES, &err);

        if (!json_is_object(j))
            die("scanner accepts what jansson refuses", err.text, data, size);
        same_string(j, "oslo.message", env.message, env.message_len, data, size);
        same_string(j, "oslo.version", env.version, env.version_len, data, size);
        json_decref(j);
    }
    return 0;
}
