/* vtpmmgr's management protocol: building requests and checking
 * responses, byte for byte, with no I/O (Xen stubdom/vtpmmgr,
 * vtpm_cmd_handler.c and vtpm_manager.h).
 *
 * Every message starts with a big-endian 10-byte header: request tag u16,
 * paramSize u32 (the whole message, header included), ordinal u32;
 * response tag u16, size u32, status u32. Management requests carry tag
 * 0x01C2 and are answered with 0x01C4, or with tag + 3 (0x01C5, header
 * only) when the dispatcher refuses them (caller not admin, unknown
 * ordinal). UUIDs are 16 raw bytes in text order. */
#ifndef PROXYD_MGRPROTO_H
#define PROXYD_MGRPROTO_H

#include <stddef.h>
#include <stdint.h>

#define MGRPROTO_HDR_LEN 10
#define MGRPROTO_UUID_LEN 16
/* vtpmmgr's TCPA_MAX_BUFFER_LENGTH: no valid message is longer. */
#define MGRPROTO_MAX_MSG 8192
/* The longest request this module builds (VTPM_NEW with a UUID). */
#define MGRPROTO_REQ_MAX 30

#define MGRPROTO_TAG_REQ2 0x01C2u    /* management request */
#define MGRPROTO_TAG_RSP 0x01C4u     /* management response */
#define MGRPROTO_TAG_RSP_ERR 0x01C5u /* REQ2 + 3: dispatcher refused it */

#define MGRPROTO_ORD_GROUP_LIST 0x02000101u
#define MGRPROTO_ORD_GROUP_SHOW 0x02000107u
#define MGRPROTO_ORD_VTPM_LIST 0x02000201u
#define MGRPROTO_ORD_VTPM_NEW 0x02000204u
#define MGRPROTO_ORD_VTPM_DEL 0x02000205u

/* Status codes vtpmmgr answers with (TPM 1.2 return codes). */
#define MGRPROTO_ST_OK 0u
#define MGRPROTO_ST_AUTHFAIL 1u      /* not admin; group not unsealed */
#define MGRPROTO_ST_BADINDEX 2u      /* no such group index */
#define MGRPROTO_ST_BAD_PARAMETER 3u /* wrong request length */
#define MGRPROTO_ST_FAIL 9u          /* VTPM_DEL: unknown or open vTPM */
#define MGRPROTO_ST_BAD_ORDINAL 10u
#define MGRPROTO_ST_SIZE 23u
#define MGRPROTO_ST_BADTAG 30u

/* A response whose header checked out; body points into the buffer. */
struct mgrproto_rsp {
    uint16_t tag;
    uint32_t status;
    const uint8_t *body;
    size_t body_len;
};

/* Request builders: write into buf (at least MGRPROTO_REQ_MAX bytes) and
 * return the message length. */
size_t mgrproto_group_list(uint8_t *buf);
size_t mgrproto_group_show(uint8_t *buf, uint32_t group);
size_t mgrproto_vtpm_list(uint8_t *buf, uint32_t group, uint32_t offset);
/* uuid NULL: vtpmmgr picks a random one (14 bytes); else the 30-byte
 * form with the caller's UUID. */
size_t mgrproto_vtpm_new(uint8_t *buf, uint32_t group, const uint8_t *uuid);
size_t mgrproto_vtpm_del(uint8_t *buf, const uint8_t *uuid);

/* Reads paramSize from the first 10 bytes of a message; 0 when len < 10. */
uint32_t mgrproto_msg_size(const uint8_t *buf, size_t len);

/* Checks a whole response: at least a header, size field equal to len,
 * tag 0x01C4 (or 0x01C5 with a non-zero status), and no body after a
 * non-zero status. 0, or -EPROTO with *why set to a static reason. */
int mgrproto_parse(const uint8_t *buf, size_t len, struct mgrproto_rsp *rsp,
                   const char **why);

/* Body decoders for a response with status 0; each checks the exact
 * length. 0 or -EPROTO (with *why). Outputs are written only on success. */
int mgrproto_group_list_body(const struct mgrproto_rsp *rsp, uint32_t *count,
                             const char **why);
int mgrproto_group_show_body(const struct mgrproto_rsp *rsp, uint8_t *uuid,
                             const char **why);
/* uuids points into the response: n * 16 bytes. */
int mgrproto_vtpm_list_body(const struct mgrproto_rsp *rsp, uint32_t *total,
                            const uint8_t **uuids, size_t *n, const char **why);
int mgrproto_vtpm_new_body(const struct mgrproto_rsp *rsp, uint8_t *uuid,
                           const char **why);
int mgrproto_vtpm_del_body(const struct mgrproto_rsp *rsp, const char **why);

/* "caller not admin or group not unsealed" etc., for logs and errors. */
const char *mgrproto_status_str(uint32_t status);
const char *mgrproto_ord_name(uint32_t ord);

#endif
