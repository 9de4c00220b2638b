/* policy: rules → decision. See include/policy.h for the semantics. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"
#include "xalloc.h"

struct policy_rule {
    char *name;
    struct strlist project_id;
    struct strlist flavor;
    struct strlist host;
    struct globmap flavor_extra_specs;
    struct globmap image_properties;
    struct globmap metadata;
    /* Effective settings: the rule's overrides over the global ones. */
    uint64_t image_size;
    uint64_t memory;
    char *kernel;
    char *domain_name;
};

struct policy {
    bool default_allow;
    size_t n;
    struct policy_rule *rules;
    uint64_t image_size;
    uint64_t memory;
    char *kernel;
    char *domain_name;
};

static void strlist_copy(struct strlist *dst, const struct strlist *src)
{
    for (size_t i = 0; i < src->n; i++)
        strlist_push(dst, src->v[i]);
}

static void globmap_copy(struct globmap *dst, const struct globmap *src)
{
    dst->n = src->n;
    dst->v = src->n ? xcalloc(src->n, sizeof(*dst->v)) : NULL;
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i].key = xstrdup(src->v[i].key);
        strlist_copy(&dst->v[i].pats, &src->v[i].pats);
    }
}

int policy_new(const struct config *cfg, struct policy **out)
{
    struct policy *p;

    if (!cfg)
        return -EINVAL;
    p = xcalloc(1, sizeof(*p));
    p->default_allow = cfg->policy.dflt == POLICY_DEFAULT_ALLOW;
    p->image_size = cfg->image.size;
    p->memory = cfg->libvirt.memory;
    p->kernel = cfg->libvirt.kernel ? xstrdup(cfg->libvirt.kernel) : NULL;
    p->domain_name =
        cfg->libvirt.domain_name ? xstrdup(cfg->libvirt.domain_name) : NULL;
    p->n = cfg->policy.rules.n;
    p->rules = p->n ? xcalloc(p->n, sizeof(*p->rules)) : NULL;
    for (size_t i = 0; i < p->n; i++) {
        const struct config_rule *c = config_rule_at(cfg, i);
        struct policy_rule *r = &p->rules[i];
        const char *kernel = c->kernel ? c->kernel : cfg->libvirt.kernel;
        const char *dn = c->domain_name ? c->domain_name
                                        : cfg->libvirt.domain_name;

        r->name = xstrdup(c->name ? c->name : "");
        strlist_copy(&r->project_id, &c->project_id);
        strlist_copy(&r->flavor, &c->flavor);
        strlist_copy(&r->host, &c->host);
        globmap_copy(&r->flavor_extra_specs, &c->flavor_extra_specs);
        globmap_copy(&r->image_properties, &c->image_properties);
        globmap_copy(&r->metadata, &c->metadata);
        r->image_size = c->image_size ? c->image_size : cfg->image.size;
        r->memory = c->memory ? c->memory : cfg->libvirt.memory;
        r->kernel = kernel ? xstrdup(kernel) : NULL;
        r->domain_name = dn ? xstrdup(dn) : NULL;
    }
    *out = p;
    return 0;
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        struct policy_rule *r = &p->rules[i];

        free(r->name);
        strlist_free(&r->project_id);
        strlist_free(&r->flavor);
        strlist_free(&r->host);
        globmap_free(&r->flavor_extra_specs);
        globmap_free(&r->image_properties);
        globmap_free(&r->metadata);
        free(r->kernel);
        free(r->domain_name);
    }
    free(p->rules);
    free(p->kernel);
    free(p->domain_name);
    free(p);
}

size_t policy_rule_count(const struct policy *p)
{
    return p ? p->n : 0;
}

static bool globs_match(const struct strlist *pats, const char *value)
{
    for (size_t i = 0; i < pats->n; i++)
        if (fnmatch(pats->v[i], value, 0) == 0)
            return true;
    return false;
}

/* Values come from the bus: quote them as one printable, bounded word. */
static const char *printable(const char *s, char *buf, size_t size)
{
    size_t i = 0;

    for (; s[i] && i + 1 < size; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ||
                  s[i] == '\'')
                     ? '?'
                     : s[i];
    buf[i] = '\0';
    return buf;
}

/* Explanations are built only when the debug log wants them. */
struct why {
    bool on;
    char text[256];
};

static bool miss(struct why *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool miss(struct why *w, const char *fmt, ...)
{
    va_list ap;

    if (w->on) {
        va_start(ap, fmt);
        vsnprintf(w->text, sizeof(w->text), fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool globs_hold(const struct strlist *pats, const char *what,
                       const char *value, struct why *w)
{
    char q[80];

    if (pats->n == 0)
        return true;
    if (!value)
        return miss(w, "the event carries no %s", what);
    if (!globs_match(pats, value))
        return miss(w, "%s '%s' matches no pattern", what,
                    printable(value, q, sizeof(q)));
    return true;
}

static bool map_holds(const struct globmap *want, bool has,
                      const struct nova_kvmap *got, const char *what,
                      struct why *w)
{
    char qk[80], qv[80];

    if (want->n == 0)
        return true;
    if (!has)
        return miss(w, "the event carries no %s", what);
    for (size_t i = 0; i < want->n; i++) {
        const char *v = nova_kvmap_get(got, want->v[i].key);

        if (!v)
            return miss(w, "%s has no '%s'", what,
                        printable(want->v[i].key, qk, sizeof(qk)));
        if (!globs_match(&want->v[i].pats, v))
            return miss(w, "%s '%s' = '%s' matches no pattern", what,
                        printable(want->v[i].key, qk, sizeof(qk)),
                        printable(v, qv, sizeof(qv)));
    }
    return true;
}

static bool rule_holds(const struct policy_rule *r, const struct nova_event *ev,
                       struct why *w)
{
    return globs_hold(&r->project_id, "project_id", ev->project_id, w) &&
           globs_hold(&r->flavor, "flavor", ev->flavor, w) &&
           globs_hold(&r->host, "host", ev->host, w) &&
           map_holds(&r->flavor_extra_specs, ev->has_extra_specs,
                     &ev->flavor_extra_specs, "flavor extra specs", w) &&
           map_holds(&r->image_properties, ev->has_image_properties,
                     &ev->image_properties, "image properties", w) &&
           map_holds(&r->metadata, ev->has_metadata, &ev->metadata,
                     "metadata", w);
}

void policy_decide(const struct policy *p, const struct nova_event *ev,
                   struct policy_decision *out)
{
    struct why w;

    w.on = log_enabled(LOG_LEVEL_DEBUG);
    w.text[0] = '\0';
    for (size_t i = 0; i < p->n; i++) {
        const struct policy_rule *r = &p->rules[i];

        if (rule_holds(r, ev, &w)) {
            out->selected = true;
            out->rule = r->name;
            out->image_size = r->image_size;
            out->memory = r->memory;
            out->kernel = r->kernel;
            out->domain_name = r->domain_name;
            log_debug("policy instance=%s rule=%s selected", ev->instance_uuid,
                      r->name);
            return;
        }
        log_debug("policy instance=%s rule=%s no match: %s",
                  ev->instance_uuid, r->name, w.text);
    }
    out->selected = p->default_allow;
    out->rule = NULL;
    out->image_size = p->image_size;
    out->memory = p->memory;
    out->kernel = p->kernel;
    out->domain_name = p->domain_name;
    log_debug("policy instance=%s no rule matched: default %s",
              ev->instance_uuid, p->default_allow ? "allow" : "deny");
}
