/* novamsg: the entry point and the full decoder.
 *
 * novamsg_decode() runs the cheap filter (src/novamsg_scan.c) first and
 * loads the message with jansson only when the filter cannot rule it out.
 * The full decoder reads the oslo 2.0 envelope with a strict scanner of
 * its own when it is the usual flat object of strings (jansson spends as
 * long on the envelope's one long escaped string as on the whole inner
 * message), and with jansson otherwise; the inner message always with
 * jansson, duplicate keys refused so that no two readers can disagree on
 * which value counts. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "novamsg_priv.h"
#include "uuidutil.h"
#include "xalloc.h"

/* Longest instance_name handed on: it may become a libvirt domain name. */
#define INSTANCE_NAME_MAX 64

static const char *why(struct nova_event *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *why(struct nova_event *ev, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ev->why, sizeof(ev->why), fmt, ap);
    va_end(ap);
    /* The text may quote the bus: keep the log line one printable line. */
    for (char *p = ev->why; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return ev->why;
}

static bool content_type_ok(const char *ct)
{
    size_t n;

    if (!ct || !*ct)
        return true; /* publishers other than oslo may set none */
    n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* What both paths refuse before reading any JSON. */
static bool precheck(const char *body, size_t len, const char *content_type,
                     size_t max_size, struct nova_event *ev,
                     const char **reason)
{
    if (max_size && len > max_size) {
        *reason = why(ev, "message of %zu bytes exceeds the %zu-byte limit",
                      len, max_size);
        return false;
    }
    if (!content_type_ok(content_type)) {
        *reason = why(ev, "content type '%.60s' is not application/json",
                      content_type);
        return false;
    }
    if (len == 0) {
        *reason = "empty message";
        return false;
    }
    if (memchr(body, '\0', len)) {
        *reason = "embedded NUL byte";
        return false;
    }
    return true;
}

static bool str_is(const json_t *j, const char *lit)
{
    return json_is_string(j) && strlen(lit) == json_string_length(j) &&
           memcmp(json_string_value(j), lit, json_string_length(j)) == 0;
}

/* An optional string member: absent or null leaves *out NULL. false when
 * it has another type. */
static bool opt_str(const json_t *obj, const char *key, char **out)
{
    const json_t *j = json_object_get(obj, key);

    *out = NULL;
    if (!j || json_is_null(j))
        return true;
    if (!json_is_string(j))
        return false;
    *out = xstrndup(json_string_value(j), json_string_length(j));
    return true;
}

static char *scalar_text(const json_t *j)
{
    char *s;

    switch (json_typeof(j)) {
    case JSON_STRING:
        return xstrndup(json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        xasprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return s;
    case JSON_REAL:
        xasprintf(&s, "%.17g", json_real_value(j));
        return s;
    case JSON_TRUE:
        return xstrdup("true");
    case JSON_FALSE:
        return xstrdup("false");
    default:
        return NULL;
    }
}

/* A map member: an object (its scalar values kept; null, nested objects
 * and arrays cannot be matched by a glob and are skipped), absent or null
 * (*has false). false when it has another type. */
static bool opt_map(const json_t *obj, const char *key, struct nova_kvmap *m,
                    bool *has)
{
    const json_t *j = json_object_get(obj, key), *v;
    const char *k;

    *has = false;
    if (!j || json_is_null(j))
        return true;
    if (!json_is_object(j))
        return false;
    *has = true;
    m->v = xcalloc(json_object_size(j) + 1, sizeof(*m->v));
    json_object_foreach((json_t *)j, k, v) {
        char *text = scalar_text(v);

        if (!text)
            continue;
        m->v[m->n].key = xstrdup(k);
        m->v[m->n].value = text;
        m->n++;
    }
    return true;
}

static bool safe_instance_name(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_' &&
            s[n] != '.')
            return false;
    return n > 0 && n <= INSTANCE_NAME_MAX;
}

/* The error text of a create.error, when the payload has one. */
static char *fault_text(const json_t *data, enum nova_format fmt)
{
    const json_t *f, *fd, *msg, *exc;

    if (fmt == NOVA_FORMAT_LEGACY) {
        msg = json_object_get(data, "message");
        return json_is_string(msg) ? scalar_text(msg) : NULL;
    }
    f = json_object_get(data, "fault");
    fd = json_is_object(f) ? json_object_get(f, "nova_object.data") : NULL;
    if (!json_is_object(fd))
        return NULL;
    msg = json_object_get(fd, "exception_message");
    exc = json_object_get(fd, "exception");
    if (json_is_string(msg))
        return scalar_text(msg);
    return json_is_string(exc) ? scalar_text(exc) : NULL;
}

/* Fills ev from a message that concerns this host. */
static enum novamsg_class fill(const json_t *msg, const json_t *data,
                               enum nova_kind kind, enum nova_format fmt,
                               const char *host, size_t host_len,
                               struct nova_event *ev, const char **reason)
{
    const json_t *uuid, *flavor, *fdata;
    char *name = NULL;

    ev->kind = kind;
    ev->format = fmt;
    uuid = json_object_get(data, fmt == NOVA_FORMAT_LEGACY ? "instance_id"
                                                            : "uuid");
    if (!json_is_string(uuid) ||
        uuid_canonical(json_string_value(uuid), ev->instance_uuid) < 0) {
        *reason = "instance UUID missing or invalid";
        return NOVAMSG_MALFORMED;
    }
    ev->host = xstrndup(host, host_len);
    if (!opt_str(data, "tenant_id", &ev->project_id)) {
        *reason = "tenant_id is not a string";
        return NOVAMSG_MALFORMED;
    }
    if (!opt_str(data, "user_id", &ev->user_id)) {
        *reason = "user_id is not a string";
        return NOVAMSG_MALFORMED;
    }
    if (!opt_map(data, "metadata", &ev->metadata, &ev->has_metadata)) {
        *reason = "metadata is not an object";
        return NOVAMSG_MALFORMED;
    }
    if (fmt == NOVA_FORMAT_LEGACY) {
        if (!opt_str(data, "instance_type", &ev->flavor)) {
            *reason = "instance_type is not a string";
            return NOVAMSG_MALFORMED;
        }
        if (!opt_map(data, "image_meta", &ev->image_properties,
                     &ev->has_image_properties)) {
            *reason = "image_meta is not an object";
            return NOVAMSG_MALFORMED;
        }
    } else {
        flavor = json_object_get(data, "flavor");
        if (flavor && !json_is_null(flavor)) {
            fdata = json_object_get(flavor, "nova_object.data");
            if (!json_is_object(flavor) || !json_is_object(fdata)) {
                *reason = "flavor is not a FlavorPayload object";
                return NOVAMSG_MALFORMED;
            }
            if (!opt_str(fdata, "name", &ev->flavor)) {
                *reason = "flavor name is not a string";
                return NOVAMSG_MALFORMED;
            }
            if (!opt_map(fdata, "extra_specs", &ev->flavor_extra_specs,
                         &ev->has_extra_specs)) {
                *reason = "flavor extra_specs is not an object";
                return NOVAMSG_MALFORMED;
            }
        }
        if (!opt_str(data, "instance_name", &name)) {
            *reason = "instance_name is not a string";
            return NOVAMSG_MALFORMED;
        }
        /* It may name the stub domain: only a plain name is handed on. */
        if (name && safe_instance_name(name))
            ev->instance_name = steal_ptr(name);
        free(name);
        if (!opt_str(data, "request_id", &ev->request_id)) {
            *reason = "request_id is not a string";
            return NOVAMSG_MALFORMED;
        }
    }
    if (!ev->request_id &&
        !opt_str(msg, "_context_request_id", &ev->request_id)) {
        *reason = "_context_request_id is not a string";
        return NOVAMSG_MALFORMED;
    }
    if (!opt_str(msg, "message_id", &ev->message_id) ||
        !opt_str(msg, "timestamp", &ev->timestamp)) {
        *reason = "message_id or timestamp is not a string";
        return NOVAMSG_MALFORMED;
    }
    ev->event_type = scalar_text(json_object_get(msg, "event_type"));
    ev->publisher_id = scalar_text(json_object_get(msg, "publisher_id"));
    if (kind == NOVA_KIND_CREATE_ERROR)
        ev->fault = fault_text(data, fmt);
    *reason = "concerns this host";
    return NOVAMSG_RELEVANT;
}

/* Relevance, the same rules as the filter's decide_top/decide_payload;
 * then the fields. */
static enum novamsg_class classify(const json_t *msg, const char *this_host,
                                   struct nova_event *ev, const char **reason)
{
    const json_t *et, *pubj, *payload, *data, *h;
    enum nova_format fmt;
    enum nova_kind kind;
    enum novamsg_pub pub;
    enum novamsg_hostsrc src;
    const char *host;
    size_t hlen, tlen = strlen(this_host);
    enum novamsg_class c;

    et = json_object_get(msg, "event_type");
    if (!json_is_string(et)) {
        *reason = "event_type missing or not a string";
        return NOVAMSG_MALFORMED;
    }
    kind = novamsg_kind_of(json_string_value(et), json_string_length(et), &fmt);
    if (kind == NOVA_KIND_OTHER) {
        *reason = "not a create or delete";
        return NOVAMSG_IRRELEVANT;
    }
    pubj = json_object_get(msg, "publisher_id");
    if (!json_is_string(pubj)) {
        *reason = "publisher_id missing or not a string";
        return NOVAMSG_MALFORMED;
    }
    pub = novamsg_publisher(json_string_value(pubj), json_string_length(pubj),
                            &host, &hlen);
    src = novamsg_host_source(kind, pub);
    if (src == NOVAMSG_HOST_PUBLISHER &&
        !(hlen == tlen && memcmp(host, this_host, hlen) == 0)) {
        *reason = "another host's instance";
        return NOVAMSG_IRRELEVANT;
    }
    payload = json_object_get(msg, "payload");
    if (!json_is_object(payload)) {
        *reason = "payload missing or not an object";
        return NOVAMSG_MALFORMED;
    }
    data = payload;
    if (fmt == NOVA_FORMAT_VERSIONED) {
        data = json_object_get(payload, "nova_object.data");
        if (!json_is_object(data)) {
            *reason = "versioned payload without nova_object.data";
            return NOVAMSG_MALFORMED;
        }
    }
    if (src != NOVAMSG_HOST_PUBLISHER) {
        h = json_object_get(data, "host");
        if (h && !json_is_null(h) && !json_is_string(h)) {
            *reason = "payload host is not a string";
            return NOVAMSG_MALFORMED;
        }
        if (json_is_string(h) && json_string_length(h) > 0) {
            host = json_string_value(h);
            hlen = json_string_length(h);
        } else if (src == NOVAMSG_HOST_PAYLOAD) {
            *reason = "no host in the payload";
            return NOVAMSG_IRRELEVANT;
        }
        if (!(hlen == tlen && memcmp(host, this_host, hlen) == 0)) {
            *reason = "another host's instance";
            return NOVAMSG_IRRELEVANT;
        }
    }
    c = fill(msg, data, kind, fmt, host, hlen, ev, reason);
    if (c != NOVAMSG_RELEVANT) {
        /* Keep the static reason; drop what fill() allocated. */
        const char *r = *reason;

        nova_event_clear(ev);
        *reason = r;
    }
    return c;
}

/* True when j nests objects and arrays more than max levels deep. The
 * recursion is bounded by jansson's own parsing limit. */
static bool too_deep(const json_t *j, int max)
{
    const json_t *v;
    const char *k;
    size_t i;

    if (!json_is_object(j) && !json_is_array(j))
        return false;
    if (max <= 0)
        return true;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
            if (too_deep(v, max - 1))
                return true;
        return false;
    }
    json_object_foreach((json_t *)j, k, v)
        if (too_deep(v, max - 1))
            return true;
    return false;
}

static bool version_ok(const char *v, size_t len)
{
    char buf[16];
    size_t n;

    if (!v || len >= sizeof(buf) ||
        novamsg_json_unescape(v, len, buf, &n) < 0)
        return false;
    return n == 3 && memcmp(buf, "2.0", 3) == 0;
}

/* The full decoder after precheck(). */
static enum novamsg_class decode(const char *s, size_t len,
                                 const char *this_host, struct nova_event *ev,
                                 const char **reason)
{
    /* Genuine inner messages fit on the stack; a heap buffer of their
     * size would also make malloc consolidate the many small chunks
     * jansson freed for the previous message. */
    char stackbuf[16 * 1024];
    json_auto_t *root = NULL;
    json_auto_t *inner_root = NULL;
    char *heap autofree = NULL;
    const char *inner = NULL;
    const json_t *msg = NULL, *m;
    struct novamsg_envelope env;
    json_error_t err;
    size_t inner_len = 0;

    if (novamsg_envelope_scan(s, len, &env) && env.message) {
        char *buf = stackbuf;

        if (!version_ok(env.version, env.version_len)) {
            *reason = "oslo envelope version missing or not 2.0";
            return NOVAMSG_MALFORMED;
        }
        if (env.message_len >= sizeof(stackbuf))
            buf = heap = xmalloc(env.message_len + 1);
        inner = buf;
        if (novamsg_json_unescape(env.message, env.message_len, buf,
                                  &inner_len) < 0) {
            *reason = "oslo.message holds \\u0000 or an unpaired surrogate";
            return NOVAMSG_MALFORMED;
        }
    } else {
        /* jansson itself stops at 2048 levels; shallower limits are
         * checked on the tree. */
        root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);
        if (!root) {
            *reason = why(ev, "not JSON: %s (offset %d)", err.text,
                          err.position);
            return NOVAMSG_MALFORMED;
        }
        if (!json_is_object(root)) {
            *reason = "not a JSON object";
            return NOVAMSG_MALFORMED;
        }
        if (too_deep(root, NOVAMSG_MAX_DEPTH)) {
            *reason = "JSON nested too deep";
            return NOVAMSG_MALFORMED;
        }
        m = json_object_get(root, "oslo.message");
        if (m) {
            if (!json_is_string(m)) {
                *reason = "oslo.message is not a string";
                return NOVAMSG_MALFORMED;
            }
            if (!str_is(json_object_get(root, "oslo.version"), "2.0")) {
                *reason = "oslo envelope version missing or not 2.0";
                return NOVAMSG_MALFORMED;
            }
            inner_len = json_string_length(m);
            inner = json_string_value(m);
        } else {
            msg = root; /* oslo.messaging's v1 driver: no envelope */
        }
    }
    if (inner) {
        inner_root = json_loadb(inner, inner_len, JSON_REJECT_DUPLICATES, &err);
        if (!inner_root) {
            *reason = why(ev, "oslo.message is not JSON: %s (offset %d)",
                          err.text, err.position);
            return NOVAMSG_MALFORMED;
        }
        if (too_deep(inner_root, NOVAMSG_MAX_DEPTH)) {
            *reason = "JSON nested too deep";
            return NOVAMSG_MALFORMED;
        }
        msg = inner_root;
    }
    if (!json_is_object(msg)) {
        *reason = "message is not a JSON object";
        return NOVAMSG_MALFORMED;
    }
    return classify(msg, this_host, ev, reason);
}

enum novamsg_class novamsg_decode_full(const void *body, size_t len,
                                       const char *content_type,
                                       const char *this_host, size_t max_size,
                                       struct nova_event *ev,
                                       const char **reason)
{
    memset(ev, 0, sizeof(*ev));
    if (!this_host)
        this_host = "";
    if (!precheck(body, len, content_type, max_size, ev, reason))
        return NOVAMSG_MALFORMED;
    return decode(body, len, this_host, ev, reason);
}

enum novamsg_class novamsg_decode(const void *body, size_t len,
                                  const char *content_type,
                                  const char *this_host, size_t max_size,
                                  struct nova_event *ev, const char **reason)
{
    memset(ev, 0, sizeof(*ev));
    if (!this_host)
        this_host = "";
    if (!precheck(body, len, content_type, max_size, ev, reason))
        return NOVAMSG_MALFORMED;
    if (novamsg_fast(body, len, this_host, reason) == NOVAMSG_FAST_IRRELEVANT)
        return NOVAMSG_IRRELEVANT;
    return decode(body, len, this_host, ev, reason);
}

static void kvmap_clear(struct nova_kvmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].value);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

void nova_event_clear(struct nova_event *ev)
{
    if (!ev)
        return;
    free(ev->host);
    free(ev->project_id);
    free(ev->user_id);
    free(ev->flavor);
    kvmap_clear(&ev->flavor_extra_specs);
    kvmap_clear(&ev->image_properties);
    kvmap_clear(&ev->metadata);
    free(ev->instance_name);
    free(ev->request_id);
    free(ev->message_id);
    free(ev->timestamp);
    free(ev->event_type);
    free(ev->publisher_id);
    free(ev->fault);
    memset(ev, 0, sizeof(*ev));
}

const char *nova_kvmap_get(const struct nova_kvmap *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].key, key) == 0)
            return m->v[i].value;
    return NULL;
}

const char *nova_kind_name(enum nova_kind kind)
{
    switch (kind) {
    case NOVA_KIND_CREATE_START: return "create.start";
    case NOVA_KIND_CREATE_END: return "create.end";
    case NOVA_KIND_CREATE_ERROR: return "create.error";
    case NOVA_KIND_DELETE_START: return "delete.start";
    case NOVA_KIND_DELETE_END: return "delete.end";
    case NOVA_KIND_OTHER:
    default: return "other";
    }
}

const char *nova_format_name(enum nova_format format)
{
    return format == NOVA_FORMAT_LEGACY ? "legacy" : "versioned";
}

const char *novamsg_class_name(enum novamsg_class c)
{
    switch (c) {
    case NOVAMSG_RELEVANT: return "relevant";
    case NOVAMSG_IRRELEVANT: return "irrelevant";
    case NOVAMSG_MALFORMED:
    default: return "malformed";
    }
}
