/* vtpm-proxyd: the Keylime VM's REST service that hands out vTPM UUIDs
 * from vtpmmgr. main() parses the command line, loads the configuration
 * and wires the daemon; it decides nothing. */
#include "config.h"

#include <signal.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cmdline.h"
#include "log.h"
#include "proxyd/pconfig.h"
#include "proxyd/proxyd.h"

#ifndef PROXYD_CONFIG_FILE
#define PROXYD_CONFIG_FILE "/etc/vtpm-proxyd/vtpm-proxyd.yaml"
#endif

int main(int argc, char **argv)
{
    struct cfg_errors errs = {0};
    struct pconfig *cfg = NULL;
    struct proxyd *p = NULL;
    struct cmdline cl;
    int ret;

    ret = cmdline_start(argc, argv, "vtpm-proxyd", PROXYD_CONFIG_FILE, &cl);
    if (ret >= 0)
        return ret;
    log_init("vtpm-proxyd", cl.have_level ? cl.level : LOG_LEVEL_INFO, LOG_TARGET_STDERR);
    if (pconfig_load(cl.config_path, &cfg, &errs) < 0)
        return cmdline_config_errors(&errs);
    if (cl.action == CMDLINE_CHECK) {
        printf("%s: configuration is valid\n", cl.config_path);
        pconfig_free(cfg);
        return EXIT_OK;
    }

    signal(SIGPIPE, SIG_IGN);
    log_route_libevent();
    /* Before any base exists: the job thread wakes the loop. */
    evthread_use_pthreads();
    if (proxyd_new(&cl, cfg, &p) < 0) {
        log_close();
        libevent_global_shutdown();
        return EXIT_RUNTIME; /* proxyd_new freed cfg */
    }
    ret = proxyd_run(p);
    proxyd_free(p);
    log_close();
    libevent_global_shutdown();
    return ret;
}
