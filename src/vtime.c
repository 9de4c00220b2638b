#include "config.h"

#include "vtime.h"

struct timespec vtime_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

uint64_t vtime_now_ms(void)
{
    struct timespec ts = vtime_now();

    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t vtime_now_ns(void)
{
    struct timespec ts = vtime_now();

    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double vtime_since_ms(const struct timespec *start)
{
    struct timespec now = vtime_now();
    double ms = (double)(now.tv_sec - start->tv_sec) * 1000.0 +
                (double)(now.tv_nsec - start->tv_nsec) / 1e6;

    return ms > 0 ? ms : 0;
}

struct timeval vtime_tv_ms(uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)((ms % 1000) * 1000)};

    return tv;
}

struct timespec vtime_ts_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};

    return ts;
}
