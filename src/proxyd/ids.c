/* Text forms, see include/proxyd/ids.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxyd/ids.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ids_parse_uuid(const char *s, uint8_t *out)
{
    uint8_t u[16];
    size_t i, b = 0;

    if (s == NULL || strlen(s) != 36)
        return -EINVAL;
    for (i = 0; i < 36;) {
        int hi, lo;

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -EINVAL;
            i++;
            continue;
        }
        hi = hexval(s[i]);
        lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        u[b++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    /* The nil UUID names nothing: malformed, like in vtpmd's uuidutil. */
    for (b = 0; b < sizeof(u) && u[b] == 0; b++)
        ;
    if (b == sizeof(u))
        return -EINVAL;
    memcpy(out, u, sizeof(u));
    return 0;
}

void ids_format_uuid(const uint8_t *u, char *out)
{
    snprintf(out, IDS_UUID_STR,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
             u[10], u[11], u[12], u[13], u[14], u[15]);
}

bool ids_valid_host(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];

        if (!isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':')
            return false;
    }
    return n > 0 && n <= IDS_HOST_MAX;
}

void ids_format_time(int64_t t, char *out)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, IDS_TIME_STR, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ids_parse_time(const char *s, int64_t *out)
{
    struct tm tm = {0};
    const char *end;

    if (s == NULL || strlen(s) != IDS_TIME_STR - 1)
        return -EINVAL;
    end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return -EINVAL;
    *out = (int64_t)timegm(&tm);
    return 0;
}
