/* vtpmctl: a small client of vtpmd's control socket.
 *   vtpmctl [-s SOCKET] [--json] health|list|show UUID|wait UUID [TIMEOUT]|reload|metrics
 * The socket: -s, else $VTPMD_SOCKET, else the built-in default.
 * Exit codes: 0 ok; 1 failure (vtpmd unreachable, error answer, or for
 * wait: the vTPM failed); 2 usage, or for wait: timed out or the
 * instance is not one vtpmd holds anything for. */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "xalloc.h"

#ifndef VTPMD_RUN_DIR
#define VTPMD_RUN_DIR "/run/vtpmd"
#endif
#define DEFAULT_SOCKET VTPMD_RUN_DIR "/control.sock"

struct reply {
    int status;
    char *body;
    size_t len;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: vtpmctl [-s SOCKET] [--json] COMMAND\n"
            "Commands:\n"
            "  health               vtpmd's health (exit 1 when degraded)\n"
            "  list                 instances vtpmd holds a vTPM for\n"
            "  show UUID            one instance, with its stub domain XML\n"
            "  wait UUID [TIMEOUT]  wait until the instance's vTPM is ready\n"
            "                       (exit 0 ready, 1 failed, 2 timed out or not selected)\n"
            "  reload               reload vtpmd's configuration\n"
            "  domains              libvirt's stub domains carrying vtpmd metadata\n"
            "                       (orphans: no instance vtpmd holds)\n"
            "  metrics              Prometheus metrics\n"
            "Options:\n"
            "  -s, --socket PATH    control socket (default $VTPMD_SOCKET, else %s)\n"
            "  -j, --json           print JSON instead of tables\n"
            "  -h, --help           this help\n",
            DEFAULT_SOCKET);
}

/* One HTTP/1.1 request over the UNIX socket; blocking, Connection: close. */
static int request(const char *sock, const char *method, const char *path,
                   int timeout_s, struct reply *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *req = NULL, *buf = NULL, *p;
    size_t len = 0, cap = 65536;
    int fd, n;

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
    n = xasprintf(&req,
                  "%s %s HTTP/1.1\r\nHost: vtpmd\r\nConnection: close\r\n"
                  "Content-Length: 0\r\n\r\n",
                  method, path);
    if (write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "vtpmctl: write: %s\n", strerror(errno));
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

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = getenv("VTPMD_SOCKET");
    bool as_json = false;
    struct reply r = {0};
    const char *cmd;
    char *path = NULL;
    json_t *j = NULL;
    int opt, ret = 1, timeout = 300;

    if (sock == NULL || *sock == '\0')
        sock = DEFAULT_SOCKET;
    while ((opt = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sock = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind++];
    if (strcmp(cmd, "show") == 0 || strcmp(cmd, "wait") == 0) {
        if (optind >= argc || !valid_uuid_arg(argv[optind])) {
            fprintf(stderr, "vtpmctl: %s needs an instance UUID\n", cmd);
            return 2;
        }
        if (strcmp(cmd, "wait") == 0) {
            if (optind + 1 < argc) {
                char *end;
                long t = strtol(argv[optind + 1], &end, 10);
                if (*end || t < 0 || t > 3600 || optind + 2 < argc) {
                    fprintf(stderr, "vtpmctl: TIMEOUT must be 0..3600 seconds\n");
                    return 2;
                }
                timeout = (int)t;
            }
            xasprintf(&path, "/v1/instances/%s/wait?timeout=%d", argv[optind], timeout);
        } else {
            if (optind + 1 < argc) {
                usage(stderr);
                return 2;
            }
            xasprintf(&path, "/v1/instances/%s", argv[optind]);
        }
    } else if (optind < argc) {
        usage(stderr);
        return 2;
    } else if (strcmp(cmd, "health") == 0) {
        path = xstrdup("/v1/health");
    } else if (strcmp(cmd, "list") == 0) {
        path = xstrdup("/v1/instances");
    } else if (strcmp(cmd, "domains") == 0) {
        path = xstrdup("/v1/domains");
    } else if (strcmp(cmd, "reload") == 0) {
        path = xstrdup("/v1/reload");
    } else if (strcmp(cmd, "metrics") == 0) {
        path = xstrdup("/metrics");
    } else {
        fprintf(stderr, "vtpmctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }

    if (request(sock, strcmp(cmd, "reload") == 0 ? "POST" : "GET", path, timeout + 10, &r) < 0)
        goto out;
    if (strcmp(cmd, "metrics") == 0) {
        fwrite(r.body, 1, r.len, stdout);
        ret = r.status == 200 ? 0 : 1;
        goto out;
    }
    j = json_loadb(r.body, r.len, 0, NULL);
    if (strcmp(cmd, "wait") == 0) {
        if (r.status == 200 && j) {
            const char *st = sget(j, "state");
            printf("%s %s\n", argv[optind], st);
            ret = strcmp(st, "ready") == 0 ? 0 : 1;
        } else if (r.status == 404 || r.status == 504) {
            print_error(&r);
            ret = 2;
        } else {
            print_error(&r);
            ret = 1;
        }
        goto out;
    }
    if (j == NULL) {
        print_error(&r);
        goto out;
    }
    if (r.status == 200 && strcmp(cmd, "list") == 0 && !as_json) {
        json_t *a = json_object_get(j, "instances"), *it;
        size_t i;
        printf("%-36s  %-12s  %-36s  %s\n", "INSTANCE", "STATE", "VTPM", "DOMAIN");
        json_array_foreach(a, i, it)
            printf("%-36s  %-12s  %-36s  %s\n", sget(it, "instance_uuid"), sget(it, "state"),
                   sget(it, "vtpm_uuid"), sget(it, "vtpm_domain"));
        ret = 0;
    } else if (r.status == 200 && strcmp(cmd, "domains") == 0 && !as_json) {
        json_t *a = json_object_get(j, "domains"), *it;
        size_t i;
        printf("%-48s  %-7s  %-36s  %s\n", "DOMAIN", "STATE", "INSTANCE", "ORPHAN");
        json_array_foreach(a, i, it)
            printf("%-48s  %-7s  %-36s  %s\n", sget(it, "name"),
                   json_is_true(json_object_get(it, "active")) ? "running" : "stopped",
                   sget(it, "instance_uuid"),
                   json_is_true(json_object_get(it, "orphan")) ? "yes" : "no");
        ret = 0;
    } else if (r.status == 200 || (r.status == 503 && strcmp(cmd, "health") == 0)) {
        print_json(j);
        ret = r.status == 200 ? 0 : 1;
    } else {
        print_error(&r);
    }
out:
    json_decref(j);
    free(r.body);
    free(path);
    return ret;
}
