#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uuidutil.h"

static const char *const good[] = {
    "0f8fad5b-d9cb-469f-a165-70867728950e",
    "0F8FAD5B-D9CB-469F-A165-70867728950E",
    "00000000-0000-0000-0000-000000000001",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
};

static const char *const bad[] = {
    "",
    "00000000-0000-0000-0000-000000000000", /* nil: names nothing */
    "0f8fad5b-d9cb-469f-a165-70867728950",   /* short */
    "0f8fad5b-d9cb-469f-a165-70867728950e0", /* long */
    "0f8fad5b-d9cb-469f-a165-70867728950e ", /* trailing space */
    " 0f8fad5b-d9cb-469f-a165-70867728950e", /* leading space */
    "{0f8fad5b-d9cb-469f-a165-70867728950e}",
    "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
    "0f8fad5bd9cb469fa16570867728950e", /* no hyphens */
    "0f8fad5b-d9cb-469f-a165-70867728950g",
    "0f8fad5b_d9cb-469f-a165-70867728950e",
    "0f8fad5bd-9cb-469f-a165-70867728950e", /* hyphen moved */
    "../../../../../../../../etc/passwd00",  /* 36 characters */
    "0f8fad5b-d9cb-469f-a165-70867728950\n",
    "0f8fad5b-d9cb-469f-a165-7086772895/e",
    "0f8fad5b-d9cb-469f-a165-70867728950e\n",
    "0f8fad5b-d9cb-469f-a165-7086772895<e",
};

static void test_valid(void **state)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(uuid_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (uuid_valid(bad[i]))
            fail_msg("accepted '%s'", bad[i]);
    }
    assert_false(uuid_valid(NULL));
}

static void test_embedded_nul(void **state)
{
    char s[40] = "0f8fad5b-d9cb-469f-a165-70867728950e";

    s[10] = '\0';
    assert_false(uuid_valid(s));
}

static void test_canonical(void **state)
{
    char out[UUIDUTIL_BUFLEN];

    assert_int_equal(uuid_canonical(good[1], out), 0);
    assert_string_equal(out, "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_true(uuid_is_canonical(out));
    assert_false(uuid_is_canonical(good[1]));
    assert_int_equal(uuid_canonical(good[0], out), 0);
    assert_string_equal(out, good[0]);

    /* Rejected input leaves out untouched. */
    memset(out, 'x', sizeof(out));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(uuid_canonical(bad[i], out), -EINVAL);
    assert_int_equal(uuid_canonical(NULL, out), -EINVAL);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 'x');
}

static void test_nil(void **state)
{
    assert_true(uuid_is_nil("00000000-0000-0000-0000-000000000000"));
    assert_false(uuid_is_nil(good[0]));
    assert_false(uuid_is_nil("00000000000000000000000000000000"));
    assert_false(uuid_is_nil(NULL));
}

static void test_generate(void **state)
{
    char a[UUIDUTIL_BUFLEN], b[UUIDUTIL_BUFLEN];

    uuid_generate_str(a);
    uuid_generate_str(b);
    assert_true(uuid_is_canonical(a));
    assert_true(uuid_is_canonical(b));
    assert_string_not_equal(a, b);
    assert_false(uuid_is_nil(a));
    /* Version 4 (random), RFC 4122 variant. */
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_nil),
        cmocka_unit_test(test_generate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
