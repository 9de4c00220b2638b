#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "backoff.h"
#include "vconfig.h"
#include "log.h"
#include "uuidutil.h"
#include "vtime.h"
#include "vtpmmgr.h"
#include "vtpmmgr_priv.h"
#include "xalloc.h"

#define VTPMMGR_MAX_HEADERS (16 * 1024)
#define VTPMMGR_HOST_MAX 255

/* One acquire or release, from the call to its callback. A single timer
 * serves every state: in IN_FLIGHT it bounds the attempt, in BACKOFF it
 * starts the next attempt, in DONE it delivers the result from the loop
 * (so a callback never runs inside the call that started the request,
 * nor inside libevent's HTTP code, where the connection may not be freed). */
enum vtpmmgr_req_state {
    REQ_QUEUED = 0, /* waiting for one of VTPMMGR_MAX_INFLIGHT slots */
    REQ_IN_FLIGHT,
    REQ_BACKOFF,
    REQ_DONE,
};

struct vtpmmgr_req {
    TAILQ_ENTRY(vtpmmgr_req) link;
    TAILQ_ENTRY(vtpmmgr_req) wait_link; /* in m->waiting when QUEUED */
    struct vtpmmgr *m;
    enum vtpmmgr_op op;
    enum vtpmmgr_req_state state;
    char instance_uuid[UUIDUTIL_BUFLEN]; /* "" when unknown (release) */
    char vtpm_uuid[UUIDUTIL_BUFLEN];     /* release: input; acquire: result */
    char *body;                          /* v1 acquire: the JSON sent */
    vtpmmgr_cb cb;
    void *arg;
    struct event *timer;
    uint64_t started_ms;
    unsigned attempts;
    bool holds_slot; /* counted in m->inflight */

    /* The current attempt: a name lookup, then an HTTP exchange. */
    struct vtpmmgr_lookup *lookup;
    struct evdns_getaddrinfo_request *dns_req;
    struct evhttp_connection *conn;
    struct bufferevent *bev; /* owned by conn */
    SSL *ssl;                /* owned by bev */
    bool http_error_set;
    enum evhttp_request_error http_error;

    enum vtpmmgr_status result;
    char *error;
};

TAILQ_HEAD(vtpmmgr_reqs, vtpmmgr_req);

/* A name lookup's callback argument. It outlives a cancelled lookup (the
 * resolver calls back later, with EVUTIL_EAI_CANCEL), so it is detached
 * from its request (req = NULL) rather than freed on cancel. */
struct vtpmmgr_lookup {
    struct vtpmmgr_req *req;
};

struct vtpmmgr {
    struct event_base *base;
    int provider; /* enum vtpmmgr_provider */
    int api;      /* enum vtpmmgr_api */
    uint64_t timeout_ms;
    uint64_t retry_for_ms;

    /* keylime-proxy */
    bool https;
    char *display;      /* scheme://host:port, for messages (no credentials) */
    char *connect_host; /* host without IPv6 brackets */
    bool host_is_ip;
    uint16_t port;
    char *host_header;
    char *authorization; /* "Basic ..." from the URL's userinfo, or NULL */
    char *v1_target;     /* "<path>/v1/vtpms" */
    char *legacy_target; /* "<path>[?query]" */
    struct evdns_base *dns; /* only for a host name (IP literals need none) */
    SSL_CTX *ssl_ctx;
    bool verify_peer;
    bool has_client_cert;

    struct vtpmmgr_reqs reqs;
    unsigned pending;
    bool failing; /* a transient failure since the last answer */
    /* At most VTPMMGR_MAX_INFLIGHT connections to the proxy at once: a
     * burst of creates must not open a thousand sockets to a small VM
     * that serializes on one TPM anyway. The rest wait here, in order. */
    struct vtpmmgr_reqs waiting;
    unsigned inflight;
    struct event *kick;
    struct vtpmmgr_stats stats;
};

static void vtpmmgr_start_attempt(struct vtpmmgr_req *req);
static void vtpmmgr_try_start(struct vtpmmgr_req *req);

const char *vtpmmgr_status_name(enum vtpmmgr_status st)
{
    switch (st) {
    case VTPMMGR_OK:
        return "ok";
    case VTPMMGR_ERR_TRANSIENT:
        return "transient";
    case VTPMMGR_ERR_PERMANENT:
        return "permanent";
    }
    return "unknown";
}

static const char *vtpmmgr_op_name(enum vtpmmgr_op op)
{
    return op == VTPMMGR_OP_ACQUIRE ? "acquire" : "release";
}

/* ---- answers ------------------------------------------------------- */

char *vtpmmgr_sanitize(const char *body, size_t len, size_t max)
{
    char *out = xmalloc(max + 4);
    size_t o = 0;
    bool space = false;
    size_t i;

    for (i = 0; i < len && o < max; i++) {
        unsigned char c = (unsigned char)body[i];

        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = o > 0;
            continue;
        }
        if (space) {
            out[o++] = ' ';
            space = false;
            if (o == max)
                break;
        }
        /* Non-ASCII is replaced rather than validated: messages go into
         * JSON (status notifications, control API), which needs UTF-8. */
        out[o++] = c < 0x80 ? (char)c : '?';
    }
    /* Anything left but trailing white space means the text was cut. */
    for (; i < len; i++) {
        unsigned char c = (unsigned char)body[i];

        if (!(c < 0x20 || c == 0x7f || c == ' ')) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
    }
    out[o] = '\0';
    return out;
}

/* The most helpful short text of an error answer: the message of a JSON
 * error body ({"error": "..."}, {"error": {"message": "..."}},
 * {"message": "..."}), else the body itself. malloc'd, sanitized. */
static char *vtpmmgr_error_text(const char *body, size_t len)
{
    json_t *root = NULL, *e;
    const char *msg = NULL;
    char *out;

    if (len == 0)
        return xstrdup("(empty body)");
    root = json_loadb(body, len, 0, NULL);
    if (json_is_object(root)) {
        e = json_object_get(root, "error");
        if (json_is_string(e))
            msg = json_string_value(e);
        else if (json_is_object(e) && json_is_string(json_object_get(e, "message")))
            msg = json_string_value(json_object_get(e, "message"));
        else if (json_is_string(json_object_get(root, "message")))
            msg = json_string_value(json_object_get(root, "message"));
    }
    out = msg ? vtpmmgr_sanitize(msg, strlen(msg), VTPMMGR_SNIPPET_MAX)
              : vtpmmgr_sanitize(body, len, VTPMMGR_SNIPPET_MAX);
    json_decref(root);
    return out;
}

/* The UUID of a success answer {"uuid": "..."}. */
static enum vtpmmgr_status vtpmmgr_parse_uuid(int code, const char *body, size_t len,
                                              char uuid_out[UUIDUTIL_BUFLEN], char **error)
{
    char *snip autofree = vtpmmgr_sanitize(body, len, VTPMMGR_SNIPPET_MAX);
    json_error_t jerr;
    json_t *root, *u;
    enum vtpmmgr_status st = VTPMMGR_ERR_PERMANENT;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        xasprintf(error, "proxy answered %d with a body that is not JSON (%s): %s", code,
                  jerr.text, len ? snip : "(empty body)");
        return st;
    }
    u = json_object_get(root, "uuid");
    if (!json_is_object(root) || !u) {
        xasprintf(error, "proxy answered %d without a \"uuid\": %s", code, snip);
    } else if (json_is_string(u) && uuid_is_nil(json_string_value(u))) {
        xasprintf(error, "proxy answered %d with the nil UUID, which vtpmmgr never hands out", code);
    } else if (!json_is_string(u) || uuid_canonical(json_string_value(u), uuid_out) < 0) {
        xasprintf(error, "proxy answered %d with an invalid vTPM UUID: %s", code, snip);
    } else {
        st = VTPMMGR_OK;
    }
    json_decref(root);
    return st;
}

enum vtpmmgr_status vtpmmgr_parse_response(enum vtpmmgr_op op, int code,
                                           const char *body, size_t len,
                                           char uuid_out[UUIDUTIL_BUFLEN],
                                           char **error)
{
    char *text autofree = NULL;
    char uuid[UUIDUTIL_BUFLEN];
    enum vtpmmgr_status st;

    if (op == VTPMMGR_OP_ACQUIRE && (code == 200 || code == 201)) {
        st = vtpmmgr_parse_uuid(code, body, len, uuid, error);
        if (st == VTPMMGR_OK)
            memcpy(uuid_out, uuid, sizeof(uuid));
        return st;
    }
    /* 404 on release: already gone, which is what release wants. */
    if (op == VTPMMGR_OP_RELEASE && (code == 200 || code == 202 || code == 204 || code == 404))
        return VTPMMGR_OK;

    text = vtpmmgr_error_text(body, len);
    /* 408 and 429 are the proxy asking to come back later. */
    if (code >= 500 || code == 408 || code == 429) {
        xasprintf(error, "proxy answered %d: %s", code, text);
        return VTPMMGR_ERR_TRANSIENT;
    }
    if (code >= 200 && code < 300)
        xasprintf(error, "proxy answered %d, which %s does not expect: %s", code,
                  vtpmmgr_op_name(op), text);
    else if (code >= 300 && code < 400)
        xasprintf(error, "proxy answered %d (redirects are not followed; check vtpmmgr.url): %s",
                  code, text);
    else
        xasprintf(error, "proxy answered %d: %s", code, text);
    return VTPMMGR_ERR_PERMANENT;
}

uint64_t vtpmmgr_backoff_ms(unsigned attempt, uint32_t rnd)
{
    /* attempt counts from 1: the first retry waits about the base. */
    uint64_t d = backoff_ms(VTPMMGR_BACKOFF_BASE_MS, VTPMMGR_BACKOFF_MAX_MS,
                            attempt ? attempt - 1 : 0);

    return backoff_jitter_ms(d, rnd);
}

/* ---- requests ------------------------------------------------------ */

static void vtpmmgr_drop_conn(struct vtpmmgr_req *req)
{
    if (req->lookup) {
        req->lookup->req = NULL;
        if (req->dns_req)
            evdns_getaddrinfo_cancel(req->dns_req);
        req->lookup = NULL;
        req->dns_req = NULL;
    }
    /* Frees the pending evhttp request too, without calling it back. */
    if (req->conn)
        evhttp_connection_free(req->conn);
    req->conn = NULL;
    req->bev = NULL;
    req->ssl = NULL;
}

static void vtpmmgr_req_free(struct vtpmmgr_req *req)
{
    if (!req)
        return;
    vtpmmgr_drop_conn(req);
    if (req->timer)
        event_free(req->timer);
    free(req->body);
    free(req->error);
    free(req);
}

static void vtpmmgr_arm(struct vtpmmgr_req *req, uint64_t ms)
{
    struct timeval tv = vtime_tv_ms(ms);

    /* evtimer_del first: also drops an activation already queued for
     * this loop iteration, which belonged to the previous state. */
    evtimer_del(req->timer);
    evtimer_add(req->timer, &tv);
}

/* Gives the request's connection slot back and lets a waiting request
 * start, from the loop (not recursively: an attempt can end inside the
 * call that starts it). */
static void vtpmmgr_release_slot(struct vtpmmgr_req *req)
{
    struct vtpmmgr *m = req->m;

    if (!req->holds_slot)
        return;
    req->holds_slot = false;
    m->inflight--;
    if (!TAILQ_EMPTY(&m->waiting))
        event_active(m->kick, EV_TIMEOUT, 1);
}

static void vtpmmgr_finish(struct vtpmmgr_req *req, enum vtpmmgr_status st, char *error)
{
    vtpmmgr_release_slot(req);
    req->state = REQ_DONE;
    req->result = st;
    free(req->error);
    req->error = error;
    vtpmmgr_arm(req, 0);
}

/* The end of one attempt: done, or retried after a backoff while the
 * retry budget lasts. Takes error. */
static void vtpmmgr_attempt_failed(struct vtpmmgr_req *req, enum vtpmmgr_status st, char *error)
{
    struct vtpmmgr *m = req->m;
    uint64_t elapsed = vtime_now_ms() - req->started_ms;
    uint32_t rnd;
    uint64_t delay;

    vtpmmgr_release_slot(req);
    if (st != VTPMMGR_ERR_TRANSIENT) {
        vtpmmgr_finish(req, st, error);
        return;
    }
    evutil_secure_rng_get_bytes(&rnd, sizeof(rnd));
    delay = vtpmmgr_backoff_ms(req->attempts, rnd);
    if (elapsed + delay > m->retry_for_ms) {
        char *msg;

        xasprintf(&msg, "%s (gave up after %u attempt%s in %.1fs; vtpmmgr.retry_for is %.1fs)",
                  error, req->attempts, req->attempts == 1 ? "" : "s", (double)elapsed / 1000.0,
                  (double)m->retry_for_ms / 1000.0);
        free(error);
        vtpmmgr_finish(req, st, msg);
        return;
    }
    /* One warning when the proxy starts failing, not one per request and
     * retry: an outage with a thousand creates waiting would flood the
     * log. The first attempt of every request still shows at debug. */
    if (!m->failing) {
        m->failing = true;
        log_warn("vtpmmgr: proxy request failed, retrying for up to %.1fs url=%s error=\"%s\"",
                 (double)m->retry_for_ms / 1000.0, m->display, error);
    }
    log_debug("vtpmmgr request failed, will retry op=%s instance=%s vtpm=%s attempt=%u retry_in_ms=%llu error=\"%s\"",
              vtpmmgr_op_name(req->op), req->instance_uuid[0] ? req->instance_uuid : "-",
              req->vtpm_uuid[0] ? req->vtpm_uuid : "-", req->attempts, (unsigned long long)delay,
              error);
    free(error);
    req->state = REQ_BACKOFF;
    vtpmmgr_arm(req, delay);
}

static void vtpmmgr_deliver(struct vtpmmgr_req *req)
{
    struct vtpmmgr *m = req->m;

    TAILQ_REMOVE(&m->reqs, req, link);
    m->pending--;
    if (req->result != VTPMMGR_OK)
        m->stats.failures++;
    if (req->result == VTPMMGR_OK)
        log_debug("vtpmmgr request done op=%s instance=%s vtpm=%s attempts=%u",
                  vtpmmgr_op_name(req->op), req->instance_uuid[0] ? req->instance_uuid : "-",
                  req->vtpm_uuid, req->attempts);
    /* Unlinked first, so the callback may free the manager. */
    req->cb(req->result, req->result == VTPMMGR_OK ? req->vtpm_uuid : NULL,
            req->result == VTPMMGR_OK ? NULL : (req->error ? req->error : "unknown error"),
            req->arg);
    vtpmmgr_req_free(req);
}

/* Starts an attempt if a slot is free, else queues the request. */
static void vtpmmgr_try_start(struct vtpmmgr_req *req)
{
    struct vtpmmgr *m = req->m;

    if (m->inflight >= VTPMMGR_MAX_INFLIGHT || !TAILQ_EMPTY(&m->waiting)) {
        req->state = REQ_QUEUED;
        TAILQ_INSERT_TAIL(&m->waiting, req, wait_link);
        return;
    }
    m->inflight++;
    req->holds_slot = true;
    vtpmmgr_start_attempt(req);
}

static void vtpmmgr_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vtpmmgr *m = arg;
    struct vtpmmgr_req *req;

    while (m->inflight < VTPMMGR_MAX_INFLIGHT && (req = TAILQ_FIRST(&m->waiting)) != NULL) {
        TAILQ_REMOVE(&m->waiting, req, wait_link);
        m->inflight++;
        req->holds_slot = true;
        vtpmmgr_start_attempt(req);
    }
}

static void vtpmmgr_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vtpmmgr_req *req = arg;
    char *msg;

    switch (req->state) {
    case REQ_IN_FLIGHT:
        /* The whole attempt (resolve, connect, TLS, answer) overran. */
        vtpmmgr_drop_conn(req);
        xasprintf(&msg, "no answer from %s within %.1fs (vtpmmgr.timeout)", req->m->display,
                  (double)req->m->timeout_ms / 1000.0);
        vtpmmgr_attempt_failed(req, VTPMMGR_ERR_TRANSIENT, msg);
        break;
    case REQ_BACKOFF:
        vtpmmgr_drop_conn(req);
        vtpmmgr_try_start(req);
        break;
    case REQ_QUEUED:
        break; /* started by vtpmmgr_kick_cb */
    case REQ_DONE:
        vtpmmgr_drop_conn(req);
        vtpmmgr_deliver(req);
        break;
    }
}

static struct vtpmmgr_req *vtpmmgr_req_new(struct vtpmmgr *m, enum vtpmmgr_op op,
                                           vtpmmgr_cb cb, void *arg)
{
    struct vtpmmgr_req *req = xcalloc(1, sizeof(*req));

    req->m = m;
    req->op = op;
    req->cb = cb;
    req->arg = arg;
    req->started_ms = vtime_now_ms();
    req->timer = evtimer_new(m->base, vtpmmgr_timer_cb, req);
    if (!req->timer)
        abort(); /* out of memory */
    TAILQ_INSERT_TAIL(&m->reqs, req, link);
    m->pending++;
    m->stats.requests++;
    return req;
}

/* ---- HTTP ---------------------------------------------------------- */

/* What went wrong at the TLS level, if anything: a certificate that does
 * not verify, an alert from the proxy (it refused our certificate), a
 * protocol error (not TLS at all). Those are permanent: a retry meets
 * the same configuration. NULL when TLS is not to blame. */
static char *vtpmmgr_tls_error(struct vtpmmgr_req *req, bool *permanent)
{
    unsigned long e, first = 0;
    char buf[256];
    char *msg;

    if (!req->ssl)
        return NULL;
    if (req->m->verify_peer) {
        long vr = SSL_get_verify_result(req->ssl);

        if (vr != X509_V_OK) {
            *permanent = true;
            xasprintf(&msg, "TLS: certificate of %s failed verification: %s", req->m->display,
                      X509_verify_cert_error_string(vr));
            while (bufferevent_get_openssl_error(req->bev))
                ;
            return msg;
        }
    }
    /* libevent also queues bare SSL_get_error() codes (library 0, e.g.
     * SSL_ERROR_SYSCALL for a refused connection): not OpenSSL errors. */
    while ((e = bufferevent_get_openssl_error(req->bev)) != 0)
        if (!first && ERR_GET_LIB(e) != 0)
            first = e;
    if (!first)
        return NULL;
    ERR_error_string_n(first, buf, sizeof(buf));
    *permanent = ERR_GET_LIB(first) == ERR_LIB_SSL &&
                 ERR_GET_REASON(first) != SSL_R_UNEXPECTED_EOF_WHILE_READING;
    xasprintf(&msg, "TLS error with %s: %s", req->m->display, buf);
    return msg;
}

static void vtpmmgr_http_error_cb(enum evhttp_request_error err, void *arg)
{
    struct vtpmmgr_req *req = arg;

    req->http_error_set = true;
    req->http_error = err;
}

/* An attempt that ended without an HTTP answer. */
static void vtpmmgr_no_answer(struct vtpmmgr_req *req, int sock_err)
{
    struct vtpmmgr *m = req->m;
    bool permanent = false;
    char *msg = vtpmmgr_tls_error(req, &permanent);

    if (msg) {
        vtpmmgr_attempt_failed(req, permanent ? VTPMMGR_ERR_PERMANENT : VTPMMGR_ERR_TRANSIENT, msg);
        return;
    }
    if (req->http_error_set && req->http_error == EVREQ_HTTP_DATA_TOO_LONG) {
        xasprintf(&msg, "answer from %s is larger than %d KiB", m->display, VTPMMGR_MAX_BODY / 1024);
        vtpmmgr_attempt_failed(req, VTPMMGR_ERR_PERMANENT, msg);
        return;
    } else if (req->http_error_set && req->http_error == EVREQ_HTTP_TIMEOUT) {
        xasprintf(&msg, "no answer from %s within %.1fs (vtpmmgr.timeout)", m->display,
                  (double)m->timeout_ms / 1000.0);
    } else if (req->ssl && SSL_get_state(req->ssl) != TLS_ST_BEFORE && !SSL_is_init_finished(req->ssl)) {
        xasprintf(&msg, "TLS handshake with %s did not complete (connection closed)", m->display);
    } else if (req->ssl && SSL_is_init_finished(req->ssl) && !m->has_client_cert) {
        /* A proxy that wants a client certificate sends its refusal
         * after the handshake; a reset can overtake that alert. */
        xasprintf(&msg, "%s closed the connection without an answer (if it requires a client "
                        "certificate, set vtpmmgr.tls.cert_file and key_file)", m->display);
    } else if (req->http_error_set && req->http_error == EVREQ_HTTP_EOF) {
        xasprintf(&msg, "%s closed the connection without a complete answer", m->display);
    } else if (req->http_error_set) {
        xasprintf(&msg, "malformed answer or connection error from %s", m->display);
    } else if (sock_err == ECONNREFUSED || sock_err == ETIMEDOUT || sock_err == EHOSTUNREACH ||
               sock_err == ENETUNREACH || sock_err == ECONNRESET) {
        xasprintf(&msg, "cannot connect to %s: %s", m->display, strerror(sock_err));
    } else {
        /* libevent closes the socket before calling back, so the
         * connect error itself is not always known. */
        xasprintf(&msg, "cannot connect to %s", m->display);
    }
    vtpmmgr_attempt_failed(req, VTPMMGR_ERR_TRANSIENT, msg);
}

static void vtpmmgr_http_done_cb(struct evhttp_request *hreq, void *arg)
{
    struct vtpmmgr_req *req = arg;
    int sock_err = EVUTIL_SOCKET_ERROR();
    char uuid[UUIDUTIL_BUFLEN];
    struct evbuffer *in;
    enum vtpmmgr_status st;
    char *error = NULL;
    size_t len;
    int code;

    /* Only in flight: a late answer after the attempt timed out cannot
     * arrive (the connection was freed with it), but be strict. */
    if (req->state != REQ_IN_FLIGHT)
        return;
    code = hreq ? evhttp_request_get_response_code(hreq) : 0;
    if (code == 0) {
        vtpmmgr_no_answer(req, sock_err);
        return;
    }
    if (req->m->failing && code < 500) {
        req->m->failing = false;
        log_info("vtpmmgr: proxy answers again url=%s", req->m->display);
    }
    in = evhttp_request_get_input_buffer(hreq);
    len = evbuffer_get_length(in);
    st = vtpmmgr_parse_response(req->op, code, len ? (const char *)evbuffer_pullup(in, -1) : "",
                                len, uuid, &error);
    if (st == VTPMMGR_OK) {
        if (req->op == VTPMMGR_OP_ACQUIRE)
            memcpy(req->vtpm_uuid, uuid, sizeof(uuid));
        if (req->op == VTPMMGR_OP_RELEASE && code == 404)
            log_debug("vtpmmgr release: already gone vtpm=%s", req->vtpm_uuid);
        vtpmmgr_finish(req, VTPMMGR_OK, NULL);
        return;
    }
    vtpmmgr_attempt_failed(req, st, error);
}

/* The connection of one attempt: fresh each time, so a retry never
 * inherits a half-broken TLS session, and "Connection: close" since the
 * proxy sees few requests (one per instance create/delete). */
static int vtpmmgr_connect(struct vtpmmgr_req *req, const char *address, char **error)
{
    struct vtpmmgr *m = req->m;
    struct timeval tv = vtime_tv_ms(m->timeout_ms);

    if (m->https) {
        SSL *ssl = SSL_new(m->ssl_ctx);

        if (!ssl) {
            xasprintf(error, "TLS: cannot create a session");
            return -ENOMEM;
        }
        /* SNI only for names: RFC 6066 forbids IP literals there. */
        if (!m->host_is_ip)
            SSL_set_tlsext_host_name(ssl, m->connect_host);
        req->bev = bufferevent_openssl_socket_new(m->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                  BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!req->bev) {
            SSL_free(ssl);
            xasprintf(error, "TLS: cannot create a connection");
            return -ENOMEM;
        }
        req->ssl = ssl;
        /* Many servers (Python's among them) close without close_notify;
         * the answer's length is known from its headers anyway. */
        bufferevent_openssl_set_allow_dirty_shutdown(req->bev, 1);
    }
    /* A numeric address (see vtpmmgr_start_attempt): libevent's own
     * lookup would be blocking without a resolver, and with one it keeps
     * the connection alive after it is freed until the lookup ends. */
    req->conn = evhttp_connection_base_bufferevent_new(m->base, NULL, req->bev, address, m->port);
    if (!req->conn) {
        if (req->bev)
            bufferevent_free(req->bev);
        req->bev = NULL;
        req->ssl = NULL;
        xasprintf(error, "cannot create a connection to %s", m->display);
        return -ENOMEM;
    }
    if (!req->bev)
        req->bev = evhttp_connection_get_bufferevent(req->conn);
    evhttp_connection_set_timeout_tv(req->conn, &tv);
    evhttp_connection_set_retries(req->conn, 0);
    evhttp_connection_set_max_body_size(req->conn, VTPMMGR_MAX_BODY);
    evhttp_connection_set_max_headers_size(req->conn, VTPMMGR_MAX_HEADERS);
    return 0;
}

/* Sends the request to one numeric address. */
static void vtpmmgr_send(struct vtpmmgr_req *req, const char *address)
{
    struct vtpmmgr *m = req->m;
    struct evhttp_request *hreq;
    struct evkeyvalq *h;
    enum evhttp_cmd_type method;
    char *target autofree = NULL;
    char *error = NULL;

    if (vtpmmgr_connect(req, address, &error) < 0) {
        vtpmmgr_attempt_failed(req, VTPMMGR_ERR_TRANSIENT, error);
        return;
    }
    if (req->op == VTPMMGR_OP_RELEASE) {
        method = EVHTTP_REQ_DELETE;
        xasprintf(&target, "%s/%s", m->v1_target, req->vtpm_uuid);
    } else if (m->api == VTPMMGR_API_V1) {
        method = EVHTTP_REQ_POST;
        target = xstrdup(m->v1_target);
    } else {
        method = EVHTTP_REQ_GET;
        target = xstrdup(m->legacy_target);
    }

    hreq = evhttp_request_new(vtpmmgr_http_done_cb, req);
    if (!hreq)
        abort(); /* out of memory */
    evhttp_request_set_error_cb(hreq, vtpmmgr_http_error_cb);
    h = evhttp_request_get_output_headers(hreq);
    evhttp_add_header(h, "Host", m->host_header);
    evhttp_add_header(h, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
    evhttp_add_header(h, "Accept", "application/json");
    evhttp_add_header(h, "Connection", "close");
    if (m->authorization)
        evhttp_add_header(h, "Authorization", m->authorization);
    if (method == EVHTTP_REQ_POST) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(hreq), req->body, strlen(req->body));
    }

    /* libevent may call back from inside evhttp_make_request (a refused
     * local connect): the request may be in its next state on return. On
     * failure libevent may or may not have freed hreq; it is left alone
     * (at worst a small leak in an out-of-memory situation). */
    if (evhttp_make_request(req->conn, hreq, method, target) < 0 && req->state == REQ_IN_FLIGHT) {
        xasprintf(&error, "cannot send a request to %s", m->display);
        vtpmmgr_attempt_failed(req, VTPMMGR_ERR_TRANSIENT, error);
    }
}

static void vtpmmgr_resolved_cb(int result, struct evutil_addrinfo *ai, void *arg)
{
    struct vtpmmgr_lookup *lk = arg;
    struct vtpmmgr_req *req = lk->req;
    char address[INET6_ADDRSTRLEN] = "";
    struct evutil_addrinfo *a;
    unsigned n = 0, pick;
    char *msg;

    free(lk);
    if (!req) {
        /* Cancelled: the request has moved on or is gone. */
        if (ai)
            evutil_freeaddrinfo(ai);
        return;
    }
    req->lookup = NULL;
    req->dns_req = NULL;
    for (a = ai; result == 0 && a; a = a->ai_next)
        n++;
    if (result != 0 || n == 0) {
        if (ai)
            evutil_freeaddrinfo(ai);
        xasprintf(&msg, "cannot resolve %s: %s", req->m->connect_host,
                  result ? evutil_gai_strerror(result) : "no address");
        vtpmmgr_attempt_failed(req, VTPMMGR_ERR_TRANSIENT, msg);
        return;
    }
    /* Successive attempts walk through the addresses, so that a name
     * with an unreachable first address (say ::1 for an IPv4-only
     * proxy) is still reached by the retries. */
    pick = (req->attempts - 1) % n;
    for (a = ai; pick > 0; pick--)
        a = a->ai_next;
    if (a->ai_family == AF_INET6)
        evutil_inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, address,
                         sizeof(address));
    else
        evutil_inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, address,
                         sizeof(address));
    evutil_freeaddrinfo(ai);
    vtpmmgr_send(req, address);
}

/* One attempt: resolve the proxy's name (without blocking: libevent's
 * resolver reads /etc/resolv.conf and /etc/hosts), then send. An IP
 * address in the URL needs no lookup. The attempt timer covers both. */
static void vtpmmgr_start_attempt(struct vtpmmgr_req *req)
{
    struct vtpmmgr *m = req->m;
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *dr;
    char port[8];

    req->attempts++;
    if (req->attempts > 1)
        m->stats.retries++;
    req->http_error_set = false;
    req->state = REQ_IN_FLIGHT;
    vtpmmgr_arm(req, m->timeout_ms);
    if (!m->dns) {
        vtpmmgr_send(req, m->connect_host);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    snprintf(port, sizeof(port), "%u", (unsigned)m->port);
    req->lookup = xcalloc(1, sizeof(*req->lookup));
    req->lookup->req = req;
    /* May call back before it returns (an /etc/hosts entry): then the
     * callback has already cleared req->lookup. */
    dr = evdns_getaddrinfo(m->dns, m->connect_host, port, &hints, vtpmmgr_resolved_cb, req->lookup);
    if (req->lookup)
        req->dns_req = dr;
}

/* ---- public -------------------------------------------------------- */

static bool vtpmmgr_host_ok(const char *host)
{
    size_t n;

    if (!host)
        return false;
    n = strlen(host);
    if (n == 0 || n > VTPMMGR_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)host[i] < 0x20 || host[i] == 0x7f)
            return false;
    return true;
}

int vtpmmgr_acquire(struct vtpmmgr *m, const char *instance_uuid, const char *host,
                    vtpmmgr_cb cb, void *arg)
{
    char canon[UUIDUTIL_BUFLEN];
    struct vtpmmgr_req *req;
    char *body = NULL;

    if (!m || !cb || uuid_canonical(instance_uuid, canon) < 0 || !vtpmmgr_host_ok(host))
        return -EINVAL;
    if (m->provider == VTPMMGR_PROVIDER_KEYLIME_PROXY && m->api == VTPMMGR_API_V1) {
        json_t *j = json_pack("{s:s, s:s}", "instance_uuid", canon, "host", host);

        /* Fails only for a host that is not valid UTF-8. */
        if (!j)
            return -EINVAL;
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!body)
            abort(); /* out of memory */
    }
    req = vtpmmgr_req_new(m, VTPMMGR_OP_ACQUIRE, cb, arg);
    memcpy(req->instance_uuid, canon, sizeof(canon));
    req->body = body;
    if (m->provider == VTPMMGR_PROVIDER_LOCAL) {
        uuid_generate_str(req->vtpm_uuid);
        vtpmmgr_finish(req, VTPMMGR_OK, NULL);
        return 0;
    }
    vtpmmgr_try_start(req);
    return 0;
}

int vtpmmgr_release(struct vtpmmgr *m, const char *vtpm_uuid, const char *instance_uuid,
                    vtpmmgr_cb cb, void *arg)
{
    char canon[UUIDUTIL_BUFLEN];
    struct vtpmmgr_req *req;

    if (!m || !cb || uuid_canonical(vtpm_uuid, canon) < 0)
        return -EINVAL;
    if (instance_uuid && !uuid_valid(instance_uuid))
        return -EINVAL;
    req = vtpmmgr_req_new(m, VTPMMGR_OP_RELEASE, cb, arg);
    memcpy(req->vtpm_uuid, canon, sizeof(canon));
    if (instance_uuid)
        uuid_canonical(instance_uuid, req->instance_uuid);
    /* The original proxy cannot release, and local UUIDs are only names. */
    if (m->provider == VTPMMGR_PROVIDER_LOCAL || m->api == VTPMMGR_API_LEGACY) {
        vtpmmgr_finish(req, VTPMMGR_OK, NULL);
        return 0;
    }
    vtpmmgr_try_start(req);
    return 0;
}

void vtpmmgr_get_stats(const struct vtpmmgr *m, struct vtpmmgr_stats *out)
{
    *out = m->stats;
}

bool vtpmmgr_is_local(const struct vtpmmgr *m)
{
    return m && m->provider == VTPMMGR_PROVIDER_LOCAL;
}

unsigned vtpmmgr_pending(const struct vtpmmgr *m)
{
    return m->pending;
}

const char *vtpmmgr_target(const struct vtpmmgr *m, enum vtpmmgr_op op)
{
    if (m->provider == VTPMMGR_PROVIDER_LOCAL)
        return NULL;
    if (m->api == VTPMMGR_API_LEGACY)
        return op == VTPMMGR_OP_ACQUIRE ? m->legacy_target : NULL;
    return m->v1_target;
}

static void vtpmmgr_dns_free_cb(evutil_socket_t fd, short what, void *arg)
{
    evdns_base_free(arg, 0);
}

void vtpmmgr_free(struct vtpmmgr *m)
{
    struct timeval now = {0, 0};
    struct vtpmmgr_req *req;
    bool lookups = false;

    if (!m)
        return;
    while ((req = TAILQ_FIRST(&m->reqs)) != NULL) {
        TAILQ_REMOVE(&m->reqs, req, link);
        lookups |= req->lookup != NULL;
        vtpmmgr_req_free(req);
    }
    if (m->kick)
        event_free(m->kick);
    /* A cancelled lookup completes in a deferred callback that still uses
     * the resolver: free it once those ran (deferred callbacks run before
     * timers of the same loop iteration). Should the loop never run again,
     * the resolver is lost at exit, nothing worse. */
    if (m->dns && (!lookups || event_base_once(m->base, -1, EV_TIMEOUT, vtpmmgr_dns_free_cb,
                                               m->dns, &now) < 0))
        evdns_base_free(m->dns, 0);
    if (m->ssl_ctx)
        SSL_CTX_free(m->ssl_ctx);
    free(m->display);
    free(m->connect_host);
    free(m->host_header);
    if (m->authorization) {
        OPENSSL_cleanse(m->authorization, strlen(m->authorization));
        free(m->authorization);
    }
    free(m->v1_target);
    free(m->legacy_target);
    free(m);
}

/* The first queued OpenSSL error, for start-up messages. */
static const char *vtpmmgr_ssl_errstr(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();

    if (!e)
        return "unknown error";
    ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

static int vtpmmgr_tls_init(struct vtpmmgr *m, const struct tls_config *tls)
{
    char buf[256];

    m->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!m->ssl_ctx) {
        log_error("vtpmmgr: cannot create a TLS context: %s", vtpmmgr_ssl_errstr(buf, sizeof(buf)));
        return -EINVAL;
    }
    SSL_CTX_set_min_proto_version(m->ssl_ctx, TLS1_2_VERSION);
    m->verify_peer = tls->verify_peer;
    if (tls->verify_peer) {
        SSL_CTX_set_verify(m->ssl_ctx, SSL_VERIFY_PEER, NULL);
        if (tls->ca_file ? SSL_CTX_load_verify_locations(m->ssl_ctx, tls->ca_file, NULL) != 1
                         : SSL_CTX_set_default_verify_paths(m->ssl_ctx) != 1) {
            log_error("vtpmmgr: cannot load CA certificates file=%s: %s",
                      tls->ca_file ? tls->ca_file : "(system default)",
                      vtpmmgr_ssl_errstr(buf, sizeof(buf)));
            return -EINVAL;
        }
        if (tls->verify_hostname) {
            X509_VERIFY_PARAM *p = SSL_CTX_get0_param(m->ssl_ctx);

            /* The name checked is the URL's host; set here once, every
             * session copies the context's parameters. */
            X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (m->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, m->connect_host) != 1
                              : X509_VERIFY_PARAM_set1_host(p, m->connect_host, 0) != 1) {
                log_error("vtpmmgr: cannot set the expected host name host=%s", m->connect_host);
                return -EINVAL;
            }
        } else {
            log_warn("vtpmmgr: TLS host name verification is off (vtpmmgr.tls.verify_hostname)");
        }
    } else {
        SSL_CTX_set_verify(m->ssl_ctx, SSL_VERIFY_NONE, NULL);
        log_warn("vtpmmgr: TLS peer verification is off (vtpmmgr.tls.verify_peer): "
                 "anyone on the path can pose as the proxy");
    }
    if (tls->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(m->ssl_ctx, tls->cert_file) != 1) {
            log_error("vtpmmgr: cannot load the client certificate file=%s: %s", tls->cert_file,
                      vtpmmgr_ssl_errstr(buf, sizeof(buf)));
            return -EINVAL;
        }
        if (!tls->key_file ||
            SSL_CTX_use_PrivateKey_file(m->ssl_ctx, tls->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(m->ssl_ctx) != 1) {
            log_error("vtpmmgr: cannot load the client key or it does not match the certificate file=%s: %s",
                      tls->key_file ? tls->key_file : "(none)", vtpmmgr_ssl_errstr(buf, sizeof(buf)));
            return -EINVAL;
        }
        m->has_client_cert = true;
    }
    return 0;
}

/* "user:pass" (percent-decoded) as an HTTP Basic credential. */
static char *vtpmmgr_basic_auth(const char *userinfo)
{
    char *plain = evhttp_uridecode(userinfo, 0, NULL);
    size_t n, enc_len;
    char *out;

    if (!plain)
        abort(); /* out of memory */
    n = strlen(plain);
    enc_len = 4 * ((n + 2) / 3);
    out = xmalloc(sizeof("Basic ") + enc_len);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)n);
    OPENSSL_cleanse(plain, n);
    free(plain);
    return out;
}

static int vtpmmgr_parse_url(struct vtpmmgr *m, const char *url)
{
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    const char *scheme, *host, *path, *query, *userinfo;
    unsigned char addr[16];
    size_t plen;
    int port, ret = -EINVAL;

    if (!uri) {
        log_error("vtpmmgr: vtpmmgr.url is not a valid URL");
        goto out;
    }
    scheme = evhttp_uri_get_scheme(uri);
    host = evhttp_uri_get_host(uri);
    if (!scheme || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
        log_error("vtpmmgr: vtpmmgr.url must be http:// or https://");
        goto out;
    }
    if (!host || !*host) {
        log_error("vtpmmgr: vtpmmgr.url has no host");
        goto out;
    }
    m->https = !strcasecmp(scheme, "https");
    port = evhttp_uri_get_port(uri);
    if (port == 0 || port > 65535) {
        log_error("vtpmmgr: vtpmmgr.url has an invalid port");
        goto out;
    }
    m->port = port < 0 ? (m->https ? 443 : 80) : (uint16_t)port;
    /* evhttp keeps the brackets of an IPv6 literal: the Host header wants
     * them, the resolver does not. */
    plen = strlen(host);
    if (host[0] == '[' && plen > 2 && host[plen - 1] == ']')
        m->connect_host = xstrndup(host + 1, plen - 2);
    else
        m->connect_host = xstrdup(host);
    m->host_is_ip = inet_pton(AF_INET, m->connect_host, addr) == 1 ||
                    inet_pton(AF_INET6, m->connect_host, addr) == 1;
    if (port < 0)
        m->host_header = xstrdup(host);
    else
        xasprintf(&m->host_header, "%s:%d", host, port);
    xasprintf(&m->display, "%s://%s:%u", m->https ? "https" : "http", host, m->port);

    userinfo = evhttp_uri_get_userinfo(uri);
    if (userinfo && *userinfo)
        m->authorization = vtpmmgr_basic_auth(userinfo);

    path = evhttp_uri_get_path(uri);
    query = evhttp_uri_get_query(uri);
    if (!path)
        path = "";
    plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    xasprintf(&m->v1_target, "%.*s/v1/vtpms", (int)plen, path);
    xasprintf(&m->legacy_target, "%s%s%s", *path ? path : "/", query ? "?" : "", query ? query : "");
    if (query && m->api == VTPMMGR_API_V1) {
        log_error("vtpmmgr: vtpmmgr.url must not have a query string with vtpmmgr.api v1");
        goto out;
    }
    ret = 0;
out:
    if (uri)
        evhttp_uri_free(uri);
    return ret;
}

int vtpmmgr_new(struct event_base *base, const struct config *cfg, struct vtpmmgr **out)
{
    struct vtpmmgr *m;
    int ret = -EINVAL;

    if (!base || !cfg)
        return -EINVAL;
    m = xcalloc(1, sizeof(*m));
    m->base = base;
    TAILQ_INIT(&m->reqs);
    TAILQ_INIT(&m->waiting);
    m->kick = event_new(base, -1, 0, vtpmmgr_kick_cb, m);
    if (!m->kick)
        abort(); /* out of memory */
    m->provider = cfg->vtpmmgr.provider;
    m->api = cfg->vtpmmgr.api;
    m->timeout_ms = cfg->vtpmmgr.timeout_ms ? cfg->vtpmmgr.timeout_ms : 10000;
    m->retry_for_ms = cfg->vtpmmgr.retry_for_ms;

    if (m->provider == VTPMMGR_PROVIDER_LOCAL) {
        ret = 0;
        goto out;
    }
    if (m->provider != VTPMMGR_PROVIDER_KEYLIME_PROXY || !cfg->vtpmmgr.url) {
        log_error("vtpmmgr: provider keylime-proxy needs vtpmmgr.url");
        goto out;
    }
    ret = vtpmmgr_parse_url(m, cfg->vtpmmgr.url);
    if (ret < 0)
        goto out;
    if (m->https) {
        ret = vtpmmgr_tls_init(m, &cfg->vtpmmgr.tls);
        if (ret < 0)
            goto out;
    } else if (cfg->vtpmmgr.tls.ca_file || cfg->vtpmmgr.tls.cert_file) {
        log_warn("vtpmmgr: vtpmmgr.tls is set but vtpmmgr.url is http://: the proxy is reached without TLS");
    }
    if (m->authorization && !m->https)
        log_warn("vtpmmgr: vtpmmgr.url carries credentials over plain http://");
    /* Our own asynchronous resolver for a host name (see
     * vtpmmgr_start_attempt); an IP address needs none. */
    if (!m->host_is_ip) {
        m->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!m->dns) {
            log_error("vtpmmgr: cannot set up the DNS resolver for host=%s", m->connect_host);
            ret = -EINVAL;
            goto out;
        }
    }
    log_info("vtpmmgr: proxy url=%s api=%s timeout_ms=%llu retry_for_ms=%llu", m->display,
             m->api == VTPMMGR_API_V1 ? "v1" : "legacy", (unsigned long long)m->timeout_ms,
             (unsigned long long)m->retry_for_ms);
    ret = 0;
out:
    if (ret < 0) {
        vtpmmgr_free(m);
        return ret;
    }
    *out = m;
    return 0;
}
