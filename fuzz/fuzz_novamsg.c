/* libFuzzer target: novamsg_decode() and, for relevant events,
 * policy_decide(), on arbitrary bodies, for three hosts. Checks the
 * invariants every caller relies on; ASan/UBSan and leak detection do the
 * rest. Seeds: fuzz/corpus/novamsg and tests/fixtures/nova/genuine. */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "novamsg.h"
#include "policy.h"
#include "uuidutil.h"
#include "xalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built once: libFuzzer calls the target millions of times. */
static struct policy *fuzz_policy;

static const char fuzz_yaml[] =
    "vtpmmgr: {provider: local}\n"
    "policy:\n"
    "  default: deny\n"
    "  rules:\n"
    "    - name: specs\n"
    "      match: {flavor_extra_specs: {'hw:tpm_version': '*'}}\n"
    "    - name: images\n"
    "      match: {image_properties: {hw_tpm_version: ['1.2', '2.*']}}\n"
    "    - name: project\n"
    "      match: {project_id: ['6f70*', '[a-f]*'], flavor: 'm1.*', host: 'compute?'}\n"
    "      vtpm: {image_size: 4MiB}\n"
    "    - name: meta\n"
    "      match: {metadata: {vtpm: 'y*', owner: '*'}}\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct cfg_errors errs = {0};

    (void)argc;
    (void)argv;
    /* Debug logging exercises the explanations; the hook-less stderr
     * output is silenced by the level check unless asked for. */
    log_init("fuzz", getenv("FUZZ_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
             LOG_TARGET_STDERR);
    if (cfg_load_buffer(&config_table, "fuzz.yaml", fuzz_yaml,
                        sizeof(fuzz_yaml) - 1, cfg, &errs) < 0 ||
        policy_new(cfg, &fuzz_policy) < 0) {
        fprintf(stderr, "fuzz: bad built-in policy: %s\n",
                errs.n ? errs.msgs[0] : "?");
        abort();
    }
    config_free(cfg);
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
