/*
 * The embeddings benchmark runner behind `bench run`: measures the real
 * engine (ia_embedder) on synthetic token ids for every configuration asked
 * for and stores the run, its environment, every per-query sample and every
 * failed configuration.
 *
 * Per configuration (device, dtype, batch, seq) it loads the model once per
 * (device, dtype) (the first load's time is the run's cold start), runs the
 * warm-up queries, then queries until both the minimum duration and the
 * minimum query count are met (MLPerf LoadGen's stopping rule). A query is
 * one call of ia_embedder_embed_ids on `batch` sequences of `seq` tokens:
 * single-stream reports its latency percentiles, offline its samples/s; the
 * samples are the per-query latencies in both. Tokenisation is left out so
 * that the sequence length is exact. Energy comes from RAPL package counters
 * (/sys/class/powercap/intel-rapl:N/energy_uj) when they are readable, else
 * it is NULL. The server scenario (Poisson arrivals) is not implemented yet.
 */
#include "bench/bench_internal.h"
#include "ia/ipfs.h"
#include "ia/quant.h"
#include "ia/runtime.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#ifndef IA_BUILD_COMMIT
#define IA_BUILD_COMMIT "unknown"
#endif
#ifndef IA_BUILD_FLAGS
#define IA_BUILD_FLAGS "unknown"
#endif

#define MAX_LIST 32

/* ---- environment ----------------------------------------------------------------- */

/* Joules from every readable top-level RAPL zone; NAN when none. */
static double rapl_joules(void) {
    double total = 0;
    bool any = false;
    for (int i = 0; i < 16; i++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/class/powercap/intel-rapl:%d/energy_uj", i);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        unsigned long long uj;
        if (fscanf(f, "%llu", &uj) == 1) {
            total += (double)uj * 1e-6;
            any = true;
        }
        fclose(f);
    }
    return any ? total : NAN;
}

/* The counters wrap at max_energy_range_uj; a negative difference is a
 * wrap (or a reset) and the reading is dropped rather than guessed. */
static double rapl_delta(double before, double after) {
    if (isnan(before) || isnan(after) || after < before)
        return NAN;
    return after - before;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "sha256:" + SHA-256 over "name\tsha256(file)\n" lines of the directory's
 * regular files in name order: the model's content, whatever it is called. */
static ia_status model_content_id(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    if (!d)
        return ia_error_set(IA_ENOTFOUND, "%s: cannot read the model directory", dir);
    char **names = NULL;
    size_t n = 0, n_cap = 0;
    ia_status st = IA_OK;
    char *lines = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == n_cap) {
            n_cap = n_cap ? 2 * n_cap : 16;
            char **g = ia_realloc_array(names, n_cap, sizeof *g);
            if (!g) {
                st = IA_ENOMEM;
                goto done;
            }
            names = g;
        }
        if (!(names[n] = ia_strdup(e->d_name))) {
            st = IA_ENOMEM;
            goto done;
        }
        n++;
    }
    qsort(names, n, sizeof *names, cmp_str);
    size_t lines_cap = n * 400 + 1, used = 0;
    if (!(lines = ia_malloc(lines_cap))) {
        st = IA_ENOMEM;
        goto done;
    }
    lines[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char *path = ia_path_join(dir, names[i]);
        struct stat sb;
        if (!path) {
            st = IA_ENOMEM;
            goto done;
        }
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            free(path);
            continue;
        }
        uint8_t digest[32];
        if (sb.st_size == 0) {
            ia_sha256("", 0, digest);
        } else {
            ia_mapped_file mf;
            if ((st = ia_file_map(path, &mf))) {
                free(path);
                goto done;
            }
            ia_sha256(mf.data, mf.size, digest);
            ia_file_unmap(&mf);
        }
        free(path);
        used += (size_t)snprintf(lines + used, lines_cap - used, "%.300s\t", names[i]);
        for (int k = 0; k < 32; k++)
            used += (size_t)snprintf(lines + used, lines_cap - used, "%02x", digest[k]);
        used += (size_t)snprintf(lines + used, lines_cap - used, "\n");
    }
    uint8_t all[32];
    ia_sha256(lines, used, all);
    int o = snprintf(out, cap, "sha256:");
    for (int k = 0; k < 32 && (size_t)o + 2 < cap; k++)
        o += snprintf(out + o, cap - (size_t)o, "%02x", all[k]);
done:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(lines);
    return st;
}

static bool reset_peak_rss(void);
static double proc_status_bytes(const char *key);

typedef struct run_env {
    ia_hw_info *hw;
    char cpu_flags[1024];
    char accelerators[512];
    char hw_key[768];
    char content_id[80];
    char model_type[64], family[32];
    char *env_json;
    bool hwm; /* VmHWM was reset after the probe */
} run_env;

static ia_status env_collect(const ia_bench_run_options *o, int threads, run_env *env) {
    ia_hw_options ho = ia_hw_options_default();
    ho.perf = false;
    ia_status st = ia_hw_detect(&ho, &env->hw);
    if (st)
        return st;
    /* The probe's vendor libraries (some stay loaded) are not the model's:
     * the peak starts here, and the RSS here is recorded as the baseline. */
    env->hwm = reset_peak_rss();
    double baseline = proc_status_bytes("VmRSS");
    const ia_hw_cpu *cpu = &env->hw->cpu;
    size_t used = 0;
    env->cpu_flags[0] = '\0';
    for (int f = 0; f < IA_CPU_FEATURE_COUNT; f++)
        if (ia_hw_cpu_has(cpu, (ia_cpu_feature)f) && used + 24 < sizeof env->cpu_flags)
            used += (size_t)snprintf(env->cpu_flags + used, sizeof env->cpu_flags - used, "%s%s",
                                     used ? " " : "", ia_cpu_feature_name((ia_cpu_feature)f));
    used = 0;
    env->accelerators[0] = '\0';
    for (size_t i = 0; i < env->hw->n_devices && used + 140 < sizeof env->accelerators; i++)
        used += (size_t)snprintf(env->accelerators + used, sizeof env->accelerators - used, "%s%s",
                                 used ? "; " : "", env->hw->devices[i].name);
    /* The hardware row: the CPU model and the accelerators (as llama-bench's
     * cpu_info / gpu_info would name them), so imports land on the same row. */
    snprintf(env->hw_key, sizeof env->hw_key, "%s|%s", cpu->model[0] ? cpu->model : cpu->arch,
             env->accelerators);
    json_t *j = json_object();
    if (!j)
        return IA_ENOMEM;
    json_object_set_new(j, "hardware", ia_hw_info_to_json(env->hw));
    json_object_set_new(j, "threads", json_integer(threads));
    json_object_set_new(j, "build_commit", json_string(IA_BUILD_COMMIT));
    json_object_set_new(j, "build_flags", json_string(IA_BUILD_FLAGS));
    json_object_set_new(j, "model_dir", json_string(o->model));
    json_object_set_new(j, "model_content_id", json_string(env->content_id));
    json_object_set_new(j, "scenario", json_string(o->scenario ? o->scenario : "single-stream"));
    json_object_set_new(j, "min_duration_s", json_real(o->min_duration_s));
    json_object_set_new(j, "min_queries", json_integer((json_int_t)o->min_queries));
    json_object_set_new(j, "warmup", json_integer((json_int_t)o->warmup));
    json_object_set_new(j, "rapl_readable", json_boolean(!isnan(rapl_joules())));
    json_object_set_new(j, "rss_baseline_bytes",
                        isnan(baseline) ? json_null() : json_integer((json_int_t)baseline));
    json_object_set_new(j, "peak_rss_from",
                        json_string(env->hwm ? "after the hardware probe" : "process start"));
    env->env_json = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return env->env_json ? IA_OK : IA_ENOMEM;
}

/* Peak RSS, bytes: VmHWM when /proc has it (reset_peak_rss makes it start
 * after the hardware probe, whose vendor libraries would otherwise dominate
 * a small model's number), else getrusage's ru_maxrss. */
static bool reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok;
}

/* A "VmXXX:" line of /proc/self/status in bytes; NAN when absent. */
static double proc_status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    double v = NAN;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':' &&
            sscanf(line + kl + 1, "%llu", &kb) == 1) {
            v = (double)kb * 1024.0;
            break;
        }
    if (f)
        fclose(f);
    return v;
}

static double peak_rss_bytes(bool hwm) {
    double v = hwm ? proc_status_bytes("VmHWM") : NAN;
    if (!isnan(v))
        return v;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* ---- configuration lists ---------------------------------------------------------- */

typedef struct str_list {
    char *buf;
    char *items[MAX_LIST];
    size_t n;
} str_list;

static ia_status list_split(const char *what, const char *s, str_list *out) {
    memset(out, 0, sizeof *out);
    if (!(out->buf = ia_strdup(s)))
        return IA_ENOMEM;
    char *save = NULL;
    for (char *t = strtok_r(out->buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (!*t)
            continue;
        if (out->n == MAX_LIST)
            return ia_error_set(IA_EINVAL, "%s: more than %d values", what, MAX_LIST);
        out->items[out->n++] = t;
    }
    if (!out->n)
        return ia_error_set(IA_EINVAL, "%s: no values in '%s'", what, s);
    return IA_OK;
}

static ia_status int_list(const char *what, const char *s, int *vals, size_t *n) {
    str_list l;
    ia_status st = list_split(what, s, &l);
    for (size_t i = 0; !st && i < l.n; i++) {
        char *end;
        long v = strtol(l.items[i], &end, 10);
        if (*end || v < 1 || v > 1 << 20)
            st = ia_error_set(IA_EINVAL, "%s: '%s' is not a positive integer", what, l.items[i]);
        vals[i] = (int)v;
    }
    *n = l.n;
    free(l.buf);
    return st;
}

/* ---- one configuration ------------------------------------------------------------------ */

typedef struct config {
    const char *device, *dtype, *scenario;
    int batch, seq;
} config;

typedef struct measured {
    double *samples;
    size_t n, cap;
    double duration_s, energy_j;
} measured;

static void progress(const ia_bench_run_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(const ia_bench_run_options *o, const char *fmt, ...) {
    if (!o->progress)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->progress(o->progress_ctx, line);
}

/* Runs the warm-up and the measured queries. IA_ERANGE with class timeout
 * (*cls) when the time limit passes before the stopping rule is met. */
static ia_status measure(ia_embedder *emb, const ia_bench_run_options *o, const config *c,
                         measured *m, const char **cls) {
    const ia_encoder_config *ec = ia_encoder_get_config(ia_embedder_encoder(emb));
    int64_t vocab = ec && ec->vocab_size > 2 ? ec->vocab_size : 2;
    size_t n_tok = (size_t)c->batch * (size_t)c->seq;
    int32_t *ids = ia_malloc_array(n_tok, sizeof *ids);
    int32_t *starts = ia_malloc_array((size_t)c->batch + 1, sizeof *starts);
    float *out = ia_malloc_array((size_t)c->batch * ia_embedder_dim(emb), sizeof *out);
    ia_status st = IA_OK;
    *cls = IA_BENCH_FAIL_EXECUTION;
    if (!ids || !starts || !out) {
        st = IA_ENOMEM;
        goto done;
    }
    uint32_t rng = 12345; /* deterministic ids: the same work every run */
    for (size_t i = 0; i < n_tok; i++) {
        rng = rng * 1664525u + 1013904223u;
        ids[i] = (int32_t)(1 + (rng >> 8) % (uint32_t)(vocab - 1));
    }
    for (int b = 0; b <= c->batch; b++)
        starts[b] = b * c->seq;
    for (size_t w = 0; w < o->warmup; w++)
        if ((st = ia_embedder_embed_ids(emb, ids, NULL, starts, (size_t)c->batch, out)))
            goto done;
    double min_dur = o->min_duration_s > 0 ? o->min_duration_s : 1.0;
    size_t min_q = o->min_queries ? o->min_queries : 10;
    double limit = o->timeout_s > 0 ? o->timeout_s : 600.0;
    double e0 = rapl_joules(), t0 = ia_time_now(), now = t0;
    while (now - t0 < min_dur || m->n < min_q) {
        if (now - t0 > limit) {
            *cls = IA_BENCH_FAIL_TIMEOUT;
            st = ia_error_set(IA_ERANGE,
                              "%zu of %zu queries in %.1f s: the %.0f s limit passed first", m->n,
                              min_q, now - t0, limit);
            goto done;
        }
        if (m->n == m->cap) {
            size_t nc = m->cap ? 2 * m->cap : 256;
            double *g = ia_realloc_array(m->samples, nc, sizeof *g);
            if (!g) {
                st = IA_ENOMEM;
                goto done;
            }
            m->samples = g;
            m->cap = nc;
        }
        double q0 = ia_time_now();
        if ((st = ia_embedder_embed_ids(emb, ids, NULL, starts, (size_t)c->batch, out)))
            goto done;
        now = ia_time_now();
        m->samples[m->n++] = now - q0;
    }
    m->duration_s = now - t0;
    m->energy_j = rapl_delta(e0, rapl_joules());
done:
    free(ids);
    free(starts);
    free(out);
    return st;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct runner {
    ia_bench_db *db;
    const ia_bench_run_options *o;
    int64_t run_id;
    int threads;
    size_t n_results;
    double cold_start_s, energy_j;
} runner;

static ia_status fail_config(runner *r, const config *c, const char *cls, const char *msg) {
    progress(r->o, "%s %s batch %d seq %d: %s: %s", c->device, c->dtype, c->batch, c->seq, cls,
             msg);
    return ia_bench_failure_add(r->db, r->run_id, c->device, c->dtype, c->scenario, c->batch,
                                c->seq, cls, msg);
}

/* Every (batch, seq) of one (device, dtype). Only database errors return. */
static ia_status run_device_dtype(runner *r, const char *device, const char *dtype,
                                  const int *batches, size_t n_b, const int *seqs, size_t n_s) {
    const ia_bench_run_options *o = r->o;
    const char *scenario = o->scenario ? o->scenario : "single-stream";
    config c = {device, dtype, scenario, batches[0], seqs[0]};
    ia_status st;
    char why[1024];
    const char *cls = IA_BENCH_FAIL_UNSUPPORTED;
    ia_dtype dt;
    ia_embedder *emb = NULL;
    char chosen[32];
    ia_device_kind kind;
    int index;
    /* Whatever stops this (device, dtype) fails each of its configurations. */
    if ((st = ia_device_parse(device, &kind, &index))) {
        snprintf(why, sizeof why, "unknown device: %s", ia_error_message());
        goto fail_all;
    }
    if (ia_dtype_parse(dtype, &dt) != IA_OK ||
        (dt != IA_DTYPE_F32 && dt != IA_DTYPE_F16 && dt != IA_DTYPE_BF16)) {
        snprintf(why, sizeof why,
                 "dtype '%s': the embeddings engine computes in f32, f16 or bf16 only", dtype);
        goto fail_all;
    }
    if ((st = ia_model_device_select(o->model, device, ia_dtype_name(dt), chosen, sizeof chosen))) {
        snprintf(why, sizeof why, "%s", ia_error_message());
        goto fail_all;
    }
    ia_embedder_options eo = ia_embedder_options_default();
    eo.dtype = dt;
    eo.n_threads = r->threads;
    int max_b = 1, max_s = 1;
    for (size_t i = 0; i < n_b; i++)
        max_b = batches[i] > max_b ? batches[i] : max_b;
    for (size_t i = 0; i < n_s; i++)
        max_s = seqs[i] > max_s ? seqs[i] : max_s;
    eo.batch_size = (size_t)max_b;
    eo.batch_tokens = (size_t)max_b * (size_t)max_s; /* one query is one engine batch */
    double t0 = ia_time_now();
    if ((st = ia_embedder_load(o->model, &eo, &emb))) {
        cls = IA_BENCH_FAIL_EXECUTION;
        snprintf(why, sizeof why, "load: %s", ia_error_message());
        goto fail_all;
    }
    if (isnan(r->cold_start_s))
        r->cold_start_s = ia_time_now() - t0;
    for (size_t bi = 0; bi < n_b; bi++) {
        for (size_t si = 0; si < n_s; si++) {
            c.batch = batches[bi];
            c.seq = seqs[si];
            c.device = chosen;
            if ((size_t)c.seq > ia_embedder_max_length(emb)) {
                snprintf(why, sizeof why, "seq %d is longer than the model's %zu tokens", c.seq,
                         ia_embedder_max_length(emb));
                if ((st = fail_config(r, &c, IA_BENCH_FAIL_UNSUPPORTED, why)))
                    goto done;
                continue;
            }
            measured m = {0};
            const char *mcls;
            if ((st = measure(emb, o, &c, &m, &mcls))) {
                snprintf(why, sizeof why, "%s", ia_error_message());
                free(m.samples);
                if ((st = fail_config(r, &c, mcls, why)))
                    goto done;
                continue;
            }
            bool offline = strcmp(scenario, "offline") == 0;
            ia_bench_result res = {chosen,    dtype, scenario, c.batch,      c.seq,
                                   m.samples, m.n,   NAN,      m.duration_s, m.energy_j};
            res.throughput = (double)m.n * c.batch / m.duration_s;
            ia_stats_summary s;
            ia_stats_summarize(m.samples, m.n, &s);
            st = ia_bench_result_add(r->db, r->run_id, &res, NULL);
            free(m.samples);
            if (st)
                goto done;
            r->n_results++;
            if (!isnan(m.energy_j))
                r->energy_j = (isnan(r->energy_j) ? 0 : r->energy_j) + m.energy_j;
            if (offline)
                progress(o, "%s %s batch %d seq %d: %.1f samples/s (%zu queries, %.2f s)", chosen,
                         dtype, c.batch, c.seq, res.throughput, m.n, m.duration_s);
            else
                progress(o,
                         "%s %s batch %d seq %d: p50 %.3f ms p90 %.3f ms p99 %.3f ms (%zu "
                         "queries)",
                         chosen, dtype, c.batch, c.seq, s.p50 * 1e3, s.p90 * 1e3, s.p99 * 1e3, m.n);
        }
    }
    st = IA_OK;
    goto done;
fail_all:
    st = IA_OK;
    for (size_t bi = 0; bi < n_b && !st; bi++)
        for (size_t si = 0; si < n_s && !st; si++) {
            c.batch = batches[bi];
            c.seq = seqs[si];
            st = fail_config(r, &c, cls, why);
        }
done:
    ia_embedder_free(emb);
    return st;
}

ia_status ia_bench_run_embeddings(ia_bench_db *db, const ia_bench_run_options *o, int64_t *run_id) {
    *run_id = -1;
    run_env env = {0};
    str_list devices = {0}, dtypes = {0};
    int batches[MAX_LIST], seqs[MAX_LIST];
    size_t n_b = 0, n_s = 0;
    json_t *cfg = NULL;
    runner r = {db, o, -1, o->threads > 0 ? o->threads : ia_cpu_physical_cores(), 0, NAN, NAN};
    const char *scenario = o->scenario ? o->scenario : "single-stream";
    ia_status st;
    if (strcmp(scenario, "single-stream") != 0 && strcmp(scenario, "offline") != 0) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "scenario '%s': single-stream and offline are implemented (server, "
                          "with Poisson arrivals, is not yet)",
                          scenario);
        goto done;
    }
    /* Everything that makes the whole run impossible is checked before the
     * run row exists: a bad model writes nothing. */
    if ((st = list_split("--device", o->devices ? o->devices : "auto", &devices)) ||
        (st = list_split("--dtype", o->dtypes ? o->dtypes : "f32", &dtypes)) ||
        (st = int_list("--batch", o->batches ? o->batches : "1", batches, &n_b)) ||
        (st = int_list("--seq", o->seqs ? o->seqs : "128", seqs, &n_s)))
        goto done;
    if ((st = ia_model_config_load(o->model, &cfg))) {
        ia_error_prefix("model %s", o->model);
        goto done;
    }
    ia_model_class cls;
    ia_classify_options co = {.use_registry = true};
    if (ia_model_classify(cfg, &co, &cls) == IA_OK) {
        snprintf(env.model_type, sizeof env.model_type, "%s", cls.model_type);
        snprintf(env.family, sizeof env.family, "%s", ia_model_family_name(cls.family));
    }
    if ((st = model_content_id(o->model, env.content_id, sizeof env.content_id)) ||
        (st = env_collect(o, r.threads, &env)))
        goto done;
    const char *base = strrchr(o->model, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : o->model);
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/')
        name[--nl] = '\0';
    ia_bench_run_info info = {
        .engine = "ipfs-accelerate",
        .model_name = name,
        .model_content_id = env.content_id,
        .model_type = env.model_type,
        .model_family = env.family,
        .hw_key = env.hw_key,
        .cpu_model = env.hw->cpu.model,
        .cpu_flags = env.cpu_flags,
        .accelerators = env.accelerators,
        .physical_cores = env.hw->cpu.physical_cores,
        .logical_cores = env.hw->cpu.logical_cores,
        .memory_bytes = env.hw->memory.total,
        .threads = r.threads,
        .governor = env.hw->cpu.governor,
        .build_commit = IA_BUILD_COMMIT,
        .build_flags = IA_BUILD_FLAGS,
        .command = o->command,
        .env_json = env.env_json,
    };
    if ((st = ia_bench_run_begin(db, &info, &r.run_id)))
        goto done;
    *run_id = r.run_id;
    for (size_t d = 0; d < devices.n && !st; d++)
        for (size_t t = 0; t < dtypes.n && !st; t++)
            st = run_device_dtype(&r, devices.items[d], dtypes.items[t], batches, n_b, seqs, n_s);
    double rss = peak_rss_bytes(env.hwm);
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", st ? ia_error_message() : "");
    ia_status fst = ia_bench_run_finish(db, r.run_id, !st && r.n_results ? "complete" : "failed",
                                        r.cold_start_s, rss, r.energy_j,
                                        st            ? saved
                                        : r.n_results ? NULL
                                                      : "no configuration produced a "
                                                        "result (see failures)");
    if (st)
        ia_error_set(st, "%s", saved);
    else
        st = fst;
done:
    json_decref(cfg);
    free(devices.buf);
    free(dtypes.buf);
    ia_hw_info_free(env.hw);
    free(env.env_json);
    return st;
}
