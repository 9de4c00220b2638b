/* The AMQP bus: librabbitmq-c driven by the libevent loop.
 *
 * librabbitmq-c is a blocking library; this module uses only its framing
 * (amqp_simple_wait_frame_noblock with a zero timeout, amqp_send_method,
 * amqp_basic_publish) and runs every protocol exchange itself as a state
 * machine on the loop: resolve (evdns) -> nonblocking TCP connect -> TLS
 * -> AMQP handshake -> channel.open -> declare -> consume -> ready ->
 * closing. What still blocks, honestly:
 *  - amqps:// only: resolving the host, the TCP connect and the TLS
 *    handshake run inside librabbitmq's amqp_socket_open_noblock(),
 *    bounded by amqp.connect_timeout (the resolver by the system's);
 *  - every write: librabbitmq polls until a frame is fully written. With
 *    a broker that stops reading (flow control) that can stall the loop;
 *    publishes are held while the broker says connection.blocked.
 * librabbitmq-c buffers what it read (amqp_data_in_buffer) and queues
 * frames it met while writing (amqp_frames_enqueued); the socket will not
 * signal those again, so every read drains them and every write checks. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "backoff.h"
#include "bus.h"
#include "bus_ackwin.h"
#include "bus_outbox.h"
#include "vconfig.h"
#include "log.h"
#include "vtime.h"
#include "xalloc.h"

/* librabbitmq's private frame type for a protocol header read back from
 * the broker (amqp_private.h): the broker refused our protocol version. */
#define BUS_PSEUDOFRAME_PROTOCOL_HEADER 'A'

#define BUS_CH_CONSUME 1
#define BUS_CH_PUBLISH 2
#define BUS_NCHAN 3
#define BUS_FRAME_MAX 131072
#define BUS_READ_BUDGET 512   /* frames per loop callback: others get a turn */
#define BUS_ACK_BATCH_MAX 64  /* deliveries per basic.ack multiple */
#define BUS_ACK_DELAY_MS 10   /* at most this long before a completed ack goes out */
#define BUS_BACKOFF_MIN_MS 100
#define BUS_STABLE_MS 10000   /* a connection that lived this long resets the backoff */
#define BUS_PROBE_MIN_GAP_MS 100
#define BUS_VERDICT_FRESH_MS 250

/* The connection's states, and which of struct bus's flags mean something
 * in each. A flag not listed for a state is unused there (and false, or 0,
 * unless noted): bus_close_conn() resets every per-connection flag when a
 * connection ends, so a new attempt starts clean.
 *
 *   IDLE        created, bus_start() not called. started=false.
 *   RESOLVING   evdns lookup of the current URL's host (dns_list,
 *   CONNECTING  dns_alive), then the nonblocking TCP connect (fd,
 *   TLS         addr_cur), then TLS. dead: a failure was seen and the
 *               teardown is scheduled; nothing more is done on this
 *               attempt. reconnect_now (with dead): a reload asked for
 *               this teardown; reconnect at once to the first URL.
 *   LOGIN       AMQP handshake on channel 0. dead, reconnect_now as
 *               above; blocked (connection.blocked may come from here on).
 *   OPENING     channel.open on channels 1 and 2; chan_open counts the
 *               open-oks. dead, reconnect_now, blocked.
 *   DECLARING   the topology, one method at a time (step); confirm_on once
 *               confirm.select-ok came. dead, reconnect_now, blocked.
 *   CONSUMING   basic.consume sent, consume-ok awaited. confirm_on, dead,
 *               reconnect_now, blocked.
 *   READY       consuming and publishing. confirm_on, blocked (publishes
 *               wait in the outbox), reconsume (a new prefetch: basic.qos
 *               sent, the consumer is cancelled and started again),
 *               probe_phase/verdict_valid (caught-up probes), dead,
 *               reconnect_now; was_ready is set on entry.
 *   CLOSING     bus_stop() from READY, two stages. With a connection
 *               (conn != NULL): basic.cancel sent; cancel_done once its
 *               cancel-ok came; when the outbox is empty too,
 *               connection.close goes out and close_sent waits for its
 *               close-ok (then dead, and the teardown). Without one (after
 *               the teardown): cancelled evdns lookups are still to call
 *               back (dns_alive > 0); the last one finishes the stop.
 *               confirm_on, blocked as in READY; stop_requested is true.
 *   BACKOFF     between attempts, ev_backoff pending. was_ready (read on
 *               entry, then cleared) chose the delay; rounds, url_index
 *               say which URL is next and how long the wait was.
 *   STOPPED     final. stopped_pending: bus_stop() was called here (or in
 *               IDLE) and its callback is still to run from ev_defer.
 *
 * In every state: stop_requested (bus_stop() was called: a teardown ends
 * in STOPPED, not BACKOFF, and publishes are refused), in_flight
 * (deliveries with the consumer; they outlive their connection, whose
 * epoch they keep), attempted (a connection was tried before: the next
 * counts as a reconnect). */
enum bus_state {
    BUS_IDLE,
    BUS_RESOLVING,
    BUS_CONNECTING,
    BUS_TLS,
    BUS_LOGIN,
    BUS_OPENING,
    BUS_DECLARING,
    BUS_CONSUMING,
    BUS_READY,
    BUS_CLOSING,
    BUS_BACKOFF,
    BUS_STOPPED,
};

static const char *const bus_state_names[] = {
    "idle", "resolving", "connecting", "tls", "login", "opening",
    "declaring", "consuming", "ready", "closing", "backoff", "stopped",
};

/* What the bus keeps of the configuration: copies, so that a reload may
 * free the old one. */
struct bus_settings {
    struct strlist urls;
    unsigned heartbeat_s;
    unsigned prefetch;
    uint64_t connect_timeout_ms;
    uint64_t reconnect_max_ms;
    char *ca_file, *cert_file, *key_file;
    bool verify_peer, verify_hostname;
    char *exchange;
    struct strlist topics;
    char *queue;
    char *dlx;
    uint64_t max_message_size;
    char *status_exchange;
    size_t outbox_limit;
    char *host;
};

struct bus_delivery {
    uint64_t epoch; /* the connection it came on */
    uint64_t tag;
};

enum bus_rpc_kind {
    RPC_CHANNEL_OPEN,
    RPC_DECLARE, /* exchange.declare, queue.declare, queue.bind */
    RPC_QOS,
    RPC_CONFIRM,
    RPC_CONSUME,
    RPC_CANCEL,
    RPC_RECANCEL, /* basic.cancel before consuming again (new prefetch) */
    RPC_PROBE,
};

/* A synchronous AMQP method awaiting its reply. Replies on a channel
 * come in the order of the requests. */
struct bus_rpc {
    struct bus_rpc *next;
    enum bus_rpc_kind kind;
    amqp_method_number_t reply;
    char *what; /* for error messages */
};

struct bus_fifo {
    struct bus_rpc *head, **tail;
};

struct bus_waiter {
    struct bus_waiter *next;
    void (*cb)(bool caught_up, void *arg);
    void *arg;
    uint64_t min_cycle; /* answered by a probe cycle >= this */
};

/* An evdns lookup; detached (b = NULL) when the bus goes away first. */
struct bus_dns {
    struct bus_dns *next;
    struct bus *b;
    struct evdns_getaddrinfo_request *req;
    bool cancelled;
};

struct bus {
    struct event_base *base;
    struct evdns_base *dns;
    struct bus_settings set;
    struct bus_callbacks cb;
    void *cb_arg;

    enum bus_state state;
    bool started;
    bool stop_requested;
    bool dead;           /* the connection is being torn down */
    bool reconnect_now;  /* after teardown: reconnect at once (reload) */
    void (*stopped_cb)(void *arg);
    void *stopped_arg;
    bool stopped_pending;

    /* The current connection attempt. */
    size_t url_index;
    unsigned rounds;     /* consecutive failed rounds over all URLs */
    bool attempted;      /* a connection was attempted before */
    bool was_ready;
    struct amqp_connection_info ci;
    char *url_buf;       /* amqp_parse_url writes into it */
    char *url_safe;      /* for logs: no password */
    struct bus_dns *dns_list;
    size_t dns_alive;
    struct evutil_addrinfo *addrs, *addr_cur;
    int fd;              /* during the TCP connect only */
    int last_errno;
    amqp_connection_state_t conn;
    uint64_t epoch;
    struct bus_fifo fifo[BUS_NCHAN];
    unsigned step;       /* topology declaration step */
    unsigned chan_open;
    bool confirm_on;
    char *consumer_tag;
    bool cancel_done, close_sent;
    bool reconsume; /* a new prefetch: cancel and consume again */
    bool blocked;
    unsigned heartbeat_s; /* negotiated */
    uint64_t last_rx, last_tx, ready_at;

    /* The delivery being assembled from its frames. */
    struct {
        bool active, have_header, skip;
        uint64_t tag;
        bool redelivered;
        uint64_t size, got;
        char *buf;
        size_t cap;
        bool has_ctype;
        char ctype[128];
    } in;

    struct bus_ackwin win;
    unsigned ack_batch;
    struct bus_outbox ob;
    size_t in_flight;

    /* Caught-up probes: passive queue.declare A, then a second round
     * trip B on the same channel; see bus_caught_up(). */
    unsigned probe_phase; /* 0 idle, 1 A sent, 2 B sent */
    uint64_t cycle;
    uint64_t probe_a_sent, last_cycle_start;
    uint32_t probe_a_count;
    bool verdict, verdict_valid;
    uint64_t verdict_at, verdict_epoch;
    struct bus_waiter *waiters;

    struct event *ev_io, *ev_connect, *ev_deadline, *ev_heartbeat, *ev_ack,
        *ev_backoff, *ev_teardown, *ev_probe, *ev_stop, *ev_defer, *ev_pump;

    struct {
        uint64_t delivered, acked, rejected, published, confirmed, nacked,
            reconnects;
    } st;
    uint64_t rng;
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void timer_add_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = vtime_tv_ms(ms);

    event_add(ev, &tv);
}

static amqp_bytes_t bytes_of(const char *s)
{
    return amqp_cstring_bytes(s ? s : "");
}

static char *bytes_dup(amqp_bytes_t b)
{
    return xstrndup(b.bytes ? b.bytes : "", b.len);
}

static void bus_set_state(struct bus *b, enum bus_state s)
{
    enum bus_state old = b->state;

    if (old == s)
        return;
    b->state = s;
    log_debug("amqp state from=%s to=%s", bus_state_names[old], bus_state_names[s]);
    if (s == BUS_READY && b->cb.state_changed)
        b->cb.state_changed(true, b->cb_arg);
    else if (old == BUS_READY && b->cb.state_changed)
        b->cb.state_changed(false, b->cb_arg);
}

static const char *bus_url(const struct bus *b)
{
    return b->url_safe ? b->url_safe : "-";
}

/* ------------------------------------------------------------------ */
/* Settings                                                            */

static void settings_free(struct bus_settings *s)
{
    strlist_free(&s->urls);
    strlist_free(&s->topics);
    free(s->ca_file);
    free(s->cert_file);
    free(s->key_file);
    free(s->exchange);
    free(s->queue);
    free(s->dlx);
    free(s->status_exchange);
    free(s->host);
    memset(s, 0, sizeof(*s));
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void settings_from_config(struct bus_settings *s, const struct config *cfg)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < cfg->amqp.urls.n; i++)
        strlist_push(&s->urls, cfg->amqp.urls.v[i]);
    /* AMQP negotiates whole seconds. */
    s->heartbeat_s = (unsigned)((cfg->amqp.heartbeat_ms + 999) / 1000);
    if (s->heartbeat_s > UINT16_MAX)
        s->heartbeat_s = UINT16_MAX;
    s->prefetch = (unsigned)cfg->amqp.prefetch;
    s->connect_timeout_ms = cfg->amqp.connect_timeout_ms;
    s->reconnect_max_ms = cfg->amqp.reconnect_max_ms;
    s->ca_file = dup_or_null(cfg->amqp.tls.ca_file);
    s->cert_file = dup_or_null(cfg->amqp.tls.cert_file);
    s->key_file = dup_or_null(cfg->amqp.tls.key_file);
    s->verify_peer = cfg->amqp.tls.verify_peer;
    s->verify_hostname = cfg->amqp.tls.verify_hostname;
    s->exchange = xstrdup(cfg->notifications.exchange);
    for (size_t i = 0; i < cfg->notifications.topics.n; i++)
        strlist_push(&s->topics, cfg->notifications.topics.v[i]);
    s->queue = config_expand_host(cfg->notifications.queue, cfg->host);
    s->dlx = dup_or_null(cfg->notifications.dead_letter_exchange);
    s->max_message_size = cfg->notifications.max_message_size;
    s->status_exchange = xstrdup(cfg->status.exchange);
    s->outbox_limit = (size_t)cfg->status.outbox_limit;
    s->host = xstrdup(cfg->host);
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool strlist_eq(const struct strlist *a, const struct strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

/* Differences that need a new connection (and topology). */
static bool settings_need_reconnect(const struct bus_settings *a,
                                    const struct bus_settings *b)
{
    return !strlist_eq(&a->urls, &b->urls) || a->heartbeat_s != b->heartbeat_s ||
           !str_eq(a->ca_file, b->ca_file) || !str_eq(a->cert_file, b->cert_file) ||
           !str_eq(a->key_file, b->key_file) || a->verify_peer != b->verify_peer ||
           a->verify_hostname != b->verify_hostname ||
           !str_eq(a->exchange, b->exchange) || !strlist_eq(&a->topics, &b->topics) ||
           !str_eq(a->queue, b->queue) || !str_eq(a->dlx, b->dlx) ||
           !str_eq(a->status_exchange, b->status_exchange) || !str_eq(a->host, b->host);
}

static unsigned ack_batch_for(unsigned prefetch)
{
    /* Below half the prefetch window, or the broker would stall waiting
     * for acks that wait for the batch to fill. */
    unsigned n = prefetch / 2;

    if (n > BUS_ACK_BATCH_MAX)
        n = BUS_ACK_BATCH_MAX;
    return n ? n : 1;
}

/* ------------------------------------------------------------------ */
/* Failure and teardown                                                */

static void bus_kill(struct bus *b)
{
    if (b->dead)
        return;
    b->dead = true;
    /* librabbitmq may have closed the socket already: never let the loop
     * watch a descriptor number that could be reused. */
    if (b->ev_io)
        event_del(b->ev_io);
    event_active(b->ev_teardown, EV_TIMEOUT, 1);
}

static void bus_fail(struct bus *b, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs why the connection (attempt) ends and tears it down from the loop,
 * never from inside the caller (which may still use the connection). */
static void bus_fail(struct bus *b, enum log_level level, const char *fmt, ...)
{
    char reason[512];
    va_list ap;

    if (b->dead)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    log_msg(level, "amqp connection failed url=%s state=%s: %s", bus_url(b),
            bus_state_names[b->state], reason);
    bus_kill(b);
}

static void fifo_clear(struct bus_fifo *f)
{
    struct bus_rpc *r;

    while ((r = f->head) != NULL) {
        f->head = r->next;
        free(r->what);
        free(r);
    }
    f->tail = &f->head;
}

static void bus_answer_waiters(struct bus *b, bool all, bool verdict)
{
    struct bus_waiter *list = b->waiters, *keep = NULL, **keep_tail = &keep, *w;

    /* Detach first: a callback may register again. */
    b->waiters = NULL;
    while ((w = list) != NULL) {
        list = w->next;
        if (!all && w->min_cycle > b->cycle) {
            w->next = NULL;
            *keep_tail = w;
            keep_tail = &w->next;
            continue;
        }
        w->cb(verdict, w->arg);
        free(w);
    }
    *keep_tail = b->waiters;
    b->waiters = keep;
}

static void dns_detach_all(struct bus *b)
{
    for (struct bus_dns *d = b->dns_list; d; d = d->next) {
        if (!d->cancelled && d->req) {
            d->cancelled = true;
            evdns_getaddrinfo_cancel(d->req);
        }
    }
}

/* Releases everything that belongs to one connection. */
static void bus_close_conn(struct bus *b)
{
    dns_detach_all(b);
    if (b->addrs) {
        evutil_freeaddrinfo(b->addrs);
        b->addrs = b->addr_cur = NULL;
    }
    if (b->ev_connect) {
        event_free(b->ev_connect);
        b->ev_connect = NULL;
    }
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
    if (b->ev_io) {
        event_free(b->ev_io);
        b->ev_io = NULL;
    }
    if (b->conn) {
        amqp_destroy_connection(b->conn);
        b->conn = NULL;
    }
    free(b->url_buf);
    b->url_buf = NULL;
    for (int i = 0; i < BUS_NCHAN; i++)
        fifo_clear(&b->fifo[i]);
    free(b->consumer_tag);
    b->consumer_tag = NULL;
    event_del(b->ev_deadline);
    event_del(b->ev_heartbeat);
    event_del(b->ev_ack);
    event_del(b->ev_probe);
    event_del(b->ev_stop);
    b->in.active = b->in.have_header = b->in.skip = false;
    bus_ackwin_reset(&b->win);
    bus_outbox_requeue(&b->ob);
    b->epoch++;
    b->step = 0;
    b->chan_open = 0;
    b->confirm_on = false;
    b->cancel_done = b->close_sent = false;
    b->reconsume = false;
    b->blocked = false;
    b->heartbeat_s = 0;
    b->probe_phase = 0;
    b->verdict_valid = false;
}

static void bus_finish_stop(struct bus *b)
{
    size_t n = bus_outbox_fail_all(&b->ob, -ECONNRESET);
    void (*cb)(void *) = b->stopped_cb;

    if (n)
        log_warn("amqp stopped with unconfirmed status messages count=%zu", n);
    bus_set_state(b, BUS_STOPPED);
    bus_answer_waiters(b, true, false);
    b->stopped_cb = NULL;
    log_info("amqp stopped delivered=%" PRIu64 " acked=%" PRIu64 " rejected=%" PRIu64
             " published=%" PRIu64 " confirmed=%" PRIu64,
             b->st.delivered, b->st.acked, b->st.rejected, b->st.published,
             b->st.confirmed);
    if (cb)
        cb(b->stopped_arg);
}

static void bus_connect(struct bus *b);

static uint64_t bus_backoff_ms(struct bus *b)
{
    uint64_t d = backoff_ms(BUS_BACKOFF_MIN_MS, b->set.reconnect_max_ms, b->rounds);

    /* Jitter over [d/2, d]: many hosts reconnecting after a broker
     * restart do not arrive in lockstep. */
    return backoff_jitter_ms(d, backoff_rand(&b->rng));
}

static void bus_schedule_reconnect(struct bus *b)
{
    uint64_t delay = 0;

    if (b->reconnect_now) {
        b->reconnect_now = false;
        b->url_index = 0;
        b->rounds = 0;
    } else if (b->was_ready) {
        /* Lost a working connection: start again with the first URL. */
        if (vtime_now_ms() - b->ready_at >= BUS_STABLE_MS)
            b->rounds = 0;
        b->url_index = 0;
        delay = bus_backoff_ms(b);
        b->rounds++;
    } else if (b->url_index + 1 < b->set.urls.n) {
        b->url_index++; /* fail over to the next broker at once */
    } else {
        b->url_index = 0;
        delay = bus_backoff_ms(b);
        b->rounds++;
    }
    b->was_ready = false;
    bus_set_state(b, BUS_BACKOFF);
    if (delay)
        log_info("amqp reconnecting in_ms=%" PRIu64 " url_index=%zu", delay, b->url_index);
    timer_add_ms(b->ev_backoff, delay);
}

static void bus_teardown_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;

    bus_close_conn(b);
    b->dead = false;
    bus_answer_waiters(b, true, false);
    if (b->stop_requested) {
        if (b->dns_alive) {
            /* Finish once the cancelled lookup has called back. */
            bus_set_state(b, BUS_CLOSING);
            return;
        }
        bus_finish_stop(b);
        return;
    }
    bus_schedule_reconnect(b);
}

static void bus_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    bus_connect(arg);
}

/* Deferred work that must not run inside a caller's stack. */
static void bus_defer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;

    if (b->state != BUS_READY)
        bus_answer_waiters(b, true, false);
    if (b->stopped_pending) {
        b->stopped_pending = false;
        if (b->stopped_cb) {
            void (*cb)(void *) = b->stopped_cb;

            b->stopped_cb = NULL;
            cb(b->stopped_arg);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

static bool bus_can_send(const struct bus *b)
{
    return b->conn && !b->dead && amqp_get_sockfd(b->conn) >= 0;
}

/* A write may have read: what librabbitmq buffered will not wake the
 * loop, so run the reader once more. */
static void bus_after_send(struct bus *b)
{
    if (b->conn && !b->dead && b->ev_io &&
        (amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn)))
        event_active(b->ev_io, EV_TIMEOUT, 1);
}

static bool bus_sent(struct bus *b, int r, const char *what)
{
    if (r == AMQP_STATUS_OK) {
        b->last_tx = vtime_now_ms();
        return true;
    }
    bus_fail(b, LOG_LEVEL_WARNING, "cannot send %s: %s", what, amqp_error_string2(r));
    return false;
}

static bool bus_send_method(struct bus *b, amqp_channel_t ch, amqp_method_number_t id,
                            void *decoded)
{
    int r;

    if (!bus_can_send(b))
        return false;
    r = amqp_send_method(b->conn, ch, id, decoded);
    if (!bus_sent(b, r, amqp_method_name(id)))
        return false;
    bus_after_send(b);
    return true;
}

static void bus_rpc(struct bus *b, amqp_channel_t ch, enum bus_rpc_kind kind,
                    amqp_method_number_t id, void *decoded,
                    amqp_method_number_t reply, char *what)
{
    struct bus_rpc *r;

    if (!bus_send_method(b, ch, id, decoded)) {
        free(what);
        return;
    }
    r = xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->reply = reply;
    r->what = what;
    *b->fifo[ch].tail = r;
    b->fifo[ch].tail = &r->next;
}

static void bus_ack_emit(uint64_t tag, bool multiple, void *arg)
{
    struct bus *b = arg;
    amqp_basic_ack_t m = {.delivery_tag = tag, .multiple = multiple};

    bus_send_method(b, BUS_CH_CONSUME, AMQP_BASIC_ACK_METHOD, &m);
}

static void bus_flush_acks(struct bus *b, bool all)
{
    if (!bus_can_send(b))
        return;
    bus_ackwin_flush(&b->win, all, bus_ack_emit, b);
    if (b->win.wanted == 0)
        event_del(b->ev_ack);
}

static void bus_ack_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;

    bus_flush_acks(b, true);
}

static bool bus_pub_ready(const struct bus *b)
{
    return bus_can_send(b) && b->confirm_on && !b->blocked &&
           (b->state == BUS_READY || b->state == BUS_CLOSING);
}

/* Sends what the outbox holds, corked: the frames of every message go to
 * the broker in as few segments as the kernel can make, which is one
 * wakeup of the broker for a vtpm.create.start and .end sent together. */
static void bus_pump(struct bus *b)
{
    struct bus_msg *m;
    bool any = false;
    int fd = -1, on = 1, off = 0;

    if (bus_pub_ready(b) && bus_outbox_peek(&b->ob) != NULL) {
        fd = amqp_get_sockfd(b->conn);
        if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) < 0)
            fd = -1;
    }

    while (bus_pub_ready(b) && (m = bus_outbox_peek(&b->ob)) != NULL) {
        amqp_basic_properties_t p;
        amqp_bytes_t body = {m->len, m->body};
        int r;

        memset(&p, 0, sizeof(p));
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                   AMQP_BASIC_DELIVERY_MODE_FLAG;
        p.content_type = amqp_cstring_bytes("application/json");
        p.content_encoding = amqp_cstring_bytes("utf-8");
        p.delivery_mode = 2; /* persistent */
        r = amqp_basic_publish(b->conn, BUS_CH_PUBLISH, bytes_of(m->exchange),
                               bytes_of(m->routing_key), 0, 0, &p, body);
        if (!bus_sent(b, r, "basic.publish"))
            return; /* stays queued: sent again after the reconnect */
        bus_outbox_sent(&b->ob);
        b->st.published++;
        any = true;
    }
    if (fd >= 0 && b->conn && amqp_get_sockfd(b->conn) == fd)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
    if (any)
        bus_after_send(b);
}

static void bus_pump_cb(evutil_socket_t fd, short what, void *arg)
{
    bus_pump(arg);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

static void bus_close_check(struct bus *b)
{
    amqp_connection_close_t c;

    if (b->state != BUS_CLOSING || b->close_sent || b->dead || !b->conn)
        return;
    if (!b->cancel_done || bus_outbox_count(&b->ob) > 0)
        return;
    bus_flush_acks(b, true);
    memset(&c, 0, sizeof(c));
    c.reply_code = AMQP_REPLY_SUCCESS;
    c.reply_text = amqp_cstring_bytes("vtpmd stopping");
    b->close_sent = true;
    bus_send_method(b, 0, AMQP_CONNECTION_CLOSE_METHOD, &c);
}

static void bus_stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;

    log_warn("amqp stop: gave up waiting for the broker after %" PRIu64
             " ms unconfirmed=%zu",
             b->set.connect_timeout_ms, bus_outbox_count(&b->ob));
    bus_flush_acks(b, true);
    bus_kill(b);
}

/* ------------------------------------------------------------------ */
/* Caught-up probes                                                    */

static void bus_probe_send(struct bus *b)
{
    amqp_queue_declare_t q;

    memset(&q, 0, sizeof(q));
    q.queue = bytes_of(b->set.queue);
    q.passive = 1;
    q.arguments = amqp_empty_table;
    bus_rpc(b, BUS_CH_CONSUME, RPC_PROBE, AMQP_QUEUE_DECLARE_METHOD, &q,
            AMQP_QUEUE_DECLARE_OK_METHOD,
            xstrdup("queue.declare passive (caught-up probe)"));
}

static void bus_probe_kick(struct bus *b)
{
    uint64_t now = vtime_now_ms();

    if (b->state != BUS_READY || b->probe_phase != 0 || b->dead)
        return;
    if (now - b->last_cycle_start < BUS_PROBE_MIN_GAP_MS && b->cycle > 0) {
        if (!event_pending(b->ev_probe, EV_TIMEOUT, NULL))
            timer_add_ms(b->ev_probe, BUS_PROBE_MIN_GAP_MS - (now - b->last_cycle_start));
        return;
    }
    b->cycle++;
    b->last_cycle_start = b->probe_a_sent = now;
    b->probe_phase = 1;
    bus_probe_send(b);
}

static void bus_probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    bus_probe_kick(arg);
}

static void bus_probe_reply(struct bus *b, const amqp_queue_declare_ok_t *ok)
{
    if (b->probe_phase == 1) {
        b->probe_a_count = ok->message_count;
        b->probe_phase = 2;
        /* Every message the broker dispatched before it counted has been
         * written to us before the reply to this second request. */
        bus_probe_send(b);
        return;
    }
    if (b->probe_phase != 2)
        return;
    b->probe_phase = 0;
    b->verdict = b->probe_a_count == 0 && b->in_flight == 0 && b->state == BUS_READY;
    b->verdict_at = b->probe_a_sent;
    b->verdict_epoch = b->epoch;
    b->verdict_valid = true;
    log_debug("amqp probe cycle=%" PRIu64 " queued=%" PRIu32 " in_flight=%zu caught_up=%d",
              b->cycle, b->probe_a_count, b->in_flight, b->verdict);
    bus_answer_waiters(b, false, b->verdict);
    if (b->waiters)
        bus_probe_kick(b);
}

bool bus_caught_up(struct bus *b)
{
    if (b->state != BUS_READY || b->dead || b->in_flight > 0)
        return false;
    if (b->verdict_valid && b->verdict_epoch == b->epoch &&
        vtime_now_ms() - b->verdict_at < BUS_VERDICT_FRESH_MS)
        return b->verdict;
    bus_probe_kick(b);
    return false;
}

void bus_probe(struct bus *b, void (*cb)(bool caught_up, void *arg), void *arg)
{
    struct bus_waiter *w = xcalloc(1, sizeof(*w));

    w->cb = cb;
    w->arg = arg;
    w->min_cycle = b->cycle + 1;
    w->next = b->waiters;
    b->waiters = w;
    if (b->state != BUS_READY || b->dead) {
        event_active(b->ev_defer, EV_TIMEOUT, 1);
        return;
    }
    bus_probe_kick(b);
}

/* ------------------------------------------------------------------ */
/* Topology                                                            */

static void bus_declare_exchange(struct bus *b, amqp_channel_t ch, const char *name,
                                 bool durable, const char *why)
{
    amqp_exchange_declare_t x;
    char *what;

    memset(&x, 0, sizeof(x));
    x.exchange = bytes_of(name);
    x.type = amqp_cstring_bytes("topic");
    x.durable = durable;
    x.auto_delete = 0;
    x.arguments = amqp_empty_table;
    xasprintf(&what, "exchange.declare exchange=%s type=topic durable=%s auto_delete=false (%s)",
              name, durable ? "true" : "false", why);
    bus_rpc(b, ch, RPC_DECLARE, AMQP_EXCHANGE_DECLARE_METHOD, &x,
            AMQP_EXCHANGE_DECLARE_OK_METHOD, what);
}

static void bus_send_consume(struct bus *b)
{
    amqp_basic_consume_t c;
    char *what;

    memset(&c, 0, sizeof(c));
    c.queue = bytes_of(b->set.queue);
    c.consumer_tag = amqp_empty_bytes; /* the broker names it */
    c.no_ack = 0;
    /* One vtpmd per queue: a second one (a mistake) is refused instead
     * of silently taking half of the events. */
    c.exclusive = 1;
    c.arguments = amqp_empty_table;
    xasprintf(&what, "basic.consume queue=%s exclusive=true", b->set.queue);
    bus_rpc(b, BUS_CH_CONSUME, RPC_CONSUME, AMQP_BASIC_CONSUME_METHOD, &c,
            AMQP_BASIC_CONSUME_OK_METHOD, what);
}

/* The topology, one synchronous method at a time; each reply calls this
 * again (a reconnect after a broker restart finds Nova's non-durable
 * exchange and its bindings gone, so everything is declared every time). */
static void bus_declare_next(struct bus *b)
{
    const struct bus_settings *s = &b->set;
    size_t nbind = s->topics.n * 2;
    size_t i = b->step++;
    char *what;

    if (i-- == 0) {
        bus_declare_exchange(b, BUS_CH_CONSUME, s->exchange, false,
                             "oslo.messaging's flags, as Nova declares it");
        return;
    }
    if (s->dlx && i-- == 0) {
        bus_declare_exchange(b, BUS_CH_CONSUME, s->dlx, true, "dead-letter exchange");
        return;
    }
    if (i-- == 0) {
        amqp_queue_declare_t q;
        amqp_table_entry_t arg;

        memset(&q, 0, sizeof(q));
        q.queue = bytes_of(s->queue);
        q.durable = 1;
        q.arguments = amqp_empty_table;
        if (s->dlx) {
            arg.key = amqp_cstring_bytes("x-dead-letter-exchange");
            arg.value.kind = AMQP_FIELD_KIND_UTF8;
            arg.value.value.bytes = bytes_of(s->dlx);
            q.arguments.num_entries = 1;
            q.arguments.entries = &arg;
        }
        xasprintf(&what, "queue.declare queue=%s durable=true x-dead-letter-exchange=%s",
                  s->queue, s->dlx ? s->dlx : "(none)");
        bus_rpc(b, BUS_CH_CONSUME, RPC_DECLARE, AMQP_QUEUE_DECLARE_METHOD, &q,
                AMQP_QUEUE_DECLARE_OK_METHOD, what);
        return;
    }
    if (i < nbind) {
        amqp_queue_bind_t q;
        char *key;

        xasprintf(&key, "%s.%s", s->topics.v[i / 2], i % 2 ? "error" : "info");
        memset(&q, 0, sizeof(q));
        q.queue = bytes_of(s->queue);
        q.exchange = bytes_of(s->exchange);
        q.routing_key = bytes_of(key);
        q.arguments = amqp_empty_table;
        xasprintf(&what, "queue.bind queue=%s exchange=%s routing_key=%s", s->queue,
                  s->exchange, key);
        bus_rpc(b, BUS_CH_CONSUME, RPC_DECLARE, AMQP_QUEUE_BIND_METHOD, &q,
                AMQP_QUEUE_BIND_OK_METHOD, what);
        free(key);
        return;
    }
    i -= nbind;
    if (i-- == 0) {
        amqp_basic_qos_t q = {.prefetch_size = 0, .prefetch_count = (uint16_t)s->prefetch,
                              .global = 0};

        xasprintf(&what, "basic.qos prefetch=%u", s->prefetch);
        bus_rpc(b, BUS_CH_CONSUME, RPC_QOS, AMQP_BASIC_QOS_METHOD, &q,
                AMQP_BASIC_QOS_OK_METHOD, what);
        return;
    }
    if (i-- == 0) {
        bus_declare_exchange(b, BUS_CH_PUBLISH, s->status_exchange, false,
                             "status exchange, oslo.messaging's flags");
        return;
    }
    if (i-- == 0) {
        amqp_confirm_select_t c = {.nowait = 0};

        bus_rpc(b, BUS_CH_PUBLISH, RPC_CONFIRM, AMQP_CONFIRM_SELECT_METHOD, &c,
                AMQP_CONFIRM_SELECT_OK_METHOD, xstrdup("confirm.select"));
        return;
    }
    bus_set_state(b, BUS_CONSUMING);
    bus_send_consume(b);
}

static void bus_ready(struct bus *b)
{
    event_del(b->ev_deadline);
    b->ready_at = vtime_now_ms();
    b->was_ready = true;
    b->ack_batch = ack_batch_for(b->set.prefetch);
    log_info("amqp ready url=%s queue=%s exchange=%s prefetch=%u heartbeat=%us",
             bus_url(b), b->set.queue, b->set.exchange, b->set.prefetch, b->heartbeat_s);
    bus_set_state(b, BUS_READY);
    bus_pump(b);
}

/* ------------------------------------------------------------------ */
/* Login                                                               */

static bool mech_offered(amqp_bytes_t list, const char *mech)
{
    size_t ml = strlen(mech);
    const char *p = list.bytes, *end = p + list.len;

    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t l = (size_t)((sp ? sp : end) - p);

        if (l == ml && memcmp(p, mech, ml) == 0)
            return true;
        p += l + 1;
    }
    return false;
}

static amqp_table_entry_t entry_bool(const char *k, bool v)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e.value.value.boolean = v;
    return e;
}

static amqp_table_entry_t entry_str(const char *k, const char *v)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

static void bus_login_start(struct bus *b, const amqp_connection_start_t *s)
{
    amqp_table_entry_t caps[5], props[5];
    amqp_connection_start_ok_t ok;
    const char *user = b->ci.user, *pass = b->ci.password;
    size_t ul = strlen(user), pl = strlen(pass);
    char *resp autofree = xmalloc(ul + pl + 2);
    char *name autofree = NULL;

    if (s->version_major != 0 || s->version_minor != 9) {
        bus_fail(b, LOG_LEVEL_ERROR, "the broker speaks AMQP %d-%d, not 0-9-1",
                 s->version_major, s->version_minor);
        return;
    }
    if (!mech_offered(s->mechanisms, "PLAIN")) {
        bus_fail(b, LOG_LEVEL_ERROR, "the broker does not offer SASL PLAIN (it offers '%.*s')",
                 (int)s->mechanisms.len, (const char *)s->mechanisms.bytes);
        return;
    }
    /* Capabilities: a refused login gets a connection.close with the
     * reason instead of a bare socket close; connection.blocked holds
     * publishes during a broker alarm; the broker tells us when it
     * cancels the consumer (queue deleted). */
    caps[0] = entry_bool("authentication_failure_close", true);
    caps[1] = entry_bool("connection.blocked", true);
    caps[2] = entry_bool("consumer_cancel_notify", true);
    caps[3] = entry_bool("publisher_confirms", true);
    caps[4] = entry_bool("basic.nack", true);
    xasprintf(&name, "vtpmd:%s", b->set.host);
    props[0] = entry_str("product", "vtpmd");
    props[1] = entry_str("version", PACKAGE_VERSION);
    props[2] = entry_str("platform", "C, librabbitmq-c on libevent");
    props[3] = entry_str("connection_name", name);
    props[4].key = amqp_cstring_bytes("capabilities");
    props[4].value.kind = AMQP_FIELD_KIND_TABLE;
    props[4].value.value.table.num_entries = 5;
    props[4].value.value.table.entries = caps;

    resp[0] = '\0';
    memcpy(resp + 1, user, ul);
    resp[ul + 1] = '\0';
    memcpy(resp + ul + 2, pass, pl);
    ok.client_properties.num_entries = 5;
    ok.client_properties.entries = props;
    ok.mechanism = amqp_cstring_bytes("PLAIN");
    ok.response.bytes = resp;
    ok.response.len = ul + pl + 2;
    ok.locale = amqp_cstring_bytes("en_US");
    bus_send_method(b, 0, AMQP_CONNECTION_START_OK_METHOD, &ok);
    explicit_bzero(resp, ul + pl + 2);
}

static void bus_login_tune(struct bus *b, const amqp_connection_tune_t *t)
{
    amqp_connection_tune_ok_t ok;
    amqp_connection_open_t o;
    int channel_max = t->channel_max, frame_max = BUS_FRAME_MAX;
    unsigned hb = b->set.heartbeat_s;
    int r;

    if (t->channel_max != 0 && t->channel_max < BUS_NCHAN - 1) {
        bus_fail(b, LOG_LEVEL_ERROR, "the broker allows %u channels, vtpmd needs %d",
                 t->channel_max, BUS_NCHAN - 1);
        return;
    }
    if (t->frame_max != 0 && t->frame_max < (uint32_t)frame_max)
        frame_max = (int)t->frame_max;
    /* 0 on our side turns heartbeats off; otherwise the smaller one. */
    if (hb && t->heartbeat && t->heartbeat < hb)
        hb = t->heartbeat;
    /* amqp_tune_connection asserts it is between frames; nothing else may
     * arrive before our tune-ok, so this only guards against a rogue peer. */
    if (!amqp_release_buffers_ok(b->conn)) {
        bus_fail(b, LOG_LEVEL_ERROR, "protocol error: data after connection.tune");
        return;
    }
    r = amqp_tune_connection(b->conn, channel_max, frame_max, (int)hb);
    if (r != AMQP_STATUS_OK) {
        bus_fail(b, LOG_LEVEL_ERROR, "cannot tune the connection: %s", amqp_error_string2(r));
        return;
    }
    b->heartbeat_s = hb;
    ok.channel_max = (uint16_t)channel_max;
    ok.frame_max = (uint32_t)frame_max;
    ok.heartbeat = (uint16_t)hb;
    if (!bus_send_method(b, 0, AMQP_CONNECTION_TUNE_OK_METHOD, &ok))
        return;
    memset(&o, 0, sizeof(o));
    o.virtual_host = bytes_of(b->ci.vhost);
    o.capabilities = amqp_empty_bytes;
    o.insist = 1;
    if (!bus_send_method(b, 0, AMQP_CONNECTION_OPEN_METHOD, &o))
        return;
    if (hb) {
        uint64_t period = hb * 1000ull / 2;
        struct timeval tv = vtime_tv_ms(period < 500 ? 500 : period);

        event_add(b->ev_heartbeat, &tv);
    }
}

static void bus_open_channels(struct bus *b)
{
    amqp_channel_open_t o = {.out_of_band = amqp_empty_bytes};

    bus_set_state(b, BUS_OPENING);
    bus_rpc(b, BUS_CH_CONSUME, RPC_CHANNEL_OPEN, AMQP_CHANNEL_OPEN_METHOD, &o,
            AMQP_CHANNEL_OPEN_OK_METHOD, xstrdup("channel.open channel=1"));
    bus_rpc(b, BUS_CH_PUBLISH, RPC_CHANNEL_OPEN, AMQP_CHANNEL_OPEN_METHOD, &o,
            AMQP_CHANNEL_OPEN_OK_METHOD, xstrdup("channel.open channel=2"));
}

static void bus_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;
    uint64_t now = vtime_now_ms(), hb = b->heartbeat_s * 1000ull;

    if (!bus_can_send(b) || hb == 0)
        return;
    if (now - b->last_rx > 2 * hb) {
        bus_fail(b, LOG_LEVEL_WARNING,
                 "no data from the broker for %" PRIu64 " ms (two heartbeat intervals): peer dead",
                 now - b->last_rx);
        return;
    }
    if (now - b->last_tx >= hb / 2) {
        amqp_frame_t f;

        memset(&f, 0, sizeof(f));
        f.frame_type = AMQP_FRAME_HEARTBEAT;
        f.channel = 0;
        if (bus_sent(b, amqp_send_frame(b->conn, &f), "heartbeat"))
            bus_after_send(b);
    }
}

/* ------------------------------------------------------------------ */
/* Receiving                                                           */

static void bus_deliver(struct bus *b, const void *body, size_t len)
{
    struct bus_delivery *d;

    b->in.active = false;
    if (b->state != BUS_READY) {
        /* Stopping: leave it unacknowledged; the broker requeues it when
         * the connection closes. */
        return;
    }
    b->st.delivered++;
    d = xmalloc(sizeof(*d));
    d->epoch = b->epoch;
    d->tag = b->in.tag;
    b->in_flight++;
    if (b->cb.deliver == NULL) {
        bus_ack(b, d);
        return;
    }
    b->cb.deliver(d, body, len, b->in.has_ctype ? b->in.ctype : NULL,
                  b->in.redelivered, b->cb_arg);
}

static void bus_reject_oversized(struct bus *b)
{
    amqp_basic_reject_t r = {.delivery_tag = b->in.tag, .requeue = 0};

    b->in.active = false;
    log_warn("amqp delivery rejected: body of %" PRIu64
             " bytes exceeds notifications.max_message_size=%" PRIu64 " tag=%" PRIu64,
             b->in.size, b->set.max_message_size, b->in.tag);
    if (bus_ackwin_complete(&b->win, b->in.tag, false) == 0 &&
        bus_send_method(b, BUS_CH_CONSUME, AMQP_BASIC_REJECT_METHOD, &r))
        b->st.rejected++;
}

static void bus_content_header(struct bus *b, const amqp_frame_t *f)
{
    const amqp_basic_properties_t *p = f->payload.properties.decoded;

    if (f->channel != BUS_CH_CONSUME || !b->in.active || b->in.have_header)
        return; /* basic.return content or stray: not ours */
    b->in.have_header = true;
    b->in.size = f->payload.properties.body_size;
    b->in.got = 0;
    b->in.has_ctype = false;
    if (p && (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)) {
        size_t l = p->content_type.len < sizeof(b->in.ctype) - 1
                       ? p->content_type.len
                       : sizeof(b->in.ctype) - 1;

        memcpy(b->in.ctype, p->content_type.bytes, l);
        b->in.ctype[l] = '\0';
        b->in.has_ctype = true;
    }
    b->in.skip = b->in.size > b->set.max_message_size;
    if (b->in.size == 0)
        bus_deliver(b, "", 0);
}

static void bus_content_body(struct bus *b, const amqp_frame_t *f)
{
    const amqp_bytes_t *frag = &f->payload.body_fragment;

    if (f->channel != BUS_CH_CONSUME || !b->in.active || !b->in.have_header)
        return;
    if (frag->len > b->in.size - b->in.got) {
        bus_fail(b, LOG_LEVEL_WARNING, "protocol error: body longer than announced tag=%" PRIu64,
                 b->in.tag);
        return;
    }
    if (b->in.skip) {
        b->in.got += frag->len;
        if (b->in.got == b->in.size)
            bus_reject_oversized(b);
        return;
    }
    if (b->in.got == 0 && frag->len == b->in.size) {
        /* The usual case: one frame, handed over without a copy. */
        bus_deliver(b, frag->bytes, frag->len);
        return;
    }
    if (b->in.cap < b->in.size) {
        b->in.buf = xrealloc(b->in.buf, b->in.size);
        b->in.cap = b->in.size;
    }
    memcpy(b->in.buf + b->in.got, frag->bytes, frag->len);
    b->in.got += frag->len;
    if (b->in.got == b->in.size)
        bus_deliver(b, b->in.buf, b->in.size);
}

static void bus_on_deliver(struct bus *b, amqp_channel_t ch, const amqp_basic_deliver_t *d)
{
    if (ch != BUS_CH_CONSUME || b->in.active) {
        bus_fail(b, LOG_LEVEL_WARNING, "protocol error: basic.deliver on channel %u", ch);
        return;
    }
    if (bus_ackwin_push(&b->win, d->delivery_tag) < 0) {
        bus_fail(b, LOG_LEVEL_WARNING,
                 "protocol error: delivery tag %" PRIu64 " out of order (expected %" PRIu64 ")",
                 d->delivery_tag, b->win.next);
        return;
    }
    b->in.active = true;
    b->in.have_header = false;
    b->in.skip = false;
    b->in.tag = d->delivery_tag;
    b->in.redelivered = d->redelivered;
}

static const char *topology_hint(const struct bus_rpc *r, uint16_t code)
{
    if (code != AMQP_PRECONDITION_FAILED || r == NULL)
        return "";
    if (strncmp(r->what, "exchange.declare", 16) == 0)
        return "; the exchange exists with other flags: delete it (rabbitmqadmin "
               "delete exchange, or the management UI) or fix whoever declared it";
    if (strncmp(r->what, "queue.declare", 13) == 0)
        return "; the queue exists with other arguments (a queue cannot be "
               "re-declared with a different x-dead-letter-exchange): delete it "
               "(rabbitmqctl delete_queue) or set the argument with a broker policy";
    return "";
}

static void bus_on_channel_close(struct bus *b, amqp_channel_t ch,
                                 const amqp_channel_close_t *c)
{
    const struct bus_rpc *r = ch < BUS_NCHAN ? b->fifo[ch].head : NULL;
    bool topology = r && (r->kind == RPC_DECLARE || r->kind == RPC_CONSUME);
    amqp_channel_close_ok_t ok = {.dummy = 0};

    bus_send_method(b, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    bus_fail(b, topology ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING,
             "the broker closed channel %u%s%s: %u %.*s%s", ch,
             r ? " after " : "", r ? r->what : "", c->reply_code,
             (int)c->reply_text.len, (const char *)c->reply_text.bytes,
             topology_hint(r, c->reply_code));
}

static void bus_on_connection_close(struct bus *b, const amqp_connection_close_t *c)
{
    amqp_connection_close_ok_t ok = {.dummy = 0};
    bool refused = c->reply_code == AMQP_ACCESS_REFUSED && b->state == BUS_LOGIN;

    bus_send_method(b, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    if (refused)
        bus_fail(b, LOG_LEVEL_ERROR, "login refused by the broker (check the user and "
                 "password in amqp.urls): %.*s",
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    else
        bus_fail(b, b->state == BUS_LOGIN || b->state == BUS_OPENING ? LOG_LEVEL_ERROR
                                                                     : LOG_LEVEL_WARNING,
                 "the broker closed the connection: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
}

static void bus_on_rpc_reply(struct bus *b, amqp_channel_t ch, const amqp_method_t *m)
{
    struct bus_rpc *r = ch < BUS_NCHAN ? b->fifo[ch].head : NULL;
    enum bus_rpc_kind kind;

    if (r == NULL || r->reply != m->id) {
        bus_fail(b, LOG_LEVEL_WARNING, "protocol error: unexpected %s on channel %u",
                 amqp_method_name(m->id), ch);
        return;
    }
    b->fifo[ch].head = r->next;
    if (b->fifo[ch].head == NULL)
        b->fifo[ch].tail = &b->fifo[ch].head;
    kind = r->kind;
    free(r->what);
    free(r);

    switch (kind) {
    case RPC_CHANNEL_OPEN:
        if (++b->chan_open == BUS_NCHAN - 1) {
            bus_set_state(b, BUS_DECLARING);
            bus_declare_next(b);
        }
        break;
    case RPC_DECLARE:
        if (b->state == BUS_DECLARING)
            bus_declare_next(b);
        break;
    case RPC_QOS:
        if (b->state == BUS_DECLARING) {
            bus_declare_next(b);
        } else if (b->state == BUS_READY && b->reconsume && b->consumer_tag) {
            /* RabbitMQ applies a per-consumer prefetch to consumers
             * started after basic.qos: consume again. Deliveries already
             * received stay valid (same channel, same tags). */
            amqp_basic_cancel_t c;

            memset(&c, 0, sizeof(c));
            c.consumer_tag = bytes_of(b->consumer_tag);
            bus_rpc(b, BUS_CH_CONSUME, RPC_RECANCEL, AMQP_BASIC_CANCEL_METHOD, &c,
                    AMQP_BASIC_CANCEL_OK_METHOD, xstrdup("basic.cancel (new prefetch)"));
        }
        break;
    case RPC_RECANCEL:
        b->reconsume = false;
        if (b->state == BUS_READY)
            bus_send_consume(b);
        break;
    case RPC_CONFIRM:
        b->confirm_on = true;
        if (b->state == BUS_DECLARING)
            bus_declare_next(b);
        break;
    case RPC_CONSUME: {
        const amqp_basic_consume_ok_t *ok = m->decoded;

        free(b->consumer_tag);
        b->consumer_tag = bytes_dup(ok->consumer_tag);
        if (b->state == BUS_CONSUMING)
            bus_ready(b);
        break;
    }
    case RPC_CANCEL:
        b->cancel_done = true;
        bus_flush_acks(b, true);
        bus_close_check(b);
        break;
    case RPC_PROBE:
        bus_probe_reply(b, m->decoded);
        break;
    }
}

static void bus_on_method(struct bus *b, amqp_channel_t ch, const amqp_method_t *m)
{
    switch (m->id) {
    case AMQP_CONNECTION_START_METHOD:
        if (b->state == BUS_LOGIN && ch == 0)
            bus_login_start(b, m->decoded);
        else
            bus_fail(b, LOG_LEVEL_WARNING, "protocol error: unexpected connection.start");
        return;
    case AMQP_CONNECTION_TUNE_METHOD:
        if (b->state == BUS_LOGIN && ch == 0)
            bus_login_tune(b, m->decoded);
        else
            bus_fail(b, LOG_LEVEL_WARNING, "protocol error: unexpected connection.tune");
        return;
    case AMQP_CONNECTION_OPEN_OK_METHOD:
        if (b->state == BUS_LOGIN && ch == 0)
            bus_open_channels(b);
        return;
    case AMQP_CONNECTION_CLOSE_METHOD:
        bus_on_connection_close(b, m->decoded);
        return;
    case AMQP_CONNECTION_CLOSE_OK_METHOD:
        if (b->close_sent)
            bus_kill(b); /* graceful end of bus_stop() or a reload */
        return;
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        const amqp_connection_blocked_t *bl = m->decoded;

        b->blocked = true;
        log_warn("amqp broker blocks publishing (resource alarm): %.*s; status "
                 "messages wait in the outbox",
                 (int)bl->reason.len, (const char *)bl->reason.bytes);
        return;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        b->blocked = false;
        log_info("amqp broker unblocked publishing outbox=%zu", bus_outbox_count(&b->ob));
        bus_pump(b);
        return;
    case AMQP_CHANNEL_CLOSE_METHOD:
        bus_on_channel_close(b, ch, m->decoded);
        return;
    case AMQP_BASIC_DELIVER_METHOD:
        bus_on_deliver(b, ch, m->decoded);
        return;
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD: {
        bool nack = m->id == AMQP_BASIC_NACK_METHOD;
        uint64_t tag = nack ? ((amqp_basic_nack_t *)m->decoded)->delivery_tag
                            : ((amqp_basic_ack_t *)m->decoded)->delivery_tag;
        bool multiple = nack ? ((amqp_basic_nack_t *)m->decoded)->multiple
                             : ((amqp_basic_ack_t *)m->decoded)->multiple;
        size_t n;

        if (ch != BUS_CH_PUBLISH) {
            bus_fail(b, LOG_LEVEL_WARNING, "protocol error: %s on channel %u",
                     amqp_method_name(m->id), ch);
            return;
        }
        n = bus_outbox_confirm(&b->ob, tag, multiple, nack ? -EIO : 0);
        if (nack) {
            b->st.nacked += n;
            log_warn("amqp broker nacked status messages count=%zu", n);
        } else {
            b->st.confirmed += n;
        }
        bus_close_check(b);
        return;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        if (b->state == BUS_CLOSING)
            return;
        bus_fail(b, LOG_LEVEL_WARNING,
                 "the broker cancelled the consumer (queue %s deleted?); declaring it again",
                 b->set.queue);
        return;
    case AMQP_BASIC_RETURN_METHOD:
        return; /* never mandatory: cannot happen */
    default:
        bus_on_rpc_reply(b, ch, m);
        return;
    }
}

static void bus_on_frame(struct bus *b, const amqp_frame_t *f)
{
    switch (f->frame_type) {
    case AMQP_FRAME_METHOD:
        bus_on_method(b, f->channel, &f->payload.method);
        break;
    case AMQP_FRAME_HEADER:
        bus_content_header(b, f);
        break;
    case AMQP_FRAME_BODY:
        bus_content_body(b, f);
        break;
    case AMQP_FRAME_HEARTBEAT:
        break;
    case BUS_PSEUDOFRAME_PROTOCOL_HEADER:
        bus_fail(b, LOG_LEVEL_ERROR, "the broker refused AMQP 0-9-1 (it answered %d-%d-%d)",
                 f->payload.protocol_header.transport_high,
                 f->payload.protocol_header.protocol_version_major,
                 f->payload.protocol_header.protocol_version_minor);
        break;
    default:
        break;
    }
}

static void bus_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;
    struct timeval zero = {0, 0};
    int budget = BUS_READ_BUDGET;
    bool got = (what & EV_READ) != 0, first = true;

    while (b->conn && !b->dead) {
        amqp_frame_t f;
        int r;

        /* Once librabbitmq's buffer is empty, the loop's level-triggered
         * readiness says whether the socket holds more: asking it here
         * would cost a recv() and a poll() per wakeup. (Over TLS too:
         * OpenSSL reads one record at a time and hands all of it over,
         * so it keeps nothing the socket would not signal.) */
        if (!first && !amqp_data_in_buffer(b->conn) && !amqp_frames_enqueued(b->conn))
            break;
        first = false;
        r = amqp_simple_wait_frame_noblock(b->conn, &f, &zero);

        if (r == AMQP_STATUS_TIMEOUT)
            break; /* nothing buffered, nothing readable */
        if (r != AMQP_STATUS_OK) {
            bus_fail(b, LOG_LEVEL_WARNING, "%s", amqp_error_string2(r));
            break;
        }
        got = true;
        bus_on_frame(b, &f);
        /* Nothing of this frame is referenced any more (assembly copies
         * what it keeps); without this the channel's pool only grows
         * while a backlog streams in. */
        if (b->conn)
            amqp_maybe_release_buffers_on_channel(b->conn, f.channel);
        if (--budget == 0) {
            if (b->conn && !b->dead)
                event_active(b->ev_io, EV_TIMEOUT, 1);
            break;
        }
    }
    if (got)
        b->last_rx = vtime_now_ms();
}

/* ------------------------------------------------------------------ */
/* Connecting                                                          */

static void bus_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;

    bus_fail(b, LOG_LEVEL_WARNING, "timed out after %" PRIu64 " ms (amqp.connect_timeout)",
             b->set.connect_timeout_ms);
}

/* The socket is connected (and TLS done): the AMQP handshake runs on the
 * loop from here. */
static void bus_login_begin(struct bus *b)
{
    int fd = amqp_get_sockfd(b->conn), r;

    bus_set_state(b, BUS_LOGIN);
    b->ev_io = event_new(b->base, fd, EV_READ | EV_PERSIST, bus_io_cb, b);
    if (b->ev_io == NULL || event_add(b->ev_io, NULL) < 0) {
        bus_fail(b, LOG_LEVEL_ERROR, "cannot watch the socket");
        return;
    }
    b->last_rx = b->last_tx = vtime_now_ms();
    r = amqp_send_header(b->conn);
    if (bus_sent(b, r, "protocol header"))
        bus_after_send(b);
}

static void bus_tcp_connect_next(struct bus *b);

static void bus_tcp_connected(struct bus *b)
{
    amqp_socket_t *s;

    b->conn = amqp_new_connection();
    if (b->conn == NULL)
        abort(); /* out of memory: xmalloc's policy */
    s = amqp_tcp_socket_new(b->conn);
    if (s == NULL)
        abort();
    amqp_tcp_socket_set_sockfd(s, b->fd);
    b->fd = -1; /* librabbitmq owns it now */
    bus_login_begin(b);
}

static void bus_connect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bus *b = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    event_free(b->ev_connect);
    b->ev_connect = NULL;
    if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        b->last_errno = err;
        close(b->fd);
        b->fd = -1;
        b->addr_cur = b->addr_cur->ai_next;
        bus_tcp_connect_next(b);
        return;
    }
    bus_tcp_connected(b);
}

static void bus_tcp_connect_next(struct bus *b)
{
    static const int one = 1;

    for (; b->addr_cur; b->addr_cur = b->addr_cur->ai_next) {
        struct evutil_addrinfo *ai = b->addr_cur;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);

        if (fd < 0) {
            b->last_errno = errno;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        b->fd = fd;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            bus_tcp_connected(b);
            return;
        }
        if (errno == EINPROGRESS) {
            bus_set_state(b, BUS_CONNECTING);
            b->ev_connect = event_new(b->base, fd, EV_WRITE, bus_connect_cb, b);
            event_add(b->ev_connect, NULL);
            return;
        }
        b->last_errno = errno;
        close(fd);
        b->fd = -1;
    }
    bus_fail(b, LOG_LEVEL_WARNING, "cannot connect: %s", strerror(b->last_errno));
}

static void bus_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct bus_dns *d = arg, **pp;
    struct bus *b = d->b;
    bool cancelled = d->cancelled;

    if (b) {
        for (pp = &b->dns_list; *pp; pp = &(*pp)->next) {
            if (*pp == d) {
                *pp = d->next;
                break;
            }
        }
        b->dns_alive--;
    }
    free(d);
    if (b == NULL || cancelled || result == EVUTIL_EAI_CANCEL) {
        if (res)
            evutil_freeaddrinfo(res);
        if (b && b->stop_requested && b->dns_alive == 0 && b->state == BUS_CLOSING &&
            b->conn == NULL && !b->dead)
            bus_finish_stop(b);
        return;
    }
    if (result != 0) {
        bus_fail(b, LOG_LEVEL_WARNING, "cannot resolve %s: %s", b->ci.host,
                 evutil_gai_strerror(result));
        return;
    }
    b->addrs = b->addr_cur = res;
    b->last_errno = ECONNREFUSED;
    bus_tcp_connect_next(b);
}

static void bus_resolve(struct bus *b)
{
    struct evutil_addrinfo hints;
    struct bus_dns *d;
    struct evdns_getaddrinfo_request *req;
    char port[16];

    if (b->dns == NULL) {
        b->dns = evdns_base_new(b->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (b->dns == NULL) {
            bus_fail(b, LOG_LEVEL_ERROR, "cannot set up the DNS resolver");
            return;
        }
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof(port), "%d", b->ci.port);
    bus_set_state(b, BUS_RESOLVING);
    d = xcalloc(1, sizeof(*d));
    d->b = b;
    d->next = b->dns_list;
    b->dns_list = d;
    b->dns_alive++;
    /* Numeric hosts and /etc/hosts entries answer at once, from inside
     * this call (then it returns NULL and d is gone). */
    req = evdns_getaddrinfo(b->dns, b->ci.host, port, &hints, bus_dns_cb, d);
    if (req)
        d->req = req;
}

/* amqps://: librabbitmq's SSL socket resolves, connects and handshakes in
 * one blocking call, bounded by amqp.connect_timeout. */
static void bus_tls_open(struct bus *b)
{
    amqp_socket_t *s;
    struct timeval tv = vtime_tv_ms(b->set.connect_timeout_ms);
    int r;

    bus_set_state(b, BUS_TLS);
    b->conn = amqp_new_connection();
    if (b->conn == NULL)
        abort();
    s = amqp_ssl_socket_new(b->conn);
    if (s == NULL) {
        bus_fail(b, LOG_LEVEL_ERROR, "cannot create a TLS socket");
        return;
    }
    amqp_ssl_socket_set_verify_peer(s, b->set.verify_peer);
    amqp_ssl_socket_set_verify_hostname(s, b->set.verify_hostname);
    amqp_ssl_socket_set_ssl_versions(s, AMQP_TLSv1_2, AMQP_TLSvLATEST);
    if (b->set.ca_file) {
        if (amqp_ssl_socket_set_cacert(s, b->set.ca_file) != AMQP_STATUS_OK) {
            bus_fail(b, LOG_LEVEL_ERROR, "cannot load amqp.tls.ca_file %s", b->set.ca_file);
            return;
        }
    } else if (SSL_CTX_set_default_verify_paths(amqp_ssl_socket_get_context(s)) != 1) {
        bus_fail(b, LOG_LEVEL_ERROR, "cannot load the system's CA certificates");
        return;
    }
    if (b->set.cert_file &&
        amqp_ssl_socket_set_key(s, b->set.cert_file, b->set.key_file) != AMQP_STATUS_OK) {
        bus_fail(b, LOG_LEVEL_ERROR, "cannot load amqp.tls.cert_file %s / key_file %s",
                 b->set.cert_file, b->set.key_file);
        return;
    }
    r = amqp_socket_open_noblock(s, b->ci.host, b->ci.port, &tv);
    if (r != AMQP_STATUS_OK) {
        bus_fail(b, r == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
                            r == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED
                        ? LOG_LEVEL_ERROR
                        : LOG_LEVEL_WARNING,
                 "TLS connection failed: %s", amqp_error_string2(r));
        return;
    }
    bus_login_begin(b);
}

static void bus_connect(struct bus *b)
{
    const char *url = b->set.urls.v[b->url_index];
    const char *vh;

    if (b->attempted)
        b->st.reconnects++;
    b->attempted = true;
    b->url_buf = xstrdup(url);
    amqp_default_connection_info(&b->ci);
    if (amqp_parse_url(b->url_buf, &b->ci) != AMQP_STATUS_OK) {
        free(b->url_safe);
        b->url_safe = xstrdup("(unparsable URL)");
        bus_fail(b, LOG_LEVEL_ERROR, "amqp.urls[%zu] is not a valid amqp URL", b->url_index);
        return;
    }
    /* "amqp://host/" means the default vhost, as in OpenStack's
     * transport_url (the URI spec would say the empty one). */
    if (b->ci.vhost == NULL || b->ci.vhost[0] == '\0')
        b->ci.vhost = (char *)"/";
    vh = b->ci.vhost;
    free(b->url_safe);
    /* Never log the password. */
    xasprintf(&b->url_safe, "%s://%s@%s:%d/%s", b->ci.ssl ? "amqps" : "amqp", b->ci.user,
              b->ci.host, b->ci.port, strcmp(vh, "/") == 0 ? "" : vh);
    log_info("amqp connecting url=%s", b->url_safe);
    timer_add_ms(b->ev_deadline, b->set.connect_timeout_ms);
    if (b->ci.ssl)
        bus_tls_open(b);
    else
        bus_resolve(b);
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */

int bus_new(struct event_base *base, const struct config *cfg,
            const struct bus_callbacks *cb, void *arg, struct bus **out)
{
    struct bus *b = xcalloc(1, sizeof(*b));
    uint64_t seed = 0;

    b->base = base;
    settings_from_config(&b->set, cfg);
    for (size_t i = 0; i < b->set.urls.n; i++) {
        struct amqp_connection_info ci;
        char *u autofree = xstrdup(b->set.urls.v[i]);

        if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
            log_error("amqp.urls[%zu]: not a valid amqp URL", i);
            settings_free(&b->set);
            free(b);
            return -EINVAL;
        }
    }
    if (b->set.urls.n == 0) {
        log_error("amqp.urls: no broker configured");
        settings_free(&b->set);
        free(b);
        return -EINVAL;
    }
    if (cb)
        b->cb = *cb;
    b->cb_arg = arg;
    b->fd = -1;
    b->epoch = 1;
    bus_ackwin_init(&b->win);
    bus_outbox_init(&b->ob, b->set.outbox_limit);
    for (int i = 0; i < BUS_NCHAN; i++)
        b->fifo[i].tail = &b->fifo[i].head;
    b->ack_batch = ack_batch_for(b->set.prefetch);
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
        seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)b;
    b->rng = seed | 1;
    b->ev_deadline = evtimer_new(base, bus_deadline_cb, b);
    b->ev_heartbeat = event_new(base, -1, EV_PERSIST, bus_heartbeat_cb, b);
    b->ev_ack = evtimer_new(base, bus_ack_timer_cb, b);
    b->ev_backoff = evtimer_new(base, bus_backoff_cb, b);
    b->ev_teardown = event_new(base, -1, 0, bus_teardown_cb, b);
    b->ev_probe = evtimer_new(base, bus_probe_timer_cb, b);
    b->ev_stop = evtimer_new(base, bus_stop_timer_cb, b);
    b->ev_defer = event_new(base, -1, 0, bus_defer_cb, b);
    b->ev_pump = event_new(base, -1, 0, bus_pump_cb, b);
    if (!b->ev_deadline || !b->ev_heartbeat || !b->ev_ack || !b->ev_backoff ||
        !b->ev_teardown || !b->ev_probe || !b->ev_stop || !b->ev_defer || !b->ev_pump)
        abort(); /* only fails on allocation failure */
    *out = b;
    return 0;
}

int bus_start(struct bus *b)
{
    if (b->started)
        return -EALREADY;
    b->started = true;
    bus_connect(b);
    return 0;
}

void bus_reconfigure(struct bus *b, const struct config *cfg)
{
    struct bus_settings next;
    bool reconnect, qos;

    settings_from_config(&next, cfg);
    reconnect = settings_need_reconnect(&b->set, &next);
    qos = next.prefetch != b->set.prefetch;
    settings_free(&b->set);
    b->set = next;
    b->ob.limit = b->set.outbox_limit;
    if (b->state == BUS_IDLE || b->state == BUS_STOPPED || b->state == BUS_CLOSING ||
        b->stop_requested)
        return;
    if (reconnect) {
        log_info("amqp settings changed: reconnecting");
        if (b->url_index >= b->set.urls.n)
            b->url_index = 0;
        if (b->state == BUS_READY) {
            amqp_connection_close_t c;

            bus_flush_acks(b, true);
            memset(&c, 0, sizeof(c));
            c.reply_code = AMQP_REPLY_SUCCESS;
            c.reply_text = amqp_cstring_bytes("vtpmd reloading");
            bus_send_method(b, 0, AMQP_CONNECTION_CLOSE_METHOD, &c);
        }
        b->reconnect_now = true;
        event_del(b->ev_backoff);
        if (b->state == BUS_BACKOFF) {
            b->reconnect_now = false;
            b->url_index = 0;
            b->rounds = 0;
            bus_connect(b);
            return;
        }
        bus_kill(b);
        return;
    }
    if (qos && b->state == BUS_READY) {
        amqp_basic_qos_t q = {.prefetch_size = 0, .prefetch_count = (uint16_t)b->set.prefetch,
                              .global = 0};
        char *what;

        b->ack_batch = ack_batch_for(b->set.prefetch);
        b->reconsume = true;
        xasprintf(&what, "basic.qos prefetch=%u", b->set.prefetch);
        bus_rpc(b, BUS_CH_CONSUME, RPC_QOS, AMQP_BASIC_QOS_METHOD, &q,
                AMQP_BASIC_QOS_OK_METHOD, what);
        log_info("amqp prefetch changed prefetch=%u", b->set.prefetch);
    }
}

uint64_t bus_delivery_tag(const struct bus_delivery *d)
{
    return d->tag;
}

static bool bus_delivery_current(struct bus *b, const struct bus_delivery *d)
{
    return d->epoch == b->epoch && !b->dead && b->conn != NULL;
}

void bus_ack(struct bus *b, struct bus_delivery *d)
{
    if (d == NULL)
        return;
    b->in_flight--;
    if (!bus_delivery_current(b, d)) {
        log_debug("amqp ack dropped: the delivery's connection is gone, the broker "
                  "redelivers it tag=%" PRIu64,
                  d->tag);
        free(d);
        return;
    }
    if (bus_ackwin_complete(&b->win, d->tag, true) == 0) {
        b->st.acked++;
        if (b->win.prefix_wanted >= b->ack_batch)
            bus_flush_acks(b, false);
        else if (b->win.wanted - b->win.prefix_wanted >= b->ack_batch)
            bus_flush_acks(b, true);
        if (b->win.wanted > 0 && !event_pending(b->ev_ack, EV_TIMEOUT, NULL))
            timer_add_ms(b->ev_ack, BUS_ACK_DELAY_MS);
    }
    free(d);
}

void bus_reject(struct bus *b, struct bus_delivery *d)
{
    amqp_basic_reject_t r;

    if (d == NULL)
        return;
    b->in_flight--;
    if (!bus_delivery_current(b, d)) {
        log_debug("amqp reject dropped: the delivery's connection is gone tag=%" PRIu64,
                  d->tag);
        free(d);
        return;
    }
    if (bus_ackwin_complete(&b->win, d->tag, false) == 0) {
        r.delivery_tag = d->tag;
        r.requeue = 0;
        if (bus_send_method(b, BUS_CH_CONSUME, AMQP_BASIC_REJECT_METHOD, &r))
            b->st.rejected++;
    }
    free(d);
}

int bus_publish(struct bus *b, const char *exchange, const char *routing_key,
                const void *body, size_t len, bus_publish_cb cb, void *arg)
{
    int r;

    if (b->stop_requested || b->state == BUS_STOPPED || b->state == BUS_CLOSING)
        return -ESHUTDOWN;
    r = bus_outbox_push(&b->ob, exchange, routing_key, body, len, cb, arg);
    if (r < 0) {
        log_warn("amqp outbox full, status message dropped limit=%zu routing_key=%s",
                 b->ob.limit, routing_key);
        return r;
    }
    /* Sent once the caller's callback returns (same loop turn), with
     * whatever else it publishes. */
    if (!event_pending(b->ev_pump, EV_TIMEOUT, NULL))
        event_active(b->ev_pump, EV_TIMEOUT, 1);
    return 0;
}

void bus_stop(struct bus *b, void (*stopped)(void *arg), void *arg)
{
    amqp_basic_cancel_t c;

    if (b->stop_requested && b->state != BUS_READY)
        return;
    b->stop_requested = true;
    b->stopped_cb = stopped;
    b->stopped_arg = arg;
    switch (b->state) {
    case BUS_READY:
        log_info("amqp stopping: cancelling the consumer, waiting for confirms "
                 "unconfirmed=%zu",
                 bus_outbox_count(&b->ob));
        bus_set_state(b, BUS_CLOSING);
        bus_answer_waiters(b, true, false);
        timer_add_ms(b->ev_stop, b->set.connect_timeout_ms);
        memset(&c, 0, sizeof(c));
        c.consumer_tag = bytes_of(b->consumer_tag);
        bus_rpc(b, BUS_CH_CONSUME, RPC_CANCEL, AMQP_BASIC_CANCEL_METHOD, &c,
                AMQP_BASIC_CANCEL_OK_METHOD, xstrdup("basic.cancel"));
        bus_flush_acks(b, true);
        bus_close_check(b);
        return;
    case BUS_STOPPED:
        b->stopped_pending = true;
        event_active(b->ev_defer, EV_TIMEOUT, 1);
        return;
    case BUS_IDLE:
        bus_set_state(b, BUS_STOPPED);
        b->stopped_pending = true;
        event_active(b->ev_defer, EV_TIMEOUT, 1);
        return;
    default:
        /* Connecting or waiting to: give up on it. */
        event_del(b->ev_backoff);
        if (b->dead)
            return; /* the pending teardown finishes the stop */
        bus_kill(b);
        return;
    }
}

static void bus_dns_free_cb(evutil_socket_t fd, short what, void *arg)
{
    evdns_base_free(arg, 0);
}

void bus_free(struct bus *b)
{
    struct bus_waiter *w;

    if (b == NULL)
        return;
    for (struct bus_dns *d = b->dns_list; d; d = d->next)
        d->b = NULL; /* its callback may still come: it only frees d */
    dns_detach_all(b);
    b->dns_list = NULL;
    bus_close_conn(b);
    if (b->in_flight)
        log_warn("amqp freed with deliveries still held by the consumer count=%zu",
                 b->in_flight);
    bus_outbox_fail_all(&b->ob, -ECONNRESET);
    while ((w = b->waiters) != NULL) {
        b->waiters = w->next;
        w->cb(false, w->arg);
        free(w);
    }
    if (b->dns) {
        struct timeval now = {0, 0};

        /* A cancelled lookup completes in a deferred callback that still
         * uses the resolver: then free it after those ran. (bus_stop()
         * waits for them, so this is only for a bus freed without one;
         * should the loop never run again, the resolver is lost at exit.) */
        if (b->dns_alive == 0 ||
            event_base_once(b->base, -1, EV_TIMEOUT, bus_dns_free_cb, b->dns, &now) < 0)
            evdns_base_free(b->dns, 0);
    }
    event_free(b->ev_deadline);
    event_free(b->ev_heartbeat);
    event_free(b->ev_ack);
    event_free(b->ev_backoff);
    event_free(b->ev_teardown);
    event_free(b->ev_probe);
    event_free(b->ev_stop);
    event_free(b->ev_defer);
    event_free(b->ev_pump);
    bus_ackwin_release(&b->win);
    free(b->in.buf);
    free(b->url_safe);
    settings_free(&b->set);
    free(b);
}

void bus_get_stats(const struct bus *b, struct bus_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->connected = b->state >= BUS_CONSUMING && b->state <= BUS_CLOSING && !b->dead;
    out->consuming = b->state == BUS_READY && !b->dead;
    out->delivered = b->st.delivered;
    out->acked = b->st.acked;
    out->rejected = b->st.rejected;
    out->published = b->st.published;
    out->confirmed = b->st.confirmed;
    out->nacked = b->st.nacked;
    out->reconnects = b->st.reconnects;
    out->in_flight = b->in_flight;
    out->ack_pending = b->win.wanted;
    out->outbox = bus_outbox_count(&b->ob);
    out->state = bus_state_names[b->state];
    out->url = b->url_safe;
}
