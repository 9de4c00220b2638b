/* vtpmd's status notifications in oslo.messaging's wire format (the
 * rabbit driver with driver=messagingv2): the inner message is itself a
 * JSON string inside {"oslo.version": "2.0", "oslo.message": ...}. Built
 * with jansson, never by concatenation. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uuid/uuid.h>

#include "vconfig.h"
#include "jsonutil.h"
#include "log.h"
#include "status.h"
#include "uuidutil.h"
#include "xalloc.h"

static const char *const status_events[] = {
    STATUS_CREATE_START, STATUS_CREATE_END, STATUS_CREATE_ERROR,
    STATUS_DELETE_START, STATUS_DELETE_END, STATUS_DELETE_ERROR,
    STATUS_DOMAIN_RESTARTED, STATUS_DOMAIN_ERROR,
};

static bool status_known_event(const char *event_type)
{
    for (size_t i = 0; i < sizeof(status_events) / sizeof(status_events[0]); i++)
        if (strcmp(event_type, status_events[i]) == 0)
            return true;
    return false;
}

static bool status_is_error(const char *event_type)
{
    size_t l = strlen(event_type);

    return l > 6 && strcmp(event_type + l - 6, ".error") == 0;
}

/* Sets key to s or null; false when s is not UTF-8. */
static bool set_str(json_t *o, const char *key, const char *s)
{
    json_t *v = s ? json_string(s) : json_null();

    if (v == NULL)
        return false;
    json_object_set_new(o, key, v);
    return true;
}

/* oslo.messaging's timestamp: str(datetime.utcnow()), always with the
 * microseconds. */
static void status_timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ld", ts.tv_nsec / 1000);
}

int status_build(const struct config *cfg, const char *event_type,
                 const struct status_payload *p, char **body, size_t *len,
                 char **routing_key)
{
    json_t *payload autojson = json_object();
    json_t *msg autojson = json_object();
    json_t *env autojson = NULL;
    char *inner autofree = NULL;
    char *out = NULL, *publisher autofree = NULL;
    char message_id[UUIDUTIL_BUFLEN], unique_id[33], ts[40];
    bool error, ok = true;
    uuid_t u;

    if (event_type == NULL || !status_known_event(event_type)) {
        log_error("status: unknown event type event=%s", event_type ? event_type : "(null)");
        return -EINVAL;
    }
    if (p->instance_uuid == NULL || uuid_parse(p->instance_uuid, u) < 0) {
        log_error("status: instance_uuid is not a UUID event=%s", event_type);
        return -EINVAL;
    }
    error = status_is_error(event_type);

    ok &= set_str(payload, "instance_uuid", p->instance_uuid);
    ok &= set_str(payload, "host", p->host ? p->host : cfg->host);
    ok &= set_str(payload, "vtpm_uuid", p->vtpm_uuid);
    ok &= set_str(payload, "vtpm_domain", p->vtpm_domain);
    ok &= set_str(payload, "image_path", p->image_path);
    ok &= set_str(payload, "rule", p->rule);
    ok &= set_str(payload, "state", p->state);
    json_object_set_new(payload, "duration_ms",
                        p->duration_ms >= 0 ? json_integer(p->duration_ms) : json_null());
    ok &= set_str(payload, "request_id", p->request_id);
    if (error) {
        json_t *e = json_object();

        ok &= set_str(e, "code", p->error_code);
        ok &= set_str(e, "message", p->error_message);
        json_object_set_new(payload, "error", e);
    }
    if (!ok) {
        log_error("status: a field is not valid UTF-8 event=%s instance=%s", event_type,
                  p->instance_uuid);
        return -EINVAL;
    }

    uuid_generate_random(u);
    uuid_unparse_lower(u, message_id);
    uuid_generate_random(u);
    for (int i = 0; i < 16; i++)
        snprintf(unique_id + 2 * i, 3, "%02x", u[i]);
    status_timestamp(ts, sizeof(ts));
    xasprintf(&publisher, "vtpmd:%s", cfg->host);

    json_object_set_new(msg, "message_id", json_string(message_id));
    json_object_set_new(msg, "_unique_id", json_string(unique_id));
    ok &= set_str(msg, "publisher_id", publisher);
    json_object_set_new(msg, "event_type", json_string(event_type));
    json_object_set_new(msg, "priority", json_string(error ? "ERROR" : "INFO"));
    json_object_set(msg, "payload", payload);
    json_object_set_new(msg, "timestamp", json_string(ts));
    if (!ok)
        return -EINVAL;

    inner = json_dumps(msg, JSON_COMPACT);
    if (inner == NULL)
        abort(); /* allocation failure: xmalloc's policy */
    env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", inner);
    if (env == NULL)
        abort();
    out = json_dumps(env, JSON_COMPACT);
    if (out == NULL)
        abort();
    *len = strlen(out);
    *body = out;
    xasprintf(routing_key, "%s.%s", cfg->status.topic, error ? "error" : "info");
    return 0;
}

int status_publish(struct bus *b, const struct config *cfg, const char *event_type,
                   const struct status_payload *p, bus_publish_cb cb, void *arg)
{
    char *body autofree = NULL, *rk autofree = NULL;
    size_t len;
    int r;

    r = status_build(cfg, event_type, p, &body, &len, &rk);
    if (r < 0)
        return r;
    r = bus_publish(b, cfg->status.exchange, rk, body, len, cb, arg);
    if (r == 0)
        log_debug("status published event=%s instance=%s routing_key=%s", event_type,
                  p->instance_uuid, rk);
    return r;
}
