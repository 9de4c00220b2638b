#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cfg.h"
#include "cmdline.h"

static const struct option cmdline_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"check-config", no_argument, NULL, 't'},
    {"log-level", required_argument, NULL, 'l'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

void cmdline_usage(const char *prog, const char *default_config, FILE *out)
{
    fprintf(out,
            "Usage: %s [-c FILE] [-t] [-l LEVEL] [-V] [-h]\n"
            "  -c, --config FILE      configuration file (default %s)\n"
            "  -t, --check-config     validate the configuration and exit\n"
            "                         (0 valid, 2 invalid)\n"
            "  -l, --log-level LEVEL  error, warning, info or debug\n"
            "                         (overrides log.level)\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             print this help and exit\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration "
            "error.\n",
            prog, default_config);
}

int cmdline_parse(int argc, char **argv, const char *default_config,
                  struct cmdline *out, FILE *err)
{
    struct cmdline c = {.action = CMDLINE_RUN, .config_path = default_config};
    const char *prog = argc > 0 && argv[0] ? argv[0] : "vtpmd";
    int opt;

    optind = 0; /* full reset: tests parse several times */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:tl:Vh", cmdline_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            if (optarg[0] == '\0') {
                fprintf(err, "%s: -c: empty file name\n", prog);
                return -EINVAL;
            }
            c.config_path = optarg;
            break;
        case 't':
            c.action = CMDLINE_CHECK;
            break;
        case 'l':
            if (log_level_parse(optarg, &c.level) < 0) {
                fprintf(err,
                        "%s: -l: unknown log level '%s' (error, warning, "
                        "info, debug)\n",
                        prog, optarg);
                return -EINVAL;
            }
            c.have_level = true;
            break;
        case 'V':
            if (c.action != CMDLINE_HELP)
                c.action = CMDLINE_VERSION;
            break;
        case 'h':
            c.action = CMDLINE_HELP;
            break;
        case ':':
            fprintf(err, "%s: option '%s' needs an argument\n", prog,
                    argv[optind - 1]);
            return -EINVAL;
        default:
            if (optopt)
                fprintf(err, "%s: unknown option '-%c'\n", prog, optopt);
            else
                fprintf(err, "%s: unknown option '%s'\n", prog,
                        argv[optind - 1]);
            fprintf(err, "Try '%s --help'.\n", prog);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(err, "%s: unexpected argument '%s'\nTry '%s --help'.\n", prog,
                argv[optind], prog);
        return -EINVAL;
    }
    *out = c;
    return 0;
}

int cmdline_start(int argc, char **argv, const char *prog, const char *default_config,
                  struct cmdline *cl)
{
    if (cmdline_parse(argc, argv, default_config, cl, stderr) < 0)
        return EXIT_USAGE;
    switch (cl->action) {
    case CMDLINE_HELP:
        cmdline_usage(prog, default_config, stdout);
        return EXIT_OK;
    case CMDLINE_VERSION:
        printf("%s %s\n", prog, PACKAGE_VERSION);
        return EXIT_OK;
    default:
        return -1;
    }
}

int cmdline_config_errors(struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
    cfg_errors_free(errs);
    return EXIT_USAGE;
}

int cmdline_reload_errors(struct cfg_errors *errs, const char *path)
{
    for (size_t i = 0; i < errs->n; i++)
        log_error("%s", errs->msgs[i]);
    log_error("reload failed, keeping the running configuration file=%s errors=%zu", path,
              errs->n);
    cfg_errors_free(errs);
    return -EINVAL;
}

void cmdline_warn_restart(const struct cfg_key *k, const char *running, void *arg)
{
    const char *prog = arg;

    log_warn("%s takes effect when %s restarts; still using %s=%s", k->name, prog, k->name,
             running);
}
