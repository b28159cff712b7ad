/*
 * bench/ private: the database driver table that db.c, db_sqlite.c and
 * db_pg.c share, and small helpers the other bench files use.
 *
 * A driver speaks one engine. Statements are written once with '?'
 * parameters and portable SQL (INSERT ... RETURNING, ON CONFLICT DO
 * NOTHING, TEXT timestamps in ISO 8601 UTC); the PostgreSQL driver rewrites
 * '?' to $n. The only DDL difference is the id column, which the driver
 * names (id_column).
 */
#ifndef IA_BENCH_INTERNAL_H
#define IA_BENCH_INTERNAL_H

#include "ia/bench.h"

typedef struct bench_driver {
    const char *name;      /* "sqlite", "postgresql" */
    const char *id_column; /* DDL for an auto-increment 64-bit primary key */
    /* Runs a statement; rows may be NULL. */
    ia_status (*query)(void *conn, const char *sql, const char *const *params, size_t n,
                       ia_bench_rows *rows);
    /* Runs SQL without parameters (several statements allowed). */
    ia_status (*exec)(void *conn, const char *sql);
    /* Runs one prepared INSERT for each of n_rows rows of n_params parameters. */
    ia_status (*insert_many)(void *conn, const char *sql, const char *const *params,
                             size_t n_params, size_t n_rows);
    /* BEGIN, taking the write lock now: the schema migration and concurrent
     * writers serialise on it (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
     * advisory transaction lock when `exclusive`). */
    ia_status (*begin)(void *conn, bool exclusive);
    ia_status (*query_readonly)(void *conn, const char *sql, ia_bench_rows *rows);
    ia_status (*check)(void *conn);
    void (*close)(void *conn);
} bench_driver;

struct ia_bench_db {
    const bench_driver *drv;
    void *conn;
    char *url;     /* password masked */
    char *sq_path; /* SQLite: the file */
    int version;
};

ia_status bench_sqlite_open(const char *path, void **conn);
extern const bench_driver bench_sqlite_driver;
#ifdef IA_POSTGRES
ia_status bench_pg_open(const char *url, const char *shown, void **conn);
extern const bench_driver bench_pg_driver;
#endif

/* Transactions over the driver. */
ia_status bench_begin(ia_bench_db *db, bool exclusive);
ia_status bench_commit(ia_bench_db *db);
void bench_rollback(ia_bench_db *db);

/* One-value helpers: the first cell of the first row as int64 (IA_ENOTFOUND
 * when no row). */
ia_status bench_query_int(ia_bench_db *db, const char *sql, const char *const *params, size_t n,
                          int64_t *out);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (>= 32 bytes). */
void bench_now_iso(char *buf, size_t cap);

/* Formats a double for storage ("%.17g"), NULL for NAN (returns NULL then). */
const char *bench_fmt_double(char *buf, size_t cap, double v);

/* Builds rows by hand (named queries computed in C). */
ia_status bench_rows_init(ia_bench_rows *rows, size_t n_cols, const char *const *names);
ia_status bench_rows_append(ia_bench_rows *rows, const char *const *cells);

/* Writers used by the runner and the importer inside their own transaction. */
ia_status bench_run_insert(ia_bench_db *db, const ia_bench_run_info *info, const char *status,
                           int64_t *run_id);
ia_status bench_result_insert(ia_bench_db *db, int64_t run_id, const ia_bench_result *res,
                              int64_t *result_id);

/* The start time of process pid ("/proc/pid/stat" field 22) as text; "" when
 * the process does not exist. */
void bench_pid_start(long pid, char *buf, size_t cap);

#endif /* IA_BENCH_INTERNAL_H */
