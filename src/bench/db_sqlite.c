/*
 * The SQLite driver of the results database: one connection per handle in
 * WAL mode with a busy timeout, so that several processes (parallel `bench
 * run`s) write to one file; writers take the write lock at BEGIN
 * (BEGIN IMMEDIATE) so that two transactions never deadlock upgrading a read
 * lock. Read-only user SQL runs on a second connection opened
 * SQLITE_OPEN_READONLY, and only statements SQLite reports read-only.
 */
#include "bench/bench_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 30000

typedef struct sq_conn {
    sqlite3 *db;
    char *path;
} sq_conn;

static ia_status sq_error(sqlite3 *db, const char *what) {
    return ia_error_set(IA_EIO, "sqlite: %s: %s", what, sqlite3_errmsg(db));
}

ia_status bench_sqlite_open(const char *path, void **out) {
    sq_conn *c = ia_calloc(1, sizeof *c);
    if (!c || !(c->path = ia_strdup(path))) {
        free(c);
        return IA_ENOMEM;
    }
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        ia_status st = ia_error_set(IA_EIO, "cannot open %s: %s", path,
                                    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close(c->db);
        free(c->path);
        free(c);
        return st;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    /* WAL lets readers run beside the writer; foreign keys are enforced. */
    char *err = NULL;
    if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;", NULL, NULL, &err) !=
        SQLITE_OK) {
        ia_status st = ia_error_set(IA_EIO, "%s: not an SQLite database or not writable: %s", path,
                                    err ? err : sqlite3_errmsg(c->db));
        sqlite3_free(err);
        sqlite3_close(c->db);
        free(c->path);
        free(c);
        return st;
    }
    *out = c;
    return IA_OK;
}

static void sq_close(void *conn) {
    sq_conn *c = conn;
    if (!c)
        return;
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

/* Collects the rows of a prepared statement (stepping it to the end). */
static ia_status sq_collect(sqlite3 *db, sqlite3_stmt *stmt, ia_bench_rows *rows) {
    ia_status st = IA_OK;
    size_t n_cols = (size_t)sqlite3_column_count(stmt);
    if (rows) {
        const char **names = ia_calloc(n_cols ? n_cols : 1, sizeof *names);
        if (!names)
            return IA_ENOMEM;
        for (size_t i = 0; i < n_cols; i++)
            names[i] = sqlite3_column_name(stmt, (int)i);
        st = bench_rows_init(rows, n_cols, names);
        free(names);
        if (st)
            return st;
    }
    const char **cells = ia_calloc(n_cols ? n_cols : 1, sizeof *cells);
    char(*num)[32] = ia_calloc(n_cols ? n_cols : 1, sizeof *num);
    if (!cells || !num) {
        free(cells);
        free(num);
        return IA_ENOMEM;
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!rows)
            continue;
        for (size_t i = 0; i < n_cols; i++) {
            /* SQLite prints REALs with 15 digits; 17 round-trip exactly, as
             * PostgreSQL's float8 output does. */
            if (sqlite3_column_type(stmt, (int)i) == SQLITE_FLOAT) {
                snprintf(num[i], sizeof num[i], "%.17g", sqlite3_column_double(stmt, (int)i));
                cells[i] = num[i];
            } else {
                cells[i] = (const char *)sqlite3_column_text(stmt, (int)i);
            }
        }
        if ((st = bench_rows_append(rows, cells)))
            break;
    }
    free(cells);
    free(num);
    if (!st && rc != SQLITE_DONE)
        st = sq_error(db, sqlite3_sql(stmt));
    return st;
}

static ia_status sq_bind(sqlite3 *db, sqlite3_stmt *stmt, const char *const *params, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = params[i] ? sqlite3_bind_text(stmt, (int)i + 1, params[i], -1, SQLITE_TRANSIENT)
                           : sqlite3_bind_null(stmt, (int)i + 1);
        if (rc != SQLITE_OK)
            return sq_error(db, "bind");
    }
    return IA_OK;
}

static ia_status sq_query(void *conn, const char *sql, const char *const *params, size_t n,
                          ia_bench_rows *rows) {
    sq_conn *c = conn;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return sq_error(c->db, sql);
    ia_status st = sq_bind(c->db, stmt, params, n);
    if (!st)
        st = sq_collect(c->db, stmt, rows);
    sqlite3_finalize(stmt);
    return st;
}

static ia_status sq_exec(void *conn, const char *sql) {
    sq_conn *c = conn;
    char *err = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        ia_status st = ia_error_set(IA_EIO, "sqlite: %s", err ? err : sqlite3_errmsg(c->db));
        sqlite3_free(err);
        return st;
    }
    return IA_OK;
}

static ia_status sq_insert_many(void *conn, const char *sql, const char *const *params,
                                size_t n_params, size_t n_rows) {
    sq_conn *c = conn;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return sq_error(c->db, sql);
    ia_status st = IA_OK;
    for (size_t r = 0; r < n_rows && !st; r++) {
        sqlite3_reset(stmt);
        if ((st = sq_bind(c->db, stmt, params + r * n_params, n_params)))
            break;
        if (sqlite3_step(stmt) != SQLITE_DONE)
            st = sq_error(c->db, sql);
    }
    sqlite3_finalize(stmt);
    return st;
}

static ia_status sq_begin(void *conn, bool exclusive) {
    (void)exclusive; /* IMMEDIATE always: every transaction here writes */
    return sq_exec(conn, "BEGIN IMMEDIATE");
}

static ia_status sq_query_readonly(void *conn, const char *sql, ia_bench_rows *rows) {
    sq_conn *c = conn;
    sqlite3 *ro = NULL;
    sqlite3_stmt *stmt = NULL;
    ia_status st = IA_OK;
    if (sqlite3_open_v2(c->path, &ro, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = sq_error(ro, "open read-only");
        goto done;
    }
    sqlite3_busy_timeout(ro, BUSY_TIMEOUT_MS);
    const char *tail = NULL;
    if (sqlite3_prepare_v2(ro, sql, -1, &stmt, &tail) != SQLITE_OK) {
        st = ia_error_set(IA_EINVAL, "--sql: %s", sqlite3_errmsg(ro));
        goto done;
    }
    if (!stmt) {
        st = ia_error_set(IA_EINVAL, "--sql: no statement");
        goto done;
    }
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';'))
        tail++;
    if (tail && *tail) {
        st = ia_error_set(IA_EINVAL, "--sql: one statement only (extra text: '%.40s')", tail);
        goto done;
    }
    if (!sqlite3_stmt_readonly(stmt)) {
        st = ia_error_set(IA_EINVAL, "--sql: only read-only statements are allowed");
        goto done;
    }
    st = sq_collect(ro, stmt, rows);
done:
    sqlite3_finalize(stmt);
    sqlite3_close(ro);
    return st;
}

static ia_status sq_check(void *conn) {
    ia_bench_rows rows = {0};
    ia_status st = sq_query(conn, "PRAGMA integrity_check", NULL, 0, &rows);
    if (!st && (rows.n_rows != 1 || !rows.cells[0] || strcmp(rows.cells[0], "ok") != 0))
        st = ia_error_set(IA_EPARSE, "sqlite integrity_check: %s",
                          rows.n_rows && rows.cells[0] ? rows.cells[0] : "no answer");
    ia_bench_rows_free(&rows);
    if (!st) {
        st = sq_query(conn, "PRAGMA foreign_key_check", NULL, 0, &rows);
        if (!st && rows.n_rows)
            st = ia_error_set(IA_EPARSE, "sqlite foreign_key_check: table %s has a dangling row",
                              rows.cells[0] ? rows.cells[0] : "?");
        ia_bench_rows_free(&rows);
    }
    return st;
}

const bench_driver bench_sqlite_driver = {
    .name = "sqlite",
    .id_column = "id INTEGER PRIMARY KEY",
    .query = sq_query,
    .exec = sq_exec,
    .insert_many = sq_insert_many,
    .begin = sq_begin,
    .query_readonly = sq_query_readonly,
    .check = sq_check,
    .close = sq_close,
};
