/*
 * Reading the results database: the named queries of `bench query`, run
 * comparison (`bench compare`) and regression detection (`bench
 * regressions`).
 *
 * Named queries are portable SQL over both engines (parameters are cast to
 * TEXT so that PostgreSQL knows their type when they are only compared with
 * NULL). "performance" and "batch" show, per configuration, the result of the
 * latest complete run of each (model, hardware, engine).
 *
 * Comparisons work on the stored samples (per-query latencies, seconds): a
 * configuration regressed when the Mann-Whitney U test says the two sample
 * sets differ (p < alpha) and the median moved by at least `threshold`
 * (relative) towards slower. Regression detection compares each
 * configuration's latest run with the pooled samples of up to five earlier
 * runs and also looks for change points in the series of run medians.
 */
#include "bench/bench_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_RUNS 5

/* ---- named queries ---------------------------------------------------------------- */

#define FILTERS                                         \
    " AND (CAST(? AS TEXT) IS NULL OR m.name LIKE ?)"   \
    " AND (CAST(? AS TEXT) IS NULL OR h.hw_key LIKE ?)" \
    " AND (CAST(? AS TEXT) IS NULL OR r.dtype = ?)"

#define LATEST                                                                             \
    " AND u.started_at = (SELECT MAX(u2.started_at) FROM runs u2 JOIN results r2 ON"       \
    " r2.run_id = u2.id WHERE u2.model_id = u.model_id AND u2.hardware_id = u.hardware_id" \
    " AND u2.engine = u.engine AND u2.status = 'complete' AND r2.device = r.device"        \
    " AND r2.dtype = r.dtype AND r2.scenario = r.scenario AND r2.batch = r.batch"          \
    " AND r2.seq = r.seq AND r2.metric = r.metric)"

#define FROM_RESULTS                                                                    \
    " FROM results r JOIN runs u ON u.id = r.run_id JOIN models m ON m.id = u.model_id" \
    " JOIN hardware h ON h.id = u.hardware_id WHERE u.status = 'complete'"

static const struct named_query {
    const char *name, *sql;
    int filtered; /* takes the 6 filter parameters */
} named_queries[] = {
    {"performance",
     "SELECT m.name AS model, m.family, h.cpu_model AS hardware, u.engine, r.device, r.dtype,"
     " r.scenario, r.metric, r.batch, r.seq, r.gen_tokens, r.p50 * 1000 AS p50_ms,"
     " r.p90 * 1000 AS p90_ms, r.p99 * 1000 AS p99_ms, r.mean * 1000 AS mean_ms,"
     " r.throughput, r.throughput_unit AS unit, r.n_samples, u.id AS run_id,"
     " u.started_at, r.params_json AS params" FROM_RESULTS FILTERS LATEST
     " ORDER BY m.name, h.cpu_model, u.engine, r.device, r.dtype, r.scenario, r.metric,"
     " r.batch, r.seq, r.id",
     1},
    {"batch",
     "SELECT m.name AS model, h.cpu_model AS hardware, u.engine, r.dtype, r.scenario,"
     " r.metric, r.seq, r.batch, r.throughput, r.throughput_unit AS unit,"
     " r.p50 * 1000 AS p50_ms, u.id AS run_id"
     " " FROM_RESULTS FILTERS LATEST " AND r.metric <> 'server'"
     " ORDER BY m.name, h.cpu_model, u.engine, r.dtype, r.scenario, r.metric, r.seq, r.batch",
     1},
    {"hardware",
     "SELECT h.id, h.cpu_model, h.physical_cores, h.logical_cores, h.memory_bytes,"
     " h.accelerators, COUNT(u.id) AS runs, MAX(u.started_at) AS last_run"
     " FROM hardware h LEFT JOIN runs u ON u.hardware_id = h.id"
     " LEFT JOIN models m ON m.id = u.model_id WHERE 1 = 1"
     " AND (CAST(? AS TEXT) IS NULL OR m.name LIKE ?)"
     " AND (CAST(? AS TEXT) IS NULL OR h.hw_key LIKE ?)"
     " GROUP BY h.id, h.cpu_model, h.physical_cores, h.logical_cores, h.memory_bytes,"
     " h.accelerators ORDER BY h.id",
     2},
    {"models",
     "SELECT m.id, m.name, m.family, m.model_type, m.params, m.content_id, COUNT(u.id) AS runs,"
     " MAX(u.started_at) AS last_run FROM models m LEFT JOIN runs u ON u.model_id = m.id"
     " LEFT JOIN hardware h ON h.id = u.hardware_id WHERE 1 = 1"
     " AND (CAST(? AS TEXT) IS NULL OR m.name LIKE ?)"
     " AND (CAST(? AS TEXT) IS NULL OR h.hw_key LIKE ?)"
     " GROUP BY m.id, m.name, m.family, m.model_type, m.params, m.content_id ORDER BY m.id",
     2},
};

static ia_status query_stats(ia_bench_db *db, ia_bench_rows *rows) {
    static const char *const names[] = {"item", "value"};
    static const struct {
        const char *item, *sql;
    } items[] = {
        {"hardware", "SELECT COUNT(*) FROM hardware"},
        {"models", "SELECT COUNT(*) FROM models"},
        {"runs", "SELECT COUNT(*) FROM runs"},
        {"runs_complete", "SELECT COUNT(*) FROM runs WHERE status = 'complete'"},
        {"runs_failed", "SELECT COUNT(*) FROM runs WHERE status = 'failed'"},
        {"runs_incomplete", "SELECT COUNT(*) FROM runs WHERE status = 'incomplete'"},
        {"runs_running", "SELECT COUNT(*) FROM runs WHERE status = 'running'"},
        {"results", "SELECT COUNT(*) FROM results"},
        {"samples", "SELECT COUNT(*) FROM samples"},
        {"failures", "SELECT COUNT(*) FROM failures"},
    };
    ia_status st = bench_rows_init(rows, 2, names);
    char v[32];
    const char *cells[2];
    cells[0] = "engine";
    cells[1] = ia_bench_db_engine(db);
    if (!st)
        st = bench_rows_append(rows, cells);
    snprintf(v, sizeof v, "%d", db->version);
    cells[0] = "schema_version";
    cells[1] = v;
    if (!st)
        st = bench_rows_append(rows, cells);
    for (size_t i = 0; !st && i < sizeof items / sizeof items[0]; i++) {
        int64_t n = 0;
        if ((st = bench_query_int(db, items[i].sql, NULL, 0, &n)))
            break;
        snprintf(v, sizeof v, "%lld", (long long)n);
        cells[0] = items[i].item;
        st = bench_rows_append(rows, cells);
    }
    if (st)
        ia_bench_rows_free(rows);
    return st;
}

ia_status ia_bench_query_named(ia_bench_db *db, const char *name, const ia_bench_filter *filter,
                               ia_bench_rows *rows) {
    memset(rows, 0, sizeof *rows);
    if (strcmp(name, "stats") == 0)
        return query_stats(db, rows);
    ia_bench_filter none = {0};
    if (!filter)
        filter = &none;
    char model_like[300], hw_like[300];
    snprintf(model_like, sizeof model_like, "%%%s%%", filter->model ? filter->model : "");
    snprintf(hw_like, sizeof hw_like, "%%%s%%", filter->hardware ? filter->hardware : "");
    const char *p[] = {filter->model, model_like,    filter->hardware,
                       hw_like,       filter->dtype, filter->dtype};
    for (size_t i = 0; i < sizeof named_queries / sizeof named_queries[0]; i++)
        if (strcmp(named_queries[i].name, name) == 0)
            return ia_bench_db_query(db, named_queries[i].sql, p,
                                     named_queries[i].filtered == 1 ? 6 : 4, rows);
    return ia_error_set(IA_EINVAL,
                        "unknown query '%s' (performance, hardware, models, batch, stats)", name);
}

/* ---- samples and comparisons ---------------------------------------------------------- */

static ia_status load_samples(ia_bench_db *db, const char *result_id, double **out, size_t *n) {
    ia_bench_rows rows = {0};
    const char *p[] = {result_id};
    *out = NULL;
    *n = 0;
    ia_status st = ia_bench_db_query(
        db, "SELECT value FROM samples WHERE result_id = ? ORDER BY idx", p, 1, &rows);
    if (st)
        return st;
    if (rows.n_rows && !(*out = ia_malloc_array(rows.n_rows, sizeof **out)))
        st = IA_ENOMEM;
    for (size_t i = 0; !st && i < rows.n_rows; i++)
        (*out)[i] = rows.cells[i] ? strtod(rows.cells[i], NULL) : NAN;
    if (!st)
        *n = rows.n_rows;
    ia_bench_rows_free(&rows);
    return st;
}

static double median_of(const double *x, size_t n) {
    ia_stats_summary s;
    return ia_stats_summarize(x, n, &s) == IA_OK ? s.p50 : NAN;
}

/* Fills the statistics of one comparison from baseline a and candidate b. */
static ia_status compare_samples(const double *a, size_t n_a, const double *b, size_t n_b,
                                 double threshold, double alpha, ia_bench_comparison *c) {
    c->n_a = n_a;
    c->n_b = n_b;
    c->median_a = median_of(a, n_a);
    c->median_b = median_of(b, n_b);
    c->change = (c->median_b - c->median_a) / c->median_a;
    ia_status st = ia_stats_mann_whitney(a, n_a, b, n_b, &c->mwu);
    if (st)
        return st;
    c->significant = c->mwu.p < alpha && fabs(c->change) >= threshold;
    c->regression = c->significant && c->change > 0;
    return IA_OK;
}

static ia_status push(ia_bench_comparison **list, size_t *n, size_t *cap,
                      const ia_bench_comparison *c) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 16;
        ia_bench_comparison *g = ia_realloc_array(*list, nc, sizeof *g);
        if (!g)
            return IA_ENOMEM;
        *list = g;
        *cap = nc;
    }
    (*list)[(*n)++] = *c;
    return IA_OK;
}

/* Columns 0 result id, 1-9 the configuration. Server results (one per rate
 * tried, rates differing between runs) are not compared. */
#define RESULT_COLS                                                                           \
    "SELECT r.id, m.name, u.engine, r.device, r.dtype, r.scenario, r.batch, r.seq, r.metric," \
    " r.gen_tokens"
#define COMPARED " AND r.metric <> 'server'"

/* "model engine device dtype scenario b=B s=S", then the metric unless it
 * is latency ("ttft", "tpot") and g=N for generation. */
static void config_name(const ia_bench_rows *rows, size_t i, char *out, size_t cap) {
    const char *metric = ia_bench_rows_get(rows, i, 8);
    const char *gen = ia_bench_rows_get(rows, i, 9);
    bool lat = !metric || strcmp(metric, "latency") == 0;
    snprintf(out, cap, "%s %s %s %s %s b=%s s=%s%s%s%s%s", ia_bench_rows_get(rows, i, 1),
             ia_bench_rows_get(rows, i, 2), ia_bench_rows_get(rows, i, 3),
             ia_bench_rows_get(rows, i, 4), ia_bench_rows_get(rows, i, 5),
             ia_bench_rows_get(rows, i, 6), ia_bench_rows_get(rows, i, 7), gen ? " g=" : "",
             gen ? gen : "", lat ? "" : " ", lat ? "" : metric);
}

ia_status ia_bench_compare(ia_bench_db *db, int64_t run_a, int64_t run_b, double threshold,
                           double alpha, ia_bench_comparison **out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    ia_bench_rows ra = {0}, rb = {0};
    char ida[24], idb[24];
    snprintf(ida, sizeof ida, "%lld", (long long)run_a);
    snprintf(idb, sizeof idb, "%lld", (long long)run_b);
    ia_status st = IA_OK;
    const char *ids[2] = {ida, idb};
    for (int k = 0; k < 2; k++) {
        int64_t exists = 0;
        const char *p[] = {ids[k]};
        st = bench_query_int(db, "SELECT COUNT(*) FROM runs WHERE id = ?", p, 1, &exists);
        if (!st && !exists)
            st = ia_error_set(IA_ENOTFOUND, "%s: no run %s", db->url, ids[k]);
        if (st)
            goto fail;
    }
    const char *pa[] = {ida}, *pb[] = {idb};
    if ((st = ia_bench_db_query(db, RESULT_COLS FROM_RESULTS COMPARED " AND r.run_id = ?", pa, 1,
                                &ra)) ||
        (st = ia_bench_db_query(db, RESULT_COLS FROM_RESULTS COMPARED " AND r.run_id = ?", pb, 1,
                                &rb)))
        goto fail;
    /* FROM_RESULTS keeps complete runs only; say so rather than compare nothing. */
    if (!ra.n_rows || !rb.n_rows) {
        st = ia_error_set(IA_ENOTFOUND, "run %s has no results of a complete run",
                          !ra.n_rows ? ida : idb);
        goto fail;
    }
    for (size_t i = 0; i < rb.n_rows && !st; i++) {
        char cfg_b[256], cfg_a[256];
        config_name(&rb, i, cfg_b, sizeof cfg_b);
        for (size_t j = 0; j < ra.n_rows && !st; j++) {
            config_name(&ra, j, cfg_a, sizeof cfg_a);
            /* Same model, engine, device, dtype, scenario, batch and seq. */
            if (strcmp(cfg_a, cfg_b) != 0)
                continue;
            double *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            ia_bench_comparison c = {0};
            snprintf(c.config, sizeof c.config, "%s", cfg_b);
            c.result_a = strtoll(ia_bench_rows_get(&ra, j, 0), NULL, 10);
            c.result_b = strtoll(ia_bench_rows_get(&rb, i, 0), NULL, 10);
            c.run_id = run_b;
            if (!(st = load_samples(db, ia_bench_rows_get(&ra, j, 0), &a, &na)) &&
                !(st = load_samples(db, ia_bench_rows_get(&rb, i, 0), &b, &nb)) &&
                !(st = compare_samples(a, na, b, nb, threshold, alpha, &c)))
                st = push(out, n, &cap, &c);
            free(a);
            free(b);
        }
    }
    if (!st && *n == 0)
        st = ia_error_set(IA_ENOTFOUND, "runs %s and %s have no configuration in common", ida, idb);
    if (st)
        goto fail;
    ia_bench_rows_free(&ra);
    ia_bench_rows_free(&rb);
    return IA_OK;
fail:
    ia_bench_rows_free(&ra);
    ia_bench_rows_free(&rb);
    free(*out);
    *out = NULL;
    *n = 0;
    return st;
}

/* One configuration's series, oldest first: rows [first, first + count). */
static ia_status regress_one(ia_bench_db *db, const ia_bench_rows *rows, size_t first, size_t count,
                             double threshold, double alpha, ia_bench_comparison *c) {
    size_t last = first + count - 1;
    size_t n_hist = count - 1 < HISTORY_RUNS ? count - 1 : HISTORY_RUNS;
    double *pool = NULL, *latest = NULL, *medians = NULL;
    size_t n_pool = 0, n_latest = 0;
    ia_status st = IA_OK;
    memset(c, 0, sizeof *c);
    config_name(rows, last, c->config, sizeof c->config);
    c->result_b = strtoll(ia_bench_rows_get(rows, last, 0), NULL, 10);
    c->run_id = strtoll(ia_bench_rows_get(rows, last, 10), NULL, 10);
    c->history_runs = n_hist;
    if (!(medians = ia_malloc_array(count, sizeof *medians))) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        const char *p50 = ia_bench_rows_get(rows, first + i, 11);
        medians[i] = p50 ? strtod(p50, NULL) : NAN;
    }
    if ((st = load_samples(db, ia_bench_rows_get(rows, last, 0), &latest, &n_latest)))
        goto done;
    for (size_t h = last - n_hist; h < last; h++) {
        double *s = NULL;
        size_t ns = 0;
        if ((st = load_samples(db, ia_bench_rows_get(rows, h, 0), &s, &ns)))
            goto done;
        double *g = ns ? ia_realloc_array(pool, n_pool + ns, sizeof *g) : pool;
        if (ns && !g) {
            free(s);
            st = IA_ENOMEM;
            goto done;
        }
        pool = g;
        if (ns)
            memcpy(pool + n_pool, s, ns * sizeof *s);
        n_pool += ns;
        free(s);
    }
    if (n_hist && n_pool && n_latest) {
        st = compare_samples(pool, n_pool, latest, n_latest, threshold, alpha, c);
        c->run_id = strtoll(ia_bench_rows_get(rows, last, 10), NULL, 10);
        if (st)
            goto done;
    } else {
        c->n_b = n_latest;
        c->median_b = medians[count - 1];
        c->median_a = NAN;
        c->change = NAN;
        c->mwu.p = NAN;
    }
    size_t cps[64], n_cps = 0;
    bool finite = true;
    for (size_t i = 0; i < count; i++)
        finite = finite && isfinite(medians[i]);
    if (finite && (st = ia_stats_change_points(medians, count, 0, 2, cps, 64, &n_cps)))
        goto done;
    c->n_change_points = n_cps;
    c->last_change = n_cps ? cps[n_cps - 1] : 0;
done:
    free(pool);
    free(latest);
    free(medians);
    return st;
}

ia_status ia_bench_regressions(ia_bench_db *db, const char *since, double threshold, double alpha,
                               ia_bench_comparison **out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    ia_bench_rows rows = {0};
    /* Columns: 0 result id, 1-9 config (as RESULT_COLS), 10 run id, 11 p50,
     * 12 started_at, 13 model id, 14 hardware id. */
    ia_status st = ia_bench_db_query(
        db,
        RESULT_COLS ", u.id, r.p50, u.started_at, u.model_id, u.hardware_id" FROM_RESULTS COMPARED
                    " ORDER BY u.model_id, u.hardware_id, u.engine, r.device, r.dtype, "
                    "r.scenario, r.batch, r.seq, r.metric, r.gen_tokens, u.started_at, u.id",
        NULL, 0, &rows);
    if (st)
        return st;
    for (size_t i = 0; i < rows.n_rows && !st;) {
        size_t j = i + 1;
        char key_i[300], key_j[300];
        config_name(&rows, i, key_i, sizeof key_i);
        size_t kl = strlen(key_i);
        snprintf(key_i + kl, sizeof key_i - kl, " %s %s", ia_bench_rows_get(&rows, i, 13),
                 ia_bench_rows_get(&rows, i, 14));
        for (; j < rows.n_rows; j++) {
            config_name(&rows, j, key_j, sizeof key_j);
            kl = strlen(key_j);
            snprintf(key_j + kl, sizeof key_j - kl, " %s %s", ia_bench_rows_get(&rows, j, 13),
                     ia_bench_rows_get(&rows, j, 14));
            if (strcmp(key_i, key_j) != 0)
                break;
        }
        const char *latest_at = ia_bench_rows_get(&rows, j - 1, 12);
        if (!since || (latest_at && strcmp(latest_at, since) >= 0)) {
            ia_bench_comparison c;
            if (!(st = regress_one(db, &rows, i, j - i, threshold, alpha, &c)))
                st = push(out, n, &cap, &c);
        }
        i = j;
    }
    ia_bench_rows_free(&rows);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}
