#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <uuid/uuid.h>

#include "uuidutil.h"

/* Positions of the hyphens in the 36-character form. */
static bool uuid_hyphen_at(size_t i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

static bool uuid_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Checks the shape by hand rather than with uuid_parse(): libuuid accepts
 * some forms (and ignores trailing bytes in older versions) that must not
 * reach a file name. */
static bool uuid_shape(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < UUIDUTIL_LEN; i++) {
        if (s[i] == '\0')
            return false;
        if (uuid_hyphen_at(i) ? s[i] != '-' : !uuid_hex(s[i]))
            return false;
    }
    return s[UUIDUTIL_LEN] == '\0';
}

bool uuid_is_nil(const char *s)
{
    if (!uuid_shape(s))
        return false;
    for (size_t i = 0; i < UUIDUTIL_LEN; i++)
        if (!uuid_hyphen_at(i) && s[i] != '0')
            return false;
    return true;
}

/* The nil UUID names no instance and no vTPM (no generator hands it out):
 * it is malformed everywhere, so it never reaches a record or a domain. */
bool uuid_valid(const char *s)
{
    return uuid_shape(s) && !uuid_is_nil(s);
}

bool uuid_is_canonical(const char *s)
{
    if (!uuid_valid(s))
        return false;
    for (size_t i = 0; i < UUIDUTIL_LEN; i++)
        if (s[i] >= 'A' && s[i] <= 'F')
            return false;
    return true;
}

int uuid_canonical(const char *in, char out[UUIDUTIL_BUFLEN])
{
    if (!uuid_valid(in))
        return -EINVAL;
    for (size_t i = 0; i < UUIDUTIL_LEN; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'F') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[UUIDUTIL_LEN] = '\0';
    return 0;
}


void uuid_generate_str(char out[UUIDUTIL_BUFLEN])
{
    uuid_t u;

    /* Random, not time-based: vtpmmgr's own UUIDs are 16 random bytes,
     * and a time-based one would leak the host's MAC address. */
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}
