/* Table-driven YAML configuration engine. See include/cfg.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "cfg.h"
#include "xalloc.h"

/* A configuration file is small; anything larger is a mistake. */
#define CFG_MAX_FILE (1024 * 1024)
/* Nesting and alias expansion are bounded so that a hostile or broken file
 * costs at most a linear parse: libyaml's scanner is quadratic in the nesting
 * depth, and aliases expand a DAG into a tree as we walk it ("billion
 * laughs"). Both are far above anything a real configuration needs. */
#define CFG_MAX_DEPTH 64
#define CFG_MAX_NODES 100000
/* Errors beyond this many are dropped behind one summary line. */
#define CFG_MAX_ERRORS 100

struct cfg_ctx {
    const char *name;
    struct cfg_errors *errs;
    yaml_document_t *doc;
    const struct cfg_table *table;
    void *base;
    struct cfg_pos *pos; /* per key of table */
    bool *seen;
    bool world_readable;
    size_t *budget; /* nodes the walk may still visit (shared by sub-walks) */
};

static const char *const bool_true[] = {"true", "yes", "on", "True", "TRUE", "Yes", "YES", "On", "ON", NULL};
static const char *const bool_false[] = {"false", "no", "off", "False", "FALSE", "No", "NO", "Off", "OFF", NULL};

void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void strlist_push(struct strlist *l, const char *s)
{
    l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
    l->v[l->n++] = xstrdup(s);
}

void globmap_free(struct globmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        strlist_free(&m->v[i].pats);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

void cfg_errors_free(struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

static void cfg_verror(struct cfg_ctx *ctx, struct cfg_pos pos,
                       const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void cfg_verror(struct cfg_ctx *ctx, struct cfg_pos pos,
                       const char *fmt, va_list ap)
{
    char *msg, *line;

    if (ctx->errs->n > CFG_MAX_ERRORS)
        return;
    if (ctx->errs->n == CFG_MAX_ERRORS) {
        xasprintf(&line, "%s: too many errors, stopping here", ctx->name);
        ctx->errs->msgs = xreallocarray(ctx->errs->msgs, ctx->errs->n + 1,
                                        sizeof(char *));
        ctx->errs->msgs[ctx->errs->n++] = line;
        return;
    }
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    xasprintf(&line, "%s:%d:%d: %s", ctx->name, pos.line ? pos.line : 1,
              pos.col ? pos.col : 1, msg);
    free(msg);
    ctx->errs->msgs = xreallocarray(ctx->errs->msgs, ctx->errs->n + 1,
                                    sizeof(char *));
    ctx->errs->msgs[ctx->errs->n++] = line;
}

void cfg_error(struct cfg_ctx *ctx, struct cfg_pos pos, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_verror(ctx, pos, fmt, ap);
    va_end(ap);
}

static struct cfg_pos node_pos(const yaml_node_t *node)
{
    struct cfg_pos p = {(int)node->start_mark.line + 1,
                        (int)node->start_mark.column + 1};
    return p;
}

struct cfg_pos cfg_key_pos(struct cfg_ctx *ctx, const char *key)
{
    struct cfg_pos none = {0, 0};

    for (size_t i = 0; i < ctx->table->nkeys; i++) {
        if (strcmp(ctx->table->keys[i].name, key) == 0)
            return ctx->pos[i];
    }
    return none;
}

/* ---- value parsers ------------------------------------------------- */

static int parse_u64(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;

    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
        s++;
    }
    *end = s;
    *out = v;
    return 0;
}

static int mul_check(uint64_t v, uint64_t m, uint64_t *out)
{
    if (m != 0 && v > UINT64_MAX / m)
        return -ERANGE;
    *out = v * m;
    return 0;
}

struct cfg_unit {
    const char *unit; /* "" first: a bare number */
    uint64_t mult;
};

/* A number, optionally followed by one space and a unit of units[0..n). */
static int parse_with_unit(const char *s, const struct cfg_unit *units, size_t n,
                           uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (parse_u64(s, &end, &v) < 0)
        return -EINVAL;
    if (*end == ' ')
        end++;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (end > s && end[-1] == ' ' && units[i].unit[0] == '\0')
                return -EINVAL;
            return mul_check(v, units[i].mult, out) < 0 ? -EINVAL : 0;
        }
    }
    return -EINVAL;
}

int cfg_parse_duration(const char *s, uint64_t *ms)
{
    static const struct cfg_unit units[] = {{"", 1000}, {"ms", 1}, {"s", 1000},
                                            {"m", 60000}, {"h", 3600000}, {"d", 86400000}};

    return parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), ms);
}

int cfg_parse_size(const char *s, uint64_t *bytes)
{
    static const struct cfg_unit units[] = {{"", 1}, {"B", 1}, {"KiB", 1024},
                                            {"MiB", 1024 * 1024},
                                            {"GiB", 1024ull * 1024 * 1024}};

    return parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), bytes);
}

int cfg_parse_bool(const char *s, bool *out)
{
    for (size_t i = 0; bool_true[i]; i++) {
        if (strcmp(s, bool_true[i]) == 0) {
            *out = true;
            return 0;
        }
    }
    for (size_t i = 0; bool_false[i]; i++) {
        if (strcmp(s, bool_false[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *check_port(const char *p, const char *end)
{
    uint64_t port = 0;

    if (p == end)
        return "empty port";
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return "port is not a number";
        port = port * 10 + (uint64_t)(*p - '0');
        if (port > 65535)
            return "port out of range 1..65535";
    }
    if (port == 0)
        return "port out of range 1..65535";
    return NULL;
}

/* host is [v6], or a name/IPv4 made of letters, digits, '-', '.', '_'. */
static const char *check_host(const char *h, const char *end)
{
    if (h == end)
        return "empty host";
    if (*h == '[') {
        if (end[-1] != ']' || end - h < 3)
            return "bad IPv6 literal";
        for (const char *p = h + 1; p < end - 1; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return "bad IPv6 literal";
        }
        return NULL;
    }
    for (const char *p = h; p < end; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            return "bad character in host";
    }
    return NULL;
}

const char *cfg_check_hostport(const char *s)
{
    const char *colon;

    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return "expected host:port";
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return "expected host:port";
    }
    if (colon != s && !(colon - s == 1 && *s == '*')) {
        const char *r = check_host(s, colon);
        if (r)
            return r;
    }
    return check_port(colon + 1, colon + strlen(colon));
}

const char *cfg_check_url(const char *url, const char *const *schemes,
                          bool *has_password)
{
    const char *sep = strstr(url, "://");
    const char *auth, *auth_end, *at, *hostp, *colon = NULL;
    bool ok = false;
    const char *r;

    *has_password = false;
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "URL contains whitespace or control characters";
    }
    if (sep == NULL)
        return "not a URL (expected scheme://host)";
    for (size_t i = 0; schemes && schemes[i]; i++) {
        if ((size_t)(sep - url) == strlen(schemes[i]) &&
            strncmp(url, schemes[i], strlen(schemes[i])) == 0)
            ok = true;
    }
    if (!ok)
        return "unsupported URL scheme";
    auth = sep + 3;
    auth_end = auth + strcspn(auth, "/?#");
    at = NULL;
    for (const char *p = auth; p < auth_end; p++) {
        if (*p == '@')
            at = p;
    }
    hostp = auth;
    if (at) {
        const char *pc = memchr(auth, ':', (size_t)(at - auth));
        if (pc && pc + 1 < at)
            *has_password = true;
        if (at == auth)
            return "empty user name";
        hostp = at + 1;
    }
    if (*hostp == '[') {
        const char *rb = memchr(hostp, ']', (size_t)(auth_end - hostp));
        if (rb == NULL)
            return "bad IPv6 literal";
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return "bad characters after IPv6 literal";
            colon = rb + 1;
        }
        r = check_host(hostp, rb + 1);
    } else {
        colon = memchr(hostp, ':', (size_t)(auth_end - hostp));
        r = check_host(hostp, colon ? colon : auth_end);
    }
    if (r)
        return r;
    if (colon)
        return check_port(colon + 1, auth_end);
    return NULL;
}

/* ---- setting values ---------------------------------------------- */

static void *field(void *base, const struct cfg_key *k)
{
    return (char *)base + k->offset;
}

static bool is_list_type(enum cfg_type t)
{
    return t == CFG_URL_LIST || t == CFG_STRING_LIST || t == CFG_GLOBS;
}

static void free_value(const struct cfg_key *k, void *base)
{
    void *f = field(base, k);

    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_URL:
    case CFG_HOSTPORT:
        free(*(char **)f);
        *(char **)f = NULL;
        break;
    case CFG_URL_LIST:
    case CFG_STRING_LIST:
    case CFG_GLOBS:
        strlist_free(f);
        break;
    case CFG_GLOBMAP:
        globmap_free(f);
        break;
    case CFG_LIST: {
        struct cfg_list *l = f;
        for (size_t i = 0; i < l->n; i++)
            cfg_free(k->sub, (char *)l->items + i * k->sub->struct_size);
        free(l->items);
        free(l->pos);
        l->items = NULL;
        l->pos = NULL;
        l->n = 0;
        break;
    }
    default:
        break;
    }
}

void cfg_free(const struct cfg_table *table, void *base)
{
    if (base == NULL)
        return;
    for (size_t i = 0; i < table->nkeys; i++)
        free_value(&table->keys[i], base);
}

static void secret_check(struct cfg_ctx *ctx, const struct cfg_key *k,
                         struct cfg_pos pos)
{
    if (ctx->world_readable)
        cfg_error(ctx, pos,
                  "%s: holds a password but the file is readable by other "
                  "users; refusing it (chmod o-rwx %s)",
                  k->name, ctx->name);
}

/* k's choices joined with ", ", each followed by suffix: for messages. */
static void choices_text(const struct cfg_key *k, const char *suffix, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0; k->choices && k->choices[i]; i++) {
        if (i)
            strncat(buf, ", ", size - strlen(buf) - 1);
        strncat(buf, k->choices[i], size - strlen(buf) - 1);
        strncat(buf, suffix, size - strlen(buf) - 1);
    }
}

/* CFG_INT, CFG_DURATION, CFG_SIZE: a number (with a unit suffix for the
 * last two) within [k->min, k->max]. */
static int set_number(struct cfg_ctx *ctx, const struct cfg_key *k, const char *s,
                      struct cfg_pos pos, void *f)
{
    bool dur = k->type == CFG_DURATION;
    uint64_t u;

    if (k->type == CFG_INT) {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno == ERANGE) {
            cfg_error(ctx, pos, "%s: '%s' is not an integer", k->name, s);
            return -EINVAL;
        }
        if (v < k->min || v > k->max) {
            cfg_error(ctx, pos, "%s: %lld is out of range %" PRId64 "..%" PRId64,
                      k->name, v, k->min, k->max);
            return -EINVAL;
        }
        *(int64_t *)f = v;
        return 0;
    }
    if ((dur ? cfg_parse_duration(s, &u) : cfg_parse_size(s, &u)) < 0) {
        cfg_error(ctx, pos, "%s: '%s' is not a %s", k->name, s,
                  dur ? "duration (seconds, or a number with ms, s, m, h, d)"
                      : "size (bytes, or a number with B, KiB, MiB, GiB)");
        return -EINVAL;
    }
    if (u < (uint64_t)k->min || u > (uint64_t)k->max) {
        cfg_error(ctx, pos, "%s: %s is out of range %" PRId64 "%s..%" PRId64 "%s", k->name,
                  s, k->min, dur ? "ms" : "", k->max, dur ? "ms" : " bytes");
        return -EINVAL;
    }
    *(uint64_t *)f = u;
    return 0;
}

static void set_string(void *f, const char *s)
{
    free(*(char **)f);
    *(char **)f = xstrdup(s);
}

/* One scalar item of a (possibly list) key. Returns 0 or -EINVAL after
 * reporting. For list types the item is appended. */
static int set_scalar(struct cfg_ctx *ctx, const struct cfg_key *k,
                      const char *s, struct cfg_pos pos, bool from_file)
{
    void *f = field(ctx->base, k);
    const char *why;
    char buf[256];
    bool pw;

    switch (k->type) {
    case CFG_STRING:
        set_string(f, s);
        if (from_file && (k->flags & CFG_SECRET) && *s)
            secret_check(ctx, k, pos);
        return 0;
    case CFG_PATH:
        if (s[0] != '/') {
            cfg_error(ctx, pos, "%s: '%s' is not an absolute path", k->name, s);
            return -EINVAL;
        }
        set_string(f, s);
        return 0;
    case CFG_BOOL:
        if (cfg_parse_bool(s, f) < 0) {
            cfg_error(ctx, pos, "%s: '%s' is not a boolean (true or false)",
                      k->name, s);
            return -EINVAL;
        }
        return 0;
    case CFG_INT:
    case CFG_DURATION:
    case CFG_SIZE:
        return set_number(ctx, k, s, pos, f);
    case CFG_ENUM:
        for (int i = 0; k->choices[i]; i++) {
            if (strcmp(s, k->choices[i]) == 0) {
                *(int *)f = i;
                return 0;
            }
        }
        choices_text(k, "", buf, sizeof(buf));
        cfg_error(ctx, pos, "%s: '%s' is not one of: %s", k->name, s, buf);
        return -EINVAL;
    case CFG_URL:
    case CFG_URL_LIST:
        why = cfg_check_url(s, k->choices, &pw);
        if (why) {
            choices_text(k, "://", buf, 128);
            cfg_error(ctx, pos, "%s: bad URL: %s (expected %s)", k->name, why,
                      buf);
            return -EINVAL;
        }
        if (from_file && pw)
            secret_check(ctx, k, pos);
        if (k->type == CFG_URL)
            set_string(f, s);
        else
            strlist_push(f, s);
        return 0;
    case CFG_HOSTPORT:
        why = cfg_check_hostport(s);
        if (why) {
            cfg_error(ctx, pos, "%s: '%s': %s", k->name, s, why);
            return -EINVAL;
        }
        set_string(f, s);
        return 0;
    case CFG_STRING_LIST:
    case CFG_GLOBS:
        if (*s == '\0') {
            cfg_error(ctx, pos, "%s: empty string in list", k->name);
            return -EINVAL;
        }
        strlist_push(f, s);
        return 0;
    default:
        cfg_error(ctx, pos, "%s: expected a mapping or a list", k->name);
        return -EINVAL;
    }
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static bool scalar_is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;

    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static void walk_map(struct cfg_ctx *ctx, yaml_node_t *map, const char *prefix);

/* Marks dup[i] for every scalar key of the mapping equal to an earlier one,
 * in O(n log n): a mapping may hold many keys. */
struct keyref {
    const char *key;
    size_t i;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    if (c != 0)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

static bool *dup_keys(struct cfg_ctx *ctx, yaml_node_t *map)
{
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    struct keyref *refs = xcalloc(n ? n : 1, sizeof(*refs));
    bool *dup = xcalloc(n ? n : 1, sizeof(*dup));
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        yaml_node_t *kn = yaml_document_get_node(
            ctx->doc, map->data.mapping.pairs.start[i].key);
        if (kn->type == YAML_SCALAR_NODE)
            refs[m++] = (struct keyref){(char *)kn->data.scalar.value, i};
    }
    qsort(refs, m, sizeof(*refs), keyref_cmp);
    for (size_t j = 1; j < m; j++) {
        if (strcmp(refs[j - 1].key, refs[j].key) == 0)
            dup[refs[j].i] = true;
    }
    free(refs);
    return dup;
}

/* Every pair and item the walk visits costs one unit of the budget, so that
 * aliases cannot make the walk larger than CFG_MAX_NODES. Returns false (after
 * one error) once it is spent. */
static bool walk_visit(struct cfg_ctx *ctx, const yaml_node_t *n)
{
    if (*ctx->budget == 0)
        return false;
    if (--*ctx->budget == 0) {
        cfg_error(ctx, node_pos(n),
                  "aliases expand the document to more than %d values",
                  CFG_MAX_NODES);
        return false;
    }
    return true;
}

static void set_globmap(struct cfg_ctx *ctx, const struct cfg_key *k,
                        yaml_node_t *val)
{
    struct globmap *m = field(ctx->base, k);
    bool *dup;

    if (val->type != YAML_MAPPING_NODE) {
        cfg_error(ctx, node_pos(val), "%s: expected a mapping, got %s",
                  k->name, node_kind(val));
        return;
    }
    dup = dup_keys(ctx, val);
    for (yaml_node_pair_t *p = val->data.mapping.pairs.start;
         p < val->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ctx->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ctx->doc, p->value);
        struct globmap_entry *e;

        if (!walk_visit(ctx, kn))
            break;
        if (kn->type != YAML_SCALAR_NODE) {
            cfg_error(ctx, node_pos(kn), "%s: keys must be scalars", k->name);
            continue;
        }
        if (dup[p - val->data.mapping.pairs.start]) {
            cfg_error(ctx, node_pos(kn), "%s: duplicate key '%s'", k->name,
                      (char *)kn->data.scalar.value);
            continue;
        }
        m->v = xreallocarray(m->v, m->n + 1, sizeof(*m->v));
        e = &m->v[m->n++];
        e->key = xstrdup((char *)kn->data.scalar.value);
        e->pats.n = 0;
        e->pats.v = NULL;
        if (vn->type == YAML_SCALAR_NODE) {
            strlist_push(&e->pats, (char *)vn->data.scalar.value);
        } else if (vn->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = vn->data.sequence.items.start;
                 it < vn->data.sequence.items.top; it++) {
                yaml_node_t *in = yaml_document_get_node(ctx->doc, *it);
                if (!walk_visit(ctx, in))
                    break;
                if (in->type != YAML_SCALAR_NODE) {
                    cfg_error(ctx, node_pos(in),
                              "%s.%s: expected a pattern, got %s", k->name,
                              e->key, node_kind(in));
                    continue;
                }
                strlist_push(&e->pats, (char *)in->data.scalar.value);
            }
        } else {
            cfg_error(ctx, node_pos(vn),
                      "%s.%s: expected a pattern or a list of patterns, got %s",
                      k->name, e->key, node_kind(vn));
        }
    }
    free(dup);
}

static void apply_defaults(struct cfg_ctx *ctx);

static void set_list(struct cfg_ctx *ctx, const struct cfg_key *k,
                     yaml_node_t *val)
{
    struct cfg_list *l = field(ctx->base, k);
    size_t n, i = 0;

    if (val->type != YAML_SEQUENCE_NODE) {
        cfg_error(ctx, node_pos(val), "%s: expected a list, got %s", k->name,
                  node_kind(val));
        return;
    }
    n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    l->items = xcalloc(n ? n : 1, k->sub->struct_size);
    l->pos = xcalloc(n ? n : 1, sizeof(*l->pos));
    l->n = n;
    for (yaml_node_item_t *it = val->data.sequence.items.start;
         it < val->data.sequence.items.top; it++, i++) {
        yaml_node_t *in = yaml_document_get_node(ctx->doc, *it);
        struct cfg_ctx sub = *ctx;

        if (!walk_visit(ctx, in))
            break;
        l->pos[i] = node_pos(in);
        sub.table = k->sub;
        sub.base = (char *)l->items + i * k->sub->struct_size;
        sub.pos = xcalloc(k->sub->nkeys, sizeof(*sub.pos));
        sub.seen = xcalloc(k->sub->nkeys, sizeof(*sub.seen));
        if (in->type != YAML_MAPPING_NODE) {
            cfg_error(ctx, node_pos(in), "%s[%zu]: expected a mapping, got %s",
                      k->name, i, node_kind(in));
        } else {
            size_t before = ctx->errs->n;
            walk_map(&sub, in, NULL);
            for (size_t j = 0; j < k->sub->nkeys; j++) {
                if (!sub.seen[j] && (k->sub->keys[j].flags & CFG_REQUIRED))
                    cfg_error(ctx, node_pos(in), "%s[%zu]: missing required key '%s'",
                              k->name, i, k->sub->keys[j].name);
            }
            apply_defaults(&sub);
            if (k->sub->validate && ctx->errs->n == before)
                k->sub->validate(&sub, sub.base);
        }
        free(sub.pos);
        free(sub.seen);
    }
}

static void set_value(struct cfg_ctx *ctx, size_t ki, yaml_node_t *val)
{
    const struct cfg_key *k = &ctx->table->keys[ki];
    struct cfg_pos pos = node_pos(val);

    ctx->pos[ki] = pos;
    ctx->seen[ki] = true;
    free_value(k, ctx->base); /* a later duplicate was already reported */

    if (k->type == CFG_GLOBMAP) {
        set_globmap(ctx, k, val);
        return;
    }
    if (k->type == CFG_LIST) {
        set_list(ctx, k, val);
        return;
    }
    if (is_list_type(k->type)) {
        if (val->type == YAML_SCALAR_NODE) {
            if (scalar_is_null(val)) {
                cfg_error(ctx, pos, "%s: missing value", k->name);
                return;
            }
            set_scalar(ctx, k, (char *)val->data.scalar.value, pos, true);
            return;
        }
        if (val->type != YAML_SEQUENCE_NODE) {
            cfg_error(ctx, pos, "%s: expected a list, got %s", k->name,
                      node_kind(val));
            return;
        }
        if (val->data.sequence.items.top - val->data.sequence.items.start < k->min) {
            cfg_error(ctx, pos, "%s: the list must not be empty", k->name);
            return;
        }
        for (yaml_node_item_t *it = val->data.sequence.items.start;
             it < val->data.sequence.items.top; it++) {
            yaml_node_t *in = yaml_document_get_node(ctx->doc, *it);
            if (!walk_visit(ctx, in))
                return;
            if (in->type != YAML_SCALAR_NODE || scalar_is_null(in)) {
                cfg_error(ctx, node_pos(in), "%s: list items must be scalars, got %s",
                          k->name, in->type == YAML_SCALAR_NODE ? "null" : node_kind(in));
                continue;
            }
            set_scalar(ctx, k, (char *)in->data.scalar.value, node_pos(in), true);
        }
        return;
    }
    if (val->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, pos, "%s: expected a scalar value, got %s", k->name,
                  node_kind(val));
        return;
    }
    if (scalar_is_null(val)) {
        if ((k->type == CFG_STRING || k->type == CFG_PATH ||
             k->type == CFG_URL || k->type == CFG_HOSTPORT) &&
            !(k->flags & CFG_REQUIRED)) {
            ctx->seen[ki] = true; /* explicitly unset: no default */
            return;
        }
        cfg_error(ctx, pos, "%s: missing value", k->name);
        return;
    }
    set_scalar(ctx, k, (char *)val->data.scalar.value, pos, true);
}

static int find_key(const struct cfg_table *t, const char *path)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        if (strcmp(t->keys[i].name, path) == 0)
            return (int)i;
    }
    return -1;
}

static bool is_section(const struct cfg_table *t, const char *path)
{
    size_t len = strlen(path);

    for (size_t i = 0; i < t->nkeys; i++) {
        if (strncmp(t->keys[i].name, path, len) == 0 &&
            t->keys[i].name[len] == '.')
            return true;
    }
    return false;
}

static void walk_map(struct cfg_ctx *ctx, yaml_node_t *map, const char *prefix)
{
    bool *dup = dup_keys(ctx, map);

    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ctx->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ctx->doc, p->value);
        char *path;
        int ki;

        if (!walk_visit(ctx, kn))
            break;
        if (kn->type != YAML_SCALAR_NODE) {
            cfg_error(ctx, node_pos(kn), "%s%skeys must be scalars, got %s",
                      prefix ? prefix : "", prefix ? ": " : "", node_kind(kn));
            continue;
        }
        if (prefix)
            xasprintf(&path, "%s.%s", prefix, (char *)kn->data.scalar.value);
        else
            path = xstrdup((char *)kn->data.scalar.value);
        if (dup[p - map->data.mapping.pairs.start]) {
            cfg_error(ctx, node_pos(kn), "%s: duplicate key", path);
            free(path);
            continue;
        }
        ki = find_key(ctx->table, path);
        if (ki >= 0) {
            set_value(ctx, (size_t)ki, vn);
        } else if (is_section(ctx->table, path)) {
            if (vn->type == YAML_MAPPING_NODE)
                walk_map(ctx, vn, path);
            else if (!(vn->type == YAML_SCALAR_NODE && scalar_is_null(vn)))
                cfg_error(ctx, node_pos(vn), "%s: expected a mapping, got %s",
                          path, node_kind(vn));
        } else {
            cfg_error(ctx, node_pos(kn), "%s: unknown key", path);
        }
        free(path);
    }
    free(dup);
}

static void apply_defaults(struct cfg_ctx *ctx)
{
    struct cfg_pos none = {0, 0};

    for (size_t i = 0; i < ctx->table->nkeys; i++) {
        const struct cfg_key *k = &ctx->table->keys[i];

        if (ctx->seen[i] || k->def == NULL)
            continue;
        if (is_list_type(k->type)) {
            /* List defaults are comma-separated. */
            char *copy = xstrdup(k->def), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t;
                 t = strtok_r(NULL, ",", &save))
                set_scalar(ctx, k, t, none, false);
            free(copy);
        } else {
            set_scalar(ctx, k, k->def, none, false);
        }
    }
}

/* Line and column (1-based) of byte off of buf. */
static struct cfg_pos text_pos(const char *buf, size_t off)
{
    struct cfg_pos p = {1, 1};

    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            p.line++;
            p.col = 1;
        } else {
            p.col++;
        }
    }
    return p;
}

/* The document's root: one mapping (or nothing at all), and one document. */
static void check_root(struct cfg_ctx *ctx, yaml_parser_t *parser, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    const struct cfg_pos start = {1, 1};
    yaml_document_t next;

    if (root == NULL) {
        cfg_error(ctx, start, "empty configuration file");
        return;
    }
    if (yaml_parser_load(parser, &next)) {
        if (yaml_document_get_root_node(&next) != NULL)
            cfg_error(ctx, (struct cfg_pos){(int)next.start_mark.line + 1,
                                            (int)next.start_mark.column + 1},
                      "more than one YAML document");
        yaml_document_delete(&next);
    }
    if (root->type != YAML_MAPPING_NODE &&
        !(root->type == YAML_SCALAR_NODE && scalar_is_null(root)))
        cfg_error(ctx, node_pos(root), "the top level must be a mapping of keys, got %s",
                  node_kind(root));
    else if (root->type == YAML_MAPPING_NODE)
        walk_map(ctx, root, NULL);
    else
        cfg_error(ctx, start, "empty configuration file");
}

/* Streams the events once, before any tree is built, and refuses nesting
 * deeper than CFG_MAX_DEPTH or more than CFG_MAX_NODES nodes at the first
 * event beyond: the scanner's cost grows with the square of the depth, and
 * the tree costs ~200 bytes a node, so stopping there keeps the parse linear
 * and small. Syntax errors are left to the loader, which reports them. */
static int check_shape(struct cfg_ctx *ctx, const char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, ret = 0;
    size_t nodes = 0;

    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev))
            break;
        if ((ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
             ev.type == YAML_SEQUENCE_START_EVENT ||
             ev.type == YAML_MAPPING_START_EVENT) &&
            ++nodes > CFG_MAX_NODES) {
            cfg_error(ctx, (struct cfg_pos){(int)ev.start_mark.line + 1,
                                            (int)ev.start_mark.column + 1},
                      "more than %d values", CFG_MAX_NODES);
            ret = -EINVAL;
        } else if (ev.type == YAML_SEQUENCE_START_EVENT ||
                   ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > CFG_MAX_DEPTH) {
                cfg_error(ctx, (struct cfg_pos){(int)ev.start_mark.line + 1,
                                                (int)ev.start_mark.column + 1},
                          "nested deeper than %d levels", CFG_MAX_DEPTH);
                ret = -EINVAL;
            }
        } else if (ev.type == YAML_SEQUENCE_END_EVENT ||
                   ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end || ret < 0)
            break;
    }
    yaml_parser_delete(&parser);
    return ret;
}

/* Parses buf into doc and walks it. True when doc was loaded (the caller
 * deletes it); errors are in ctx. */
static bool parse_text(struct cfg_ctx *ctx, const char *buf, size_t len, yaml_document_t *doc)
{
    const char *nul = memchr(buf, '\0', len);
    yaml_parser_t parser;

    if (nul != NULL) {
        cfg_error(ctx, text_pos(buf, (size_t)(nul - buf)),
                  "invalid input: NUL byte (not a YAML text file)");
        return false;
    }
    if (check_shape(ctx, buf, len) < 0)
        return false;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, doc)) {
        struct cfg_pos pp = {(int)parser.problem_mark.line + 1,
                             (int)parser.problem_mark.column + 1};

        /* The reader reports a byte offset, not a line. */
        if (parser.error == YAML_READER_ERROR)
            pp = parser.problem_offset <= len ? text_pos(buf, parser.problem_offset)
                                              : (struct cfg_pos){0, 0};
        cfg_error(ctx, pp, "invalid YAML: %s%s%s",
                  parser.problem ? parser.problem : "parse error",
                  parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return false;
    }
    check_root(ctx, &parser, doc);
    yaml_parser_delete(&parser);
    return true;
}

static int cfg_load_doc(const struct cfg_table *table, const char *name,
                        const char *buf, size_t len, bool world_readable,
                        void *base, struct cfg_errors *errs)
{
    struct cfg_ctx ctx = {
        .name = name, .errs = errs, .table = table, .base = base,
        .world_readable = world_readable,
    };
    yaml_document_t doc;
    bool have_doc = false;
    struct cfg_pos start = {1, 1};
    size_t budget = CFG_MAX_NODES;

    ctx.budget = &budget;
    ctx.pos = xcalloc(table->nkeys, sizeof(*ctx.pos));
    ctx.seen = xcalloc(table->nkeys, sizeof(*ctx.seen));
    ctx.doc = &doc;

    if (buf != NULL) {
        have_doc = parse_text(&ctx, buf, len, &doc);
        if (!have_doc)
            goto out;
    }
    for (size_t i = 0; i < table->nkeys; i++) {
        if (!ctx.seen[i] && (table->keys[i].flags & CFG_REQUIRED))
            cfg_error(&ctx, start, "%s: missing required key",
                      table->keys[i].name);
    }
    apply_defaults(&ctx);
    if (errs->n == 0 && table->validate)
        table->validate(&ctx, base);
out:
    if (have_doc)
        yaml_document_delete(&doc);
    free(ctx.pos);
    free(ctx.seen);
    if (errs->n > 0) {
        cfg_free(table, base);
        return -EINVAL;
    }
    return 0;
}

int cfg_load_buffer(const struct cfg_table *table, const char *name,
                    const char *buf, size_t len, void *base,
                    struct cfg_errors *errs)
{
    return cfg_load_doc(table, name, buf, len, false, base, errs);
}

int cfg_load(const struct cfg_table *table, const char *path, void *base,
             struct cfg_errors *errs)
{
    struct cfg_ctx ectx = {.name = path, .errs = errs};
    struct cfg_pos start = {1, 1};
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd = -1, ret;

    if (path == NULL)
        return cfg_load_doc(table, "(defaults)", NULL, 0, false, base, errs);

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        cfg_error(&ectx, start, "cannot open: %s", strerror(errno));
        return -EINVAL;
    }
    if (fstat(fd, &st) < 0) {
        cfg_error(&ectx, start, "cannot stat: %s", strerror(errno));
        close(fd);
        return -EINVAL;
    }
    if (S_ISDIR(st.st_mode)) {
        cfg_error(&ectx, start, "is a directory, not a configuration file");
        close(fd);
        return -EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        cfg_error(&ectx, start, "not a regular file");
        close(fd);
        return -EINVAL;
    }
    if (st.st_size > CFG_MAX_FILE) {
        cfg_error(&ectx, start, "file too large (%lld bytes, at most %d)",
                  (long long)st.st_size, CFG_MAX_FILE);
        close(fd);
        return -EINVAL;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cfg_error(&ectx, start, "cannot read: %s", strerror(errno));
            free(buf);
            close(fd);
            return -EINVAL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len == 0) {
        cfg_error(&ectx, start, "empty configuration file");
        free(buf);
        return -EINVAL;
    }
    ret = cfg_load_doc(table, path, buf, len, (st.st_mode & S_IROTH) != 0,
                       base, errs);
    free(buf);
    return ret;
}

int cfg_load_new(const struct cfg_table *table, const char *path, void **out,
                 struct cfg_errors *errs)
{
    void *base = xcalloc(1, table->struct_size);
    int ret = cfg_load(table, path, base, errs);

    if (ret < 0) {
        free(base);
        return ret;
    }
    *out = base;
    return 0;
}

void cfg_destroy(const struct cfg_table *table, void *base)
{
    if (base == NULL)
        return;
    cfg_free(table, base);
    free(base);
}

/* ---- reload: keys read at start only ---------------------------------- */

bool cfg_type_comparable(enum cfg_type t)
{
    return t != CFG_GLOBMAP && t != CFG_LIST;
}

static bool str_equal(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool value_equal(const struct cfg_key *k, const void *a, const void *b)
{
    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_URL:
    case CFG_HOSTPORT:
        return str_equal(*(char *const *)a, *(char *const *)b);
    case CFG_BOOL:
        return *(const bool *)a == *(const bool *)b;
    case CFG_INT:
        return *(const int64_t *)a == *(const int64_t *)b;
    case CFG_DURATION:
    case CFG_SIZE:
        return *(const uint64_t *)a == *(const uint64_t *)b;
    case CFG_ENUM:
        return *(const int *)a == *(const int *)b;
    case CFG_URL_LIST:
    case CFG_STRING_LIST:
    case CFG_GLOBS: {
        const struct strlist *la = a, *lb = b;

        if (la->n != lb->n)
            return false;
        for (size_t i = 0; i < la->n; i++)
            if (!str_equal(la->v[i], lb->v[i]))
                return false;
        return true;
    }
    case CFG_GLOBMAP:
    case CFG_LIST:
        break;
    }
    return true; /* not comparable: tests/unit/test_config keeps them unmarked */
}

/* The value as text, for a log line. Caller frees. */
static char *value_text(const struct cfg_key *k, const void *v)
{
    char *s = NULL;

    switch (k->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_URL:
    case CFG_HOSTPORT:
        return xstrdup(*(char *const *)v ? *(char *const *)v : "(none)");
    case CFG_BOOL:
        return xstrdup(*(const bool *)v ? "true" : "false");
    case CFG_INT:
        xasprintf(&s, "%" PRId64, *(const int64_t *)v);
        return s;
    case CFG_DURATION:
        xasprintf(&s, "%" PRIu64 "ms", *(const uint64_t *)v);
        return s;
    case CFG_SIZE:
        xasprintf(&s, "%" PRIu64, *(const uint64_t *)v);
        return s;
    case CFG_ENUM:
        return xstrdup(k->choices[*(const int *)v]);
    case CFG_URL_LIST:
    case CFG_STRING_LIST:
    case CFG_GLOBS: {
        const struct strlist *l = v;
        size_t len = 1;

        for (size_t i = 0; i < l->n; i++)
            len += strlen(l->v[i]) + 1;
        s = xcalloc(1, len);
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                strcat(s, ",");
            strcat(s, l->v[i]);
        }
        return s;
    }
    case CFG_GLOBMAP:
    case CFG_LIST:
        break;
    }
    return xstrdup("?");
}

size_t cfg_restart_changed(const struct cfg_table *table, const void *running,
                           const void *next, cfg_changed_fn changed, void *arg)
{
    size_t n = 0;

    for (size_t i = 0; i < table->nkeys; i++) {
        const struct cfg_key *k = &table->keys[i];
        const void *a = (const char *)running + k->offset;
        const void *b = (const char *)next + k->offset;
        char *text;

        if (!(k->flags & CFG_RESTART) || value_equal(k, a, b))
            continue;
        text = value_text(k, a);
        changed(k, text, arg);
        free(text);
        n++;
    }
    return n;
}
