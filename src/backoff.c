#include "config.h"

#include "backoff.h"

uint64_t backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned attempt)
{
    uint64_t d = base_ms;

    if (d >= cap_ms)
        return cap_ms;
    /* Doubling stops at the cap, so d never overflows. */
    for (unsigned i = 0; i < attempt && d < cap_ms; i++)
        d = d > cap_ms / 2 ? cap_ms : d * 2;
    return d;
}

uint64_t backoff_jitter_ms(uint64_t delay_ms, uint64_t rnd)
{
    uint64_t half = delay_ms / 2;

    /* delay_ms - half + 1 values, so an odd delay_ms is reached too. */
    return half + rnd % (delay_ms - half + 1);
}

uint64_t backoff_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}
