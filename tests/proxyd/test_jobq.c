/* jobq: work runs on another thread, one job at a time, and every done
 * callback runs on the loop's thread in submission order. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "proxyd/jobq.h"

#define JOBS 200

struct ctx {
    struct event_base *base;
    pthread_t loop_thread;
    int running;   /* jobs in work() at once: must stay 0 or 1 */
    int max_running;
    int next_done;
    int worked[JOBS];
    int done_order[JOBS];
    int dropped;
    int on_loop_thread; /* work() calls seen on the loop's thread */
};

struct item {
    struct ctx *c;
    int i;
};

static void work(void *arg)
{
    struct item *it = arg;
    struct ctx *c = it->c;

    /* No cmocka asserts here: they longjmp, and this is not main's thread. */
    if (pthread_equal(pthread_self(), c->loop_thread))
        c->on_loop_thread++;
    if (++c->running > c->max_running)
        c->max_running = c->running;
    if (it->i % 50 == 0)
        usleep(2000);
    c->worked[it->i] = 1;
    c->running--;
}

static void done(void *arg)
{
    struct item *it = arg;
    struct ctx *c = it->c;

    assert_true(pthread_equal(pthread_self(), c->loop_thread));
    assert_int_equal(c->worked[it->i], 1);
    c->done_order[c->next_done++] = it->i;
    if (c->next_done == JOBS)
        event_base_loopbreak(c->base);
    free(it);
}

static void test_order(void **state)
{
    struct ctx c = {0};
    struct jobq *q = NULL;

    c.base = event_base_new();
    c.loop_thread = pthread_self();
    assert_int_equal(jobq_new(c.base, &q), 0);
    for (int i = 0; i < JOBS; i++) {
        struct item *it = malloc(sizeof(*it));

        it->c = &c;
        it->i = i;
        jobq_submit(q, work, done, it);
    }
    assert_int_equal(jobq_pending(q), JOBS);
    event_base_loop(c.base, EVLOOP_NO_EXIT_ON_EMPTY);
    assert_int_equal(c.next_done, JOBS);
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(c.done_order[i], i);
    assert_int_equal(c.max_running, 1);
    assert_int_equal(c.on_loop_thread, 0);
    assert_int_equal(jobq_pending(q), 0);
    jobq_free(q, NULL);
    event_base_free(c.base);
}

static int slow_started; /* set by the job thread, read after a poll */

static void slow_work(void *arg)
{
    __atomic_store_n(&slow_started, 1, __ATOMIC_SEQ_CST);
    usleep(50 * 1000);
}

static void count_done(void *arg)
{
    ((struct ctx *)arg)->next_done++;
}

static void count_drop(void *arg)
{
    ((struct ctx *)arg)->dropped++;
}

/* Freeing lets the job in progress finish and drops the queued ones. */
static void test_free_drops(void **state)
{
    struct ctx c = {0};
    struct jobq *q = NULL;

    c.base = event_base_new();
    assert_int_equal(jobq_new(c.base, &q), 0);
    for (int i = 0; i < 5; i++)
        jobq_submit(q, slow_work, count_done, &c);
    while (!__atomic_load_n(&slow_started, __ATOMIC_SEQ_CST))
        usleep(1000);
    jobq_free(q, count_drop);
    assert_int_equal(c.next_done + c.dropped, 5);
    assert_true(c.next_done >= 1);
    assert_true(c.dropped >= 1);
    event_base_free(c.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_free_drops),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
