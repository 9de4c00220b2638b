/* Text forms vtpm-proxyd accepts and writes: UUIDs, host names and
 * timestamps. Everything that comes from a client or a record file is
 * checked here before it reaches a file name, a log line or vtpmmgr. */
#ifndef PROXYD_IDS_H
#define PROXYD_IDS_H

#include <stdbool.h>
#include <stdint.h>

#define IDS_UUID_STR 37 /* 36 characters and the NUL */
#define IDS_TIME_STR 21 /* 2026-01-31T12:00:00Z and the NUL */
#define IDS_HOST_MAX 255

/* Exactly 8-4-4-4-12 hex digits (either case), not the nil UUID. 0 or -EINVAL. */
int ids_parse_uuid(const char *s, uint8_t *out);
/* Lower case, the form used in records, file names and answers. */
void ids_format_uuid(const uint8_t *uuid, char *out);
/* 1..255 letters, digits, '-', '_', '.', ':' (Nova host names, FQDNs). */
bool ids_valid_host(const char *s);
/* RFC 3339 in UTC with a 'Z'. */
void ids_format_time(int64_t t, char *out);
int ids_parse_time(const char *s, int64_t *out);

#endif
