/*
 * perf.c: the "perf" probe, a quarter-second measurement of what this
 * machine's CPUs really deliver.
 *
 * Feature flags say what a CPU can do, not how fast: two machines that both
 * list avx512f can differ fourfold in FMA units and memory channels. The
 * planner and the benchmark reports want the two numbers that bound a
 * transformer on a CPU, so this probe measures them on all physical cores:
 * streaming bandwidth (a STREAM-style triad over three 32 MiB arrays, far
 * past any L3, best of several passes) and f32 FMA throughput (independent
 * FMA chains held in registers, in the widest vector unit cpuid offers,
 * chosen at run time). The result is cached as JSON, keyed by CPU model and
 * thread count, so that `hw` stays instant after the first run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HW_PERF_X86 1
#endif

#define TRIAD_ELEMS ((size_t)(32u << 20) / sizeof(double)) /* 32 MiB per array */
#define TRIAD_REPS 4
#define FMA_CHAINS 12      /* > FMA latency x units (4 x 2) keeps both pipes full */
#define FMA_TARGET_S 0.015 /* seconds per timed FMA pass */
#define FMA_REPS 3
#define TASKS_PER_THREAD 4 /* tasks are claimed dynamically: smaller ones balance */

/* ---- FMA kernels -------------------------------------------------------------------- */

/* Each runs FMA_CHAINS independent chains acc = acc * m + a for iters steps
 * and returns a value that depends on all of them, so nothing is elided.
 * m < 1 keeps the chains bounded and away from denormals. The chains are
 * spelled out as separate variables rather than an array: compilers keep an
 * array of vectors in memory, and a store-load round trip per FMA measures
 * the load/store unit instead of the FMA units. */
typedef float (*fma_kernel)(long iters);

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(k) VEC acc##k = SET1((float)k);
#define STEP(k) acc##k = FMA(acc##k, m, a);
#define SUM(k) s = ADD(s, acc##k);
#define FMA_BODY                                    \
    const VEC m = SET1(0.999999f), a = SET1(1e-6f); \
    CHAINS(DECL)                                    \
    for (long i = 0; i < iters; i++) {              \
        CHAINS(STEP)                                \
    }                                               \
    VEC s = SET1(0.0f);                             \
    CHAINS(SUM)

#ifdef HW_PERF_X86
#define VEC __m512
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
__attribute__((target("avx512f"))) static float fma_avx512(long iters) {
    FMA_BODY
    return _mm512_reduce_add_ps(s);
}
#undef VEC
#undef SET1
#undef FMA
#undef ADD

#define VEC __m256
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
__attribute__((target("avx2,fma"))) static float fma_avx2(long iters) {
    FMA_BODY
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#undef VEC
#undef SET1
#undef FMA
#undef ADD
#endif

/* Portable: four-lane vectors the compiler maps to SSE or NEON (and fuses
 * into FMA where the target has it); a multiply and an add count as 2 flops
 * either way. */
typedef float v4f __attribute__((vector_size(16)));
#define VEC v4f
#define SET1(x) ((v4f){(x), (x), (x), (x)})
#define FMA(x, y, z) ((x) * (y) + (z))
#define ADD(x, y) ((x) + (y))
static float fma_vec4(long iters) {
    FMA_BODY
    return s[0] + s[1] + s[2] + s[3];
}
#undef VEC
#undef SET1
#undef FMA
#undef ADD

typedef struct fma_variant {
    const char *name;
    fma_kernel fn;
    int lanes;
} fma_variant;

static fma_variant pick_fma(const ia_hw_cpu *cpu) {
#ifdef HW_PERF_X86
    /* The live cpu probe's features already include the OS's xgetbv state. */
    if (ia_hw_cpu_has(cpu, IA_CPU_AVX512F))
        return (fma_variant){"avx512f", fma_avx512, 16};
    if (ia_hw_cpu_has(cpu, IA_CPU_AVX2) && ia_hw_cpu_has(cpu, IA_CPU_FMA))
        return (fma_variant){"avx2+fma", fma_avx2, 8};
#endif
    (void)cpu;
    return (fma_variant){"vec4", fma_vec4, 4};
}

/* ---- parallel jobs ------------------------------------------------------------------ */

typedef struct perf_job {
    double *a, *b, *c;
    size_t n_tasks;
    fma_kernel fma;
    long iters;
    float *sink; /* one per task */
} perf_job;

static void task_range(const perf_job *j, size_t task, size_t *lo, size_t *hi) {
    size_t per = (TRIAD_ELEMS + j->n_tasks - 1) / j->n_tasks;
    *lo = task * per < TRIAD_ELEMS ? task * per : TRIAD_ELEMS;
    *hi = *lo + per < TRIAD_ELEMS ? *lo + per : TRIAD_ELEMS;
}

/* First touch from the threads that will stream the pages, so that on a
 * NUMA machine each part lands near the core that reads it. */
static void init_task(void *ctx, size_t task, int thread) {
    perf_job *j = ctx;
    size_t lo, hi;
    task_range(j, task, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        j->a[i] = 0.0;
        j->b[i] = 1.0;
        j->c[i] = 2.0;
    }
}

static void triad_task(void *ctx, size_t task, int thread) {
    perf_job *j = ctx;
    size_t lo, hi;
    task_range(j, task, &lo, &hi);
    double *restrict a = j->a;
    const double *restrict b = j->b, *restrict c = j->c;
    for (size_t i = lo; i < hi; i++)
        a[i] = b[i] + 3.0 * c[i];
}

static void fma_task(void *ctx, size_t task, int thread) {
    perf_job *j = ctx;
    j->sink[task] = j->fma(j->iters);
}

/* One array for the triad. Huge pages where the kernel offers them: first
 * touching 96 MiB in 4 KiB pages costs more than the passes themselves, and
 * the probe has a quarter of a second. */
static double *triad_array(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: refusal is fine */
#endif
    return p;
}

/* Best GB/s of TRIAD_REPS passes; 0 when the arrays cannot be had. */
static double measure_bandwidth(ia_threadpool *pool, int threads) {
    perf_job j = {.n_tasks = (size_t)threads * TASKS_PER_THREAD};
    size_t bytes = TRIAD_ELEMS * sizeof(double);
    double best = 0;
    j.a = triad_array(bytes);
    j.b = triad_array(bytes);
    j.c = triad_array(bytes);
    if (!j.a || !j.b || !j.c)
        goto done;
    ia_threadpool_run(pool, j.n_tasks, init_task, &j);
    for (int r = 0; r < TRIAD_REPS; r++) {
        double t0 = ia_time_now();
        ia_threadpool_run(pool, j.n_tasks, triad_task, &j);
        double t = ia_time_now() - t0;
        double gbs = t > 0 ? 3.0 * (double)bytes / t / 1e9 : 0;
        if (gbs > best)
            best = gbs;
    }
    /* The stores must have happened: a pass that was optimised away or
     * skipped a task would be a fast lie. */
    if (j.a[0] != 7.0 || j.a[TRIAD_ELEMS - 1] != 7.0 || j.a[TRIAD_ELEMS / 2] != 7.0)
        best = 0;
done:
    if (j.a)
        munmap(j.a, bytes);
    if (j.b)
        munmap(j.b, bytes);
    if (j.c)
        munmap(j.c, bytes);
    return best;
}

/* Best GFLOP/s of FMA_REPS passes on all threads. */
static double measure_flops(ia_threadpool *pool, int threads, const fma_variant *v) {
    perf_job j = {.n_tasks = (size_t)threads * TASKS_PER_THREAD, .fma = v->fn};
    j.sink = ia_calloc(j.n_tasks, sizeof *j.sink);
    if (!j.sink)
        return 0;
    /* Calibrate on one core: iterations for FMA_TARGET_S per thread. */
    long probe = 1 << 14;
    double t0 = ia_time_now();
    volatile float keep = v->fn(probe);
    double t = ia_time_now() - t0;
    (void)keep;
    double per_thread = t > 0 ? (double)probe * FMA_TARGET_S / t : (double)probe * 64;
    if (per_thread > 1e9)
        per_thread = 1e9;
    j.iters = (long)(per_thread / TASKS_PER_THREAD);
    if (j.iters < 1024)
        j.iters = 1024;

    ia_threadpool_run(pool, j.n_tasks, fma_task, &j); /* wake workers, settle clocks */
    double best = 0;
    for (int r = 0; r < FMA_REPS; r++) {
        t0 = ia_time_now();
        ia_threadpool_run(pool, j.n_tasks, fma_task, &j);
        t = ia_time_now() - t0;
        double flops = (double)j.n_tasks * (double)j.iters * FMA_CHAINS * v->lanes * 2.0;
        double g = t > 0 ? flops / t / 1e9 : 0;
        if (g > best)
            best = g;
    }
    for (size_t i = 0; i < j.n_tasks; i++)
        if (!isfinite(j.sink[i]))
            best = 0;
    free(j.sink);
    return best;
}

/* ---- cache ------------------------------------------------------------------------------ */

/* The cache file's path; false when there is nowhere to put it. */
static bool cache_path(const ia_hw_options *opts, char *dir, size_t dsize, char *file,
                       size_t fsize) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (opts->cache_dir && *opts->cache_dir)
        n = snprintf(dir, dsize, "%s", opts->cache_dir);
    else if (xdg && *xdg)
        n = snprintf(dir, dsize, "%s/ipfs-accelerate", xdg);
    else if (home && *home)
        n = snprintf(dir, dsize, "%s/.cache/ipfs-accelerate", home);
    else
        return false;
    if (n < 0 || (size_t)n >= dsize)
        return false;
    n = snprintf(file, fsize, "%s/hw-perf.json", dir);
    return n >= 0 && (size_t)n < fsize;
}

/* mkdir -p. */
static bool make_dirs(const char *dir) {
    char buf[4096];
    hw_copy(buf, sizeof buf, dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return false;
            *p = saved;
            if (!saved)
                return true;
        }
    }
}

static bool positive(const json_t *v, double *out) {
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return isfinite(*out) && *out > 0 && *out < 1e9;
}

static bool cache_read(const char *file, const char *key, ia_hw_perf *perf) {
    json_t *root = NULL;
    if (!ia_file_exists(file) || ia_json_load_file(file, 1 << 20, &root) != IA_OK)
        return false;
    json_t *entry = json_object_get(json_object_get(root, "results"), key);
    double bw, gf;
    bool ok = positive(json_object_get(entry, "mem_bandwidth_gbs"), &bw) &&
              positive(json_object_get(entry, "peak_gflops_f32"), &gf);
    if (ok) {
        perf->mem_bandwidth_gbs = bw;
        perf->peak_gflops_f32 = gf;
    }
    json_decref(root);
    return ok;
}

/* Adds this result to the file (keeping other machines' entries) by writing
 * a temporary file and renaming it, so a reader never sees half a file. */
static bool cache_write(const char *dir, const char *file, const char *key, const ia_hw_perf *perf,
                        const char *isa) {
    if (!make_dirs(dir))
        return false;
    json_t *root = NULL;
    if (!ia_file_exists(file) || ia_json_load_file(file, 1 << 20, &root) != IA_OK ||
        !json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    json_t *results = json_object_get(root, "results");
    if (!json_is_object(results)) {
        results = json_object();
        json_object_set_new(root, "results", results);
    }
    json_object_set_new(root, "version", json_integer(1));
    json_t *e = json_object();
    json_object_set_new(e, "threads", json_integer(perf->threads));
    json_object_set_new(e, "mem_bandwidth_gbs", json_real(perf->mem_bandwidth_gbs));
    json_object_set_new(e, "peak_gflops_f32", json_real(perf->peak_gflops_f32));
    json_object_set_new(e, "isa", json_string(isa));
    json_object_set_new(e, "measured_unix", json_integer((json_int_t)time(NULL)));
    json_object_set_new(results, key, e);

    char tmp[4300];
    int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", file, (long)getpid());
    bool ok = n > 0 && (size_t)n < sizeof tmp &&
              json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
              rename(tmp, file) == 0;
    if (!ok)
        unlink(tmp);
    json_decref(root);
    return ok;
}

/* ---- the probe ------------------------------------------------------------------------ */

static int perf_threads(const ia_hw_cpu *cpu) {
    int allowed = ia_cpu_physical_cores(); /* affinity and cgroup quota */
    int n =
        cpu->physical_cores > 0 && cpu->physical_cores < allowed ? cpu->physical_cores : allowed;
    return n > 0 ? n : 1;
}

void hw_probe_perf(const ia_hw_options *opts, ia_hw_info *info) {
    ia_hw_perf *perf = &info->perf;
    memset(perf, 0, sizeof *perf);
    perf->threads = perf_threads(&info->cpu);
    fma_variant v = pick_fma(&info->cpu);

    char dir[4096], file[4200], key[224];
    bool have_cache = cache_path(opts, dir, sizeof dir, file, sizeof file);
    snprintf(key, sizeof key, "%s|%d", info->cpu.model[0] ? info->cpu.model : info->cpu.arch,
             perf->threads);
    if (have_cache && !opts->perf_fresh && cache_read(file, key, perf)) {
        perf->measured = perf->cached = true;
        hw_add_probe(info, "perf", true, 0,
                     "cached in %s: %.1f GB/s triad, %.1f GFLOP/s f32 on "
                     "%d threads",
                     file, perf->mem_bandwidth_gbs, perf->peak_gflops_f32, perf->threads);
        return;
    }

    double t0 = ia_time_now();
    ia_threadpool *pool = perf->threads > 1 ? ia_threadpool_create(perf->threads) : NULL;
    if (!pool)
        perf->threads = 1;
    perf->mem_bandwidth_gbs = measure_bandwidth(pool, perf->threads);
    double t1 = ia_time_now();
    perf->peak_gflops_f32 = measure_flops(pool, perf->threads, &v);
    ia_log(IA_LOG_DEBUG, "hw perf: bandwidth %.3f s, flops %.3f s", t1 - t0, ia_time_now() - t1);
    ia_threadpool_destroy(pool);
    double took = ia_time_now() - t0;

    if (perf->mem_bandwidth_gbs <= 0 || perf->peak_gflops_f32 <= 0) {
        hw_add_probe(info, "perf", false, 0,
                     "measurement failed on %d threads (bandwidth %.1f GB/s, %.1f GFLOP/s): "
                     "could not allocate 3 x 32 MiB or a pass gave a wrong result",
                     perf->threads, perf->mem_bandwidth_gbs, perf->peak_gflops_f32);
        return;
    }
    perf->measured = true;
    bool saved = have_cache && cache_write(dir, file, key, perf, v.name);
    hw_add_probe(info, "perf", true, 0,
                 "measured in %.2f s on %d threads: %.1f GB/s triad, %.1f GFLOP/s f32 (%s); %s%s",
                 took, perf->threads, perf->mem_bandwidth_gbs, perf->peak_gflops_f32, v.name,
                 saved ? "saved to " : "not cached: cannot write ",
                 have_cache ? file : "no cache directory (HOME unset)");
}
