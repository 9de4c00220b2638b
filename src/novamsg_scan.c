/* novamsg's cheap side: the filter that settles irrelevant notifications
 * with a tokenizer (jsmn) and no allocation, the strict scanner of the
 * oslo envelope, and the JSON string and depth helpers the full decoder
 * (src/novamsg.c) shares.
 *
 * The filter reads the envelope up to "oslo.message", unescapes the inner
 * message chunk by chunk into a stack buffer and tokenizes it until the
 * top-level event_type and publisher_id are known; oslo.messaging writes
 * them first, so for most messages that is the first 200 bytes. Only when
 * the payload's host decides (nova-api publishers, legacy deletes) does it
 * read the whole inner message. Whenever something is unusual (escapes
 * where it compares, unexpected types, invalid or truncated JSON, too many
 * tokens) it answers UNDECIDED and leaves the verdict to the full decoder:
 * it may only say IRRELEVANT when the full decoder could not say RELEVANT. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "novamsg_priv.h"

/* A tokenizer, header only; strict mode so that a chunk ending inside a
 * number or literal is "partial" rather than a short primitive, parent
 * links to walk objects. Its functions become static to this file. */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <jsmn.h>
#pragma GCC diagnostic pop

/* Stack budget of the filter: the unescaped inner message and its tokens.
 * Genuine notifications are 2-6 KB with about 200 tokens; bigger ones go
 * to the full decoder. */
#define FAST_INNER_MAX (32 * 1024)
#define FAST_TOKENS 1024
#define FAST_FIRST_CHUNK 256
/* jsmn counts in unsigned int and int. */
#define FAST_BARE_MAX (1024 * 1024)

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

static bool span_eq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);

    return len == n && memcmp(s, lit, n) == 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static unsigned hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    return (unsigned)(c - 'A' + 10);
}

static uint32_t hex4(const char *s)
{
    return (hex_val(s[0]) << 12) | (hex_val(s[1]) << 8) |
           (hex_val(s[2]) << 4) | hex_val(s[3]);
}

/* A complete "\\uXXXX" at s[p]: true with its value. */
static bool hex_escape(const char *s, size_t len, size_t p, uint32_t *cp)
{
    if (p + 6 > len || s[p] != '\\' || s[p + 1] != 'u' || !is_hex(s[p + 2]) ||
        !is_hex(s[p + 3]) || !is_hex(s[p + 4]) || !is_hex(s[p + 5]))
        return false;
    *cp = hex4(s + p + 2);
    return true;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0: the same rules as
 * jansson (no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_valid(const unsigned char *s, size_t avail)
{
    uint32_t cp;
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
        (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

/* Length of the run of plain characters at s: up to the first quote,
 * backslash, control character or non-ASCII byte (len if none). Sixteen
 * bytes at a time where SSE2 is there: the envelope's one long escaped
 * string is most of every body. */
static size_t plain_run(const char *s, size_t len)
{
    size_t i = 0;

#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);

    for (; i + 16 <= len; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* Signed compare: bytes from 0x80 are negative, so "below space"
         * catches control characters and non-ASCII alike. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                              _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);

        if (mask)
            return i + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
            break;
    }
    return i;
}

/* Scans the JSON string starting at s[*i] == '"' as jansson (without
 * JSON_ALLOW_NUL) would accept it. On success *i is past the closing quote, [*start, *end) the raw
 * contents, *escaped whether they hold a backslash. */
static bool scan_string(const char *s, size_t len, size_t *i, size_t *start,
                        size_t *end, bool *escaped)
{
    size_t p = *i + 1;

    *escaped = false;
    *start = p;
    while (p < len) {
        unsigned char c;

        p += plain_run(s + p, len - p);
        if (p >= len)
            break;
        c = (unsigned char)s[p];

        if (c == '"') {
            *end = p;
            *i = p + 1;
            return true;
        }
        if (c == '\\') {
            if (p + 1 >= len)
                return false;
            *escaped = true;
            switch (s[p + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                p += 2;
                break;
            case 'u': {
                uint32_t cp;

                if (!hex_escape(s, len, p, &cp) || cp == 0 ||
                    (cp >= 0xDC00 && cp <= 0xDFFF))
                    return false; /* jansson refuses \u0000 and lone halves */
                p += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (!hex_escape(s, len, p, &cp) || cp < 0xDC00 ||
                        cp > 0xDFFF)
                        return false;
                    p += 6;
                }
                break;
            }
            default:
                return false;
            }
        } else if (c < 0x20) {
            return false;
        } else if (c < 0x80) {
            p++;
        } else {
            size_t n = utf8_valid((const unsigned char *)s + p, len - p);

            if (n == 0)
                return false;
            p += n;
        }
    }
    return false;
}

int novamsg_envelope_scan(const char *body, size_t len,
                          struct novamsg_envelope *env)
{
    /* Room for the two envelope keys and a few more; beyond that jansson. */
    struct { size_t start, len; } keys[8];
    size_t nkeys = 0, i;

    memset(env, 0, sizeof(*env));
    i = skip_ws(body, 0, len);
    if (i >= len || body[i] != '{')
        return 0;
    i = skip_ws(body, i + 1, len);
    if (i < len && body[i] == '}') {
        i++;
        goto end;
    }
    for (;;) {
        size_t ks, ke, vs, ve;
        bool kesc, vesc;

        if (i >= len || body[i] != '"' ||
            !scan_string(body, len, &i, &ks, &ke, &kesc) || kesc)
            return 0;
        /* Duplicate keys: jansson (JSON_REJECT_DUPLICATES) refuses them. */
        for (size_t k = 0; k < nkeys; k++)
            if (keys[k].len == ke - ks &&
                memcmp(body + keys[k].start, body + ks, ke - ks) == 0)
                return 0;
        if (nkeys == sizeof(keys) / sizeof(keys[0]))
            return 0;
        keys[nkeys].start = ks;
        keys[nkeys].len = ke - ks;
        nkeys++;
        i = skip_ws(body, i, len);
        if (i >= len || body[i] != ':')
            return 0;
        i = skip_ws(body, i + 1, len);
        if (i >= len || body[i] != '"' ||
            !scan_string(body, len, &i, &vs, &ve, &vesc))
            return 0;
        if (span_eq(body + ks, ke - ks, "oslo.message")) {
            env->message = body + vs;
            env->message_len = ve - vs;
        } else if (span_eq(body + ks, ke - ks, "oslo.version")) {
            env->version = body + vs;
            env->version_len = ve - vs;
        }
        i = skip_ws(body, i, len);
        if (i < len && body[i] == ',') {
            i = skip_ws(body, i + 1, len);
            continue;
        }
        if (i < len && body[i] == '}') {
            i++;
            break;
        }
        return 0;
    }
end:
    if (skip_ws(body, i, len) != len) {
        memset(env, 0, sizeof(*env));
        return 0;
    }
    return 1;
}

static char *put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Copies s up to its first backslash (or all of it) to o and returns how
 * many bytes that was. o may lag behind s but not run ahead of it within
 * one buffer pair of the same length: 16-byte stores then stay inside. */
static size_t copy_to_backslash(const char *s, size_t len, char *o)
{
    size_t i = 0;

#ifdef __SSE2__
    const __m128i bslash = _mm_set1_epi8('\\');

    for (; i + 16 <= len; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, bslash));

        _mm_storeu_si128((__m128i *)(void *)(o + i), v);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; i < len && s[i] != '\\'; i++)
        o[i] = s[i];
    return i;
}

int novamsg_json_unescape(const char *s, size_t len, char *out,
                          size_t *out_len)
{
    char *o = out;
    size_t i = 0;

    while (i < len) {
        size_t run = copy_to_backslash(s + i, len - i, o);
        uint32_t cp;

        o += run;
        i += run;
        if (i >= len)
            break;
        /* s was validated by scan_string(): the escape is complete. */
        switch (s[i + 1]) {
        case 'b': *o++ = '\b'; i += 2; continue;
        case 'f': *o++ = '\f'; i += 2; continue;
        case 'n': *o++ = '\n'; i += 2; continue;
        case 'r': *o++ = '\r'; i += 2; continue;
        case 't': *o++ = '\t'; i += 2; continue;
        case 'u': break;
        default: *o++ = s[i + 1]; i += 2; continue;
        }
        cp = hex4(s + i + 2);
        i += 6;
        if (cp == 0)
            return -EINVAL; /* jansson: \u0000 needs JSON_ALLOW_NUL */
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return -EINVAL; /* a low surrogate alone */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;

            if (i + 6 > len || s[i] != '\\' || s[i + 1] != 'u')
                return -EINVAL;
            lo = hex4(s + i + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return -EINVAL;
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o = put_utf8(o, cp);
    }
    *o = '\0';
    *out_len = (size_t)(o - out);
    return 0;
}

enum nova_kind novamsg_kind_of(const char *et, size_t len,
                               enum nova_format *format)
{
    static const struct {
        const char *suffix;
        enum nova_kind kind;
    } kinds[] = {
        {"create.start", NOVA_KIND_CREATE_START},
        {"create.end", NOVA_KIND_CREATE_END},
        {"create.error", NOVA_KIND_CREATE_ERROR},
        {"delete.start", NOVA_KIND_DELETE_START},
        {"delete.end", NOVA_KIND_DELETE_END},
    };
    static const char legacy[] = "compute.instance.";
    static const char versioned[] = "instance.";

    if (len > sizeof(legacy) - 1 &&
        memcmp(et, legacy, sizeof(legacy) - 1) == 0) {
        *format = NOVA_FORMAT_LEGACY;
        et += sizeof(legacy) - 1;
        len -= sizeof(legacy) - 1;
    } else if (len > sizeof(versioned) - 1 &&
               memcmp(et, versioned, sizeof(versioned) - 1) == 0) {
        *format = NOVA_FORMAT_VERSIONED;
        et += sizeof(versioned) - 1;
        len -= sizeof(versioned) - 1;
    } else {
        *format = NOVA_FORMAT_VERSIONED;
        return NOVA_KIND_OTHER;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (span_eq(et, len, kinds[i].suffix))
            return kinds[i].kind;
    return NOVA_KIND_OTHER;
}

enum novamsg_pub novamsg_publisher(const char *pub, size_t len,
                                   const char **host, size_t *host_len)
{
    static const struct {
        const char *prefix;
        enum novamsg_pub pub;
    } forms[] = {
        {"compute.", NOVAMSG_PUB_COMPUTE},
        {"nova-compute:", NOVAMSG_PUB_NOVA_COMPUTE},
        {"nova-api:", NOVAMSG_PUB_NOVA_API},
    };

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t n = strlen(forms[i].prefix);

        if (len > n && memcmp(pub, forms[i].prefix, n) == 0) {
            *host = pub + n;
            *host_len = len - n;
            return forms[i].pub;
        }
    }
    *host = NULL;
    *host_len = 0;
    return NOVAMSG_PUB_OTHER;
}

enum novamsg_hostsrc novamsg_host_source(enum nova_kind kind,
                                         enum novamsg_pub pub)
{
    switch (pub) {
    case NOVAMSG_PUB_NOVA_COMPUTE:
        return NOVAMSG_HOST_PUBLISHER;
    case NOVAMSG_PUB_COMPUTE:
        /* nova-api sends legacy deletes as compute.<api host>: the
         * payload names the instance's host. */
        if (kind == NOVA_KIND_DELETE_START || kind == NOVA_KIND_DELETE_END)
            return NOVAMSG_HOST_PAYLOAD_OR_PUBLISHER;
        return NOVAMSG_HOST_PUBLISHER;
    case NOVAMSG_PUB_NOVA_API:
    case NOVAMSG_PUB_OTHER:
    default:
        return NOVAMSG_HOST_PAYLOAD;
    }
}

/* ---- the filter ---- */

enum step {
    STEP_IRRELEVANT,
    STEP_UNDECIDED,
    STEP_MORE,    /* needs more of the inner message */
    STEP_PAYLOAD, /* needs the payload's host: the whole inner message */
};

struct fast {
    const char *this_host;
    size_t this_len;
    jsmn_parser p;
    const char *js; /* the tokenized text */
    int next;       /* first token scan_top() has not looked at */
    int et, pub, payload; /* value tokens of those top-level keys, or -1 */
    bool oslo_message;    /* a top-level "oslo.message" key */
    bool escaped_key;     /* a top-level key with an escape */
    jsmntok_t tok[FAST_TOKENS];
};

static bool tok_eq(const struct fast *f, int t, const char *lit)
{
    return span_eq(f->js + f->tok[t].start,
                   (size_t)(f->tok[t].end - f->tok[t].start), lit);
}

static bool tok_escaped(const struct fast *f, int t)
{
    return memchr(f->js + f->tok[t].start, '\\',
                  (size_t)(f->tok[t].end - f->tok[t].start)) != NULL;
}

/* Records the top-level keys tokenized so far. 1: a key's value is not
 * tokenized yet; 0: all seen; -1: not an object of key/value pairs. */
static int scan_top(struct fast *f)
{
    int n = (int)f->p.toknext;

    if (n == 0)
        return 1;
    if (f->tok[0].type != JSMN_OBJECT)
        return -1;
    while (f->next < n) {
        int k = f->next;

        if (k == 0 || f->tok[k].parent != 0) {
            f->next++;
            continue;
        }
        if (f->tok[k].type != JSMN_STRING)
            return -1;
        if (k + 1 >= n)
            return 1;
        if (f->tok[k + 1].parent != k)
            return -1;
        if (tok_escaped(f, k))
            f->escaped_key = true;
        else if (tok_eq(f, k, "event_type"))
            f->et = k + 1;
        else if (tok_eq(f, k, "publisher_id"))
            f->pub = k + 1;
        else if (tok_eq(f, k, "payload"))
            f->payload = k + 1;
        else if (tok_eq(f, k, "oslo.message"))
            f->oslo_message = true;
        f->next = k + 1;
    }
    return 0;
}

/* A string token without escapes, so its raw bytes are its value. */
static bool plain_string(const struct fast *f, int t)
{
    return f->tok[t].type == JSMN_STRING && !tok_escaped(f, t);
}

static bool is_this_host(const struct fast *f, const char *h, size_t len)
{
    return len == f->this_len && memcmp(h, f->this_host, len) == 0;
}

static enum step decide_top(struct fast *f, const char **reason)
{
    enum nova_format fmt;
    enum nova_kind kind;
    const char *host;
    size_t hlen;
    enum novamsg_pub pub;

    if (f->et < 0)
        return STEP_MORE;
    if (!plain_string(f, f->et))
        return STEP_UNDECIDED;
    kind = novamsg_kind_of(f->js + f->tok[f->et].start,
                           (size_t)(f->tok[f->et].end - f->tok[f->et].start),
                           &fmt);
    if (kind == NOVA_KIND_OTHER) {
        *reason = "not a create or delete";
        return STEP_IRRELEVANT;
    }
    if (f->pub < 0)
        return STEP_MORE;
    if (!plain_string(f, f->pub))
        return STEP_UNDECIDED;
    pub = novamsg_publisher(f->js + f->tok[f->pub].start,
                            (size_t)(f->tok[f->pub].end - f->tok[f->pub].start),
                            &host, &hlen);
    if (novamsg_host_source(kind, pub) != NOVAMSG_HOST_PUBLISHER)
        return STEP_PAYLOAD;
    if (is_this_host(f, host, hlen))
        return STEP_UNDECIDED;
    *reason = "another host's instance";
    return STEP_IRRELEVANT;
}

/* The value token of key in object token obj; -1 when absent, -2 when the
 * object has an escaped key (which might decode to key). */
static int child(const struct fast *f, int obj, const char *key)
{
    int n = (int)f->p.toknext, found = -1;

    for (int j = obj + 1; j < n && f->tok[j].start < f->tok[obj].end; j++) {
        if (f->tok[j].parent != obj)
            continue;
        if (f->tok[j].type != JSMN_STRING || j + 1 >= n ||
            f->tok[j + 1].parent != j || tok_escaped(f, j))
            return -2;
        if (found < 0 && tok_eq(f, j, key))
            found = j + 1;
    }
    return found;
}

/* With the whole inner message tokenized: the payload's host decides. */
static enum step decide_payload(struct fast *f, const char **reason)
{
    enum nova_format fmt;
    enum nova_kind kind;
    enum novamsg_pub pub;
    enum novamsg_hostsrc src;
    const char *phost, *host = NULL;
    size_t phlen, hlen = 0;
    int data, h;

    kind = novamsg_kind_of(f->js + f->tok[f->et].start,
                           (size_t)(f->tok[f->et].end - f->tok[f->et].start),
                           &fmt);
    pub = novamsg_publisher(f->js + f->tok[f->pub].start,
                            (size_t)(f->tok[f->pub].end - f->tok[f->pub].start),
                            &phost, &phlen);
    src = novamsg_host_source(kind, pub);
    if (f->escaped_key || f->payload < 0 ||
        f->tok[f->payload].type != JSMN_OBJECT)
        return STEP_UNDECIDED;
    data = f->payload;
    if (fmt == NOVA_FORMAT_VERSIONED) {
        data = child(f, f->payload, "nova_object.data");
        if (data < 0 || f->tok[data].type != JSMN_OBJECT)
            return STEP_UNDECIDED;
    }
    h = child(f, data, "host");
    if (h == -2)
        return STEP_UNDECIDED;
    if (h >= 0) {
        if (plain_string(f, h)) {
            host = f->js + f->tok[h].start;
            hlen = (size_t)(f->tok[h].end - f->tok[h].start);
        } else if (!(f->tok[h].type == JSMN_PRIMITIVE && tok_eq(f, h, "null"))) {
            return STEP_UNDECIDED;
        }
    }
    if (hlen == 0) { /* null, "" or absent: no host in the payload */
        if (src == NOVAMSG_HOST_PAYLOAD) {
            *reason = "no host in the payload";
            return STEP_IRRELEVANT;
        }
        host = phost;
        hlen = phlen;
    }
    if (is_this_host(f, host, hlen))
        return STEP_UNDECIDED;
    *reason = "another host's instance";
    return STEP_IRRELEVANT;
}

/* The bare (oslo v1) form: the body is the message. Tokenized whole, since
 * a later top-level "oslo.message" would make it an envelope. */
static enum novamsg_fast fast_bare(struct fast *f, const char *body,
                                   size_t len, const char **reason)
{
    enum step st;

    if (len > FAST_BARE_MAX)
        return NOVAMSG_FAST_UNDECIDED;
    f->js = body;
    if (jsmn_parse(&f->p, body, len, f->tok, FAST_TOKENS) < 0 ||
        scan_top(f) != 0 || f->oslo_message || f->escaped_key)
        return NOVAMSG_FAST_UNDECIDED;
    st = decide_top(f, reason);
    if (st == STEP_PAYLOAD)
        st = decide_payload(f, reason);
    return st == STEP_IRRELEVANT ? NOVAMSG_FAST_IRRELEVANT
                                 : NOVAMSG_FAST_UNDECIDED;
}

/* The envelope form: unescape oslo.message's value from src on, in chunks,
 * tokenizing as it grows. */
static enum novamsg_fast fast_inner(struct fast *f, const char *src,
                                    const char *end, const char **reason)
{
    char in[FAST_INNER_MAX];
    size_t n = 0, want = FAST_FIRST_CHUNK;
    bool complete = false, stopped = false, need_payload = false;
    int r = 0;
    enum step st;

    f->js = in;
    while (!complete && !stopped) {
        if (want > sizeof(in))
            want = sizeof(in);
        while (n < want) {
            unsigned char c;
            size_t run = plain_run(src, (size_t)(end - src));

            if (run > want - n)
                run = want - n;
            memcpy(in + n, src, run);
            n += run;
            src += run;
            if (n >= want)
                break;
            if (src >= end) {
                stopped = true; /* unterminated: the full decoder says why */
                break;
            }
            c = (unsigned char)*src;
            if (c == '"') {
                complete = true;
                break;
            }
            if (c < 0x20) {
                stopped = true;
                break;
            }
            if (c != '\\') { /* non-ASCII: the full decoder validates it */
                in[n++] = (char)c;
                src++;
                continue;
            }
            if (src + 1 >= end) {
                stopped = true;
                break;
            }
            switch (src[1]) {
            case '"': case '\\': case '/': c = (unsigned char)src[1]; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default:
                /* \u escapes (rare at this level: oslo escapes non-ASCII
                 * inside the inner text) and invalid ones end what the
                 * filter can read. */
                stopped = true;
                break;
            }
            if (stopped)
                break;
            in[n++] = (char)c;
            src += 2;
        }
        if (!complete && !stopped && n == sizeof(in))
            stopped = true; /* too big for the filter */
        r = jsmn_parse(&f->p, in, n, f->tok, FAST_TOKENS);
        if (r == JSMN_ERROR_INVAL || scan_top(f) < 0)
            return NOVAMSG_FAST_UNDECIDED;
        if (!need_payload) {
            st = decide_top(f, reason);
            if (st == STEP_IRRELEVANT)
                return NOVAMSG_FAST_IRRELEVANT;
            if (st == STEP_UNDECIDED)
                return NOVAMSG_FAST_UNDECIDED;
            need_payload = st == STEP_PAYLOAD;
        }
        if (r == JSMN_ERROR_NOMEM)
            return NOVAMSG_FAST_UNDECIDED;
        want = n * 4;
    }
    /* The whole inner message is here, tokenized. */
    if (stopped || r < 0 || scan_top(f) != 0 || !need_payload)
        return NOVAMSG_FAST_UNDECIDED;
    return decide_payload(f, reason) == STEP_IRRELEVANT
               ? NOVAMSG_FAST_IRRELEVANT
               : NOVAMSG_FAST_UNDECIDED;
}

enum novamsg_fast novamsg_fast(const char *body, size_t len,
                               const char *this_host, const char **reason)
{
    struct fast f;
    size_t i;

    if (!this_host)
        return NOVAMSG_FAST_UNDECIDED;
    f.this_host = this_host;
    f.this_len = strlen(this_host);
    jsmn_init(&f.p);
    f.next = 0;
    f.et = f.pub = f.payload = -1;
    f.oslo_message = f.escaped_key = false;

    /* The envelope's keys up to "oslo.message"; any surprise → bare. */
    i = skip_ws(body, 0, len);
    if (i >= len || body[i] != '{')
        return NOVAMSG_FAST_UNDECIDED;
    i = skip_ws(body, i + 1, len);
    while (i < len && body[i] == '"') {
        size_t ks, ke, vs, ve;
        bool kesc, vesc;

        if (!scan_string(body, len, &i, &ks, &ke, &kesc) || kesc)
            return NOVAMSG_FAST_UNDECIDED;
        i = skip_ws(body, i, len);
        if (i >= len || body[i] != ':')
            return NOVAMSG_FAST_UNDECIDED;
        i = skip_ws(body, i + 1, len);
        if (i >= len)
            return NOVAMSG_FAST_UNDECIDED;
        if (span_eq(body + ks, ke - ks, "oslo.message")) {
            if (body[i] != '"')
                return NOVAMSG_FAST_UNDECIDED;
            return fast_inner(&f, body + i + 1, body + len, reason);
        }
        if (body[i] != '"' || !scan_string(body, len, &i, &vs, &ve, &vesc))
            break; /* not a flat object: the bare form */
        i = skip_ws(body, i, len);
        if (i >= len || body[i] != ',')
            break;
        i = skip_ws(body, i + 1, len);
    }
    return fast_bare(&f, body, len, reason);
}
