/* Exponential backoff with a cap and jitter, for every retry loop: the
 * bus's reconnects, vtpmmgr's requests, libvirt's reconnects, the
 * engine's step and status retries, vtpm-proxyd's start-up reconcile. */
#ifndef VTPMD_BACKOFF_H
#define VTPMD_BACKOFF_H

#include <stdint.h>

/* The delay before retry number attempt (0 for the first retry):
 * base_ms * 2^attempt, never above cap_ms (nor below base_ms when
 * base_ms <= cap_ms). Never overflows, whatever attempt. */
uint64_t backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned attempt);

/* "Equal jitter": uniformly in [delay_ms/2, delay_ms] from rnd, a random
 * value. Retries still back off (never under half the step) but hosts
 * that failed together do not retry in lockstep. */
uint64_t backoff_jitter_ms(uint64_t delay_ms, uint64_t rnd);

/* The next value of a xorshift64* generator seeded with *state (not 0):
 * for jitter only, no security role. */
uint64_t backoff_rand(uint64_t *state);

#endif
