/* One worker thread that runs jobs one at a time, in submission order,
 * and hands each finished job back to the event loop's thread.
 *
 * vtpm-proxyd does all vtpmmgr device I/O and record file writes in jobs:
 * the device blocks, vtpmmgr takes one command at a time, and a record
 * must be durable before its vTPM is announced. The loop never waits. */
#ifndef PROXYD_JOBQ_H
#define PROXYD_JOBQ_H

#include <stddef.h>

struct event_base;
struct jobq;

/* Runs on the worker thread. */
typedef void (*jobq_work_fn)(void *arg);
/* Runs on the loop's thread after work, in submission order. */
typedef void (*jobq_done_fn)(void *arg);

/* The base must have been created after evthread_use_pthreads(). */
int jobq_new(struct event_base *base, struct jobq **out);
void jobq_submit(struct jobq *q, jobq_work_fn work, jobq_done_fn done,
                 void *arg);
/* Jobs submitted whose done callback has not run yet. */
size_t jobq_pending(const struct jobq *q);
/* Lets the job in progress finish, runs no more, joins the thread, and
 * calls done for every job that ran; the rest are dropped without their
 * done callback (their argument is the caller's to free: see drop). */
void jobq_free(struct jobq *q, jobq_done_fn drop);

#endif
