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

/* Replaces a run's environment JSON (the runner adds what it saw during the
 * run: thermal state, throttling). */
ia_status bench_run_set_env(ia_bench_db *db, int64_t run_id, const char *env_json);

/* The start time of process pid ("/proc/pid/stat" field 22) as text; "" when
 * the process does not exist. */
void bench_pid_start(long pid, char *buf, size_t cap);

/* ---- thermal state (thermal.c) ---- */

struct json_t;
typedef struct bench_thermal {
    struct json_t *first, *last;                   /* samples (bench_thermal_sample) */
    double max_temp_c, min_freq_khz, max_freq_khz; /* NAN: never read */
    size_t n_samples;
} bench_thermal;

/* One reading: {"temp_c": {zone: C}, "freq_khz": {cpuN: kHz},
 * "throttle_counts": {"cpuN/core_throttle_count": n}}; absent files leave
 * their object empty. Root: $IA_BENCH_SYSFS_ROOT or /sys. */
struct json_t *bench_thermal_sample(void);
void bench_thermal_begin(bench_thermal *t);  /* first sample */
void bench_thermal_update(bench_thermal *t); /* one more (configuration boundaries) */
/* The last sample and the summary object for the environment JSON
 * (throttle_counters_moved: true/false, null when no counter is readable;
 * max_temp_c and the frequency range null when unreadable; "unavailable"
 * lists the sources not found). Frees t's samples. */
struct json_t *bench_thermal_finish(bench_thermal *t);
void bench_thermal_free(bench_thermal *t);

/* ---- the server scenario's load generator (server.c) ---- */

/* One query, run on the worker (the calling thread). */
typedef ia_status (*bench_query_fn)(void *ctx);

typedef struct bench_server_rate {
    double target_rate; /* queries/s asked for */
    double *latencies;  /* completed queries, arrival to completion, s (malloc'd) */
    size_t n, issued, abandoned;
    double duration_s;  /* first arrival to the last completion */
    double achieved;    /* completed queries / duration_s */
    double pct_latency; /* the percentile's latency over the completed queries */
    bool passed;        /* nothing abandoned and pct_latency <= the bound */
} bench_server_rate;

/* Runs one rate: a dispatcher thread issues arrivals (exponential gaps of
 * mean 1/rate from xoshiro256** seeded by `seed`) for min_duration_s and at
 * least min_queries (but stops issuing at 4 x min_duration_s), the calling
 * thread runs them in arrival order; queries still waiting min_duration_s +
 * 1 s after issuing stopped are abandoned. An error of fn stops
 * the rate and is returned (out->latencies freed). */
ia_status bench_server_run_rate(bench_query_fn fn, void *ctx, double rate, double min_duration_s,
                                size_t min_queries, uint64_t seed, double bound_s,
                                double percentile, bench_server_rate *out);

/* The exponential gaps' generator, exposed for tests: n gaps of mean 1/rate. */
void bench_poisson_gaps(uint64_t seed, double rate, double *gaps, size_t n);

#endif /* IA_BENCH_INTERNAL_H */
