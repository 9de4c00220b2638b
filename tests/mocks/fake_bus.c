/* Fakes of the bus (acks, rejects) and of status publishing. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "fakes.h"
#include "status.h"
#include "xalloc.h"

struct bus_delivery {
    unsigned id;
};

bool fake_bus_caught_up = true;

static struct bus_delivery **dels;
static unsigned ndels;

struct bus_delivery *fake_delivery(void)
{
    struct bus_delivery *d = xcalloc(1, sizeof(*d));

    dels = xreallocarray(dels, ndels + 1, sizeof(*dels));
    dels[ndels++] = d;
    d->id = ndels;
    return d;
}

void fake_bus_reset(void);
void fake_bus_reset(void)
{
    for (unsigned i = 0; i < ndels; i++)
        free(dels[i]);
    free(dels);
    dels = NULL;
    ndels = 0;
}

void __wrap_bus_ack(struct bus *b, struct bus_delivery *d);
void __wrap_bus_ack(struct bus *b, struct bus_delivery *d)
{
    (void)b;
    if (d) /* the engine hands NULL for a delivery it already released */
        fake_trace("ack:%u", d->id);
}

void __wrap_bus_reject(struct bus *b, struct bus_delivery *d);
void __wrap_bus_reject(struct bus *b, struct bus_delivery *d)
{
    (void)b;
    fake_trace("reject:%u", d->id);
}

bool __wrap_bus_caught_up(struct bus *b);
bool __wrap_bus_caught_up(struct bus *b)
{
    (void)b;
    return fake_bus_caught_up;
}

void __wrap_bus_get_stats(const struct bus *b, struct bus_stats *out);
void __wrap_bus_get_stats(const struct bus *b, struct bus_stats *out)
{
    (void)b;
    memset(out, 0, sizeof(*out));
    out->connected = out->consuming = true;
    out->state = "consuming";
}

struct confirm {
    bus_publish_cb cb;
    void *arg;
};

static void confirm_fire(void *arg)
{
    const struct confirm *c = arg;

    c->cb((int)_mock(FAKE_CONFIRM, __FILE__, __LINE__), c->arg);
}

int __wrap_status_publish(struct bus *b, const struct config *cfg, const char *event_type,
                          const struct status_payload *p, bus_publish_cb cb, void *arg);
int __wrap_status_publish(struct bus *b, const struct config *cfg, const char *event_type,
                          const struct status_payload *p, bus_publish_cb cb, void *arg)
{
    int ret = (int)_mock(FAKE_PUBLISH, __FILE__, __LINE__);
    struct confirm c = {cb, arg};

    (void)b;
    (void)cfg;
    assert_non_null(p->instance_uuid);
    fake_trace("pub:%s", strncmp(event_type, "vtpm.", 5) == 0 ? event_type + 5 : event_type);
    if (ret == 0)
        fake_defer(confirm_fire, &c, sizeof(c));
    return ret;
}
