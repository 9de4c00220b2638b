/* The monotonic clock and conversions to the structs libevent and
 * pthreads take (libvirt's virtime.h). Durations and deadlines are
 * measured on CLOCK_MONOTONIC, never on the wall clock, which an
 * operator or NTP may step. */
#ifndef VTPMD_VTIME_H
#define VTPMD_VTIME_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Now, on the monotonic clock. */
struct timespec vtime_now(void);
uint64_t vtime_now_ms(void);
uint64_t vtime_now_ns(void);

/* Milliseconds since start (a vtime_now() value); 0 if start is ahead. */
double vtime_since_ms(const struct timespec *start);

/* A relative timeout for event_add()/evtimer_add(). */
struct timeval vtime_tv_ms(uint64_t ms);

/* An absolute time for pthread_cond_timedwait() on a condition variable
 * whose clock is CLOCK_MONOTONIC (ns as vtime_now_ns() counts). */
struct timespec vtime_ts_ns(uint64_t ns);

#endif
