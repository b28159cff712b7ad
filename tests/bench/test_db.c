/*
 * bench/db: the results database, the same cases on SQLite and on a real
 * PostgreSQL server that this test starts (pg_server.h; SKIP when PostgreSQL
 * is not installed): schema and round trip, a newer schema refused, a dead
 * writer's run marked incomplete, concurrent writer processes, read-only
 * --sql, llama-bench import (and a malformed one writing nothing), compare
 * and regressions on known samples, unreachable servers.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#include "ia/bench.h"
#include "pg_server.h"
#include "test.h"
#include "test_fs.h"

/* ---- engines -------------------------------------------------------------------- */

static pg_server pg;
static int pg_state; /* 0 not tried, 1 running, 2 skipped, 3 failed */
static char pg_why[512];

static void pg_stop_at_exit(void) {
    if (pg_state == 1)
        pg_server_stop(&pg);
}

/* A fresh database URL for one case; NULL after SKIP/FAIL reporting. */
static const char *fresh_url(bool postgres, const char *name) {
    static char url[1024];
    if (!postgres) {
        snprintf(url, sizeof url, "sqlite:%s", scratch_path(name));
        return url;
    }
    if (pg_state == 0) {
        scratch_dir(); /* its atexit runs after ours: the server stops first */
        int rc = pg_server_start(&pg, pg_why, sizeof pg_why);
        pg_state = rc == 0 ? 1 : rc == 1 ? 2 : 3;
        if (rc == 0)
            atexit(pg_stop_at_exit);
        else if (rc < 0)
            fprintf(stderr, "  PostgreSQL: %s\n", pg_why);
    }
    if (pg_state != 1)
        return NULL;
    if (pg_server_new_db(&pg, url, sizeof url) != 0) {
        fprintf(stderr, "  createdb failed\n");
        return NULL;
    }
    return url;
}

#define ENGINE_TESTS(name)                                              \
    TEST(sqlite_##name) { case_##name(fresh_url(false, #name ".db")); } \
    TEST(postgresql_##name) {                                           \
        const char *u = fresh_url(true, #name);                         \
        if (!u && pg_state == 2)                                        \
            SKIP("%s", pg_why);                                         \
        CHECK_MSG(u != NULL, "no PostgreSQL database: %s", pg_why);     \
        if (u)                                                          \
            case_##name(u);                                             \
    }

/* ---- helpers ----------------------------------------------------------------------- */

static ia_bench_run_info test_info(const char *model) {
    ia_bench_run_info info = {
        .engine = "ipfs-accelerate",
        .model_name = model,
        .model_content_id = "sha256:test",
        .model_type = "bert",
        .model_family = "text-encoder",
        .hw_key = "Test CPU|",
        .cpu_model = "Test CPU",
        .cpu_flags = "avx2 fma",
        .physical_cores = 2,
        .logical_cores = 4,
        .memory_bytes = 1u << 30,
        .threads = 2,
        .governor = "performance",
        .build_commit = "test",
        .build_flags = "-O2",
        .command = "test_db",
        .env_json = "{}",
    };
    return info;
}

/* n deterministic samples around `center` seconds (±10% uniform). */
static double *samples(double center, size_t n, uint32_t seed) {
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = center * (0.9 + 0.2 * (double)(seed >> 8) / 16777216.0);
    }
    return x;
}

/* One complete run with one result of n samples around center; its id. */
static int64_t write_run(ia_bench_db *db, const char *model, double center, size_t n,
                         uint32_t seed) {
    ia_bench_run_info info = test_info(model);
    int64_t run = -1;
    CHECK_OK(ia_bench_run_begin(db, &info, &run));
    double *x = samples(center, n, seed);
    ia_bench_result res = {"cpu", "f32", "single-stream", 1,           128, x,   n, 1.0 / center,
                           1.0,   NAN,   "latency",       "samples/s", 0,   NULL};
    CHECK_OK(ia_bench_result_add(db, run, &res, NULL));
    free(x);
    CHECK_OK(ia_bench_run_finish(db, run, "complete", 0.5, 1e8, NAN, NULL));
    return run;
}

static int64_t count(ia_bench_db *db, const char *sql) {
    ia_bench_rows rows = {0};
    int64_t n = -1;
    ia_status st = ia_bench_db_query(db, sql, NULL, 0, &rows);
    CHECK_OK(st);
    if (!st && rows.n_rows == 1 && rows.cells[0])
        n = strtoll(rows.cells[0], NULL, 10);
    ia_bench_rows_free(&rows);
    return n;
}

static const char *cell(ia_bench_db *db, const char *sql, char *buf, size_t cap) {
    ia_bench_rows rows = {0};
    buf[0] = '\0';
    if (ia_bench_db_query(db, sql, NULL, 0, &rows) == IA_OK && rows.n_rows && rows.cells[0])
        snprintf(buf, cap, "%s", rows.cells[0]);
    ia_bench_rows_free(&rows);
    return buf;
}

/* ---- cases ---------------------------------------------------------------------------- */

static void case_roundtrip(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    int64_t run = write_run(db, "tiny", 0.002, 300, 1);
    CHECK_OK(ia_bench_failure_add(db, run, "cpu", "q8_0", "single-stream", 1, 128,
                                  IA_BENCH_FAIL_UNSUPPORTED, "no q8_0 encoder"));
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM samples"), 300);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM failures WHERE class = 'unsupported'"), 1);
    char buf[128];
    CHECK(strcmp(cell(db, "SELECT status FROM runs", buf, sizeof buf), "complete") == 0);
    /* NAN energy is stored as NULL, numbers round-trip exactly. */
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM runs WHERE energy_j IS NULL"), 1);
    double *x = samples(0.002, 300, 1);
    ia_stats_summary s;
    CHECK_OK(ia_stats_summarize(x, 300, &s));
    free(x);
    CHECK_NEAR(strtod(cell(db, "SELECT p90 FROM results", buf, sizeof buf), NULL), s.p90, 0);
    CHECK_OK(ia_bench_db_check(db));
    /* A bad failure class is refused by the schema. */
    CHECK(ia_bench_failure_add(db, run, "cpu", "f32", "x", 1, 1, "oops", "m") != IA_OK);
    ia_bench_rows rows = {0};
    CHECK_OK(ia_bench_query_named(db, "performance", NULL, &rows));
    CHECK_EQ_INT(rows.n_rows, 1);
    ia_bench_rows_free(&rows);
    ia_bench_filter f = {.model = "nomatch"};
    CHECK_OK(ia_bench_query_named(db, "performance", &f, &rows));
    CHECK_EQ_INT(rows.n_rows, 0);
    ia_bench_rows_free(&rows);
    const char *names[] = {"hardware", "models", "batch", "stats"};
    for (size_t i = 0; i < 4; i++) {
        CHECK_OK(ia_bench_query_named(db, names[i], NULL, &rows));
        CHECK_MSG(rows.n_rows >= 1, "query %s gave no rows", names[i]);
        ia_bench_rows_free(&rows);
    }
    CHECK_ERR(ia_bench_query_named(db, "nope", NULL, &rows), IA_EINVAL, "unknown query");
    ia_bench_db_close(db);
    /* Reopening finds the schema current and the data there. */
    CHECK_OK(ia_bench_db_open(url, &db));
    if (db) {
        CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results"), 1);
        ia_bench_db_close(db);
    }
}
ENGINE_TESTS(roundtrip)

static void case_newer_schema_refused(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    const char *p[] = {"99"};
    CHECK_OK(ia_bench_db_query(db, "UPDATE meta SET value = ? WHERE key = 'schema_version'", p, 1,
                               NULL));
    ia_bench_db_close(db);
    db = NULL;
    CHECK_ERR(ia_bench_db_open(url, &db), IA_EUNSUPPORTED, "schema version 99, newer");
    CHECK(db == NULL);
}
ENGINE_TESTS(newer_schema_refused)

static void case_dead_writer_incomplete(const char *url) {
    pid_t child = fork();
    if (child == 0) {
        ia_bench_db *db = NULL;
        int64_t run;
        ia_bench_run_info info = test_info("dies");
        if (ia_bench_db_open(url, &db) != IA_OK || ia_bench_run_begin(db, &info, &run) != IA_OK)
            _exit(3);
        raise(SIGKILL); /* no finish, no close */
        _exit(4);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    char buf[64];
    CHECK(strcmp(cell(db, "SELECT status FROM runs", buf, sizeof buf), "incomplete") == 0);
    CHECK_OK(ia_bench_db_check(db));
    /* A run of this (live) process stays running across an open. */
    ia_bench_run_info info = test_info("alive");
    int64_t run;
    CHECK_OK(ia_bench_run_begin(db, &info, &run));
    ia_bench_db *db2 = NULL;
    CHECK_OK(ia_bench_db_open(url, &db2));
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM runs WHERE status = 'running'"), 1);
    ia_bench_db_close(db2);
    ia_bench_db_close(db);
}
ENGINE_TESTS(dead_writer_incomplete)

#define WRITERS 4
#define RUNS_EACH 5
#define SAMPLES_EACH 200

static void case_concurrent_writers(const char *url) {
    pid_t kids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        kids[w] = fork();
        if (kids[w] == 0) {
            ia_bench_db *db = NULL;
            /* Every writer opens (and migrates) at once: a fresh database. */
            if (ia_bench_db_open(url, &db) != IA_OK) {
                fprintf(stderr, "  writer %d: %s\n", w, ia_error_message());
                _exit(2);
            }
            char model[32];
            snprintf(model, sizeof model, "model-%d", w % 2);
            for (int r = 0; r < RUNS_EACH; r++) {
                ia_bench_run_info info = test_info(model);
                int64_t run;
                double *x = samples(0.001 * (w + 1), SAMPLES_EACH, (uint32_t)(w * 100 + r));
                ia_bench_result res = {
                    "cpu", "f32", "single-stream", 1,           128, x,   SAMPLES_EACH, 1.0,
                    1.0,   NAN,   "latency",       "samples/s", 0,   NULL};
                ia_status st = ia_bench_run_begin(db, &info, &run);
                if (!st)
                    st = ia_bench_result_add(db, run, &res, NULL);
                if (!st)
                    st = ia_bench_run_finish(db, run, "complete", NAN, NAN, NAN, NULL);
                free(x);
                if (st) {
                    fprintf(stderr, "  writer %d run %d: %s\n", w, r, ia_error_message());
                    _exit(1);
                }
            }
            ia_bench_db_close(db);
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status = 0;
        waitpid(kids[w], &status, 0);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d ended with %d", w,
                  status);
    }
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM runs WHERE status = 'complete'"),
                 WRITERS * RUNS_EACH);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results"), WRITERS * RUNS_EACH);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM samples"), WRITERS * RUNS_EACH * SAMPLES_EACH);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM models"), 2); /* upserts, not duplicates */
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM hardware"), 1);
    CHECK_OK(ia_bench_db_check(db));
    ia_bench_db_close(db);
}
ENGINE_TESTS(concurrent_writers)

static void case_readonly_sql(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    write_run(db, "ro", 0.001, 20, 7);
    ia_bench_rows rows = {0};
    CHECK_OK(ia_bench_db_query_readonly(db, "SELECT COUNT(*) AS n FROM samples", &rows));
    CHECK(rows.n_rows == 1 && rows.n_cols == 1 && strcmp(rows.cols[0], "n") == 0 &&
          strcmp(rows.cells[0], "20") == 0);
    ia_bench_rows_free(&rows);
    CHECK(ia_bench_db_query_readonly(db, "DELETE FROM samples", &rows) == IA_EINVAL);
    CHECK(ia_bench_db_query_readonly(db, "UPDATE runs SET status = 'failed'", &rows) == IA_EINVAL);
    CHECK(ia_bench_db_query_readonly(db, "SELECT 1; DELETE FROM samples", &rows) == IA_EINVAL);
    CHECK(ia_bench_db_query_readonly(db, "SELEC nonsense", &rows) == IA_EINVAL);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM samples"), 20);
    char buf[32];
    CHECK(strcmp(cell(db, "SELECT status FROM runs", buf, sizeof buf), "complete") == 0);
    ia_bench_db_close(db);
}
ENGINE_TESTS(readonly_sql)

static void case_llama_import(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    int64_t run = -1;
    CHECK_OK(
        ia_bench_import_llama(db, test_source_path("tests/fixtures/bench/llama-bench.json"), &run));
    CHECK(run > 0);
    char buf[128];
    CHECK(strcmp(cell(db, "SELECT engine FROM runs", buf, sizeof buf), "llama.cpp") == 0);
    CHECK(strcmp(cell(db, "SELECT build_commit FROM runs", buf, sizeof buf), "0c1e570") == 0);
    CHECK(strcmp(cell(db, "SELECT name FROM models", buf, sizeof buf), "model.gguf") == 0);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results"), 2);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results WHERE scenario = 'llama-tg' AND seq = 4"),
                 1);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM samples"), 6);
    /* 325070 ns is the first prompt sample */
    CHECK_NEAR(strtod(cell(db,
                           "SELECT s.value FROM samples s JOIN results r ON r.id = s.result_id "
                           "WHERE r.scenario = 'llama-pp' AND s.idx = 0",
                           buf, sizeof buf),
                      NULL),
               325070e-9, 1e-15);
    CHECK_OK(ia_bench_db_check(db));
    /* Malformed files: clear errors, nothing written. */
    const char *bad[] = {
        "[{\"model_filename\": \"m.gguf\", \"n_prompt\": 16, \"n_gen\": 0, \"avg_ts\": 1, "
        "\"samples_ns\": [1, 2]}, {\"model_filename\": \"m.gguf\"",
        "{\"not\": \"an array\"}",
        "[{\"model_filename\": \"m.gguf\", \"n_prompt\": 16, \"n_gen\": 0, \"avg_ts\": 1, "
        "\"samples_ns\": [1, 2]}, {\"model_filename\": \"m.gguf\", \"n_prompt\": 16, \"n_gen\": "
        "0, \"avg_ts\": 1, \"samples_ns\": [1, \"x\"]}]",
        "[]",
    };
    const char *want[] = {"", "not llama-bench JSON", "entry 1: samples_ns[1]", "not llama-bench"};
    for (size_t i = 0; i < 4; i++) {
        const char *path = scratch_path("bad.json");
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        int64_t r2 = 0;
        ia_error_clear();
        ia_status st = ia_bench_import_llama(db, path, &r2);
        CHECK_MSG(st == IA_EPARSE && strstr(ia_error_message(), want[i]) &&
                      strstr(ia_error_message(), "bad.json"),
                  "bad file %zu: %s", i, ia_error_message());
        CHECK_EQ_INT(r2, -1);
    }
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM runs"), 1);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results"), 2);
    /* llama-bench's rates are tokens/s, and the schema says so. */
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results WHERE throughput_unit = 'tokens/s'"), 2);
    ia_bench_db_close(db);
}
ENGINE_TESTS(llama_import)

/* An import lands on the hardware row of our own runs on the same CPU, even
 * though llama.cpp spells the CPU and accelerators its own way. */
static void case_import_matches_hardware(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    ia_bench_run_info info = test_info("m");
    info.cpu_model = "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz";
    info.hw_key = "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz|llvmpipe";
    int64_t ours = -1;
    CHECK_OK(ia_bench_run_begin(db, &info, &ours));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(ia_file_read_all(test_source_path("tests/fixtures/bench/llama-bench.json"), 1 << 20,
                              &text, &len));
    /* the fixture's cpu_info (every test's), as llama.cpp would print this CPU */
    const char *from = "\"AMD EPYC\"", *to = "\"Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\"";
    char *fixed = malloc(2 * len + 256);
    size_t o = 0, hits = 0;
    for (const char *p = text; fixed && p && *p;) {
        const char *at = strstr(p, from);
        size_t keep = at ? (size_t)(at - p) : strlen(p);
        memcpy(fixed + o, p, keep);
        o += keep;
        if (!at)
            break;
        memcpy(fixed + o, to, strlen(to));
        o += strlen(to);
        hits++;
        p = at + strlen(from);
    }
    CHECK_EQ_INT(hits, 2);
    if (fixed) {
        fixed[o] = '\0';
        int64_t run = -1;
        CHECK_OK(ia_bench_import_llama_text(db, fixed, o, "xeon.json", &run));
        char q[200], buf[64];
        snprintf(q, sizeof q,
                 "SELECT COUNT(DISTINCT hardware_id) FROM runs WHERE id IN (%lld, %lld)",
                 (long long)ours, (long long)run);
        CHECK_EQ_INT(count(db, q), 1);
        CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM hardware"), 1);
        CHECK(strcmp(cell(db, "SELECT cpu_key FROM hardware", buf, sizeof buf),
                     "intel xeon gold 6248") == 0);
    }
    /* another CPU gets a row of its own */
    int64_t other = -1;
    CHECK_OK(ia_bench_import_llama(db, test_source_path("tests/fixtures/bench/llama-bench.json"),
                                   &other));
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM hardware"), 2);
    free(text);
    free(fixed);
    ia_bench_db_close(db);
}
ENGINE_TESTS(import_matches_hardware)

/* A version-1 database (made here by dropping what version 2 added) is
 * upgraded on open: units filled in by engine, CPU keys computed. */
static void case_upgrade_from_v1(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    write_run(db, "m", 0.01, 20, 1);
    int64_t run = -1;
    CHECK_OK(
        ia_bench_import_llama(db, test_source_path("tests/fixtures/bench/llama-bench.json"), &run));
    static const char *const down[] = {
        "DROP INDEX hardware_cpu_key",
        "ALTER TABLE results DROP COLUMN throughput_unit",
        "ALTER TABLE results DROP COLUMN gen_tokens",
        "ALTER TABLE results DROP COLUMN params_json",
        "ALTER TABLE hardware DROP COLUMN cpu_key",
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
    };
    for (size_t i = 0; i < sizeof down / sizeof down[0]; i++)
        CHECK_OK(ia_bench_db_query(db, down[i], NULL, 0, NULL));
    ia_bench_db_close(db);
    db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    char buf[64];
    CHECK(strcmp(cell(db, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf),
                 "2") == 0);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results r JOIN runs u ON u.id = r.run_id WHERE "
                           "u.engine = 'llama.cpp' AND r.throughput_unit = 'tokens/s'"),
                 2);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM results r JOIN runs u ON u.id = r.run_id WHERE "
                           "u.engine = 'ipfs-accelerate' AND r.throughput_unit = 'samples/s'"),
                 1);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM hardware WHERE cpu_key = 'test'"), 1);
    CHECK_EQ_INT(count(db, "SELECT COUNT(*) FROM hardware WHERE cpu_key = 'amd epyc'"), 1);
    CHECK_OK(ia_bench_db_check(db));
    ia_bench_db_close(db);
}
ENGINE_TESTS(upgrade_from_v1)

TEST(cpu_key_normalises) {
    static const char *const cases[][2] = {
        {"Intel(R) Xeon(R) CPU @ 2.20GHz", "intel xeon"},
        {"AMD EPYC 7B13 64-Core Processor", "amd epyc 7b13"},
        {"AMD EPYC", "amd epyc"},
        {"  Apple   M2 Pro ", "apple m2 pro"},
        {"Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", "intel core i7-8650u"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128];
        ia_bench_cpu_key(cases[i][0], out, sizeof out);
        CHECK_MSG(strcmp(out, cases[i][1]) == 0, "'%s' -> '%s'", cases[i][0], out);
    }
}

static void case_compare_and_regressions(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    int64_t a = write_run(db, "m", 0.010, 100, 1);
    int64_t same = write_run(db, "m", 0.010, 100, 2);
    int64_t slow = write_run(db, "m", 0.012, 100, 3);
    ia_bench_comparison *c = NULL;
    size_t n = 0;
    CHECK_OK(ia_bench_compare(db, a, same, 0.05, 0.01, &c, &n));
    CHECK(n == 1 && !c[0].regression && fabs(c[0].change) < 0.05);
    free(c);
    CHECK_OK(ia_bench_compare(db, a, slow, 0.05, 0.01, &c, &n));
    CHECK(n == 1 && c[0].regression && c[0].mwu.p < 1e-6 && fabs(c[0].change - 0.2) < 0.05);
    free(c);
    CHECK_OK(ia_bench_compare(db, slow, a, 0.05, 0.01, &c, &n)); /* faster: not a regression */
    CHECK(n == 1 && !c[0].regression && c[0].significant);
    free(c);
    /* A large threshold makes the same difference not matter. */
    CHECK_OK(ia_bench_compare(db, a, slow, 0.5, 0.01, &c, &n));
    CHECK(n == 1 && !c[0].regression);
    free(c);
    CHECK_ERR(ia_bench_compare(db, a, 999, 0.05, 0.01, &c, &n), IA_ENOTFOUND, "no run 999");
    /* History: 10 ms, 10 ms, 12 ms (latest): regressed against the pool. */
    CHECK_OK(ia_bench_regressions(db, NULL, 0.05, 0.01, &c, &n));
    CHECK(n == 1 && c[0].regression && c[0].history_runs == 2 && c[0].run_id == slow);
    free(c);
    /* --since after the latest run: nothing to check. */
    CHECK_OK(ia_bench_regressions(db, "2999-01-01", 0.05, 0.01, &c, &n));
    CHECK_EQ_INT(n, 0);
    free(c);
    /* A long stable history then a step shows as a change point. */
    for (int i = 0; i < 3; i++)
        write_run(db, "m", 0.012, 100, 10 + (uint32_t)i);
    CHECK_OK(ia_bench_regressions(db, NULL, 0.05, 0.01, &c, &n));
    CHECK(n == 1 && c[0].n_change_points == 1 && c[0].last_change == 2);
    free(c);
    ia_bench_db_close(db);
}
ENGINE_TESTS(compare_and_regressions)

/* Tags open and close in order (void elements aside): a structural check of
 * the HTML report without a browser. Returns the first problem or NULL. */
static const char *html_balanced(const char *h, char *why, size_t cap) {
    static const char *const void_tags[] = {"meta", "br", "img", "hr", "input", "link"};
    char stack[64][24];
    int depth = 0;
    for (const char *p = strchr(h, '<'); p; p = strchr(p + 1, '<')) {
        if (p[1] == '!')
            continue;
        bool closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " >/\n");
        const char *end = strchr(p, '>');
        if (!end || len == 0 || len >= sizeof stack[0]) {
            snprintf(why, cap, "bad tag at byte %td", p - h);
            return why;
        }
        bool self_closing = end[-1] == '/';
        bool is_void = false;
        for (size_t i = 0; i < sizeof void_tags / sizeof void_tags[0]; i++)
            is_void |= strlen(void_tags[i]) == len && strncmp(name, void_tags[i], len) == 0;
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], name, len) != 0 || stack[depth - 1][len]) {
                snprintf(why, cap, "</%.*s> at byte %td closes <%s>", (int)len, name, p - h,
                         depth ? stack[depth - 1] : "nothing");
                return why;
            }
            depth--;
        } else if (!self_closing && !is_void) {
            if (depth == 64) {
                snprintf(why, cap, "nesting too deep");
                return why;
            }
            snprintf(stack[depth++], sizeof stack[0], "%.*s", (int)len, name);
        }
    }
    if (depth) {
        snprintf(why, cap, "<%s> never closed", stack[depth - 1]);
        return why;
    }
    return NULL;
}

static char *report(ia_bench_db *db, const char *format) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK_OK(ia_bench_report_write(db, format, NULL, f));
    fclose(f);
    return buf;
}

static void case_report(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    /* batch scaling: batch 1 and 8 of one configuration */
    int64_t run = write_run(db, "m", 0.010, 50, 1);
    double *x = samples(0.04, 50, 9);
    ia_bench_result res = {"cpu", "f32", "single-stream", 8,           128, x,   50, 200.0,
                           1.0,   NAN,   "latency",       "samples/s", 0,   NULL};
    CHECK_OK(ia_bench_result_add(db, run, &res, NULL));
    free(x);
    /* history with a regression at the end */
    write_run(db, "m", 0.010, 50, 2);
    write_run(db, "m", 0.013, 50, 3);
    CHECK_OK(ia_bench_failure_add(db, run, "cpu", "q4_k", "single-stream", 1, 128,
                                  IA_BENCH_FAIL_UNSUPPORTED, "a <b> & c"));
    char *md = report(db, "md");
    CHECK(md && strstr(md, "# Benchmark report") && strstr(md, "| REGRESSION |") &&
          strstr(md, "a <b> & c"));
    free(md);
    char *js = report(db, "json");
    json_t *doc = NULL;
    CHECK_OK(ia_json_parse(js, strlen(js), "report", &doc));
    CHECK_EQ_INT(json_array_size(json_object_get(doc, "performance")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(doc, "stats"), "runs")), 3);
    json_t *regs = json_object_get(doc, "regressions");
    size_t n_reg = 0;
    for (size_t i = 0; i < json_array_size(regs); i++)
        n_reg += json_is_true(json_object_get(json_array_get(regs, i), "regression"));
    CHECK_EQ_INT(n_reg, 1);
    json_decref(doc);
    free(js);
    char *html = report(db, "html");
    char why[160];
    const char *bad = html ? html_balanced(html, why, sizeof why) : "no output";
    CHECK_MSG(!bad, "HTML: %s", bad);
    size_t svgs = 0;
    for (const char *p = html; (p = strstr(p, "<svg ")); p++)
        svgs++;
    /* throughput bars, latency ranges, one batch-scaling line, one history line */
    CHECK_EQ_INT(svgs, 4);
    CHECK(strstr(html, "class=\"regression\"") != NULL); /* the marked point */
    CHECK(strstr(html, "a &lt;b&gt; &amp; c") != NULL);  /* escaped */
    /* self-contained: no scripts, no external references */
    CHECK(!strstr(html, "<script") && !strstr(html, "src=") && !strstr(html, "href="));
    const char *h = html;
    size_t urls = 0, ns = 0;
    for (const char *p = h; (p = strstr(p, "http")); p++) {
        urls++;
        ns += strncmp(p, "http://www.w3.org/2000/svg", 26) == 0;
    }
    CHECK_EQ_INT(urls, ns);
    free(html);
    CHECK_ERR(ia_bench_report_write(db, "pdf", NULL, stdout), IA_EINVAL, "md, json or html");
    ia_bench_db_close(db);
}
ENGINE_TESTS(report)

/* ---- engine-independent ---------------------------------------------------------------- */

TEST(unreachable_postgresql_names_url_without_password) {
    ia_bench_db *db = NULL;
    ia_error_clear();
    ia_status st =
        ia_bench_db_open("postgresql://bench:s3cret@127.0.0.1:1/results?connect_timeout=2", &db);
    CHECK(st != IA_OK && db == NULL);
    const char *m = ia_error_message();
    CHECK_MSG(strstr(m, "postgresql://bench:***@127.0.0.1:1/results") && !strstr(m, "s3cret"), "%s",
              m);
}

TEST(unwritable_sqlite_path) {
    ia_bench_db *db = NULL;
    ia_error_clear();
    CHECK(ia_bench_db_open("sqlite:/proc/no/such/dir/bench.db", &db) != IA_OK);
    CHECK_MSG(strstr(ia_error_message(), "/proc/no/such/dir"), "%s", ia_error_message());
    /* A file that is not a database is refused, not overwritten. */
    const char *path = scratch_path("notadb.db");
    FILE *f = fopen(path, "w");
    fputs("this is not an SQLite database, but it is long enough to have a header....\n", f);
    fclose(f);
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", path);
    CHECK(ia_bench_db_open(url, &db) != IA_OK);
    CHECK_MSG(strstr(ia_error_message(), "notadb.db"), "%s", ia_error_message());
}

TEST(default_url_follows_xdg) {
    char buf[512];
    setenv("XDG_DATA_HOME", "/x/data", 1);
    CHECK_OK(ia_bench_db_default_url(buf, sizeof buf));
    CHECK(strcmp(buf, "sqlite:/x/data/ipfs-accelerate/bench.db") == 0);
    unsetenv("XDG_DATA_HOME");
    setenv("HOME", "/home/u", 1);
    CHECK_OK(ia_bench_db_default_url(buf, sizeof buf));
    CHECK(strcmp(buf, "sqlite:/home/u/.local/share/ipfs-accelerate/bench.db") == 0);
}
