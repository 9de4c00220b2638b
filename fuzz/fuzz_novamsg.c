/* libFuzzer target: novamsg_decode() and, for relevant events,
 * policy_decide(), on arbitrary bodies, for three hosts. Checks the
 * invariants every caller relies on; ASan/UBSan and leak detection do the
 * rest. Seeds: fuzz/corpus/novamsg and tests/fixtures/nova/genuine. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vconfig.h"
#include "log.h"
#include "novamsg.h"
#include "policy.h"
#include "uuidutil.h"
#include "xalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built once: libFuzzer calls the target millions of times. */
static struct policy *fuzz_policy;

static void globs(struct strlist *l, const char *a, const char *b)
{
    strlist_push(l, a);
    if (b)
        strlist_push(l, b);
}

static void map1(struct globmap *m, const char *key, const char *a,
                 const char *b)
{
    m->v = xcalloc(1, sizeof(*m->v));
    m->n = 1;
    m->v[0].key = xstrdup(key);
    globs(&m->v[0].pats, a, b);
}

/* The configuration is built by hand rather than parsed, so that this
 * target depends on no more than novamsg, policy and the cfg types. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char kernel[] = "/usr/lib/xen/boot/vtpm-stubdom.gz";
    static char domain[] = "vtpm-{uuid}";
    struct config_rule rules[4];
    struct config cfg;

    (void)argc;
    (void)argv;
    /* FUZZ_DEBUG=1 exercises the explanations of non-matching rules. */
    log_init("fuzz", getenv("FUZZ_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
             LOG_TARGET_STDERR);
    memset(rules, 0, sizeof(rules));
    memset(&cfg, 0, sizeof(cfg));
    rules[0].name = xstrdup("specs");
    map1(&rules[0].flavor_extra_specs, "hw:tpm_version", "*", NULL);
    rules[1].name = xstrdup("images");
    map1(&rules[1].image_properties, "hw_tpm_version", "1.2", "2.*");
    rules[2].name = xstrdup("project");
    globs(&rules[2].project_id, "6f70*", "[a-f]*");
    globs(&rules[2].flavor, "m1.*", NULL);
    globs(&rules[2].host, "compute?", NULL);
    rules[2].image_size = 4 * 1024 * 1024;
    rules[3].name = xstrdup("meta");
    map1(&rules[3].metadata, "vtpm", "y*", NULL);
    cfg.policy.dflt = POLICY_DEFAULT_DENY;
    cfg.policy.rules.n = 4;
    cfg.policy.rules.items = rules;
    cfg.image.size = 2 * 1024 * 1024;
    cfg.libvirt.memory = 8 * 1024 * 1024;
    cfg.libvirt.kernel = kernel;
    cfg.libvirt.domain_name = domain;
    if (policy_new(&cfg, &fuzz_policy) < 0)
        abort();
    for (size_t i = 0; i < 4; i++) {
        free(rules[i].name);
        strlist_free(&rules[i].project_id);
        strlist_free(&rules[i].flavor);
        strlist_free(&rules[i].host);
        globmap_free(&rules[i].flavor_extra_specs);
        globmap_free(&rules[i].image_properties);
        globmap_free(&rules[i].metadata);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const hosts[] = {"compute1", "compute2", "controller"};

    for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++) {
        struct nova_event ev;
        struct policy_decision d;
        const char *reason = NULL;
        enum novamsg_class c;

        c = novamsg_decode(data, size, "application/json", hosts[h], 64 * 1024,
                           &ev, &reason);
        if (!reason || strlen(reason) >= 256)
            abort();
        if (c == NOVAMSG_RELEVANT) {
            if (ev.kind == NOVA_KIND_OTHER || !uuid_is_canonical(ev.instance_uuid) ||
                !ev.host || strcmp(ev.host, hosts[h]) != 0 || !ev.event_type ||
                !ev.publisher_id)
                abort();
            policy_decide(fuzz_policy, &ev, &d);
            if (d.selected != (d.rule != NULL) || !d.kernel || !d.domain_name)
                abort();
        } else if (ev.host || ev.event_type) {
            abort(); /* nothing to release unless relevant */
        }
        nova_event_clear(&ev);
    }
    return 0;
}
