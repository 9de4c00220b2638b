/* vtpmmgr's management protocol, see include/proxyd/mgrproto.h.
 *
 * Only GROUP_LIST, GROUP_SHOW, VTPM_LIST, VTPM_NEW and VTPM_DEL are ever
 * built. GROUP_NEW and GROUP_DEL have no builder on purpose: on TPM 2.0
 * hosts GROUP_NEW overwrites group 0, and GROUP_DEL's bounds check is off
 * by one; groups are the operator's business, not this service's. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxyd/mgrproto.h"

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint8_t *put_header(uint8_t *buf, uint32_t size, uint32_t ord)
{
    return put32(put32(put16(buf, MGRPROTO_TAG_REQ2), size), ord);
}

size_t mgrproto_group_list(uint8_t *buf)
{
    put_header(buf, MGRPROTO_HDR_LEN, MGRPROTO_ORD_GROUP_LIST);
    return MGRPROTO_HDR_LEN;
}

size_t mgrproto_group_show(uint8_t *buf, uint32_t group)
{
    put32(put_header(buf, 14, MGRPROTO_ORD_GROUP_SHOW), group);
    return 14;
}

size_t mgrproto_vtpm_list(uint8_t *buf, uint32_t group, uint32_t offset)
{
    put32(put32(put_header(buf, 18, MGRPROTO_ORD_VTPM_LIST), group), offset);
    return 18;
}

size_t mgrproto_vtpm_new(uint8_t *buf, uint32_t group, const uint8_t *uuid)
{
    /* vtpmmgr tells the two forms apart by the exact length alone. */
    size_t len = uuid ? 30 : 14;
    uint8_t *p = put32(put_header(buf, (uint32_t)len, MGRPROTO_ORD_VTPM_NEW), group);

    if (uuid)
        memcpy(p, uuid, MGRPROTO_UUID_LEN);
    return len;
}

size_t mgrproto_vtpm_del(uint8_t *buf, const uint8_t *uuid)
{
    memcpy(put_header(buf, 26, MGRPROTO_ORD_VTPM_DEL), uuid, MGRPROTO_UUID_LEN);
    return 26;
}

uint32_t mgrproto_msg_size(const uint8_t *buf, size_t len)
{
    return len < MGRPROTO_HDR_LEN ? 0 : get32(buf + 2);
}

int mgrproto_parse(const uint8_t *buf, size_t len, struct mgrproto_rsp *rsp,
                   const char **why)
{
    struct mgrproto_rsp r;

    if (len < MGRPROTO_HDR_LEN) {
        *why = "response shorter than its 10-byte header";
        return -EPROTO;
    }
    if (get32(buf + 2) != len) {
        *why = "response size field does not match its length";
        return -EPROTO;
    }
    r.tag = get16(buf);
    r.status = get32(buf + 6);
    r.body = buf + MGRPROTO_HDR_LEN;
    r.body_len = len - MGRPROTO_HDR_LEN;
    if (r.tag != MGRPROTO_TAG_RSP && r.tag != MGRPROTO_TAG_RSP_ERR) {
        *why = "response tag is neither 0x01C4 nor 0x01C5";
        return -EPROTO;
    }
    if (r.tag == MGRPROTO_TAG_RSP_ERR && r.status == MGRPROTO_ST_OK) {
        *why = "dispatcher error response (0x01C5) with status 0";
        return -EPROTO;
    }
    /* vtpmmgr drops the body of every failed command (CMD_END). */
    if (r.status != MGRPROTO_ST_OK && r.body_len != 0) {
        *why = "error response with a body";
        return -EPROTO;
    }
    *rsp = r;
    return 0;
}

int mgrproto_group_list_body(const struct mgrproto_rsp *rsp, uint32_t *count,
                             const char **why)
{
    if (rsp->body_len != 4) {
        *why = "GROUP_LIST response is not 14 bytes";
        return -EPROTO;
    }
    *count = get32(rsp->body);
    return 0;
}

int mgrproto_group_show_body(const struct mgrproto_rsp *rsp, uint8_t *uuid,
                             const char **why)
{
    /* group UUID 16, SAA key 256, cfg sequence 8, u32 n + n x 20,
     * u32 k + k x 20 */
    const size_t fixed = 16 + 256 + 8;
    size_t len = rsp->body_len, n, k;

    if (len < fixed + 4 + 4) {
        *why = "GROUP_SHOW response too short";
        return -EPROTO;
    }
    n = get32(rsp->body + fixed);
    if (n > (len - fixed - 8) / 20) {
        *why = "GROUP_SHOW seal count exceeds the response";
        return -EPROTO;
    }
    k = get32(rsp->body + fixed + 4 + n * 20);
    if (len != fixed + 4 + n * 20 + 4 + k * 20) {
        *why = "GROUP_SHOW response length does not match its counts";
        return -EPROTO;
    }
    memcpy(uuid, rsp->body, MGRPROTO_UUID_LEN);
    return 0;
}

int mgrproto_vtpm_list_body(const struct mgrproto_rsp *rsp, uint32_t *total,
                            const uint8_t **uuids, size_t *n, const char **why)
{
    if (rsp->body_len < 4 || (rsp->body_len - 4) % MGRPROTO_UUID_LEN != 0) {
        *why = "VTPM_LIST response is not a count and whole UUIDs";
        return -EPROTO;
    }
    *total = get32(rsp->body);
    *uuids = rsp->body + 4;
    *n = (rsp->body_len - 4) / MGRPROTO_UUID_LEN;
    return 0;
}

int mgrproto_vtpm_new_body(const struct mgrproto_rsp *rsp, uint8_t *uuid,
                           const char **why)
{
    if (rsp->body_len != MGRPROTO_UUID_LEN) {
        *why = "VTPM_NEW response is not 26 bytes";
        return -EPROTO;
    }
    memcpy(uuid, rsp->body, MGRPROTO_UUID_LEN);
    return 0;
}

int mgrproto_vtpm_del_body(const struct mgrproto_rsp *rsp, const char **why)
{
    if (rsp->body_len != 0) {
        *why = "VTPM_DEL response is not 10 bytes";
        return -EPROTO;
    }
    return 0;
}

const char *mgrproto_status_str(uint32_t status)
{
    switch (status) {
    case MGRPROTO_ST_OK:
        return "success";
    case MGRPROTO_ST_AUTHFAIL:
        return "authorization failure (this vTPM lacks vtpmmgr's admin flag, "
               "or the group is not unsealed)";
    case MGRPROTO_ST_BADINDEX:
        return "no such group index";
    case MGRPROTO_ST_BAD_PARAMETER:
        return "bad parameter (request length)";
    case MGRPROTO_ST_FAIL:
        return "operation failed";
    case MGRPROTO_ST_BAD_ORDINAL:
        return "unknown ordinal";
    case MGRPROTO_ST_SIZE:
        return "response too large";
    case MGRPROTO_ST_BADTAG:
        return "bad tag";
    default:
        return "unknown status";
    }
}

const char *mgrproto_ord_name(uint32_t ord)
{
    switch (ord) {
    case MGRPROTO_ORD_GROUP_LIST:
        return "GROUP_LIST";
    case MGRPROTO_ORD_GROUP_SHOW:
        return "GROUP_SHOW";
    case MGRPROTO_ORD_VTPM_LIST:
        return "VTPM_LIST";
    case MGRPROTO_ORD_VTPM_NEW:
        return "VTPM_NEW";
    case MGRPROTO_ORD_VTPM_DEL:
        return "VTPM_DEL";
    default:
        return "?";
    }
}
