/* Link-time fakes of the engine's neighbours (bus, status, virt,
 * vtpmmgr, image, journal) for tests/unit/test_engine.c. The test links
 * with -Wl,--wrap=SYMBOL for each faked function (mk/engine.mk lists them).
 *
 * Every fake appends what it was asked to do to one trace ("acquire",
 * "define", "pub:create.end", "journal:ready", "ack:1", ...), and defers
 * its asynchronous answer (a vtpmmgr callback, a libvirt job, a status
 * confirm, a journal write) to a FIFO that fake_step() runs one at a
 * time, in the order the engine asked. What an answer is comes from
 * cmocka's will_return queue under the fake's result name (FAKE_*
 * below): fake_will() queues one, fake_defaults() the successes every
 * other call gets (call it after the fake_will()s: the queue is FIFO). */
#ifndef VTPMD_TESTS_FAKES_H
#define VTPMD_TESTS_FAKES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "journal.h"
#include "virt.h"

/* Result names (cmocka's mock queue keys). */
#define FAKE_ACQUIRE "vtpmmgr_acquire"        /* int: its return */
#define FAKE_ACQUIRE_CB "vtpmmgr_acquire_cb"  /* enum vtpmmgr_status */
#define FAKE_RELEASE "vtpmmgr_release"
#define FAKE_RELEASE_CB "vtpmmgr_release_cb"
#define FAKE_SUBMIT "virt_submit"             /* int: its return */
#define FAKE_DEFINE "virt_define_start"       /* int */
#define FAKE_UNDEFINE "virt_destroy_undefine_for"
#define FAKE_LIST "virt_list_vtpmd"
#define FAKE_IMAGE "image_pool_create"        /* int */
#define FAKE_SPARE "image_pool_spare"         /* bool: the image was a spare */
#define FAKE_SYNC "image_pool_sync"
#define FAKE_IMAGE_RM "image_remove"
#define FAKE_PUBLISH "status_publish"         /* int: its return */
#define FAKE_CONFIRM "status_confirm"         /* int: the confirm's status */
#define FAKE_JOURNAL "journal_put"            /* int: the write's result */

/* The vTPM UUID the fake vtpmmgr hands out. */
#define FAKE_VTPM_UUID "0b0b0b0b-0000-4000-8000-00000000000b"

void fake_will(const char *name, long value);
void fake_defaults(void);

/* Trace of the effects, space separated. */
void fake_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fake_trace_get(void);

/* The deferred answers: fn gets a copy of the n bytes at data, freed
 * after it returns. */
void fake_defer(void (*fn)(void *), const void *data, size_t n);
bool fake_step(void);
size_t fake_pending(void);

/* Everything back to the start (frees deliveries, domains, records). */
void fake_reset(void);

/* bus: deliveries the test hands to engine_deliver. */
struct bus_delivery *fake_delivery(void);
extern bool fake_bus_caught_up;

/* virt: connected or not (work then runs with a NULL connection), the
 * domains virt_list_vtpmd reports. */
extern bool fake_libvirt_connected;
void fake_domain_add(const char *name, const char *instance_uuid, bool active);

/* vtpmmgr: the local provider or the proxy. */
extern bool fake_vtpmmgr_local;

/* journal: the records journal_loaded returns (copied). */
void fake_journal_load(const struct journal_record *r);

#endif
