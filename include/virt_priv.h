/* virt internals for tests and benchmarks only. */
#ifndef VTPMD_VIRT_PRIV_H
#define VTPMD_VIRT_PRIV_H

#include "virt.h"

/* Reconnect backoff bounds (ms); takes effect from the next failure. */
void virt_set_backoff(struct virt *v, unsigned min_ms, unsigned max_ms);
/* Acts as if libvirt had closed the connection: a worker drops it and
 * reconnects (test:///default never closes on its own). */
void virt_force_reconnect(struct virt *v);

#endif
