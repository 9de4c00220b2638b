/* vtpm-proxyd: the Keylime VM's REST service that hands out vTPM UUIDs
 * from vtpmmgr. main() parses the command line, loads the configuration
 * and wires the daemon; it decides nothing. */
#include "autoconfig.h"

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

    if (cmdline_parse(argc, argv, PROXYD_CONFIG_FILE, &cl, stderr) < 0)
        return EXIT_USAGE;
    switch (cl.action) {
    case CMDLINE_HELP:
        cmdline_usage("vtpm-proxyd", PROXYD_CONFIG_FILE, stdout);
        return EXIT_OK;
    case CMDLINE_VERSION:
        printf("vtpm-proxyd %s\n", PACKAGE_VERSION);
        return EXIT_OK;
    default:
        break;
    }

    log_init("vtpm-proxyd", cl.have_level ? cl.level : LOG_LEVEL_INFO, LOG_TARGET_STDERR);
    if (pconfig_load(cl.config_path, &cfg, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        cfg_errors_free(&errs);
        return EXIT_USAGE;
    }
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
