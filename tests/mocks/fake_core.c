/* The fakes' shared parts: the trace, the deferred answers, the results. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakes.h"
#include "xalloc.h"

static const char *const results[] = {
    FAKE_ACQUIRE, FAKE_ACQUIRE_CB, FAKE_RELEASE, FAKE_RELEASE_CB, FAKE_SUBMIT,
    FAKE_DEFINE,  FAKE_UNDEFINE,   FAKE_LIST,    FAKE_IMAGE,      FAKE_SPARE,
    FAKE_SYNC,    FAKE_IMAGE_RM,   FAKE_PUBLISH, FAKE_CONFIRM,    FAKE_JOURNAL,
};

/* cmocka keeps the name's pointer: hand it the constant. */
void fake_will(const char *name, long value)
{
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        if (strcmp(results[i], name) == 0) {
            _will_return(results[i], __FILE__, __LINE__, (LargestIntegralType)value, 1);
            return;
        }
    }
    fail_msg("no fake result named %s", name);
}

void fake_defaults(void)
{
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
        _will_return(results[i], __FILE__, __LINE__, 0, -2); /* will_return_maybe */
}

static char *trace;
static size_t trace_len;

void fake_trace(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    trace = xrealloc(trace, trace_len + (size_t)n + 2);
    if (trace_len)
        trace[trace_len++] = ' ';
    memcpy(trace + trace_len, s, (size_t)n + 1);
    trace_len += (size_t)n;
    free(s);
}

const char *fake_trace_get(void)
{
    return trace ? trace : "";
}

struct deferred {
    struct deferred *next;
    void (*fn)(void *);
    void *arg;
};

static struct deferred *head, **tail = &head;
static size_t npending;

void fake_defer(void (*fn)(void *), const void *data, size_t n)
{
    struct deferred *d = xcalloc(1, sizeof(*d));

    d->fn = fn;
    d->arg = xmalloc(n);
    memcpy(d->arg, data, n);
    *tail = d;
    tail = &d->next;
    npending++;
}

bool fake_step(void)
{
    struct deferred *d = head;

    if (d == NULL)
        return false;
    head = d->next;
    if (head == NULL)
        tail = &head;
    npending--;
    d->fn(d->arg);
    free(d->arg);
    free(d);
    return true;
}

size_t fake_pending(void)
{
    return npending;
}

void fake_bus_reset(void);
void fake_virt_reset(void);
void fake_journal_reset(void);

void fake_reset(void)
{
    assert_int_equal(npending, 0);
    free(trace);
    trace = NULL;
    trace_len = 0;
    fake_bus_reset();
    fake_virt_reset();
    fake_journal_reset();
    fake_vtpmmgr_local = false;
    fake_libvirt_connected = true;
    fake_bus_caught_up = true;
}
