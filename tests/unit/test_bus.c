/* The bus's bookkeeping without a broker: the ack window (which tags a
 * basic.ack may name, with or without multiple) checked against a model
 * of the broker's unacknowledged set, and the publisher outbox. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus_ackwin.h"
#include "bus_outbox.h"

/* ---- ack window --------------------------------------------------- */

#define MAXTAG 4096

/* The broker's view: which tags are delivered and not yet acknowledged,
 * and what the consumer said about each (the test's truth). */
struct model {
    bool unacked[MAXTAG];
    bool done[MAXTAG];     /* consumer acked it */
    bool rejected[MAXTAG]; /* consumer rejected it (basic.reject sent) */
    uint64_t delivered;
    size_t frames;
    uint64_t last_tag;
    bool last_multiple;
};

static void model_emit(uint64_t tag, bool multiple, void *arg)
{
    struct model *m = arg;

    m->frames++;
    m->last_tag = tag;
    m->last_multiple = multiple;
    /* The broker closes the channel on an ack for a tag it does not hold. */
    assert_true(tag >= 1 && tag <= m->delivered);
    assert_true(m->unacked[tag]);
    assert_true(m->done[tag]);
    if (!multiple) {
        m->unacked[tag] = false;
        return;
    }
    /* A multiple ack takes every unacked tag up to it along: each must
     * be one the consumer finished. */
    for (uint64_t t = 1; t <= tag; t++) {
        if (m->unacked[t]) {
            assert_true(m->done[t]);
            m->unacked[t] = false;
        }
    }
}

static void model_deliver(struct model *m, struct bus_ackwin *w)
{
    uint64_t t = ++m->delivered;

    m->unacked[t] = true;
    assert_int_equal(bus_ackwin_push(w, t), 0);
}

static void model_complete(struct model *m, struct bus_ackwin *w, uint64_t t, bool ack)
{
    assert_int_equal(bus_ackwin_complete(w, t, ack), 0);
    if (ack) {
        m->done[t] = true;
    } else {
        m->rejected[t] = true;
        m->unacked[t] = false; /* basic.reject */
    }
}

static void test_ackwin_in_order_one_frame(void **state)
{
    struct bus_ackwin w;
    struct model m = {0};

    bus_ackwin_init(&w);
    for (int i = 0; i < 10; i++)
        model_deliver(&m, &w);
    for (uint64_t t = 1; t <= 10; t++)
        model_complete(&m, &w, t, true);
    assert_int_equal(w.prefix_wanted, 10);
    assert_int_equal(bus_ackwin_flush(&w, false, model_emit, &m), 1);
    assert_int_equal(m.last_tag, 10);
    assert_true(m.last_multiple);
    assert_int_equal(w.wanted, 0);
    assert_int_equal(bus_ackwin_flush(&w, true, model_emit, &m), 0);
    for (uint64_t t = 1; t <= 10; t++)
        assert_false(m.unacked[t]);
    bus_ackwin_release(&w);
}

static void test_ackwin_gap_holds_multiple(void **state)
{
    struct bus_ackwin w;
    struct model m = {0};

    bus_ackwin_init(&w);
    for (int i = 0; i < 5; i++)
        model_deliver(&m, &w);
    for (uint64_t t = 2; t <= 5; t++)
        model_complete(&m, &w, t, true);
    /* Tag 1 is with the consumer: no multiple ack may be sent. */
    assert_int_equal(w.prefix_wanted, 0);
    assert_int_equal(bus_ackwin_flush(&w, false, model_emit, &m), 0);
    /* Time is up: the ones beyond the gap go one by one. */
    assert_int_equal(bus_ackwin_flush(&w, true, model_emit, &m), 4);
    assert_false(m.last_multiple);
    assert_true(m.unacked[1]);
    assert_int_equal(bus_ackwin_pending(&w), 1);
    /* Tag 1 done: one frame, and nothing is acked twice. */
    model_complete(&m, &w, 1, true);
    assert_int_equal(bus_ackwin_flush(&w, false, model_emit, &m), 1);
    assert_int_equal(m.last_tag, 1);
    assert_int_equal(w.base, 6);
    assert_int_equal(w.wanted, 0);
    bus_ackwin_release(&w);
}

static void test_ackwin_gap_closes_in_time(void **state)
{
    struct bus_ackwin w;
    struct model m = {0};

    bus_ackwin_init(&w);
    for (int i = 0; i < 5; i++)
        model_deliver(&m, &w);
    for (uint64_t t = 2; t <= 5; t++)
        model_complete(&m, &w, t, true);
    model_complete(&m, &w, 1, true);
    assert_int_equal(w.prefix_wanted, 5);
    assert_int_equal(bus_ackwin_flush(&w, false, model_emit, &m), 1);
    assert_int_equal(m.last_tag, 5);
    assert_true(m.last_multiple);
    bus_ackwin_release(&w);
}

static void test_ackwin_reject_in_prefix(void **state)
{
    struct bus_ackwin w;
    struct model m = {0};

    bus_ackwin_init(&w);
    for (int i = 0; i < 3; i++)
        model_deliver(&m, &w);
    model_complete(&m, &w, 2, false);
    model_complete(&m, &w, 1, true);
    model_complete(&m, &w, 3, true);
    assert_int_equal(bus_ackwin_flush(&w, false, model_emit, &m), 1);
    assert_int_equal(m.last_tag, 3);
    /* Only rejects: nothing to send, the window still moves on. */
    model_deliver(&m, &w);
    model_complete(&m, &w, 4, false);
    assert_int_equal(bus_ackwin_flush(&w, true, model_emit, &m), 0);
    assert_int_equal(w.base, 5);
    bus_ackwin_release(&w);
}

static void test_ackwin_errors(void **state)
{
    struct bus_ackwin w;
    struct model m = {0};

    bus_ackwin_init(&w);
    assert_int_equal(bus_ackwin_complete(&w, 1, true), -ENOENT);
    model_deliver(&m, &w);
    assert_int_equal(bus_ackwin_push(&w, 1), -EINVAL);
    model_complete(&m, &w, 1, true);
    assert_int_equal(bus_ackwin_complete(&w, 1, true), -ENOENT);
    assert_int_equal(bus_ackwin_complete(&w, 1, false), -ENOENT);
    assert_int_equal(bus_ackwin_complete(&w, 7, true), -ENOENT);
    bus_ackwin_flush(&w, true, model_emit, &m);
    assert_int_equal(bus_ackwin_complete(&w, 1, true), -ENOENT);
    /* A new channel starts at tag 1 again. */
    bus_ackwin_reset(&w);
    assert_int_equal(bus_ackwin_push(&w, 1), 0);
    assert_int_equal(bus_ackwin_pending(&w), 1);
    bus_ackwin_release(&w);
}

static void test_ackwin_skipped_tags(void **state)
{
    struct bus_ackwin w;

    bus_ackwin_init(&w);
    assert_int_equal(bus_ackwin_push(&w, 1), 0);
    /* Tags 2 and 3 never came to this consumer: they are not ours. */
    assert_int_equal(bus_ackwin_push(&w, 4), 0);
    assert_int_equal(bus_ackwin_pending(&w), 2);
    assert_int_equal(bus_ackwin_complete(&w, 3, true), -ENOENT);
    bus_ackwin_release(&w);
}

static void test_ackwin_grows_behind_a_held_tag(void **state)
{
    struct bus_ackwin w;
    struct model m = {0};

    bus_ackwin_init(&w);
    for (int i = 0; i < 3000; i++) {
        model_deliver(&m, &w);
        if (m.delivered > 1)
            model_complete(&m, &w, m.delivered, true);
        if (m.delivered % 100 == 0)
            bus_ackwin_flush(&w, true, model_emit, &m);
    }
    assert_true(w.cap >= 3000);
    bus_ackwin_flush(&w, true, model_emit, &m);
    assert_true(m.unacked[1]);
    for (uint64_t t = 2; t <= 3000; t++)
        assert_false(m.unacked[t]);
    model_complete(&m, &w, 1, true);
    bus_ackwin_flush(&w, false, model_emit, &m);
    assert_false(m.unacked[1]);
    assert_int_equal(w.base, 3001);
    bus_ackwin_release(&w);
}

/* Random interleavings of deliveries, acks, rejects and flushes: the
 * model asserts every emitted frame is legal; at the end nothing is left. */
static void test_ackwin_random(void **state)
{
    for (unsigned seed = 1; seed <= 200; seed++) {
        struct bus_ackwin w;
        struct model *m = calloc(1, sizeof(*m));
        uint64_t open[MAXTAG];
        size_t nopen = 0;

        srand(seed);
        bus_ackwin_init(&w);
        while (m->delivered < 2000 || nopen > 0) {
            int r = rand() % 10;

            if (r < 4 && m->delivered < 2000) {
                model_deliver(m, &w);
                open[nopen++] = m->delivered;
            } else if (r < 8 && nopen > 0) {
                size_t i = (size_t)rand() % nopen;

                model_complete(m, &w, open[i], rand() % 8 != 0);
                open[i] = open[--nopen];
            } else {
                bus_ackwin_flush(&w, rand() % 3 == 0, model_emit, m);
            }
        }
        bus_ackwin_flush(&w, true, model_emit, m);
        for (uint64_t t = 1; t <= m->delivered; t++)
            assert_false(m->unacked[t]);
        assert_int_equal(w.wanted, 0);
        assert_int_equal(bus_ackwin_pending(&w), 0);
        bus_ackwin_release(&w);
        free(m);
    }
}

/* ---- outbox ------------------------------------------------------- */

struct calls {
    int n;
    int status[64];
    intptr_t which[64];
    struct bus_outbox *ob; /* publish again from the callback when set */
};

static struct calls calls;

static void record_cb(int status, void *arg)
{
    calls.status[calls.n] = status;
    calls.which[calls.n] = (intptr_t)arg;
    calls.n++;
    if (calls.ob) {
        struct bus_outbox *ob = calls.ob;

        calls.ob = NULL;
        assert_int_equal(bus_outbox_push(ob, "x", "k", "again", 5, record_cb, (void *)99), 0);
    }
}

static void push_n(struct bus_outbox *ob, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char body[16];

        snprintf(body, sizeof(body), "m%d", i);
        assert_int_equal(bus_outbox_push(ob, "vtpmd", "notifications.info", body,
                                         strlen(body), record_cb, (void *)(intptr_t)i),
                         0);
    }
}

static void test_outbox_order_limit_confirms(void **state)
{
    struct bus_outbox ob;

    memset(&calls, 0, sizeof(calls));
    bus_outbox_init(&ob, 4);
    push_n(&ob, 1, 4);
    assert_int_equal(bus_outbox_push(&ob, "e", "k", "b", 1, record_cb, NULL), -ENOBUFS);
    assert_int_equal(bus_outbox_count(&ob), 4);
    assert_string_equal(bus_outbox_peek(&ob)->body, "m1");
    for (int i = 0; i < 3; i++)
        bus_outbox_sent(&ob);
    assert_int_equal(ob.n_sent, 3);
    assert_int_equal(ob.sent->seq, 1);
    assert_string_equal(bus_outbox_peek(&ob)->body, "m4");
    /* Still full: sent but unconfirmed messages count. */
    assert_int_equal(bus_outbox_push(&ob, "e", "k", "b", 1, record_cb, NULL), -ENOBUFS);

    assert_int_equal(bus_outbox_confirm(&ob, 2, true, 0), 2);
    assert_int_equal(calls.n, 2);
    assert_int_equal(calls.which[0], 1);
    assert_int_equal(calls.which[1], 2);
    assert_int_equal(calls.status[1], 0);
    bus_outbox_sent(&ob);                       /* m4 gets seq 4 */
    assert_int_equal(bus_outbox_confirm(&ob, 4, false, -EIO), 1); /* nack, out of order */
    assert_int_equal(calls.which[2], 4);
    assert_int_equal(calls.status[2], -EIO);
    assert_int_equal(bus_outbox_confirm(&ob, 4, false, 0), 0); /* unknown now */
    assert_int_equal(bus_outbox_confirm(&ob, 3, true, 0), 1);
    assert_int_equal(calls.which[3], 3);
    assert_int_equal(bus_outbox_count(&ob), 0);
    assert_int_equal(bus_outbox_fail_all(&ob, -ECONNRESET), 0);
}

static void test_outbox_requeue_keeps_order(void **state)
{
    struct bus_outbox ob;

    memset(&calls, 0, sizeof(calls));
    bus_outbox_init(&ob, 100);
    push_n(&ob, 1, 5);
    bus_outbox_sent(&ob);
    bus_outbox_sent(&ob);
    bus_outbox_sent(&ob);
    assert_int_equal(bus_outbox_confirm(&ob, 1, false, 0), 1);
    /* Connection lost with 2 and 3 unconfirmed, 4 and 5 unsent. */
    bus_outbox_requeue(&ob);
    assert_int_equal(ob.n_sent, 0);
    assert_int_equal(ob.n_queue, 4);
    assert_int_equal(ob.seq, 0);
    const char *want[] = {"m2", "m3", "m4", "m5"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(bus_outbox_peek(&ob)->body, want[i]);
        bus_outbox_sent(&ob);
    }
    assert_int_equal(ob.sent->seq, 1); /* the new channel numbers from 1 */
    /* A callback may publish again. */
    calls.ob = &ob;
    assert_int_equal(bus_outbox_confirm(&ob, 4, true, 0), 4);
    assert_int_equal(calls.n, 5);
    assert_int_equal(calls.which[1], 2);
    assert_int_equal(calls.which[4], 5);
    assert_int_equal(bus_outbox_count(&ob), 1);
    assert_int_equal(bus_outbox_fail_all(&ob, -ECONNRESET), 1);
    assert_int_equal(calls.which[5], 99);
    assert_int_equal(calls.status[5], -ECONNRESET);
}

static void test_outbox_fail_all_in_order(void **state)
{
    struct bus_outbox ob;

    memset(&calls, 0, sizeof(calls));
    bus_outbox_init(&ob, 100);
    push_n(&ob, 1, 6);
    bus_outbox_sent(&ob);
    bus_outbox_sent(&ob);
    assert_int_equal(bus_outbox_fail_all(&ob, -ECONNRESET), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(calls.which[i], i + 1);
        assert_int_equal(calls.status[i], -ECONNRESET);
    }
    assert_int_equal(bus_outbox_count(&ob), 0);
    /* Empty bodies are messages too. */
    assert_int_equal(bus_outbox_push(&ob, "e", "k", NULL, 0, NULL, NULL), 0);
    assert_int_equal(bus_outbox_peek(&ob)->len, 0);
    assert_int_equal(bus_outbox_fail_all(&ob, -ECONNRESET), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ackwin_in_order_one_frame),
        cmocka_unit_test(test_ackwin_gap_holds_multiple),
        cmocka_unit_test(test_ackwin_gap_closes_in_time),
        cmocka_unit_test(test_ackwin_reject_in_prefix),
        cmocka_unit_test(test_ackwin_errors),
        cmocka_unit_test(test_ackwin_skipped_tags),
        cmocka_unit_test(test_ackwin_grows_behind_a_held_tag),
        cmocka_unit_test(test_ackwin_random),
        cmocka_unit_test(test_outbox_order_limit_confirms),
        cmocka_unit_test(test_outbox_requeue_keeps_order),
        cmocka_unit_test(test_outbox_fail_all_in_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
