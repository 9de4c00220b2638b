/* Limits for an evhttp server's listener, see include/httpsrv.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "httpsrv.h"
#include "log.h"
#include "vtime.h"
#include "xalloc.h"

/* One log line per this long for a kind of trouble a client can repeat
 * at will; the next one says how many were left out. */
#define LOG_EVERY_MS 10000
/* Accept pauses after running out of descriptors: from, doubling, to. */
#define PAUSE_MIN_MS 50
#define PAUSE_MAX_MS 2000
/* Clients refused per wake-up, so that a flood cannot hold the loop. */
#define REFUSE_BATCH 64

enum conn_state {
    CONN_HANDSHAKE, /* TLS handshake under way */
    CONN_IDLE,      /* no request bytes yet (new, or between requests) */
    CONN_READING,   /* a request is arriving */
    CONN_ACTIVE,    /* dispatched to the application, not answered yet */
    CONN_CLOSING,   /* told evhttp to drop it; waiting for the free */
};

struct ratelimit {
    uint64_t last_ms;
    unsigned long suppressed;
};

struct hconn {
    struct httpsrv *s;
    struct bufferevent *bev; /* evhttp's */
    struct evhttp_connection *evcon; /* known once evhttp set it up */
    struct evbuffer_cb_entry *in_cb;
    enum conn_state state;
    struct event *timer;
    struct event *reg;   /* learns evcon after evhttp's accept */
    struct event *watch; /* client gone, while ACTIVE */
    void (*on_close)(struct evhttp_connection *evcon, void *arg);
    void *on_close_arg;
    struct hconn *prev, *next;
};

struct httpsrv {
    int refs; /* the owner and each connection */
    bool dead, stopped, at_cap, paused;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *lev;
    evutil_socket_t fd;
    char *name;
    struct httpsrv_limits lim;
    struct httpsrv_opts opts;
    char *busy; /* the canned 503, plain HTTP only */
    size_t busy_len;
    void (*gencb)(struct evhttp_request *req, void *arg);
    void *arg;
    struct httpsrv_stats st;
    struct hconn *conns;
    struct event *refuse_ev, *resume_ev;
    unsigned pause_ms;
    int reserve_fd;
    struct ratelimit rl_accept, rl_refuse;
    struct httpsrv *next_all;
};

/* libevent calls a listener's error callback with evhttp's argument,
 * not ours: the servers are found by their listener. Main thread only. */
static struct httpsrv *all_servers;

/* True when a line may go out now; *suppressed then holds how many
 * were left out since the last one. */
static bool rl_allow(struct ratelimit *rl, unsigned long *suppressed)
{
    uint64_t now = vtime_now_ms();

    if (rl->last_ms && now - rl->last_ms < LOG_EVERY_MS) {
        rl->suppressed++;
        return false;
    }
    rl->last_ms = now;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

static void srv_unref(struct httpsrv *s)
{
    if (--s->refs > 0)
        return;
    free(s->name);
    free(s->busy);
    free(s);
}

/* ---- accepting: evhttp's listener, the refuser, the pause ---------- */

static void update_accepting(struct httpsrv *s)
{
    bool on = !s->stopped && !s->dead && !s->paused && s->lev;
    bool below = s->st.open < s->lim.max_connections;

    if (s->lev) {
        if (on && below)
            evconnlistener_enable(s->lev);
        else
            evconnlistener_disable(s->lev);
    }
    if (s->refuse_ev) {
        if (on && !below)
            event_add(s->refuse_ev, NULL);
        else
            event_del(s->refuse_ev);
    }
    if (on && !below && !s->at_cap) {
        unsigned long sup;

        if (rl_allow(&s->rl_refuse, &sup))
            log_warn("connection limit reached, refusing new clients listener=%s "
                     "max_connections=%u suppressed=%lu", s->name, s->lim.max_connections, sup);
    }
    s->at_cap = on && !below;
}

/* A client beyond the cap: a 503 if it is cheap, then close. */
static void refuse(struct httpsrv *s, int fd)
{
    char junk[4096];

    s->st.refused++;
    if (s->busy) {
        /* What the client sent already: closing on unread data would
         * reset the connection and lose the answer. */
        (void)!recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
        (void)!send(fd, s->busy, s->busy_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    close(fd);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct httpsrv *s = arg;

    s->paused = false;
    update_accepting(s);
}

static void accept_failed(struct httpsrv *s, int err)
{
    struct timeval tv;
    unsigned long sup;

    s->st.accept_errors++;
    if ((err == EMFILE || err == ENFILE) && s->reserve_fd >= 0) {
        /* Take the waiting client off the backlog with the descriptor
         * kept for this, so that it gets an answer rather than a hang. */
        int nfd;

        close(s->reserve_fd);
        nfd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (nfd >= 0)
            refuse(s, nfd);
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    s->pause_ms = s->pause_ms ? s->pause_ms * 2 : PAUSE_MIN_MS;
    if (s->pause_ms > PAUSE_MAX_MS)
        s->pause_ms = PAUSE_MAX_MS;
    if (rl_allow(&s->rl_accept, &sup))
        log_warn("accept failed, pausing the listener listener=%s error=\"%s\" open=%lu "
                 "pause_ms=%u suppressed=%lu", s->name, strerror(err),
                 (unsigned long)s->st.open, s->pause_ms, sup);
    s->paused = true;
    update_accepting(s);
    tv = vtime_tv_ms(s->pause_ms);
    evtimer_add(s->resume_ev, &tv);
}

static void listener_error_cb(struct evconnlistener *lev, void *unused)
{
    int err = EVUTIL_SOCKET_ERROR();

    for (struct httpsrv *s = all_servers; s; s = s->next_all) {
        if (s->lev == lev) {
            accept_failed(s, err);
            return;
        }
    }
    evconnlistener_disable(lev); /* not ours: never spin */
}

/* At the cap, the listening socket is served by this instead of evhttp. */
static void refuse_cb(evutil_socket_t fd, short what, void *arg)
{
    struct httpsrv *s = arg;

    for (int i = 0; i < REFUSE_BATCH; i++) {
        int nfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (nfd >= 0) {
            refuse(s, nfd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            accept_failed(s, errno);
        break;
    }
}

/* ---- connections ----------------------------------------------------- */

static void conn_arm(struct hconn *c, unsigned seconds)
{
    struct timeval tv = {.tv_sec = seconds};

    if (seconds)
        evtimer_add(c->timer, &tv);
    else
        evtimer_del(c->timer);
}

static void watch_cb(evutil_socket_t fd, short what, void *arg);

static void conn_set_state(struct hconn *c, enum conn_state st)
{
    const struct httpsrv_limits *l = &c->s->lim;

    if (c->state == CONN_ACTIVE && st != CONN_ACTIVE && c->watch) {
        event_free(c->watch);
        c->watch = NULL;
    }
    c->state = st;
    switch (st) {
    case CONN_HANDSHAKE:
        conn_arm(c, l->handshake_timeout_s);
        break;
    case CONN_IDLE:
        conn_arm(c, l->idle_timeout_s);
        break;
    case CONN_READING:
        conn_arm(c, l->header_timeout_s);
        break;
    case CONN_ACTIVE: {
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        /* EV_CLOSED sees the hang-up even behind unread data. */
        bool early = event_base_get_features(c->s->base) & EV_FEATURE_EARLY_CLOSE;

        conn_arm(c, l->request_timeout_s);
        if (fd >= 0 && c->watch == NULL) {
            c->watch = event_new(c->s->base, fd, (early ? EV_CLOSED : EV_READ) | EV_PERSIST,
                                 watch_cb, c);
            if (c->watch)
                event_add(c->watch, NULL);
        }
        break;
    }
    case CONN_CLOSING:
        evtimer_del(c->timer);
        break;
    }
}

/* Has evhttp drop the connection as if its socket had timed out (or hung
 * up): an unanswered request is detached and the close callback runs.
 * Not logged: a client could make every connection a log line; the
 * counters say how many. */
static void conn_drop(struct hconn *c, short what, const char *why)
{
    (void)why;
    conn_set_state(c, CONN_CLOSING);
    bufferevent_trigger_event(c->bev, what, 0);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    bool (*done)(struct bufferevent *) = c->s->opts.handshake_done;

    switch (c->state) {
    case CONN_HANDSHAKE:
        if (done && done(c->bev)) {
            conn_set_state(c, CONN_IDLE);
            return;
        }
        c->s->st.timeouts++;
        conn_drop(c, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, "tls_handshake_timeout");
        break;
    case CONN_IDLE:
        c->s->st.timeouts++;
        conn_drop(c, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, "idle_timeout");
        break;
    case CONN_READING:
        c->s->st.timeouts++;
        conn_drop(c, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, "header_timeout");
        break;
    case CONN_ACTIVE:
        c->s->st.timeouts++;
        conn_drop(c, BEV_EVENT_TIMEOUT | BEV_EVENT_WRITING, "request_timeout");
        break;
    case CONN_CLOSING:
        break;
    }
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;

    if (!(what & EV_CLOSED)) {
        char b;
        ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n > 0) {
            /* Pipelined bytes, not a hang-up: the deadline decides. */
            event_free(c->watch);
            c->watch = NULL;
            return;
        }
    }
    if (c->state != CONN_ACTIVE)
        return;
    c->s->st.abandoned++;
    conn_drop(c, BEV_EVENT_EOF | BEV_EVENT_READING, "client_gone");
}

/* A request's first bytes: the header deadline starts. */
static void in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct hconn *c = arg;

    if (info->n_added > 0 && (c->state == CONN_IDLE || c->state == CONN_HANDSHAKE))
        conn_set_state(c, CONN_READING);
}

/* evhttp frees the connection: the count drops (its socket closes as
 * the bufferevent goes), and an unanswered request's owner hears of it. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct hconn *c = arg;
    struct httpsrv *s = c->s;
    void (*fn)(struct evhttp_connection *, void *) = c->on_close;
    void *fn_arg = c->on_close_arg;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    event_free(c->timer);
    event_free(c->reg);
    if (c->watch)
        event_free(c->watch);
    free(c);
    s->st.open--;
    update_accepting(s);
    srv_unref(s);
    if (fn)
        fn(evcon, fn_arg);
}

/* evhttp made the connection around our bufferevent: its callback
 * argument is the connection. */
static void reg_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    void *cbarg = NULL;

    bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
    c->evcon = cbarg;
    if (c->evcon)
        evhttp_connection_set_closecb(c->evcon, conn_closed, c);
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    struct httpsrv *s = arg;
    struct bufferevent *bev;
    struct hconn *c = xcalloc(1, sizeof(*c));

    bev = s->opts.bevcb ? s->opts.bevcb(base, s->opts.arg)
                        : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    /* evhttp would fall back to a plain bufferevent on NULL. */
    if (bev == NULL)
        abort();
    c->s = s;
    c->bev = bev;
    c->timer = evtimer_new(base, timer_cb, c);
    c->reg = event_new(base, -1, 0, reg_cb, c);
    c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), in_cb, c);
    if (c->timer == NULL || c->reg == NULL || c->in_cb == NULL)
        abort();
    /* Runs once evhttp's accept is done with the connection. */
    event_active(c->reg, EV_TIMEOUT, 0);
    s->refs++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->st.open++;
    s->st.accepted++;
    s->pause_ms = 0;
    conn_set_state(c, s->opts.handshake_done ? CONN_HANDSHAKE : CONN_IDLE);
    update_accepting(s);
    return bev;
}

static struct hconn *conn_of(struct httpsrv *s, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

    for (struct hconn *c = s->conns; bev && c; c = c->next) {
        if (c->bev == bev)
            return c;
    }
    return NULL;
}

void httpsrv_req_on_close(struct httpsrv *s, struct evhttp_request *req,
                          void (*fn)(struct evhttp_connection *evcon, void *arg), void *arg)
{
    struct hconn *c = conn_of(s, req);

    if (c) {
        c->on_close = fn;
        c->on_close_arg = arg;
    }
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    struct hconn *c = arg;

    c->on_close = NULL;
    if (c->state == CONN_ACTIVE)
        conn_set_state(c, CONN_IDLE);
}

static void gencb(struct evhttp_request *req, void *arg)
{
    struct httpsrv *s = arg;
    struct hconn *c = conn_of(s, req);

    if (c) {
        conn_set_state(c, CONN_ACTIVE);
        evhttp_request_set_on_complete_cb(req, on_complete, c);
    }
    s->gencb(req, s->arg);
}

/* ---- the server ---------------------------------------------------- */

static void apply_limits(struct httpsrv *s, const struct httpsrv_limits *lim)
{
    s->lim = *lim;
    if (s->lim.max_connections == 0)
        s->lim.max_connections = 1;
    /* evhttp's own: inactivity while reading or writing. */
    evhttp_set_timeout(s->http, (int)s->lim.idle_timeout_s);
}

struct httpsrv *httpsrv_new(struct event_base *base, struct evhttp *http,
                            struct evhttp_bound_socket *bound, const char *name,
                            const struct httpsrv_limits *lim,
                            const struct httpsrv_opts *opts,
                            void (*cb)(struct evhttp_request *req, void *arg), void *arg)
{
    struct httpsrv *s = xcalloc(1, sizeof(*s));

    s->refs = 1;
    s->base = base;
    s->http = http;
    s->name = xstrdup(name);
    if (opts)
        s->opts = *opts;
    s->opts.busy_body = NULL;
    if (s->opts.bevcb == NULL) {
        const char *body = opts && opts->busy_body ? opts->busy_body
                                                   : "{\"error\":\"too many connections\"}";

        s->busy_len = (size_t)xasprintf(&s->busy,
                                        "HTTP/1.1 503 Service Unavailable\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Content-Length: %zu\r\n"
                                        "Retry-After: 1\r\n"
                                        "Connection: close\r\n\r\n%s\n",
                                        strlen(body) + 1, body);
    }
    s->gencb = cb;
    s->arg = arg;
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->lev = evhttp_bound_socket_get_listener(bound);
    s->fd = evhttp_bound_socket_get_fd(bound);
    s->refuse_ev = event_new(base, s->fd, EV_READ | EV_PERSIST, refuse_cb, s);
    s->resume_ev = evtimer_new(base, resume_cb, s);
    if (s->refuse_ev == NULL || s->resume_ev == NULL)
        abort();
    apply_limits(s, lim);
    evconnlistener_set_error_cb(s->lev, listener_error_cb);
    evhttp_set_bevcb(http, bevcb, s);
    evhttp_set_gencb(http, gencb, s);
    s->next_all = all_servers;
    all_servers = s;
    update_accepting(s);
    return s;
}

void httpsrv_set_limits(struct httpsrv *s, const struct httpsrv_limits *lim)
{
    apply_limits(s, lim);
    update_accepting(s);
}

void httpsrv_req_deadline(struct httpsrv *s, struct evhttp_request *req, unsigned seconds)
{
    struct hconn *c = conn_of(s, req);

    if (c && c->state == CONN_ACTIVE)
        conn_arm(c, seconds);
}

void httpsrv_get_stats(const struct httpsrv *s, struct httpsrv_stats *out)
{
    *out = s->st;
}

const char *httpsrv_name(const struct httpsrv *s)
{
    return s->name;
}

void httpsrv_stop_accepting(struct httpsrv *s)
{
    if (s->stopped)
        return;
    s->stopped = true;
    update_accepting(s);
    for (struct httpsrv **p = &all_servers; *p; p = &(*p)->next_all) {
        if (*p == s) {
            *p = s->next_all;
            break;
        }
    }
    /* The caller frees the listener next. */
    s->lev = NULL;
    event_free(s->refuse_ev);
    s->refuse_ev = NULL;
    event_free(s->resume_ev);
    s->resume_ev = NULL;
}

void httpsrv_free(struct httpsrv *s)
{
    if (s == NULL)
        return;
    httpsrv_stop_accepting(s);
    s->dead = true;
    if (s->reserve_fd >= 0)
        close(s->reserve_fd);
    s->reserve_fd = -1;
    srv_unref(s);
}

unsigned long httpsrv_fd_budget(unsigned long needed)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max, rl.rlim_max};

        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    if (rl.rlim_cur != RLIM_INFINITY && needed > rl.rlim_cur)
        log_warn("the descriptor limit is below what the connection limits allow: "
                 "limit=%lu needed=%lu; raise LimitNOFILE or lower max_connections",
                 (unsigned long)rl.rlim_cur, needed);
    return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}
