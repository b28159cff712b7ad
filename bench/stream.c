/*
 * STREAM-style triad (a[i] = b[i] + s * c[i]) over arrays far larger than the
 * caches, on N threads of the project's own thread pool: the memory-bandwidth
 * limit that BENCHMARKING.md asks to quote beside decode, latency and hashing
 * figures. Counts 3 x 8 bytes per element (two reads, one write; the write
 * allocate is not counted, as STREAM does not count it).
 *
 *   bench_stream [--threads N] [--mib M] [--repeats R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/base.h"

typedef struct triad {
    double *a, *b, *c;
    size_t n, chunk;
    double s;
} triad;

static void triad_task(void *ctx, size_t task, int thread) {
    triad *t = ctx;
    size_t lo = task * t->chunk, hi = lo + t->chunk < t->n ? lo + t->chunk : t->n;
    for (size_t i = lo; i < hi; i++)
        t->a[i] = t->b[i] + t->s * t->c[i];
    (void)thread;
}

int main(int argc, char **argv) {
    int threads = 2, repeats = 10;
    size_t mib = 512; /* per array: well past any L3 */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--mib") == 0)
            mib = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--repeats") == 0)
            repeats = atoi(argv[i + 1]);
    }
    triad t = {.n = mib * 1024 * 1024 / sizeof(double), .s = 3.0};
    t.a = ia_malloc_aligned(t.n * sizeof(double), 64);
    t.b = ia_malloc_aligned(t.n * sizeof(double), 64);
    t.c = ia_malloc_aligned(t.n * sizeof(double), 64);
    ia_threadpool *pool = ia_threadpool_create(threads);
    if (!t.a || !t.b || !t.c || !pool || threads < 1 || repeats < 1) {
        fprintf(stderr, "bench_stream: %s\n", ia_error_message());
        return 1;
    }
    size_t tasks = (size_t)threads * 16;
    t.chunk = (t.n + tasks - 1) / tasks;
    for (size_t i = 0; i < t.n; i++) {
        t.a[i] = 0;
        t.b[i] = 1;
        t.c[i] = 2;
    }
    double best = 0, times[64];
    int r_count = repeats < 64 ? repeats : 64;
    for (int r = 0; r < r_count; r++) {
        double t0 = ia_time_now();
        ia_threadpool_run(pool, tasks, triad_task, &t);
        times[r] = ia_time_now() - t0;
        double gbs = 3.0 * (double)t.n * sizeof(double) / times[r] / 1e9;
        best = gbs > best ? gbs : best;
    }
    /* median of the repeats */
    for (int i = 1; i < r_count; i++)
        for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
            double x = times[j];
            times[j] = times[j - 1];
            times[j - 1] = x;
        }
    double median = 3.0 * (double)t.n * sizeof(double) / times[r_count / 2] / 1e9;
    printf("{\"threads\": %d, \"array_mib\": %zu, \"triad_gb_s_median\": %.2f, "
           "\"triad_gb_s_best\": %.2f, \"check\": %.1f}\n",
           threads, mib, median, best, t.a[t.n / 2]);
    ia_threadpool_destroy(pool);
    ia_free_aligned(t.a);
    ia_free_aligned(t.b);
    ia_free_aligned(t.c);
    return 0;
}
