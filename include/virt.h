/* The libvirt side of vtpmd. libvirt calls block, so they run on worker
 * threads that share one virConnectPtr; the event loop never calls
 * libvirt. Work is queued with virt_submit(); its result comes back to
 * the loop (a queue plus event_active()) and the completion callback runs
 * on the loop thread. Domain lifecycle events (virEventRunDefaultImpl on
 * a thread of this module) and connection changes reach the loop the same
 * way. The connection is (re)opened on the workers with exponential
 * backoff; connection(up) is called on every change, including the first
 * connect (up) or the first failure (down).
 *
 * Requirements: evthread_use_pthreads() before the event_base is created
 * (event_active is called from other threads); xmlInitParser() in the main
 * thread before threads use libxml2 (virt_new calls it).
 *
 * virt_new sets process-wide libvirt state: it registers the default event
 * implementation and replaces libvirt's default error printer with a
 * silent one (libxml2's too, on virt's threads); errors come back per call
 * in *err instead. libvirt's own warnings, not errors (a keepalive
 * timeout, say), still reach stderr: the client library has no hook for
 * them but LIBVIRT_LOG_OUTPUTS.
 *
 * One struct virt at a time per process: libvirt's default event loop is
 * global, and with two, one's event thread could dispatch the other's
 * callbacks. */
#ifndef VTPMD_VIRT_H
#define VTPMD_VIRT_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>

#include "domxml.h"

struct event_base;
struct virt;

/* Workers of virt_new(). libvirt serves calls on one connection
 * concurrently; the test driver spends ~0.5 ms of CPU parsing XML per
 * define or start, libxl far more waiting for Xen, and the engine's jobs
 * also wait on the disk (images, their directory). vtpmd takes
 * libvirt.workers (default 8). */
#define VIRT_WORKERS_DEFAULT 4
#define VIRT_WORKERS_MAX 32
/* Reconnect backoff: doubles from MIN to MAX. */
#define VIRT_BACKOFF_MIN_MS 250
#define VIRT_BACKOFF_MAX_MS 30000

struct virt_callbacks {
    /* Every domain's lifecycle event (filter by name). */
    void (*lifecycle)(const char *domain_name, int event /* virDomainEventType */,
                      int detail, void *arg);
    void (*connection)(bool up, void *arg);
    /* The events lifecycle wants, as bits 1u << virDomainEventType; 0:
     * all. Others are dropped on libvirt's event thread and never wake
     * the loop (every create brings a DEFINED and a STARTED). */
    unsigned lifecycle_events;
};

int virt_new(struct event_base *base, const char *uri, const struct virt_callbacks *cb,
             void *arg, struct virt **out);
/* Same with 1..VIRT_WORKERS_MAX workers. Jobs run concurrently on them and
 * complete in any order: callers serialize what must be ordered. */
int virt_new_workers(struct event_base *base, const char *uri, unsigned workers,
                     const struct virt_callbacks *cb, void *arg, struct virt **out);
/* Stops the workers (a job already running finishes), closes the
 * connection, joins every thread, and drops pending jobs and undelivered
 * results: their done callbacks are not called, and their job_args stay
 * the caller's to free. Not from inside a virt callback. NULL is fine. */
void virt_free(struct virt *v);
/* Like virt_free, but every job not yet reported (queued, running or
 * finished) gets its done callback first, with -ECANCELED, on the calling
 * thread: so that callers can free what they passed in at shutdown. */
void virt_free_cancel(struct virt *v);

/* Runs on a worker. conn is NULL while disconnected: return -ENOTCONN
 * (virt_not_connected()). *err: a malloc'ed message for the caller's log,
 * or left NULL. Returns 0 or a negative errno. */
typedef int (*virt_work_fn)(virConnectPtr conn, void *job_arg, char **err);
/* Runs on the loop thread; err (may be NULL) is owned by the callee. */
typedef void (*virt_done_fn)(int ret, char *err, void *job_arg);

/* Queues work; done may be NULL. -ESHUTDOWN once virt_free has begun. A
 * job submitted while the first connect (or a reconnect attempt) is in
 * progress waits for its outcome. */
int virt_submit(struct virt *v, virt_work_fn work, virt_done_fn done, void *job_arg);

/* Loop side: the state last delivered to the connection callback. */
bool virt_is_connected(const struct virt *v);
/* Jobs queued and not yet started. */
size_t virt_queue_length(struct virt *v);

/* Ready-made work, for use inside work functions (worker threads). All
 * return 0 or a negative errno (see virt_error), with *err set on failure,
 * and refuse names that are not domxml_name_valid() with -EINVAL. */

/* virt_define_start flags. VIRT_REQUIRE_VTPM: xml carries a
 * <devices><vtpm> that libvirt must keep. The XML is defined with
 * VIR_DOMAIN_DEFINE_VALIDATE (libvirt checks it against its schema) and
 * read back before anything is started; -ENODEV, and nothing started,
 * when libvirt's schema refuses it (vtpmd's XML is valid for the schema of
 * a libvirt with the contrib/libvirt series: tests/integration/domxml-rng.sh)
 * or the defined domain has no such device any more (a libvirt without the
 * series that does not validate drops it silently). Without the flag, a
 * libvirt that drops the device is not noticed: for test:///default. */
#define VIRT_REQUIRE_VTPM 1u

/* Defines (with metadata) and starts; idempotent: an existing definition
 * with the same name and UUID is redefined, a running domain is left
 * running (a paused one resumed). -EEXIST when another domain holds the
 * name or the UUID. It does not undefine on a failed start, nor after
 * -ENODEV: rolling back is the caller's decision (virt_destroy_undefine). */
int virt_define_start(virConnectPtr conn, const char *xml, const char *name, unsigned flags,
                      char **err);

/* The probe domain's name and UUID (no vtpmd metadata; a leftover of a
 * crash is redefined and removed by the next probe). */
#define VIRT_PROBE_NAME "vtpmd-vtpm-probe"
#define VIRT_PROBE_UUID "7670746d-642d-4e70-9072-6f6265000001"
/* Whether the connected libvirt keeps a <vtpm> device: defines the probe
 * domain (kernel: any absolute path, never started) with
 * VIR_DOMAIN_DEFINE_VALIDATE, reads it back and undefines it. 1 kept, 0
 * refused or dropped (*err says which), negative errno when libvirt
 * failed otherwise. */
int virt_probe_vtpm(virConnectPtr conn, const char *kernel, char **err);
/* Destroys and undefines; idempotent: a missing domain is success.
 * -EPERM for a domain without vtpmd metadata: vtpmd removes only its own. */
int virt_destroy_undefine(virConnectPtr conn, const char *name, char **err);
/* The same, and -EPERM too when the metadata names another instance than
 * instance_uuid (lower-case canonical; NULL: any). */
int virt_destroy_undefine_for(virConnectPtr conn, const char *name, const char *instance_uuid,
                              char **err);
/* The domain XML as libvirt has it now; -ENOENT when missing. */
int virt_get_xml(virConnectPtr conn, const char *name, char **xml_out, char **err);

struct virt_domain_info {
    char *name;
    bool active;
    struct domxml_meta meta;
};
/* Every domain carrying vtpmd metadata (valid ones; others are logged and
 * skipped), with its state. *out is NULL when n is 0. */
int virt_list_vtpmd(virConnectPtr conn, struct virt_domain_info **out, size_t *n, char **err);
void virt_domain_info_free(struct virt_domain_info *d, size_t n);

/* For work functions: turns libvirt's last error on this thread into a
 * negative errno and *err = "<what>: <libvirt's message>", then clears
 * it. -ENOENT no such domain, -ENOTCONN connection lost or closed (also
 * whenever conn is no longer alive), -ETIMEDOUT, -EINVAL invalid XML or
 * arguments, -EEXIST, -EACCES, -ENOTSUP, -EIO anything else. */
int virt_error(virConnectPtr conn, const char *what, char **err);
/* -ENOTCONN with a message; for work functions called with conn NULL. */
int virt_not_connected(char **err);
/* Worth retrying later: -ENOTCONN, -ETIMEDOUT, -EAGAIN, and running out
 * of descriptors (-EMFILE, -ENFILE). */
bool virt_error_transient(int ret);

#endif
