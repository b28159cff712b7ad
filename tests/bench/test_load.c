/*
 * bench/load: the server scenario's load generator and the thermal sampler,
 * without a model.
 *
 * Arrivals: the gaps are exponential (mean, variance and the CDF at a few
 * points against 1 - exp(-rate t) on 200000 gaps) and a seed repeats them.
 * One rate on a query that sleeps a fixed service time: latencies count the
 * queueing (never below the service time; at 90% load the mean is well
 * above it), a light load meets a generous bound, an overload (twice the
 * capacity) misses it and stays within its time bound. Thermal: a fake
 * sysfs tree (IA_BENCH_SYSFS_ROOT) with zones, frequencies and throttle
 * counters that move between samples; and a tree without any of them gives
 * nulls and "unavailable", not zeros.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench_internal.h"
#include "test.h"
#include "test_fs.h"

TEST(poisson_gaps_are_exponential) {
    enum { N = 200000 };
    double *g = malloc(N * sizeof *g), *h = malloc(N * sizeof *h);
    const double rate = 250.0;
    bench_poisson_gaps(42, rate, g, N);
    bench_poisson_gaps(42, rate, h, N);
    CHECK(memcmp(g, h, N * sizeof *g) == 0);
    bench_poisson_gaps(43, rate, h, N);
    CHECK(memcmp(g, h, N * sizeof *g) != 0);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < N; i++) {
        CHECK(g[i] >= 0);
        sum += g[i];
        sq += g[i] * g[i];
    }
    double mean = sum / N, var = sq / N - mean * mean;
    /* mean 1/rate (standard error 1/(rate sqrt N): 0.22%), variance 1/rate^2 */
    CHECK_NEAR(mean * rate, 1.0, 0.01);
    CHECK_NEAR(var * rate * rate, 1.0, 0.03);
    const double ts[] = {0.1, 0.5, 1.0, 2.0, 4.0}; /* in units of 1/rate */
    for (size_t k = 0; k < 5; k++) {
        size_t below = 0;
        for (size_t i = 0; i < N; i++)
            below += g[i] * rate <= ts[k];
        CHECK_NEAR((double)below / N, 1.0 - exp(-ts[k]), 0.005);
    }
    free(g);
    free(h);
}

typedef struct fake_query {
    double service_s;
    size_t calls;
} fake_query;

static ia_status fake_run(void *ctx) {
    fake_query *q = ctx;
    q->calls++;
    double end = ia_time_now() + q->service_s;
    struct timespec ts = {0, (long)(q->service_s * 1e9)};
    nanosleep(&ts, NULL);
    while (ia_time_now() < end) {
    }
    return IA_OK;
}

TEST(server_rate_counts_queueing) {
    fake_query q = {0.004, 0}; /* capacity 250/s */
    bench_server_rate r;
    /* light load (20%): meets a 50 ms p99 bound */
    CHECK_OK(bench_server_run_rate(fake_run, &q, 50, 0.4, 10, 7, 0.05, 99, &r));
    CHECK(r.n >= 10 && r.n == r.issued && r.abandoned == 0);
    CHECK(r.passed);
    for (size_t i = 0; i < r.n; i++)
        CHECK(r.latencies[i] >= q.service_s * 0.99);
    CHECK(r.achieved > 25 && r.achieved < 100);
    free(r.latencies);
    /* 90% load: queueing makes the mean latency well above the service time
     * (M/D/1: 0.004 + 0.9 * 0.004 / (2 * 0.1) = 22 ms) */
    CHECK_OK(bench_server_run_rate(fake_run, &q, 225, 0.6, 10, 7, 0.05, 99, &r));
    double mean = 0;
    for (size_t i = 0; i < r.n; i++)
        mean += r.latencies[i] / (double)r.n;
    CHECK_MSG(mean > 1.5 * q.service_s, "mean latency %.2f ms at 90%% load", mean * 1e3);
    free(r.latencies);
    /* twice the capacity: the bound is missed, and the rate ends in time */
    double t0 = ia_time_now();
    CHECK_OK(bench_server_run_rate(fake_run, &q, 500, 0.3, 10, 7, 0.02, 90, &r));
    double took = ia_time_now() - t0;
    CHECK(!r.passed);
    CHECK(r.pct_latency > 0.02 || r.abandoned > 0);
    CHECK_MSG(took < 4 * 0.3 + 0.3 + 1.0 + 0.5, "took %.2f s", took);
    free(r.latencies);
    CHECK_ERR(bench_server_run_rate(fake_run, &q, 0, 0.1, 1, 1, 1, 99, &r), IA_EINVAL, "rate");
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void mkdirs(const char *root, const char *rel) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    mkdir(root, 0755);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

TEST(thermal_counters_and_unavailable) {
    const char *root = scratch_path("sys");
    char p[4300];
    mkdirs(root, "class/thermal/thermal_zone0");
    mkdirs(root, "class/thermal/thermal_zone1");
    mkdirs(root, "devices/system/cpu/cpu0/cpufreq");
    mkdirs(root, "devices/system/cpu/cpu0/thermal_throttle");
    mkdirs(root, "devices/system/cpu/cpufreq");
    snprintf(p, sizeof p, "%s/class/thermal/thermal_zone0/temp", root);
    write_file(p, "45000\n");
    snprintf(p, sizeof p, "%s/class/thermal/thermal_zone1/temp", root);
    write_file(p, "51500\n");
    snprintf(p, sizeof p, "%s/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", root);
    write_file(p, "2200000\n");
    snprintf(p, sizeof p, "%s/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", root);
    write_file(p, "3\n");
    setenv("IA_BENCH_SYSFS_ROOT", root, 1);
    bench_thermal t;
    bench_thermal_begin(&t);
    /* during the run: hotter, slower, throttled */
    snprintf(p, sizeof p, "%s/class/thermal/thermal_zone1/temp", root);
    write_file(p, "88250\n");
    snprintf(p, sizeof p, "%s/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", root);
    write_file(p, "1400000\n");
    bench_thermal_update(&t);
    snprintf(p, sizeof p, "%s/class/thermal/thermal_zone1/temp", root);
    write_file(p, "60000\n");
    snprintf(p, sizeof p, "%s/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", root);
    write_file(p, "5\n");
    json_t *s = bench_thermal_finish(&t);
    CHECK(json_is_true(json_object_get(s, "throttle_counters_moved")));
    CHECK_NEAR(json_real_value(json_object_get(s, "max_temp_c")), 88.25, 1e-9);
    CHECK_NEAR(json_real_value(json_object_get(s, "min_freq_khz")), 1400000, 1e-6);
    CHECK_NEAR(json_real_value(json_object_get(s, "max_freq_khz")), 2200000, 1e-6);
    CHECK_EQ_INT(json_array_size(json_object_get(s, "unavailable")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(
                     json_object_get(json_object_get(s, "after"), "throttle_counts"),
                     "cpu0/core_throttle_count")),
                 5);
    json_decref(s);
    /* counters that stay put */
    bench_thermal_begin(&t);
    s = bench_thermal_finish(&t);
    CHECK(json_is_false(json_object_get(s, "throttle_counters_moved")));
    json_decref(s);
    /* nothing readable: nulls, listed as unavailable */
    setenv("IA_BENCH_SYSFS_ROOT", scratch_path("no-such-sys"), 1);
    bench_thermal_begin(&t);
    s = bench_thermal_finish(&t);
    CHECK(json_is_null(json_object_get(s, "throttle_counters_moved")));
    CHECK(json_is_null(json_object_get(s, "max_temp_c")));
    CHECK(json_is_null(json_object_get(s, "min_freq_khz")));
    CHECK_EQ_INT(json_array_size(json_object_get(s, "unavailable")), 3);
    json_decref(s);
    unsetenv("IA_BENCH_SYSFS_ROOT");
}
