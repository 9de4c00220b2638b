/* Limits for an evhttp server's listener, shared by vtpmd's control API
 * and vtpm-proxyd: what a client may make the daemon hold is capped.
 *
 *  - at most max_connections open connections (TLS handshakes included);
 *    beyond it a client is refused at once: a canned 503 with
 *    "Connection: close" on plain HTTP, an immediate close on TLS;
 *  - a new or idle connection is closed after idle_timeout_s without a
 *    request; a request must arrive whole (headers and body) within
 *    header_timeout_s of its first byte; a TLS handshake must finish
 *    within handshake_timeout_s;
 *  - a request dispatched to the application must be answered (last byte
 *    written) within request_timeout_s, unless the application lifts the
 *    deadline (long polls); a request whose client goes away meanwhile is
 *    dropped at once (the connection's close callback runs);
 *  - accept() failing for lack of descriptors (EMFILE, ENFILE) never
 *    spins: a reserved descriptor is freed to accept and close the
 *    pending client, the listener pauses with a backoff, and one log
 *    line per 10 s says so with the number of lines suppressed.
 *
 * libevent 2.1 has no connection cap of its own: the module makes every
 * connection's bufferevent (evhttp_set_bevcb), takes the connection's
 * close callback to count it closed, and swaps evhttp's accept for its
 * own refusing accept while at the cap. The connection's close callback
 * is the module's: use httpsrv_req_on_close. */
#ifndef VTPMD_HTTPSRV_H
#define VTPMD_HTTPSRV_H

#include <stdbool.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct httpsrv;

struct httpsrv_limits {
    unsigned max_connections;
    unsigned idle_timeout_s;
    unsigned header_timeout_s;
    unsigned request_timeout_s; /* 0: none */
    unsigned handshake_timeout_s; /* TLS only */
};

struct httpsrv_stats {
    uint64_t open;          /* connections now (gauge) */
    uint64_t accepted;      /* total */
    uint64_t refused;       /* beyond max_connections */
    uint64_t accept_errors; /* accept() failures other than EAGAIN */
    uint64_t timeouts;      /* connections closed by a timeout or deadline */
    uint64_t abandoned;     /* requests whose client went away unanswered */
};

/* How connections are made and refused. bevcb makes each connection's
 * bufferevent (TLS), NULL: a socket bufferevent (plain HTTP, and then
 * busy_body, a JSON object, is the body of the 503 a refused client
 * gets). handshake_done tells a TLS connection whose handshake finished. */
struct httpsrv_opts {
    struct bufferevent *(*bevcb)(struct event_base *base, void *arg);
    void *arg;
    bool (*handshake_done)(struct bufferevent *bev);
    const char *busy_body;
};

/* Takes over http's bufferevent callback and general callback (gencb is
 * called for every request, as evhttp_set_gencb's) and the bound
 * socket's listener. name appears in logs and metrics.
 * http and bound stay the caller's; free the httpsrv before http. */
struct httpsrv *httpsrv_new(struct event_base *base, struct evhttp *http,
                            struct evhttp_bound_socket *bound, const char *name,
                            const struct httpsrv_limits *lim,
                            const struct httpsrv_opts *opts,
                            void (*gencb)(struct evhttp_request *req, void *arg),
                            void *arg);
/* Applies to connections from now on (reload). */
void httpsrv_set_limits(struct httpsrv *s, const struct httpsrv_limits *lim);
/* Lifts (seconds 0) or sets the answer deadline of a request in
 * progress, counted from now. */
void httpsrv_req_deadline(struct httpsrv *s, struct evhttp_request *req, unsigned seconds);
void httpsrv_get_stats(const struct httpsrv *s, struct httpsrv_stats *out);
const char *httpsrv_name(const struct httpsrv *s);
/* fn runs if the connection of req closes before req is answered (the
 * client went away, or a timeout); fn NULL: no longer. */
struct evhttp_connection;
void httpsrv_req_on_close(struct httpsrv *s, struct evhttp_request *req,
                          void (*fn)(struct evhttp_connection *evcon, void *arg), void *arg);
/* Stops accepting (the listening socket stays the caller's). */
void httpsrv_stop_accepting(struct httpsrv *s);
/* Connections still open keep the counters alive until they close. */
void httpsrv_free(struct httpsrv *s);

/* Raises the soft descriptor limit to the hard one and warns when
 * `needed` descriptors (every listener's cap, plus the daemon's own
 * work) do not fit. Returns the soft limit now in force. */
unsigned long httpsrv_fd_budget(unsigned long needed);

#endif
