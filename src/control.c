#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "control.h"
#include "httpsrv.h"
#include "log.h"
#include "uuidutil.h"
#include "xalloc.h"

struct control {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp *metrics_http;
    struct httpsrv *srv, *metrics_srv;
    struct control_limits lim;
    unsigned waiters;               /* wait requests not answered yet */
    uint64_t waiters_refused;
    char *socket_path;
    control_handler_fn handler;
    void *arg;
    struct control_req *pending; /* requests not answered yet */
};

struct control_req {
    struct control *c;
    struct evhttp_request *r;
    struct evhttp_connection *conn;
    struct evkeyvalq query;
    bool have_query;
    struct httpsrv *srv; /* the listener it came from */
    bool waiter;  /* counted in control.waiters */
    bool metrics; /* a 200 gets the listeners' own metrics appended */
    void (*cancel)(void *arg);
    void *cancel_arg;
    struct control_req *prev, *next;
};

static void req_unlink(struct control_req *q)
{
    if (q->waiter)
        q->c->waiters--;
    if (q->prev)
        q->prev->next = q->next;
    else
        q->c->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
}

static void req_free(struct control_req *q)
{
    if (q->have_query)
        evhttp_clear_headers(&q->query);
    free(q);
}

/* The client went away before the answer (or its deadline passed). */
static void req_conn_closed(struct evhttp_connection *conn, void *arg)
{
    struct control_req *q = arg;

    req_unlink(q);
    if (q->cancel)
        q->cancel(q->cancel_arg);
    /* evhttp detached the unanswered request from the connection: it is
     * ours to free now that it will never be answered. */
    if (evhttp_request_get_connection(q->r) == NULL)
        evhttp_request_free(q->r);
    req_free(q);
}

void control_req_on_cancel(struct control_req *req, void (*fn)(void *arg), void *arg)
{
    req->cancel = fn;
    req->cancel_arg = arg;
}

const char *control_req_query(struct control_req *req, const char *key)
{
    return req->have_query ? evhttp_find_header(&req->query, key) : NULL;
}

static void req_send(struct control_req *q, int status, const char *ctype,
                     const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);

    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evbuffer_add(buf, body, len);
    httpsrv_req_on_close(q->srv, q->r, NULL, NULL);
    evhttp_send_reply(q->r, status, NULL, buf);
    evbuffer_free(buf);
    req_unlink(q);
    req_free(q);
}

static void append(char **buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(char **buf, const char *fmt, ...)
{
    va_list ap;
    char *more, *old = *buf;

    va_start(ap, fmt);
    if (vasprintf(&more, fmt, ap) < 0)
        abort();
    va_end(ap);
    xasprintf(buf, "%s%s", old, more);
    free(old);
    free(more);
}

/* The control API's own metrics: its listeners and waiters. */
static char *listener_metrics(const struct control *c)
{
    const struct httpsrv *srvs[2] = {c->srv, c->metrics_srv};
    struct httpsrv_stats st[2] = {{0}};
    char *buf = xstrdup("");
    size_t n = c->metrics_srv ? 2 : 1;

    for (size_t i = 0; i < n; i++)
        httpsrv_get_stats(srvs[i], &st[i]);
    append(&buf, "# HELP vtpmd_control_connections Open connections, by listener.\n"
                 "# TYPE vtpmd_control_connections gauge\n");
    for (size_t i = 0; i < n; i++)
        append(&buf, "vtpmd_control_connections{listener=\"%s\"} %lu\n",
               httpsrv_name(srvs[i]), (unsigned long)st[i].open);
    append(&buf, "# HELP vtpmd_control_connections_total Connections accepted, or refused "
                 "beyond control.max_connections.\n"
                 "# TYPE vtpmd_control_connections_total counter\n");
    for (size_t i = 0; i < n; i++)
        append(&buf,
               "vtpmd_control_connections_total{listener=\"%s\",outcome=\"accepted\"} %lu\n"
               "vtpmd_control_connections_total{listener=\"%s\",outcome=\"refused\"} %lu\n",
               httpsrv_name(srvs[i]), (unsigned long)st[i].accepted, httpsrv_name(srvs[i]),
               (unsigned long)st[i].refused);
    append(&buf, "# HELP vtpmd_control_accept_errors_total accept() failures (such as out "
                 "of descriptors).\n"
                 "# TYPE vtpmd_control_accept_errors_total counter\n");
    for (size_t i = 0; i < n; i++)
        append(&buf, "vtpmd_control_accept_errors_total{listener=\"%s\"} %lu\n",
               httpsrv_name(srvs[i]), (unsigned long)st[i].accept_errors);
    append(&buf, "# HELP vtpmd_control_timeouts_total Connections closed by an idle, header "
                 "or request timeout.\n"
                 "# TYPE vtpmd_control_timeouts_total counter\n");
    for (size_t i = 0; i < n; i++)
        append(&buf, "vtpmd_control_timeouts_total{listener=\"%s\"} %lu\n",
               httpsrv_name(srvs[i]), (unsigned long)st[i].timeouts);
    append(&buf, "# HELP vtpmd_control_abandoned_total Requests whose client went away "
                 "unanswered.\n"
                 "# TYPE vtpmd_control_abandoned_total counter\n");
    for (size_t i = 0; i < n; i++)
        append(&buf, "vtpmd_control_abandoned_total{listener=\"%s\"} %lu\n",
               httpsrv_name(srvs[i]), (unsigned long)st[i].abandoned);
    append(&buf,
           "# HELP vtpmd_control_waiters Long polls (wait) waiting.\n"
           "# TYPE vtpmd_control_waiters gauge\n"
           "vtpmd_control_waiters %u\n"
           "# HELP vtpmd_control_waiters_refused_total Long polls refused beyond "
           "control.max_waiters.\n"
           "# TYPE vtpmd_control_waiters_refused_total counter\n"
           "vtpmd_control_waiters_refused_total %lu\n",
           c->waiters, (unsigned long)c->waiters_refused);
    return buf;
}

void control_reply_text(struct control_req *req, int status, const char *content_type,
                        const char *text, size_t len)
{
    if (req->metrics && status == 200) {
        char *own = listener_metrics(req->c), *all = xmalloc(len + strlen(own));

        memcpy(all, text, len);
        memcpy(all + len, own, strlen(own));
        req_send(req, status, content_type, all, len + strlen(own));
        free(all);
        free(own);
        return;
    }
    req_send(req, status, content_type, text, len);
}

void control_reply_json(struct control_req *req, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);

    if (s == NULL)
        abort();
    json_decref(body);
    req_send(req, status, "application/json", s, strlen(s));
    free(s);
}

void control_reply_error(struct control_req *req, int status, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    control_reply_json(req, status, json_pack("{s:s}", "error", msg));
    free(msg);
}

/* The path segment as a canonical UUID, or false. */
static bool parse_uuid(const char *s, size_t len, char out[UUIDUTIL_BUFLEN])
{
    char buf[UUIDUTIL_BUFLEN];

    if (len != UUIDUTIL_LEN)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return uuid_canonical(buf, out) == 0;
}

static size_t control_header_count(struct evhttp_request *r, const char *name)
{
    struct evkeyval *h;
    size_t n = 0;

    TAILQ_FOREACH(h, evhttp_request_get_input_headers(r), next)
        n += strcasecmp(h->key, name) == 0;
    return n;
}

static void control_route(struct control *c, struct evhttp_request *r, bool metrics_only)
{
    struct control_req *q = xcalloc(1, sizeof(*q));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(r);
    enum control_route route = CONTROL_NROUTES;
    char uuid[UUIDUTIL_BUFLEN];
    const char *param = NULL;

    q->c = c;
    q->r = r;
    q->conn = evhttp_request_get_connection(r);
    q->next = c->pending;
    if (c->pending)
        c->pending->prev = q;
    c->pending = q;
    q->srv = metrics_only ? c->metrics_srv : c->srv;
    httpsrv_req_on_close(q->srv, r, req_conn_closed, q);
    if (qs && evhttp_parse_query_str(qs, &q->query) == 0)
        q->have_query = true;
    else if (qs) {
        control_reply_error(q, 400, "bad query string");
        return;
    }
    if (path == NULL) {
        control_reply_error(q, 400, "bad request");
        return;
    }
    if (control_header_count(r, "Content-Length") > 1) {
        /* evhttp reads the first; a proxy in front might read another. */
        control_reply_error(q, 400, "more than one Content-Length header");
        return;
    }

    if (strcmp(path, "/metrics") == 0) {
        route = CONTROL_METRICS;
    } else if (metrics_only) {
        control_reply_error(q, 404, "only /metrics is served here");
        return;
    } else if (strcmp(path, "/v1/health") == 0) {
        route = CONTROL_HEALTH;
    } else if (strcmp(path, "/v1/instances") == 0) {
        route = CONTROL_LIST;
    } else if (strcmp(path, "/v1/domains") == 0) {
        route = CONTROL_DOMAINS;
    } else if (strcmp(path, "/v1/reload") == 0) {
        route = CONTROL_RELOAD;
    } else if (strncmp(path, "/v1/instances/", 14) == 0) {
        const char *rest = path + 14, *slash = strchr(rest, '/');
        size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

        if (!parse_uuid(rest, len, uuid)) {
            control_reply_error(q, 400, "not an instance UUID");
            return;
        }
        param = uuid;
        if (slash == NULL)
            route = CONTROL_SHOW;
        else if (strcmp(slash, "/wait") == 0)
            route = CONTROL_WAIT;
    }
    if (route == CONTROL_NROUTES) {
        control_reply_error(q, 404, "no such resource");
        return;
    }
    if (route == CONTROL_RELOAD ? cmd != EVHTTP_REQ_POST : cmd != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(r), "Allow",
                          route == CONTROL_RELOAD ? "POST" : "GET");
        control_reply_error(q, 405, "method not allowed");
        return;
    }
    if (route == CONTROL_WAIT) {
        if (c->waiters >= c->lim.max_waiters) {
            c->waiters_refused++;
            evhttp_add_header(evhttp_request_get_output_headers(r), "Retry-After", "1");
            control_reply_error(q, 503, "too many waiters (control.max_waiters is %u)",
                                c->lim.max_waiters);
            return;
        }
        q->waiter = true;
        c->waiters++;
        /* A long poll is bounded by its own timeout, not the request
         * deadline; a client that goes away ends it at once. */
        httpsrv_req_deadline(c->srv, r, 0);
    }
    q->metrics = route == CONTROL_METRICS;
    c->handler(q, route, param, c->arg);
}

static void control_cb(struct evhttp_request *r, void *arg)
{
    control_route(arg, r, false);
}

static void metrics_cb(struct evhttp_request *r, void *arg)
{
    control_route(arg, r, true);
}

static int bind_unix(const char *path, char **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        xasprintf(err, "control.socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    /* A stale socket from a crash is replaced; anything else is refused. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            xasprintf(err, "%s exists and is not a socket", path);
            return -EEXIST;
        }
        /* Another user's socket is not ours to remove, and not a vtpmd. */
        if (st.st_uid != geteuid()) {
            xasprintf(err, "%s is a socket owned by uid %u, not by vtpmd (uid %u): another "
                      "user's or an impostor; refusing to remove it", path,
                      (unsigned)st.st_uid, (unsigned)geteuid());
            return -EEXIST;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            struct ucred cred;
            socklen_t len = sizeof(cred);

            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                cred.pid = 0;
            close(fd);
            xasprintf(err, "%s is in use by a running vtpmd (pid %d)", path, (int)cred.pid);
            return -EADDRINUSE;
        }
        if (fd >= 0)
            close(fd);
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        xasprintf(err, "socket: %s", strerror(errno));
        return -errno;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
        listen(fd, 64) < 0) {
        int e = errno;
        xasprintf(err, "cannot listen on %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

static int mkdir_parent(const char *path)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int ret = 0;

    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
            ret = -errno;
    }
    free(dir);
    return ret;
}

static void limits_of(const struct control_limits *l, struct httpsrv_limits *out)
{
    out->max_connections = l->max_connections;
    out->idle_timeout_s = l->idle_timeout_s;
    out->header_timeout_s = l->header_timeout_s;
    out->request_timeout_s = l->request_timeout_s;
    out->handshake_timeout_s = 0;
}

void control_set_limits(struct control *c, const struct control_limits *lim)
{
    struct httpsrv_limits hl;

    c->lim = *lim;
    limits_of(lim, &hl);
    if (c->srv)
        httpsrv_set_limits(c->srv, &hl);
    if (c->metrics_srv)
        httpsrv_set_limits(c->metrics_srv, &hl);
}

int control_new(struct event_base *base, const char *socket_path,
                const char *metrics_listen, const struct control_limits *lim,
                control_handler_fn handler, void *arg, struct control **out, char **err)
{
    struct control *c = xcalloc(1, sizeof(*c));
    struct evconnlistener *l;
    struct evhttp_bound_socket *bound;
    struct httpsrv_limits hl;
    int fd, ret;

    c->base = base;
    c->lim = *lim;
    limits_of(lim, &hl);
    c->handler = handler;
    c->arg = arg;
    if (mkdir_parent(socket_path) < 0) {
        xasprintf(err, "cannot create the directory of %s: %s", socket_path, strerror(errno));
        ret = -errno;
        goto fail;
    }
    fd = bind_unix(socket_path, err);
    if (fd < 0) {
        ret = fd;
        goto fail;
    }
    c->socket_path = xstrdup(socket_path);
    c->http = evhttp_new(base);
    evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(c->http, 64 * 1024);
    evhttp_set_max_headers_size(c->http, 16 * 1024);
    l = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                           -1, fd);
    if (l == NULL || (bound = evhttp_bind_listener(c->http, l)) == NULL) {
        xasprintf(err, "cannot serve on %s", socket_path);
        ret = -EIO;
        goto fail;
    }
    c->srv = httpsrv_new(base, c->http, bound, "control", &hl, NULL, control_cb, c);
    if (metrics_listen) {
        char *host = xstrdup(metrics_listen), *colon = strrchr(host, ':');
        int port = atoi(colon + 1);

        *colon = '\0';
        if (host[0] == '[') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        c->metrics_http = evhttp_new(base);
        evhttp_set_allowed_methods(c->metrics_http, EVHTTP_REQ_GET);
        evhttp_set_max_headers_size(c->metrics_http, 16 * 1024);
        evhttp_set_max_body_size(c->metrics_http, 4 * 1024);
        bound = evhttp_bind_socket_with_handle(c->metrics_http,
                                               host[0] && strcmp(host, "*") ? host : "0.0.0.0",
                                               (ev_uint16_t)port);
        if (bound == NULL) {
            xasprintf(err, "cannot listen on %s for metrics", metrics_listen);
            free(host);
            ret = -EADDRINUSE;
            goto fail;
        }
        free(host);
        c->metrics_srv = httpsrv_new(base, c->metrics_http, bound, "metrics", &hl, NULL,
                                     metrics_cb, c);
    }
    *out = c;
    return 0;
fail:
    control_free(c);
    return ret;
}

void control_free(struct control *c)
{
    if (c == NULL)
        return;
    while (c->pending) {
        struct control_req *q = c->pending;
        if (q->cancel)
            q->cancel(q->cancel_arg);
        control_reply_error(q, 503, "vtpmd is stopping");
    }
    httpsrv_free(c->srv);
    httpsrv_free(c->metrics_srv);
    if (c->http)
        evhttp_free(c->http);
    if (c->metrics_http)
        evhttp_free(c->metrics_http);
    if (c->socket_path)
        unlink(c->socket_path);
    free(c->socket_path);
    free(c);
}
