/*
 * libFuzzer target for the llama-bench JSON importer (bench import): the
 * input is validated and, when accepted, imported into an in-memory SQLite
 * results database, so odd but valid values (huge token counts, odd
 * model_type strings, many groups) reach the writer too. A rejected input
 * must leave the database as it was: the run count is checked each time.
 */
#include "ia/bench.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ia_bench_db *db;

static int64_t runs(void) {
    ia_bench_rows rows = {0};
    int64_t n = -1;
    if (ia_bench_db_query(db, "SELECT COUNT(*) FROM runs", NULL, 0, &rows) == IA_OK &&
        rows.n_rows && rows.cells[0])
        n = strtoll(rows.cells[0], NULL, 10);
    ia_bench_rows_free(&rows);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db && ia_bench_db_open("sqlite::memory:", &db) != IA_OK)
        abort();
    size_t n = 0;
    ia_status valid = ia_bench_llama_validate((const char *)data, size, "fuzz.json", &n);
    int64_t before = runs(), run = 0;
    ia_status st = ia_bench_import_llama_text(db, (const char *)data, size, "fuzz.json", &run);
    /* validate and import agree; a refused import writes nothing */
    if ((valid == IA_OK) != (st == IA_OK))
        abort();
    if (st != IA_OK && (runs() != before || run != -1))
        abort();
    if (st == IA_OK && (n == 0 || runs() <= before))
        abort();
    return 0;
}
