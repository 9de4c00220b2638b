/* The bus's ack window, see include/bus_ackwin.h. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus_ackwin.h"
#include "xalloc.h"

void bus_ackwin_init(struct bus_ackwin *w)
{
    memset(w, 0, sizeof(*w));
    w->cap = 64;
    w->st = xcalloc(w->cap, 1);
    bus_ackwin_reset(w);
}

void bus_ackwin_reset(struct bus_ackwin *w)
{
    w->base = w->scan = w->next = 1;
    w->wanted = w->prefix_wanted = 0;
    w->prefix_last = 0;
}

void bus_ackwin_release(struct bus_ackwin *w)
{
    free(w->st);
    w->st = NULL;
    w->cap = 0;
}

static uint8_t *ackwin_at(const struct bus_ackwin *w, uint64_t tag)
{
    return &w->st[tag & (w->cap - 1)];
}

static void ackwin_grow(struct bus_ackwin *w)
{
    size_t ncap = w->cap * 2;
    uint8_t *n = xcalloc(ncap, 1);

    for (uint64_t t = w->base; t < w->next; t++)
        n[t & (ncap - 1)] = *ackwin_at(w, t);
    free(w->st);
    w->st = n;
    w->cap = ncap;
}

/* Extends the contiguous completed prefix as far as it goes. */
static void ackwin_advance_scan(struct bus_ackwin *w)
{
    while (w->scan < w->next) {
        uint8_t s = *ackwin_at(w, w->scan);

        if (s == BUS_ACK_PENDING)
            break;
        if (s == BUS_ACK_WANTED) {
            w->prefix_wanted++;
            w->prefix_last = w->scan;
        }
        w->scan++;
    }
}

int bus_ackwin_push(struct bus_ackwin *w, uint64_t tag)
{
    if (tag < w->next)
        return -EINVAL;
    /* Tags the broker skipped (none on a consumer channel) are not ours. */
    while (w->next <= tag) {
        if (w->next - w->base >= w->cap)
            ackwin_grow(w);
        *ackwin_at(w, w->next) = w->next == tag ? BUS_ACK_PENDING : BUS_ACK_SETTLED;
        w->next++;
    }
    ackwin_advance_scan(w);
    return 0;
}

int bus_ackwin_complete(struct bus_ackwin *w, uint64_t tag, bool ack)
{
    uint8_t *s;

    if (tag < w->base || tag >= w->next)
        return -ENOENT;
    s = ackwin_at(w, tag);
    if (*s != BUS_ACK_PENDING)
        return -ENOENT;
    *s = ack ? BUS_ACK_WANTED : BUS_ACK_SETTLED;
    if (ack)
        w->wanted++;
    if (tag == w->scan)
        ackwin_advance_scan(w);
    return 0;
}

size_t bus_ackwin_flush(struct bus_ackwin *w, bool all, bus_ackwin_emit_fn emit,
                        void *arg)
{
    size_t frames = 0;

    if (w->prefix_last) {
        emit(w->prefix_last, true, arg);
        frames++;
    }
    w->wanted -= w->prefix_wanted;
    w->prefix_wanted = 0;
    w->prefix_last = 0;
    w->base = w->scan;
    if (all && w->wanted > 0) {
        for (uint64_t t = w->scan; t < w->next && w->wanted > 0; t++) {
            uint8_t *s = ackwin_at(w, t);

            if (*s == BUS_ACK_WANTED) {
                emit(t, false, arg);
                *s = BUS_ACK_SETTLED;
                w->wanted--;
                frames++;
            }
        }
    }
    return frames;
}

size_t bus_ackwin_pending(const struct bus_ackwin *w)
{
    size_t n = 0;

    for (uint64_t t = w->scan; t < w->next; t++)
        if (*ackwin_at(w, t) == BUS_ACK_PENDING)
            n++;
    return n;
}
