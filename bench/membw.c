/*
 * membw: the memory-bandwidth limits that decode is held against
 * (bench/generate prints decode GB/s beside them).
 *
 *   bench_membw [--threads 2] [--mib 1024] [--repeats 10]
 *
 * Two kernels over arrays far larger than the caches, on N threads of the
 * project's thread pool, median of the repeats:
 *   triad  a[i] = b[i] + s * c[i] over doubles, counted as STREAM counts it
 *          (3 x 8 bytes per element; the write-allocate is not counted) -
 *          the "measured memory bandwidth" of BENCHMARKING.md
 *   read   a sum over one array of floats, AVX2 when built for it, 4 bytes per
 *          element - the pure streaming read that a decode step is
 * One JSON line: {"threads", "mib", "triad_gb_s", "read_gb_s"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/base.h"

typedef struct job {
    double *a, *b, *c;
    const float *r;
    double partial[256];
    size_t n, chunk, rn, rchunk;
} job;

static void triad_task(void *ctx, size_t task, int thread) {
    job *t = ctx;
    size_t lo = task * t->chunk, hi = lo + t->chunk < t->n ? lo + t->chunk : t->n;
    for (size_t i = lo; i < hi; i++)
        t->a[i] = t->b[i] + 3.0 * t->c[i];
    (void)thread;
}

/* Eight independent vector sums (AVX2 when the CPU has it): the loop is
 * bound by loads, not by add latency. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx2"))) static double read_sum_avx2(const float *r, size_t lo, size_t hi) {
    __m256 s[8];
    for (int j = 0; j < 8; j++)
        s[j] = _mm256_setzero_ps();
    size_t i = lo;
    for (; i + 64 <= hi; i += 64)
        for (int j = 0; j < 8; j++)
            s[j] = _mm256_add_ps(s[j], _mm256_load_ps(r + i + 8 * j));
    float tmp[8];
    double sum = 0;
    for (int j = 0; j < 8; j++) {
        _mm256_storeu_ps(tmp, s[j]);
        for (int q = 0; q < 8; q++)
            sum += tmp[q];
    }
    for (; i < hi; i++)
        sum += r[i];
    return sum;
}
#endif

static void read_task(void *ctx, size_t task, int thread) {
    job *t = ctx;
    size_t lo = task * t->rchunk, hi = lo + t->rchunk < t->rn ? lo + t->rchunk : t->rn;
    double sum = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2") && lo % 16 == 0) {
        sum = read_sum_avx2(t->r, lo, hi);
    } else
#endif
    {
        float s[8] = {0};
        size_t i = lo;
        for (; i + 8 <= hi; i += 8)
            for (int j = 0; j < 8; j++)
                s[j] += t->r[i + j];
        for (; i < hi; i++)
            s[0] += t->r[i];
        for (int j = 0; j < 8; j++)
            sum += s[j];
    }
    t->partial[task % 256] += sum;
    (void)thread;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int threads = 2, repeats = 10;
    size_t mib = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--mib") == 0)
            mib = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--repeats") == 0)
            repeats = atoi(argv[i + 1]);
    }
    if (repeats < 1 || repeats > 64 || threads < 1 || mib < 1) {
        fprintf(stderr, "bench_membw: bad arguments\n");
        return 2;
    }
    static job t;
    t.n = mib * 1024 * 1024 / 3 / sizeof(double);
    t.rn = mib * 1024 * 1024 / sizeof(float);
    t.a = ia_malloc_aligned(t.n * sizeof(double), 64);
    t.b = ia_malloc_aligned(t.n * sizeof(double), 64);
    t.c = ia_malloc_aligned(t.n * sizeof(double), 64);
    float *r = ia_malloc_aligned(t.rn * sizeof(float), 64);
    ia_threadpool *pool = ia_threadpool_create(threads);
    if (!t.a || !t.b || !t.c || !r || !pool) {
        fprintf(stderr, "bench_membw: %s\n", ia_error_message());
        return 1;
    }
    for (size_t i = 0; i < t.n; i++) {
        t.a[i] = 0;
        t.b[i] = 1;
        t.c[i] = 2;
    }
    for (size_t i = 0; i < t.rn; i++)
        r[i] = 1.0f;
    t.r = r;
    size_t tasks = (size_t)threads * 4;
    t.chunk = (t.n + tasks - 1) / tasks;
    t.rchunk = (t.rn + tasks - 1) / tasks;
    double tt[64], tr[64];
    for (int k = 0; k < repeats; k++) {
        double t0 = ia_time_now();
        ia_threadpool_run(pool, tasks, triad_task, &t);
        double t1 = ia_time_now();
        ia_threadpool_run(pool, tasks, read_task, &t);
        double t2 = ia_time_now();
        tt[k] = t1 - t0;
        tr[k] = t2 - t1;
    }
    qsort(tt, (size_t)repeats, sizeof *tt, cmp);
    qsort(tr, (size_t)repeats, sizeof *tr, cmp);
    double check = 0;
    for (int i = 0; i < 256; i++)
        check += t.partial[i];
    printf("{\"threads\": %d, \"mib\": %zu, \"triad_gb_s\": %.2f, \"read_gb_s\": %.2f, "
           "\"check\": %.0f}\n",
           threads, mib, 3.0 * (double)t.n * sizeof(double) / tt[repeats / 2] / 1e9,
           (double)t.rn * sizeof(float) / tr[repeats / 2] / 1e9, check + t.a[t.n / 2]);
    ia_threadpool_destroy(pool);
    ia_free_aligned(t.a);
    ia_free_aligned(t.b);
    ia_free_aligned(t.c);
    ia_free_aligned(r);
    return 0;
}
