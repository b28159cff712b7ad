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
 * it is NULL.
 *
 * Decoders (a .gguf file or an HF decoder directory) run generation instead
 * (ia_bench_run in include/ia/bench.h says what is timed): TTFT per query,
 * TPOT per output token, prefill and decode tokens/s. Prompt tokens are the
 * synthetic sequence bench/generate_engine.c uses ((i * 7919 + 13) mod
 * vocab), output tokens the greedy picks, so the work is the same on every
 * run. The server scenario (server.c) runs either kind's query under Poisson
 * arrivals. The thermal state (thermal.c) is sampled before the run, at each
 * configuration's end and after the run, and stored in the environment JSON.
 */
#include "bench/bench_internal.h"
#include "ia/ipfs.h"
#include "ia/models.h"
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
    struct stat fsb;
    if (stat(dir, &fsb) == 0 && S_ISREG(fsb.st_mode)) {
        /* a single-file model (.gguf): its bytes */
        uint8_t digest[32];
        ia_mapped_file mf;
        ia_status fst = ia_file_map(dir, &mf);
        if (fst)
            return fst;
        ia_sha256(mf.data, mf.size, digest);
        ia_file_unmap(&mf);
        int o = snprintf(out, cap, "sha256:");
        for (int k = 0; k < 32 && (size_t)o + 2 < cap; k++)
            o += snprintf(out + o, cap - (size_t)o, "%02x", digest[k]);
        return IA_OK;
    }
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
    bool decoder;
    char *env_json;
    json_t *env_obj; /* env_json before the run; the thermal summary is added at the end */
    bool hwm;        /* VmHWM was reset after the probe */
    bench_thermal thermal;
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
    json_object_set_new(j, env->decoder ? "model_path" : "model_dir", json_string(o->model));
    json_object_set_new(j, "model_kind", json_string(env->decoder ? "decoder" : "embeddings"));
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
    if (o->gen_tokens > 0 || env->decoder)
        json_object_set_new(j, "gen_tokens", json_integer(o->gen_tokens > 0 ? o->gen_tokens : 64));
    if (o->scenario && strcmp(o->scenario, "server") == 0) {
        json_t *sv = json_object();
        json_object_set_new(sv, "latency_bound_s", json_real(o->latency_bound_s));
        json_object_set_new(sv, "percentile",
                            json_real(o->latency_percentile > 0 ? o->latency_percentile : 99));
        json_object_set_new(sv, "seed", json_integer((json_int_t)o->seed));
        json_object_set_new(sv, "rates", o->rates ? json_string(o->rates) : json_null());
        json_object_set_new(sv, "queue", json_string("one dispatcher thread, FIFO, one worker"));
        json_object_set_new(j, "server", sv);
    }
    bench_thermal_begin(&env->thermal);
    json_object_set_new(j, "thermal_before", json_incref(env->thermal.first));
    env->env_json = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    env->env_obj = j;
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

static ia_status push_sample(measured *m, double v) {
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 256;
        double *g = ia_realloc_array(m->samples, nc, sizeof *g);
        if (!g)
            return IA_ENOMEM;
        m->samples = g;
        m->cap = nc;
    }
    m->samples[m->n++] = v;
    return IA_OK;
}

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

/* ---- queries: one embeddings batch, or one generation ------------------------------------- */

typedef struct emb_query {
    ia_embedder *emb;
    int32_t *ids, *starts;
    float *out;
    size_t batch;
} emb_query;

static void emb_query_free(emb_query *q) {
    free(q->ids);
    free(q->starts);
    free(q->out);
}

static ia_status emb_query_init(ia_embedder *emb, const config *c, emb_query *q) {
    memset(q, 0, sizeof *q);
    const ia_encoder_config *ec = ia_encoder_get_config(ia_embedder_encoder(emb));
    int64_t vocab = ec && ec->vocab_size > 2 ? ec->vocab_size : 2;
    size_t n_tok = (size_t)c->batch * (size_t)c->seq;
    q->emb = emb;
    q->batch = (size_t)c->batch;
    q->ids = ia_malloc_array(n_tok, sizeof *q->ids);
    q->starts = ia_malloc_array((size_t)c->batch + 1, sizeof *q->starts);
    q->out = ia_malloc_array((size_t)c->batch * ia_embedder_dim(emb), sizeof *q->out);
    if (!q->ids || !q->starts || !q->out) {
        emb_query_free(q);
        return IA_ENOMEM;
    }
    uint32_t rng = 12345; /* deterministic ids: the same work every run */
    for (size_t i = 0; i < n_tok; i++) {
        rng = rng * 1664525u + 1013904223u;
        q->ids[i] = (int32_t)(1 + (rng >> 8) % (uint32_t)(vocab - 1));
    }
    for (int b = 0; b <= c->batch; b++)
        q->starts[b] = b * c->seq;
    return IA_OK;
}

static ia_status emb_query_run(void *ctx) {
    emb_query *q = ctx;
    return ia_embedder_embed_ids(q->emb, q->ids, NULL, q->starts, q->batch, q->out);
}

typedef struct gen_query {
    const ia_decoder *dec;
    ia_kv_cache *kv;
    ia_threadpool *pool;
    int32_t *toks;
    float *logits;
    int64_t vocab;
    int prompt, gen;
    /* the last query's timings */
    double ttft, prefill;
    double *tpot; /* gen - 1 */
} gen_query;

static void gen_query_free(gen_query *q) {
    ia_kv_cache_free(q->kv);
    free(q->toks);
    free(q->logits);
    free(q->tpot);
    memset(q, 0, sizeof *q);
}

/* The prompt: bench/generate_engine.c's sequence, token i = (i*7919+13) mod vocab. */
static ia_status gen_query_init(const ia_decoder *dec, ia_threadpool *pool, int prompt, int gen,
                                gen_query *q) {
    memset(q, 0, sizeof *q);
    const ia_decoder_config *dc = ia_decoder_get_config(dec);
    q->dec = dec;
    q->pool = pool;
    q->vocab = dc->vocab_size;
    q->prompt = prompt;
    q->gen = gen;
    ia_status st = ia_kv_cache_create(dec, (size_t)prompt + (size_t)gen, IA_DTYPE_F32, &q->kv);
    if (st)
        return st;
    q->toks = ia_malloc_array((size_t)prompt, sizeof *q->toks);
    q->logits = ia_malloc_array((size_t)q->vocab, sizeof *q->logits);
    q->tpot = ia_malloc_array((size_t)(gen > 1 ? gen - 1 : 1), sizeof *q->tpot);
    if (!q->toks || !q->logits || !q->tpot) {
        gen_query_free(q);
        return IA_ENOMEM;
    }
    for (int i = 0; i < prompt; i++)
        q->toks[i] = (int32_t)(((uint64_t)i * 7919u + 13u) % (uint64_t)q->vocab);
    return IA_OK;
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* One request: prefill the prompt into an empty cache and pick the first
 * token (TTFT), then gen - 1 decode steps (one TPOT sample each). */
static ia_status gen_query_run(void *ctx) {
    gen_query *q = ctx;
    ia_kv_cache_reset(q->kv);
    double t0 = ia_time_now();
    ia_status st =
        ia_decoder_forward(q->dec, q->kv, q->toks, (size_t)q->prompt, false, q->logits, q->pool);
    if (st)
        return st;
    double t1 = ia_time_now();
    int32_t tok = argmax(q->logits, q->vocab);
    double t2 = ia_time_now();
    q->prefill = t1 - t0;
    q->ttft = t2 - t0;
    for (int i = 1; i < q->gen; i++) {
        double s = ia_time_now();
        if ((st = ia_decoder_forward(q->dec, q->kv, &tok, 1, false, q->logits, q->pool)))
            return st;
        tok = argmax(q->logits, q->vocab);
        q->tpot[i - 1] = ia_time_now() - s;
    }
    return IA_OK;
}

/* ---- the stopping rule ----------------------------------------------------------------------- */

/* Runs the warm-up, then queries until both the minimum duration and the
 * minimum query count are met; `each` (may be NULL) records a query's
 * samples, else its latency goes to m. IA_ERANGE with class timeout (*cls)
 * when the limit passes first. */
static ia_status measure(const ia_bench_run_options *o, bench_query_fn fn, void *ctx,
                         ia_status (*each)(void *ectx, double latency), void *ectx, measured *m,
                         size_t *n_queries, const char **cls) {
    ia_status st = IA_OK;
    *cls = IA_BENCH_FAIL_EXECUTION;
    *n_queries = 0;
    for (size_t w = 0; w < o->warmup; w++)
        if ((st = fn(ctx)))
            return st;
    double min_dur = o->min_duration_s > 0 ? o->min_duration_s : 1.0;
    size_t min_q = o->min_queries ? o->min_queries : 10;
    double limit = o->timeout_s > 0 ? o->timeout_s : 600.0;
    double e0 = rapl_joules(), t0 = ia_time_now(), now = t0;
    while (now - t0 < min_dur || *n_queries < min_q) {
        if (now - t0 > limit) {
            *cls = IA_BENCH_FAIL_TIMEOUT;
            return ia_error_set(IA_ERANGE,
                                "%zu of %zu queries in %.1f s: the %.0f s limit passed first",
                                *n_queries, min_q, now - t0, limit);
        }
        double q0 = ia_time_now();
        if ((st = fn(ctx)))
            return st;
        now = ia_time_now();
        (*n_queries)++;
        if ((st = each ? each(ectx, now - q0) : push_sample(m, now - q0)))
            return st;
    }
    m->duration_s = now - t0;
    m->energy_j = rapl_delta(e0, rapl_joules());
    return IA_OK;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct runner {
    ia_bench_db *db;
    const ia_bench_run_options *o;
    int64_t run_id;
    int threads;
    size_t n_results;
    double cold_start_s, energy_j;
    bench_thermal *thermal;
} runner;

static ia_status fail_config(runner *r, const config *c, const char *cls, const char *msg) {
    progress(r->o, "%s %s batch %d seq %d: %s: %s", c->device, c->dtype, c->batch, c->seq, cls,
             msg);
    return ia_bench_failure_add(r->db, r->run_id, c->device, c->dtype, c->scenario, c->batch,
                                c->seq, cls, msg);
}

static ia_status store(runner *r, const ia_bench_result *res, int64_t *id) {
    ia_status st = ia_bench_result_add(r->db, r->run_id, res, id);
    if (!st) {
        r->n_results++;
        if (!isnan(res->energy_j))
            r->energy_j = (isnan(r->energy_j) ? 0 : r->energy_j) + res->energy_j;
    }
    return st;
}

/* ---- the server scenario ------------------------------------------------------------------------
 */

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Rates tried: the fixed list, or a bisection between 0 and the capacity
 * that the measured service time implies (1 / median service time: no
 * single worker sustains more). Only database errors return. */
static ia_status run_server(runner *r, const config *c, bench_query_fn fn, void *ctx,
                            int gen_tokens) {
    const ia_bench_run_options *o = r->o;
    double bound = o->latency_bound_s, pct = o->latency_percentile > 0 ? o->latency_percentile : 99;
    double min_dur = o->min_duration_s > 0 ? o->min_duration_s : 1.0;
    size_t min_q = o->min_queries ? o->min_queries : 10;
    uint64_t seed = o->seed ? o->seed : 1;
    char why[1024];
    ia_status st = IA_OK;
    /* warm-up, then the service time from a few back-to-back queries */
    double svc[5];
    for (size_t w = 0; w < (o->warmup ? o->warmup : 1) && !st; w++)
        st = fn(ctx);
    for (int i = 0; i < 5 && !st; i++) {
        double t0 = ia_time_now();
        st = fn(ctx);
        svc[i] = ia_time_now() - t0;
    }
    if (st) {
        snprintf(why, sizeof why, "%s", ia_error_message());
        return fail_config(r, c, IA_BENCH_FAIL_EXECUTION, why);
    }
    qsort(svc, 5, sizeof *svc, cmp_dbl);
    double service = svc[2], capacity = 1.0 / svc[2];
    double rates[MAX_LIST];
    size_t n_fixed = 0;
    if (o->rates) {
        str_list l;
        if ((st = list_split("--rate", o->rates, &l))) {
            free(l.buf);
            return st; /* checked before the run began */
        }
        for (size_t i = 0; i < l.n; i++)
            rates[n_fixed++] = strtod(l.items[i], NULL);
        free(l.buf);
    }
    int steps = n_fixed ? (int)n_fixed : (o->search_steps > 0 ? o->search_steps : 6);
    double lo = 0, hi = capacity, best_rate = NAN;
    int64_t best_id = -1;
    json_t *best_params = NULL;
    for (int i = 0; i < steps && !st; i++) {
        double rate = n_fixed ? rates[i] : 0.5 * (lo + hi);
        bench_server_rate sr;
        ia_status qs = bench_server_run_rate(fn, ctx, rate, min_dur, min_q, seed, bound, pct, &sr);
        if (r->thermal)
            bench_thermal_update(r->thermal);
        if (qs) {
            snprintf(why, sizeof why, "rate %.4g/s: %s", rate, ia_error_message());
            return fail_config(r, c, IA_BENCH_FAIL_EXECUTION, why);
        }
        if (!n_fixed) {
            if (sr.passed)
                lo = rate;
            else
                hi = rate;
        }
        progress(o,
                 "%s %s server %.4g/s: p%g %.3f ms (bound %.3f ms), %zu done, %zu abandoned, "
                 "%.4g/s achieved: %s",
                 c->device, c->dtype, rate, pct, sr.pct_latency * 1e3, bound * 1e3, sr.n,
                 sr.abandoned, sr.achieved, sr.passed ? "met" : "missed");
        if (!sr.n) {
            snprintf(why, sizeof why, "rate %.4g/s: no query completed in time", rate);
            free(sr.latencies);
            if ((st = fail_config(r, c, IA_BENCH_FAIL_TIMEOUT, why)))
                return st;
            continue;
        }
        json_t *pj = json_object();
        json_object_set_new(pj, "target_rate", json_real(rate));
        json_object_set_new(pj, "latency_bound_s", json_real(bound));
        json_object_set_new(pj, "percentile", json_real(pct));
        json_object_set_new(pj, "percentile_latency_s", json_real(sr.pct_latency));
        json_object_set_new(pj, "passed", json_boolean(sr.passed));
        json_object_set_new(pj, "issued", json_integer((json_int_t)sr.issued));
        json_object_set_new(pj, "completed", json_integer((json_int_t)sr.n));
        json_object_set_new(pj, "abandoned", json_integer((json_int_t)sr.abandoned));
        json_object_set_new(pj, "seed", json_integer((json_int_t)seed));
        json_object_set_new(pj, "service_time_s", json_real(service));
        json_object_set_new(pj, "step", json_integer(i));
        json_object_set_new(pj, "best", json_false());
        char *pjs = json_dumps(pj, JSON_COMPACT | JSON_SORT_KEYS);
        ia_bench_result res = {
            c->device,   c->dtype,      "server", c->batch, c->seq,      sr.latencies, sr.n,
            sr.achieved, sr.duration_s, NAN,      "server", "queries/s", gen_tokens,   pjs};
        int64_t id = -1;
        st = pjs ? store(r, &res, &id) : IA_ENOMEM;
        free(pjs);
        free(sr.latencies);
        if (!st && sr.passed && (isnan(best_rate) || rate > best_rate)) {
            best_rate = rate;
            best_id = id;
            json_decref(best_params);
            best_params = json_incref(pj);
        }
        json_decref(pj);
    }
    if (!st && best_id >= 0) {
        json_object_set_new(best_params, "best", json_true());
        char *pjs = json_dumps(best_params, JSON_COMPACT | JSON_SORT_KEYS);
        char ids[24];
        snprintf(ids, sizeof ids, "%lld", (long long)best_id);
        const char *p[] = {pjs, ids};
        st = pjs ? ia_bench_db_query(r->db, "UPDATE results SET params_json = ? WHERE id = ?", p, 2,
                                     NULL)
                 : IA_ENOMEM;
        free(pjs);
        progress(o, "%s %s server: highest rate meeting p%g <= %.3f ms: %.4g queries/s", c->device,
                 c->dtype, pct, bound * 1e3, best_rate);
    } else if (!st) {
        progress(o, "%s %s server: no rate tried met p%g <= %.3f ms", c->device, c->dtype, pct,
                 bound * 1e3);
    }
    json_decref(best_params);
    return st;
}

/* ---- embeddings --------------------------------------------------------------------------------
 */

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
            emb_query q;
            if ((st = emb_query_init(emb, &c, &q)))
                goto done;
            if (strcmp(scenario, "server") == 0) {
                st = run_server(r, &c, emb_query_run, &q, 0);
                emb_query_free(&q);
                if (st)
                    goto done;
                continue;
            }
            measured m = {0};
            const char *mcls;
            size_t nq;
            st = measure(o, emb_query_run, &q, NULL, NULL, &m, &nq, &mcls);
            emb_query_free(&q);
            if (r->thermal)
                bench_thermal_update(r->thermal);
            if (st) {
                snprintf(why, sizeof why, "%s", ia_error_message());
                free(m.samples);
                if ((st = fail_config(r, &c, mcls, why)))
                    goto done;
                continue;
            }
            bool offline = strcmp(scenario, "offline") == 0;
            ia_bench_result res = {chosen,    dtype,       scenario, c.batch,      c.seq,
                                   m.samples, m.n,         NAN,      m.duration_s, m.energy_j,
                                   "latency", "samples/s", 0,        NULL};
            res.throughput = (double)m.n * c.batch / m.duration_s;
            ia_stats_summary s;
            ia_stats_summarize(m.samples, m.n, &s);
            st = store(r, &res, NULL);
            free(m.samples);
            if (st)
                goto done;
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

/* ---- generation
 * ---------------------------------------------------------------------------------- */

bool ia_bench_model_is_decoder(const char *model) {
    size_t l = model ? strlen(model) : 0;
    if (l > 5 && strcmp(model + l - 5, ".gguf") == 0)
        return true;
    json_t *cfg = NULL;
    if (!model || ia_model_config_load(model, &cfg) != IA_OK) {
        ia_error_clear();
        return false;
    }
    ia_model_class cls;
    ia_classify_options co = {.use_registry = true};
    bool dec = ia_model_classify(cfg, &co, &cls) == IA_OK && cls.family == IA_FAMILY_TEXT_DECODER;
    json_decref(cfg);
    ia_error_clear();
    return dec;
}

typedef struct gen_samples {
    gen_query *q;
    measured ttft, tpot;
    double prefill_s, decode_s;
} gen_samples;

static ia_status gen_each(void *ctx, double latency) {
    (void)latency;
    gen_samples *g = ctx;
    ia_status st = push_sample(&g->ttft, g->q->ttft);
    g->prefill_s += g->q->prefill;
    for (int i = 0; !st && i < g->q->gen - 1; i++) {
        st = push_sample(&g->tpot, g->q->tpot[i]);
        g->decode_s += g->q->tpot[i];
    }
    return st;
}

/* Weight types a decoder loads at: floats, or a quantisation applied at load. */
static bool decoder_dtype(const char *name, ia_dtype *dt) {
    if (ia_dtype_parse(name, dt) != IA_OK)
        return false;
    const ia_dtype_info *info = ia_dtype_get_info(*dt);
    return info && info->is_float && *dt != IA_DTYPE_Q8_K;
}

/* One configuration of a loaded decoder. Only database errors return. */
static ia_status run_gen_config(runner *r, const ia_decoder *dec, ia_threadpool *pool, config *c) {
    const ia_bench_run_options *o = r->o;
    int gen = o->gen_tokens > 0 ? o->gen_tokens : 64;
    char why[1024];
    const ia_decoder_config *dc = ia_decoder_get_config(dec);
    if (c->batch != 1) {
        snprintf(why, sizeof why, "batch %d: generation runs one sequence at a time (batch 1)",
                 c->batch);
        return fail_config(r, c, IA_BENCH_FAIL_UNSUPPORTED, why);
    }
    if (strcmp(c->scenario, "offline") == 0)
        return fail_config(r, c, IA_BENCH_FAIL_UNSUPPORTED,
                           "offline: batched generation is not implemented (use single-stream "
                           "or server)");
    if ((int64_t)c->seq + gen > dc->max_positions) {
        snprintf(why, sizeof why, "seq %d + %d generated tokens exceed the model's context of %lld",
                 c->seq, gen, (long long)dc->max_positions);
        return fail_config(r, c, IA_BENCH_FAIL_UNSUPPORTED, why);
    }
    gen_query q;
    ia_status st = gen_query_init(dec, pool, c->seq, gen, &q);
    if (st) {
        snprintf(why, sizeof why, "%s", ia_error_message());
        return fail_config(r, c, IA_BENCH_FAIL_EXECUTION, why);
    }
    if (strcmp(c->scenario, "server") == 0) {
        st = run_server(r, c, gen_query_run, &q, gen);
        gen_query_free(&q);
        return st;
    }
    gen_samples g = {.q = &q};
    measured all = {0};
    const char *mcls;
    size_t nq = 0;
    st = measure(o, gen_query_run, &q, gen_each, &g, &all, &nq, &mcls);
    gen_query_free(&q);
    if (r->thermal)
        bench_thermal_update(r->thermal);
    if (st) {
        snprintf(why, sizeof why, "%s", ia_error_message());
        st = fail_config(r, c, mcls, why);
        goto done;
    }
    /* energy goes with the TTFT result only (one number per configuration) */
    ia_bench_result ttft = {c->device,
                            c->dtype,
                            c->scenario,
                            1,
                            c->seq,
                            g.ttft.samples,
                            g.ttft.n,
                            (double)c->seq * (double)nq / g.prefill_s,
                            all.duration_s,
                            all.energy_j,
                            "ttft",
                            "tokens/s",
                            gen,
                            NULL};
    if ((st = store(r, &ttft, NULL)))
        goto done;
    ia_stats_summary s1, s2 = {0};
    ia_stats_summarize(g.ttft.samples, g.ttft.n, &s1);
    double decode_tps = NAN;
    if (g.tpot.n) {
        decode_tps = (double)g.tpot.n / g.decode_s;
        ia_bench_result tpot = {c->device, c->dtype,   c->scenario,    1,   c->seq, g.tpot.samples,
                                g.tpot.n,  decode_tps, all.duration_s, NAN, "tpot", "tokens/s",
                                gen,       NULL};
        if ((st = store(r, &tpot, NULL)))
            goto done;
        ia_stats_summarize(g.tpot.samples, g.tpot.n, &s2);
    }
    progress(o,
             "%s %s prompt %d gen %d: TTFT p50 %.3f ms, TPOT mean %.3f ms, prefill %.1f tok/s, "
             "decode %.1f tok/s (%zu queries)",
             c->device, c->dtype, c->seq, gen, s1.p50 * 1e3, s2.mean * 1e3, ttft.throughput,
             decode_tps, nq);
done:
    free(g.ttft.samples);
    free(g.tpot.samples);
    free(all.samples);
    return st;
}

/* The label a decoder's results carry for its weights: a GGUF file whose
 * matrices are quantised is named by its most common quantised type
 * ("gguf-q4_k"), since --dtype only sets the type of its float tensors.
 * False for float-only files and directories. */
static bool gguf_weight_label(const char *path, char *buf, size_t cap) {
    ia_gguf *g = NULL;
    size_t count[IA_DTYPE_COUNT] = {0}, best = 0;
    bool found = false;
    if (ia_gguf_open(path, &g) != IA_OK) {
        ia_error_clear();
        return false;
    }
    for (size_t i = 0; i < ia_gguf_tensor_count(g); i++) {
        ia_dtype dt;
        if (ia_dtype_from_ggml(ia_gguf_tensor_at(g, i)->type, &dt) == IA_OK &&
            ia_dtype_is_quantized(dt))
            count[dt]++;
    }
    ia_error_clear();
    ia_gguf_close(g);
    for (int t = 0; t < IA_DTYPE_COUNT; t++)
        if (count[t] > count[best]) {
            best = (size_t)t;
            found = true;
        }
    if (found)
        snprintf(buf, cap, "gguf-%s", ia_dtype_name((ia_dtype)best));
    return found;
}

static ia_status run_decoder_dtype(runner *r, const char *device, const char *dtype,
                                   const int *batches, size_t n_b, const int *seqs, size_t n_s) {
    const ia_bench_run_options *o = r->o;
    const char *scenario = o->scenario ? o->scenario : "single-stream";
    config c = {device, dtype, scenario, batches[0], seqs[0]};
    char label[32];
    if (!o->dtypes && gguf_weight_label(o->model, label, sizeof label))
        c.dtype = label;
    ia_status st;
    char why[1024];
    const char *cls = IA_BENCH_FAIL_UNSUPPORTED;
    ia_dtype dt;
    ia_decoder *dec = NULL;
    ia_threadpool *pool = NULL;
    char chosen[32];
    ia_device_kind kind;
    int index;
    if ((st = ia_device_parse(device, &kind, &index))) {
        snprintf(why, sizeof why, "unknown device: %s", ia_error_message());
        goto fail_all;
    }
    if (!decoder_dtype(dtype, &dt)) {
        snprintf(why, sizeof why,
                 "dtype '%s': decoders load f32, f16, bf16 or a weight quantisation type "
                 "(q8_0, q4_0, q4_1, q5_0, q5_1, q2_k ... q6_k)",
                 dtype);
        goto fail_all;
    }
    if ((st = ia_model_device_select(o->model, device, "f32", chosen, sizeof chosen))) {
        snprintf(why, sizeof why, "%s", ia_error_message());
        goto fail_all;
    }
    if (strcmp(chosen, "cpu") != 0) {
        snprintf(why, sizeof why, "device %s: generation runs on the CPU in this build", chosen);
        goto fail_all;
    }
    double t0 = ia_time_now();
    if ((st = ia_decoder_load(o->model, ia_backend_cpu(), dt, &dec))) {
        cls = IA_BENCH_FAIL_EXECUTION;
        snprintf(why, sizeof why, "load: %s", ia_error_message());
        goto fail_all;
    }
    if (isnan(r->cold_start_s))
        r->cold_start_s = ia_time_now() - t0;
    if (r->threads > 1 && !(pool = ia_threadpool_create(r->threads))) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t bi = 0; bi < n_b && !st; bi++)
        for (size_t si = 0; si < n_s && !st; si++) {
            c.batch = batches[bi];
            c.seq = seqs[si];
            c.device = chosen;
            st = run_gen_config(r, dec, pool, &c);
        }
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
    ia_threadpool_destroy(pool);
    ia_decoder_free(dec);
    return st;
}

/* ---- a whole run
 * ------------------------------------------------------------------------------------ */

static ia_status run_all(ia_bench_db *db, const ia_bench_run_options *o, bool decoder,
                         int64_t *run_id) {
    *run_id = -1;
    run_env env = {0};
    env.decoder = decoder;
    str_list devices = {0}, dtypes = {0};
    int batches[MAX_LIST], seqs[MAX_LIST];
    size_t n_b = 0, n_s = 0;
    json_t *cfg = NULL;
    runner r = {db, o,   -1,  o->threads > 0 ? o->threads : ia_cpu_physical_cores(),
                0,  NAN, NAN, NULL};
    const char *scenario = o->scenario ? o->scenario : "single-stream";
    ia_status st;
    if (strcmp(scenario, "single-stream") != 0 && strcmp(scenario, "offline") != 0 &&
        strcmp(scenario, "server") != 0) {
        st = ia_error_set(IA_EINVAL, "scenario '%s': single-stream, offline or server", scenario);
        goto done;
    }
    if (strcmp(scenario, "server") == 0) {
        if (!(o->latency_bound_s > 0)) {
            st = ia_error_set(IA_EINVAL,
                              "the server scenario needs a latency bound (--latency-bound-ms)");
            goto done;
        }
        if (o->latency_percentile < 0 || o->latency_percentile > 100) {
            st = ia_error_set(IA_EINVAL, "latency percentile %g is not within 0..100",
                              o->latency_percentile);
            goto done;
        }
        if (o->rates) {
            str_list l;
            st = list_split("--rate", o->rates, &l);
            for (size_t i = 0; !st && i < l.n; i++) {
                char *end;
                double v = strtod(l.items[i], &end);
                if (*end || !(v > 0) || !isfinite(v))
                    st = ia_error_set(IA_EINVAL,
                                      "--rate: '%s' is not a positive number of "
                                      "queries per second",
                                      l.items[i]);
            }
            free(l.buf);
            if (st)
                goto done;
        }
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
    r.thermal = &env.thermal;
    const char *base = strrchr(o->model, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : o->model);
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/')
        name[--nl] = '\0';
    if (decoder && nl > 5 && strcmp(name + nl - 5, ".gguf") == 0 && base && base != o->model) {
        /* "model.gguf" says little: "llama/model.gguf" */
        const char *p = base - 1;
        while (p > o->model && p[-1] != '/')
            p--;
        snprintf(name, sizeof name, "%.*s", (int)(strlen(p) < 255 ? strlen(p) : 255), p);
    }
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
            st = decoder ? run_decoder_dtype(&r, devices.items[d], dtypes.items[t], batches, n_b,
                                             seqs, n_s)
                         : run_device_dtype(&r, devices.items[d], dtypes.items[t], batches, n_b,
                                            seqs, n_s);
    double rss = peak_rss_bytes(env.hwm);
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", st ? ia_error_message() : "");
    /* the thermal state seen during the run joins the environment */
    json_object_set_new(env.env_obj, "thermal", bench_thermal_finish(&env.thermal));
    char *env_now = json_dumps(env.env_obj, JSON_COMPACT | JSON_SORT_KEYS);
    ia_status est = env_now ? bench_run_set_env(db, r.run_id, env_now) : IA_ENOMEM;
    free(env_now);
    ia_status fst = ia_bench_run_finish(db, r.run_id, !st && r.n_results ? "complete" : "failed",
                                        r.cold_start_s, rss, r.energy_j,
                                        st            ? saved
                                        : r.n_results ? NULL
                                                      : "no configuration produced a "
                                                        "result (see failures)");
    if (st)
        ia_error_set(st, "%s", saved);
    else
        st = est ? est : fst;
done:
    bench_thermal_free(&env.thermal); /* a no-op once finished */
    json_decref(cfg);
    free(devices.buf);
    free(dtypes.buf);
    ia_hw_info_free(env.hw);
    free(env.env_json);
    json_decref(env.env_obj);
    return st;
}

ia_status ia_bench_run_embeddings(ia_bench_db *db, const ia_bench_run_options *o, int64_t *run_id) {
    return run_all(db, o, false, run_id);
}

ia_status ia_bench_run(ia_bench_db *db, const ia_bench_run_options *o, int64_t *run_id) {
    *run_id = -1;
    if (!o->model)
        return ia_error_set(IA_EINVAL, "no model given");
    return run_all(db, o, ia_bench_model_is_decoder(o->model), run_id);
}
