/* vtpmmgr: answer handling, sanitizing, backoff, URL handling, the local
 * provider, and the HTTP client against an in-process evhttp server with
 * scripted answers. tests/integration/vtpmmgr-*.sh run it against the
 * fake Keylime-VM proxy over HTTP, HTTPS and mTLS. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "vconfig.h"
#include "uuidutil.h"
#include "vtpmmgr.h"
#include "vtpmmgr_priv.h"
#include "xalloc.h"

#define U1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define U2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"

/* ---- answers ------------------------------------------------------- */

static enum vtpmmgr_status parse(enum vtpmmgr_op op, int code, const char *body,
                                 char uuid[UUIDUTIL_BUFLEN], char **err)
{
    free(*err);
    *err = NULL;
    return vtpmmgr_parse_response(op, code, body, strlen(body), uuid, err);
}

static void test_acquire_answers(void **state)
{
    char uuid[UUIDUTIL_BUFLEN] = "";
    char *err = NULL;

    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"" U1 "\"}", uuid, &err), VTPMMGR_OK);
    assert_string_equal(uuid, U1);
    assert_null(err);
    /* 200 (an existing vTPM), upper case, other keys: fine, canonicalized. */
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 200,
                           "{\"instance_uuid\": \"x\", \"uuid\": \"7C9E6679-7425-40DE-944B-E07FC1F90AE7\"}",
                           uuid, &err),
                     VTPMMGR_OK);
    assert_string_equal(uuid, U2);

    /* Not JSON. */
    strcpy(uuid, "untouched");
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "<html>\n<b>oops</b>\n</html>", uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_string_equal(uuid, "untouched");
    assert_non_null(strstr(err, "proxy answered 201 with a body that is not JSON"));
    assert_non_null(strstr(err, ": <html> <b>oops</b> </html>"));
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 200, "", uuid, &err), VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(err, "(empty body)"));
    /* A bare UUID (text/plain) is not the contract either. */
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 200, U1, uuid, &err), VTPMMGR_ERR_PERMANENT);

    /* JSON without a valid UUID. */
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{}", uuid, &err), VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(err, "without a \"uuid\""));
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "[\"" U1 "\"]", uuid, &err), VTPMMGR_ERR_PERMANENT);
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": 42}", uuid, &err), VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(err, "invalid vTPM UUID"));
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"../../etc/passwd\"}", uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(err, "invalid vTPM UUID"));
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"{" U1 "}\"}", uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"" U1 "\\n\"}", uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"00000000-0000-0000-0000-000000000000\"}",
                           uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(err, "nil UUID"));
    /* Two answers in one: which one would be meant? */
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"" U1 "\", \"uuid\": \"" U2 "\"}", uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_int_equal(parse(VTPMMGR_OP_ACQUIRE, 201, "{\"uuid\": \"" U1 "\"} trailing", uuid, &err),
                     VTPMMGR_ERR_PERMANENT);
    assert_string_equal(uuid, "untouched");
    free(err);
}

/* An answer, what parse makes of it and, when err is set, its error
 * message: all of it (exact) or a part. */
struct answer_case {
    enum vtpmmgr_op op;
    int code;
    const char *body;
    enum vtpmmgr_status st;
    const char *err;
    bool exact;
};

static void check_answers(const struct answer_case *c, size_t n)
{
    char uuid[UUIDUTIL_BUFLEN];
    char *err = NULL;

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(parse(c[i].op, c[i].code, c[i].body, uuid, &err), c[i].st);
        if (c[i].st == VTPMMGR_OK)
            assert_null(err);
        else if (c[i].err && c[i].exact)
            assert_string_equal(err, c[i].err);
        else if (c[i].err)
            assert_non_null(strstr(err, c[i].err));
    }
    free(err);
}

static void test_error_answers(void **state)
{
    static const struct answer_case cases[] = {
        {VTPMMGR_OP_ACQUIRE, 503, "{\"error\": \"vtpmmgr busy\"}", VTPMMGR_ERR_TRANSIENT,
         "proxy answered 503: vtpmmgr busy", true},
        {VTPMMGR_OP_ACQUIRE, 500, "<h1>Internal\r\n\tError</h1>", VTPMMGR_ERR_TRANSIENT,
         "proxy answered 500: <h1>Internal Error</h1>", true},
        {VTPMMGR_OP_ACQUIRE, 429, "", VTPMMGR_ERR_TRANSIENT, "proxy answered 429: (empty body)", true},
        {VTPMMGR_OP_ACQUIRE, 408, "", VTPMMGR_ERR_TRANSIENT, NULL, false},
        {VTPMMGR_OP_ACQUIRE, 400, "{\"error\": {\"message\": \"host missing\"}}", VTPMMGR_ERR_PERMANENT,
         "proxy answered 400: host missing", true},
        {VTPMMGR_OP_ACQUIRE, 403, "{\"message\": \"forbidden\"}", VTPMMGR_ERR_PERMANENT,
         "proxy answered 403: forbidden", true},
        {VTPMMGR_OP_ACQUIRE, 404, "{\"other\": 1}", VTPMMGR_ERR_PERMANENT, "proxy answered 404: {\"other\": 1}",
         true},
        {VTPMMGR_OP_ACQUIRE, 302, "", VTPMMGR_ERR_PERMANENT, "redirects are not followed", false},
        {VTPMMGR_OP_ACQUIRE, 204, "", VTPMMGR_ERR_PERMANENT, "204, which acquire does not expect", false},
        /* An error message is sanitized too. */
        {VTPMMGR_OP_ACQUIRE, 400, "{\"error\": \"bad\\nthing\\u00e9\"}", VTPMMGR_ERR_PERMANENT,
         "proxy answered 400: bad thing??", true},
    };

    check_answers(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_release_answers(void **state)
{
    static const struct answer_case cases[] = {
        {VTPMMGR_OP_RELEASE, 204, "", VTPMMGR_OK, NULL, false},
        {VTPMMGR_OP_RELEASE, 200, "{}", VTPMMGR_OK, NULL, false},
        /* Already gone: what release wants. */
        {VTPMMGR_OP_RELEASE, 404, "{\"error\": \"no such vTPM\"}", VTPMMGR_OK, NULL, false},
        {VTPMMGR_OP_RELEASE, 502, "", VTPMMGR_ERR_TRANSIENT, NULL, false},
        {VTPMMGR_OP_RELEASE, 409, "{\"error\": \"in use\"}", VTPMMGR_ERR_PERMANENT, "proxy answered 409: in use",
         true},
        {VTPMMGR_OP_RELEASE, 201, "", VTPMMGR_ERR_PERMANENT, NULL, false},
    };

    check_answers(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_sanitize(void **state)
{
    static const struct {
        const char *in;
        size_t len, max;
        const char *want;
    } cases[] = {
        {"  a\r\n\tb\x01\x7f c  ", 13, 100, "a b c"},
        {"caf\xc3\xa9 \xff", 7, 100, "caf?? ?"},
        /* Cut exactly at the end of the text, or before mere white space. */
        {"0123456789", 10, 10, "0123456789"},
        {"0123456789 \n ", 13, 10, "0123456789"},
        {"0123456789 a", 12, 10, "0123456789..."},
        {"a\0b", 3, 10, "a b"},
        {"", 0, 10, ""},
    };
    char *s;
    char big[1000];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s = vtpmmgr_sanitize(cases[i].in, cases[i].len, cases[i].max);
        assert_string_equal(s, cases[i].want);
        free(s);
    }
    memset(big, 'x', sizeof(big));
    s = vtpmmgr_sanitize(big, sizeof(big), 10);
    assert_string_equal(s, "xxxxxxxxxx...");
    free(s);
}

static void test_backoff(void **state)
{
    assert_int_equal(vtpmmgr_backoff_ms(1, 0), 100);
    assert_int_equal(vtpmmgr_backoff_ms(1, 100), 200);
    assert_int_equal(vtpmmgr_backoff_ms(1, 101), 100);
    assert_int_equal(vtpmmgr_backoff_ms(2, 0), 200);
    assert_int_equal(vtpmmgr_backoff_ms(3, 200), 600);
    assert_int_equal(vtpmmgr_backoff_ms(3, 400), 800);
    for (unsigned a = 1; a < 100; a++) {
        for (uint32_t r = 0; r < 5; r++) {
            uint64_t d = vtpmmgr_backoff_ms(a, r * 977u + UINT32_MAX / (r + 1));

            assert_true(d >= VTPMMGR_BACKOFF_BASE_MS / 2);
            assert_true(d <= VTPMMGR_BACKOFF_MAX_MS);
        }
    }
    assert_true(vtpmmgr_backoff_ms(1000, 0) == VTPMMGR_BACKOFF_MAX_MS / 2);
    assert_true(vtpmmgr_backoff_ms(UINT32_MAX, UINT32_MAX) <= VTPMMGR_BACKOFF_MAX_MS);
}

/* ---- set-up -------------------------------------------------------- */

static void cfg_init(struct config *cfg, int provider, const char *url, int api)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->vtpmmgr.provider = provider;
    cfg->vtpmmgr.url = (char *)url;
    cfg->vtpmmgr.api = api;
    cfg->vtpmmgr.timeout_ms = 2000;
    cfg->vtpmmgr.retry_for_ms = 0;
    cfg->vtpmmgr.tls.verify_peer = true;
    cfg->vtpmmgr.tls.verify_hostname = true;
}

static void test_urls(void **state)
{
    struct event_base *base = event_base_new();
    struct config cfg;
    struct vtpmmgr *m = NULL;
    static const struct {
        const char *url;
        int api;
        const char *acquire, *release;
    } ok[] = {
        {"http://127.0.0.1:8081", VTPMMGR_API_V1, "/v1/vtpms", "/v1/vtpms"},
        {"http://127.0.0.1:8081/", VTPMMGR_API_V1, "/v1/vtpms", "/v1/vtpms"},
        {"http://[::1]:8081/proxy//", VTPMMGR_API_V1, "/proxy/v1/vtpms", "/proxy/v1/vtpms"},
        {"http://127.0.0.1:8081", VTPMMGR_API_LEGACY, "/", NULL},
        {"http://127.0.0.1/vtpm?group=0", VTPMMGR_API_LEGACY, "/vtpm?group=0", NULL},
        {"http://user:secret@127.0.0.1/", VTPMMGR_API_V1, "/v1/vtpms", "/v1/vtpms"},
    };
    static const char *const bad[] = {
        "ftp://127.0.0.1/", "http://", "http://127.0.0.1:0/", "http://127.0.0.1:99999/",
        "http://127.0.0.1/?q=1", "not a url",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cfg_init(&cfg, VTPMMGR_PROVIDER_KEYLIME_PROXY, ok[i].url, ok[i].api);
        assert_int_equal(vtpmmgr_new(base, &cfg, &m), 0);
        assert_string_equal(vtpmmgr_target(m, VTPMMGR_OP_ACQUIRE), ok[i].acquire);
        if (ok[i].release)
            assert_string_equal(vtpmmgr_target(m, VTPMMGR_OP_RELEASE), ok[i].release);
        else
            assert_null(vtpmmgr_target(m, VTPMMGR_OP_RELEASE));
        vtpmmgr_free(m);
        m = NULL;
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg_init(&cfg, VTPMMGR_PROVIDER_KEYLIME_PROXY, bad[i], VTPMMGR_API_V1);
        if (vtpmmgr_new(base, &cfg, &m) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
    }
    cfg_init(&cfg, VTPMMGR_PROVIDER_KEYLIME_PROXY, NULL, VTPMMGR_API_V1);
    assert_int_equal(vtpmmgr_new(base, &cfg, &m), -EINVAL);

    /* TLS material is loaded up front: a missing CA or key fails now. */
    cfg_init(&cfg, VTPMMGR_PROVIDER_KEYLIME_PROXY, "https://127.0.0.1/", VTPMMGR_API_V1);
    cfg.vtpmmgr.tls.ca_file = (char *)"/nonexistent/ca.pem";
    assert_int_equal(vtpmmgr_new(base, &cfg, &m), -EINVAL);
    cfg.vtpmmgr.tls.ca_file = NULL;
    cfg.vtpmmgr.tls.cert_file = (char *)"/nonexistent/cert.pem";
    cfg.vtpmmgr.tls.key_file = (char *)"/nonexistent/key.pem";
    assert_int_equal(vtpmmgr_new(base, &cfg, &m), -EINVAL);
    /* System CAs. */
    cfg.vtpmmgr.tls.cert_file = cfg.vtpmmgr.tls.key_file = NULL;
    assert_int_equal(vtpmmgr_new(base, &cfg, &m), 0);
    vtpmmgr_free(m);
    vtpmmgr_free(NULL);
    event_base_free(base);
}

/* ---- callbacks ----------------------------------------------------- */

struct result {
    int calls;
    bool in_call;
    bool called_inside;
    enum vtpmmgr_status st;
    char uuid[UUIDUTIL_BUFLEN];
    char error[512];
    struct event_base *stop; /* loopexit when set */
};

static void result_cb(enum vtpmmgr_status st, const char *uuid, const char *error, void *arg)
{
    struct result *r = arg;

    r->calls++;
    r->called_inside |= r->in_call;
    r->st = st;
    r->uuid[0] = r->error[0] = '\0';
    if (uuid)
        snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
    if (error)
        snprintf(r->error, sizeof(r->error), "%s", error);
    assert_true((st == VTPMMGR_OK) == (error == NULL));
    if (r->stop)
        event_base_loopexit(r->stop, NULL);
}

static void test_local(void **state)
{
    struct event_base *base = event_base_new();
    struct result a = {0}, b = {0}, rel = {0};
    struct vtpmmgr_stats stats;
    struct config cfg;
    struct vtpmmgr *m;
    char longhost[300];

    cfg_init(&cfg, VTPMMGR_PROVIDER_LOCAL, NULL, VTPMMGR_API_V1);
    assert_int_equal(vtpmmgr_new(base, &cfg, &m), 0);

    a.in_call = true;
    assert_int_equal(vtpmmgr_acquire(m, U1, "host-1", result_cb, &a), 0);
    a.in_call = false;
    assert_int_equal(vtpmmgr_acquire(m, "0F8FAD5B-D9CB-469F-A165-70867728950E", "host-1", result_cb, &b), 0);
    assert_int_equal(a.calls, 0); /* never synchronously */
    assert_int_equal(vtpmmgr_pending(m), 2);
    event_base_dispatch(base);
    assert_int_equal(a.calls, 1);
    assert_false(a.called_inside);
    assert_int_equal(a.st, VTPMMGR_OK);
    assert_true(uuid_is_canonical(a.uuid));
    assert_true(uuid_is_canonical(b.uuid));
    assert_string_not_equal(a.uuid, b.uuid);

    rel.in_call = true;
    assert_int_equal(vtpmmgr_release(m, a.uuid, U1, result_cb, &rel), 0);
    rel.in_call = false;
    assert_int_equal(rel.calls, 0);
    event_base_dispatch(base);
    assert_int_equal(rel.calls, 1);
    assert_int_equal(rel.st, VTPMMGR_OK);
    assert_false(rel.called_inside);

    /* Invalid arguments are refused at once, with no callback. */
    assert_int_equal(vtpmmgr_acquire(m, "../x", "h", result_cb, &a), -EINVAL);
    assert_int_equal(vtpmmgr_acquire(m, U1, "", result_cb, &a), -EINVAL);
    assert_int_equal(vtpmmgr_acquire(m, U1, NULL, result_cb, &a), -EINVAL);
    assert_int_equal(vtpmmgr_acquire(m, U1, "a\nb", result_cb, &a), -EINVAL);
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    assert_int_equal(vtpmmgr_acquire(m, U1, longhost, result_cb, &a), -EINVAL);
    assert_int_equal(vtpmmgr_acquire(m, U1, "h", NULL, &a), -EINVAL);
    assert_int_equal(vtpmmgr_release(m, "nope", NULL, result_cb, &a), -EINVAL);
    assert_int_equal(vtpmmgr_release(m, U2, "nope", result_cb, &a), -EINVAL);
    event_base_dispatch(base);
    assert_int_equal(a.calls, 1);

    vtpmmgr_get_stats(m, &stats);
    assert_int_equal(stats.requests, 3);
    assert_int_equal(stats.failures, 0);
    assert_int_equal(vtpmmgr_pending(m), 0);

    /* Freed with requests pending: they are never called back. */
    assert_int_equal(vtpmmgr_acquire(m, U1, "h", result_cb, &a), 0);
    vtpmmgr_free(m);
    event_base_dispatch(base);
    assert_int_equal(a.calls, 1);
    event_base_free(base);
}

/* ---- against a scripted in-process HTTP server ---------------------- */

struct script_answer {
    int code;
    const char *body;
    size_t repeat; /* body repeated this many times (oversized answers) */
};

struct server {
    struct event_base *base;
    struct evhttp *http;
    int port;
    const struct script_answer *answers;
    size_t n, next;
    char last_method[16];
    char last_uri[256];
    char last_body[512];
    char last_host[128];
    char last_ctype[64];
};

static void server_cb(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct evbuffer *out = evbuffer_new();
    const struct script_answer *a;
    const char *h;
    size_t len = evbuffer_get_length(in);

    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        strcpy(s->last_method, "GET");
        break;
    case EVHTTP_REQ_POST:
        strcpy(s->last_method, "POST");
        break;
    case EVHTTP_REQ_DELETE:
        strcpy(s->last_method, "DELETE");
        break;
    default:
        strcpy(s->last_method, "OTHER");
    }
    snprintf(s->last_uri, sizeof(s->last_uri), "%s", evhttp_request_get_uri(req));
    if (len >= sizeof(s->last_body))
        len = sizeof(s->last_body) - 1;
    evbuffer_copyout(in, s->last_body, len);
    s->last_body[len] = '\0';
    h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    snprintf(s->last_host, sizeof(s->last_host), "%s", h ? h : "");
    h = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    snprintf(s->last_ctype, sizeof(s->last_ctype), "%s", h ? h : "");

    a = &s->answers[s->next < s->n ? s->next : s->n - 1];
    s->next++;
    for (size_t i = 0; i < (a->repeat ? a->repeat : 1); i++)
        evbuffer_add(out, a->body, strlen(a->body));
    evhttp_send_reply(req, a->code, "X", out);
    evbuffer_free(out);
}

static void server_start(struct server *s, struct event_base *base,
                         const struct script_answer *answers, size_t n)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof(ss);

    memset(s, 0, sizeof(*s));
    s->base = base;
    s->answers = answers;
    s->n = n;
    s->http = evhttp_new(base);
    evhttp_set_gencb(s->http, server_cb, s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    sock = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    assert_non_null(sock);
    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static struct vtpmmgr *client_new(struct event_base *base, struct server *s, int api,
                                  uint64_t retry_for_ms)
{
    struct vtpmmgr *m = NULL;
    struct config cfg;
    char url[64];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/base/", s->port);
    cfg_init(&cfg, VTPMMGR_PROVIDER_KEYLIME_PROXY, url, api);
    cfg.vtpmmgr.retry_for_ms = retry_for_ms;
    assert_int_equal(vtpmmgr_new(base, &cfg, &m), 0);
    return m;
}

static void run(struct event_base *base, struct result *r)
{
    r->stop = base;
    event_base_dispatch(base);
    assert_int_equal(r->calls, 1);
    assert_false(r->called_inside);
}

/* One HTTP case: an event base, the scripted server, a client on it, and
 * the result of the last call. */
struct http_case {
    struct event_base *base;
    struct server s;
    struct vtpmmgr *m;
    struct result r;
};

static void http_open(struct http_case *c, const struct script_answer *answers, size_t n, int api,
                      uint64_t retry_for_ms)
{
    memset(c, 0, sizeof(*c));
    c->base = event_base_new();
    server_start(&c->s, c->base, answers, n);
    c->m = client_new(c->base, &c->s, api, retry_for_ms);
}

static void http_close(struct http_case *c)
{
    vtpmmgr_free(c->m);
    if (c->s.http)
        evhttp_free(c->s.http);
    event_base_free(c->base);
}

/* acquire (host != NULL) or release (of vTPM uuid) through the client,
 * run to its single callback, never called from inside the call: its
 * status. */
static enum vtpmmgr_status http_call(struct http_case *c, const char *uuid, const char *host,
                                     const char *instance)
{
    memset(&c->r, 0, sizeof(c->r));
    c->r.in_call = true;
    if (host)
        assert_int_equal(vtpmmgr_acquire(c->m, uuid, host, result_cb, &c->r), 0);
    else
        assert_int_equal(vtpmmgr_release(c->m, uuid, instance, result_cb, &c->r), 0);
    c->r.in_call = false;
    run(c->base, &c->r);
    return c->r.st;
}

static void test_http_v1(void **state)
{
    static const struct script_answer answers[] = {
        {201, "{\"uuid\": \"" U2 "\"}", 0},
        {204, "", 0},
    };
    struct http_case c;
    char want[64];

    http_open(&c, answers, 2, VTPMMGR_API_V1, 0);
    assert_int_equal(http_call(&c, "0F8FAD5B-D9CB-469F-A165-70867728950E", "compute-1", NULL), VTPMMGR_OK);
    assert_string_equal(c.r.uuid, U2);
    assert_string_equal(c.s.last_method, "POST");
    assert_string_equal(c.s.last_uri, "/base/v1/vtpms");
    assert_string_equal(c.s.last_body, "{\"instance_uuid\":\"" U1 "\",\"host\":\"compute-1\"}");
    assert_string_equal(c.s.last_ctype, "application/json");
    snprintf(want, sizeof(want), "127.0.0.1:%d", c.s.port);
    assert_string_equal(c.s.last_host, want);

    assert_int_equal(http_call(&c, U2, NULL, U1), VTPMMGR_OK);
    assert_string_equal(c.r.uuid, U2);
    assert_string_equal(c.s.last_method, "DELETE");
    assert_string_equal(c.s.last_uri, "/base/v1/vtpms/" U2);
    http_close(&c);
}

static void test_http_json_escaping(void **state)
{
    static const struct script_answer answers[] = {{201, "{\"uuid\": \"" U2 "\"}", 0}};
    struct http_case c;

    http_open(&c, answers, 1, VTPMMGR_API_V1, 0);
    http_call(&c, U1, "evil\",\"host\":\"x\\", NULL);
    assert_string_equal(c.s.last_body, "{\"instance_uuid\":\"" U1 "\",\"host\":\"evil\\\",\\\"host\\\":\\\"x\\\\\"}");
    /* Not UTF-8: refused before anything is sent. */
    assert_int_equal(vtpmmgr_acquire(c.m, U1, "caf\xe9", result_cb, &c.r), -EINVAL);
    http_close(&c);
}

static void test_http_retry_then_ok(void **state)
{
    static const struct script_answer answers[] = {
        {503, "{\"error\": \"busy\"}", 0},
        {500, "oops", 0},
        {201, "{\"uuid\": \"" U2 "\"}", 0},
    };
    struct vtpmmgr_stats st;
    struct http_case c;

    http_open(&c, answers, 3, VTPMMGR_API_V1, 10000);
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_OK);
    assert_string_equal(c.r.uuid, U2);
    assert_int_equal(c.s.next, 3);
    vtpmmgr_get_stats(c.m, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.failures, 0);
    http_close(&c);
}

static void test_http_gives_up(void **state)
{
    static const struct script_answer answers[] = {{503, "{\"error\": \"busy\"}", 0}};
    struct vtpmmgr_stats st;
    struct http_case c;

    /* 350 ms allow the first retries (100-200 ms, 200-400 ms) but not many. */
    http_open(&c, answers, 1, VTPMMGR_API_V1, 350);
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_ERR_TRANSIENT);
    assert_non_null(strstr(c.r.error, "proxy answered 503: busy (gave up after "));
    assert_non_null(strstr(c.r.error, "vtpmmgr.retry_for is 0.3s)"));
    vtpmmgr_get_stats(c.m, &st);
    assert_true(st.retries >= 1 && st.retries <= 2);
    assert_int_equal(st.failures, 1);
    assert_int_equal(c.s.next, st.retries + 1);
    http_close(&c);
}

static void test_http_permanent(void **state)
{
    static const struct script_answer answers[] = {
        {400, "{\"error\": \"bad request\"}", 0},
        {201, "not json at all", 0},
        {201, "{\"uuid\": \"", 20000}, /* 200 KB: over the limit */
        {409, "{\"error\": \"conflict\"}", 0},
    };
    struct http_case c;

    http_open(&c, answers, 4, VTPMMGR_API_V1, 60000);
    /* Permanent failures are not retried, whatever the budget. */
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_ERR_PERMANENT);
    assert_string_equal(c.r.error, "proxy answered 400: bad request");
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(c.r.error, "not JSON"));
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_ERR_PERMANENT);
    assert_non_null(strstr(c.r.error, "larger than 64 KiB"));
    assert_int_equal(http_call(&c, U2, NULL, NULL), VTPMMGR_ERR_PERMANENT);
    assert_string_equal(c.r.error, "proxy answered 409: conflict");
    assert_int_equal(c.s.next, 4);
    http_close(&c);
}

static void test_http_legacy(void **state)
{
    static const struct script_answer answers[] = {{200, "{\"uuid\": \"" U2 "\"}", 0}};
    struct http_case c;

    http_open(&c, answers, 1, VTPMMGR_API_LEGACY, 0);
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_OK);
    assert_string_equal(c.s.last_method, "GET");
    assert_string_equal(c.s.last_uri, "/base/");
    /* No release in the legacy API: OK without a request. */
    assert_int_equal(http_call(&c, U2, NULL, U1), VTPMMGR_OK);
    assert_int_equal(c.s.next, 1);
    http_close(&c);
}

static void test_http_refused(void **state)
{
    static const struct script_answer none[] = {{500, "", 0}};
    struct http_case c;

    /* A port nobody listens on: bind, learn the port, close. */
    http_open(&c, none, 1, VTPMMGR_API_V1, 0);
    evhttp_free(c.s.http);
    c.s.http = NULL;
    assert_int_equal(http_call(&c, U1, "h", NULL), VTPMMGR_ERR_TRANSIENT);
    assert_non_null(strstr(c.r.error, "cannot connect to http://127.0.0.1:"));
    assert_non_null(strstr(c.r.error, "gave up after 1 attempt in"));
    http_close(&c);
}

static void test_http_cancel(void **state)
{
    static const struct script_answer answers[] = {{201, "{\"uuid\": \"" U2 "\"}", 0}};
    struct http_case c;

    http_open(&c, answers, 1, VTPMMGR_API_V1, 0);
    assert_int_equal(vtpmmgr_acquire(c.m, U1, "h", result_cb, &c.r), 0);
    assert_int_equal(vtpmmgr_release(c.m, U2, NULL, result_cb, &c.r), 0);
    event_base_loop(c.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    vtpmmgr_free(c.m);
    c.m = NULL;
    /* Whatever was under way is dropped without a callback. */
    evhttp_free(c.s.http);
    c.s.http = NULL;
    event_base_dispatch(c.base);
    assert_int_equal(c.r.calls, 0);
    http_close(&c);
}

int main(void)
{
    /* As the daemon does (src/main.c): a peer closing mid-write is an
     * error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_answers),
        cmocka_unit_test(test_error_answers),
        cmocka_unit_test(test_release_answers),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_http_v1),
        cmocka_unit_test(test_http_json_escaping),
        cmocka_unit_test(test_http_retry_then_ok),
        cmocka_unit_test(test_http_gives_up),
        cmocka_unit_test(test_http_permanent),
        cmocka_unit_test(test_http_legacy),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_cancel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
