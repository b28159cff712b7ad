/*
 * The PostgreSQL driver of the results database (libpq), for a team sharing
 * one database. Compiled only when CMake found libpq (IA_POSTGRES).
 *
 * Statements come with '?' parameters and are rewritten to $1, $2, ...
 * (outside quoted strings); all parameters are sent as text and PostgreSQL
 * casts them to the column types. Writers serialise their schema migration
 * on an advisory transaction lock. User SQL (--sql) runs in a READ ONLY
 * transaction that is always rolled back.
 */
#ifdef IA_POSTGRES
#include "bench/bench_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADVISORY_KEY "7242311"

/* '?' -> $n outside single-quoted strings; caller frees. */
static char *pg_rewrite(const char *sql) {
    size_t len = strlen(sql), cap = len * 4 + 1;
    char *out = ia_malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    int n = 0;
    bool quoted = false;
    for (const char *p = sql; *p; p++) {
        if (*p == '\'')
            quoted = !quoted;
        if (*p == '?' && !quoted)
            o += (size_t)snprintf(out + o, cap - o, "$%d", ++n);
        else
            out[o++] = *p;
    }
    out[o] = '\0';
    return out;
}

/* libpq messages end in newlines and may span lines; one line reads better. */
static void one_line(char *buf) {
    size_t l = strlen(buf);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' '))
        buf[--l] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

static ia_status pg_result_error(PGconn *c, PGresult *r, const char *sql) {
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", msg && *msg ? msg : "unknown error");
    one_line(buf);
    return ia_error_set(IA_EIO, "postgresql: %s (in: %.80s)", buf, sql);
}

ia_status bench_pg_open(const char *url, const char *shown, void **out) {
    PGconn *c = PQconnectdb(url);
    if (!c)
        return IA_ENOMEM;
    if (PQstatus(c) != CONNECTION_OK) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", PQerrorMessage(c));
        one_line(buf);
        PQfinish(c);
        return ia_error_set(IA_EIO, "cannot connect to %s: %s", shown, buf);
    }
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    *out = c;
    return IA_OK;
}

static void pg_close(void *conn) {
    if (conn)
        PQfinish(conn);
}

static ia_status pg_collect(PGresult *r, ia_bench_rows *rows) {
    size_t n_cols = (size_t)PQnfields(r), n_rows = (size_t)PQntuples(r);
    const char **names = ia_calloc(n_cols ? n_cols : 1, sizeof *names);
    const char **cells = ia_calloc(n_cols ? n_cols : 1, sizeof *cells);
    ia_status st = IA_ENOMEM;
    if (!names || !cells)
        goto done;
    for (size_t i = 0; i < n_cols; i++)
        names[i] = PQfname(r, (int)i);
    if ((st = bench_rows_init(rows, n_cols, names)))
        goto done;
    for (size_t row = 0; row < n_rows && !st; row++) {
        for (size_t i = 0; i < n_cols; i++)
            cells[i] = PQgetisnull(r, (int)row, (int)i) ? NULL : PQgetvalue(r, (int)row, (int)i);
        st = bench_rows_append(rows, cells);
    }
done:
    free(names);
    free(cells);
    return st;
}

static ia_status pg_query(void *conn, const char *sql, const char *const *params, size_t n,
                          ia_bench_rows *rows) {
    char *q = pg_rewrite(sql);
    if (!q)
        return IA_ENOMEM;
    PGresult *r = PQexecParams(conn, q, (int)n, NULL, params, NULL, NULL, 0);
    free(q);
    ia_status st = IA_OK;
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK)
        st = pg_result_error(conn, r, sql);
    else if (rows)
        st = pg_collect(r, rows);
    PQclear(r);
    return st;
}

static ia_status pg_exec(void *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    ia_status st = IA_OK;
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK)
        st = pg_result_error(conn, r, sql);
    PQclear(r);
    return st;
}

static ia_status pg_insert_many(void *conn, const char *sql, const char *const *params,
                                size_t n_params, size_t n_rows) {
    char *q = pg_rewrite(sql);
    if (!q)
        return IA_ENOMEM;
    ia_status st = IA_OK;
    PGresult *r = PQprepare(conn, "", q, (int)n_params, NULL);
    free(q);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
        st = pg_result_error(conn, r, sql);
    PQclear(r);
    for (size_t i = 0; i < n_rows && !st; i++) {
        r = PQexecPrepared(conn, "", (int)n_params, params + i * n_params, NULL, NULL, 0);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
            st = pg_result_error(conn, r, sql);
        PQclear(r);
    }
    return st;
}

static ia_status pg_begin(void *conn, bool exclusive) {
    ia_status st = pg_exec(conn, "BEGIN");
    if (!st && exclusive && (st = pg_exec(conn, "SELECT pg_advisory_xact_lock(" ADVISORY_KEY ")")))
        pg_exec(conn, "ROLLBACK");
    return st;
}

static ia_status pg_query_readonly(void *conn, const char *sql, ia_bench_rows *rows) {
    ia_status st = pg_exec(conn, "BEGIN READ ONLY");
    if (st)
        return st;
    /* Simple-query protocol would run several statements; the extended one
     * (PQexecParams) refuses more than one, which is what --sql wants. */
    PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
        st = pg_collect(r, rows);
    } else {
        const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
        char buf[512];
        snprintf(buf, sizeof buf, "%s", m);
        one_line(buf);
        st = ia_error_set(IA_EINVAL, "--sql: %s", buf);
    }
    PQclear(r);
    pg_exec(conn, "ROLLBACK");
    return st;
}

static ia_status pg_check(void *conn) {
    (void)conn;
    return IA_OK; /* PostgreSQL's own consistency is the server's; db.c checks the schema's */
}

const bench_driver bench_pg_driver = {
    .name = "postgresql",
    .id_column = "id BIGSERIAL PRIMARY KEY",
    .query = pg_query,
    .exec = pg_exec,
    .insert_many = pg_insert_many,
    .begin = pg_begin,
    .query_readonly = pg_query_readonly,
    .check = pg_check,
    .close = pg_close,
};
#endif /* IA_POSTGRES */
