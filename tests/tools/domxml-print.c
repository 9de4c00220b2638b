/* Prints what vtpmd's domxml builds, for tests that check it against
 * other tools (the patched libvirt's RNG schema):
 *   domxml-print stub INSTANCE_UUID VTPM_UUID IMAGE   -> the stub domain
 *   domxml-print guest STUB_NAME                      -> <vtpm backend=…/>
 *   domxml-print probe                                -> virt's probe domain */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"

int main(int argc, char **argv)
{
    char *xml = NULL, *name = NULL;

    if (argc == 5 && strcmp(argv[1], "stub") == 0) {
        struct domxml_params p = {0};

        if (domxml_expand_name("vtpm-{uuid}", argv[2], NULL, &name) < 0)
            return 1;
        p.name = name;
        p.instance_uuid = argv[2];
        p.vtpm_uuid = argv[3];
        p.image_path = argv[4];
        p.kernel = "/usr/lib/xen/boot/vtpm-stubdom.gz";
        p.memory_bytes = 8 * 1024 * 1024;
        p.vtpmmgr_domain = "vtpmmgr";
        p.rule = "default";
        p.host = "compute-1";
        if (domxml_build(&p, &xml) < 0)
            return 1;
    } else if (argc == 2 && strcmp(argv[1], "probe") == 0) {
        if (domxml_build_probe("vtpmd-vtpm-probe", "7670746d-642d-4e70-9072-6f6265000001",
                               "/usr/lib/xen/boot/vtpm-stubdom.gz", "vtpmmgr", &xml) < 0)
            return 1;
    } else if (argc == 3 && strcmp(argv[1], "guest") == 0) {
        if (domxml_guest_vtpm(argv[2], &xml) < 0)
            return 1;
    } else {
        fprintf(stderr, "usage: domxml-print stub INSTANCE VTPM IMAGE | guest STUB_NAME | probe\n");
        return 2;
    }
    fputs(xml, stdout);
    free(xml);
    free(name);
    return 0;
}
