/* The control API: HTTP/1.1 + JSON on a UNIX socket (mode 0660), and
 * optionally /metrics over TCP (control.metrics_listen). Routes:
 *   GET  /v1/health              GET /v1/instances
 *   GET  /v1/instances/{uuid}    GET /v1/instances/{uuid}/wait?timeout=S
 *   POST /v1/reload              GET /metrics
 *   GET  /v1/domains             (libvirt's view: stub domains, orphans)
 * The module parses requests and routes them; the daemon answers through
 * the handlers, now or later (long polls), with control_reply_*(). */
#ifndef VTPMD_CONTROL_H
#define VTPMD_CONTROL_H

#include <jansson.h>

struct event_base;
struct control;
struct control_req;

enum control_route {
    CONTROL_HEALTH = 0,
    CONTROL_LIST,
    CONTROL_SHOW,   /* param: canonical instance UUID */
    CONTROL_WAIT,   /* param: canonical instance UUID; query timeout */
    CONTROL_RELOAD,
    CONTROL_METRICS,
    CONTROL_DOMAINS, /* libvirt's domains carrying vtpmd metadata */
    CONTROL_NROUTES,
};

/* Every handler must eventually answer req exactly once (or see it
 * cancelled, see control_req_on_cancel). param is NULL or a validated
 * lower-case UUID. */
typedef void (*control_handler_fn)(struct control_req *req, enum control_route route,
                                   const char *param, void *arg);

/* What a client may make the control API hold (control.* keys). Each
 * listener (the socket, the metrics port) has its own connection cap. */
struct control_limits {
    unsigned max_connections;
    unsigned idle_timeout_s;
    unsigned header_timeout_s;
    unsigned request_timeout_s;
    unsigned max_waiters;
};

int control_new(struct event_base *base, const char *socket_path,
                const char *metrics_listen, const struct control_limits *lim,
                control_handler_fn handler, void *arg, struct control **out, char **err);
/* New limits (reload); connections open keep going. */
void control_set_limits(struct control *c, const struct control_limits *lim);
/* Closes the listeners, answers pending requests 503, removes the socket. */
void control_free(struct control *c);

/* Takes ownership of body. */
void control_reply_json(struct control_req *req, int status, json_t *body);
void control_reply_error(struct control_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void control_reply_text(struct control_req *req, int status, const char *content_type,
                        const char *text, size_t len);
/* Query parameter or NULL. */
const char *control_req_query(struct control_req *req, const char *key);
/* Called (instead of any reply) when the client goes away first; after
 * it the request must not be used. */
void control_req_on_cancel(struct control_req *req, void (*fn)(void *arg), void *arg);

#endif
