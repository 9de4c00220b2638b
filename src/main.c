/* vtpmd: gives OpenStack instances on Xen a vTPM stub domain. main()
 * parses the command line, loads the configuration and wires the daemon;
 * it decides nothing. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cmdline.h"
#include "vconfig.h"
#include "log.h"
#include "vtpmd.h"

#ifndef VTPMD_CONFIG_FILE
#define VTPMD_CONFIG_FILE "/etc/vtpmd/vtpmd.yaml"
#endif

int main(int argc, char **argv)
{
    struct cfg_errors errs = {0};
    struct config *cfg = NULL;
    struct vtpmd *d = NULL;
    struct cmdline cl;
    int ret;

    ret = cmdline_start(argc, argv, "vtpmd", VTPMD_CONFIG_FILE, &cl);
    if (ret >= 0)
        return ret;
    log_init("vtpmd", cl.have_level ? cl.level : LOG_LEVEL_INFO, LOG_TARGET_STDERR);
    if (config_load(cl.config_path, &cfg, &errs) < 0)
        return cmdline_config_errors(&errs);
    if (config_check_paths(cfg, &errs) < 0) {
        config_free(cfg);
        return cmdline_config_errors(&errs);
    }
    if (cl.action == CMDLINE_CHECK) {
        printf("%s: configuration is valid\n", cl.config_path);
        config_free(cfg);
        return EXIT_OK;
    }

    signal(SIGPIPE, SIG_IGN);
    log_route_libevent();
    evthread_use_pthreads();
    if (vtpmd_new(&cl, cfg, &d) < 0)
        return EXIT_RUNTIME; /* vtpmd_new freed cfg */
    ret = vtpmd_run(d);
    vtpmd_free(d);
    log_close();
    libevent_global_shutdown();
    return ret;
}
