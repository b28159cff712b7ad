/*
 * The results database: opening by URL, the schema and its migrations, and
 * the writes every producer (the runner, the llama-bench importer) shares.
 *
 * Schema (version 1), the same tables and columns on SQLite and PostgreSQL:
 *   meta(key, value)              schema_version lives here
 *   hardware(id, hw_key UNIQUE, cpu_model, cpu_flags, cores, memory, accelerators)
 *   models(id, name, content_id, model_type, family, params; UNIQUE(name, content_id))
 *   runs(id, engine, model_id, hardware_id, status, started_at, finished_at, pid, host,
 *        pid_start, threads, governor, build_commit, build_flags, command, env_json,
 *        cold_start_s, peak_rss_bytes, energy_j, error)
 *   results(id, run_id, device, dtype, scenario, batch, seq, metric, unit, n_samples,
 *           mean, stddev, min, max, p50, p90, p99, throughput, duration_s, energy_j)
 *   samples(result_id, idx, value)      every per-query latency, seconds
 *   failures(id, run_id, device, dtype, scenario, batch, seq, class, message)
 * Timestamps are ISO 8601 UTC text (they sort as text on both engines).
 *
 * Version 2 adds results.throughput_unit ('samples/s', 'tokens/s',
 * 'queries/s': llama-bench imports were tokens/s where our runs were
 * sequences/s, now said rather than implied), results.gen_tokens and
 * results.params_json (generation and server scenarios), and
 * hardware.cpu_key (the normalised CPU model imports are matched on).
 * Existing rows are filled in by the migration.
 *
 * Migrations are SQL scripts indexed by the version they produce, applied in
 * one exclusive transaction on open; a database whose schema_version is
 * newer than this build knows is refused rather than written. A run is
 * created 'running' in its own transaction so that a crash leaves a trace;
 * the next open on the same host turns runs whose process is gone (the pid
 * is absent or now belongs to a process with another start time) into
 * 'incomplete'. Results and their samples are written in one transaction, so
 * a killed writer leaves either the whole result or none of it.
 */
#include "bench/bench_internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- rows ------------------------------------------------------------------ */

void ia_bench_rows_free(ia_bench_rows *rows) {
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n_cols; i++)
        free(rows->cols ? rows->cols[i] : NULL);
    for (size_t i = 0; rows->cells && i < rows->n_rows * rows->n_cols; i++)
        free(rows->cells[i]);
    free(rows->cols);
    free(rows->cells);
    memset(rows, 0, sizeof *rows);
}

ia_status bench_rows_init(ia_bench_rows *rows, size_t n_cols, const char *const *names) {
    memset(rows, 0, sizeof *rows);
    if (!(rows->cols = ia_calloc(n_cols ? n_cols : 1, sizeof *rows->cols)))
        return IA_ENOMEM;
    rows->n_cols = n_cols;
    for (size_t i = 0; i < n_cols; i++)
        if (!(rows->cols[i] = ia_strdup(names[i] ? names[i] : "?"))) {
            ia_bench_rows_free(rows);
            return IA_ENOMEM;
        }
    return IA_OK;
}

ia_status bench_rows_append(ia_bench_rows *rows, const char *const *cells) {
    size_t n = rows->n_rows + 1, total;
    if (!ia_size_mul(n, rows->n_cols ? rows->n_cols : 1, &total))
        return IA_ENOMEM;
    char **grown = ia_realloc_array(rows->cells, total, sizeof *grown);
    if (!grown)
        return IA_ENOMEM;
    rows->cells = grown;
    char **row = grown + rows->n_rows * rows->n_cols;
    for (size_t i = 0; i < rows->n_cols; i++)
        row[i] = NULL;
    rows->n_rows = n; /* counted now so that free releases a half-filled row */
    for (size_t i = 0; i < rows->n_cols; i++)
        if (cells[i] && !(row[i] = ia_strdup(cells[i])))
            return IA_ENOMEM;
    return IA_OK;
}

/* ---- small helpers ------------------------------------------------------------ */

void bench_now_iso(char *buf, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

const char *bench_fmt_double(char *buf, size_t cap, double v) {
    if (!isfinite(v))
        return NULL;
    snprintf(buf, cap, "%.17g", v);
    return buf;
}

void bench_pid_start(long pid, char *buf, size_t cap) {
    buf[0] = '\0';
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* comm may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(line, ')');
    if (!p)
        return;
    p++;
    for (int field = 2; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    if (!p)
        return;
    p++;
    size_t len = strcspn(p, " ");
    snprintf(buf, cap, "%.*s", (int)len, p);
}

ia_status bench_begin(ia_bench_db *db, bool exclusive) {
    return db->drv->begin(db->conn, exclusive);
}

ia_status bench_commit(ia_bench_db *db) { return db->drv->exec(db->conn, "COMMIT"); }

void bench_rollback(ia_bench_db *db) {
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", ia_error_message());
    db->drv->exec(db->conn, "ROLLBACK");
    ia_error_set(IA_EIO, "%s", saved); /* keep the first error's message */
}

ia_status ia_bench_db_query(ia_bench_db *db, const char *sql, const char *const *params,
                            size_t n_params, ia_bench_rows *rows) {
    return db->drv->query(db->conn, sql, params, n_params, rows);
}

ia_status ia_bench_db_query_readonly(ia_bench_db *db, const char *sql, ia_bench_rows *rows) {
    return db->drv->query_readonly(db->conn, sql, rows);
}

ia_status bench_query_int(ia_bench_db *db, const char *sql, const char *const *params, size_t n,
                          int64_t *out) {
    ia_bench_rows rows = {0};
    ia_status st = ia_bench_db_query(db, sql, params, n, &rows);
    if (!st && (rows.n_rows == 0 || rows.n_cols == 0 || !rows.cells[0]))
        st = IA_ENOTFOUND;
    if (!st)
        *out = strtoll(rows.cells[0], NULL, 10);
    ia_bench_rows_free(&rows);
    return st;
}

const char *ia_bench_db_engine(const ia_bench_db *db) { return db->drv->name; }
const char *ia_bench_db_url(const ia_bench_db *db) { return db->url; }

/* ---- URLs ----------------------------------------------------------------------- */

ia_status ia_bench_db_default_url(char *buf, size_t cap) {
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && *xdg)
        n = snprintf(buf, cap, "sqlite:%s/ipfs-accelerate/bench.db", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "sqlite:%s/.local/share/ipfs-accelerate/bench.db", home);
    else
        return ia_error_set(IA_EINVAL, "no results database: set --db, XDG_DATA_HOME or HOME");
    if (n < 0 || (size_t)n >= cap)
        return ia_error_set(IA_ERANGE, "default database path too long");
    return IA_OK;
}

/* "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db";
 * also masks a password=... keyword. Caller frees. */
static char *mask_password(const char *url) {
    size_t len = strlen(url);
    char *out = ia_malloc(len + 8); /* "***" may be longer than the password */
    if (!out)
        return NULL;
    memcpy(out, url, len + 1);
    char *scheme = strstr(out, "://");
    if (scheme) {
        char *auth = scheme + 3;
        char *at = strchr(auth, '@');
        char *slash = strchr(auth, '/');
        char *colon = strchr(auth, ':');
        if (at && (!slash || at < slash) && colon && colon < at) {
            memmove(colon + 4, at, strlen(at) + 1);
            memcpy(colon + 1, "***", 3);
        }
    }
    char *pw = strstr(out, "password=");
    if (pw) {
        char *v = pw + 9;
        size_t vlen = strcspn(v, "& ");
        memmove(v + 3, v + vlen, strlen(v + vlen) + 1);
        memcpy(v, "***", 3);
    }
    return out;
}

/* mkdir -p of the directory holding path. */
static ia_status make_parent_dirs(const char *path) {
    char *dir = ia_strdup(path);
    if (!dir)
        return IA_ENOMEM;
    char *slash = strrchr(dir, '/');
    ia_status st = IA_OK;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                st = ia_error_set(IA_EIO, "cannot create %s: %s", dir, strerror(errno));
            *p = '/';
            if (st)
                break;
        }
        if (!st && mkdir(dir, 0755) != 0 && errno != EEXIST)
            st = ia_error_set(IA_EIO, "cannot create %s: %s", dir, strerror(errno));
    }
    free(dir);
    return st;
}

/* ---- schema ------------------------------------------------------------------------ */

/* Index i produces version i + 1; "@ID@" is the driver's id column. */
static const char *const migrations[] = {
    "CREATE TABLE hardware ("
    " @ID@, hw_key TEXT NOT NULL UNIQUE, cpu_model TEXT, cpu_flags TEXT,"
    " physical_cores INTEGER, logical_cores INTEGER, memory_bytes BIGINT, accelerators TEXT,"
    " created_at TEXT NOT NULL);"
    "CREATE TABLE models ("
    " @ID@, name TEXT NOT NULL, content_id TEXT NOT NULL DEFAULT '', model_type TEXT,"
    " family TEXT, params BIGINT, created_at TEXT NOT NULL, UNIQUE (name, content_id));"
    "CREATE TABLE runs ("
    " @ID@, engine TEXT NOT NULL, model_id BIGINT NOT NULL REFERENCES models(id),"
    " hardware_id BIGINT NOT NULL REFERENCES hardware(id),"
    " status TEXT NOT NULL CHECK (status IN ('running','complete','failed','incomplete')),"
    " started_at TEXT NOT NULL, finished_at TEXT, pid INTEGER, host TEXT, pid_start TEXT,"
    " threads INTEGER, governor TEXT, build_commit TEXT, build_flags TEXT, command TEXT,"
    " env_json TEXT, cold_start_s DOUBLE PRECISION, peak_rss_bytes DOUBLE PRECISION,"
    " energy_j DOUBLE PRECISION, error TEXT);"
    "CREATE INDEX runs_model ON runs (model_id, hardware_id, started_at);"
    "CREATE TABLE results ("
    " @ID@, run_id BIGINT NOT NULL REFERENCES runs(id), device TEXT NOT NULL,"
    " dtype TEXT NOT NULL, scenario TEXT NOT NULL, batch INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " metric TEXT NOT NULL, unit TEXT NOT NULL, n_samples INTEGER NOT NULL,"
    " mean DOUBLE PRECISION, stddev DOUBLE PRECISION, min DOUBLE PRECISION,"
    " max DOUBLE PRECISION, p50 DOUBLE PRECISION, p90 DOUBLE PRECISION, p99 DOUBLE PRECISION,"
    " throughput DOUBLE PRECISION, duration_s DOUBLE PRECISION, energy_j DOUBLE PRECISION);"
    "CREATE INDEX results_run ON results (run_id);"
    "CREATE TABLE samples ("
    " result_id BIGINT NOT NULL REFERENCES results(id), idx INTEGER NOT NULL,"
    " value DOUBLE PRECISION NOT NULL, PRIMARY KEY (result_id, idx));"
    "CREATE TABLE failures ("
    " @ID@, run_id BIGINT NOT NULL REFERENCES runs(id), device TEXT, dtype TEXT,"
    " scenario TEXT, batch INTEGER, seq INTEGER,"
    " class TEXT NOT NULL CHECK (class IN ('timeout','execution_error','unsupported')),"
    " message TEXT NOT NULL);",
    /* 2: units, generation and server parameters, hardware matching */
    "ALTER TABLE results ADD COLUMN throughput_unit TEXT;"
    "ALTER TABLE results ADD COLUMN gen_tokens INTEGER;"
    "ALTER TABLE results ADD COLUMN params_json TEXT;"
    "ALTER TABLE hardware ADD COLUMN cpu_key TEXT;"
    "UPDATE results SET throughput_unit = CASE WHEN run_id IN (SELECT id FROM runs WHERE"
    " engine = 'llama.cpp') THEN 'tokens/s' ELSE 'samples/s' END;"
    "CREATE INDEX hardware_cpu_key ON hardware (cpu_key);",
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])
_Static_assert(N_MIGRATIONS == IA_BENCH_SCHEMA_VERSION, "one migration per schema version");

void ia_bench_cpu_key(const char *cpu_model, char *out, size_t cap) {
    if (!cap)
        return;
    out[0] = '\0';
    if (!cpu_model)
        return;
    char buf[512];
    size_t n = 0;
    /* lower case, marks dropped, cut at '@' (the clock) */
    for (const char *p = cpu_model; *p && *p != '@' && n + 1 < sizeof buf; p++) {
        if (*p == '(') {
            const char *e = strchr(p, ')');
            if (e && e - p <= 3) { /* (R), (TM), (C) */
                p = e;
                buf[n++] = ' ';
                continue;
            }
        }
        char c = *p;
        buf[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c == '\t' ? ' ' : c;
    }
    buf[n] = '\0';
    size_t o = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        size_t wl = strlen(w);
        if (strcmp(w, "cpu") == 0 || strcmp(w, "processor") == 0)
            continue;
        if (wl > 5 && strcmp(w + wl - 5, "-core") == 0 && strspn(w, "0123456789") == wl - 5)
            continue; /* "64-core" */
        if (o + wl + 2 > cap)
            break;
        if (o)
            out[o++] = ' ';
        memcpy(out + o, w, wl);
        o += wl;
    }
    out[o] = '\0';
}

/* Version 2: the normalised CPU model of the hardware rows already there. */
static ia_status fill_cpu_keys(ia_bench_db *db) {
    ia_bench_rows rows = {0};
    ia_status st = ia_bench_db_query(db, "SELECT id, cpu_model FROM hardware", NULL, 0, &rows);
    for (size_t i = 0; !st && i < rows.n_rows; i++) {
        char key[512];
        ia_bench_cpu_key(ia_bench_rows_get(&rows, i, 1), key, sizeof key);
        const char *p[] = {key, ia_bench_rows_get(&rows, i, 0)};
        st = ia_bench_db_query(db, "UPDATE hardware SET cpu_key = ? WHERE id = ?", p, 2, NULL);
    }
    ia_bench_rows_free(&rows);
    return st;
}

/* The script with @ID@ replaced; caller frees. */
static char *migration_sql(const char *tmpl, const char *id_column) {
    size_t cap = strlen(tmpl) * 2 + 64, o = 0;
    char *out = ia_malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "@ID@", 4) == 0) {
            size_t l = strlen(id_column);
            memcpy(out + o, id_column, l);
            o += l;
            p += 4;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

static ia_status migrate(ia_bench_db *db) {
    ia_status st = bench_begin(db, true);
    if (st)
        return st;
    int64_t version = 0;
    if ((st = db->drv->exec(db->conn, "CREATE TABLE IF NOT EXISTS meta ("
                                      " key TEXT PRIMARY KEY, value TEXT NOT NULL)")))
        goto fail;
    st = bench_query_int(db, "SELECT value FROM meta WHERE key = 'schema_version'", NULL, 0,
                         &version);
    if (st == IA_ENOTFOUND)
        st = IA_OK;
    if (st)
        goto fail;
    if (version > IA_BENCH_SCHEMA_VERSION) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s: the database has schema version %lld, newer than this build's "
                          "%d; use a newer ipfs-accelerate (nothing was written)",
                          db->url, (long long)version, IA_BENCH_SCHEMA_VERSION);
        goto fail;
    }
    for (int64_t v = version; v < IA_BENCH_SCHEMA_VERSION; v++) {
        char *sql = migration_sql(migrations[v], db->drv->id_column);
        if (!sql) {
            st = IA_ENOMEM;
            goto fail;
        }
        st = db->drv->exec(db->conn, sql);
        free(sql);
        if (!st && v + 1 == 2)
            st = fill_cpu_keys(db);
        if (st) {
            ia_error_prefix("migration to schema version %lld", (long long)v + 1);
            goto fail;
        }
    }
    if (version < IA_BENCH_SCHEMA_VERSION) {
        char v[16];
        snprintf(v, sizeof v, "%d", IA_BENCH_SCHEMA_VERSION);
        const char *p[] = {v};
        if ((st = ia_bench_db_query(db,
                                    version ? "UPDATE meta SET value = ? WHERE key = "
                                              "'schema_version'"
                                            : "INSERT INTO meta (key, value) VALUES "
                                              "('schema_version', ?)",
                                    p, 1, NULL)))
            goto fail;
    }
    if ((st = bench_commit(db)))
        goto fail;
    db->version = IA_BENCH_SCHEMA_VERSION;
    return IA_OK;
fail:
    bench_rollback(db);
    return st;
}

/* Runs left 'running' on this host by a process that is gone become
 * 'incomplete'. Runs of other hosts are left alone: we cannot see them. */
static ia_status mark_incomplete(ia_bench_db *db) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *p[] = {host};
    ia_bench_rows rows = {0};
    ia_status st = ia_bench_db_query(
        db, "SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?", p, 1,
        &rows);
    for (size_t i = 0; !st && i < rows.n_rows; i++) {
        const char *id = ia_bench_rows_get(&rows, i, 0);
        const char *pid = ia_bench_rows_get(&rows, i, 1);
        const char *start = ia_bench_rows_get(&rows, i, 2);
        char now_start[64] = "";
        if (pid)
            bench_pid_start(strtol(pid, NULL, 10), now_start, sizeof now_start);
        if (now_start[0] && start && strcmp(now_start, start) == 0)
            continue; /* still running */
        char ts[40];
        bench_now_iso(ts, sizeof ts);
        const char *q[] = {ts, id};
        st = ia_bench_db_query(db,
                               "UPDATE runs SET status = 'incomplete', finished_at = ?, error = "
                               "'the process ended before the run finished' WHERE id = ? AND "
                               "status = 'running'",
                               q, 2, NULL);
        if (!st)
            ia_log(IA_LOG_INFO, "bench: run %s (pid %s) did not finish: marked incomplete", id,
                   pid ? pid : "?");
    }
    ia_bench_rows_free(&rows);
    return st;
}

ia_status ia_bench_db_open(const char *url, ia_bench_db **out) {
    *out = NULL;
    ia_bench_db *db = ia_calloc(1, sizeof *db);
    if (!db)
        return IA_ENOMEM;
    ia_status st = IA_OK;
    if (!(db->url = mask_password(url))) {
        st = IA_ENOMEM;
        goto fail;
    }
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
#ifdef IA_POSTGRES
        db->drv = &bench_pg_driver;
        st = bench_pg_open(url, db->url, &db->conn);
#else
        st =
            ia_error_set(IA_EUNSUPPORTED,
                         "%s: this build has no PostgreSQL support (libpq was not found)", db->url);
#endif
    } else {
        const char *path = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
        if (strncmp(path, "//", 2) == 0)
            path += 2; /* sqlite:///abs/path */
        if (!*path) {
            st = ia_error_set(IA_EINVAL, "%s: no database file named", url);
            goto fail;
        }
        db->drv = &bench_sqlite_driver;
        if (!(db->sq_path = ia_strdup(path))) {
            st = IA_ENOMEM;
            goto fail;
        }
        if (!(st = make_parent_dirs(path)))
            st = bench_sqlite_open(path, &db->conn);
    }
    if (st)
        goto fail;
    if ((st = migrate(db)) || (st = mark_incomplete(db)))
        goto fail;
    *out = db;
    return IA_OK;
fail:
    if (st != IA_ENOMEM && !strstr(ia_error_message(), db->url ? db->url : url))
        ia_error_prefix("%s", db->url ? db->url : "results database");
    ia_bench_db_close(db);
    return st;
}

void ia_bench_db_close(ia_bench_db *db) {
    if (!db)
        return;
    if (db->drv && db->conn)
        db->drv->close(db->conn);
    free(db->url);
    free(db->sq_path);
    free(db);
}

ia_status ia_bench_db_check(ia_bench_db *db) {
    ia_status st = db->drv->check(db->conn);
    if (st)
        return st;
    static const struct {
        const char *sql, *what;
    } rules[] = {
        {"SELECT r.id FROM results r WHERE r.n_samples <> (SELECT COUNT(*) FROM samples s WHERE "
         "s.result_id = r.id)",
         "result %s has a different number of samples than n_samples"},
        {"SELECT s.result_id FROM samples s LEFT JOIN results r ON r.id = s.result_id WHERE r.id "
         "IS NULL",
         "samples of missing result %s"},
        {"SELECT r.id FROM results r LEFT JOIN runs u ON u.id = r.run_id WHERE u.id IS NULL",
         "result %s belongs to a missing run"},
        {"SELECT id FROM runs WHERE status <> 'running' AND finished_at IS NULL",
         "run %s has ended but has no finish time"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        ia_bench_rows rows = {0};
        if ((st = ia_bench_db_query(db, rules[i].sql, NULL, 0, &rows)))
            return st;
        if (rows.n_rows) {
            st = ia_error_set(IA_EPARSE, rules[i].what, rows.cells[0] ? rows.cells[0] : "?");
            ia_error_prefix("%s", db->url);
        }
        ia_bench_rows_free(&rows);
        if (st)
            return st;
    }
    return IA_OK;
}

/* ---- writes --------------------------------------------------------------------------- */

static const char *nz(const char *s) { return s ? s : ""; }

/* id of the row keyed by `key` after inserting it when missing. */
static ia_status upsert_id(ia_bench_db *db, const char *insert, const char *const *ins_p,
                           size_t n_ins, const char *select, const char *const *sel_p, size_t n_sel,
                           int64_t *id) {
    ia_status st = ia_bench_db_query(db, insert, ins_p, n_ins, NULL);
    if (!st)
        st = bench_query_int(db, select, sel_p, n_sel, id);
    if (st == IA_ENOTFOUND)
        st = ia_error_set(IA_EINTERNAL, "row vanished after insert: %s", select);
    return st;
}

ia_status bench_run_insert(ia_bench_db *db, const ia_bench_run_info *info, const char *status,
                           int64_t *run_id) {
    char now[40], phys[16], logi[16], mem[32], params[32], threads[16], pid[24], start[64];
    char host[256] = "";
    bench_now_iso(now, sizeof now);
    snprintf(phys, sizeof phys, "%d", info->physical_cores);
    snprintf(logi, sizeof logi, "%d", info->logical_cores);
    snprintf(mem, sizeof mem, "%llu", (unsigned long long)info->memory_bytes);
    snprintf(params, sizeof params, "%lld", (long long)info->model_params);
    snprintf(threads, sizeof threads, "%d", info->threads);
    int64_t hw_id = 0, model_id = 0;
    const char *hw_key = info->hw_key && *info->hw_key ? info->hw_key : "unknown";
    char cpu_key[512];
    ia_bench_cpu_key(info->cpu_model, cpu_key, sizeof cpu_key);
    ia_status st = IA_ENOTFOUND;
    if (info->hw_match_cpu && cpu_key[0]) {
        /* The row of our own runs on this CPU first, else the oldest. */
        const char *kp[] = {cpu_key};
        st = bench_query_int(db,
                             "SELECT h.id FROM hardware h WHERE h.cpu_key = ? ORDER BY"
                             " (SELECT COUNT(*) FROM runs u WHERE u.hardware_id = h.id AND"
                             " u.engine = 'ipfs-accelerate') DESC, h.id LIMIT 1",
                             kp, 1, &hw_id);
        if (st && st != IA_ENOTFOUND)
            return st;
    }
    if (st == IA_ENOTFOUND) {
        const char *hw_p[] = {
            hw_key, info->cpu_model, info->cpu_flags, phys, logi, mem, info->accelerators,
            now,    cpu_key};
        const char *hw_sel[] = {hw_key};
        st = upsert_id(db,
                       "INSERT INTO hardware (hw_key, cpu_model, cpu_flags, physical_cores, "
                       "logical_cores, memory_bytes, accelerators, created_at, cpu_key) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hw_key) DO NOTHING",
                       hw_p, 9, "SELECT id FROM hardware WHERE hw_key = ?", hw_sel, 1, &hw_id);
    }
    if (st)
        return st;
    const char *name = info->model_name ? info->model_name : "unknown";
    const char *m_p[] = {
        name, nz(info->model_content_id), info->model_type, info->model_family, params, now};
    const char *m_sel[] = {name, nz(info->model_content_id)};
    st = upsert_id(db,
                   "INSERT INTO models (name, content_id, model_type, family, params, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, content_id) DO NOTHING",
                   m_p, 6, "SELECT id FROM models WHERE name = ? AND content_id = ?", m_sel, 2,
                   &model_id);
    if (st)
        return st;
    char hw_s[24], model_s[24];
    snprintf(hw_s, sizeof hw_s, "%lld", (long long)hw_id);
    snprintf(model_s, sizeof model_s, "%lld", (long long)model_id);
    gethostname(host, sizeof host - 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    bench_pid_start(getpid(), start, sizeof start);
    bool running = strcmp(status, "running") == 0;
    const char *r_p[] = {info->engine ? info->engine : "ipfs-accelerate",
                         model_s,
                         hw_s,
                         status,
                         info->started_at ? info->started_at : now,
                         running ? NULL : now,
                         running ? pid : NULL,
                         host,
                         running ? start : NULL,
                         threads,
                         info->governor,
                         info->build_commit,
                         info->build_flags,
                         info->command,
                         info->env_json};
    return bench_query_int(
        db,
        "INSERT INTO runs (engine, model_id, hardware_id, status, started_at, finished_at, pid, "
        "host, pid_start, threads, governor, build_commit, build_flags, command, env_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        r_p, 15, run_id);
}

ia_status bench_run_set_env(ia_bench_db *db, int64_t run_id, const char *env_json) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    const char *p[] = {env_json, id};
    return ia_bench_db_query(db, "UPDATE runs SET env_json = ? WHERE id = ?", p, 2, NULL);
}

ia_status ia_bench_run_begin(ia_bench_db *db, const ia_bench_run_info *info, int64_t *run_id) {
    ia_status st = bench_begin(db, false);
    if (st)
        return st;
    if ((st = bench_run_insert(db, info, "running", run_id)) || (st = bench_commit(db))) {
        bench_rollback(db);
        return st;
    }
    return IA_OK;
}

ia_status ia_bench_run_finish(ia_bench_db *db, int64_t run_id, const char *status,
                              double cold_start_s, double peak_rss_bytes, double energy_j,
                              const char *error) {
    char now[40], id[24], a[40], b[40], c[40];
    bench_now_iso(now, sizeof now);
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    const char *p[] = {status,
                       now,
                       bench_fmt_double(a, sizeof a, cold_start_s),
                       bench_fmt_double(b, sizeof b, peak_rss_bytes),
                       bench_fmt_double(c, sizeof c, energy_j),
                       error,
                       id};
    return ia_bench_db_query(db,
                             "UPDATE runs SET status = ?, finished_at = ?, cold_start_s = ?, "
                             "peak_rss_bytes = ?, energy_j = ?, error = ? WHERE id = ?",
                             p, 7, NULL);
}

#define SAMPLE_CELL 32

ia_status bench_result_insert(ia_bench_db *db, int64_t run_id, const ia_bench_result *res,
                              int64_t *result_id) {
    ia_stats_summary s;
    ia_status st = ia_stats_summarize(res->samples, res->n_samples, &s);
    if (st)
        return st;
    char run_s[24], batch[16], seq[16], n[24], v[10][40], gen[16];
    snprintf(run_s, sizeof run_s, "%lld", (long long)run_id);
    snprintf(batch, sizeof batch, "%d", res->batch);
    snprintf(seq, sizeof seq, "%d", res->seq);
    snprintf(gen, sizeof gen, "%d", res->gen_tokens);
    snprintf(n, sizeof n, "%zu", res->n_samples);
    const char *p[] = {run_s,
                       res->device,
                       res->dtype,
                       res->scenario,
                       batch,
                       seq,
                       n,
                       bench_fmt_double(v[0], 40, s.mean),
                       bench_fmt_double(v[1], 40, s.stddev),
                       bench_fmt_double(v[2], 40, s.min),
                       bench_fmt_double(v[3], 40, s.max),
                       bench_fmt_double(v[4], 40, s.p50),
                       bench_fmt_double(v[5], 40, s.p90),
                       bench_fmt_double(v[6], 40, s.p99),
                       bench_fmt_double(v[7], 40, res->throughput),
                       bench_fmt_double(v[8], 40, res->duration_s),
                       bench_fmt_double(v[9], 40, res->energy_j),
                       res->metric ? res->metric : "latency",
                       res->throughput_unit ? res->throughput_unit : "samples/s",
                       res->gen_tokens > 0 ? gen : NULL,
                       res->params_json};
    int64_t rid = 0;
    if ((st = bench_query_int(db,
                              "INSERT INTO results (run_id, device, dtype, scenario, batch, seq, "
                              "n_samples, mean, stddev, min, max, p50, p90, p99, "
                              "throughput, duration_s, energy_j, metric, unit, throughput_unit, "
                              "gen_tokens, params_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                              "?, ?, ?, ?, ?, ?, ?, 's', ?, ?, ?) RETURNING id",
                              p, 21, &rid)))
        return st;
    /* Samples: three text cells per row, formatted into one block. */
    size_t n_cells;
    if (!ia_size_mul(res->n_samples, 3, &n_cells))
        return IA_ENOMEM;
    const char **cells = ia_malloc_array(n_cells, sizeof *cells);
    char *text = ia_malloc_array(n_cells, SAMPLE_CELL);
    char rid_s[24];
    snprintf(rid_s, sizeof rid_s, "%lld", (long long)rid);
    if (!cells || !text) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < res->n_samples; i++) {
        char *idx = text + (3 * i + 1) * SAMPLE_CELL, *val = text + (3 * i + 2) * SAMPLE_CELL;
        snprintf(idx, SAMPLE_CELL, "%zu", i);
        snprintf(val, SAMPLE_CELL, "%.17g", res->samples[i]);
        cells[3 * i] = rid_s;
        cells[3 * i + 1] = idx;
        cells[3 * i + 2] = val;
    }
    st = db->drv->insert_many(db->conn,
                              "INSERT INTO samples (result_id, idx, value) VALUES (?, ?, ?)", cells,
                              3, res->n_samples);
    if (!st && result_id)
        *result_id = rid;
done:
    free(cells);
    free(text);
    return st;
}

ia_status ia_bench_result_add(ia_bench_db *db, int64_t run_id, const ia_bench_result *res,
                              int64_t *result_id) {
    ia_status st = bench_begin(db, false);
    if (st)
        return st;
    if ((st = bench_result_insert(db, run_id, res, result_id)) || (st = bench_commit(db))) {
        bench_rollback(db);
        return st;
    }
    return IA_OK;
}

ia_status ia_bench_failure_add(ia_bench_db *db, int64_t run_id, const char *device,
                               const char *dtype, const char *scenario, int batch, int seq,
                               const char *cls, const char *message) {
    char run_s[24], b[16], s[16];
    snprintf(run_s, sizeof run_s, "%lld", (long long)run_id);
    snprintf(b, sizeof b, "%d", batch);
    snprintf(s, sizeof s, "%d", seq);
    const char *p[] = {run_s, device, dtype, scenario, b, s, cls, message ? message : ""};
    return ia_bench_db_query(db,
                             "INSERT INTO failures (run_id, device, dtype, scenario, batch, seq, "
                             "class, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             p, 8, NULL);
}
