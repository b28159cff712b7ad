/*
 * The server scenario's load generator (MLPerf LoadGen's "server"): queries
 * arrive as a Poisson process and wait in a queue; a query's latency runs
 * from its arrival to its completion, so time spent queued counts.
 *
 * One dispatcher thread sleeps until each scheduled arrival (absolute
 * CLOCK_MONOTONIC deadlines, so its own delays do not drift the schedule)
 * and appends the scheduled time to a FIFO; one worker (the calling thread)
 * takes queries in arrival order and runs them. One worker because the
 * engine computes one query at a time with all its threads: a pool of
 * workers would only make them share the same cores. Latency is measured
 * from the scheduled arrival, not from when the dispatcher woke.
 *
 * Gaps are -ln(1 - u) / rate, u uniform in [0, 1) from ia_rng (xoshiro256**
 * seeded through splitmix64), so a seed gives the same arrival schedule on
 * every machine.
 */
#include "bench/bench_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- random numbers ------------------------------------------------------------ */

static double exp_gap(ia_rng *r, double rate) { return -log1p(-ia_rng_uniform(r)) / rate; }

void bench_poisson_gaps(uint64_t seed, double rate, double *gaps, size_t n) {
    ia_rng r;
    ia_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        gaps[i] = exp_gap(&r, rate);
}

/* ---- dispatcher and queue -------------------------------------------------------------- */

typedef struct server {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double *queue; /* scheduled arrival times (ia_time_now clock) */
    size_t head, tail, cap;
    bool done, stop, oom;
    size_t issued;
    double end_t; /* when issuing stopped (set with done) */
    /* dispatcher parameters */
    double t0, rate, min_dur, max_window;
    size_t min_q;
    uint64_t seed;
} server;

static void sleep_until(double t) {
    /* ia_time_now is CLOCK_MONOTONIC seconds */
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *dispatcher(void *arg) {
    server *s = arg;
    ia_rng r;
    ia_rng_seed(&r, s->seed);
    double t = s->t0;
    for (;;) {
        t += exp_gap(&r, s->rate);
        double since = t - s->t0;
        if ((since >= s->min_dur && s->issued >= s->min_q) || since >= s->max_window)
            break;
        sleep_until(t);
        pthread_mutex_lock(&s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (s->tail == s->cap) {
            size_t nc = s->cap ? 2 * s->cap : 1024;
            double *g = ia_realloc_array(s->queue, nc, sizeof *g);
            if (!g) {
                s->oom = true;
                pthread_mutex_unlock(&s->mu);
                break;
            }
            s->queue = g;
            s->cap = nc;
        }
        s->queue[s->tail++] = t;
        s->issued++;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    s->done = true;
    s->end_t = t < ia_time_now() ? t : ia_time_now();
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

ia_status bench_server_run_rate(bench_query_fn fn, void *ctx, double rate, double min_duration_s,
                                size_t min_queries, uint64_t seed, double bound_s,
                                double percentile, bench_server_rate *out) {
    memset(out, 0, sizeof *out);
    out->target_rate = rate;
    out->pct_latency = NAN;
    if (!(rate > 0) || !isfinite(rate))
        return ia_error_set(IA_EINVAL, "server: rate %g is not a positive number", rate);
    server s = {.rate = rate, .min_dur = min_duration_s, .min_q = min_queries, .seed = seed};
    s.max_window = 4 * min_duration_s;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    size_t lat_cap = 0;
    ia_status st = IA_OK;
    s.t0 = ia_time_now() + 0.001;
    /* queries still waiting min_duration_s + 1 s after issuing stopped are abandoned */
    double deadline = s.t0 + s.max_window + min_duration_s + 1.0;
    pthread_t th;
    if (pthread_create(&th, NULL, dispatcher, &s) != 0) {
        pthread_mutex_destroy(&s.mu);
        pthread_cond_destroy(&s.cv);
        return ia_error_set(IA_EIO, "server: cannot start the dispatcher thread");
    }
    double last_done = s.t0;
    for (;;) {
        pthread_mutex_lock(&s.mu);
        while (s.head == s.tail && !s.done)
            pthread_cond_wait(&s.cv, &s.mu);
        if (s.head == s.tail) {
            pthread_mutex_unlock(&s.mu);
            break;
        }
        double arrival = s.queue[s.head++];
        if (s.done && s.end_t + min_duration_s + 1.0 < deadline)
            deadline = s.end_t + min_duration_s + 1.0;
        pthread_mutex_unlock(&s.mu);
        if (ia_time_now() > deadline) {
            /* overloaded: the rest would only queue longer */
            pthread_mutex_lock(&s.mu);
            s.stop = true;
            out->abandoned += 1 + (s.tail - s.head);
            s.head = s.tail;
            pthread_mutex_unlock(&s.mu);
            break;
        }
        if (out->n == lat_cap) {
            size_t nc = lat_cap ? 2 * lat_cap : 256;
            double *g = ia_realloc_array(out->latencies, nc, sizeof *g);
            if (!g) {
                st = IA_ENOMEM;
                break;
            }
            out->latencies = g;
            lat_cap = nc;
        }
        if ((st = fn(ctx)))
            break;
        last_done = ia_time_now();
        out->latencies[out->n++] = last_done - arrival;
    }
    pthread_mutex_lock(&s.mu);
    s.stop = true;
    pthread_mutex_unlock(&s.mu);
    pthread_join(th, NULL);
    out->abandoned += s.tail - s.head;
    out->issued = s.issued;
    if (!st && s.oom)
        st = IA_ENOMEM;
    free(s.queue);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    if (st) {
        free(out->latencies);
        out->latencies = NULL;
        out->n = 0;
        return st;
    }
    out->duration_s = last_done - s.t0;
    out->achieved = out->duration_s > 0 ? (double)out->n / out->duration_s : NAN;
    if (out->n) {
        double *sorted = ia_malloc_array(out->n, sizeof *sorted);
        if (!sorted) {
            free(out->latencies);
            out->latencies = NULL;
            return IA_ENOMEM;
        }
        memcpy(sorted, out->latencies, out->n * sizeof *sorted);
        qsort(sorted, out->n, sizeof *sorted, cmp_double);
        out->pct_latency = ia_stats_percentile(sorted, out->n, percentile);
        free(sorted);
    }
    out->passed = out->n > 0 && out->abandoned == 0 && out->pct_latency <= bound_s;
    return IA_OK;
}
