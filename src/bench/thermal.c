/*
 * Thermal state around a benchmark run: whether the CPU throttled while it
 * ran, so that a slow run on a hot machine is not taken for a regression.
 *
 * Read from sysfs (IA_BENCH_SYSFS_ROOT replaces "/sys", for tests):
 *   class/thermal/thermal_zoneN/temp                             millidegrees C
 *   devices/system/cpu/cpuN/cpufreq/scaling_cur_freq             kHz
 *   devices/system/cpu/cpuN/thermal_throttle/{core,package}_throttle_count
 *                                                                counters (Intel)
 * Sampled before the run, at each configuration boundary and after it. The
 * summary in the run's environment JSON ("thermal") keeps the first and last
 * samples, the highest temperature and the frequency range seen, and whether
 * any throttle counter moved; a source whose files do not exist (or cannot
 * be read) is listed as unavailable and its values are null, never 0.
 */
#include "bench/bench_internal.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sysfs_root(void) {
    const char *r = getenv("IA_BENCH_SYSFS_ROOT");
    return r && *r ? r : "/sys";
}

static bool read_ll(const char *path, long long *out) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fscanf(f, "%lld", out) == 1;
    fclose(f);
    return ok;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entries of dir starting with prefix, sorted (at most cap; names malloc'd). */
static size_t list_dir(const char *dir, const char *prefix, char **names, size_t cap) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    size_t pl = strlen(prefix);
    while ((e = readdir(d)) && n < cap)
        if (strncmp(e->d_name, prefix, pl) == 0 && e->d_name[0] != '.')
            if ((names[n] = ia_strdup(e->d_name)))
                n++;
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    return n;
}

#define MAX_ENTRIES 512

json_t *bench_thermal_sample(void) {
    json_t *s = json_object();
    if (!s)
        return NULL;
    char dir[512], path[2048];
    char *names[MAX_ENTRIES];
    /* temperatures */
    json_t *temps = json_object();
    snprintf(dir, sizeof dir, "%s/class/thermal", sysfs_root());
    size_t n = list_dir(dir, "thermal_zone", names, MAX_ENTRIES);
    for (size_t i = 0; i < n; i++) {
        long long v;
        snprintf(path, sizeof path, "%s/%s/temp", dir, names[i]);
        if (read_ll(path, &v))
            json_object_set_new(temps, names[i], json_real((double)v / 1000.0));
        free(names[i]);
    }
    /* per-CPU frequency and throttle counters */
    json_t *freq = json_object(), *thr = json_object();
    snprintf(dir, sizeof dir, "%s/devices/system/cpu", sysfs_root());
    n = list_dir(dir, "cpu", names, MAX_ENTRIES);
    for (size_t i = 0; i < n; i++) {
        const char *cpu = names[i];
        if (strspn(cpu + 3, "0123456789") != strlen(cpu + 3) || !cpu[3]) {
            free(names[i]);
            continue; /* cpufreq, cpuidle, ... */
        }
        long long v;
        snprintf(path, sizeof path, "%s/%s/cpufreq/scaling_cur_freq", dir, cpu);
        if (read_ll(path, &v))
            json_object_set_new(freq, cpu, json_integer(v));
        char tdir[1200];
        snprintf(tdir, sizeof tdir, "%s/%s/thermal_throttle", dir, cpu);
        char *counters[32];
        size_t nc = list_dir(tdir, "", counters, 32);
        for (size_t k = 0; k < nc; k++) {
            size_t l = strlen(counters[k]);
            if (l > 6 && strcmp(counters[k] + l - 6, "_count") == 0) {
                snprintf(path, sizeof path, "%s/%s", tdir, counters[k]);
                char key[128];
                snprintf(key, sizeof key, "%s/%s", cpu, counters[k]);
                if (read_ll(path, &v))
                    json_object_set_new(thr, key, json_integer(v));
            }
            free(counters[k]);
        }
        free(names[i]);
    }
    json_object_set_new(s, "temp_c", temps);
    json_object_set_new(s, "freq_khz", freq);
    json_object_set_new(s, "throttle_counts", thr);
    return s;
}

void bench_thermal_begin(bench_thermal *t) {
    memset(t, 0, sizeof *t);
    t->max_temp_c = NAN;
    t->min_freq_khz = NAN;
    t->max_freq_khz = NAN;
    bench_thermal_update(t);
}

void bench_thermal_update(bench_thermal *t) {
    json_t *s = bench_thermal_sample();
    if (!s)
        return;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "temp_c"), k, v) {
        double c = json_real_value(v);
        if (isnan(t->max_temp_c) || c > t->max_temp_c)
            t->max_temp_c = c;
    }
    json_object_foreach(json_object_get(s, "freq_khz"), k, v) {
        double f = (double)json_integer_value(v);
        if (isnan(t->min_freq_khz) || f < t->min_freq_khz)
            t->min_freq_khz = f;
        if (isnan(t->max_freq_khz) || f > t->max_freq_khz)
            t->max_freq_khz = f;
    }
    t->n_samples++;
    if (!t->first) {
        t->first = s;
    } else {
        json_decref(t->last);
        t->last = s;
    }
}

static json_t *num_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

json_t *bench_thermal_finish(bench_thermal *t) {
    bench_thermal_update(t);
    json_t *o = json_object();
    const json_t *a = t->first ? json_object_get(t->first, "throttle_counts") : NULL;
    const json_t *b = t->last ? json_object_get(t->last, "throttle_counts") : NULL;
    json_t *moved = json_null();
    if (json_object_size(a) || json_object_size(b)) {
        bool m = false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)b, k, v) {
            json_t *before = json_object_get(a, k);
            if (!before || json_integer_value(before) != json_integer_value(v))
                m = true;
        }
        json_decref(moved);
        moved = json_boolean(m);
    }
    json_t *unavailable = json_array();
    const json_t *last = t->last ? t->last : t->first;
    if (!json_object_size(json_object_get(last, "temp_c")))
        json_array_append_new(unavailable, json_string("thermal_zone temp"));
    if (!json_object_size(json_object_get(last, "freq_khz")))
        json_array_append_new(unavailable, json_string("cpufreq scaling_cur_freq"));
    if (!json_object_size(json_object_get(last, "throttle_counts")))
        json_array_append_new(unavailable, json_string("thermal_throttle counters"));
    json_object_set_new(o, "throttle_counters_moved", moved);
    json_object_set_new(o, "max_temp_c", num_or_null(t->max_temp_c));
    json_object_set_new(o, "min_freq_khz", num_or_null(t->min_freq_khz));
    json_object_set_new(o, "max_freq_khz", num_or_null(t->max_freq_khz));
    json_object_set_new(o, "samples", json_integer((json_int_t)t->n_samples));
    json_object_set_new(o, "unavailable", unavailable);
    json_object_set_new(o, "before", t->first ? json_incref(t->first) : json_null());
    json_object_set_new(o, "after", last ? json_incref((json_t *)last) : json_null());
    bench_thermal_free(t);
    return o;
}

void bench_thermal_free(bench_thermal *t) {
    json_decref(t->first);
    json_decref(t->last);
    t->first = t->last = NULL;
}
