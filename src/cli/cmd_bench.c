/*
 * `ipfs-accelerate bench`: run benchmarks into the results database and
 * read them back.
 *
 *   bench run --model M [...]          measure embeddings or generation, store a run
 *   bench query NAME [filters]         performance | hardware | models | batch | stats,
 *                                      or --sql "SELECT ..." (read-only)
 *   bench compare RUN_A RUN_B          exit 1 when B is significantly slower than A
 *   bench regressions [--since DATE]   exit 1 when a latest run regressed
 *   bench import FILE.json             llama-bench -o json output
 *   bench report [--format md|json|html] [-o FILE]
 *
 * Every subcommand takes --db URL (sqlite:PATH or postgresql://...). Tables
 * go to stdout (--format table|json|csv), progress and errors to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/bench.h"

static const char bench_usage[] =
    "usage: ipfs-accelerate bench COMMAND [options]\n"
    "\n"
    "  run --model M         measure the model (embeddings, or generation for a decoder)\n"
    "                        and store the run\n"
    "  query NAME            performance | hardware | models | batch | stats\n"
    "  query --sql \"SELECT ...\"  any read-only SQL\n"
    "  compare RUN_A RUN_B   per configuration: Mann-Whitney U + median change;\n"
    "                        exit 1 when RUN_B is significantly slower\n"
    "  regressions           each configuration's latest run against its history;\n"
    "                        exit 1 when any regressed\n"
    "  import FILE           llama-bench -o json output, as runs of engine llama.cpp\n"
    "  report                the database as Markdown, JSON or self-contained HTML with\n"
    "                        inline SVG charts (--format md|json|html, -o FILE)\n"
    "\n"
    "options for every command:\n"
    "  --db URL              sqlite:PATH or postgresql://... (default:\n"
    "                        sqlite:${XDG_DATA_HOME:-~/.local/share}/ipfs-accelerate/bench.db)\n"
    "  --format F            table (default), json or csv (report: md, json or html)\n"
    "  -o, --output FILE     report: write to FILE instead of stdout\n"
    "run:\n"
    "  --model M             HF model directory (sentence-transformers embeddings), or a\n"
    "                        decoder (a .gguf file or an HF decoder directory): generation\n"
    "  --device D[,D...]     auto (default), cpu, cuda:0, ...\n"
    "  --dtype T[,T...]      f32 (default), f16, bf16; decoders also take a quantisation\n"
    "                        applied at load (q8_0, q4_k, ...; tensors a GGUF stores\n"
    "                        quantised keep their type); others are stored as unsupported\n"
    "  --batch N[,N...]      sequences per query (default 1; decoders: 1 only)\n"
    "  --seq N[,N...]        tokens per sequence (default 128); decoders: prompt tokens\n"
    "  --gen-tokens N        decoders: output tokens per query (default 64); records TTFT\n"
    "                        (prefill + first token), TPOT (each later token), prefill and\n"
    "                        decode tokens/s\n"
    "  --scenario S          single-stream (default: latency percentiles), offline\n"
    "                        (samples/s; embeddings only) or server (Poisson arrivals:\n"
    "                        the highest rate whose latency percentile meets the bound)\n"
    "  --latency-bound-ms X  server: the bound (required)\n"
    "  --latency-percentile P  server: the percentile held to the bound (default 99)\n"
    "  --rate R[,R...]       server: try these rates (queries/s) instead of searching\n"
    "  --search-steps N      server: bisection steps between 0 and the capacity (default 6)\n"
    "  --seed N              server: seed of the arrival times (default 1)\n"
    "  --duration S          minimum measured seconds per configuration (default 1);\n"
    "                        server: seconds of arrivals per rate\n"
    "  --min-queries N       minimum measured queries per configuration (default 10)\n"
    "  --warmup N            warm-up queries, not measured (default 2)\n"
    "  --timeout S           per-configuration limit (default 600): past it, a timeout failure\n"
    "  --threads N           worker threads (default: physical cores)\n"
    "  --json                print the stored run as JSON (same as --format json)\n"
    "query:\n"
    "  --model M --hardware H --dtype T   filters (substrings of the model name and\n"
    "                        hardware; exact dtype)\n"
    "compare, regressions:\n"
    "  --threshold X         minimum relative median change (default 0.05)\n"
    "  --alpha A             significance level (default 0.01)\n"
    "  --since DATE          regressions: only configurations whose latest run started\n"
    "                        at or after DATE (ISO 8601, UTC)\n";

typedef enum out_format { OUT_TABLE, OUT_JSON, OUT_CSV } out_format;

typedef struct bench_args {
    const char *db, *model, *device, *dtype, *batch, *seq, *scenario, *hardware, *sql, *since;
    const char *format_name, *output;
    double duration, threshold, alpha, timeout, bound_ms, percentile;
    long min_queries, warmup, threads, gen_tokens, steps, seed;
    const char *rates;
    out_format format;
    int n_pos;
    char **pos;
} bench_args;

/* ---- output ------------------------------------------------------------------------ */

/* A number stored as text, shown shorter in tables. */
static const char *table_cell(const char *s, char *buf, size_t cap) {
    if (!s)
        return "";
    char *end;
    double v = strtod(s, &end);
    if (*s && !*end && strchr(s, '.') && isfinite(v)) {
        snprintf(buf, cap, "%.4g", v);
        return buf;
    }
    return s;
}

static void csv_cell(FILE *f, const char *s) {
    if (!s)
        return;
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON value of a cell: numbers stay numbers, NULL is null. */
static json_t *json_cell(const char *s) {
    if (!s)
        return json_null();
    char *end;
    double v = strtod(s, &end);
    if (*s && !*end && isfinite(v) && strspn(s, "0123456789-+.eE") == strlen(s)) {
        if (!strpbrk(s, ".eE")) {
            long long i = strtoll(s, &end, 10);
            if (!*end)
                return json_integer(i);
        }
        return json_real(v);
    }
    return json_string(s);
}

static int print_rows(const ia_bench_rows *rows, out_format format) {
    if (format == OUT_JSON) {
        json_t *arr = json_array();
        for (size_t r = 0; r < rows->n_rows; r++) {
            json_t *o = json_object();
            for (size_t c = 0; c < rows->n_cols; c++)
                json_object_set_new(o, rows->cols[c], json_cell(ia_bench_rows_get(rows, r, c)));
            json_array_append_new(arr, o);
        }
        json_dumpf(arr, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(arr);
    } else if (format == OUT_CSV) {
        for (size_t c = 0; c < rows->n_cols; c++) {
            if (c)
                fputc(',', stdout);
            csv_cell(stdout, rows->cols[c]);
        }
        fputc('\n', stdout);
        for (size_t r = 0; r < rows->n_rows; r++) {
            for (size_t c = 0; c < rows->n_cols; c++) {
                if (c)
                    fputc(',', stdout);
                csv_cell(stdout, ia_bench_rows_get(rows, r, c));
            }
            fputc('\n', stdout);
        }
    } else {
        size_t *w = calloc(rows->n_cols ? rows->n_cols : 1, sizeof *w);
        char buf[64];
        if (!w)
            return 1;
        for (size_t c = 0; c < rows->n_cols; c++) {
            w[c] = strlen(rows->cols[c]);
            for (size_t r = 0; r < rows->n_rows; r++) {
                size_t l = strlen(table_cell(ia_bench_rows_get(rows, r, c), buf, sizeof buf));
                w[c] = l > w[c] ? (l > 72 ? 72 : l) : w[c];
            }
        }
        for (size_t c = 0; c < rows->n_cols; c++)
            printf("%-*s%s", (int)w[c], rows->cols[c], c + 1 < rows->n_cols ? "  " : "\n");
        for (size_t r = 0; r < rows->n_rows; r++)
            for (size_t c = 0; c < rows->n_cols; c++)
                printf("%-*.*s%s", (int)w[c], (int)w[c],
                       table_cell(ia_bench_rows_get(rows, r, c), buf, sizeof buf),
                       c + 1 < rows->n_cols ? "  " : "\n");
        if (!rows->n_rows)
            printf("(no rows)\n");
        free(w);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- options ---------------------------------------------------------------------------- */

static int parse_args(const char *cmd, bool report, int argc, char **argv, bench_args *a) {
    static const struct option options[] = {
        {"db", required_argument, NULL, 'b'},
        {"model", required_argument, NULL, 'm'},
        {"device", required_argument, NULL, 'D'},
        {"dtype", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'B'},
        {"seq", required_argument, NULL, 'S'},
        {"scenario", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'u'},
        {"min-queries", required_argument, NULL, 'q'},
        {"warmup", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 'T'},
        {"threads", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"format", required_argument, NULL, 'f'},
        {"hardware", required_argument, NULL, 'H'},
        {"sql", required_argument, NULL, 'Q'},
        {"threshold", required_argument, NULL, 'x'},
        {"alpha", required_argument, NULL, 'a'},
        {"since", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"gen-tokens", required_argument, NULL, 'g'},
        {"latency-bound-ms", required_argument, NULL, 'L'},
        {"latency-percentile", required_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'R'},
        {"search-steps", required_argument, NULL, 'K'},
        {"seed", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->duration = 1.0;
    a->threshold = 0.05;
    a->alpha = 0.01;
    a->min_queries = 10;
    a->warmup = 2;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
        ia_status st = IA_OK;
        char *end = NULL;
        switch (c) {
        case 'b':
            a->db = optarg;
            break;
        case 'm':
            a->model = optarg;
            break;
        case 'D':
            a->device = optarg;
            break;
        case 'd':
            a->dtype = optarg;
            break;
        case 'B':
            a->batch = optarg;
            break;
        case 'S':
            a->seq = optarg;
            break;
        case 's':
            a->scenario = optarg;
            break;
        case 'H':
            a->hardware = optarg;
            break;
        case 'Q':
            a->sql = optarg;
            break;
        case 'n':
            a->since = optarg;
            break;
        case 'u':
        case 'T':
        case 'x':
        case 'L':
        case 'P':
        case 'a': {
            double v = strtod(optarg, &end);
            if (!*optarg || *end || !(v > 0) || !isfinite(v) || (c == 'P' && v > 100))
                return cli_usage_error(cmd, "'%s' is not a positive number%s", optarg,
                                       c == 'P' ? " up to 100" : "");
            *(c == 'u'   ? &a->duration
              : c == 'T' ? &a->timeout
              : c == 'x' ? &a->threshold
              : c == 'L' ? &a->bound_ms
              : c == 'P' ? &a->percentile
                         : &a->alpha) = v;
            break;
        }
        case 'g':
            st = cli_parse_int("--gen-tokens", optarg, 1, 1 << 20, &a->gen_tokens);
            break;
        case 'K':
            st = cli_parse_int("--search-steps", optarg, 1, 64, &a->steps);
            break;
        case 'e':
            st = cli_parse_int("--seed", optarg, 0, LONG_MAX, &a->seed);
            break;
        case 'R':
            a->rates = optarg;
            break;
        case 'q':
            st = cli_parse_int("--min-queries", optarg, 1, 100000000, &a->min_queries);
            break;
        case 'w':
            st = cli_parse_int("--warmup", optarg, 0, 1000000, &a->warmup);
            break;
        case 't':
            st = cli_parse_int("--threads", optarg, 1, 1024, &a->threads);
            break;
        case 'j':
            a->format = OUT_JSON;
            break;
        case 'f':
            a->format_name = optarg;
            if (strcmp(optarg, "table") == 0)
                a->format = OUT_TABLE;
            else if (strcmp(optarg, "json") == 0)
                a->format = OUT_JSON;
            else if (strcmp(optarg, "csv") == 0)
                a->format = OUT_CSV;
            else if (!report)
                return cli_usage_error(cmd, "--format: '%s' is not table, json or csv", optarg);
            break;
        case 'o':
            a->output = optarg;
            break;
        case 'h':
            fputs(bench_usage, stdout);
            return -1;
        default:
            return cli_usage_error(cmd, "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error(cmd, "%s", ia_error_message());
    }
    a->n_pos = argc - optind;
    a->pos = argv + optind;
    return 0;
}

static ia_status open_db(const bench_args *a, ia_bench_db **db) {
    char url[4096];
    const char *u = a->db;
    if (!u) {
        ia_status st = ia_bench_db_default_url(url, sizeof url);
        if (st)
            return st;
        u = url;
    }
    return ia_bench_db_open(u, db);
}

/* ---- subcommands -------------------------------------------------------------------------- */

static void print_progress(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

static int bench_run(const bench_args *a, int argc, char **argv) {
    if (!a->model)
        return cli_usage_error("bench run", "--model is required (a model directory or .gguf)");
    char command[2048];
    size_t used = 0;
    command[0] = '\0';
    for (int i = 0; i < argc && used + 2 < sizeof command; i++)
        used +=
            (size_t)snprintf(command + used, sizeof command - used, "%s%s", i ? " " : "", argv[i]);
    ia_bench_run_options o = {
        .model = a->model,
        .devices = a->device,
        .dtypes = a->dtype,
        .batches = a->batch,
        .seqs = a->seq,
        .scenario = a->scenario,
        .min_duration_s = a->duration,
        .min_queries = (size_t)a->min_queries,
        .warmup = (size_t)a->warmup,
        .timeout_s = a->timeout,
        .threads = (int)a->threads,
        .command = command,
        .gen_tokens = (int)a->gen_tokens,
        .latency_bound_s = a->bound_ms * 1e-3,
        .latency_percentile = a->percentile,
        .rates = a->rates,
        .search_steps = (int)a->steps,
        .seed = (uint64_t)a->seed,
        .progress = print_progress,
    };
    ia_bench_db *db = NULL;
    ia_bench_rows rows = {0};
    int64_t run_id = -1;
    ia_status st = open_db(a, &db);
    if (!st)
        st = ia_bench_run(db, &o, &run_id);
    int rc = 0;
    if (!st) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)run_id);
        const char *p[] = {id, id};
        st = ia_bench_db_query(
            db,
            "SELECT r.run_id, r.device, r.dtype, r.scenario, r.batch, r.seq, r.n_samples,"
            " r.p50 * 1000 AS p50_ms, r.p90 * 1000 AS p90_ms, r.p99 * 1000 AS p99_ms,"
            " CASE WHEN r.throughput_unit = 'samples/s' THEN r.throughput END AS samples_per_s,"
            " NULL AS failure, NULL AS message, r.metric,"
            " r.mean * 1000 AS mean_ms, r.throughput AS throughput, r.throughput_unit AS unit,"
            " r.gen_tokens, r.params_json AS params"
            " FROM results r WHERE r.run_id = ?"
            " UNION ALL SELECT f.run_id, f.device, f.dtype, f.scenario, f.batch, f.seq, 0,"
            " NULL, NULL, NULL, NULL, f.class, f.message, NULL, NULL, NULL, NULL, NULL, NULL"
            " FROM failures f WHERE f.run_id = ?",
            p, 2, &rows);
        if (!st) {
            rc = print_rows(&rows, a->format);
            fprintf(stderr, "bench run: run %lld stored in %s\n", (long long)run_id,
                    ia_bench_db_url(db));
            /* Every configuration failed: the run is stored (as failed), and
             * the exit status says so. */
            int64_t ok = 0;
            for (size_t i = 0; i < rows.n_rows; i++)
                ok += ia_bench_rows_get(&rows, i, 11) == NULL;
            if (!ok)
                rc = 1;
        }
    }
    if (st)
        rc = cli_fail("bench run", st);
    ia_bench_rows_free(&rows);
    ia_bench_db_close(db);
    return rc;
}

static int bench_query(const bench_args *a) {
    if (!a->sql && a->n_pos != 1)
        return cli_usage_error("bench query",
                               "give one of performance, hardware, models, batch, stats "
                               "(or --sql)");
    if (a->sql && a->n_pos)
        return cli_usage_error("bench query", "give a query name or --sql, not both");
    ia_bench_db *db = NULL;
    ia_bench_rows rows = {0};
    ia_bench_filter f = {a->model, a->hardware, a->dtype};
    int rc = 0;
    ia_status st = open_db(a, &db);
    if (!st)
        st = a->sql ? ia_bench_db_query_readonly(db, a->sql, &rows)
                    : ia_bench_query_named(db, a->pos[0], &f, &rows);
    if (!st)
        rc = print_rows(&rows, a->format);
    else
        rc = cli_fail("bench query", st);
    ia_bench_rows_free(&rows);
    ia_bench_db_close(db);
    return rc;
}

/* Comparisons as rows, for the shared printer. */
static int print_comparisons(const ia_bench_comparison *c, size_t n, bool history,
                             out_format format) {
    static const char *const names[] = {"config",      "run",           "n_a",        "n_b",
                                        "median_a_ms", "median_b_ms",   "change_pct", "p_value",
                                        "test",        "change_points", "verdict"};
    ia_bench_rows rows = {0};
    rows.n_cols = sizeof names / sizeof names[0];
    rows.cols = (char **)names;
    char **cells = calloc(n * rows.n_cols + 1, sizeof *cells);
    char(*buf)[64] = calloc(n * rows.n_cols + 1, sizeof *buf);
    if (!cells || !buf) {
        free(cells);
        free(buf);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char **row = cells + i * rows.n_cols;
        char(*b)[64] = buf + i * rows.n_cols;
        row[0] = (char *)c[i].config;
        snprintf(b[1], 64, "%lld", (long long)c[i].run_id);
        snprintf(b[2], 64, "%zu", c[i].n_a);
        snprintf(b[3], 64, "%zu", c[i].n_b);
        snprintf(b[4], 64, "%.6f", c[i].median_a * 1e3);
        snprintf(b[5], 64, "%.6f", c[i].median_b * 1e3);
        snprintf(b[6], 64, "%.3f", c[i].change * 100);
        snprintf(b[7], 64, "%.3g", c[i].mwu.p);
        snprintf(b[8], 64, "%s", isnan(c[i].mwu.p) ? "-" : c[i].mwu.exact ? "exact" : "normal");
        if (history)
            snprintf(b[9], 64, "%zu", c[i].n_change_points);
        else
            snprintf(b[9], 64, "-");
        const char *verdict = isnan(c[i].change) ? "no history"
                              : c[i].regression  ? "REGRESSION"
                              : c[i].significant ? "improved"
                                                 : "no significant change";
        snprintf(b[10], 64, "%s", verdict);
        for (size_t k = 1; k < rows.n_cols; k++)
            row[k] = (k >= 4 && k <= 7 &&
                      isnan(k == 4   ? c[i].median_a
                            : k == 5 ? c[i].median_b
                            : k == 6 ? c[i].change
                                     : c[i].mwu.p))
                         ? NULL
                         : b[k];
    }
    rows.n_rows = n;
    rows.cells = cells;
    int rc = print_rows(&rows, format);
    free(cells);
    free(buf);
    return rc;
}

static int bench_compare(const bench_args *a) {
    if (a->n_pos != 2)
        return cli_usage_error("bench compare", "give two run ids: RUN_A RUN_B");
    long ids[2];
    for (int i = 0; i < 2; i++)
        if (cli_parse_int("run id", a->pos[i], 1, LONG_MAX, &ids[i]) != IA_OK)
            return cli_usage_error("bench compare", "%s", ia_error_message());
    ia_bench_db *db = NULL;
    ia_bench_comparison *c = NULL;
    size_t n = 0;
    int rc;
    ia_status st = open_db(a, &db);
    if (!st)
        st = ia_bench_compare(db, ids[0], ids[1], a->threshold, a->alpha, &c, &n);
    if (st) {
        rc = cli_fail("bench compare", st);
    } else {
        rc = print_comparisons(c, n, false, a->format);
        for (size_t i = 0; i < n; i++)
            if (c[i].regression)
                rc = 1;
    }
    free(c);
    ia_bench_db_close(db);
    return rc;
}

static int bench_regressions(const bench_args *a) {
    ia_bench_db *db = NULL;
    ia_bench_comparison *c = NULL;
    size_t n = 0;
    int rc;
    ia_status st = open_db(a, &db);
    if (!st)
        st = ia_bench_regressions(db, a->since, a->threshold, a->alpha, &c, &n);
    if (st) {
        rc = cli_fail("bench regressions", st);
    } else {
        rc = print_comparisons(c, n, true, a->format);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += c[i].regression;
        if (bad) {
            fprintf(stderr, "bench regressions: %zu configuration%s regressed\n", bad,
                    bad == 1 ? "" : "s");
            rc = 1;
        }
    }
    free(c);
    ia_bench_db_close(db);
    return rc;
}

static int bench_import(const bench_args *a) {
    if (a->n_pos != 1)
        return cli_usage_error("bench import", "give one llama-bench JSON file");
    ia_bench_db *db = NULL;
    int64_t run_id = -1;
    int rc = 0;
    ia_status st = open_db(a, &db);
    if (!st)
        st = ia_bench_import_llama(db, a->pos[0], &run_id);
    if (st)
        rc = cli_fail("bench import", st);
    else
        printf("imported %s as run %lld (engine llama.cpp)\n", a->pos[0], (long long)run_id);
    ia_bench_db_close(db);
    return rc;
}

static int bench_report(const bench_args *a) {
    const char *format = a->format_name ? a->format_name : "md";
    if (strcmp(format, "md") != 0 && strcmp(format, "json") != 0 && strcmp(format, "html") != 0)
        return cli_usage_error("bench report", "--format: '%s' is not md, json or html", format);
    if (a->n_pos)
        return cli_usage_error("bench report", "unexpected argument '%s'", a->pos[0]);
    ia_bench_db *db = NULL;
    ia_bench_filter f = {a->model, a->hardware, a->dtype};
    FILE *out = stdout;
    char *tmp = NULL;
    int rc = 0;
    ia_status st = open_db(a, &db);
    /* A file is written whole or not at all: to FILE.tmp, renamed at the end. */
    if (!st && a->output) {
        size_t len = strlen(a->output) + 5;
        if (!(tmp = malloc(len)))
            st = IA_ENOMEM;
        else
            snprintf(tmp, len, "%s.tmp", a->output);
        if (!st && !(out = fopen(tmp, "w")))
            st = ia_error_set(IA_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
    if (!st)
        st = ia_bench_report_write(db, format, &f, out);
    if (out && out != stdout) {
        if (fclose(out) != 0 && !st)
            st = ia_error_set(IA_EIO, "writing %s failed", tmp);
        if (!st && rename(tmp, a->output) != 0)
            st =
                ia_error_set(IA_EIO, "cannot rename %s to %s: %s", tmp, a->output, strerror(errno));
        if (st)
            remove(tmp);
    }
    if (st)
        rc = cli_fail("bench report", st);
    free(tmp);
    ia_bench_db_close(db);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(bench_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    bench_args a;
    int rc = parse_args("bench", strcmp(sub, "report") == 0, argc - 1, argv + 1, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (strcmp(sub, "run") == 0)
        return bench_run(&a, argc, argv);
    if (strcmp(sub, "query") == 0)
        return bench_query(&a);
    if (strcmp(sub, "compare") == 0)
        return bench_compare(&a);
    if (strcmp(sub, "regressions") == 0)
        return bench_regressions(&a);
    if (strcmp(sub, "import") == 0)
        return bench_import(&a);
    if (strcmp(sub, "report") == 0)
        return bench_report(&a);
    return cli_usage_error("bench",
                           "unknown command '%s' (run, query, compare, regressions, "
                           "import, report)",
                           sub);
}
