/* status_build: the oslo 2.0 envelope and the contract's fields. */
#include "config.h"

#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "vconfig.h"
#include "status.h"

static const char *const UUID_RE =
    "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$";

static int setup(void **state)
{
    struct config *cfg;
    struct cfg_errors errs = {0};
    char path[] = "/tmp/test_status.XXXXXX";
    int fd = mkstemp(path);
    static const char yaml[] = "vtpmmgr: {provider: local}\n";

    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, sizeof(yaml) - 1), sizeof(yaml) - 1);
    close(fd);
    assert_int_equal(config_load(path, &cfg, &errs), 0);
    unlink(path);
    free(cfg->host);
    cfg->host = strdup("compute-3");
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    config_free(*state);
    return 0;
}

static void assert_match(const char *re, const char *s)
{
    regex_t r;

    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&r, s, 0, NULL, 0) != 0)
        fail_msg("'%s' does not match %s", s, re);
    regfree(&r);
}

/* Parses the envelope and returns the inner message (caller decrefs). */
static json_t *unwrap(const char *body, size_t len)
{
    json_error_t err;
    json_t *env = json_loadb(body, len, 0, &err), *inner;
    const char *s;

    assert_non_null(env);
    assert_int_equal(json_object_size(env), 2);
    assert_string_equal(json_string_value(json_object_get(env, "oslo.version")), "2.0");
    s = json_string_value(json_object_get(env, "oslo.message"));
    assert_non_null(s);
    inner = json_loads(s, 0, &err);
    assert_non_null(inner);
    json_decref(env);
    return inner;
}

static const struct status_payload full = {
    .instance_uuid = "9d8c3a4e-1b2f-4c5d-8e7f-0a1b2c3d4e5f",
    .vtpm_uuid = "0b6e2f7a-3c4d-4e5f-9a8b-7c6d5e4f3a2b",
    .vtpm_domain = "vtpm-9d8c3a4e-1b2f-4c5d-8e7f-0a1b2c3d4e5f",
    .image_path = "/var/lib/vtpmd/images/9d8c3a4e.img",
    .rule = "trusted",
    .state = "ready",
    .duration_ms = 1234,
    .request_id = "req-6c1e0c3a-2b8d-4f1e-9d7c-5a4b3c2d1e0f",
};

static void test_info_event(void **state)
{
    const struct config *cfg = *state;
    char *body = NULL, *rk = NULL;
    size_t len = 0;
    json_t *m, *p;

    assert_int_equal(status_build(cfg, STATUS_CREATE_END, &full, &body, &len, &rk), 0);
    assert_int_equal(strlen(body), len);
    assert_string_equal(rk, "notifications.info");
    m = unwrap(body, len);
    assert_string_equal(json_string_value(json_object_get(m, "event_type")), "vtpm.create.end");
    assert_string_equal(json_string_value(json_object_get(m, "priority")), "INFO");
    assert_string_equal(json_string_value(json_object_get(m, "publisher_id")), "vtpmd:compute-3");
    assert_match(UUID_RE, json_string_value(json_object_get(m, "message_id")));
    assert_match("^[0-9a-f]{32}$", json_string_value(json_object_get(m, "_unique_id")));
    assert_match("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}$",
                 json_string_value(json_object_get(m, "timestamp")));
    p = json_object_get(m, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "instance_uuid")), full.instance_uuid);
    assert_string_equal(json_string_value(json_object_get(p, "host")), "compute-3");
    assert_string_equal(json_string_value(json_object_get(p, "vtpm_uuid")), full.vtpm_uuid);
    assert_string_equal(json_string_value(json_object_get(p, "vtpm_domain")), full.vtpm_domain);
    assert_string_equal(json_string_value(json_object_get(p, "image_path")), full.image_path);
    assert_string_equal(json_string_value(json_object_get(p, "rule")), "trusted");
    assert_string_equal(json_string_value(json_object_get(p, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(p, "duration_ms")), 1234);
    assert_string_equal(json_string_value(json_object_get(p, "request_id")), full.request_id);
    assert_null(json_object_get(p, "error"));
    json_decref(m);
    free(body);
    free(rk);
}

static void test_error_event_and_nulls(void **state)
{
    struct config *cfg = *state;
    struct status_payload p = {
        .instance_uuid = "9D8C3A4E-1B2F-4C5D-8E7F-0A1B2C3D4E5F",
        .host = "other-host",
        .duration_ms = -1,
        .error_code = "vtpmmgr_unreachable",
        .error_message = "proxy: connection refused \"quoted\"\n",
    };
    char *body = NULL, *rk = NULL;
    size_t len;
    json_t *m, *pl, *e;

    free(cfg->status.topic);
    cfg->status.topic = strdup("vtpm_status");
    assert_int_equal(status_build(cfg, STATUS_DELETE_ERROR, &p, &body, &len, &rk), 0);
    assert_string_equal(rk, "vtpm_status.error");
    m = unwrap(body, len);
    assert_string_equal(json_string_value(json_object_get(m, "priority")), "ERROR");
    pl = json_object_get(m, "payload");
    assert_string_equal(json_string_value(json_object_get(pl, "host")), "other-host");
    assert_true(json_is_null(json_object_get(pl, "vtpm_uuid")));
    assert_true(json_is_null(json_object_get(pl, "rule")));
    assert_true(json_is_null(json_object_get(pl, "duration_ms")));
    assert_true(json_is_null(json_object_get(pl, "request_id")));
    e = json_object_get(pl, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "vtpmmgr_unreachable");
    assert_string_equal(json_string_value(json_object_get(e, "message")), p.error_message);
    json_decref(m);
    free(body);
    free(rk);
}

static void test_fresh_ids(void **state)
{
    const struct config *cfg = *state;
    char *b1, *b2, *r1, *r2;
    size_t l1, l2;
    json_t *m1, *m2;

    assert_int_equal(status_build(cfg, STATUS_CREATE_START, &full, &b1, &l1, &r1), 0);
    assert_int_equal(status_build(cfg, STATUS_CREATE_START, &full, &b2, &l2, &r2), 0);
    m1 = unwrap(b1, l1);
    m2 = unwrap(b2, l2);
    assert_string_not_equal(json_string_value(json_object_get(m1, "message_id")),
                            json_string_value(json_object_get(m2, "message_id")));
    assert_string_not_equal(json_string_value(json_object_get(m1, "_unique_id")),
                            json_string_value(json_object_get(m2, "_unique_id")));
    json_decref(m1);
    json_decref(m2);
    free(b1);
    free(b2);
    free(r1);
    free(r2);
}

static void test_refusals(void **state)
{
    const struct config *cfg = *state;
    struct status_payload p = full;
    char *body = (char *)"untouched", *rk = (char *)"untouched";
    size_t len = 7;

    assert_int_equal(status_build(cfg, "vtpm.create.done", &full, &body, &len, &rk), -EINVAL);
    assert_int_equal(status_build(cfg, "compute.instance.create.end", &full, &body, &len, &rk),
                     -EINVAL);
    p.instance_uuid = "../../etc/passwd";
    assert_int_equal(status_build(cfg, STATUS_CREATE_END, &p, &body, &len, &rk), -EINVAL);
    p.instance_uuid = NULL;
    assert_int_equal(status_build(cfg, STATUS_CREATE_END, &p, &body, &len, &rk), -EINVAL);
    p = full;
    p.rule = "bad \xff utf-8";
    assert_int_equal(status_build(cfg, STATUS_CREATE_END, &p, &body, &len, &rk), -EINVAL);
    /* Outputs are written only on success. */
    assert_string_equal(body, "untouched");
    assert_string_equal(rk, "untouched");
    assert_int_equal(len, 7);
}

static void test_every_contract_event(void **state)
{
    const struct config *cfg = *state;
    const char *ev[] = {STATUS_CREATE_START, STATUS_CREATE_END, STATUS_CREATE_ERROR,
                        STATUS_DELETE_START, STATUS_DELETE_END, STATUS_DELETE_ERROR};

    for (size_t i = 0; i < 6; i++) {
        char *body, *rk;
        size_t len;
        bool err = strstr(ev[i], ".error") != NULL;

        assert_int_equal(status_build(cfg, ev[i], &full, &body, &len, &rk), 0);
        assert_string_equal(rk, err ? "notifications.error" : "notifications.info");
        free(body);
        free(rk);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_info_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_event_and_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_contract_event, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
