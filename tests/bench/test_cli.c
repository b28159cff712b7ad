/*
 * bench/cli: `ipfs-accelerate bench` end to end on the tiny BERT fixture
 * (tests/fixtures/models/tiny-bert) and, when IA_DEFAULT_MODEL is set, on the
 * default model: run, query (table/json/csv, --sql), compare, regressions,
 * report, import; bad input (unknown model, unknown device, malformed import) gives
 * a clear error and writes nothing half-way; a `bench run` killed with
 * SIGKILL mid-run leaves a consistent database whose run the next open
 * marks incomplete. Generation on the tiny LLaMA fixture (TTFT and TPOT with
 * every sample kept, tokens/s units, a quantised GGUF, unsupported dtypes and
 * batches stored as failures), the thermal record in the environment JSON,
 * and the server scenario with fixed rates (decoder) and the rate search
 * (embeddings).
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <signal.h>

#include "ia/bench.h"
#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

static const char *tiny(void) { return test_source_path("tests/fixtures/models/tiny-bert"); }

static const char *db_url(const char *name) {
    static char url[4][4200];
    static int slot;
    char *u = url[slot++ % 4];
    snprintf(u, sizeof url[0], "sqlite:%s", scratch_path(name));
    return u;
}

static int64_t db_count(const char *url, const char *sql) {
    ia_bench_db *db = NULL;
    int64_t n = -1;
    if (ia_bench_db_open(url, &db) != IA_OK) {
        fprintf(stderr, "  open %s: %s\n", url, ia_error_message());
        return -1;
    }
    ia_bench_rows rows = {0};
    if (ia_bench_db_query(db, sql, NULL, 0, &rows) == IA_OK && rows.n_rows && rows.cells[0])
        n = strtoll(rows.cells[0], NULL, 10);
    ia_bench_rows_free(&rows);
    ia_bench_db_close(db);
    return n;
}

TEST(run_query_compare_on_tiny_bert) {
    const char *db = db_url("cli.db");
    run_result r = RUN("bench", "run", "--db", db, "--model", tiny(), "--seq", "16,64", "--batch",
                       "1,2", "--dtype", "f32,q4_k", "--duration", "0.2", "--min-queries", "20",
                       "--threads", "1", "--format", "json");
    EXPECT(r, 0);
    json_t *rows = NULL;
    CHECK_OK(ia_json_parse(r.out, strlen(r.out), "bench run output", &rows));
    /* 2 results (seq 16 x batch 1, 2), 2 seq-64 failures (longer than 24
     * tokens), 4 q4_k failures (the encoder has no q4_k) */
    CHECK_EQ_INT(json_array_size(rows), 8);
    size_t ok = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        if (json_is_null(json_object_get(row, "failure"))) {
            ok++;
            CHECK(json_integer_value(json_object_get(row, "n_samples")) >= 20);
            CHECK(json_real_value(json_object_get(row, "p50_ms")) > 0);
        } else {
            CHECK(strcmp(json_string_value(json_object_get(row, "failure")), "unsupported") == 0);
        }
    }
    CHECK_EQ_INT(ok, 2);
    json_decref(rows);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs WHERE status = 'complete' AND "
                              "cold_start_s > 0 AND peak_rss_bytes > 0 AND env_json LIKE "
                              "'%\"hardware\"%'"),
                 1);
    /* Every sample stored, and n_samples says how many. */
    CHECK(db_count(db, "SELECT COUNT(*) FROM samples") >= 40);

    r = RUN("bench", "run", "--db", db, "--model", tiny(), "--seq", "16", "--duration", "0.2",
            "--threads", "1", "--scenario", "offline", "--batch", "2");
    EXPECT(r, 0);
    CHECK(strstr(r.err, "samples/s") != NULL);
    run_free(&r);

    r = RUN("bench", "query", "performance", "--db", db, "--format", "csv", "--model", "tiny");
    EXPECT(r, 0);
    CHECK(strncmp(r.out, "model,family,hardware,engine", 28) == 0);
    CHECK(strstr(r.out, "tiny-bert,text-encoder") != NULL);
    run_free(&r);
    r = RUN("bench", "query", "stats", "--db", db);
    EXPECT(r, 0);
    CHECK(strstr(r.out, "runs_complete") != NULL);
    run_free(&r);
    r = RUN("bench", "query", "--db", db, "--sql", "DROP TABLE samples");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "read-only") != NULL);
    run_free(&r);

    /* Run 1 against itself: identical samples, no regression. */
    r = RUN("bench", "compare", "1", "1", "--db", db);
    EXPECT(r, 0);
    CHECK(strstr(r.out, "no significant change") != NULL);
    run_free(&r);
    r = RUN("bench", "compare", "1", "77", "--db", db);
    EXPECT(r, 1);
    CHECK(strstr(r.err, "no run 77") != NULL);
    run_free(&r);
    const char *html = scratch_path("report.html");
    r = RUN("bench", "report", "--db", db, "--format", "html", "-o", html);
    EXPECT(r, 0);
    run_free(&r);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(ia_file_read_all(html, 1 << 24, &text, &len));
    CHECK(text && strstr(text, "<svg ") && strstr(text, "tiny-bert") && strstr(text, "</html>"));
    free(text);
    r = RUN("bench", "report", "--db", db, "--format", "pdf");
    EXPECT(r, 2);
    run_free(&r);
    r = RUN("bench", "report", "--db", db);
    EXPECT(r, 0);
    CHECK(strncmp(r.out, "# Benchmark report", 18) == 0);
    run_free(&r);
    r = RUN("bench", "regressions", "--db", db, "--format", "json");
    CHECK(r.status == 0 || r.status == 1); /* timing noise may be a real regression */
    CHECK(r.out[0] == '[');
    run_free(&r);
}

TEST(bad_input_writes_nothing) {
    const char *db = db_url("bad.db");
    run_result r = RUN("bench", "run", "--db", db, "--model", "/no/such/model", "--seq", "16");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "/no/such/model") != NULL);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs"), 0);
    /* An unknown device is a stored failure of a failed run, and exit 1. */
    r = RUN("bench", "run", "--db", db, "--model", tiny(), "--seq", "16", "--device", "tpu:3");
    EXPECT(r, 1);
    CHECK(strstr(r.out, "unknown device") != NULL);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs WHERE status = 'failed'"), 1);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM failures WHERE class = 'unsupported'"), 1);
    r = RUN("bench", "run", "--db", db, "--model", tiny(), "--scenario", "server");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "--latency-bound-ms") != NULL);
    run_free(&r);
    r = RUN("bench", "run", "--db", db, "--model", tiny(), "--scenario", "server",
            "--latency-bound-ms", "5", "--rate", "10,fast");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "'fast'") != NULL);
    run_free(&r);
    r = RUN("bench", "run", "--db", db, "--model", tiny(), "--scenario", "burst");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "burst") != NULL);
    run_free(&r);
    const char *bad = scratch_path("broken.json");
    FILE *f = fopen(bad, "w");
    fputs("[{\"model_filename\": \"x.gguf\", \"n_prompt\": 8,", f);
    fclose(f);
    r = RUN("bench", "import", bad, "--db", db);
    EXPECT(r, 1);
    CHECK(strstr(r.err, "broken.json") != NULL);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs"), 1);
    r = RUN("bench", "import", test_source_path("tests/fixtures/bench/llama-bench.json"), "--db",
            db);
    EXPECT(r, 0);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs WHERE engine = 'llama.cpp'"), 1);
    r = RUN("bench", "run", "--db", "postgresql://u:pw@127.0.0.1:1/x?connect_timeout=2", "--model",
            tiny());
    EXPECT(r, 1);
    CHECK(strstr(r.err, "postgresql://u:***@127.0.0.1:1/x") && !strstr(r.err, ":pw@"));
    run_free(&r);
    r = RUN("bench", "frobnicate");
    EXPECT(r, 2);
    run_free(&r);
}

TEST(sigkill_mid_run_leaves_consistent_db) {
    const char *db = db_url("killed.db");
    const char *cli = getenv("IA_CLI");
    if (!cli)
        SKIP("IA_CLI is not set");
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(cli, cli, "bench", "run", "--db", db, "--model", tiny(), "--seq", "8,16", "--batch",
              "1,2,4", "--duration", "1", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    /* Wait until the first configuration's result is stored, then kill. */
    ia_bench_db *h = NULL;
    int64_t results = 0;
    double t0 = ia_time_now();
    while (ia_time_now() - t0 < 60 && results < 1) {
        usleep(100000);
        ia_bench_db_close(h);
        h = NULL;
        if (ia_bench_db_open(db, &h) != IA_OK)
            continue;
        ia_bench_rows rows = {0};
        if (ia_bench_db_query(h, "SELECT COUNT(*) FROM results", NULL, 0, &rows) == IA_OK &&
            rows.n_rows)
            results = strtoll(rows.cells[0], NULL, 10);
        ia_bench_rows_free(&rows);
    }
    ia_bench_db_close(h);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(results >= 1);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs WHERE status = 'incomplete'"), 1);
    ia_bench_db *d = NULL;
    CHECK_OK(ia_bench_db_open(db, &d));
    if (d) {
        CHECK_OK(ia_bench_db_check(d));
        ia_bench_db_close(d);
    }
}

TEST(default_model_runs) {
    const char *model = getenv("IA_DEFAULT_MODEL");
    if (!model || !*model)
        SKIP("IA_DEFAULT_MODEL is not set");
    const char *db = db_url("default.db");
    run_result r = RUN("bench", "run", "--db", db, "--model", model, "--seq", "128", "--duration",
                       "1", "--min-queries", "5", "--warmup", "1", "--format", "csv");
    EXPECT(r, 0);
    CHECK(strstr(r.out, ",f32,single-stream,1,128,") != NULL);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM results WHERE seq = 128 AND n_samples >= 5"),
                 1);
}

static const char *llama_gguf(void) {
    return test_source_path("tests/fixtures/decoders/llama/model.gguf");
}

TEST(generation_metrics_on_tiny_llama) {
    const char *db = db_url("gen.db");
    run_result r = RUN("bench", "run", "--db", db, "--model", llama_gguf(), "--seq", "8,16",
                       "--gen-tokens", "4", "--dtype", "f32,q8_0,int3", "--duration", "0.1",
                       "--min-queries", "5", "--warmup", "1", "--threads", "1", "--format", "json");
    EXPECT(r, 0);
    CHECK(strstr(r.err, "TTFT p50") && strstr(r.err, "TPOT mean"));
    json_t *rows = NULL;
    CHECK_OK(ia_json_parse(r.out, strlen(r.out), "bench run output", &rows));
    /* (f32, q8_0) x (seq 8, 16) x (ttft, tpot) + int3's two failures */
    CHECK_EQ_INT(json_array_size(rows), 10);
    size_t ttft = 0, tpot = 0, failed = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        const char *metric = json_string_value(json_object_get(row, "metric"));
        if (!metric) {
            failed++;
            CHECK(strcmp(json_string_value(json_object_get(row, "failure")), "unsupported") == 0);
            CHECK(strstr(json_string_value(json_object_get(row, "message")), "int3") != NULL);
            continue;
        }
        CHECK(strcmp(json_string_value(json_object_get(row, "unit")), "tokens/s") == 0);
        CHECK(json_real_value(json_object_get(row, "throughput")) > 0);
        CHECK(json_real_value(json_object_get(row, "p50_ms")) > 0);
        CHECK_EQ_INT(json_integer_value(json_object_get(row, "gen_tokens")), 4);
        CHECK(json_is_null(json_object_get(row, "samples_per_s")));
        ttft += strcmp(metric, "ttft") == 0;
        tpot += strcmp(metric, "tpot") == 0;
    }
    CHECK_EQ_INT(ttft, 4);
    CHECK_EQ_INT(tpot, 4);
    CHECK_EQ_INT(failed, 2);
    json_decref(rows);
    run_free(&r);
    /* every per-token sample kept: 3 TPOT samples per query */
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM results a JOIN results b ON a.run_id = b.run_id"
                              " AND a.dtype = b.dtype AND a.seq = b.seq WHERE a.metric = 'ttft'"
                              " AND b.metric = 'tpot' AND b.n_samples = 3 * a.n_samples"
                              " AND a.n_samples >= 5"),
                 4);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs WHERE status = 'complete' AND env_json"
                              " LIKE '%\"thermal\":{%\"throttle_counters_moved\":%' AND env_json"
                              " LIKE '%\"model_kind\":\"decoder\"%' AND cold_start_s > 0"),
                 1);
    /* batch 2 is not generation; a quantised GGUF keeps its own types */
    r = RUN("bench", "run", "--db", db, "--model",
            test_source_path("tests/fixtures/quant_interop/ours-q4_k_m.gguf"), "--seq", "8",
            "--batch", "1,2", "--gen-tokens", "3", "--duration", "0.05", "--min-queries", "3",
            "--threads", "1", "--format", "csv");
    EXPECT(r, 0);
    CHECK(strstr(r.out, ",unsupported,batch 2") != NULL);
    CHECK(strstr(r.out, ",ttft,") && strstr(r.out, ",tpot,"));
    run_free(&r);
    r = RUN("bench", "query", "performance", "--db", db, "--format", "csv", "--model", "q4_k_m");
    EXPECT(r, 0);
    CHECK(strstr(r.out, "quant_interop/ours-q4_k_m.gguf,text-decoder,") != NULL);
    run_free(&r);
    /* run 1 against itself: per metric, no regression */
    r = RUN("bench", "compare", "1", "1", "--db", db, "--format", "csv");
    EXPECT(r, 0);
    CHECK(strstr(r.out, "s=8 g=4 ttft") && strstr(r.out, "s=16 g=4 tpot"));
    run_free(&r);
}

TEST(server_scenario) {
    const char *db = db_url("server.db");
    /* a decoder at two fixed rates: a trickle meets a generous bound, a
     * flood far past the capacity cannot */
    run_result r =
        RUN("bench", "run", "--db", db, "--model", llama_gguf(), "--seq", "8", "--gen-tokens", "2",
            "--scenario", "server", "--rate", "20,100000", "--latency-bound-ms", "250",
            "--duration", "0.25", "--min-queries", "3", "--threads", "1", "--format", "json");
    EXPECT(r, 0);
    CHECK(strstr(r.err, "server 20/s") && strstr(r.err, "highest rate meeting p99"));
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM results WHERE scenario = 'server' AND metric ="
                              " 'server' AND throughput_unit = 'queries/s'"),
                 2);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM results WHERE params_json LIKE"
                              " '%\"passed\":true%' AND params_json LIKE '%\"best\":true%' AND"
                              " params_json LIKE '%\"target_rate\":20.0%'"),
                 1);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM results WHERE params_json LIKE"
                              " '%\"passed\":false%' AND params_json LIKE '%\"best\":false%'"),
                 1);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM runs WHERE env_json LIKE"
                              " '%\"server\":{%\"latency_bound_s\":0.25%'"),
                 1);
    /* embeddings, searching: each step is a stored rate */
    r = RUN("bench", "run", "--db", db, "--model", tiny(), "--seq", "16", "--scenario", "server",
            "--latency-bound-ms", "100", "--latency-percentile", "90", "--search-steps", "2",
            "--duration", "0.2", "--min-queries", "3", "--threads", "1");
    EXPECT(r, 0);
    CHECK(strstr(r.err, "p90") != NULL);
    run_free(&r);
    CHECK_EQ_INT(db_count(db, "SELECT COUNT(*) FROM results r JOIN runs u ON u.id = r.run_id"
                              " WHERE u.id = 2 AND r.metric = 'server'"),
                 2);
    ia_bench_db *d = NULL;
    CHECK_OK(ia_bench_db_open(db, &d));
    if (d) {
        CHECK_OK(ia_bench_db_check(d));
        ia_bench_db_close(d);
    }
}
