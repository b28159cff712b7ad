/*
 * bench: measured benchmark results, kept in a database, compared with
 * statistics.
 *
 * The results database lives on SQLite (a file, the default) or PostgreSQL
 * (a libpq URL, for a team sharing one database) behind one API; the schema
 * (hardware, models, runs, results, samples, failures, meta) is the same on
 * both and versioned by migrations applied on open. A database written by a
 * newer schema is refused. Writes are transactional: a run row is created
 * first with status 'running', each configuration's result and all its
 * per-iteration samples go in one transaction, and the run ends 'complete' or
 * 'failed'. A run whose process died (pid, host and process start time are
 * recorded) is marked 'incomplete' by the next open on that host.
 *
 * The runner measures the embeddings engine (single-stream latency
 * percentiles, offline samples/s) with MLPerf LoadGen's stopping rule: after
 * a warm-up it runs until both a minimum duration and a minimum query count
 * are met. Statistics (percentiles, Mann-Whitney U, change points) are in
 * ia_stats_* and do not touch the database.
 */
#ifndef IA_BENCH_H
#define IA_BENCH_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== statistics ============================================================ */

/* The q-th percentile (0..100) of n sorted values, numpy's default
 * definition ("linear": h = (n-1)q/100, interpolate between the values at
 * floor(h) and floor(h)+1). NAN when n is 0. */
double ia_stats_percentile(const double *sorted, size_t n, double q);

typedef struct ia_stats_summary {
    size_t n;
    double mean;
    double stddev; /* sample standard deviation (ddof = 1); 0 when n < 2 */
    double min, max;
    double p50, p90, p99;
} ia_stats_summary;

/* Summarises n values (any order; x is not modified). IA_EINVAL when n is 0
 * or a value is not finite. */
ia_status ia_stats_summarize(const double *x, size_t n, ia_stats_summary *out);

typedef struct ia_stats_mwu {
    double u1;  /* U statistic of the first sample, as scipy reports it */
    double p;   /* two-sided p-value */
    bool exact; /* exact null distribution (else normal approximation) */
} ia_stats_mwu;

/* Mann-Whitney U test, two-sided, as scipy.stats.mannwhitneyu with
 * method='auto' and use_continuity=True: exact when either sample has at
 * most 8 values and there are no ties, otherwise the normal approximation
 * with tie correction and continuity correction. IA_EINVAL when a sample is
 * empty or a value is not finite; IA_ENOMEM for exact tests too large to
 * tabulate (n1 * n2 above 10^7, which 'auto' never picks). */
ia_status ia_stats_mann_whitney(const double *x, size_t n1, const double *y, size_t n2,
                                ia_stats_mwu *out);

/* Change points of a series by binary segmentation with the L2 cost (sum of
 * squared deviations from each segment's mean): a segment is split where
 * the cost drops most, if it drops by more than `penalty`, recursively.
 * penalty <= 0 picks 4 * ln(n) * sigma^2 per split, sigma^2 being the
 * larger of a robust global estimate (from the median absolute first
 * difference, which the steps themselves barely move) and the split's own
 * residual variance. In a simulation on Gaussian noise this reports a
 * spurious change in 5% of 8-point series, 2% at 16, under 0.5% from 60, and
 * finds a 5-sigma step within one index in 96-100% of series. Segments have at
 * least min_seg (>= 1; 0 means 2) points.
 * Writes up to cap indices (each the first index of a new segment) in
 * increasing order to cps and their number to *n_cps. */
ia_status ia_stats_change_points(const double *x, size_t n, double penalty, size_t min_seg,
                                 size_t *cps, size_t cap, size_t *n_cps);

/* ==== the results database ================================================== */

#define IA_BENCH_SCHEMA_VERSION 2

typedef struct ia_bench_db ia_bench_db;

/* The default URL: "sqlite:${XDG_DATA_HOME:-~/.local/share}/ipfs-accelerate/bench.db". */
ia_status ia_bench_db_default_url(char *buf, size_t cap);

/* Opens "sqlite:PATH" (or a bare path) or "postgresql://..." /
 * "postgres://...", creating the SQLite file and its directory when
 * missing, applies migrations, and marks this host's dead 'running' runs
 * 'incomplete'. Errors name the URL with any password masked. A database
 * with a newer schema version is IA_EUNSUPPORTED. *out owned by the caller
 * (ia_bench_db_close). */
ia_status ia_bench_db_open(const char *url, ia_bench_db **out);
void ia_bench_db_close(ia_bench_db *db);

/* "sqlite" or "postgresql". */
const char *ia_bench_db_engine(const ia_bench_db *db);
/* The URL as given, password masked. */
const char *ia_bench_db_url(const ia_bench_db *db);

/* Rows of a query: every cell as text (NULL for SQL NULL), row-major. */
typedef struct ia_bench_rows {
    size_t n_cols, n_rows;
    char **cols;  /* n_cols names */
    char **cells; /* n_rows * n_cols */
} ia_bench_rows;
void ia_bench_rows_free(ia_bench_rows *rows);
static inline const char *ia_bench_rows_get(const ia_bench_rows *r, size_t row, size_t col) {
    return r->cells[row * r->n_cols + col];
}

/* Runs one statement with '?' parameters (text or NULL; the engine casts
 * text to the column's type). rows may be NULL. */
ia_status ia_bench_db_query(ia_bench_db *db, const char *sql, const char *const *params,
                            size_t n_params, ia_bench_rows *rows);

/* Runs a user's statement read-only (SQLite: a read-only connection and a
 * statement SQLite itself reports read-only; PostgreSQL: a READ ONLY
 * transaction, rolled back). A write is IA_EINVAL. */
ia_status ia_bench_db_query_readonly(ia_bench_db *db, const char *sql, ia_bench_rows *rows);

/* Checks the database: SQLite's integrity_check (PostgreSQL: no-op) and the
 * schema's own rules (every result has exactly n_samples samples, every row
 * points at an existing parent, statuses are known). On a problem returns
 * IA_EPARSE with the first problem in the message. */
ia_status ia_bench_db_check(ia_bench_db *db);

/* ==== writing runs ========================================================== */

/* What a run measured and where. Strings may be NULL (stored as NULL or "");
 * the hardware row is keyed by hw_key, the model row by (model_name,
 * model_content_id). */
typedef struct ia_bench_run_info {
    const char *engine; /* "ipfs-accelerate", "llama.cpp" */
    const char *model_name, *model_content_id, *model_type, *model_family;
    int64_t model_params; /* 0: unknown */
    const char *hw_key, *cpu_model, *cpu_flags, *accelerators;
    int physical_cores, logical_cores;
    uint64_t memory_bytes;
    int threads;
    const char *governor, *build_commit, *build_flags, *command;
    const char *env_json;   /* everything else about the environment, a JSON object */
    const char *started_at; /* NULL: now (UTC, ISO 8601) */
    /* Reuse an existing hardware row whose normalised CPU model
     * (ia_bench_cpu_key) equals this cpu_model's, whatever its hw_key, before
     * creating one keyed by hw_key (imports, whose CPU and accelerator names
     * are spelled by another program). */
    bool hw_match_cpu;
} ia_bench_run_info;

/* The normalised CPU model that hardware rows are matched on: lower case,
 * without "(R)", "(TM)", "CPU", "Processor", "N-Core", a trailing
 * "@ 2.20GHz" and repeated spaces ("Intel(R) Xeon(R) CPU @ 2.20GHz" ->
 * "intel xeon", "AMD EPYC 7B13 64-Core Processor" -> "amd epyc 7b13"). */
void ia_bench_cpu_key(const char *cpu_model, char *out, size_t cap);

/* Creates the run row (status 'running', this process's pid, host and start
 * time) in its own transaction, with its hardware and model rows. */
ia_status ia_bench_run_begin(ia_bench_db *db, const ia_bench_run_info *info, int64_t *run_id);

/* Ends a run: status "complete" or "failed"; NAN for an unknown number,
 * which is stored as NULL; error may be NULL. */
ia_status ia_bench_run_finish(ia_bench_db *db, int64_t run_id, const char *status,
                              double cold_start_s, double peak_rss_bytes, double energy_j,
                              const char *error);

/* One configuration's measurement. samples are latencies in seconds: per
 * query (for offline, one query is one batch; server: from the query's
 * arrival to its completion), or per output token for metric "tpot".
 *
 * metric says what the samples are: "latency" (per query), "ttft" (time to
 * first token: prefill of seq prompt tokens plus picking the first output
 * token), "tpot" (time per output token after the first: one decode step
 * each), "server" (one rate tried by the server scenario; params_json has
 * target_rate, latency_bound_s, percentile, passed, ...). throughput_unit
 * names the throughput's unit: "samples/s" (sequences), "tokens/s"
 * (ttft: prefill tokens/s; tpot: decode tokens/s; llama-bench imports) or
 * "queries/s" (server: completed queries per second). */
typedef struct ia_bench_result {
    const char *device, *dtype, *scenario;
    int batch, seq;
    const double *samples;
    size_t n_samples;
    double throughput;           /* in throughput_unit; NAN: unknown */
    double duration_s;           /* measured wall time, warm-up excluded */
    double energy_j;             /* NAN: not readable */
    const char *metric;          /* NULL: "latency" */
    const char *throughput_unit; /* NULL: "samples/s" */
    int gen_tokens;              /* generation: output tokens per query; 0: none */
    const char *params_json;     /* scenario parameters, a JSON object; NULL: none */
} ia_bench_result;

/* Stores a result (its summary statistics computed here) with all its
 * samples in one transaction. */
ia_status ia_bench_result_add(ia_bench_db *db, int64_t run_id, const ia_bench_result *res,
                              int64_t *result_id);

/* Failure classes. */
#define IA_BENCH_FAIL_TIMEOUT "timeout"
#define IA_BENCH_FAIL_EXECUTION "execution_error"
#define IA_BENCH_FAIL_UNSUPPORTED "unsupported"

/* Stores a failed configuration (batch/seq 0 when not applicable). */
ia_status ia_bench_failure_add(ia_bench_db *db, int64_t run_id, const char *device,
                               const char *dtype, const char *scenario, int batch, int seq,
                               const char *cls, const char *message);

/* ==== the runner ============================================================ */

typedef struct ia_bench_run_options {
    const char *model;     /* a model directory (embeddings), or a decoder's directory or
                              .gguf file (generation) */
    const char *devices;   /* comma-separated; NULL: "auto" */
    const char *dtypes;    /* comma-separated; NULL: "f32" */
    const char *batches;   /* comma-separated; NULL: "1" */
    const char *seqs;      /* comma-separated; NULL: "128" (decoders: prompt tokens) */
    const char *scenario;  /* "single-stream" (default), "offline" or "server" */
    double min_duration_s; /* 0: 1 s */
    size_t min_queries;    /* 0: 10 */
    size_t warmup;         /* warm-up queries; 0 means 0 */
    double timeout_s;      /* per configuration, 0: 600 s; past it the configuration
                              fails with class timeout (checked between queries) */
    int threads;           /* 0: physical cores */
    const char *command;   /* the command line, recorded */
    /* decoders: output tokens per query (0: 64); the first is timed in TTFT, the
     * others each give a TPOT sample */
    int gen_tokens;
    /* server scenario: the latency bound (required), the percentile that must
     * meet it (0: 99), fixed rates to try (comma-separated queries/s; NULL:
     * search), the number of search steps (0: 6) and the arrival seed */
    double latency_bound_s;
    double latency_percentile;
    const char *rates;
    int search_steps;
    uint64_t seed;
    /* Progress lines ("f32 batch 8 seq 128: p50 ..."); NULL for none. */
    void (*progress)(void *ctx, const char *line);
    void *progress_ctx;
} ia_bench_run_options;

/* Runs every (device, dtype, batch, seq) configuration and stores a run
 * with its results and failures. A configuration that cannot run is stored
 * as a failure and the run continues; the run ends 'failed' only when no
 * configuration produced a result. Returns an error only when the database
 * write fails or the model cannot be read at all (the run is then 'failed'
 * with the message when it exists). *run_id is set as soon as the run row
 * exists (-1 before). */
ia_status ia_bench_run_embeddings(ia_bench_db *db, const ia_bench_run_options *opts,
                                  int64_t *run_id);

/* The model's kind decides the measurement: a decoder (a .gguf file, or a
 * directory whose config.json the registry classes as a text decoder) runs
 * generation, anything else the embeddings runner above.
 *
 * Generation (scenario single-stream): per query the KV cache is emptied, a
 * prompt of seq synthetic tokens is prefilled in one forward call and the
 * first output token picked (greedy, from the logits): that is one TTFT
 * sample; then gen_tokens - 1 decode steps (one forward call and the pick
 * each) each give one TPOT sample. Stored per configuration: a "ttft"
 * result (throughput: prefill tokens/s over all queries) and a "tpot"
 * result (throughput: decode tokens/s). batch must be 1 (one sequence).
 * dtype is the weights' type in memory: f32, f16, bf16 or a quantisation
 * type applied at load (q8_0, q4_k, ...); tensors a GGUF stores quantised
 * keep their type.
 *
 * Server (either kind): a dispatcher thread issues queries at exponentially
 * distributed inter-arrival times (a Poisson process at the target rate,
 * from a seeded RNG) into a FIFO queue drained by one worker (the engine
 * computes one query at a time, with all its threads); a query's latency runs
 * from its scheduled arrival to its completion, so queueing counts. Each
 * rate issues arrivals for the minimum duration and at least min_queries
 * (but for at most 4 x the duration); queries still queued duration + 1 s
 * after issuing stopped are abandoned and fail the rate. Without fixed
 * rates, the service time is measured (median of 5 queries) and
 * search_steps bisection steps run between 0 and the capacity it implies
 * (1 / service time), up after a pass, down after a miss. Every rate tried
 * is a "server" result; params_json "best" marks the highest that passed. */
ia_status ia_bench_run(ia_bench_db *db, const ia_bench_run_options *opts, int64_t *run_id);

/* Whether a model path is a decoder the generation runner takes. */
bool ia_bench_model_is_decoder(const char *model);

/* ==== reading: named queries, compare, regressions ========================== */

typedef struct ia_bench_filter {
    const char *model;    /* substring of the model name; NULL: any */
    const char *hardware; /* substring of the CPU model or hardware key */
    const char *dtype;    /* exact */
} ia_bench_filter;

/* "performance", "hardware", "models", "batch", "stats". */
ia_status ia_bench_query_named(ia_bench_db *db, const char *name, const ia_bench_filter *filter,
                               ia_bench_rows *rows);

/* One compared configuration. */
typedef struct ia_bench_comparison {
    char config[256]; /* "model engine device dtype scenario b=8 s=128" */
    int64_t result_a, result_b;
    size_t n_a, n_b;
    double median_a, median_b;
    double change; /* (median_b - median_a) / median_a: latency, + is slower */
    ia_stats_mwu mwu;
    bool significant; /* p < alpha and |change| >= threshold */
    bool regression;  /* significant and slower */
    /* regressions only: */
    int64_t run_id;      /* the latest run */
    size_t history_runs; /* earlier runs pooled as the baseline */
    size_t n_change_points;
    size_t last_change; /* index (in the run series, oldest first) of the last change point */
} ia_bench_comparison;

/* Compares run B against run A, per configuration present in both.
 * IA_ENOTFOUND when a run does not exist; *out owned by the caller (free). */
ia_status ia_bench_compare(ia_bench_db *db, int64_t run_a, int64_t run_b, double threshold,
                           double alpha, ia_bench_comparison **out, size_t *n);

/* For every (model, hardware, engine, configuration) whose latest complete
 * run started at or after `since` (ISO date or timestamp; NULL: any): the
 * latest result against the pooled samples of up to 5 earlier runs, plus
 * change points over the series of run medians. */
ia_status ia_bench_regressions(ia_bench_db *db, const char *since, double threshold, double alpha,
                               ia_bench_comparison **out, size_t *n);

/* ==== reports ================================================================ */

/* Writes a report of the database (filtered like the named queries) to out:
 * "md" (Markdown tables), "json" (one object: stats, performance,
 * regressions, failures) or "html" (one self-contained page with inline SVG
 * charts: throughput by configuration, latency ranges, batch scaling,
 * history with regressions and change points marked; no scripts, no
 * external assets). IA_EINVAL for another format. */
ia_status ia_bench_report_write(ia_bench_db *db, const char *format, const ia_bench_filter *filter,
                                FILE *out);

/* ==== llama-bench import ==================================================== */

/* Validates llama-bench `-o json` output (an array of test objects) without
 * writing anything: IA_EPARSE naming the entry and field otherwise. *n_tests
 * may be NULL. */
ia_status ia_bench_llama_validate(const char *text, size_t len, const char *what, size_t *n_tests);

/* Imports a llama-bench JSON file as one run of engine "llama.cpp" (results
 * and samples, all in one transaction); nothing is written when the file is
 * malformed. */
ia_status ia_bench_import_llama(ia_bench_db *db, const char *path, int64_t *run_id);
/* The same from text in memory; `what` names it in messages and is stored
 * as the run's command. */
ia_status ia_bench_import_llama_text(ia_bench_db *db, const char *text, size_t len,
                                     const char *what, int64_t *run_id);

#ifdef __cplusplus
}
#endif

#endif /* IA_BENCH_H */
