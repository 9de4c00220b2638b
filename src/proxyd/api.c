/* vtpm-proxyd's REST API, see include/proxyd/api.h. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "httpsrv.h"
#include "jsonutil.h"
#include "log.h"
#include "proxyd/api.h"
#include "proxyd/ids.h"
#include "proxyd/tlsctx.h"
#include "vtime.h"
#include "xalloc.h"

/* evhttp refuses anything larger itself; between API_MAX_BODY and this,
 * the client gets a JSON 413 from us. */
#define HTTP_MAX_BODY (64 * 1024)
#define HTTP_MAX_HEADERS (16 * 1024)

struct api {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    struct httpsrv *srv;
    SSL_CTX *ssl;
    struct service *svc;
    bool bind_host; /* client certificates act for their own host only */
};

/* One request, from dispatch to its answer. */
struct rq {
    struct api *a;
    struct evhttp_request *req;
    uint64_t t0;
    bool created; /* POST /v1/vtpms: answer 201 */
};

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "?";
    }
}

/* Client text in a log line: printable ASCII only, bounded. */
static void sanitize(const char *in, char *out, size_t len)
{
    size_t i = 0;

    for (; in && *in && i + 1 < len; in++)
        out[i++] = isprint((unsigned char)*in) && *in != '"' ? *in : '?';
    out[i] = '\0';
}

static void peer(struct evhttp_request *req, char *out, size_t len)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char subject[256];
    char *addr = NULL;
    ev_uint16_t port = 0;
    SSL *ssl = NULL;

    if (evcon == NULL) {
        snprintf(out, len, "gone");
        return;
    }
    evhttp_connection_get_peer(evcon, &addr, &port);
    ssl = bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon));
    tlsctx_peer_name(ssl, subject, sizeof(subject));
    if (subject[0])
        snprintf(out, len, "%s:%u client=\"%s\"", addr ? addr : "?", port, subject);
    else
        snprintf(out, len, "%s:%u", addr ? addr : "?", port);
}

/* With tls.bind_host (and client certificates required), a client acts
 * only for the host its certificate names; else for any. */
static bool may_act_for(struct rq *rq, const char *host)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(rq->req);

    if (!rq->a->bind_host)
        return true;
    if (evcon == NULL)
        return false;
    return tlsctx_peer_is_host(
        bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon)), host);
}

/* Sends the answer (body stolen; NULL for none), logs it, frees rq. */
static void finish(struct rq *rq, int code, json_t *body, const char *location)
{
    struct evhttp_request *req = rq->req;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *buf = NULL;
    char path[160], who[400];

    sanitize(evhttp_request_get_uri(req), path, sizeof(path));
    peer(req, who, sizeof(who));
    log_msg(code >= 500 ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO,
            "http method=%s uri=\"%s\" status=%d peer=%s ms=%" PRIu64,
            method_name(evhttp_request_get_command(req)), path, code, who,
            vtime_now_ms() - rq->t0);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (location)
        evhttp_add_header(h, "Location", location);
    if (code == 503)
        evhttp_add_header(h, "Retry-After", "5");
    if (body) {
        char *text = json_dumps(body, JSON_COMPACT);

        if (text == NULL)
            abort(); /* only on OOM */
        evhttp_add_header(h, "Content-Type", "application/json");
        buf = evbuffer_new();
        if (buf == NULL)
            abort();
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
        free(text);
        json_decref(body);
    }
    evhttp_send_reply(req, code, reason(code), buf);
    if (buf)
        evbuffer_free(buf);
    free(rq);
}

static void fail(struct rq *rq, int code, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct rq *rq, int code, const char *slug, const char *fmt, ...)
{
    char msg[400], clean[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sanitize(msg, clean, sizeof(clean));
    log_debug("http error status=%d code=%s message=\"%s\"", code, slug, clean);
    finish(rq, code, json_pack("{s:{s:s, s:s}}", "error", "code", slug,
                               "message", msg), NULL);
}

static void fail_service(struct rq *rq, enum service_code code, const char *msg)
{
    switch (code) {
    case SERVICE_NOT_FOUND:
        fail(rq, 404, "not_found", "%s", msg);
        break;
    case SERVICE_CONFLICT:
        fail(rq, 409, "conflict", "%s", msg);
        break;
    case SERVICE_TIMEOUT:
        fail(rq, 504, "vtpmmgr_timeout", "%s", msg);
        break;
    case SERVICE_BAD_GATEWAY:
        fail(rq, 502, "vtpmmgr_error", "%s", msg);
        break;
    case SERVICE_INTERNAL:
        fail(rq, 500, "internal", "%s", msg);
        break;
    case SERVICE_UNAVAILABLE:
    default:
        fail(rq, 503, "unavailable", "%s", msg);
        break;
    }
}

static json_t *rec_json(const struct store_rec *r)
{
    char u[IDS_UUID_STR], i[IDS_UUID_STR], t[IDS_TIME_STR];

    ids_format_uuid(r->uuid, u);
    ids_format_time(r->created_at, t);
    if (r->has_instance)
        ids_format_uuid(r->instance, i);
    return json_pack("{s:s, s:s?, s:s?, s:s}", "uuid", u, "instance_uuid",
                     r->has_instance ? i : NULL, "host", r->host[0] ? r->host : NULL,
                     "created_at", t);
}

/* ---- POST /v1/vtpms, GET / ----------------------------------------- */

static void created_cb(const struct service_result *res, void *arg)
{
    struct rq *rq = arg;
    char u[IDS_UUID_STR], loc[64];

    if (res->code != SERVICE_OK && res->code != SERVICE_CREATED) {
        fail_service(rq, res->code, res->message);
        return;
    }
    ids_format_uuid(res->rec.uuid, u);
    snprintf(loc, sizeof(loc), "/v1/vtpms/%s", u);
    finish(rq, rq->created ? 201 : 200, json_pack("{s:s}", "uuid", u),
           rq->created ? loc : NULL);
}

static bool json_body_type(struct evhttp_request *req)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req),
                                        "Content-Type");
    size_t n = strlen("application/json");

    /* Absent is accepted (the body must still be JSON). */
    if (ct == NULL)
        return true;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void handle_create(struct rq *rq)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(rq->req);
    size_t len = evbuffer_get_length(in);
    json_t *o autojson = NULL;
    json_t *inst, *host, *v;
    const char *key;
    uint8_t instance[16];
    json_error_t jerr;
    char k[64];

    if (!json_body_type(rq->req)) {
        fail(rq, 415, "unsupported_media_type", "the body must be application/json");
        return;
    }
    if (len > API_MAX_BODY) {
        fail(rq, 413, "payload_too_large", "the body is %zu bytes; at most %d",
             len, API_MAX_BODY);
        return;
    }
    if (len == 0) {
        fail(rq, 400, "invalid_request",
             "empty body: expected {\"instance_uuid\": ..., \"host\": ...}");
        return;
    }
    o = json_loadb((const char *)evbuffer_pullup(in, -1), len,
                   JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        fail(rq, 400, "invalid_request", "invalid JSON at line %d column %d: %s",
             jerr.line, jerr.column, jerr.text);
        return;
    }
    if (!json_is_object(o)) {
        fail(rq, 400, "invalid_request", "the body must be a JSON object");
        return;
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "instance_uuid") != 0 && strcmp(key, "host") != 0) {
            snprintf(k, sizeof(k), "%s", key);
            fail(rq, 400, "invalid_request",
                 "unknown field '%s' (expected instance_uuid and host)", k);
            return;
        }
    }
    inst = json_object_get(o, "instance_uuid");
    host = json_object_get(o, "host");
    if (inst == NULL || host == NULL) {
        fail(rq, 400, "invalid_request", "%s is required",
             inst == NULL ? "instance_uuid" : "host");
        return;
    }
    if (!json_is_string(inst) || ids_parse_uuid(json_string_value(inst), instance) < 0 ||
        strlen(json_string_value(inst)) != json_string_length(inst)) {
        fail(rq, 400, "invalid_request",
             "instance_uuid must be a UUID string (8-4-4-4-12 hex digits)");
        return;
    }
    if (!json_is_string(host) || !ids_valid_host(json_string_value(host)) ||
        strlen(json_string_value(host)) != json_string_length(host)) {
        fail(rq, 400, "invalid_request",
             "host must be a string of 1 to 255 letters, digits, '-', '_', '.' or ':'");
        return;
    }
    rq->created = true;
    if (!may_act_for(rq, json_string_value(host))) {
        fail(rq, 403, "forbidden", "this client certificate does not name host '%s'",
             json_string_value(host));
        return;
    }
    service_create(rq->a->svc, instance, json_string_value(host), created_cb, rq);
}

static void handle_legacy(struct rq *rq)
{
    service_create_legacy(rq->a->svc, created_cb, rq);
}

/* ---- GET /v1/vtpms, GET and DELETE /v1/vtpms/{uuid} ---------------- */

static void handle_list(struct rq *rq)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(rq->req));
    struct evkeyvalq kv;
    struct evkeyval *e;
    const char *host = NULL;
    bool by_instance = false;
    uint8_t instance[16];
    struct store_rec *v;
    json_t *arr;
    size_t n;

    TAILQ_INIT(&kv);
    if (query && evhttp_parse_query_str(query, &kv) < 0) {
        fail(rq, 400, "invalid_request", "malformed query string");
        return;
    }
    TAILQ_FOREACH(e, &kv, next) {
        if (strcmp(e->key, "host") == 0 && host == NULL && ids_valid_host(e->value)) {
            host = e->value;
        } else if (strcmp(e->key, "instance_uuid") == 0 && !by_instance &&
                   ids_parse_uuid(e->value, instance) == 0) {
            by_instance = true;
        } else {
            evhttp_clear_headers(&kv);
            fail(rq, 400, "invalid_request",
                 "the query takes host=NAME and instance_uuid=UUID, once each");
            return;
        }
    }
    v = service_list(rq->a->svc, &n);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (host && strcmp(v[i].host, host) != 0)
            continue;
        if (!may_act_for(rq, v[i].host))
            continue;
        if (by_instance && (!v[i].has_instance || memcmp(v[i].instance, instance, 16) != 0))
            continue;
        json_array_append_new(arr, rec_json(&v[i]));
    }
    free(v);
    evhttp_clear_headers(&kv);
    finish(rq, 200, json_pack("{s:o}", "vtpms", arr), NULL);
}

static void deleted_cb(const struct service_result *res, void *arg)
{
    struct rq *rq = arg;

    if (res->code != SERVICE_OK) {
        fail_service(rq, res->code, res->message);
        return;
    }
    finish(rq, 204, NULL, NULL);
}

static void handle_one(struct rq *rq, const char *id, enum evhttp_cmd_type m)
{
    uint8_t uuid[16];
    const struct store_rec *r;

    if (ids_parse_uuid(id, uuid) < 0) {
        fail(rq, 400, "invalid_request", "the path must end in a vTPM UUID "
             "(8-4-4-4-12 hex digits)");
        return;
    }
    r = service_get(rq->a->svc, uuid);
    if (r != NULL && !may_act_for(rq, r->host)) {
        fail(rq, 403, "forbidden", "vTPM %s belongs to a host this client certificate "
             "does not name", id);
        return;
    }
    if (m == EVHTTP_REQ_DELETE) {
        service_delete(rq->a->svc, uuid, deleted_cb, rq);
        return;
    }
    if (r == NULL) {
        fail(rq, 404, "not_found", "no vTPM %s here", id);
        return;
    }
    finish(rq, 200, rec_json(r), NULL);
}

/* ---- GET /v1/health, POST /v1/reconcile ---------------------------- */

static void handle_health(struct rq *rq)
{
    struct service_health h;
    json_t *mgr, *o;

    service_health(rq->a->svc, &h);
    mgr = json_pack("{s:s}", "state", h.state);
    if (h.message[0])
        json_object_set_new(mgr, "message", json_string(h.message));
    if (h.group_known) {
        json_object_set_new(mgr, "group", json_string(h.group));
        json_object_set_new(mgr, "group_index", json_integer(h.group_index));
    }
    o = json_pack("{s:s, s:o, s:I, s:I}", "status", h.ok ? "ok" : "unavailable",
                  "vtpmmgr", mgr, "records", (json_int_t)h.records, "jobs",
                  (json_int_t)h.jobs);
    {
        struct httpsrv_stats st;

        httpsrv_get_stats(rq->a->srv, &st);
        json_object_set_new(o, "connections",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "open",
                                      (json_int_t)st.open, "accepted", (json_int_t)st.accepted,
                                      "refused", (json_int_t)st.refused, "accept_errors",
                                      (json_int_t)st.accept_errors, "timeouts",
                                      (json_int_t)st.timeouts, "abandoned",
                                      (json_int_t)st.abandoned));
    }
    if (h.reconciled) {
        json_object_set_new(o, "orphans", json_integer((json_int_t)h.orphans));
        json_object_set_new(o, "missing", json_integer((json_int_t)h.missing));
    }
    finish(rq, h.ok ? 200 : 503, o, NULL);
}

static json_t *uuids_json(const struct service_uuids *l)
{
    json_t *a = json_array();
    char u[IDS_UUID_STR];

    for (size_t i = 0; i < l->n; i++) {
        ids_format_uuid(l->v[i], u);
        json_array_append_new(a, json_string(u));
    }
    return a;
}

static void reconciled_cb(const struct service_report *r, void *arg)
{
    struct rq *rq = arg;

    if (r->code != SERVICE_OK) {
        fail_service(rq, r->code, r->message);
        return;
    }
    finish(rq, 200,
           json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "group", r->group, "group_index", (json_int_t)r->group_index,
                     "in_group", (json_int_t)r->in_group, "records",
                     (json_int_t)r->records, "orphans", uuids_json(&r->orphans),
                     "missing", uuids_json(&r->missing), "duplicated",
                     uuids_json(&r->duplicated), "deleted", uuids_json(&r->deleted),
                     "recreated", uuids_json(&r->recreated), "finished",
                     uuids_json(&r->finished), "in_use", uuids_json(&r->in_use)),
           NULL);
}

/* ---- routing ------------------------------------------------------- */

static void not_allowed(struct rq *rq, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(rq->req), "Allow", allow);
    fail(rq, 405, "method_not_allowed", "%s is not allowed here (allowed: %s)",
         method_name(evhttp_request_get_command(rq->req)), allow);
}

static size_t header_count(struct evhttp_request *req, const char *name)
{
    struct evkeyval *h;
    size_t n = 0;

    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
        n += strcasecmp(h->key, name) == 0;
    return n;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct rq *rq = xcalloc(1, sizeof(*rq));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    static const char prefix[] = "/v1/vtpms/";

    rq->a = arg;
    rq->req = req;
    rq->t0 = vtime_now_ms();
    if (header_count(req, "Content-Length") > 1) {
        /* evhttp reads the first; a proxy in front might read another. */
        fail(rq, 400, "invalid_request", "more than one Content-Length header");
        return;
    }
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (strcmp(path, "/v1/vtpms") == 0) {
        if (m == EVHTTP_REQ_POST)
            handle_create(rq);
        else if (m == EVHTTP_REQ_GET)
            handle_list(rq);
        else
            not_allowed(rq, "GET, POST");
    } else if (strncmp(path, prefix, sizeof(prefix) - 1) == 0 &&
               path[sizeof(prefix) - 1] != '\0' &&
               strchr(path + sizeof(prefix) - 1, '/') == NULL) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_DELETE)
            handle_one(rq, path + sizeof(prefix) - 1, m);
        else
            not_allowed(rq, "GET, DELETE");
    } else if (strcmp(path, "/v1/health") == 0) {
        if (m == EVHTTP_REQ_GET)
            handle_health(rq);
        else
            not_allowed(rq, "GET");
    } else if (strcmp(path, "/v1/reconcile") == 0) {
        if (m == EVHTTP_REQ_POST)
            service_reconcile(rq->a->svc, reconciled_cb, rq);
        else
            not_allowed(rq, "POST");
    } else if (strcmp(path, "/") == 0) {
        if (m == EVHTTP_REQ_GET)
            handle_legacy(rq);
        else
            not_allowed(rq, "GET");
    } else {
        fail(rq, 404, "not_found", "no such resource");
    }
}

static struct bufferevent *tls_bevcb(struct event_base *base, void *arg)
{
    struct api *a = arg;
    SSL *ssl = SSL_new(a->ssl);

    /* evhttp would fall back to plain HTTP on NULL: never return it. */
    if (ssl == NULL)
        abort();
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static bool tls_handshake_done(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    return ssl && SSL_is_init_finished(ssl);
}

static void limits_of(const struct pconfig *cfg, struct httpsrv_limits *l)
{
    l->max_connections = (unsigned)cfg->max_connections;
    l->idle_timeout_s = (unsigned)((cfg->idle_timeout_ms + 999) / 1000);
    l->header_timeout_s = (unsigned)((cfg->header_timeout_ms + 999) / 1000);
    l->request_timeout_s = (unsigned)((cfg->request_timeout_ms + 999) / 1000);
    l->handshake_timeout_s = (unsigned)((cfg->tls.handshake_timeout_ms + 999) / 1000);
}

void api_set_limits(struct api *a, const struct pconfig *cfg)
{
    struct httpsrv_limits lim;

    limits_of(cfg, &lim);
    if (a->srv)
        httpsrv_set_limits(a->srv, &lim);
}

static int load_tls(const struct pconfig *cfg, SSL_CTX **out)
{
    char err[512];
    SSL_CTX *ctx = tlsctx_new(cfg->tls.cert_file, cfg->tls.key_file,
                              cfg->tls.client_ca_file, err, sizeof(err));

    if (ctx == NULL) {
        log_error("cannot load the TLS material: %s", err);
        return -EINVAL;
    }
    *out = ctx;
    return 0;
}

/* "host:port", "[v6]:port" or "*:port" into what evhttp binds. */
static int split_listen(const char *listen, char *host, size_t hlen, uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    size_t n;

    if (colon == NULL)
        return -EINVAL;
    n = (size_t)(colon - listen);
    if (listen[0] == '[' && n >= 2 && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n == 1 && listen[0] == '*')
        snprintf(host, hlen, "0.0.0.0");
    else if (n < hlen)
        snprintf(host, hlen, "%.*s", (int)n, listen);
    else
        return -EINVAL;
    *port = (uint16_t)strtoul(colon + 1, NULL, 10);
    return 0;
}

int api_new(struct event_base *base, const struct pconfig *cfg,
            struct service *svc, struct api **out)
{
    struct api *a = xcalloc(1, sizeof(*a));
    struct httpsrv_opts opts = {
        .busy_body = "{\"error\":{\"code\":\"unavailable\","
                     "\"message\":\"too many connections\"}}",
    };
    struct httpsrv_limits lim;
    char host[256];
    uint16_t port;
    int ret;

    a->base = base;
    a->svc = svc;
    if (cfg->tls.cert_file && (ret = load_tls(cfg, &a->ssl)) < 0)
        goto fail;
    a->bind_host = cfg->tls.client_ca_file && cfg->tls.bind_host;
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    evhttp_set_max_body_size(a->http, HTTP_MAX_BODY);
    evhttp_set_max_headers_size(a->http, HTTP_MAX_HEADERS);
    /* Every method reaches dispatch(), which answers 405 in JSON (evhttp
     * itself would answer 501 in HTML). */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE);
    if (a->ssl) {
        opts.bevcb = tls_bevcb;
        opts.arg = a;
        opts.handshake_done = tls_handshake_done;
    }
    if (split_listen(cfg->listen, host, sizeof(host), &port) < 0) {
        log_error("bad listen address listen=%s", cfg->listen);
        ret = -EINVAL;
        goto fail;
    }
    a->sock = evhttp_bind_socket_with_handle(a->http, host, port);
    if (a->sock == NULL) {
        ret = -errno ? -errno : -EADDRNOTAVAIL;
        log_error("cannot listen listen=%s error=%s", cfg->listen, strerror(-ret));
        goto fail;
    }
    limits_of(cfg, &lim);
    a->srv = httpsrv_new(base, a->http, a->sock, "api", &lim, &opts, dispatch, a);
    /* The cap, plus the device, the records and the log. */
    httpsrv_fd_budget(lim.max_connections + 32);
    log_info("listening listen=%s tls=%s client_certificates=%s", cfg->listen,
             a->ssl ? "on" : "off", cfg->tls.client_ca_file ? "required" : "no");
    *out = a;
    return 0;
fail:
    api_free(a);
    return ret;
}

int api_reload_tls(struct api *a, const struct pconfig *cfg)
{
    SSL_CTX *ctx;

    if (a->ssl == NULL || cfg->tls.cert_file == NULL)
        return 0; /* switching HTTPS on or off needs a restart */
    if (load_tls(cfg, &ctx) < 0)
        return -EINVAL;
    /* Connections hold their own reference to the old context. */
    SSL_CTX_free(a->ssl);
    a->ssl = ctx;
    a->bind_host = cfg->tls.client_ca_file && cfg->tls.bind_host;
    log_info("TLS material reloaded cert=%s client_certificates=%s",
             cfg->tls.cert_file, cfg->tls.client_ca_file ? "required" : "no");
    return 0;
}

void api_stop_accepting(struct api *a)
{
    if (a->sock) {
        httpsrv_stop_accepting(a->srv);
        evhttp_del_accept_socket(a->http, a->sock);
        a->sock = NULL;
    }
}

void api_free(struct api *a)
{
    if (a == NULL)
        return;
    httpsrv_free(a->srv);
    if (a->http)
        evhttp_free(a->http);
    if (a->ssl)
        SSL_CTX_free(a->ssl);
    free(a);
}
