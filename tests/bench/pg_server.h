/*
 * A throw-away PostgreSQL server for tests: finds initdb/pg_ctl (IA_PG_BINDIR,
 * then /usr/lib/postgresql/<N>/bin, then `pg_config --bindir`), initdb's a
 * cluster in a fresh temp directory (trust auth, fsync off), starts it on a
 * Unix socket in that directory (no TCP) and gives its URL; pg_server_stop
 * stops it and removes the directory. initdb refuses to run as root, so as
 * root the server runs as the `postgres` user (runuser), which owns the
 * temp directory. pg_server_start returns 0 when running, 1 when PostgreSQL
 * is not installed (why says so: the caller SKIPs), -1 on a failure (why
 * says what failed: the caller fails).
 */
#ifndef IA_TEST_PG_SERVER_H
#define IA_TEST_PG_SERVER_H

#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_fs.h"

typedef struct pg_server {
    char dir[256];
    char bindir[512];
    char run_as[64]; /* "runuser -u postgres -- " or "" */
    int port;
    int n_db;
    bool running;
    char url[768]; /* of the "postgres" database */
} pg_server;

static bool pg_has_initdb(const char *bindir) {
    char path[600];
    snprintf(path, sizeof path, "%s/initdb", bindir);
    return access(path, X_OK) == 0;
}

static bool pg_find_bindir(char *out, size_t cap) {
    const char *env = getenv("IA_PG_BINDIR");
    if (env && *env && pg_has_initdb(env)) {
        snprintf(out, cap, "%s", env);
        return true;
    }
    glob_t g;
    bool found = false;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc) {
        /* glob sorts; the last is the newest major version */
        snprintf(out, cap, "%.*s", (int)(strlen(g.gl_pathv[g.gl_pathc - 1]) - 7),
                 g.gl_pathv[g.gl_pathc - 1]);
        found = true;
    }
    globfree(&g);
    if (found)
        return true;
    FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
    if (p) {
        char line[512] = "";
        if (fgets(line, sizeof line, p)) {
            line[strcspn(line, "\n")] = '\0';
            if (pg_has_initdb(line)) {
                snprintf(out, cap, "%s", line);
                found = true;
            }
        }
        pclose(p);
    }
    return found;
}

static int pg_sh(const pg_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pg_sh(const pg_server *s, const char *fmt, ...) {
    char cmd[4096], inner[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(inner, sizeof inner, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s%s >>%s/cmd.log 2>&1", s->run_as, inner, s->dir);
    return system(cmd);
}

static int pg_server_start(pg_server *s, char *why, size_t cap) {
    memset(s, 0, sizeof *s);
    if (!pg_find_bindir(s->bindir, sizeof s->bindir)) {
        snprintf(why, cap,
                 "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian "
                 "package postgresql or set IA_PG_BINDIR");
        return 1;
    }
    snprintf(s->dir, sizeof s->dir, "/tmp/ia_pg_XXXXXX");
    if (!mkdtemp(s->dir)) {
        snprintf(why, cap, "mkdtemp failed");
        return -1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            snprintf(why, cap, "running as root and there is no 'postgres' user to run initdb");
            rm_rf(s->dir);
            return 1;
        }
        if (chown(s->dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(why, cap, "chown %s to postgres failed", s->dir);
            rm_rf(s->dir);
            return -1;
        }
        snprintf(s->run_as, sizeof s->run_as, "runuser -u postgres -- ");
    }
    chmod(s->dir, 0777); /* cmd.log is appended by root's shell and postgres' */
    s->port = 20000 + (int)(getpid() % 30000);
    if (pg_sh(s, "%s/initdb -D %s/data -A trust -U ia -E UTF8 --locale=C --no-sync", s->bindir,
              s->dir) != 0) {
        snprintf(why, cap, "initdb failed (see %s/cmd.log)", s->dir);
        return -1;
    }
    if (pg_sh(s,
              "%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-k %s -p %d -c "
              "listen_addresses='' -c fsync=off -c synchronous_commit=off -c "
              "full_page_writes=off\" start",
              s->bindir, s->dir, s->dir, s->dir, s->port) != 0) {
        snprintf(why, cap, "pg_ctl start failed (see %s/server.log)", s->dir);
        return -1;
    }
    s->running = true;
    snprintf(s->url, sizeof s->url, "postgresql://ia@/postgres?host=%s&port=%d", s->dir, s->port);
    return 0;
}

/* A fresh database on the server; its URL into url. */
static int pg_server_new_db(pg_server *s, char *url, size_t cap) {
    char name[32];
    snprintf(name, sizeof name, "t%d", ++s->n_db);
    if (pg_sh(s, "%s/createdb -h %s -p %d -U ia %s", s->bindir, s->dir, s->port, name) != 0)
        return -1;
    snprintf(url, cap, "postgresql://ia@/%s?host=%s&port=%d", name, s->dir, s->port);
    return 0;
}

static void pg_server_stop(pg_server *s) {
    if (s->running)
        pg_sh(s, "%s/pg_ctl -D %s/data -m immediate -w stop", s->bindir, s->dir);
    s->running = false;
    if (s->dir[0])
        rm_rf(s->dir);
    s->dir[0] = '\0';
}

#endif /* IA_TEST_PG_SERVER_H */
