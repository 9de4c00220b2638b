/* UUID validation and canonical form, shared by every module that lets a
 * UUID from the bus, the proxy or the control socket reach a path, a
 * domain name, XML or a URL. The canonical form is the 36-character,
 * lower-case, hyphenated one (8-4-4-4-12) that Nova and libuuid print. */
#ifndef VTPMD_UUIDUTIL_H
#define VTPMD_UUIDUTIL_H

#include <stdbool.h>

#define UUIDUTIL_LEN 36 /* characters, without the NUL */
#define UUIDUTIL_BUFLEN 37 /* buffer size for the canonical form */

/* True when s is exactly 8-4-4-4-12 hex digits (either case): no braces,
 * no "urn:uuid:", no whitespace, nothing after it. NULL and the nil UUID
 * (all zeros) are not valid. */
bool uuid_valid(const char *s);

/* True when s is valid and already canonical (lower case). */
bool uuid_is_canonical(const char *s);

/* Writes the canonical (lower-case) form of in to out. 0, or -EINVAL (out
 * untouched) when in is not a valid UUID as uuid_valid() defines it. */
int uuid_canonical(const char *in, char out[UUIDUTIL_BUFLEN]);

/* True for the nil UUID (all zeros, 8-4-4-4-12); no generator hands it
 * out, and uuid_valid() refuses it. */
bool uuid_is_nil(const char *s);

/* A fresh random (version 4) UUID from libuuid, canonical form. */
void uuid_generate_str(char out[UUIDUTIL_BUFLEN]);

#endif
