/*
 * Request batching for embedding endpoints: items submitted one at a time by
 * many threads ride together in one provider call.
 *
 * There is no batching thread. The first item of a batch makes its thread
 * the batch's leader: it waits until the batch is full or its max_wait_ms
 * has passed, seals it (later items start the next batch), and then runs
 * combine -> ia_resilience_submit -> split on its own thread, while the
 * other items' threads wait for the batch to finish and read its result.
 * So a batch costs no thread hand-off, every item gets exactly one result
 * (the batch's), and a batcher with nothing to do holds no thread.
 *
 * A batch is freed by whichever of its submitters leaves last (refs).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/resilience_internal.h"

typedef struct batch {
    void **items;
    size_t n, cap;
    ia_priority prio; /* the most urgent among the items */
    double deadline;  /* the earliest among the items (clock ms) */
    double opened;    /* when the first item came */
    bool sealed, done;
    int refs;            /* submitters still inside */
    pthread_cond_t cond; /* sealed or done */
    ia_status status;
    ia_call_result res;
    char msg[512];
} batch;

struct ia_batcher {
    ia_resilience *r;
    res_endpoint *ep;
    ia_batch_ops ops;
    void *ctx;
    pthread_mutex_t lock; /* guards open and every batch's fields */
    batch *open;          /* accepting items; NULL when none */
};

ia_status ia_batcher_create(ia_resilience *r, const char *endpoint, const ia_batch_ops *ops,
                            void *ctx, ia_batcher **out) {
    *out = NULL;
    res_endpoint *ep = res_find(r, endpoint);
    if (!ep)
        return IA_ENOTFOUND;
    if (!ops || !ops->combine || !ops->call || !ops->split)
        return ia_error_set(IA_EINVAL, "endpoint '%s': batching needs combine, call and split",
                            endpoint);
    ia_batcher *b = ia_calloc(1, sizeof *b);
    if (!b)
        return IA_ENOMEM;
    b->r = r;
    b->ep = ep;
    b->ops = *ops;
    b->ctx = ctx;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return ia_error_set(IA_EINTERNAL, "endpoint '%s': cannot create a mutex", endpoint);
    }
    *out = b;
    return IA_OK;
}

void ia_batcher_destroy(ia_batcher *b) {
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static batch *batch_new(double now) {
    batch *bt = ia_calloc(1, sizeof *bt);
    if (!bt)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&bt->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        free(bt);
        ia_error_set(IA_EINTERNAL, "batcher: cannot create a condition variable");
        return NULL;
    }
    bt->prio = IA_PRIORITY_LOW;
    bt->deadline = INFINITY;
    bt->opened = now;
    return bt;
}

static void batch_free(batch *bt) {
    pthread_cond_destroy(&bt->cond);
    free(bt->items);
    free(bt);
}

/* Waits on bt->cond for at most ms of wall time. Holds b->lock. */
static void batch_wait(ia_batcher *b, batch *bt, double ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double ns = (double)ts.tv_nsec + ms * 1e6;
    ts.tv_sec += (time_t)(ns / 1e9);
    ts.tv_nsec = (long)fmod(ns, 1e9);
    pthread_cond_timedwait(&bt->cond, &b->lock, &ts);
}

/* The leader's work, without the lock: one combined call. */
static void batch_run(ia_batcher *b, batch *bt) {
    void *combined = NULL;
    ia_status st = b->ops.combine(b->ctx, bt->items, bt->n, &combined);
    if (st != IA_OK) {
        ia_error_prefix("endpoint '%s': combining a batch of %zu", b->ep->name, bt->n);
        goto done;
    }
    int timeout_ms = -1;
    if (!isinf(bt->deadline)) {
        double left = ceil(bt->deadline - res_now(b->r));
        timeout_ms = left < 1 ? 1 : left > 1e9 ? 1000000000 : (int)left;
    }
    st = ia_resilience_submit(b->r, b->ep->name, bt->prio, b->ops.call, combined, timeout_ms,
                              &bt->res);
    if (st == IA_OK) {
        st = b->ops.split(b->ctx, combined, bt->items, bt->n);
        if (st != IA_OK)
            ia_error_prefix("endpoint '%s': splitting a batch of %zu", b->ep->name, bt->n);
    }
    if (b->ops.release)
        b->ops.release(b->ctx, combined);
done:
    bt->status = st;
    if (st != IA_OK)
        snprintf(bt->msg, sizeof bt->msg, "%s", ia_error_message());
}

ia_status ia_batcher_submit(ia_batcher *b, void *item, ia_priority priority, int timeout_ms,
                            ia_call_result *res) {
    memset(res, 0, sizeof *res);
    res->key_index = -1;
    if ((unsigned)priority >= IA_PRIORITY_COUNT)
        return ia_error_set(IA_EINVAL, "endpoint '%s': bad priority %d", b->ep->name,
                            (int)priority);
    double now = res_now(b->r);
    if (timeout_ms == 0)
        timeout_ms = b->ep->cfg.timeouts.total_ms ? b->ep->cfg.timeouts.total_ms : -1;
    double deadline = timeout_ms > 0 ? now + timeout_ms : INFINITY;
    size_t max_items = (size_t)b->ep->cfg.batch.max_items;

    pthread_mutex_lock(&b->lock);
    bool leader = false;
    if (!b->open) {
        if (!(b->open = batch_new(now))) {
            pthread_mutex_unlock(&b->lock);
            return IA_ENOMEM;
        }
        leader = true;
    }
    batch *bt = b->open;
    if (bt->n == bt->cap) {
        size_t cap = bt->cap ? 2 * bt->cap : 8;
        void **items = ia_realloc_array(bt->items, cap, sizeof *items);
        if (!items) {
            if (leader) { /* an empty batch nobody else has seen */
                b->open = NULL;
                batch_free(bt);
            }
            pthread_mutex_unlock(&b->lock);
            return IA_ENOMEM;
        }
        bt->items = items;
        bt->cap = cap;
    }
    bt->items[bt->n++] = item;
    bt->refs++;
    if (priority < bt->prio)
        bt->prio = priority;
    if (deadline < bt->deadline)
        bt->deadline = deadline;
    if (bt->n >= max_items) {
        bt->sealed = true;
        b->open = NULL;
        pthread_cond_broadcast(&bt->cond);
    }
    if (leader) {
        while (!bt->sealed) {
            double left = bt->opened + b->ep->cfg.batch.max_wait_ms - res_now(b->r);
            if (left <= 0) {
                bt->sealed = true;
                b->open = NULL;
                break;
            }
            batch_wait(b, bt, left);
        }
        pthread_mutex_unlock(&b->lock);
        batch_run(b, bt);
        pthread_mutex_lock(&b->lock);
        bt->done = true;
        pthread_cond_broadcast(&bt->cond);
    } else {
        while (!bt->done)
            pthread_cond_wait(&bt->cond, &b->lock);
    }
    ia_status st = bt->status;
    *res = bt->res;
    char msg[sizeof bt->msg];
    memcpy(msg, bt->msg, sizeof msg);
    bool last = --bt->refs == 0;
    pthread_mutex_unlock(&b->lock);
    if (last)
        batch_free(bt);
    if (st != IA_OK)
        return ia_error_set(st, "%s", msg);
    return IA_OK;
}
