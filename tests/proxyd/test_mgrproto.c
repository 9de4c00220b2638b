/* mgrproto: the exact bytes of every request, and every way a response
 * can be malformed (vtpmmgr's facts: stubdom/vtpmmgr/vtpm_cmd_handler.c). */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd/mgrproto.h"

static const uint8_t U[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
                              0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};

static void test_requests(void **state)
{
    uint8_t b[MGRPROTO_REQ_MAX];
    static const uint8_t list[] = {0x01, 0xC2, 0, 0, 0, 10, 0x02, 0, 0x01, 0x01};
    static const uint8_t show[] = {0x01, 0xC2, 0, 0, 0, 14, 0x02, 0, 0x01, 0x07,
                                   0, 0, 0, 3};
    static const uint8_t vlist[] = {0x01, 0xC2, 0, 0, 0, 18, 0x02, 0, 0x02, 0x01,
                                    0, 0, 0, 1, 0, 0, 0x01, 0x00};
    static const uint8_t vnew[] = {0x01, 0xC2, 0, 0, 0, 14, 0x02, 0, 0x02, 0x04,
                                   0, 0, 0, 2};
    static const uint8_t vdel_hdr[] = {0x01, 0xC2, 0, 0, 0, 26, 0x02, 0, 0x02, 0x05};

    assert_int_equal(mgrproto_group_list(b), 10);
    assert_memory_equal(b, list, 10);
    assert_int_equal(mgrproto_group_show(b, 3), 14);
    assert_memory_equal(b, show, 14);
    assert_int_equal(mgrproto_vtpm_list(b, 1, 256), 18);
    assert_memory_equal(b, vlist, 18);
    /* 14 bytes: vtpmmgr makes the UUID; exactly 30: the caller's. */
    assert_int_equal(mgrproto_vtpm_new(b, 2, NULL), 14);
    assert_memory_equal(b, vnew, 14);
    assert_int_equal(mgrproto_vtpm_new(b, 2, U), 30);
    assert_int_equal(b[5], 30);
    assert_memory_equal(b + 10, vnew + 10, 4);
    assert_memory_equal(b + 14, U, 16);
    assert_int_equal(mgrproto_vtpm_del(b, U), 26);
    assert_memory_equal(b, vdel_hdr, 10);
    assert_memory_equal(b + 10, U, 16);
    assert_int_equal(mgrproto_msg_size(b, 26), 26);
    assert_int_equal(mgrproto_msg_size(b, 9), 0);
}

/* Builds a response: tag, size (0: the real length), status, body. */
static size_t mk(uint8_t *b, uint16_t tag, uint32_t size, uint32_t status,
                 const uint8_t *body, size_t n)
{
    size_t len = 10 + n;

    if (size == 0)
        size = (uint32_t)len;
    b[0] = (uint8_t)(tag >> 8);
    b[1] = (uint8_t)tag;
    b[2] = (uint8_t)(size >> 24);
    b[3] = (uint8_t)(size >> 16);
    b[4] = (uint8_t)(size >> 8);
    b[5] = (uint8_t)size;
    b[6] = (uint8_t)(status >> 24);
    b[7] = (uint8_t)(status >> 16);
    b[8] = (uint8_t)(status >> 8);
    b[9] = (uint8_t)status;
    if (n)
        memcpy(b + 10, body, n);
    return len;
}

static void test_parse_header(void **state)
{
    uint8_t b[64];
    struct mgrproto_rsp r;
    const char *why = NULL;
    size_t n;

    n = mk(b, 0x01C4, 0, 0, U, 16);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(r.tag, 0x01C4);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body_len, 16);
    assert_memory_equal(r.body, U, 16);

    /* tag + 3: the dispatcher refused (not admin, bad ordinal). */
    n = mk(b, 0x01C5, 0, 1, NULL, 0);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(r.status, 1);
    assert_string_equal(mgrproto_status_str(r.status),
                        "authorization failure (this vTPM lacks vtpmmgr's admin "
                        "flag, or the group is not unsealed)");

    assert_int_equal(mgrproto_parse(b, 9, &r, &why), -EPROTO);
    assert_non_null(strstr(why, "shorter"));
    n = mk(b, 0x01C4, 11, 0, NULL, 0); /* size field lies */
    assert_int_equal(mgrproto_parse(b, n, &r, &why), -EPROTO);
    assert_non_null(strstr(why, "size"));
    n = mk(b, 0x00C4, 0, 0, NULL, 0); /* a TPM 1.2 response tag */
    assert_int_equal(mgrproto_parse(b, n, &r, &why), -EPROTO);
    n = mk(b, 0x01C5, 0, 0, NULL, 0); /* refused with success */
    assert_int_equal(mgrproto_parse(b, n, &r, &why), -EPROTO);
    n = mk(b, 0x01C4, 0, 9, U, 16); /* failed, yet a body */
    assert_int_equal(mgrproto_parse(b, n, &r, &why), -EPROTO);
    n = mk(b, 0x01C4, 0, 9, NULL, 0);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(r.status, MGRPROTO_ST_FAIL);
}

static void test_bodies(void **state)
{
    uint8_t b[1024], body[1024], u[16];
    struct mgrproto_rsp r;
    const uint8_t *uuids;
    const char *why;
    uint32_t count, total;
    size_t n, k;

    /* GROUP_LIST: exactly a u32. */
    memset(body, 0, sizeof(body));
    body[3] = 2;
    n = mk(b, 0x01C4, 0, 0, body, 4);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_group_list_body(&r, &count, &why), 0);
    assert_int_equal(count, 2);
    n = mk(b, 0x01C4, 0, 0, body, 5);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_group_list_body(&r, &count, &why), -EPROTO);

    /* GROUP_SHOW: uuid, 256-byte key, u64 seq, n x 20, k x 20. */
    memset(body, 0, sizeof(body));
    memcpy(body, U, 16);
    k = 16 + 256 + 8;
    body[k + 3] = 2;                 /* two seals */
    body[k + 4 + 40 + 3] = 1;        /* one kernel */
    n = k + 4 + 40 + 4 + 20;
    n = mk(b, 0x01C4, 0, 0, body, n);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    memset(u, 0, sizeof(u));
    assert_int_equal(mgrproto_group_show_body(&r, u, &why), 0);
    assert_memory_equal(u, U, 16);
    r.body_len--; /* one byte short of its counts */
    memset(u, 0, sizeof(u));
    assert_int_equal(mgrproto_group_show_body(&r, u, &why), -EPROTO);
    assert_int_equal(u[0], 0); /* outputs only on success */
    body[k + 3] = 200;         /* more seals than bytes */
    n = mk(b, 0x01C4, 0, 0, body, k + 4 + 40 + 4 + 20);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_group_show_body(&r, u, &why), -EPROTO);
    n = mk(b, 0x01C4, 0, 0, body, 100);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_group_show_body(&r, u, &why), -EPROTO);

    /* VTPM_LIST: total, then whole UUIDs. */
    memset(body, 0, sizeof(body));
    body[3] = 3;
    memcpy(body + 4, U, 16);
    memcpy(body + 20, U, 16);
    n = mk(b, 0x01C4, 0, 0, body, 36);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_vtpm_list_body(&r, &total, &uuids, &k, &why), 0);
    assert_int_equal(total, 3);
    assert_int_equal(k, 2);
    assert_memory_equal(uuids + 16, U, 16);
    n = mk(b, 0x01C4, 0, 0, body, 35);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_vtpm_list_body(&r, &total, &uuids, &k, &why), -EPROTO);
    n = mk(b, 0x01C4, 0, 0, body, 4); /* offset past the end: the count only */
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_vtpm_list_body(&r, &total, &uuids, &k, &why), 0);
    assert_int_equal(k, 0);

    /* VTPM_NEW: exactly 16 bytes; VTPM_DEL: nothing. */
    n = mk(b, 0x01C4, 0, 0, U, 16);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_vtpm_new_body(&r, u, &why), 0);
    assert_memory_equal(u, U, 16);
    assert_int_equal(mgrproto_vtpm_del_body(&r, &why), -EPROTO);
    n = mk(b, 0x01C4, 0, 0, U, 15);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_vtpm_new_body(&r, u, &why), -EPROTO);
    n = mk(b, 0x01C4, 0, 0, NULL, 0);
    assert_int_equal(mgrproto_parse(b, n, &r, &why), 0);
    assert_int_equal(mgrproto_vtpm_del_body(&r, &why), 0);
}

static void test_names(void **state)
{
    assert_string_equal(mgrproto_ord_name(MGRPROTO_ORD_VTPM_NEW), "VTPM_NEW");
    assert_string_equal(mgrproto_ord_name(0x02000102), "?"); /* GROUP_NEW: never ours */
    assert_string_equal(mgrproto_status_str(MGRPROTO_ST_BADINDEX), "no such group index");
    assert_string_equal(mgrproto_status_str(77), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
