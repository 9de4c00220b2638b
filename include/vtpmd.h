/* The daemon context: one event_base and everything hanging off it. It is
 * the one piece of mutable state, passed as the callback argument. */
#ifndef VTPMD_VTPMD_H
#define VTPMD_VTPMD_H

#include "cmdline.h"
#include "vconfig.h"

struct vtpmd;
struct event_base;
struct bus;

/* Takes ownership of cfg. */
int vtpmd_new(const struct cmdline *cl, struct config *cfg, struct vtpmd **out);
/* Runs the loop until SIGTERM/SIGINT; returns an exit code. */
int vtpmd_run(struct vtpmd *d);
void vtpmd_free(struct vtpmd *d);

/* Parse, validate fully, swap; on error keep the running configuration.
 * Returns 0 or -EINVAL. */
int vtpmd_reload(struct vtpmd *d);
/* Starts a graceful stop. */
void vtpmd_stop(struct vtpmd *d);

struct event_base *vtpmd_base(struct vtpmd *d);
const struct config *vtpmd_config(const struct vtpmd *d);
/* The AMQP bus (include/bus.h): health and counters. */
struct bus *vtpmd_bus(struct vtpmd *d);

#endif
