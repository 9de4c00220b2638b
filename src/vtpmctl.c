/* vtpmctl: a small client of vtpmd's control socket, and a follower of
 * its status notifications on the bus.
 *   vtpmctl [-s SOCKET] [--json] health|list|show UUID|wait UUID [TIMEOUT]|
 *           reload|domains|metrics
 *   vtpmctl [-c FILE | -u URL] [--json] [-n COUNT] watch [UUID]
 * The socket: -s, else $VTPMD_SOCKET, else the built-in default.
 * Exit codes (docs/vtpmctl.1): 0 ok; 1 failure (vtpmd or the broker
 * unreachable, an error answer; for wait: the vTPM failed); 2 usage; for
 * wait also 2: vtpmd holds nothing for the instance (not selected, once
 * caught up) and 3: timed out. The libvirt hook tells these apart. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "vconfig.h"
#include "fileutil.h"
#include "xalloc.h"

#ifndef VTPMD_RUN_DIR
#define VTPMD_RUN_DIR "/run/vtpmd"
#endif
#define DEFAULT_SOCKET VTPMD_RUN_DIR "/control.sock"
#ifndef VTPMD_CONFIG_FILE
#define VTPMD_CONFIG_FILE "/etc/vtpmd/vtpmd.yaml"
#endif

/* Exit codes; see the header comment and docs/vtpmctl.1. */
enum {
    VTPMCTL_OK = 0,
    VTPMCTL_FAILURE = 1,
    VTPMCTL_USAGE = 2,
    VTPMCTL_WAIT_NOT_SELECTED = 2,
    VTPMCTL_WAIT_TIMEOUT = 3,
};

struct opts {
    const char *sock;
    const char *peer_user; /* who must serve the socket; NULL: see peer_check */
    const char *config_path;
    const char *url;
    const char *exchange;
    const char *topic;
    long count;
    bool as_json;
};

struct reply {
    int status;
    char *body;
    size_t len;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: vtpmctl [OPTIONS] COMMAND\n"
            "Commands (control socket):\n"
            "  health               vtpmd's health (exit 1 when degraded)\n"
            "  list                 instances vtpmd holds a vTPM for\n"
            "  show UUID            one instance, with its stub domain XML\n"
            "  wait UUID [TIMEOUT]  wait until the instance's vTPM is ready (default 300 s)\n"
            "                       exit 0 ready, 1 failed, 2 not selected, 3 timed out\n"
            "  reload               reload vtpmd's configuration\n"
            "  domains              libvirt's stub domains carrying vtpmd metadata\n"
            "                       (orphans: no instance vtpmd holds)\n"
            "  metrics              Prometheus metrics\n"
            "Command (bus):\n"
            "  watch [UUID]         follow vtpmd's status notifications, one line each\n"
            "Options:\n"
            "  -s, --socket PATH    control socket (default $VTPMD_SOCKET, else %s)\n"
            "      --peer-user USER the user vtpmd runs as: whoever else serves the socket\n"
            "                       is refused (default $VTPMCTL_PEER_USER, else root or\n"
            "                       the owner of the socket's directory)\n"
            "  -j, --json           print JSON instead of tables (watch: one object a line)\n"
            "  -c, --config FILE    watch: vtpmd's configuration, for amqp.urls, amqp.tls\n"
            "                       and status.* (default %s)\n"
            "  -u, --url URL        watch: the broker (amqp:// or amqps://) instead\n"
            "      --exchange NAME  watch: status exchange (default: config, else vtpmd)\n"
            "      --topic NAME     watch: status topic (default: config, else notifications)\n"
            "  -n, --count N        watch: exit after N events\n"
            "  -h, --help           this help\n"
            "Exit codes: 0 ok, 1 failure, 2 usage (wait: see above).\n",
            DEFAULT_SOCKET, VTPMD_CONFIG_FILE);
}

/* Refuses a socket served by someone other than vtpmd (SO_PEERCRED): a
 * user who could rename the socket could otherwise answer in its place, and
 * the libvirt hook would believe a "ready". The expected user is peer_user
 * when given, else root or the owner of the socket's directory (vtpmd
 * refuses to serve in a directory it does not own). 0 or -1 (said why). */
static int peer_check(int fd, const char *sock, const char *peer_user)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    char *dir = xstrdup(sock);
    struct stat st;
    uid_t want;
    int ret = -1;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        fprintf(stderr, "vtpmctl: %s: cannot tell who serves it: %s\n", sock, strerror(errno));
        goto out;
    }
    if (peer_user != NULL && *peer_user != '\0') {
        struct passwd *pw = getpwnam(peer_user);
        char *end;
        unsigned long u = strtoul(peer_user, &end, 10);

        if (pw != NULL) {
            want = pw->pw_uid;
        } else if (*end == '\0') {
            want = (uid_t)u;
        } else {
            fprintf(stderr, "vtpmctl: --peer-user: no such user '%s'\n", peer_user);
            goto out;
        }
        if (cred.uid != want) {
            fprintf(stderr, "vtpmctl: %s is served by uid %u (pid %d), not by %s (uid %u): "
                    "refusing to trust it\n", sock, (unsigned)cred.uid, (int)cred.pid,
                    peer_user, (unsigned)want);
            goto out;
        }
        ret = 0;
        goto out;
    }
    if (stat(dirname(dir), &st) < 0) {
        fprintf(stderr, "vtpmctl: cannot check the directory of %s: %s\n", sock, strerror(errno));
        goto out;
    }
    if (cred.uid != 0 && cred.uid != st.st_uid) {
        fprintf(stderr, "vtpmctl: %s is served by uid %u (pid %d), neither root nor the owner "
                "of its directory (uid %u): refusing to trust it (--peer-user)\n", sock,
                (unsigned)cred.uid, (int)cred.pid, (unsigned)st.st_uid);
        goto out;
    }
    ret = 0;
out:
    free(dir);
    return ret;
}

/* One HTTP/1.1 request over the UNIX socket; blocking, Connection: close. */
static int request(const char *sock, const char *peer_user, const char *method,
                   const char *path, int timeout_s, struct reply *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *req = NULL, *buf = NULL, *p;
    size_t len = 0, cap = 65536;
    int fd, n, ret;

    if (strlen(sock) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "vtpmctl: socket path too long: %s\n", sock);
        return -1;
    }
    strcpy(sa.sun_path, sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "vtpmctl: cannot connect to %s: %s (is vtpmd running?)\n", sock,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (peer_check(fd, sock, peer_user) < 0) {
        close(fd);
        return -1;
    }
    n = xasprintf(&req,
                  "%s %s HTTP/1.1\r\nHost: vtpmd\r\nConnection: close\r\n"
                  "Content-Length: 0\r\n\r\n",
                  method, path);
    if ((ret = file_write_all(fd, req, (size_t)n)) < 0) {
        fprintf(stderr, "vtpmctl: write: %s\n", strerror(-ret));
        free(req);
        close(fd);
        return -1;
    }
    free(req);
    buf = xmalloc(cap + 1);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;

        if (poll(&pfd, 1, timeout_s * 1000) <= 0) {
            fprintf(stderr, "vtpmctl: no answer from vtpmd within %d s\n", timeout_s);
            free(buf);
            close(fd);
            return -1;
        }
        if (len == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1 ||
        (p = strstr(buf, "\r\n\r\n")) == NULL) {
        fprintf(stderr, "vtpmctl: malformed answer from vtpmd\n");
        free(buf);
        return -1;
    }
    p += 4;
    out->len = len - (size_t)(p - buf);
    out->body = xmalloc(out->len + 1);
    memcpy(out->body, p, out->len);
    out->body[out->len] = '\0';
    free(buf);
    return 0;
}

static const char *sget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_string(v) ? json_string_value(v) : "-";
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (s) {
        puts(s);
        free(s);
    }
}

static void print_error(const struct reply *r)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);

    fprintf(stderr, "vtpmctl: %d: %s\n", r->status,
            j && json_is_string(json_object_get(j, "error"))
                ? json_string_value(json_object_get(j, "error"))
                : r->body);
    json_decref(j);
}

static bool valid_uuid_arg(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
            return false;
    }
    return true;
}


/* The "error" string of an error answer, else its body. */
static const char *error_text(const struct reply *r, json_t *j)
{
    json_t *e = j ? json_object_get(j, "error") : NULL;

    return json_is_string(e) ? json_string_value(e) : r->body;
}

/* --json error answers: {"status": N, "error": "..."} on stdout too. */
static void print_error_json(const struct reply *r, json_t *j)
{
    json_t *o = json_pack("{s:i,s:s}", "status", r->status, "error", error_text(r, j));

    print_json(o);
    json_decref(o);
}

/* Prometheus text format → {"metrics": [{"name", "labels": {}, "value"}]}.
 * Only what vtpmd emits: no escaped quotes inside label values. */
static json_t *metrics_to_json(const char *text)
{
    json_t *a = json_array();
    const char *line = text;

    while (*line) {
        const char *eol = strchr(line, '\n'), *sp;
        size_t n = eol ? (size_t)(eol - line) : strlen(line);
        char *l = xstrndup(line, n), *brace, *val;
        json_t *labels = json_object();

        line += n + (eol ? 1 : 0);
        if (l[0] == '#' || l[0] == '\0' || (sp = strrchr(l, ' ')) == NULL) {
            json_decref(labels);
            free(l);
            continue;
        }
        val = l + (sp - l) + 1;
        l[sp - l] = '\0';
        brace = strchr(l, '{');
        if (brace) {
            char *p = brace + 1;
            *brace = '\0';
            while (*p && *p != '}') {
                char *eq = strchr(p, '='), *q1, *q2;
                if (!eq || eq[1] != '"' || !(q2 = strchr((q1 = eq + 2), '"')))
                    break;
                *eq = '\0';
                *q2 = '\0';
                json_object_set_new(labels, p, json_string(q1));
                p = q2 + 1;
                if (*p == ',')
                    p++;
            }
        }
        json_array_append_new(a, json_pack("{s:s,s:o,s:f}", "name", l, "labels", labels,
                                           "value", strtod(val, NULL)));
        free(l);
    }
    return json_pack("{s:o}", "metrics", a);
}

/* ---- watch: vtpmd's status notifications from the bus ------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    stop_requested = sig;
}

/* 0, or -1 after saying why on stderr. */
static int amqp_check(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        fprintf(stderr, "vtpmctl: %s: %s\n", what, amqp_error_string2(r.library_error));
        return -1;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            fprintf(stderr, "vtpmctl: %s: broker closed the connection: %u %.*s\n", what,
                    m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            fprintf(stderr, "vtpmctl: %s: broker closed the channel: %u %.*s\n", what,
                    m->reply_code, (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            fprintf(stderr, "vtpmctl: %s: broker error (method 0x%08x)\n", what, r.reply.id);
        }
        return -1;
    default:
        fprintf(stderr, "vtpmctl: %s: no answer from the broker\n", what);
        return -1;
    }
}

/* Opens a connection to one URL: 0 or -1 (said why). */
static int watch_connect(const char *url, const struct tls_config *tls,
                         amqp_connection_state_t *out)
{
    struct amqp_connection_info ci;
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock;
    char *u = xstrdup(url);
    struct timeval tv = {10, 0};
    int ret = -1, st;

    if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "vtpmctl: not an amqp:// or amqps:// URL: %s\n", url);
        goto out;
    }
    if (ci.ssl) {
        sock = amqp_ssl_socket_new(conn);
        if (sock == NULL)
            goto out;
        amqp_ssl_socket_set_verify_peer(sock, tls ? tls->verify_peer : 1);
        amqp_ssl_socket_set_verify_hostname(sock, tls ? tls->verify_hostname : 1);
        if (tls && tls->ca_file && amqp_ssl_socket_set_cacert(sock, tls->ca_file) != AMQP_STATUS_OK) {
            fprintf(stderr, "vtpmctl: cannot read amqp.tls.ca_file %s\n", tls->ca_file);
            goto out;
        }
        if (tls && tls->cert_file && tls->key_file &&
            amqp_ssl_socket_set_key(sock, tls->cert_file, tls->key_file) != AMQP_STATUS_OK) {
            fprintf(stderr, "vtpmctl: cannot read amqp.tls.cert_file/key_file\n");
            goto out;
        }
    } else {
        sock = amqp_tcp_socket_new(conn);
        if (sock == NULL)
            goto out;
    }
    st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "vtpmctl: cannot connect to the broker %s:%d: %s\n", ci.host, ci.port,
                amqp_error_string2(st));
        goto out;
    }
    /* "amqp://host/" names the empty vhost by the URI spec, but means
     * RabbitMQ's default "/" to everyone (vtpmd reads it so too). */
    if (ci.vhost == NULL || *ci.vhost == '\0')
        ci.vhost = (char *)"/";
    if (amqp_check(amqp_login(conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user,
                              ci.password),
                   "login") < 0)
        goto out;
    ret = 0;
out:
    free(u);
    if (ret < 0)
        amqp_destroy_connection(conn);
    else
        *out = conn;
    return ret;
}

static const char *jget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_string(v) ? json_string_value(v) : "-";
}

/* One delivery: the oslo 2.0 envelope around vtpmd's notification.
 * Returns true when it was printed (counts towards --count). */
static bool watch_print(const amqp_bytes_t body, const char *only_uuid, bool as_json)
{
    json_t *env = json_loadb(body.bytes, body.len, 0, NULL), *msg = NULL, *p;
    json_t *inner = env ? json_object_get(env, "oslo.message") : NULL;
    bool shown = false;

    if (json_is_string(inner))
        msg = json_loads(json_string_value(inner), 0, NULL);
    else if (env && json_object_get(env, "event_type"))
        msg = json_incref(env); /* not enveloped */
    if (!json_is_object(msg)) {
        fprintf(stderr, "vtpmctl: skipping a message that is not an oslo notification\n");
        goto out;
    }
    p = json_object_get(msg, "payload");
    if (only_uuid && strcasecmp(jget(p, "instance_uuid"), only_uuid) != 0)
        goto out;
    if (as_json) {
        char *s = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
        if (s)
            puts(s);
        free(s);
    } else {
        json_t *err = json_object_get(p, "error"), *dur = json_object_get(p, "duration_ms");
        printf("%s %-17s %s state=%s vtpm=%s domain=%s duration_ms=", jget(msg, "timestamp"),
               jget(msg, "event_type"), jget(p, "instance_uuid"), jget(p, "state"),
               jget(p, "vtpm_uuid"), jget(p, "vtpm_domain"));
        if (json_is_integer(dur))
            printf("%" JSON_INTEGER_FORMAT, json_integer_value(dur));
        else
            printf("-");
        if (json_is_object(err))
            printf(" error=%s: %s", jget(err, "code"), jget(err, "message"));
        printf("\n");
    }
    fflush(stdout);
    shown = true;
out:
    json_decref(msg);
    json_decref(env);
    return shown;
}

/* vtpmd's configuration for watch: needed unless --url alone is given
 * (then defaults serve for the rest). 0, or -1 after saying why. */
static int watch_config(const struct opts *o, struct config **cfg)
{
    const char *path = o->config_path ? o->config_path : VTPMD_CONFIG_FILE;
    struct cfg_errors errs = {0};

    *cfg = NULL;
    if (o->url != NULL && o->config_path == NULL)
        return 0;
    if (config_load(path, cfg, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        fprintf(stderr, "vtpmctl: cannot read vtpmd's configuration %s%s\n", path,
                o->url ? "" : " (or give the broker with --url)");
        cfg_errors_free(&errs);
        return -1;
    }
    return 0;
}

/* Binds a private queue to exchange for key and starts consuming from it
 * on channel 1. 0, or -1 after saying why. */
static int watch_subscribe(amqp_connection_state_t conn, const char *exchange,
                           const char *key_info, const char *key_error, amqp_bytes_t *queue)
{
    amqp_queue_declare_ok_t *q;
    const char *keys[] = {key_info, key_error};

    amqp_channel_open(conn, 1);
    if (amqp_check(amqp_get_rpc_reply(conn), "channel") < 0)
        return -1;
    /* As vtpmd and oslo.messaging declare it, so that watching may start
     * before vtpmd. */
    amqp_exchange_declare(conn, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"),
                          0, 0, 0, 0, amqp_empty_table);
    if (amqp_check(amqp_get_rpc_reply(conn), "declaring the status exchange") < 0)
        return -1;
    q = amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (amqp_check(amqp_get_rpc_reply(conn), "declaring a queue") < 0 || q == NULL)
        return -1;
    *queue = amqp_bytes_malloc_dup(q->queue);
    for (size_t i = 0; i < 2; i++) {
        amqp_queue_bind(conn, 1, *queue, amqp_cstring_bytes(exchange),
                        amqp_cstring_bytes(keys[i]), amqp_empty_table);
        if (amqp_check(amqp_get_rpc_reply(conn), "binding") < 0)
            return -1;
    }
    amqp_basic_consume(conn, 1, *queue, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    if (amqp_check(amqp_get_rpc_reply(conn), "consuming") < 0)
        return -1;
    return 0;
}

static int cmd_watch(const struct opts *o, const char *only_uuid)
{
    struct config *cfg = NULL;
    amqp_connection_state_t conn = NULL;
    const char *exchange = o->exchange, *topic = o->topic;
    char key_info[256], key_error[256];
    amqp_bytes_t queue = {0};
    struct sigaction sa = {.sa_handler = on_stop_signal};
    long seen = 0;
    int ret = VTPMCTL_FAILURE;

    if (watch_config(o, &cfg) < 0)
        return VTPMCTL_FAILURE;
    if (exchange == NULL)
        exchange = cfg ? cfg->status.exchange : "vtpmd";
    if (topic == NULL)
        topic = cfg ? cfg->status.topic : "notifications";
    if (o->url) {
        if (watch_connect(o->url, cfg ? &cfg->amqp.tls : NULL, &conn) < 0)
            goto out;
    } else {
        /* amqp.urls in order, as vtpmd fails over. */
        for (size_t i = 0; conn == NULL && i < cfg->amqp.urls.n; i++)
            watch_connect(cfg->amqp.urls.v[i], &cfg->amqp.tls, &conn);
        if (conn == NULL)
            goto out;
    }
    snprintf(key_info, sizeof(key_info), "%s.info", topic);
    snprintf(key_error, sizeof(key_error), "%s.error", topic);
    if (watch_subscribe(conn, exchange, key_info, key_error, &queue) < 0)
        goto out;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "vtpmctl: watching exchange=%s keys=%s,%s\n", exchange, key_info, key_error);
    while (!stop_requested && (o->count <= 0 || seen < o->count)) {
        struct timeval tv = {0, 250000};
        amqp_envelope_t env;
        amqp_rpc_reply_t r;

        amqp_maybe_release_buffers(conn);
        r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            if (stop_requested)
                break;
            amqp_check(r, "receiving");
            goto out;
        }
        if (watch_print(env.message.body, only_uuid, o->as_json))
            seen++;
        amqp_destroy_envelope(&env);
    }
    ret = VTPMCTL_OK;
out:
    amqp_bytes_free(queue);
    if (conn) {
        /* The queue is exclusive and auto-delete: closing removes it. */
        amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn);
    }
    config_free(cfg);
    return ret;
}

/* ---- the control socket's commands -------------------------------- */

static int cmd_wait(const struct opts *o, const struct reply *r, json_t *j, const char *uuid)
{
    const char *result;
    int ret;

    if (r->status == 200 && j) {
        const char *st = sget(j, "state");
        ret = strcmp(st, "ready") == 0 ? VTPMCTL_OK : VTPMCTL_FAILURE;
        result = ret == VTPMCTL_OK ? "ready" : "failed";
        if (!o->as_json)
            printf("%s %s\n", uuid, st);
        if (ret != VTPMCTL_OK)
            fprintf(stderr, "vtpmctl: %s: the vTPM %s\n", uuid,
                    strcmp(st, "failed") == 0 ? "failed" : st);
    } else if (r->status == 404) {
        ret = VTPMCTL_WAIT_NOT_SELECTED;
        result = "not_selected";
        fprintf(stderr, "vtpmctl: %s: not selected: %s\n", uuid, error_text(r, j));
    } else if (r->status == 504) {
        ret = VTPMCTL_WAIT_TIMEOUT;
        result = "timeout";
        fprintf(stderr, "vtpmctl: %s: timed out: %s\n", uuid, error_text(r, j));
    } else {
        ret = VTPMCTL_FAILURE;
        result = "error";
        print_error(r);
    }
    if (o->as_json) {
        json_t *out = r->status == 200 && j ? json_incref(j)
                                            : json_pack("{s:s,s:i,s:s}", "instance_uuid", uuid,
                                                        "status", r->status, "error",
                                                        error_text(r, j));
        json_object_set_new(out, "result", json_string(result));
        json_object_set_new(out, "exit_code", json_integer(ret));
        print_json(out);
        json_decref(out);
    }
    return ret;
}

/* The options before the command. -1 to go on, else the exit code. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum { OPT_EXCHANGE = 256, OPT_TOPIC, OPT_PEER_USER };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"config", required_argument, NULL, 'c'},
        {"url", required_argument, NULL, 'u'},
        {"count", required_argument, NULL, 'n'},
        {"exchange", required_argument, NULL, OPT_EXCHANGE},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"peer-user", required_argument, NULL, OPT_PEER_USER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int opt;

    o->sock = getenv("VTPMD_SOCKET");
    o->peer_user = getenv("VTPMCTL_PEER_USER");
    if (o->sock == NULL || *o->sock == '\0')
        o->sock = DEFAULT_SOCKET;
    while ((opt = getopt_long(argc, argv, "+s:jc:u:n:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            o->sock = optarg;
            break;
        case 'j':
            o->as_json = true;
            break;
        case 'c':
            o->config_path = optarg;
            break;
        case 'u':
            o->url = optarg;
            break;
        case 'n':
            o->count = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || o->count < 1) {
                fprintf(stderr, "vtpmctl: --count needs a positive number\n");
                return VTPMCTL_USAGE;
            }
            break;
        case OPT_EXCHANGE:
            o->exchange = optarg;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_PEER_USER:
            o->peer_user = optarg;
            break;
        case 'h':
            usage(stdout);
            return VTPMCTL_OK;
        default:
            usage(stderr);
            return VTPMCTL_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return VTPMCTL_USAGE;
    }
    return -1;
}

/* The control API path of cmd with its arguments args[0..nargs). 0, or
 * VTPMCTL_USAGE after saying why. */
static int command_path(const char *cmd, char **args, int nargs, int *timeout, char **path)
{
    char *end;

    if (strcmp(cmd, "show") == 0 || strcmp(cmd, "wait") == 0) {
        if (nargs < 1 || !valid_uuid_arg(args[0])) {
            fprintf(stderr, "vtpmctl: %s needs an instance UUID\n", cmd);
            return VTPMCTL_USAGE;
        }
        if (strcmp(cmd, "wait") == 0) {
            if (nargs > 1) {
                long t = strtol(args[1], &end, 10);
                if (args[1][0] == '\0' || *end || t < 0 || t > 3600 || nargs > 2) {
                    fprintf(stderr, "vtpmctl: TIMEOUT must be 0..3600 seconds\n");
                    return VTPMCTL_USAGE;
                }
                *timeout = (int)t;
            }
            xasprintf(path, "/v1/instances/%s/wait?timeout=%d", args[0], *timeout);
        } else {
            if (nargs > 1) {
                usage(stderr);
                return VTPMCTL_USAGE;
            }
            xasprintf(path, "/v1/instances/%s", args[0]);
        }
    } else if (nargs > 0) {
        usage(stderr);
        return VTPMCTL_USAGE;
    } else if (strcmp(cmd, "health") == 0) {
        *path = xstrdup("/v1/health");
    } else if (strcmp(cmd, "list") == 0) {
        *path = xstrdup("/v1/instances");
    } else if (strcmp(cmd, "domains") == 0) {
        *path = xstrdup("/v1/domains");
    } else if (strcmp(cmd, "reload") == 0) {
        *path = xstrdup("/v1/reload");
    } else if (strcmp(cmd, "metrics") == 0) {
        *path = xstrdup("/metrics");
    } else {
        fprintf(stderr, "vtpmctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return VTPMCTL_USAGE;
    }
    return 0;
}

/* Prints the answer r (its JSON j, or NULL) to cmd; returns the exit code. */
static int print_reply(const char *cmd, const struct opts *o, const struct reply *r, json_t *j)
{
    if (j == NULL) {
        print_error(r);
        return VTPMCTL_FAILURE;
    }
    if (r->status == 200 && strcmp(cmd, "list") == 0 && !o->as_json) {
        json_t *a = json_object_get(j, "instances"), *it;
        size_t i;
        printf("%-36s  %-12s  %-36s  %s\n", "INSTANCE", "STATE", "VTPM", "DOMAIN");
        json_array_foreach(a, i, it)
            printf("%-36s  %-12s  %-36s  %s\n", sget(it, "instance_uuid"), sget(it, "state"),
                   sget(it, "vtpm_uuid"), sget(it, "vtpm_domain"));
        return VTPMCTL_OK;
    }
    if (r->status == 200 && strcmp(cmd, "domains") == 0 && !o->as_json) {
        json_t *a = json_object_get(j, "domains"), *it;
        size_t i;
        printf("%-48s  %-7s  %-36s  %s\n", "DOMAIN", "STATE", "INSTANCE", "ORPHAN");
        json_array_foreach(a, i, it)
            printf("%-48s  %-7s  %-36s  %s\n", sget(it, "name"),
                   json_is_true(json_object_get(it, "active")) ? "running" : "stopped",
                   sget(it, "instance_uuid"),
                   json_is_true(json_object_get(it, "orphan")) ? "yes" : "no");
        return VTPMCTL_OK;
    }
    if (r->status == 200 && strcmp(cmd, "health") == 0 && !o->as_json) {
        printf("status=%s bus=%s libvirt=%s libvirt_vtpm=%s instances=%" JSON_INTEGER_FORMAT
               " busy=%" JSON_INTEGER_FORMAT "\n",
               sget(j, "status"), sget(j, "bus"), sget(j, "libvirt"), sget(j, "libvirt_vtpm"),
               json_integer_value(json_object_get(j, "instances")),
               json_integer_value(json_object_get(j, "busy")));
        return VTPMCTL_OK;
    }
    if (r->status == 200 || (r->status == 503 && strcmp(cmd, "health") == 0)) {
        print_json(j);
        return r->status == 200 ? VTPMCTL_OK : VTPMCTL_FAILURE;
    }
    print_error(r);
    if (o->as_json)
        print_error_json(r, j);
    return VTPMCTL_FAILURE;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct reply r = {0};
    const char *cmd;
    char *path = NULL;
    json_t *j = NULL;
    int ret, timeout = 300;

    if ((ret = parse_opts(argc, argv, &o)) >= 0)
        return ret;
    ret = VTPMCTL_FAILURE;
    cmd = argv[optind++];
    if (strcmp(cmd, "watch") == 0) {
        if (argc - optind > 1 || (optind < argc && !valid_uuid_arg(argv[optind]))) {
            fprintf(stderr, "vtpmctl: watch takes at most one instance UUID\n");
            return VTPMCTL_USAGE;
        }
        return cmd_watch(&o, optind < argc ? argv[optind] : NULL);
    }
    if (command_path(cmd, argv + optind, argc - optind, &timeout, &path) != 0)
        return VTPMCTL_USAGE;
    if (request(o.sock, o.peer_user, strcmp(cmd, "reload") == 0 ? "POST" : "GET", path, timeout + 10, &r) < 0)
        goto out;
    if (strcmp(cmd, "metrics") == 0) {
        if (r.status != 200) {
            print_error(&r);
        } else if (o.as_json) {
            json_t *m = metrics_to_json(r.body);
            print_json(m);
            json_decref(m);
        } else {
            fwrite(r.body, 1, r.len, stdout);
        }
        ret = r.status == 200 ? VTPMCTL_OK : VTPMCTL_FAILURE;
        goto out;
    }
    j = json_loadb(r.body, r.len, 0, NULL);
    if (strcmp(cmd, "wait") == 0)
        ret = cmd_wait(&o, &r, j, argv[optind]);
    else
        ret = print_reply(cmd, &o, &r, j);
out:
    json_decref(j);
    free(r.body);
    free(path);
    return ret;
}
