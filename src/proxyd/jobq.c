/* The job thread, see include/proxyd/jobq.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "proxyd/jobq.h"
#include "xalloc.h"

struct job {
    jobq_work_fn work;
    jobq_done_fn done;
    void *arg;
    struct job *next;
};

struct jobfifo {
    struct job *head, *tail;
};

struct jobq {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct jobfifo todo; /* under lock */
    struct jobfifo done; /* under lock */
    bool stop;           /* under lock */
    struct event *ev_done;
    size_t pending;      /* loop thread only */
};

static void fifo_push(struct jobfifo *f, struct job *j)
{
    j->next = NULL;
    if (f->tail)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
}

static struct job *fifo_pop(struct jobfifo *f)
{
    struct job *j = f->head;

    if (j) {
        f->head = j->next;
        if (f->head == NULL)
            f->tail = NULL;
    }
    return j;
}

static void *jobq_thread(void *arg)
{
    struct jobq *q = arg;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        struct job *j;

        while (!q->stop && q->todo.head == NULL)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->stop)
            break;
        j = fifo_pop(&q->todo);
        pthread_mutex_unlock(&q->lock);
        j->work(j->arg);
        pthread_mutex_lock(&q->lock);
        fifo_push(&q->done, j);
        /* Thread-safe with a base made after evthread_use_pthreads(). */
        event_active(q->ev_done, EV_READ, 0);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void jobq_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct jobq *q = arg;
    struct jobfifo batch;

    pthread_mutex_lock(&q->lock);
    batch = q->done;
    q->done.head = q->done.tail = NULL;
    pthread_mutex_unlock(&q->lock);
    for (struct job *j = fifo_pop(&batch); j; j = fifo_pop(&batch)) {
        q->pending--;
        j->done(j->arg);
        free(j);
    }
}

int jobq_new(struct event_base *base, struct jobq **out)
{
    struct jobq *q = xcalloc(1, sizeof(*q));
    int ret;

    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->ev_done = event_new(base, -1, 0, jobq_deliver, q);
    if (q->ev_done == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    if ((ret = pthread_create(&q->thread, NULL, jobq_thread, q)) != 0) {
        log_error("cannot start the job thread: %s", strerror(ret));
        ret = -ret;
        goto fail;
    }
    *out = q;
    return 0;
fail:
    if (q->ev_done)
        event_free(q->ev_done);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
    return ret;
}

void jobq_submit(struct jobq *q, jobq_work_fn work, jobq_done_fn done,
                 void *arg)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->work = work;
    j->done = done;
    j->arg = arg;
    q->pending++;
    pthread_mutex_lock(&q->lock);
    fifo_push(&q->todo, j);
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

size_t jobq_pending(const struct jobq *q)
{
    return q->pending;
}

void jobq_free(struct jobq *q, jobq_done_fn drop)
{
    struct job *j;

    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    jobq_deliver(-1, 0, q);
    while ((j = fifo_pop(&q->todo)) != NULL) {
        if (drop)
            drop(j->arg);
        free(j);
    }
    event_free(q->ev_done);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
