/* vtpm-proxyd's daemon context: the event loop, signals, reload and the
 * orderly stop. It is the one piece of mutable state, passed as the
 * callback argument. */
#ifndef PROXYD_PROXYD_H
#define PROXYD_PROXYD_H

#include "cmdline.h"
#include "proxyd/pconfig.h"

struct proxyd;

/* Takes ownership of cfg (also on failure). 0 or -errno (logged). */
int proxyd_new(const struct cmdline *cl, struct pconfig *cfg, struct proxyd **out);
/* Serves until SIGTERM/SIGINT; returns an exit code. */
int proxyd_run(struct proxyd *p);
void proxyd_free(struct proxyd *p);

/* SIGHUP: parse and validate the file again (TLS material included), swap
 * it in, then reconcile. On error the running configuration stays. */
int proxyd_reload(struct proxyd *p);

#endif
