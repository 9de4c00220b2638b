/* Command line of vtpmd and vtpm-proxyd (they share one contract):
 *   PROG [-c FILE] [-t] [-l LEVEL] [-V] [-h] */
#ifndef VTPMD_CMDLINE_H
#define VTPMD_CMDLINE_H

#include <stdbool.h>
#include <stdio.h>

#include "log.h"

enum cmdline_action {
    CMDLINE_RUN = 0,
    CMDLINE_CHECK,
    CMDLINE_VERSION,
    CMDLINE_HELP,
};

struct cmdline {
    enum cmdline_action action;
    const char *config_path; /* points into argv or the default */
    bool have_level;
    enum log_level level;
};

/* Exit codes of the contract. */
#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Parses argv. Returns 0, or -EINVAL after printing a usage error to err. */
int cmdline_parse(int argc, char **argv, const char *default_config,
                  struct cmdline *out, FILE *err);
void cmdline_usage(const char *prog, const char *default_config, FILE *out);

struct cfg_errors;
/* The start of both daemons' main(): parses argv into *cl and answers -h
 * and -V. Returns -1 when the program goes on, else its exit code. */
int cmdline_start(int argc, char **argv, const char *prog, const char *default_config,
                  struct cmdline *cl);
/* Prints configuration errors ("FILE:LINE:COL: message") to stderr, frees
 * them and returns EXIT_USAGE. */
int cmdline_config_errors(struct cfg_errors *errs);

/* The same for a reload (SIGHUP) of path: logs every error and that the
 * running configuration stays, frees them and returns -EINVAL. */
int cmdline_reload_errors(struct cfg_errors *errs, const char *path);

struct cfg_key;
/* A cfg_changed_fn for a reload: warns that key k, read at start only,
 * changed in the file and that the running value stays. arg: the
 * program's name. */
void cmdline_warn_restart(const struct cfg_key *k, const char *running, void *arg);

#endif
