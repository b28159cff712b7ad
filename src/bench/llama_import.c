/*
 * `bench import`: llama-bench's `-o json` output stored side by side with
 * our own runs, as runs of engine "llama.cpp".
 *
 * llama-bench writes an array of test objects (build_commit, cpu_info,
 * gpu_info, backends, model_filename, model_type, model_size,
 * model_n_params, n_threads, n_prompt, n_gen, test_time, avg_ns, avg_ts,
 * samples_ns, samples_ts, ...). Tests are grouped into one run per
 * (model_filename, n_threads, cpu_info, gpu_info); each test becomes a
 * result whose samples are its repetitions' times in seconds (samples_ns /
 * 1e9) and whose throughput is llama-bench's avg_ts (throughput_unit
 * "tokens/s", where our embeddings runs store samples/s). Scenario:
 * "llama-pp" (prompt only), "llama-tg" (generation only) or "llama-pg"
 * (both); seq is the tokens processed, batch 1. The dtype is the last word
 * of model_type ("llama 7B Q4_0" -> "q4_0").
 *
 * The hardware row is the one of our own runs on the same CPU when there is
 * one (matched on the normalised CPU model, ia_bench_cpu_key: llama.cpp
 * names the CPU and the accelerators its own way), else a row of its own.
 *
 * The whole file is validated before anything is written, and everything is
 * written in one transaction: a malformed file changes nothing.
 */
#include "bench/bench_internal.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_MAX_BYTES (64u << 20)
#define MAX_SAMPLES 1000000

static const char *jstr(const json_t *o, const char *key, const char *dflt) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static json_int_t jint(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Checks one test object; the message names the entry and the field. */
static ia_status check_test(const json_t *t, size_t i, const char *what) {
    if (!json_is_object(t))
        return ia_error_set(IA_EPARSE, "%s: entry %zu is not an object", what, i);
    static const char *const strings[] = {"model_filename"};
    static const char *const ints[] = {"n_prompt", "n_gen"};
    static const char *const opt_strings[] = {"build_commit", "cpu_info",   "gpu_info",
                                              "backends",     "model_type", "test_time"};
    for (size_t k = 0; k < sizeof strings / sizeof strings[0]; k++)
        if (!json_is_string(json_object_get(t, strings[k])))
            return ia_error_set(IA_EPARSE, "%s: entry %zu: '%s' is missing or not a string", what,
                                i, strings[k]);
    for (size_t k = 0; k < sizeof opt_strings / sizeof opt_strings[0]; k++) {
        const json_t *v = json_object_get(t, opt_strings[k]);
        if (v && !json_is_string(v))
            return ia_error_set(IA_EPARSE, "%s: entry %zu: '%s' is not a string", what, i,
                                opt_strings[k]);
    }
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        const json_t *v = json_object_get(t, ints[k]);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 24)
            return ia_error_set(IA_EPARSE, "%s: entry %zu: '%s' is missing or not a token count",
                                what, i, ints[k]);
    }
    if (jint(t, "n_prompt") + jint(t, "n_gen") == 0)
        return ia_error_set(IA_EPARSE, "%s: entry %zu: n_prompt and n_gen are both 0", what, i);
    const json_t *nt = json_object_get(t, "n_threads");
    if (nt &&
        (!json_is_integer(nt) || json_integer_value(nt) < 0 || json_integer_value(nt) > 1 << 20))
        return ia_error_set(IA_EPARSE, "%s: entry %zu: 'n_threads' is not a thread count", what, i);
    const json_t *ts = json_object_get(t, "avg_ts");
    if (!json_is_number(ts) || !isfinite(json_number_value(ts)) || json_number_value(ts) < 0)
        return ia_error_set(IA_EPARSE, "%s: entry %zu: 'avg_ts' is missing or not a rate", what, i);
    const json_t *s = json_object_get(t, "samples_ns");
    if (!json_is_array(s) || json_array_size(s) == 0 || json_array_size(s) > MAX_SAMPLES)
        return ia_error_set(
            IA_EPARSE, "%s: entry %zu: 'samples_ns' is missing or not a non-empty array", what, i);
    for (size_t k = 0; k < json_array_size(s); k++) {
        const json_t *v = json_array_get(s, k);
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0)
            return ia_error_set(
                IA_EPARSE, "%s: entry %zu: samples_ns[%zu] is not a positive number", what, i, k);
    }
    return IA_OK;
}

static ia_status parse_tests(const char *text, size_t len, const char *what, json_t **out) {
    json_t *root = NULL;
    ia_status st = ia_json_parse(text, len, what, &root);
    if (st)
        return st;
    if (!json_is_array(root) || json_array_size(root) == 0) {
        json_decref(root);
        return ia_error_set(IA_EPARSE,
                            "%s: not llama-bench JSON (expected a non-empty array of tests; "
                            "make it with llama-bench -o json)",
                            what);
    }
    for (size_t i = 0; i < json_array_size(root); i++)
        if ((st = check_test(json_array_get(root, i), i, what))) {
            json_decref(root);
            return st;
        }
    *out = root;
    return IA_OK;
}

ia_status ia_bench_llama_validate(const char *text, size_t len, const char *what, size_t *n_tests) {
    json_t *root = NULL;
    ia_status st = parse_tests(text, len, what, &root);
    if (!st && n_tests)
        *n_tests = json_array_size(root);
    json_decref(root);
    return st;
}

/* The run that a test belongs to. */
static void group_key(const json_t *t, char *out, size_t cap) {
    snprintf(out, cap, "%s\x1f%lld\x1f%s\x1f%s", jstr(t, "model_filename", ""),
             (long long)jint(t, "n_threads"), jstr(t, "cpu_info", ""), jstr(t, "gpu_info", ""));
}

/* The weight type in llama-bench's model_type ("llama 7B Q4_K - Medium" ->
 * "q4_k", "llama ?B all F32" -> "f32"): the last word that looks like a
 * ggml type name (f32, f16, bf16, qN..., iqN..., tqN...); "unknown" if none. */
static void model_dtype(const char *mt, char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    const char *p = mt;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        size_t pre = 0;
        char w0 = (char)tolower((unsigned char)p[0]);
        char w1 = len > 1 ? (char)tolower((unsigned char)p[1]) : 0;
        if (w0 == 'f' || w0 == 'q')
            pre = 1;
        else if ((w0 == 'b' && w1 == 'f') || (w0 == 'i' && w1 == 'q') || (w0 == 't' && w1 == 'q'))
            pre = 2;
        if (pre && len > pre && len < cap && isdigit((unsigned char)p[pre])) {
            for (size_t i = 0; i < len; i++)
                out[i] = (char)tolower((unsigned char)p[i]);
            out[len] = '\0';
        }
        p += len;
    }
}

static ia_status import_test(ia_bench_db *db, int64_t run_id, const json_t *t) {
    const json_t *s = json_object_get(t, "samples_ns");
    size_t n = json_array_size(s);
    double *samples = ia_malloc_array(n, sizeof *samples);
    if (!samples)
        return IA_ENOMEM;
    double total = 0;
    for (size_t k = 0; k < n; k++) {
        samples[k] = json_number_value(json_array_get(s, k)) * 1e-9;
        total += samples[k];
    }
    json_int_t np = jint(t, "n_prompt"), ng = jint(t, "n_gen");
    char device[64], dtype[32];
    snprintf(device, sizeof device, "%s", jstr(t, "backends", "cpu"));
    for (char *p = device; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    model_dtype(jstr(t, "model_type", ""), dtype, sizeof dtype);
    ia_bench_result res = {
        .device = device,
        .dtype = dtype,
        .scenario = ng == 0   ? "llama-pp"
                    : np == 0 ? "llama-tg"
                              : "llama-pg",
        .batch = 1,
        .seq = (int)(np + ng),
        .samples = samples,
        .n_samples = n,
        .throughput = json_number_value(json_object_get(t, "avg_ts")),
        .duration_s = total,
        .energy_j = NAN,
        .metric = "latency",
        .throughput_unit = "tokens/s",
    };
    ia_status st = bench_result_insert(db, run_id, &res, NULL);
    free(samples);
    return st;
}

ia_status ia_bench_import_llama(ia_bench_db *db, const char *path, int64_t *run_id) {
    char *text = NULL;
    size_t len = 0;
    *run_id = -1;
    ia_status st = ia_file_read_all(path, IMPORT_MAX_BYTES, &text, &len);
    if (st)
        return st;
    st = ia_bench_import_llama_text(db, text, len, path, run_id);
    free(text);
    return st;
}

ia_status ia_bench_import_llama_text(ia_bench_db *db, const char *text, size_t len,
                                     const char *path, int64_t *run_id) {
    json_t *root = NULL;
    bool *done = NULL;
    *run_id = -1;
    ia_status st;
    if ((st = parse_tests(text, len, path, &root)))
        goto out;
    size_t n = json_array_size(root);
    if (!(done = ia_calloc(n, sizeof *done))) {
        st = IA_ENOMEM;
        goto out;
    }
    if ((st = bench_begin(db, false)))
        goto out;
    for (size_t i = 0; i < n && !st; i++) {
        if (done[i])
            continue;
        const json_t *t = json_array_get(root, i);
        char key[1024], other[1024], hw_key[512], threads_env[64];
        group_key(t, key, sizeof key);
        const char *fname = jstr(t, "model_filename", "");
        const char *base = strrchr(fname, '/');
        snprintf(hw_key, sizeof hw_key, "%s|%s", jstr(t, "cpu_info", "unknown"),
                 jstr(t, "gpu_info", ""));
        snprintf(threads_env, sizeof threads_env, "{\"source\":\"llama-bench\"}");
        const json_t *params = json_object_get(t, "model_n_params");
        if (!params)
            params = json_object_get(t, "n_params");
        ia_bench_run_info info = {
            .engine = "llama.cpp",
            .model_name = base ? base + 1 : fname,
            .model_content_id = "",
            .model_type = jstr(t, "model_type", NULL),
            .model_family = "text-decoder",
            .model_params = json_is_integer(params) ? (int64_t)json_integer_value(params) : 0,
            .hw_key = hw_key,
            .cpu_model = jstr(t, "cpu_info", NULL),
            .accelerators = jstr(t, "gpu_info", NULL),
            .threads = (int)jint(t, "n_threads"),
            .build_commit = jstr(t, "build_commit", NULL),
            .build_flags = jstr(t, "backends", NULL),
            .command = path,
            .env_json = threads_env,
            .started_at = jstr(t, "test_time", NULL),
            .hw_match_cpu = true,
        };
        int64_t rid;
        if ((st = bench_run_insert(db, &info, "complete", &rid)))
            break;
        if (*run_id < 0)
            *run_id = rid;
        for (size_t j = i; j < n && !st; j++) {
            group_key(json_array_get(root, j), other, sizeof other);
            if (done[j] || strcmp(key, other) != 0)
                continue;
            done[j] = true;
            st = import_test(db, rid, json_array_get(root, j));
        }
    }
    if (!st)
        st = bench_commit(db);
    if (st) {
        bench_rollback(db);
        ia_error_prefix("%s: nothing imported", path);
        *run_id = -1;
    }
out:
    free(done);
    json_decref(root);
    return st;
}
